//! The kernel's BTF (`/sys/kernel/btf/vmlinux`), parsed only for loads that
//! need it and then kept for the life of the process.
//!
//! Parsing it costs tens of milliseconds and several MiB, which is most of
//! what a plain load would otherwise cost: objects without CO-RE relocations
//! (and programs that do not attach by BTF id) never pay it. A daemon that
//! parsed it once reuses it for every later load.

use std::sync::OnceLock;

use aya::{Btf, EbpfLoader};

use crate::error::{KernelError, chain};

/// The parsed kernel BTF, or why it could not be read (also kept: a kernel
/// without BTF does not grow it later).
static VMLINUX: OnceLock<Result<Btf, String>> = OnceLock::new();

/// The kernel's BTF, parsed on first use.
pub fn vmlinux() -> Result<&'static Btf, KernelError> {
    VMLINUX
        .get_or_init(|| Btf::from_sys_fs().map_err(|e| chain(&e)))
        .as_ref()
        .map_err(|e| {
            KernelError::Unsupported(format!(
                "this kernel has no usable BTF at /sys/kernel/btf/vmlinux: {e}"
            ))
        })
}

/// Whether [`vmlinux`] has been parsed in this process (for diagnostics and
/// tests: loads that do not need it leave it unparsed).
pub fn vmlinux_parsed() -> bool {
    VMLINUX.get().is_some()
}

/// A loader for an object with (`core`) or without CO-RE relocations: the
/// kernel BTF is passed only when relocations need it. An object with
/// relocations on a kernel without BTF fails to load with aya's own error.
pub fn loader(core: bool) -> EbpfLoader<'static> {
    EbpfLoader::with_btf(if core { vmlinux().ok() } else { None })
}

/// A loader for the object `elf`, with the kernel BTF only if the object
/// has CO-RE relocations (an object that does not parse gets none, and
/// fails to load with aya's own error).
pub fn loader_for(elf: &[u8]) -> EbpfLoader<'static> {
    loader(aya_obj::Object::parse(elf).is_ok_and(|o| o.has_btf_relocations()))
}
