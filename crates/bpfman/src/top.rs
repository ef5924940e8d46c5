//! `bpfman top`: managed programs by CPU time, refreshed every interval.
//! Each refresh takes a sample of the kernel's run counters (embedded, or
//! from the daemon) and shows the change since the previous one. The kernel
//! counts only while statistics are on: the daemon holds them on while its
//! metrics are on; otherwise this process turns them on for as long as it
//! runs (root), or says why the counts stay still.

use std::io::Write as _;
use std::time::{Duration, Instant};

use bpfman_core::stats::{StatsSample, TopSample, top};
use bpfman_manager::{ManagerError, stats::RunStatsGuard};

use crate::cli::{Output, TopArgs};
use crate::ops::Ops;

/// Runs `top`; returns what is left to print (the JSON sample, or nothing
/// after a live view).
pub fn run(out: Output, backend: &dyn Ops, a: &TopArgs) -> Result<String, ManagerError> {
    if !(a.interval.is_finite() && (0.05..=3600.0).contains(&a.interval)) {
        return Err(ManagerError::invalid(
            "--interval must be between 0.05 and 3600 seconds",
        ));
    }
    let interval = Duration::from_secs_f64(a.interval);
    let mut prev = backend.stats()?;
    // Ours, when the daemon does not count already.
    let _guard: Option<RunStatsGuard> = if prev.stats_enabled {
        None
    } else {
        bpfman_manager::stats::enable_run_time_stats().ok()
    };
    let ours = _guard.is_some();
    let mark = |mut s: StatsSample| {
        s.stats_enabled |= ours;
        s
    };
    prev = mark(prev);
    let mut taken = Instant::now();
    if out == Output::Json {
        std::thread::sleep(interval);
        let cur = mark(backend.stats()?);
        let t = top(&prev, &cur, taken.elapsed().as_nanos() as u64);
        return crate::pretty::to_string(&t)
            .map(|s| s + "\n")
            .map_err(|e| ManagerError::internal(format!("cannot encode JSON: {e}")));
    }
    let keys = Keys::open();
    let mut refreshes = 0u64;
    loop {
        if keys.wait_quit(interval) {
            break;
        }
        let cur = mark(backend.stats()?);
        let now = Instant::now();
        let t = top(&prev, &cur, now.duration_since(taken).as_nanos() as u64);
        let mut o = std::io::stdout().lock();
        let clear = if keys.tty { "\x1b[H\x1b[2J" } else { "" };
        let _ = write!(o, "{clear}{}", render(&t, keys.tty));
        let _ = o.flush();
        prev = cur;
        taken = now;
        refreshes += 1;
        if a.count.is_some_and(|n| refreshes >= n) {
            break;
        }
    }
    Ok(String::new())
}

/// The table of one sample (lines end in `\r\n` on a raw terminal).
fn render(t: &TopSample, raw: bool) -> String {
    let mut s = format!(
        "bpfman top - {} managed program(s), every {:.1}s{}\n\n",
        t.programs.len(),
        t.interval_ms as f64 / 1000.0,
        if t.stats_enabled {
            ""
        } else {
            " - BPF stats are off: counts stay still (run as root, or start the daemon with --metrics-listen)"
        }
    );
    s.push_str(&format!(
        "{:>8}  {:<20}  {:<11}  {:<12}  {:>6}  {:>10}  {:>8}  {:>14}\n",
        "ID", "NAME", "TYPE", "APPLICATION", "CPU%", "RUNS/S", "NS/RUN", "RUNS"
    ));
    let secs = (t.interval_ms as f64 / 1000.0).max(0.001);
    for r in &t.programs {
        s.push_str(&format!(
            "{:>8}  {:<20}  {:<11}  {:<12}  {:>6.2}  {:>10.0}  {:>8}  {:>14}\n",
            r.id,
            r.name,
            r.program_type,
            r.application.as_deref().unwrap_or("-"),
            r.cpu_percent,
            r.interval_runs as f64 / secs,
            r.ns_per_run,
            r.run_cnt
        ));
    }
    s.push_str(&format!(
        "\nnot managed by bpfman: {} program(s), {} runs\n",
        t.unmanaged.programs, t.unmanaged.run_cnt
    ));
    if t.programs.is_empty() {
        s.push_str("(no managed programs)\n");
    }
    if raw { s.replace('\n', "\r\n") } else { s }
}

/// The keyboard: on a terminal, single keys without echo (q, or Ctrl-C read
/// as a byte, quits; the terminal is restored on drop). Elsewhere, just a
/// timer (Ctrl-C ends the process as usual).
struct Keys {
    tty: bool,
    saved: Option<libc::termios>,
}

impl Keys {
    fn open() -> Keys {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a valid termios.
        unsafe {
            if libc::isatty(0) != 1 || libc::isatty(1) != 1 {
                return Keys {
                    tty: false,
                    saved: None,
                };
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Keys {
                    tty: false,
                    saved: None,
                };
            }
            let saved = t;
            t.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
            t.c_cc[libc::VMIN] = 0;
            t.c_cc[libc::VTIME] = 0;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            Keys {
                tty: true,
                saved: Some(saved),
            }
        }
    }

    /// Waits `d`; true when q or Ctrl-C was pressed meanwhile.
    fn wait_quit(&self, d: Duration) -> bool {
        if !self.tty {
            std::thread::sleep(d);
            return false;
        }
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut pfd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n > 0 {
                let mut b = [0u8; 16];
                // SAFETY: reading into a local buffer of its size.
                let got = unsafe { libc::read(0, b.as_mut_ptr().cast(), b.len()) };
                if got <= 0 {
                    // Hung up: nothing more to read, just wait.
                    std::thread::sleep(left);
                    return false;
                }
                if b[..got as usize]
                    .iter()
                    .any(|c| matches!(c, b'q' | b'Q' | 3))
                {
                    return true;
                }
            }
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restoring the attributes read in `open`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}
