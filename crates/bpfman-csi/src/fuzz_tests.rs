//! Fuzz harnesses for what kubelet (or whoever holds the CSI socket) sends:
//! volume ids and target paths. A target path that is accepted must lie,
//! resolved through symlinks, strictly under the pods directory, whatever
//! `..`, `.`, slashes, NULs or symlinks the input holds.

use std::path::Path;

use bpfman_fuzz::proptest::prelude::*;
use bpfman_fuzz::{config, corpus_lines, mutated_str};

use crate::validate::{TargetUse, confine_target, volume_id};

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn fuzz_csi_volume_id(s in mutated_str(corpus_lines("csi_volume_id"))) {
        if let Ok(id) = volume_id(&s) {
            // It names a directory under <runtime>/csi: never a path.
            prop_assert!(!id.is_empty() && !id.contains('/') && id != "." && id != "..", "{id:?}");
        }
    }

    #[test]
    fn fuzz_csi_target_path(s in mutated_str(corpus_lines("csi_target_path")), absolute in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        let vol = pods.join("6b0f5a44-2f8e-4c1b-9a57-0c0ffee00001/volumes/kubernetes.io~csi/bpf-maps");
        std::fs::create_dir_all(&vol).unwrap();
        // A symlink inside the pods dir that points out of it.
        std::os::unix::fs::symlink(dir.path(), pods.join("escape")).unwrap();
        let raw = if absolute { s.clone() } else { format!("{}/{s}", pods.display()) };
        let canonical = pods.canonicalize().unwrap();
        for usage in [TargetUse::Publish, TargetUse::Unpublish] {
            if let Ok(p) = confine_target(&raw, &pods, usage) {
                let parent = p.parent().unwrap();
                let resolved = parent.canonicalize().unwrap_or_else(|_| parent.to_path_buf());
                prop_assert!(
                    resolved.starts_with(&canonical) && p != canonical,
                    "{raw:?} -> {p:?} escapes {canonical:?}"
                );
                prop_assert!(!Path::new(&p).components().any(|c| c.as_os_str() == ".."));
            }
        }
    }
}
