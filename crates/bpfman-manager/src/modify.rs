//! Attach, detach and unload: kernel effects with undo, then one store commit.

use std::path::Path;

use bpfman_core::metadata::{self, Metadata};
use bpfman_core::model::{LinkRecord, LinkView};
use bpfman_core::unload::plan_unload;
use bpfman_core::{AttachSpec, LinkId, ProgramId};

use crate::error::{ManagerError, Result};
use crate::fault::FaultPoint;
use crate::undo::{Undo, UndoLog};
use crate::{Manager, create_dir, now, path_str};

impl Manager {
    /// Attaches a managed program; returns the new link.
    pub fn attach(&self, id: ProgramId, spec: AttachSpec, md: Metadata) -> Result<LinkView> {
        metadata::validate(&md)?;
        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        let prog = store.get_program(id)?.ok_or_else(|| {
            ManagerError::not_found(format!("program {id} is not managed by bpfman"))
        })?;
        let spec = spec.resolve(prog.kind, &prog.section, &prog.name)?;
        // Nothing is written before the kernel work succeeds: the id is
        // taken in the final transaction (insert_link moves the counter), and
        // one whose pin a crashed attach left behind is skipped.
        let mut link_id = store.peek_next_link_id()?;
        while self.paths.link_pin(link_id).symlink_metadata().is_ok() {
            link_id = LinkId(
                link_id
                    .get()
                    .checked_add(1)
                    .ok_or_else(|| ManagerError::internal("link ids are exhausted"))?,
            );
        }
        let links_dir = self.paths.links_dir();
        let pin = self.paths.link_pin(link_id);

        let mut undo = UndoLog::default();
        let mut net: Option<crate::net::NetAttached> = None;
        let result = (|| -> Result<LinkRecord> {
            if !links_dir.exists() {
                create_dir(&links_dir)?;
                undo.push(Undo::RemoveDir(links_dir.clone()));
            }
            let (pin_path, kernel_link_id) = if crate::net::hook_of(&spec).is_some() {
                let a = self.attach_net(&store, &prog, &spec, link_id)?;
                let r = (a.pin_path.clone(), a.kernel_link_id);
                net = Some(a);
                r
            } else {
                let k = bpfman_kernel::attach(Path::new(&prog.pin_path), prog.kind, &spec, &pin)?;
                undo.push(Undo::RemovePin(pin.clone()));
                (path_str(&pin), k)
            };
            self.fault(FaultPoint::AttachAttached)?;
            let rec = LinkRecord {
                id: link_id,
                program_id: id,
                spec: spec.clone(),
                pin_path,
                kernel_link_id,
                metadata: md.clone(),
                created_at: now(),
            };
            store.write(|tx| -> Result<()> {
                tx.insert_link(&rec)?;
                if let Some(a) = &net {
                    tx.insert_net_link(&a.record)?;
                }
                self.fault(FaultPoint::AttachBeforeCommit)
            })?;
            Ok(rec)
        })();
        match result {
            Ok(rec) => {
                undo.commit();
                tracing::info!(link = rec.id.get(), program = id.get(), at = %rec.spec.describe(), "attached");
                self.link_view_of(&store, &rec, &prog.name, &mut Default::default())
            }
            Err(e) => {
                undo.rollback();
                if let Some(a) = &net {
                    self.undo_attach_net(&store, a);
                }
                Err(e)
            }
        }
    }

    /// Detaches one link.
    pub fn detach(&self, link_id: LinkId) -> Result<()> {
        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        let link = store
            .get_link(link_id)?
            .ok_or_else(|| ManagerError::not_found(format!("link {link_id} does not exist")))?;
        let dispatcher = store
            .net_link(link_id)?
            .is_some_and(|n| n.hook.kind.uses_dispatcher());
        let mut undo = UndoLog::default();
        let mut touched = Vec::new();
        let result = (|| -> Result<()> {
            if dispatcher {
                touched = self.detach_net(&store, &[&link])?;
            } else {
                release_pin(Path::new(&link.pin_path), &mut undo)?;
            }
            self.fault(FaultPoint::DetachUnpinnedLink)?;
            store.write(|tx| -> Result<()> {
                tx.delete_link(link_id)?;
                self.fault(FaultPoint::DetachBeforeCommit)
            })
        })();
        if result.is_err() {
            self.restore_hooks(&store, &touched);
        }
        finish(undo, result)?;
        tracing::info!(link = link_id.get(), "detached");
        Ok(())
    }

    /// Unloads a program: detaches its links, unpins it, removes its maps when
    /// no other program uses them, deletes its rows.
    pub fn unload(&self, id: ProgramId) -> Result<()> {
        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        let prog = store.get_program(id)?.ok_or_else(|| {
            ManagerError::not_found(format!("program {id} is not managed by bpfman"))
        })?;
        let links = store.links_of(id)?;
        let owner = prog.map_owner_id;
        let map_users = store.programs_using_maps_of(owner)?;
        let owner_maps = store.maps_of(owner)?;
        let mut dispatched = Vec::new();
        for l in &links {
            if store
                .net_link(l.id)?
                .is_some_and(|n| n.hook.kind.uses_dispatcher())
            {
                dispatched.push(l);
            }
        }
        let dispatched_ids: Vec<LinkId> = dispatched.iter().map(|l| l.id).collect();
        let plan = plan_unload(
            &prog,
            &links,
            &dispatched_ids,
            &map_users,
            &owner_maps,
            &self.paths,
        );

        let mut undo = UndoLog::default();
        let mut touched = Vec::new();
        let result = (|| -> Result<()> {
            touched = self.detach_net(&store, &dispatched)?;
            for pin in &plan.link_pins {
                release_pin(pin, &mut undo)?;
            }
            self.fault(FaultPoint::UnloadDetachedLinks)?;
            release_pin(&plan.program_pin, &mut undo)?;
            self.fault(FaultPoint::UnloadUnpinnedProgram)?;
            for pin in &plan.map_pins {
                release_pin(pin, &mut undo)?;
            }
            for dir in &plan.dirs {
                remove_empty_dir(dir, &mut undo)?;
            }
            self.fault(FaultPoint::UnloadRemovedMaps)?;
            store.write(|tx| -> Result<()> {
                tx.delete_program(id)?;
                if plan.remove_maps {
                    tx.delete_maps(owner)?;
                }
                self.fault(FaultPoint::UnloadBeforeCommit)
            })
        })();
        if result.is_err() {
            self.restore_hooks(&store, &touched);
        }
        finish(undo, result)?;
        tracing::info!(id = id.get(), name = %prog.name, "unloaded");
        Ok(())
    }
}

/// Removes a pin while holding the object, so undo can restore the pin.
fn release_pin(pin: &Path, undo: &mut UndoLog) -> Result<()> {
    if !pin.exists() {
        return Ok(());
    }
    let held = bpfman_kernel::open_pinned(pin)?;
    bpfman_kernel::unpin(pin)?;
    undo.push(Undo::Repin(held, pin.to_path_buf()));
    Ok(())
}

/// Removes a directory unless something else still lives in it.
fn remove_empty_dir(dir: &Path, undo: &mut UndoLog) -> Result<()> {
    match bpfman_kernel::fs::remove_dir(dir) {
        Ok(true) => {
            undo.push(Undo::CreateDir(dir.to_path_buf()));
            Ok(())
        }
        Ok(false) | Err(bpfman_kernel::KernelError::DirectoryNotEmpty(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn finish(undo: UndoLog, result: Result<()>) -> Result<()> {
    match result {
        Ok(()) => {
            undo.commit();
            Ok(())
        }
        Err(e) => {
            let left = undo.rollback();
            if !left.is_empty() {
                tracing::error!(
                    "rollback left {} item(s); run `bpfman gc --prune`",
                    left.len()
                );
            }
            Err(e)
        }
    }
}
