//! NodePublishVolume / NodeUnpublishVolume latency for a volume of ten maps,
//! through the manager in-process (the code the CSI node service calls).

use std::collections::BTreeMap;
use std::path::Path;

use bpfman_core::spec::{BytecodeSource, LoadSpec};
use bpfman_manager::PublishRequest;

use crate::backend::InProcess;
use crate::error::{BenchError, Result};
use crate::sandbox::{Sandbox, check_stop};
use crate::stats::Samples;

/// Metadata that marks the ten-map program; the volume selects it.
const SELECTOR: (&str, &str) = ("bench.io/app", "tenmaps");
/// Maps the object holds.
pub const EXPECTED_MAPS: usize = 10;
/// Group the volume's files are given to (exercises the chown path, as a
/// pod's fsGroup does).
const FS_GROUP: u32 = 2000;

/// Latencies of the CSI phase.
#[derive(Debug, Default)]
pub struct CsiResult {
    /// Maps in each published volume.
    pub maps: usize,
    /// NodePublishVolume.
    pub publish: Samples,
    /// NodeUnpublishVolume.
    pub unpublish: Samples,
}

/// Loads `object` (ten maps) in a runtime dir of its own, then publishes and
/// unpublishes a volume `iterations` times, each as a new pod would get it
/// (new volume id, new target under a private pods dir).
pub fn run(sandbox: &Sandbox, object: &Path, iterations: usize) -> Result<CsiResult> {
    let runtime = sandbox.dir("csi-runtime")?;
    let b = InProcess::open(&runtime)?;
    let spec = LoadSpec {
        source: BytecodeSource::File {
            path: object.to_string_lossy().into_owned(),
        },
        programs: Vec::new(),
        metadata: BTreeMap::from([(SELECTOR.0.to_string(), SELECTOR.1.to_string())]),
        global_data: BTreeMap::new(),
        map_owner_id: None,
        pull_policy: None,
        registry_auth: None,
    };
    let loaded = b
        .manager()
        .load(spec)
        .map_err(|e| BenchError::manager("load the ten-map object", e))?;
    let result = publish_loop(sandbox, &b, iterations);
    for p in &loaded {
        b.manager()
            .unload(p.id)
            .map_err(|e| BenchError::manager(format!("unload {}", p.id), e))?;
    }
    result
}

fn publish_loop(sandbox: &Sandbox, b: &InProcess, iterations: usize) -> Result<CsiResult> {
    let mut res = CsiResult::default();
    for i in 0..iterations {
        check_stop()?;
        let uid = format!("00000000-0000-4000-8000-{i:012}");
        let volume_id = format!("csi-bench-{i}");
        // Kubelet creates the volume directory; the driver the mount point.
        let vol_dir = sandbox.dir(&format!("pods/{uid}/volumes/kubernetes.io~csi/stats"))?;
        let target = vol_dir.join("mount");
        let req = PublishRequest {
            volume_id: volume_id.clone(),
            target_path: target.clone(),
            attributes: BTreeMap::from([
                (SELECTOR.0.to_string(), SELECTOR.1.to_string()),
                ("csi.storage.k8s.io/ephemeral".into(), "true".into()),
                ("csi.storage.k8s.io/pod.name".into(), format!("bench-{i}")),
                ("csi.storage.k8s.io/pod.namespace".into(), "default".into()),
                ("csi.storage.k8s.io/pod.uid".into(), uid.clone()),
                (
                    "csi.storage.k8s.io/serviceAccount.name".into(),
                    "default".into(),
                ),
            ]),
            readonly: false,
            fs_group: Some(FS_GROUP),
        };
        let rec = res.publish.time(|| {
            b.manager()
                .publish_volume(&req)
                .map_err(|e| BenchError::manager(format!("publish {volume_id}"), e))
        })?;
        if i == 0 {
            // Outside the timing: the volume really holds the ten maps. (A
            // fresh bpffs may also show the kernel's preload files,
            // maps.debug and progs.debug, so look for the names.)
            let missing: Vec<&str> = rec
                .maps
                .iter()
                .map(|m| m.name.as_str())
                .filter(|name| !target.join(name).exists())
                .collect();
            if rec.maps.len() != EXPECTED_MAPS || !missing.is_empty() {
                return Err(BenchError::Check(format!(
                    "volume at {} has {} maps, expected {EXPECTED_MAPS}; missing files: {missing:?}",
                    target.display(),
                    rec.maps.len()
                )));
            }
            res.maps = rec.maps.len();
        }
        res.unpublish.time(|| {
            b.manager()
                .unpublish_volume(&volume_id, &target)
                .map_err(|e| BenchError::manager(format!("unpublish {volume_id}"), e))
        })?;
    }
    Ok(res)
}
