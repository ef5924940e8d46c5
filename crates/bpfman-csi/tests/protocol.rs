//! csi.v1 driven over a real Unix socket by generated tonic clients: the
//! exact kubelet sequence for an inline ephemeral volume, and csi-sanity-style
//! node conformance checks.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;

use bpfman_csi::proto::node_service_capability::{self, rpc};
use bpfman_csi::proto::volume_capability::{AccessType, BlockVolume, access_mode::Mode};
use bpfman_csi::proto::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, NodeExpandVolumeRequest,
    NodeGetCapabilitiesRequest, NodeGetInfoRequest, NodeGetVolumeStatsRequest,
    NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, ProbeRequest,
};
use bpfman_csi::{PublishRequest, VolumeError};
use common::{
    Call, Gate, Harness, POD_UID, VOLUME_ID, kubelet_context, mount_capability, publish_request,
    unpublish_request,
};
use tonic::Code;

/// The calls kubelet makes, in order, from plugin registration to the
/// teardown of a pod with an inline bpfman volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_inline_volume_sequence() {
    let mut h = Harness::start().await;

    // Registration: the driver name must match the CSIDriver object.
    let info = h
        .identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.go-bpfman.io");
    assert_eq!(info.name, h.cfg.driver_name);
    assert_eq!(info.vendor_version, "9.9.9-test");

    let node_info = h
        .node
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node_info.node_id, "node-a");
    assert_eq!(node_info.max_volumes_per_node, 0);
    assert!(node_info.accessible_topology.is_none());

    // Mount: kubelet checks the node capabilities, then publishes.
    let caps = h
        .node
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let types: Vec<_> = caps
        .iter()
        .map(|c| match &c.r#type {
            Some(node_service_capability::Type::Rpc(r)) => r.r#type(),
            None => rpc::Type::Unknown,
        })
        .collect();
    assert_eq!(types, vec![rpc::Type::VolumeMountGroup]);

    let target = h.kubelet_target(POD_UID, "bpf-maps");
    let mut req = publish_request(VOLUME_ID, &target);
    req.volume_capability = Some(mount_capability(Mode::SingleNodeWriter, "2000"));
    req.secrets = BTreeMap::from([("token".to_string(), "s3cr3t".to_string())]);
    h.node.node_publish_volume(req).await.unwrap();

    let canonical_target = target
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap()
        .join("mount");
    assert_eq!(
        h.backend.calls(),
        vec![Call::Publish(PublishRequest {
            volume_id: VOLUME_ID.to_string(),
            target_path: canonical_target.clone(),
            attributes: kubelet_context(),
            readonly: false,
            fs_group: Some(2000),
        })]
    );

    // Teardown.
    h.node
        .node_unpublish_volume(unpublish_request(VOLUME_ID, &target))
        .await
        .unwrap();
    assert_eq!(
        h.backend.calls()[1],
        Call::Unpublish(VOLUME_ID.to_string(), canonical_target)
    );
    assert_eq!(h.backend.calls().len(), 2);
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_capabilities_and_probe() {
    let mut h = Harness::start().await;
    let caps = h
        .identity
        .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    // Node-only: in particular no CONTROLLER_SERVICE.
    assert!(caps.capabilities.is_empty());

    let probe = h
        .identity
        .probe(ProbeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(probe.ready, Some(true));

    *h.backend.ready_error.lock().unwrap() =
        Some(VolumeError::FailedPrecondition("store not open yet".into()));
    let err = h.identity.probe(ProbeRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "store not open yet");
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_malformed_fields_are_invalid_argument() {
    let mut h = Harness::start().await;
    let target = h.kubelet_target(POD_UID, "v");
    let good = publish_request(VOLUME_ID, &target);

    let mut cases: Vec<(&str, NodePublishVolumeRequest)> = Vec::new();
    cases.push((
        "no volume_id",
        NodePublishVolumeRequest {
            volume_id: String::new(),
            ..good.clone()
        },
    ));
    cases.push((
        "no target_path",
        NodePublishVolumeRequest {
            target_path: String::new(),
            ..good.clone()
        },
    ));
    cases.push((
        "no volume_capability",
        NodePublishVolumeRequest {
            volume_capability: None,
            ..good.clone()
        },
    ));
    for bad_id in ["../etc", "a/b", "a\0b", ".", "..", &"x".repeat(129)] {
        cases.push((
            "unsafe volume_id",
            NodePublishVolumeRequest {
                volume_id: bad_id.to_string(),
                ..good.clone()
            },
        ));
    }
    let mut block = good.clone();
    block.volume_capability.as_mut().unwrap().access_type = Some(AccessType::Block(BlockVolume {}));
    cases.push(("block access", block));
    let mut no_type = good.clone();
    no_type.volume_capability.as_mut().unwrap().access_type = None;
    cases.push(("no access_type", no_type));
    let mut no_mode = good.clone();
    no_mode.volume_capability.as_mut().unwrap().access_mode = None;
    cases.push(("no access_mode", no_mode));
    cases.push((
        "unknown access mode",
        NodePublishVolumeRequest {
            volume_capability: Some(mount_capability(Mode::Unknown, "")),
            ..good.clone()
        },
    ));
    cases.push((
        "non-numeric group",
        NodePublishVolumeRequest {
            volume_capability: Some(mount_capability(Mode::SingleNodeWriter, "staff")),
            ..good.clone()
        },
    ));

    for (what, req) in cases {
        let err = h.node.node_publish_volume(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            !err.message().is_empty(),
            "{what}: a message a person can act on"
        );
    }

    for (what, req) in [
        ("no volume_id", unpublish_request("", &target)),
        ("unsafe volume_id", unpublish_request("a/b", &target)),
        (
            "no target_path",
            NodeUnpublishVolumeRequest {
                volume_id: VOLUME_ID.into(),
                target_path: String::new(),
            },
        ),
    ] {
        let err = h.node.node_unpublish_volume(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    }

    assert!(
        h.backend.calls().is_empty(),
        "invalid requests must not reach the backend"
    );
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_rpcs_are_unimplemented() {
    let mut h = Harness::start().await;
    let codes = [
        h.node
            .node_stage_volume(NodeStageVolumeRequest::default())
            .await
            .unwrap_err(),
        h.node
            .node_unstage_volume(NodeUnstageVolumeRequest::default())
            .await
            .unwrap_err(),
        h.node
            .node_get_volume_stats(NodeGetVolumeStatsRequest::default())
            .await
            .unwrap_err(),
        h.node
            .node_expand_volume(NodeExpandVolumeRequest::default())
            .await
            .unwrap_err(),
    ];
    for status in codes {
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
        assert!(status.message().contains("not implemented"), "{status:?}");
    }
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_paths_outside_the_pods_dir_are_refused() {
    let mut h = Harness::start().await;
    let root = h.dir.path().to_path_buf();
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let pod_volumes = h.pods.join(POD_UID).join("volumes/kubernetes.io~csi");
    std::fs::create_dir_all(&pod_volumes).unwrap();
    // A symlink planted under the pods dir that points out of it.
    std::os::unix::fs::symlink(&outside, pod_volumes.join("escape")).unwrap();
    // A target that is itself a symlink.
    std::os::unix::fs::symlink(&outside, pod_volumes.join("link")).unwrap();

    let refused: Vec<(&str, String)> = vec![
        (
            "outside",
            outside.join("mount").to_str().unwrap().to_string(),
        ),
        (
            "dot-dot",
            format!("{}/../../../outside/mount", pod_volumes.display()),
        ),
        (
            "relative",
            format!("kubelet/pods/{POD_UID}/volumes/x/mount"),
        ),
        ("pods dir itself", h.pods.to_str().unwrap().to_string()),
        (
            "symlinked parent",
            pod_volumes
                .join("escape/mount")
                .to_str()
                .unwrap()
                .to_string(),
        ),
        (
            "symlink target",
            pod_volumes.join("link").to_str().unwrap().to_string(),
        ),
    ];
    for (what, target) in &refused {
        let mut req = publish_request(VOLUME_ID, &PathBuf::from(target));
        req.target_path = target.clone();
        let err = h.node.node_publish_volume(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "publish {what}: {err:?}");

        let req = NodeUnpublishVolumeRequest {
            volume_id: VOLUME_ID.into(),
            target_path: target.clone(),
        };
        let err = h.node.node_unpublish_volume(req).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "unpublish {what}: {err:?}"
        );
    }
    assert!(
        h.backend.calls().is_empty(),
        "the backend must never see a refused target"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // The parent must exist for publish (kubelet creates it).
    let not_yet = h.pods.join("no-such-pod/volumes/kubernetes.io~csi/v/mount");
    let err = h
        .node
        .node_publish_volume(publish_request(VOLUME_ID, &not_yet))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(h.backend.calls().is_empty());
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_of_an_unknown_volume_is_ok() {
    let mut h = Harness::start().await;
    // Once with the pod's directory still there, once after it is gone.
    let target = h.kubelet_target(POD_UID, "v");
    h.node
        .node_unpublish_volume(unpublish_request("csi-unknown", &target))
        .await
        .unwrap();
    let gone = h.pods.join("deleted-pod/volumes/kubernetes.io~csi/v/mount");
    h.node
        .node_unpublish_volume(unpublish_request("csi-unknown", &gone))
        .await
        .unwrap();
    let calls = h.backend.calls();
    assert_eq!(calls.len(), 2);
    assert!(matches!(&calls[1], Call::Unpublish(id, p)
        if id == "csi-unknown" && p.ends_with("deleted-pod/volumes/kubernetes.io~csi/v/mount")));
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_and_reader_only_modes() {
    let mut h = Harness::start().await;
    let target = h.kubelet_target(POD_UID, "v");
    let cases = [
        (Mode::SingleNodeWriter, false, false),
        (Mode::SingleNodeWriter, true, true),
        (Mode::SingleNodeReaderOnly, false, true),
        (Mode::MultiNodeReaderOnly, false, true),
        (Mode::MultiNodeMultiWriter, false, false),
    ];
    for (mode, readonly, want) in cases {
        let mut req = publish_request(VOLUME_ID, &target);
        req.readonly = readonly;
        req.volume_capability = Some(mount_capability(mode, ""));
        h.node.node_publish_volume(req).await.unwrap();
        let Some(Call::Publish(seen)) = h.backend.calls().pop() else {
            panic!("no publish recorded")
        };
        assert_eq!(seen.readonly, want, "{mode:?} readonly={readonly}");
        assert_eq!(seen.fs_group, None);
    }
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_keep_their_code_and_message() {
    let mut h = Harness::start().await;
    let target = h.kubelet_target(POD_UID, "v");
    let cases = [
        (
            VolumeError::InvalidArgument("bad selector".into()),
            Code::InvalidArgument,
        ),
        (
            VolumeError::NotFound("no program has bpfman.io/application=stats".into()),
            Code::NotFound,
        ),
        (
            VolumeError::AlreadyExists("published elsewhere".into()),
            Code::AlreadyExists,
        ),
        (
            VolumeError::FailedPrecondition("bpffs missing".into()),
            Code::FailedPrecondition,
        ),
        (VolumeError::Internal("mount: EPERM".into()), Code::Internal),
    ];
    for (err, code) in cases {
        let message = err.message().to_string();
        *h.backend.publish_error.lock().unwrap() = Some(err);
        let status = h
            .node
            .node_publish_volume(publish_request(VOLUME_ID, &target))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code);
        assert_eq!(status.message(), message);
    }
    h.stop().await.unwrap();
}

/// Publish and unpublish of one volume never overlap in the backend, even
/// when kubelet gives up on a call and retries; other volumes go ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_for_one_volume_are_serialised() {
    let h = Harness::start().await;
    let target = h.kubelet_target(POD_UID, "v");
    let other = h.kubelet_target("other-pod", "v");
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *h.backend.gate.lock().unwrap() = Some(Gate {
        volume: VOLUME_ID.into(),
        entered: entered_tx,
        release: release_rx,
    });

    // The first publish blocks inside the backend; kubelet then gives up on
    // it (the client call is aborted) and retries, then tears down.
    let mut first_client = h.node.clone();
    let first = tokio::spawn({
        let req = publish_request(VOLUME_ID, &target);
        async move { first_client.node_publish_volume(req).await }
    });
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();
    first.abort();
    let _ = first.await;

    let mut retry_client = h.node.clone();
    let retry = tokio::spawn({
        let req = publish_request(VOLUME_ID, &target);
        async move { retry_client.node_publish_volume(req).await }
    });
    let mut teardown_client = h.node.clone();
    let teardown = tokio::spawn({
        let req = unpublish_request(VOLUME_ID, &target);
        async move { teardown_client.node_unpublish_volume(req).await }
    });

    // Another volume is not held up by the blocked one.
    let mut other_client = h.node.clone();
    other_client
        .node_publish_volume(publish_request("csi-other", &other))
        .await
        .unwrap();
    let seen_for_volume = |calls: Vec<Call>| {
        calls
            .into_iter()
            .filter(|c| match c {
                Call::Publish(r) => r.volume_id == VOLUME_ID,
                Call::Unpublish(id, _) => id == VOLUME_ID,
            })
            .count()
    };
    assert_eq!(
        seen_for_volume(h.backend.calls()),
        1,
        "the retry and the teardown must wait for the first publish"
    );

    release_tx.send(()).unwrap();
    retry.await.unwrap().unwrap();
    teardown.await.unwrap().unwrap();
    assert_eq!(seen_for_volume(h.backend.calls()), 3);
    assert_eq!(*h.backend.overlaps.lock().unwrap(), 0);
    h.stop().await.unwrap();
}
