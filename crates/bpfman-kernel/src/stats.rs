//! Run-time statistics of programs. The kernel counts each program's runs
//! (`run_cnt`) and nanoseconds (`run_time_ns`) only while statistics are on:
//! while some process holds a `BPF_ENABLE_STATS` fd, or the
//! `kernel.bpf_stats_enabled` sysctl is set. Counting costs a few ns per run,
//! so bpfman turns it on only while something reads it (the daemon's metrics,
//! `bpfman top`).

use std::os::fd::{AsFd, OwnedFd};

use crate::error::KernelError;
use crate::sys::{self, IdSpace};

/// Statistics stay on while this lives; dropping it closes the fd, and the
/// kernel stops counting once no one else holds one.
/// (The fd shows in `/proc/PID/fd` as `anon_inode:bpf-stats`.)
#[derive(Debug)]
pub struct RunStatsGuard {
    _fd: OwnedFd,
}

/// Turns run-time statistics on for as long as the guard lives (Linux 5.8+;
/// needs CAP_SYS_ADMIN).
pub fn enable_run_time_stats() -> Result<RunStatsGuard, KernelError> {
    sys::enable_run_time_stats()
        .map(|fd| RunStatsGuard { _fd: fd })
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                KernelError::Unsupported(
                    "cannot turn BPF run-time statistics on: BPF_ENABLE_STATS needs CAP_SYS_ADMIN"
                        .to_string(),
                )
            } else {
                KernelError::io("turning BPF run-time statistics on (BPF_ENABLE_STATS)", e)
            }
        })
}

/// What the kernel counted for one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramRunStats {
    /// Kernel program id.
    pub id: u32,
    /// Kernel `bpf_prog_type`.
    pub program_type: u32,
    /// Runs counted while statistics were on.
    pub run_cnt: u64,
    /// Nanoseconds spent in those runs.
    pub run_time_ns: u64,
}

/// Run statistics of every program in the kernel, ascending by id (one info
/// call per program; map ids and the rest of the facts are not read).
pub fn program_run_stats() -> Result<Vec<ProgramRunStats>, KernelError> {
    let ids =
        sys::all_ids(IdSpace::Program).map_err(|e| KernelError::io("listing program ids", e))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        // A program may go away between listing and opening: skip it.
        let Some(fd) = sys::fd_by_id(IdSpace::Program, id)
            .map_err(|e| KernelError::io(format!("opening program {id}"), e))?
        else {
            continue;
        };
        let info = sys::prog_info(fd.as_fd())
            .map_err(|e| KernelError::io(format!("reading program info of {id}"), e))?;
        out.push(ProgramRunStats {
            id,
            program_type: info.type_,
            run_cnt: info.run_cnt,
            run_time_ns: info.run_time_ns,
        });
    }
    Ok(out)
}
