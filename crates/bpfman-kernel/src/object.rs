//! What an object file holds, read from its ELF tables without the kernel.
//!
//! Programs are found the way libbpf finds them (global functions in an
//! executable section other than `.text`), so an object whose sections the
//! loader does not know can still be listed and explained.

use object::{Architecture, Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

use bpfman_core::section::parse_section;

use crate::error::KernelError;

/// A program found in an object file (the core's type: load planning reads it).
pub use bpfman_core::load::ObjectProgram;

/// A copy of an object's bytes at 8-byte alignment when the caller's are
/// not aligned (e.g. `include_bytes!`): the ELF reader (ours and aya's)
/// reads 64-bit headers in place and refuses misaligned data.
pub(crate) enum AlignedBytes<'a> {
    /// Already aligned.
    Borrowed(&'a [u8]),
    /// Copied into 8-byte words; `len` bytes are meaningful.
    Owned { words: Vec<u64>, len: usize },
}

impl<'a> AlignedBytes<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        if (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<u64>()) {
            return AlignedBytes::Borrowed(bytes);
        }
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(buf);
        }
        AlignedBytes::Owned {
            words,
            len: bytes.len(),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            AlignedBytes::Borrowed(b) => b,
            AlignedBytes::Owned { words, len } => {
                // SAFETY: `words` owns at least `len` initialised bytes (u64s
                // are plain bytes), and u8 has no alignment requirement.
                unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len) }
            }
        }
    }
}

/// Parses `bytes` as an ELF file built for BPF.
fn parse_bpf_elf(bytes: &[u8]) -> Result<object::File<'_>, KernelError> {
    let file = object::File::parse(bytes).map_err(|_| {
        let what = if bytes.starts_with(b"\x7fELF") {
            "a damaged ELF file"
        } else {
            "not an ELF file"
        };
        KernelError::NotBpf(format!(
            "{what} (expected an object built with clang -target bpf)"
        ))
    })?;
    match file.architecture() {
        Architecture::Bpf => Ok(file),
        other => Err(KernelError::NotBpf(format!(
            "an ELF file for {other:?}, not for BPF (build it with clang -target bpf)"
        ))),
    }
}

/// Programs the object holds, sorted by name.
pub fn inspect_object(bytes: &[u8]) -> Result<Vec<ObjectProgram>, KernelError> {
    let bytes = AlignedBytes::new(bytes);
    let file = parse_bpf_elf(bytes.as_slice())?;
    let mut programs = Vec::new();
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text || sym.is_local() || sym.is_undefined() {
            continue;
        }
        let Some(index) = sym.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let (Ok(section_name), Ok(name)) = (section.name(), sym.name()) else {
            continue;
        };
        // `.text` holds subprograms (called functions), never entry points.
        if section.kind() != SectionKind::Text || section_name == ".text" || name.is_empty() {
            continue;
        }
        if programs.len() == bpfman_core::limits::MAX_OBJECT_PROGRAMS {
            return Err(KernelError::NotBpf(format!(
                "the object holds more than {} programs",
                bpfman_core::limits::MAX_OBJECT_PROGRAMS
            )));
        }
        programs.push(ObjectProgram {
            name: name.to_string(),
            section: section_name.to_string(),
            kind: parse_section(section_name).map(|s| s.kind),
        });
    }
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(programs)
}

/// Names of the maps the object declares (BTF `.maps` and legacy `maps`
/// sections), sorted. The internal maps that hold global variables
/// (`.rodata`, `.data`, `.bss`) are not listed: they belong to one load and
/// are never pinned or shared.
pub fn object_maps(bytes: &[u8]) -> Result<Vec<String>, KernelError> {
    let bytes = AlignedBytes::new(bytes);
    let file = parse_bpf_elf(bytes.as_slice())?;
    let mut maps = Vec::new();
    for sym in file.symbols() {
        if matches!(sym.kind(), SymbolKind::Section | SymbolKind::File) || sym.is_undefined() {
            continue;
        }
        let Some(index) = sym.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let in_maps_section = matches!(section.name(), Ok(".maps") | Ok("maps"));
        match sym.name() {
            Ok(name) if in_maps_section && !name.is_empty() => maps.push(name.to_string()),
            _ => {}
        }
    }
    maps.sort();
    maps.dedup();
    Ok(maps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf() {
        let e = inspect_object(b"hello world").unwrap_err();
        assert!(matches!(e, KernelError::NotBpf(ref m) if m.contains("not an ELF file")));
    }

    #[test]
    fn aligns_misaligned_bytes() {
        let backing = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let unaligned = if (backing.as_ptr() as usize).is_multiple_of(8) {
            &backing[1..]
        } else {
            &backing[..]
        };
        let a = AlignedBytes::new(unaligned);
        assert_eq!(a.as_slice(), unaligned);
        assert!((a.as_slice().as_ptr() as usize).is_multiple_of(8));
    }

    #[test]
    fn rejects_host_elf() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let e = object_maps(&exe).unwrap_err();
        assert!(
            matches!(e, KernelError::NotBpf(ref m) if m.contains("not for BPF")),
            "{e}"
        );
    }
}
