//! The baseline: `bpftool prog load OBJ PIN`, one process per program, into
//! the benchmark's own bpffs. It loads the same object (program and map) and
//! pins the program, which is the kernel work a bpfman load also does. With
//! all N loaded, `bpftool -j prog show` lists every program of the kernel and
//! `bpftool -j prog show pinned PIN` shows one: the kernel facts bpfman's list
//! and get read too. Its unload is `rm PIN`, one process per program:
//! unpinning the only reference closes the program (and its map), the kernel
//! work a bpfman unload does.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::backend::{Backend, Cli, STATS_PROGRAM, run_command};
use crate::error::{BenchError, Result};
use crate::sandbox::check_stop;
use crate::stats::Samples;

/// What bpftool took, per operation, with N programs.
#[derive(Debug, Default)]
pub struct Bpftool {
    /// `bpftool prog load`, one per program.
    pub load: Samples,
    /// `bpftool -j prog show`, with all N loaded.
    pub list: Samples,
    /// `bpftool -j prog show pinned PIN`, spread over the N.
    pub get: Samples,
    /// `rm PIN`, one per program.
    pub unpin: Samples,
}

/// Loads `object` `n` times with bpftool, pinning at `<fs>/bench_<i>`, lists
/// them `list_reps` times and shows up to `gets` of them, then unpins each
/// with `rm` (which frees the program). Pins left by an error are removed.
pub fn bpftool_run(
    bpftool: &Path,
    object: &Path,
    fs: &Path,
    n: usize,
    list_reps: usize,
    gets: usize,
) -> Result<Bpftool> {
    let res = load_n(bpftool, object, fs, n).and_then(|load| {
        let present = count_pins(fs)?;
        if present != n {
            return Err(BenchError::Check(format!(
                "bpftool made {present} pins in {}, expected {n}",
                fs.display()
            )));
        }
        let mut list = Samples::new();
        for _ in 0..list_reps {
            check_stop()?;
            let mut cmd = Command::new(bpftool);
            cmd.args(["-j", "prog", "show"]).stdin(Stdio::null());
            list.time(|| run_command(&mut cmd))?;
        }
        let mut get = Samples::new();
        let picks: Vec<usize> = (0..n).collect();
        for i in crate::spread(&picks, gets) {
            check_stop()?;
            let mut cmd = Command::new(bpftool);
            cmd.args(["-j", "prog", "show", "pinned"])
                .arg(fs.join(format!("bench_{i}")))
                .stdin(Stdio::null());
            get.time(|| run_command(&mut cmd))?;
        }
        Ok(Bpftool {
            load,
            list,
            get,
            unpin: unpin_n(fs, n)?,
        })
    });
    let left = remove_pins(fs);
    let out = res?;
    left?;
    Ok(out)
}

fn unpin_n(fs: &Path, n: usize) -> Result<Samples> {
    let mut s = Samples::new();
    for i in 0..n {
        check_stop()?;
        let mut cmd = Command::new("rm");
        cmd.arg(fs.join(format!("bench_{i}"))).stdin(Stdio::null());
        s.time(|| run_command(&mut cmd))?;
    }
    Ok(s)
}

fn count_pins(fs: &Path) -> Result<usize> {
    let rd =
        std::fs::read_dir(fs).map_err(|e| BenchError::io(format!("read {}", fs.display()), e))?;
    Ok(rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("bench_"))
        .count())
}

fn load_n(bpftool: &Path, object: &Path, fs: &Path, n: usize) -> Result<Samples> {
    let mut s = Samples::new();
    for i in 0..n {
        check_stop()?;
        let pin = fs.join(format!("bench_{i}"));
        let mut cmd = Command::new(bpftool);
        cmd.args(["prog", "load"])
            .arg(object)
            .arg(&pin)
            .stdin(Stdio::null());
        s.time(|| run_command(&mut cmd))?;
    }
    Ok(s)
}

/// Removes the `bench_*` pins; returns how many there were.
fn remove_pins(fs: &Path) -> Result<usize> {
    let rd =
        std::fs::read_dir(fs).map_err(|e| BenchError::io(format!("read {}", fs.display()), e))?;
    let mut n = 0;
    for e in rd {
        let e = e.map_err(|e| BenchError::io(format!("read {}", fs.display()), e))?;
        if e.file_name().to_string_lossy().starts_with("bench_") {
            std::fs::remove_file(e.path())
                .map_err(|err| BenchError::io(format!("remove {}", e.path().display()), err))?;
            n += 1;
        }
    }
    Ok(n)
}

/// How many times each command of [`process_floor`] runs.
pub const FLOOR_REPS: usize = 200;

/// The cost of a process that does no work: `true`, `bpftool version` and
/// `bpfman --version`, [`FLOOR_REPS`] times each, interleaved so a drift of
/// the machine touches all three alike. A CLI call can never be cheaper than
/// its binary's floor, so this shows how much of bpftool's whole load time
/// a `bpfman` process spends before it does anything.
pub fn process_floor(bpftool: Option<&Path>, bpfman: Option<&Path>) -> Result<Vec<Floor>> {
    let mut floors = vec![Floor::new("true", Command::new("true"))];
    if let Some(b) = bpftool {
        let mut cmd = Command::new(b);
        cmd.arg("version");
        floors.push(Floor::new("bpftool version", cmd));
    }
    if let Some(b) = bpfman {
        let mut cmd = Command::new(b);
        cmd.arg("--version");
        floors.push(Floor::new("bpfman --version", cmd));
    }
    for _ in 0..FLOOR_REPS {
        check_stop()?;
        for f in &mut floors {
            f.cmd.stdin(Stdio::null());
            let cmd = &mut f.cmd;
            f.samples.time(|| run_command(cmd))?;
        }
    }
    Ok(floors)
}

/// One command of the process floor and its latencies.
#[derive(Debug)]
pub struct Floor {
    /// The command as printed.
    pub label: &'static str,
    cmd: Command,
    /// Latency of each run.
    pub samples: Samples,
}

impl Floor {
    fn new(label: &'static str, cmd: Command) -> Floor {
        Floor {
            label,
            cmd,
            samples: Samples::new(),
        }
    }
}

/// How many rounds [`load_floor`] runs.
pub const LOAD_FLOOR_REPS: usize = 200;

/// What the load floor measured: three loads of the same object per round,
/// interleaved, so a drift of the machine touches all three alike.
#[derive(Debug, Default)]
pub struct LoadFloor {
    /// `bpftool prog load OBJ PIN`.
    pub bpftool: Samples,
    /// `bpfman-load-floor`: a store-backed load with nothing else (see its
    /// source).
    pub floor: Samples,
    /// `bpfman load file` through the CLI, when the CLI mode runs.
    pub cli: Samples,
}

/// The programs the load floor needs: bpftool, `bpfman-load-floor`, and the
/// CLI (whose loads are unloaded again, untimed, after each round).
pub struct LoadFloorSetup<'a> {
    /// The bpftool binary.
    pub bpftool: &'a Path,
    /// The `bpfman-load-floor` binary.
    pub floor_bin: &'a Path,
    /// The stats object.
    pub object: &'a Path,
    /// A bpffs of the bench's own for the pins of bpftool and the floor.
    pub fs: &'a Path,
    /// A directory for the floor's store and feature cache.
    pub work: &'a Path,
}

/// Runs [`LOAD_FLOOR_REPS`] rounds of: `bpftool prog load`, the floor, and
/// (with `cli`) `bpfman load file`, each timed as one process. Every load is
/// undone before the next round: bpftool's and the floor's pins are removed
/// (which frees their programs and maps), the CLI's program is unloaded.
pub fn load_floor(s: &LoadFloorSetup<'_>, mut cli: Option<&mut Cli>) -> Result<LoadFloor> {
    let mut out = LoadFloor::default();
    let store = s.work.join("floor.db");
    let features = s.work.join("kernel-features");
    let store_arg = store.to_string_lossy().into_owned();
    let features_arg = features.to_string_lossy().into_owned();
    for i in 0..=LOAD_FLOOR_REPS {
        check_stop()?;
        // Round 0 is a warm-up, not recorded: it creates the floor's store
        // and feature cache, as bpfman's first call in a runtime dir does.
        let record = i > 0;
        let pin = s.fs.join(format!("floor_bpftool_{i}"));
        let mut cmd = Command::new(s.bpftool);
        cmd.args(["prog", "load"])
            .arg(s.object)
            .arg(&pin)
            .stdin(Stdio::null());
        timed(record, &mut out.bpftool, || run_command(&mut cmd))?;
        remove_file(&pin)?;

        let dir = s.fs.join(format!("floor_{i}"));
        let mut cmd = Command::new(s.floor_bin);
        cmd.arg(&store_arg)
            .arg(s.object)
            .arg(STATS_PROGRAM)
            .arg(&dir)
            .arg(&features_arg)
            .stdin(Stdio::null());
        let res = timed(record, &mut out.floor, || run_command(&mut cmd));
        remove_dir(&dir)?;
        res?;

        if let Some(c) = cli.as_deref_mut() {
            let mut scratch = Samples::new();
            let t = if record { &mut out.cli } else { &mut scratch };
            let id = c.load(t, s.object)?;
            c.unload(&mut Samples::new(), id)?;
        }
    }
    Ok(out)
}

fn timed<T>(record: bool, s: &mut Samples, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if record { s.time(f) } else { f() }
}

fn remove_file(p: &Path) -> Result<()> {
    std::fs::remove_file(p).map_err(|e| BenchError::io(format!("remove {}", p.display()), e))
}

/// Removes a floor's pin directory and its pins, if it made one.
fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(BenchError::io(format!("remove {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}
