//! Clients nobody here wrote: Python grpcio (gRPC C-core, as used by Python,
//! C++, Ruby and PHP) with its default channel settings drives the daemon's
//! gRPC socket and its CSI socket. C-core sends the socket path as
//! `:authority`, which h2 alone refuses; see crates/bpfman-uds.
//!
//! The client is tests/interop/grpcio_client.py; its stubs are generated from
//! our protos at test time. And Prometheus' Python client parses `/metrics`
//! fetched by Python's urllib (tests/interop/prom_scrape.py). Both come from
//! the project's venv (scripts/install-deps.sh).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Env, Mode, kernel_has_program, mounts_under, obj, repo, root_or_skip};

/// The venv's Python, if it has grpcio; otherwise why not.
fn grpcio_python(test: &str) -> Option<PathBuf> {
    venv_python(test, "grpc, grpc_tools", "grpcio/grpcio-tools")
}

/// The venv's Python, if it can import `modules` (the packages `what`);
/// otherwise why not. Under CI a missing client is a failure, not a skip.
fn venv_python(test: &str, modules: &str, what: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("BPFMAN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/bpfman/venv")
        });
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return Some(py);
    }
    let why = format!(
        "{} has no {what} (run scripts/install-deps.sh)",
        py.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}");
    }
    bpfman_testkit::skip(test, &why);
    None
}

/// Runs the client; returns its `fact KEY=VALUE` lines. Fails the test with
/// the client's output unless every check passed.
fn client(py: &PathBuf, args: &[&str]) -> Vec<(String, String)> {
    let out = Command::new(py)
        .arg(repo().join("tests/interop/grpcio_client.py"))
        .args(args)
        .output()
        .expect("run the grpcio client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "grpcio client {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprint!("{stdout}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("fact "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn grpcio_drives_the_daemon_with_default_settings() {
    if !root_or_skip("grpcio_drives_the_daemon_with_default_settings") {
        return;
    }
    let Some(py) = grpcio_python("grpcio_drives_the_daemon_with_default_settings") else {
        return;
    };
    let env = Env::new(Mode::Remote);
    let socket = env.socket();
    let facts = client(
        &py,
        &[
            "bpfman",
            "--socket",
            socket.to_str().unwrap(),
            "--object",
            &obj("examples/stats/stats.bpf.o"),
            "--program",
            "count_sched_switch",
        ],
    );
    let id: u32 = facts
        .iter()
        .find(|(k, _)| k == "program_id")
        .and_then(|(_, v)| v.parse().ok())
        .expect("the client reports the program id");
    // The client unloaded it: gone from the kernel and from bpffs.
    assert!(!kernel_has_program(id), "program {id} still in the kernel");
    env.assert_empty();
}

#[test]
fn grpcio_publishes_and_unpublishes_a_csi_volume() {
    if !root_or_skip("grpcio_publishes_and_unpublishes_a_csi_volume") {
        return;
    }
    let Some(py) = grpcio_python("grpcio_publishes_and_unpublishes_a_csi_volume") else {
        return;
    };
    let env = Env::with_csi();
    env.load(&[
        "-m",
        "bpfman.io/application=grpcio-csi",
        &obj("examples/stats/stats.bpf.o"),
        "count_sched_switch",
    ]);
    let pod = "0d7c1e2a-5b7f-4a57-9c1e-000000000042";
    let dir = env.pods().join(pod).join("volumes/kubernetes.io~csi/vol");
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("mount");
    client(
        &py,
        &[
            "csi",
            "--socket",
            env.csi_socket().to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--app",
            "grpcio-csi",
            "--map",
            "stats_map",
            "--pod-uid",
            pod,
        ],
    );
    assert!(
        mounts_under(&env.pods()).is_empty(),
        "mounts left: {:?}",
        mounts_under(&env.pods())
    );
}

#[test]
fn prometheus_parses_the_metrics_and_sees_runs_grow() {
    let test = "prometheus_parses_the_metrics_and_sees_runs_grow";
    if !root_or_skip(test) {
        return;
    }
    let Some(py) = venv_python(test, "prometheus_client", "prometheus-client") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let e = Env::remote_with(&[("BPFMAN_METRICS_LISTEN", &addr)], |_| {});
    let id = e.load(&[
        "--application",
        "stats",
        &obj("examples/stats/stats.bpf.o"),
        "count_sched_switch",
    ])[0];
    e.ok_json(&["attach", &id.to_string(), "tracepoint"]);
    let out = Command::new(&py)
        .arg(repo().join("tests/interop/prom_scrape.py"))
        .arg(format!("http://{addr}/metrics"))
        .arg(id.to_string())
        .output()
        .expect("run the Prometheus parser");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "prom_scrape.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{stdout}");
    e.ok_json(&["unload", &id.to_string()]);
}
