//! Shared harness for the protocol tests: a recording backend, a server on a
//! real Unix socket in a temp dir, and generated tonic clients.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bpfman_csi::proto::identity_client::IdentityClient;
use bpfman_csi::proto::node_client::NodeClient;
use bpfman_csi::proto::volume_capability::{AccessMode, AccessType, MountVolume, access_mode};
use bpfman_csi::proto::{NodePublishVolumeRequest, NodeUnpublishVolumeRequest, VolumeCapability};
use bpfman_csi::{CsiConfig, CsiError, PublishRequest, VolumeBackend, VolumeError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A volume id shaped like kubelet's: `csi-` + hex SHA-256.
pub const VOLUME_ID: &str = "csi-5f1a0c9b3e2d4f60718293a4b5c6d7e8f90112233445566778899aabbccddeef";
pub const POD_UID: &str = "6b1c9a52-2f5e-4c1e-9d0a-3b4c5d6e7f80";

/// One call the backend saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Publish(PublishRequest),
    Unpublish(String, PathBuf),
}

/// Makes the first publish of `volume` block until the test releases it.
pub struct Gate {
    pub volume: String,
    pub entered: mpsc::Sender<()>,
    pub release: mpsc::Receiver<()>,
}

/// A backend that records every call and answers as configured.
#[derive(Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<Call>>,
    pub publish_error: Mutex<Option<VolumeError>>,
    pub ready_error: Mutex<Option<VolumeError>>,
    pub gate: Mutex<Option<Gate>>,
    in_flight: Mutex<HashMap<String, u32>>,
    /// Times a call started while another call for the same volume ran.
    pub overlaps: Mutex<u32>,
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn enter(&self, volume: &str, call: Call) {
        self.calls.lock().unwrap().push(call);
        let mut in_flight = self.in_flight.lock().unwrap();
        let n = in_flight.entry(volume.to_string()).or_default();
        if *n > 0 {
            *self.overlaps.lock().unwrap() += 1;
        }
        *n += 1;
    }

    fn leave(&self, volume: &str) {
        let mut in_flight = self.in_flight.lock().unwrap();
        if let Some(n) = in_flight.get_mut(volume) {
            *n -= 1;
        }
    }
}

impl VolumeBackend for Recorder {
    fn publish(&self, req: &PublishRequest) -> Result<(), VolumeError> {
        self.enter(&req.volume_id, Call::Publish(req.clone()));
        let gate = {
            let mut gate = self.gate.lock().unwrap();
            if gate.as_ref().is_some_and(|g| g.volume == req.volume_id) {
                gate.take()
            } else {
                None
            }
        };
        if let Some(gate) = gate {
            gate.entered.send(()).unwrap();
            gate.release.recv().unwrap();
        }
        self.leave(&req.volume_id);
        match self.publish_error.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn unpublish(&self, volume_id: &str, target_path: &Path) -> Result<(), VolumeError> {
        self.enter(
            volume_id,
            Call::Unpublish(volume_id.to_string(), target_path.to_path_buf()),
        );
        self.leave(volume_id);
        // Idempotent, like the real backend: unknown volumes are fine.
        Ok(())
    }

    fn ready(&self) -> Result<(), VolumeError> {
        match self.ready_error.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A running server on a real Unix socket, with clients connected to it.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub pods: PathBuf,
    pub socket: PathBuf,
    pub cfg: CsiConfig,
    pub backend: Arc<Recorder>,
    pub identity: IdentityClient<Channel>,
    pub node: NodeClient<Channel>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), CsiError>>>,
}

impl Harness {
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("kubelet/pods");
        std::fs::create_dir_all(&pods).unwrap();
        // The socket directory does not exist yet: serve() creates it.
        let socket = dir.path().join("plugins/csi.go-bpfman.io/csi.sock");
        let mut cfg = CsiConfig::new("node-a");
        cfg.pods_dir = pods.clone();
        cfg.version = "9.9.9-test".into();
        let backend = Arc::new(Recorder::default());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let (socket, cfg, backend) = (socket.clone(), cfg.clone(), Arc::clone(&backend));
            async move {
                bpfman_csi::serve(&socket, cfg, backend, async {
                    let _ = rx.await;
                })
                .await
            }
        });
        let channel = wait_connect(&socket, &server).await;
        Harness {
            dir,
            pods,
            socket,
            cfg,
            backend,
            identity: IdentityClient::new(channel.clone()),
            node: NodeClient::new(channel),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Creates the directory kubelet creates for a pod's CSI volume and
    /// returns the target path inside it (which the driver creates).
    pub fn kubelet_target(&self, pod_uid: &str, volume_name: &str) -> PathBuf {
        let dir = self
            .pods
            .join(pod_uid)
            .join("volumes/kubernetes.io~csi")
            .join(volume_name);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("mount")
    }

    /// Stops the server and returns what serve() returned.
    pub async fn stop(mut self) -> Result<(), CsiError> {
        // Drop the clients first so their connection closes and the server's
        // graceful shutdown has nothing to wait for.
        drop(self.identity);
        drop(self.node);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }
}

/// Waits until the server accepts connections (or fails to start).
pub async fn wait_connect(socket: &Path, server: &JoinHandle<Result<(), CsiError>>) -> Channel {
    loop {
        if let Ok(ch) = bpfman_csi::connect(socket).await {
            return ch;
        }
        assert!(
            !server.is_finished(),
            "the CSI server exited during start-up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The volume_context kubelet sends for an inline volume of a pod whose
/// CSIDriver has podInfoOnMount, with the pod's volumeAttributes.
pub fn kubelet_context() -> BTreeMap<String, String> {
    [
        ("csi.storage.k8s.io/pod.name", "stats-reader-7d9f"),
        ("csi.storage.k8s.io/pod.namespace", "default"),
        ("csi.storage.k8s.io/pod.uid", POD_UID),
        ("csi.storage.k8s.io/serviceAccount.name", "default"),
        ("csi.storage.k8s.io/ephemeral", "true"),
        ("bpfman.io/application", "stats"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn mount_capability(mode: access_mode::Mode, group: &str) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: String::new(),
            mount_flags: Vec::new(),
            volume_mount_group: group.to_string(),
        })),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

/// A NodePublishVolumeRequest as kubelet sends it for an inline volume.
pub fn publish_request(volume_id: &str, target: &Path) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: volume_id.to_string(),
        publish_context: BTreeMap::new(),
        staging_target_path: String::new(),
        target_path: target.to_str().unwrap().to_string(),
        volume_capability: Some(mount_capability(access_mode::Mode::SingleNodeWriter, "")),
        readonly: false,
        secrets: BTreeMap::new(),
        volume_context: kubelet_context(),
    }
}

pub fn unpublish_request(volume_id: &str, target: &Path) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: volume_id.to_string(),
        target_path: target.to_str().unwrap().to_string(),
    }
}
