//! What the node's BPF programs cost: one sample of the kernel's run counters
//! joined with what bpfman recorded (for the daemon's metrics and
//! `bpfman top`), and the per-interval view `top` shows. Pure: the manager
//! fetches the rows and the counters, [`sample`] joins them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{LinkRecord, ProgramRecord};
use crate::{APPLICATION_KEY, MapId, ProgramId};

/// One sample of run statistics (`bpfman top -o json` is built from two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSample {
    /// True when the kernel was counting (someone held `BPF_ENABLE_STATS`
    /// or the sysctl is on), as far as the sampler knows; without it run
    /// counts do not grow.
    pub stats_enabled: bool,
    /// Managed programs, ascending by id.
    pub programs: Vec<ProgramStats>,
    /// Every other kernel program, summed (bounded cardinality).
    pub unmanaged: UnmanagedStats,
}

/// One managed program's counters and shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStats {
    /// Kernel program id.
    pub id: ProgramId,
    /// Program name.
    pub name: String,
    /// bpfman kind (`tracepoint`, `xdp`, ...).
    #[serde(rename = "type")]
    pub program_type: String,
    /// The `bpfman.io/application` metadata, if set.
    pub application: Option<String>,
    /// Runs the kernel counted.
    pub run_cnt: u64,
    /// Nanoseconds those runs took.
    pub run_time_ns: u64,
    /// Links bpfman recorded for it.
    pub links: u32,
    /// Its maps (shared maps are listed under each program using them).
    pub maps: Vec<MapStats>,
}

/// A map of a managed program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapStats {
    /// Map name in the object.
    pub name: String,
    /// Kernel map id.
    pub id: MapId,
    /// Capacity (`max_entries`); 0 when the kernel map could not be read.
    pub max_entries: u32,
}

/// The kernel's programs bpfman does not manage, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmanagedStats {
    /// How many.
    pub programs: u64,
    /// Their runs.
    pub run_cnt: u64,
    /// Their run time.
    pub run_time_ns: u64,
}

/// A kernel counter reading for one program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounters {
    /// Runs.
    pub run_cnt: u64,
    /// Nanoseconds.
    pub run_time_ns: u64,
}

/// Joins the store's rows with the kernel's counters. `kernel` holds every
/// live kernel program; managed programs missing from it (gone behind
/// bpfman's back) are left out, as `gc` will report them. `maps` gives each
/// map owner's maps with their capacity.
pub fn sample(
    records: &[ProgramRecord],
    links: &[LinkRecord],
    maps: &BTreeMap<ProgramId, Vec<MapStats>>,
    kernel: &BTreeMap<ProgramId, RunCounters>,
    stats_enabled: bool,
) -> StatsSample {
    let mut link_count: BTreeMap<ProgramId, u32> = BTreeMap::new();
    for l in links {
        *link_count.entry(l.program_id).or_default() += 1;
    }
    let mut programs: Vec<ProgramStats> = records
        .iter()
        .filter_map(|p| {
            let k = kernel.get(&p.id)?;
            Some(ProgramStats {
                id: p.id,
                name: p.name.clone(),
                program_type: p.kind.as_str().to_string(),
                application: p.metadata.get(APPLICATION_KEY).cloned(),
                run_cnt: k.run_cnt,
                run_time_ns: k.run_time_ns,
                links: link_count.get(&p.id).copied().unwrap_or(0),
                maps: maps.get(&p.map_owner_id).cloned().unwrap_or_default(),
            })
        })
        .collect();
    programs.sort_by_key(|p| p.id);
    let managed: std::collections::BTreeSet<ProgramId> = records.iter().map(|p| p.id).collect();
    let mut unmanaged = UnmanagedStats::default();
    for (id, k) in kernel {
        if !managed.contains(id) {
            unmanaged.programs += 1;
            unmanaged.run_cnt = unmanaged.run_cnt.saturating_add(k.run_cnt);
            unmanaged.run_time_ns = unmanaged.run_time_ns.saturating_add(k.run_time_ns);
        }
    }
    StatsSample {
        stats_enabled,
        programs,
        unmanaged,
    }
}

/// What `bpfman top` shows of one program over one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopRow {
    /// Kernel program id.
    pub id: ProgramId,
    /// Program name.
    pub name: String,
    /// bpfman kind.
    #[serde(rename = "type")]
    pub program_type: String,
    /// The `bpfman.io/application` metadata, if set.
    pub application: Option<String>,
    /// Runs counted in total.
    pub run_cnt: u64,
    /// Run time in total (ns).
    pub run_time_ns: u64,
    /// Runs during the interval.
    pub interval_runs: u64,
    /// Run time during the interval (ns).
    pub interval_run_time_ns: u64,
    /// Mean ns per run over the interval (over the whole count when the
    /// interval saw no run; 0 when nothing ran yet).
    pub ns_per_run: u64,
    /// Share of one CPU spent in the program during the interval, in percent.
    pub cpu_percent: f64,
}

/// One `bpfman top` sample: the rows, sorted by CPU time over the interval
/// (then by total run time, then by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopSample {
    /// Length of the interval (ms).
    pub interval_ms: u64,
    /// Whether the kernel counted during it.
    pub stats_enabled: bool,
    /// Managed programs.
    pub programs: Vec<TopRow>,
    /// Everything else, summed (totals at the end of the interval).
    pub unmanaged: UnmanagedStats,
}

/// The rows of `top` from two samples `interval_ns` apart. A program only
/// in `cur` (loaded meanwhile) counts from zero; counters that went down
/// (a program replaced under the same id cannot happen, but stats reset
/// can) give an interval of zero rather than a wrap.
pub fn top(prev: &StatsSample, cur: &StatsSample, interval_ns: u64) -> TopSample {
    let before: BTreeMap<ProgramId, &ProgramStats> =
        prev.programs.iter().map(|p| (p.id, p)).collect();
    let mut programs: Vec<TopRow> = cur
        .programs
        .iter()
        .map(|p| {
            let (runs0, ns0) = before
                .get(&p.id)
                .map_or((0, 0), |b| (b.run_cnt, b.run_time_ns));
            let interval_runs = p.run_cnt.saturating_sub(runs0);
            let interval_run_time_ns = p.run_time_ns.saturating_sub(ns0);
            let ns_per_run = interval_run_time_ns
                .checked_div(interval_runs)
                .or_else(|| p.run_time_ns.checked_div(p.run_cnt))
                .unwrap_or(0);
            let cpu_percent = if interval_ns == 0 {
                0.0
            } else {
                interval_run_time_ns as f64 * 100.0 / interval_ns as f64
            };
            TopRow {
                id: p.id,
                name: p.name.clone(),
                program_type: p.program_type.clone(),
                application: p.application.clone(),
                run_cnt: p.run_cnt,
                run_time_ns: p.run_time_ns,
                interval_runs,
                interval_run_time_ns,
                ns_per_run,
                cpu_percent,
            }
        })
        .collect();
    programs.sort_by(|a, b| {
        b.interval_run_time_ns
            .cmp(&a.interval_run_time_ns)
            .then(b.run_time_ns.cmp(&a.run_time_ns))
            .then(a.id.cmp(&b.id))
    });
    TopSample {
        interval_ms: interval_ns / 1_000_000,
        stats_enabled: prev.stats_enabled && cur.stats_enabled,
        programs,
        unmanaged: cur.unmanaged.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const FS: &str = "/fs";

    fn counters(pairs: &[(u32, u64, u64)]) -> BTreeMap<ProgramId, RunCounters> {
        pairs
            .iter()
            .map(|&(id, run_cnt, run_time_ns)| {
                (
                    ProgramId(id),
                    RunCounters {
                        run_cnt,
                        run_time_ns,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn sample_joins_rows_links_maps_and_sums_the_rest() {
        let records = [
            ProgramRecord {
                metadata: fixtures::metadata(&[(APPLICATION_KEY, "stats")]),
                ..fixtures::program(7, 7, FS)
            },
            fixtures::program(9, 7, FS),
            fixtures::program(11, 11, FS),
        ];
        let links = [(1, 7), (2, 7), (3, 9)].map(|(id, p)| fixtures::link(id, p, FS));
        let maps = BTreeMap::from([(
            ProgramId(7),
            vec![MapStats {
                name: "stats_map".into(),
                id: MapId(40),
                max_entries: 1,
            }],
        )]);
        // 11 is recorded but gone from the kernel; 3 and 5 are not ours.
        let kernel = counters(&[(3, 10, 100), (5, 1, 1), (7, 4, 40), (9, 0, 0)]);
        let s = sample(&records, &links, &maps, &kernel, true);
        assert!(s.stats_enabled);
        assert_eq!(
            s.programs.iter().map(|p| p.id.get()).collect::<Vec<_>>(),
            [7, 9]
        );
        let p7 = &s.programs[0];
        assert_eq!((p7.run_cnt, p7.run_time_ns, p7.links), (4, 40, 2));
        assert_eq!(p7.application.as_deref(), Some("stats"));
        assert_eq!(p7.program_type, "tracepoint");
        // 9 shares 7's maps.
        assert_eq!(s.programs[1].maps, p7.maps);
        assert_eq!(s.programs[1].links, 1);
        assert_eq!(
            s.unmanaged,
            UnmanagedStats {
                programs: 2,
                run_cnt: 11,
                run_time_ns: 101
            }
        );
    }

    #[test]
    fn top_sorts_by_interval_cpu_and_computes_rates() {
        let records = [1, 2, 3].map(|id| fixtures::program(id, id, FS));
        let prev = sample(
            &records,
            &[],
            &BTreeMap::new(),
            &counters(&[(1, 10, 1_000), (2, 100, 900_000)]),
            true,
        );
        // 3 appeared meanwhile; 2 did not run in the interval.
        let cur = sample(
            &records,
            &[],
            &BTreeMap::new(),
            &counters(&[(1, 20, 11_000), (2, 100, 900_000), (3, 5, 500)]),
            true,
        );
        let t = top(&prev, &cur, 1_000_000_000);
        assert_eq!(t.interval_ms, 1000);
        assert_eq!(
            t.programs.iter().map(|r| r.id.get()).collect::<Vec<_>>(),
            [1, 3, 2]
        );
        let r1 = &t.programs[0];
        assert_eq!(
            (r1.interval_runs, r1.interval_run_time_ns, r1.ns_per_run),
            (10, 10_000, 1_000)
        );
        assert!((r1.cpu_percent - 0.001).abs() < 1e-9);
        let r2 = &t.programs[2];
        assert_eq!((r2.interval_runs, r2.ns_per_run), (0, 9_000));
        assert_eq!(t.programs[1].interval_runs, 5);
        // Counters that went down give zero, not a wrap.
        let t = top(&cur, &prev, 0);
        assert!(
            t.programs
                .iter()
                .all(|r| r.interval_runs == 0 && r.cpu_percent == 0.0)
        );
    }
}
