//! bpfman-manager: one orchestration layer for the CLI, the gRPC daemon and
//! the CSI driver. Every operation fetches facts (store, kernel, bpffs), asks
//! the pure core what to do, and executes it with an undo log, under the
//! cross-process writer lock. Mutations are kernel effects first, then one
//! store transaction; a failure anywhere unwinds the kernel effects.

pub mod error;
#[cfg(test)]
mod fake;
pub mod fault;
mod gc;
mod host;
pub mod image;
mod load;
pub mod lock;
mod modify;
mod net;
mod query;
pub mod stats;
pub mod undo;
mod volume;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bpfman_core::RuntimePaths;
use bpfman_store::Store;

pub use error::{Code, ManagerError, Result};
pub use fault::Fault;
pub use query::ListFilter;
pub use volume::PublishRequest;

/// How to open a manager.
#[derive(Debug, Clone)]
pub struct Config {
    /// Runtime directory (default `/run/bpfman`).
    pub runtime_dir: PathBuf,
    /// Injected fault for tests (normally from the environment).
    pub fault: Option<Fault>,
    /// Image settings and signing policy. `None`: read the config file
    /// ([`image::config_path`]) at each image operation, so policy changes
    /// apply without a restart and a bad file only fails image operations.
    pub images: Option<image::ImageConfig>,
}

impl Config {
    /// Config for a runtime dir, with the fault hook read from the environment.
    pub fn new(runtime_dir: impl Into<PathBuf>) -> Self {
        Config {
            runtime_dir: runtime_dir.into(),
            fault: Fault::from_env(),
            images: None,
        }
    }
}

/// The manager. Cheap to share behind an `Arc`; operations serialise on an
/// in-process mutex and the cross-process lock file.
pub struct Manager {
    paths: RuntimePaths,
    store: Mutex<Store>,
    lock: lock::RuntimeLock,
    fault: Option<Fault>,
    images: Option<image::ImageConfig>,
}

impl Manager {
    /// Opens the runtime dir: creates it (0755), mounts bpffs at `<runtime>/fs`
    /// unless it already is one, opens and migrates the store.
    pub fn open(cfg: Config) -> Result<Manager> {
        let paths = RuntimePaths::new(&cfg.runtime_dir);
        // Every call but the first finds the layout in place: one stat
        // (the store's directory implies the runtime dir) instead of a
        // mkdir and a stat per directory.
        if !paths.db_dir().is_dir() {
            create_dir(paths.root())?;
            create_dir(&paths.db_dir())?;
        }
        let lock = lock::RuntimeLock::open(&paths.lock())?;
        // The store first: a runtime dir where it cannot work gets no bpffs.
        let store = Store::open(&paths.db()).map_err(|e| store_open_error(&paths.db_dir(), e))?;
        // Likewise one statfs when the bpffs is there; else, under the
        // writer lock, create and mount it unless another process just did.
        if !bpfman_kernel::is_bpffs(&paths.fs())? {
            let _g = lock.exclusive()?;
            if bpfman_kernel::ensure_bpffs(&paths.fs())? {
                tracing::info!("mounted bpffs at {}", paths.fs().display());
            }
        }
        Ok(Manager {
            paths,
            store: Mutex::new(store),
            lock,
            fault: cfg.fault,
            images: cfg.images,
        })
    }

    /// The runtime layout in use.
    pub fn paths(&self) -> &RuntimePaths {
        &self.paths
    }

    /// Frees the store's caches (see [`Store::release_memory`]); the daemon
    /// calls it when idle so its memory falls back after a burst of requests.
    pub fn release_memory(&self) -> Result<()> {
        self.store()?.release_memory()?;
        Ok(())
    }

    fn store(&self) -> Result<std::sync::MutexGuard<'_, Store>> {
        self.store
            .lock()
            .map_err(|_| ManagerError::internal("store mutex poisoned by an earlier panic"))
    }

    /// Before the first aya load or attach of the process: lets aya reuse
    /// the kernel feature answers of an earlier process of this boot
    /// (see [`bpfman_kernel::share_aya_features`]).
    fn share_aya_features(&self) {
        bpfman_kernel::share_aya_features(&self.paths.kernel_features());
    }

    /// After a load or attach succeeded: keeps aya's answers for later
    /// processes if this one had to probe.
    fn keep_aya_features(&self) {
        bpfman_kernel::keep_aya_features(&self.paths.kernel_features());
    }

    fn fault(&self, point: fault::FaultPoint) -> Result<()> {
        fault::check(&self.fault, point)
    }
}

/// A store that cannot be opened is the environment's fault, with a fix the
/// message names; the file system is named too (9p, NFS: no SQLite locks).
fn store_open_error(db_dir: &Path, e: bpfman_store::StoreError) -> ManagerError {
    let bpfman_store::StoreError::Open { .. } = &e else {
        return e.into();
    };
    let fs = match bpfman_kernel::filesystem_name(db_dir) {
        Some(fs) if bpfman_kernel::is_shared_filesystem(fs) => {
            format!(
                "; {} is on {fs}, where SQLite cannot lock: use a local file system",
                db_dir.display()
            )
        }
        Some(fs) => format!(" [{} is on {fs}]", db_dir.display()),
        None => String::new(),
    };
    ManagerError::new(Code::FailedPrecondition, format!("{e}{fs}"))
}

/// Mode of every directory bpfman creates under the runtime dir.
const DIR_MODE: u32 = 0o755;

fn create_dir(p: &Path) -> Result<()> {
    Ok(bpfman_kernel::fs::create_dir(p, DIR_MODE)?)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
