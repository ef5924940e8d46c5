//! Attach, detach and unload: kernel effects with undo, then one store commit.

use std::collections::BTreeSet;
use std::path::Path;

use bpfman_core::attach::{AttachFacts, AttachRoute, dispatcher_hooks, plan_attach};
use bpfman_core::metadata::{self, Metadata};
use bpfman_core::model::{LinkRecord, LinkView, NetLinkRecord};
use bpfman_core::unload::{UnloadPlan, plan_unload};
use bpfman_core::{AttachSpec, LinkId, ProgramId};

use crate::error::{ManagerError, Result};
use crate::fault::FaultPoint;
use crate::undo::{Effects, System, Undo, UndoLog};
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

        self.share_aya_features();
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
                self.keep_aya_features();
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
                release_pin(Path::new(&link.pin_path), &mut System, &mut undo)?;
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
            execute_unload(&plan, &mut System, &mut undo, &|p| self.fault(p))?;
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
fn release_pin(pin: &Path, fx: &mut dyn Effects, undo: &mut UndoLog) -> Result<()> {
    if let Some(held) = fx.release(pin)? {
        undo.push(Undo::Repin(held, pin.to_path_buf()));
    }
    Ok(())
}

/// Performs an unload's bpffs steps in plan order, each registered for
/// undo before the next, with a fault point after the links, the program
/// pin, and the maps and directories.
pub(crate) fn execute_unload(
    plan: &UnloadPlan,
    fx: &mut dyn Effects,
    undo: &mut UndoLog,
    fault: &dyn Fn(FaultPoint) -> Result<()>,
) -> Result<()> {
    for pin in &plan.link_pins {
        release_pin(pin, fx, undo)?;
    }
    fault(FaultPoint::UnloadDetachedLinks)?;
    release_pin(&plan.program_pin, fx, undo)?;
    fault(FaultPoint::UnloadUnpinnedProgram)?;
    for pin in &plan.map_pins {
        release_pin(pin, fx, undo)?;
    }
    for dir in &plan.dirs {
        if fx.remove_dir_if_empty(dir)? {
            undo.push(Undo::CreateDir(dir.clone()));
        }
    }
    fault(FaultPoint::UnloadRemovedMaps)
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use bpfman_core::{ProgramId, RuntimePaths, fixtures};

    use super::*;
    use crate::fake::{Fake, State};

    const FS: &str = "/rt/fs";

    /// The unload of program 1, the last user of its maps, with two links
    /// pinned of their own.
    fn plan() -> UnloadPlan {
        plan_unload(
            &fixtures::program(1, 1, FS),
            &[fixtures::link(5, 1, FS), fixtures::link(7, 1, FS)],
            &[],
            &[ProgramId(1)],
            &[fixtures::map_row(1, "m", FS)],
            &RuntimePaths::new("/rt"),
        )
    }

    /// What the host holds before the unload.
    fn before() -> BTreeSet<PathBuf> {
        ["links/5", "links/7", "1", "1/p", "1/m"]
            .iter()
            .map(|p| PathBuf::from(FS).join(p))
            .collect()
    }

    fn host(fail_at: Option<usize>) -> RefCell<State> {
        RefCell::new(State {
            live: before(),
            fail_at,
            ..Default::default()
        })
    }

    fn no_fault(_: FaultPoint) -> Result<()> {
        Ok(())
    }

    fn journal(s: &State) -> Vec<String> {
        s.journal
            .iter()
            .map(|(w, p)| format!("{w} {}", p.display()))
            .collect()
    }

    #[test]
    fn unload_removes_links_program_maps_then_the_directory() {
        let state = host(None);
        let mut undo = UndoLog::default();
        execute_unload(&plan(), &mut Fake(&state), &mut undo, &no_fault).unwrap();
        undo.commit();
        let s = state.borrow();
        assert!(s.live.is_empty(), "left: {:?}", s.live);
        assert_eq!(
            journal(&s),
            [
                "unpin /rt/fs/links/5",
                "unpin /rt/fs/links/7",
                "unpin /rt/fs/1/p",
                "unpin /rt/fs/1/m",
                "rmdir /rt/fs/1",
            ]
        );
    }

    #[test]
    fn a_failed_unload_step_is_undone_and_the_host_is_as_before() {
        for k in 0..5 {
            let state = host(Some(k));
            let mut undo = UndoLog::default();
            let r = execute_unload(&plan(), &mut Fake(&state), &mut undo, &no_fault);
            assert!(r.is_err(), "step {k} must fail");
            let done = state.borrow().journal.clone();
            assert_eq!(done.len(), k, "steps done before failing at {k}");
            let left = undo.rollback_with(&mut Fake(&state));
            assert!(left.is_empty(), "undo failures at step {k}: {left:?}");
            let s = state.borrow();
            assert_eq!(s.live, before(), "host after undo at step {k}");
            // Newest first: each pin is pinned again, the directory made again.
            let expected: Vec<_> = done
                .iter()
                .rev()
                .map(|(what, p)| (if *what == "rmdir" { "mkdir" } else { "repin" }, p.clone()))
                .collect();
            assert_eq!(s.journal[k..].to_vec(), expected, "undo at step {k}");
        }
    }

    #[test]
    fn a_fault_point_mid_unload_is_undone_too() {
        for point in [
            FaultPoint::UnloadDetachedLinks,
            FaultPoint::UnloadUnpinnedProgram,
            FaultPoint::UnloadRemovedMaps,
        ] {
            let state = host(None);
            let mut undo = UndoLog::default();
            let fault = |p: FaultPoint| -> Result<()> {
                if p == point {
                    Err(ManagerError::internal("injected"))
                } else {
                    Ok(())
                }
            };
            assert!(execute_unload(&plan(), &mut Fake(&state), &mut undo, &fault).is_err());
            assert!(undo.rollback_with(&mut Fake(&state)).is_empty());
            assert_eq!(state.borrow().live, before(), "after {point:?}");
        }
    }

    #[test]
    fn a_directory_something_else_lives_in_stays() {
        let state = host(None);
        state
            .borrow_mut()
            .live
            .insert(PathBuf::from("/rt/fs/1/other"));
        let mut undo = UndoLog::default();
        execute_unload(&plan(), &mut Fake(&state), &mut undo, &no_fault).unwrap();
        let s = state.borrow();
        let left: Vec<_> = s.live.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(left, ["/rt/fs/1", "/rt/fs/1/other"]);
        assert!(!journal(&s).iter().any(|j| j.starts_with("rmdir")));
    }
}
