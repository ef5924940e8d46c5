//! Loading programs of an object into the kernel, all or nothing, and
//! pinning what the load created.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData};
use aya::programs::{Program, ProgramError};
use aya::{Btf, Ebpf, EbpfError};
use aya_obj::maps::PinningType;
use aya_obj::{EbpfSectionKind, ParseError};
use bpfman_core::section::{parse_section, unsupported_section};
use bpfman_core::spec::GlobalData;
use bpfman_core::{MapId, ProgramId, ProgramKind};

use crate::btf;
use crate::error::{KernelError, aya_guard, chain, errno_name, find_io, verifier_tail};
use crate::info::map_type_name;
use crate::object::{AlignedBytes, ObjectProgram, inspect_object};
use crate::pin::{ObjectKind, open_pinned};
use crate::sections;
use crate::sys;

/// One program to load (the core's type: load planning produces it).
pub use bpfman_core::load::ProgramToLoad;

/// What to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadRequest<'a> {
    /// The object file.
    pub bytes: &'a [u8],
    /// Programs to load; others in the object stay unloaded.
    pub programs: &'a [ProgramToLoad],
    /// Global variable overrides (`volatile const` in C), by symbol name.
    pub global_data: &'a GlobalData,
    /// When sharing another program's maps: map name -> existing pin path (reused, not created).
    /// Entries naming maps this object does not declare are ignored, so the
    /// owner's whole map set may be passed.
    pub reuse_maps: &'a BTreeMap<String, PathBuf>,
}

/// Loaded but not yet pinned: dropping it unloads everything (fds close).
#[derive(Debug)]
pub struct LoadedObject {
    ebpf: Ebpf,
    loaded: BTreeMap<String, ProgramKind>,
    created: BTreeMap<String, u32>,
    reused: BTreeMap<String, PathBuf>,
}

/// Loads only the named programs. All or nothing: on any failure every fd
/// opened so far is closed, so nothing stays in the kernel.
pub fn load(req: &LoadRequest<'_>) -> Result<LoadedObject, KernelError> {
    let bytes = AlignedBytes::new(req.bytes);
    let bytes = bytes.as_slice();
    let in_object = inspect_object(bytes)?;
    check_requested(req.programs, &in_object)?;
    // aya builds programs from its own reading of section names: give it
    // names it reads as the kinds bpfman's table says.
    let renamed = sections::for_aya(bytes)?;
    let renamed = renamed.as_deref().map(AlignedBytes::new);
    let aya_bytes = renamed.as_ref().map_or(bytes, AlignedBytes::as_slice);

    let parsed = aya_guard(|| aya_obj::Object::parse(aya_bytes).map_err(|e| parse_error(&e)))?;
    // Maps declared by the user; the global-variable maps (.rodata, .bss, ...)
    // belong to this load only and are never reported, pinned or shared.
    let user_maps: BTreeSet<String> = parsed
        .maps
        .iter()
        .filter(|(_, m)| {
            matches!(
                m.section_kind(),
                EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps
            )
        })
        .map(|(n, _)| n.clone())
        .collect();

    let mut reused = BTreeMap::new();
    for (name, path) in req.reuse_maps {
        let Some(def) = parsed.maps.get(name).filter(|_| user_maps.contains(name)) else {
            continue;
        };
        check_shared_map(name, path, def)?;
        reused.insert(name.clone(), path.clone());
    }
    for (name, def) in &parsed.maps {
        // aya would pin such a map under /sys/fs/bpf by itself, outside bpfman's tree.
        if def.pinning() == PinningType::ByName && !reused.contains_key(name) {
            return Err(KernelError::Unsupported(format!(
                "map '{name}' asks to be pinned by name (LIBBPF_PIN_BY_NAME); bpfman pins maps \
                 itself: remove the pinning attribute, or share maps with another program"
            )));
        }
    }
    // Kernel BTF only where the load needs it: CO-RE relocations, or
    // programs that attach by BTF id.
    let core = parsed.has_btf_relocations();
    let vmlinux = if req.programs.iter().any(|p| p.kind.is_trampoline()) {
        Some(btf::vmlinux().map_err(|e| {
            KernelError::Unsupported(format!("fentry/fexit programs need the kernel's BTF: {e}"))
        })?)
    } else {
        None
    };

    let mut loader = btf::loader(core);
    loader.allow_unsupported_maps();
    for (name, value) in req.global_data {
        loader.override_global(name.as_str(), value.as_slice(), true);
    }
    for (name, path) in &reused {
        loader.map_pin_path(name.as_str(), path.as_path());
    }
    // The object parsed above, not the bytes: one parse per load.
    let mut ebpf = aya_guard(|| loader.load_parsed(parsed).map_err(ebpf_error))?;

    let mut loaded = BTreeMap::new();
    for p in req.programs {
        let section = in_object
            .iter()
            .find(|o| o.name == p.name)
            .map(|o| o.section.as_str())
            .unwrap_or_default();
        load_one(&mut ebpf, p, section, vmlinux)?;
        loaded.insert(p.name.clone(), p.kind);
    }

    let mut created = BTreeMap::new();
    for (name, map) in ebpf.maps() {
        if user_maps.contains(name) && !reused.contains_key(name) {
            let info = map_data(map).info().map_err(|e| {
                KernelError::Other(format!("reading info of map '{name}': {}", chain(&e)))
            })?;
            created.insert(name.to_string(), info.id());
        }
    }
    Ok(LoadedObject {
        ebpf,
        loaded,
        created,
        reused,
    })
}

impl LoadedObject {
    /// Kernel id of a loaded program.
    pub fn program_id(&self, name: &str) -> Result<ProgramId, KernelError> {
        let prog = self.loaded_program(name)?;
        let fd = prog
            .fd()
            .map_err(|e| KernelError::Other(format!("program '{name}': {}", chain(&e))))?;
        sys::prog_info(std::os::fd::AsFd::as_fd(fd))
            .map(|info| ProgramId(info.id))
            .map_err(|e| KernelError::io(format!("reading info of program '{name}'"), e))
    }

    /// Pins a loaded program at `path` (its directory must exist on a bpffs).
    pub fn pin_program(&mut self, name: &str, path: &Path) -> Result<(), KernelError> {
        self.loaded_program(name)?;
        let prog = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| KernelError::Other(format!("program '{name}' vanished")))?;
        prog.pin(path)
            .map_err(|e| pin_error(&format!("program '{name}'"), path, &e))
    }

    /// Maps of the object that were created by this load (not reused): name -> kernel map id.
    pub fn created_maps(&self) -> Vec<(String, MapId)> {
        self.created
            .iter()
            .map(|(n, id)| (n.clone(), MapId(*id)))
            .collect()
    }

    /// Pins a map created by this load at `path`.
    pub fn pin_map(&mut self, name: &str, path: &Path) -> Result<(), KernelError> {
        if let Some(existing) = self.reused.get(name) {
            return Err(KernelError::Other(format!(
                "map '{name}' is shared from {}; it is pinned there already",
                existing.display()
            )));
        }
        if !self.created.contains_key(name) {
            return Err(KernelError::NotFound(format!(
                "map '{name}' was not created by this load (created: {})",
                self.created.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let map = self
            .ebpf
            .map(name)
            .ok_or_else(|| KernelError::Other(format!("map '{name}' vanished")))?;
        map.pin(path)
            .map_err(|e| pin_error(&format!("map '{name}'"), path, &e))
    }

    /// Names of the programs this load loaded, with their kinds.
    pub fn programs(&self) -> impl Iterator<Item = (&str, ProgramKind)> {
        self.loaded.iter().map(|(n, k)| (n.as_str(), *k))
    }

    fn loaded_program(&self, name: &str) -> Result<&Program, KernelError> {
        let not_found = || KernelError::ProgramNotFound {
            name: name.to_string(),
            available: self.loaded.keys().cloned().collect(),
        };
        if !self.loaded.contains_key(name) {
            return Err(not_found());
        }
        self.ebpf.program(name).ok_or_else(not_found)
    }
}

/// The object's bytes as aya must see them: program sections renamed so
/// that aya builds each program as the kind bpfman's section table gives it
/// (`tc` → `classifier/tc`); unchanged when aya reads every name right. For
/// other aya loaders of the same object (dispatcher extensions).
pub fn object_for_aya(bytes: &[u8]) -> Result<Vec<u8>, KernelError> {
    let aligned = AlignedBytes::new(bytes);
    Ok(sections::for_aya(aligned.as_slice())?.unwrap_or_else(|| bytes.to_vec()))
}

/// Everything a load reads of an object before the kernel sees it, without
/// loading: bpfman's inspection, the section renaming for aya, and aya's
/// parse of the result. `Ok` says only that the bytes parse.
pub fn parse_object(bytes: &[u8]) -> Result<(), KernelError> {
    let aligned = AlignedBytes::new(bytes);
    let bytes = aligned.as_slice();
    inspect_object(bytes)?;
    let renamed = sections::for_aya(bytes)?;
    let renamed = renamed.as_deref().map(AlignedBytes::new);
    let aya_bytes = renamed.as_ref().map_or(bytes, AlignedBytes::as_slice);
    aya_guard(|| aya_obj::Object::parse(aya_bytes).map_err(|e| parse_error(&e)))?;
    Ok(())
}

/// Every requested program is in the object, once, in a section bpfman loads.
fn check_requested(
    requested: &[ProgramToLoad],
    in_object: &[ObjectProgram],
) -> Result<(), KernelError> {
    if requested.is_empty() {
        return Err(KernelError::Other("no program named to load".into()));
    }
    let mut seen = BTreeSet::new();
    for p in requested {
        if !seen.insert(p.name.as_str()) {
            return Err(KernelError::Other(format!(
                "program '{}' is named twice",
                p.name
            )));
        }
        let Some(found) = in_object.iter().find(|o| o.name == p.name) else {
            return Err(KernelError::ProgramNotFound {
                name: p.name.clone(),
                available: in_object.iter().map(|o| o.name.clone()).collect(),
            });
        };
        // The kind comes from bpfman's section table; names outside it are refused.
        if let Some(msg) = unsupported_section(&p.name, &found.section) {
            return Err(KernelError::Unsupported(msg));
        }
    }
    Ok(())
}

/// The map pinned at `path` exists and has the shape the object declares:
/// aya would otherwise use any map found there.
fn check_shared_map(name: &str, path: &Path, def: &aya_obj::Map) -> Result<(), KernelError> {
    let obj = open_pinned(path).map_err(|e| match e {
        KernelError::NotFound(_) => KernelError::NotFound(format!(
            "map '{name}' is to be shared from {}, but nothing is pinned there",
            path.display()
        )),
        other => other,
    })?;
    let obj = obj.expect_kind(ObjectKind::Map, path)?;
    let info = sys::map_info(std::os::fd::AsFd::as_fd(&obj))
        .map_err(|e| KernelError::io(format!("reading map info of {}", path.display()), e))?;
    if info.type_ != def.map_type()
        || info.key_size != def.key_size()
        || info.value_size != def.value_size()
    {
        return Err(KernelError::Other(format!(
            "map '{name}' pinned at {} is a {} map with {}-byte keys and {}-byte values, but the \
             object declares a {} map with {}-byte keys and {}-byte values",
            path.display(),
            map_type_name(info.type_),
            info.key_size,
            info.value_size,
            map_type_name(def.map_type()),
            def.key_size(),
            def.value_size()
        )));
    }
    Ok(())
}

fn load_one(
    ebpf: &mut Ebpf,
    p: &ProgramToLoad,
    section: &str,
    vmlinux: Option<&Btf>,
) -> Result<(), KernelError> {
    let available: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    let prog = ebpf
        .program_mut(&p.name)
        .ok_or_else(|| KernelError::ProgramNotFound {
            name: p.name.clone(),
            available,
        })?;
    let prog_type = prog.prog_type();
    let trampoline_target = || -> Result<(String, &Btf), KernelError> {
        let target = p
            .attach_fn
            .clone()
            .or_else(|| parse_section(section).and_then(|s| s.target))
            .ok_or_else(|| {
                KernelError::Other(format!(
                    "{} program '{}' names no function to trace: give attach_fn",
                    p.kind, p.name
                ))
            })?;
        let btf = vmlinux
            .ok_or_else(|| KernelError::Unsupported("kernel BTF was not loaded".to_string()))?;
        Ok((target, btf))
    };
    use ProgramKind as K;
    let result = match (p.kind, prog) {
        (K::Tracepoint, Program::TracePoint(t)) => t.load(),
        (K::Kprobe | K::Kretprobe | K::Uprobe | K::Uretprobe, Program::KProbe(k)) => k.load(),
        (K::Kprobe | K::Kretprobe | K::Uprobe | K::Uretprobe, Program::UProbe(u)) => u.load(),
        (K::Fentry, Program::FEntry(f)) => {
            let (target, btf) = trampoline_target()?;
            f.load(&target, btf)
        }
        (K::Fexit, Program::FExit(f)) => {
            let (target, btf) = trampoline_target()?;
            f.load(&target, btf)
        }
        (K::Xdp, Program::Xdp(x)) => x.load(),
        (K::Tc | K::Tcx, Program::SchedClassifier(c)) => c.load(),
        (kind, _) => {
            return Err(KernelError::Other(format!(
                "program '{}' (section '{section}') is a {prog_type:?} program and cannot be \
                 loaded as {kind}",
                p.name
            )));
        }
    };
    result.map_err(|e| program_load_error(p, &e))
}

/// Turns a program load failure into the error a person needs.
fn program_load_error(p: &ProgramToLoad, e: &ProgramError) -> KernelError {
    let name = &p.name;
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let errno = io_error.raw_os_error();
            if p.kind.is_trampoline() && errno == Some(libc::EPERM) {
                return KernelError::Unsupported(
                    "this kernel refuses fentry/fexit (trampoline) programs: EPERM".to_string(),
                );
            }
            if errno == Some(libc::EPERM) {
                return KernelError::Other(format!(
                    "the kernel refused to load program '{name}': EPERM (loading needs root, or \
                     CAP_BPF with CAP_PERFMON)"
                ));
            }
            let tail = verifier_tail(&verifier_log.to_string());
            if tail.is_empty() {
                KernelError::Other(format!(
                    "loading program '{name}' failed: {} ({io_error})",
                    errno.map(errno_name).unwrap_or_default()
                ))
            } else {
                KernelError::Verifier {
                    program: name.clone(),
                    log_tail: tail,
                }
            }
        }
        ProgramError::Btf(aya::BtfError::UnknownBtfTypeName { type_name }) => {
            KernelError::NotFound(format!(
                "function '{type_name}' is not in the kernel's BTF (/sys/kernel/btf/vmlinux), so \
                 {} program '{name}' cannot trace it",
                p.kind
            ))
        }
        other => {
            if p.kind.is_trampoline()
                && find_io(other).and_then(std::io::Error::raw_os_error) == Some(libc::EPERM)
            {
                return KernelError::Unsupported(
                    "this kernel refuses fentry/fexit (trampoline) programs: EPERM".to_string(),
                );
            }
            KernelError::Other(format!("loading program '{name}': {}", chain(other)))
        }
    }
}

fn parse_error(e: &ParseError) -> KernelError {
    match e {
        ParseError::SymbolNotFound { name } => {
            KernelError::NotFound(format!("global variable '{name}' is not in the object"))
        }
        ParseError::InvalidGlobalData {
            name,
            sym_size,
            data_size,
        } => KernelError::Other(format!(
            "global variable '{name}' is {sym_size} bytes, but {data_size} bytes were given"
        )),
        ParseError::InvalidProgramSection { section } => KernelError::Unsupported(format!(
            "the loader does not know program section '{section}'"
        )),
        other => KernelError::Other(format!("cannot parse the object: {}", chain(other))),
    }
}

fn ebpf_error(e: EbpfError) -> KernelError {
    match e {
        EbpfError::ParseError(p) => parse_error(&p),
        EbpfError::MapError(aya::maps::MapError::CreateError { name, io_error }) => {
            KernelError::io(format!("creating map '{name}'"), io_error)
        }
        other => KernelError::Other(format!("loading the object: {}", chain(&other))),
    }
}

fn pin_error(what: &str, path: &Path, e: &aya::pin::PinError) -> KernelError {
    let context = format!("pinning {what} at {}", path.display());
    match find_io(e) {
        Some(io) => KernelError::io(
            context,
            io.raw_os_error()
                .map(std::io::Error::from_raw_os_error)
                .unwrap_or_else(|| std::io::Error::new(io.kind(), io.to_string())),
        ),
        None => KernelError::Other(format!("{context}: {}", chain(e))),
    }
}

/// The map data behind any typed map variant (aya has no accessor for it).
fn map_data(map: &Map) -> &MapData {
    match map {
        Map::Array(m)
        | Map::ArrayOfMaps(m)
        | Map::BloomFilter(m)
        | Map::CgroupArray(m)
        | Map::CgroupStorage(m)
        | Map::CgrpStorage(m)
        | Map::CpuMap(m)
        | Map::DevMap(m)
        | Map::DevMapHash(m)
        | Map::HashMap(m)
        | Map::HashOfMaps(m)
        | Map::InodeStorage(m)
        | Map::LpmTrie(m)
        | Map::LruHashMap(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuCgroupStorage(m)
        | Map::PerCpuHashMap(m)
        | Map::PerCpuLruHashMap(m)
        | Map::PerfEventArray(m)
        | Map::ProgramArray(m)
        | Map::Queue(m)
        | Map::ReusePortSockArray(m)
        | Map::RingBuf(m)
        | Map::SockHash(m)
        | Map::SockMap(m)
        | Map::SkStorage(m)
        | Map::Stack(m)
        | Map::StackTraceMap(m)
        | Map::Unsupported(m)
        | Map::XskMap(m) => m,
    }
}
