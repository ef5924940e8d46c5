//! Test harness: a private runtime dir with its own bpffs, the real `bpfman`
//! binary, embedded or through a daemon, and raw map reads.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

// Each test binary uses some of these.
use bpfman_testkit::{Daemon, RuntimeDir};
#[allow(unused_imports)]
pub use bpfman_testkit::{kernel_has_program, read_u64, repo, root_or_skip};

/// A test BPF object by repo-relative path.
pub fn obj(rel: &str) -> String {
    repo().join(rel).to_string_lossy().into_owned()
}

/// How commands reach bpfman.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The CLI opens store and kernel itself.
    Embedded,
    /// The CLI talks to a daemon over its socket.
    Remote,
}

/// One isolated bpfman runtime.
pub struct Env {
    pub dir: RuntimeDir,
    pub mode: Mode,
    daemon: Option<Daemon>,
    /// Serve the CSI plugin too (on `csi_socket()`, pods dir `pods()`).
    pub csi: bool,
    /// Extra environment of the daemon (e.g. `BPFMAN_CONFIG`).
    pub daemon_env: Vec<(String, String)>,
}

/// Result of one CLI run.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// Parsed stdout JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bpfman")
}

impl Env {
    /// A fresh runtime dir (bpfman mounts its bpffs on first use).
    pub fn new(mode: Mode) -> Env {
        let dir = RuntimeDir::new("bpfman-test-");
        let mut env = Env {
            dir,
            mode,
            daemon: None,
            csi: false,
            daemon_env: Vec::new(),
        };
        if mode == Mode::Remote {
            env.start_daemon();
        }
        env
    }

    /// A runtime served by a daemon with the CSI plugin.
    pub fn with_csi() -> Env {
        Env::with_csi_env(&[])
    }

    /// A runtime served by a daemon with the CSI plugin and extra environment.
    pub fn with_csi_env(daemon_env: &[(&str, &str)]) -> Env {
        let dir = RuntimeDir::new("bpfman-test-");
        let mut env = Env {
            dir,
            mode: Mode::Remote,
            daemon: None,
            csi: true,
            daemon_env: daemon_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        std::fs::create_dir_all(env.pods()).unwrap();
        env.start_daemon();
        env
    }

    /// A runtime served by a daemon with extra environment; `setup` runs
    /// before the daemon starts (e.g. to prepare the socket directory).
    pub fn remote_with(env: &[(&str, &str)], setup: impl FnOnce(&Env)) -> Env {
        let dir = RuntimeDir::new("bpfman-test-");
        let mut e = Env {
            dir,
            mode: Mode::Remote,
            daemon: None,
            csi: false,
            daemon_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        setup(&e);
        e.start_daemon();
        e
    }

    /// Runs the CLI against the daemon as another user: `groups` become the
    /// supplementary groups, then gid and uid are set (in that order, while
    /// still root).
    pub fn run_as(&self, uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> Run {
        use std::os::unix::process::CommandExt;
        let mut c = self.command(args);
        let groups: Vec<libc::gid_t> = groups.to_vec();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Run::from(c.output().expect("run bpfman as another user"))
    }

    pub fn csi_socket(&self) -> PathBuf {
        self.dir.path().join("csi-plugin/csi.sock")
    }
    pub fn pods(&self) -> PathBuf {
        self.dir.path().join("pods")
    }

    pub fn runtime(&self) -> &Path {
        self.dir.path()
    }
    pub fn fs(&self) -> PathBuf {
        self.dir.path().join("fs")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock/bpfman.sock")
    }

    /// Starts `bpfman serve` on a private socket and waits until it answers.
    pub fn start_daemon(&mut self) {
        let mut d = Daemon::builder(Path::new(bin()), self.runtime(), &self.socket());
        if self.csi {
            d = d.csi(&self.csi_socket(), &self.pods(), "test-node");
        }
        for (k, v) in &self.daemon_env {
            d = d.env(k, v);
        }
        self.daemon = Some(d.start());
    }

    /// The daemon's pid, while it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(Daemon::pid)
    }

    /// Stops the daemon with SIGTERM and waits.
    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--runtime-dir").arg(self.runtime());
        if self.mode == Mode::Remote && self.daemon.is_some() {
            c.arg("--socket").arg(self.socket());
        }
        c.args(args);
        c.env_remove("BPFMAN_SOCKET")
            .env_remove("BPFMAN_FAULT")
            .env_remove("BPFMAN_FAULT_MODE");
        c
    }

    /// Runs the CLI.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run bpfman"))
    }

    /// Runs the CLI embedded (whatever the mode) with extra environment.
    pub fn run_embedded_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = Command::new(bin());
        c.arg("--runtime-dir").arg(self.runtime()).args(args);
        c.env_remove("BPFMAN_SOCKET");
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().expect("run bpfman"))
    }

    /// Runs and asserts success; returns stdout JSON (adds `-o json`).
    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let r = self.run(&a);
        assert!(r.ok, "bpfman {args:?} failed: {}", r.stderr);
        r.json()
    }

    /// Runs and asserts failure with a one-line error; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(
            !r.ok,
            "bpfman {args:?} unexpectedly succeeded: {}",
            r.stdout
        );
        assert_eq!(r.code, Some(1), "exit code for {args:?}: {}", r.stderr);
        // One line a person acts on; detail (a verifier log) only on marked continuation lines.
        let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "no error message for {args:?}");
        assert!(lines[0].starts_with("Error: "), "{}", r.stderr);
        assert!(
            lines[1..].iter().all(|l| l.starts_with("  | ")),
            "error for {args:?} is not one line:\n{}",
            r.stderr
        );
        lines[0].to_string()
    }

    /// Loads and returns the ids of the loaded programs.
    pub fn load(&self, args: &[&str]) -> Vec<u32> {
        let mut a = vec!["load", "file"];
        a.extend(args);
        let v = self.ok_json(&a);
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap() as u32)
            .collect()
    }

    /// Numbered program directories and link pins left under `<fs>`.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.fs()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".debug") {
                    continue; // the kernel's bpffs preload iterators
                }
                if name == "dispatchers" {
                    // The layout skeleton may stay; pins inside may not.
                    out.extend(files_under(&e.path()));
                    continue;
                }
                if name == "links" {
                    for l in std::fs::read_dir(e.path()).unwrap().flatten() {
                        out.push(format!("links/{}", l.file_name().to_string_lossy()));
                    }
                } else {
                    out.push(name);
                }
            }
        }
        out.sort();
        out
    }

    /// Asserts the runtime holds nothing: no rows, no pins, gc clean.
    pub fn assert_empty(&self) {
        let list = self.ok_json(&["list"]);
        assert_eq!(list.as_array().unwrap().len(), 0, "programs left: {list}");
        let links = self.ok_json(&["list", "links"]);
        assert_eq!(links.as_array().unwrap().len(), 0, "links left: {links}");
        assert_eq!(
            self.leftovers(),
            Vec::<String>::new(),
            "pins left under {}",
            self.fs().display()
        );
        let gc = self.ok_json(&["gc"]);
        assert_eq!(gc["items"].as_array().unwrap().len(), 0, "gc finds: {gc}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_daemon();
        // Volume targets under the private pods dir first, then their bpffs.
        for m in mounts_under(&self.pods()) {
            umount(Path::new(&m));
        }
        // Unmount every volume; the private bpffs goes with `dir`: pinned
        // objects die with it.
        let csi = self.dir.path().join("csi");
        if let Ok(rd) = std::fs::read_dir(&csi) {
            for e in rd.flatten() {
                umount(&e.path());
            }
        }
    }
}

pub fn umount(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().to_string_lossy().as_bytes()).unwrap();
    // SAFETY: valid C string; failure (not mounted) is fine.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// Polls until `f` is true or 60 s pass (emulated VMs are slow).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect();
    v.sort();
    v.reverse();
    v
}

/// Files (pins) anywhere under `dir`.
pub fn files_under(dir: &Path) -> Vec<String> {
    bpfman_testkit::files_under(dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// Everything under `dir`: each path with its type and mode, and the bytes of
/// every regular file (the SQLite database and WAL included), except under
/// bpffs mounts, whose pins are compared by name, type and mode. The WAL's
/// `-shm` index is compared by name and mode only: it is SQLite's
/// shared-memory lock and read-mark area, rebuilt from the WAL by the first
/// process that opens the store, so any open rewrites it.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fn walk(
        root: &Path,
        dir: &Path,
        bpffs: bool,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mode = md.permissions().mode() & 0o7777;
            let ft = md.file_type();
            if ft.is_dir() {
                // A mount point on a bpffs (magic 0xcafe4a11) marks pins below.
                let under_bpffs = bpffs || nix_is_bpffs(&p, md.dev(), dir);
                out.insert(rel, format!("dir {mode:o}"));
                walk(root, &p, under_bpffs, out);
            } else if ft.is_file() && !bpffs && !rel.ends_with("-shm") {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(rel, format!("file {mode:o} {:?}", bytes));
            } else {
                out.insert(rel, format!("{:?} {mode:o}", ft));
            }
        }
    }
    fn nix_is_bpffs(p: &Path, dev: u64, parent: &Path) -> bool {
        let parent_dev = std::fs::metadata(parent).map(|m| m.dev()).unwrap_or(dev);
        if parent_dev == dev {
            return false;
        }
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: statfs on a valid C string into a zeroed struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0) && st.f_type as u64 == 0xcafe4a11
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, false, &mut out);
    out
}

/// Asserts two [`tree`] snapshots are equal, naming what differs.
pub fn assert_same_tree(
    what: &str,
    before: &std::collections::BTreeMap<String, String>,
    after: &std::collections::BTreeMap<String, String>,
) {
    let mut diff = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diff.push(format!("removed {k}")),
            Some(a) if a != v => diff.push(format!("changed {k}")),
            _ => {}
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        diff.push(format!("created {k}"));
    }
    assert!(diff.is_empty(), "{what} changed the runtime tree: {diff:?}");
}
