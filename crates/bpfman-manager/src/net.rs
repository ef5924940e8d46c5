//! Network attach: XDP and TC through bpfman-net's dispatchers, TCX through
//! the kernel's multi-attach. The store records each link's hook (namespace
//! inode + interface index); after every change the manager hands bpfman-net
//! the complete recorded set of a hook and it makes the kernel run exactly
//! that, atomically. Undo is the same call with the previous set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bpfman_core::LinkId;
use bpfman_core::dispatcher::{HookKey, HookKind};
use bpfman_core::model::{LinkRecord, NetLinkRecord, ProgramRecord};
use bpfman_core::spec::{AttachSpec, XdpMode};
use bpfman_net::{DesiredProgram, ExtensionSource, HookState, Iface, NetPaths};
use bpfman_store::Store;
use sha2::{Digest, Sha256};

use crate::Manager;
use crate::error::{ManagerError, Result};
use crate::undo::Hook;

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

/// Records the kernel link that now attaches a hook in its links' rows: a
/// hook put back after it was emptied (an undo, a start-up repair) is
/// attached by a new link, and gc would otherwise take the old id's absence
/// for a dead link.
fn record_hook_link(store: &mut Store, key: &HookKey, state: &HookState) -> Result<()> {
    let n = store.write(|tx| tx.set_hook_kernel_link(key, state.kernel_link_id))?;
    if n > 0 {
        tracing::info!(hook = %key, rows = n, "recorded the hook's new kernel link");
    }
    Ok(())
}

/// The recorded links on a hook.
pub(crate) fn links_on(store: &Store, key: &HookKey) -> Result<Vec<LinkRecord>> {
    store
        .net_links_on(key)?
        .into_iter()
        .map(|n| {
            store.get_link(n.link_id)?.ok_or_else(|| {
                ManagerError::internal(format!("link {} has a hook but no row", n.link_id))
            })
        })
        .collect()
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
        Ok(DesiredProgram {
            link_id,
            program_pin: PathBuf::from(&prog.pin_path),
            extension: ExtensionSource {
                // With section names aya reads as bpfman's table says (`tc`).
                elf: Arc::from(bpfman_kernel::object_for_aya(&elf)?),
                function: prog.name.clone(),
                maps,
                globals: prog.global_data.clone(),
            },
            priority: spec.priority(),
            proceed_on: spec.proceed_on().to_vec(),
            attached_seq: u64::from(link_id.get()),
        })
    }

    /// Makes a dispatcher hook run its recorded links minus `skip`, plus `extra`.
    pub(crate) fn apply_hook(
        &self,
        store: &Store,
        iface: &Iface,
        kind: HookKind,
        mode: XdpMode,
        extra: Option<DesiredProgram>,
        skip: &BTreeSet<LinkId>,
    ) -> Result<HookState> {
        let mut desired = Vec::new();
        for link in links_on(store, &iface.key(kind))? {
            if skip.contains(&link.id) {
                continue;
            }
            let prog = store.get_program(link.program_id)?.ok_or_else(|| {
                ManagerError::internal(format!(
                    "link {} names missing program {}",
                    link.id, link.program_id
                ))
            })?;
            desired.push(self.desired(store, &prog, link.id, &link.spec)?);
        }
        desired.extend(extra);
        self.share_aya_features();
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

    /// Resolves a network spec's interface (this reads its namespace): the
    /// interface and the hook key, or `None` for a non-network spec.
    pub(crate) fn net_target(&self, spec: &AttachSpec) -> Result<Option<(Iface, HookKey)>> {
        let Some((kind, iface_name, netns)) = spec.hook() else {
            return Ok(None);
        };
        if let Some(ns) = netns {
            check_netns_path(ns)?;
        }
        let iface = Iface::resolve(netns.map(Path::new), iface_name)?;
        let key = iface.key(kind);
        Ok(Some((iface, key)))
    }

    /// Attaches a network program through its hook's dispatcher (kernel
    /// side only; the caller records it).
    pub(crate) fn attach_dispatched(
        &self,
        store: &Store,
        prog: &ProgramRecord,
        spec: &AttachSpec,
        link_id: LinkId,
        hook: &Hook,
    ) -> Result<HookState> {
        let new = self.desired(store, prog, link_id, spec)?;
        self.apply_hook(
            store,
            &hook.iface,
            hook.kind,
            hook.mode,
            Some(new),
            &BTreeSet::new(),
        )
    }

    /// Makes a hook run its recorded set again: the undo of
    /// `attach_dispatched` (the link is not recorded) and of a detach.
    pub(crate) fn restore_hook(&self, store: &mut Store, hook: &Hook) -> Result<()> {
        let state = self.apply_hook(
            store,
            &hook.iface,
            hook.kind,
            hook.mode,
            None,
            &BTreeSet::new(),
        )?;
        record_hook_link(store, &hook.key(), &state)
    }

    /// Start-up repair: every recorded dispatcher hook runs its recorded set
    /// (a no-op when the kernel already does). Returns what was repaired.
    pub fn reconcile_net(&self) -> Result<Vec<String>> {
        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        let mut seen: BTreeSet<HookKey> = BTreeSet::new();
        let mut repaired = Vec::new();
        for n in store.list_net_links()? {
            if !n.hook.kind.uses_dispatcher() || !seen.insert(n.hook) {
                continue;
            }
            let mode = store
                .get_link(n.link_id)?
                .map(|l| l.spec.xdp_mode())
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
                    repaired.push(match record_hook_link(&mut store, &n.hook, &state) {
                        Ok(()) => format!("re-applied hook {} ({})", n.hook, n.iface),
                        // One hook's row update failing must not stop the
                        // repair of the others.
                        Err(e) => format!(
                            "re-applied hook {} ({}), but recording its kernel link failed: {e}",
                            n.hook, n.iface
                        ),
                    })
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
