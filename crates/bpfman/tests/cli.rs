//! CLI scenarios on the real kernel, in embedded and remote (daemon) mode.
//! Each test has its own runtime dir and bpffs mount, unmounted on drop.

mod common;

use common::{
    Env, Mode, assert_same_tree, eventually, kernel_has_program, obj, read_u64, root_or_skip, tree,
};
use std::path::PathBuf;

const STATS: &str = "examples/stats/stats.bpf.o";

fn seed_flow(mode: Mode) {
    let env = Env::new(mode);
    let stats = obj(STATS);
    // The seed form, exactly as documented.
    let loaded = env.ok_json(&[
        "load",
        "file",
        "-m",
        "bpfman.io/application=stats",
        &stats,
        "count_sched_switch",
    ]);
    let p = &loaded[0];
    let id = p["id"].as_u64().unwrap() as u32;
    assert_eq!(p["name"], "count_sched_switch");
    assert_eq!(p["type"], "tracepoint");
    assert_eq!(p["record"]["metadata"]["bpfman.io/application"], "stats");
    let map_pin = env.fs().join(id.to_string()).join("stats_map");
    assert!(
        env.fs()
            .join(id.to_string())
            .join("count_sched_switch")
            .exists()
    );
    assert!(map_pin.exists());
    assert!(kernel_has_program(id));

    // Attach with the tracepoint from the ELF section.
    let link = env.ok_json(&["attach", &id.to_string(), "tracepoint"]);
    assert_eq!(link["spec"]["tracepoint"], "sched/sched_switch");
    let link_id = link["id"].as_u64().unwrap().to_string();
    let first = read_u64(&map_pin, 0);
    eventually("counter grows", || read_u64(&map_pin, 0) > first + 2);

    // list / get / links
    let list = env.ok_json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["links"][0]["id"].to_string(), link_id);
    let sel = env.ok_json(&[
        "list",
        "-m",
        "bpfman.io/application=stats",
        "--program-type",
        "tracepoint",
    ]);
    assert_eq!(sel.as_array().unwrap().len(), 1);
    let none = env.ok_json(&["list", "-m", "bpfman.io/application=other"]);
    assert_eq!(none.as_array().unwrap().len(), 0);
    let none = env.ok_json(&["list", "--program-type", "xdp"]);
    assert_eq!(none.as_array().unwrap().len(), 0);
    let got = env.ok_json(&["get", &id.to_string()]);
    assert_eq!(got["maps"][0]["name"], "stats_map");
    assert_eq!(got["maps"][0]["kernel"]["map_type"], "array");
    assert_eq!(got["maps"][0]["kernel"]["value_size"], 8);
    assert!(got["kernel"]["tag"].as_str().unwrap().len() == 16);
    assert!(got["kernel"]["verified_insns"].as_u64().unwrap() > 0);
    assert!(!got["kernel"]["map_ids"].as_array().unwrap().is_empty());
    // list shows the facts recorded at load, get reads the kernel now: the
    // same (the load time is rounded to seconds from two clock readings).
    let (mut listed, mut live) = (list[0]["kernel"].clone(), got["kernel"].clone());
    for k in [&mut listed, &mut live] {
        let at = k.as_object_mut().unwrap().remove("loaded_at").unwrap();
        assert!(at.as_str().unwrap().ends_with('Z'), "{at}");
    }
    assert_eq!(listed, live);
    let links = env.ok_json(&["list", "links"]);
    assert_eq!(links.as_array().unwrap().len(), 1);
    let gl = env.ok_json(&["get", "link", &link_id]);
    assert_eq!(gl["type"], "tracepoint");
    // Table output works too.
    let t = env.run(&["list"]);
    assert!(
        t.ok && t.stdout.contains("count_sched_switch")
            && t.stdout.contains("bpfman.io/application=stats")
    );
    let t = env.run(&["get", &id.to_string()]);
    assert!(
        t.ok && t.stdout.contains("stats_map") && t.stdout.contains("Verified insns"),
        "{}",
        t.stdout
    );

    // A clean system has nothing to collect.
    assert_eq!(env.ok_json(&["gc"])["items"].as_array().unwrap().len(), 0);

    // Detach stops the counting.
    env.ok_json(&["detach", &link_id]);
    let after = read_u64(&map_pin, 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        read_u64(&map_pin, 0),
        after,
        "counter still moves after detach"
    );
    assert_eq!(env.ok_json(&["list", "links"]).as_array().unwrap().len(), 0);

    // Unload leaves nothing in the kernel or under <fs>.
    env.ok_json(&[
        "attach",
        &id.to_string(),
        "tracepoint",
        "--tracepoint",
        "sched/sched_switch",
    ]);
    env.ok_json(&["unload", &id.to_string()]);
    assert!(!kernel_has_program(id), "program {id} still in the kernel");
    env.assert_empty();
}

#[test]
fn seed_flow_embedded() {
    if root_or_skip("seed_flow_embedded") {
        seed_flow(Mode::Embedded);
    }
}

#[test]
fn seed_flow_remote() {
    if root_or_skip("seed_flow_remote") {
        seed_flow(Mode::Remote);
    }
}

fn uprobe_target() -> String {
    obj("tests/bpf/uprobe-target/uprobe_target")
}

fn uprobe_counts(mode: Mode) {
    let env = Env::new(mode);
    let ids = env.load(&[&obj("tests/bpf/uprobe.bpf.o")]);
    assert_eq!(ids.len(), 2, "both programs of the object load");
    let get = env.ok_json(&["get", &ids[0].to_string()]);
    let owner = get["record"]["map_owner_id"].as_u64().unwrap();
    let map_pin = PathBuf::from(get["record"]["map_pin_path"].as_str().unwrap()).join("uprobe_map");
    // Both programs share the load's one map directory.
    let get2 = env.ok_json(&["get", &ids[1].to_string()]);
    assert_eq!(get2["record"]["map_owner_id"].as_u64().unwrap(), owner);
    // The probe direction follows each program's section (uprobe / uretprobe).
    for id in &ids {
        let r = env.run(&[
            "attach",
            &id.to_string(),
            "uprobe",
            "--target",
            &uprobe_target(),
            "--fn-name",
            "bpfman_test_fn",
        ]);
        assert!(r.ok, "{}", r.stderr);
    }
    let types: Vec<String> = env
        .ok_json(&["list", "links"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        types.contains(&"uprobe".to_string()) && types.contains(&"uretprobe".to_string()),
        "{types:?}"
    );
    let out = std::process::Command::new(uprobe_target())
        .arg("7")
        .output()
        .unwrap();
    assert!(out.status.success());
    eventually("7 calls and 7 returns counted", || {
        read_u64(&map_pin, 0) == 7 && read_u64(&map_pin, 1) == 7
    });
    for id in ids {
        env.ok_json(&["unload", &id.to_string()]);
    }
    env.assert_empty();
}

#[test]
fn uprobe_counts_embedded() {
    if root_or_skip("uprobe_counts_embedded") {
        uprobe_counts(Mode::Embedded);
    }
}

#[test]
fn uprobe_counts_remote() {
    if root_or_skip("uprobe_counts_remote") {
        uprobe_counts(Mode::Remote);
    }
}

#[test]
fn map_sharing_and_global_data() {
    if !root_or_skip("map_sharing_and_global_data") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let multi = obj("tests/bpf/multi.bpf.o");
    // GLOBAL_u32 = 10 (little endian): tp_one adds 1 + 10 per event.
    let ids = env.load(&[
        "--path",
        &multi,
        "--programs",
        "tracepoint:tp_one",
        "-g",
        "GLOBAL_u32=0a000000",
    ]);
    let owner = ids[0];
    let map_pin = env.fs().join(owner.to_string()).join("shared_map");
    assert!(map_pin.exists());
    let shared = env.load(&[&multi, "tp_two", "--map-owner-id", &owner.to_string()]);
    let g = env.ok_json(&["get", &shared[0].to_string()]);
    assert_eq!(g["record"]["map_owner_id"].as_u64().unwrap() as u32, owner);
    assert_eq!(g["map_used_by"].as_array().unwrap().len(), 2);
    // The sharer has no map pins of its own.
    assert!(
        !env.fs()
            .join(shared[0].to_string())
            .join("shared_map")
            .exists()
    );
    env.ok_json(&["attach", &owner.to_string(), "tracepoint"]);
    eventually("tp_one counts by 11", || {
        let v = read_u64(&map_pin, 0);
        v >= 22 && v.is_multiple_of(11)
    });
    // Owner goes first: the map stays for the sharer.
    env.ok_json(&["unload", &owner.to_string()]);
    assert!(map_pin.exists(), "shared map removed while still used");
    env.ok_json(&["unload", &shared[0].to_string()]);
    assert!(!map_pin.exists());
    env.assert_empty();
}

/// Each command fails with a one-line error mentioning its needle and leaves
/// the runtime tree byte-for-byte as it was.
fn fails_leaving_no_trace(env: &Env, cases: &[(Vec<&str>, &str)]) {
    let before = tree(env.runtime());
    for (a, needle) in cases {
        let line = env.fails(a);
        assert!(
            line.to_lowercase().contains(&needle.to_lowercase()),
            "error for {a:?} should mention '{needle}': {line}"
        );
        assert_same_tree(&format!("{a:?}"), &before, &tree(env.runtime()));
    }
}

fn bad_input(mode: Mode) {
    let env = Env::new(mode);
    let stats = obj(STATS);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["load".into(), "file".into(), "/nonexistent/x.o".into()],
            "/nonexistent/x.o",
        ),
        (vec!["load".into(), "file".into(), obj("README.md")], "not"),
        (
            vec!["load".into(), "file".into(), "/bin/true".into()],
            "BPF",
        ),
        (
            vec![
                "load".into(),
                "file".into(),
                stats.clone(),
                "no_such_prog".into(),
            ],
            "no_such_prog",
        ),
        (
            vec!["load".into(), "file".into(), obj("tests/bpf/bad.bpf.o")],
            "verifier",
        ),
        (
            vec![
                "load".into(),
                "file".into(),
                stats.clone(),
                "-m".into(),
                "novalue".into(),
            ],
            "KEY=VALUE",
        ),
        (
            vec![
                "load".into(),
                "file".into(),
                stats.clone(),
                "-g".into(),
                "x=zz".into(),
            ],
            "hex",
        ),
        (vec!["unload".into(), "999999".into()], "999999"),
        (vec!["get".into(), "4294967295".into()], "4294967295"),
        (vec!["detach".into(), "999".into()], "999"),
        (vec!["get".into(), "link".into(), "999".into()], "999"),
    ];
    // A failed command leaves the runtime tree byte-for-byte as it was
    // (directories and the store included), from the first command on.
    env.ok_json(&["list"]);
    let cases: Vec<(Vec<&str>, &str)> = cases
        .iter()
        .map(|(a, n)| (a.iter().map(String::as_str).collect(), *n))
        .collect();
    fails_leaving_no_trace(&env, &cases);
    // Attaches that fail, on a runtime where nothing was attached yet.
    let id = env.load(&[&stats])[0].to_string();
    let attach_cases: Vec<(Vec<&str>, &str)> = vec![
        // A tracepoint that does not exist, and a wrong attach type.
        (
            vec![
                "attach",
                &id,
                "tracepoint",
                "--tracepoint",
                "sched/no_such_tp",
            ],
            "sched/no_such_tp",
        ),
        (
            vec![
                "attach",
                &id,
                "uprobe",
                "--target",
                "/bin/true",
                "--fn-name",
                "main",
            ],
            "tracepoint",
        ),
        (vec!["attach", "999999", "tracepoint"], "999999"),
        (
            vec!["attach", &id, "tracepoint", "-m", "novalue"],
            "KEY=VALUE",
        ),
        (
            vec!["attach", &id, "xdp", "--iface", "no-such-if0"],
            "tracepoint",
        ),
    ];
    fails_leaving_no_trace(&env, &attach_cases);
    // Network attaches that fail, before any dispatcher directory exists.
    let loaded = env.ok_json(&["load", "file", &obj("tests/bpf/net_test.bpf.o")]);
    let id_of = |name: &str| {
        loaded
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["id"]
            .to_string()
    };
    let (xdp, tc) = (id_of("xdp_test"), id_of("tc_test"));
    let net_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["attach", &xdp, "xdp", "--iface", "no-such-if0"],
            "no-such-if0",
        ),
        (
            vec![
                "attach",
                &tc,
                "tc",
                "--iface",
                "no-such-if0",
                "--direction",
                "ingress",
            ],
            "no-such-if0",
        ),
        (
            vec![
                "attach",
                &tc,
                "tcx",
                "--iface",
                "no-such-if0",
                "--direction",
                "egress",
            ],
            "no-such-if0",
        ),
        (
            vec![
                "attach",
                &xdp,
                "xdp",
                "--iface",
                "lo",
                "--netns",
                "/nonexistent/ns",
            ],
            "/nonexistent/ns",
        ),
    ];
    fails_leaving_no_trace(&env, &net_cases);
    for p in [&xdp, &tc, &id] {
        env.ok_json(&["unload", p]);
    }
    env.assert_empty();
}

#[test]
fn an_unusable_store_says_why_and_what_to_do() {
    if !root_or_skip("an_unusable_store_says_why_and_what_to_do") {
        return;
    }
    // SQLite cannot make its WAL index (store.db-shm) there, as on 9p or NFS;
    // and a file that is not a database.
    for (what, setup, needles) in [
        (
            "no WAL index",
            (|db: &std::path::Path| std::fs::create_dir(db.join("store.db-shm")).unwrap())
                as fn(&std::path::Path),
            &["store.db", "WAL index", "--runtime-dir", "is on"][..],
        ),
        (
            "not a database",
            |db: &std::path::Path| std::fs::write(db.join("store.db"), b"not sqlite").unwrap(),
            &["store.db", "not an SQLite database", "move it aside"][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        setup(&db);
        let r = std::process::Command::new(common::bin())
            .arg("--runtime-dir")
            .arg(dir.path())
            .arg("list")
            .env_remove("BPFMAN_SOCKET")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{what}: list succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: error should say '{n}': {err}");
        }
        // No bpffs was mounted for a runtime dir that cannot work.
        assert!(!dir.path().join("fs").exists(), "{what}: fs created");
    }
}

#[test]
fn bad_input_embedded() {
    if root_or_skip("bad_input_embedded") {
        bad_input(Mode::Embedded);
    }
}

#[test]
fn bad_input_remote() {
    if root_or_skip("bad_input_remote") {
        bad_input(Mode::Remote);
    }
}

#[test]
fn kernel_features_missing_here_say_so() {
    if !root_or_skip("kernel_features_missing_here_say_so") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let r = env.run(&["-o", "json", "load", "file", &obj("tests/bpf/kprobe.bpf.o")]);
    if r.ok {
        let ids: Vec<String> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].to_string())
            .collect();
        let a = env.run(&["attach", &ids[0], "kprobe"]);
        if a.ok {
            eprintln!("note: this kernel has kprobes; kprobe attach works");
        } else {
            assert!(a.stderr.to_lowercase().contains("kprobe"), "{}", a.stderr);
        }
        for id in &ids {
            env.ok_json(&["unload", id]);
        }
    } else {
        assert!(r.stderr.to_lowercase().contains("kprobe"), "{}", r.stderr);
    }
    let r = env.run(&["-o", "json", "load", "file", &obj("tests/bpf/fentry.bpf.o")]);
    if r.ok {
        eprintln!("note: this kernel allows fentry/fexit");
        for p in r.json().as_array().unwrap() {
            env.ok_json(&["unload", &p["id"].to_string()]);
        }
    } else {
        let e = r.stderr.to_lowercase();
        assert!(
            e.contains("fentry") || e.contains("trampoline"),
            "{}",
            r.stderr
        );
    }
    env.assert_empty();
}

#[test]
fn list_all_marks_unmanaged() {
    if !root_or_skip("list_all_marks_unmanaged") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let id = env.load(&[&obj(STATS)])[0];
    let all = env.ok_json(&["list", "--all"]);
    let arr = all.as_array().unwrap();
    assert!(arr.iter().any(|p| p["id"] == id && p["managed"] == true));
    // The kernel always has programs of its own (or of other tenants); if it
    // has none, there is nothing unmanaged to show.
    if arr.len() > 1 {
        assert!(arr.iter().any(|p| p["managed"] == false));
    }
    // A selector drops unmanaged programs.
    let sel = env.ok_json(&[
        "list",
        "--all",
        "-m",
        "bpfman.io/ProgramName=count_sched_switch",
    ]);
    assert!(sel.as_array().unwrap().iter().all(|p| p["managed"] == true));
    env.ok_json(&["unload", &id.to_string()]);
    env.assert_empty();
}

/// `list` shows the kernel facts recorded at load only for programs the
/// kernel still runs: a program whose pins were removed behind bpfman's back
/// stays listed (gc repairs it) but without facts, and the others keep theirs.
#[test]
fn list_drops_the_facts_of_a_program_gone_from_the_kernel() {
    if !root_or_skip("list_drops_the_facts_of_a_program_gone_from_the_kernel") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let gone = env.load(&[&obj(STATS)])[0];
    let kept = env.load(&[&obj(STATS)])[0];
    let by_id = |list: &serde_json::Value, id: u32| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("program {id} not listed: {list}"))
    };
    let list = env.ok_json(&["list"]);
    assert_eq!(by_id(&list, gone)["kernel"]["id"], gone);
    let dir = by_id(&list, gone)["record"]["map_pin_path"]
        .as_str()
        .unwrap()
        .to_string();
    // Its pins held the last references: removing them frees the program.
    std::fs::remove_dir_all(&dir).unwrap();
    eventually("the program is freed", || !kernel_has_program(gone));

    let list = env.ok_json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert!(by_id(&list, gone)["kernel"].is_null(), "{list}");
    assert_eq!(by_id(&list, kept)["kernel"]["id"], kept);
    assert!(by_id(&list, kept)["kernel"]["tag"].as_str().unwrap().len() == 16);

    env.ok_json(&["gc", "--prune"]);
    let list = env.ok_json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    env.ok_json(&["unload", &kept.to_string()]);
    env.assert_empty();
}

/// The daemon and embedded CLIs on one runtime dir at the same time: the
/// shared writer lock keeps store, kernel and bpffs in agreement.
#[test]
fn embedded_and_daemon_stay_consistent() {
    if !root_or_skip("embedded_and_daemon_stay_consistent") {
        return;
    }
    let env = Env::new(Mode::Remote);
    let stats = obj(STATS);
    std::thread::scope(|s| {
        for worker in 0..4 {
            let env = &env;
            let stats = &stats;
            s.spawn(move || {
                let embedded = worker % 2 == 0;
                let run = |args: &[&str]| {
                    let mut a = args.to_vec();
                    a.extend(["-o", "json"]);
                    let r = if embedded {
                        env.run_embedded_env(&a, &[])
                    } else {
                        env.run(&a)
                    };
                    assert!(r.ok, "worker {worker} {args:?}: {}", r.stderr);
                    r.json()
                };
                for _ in 0..5 {
                    let id =
                        run(&["load", "file", stats, "-m", &format!("worker={worker}")])[0]["id"]
                            .to_string();
                    let link = run(&["attach", &id, "tracepoint"])["id"].to_string();
                    run(&["get", &id]);
                    run(&["detach", &link]);
                    run(&["unload", &id]);
                }
            });
        }
    });
    // Both sides see the same, empty, state.
    env.assert_empty();
    let r = env.run_embedded_env(&["-o", "json", "list"], &[]);
    assert!(r.ok && r.json().as_array().unwrap().is_empty());
}

/// Output into a pipe whose reader has gone (`bpfman list | head -1` once
/// head has exited) ends the command quietly with success, as other CLI
/// tools do, instead of a panic about a broken pipe.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    if !root_or_skip("output_to_a_closed_pipe_ends_quietly") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let id = env.load(&[&obj(STATS)])[0].to_string();
    for args in [
        &["list", "-o", "json"][..],
        &["list"][..],
        &["get", &id, "-o", "json"][..],
    ] {
        // No reader at all: every write gets EPIPE, whatever the timing.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = std::process::Command::new(common::bin())
            .arg("--runtime-dir")
            .arg(env.runtime())
            .args(args)
            .env_remove("BPFMAN_SOCKET")
            .stdout(writer)
            .output()
            .expect("run bpfman");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "bpfman {args:?}: {:?} {stderr}",
            out.status
        );
        assert!(
            stderr.is_empty(),
            "bpfman {args:?} wrote to stderr: {stderr}"
        );
    }
    env.ok_json(&["unload", &id]);
    env.assert_empty();
}
