//! Attach, detach and unload: kernel effects with undo, then one store commit.

use std::collections::BTreeSet;
use std::path::Path;

use bpfman_core::attach::{AttachFacts, AttachPlan, AttachRoute, dispatcher_hooks, plan_attach};
use bpfman_core::dispatcher::HookKey;
use bpfman_core::metadata::{self, Metadata};
use bpfman_core::model::{LinkRecord, LinkView, NetLinkRecord, ProgramRecord};
use bpfman_core::spec::XdpMode;
use bpfman_core::unload::{UnloadPlan, plan_unload};
use bpfman_core::{AttachSpec, KernelLinkId, LinkId, ProgramId};
use bpfman_net::Iface;

use crate::error::{ManagerError, Result};
use crate::fault::FaultPoint;
use crate::host::Host;
use crate::net::recorded_iface;
use crate::undo::{AttachEffects, Effects, Hook, TcxAttach, Undo, UndoLog};
use crate::{Manager, now, path_str};

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
        let job = AttachJob {
            plan: &plan,
            prog: &prog,
            spec: &spec,
            target: target.as_ref(),
        };
        let mut undo = UndoLog::default();
        let result = (|| -> Result<LinkRecord> {
            let attached =
                execute_attach(&job, &mut Host::new(self, &mut store), &mut undo, &|p| {
                    self.fault(p)
                })?;
            let rec = LinkRecord {
                id: link_id,
                program_id: id,
                spec: spec.clone(),
                pin_path: attached.pin_path,
                kernel_link_id: attached.kernel_link_id,
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
                    if matches!(plan.route, AttachRoute::Dispatcher { .. }) {
                        // The links already on the hook share its kernel link.
                        tx.set_hook_kernel_link(key, rec.kernel_link_id)?;
                    }
                }
                self.fault(FaultPoint::AttachBeforeCommit)
            })?;
            Ok(rec)
        })();
        let rec = finish(undo, result, &mut Host::new(self, &mut store))?;
        self.keep_aya_features();
        tracing::info!(link = rec.id.get(), program = id.get(), at = %rec.spec.describe(), "attached");
        self.link_view_of(&store, &rec, &prog.name, &mut Default::default())
    }

    /// Detaches one link.
    pub fn detach(&self, link_id: LinkId) -> Result<()> {
        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        let link = store
            .get_link(link_id)?
            .ok_or_else(|| ManagerError::not_found(format!("link {link_id} does not exist")))?;
        let net: Vec<NetLinkRecord> = store.net_link(link_id)?.into_iter().collect();
        let hooks = manager_hooks(&dispatcher_hooks(&[&link], &net));
        let job = DetachJob {
            link_id,
            pin: Path::new(&link.pin_path),
            hooks: &hooks,
        };
        let mut undo = UndoLog::default();
        let result = (|| -> Result<()> {
            execute_detach(&job, &mut Host::new(self, &mut store), &mut undo, &|p| {
                self.fault(p)
            })?;
            store.write(|tx| -> Result<()> {
                tx.delete_link(link_id)?;
                self.fault(FaultPoint::DetachBeforeCommit)
            })
        })();
        finish(undo, result, &mut Host::new(self, &mut store))?;
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
        let job = UnloadJob {
            hooks: manager_hooks(&plan.hooks),
            skip: links.iter().map(|l| l.id).collect(),
            plan,
        };

        let mut undo = UndoLog::default();
        let result = (|| -> Result<()> {
            execute_unload(&job, &mut Host::new(self, &mut store), &mut undo, &|p| {
                self.fault(p)
            })?;
            store.write(|tx| -> Result<()> {
                tx.delete_program(id)?;
                if job.plan.remove_maps {
                    tx.delete_maps(owner)?;
                }
                self.fault(FaultPoint::UnloadBeforeCommit)
            })
        })();
        finish(undo, result, &mut Host::new(self, &mut store))?;
        tracing::info!(id = id.get(), name = %prog.name, "unloaded");
        Ok(())
    }
}

/// What one attach executes: the plan and what it acts on.
pub(crate) struct AttachJob<'a> {
    /// The plan of the core.
    pub(crate) plan: &'a AttachPlan,
    /// The program attached.
    pub(crate) prog: &'a ProgramRecord,
    /// The resolved spec.
    pub(crate) spec: &'a AttachSpec,
    /// The interface and hook of a network spec.
    pub(crate) target: Option<&'a (Iface, HookKey)>,
}

/// The kernel side of a new link, for its row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Attached {
    /// The link's pin (a dispatcher link: the hook's pin directory).
    pub(crate) pin_path: String,
    /// The kernel link, when there is one.
    pub(crate) kernel_link_id: Option<KernelLinkId>,
}

/// Performs an attach's kernel side: the links directory if the plan makes
/// it, then the link by the plan's route, each registered for undo before
/// the next, then the `AttachAttached` fault point. The store commit is the
/// caller's.
pub(crate) fn execute_attach(
    job: &AttachJob<'_>,
    fx: &mut dyn AttachEffects,
    undo: &mut UndoLog,
    fault: &dyn Fn(FaultPoint) -> Result<()>,
) -> Result<Attached> {
    if let Some(dir) = &job.plan.create_links_dir {
        fx.create_dir(dir)?;
        undo.push(Undo::RemoveDir(dir.clone()));
    }
    let prog_pin = Path::new(&job.prog.pin_path);
    let attached = match (&job.plan.route, job.target) {
        (AttachRoute::Link { pin }, _) => {
            let k = fx.attach_link(prog_pin, job.prog.kind, job.spec, pin)?;
            undo.push(Undo::RemovePin(pin.clone()));
            Attached {
                pin_path: path_str(pin),
                kernel_link_id: k,
            }
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
            let k = fx.attach_tcx(&TcxAttach {
                iface,
                direction,
                program_pin: prog_pin,
                priority: *priority,
                neighbours,
                pin,
            })?;
            undo.push(Undo::RemovePin(pin.clone()));
            Attached {
                pin_path: path_str(pin),
                kernel_link_id: Some(k),
            }
        }
        (AttachRoute::Dispatcher { kind }, Some((iface, _))) => {
            let hook = Hook {
                iface: iface.clone(),
                kind: *kind,
                mode: job.spec.xdp_mode(),
            };
            let (dir, k) = fx.attach_dispatched(job.prog, job.spec, job.plan.link_id, &hook)?;
            // The hook's undo is its recorded set, which lacks the new link
            // until the commit.
            undo.push(Undo::RestoreHook(hook));
            Attached {
                pin_path: path_str(&dir),
                kernel_link_id: k,
            }
        }
        _ => {
            return Err(ManagerError::internal(
                "network attach without an interface",
            ));
        }
    };
    fault(FaultPoint::AttachAttached)?;
    Ok(attached)
}

/// What one detach executes.
pub(crate) struct DetachJob<'a> {
    /// The link detached.
    pub(crate) link_id: LinkId,
    /// Its pin (unused when it runs through dispatcher hooks).
    pub(crate) pin: &'a Path,
    /// The dispatcher hooks it runs on; empty for a link of its own.
    pub(crate) hooks: &'a [Hook],
}

/// Performs a detach's kernel side: unpins the link (held for undo) or
/// makes its hooks run their recorded sets without it, each registered for
/// undo before the next, then the `DetachUnpinnedLink` fault point.
pub(crate) fn execute_detach(
    job: &DetachJob<'_>,
    fx: &mut dyn AttachEffects,
    undo: &mut UndoLog,
    fault: &dyn Fn(FaultPoint) -> Result<()>,
) -> Result<()> {
    if job.hooks.is_empty() {
        release_pin(job.pin, fx, undo)?;
    } else {
        off_hooks(job.hooks, &BTreeSet::from([job.link_id]), fx, undo)?;
    }
    fault(FaultPoint::DetachUnpinnedLink)
}

/// Makes each hook run its recorded links minus `skip`, registering its
/// restore for undo before the next.
fn off_hooks(
    hooks: &[Hook],
    skip: &BTreeSet<LinkId>,
    fx: &mut dyn AttachEffects,
    undo: &mut UndoLog,
) -> Result<()> {
    for hook in hooks {
        fx.apply_hook(hook, skip)?;
        undo.push(Undo::RestoreHook(hook.clone()));
    }
    Ok(())
}

/// Removes a pin while holding the object, so undo can restore the pin.
fn release_pin(pin: &Path, fx: &mut dyn Effects, undo: &mut UndoLog) -> Result<()> {
    if let Some(held) = fx.release(pin)? {
        undo.push(Undo::Repin(held, pin.to_path_buf()));
    }
    Ok(())
}

/// The dispatcher hooks of recorded net links, as the host applies them.
fn manager_hooks(hooks: &[(NetLinkRecord, XdpMode)]) -> Vec<Hook> {
    hooks
        .iter()
        .map(|(n, mode)| Hook {
            iface: recorded_iface(n),
            kind: n.hook.kind,
            mode: *mode,
        })
        .collect()
}

/// What one unload executes.
pub(crate) struct UnloadJob {
    /// The plan of the core.
    pub(crate) plan: UnloadPlan,
    /// The dispatcher hooks the program's links run on.
    pub(crate) hooks: Vec<Hook>,
    /// The program's links, which the hooks stop running.
    pub(crate) skip: BTreeSet<LinkId>,
}

/// Performs an unload's kernel side in plan order, each step registered
/// for undo before the next: the dispatcher hooks stop running the
/// program's links, then the bpffs steps, with a fault point after the
/// links, the program pin, and the maps and directories. Undo runs newest
/// first, so the pins are back before a hook that needs them is restored.
pub(crate) fn execute_unload(
    job: &UnloadJob,
    fx: &mut dyn AttachEffects,
    undo: &mut UndoLog,
    fault: &dyn Fn(FaultPoint) -> Result<()>,
) -> Result<()> {
    off_hooks(&job.hooks, &job.skip, fx, undo)?;
    let plan = &job.plan;
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

/// Commits the undo log on success; on failure rolls it back through `fx`
/// and says when something is left for gc.
fn finish<T>(undo: UndoLog, result: Result<T>, fx: &mut dyn Effects) -> Result<T> {
    match result {
        Ok(v) => {
            undo.commit();
            Ok(v)
        }
        Err(e) => {
            let left = undo.rollback_with(fx);
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
    fn plan() -> UnloadJob {
        UnloadJob {
            plan: plan_unload(
                &fixtures::program(1, 1, FS),
                &[fixtures::link(5, 1, FS), fixtures::link(7, 1, FS)],
                &[],
                &[ProgramId(1)],
                &[fixtures::map_row(1, "m", FS)],
                &RuntimePaths::new("/rt"),
            ),
            hooks: Vec::new(),
            skip: BTreeSet::from([LinkId(5), LinkId(7)]),
        }
    }

    /// The XDP hook of eth0, where program 1's link 9 runs beside link 4 of
    /// another program.
    fn xdp_hook() -> Hook {
        Hook {
            iface: bpfman_net::Iface {
                netns: None,
                name: "eth0".into(),
                netns_ino: 7,
                ifindex: 3,
            },
            kind: bpfman_core::dispatcher::HookKind::Xdp,
            mode: XdpMode::Native,
        }
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

    #[test]
    fn a_failed_unload_restores_its_hooks_after_the_pins_they_need() {
        // Restoring a hook reopens the programs it runs from their pins, so
        // undo must put the pins back first: newest first does, as the hook
        // was changed before any pin was removed.
        let with_hook = || {
            let state = host(None);
            let set = BTreeSet::from([LinkId(4), LinkId(9)]);
            {
                let s = &mut *state.borrow_mut();
                s.fs = PathBuf::from(FS);
                s.recorded.insert(xdp_hook().key(), set.clone());
                s.hooks.insert(xdp_hook().key(), set);
            }
            state
        };
        let mut job = plan();
        job.hooks = vec![xdp_hook()];
        job.skip.insert(LinkId(9));

        let state = with_hook();
        let mut undo = UndoLog::default();
        execute_unload(&job, &mut Fake(&state), &mut undo, &no_fault).unwrap();
        undo.commit();
        assert_eq!(
            state.borrow().hooks[&xdp_hook().key()],
            BTreeSet::from([LinkId(4)])
        );

        let state = with_hook();
        let mut undo = UndoLog::default();
        let fault = |p: FaultPoint| -> Result<()> {
            if p == FaultPoint::UnloadRemovedMaps {
                Err(ManagerError::internal("injected"))
            } else {
                Ok(())
            }
        };
        assert!(execute_unload(&job, &mut Fake(&state), &mut undo, &fault).is_err());
        let done = state.borrow().journal.len();
        assert!(undo.rollback_with(&mut Fake(&state)).is_empty());
        let s = state.borrow();
        assert_eq!(s.live, before());
        assert_eq!(
            s.hooks[&xdp_hook().key()],
            BTreeSet::from([LinkId(4), LinkId(9)])
        );
        let undone = journal(&s);
        assert_eq!(
            undone[done..].last().map(String::as_str),
            Some("restore-hook /rt/fs/dispatchers/xdp/7_3"),
            "undo order: {:?}",
            &undone[done..]
        );
    }
}

#[cfg(test)]
mod attach_tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use bpfman_core::dispatcher::HookKind;
    use bpfman_core::spec::{Direction, XdpMode};
    use bpfman_core::{RuntimePaths, fixtures};

    use super::*;
    use crate::fake::{FAKE_KERNEL_LINK, Fake, State};

    const FS: &str = "/rt/fs";
    /// The id the new link takes.
    const NEW: LinkId = LinkId(3);
    /// A link already recorded (and run) on every dispatcher hook.
    const OLD: LinkId = LinkId(1);

    fn eth0() -> Iface {
        Iface {
            netns: None,
            name: "eth0".into(),
            netns_ino: 7,
            ifindex: 3,
        }
    }

    fn hook(kind: HookKind) -> Hook {
        Hook {
            iface: eth0(),
            kind,
            mode: XdpMode::Native,
        }
    }

    /// One spec per route, named for the messages: a link of its own, TCX,
    /// and the two dispatcher kinds.
    fn specs() -> Vec<(&'static str, AttachSpec)> {
        let iface = "eth0".to_string();
        vec![
            (
                "tracepoint",
                AttachSpec::Tracepoint {
                    tracepoint: Some("a/b".into()),
                },
            ),
            (
                "tcx",
                AttachSpec::Tcx {
                    iface: iface.clone(),
                    direction: Some(Direction::Ingress),
                    priority: 5,
                    netns: None,
                },
            ),
            (
                "xdp",
                AttachSpec::Xdp {
                    iface: iface.clone(),
                    priority: 5,
                    proceed_on: vec![2],
                    netns: None,
                    mode: XdpMode::Native,
                },
            ),
            (
                "tc",
                AttachSpec::Tc {
                    iface,
                    direction: Some(Direction::Ingress),
                    priority: 5,
                    proceed_on: vec![],
                    netns: None,
                },
            ),
        ]
    }

    fn target(spec: &AttachSpec) -> Option<(Iface, HookKey)> {
        spec.hook().map(|(kind, ..)| (eth0(), eth0().key(kind)))
    }

    /// The core's plan of `spec` as link 3, the links directory missing
    /// unless `links_dir` says it is there.
    fn plan(spec: &AttachSpec, links_dir: bool) -> AttachPlan {
        let pinned = BTreeSet::new();
        let facts = AttachFacts {
            next_link_id: NEW,
            pinned: &pinned,
            links_dir_exists: links_dir,
            hook_links: &[],
        };
        plan_attach(spec, facts, &RuntimePaths::new("/rt")).unwrap()
    }

    /// A host with program 1 pinned and link 1 on each dispatcher hook
    /// (recorded and run); `links` are further pins.
    fn host(fail_at: Option<usize>, links: &[&str]) -> RefCell<State> {
        let dispatched: BTreeMap<HookKey, BTreeSet<LinkId>> =
            [HookKind::Xdp, HookKind::TcIngress, HookKind::TcEgress]
                .into_iter()
                .map(|k| (eth0().key(k), BTreeSet::from([OLD])))
                .collect();
        let mut live: BTreeSet<PathBuf> = [format!("{FS}/1"), fixtures::program(1, 1, FS).pin_path]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        live.extend(links.iter().map(|l| PathBuf::from(FS).join(l)));
        RefCell::new(State {
            live,
            fail_at,
            fs: PathBuf::from(FS),
            recorded: dispatched.clone(),
            hooks: dispatched,
            ..Default::default()
        })
    }

    /// What a test compares to tell the host is as it was.
    fn snapshot(s: &State) -> (BTreeSet<PathBuf>, BTreeMap<HookKey, BTreeSet<LinkId>>) {
        (s.live.clone(), s.hooks.clone())
    }

    fn journal(j: &[(&'static str, PathBuf)]) -> Vec<String> {
        j.iter()
            .map(|(w, p)| format!("{w} {}", p.display()))
            .collect()
    }

    fn no_fault(_: FaultPoint) -> Result<()> {
        Ok(())
    }

    /// Fails at `point`, passes elsewhere.
    fn fault_at(point: FaultPoint) -> impl Fn(FaultPoint) -> Result<()> {
        move |p| {
            if p == point {
                Err(ManagerError::internal("injected"))
            } else {
                Ok(())
            }
        }
    }

    fn run_attach(
        spec: &AttachSpec,
        links_dir: bool,
        state: &RefCell<State>,
        undo: &mut UndoLog,
        fault: &dyn Fn(FaultPoint) -> Result<()>,
    ) -> Result<Attached> {
        let plan = plan(spec, links_dir);
        let prog = fixtures::program(1, 1, FS);
        let target = target(spec);
        let job = AttachJob {
            plan: &plan,
            prog: &prog,
            spec,
            target: target.as_ref(),
        };
        execute_attach(&job, &mut Fake(state), undo, fault)
    }

    /// The undo of each forward effect of the fake, as it journals it.
    fn undo_of(what: &str) -> &'static str {
        match what {
            "mkdir" => "rmdir",
            "attach-link" | "attach-tcx" => "unpin",
            "apply-hook" => "restore-hook",
            "unpin" => "repin",
            other => panic!("no undo known for {other}"),
        }
    }

    /// Rolls `undo` back on the fake and checks it reversed the `k` forward
    /// effects newest first and left the host as `before`.
    fn assert_undone(
        state: &RefCell<State>,
        undo: UndoLog,
        k: usize,
        before: &(BTreeSet<PathBuf>, BTreeMap<HookKey, BTreeSet<LinkId>>),
        what: &str,
    ) {
        let done = state.borrow().journal.clone();
        assert_eq!(done.len(), k, "{what}: effects done");
        let left = undo.rollback_with(&mut Fake(state));
        assert!(left.is_empty(), "{what}: undo failures {left:?}");
        let s = state.borrow();
        assert_eq!(&snapshot(&s), before, "{what}: host after undo");
        let expected: Vec<_> = done
            .iter()
            .rev()
            .map(|(w, p)| (undo_of(w), p.clone()))
            .collect();
        assert_eq!(
            s.journal[k..].to_vec(),
            expected,
            "{what}: undo, newest first"
        );
    }

    #[test]
    fn each_route_makes_exactly_its_pins_and_hook_change() {
        let xdp_dir = "/rt/fs/dispatchers/xdp/7_3";
        let tc_dir = "/rt/fs/dispatchers/tc/7_3/ingress";
        let first = Some(KernelLinkId(FAKE_KERNEL_LINK + 1));
        // (route, its forward effect, pin path, kernel link, new pin or hook)
        let expected = [
            (
                "tracepoint",
                "attach-link /rt/fs/links/3",
                "/rt/fs/links/3",
                first,
            ),
            ("tcx", "attach-tcx /rt/fs/links/3", "/rt/fs/links/3", first),
            (
                "xdp",
                "apply-hook /rt/fs/dispatchers/xdp/7_3",
                xdp_dir,
                first,
            ),
            (
                "tc",
                "apply-hook /rt/fs/dispatchers/tc/7_3/ingress",
                tc_dir,
                None,
            ),
        ];
        for ((name, spec), (route, effect, pin, kernel)) in specs().into_iter().zip(expected) {
            assert_eq!(name, route);
            let state = host(None, &[]);
            let (live_before, hooks_before) = snapshot(&state.borrow());
            let mut undo = UndoLog::default();
            let got = run_attach(&spec, false, &state, &mut undo, &no_fault).unwrap();
            undo.commit();
            assert_eq!(
                got,
                Attached {
                    pin_path: pin.into(),
                    kernel_link_id: kernel
                },
                "{name}"
            );
            let s = state.borrow();
            assert_eq!(
                journal(&s.journal),
                ["mkdir /rt/fs/links", effect],
                "{name}"
            );
            let made: Vec<_> = s.live.difference(&live_before).cloned().collect();
            let mut hooks = hooks_before.clone();
            let mut expect_made = vec![PathBuf::from("/rt/fs/links")];
            match spec.hook().map(|(k, ..)| k) {
                Some(k) if k.uses_dispatcher() => {
                    hooks.insert(eth0().key(k), BTreeSet::from([OLD, NEW]));
                }
                _ => expect_made.push(PathBuf::from("/rt/fs/links/3")),
            }
            assert_eq!(made, expect_made, "{name}: new pins");
            assert!(live_before.is_subset(&s.live), "{name}: nothing removed");
            assert_eq!(s.hooks, hooks, "{name}: hooks");
        }
    }

    #[test]
    fn an_existing_links_dir_is_not_made_again() {
        let state = host(None, &["links"]);
        let mut undo = UndoLog::default();
        let spec = &specs()[0].1;
        run_attach(spec, true, &state, &mut undo, &no_fault).unwrap();
        assert_eq!(
            journal(&state.borrow().journal),
            ["attach-link /rt/fs/links/3"]
        );
    }

    #[test]
    fn a_failed_attach_step_is_undone_and_the_host_is_as_before() {
        for (name, spec) in specs() {
            for k in 0..2 {
                let state = host(Some(k), &[]);
                let before = snapshot(&state.borrow());
                let mut undo = UndoLog::default();
                let r = run_attach(&spec, false, &state, &mut undo, &no_fault);
                assert!(r.is_err(), "{name}: step {k} must fail");
                assert_undone(&state, undo, k, &before, &format!("{name} step {k}"));
            }
        }
    }

    #[test]
    fn the_attached_fault_point_is_undone_too() {
        for (name, spec) in specs() {
            let state = host(None, &[]);
            let before = snapshot(&state.borrow());
            let mut undo = UndoLog::default();
            let fault = fault_at(FaultPoint::AttachAttached);
            let r = run_attach(&spec, false, &state, &mut undo, &fault);
            assert_eq!(r.map_err(|e| e.message), Err("injected".into()), "{name}");
            assert_undone(&state, undo, 2, &before, name);
        }
    }

    #[test]
    fn a_network_route_without_an_interface_fails_and_undoes_the_links_dir() {
        let state = host(None, &[]);
        let before = snapshot(&state.borrow());
        let spec = &specs()[1].1;
        let plan = plan(spec, false);
        let prog = fixtures::program(1, 1, FS);
        let job = AttachJob {
            plan: &plan,
            prog: &prog,
            spec,
            target: None,
        };
        let mut undo = UndoLog::default();
        let r = execute_attach(&job, &mut Fake(&state), &mut undo, &no_fault);
        assert_eq!(
            r.map_err(|e| e.message),
            Err("network attach without an interface".into())
        );
        assert_undone(&state, undo, 1, &before, "no interface");
    }

    /// The detach of link 3: pinned of its own at links/3, or on `hooks`.
    fn run_detach(
        hooks: &[Hook],
        state: &RefCell<State>,
        undo: &mut UndoLog,
        fault: &dyn Fn(FaultPoint) -> Result<()>,
    ) -> Result<()> {
        let pin = PathBuf::from("/rt/fs/links/3");
        let job = DetachJob {
            link_id: NEW,
            pin: &pin,
            hooks,
        };
        execute_detach(&job, &mut Fake(state), undo, fault)
    }

    /// A host where link 3 runs on the XDP and TC ingress hooks, besides
    /// link 1, as recorded.
    fn host_with_new_on_hooks(fail_at: Option<usize>) -> RefCell<State> {
        let state = host(fail_at, &[]);
        {
            let s = &mut *state.borrow_mut();
            for k in [HookKind::Xdp, HookKind::TcIngress] {
                let key = eth0().key(k);
                s.recorded.entry(key).or_default().insert(NEW);
                s.hooks.entry(key).or_default().insert(NEW);
            }
        }
        state
    }

    fn two_hooks() -> [Hook; 2] {
        [hook(HookKind::Xdp), hook(HookKind::TcIngress)]
    }

    #[test]
    fn detach_unpins_a_link_of_its_own_or_takes_it_off_its_hooks() {
        let state = host(None, &["links", "links/3"]);
        let mut undo = UndoLog::default();
        run_detach(&[], &state, &mut undo, &no_fault).unwrap();
        undo.commit();
        let s = state.borrow();
        assert_eq!(journal(&s.journal), ["unpin /rt/fs/links/3"]);
        assert!(!s.live.contains(Path::new("/rt/fs/links/3")));

        let state = host_with_new_on_hooks(None);
        let mut undo = UndoLog::default();
        run_detach(&two_hooks(), &state, &mut undo, &no_fault).unwrap();
        undo.commit();
        let s = state.borrow();
        assert_eq!(
            journal(&s.journal),
            [
                "apply-hook /rt/fs/dispatchers/xdp/7_3",
                "apply-hook /rt/fs/dispatchers/tc/7_3/ingress"
            ]
        );
        for h in two_hooks() {
            assert_eq!(s.hooks[&h.key()], BTreeSet::from([OLD]), "{:?}", h.kind);
        }
    }

    #[test]
    fn a_failed_detach_step_or_fault_is_undone_and_the_host_is_as_before() {
        // (what, hooks, host, steps before the fault point)
        type Host = fn(Option<usize>) -> RefCell<State>;
        let own: Host = |f| host(f, &["links", "links/3"]);
        let cases: [(&str, Vec<Hook>, Host, usize); 2] = [
            ("own pin", vec![], own, 1),
            ("hooks", two_hooks().to_vec(), host_with_new_on_hooks, 2),
        ];
        for (what, hooks, make, steps) in cases {
            for k in 0..steps {
                let state = make(Some(k));
                let before = snapshot(&state.borrow());
                let mut undo = UndoLog::default();
                assert!(run_detach(&hooks, &state, &mut undo, &no_fault).is_err());
                assert_undone(&state, undo, k, &before, &format!("{what} step {k}"));
            }
            let state = make(None);
            let before = snapshot(&state.borrow());
            let mut undo = UndoLog::default();
            let fault = fault_at(FaultPoint::DetachUnpinnedLink);
            assert!(run_detach(&hooks, &state, &mut undo, &fault).is_err());
            assert_undone(&state, undo, steps, &before, &format!("{what} fault"));
        }
    }
}
