//! gRPC over a Unix socket: a client channel, and the server-side bind.
//!
//! bpfman serves its API on a Unix socket only (`/run/bpfman-sock/bpfman.sock`,
//! mode 0660), so access is governed by file permissions, not by the network.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};

/// Default path of bpfman's gRPC socket.
pub const DEFAULT_SOCKET: &str = "/run/bpfman-sock/bpfman.sock";

/// Largest gRPC request message the daemon decodes (64 MiB): a load spec
/// with big global data is far below this; a bigger message is refused by
/// tonic with OUT_OF_RANGE before it is parsed.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// Largest gRPC reply the CLI decodes (256 MiB): a list of thousands of
/// programs is a few MiB of JSON, above tonic's 4 MiB default.
pub const MAX_REPLY_BYTES: usize = 256 << 20;

/// Mode of the socket file: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// Mode of a socket directory bpfman creates.
const SOCKET_DIR_MODE: u32 = 0o755;

/// A failure to reach the daemon.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Connecting to the socket failed (no daemon, no permission, ...).
    #[error("cannot connect to bpfman at {}: {reason}", path.display())]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// The whole error chain as text (tonic's top-level message alone is
        /// just "transport error").
        reason: String,
        /// The underlying error.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Renders an error and all its sources as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Connects a gRPC channel to the Unix socket at `path`.
///
/// The connection is made now, so a missing daemon is reported here. The
/// channel reconnects to the same socket if the connection later drops.
pub async fn connect_uds(path: &Path) -> Result<Channel, ClientError> {
    let socket = path.to_path_buf();
    // The URI only satisfies HTTP/2's need for an authority; the connector
    // below ignores it and always dials the socket.
    let endpoint = Endpoint::from_static("http://bpfman.sock");
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|e| ClientError::Connect {
            path: path.to_path_buf(),
            reason: chain(&e),
            source: e,
        })
}

/// Binds the server socket at `path`, ready for [`uds_incoming`].
///
/// A leftover socket file is removed only when nothing answers on it (a live
/// daemon gives `AddrInUse`); a non-socket file at `path` is never removed.
/// The parent directory is created (mode 0755) if missing, and the socket is
/// made mode 0660. Must be called inside a tokio runtime.
pub fn bind_uds(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use: another bpfman daemon is listening on it",
                        path.display()
                    ),
                ));
            }
            // Stale socket from a daemon that died: nobody is listening.
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket: refusing to replace it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    Ok(listener)
}

/// Incoming connections of a bound socket, for
/// `tonic::transport::Server::serve_with_incoming`. Requests are served
/// whatever `:authority` the client sends (see [`bpfman_uds`]).
pub fn uds_incoming(listener: UnixListener) -> bpfman_uds::Incoming {
    bpfman_uds::incoming(listener)
}
