//! Load: object -> kernel -> pins -> one store transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bpfman_core::model::{MapRecord, ProgramRecord, ProgramView};
use bpfman_core::spec::{BytecodeSource, LoadSpec};
use bpfman_kernel::{LoadRequest, ProgramToLoad};

use crate::error::{ManagerError, Result};
use crate::undo::{Undo, UndoLog};
use crate::{Manager, create_dir, now, path_str};

/// Maps whose names start with '.' hold an object's global data; they belong
/// to each load and are neither pinned nor shared.
fn is_internal_map(name: &str) -> bool {
    name.starts_with('.')
}

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

        // Which programs, and of which kind.
        let mut to_load = Vec::new();
        let mut sections = BTreeMap::new();
        if spec.programs.is_empty() {
            for p in &in_object {
                if let Some(kind) = p.kind {
                    to_load.push(ProgramToLoad {
                        name: p.name.clone(),
                        kind,
                        attach_fn: None,
                    });
                    sections.insert(p.name.clone(), p.section.clone());
                }
            }
            if to_load.is_empty() {
                let found: Vec<_> = in_object
                    .iter()
                    .map(|p| format!("{} in '{}'", p.name, p.section))
                    .collect();
                return Err(ManagerError::invalid(format!(
                    "{origin} holds no program of a kind bpfman manages (it has: {}); supported \
                     sections: {}",
                    found.join(", "),
                    bpfman_core::section::supported_sections()
                )));
            }
        } else {
            for req in &spec.programs {
                let found = in_object
                    .iter()
                    .find(|p| p.name == req.name)
                    .ok_or_else(|| {
                        let names: Vec<_> = in_object.iter().map(|p| p.name.as_str()).collect();
                        ManagerError::not_found(format!(
                            "program '{}' is not in {origin} (it has: {})",
                            req.name,
                            names.join(", ")
                        ))
                    })?;
                let kind = match (req.kind, found.kind) {
                    // Probes: the section decides the direction (kprobe vs
                    // kretprobe); TC and TCX share sections: the user's word decides.
                    (Some(asked), Some(sec)) if asked.same_family(sec) => {
                        if sec.is_probe() {
                            sec
                        } else {
                            asked
                        }
                    }
                    (Some(asked), Some(sec)) => {
                        return Err(ManagerError::invalid(format!(
                            "program '{}' is a {sec} program (section '{}'), not {asked}",
                            req.name, found.section
                        )));
                    }
                    (None, Some(sec)) => sec,
                    // The kind comes from the section table, never from a guess.
                    (_, None) => {
                        return Err(ManagerError::invalid(
                            bpfman_core::section::unsupported_section(&req.name, &found.section)
                                .unwrap_or_else(|| {
                                    format!(
                                        "program '{}' is in section '{}', which bpfman does not load",
                                        req.name, found.section
                                    )
                                }),
                        ));
                    }
                };
                let attach_fn = req.attach_fn.clone().or_else(|| {
                    bpfman_core::section::parse_section(&found.section).and_then(|s| s.target)
                });
                if kind.is_trampoline() && attach_fn.is_none() {
                    return Err(ManagerError::invalid(format!(
                        "{kind} program '{}' needs a target function: give it as {kind}:{}:FUNCTION",
                        req.name, req.name
                    )));
                }
                to_load.push(ProgramToLoad {
                    name: req.name.clone(),
                    kind,
                    attach_fn,
                });
                sections.insert(req.name.clone(), found.section.clone());
            }
        }
        // Fill trampoline targets from sections when loading everything.
        for p in &mut to_load {
            if p.kind.is_trampoline() && p.attach_fn.is_none() {
                p.attach_fn = sections
                    .get(&p.name)
                    .and_then(|s| bpfman_core::section::parse_section(s))
                    .and_then(|s| s.target);
            }
        }
        let map_names = bpfman_kernel::object_maps(&bytes)?;
        for p in &to_load {
            if map_names.iter().any(|m| m == &p.name) {
                return Err(ManagerError::invalid(format!(
                    "program '{}' has the same name as a map of the object; their pins would collide",
                    p.name
                )));
            }
        }

        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;

        // Maps to reuse when sharing another program's maps.
        let mut reuse = BTreeMap::new();
        if let Some(owner) = spec.map_owner_id {
            let owner_rec = store.get_program(owner)?.ok_or_else(|| {
                ManagerError::not_found(format!(
                    "map owner program {owner} is not managed by bpfman"
                ))
            })?;
            let owner_maps = store.maps_of(owner_rec.map_owner_id)?;
            for name in map_names.iter().filter(|n| !is_internal_map(n)) {
                let m = owner_maps.iter().find(|m| &m.name == name).ok_or_else(|| {
                    ManagerError::precondition(format!(
                        "program {owner} has no map named '{name}' to share"
                    ))
                })?;
                reuse.insert(name.clone(), PathBuf::from(&m.pin_path));
            }
        }
        let owner_dir_of_shared = match spec.map_owner_id {
            Some(o) => Some(store.get_program(o)?.map(|r| r.map_owner_id).unwrap_or(o)),
            None => None,
        };

        let mut undo = UndoLog::default();
        let plan = ObjectLoad {
            bytes: &bytes,
            to_load: &to_load,
            reuse: &reuse,
            shared_owner: owner_dir_of_shared,
            sections: &sections,
        };
        let result = self.load_steps(&spec, &plan, &mut undo, &mut store);
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

    fn load_steps(
        &self,
        spec: &LoadSpec,
        plan: &ObjectLoad<'_>,
        undo: &mut UndoLog,
        store: &mut bpfman_store::Store,
    ) -> Result<Vec<u32>> {
        let ObjectLoad {
            bytes,
            to_load,
            reuse,
            shared_owner,
            sections,
        } = *plan;
        let mut loaded = bpfman_kernel::load(&LoadRequest {
            bytes,
            programs: to_load,
            global_data: &spec.global_data,
            reuse_maps: reuse,
        })?;
        self.fault("load:loaded")?;

        let mut ids = Vec::with_capacity(to_load.len());
        for p in to_load {
            ids.push(loaded.program_id(&p.name)?);
        }
        let owner = shared_owner.unwrap_or(ids[0]);

        let mut records = Vec::new();
        for (p, id) in to_load.iter().zip(&ids) {
            let dir = self.paths.program_dir(*id);
            create_dir(&dir)?;
            undo.push(Undo::RemoveDir(dir));
            let pin = self.paths.program_pin(*id, &p.name);
            loaded.pin_program(&p.name, &pin)?;
            undo.push(Undo::RemovePin(pin.clone()));
            let mut metadata = spec.metadata.clone();
            metadata
                .entry(bpfman_core::PROGRAM_NAME_KEY.to_string())
                .or_insert_with(|| p.name.clone());
            records.push(ProgramRecord {
                id: *id,
                name: p.name.clone(),
                kind: p.kind,
                section: sections.get(&p.name).cloned().unwrap_or_default(),
                attach_fn: p.attach_fn.clone().filter(|_| p.kind.is_trampoline()),
                source: spec.source.clone(),
                metadata,
                global_data: spec.global_data.clone(),
                map_owner_id: owner,
                map_pin_path: path_str(&self.paths.program_dir(owner)),
                pin_path: path_str(&pin),
                created_at: now(),
            });
        }
        self.fault("load:pinned_programs")?;

        let mut maps = Vec::new();
        if shared_owner.is_none() {
            for (name, kernel_id) in loaded.created_maps() {
                if is_internal_map(&name) {
                    continue;
                }
                let pin = self.paths.map_pin(owner, &name);
                loaded.pin_map(&name, &pin)?;
                undo.push(Undo::RemovePin(pin.clone()));
                maps.push(MapRecord {
                    owner_id: owner,
                    name,
                    kernel_id,
                    pin_path: path_str(&pin),
                });
            }
        }
        self.fault("load:pinned_maps")?;

        // Dispatchers reload XDP/TC programs as extensions from the same bytes.
        let object_digest = records
            .iter()
            .any(|r| crate::net::keeps_object(r.kind))
            .then(|| crate::net::digest(bytes));
        store.write(|tx| -> Result<()> {
            for r in &records {
                tx.insert_program(r)?;
                if let Some(d) = object_digest
                    .as_deref()
                    .filter(|_| crate::net::keeps_object(r.kind))
                {
                    tx.put_object(r.id, d, bytes)?;
                }
            }
            for m in &maps {
                tx.insert_map(m)?;
            }
            self.fault("load:before_commit")
        })?;
        for r in &records {
            tracing::info!(id = r.id, name = %r.name, kind = %r.kind, "loaded program");
        }
        Ok(ids)
    }
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

/// What one load does with the object, decided before any kernel work:
/// its bytes, the programs to load, the maps to reuse (by name, their pins),
/// the map owner whose directory holds shared maps, and each program's section.
#[derive(Clone, Copy)]
struct ObjectLoad<'a> {
    bytes: &'a [u8],
    to_load: &'a [ProgramToLoad],
    reuse: &'a BTreeMap<String, PathBuf>,
    shared_owner: Option<u32>,
    sections: &'a BTreeMap<String, String>,
}
