//! Errors of network attach.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a network attach operation failed. Messages name the interface,
/// namespace or program involved and, where there is one, the way out.
#[derive(Debug, Error)]
pub enum NetError {
    /// The kernel (or configuration) does not allow this, e.g. a second XDP
    /// program where extension programs are refused.
    #[error("{0}")]
    Unsupported(String),
    /// The interface, namespace, pin or program does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad input.
    #[error("{0}")]
    InvalidArgument(String),
    /// The hook is held by something else, or in a state that forbids the
    /// request (another XDP mode, a foreign program, a concurrent change).
    #[error("{0}")]
    Conflict(String),
    /// More programs than the hook can hold.
    #[error("{0}")]
    TooMany(String),
    /// A kernel call failed.
    #[error("{what}: {source}")]
    Kernel {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// A file system operation on the bpffs layout failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: String,
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl NetError {
    /// A kernel error for `what`.
    pub(crate) fn kernel(what: impl Into<String>, source: io::Error) -> Self {
        NetError::Kernel {
            what: what.into(),
            source,
        }
    }

    /// A file system error for `what` on `path`.
    pub(crate) fn io(what: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        NetError::Io {
            what: what.into(),
            path: path.into(),
            source,
        }
    }

    /// The errno behind this error, if it came from the kernel or a file.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Kernel { source, .. } | NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl From<bpfman_core::CoreError> for NetError {
    fn from(e: bpfman_core::CoreError) -> Self {
        match e {
            bpfman_core::CoreError::InvalidArgument(m) => NetError::InvalidArgument(m),
            bpfman_core::CoreError::FailedPrecondition(m) => NetError::Conflict(m),
            bpfman_core::CoreError::NotFound(m) => NetError::NotFound(m),
        }
    }
}

/// Converts an aya program error, keeping the errno and the tail of the
/// verifier log (the part that says why) when there is one.
pub(crate) fn from_program_error(
    what: impl Into<String>,
    e: aya::programs::ProgramError,
) -> NetError {
    use aya::programs::ProgramError;
    let what = what.into();
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let what = if tail.is_empty() {
                what
            } else {
                format!("{what} (verifier: {})", tail.join(" | "))
            };
            NetError::kernel(what, io_error)
        }
        ProgramError::SyscallError(s) => {
            NetError::kernel(format!("{what} ({})", s.call), s.io_error)
        }
        other => NetError::kernel(what, io::Error::other(other.to_string())),
    }
}

/// Converts an aya object load error: bad objects are invalid input, failed
/// map creation keeps its errno.
pub(crate) fn from_ebpf_error(what: impl Into<String>, e: aya::EbpfError) -> NetError {
    use aya::maps::MapError;
    let what = what.into();
    match e {
        aya::EbpfError::FileError { path, error } => NetError::io(what, path, error),
        aya::EbpfError::MapError(MapError::CreateError { name, io_error }) => {
            NetError::kernel(format!("{what}: creating map {name}"), io_error)
        }
        aya::EbpfError::MapError(MapError::SyscallError(s)) => {
            NetError::kernel(format!("{what}: {}", s.call), s.io_error)
        }
        aya::EbpfError::MapError(other) => {
            NetError::kernel(what, io::Error::other(other.to_string()))
        }
        other => NetError::InvalidArgument(format!("{what}: {other}")),
    }
}
