//! Private runtime dirs with their own bpffs, a recursive directory walker,
//! and paths to the repository's fixtures.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};

/// The repository root (this crate lives at `crates/bpfman-testkit`).
pub fn repo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

/// A file of the repository by repo-relative path (which must exist).
pub fn repo_file(rel: &str) -> PathBuf {
    let p = repo().join(rel);
    assert!(p.exists(), "{} does not exist", p.display());
    p
}

/// A BPF test fixture under `tests/bpf/` (e.g. `fixture("multi.bpf.o")`).
pub fn fixture(name: &str) -> PathBuf {
    repo_file(&format!("tests/bpf/{name}"))
}

/// A private runtime dir (a fresh temp dir) whose `fs` is its bpffs. On drop
/// every mount it tracked is detached, deepest (latest) first, then `fs`,
/// then the dir is removed: pinned objects die with their mount, also when
/// the test panics.
pub struct RuntimeDir {
    dir: tempfile::TempDir,
    mounts: Mutex<Vec<PathBuf>>,
}

impl RuntimeDir {
    /// A fresh temp dir named `<prefix>…`; nothing is mounted yet (bpfman
    /// mounts `fs` itself on first use).
    pub fn new(prefix: &str) -> RuntimeDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir: {e}"));
        RuntimeDir {
            dir,
            mounts: Mutex::new(Vec::new()),
        }
    }

    /// A fresh temp dir with a new bpffs mounted at its `fs`.
    pub fn with_bpffs(prefix: &str) -> RuntimeDir {
        let rt = RuntimeDir::new(prefix);
        let fs = rt.fs();
        std::fs::create_dir(&fs).unwrap_or_else(|e| panic!("{}: {e}", fs.display()));
        nix::mount::mount(
            Some("bpf"),
            &fs,
            Some("bpf"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("mounting bpffs at {}: {e}", fs.display()));
        rt
    }

    /// The runtime dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Its bpffs, `<dir>/fs`.
    pub fn fs(&self) -> PathBuf {
        self.path().join("fs")
    }

    /// A plain directory under the runtime dir, created.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// A path under the bpffs, its parent directory created.
    pub fn pin_path(&self, rel: &str) -> PathBuf {
        let p = self.fs().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        p
    }

    /// Remembers a mount the test made, so that drop undoes it.
    pub fn track_mount(&self, p: &Path) {
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.to_path_buf());
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        // Lazy detach: a pin still held open elsewhere must not keep the
        // mount (or the test) stuck. Not mounted is fine.
        let mounts = self.mounts.get_mut().unwrap_or_else(|e| e.into_inner());
        for p in mounts.iter().rev() {
            let _ = nix::mount::umount2(p, MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&self.fs(), MntFlags::MNT_DETACH);
    }
}

/// Every entry (files and directories) at any depth under `dir`, sorted;
/// empty when `dir` does not exist.
pub fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every file (anything but a directory: pins too) under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    entries_under(dir)
        .into_iter()
        .filter(|p| !p.is_dir())
        .collect()
}
