//! Undo log for kernel and bpffs effects: each effect registers how to reverse
//! it; a failed operation runs them newest first.

use std::path::PathBuf;

use bpfman_kernel::PinnedObject;

/// How to reverse one effect.
pub enum Undo {
    /// A pin was created: remove it.
    RemovePin(PathBuf),
    /// A directory was created: remove it (if still empty).
    RemoveDir(PathBuf),
    /// A pin was removed while we held the object: pin it again.
    Repin(PinnedObject, PathBuf),
    /// A directory was removed: create it again.
    CreateDir(PathBuf),
    /// A mount was made: unmount it.
    Unmount(PathBuf),
}

/// Effects done so far by one operation.
#[derive(Default)]
pub struct UndoLog {
    steps: Vec<Undo>,
}

impl UndoLog {
    /// Records an effect's reversal.
    pub fn push(&mut self, u: Undo) {
        self.steps.push(u);
    }

    /// The operation committed: forget the reversals (held objects are released).
    pub fn commit(self) {
        drop(self.steps);
    }

    /// Reverses every recorded effect, newest first; returns what could not be undone.
    pub fn rollback(mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some(step) = self.steps.pop() {
            let r = match &step {
                Undo::RemovePin(p) => bpfman_kernel::unpin(p).map_err(|e| e.to_string()),
                Undo::RemoveDir(p) => match std::fs::remove_dir(p) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(format!("remove {}: {e}", p.display())),
                },
                Undo::Repin(obj, p) => obj.pin(p).map_err(|e| e.to_string()),
                Undo::Unmount(p) => bpfman_kernel::unmount(p).map_err(|e| e.to_string()),
                Undo::CreateDir(p) => {
                    std::fs::create_dir_all(p).map_err(|e| format!("create {}: {e}", p.display()))
                }
            };
            if let Err(e) = r {
                tracing::error!("undo failed: {e}");
                failures.push(e);
            }
        }
        failures
    }
}
