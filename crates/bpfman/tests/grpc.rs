//! The daemon over its Unix socket, driven the way bpfman-operator's agent
//! drives upstream bpfman: the generated `bpfman.v1` client, the same
//! requests, the same order. Plus error codes, health, restart, socket
//! hygiene and many concurrent clients.
//!
//! Each test runs `bpfman serve` as a child on its own runtime dir (and so its
//! own bpffs) and socket under /tmp. Needs root; otherwise skipped with a
//! printed reason.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bpfman_api::client::connect_uds;
use bpfman_api::ext::bpfman_ext_client::BpfmanExtClient;
use bpfman_api::v1;
use bpfman_api::v1::attach_info::Info as AttachKind;
use bpfman_api::v1::bpfman_client::BpfmanClient;
use bpfman_api::v1::bytecode_location::Location;
use bpfman_testkit::{Daemon, DaemonBuilder, RuntimeDir, root_or_skip};
use tonic::Code;
use tonic::transport::Channel;

const APP_KEY: &str = "bpfman.io/application";
const NAME_KEY: &str = "bpfman.io/ProgramName";
/// A program id no test run will meet (kernel ids count up from 1).
const NO_SUCH_ID: u32 = 0x7fff_fff0;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bpfman")
}

fn repo_file(rel: &str) -> String {
    bpfman_testkit::repo_file(rel)
        .to_string_lossy()
        .into_owned()
}

fn stats_obj() -> String {
    repo_file("examples/stats/stats.bpf.o")
}

/// One private runtime dir and socket, and the daemon serving them. Drop
/// kills the daemon and detaches the runtime's bpffs, so nothing leaks even
/// when a test panics.
struct Env {
    daemon: Option<Daemon>,
    dir: RuntimeDir,
}

impl Env {
    fn new() -> Env {
        let dir = RuntimeDir::new("bpfman-grpc-");
        Env { daemon: None, dir }
    }

    fn runtime(&self) -> &Path {
        self.dir.path()
    }

    fn fs(&self) -> PathBuf {
        self.runtime().join("fs")
    }

    fn socket(&self) -> PathBuf {
        self.runtime().join("sock/bpfman.sock")
    }

    fn log(&self) -> PathBuf {
        self.runtime().join("daemon.log")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn daemon(&self) -> DaemonBuilder {
        Daemon::builder(Path::new(bin()), self.runtime(), &self.socket())
            .env("BPFMAN_LOG", "info")
            .log(&self.log())
    }

    fn serve_command(&self) -> Command {
        self.daemon().into_command()
    }

    /// Starts the daemon and waits until it is healthy.
    async fn start(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        self.daemon = Some(self.daemon().start());
    }

    async fn serving(&self) -> bool {
        let Ok(ch) = connect_uds(&self.socket()).await else {
            return false;
        };
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
        let req = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        matches!(h.check(req).await, Ok(r)
            if r.get_ref().status() == tonic_health::pb::health_check_response::ServingStatus::Serving)
    }

    /// SIGTERM, then waits for the daemon to exit; returns whether it exited 0.
    fn stop(&mut self) -> bool {
        self.daemon.take().expect("daemon running").stop()
    }

    async fn channel(&self) -> Channel {
        connect_uds(&self.socket()).await.unwrap()
    }

    async fn client(&self) -> BpfmanClient<Channel> {
        BpfmanClient::new(self.channel().await)
    }

    /// Runs the CLI against this runtime (remote when `socket` is set).
    fn cli(&self, remote: bool, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(bin());
        c.arg("--runtime-dir").arg(self.runtime());
        if remote {
            c.arg("--socket").arg(self.socket());
        }
        c.args(args)
            .env_remove("BPFMAN_SOCKET")
            .env_remove("BPFMAN_FAULT")
            .output()
            .unwrap()
    }

    /// Numbered program directories and link pins under `<fs>`.
    fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.fs()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".debug") {
                continue; // the kernel's own bpffs preload iterators
            }
            if name == "links" {
                for l in std::fs::read_dir(e.path()).unwrap().flatten() {
                    out.push(format!("links/{}", l.file_name().to_string_lossy()));
                }
            } else {
                out.push(name);
            }
        }
        out.sort();
        out
    }
}

/// The stats program's load request, as the operator's agent builds it.
fn stats_load(app: &str) -> v1::LoadRequest {
    v1::LoadRequest {
        bytecode: Some(v1::BytecodeLocation {
            location: Some(Location::File(stats_obj())),
        }),
        metadata: BTreeMap::from([
            (APP_KEY.to_string(), app.to_string()),
            (NAME_KEY.to_string(), format!("{app}-prog")),
        ]),
        global_data: BTreeMap::new(),
        uuid: Some("3f6b2d1c-0000-4000-8000-000000000001".into()),
        map_owner_id: None,
        info: vec![v1::LoadInfo {
            name: "count_sched_switch".into(),
            program_type: v1::BpfmanProgramType::Tracepoint as i32,
            info: None,
        }],
    }
}

fn tracepoint_attach(id: u32, tp: &str) -> v1::AttachRequest {
    v1::AttachRequest {
        id,
        attach: Some(v1::AttachInfo {
            info: Some(AttachKind::TracepointAttachInfo(v1::TracepointAttachInfo {
                tracepoint: tp.into(),
                metadata: BTreeMap::new(),
            })),
        }),
    }
}

fn only_ours(md: &[(&str, &str)]) -> v1::ListRequest {
    v1::ListRequest {
        program_type: None,
        bpfman_programs_only: Some(true),
        match_metadata: md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

async fn load_one(c: &mut BpfmanClient<Channel>, app: &str) -> u32 {
    let r = c.load(stats_load(app)).await.unwrap().into_inner();
    assert_eq!(r.programs.len(), 1);
    r.programs[0].kernel_info.as_ref().unwrap().id
}

/// Key 0 of the array map pinned at `pin`, through BPF_OBJ_GET and
/// BPF_MAP_LOOKUP_ELEM only (no help from bpfman).
fn read_counter(pin: &Path) -> u64 {
    bpfman_testkit::read_u64(pin, 0)
}

/// Waits (bounded) until the counter moves past `from`; context switches
/// happen all the time, and our own sleeps cause some.
async fn counter_grows(pin: &Path, from: u64) -> u64 {
    for _ in 0..2000 {
        let v = read_counter(pin);
        if v > from {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("counter at {} stayed at {from}", pin.display());
}

fn code_of<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => (s.code(), s.message().to_string()),
    }
}

// ---- tests ----

/// Load, Attach, List, Get, Detach, Unload as bpfman-operator's agent does,
/// and the program really runs in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_agent_flow() {
    if !root_or_skip("operator_agent_flow") {
        return;
    }
    let mut env = Env::new();
    env.start().await;
    let mut c = env.client().await;

    let loaded = c.load(stats_load("stats")).await.unwrap().into_inner();
    assert_eq!(loaded.programs.len(), 1);
    let p = &loaded.programs[0];
    let k = p.kernel_info.as_ref().unwrap();
    let info = p.info.as_ref().unwrap();
    let id = k.id;
    assert_eq!(info.name, "count_sched_switch");
    assert_eq!(k.program_type, 5, "tracepoint in bpf_prog_type numbering");
    assert_eq!(info.metadata[APP_KEY], "stats");
    assert_eq!(info.metadata[NAME_KEY], "stats-prog");
    assert_eq!(
        info.bytecode.as_ref().unwrap().location,
        Some(Location::File(stats_obj()))
    );
    let map_pin = env.fs().join(id.to_string()).join("stats_map");
    assert!(map_pin.exists(), "{} missing", map_pin.display());
    assert_eq!(
        info.map_pin_path,
        env.fs().join(id.to_string()).to_string_lossy()
    );

    let link_id = c
        .attach(tracepoint_attach(id, "sched/sched_switch"))
        .await
        .unwrap()
        .into_inner()
        .link_id;
    let v0 = read_counter(&map_pin);
    counter_grows(&map_pin, v0).await;

    // List: the agent's selector finds exactly our program, managed only.
    let listed = c
        .list(only_ours(&[(APP_KEY, "stats")]))
        .await
        .unwrap()
        .into_inner()
        .results;
    let ids: Vec<u32> = listed
        .iter()
        .map(|r| r.kernel_info.as_ref().unwrap().id)
        .collect();
    assert_eq!(ids, vec![id]);
    assert!(listed[0].info.is_some());
    let none = c
        .list(only_ours(&[(APP_KEY, "other")]))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(none.is_empty(), "selector matched {none:?}");
    // Kernel type filter: 5 keeps it, 6 (xdp) does not.
    let mut by_type = only_ours(&[]);
    by_type.program_type = Some(5);
    assert_eq!(
        c.list(by_type.clone())
            .await
            .unwrap()
            .into_inner()
            .results
            .len(),
        1
    );
    by_type.program_type = Some(6);
    assert!(
        c.list(by_type)
            .await
            .unwrap()
            .into_inner()
            .results
            .is_empty()
    );
    // Without bpfman_programs_only, programs bpfman did not load show up
    // too, without info; ours is there with info.
    let all = c
        .list(v1::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .results;
    let ours = all
        .iter()
        .find(|r| r.kernel_info.as_ref().unwrap().id == id)
        .expect("our program in the full list");
    assert!(ours.info.is_some());
    assert!(all.iter().filter(|r| r.info.is_some()).count() == 1);

    // Get: links and metadata.
    let got = c.get(v1::GetRequest { id }).await.unwrap().into_inner();
    let gi = got.info.unwrap();
    assert_eq!(gi.links, vec![link_id]);
    assert_eq!(gi.metadata[APP_KEY], "stats");
    assert_eq!(got.kernel_info.unwrap().id, id);

    // Detach: the link goes, the program stays and stops counting.
    c.detach(v1::DetachRequest { link_id }).await.unwrap();
    let gi = c
        .get(v1::GetRequest { id })
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert!(gi.links.is_empty());
    assert_eq!(
        code_of(c.detach(v1::DetachRequest { link_id }).await).0,
        Code::NotFound
    );

    // Unload: program, pins and rows go.
    c.unload(v1::UnloadRequest { id }).await.unwrap();
    assert!(!map_pin.exists());
    assert_eq!(
        code_of(c.get(v1::GetRequest { id }).await).0,
        Code::NotFound
    );
    assert!(
        c.list(only_ours(&[]))
            .await
            .unwrap()
            .into_inner()
            .results
            .is_empty()
    );
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert!(env.stop(), "daemon exit status:\n{}", env.log_text());
}

/// Each bad input gets its status code and a message naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes() {
    if !root_or_skip("error_codes") {
        return;
    }
    let mut env = Env::new();
    env.start().await;
    let mut c = env.client().await;

    // No bytecode.
    let mut r = stats_load("bad");
    r.bytecode = None;
    let (code, msg) = code_of(c.load(r).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.contains("bytecode"), "{msg}");

    // Unknown program type.
    let mut r = stats_load("bad");
    r.info[0].program_type = 99;
    let (code, msg) = code_of(c.load(r).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.contains("99"), "{msg}");

    // A program the object does not have.
    let mut r = stats_load("bad");
    r.info[0].name = "no_such_program".into();
    let (code, msg) = code_of(c.load(r).await);
    assert_eq!(code, Code::NotFound, "{msg}");
    assert!(msg.contains("no_such_program"), "{msg}");

    // A malformed image reference (refused before any cache or network
    // access; images end to end are in tests/image.rs), and a bad pull policy.
    let image = v1::BytecodeImage {
        url: "quay.io/bpfman-bytecode/Not A Reference".into(),
        image_pull_policy: 1,
        username: None,
        password: None,
    };
    let mut r = stats_load("bad");
    r.bytecode = Some(v1::BytecodeLocation {
        location: Some(Location::Image(image.clone())),
    });
    let (code, msg) = code_of(c.load(r).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.contains("invalid image reference"), "{msg}");
    let (code, msg) = code_of(
        c.pull_bytecode(v1::PullBytecodeRequest {
            image: Some(image.clone()),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    let (code, msg) = code_of(
        c.pull_bytecode(v1::PullBytecodeRequest {
            image: Some(v1::BytecodeImage {
                image_pull_policy: 7,
                ..image
            }),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.contains("image_pull_policy 7"), "{msg}");

    // Unknown ids.
    for (what, r) in [
        (
            "get",
            code_of(c.get(v1::GetRequest { id: NO_SUCH_ID }).await),
        ),
        (
            "unload",
            code_of(c.unload(v1::UnloadRequest { id: NO_SUCH_ID }).await),
        ),
        (
            "detach",
            code_of(
                c.detach(v1::DetachRequest {
                    link_id: NO_SUCH_ID,
                })
                .await,
            ),
        ),
    ] {
        assert_eq!(r.0, Code::NotFound, "{what}: {}", r.1);
        assert!(r.1.contains(&NO_SUCH_ID.to_string()), "{what}: {}", r.1);
    }

    // A tracepoint attach on a uprobe program.
    let uprobe = v1::LoadRequest {
        bytecode: Some(v1::BytecodeLocation {
            location: Some(Location::File(repo_file("tests/bpf/uprobe.bpf.o"))),
        }),
        info: vec![v1::LoadInfo {
            name: "count_calls".into(),
            program_type: v1::BpfmanProgramType::Uprobe as i32,
            info: None,
        }],
        ..Default::default()
    };
    let up = c.load(uprobe).await.unwrap().into_inner().programs[0]
        .kernel_info
        .as_ref()
        .unwrap()
        .id;
    let (code, msg) = code_of(c.attach(tracepoint_attach(up, "sched/sched_switch")).await);
    assert_eq!(code, Code::FailedPrecondition, "{msg}");

    // A tracepoint that does not exist.
    let id = load_one(&mut c, "bad").await;
    let (code, msg) = code_of(
        c.attach(tracepoint_attach(id, "sched/no_such_tracepoint"))
            .await,
    );
    assert_eq!(code, Code::NotFound, "{msg}");
    assert!(msg.contains("no_such_tracepoint"), "{msg}");
    // An attach with no attach info at all.
    let (code, msg) = code_of(c.attach(v1::AttachRequest { id, attach: None }).await);
    assert_eq!(code, Code::InvalidArgument, "{msg}");

    // The CLI prints the same error line embedded and remote.
    let missing = NO_SUCH_ID.to_string();
    let embedded = env.cli(false, &["get", &missing]);
    let remote = env.cli(true, &["get", &missing]);
    assert!(!embedded.status.success() && !remote.status.success());
    assert_eq!(embedded.status.code(), remote.status.code());
    assert_eq!(
        String::from_utf8_lossy(&embedded.stderr),
        String::from_utf8_lossy(&remote.stderr)
    );
    // And the same output for a successful command.
    let e = env.cli(false, &["get", &id.to_string()]);
    let r = env.cli(true, &["get", &id.to_string()]);
    assert!(e.status.success() && r.status.success());
    assert_eq!(
        String::from_utf8_lossy(&e.stdout),
        String::from_utf8_lossy(&r.stdout)
    );

    // Nothing half-done was left by the failures.
    for pid in [up, id] {
        c.unload(v1::UnloadRequest { id: pid }).await.unwrap();
    }
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert!(env.stop(), "daemon exit status:\n{}", env.log_text());
}

/// Health says SERVING (over gRPC and through `bpfman health`), the socket is
/// 0660, and a second daemon on the same live socket refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_socket_and_second_daemon() {
    if !root_or_skip("health_socket_and_second_daemon") {
        return;
    }
    let mut env = Env::new();
    env.start().await;
    assert!(env.serving().await);

    let mode = std::fs::metadata(env.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");

    let h = Command::new(bin())
        .arg("health")
        .arg("--listen")
        .arg(env.socket())
        .output()
        .unwrap();
    assert!(h.status.success(), "{}", String::from_utf8_lossy(&h.stderr));
    assert_eq!(String::from_utf8_lossy(&h.stdout), "SERVING\n");

    // Per-service health for both services.
    let mut hc = tonic_health::pb::health_client::HealthClient::new(env.channel().await);
    for svc in ["bpfman.v1.Bpfman", "bpfman.ext.v1.BpfmanExt"] {
        let st = hc
            .check(tonic_health::pb::HealthCheckRequest {
                service: svc.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(
            st,
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{svc}"
        );
    }

    // A second daemon on the live socket (same runtime dir) refuses.
    let mut second = env.serve_command().stderr(Stdio::piped()).spawn().unwrap();
    let mut status = None;
    for _ in 0..3000 {
        if let Some(s) = second.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Some(status) = status else {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second daemon started on a live socket");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "second daemon: {err}");
    assert!(err.contains("in use"), "second daemon's error: {err}");
    // The first one is untouched.
    assert!(env.serving().await);
    assert!(env.socket().exists());

    // Health of a socket nobody serves: UNAVAILABLE, naming the socket.
    assert!(env.stop());
    assert!(!env.socket().exists(), "socket left after SIGTERM");
    let h = Command::new(bin())
        .arg("health")
        .arg("--listen")
        .arg(env.socket())
        .output()
        .unwrap();
    assert!(!h.status.success());
    let err = String::from_utf8_lossy(&h.stderr);
    assert!(err.contains(&env.socket().display().to_string()), "{err}");
}

/// SIGTERM removes the socket and leaves programs, maps and links in place;
/// a restarted daemon still knows them and can unload them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_programs() {
    if !root_or_skip("restart_keeps_programs") {
        return;
    }
    let mut env = Env::new();
    env.start().await;
    let mut c = env.client().await;
    let id = load_one(&mut c, "restart").await;
    let link_id = c
        .attach(tracepoint_attach(id, "sched/sched_switch"))
        .await
        .unwrap()
        .into_inner()
        .link_id;
    drop(c);

    assert!(env.stop(), "daemon exit status:\n{}", env.log_text());
    assert!(!env.socket().exists(), "socket left after SIGTERM");
    let dir = env.fs().join(id.to_string());
    let map_pin = dir.join("stats_map");
    assert!(dir.join("count_sched_switch").exists());
    assert!(map_pin.exists());
    assert!(
        env.leftovers().iter().any(|l| l.starts_with("links/")),
        "link pin gone: {:?}",
        env.leftovers()
    );
    // Still attached with no daemon running.
    let v = read_counter(&map_pin);
    counter_grows(&map_pin, v).await;

    env.start().await;
    let log = env.log_text();
    assert!(
        log.contains("reconcile: store, kernel and bpffs agree"),
        "nothing should need repair after a clean stop:\n{log}"
    );
    let mut c = env.client().await;
    let got = c.get(v1::GetRequest { id }).await.unwrap().into_inner();
    let info = got.info.expect("still managed after restart");
    assert_eq!(info.links, vec![link_id]);
    assert_eq!(info.metadata[APP_KEY], "restart");
    c.unload(v1::UnloadRequest { id }).await.unwrap();
    assert_eq!(
        code_of(c.get(v1::GetRequest { id }).await).0,
        Code::NotFound
    );
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert!(env.stop());
}

/// `clients` tasks, each with its own connection, each doing `ops` mixed
/// operations on its own programs; all succeed, and then the store (List),
/// the kernel and bpffs agree.
async fn concurrency(clients: usize, ops: usize) {
    let mut env = Env::new();
    env.start().await;
    let mut tasks = Vec::new();
    for t in 0..clients {
        let ch = env.channel().await;
        tasks.push(tokio::spawn(async move {
            let mut c = BpfmanClient::new(ch);
            let app = format!("conc-{t}");
            let mut prog: Option<u32> = None;
            let mut link: Option<u32> = None;
            // A cycle of load, attach, list, get, detach, unload; the last
            // cycle may stop anywhere, leaving a program (and link) behind.
            for i in 0..ops {
                match (i % 6, prog, link) {
                    (0, None, _) => prog = Some(load_one(&mut c, &app).await),
                    (1, Some(id), None) => {
                        let r = c.attach(tracepoint_attach(id, "sched/sched_switch")).await;
                        link = Some(r.unwrap().into_inner().link_id);
                    }
                    (2, Some(id), _) => {
                        let l = c.list(only_ours(&[(APP_KEY, &app)])).await.unwrap();
                        let ids: Vec<u32> = l
                            .into_inner()
                            .results
                            .iter()
                            .map(|r| r.kernel_info.as_ref().unwrap().id)
                            .collect();
                        assert_eq!(ids, vec![id], "task {t} lists");
                    }
                    (3, Some(id), Some(l)) => {
                        let g = c.get(v1::GetRequest { id }).await.unwrap().into_inner();
                        assert_eq!(g.info.unwrap().links, vec![l], "task {t} get");
                    }
                    (4, Some(_), Some(l)) => {
                        c.detach(v1::DetachRequest { link_id: l }).await.unwrap();
                        link = None;
                    }
                    (5, Some(id), None) => {
                        c.unload(v1::UnloadRequest { id }).await.unwrap();
                        prog = None;
                    }
                    other => panic!("task {t}: unexpected state {other:?}"),
                }
            }
            (app, prog)
        }));
    }
    let mut left = Vec::new();
    for t in tasks {
        let (app, prog) = t.await.expect("client task");
        if let Some(id) = prog {
            left.push((app, id));
        }
    }

    // Store, kernel and bpffs agree on what is left.
    let mut c = env.client().await;
    let listed = c.list(only_ours(&[])).await.unwrap().into_inner().results;
    let mut listed_ids: Vec<u32> = listed
        .iter()
        .map(|r| r.kernel_info.as_ref().unwrap().id)
        .collect();
    listed_ids.sort();
    let mut want: Vec<u32> = left.iter().map(|(_, id)| *id).collect();
    want.sort();
    assert_eq!(listed_ids, want, "store vs what the clients left");
    for r in &listed {
        let k = r.kernel_info.as_ref().unwrap();
        let info = r.info.as_ref().unwrap();
        // The kernel has it (facts came from the kernel, not the store).
        assert!(
            !k.tag.is_empty() && k.bytes_xlated > 0,
            "program {} not in the kernel",
            k.id
        );
        let pin = env.fs().join(k.id.to_string()).join(&info.name);
        assert!(pin.exists(), "{} missing", pin.display());
    }
    let mut dirs: Vec<String> = env
        .leftovers()
        .into_iter()
        .filter(|l| !l.starts_with("links/"))
        .collect();
    dirs.sort_by_key(|d| d.parse::<u32>().unwrap_or(u32::MAX));
    let want_dirs: Vec<String> = want.iter().map(u32::to_string).collect();
    assert_eq!(dirs, want_dirs, "bpffs vs store");

    // Unload the rest: nothing is left anywhere and gc finds nothing.
    for (_, id) in &left {
        c.unload(v1::UnloadRequest { id: *id }).await.unwrap();
    }
    assert!(
        c.list(only_ours(&[]))
            .await
            .unwrap()
            .into_inner()
            .results
            .is_empty()
    );
    assert_eq!(env.leftovers(), Vec::<String>::new());
    let mut ext = BpfmanExtClient::new(env.channel().await);
    let gc = ext
        .gc(bpfman_api::ext::GcRequest { prune: false })
        .await
        .unwrap()
        .into_inner()
        .json;
    assert_eq!(gc, "[]", "gc finds stale state");
    assert!(env.stop(), "daemon exit status:\n{}", env.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_8x25() {
    if !root_or_skip("concurrent_clients_8x25") {
        return;
    }
    concurrency(8, 25).await;
}

/// The full size; slower, so run on demand (`--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn concurrent_clients_8x200() {
    if !root_or_skip("concurrent_clients_8x200") {
        return;
    }
    concurrency(8, 200).await;
}

/// systemd socket activation: with LISTEN_PID/LISTEN_FDS naming the daemon,
/// it serves on fd 3 instead of binding `--listen`, and leaves the socket
/// file (systemd's) alone when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation() {
    if !root_or_skip("socket_activation") {
        return;
    }
    let mut env = Env::new();
    std::fs::create_dir_all(env.socket().parent().unwrap()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(env.socket()).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let unused = env.runtime().join("not-this.sock");
    let log = std::fs::File::create(env.log()).unwrap();
    let mut cmd = Command::new("/bin/sh");
    // $$ is the shell's pid, which `exec` hands on to bpfman.
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(bin())
        .arg("--runtime-dir")
        .arg(env.runtime())
        .args(["serve", "--listen"])
        .arg(&unused)
        .env_remove("BPFMAN_SOCKET")
        .env_remove("BPFMAN_LISTEN")
        .env_remove("BPFMAN_FAULT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: dup2 is async-signal-safe; it gives the child the listening
    // socket as fd 3 (without close-on-exec), as systemd does.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    env.daemon = Some(Daemon::from_child(cmd.spawn().unwrap(), &unused));
    drop(listener);
    let mut up = false;
    for _ in 0..3000 {
        if let Some(st) = env.daemon.as_mut().unwrap().try_wait() {
            panic!("daemon exited ({st}):\n{}", env.log_text());
        }
        if env.serving().await {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        up,
        "daemon never served on the passed socket:\n{}",
        env.log_text()
    );
    let mut c = env.client().await;
    assert_eq!(
        code_of(c.get(v1::GetRequest { id: NO_SUCH_ID }).await).0,
        Code::NotFound
    );
    assert!(!unused.exists(), "bound --listen despite socket activation");
    assert!(env.stop(), "daemon exit status:\n{}", env.log_text());
    assert!(env.socket().exists(), "removed systemd's socket file");
    assert!(env.log_text().contains("socket activation"));
}
