//! Raw bpf(2) reads, the way an unprivileged reader does them: no aya, no
//! help from bpfman.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
/// `file_flags` of BPF_OBJ_GET: reading needs no write permission
/// (read-only volumes).
const BPF_F_RDONLY: u32 = 1 << 3;

/// A zeroed `union bpf_attr` (its first 128 bytes: all these commands use),
/// filled field by field at the kernel's offsets.
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32_at(mut self, offset: usize, v: u32) -> Attr {
        self.0[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(mut self, offset: usize, v: u64) -> Attr {
        self.0[offset..offset + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: libc::c_long, attr: &Attr) -> libc::c_long {
    // SAFETY: the buffer is bpf_attr-sized; pointers in it outlive the call.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_ptr(), attr.0.len()) }
}

/// True when the kernel has a program with this id.
pub fn kernel_has_program(id: u32) -> bool {
    // prog_id at 0.
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &Attr::new().u32_at(0, id));
    if fd < 0 {
        return false;
    }
    // SAFETY: the kernel just returned this fd to us; dropping closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    true
}

/// The u64 value at `key` of the array map pinned at `pin`, through
/// BPF_OBJ_GET (read-only) and BPF_MAP_LOOKUP_ELEM only; panics naming the
/// pin when either fails.
pub fn read_u64(pin: &Path, key: u32) -> u64 {
    let path = CString::new(pin.as_os_str().as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", pin.display()));
    // pathname at 0, file_flags at 12.
    let get = Attr::new()
        .u64_at(0, path.as_ptr() as u64)
        .u32_at(12, BPF_F_RDONLY);
    let fd = bpf(BPF_OBJ_GET, &get);
    assert!(
        fd >= 0,
        "BPF_OBJ_GET {}: {}",
        pin.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: the kernel just returned this fd to us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut value: u64 = 0;
    // map_fd at 0, key at 8, value at 16.
    let lookup = Attr::new()
        .u32_at(0, fd.as_raw_fd() as u32)
        .u64_at(8, &key as *const u32 as u64)
        .u64_at(16, &mut value as *mut u64 as u64);
    let r = bpf(BPF_MAP_LOOKUP_ELEM, &lookup);
    assert_eq!(r, 0, "lookup: {}", std::io::Error::last_os_error());
    value
}
