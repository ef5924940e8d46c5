//! TCX: the kernel's own multi-program TC hooks (Linux 6.6+). No dispatcher:
//! each program gets its own bpf_link, placed before or after bpfman's other
//! links on the hook so that the kernel's order follows priority, then
//! attach order.

use std::os::fd::AsFd;
use std::path::Path;

use aya_obj::generated::{
    BPF_F_AFTER, BPF_F_BEFORE, BPF_F_ID, BPF_F_LINK, bpf_attach_type, bpf_prog_type,
};
use bpfman_core::dispatcher::{TcxAnchor, tcx_anchor};
use bpfman_core::spec::Direction;
use bpfman_core::{KernelLinkId, ProgramId};
use bpfman_kernel::sys;

use crate::error::NetError;
use crate::layout::{mkdir_p, unpin};
use crate::netns::{Iface, Presence, presence};

/// One program on a TCX hook, in the kernel's run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcxProgram {
    /// 0-based run position.
    pub position: u32,
    /// Kernel program id.
    pub program_id: ProgramId,
    /// Kernel link id (`None` for programs attached without a link).
    pub kernel_link_id: Option<KernelLinkId>,
}

fn attach_type(direction: Direction) -> bpf_attach_type {
    match direction {
        Direction::Ingress => bpf_attach_type::BPF_TCX_INGRESS,
        Direction::Egress => bpf_attach_type::BPF_TCX_EGRESS,
    }
}

fn query_error(iface: &Iface, e: std::io::Error) -> NetError {
    if e.raw_os_error() == Some(libc::EINVAL) {
        NetError::Unsupported(format!(
            "TCX is not available for {} (it needs Linux 6.6 or later)",
            iface.describe()
        ))
    } else {
        NetError::kernel(format!("querying TCX on {}", iface.describe()), e)
    }
}

/// Attaches the SCHED_CLS program pinned at `program_pin` to the TCX hook
/// (`direction`) of `iface` and pins its link at `link_pin`. `others` are
/// bpfman's links already on that hook as `(priority, kernel link id)`; the
/// new link goes before the first of them with a higher priority value, else
/// after the last, so equal priorities keep attach order. Returns the kernel
/// link id. Concurrent changes to the hook are detected (the kernel's hook
/// revision) and the placement is recomputed.
pub fn attach_tcx(
    iface: &Iface,
    direction: Direction,
    program_pin: &Path,
    priority: i32,
    others: &[(i32, KernelLinkId)],
    link_pin: &Path,
) -> Result<KernelLinkId, NetError> {
    let (prog, info) = sys::open_prog(program_pin).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NetError::NotFound(format!(
                "program pin {} does not exist",
                program_pin.display()
            ))
        } else {
            NetError::io("opening program pin", program_pin, e)
        }
    })?;
    if info.type_ != bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS as u32 {
        return Err(NetError::InvalidArgument(format!(
            "program '{}' at {} is not a TC (SCHED_CLS) program",
            sys::c_name(&info.name),
            program_pin.display()
        )));
    }
    let ns = match presence(iface)? {
        Presence::Live(ns) => ns,
        Presence::Vanished(why) => return Err(NetError::NotFound(why)),
    };
    let at = attach_type(direction);
    let link = ns.run(|| {
        let mut attempts = 0;
        loop {
            let (chain, revision) =
                sys::prog_query(iface.ifindex, at).map_err(|e| query_error(iface, e))?;
            // bpfman's links in kernel order.
            let ordered: Vec<(i32, KernelLinkId)> = chain
                .iter()
                .filter_map(|e| {
                    others
                        .iter()
                        .find(|(_, l)| l.get() == e.link_id && e.link_id != 0)
                        .copied()
                })
                .collect();
            let (flags, relative) = match tcx_anchor(priority, &ordered) {
                TcxAnchor::BeforeLink(l) => (BPF_F_BEFORE | BPF_F_LINK | BPF_F_ID, l.get()),
                TcxAnchor::AfterLink(l) => (BPF_F_AFTER | BPF_F_LINK | BPF_F_ID, l.get()),
                TcxAnchor::Last => (0, 0),
            };
            match sys::link_create_tcx(prog.as_fd(), iface.ifindex, at, flags, relative, revision) {
                Ok(fd) => return Ok(fd),
                Err(e) if e.raw_os_error() == Some(libc::ESTALE) && attempts < 10 => attempts += 1,
                Err(e) => {
                    return Err(NetError::kernel(
                        format!("attaching TCX to {}", iface.describe()),
                        e,
                    ));
                }
            }
        }
    })?;
    if let Some(parent) = link_pin.parent() {
        mkdir_p(parent)?;
    }
    // If pinning fails, dropping `link` detaches it again.
    sys::obj_pin(link.as_fd(), link_pin).map_err(|e| NetError::io("pinning", link_pin, e))?;
    let id = sys::link_info(link.as_fd())
        .map_err(|e| NetError::kernel("reading the new TCX link", e))?
        .id;
    Ok(KernelLinkId(id))
}

/// Detaches a TCX link and removes its pin; a missing pin is fine. When
/// this returns the program no longer runs. Works after the namespace is
/// gone too (the link is then already defunct).
pub fn detach_tcx(link_pin: &Path) -> Result<(), NetError> {
    match sys::open_link(link_pin) {
        Ok((fd, _)) => {
            if let Err(e) = sys::link_detach(fd.as_fd()) {
                log::warn!(
                    "detaching TCX link {}: {e}; unpinning it anyway",
                    link_pin.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(NetError::io("opening TCX link", link_pin, e)),
    }
    unpin(link_pin)
}

/// The programs on a TCX hook, in run order (for `get` and reconciliation).
/// An interface that no longer exists has none.
pub fn tcx_chain(iface: &Iface, direction: Direction) -> Result<Vec<TcxProgram>, NetError> {
    let ns = match presence(iface)? {
        Presence::Live(ns) => ns,
        Presence::Vanished(_) => return Ok(Vec::new()),
    };
    let at = attach_type(direction);
    let (chain, _) =
        ns.run(|| sys::prog_query(iface.ifindex, at).map_err(|e| query_error(iface, e)))?;
    Ok(chain
        .iter()
        .enumerate()
        .map(|(i, e)| TcxProgram {
            position: i as u32,
            program_id: ProgramId(e.prog_id),
            kernel_link_id: (e.link_id != 0).then_some(KernelLinkId(e.link_id)),
        })
        .collect())
}
