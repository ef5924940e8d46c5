//! `bpfman-load-floor` does the load it stands for: the program and its map
//! pinned, one row recorded, the feature cache written; and removing the pins
//! frees the program. Runs as root on the real kernel, in a private bpffs.

use std::process::Command;

use bpfman_testkit::{RuntimeDir, kernel_has_program, repo_file, root_or_skip};

#[test]
fn the_load_floor_pins_records_and_frees() {
    if !root_or_skip("the_load_floor_pins_records_and_frees") {
        return;
    }
    let rt = RuntimeDir::with_bpffs("bpfman-load-floor-");
    let store = rt.path().join("floor.db");
    let features = rt.path().join("kernel-features");
    let object = repo_file("examples/stats/stats.bpf.o");
    let floor = env!("CARGO_BIN_EXE_bpfman-load-floor");
    let mut ids = Vec::new();
    for i in 0..2 {
        let dir = rt.fs().join(format!("load_{i}"));
        let out = Command::new(floor)
            .arg(&store)
            .arg(&object)
            .arg("count_sched_switch")
            .arg(&dir)
            .arg(&features)
            .output()
            .expect("run bpfman-load-floor");
        assert!(
            out.status.success(),
            "bpfman-load-floor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("bpfman-load-floor prints the program id");
        assert!(kernel_has_program(id), "program {id} is not in the kernel");
        assert!(dir.join("count_sched_switch").exists());
        assert!(dir.join("stats_map").exists());
        // The first load probed the kernel and kept the answers.
        assert!(features.is_file(), "no feature cache after a load");
        ids.push((id, dir));
    }
    let db = rusqlite::Connection::open(&store).expect("open the floor's store");
    let rows: Vec<u32> = db
        .prepare("SELECT id FROM loads ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("read the floor's rows");
    let mut want: Vec<u32> = ids.iter().map(|(id, _)| *id).collect();
    want.sort_unstable();
    assert_eq!(rows, want);

    // An existing directory is refused, and what is in it stays: the
    // failure path removes only a directory the call made itself.
    let out = Command::new(floor)
        .arg(&store)
        .arg(&object)
        .arg("count_sched_switch")
        .arg(&ids[0].1)
        .arg(&features)
        .output()
        .expect("run bpfman-load-floor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an existing directory was accepted");
    assert!(stderr.contains("File exists"), "unexpected error: {stderr}");
    assert!(ids[0].1.join("count_sched_switch").exists());
    assert!(ids[0].1.join("stats_map").exists());
    assert!(kernel_has_program(ids[0].0));

    // A pin that fails (a directory outside any bpffs) takes the directory
    // it made with it.
    let off_bpffs = rt.path().join("not-bpffs");
    let out = Command::new(floor)
        .arg(&store)
        .arg(&object)
        .arg("count_sched_switch")
        .arg(&off_bpffs)
        .arg(&features)
        .output()
        .expect("run bpfman-load-floor");
    assert!(!out.status.success(), "a pin outside bpffs succeeded");
    assert!(
        !off_bpffs.exists(),
        "the failed load left {}",
        off_bpffs.display()
    );

    for (id, dir) in ids {
        std::fs::remove_dir_all(&dir).expect("remove the pins");
        // The pins held the only references; the kernel frees the program
        // after a grace period, so poll (60 s at most, as the other kernel
        // tests do: emulated VMs are slow).
        let start = std::time::Instant::now();
        let mut gone = false;
        while !gone && start.elapsed() < std::time::Duration::from_secs(60) {
            gone = !kernel_has_program(id);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            gone,
            "program {id} still loaded after its pins were removed"
        );
    }
}
