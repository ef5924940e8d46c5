//! The Unix socket kubelet dials: its mode, stale-socket handling, refusal
//! to take over a live server or a non-socket file, and clean-up on shutdown.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::Arc;

use bpfman_csi::proto::GetPluginInfoRequest;
use bpfman_csi::proto::identity_client::IdentityClient;
use bpfman_csi::{CsiConfig, CsiError};
use common::{Harness, Recorder, wait_connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_is_0600_and_removed_on_shutdown() {
    let h = Harness::start().await;
    let socket = h.socket.clone();
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(bpfman_csi::SOCKET_MODE, 0o600);
    h.stop().await.unwrap();
    assert!(
        !socket.exists(),
        "serve() must remove its socket on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("csi.sock");
    // A socket file left behind by a server that died: nobody accepts on it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let mut cfg = CsiConfig::new("node-a");
    cfg.pods_dir = dir.path().join("pods");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let endpoint = format!("unix://{}", socket.display());
    let server = tokio::spawn(async move {
        let path = bpfman_csi::endpoint_path(&endpoint);
        bpfman_csi::serve(&path, cfg, Arc::new(Recorder::default()), async {
            let _ = rx.await;
        })
        .await
    });
    let channel = wait_connect(&socket, &server).await;
    let info = IdentityClient::new(channel.clone())
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.go-bpfman.io");
    drop(channel);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_socket_is_left_alone() {
    let h = Harness::start().await;
    let mut cfg = h.cfg.clone();
    cfg.node_id = "intruder".into();
    let err = bpfman_csi::serve(&h.socket, cfg, Arc::new(Recorder::default()), async {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, CsiError::InUse(ref p) if *p == h.socket),
        "{err}"
    );
    // The running server still answers on its socket.
    let mut identity = h.identity.clone();
    identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap();
    drop(identity);
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_socket_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("csi.sock");
    std::fs::write(&path, b"not a socket").unwrap();
    let mut cfg = CsiConfig::new("node-a");
    cfg.pods_dir = dir.path().join("pods");
    let err = bpfman_csi::serve(&path, cfg, Arc::new(Recorder::default()), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, CsiError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/csi.sock");
    let cfg = CsiConfig::new("");
    let err = bpfman_csi::serve(&path, cfg, Arc::new(Recorder::default()), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, CsiError::Config(_)), "{err}");
    assert!(!dir.path().join("sub").exists());
}
