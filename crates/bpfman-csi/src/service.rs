//! The csi.v1 Identity and Node services.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::backend::{PublishRequest, VolumeBackend, VolumeError};
use crate::config::CsiConfig;
use crate::proto::identity_server::Identity;
use crate::proto::node_server::Node;
use crate::proto::node_service_capability::{Rpc, rpc};
use crate::proto::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, NodeExpandVolumeRequest, NodeExpandVolumeResponse,
    NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse, NodeGetInfoRequest,
    NodeGetInfoResponse, NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse,
    NodePublishVolumeRequest, NodePublishVolumeResponse, NodeServiceCapability,
    NodeStageVolumeRequest, NodeStageVolumeResponse, NodeUnpublishVolumeRequest,
    NodeUnpublishVolumeResponse, NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, ProbeRequest,
    ProbeResponse, node_service_capability,
};
use crate::validate::{self, TargetUse};

/// The CSI node plugin: implements the generated csi.v1 `Identity` and
/// `Node` server traits on top of a [`VolumeBackend`].
///
/// It validates every request (safe volume id, mount capability, target path
/// confined to the kubelet pods directory) before the backend sees it, and
/// serialises publish/unpublish calls per volume id so that kubelet's retries
/// cannot interleave. Use [`crate::serve`] to run it on a Unix socket, or wrap
/// an `Arc<CsiNode<B>>` in `IdentityServer::from_arc` / `NodeServer::from_arc`
/// to serve it yourself.
pub struct CsiNode<B: VolumeBackend> {
    cfg: CsiConfig,
    backend: Arc<B>,
    locks: Arc<VolumeLocks>,
}

impl<B: VolumeBackend> CsiNode<B> {
    /// A node plugin answering with `cfg` and delegating volume work to
    /// `backend`. Call [`CsiConfig::validate`] first when `cfg` comes from a
    /// user ([`crate::serve`] does).
    pub fn new(cfg: CsiConfig, backend: Arc<B>) -> Self {
        CsiNode {
            cfg,
            backend,
            locks: Arc::new(VolumeLocks::default()),
        }
    }

    /// The configuration this plugin reports.
    pub fn config(&self) -> &CsiConfig {
        &self.cfg
    }

    /// Runs `f` on the blocking pool with the backend, holding the volume's
    /// lock until `f` returns, even if the RPC is cancelled meanwhile: a
    /// cancelled kubelet call must not let its retry start while the first
    /// attempt is still mounting.
    async fn with_volume<T, F>(&self, volume_id: &str, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&B) -> Result<T, Status> + Send + 'static,
    {
        let guard = self.locks.lock(volume_id).await;
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            f(&backend)
        })
        .await
        .map_err(|e| Status::internal(format!("volume operation did not complete: {e}")))?
    }
}

impl<B: VolumeBackend> std::fmt::Debug for CsiNode<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsiNode")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Logs a backend refusal and turns it into the matching status.
fn backend_status(rpc: &str, volume_id: &str, e: VolumeError) -> Status {
    warn!(rpc, volume_id, code = ?e.code(), error = e.message(), "volume operation failed");
    e.into()
}

fn unimplemented(rpc: &str, why: &str) -> Status {
    debug!(rpc, "unimplemented RPC called");
    Status::unimplemented(format!(
        "{rpc} is not implemented by this node plugin: {why}"
    ))
}

#[tonic::async_trait]
impl<B: VolumeBackend> Identity for CsiNode<B> {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        debug!("GetPluginInfo");
        Ok(Response::new(GetPluginInfoResponse {
            name: self.cfg.driver_name.clone(),
            vendor_version: self.cfg.version.clone(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        debug!("GetPluginCapabilities");
        // A node-only plugin: no CONTROLLER_SERVICE, and every volume is
        // local to the node that publishes it, with no topology to report
        // (VOLUME_ACCESSIBILITY_CONSTRAINTS only matters to CreateVolume).
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: Vec::new(),
        }))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        debug!("Probe");
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || backend.ready())
            .await
            .map_err(|e| Status::internal(format!("probe did not complete: {e}")))?
            .map_err(|e| backend_status("Probe", "", e))?;
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}

#[tonic::async_trait]
impl<B: VolumeBackend> Node for CsiNode<B> {
    async fn node_stage_volume(
        &self,
        _request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        Err(unimplemented(
            "NodeStageVolume",
            "STAGE_UNSTAGE_VOLUME is not advertised; ephemeral volumes are published directly",
        ))
    }

    async fn node_unstage_volume(
        &self,
        _request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        Err(unimplemented(
            "NodeUnstageVolume",
            "STAGE_UNSTAGE_VOLUME is not advertised; ephemeral volumes are published directly",
        ))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        // `secrets` is dropped here, unread: nothing in a bpfman volume needs
        // credentials and they must never reach a log line.
        let NodePublishVolumeRequest {
            volume_id,
            target_path,
            volume_capability,
            readonly,
            volume_context,
            ..
        } = request.into_inner();
        info!(
            volume_id = %volume_id.escape_debug(),
            target = %target_path.escape_debug(),
            readonly,
            attributes = ?validate::loggable(&volume_context),
            "NodePublishVolume"
        );
        let result = async {
            validate::volume_id(&volume_id)?;
            if target_path.is_empty() {
                return Err(Status::invalid_argument("target_path is required"));
            }
            let cap = validate::capability(volume_capability.as_ref())?;
            let pods_dir = self.cfg.pods_dir.clone();
            let id = volume_id.clone();
            self.with_volume(&volume_id, move |backend| {
                // Checked under the volume lock and right before the mount,
                // to keep the window between check and use small.
                let target = validate::confine_target(&target_path, &pods_dir, TargetUse::Publish)?;
                let req = PublishRequest {
                    volume_id: id,
                    target_path: target,
                    attributes: volume_context,
                    readonly: readonly || cap.reader_only,
                    fs_group: cap.fs_group,
                };
                backend
                    .publish(&req)
                    .map_err(|e| backend_status("NodePublishVolume", &req.volume_id, e))
            })
            .await
        }
        .await;
        match &result {
            Ok(()) => info!(volume_id = %volume_id.escape_debug(), "volume published"),
            Err(s) => warn!(
                volume_id = %volume_id.escape_debug(),
                code = ?s.code(),
                error = s.message(),
                "NodePublishVolume refused"
            ),
        }
        result.map(|()| Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let NodeUnpublishVolumeRequest {
            volume_id,
            target_path,
        } = request.into_inner();
        info!(
            volume_id = %volume_id.escape_debug(),
            target = %target_path.escape_debug(),
            "NodeUnpublishVolume"
        );
        let result = async {
            validate::volume_id(&volume_id)?;
            if target_path.is_empty() {
                return Err(Status::invalid_argument("target_path is required"));
            }
            let pods_dir = self.cfg.pods_dir.clone();
            let id = volume_id.clone();
            self.with_volume(&volume_id, move |backend| {
                let target =
                    validate::confine_target(&target_path, &pods_dir, TargetUse::Unpublish)?;
                backend
                    .unpublish(&id, &target)
                    .map_err(|e| backend_status("NodeUnpublishVolume", &id, e))
            })
            .await
        }
        .await;
        match &result {
            Ok(()) => info!(volume_id = %volume_id.escape_debug(), "volume unpublished"),
            Err(s) => warn!(
                volume_id = %volume_id.escape_debug(),
                code = ?s.code(),
                error = s.message(),
                "NodeUnpublishVolume refused"
            ),
        }
        result.map(|()| Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        _request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        Err(unimplemented(
            "NodeGetVolumeStats",
            "GET_VOLUME_STATS is not advertised; bpffs has no meaningful usage figures",
        ))
    }

    async fn node_expand_volume(
        &self,
        _request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(unimplemented(
            "NodeExpandVolume",
            "EXPAND_VOLUME is not advertised; bpffs volumes have no size",
        ))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        debug!("NodeGetCapabilities");
        // Only VOLUME_MOUNT_GROUP: the backend applies the pod's fsGroup
        // itself (kubelet cannot chown inside a bpffs). No STAGE_UNSTAGE.
        let capabilities = vec![NodeServiceCapability {
            r#type: Some(node_service_capability::Type::Rpc(Rpc {
                r#type: rpc::Type::VolumeMountGroup as i32,
            })),
        }];
        Ok(Response::new(NodeGetCapabilitiesResponse { capabilities }))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        debug!("NodeGetInfo");
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.cfg.node_id.clone(),
            // 0 leaves the limit to the CO: volumes cost no attach slots.
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

/// One async mutex per volume id with an operation in flight. Entries are
/// dropped when their last user leaves, so the map stays as small as the
/// number of concurrent operations.
#[derive(Debug, Default)]
struct VolumeLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl VolumeLocks {
    async fn lock(self: &Arc<Self>, volume_id: &str) -> VolumeGuard {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(volume_id.to_string()).or_default())
        };
        let guard = mutex.lock_owned().await;
        VolumeGuard {
            locks: Arc::clone(self),
            volume_id: volume_id.to_string(),
            _guard: guard,
        }
    }
}

/// Holds a volume's lock; on drop, forgets the volume's mutex if nobody else
/// holds or awaits it.
struct VolumeGuard {
    locks: Arc<VolumeLocks>,
    volume_id: String,
    _guard: OwnedMutexGuard<()>,
}

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        let mut map = self
            .locks
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Two references mean the map's and our guard's: no waiter cloned it.
        // Waiters clone under this same map lock, so the count cannot grow
        // while we look at it.
        if map
            .get(&self.volume_id)
            .is_some_and(|m| Arc::strong_count(m) == 2)
        {
            map.remove(&self.volume_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn volume_locks_serialise_and_clean_up() {
        let locks = Arc::new(VolumeLocks::default());
        let a = locks.lock("a").await;
        // A different volume is not blocked.
        let b = locks.lock("b").await;
        drop(b);
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _g = locks.lock("a").await;
            })
        };
        // Wait until the waiter holds a clone of "a"'s mutex.
        loop {
            let count = {
                let map = locks.map.lock().unwrap();
                map.get("a").map(Arc::strong_count)
            };
            if count == Some(3) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.unwrap();
        assert!(locks.map.lock().unwrap().is_empty());
    }
}
