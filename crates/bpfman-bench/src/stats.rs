//! Latency samples and their summary (mean, p50, p99).

use std::time::{Duration, Instant};

/// Latencies of one operation, in the order they were measured.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

/// Summary of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: Duration,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Samples {
    /// Empty set.
    pub fn new() -> Self {
        Samples(Vec::new())
    }

    /// Runs `f`, records how long it took, and returns its result. The time
    /// is recorded only when `f` succeeds: a failed call ends the run anyway.
    pub fn time<T, E>(&mut self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let start = Instant::now();
        let out = f()?;
        self.0.push(start.elapsed());
        Ok(out)
    }

    /// Records one measured duration.
    #[cfg(test)]
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Summary of all samples (None when empty).
    pub fn summary(&self) -> Option<Summary> {
        summarize(&self.0)
    }

    /// Summary of the first `ceil(len * pct / 100)` samples.
    pub fn head_pct(&self, pct: usize) -> Option<Summary> {
        summarize(&self.0[..part(self.0.len(), pct)])
    }

    /// Summary of the last `ceil(len * pct / 100)` samples.
    pub fn tail_pct(&self, pct: usize) -> Option<Summary> {
        let n = part(self.0.len(), pct);
        summarize(&self.0[self.0.len() - n..])
    }
}

/// How many of `len` samples make `pct` percent (at least one when any): the
/// size of the windows [`Samples::head_pct`] and [`Samples::tail_pct`] take.
pub fn part(len: usize, pct: usize) -> usize {
    (len * pct).div_ceil(100).min(len)
}

fn summarize(v: &[Duration]) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    let mut sorted = v.to_vec();
    sorted.sort_unstable();
    let total: Duration = v.iter().sum();
    let count = v.len();
    // usize -> u32 cannot overflow for any run this tool makes (at most a
    // few thousand samples), but stay total rather than panic.
    let mean = total / u32::try_from(count).unwrap_or(u32::MAX);
    Some(Summary {
        count,
        mean,
        p50: rank(&sorted, 50),
        p99: rank(&sorted, 99),
        max: sorted[count - 1],
    })
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn rank(sorted: &[Duration], pct: usize) -> Duration {
    let idx = (sorted.len() * pct).div_ceil(100).max(1) - 1;
    sorted[idx.min(sorted.len() - 1)]
}

/// Milliseconds with three decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// `a / b` as a ratio string ("n/a" when b is zero).
pub fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "n/a".into();
    }
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: &[u64]) -> Samples {
        let mut x = Samples::new();
        for m in ms {
            x.push(Duration::from_millis(*m));
        }
        x
    }

    #[test]
    fn percentiles_nearest_rank() {
        let x = s(&(1..=100).collect::<Vec<_>>());
        let sum = x.summary().unwrap();
        assert_eq!(sum.count, 100);
        assert_eq!(sum.p50, Duration::from_millis(50));
        assert_eq!(sum.p99, Duration::from_millis(99));
        assert_eq!(sum.max, Duration::from_millis(100));
        assert_eq!(sum.mean, Duration::from_micros(50_500));
    }

    #[test]
    fn single_sample() {
        let sum = s(&[7]).summary().unwrap();
        let seven = Duration::from_millis(7);
        assert_eq!(
            (sum.mean, sum.p50, sum.p99, sum.max),
            (seven, seven, seven, seven)
        );
    }

    #[test]
    fn head_and_tail() {
        let x = s(&(1..=20).collect::<Vec<_>>());
        assert_eq!(x.head_pct(10).unwrap().count, 2);
        assert_eq!(x.head_pct(10).unwrap().max, Duration::from_millis(2));
        assert_eq!(x.tail_pct(10).unwrap().p50, Duration::from_millis(19));
        assert_eq!(s(&[3]).tail_pct(10).unwrap().count, 1);
        assert!(Samples::new().summary().is_none());
    }
}
