//! Serving the plugin on a Unix socket, the way kubelet expects it.

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint, Server};
use tracing::{info, warn};

use crate::backend::VolumeBackend;
use crate::config::CsiConfig;
use crate::error::CsiError;
use crate::proto::identity_server::IdentityServer;
use crate::proto::node_server::NodeServer;
use crate::service::CsiNode;

/// Mode of the socket: kubelet (root) alone may connect. The CSI services
/// publish any program's maps into any pod directory, so nobody else may
/// reach them.
pub const SOCKET_MODE: u32 = 0o600;
/// Mode of a socket directory we create.
const DIR_MODE: u32 = 0o750;

/// The socket path named by a CSI endpoint: `unix:///abs/path`, `unix:/abs/path`
/// or a plain path (as found in `CSI_ENDPOINT`).
pub fn endpoint_path(s: &str) -> PathBuf {
    let path = s
        .strip_prefix("unix://")
        .or_else(|| s.strip_prefix("unix:"))
        .unwrap_or(s);
    PathBuf::from(path)
}

/// Serves the csi.v1 Identity and Node services for `backend` on the Unix
/// socket `endpoint` until `shutdown` completes.
///
/// Creates the socket's parent directory (mode 0750) if needed, replaces a
/// stale socket file only when nothing answers on it, binds, and sets the
/// socket's mode to 0600 ([`SOCKET_MODE`]). When `shutdown` completes the socket file is removed
/// at once (new clients get ENOENT), in-flight calls are drained, and the
/// function returns. The socket file is also removed if serving fails.
pub async fn serve<B: VolumeBackend>(
    endpoint: &Path,
    cfg: CsiConfig,
    backend: Arc<B>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CsiError> {
    cfg.validate()?;
    let listener = CsiListener::bind(endpoint).await?;
    serve_observed(listener, cfg, backend, None, shutdown).await
}

/// The plugin's socket, bound and with its mode set but not yet served, so
/// that a daemon can refuse to start, or report itself ready, only once the
/// socket is there. Dropping it removes the socket file.
#[derive(Debug)]
pub struct CsiListener {
    listener: UnixListener,
    socket: SocketFile,
}

impl CsiListener {
    /// Binds `endpoint` as [`serve`] describes.
    pub async fn bind(endpoint: &Path) -> Result<CsiListener, CsiError> {
        let (listener, socket) = bind(endpoint).await?;
        Ok(CsiListener { listener, socket })
    }

    /// The socket's path.
    pub fn endpoint(&self) -> &Path {
        &self.socket.path
    }
}

/// [`serve`] on a socket bound beforehand, telling `observer` of every
/// request (for metrics).
pub async fn serve_observed<B: VolumeBackend>(
    listener: CsiListener,
    cfg: CsiConfig,
    backend: Arc<B>,
    observer: Option<bpfman_uds::observe::Observer>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CsiError> {
    // An invalid config drops `listener`, which removes the socket file.
    cfg.validate()?;
    let CsiListener { listener, socket } = listener;
    let endpoint = socket.path.clone();
    info!(
        endpoint = %endpoint.display(),
        driver = %cfg.driver_name,
        node_id = %cfg.node_id,
        pods_dir = %cfg.pods_dir.display(),
        "CSI node plugin listening"
    );
    let node = Arc::new(CsiNode::new(cfg, backend));
    let signal = async {
        shutdown.await;
        info!(endpoint = %endpoint.display(), "CSI node plugin shutting down");
        socket.remove();
    };
    let result = Server::builder()
        .layer(bpfman_uds::observe::ObserveLayer::new(observer))
        .add_service(IdentityServer::from_arc(Arc::clone(&node)))
        .add_service(NodeServer::from_arc(node))
        .serve_with_incoming_shutdown(bpfman_uds::incoming(listener), signal)
        .await;
    socket.remove();
    result.map_err(CsiError::Transport)
}

/// A gRPC channel to the CSI socket at `endpoint`, for clients of the plugin
/// (tests, diagnostics). Connects eagerly, so a missing server is an error here.
pub async fn connect(endpoint: &Path) -> Result<Channel, CsiError> {
    let uri = format!("unix://{}", endpoint.display());
    Ok(Endpoint::from_shared(uri)?.connect().await?)
}

/// Binds the socket, replacing a stale one, and sets its mode.
async fn bind(endpoint: &Path) -> Result<(UnixListener, SocketFile), CsiError> {
    let io_err = |context, source| CsiError::Io {
        context,
        path: endpoint.to_path_buf(),
        source,
    };
    if let Some(dir) = endpoint.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| CsiError::Io {
                context: "cannot create the socket directory",
                path: dir.to_path_buf(),
                source: e,
            })?;
    }
    match std::fs::symlink_metadata(endpoint) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket file survives its server; it is stale only if nobody
            // accepts on it. Never take over a live server's socket.
            match UnixStream::connect(endpoint).await {
                Ok(_) => return Err(CsiError::InUse(endpoint.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    warn!(endpoint = %endpoint.display(), "removing stale CSI socket");
                    std::fs::remove_file(endpoint)
                        .map_err(|e| io_err("cannot remove the stale socket", e))?;
                }
                // EAGAIN: a live server with a full backlog.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(CsiError::InUse(endpoint.to_path_buf()));
                }
                Err(e) => return Err(io_err("cannot probe the existing socket", e)),
            }
        }
        Ok(_) => return Err(CsiError::NotASocket(endpoint.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot inspect the socket path", e)),
    }
    let listener = UnixListener::bind(endpoint).map_err(|e| io_err("cannot bind", e))?;
    // From here on the file is ours: remove it if anything below fails.
    let meta = std::fs::symlink_metadata(endpoint)
        .map_err(|e| io_err("cannot inspect the new socket", e))?;
    let socket = SocketFile {
        path: endpoint.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    std::fs::set_permissions(endpoint, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| io_err("cannot set the mode of", e))?;
    Ok((listener, socket))
}

/// The socket file this server created. Removing it leaves alone a file that
/// another process has put in its place since.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Removes the socket file if it is still ours; harmless to call twice.
    fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            warn!(endpoint = %self.path.display(), error = %e, "cannot remove the CSI socket");
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let want = PathBuf::from("/var/lib/kubelet/plugins/x/csi.sock");
        assert_eq!(
            endpoint_path("unix:///var/lib/kubelet/plugins/x/csi.sock"),
            want
        );
        assert_eq!(
            endpoint_path("unix:/var/lib/kubelet/plugins/x/csi.sock"),
            want
        );
        assert_eq!(endpoint_path("/var/lib/kubelet/plugins/x/csi.sock"), want);
    }
}
