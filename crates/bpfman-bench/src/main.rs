//! `bpfman-bench`: how fast bpfman loads, lists, gets and unloads programs,
//! in-process, through the CLI (a process per call) and over gRPC, against
//! `bpftool prog load` measured in the same run; plus CSI publish latency and
//! the daemon's memory. It prints a report and never judges the numbers.
//!
//! Everything it creates lives under one directory in /tmp with its own bpffs
//! mounts, inside a private mount namespace, and is removed at the end (on
//! errors and Ctrl-C too). Run as root: `scripts/bench.sh`.

mod backend;
mod baseline;
mod csi;
mod daemon;
mod error;
mod report;
mod sandbox;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use backend::{Backend, Cli, Grpc, InProcess, ProgramId};
use error::{BenchError, Result};
use report::{
    Batch, CLI, DRIFT_MIN_N, DRIFT_PCT, GRPC, IN_PROCESS, RSS_AFTER, RSS_IDLE, RSS_IDLE_WARM,
    Report,
};
use sandbox::{Sandbox, check_stop};

/// How long the daemon is left alone before an idle RSS figure: it trims its
/// heap after 300 ms without requests.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Benchmark bpfman against bpftool on this machine (run as root).
#[derive(Debug, Parser)]
#[command(name = "bpfman-bench", version)]
struct Args {
    /// Batch sizes: programs loaded before list/get/unload.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    sizes: Vec<usize>,
    /// List calls per batch.
    #[arg(long, default_value_t = 10)]
    list_reps: usize,
    /// At most this many get calls per batch (spread over the loaded ids).
    #[arg(long, default_value_t = 1000)]
    gets: usize,
    /// Batch sizes above this are not run through the CLI (process-per-call
    /// runs are the slow part of the benchmark).
    #[arg(long, default_value_t = usize::MAX, hide_default_value = true)]
    cli_max: usize,
    /// The bpfman binary (default: `bpfman` next to this binary).
    #[arg(long)]
    bpfman: Option<PathBuf>,
    /// The load floor binary (default: `bpfman-load-floor` next to this
    /// binary); the load floor phase is skipped when it is missing.
    #[arg(long)]
    load_floor: Option<PathBuf>,
    /// The bpftool binary for the baseline.
    #[arg(long, default_value = "/usr/sbin/bpftool")]
    bpftool: PathBuf,
    /// The stats example object.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/stats/stats.bpf.o"))]
    object: PathBuf,
    /// The ten-map object for the CSI phase.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/bpf/tenmaps.bpf.o"))]
    tenmaps: PathBuf,
    /// Publish/unpublish iterations in the CSI phase.
    #[arg(long, default_value_t = 50)]
    csi_iterations: usize,
    /// Skip the CLI mode.
    #[arg(long)]
    no_cli: bool,
    /// Skip the gRPC mode.
    #[arg(long)]
    no_grpc: bool,
    /// Skip the CSI phase.
    #[arg(long)]
    no_csi: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bpfman-bench: must run as root (it loads BPF programs and mounts bpffs)");
        return ExitCode::from(2);
    }
    // Before any thread exists: unshare(CLONE_NEWNS) refuses multi-threaded
    // processes.
    if let Err(e) =
        sandbox::enter_private_mount_ns().and_then(|()| sandbox::install_signal_handlers())
    {
        eprintln!("bpfman-bench: {e}");
        return ExitCode::from(2);
    }
    let mut sb = match Sandbox::create() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bpfman-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report::default();
    let result = run(&args, &sb, &mut report);
    // The daemon and managers are gone (dropped in `run`); now the mounts.
    let root = sb.root().to_path_buf();
    let cleanup = sb.cleanup();
    // Other work on the machine shows up as noise in every number: say how
    // busy it was.
    report
        .header
        .push(format!("load average at end {}", loadavg()));
    print!("{}", report.render());
    println!("\n== Cleanup ==");
    println!(
        "unmounted {} mount(s) under {}, removed the directory",
        cleanup.unmounted.len(),
        root.display()
    );
    let left = sandbox::mounts_under(&root).unwrap_or_default();
    for p in &cleanup.problems {
        println!("cleanup problem: {p}");
    }
    if !left.is_empty() {
        println!("cleanup problem: still mounted: {left:?}");
    }
    match result {
        Ok(()) if cleanup.problems.is_empty() && left.is_empty() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            println!("\nERROR: {e}");
            eprintln!("bpfman-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(msg: &str) {
    eprintln!("bpfman-bench: {msg}");
}

fn run(args: &Args, sb: &Sandbox, report: &mut Report) -> Result<()> {
    let object = canonical("stats object (--object)", &args.object)?;
    let bpfman = match &args.bpfman {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| BenchError::io("find the bench binary", e))?
            .with_file_name("bpfman"),
    };
    let want_cli = !args.no_cli;
    let want_grpc = !args.no_grpc;
    if (want_cli || want_grpc) && !bpfman.is_file() {
        return Err(BenchError::Setup(format!(
            "no bpfman binary at {} (build it with `cargo build --release -p bpfman`, or pass --bpfman)",
            bpfman.display()
        )));
    }
    let mut sizes = args.sizes.clone();
    sizes.retain(|&n| n > 0);
    header(args, report, &object, &bpfman, sb.root(), &sizes);

    // Modes, each with its own runtime dir (own bpffs, own store) so one
    // mode's leftovers can never skew another's numbers.
    let t = Instant::now();
    let bpftool_fs = if args.bpftool.is_file() {
        Some(sb.bpffs("bpftool-fs")?)
    } else {
        report.bpftool_skipped = Some(format!("no bpftool at {}", args.bpftool.display()));
        None
    };
    let mut inproc = InProcess::open(&sb.dir("inproc-runtime")?)?;
    // Each mode's second instance, on a store of its own: the
    // reference of the drift tables (see report::Reference).
    let mut inproc_ref = InProcess::open(&sb.dir("inproc-ref-runtime")?)?;
    let (mut cli, mut cli_ref) = if want_cli {
        (
            Some(Cli::new(&bpfman, &sb.dir("cli-runtime")?)),
            Some(Cli::new(&bpfman, &sb.dir("cli-ref-runtime")?)),
        )
    } else {
        (None, None)
    };
    let mut daemon = None;
    let mut grpc = None;
    let mut daemon_ref = None;
    let mut grpc_ref = None;
    if want_grpc {
        match start_daemon(sb, &bpfman, "grpc")? {
            Ok((d, rt)) => {
                report.rss.push((RSS_IDLE.into(), d.rss_kib()?));
                report
                    .rss
                    .push(("idle, anonymous (RssAnon)".into(), d.anon_kib()?));
                grpc = Some(Grpc::connect(rt, &d.socket)?);
                daemon = Some(d);
                // The reference of the drift tables; they go without a gRPC
                // reference when it does not come up, and the run goes on.
                match start_daemon(sb, &bpfman, "grpc-ref")? {
                    Ok((d, rt)) => {
                        grpc_ref = Some(Grpc::connect(rt, &d.socket)?);
                        daemon_ref = Some(d);
                    }
                    Err(why) => progress(&format!("gRPC reference daemon not available: {why}")),
                }
            }
            Err(why) => {
                progress(&format!("gRPC: skipped (daemon not available): {why}"));
                report.grpc_skipped = Some(why);
            }
        }
    } else {
        report.grpc_skipped = Some("--no-grpc".into());
    }
    report
        .phases
        .push(("setup (mounts, daemon start)".into(), t.elapsed()));

    // Warm-up: page cache, the store's first pages, the kernel's BTF of the
    // object; none of it is recorded.
    let t = Instant::now();
    warm_up(&mut inproc, &object)?;
    warm_up(&mut inproc_ref, &object)?;
    for c in [cli.as_mut(), cli_ref.as_mut()].into_iter().flatten() {
        warm_up(c, &object)?;
    }
    for g in [grpc.as_mut(), grpc_ref.as_mut()].into_iter().flatten() {
        warm_up(g, &object)?;
    }
    if let Some(fs) = &bpftool_fs {
        baseline::bpftool_run(&args.bpftool, &object, fs, 1, 1, 1)?;
    }
    if let Some(d) = daemon.as_ref() {
        // Idle again, after one call of each kind and the same settling
        // time as the figure after the batches: the request path's code
        // pages are in, as they are then, so the two differ only by what
        // the batches left behind.
        std::thread::sleep(SETTLE);
        report.rss.push((RSS_IDLE_WARM.into(), d.rss_kib()?));
        report
            .rss
            .push((format!("{RSS_IDLE_WARM}, anonymous"), d.anon_kib()?));
    }
    report.phases.push(("warm-up".into(), t.elapsed()));

    let t = Instant::now();
    progress("process floor");
    report.floor = baseline::process_floor(
        bpftool_fs.as_ref().map(|_| args.bpftool.as_path()),
        (want_cli || want_grpc).then_some(bpfman.as_path()),
    )?;
    report.phases.push(("process floor".into(), t.elapsed()));

    let t = Instant::now();
    let floor_bin = match &args.load_floor {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| BenchError::io("find the bench binary", e))?
            .with_file_name("bpfman-load-floor"),
    };
    match (&bpftool_fs, floor_bin.is_file()) {
        (Some(fs), true) => {
            progress("load floor");
            let setup = baseline::LoadFloorSetup {
                bpftool: &args.bpftool,
                floor_bin: &floor_bin,
                object: &object,
                fs,
                work: &sb.dir("load-floor")?,
            };
            report.load_floor = Some(baseline::load_floor(&setup, cli.as_mut())?);
            report.phases.push(("load floor".into(), t.elapsed()));
        }
        (None, _) => report.load_floor_skipped = Some("no bpftool".into()),
        (_, false) => {
            report.load_floor_skipped = Some(format!("no {}", floor_bin.display()));
        }
    }

    // Interleave the modes per size, so a drift of the machine during the
    // run touches every mode alike and the ratios stay fair.
    for &n in &sizes {
        if let Some(fs) = &bpftool_fs {
            let t = Instant::now();
            progress(&format!("bpftool N={n}"));
            let b =
                baseline::bpftool_run(&args.bpftool, &object, fs, n, args.list_reps, args.gets)?;
            report.bpftool.push((n, b));
            report.phases.push((format!("bpftool N={n}"), t.elapsed()));
        }
        let t = Instant::now();
        progress(&format!("{IN_PROCESS} N={n}"));
        let b = run_batch(
            (&mut inproc, Some(&mut inproc_ref)),
            IN_PROCESS,
            &object,
            n,
            args,
            &mut || Ok(()),
        )?;
        report.batches.push(b);
        report
            .phases
            .push((format!("{IN_PROCESS} N={n}"), t.elapsed()));

        if let Some(c) = cli.as_mut().filter(|_| n <= args.cli_max) {
            let t = Instant::now();
            progress(&format!("{CLI} N={n}"));
            let r = cli_ref.as_mut().map(|r| r as &mut dyn Backend);
            let b = run_batch((c, r), CLI, &object, n, args, &mut || Ok(()))?;
            report.batches.push(b);
            report.phases.push((format!("{CLI} N={n}"), t.elapsed()));
        }

        if let (Some(g), Some(d)) = (grpc.as_mut(), daemon.as_ref()) {
            let t = Instant::now();
            progress(&format!("{GRPC} N={n}"));
            let mut peak = None;
            let r = grpc_ref.as_mut().map(|r| r as &mut dyn Backend);
            let b = run_batch((g, r), GRPC, &object, n, args, &mut || {
                peak = Some((d.rss_kib()?, d.anon_kib()?));
                Ok(())
            })?;
            if let Some((kib, anon)) = peak {
                let what = if n == 1 { "program" } else { "programs" };
                report.rss.push((format!("with {n} {what} loaded"), kib));
                report
                    .rss
                    .push((format!("with {n} {what} loaded, anonymous"), anon));
            }
            report.batches.push(b);
            report.phases.push((format!("{GRPC} N={n}"), t.elapsed()));
        }
    }
    if let Some(d) = daemon.as_mut() {
        report
            .rss
            .push(("just after unloading everything".into(), d.rss_kib()?));
        std::thread::sleep(SETTLE);
        report.rss.push((RSS_AFTER.into(), d.rss_kib()?));
        report.rss.push((
            "1 s after unloading, anonymous (RssAnon)".into(),
            d.anon_kib()?,
        ));
        drop(grpc);
        report.daemon_stop = Some(d.stop());
    }
    drop(grpc_ref);
    drop(daemon_ref);
    drop(daemon);
    drop(inproc);
    drop(inproc_ref);

    if args.no_csi {
        report.csi_skipped = Some("--no-csi".into());
    } else {
        let tenmaps = canonical("ten-map object (--tenmaps)", &args.tenmaps)?;
        let t = Instant::now();
        progress(&format!("CSI publish x{}", args.csi_iterations));
        report.csi = Some(csi::run(sb, &tenmaps, args.csi_iterations)?);
        report
            .phases
            .push(("CSI publish/unpublish".into(), t.elapsed()));
    }
    Ok(())
}

fn canonical(what: &str, p: &Path) -> Result<PathBuf> {
    p.canonicalize()
        .map_err(|e| BenchError::Setup(format!("{what}: {}: {e}", p.display())))
}

fn header(
    args: &Args,
    report: &mut Report,
    object: &Path,
    bpfman: &Path,
    root: &Path,
    sizes: &[usize],
) {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let h = &mut report.header;
    h.push(format!(
        "kernel {kernel}, {cpus} CPUs, load average at start {}",
        loadavg()
    ));
    h.push(format!(
        "object {} (program {})",
        object.display(),
        backend::STATS_PROGRAM
    ));
    h.push(format!("bpfman binary {}", bpfman.display()));
    h.push(format!("bpftool {}", args.bpftool.display()));
    h.push(format!(
        "sizes {sizes:?}; list x{} per batch; up to {} gets per batch{}",
        args.list_reps,
        args.gets,
        if args.cli_max == usize::MAX {
            String::new()
        } else {
            format!("; CLI only for N <= {}", args.cli_max)
        }
    ));
    h.push(format!(
        "sandbox {} (a tmpfs, as /run is on a node; private mount namespace, own bpffs per mode)",
        root.display()
    ));
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn warm_up(b: &mut dyn Backend, object: &Path) -> Result<()> {
    let t = &mut stats::Samples::new();
    let id = b.load(t, object)?;
    b.list(t)?;
    b.get(t, id)?;
    b.unload(t, id)
}

/// Starts a `bpfman serve` named `name` in the sandbox (runtime dir
/// `<name>-runtime`, socket in `<name>-sock`, log `<name>.log`) with the
/// runtime its client will use; `Err(why)` when it is not available.
fn start_daemon(
    sb: &Sandbox,
    bpfman: &Path,
    name: &str,
) -> Result<std::result::Result<(daemon::Daemon, tokio::runtime::Runtime), String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("start a tokio runtime", e))?;
    let started = daemon::start(
        &rt,
        bpfman,
        &sb.dir(&format!("{name}-runtime"))?,
        &sb.dir(&format!("{name}-sock"))?.join("bpfman.sock"),
        &sb.root().join(format!("{name}.log")),
    )?;
    Ok(match started {
        daemon::Started::Up(d) => Ok((d, rt)),
        daemon::Started::Unavailable(why) => Err(why),
    })
}

/// Which drift window call `i` of `n` falls in, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    First,
    Last,
}

fn window(i: usize, n: usize) -> Option<Window> {
    if n < DRIFT_MIN_N {
        return None;
    }
    let w = stats::part(n, DRIFT_PCT);
    if i < w {
        Some(Window::First)
    } else if i >= n - w {
        Some(Window::Last)
    } else {
        None
    }
}

/// Which half of a probe a drift table reads.
#[derive(Debug, Clone, Copy)]
enum Half {
    Load,
    Unload,
}

/// The reference instance of a batch and the one program it holds between
/// probes. A probe loads a new program and unloads the one from the probe
/// before, so each unload removes a program that has sat in the store while
/// the batch went on, like the batch's own unloads do (an unload right after
/// its load finds everything in cache and runs faster).
struct RefStore<'a> {
    backend: &'a mut dyn Backend,
    resident: ProgramId,
}

impl<'a> RefStore<'a> {
    /// Loads the first resident program (not timed).
    fn open(backend: &'a mut dyn Backend, object: &Path) -> Result<RefStore<'a>> {
        let resident = backend.load(&mut stats::Samples::new(), object)?;
        Ok(RefStore { backend, resident })
    }

    /// One probe when the call beside it is in window `w`: the `half` that
    /// the tables read is recorded in `batch.reference`, the other half only
    /// keeps the store at one program.
    fn probe(
        &mut self,
        w: Option<Window>,
        half: Half,
        object: &Path,
        batch: &mut Batch,
    ) -> Result<()> {
        let Some(w) = w else { return Ok(()) };
        let refs = &mut batch.reference;
        let slot = match (half, w) {
            (Half::Load, Window::First) => &mut refs.load_first,
            (Half::Load, Window::Last) => &mut refs.load_last,
            (Half::Unload, Window::First) => &mut refs.unload_first,
            (Half::Unload, Window::Last) => &mut refs.unload_last,
        };
        let mut unused = stats::Samples::new();
        let (load, unload) = match half {
            Half::Load => (slot, &mut unused),
            Half::Unload => (&mut unused, slot),
        };
        let id = self.backend.load(load, object)?;
        self.backend.unload(unload, self.resident)?;
        self.resident = id;
        Ok(())
    }

    /// Unloads the resident program and checks the store is empty.
    fn close(self, mode: &str) -> Result<()> {
        let t = &mut stats::Samples::new();
        self.backend.unload(t, self.resident)?;
        let left = self.backend.list(t)?;
        if left != 0 {
            return Err(BenchError::Check(format!(
                "{mode}: the reference store holds {left} programs after its probes"
            )));
        }
        Ok(())
    }
}

/// Loads `n` programs, lists `list_reps` times, gets up to `gets` of them,
/// calls `at_peak` (still loaded), then unloads them all and checks the
/// store is empty again. Beside each load and unload of a drift window, a
/// probe runs on the reference instance when there is one (see [`RefStore`]).
fn run_batch(
    (b, reference): (&mut dyn Backend, Option<&mut dyn Backend>),
    mode: &'static str,
    object: &Path,
    n: usize,
    args: &Args,
    at_peak: &mut dyn FnMut() -> Result<()>,
) -> Result<Batch> {
    let mut batch = Batch::new(mode, n);
    let mut ids = Vec::with_capacity(n);
    let mut reference = match reference.filter(|_| n >= DRIFT_MIN_N) {
        Some(r) => Some(RefStore::open(r, object)?),
        None => None,
    };
    // Beside a call in a window, one probe: before the call and after it in
    // turns, so that neither side always runs first.
    let beside = |reference: &mut Option<RefStore>, i, half, batch: &mut Batch| match reference {
        Some(r) => r.probe(window(i, n), half, object, batch),
        None => Ok(()),
    };
    for i in 0..n {
        check_stop()?;
        if i % 2 == 1 {
            beside(&mut reference, i, Half::Load, &mut batch)?;
            ids.push(b.load(&mut batch.load, object)?);
        } else {
            ids.push(b.load(&mut batch.load, object)?);
            beside(&mut reference, i, Half::Load, &mut batch)?;
        }
    }
    for _ in 0..args.list_reps {
        check_stop()?;
        let count = b.list(&mut batch.list)?;
        if count != n {
            return Err(BenchError::Check(format!(
                "{mode}: list shows {count} programs with {n} loaded"
            )));
        }
    }
    for id in spread(&ids, args.gets) {
        check_stop()?;
        b.get(&mut batch.get, id)?;
    }
    at_peak()?;
    for (i, &id) in ids.iter().enumerate() {
        check_stop()?;
        if i % 2 == 1 {
            beside(&mut reference, i, Half::Unload, &mut batch)?;
            b.unload(&mut batch.unload, id)?;
        } else {
            b.unload(&mut batch.unload, id)?;
            beside(&mut reference, i, Half::Unload, &mut batch)?;
        }
    }
    let left = b.list(&mut stats::Samples::new())?;
    if left != 0 {
        return Err(BenchError::Check(format!(
            "{mode}: list shows {left} programs after unloading all"
        )));
    }
    if let Some(r) = reference {
        r.close(mode)?;
    }
    Ok(batch)
}

/// Up to `k` ids evenly spread over `ids` (all of them when k >= len).
pub(crate) fn spread<T: Copy>(ids: &[T], k: usize) -> Vec<T> {
    if k >= ids.len() {
        return ids.to_vec();
    }
    (0..k).map(|i| ids[i * ids.len() / k]).collect()
}

#[cfg(test)]
mod tests {
    use super::{Window, spread, window};

    #[test]
    fn spread_picks_evenly() {
        let ids: Vec<u32> = (0..10).collect();
        assert_eq!(spread(&ids, 20), ids);
        assert_eq!(spread(&ids, 5), vec![0, 2, 4, 6, 8]);
        assert!(spread(&ids, 0).is_empty());
    }

    #[test]
    fn drift_windows_match_the_tables_head_and_tail() {
        // Below the minimum: no windows, no probes.
        assert!((0..9).all(|i| window(i, 9).is_none()));
        // 100 calls: 10 first, 10 last, none in between.
        let w: Vec<_> = (0..100).map(|i| window(i, 100)).collect();
        assert!(w[..10].iter().all(|x| *x == Some(Window::First)));
        assert!(w[10..90].iter().all(Option::is_none));
        assert!(w[90..].iter().all(|x| *x == Some(Window::Last)));
        // 15 calls: ceil(1.5) = 2 each, as Samples::head_pct takes them.
        let first = (0..15)
            .filter(|&i| window(i, 15) == Some(Window::First))
            .count();
        let last = (0..15)
            .filter(|&i| window(i, 15) == Some(Window::Last))
            .count();
        assert_eq!((first, last), (2, 2));
    }
}
