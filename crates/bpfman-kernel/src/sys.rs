//! Raw `bpf(2)` calls that aya keeps crate-private: pin and get by path,
//! info by fd, id iteration, and the tiny load used to probe trampolines.
//!
//! The attribute and info layouts come from aya-obj's generated kernel
//! bindings, so they match the kernel ABI aya itself uses.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_cmd, bpf_link_info, bpf_map_info, bpf_prog_info, bpf_prog_type,
};

use crate::pin::ObjectKind;

/// Issues one `bpf(2)` call.
fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised `bpf_attr` that outlives the call,
    // and we pass its exact size; the kernel reads and writes only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            mem::size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A zeroed attribute union: all-zero is the kernel's "unset" for every field.
fn zeroed_attr() -> bpf_attr {
    // SAFETY: `bpf_attr` is a plain-old-data union of integers; all-zero is valid.
    unsafe { mem::zeroed() }
}

/// Wraps the fd a successful call returned.
fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::other("bpf(2) returned a bad fd"))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Fds are never negative once borrowed.
    fd.as_raw_fd() as u32
}

/// The path as a C string (a NUL inside the path is an invalid argument).
pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} contains a NUL byte", path.display()),
        )
    })
}

/// `BPF_OBJ_GET`: a new fd for the object pinned at `path`.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let cpath = c_path(path)?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = cpath.as_ptr() as u64;
    let ret = sys_bpf(bpf_cmd::BPF_OBJ_GET, &mut attr)?;
    owned_fd(ret)
}

/// `BPF_OBJ_PIN`: pins the object behind `fd` at `path` (which must not exist).
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let cpath = c_path(path)?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = cpath.as_ptr() as u64;
    attr.__bindgen_anon_4.bpf_fd = fd_u32(fd);
    sys_bpf(bpf_cmd::BPF_OBJ_PIN, &mut attr).map(drop)
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info`, whose type must match the object's kind.
fn obj_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = zeroed_attr();
    attr.info.bpf_fd = fd_u32(fd);
    attr.info.info_len = mem::size_of::<T>() as u32;
    attr.info.info = info as *mut T as u64;
    sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// Program info without the map ids (one call).
pub(crate) fn prog_info_only(fd: BorrowedFd<'_>) -> io::Result<bpf_prog_info> {
    // SAFETY: plain-old-data kernel struct; all-zero asks for nothing extra.
    let mut info: bpf_prog_info = unsafe { mem::zeroed() };
    obj_info(fd, &mut info)?;
    Ok(info)
}

/// Program info plus the ids of the maps it uses.
pub(crate) fn prog_info(fd: BorrowedFd<'_>) -> io::Result<(bpf_prog_info, Vec<u32>)> {
    // SAFETY: plain-old-data kernel struct; all-zero asks for nothing extra.
    let mut info: bpf_prog_info = unsafe { mem::zeroed() };
    obj_info(fd, &mut info)?;
    if info.nr_map_ids == 0 {
        return Ok((info, Vec::new()));
    }
    // Second call with a buffer the kernel fills with map ids.
    let mut ids = vec![0u32; info.nr_map_ids as usize];
    // SAFETY: as above.
    let mut with_ids: bpf_prog_info = unsafe { mem::zeroed() };
    with_ids.nr_map_ids = ids.len() as u32;
    with_ids.map_ids = ids.as_mut_ptr() as u64;
    obj_info(fd, &mut with_ids)?;
    ids.truncate(with_ids.nr_map_ids as usize);
    Ok((with_ids, ids))
}

/// Map info.
pub(crate) fn map_info(fd: BorrowedFd<'_>) -> io::Result<bpf_map_info> {
    // SAFETY: plain-old-data kernel struct.
    let mut info: bpf_map_info = unsafe { mem::zeroed() };
    obj_info(fd, &mut info)?;
    Ok(info)
}

/// Link info (type, id, program id; the per-type union is left unread).
pub(crate) fn link_info(fd: BorrowedFd<'_>) -> io::Result<bpf_link_info> {
    // SAFETY: plain-old-data kernel struct.
    let mut info: bpf_link_info = unsafe { mem::zeroed() };
    obj_info(fd, &mut info)?;
    Ok(info)
}

/// The kinds of kernel objects with ids.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdSpace {
    Program,
    Map,
    Link,
}

impl IdSpace {
    fn next_cmd(self) -> bpf_cmd {
        match self {
            IdSpace::Program => bpf_cmd::BPF_PROG_GET_NEXT_ID,
            IdSpace::Map => bpf_cmd::BPF_MAP_GET_NEXT_ID,
            IdSpace::Link => bpf_cmd::BPF_LINK_GET_NEXT_ID,
        }
    }

    fn fd_cmd(self) -> bpf_cmd {
        match self {
            IdSpace::Program => bpf_cmd::BPF_PROG_GET_FD_BY_ID,
            IdSpace::Map => bpf_cmd::BPF_MAP_GET_FD_BY_ID,
            IdSpace::Link => bpf_cmd::BPF_LINK_GET_FD_BY_ID,
        }
    }
}

/// The next id after `start`, or `None` at the end.
fn next_id(space: IdSpace, start: u32) -> io::Result<Option<u32>> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.start_id = start;
    match sys_bpf(space.next_cmd(), &mut attr) {
        // SAFETY: the kernel filled `next_id` of this same union member.
        Ok(_) => Ok(Some(unsafe { attr.__bindgen_anon_6.next_id })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every live id of one kind, ascending.
pub(crate) fn all_ids(space: IdSpace) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    let mut cur = 0;
    while let Some(id) = next_id(space, cur)? {
        ids.push(id);
        cur = id;
    }
    Ok(ids)
}

/// An fd for the object with this id, or `None` when there is no such object.
pub(crate) fn fd_by_id(space: IdSpace, id: u32) -> io::Result<Option<OwnedFd>> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.start_id = id;
    match sys_bpf(space.fd_cmd(), &mut attr) {
        Ok(ret) => owned_fd(ret).map(Some),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What kind of BPF object an fd refers to. The kernel has no type query
/// that works for every kind, so this reads the keys of the fd's fdinfo
/// (`link_type`, `map_type`, `prog_type`), and falls back on the anon-inode
/// name (`anon_inode:bpf-prog`, `bpf-map`, `bpf-link`, once `bpf_link`).
pub(crate) fn object_kind(fd: BorrowedFd<'_>) -> io::Result<ObjectKind> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    let has = |key: &str| {
        info.lines()
            .any(|l| l.split_once(':').is_some_and(|(k, _)| k.trim() == key))
    };
    // A link's fdinfo also names its program (prog_id), so links come first.
    if has("link_type") {
        return Ok(ObjectKind::Link);
    }
    if has("map_type") {
        return Ok(ObjectKind::Map);
    }
    if has("prog_type") {
        return Ok(ObjectKind::Program);
    }
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    Ok(match target.as_os_str().as_bytes() {
        b"anon_inode:bpf-prog" => ObjectKind::Program,
        b"anon_inode:bpf-map" => ObjectKind::Map,
        b"anon_inode:bpf-link" | b"anon_inode:bpf_link" => ObjectKind::Link,
        _ => ObjectKind::Other,
    })
}

/// A numeric field of `/proc/self/fdinfo/<fd>` (e.g. `memlock`).
pub(crate) fn fdinfo_u64(fd: BorrowedFd<'_>, key: &str) -> Option<u64> {
    use std::io::Read as _;
    // One read into a buffer that holds a BPF fdinfo whole (about 300 bytes)
    // instead of read_to_string's stat and growing reads: `list` does this
    // once per program.
    let mut f = std::fs::File::open(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = std::str::from_utf8(&buf[..len]).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Loads `r0 = 0; exit` as an fentry program on the BTF function `attach_btf_id`
/// of vmlinux: succeeds only where trampoline programs may load.
pub(crate) fn load_probe_fentry(attach_btf_id: u32) -> io::Result<OwnedFd> {
    // mov64 r0, 0 ; exit  (opcode in the low byte, little endian).
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    let mut attr = zeroed_attr();
    // SAFETY: writing plain integers into the PROG_LOAD member of a zeroed union.
    let load = unsafe { &mut attr.__bindgen_anon_3 };
    load.prog_type = bpf_prog_type::BPF_PROG_TYPE_TRACING as u32;
    load.expected_attach_type = bpf_attach_type::BPF_TRACE_FENTRY as u32;
    load.insns = insns.as_ptr() as u64;
    load.insn_cnt = insns.len() as u32;
    load.license = license.as_ptr() as u64;
    load.attach_btf_id = attach_btf_id;
    let ret = sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)?;
    owned_fd(ret)
}

/// `BPF_ENABLE_STATS` (`BPF_STATS_RUN_TIME`): the kernel counts every
/// program's runs and run time for as long as the returned fd is open.
pub(crate) fn enable_run_time_stats() -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.enable_stats.type_ = aya_obj::generated::bpf_stats_type::BPF_STATS_RUN_TIME as u32;
    let ret = sys_bpf(bpf_cmd::BPF_ENABLE_STATS, &mut attr)?;
    owned_fd(ret)
}
