//! What the run measured, and how it is printed.

use std::fmt::Write as _;
use std::time::Duration;

use crate::baseline::Bpftool;
use crate::csi::CsiResult;
use crate::stats::{Samples, Summary, ms, ratio};

/// Mode names as printed.
pub const IN_PROCESS: &str = "in-process";
/// The CLI, one process per call, embedded mode.
pub const CLI: &str = "cli";
/// The daemon over gRPC.
pub const GRPC: &str = "grpc";

/// One batch: N loads, list repetitions, gets, N unloads.
#[derive(Debug)]
pub struct Batch {
    /// Mode name.
    pub mode: &'static str,
    /// Programs in the batch.
    pub n: usize,
    /// Load latencies in load order.
    pub load: Samples,
    /// List latencies (with N programs loaded).
    pub list: Samples,
    /// Get latencies.
    pub get: Samples,
    /// Unload latencies.
    pub unload: Samples,
    /// The same operations on a reference store, beside the drift windows.
    pub reference: Reference,
}

/// Daemon RSS label: just started, before any request.
pub const RSS_IDLE: &str = "idle (just started)";
/// Daemon RSS label: idle again after the warm-up (one call of each kind).
pub const RSS_IDLE_WARM: &str = "idle after the warm-up calls";
/// Daemon RSS label: idle again after every batch.
pub const RSS_AFTER: &str = "1 s after unloading everything";

/// Percent of a batch's loads (and unloads) in each drift window: the first
/// and the last this much are compared.
pub const DRIFT_PCT: usize = 10;
/// Batches smaller than this have no drift windows.
pub const DRIFT_MIN_N: usize = 10;

/// Calls on a second instance of the batch's mode with its own store, which
/// holds one program: one load and one unload beside each call in a drift
/// window, taking turns with it, so that a drift of the machine touches the
/// window and its reference alike. The reference's ratio between the two
/// windows is the machine's drift alone, which [`size_effect`] takes out of
/// the batch's: the time-apart windows cannot tell a store that grew from a
/// machine that got slower in between.
#[derive(Debug, Default)]
pub struct Reference {
    /// Loads into the one-program store beside the first window of loads.
    pub load_first: Samples,
    /// Loads into the one-program store beside the last window of loads.
    pub load_last: Samples,
    /// Unloads from the two-program store beside the first window of unloads.
    pub unload_first: Samples,
    /// Unloads from the two-program store beside the last window of unloads.
    pub unload_last: Samples,
}

impl Batch {
    /// Empty batch.
    pub fn new(mode: &'static str, n: usize) -> Batch {
        Batch {
            mode,
            n,
            load: Samples::new(),
            list: Samples::new(),
            get: Samples::new(),
            unload: Samples::new(),
            reference: Reference::default(),
        }
    }
}

/// Everything measured, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// Run parameters, one line each.
    pub header: Vec<String>,
    /// Batches of every mode.
    pub batches: Vec<Batch>,
    /// bpftool's load, list, get and `rm PIN` per N.
    pub bpftool: Vec<(usize, Bpftool)>,
    /// Cost of a process that does nothing, per binary.
    pub floor: Vec<crate::baseline::Floor>,
    /// bpftool, the load floor and the CLI loading the same object, interleaved.
    pub load_floor: Option<crate::baseline::LoadFloor>,
    /// Why the load floor was skipped.
    pub load_floor_skipped: Option<String>,
    /// Why bpftool was skipped.
    pub bpftool_skipped: Option<String>,
    /// Why gRPC was skipped.
    pub grpc_skipped: Option<String>,
    /// Daemon RSS samples: (when, KiB).
    pub rss: Vec<(String, u64)>,
    /// How the daemon stopped.
    pub daemon_stop: Option<String>,
    /// CSI phase.
    pub csi: Option<CsiResult>,
    /// Why CSI was skipped.
    pub csi_skipped: Option<String>,
    /// Wall time of each phase.
    pub phases: Vec<(String, Duration)>,
}

fn sum_line(s: &mut String, label: &str, x: Option<Summary>) {
    match x {
        Some(x) => {
            let _ = writeln!(
                s,
                "{label}{:>7} {:>9} {:>9} {:>9} {:>9}",
                x.count,
                ms(x.mean),
                ms(x.p50),
                ms(x.p99),
                ms(x.max)
            );
        }
        None => {
            let _ = writeln!(s, "{label}{:>7} {:>9}", 0, "-");
        }
    }
}

/// Which way a drift table's store moves during the batch.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// Loads: the first window runs on a small store, the last at N.
    Grows,
    /// Unloads: the first window runs at N, the last on a small store.
    Shrinks,
}

/// The cost at N over the cost at a small store, divided by the same ratio
/// of the reference, which ran at one size all along beside both windows:
/// what is left is the store size's own effect. None when a median is zero.
pub fn size_effect(
    big: Duration,
    small: Duration,
    ref_big: Duration,
    ref_small: Duration,
) -> Option<f64> {
    if small.is_zero() || ref_big.is_zero() || ref_small.is_zero() {
        return None;
    }
    let main = big.as_secs_f64() / small.as_secs_f64();
    let drift = ref_big.as_secs_f64() / ref_small.as_secs_f64();
    Some(main / drift)
}

impl Report {
    fn batch(&self, mode: &str, n: usize) -> Option<&Batch> {
        self.batches.iter().find(|b| b.mode == mode && b.n == n)
    }

    fn sizes(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.batches.iter().map(|b| b.n).collect();
        v.extend(self.bpftool.iter().map(|(n, _)| *n));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The whole report as text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "bpfman benchmark");
        let _ = writeln!(s, "================");
        for h in &self.header {
            let _ = writeln!(s, "{h}");
        }
        self.render_latency(&mut s);
        self.render_drift(&mut s);
        self.render_baseline(&mut s);
        self.render_floor(&mut s);
        self.render_load_floor(&mut s);
        self.render_grpc(&mut s);
        self.render_csi(&mut s);
        if !self.phases.is_empty() {
            let _ = writeln!(s, "\n== Wall time per phase ==");
            for (name, d) in &self.phases {
                let _ = writeln!(s, "  {name:<32} {:>8.1} s", d.as_secs_f64());
            }
        }
        s
    }

    fn render_latency(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n== Latency per operation (ms) ==\n\
             in-process: bpfman_manager::Manager called directly; cli: one `bpfman` process\n\
             per call, embedded mode (-o json); grpc: bpfman.v1 client -> `bpfman serve`.\n\
             list runs with N programs loaded; get/unload run once per program.\n\
             A batch of N=1 is a single load sample: read it as an example, not a statistic."
        );
        let _ = writeln!(
            s,
            "{:<11}{:>6}  {:<7}{:>7} {:>9} {:>9} {:>9} {:>9}",
            "mode", "N", "op", "count", "mean", "p50", "p99", "max"
        );
        for b in &self.batches {
            for (op, x) in [
                ("load", &b.load),
                ("list", &b.list),
                ("get", &b.get),
                ("unload", &b.unload),
            ] {
                let label = format!("{:<11}{:>6}  {:<7}", b.mode, b.n, op);
                sum_line(s, &label, x.summary());
            }
        }
    }

    fn render_drift(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n== Load cost as the store grows: first {DRIFT_PCT}% vs last {DRIFT_PCT}% of each batch (ms) ==\n\
             (the Nth load should cost about what the 1st did: no full scans per load;\n\
             small = the first loads of the batch, N = the last ones)"
        );
        self.render_drift_of(s, Direction::Grows);
        let _ = writeln!(
            s,
            "\n== Unload cost as the store shrinks: first {DRIFT_PCT}% vs last {DRIFT_PCT}% of each batch (ms) ==\n\
             (unloads run from the oldest program on, bpftool's are `rm PIN`;\n\
             N = the first unloads of the batch, small = the last ones)"
        );
        self.render_drift_of(s, Direction::Shrinks);
        let _ = writeln!(
            s,
            "\nref: a second instance of the same mode with a store of its own, which holds\n\
             one program. Beside each load or unload of a window it loads a program and\n\
             unloads the one it loaded before, taking turns with the window's call, so\n\
             its loads and unloads run at a constant store size and drift with the\n\
             machine only. size effect = (N / small) / (ref N / ref small): the cost at N\n\
             over the cost at small with the machine's drift between the two windows\n\
             taken out. Medians; window = calls in each window (and ref calls beside\n\
             them); batches with N < {DRIFT_MIN_N} are left out; bpftool has no ref."
        );
    }

    fn render_drift_of(&self, s: &mut String, dir: Direction) {
        let _ = writeln!(
            s,
            "{:<11}{:>6} {:>6} {:>10} {:>10} {:>9} {:>10} {:>10} {:>10} {:>12}",
            "mode",
            "N",
            "window",
            "small p50",
            "N p50",
            "N/small",
            "ref small",
            "ref N",
            "ref N/sm",
            "size effect"
        );
        let none = Samples::new();
        // (mode, N, calls in order, ref beside the first window, ref beside the last)
        let mut rows: Vec<(&str, usize, &Samples, &Samples, &Samples)> = self
            .batches
            .iter()
            .map(|b| {
                let r = &b.reference;
                match dir {
                    Direction::Grows => (b.mode, b.n, &b.load, &r.load_first, &r.load_last),
                    Direction::Shrinks => (b.mode, b.n, &b.unload, &r.unload_first, &r.unload_last),
                }
            })
            .collect();
        rows.extend(self.bpftool.iter().map(|(n, x)| {
            let calls = match dir {
                Direction::Grows => &x.load,
                Direction::Shrinks => &x.unpin,
            };
            ("bpftool", *n, calls, &none, &none)
        }));
        let p50 = |x: &Samples| x.summary().map(|x| x.p50);
        let cell = |x: Option<Duration>| x.map_or_else(|| "-".into(), ms);
        let r = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => ratio(a, b),
            _ => "-".into(),
        };
        for (mode, n, calls, ref_first, ref_last) in rows {
            if n < DRIFT_MIN_N {
                continue;
            }
            let (Some(head), Some(tail)) = (calls.head_pct(DRIFT_PCT), calls.tail_pct(DRIFT_PCT))
            else {
                continue;
            };
            let (first, last) = (head.p50, tail.p50);
            let (ref_first, ref_last) = (p50(ref_first), p50(ref_last));
            let (small, big, ref_small, ref_big) = match dir {
                Direction::Grows => (first, last, ref_first, ref_last),
                Direction::Shrinks => (last, first, ref_last, ref_first),
            };
            let effect = match (ref_big, ref_small) {
                (Some(rb), Some(rs)) => size_effect(big, small, rb, rs)
                    .map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<11}{:>6} {:>6} {:>10} {:>10} {:>9} {:>10} {:>10} {:>10} {:>12}",
                mode,
                n,
                head.count,
                ms(small),
                ms(big),
                ratio(big, small),
                cell(ref_small),
                cell(ref_big),
                r(ref_big, ref_small),
                effect
            );
        }
    }

    fn render_baseline(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n== Baseline: bpftool, one process per call, same run ==\n\
             load: `bpftool prog load OBJ PIN`; list: `bpftool -j prog show` (every\n\
             program of the kernel) with N loaded; get: `bpftool -j prog show pinned PIN`;\n\
             unload: `rm PIN`"
        );
        if let Some(why) = &self.bpftool_skipped {
            let _ = writeln!(s, "bpftool: skipped ({why})");
            return;
        }
        let _ = writeln!(
            s,
            "{:<8}{:<8}{:>7} {:>9} {:>9} {:>9} {:>9}",
            "N", "op", "count", "mean", "p50", "p99", "max"
        );
        for (n, x) in &self.bpftool {
            for (op, y) in [
                ("load", &x.load),
                ("list", &x.list),
                ("get", &x.get),
                ("unload", &x.unpin),
            ] {
                sum_line(s, &format!("{n:<8}{op:<8}"), y.summary());
            }
        }
        self.render_ratio(s, "Load", |b| &b.load, |b| &b.load);
        self.render_ratio(s, "List", |b| &b.list, |b| &b.list);
        self.render_ratio(s, "Get", |b| &b.get, |b| &b.get);
        self.render_ratio(s, "Unload", |b| &b.unload, |b| &b.unpin);
    }

    /// One operation's latency per mode as a ratio to bpftool's, per N.
    fn render_ratio(
        &self,
        s: &mut String,
        what: &str,
        op: fn(&Batch) -> &Samples,
        base: fn(&Bpftool) -> &Samples,
    ) {
        let _ = writeln!(
            s,
            "\n{what} latency ratio to bpftool (mean ratio / median ratio):\n{:<8}{:>14}{:>22}{:>22}{:>22}",
            "N", "bpftool p50", "cli / bpftool", "in-process / bpftool", "grpc / bpftool"
        );
        for (n, bt) in &self.bpftool {
            let Some(base) = base(bt).summary() else {
                continue;
            };
            let cell = |mode: &str| -> String {
                match self.batch(mode, *n).and_then(|b| op(b).summary()) {
                    Some(x) => format!("{} / {}", ratio(x.mean, base.mean), ratio(x.p50, base.p50)),
                    None => "-".into(),
                }
            };
            let _ = writeln!(
                s,
                "{:<8}{:>14}{:>22}{:>22}{:>22}",
                n,
                ms(base.p50),
                cell(CLI),
                cell(IN_PROCESS),
                cell(GRPC)
            );
        }
    }

    fn render_floor(&self, s: &mut String) {
        if self.floor.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n== Process floor: a process that does nothing, interleaved, same run ==\n\
             (no CLI call can cost less than its binary's floor; ratios of p50)"
        );
        let _ = writeln!(
            s,
            "{:<18}{:>7} {:>9} {:>9} {:>9}{:>14}{:>16}",
            "command", "count", "mean", "p50", "p99", "/ bpftool ver", "/ bpftool load"
        );
        let p50 = |label: &str| {
            self.floor
                .iter()
                .find(|f| f.label == label)
                .and_then(|f| f.samples.summary())
                .map(|x| x.p50)
        };
        let version = p50("bpftool version");
        // The largest batch's median load: the most samples.
        let load = self
            .bpftool
            .iter()
            .max_by_key(|(n, _)| *n)
            .and_then(|(_, x)| x.load.summary())
            .map(|x| x.p50);
        for f in &self.floor {
            let Some(x) = f.samples.summary() else {
                continue;
            };
            let r = |base: Option<Duration>| base.map_or_else(|| "-".into(), |b| ratio(x.p50, b));
            let _ = writeln!(
                s,
                "{:<18}{:>7} {:>9} {:>9} {:>9}{:>14}{:>16}",
                f.label,
                x.count,
                ms(x.mean),
                ms(x.p50),
                ms(x.p99),
                r(version),
                r(load)
            );
        }
    }

    fn render_load_floor(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n== Load floor: the same load by three processes, interleaved, same run ==\n\
             (bpfman-load-floor opens a SQLite store, loads and pins the object with aya\n\
             and records one row, nothing else: the least any store-backed load process\n\
             costs here; ratios of p50)"
        );
        let Some(f) = &self.load_floor else {
            let why = self.load_floor_skipped.as_deref().unwrap_or("not run");
            let _ = writeln!(s, "skipped: {why}");
            return;
        };
        let _ = writeln!(
            s,
            "{:<22}{:>7} {:>9} {:>9} {:>9}{:>16}",
            "command", "count", "mean", "p50", "p99", "/ bpftool load"
        );
        let base = f.bpftool.summary().map(|x| x.p50);
        for (label, samples) in [
            ("bpftool prog load", &f.bpftool),
            ("bpfman-load-floor", &f.floor),
            ("bpfman load (cli)", &f.cli),
        ] {
            let Some(x) = samples.summary() else {
                continue;
            };
            let r = base.map_or_else(|| "-".into(), |b| ratio(x.p50, b));
            let _ = writeln!(
                s,
                "{:<22}{:>7} {:>9} {:>9} {:>9}{:>16}",
                label,
                x.count,
                ms(x.mean),
                ms(x.p50),
                ms(x.p99),
                r
            );
        }
    }

    fn render_grpc(&self, s: &mut String) {
        let _ = writeln!(s, "\n== gRPC (bpfman serve) vs in-process ==");
        if let Some(why) = &self.grpc_skipped {
            let _ = writeln!(s, "gRPC: skipped (daemon not available): {why}");
            return;
        }
        let _ = writeln!(
            s,
            "{:<8}{:<8}{:>12}{:>12}{:>12}{:>12}{:>14}",
            "N", "op", "inproc mean", "inproc p50", "grpc mean", "grpc p50", "grpc/inproc"
        );
        for n in self.sizes() {
            let (Some(a), Some(g)) = (self.batch(IN_PROCESS, n), self.batch(GRPC, n)) else {
                continue;
            };
            for (op, x, y) in [
                ("load", &a.load, &g.load),
                ("list", &a.list, &g.list),
                ("get", &a.get, &g.get),
                ("unload", &a.unload, &g.unload),
            ] {
                if let (Some(x), Some(y)) = (x.summary(), y.summary()) {
                    let _ = writeln!(
                        s,
                        "{:<8}{:<8}{:>12}{:>12}{:>12}{:>12}{:>14}",
                        n,
                        op,
                        ms(x.mean),
                        ms(x.p50),
                        ms(y.mean),
                        ms(y.p50),
                        ratio(y.p50, x.p50)
                    );
                }
            }
        }
        if let Some(&n) = self.sizes().last() {
            let _ = writeln!(s, "\nList latency with {n} programs loaded (p50 ms):");
            for mode in [IN_PROCESS, GRPC, CLI] {
                if let Some(x) = self.batch(mode, n).and_then(|b| b.list.summary()) {
                    let _ = writeln!(s, "  {mode:<11} {:>9}", ms(x.p50));
                }
            }
        }
        if !self.rss.is_empty() {
            let _ = writeln!(s, "\nDaemon RSS (VmRSS):");
            for (when, kib) in &self.rss {
                let _ = writeln!(s, "  {when:<40} {:>8.1} MiB", *kib as f64 / 1024.0);
            }
            let kib = |label: &str| {
                self.rss
                    .iter()
                    .find(|(when, _)| when == label)
                    .map(|(_, k)| *k)
            };
            if let Some(after) = kib(RSS_AFTER) {
                for idle in [RSS_IDLE, RSS_IDLE_WARM] {
                    if let Some(i) = kib(idle).filter(|&i| i > 0) {
                        let _ =
                            writeln!(s, "  {RSS_AFTER} / {idle}: {:.2}x", after as f64 / i as f64);
                    }
                }
            }
        }
        if let Some(stop) = &self.daemon_stop {
            let _ = writeln!(s, "Daemon stop: {stop}");
        }
    }

    fn render_csi(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n== CSI NodePublishVolume / NodeUnpublishVolume (in-process manager) =="
        );
        if let Some(why) = &self.csi_skipped {
            let _ = writeln!(s, "CSI: skipped ({why})");
            return;
        }
        let Some(c) = &self.csi else { return };
        let _ = writeln!(
            s,
            "volume of {} maps, new volume id and pod target each time, fsGroup set",
            c.maps
        );
        let _ = writeln!(
            s,
            "{:<12}{:>7} {:>9} {:>9} {:>9} {:>9}",
            "op", "count", "mean", "p50", "p99", "max"
        );
        sum_line(s, &format!("{:<12}", "publish"), c.publish.summary());
        sum_line(s, &format!("{:<12}", "unpublish"), c.unpublish.summary());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::size_effect;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn size_effect_takes_out_the_drift_the_reference_saw() {
        // The machine got 1.5x slower between the windows; the store did nothing.
        let e = size_effect(ms(15), ms(10), ms(6), ms(4)).unwrap();
        assert!((e - 1.0).abs() < 1e-9, "{e}");
        // A steady machine and a store that doubles the cost.
        let e = size_effect(ms(20), ms(10), ms(4), ms(4)).unwrap();
        assert!((e - 2.0).abs() < 1e-9, "{e}");
        // Both at once.
        let e = size_effect(ms(30), ms(10), ms(6), ms(4)).unwrap();
        assert!((e - 2.0).abs() < 1e-9, "{e}");
        assert!(size_effect(ms(1), Duration::ZERO, ms(1), ms(1)).is_none());
        assert!(size_effect(ms(1), ms(1), ms(1), Duration::ZERO).is_none());
    }
}
