//! Run statistics of the managed programs (metrics, `bpfman top`): the
//! store's rows and the kernel's counters, joined by the core.

use std::collections::BTreeMap;
use std::path::Path;

use bpfman_core::ProgramId;
use bpfman_core::stats::{MapStats, RunCounters, StatsSample};

use crate::Manager;
use crate::error::Result;

impl Manager {
    /// One sample of every managed program's run count and time, links and
    /// maps, plus the kernel's other programs summed. `stats_enabled` is
    /// passed through: whether the caller turned counting on.
    pub fn stats_sample(&self, stats_enabled: bool) -> Result<StatsSample> {
        let _lock = self.lock.shared()?;
        let (records, links, map_rows) = {
            let store = self.store()?;
            (
                store.list_programs(None, &Default::default())?,
                store.list_links()?,
                store.all_maps()?,
            )
        };
        let kernel: BTreeMap<ProgramId, RunCounters> = bpfman_kernel::stats::program_run_stats()?
            .into_iter()
            .map(|s| {
                (
                    ProgramId(s.id),
                    RunCounters {
                        run_cnt: s.run_cnt,
                        run_time_ns: s.run_time_ns,
                    },
                )
            })
            .collect();
        let mut maps: BTreeMap<ProgramId, Vec<MapStats>> = BTreeMap::new();
        for m in map_rows {
            // A map whose pin is gone shows capacity 0; gc reports the row.
            let max_entries = bpfman_kernel::map_info_by_pin(Path::new(&m.pin_path))
                .map(|i| i.max_entries)
                .unwrap_or(0);
            maps.entry(m.owner_id).or_default().push(MapStats {
                name: m.name,
                id: m.kernel_id,
                max_entries,
            });
        }
        Ok(bpfman_core::stats::sample(
            &records,
            &links,
            &maps,
            &kernel,
            stats_enabled,
        ))
    }

    /// Bytes the store takes on disk (database plus write-ahead log).
    pub fn store_bytes(&self) -> u64 {
        let db = self.paths.db();
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        [db.as_path(), Path::new(&wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Keeps the kernel's run-time statistics on while it lives.
pub use bpfman_kernel::stats::RunStatsGuard;

/// Turns the kernel's run-time statistics on until the guard is dropped.
pub fn enable_run_time_stats() -> Result<RunStatsGuard> {
    Ok(bpfman_kernel::stats::enable_run_time_stats()?)
}
