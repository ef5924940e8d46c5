//! CSI end to end: a kubelet-like client publishes an inline ephemeral volume
//! through the daemon's CSI socket; an unprivileged process in its own mount
//! namespace reads the growing counter from `<target>/stats_map`; the volume
//! survives a daemon restart and unpublishes cleanly.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use bpfman_csi::proto::identity_client::IdentityClient;
use bpfman_csi::proto::node_client::NodeClient;
use bpfman_csi::proto::volume_capability::{AccessMode, AccessType, MountVolume, access_mode};
use bpfman_csi::proto::{
    GetPluginInfoRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest, NodePublishVolumeRequest,
    NodeUnpublishVolumeRequest, VolumeCapability,
};
use common::{Env, assert_same_tree, mounts_under, obj, root_or_skip, tree};

const POD_UID: &str = "6b0f5a44-2f8e-4c1b-9a57-0c0ffee00001";

fn context(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        ("csi.storage.k8s.io/pod.name", "stats-reader"),
        ("csi.storage.k8s.io/pod.namespace", "default"),
        ("csi.storage.k8s.io/pod.uid", POD_UID),
        ("csi.storage.k8s.io/serviceAccount.name", "default"),
        ("csi.storage.k8s.io/ephemeral", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn publish_req(
    volume_id: &str,
    target: &Path,
    ctx: BTreeMap<String, String>,
    readonly: bool,
) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: volume_id.into(),
        publish_context: BTreeMap::new(),
        staging_target_path: String::new(),
        target_path: target.to_string_lossy().into_owned(),
        volume_capability: Some(VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: String::new(),
                mount_flags: vec![],
                volume_mount_group: "65534".into(),
            })),
            access_mode: Some(AccessMode {
                mode: access_mode::Mode::SingleNodeWriter as i32,
            }),
        }),
        readonly,
        secrets: BTreeMap::new(),
        volume_context: ctx,
    }
}

fn target(env: &Env, volume: &str) -> PathBuf {
    let dir = env
        .pods()
        .join(POD_UID)
        .join("volumes/kubernetes.io~csi")
        .join(volume);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("mount")
}

/// Reads the counter as uid/gid 65534 in a private mount namespace, by
/// re-running this test binary in reader mode.
fn unprivileged_read(map: &Path) -> Result<u64, String> {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", "reader_mode", "--nocapture", "--test-threads=1"])
        .env("BPFMAN_TEST_READ_MAP", map);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| {
            let v = &l[l.find("VALUE=")? + 6..];
            v.split_whitespace().next()?.parse::<u64>().ok()
        })
        .ok_or_else(|| {
            format!(
                "reader failed: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Reader mode: only acts when run by `unprivileged_read`.
#[test]
fn reader_mode() {
    let Ok(map) = std::env::var("BPFMAN_TEST_READ_MAP") else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    assert_ne!(unsafe { libc::geteuid() }, 0, "reader must not be root");
    println!("VALUE={}", common::read_u64(Path::new(&map), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_publishes_maps_to_an_unprivileged_reader() {
    if !root_or_skip("kubelet_publishes_maps_to_an_unprivileged_reader") {
        return;
    }
    let mut env = Env::with_csi();
    let stats = obj("examples/stats/stats.bpf.o");
    let id = env.load(&[
        "-m",
        "bpfman.io/application=stats",
        &stats,
        "count_sched_switch",
    ])[0];
    env.ok_json(&["attach", &id.to_string(), "tracepoint"]);

    let ch = bpfman_csi::connect(&env.csi_socket()).await.unwrap();
    let mut identity = IdentityClient::new(ch.clone());
    let mut node = NodeClient::new(ch);
    let info = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.go-bpfman.io");
    assert_eq!(
        node.node_get_info(NodeGetInfoRequest {})
            .await
            .unwrap()
            .into_inner()
            .node_id,
        "test-node"
    );
    node.node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap();

    // Nothing matches: NOT_FOUND naming the selector.
    let t0 = target(&env, "nomatch");
    let e = node
        .node_publish_volume(publish_req(
            "vol-none",
            &t0,
            context(&[("bpfman.io/application", "nope")]),
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        e.message().contains("bpfman.io/application=nope"),
        "{}",
        e.message()
    );
    assert!(mounts_under(&env.pods()).is_empty());

    // Failed publishes leave the runtime tree as it was: a selector that
    // matches nothing, a target that is a file (the bind mount fails after
    // the private bpffs was made), an unknown map.
    let file_target = target(&env, "is-a-file");
    std::fs::write(&file_target, b"").unwrap();
    let before = tree(env.runtime());
    for (vol, tgt, ctx) in [
        (
            "vol-none",
            &t0,
            context(&[("bpfman.io/application", "nope")]),
        ),
        (
            "vol-file",
            &file_target,
            context(&[("bpfman.io/application", "stats")]),
        ),
        (
            "vol-nomap",
            &t0,
            context(&[
                ("bpfman.io/application", "stats"),
                ("csi.bpfman.io/maps", "no_such_map"),
            ]),
        ),
    ] {
        let e = node
            .node_publish_volume(publish_req(vol, tgt, ctx, false))
            .await
            .unwrap_err();
        assert!(!e.message().is_empty(), "{vol}: {e:?}");
        assert_same_tree(vol, &before, &tree(env.runtime()));
        assert!(mounts_under(&env.pods()).is_empty(), "{vol}");
    }
    std::fs::remove_file(&file_target).unwrap();

    let t = target(&env, "bpf-maps");
    let req = publish_req(
        "vol-1",
        &t,
        context(&[("bpfman.io/application", "stats")]),
        false,
    );
    node.node_publish_volume(req.clone()).await.unwrap();
    // Idempotent; a different request for the same target is ALREADY_EXISTS.
    node.node_publish_volume(req.clone()).await.unwrap();
    let mut other = req.clone();
    other
        .volume_context
        .insert("csi.bpfman.io/maps".into(), "stats_map".into());
    assert_eq!(
        node.node_publish_volume(other).await.unwrap_err().code(),
        tonic::Code::AlreadyExists
    );

    let map = t.join("stats_map");
    let a = unprivileged_read(&map).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let b = unprivileged_read(&map).unwrap();
    assert!(b > a, "counter did not grow: {a} -> {b}");

    // Upstream style: program name + map list.
    let t2 = target(&env, "upstream");
    node.node_publish_volume(publish_req(
        "vol-2",
        &t2,
        context(&[
            ("csi.bpfman.io/program", "count_sched_switch"),
            ("csi.bpfman.io/maps", "stats_map"),
        ]),
        true,
    ))
    .await
    .unwrap();
    assert!(unprivileged_read(&t2.join("stats_map")).unwrap() > 0);

    // Restart the daemon: volumes stay readable and can be unpublished after it.
    drop(node);
    drop(identity);
    env.stop_daemon();
    assert!(unprivileged_read(&map).is_ok());
    env.start_daemon();
    let ch = bpfman_csi::connect(&env.csi_socket()).await.unwrap();
    let mut node = NodeClient::new(ch);
    assert!(unprivileged_read(&map).unwrap() >= b);
    for (vol, tgt) in [("vol-1", &t), ("vol-2", &t2)] {
        let un = NodeUnpublishVolumeRequest {
            volume_id: vol.into(),
            target_path: tgt.to_string_lossy().into_owned(),
        };
        node.node_unpublish_volume(un.clone()).await.unwrap();
        node.node_unpublish_volume(un).await.unwrap(); // idempotent
    }
    assert!(
        mounts_under(&env.pods()).is_empty(),
        "mounts left: {:?}",
        mounts_under(&env.pods())
    );
    assert!(mounts_under(&env.runtime().join("csi")).is_empty());
    env.ok_json(&["unload", &id.to_string()]);
    env.assert_empty();
}

/// Health reports serving only once the CSI socket is there too: a kubelet
/// (or a test) that waits for health can connect to the plugin at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csi_socket_is_there_once_the_daemon_reports_serving() {
    if !root_or_skip("the_csi_socket_is_there_once_the_daemon_reports_serving") {
        return;
    }
    let env = Env::with_csi();
    let ch = bpfman_csi::connect(&env.csi_socket())
        .await
        .unwrap_or_else(|e| panic!("CSI socket not served once healthy: {e}"));
    let info = IdentityClient::new(ch)
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, bpfman_csi::DEFAULT_DRIVER_NAME);
}

/// A CSI endpoint that is taken refuses to start with one line naming it,
/// before the store opens, and leaves nothing behind (nor the file there).
#[test]
fn a_taken_csi_endpoint_refuses_to_start_before_the_store_opens() {
    if !root_or_skip("a_taken_csi_endpoint_refuses_to_start_before_the_store_opens") {
        return;
    }
    let dir = bpfman_testkit::RuntimeDir::new("bpfman-test-");
    let endpoint = dir.path().join("csi-plugin/csi.sock");
    std::fs::create_dir_all(endpoint.parent().unwrap()).unwrap();
    std::fs::write(&endpoint, "not a socket").unwrap();
    let socket = dir.path().join("sock/bpfman.sock");
    let out = bpfman_testkit::Daemon::builder(Path::new(common::bin()), dir.path(), &socket)
        .csi(&endpoint, &dir.path().join("pods"), "test-node")
        .into_command()
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("CSI node plugin on {}", endpoint.display()))
            && errors[0].contains("is not a socket"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("db/store.db").exists(),
        "the store was opened"
    );
    assert!(!socket.exists(), "the gRPC socket was left behind");
    assert_eq!(std::fs::read_to_string(&endpoint).unwrap(), "not a socket");
}
