//! kprobe/kretprobe and fentry/fexit through the CLI, counting real
//! `unlink(2)` calls. This host has no kprobes and refuses trampolines: there
//! these tests print why and skip; the VM suite (`make test-vm`) runs them on
//! stock Debian kernels.

mod common;

use std::path::{Path, PathBuf};

use common::{Env, Mode, eventually, obj, read_u64, root_or_skip};

fn unlink_files(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let p = dir.path().join(format!("f{i}"));
        std::fs::write(&p, b"x").unwrap();
        std::fs::remove_file(&p).unwrap();
    }
}

fn has_kprobes() -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

fn map_pin(env: &Env, id: &str, map: &str) -> PathBuf {
    let got = env.ok_json(&["get", id]);
    PathBuf::from(got["record"]["map_pin_path"].as_str().unwrap()).join(map)
}

#[test]
fn kprobe_and_kretprobe_count_unlinks() {
    if !root_or_skip("kprobe_and_kretprobe_count_unlinks") {
        return;
    }
    if !has_kprobes() {
        eprintln!(
            "skipped kprobe_and_kretprobe_count_unlinks: this kernel has no kprobes; it runs in the VM suite (make test-vm)"
        );
        return;
    }
    let env = Env::new(Mode::Embedded);
    let ids = env.load(&[&obj("tests/bpf/kprobe.bpf.o")]);
    assert_eq!(ids.len(), 2);
    for id in &ids {
        // kprobe or kretprobe follows the section; the function comes from it too.
        let link = env.ok_json(&["attach", &id.to_string(), "kprobe"]);
        assert!(
            link["type"] == "kprobe" || link["type"] == "kretprobe",
            "{link}"
        );
        assert_eq!(link["spec"]["fn_name"], "do_unlinkat");
    }
    let pin = map_pin(&env, &ids[0].to_string(), "kprobe_map");
    unlink_files(5);
    eventually("5 entries and 5 returns counted", || {
        read_u64(&pin, 0) >= 5 && read_u64(&pin, 1) >= 5
    });
    // Explicit function name and retprobe through the CLI's attach type.
    let line = env.fails(&[
        "attach",
        &ids[0].to_string(),
        "kprobe",
        "--fn-name",
        "no_such_function_bpfman",
    ]);
    assert!(line.contains("no_such_function_bpfman"), "{line}");
    for id in ids {
        env.ok_json(&["unload", &id.to_string()]);
    }
    env.assert_empty();
}

#[test]
fn fentry_and_fexit_count_unlinks() {
    if !root_or_skip("fentry_and_fexit_count_unlinks") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let r = env.run(&["-o", "json", "load", "file", &obj("tests/bpf/fentry.bpf.o")]);
    if !r.ok {
        assert!(
            r.stderr.contains("EPERM") || r.stderr.contains("trampoline"),
            "{}",
            r.stderr
        );
        eprintln!(
            "skipped fentry_and_fexit_count_unlinks: this kernel refuses trampoline programs (EPERM); it runs in the VM suite (make test-vm)"
        );
        env.assert_empty();
        return;
    }
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let got = env.ok_json(&["get", id]);
        assert_eq!(got["record"]["attach_fn"], "do_unlinkat");
        let kind = got["type"].as_str().unwrap().to_string();
        let link = env.ok_json(&["attach", id, &kind]);
        assert_eq!(link["type"], kind);
    }
    let pin = map_pin(&env, &ids[0], "fentry_map");
    unlink_files(4);
    eventually("4 entries and 4 exits counted", || {
        read_u64(&pin, 0) >= 4 && read_u64(&pin, 1) >= 4
    });
    for id in &ids {
        env.ok_json(&["unload", id]);
    }
    env.assert_empty();
}
