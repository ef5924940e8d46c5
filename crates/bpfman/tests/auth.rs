//! Authorisation on the gRPC socket, end to end: a real daemon, the real CLI
//! run as other users (setgroups/setgid/setuid between fork and exec), and
//! the kernel's SO_PEERCRED/SO_PEERGROUPS in between. The socket's directory
//! is setgid to the group under test, so the socket file (0660) belongs to
//! that group, as systemd's `SocketGroup=` or a packaged `bpfman` group make it.

mod common;

use std::os::unix::fs::{PermissionsExt, chown};

use common::{Env, obj, root_or_skip};

const STATS: &str = "examples/stats/stats.bpf.o";
/// `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;
/// A group no user here is in; the policy under test lets it mutate.
const LOADERS: u32 = 4242;

/// Makes the runtime dir traversable and the socket directory setgid `gid`.
fn socket_group(e: &Env, gid: u32) {
    std::fs::set_permissions(e.runtime(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let dir = e.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir(&dir).unwrap();
    chown(&dir, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2750)).unwrap();
}

fn load_args() -> Vec<String> {
    vec![
        "load".into(),
        "file".into(),
        "-m".into(),
        "bpfman.io/application=auth".into(),
        obj(STATS),
        "count_sched_switch".into(),
    ]
}

fn one_line(stderr: &str) -> &str {
    stderr.lines().next().unwrap_or("")
}

#[test]
fn reader_may_list_but_not_load_and_a_loader_group_may_load() {
    if !root_or_skip("reader_may_list_but_not_load_and_a_loader_group_may_load") {
        return;
    }
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("bpfman.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nmutate_gids = [{LOADERS}]\nread_uids = [{NOBODY}]\n"),
    )
    .unwrap();
    let cfg_s = cfg.to_string_lossy().into_owned();
    let e = Env::remote_with(&[("BPFMAN_CONFIG", &cfg_s)], |e| socket_group(e, NOBODY));
    let meta = std::fs::metadata(e.socket()).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), NOBODY);

    // A reader: List (both services) and Get are served, Load is not.
    let r = e.run_as(NOBODY, NOBODY, &[], &["list", "-o", "json"]);
    assert!(r.ok, "list as nobody: {}", r.stderr);
    assert_eq!(r.json(), serde_json::json!([]));
    let args = load_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = e.run_as(NOBODY, NOBODY, &[], &args);
    assert!(!r.ok, "load as nobody succeeded: {}", r.stdout);
    let line = one_line(&r.stderr);
    assert!(
        line.starts_with(&format!("Error: uid {NOBODY} (pid ")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            "may not call Load: only uids [0] and gids [{LOADERS}] may mutate (auth.mutate_* in {cfg_s})"
        )),
        "{line}"
    );
    let r = e.run_as(NOBODY, NOBODY, &[], &["gc"]);
    assert!(
        !r.ok && r.stderr.contains("may not call Gc"),
        "{}",
        r.stderr
    );
    assert!(e.leftovers().is_empty(), "{:?}", e.leftovers());

    // The same uid with the loaders' group as a supplementary group may load.
    let r = e.run_as(
        NOBODY,
        NOBODY,
        &[LOADERS],
        &[&args[..], &["-o", "json"]].concat(),
    );
    assert!(r.ok, "load with gid {LOADERS}: {}", r.stderr);
    let id = r.json()[0]["id"].as_u64().unwrap().to_string();
    let r = e.run_as(NOBODY, NOBODY, &[], &["get", &id, "-o", "json"]);
    assert!(r.ok, "get as reader: {}", r.stderr);
    let r = e.run_as(NOBODY, NOBODY, &[], &["unload", &id]);
    assert!(r.stderr.contains("may not call Unload"), "{}", r.stderr);
    // As effective gid too (in the socket's group as a supplementary one, to connect).
    let r = e.run_as(NOBODY, LOADERS, &[NOBODY], &["unload", &id]);
    assert!(r.ok, "unload with egid {LOADERS}: {}", r.stderr);
    assert!(e.leftovers().is_empty(), "{:?}", e.leftovers());

    // A uid in the socket's group but in no list may not even read.
    let r = e.run_as(1234, NOBODY, &[], &["list"]);
    assert!(!r.ok);
    assert!(
        one_line(&r.stderr).contains("uid 1234 (pid ")
            && r.stderr.contains("may not call ListPrograms"),
        "{}",
        r.stderr
    );
}

#[test]
fn default_policy_lets_root_and_the_socket_group_mutate_and_nobody_else_connect() {
    if !root_or_skip("default_policy_lets_root_and_the_socket_group_mutate_and_nobody_else_connect")
    {
        return;
    }
    let e = Env::remote_with(&[("BPFMAN_CONFIG", "/nonexistent/bpfman.toml")], |e| {
        socket_group(e, NOBODY)
    });
    let mode = std::fs::metadata(e.socket()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o660);
    let args = load_args();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["-o", "json"]);
    // Any uid in the socket's group may load, and unload.
    let r = e.run_as(1234, NOBODY, &[], &args);
    assert!(r.ok, "load as a member of the socket group: {}", r.stderr);
    let id = r.json()[0]["id"].as_u64().unwrap().to_string();
    let r = e.run_as(1234, NOBODY, &[], &["unload", &id]);
    assert!(r.ok, "{}", r.stderr);
    // Root may do anything.
    let ids = e.load(&args[2..args.len() - 2]);
    let r = e.run(&["unload", &ids[0].to_string()]);
    assert!(r.ok, "{}", r.stderr);
    // Others cannot connect at all (socket 0660, directory 0750).
    let r = e.run_as(NOBODY, 1234, &[], &["list"]);
    assert!(!r.ok);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(e.leftovers().is_empty(), "{:?}", e.leftovers());
}
