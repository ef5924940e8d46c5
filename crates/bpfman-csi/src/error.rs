//! Errors of the CSI server plumbing (configuration, socket, transport).
//! Per-request failures are gRPC statuses, not these.

use std::io;
use std::path::PathBuf;

/// Why the CSI server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    /// The configuration breaks a CSI rule (see [`crate::CsiConfig::validate`]).
    #[error("invalid CSI configuration: {0}")]
    Config(String),
    /// A filesystem operation on the socket or its directory failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another server answers on the socket; it was left alone.
    #[error("CSI socket {} is in use by a running server; stop it first", .0.display())]
    InUse(PathBuf),
    /// The endpoint path exists and is not a socket; it was left alone.
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    /// The gRPC transport failed.
    #[error("CSI gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
}
