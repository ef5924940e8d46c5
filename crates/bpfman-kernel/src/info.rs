//! Facts the kernel reports: programs, maps and links by id or by pin.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aya_obj::generated::{bpf_map_info, bpf_prog_info};
use bpfman_core::{KernelMapInfo, KernelProgramInfo};

use crate::error::KernelError;
use crate::pin::{ObjectKind, open_pinned};
use crate::sys::{self, IdSpace};
use bpfman_core::{KernelLinkId, MapId, ProgramId};

/// What the kernel knows about program `id`; `None` if there is no such program.
pub fn program_info(id: ProgramId) -> Result<Option<KernelProgramInfo>, KernelError> {
    let fd = sys::fd_by_id(IdSpace::Program, id.get())
        .map_err(|e| KernelError::io(format!("opening program {id}"), e))?;
    match fd {
        None => Ok(None),
        Some(fd) => program_info_by_fd(fd.as_fd()).map(Some),
    }
}

/// What the kernel knows about each of `ids`, in the same order (`None`
/// for a program that is gone). Long lists are read on a few threads: each
/// program costs half a dozen syscalls, and `list` asks for all of them.
pub fn programs_info(ids: &[ProgramId]) -> Result<Vec<Option<KernelProgramInfo>>, KernelError> {
    const PER_THREAD: usize = 128;
    // A short list (a load) is read here without asking how many CPUs
    // there are first: that reads half a dozen cgroup files.
    let cpus = if ids.len() <= PER_THREAD {
        1
    } else {
        parallelism()
    };
    let threads = ids.len().div_ceil(PER_THREAD).min(cpus);
    if threads <= 1 {
        return ids.iter().map(|&id| program_info(id)).collect();
    }
    let chunk = ids.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = ids
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&id| program_info(id))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for part in parts {
            let facts = part.join().map_err(|_| {
                KernelError::Other("a thread reading program facts panicked".into())
            })??;
            out.extend(facts);
        }
        Ok(out)
    })
}

/// CPUs this process may use, at most 4 (more threads buy nothing for a
/// thousand programs), read once.
fn parallelism() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    })
}

/// Every program loaded in the kernel (by anyone), ascending by id.
pub fn loaded_programs() -> Result<Vec<KernelProgramInfo>, KernelError> {
    let ids: Vec<ProgramId> = live_program_ids()?.into_iter().collect();
    // A program may go away between listing and opening: skip it.
    Ok(programs_info(&ids)?.into_iter().flatten().collect())
}

/// Ids of every live program.
pub fn live_program_ids() -> Result<BTreeSet<ProgramId>, KernelError> {
    sys::all_ids(IdSpace::Program)
        .map(|v| v.into_iter().map(ProgramId).collect())
        .map_err(|e| KernelError::io("listing program ids", e))
}

/// Ids of every live link.
pub fn live_link_ids() -> Result<BTreeSet<KernelLinkId>, KernelError> {
    sys::all_ids(IdSpace::Link)
        .map(|v| v.into_iter().map(KernelLinkId).collect())
        .map_err(|e| KernelError::io("listing link ids", e))
}

/// Ids of every live map.
pub fn live_map_ids() -> Result<BTreeSet<MapId>, KernelError> {
    sys::all_ids(IdSpace::Map)
        .map(|v| v.into_iter().map(MapId).collect())
        .map_err(|e| KernelError::io("listing map ids", e))
}

/// Kernel facts about the map pinned at `path`.
pub fn map_info_by_pin(path: &Path) -> Result<KernelMapInfo, KernelError> {
    let obj = open_pinned(path)?.expect_kind(ObjectKind::Map, path)?;
    let info = sys::map_info(obj.as_fd())
        .map_err(|e| KernelError::io(format!("reading map info of {}", path.display()), e))?;
    Ok(convert_map_info(&info))
}

/// Kernel id of the link pinned at `path`.
pub fn link_id_by_pin(path: &Path) -> Result<KernelLinkId, KernelError> {
    let obj = open_pinned(path)?.expect_kind(ObjectKind::Link, path)?;
    sys::link_info(obj.as_fd())
        .map(|i| KernelLinkId(i.id))
        .map_err(|e| KernelError::io(format!("reading link info of {}", path.display()), e))
}

/// Kernel id of the program pinned at `path`.
pub fn program_id_by_pin(path: &Path) -> Result<ProgramId, KernelError> {
    let obj = open_pinned(path)?.expect_kind(ObjectKind::Program, path)?;
    sys::prog_info(obj.as_fd())
        .map(|i| ProgramId(i.id))
        .map_err(|e| KernelError::io(format!("reading program info of {}", path.display()), e))
}

/// Full program facts from an open program fd.
pub(crate) fn program_info_by_fd(fd: BorrowedFd<'_>) -> Result<KernelProgramInfo, KernelError> {
    let (info, map_ids) =
        sys::prog_info_with_map_ids(fd).map_err(|e| KernelError::io("reading program info", e))?;
    let memlock = sys::fdinfo_u64(fd, "memlock").unwrap_or(0);
    Ok(convert_prog_info(&info, map_ids, memlock))
}

fn convert_prog_info(info: &bpf_prog_info, map_ids: Vec<u32>, memlock: u64) -> KernelProgramInfo {
    KernelProgramInfo {
        id: ProgramId(info.id),
        name: sys::c_name(&info.name),
        program_type: info.type_,
        loaded_at: if info.load_time == 0 {
            String::new()
        } else {
            rfc3339_utc(boot_time() + Duration::from_nanos(info.load_time))
        },
        tag: hex(&info.tag),
        gpl_compatible: info.gpl_compatible() != 0,
        map_ids: map_ids.into_iter().map(MapId).collect(),
        btf_id: info.btf_id,
        bytes_xlated: info.xlated_prog_len,
        jited: info.jited_prog_len > 0,
        bytes_jited: info.jited_prog_len,
        bytes_memlock: u32::try_from(memlock).unwrap_or(u32::MAX),
        verified_insns: info.verified_insns,
    }
}

fn convert_map_info(info: &bpf_map_info) -> KernelMapInfo {
    KernelMapInfo {
        id: MapId(info.id),
        name: sys::c_name(&info.name),
        map_type: map_type_name(info.type_),
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        flags: info.map_flags,
    }
}

/// The lowercase name of a kernel `bpf_map_type` (as bpftool prints it).
pub fn map_type_name(map_type: u32) -> String {
    const NAMES: [&str; 34] = [
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];
    NAMES
        .get(map_type as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("unknown({map_type})"))
}

/// Wall-clock time of boot: program load times are nanoseconds since boot
/// (`CLOCK_BOOTTIME`), so this turns them into dates.
fn boot_time() -> SystemTime {
    let since_boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|ts| Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().max(0) as u32))
        .unwrap_or_default();
    SystemTime::now()
        .checked_sub(since_boot)
        .unwrap_or(UNIX_EPOCH)
}

/// Formats a time as RFC 3339 in UTC with second precision
/// (`2024-05-01T12:34:56Z`); times before 1970 print as the epoch.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    // By hand: `list --all` formats one per program, and format! costs ~3k
    // instructions a call.
    let mut out = String::with_capacity(20);
    let parts = [
        (y.max(0) as u64, 4, '-'),
        (u64::from(m), 2, '-'),
        (u64::from(d), 2, 'T'),
        (rem / 3600, 2, ':'),
        ((rem % 3600) / 60, 2, ':'),
        (rem % 60, 2, 'Z'),
    ];
    for (v, width, sep) in parts {
        push_padded(&mut out, v, width);
        out.push(sep);
    }
    out
}

/// Appends `v` in decimal, zero-padded to `width` digits.
fn push_padded(out: &mut String, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = buf.len() - start;
    out.extend(std::iter::repeat_n('0', width.saturating_sub(len)));
    out.extend(buf[start..].iter().map(|&c| char::from(c)));
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> String {
        rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xd4, 0xff]), "000fd4ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn names_map_types() {
        assert_eq!(map_type_name(2), "array");
        assert_eq!(map_type_name(6), "percpu_array");
        assert_eq!(map_type_name(27), "ringbuf");
        assert_eq!(map_type_name(999), "unknown(999)");
    }

    #[test]
    fn c_names_stop_at_nul() {
        let mut raw = [0 as std::ffi::c_char; 16];
        for (i, b) in b"counts".iter().enumerate() {
            raw[i] = *b as std::ffi::c_char;
        }
        assert_eq!(sys::c_name(&raw), "counts");
    }
}
