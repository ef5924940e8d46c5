//! A recording fake of the host for executor tests: a set of live paths
//! and the links each dispatcher hook runs, that fails the k-th forward
//! effect and keeps a journal of every effect done, forward and undo. No
//! root, no kernel.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bpfman_core::dispatcher::HookKey;
use bpfman_core::model::ProgramRecord;
use bpfman_core::spec::AttachSpec;
use bpfman_core::{KernelLinkId, LinkId, ProgramKind};
use bpfman_net::NetPaths;

use crate::error::{ManagerError, Result};
use crate::undo::{AttachEffects, Effects, Held, Hook, TcxAttach};

/// Kernel link ids the fake hands out are this plus the forward step.
pub(crate) const FAKE_KERNEL_LINK: u32 = 100;

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
    /// The bpffs the hooks' pin directories are under.
    pub(crate) fs: PathBuf,
    /// The links the store records on each dispatcher hook.
    pub(crate) recorded: BTreeMap<HookKey, BTreeSet<LinkId>>,
    /// The links each dispatcher hook runs, as the kernel would.
    pub(crate) hooks: BTreeMap<HookKey, BTreeSet<LinkId>>,
}

/// One handle on the shared state: executors take the loaded object and the
/// host as two handles.
pub(crate) struct Fake<'a>(pub(crate) &'a RefCell<State>);

impl Fake<'_> {
    /// Counts a forward effect; the one at `fail_at` fails. Returns its
    /// index.
    fn step(&mut self, what: &'static str) -> Result<usize> {
        let mut s = self.0.borrow_mut();
        let k = s.forward;
        s.forward += 1;
        if s.fail_at == Some(k) {
            return Err(ManagerError::internal(format!("fake failure at {what}")));
        }
        Ok(k)
    }

    /// A forward effect that creates `p` as a kernel link; its fake id.
    fn link(&mut self, what: &'static str, p: &Path) -> Result<KernelLinkId> {
        let k = self.0.borrow().forward;
        self.make(what, p)?;
        let k = u32::try_from(k).map_err(|_| ManagerError::internal("too many fake steps"))?;
        Ok(KernelLinkId(FAKE_KERNEL_LINK + k))
    }

    /// Makes a hook run `links`, journaled as `what` on its pin directory,
    /// which it returns.
    fn set_hook(
        &mut self,
        what: &'static str,
        hook: &Hook,
        links: BTreeSet<LinkId>,
    ) -> Result<PathBuf> {
        let mut s = self.0.borrow_mut();
        let key = hook.key();
        let dir = NetPaths::from_bpffs(&s.fs)
            .hook_dir(&key)
            .ok_or_else(|| ManagerError::internal(format!("hook {key} has no dispatcher")))?;
        s.journal.push((what, dir.clone()));
        s.hooks.insert(key, links);
        Ok(dir)
    }

    /// The links the store records on a hook.
    fn recorded(&self, hook: &Hook) -> BTreeSet<LinkId> {
        let s = self.0.borrow();
        s.recorded.get(&hook.key()).cloned().unwrap_or_default()
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
    fn restore_hook(&mut self, hook: &Hook) -> Result<()> {
        let recorded = self.recorded(hook);
        self.set_hook("restore-hook", hook, recorded).map(drop)
    }
}

impl AttachEffects for Fake<'_> {
    fn attach_link(
        &mut self,
        _: &Path,
        _: ProgramKind,
        _: &AttachSpec,
        pin: &Path,
    ) -> Result<Option<KernelLinkId>> {
        self.link("attach-link", pin).map(Some)
    }
    fn attach_tcx(&mut self, t: &TcxAttach<'_>) -> Result<KernelLinkId> {
        self.link("attach-tcx", t.pin)
    }
    fn attach_dispatched(
        &mut self,
        _: &ProgramRecord,
        _: &AttachSpec,
        link_id: LinkId,
        hook: &Hook,
    ) -> Result<(PathBuf, Option<KernelLinkId>)> {
        let k = self.step("apply-hook")?;
        let mut links = self.recorded(hook);
        links.insert(link_id);
        let dir = self.set_hook("apply-hook", hook, links)?;
        // Only XDP hooks are attached by a link of their own.
        let k = u32::try_from(k).map_err(|_| ManagerError::internal("too many fake steps"))?;
        let xdp = (hook.kind == bpfman_core::dispatcher::HookKind::Xdp)
            .then_some(KernelLinkId(FAKE_KERNEL_LINK + k));
        Ok((dir, xdp))
    }
    fn apply_hook(&mut self, hook: &Hook, skip: &BTreeSet<LinkId>) -> Result<()> {
        self.step("apply-hook")?;
        let links = self.recorded(hook).difference(skip).copied().collect();
        self.set_hook("apply-hook", hook, links).map(drop)
    }
}
