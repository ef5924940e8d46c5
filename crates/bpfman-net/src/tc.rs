//! TC hooks (clsact, direct-action `cls_bpf`): bpfman owns one filter per
//! hook, at priority [`TC_FILTER_PRIORITY`] and handle [`TC_FILTER_HANDLE`],
//! whose program is the dispatcher (or the single program when extension
//! programs are refused). Swaps replace that filter's program in place, which
//! the kernel does atomically. The clsact qdisc is added when missing and
//! removed with the last bpfman filter of the interface, only if bpfman added it.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use bpfman_core::dispatcher::{HookKey, HookKind};
use bpfman_core::spec::Direction;

use crate::dispatcher::Flavor;
use crate::error::NetError;
use crate::hook::{self, DesiredProgram, HookOps, HookState};
use crate::layout::{NetPaths, direction_name, mkdir_p, prune_up, remove_if_empty, remove_tree};
use crate::lock::HookLock;
use crate::netlink::{self, Filter};
use crate::netns::{Iface, Presence, presence};

/// Priority of bpfman's filter on a clsact hook (`tc filter show` "pref").
pub const TC_FILTER_PRIORITY: u16 = 50;
/// Handle of bpfman's filter on a clsact hook.
pub const TC_FILTER_HANDLE: u32 = 0xbf;
/// Filter names start with this; a filter at bpfman's priority and handle
/// without it belongs to someone else and is never touched.
const NAME_PREFIX: &str = "bpfman";
/// Marker directory: bpfman added this interface's clsact qdisc.
const QDISC_MARKER: &str = "clsact-created";

/// Makes the TC hook (`direction`) of `iface` run exactly `desired`; see
/// [`crate::apply_xdp`] for the rules, which are the same.
pub fn apply_tc(
    paths: &NetPaths,
    iface: &Iface,
    direction: Direction,
    desired: &[DesiredProgram],
) -> Result<HookState, NetError> {
    let key = iface.key(HookKind::tc(direction));
    let hook_dir = paths.tc_hook_dir(iface.netns_ino, iface.ifindex, direction);
    let _lock = HookLock::acquire(paths)?;
    match presence(iface)? {
        Presence::Vanished(why) => {
            forget(paths, iface.netns_ino, iface.ifindex, direction)?;
            if desired.is_empty() {
                Ok(HookState::empty(key, &hook_dir, true))
            } else {
                Err(NetError::NotFound(why))
            }
        }
        Presence::Live(ns) => ns.run(|| {
            let mut ops = TcOps::new(paths, iface, direction);
            hook::apply(&mut ops, paths, desired)
        }),
    }
}

/// Removes the pins of a TC hook whose interface is gone (its filter and
/// qdisc went with it).
pub(crate) fn forget(
    paths: &NetPaths,
    netns_ino: u64,
    ifindex: u32,
    direction: Direction,
) -> Result<(), NetError> {
    let hook_dir = paths.tc_hook_dir(netns_ino, ifindex, direction);
    let iface_dir = paths.tc_iface_dir(netns_ino, ifindex);
    remove_tree(&hook_dir)?;
    if !iface_dir.join(direction_name(other(direction))).exists() {
        remove_tree(&iface_dir)?;
    }
    prune_up(paths, &hook_dir);
    Ok(())
}

/// Reads the TC hook back (entering the namespace to check the filter).
pub(crate) fn tc_state(
    paths: &NetPaths,
    iface: &Iface,
    direction: Direction,
) -> Result<Option<HookState>, NetError> {
    match presence(iface)? {
        Presence::Vanished(_) => {
            let mut ops = TcOps::new(paths, iface, direction);
            ops.vanished = true;
            hook::read_state(&mut ops)
        }
        Presence::Live(ns) => ns.run(|| {
            let mut ops = TcOps::new(paths, iface, direction);
            hook::read_state(&mut ops)
        }),
    }
}

fn other(d: Direction) -> Direction {
    match d {
        Direction::Ingress => Direction::Egress,
        Direction::Egress => Direction::Ingress,
    }
}

struct TcOps<'a> {
    iface: &'a Iface,
    direction: Direction,
    iface_dir: PathBuf,
    hook_dir: PathBuf,
    /// A filter of someone else at our priority and handle.
    foreign: Option<Filter>,
    /// The interface is gone: report, never touch the kernel.
    vanished: bool,
}

impl<'a> TcOps<'a> {
    fn new(paths: &NetPaths, iface: &'a Iface, direction: Direction) -> Self {
        TcOps {
            iface,
            direction,
            iface_dir: paths.tc_iface_dir(iface.netns_ino, iface.ifindex),
            hook_dir: paths.tc_hook_dir(iface.netns_ino, iface.ifindex, direction),
            foreign: None,
            vanished: false,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} {}",
            self.iface.describe(),
            direction_name(self.direction)
        )
    }

    fn kernel(&self, what: &str, e: std::io::Error) -> NetError {
        NetError::kernel(format!("{what} on {}", self.describe()), e)
    }
}

impl HookOps for TcOps<'_> {
    fn key(&self) -> HookKey {
        self.iface.key(HookKind::tc(self.direction))
    }
    fn flavor(&self) -> Flavor {
        Flavor::Tc
    }
    fn hook_dir(&self) -> &Path {
        &self.hook_dir
    }
    fn revisions_dir(&self) -> PathBuf {
        self.hook_dir.clone()
    }
    fn scope(&self) -> &'static str {
        "interface and direction"
    }

    fn running(&mut self) -> Result<Option<u32>, NetError> {
        if self.vanished {
            return Ok(None);
        }
        let filters = netlink::list_filters(self.iface.ifindex, self.direction)
            .map_err(|e| self.kernel("listing TC filters", e))?;
        let ours = filters
            .into_iter()
            .find(|f| f.priority == TC_FILTER_PRIORITY && f.handle == TC_FILTER_HANDLE);
        match ours {
            Some(f) if f.name.starts_with(NAME_PREFIX) => Ok(Some(f.prog_id)),
            Some(f) => {
                self.foreign = Some(f);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn precheck(&mut self) -> Result<(), NetError> {
        match &self.foreign {
            Some(f) => Err(NetError::Conflict(format!(
                "{} already has a TC filter at priority {TC_FILTER_PRIORITY} handle {TC_FILTER_HANDLE:#x} ('{}') that bpfman does not manage",
                self.describe(),
                f.name
            ))),
            None => Ok(()),
        }
    }

    fn attach(
        &mut self,
        prog: BorrowedFd<'_>,
        name: &str,
        _expected: Option<u32>,
    ) -> Result<(), NetError> {
        let ifindex = self.iface.ifindex;
        let created =
            netlink::add_clsact(ifindex).map_err(|e| self.kernel("adding the clsact qdisc", e))?;
        let marker = self.iface_dir.join(QDISC_MARKER);
        if created && let Err(e) = mkdir_p(&marker) {
            let _ = netlink::del_clsact(ifindex);
            return Err(e);
        }
        // Create, or replace in place: one atomic program switch.
        if let Err(e) = netlink::set_filter(
            ifindex,
            self.direction,
            TC_FILTER_PRIORITY,
            TC_FILTER_HANDLE,
            prog,
            name,
        ) {
            if created {
                let _ = netlink::del_clsact(ifindex);
                let _ = std::fs::remove_dir(&marker);
            }
            return Err(self.kernel("attaching the TC filter", e));
        }
        Ok(())
    }

    fn detach(&mut self) -> Result<(), NetError> {
        if self.vanished || self.foreign.is_some() {
            return Ok(());
        }
        netlink::del_filter(
            self.iface.ifindex,
            self.direction,
            TC_FILTER_PRIORITY,
            TC_FILTER_HANDLE,
        )
        .map_err(|e| self.kernel("removing the TC filter", e))
    }

    fn after_teardown(&mut self) -> Result<(), NetError> {
        let marker = self.iface_dir.join(QDISC_MARKER);
        let other_hook = self.iface_dir.join(direction_name(other(self.direction)));
        if marker.exists() && !other_hook.exists() && !self.vanished {
            // Ours, and no bpfman hook left on it: remove it unless someone
            // else has added filters meanwhile.
            let ifindex = self.iface.ifindex;
            let busy = [Direction::Ingress, Direction::Egress]
                .iter()
                .try_fold(false, |busy, d| {
                    netlink::list_filters(ifindex, *d).map(|f| busy || !f.is_empty())
                });
            match busy {
                Ok(false) => netlink::del_clsact(ifindex)
                    .map_err(|e| self.kernel("removing the clsact qdisc", e))?,
                Ok(true) => log::info!(
                    "keeping the clsact qdisc of {}: it has other filters",
                    self.describe()
                ),
                Err(e) => return Err(self.kernel("listing TC filters", e)),
            }
            remove_tree(&marker)?;
        }
        if !other_hook.exists() {
            // Only a marker of a qdisc that is not ours to remove, or nothing.
            remove_if_empty(&self.iface_dir);
        }
        Ok(())
    }
}
