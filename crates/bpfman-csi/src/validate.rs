//! Request validation: volume ids, volume capabilities and the confinement of
//! target paths to the kubelet pods directory.
//!
//! Target paths come from the network and end up as mount points, so they are
//! checked twice: lexically (absolute, no `..`, below the pods directory), and
//! after resolving symlinks in every existing component (so a symlink planted
//! under the pods directory cannot redirect a mount to `/etc`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use tonic::Status;

use crate::proto::VolumeCapability;
use crate::proto::volume_capability::{AccessType, access_mode::Mode};

/// Longest volume id accepted, in bytes. Kubelet's inline ids are 68 bytes
/// (`csi-` + 64 hex digits); the CSI spec asks plugins to accept at least 128.
pub(crate) const MAX_VOLUME_ID: usize = 128;

/// `volume_context` keys whose values are credentials and must not be logged.
const SECRET_ATTRIBUTES: &[&str] = &["csi.storage.k8s.io/serviceAccount.tokens"];

/// Checks that a volume id is a safe token: the backend may use it as a file
/// name, a mount source or a log field.
pub(crate) fn volume_id(id: &str) -> Result<&str, Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("volume_id is required"));
    }
    if id.len() > MAX_VOLUME_ID {
        return Err(Status::invalid_argument(format!(
            "volume_id is {} bytes long; at most {MAX_VOLUME_ID} are accepted",
            id.len()
        )));
    }
    if id == "." || id == ".." || id.contains('/') || id.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "volume_id {:?} must not be '.' or '..' nor contain '/', NUL or control characters",
            id.escape_debug().to_string()
        )));
    }
    Ok(id)
}

/// What NodePublishVolume asked for, once its capability is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MountCapability {
    /// The access mode allows readers only.
    pub(crate) reader_only: bool,
    /// Group id from `MountVolume.volume_mount_group`.
    pub(crate) fs_group: Option<u32>,
}

/// Validates a volume capability: a `mount` access type (bpffs is a
/// filesystem; raw block access makes no sense), a known access mode, an
/// empty or `bpf` filesystem type, and a numeric mount group if any.
pub(crate) fn capability(cap: Option<&VolumeCapability>) -> Result<MountCapability, Status> {
    let cap = cap.ok_or_else(|| Status::invalid_argument("volume_capability is required"))?;
    let mount = match &cap.access_type {
        Some(AccessType::Mount(m)) => m,
        Some(AccessType::Block(_)) => {
            return Err(Status::invalid_argument(
                "block access is not supported: bpfman volumes are bpffs filesystems; \
                 request a mount volume capability",
            ));
        }
        None => {
            return Err(Status::invalid_argument(
                "volume_capability.access_type is required (mount)",
            ));
        }
    };
    let access_mode = cap
        .access_mode
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("volume_capability.access_mode is required"))?;
    let reader_only = match Mode::try_from(access_mode.mode) {
        Ok(Mode::Unknown) => {
            return Err(Status::invalid_argument(
                "volume_capability.access_mode.mode is required (UNKNOWN was given)",
            ));
        }
        Ok(Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly) => true,
        Ok(_) => false,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "volume_capability.access_mode.mode {} is not a known access mode",
                access_mode.mode
            )));
        }
    };
    if !(mount.fs_type.is_empty() || mount.fs_type == "bpf") {
        return Err(Status::invalid_argument(format!(
            "fs_type {:?} is not supported: bpfman volumes are bpffs (leave fs_type empty)",
            mount.fs_type
        )));
    }
    let group = mount.volume_mount_group.trim();
    let fs_group = if group.is_empty() {
        None
    } else {
        Some(group.parse::<u32>().map_err(|_| {
            Status::invalid_argument(format!(
                "volume_mount_group {group:?} is not a numeric group id"
            ))
        })?)
    };
    Ok(MountCapability {
        reader_only,
        fs_group,
    })
}

/// A copy of `volume_context` that is safe to log: credential-bearing keys
/// keep their name but lose their value.
pub(crate) fn loggable(attrs: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    attrs
        .iter()
        .map(|(k, v)| {
            let shown = if SECRET_ATTRIBUTES.contains(&k.as_str()) {
                "<redacted>"
            } else {
                v.as_str()
            };
            (k.as_str(), shown)
        })
        .collect()
}

/// Which RPC the target path is for: publish needs the parent directory to
/// exist already (kubelet creates it), unpublish must tolerate a pod
/// directory that is already gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetUse {
    Publish,
    Unpublish,
}

/// Confines `raw` to `pods_dir` and returns the path to operate on: the
/// target with every existing parent component resolved through symlinks.
///
/// Refusals are INVALID_ARGUMENT; a missing parent directory on publish is
/// FAILED_PRECONDITION (the request is well-formed, the node is not ready
/// for it); an I/O error while resolving is INTERNAL.
pub(crate) fn confine_target(
    raw: &str,
    pods_dir: &Path,
    usage: TargetUse,
) -> Result<PathBuf, Status> {
    if raw.is_empty() {
        return Err(Status::invalid_argument("target_path is required"));
    }
    if raw.contains('\0') {
        return Err(Status::invalid_argument("target_path must not contain NUL"));
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "target_path {raw:?} must be an absolute path"
        )));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Status::invalid_argument(format!(
            "target_path {raw:?} must not contain '..'"
        )));
    }
    // `components()` already drops `.` and repeated or trailing slashes.
    let target: PathBuf = path.components().collect();
    let lexical_pods: PathBuf = pods_dir.components().collect();
    let canonical_pods = resolve(&lexical_pods).map_err(|e| {
        Status::internal(format!(
            "cannot resolve the pods directory {}: {e}",
            pods_dir.display()
        ))
    })?;
    // The pods directory itself may be reached through a symlink (e.g.
    // /var/lib/kubelet -> /data/kubelet); accept either spelling of it here,
    // the resolved check below is the one that matters.
    if !strictly_under(&target, &lexical_pods) && !strictly_under(&target, &canonical_pods) {
        return Err(Status::invalid_argument(format!(
            "target_path {raw:?} is outside the kubelet pods directory {}",
            pods_dir.display()
        )));
    }
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        // Unreachable: a path strictly under another has both.
        return Err(Status::invalid_argument(format!(
            "target_path {raw:?} has no parent directory"
        )));
    };
    let parent = resolve(parent).map_err(|e| {
        Status::invalid_argument(format!("cannot resolve target_path {raw:?}: {e}"))
    })?;
    if usage == TargetUse::Publish && !parent.is_dir() {
        return Err(Status::failed_precondition(format!(
            "the parent directory of target_path {raw:?} does not exist; \
             kubelet creates it before NodePublishVolume"
        )));
    }
    let resolved = parent.join(name);
    if resolved
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(Status::invalid_argument(format!(
            "target_path {raw:?} is a symlink; refusing to mount through it"
        )));
    }
    if !strictly_under(&resolved, &canonical_pods) {
        return Err(Status::invalid_argument(format!(
            "target_path {raw:?} resolves to {}, outside the kubelet pods directory {}",
            resolved.display(),
            canonical_pods.display()
        )));
    }
    Ok(resolved)
}

/// `path` lies strictly below `dir` (both normalised, absolute).
fn strictly_under(path: &Path, dir: &Path) -> bool {
    path != dir && path.starts_with(dir)
}

/// Resolves symlinks in the longest existing prefix of an absolute,
/// `..`-free path and appends the rest unchanged. A dangling symlink on the
/// way is an error: where it points is exactly what cannot be checked.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut missing: Vec<&std::ffi::OsStr> = Vec::new();
    let mut current = path;
    loop {
        match current.canonicalize() {
            Ok(mut base) => {
                base.extend(missing.iter().rev());
                return Ok(base);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if current.symlink_metadata().is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} is a dangling symlink", current.display()),
                    ));
                }
                match (current.parent(), current.file_name()) {
                    (Some(parent), Some(name)) => {
                        missing.push(name);
                        current = parent;
                    }
                    // Only `/` has no parent, and it always exists.
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::volume_capability::{AccessMode, BlockVolume, MountVolume};
    use std::fs;
    use tonic::Code;

    fn cap(mode: Mode, group: &str) -> VolumeCapability {
        VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume {
                volume_mount_group: group.to_string(),
                ..Default::default()
            })),
            access_mode: Some(AccessMode { mode: mode as i32 }),
        }
    }

    #[test]
    fn volume_ids() {
        assert!(volume_id("csi-0123abcd").is_ok());
        assert!(volume_id(&"a".repeat(128)).is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b", "a\nb", &"a".repeat(129)] {
            assert_eq!(
                volume_id(bad).unwrap_err().code(),
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn capabilities() {
        let c = capability(Some(&cap(Mode::SingleNodeWriter, ""))).unwrap();
        assert_eq!(
            c,
            MountCapability {
                reader_only: false,
                fs_group: None
            }
        );
        let c = capability(Some(&cap(Mode::MultiNodeReaderOnly, " 2000 "))).unwrap();
        assert_eq!(
            c,
            MountCapability {
                reader_only: true,
                fs_group: Some(2000)
            }
        );
        assert!(
            capability(Some(&cap(Mode::SingleNodeReaderOnly, "")))
                .unwrap()
                .reader_only
        );

        let invalid = |c: Option<&VolumeCapability>| capability(c).unwrap_err().code();
        assert_eq!(invalid(None), Code::InvalidArgument);
        assert_eq!(
            invalid(Some(&cap(Mode::Unknown, ""))),
            Code::InvalidArgument
        );
        assert_eq!(
            invalid(Some(&cap(Mode::SingleNodeWriter, "wheel"))),
            Code::InvalidArgument
        );
        let mut c = cap(Mode::SingleNodeWriter, "");
        c.access_mode = Some(AccessMode { mode: 99 });
        assert_eq!(invalid(Some(&c)), Code::InvalidArgument);
        c.access_mode = None;
        assert_eq!(invalid(Some(&c)), Code::InvalidArgument);
        let mut c = cap(Mode::SingleNodeWriter, "");
        c.access_type = Some(AccessType::Block(BlockVolume {}));
        assert_eq!(invalid(Some(&c)), Code::InvalidArgument);
        c.access_type = None;
        assert_eq!(invalid(Some(&c)), Code::InvalidArgument);
        let mut c = cap(Mode::SingleNodeWriter, "");
        c.access_type = Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            ..Default::default()
        }));
        assert_eq!(invalid(Some(&c)), Code::InvalidArgument);
    }

    #[test]
    fn secrets_are_redacted() {
        let attrs = BTreeMap::from([
            (
                "csi.storage.k8s.io/serviceAccount.tokens".to_string(),
                "tok".to_string(),
            ),
            ("bpfman.io/application".to_string(), "stats".to_string()),
        ]);
        let shown = loggable(&attrs);
        assert_eq!(
            shown["csi.storage.k8s.io/serviceAccount.tokens"],
            "<redacted>"
        );
        assert_eq!(shown["bpfman.io/application"], "stats");
    }

    #[test]
    fn confinement() {
        let tmp = tempfile::tempdir().unwrap();
        let pods = tmp.path().join("pods");
        let vol = pods.join("uid/volumes/kubernetes.io~csi/v");
        fs::create_dir_all(&vol).unwrap();
        let canon_vol = vol.canonicalize().unwrap();
        let target = vol.join("mount");
        let t = target.to_str().unwrap();

        let ok = confine_target(t, &pods, TargetUse::Publish).unwrap();
        assert_eq!(ok, canon_vol.join("mount"));
        // `.` and doubled slashes are normalised away.
        let messy = format!("{}/./mount/", vol.to_str().unwrap().replace("/v", "//v"));
        assert_eq!(
            confine_target(&messy, &pods, TargetUse::Publish).unwrap(),
            ok
        );

        let code = |p: &str, u| confine_target(p, &pods, u).unwrap_err().code();
        assert_eq!(code("", TargetUse::Publish), Code::InvalidArgument);
        assert_eq!(
            code("relative/mount", TargetUse::Publish),
            Code::InvalidArgument
        );
        assert_eq!(
            code("/etc/mount", TargetUse::Publish),
            Code::InvalidArgument
        );
        assert_eq!(
            code(pods.to_str().unwrap(), TargetUse::Publish),
            Code::InvalidArgument
        );
        let dotdot = format!("{}/../../../../etc", vol.to_str().unwrap());
        assert_eq!(code(&dotdot, TargetUse::Publish), Code::InvalidArgument);

        // Missing parent: publish waits for kubelet, unpublish goes ahead.
        let gone = pods.join("gone/volumes/x/mount");
        let g = gone.to_str().unwrap();
        assert_eq!(code(g, TargetUse::Publish), Code::FailedPrecondition);
        let resolved = confine_target(g, &pods, TargetUse::Unpublish).unwrap();
        assert!(resolved.ends_with("gone/volumes/x/mount"));

        // A symlinked parent escaping the pods dir, a symlinked target and a
        // dangling symlink are refused.
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, pods.join("uid/volumes/escape")).unwrap();
        let esc = pods.join("uid/volumes/escape/mount");
        assert_eq!(
            code(esc.to_str().unwrap(), TargetUse::Publish),
            Code::InvalidArgument
        );
        assert_eq!(
            code(esc.to_str().unwrap(), TargetUse::Unpublish),
            Code::InvalidArgument
        );
        std::os::unix::fs::symlink(&outside, vol.join("link")).unwrap();
        let link = vol.join("link");
        assert_eq!(
            code(link.to_str().unwrap(), TargetUse::Publish),
            Code::InvalidArgument
        );
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), pods.join("uid/dangling")).unwrap();
        let dangling = pods.join("uid/dangling/x/mount");
        assert_eq!(
            code(dangling.to_str().unwrap(), TargetUse::Unpublish),
            Code::InvalidArgument
        );
    }

    #[test]
    fn pods_dir_reached_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("data/kubelet");
        fs::create_dir_all(real.join("pods/uid/v")).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("kubelet")).unwrap();
        let pods = tmp.path().join("kubelet/pods");
        for spelling in [&pods, &real.join("pods")] {
            let t = spelling.join("uid/v/mount");
            let got = confine_target(t.to_str().unwrap(), &pods, TargetUse::Publish).unwrap();
            assert_eq!(got, real.canonicalize().unwrap().join("pods/uid/v/mount"));
        }
    }
}
