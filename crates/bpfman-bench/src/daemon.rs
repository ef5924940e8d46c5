//! The `bpfman serve` daemon under test: start it on a private socket and
//! runtime dir, wait for its health service, read its RSS, stop it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::error::{BenchError, Result};
use crate::sandbox::check_stop;

/// How long the daemon gets to report SERVING.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running daemon; stopped when dropped.
pub struct Daemon {
    child: Option<Child>,
    /// Its gRPC socket.
    pub socket: PathBuf,
    log: PathBuf,
}

/// Outcome of trying to start the daemon.
pub enum Started {
    /// Serving on its socket.
    Up(Daemon),
    /// Not available (not built yet, exited, never healthy): why.
    Unavailable(String),
}

/// Starts `bin --runtime-dir DIR serve --listen SOCK`, logging to `log`, and
/// waits until its gRPC health service says SERVING.
pub fn start(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    runtime_dir: &Path,
    socket: &Path,
    log: &Path,
) -> Result<Started> {
    let out =
        File::create(log).map_err(|e| BenchError::io(format!("create {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| BenchError::io("duplicate the daemon log handle", e))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--runtime-dir")
        .arg(runtime_dir)
        .arg("serve")
        .arg("--listen")
        .arg(socket)
        .env_remove("BPFMAN_SOCKET")
        .env_remove("BPFMAN_RUNTIME_DIR")
        .env_remove("BPFMAN_FAULT")
        .env_remove("BPFMAN_FAULT_MODE")
        .env("BPFMAN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C at the terminal reaches the bench,
        // which then stops the daemon in order.
        .process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent;
    // it makes the kernel kill the daemon if the bench dies (e.g. SIGKILL),
    // so no daemon outlives the run holding the bench's mounts.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ok(Started::Unavailable(format!(
                "cannot run {}: {e}",
                bin.display()
            )));
        }
    };
    let mut d = Daemon {
        child: Some(child),
        socket: socket.to_path_buf(),
        log: log.to_path_buf(),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        check_stop()?;
        if let Some(status) = d.try_wait()? {
            return Ok(Started::Unavailable(format!(
                "daemon exited ({status}) before serving: {}",
                d.log_tail()
            )));
        }
        if socket.exists() && rt.block_on(healthy(socket)) {
            return Ok(Started::Up(d));
        }
        if Instant::now() > deadline {
            let tail = d.log_tail();
            d.stop();
            return Ok(Started::Unavailable(format!(
                "health never reported SERVING within {} s: {tail}",
                START_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when the daemon's health service answers SERVING for the whole server.
async fn healthy(socket: &Path) -> bool {
    let Ok(channel) = bpfman_api::client::connect_uds(socket).await else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    let req = HealthCheckRequest {
        service: String::new(),
    };
    matches!(
        client.check(req).await,
        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32
    )
}

impl Daemon {
    fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c
                .try_wait()
                .map_err(|e| BenchError::io("wait for the daemon", e)),
            None => Ok(None),
        }
    }

    /// Process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident set size in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> Result<u64> {
        self.status_kib("VmRSS:")
    }

    /// Resident anonymous memory in KiB (RssAnon): what the daemon holds,
    /// without the pages of its binary that a code path happened to touch.
    pub fn anon_kib(&self) -> Result<u64> {
        self.status_kib("RssAnon:")
    }

    fn status_kib(&self, field: &str) -> Result<u64> {
        let pid = self
            .pid()
            .ok_or_else(|| BenchError::Check("daemon is not running".into()))?;
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(format!("read {path}"), e))?;
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| BenchError::Check(format!("no {field} line in {path}")))
    }

    /// Last lines of the daemon's log, on one line.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        if lines.is_empty() {
            return "(no output)".into();
        }
        lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
    }

    /// SIGTERM, then SIGKILL if it does not exit in time. Returns how it
    /// ended (for the report). Idempotent.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".into();
        };
        let Ok(raw) = i32::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return "killed".into();
        };
        let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return format!("exited on SIGTERM ({status})"),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        format!(
            "did not exit within {} s of SIGTERM: killed",
            STOP_TIMEOUT.as_secs()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
