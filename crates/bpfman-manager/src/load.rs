//! Load: object -> kernel -> pins -> one store transaction.

use std::path::{Path, PathBuf};

use bpfman_core::load::{self, LoadPlan, LoadStep};
use bpfman_core::model::ProgramView;
use bpfman_core::spec::{BytecodeSource, LoadSpec};
use bpfman_kernel::LoadRequest;

use crate::error::{ManagerError, Result};
use crate::undo::{Undo, UndoLog};
use crate::{Manager, create_dir, now};

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
    ) -> Result<Vec<u32>> {
        let mut loaded = bpfman_kernel::load(&LoadRequest {
            bytes,
            programs: &plan.programs,
            global_data: &spec.global_data,
            reuse_maps: &plan.reuse,
        })?;
        self.fault("load:loaded")?;

        let mut answer = load::Loaded {
            program_ids: Vec::with_capacity(plan.programs.len()),
            created_maps: loaded.created_maps(),
        };
        for p in &plan.programs {
            answer.program_ids.push(loaded.program_id(&p.name)?);
        }
        let fx = load::plan_effects(spec, plan, &answer, &self.paths, now());

        execute(&fx.program_steps, &mut loaded, undo)?;
        self.fault("load:pinned_programs")?;
        execute(&fx.map_steps, &mut loaded, undo)?;
        self.fault("load:pinned_maps")?;

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
            self.fault("load:before_commit")
        })?;
        for r in &fx.programs {
            tracing::info!(id = r.id, name = %r.name, kind = %r.kind, "loaded program");
        }
        Ok(answer.program_ids)
    }
}

/// Performs a load's bpffs steps in order, registering each one's undo.
fn execute(
    steps: &[LoadStep],
    loaded: &mut bpfman_kernel::LoadedObject,
    undo: &mut UndoLog,
) -> Result<()> {
    for step in steps {
        match step {
            LoadStep::CreateDir(dir) => {
                create_dir(dir)?;
                undo.push(Undo::RemoveDir(dir.clone()));
            }
            LoadStep::PinProgram { name, pin } => {
                loaded.pin_program(name, pin)?;
                undo.push(Undo::RemovePin(pin.clone()));
            }
            LoadStep::PinMap { name, pin } => {
                loaded.pin_map(name, pin)?;
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
