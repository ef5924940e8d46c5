//! The workspace's one layer of raw `bpf(2)` calls, for what aya keeps
//! crate-private or wraps in objects that detach on drop: pin and get by
//! path, fds by id, info by fd, id iteration, links, TCX queries, test runs,
//! map lookups, and the tiny load used to probe trampolines. bpfman-net
//! uses it too, so no other crate issues bpf(2) itself.
//!
//! The attribute and info layouts come from aya-obj's generated kernel
//! bindings, so they match the kernel ABI aya itself uses; id lists are
//! sized by asking the kernel for the count first.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aya_obj::generated::{
    BPF_F_REPLACE, bpf_attach_type, bpf_attr, bpf_cmd, bpf_link_info, bpf_link_type, bpf_map_info,
    bpf_map_type, bpf_prog_info, bpf_prog_type,
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
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let cpath = c_path(path)?;
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_4.pathname = cpath.as_ptr() as u64;
    let ret = sys_bpf(bpf_cmd::BPF_OBJ_GET, &mut attr)?;
    owned_fd(ret)
}

/// `BPF_OBJ_PIN`: pins the object behind `fd` at `path` (which must not exist).
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
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

/// Program info (one call: the map ids are not fetched).
pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<bpf_prog_info> {
    // SAFETY: plain-old-data kernel struct; all-zero asks for nothing extra.
    let mut info: bpf_prog_info = unsafe { mem::zeroed() };
    obj_info(fd, &mut info)?;
    Ok(info)
}

/// Program info plus the ids of the maps it uses: one call for programs
/// with up to [`MAP_IDS_GUESS`] maps (`list` does this once per program), a
/// second when the kernel reports more.
pub(crate) fn prog_info_with_map_ids(fd: BorrowedFd<'_>) -> io::Result<(bpf_prog_info, Vec<u32>)> {
    let mut ids = vec![0u32; MAP_IDS_GUESS];
    // SAFETY: plain-old-data kernel struct.
    let mut info: bpf_prog_info = unsafe { mem::zeroed() };
    info.nr_map_ids = MAP_IDS_GUESS as u32;
    info.map_ids = ids.as_mut_ptr() as u64;
    obj_info(fd, &mut info)?;
    let n = info.nr_map_ids;
    // The kernel wrote the ids through the pointer; clear it so the info
    // handed out does not point into a buffer about to move.
    info.map_ids = 0;
    let ids = if n as usize <= MAP_IDS_GUESS {
        ids.truncate(n as usize);
        ids
    } else {
        map_ids(fd, n)?
    };
    info.nr_map_ids = ids.len() as u32;
    Ok((info, ids))
}

/// How many map ids the first info call of [`prog_info_with_map_ids`] has
/// room for: most programs use fewer (the tests load one with more, so
/// both paths run).
const MAP_IDS_GUESS: usize = 8;

/// The ids of every map the program uses.
pub fn prog_map_ids(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let n = prog_info(fd)?.nr_map_ids;
    map_ids(fd, n)
}

/// The program's map ids, given the count the kernel last reported. A map
/// bound meanwhile (BPF_PROG_BIND_MAP) raises the count: then ask again.
fn map_ids(fd: BorrowedFd<'_>, mut n: u32) -> io::Result<Vec<u32>> {
    loop {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut ids = vec![0u32; n as usize];
        // SAFETY: plain-old-data kernel struct.
        let mut info: bpf_prog_info = unsafe { mem::zeroed() };
        info.nr_map_ids = n;
        info.map_ids = ids.as_mut_ptr() as u64;
        obj_info(fd, &mut info)?;
        if info.nr_map_ids <= n {
            ids.truncate(info.nr_map_ids as usize);
            return Ok(ids);
        }
        n = info.nr_map_ids;
    }
}

/// Map info.
pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<bpf_map_info> {
    // SAFETY: plain-old-data kernel struct.
    let mut info: bpf_map_info = unsafe { mem::zeroed() };
    obj_info(fd, &mut info)?;
    Ok(info)
}

/// Link info (type, id, program id; read the per-type union with
/// [`link_ifindex`]).
pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<bpf_link_info> {
    // SAFETY: plain-old-data kernel struct.
    let mut info: bpf_link_info = unsafe { mem::zeroed() };
    obj_info(fd, &mut info)?;
    Ok(info)
}

/// The interface a network link (XDP, TCX, netkit) is attached to, 0 once
/// the device is gone; `None` for other link types.
pub fn link_ifindex(info: &bpf_link_info) -> Option<u32> {
    const XDP: u32 = bpf_link_type::BPF_LINK_TYPE_XDP as u32;
    const TCX: u32 = bpf_link_type::BPF_LINK_TYPE_TCX as u32;
    const NETKIT: u32 = bpf_link_type::BPF_LINK_TYPE_NETKIT as u32;
    // SAFETY: the union member read is the one the kernel fills for the
    // link's type; all members are plain integers.
    unsafe {
        match info.type_ {
            XDP => Some(info.__bindgen_anon_1.xdp.ifindex),
            TCX => Some(info.__bindgen_anon_1.tcx.ifindex),
            NETKIT => Some(info.__bindgen_anon_1.netkit.ifindex),
            _ => None,
        }
    }
}

/// A kernel fixed-size, NUL-padded name (program and map names).
pub fn c_name(raw: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .map(|c| *c as u8)
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens the program pinned at `path` and reads its info.
pub fn open_prog(path: &Path) -> io::Result<(OwnedFd, bpf_prog_info)> {
    let fd = obj_get(path)?;
    let info = prog_info(fd.as_fd())?;
    Ok((fd, info))
}

/// Opens the link pinned at `path` and reads its info.
pub fn open_link(path: &Path) -> io::Result<(OwnedFd, bpf_link_info)> {
    let fd = obj_get(path)?;
    let info = link_info(fd.as_fd())?;
    Ok((fd, info))
}

/// The kinds of kernel objects with ids.
#[derive(Debug, Clone, Copy)]
pub enum IdSpace {
    /// Programs.
    Program,
    /// Maps.
    Map,
    /// Links.
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
pub fn all_ids(space: IdSpace) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    let mut cur = 0;
    while let Some(id) = next_id(space, cur)? {
        ids.push(id);
        cur = id;
    }
    Ok(ids)
}

/// An fd for the object with this id (`*_GET_FD_BY_ID`; ENOENT when there
/// is no such object).
pub fn get_fd_by_id(space: IdSpace, id: u32) -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.start_id = id;
    owned_fd(sys_bpf(space.fd_cmd(), &mut attr)?)
}

/// An fd for the object with this id, or `None` when there is no such object.
pub fn fd_by_id(space: IdSpace, id: u32) -> io::Result<Option<OwnedFd>> {
    match get_fd_by_id(space, id) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What kind of BPF object an fd refers to. The kernel has no type query
/// that works for every kind, so this reads the keys of the fd's fdinfo
/// (`link_type`, `map_type`, `prog_type`), and falls back on the anon-inode
/// name (`anon_inode:bpf-prog`, `bpf-map`, `bpf-link`, once `bpf_link`).
pub(crate) fn object_kind(fd: BorrowedFd<'_>) -> io::Result<ObjectKind> {
    let mut buf = [0u8; FDINFO_BYTES];
    let info = fdinfo(fd, &mut buf)?;
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

/// Room for a BPF object's fdinfo (about 300 bytes) with margin.
const FDINFO_BYTES: usize = 2048;

/// `/proc/self/fdinfo`, opened once per process: `list` reads one fdinfo
/// per program, and `openat` on this directory skips walking
/// `/proc/self/fdinfo/` each time. `None` when it cannot be opened (then
/// the full path is used). bpfman never forks without exec, so the
/// directory stays this process's.
fn fdinfo_dir() -> Option<BorrowedFd<'static>> {
    static DIR: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        std::fs::File::open("/proc/self/fdinfo")
            .ok()
            .map(OwnedFd::from)
    })
    .as_ref()
    .map(|fd| fd.as_fd())
}

/// The text of `fd`'s fdinfo, read into `buf`. The kernel prints a whole
/// fdinfo in one go, so a read that leaves room in `buf` has all of it.
fn fdinfo<'b>(fd: BorrowedFd<'_>, buf: &'b mut [u8; FDINFO_BYTES]) -> io::Result<&'b str> {
    use std::io::Read as _;
    let name = CString::new(fd.as_raw_fd().to_string()).map_err(io::Error::other)?;
    let file = match fdinfo_dir() {
        Some(dir) => {
            // SAFETY: `name` is a NUL-terminated string and `dir` an open
            // directory fd, both alive for the call.
            let raw = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: openat just returned this fd and nothing else owns it.
            std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) })
        }
        None => std::fs::File::open(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?,
    };
    let mut file = file;
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    std::str::from_utf8(&buf[..len]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One numeric field of `fd`'s fdinfo (`memlock`, `prog_id`, ...).
pub(crate) fn fdinfo_u64(fd: BorrowedFd<'_>, key: &str) -> Option<u64> {
    let mut buf = [0u8; FDINFO_BYTES];
    let text = fdinfo(fd, &mut buf).ok()?;
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

/// `BPF_LINK_CREATE` of an XDP link on interface `ifindex` of the calling
/// thread's network namespace, with `XDP_FLAGS_*` `flags`.
pub fn link_create_xdp(prog: BorrowedFd<'_>, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    // SAFETY: a member of a zeroed union of plain integers; all-zero is valid.
    let lc = unsafe { &mut attr.link_create };
    lc.__bindgen_anon_1.prog_fd = fd_u32(prog);
    lc.__bindgen_anon_2.target_ifindex = ifindex;
    lc.attach_type = bpf_attach_type::BPF_XDP as u32;
    lc.flags = flags;
    owned_fd(sys_bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)?)
}

/// `BPF_LINK_CREATE` of a TCX link on `ifindex` (calling thread's
/// namespace), placed by `flags` (`BPF_F_BEFORE`/`BPF_F_AFTER` with
/// `BPF_F_LINK | BPF_F_ID`) relative to link `relative_id`, failing with
/// ESTALE if the hook changed since `expected_revision` (0: no check).
pub fn link_create_tcx(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: bpf_attach_type,
    flags: u32,
    relative_id: u32,
    expected_revision: u64,
) -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    // SAFETY: a member of a zeroed union of plain integers; all-zero is valid.
    let lc = unsafe { &mut attr.link_create };
    lc.__bindgen_anon_1.prog_fd = fd_u32(prog);
    lc.__bindgen_anon_2.target_ifindex = ifindex;
    lc.attach_type = attach_type as u32;
    lc.flags = flags;
    lc.__bindgen_anon_3.tcx.__bindgen_anon_1.relative_id = relative_id;
    lc.__bindgen_anon_3.tcx.expected_revision = expected_revision;
    owned_fd(sys_bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)?)
}

/// `BPF_LINK_UPDATE`: atomically makes `link` run `new_prog`; with
/// `old_prog`, only if the link still runs that program (EPERM otherwise).
pub fn link_update(
    link: BorrowedFd<'_>,
    new_prog: BorrowedFd<'_>,
    old_prog: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut attr = zeroed_attr();
    // SAFETY: a member of a zeroed union of plain integers; all-zero is valid.
    let lu = unsafe { &mut attr.link_update };
    lu.link_fd = fd_u32(link);
    lu.__bindgen_anon_1.new_prog_fd = fd_u32(new_prog);
    if let Some(old) = old_prog {
        lu.flags = BPF_F_REPLACE;
        lu.__bindgen_anon_2.old_prog_fd = fd_u32(old);
    }
    sys_bpf(bpf_cmd::BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// `BPF_LINK_DETACH`: detaches a link from its hook now. Dropping the last
/// reference (e.g. by unpinning) also detaches, but the kernel defers that
/// to a workqueue, so the program could still run briefly after the call.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = zeroed_attr();
    attr.link_detach.link_fd = fd_u32(link);
    sys_bpf(bpf_cmd::BPF_LINK_DETACH, &mut attr).map(drop)
}

/// One program on a multi-attach (TCX) hook, in run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryEntry {
    /// Kernel program id.
    pub prog_id: u32,
    /// Kernel link id; 0 for programs attached without a link.
    pub link_id: u32,
}

/// `BPF_PROG_QUERY` of a multi-attach hook (TCX) of `ifindex` (calling
/// thread's namespace): its programs in run order, and the hook's revision.
pub fn prog_query(
    ifindex: u32,
    attach_type: bpf_attach_type,
) -> io::Result<(Vec<QueryEntry>, u64)> {
    // First ask for the count only; if programs were attached before the
    // second call (ENOSPC, count grown), ask again with the new count.
    let mut n = 0u32;
    loop {
        let mut progs = vec![0u32; n as usize];
        let mut links = vec![0u32; n as usize];
        let mut attr = zeroed_attr();
        // SAFETY: a member of a zeroed union of plain integers; all-zero is valid.
        let q = unsafe { &mut attr.query };
        q.__bindgen_anon_1.target_ifindex = ifindex;
        q.attach_type = attach_type as u32;
        q.__bindgen_anon_2.count = n;
        if n > 0 {
            q.prog_ids = progs.as_mut_ptr() as u64;
            q.link_ids = links.as_mut_ptr() as u64;
        }
        match sys_bpf(bpf_cmd::BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {}
            Err(e) if n > 0 && e.raw_os_error() == Some(libc::ENOSPC) => {}
            Err(e) => return Err(e),
        }
        // SAFETY: the kernel wrote the total count and revision into this member.
        let (count, revision) = unsafe { (attr.query.__bindgen_anon_2.count, attr.query.revision) };
        if count <= n {
            let entries = progs
                .into_iter()
                .zip(links)
                .take(count as usize)
                .map(|(prog_id, link_id)| QueryEntry { prog_id, link_id })
                .collect();
            return Ok((entries, revision));
        }
        n = count;
    }
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
    // Room for programs that grow the packet (headroom adjustments).
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = zeroed_attr();
    // SAFETY: a member of a zeroed union of plain integers; all-zero is valid.
    let t = unsafe { &mut attr.test };
    t.prog_fd = fd_u32(prog);
    t.data_size_in = packet.len() as u32;
    t.data_size_out = out.len() as u32;
    t.data_in = packet.as_ptr() as u64;
    t.data_out = out.as_mut_ptr() as u64;
    t.repeat = repeat;
    sys_bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
    // SAFETY: the kernel filled retval and duration of this same member.
    let (retval, duration_ns) = unsafe { (attr.test.retval, attr.test.duration) };
    Ok(TestRun {
        retval,
        duration_ns,
    })
}

/// `BPF_MAP_LOOKUP_ELEM`: the value of element `key`. The key and value
/// sizes are checked against the map's, so the kernel never reads or
/// writes past either buffer; per-CPU maps (one value per CPU) are refused.
pub fn map_lookup_elem(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<Vec<u8>> {
    let info = map_info(map)?;
    let per_cpu = [
        bpf_map_type::BPF_MAP_TYPE_PERCPU_HASH,
        bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
        bpf_map_type::BPF_MAP_TYPE_LRU_PERCPU_HASH,
        bpf_map_type::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE_DEPRECATED,
    ];
    if per_cpu.iter().any(|t| *t as u32 == info.type_) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "per-CPU map lookups are not supported",
        ));
    }
    if key.len() != info.key_size as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "key of {} bytes for a map with {}-byte keys",
                key.len(),
                info.key_size
            ),
        ));
    }
    let mut value = vec![0u8; info.value_size as usize];
    let mut attr = zeroed_attr();
    // SAFETY: a member of a zeroed union of plain integers; all-zero is valid.
    let e = unsafe { &mut attr.__bindgen_anon_2 };
    e.map_fd = fd_u32(map);
    e.key = key.as_ptr() as u64;
    e.__bindgen_anon_1.value = value.as_mut_ptr() as u64;
    sys_bpf(bpf_cmd::BPF_MAP_LOOKUP_ELEM, &mut attr)?;
    Ok(value)
}

/// `BPF_ENABLE_STATS` (`BPF_STATS_RUN_TIME`): the kernel counts every
/// program's runs and run time for as long as the returned fd is open.
pub(crate) fn enable_run_time_stats() -> io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.enable_stats.type_ = aya_obj::generated::bpf_stats_type::BPF_STATS_RUN_TIME as u32;
    let ret = sys_bpf(bpf_cmd::BPF_ENABLE_STATS, &mut attr)?;
    owned_fd(ret)
}
