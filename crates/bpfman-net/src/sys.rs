//! The few bpf(2) commands this crate issues itself: pins, links, object
//! info, TCX queries and test runs. Loading goes through aya; these are the
//! operations aya either lacks or wraps in objects that detach on drop.
//!
//! Each command's attribute is a `#[repr(C)]` prefix of the kernel's
//! `union bpf_attr` member; the kernel zero-fills the rest.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `enum bpf_attach_type` values used here.
pub(crate) const BPF_XDP: u32 = 37;
pub(crate) const BPF_TCX_INGRESS: u32 = 46;
pub(crate) const BPF_TCX_EGRESS: u32 = 47;

/// `enum bpf_link_type` values used here.
pub(crate) const BPF_LINK_TYPE_TRACING: u32 = 2;
pub(crate) const BPF_LINK_TYPE_XDP: u32 = 6;

/// `enum bpf_prog_type` values used here.
pub(crate) const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
pub(crate) const BPF_PROG_TYPE_XDP: u32 = 6;
pub(crate) const BPF_PROG_TYPE_EXT: u32 = 28;

/// Flags.
pub(crate) const BPF_F_REPLACE: u32 = 1 << 2;
pub(crate) const BPF_F_BEFORE: u32 = 1 << 3;
pub(crate) const BPF_F_AFTER: u32 = 1 << 4;
pub(crate) const BPF_F_ID: u32 = 1 << 5;
pub(crate) const BPF_F_LINK: u32 = 1 << 13;
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, fully initialised repr(C) prefix of bpf_attr
    // and its size is passed, so the kernel reads and writes only within it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: on success these commands return a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[repr(C)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// Opens the object pinned at `path`.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let p = c_path(path)?;
    let mut a = ObjAttr {
        pathname: p.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    bpf_fd(BPF_OBJ_GET, &mut a)
}

/// Pins the object behind `fd` at `path`.
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let p = c_path(path)?;
    let mut a = ObjAttr {
        pathname: p.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, &mut a).map(|_| ())
}

#[repr(C)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Opens the program with kernel id `id`.
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = GetFdByIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut a)
}

/// Opens the map with kernel id `id`.
pub(crate) fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = GetFdByIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    bpf_fd(BPF_MAP_GET_FD_BY_ID, &mut a)
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Fills `buf` (zeroed, 8-byte aligned) with the object's info struct.
fn obj_info(fd: BorrowedFd<'_>, buf: &mut [u64]) -> io::Result<()> {
    let mut a = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(buf) as u32,
        info: buf.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map(|_| ())
}

/// Reads the native-endian u32 at byte offset `off` of an info buffer.
fn u32_at(buf: &[u64], off: usize) -> u32 {
    let bytes = buf[off / 8].to_ne_bytes();
    let i = off % 8;
    u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]])
}

/// Writes the native-endian u32 at byte offset `off` of an info buffer.
fn set_u32_at(buf: &mut [u64], off: usize, v: u32) {
    let mut bytes = buf[off / 8].to_ne_bytes();
    let i = off % 8;
    bytes[i..i + 4].copy_from_slice(&v.to_ne_bytes());
    buf[off / 8] = u64::from_ne_bytes(bytes);
}

/// What this crate reads from `struct bpf_prog_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProgInfo {
    pub(crate) prog_type: u32,
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) btf_id: u32,
}

/// Reads a program's type, id, name and BTF id.
pub(crate) fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    let mut buf = [0u64; 40];
    obj_info(fd, &mut buf)?;
    // struct bpf_prog_info: type@0 id@4 ... name[16]@64 ... btf_id@128.
    let name_bytes: Vec<u8> = buf[8..10].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(16);
    Ok(ProgInfo {
        prog_type: u32_at(&buf, 0),
        id: u32_at(&buf, 4),
        name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
        btf_id: u32_at(&buf, 128),
    })
}

/// The ids of the maps a program uses (at most 8 are reported).
pub(crate) fn prog_map_ids(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; 8];
    let mut buf = [0u64; 40];
    // struct bpf_prog_info: nr_map_ids@52, map_ids@56 (user pointer).
    set_u32_at(&mut buf, 52, ids.len() as u32);
    buf[7] = ids.as_mut_ptr() as u64;
    obj_info(fd, &mut buf)?;
    let n = (u32_at(&buf, 52) as usize).min(ids.len());
    Ok(ids[..n].to_vec())
}

/// What this crate reads from `struct bpf_link_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkInfo {
    pub(crate) link_type: u32,
    pub(crate) id: u32,
    pub(crate) prog_id: u32,
    /// XDP and TCX: the interface index, 0 once the device is gone.
    /// Tracing (freplace): the target program id.
    pub(crate) target: u32,
}

/// Reads a link's type, id, program and target.
pub(crate) fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let mut buf = [0u64; 16];
    obj_info(fd, &mut buf)?;
    let link_type = u32_at(&buf, 0);
    // The union starts at 16: xdp.ifindex / tcx.ifindex @16,
    // tracing {attach_type@16, target_obj_id@20, target_btf_id@24}.
    let target = if link_type == BPF_LINK_TYPE_TRACING {
        u32_at(&buf, 20)
    } else {
        u32_at(&buf, 16)
    };
    Ok(LinkInfo {
        link_type,
        id: u32_at(&buf, 4),
        prog_id: u32_at(&buf, 8),
        target,
    })
}

#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target: u32,
    attach_type: u32,
    flags: u32,
    relative: u32,
    _pad: u32,
    expected_revision: u64,
}

/// Creates an XDP link on interface `ifindex` of the calling thread's
/// network namespace.
pub(crate) fn link_create_xdp(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut a = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target: ifindex,
        attach_type: BPF_XDP,
        flags,
        relative: 0,
        _pad: 0,
        expected_revision: 0,
    };
    bpf_fd(BPF_LINK_CREATE, &mut a)
}

/// Creates a TCX link on `ifindex` (calling thread's namespace), placed by
/// `flags` (`BPF_F_BEFORE`/`BPF_F_AFTER` with `BPF_F_LINK | BPF_F_ID`)
/// relative to link `relative_id`, failing with ESTALE if the hook changed
/// since `expected_revision` (0: no check).
pub(crate) fn link_create_tcx(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_id: u32,
    expected_revision: u64,
) -> io::Result<OwnedFd> {
    let mut a = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target: ifindex,
        attach_type,
        flags,
        relative: relative_id,
        _pad: 0,
        expected_revision,
    };
    bpf_fd(BPF_LINK_CREATE, &mut a)
}

#[repr(C)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// Atomically makes `link` run `new_prog`; with `old_prog`, only if the link
/// still runs that program (EPERM otherwise).
pub(crate) fn link_update(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    old_prog: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut a = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new_prog.as_raw_fd() as u32,
        flags: if old_prog.is_some() { BPF_F_REPLACE } else { 0 },
        old_prog_fd: old_prog.map_or(0, |f| f.as_raw_fd() as u32),
    };
    bpf(BPF_LINK_UPDATE, &mut a).map(|_| ())
}

/// Detaches a link from its hook now. Dropping the last reference (e.g. by
/// unpinning) also detaches, but the kernel defers that to a workqueue, so
/// the program could still run briefly after the call returned.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = [link.as_raw_fd() as u32, 0];
    bpf(BPF_LINK_DETACH, &mut a).map(|_| ())
}

/// Waits for an RCU grace period (membarrier(MEMBARRIER_CMD_GLOBAL) calls
/// synchronize_rcu): every packet that started on a program detached before
/// this call has finished. Where the kernel rejects it (nohz_full), falls
/// back to a pause far longer than one softirq batch.
pub(crate) fn synchronize_rcu() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_GLOBAL,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if r != 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[repr(C)]
struct QueryAttr {
    target: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// One program on a multi-attach (TCX) hook, in run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueryEntry {
    pub(crate) prog_id: u32,
    /// 0 for programs attached without a link.
    pub(crate) link_id: u32,
}

/// Lists the programs on a TCX hook of `ifindex` (calling thread's
/// namespace), in run order, with the hook's revision.
pub(crate) fn prog_query_tcx(ifindex: u32, attach_type: u32) -> io::Result<(Vec<QueryEntry>, u64)> {
    // The kernel caps a TCX hook at 64 programs (BPF_MPROG_MAX).
    let mut progs = [0u32; 64];
    let mut links = [0u32; 64];
    let mut a = QueryAttr {
        target: ifindex,
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: progs.as_mut_ptr() as u64,
        count: progs.len() as u32,
        _pad: 0,
        prog_attach_flags: 0,
        link_ids: links.as_mut_ptr() as u64,
        link_attach_flags: 0,
        revision: 0,
    };
    bpf(BPF_PROG_QUERY, &mut a)?;
    let n = (a.count as usize).min(progs.len());
    let entries = (0..n)
        .map(|i| QueryEntry {
            prog_id: progs[i],
            link_id: links[i],
        })
        .collect();
    Ok((entries, a.revision))
}

#[repr(C)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// Result of `BPF_PROG_TEST_RUN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (of the last run).
    pub retval: u32,
    /// Kernel-measured mean time per run, in whole nanoseconds.
    pub duration_ns: u32,
}

/// Runs `prog` `repeat` times on a copy of `packet` (`BPF_PROG_TEST_RUN`).
pub fn test_run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> io::Result<TestRun> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut a = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        duration: 0,
        ctx_size_in: 0,
        ctx_size_out: 0,
        ctx_in: 0,
        ctx_out: 0,
        flags: 0,
        cpu: 0,
        batch_size: 0,
        _pad: 0,
    };
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    Ok(TestRun {
        retval: a.retval,
        duration_ns: a.duration,
    })
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Reads `value.len()` bytes of element `key` of an array map.
pub(crate) fn map_lookup_u32_key(
    map: BorrowedFd<'_>,
    key: u32,
    value: &mut [u8],
) -> io::Result<()> {
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    bpf(BPF_MAP_LOOKUP_ELEM, &mut a).map(|_| ())
}

/// Opens a pinned program and reads its info.
pub(crate) fn open_prog(path: &Path) -> io::Result<(OwnedFd, ProgInfo)> {
    let fd = obj_get(path)?;
    let info = prog_info(fd.as_fd())?;
    Ok((fd, info))
}

/// Opens a pinned link and reads its info.
pub(crate) fn open_link(path: &Path) -> io::Result<(OwnedFd, LinkInfo)> {
    let fd = obj_get(path)?;
    let info = link_info(fd.as_fd())?;
    Ok((fd, info))
}
