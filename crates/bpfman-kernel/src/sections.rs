//! Section names aya understands, decided by bpfman's table.
//!
//! aya 0.14 builds each program from its own reading of the ELF section name
//! (`aya_obj::ProgramSection::from_str`), which knows fewer names than libbpf
//! (no `tc`, `tcx/ingress`, `ksyscall/…`, `kprobe.multi/…`) and fails the
//! whole object on a name it does not know. aya offers no way to pass the
//! program kind in, so before aya sees the object, every program section is
//! renamed to the name aya reads as the kind [`bpfman_core::section`] gives
//! it (`tc` → `classifier/tc`). Sections of kinds bpfman does not manage that
//! aya cannot read either get a placeholder name aya reads (`socket/…`): they
//! are never loaded, but the rest of the object stays loadable.
//!
//! Renaming touches three places that name a section: the section header
//! (`.shstrtab`), and the BTF strings `.BTF.ext` points at for the func/line
//! info and CO-RE relocations of the section (aya finds them by name). New
//! names are appended: a new `.shstrtab` and a new `.BTF` go at the end of
//! the file, the old bytes stay where they are, unreferenced.

use std::collections::BTreeMap;
use std::str::FromStr;

use aya_obj::ProgramSection;
use aya_obj::programs::XdpAttachType;
use bpfman_core::ProgramKind;
use bpfman_core::section::{SectionInfo, parse_section};

use crate::error::KernelError;

/// The section name aya reads as `info`'s kind and load flags.
fn aya_name(info: &SectionInfo) -> &'static str {
    use ProgramKind as K;
    match (info.kind, info.sleepable) {
        (K::Xdp, _) if info.xdp_frags => "xdp.frags",
        (K::Xdp, _) => "xdp",
        (K::Tc | K::Tcx, _) => "classifier",
        (K::Tracepoint, _) => "tracepoint",
        (K::Kprobe, _) => "kprobe",
        (K::Kretprobe, _) => "kretprobe",
        (K::Uprobe, false) => "uprobe",
        (K::Uprobe, true) => "uprobe.s",
        (K::Uretprobe, false) => "uretprobe",
        (K::Uretprobe, true) => "uretprobe.s",
        (K::Fentry, false) => "fentry",
        (K::Fentry, true) => "fentry.s",
        (K::Fexit, false) => "fexit",
        (K::Fexit, true) => "fexit.s",
    }
}

/// Whether aya reads `name` as exactly what `info` says.
fn aya_agrees(name: &str, info: &SectionInfo) -> bool {
    use ProgramKind as K;
    use ProgramSection as S;
    let Ok(section) = ProgramSection::from_str(name) else {
        return false;
    };
    match (section, info.kind) {
        (
            S::Xdp {
                frags,
                attach_type: XdpAttachType::Interface,
            },
            K::Xdp,
        ) => frags == info.xdp_frags,
        (S::SchedClassifier, K::Tc | K::Tcx)
        | (S::TracePoint, K::Tracepoint)
        | (S::KProbe, K::Kprobe)
        | (S::KRetProbe, K::Kretprobe) => true,
        (S::UProbe { sleepable }, K::Uprobe)
        | (S::URetProbe { sleepable }, K::Uretprobe)
        | (S::FEntry { sleepable }, K::Fentry)
        | (S::FExit { sleepable }, K::Fexit) => sleepable == info.sleepable,
        _ => false,
    }
}

/// The name aya must see for a program section named `name`, or `None` to
/// keep it. `Err` only for a table row aya has no name for (a bug).
pub(crate) fn aya_section_name(name: &str) -> Result<Option<String>, KernelError> {
    match parse_section(name) {
        Some(info) if aya_agrees(name, &info) => Ok(None),
        Some(info) => {
            // aya ignores what follows the first `/` for these kinds; the
            // original name after it keeps section names unique.
            let renamed = format!("{}/{name}", aya_name(&info));
            if aya_agrees(&renamed, &info) {
                Ok(Some(renamed))
            } else {
                Err(KernelError::Other(format!(
                    "section '{name}' has no name the loader reads as {}",
                    info.kind
                )))
            }
        }
        // Not ours: aya may read it as whatever it likes (it is never loaded),
        // but must not fail the whole object on it.
        None if ProgramSection::from_str(name).is_ok() => Ok(None),
        None => Ok(Some(format!("socket/{name}"))),
    }
}

/// Whether aya treats a section as a program section (its `EbpfSectionKind`
/// rules: an executable, non-empty section whose name is none of its own).
fn is_program_section(name: &str, flags: u64, size: u64) -> bool {
    const SHF_EXECINSTR: u64 = 0x4;
    let reserved = [
        "license", "version", "maps", ".maps", ".text", ".bss", ".data", ".rodata",
    ];
    flags & SHF_EXECINSTR != 0
        && size > 0
        && !reserved.iter().any(|r| name.starts_with(r))
        && name != ".BTF"
        && name != ".BTF.ext"
}

/// The object as aya must see it: program sections renamed so aya builds each
/// program as the kind bpfman's table gives its section. `None`: no change needed.
pub(crate) fn for_aya(bytes: &[u8]) -> Result<Option<Vec<u8>>, KernelError> {
    let elf = Elf::parse(bytes)?;
    let mut renames = BTreeMap::new();
    for i in 0..elf.shnum {
        let sh = elf.shdr(i)?;
        let name = elf.section_name(&sh)?;
        if is_program_section(name, sh.flags, sh.size)
            && let Some(new) = aya_section_name(name)?
        {
            renames.insert(i, (name.to_string(), new));
        }
    }
    if renames.is_empty() {
        return Ok(None);
    }
    elf.rename(&renames).map(Some)
}

fn damaged(what: &str) -> KernelError {
    KernelError::NotBpf(format!("a damaged ELF file ({what})"))
}

/// The few ELF64 header fields renaming needs.
struct Elf<'a> {
    bytes: &'a [u8],
    little: bool,
    shoff: usize,
    shentsize: usize,
    shnum: usize,
    shstrndx: usize,
}

/// One section header.
struct Shdr {
    /// File offset of the header itself.
    at: usize,
    name: u32,
    flags: u64,
    offset: u64,
    size: u64,
}

impl<'a> Elf<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Elf<'a>, KernelError> {
        if bytes.len() < 64 || !bytes.starts_with(b"\x7fELF") {
            return Err(KernelError::NotBpf("not an ELF file".into()));
        }
        if bytes[4] != 2 {
            return Err(KernelError::NotBpf(
                "a 32-bit ELF file (BPF objects are ELF64)".into(),
            ));
        }
        let little = match bytes[5] {
            1 => true,
            2 => false,
            _ => return Err(damaged("unknown byte order")),
        };
        let mut elf = Elf {
            bytes,
            little,
            shoff: 0,
            shentsize: 0,
            shnum: 0,
            shstrndx: 0,
        };
        elf.shoff = usize::try_from(elf.u64(0x28)?).map_err(|_| damaged("section table"))?;
        elf.shentsize = usize::from(elf.u16(0x3a)?);
        elf.shnum = usize::from(elf.u16(0x3c)?);
        elf.shstrndx = usize::from(elf.u16(0x3e)?);
        // 0 sections or SHN_XINDEX: the counts live elsewhere; clang never writes that.
        if elf.shentsize < 64 || elf.shnum == 0 || elf.shstrndx >= elf.shnum {
            return Err(damaged("section table"));
        }
        Ok(elf)
    }

    fn get(&self, at: usize, len: usize) -> Result<&'a [u8], KernelError> {
        at.checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| damaged("offset out of the file"))
    }

    fn u16(&self, at: usize) -> Result<u16, KernelError> {
        let b: [u8; 2] = self.get(at, 2)?.try_into().expect("2 bytes");
        Ok(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Result<u32, KernelError> {
        read_u32(self.bytes, at, self.little)
    }

    fn u64(&self, at: usize) -> Result<u64, KernelError> {
        let b: [u8; 8] = self.get(at, 8)?.try_into().expect("8 bytes");
        Ok(if self.little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }

    fn shdr(&self, i: usize) -> Result<Shdr, KernelError> {
        let at = self.shoff + i * self.shentsize;
        Ok(Shdr {
            at,
            name: self.u32(at)?,
            flags: self.u64(at + 8)?,
            offset: self.u64(at + 24)?,
            size: self.u64(at + 32)?,
        })
    }

    fn data(&self, sh: &Shdr) -> Result<&'a [u8], KernelError> {
        let at = usize::try_from(sh.offset).map_err(|_| damaged("section offset"))?;
        let len = usize::try_from(sh.size).map_err(|_| damaged("section size"))?;
        self.get(at, len)
    }

    fn section_name(&self, sh: &Shdr) -> Result<&'a str, KernelError> {
        let strtab = self.data(&self.shdr(self.shstrndx)?)?;
        cstr(strtab, sh.name as usize).ok_or_else(|| damaged("section name"))
    }

    /// A copy with the sections at the given indices renamed (index -> (old, new)).
    fn rename(&self, renames: &BTreeMap<usize, (String, String)>) -> Result<Vec<u8>, KernelError> {
        let mut out = self.bytes.to_vec();
        let strtab_hdr = self.shdr(self.shstrndx)?;
        let mut strtab = self.data(&strtab_hdr)?.to_vec();
        for (&i, (_, new)) in renames {
            let off = u32::try_from(strtab.len()).map_err(|_| damaged("section names"))?;
            strtab.extend_from_slice(new.as_bytes());
            strtab.push(0);
            put_u32(&mut out, self.shdr(i)?.at, off, self.little);
        }
        let mut btf_hdr = None;
        let mut ext_hdr = None;
        for i in 0..self.shnum {
            let sh = self.shdr(i)?;
            match self.section_name(&sh)? {
                ".BTF" => btf_hdr = Some(sh),
                ".BTF.ext" => ext_hdr = Some(sh),
                _ => {}
            }
        }
        let new_btf = match (btf_hdr, ext_hdr) {
            (Some(btf), Some(ext)) => {
                let data = self.rename_in_btf(&mut out, &btf, &ext, renames)?;
                Some((btf, data))
            }
            _ => None,
        };
        let append = |out: &mut Vec<u8>, hdr: &Shdr, data: &[u8]| {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            let at = out.len() as u64;
            out.extend_from_slice(data);
            put_u64(out, hdr.at + 24, at, self.little);
            put_u64(out, hdr.at + 32, data.len() as u64, self.little);
        };
        append(&mut out, &strtab_hdr, &strtab);
        if let Some((hdr, data)) = new_btf {
            append(&mut out, &hdr, &data);
        }
        Ok(out)
    }

    /// Appends the new names to the BTF strings and points the `.BTF.ext`
    /// records of renamed sections at them (in `out`, in place). Returns the new `.BTF`.
    fn rename_in_btf(
        &self,
        out: &mut [u8],
        btf: &Shdr,
        ext: &Shdr,
        renames: &BTreeMap<usize, (String, String)>,
    ) -> Result<Vec<u8>, KernelError> {
        let data = self.data(btf)?;
        let le = self.little;
        let bad = || damaged("BTF header");
        let hdr_len = read_u32(data, 4, le)? as usize;
        let (type_off, type_len) = (read_u32(data, 8, le)? as usize, read_u32(data, 12, le)?);
        let (str_off, str_len) = (read_u32(data, 16, le)? as usize, read_u32(data, 20, le)?);
        let types = slice(data, hdr_len + type_off, type_len as usize).ok_or_else(bad)?;
        let strs = slice(data, hdr_len + str_off, str_len as usize).ok_or_else(bad)?;
        let mut new_strs = strs.to_vec();
        let mut new_off: BTreeMap<&str, u32> = BTreeMap::new();
        for (old, new) in renames.values() {
            let off = u32::try_from(new_strs.len()).map_err(|_| bad())?;
            new_strs.extend_from_slice(new.as_bytes());
            new_strs.push(0);
            new_off.insert(old.as_str(), off);
        }

        // .BTF.ext: func_info, line_info and (when the header has them) CO-RE
        // relocations, each `rec_size` then records of {sec_name_off, n, n * rec}.
        let ext_at = usize::try_from(ext.offset).map_err(|_| bad())?;
        let ext_data = self.data(ext)?;
        let ext_hdr_len = read_u32(ext_data, 4, le)? as usize;
        let mut subsections = vec![(8, 12), (16, 20)];
        if ext_hdr_len >= 32 {
            subsections.push((24, 28));
        }
        for (off_at, len_at) in subsections {
            let start = ext_hdr_len + read_u32(ext_data, off_at, le)? as usize;
            let len = read_u32(ext_data, len_at, le)? as usize;
            if len == 0 {
                continue;
            }
            let end = start + len;
            let rec_size = read_u32(ext_data, start, le)? as usize;
            let mut p = start + 4;
            while p + 8 <= end {
                let name_off = read_u32(ext_data, p, le)? as usize;
                let n = read_u32(ext_data, p + 4, le)? as usize;
                let name = cstr(strs, name_off).ok_or_else(|| damaged("BTF.ext section name"))?;
                if let Some(&off) = new_off.get(name) {
                    put_u32(out, ext_at + p, off, le);
                }
                p += 8 + n * rec_size;
            }
        }

        // Header (its own length, unchanged) + types + strings.
        let mut new = data.get(..hdr_len).ok_or_else(bad)?.to_vec();
        let new_str_len = u32::try_from(new_strs.len()).map_err(|_| bad())?;
        put_u32(&mut new, 8, 0, le);
        put_u32(&mut new, 16, type_len, le);
        put_u32(&mut new, 20, new_str_len, le);
        new.extend_from_slice(types);
        new.extend_from_slice(&new_strs);
        Ok(new)
    }
}

fn slice(data: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    data.get(at..at.checked_add(len)?)
}

fn read_u32(data: &[u8], at: usize, little: bool) -> Result<u32, KernelError> {
    let b: [u8; 4] = slice(data, at, 4)
        .ok_or_else(|| damaged("offset out of the file"))?
        .try_into()
        .expect("4 bytes");
    Ok(if little {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

fn put_u32(out: &mut [u8], at: usize, v: u32, little: bool) {
    let b = if little {
        v.to_le_bytes()
    } else {
        v.to_be_bytes()
    };
    out[at..at + 4].copy_from_slice(&b);
}

fn put_u64(out: &mut [u8], at: usize, v: u64, little: bool) {
    let b = if little {
        v.to_le_bytes()
    } else {
        v.to_be_bytes()
    };
    out[at..at + 8].copy_from_slice(&b);
}

/// The NUL-terminated UTF-8 string at `off`.
fn cstr(data: &[u8], off: usize) -> Option<&str> {
    let rest = data.get(off..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfman_core::section::{SECTIONS, TargetRule};

    #[test]
    fn every_table_row_reads_in_aya_as_its_kind() {
        for def in SECTIONS {
            let names = if def.takes_target {
                let t = match def.target {
                    TargetRule::Tracepoint => "sched/sched_switch",
                    _ => "do_unlinkat",
                };
                vec![def.name.to_string(), format!("{}/{t}", def.name)]
            } else {
                vec![def.name.to_string()]
            };
            for name in names {
                let seen = aya_section_name(&name)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .unwrap_or_else(|| name.clone());
                let parsed = ProgramSection::from_str(&seen);
                match parse_section(&name) {
                    Some(info) => assert!(aya_agrees(&seen, &info), "{name} -> {seen}"),
                    // Not ours: aya reads it somehow, so the object still parses.
                    None => assert!(parsed.is_ok(), "{name} -> {seen}"),
                }
            }
        }
    }

    #[test]
    fn renames_only_what_aya_misreads() {
        assert_eq!(aya_section_name("xdp").unwrap(), None);
        assert_eq!(aya_section_name("tracepoint/sched/x").unwrap(), None);
        assert_eq!(aya_section_name("uprobe.s").unwrap(), None);
        assert_eq!(
            aya_section_name("tc").unwrap().as_deref(),
            Some("classifier/tc")
        );
        assert_eq!(
            aya_section_name("tcx/ingress").unwrap().as_deref(),
            Some("classifier/tcx/ingress")
        );
        assert_eq!(
            aya_section_name("ksyscall/kill").unwrap().as_deref(),
            Some("kprobe/ksyscall/kill")
        );
        // Not ours, known to aya: left alone; unknown to both: a placeholder.
        assert_eq!(aya_section_name("raw_tp/sched_switch").unwrap(), None);
        assert_eq!(
            aya_section_name("usdt/x").unwrap().as_deref(),
            Some("socket/usdt/x")
        );
    }

    #[test]
    fn renamed_object_keeps_btf_info_and_kinds() {
        let raw = include_bytes!("../../../tests/bpf/sections.bpf.o");
        let orig = crate::object::AlignedBytes::new(raw);
        // aya alone refuses the object.
        assert!(aya_obj::Object::parse(orig.as_slice()).is_err());
        let renamed = for_aya(orig.as_slice()).unwrap().expect("needs renaming");
        let renamed = crate::object::AlignedBytes::new(&renamed);
        let obj = aya_obj::Object::parse(renamed.as_slice()).unwrap();
        let kind = |n: &str| &obj.programs[n].section;
        assert!(matches!(kind("tc_plain"), ProgramSection::SchedClassifier));
        assert!(matches!(
            kind("tc_ingress"),
            ProgramSection::SchedClassifier
        ));
        assert!(matches!(
            kind("tcx_egress"),
            ProgramSection::SchedClassifier
        ));
        assert!(matches!(kind("tp_switch"), ProgramSection::TracePoint));
        assert!(matches!(kind("ksys_getpid"), ProgramSection::KProbe));
        assert!(matches!(kind("raw_switch"), ProgramSection::RawTracePoint));
        assert!(matches!(kind("usdt_probe"), ProgramSection::SocketFilter));
        // Every program still finds its BTF func and line info by section name.
        for (name, p) in &obj.programs {
            let f = &obj.functions[&p.function_key()];
            assert_eq!(f.func_info.func_info.len(), 1, "{name}: func_info");
            assert!(f.line_info.num_info > 0, "{name}: line_info");
        }
        // The object crate reads the renamed file as a whole.
        let file = object::File::parse(renamed.as_slice()).unwrap();
        let names: Vec<_> = object::Object::sections(&file)
            .filter_map(|s| object::ObjectSection::name(&s).ok().map(str::to_string))
            .collect();
        for n in [
            "classifier/tc",
            "classifier/tcx/egress",
            "kprobe/ksyscall/getpid",
            "socket/usdt",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        assert!(names.iter().any(|x| x == "tp/sched/sched_switch"));
    }

    #[test]
    fn rejects_truncated_elf() {
        assert!(matches!(
            for_aya(b"\x7fELF\x02\x01"),
            Err(KernelError::NotBpf(_))
        ));
    }
}
