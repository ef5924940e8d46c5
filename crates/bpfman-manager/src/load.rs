//! Load: object -> kernel -> pins -> one store transaction.

use std::path::{Path, PathBuf};

use bpfman_core::load::{self, LoadPlan, LoadStep};
use bpfman_core::model::ProgramView;
use bpfman_core::spec::{BytecodeSource, LoadSpec};
use bpfman_kernel::LoadRequest;

use crate::error::{ManagerError, Result};
use crate::fault::FaultPoint;
use crate::undo::{Effects, System, Undo, UndoLog};
use crate::{Manager, now};
use bpfman_core::ProgramId;

impl Manager {
    /// Loads the requested programs of an object, all or none, and pins them.
    ///
    /// An image source is pulled first (before the writer lock: it may wait
    /// on the network) with the spec's pull policy and credentials; with no
    /// programs named, the image's `io.ebpf.programs` label names them (else
    /// every program of the object). The records keep the image reference and
    /// the manifest digest it resolved to, never the credentials.
    pub fn load(&self, mut spec: LoadSpec) -> Result<Vec<ProgramView>> {
        spec.validate()?;
        let (bytes, origin) = match self.pull_for_load(&mut spec)? {
            Some(img) => (img.bytes, img.origin),
            None => {
                let BytecodeSource::File { path } = &spec.source else {
                    return Err(ManagerError::internal("image source was not pulled"));
                };
                let path = PathBuf::from(path);
                let bytes = read_object(&path)?;
                (bytes, path.display().to_string())
            }
        };
        // Program names may now come from image labels: check them as if typed.
        spec.validate()?;
        let in_object = bpfman_kernel::inspect_object(&bytes).map_err(|e| {
            let e = ManagerError::from(e);
            ManagerError::new(e.code, format!("{origin}: {}", e.message))
        })?;

        let map_names = bpfman_kernel::object_maps(&bytes)?;
        let mut plan = load::plan_load(&spec, &origin, &in_object, &map_names)?;

        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        if let Some(owner) = spec.map_owner_id {
            let rec = store.get_program(owner)?;
            let owner_maps = match &rec {
                Some(r) => store.maps_of(r.map_owner_id)?,
                None => Vec::new(),
            };
            plan.share_maps(owner, rec.as_ref(), &owner_maps)?;
        }

        let mut undo = UndoLog::default();
        let result = self.load_steps(&spec, &bytes, &plan, &mut undo, &mut store);
        match result {
            Ok(ids) => {
                undo.commit();
                self.keep_aya_features();
                drop(store);
                drop(_lock);
                ids.into_iter().map(|id| self.get(id)).collect()
            }
            Err(e) => {
                let left = undo.rollback();
                if !left.is_empty() {
                    tracing::error!(
                        "load rollback left {} item(s); run `bpfman gc --prune`",
                        left.len()
                    );
                }
                Err(e)
            }
        }
    }

    /// Executes a plan: the kernel load, then the effects the core plans from
    /// the kernel's ids, each registered for undo, then one transaction.
    fn load_steps(
        &self,
        spec: &LoadSpec,
        bytes: &[u8],
        plan: &LoadPlan,
        undo: &mut UndoLog,
        store: &mut bpfman_store::Store,
    ) -> Result<Vec<ProgramId>> {
        self.share_aya_features();
        let mut loaded = bpfman_kernel::load(&LoadRequest {
            bytes,
            programs: &plan.programs,
            global_data: &spec.global_data,
            reuse_maps: &plan.reuse,
        })?;
        self.fault(FaultPoint::LoadLoaded)?;

        let mut answer = load::Loaded {
            program_ids: Vec::with_capacity(plan.programs.len()),
            created_maps: loaded.created_maps(),
        };
        for p in &plan.programs {
            answer.program_ids.push(loaded.program_id(&p.name)?);
        }
        let fx = load::plan_effects(spec, plan, &answer, &self.paths, now());

        execute(&fx.program_steps, &mut loaded, &mut System, undo)?;
        self.fault(FaultPoint::LoadPinnedPrograms)?;
        execute(&fx.map_steps, &mut loaded, &mut System, undo)?;
        self.fault(FaultPoint::LoadPinnedMaps)?;

        // What `list` shows of each program, read once now: it never changes.
        let facts = bpfman_kernel::programs_info(&answer.program_ids)?;
        // Dispatchers reload XDP/TC programs as extensions from the same bytes.
        let object_digest = (!fx.keep_object.is_empty()).then(|| crate::net::digest(bytes));
        store.write(|tx| -> Result<()> {
            for r in &fx.programs {
                tx.insert_program(r)?;
                if let Some(d) = object_digest
                    .as_deref()
                    .filter(|_| fx.keep_object.contains(&r.id))
                {
                    tx.put_object(r.id, d, bytes)?;
                }
            }
            for m in &fx.maps {
                tx.insert_map(m)?;
            }
            for k in facts.iter().flatten() {
                tx.put_kernel_info(k)?;
            }
            self.fault(FaultPoint::LoadBeforeCommit)
        })?;
        for r in &fx.programs {
            tracing::info!(id = r.id.get(), name = %r.name, kind = %r.kind, "loaded program");
        }
        Ok(answer.program_ids)
    }
}

/// The pins a load makes of what it loaded: [`bpfman_kernel::LoadedObject`]
/// for real, a recording fake in tests.
pub(crate) trait LoadPins {
    /// Pins a loaded program.
    fn pin_program(&mut self, name: &str, pin: &Path) -> Result<()>;
    /// Pins a map the load created.
    fn pin_map(&mut self, name: &str, pin: &Path) -> Result<()>;
}

impl LoadPins for bpfman_kernel::LoadedObject {
    fn pin_program(&mut self, name: &str, pin: &Path) -> Result<()> {
        Ok(bpfman_kernel::LoadedObject::pin_program(self, name, pin)?)
    }
    fn pin_map(&mut self, name: &str, pin: &Path) -> Result<()> {
        Ok(bpfman_kernel::LoadedObject::pin_map(self, name, pin)?)
    }
}

/// Performs a load's bpffs steps in order, registering each one's undo
/// before the next, so a failure at any step can be unwound.
pub(crate) fn execute(
    steps: &[LoadStep],
    pins: &mut dyn LoadPins,
    fx: &mut dyn Effects,
    undo: &mut UndoLog,
) -> Result<()> {
    for step in steps {
        match step {
            LoadStep::CreateDir(dir) => {
                fx.create_dir(dir)?;
                undo.push(Undo::RemoveDir(dir.clone()));
            }
            LoadStep::PinProgram { name, pin } => {
                pins.pin_program(name, pin)?;
                undo.push(Undo::RemovePin(pin.clone()));
            }
            LoadStep::PinMap { name, pin } => {
                pins.pin_map(name, pin)?;
                undo.push(Undo::RemovePin(pin.clone()));
            }
        }
    }
    Ok(())
}

/// Reads a BPF object file, at most [`MAX_OBJECT_BYTES`] of it: a bigger
/// file (or an endless one such as `/dev/zero`) is refused before it fills
/// memory.
///
/// [`MAX_OBJECT_BYTES`]: bpfman_core::limits::MAX_OBJECT_BYTES
pub(crate) fn read_object(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let limit = bpfman_core::limits::MAX_OBJECT_BYTES;
    let fail = |e: std::io::Error| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            crate::Code::NotFound
        } else {
            crate::Code::InvalidArgument
        };
        ManagerError::new(code, format!("cannot read {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(fail)?;
    if bytes.len() as u64 > limit {
        return Err(ManagerError::invalid(format!(
            "{} is larger than {limit} bytes, the most bpfman reads as a BPF object",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use bpfman_core::MapId;
    use std::cell::RefCell;

    use super::*;
    use crate::fake::{Fake, State};
    use bpfman_core::load::{LoadEffects, Loaded, ObjectProgram, plan_effects, plan_load};
    use bpfman_core::spec::ProgramRequest;
    use bpfman_core::{ProgramKind, RuntimePaths};

    impl LoadPins for Fake<'_> {
        fn pin_program(&mut self, _: &str, pin: &Path) -> Result<()> {
            self.make("pin", pin)
        }
        fn pin_map(&mut self, _: &str, pin: &Path) -> Result<()> {
            self.make("pin", pin)
        }
    }

    /// The effects the core plans for two programs and one owned map.
    fn effects() -> LoadEffects {
        let names = ["a", "b"];
        let spec = LoadSpec {
            source: BytecodeSource::File {
                path: "/o.o".into(),
            },
            programs: names
                .iter()
                .map(|n| ProgramRequest {
                    name: n.to_string(),
                    kind: None,
                    attach_fn: None,
                })
                .collect(),
            metadata: Default::default(),
            global_data: Default::default(),
            map_owner_id: None,
            pull_policy: None,
            registry_auth: None,
        };
        let object: Vec<_> = names
            .iter()
            .map(|n| ObjectProgram {
                name: n.to_string(),
                section: "xdp".into(),
                kind: Some(ProgramKind::Xdp),
            })
            .collect();
        let plan = plan_load(&spec, "/o.o", &object, &["m".to_string()]).unwrap();
        let loaded = Loaded {
            program_ids: vec![ProgramId(1), ProgramId(2)],
            created_maps: vec![("m".into(), MapId(9))],
        };
        plan_effects(&spec, &plan, &loaded, &RuntimePaths::new("/rt"), 0)
    }

    /// Runs the load's two step lists in order, as `Manager::load` does.
    fn run(state: &RefCell<State>, undo: &mut UndoLog) -> Result<()> {
        let fx = effects();
        let (mut pins, mut host) = (Fake(state), Fake(state));
        execute(&fx.program_steps, &mut pins, &mut host, undo)?;
        execute(&fx.map_steps, &mut pins, &mut host, undo)
    }

    #[test]
    fn a_failure_at_each_step_undoes_the_earlier_ones_newest_first() {
        let fx = effects();
        let steps = fx.program_steps.len() + fx.map_steps.len();
        assert_eq!(steps, 5, "2 dirs, 2 program pins, 1 map pin");
        for k in 0..steps {
            let state = RefCell::new(State {
                fail_at: Some(k),
                ..Default::default()
            });
            let mut undo = UndoLog::default();
            assert!(run(&state, &mut undo).is_err(), "step {k} must fail");
            let done = state.borrow().journal.clone();
            assert_eq!(done.len(), k, "steps done before failing at {k}");
            let left = undo.rollback_with(&mut Fake(&state));
            assert!(left.is_empty(), "undo failures at step {k}: {left:?}");
            let s = state.borrow();
            assert!(s.live.is_empty(), "left behind at step {k}: {:?}", s.live);
            let undone: Vec<_> = s.journal[k..].to_vec();
            let expected: Vec<_> = done
                .iter()
                .rev()
                .map(|(what, p)| (if *what == "mkdir" { "rmdir" } else { "unpin" }, p.clone()))
                .collect();
            assert_eq!(undone, expected, "undo at step {k}");
        }
    }

    #[test]
    fn success_commits_every_effect_in_plan_order() {
        let state = RefCell::new(State::default());
        let mut undo = UndoLog::default();
        run(&state, &mut undo).unwrap();
        undo.commit();
        let s = state.borrow();
        let journal: Vec<_> = s
            .journal
            .iter()
            .map(|(w, p)| format!("{w} {}", p.display()))
            .collect();
        assert_eq!(
            journal,
            [
                "mkdir /rt/fs/1",
                "pin /rt/fs/1/a",
                "mkdir /rt/fs/2",
                "pin /rt/fs/2/b",
                "pin /rt/fs/1/m"
            ]
        );
        assert_eq!(s.live.len(), 5);
    }
}
