//! bpfman-net: network attach for bpfman.
//!
//! - **XDP and TC** through multi-program dispatchers (our own BPF programs,
//!   embedded; the XDP one speaks libxdp's protocol so `xdp-loader status`
//!   recognises it). The manager calls [`apply_xdp`] / [`apply_tc`] with the
//!   complete desired set of a hook after every attach or detach; this crate
//!   makes the kernel match it with one atomic switch. Where the kernel
//!   refuses extension programs, one program per hook is attached directly
//!   and a second is refused with a clear error (libxdp's behaviour).
//! - **TCX** through the kernel's multi-attach: [`attach_tcx`].
//! - **Network namespaces**: hooks are keyed by namespace inode and
//!   interface index ([`Iface`]); work inside a namespace happens on a
//!   short-lived thread, never on the caller's. Hooks of a deleted namespace
//!   are cleaned by applying the empty set.
//!
//! The pin layout is documented in README.md and [`NetPaths`].

#![warn(missing_docs)]

mod dispatcher;
mod error;
mod hook;
mod layout;
mod lock;
mod netlink;
mod netns;
mod tc;
mod tcx;
mod xdp;

use bpfman_core::dispatcher::HookKind;

pub use bpfman_kernel::sys::{TestRun, test_run};
pub use dispatcher::{ExtensionSource, ExtensionSupport, extension_support};
pub use error::NetError;
pub use hook::{DesiredProgram, DispatcherInfo, HookProgram, HookState};
pub use layout::NetPaths;
pub use netns::{Iface, resolve_iface};
pub use tc::{TC_FILTER_HANDLE, TC_FILTER_PRIORITY, apply_tc};
pub use tcx::{TcxProgram, attach_tcx, detach_tcx, tcx_chain};
pub use xdp::apply_xdp;

/// Reads back what bpfman runs on a dispatcher hook (XDP or TC) of `iface`:
/// programs in order with slot, position and kernel ids, the dispatcher, and
/// whether the kernel attachment is intact. `None` when bpfman has nothing
/// there. For TCX use [`tcx_chain`].
pub fn hook_state(
    paths: &NetPaths,
    iface: &Iface,
    kind: HookKind,
) -> Result<Option<HookState>, NetError> {
    match kind {
        HookKind::Xdp => xdp::xdp_state(paths, iface),
        HookKind::TcIngress | HookKind::TcEgress => {
            let direction = kind
                .direction()
                .ok_or_else(|| NetError::InvalidArgument(format!("{kind} has no direction")))?;
            tc::tc_state(paths, iface, direction)
        }
        HookKind::TcxIngress | HookKind::TcxEgress => Err(NetError::InvalidArgument(format!(
            "{kind} has no dispatcher; use tcx_chain"
        ))),
    }
}

/// Removes a dispatcher hook known only by its key, e.g. pins found by
/// [`NetPaths::list_hooks`] that no link record explains (gc). If the
/// namespace still exists (found by inode among /var/run/netns, /run/netns
/// and /proc/PID/ns/net) and the interface with it, this applies the empty
/// set there: filter, link, dispatcher and pins go. Otherwise only the pins
/// are removed.
pub fn remove_hook(
    paths: &NetPaths,
    key: &bpfman_core::dispatcher::HookKey,
) -> Result<(), NetError> {
    let direction = key.kind.direction();
    if !key.kind.uses_dispatcher() {
        return Err(NetError::InvalidArgument(format!(
            "{} has no dispatcher: its links are ordinary link pins",
            key.kind
        )));
    }
    let live = match netns::find_netns(key.netns_ino) {
        None => None,
        Some(path) => {
            let ns = netns::open_netns(path.as_deref())?;
            // The namespace may have gone between the search and the open.
            if ns.ino == key.netns_ino {
                let ifindex = key.ifindex;
                ns.run(|| netns::if_indextoname(ifindex))?
                    .map(|name| Iface {
                        netns: path,
                        name,
                        netns_ino: key.netns_ino,
                        ifindex,
                    })
            } else {
                None
            }
        }
    };
    match (live, direction) {
        (Some(iface), None) => {
            apply_xdp(paths, &iface, bpfman_core::spec::XdpMode::Native, &[]).map(|_| ())
        }
        (Some(iface), Some(d)) => apply_tc(paths, &iface, d, &[]).map(|_| ()),
        (None, None) => {
            let _lock = lock::HookLock::acquire(paths)?;
            xdp::forget(paths, &paths.xdp_hook_dir(key.netns_ino, key.ifindex))
        }
        (None, Some(d)) => {
            let _lock = lock::HookLock::acquire(paths)?;
            tc::forget(paths, key.netns_ino, key.ifindex, d)
        }
    }
}

/// Opens a pinned BPF program (e.g. a dispatcher's `dispatcher` pin) for
/// [`test_run`].
pub fn open_pinned_program(pin: &std::path::Path) -> Result<std::os::fd::OwnedFd, NetError> {
    bpfman_kernel::sys::open_prog(pin)
        .map(|(fd, _)| fd)
        .map_err(|e| NetError::io("opening pinned program", pin, e))
}

/// Kernel ids of every program bpfman pinned for dispatchers (dispatchers,
/// extension copies, directly attached programs), with their pins: what
/// `list --all` shows as bpfman-owned.
pub fn pinned_programs(
    paths: &NetPaths,
) -> Result<Vec<(bpfman_core::ProgramId, std::path::PathBuf)>, NetError> {
    let mut out = Vec::new();
    let mut stack = vec![paths.dispatchers_dir()];
    while let Some(dir) = stack.pop() {
        for name in layout::read_dir_names(&dir)? {
            let path = dir.join(&name);
            if path.is_dir() {
                stack.push(path);
            } else if (name == "dispatcher"
                || name.ends_with("-prog")
                || name.starts_with("direct-"))
                && let Ok((_, info)) = bpfman_kernel::sys::open_prog(&path)
            {
                out.push((bpfman_core::ProgramId(info.id), path));
            }
        }
    }
    out.sort();
    Ok(out)
}
