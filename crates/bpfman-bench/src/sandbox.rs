//! The benchmark's private world: a directory under /tmp holding every
//! runtime dir, bpffs mount and CSI target it creates, and the guarantee that
//! all of it is unmounted and removed at the end, on error and on Ctrl-C.
//!
//! The directory is a tmpfs of its own: a node's runtime dir is /run/bpfman,
//! and /run is a tmpfs, so the stores the benchmark measures live where they
//! do in production (and the disk's writeback stalls of the machine it runs
//! on, hundreds of milliseconds seen here, stay out of the figures).
//!
//! Two layers make cleanup reliable:
//! - the process first moves into its own mount namespace (private
//!   propagation), so its mounts never appear on the host and die with the
//!   namespace even if the process is killed with SIGKILL; children (the CLI,
//!   bpftool, the daemon) share that namespace;
//! - [`Sandbox`] unmounts everything under its root (deepest first) and
//!   removes the directory when dropped, which also runs on `?` errors and
//!   panics; SIGINT/SIGTERM only set a flag that the measuring loops check,
//!   so they unwind through the same path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::error::{BenchError, Result};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM request a clean stop instead of killing the
/// process with its mounts in place.
pub fn install_signal_handlers() -> Result<()> {
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; no other handler is replaced that we rely on.
        unsafe { sigaction(sig, &act) }
            .map_err(|e| BenchError::Setup(format!("cannot install a {sig} handler: {e}")))?;
    }
    Ok(())
}

/// Fails with [`BenchError::Interrupted`] once a stop was requested.
pub fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        return Err(BenchError::Interrupted);
    }
    Ok(())
}

/// Moves this process into a new mount namespace with private propagation.
/// Must run before any thread is started (unshare(CLONE_NEWNS) fails in a
/// multi-threaded process).
pub fn enter_private_mount_ns() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| BenchError::Setup(format!("cannot create a mount namespace: {e}")))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| BenchError::Setup(format!("cannot make / private in the bench namespace: {e}")))
}

/// What cleanup did.
#[derive(Debug, Default, Clone)]
pub struct CleanupReport {
    /// Mount points unmounted.
    pub unmounted: Vec<PathBuf>,
    /// Problems met (cleanup carries on past each).
    pub problems: Vec<String>,
}

/// The benchmark's root directory and everything mounted below it.
#[derive(Debug)]
pub struct Sandbox {
    root: PathBuf,
    cleaned: bool,
}

impl Sandbox {
    /// Creates a fresh `/tmp/bpfman-bench.<pid>.<nanos>` (never reuses one)
    /// with a tmpfs mounted on it, after removing what an earlier run killed
    /// by SIGKILL left behind. Call it inside the private mount namespace.
    pub fn create() -> Result<Sandbox> {
        sweep_stale();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root =
            std::env::temp_dir().join(format!("bpfman-bench.{}.{nanos:09}", std::process::id()));
        std::fs::create_dir(&root)
            .map_err(|e| BenchError::io(format!("create {}", root.display()), e))?;
        // Owned from here: a failed mount still removes the directory.
        let sb = Sandbox {
            root,
            cleaned: false,
        };
        mount(
            Some("tmpfs"),
            &sb.root,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )
        .map_err(|e| {
            BenchError::Setup(format!(
                "cannot mount a tmpfs at {}: {e}",
                sb.root.display()
            ))
        })?;
        Ok(sb)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates (if needed) and returns `<root>/<rel>`.
    pub fn dir(&self, rel: &str) -> Result<PathBuf> {
        let p = self.root.join(rel);
        std::fs::create_dir_all(&p)
            .map_err(|e| BenchError::io(format!("create {}", p.display()), e))?;
        Ok(p)
    }

    /// Mounts a fresh bpffs at `<root>/<rel>` and returns its path.
    pub fn bpffs(&self, rel: &str) -> Result<PathBuf> {
        let p = self.dir(rel)?;
        mount(Some("bpf"), &p, Some("bpf"), MsFlags::empty(), None::<&str>).map_err(|e| {
            BenchError::Setup(format!("cannot mount bpffs at {}: {e}", p.display()))
        })?;
        Ok(p)
    }

    /// Unmounts everything under the root (deepest first) and removes it.
    /// Unmounting a bpffs drops its pins, which frees the programs and maps
    /// the benchmark loaded. Safe to call twice.
    pub fn cleanup(&mut self) -> CleanupReport {
        let mut report = CleanupReport::default();
        if self.cleaned {
            return report;
        }
        self.cleaned = true;
        // Mounts can stack (a CSI target bind-mount over a directory of
        // another mount), so repeat until none is left.
        for _ in 0..8 {
            let mut mounts = match mounts_under(&self.root) {
                Ok(m) => m,
                Err(e) => {
                    report.problems.push(e);
                    break;
                }
            };
            if mounts.is_empty() {
                break;
            }
            mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for m in mounts {
                match umount2(&m, MntFlags::MNT_DETACH) {
                    Ok(()) => report.unmounted.push(m),
                    Err(e) => report
                        .problems
                        .push(format!("cannot unmount {}: {e}", m.display())),
                }
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            report
                .problems
                .push(format!("cannot remove {}: {e}", self.root.display()));
        }
        report
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.cleaned {
            let r = self.cleanup();
            eprintln!(
                "bpfman-bench: cleanup: unmounted {} mount(s) under {}",
                r.unmounted.len(),
                self.root.display()
            );
            for p in r.problems {
                eprintln!("bpfman-bench: cleanup: {p}");
            }
        }
    }
}

/// Removes `/tmp/bpfman-bench.<pid>.*` directories of runs that no longer
/// exist. A run killed by SIGKILL cannot clean up: its mounts died with its
/// mount namespace, but the directory (store files, logs) stays. Directories
/// of live processes, or with anything mounted below, are left alone.
fn sweep_stale() {
    let tmp = std::env::temp_dir();
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("bpfman-bench.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = e.path();
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let mounted = mounts_under(&path).map_or(true, |m| !m.is_empty());
        if !alive && !mounted && std::fs::remove_dir_all(&path).is_ok() {
            eprintln!(
                "bpfman-bench: removed {} left by an earlier run",
                path.display()
            );
        }
    }
}

/// Mount points at or below `root`, from /proc/self/mountinfo.
pub fn mounts_under(root: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(root))
        .collect())
}

/// Decodes the `\ooo` octal escapes mountinfo uses for space, tab, newline
/// and backslash.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }
}
