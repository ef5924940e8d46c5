//! Network attach with real traffic, as root: namespaces and veth pairs made
//! by the tests, UDP sent across, counters read from the test programs' maps.
//!
//! Tests that need dispatchers skip (saying why) where the kernel refuses
//! extension programs; the VM suite runs them under a stock kernel.

mod common;

use bpfman_core::dispatcher::HookKind;
use bpfman_core::spec::{Direction, XdpMode};
use bpfman_net::{
    DesiredProgram, ExtensionSupport, HookState, Iface, NetError, NetPaths, apply_tc, apply_xdp,
    attach_tcx, detach_tcx, hook_state, pinned_programs, remove_hook, tcx_chain,
};
use common::*;

fn iface_b(pair: &NetPair) -> Iface {
    Iface::resolve(Some(&pair.path_b()), "vb").unwrap()
}

fn iface_a(pair: &NetPair) -> Iface {
    Iface::resolve(Some(&pair.path_a()), "va").unwrap()
}

/// What the tests start from: a private bpffs holding the shared test maps,
/// a namespace pair, and the interface programs attach to.
///
/// Fields drop in declaration order, as the locals this replaces did in
/// reverse: the interface and namespaces go before the maps and the bpffs.
struct Net {
    iface: Iface,
    pair: NetPair,
    maps: TestMaps,
    paths: NetPaths,
    fs: Bpffs,
}

impl Net {
    /// As root, the fixture on vb (the receiver's side); `None`, after
    /// saying why, otherwise.
    fn new() -> Option<Net> {
        root_or_skip().then(|| Net::facing(None))
    }

    /// As [`Net::new`], where dispatchers (extension programs) work too.
    fn with_dispatchers() -> Option<Net> {
        (root_or_skip() && dispatchers_or_skip()).then(|| Net::facing(None))
    }

    /// The fixture on the interface a hook sees the test traffic at: XDP
    /// and TC ingress on the receiver (vb), TC egress on the sender (va).
    fn facing(direction: Option<Direction>) -> Net {
        let fs = Bpffs::new();
        let paths = fs.paths();
        let maps = TestMaps::new(&fs);
        let pair = NetPair::new();
        let iface = match direction {
            Some(Direction::Egress) => iface_a(&pair),
            _ => iface_b(&pair),
        };
        Net {
            iface,
            pair,
            maps,
            paths,
            fs,
        }
    }

    /// The same fixture with extension programs disabled by configuration.
    fn without_extensions(mut self) -> Net {
        self.paths = self.paths.without_extensions();
        self
    }

    /// Loads a test program: counts as `tag`, returns `ret`.
    fn prog(&self, kind: Prog, tag: u32, ret: i32) -> TestProg {
        load_prog(&self.fs, &self.maps, kind, tag, ret)
    }

    /// Applies `set` to the XDP hook (native mode) of the interface.
    fn xdp(&self, set: &[DesiredProgram]) -> Result<HookState, NetError> {
        apply_xdp(&self.paths, &self.iface, XdpMode::Native, set)
    }

    /// Applies `set` to the TC hook of the interface in `direction`.
    fn tc(&self, direction: Direction, set: &[DesiredProgram]) -> Result<HookState, NetError> {
        apply_tc(&self.paths, &self.iface, direction, set)
    }

    /// Applies `set` to XDP (`None`) or TC in the given direction.
    fn apply(
        &self,
        direction: Option<Direction>,
        set: &[DesiredProgram],
    ) -> Result<HookState, NetError> {
        match direction {
            None => self.xdp(set),
            Some(d) => self.tc(d, set),
        }
    }

    /// Sends `count` numbered test packets from a to b, starting at `first`.
    fn send(&self, first: u32, count: u32) {
        send_udp(&self.pair.path_a(), first, count);
    }

    /// Asserts that no dispatcher pin is left.
    fn assert_no_dispatchers(&self) {
        assert_eq!(self.fs.entries_under("dispatchers"), Vec::<String>::new());
    }
}

#[test]
fn resolve_iface_inside_a_namespace_only() {
    if !root_or_skip() {
        return;
    }
    let pair = NetPair::new();
    let (ino, ifindex) = bpfman_net::resolve_iface(Some(&pair.path_b()), "vb").unwrap();
    assert!(ino > 0 && ifindex > 0);
    let own = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&own),
        ino,
        "the caller's thread must not move"
    );
    // vb exists only inside b.
    assert!(matches!(
        bpfman_net::resolve_iface(None, "vb"),
        Err(NetError::NotFound(_))
    ));
    assert!(matches!(
        bpfman_net::resolve_iface(
            Some(std::path::Path::new("/var/run/netns/bpfman-no-such-ns")),
            "vb"
        ),
        Err(NetError::NotFound(_))
    ));
}

/// One XDP program counts the traffic; detaching stops it and leaves nothing.
#[test]
fn xdp_single_program_counts_and_detaches_cleanly() {
    let Some(net) = Net::new() else {
        return;
    };
    let p = net.prog(Prog::Xdp, 1, XDP_PASS);

    let st = net.xdp(&[p.desired(11, 50, &[XDP_PASS], 1)]).unwrap();
    assert!(st.attached && st.changed);
    assert_eq!(st.programs.len(), 1);
    assert_eq!(st.programs[0].link_id.get(), 11);
    assert_eq!(st.mode, Some(XdpMode::Native));
    net.send(0, 20);
    assert_eq!(net.maps.wait_count(1, 20), 20);

    // Same set again: nothing to do.
    let again = net.xdp(&[p.desired(11, 50, &[XDP_PASS], 1)]).unwrap();
    assert!(!again.changed && again.attached);
    let read = hook_state(&net.paths, &net.iface, HookKind::Xdp)
        .unwrap()
        .unwrap();
    assert_eq!(read.programs, again.programs);

    let gone = net.xdp(&[]).unwrap();
    assert!(gone.programs.is_empty());
    net.assert_no_dispatchers();
    assert!(
        hook_state(&net.paths, &net.iface, HookKind::Xdp)
            .unwrap()
            .is_none()
    );
    // Returns once B's socket has all of them: they went through the hook.
    send_udp_received(&net.pair.path_a(), &net.pair.path_b(), 20, 10);
    assert_eq!(net.maps.count(1), 20, "a detached program must not count");
}

/// Where dispatchers are impossible, a second program is refused with a
/// message naming the cause, and the first keeps running untouched.
#[test]
fn second_xdp_program_is_refused_without_dispatchers() {
    let Some(net) = Net::new() else {
        return;
    };
    let Net {
        fs, maps, iface, ..
    } = &net;
    let p1 = net.prog(Prog::Xdp, 1, XDP_PASS);
    let p2 = net.prog(Prog::Xdp, 2, XDP_PASS);

    let kernel_refuses = matches!(
        bpfman_net::extension_support().unwrap(),
        ExtensionSupport::Refused(_)
    );
    // The kernel's own refusal where it refuses; the configured one everywhere.
    let mut variants = vec![(
        fs.paths().without_extensions(),
        "extension programs are disabled by configuration",
    )];
    if kernel_refuses {
        variants.push((fs.paths(), "this kernel refuses extension programs (EPERM)"));
    }
    for (paths, cause) in variants {
        let st = apply_xdp(
            &paths,
            iface,
            XdpMode::Native,
            &[p1.desired(1, 50, &[XDP_PASS], 1)],
        )
        .unwrap();
        assert!(
            st.dispatcher.is_none(),
            "single-program mode attaches directly"
        );
        assert_eq!(st.programs[0].program_id.get(), p1.id);
        let before = fs.entries_under("dispatchers");

        let err = apply_xdp(
            &paths,
            iface,
            XdpMode::Native,
            &[
                p1.desired(1, 50, &[XDP_PASS], 1),
                p2.desired(2, 40, &[XDP_PASS], 2),
            ],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, NetError::Unsupported(_)), "{msg}");
        assert!(
            msg.contains(cause)
                && msg.contains("so only one XDP program per interface is possible here"),
            "{msg}"
        );
        assert_eq!(
            fs.entries_under("dispatchers"),
            before,
            "a refused attach leaves nothing behind"
        );
        let st = hook_state(&paths, iface, HookKind::Xdp).unwrap().unwrap();
        assert!(st.attached);
        assert_eq!(st.programs[0].link_id.get(), 1);

        let (c1, c2) = (maps.count(1), maps.count(2));
        net.send(0, 5);
        maps.wait_count(1, c1 + 5);
        assert_eq!(maps.count(2), c2);

        // Replacing the single program is allowed and atomic (link update).
        let st = apply_xdp(
            &paths,
            iface,
            XdpMode::Native,
            &[p2.desired(2, 40, &[XDP_PASS], 2)],
        )
        .unwrap();
        assert_eq!(st.programs[0].link_id.get(), 2);
        let c2 = maps.count(2);
        net.send(5, 5);
        maps.wait_count(2, c2 + 5);
        apply_xdp(&paths, iface, XdpMode::Native, &[]).unwrap();
        net.assert_no_dispatchers();
    }
}

/// An XDP link detached behind bpfman's back (`bpftool link detach`) shows
/// as not attached, and applying the same set repairs it.
#[test]
fn xdp_hook_detached_externally_is_repaired() {
    let Some(net) = Net::new() else {
        return;
    };
    let p = net.prog(Prog::Xdp, 1, XDP_PASS);
    let set = [p.desired(1, 50, &[XDP_PASS], 1)];
    let st = net.xdp(&set).unwrap();
    let link = st.kernel_link_id.expect("XDP link id").to_string();
    bpfman_testkit::run_ok("bpftool", &["link", "detach", "id", &link]);
    let broken = hook_state(&net.paths, &net.iface, HookKind::Xdp)
        .unwrap()
        .unwrap();
    assert!(!broken.attached);
    let fixed = net.xdp(&set).unwrap();
    assert!(fixed.attached && fixed.changed);
    assert_ne!(fixed.kernel_link_id, st.kernel_link_id);
    net.send(0, 5);
    net.maps.wait_count(1, 5);
    net.xdp(&[]).unwrap();
    net.assert_no_dispatchers();
}

/// The XDP mode is one per interface.
#[test]
fn xdp_mode_conflict_is_reported() {
    let Some(net) = Net::new() else {
        return;
    };
    let net = net.without_extensions();
    let p1 = net.prog(Prog::Xdp, 1, XDP_PASS);
    apply_xdp(
        &net.paths,
        &net.iface,
        XdpMode::Skb,
        &[p1.desired(1, 50, &[XDP_PASS], 1)],
    )
    .unwrap();
    let err = net.xdp(&[p1.desired(1, 50, &[XDP_PASS], 1)]).unwrap_err();
    assert!(matches!(err, NetError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("skb mode"), "{err}");
    apply_xdp(&net.paths, &net.iface, XdpMode::Skb, &[]).unwrap();
}

fn tc_single(direction: Direction) {
    // Ingress on the receiver, egress on the sender.
    let net = Net::facing(Some(direction));
    let ns = match direction {
        Direction::Ingress => net.pair.b.clone(),
        Direction::Egress => net.pair.a.clone(),
    };
    let dev = net.iface.name.clone();
    let p1 = net.prog(Prog::Tc, 1, TC_ACT_OK);
    let p2 = net.prog(Prog::Tc, 2, TC_ACT_OK);

    let st = net
        .tc(direction, &[p1.desired(1, 50, &[TC_ACT_PIPE], 1)])
        .unwrap();
    assert!(st.attached);
    let (_, qdisc) = in_ns(&ns, &["tc", "qdisc", "show", "dev", &dev]);
    assert!(qdisc.contains("clsact"), "{qdisc}");
    net.send(0, 10);
    net.maps.wait_count(1, 10);

    if !matches!(
        bpfman_net::extension_support().unwrap(),
        ExtensionSupport::Supported
    ) {
        let before = net.fs.entries_under("dispatchers");
        let err = net
            .tc(
                direction,
                &[
                    p1.desired(1, 50, &[TC_ACT_PIPE], 1),
                    p2.desired(2, 50, &[TC_ACT_PIPE], 2),
                ],
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("so only one TC program per interface and direction is possible here"),
            "{err}"
        );
        assert_eq!(net.fs.entries_under("dispatchers"), before);
    }

    // Repair: the filter removed behind bpfman's back is noticed and restored.
    let dir = if direction == Direction::Ingress {
        "ingress"
    } else {
        "egress"
    };
    let (ok, out) = in_ns(&ns, &["tc", "filter", "del", "dev", &dev, dir]);
    assert!(ok, "{out}");
    let broken = hook_state(&net.paths, &net.iface, HookKind::tc(direction))
        .unwrap()
        .unwrap();
    assert!(!broken.attached);
    let fixed = net
        .tc(direction, &[p1.desired(1, 50, &[TC_ACT_PIPE], 1)])
        .unwrap();
    assert!(fixed.attached && fixed.changed);
    net.send(10, 10);
    net.maps.wait_count(1, 20);

    net.tc(direction, &[]).unwrap();
    let (_, qdisc) = in_ns(&ns, &["tc", "qdisc", "show", "dev", &dev]);
    assert!(
        !qdisc.contains("clsact"),
        "bpfman added the qdisc, so it removes it: {qdisc}"
    );
    net.assert_no_dispatchers();
}

#[test]
fn tc_ingress_single_program() {
    if root_or_skip() {
        tc_single(Direction::Ingress);
    }
}

#[test]
fn tc_egress_single_program() {
    if root_or_skip() {
        tc_single(Direction::Egress);
    }
}

/// A clsact qdisc that was there before bpfman stays after the last detach;
/// with both directions in use, the qdisc stays until the last one goes.
#[test]
fn tc_qdisc_is_removed_only_if_bpfman_added_it() {
    let Some(net) = Net::new() else {
        return;
    };
    let net = net.without_extensions();
    let p1 = net.prog(Prog::Tc, 1, TC_ACT_OK);
    let p2 = net.prog(Prog::Tc, 2, TC_ACT_OK);
    let qdisc = || {
        in_ns(&net.pair.b, &["tc", "qdisc", "show", "dev", "vb"])
            .1
            .contains("clsact")
    };

    // Ours: both directions, removed with the last one.
    net.tc(Direction::Ingress, &[p1.desired(1, 50, &[TC_ACT_PIPE], 1)])
        .unwrap();
    net.tc(Direction::Egress, &[p2.desired(2, 50, &[TC_ACT_PIPE], 2)])
        .unwrap();
    net.tc(Direction::Ingress, &[]).unwrap();
    assert!(qdisc(), "egress still uses it");
    net.tc(Direction::Egress, &[]).unwrap();
    assert!(!qdisc());

    // Not ours.
    let (ok, out) = in_ns(&net.pair.b, &["tc", "qdisc", "add", "dev", "vb", "clsact"]);
    assert!(ok, "{out}");
    net.tc(Direction::Ingress, &[p1.desired(1, 50, &[TC_ACT_PIPE], 1)])
        .unwrap();
    net.tc(Direction::Ingress, &[]).unwrap();
    assert!(qdisc(), "a qdisc bpfman did not add is left alone");
    net.assert_no_dispatchers();
}

/// TCX: three programs at different priorities run in priority order,
/// equal priorities in attach order, whatever order they were attached in.
#[test]
fn tcx_order_follows_priority_then_attach_order() {
    let Some(net) = Net::new() else {
        return;
    };
    // (tag, priority) in attach order.
    let plan = [(1u32, 50), (2, 10), (3, 30), (4, 30)];
    let mut attached: Vec<(i32, bpfman_core::KernelLinkId)> = Vec::new();
    let mut pins = Vec::new();
    for (tag, prio) in plan {
        let p = net.prog(Prog::Tc, tag, TCX_NEXT);
        let link_pin = net.paths.link_pin(bpfman_core::LinkId(100 + tag));
        let id = match attach_tcx(
            &net.iface,
            Direction::Ingress,
            &p.pin,
            prio,
            &attached,
            &link_pin,
        ) {
            Ok(id) => id,
            Err(NetError::Unsupported(m)) => {
                println!("skipped: {m}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        attached.push((prio, id));
        pins.push(link_pin);
    }
    let chain = tcx_chain(&net.iface, Direction::Ingress).unwrap();
    assert_eq!(chain.len(), 4);
    net.send(0, 3);
    net.maps.wait_count(1, 3);
    for n in 0..3 {
        assert_eq!(net.maps.trace(n), vec![2, 3, 4, 1], "packet {n}");
    }
    // Detach the middle ones: the rest keep their order.
    detach_tcx(&pins[2]).unwrap();
    detach_tcx(&pins[1]).unwrap();
    net.send(3, 2);
    net.maps.wait_count(1, 5);
    assert_eq!(net.maps.trace(3), vec![4, 1]);
    assert_eq!(tcx_chain(&net.iface, Direction::Ingress).unwrap().len(), 2);
    for p in &pins {
        detach_tcx(p).unwrap();
    }
    assert!(
        tcx_chain(&net.iface, Direction::Ingress)
            .unwrap()
            .is_empty()
    );
}

/// A namespace deleted with programs attached: applying the empty set with
/// the recorded identity succeeds and cleans every pin; TCX links detach.
#[test]
fn deleted_namespace_is_cleaned_by_applying_the_empty_set() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let x = net.prog(Prog::Xdp, 1, XDP_PASS);
    let t = net.prog(Prog::Tc, 2, TC_ACT_OK);
    let tx = net.prog(Prog::Tc, 3, TCX_NEXT);
    net.xdp(&[x.desired(1, 50, &[XDP_PASS], 1)]).unwrap();
    net.tc(Direction::Egress, &[t.desired(2, 50, &[TC_ACT_PIPE], 2)])
        .unwrap();
    let tcx_pin = net.paths.link_pin(bpfman_core::LinkId(3));
    let tcx = attach_tcx(&net.iface, Direction::Ingress, &tx.pin, 50, &[], &tcx_pin);
    assert!(!pinned_programs(&net.paths).unwrap().is_empty());

    net.pair.delete();

    // Identity recorded at attach time; the namespace file is gone.
    let xs = net.xdp(&[]).unwrap();
    assert!(xs.programs.is_empty());
    net.tc(Direction::Egress, &[]).unwrap();
    if tcx.is_ok() {
        detach_tcx(&tcx_pin).unwrap();
    }
    net.assert_no_dispatchers();
    assert!(pinned_programs(&net.paths).unwrap().is_empty());
    assert!(net.paths.list_hooks().unwrap().is_empty());
    // Attaching to the vanished interface is a clear NotFound.
    let err = net.xdp(&[x.desired(1, 50, &[XDP_PASS], 1)]).unwrap_err();
    assert!(matches!(err, NetError::NotFound(_)), "{err}");
}

/// gc: hooks found by their pins alone are removed from the kernel when the
/// namespace still exists, and just unpinned when it is gone.
#[test]
fn remove_hook_by_key_for_gc() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let ib = iface_b(&net.pair);
    let ia = iface_a(&net.pair);
    let t = net.prog(Prog::Tc, 1, TC_ACT_OK);
    let x = net.prog(Prog::Xdp, 2, XDP_PASS);
    apply_tc(
        &net.paths,
        &ib,
        Direction::Ingress,
        &[t.desired(1, 50, &[TC_ACT_PIPE], 1)],
    )
    .unwrap();
    apply_xdp(
        &net.paths,
        &ia,
        XdpMode::Native,
        &[x.desired(2, 50, &[XDP_PASS], 2)],
    )
    .unwrap();
    let hooks = net.paths.list_hooks().unwrap();
    assert_eq!(hooks.len(), 2, "{hooks:?}");

    // Live namespace: found by inode, filter and qdisc removed.
    let tc_key = ib.key(HookKind::TcIngress);
    assert!(hooks.contains(&tc_key));
    remove_hook(&net.paths, &tc_key).unwrap();
    let (_, qdisc) = in_ns(&net.pair.b, &["tc", "qdisc", "show", "dev", "vb"]);
    assert!(!qdisc.contains("clsact"), "{qdisc}");
    assert_eq!(net.paths.list_hooks().unwrap(), vec![ia.key(HookKind::Xdp)]);

    // Gone namespace: pins only.
    net.pair.delete();
    remove_hook(&net.paths, &ia.key(HookKind::Xdp)).unwrap();
    assert!(net.paths.list_hooks().unwrap().is_empty());
    net.assert_no_dispatchers();
}

// ---------------------------------------------------------------------------
// Dispatcher tests: need extension programs (skip on this host, run in the VM).

/// Three XDP programs at different priorities run in priority order; a
/// program whose action is not in its proceed-on set stops the chain;
/// changing proceed-on takes effect.
#[test]
fn xdp_dispatcher_order_and_proceed_on() {
    if root_or_skip() && dispatchers_or_skip() {
        dispatcher_order_and_proceed_on(Prog::Xdp, None);
    }
}

#[test]
fn tc_ingress_dispatcher_order_and_proceed_on() {
    if root_or_skip() && dispatchers_or_skip() {
        dispatcher_order_and_proceed_on(Prog::Tc, Some(Direction::Ingress));
    }
}

#[test]
fn tc_egress_dispatcher_order_and_proceed_on() {
    if root_or_skip() && dispatchers_or_skip() {
        dispatcher_order_and_proceed_on(Prog::Tc, Some(Direction::Egress));
    }
}

fn dispatcher_order_and_proceed_on(kind: Prog, direction: Option<Direction>) {
    let net = Net::facing(direction);
    let (pass, stop, proceed) = match kind {
        Prog::Xdp => (XDP_PASS, XDP_DROP, vec![XDP_PASS]),
        Prog::Tc => (TC_ACT_OK, TC_ACT_SHOT, vec![TC_ACT_OK]),
    };
    let apply = |set: &[DesiredProgram]| net.apply(direction, set);
    let hook_kind = direction.map_or(HookKind::Xdp, HookKind::tc);
    let p1 = net.prog(kind, 1, pass);
    let p2 = net.prog(kind, 2, stop);
    let p3 = net.prog(kind, 3, pass);

    // Attached in the order 1, 2, 3 with priorities 30, 20, 10: runs 3, 2, 1.
    // Program 2 stops everything after it (its action is not in proceed-on).
    let set = vec![
        p1.desired(1, 30, &proceed, 1),
        p2.desired(2, 20, &proceed, 2),
        p3.desired(3, 10, &proceed, 3),
    ];
    let st = apply(&set).unwrap();
    assert!(st.attached);
    let order: Vec<u32> = st.programs.iter().map(|p| p.link_id.get()).collect();
    assert_eq!(order, vec![3, 2, 1]);
    assert!(st.programs.iter().all(|p| p.slot == Some(p.position)));
    assert_eq!(st.programs[0].priority, Some(10));
    net.send(0, 10);
    net.maps.wait_count(2, 10);
    for n in 0..10 {
        assert_eq!(
            net.maps.trace(n),
            vec![3, 2],
            "packet {n}: 1 must not run after 2 stops the chain"
        );
    }
    assert_eq!(net.maps.count(1), 0);

    // Proceed also on program 2's action: now 1 runs too.
    let mut set2 = set.clone();
    set2[1].proceed_on = vec![pass, stop];
    let st2 = apply(&set2).unwrap();
    assert!(st2.changed);
    assert_ne!(
        st2.dispatcher.as_ref().unwrap().program_id,
        st.dispatcher.as_ref().unwrap().program_id
    );
    // Extensions are reused, not reloaded.
    assert_eq!(st2.programs[0].program_id, st.programs[0].program_id);
    net.send(10, 10);
    net.maps.wait_count(1, 10);
    for n in 10..20 {
        assert_eq!(net.maps.trace(n), vec![3, 2, 1], "packet {n}");
    }

    // Only the current revision is pinned.
    let revisions: Vec<String> = net
        .fs
        .entries_under("dispatchers")
        .into_iter()
        .filter(|e| {
            e.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("dispatch-"))
        })
        .collect();
    let current = format!("-{}", st2.dispatcher.as_ref().unwrap().program_id);
    assert_eq!(revisions.len(), 1, "{revisions:?}");
    assert!(revisions[0].ends_with(&current), "{revisions:?}");
    let read = hook_state(&net.paths, &net.iface, hook_kind)
        .unwrap()
        .unwrap();
    assert_eq!(read.programs, st2.programs);
    assert!(read.attached);

    apply(&[]).unwrap();
    net.assert_no_dispatchers();
    assert!(pinned_programs(&net.paths).unwrap().is_empty());
}

/// Equal priorities give the same order whatever order the set is passed in.
#[test]
fn dispatcher_equal_priorities_are_deterministic() {
    let Some(net) = Net::with_dispatchers() else {
        return;
    };
    let progs: Vec<_> = (1..=3).map(|t| net.prog(Prog::Xdp, t, XDP_PASS)).collect();
    // Link ids deliberately not in attach order.
    let entries = [(7u32, 0usize, 5u64), (5, 1, 6), (9, 2, 6)];
    let mut seen = Vec::new();
    for rotation in 0..3 {
        let mut set: Vec<_> = entries
            .iter()
            .map(|(link, p, seq)| progs[*p].desired(*link, 50, &[XDP_PASS], *seq))
            .collect();
        set.rotate_left(rotation);
        let st = net.xdp(&set).unwrap();
        seen.push(
            st.programs
                .iter()
                .map(|p| p.link_id.get())
                .collect::<Vec<_>>(),
        );
        net.xdp(&[]).unwrap();
    }
    // seq 5 first, then seq 6 by link id.
    assert!(seen.iter().all(|o| *o == vec![7, 5, 9]), "{seen:?}");
}

/// Removing the middle program while traffic flows loses no packet for the
/// others: every packet is seen by the first and the last program.
#[test]
fn xdp_dispatcher_swap_is_atomic_under_traffic() {
    if root_or_skip() && dispatchers_or_skip() {
        swap_under_traffic(None);
    }
}

#[test]
fn tc_dispatcher_swap_is_atomic_under_traffic() {
    if root_or_skip() && dispatchers_or_skip() {
        swap_under_traffic(Some(Direction::Ingress));
    }
}

fn swap_under_traffic(direction: Option<Direction>) {
    let net = Net::facing(direction);
    let (kind, pass) = match direction {
        None => (Prog::Xdp, XDP_PASS),
        Some(_) => (Prog::Tc, TC_ACT_OK),
    };
    let apply = |set: &[DesiredProgram]| net.apply(direction, set);
    let progs: Vec<_> = (1..=3).map(|t| net.prog(kind, t, pass)).collect();
    let all: Vec<_> = progs
        .iter()
        .enumerate()
        .map(|(i, p)| p.desired(i as u32 + 1, 10 * (i as i32 + 1), &[pass], i as u64))
        .collect();
    apply(&all).unwrap();

    // The sender keeps sending bursts until the swap is done, then a few
    // more, so the swap always happens while traffic flows, however slow
    // the machine. Each burst waits for the first program's counter, so no
    // queue ever overflows and every packet sent is processed.
    const BURST: u32 = 25;
    const AFTER: u32 = 20;
    let swapped = std::sync::atomic::AtomicBool::new(false);
    let sent = std::sync::atomic::AtomicU32::new(0);
    let path_a = net.pair.path_a();
    let sender = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut after = 0;
            while after < AFTER {
                if swapped.load(std::sync::atomic::Ordering::SeqCst) {
                    after += 1;
                }
                let n = sent.load(std::sync::atomic::Ordering::SeqCst);
                send_udp(&path_a, n, BURST);
                sent.store(n + BURST, std::sync::atomic::Ordering::SeqCst);
                net.maps.wait_count(1, u64::from(n + BURST));
            }
        });
        net.maps.wait_count(1, u64::from(4 * BURST));
        let st = apply(&[all[0].clone(), all[2].clone()]).unwrap();
        swapped.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            st.programs
                .iter()
                .map(|p| p.link_id.get())
                .collect::<Vec<_>>(),
            vec![1, 3]
        );
        h.join()
    });
    sender.unwrap();
    let total = sent.load(std::sync::atomic::Ordering::SeqCst);
    let (c1, c2, c3) = (net.maps.count(1), net.maps.count(2), net.maps.count(3));
    assert_eq!(c1, u64::from(total));
    assert_eq!(
        c3, c1,
        "every packet the first program saw reached the last one"
    );
    assert!(
        c2 > 0 && c2 < c1,
        "the middle program ran until it was removed ({c2})"
    );
    apply(&[]).unwrap();
}

/// `xdp-loader status` (Debian's xdp-tools) recognises our dispatcher.
#[test]
fn xdp_loader_recognises_the_dispatcher() {
    if !root_or_skip() || !dispatchers_or_skip() {
        return;
    }
    if std::process::Command::new("xdp-loader")
        .arg("--help")
        .output()
        .is_err()
    {
        println!("skipped: xdp-loader (xdp-tools) is not installed");
        return;
    }
    let net = Net::facing(None);
    let p1 = net.prog(Prog::Xdp, 1, XDP_PASS);
    let p2 = net.prog(Prog::Xdp, 2, XDP_PASS);
    let st = net
        .xdp(&[
            p1.desired(1, 20, &[XDP_PASS], 1),
            p2.desired(2, 10, &[XDP_PASS, XDP_DROP], 2),
        ])
        .unwrap();
    let hook_dir = net
        .paths
        .xdp_hook_dir(net.iface.netns_ino, net.iface.ifindex);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &net.pair.b, "xdp-loader", "status", "vb"])
        .env("LIBXDP_BPFFS", &hook_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(text.contains("xdp_dispatcher"), "{text}");
    // The dispatcher line: name, mode and id.
    let d = st.dispatcher.as_ref().unwrap().program_id.to_string();
    let main = text
        .lines()
        .find(|l| l.starts_with("vb"))
        .expect("interface line");
    let words: Vec<&str> = main.split_whitespace().collect();
    assert_eq!(
        &words[1..4],
        &["xdp_dispatcher", "native", d.as_str()],
        "{text}"
    );
    // One line per component, in run order: priority, name, id, chain actions.
    let comps: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("=>"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(comps.len(), 2, "{text}");
    let id0 = st.programs[0].program_id.to_string();
    let id1 = st.programs[1].program_id.to_string();
    assert_eq!(&comps[0][1..4], &["10", "xdp_test", id0.as_str()], "{text}");
    assert_eq!(comps[0][5], "XDP_DROP,XDP_PASS", "{text}");
    assert_eq!(&comps[1][1..4], &["20", "xdp_test", id1.as_str()], "{text}");
    assert_eq!(comps[1][5], "XDP_PASS", "{text}");
    net.xdp(&[]).unwrap();
}

/// A change that fails half-way (here: a program whose extension cannot be
/// loaded) leaves the hook exactly as it was, still running the old set.
#[test]
fn failed_change_leaves_the_previous_dispatcher_running() {
    let Some(net) = Net::with_dispatchers() else {
        return;
    };
    let p1 = net.prog(Prog::Xdp, 1, XDP_PASS);
    let p2 = net.prog(Prog::Xdp, 2, XDP_PASS);
    let good = net.xdp(&[p1.desired(1, 50, &[XDP_PASS], 1)]).unwrap();
    let before = net.fs.entries_under("dispatchers");
    let mut bad = p2.desired(2, 10, &[XDP_PASS], 2);
    bad.extension.function = "no_such_function".into();
    let err = net
        .xdp(&[p1.desired(1, 50, &[XDP_PASS], 1), bad])
        .unwrap_err();
    assert!(matches!(err, NetError::NotFound(_)), "{err}");
    assert_eq!(net.fs.entries_under("dispatchers"), before);
    let st = hook_state(&net.paths, &net.iface, HookKind::Xdp)
        .unwrap()
        .unwrap();
    assert!(st.attached);
    assert_eq!(st.dispatcher, good.dispatcher);
    net.send(0, 5);
    net.maps.wait_count(1, 5);
    assert_eq!(net.maps.count(2), 0);
    net.xdp(&[]).unwrap();
}
