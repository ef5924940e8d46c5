//! The three ways of driving bpfman that the benchmark compares: the manager
//! library in this process, the `bpfman` CLI as one process per call
//! (embedded mode), and the bpfman.v1 gRPC API of a running daemon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bpfman_api::v1::bpfman_client::BpfmanClient;
use bpfman_api::v1::{
    BpfmanProgramType, BytecodeLocation, GetRequest, ListRequest, LoadInfo, LoadRequest,
    UnloadRequest, bytecode_location,
};
/// Program ids as the bench passes them between backends: the bare number
/// every client sees (the in-process backend converts at the manager).
pub(crate) type ProgramId = u32;
use bpfman_core::spec::{BytecodeSource, LoadSpec, ProgramRequest};
use bpfman_manager::{ListFilter, Manager};
use tonic::transport::Channel;

use crate::error::{BenchError, Result};
use crate::stats::Samples;

/// The program of the stats example the benchmark loads.
pub const STATS_PROGRAM: &str = "count_sched_switch";
/// Metadata key and value put on every benchmark program (loads with
/// metadata are the common case, and it costs a row in the store).
pub const BENCH_MD: (&str, &str) = ("bpfman.io/application", "bpfman-bench");

/// One way of running load/list/get/unload. Each call records into `t`
/// the time of the operation itself (the call, the RPC with its decoding,
/// the CLI process), not the benchmark's own checks of the answer: parsing
/// the CLI's 1 MB of JSON for `list` with 1,000 programs into a
/// `serde_json::Value` took longer than the CLI call.
pub trait Backend {
    /// Loads [`STATS_PROGRAM`] from `object`; returns the program id.
    fn load(&mut self, t: &mut Samples, object: &Path) -> Result<ProgramId>;
    /// Lists bpfman's programs; returns how many there are.
    fn list(&mut self, t: &mut Samples) -> Result<usize>;
    /// Fetches one program (with its maps and kernel facts).
    fn get(&mut self, t: &mut Samples, id: ProgramId) -> Result<()>;
    /// Unloads one program.
    fn unload(&mut self, t: &mut Samples, id: ProgramId) -> Result<()>;
}

fn stats_spec(object: &Path) -> LoadSpec {
    LoadSpec {
        source: BytecodeSource::File {
            path: object.to_string_lossy().into_owned(),
        },
        programs: vec![ProgramRequest {
            name: STATS_PROGRAM.into(),
            kind: None,
            attach_fn: None,
        }],
        metadata: BTreeMap::from([(BENCH_MD.0.to_string(), BENCH_MD.1.to_string())]),
        global_data: BTreeMap::new(),
        map_owner_id: None,
        pull_policy: None,
        registry_auth: None,
    }
}

/// The manager library, called directly.
pub struct InProcess {
    manager: Manager,
}

impl InProcess {
    /// Opens a manager on `runtime_dir` (mounts its bpffs), with no fault
    /// injection whatever the environment says.
    pub fn open(runtime_dir: &Path) -> Result<InProcess> {
        let mut cfg = bpfman_manager::Config::new(runtime_dir);
        cfg.fault = None;
        let manager = Manager::open(cfg).map_err(|e| BenchError::manager("open manager", e))?;
        Ok(InProcess { manager })
    }

    /// The manager, for operations the trait does not cover (CSI).
    pub fn manager(&self) -> &Manager {
        &self.manager
    }
}

impl Backend for InProcess {
    fn load(&mut self, t: &mut Samples, object: &Path) -> Result<ProgramId> {
        let spec = stats_spec(object);
        let views = t.time(|| {
            self.manager
                .load(spec)
                .map_err(|e| BenchError::manager("load", e))
        })?;
        match views.as_slice() {
            [one] => Ok(one.id.get()),
            other => Err(BenchError::Check(format!(
                "load returned {} programs, expected 1",
                other.len()
            ))),
        }
    }

    fn list(&mut self, t: &mut Samples) -> Result<usize> {
        t.time(|| {
            self.manager
                .list(&ListFilter::default())
                .map(|v| v.len())
                .map_err(|e| BenchError::manager("list", e))
        })
    }

    fn get(&mut self, t: &mut Samples, id: ProgramId) -> Result<()> {
        let v = t.time(|| {
            self.manager
                .get(bpfman_core::ProgramId(id))
                .map_err(|e| BenchError::manager(format!("get {id}"), e))
        })?;
        if v.id.get() != id || !v.managed {
            return Err(BenchError::Check(format!(
                "get {id} returned program {} (managed: {})",
                v.id, v.managed
            )));
        }
        Ok(())
    }

    fn unload(&mut self, t: &mut Samples, id: ProgramId) -> Result<()> {
        t.time(|| {
            self.manager
                .unload(bpfman_core::ProgramId(id))
                .map_err(|e| BenchError::manager(format!("unload {id}"), e))
        })
    }
}

/// The `bpfman` binary in embedded mode, one process per call.
pub struct Cli {
    bin: PathBuf,
    runtime_dir: PathBuf,
}

impl Cli {
    /// CLI on `runtime_dir`.
    pub fn new(bin: &Path, runtime_dir: &Path) -> Cli {
        Cli {
            bin: bin.to_path_buf(),
            runtime_dir: runtime_dir.to_path_buf(),
        }
    }

    /// Runs `bpfman --runtime-dir DIR -o json ARGS...`; returns its stdout.
    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--runtime-dir")
            .arg(&self.runtime_dir)
            .args(["-o", "json"])
            .args(args)
            // Embedded mode, no injected faults, default logging: whatever
            // the caller's environment holds.
            .env_remove("BPFMAN_SOCKET")
            .env_remove("BPFMAN_RUNTIME_DIR")
            .env_remove("BPFMAN_FAULT")
            .env_remove("BPFMAN_FAULT_MODE")
            .env_remove("BPFMAN_LOG")
            .stdin(Stdio::null());
        run_command(&mut cmd)
    }
}

/// Runs a command to completion; a non-zero exit becomes an error carrying
/// the tail of its stderr.
pub fn run_command(cmd: &mut Command) -> Result<Vec<u8>> {
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .output()
        .map_err(|e| BenchError::io(format!("run {line}"), e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(BenchError::Command {
            command: line,
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
        });
    }
    Ok(out.stdout)
}

fn parse_json(what: &str, bytes: &[u8]) -> Result<serde_json::Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| BenchError::Check(format!("`bpfman {what}` printed no valid JSON: {e}")))
}

impl Backend for Cli {
    fn load(&mut self, t: &mut Samples, object: &Path) -> Result<ProgramId> {
        let md = format!("{}={}", BENCH_MD.0, BENCH_MD.1);
        let obj = object.to_string_lossy();
        let out = t.time(|| self.run(&["load", "file", "-m", &md, &obj, STATS_PROGRAM]))?;
        let v = parse_json("load", &out)?;
        // `load` prints the loaded programs as a JSON array.
        let ids: Vec<u64> = v
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect())
            .unwrap_or_default();
        match ids.as_slice() {
            [one] => ProgramId::try_from(*one)
                .map_err(|_| BenchError::Check(format!("load printed program id {one}"))),
            _ => Err(BenchError::Check(format!(
                "`bpfman load` printed {} program ids, expected 1",
                ids.len()
            ))),
        }
    }

    fn list(&mut self, t: &mut Samples) -> Result<usize> {
        let out = t.time(|| self.run(&["list"]))?;
        let v = parse_json("list", &out)?;
        v.as_array()
            .map(Vec::len)
            .ok_or_else(|| BenchError::Check("`bpfman list -o json` is not an array".into()))
    }

    fn get(&mut self, t: &mut Samples, id: ProgramId) -> Result<()> {
        let arg = id.to_string();
        let out = t.time(|| self.run(&["get", &arg]))?;
        let v = parse_json("get", &out)?;
        if v["id"].as_u64() != Some(u64::from(id)) {
            return Err(BenchError::Check(format!(
                "`bpfman get {id}` printed id {}",
                v["id"]
            )));
        }
        Ok(())
    }

    fn unload(&mut self, t: &mut Samples, id: ProgramId) -> Result<()> {
        let arg = id.to_string();
        t.time(|| self.run(&["unload", &arg])).map(drop)
    }
}

/// A bpfman.v1 gRPC client on the daemon's Unix socket. Calls are made one at
/// a time on a current-thread runtime, like a simple client would.
pub struct Grpc {
    rt: tokio::runtime::Runtime,
    client: BpfmanClient<Channel>,
}

impl Grpc {
    /// Connects to the daemon at `socket`.
    pub fn connect(rt: tokio::runtime::Runtime, socket: &Path) -> Result<Grpc> {
        let channel = rt
            .block_on(bpfman_api::client::connect_uds(socket))
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        // Listing 1,000 programs can exceed the 4 MiB default limit once
        // programs carry links and metadata; allow room.
        let client = BpfmanClient::new(channel).max_decoding_message_size(64 << 20);
        Ok(Grpc { rt, client })
    }
}

impl Backend for Grpc {
    fn load(&mut self, t: &mut Samples, object: &Path) -> Result<ProgramId> {
        let req = LoadRequest {
            bytecode: Some(BytecodeLocation {
                location: Some(bytecode_location::Location::File(
                    object.to_string_lossy().into_owned(),
                )),
            }),
            metadata: [(BENCH_MD.0.to_string(), BENCH_MD.1.to_string())]
                .into_iter()
                .collect(),
            info: vec![LoadInfo {
                name: STATS_PROGRAM.into(),
                program_type: BpfmanProgramType::Tracepoint as i32,
                info: None,
            }],
            ..Default::default()
        };
        let resp = t
            .time(|| {
                self.rt
                    .block_on(self.client.load(req))
                    .map_err(|s| BenchError::grpc("Load", s))
            })?
            .into_inner();
        let ids: Vec<u32> = resp
            .programs
            .iter()
            .filter_map(|p| p.kernel_info.as_ref().map(|k| k.id))
            .collect();
        match ids.as_slice() {
            [one] => Ok(*one),
            _ => Err(BenchError::Check(format!(
                "gRPC Load returned {} program ids, expected 1",
                ids.len()
            ))),
        }
    }

    fn list(&mut self, t: &mut Samples) -> Result<usize> {
        let req = ListRequest {
            bpfman_programs_only: Some(true),
            ..Default::default()
        };
        let resp = t
            .time(|| {
                self.rt
                    .block_on(self.client.list(req))
                    .map_err(|s| BenchError::grpc("List", s))
            })?
            .into_inner();
        Ok(resp.results.len())
    }

    fn get(&mut self, t: &mut Samples, id: ProgramId) -> Result<()> {
        let resp = t
            .time(|| {
                self.rt
                    .block_on(self.client.get(GetRequest { id }))
                    .map_err(|s| BenchError::grpc("Get", s))
            })?
            .into_inner();
        let got = resp.kernel_info.as_ref().map(|k| k.id);
        if got != Some(id) || resp.info.is_none() {
            return Err(BenchError::Check(format!(
                "gRPC Get {id} returned kernel id {got:?} (bpfman info present: {})",
                resp.info.is_some()
            )));
        }
        Ok(())
    }

    fn unload(&mut self, t: &mut Samples, id: ProgramId) -> Result<()> {
        t.time(|| {
            self.rt
                .block_on(self.client.unload(UnloadRequest { id }))
                .map_err(|s| BenchError::grpc("Unload", s))
        })
        .map(drop)
    }
}
