//! The seam between the CSI protocol layer and the code that does the volume
//! work. This crate validates and confines requests; the backend (bpfman's
//! manager in production, a recorder in tests) selects the maps, mounts the
//! bpffs, re-pins, bind-mounts and records the volume.

use std::path::Path;

pub use bpfman_core::volume::PublishRequest;

/// Why the backend refused or failed a volume operation. Each variant maps to
/// the gRPC status code of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// The request cannot be served as given (e.g. a malformed selector).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Something the request names does not exist (e.g. no program matches).
    #[error("not found: {0}")]
    NotFound(String),
    /// The volume exists with incompatible parameters.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The system is not in a state that allows the operation.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// An unexpected failure (I/O, kernel, store).
    #[error("internal error: {0}")]
    Internal(String),
}

impl VolumeError {
    /// The message without the variant prefix, for a gRPC status whose code
    /// already says which kind of error it is.
    pub fn message(&self) -> &str {
        match self {
            VolumeError::InvalidArgument(m)
            | VolumeError::NotFound(m)
            | VolumeError::AlreadyExists(m)
            | VolumeError::FailedPrecondition(m)
            | VolumeError::Internal(m) => m,
        }
    }

    /// The gRPC status code this error is reported with.
    pub fn code(&self) -> tonic::Code {
        match self {
            VolumeError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            VolumeError::NotFound(_) => tonic::Code::NotFound,
            VolumeError::AlreadyExists(_) => tonic::Code::AlreadyExists,
            VolumeError::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            VolumeError::Internal(_) => tonic::Code::Internal,
        }
    }
}

impl From<VolumeError> for tonic::Status {
    fn from(e: VolumeError) -> Self {
        tonic::Status::new(e.code(), e.message())
    }
}

/// The volume work behind the Node service.
///
/// Methods are blocking (they take locks, touch the store and make
/// syscalls); the service calls them on tokio's blocking pool. Calls for one
/// volume id are serialised by the service, calls for different ids may run
/// concurrently.
pub trait VolumeBackend: Send + Sync + 'static {
    /// Creates the volume and makes it appear at `req.target_path`. On failure
    /// it must release everything it took: kubelet may not retry an inline
    /// volume's publish. Publishing an already-published volume at the same
    /// target with the same parameters succeeds.
    fn publish(&self, req: &PublishRequest) -> Result<(), VolumeError>;

    /// Removes the volume from `target_path` and deletes it. Idempotent: an
    /// unknown volume or an already-clean target is success.
    fn unpublish(&self, volume_id: &str, target_path: &Path) -> Result<(), VolumeError>;

    /// Whether the backend can serve requests now (answers `Probe`).
    fn ready(&self) -> Result<(), VolumeError>;
}
