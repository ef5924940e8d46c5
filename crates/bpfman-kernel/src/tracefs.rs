//! Finding (and if need be mounting) tracefs, where tracepoints are listed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MsFlags, mount};

use crate::error::KernelError;

/// Where tracefs lives, in the order aya looks.
const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Serialises the check-then-mount so concurrent attaches mount at most once.
static MOUNT_LOCK: Mutex<()> = Mutex::new(());

/// The tracefs directory already mounted, if any (it has an `events` dir).
pub fn find_tracefs() -> Option<PathBuf> {
    CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
        .map(Path::to_path_buf)
}

/// The tracefs directory, mounting tracefs at `/sys/kernel/tracing` when
/// nothing is mounted there yet (as systemd does at boot). aya reads
/// tracepoint ids from that same place, so it must be mounted before
/// aya first looks.
pub fn tracefs() -> Result<PathBuf, KernelError> {
    // A poisoned lock only means another attach panicked; the check is still sound.
    let _guard = MOUNT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = find_tracefs() {
        return Ok(p);
    }
    let target = Path::new(CANDIDATES[0]);
    if !target.is_dir() {
        return Err(KernelError::Unsupported(format!(
            "this kernel has no tracefs ({} does not exist)",
            target.display()
        )));
    }
    mount(
        Some("tracefs"),
        target,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| {
        KernelError::io(
            format!(
                "tracefs is not mounted; mount -t tracefs tracefs {}",
                target.display()
            ),
            std::io::Error::from_raw_os_error(e as i32),
        )
    })?;
    find_tracefs().ok_or_else(|| {
        KernelError::Unsupported(format!(
            "tracefs mounted at {} has no events directory",
            target.display()
        ))
    })
}
