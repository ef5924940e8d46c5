//! Attach, detach and unload: kernel effects with undo, then one store commit.

use std::collections::BTreeSet;
use std::path::Path;

use bpfman_core::attach::{AttachFacts, AttachRoute, dispatcher_hooks, plan_attach};
use bpfman_core::metadata::{self, Metadata};
use bpfman_core::model::{LinkRecord, LinkView, NetLinkRecord};
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
        let target = self.net_target(&spec)?;
        let hook_links = match &target {
            Some((_, key)) => crate::net::links_on(&store, key)?,
            None => Vec::new(),
        };
        // Nothing is written before the kernel work succeeds: the id is
        // taken in the final transaction (insert_link moves the counter), and
        // one whose pin a crashed attach left behind is skipped.
        let links_dir = self.paths.links_dir();
        let pinned: BTreeSet<LinkId> = bpfman_kernel::fs::read_dir(&links_dir)?
            .iter()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        let facts = AttachFacts {
            next_link_id: store.peek_next_link_id()?,
            pinned: &pinned,
            links_dir_exists: links_dir.exists(),
            hook_links: &hook_links,
        };
        let plan = plan_attach(&spec, facts, &self.paths)
            .ok_or_else(|| ManagerError::internal("link ids are exhausted"))?;
        let link_id = plan.link_id;

        let mut undo = UndoLog::default();
        let mut net: Option<crate::net::NetAttached> = None;
        let result = (|| -> Result<LinkRecord> {
            if let Some(dir) = &plan.create_links_dir {
                create_dir(dir)?;
                undo.push(Undo::RemoveDir(dir.clone()));
            }
            let prog_pin = Path::new(&prog.pin_path);
            let (pin_path, kernel_link_id) = match (&plan.route, &target) {
                (AttachRoute::Link { pin }, _) => {
                    let k = bpfman_kernel::attach(prog_pin, prog.kind, &spec, pin)?;
                    undo.push(Undo::RemovePin(pin.clone()));
                    (path_str(pin), k)
                }
                (
                    AttachRoute::Tcx {
                        pin,
                        priority,
                        neighbours,
                    },
                    Some((iface, key)),
                ) => {
                    let direction = key
                        .kind
                        .direction()
                        .ok_or_else(|| ManagerError::internal("TCX hook without a direction"))?;
                    let k = bpfman_net::attach_tcx(
                        iface, direction, prog_pin, *priority, neighbours, pin,
                    )?;
                    undo.push(Undo::RemovePin(pin.clone()));
                    (path_str(pin), Some(k))
                }
                (AttachRoute::Dispatcher { kind }, Some((iface, _))) => {
                    let a = self.attach_dispatched(&store, &prog, &spec, link_id, iface, *kind)?;
                    let r = (a.pin_path.clone(), a.kernel_link_id);
                    net = Some(a);
                    r
                }
                _ => {
                    return Err(ManagerError::internal(
                        "network attach without an interface",
                    ));
                }
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
                if let (Some((_, key)), Some((_, iface, netns))) = (&target, spec.hook()) {
                    tx.insert_net_link(&NetLinkRecord {
                        link_id,
                        hook: *key,
                        iface: iface.to_string(),
                        netns: netns.map(str::to_string),
                    })?;
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
                    self.undo_attach_dispatched(&store, link_id, a);
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
        let net: Vec<NetLinkRecord> = store.net_link(link_id)?.into_iter().collect();
        let hooks = dispatcher_hooks(&[&link], &net);
        let mut undo = UndoLog::default();
        let mut detached = false;
        let result = (|| -> Result<()> {
            if hooks.is_empty() {
                release_pin(Path::new(&link.pin_path), &mut undo)?;
            } else {
                self.detach_hooks(&store, &hooks, &BTreeSet::from([link_id]))?;
                detached = true;
            }
            self.fault(FaultPoint::DetachUnpinnedLink)?;
            store.write(|tx| -> Result<()> {
                tx.delete_link(link_id)?;
                self.fault(FaultPoint::DetachBeforeCommit)
            })
        })();
        if result.is_err() && detached {
            self.restore_hooks(&store, &hooks);
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
        let mut net = Vec::new();
        for l in &links {
            net.extend(store.net_link(l.id)?);
        }
        let plan = plan_unload(&prog, &links, &net, &map_users, &owner_maps, &self.paths);
        let skip: BTreeSet<LinkId> = links.iter().map(|l| l.id).collect();

        let mut undo = UndoLog::default();
        let mut detached = false;
        let result = (|| -> Result<()> {
            self.detach_hooks(&store, &plan.hooks, &skip)?;
            detached = true;
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
        if result.is_err() && detached {
            self.restore_hooks(&store, &plan.hooks);
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
