//! Building dispatchers: the embedded dispatcher objects, their
//! configuration, extension programs for their slots, and the one-time probe
//! of whether this kernel allows extension programs at all.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aya::programs::{Extension, ProgramFd, SchedClassifier, Xdp};
use aya::{Ebpf, EbpfLoader};
use aya_obj::generated::bpf_prog_type;
use bpfman_core::dispatcher::MAX_DISPATCHER_SLOTS;

use crate::error::{NetError, from_ebpf_error, from_program_error};
use bpfman_kernel::sys::{self, IdSpace};

/// The XDP dispatcher object (source: `bpf/xdp_dispatcher.bpf.c`).
static XDP_DISPATCHER: &[u8] = aya::include_bytes_aligned!("../bpf/xdp_dispatcher.bpf.o");
/// The TC dispatcher object (source: `bpf/tc_dispatcher.bpf.c`).
static TC_DISPATCHER: &[u8] = aya::include_bytes_aligned!("../bpf/tc_dispatcher.bpf.o");

/// Size of `struct xdp_dispatcher_config` (and of the TC twin).
pub(crate) const CONFIG_SIZE: usize = 4 + 3 * 4 * MAX_DISPATCHER_SLOTS;
/// Mask bit of `dispatcher_return`, always set (libxdp does the same): an
/// unreplaced slot then never ends the chain.
pub(crate) const RETURN_BIT: u32 = 1 << 31;

/// Which dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Xdp,
    Tc,
}

impl Flavor {
    fn elf(self) -> &'static [u8] {
        match self {
            Flavor::Xdp => XDP_DISPATCHER,
            Flavor::Tc => TC_DISPATCHER,
        }
    }
    /// Program name; libxdp recognises a dispatcher by "xdp_dispatcher".
    pub(crate) fn program_name(self) -> &'static str {
        match self {
            Flavor::Xdp => "xdp_dispatcher",
            Flavor::Tc => "tc_dispatcher",
        }
    }
    /// (magic, version) written at the start of the config.
    fn magic_version(self) -> (u8, u8) {
        match self {
            // libxdp's XDP_DISPATCHER_MAGIC and XDP_DISPATCHER_VERSION.
            Flavor::Xdp => (236, 2),
            Flavor::Tc => (0xbf, 1),
        }
    }
    /// Kernel program type of the dispatcher and of programs attached directly.
    pub(crate) fn prog_type(self) -> u32 {
        match self {
            Flavor::Xdp => bpf_prog_type::BPF_PROG_TYPE_XDP as u32,
            Flavor::Tc => bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS as u32,
        }
    }
    pub(crate) fn kind_name(self) -> &'static str {
        match self {
            Flavor::Xdp => "XDP",
            Flavor::Tc => "TC",
        }
    }
}

/// One slot of a dispatcher configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotConfig {
    /// Proceed-on mask, including [`RETURN_BIT`].
    pub(crate) mask: u32,
    /// Run priority, recorded for readers such as `xdp-loader status`.
    pub(crate) priority: u32,
}

/// Encodes the configuration struct for `slots` (libxdp's layout).
pub(crate) fn config_bytes(flavor: Flavor, slots: &[SlotConfig]) -> [u8; CONFIG_SIZE] {
    let (magic, version) = flavor.magic_version();
    let mut b = [0u8; CONFIG_SIZE];
    b[0] = magic;
    b[1] = version;
    b[2] = slots.len().min(MAX_DISPATCHER_SLOTS) as u8;
    // b[3]: is_xdp_frags = 0: frags-aware programs are not supported yet.
    for (i, s) in slots.iter().take(MAX_DISPATCHER_SLOTS).enumerate() {
        let m = 4 + 4 * i;
        let p = 4 + 4 * MAX_DISPATCHER_SLOTS + 4 * i;
        b[m..m + 4].copy_from_slice(&s.mask.to_ne_bytes());
        b[p..p + 4].copy_from_slice(&s.priority.to_ne_bytes());
        // program_flags stay 0 (no BPF_F_XDP_HAS_FRAGS).
    }
    b
}

/// Decodes a configuration read back from the kernel: the slots in use.
pub(crate) fn parse_config(b: &[u8]) -> Option<Vec<SlotConfig>> {
    if b.len() < CONFIG_SIZE {
        return None;
    }
    let n = (b[2] as usize).min(MAX_DISPATCHER_SLOTS);
    let u = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    Some(
        (0..n)
            .map(|i| SlotConfig {
                mask: u(4 + 4 * i),
                priority: u(4 + 4 * MAX_DISPATCHER_SLOTS + 4 * i),
            })
            .collect(),
    )
}

/// Reads the configuration of a loaded dispatcher from its .rodata map.
pub(crate) fn read_config(dispatcher: &OwnedFd) -> Result<Vec<SlotConfig>, NetError> {
    let ids = sys::prog_map_ids(dispatcher.as_fd())
        .map_err(|e| NetError::kernel("reading the dispatcher's maps", e))?;
    let id = ids
        .first()
        .copied()
        .ok_or_else(|| NetError::NotFound("the dispatcher has no configuration map".into()))?;
    let map = sys::get_fd_by_id(IdSpace::Map, id)
        .map_err(|e| NetError::kernel("opening the dispatcher configuration", e))?;
    let value = sys::map_lookup_elem(map.as_fd(), &0u32.to_ne_bytes())
        .map_err(|e| NetError::kernel("reading the dispatcher configuration", e))?;
    parse_config(&value)
        .ok_or_else(|| NetError::InvalidArgument("bad dispatcher configuration".into()))
}

/// A dispatcher program loaded in the kernel (not attached, not pinned).
pub(crate) struct Dispatcher {
    /// Keeps the object (and its config map) alive while we work.
    _ebpf: Ebpf,
    pub(crate) fd: ProgramFd,
    pub(crate) id: u32,
}

/// Loads a dispatcher configured for `slots`.
pub(crate) fn load_dispatcher(
    flavor: Flavor,
    slots: &[SlotConfig],
) -> Result<Dispatcher, NetError> {
    let conf = config_bytes(flavor, slots);
    let what = format!("loading the {} dispatcher", flavor.kind_name());
    // The dispatchers have no CO-RE relocations: no kernel BTF.
    let mut ebpf = EbpfLoader::with_btf(None)
        .override_global("conf", &conf[..], true)
        .load(flavor.elf())
        .map_err(|e| from_ebpf_error(what.clone(), e))?;
    let name = flavor.program_name();
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| NetError::NotFound(format!("{name} missing from the embedded object")))?;
    let fd = match flavor {
        Flavor::Xdp => {
            let p: &mut Xdp = prog
                .try_into()
                .map_err(|e| from_program_error(what.clone(), e))?;
            p.load().map_err(|e| from_program_error(what.clone(), e))?;
            p.fd()
                .map_err(|e| from_program_error(what.clone(), e))?
                .try_clone()
        }
        Flavor::Tc => {
            let p: &mut SchedClassifier = prog
                .try_into()
                .map_err(|e| from_program_error(what.clone(), e))?;
            p.load().map_err(|e| from_program_error(what.clone(), e))?;
            p.fd()
                .map_err(|e| from_program_error(what.clone(), e))?
                .try_clone()
        }
    }
    .map_err(|e| NetError::kernel(what.clone(), e))?;
    let id = sys::prog_info(fd.as_fd())
        .map_err(|e| NetError::kernel(what, e))?
        .id;
    Ok(Dispatcher {
        _ebpf: ebpf,
        fd,
        id,
    })
}

/// How to load a user program as an extension of a dispatcher slot: the
/// same bytecode it was loaded from, sharing its maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionSource {
    /// The ELF object (the bytes the program was loaded from).
    pub elf: Arc<[u8]>,
    /// The program's function name in the object.
    pub function: String,
    /// Maps to share with the loaded program: map name → its pin. Global
    /// data sections (`.data`, `.bss`, `.rodata`…) are skipped: reusing them
    /// would reset the running program's values, so the extension gets its
    /// own, initialised from `globals`.
    pub maps: Vec<(String, PathBuf)>,
    /// Global variable overrides, as given at load.
    pub globals: BTreeMap<String, Vec<u8>>,
}

/// Copies `elf` into 8-byte aligned storage (the object parser's requirement).
fn aligned(elf: &[u8]) -> Vec<u64> {
    let mut v = vec![0u64; elf.len().div_ceil(8)];
    for (i, chunk) in elf.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        v[i] = u64::from_ne_bytes(w);
    }
    v
}

/// Loads `src` as an extension replacing `prog<slot>` of `target`, and
/// returns its descriptor (loaded, not attached). The caller pins it.
pub(crate) fn load_extension(
    src: &ExtensionSource,
    target: &ProgramFd,
    slot: u32,
) -> Result<OwnedFd, NetError> {
    let what = format!("loading program '{}' as an extension", src.function);
    for (name, pin) in &src.maps {
        if !name.starts_with('.') && !pin.exists() {
            return Err(NetError::NotFound(format!(
                "map '{name}' of program '{}' is not pinned at {}",
                src.function,
                pin.display()
            )));
        }
    }
    let words = aligned(&src.elf);
    // SAFETY: a u64 slice viewed as bytes: same memory, alignment 8 >= 1.
    let bytes: &[u8] =
        unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, src.elf.len()) };
    let mut l = bpfman_kernel::btf::loader_for(bytes);
    l.extension(&src.function);
    for (name, pin) in &src.maps {
        if !name.starts_with('.') {
            l.map_pin_path(name, pin.as_path());
        }
    }
    for (name, value) in &src.globals {
        l.override_global(name, value.as_slice(), true);
    }
    let mut ebpf = l
        .load(bytes)
        .map_err(|e| from_ebpf_error(what.clone(), e))?;
    let prog = ebpf.program_mut(&src.function).ok_or_else(|| {
        NetError::NotFound(format!(
            "the object has no program named '{}'",
            src.function
        ))
    })?;
    let ext: &mut Extension = prog
        .try_into()
        .map_err(|e| from_program_error(what.clone(), e))?;
    let target = target
        .try_clone()
        .map_err(|e| NetError::kernel(what.clone(), e))?;
    ext.load(target, &format!("prog{slot}"))
        .map_err(|e| from_program_error(what.clone(), e))?;
    let fd = ext.fd().map_err(|e| from_program_error(what.clone(), e))?;
    let owned = fd
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| NetError::kernel(what, e))?;
    Ok(owned)
}

/// Whether this kernel lets bpfman replace dispatcher slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionSupport {
    /// Extension (freplace) programs load and attach.
    Supported,
    /// The kernel refused them; the errno name, e.g. `EPERM`.
    Refused(String),
}

/// Errnos that mean "this kernel will not do extension programs", as
/// opposed to a passing problem worth retrying.
fn is_refusal(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(
            libc::EPERM | libc::EACCES | libc::EOPNOTSUPP | libc::EINVAL | 524 /* ENOTSUPP */
        )
    )
}

fn errno_name(errno: i32) -> String {
    if errno == 524 {
        return "ENOTSUPP".into();
    }
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

/// Probes (once per process, then cached) whether extension programs can be
/// loaded and attached: loads a one-slot XDP dispatcher and the object's
/// `xdp_pass` as an extension of its first slot, attaches it, and drops all
/// of it. Passing failures are returned as errors and not cached.
pub fn extension_support() -> Result<ExtensionSupport, NetError> {
    static CACHE: Mutex<Option<ExtensionSupport>> = Mutex::new(None);
    if let Some(s) = CACHE.lock().ok().and_then(|g| g.clone()) {
        return Ok(s);
    }
    let s = probe()?;
    if let Ok(mut g) = CACHE.lock() {
        *g = Some(s.clone());
    }
    Ok(s)
}

fn probe() -> Result<ExtensionSupport, NetError> {
    let d = load_dispatcher(
        Flavor::Xdp,
        &[SlotConfig {
            mask: RETURN_BIT,
            priority: 0,
        }],
    )?;
    let what = "probing extension programs";
    let mut ebpf = EbpfLoader::with_btf(None)
        .extension("xdp_pass")
        .load(XDP_DISPATCHER)
        .map_err(|e| from_ebpf_error(what, e))?;
    let prog = ebpf
        .program_mut("xdp_pass")
        .ok_or_else(|| NetError::NotFound("xdp_pass missing from the embedded object".into()))?;
    let ext: &mut Extension = prog.try_into().map_err(|e| from_program_error(what, e))?;
    let target = d.fd.try_clone().map_err(|e| NetError::kernel(what, e))?;
    if let Err(e) = ext.load(target, "prog0") {
        let e = from_program_error(what, e);
        return match e.errno() {
            errno if is_refusal(errno) => {
                Ok(ExtensionSupport::Refused(errno_name(errno.unwrap_or(0))))
            }
            _ => Err(e),
        };
    }
    if let Err(e) = ext.attach() {
        let e = from_program_error(what, e);
        return match e.errno() {
            errno if is_refusal(errno) => {
                Ok(ExtensionSupport::Refused(errno_name(errno.unwrap_or(0))))
            }
            _ => Err(e),
        };
    }
    Ok(ExtensionSupport::Supported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_layout_matches_libxdp() {
        let slots = [
            SlotConfig {
                mask: (1 << 2) | RETURN_BIT,
                priority: 10,
            },
            SlotConfig {
                mask: RETURN_BIT,
                priority: 50,
            },
        ];
        let b = config_bytes(Flavor::Xdp, &slots);
        assert_eq!(CONFIG_SIZE, 124);
        assert_eq!(&b[..4], &[236, 2, 2, 0]);
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), 0x8000_0004);
        assert_eq!(u32::from_ne_bytes(b[44..48].try_into().unwrap()), 10);
        assert_eq!(u32::from_ne_bytes(b[48..52].try_into().unwrap()), 50);
        assert_eq!(parse_config(&b).unwrap(), slots.to_vec());
        assert_eq!(config_bytes(Flavor::Tc, &[])[..3], [0xbf, 1, 0]);
    }

    #[test]
    fn loaded_config_reads_back() -> Result<(), NetError> {
        // Loading needs CAP_BPF; the kernel suites run as root.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return Ok(());
        }
        let slots = [SlotConfig {
            mask: (1 << 2) | RETURN_BIT,
            priority: 7,
        }];
        for flavor in [Flavor::Xdp, Flavor::Tc] {
            let d = load_dispatcher(flavor, &slots)?;
            let fd =
                d.fd.as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| NetError::kernel("cloning", e))?;
            assert_eq!(read_config(&fd)?, slots.to_vec());
        }
        Ok(())
    }

    #[test]
    fn embedded_objects_have_the_protocol_names() {
        // The objects are committed; a stale build would break libxdp
        // recognition silently, so check the names the protocol relies on.
        let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        assert!(find(XDP_DISPATCHER, b"xdp_dispatcher"));
        assert!(find(XDP_DISPATCHER, b"xdp_metadata"));
        assert!(find(XDP_DISPATCHER, b"prog9"));
        assert!(find(XDP_DISPATCHER, b"xdp_pass"));
        assert!(find(TC_DISPATCHER, b"tc_dispatcher"));
    }
}
