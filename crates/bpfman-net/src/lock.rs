//! Serialises changes to network hooks across threads and processes.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::NetError;
use crate::layout::{NetPaths, mkdir_p};

/// An exclusive flock(2) on a directory, released on drop.
pub(crate) struct HookLock {
    _file: Option<File>,
}

impl HookLock {
    /// Locks `<fs>/dispatchers` (creating it): one hook change at a time.
    pub(crate) fn acquire(paths: &NetPaths) -> Result<HookLock, NetError> {
        let dir = paths.dispatchers_dir();
        mkdir_p(&dir)?;
        lock_dir(&dir).map(|f| HookLock { _file: Some(f) })
    }

    /// Locks libxdp's state directory the way libxdp does, if it exists, so
    /// `xdp-loader` never reads half-written revision pins.
    pub(crate) fn acquire_libxdp(dir: &Path) -> Result<HookLock, NetError> {
        if !dir.is_dir() {
            return Ok(HookLock { _file: None });
        }
        lock_dir(dir).map(|f| HookLock { _file: Some(f) })
    }
}

fn lock_dir(dir: &Path) -> Result<File, NetError> {
    let f = File::open(dir).map_err(|e| NetError::io("opening lock directory", dir, e))?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if r != 0 {
        return Err(NetError::io("locking", dir, io::Error::last_os_error()));
    }
    Ok(f)
}
