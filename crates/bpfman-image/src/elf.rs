//! Just enough ELF header reading to tell a BPF object, and its byte order,
//! before handing it to the loader. The header layout and constants are
//! `object`'s; the checks are ours, so that each refusal keeps its message
//! (and an `EI_VERSION` of 0, which `object`'s full parser refuses, passes
//! as it always did).

use object::Endianness;
use object::elf::{ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELFMAG, EM_BPF, FileHeader64};

/// Byte order of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

impl Endian {
    pub(crate) fn host() -> Endian {
        if cfg!(target_endian = "little") {
            Endian::Little
        } else {
            Endian::Big
        }
    }

    fn name(self) -> &'static str {
        match self {
            Endian::Little => "little-endian",
            Endian::Big => "big-endian",
        }
    }
}

/// Why an object is not a BPF ELF this host can load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ElfError {
    /// No ELF magic, or shorter than an ELF header.
    #[error("the object is not an ELF file")]
    NotElf,
    /// ELFCLASS32 or unknown.
    #[error("the object is not a 64-bit ELF (BPF objects are ELFCLASS64)")]
    Not64Bit,
    /// `EI_DATA` is neither little- nor big-endian.
    #[error("the ELF has an unknown byte order ({0})")]
    UnknownByteOrder(u8),
    /// `e_machine` is not BPF.
    #[error("the ELF is for machine {0}, not BPF ({EM_BPF}): is this a BPF object?")]
    NotBpf(u16),
    /// A BPF object of the other byte order.
    #[error(
        "the BPF object is {}, this host is {}: pick the image for this platform",
        object.name(),
        host.name()
    )]
    ForeignEndian {
        /// The object's byte order.
        object: Endian,
        /// This host's.
        host: Endian,
    },
}

/// Checks `data` is a 64-bit BPF ELF object and returns its byte order.
pub(crate) fn bpf_elf_endian(data: &[u8]) -> Result<Endian, ElfError> {
    let (header, _) =
        object::pod::from_bytes::<FileHeader64<Endianness>>(data).map_err(|_| ElfError::NotElf)?;
    let ident = &header.e_ident;
    if ident.magic != ELFMAG {
        return Err(ElfError::NotElf);
    }
    if ident.class != ELFCLASS64 {
        return Err(ElfError::Not64Bit);
    }
    let (endian, order) = match ident.data {
        ELFDATA2LSB => (Endian::Little, Endianness::Little),
        ELFDATA2MSB => (Endian::Big, Endianness::Big),
        other => return Err(ElfError::UnknownByteOrder(other)),
    };
    let machine = header.e_machine.get(order);
    if machine != EM_BPF {
        return Err(ElfError::NotBpf(machine));
    }
    Ok(endian)
}

/// Checks `data` is a BPF ELF this host can load.
pub(crate) fn check_loadable(data: &[u8]) -> Result<(), ElfError> {
    let e = bpf_elf_endian(data)?;
    if e != Endian::host() {
        return Err(ElfError::ForeignEndian {
            object: e,
            host: Endian::host(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF header for tests.
    pub(crate) fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        let m = if data == 2 {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        };
        h[18..20].copy_from_slice(&m);
        h
    }

    #[test]
    fn endianness() {
        assert_eq!(bpf_elf_endian(&header(2, 1, 247)), Ok(Endian::Little));
        assert_eq!(bpf_elf_endian(&header(2, 2, 247)), Ok(Endian::Big));
        assert!(bpf_elf_endian(&header(1, 1, 247)).is_err());
        assert!(bpf_elf_endian(&header(2, 1, 62)).is_err());
        assert!(bpf_elf_endian(b"hello").is_err());
        let foreign = if cfg!(target_endian = "little") { 2 } else { 1 };
        let e = check_loadable(&header(2, foreign, 247))
            .unwrap_err()
            .to_string();
        assert!(e.contains("endian"), "{e}");
        assert!(check_loadable(&header(2, 3 - foreign, 247)).is_ok());
    }

    #[test]
    fn the_example_object_is_loadable() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/stats/stats.bpf.o"
        );
        if let Ok(data) = std::fs::read(p) {
            check_loadable(&data).unwrap();
        }
    }
}
