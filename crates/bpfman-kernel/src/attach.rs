//! Attaching pinned programs and pinning the resulting links, so that an
//! attachment outlives every handle of the process that made it.

use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeError, UProbeScope};
use aya::programs::{FEntry, FExit, KProbe, ProbeKind, ProgramError, TracePoint, UProbe};
use bpfman_core::{AttachSpec, KernelLinkId, ProgramKind};

use crate::error::{KernelError, chain, errno_name, find_io};
use crate::features::features;
use crate::pin::{ObjectKind, open_pinned};
use crate::sys;
use crate::tracefs::tracefs;

const TRAMPOLINE_EPERM: &str = "this kernel refuses fentry/fexit (trampoline) programs: EPERM";

/// Attach the pinned program and pin the resulting link at `link_pin`; returns the kernel
/// link id (None if the attachment is not a bpf_link).
///
/// `spec` must be resolved (targets filled, see [`AttachSpec::resolve`]).
/// All or nothing: if pinning the link fails, the attachment is dropped.
pub fn attach(
    program_pin: &Path,
    kind: ProgramKind,
    spec: &AttachSpec,
    link_pin: &Path,
) -> Result<Option<KernelLinkId>, KernelError> {
    if !spec.accepts(kind) {
        return Err(KernelError::Other(format!(
            "a {kind} program cannot be attached as {}",
            spec.type_name()
        )));
    }
    check_program_pin(program_pin, kind)?;
    let link = match spec {
        AttachSpec::Tracepoint { tracepoint } => {
            let tp = tracepoint.as_deref().ok_or_else(|| {
                KernelError::Other("tracepoint attach needs GROUP/NAME".to_string())
            })?;
            attach_tracepoint(program_pin, tp)?
        }
        AttachSpec::Kprobe {
            fn_name,
            offset,
            retprobe,
            ..
        } => {
            let f = fn_name
                .as_deref()
                .ok_or_else(|| KernelError::Other("kprobe attach needs a function".to_string()))?;
            attach_kprobe(program_pin, probe_kind(kind, *retprobe), f, *offset)?
        }
        AttachSpec::Uprobe {
            target,
            fn_name,
            offset,
            pid,
            retprobe,
            container_pid,
        } => {
            let target = uprobe_target(target, *container_pid)?;
            let location = match fn_name.as_deref() {
                Some(f) => UProbeAttachLocation::SymbolOffset(f, *offset),
                None => UProbeAttachLocation::AbsoluteOffset(*offset),
            };
            let scope = match pid {
                None => UProbeScope::AllProcesses,
                Some(p) => UProbeScope::OneProcess(
                    u32::try_from(*p)
                        .ok()
                        .and_then(NonZeroU32::new)
                        .ok_or_else(|| {
                            KernelError::Other(format!("pid {p} is not a process id"))
                        })?,
                ),
            };
            let mut prog = UProbe::from_pin(program_pin, probe_kind(kind, *retprobe))
                .map_err(|e| attach_error("opening the uprobe program", &e))?;
            let id = prog
                .attach(location, &target, scope)
                .map_err(|e| uprobe_error(&target, fn_name.as_deref(), &e))?;
            let link = prog
                .take_link(id)
                .map_err(|e| attach_error("taking the uprobe link", &e))?;
            FdLink::try_from(link).map_err(|_| no_bpf_link("uprobe"))?
        }
        AttachSpec::Fentry => {
            let mut prog = FEntry::from_pin(program_pin)
                .map_err(|e| trampoline_error("opening the fentry program", &e))?;
            let id = prog
                .attach()
                .map_err(|e| trampoline_error("attaching fentry", &e))?;
            FdLink::from(
                prog.take_link(id)
                    .map_err(|e| attach_error("taking the fentry link", &e))?,
            )
        }
        AttachSpec::Fexit => {
            let mut prog = FExit::from_pin(program_pin)
                .map_err(|e| trampoline_error("opening the fexit program", &e))?;
            let id = prog
                .attach()
                .map_err(|e| trampoline_error("attaching fexit", &e))?;
            FdLink::from(
                prog.take_link(id)
                    .map_err(|e| attach_error("taking the fexit link", &e))?,
            )
        }
        AttachSpec::Xdp { .. } | AttachSpec::Tc { .. } | AttachSpec::Tcx { .. } => {
            return Err(KernelError::Unsupported(format!(
                "{} attach is not built yet in bpfman-kernel",
                spec.type_name()
            )));
        }
    };
    pin_link(link, link_pin).map(Some)
}

/// Pins `link` and returns its kernel id; if the pin fails the link is
/// dropped here, which detaches it.
fn pin_link(link: FdLink, path: &Path) -> Result<KernelLinkId, KernelError> {
    let id = link
        .info()
        .map(|i| KernelLinkId(i.id()))
        .map_err(|e| KernelError::Other(format!("reading link info: {}", chain(&e))))?;
    link.pin(path).map_err(|e| {
        let context = format!("pinning link at {}", path.display());
        match find_io(&e).and_then(std::io::Error::raw_os_error) {
            Some(errno) => KernelError::io(context, std::io::Error::from_raw_os_error(errno)),
            None => KernelError::Other(format!("{context}: {}", chain(&e))),
        }
    })?;
    Ok(id)
}

/// The pin exists, holds a program, and that program's kernel type fits `kind`.
fn check_program_pin(path: &Path, kind: ProgramKind) -> Result<(), KernelError> {
    let obj = open_pinned(path)
        .map_err(|e| match e {
            KernelError::NotFound(_) => {
                KernelError::NotFound(format!("program pin {} does not exist", path.display()))
            }
            other => other,
        })?
        .expect_kind(ObjectKind::Program, path)?;
    let info = sys::prog_info(obj.as_fd())
        .map_err(|e| KernelError::io(format!("reading program info of {}", path.display()), e))?;
    if info.type_ != kind.kernel_prog_type() {
        return Err(KernelError::Other(format!(
            "the program pinned at {} has kernel type {}, not that of a {kind} program ({})",
            path.display(),
            info.type_,
            kind.kernel_prog_type()
        )));
    }
    Ok(())
}

fn probe_kind(kind: ProgramKind, retprobe: bool) -> ProbeKind {
    if retprobe || matches!(kind, ProgramKind::Kretprobe | ProgramKind::Uretprobe) {
        ProbeKind::Return
    } else {
        ProbeKind::Entry
    }
}

fn attach_tracepoint(program_pin: &Path, tp: &str) -> Result<FdLink, KernelError> {
    bpfman_core::spec::validate_tracepoint(tp).map_err(|e| KernelError::Other(e.to_string()))?;
    let (group, name) = tp
        .split_once('/')
        .ok_or_else(|| KernelError::Other(format!("tracepoint '{tp}' is not GROUP/NAME")))?;
    let tracefs = tracefs()?;
    let dir = tracefs.join("events").join(group).join(name);
    if !dir.is_dir() {
        return Err(KernelError::NotFound(format!(
            "tracepoint {group}/{name} does not exist (no {})",
            dir.display()
        )));
    }
    let mut prog = TracePoint::from_pin(program_pin)
        .map_err(|e| attach_error("opening the tracepoint program", &e))?;
    let id = prog
        .attach(group, name)
        .map_err(|e| attach_error(&format!("attaching to tracepoint {tp}"), &e))?;
    let link = prog
        .take_link(id)
        .map_err(|e| attach_error("taking the tracepoint link", &e))?;
    FdLink::try_from(link).map_err(|_| no_bpf_link("tracepoint"))
}

fn attach_kprobe(
    program_pin: &Path,
    probe: ProbeKind,
    fn_name: &str,
    offset: u64,
) -> Result<FdLink, KernelError> {
    if !features().kprobes {
        return Err(KernelError::Unsupported(
            "this kernel has no kprobe support".to_string(),
        ));
    }
    let mut prog = KProbe::from_pin(program_pin, probe)
        .map_err(|e| attach_error("opening the kprobe program", &e))?;
    let id = prog.attach(fn_name, offset).map_err(|e| {
        if find_io(&e).and_then(std::io::Error::raw_os_error) == Some(libc::ENOENT) {
            KernelError::NotFound(format!("kernel function '{fn_name}' cannot be probed"))
        } else {
            attach_error(&format!("attaching kprobe to {fn_name}"), &e)
        }
    })?;
    let link = prog
        .take_link(id)
        .map_err(|e| attach_error("taking the kprobe link", &e))?;
    FdLink::try_from(link).map_err(|_| no_bpf_link("kprobe"))
}

/// The uprobe target as seen from this process: inside a container, through
/// `/proc/<pid>/root`. Paths are checked here so a missing file is named;
/// bare library names (`libc`) are left to aya's ld.so.cache lookup.
fn uprobe_target(target: &str, container_pid: Option<i32>) -> Result<PathBuf, KernelError> {
    let path = match container_pid {
        Some(pid) => {
            let root = PathBuf::from(format!("/proc/{pid}/root"));
            if !root.exists() {
                return Err(KernelError::NotFound(format!(
                    "container process {pid} does not exist"
                )));
            }
            root.join(target.trim_start_matches('/'))
        }
        None => PathBuf::from(target),
    };
    if target.contains('/') && !path.exists() {
        return Err(KernelError::NotFound(format!(
            "uprobe target {} does not exist",
            path.display()
        )));
    }
    Ok(path)
}

fn uprobe_error(target: &Path, fn_name: Option<&str>, e: &ProgramError) -> KernelError {
    match e {
        ProgramError::UProbeError(UProbeError::SymbolError { symbol, .. }) => {
            KernelError::NotFound(format!(
                "symbol '{symbol}' not found in uprobe target {}",
                target.display()
            ))
        }
        ProgramError::UProbeError(UProbeError::InvalidTarget { path }) => {
            KernelError::NotFound(format!("uprobe target {} does not exist", path.display()))
        }
        other => attach_error(
            &format!(
                "attaching uprobe to {}:{}",
                target.display(),
                fn_name.unwrap_or("")
            ),
            other,
        ),
    }
}

fn trampoline_error(context: &str, e: &ProgramError) -> KernelError {
    if find_io(e).and_then(std::io::Error::raw_os_error) == Some(libc::EPERM) {
        KernelError::Unsupported(TRAMPOLINE_EPERM.to_string())
    } else {
        attach_error(context, e)
    }
}

fn attach_error(context: &str, e: &ProgramError) -> KernelError {
    match find_io(e).and_then(std::io::Error::raw_os_error) {
        Some(errno) => {
            KernelError::Other(format!("{context}: {} ({})", errno_name(errno), chain(e)))
        }
        None => KernelError::Other(format!("{context}: {}", chain(e))),
    }
}

fn no_bpf_link(what: &str) -> KernelError {
    KernelError::Unsupported(format!(
        "this kernel cannot make a bpf_link for {what} attachments, which bpfman needs to pin them"
    ))
}
