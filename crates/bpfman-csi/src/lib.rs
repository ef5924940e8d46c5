//! bpfman-csi: the CSI node plugin protocol layer.
//!
//! Serves the csi.v1 `Identity` and `Node` services that kubelet drives for
//! ephemeral inline volumes, on a Unix socket. This crate owns the protocol:
//! request validation (safe volume ids, mount capabilities, target paths
//! confined to the kubelet pods directory even through symlinks), status
//! codes, per-volume serialisation and logging without secrets. The volume
//! work itself (choosing maps, mounting a bpffs, re-pinning, bind-mounting,
//! recording) is behind the [`VolumeBackend`] trait, implemented by bpfman's
//! manager.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn run<B: bpfman_csi::VolumeBackend>(backend: Arc<B>) -> Result<(), bpfman_csi::CsiError> {
//! let endpoint = bpfman_csi::endpoint_path(
//!     &std::env::var("CSI_ENDPOINT").unwrap_or_else(|_| bpfman_csi::DEFAULT_ENDPOINT.into()),
//! );
//! let cfg = bpfman_csi::CsiConfig::new("node-1");
//! bpfman_csi::serve(&endpoint, cfg, backend, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

mod backend;
mod config;
mod error;
#[cfg(test)]
mod fuzz_tests;
mod server;
mod service;
mod validate;

pub use backend::{PublishRequest, VolumeBackend, VolumeError};
pub use config::{CsiConfig, DEFAULT_DRIVER_NAME, DEFAULT_ENDPOINT, DEFAULT_PODS_DIR};
pub use error::CsiError;
pub use server::{CsiListener, SOCKET_MODE, connect, endpoint_path, serve, serve_observed};
pub use service::CsiNode;

/// Generated csi.v1 messages, servers (`identity_server`, `node_server`) and
/// clients (`identity_client`, `node_client`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("csi.v1");
}
