//! Store tests against real SQLite files in temporary directories.

use std::path::Path;
use std::sync::Barrier;

use bpfman_core::action::Action;
use bpfman_core::fixtures;
use bpfman_core::spec::{Direction, XdpMode};
use bpfman_core::volume::VolumeMap;
use bpfman_core::{
    AttachSpec, BytecodeSource, KernelProgramInfo, LinkRecord, MapRecord, ProgramKind,
    ProgramRecord, Selector, VolumeRecord,
};
use bpfman_core::{LinkId, MapId, ProgramId};
use bpfman_store::{SCHEMA_VERSION, Store, StoreError};

/// The bpffs directory of the rows below (the default runtime dir's).
const FS: &str = "/run/bpfman/fs";

/// The fixture's program row, of `kind`, labelled `pairs`, recorded at a time
/// of its own (so that a round trip shows the time is kept).
fn program(id: u32, owner: u32, kind: ProgramKind, pairs: &[(&str, &str)]) -> ProgramRecord {
    ProgramRecord {
        kind,
        metadata: fixtures::metadata(pairs),
        created_at: 1_700_000_000 + i64::from(id),
        ..fixtures::program(id, owner, FS)
    }
}

/// The fixture's map row, of kernel map `kernel_id`.
fn map(owner: u32, name: &str, kernel_id: u32) -> MapRecord {
    MapRecord {
        kernel_id: MapId(kernel_id),
        ..fixtures::map_row(owner, name, FS)
    }
}

/// The fixture's link row, made at a time other than 0.
fn link(id: u32, program_id: u32) -> LinkRecord {
    LinkRecord {
        created_at: 1_700_000_500,
        ..fixtures::link(id, program_id, FS)
    }
}

fn volume(id: &str, target: &str) -> VolumeRecord {
    VolumeRecord {
        volume_id: id.into(),
        target_path: target.into(),
        bpffs_path: format!("/run/bpfman/csi/{id}"),
        attributes: [("bpfman.io/application".to_string(), "stats".to_string())].into(),
        maps: vec![VolumeMap {
            name: "stats_map".into(),
            source_pin: "/run/bpfman/fs/7/stats_map".into(),
        }],
        readonly: true,
        fs_group: Some(2000),
        created_at: 1_700_000_900,
    }
}

fn db(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("store.db")
}

fn sel(items: &[&str]) -> Selector {
    Selector::parse(items).unwrap()
}

fn ids(ps: &[ProgramRecord]) -> Vec<u32> {
    ps.iter().map(|p| p.id.get()).collect()
}

/// The error a caller of `write` might use: anything plus store errors.
#[derive(Debug)]
enum TestError {
    Store(StoreError),
    Abort,
}

impl From<StoreError> for TestError {
    fn from(e: StoreError) -> Self {
        TestError::Store(e)
    }
}

#[test]
fn every_record_type_round_trips_through_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = program(
        7,
        7,
        ProgramKind::Uprobe,
        &[("bpfman.io/application", "stats")],
    );
    p.attach_fn = Some("do_unlinkat".into());
    p.source = BytecodeSource::Image {
        url: "quay.io/bpfman-bytecode/go-app-counter:latest".into(),
        digest: Some("sha256:abcd".into()),
    };
    p.global_data = [("sampling".to_string(), vec![0x01, 0x00, 0xff])].into();
    let sharer = program(8, 7, ProgramKind::Xdp, &[]);
    let maps = [map(7, "stats_map", 41), map(7, "config", 42)];
    let mut l1 = link(0, 7);
    let mut l2 = LinkRecord {
        spec: AttachSpec::Uprobe {
            target: "/usr/bin/bash".into(),
            fn_name: Some("readline".into()),
            offset: 16,
            pid: Some(1234),
            retprobe: true,
            container_pid: None,
        },
        kernel_link_id: None,
        metadata: fixtures::metadata(&[("owner", "me")]),
        ..link(0, 7)
    };
    let l3 = LinkRecord {
        spec: AttachSpec::Xdp {
            iface: "eth0".into(),
            priority: 50,
            proceed_on: vec![2, 31],
            netns: Some("/var/run/netns/x".into()),
            mode: XdpMode::Skb,
        },
        ..link(0, 8)
    };
    let l4 = LinkRecord {
        spec: AttachSpec::Tc {
            iface: "eth1".into(),
            direction: Some(Direction::Egress),
            priority: 10,
            proceed_on: vec![],
            netns: None,
        },
        ..link(0, 8)
    };
    let v = volume("vol-1", "/var/lib/kubelet/pods/x/volumes/bpf");

    let (l3, l4) = {
        let mut store = Store::open(&db(&dir)).unwrap();
        store
            .write(|tx| -> Result<_, StoreError> {
                tx.insert_program(&p)?;
                tx.insert_program(&sharer)?;
                for m in &maps {
                    tx.insert_map(m)?;
                }
                l1.id = tx.next_link_id()?;
                l2.id = tx.next_link_id()?;
                let l3 = LinkRecord {
                    id: tx.next_link_id()?,
                    ..l3
                };
                let l4 = LinkRecord {
                    id: tx.next_link_id()?,
                    ..l4
                };
                for l in [&l1, &l2, &l3, &l4] {
                    tx.insert_link(l)?;
                }
                tx.insert_volume(&v)?;
                // Reads inside the transaction see its own writes.
                assert_eq!(tx.get_program(ProgramId(7))?.as_ref(), Some(&p));
                assert_eq!(tx.links_of(ProgramId(7))?.len(), 2);
                Ok((l3, l4))
            })
            .unwrap()
    };

    let store = Store::open(&db(&dir)).unwrap();
    assert_eq!(store.get_program(ProgramId(7)).unwrap(), Some(p.clone()));
    assert_eq!(
        store.get_program(ProgramId(8)).unwrap(),
        Some(sharer.clone())
    );
    assert_eq!(store.get_program(ProgramId(9)).unwrap(), None);
    assert_eq!(store.program_count().unwrap(), 2);
    assert_eq!(
        store.list_programs(None, &Selector::default()).unwrap(),
        vec![p, sharer]
    );
    // maps_of is ordered by name.
    assert_eq!(
        store.maps_of(ProgramId(7)).unwrap(),
        vec![maps[1].clone(), maps[0].clone()]
    );
    assert_eq!(store.all_maps().unwrap().len(), 2);
    assert!(store.maps_of(ProgramId(8)).unwrap().is_empty());
    assert_eq!(
        (l1.id, l2.id, l3.id, l4.id),
        (LinkId(1), LinkId(2), LinkId(3), LinkId(4))
    );
    assert_eq!(store.get_link(LinkId(2)).unwrap(), Some(l2.clone()));
    assert_eq!(store.get_link(LinkId(5)).unwrap(), None);
    assert_eq!(
        store.links_of(ProgramId(7)).unwrap(),
        vec![l1.clone(), l2.clone()]
    );
    assert_eq!(
        store.links_of(ProgramId(8)).unwrap(),
        vec![l3.clone(), l4.clone()]
    );
    assert_eq!(store.list_links().unwrap(), vec![l1, l2, l3, l4]);
    assert_eq!(store.get_volume("vol-1").unwrap(), Some(v.clone()));
    assert_eq!(
        store.volume_by_target(&v.target_path).unwrap(),
        Some(v.clone())
    );
    assert_eq!(store.volume_by_target("/elsewhere").unwrap(), None);
    assert_eq!(store.list_volumes().unwrap(), vec![v]);
}

#[test]
fn open_sets_pragmas_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        store
            .write(|tx| tx.insert_program(&program(1, 1, ProgramKind::Xdp, &[("a", "1")])))
            .unwrap();
    }
    for _ in 0..3 {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.program_count().unwrap(), 1);
        assert_eq!(
            ids(&store.list_programs(None, &sel(&["a=1"])).unwrap()),
            [1]
        );
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: u32 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    let mem = Store::open_in_memory().unwrap();
    assert_eq!(mem.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn a_database_from_a_newer_bpfman_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(Store::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(raw);
    match Store::open(&path) {
        Err(StoreError::Migration(msg)) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("expected a migration error, got {other:?}"),
    }
}

#[test]
fn open_creates_the_file_but_not_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("db").join("store.db");
    match Store::open(&missing) {
        Err(e @ StoreError::Open { .. }) => assert!(e.to_string().contains("store.db"), "{e}"),
        other => panic!("expected an open error, got {other:?}"),
    }
    assert!(!dir.path().join("db").exists());

    let not_a_db = dir.path().join("garbage.db");
    std::fs::write(&not_a_db, vec![0x5a; 4096]).unwrap();
    assert!(matches!(
        Store::open(&not_a_db),
        Err(StoreError::Open { .. })
    ));
}

#[test]
fn an_undecodable_row_is_reported_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut store = Store::open(&path).unwrap();
    store
        .write(|tx| tx.insert_program(&program(42, 42, ProgramKind::Tc, &[])))
        .unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE programs SET source = 'not json' WHERE id = 42", [])
        .unwrap();
    match store.get_program(ProgramId(42)) {
        Err(StoreError::Corrupt(msg)) => {
            assert!(
                msg.contains("programs row 42") && msg.contains("source"),
                "{msg}"
            )
        }
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }
    raw.execute(
        "UPDATE programs SET source = '{\"type\":\"file\",\"path\":\"/x\"}', kind = 'bogus' \
         WHERE id = 42",
        [],
    )
    .unwrap();
    assert!(matches!(
        store.list_programs(None, &Selector::default()),
        Err(StoreError::Corrupt(msg)) if msg.contains("programs row 42") && msg.contains("kind")
    ));
}

#[test]
fn selectors_require_every_pair_and_none_means_all() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.insert_program(&program(
                1,
                1,
                ProgramKind::Xdp,
                &[("app", "a"), ("tier", "x")],
            ))?;
            tx.insert_program(&program(
                2,
                2,
                ProgramKind::Tc,
                &[("app", "a"), ("tier", "y")],
            ))?;
            tx.insert_program(&program(
                3,
                3,
                ProgramKind::Xdp,
                &[("app", "b"), ("tier", "x")],
            ))?;
            tx.insert_program(&program(4, 4, ProgramKind::Xdp, &[]))?;
            tx.insert_program(&program(5, 5, ProgramKind::Xdp, &[("app", "a")]))?;
            Ok(())
        })
        .unwrap();
    let all = Selector::default();
    assert_eq!(
        ids(&store.list_programs(None, &all).unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        ids(&store.list_programs(Some(ProgramKind::Xdp), &all).unwrap()),
        [1, 3, 4, 5]
    );
    assert!(
        store
            .list_programs(Some(ProgramKind::Kprobe), &all)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&store.list_programs(None, &sel(&["app=a"])).unwrap()),
        [1, 2, 5]
    );
    assert_eq!(
        ids(&store
            .list_programs(None, &sel(&["app=a", "tier=x"]))
            .unwrap()),
        [1]
    );
    assert_eq!(
        ids(&store.list_programs(None, &sel(&["tier=x"])).unwrap()),
        [1, 3]
    );
    assert_eq!(
        ids(&store
            .list_programs(Some(ProgramKind::Tc), &sel(&["app=a"]))
            .unwrap()),
        [2]
    );
    // Key present with another value, and a key nobody has.
    assert!(
        store
            .list_programs(None, &sel(&["app=c"]))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_programs(None, &sel(&["app=a", "zone=1"]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn delete_program_takes_metadata_and_links_but_not_maps() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.insert_program(&program(10, 10, ProgramKind::Tracepoint, &[("app", "s")]))?;
            tx.insert_program(&program(11, 10, ProgramKind::Tracepoint, &[("app", "s")]))?;
            tx.insert_map(&map(10, "counts", 5))?;
            let a = tx.next_link_id()?;
            tx.insert_link(&link(a.get(), 10))?;
            let b = tx.next_link_id()?;
            tx.insert_link(&link(b.get(), 11))?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store.programs_using_maps_of(ProgramId(10)).unwrap(),
        [ProgramId(10), ProgramId(11)]
    );

    let deleted = store.write(|tx| tx.delete_program(ProgramId(10))).unwrap();
    assert!(deleted);
    assert!(!store.write(|tx| tx.delete_program(ProgramId(10))).unwrap());
    assert_eq!(store.get_program(ProgramId(10)).unwrap(), None);
    assert!(store.links_of(ProgramId(10)).unwrap().is_empty());
    assert_eq!(store.get_link(LinkId(1)).unwrap(), None);
    assert_eq!(
        ids(&store.list_programs(None, &sel(&["app=s"])).unwrap()),
        [11]
    );
    assert_eq!(store.list_links().unwrap().len(), 1);
    // The sharer still uses directory 10: its map rows stay.
    assert_eq!(
        store.maps_of(ProgramId(10)).unwrap(),
        vec![map(10, "counts", 5)]
    );
    assert_eq!(
        store.programs_using_maps_of(ProgramId(10)).unwrap(),
        [ProgramId(11)]
    );

    assert_eq!(store.write(|tx| tx.delete_maps(ProgramId(10))).unwrap(), 1);
    assert!(store.all_maps().unwrap().is_empty());
    assert!(store.write(|tx| tx.delete_link(LinkId(2))).unwrap());
    assert!(!store.write(|tx| tx.delete_link(LinkId(2))).unwrap());
}

#[test]
fn kernel_facts_round_trip_through_a_reopen_and_go_with_their_program() {
    let dir = tempfile::tempdir().unwrap();
    let facts = |id: u32| KernelProgramInfo {
        id: ProgramId(id),
        name: "count_sched_swi".into(),
        program_type: 5,
        loaded_at: "2026-12-07T01:43:20Z".into(),
        tag: "d4d950593910dd42".into(),
        gpl_compatible: true,
        map_ids: vec![MapId(id + 100), MapId(id + 101)],
        btf_id: 33,
        bytes_xlated: 144,
        jited: true,
        bytes_jited: 91,
        bytes_memlock: 4096,
        verified_insns: 11,
    };
    {
        let mut store = Store::open(&db(&dir)).unwrap();
        store
            .write(|tx| -> Result<(), StoreError> {
                tx.insert_program(&program(7, 7, ProgramKind::Tracepoint, &[]))?;
                tx.insert_program(&program(8, 8, ProgramKind::Tracepoint, &[]))?;
                tx.put_kernel_info(&facts(7))?;
                tx.put_kernel_info(&facts(8))
            })
            .unwrap();
    }
    let mut store = Store::open(&db(&dir)).unwrap();
    let got = store.kernel_infos().unwrap();
    assert_eq!(
        got.into_values().collect::<Vec<_>>(),
        vec![facts(7), facts(8)]
    );
    assert!(store.write(|tx| tx.delete_program(ProgramId(7))).unwrap());
    let left = store.kernel_infos().unwrap();
    assert_eq!(left.keys().copied().collect::<Vec<_>>(), vec![ProgramId(8)]);
}

#[test]
fn link_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let mut store = Store::open(&path).unwrap();
        let got = store
            .write(|tx| -> Result<Vec<u32>, StoreError> {
                tx.insert_program(&program(1, 1, ProgramKind::Tracepoint, &[]))?;
                let mut got = Vec::new();
                for _ in 0..3 {
                    let id = tx.next_link_id()?;
                    tx.insert_link(&link(id.get(), 1))?;
                    got.push(id.get());
                }
                Ok(got)
            })
            .unwrap();
        assert_eq!(got, [1, 2, 3]);
        store.write(|tx| tx.delete_link(LinkId(3))).unwrap();
        assert_eq!(store.write(|tx| tx.next_link_id()).unwrap(), LinkId(4));
        // Deleting the program (and so every link) does not reset the counter.
        store.write(|tx| tx.delete_program(ProgramId(1))).unwrap();
        assert_eq!(store.write(|tx| tx.next_link_id()).unwrap(), LinkId(5));
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.write(|tx| tx.next_link_id()).unwrap(), LinkId(6));
    // A link recorded under an explicit id pushes the counter past it.
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.insert_program(&program(2, 2, ProgramKind::Tracepoint, &[]))?;
            tx.insert_link(&link(100, 2))
        })
        .unwrap();
    assert_eq!(store.write(|tx| tx.next_link_id()).unwrap(), LinkId(101));
}

#[test]
fn peeking_the_next_link_id_takes_nothing() {
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(store.peek_next_link_id().unwrap(), LinkId(1));
    assert_eq!(store.peek_next_link_id().unwrap(), LinkId(1));
    // Recording the peeked id (or one past it) moves the counter beyond it.
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.insert_program(&program(1, 1, ProgramKind::Tracepoint, &[]))?;
            tx.insert_link(&link(3, 1))
        })
        .unwrap();
    assert_eq!(store.peek_next_link_id().unwrap(), LinkId(4));
    assert_eq!(store.write(|tx| tx.next_link_id()).unwrap(), LinkId(4));
    assert_eq!(store.peek_next_link_id().unwrap(), LinkId(5));
}

#[test]
fn write_rolls_back_everything_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let mut store = Store::open(&path).unwrap();
    let res: Result<(), TestError> = store.write(|tx| {
        tx.insert_program(&program(1, 1, ProgramKind::Xdp, &[("app", "x")]))?;
        tx.insert_map(&map(1, "m", 9))?;
        let id = tx.next_link_id()?;
        tx.insert_link(&link(id.get(), 1))?;
        tx.insert_volume(&volume("v", "/t"))?;
        assert_eq!(tx.program_count()?, 1);
        Err(TestError::Abort)
    });
    assert!(matches!(res, Err(TestError::Abort)));

    // A store error raised inside also rolls back what came before it.
    let res: Result<(), TestError> = store.write(|tx| {
        tx.insert_program(&program(2, 2, ProgramKind::Xdp, &[]))?;
        tx.insert_program(&program(2, 2, ProgramKind::Xdp, &[]))?;
        Ok(())
    });
    assert!(matches!(
        res,
        Err(TestError::Store(StoreError::AlreadyExists(_)))
    ));
    drop(store);

    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.program_count().unwrap(), 0);
    assert!(store.all_maps().unwrap().is_empty());
    assert!(store.list_links().unwrap().is_empty());
    assert!(store.list_volumes().unwrap().is_empty());
    assert!(
        store
            .list_programs(None, &sel(&["app=x"]))
            .unwrap()
            .is_empty()
    );
    // The rolled-back allocation was never handed out, so 1 is still next.
    assert_eq!(store.write(|tx| tx.next_link_id()).unwrap(), LinkId(1));
}

#[test]
fn duplicates_and_dangling_links_are_refused() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.insert_program(&program(1, 1, ProgramKind::Xdp, &[("k", "original")]))?;
            tx.insert_map(&map(1, "m", 9))?;
            tx.insert_link(&link(1, 1))?;
            tx.insert_volume(&volume("v1", "/target/1"))
        })
        .unwrap();

    let dup_program = program(1, 1, ProgramKind::Tc, &[("k", "replacement")]);
    match store.write(|tx| tx.insert_program(&dup_program)) {
        Err(StoreError::AlreadyExists(msg)) => assert!(msg.contains("program 1"), "{msg}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let mut other_map = map(1, "m", 77);
    other_map.pin_path = "/elsewhere".into();
    assert!(matches!(
        store.write(|tx| tx.insert_map(&other_map)),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.write(|tx| tx.insert_link(&link(1, 1))),
        Err(StoreError::AlreadyExists(_))
    ));
    match store.write(|tx| tx.insert_link(&link(2, 99))) {
        Err(StoreError::NotFound(msg)) => assert!(msg.contains("program 99"), "{msg}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.write(|tx| tx.insert_volume(&volume("v1", "/target/2"))) {
        Err(StoreError::AlreadyExists(msg)) => assert!(msg.contains("v1"), "{msg}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    match store.write(|tx| tx.insert_volume(&volume("v2", "/target/1"))) {
        Err(StoreError::AlreadyExists(msg)) => assert!(msg.contains("/target/1"), "{msg}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    // Nothing was overwritten.
    let p = store.get_program(ProgramId(1)).unwrap().unwrap();
    assert_eq!(p.kind, ProgramKind::Xdp);
    assert_eq!(p.metadata, fixtures::metadata(&[("k", "original")]));
    assert_eq!(store.maps_of(ProgramId(1)).unwrap(), vec![map(1, "m", 9)]);
    assert_eq!(
        store.list_volumes().unwrap(),
        vec![volume("v1", "/target/1")]
    );
    assert_eq!(store.list_links().unwrap().len(), 1);

    // Once deleted, the ids are free again (program ids are the kernel's).
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.delete_volume("v1")?;
            tx.insert_volume(&volume("v2", "/target/1"))?;
            tx.delete_program(ProgramId(1))?;
            tx.insert_program(&dup_program)
        })
        .unwrap();
    assert_eq!(store.get_program(ProgramId(1)).unwrap(), Some(dup_program));
}

#[test]
fn gc_actions_apply_to_the_store_and_ignore_the_filesystem() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.insert_program(&program(1, 1, ProgramKind::Xdp, &[("a", "1")]))?;
            tx.insert_program(&program(2, 2, ProgramKind::Xdp, &[]))?;
            tx.insert_map(&map(1, "m", 9))?;
            tx.insert_map(&map(2, "m", 10))?;
            tx.insert_link(&link(1, 2))?;
            tx.insert_link(&link(2, 2))?;
            tx.insert_volume(&volume("v", "/t"))
        })
        .unwrap();
    let plan = [
        Action::Unpin {
            path: "/run/bpfman/fs/1/p".into(),
        },
        Action::RemoveTree {
            path: "/run/bpfman/fs/1".into(),
        },
        Action::RemoveDir {
            path: "/run/bpfman/fs/1".into(),
        },
        Action::DeleteProgram { id: ProgramId(1) },
        Action::DeleteMaps {
            owner_id: ProgramId(1),
        },
        Action::DeleteLink { id: LinkId(2) },
        Action::DeleteVolume {
            volume_id: "v".into(),
        },
        // Already gone: converges instead of failing.
        Action::DeleteProgram { id: ProgramId(1) },
        Action::DeleteLink { id: LinkId(77) },
    ];
    store
        .write(|tx| plan.iter().try_for_each(|a| tx.apply(a)))
        .unwrap();
    assert_eq!(
        ids(&store.list_programs(None, &Selector::default()).unwrap()),
        [2]
    );
    assert_eq!(store.all_maps().unwrap(), vec![map(2, "m", 10)]);
    assert_eq!(store.list_links().unwrap(), vec![link(1, 2)]);
    assert!(store.list_volumes().unwrap().is_empty());
}

/// Two connections in two threads write at once: the busy timeout makes the
/// second writer wait for the first, and every row lands.
#[test]
fn concurrent_writers_on_one_file_lose_nothing() {
    const PER_THREAD: u32 = 150;
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let barrier = Barrier::new(2);

    let link_ids: Vec<Vec<u32>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u32)
            .map(|t| {
                let (path, barrier) = (&path, &barrier);
                s.spawn(move || writer(path, barrier, t, PER_THREAD))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let store = Store::open(&path).unwrap();
    assert_eq!(store.program_count().unwrap(), u64::from(2 * PER_THREAD));
    let mut all: Vec<u32> = link_ids.concat();
    all.sort_unstable();
    let expected: Vec<u32> = (1..=2 * PER_THREAD).collect();
    assert_eq!(all, expected, "link ids must be unique and gap-free");
    assert_eq!(store.list_links().unwrap().len(), (2 * PER_THREAD) as usize);
    for t in 0..2 {
        let tagged = store
            .list_programs(None, &sel(&[&format!("thread={t}")]))
            .unwrap();
        assert_eq!(tagged.len(), PER_THREAD as usize);
    }
}

fn writer(path: &Path, barrier: &Barrier, thread: u32, count: u32) -> Vec<u32> {
    barrier.wait();
    // Both threads open (and so check the schema) at the same moment too.
    let mut store = Store::open(path).unwrap();
    let tag = thread.to_string();
    (0..count)
        .map(|i| {
            let id = thread * 100_000 + i + 1;
            store
                .write(|tx| -> Result<u32, StoreError> {
                    tx.insert_program(&program(
                        id,
                        id,
                        ProgramKind::Tracepoint,
                        &[("thread", &tag)],
                    ))?;
                    let l = tx.next_link_id()?;
                    tx.insert_link(&link(l.get(), id))?;
                    Ok(l.get())
                })
                .unwrap()
        })
        .collect()
}

#[test]
fn two_thousand_programs_select_correctly() {
    const N: u32 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&db(&dir)).unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            for i in 1..=N {
                let app = format!("app{}", i % 10);
                let tier = format!("t{}", i % 3);
                let kind = if i % 2 == 0 {
                    ProgramKind::Xdp
                } else {
                    ProgramKind::Tc
                };
                tx.insert_program(&program(
                    i,
                    i,
                    kind,
                    &[("app", &app), ("tier", &tier), ("id", &i.to_string())],
                ))?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(store.program_count().unwrap(), u64::from(N));

    let got = store
        .list_programs(None, &sel(&["app=app3", "tier=t1"]))
        .unwrap();
    let want: Vec<u32> = (1..=N).filter(|i| i % 10 == 3 && i % 3 == 1).collect();
    assert!(!want.is_empty());
    assert_eq!(ids(&got), want);
    assert!(got.iter().all(|p| p.metadata["app"] == "app3"));

    let got = store
        .list_programs(Some(ProgramKind::Xdp), &sel(&["tier=t2"]))
        .unwrap();
    let want: Vec<u32> = (1..=N).filter(|i| i % 2 == 0 && i % 3 == 2).collect();
    assert_eq!(ids(&got), want);

    let one = store.list_programs(None, &sel(&["id=1234"])).unwrap();
    assert_eq!(ids(&one), [1234]);
    assert_eq!(
        store
            .list_programs(None, &Selector::default())
            .unwrap()
            .len(),
        N as usize
    );
}

/// The daemon drops the store's caches when idle: everything committed stays
/// readable and the store stays writable afterwards.
#[test]
fn releasing_memory_keeps_the_store_usable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&db(&dir)).unwrap();
    let insert = |store: &mut Store, range: std::ops::RangeInclusive<u32>| {
        store
            .write(|tx| -> Result<(), StoreError> {
                for i in range {
                    tx.insert_program(&program(i, i, ProgramKind::Xdp, &[("app", "a")]))?;
                }
                Ok(())
            })
            .unwrap();
    };
    insert(&mut store, 1..=300);
    let before = store.list_programs(None, &sel(&["app=a"])).unwrap();
    store.release_memory().unwrap();
    assert_eq!(store.list_programs(None, &sel(&["app=a"])).unwrap(), before);
    insert(&mut store, 301..=310);
    store.release_memory().unwrap();
    let after = store.list_programs(None, &sel(&["app=a"])).unwrap();
    assert_eq!(ids(&after), (1..=310).collect::<Vec<_>>());
}

/// Several processes (here threads) may open a fresh file at the same moment,
/// e.g. the daemon and a CLI: each must end up with a migrated store.
#[test]
fn simultaneous_first_opens_all_succeed() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let barrier = Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (path, barrier) = (&path, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let store = Store::open(path).unwrap();
                    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
                });
            }
        });
    }
}

#[test]
fn net_hooks_and_objects_follow_their_links_and_programs() {
    use bpfman_core::dispatcher::{HookKey, HookKind};
    use bpfman_core::model::NetLinkRecord;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&db(&dir)).unwrap();
    let hook = HookKey {
        kind: HookKind::Xdp,
        netns_ino: 4026531840,
        ifindex: 7,
    };
    let other = HookKey {
        kind: HookKind::TcIngress,
        ..hook
    };
    s.write(|tx| -> Result<(), StoreError> {
        for id in [1, 2] {
            tx.insert_program(&program(id, id, ProgramKind::Xdp, &[]))?;
            tx.put_object(ProgramId(id), "d1", b"ELF-bytes")?;
        }
        for (l, p, h) in [(10, 1, hook), (11, 2, hook), (12, 2, other)] {
            tx.insert_link(&link(l, p))?;
            tx.insert_net_link(&NetLinkRecord {
                link_id: LinkId(l),
                hook: h,
                iface: "veth0".into(),
                netns: Some("/run/netns/a".into()),
            })?;
        }
        Ok(())
    })
    .unwrap();
    let on: Vec<u32> = s
        .net_links_on(&hook)
        .unwrap()
        .iter()
        .map(|n| n.link_id.get())
        .collect();
    assert_eq!(on, [10, 11]);
    assert_eq!(s.net_link(LinkId(12)).unwrap().unwrap().hook, other);
    assert_eq!(
        s.object_of(ProgramId(1)).unwrap().as_deref(),
        Some(&b"ELF-bytes"[..])
    );
    // A deleted link takes its hook row; a deleted program its links' rows, and
    // the object goes with its last user.
    s.write(|tx| tx.delete_link(LinkId(10))).unwrap();
    assert!(s.net_link(LinkId(10)).unwrap().is_none());
    s.write(|tx| tx.delete_program(ProgramId(2))).unwrap();
    assert!(s.list_net_links().unwrap().is_empty());
    assert!(s.object_of(ProgramId(1)).unwrap().is_some());
    s.write(|tx| tx.delete_program(ProgramId(1))).unwrap();
    assert!(s.object_of(ProgramId(1)).unwrap().is_none());
    // The hook and object tables came with schema version 2.
    assert!(s.schema_version().unwrap() >= 2);
}

#[test]
fn an_unusable_wal_index_is_explained() {
    // SQLite cannot create its shared-memory WAL index next to the file (as
    // on file systems without shared mmap or locks): the error says what to
    // do, not just "readonly database" or "disk I/O error".
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("store.db-shm")).unwrap();
    let e = Store::open(&dir.path().join("store.db")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(msg.contains("store.db"), "{msg}");
    assert!(msg.contains("WAL index"), "{msg}");
    assert!(msg.contains("--runtime-dir"), "{msg}");
}

#[test]
fn open_failures_are_classified_by_sqlite_code() {
    use bpfman_store::OpenFailure;
    use rusqlite::ffi;
    let err = |code: i32| rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some("x".into()));
    for (code, want) in [
        (ffi::SQLITE_IOERR_SHMMAP, OpenFailure::Locking),
        (ffi::SQLITE_IOERR_SHMOPEN, OpenFailure::Locking),
        (ffi::SQLITE_IOERR_LOCK, OpenFailure::Locking),
        (ffi::SQLITE_READONLY_CANTINIT, OpenFailure::Locking),
        (ffi::SQLITE_PROTOCOL, OpenFailure::Locking),
        (ffi::SQLITE_CANTOPEN, OpenFailure::CantOpen),
        (ffi::SQLITE_NOTADB, OpenFailure::NotADatabase),
        (ffi::SQLITE_CORRUPT, OpenFailure::Corrupt),
        (ffi::SQLITE_FULL, OpenFailure::Full),
        (ffi::SQLITE_IOERR_WRITE, OpenFailure::Io),
        (ffi::SQLITE_READONLY, OpenFailure::ReadOnly),
    ] {
        assert_eq!(OpenFailure::of(&err(code)), want, "code {code}");
    }
}

/// The WAL outlives each connection (no checkpoint on close) but stays
/// bounded: commits checkpoint it past WAL_CHECKPOINT_BYTES, also when
/// each commit comes from a connection of its own (one CLI process each).
#[test]
fn the_wal_stays_bounded_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let wal = path.with_extension("db-wal");
    for i in 1..=400u32 {
        let mut s = Store::open(&path).unwrap();
        s.write(|tx| tx.insert_program(&program(i, i, ProgramKind::Tracepoint, &[("a", "b")])))
            .unwrap();
        drop(s);
        assert!(wal.exists(), "the WAL is kept between connections");
    }
    let limit = bpfman_store::WAL_CHECKPOINT_BYTES + 64 * 4096;
    let len = std::fs::metadata(&wal).unwrap().len();
    assert!(len <= limit, "WAL is {len} bytes, over {limit}");
    let s = Store::open(&path).unwrap();
    assert_eq!(
        s.list_programs(None, &Selector::default()).unwrap().len(),
        400
    );
}
