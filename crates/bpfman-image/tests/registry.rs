//! End-to-end tests against a real OCI registry on loopback: Debian's
//! `docker-registry` (distribution 2.8), started per test on a free port with
//! its storage in a temp dir, with or without htpasswd basic auth, and killed
//! when the harness is dropped. Images are made by this crate's own `build`.
//!
//! Needs the packages in ../INSTALL_DEPS; without them each test prints why
//! and returns (skipped). The keys in tests/keys/ are throwaway test keys.

#![cfg(feature = "oci")]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bpfman_testkit::{Registry, files_under, tool_exists};

use bpfman_image::testing::{
    KeylessSigner, TestSigstore, TestTls, attach_bundle, attach_signature, key_bundle,
};
use bpfman_image::{
    BuildDest, BuildRequest, Credentials, IdentityRule, ImageConfig, ImageError, KeylessPolicy,
    Platform, PullPolicy, SignaturePolicy, SignatureStatus,
};

const STATS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/stats/stats.bpf.o"
);

fn key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn stats_object() -> Vec<u8> {
    std::fs::read(STATS).expect("examples/stats/stats.bpf.o is committed")
}

/// How the test registry authenticates.
enum Auth<'a> {
    None,
    /// htpasswd (bcrypt) basic auth for one user.
    Basic(&'a str, &'a str),
    /// Bearer tokens from a token server: (realm URL, PEM root cert path).
    Token(&'a str, &'a Path),
}

/// The loopback test registry (bpfman-testkit's), with this file's options.
struct TestRegistry(Registry);

impl TestRegistry {
    /// Starts a registry; `None` (with the reason printed) when the tools
    /// are missing.
    fn start(test: &str, user: Option<(&str, &str)>) -> Option<TestRegistry> {
        match user {
            Some((u, p)) => Self::start_with(test, Auth::Basic(u, p)),
            None => Self::start_with(test, Auth::None),
        }
    }

    fn start_with(test: &str, auth: Auth<'_>) -> Option<TestRegistry> {
        let b = Registry::builder(test).delete();
        let b = match auth {
            Auth::None => b,
            Auth::Basic(u, p) => b.basic_auth(u, p),
            Auth::Token(realm, cert) => b.token_auth(realm, TOKEN_SERVICE, TOKEN_ISSUER, cert),
        };
        b.start().map(TestRegistry)
    }

    /// An anonymous registry served over HTTPS with `tls`'s server certificate.
    fn start_tls(test: &str, tls: &TestTls) -> Option<TestRegistry> {
        Registry::builder(test)
            .delete()
            .tls(&tls.cert, &tls.key, |port, name| tls.header(port, name))
            .start()
            .map(TestRegistry)
    }

    fn host(&self) -> String {
        self.0.host()
    }

    fn reference(&self, repo_tag: &str) -> String {
        self.0.reference(repo_tag)
    }

    /// The file the registry serves a blob from.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.0
            .storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn stop(mut self) {
        self.0.kill();
    }
}

/// A config with its own cache that may use plain http to `reg`.
fn config(reg: Option<&TestRegistry>, cache: &Path) -> ImageConfig {
    let mut cfg = ImageConfig::with_cache_dir(cache);
    if let Some(r) = reg {
        cfg.insecure_registries.push(r.host());
    }
    cfg
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn stats_request() -> BuildRequest {
    let mut req = BuildRequest::new(STATS);
    req.programs = labels(&[("count_sched_switch", "tracepoint")]);
    req.maps = labels(&[("stats_map", "array")]);
    req
}

fn push(
    cfg: &ImageConfig,
    req: &BuildRequest,
    reference: &str,
    creds: Option<&Credentials>,
) -> String {
    bpfman_image::build(cfg, req, &BuildDest::Registry(reference.to_string()), creds)
        .unwrap()
        .digest
}

#[test]
fn pull_cache_hit_and_retag() {
    let Some(reg) = TestRegistry::start("pull_cache_hit_and_retag", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/stats:v1");
    let d1 = push(&cfg, &stats_request(), &r, None);

    let img = bpfman_image::pull(&cfg, &r, PullPolicy::IfNotPresent, None).unwrap();
    assert_eq!(
        img.object,
        stats_object(),
        "the ELF comes back byte for byte"
    );
    assert_eq!(img.object_name, "stats.bpf.o");
    assert_eq!(img.digest, d1);
    assert_eq!(img.manifest_digest, d1);
    assert_eq!(
        img.programs,
        labels(&[("count_sched_switch", "tracepoint")])
    );
    assert_eq!(img.maps, labels(&[("stats_map", "array")]));
    assert_eq!(img.signature, SignatureStatus::NotChecked);
    assert!(!img.from_cache);
    assert_eq!(img.reference, r);

    // Re-tag v1 with different content: a new digest.
    let mut other = stats_request();
    other.programs = labels(&[("count_sched_switch", "tracepoint"), ("extra", "xdp")]);
    let d2 = push(&cfg, &other, &r, None);
    assert_ne!(d1, d2);
    // IfNotPresent keeps the cached digest; Always sees the new one.
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::IfNotPresent, None).unwrap();
    assert_eq!(img.digest, d1);
    assert!(img.from_cache);
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap();
    assert_eq!(img.digest, d2);
    assert!(img.programs.contains_key("extra"));
    assert_eq!(img.object, stats_object());

    // Inspect without the layer download.
    let info = bpfman_image::inspect(&cfg, &r, PullPolicy::Always, None).unwrap();
    assert_eq!(info.digest, d2);
    assert_eq!(info.platform, Some(Platform::host()));
    assert!(info.layer_cached);
    assert!(info.labels.contains_key("io.ebpf.programs"));

    // Registry gone: cached pulls need no network, Always fails clearly.
    reg.stop();
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::IfNotPresent, None).unwrap();
    assert!(img.from_cache);
    assert_eq!(img.digest, d2);
    assert_eq!(img.object, stats_object());
    let by_digest = format!("{}@{d1}", r.rsplit_once(':').unwrap().0);
    let img = bpfman_image::pull(&cfg, &by_digest, PullPolicy::Never, None).unwrap();
    assert_eq!(img.digest, d1);
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
    assert!(matches!(e, ImageError::Network { .. }), "{e}");
    assert!(
        e.to_string().contains("cannot talk to registry 127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn never_with_empty_cache_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(None, cache.path());
    let e =
        bpfman_image::pull(&cfg, "127.0.0.1:1/bpf/none:v1", PullPolicy::Never, None).unwrap_err();
    assert!(matches!(e, ImageError::NotCached { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("127.0.0.1:1/bpf/none:v1"), "{msg}");
    assert!(msg.contains("pull policy is Never"), "{msg}");
}

#[test]
fn unknown_image_is_not_found() {
    let Some(reg) = TestRegistry::start("unknown_image_is_not_found", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let e = bpfman_image::pull(
        &cfg,
        &reg.reference("bpf/none:v1"),
        PullPolicy::Always,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, ImageError::NotFound { .. }), "{e}");
}

#[test]
fn basic_auth_credentials() {
    let Some(reg) = TestRegistry::start("basic_auth_credentials", Some(("alice", "wonderland")))
    else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/stats:v1");
    let good = Credentials::new("alice", "wonderland");
    let bad = Credentials::new("alice", "looking-glass");

    // No credentials: the registry asks for them.
    let e = bpfman_image::build(
        &cfg,
        &stats_request(),
        &BuildDest::Registry(r.clone()),
        None,
    )
    .unwrap_err();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("requires credentials"), "{e}");

    let d = push(&cfg, &stats_request(), &r, Some(&good));

    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, Some(&bad)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{msg}");
    assert!(
        msg.contains(&format!("registry {} refused the credentials", reg.host())),
        "{msg}"
    );
    assert!(
        !msg.contains("looking-glass"),
        "the password never shows: {msg}"
    );

    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
    assert!(e.to_string().contains("requires credentials"), "{e}");

    // Credentials from an auth file, as docker/podman write them.
    let auth = cache.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6d29uZGVybGFuZA=="}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let from_file = bpfman_image::credentials_from_auth_file(&auth, &reg.host())
        .unwrap()
        .unwrap();
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, Some(&from_file)).unwrap();
    assert_eq!(img.digest, d);
    assert_eq!(img.object, stats_object());

    // Nothing in the cache mentions the password.
    for f in files_under(cache.path()) {
        if f == auth {
            continue;
        }
        let data = std::fs::read(&f).unwrap();
        let hay = String::from_utf8_lossy(&data);
        assert!(
            !hay.contains("wonderland") && !hay.contains("YWxpY2U6"),
            "{}",
            f.display()
        );
    }
}

#[test]
fn corrupt_layer_is_refused() {
    let Some(reg) = TestRegistry::start("corrupt_layer_is_refused", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/stats:v1");
    push(&cfg, &stats_request(), &r, None);
    let info = bpfman_image::inspect(&cfg, &r, PullPolicy::Always, None).unwrap();
    // Damage the blob in the registry's own storage: it serves it as is.
    let f = reg.blob_file(&info.layer_digest);
    let mut data = std::fs::read(&f).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&f, data).unwrap();
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("hashes to"), "{e}");
    // Nothing usable was cached.
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Never, None).unwrap_err();
    assert!(matches!(e, ImageError::NotCached { .. }), "{e}");
}

#[test]
fn oversized_layer_is_refused() {
    let Some(reg) = TestRegistry::start("oversized_layer_is_refused", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/stats:v1");
    push(&cfg, &stats_request(), &r, None);
    cfg.max_layer_bytes = 256;
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("max_layer_bytes"), "{e}");
}

#[test]
fn missing_labels_still_give_the_object() {
    let Some(reg) = TestRegistry::start("missing_labels_still_give_the_object", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/bare:v1");
    push(&cfg, &BuildRequest::new(STATS), &r, None);
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::IfNotPresent, None).unwrap();
    assert!(img.programs.is_empty());
    assert!(img.maps.is_empty());
    assert_eq!(img.object, stats_object());
}

#[test]
fn multi_arch_index_resolves_to_the_platform() {
    let Some(reg) = TestRegistry::start("multi_arch_index_resolves_to_the_platform", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let mut amd = stats_request();
    amd.platform = "linux/amd64".parse().unwrap();
    let mut arm = stats_request();
    arm.platform = "linux/arm64".parse().unwrap();
    arm.programs = labels(&[("count_sched_switch", "tracepoint"), ("arm_only", "kprobe")]);
    let d_amd = push(&cfg, &amd, &reg.reference("bpf/multi:amd64"), None);
    let d_arm = push(&cfg, &arm, &reg.reference("bpf/multi:arm64"), None);
    let r = reg.reference("bpf/multi:v1");
    let idx = bpfman_image::build_index(
        &cfg,
        &[d_amd.clone(), d_arm.clone()],
        &BuildDest::Registry(r.clone()),
        None,
        None,
    )
    .unwrap();

    let mut cfg_amd = cfg.clone();
    cfg_amd.platform = "linux/amd64".parse().unwrap();
    let img = bpfman_image::pull(&cfg_amd, &r, PullPolicy::IfNotPresent, None).unwrap();
    assert_eq!(img.digest, idx.digest);
    assert_eq!(img.manifest_digest, d_amd);
    assert!(!img.programs.contains_key("arm_only"));
    assert_eq!(img.object, stats_object());

    let mut cfg_arm = cfg.clone();
    cfg_arm.platform = "linux/arm64".parse().unwrap();
    let img = bpfman_image::pull(&cfg_arm, &r, PullPolicy::IfNotPresent, None).unwrap();
    assert_eq!(img.manifest_digest, d_arm);
    assert!(img.programs.contains_key("arm_only"));

    let info = bpfman_image::inspect(&cfg_amd, &r, PullPolicy::IfNotPresent, None).unwrap();
    assert_eq!(info.index_platforms.len(), 2);

    let mut cfg_s390 = cfg.clone();
    cfg_s390.platform = "linux/s390x".parse().unwrap();
    let e = bpfman_image::pull(&cfg_s390, &r, PullPolicy::IfNotPresent, None).unwrap_err();
    assert!(matches!(e, ImageError::NoPlatform { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/amd64, linux/arm64"),
        "{msg}"
    );
}

fn policy(verify: bool, allow_unsigned: bool, public_key: &str) -> SignaturePolicy {
    SignaturePolicy {
        verify,
        allow_unsigned,
        public_key: verify.then(|| key(public_key)),
        keyless: None,
    }
}

#[test]
fn signatures_under_each_policy() {
    let Some(reg) = TestRegistry::start("signatures_under_each_policy", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let base = config(Some(&reg), cache.path());
    let valid = reg.reference("bpf/signed:v1");
    let invalid = reg.reference("bpf/badsig:v1");
    let missing = reg.reference("bpf/unsigned:v1");
    let mut req = stats_request();
    req.sign_key = Some(key("trusted.key"));
    let out = bpfman_image::build(&base, &req, &BuildDest::Registry(valid.clone()), None).unwrap();
    assert!(out.signature.is_some());
    // Same content, signed with a key the policy does not trust.
    let mut req_other = stats_request();
    req_other.maps = labels(&[("stats_map", "array"), ("x", "hash")]);
    req_other.sign_key = Some(key("other.key"));
    bpfman_image::build(
        &base,
        &req_other,
        &BuildDest::Registry(invalid.clone()),
        None,
    )
    .unwrap();
    // Same content as `valid` (same digest) in another repository, unsigned
    // there: signatures belong to the repository they sit in.
    let d = push(&base, &stats_request(), &missing, None);
    assert_eq!(d, out.digest);

    let off = policy(false, true, "");
    let lenient = policy(true, true, "trusted.pub");
    let strict = policy(true, false, "trusted.pub");
    let pull = |p: &SignaturePolicy, r: &str, pp: PullPolicy| {
        let mut cfg = base.clone();
        cfg.policy = p.clone();
        bpfman_image::pull(&cfg, r, pp, None)
    };
    let verified = |s: &SignatureStatus| matches!(s, SignatureStatus::Verified { .. });

    // Verification off: nothing is checked, everything loads.
    for r in [&valid, &invalid, &missing] {
        assert_eq!(
            pull(&off, r, PullPolicy::IfNotPresent).unwrap().signature,
            SignatureStatus::NotChecked
        );
    }
    // Policy changes on cached images: signatures are fetched then, and
    // re-verified on every later hit.
    for p in [&lenient, &strict] {
        let s = pull(p, &valid, PullPolicy::IfNotPresent).unwrap().signature;
        assert!(verified(&s), "{s:?}");
        let e = pull(p, &invalid, PullPolicy::IfNotPresent).unwrap_err();
        assert!(matches!(e, ImageError::SignatureInvalid { .. }), "{e}");
        assert!(e.to_string().contains("does not verify"), "{e}");
    }
    assert_eq!(
        pull(&lenient, &missing, PullPolicy::IfNotPresent)
            .unwrap()
            .signature,
        SignatureStatus::Unsigned
    );
    let e = pull(&strict, &missing, PullPolicy::IfNotPresent).unwrap_err();
    assert!(matches!(e, ImageError::SignatureMissing { .. }), "{e}");
    assert!(e.to_string().contains("allow_unsigned = false"), "{e}");

    // Always refetches and still verifies.
    assert!(verified(
        &pull(&strict, &valid, PullPolicy::Always).unwrap().signature
    ));

    // Offline: verification uses the cached signature; a key change applies.
    reg.stop();
    let img = pull(&strict, &valid, PullPolicy::Never).unwrap();
    assert!(verified(&img.signature) && img.from_cache);
    let other_key = policy(true, false, "other.pub");
    let e = pull(&other_key, &valid, PullPolicy::IfNotPresent).unwrap_err();
    assert!(matches!(e, ImageError::SignatureInvalid { .. }), "{e}");
    let s = pull(&other_key, &invalid, PullPolicy::IfNotPresent)
        .unwrap()
        .signature;
    assert!(verified(&s), "{s:?}");
    let e = pull(&strict, &missing, PullPolicy::Never).unwrap_err();
    assert!(matches!(e, ImageError::SignatureMissing { .. }), "{e}");
    assert!(pull(&off, &missing, PullPolicy::Never).unwrap().from_cache);
}

#[test]
fn signature_never_fetched_and_offline_is_a_policy_error() {
    let Some(reg) = TestRegistry::start("signature_never_fetched", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/signed:v1");
    let mut req = stats_request();
    req.sign_key = Some(key("sec1.key"));
    bpfman_image::build(&cfg, &req, &BuildDest::Registry(r.clone()), None).unwrap();
    bpfman_image::pull(&cfg, &r, PullPolicy::IfNotPresent, None).unwrap();
    cfg.policy = policy(true, false, "trusted.pub");
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Never, None).unwrap_err();
    assert!(matches!(e, ImageError::Policy(_)), "{e}");
    assert!(e.to_string().contains("never fetched"), "{e}");
}

#[test]
fn index_signature_covers_all_platforms() {
    let Some(reg) = TestRegistry::start("index_signature_covers_all_platforms", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(Some(&reg), cache.path());
    let d = push(&cfg, &stats_request(), &reg.reference("bpf/m:amd64"), None);
    let r = reg.reference("bpf/m:v1");
    let idx = bpfman_image::build_index(
        &cfg,
        &[d],
        &BuildDest::Registry(r.clone()),
        Some(&key("trusted.key")),
        None,
    )
    .unwrap();
    cfg.policy = policy(true, false, "trusted.pub");
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap();
    assert_eq!(
        img.signature,
        match img.signature.clone() {
            SignatureStatus::Verified { key, .. } => SignatureStatus::Verified {
                key,
                signed_digest: idx.digest.clone()
            },
            other => panic!("{other:?}"),
        }
    );
}

const SIGNER: &str = "release@example.com";
const ISSUER: &str = "https://accounts.example.com";

fn keyless_policy(
    trust_root: &Path,
    allow_unsigned: bool,
    public_key: Option<&str>,
) -> SignaturePolicy {
    SignaturePolicy {
        verify: true,
        allow_unsigned,
        public_key: public_key.map(key),
        keyless: Some(KeylessPolicy {
            trust_root: Some(trust_root.to_path_buf()),
            identities: vec![IdentityRule {
                identity: Some(SIGNER.to_string()),
                issuer: Some(ISSUER.to_string()),
                ..IdentityRule::default()
            }],
        }),
    }
}

/// Pushes the stats image to `reference` and attaches a keyless signature
/// made by `sigstore` as `signer`; returns the image digest.
fn push_keyless(
    cfg: &ImageConfig,
    reference: &str,
    sigstore: &TestSigstore,
    signer: &KeylessSigner,
) -> String {
    let d = push(cfg, &stats_request(), reference, None);
    attach_signature(
        cfg,
        &BuildDest::Registry(reference.to_string()),
        &d,
        &|payload| sigstore.sign(payload, signer),
        None,
    )
    .unwrap();
    d
}

#[test]
fn keyless_signatures_under_each_policy() {
    let Some(reg) = TestRegistry::start("keyless_signatures_under_each_policy", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let base = config(Some(&reg), cache.path());
    let sigstore = TestSigstore::new(11, "fulcio-test");
    let stranger = TestSigstore::new(12, "elsewhere");
    let root = cache.path().join("trusted_root.json");
    std::fs::write(&root, sigstore.trusted_root_json(true)).unwrap();
    let good = KeylessSigner::new(SIGNER, ISSUER);

    let valid = reg.reference("keyless/valid:v1");
    let digest = push_keyless(&base, &valid, &sigstore, &good);
    let wrong_identity = reg.reference("keyless/mallory:v1");
    push_keyless(
        &base,
        &wrong_identity,
        &sigstore,
        &KeylessSigner::new("mallory@example.com", ISSUER),
    );
    let wrong_issuer = reg.reference("keyless/issuer:v1");
    push_keyless(
        &base,
        &wrong_issuer,
        &sigstore,
        &KeylessSigner::new(SIGNER, "https://evil.example.com"),
    );
    let untrusted = reg.reference("keyless/stranger:v1");
    push_keyless(&base, &untrusted, &stranger, &good);
    let expired = reg.reference("keyless/expired:v1");
    push_keyless(
        &base,
        &expired,
        &sigstore,
        &KeylessSigner {
            logged_after: 3600,
            ..good.clone()
        },
    );
    let unlogged = reg.reference("keyless/unlogged:v1");
    push_keyless(
        &base,
        &unlogged,
        &sigstore,
        &KeylessSigner {
            rekor_bundle: false,
            ..good.clone()
        },
    );
    let key_signed = reg.reference("keyless/keysigned:v1");
    let mut req = stats_request();
    req.sign_key = Some(key("trusted.key"));
    bpfman_image::build(&base, &req, &BuildDest::Registry(key_signed.clone()), None).unwrap();
    let missing = reg.reference("keyless/unsigned:v1");
    push(&base, &stats_request(), &missing, None);

    let strict = keyless_policy(&root, false, None);
    let lenient = keyless_policy(&root, true, None);
    let both = keyless_policy(&root, false, Some("trusted.pub"));
    let pull = |p: &SignaturePolicy, r: &str, pp: PullPolicy| {
        let mut cfg = base.clone();
        cfg.policy = p.clone();
        bpfman_image::pull(&cfg, r, pp, None)
    };

    let img = pull(&strict, &valid, PullPolicy::IfNotPresent).unwrap();
    match &img.signature {
        SignatureStatus::VerifiedKeyless {
            identity,
            issuer,
            signed_digest,
            log_index,
            integrated_time,
        } => {
            assert_eq!(identity, SIGNER);
            assert_eq!(issuer, ISSUER);
            assert_eq!(signed_digest, &digest);
            assert_eq!(*log_index, 4242);
            assert_eq!(*integrated_time, good.signed_at + 5);
        }
        other => panic!("{other:?}"),
    }
    assert!(elf_ok(&img.object));

    let refused = |r: &str, want: &str| {
        for p in [&strict, &lenient] {
            let e = pull(p, r, PullPolicy::IfNotPresent).unwrap_err();
            assert!(matches!(e, ImageError::SignatureInvalid { .. }), "{r}: {e}");
            assert!(e.to_string().contains(want), "{r}: {e}");
        }
    };
    refused(&wrong_identity, "mallory@example.com");
    refused(&wrong_issuer, "matches no signing.keyless identity rule");
    refused(&untrusted, "does not list");
    refused(&expired, "not valid when Rekor logged");
    refused(&unlogged, "no Rekor bundle");
    refused(&key_signed, "no Fulcio certificate");
    // Unsigned: refused or allowed, per allow_unsigned.
    let e = pull(&strict, &missing, PullPolicy::IfNotPresent).unwrap_err();
    assert!(matches!(e, ImageError::SignatureMissing { .. }), "{e}");
    assert_eq!(
        pull(&lenient, &missing, PullPolicy::IfNotPresent)
            .unwrap()
            .signature,
        SignatureStatus::Unsigned
    );
    // Key and keyless together: either kind of signature passes.
    assert!(matches!(
        pull(&both, &key_signed, PullPolicy::IfNotPresent)
            .unwrap()
            .signature,
        SignatureStatus::Verified { .. }
    ));
    assert!(matches!(
        pull(&both, &valid, PullPolicy::IfNotPresent)
            .unwrap()
            .signature,
        SignatureStatus::VerifiedKeyless { .. }
    ));

    // Offline, from the cache: still verified, and a changed trust root
    // or identity rule applies at once.
    reg.stop();
    let img = pull(&strict, &valid, PullPolicy::Never).unwrap();
    assert!(img.from_cache);
    assert!(matches!(
        img.signature,
        SignatureStatus::VerifiedKeyless { .. }
    ));
    std::fs::write(&root, stranger.trusted_root_json(true)).unwrap();
    let e = pull(&strict, &valid, PullPolicy::Never).unwrap_err();
    assert!(matches!(e, ImageError::SignatureInvalid { .. }), "{e}");
    let ok = pull(&strict, &untrusted, PullPolicy::Never).unwrap();
    assert!(matches!(
        ok.signature,
        SignatureStatus::VerifiedKeyless { .. }
    ));
    std::fs::write(&root, sigstore.trusted_root_json(true)).unwrap();
    let mut other_rule = strict.clone();
    if let Some(k) = other_rule.keyless.as_mut() {
        k.identities[0].identity = Some("someone-else@example.com".into());
    }
    let e = pull(&other_rule, &valid, PullPolicy::Never).unwrap_err();
    assert!(e.to_string().contains("matches no"), "{e}");
    // A broken trust root is a policy error before anything is read.
    std::fs::write(&root, "{}").unwrap();
    let e = pull(&strict, &valid, PullPolicy::Never).unwrap_err();
    assert!(matches!(e, ImageError::Policy(_)), "{e}");
    assert!(e.to_string().contains("trust_root"), "{e}");
}

/// cosign v3 signatures: Sigstore bundles as OCI referrers. Debian's
/// registry has no referrers API, so they are found through the
/// `sha256-<hex>` referrers tag, as cosign itself falls back to.
#[test]
fn cosign_v3_bundles_through_the_referrers_tag() {
    let Some(reg) = TestRegistry::start("cosign_v3_bundles_through_the_referrers_tag", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let base = config(Some(&reg), cache.path());
    let sigstore = TestSigstore::new(13, "fulcio-v3");
    let root = cache.path().join("trusted_root.json");
    std::fs::write(&root, sigstore.trusted_root_json(true)).unwrap();
    let good = KeylessSigner::new(SIGNER, ISSUER);
    let mallory = KeylessSigner::new("mallory@example.com", ISSUER);
    let attach = |r: &str, d: &str, bundle: &str| {
        attach_bundle(&base, &BuildDest::Registry(r.to_string()), d, bundle, None).unwrap()
    };

    let keyless = reg.reference("v3/keyless:v1");
    let d = push(&base, &stats_request(), &keyless, None);
    attach(&keyless, &d, &sigstore.sign_bundle(&d, &good));
    let keyed = reg.reference("v3/keyed:v1");
    push(&base, &stats_request(), &keyed, None);
    attach(&keyed, &d, &key_bundle(&key("trusted.key"), &d).unwrap());
    let wrong = reg.reference("v3/mallory:v1");
    push(&base, &stats_request(), &wrong, None);
    attach(&wrong, &d, &sigstore.sign_bundle(&d, &mallory));
    // Two referrers, a bad one first: any one that verifies is enough.
    let both = reg.reference("v3/both:v1");
    push(&base, &stats_request(), &both, None);
    attach(&both, &d, &sigstore.sign_bundle(&d, &mallory));
    attach(&both, &d, &sigstore.sign_bundle(&d, &good));

    let pull = |p: &SignaturePolicy, r: &str, pp: PullPolicy| {
        let mut cfg = base.clone();
        cfg.policy = p.clone();
        bpfman_image::pull(&cfg, r, pp, None)
    };
    let strict = keyless_policy(&root, false, None);
    let key_only = policy(true, false, "trusted.pub");
    let img = pull(&strict, &keyless, PullPolicy::IfNotPresent).unwrap();
    match &img.signature {
        SignatureStatus::VerifiedKeyless {
            identity,
            signed_digest,
            ..
        } => {
            assert_eq!(identity, SIGNER);
            assert_eq!(signed_digest, &d);
        }
        other => panic!("{other:?}"),
    }
    assert!(elf_ok(&img.object));
    assert!(matches!(
        pull(&key_only, &keyed, PullPolicy::IfNotPresent)
            .unwrap()
            .signature,
        SignatureStatus::Verified { .. }
    ));
    assert!(matches!(
        pull(&strict, &both, PullPolicy::IfNotPresent)
            .unwrap()
            .signature,
        SignatureStatus::VerifiedKeyless { .. }
    ));
    let e = pull(&strict, &wrong, PullPolicy::IfNotPresent).unwrap_err();
    assert!(matches!(e, ImageError::SignatureInvalid { .. }), "{e}");
    assert!(e.to_string().contains("mallory@example.com"), "{e}");
    let e = pull(&strict, &keyed, PullPolicy::IfNotPresent).unwrap_err();
    assert!(e.to_string().contains("signed with a key"), "{e}");
    let e = pull(&key_only, &keyless, PullPolicy::IfNotPresent).unwrap_err();
    assert!(e.to_string().contains("signed keylessly"), "{e}");

    // The bundles are cached: offline, still verified.
    reg.stop();
    let img = pull(&strict, &keyless, PullPolicy::Never).unwrap();
    assert!(img.from_cache);
    assert!(matches!(
        img.signature,
        SignatureStatus::VerifiedKeyless { .. }
    ));
    // Pruning keeps what the cached images' signatures need.
    let mut cfg = base.clone();
    cfg.policy = strict.clone();
    bpfman_image::prune(&cfg, false).unwrap();
    assert!(pull(&strict, &both, PullPolicy::Never).is_ok());
}

fn elf_ok(object: &[u8]) -> bool {
    object.starts_with(b"\x7fELF") && object == stats_object().as_slice()
}

#[test]
fn concurrent_pulls_share_the_cache() {
    let Some(reg) = TestRegistry::start("concurrent_pulls_share_the_cache", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/stats:v1");
    let d = push(&cfg, &stats_request(), &r, None);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let cfg = cfg.clone();
            let r = r.clone();
            std::thread::spawn(move || bpfman_image::pull(&cfg, &r, PullPolicy::Always, None))
        })
        .collect();
    for h in handles {
        let img = h.join().unwrap().unwrap();
        assert_eq!(img.digest, d);
        assert_eq!(img.object, stats_object());
    }
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0,
        "no temp files left behind"
    );
}

#[test]
fn prune_evicts_least_recently_used() {
    let Some(reg) = TestRegistry::start("prune_evicts_least_recently_used", None) else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(Some(&reg), cache.path());
    let a = reg.reference("bpf/a:v1");
    let b = reg.reference("bpf/b:v1");
    push(&cfg, &stats_request(), &a, None);
    let mut other = stats_request();
    other.programs = labels(&[("b", "xdp")]);
    push(&cfg, &other, &b, None);
    bpfman_image::pull(&cfg, &a, PullPolicy::IfNotPresent, None).unwrap();
    // Last use is kept in whole seconds: make b clearly the newer one.
    std::thread::sleep(Duration::from_millis(1100));
    bpfman_image::pull(&cfg, &b, PullPolicy::IfNotPresent, None).unwrap();

    // Room for one image: a (least recently used) goes. The two images share
    // their layer, so "one image" is everything but a's manifest and config.
    let report = bpfman_image::prune(&cfg, false).unwrap();
    assert!(report.images_removed.is_empty(), "{report:?}");
    cfg.max_cache_bytes = report.bytes_kept - 1;
    let report = bpfman_image::prune(&cfg, false).unwrap();
    assert_eq!(report.images_removed.len(), 1, "{report:?}");
    assert!(report.bytes_freed > 0);
    let e = bpfman_image::pull(&cfg, &a, PullPolicy::Never, None).unwrap_err();
    assert!(matches!(e, ImageError::NotCached { .. }), "{e}");
    bpfman_image::pull(&cfg, &b, PullPolicy::Never, None).unwrap();

    let report = bpfman_image::prune(&cfg, true).unwrap();
    assert_eq!(report.bytes_kept, 0, "{report:?}");
    let e = bpfman_image::pull(&cfg, &b, PullPolicy::Never, None).unwrap_err();
    assert!(matches!(e, ImageError::NotCached { .. }), "{e}");
}

#[test]
fn oci_layout_build_is_reproducible_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ImageConfig::with_cache_dir(dir.path().join("cache"));
    let layout = dir.path().join("layout");
    let dest = BuildDest::OciLayout {
        dir: layout.clone(),
        tag: "v1".to_string(),
    };
    let mut req = stats_request();
    req.sign_key = Some(key("trusted.key"));
    let a = bpfman_image::build(&cfg, &req, &dest, None).unwrap();
    let b = bpfman_image::build(&cfg, &req, &dest, None).unwrap();
    assert_eq!(a.digest, b.digest, "same input, same digest");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    let sig_tag = format!("sha256-{}.sig", &a.digest[7..]);
    assert_eq!(names, vec!["v1", sig_tag.as_str()]);
    assert!(layout.join("blobs/sha256").join(&a.digest[7..]).is_file());
    assert!(layout.join("oci-layout").is_file());

    // Not a BPF object: refused at build time.
    let mut bad = BuildRequest::new(layout.join("oci-layout"));
    bad.programs.clear();
    let e = bpfman_image::build(&cfg, &bad, &dest, None).unwrap_err();
    assert!(matches!(e, ImageError::Build(_)), "{e}");
    // A big-endian platform for a little-endian object: refused.
    let mut be = BuildRequest::new(STATS);
    be.platform = "linux/s390x".parse().unwrap();
    let e = bpfman_image::build(&cfg, &be, &dest, None).unwrap_err();
    assert!(e.to_string().contains("endian"), "{e}");
}

const TOKEN_SERVICE: &str = "bpfman-test-registry";
const TOKEN_ISSUER: &str = "bpfman-test-issuer";

/// A minimal Docker token server (the `realm` of a Bearer challenge): checks
/// Basic credentials and issues an ES256 JWT with an `x5c` chain of one
/// self-signed certificate, which the registry trusts as its root bundle.
struct TokenServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// `None` (printed) when openssl is missing.
    fn start(test: &str, dir: &Path, user: &str, password: &str) -> Option<(TokenServer, PathBuf)> {
        if !tool_exists("openssl") {
            println!("SKIP {test}: openssl is not installed (apt-get install openssl)");
            return None;
        }
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=bpfman-test-token-issuer",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl req failed");
        use p256::pkcs8::DecodePrivateKey as _;
        let signing =
            p256::ecdsa::SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key).unwrap())
                .unwrap();
        // The PEM body is the base64 of the DER certificate: x5c wants that.
        let x5c: String = std::fs::read_to_string(&cert)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let expected = format!("{user}:{password}");
        let handle = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve_token(stream, &expected, &signing, &x5c);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => break,
                }
            }
        });
        Some((
            TokenServer {
                port,
                stop,
                handle: Some(handle),
            },
            cert,
        ))
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve_token(
    mut stream: TcpStream,
    expected: &str,
    key: &p256::ecdsa::SigningKey,
    x5c: &str,
) -> std::io::Result<()> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use p256::ecdsa::signature::Signer as _;
    use std::io::{Read as _, Write as _};

    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&req).into_owned();
    let target = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let auth = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let user_ok = auth
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .is_some_and(|raw| raw == expected.as_bytes());
    // Like public registries: anonymous callers get pull-only tokens, wrong
    // credentials get a 401.
    let anonymous = auth.is_empty();
    if !user_ok && !anonymous {
        let body = r#"{"details":"bad credentials"}"#;
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    // scope=repository:<name>:<actions>, percent-decoded.
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scope = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("scope="))
        .map(percent_decode)
        .unwrap_or_default();
    let mut access = Vec::new();
    let parts: Vec<&str> = scope.splitn(3, ':').collect();
    if parts.len() == 3 {
        let actions: Vec<&str> = parts[2]
            .split(',')
            .filter(|a| !anonymous || *a == "pull")
            .collect();
        access.push(serde_json::json!({
            "type": parts[0], "name": parts[1], "actions": actions,
        }));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": if anonymous { "" } else { expected.split(':').next().unwrap_or("") },
        "aud": TOKEN_SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}"), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    // JWS ES256 signatures are r||s, not DER.
    let sig: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bearer_token_auth() {
    let dir = tempfile::tempdir().unwrap();
    let Some((tokens, cert)) =
        TokenServer::start("bearer_token_auth", dir.path(), "bob", "builder")
    else {
        return;
    };
    let realm = tokens.realm();
    let Some(reg) = TestRegistry::start_with("bearer_token_auth", Auth::Token(&realm, &cert))
    else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(Some(&reg), cache.path());
    let r = reg.reference("bpf/stats:v1");
    let good = Credentials::new("bob", "builder");

    let e = bpfman_image::build(
        &cfg,
        &stats_request(),
        &BuildDest::Registry(r.clone()),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("requires credentials"), "{e}");
    let d = push(&cfg, &stats_request(), &r, Some(&good));
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, Some(&good)).unwrap();
    assert_eq!(img.digest, d);
    assert_eq!(img.object, stats_object());
    // Anonymous pull with a pull-only token, as from a public registry.
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap();
    assert_eq!(img.digest, d);
    assert!(!img.from_cache);
    let e = bpfman_image::pull(
        &cfg,
        &r,
        PullPolicy::Always,
        Some(&Credentials::new("bob", "wrong")),
    )
    .unwrap_err();
    assert!(matches!(e, ImageError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("refused the credentials"), "{e}");
}

/// A private CA and a server certificate for 127.0.0.1 in a temp dir;
/// `None` (printed) without openssl.
fn test_tls(test: &str) -> Option<(tempfile::TempDir, TestTls)> {
    if !tool_exists("openssl") {
        println!("SKIP {test}: openssl is not installed (apt-get install openssl)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::generate(dir.path()).unwrap();
    Some((dir, tls))
}

/// HTTPS to every registry, with its own cache and per-registry CAs read
/// from `certs_dir` (never the host's /etc/bpfman/certs.d).
fn tls_config(cache: &Path, certs_dir: &Path) -> ImageConfig {
    let mut cfg = ImageConfig::with_cache_dir(cache);
    cfg.certs_dir = certs_dir.to_path_buf();
    cfg
}

/// `certs_dir` with `ca` as `<certs_dir>/<host>/<name>`.
fn certs_d(ca: &Path, host: &str, name: &str) -> tempfile::TempDir {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().join(host);
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(ca, dir.join(name)).unwrap();
    certs
}

/// Nothing but the cache's lock file: no blob, no tag.
fn assert_cache_empty(cache: &Path) {
    assert!(cache.is_dir(), "no cache at {}", cache.display());
    let files: Vec<PathBuf> = files_under(cache)
        .into_iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "lock"))
        .collect();
    assert!(files.is_empty(), "left in the cache: {files:?}");
}

#[test]
fn tls_registry_trusted_through_certs_d() {
    let test = "tls_registry_trusted_through_certs_d";
    let Some((_d, tls)) = test_tls(test) else {
        return;
    };
    let Some(reg) = TestRegistry::start_tls(test, &tls) else {
        return;
    };
    let certs = certs_d(&tls.ca, &reg.host(), "ca.crt");
    let cache = tempfile::tempdir().unwrap();
    let cfg = tls_config(cache.path(), certs.path());
    let r = reg.reference("bpf/stats:v1");
    // Push and pull both go over HTTPS.
    let d = push(&cfg, &stats_request(), &r, None);
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap();
    assert_eq!(img.object, stats_object());
    assert_eq!(img.digest, d);
    assert!(!img.from_cache);

    // Docker's convention: any *.crt of the registry's directory.
    let dir = certs.path().join(reg.host());
    std::fs::rename(dir.join("ca.crt"), dir.join("private-ca.crt")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cfg = tls_config(cache.path(), certs.path());
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap();
    assert_eq!(img.digest, d);

    // Another registry's directory does not vouch for this one.
    std::fs::rename(&dir, certs.path().join("127.0.0.1:1")).unwrap();
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
    assert!(matches!(e, ImageError::UntrustedCertificate { .. }), "{e}");

    // A CA file that is no certificate is named, not skipped.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), "not a certificate\n").unwrap();
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
    assert!(matches!(e, ImageError::Certificate { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("{}/ca.crt", reg.host())),
        "{e}"
    );
}

#[test]
fn tls_registry_untrusted_is_a_clear_error() {
    let test = "tls_registry_untrusted_is_a_clear_error";
    let Some((_d, tls)) = test_tls(test) else {
        return;
    };
    let Some(reg) = TestRegistry::start_tls(test, &tls) else {
        return;
    };
    // The image exists: pushed by a client that trusts the CA.
    let r = reg.reference("bpf/stats:v1");
    let trusting = certs_d(&tls.ca, &reg.host(), "ca.crt");
    let scratch = tempfile::tempdir().unwrap();
    push(
        &tls_config(scratch.path(), trusting.path()),
        &stats_request(),
        &r,
        None,
    );

    // The host's own trust store and an empty certs.d do not know the CA.
    let certs = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cfg = tls_config(cache.path(), certs.path());
    let want = format!(
        "registry {host} presented a certificate signed by an unknown authority; trust its CA \
         system-wide (update-ca-certificates) or put it in {}/{host}/ca.crt",
        certs.path().display(),
        host = reg.host()
    );
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
    assert!(matches!(e, ImageError::UntrustedCertificate { .. }), "{e}");
    assert_eq!(e.to_string(), want);
    let e = bpfman_image::inspect(&cfg, &r, PullPolicy::IfNotPresent, None).unwrap_err();
    assert_eq!(e.to_string(), want);
    let e = bpfman_image::build(
        &cfg,
        &stats_request(),
        &BuildDest::Registry(reg.reference("bpf/other:v1")),
        None,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), want);
    assert_cache_empty(cache.path());
    let e = bpfman_image::pull(&cfg, &r, PullPolicy::Never, None).unwrap_err();
    assert!(matches!(e, ImageError::NotCached { .. }), "{e}");
}

/// Set in the child run of `tls_registry_trusted_system_wide` to the dir of
/// its CA and server certificate.
const SYSTEM_STORE_CHILD: &str = "BPFMAN_TEST_SYSTEM_STORE_CHILD";
const SYSTEM_STORE_OK: &str = "system store pull ok";

/// A CA trusted "system-wide": `SSL_CERT_FILE`, then `SSL_CERT_DIR`, name a
/// private store holding it (the host's /etc/ssl is never touched). The
/// variables are read by the process that pulls, so each case runs this
/// test binary again with them set, instead of changing this process's
/// environment under other threads.
#[test]
fn tls_registry_trusted_system_wide() {
    let test = "tls_registry_trusted_system_wide";
    if let Some(dir) = std::env::var_os(SYSTEM_STORE_CHILD) {
        system_store_child(Path::new(&dir));
        return;
    }
    let Some((d, tls)) = test_tls(test) else {
        return;
    };
    // What update-ca-certificates leaves: a directory of PEM files.
    let store = d.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(&tls.ca, store.join("bpfman-test-ca.pem")).unwrap();
    for (var, value) in [("SSL_CERT_FILE", &tls.ca), ("SSL_CERT_DIR", &store)] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads", "1"])
            .env(SYSTEM_STORE_CHILD, d.path())
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env(var, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{var}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(skip) = stdout.lines().find(|l| l.starts_with("SKIP")) {
            println!("{skip}");
            return;
        }
        assert!(stdout.contains(SYSTEM_STORE_OK), "{var}: {stdout}");
    }
}

fn system_store_child(dir: &Path) {
    let tls = TestTls {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    let Some(reg) = TestRegistry::start_tls("tls_registry_trusted_system_wide", &tls) else {
        return;
    };
    // No per-registry CA: only the (private) system store can vouch.
    let certs = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cfg = tls_config(cache.path(), certs.path());
    let r = reg.reference("bpf/stats:v1");
    let d = push(&cfg, &stats_request(), &r, None);
    let img = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap();
    assert_eq!(img.digest, d);
    assert_eq!(img.object, stats_object());
    println!("{SYSTEM_STORE_OK}");
}

/// A "registry" that answers every manifest GET with `MAX_MANIFEST_BYTES + 1`
/// bytes, announced (Content-Length) or not (chunked): the pull stops at the
/// bound with TooLarge and caches nothing.
#[test]
fn oversized_manifest_is_refused() {
    use std::io::{BufRead, BufReader, Write};
    let over = bpfman_image::MAX_MANIFEST_BYTES as usize + 1;
    for chunked in [false, true] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for conn in listener.incoming().take(4) {
                let Ok(mut conn) = conn else { break };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).is_err() || l == "\r\n" || l.is_empty() {
                        break;
                    }
                }
                let ct = "application/vnd.oci.image.manifest.v1+json";
                let body = vec![b' '; over];
                let _ = if first.starts_with("GET /v2/ ") {
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                } else if chunked {
                    let mut out = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
                    )
                    .into_bytes();
                    for c in body.chunks(1 << 16) {
                        out.extend(format!("{:x}\r\n", c.len()).as_bytes());
                        out.extend(c);
                        out.extend(b"\r\n");
                    }
                    out.extend(b"0\r\n\r\n");
                    conn.write_all(&out)
                } else {
                    let mut out = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {over}\r\n\r\n"
                    )
                    .into_bytes();
                    out.extend(&body);
                    conn.write_all(&out)
                };
            }
        });
        let cache = tempfile::tempdir().unwrap();
        let mut cfg = ImageConfig::with_cache_dir(cache.path());
        cfg.insecure_registries.push(host.clone());
        let r = format!("{host}/bpf/huge:v1");
        let e = bpfman_image::pull(&cfg, &r, PullPolicy::Always, None).unwrap_err();
        assert!(
            matches!(e, ImageError::TooLarge { .. }),
            "chunked={chunked}: {e}"
        );
        assert!(e.to_string().contains("manifest"), "{e}");
        let mut left: Vec<_> = files_under(cache.path());
        left.retain(|p| !p.ends_with("lock"));
        assert!(left.is_empty(), "chunked={chunked}: cache holds {left:?}");
        drop(server);
    }
}
