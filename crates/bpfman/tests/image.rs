//! OCI bytecode images end to end on the real kernel: a real registry on
//! loopback (Debian's `docker-registry`, one per test on a free port, storage
//! in a temp dir, killed on drop), images built and pushed by `bpfman image
//! build`, then `bpfman load image` (embedded, through the daemon's ext
//! service, and over `bpfman.v1` gRPC), attach, counters, unload.
//!
//! Each test has its own runtime dir (bpffs unmounted on drop), its own image
//! cache (`BPFMAN_IMAGE_CACHE`) and its own bpfman.toml (`BPFMAN_CONFIG`,
//! listing the registry as plain http). Needs root, `docker-registry` and
//! (for basic auth) `htpasswd` (crates/bpfman-image/INSTALL_DEPS); without
//! them a test prints `skipped <test>: ...` and returns.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bpfman_api::client::connect_uds;
use bpfman_api::v1;
use bpfman_api::v1::attach_info::Info as AttachKind;
use bpfman_api::v1::bpfman_client::BpfmanClient;
use bpfman_api::v1::bytecode_location::Location;
use bpfman_image::testing::TestTls;
use bpfman_testkit::{Daemon, Registry, tool_exists};
use common::{Env, Mode, Run, bin, eventually, kernel_has_program, obj, read_u64, root_or_skip};

const STATS: &str = "examples/stats/stats.bpf.o";
const MULTI: &str = "tests/bpf/multi.bpf.o";
/// base64("alice:wonderland"), the basic-auth registry's user.
const ALICE: &str = "YWxpY2U6d29uZGVybGFuZA==";
const ALICE_PASSWORD: &str = "wonderland";

fn key(name: &str) -> String {
    obj(&format!("crates/bpfman-image/tests/keys/{name}"))
}

/// The loopback registry (anonymous or htpasswd); `None`, with the reason
/// printed, when the tools are missing.
fn start_registry(test: &str, user: Option<(&str, &str)>) -> Option<Registry> {
    let b = Registry::builder(test);
    match user {
        Some((u, p)) => b.basic_auth(u, p),
        None => b,
    }
    .start()
}

/// An anonymous registry over HTTPS with `tls`'s server certificate.
fn start_registry_tls(test: &str, tls: &TestTls) -> Option<Registry> {
    Registry::builder(test)
        .tls(&tls.cert, &tls.key, |port, name| tls.header(port, name))
        .start()
}

/// One test's world: runtime (bpffs unmounted on drop, after the daemon
/// stops: fields drop in order), image cache and bpfman.toml.
struct Ctx {
    daemon: Option<Daemon>,
    env: Env,
    images: tempfile::TempDir,
    /// Extra environment of every bpfman this test runs (the daemon too).
    extra_env: Vec<(&'static str, PathBuf)>,
}

impl Ctx {
    /// `registry`: allowed over plain http; `signing`: a `[signing]` table body.
    fn new(registry: Option<&Registry>, signing: Option<&str>) -> Ctx {
        let mut toml = String::new();
        if let Some(r) = registry {
            toml.push_str(&format!(
                "[images]\ninsecure_registries = [\"{}\"]\n",
                r.host()
            ));
        }
        if let Some(s) = signing {
            toml.push_str(&format!("[signing]\n{s}\n"));
        }
        Ctx::with_toml(&toml)
    }

    /// HTTPS to every registry; per-registry CAs from `certs_dir`.
    fn tls(certs_dir: &Path) -> Ctx {
        Ctx::with_toml(&format!(
            "[images]\ncerts_dir = \"{}\"\n",
            certs_dir.display()
        ))
    }

    fn with_toml(toml: &str) -> Ctx {
        let images = tempfile::Builder::new()
            .prefix("bpfman-images-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        std::fs::write(images.path().join("bpfman.toml"), toml).unwrap();
        std::fs::create_dir(images.path().join("cache")).unwrap();
        Ctx {
            daemon: None,
            env: Env::new(Mode::Embedded),
            images,
            extra_env: Vec::new(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.images.path().join("cache")
    }

    fn command(&self, args: &[&str], remote: bool) -> Command {
        let mut c = Command::new(bin());
        c.arg("--runtime-dir").arg(self.env.runtime());
        if remote {
            let d = self.daemon.as_ref().expect("daemon running");
            c.arg("--socket").arg(d.socket());
        }
        c.args(args)
            .env("BPFMAN_CONFIG", self.images.path().join("bpfman.toml"))
            .env("BPFMAN_IMAGE_CACHE", self.cache())
            .env_remove("BPFMAN_SOCKET")
            .env_remove("BPFMAN_FAULT")
            .env_remove("BPFMAN_FAULT_MODE")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            // The system trust store is the host's unless a test names one.
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    fn run_mode(&self, args: &[&str], remote: bool) -> Run {
        let o = self.command(args, remote).output().expect("run bpfman");
        Run {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_mode(args, false)
    }

    fn ok_json_mode(&self, args: &[&str], remote: bool) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let r = self.run_mode(&a, remote);
        assert!(r.ok, "bpfman {args:?} failed: {}", r.stderr);
        r.json()
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        self.ok_json_mode(args, false)
    }

    /// Asserts a failure with one `Error: ` line; returns it.
    fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            !r.ok,
            "bpfman {args:?} unexpectedly succeeded: {}",
            r.stdout
        );
        assert_eq!(r.code, Some(1), "exit code for {args:?}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "not one line:\n{}", r.stderr);
        assert!(lines[0].starts_with("Error: "), "{}", r.stderr);
        lines[0].to_string()
    }

    /// `image build --push`; returns the manifest digest.
    fn push(&self, object: &str, reference: &str, extra: &[&str]) -> String {
        let object = obj(object);
        let mut a = vec!["image", "build", "--object", &object, "--push", reference];
        a.extend(extra);
        let out = self.ok_json(&a);
        let digest = out["digest"].as_str().unwrap().to_string();
        assert!(digest.starts_with("sha256:"), "{out}");
        digest
    }

    /// Loads from an image; returns the program views.
    fn load_image(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut a = vec!["load", "image"];
        a.extend(args);
        self.ok_json(&a).as_array().unwrap().clone()
    }

    /// Starts `bpfman serve` with this test's image settings.
    fn start_daemon(&mut self) {
        let socket = self.env.runtime().join("sock/bpfman.sock");
        let mut d = Daemon::builder(Path::new(bin()), self.env.runtime(), &socket)
            .env("BPFMAN_CONFIG", self.images.path().join("bpfman.toml"))
            .env("BPFMAN_IMAGE_CACHE", self.cache());
        // The system trust store is the host's unless a test names one.
        for var in [
            "REGISTRY_AUTH_FILE",
            "DOCKER_CONFIG",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
        ] {
            d = d.env_remove(var);
        }
        for (k, v) in &self.extra_env {
            d = d.env(k, v);
        }
        self.daemon = Some(d.start());
    }

    /// True when no file of the runtime's store holds `secret`.
    fn store_lacks(&self, secret: &str) -> bool {
        let db = self.env.runtime().join("db");
        std::fs::read_dir(db).unwrap().flatten().all(|e| {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
        })
    }
}

fn id_of(p: &serde_json::Value) -> u32 {
    p["id"].as_u64().unwrap() as u32
}

fn map_pin(env: &Env, owner: u32, map: &str) -> PathBuf {
    env.fs().join(owner.to_string()).join(map)
}

/// Attaches `id` at its section's tracepoint and waits for `key` of the map
/// to grow.
fn attach_and_count(ctx: &Ctx, id: u32, map: &Path, key: u32) {
    let link = ctx.ok_json(&["attach", &id.to_string(), "tracepoint"]);
    assert!(link["id"].as_u64().is_some(), "{link}");
    let first = read_u64(map, key);
    eventually("the counter grows", || read_u64(map, key) > first + 2);
}

#[test]
fn build_push_load_attach_unload() {
    if !root_or_skip("build_push_load_attach_unload") {
        return;
    }
    let Some(reg) = start_registry("build_push_load_attach_unload", None) else {
        return;
    };
    let ctx = Ctx::new(Some(&reg), None);
    let r = reg.reference("stats:v1");

    // Programs default to the object's, typed by their sections.
    let digest = ctx.push(STATS, &r, &["--map", "stats_map=array"]);
    let info = ctx.ok_json(&["image", "inspect", &r]);
    assert_eq!(info["digest"], digest.as_str());
    assert_eq!(info["programs"]["count_sched_switch"], "tracepoint");
    assert_eq!(info["maps"]["stats_map"], "array");
    assert!(info["labels"]["io.ebpf.programs"].is_string(), "{info}");
    let table = ctx.run(&["image", "inspect", &r]);
    assert!(
        table.ok && table.stdout.contains("count_sched_switch=tracepoint"),
        "{}",
        table.stdout
    );

    // The seed flow, from the image.
    let loaded = ctx.load_image(&[
        "--image-url",
        &r,
        "count_sched_switch",
        "-m",
        "bpfman.io/application=stats",
    ]);
    assert_eq!(loaded.len(), 1);
    let id = id_of(&loaded[0]);
    assert!(kernel_has_program(id));
    let source = serde_json::json!({"type": "image", "url": r, "digest": digest});
    assert_eq!(loaded[0]["record"]["source"], source);
    assert_eq!(
        loaded[0]["record"]["metadata"]["bpfman.io/application"],
        "stats"
    );
    let got = ctx.ok_json(&["get", &id.to_string()]);
    assert_eq!(got["record"]["source"], source);
    let table = ctx.run(&["get", &id.to_string()]);
    assert!(
        table.stdout.contains(&format!("image {r}@{digest}")),
        "{}",
        table.stdout
    );
    // The layer is in the private cache now.
    assert!(ctx.cache().join("blobs/sha256").read_dir().unwrap().count() >= 2);
    let pulled = ctx.ok_json(&["image", "pull", &r]);
    assert_eq!(pulled["from_cache"], true);
    assert_eq!(pulled["signature"], "not_checked");

    attach_and_count(&ctx, id, &map_pin(&ctx.env, id, "stats_map"), 0);

    ctx.ok_json(&["unload", &id.to_string()]);
    assert!(!kernel_has_program(id));
    ctx.env.assert_empty();

    // Prune empties the cache.
    let pruned = ctx.ok_json(&["image", "prune", "--all"]);
    assert!(
        !pruned["images_removed"].as_array().unwrap().is_empty(),
        "{pruned}"
    );
    let e = ctx.fails(&["load", "image", "-i", &r, "--pull-policy", "Never"]);
    assert!(e.contains("pull policy is Never"), "{e}");
}

#[test]
fn multi_arch_index_built_by_the_cli_loads_the_host_image() {
    if !root_or_skip("multi_arch_index_built_by_the_cli_loads_the_host_image") {
        return;
    }
    let Some(reg) = start_registry("multi_arch_index_built_by_the_cli", None) else {
        return;
    };
    let ctx = Ctx::new(Some(&reg), None);
    let r = reg.reference("multi/stats:v1");
    let stats = obj(STATS);
    let amd64 = format!("linux/amd64={stats}");
    let arm64 = format!("linux/arm64={stats}");
    let s390x = format!("linux/s390x={stats}");
    // A little-endian object cannot be the s390x image: refused before
    // anything is pushed.
    let e = ctx.fails(&["image", "build", "-b", &amd64, "-b", &s390x, "--push", &r]);
    assert!(e.contains("big-endian") || e.contains("Big"), "{e}");
    let e = ctx.fails(&["image", "inspect", &r]);
    assert!(e.contains("not found"), "{e}");

    let built = ctx.ok_json(&[
        "image",
        "build",
        "-b",
        &amd64,
        "-b",
        &arm64,
        "--map",
        "stats_map=array",
        "--sign-key",
        &key("trusted.key"),
        "--push",
        &r,
    ]);
    let images = built["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{built}");
    assert_eq!(images[0]["platform"], "linux/amd64");
    assert!(built["signature"].is_string(), "{built}");
    let info = ctx.ok_json(&["image", "inspect", &r]);
    assert_eq!(info["digest"], built["digest"]);
    let host = bpfman_image::Platform::host().to_string();
    let mine = images.iter().find(|i| i["platform"] == host.as_str());
    assert_eq!(
        Some(&info["manifest_digest"]),
        mine.map(|i| &i["digest"]),
        "{info}"
    );
    assert_eq!(
        info["index_platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );

    // Loaded under a strict key policy: the index signature covers it.
    let policy = format!(
        "verify = true\nallow_unsigned = false\npublic_key = \"{}\"",
        key("trusted.pub")
    );
    let strict = Ctx::new(Some(&reg), Some(&policy));
    let pulled = strict.ok_json(&["image", "pull", &r]);
    assert_eq!(pulled["signature"], "verified", "{pulled}");
    let loaded = strict.load_image(&["-i", &r, "count_sched_switch"]);
    let id = id_of(&loaded[0]);
    attach_and_count(&strict, id, &map_pin(&strict.env, id, "stats_map"), 0);
    strict.ok_json(&["unload", &id.to_string()]);
    strict.env.assert_empty();
}

#[test]
fn programs_come_from_the_labels() {
    if !root_or_skip("programs_come_from_the_labels") {
        return;
    }
    let Some(reg) = start_registry("programs_come_from_the_labels", None) else {
        return;
    };
    let ctx = Ctx::new(Some(&reg), None);

    // The label names one of the object's two programs: only it loads.
    let one = reg.reference("multi:one");
    ctx.push(MULTI, &one, &["--program", "tp_one=tracepoint"]);
    let loaded = ctx.load_image(&["--image-url", &one]);
    let names: Vec<&str> = loaded.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tp_one"]);
    let id = id_of(&loaded[0]);
    attach_and_count(&ctx, id, &map_pin(&ctx.env, id, "shared_map"), 0);

    // Labels from the object: both programs, sharing one set of maps.
    let all = reg.reference("multi:all");
    ctx.push(MULTI, &all, &[]);
    let info = ctx.ok_json(&["image", "inspect", &all]);
    assert_eq!(info["programs"]["tp_two"], "tracepoint", "{info}");
    let loaded = ctx.load_image(&["--image-url", &all]);
    let mut names: Vec<&str> = loaded.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["tp_one", "tp_two"]);

    // Programs named on the command line win over the labels (upstream form too).
    let loaded = ctx.load_image(&["-i", &one, "--programs", "tracepoint:tp_two"]);
    assert_eq!(loaded[0]["name"], "tp_two");

    // A program the image does not hold: a clear error, nothing loaded.
    let before = ctx.ok_json(&["list"]).as_array().unwrap().len();
    let e = ctx.fails(&["load", "image", "-i", &one, "nope"]);
    assert!(
        e.contains("'nope'") && e.contains(&format!("image {one}")),
        "{e}"
    );
    assert_eq!(ctx.ok_json(&["list"]).as_array().unwrap().len(), before);

    for p in ctx.ok_json(&["list"]).as_array().unwrap() {
        ctx.ok_json(&["unload", &id_of(p).to_string()]);
    }
    ctx.env.assert_empty();
}

#[test]
fn image_without_labels_loads_named_programs() {
    if !root_or_skip("image_without_labels_loads_named_programs") {
        return;
    }
    let Some(reg) = start_registry("image_without_labels_loads_named_programs", None) else {
        return;
    };
    let ctx = Ctx::new(Some(&reg), None);
    let r = reg.reference("bare:v1");
    let mut cfg = bpfman_image::ImageConfig::with_cache_dir(ctx.images.path().join("build"));
    cfg.insecure_registries.push(reg.host());
    bpfman_image::build(
        &cfg,
        &bpfman_image::BuildRequest::new(obj(STATS)),
        &bpfman_image::BuildDest::Registry(r.clone()),
        None,
    )
    .unwrap();
    let info = ctx.ok_json(&["image", "inspect", &r]);
    assert!(info["labels"].as_object().unwrap().is_empty(), "{info}");

    let loaded = ctx.load_image(&["-i", &r, "count_sched_switch"]);
    let id = id_of(&loaded[0]);
    attach_and_count(&ctx, id, &map_pin(&ctx.env, id, "stats_map"), 0);
    ctx.ok_json(&["unload", &id.to_string()]);
    // No labels, no names: every program of the object.
    let loaded = ctx.load_image(&["-i", &r]);
    assert_eq!(loaded.len(), 1);
    ctx.ok_json(&["unload", &id_of(&loaded[0]).to_string()]);
    ctx.env.assert_empty();
}

#[test]
fn never_with_an_empty_cache_is_one_clear_line() {
    if !root_or_skip("never_with_an_empty_cache_is_one_clear_line") {
        return;
    }
    // No registry at all: Never must not even try the network.
    let ctx = Ctx::new(None, None);
    let r = "127.0.0.1:1/bpf/stats:v1";
    let e = ctx.fails(&[
        "load",
        "image",
        "--image-url",
        r,
        "--pull-policy",
        "Never",
        "count_sched_switch",
    ]);
    assert!(
        e.contains(r) && e.contains("pull policy is Never") && e.contains("bpfman image pull"),
        "{e}"
    );
    ctx.env.assert_empty();
    let e = ctx.fails(&["image", "pull", r, "--pull-policy", "Never"]);
    assert!(e.contains("pull policy is Never"), "{e}");
    let e = ctx.fails(&["load", "image", "-i", r, "--pull-policy", "Sometimes"]);
    assert!(e.contains("Sometimes"), "{e}");
}

#[test]
fn signing_policy_is_enforced() {
    if !root_or_skip("signing_policy_is_enforced") {
        return;
    }
    let Some(reg) = start_registry("signing_policy_is_enforced", None) else {
        return;
    };
    // Build and push without a policy, then load under one.
    let builder = Ctx::new(Some(&reg), None);
    // Builds are reproducible: the same object gives the same digest, and a
    // signature is a tag on that digest in its repository. So one repository each.
    let signed = reg.reference("signed/stats:v1");
    let unsigned = reg.reference("unsigned/stats:v1");
    let wrong = reg.reference("wrong-key/stats:v1");
    let trusted = key("trusted.key");
    let other = key("other.key");
    builder.push(STATS, &signed, &["--sign-key", &trusted]);
    builder.push(STATS, &unsigned, &[]);
    builder.push(STATS, &wrong, &["--sign-key", &other]);
    drop(builder);

    let policy = format!(
        "verify = true\nallow_unsigned = false\npublic_key = \"{}\"",
        key("trusted.pub")
    );
    let ctx = Ctx::new(Some(&reg), Some(&policy));
    let loaded = ctx.load_image(&["-i", &signed, "count_sched_switch"]);
    let id = id_of(&loaded[0]);
    let pulled = ctx.ok_json(&["image", "pull", &signed]);
    assert_eq!(pulled["signature"], "verified", "{pulled}");

    let e = ctx.fails(&["load", "image", "-i", &unsigned, "count_sched_switch"]);
    assert!(
        e.contains("no cosign signature") && e.contains("allow_unsigned"),
        "{e}"
    );
    let e = ctx.fails(&["load", "image", "-i", &wrong, "count_sched_switch"]);
    assert!(e.contains("signature rejected"), "{e}");
    // The refusals left nothing: only the signed program exists.
    let list = ctx.ok_json(&["list"]);
    let ids: Vec<u32> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [id]);

    attach_and_count(&ctx, id, &map_pin(&ctx.env, id, "stats_map"), 0);
    ctx.ok_json(&["unload", &id.to_string()]);
    ctx.env.assert_empty();
}

#[test]
fn keyless_signatures_are_verified_offline() {
    use bpfman_image::testing::{KeylessSigner, TestSigstore, attach_bundle, attach_signature};
    if !root_or_skip("keyless_signatures_are_verified_offline") {
        return;
    }
    let Some(reg) = start_registry("keyless_signatures_are_verified_offline", None) else {
        return;
    };
    const SIGNER: &str =
        "https://github.com/example/bpf/.github/workflows/release.yml@refs/tags/v1";
    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    let sigstore = TestSigstore::new(21, "fulcio-cli");
    let builder = Ctx::new(Some(&reg), None);
    let mut cfg = bpfman_image::ImageConfig::with_cache_dir(builder.cache());
    cfg.insecure_registries.push(reg.host());
    // `image build` pushes; a keyless signature (as `cosign sign` in a CI
    // workflow makes) is attached by the test Sigstore.
    let sign = |reference: &str, signer: &KeylessSigner| {
        let digest = builder.push(STATS, reference, &[]);
        attach_signature(
            &cfg,
            &bpfman_image::BuildDest::Registry(reference.to_string()),
            &digest,
            &|payload| sigstore.sign(payload, signer),
            None,
        )
        .unwrap();
    };
    let signed = reg.reference("keyless/stats:v1");
    let forked = reg.reference("fork/stats:v1");
    let unsigned = reg.reference("nosig/stats:v1");
    sign(&signed, &KeylessSigner::new(SIGNER, ISSUER));
    sign(
        &forked,
        &KeylessSigner::new(
            "https://github.com/fork/bpf/.github/workflows/release.yml@refs/tags/v1",
            ISSUER,
        ),
    );
    builder.push(STATS, &unsigned, &[]);
    // cosign v3's format: a Sigstore bundle attached as an OCI referrer.
    let v3 = reg.reference("v3/stats:v1");
    let d = builder.push(STATS, &v3, &[]);
    let bundle = sigstore.sign_bundle(&d, &KeylessSigner::new(SIGNER, ISSUER));
    attach_bundle(
        &cfg,
        &bpfman_image::BuildDest::Registry(v3.clone()),
        &d,
        &bundle,
        None,
    )
    .unwrap();
    drop(builder);

    let mut ctx = Ctx::new(Some(&reg), None);
    let root = ctx.images.path().join("trusted_root.json");
    std::fs::write(&root, sigstore.trusted_root_json(true)).unwrap();
    let policy = format!(
        "verify = true\nallow_unsigned = false\n[signing.keyless]\ntrust_root = \"{}\"\n\
         identity_regexp = \"https://github\\\\.com/example/bpf/\\\\.github/workflows/.*\"\n\
         issuer = \"{ISSUER}\"\n",
        root.display()
    );
    let toml = format!(
        "[images]\ninsecure_registries = [\"{}\"]\n[signing]\n{policy}",
        reg.host()
    );
    std::fs::write(ctx.images.path().join("bpfman.toml"), toml).unwrap();

    let pulled = ctx.ok_json(&["image", "pull", &signed]);
    assert_eq!(pulled["signature"], "verified", "{pulled}");
    assert_eq!(pulled["keyless"]["identity"], SIGNER, "{pulled}");
    assert_eq!(pulled["keyless"]["issuer"], ISSUER, "{pulled}");
    let table = ctx.run(&["image", "pull", &signed]);
    assert!(
        table.ok
            && table
                .stdout
                .contains("keyless: https://github.com/example/bpf/"),
        "{}",
        table.stdout
    );
    let loaded = ctx.load_image(&["-i", &signed, "count_sched_switch"]);
    let id = id_of(&loaded[0]);
    let pulled = ctx.ok_json(&["image", "pull", &v3]);
    assert_eq!(pulled["keyless"]["identity"], SIGNER, "{pulled}");
    let v3_loaded = ctx.load_image(&["-i", &v3, "count_sched_switch"]);
    ctx.ok_json(&["unload", &id_of(&v3_loaded[0]).to_string()]);

    let e = ctx.fails(&["load", "image", "-i", &forked, "count_sched_switch"]);
    assert!(
        e.contains("signature rejected") && e.contains("https://github.com/fork/bpf/"),
        "{e}"
    );
    let e = ctx.fails(&["load", "image", "-i", &unsigned, "count_sched_switch"]);
    assert!(e.contains("no cosign signature"), "{e}");

    // The daemon applies the same policy (it reads bpfman.toml per pull).
    ctx.start_daemon();
    let r = ctx.run_mode(
        &["load", "image", "-i", &forked, "count_sched_switch"],
        true,
    );
    assert!(
        !r.ok
            && r.stderr
                .contains("matches no signing.keyless identity rule"),
        "{}",
        r.stderr
    );
    let remote = ctx.ok_json_mode(
        &["load", "image", "-i", &signed, "count_sched_switch"],
        true,
    );
    let id2 = id_of(&remote[0]);

    // The refusals left nothing: only the two signed loads exist.
    let list = ctx.ok_json(&["list"]);
    let mut ids: Vec<u32> = list.as_array().unwrap().iter().map(id_of).collect();
    ids.sort();
    let mut want = vec![id, id2];
    want.sort();
    assert_eq!(ids, want);

    attach_and_count(&ctx, id, &map_pin(&ctx.env, id, "stats_map"), 0);
    for i in [id, id2] {
        ctx.ok_json(&["unload", &i.to_string()]);
    }
    ctx.env.assert_empty();
}

#[test]
fn registry_credentials_are_used_and_never_stored() {
    if !root_or_skip("registry_credentials_are_used_and_never_stored") {
        return;
    }
    let Some(reg) = start_registry(
        "registry_credentials_are_used_and_never_stored",
        Some(("alice", ALICE_PASSWORD)),
    ) else {
        return;
    };
    let ctx = Ctx::new(Some(&reg), None);
    let r = reg.reference("private/stats:v1");
    ctx.push(STATS, &r, &["--registry-auth", ALICE]);

    let e = ctx.fails(&["load", "image", "-i", &r, "count_sched_switch"]);
    assert!(e.contains(&reg.host()), "{e}");
    // base64("alice:not-the-password")
    let e = ctx.fails(&[
        "load",
        "image",
        "-i",
        &r,
        "--registry-auth",
        "YWxpY2U6bm90LXRoZS1wYXNzd29yZA==",
    ]);
    assert!(
        e.contains("refused the credentials") && !e.contains("not-the-password"),
        "{e}"
    );
    ctx.env.assert_empty();

    let loaded = ctx.load_image(&["-i", &r, "-r", ALICE, "count_sched_switch"]);
    let id = id_of(&loaded[0]);
    let got = ctx.run(&["get", &id.to_string(), "-o", "json"]);
    assert!(!got.stdout.contains(ALICE_PASSWORD), "{}", got.stdout);
    assert!(ctx.store_lacks(ALICE_PASSWORD));
    assert!(ctx.store_lacks(ALICE));
    ctx.ok_json(&["unload", &id.to_string()]);
    ctx.env.assert_empty();
}

#[test]
fn daemon_loads_images_over_grpc_and_ext() {
    if !root_or_skip("daemon_loads_images_over_grpc_and_ext") {
        return;
    }
    let Some(reg) = start_registry("daemon_loads_images_over_grpc_and_ext", None) else {
        return;
    };
    let mut ctx = Ctx::new(Some(&reg), None);
    let r = reg.reference("stats:v1");
    let digest = ctx.push(STATS, &r, &[]);
    ctx.start_daemon();
    let socket = ctx.daemon.as_ref().unwrap().socket().to_path_buf();
    let image = |policy: i32| v1::BytecodeImage {
        url: r.clone(),
        image_pull_policy: policy,
        // What upstream clients send without credentials.
        username: Some(String::new()),
        password: Some(String::new()),
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let mut c = BpfmanClient::new(connect_uds(&socket).await.unwrap());
        // Never before anything is cached: FAILED_PRECONDITION, clear message.
        let e = c
            .pull_bytecode(v1::PullBytecodeRequest {
                image: Some(image(2)),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("pull policy is Never"), "{e:?}");
        c.pull_bytecode(v1::PullBytecodeRequest {
            image: Some(image(0)),
        })
        .await
        .unwrap();
        // Now Never finds it in the cache.
        let req = v1::LoadRequest {
            bytecode: Some(v1::BytecodeLocation {
                location: Some(Location::Image(image(2))),
            }),
            metadata: BTreeMap::from([("bpfman.io/application".into(), "stats".into())]),
            info: vec![v1::LoadInfo {
                name: "count_sched_switch".into(),
                program_type: v1::BpfmanProgramType::Tracepoint as i32,
                info: None,
            }],
            ..Default::default()
        };
        let resp = c.load(req).await.unwrap().into_inner();
        let p = &resp.programs[0];
        let id = p.kernel_info.as_ref().unwrap().id;
        let info = p.info.as_ref().unwrap();
        match info.bytecode.as_ref().and_then(|b| b.location.as_ref()) {
            Some(Location::Image(i)) => assert_eq!(i.url, r),
            other => panic!("{other:?}"),
        }
        c.attach(v1::AttachRequest {
            id,
            attach: Some(v1::AttachInfo {
                info: Some(AttachKind::TracepointAttachInfo(v1::TracepointAttachInfo {
                    tracepoint: "sched/sched_switch".into(),
                    metadata: BTreeMap::new(),
                })),
            }),
        })
        .await
        .unwrap();
        id
    });
    let map = map_pin(&ctx.env, id, "stats_map");
    let first = read_u64(&map, 0);
    eventually("the counter grows", || read_u64(&map, 0) > first + 2);
    // The CLI sees the digest the daemon recorded.
    let got = ctx.ok_json_mode(&["get", &id.to_string()], true);
    assert_eq!(got["record"]["source"]["digest"], digest.as_str());

    // The remote CLI: `load image` goes through the daemon (labels decide).
    let loaded = ctx.ok_json_mode(&["load", "image", "-i", &r], true);
    let id2 = id_of(&loaded[0]);
    assert_eq!(loaded[0]["record"]["source"]["url"], r.as_str());
    assert!(kernel_has_program(id2));

    rt.block_on(async {
        let mut c = BpfmanClient::new(connect_uds(&socket).await.unwrap());
        for id in [id, id2] {
            c.unload(v1::UnloadRequest { id }).await.unwrap();
        }
    });
    ctx.env.assert_empty();
}

/// A registry served over HTTPS with a private CA (made by openssl for this
/// test): trusted through this registry's certs.d directory, through the
/// system store variables (embedded, and the daemon's own environment in
/// remote mode), or not at all. The host's /etc/ssl and /etc/bpfman are
/// never read for it: the config names a private certs.d.
#[test]
fn load_image_from_a_tls_registry() {
    let test = "load_image_from_a_tls_registry";
    if !root_or_skip(test) {
        return;
    }
    if !tool_exists("openssl") {
        println!("SKIP {test}: openssl is not installed (apt-get install openssl)");
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    let tls = TestTls::generate(pki.path()).unwrap();
    let Some(reg) = start_registry_tls(test, &tls) else {
        return;
    };
    let host = reg.host();
    let r = reg.reference("stats:v1");

    // The CA only in certs.d/<host:port>/ca.crt: build, push, load.
    let certs = tempfile::tempdir().unwrap();
    std::fs::create_dir(certs.path().join(&host)).unwrap();
    std::fs::copy(&tls.ca, certs.path().join(&host).join("ca.crt")).unwrap();
    let ctx = Ctx::tls(certs.path());
    let digest = ctx.push(STATS, &r, &["--map", "stats_map=array"]);
    let loaded = ctx.load_image(&["--image-url", &r, "count_sched_switch"]);
    assert_eq!(loaded.len(), 1);
    let id = id_of(&loaded[0]);
    assert!(kernel_has_program(id));
    assert_eq!(loaded[0]["record"]["source"]["digest"], digest.as_str());
    attach_and_count(&ctx, id, &map_pin(&ctx.env, id, "stats_map"), 0);
    ctx.ok_json(&["unload", &id.to_string()]);
    ctx.env.assert_empty();

    // Trusted system-wide (SSL_CERT_FILE), no certs.d entry: pull and load.
    let empty = tempfile::tempdir().unwrap();
    let mut ctx = Ctx::tls(empty.path());
    ctx.extra_env.push(("SSL_CERT_FILE", tls.ca.clone()));
    let pulled = ctx.ok_json(&["image", "pull", &r]);
    assert_eq!(pulled["from_cache"], false, "{pulled}");
    let loaded = ctx.load_image(&["--image-url", &r, "-p", "Always", "count_sched_switch"]);
    let id = id_of(&loaded[0]);
    assert!(kernel_has_program(id));
    assert_eq!(loaded[0]["record"]["source"]["digest"], digest.as_str());
    ctx.ok_json(&["unload", &id.to_string()]);
    ctx.env.assert_empty();

    // In remote mode the daemon pulls, with its own trust store: a private
    // SSL_CERT_DIR, laid out as update-ca-certificates leaves /etc/ssl/certs.
    let store = pki.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(&tls.ca, store.join("bpfman-test-ca.pem")).unwrap();
    let mut ctx = Ctx::tls(empty.path());
    ctx.extra_env.push(("SSL_CERT_DIR", store));
    ctx.start_daemon();
    let loaded = ctx.ok_json_mode(
        &["load", "image", "--image-url", &r, "count_sched_switch"],
        true,
    );
    let id = id_of(&loaded[0]);
    assert!(kernel_has_program(id));
    assert_eq!(loaded[0]["record"]["source"]["digest"], digest.as_str());
    ctx.ok_json_mode(&["unload", &id.to_string()], true);
    assert!(!kernel_has_program(id));
    drop(ctx);

    // Trusted nowhere: one line that names the registry and both fixes,
    // nothing loaded, nothing cached.
    let ctx = Ctx::tls(empty.path());
    let want = format!(
        "Error: registry {host} presented a certificate signed by an unknown authority; trust \
         its CA system-wide (update-ca-certificates) or put it in {}/{host}/ca.crt",
        empty.path().display()
    );
    assert_eq!(ctx.fails(&["image", "pull", &r]), want);
    assert_eq!(
        ctx.fails(&["load", "image", "--image-url", &r, "count_sched_switch"]),
        want
    );
    ctx.env.assert_empty();
    let cached: Vec<_> = std::fs::read_dir(ctx.cache().join("blobs/sha256"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(cached.is_empty(), "cached: {cached:?}");
    let e = ctx.fails(&["image", "pull", &r, "--pull-policy", "Never"]);
    assert!(e.contains("pull policy is Never"), "{e}");
}
