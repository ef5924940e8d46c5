//! A kubelet stand-in for demos and manual checks: drives a CSI node plugin
//! socket with the calls kubelet makes for an inline ephemeral volume.
//!
//! ```text
//! kubelet publish   --endpoint SOCK --volume-id ID --target PATH [--attr K=V]... [--pod-uid UID] [--fs-group GID] [--readonly]
//! kubelet unpublish --endpoint SOCK --volume-id ID --target PATH
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use bpfman_csi::proto::identity_client::IdentityClient;
use bpfman_csi::proto::node_client::NodeClient;
use bpfman_csi::proto::volume_capability::{AccessMode, AccessType, MountVolume, access_mode};
use bpfman_csi::proto::{
    GetPluginInfoRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest, NodePublishVolumeRequest,
    NodeUnpublishVolumeRequest, VolumeCapability,
};

#[derive(Default)]
struct Args {
    cmd: String,
    endpoint: PathBuf,
    volume_id: String,
    target: String,
    attrs: BTreeMap<String, String>,
    pod_uid: String,
    fs_group: String,
    readonly: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        pod_uid: "00000000-0000-0000-0000-000000000001".into(),
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    a.cmd = it.next().ok_or("usage: kubelet publish|unpublish ...")?;
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = PathBuf::from(val()?),
            "--volume-id" => a.volume_id = val()?,
            "--target" => a.target = val()?,
            "--pod-uid" => a.pod_uid = val()?,
            "--fs-group" => a.fs_group = val()?,
            "--readonly" => a.readonly = true,
            "--attr" => {
                let kv = val()?;
                let (k, v) = kv.split_once('=').ok_or(format!("--attr {kv}: not K=V"))?;
                a.attrs.insert(k.into(), v.into());
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("kubelet: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let a = parse()?;
    let ch = bpfman_csi::connect(&a.endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let mut identity = IdentityClient::new(ch.clone());
    let mut node = NodeClient::new(ch);
    match a.cmd.as_str() {
        "publish" => {
            let info = identity
                .get_plugin_info(GetPluginInfoRequest {})
                .await
                .map_err(|s| s.message().to_string())?
                .into_inner();
            let ni = node
                .node_get_info(NodeGetInfoRequest {})
                .await
                .map_err(|s| s.message().to_string())?
                .into_inner();
            node.node_get_capabilities(NodeGetCapabilitiesRequest {})
                .await
                .map_err(|s| s.message().to_string())?;
            println!(
                "driver {} {} on node {}",
                info.name, info.vendor_version, ni.node_id
            );
            let mut ctx: BTreeMap<String, String> = [
                ("csi.storage.k8s.io/pod.name", "stats-reader"),
                ("csi.storage.k8s.io/pod.namespace", "default"),
                ("csi.storage.k8s.io/serviceAccount.name", "default"),
                ("csi.storage.k8s.io/ephemeral", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            ctx.insert("csi.storage.k8s.io/pod.uid".into(), a.pod_uid.clone());
            ctx.extend(a.attrs.clone());
            let mode = if a.readonly {
                access_mode::Mode::SingleNodeReaderOnly
            } else {
                access_mode::Mode::SingleNodeWriter
            };
            node.node_publish_volume(NodePublishVolumeRequest {
                volume_id: a.volume_id.clone(),
                publish_context: BTreeMap::new(),
                staging_target_path: String::new(),
                target_path: a.target.clone(),
                volume_capability: Some(VolumeCapability {
                    access_type: Some(AccessType::Mount(MountVolume {
                        fs_type: String::new(),
                        mount_flags: Vec::new(),
                        volume_mount_group: a.fs_group.clone(),
                    })),
                    access_mode: Some(AccessMode { mode: mode as i32 }),
                }),
                readonly: a.readonly,
                secrets: BTreeMap::new(),
                volume_context: ctx,
            })
            .await
            .map_err(|s| format!("NodePublishVolume: {:?}: {}", s.code(), s.message()))?;
            println!("published volume {} at {}", a.volume_id, a.target);
        }
        "unpublish" => {
            node.node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: a.volume_id.clone(),
                target_path: a.target.clone(),
            })
            .await
            .map_err(|s| format!("NodeUnpublishVolume: {:?}: {}", s.code(), s.message()))?;
            println!("unpublished volume {}", a.volume_id);
        }
        other => return Err(format!("unknown command {other}: publish or unpublish")),
    }
    Ok(())
}
