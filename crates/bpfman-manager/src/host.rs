//! The real host of attach and detach: [`System`]'s bpffs effects, the
//! kernel's attach calls, and the dispatcher hooks, whose recorded sets are
//! read from the store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bpfman_core::model::ProgramRecord;
use bpfman_core::spec::AttachSpec;
use bpfman_core::{KernelLinkId, LinkId, ProgramKind};
use bpfman_store::Store;

use crate::Manager;
use crate::error::Result;
use crate::undo::{AttachEffects, Effects, Held, Hook, System, TcxAttach};

/// This host, for one operation under the writer lock.
pub(crate) struct Host<'a> {
    manager: &'a Manager,
    store: &'a mut Store,
}

impl<'a> Host<'a> {
    /// The host as `manager` sees it through `store`.
    pub(crate) fn new(manager: &'a Manager, store: &'a mut Store) -> Self {
        Host { manager, store }
    }
}

impl Effects for Host<'_> {
    fn create_dir(&mut self, dir: &Path) -> Result<()> {
        System.create_dir(dir)
    }
    fn remove_dir(&mut self, dir: &Path) -> Result<()> {
        System.remove_dir(dir)
    }
    fn remove_dir_if_empty(&mut self, dir: &Path) -> Result<bool> {
        System.remove_dir_if_empty(dir)
    }
    fn unpin(&mut self, pin: &Path) -> Result<()> {
        System.unpin(pin)
    }
    fn release(&mut self, pin: &Path) -> Result<Option<Held>> {
        System.release(pin)
    }
    fn repin(&mut self, obj: &Held, pin: &Path) -> Result<()> {
        System.repin(obj, pin)
    }
    fn unmount(&mut self, path: &Path) -> Result<()> {
        System.unmount(path)
    }
    fn restore_hook(&mut self, hook: &Hook) -> Result<()> {
        self.manager.restore_hook(self.store, hook)
    }
}

impl AttachEffects for Host<'_> {
    fn attach_link(
        &mut self,
        program_pin: &Path,
        kind: ProgramKind,
        spec: &AttachSpec,
        pin: &Path,
    ) -> Result<Option<KernelLinkId>> {
        Ok(bpfman_kernel::attach(program_pin, kind, spec, pin)?)
    }
    fn attach_tcx(&mut self, t: &TcxAttach<'_>) -> Result<KernelLinkId> {
        Ok(bpfman_net::attach_tcx(
            t.iface,
            t.direction,
            t.program_pin,
            t.priority,
            t.neighbours,
            t.pin,
        )?)
    }
    fn attach_dispatched(
        &mut self,
        prog: &ProgramRecord,
        spec: &AttachSpec,
        link_id: LinkId,
        hook: &Hook,
    ) -> Result<(PathBuf, Option<KernelLinkId>)> {
        let state = self
            .manager
            .attach_dispatched(self.store, prog, spec, link_id, hook)?;
        Ok((state.pin_dir, state.kernel_link_id))
    }
    fn apply_hook(&mut self, hook: &Hook, skip: &BTreeSet<LinkId>) -> Result<()> {
        self.manager
            .apply_hook(self.store, &hook.iface, hook.kind, hook.mode, None, skip)?;
        Ok(())
    }
}
