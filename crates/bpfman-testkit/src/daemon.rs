//! `bpfman serve` as a child process on a private socket and runtime dir:
//! started, waited for until healthy, stopped with SIGTERM on drop.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Generous: start-up re-applies network hooks, which takes tens of seconds
/// in an emulated (TCG) VM on a busy host. Not a timing assertion: a daemon
/// that exits fails at once.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// How to start a [`Daemon`].
pub struct DaemonBuilder {
    cmd: Command,
    bin: PathBuf,
    socket: PathBuf,
    log: Option<PathBuf>,
}

/// A running `bpfman serve`.
pub struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
}

impl Daemon {
    /// `bin --runtime-dir <runtime> serve --listen <socket>`, with none of
    /// the caller's bpfman or socket-activation environment; stdout is
    /// dropped, stderr inherited (see [`DaemonBuilder::log`]).
    pub fn builder(bin: &Path, runtime: &Path, socket: &Path) -> DaemonBuilder {
        let mut cmd = Command::new(bin);
        cmd.arg("--runtime-dir")
            .arg(runtime)
            .args(["serve", "--listen"])
            .arg(socket);
        for var in [
            "BPFMAN_SOCKET",
            "BPFMAN_LISTEN",
            "BPFMAN_FAULT",
            "BPFMAN_FAULT_MODE",
            "LISTEN_PID",
            "LISTEN_FDS",
        ] {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        DaemonBuilder {
            cmd,
            bin: bin.to_path_buf(),
            socket: socket.to_path_buf(),
            log: None,
        }
    }

    /// Adopts a daemon the test spawned itself (e.g. socket-activated).
    pub fn from_child(child: Child, socket: &Path) -> Daemon {
        Daemon {
            child: Some(child),
            socket: socket.to_path_buf(),
        }
    }

    /// Its gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then waits; true when it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

impl DaemonBuilder {
    /// One more argument of `serve`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    /// The CSI plugin too, on `endpoint`, for pods under `pods`.
    pub fn csi(self, endpoint: &Path, pods: &Path, node_id: &str) -> Self {
        self.arg("--csi-support")
            .arg("--csi-endpoint")
            .arg(endpoint)
            .arg("--pods-dir")
            .arg(pods)
            .arg("--node-id")
            .arg(node_id)
    }

    /// One variable of the daemon's environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Leaves a variable of the test's environment out of the daemon's.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Appends the daemon's stderr to `path` (quoted when start-up fails).
    pub fn log(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    /// The command, to spawn it another way (e.g. a second daemon that must
    /// fail).
    pub fn into_command(mut self) -> Command {
        self.open_log();
        self.cmd
    }

    fn open_log(&mut self) {
        if let Some(path) = &self.log {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            self.cmd.stderr(f);
        }
    }

    fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Starts the daemon and waits until `bpfman health` says it serves.
    pub fn start(mut self) -> Daemon {
        self.open_log();
        let child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn daemon: {e}"));
        let mut daemon = Daemon::from_child(child, &self.socket);
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if let Some(status) = daemon.try_wait() {
                panic!(
                    "the daemon exited during start-up: {status}\n{}",
                    self.log_text()
                );
            }
            if healthy(&self.bin, &self.socket) {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("daemon did not become healthy\n{}", self.log_text());
    }
}

/// Does `bpfman health` on `socket` succeed?
pub fn healthy(bin: &Path, socket: &Path) -> bool {
    Command::new(bin)
        .args(["health", "--listen"])
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
