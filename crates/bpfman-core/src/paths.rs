//! The on-disk layout under a runtime directory (a contract: see README).

use std::path::{Path, PathBuf};

use crate::{LinkId, ProgramId};

/// Default runtime directory.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/bpfman";

/// Paths derived from one runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePaths {
    root: PathBuf,
}

impl RuntimePaths {
    /// Layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RuntimePaths { root: root.into() }
    }
    /// The runtime directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// bpffs mount point: `<runtime>/fs`.
    pub fn fs(&self) -> PathBuf {
        self.root.join("fs")
    }
    /// Directory of one program (and of its maps when it owns them): `<fs>/<id>`.
    pub fn program_dir(&self, id: ProgramId) -> PathBuf {
        self.fs().join(id.to_string())
    }
    /// Program pin: `<fs>/<id>/<name>`.
    pub fn program_pin(&self, id: ProgramId, name: &str) -> PathBuf {
        self.program_dir(id).join(name)
    }
    /// Map pin: `<fs>/<owner>/<map>`.
    pub fn map_pin(&self, owner: ProgramId, map: &str) -> PathBuf {
        self.program_dir(owner).join(map)
    }
    /// Directory holding link pins: `<fs>/links`.
    pub fn links_dir(&self) -> PathBuf {
        self.fs().join("links")
    }
    /// Link pin: `<fs>/links/<link-id>`.
    pub fn link_pin(&self, id: LinkId) -> PathBuf {
        self.links_dir().join(id.to_string())
    }
    /// Directory for CSI volume bpffs mounts: `<runtime>/csi`.
    pub fn csi_dir(&self) -> PathBuf {
        self.root.join("csi")
    }
    /// Store directory: `<runtime>/db`.
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("db")
    }
    /// SQLite store: `<runtime>/db/store.db`.
    pub fn db(&self) -> PathBuf {
        self.db_dir().join("store.db")
    }
    /// Cross-process writer lock file: `<runtime>/lock`.
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// The kernel's BPF feature answers, kept for later processes of the
    /// same boot: `<runtime>/kernel-features`.
    pub fn kernel_features(&self) -> PathBuf {
        self.root.join("kernel-features")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_contract() {
        let p = RuntimePaths::new("/run/bpfman");
        assert_eq!(p.fs(), PathBuf::from("/run/bpfman/fs"));
        assert_eq!(
            p.program_pin(ProgramId(7), "prog"),
            PathBuf::from("/run/bpfman/fs/7/prog")
        );
        assert_eq!(
            p.map_pin(ProgramId(7), "stats_map"),
            PathBuf::from("/run/bpfman/fs/7/stats_map")
        );
        assert_eq!(
            p.link_pin(LinkId(3)),
            PathBuf::from("/run/bpfman/fs/links/3")
        );
        assert_eq!(p.db(), PathBuf::from("/run/bpfman/db/store.db"));
    }
}
