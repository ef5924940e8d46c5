//! The cross-process lock: one writer at a time across the daemon and any
//! embedded CLI; readers share.
//!
//! flock(2) locks belong to the open file, not the thread: two threads of the
//! daemon would both "hold" it, and the first to finish would unlock it under
//! the other. So the file lock is taken and released under an in-process
//! mutex, held for as long as the guard lives.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::error::{ManagerError, Result};

/// An open lock file; `exclusive`/`shared` return guards that unlock on drop.
#[derive(Debug)]
pub struct RuntimeLock {
    file: File,
    in_process: Mutex<()>,
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct LockGuard<'a> {
    file: &'a File,
    // Released after the file lock (fields drop after `drop` runs).
    _in_process: MutexGuard<'a, ()>,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Unlock errors cannot be acted on; closing the file would release it anyway.
        let _ = self.file.unlock();
    }
}

impl RuntimeLock {
    /// Opens (creating) the lock file, mode 0600.
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                ManagerError::internal(format!("cannot open lock {}: {e}", path.display()))
            })?;
        Ok(RuntimeLock {
            file,
            in_process: Mutex::new(()),
        })
    }

    fn in_process(&self) -> MutexGuard<'_, ()> {
        // A panic under the guard leaves nothing to repair: the file lock was
        // released by the guard's drop during unwinding.
        self.in_process
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Blocks until this process is the only writer.
    pub fn exclusive(&self) -> Result<LockGuard<'_>> {
        let guard = self.in_process();
        self.file
            .lock()
            .map_err(|e| ManagerError::internal(format!("cannot take the writer lock: {e}")))?;
        Ok(LockGuard {
            file: &self.file,
            _in_process: guard,
        })
    }

    /// Blocks until no writer holds the lock.
    pub fn shared(&self) -> Result<LockGuard<'_>> {
        let guard = self.in_process();
        self.file
            .lock_shared()
            .map_err(|e| ManagerError::internal(format!("cannot take the reader lock: {e}")))?;
        Ok(LockGuard {
            file: &self.file,
            _in_process: guard,
        })
    }
}
