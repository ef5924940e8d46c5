//! End-to-end tests of the `stats-reader` binary against real pinned BPF
//! objects. They need root (to mount a private bpffs and create maps) and
//! print why and return early otherwise. Nothing here touches the host's
//! /sys/fs/bpf or /run/bpfman: every test mounts its own bpffs in a temp dir
//! and detaches it on drop, also when an assertion fails.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Held while copying the binary and while spawning: a child forked by
/// another test thread between our open-for-write and close of the copy
/// would inherit the write fd and make exec of the copy fail with ETXTBSY.
/// `spawn` returns only after the child has exec'd (and so closed every
/// inherited CLOEXEC fd), so holding the lock across it closes the window.
static SPAWN: Mutex<()> = Mutex::new(());

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_ARRAY: u32 = 2;
const PROG_TYPE_SOCKET_FILTER: u32 = 1;
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root to mount a bpffs and create BPF maps");
            return;
        }
    };
}

/// A temp dir (mode 0755, so an unprivileged user can reach it) with a
/// private bpffs mounted at `<dir>/fs`.
struct Bpffs {
    dir: tempfile::TempDir,
    fs: PathBuf,
}

impl Bpffs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let fs = dir.path().join("fs");
        std::fs::create_dir(&fs).unwrap();
        let target = cstr(&fs);
        // SAFETY: all pointers are NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "mount bpffs: {}", io::Error::last_os_error());
        Bpffs { dir, fs }
    }

    /// A copy of the binary inside the temp dir, so an unprivileged user can
    /// run it whatever the permissions of the cargo target dir.
    fn binary(&self) -> PathBuf {
        let dst = self.dir.path().join("stats-reader");
        let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        if !dst.exists() {
            std::fs::copy(env!("CARGO_BIN_EXE_stats-reader"), &dst).unwrap();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dst
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let target = cstr(&self.fs);
        // SAFETY: target is a NUL-terminated path. MNT_DETACH so a
        // lingering fd cannot keep the mount (and the temp dir) alive.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: each caller passes the attribute struct of `cmd` with valid
    // pointers; the size is that struct's size.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd(rc: libc::c_long) -> OwnedFd {
    // SAFETY: rc is a fresh fd returned by a successful bpf() call.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

fn create_map(map_type: u32, key_size: u32, value_size: u32, name: &str) -> OwnedFd {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries: 1,
        ..Default::default()
    };
    attr.map_name[..name.len()].copy_from_slice(name.as_bytes());
    fd(sys_bpf(BPF_MAP_CREATE, &mut attr).unwrap())
}

#[repr(C)]
struct UpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn update(map: &OwnedFd, key: u32, value: u64) {
    let mut attr = UpdateAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u64 as u64,
        flags: 0,
    };
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).unwrap();
}

#[repr(C)]
struct PinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

fn pin(obj: &OwnedFd, path: &Path) {
    let c = cstr(path);
    let mut attr = PinAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: obj.as_raw_fd() as u32,
        file_flags: 0,
    };
    sys_bpf(BPF_OBJ_PIN, &mut attr).unwrap();
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// Loads `r0 = 0; exit`, the smallest valid program.
fn load_trivial_prog() -> OwnedFd {
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_SOCKET_FILTER,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    fd(sys_bpf(BPF_PROG_LOAD, &mut attr).unwrap())
}

/// The stats map as the example pins it: ARRAY u32 -> u64, key 0 = value,
/// readable by everybody (what the CSI volume grants the pod).
fn pin_stats_map(b: &Bpffs, value: u64) -> PathBuf {
    let map = create_map(MAP_TYPE_ARRAY, 4, 8, "stats_map");
    update(&map, 0, value);
    let path = b.fs.join("stats_map");
    pin(&map, &path);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn run(bin: &Path, args: &[&str], uid: Option<u32>) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_remove("STATS_MAP");
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    output(&mut cmd)
}

/// `Command::output` with the spawn done under [`SPAWN`].
fn output(cmd: &mut Command) -> Output {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = {
        let _guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        cmd.spawn().unwrap()
    };
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn reads_a_pinned_array_map() {
    require_root!();
    let b = Bpffs::new();
    let path = pin_stats_map(&b, 12345);
    let o = run(
        &b.binary(),
        &["--map", path.to_str().unwrap(), "--count", "1"],
        None,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "stats_map[0] = 12345\n");
}

#[test]
fn reads_as_nobody_with_a_read_only_pin() {
    require_root!();
    let b = Bpffs::new();
    let path = pin_stats_map(&b, 7);
    let o = run(
        &b.binary(),
        &[
            "--map",
            path.to_str().unwrap(),
            "--count",
            "2",
            "--interval-ms",
            "10",
        ],
        Some(NOBODY),
    );
    if !o.status.success() && stderr(&o).contains("unprivileged_bpf_disabled") {
        eprintln!(
            "skipped: this kernel refuses bpf() to unprivileged users: {}",
            stderr(&o)
        );
        return;
    }
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "stats_map[0] = 7\nstats_map[0] = 7\n");
}

#[test]
fn path_from_environment() {
    require_root!();
    let b = Bpffs::new();
    let path = pin_stats_map(&b, 3);
    let o = output(
        Command::new(b.binary())
            .args(["--count", "1"])
            .env("STATS_MAP", &path),
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "stats_map[0] = 3\n");
}

#[test]
fn unreadable_pin_is_permission_denied_for_nobody() {
    require_root!();
    let b = Bpffs::new();
    let path = pin_stats_map(&b, 1);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = run(
        &b.binary(),
        &["--map", path.to_str().unwrap(), "--count", "1"],
        Some(NOBODY),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("permission denied: {}", path.display())),
        "stderr: {err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn missing_file_names_the_csi_volume() {
    require_root!();
    let b = Bpffs::new();
    let path = b.fs.join("stats_map");
    let o = run(
        &b.binary(),
        &["--map", path.to_str().unwrap(), "--count", "1"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "stats-reader: error: no such file: {} — is the CSI volume mounted?\n",
            path.display()
        )
    );
}

#[test]
fn regular_file_is_not_a_bpf_object() {
    require_root!();
    let b = Bpffs::new();
    let path = b.dir.path().join("stats_map");
    std::fs::write(&path, b"not a map").unwrap();
    let o = run(
        &b.binary(),
        &["--map", path.to_str().unwrap(), "--count", "1"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("not a BPF object: {}", path.display())),
        "stderr: {}",
        stderr(&o)
    );
}

#[test]
fn directory_is_not_a_bpf_object() {
    require_root!();
    let b = Bpffs::new();
    let o = run(
        &b.binary(),
        &["--map", b.fs.to_str().unwrap(), "--count", "1"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a BPF object"),
        "stderr: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("directory"), "stderr: {}", stderr(&o));
}

#[test]
fn pinned_program_is_not_a_map() {
    require_root!();
    let b = Bpffs::new();
    let prog = load_trivial_prog();
    let path = b.fs.join("prog");
    pin(&prog, &path);
    let o = run(
        &b.binary(),
        &["--map", path.to_str().unwrap(), "--count", "1"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "stats-reader: error: not a BPF map: {} is a pinned BPF program\n",
            path.display()
        )
    );
}

#[test]
fn map_of_the_wrong_shape_is_refused() {
    require_root!();
    let b = Bpffs::new();
    let map = create_map(MAP_TYPE_HASH, 8, 8, "other");
    let path = b.fs.join("other");
    pin(&map, &path);
    let o = run(
        &b.binary(),
        &["--map", path.to_str().unwrap(), "--count", "1"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unexpected map layout") && stderr(&o).contains("key size 8"),
        "stderr: {}",
        stderr(&o)
    );
}

#[test]
fn bad_arguments_exit_2() {
    // Needs no root: parsing fails before anything touches the kernel.
    let o = output(Command::new(env!("CARGO_BIN_EXE_stats-reader")).arg("--count"));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "stats-reader: error: option --count needs a value\n"
    );
}
