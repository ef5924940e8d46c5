//! The few bpf(2) commands the reader needs, issued through `libc::syscall`.
//!
//! Everything unsafe lives in this module. Before interpreting the errno of
//! `BPF_OBJ_GET` the path is checked with `stat`/`statfs`, because the kernel
//! answers EACCES both for "you may not read this pin" and for "this file is
//! not a BPF object", and a user needs to know which one it is.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
/// Open the pinned object read-only: the reader needs no more, and a pin
/// that is readable but not writable for the pod's user still opens.
const BPF_F_RDONLY: u32 = 1 << 3;
/// `statfs.f_type` of a bpffs mount.
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;

/// Map types whose lookup returns one value per possible CPU: reading them
/// into a single u64 would overflow the buffer.
const PERCPU_MAP_TYPES: [u32; 4] = [5, 6, 10, 21];

/// Key size the reader expects (u32).
pub const KEY_SIZE: u32 = 4;
/// Value size the reader expects (u64).
pub const VALUE_SIZE: u32 = 8;

/// Why the map could not be opened or read. Messages are meant for a person
/// looking at a pod's log.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Nothing at the path.
    #[error("no such file: {} — is the CSI volume mounted?", .path.display())]
    NotFound {
        /// The path that was opened.
        path: PathBuf,
    },
    /// Something is at the path, but it is not a pinned BPF object.
    #[error("not a BPF object: {} ({reason})", .path.display())]
    NotBpfObject {
        /// The path that was opened.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// A pinned BPF object that is not a map.
    #[error("not a BPF map: {} is a pinned BPF {kind}", .path.display())]
    NotAMap {
        /// The path that was opened.
        path: PathBuf,
        /// What kind of object it is.
        kind: ObjectKind,
    },
    /// A map, but not shaped like the stats counter.
    #[error(
        "unexpected map layout at {}: key size {key_size}, value size {value_size} \
         (expected {KEY_SIZE} and {VALUE_SIZE})",
        .path.display()
    )]
    WrongShape {
        /// The path that was opened.
        path: PathBuf,
        /// The map's key size in bytes.
        key_size: u32,
        /// The map's value size in bytes.
        value_size: u32,
    },
    /// A per-CPU map, which this reader does not sum.
    #[error(
        "unsupported map at {}: type {map_type} is a per-CPU map; this reader reads one u64",
        .path.display()
    )]
    PerCpu {
        /// The path that was opened.
        path: PathBuf,
        /// The kernel's map type number.
        map_type: u32,
    },
    /// The kernel or the file mode refused access.
    #[error("permission denied: {}: {hint}", .path.display())]
    PermissionDenied {
        /// The path that was opened.
        path: PathBuf,
        /// What is the likely cause and what to change.
        hint: String,
    },
    /// Key 0 is not in the map (only possible for hash-like maps).
    #[error("key 0 is not present in {}", .path.display())]
    KeyMissing {
        /// The path that was opened.
        path: PathBuf,
    },
    /// Any other failure of a system call, with its errno.
    #[error("{op} failed for {}: {source}", .path.display())]
    Syscall {
        /// Which operation failed.
        op: &'static str,
        /// The path that was opened.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The kind of a BPF object behind a file descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// A map.
    Map,
    /// A program.
    Program,
    /// A link.
    Link,
    /// Anything else; holds what `/proc/self/fd` showed.
    Other(String),
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKind::Map => f.write_str("map"),
            ObjectKind::Program => f.write_str("program"),
            ObjectKind::Link => f.write_str("link"),
            ObjectKind::Other(s) => write!(f, "object ({s})"),
        }
    }
}

/// Classifies the target of `/proc/self/fd/N` of a BPF object fd: the
/// kernel names the anonymous inodes `bpf-map`, `bpf-prog` and `bpf_link`.
pub fn object_kind(fd_link: &str) -> ObjectKind {
    match fd_link.strip_prefix("anon_inode:") {
        Some("bpf-map") => ObjectKind::Map,
        Some("bpf-prog") => ObjectKind::Program,
        Some("bpf_link") | Some("bpf-link") => ObjectKind::Link,
        _ => ObjectKind::Other(fd_link.to_owned()),
    }
}

/// The leading fields of the kernel's `struct bpf_map_info`; the kernel
/// fills at most `info_len` bytes, so a prefix is enough.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// Map type (`BPF_MAP_TYPE_*`).
    pub map_type: u32,
    /// Kernel map id.
    pub id: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Number of entries.
    pub max_entries: u32,
    /// Creation flags.
    pub map_flags: u32,
    /// Name given at creation, NUL padded.
    pub name: [u8; 16],
}

/// Checks that a map can be read as "u32 key 0 -> one u64".
pub fn validate(path: &Path, info: &MapInfo) -> Result<(), ReadError> {
    if PERCPU_MAP_TYPES.contains(&info.map_type) {
        return Err(ReadError::PerCpu {
            path: path.to_owned(),
            map_type: info.map_type,
        });
    }
    if info.key_size != KEY_SIZE || info.value_size != VALUE_SIZE {
        return Err(ReadError::WrongShape {
            path: path.to_owned(),
            key_size: info.key_size,
            value_size: info.value_size,
        });
    }
    Ok(())
}

/// Turns the errno of `BPF_OBJ_GET` into an error a person can act on.
/// `euid` and `unpriv_disabled` (kernel.unprivileged_bpf_disabled) only
/// shape the hint.
pub fn obj_get_error(
    path: &Path,
    err: io::Error,
    euid: u32,
    unpriv_disabled: Option<u32>,
) -> ReadError {
    let path = path.to_owned();
    match err.raw_os_error() {
        Some(libc::ENOENT) => ReadError::NotFound { path },
        Some(libc::EACCES) => ReadError::PermissionDenied {
            path,
            hint: format!(
                "the pin's file mode does not let uid {euid} read it; the CSI volume must \
                 grant the pod's user or fsGroup read access"
            ),
        },
        Some(libc::EPERM) => {
            let mut hint = String::from(
                "the kernel refused bpf(BPF_OBJ_GET); a seccomp profile (e.g. the container \
                 runtime's default) or an LSM may block the bpf() system call",
            );
            if euid != 0
                && let Some(n) = unpriv_disabled.filter(|n| *n != 0)
            {
                hint.push_str(&format!(
                    ", or this kernel refuses bpf() to unprivileged users while \
                     kernel.unprivileged_bpf_disabled={n} (newer kernels allow BPF_OBJ_GET)"
                ));
            }
            ReadError::PermissionDenied { path, hint }
        }
        _ => ReadError::Syscall {
            op: "bpf(BPF_OBJ_GET)",
            path,
            source: err,
        },
    }
}

/// A pinned map opened read-only and checked to be a u32 -> u64 map.
#[derive(Debug)]
pub struct PinnedMap {
    fd: OwnedFd,
    path: PathBuf,
    info: MapInfo,
}

impl PinnedMap {
    /// Opens the map pinned at `path`, with the checks described in the
    /// module documentation.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        precheck(path)?;
        let fd = obj_get(path)?;
        match fs_link_kind(&fd) {
            Some(ObjectKind::Map) | None => {}
            Some(kind) => {
                return Err(ReadError::NotAMap {
                    path: path.to_owned(),
                    kind,
                });
            }
        }
        let info = map_info(&fd).map_err(|source| ReadError::Syscall {
            op: "bpf(BPF_OBJ_GET_INFO_BY_FD)",
            path: path.to_owned(),
            source,
        })?;
        validate(path, &info)?;
        Ok(PinnedMap {
            fd,
            path: path.to_owned(),
            info,
        })
    }

    /// What the kernel reported about the map when it was opened.
    pub fn info(&self) -> &MapInfo {
        &self.info
    }

    /// Reads the value at key 0.
    pub fn read_key0(&self) -> Result<u64, ReadError> {
        let key: u32 = 0;
        let mut value: u64 = 0;
        let mut attr = LookupAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: &mut value as *mut u64 as u64,
            flags: 0,
        };
        // SAFETY: attr points at live, correctly sized key and value
        // buffers; validate() checked the map's key and value sizes and
        // that it is not per-CPU, so the kernel writes exactly 8 bytes.
        let rc = unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENOENT) => ReadError::KeyMissing {
                    path: self.path.clone(),
                },
                _ => ReadError::Syscall {
                    op: "bpf(BPF_MAP_LOOKUP_ELEM)",
                    path: self.path.clone(),
                    source: err,
                },
            });
        }
        Ok(value)
    }
}

#[repr(C)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

#[repr(C)]
struct LookupAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Issues one bpf(2) command.
///
/// # Safety
/// `attr` must be the attribute struct of `cmd`, with every pointer in it
/// valid for what the kernel reads or writes.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: forwarded to the caller's contract; the size passed is the
    // size of the struct the pointer refers to.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, mem::size_of::<T>()) }
}

/// Rejects a missing path, a directory or a file outside bpffs before asking
/// the kernel, whose EACCES would not say which of these it is.
fn precheck(path: &Path) -> Result<(), ReadError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ReadError::NotFound {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(ReadError::PermissionDenied {
                path: path.to_owned(),
                hint: "a directory on the way is not searchable by this user".into(),
            });
        }
        Err(source) => {
            return Err(ReadError::Syscall {
                op: "stat",
                path: path.to_owned(),
                source,
            });
        }
    };
    if meta.is_dir() {
        return Err(ReadError::NotBpfObject {
            path: path.to_owned(),
            reason: "it is a directory; point --map at the map file inside it".into(),
        });
    }
    match fs_magic(path) {
        Ok(magic) if magic != BPF_FS_MAGIC => Err(ReadError::NotBpfObject {
            path: path.to_owned(),
            reason: format!("it is not on a bpffs mount (filesystem magic {magic:#x})"),
        }),
        // statfs failing is no reason to give up: BPF_OBJ_GET decides.
        _ => Ok(()),
    }
}

fn c_path(path: &Path) -> Result<CString, ReadError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| ReadError::NotFound {
        path: path.to_owned(),
    })
}

fn fs_magic(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { mem::zeroed() };
    // SAFETY: c is a NUL-terminated path and st a writable statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type's C type differs between architectures; the magic fits in 32
    // bits, so comparing as u64 is exact.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as u64 & 0xffff_ffff)
}

fn obj_get(path: &Path) -> Result<OwnedFd, ReadError> {
    let c = c_path(path)?;
    let mut attr = ObjGetAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: BPF_F_RDONLY,
    };
    // SAFETY: attr is BPF_OBJ_GET's attribute struct and its pathname
    // points at `c`, which outlives the call.
    let rc = unsafe { sys_bpf(BPF_OBJ_GET, &mut attr) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        return Err(obj_get_error(path, err, euid, unprivileged_bpf_disabled()));
    }
    let Ok(raw) = i32::try_from(rc) else {
        return Err(ReadError::Syscall {
            op: "bpf(BPF_OBJ_GET)",
            path: path.to_owned(),
            source: io::Error::other(format!("kernel returned an impossible fd {rc}")),
        });
    };
    // SAFETY: a successful BPF_OBJ_GET returns a new fd that nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// What `/proc/self/fd/N` says the fd is; `None` when /proc is unavailable
/// (then the map-info checks are the only guard).
fn fs_link_kind(fd: &OwnedFd) -> Option<ObjectKind> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    Some(object_kind(&link.to_string_lossy()))
}

fn map_info(fd: &OwnedFd) -> io::Result<MapInfo> {
    let mut info = MapInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: mem::size_of::<MapInfo>() as u32,
        info: &mut info as *mut MapInfo as u64,
    };
    // SAFETY: attr describes a writable buffer of info_len bytes.
    let rc = unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

fn unprivileged_bpf_disabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/bpf/stats_map")
    }

    #[test]
    fn kinds_from_fd_links() {
        assert_eq!(object_kind("anon_inode:bpf-map"), ObjectKind::Map);
        assert_eq!(object_kind("anon_inode:bpf-prog"), ObjectKind::Program);
        assert_eq!(object_kind("anon_inode:bpf_link"), ObjectKind::Link);
        assert_eq!(
            object_kind("/tmp/x"),
            ObjectKind::Other("/tmp/x".to_owned())
        );
    }

    #[test]
    fn validate_accepts_the_stats_map() {
        let info = MapInfo {
            map_type: 2,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            ..MapInfo::default()
        };
        assert!(validate(&p(), &info).is_ok());
    }

    #[test]
    fn validate_rejects_shape_and_percpu() {
        let info = MapInfo {
            map_type: 1,
            key_size: 8,
            value_size: 8,
            ..MapInfo::default()
        };
        let e = validate(&p(), &info).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected map layout at /bpf/stats_map: key size 8, value size 8 (expected 4 and 8)"
        );
        let info = MapInfo {
            map_type: 6,
            key_size: 4,
            value_size: 8,
            ..MapInfo::default()
        };
        assert!(matches!(
            validate(&p(), &info),
            Err(ReadError::PerCpu { map_type: 6, .. })
        ));
    }

    #[test]
    fn not_found_message_names_the_volume() {
        let e = obj_get_error(
            &p(),
            io::Error::from_raw_os_error(libc::ENOENT),
            65534,
            None,
        );
        assert_eq!(
            e.to_string(),
            "no such file: /bpf/stats_map — is the CSI volume mounted?"
        );
    }

    #[test]
    fn eacces_and_eperm_hints() {
        let e = obj_get_error(
            &p(),
            io::Error::from_raw_os_error(libc::EACCES),
            65534,
            Some(2),
        );
        let s = e.to_string();
        assert!(s.starts_with("permission denied: /bpf/stats_map:"), "{s}");
        assert!(s.contains("uid 65534"), "{s}");

        let e = obj_get_error(
            &p(),
            io::Error::from_raw_os_error(libc::EPERM),
            65534,
            Some(2),
        );
        let s = e.to_string();
        assert!(s.contains("seccomp"), "{s}");
        assert!(s.contains("unprivileged_bpf_disabled=2"), "{s}");

        // root is not subject to the sysctl: do not blame it.
        let e = obj_get_error(&p(), io::Error::from_raw_os_error(libc::EPERM), 0, Some(2));
        assert!(!e.to_string().contains("unprivileged_bpf_disabled"));
    }

    #[test]
    fn other_errno_is_reported_verbatim() {
        let e = obj_get_error(&p(), io::Error::from_raw_os_error(libc::EINVAL), 0, None);
        assert!(matches!(
            e,
            ReadError::Syscall {
                op: "bpf(BPF_OBJ_GET)",
                ..
            }
        ));
    }

    #[test]
    fn precheck_missing_dir_and_non_bpffs() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            precheck(&missing),
            Err(ReadError::NotFound { .. })
        ));
        assert!(matches!(
            precheck(dir.path()),
            Err(ReadError::NotBpfObject { .. })
        ));
        let file = dir.path().join("regular");
        std::fs::write(&file, b"x").unwrap();
        let e = PinnedMap::open(&file).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("not a BPF object: {}", file.display())),
            "{e}"
        );
    }
}
