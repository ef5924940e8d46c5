//! Network attach: XDP and TC through bpfman-net's dispatchers, TCX through
//! the kernel's multi-attach. The store records each link's hook (namespace
//! inode + interface index); after every change the manager hands bpfman-net
//! the complete recorded set of a hook and it makes the kernel run exactly
//! that, atomically. Undo is the same call with the previous set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bpfman_core::dispatcher::{HookKey, HookKind};
use bpfman_core::model::{LinkRecord, NetLinkRecord, ProgramRecord};
use bpfman_core::spec::{AttachSpec, XdpMode};
use bpfman_core::{KernelLinkId, LinkId};
use bpfman_net::{DesiredProgram, ExtensionSource, HookState, Iface, NetPaths};
use bpfman_store::Store;
use sha2::{Digest, Sha256};

use crate::error::{ManagerError, Result};
use crate::{Manager, path_str};

/// The hook an attach spec targets: kind, interface, namespace path
/// (`None` for a TC/TCX spec not yet resolved, which has no direction).
pub(crate) fn hook_of(spec: &AttachSpec) -> Option<(HookKind, &str, Option<&str>)> {
    match spec {
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

fn priority_of(spec: &AttachSpec) -> (i32, Vec<i32>) {
    match spec {
        AttachSpec::Xdp {
            priority,
            proceed_on,
            ..
        }
        | AttachSpec::Tc {
            priority,
            proceed_on,
            ..
        } => (*priority, proceed_on.clone()),
        AttachSpec::Tcx { priority, .. } => (*priority, Vec::new()),
        _ => (0, Vec::new()),
    }
}

fn mode_of(spec: &AttachSpec) -> XdpMode {
    match spec {
        AttachSpec::Xdp { mode, .. } => *mode,
        _ => XdpMode::Native,
    }
}

/// sha256 hex of object bytes.
pub(crate) fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The recorded interface of a link, without touching the namespace.
pub(crate) fn recorded_iface(n: &NetLinkRecord) -> Iface {
    Iface {
        netns: n.netns.as_ref().map(PathBuf::from),
        name: n.iface.clone(),
        netns_ino: n.hook.netns_ino,
        ifindex: n.hook.ifindex,
    }
}

/// What attaching a network program produced, for the link row.
pub(crate) struct NetAttached {
    pub(crate) record: NetLinkRecord,
    pub(crate) pin_path: String,
    pub(crate) kernel_link_id: Option<KernelLinkId>,
    iface: Iface,
    mode: XdpMode,
}

impl Manager {
    pub(crate) fn net_paths(&self) -> NetPaths {
        NetPaths::new(&self.paths)
    }

    /// What a dispatcher needs to run one program for one link.
    fn desired(
        &self,
        store: &Store,
        prog: &ProgramRecord,
        link_id: LinkId,
        spec: &AttachSpec,
    ) -> Result<DesiredProgram> {
        let elf = store.object_of(prog.id)?.ok_or_else(|| {
            ManagerError::precondition(format!(
                "program {} has no recorded object bytes: unload and load it again",
                prog.id
            ))
        })?;
        let maps = store
            .maps_of(prog.map_owner_id)?
            .into_iter()
            .map(|m| (m.name, PathBuf::from(m.pin_path)))
            .collect();
        let (priority, proceed_on) = priority_of(spec);
        Ok(DesiredProgram {
            link_id: link_id.get(),
            program_pin: PathBuf::from(&prog.pin_path),
            extension: ExtensionSource {
                // With section names aya reads as bpfman's table says (`tc`).
                elf: Arc::from(bpfman_kernel::object_for_aya(&elf)?),
                function: prog.name.clone(),
                maps,
                globals: prog.global_data.clone(),
            },
            priority,
            proceed_on,
            attached_seq: u64::from(link_id.get()),
        })
    }

    /// Makes a dispatcher hook run its recorded links minus `skip`, plus `extra`.
    fn apply_hook(
        &self,
        store: &Store,
        iface: &Iface,
        kind: HookKind,
        mode: XdpMode,
        extra: Option<DesiredProgram>,
        skip: &BTreeSet<LinkId>,
    ) -> Result<HookState> {
        let key = iface.key(kind);
        let mut desired = Vec::new();
        for n in store.net_links_on(&key)? {
            if skip.contains(&n.link_id) {
                continue;
            }
            let link = store.get_link(n.link_id)?.ok_or_else(|| {
                ManagerError::internal(format!("link {} has a hook but no row", n.link_id))
            })?;
            let prog = store.get_program(link.program_id)?.ok_or_else(|| {
                ManagerError::internal(format!(
                    "link {} names missing program {}",
                    link.id, link.program_id
                ))
            })?;
            desired.push(self.desired(store, &prog, link.id, &link.spec)?);
        }
        desired.extend(extra);
        let paths = self.net_paths();
        Ok(match kind {
            HookKind::Xdp => bpfman_net::apply_xdp(&paths, iface, mode, &desired)?,
            HookKind::TcIngress | HookKind::TcEgress => {
                let dir = kind
                    .direction()
                    .ok_or_else(|| ManagerError::internal("TC hook without a direction"))?;
                bpfman_net::apply_tc(&paths, iface, dir, &desired)?
            }
            HookKind::TcxIngress | HookKind::TcxEgress => {
                return Err(ManagerError::internal("TCX hooks have no dispatcher"));
            }
        })
    }

    /// Attaches a network program (kernel side only; the caller records it).
    pub(crate) fn attach_net(
        &self,
        store: &Store,
        prog: &ProgramRecord,
        spec: &AttachSpec,
        link_id: LinkId,
    ) -> Result<NetAttached> {
        let (kind, iface_name, netns) =
            hook_of(spec).ok_or_else(|| ManagerError::internal("not a network attach"))?;
        if let Some(ns) = netns {
            check_netns_path(ns)?;
        }
        let iface = Iface::resolve(netns.map(Path::new), iface_name)?;
        let key = iface.key(kind);
        let record = NetLinkRecord {
            link_id,
            hook: key,
            iface: iface_name.to_string(),
            netns: netns.map(str::to_string),
        };
        let mode = mode_of(spec);
        if let Some(direction) = kind.direction().filter(|_| !kind.uses_dispatcher()) {
            // TCX: one kernel link per program, placed by priority among ours.
            let mut others = Vec::new();
            for n in store.net_links_on(&key)? {
                if let Some(l) = store.get_link(n.link_id)?
                    && let Some(k) = l.kernel_link_id
                {
                    others.push((priority_of(&l.spec).0, k));
                }
            }
            let pin = self.paths.link_pin(link_id);
            let (priority, _) = priority_of(spec);
            let k = bpfman_net::attach_tcx(
                &iface,
                direction,
                Path::new(&prog.pin_path),
                priority,
                &others,
                &pin,
            )?;
            return Ok(NetAttached {
                record,
                pin_path: path_str(&pin),
                kernel_link_id: Some(k),
                iface,
                mode,
            });
        }
        let new = self.desired(store, prog, link_id, spec)?;
        let state = self.apply_hook(store, &iface, kind, mode, Some(new), &BTreeSet::new())?;
        Ok(NetAttached {
            record,
            pin_path: path_str(&state.pin_dir),
            kernel_link_id: state.kernel_link_id.map(KernelLinkId),
            iface,
            mode,
        })
    }

    /// Undoes `attach_net` after a later step failed (the link is not recorded).
    pub(crate) fn undo_attach_net(&self, store: &Store, a: &NetAttached) {
        let r = if a.record.hook.kind.uses_dispatcher() {
            self.apply_hook(
                store,
                &a.iface,
                a.record.hook.kind,
                a.mode,
                None,
                &BTreeSet::new(),
            )
            .map(|_| ())
        } else {
            bpfman_kernel::unpin(Path::new(&a.pin_path)).map_err(ManagerError::from)
        };
        if let Err(e) = r {
            tracing::error!(
                "undo of network attach {} failed: {e}; run `bpfman gc --prune`",
                a.record.link_id
            );
        }
    }

    /// Removes dispatcher links from their hooks (kernel side): each touched
    /// hook runs its recorded set minus `links`. Returns the hooks touched, so
    /// a later failure can restore them with [`Manager::restore_hooks`].
    pub(crate) fn detach_net(
        &self,
        store: &Store,
        links: &[&LinkRecord],
    ) -> Result<Vec<(NetLinkRecord, XdpMode)>> {
        let skip: BTreeSet<LinkId> = links.iter().map(|l| l.id).collect();
        let mut touched: Vec<(NetLinkRecord, XdpMode)> = Vec::new();
        for l in links {
            let Some(n) = store.net_link(l.id)? else {
                continue;
            };
            if !n.hook.kind.uses_dispatcher() || touched.iter().any(|(t, _)| t.hook == n.hook) {
                continue;
            }
            let mode = mode_of(&l.spec);
            if let Err(e) =
                self.apply_hook(store, &recorded_iface(&n), n.hook.kind, mode, None, &skip)
            {
                self.restore_hooks(store, &touched);
                return Err(e);
            }
            touched.push((n, mode));
        }
        Ok(touched)
    }

    /// Makes hooks run their recorded sets again (undo of `detach_net`).
    pub(crate) fn restore_hooks(&self, store: &Store, hooks: &[(NetLinkRecord, XdpMode)]) {
        for (n, mode) in hooks {
            if let Err(e) = self.apply_hook(
                store,
                &recorded_iface(n),
                n.hook.kind,
                *mode,
                None,
                &BTreeSet::new(),
            ) {
                tracing::error!(
                    "restoring hook {} failed: {e}; run `bpfman gc --prune`",
                    n.hook
                );
            }
        }
    }

    /// Start-up repair: every recorded dispatcher hook runs its recorded set
    /// (a no-op when the kernel already does). Returns what was repaired.
    pub fn reconcile_net(&self) -> Result<Vec<String>> {
        let _lock = self.lock.exclusive()?;
        let store = self.store()?;
        let mut seen: BTreeSet<HookKey> = BTreeSet::new();
        let mut repaired = Vec::new();
        for n in store.list_net_links()? {
            if !n.hook.kind.uses_dispatcher() || !seen.insert(n.hook) {
                continue;
            }
            let mode = store
                .get_link(n.link_id)?
                .map(|l| mode_of(&l.spec))
                .unwrap_or_default();
            match self.apply_hook(
                &store,
                &recorded_iface(&n),
                n.hook.kind,
                mode,
                None,
                &BTreeSet::new(),
            ) {
                Ok(state) if state.changed => {
                    repaired.push(format!("re-applied hook {} ({})", n.hook, n.iface))
                }
                Ok(_) => {}
                Err(e) => repaired.push(format!(
                    "hook {} ({}) could not be repaired: {e}",
                    n.hook, n.iface
                )),
            }
        }
        Ok(repaired)
    }
}

/// A namespace path must be absolute and name a namespace file.
fn check_netns_path(p: &str) -> Result<()> {
    let path = Path::new(p);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ManagerError::invalid(format!(
            "network namespace '{p}' must be an absolute path such as /var/run/netns/NAME or /proc/PID/ns/net"
        )));
    }
    if !path.exists() {
        return Err(ManagerError::not_found(format!(
            "network namespace {p} does not exist"
        )));
    }
    Ok(())
}
