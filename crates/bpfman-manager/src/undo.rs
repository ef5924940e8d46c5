//! Undo log for kernel and bpffs effects: each effect registers how to reverse
//! it; a failed operation runs them newest first.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bpfman_core::dispatcher::{HookKey, HookKind};
use bpfman_core::model::ProgramRecord;
use bpfman_core::spec::{AttachSpec, Direction, XdpMode};
use bpfman_core::{KernelLinkId, LinkId, ProgramKind};
use bpfman_kernel::PinnedObject;
use bpfman_net::Iface;

use crate::error::{ManagerError, Result};

/// An object held while its pin is removed, so that undo can pin it again
/// (the open descriptor keeps it alive with no pin at all).
pub enum Held {
    /// A real kernel object.
    Object(PinnedObject),
    /// What the recording fake of the tests holds.
    #[cfg(test)]
    Fake,
}

/// How to reverse one effect.
pub enum Undo {
    /// A pin was created: remove it.
    RemovePin(PathBuf),
    /// A directory was created: remove it (if still empty).
    RemoveDir(PathBuf),
    /// A pin was removed while we held the object: pin it again.
    Repin(Held, PathBuf),
    /// A directory was removed: create it again.
    CreateDir(PathBuf),
    /// A mount was made: unmount it.
    Unmount(PathBuf),
    /// A dispatcher hook was changed: make it run its recorded set again.
    RestoreHook(Hook),
}

/// A dispatcher hook (XDP or TC) as the manager applies it: the interface,
/// which hook on it, and the XDP mode to attach it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The interface (with its namespace).
    pub iface: Iface,
    /// Which hook of the interface.
    pub kind: HookKind,
    /// XDP attach mode (ignored by TC).
    pub mode: XdpMode,
}

impl Hook {
    /// The hook's key, as the store records it.
    pub fn key(&self) -> HookKey {
        self.iface.key(self.kind)
    }
}

/// The bpffs and file-system effects executors and the undo log perform,
/// and the restoring of a dispatcher hook. [`System`] does the former for
/// real through bpfman-kernel (the manager's host adds the hooks); tests
/// put a recording fake in its place to check what a failure leaves behind.
pub trait Effects {
    /// Creates a directory (and its parents) with bpfman's mode.
    fn create_dir(&mut self, dir: &Path) -> Result<()>;
    /// Removes a directory; a missing one is fine, a non-empty one an error.
    fn remove_dir(&mut self, dir: &Path) -> Result<()>;
    /// Removes a directory if it is empty; true when it was removed (a
    /// missing or non-empty one is left as it is).
    fn remove_dir_if_empty(&mut self, dir: &Path) -> Result<bool>;
    /// Removes a pin; a missing one is fine.
    fn unpin(&mut self, pin: &Path) -> Result<()>;
    /// Removes a pin while holding its object; `None` when there is no pin.
    fn release(&mut self, pin: &Path) -> Result<Option<Held>>;
    /// Pins a held object again.
    fn repin(&mut self, obj: &Held, pin: &Path) -> Result<()>;
    /// Unmounts a mount bpfman made.
    fn unmount(&mut self, path: &Path) -> Result<()>;
    /// Makes a dispatcher hook run the links the store records on it (the
    /// undo of an attach or detach through it).
    fn restore_hook(&mut self, hook: &Hook) -> Result<()>;
}

/// A TCX attach: the program, where on the hook, and where to pin the link.
pub(crate) struct TcxAttach<'a> {
    /// The interface.
    pub(crate) iface: &'a Iface,
    /// Ingress or egress.
    pub(crate) direction: Direction,
    /// The program's pin.
    pub(crate) program_pin: &'a Path,
    /// The new link's priority.
    pub(crate) priority: i32,
    /// bpfman's links already on the hook: `(priority, kernel link id)`.
    pub(crate) neighbours: &'a [(i32, KernelLinkId)],
    /// Where the new link is pinned.
    pub(crate) pin: &'a Path,
}

/// The kernel side of attach and detach, beyond the bpffs [`Effects`]:
/// the host (`crate::host::Host`) calls the kernel, and the recording fake
/// of the tests stands in for it.
pub(crate) trait AttachEffects: Effects {
    /// Attaches a program by a bpf_link of its own pinned at `pin`; the
    /// kernel link id when the kernel has one.
    fn attach_link(
        &mut self,
        program_pin: &Path,
        kind: ProgramKind,
        spec: &AttachSpec,
        pin: &Path,
    ) -> Result<Option<KernelLinkId>>;
    /// Attaches a TCX link placed among its neighbours; its kernel link id.
    fn attach_tcx(&mut self, tcx: &TcxAttach<'_>) -> Result<KernelLinkId>;
    /// Makes a dispatcher hook run its recorded links plus `link_id` of
    /// `prog`: the hook's pin directory and the XDP link that attaches it.
    fn attach_dispatched(
        &mut self,
        prog: &ProgramRecord,
        spec: &AttachSpec,
        link_id: LinkId,
        hook: &Hook,
    ) -> Result<(PathBuf, Option<KernelLinkId>)>;
    /// Makes a dispatcher hook run its recorded links minus `skip`.
    fn apply_hook(&mut self, hook: &Hook, skip: &BTreeSet<LinkId>) -> Result<()>;
}

/// The real effects: bpffs, mounts and directories of this host.
pub struct System;

impl Effects for System {
    fn create_dir(&mut self, dir: &Path) -> Result<()> {
        crate::create_dir(dir)
    }
    fn remove_dir(&mut self, dir: &Path) -> Result<()> {
        bpfman_kernel::fs::remove_dir(dir)?;
        Ok(())
    }
    fn remove_dir_if_empty(&mut self, dir: &Path) -> Result<bool> {
        match bpfman_kernel::fs::remove_dir(dir) {
            Ok(removed) => Ok(removed),
            Err(bpfman_kernel::KernelError::DirectoryNotEmpty(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    fn unpin(&mut self, pin: &Path) -> Result<()> {
        Ok(bpfman_kernel::unpin(pin)?)
    }
    fn release(&mut self, pin: &Path) -> Result<Option<Held>> {
        if !pin.exists() {
            return Ok(None);
        }
        let held = bpfman_kernel::open_pinned(pin)?;
        bpfman_kernel::unpin(pin)?;
        Ok(Some(Held::Object(held)))
    }
    fn repin(&mut self, obj: &Held, pin: &Path) -> Result<()> {
        match obj {
            Held::Object(o) => Ok(o.pin(pin)?),
            #[cfg(test)]
            Held::Fake => Err(crate::ManagerError::internal(
                "a fake object on a real host",
            )),
        }
    }
    fn unmount(&mut self, path: &Path) -> Result<()> {
        Ok(bpfman_kernel::unmount(path)?)
    }
    fn restore_hook(&mut self, hook: &Hook) -> Result<()> {
        // The recorded set is in the store, which only the manager's host holds.
        Err(ManagerError::internal(format!(
            "hook {} can be restored only through the manager",
            hook.key()
        )))
    }
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

    /// Reverses every recorded effect on this host, newest first; returns
    /// what could not be undone.
    pub fn rollback(self) -> Vec<String> {
        self.rollback_with(&mut System)
    }

    /// Reverses every recorded effect through `fx`, newest first; returns
    /// what could not be undone (each is logged, and the rest still run).
    pub fn rollback_with(mut self, fx: &mut dyn Effects) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some(step) = self.steps.pop() {
            let r = match &step {
                Undo::RemovePin(p) => fx.unpin(p),
                Undo::RemoveDir(p) => fx.remove_dir(p),
                Undo::Repin(obj, p) => fx.repin(obj, p),
                Undo::Unmount(p) => fx.unmount(p),
                Undo::CreateDir(p) => fx.create_dir(p),
                Undo::RestoreHook(h) => fx.restore_hook(h),
            };
            if let Err(e) = r {
                match &step {
                    Undo::RestoreHook(h) => tracing::error!(
                        "restoring hook {} failed: {e}; run `bpfman gc --prune`",
                        h.key()
                    ),
                    _ => tracing::error!("undo failed: {e}"),
                }
                failures.push(e.to_string());
            }
        }
        failures
    }
}
