//! A recording fake of the host for executor tests: a set of live paths
//! that fails the k-th forward effect and keeps a journal of every effect
//! done, forward and undo. No root, no kernel.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{ManagerError, Result};
use crate::undo::{Effects, Held};

/// The fake host's state.
#[derive(Default)]
pub(crate) struct State {
    /// Paths that exist (pins and directories alike).
    pub(crate) live: BTreeSet<PathBuf>,
    /// Every effect done, in order: `(what, path)`.
    pub(crate) journal: Vec<(&'static str, PathBuf)>,
    /// Forward effects tried so far.
    pub(crate) forward: usize,
    /// The forward effect (0-based) that fails.
    pub(crate) fail_at: Option<usize>,
}

/// One handle on the shared state: executors take the loaded object and the
/// host as two handles.
pub(crate) struct Fake<'a>(pub(crate) &'a RefCell<State>);

impl Fake<'_> {
    /// Counts a forward effect; the one at `fail_at` fails.
    fn step(&mut self, what: &'static str) -> Result<()> {
        let mut s = self.0.borrow_mut();
        let k = s.forward;
        s.forward += 1;
        if s.fail_at == Some(k) {
            return Err(ManagerError::internal(format!("fake failure at {what}")));
        }
        Ok(())
    }

    /// A forward effect that creates `p`.
    pub(crate) fn make(&mut self, what: &'static str, p: &Path) -> Result<()> {
        self.step(what)?;
        let mut s = self.0.borrow_mut();
        s.journal.push((what, p.to_path_buf()));
        s.live.insert(p.to_path_buf());
        Ok(())
    }

    /// An undo effect that removes `p` (undo never fails here, but a
    /// directory with something in it cannot go).
    fn remove(&mut self, what: &'static str, p: &Path) -> Result<()> {
        let mut s = self.0.borrow_mut();
        if what == "rmdir" && s.live.iter().any(|q| q.parent() == Some(p)) {
            return Err(ManagerError::internal(format!(
                "{} is not empty",
                p.display()
            )));
        }
        s.journal.push((what, p.to_path_buf()));
        s.live.remove(p);
        Ok(())
    }

    /// A forward effect that removes `p`; false when there is nothing to
    /// remove (or, for a directory, when something is still in it).
    fn take(&mut self, what: &'static str, p: &Path) -> Result<bool> {
        self.step(what)?;
        let mut s = self.0.borrow_mut();
        if !s.live.contains(p) || s.live.iter().any(|q| q.parent() == Some(p)) {
            return Ok(false);
        }
        s.journal.push((what, p.to_path_buf()));
        s.live.remove(p);
        Ok(true)
    }
}

impl Effects for Fake<'_> {
    fn create_dir(&mut self, dir: &Path) -> Result<()> {
        self.make("mkdir", dir)
    }
    fn remove_dir(&mut self, dir: &Path) -> Result<()> {
        self.remove("rmdir", dir)
    }
    fn remove_dir_if_empty(&mut self, dir: &Path) -> Result<bool> {
        self.take("rmdir", dir)
    }
    fn unpin(&mut self, pin: &Path) -> Result<()> {
        self.remove("unpin", pin)
    }
    fn release(&mut self, pin: &Path) -> Result<Option<Held>> {
        Ok(self.take("unpin", pin)?.then_some(Held::Fake))
    }
    fn repin(&mut self, _: &Held, pin: &Path) -> Result<()> {
        self.make("repin", pin)
    }
    fn unmount(&mut self, path: &Path) -> Result<()> {
        self.remove("unmount", path)
    }
}
