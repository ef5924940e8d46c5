//! The plain file-system effects bpfman makes around its pins and mounts:
//! directories (with their modes and group), their removal, and listing
//! them. One place, so "already gone" is handled the same way everywhere.

use std::fs::{self, DirBuilder, DirEntry, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::KernelError;

/// Creates a directory and any missing parents with `mode` (before the
/// umask); an existing directory is fine.
pub fn create_dir(path: &Path, mode: u32) -> Result<(), KernelError> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| KernelError::io(format!("cannot create {}", path.display()), e))
}

/// Removes an empty directory. Returns `false` when it did not exist (the
/// goal is reached); a directory that still holds something is
/// [`KernelError::DirectoryNotEmpty`], so callers can tell "in use" apart.
pub fn remove_dir(path: &Path) -> Result<bool, KernelError> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
            Err(KernelError::DirectoryNotEmpty(path.to_path_buf()))
        }
        Err(e) => Err(KernelError::io(
            format!("cannot remove {}", path.display()),
            e,
        )),
    }
}

/// Removes a directory and everything under it; a missing one is fine.
pub fn remove_tree(path: &Path) -> Result<(), KernelError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(KernelError::io(
            format!("cannot remove {}", path.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) -> Result<(), KernelError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| KernelError::io(format!("cannot chmod {}", path.display()), e))
}

/// Gives `path` to group `gid` (the owner stays).
pub fn set_group(path: &Path, gid: u32) -> Result<(), KernelError> {
    std::os::unix::fs::chown(path, None, Some(gid))
        .map_err(|e| KernelError::io(format!("cannot chown {}", path.display()), e))
}

/// The entries of a directory; a missing directory has none.
pub fn read_dir(path: &Path) -> Result<Vec<DirEntry>, KernelError> {
    let fail = |e| KernelError::io(format!("cannot read {}", path.display()), e);
    match fs::read_dir(path) {
        Ok(rd) => rd.collect::<io::Result<Vec<_>>>().map_err(fail),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_recursive_idempotent_and_uses_the_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        create_dir(&d, 0o700).unwrap();
        create_dir(&d, 0o700).unwrap();
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        set_mode(&d, 0o750).unwrap();
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
    }

    #[test]
    fn remove_dir_tells_removed_absent_and_not_empty_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        assert!(!remove_dir(&d).unwrap());
        create_dir(&d, 0o755).unwrap();
        fs::write(d.join("f"), b"x").unwrap();
        match remove_dir(&d) {
            Err(KernelError::DirectoryNotEmpty(p)) => assert_eq!(p, d),
            other => panic!("expected DirectoryNotEmpty, got {other:?}"),
        }
        assert!(d.join("f").exists());
        remove_tree(&d).unwrap();
        assert!(!d.exists());
        remove_tree(&d).unwrap();
        create_dir(&d, 0o755).unwrap();
        assert!(remove_dir(&d).unwrap());
        assert!(!d.exists());
    }

    #[test]
    fn read_dir_of_a_missing_dir_is_empty_but_of_a_file_fails() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_dir(&tmp.path().join("none")).unwrap().is_empty());
        fs::write(tmp.path().join("f"), b"x").unwrap();
        let names: Vec<_> = read_dir(tmp.path())
            .unwrap()
            .iter()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
        assert!(read_dir(&tmp.path().join("f")).is_err());
    }
}
