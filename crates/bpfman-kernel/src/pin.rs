//! Uniform handling of pins in bpffs, whatever the object (program, map or
//! link): what the manager needs to undo and redo pins.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::bpffs;
use crate::error::{KernelError, pin_lookup_error};
use crate::sys;

/// What kind of BPF object a pin or fd refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A program.
    Program,
    /// A map.
    Map,
    /// A link.
    Link,
    /// Some other BPF object (e.g. BTF).
    Other,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Program => "program",
            ObjectKind::Map => "map",
            ObjectKind::Link => "link",
            ObjectKind::Other => "BPF object",
        })
    }
}

/// A handle on a pinned object, from `BPF_OBJ_GET`. While it lives, the
/// object stays alive even if every pin is removed, which is what makes
/// "unpin, and re-pin on undo" safe.
#[derive(Debug)]
pub struct PinnedObject {
    fd: OwnedFd,
    kind: ObjectKind,
}

/// Opens the object pinned at `path` (`BPF_OBJ_GET`).
pub fn open_pinned(path: &Path) -> Result<PinnedObject, KernelError> {
    let fd = sys::obj_get(path).map_err(|e| pin_lookup_error("BPF object", path, e))?;
    let kind = sys::object_kind(fd.as_fd())
        .map_err(|e| KernelError::io(format!("inspecting pin {}", path.display()), e))?;
    Ok(PinnedObject { fd, kind })
}

impl PinnedObject {
    /// Pins the object at `path` (`BPF_OBJ_PIN`); `path` must not exist yet
    /// and its directory must be on a bpffs.
    pub fn pin(&self, path: &Path) -> Result<(), KernelError> {
        sys::obj_pin(self.fd.as_fd(), path)
            .map_err(|e| KernelError::io(format!("pinning {} at {}", self.kind, path.display()), e))
    }

    /// What the object is.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// The kernel id of the object (`None` for kinds without ids here).
    pub fn id(&self) -> Result<Option<u32>, KernelError> {
        let ctx = |e: io::Error| KernelError::io(format!("reading {} info", self.kind), e);
        Ok(match self.kind {
            ObjectKind::Program => Some(sys::prog_info(self.fd.as_fd()).map_err(ctx)?.id),
            ObjectKind::Map => Some(sys::map_info(self.fd.as_fd()).map_err(ctx)?.id),
            ObjectKind::Link => Some(sys::link_info(self.fd.as_fd()).map_err(ctx)?.id),
            ObjectKind::Other => None,
        })
    }

    /// Fails unless the object is of kind `want`.
    pub(crate) fn expect_kind(self, want: ObjectKind, path: &Path) -> Result<Self, KernelError> {
        if self.kind == want {
            Ok(self)
        } else {
            Err(KernelError::Other(format!(
                "{} holds a pinned {}, not a {want}",
                path.display(),
                self.kind
            )))
        }
    }
}

impl AsFd for PinnedObject {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Removes the pin at `path`. A missing pin is fine (the goal is reached);
/// a file that is not on a bpffs is refused, so a wrong path from a stale
/// record can never delete an ordinary file.
pub fn unpin(path: &Path) -> Result<(), KernelError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(KernelError::io(format!("unpinning {}", path.display()), e)),
        Ok(_) => {}
    }
    if !bpffs::is_bpffs(path)? {
        return Err(KernelError::Other(format!(
            "refusing to unpin {}: it is not on a bpffs",
            path.display()
        )));
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(KernelError::io(format!("unpinning {}", path.display()), e))
        }
        _ => Ok(()),
    }
}
