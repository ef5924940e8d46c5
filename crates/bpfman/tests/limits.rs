//! Every bound on outside input, just over the edge, through the real CLI
//! (embedded and through a daemon) and the real gRPC socket: a clear error
//! naming the bound, and the runtime tree byte-for-byte as before. The pure
//! bounds (metadata key/value sizes, global data, programs per load) are also
//! unit-tested in bpfman-core; tar entries in bpfman-image.

mod common;

use std::collections::BTreeMap;

use bpfman_api::client::{MAX_REQUEST_BYTES, connect_uds};
use bpfman_api::v1;
use bpfman_api::v1::bpfman_client::BpfmanClient;
use bpfman_api::v1::bytecode_location::Location;
use common::{Env, Mode, assert_same_tree, obj, root_or_skip, tree};

const STATS: &str = "examples/stats/stats.bpf.o";
/// bpfman_core::limits::MAX_OBJECT_BYTES.
const MAX_OBJECT_BYTES: u64 = 64 << 20;

fn over_the_edge(mode: Mode) {
    let env = Env::new(mode);
    // Something loaded already, so "unchanged" covers a live tree.
    let ids = env.load(&[&obj(STATS), "count_sched_switch"]);
    let before = tree(env.runtime());

    let big = env.runtime().join("big.o");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_OBJECT_BYTES + 1).unwrap();
    drop(f);
    let big_s = big.to_string_lossy().into_owned();
    let md: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
    let mut md_args = vec!["load", "file"];
    for m in &md {
        md_args.extend(["-m", m.as_str()]);
    }
    let stats = obj(STATS);
    md_args.push(&stats);
    let progs: Vec<String> = (0..257).map(|i| format!("p{i}")).collect();
    let mut prog_args = vec!["load", "file", stats.as_str()];
    prog_args.extend(progs.iter().map(String::as_str));
    let long_value = format!("k={}", "v".repeat(1025));
    let long_key = format!("{}=v", "k".repeat(254));

    // Found by the ELF fuzz harness: aya-obj panicked on this object's BTF.
    let aya_panic = obj("tests/fuzz-corpus/elf-regressions/aya-obj-btf-panic.bpf.o");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["load", "file", &aya_panic],
            "aya cannot read this object".into(),
        ),
        (
            vec!["load", "file", &big_s],
            format!("is larger than {MAX_OBJECT_BYTES} bytes"),
        ),
        (
            vec!["load", "file", "/dev/zero"],
            format!("/dev/zero is larger than {MAX_OBJECT_BYTES} bytes"),
        ),
        (md_args.clone(), "65 metadata entries: at most 64".into()),
        (prog_args.clone(), "257 programs named: at most 256".into()),
        (
            vec!["load", "file", "-m", &long_value, &stats],
            "longer than 1024 bytes".into(),
        ),
        (
            vec!["load", "file", "-m", &long_key, &stats],
            "longer than 253 bytes".into(),
        ),
    ];
    for (args, needle) in &cases {
        let line = env.fails(args);
        assert!(line.contains(needle.as_str()), "{args:?}: {line}");
        let mut after = tree(env.runtime());
        after.retain(|k, _| !k.ends_with("big.o"));
        let mut b = before.clone();
        b.retain(|k, _| !k.ends_with("big.o"));
        assert_same_tree(&format!("{:?}", &args[..3]), &b, &after);
    }
    std::fs::remove_file(&big).unwrap();
    assert!(env.run(&["unload", &ids[0].to_string()]).ok);
}

#[test]
fn limits_embedded() {
    if root_or_skip("limits_embedded") {
        over_the_edge(Mode::Embedded);
    }
}

#[test]
fn limits_remote() {
    if root_or_skip("limits_remote") {
        over_the_edge(Mode::Remote);
    }
}

/// A gRPC request one byte over the daemon's bound is refused before it is
/// decoded; one well under it is served (and refused for its content).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_request_size_limit() {
    if !root_or_skip("grpc_request_size_limit") {
        return;
    }
    let env = Env::new(Mode::Remote);
    let before = tree(env.runtime());
    let ch = connect_uds(&env.socket()).await.unwrap();
    let mut c = BpfmanClient::new(ch);
    let req = |data: usize| v1::LoadRequest {
        bytecode: Some(v1::BytecodeLocation {
            location: Some(Location::File(obj(STATS))),
        }),
        metadata: BTreeMap::new(),
        global_data: BTreeMap::from([("big".to_string(), vec![7u8; data])]),
        uuid: None,
        map_owner_id: None,
        info: vec![v1::LoadInfo {
            name: "count_sched_switch".into(),
            program_type: v1::BpfmanProgramType::Tracepoint as i32,
            info: None,
        }],
    };
    // The encoded message is the data plus a few dozen bytes of framing.
    let s = c.load(req(MAX_REQUEST_BYTES)).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::OutOfRange, "{s:?}");
    assert!(s.message().contains("message length too large"), "{s:?}");
    // Under the gRPC bound but over the global-data bound: INVALID_ARGUMENT.
    let s = c.load(req((1 << 20) + 1)).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("at most 1048576"), "{s:?}");
    assert_same_tree("oversized gRPC load", &before, &tree(env.runtime()));
}
