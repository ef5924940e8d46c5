//! Each call is logged with its volume id, target and attributes, and no
//! secret reaches the log: neither `secrets` nor the service-account tokens
//! kubelet may put in `volume_context`. (Own test binary: it installs the
//! process-wide subscriber.)

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Harness, POD_UID, VOLUME_ID, publish_request, unpublish_request};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_logged_without_secrets() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let mut h = Harness::start().await;
    let target = h.kubelet_target(POD_UID, "bpf-maps");
    let mut req = publish_request(VOLUME_ID, &target);
    req.secrets = BTreeMap::from([("password".to_string(), "hunter2-secret".to_string())]);
    req.volume_context.insert(
        "csi.storage.k8s.io/serviceAccount.tokens".into(),
        r#"{"bpfman":{"token":"eyJ-token-value","expirationTimestamp":"x"}}"#.into(),
    );
    h.node.node_publish_volume(req).await.unwrap();
    h.node
        .node_unpublish_volume(unpublish_request(VOLUME_ID, &target))
        .await
        .unwrap();
    h.stop().await.unwrap();

    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("NodePublishVolume"), "{log}");
    assert!(log.contains("NodeUnpublishVolume"), "{log}");
    assert!(log.contains(VOLUME_ID), "{log}");
    assert!(log.contains(target.to_str().unwrap()), "{log}");
    assert!(log.contains("bpfman.io/application"), "{log}");
    assert!(log.contains("<redacted>"), "{log}");
    assert!(
        !log.contains("hunter2-secret"),
        "a secret was logged:\n{log}"
    );
    assert!(
        !log.contains("password"),
        "a secret's key was logged:\n{log}"
    );
    assert!(
        !log.contains("eyJ-token-value"),
        "a token was logged:\n{log}"
    );
}
