//! Metrics and `bpfman top`, end to end: a real daemon with
//! `--metrics-listen`, scraped over HTTP/1.1 on TCP loopback by a plain
//! socket client; the kernel's run counters of an attached tracepoint
//! program; the daemon's fds and listening sockets read from /proc.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Env, Mode, eventually, obj, root_or_skip};

const STATS: &str = "examples/stats/stats.bpf.o";

/// A loopback port free right now (the daemon binds it next).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET `path` over HTTP/1.1; (status line, headers+body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    http_get_on(s, addr, path)
}

fn http_get_on(mut s: impl Read + Write, addr: &str, path: &str) -> (String, String) {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (status, rest) = out.split_once("\r\n").unwrap_or((&out, ""));
    (status.to_string(), rest.to_string())
}

fn scrape(addr: &str) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}\n{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{body}"
    );
    body
}

/// The value of the first sample line starting with `prefix` and holding every `parts`.
fn value(text: &str, prefix: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Links of `/proc/PID/fd/*`.
fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// TCP sockets of `pid` in the LISTEN state (its netns: the host's here).
fn listening_tcp(pid: u32) -> usize {
    let inodes: BTreeSet<String> = fd_targets(pid)
        .into_iter()
        .filter_map(|t| {
            t.strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_string)
        })
        .collect();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 9 && f[3] == "0A" && inodes.contains(f[9])
        })
        .count()
}

fn holds_bpf_stats(pid: u32) -> bool {
    fd_targets(pid).iter().any(|t| t == "anon_inode:bpf-stats")
}

#[test]
fn metrics_scrape_counts_runs_loads_and_latency_and_forgets_unloaded() {
    if !root_or_skip("metrics_scrape_counts_runs_loads_and_latency_and_forgets_unloaded") {
        return;
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let mut e = Env::remote_with(&[("BPFMAN_METRICS_LISTEN", &addr)], |_| {});
    let pid = e.daemon_pid().unwrap();
    assert!(
        holds_bpf_stats(pid),
        "metrics on: the daemon holds BPF_ENABLE_STATS"
    );
    assert_eq!(listening_tcp(pid), 1, "metrics on: one TCP listener");

    let ids = e.load(&["--application", "stats", &obj(STATS), "count_sched_switch"]);
    let id = ids[0];
    let idl = format!("program_id=\"{id}\"");
    e.ok_json(&["attach", &id.to_string(), "tracepoint"]);

    let first = scrape(&addr);
    let runs = |t: &str| {
        value(
            t,
            "bpfman_program_run_count_total{",
            &[&idl, "type=\"tracepoint\"", "application=\"stats\""],
        )
    };
    let r1 = runs(&first).unwrap_or_else(|| panic!("no run count for {id}:\n{first}"));
    // sched_switch fires constantly; wait for the next scrape to see more.
    eventually("the run count to grow between scrapes", || {
        runs(&scrape(&addr)).is_some_and(|r2| r2 > r1)
    });
    let t = scrape(&addr);
    assert!(
        value(&t, "bpfman_program_run_time_seconds_total{", &[&idl]).is_some_and(|v| v > 0.0),
        "{t}"
    );
    assert_eq!(
        value(&t, "bpfman_program_links{", &[&idl]),
        Some(1.0),
        "{t}"
    );
    assert_eq!(value(&t, "bpfman_program_maps{", &[&idl]), Some(1.0), "{t}");
    assert_eq!(
        value(&t, "bpfman_map_max_entries{", &[&idl, "map=\"stats_map\""]),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            "bpfman_operations_total{",
            &[
                "operation=\"load\"",
                "program_type=\"tracepoint\"",
                "outcome=\"ok\""
            ]
        ),
        Some(1.0),
        "{t}"
    );
    let load = "method=\"/bpfman.ext.v1.BpfmanExt/Load\"";
    assert_eq!(
        value(&t, "bpfman_request_duration_seconds_count{", &[load]),
        Some(1.0),
        "{t}"
    );
    assert!(t.contains("bpfman_request_duration_seconds_bucket{"), "{t}");
    assert_eq!(
        value(&t, "bpfman_requests_total{", &[load, "code=\"OK\""]),
        Some(1.0),
        "{t}"
    );
    assert_eq!(value(&t, "bpfman_bpf_stats_enabled", &[]), Some(1.0), "{t}");
    assert!(
        value(&t, "bpfman_store_bytes", &[]).is_some_and(|v| v > 0.0),
        "{t}"
    );
    assert!(t.contains("bpfman_build_info{version=\""), "{t}");

    // `top -o json` through the daemon lists it, counting.
    let top = e.ok_json(&["top", "--interval", "0.3"]);
    let row = top["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in top: {top}"))
        .clone();
    assert!(row["run_cnt"].as_u64().unwrap() > 0, "{row}");
    assert_eq!(row["application"], "stats");
    assert_eq!(top["stats_enabled"], true);

    // A failed load is counted as an error.
    e.fails(&["load", "file", "/nonexistent.o"]);
    e.ok_json(&["unload", &id.to_string()]);
    let t = scrape(&addr);
    assert!(
        !t.contains(&idl),
        "series of the unloaded program remain:\n{t}"
    );
    assert_eq!(
        value(
            &t,
            "bpfman_operations_total{",
            &[
                "operation=\"unload\"",
                "program_type=\"tracepoint\"",
                "outcome=\"ok\""
            ]
        ),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            "bpfman_operations_total{",
            &["operation=\"load\"", "outcome=\"error\""]
        ),
        Some(1.0),
        "{t}"
    );
    // Anything but GET /metrics is refused.
    assert!(http_get(&addr, "/").0.contains(" 404 "));
    e.stop_daemon();
    e.assert_empty();
}

#[test]
fn metrics_off_means_no_listener_and_no_bpf_stats() {
    if !root_or_skip("metrics_off_means_no_listener_and_no_bpf_stats") {
        return;
    }
    let e = Env::new(Mode::Remote);
    let pid = e.daemon_pid().unwrap();
    assert!(!holds_bpf_stats(pid), "{:?}", fd_targets(pid));
    assert_eq!(listening_tcp(pid), 0, "{:?}", fd_targets(pid));
    // And the daemon says so to top.
    let s = e.ok_json(&["top", "--interval", "0.1"]);
    assert!(s["programs"].as_array().unwrap().is_empty(), "{s}");
}

#[test]
fn top_embedded_counts_runs_while_it_runs() {
    if !root_or_skip("top_embedded_counts_runs_while_it_runs") {
        return;
    }
    let e = Env::new(Mode::Embedded);
    let id = e.load(&[&obj(STATS), "count_sched_switch"])[0];
    e.ok_json(&["attach", &id.to_string(), "tracepoint"]);
    // Embedded, top turns the kernel's counting on itself for its interval.
    eventually("top to see the program run", || {
        let t = e.ok_json(&["top", "--interval", "0.3"]);
        t["stats_enabled"] == true
            && t["programs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id && r["interval_runs"].as_u64().unwrap_or(0) > 0)
    });
    // Without a terminal, one table per refresh; -n bounds them.
    let r = e.run(&["top", "--interval", "0.1", "-n", "2"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.matches("bpfman top - ").count(), 2, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("{id:>8}  count_sched_switch")),
        "{}",
        r.stdout
    );
    let bad = e.fails(&["top", "--interval", "0"]);
    assert!(bad.contains("--interval"), "{bad}");
    e.ok_json(&["unload", &id.to_string()]);
    e.assert_empty();
}

#[tokio::test(flavor = "multi_thread")]
async fn csi_requests_are_counted_and_metrics_serve_on_a_unix_socket() {
    use bpfman_csi::proto::GetPluginInfoRequest;
    use bpfman_csi::proto::identity_client::IdentityClient;
    if !root_or_skip("csi_requests_are_counted_and_metrics_serve_on_a_unix_socket") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("metrics.sock");
    let e = Env::with_csi_env(&[("BPFMAN_METRICS_LISTEN", sock.to_str().unwrap())]);
    let ch = bpfman_csi::connect(&e.csi_socket()).await.unwrap();
    IdentityClient::new(ch)
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap();
    let conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let (status, t) = http_get_on(conn, "localhost", "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(
        value(
            &t,
            "bpfman_requests_total{",
            &[
                "server=\"csi\"",
                "method=\"/csi.v1.Identity/GetPluginInfo\"",
                "code=\"OK\""
            ]
        ),
        Some(1.0),
        "{t}"
    );
    assert!(
        t.contains("bpfman_request_duration_seconds_count{server=\"csi\",method=\"/csi.v1.Identity/GetPluginInfo\"}"),
        "{t}"
    );
}

#[test]
fn a_daemon_that_cannot_start_leaves_no_socket_behind() {
    if !root_or_skip("a_daemon_that_cannot_start_leaves_no_socket_behind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A runtime "dir" that is a file: the manager cannot open, after both
    // sockets are bound.
    let runtime = dir.path().join("not-a-dir");
    std::fs::write(&runtime, b"").unwrap();
    let (grpc, metrics) = (
        dir.path().join("bpfman.sock"),
        dir.path().join("metrics.sock"),
    );
    let out = std::process::Command::new(common::bin())
        .arg("--runtime-dir")
        .arg(&runtime)
        .args(["serve", "--listen"])
        .arg(&grpc)
        .arg("--metrics-listen")
        .arg(&metrics)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "serve started on a file as runtime dir"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["not-a-dir"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
