//! Attach and detach planning: which link id a new link takes, which way it
//! reaches the kernel, and which dispatcher hooks a detach must re-apply.
//! The manager resolves the interface and reads the pins and rows; these
//! functions decide; the manager executes with undo.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::dispatcher::{HookKey, HookKind};
use crate::model::{LinkRecord, NetLinkRecord};
use crate::paths::RuntimePaths;
use crate::spec::{AttachSpec, XdpMode};
use crate::{KernelLinkId, LinkId};

impl AttachSpec {
    /// The interface hook this spec targets, as `(kind, interface, netns
    /// path)`; `None` for a non-network spec and for a TC/TCX spec whose
    /// direction is not resolved yet.
    pub fn hook(&self) -> Option<(HookKind, &str, Option<&str>)> {
        match self {
            AttachSpec::Xdp { iface, netns, .. } => Some((HookKind::Xdp, iface, netns.as_deref())),
            AttachSpec::Tc {
                iface,
                direction,
                netns,
                ..
            } => direction.map(|d| (HookKind::tc(d), iface.as_str(), netns.as_deref())),
            AttachSpec::Tcx {
                iface,
                direction,
                netns,
                ..
            } => direction.map(|d| (HookKind::tcx(d), iface.as_str(), netns.as_deref())),
            _ => None,
        }
    }

    /// Run priority on a hook (0 for specs that have none).
    pub fn priority(&self) -> i32 {
        match self {
            AttachSpec::Xdp { priority, .. }
            | AttachSpec::Tc { priority, .. }
            | AttachSpec::Tcx { priority, .. } => *priority,
            _ => 0,
        }
    }

    /// Proceed-on codes of a dispatcher slot (empty for TCX and non-network specs).
    pub fn proceed_on(&self) -> &[i32] {
        match self {
            AttachSpec::Xdp { proceed_on, .. } | AttachSpec::Tc { proceed_on, .. } => proceed_on,
            _ => &[],
        }
    }

    /// XDP attach mode (`Native` for every other spec, which ignores it).
    pub fn xdp_mode(&self) -> XdpMode {
        match self {
            AttachSpec::Xdp { mode, .. } => *mode,
            _ => XdpMode::Native,
        }
    }
}

/// Which way a new link reaches the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachRoute {
    /// A bpf_link of its own (tracepoint, probes, fentry/fexit), pinned at `pin`.
    Link {
        /// `<fs>/links/<link id>`.
        pin: PathBuf,
    },
    /// TCX: a kernel link of its own on the hook, placed among bpfman's
    /// other links there by priority.
    Tcx {
        /// `<fs>/links/<link id>`.
        pin: PathBuf,
        /// The new link's priority.
        priority: i32,
        /// bpfman's links already on the hook: `(priority, kernel link id)`.
        neighbours: Vec<(i32, KernelLinkId)>,
    },
    /// XDP or TC: a slot of the hook's dispatcher; the hook is re-applied with
    /// its recorded links plus this one.
    Dispatcher {
        /// The hook's kind.
        kind: HookKind,
    },
}

/// What one attach does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachPlan {
    /// The new link's id.
    pub link_id: LinkId,
    /// The links directory when it must be created first (undo removes it).
    pub create_links_dir: Option<PathBuf>,
    /// How the link reaches the kernel.
    pub route: AttachRoute,
}

/// What the manager read before an attach.
#[derive(Debug, Clone, Copy)]
pub struct AttachFacts<'a> {
    /// The id the store hands out next.
    pub next_link_id: LinkId,
    /// Ids that have a pin under the links directory (left by an attach
    /// that crashed before its commit): skipped, so no pin is overwritten.
    pub pinned: &'a BTreeSet<LinkId>,
    /// Whether the links directory exists.
    pub links_dir_exists: bool,
    /// The recorded links on the spec's hook (network specs; else empty).
    pub hook_links: &'a [LinkRecord],
}

/// Plans the attach of a resolved `spec` (see [`AttachSpec::resolve`]);
/// `None` when every link id from the next one on is taken.
pub fn plan_attach(
    spec: &AttachSpec,
    facts: AttachFacts<'_>,
    paths: &RuntimePaths,
) -> Option<AttachPlan> {
    let link_id = free_link_id(facts.next_link_id, facts.pinned)?;
    let links_dir = paths.links_dir();
    let create_links_dir = (!facts.links_dir_exists).then_some(links_dir);
    let route = match spec.hook() {
        Some((kind, ..)) if kind.uses_dispatcher() => AttachRoute::Dispatcher { kind },
        Some(_) => AttachRoute::Tcx {
            pin: paths.link_pin(link_id),
            priority: spec.priority(),
            neighbours: facts
                .hook_links
                .iter()
                .filter_map(|l| l.kernel_link_id.map(|k| (l.spec.priority(), k)))
                .collect(),
        },
        None => AttachRoute::Link {
            pin: paths.link_pin(link_id),
        },
    };
    Some(AttachPlan {
        link_id,
        create_links_dir,
        route,
    })
}

/// The first id from `next` on that has no pin.
fn free_link_id(next: LinkId, pinned: &BTreeSet<LinkId>) -> Option<LinkId> {
    let mut id = next;
    while pinned.contains(&id) {
        id = LinkId(id.get().checked_add(1)?);
    }
    Some(id)
}

/// The dispatcher hooks that removing `links` changes, each once, in the
/// order first met, with the XDP mode to re-apply them in. `net` holds the
/// hook rows of the links that have one; links without a dispatcher hook
/// (TCX, tracepoints, probes) are unpinned directly instead.
pub fn dispatcher_hooks(
    links: &[&LinkRecord],
    net: &[NetLinkRecord],
) -> Vec<(NetLinkRecord, XdpMode)> {
    let mut seen: BTreeSet<HookKey> = BTreeSet::new();
    let mut out = Vec::new();
    for l in links {
        let Some(n) = net.iter().find(|n| n.link_id == l.id) else {
            continue;
        };
        if n.hook.kind.uses_dispatcher() && seen.insert(n.hook) {
            out.push((n.clone(), l.spec.xdp_mode()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::spec::Direction;

    fn paths() -> RuntimePaths {
        RuntimePaths::new("/rt")
    }

    fn xdp(iface: &str, priority: i32, mode: XdpMode) -> AttachSpec {
        AttachSpec::Xdp {
            iface: iface.into(),
            priority,
            proceed_on: vec![2],
            netns: None,
            mode,
        }
    }

    fn tcx(priority: i32) -> AttachSpec {
        AttachSpec::Tcx {
            iface: "eth0".into(),
            direction: Some(Direction::Ingress),
            priority,
            netns: None,
        }
    }

    fn link_on(id: u32, spec: AttachSpec, kernel: Option<u32>) -> LinkRecord {
        let mut l = fixtures::link(id, 1, "/rt/fs");
        l.spec = spec;
        l.kernel_link_id = kernel.map(KernelLinkId);
        l
    }

    fn net(link: u32, kind: HookKind, ifindex: u32) -> NetLinkRecord {
        NetLinkRecord {
            link_id: LinkId(link),
            hook: HookKey {
                kind,
                netns_ino: 7,
                ifindex,
            },
            iface: format!("if{ifindex}"),
            netns: None,
        }
    }

    fn facts<'a>(
        next: u32,
        pinned: &'a BTreeSet<LinkId>,
        hook_links: &'a [LinkRecord],
    ) -> AttachFacts<'a> {
        AttachFacts {
            next_link_id: LinkId(next),
            pinned,
            links_dir_exists: true,
            hook_links,
        }
    }

    #[test]
    fn a_tracepoint_gets_its_own_pin_and_skips_ids_left_pinned() {
        let pinned: BTreeSet<LinkId> = [LinkId(4), LinkId(5), LinkId(9)].into();
        let spec = AttachSpec::Tracepoint {
            tracepoint: Some("sched/sched_switch".into()),
        };
        let plan = plan_attach(&spec, facts(4, &pinned, &[]), &paths()).unwrap();
        assert_eq!(plan.link_id, LinkId(6));
        assert_eq!(plan.create_links_dir, None);
        assert_eq!(
            plan.route,
            AttachRoute::Link {
                pin: PathBuf::from("/rt/fs/links/6")
            }
        );
    }

    #[test]
    fn a_missing_links_dir_is_created_first() {
        let none = BTreeSet::new();
        let f = AttachFacts {
            links_dir_exists: false,
            ..facts(1, &none, &[])
        };
        let plan = plan_attach(&AttachSpec::Fentry, f, &paths()).unwrap();
        assert_eq!(plan.create_links_dir, Some(PathBuf::from("/rt/fs/links")));
    }

    #[test]
    fn exhausted_link_ids_give_no_plan_not_a_wrap() {
        let pinned: BTreeSet<LinkId> = [LinkId(u32::MAX)].into();
        let plan = plan_attach(&AttachSpec::Fexit, facts(u32::MAX, &pinned, &[]), &paths());
        assert_eq!(plan, None);
    }

    #[test]
    fn xdp_and_tc_go_through_the_dispatcher() {
        let none = BTreeSet::new();
        let plan = plan_attach(
            &xdp("eth0", 10, XdpMode::Skb),
            facts(2, &none, &[]),
            &paths(),
        );
        assert_eq!(
            plan.unwrap().route,
            AttachRoute::Dispatcher {
                kind: HookKind::Xdp
            }
        );
        let tc = AttachSpec::Tc {
            iface: "eth0".into(),
            direction: Some(Direction::Egress),
            priority: 5,
            proceed_on: vec![],
            netns: None,
        };
        let plan = plan_attach(&tc, facts(2, &none, &[]), &paths()).unwrap();
        assert_eq!(
            plan.route,
            AttachRoute::Dispatcher {
                kind: HookKind::TcEgress
            }
        );
    }

    #[test]
    fn tcx_is_placed_among_the_recorded_links_that_have_a_kernel_link() {
        let none = BTreeSet::new();
        let on_hook = [
            link_on(1, tcx(30), Some(101)),
            link_on(2, tcx(10), Some(102)),
            // Recorded without a kernel link (a crash repaired later): no anchor.
            link_on(3, tcx(20), None),
        ];
        let plan = plan_attach(&tcx(15), facts(8, &none, &on_hook), &paths()).unwrap();
        assert_eq!(
            plan.route,
            AttachRoute::Tcx {
                pin: PathBuf::from("/rt/fs/links/8"),
                priority: 15,
                neighbours: vec![(30, KernelLinkId(101)), (10, KernelLinkId(102))],
            }
        );
    }

    #[test]
    fn spec_accessors_read_the_network_fields() {
        let x = xdp("eth1", 12, XdpMode::Skb);
        assert_eq!(x.hook(), Some((HookKind::Xdp, "eth1", None)));
        assert_eq!(
            (x.priority(), x.proceed_on(), x.xdp_mode()),
            (12, &[2][..], XdpMode::Skb)
        );
        let unresolved = AttachSpec::Tcx {
            iface: "eth0".into(),
            direction: None,
            priority: 1,
            netns: Some("/proc/1/ns/net".into()),
        };
        assert_eq!(unresolved.hook(), None);
        assert_eq!(tcx(3).hook(), Some((HookKind::TcxIngress, "eth0", None)));
        assert_eq!(tcx(3).proceed_on(), &[] as &[i32]);
        assert_eq!(AttachSpec::Fentry.hook(), None);
        assert_eq!(AttachSpec::Fentry.priority(), 0);
    }

    #[test]
    fn dispatcher_hooks_are_listed_once_each_and_skip_direct_links() {
        let links = [
            link_on(1, xdp("if3", 1, XdpMode::Skb), None),
            link_on(2, xdp("if3", 2, XdpMode::Skb), None),
            link_on(3, tcx(1), Some(9)),
            link_on(4, fixtures::link(4, 1, "/rt/fs").spec, None),
            link_on(5, xdp("if4", 1, XdpMode::Native), None),
        ];
        let net = [
            net(1, HookKind::Xdp, 3),
            net(2, HookKind::Xdp, 3),
            net(3, HookKind::TcxIngress, 3),
            net(5, HookKind::Xdp, 4),
        ];
        let refs: Vec<&LinkRecord> = links.iter().collect();
        let hooks = dispatcher_hooks(&refs, &net);
        assert_eq!(
            hooks,
            vec![
                (net[0].clone(), XdpMode::Skb),
                (net[3].clone(), XdpMode::Native)
            ]
        );
        assert!(dispatcher_hooks(&refs[2..4], &net).is_empty());
    }
}
