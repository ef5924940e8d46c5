//! Static configuration of the CSI node plugin.

use std::path::PathBuf;

use crate::CsiError;

/// Default CSI driver name (must equal the CSIDriver object's name).
pub const DEFAULT_DRIVER_NAME: &str = "csi.go-bpfman.io";
/// Default kubelet pods directory: every target path must lie below it.
pub const DEFAULT_PODS_DIR: &str = "/var/lib/kubelet/pods";
/// Default CSI socket (the `CSI_ENDPOINT` environment variable overrides it).
pub const DEFAULT_ENDPOINT: &str = "/var/lib/kubelet/plugins/csi.go-bpfman.io/csi.sock";

/// Longest driver name the CSI spec allows.
const MAX_DRIVER_NAME: usize = 63;
/// Longest node id the CSI spec allows, in bytes.
const MAX_NODE_ID: usize = 256;

/// Configuration of the CSI node plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiConfig {
    /// Driver name reported by GetPluginInfo (default [`DEFAULT_DRIVER_NAME`]).
    pub driver_name: String,
    /// Node id reported by NodeGetInfo (usually the Kubernetes node name).
    pub node_id: String,
    /// Kubelet pods directory that confines target paths
    /// (default [`DEFAULT_PODS_DIR`]).
    pub pods_dir: PathBuf,
    /// Vendor version reported by GetPluginInfo.
    pub version: String,
}

impl CsiConfig {
    /// A configuration with the default driver name, pods directory and this
    /// crate's version, for the given node.
    pub fn new(node_id: impl Into<String>) -> Self {
        CsiConfig {
            driver_name: DEFAULT_DRIVER_NAME.to_string(),
            node_id: node_id.into(),
            pods_dir: PathBuf::from(DEFAULT_PODS_DIR),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Checks what the CSI spec requires of the values reported to kubelet:
    /// a non-empty driver name of at most 63 characters in domain-name form
    /// (alphanumerics, `-` and `.`, starting and ending alphanumeric), a
    /// non-empty node id of at most 256 bytes, and an absolute pods directory.
    pub fn validate(&self) -> Result<(), CsiError> {
        let name = &self.driver_name;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_DRIVER_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !name_ok {
            return Err(CsiError::Config(format!(
                "driver name {name:?} must be 1-{MAX_DRIVER_NAME} characters of [A-Za-z0-9.-], \
                 starting and ending with an alphanumeric"
            )));
        }
        if self.node_id.is_empty() || self.node_id.len() > MAX_NODE_ID {
            return Err(CsiError::Config(format!(
                "node id {:?} must be 1-{MAX_NODE_ID} bytes (set it to the Kubernetes node name)",
                self.node_id
            )));
        }
        if !self.pods_dir.is_absolute() {
            return Err(CsiError::Config(format!(
                "pods directory {} must be an absolute path",
                self.pods_dir.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let cfg = CsiConfig::new("node-1");
        assert_eq!(cfg.driver_name, "csi.go-bpfman.io");
        assert_eq!(cfg.pods_dir, PathBuf::from("/var/lib/kubelet/pods"));
        cfg.validate().unwrap();
    }

    #[test]
    fn rejects_bad_values() {
        for name in ["", "-x", "x-", "a/b", &"a".repeat(64)] {
            let mut cfg = CsiConfig::new("n");
            cfg.driver_name = name.to_string();
            assert!(cfg.validate().is_err(), "{name:?}");
        }
        assert!(CsiConfig::new("").validate().is_err());
        let mut cfg = CsiConfig::new("n");
        cfg.pods_dir = PathBuf::from("pods");
        assert!(cfg.validate().is_err());
    }
}
