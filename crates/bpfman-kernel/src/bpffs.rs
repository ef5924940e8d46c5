//! bpffs and mount handling: the runtime bpffs, the private bpffs of CSI
//! volumes and their bind mounts into pods.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statfs::statfs;

use crate::error::KernelError;

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// True when `path` lies on a bpffs (statfs magic). A missing path is `false`.
pub fn is_bpffs(path: &Path) -> Result<bool, KernelError> {
    match statfs(path) {
        // f_type's width differs between targets, hence the cast.
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => Ok(st.filesystem_type().0 as i64 == BPF_FS_MAGIC),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(KernelError::io(
            format!("statfs {}", path.display()),
            errno_io(e),
        )),
    }
}

/// The name of the file system `path` lies on, from its statfs magic, for
/// messages ("9p", "nfs", "tmpfs", ...); `None` when unknown or unreadable.
pub fn filesystem_name(path: &Path) -> Option<&'static str> {
    // f_type's width differs between targets, hence the cast.
    #[allow(clippy::unnecessary_cast)]
    let magic = statfs(path).ok()?.filesystem_type().0 as i64;
    Some(match magic {
        0x0102_1997 => "9p",
        0x6969 => "nfs",
        0xff53_4d42 => "cifs",
        0xfe53_4d42 => "smb2",
        0x6573_5546 => "fuse",
        0x0100_2ef0 => "ceph",
        0x0102_1994 => "tmpfs",
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x794c_7630 => "overlay",
        0x7366_7173 => "squashfs",
        BPF_FS_MAGIC => "bpf",
        _ => return None,
    })
}

/// True for file systems that do not give SQLite the POSIX locks and shared
/// memory it needs (network and host-shared mounts).
pub fn is_shared_filesystem(name: &str) -> bool {
    matches!(name, "9p" | "nfs" | "cifs" | "smb2" | "fuse" | "ceph")
}

/// Mounts a fresh bpffs at `path` (`mount -t bpf bpf PATH`).
pub fn mount_bpffs(path: &Path) -> Result<(), KernelError> {
    mount(
        Some("bpf"),
        path,
        Some("bpf"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| KernelError::io(format!("mount -t bpf bpf {}", path.display()), errno_io(e)))
}

/// Creates `path` and mounts a bpffs there unless it already is on one.
/// Returns true when it mounted (the caller then owns the mount).
pub fn ensure_bpffs(path: &Path) -> Result<bool, KernelError> {
    std::fs::create_dir_all(path)
        .map_err(|e| KernelError::io(format!("creating {}", path.display()), e))?;
    if is_bpffs(path)? {
        return Ok(false);
    }
    mount_bpffs(path)?;
    Ok(true)
}

/// Bind-mounts `src` at `dst`; with `readonly`, remounts the bind read-only
/// (a bind mount ignores `MS_RDONLY` on the first call). All or nothing: if
/// the read-only remount fails, the bind is undone.
pub fn bind_mount(src: &Path, dst: &Path, readonly: bool) -> Result<(), KernelError> {
    let ctx = || format!("bind mount {} on {}", src.display(), dst.display());
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| KernelError::io(ctx(), errno_io(e)))?;
    if readonly {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, dst, None::<&str>, flags, None::<&str>) {
            // Best effort: the error that matters is the remount's.
            let _ = umount2(dst, MntFlags::empty());
            return Err(KernelError::io(
                format!("remounting {} read-only", dst.display()),
                errno_io(e),
            ));
        }
    }
    Ok(())
}

/// Unmounts `path`. Not mounted (EINVAL) or missing (ENOENT) is fine.
pub fn unmount(path: &Path) -> Result<(), KernelError> {
    match umount2(path, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(KernelError::io(
            format!("umount {}", path.display()),
            errno_io(e),
        )),
    }
}

/// True when `path` is itself a mount point (listed in `/proc/self/mountinfo`).
/// Device numbers cannot tell, since a bind mount keeps its source's device.
pub fn is_mountpoint(path: &Path) -> Result<bool, KernelError> {
    let canonical = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(KernelError::io(format!("resolving {}", path.display()), e));
        }
    };
    let info = std::fs::read("/proc/self/mountinfo")
        .map_err(|e| KernelError::io("reading /proc/self/mountinfo", e))?;
    Ok(mount_points(&info).any(|mp| mp == canonical))
}

/// Mount points (field 5) of mountinfo text, with octal escapes decoded.
fn mount_points(info: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    info.split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .map(|field| PathBuf::from(OsString::from_vec(unescape_octal(field))))
}

/// Decodes mountinfo's `\NNN` escapes (space, tab, newline, backslash).
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let escaped = field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|c| (b'0'..=b'7').contains(c));
        if escaped {
            let v = field[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// Exposed for the crate's tests: the mount points of a mountinfo text.
#[cfg(test)]
fn mount_points_of(info: &str) -> Vec<PathBuf> {
    mount_points(info.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_escapes() {
        let info = "36 35 98:0 /mnt1 /mnt/with\\040space rw - ext3 /dev/root rw\n\
                    37 35 0:30 / /sys/fs/bpf rw - bpf bpf rw\n";
        assert_eq!(
            mount_points_of(info),
            vec![
                PathBuf::from("/mnt/with space"),
                PathBuf::from("/sys/fs/bpf")
            ]
        );
    }

    #[test]
    fn missing_paths_are_not_bpffs_nor_mounted() {
        let p = Path::new("/nonexistent/bpfman-kernel-test");
        assert!(!is_bpffs(p).unwrap());
        assert!(!is_mountpoint(p).unwrap());
        assert!(is_mountpoint(Path::new("/")).unwrap());
    }
}
