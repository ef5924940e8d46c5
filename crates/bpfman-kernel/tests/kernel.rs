//! Kernel tests: real BPF as root, each test in its own temp dir with its
//! own bpffs mount (unmounted by a guard even when the test panics).
//! Without root every test prints why and returns (skipped).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::maps::{Array, Map, MapData};
use bpfman_core::spec::GlobalData;
use bpfman_core::{AttachSpec, ProgramId, ProgramKind};
use bpfman_kernel::{
    KernelError, LoadRequest, LoadedObject, ObjectKind, ProgramToLoad, attach, bind_mount,
    ensure_bpffs, features, inspect_object, is_bpffs, is_mountpoint, link_id_by_pin, live_link_ids,
    live_map_ids, live_program_ids, load, loaded_programs, map_info_by_pin, object_maps,
    open_pinned, program_id_by_pin, program_info, programs_info, unmount, unpin,
};
use bpfman_testkit::{RuntimeDir, root_or_skip};

static TP_COUNTER: &[u8] = include_bytes!("../../../tests/bpf/tp_counter.bpf.o");
static UPROBE: &[u8] = include_bytes!("../../../tests/bpf/uprobe.bpf.o");
static TWO_PROGS: &[u8] = include_bytes!("../../../tests/bpf/two_progs.bpf.o");
static VERIFIER_REJECT: &[u8] = include_bytes!("../../../tests/bpf/verifier_reject.bpf.o");
static TRAMPOLINE: &[u8] = include_bytes!("../../../tests/bpf/trampoline.bpf.o");
static CORE: &[u8] = include_bytes!("../../../tests/bpf/core.bpf.o");
static TENMAPS: &[u8] = include_bytes!("../../../tests/bpf/tenmaps.bpf.o");

/// The function the uprobe test probes (in this very test binary).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn bpfman_kernel_test_uprobe_target(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_add(1)
}

/// A private runtime dir with its own bpffs at `<tmp>/fs`; every mount it
/// made is undone on drop, panic or not (bpfman-testkit's RuntimeDir).
struct Env {
    rt: RuntimeDir,
    fs: PathBuf,
}

impl Env {
    /// `None` (after saying why) when the test cannot run here.
    fn new(test: &str) -> Option<Env> {
        if !root_or_skip(test) {
            return None;
        }
        let rt = RuntimeDir::new("bpfman-kernel-test.");
        let fs = rt.fs();
        assert!(ensure_bpffs(&fs).unwrap(), "fresh dir must get a new bpffs");
        Some(Env { rt, fs })
    }

    /// A path under the bpffs, creating its parent directory.
    fn pin_path(&self, rel: &str) -> PathBuf {
        self.rt.pin_path(rel)
    }

    /// A plain directory under the temp dir.
    fn dir(&self, rel: &str) -> PathBuf {
        self.rt.dir(rel)
    }

    /// Remembers a mount the test made, so the guard undoes it.
    fn track_mount(&self, p: &Path) {
        self.rt.track_mount(p);
    }
}

fn prog(name: &str, kind: ProgramKind) -> ProgramToLoad {
    ProgramToLoad {
        name: name.to_string(),
        kind,
        attach_fn: None,
    }
}

fn load_simple(bytes: &[u8], programs: &[ProgramToLoad]) -> Result<LoadedObject, KernelError> {
    load(&LoadRequest {
        bytes,
        programs,
        global_data: &GlobalData::new(),
        reuse_maps: &BTreeMap::new(),
    })
}

fn read_u64(map_pin: &Path, index: u32) -> u64 {
    let map = Map::from_map_data(MapData::from_pin(map_pin).unwrap()).unwrap();
    let array: Array<MapData, u64> = Array::try_from(map).unwrap();
    array.get(&index, 0).unwrap()
}

/// Polls `cond` a bounded number of times, giving the scheduler work
/// (each sleep is a context switch) between tries.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("gave up waiting for {what}");
}

fn tracepoint(tp: &str) -> AttachSpec {
    AttachSpec::Tracepoint {
        tracepoint: Some(tp.to_string()),
    }
}

/// Loads tp_counter with `globals`, pins program and `counts` under the
/// env, and drops every handle. Returns (program pin, map pin, program id).
fn pinned_tp_counter(env: &Env, globals: &GlobalData) -> (PathBuf, PathBuf, u32) {
    let programs = [prog("count_sched_switch", ProgramKind::Tracepoint)];
    let mut obj = load(&LoadRequest {
        bytes: TP_COUNTER,
        programs: &programs,
        global_data: globals,
        reuse_maps: &BTreeMap::new(),
    })
    .unwrap();
    let id = obj.program_id("count_sched_switch").unwrap();
    let prog_pin = env.pin_path(&format!("{id}/count_sched_switch"));
    let map_pin = env.pin_path(&format!("{id}/counts"));
    obj.pin_program("count_sched_switch", &prog_pin).unwrap();
    obj.pin_map("counts", &map_pin).unwrap();
    drop(obj);
    (prog_pin, map_pin, id.get())
}

#[test]
fn inspects_objects_without_the_kernel() {
    let progs = inspect_object(TWO_PROGS).unwrap();
    let names: Vec<_> = progs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prog_a", "prog_b"]);
    assert_eq!(progs[0].section, "tracepoint/syscalls/sys_enter_getpid");
    assert_eq!(progs[0].kind, Some(ProgramKind::Tracepoint));
    assert_eq!(object_maps(TWO_PROGS).unwrap(), ["only_b", "shared"]);
    // The global-variable map (.rodata) is not a user map.
    assert_eq!(object_maps(TP_COUNTER).unwrap(), ["counts"]);
    let t = inspect_object(TRAMPOLINE).unwrap();
    let kinds: Vec<_> = t.iter().map(|p| (p.name.as_str(), p.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("fentry_unlinkat", Some(ProgramKind::Fentry)),
            ("fexit_unlinkat", Some(ProgramKind::Fexit)),
            ("kprobe_unlinkat", Some(ProgramKind::Kprobe)),
        ]
    );
}

#[test]
fn not_an_elf_is_not_bpf() {
    let e = load_simple(
        b"definitely not an ELF",
        &[prog("x", ProgramKind::Tracepoint)],
    )
    .unwrap_err();
    assert!(matches!(e, KernelError::NotBpf(_)), "{e:?}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
    let host_elf = std::fs::read("/proc/self/exe").unwrap();
    let e = inspect_object(&host_elf).unwrap_err();
    assert!(
        matches!(e, KernelError::NotBpf(ref m) if m.contains("not for BPF")),
        "{e}"
    );
}

#[test]
fn load_pin_and_facts() {
    let Some(env) = Env::new("load_pin_and_facts") else {
        return;
    };
    let programs = [prog("count_sched_switch", ProgramKind::Tracepoint)];
    let mut obj = load_simple(TP_COUNTER, &programs).unwrap();
    let id = obj.program_id("count_sched_switch").unwrap();
    let created = obj.created_maps();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].0, "counts");
    let map_id = created[0].1;

    let prog_pin = env.pin_path(&format!("{id}/count_sched_switch"));
    let map_pin = env.pin_path(&format!("{id}/counts"));
    obj.pin_program("count_sched_switch", &prog_pin).unwrap();
    obj.pin_map("counts", &map_pin).unwrap();
    drop(obj);

    // Pinned objects outlive the load's handles.
    let info = program_info(id).unwrap().expect("pinned program is alive");
    assert_eq!(info.id, id);
    assert_eq!(info.name, "count_sched_swi", "kernel names are 15 bytes");
    assert_eq!(
        info.program_type,
        ProgramKind::Tracepoint.kernel_prog_type()
    );
    assert_eq!(info.tag.len(), 16);
    assert!(info.tag.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        info.loaded_at.len() == 20 && info.loaded_at.ends_with('Z') && info.loaded_at[4..5] == *"-",
        "{}",
        info.loaded_at
    );
    assert!(info.gpl_compatible);
    assert!(info.map_ids.contains(&map_id), "{:?}", info.map_ids);
    assert!(info.bytes_xlated > 0);
    assert!(info.verified_insns > 0);
    assert!(info.bytes_memlock > 0);
    if info.jited {
        assert!(info.bytes_jited > 0);
    }

    let m = map_info_by_pin(&map_pin).unwrap();
    assert_eq!(m.id, map_id);
    assert_eq!(m.name, "counts");
    assert_eq!(m.map_type, "array");
    assert_eq!((m.key_size, m.value_size, m.max_entries), (4, 8, 4));

    assert_eq!(program_id_by_pin(&prog_pin).unwrap(), id);
    assert!(live_program_ids().unwrap().contains(&id));
    assert!(loaded_programs().unwrap().iter().any(|p| p.id == id));

    // Asking a pin for the wrong kind of object is a plain error.
    let e = map_info_by_pin(&prog_pin).unwrap_err();
    assert!(e.to_string().contains("not a map"), "{e}");
    assert!(link_id_by_pin(&map_pin).is_err());
    let e = map_info_by_pin(&env.fs.join("missing")).unwrap_err();
    assert!(matches!(e, KernelError::NotFound(_)), "{e:?}");

    // Removing the pins unloads.
    unpin(&prog_pin).unwrap();
    unpin(&map_pin).unwrap();
    unpin(&map_pin).unwrap(); // already gone: fine
    wait_for("program to unload", || program_info(id).unwrap().is_none());
    wait_for("map to go", || !live_map_ids().unwrap().contains(&map_id));
}

/// Ten maps are more than the first info call has room for: the ids come
/// from the second call, all ten, the same as the load created.
#[test]
fn program_info_lists_every_map_id() {
    let Some(_env) = Env::new("program_info_lists_every_map_id") else {
        return;
    };
    let programs = [prog("tenmaps", ProgramKind::Tracepoint)];
    let obj = load_simple(TENMAPS, &programs).unwrap();
    let id = obj.program_id("tenmaps").unwrap();
    let mut created: Vec<_> = obj.created_maps().into_iter().map(|(_, m)| m).collect();
    created.sort();
    assert_eq!(created.len(), 10, "{created:?}");
    let mut listed = program_info(id).unwrap().expect("loaded").map_ids;
    listed.sort();
    assert_eq!(listed, created);
    let one_map = load_simple(
        TP_COUNTER,
        &[prog("count_sched_switch", ProgramKind::Tracepoint)],
    )
    .unwrap();
    let one_id = one_map.program_id("count_sched_switch").unwrap();
    let one = program_info(one_id).unwrap().expect("loaded").map_ids;
    // It also uses its object's global-data map, which created_maps leaves out.
    assert!(one.contains(&one_map.created_maps()[0].1), "{one:?}");
}

/// A long list is read on several threads; the answers keep the order of
/// the ids asked, and a program that does not exist reads as `None`.
#[test]
fn programs_info_keeps_order_across_threads() {
    let Some(_env) = Env::new("programs_info_keeps_order_across_threads") else {
        return;
    };
    let obj = load_simple(
        TP_COUNTER,
        &[prog("count_sched_switch", ProgramKind::Tracepoint)],
    )
    .unwrap();
    let id = obj.program_id("count_sched_switch").unwrap();
    let missing = ProgramId(u32::MAX - 7);
    assert!(program_info(missing).unwrap().is_none());
    let ids: Vec<ProgramId> = (0..600)
        .map(|i| if i % 3 == 0 { missing } else { id })
        .collect();
    let facts = programs_info(&ids).unwrap();
    assert_eq!(facts.len(), ids.len());
    for (i, f) in facts.iter().enumerate() {
        match f {
            None => assert_eq!(ids[i], missing, "answer {i}"),
            Some(k) => assert_eq!((ids[i], k.id), (id, id), "answer {i}"),
        }
    }
    assert!(programs_info(&[]).unwrap().is_empty());
}

#[test]
fn dropping_an_unpinned_load_leaks_nothing() {
    let Some(_env) = Env::new("dropping_an_unpinned_load_leaks_nothing") else {
        return;
    };
    let obj = load_simple(TWO_PROGS, &[prog("prog_a", ProgramKind::Tracepoint)]).unwrap();
    let id = obj.program_id("prog_a").unwrap();
    let maps: Vec<bpfman_core::MapId> = obj.created_maps().iter().map(|(_, id)| *id).collect();
    assert_eq!(maps.len(), 2, "both declared maps are created");
    assert!(program_info(id).unwrap().is_some());
    drop(obj);
    wait_for("program to unload", || program_info(id).unwrap().is_none());
    wait_for("maps to go", || {
        let live = live_map_ids().unwrap();
        maps.iter().all(|m| !live.contains(m))
    });
}

#[test]
fn tracepoint_counter_link_pin_lifecycle() {
    let Some(env) = Env::new("tracepoint_counter_link_pin_lifecycle") else {
        return;
    };
    let (prog_pin, map_pin, _id) = pinned_tp_counter(&env, &GlobalData::new());
    let link_pin = env.pin_path("links/1");
    let link_id = attach(
        &prog_pin,
        ProgramKind::Tracepoint,
        &tracepoint("sched/sched_switch"),
        &link_pin,
    )
    .unwrap()
    .expect("tracepoints attach through a bpf_link");

    // attach() dropped every handle: only the pin keeps the link alive.
    assert!(live_link_ids().unwrap().contains(&link_id));
    assert_eq!(link_id_by_pin(&link_pin).unwrap(), link_id);
    let start = read_u64(&map_pin, 0);
    wait_for("sched_switch counter to grow", || {
        read_u64(&map_pin, 0) > start
    });

    // Undo pattern: hold the link, unpin, re-pin: the link survives.
    let held = open_pinned(&link_pin).unwrap();
    assert_eq!(held.kind(), ObjectKind::Link);
    assert_eq!(held.id().unwrap(), Some(link_id.get()));
    unpin(&link_pin).unwrap();
    assert!(!link_pin.exists());
    held.pin(&link_pin).unwrap();
    drop(held);
    assert!(live_link_ids().unwrap().contains(&link_id));
    let again = read_u64(&map_pin, 0);
    wait_for("counter to grow after re-pin", || {
        read_u64(&map_pin, 0) > again
    });

    // Unpinning the last reference detaches: the counter stops.
    unpin(&link_pin).unwrap();
    wait_for("link to be released", || {
        !live_link_ids().unwrap().contains(&link_id)
    });
    // The release finishes just after the id goes; let it settle.
    std::thread::sleep(Duration::from_millis(100));
    let stopped = read_u64(&map_pin, 0);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        read_u64(&map_pin, 0),
        stopped,
        "detached program still counts"
    );
}

/// An object with CO-RE relocations (task_struct.pid at an offset unknown at
/// compile time) is relocated against the kernel's BTF: the pid it reads
/// through the relocated offset is the thread id the kernel reports.
#[test]
fn core_relocations_use_the_kernel_btf() {
    let Some(env) = Env::new("core_relocations_use_the_kernel_btf") else {
        return;
    };
    let programs = [prog("core_pid", ProgramKind::Tracepoint)];
    let mut obj = load_simple(CORE, &programs).unwrap();
    let id = obj.program_id("core_pid").unwrap();
    let prog_pin = env.pin_path(&format!("{id}/core_pid"));
    let map_pin = env.pin_path(&format!("{id}/core_map"));
    obj.pin_program("core_pid", &prog_pin).unwrap();
    obj.pin_map("core_map", &map_pin).unwrap();
    drop(obj);
    assert!(bpfman_kernel::btf::vmlinux_parsed());
    let link_pin = env.pin_path("links/1");
    attach(
        &prog_pin,
        ProgramKind::Tracepoint,
        &tracepoint("sched/sched_switch"),
        &link_pin,
    )
    .unwrap();
    wait_for("CO-RE reads of task_struct.pid", || {
        read_u64(&map_pin, 0) > 0
    });
    unpin(&link_pin).unwrap();
    assert_eq!(
        read_u64(&map_pin, 1),
        0,
        "task_struct.pid read at the wrong offset: CO-RE relocation not applied"
    );
}

#[test]
fn global_data_override_changes_behaviour() {
    let Some(env) = Env::new("global_data_override_changes_behaviour") else {
        return;
    };
    let mut globals = GlobalData::new();
    globals.insert("counter_slot".into(), 3u32.to_le_bytes().to_vec());
    let (prog_pin, map_pin, _) = pinned_tp_counter(&env, &globals);
    let link_pin = env.pin_path("links/slot3");
    attach(
        &prog_pin,
        ProgramKind::Tracepoint,
        &tracepoint("sched/sched_switch"),
        &link_pin,
    )
    .unwrap();
    wait_for("slot 3 to count", || read_u64(&map_pin, 3) > 0);
    assert_eq!(read_u64(&map_pin, 0), 0, "default slot must stay untouched");
    unpin(&link_pin).unwrap();

    // Wrong name or size is refused before anything loads.
    let programs = [prog("count_sched_switch", ProgramKind::Tracepoint)];
    let mut bad = GlobalData::new();
    bad.insert("no_such_global".into(), vec![1, 0, 0, 0]);
    let e = load(&LoadRequest {
        bytes: TP_COUNTER,
        programs: &programs,
        global_data: &bad,
        reuse_maps: &BTreeMap::new(),
    })
    .unwrap_err();
    assert!(
        matches!(e, KernelError::NotFound(ref m) if m.contains("no_such_global")),
        "{e:?}"
    );
    let mut short = GlobalData::new();
    short.insert("counter_slot".into(), vec![1]);
    let e = load(&LoadRequest {
        bytes: TP_COUNTER,
        programs: &programs,
        global_data: &short,
        reuse_maps: &BTreeMap::new(),
    })
    .unwrap_err();
    assert!(e.to_string().contains("4 bytes"), "{e}");
}

#[test]
fn missing_tracepoint_is_not_found() {
    let Some(env) = Env::new("missing_tracepoint_is_not_found") else {
        return;
    };
    let (prog_pin, _, _) = pinned_tp_counter(&env, &GlobalData::new());
    let link_pin = env.pin_path("links/nope");
    let e = attach(
        &prog_pin,
        ProgramKind::Tracepoint,
        &tracepoint("sched/nope"),
        &link_pin,
    )
    .unwrap_err();
    assert!(
        matches!(e, KernelError::NotFound(ref m) if m.contains("tracepoint sched/nope does not exist")),
        "{e:?}"
    );
    assert!(!link_pin.exists());

    // A wrong kind for the spec, and a missing program pin, are refused plainly.
    let e = attach(
        &prog_pin,
        ProgramKind::Tracepoint,
        &AttachSpec::Fentry,
        &link_pin,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("cannot be attached as fentry"),
        "{e}"
    );
    let e = attach(
        &env.fs.join("missing"),
        ProgramKind::Tracepoint,
        &tracepoint("sched/sched_switch"),
        &link_pin,
    )
    .unwrap_err();
    assert!(matches!(e, KernelError::NotFound(_)), "{e:?}");
}

#[test]
fn uprobe_counts_calls() {
    let Some(env) = Env::new("uprobe_counts_calls") else {
        return;
    };
    let programs = [
        prog("count_calls", ProgramKind::Uprobe),
        prog("count_returns", ProgramKind::Uretprobe),
    ];
    let mut obj = load_simple(UPROBE, &programs).unwrap();
    let id = obj.program_id("count_calls").unwrap();
    let entry_pin = env.pin_path(&format!("{id}/count_calls"));
    let ret_pin = env.pin_path(&format!("{id}/count_returns"));
    let map_pin = env.pin_path(&format!("{id}/uprobe_map"));
    obj.pin_program("count_calls", &entry_pin).unwrap();
    obj.pin_program("count_returns", &ret_pin).unwrap();
    obj.pin_map("uprobe_map", &map_pin).unwrap();
    drop(obj);

    let exe = std::env::current_exe().unwrap();
    let spec = |retprobe| AttachSpec::Uprobe {
        target: exe.to_string_lossy().into_owned(),
        fn_name: Some("bpfman_kernel_test_uprobe_target".into()),
        offset: 0,
        pid: Some(std::process::id() as i32),
        retprobe,
        container_pid: None,
    };
    let l1 = env.pin_path("links/uprobe");
    let l2 = env.pin_path("links/uretprobe");
    let id1 = attach(&entry_pin, ProgramKind::Uprobe, &spec(false), &l1)
        .unwrap()
        .unwrap();
    let id2 = attach(&ret_pin, ProgramKind::Uretprobe, &spec(true), &l2)
        .unwrap()
        .unwrap();
    let mut sum = 0;
    for i in 0..5 {
        sum += bpfman_kernel_test_uprobe_target(i);
    }
    assert_eq!(sum, 15);
    assert_eq!(read_u64(&map_pin, 0), 5, "entries");
    assert_eq!(read_u64(&map_pin, 1), 5, "returns");

    // Detached: further calls are not counted.
    unpin(&l1).unwrap();
    unpin(&l2).unwrap();
    wait_for("uprobe links to go", || {
        let live = live_link_ids().unwrap();
        !live.contains(&id1) && !live.contains(&id2)
    });
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..3 {
        bpfman_kernel_test_uprobe_target(i);
    }
    assert_eq!(read_u64(&map_pin, 0), 5, "entries after detach");
    assert_eq!(read_u64(&map_pin, 1), 5, "returns after detach");

    let missing_symbol = AttachSpec::Uprobe {
        target: exe.to_string_lossy().into_owned(),
        fn_name: Some("no_such_symbol_anywhere".into()),
        offset: 0,
        pid: None,
        retprobe: false,
        container_pid: None,
    };
    let e = attach(&entry_pin, ProgramKind::Uprobe, &missing_symbol, &l1).unwrap_err();
    assert!(
        matches!(e, KernelError::NotFound(ref m) if m.contains("no_such_symbol_anywhere")),
        "{e:?}"
    );
    let missing_target = AttachSpec::Uprobe {
        target: "/nonexistent/binary".into(),
        fn_name: Some("main".into()),
        offset: 0,
        pid: None,
        retprobe: false,
        container_pid: None,
    };
    let e = attach(&entry_pin, ProgramKind::Uprobe, &missing_target, &l1).unwrap_err();
    assert!(
        matches!(e, KernelError::NotFound(ref m) if m.contains("/nonexistent/binary")),
        "{e:?}"
    );
}

#[test]
fn verifier_rejection_has_log_tail() {
    let Some(_env) = Env::new("verifier_rejection_has_log_tail") else {
        return;
    };
    let e = load_simple(
        VERIFIER_REJECT,
        &[prog("unchecked_lookup", ProgramKind::Tracepoint)],
    )
    .unwrap_err();
    match e {
        KernelError::Verifier { program, log_tail } => {
            assert_eq!(program, "unchecked_lookup");
            assert!(log_tail.contains("invalid mem access"), "{log_tail}");
            assert!(log_tail.lines().count() <= 20);
        }
        other => panic!("expected a verifier error, got {other:?}"),
    }
}

#[test]
fn unknown_program_lists_available() {
    let e = load_simple(TWO_PROGS, &[prog("nope", ProgramKind::Tracepoint)]).unwrap_err();
    match e {
        KernelError::ProgramNotFound { name, available } => {
            assert_eq!(name, "nope");
            assert_eq!(available, ["prog_a", "prog_b"]);
        }
        other => panic!("expected ProgramNotFound, got {other:?}"),
    }
}

#[test]
fn partial_load_and_shared_maps() {
    let Some(env) = Env::new("partial_load_and_shared_maps") else {
        return;
    };
    let mut owner = load_simple(TWO_PROGS, &[prog("prog_a", ProgramKind::Tracepoint)]).unwrap();
    let owner_id = owner.program_id("prog_a").unwrap();
    // prog_b is in the object but was not asked for.
    let e = owner
        .pin_program("prog_b", &env.pin_path("x/prog_b"))
        .unwrap_err();
    assert!(matches!(e, KernelError::ProgramNotFound { .. }), "{e:?}");
    let shared_pin = env.pin_path(&format!("{owner_id}/shared"));
    owner.pin_map("shared", &shared_pin).unwrap();
    let shared_id = map_info_by_pin(&shared_pin).unwrap().id;

    let mut reuse = BTreeMap::new();
    reuse.insert("shared".to_string(), shared_pin.clone());
    // Maps the object does not declare are ignored.
    reuse.insert("owner_only".to_string(), env.fs.join("whatever"));
    let programs = [prog("prog_b", ProgramKind::Tracepoint)];
    let user = load(&LoadRequest {
        bytes: TWO_PROGS,
        programs: &programs,
        global_data: &GlobalData::new(),
        reuse_maps: &reuse,
    })
    .unwrap();
    let created: Vec<_> = user.created_maps().into_iter().map(|(n, _)| n).collect();
    assert_eq!(created, ["only_b"]);
    let e = {
        let mut user = user;
        let e = user
            .pin_map("shared", &env.pin_path("y/shared"))
            .unwrap_err();
        let b = user.program_id("prog_b").unwrap();
        let info = program_info(b).unwrap().unwrap();
        assert!(info.map_ids.contains(&shared_id), "{:?}", info.map_ids);
        e
    };
    assert!(e.to_string().contains("shared from"), "{e}");

    // Sharing from a pin that is not there fails before loading.
    let mut gone = BTreeMap::new();
    gone.insert("shared".to_string(), env.fs.join("nothing/here"));
    let e = load(&LoadRequest {
        bytes: TWO_PROGS,
        programs: &programs,
        global_data: &GlobalData::new(),
        reuse_maps: &gone,
    })
    .unwrap_err();
    assert!(matches!(e, KernelError::NotFound(_)), "{e:?}");
    drop(owner);
}

#[test]
fn kprobe_is_unsupported_here() {
    let Some(env) = Env::new("kprobe_is_unsupported_here") else {
        return;
    };
    let mut obj = load_simple(TRAMPOLINE, &[prog("kprobe_unlinkat", ProgramKind::Kprobe)]).unwrap();
    let id = obj.program_id("kprobe_unlinkat").unwrap();
    let pin = env.pin_path(&format!("{id}/kprobe_unlinkat"));
    obj.pin_program("kprobe_unlinkat", &pin).unwrap();
    drop(obj);
    let spec = AttachSpec::Kprobe {
        fn_name: Some("do_unlinkat".into()),
        offset: 0,
        retprobe: false,
        container_pid: None,
    };
    let link_pin = env.pin_path("links/kprobe");
    let result = attach(&pin, ProgramKind::Kprobe, &spec, &link_pin);
    if features().kprobes {
        eprintln!("SKIPPED kprobe_is_unsupported_here: this kernel has kprobes");
        result.unwrap();
        return;
    }
    let e = result.unwrap_err();
    assert!(
        matches!(e, KernelError::Unsupported(ref m) if m == "this kernel has no kprobe support"),
        "{e:?}"
    );
}

#[test]
fn fentry_is_unsupported_here() {
    let Some(_env) = Env::new("fentry_is_unsupported_here") else {
        return;
    };
    let programs = [ProgramToLoad {
        name: "fentry_unlinkat".into(),
        kind: ProgramKind::Fentry,
        attach_fn: Some("do_unlinkat".into()),
    }];
    let result = load_simple(TRAMPOLINE, &programs);
    if features().trampolines {
        eprintln!("SKIPPED fentry_is_unsupported_here: this kernel loads trampolines");
        result.unwrap();
        return;
    }
    let e = result.unwrap_err();
    assert!(
        matches!(e, KernelError::Unsupported(ref m)
            if m == "this kernel refuses fentry/fexit (trampoline) programs: EPERM"),
        "{e:?}"
    );
    // A target missing from the kernel's BTF is named, whatever the host policy.
    let programs = [ProgramToLoad {
        name: "fexit_unlinkat".into(),
        kind: ProgramKind::Fexit,
        attach_fn: Some("no_such_kernel_function".into()),
    }];
    let e = load_simple(TRAMPOLINE, &programs).unwrap_err();
    assert!(
        matches!(e, KernelError::NotFound(ref m) if m.contains("no_such_kernel_function")),
        "{e:?}"
    );
}

#[test]
fn bpffs_and_bind_mounts() {
    let Some(env) = Env::new("bpffs_and_bind_mounts") else {
        return;
    };
    assert!(is_bpffs(&env.fs).unwrap());
    assert!(is_mountpoint(&env.fs).unwrap());
    assert!(!ensure_bpffs(&env.fs).unwrap(), "already a bpffs");

    let second = env.dir("second");
    assert!(!is_bpffs(&second).unwrap());
    assert!(ensure_bpffs(&second).unwrap());
    env.track_mount(&second);
    assert!(is_bpffs(&second).unwrap());

    // A map pinned in `second`, seen read-only through a bind mount.
    let obj = load_simple(
        TP_COUNTER,
        &[prog("count_sched_switch", ProgramKind::Tracepoint)],
    )
    .unwrap();
    let mut obj = obj;
    obj.pin_map("counts", &second.join("counts")).unwrap();
    let target = env.dir("pod/bpf");
    bind_mount(&second, &target, true).unwrap();
    env.track_mount(&target);
    assert!(is_mountpoint(&target).unwrap());
    assert!(is_bpffs(&target).unwrap());
    assert_eq!(
        map_info_by_pin(&target.join("counts")).unwrap().name,
        "counts"
    );
    let e = obj.pin_map("counts", &target.join("again")).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EROFS), "{e}");
    drop(obj);

    unmount(&target).unwrap();
    assert!(!is_mountpoint(&target).unwrap());
    unmount(&target).unwrap(); // not mounted: fine
    unmount(&second).unwrap();
    assert!(
        !is_bpffs(&second).unwrap(),
        "unmounting dropped the pins with it"
    );

    // unpin never deletes ordinary files.
    let plain = env.dir("plain").join("file");
    std::fs::write(&plain, b"x").unwrap();
    let e = unpin(&plain).unwrap_err();
    assert!(e.to_string().contains("not on a bpffs"), "{e}");
    assert!(plain.exists());
    unpin(&env.dir("plain").join("missing")).unwrap();
}

static SECTIONS: &[u8] = include_bytes!("../../../tests/bpf/sections.bpf.o");

#[test]
fn libbpf_section_names_load_as_the_table_says() {
    let kinds: Vec<_> = inspect_object(SECTIONS)
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.kind))
        .collect();
    let want = |n: &str, k| (n.to_string(), k);
    assert_eq!(
        kinds,
        [
            want("ksys_getpid", Some(ProgramKind::Kprobe)),
            want("raw_switch", None),
            want("tc_ingress", Some(ProgramKind::Tcx)),
            want("tc_plain", Some(ProgramKind::Tc)),
            want("tcx_egress", Some(ProgramKind::Tcx)),
            want("tp_switch", Some(ProgramKind::Tracepoint)),
            want("usdt_probe", None),
        ]
    );
    let Some(env) = Env::new("libbpf_section_names_load_as_the_table_says") else {
        return;
    };
    // Sections aya 0.14 does not know (tc, tc/ingress, tcx/egress, ksyscall,
    // usdt) load in one go, each program as its section's kernel type.
    let programs = [
        prog("tc_plain", ProgramKind::Tc),
        prog("tc_ingress", ProgramKind::Tcx),
        prog("tcx_egress", ProgramKind::Tcx),
        prog("tp_switch", ProgramKind::Tracepoint),
        prog("ksys_getpid", ProgramKind::Kprobe),
    ];
    let mut obj = load_simple(SECTIONS, &programs).unwrap();
    for p in &programs {
        let id = obj.program_id(&p.name).unwrap();
        let info = program_info(id).unwrap().unwrap();
        assert_eq!(
            info.program_type,
            p.kind.kernel_prog_type(),
            "{}: kernel type",
            p.name
        );
    }
    let id = obj.program_id("tp_switch").unwrap();
    let prog_pin = env.pin_path(&format!("{id}/tp_switch"));
    let map_pin = env.pin_path(&format!("{id}/section_counts"));
    obj.pin_program("tp_switch", &prog_pin).unwrap();
    obj.pin_map("section_counts", &map_pin).unwrap();
    drop(obj);

    // The tracepoint comes from the `tp/` section.
    let spec = AttachSpec::Tracepoint { tracepoint: None }
        .resolve(
            ProgramKind::Tracepoint,
            "tp/sched/sched_switch",
            "tp_switch",
        )
        .unwrap();
    assert_eq!(spec, tracepoint("sched/sched_switch"));
    let link_pin = env.pin_path("links/1");
    let link_id = attach(&prog_pin, ProgramKind::Tracepoint, &spec, &link_pin)
        .unwrap()
        .unwrap();
    let start = read_u64(&map_pin, 3);
    wait_for("tp/ counter to grow", || read_u64(&map_pin, 3) > start);
    unpin(&link_pin).unwrap();
    unpin(&prog_pin).unwrap();
    unpin(&map_pin).unwrap();
    wait_for("link to go", || {
        !live_link_ids().unwrap().contains(&link_id)
    });
    wait_for("program to unload", || program_info(id).unwrap().is_none());

    // Dispatchers reload TC/XDP programs as extensions with aya from the
    // object bytes: the renamed copy parses, the program becomes an extension.
    let renamed = bpfman_kernel::object_for_aya(SECTIONS).unwrap();
    let ebpf = aya::EbpfLoader::new()
        .extension("tc_plain")
        .load(&renamed)
        .unwrap();
    assert!(matches!(
        ebpf.program("tc_plain"),
        Some(aya::programs::Program::Extension(_))
    ));
    assert!(matches!(
        ebpf.program("tc_ingress"),
        Some(aya::programs::Program::SchedClassifier(_))
    ));
    drop(ebpf);

    // Kinds bpfman does not manage: one line naming the section and the supported names.
    for (name, section) in [
        ("raw_switch", "raw_tp/sched_switch"),
        ("usdt_probe", "usdt"),
    ] {
        let e = load_simple(SECTIONS, &[prog(name, ProgramKind::Tracepoint)]).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, KernelError::Unsupported(_)), "{e:?}");
        assert!(msg.contains(&format!("section '{section}'")), "{msg}");
        assert!(
            msg.contains("supported sections: tracepoint/GROUP/NAME, tp/GROUP/NAME"),
            "{msg}"
        );
        assert!(msg.contains("tc, classifier[/...], tc/ingress"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
