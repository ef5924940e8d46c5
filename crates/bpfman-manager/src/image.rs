//! BPF bytecode from OCI images: the image settings, the pull that precedes
//! an image `load`, and the image operations the CLI and the gRPC server
//! offer (pull, inspect, build, prune). The work itself is `bpfman-image`'s;
//! this module picks the settings and credentials, turns its errors into
//! manager codes and its results into serialisable summaries.
//!
//! Credentials (a load spec's `registry_auth`, `--registry-auth`, auth files)
//! only travel to `bpfman-image` in memory: nothing here stores, logs or
//! returns them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bpfman_core::ProgramKind;
use bpfman_core::spec::{BytecodeSource, LoadSpec, ProgramRequest, RegistryAuth};
use bpfman_image::{
    BuildDest, BuildRequest, Credentials, ImageError, Platform, PulledImage, SignatureStatus,
};
use serde::Serialize;

pub use bpfman_image::{ImageConfig, ImageInfo, Platform as ImagePlatform, PullPolicy};

use crate::Manager;
use crate::error::{Code, ManagerError, Result};

/// Where the image settings and signing policy live unless `BPFMAN_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/bpfman/bpfman.toml";
/// Environment variable naming another config file.
pub const CONFIG_ENV: &str = "BPFMAN_CONFIG";
/// Environment variable overriding `images.cache_dir` (tests use a private cache).
pub const CACHE_ENV: &str = "BPFMAN_IMAGE_CACHE";

/// The config file in effect: `$BPFMAN_CONFIG`, else `/etc/bpfman/bpfman.toml`.
pub fn config_path() -> PathBuf {
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// Reads the image settings and signing policy from [`config_path`] (a
/// missing file gives the defaults) and applies `$BPFMAN_IMAGE_CACHE`.
pub fn image_config_from_env() -> Result<ImageConfig> {
    let mut cfg = bpfman_image::load_config(&config_path())?;
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            return Err(ManagerError::invalid(format!(
                "{CACHE_ENV}={} must be an absolute path",
                dir.display()
            )));
        }
        cfg.cache_dir = dir;
    }
    Ok(cfg)
}

impl From<ImageError> for ManagerError {
    fn from(e: ImageError) -> Self {
        let code = match &e {
            ImageError::InvalidReference { .. }
            | ImageError::Corrupt { .. }
            | ImageError::TooLarge { .. }
            | ImageError::Build(_) => Code::InvalidArgument,
            ImageError::NotFound { .. } => Code::NotFound,
            ImageError::Unauthorized { .. }
            | ImageError::NotCached { .. }
            | ImageError::NoPlatform { .. }
            | ImageError::SignatureMissing { .. }
            | ImageError::SignatureInvalid { .. }
            | ImageError::Policy(_)
            | ImageError::UntrustedCertificate { .. }
            | ImageError::Certificate { .. }
            | ImageError::Config { .. } => Code::FailedPrecondition,
            ImageError::Network { .. } => Code::Unavailable,
            // A registry that is overloaded or failing may answer later.
            ImageError::Registry { status, .. } if *status == 429 || *status >= 500 => {
                Code::Unavailable
            }
            ImageError::Registry { .. } => Code::FailedPrecondition,
            ImageError::Unsupported => Code::Unimplemented,
            ImageError::Io { .. } => Code::Internal,
        };
        // bpfman-image's messages name the image and never carry credentials.
        ManagerError::new(code, e.to_string())
    }
}

/// The credentials for a pull of `reference`: the explicit ones, else the
/// ones the docker/podman auth files hold for its registry.
fn credentials(reference: &str, auth: Option<&RegistryAuth>) -> Option<Credentials> {
    match auth {
        Some(a) => Some(Credentials::new(&a.username, &a.password)),
        None => bpfman_image::credentials_for_reference(reference),
    }
}

/// Decodes upstream's `--registry-auth` (base64 of `user:password`).
pub fn registry_auth_from_base64(encoded: &str) -> Result<RegistryAuth> {
    let c = Credentials::from_base64(encoded).map_err(|e| ManagerError::invalid(e.to_string()))?;
    Ok(RegistryAuth {
        username: c.username,
        password: c.password,
    })
}

/// The programs an image's `io.ebpf.programs` label names, as load requests.
/// A type bpfman does not know leaves the kind to the ELF section.
fn label_programs(labels: &BTreeMap<String, String>) -> Vec<ProgramRequest> {
    labels
        .iter()
        .map(|(name, ty)| ProgramRequest {
            name: name.clone(),
            kind: ty.parse::<ProgramKind>().ok(),
            attach_fn: None,
        })
        .collect()
}

/// What a pull brought (everything but the object's bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledImageInfo {
    /// Normalised reference.
    pub reference: String,
    /// Digest the reference resolved to (an index or a manifest).
    pub digest: String,
    /// Digest of the platform image manifest (what loads record).
    pub manifest_digest: String,
    /// File name of the BPF object inside the layer.
    pub object_name: String,
    /// Size of the object in bytes.
    pub object_bytes: usize,
    /// `io.ebpf.programs`: program name → type.
    pub programs: BTreeMap<String, String>,
    /// `io.ebpf.maps`: map name → type.
    pub maps: BTreeMap<String, String>,
    /// `not_checked` (verification off), `unsigned` (allowed by the policy) or `verified`.
    pub signature: String,
    /// For `verified` with a key: the `sha256:` fingerprint of the key that verified it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// For `verified` by a keyless signature: who signed, per the Fulcio
    /// certificate, and the Rekor entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessSigner>,
    /// True when no request went to the registry.
    pub from_cache: bool,
}

/// The signer of a verified keyless signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeylessSigner {
    /// The certificate's subject alternative name that matched the policy.
    pub identity: String,
    /// The OIDC issuer recorded in the certificate.
    pub issuer: String,
    /// Rekor log index of the signature.
    pub rekor_log_index: u64,
    /// When Rekor logged it (Unix seconds).
    pub integrated_time: i64,
}

impl From<&PulledImage> for PulledImageInfo {
    fn from(p: &PulledImage) -> Self {
        let (signature, signed_by, keyless) = match &p.signature {
            SignatureStatus::NotChecked => ("not_checked", None, None),
            SignatureStatus::Unsigned => ("unsigned", None, None),
            SignatureStatus::Verified { key, .. } => ("verified", Some(key.clone()), None),
            SignatureStatus::VerifiedKeyless {
                identity,
                issuer,
                log_index,
                integrated_time,
                ..
            } => (
                "verified",
                None,
                Some(KeylessSigner {
                    identity: identity.clone(),
                    issuer: issuer.clone(),
                    rekor_log_index: *log_index,
                    integrated_time: *integrated_time,
                }),
            ),
        };
        PulledImageInfo {
            reference: p.reference.clone(),
            digest: p.digest.clone(),
            manifest_digest: p.manifest_digest.clone(),
            object_name: p.object_name.clone(),
            object_bytes: p.object.len(),
            programs: p.programs.clone(),
            maps: p.maps.clone(),
            signature: signature.to_string(),
            signed_by,
            keyless,
            from_cache: p.from_cache,
        }
    }
}

fn pull(
    cfg: &ImageConfig,
    reference: &str,
    policy: PullPolicy,
    auth: Option<&RegistryAuth>,
) -> Result<PulledImage> {
    let creds = credentials(reference, auth);
    Ok(bpfman_image::pull(cfg, reference, policy, creds.as_ref())?)
}

/// Pulls (or finds in the cache, per `policy`) and verifies an image.
pub fn pull_image(
    cfg: &ImageConfig,
    reference: &str,
    policy: Option<PullPolicy>,
    auth: Option<&RegistryAuth>,
) -> Result<PulledImageInfo> {
    let img = pull(cfg, reference, policy.unwrap_or_default(), auth)?;
    tracing::info!(reference = %img.reference, digest = %img.digest, from_cache = img.from_cache, "pulled image");
    Ok(PulledImageInfo::from(&img))
}

/// Reads an image's manifest and labels (not its layer, not its signature).
pub fn inspect_image(
    cfg: &ImageConfig,
    reference: &str,
    policy: Option<PullPolicy>,
    auth: Option<&RegistryAuth>,
) -> Result<ImageInfo> {
    let policy = policy.unwrap_or_default();
    let creds = credentials(reference, auth);
    Ok(bpfman_image::inspect(
        cfg,
        reference,
        policy,
        creds.as_ref(),
    )?)
}

/// Where a built image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildTarget {
    /// An OCI layout directory, under a tag.
    OciLayout {
        /// Directory (created if needed).
        dir: PathBuf,
        /// Tag in its `index.json`.
        tag: String,
    },
    /// A registry reference with a tag.
    Push(String),
}

/// One object of a build, for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildObject {
    /// The BPF ELF object.
    pub path: PathBuf,
    /// Platform `os/arch[/variant]`; default the host's (single object only).
    pub platform: Option<String>,
}

/// An image to build from a BPF object, or a multi-arch index from one
/// object per platform.
#[derive(Debug, Clone)]
pub struct BuildImageRequest {
    /// The objects: one, or several each with its platform (then the image
    /// is an index over one image per platform).
    pub objects: Vec<BuildObject>,
    /// `io.ebpf.programs`; empty = every program of the object bpfman knows
    /// the type of (from its ELF section).
    pub programs: BTreeMap<String, String>,
    /// `io.ebpf.maps` (label left out when empty).
    pub maps: BTreeMap<String, String>,
    /// Sign with this PEM ECDSA P-256 private key.
    pub sign_key: Option<PathBuf>,
    /// Destination.
    pub target: BuildTarget,
    /// Credentials for a push (else from the auth files).
    pub auth: Option<RegistryAuth>,
}

/// What a build wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuiltImage {
    /// Where it is, with tag and digest.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// The cosign signature manifest's digest, when signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The `io.ebpf.programs` label written.
    pub programs: BTreeMap<String, String>,
    /// The `io.ebpf.maps` label written.
    pub maps: BTreeMap<String, String>,
    /// For a multi-arch index: each platform's image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PlatformImage>,
}

/// One platform's image in a built index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformImage {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Its manifest digest.
    pub digest: String,
}

/// The programs of an object, name → type from their ELF sections (those
/// whose section names no type bpfman manages are left out).
pub fn object_program_labels(object: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = crate::load::read_object(object)?;
    let programs = bpfman_kernel::inspect_object(&bytes).map_err(|e| {
        let e = ManagerError::from(e);
        ManagerError::new(e.code, format!("{}: {}", object.display(), e.message))
    })?;
    Ok(programs
        .into_iter()
        .filter_map(|p| p.kind.map(|k| (p.name, k.to_string())))
        .collect())
}

fn parse_platform(p: &str) -> Result<Platform> {
    p.parse()
        .map_err(|e: String| ManagerError::invalid(format!("platform '{p}': {e}")))
}

/// Builds a bytecode image and writes it to an OCI layout or a registry;
/// with one object per platform, a multi-arch index over them.
pub fn build_image(cfg: &ImageConfig, req: &BuildImageRequest) -> Result<BuiltImage> {
    let Some(first) = req.objects.first() else {
        return Err(ManagerError::invalid("no object to build an image from"));
    };
    let mut programs = req.programs.clone();
    if programs.is_empty() {
        programs = object_program_labels(&first.path)?;
        if programs.is_empty() {
            return Err(ManagerError::invalid(format!(
                "{} holds no program of a type bpfman knows: name them with --program NAME=TYPE",
                first.path.display()
            )));
        }
        // One label for the whole index: the objects must agree.
        for o in &req.objects[1..] {
            if object_program_labels(&o.path)? != programs {
                return Err(ManagerError::invalid(format!(
                    "{} and {} hold different programs: name the programs with --program NAME=TYPE",
                    first.path.display(),
                    o.path.display()
                )));
            }
        }
    }
    let mut builds = Vec::new();
    for o in &req.objects {
        let mut build = BuildRequest::new(&o.path);
        build.programs = programs.clone();
        build.maps = req.maps.clone();
        if let Some(p) = &o.platform {
            build.platform = parse_platform(p)?;
        }
        builds.push(build);
    }
    let (dest, creds) = match &req.target {
        BuildTarget::OciLayout { dir, tag } => (
            BuildDest::OciLayout {
                dir: dir.clone(),
                tag: tag.clone(),
            },
            None,
        ),
        BuildTarget::Push(r) => (
            BuildDest::Registry(r.clone()),
            credentials(r, req.auth.as_ref()),
        ),
    };
    let (out, images) = if let [single] = builds.as_mut_slice() {
        single.sign_key = req.sign_key.clone();
        (
            bpfman_image::build(cfg, single, &dest, creds.as_ref())?,
            Vec::new(),
        )
    } else {
        let m = bpfman_image::build_multi(
            cfg,
            &builds,
            &dest,
            req.sign_key.as_deref(),
            creds.as_ref(),
        )?;
        let images = m
            .images
            .into_iter()
            .map(|(p, digest)| PlatformImage {
                platform: p.to_string(),
                digest,
            })
            .collect();
        (m.index, images)
    };
    Ok(BuiltImage {
        reference: out.reference,
        digest: out.digest,
        signature: out.signature,
        programs,
        maps: req.maps.clone(),
        images,
    })
}

/// What a cache prune did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneSummary {
    /// The cache directory.
    pub cache_dir: String,
    /// Digests of the images removed.
    pub images_removed: Vec<String>,
    /// Blob files deleted.
    pub blobs_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Bytes still cached.
    pub bytes_kept: u64,
}

/// Bounds the image cache (empties it with `all`).
pub fn prune_images(cfg: &ImageConfig, all: bool) -> Result<PruneSummary> {
    let r = bpfman_image::prune(cfg, all)?;
    Ok(PruneSummary {
        cache_dir: cfg.cache_dir.to_string_lossy().into_owned(),
        images_removed: r.images_removed,
        blobs_removed: r.blobs_removed,
        bytes_freed: r.bytes_freed,
        bytes_kept: r.bytes_kept,
    })
}

/// An image load, ready for the object path of `load`.
pub(crate) struct ImageObject {
    /// The BPF object.
    pub bytes: Vec<u8>,
    /// How errors name it: `image REF`.
    pub origin: String,
}

impl Manager {
    /// The image settings in effect: the ones the manager was opened with,
    /// else the config file read now (so a changed signing policy applies
    /// to the next pull without a restart).
    pub fn image_config(&self) -> Result<ImageConfig> {
        match &self.images {
            Some(c) => Ok(c.clone()),
            None => image_config_from_env(),
        }
    }

    /// Pulls an image into the cache (gRPC `PullBytecode`). Needs no lock:
    /// the cache is safe for concurrent pulls.
    pub fn pull_image(
        &self,
        reference: &str,
        policy: Option<PullPolicy>,
        auth: Option<&RegistryAuth>,
    ) -> Result<PulledImageInfo> {
        pull_image(&self.image_config()?, reference, policy, auth)
    }

    /// For a load from an image: pulls it (network; called before the writer
    /// lock is taken), names the programs from its labels when the spec names
    /// none, and records the manifest digest in the spec's source. Clears the
    /// transport-only fields so they go no further.
    pub(crate) fn pull_for_load(&self, spec: &mut LoadSpec) -> Result<Option<ImageObject>> {
        let BytecodeSource::Image { url, digest } = &spec.source else {
            return Ok(None);
        };
        // A digest in the spec pins the image (`repo:tag@digest`).
        let reference = match digest {
            Some(d) if !url.contains('@') => format!("{url}@{d}"),
            _ => url.clone(),
        };
        let cfg = self.image_config()?;
        let img = pull(
            &cfg,
            &reference,
            spec.pull_policy.unwrap_or_default(),
            spec.registry_auth.as_ref(),
        )?;
        spec.pull_policy = None;
        spec.registry_auth = None;
        tracing::info!(
            reference = %img.reference,
            digest = %img.manifest_digest,
            from_cache = img.from_cache,
            "pulled image for load"
        );
        if spec.programs.is_empty() {
            spec.programs = label_programs(&img.programs);
        }
        let origin = format!("image {url}");
        spec.source = BytecodeSource::Image {
            url: url.clone(),
            digest: Some(img.manifest_digest),
        };
        Ok(Some(ImageObject {
            bytes: img.object,
            origin,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes() {
        let cases = [
            (
                ImageError::NotFound {
                    reference: "r".into(),
                    reason: "x".into(),
                },
                Code::NotFound,
            ),
            (
                ImageError::Unauthorized {
                    registry: "r".into(),
                    reason: "refused the credentials".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                ImageError::NotCached {
                    reference: "r".into(),
                    cache_dir: "/c".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                ImageError::SignatureMissing {
                    reference: "r".into(),
                    digest: "d".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                ImageError::Corrupt {
                    reference: "r".into(),
                    reason: "x".into(),
                },
                Code::InvalidArgument,
            ),
            (
                ImageError::Network {
                    registry: "r".into(),
                    reason: "x".into(),
                },
                Code::Unavailable,
            ),
            (
                ImageError::UntrustedCertificate {
                    registry: "r".into(),
                    ca_path: "/etc/bpfman/certs.d/r/ca.crt".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                ImageError::Certificate {
                    path: "/etc/bpfman/certs.d/r/ca.crt".into(),
                    reason: "x".into(),
                },
                Code::FailedPrecondition,
            ),
            (ImageError::Unsupported, Code::Unimplemented),
        ];
        for (e, code) in cases {
            let msg = e.to_string();
            let m = ManagerError::from(e);
            assert_eq!(m.code, code, "{msg}");
            assert_eq!(m.message, msg);
        }
    }

    #[test]
    fn labels_become_requests() {
        let labels: BTreeMap<String, String> = [
            ("a".to_string(), "tracepoint".to_string()),
            ("b".to_string(), "something_new".to_string()),
        ]
        .into();
        let r = label_programs(&labels);
        assert_eq!(r[0].name, "a");
        assert_eq!(r[0].kind, Some(ProgramKind::Tracepoint));
        assert_eq!(r[1].kind, None);
    }

    #[test]
    fn registry_auth_decoding_never_echoes_the_input() {
        // base64("alice:pw")
        let a = registry_auth_from_base64("YWxpY2U6cHc=").unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.password, "pw");
        let e = registry_auth_from_base64("not base64 secret!").unwrap_err();
        assert!(!e.message.contains("secret"), "{}", e.message);
        assert_eq!(e.code, Code::InvalidArgument);
    }
}
