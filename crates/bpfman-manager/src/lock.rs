//! The cross-process lock: one writer at a time across the daemon and any
//! embedded CLI; readers share.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{ManagerError, Result};

/// An open lock file; `exclusive`/`shared` return guards that unlock on drop.
#[derive(Debug)]
pub struct RuntimeLock {
    file: File,
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct LockGuard<'a> {
    file: &'a File,
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
        Ok(RuntimeLock { file })
    }

    /// Blocks until this process is the only writer.
    pub fn exclusive(&self) -> Result<LockGuard<'_>> {
        self.file
            .lock()
            .map_err(|e| ManagerError::internal(format!("cannot take the writer lock: {e}")))?;
        Ok(LockGuard { file: &self.file })
    }

    /// Blocks until no writer holds the lock.
    pub fn shared(&self) -> Result<LockGuard<'_>> {
        self.file
            .lock_shared()
            .map_err(|e| ManagerError::internal(format!("cannot take the reader lock: {e}")))?;
        Ok(LockGuard { file: &self.file })
    }
}
