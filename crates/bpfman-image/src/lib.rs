//! BPF bytecode in OCI images, the format upstream bpfman uses: an ordinary
//! image whose single gzip-tar layer holds the BPF ELF object, with the image
//! config labels `io.ebpf.programs` and `io.ebpf.maps` (JSON objects: name →
//! type).
//!
//! Everything here is blocking and self-contained, so the manager, the CLI
//! and the gRPC server can call it from any thread:
//!
//! - [`pull`]: resolve a reference (multi-arch indexes to the configured
//!   platform), fetch with bounded sizes and verified digests, cache by digest,
//!   unpack and check the ELF, apply the cosign signing policy.
//! - [`inspect`]: labels, digests and platforms without downloading the layer.
//! - [`build`] / [`build_multi`] / [`build_index`]: write an image from an object (optionally
//!   signed) to a registry or an OCI layout directory.
//! - [`prune`]: bound the cache.
//! - [`load_config`], [`credentials_from_auth_files`]: settings and credentials.
//!
//! The registry client, layer codec and signing live behind the cargo feature
//! `oci` (on by default); without it those functions return
//! [`ImageError::Unsupported`].

#![warn(missing_docs)]
// Without `oci`, the cache writer and credential helpers have no caller.
#![cfg_attr(not(feature = "oci"), allow(dead_code))]

mod auth;
mod cache;
mod config;
mod digest;
#[cfg(feature = "oci")]
mod elf;
mod error;
pub mod oci;
mod platform;
mod reference;

#[cfg(feature = "oci")]
mod build;
#[cfg(feature = "oci")]
mod bundle;
#[cfg(all(test, feature = "oci"))]
mod fuzz_tests;
#[cfg(feature = "oci")]
mod keyless;
#[cfg(feature = "oci")]
mod layer;
#[cfg(feature = "oci")]
mod pki;
#[cfg(feature = "oci")]
mod pull;
#[cfg(feature = "oci")]
mod registry;
#[cfg(feature = "oci")]
mod sign;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(feature = "oci")]
mod tls;
#[cfg(feature = "oci")]
mod trust_root;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use auth::{
    Credentials, auth_file_paths, credentials_for_reference, credentials_from_auth_file,
    credentials_from_auth_files,
};
pub use cache::PruneReport;
pub use config::{
    ConfigError, DEFAULT_CACHE_DIR, DEFAULT_CERTS_DIR, DEFAULT_MAX_CACHE_BYTES,
    DEFAULT_MAX_LAYER_BYTES, IdentityRule, ImageConfig, KeylessPolicy, MAX_LAYER_ENTRIES,
    MAX_MANIFEST_BYTES, MAX_REFERRERS, SignaturePolicy, load_config, parse_config,
};
pub use error::ImageError;
pub use platform::Platform;
pub use reference::Reference;

/// When to contact the registry (defined with the load spec that carries it).
pub use bpfman_core::spec::PullPolicy;

/// What signature checking concluded (failures are errors instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// `signing.verify = false`: nothing was fetched or checked.
    NotChecked,
    /// Verification is on, the image has no signature, and unsigned images
    /// are allowed.
    Unsigned,
    /// A cosign signature verified with the configured key.
    Verified {
        /// `sha256:` fingerprint of the key's DER SubjectPublicKeyInfo.
        key: String,
        /// The digest the signature covers (the index or the platform manifest).
        signed_digest: String,
    },
    /// A keyless cosign signature: a Fulcio certificate of a signer the
    /// policy accepts, logged in a Rekor log of the trust root.
    VerifiedKeyless {
        /// The certificate's subject alternative name that matched a rule.
        identity: String,
        /// The OIDC issuer recorded in the certificate.
        issuer: String,
        /// The digest the signature covers.
        signed_digest: String,
        /// Rekor log index of the signature's entry.
        log_index: u64,
        /// When Rekor logged it (Unix seconds): the time the certificate
        /// and the CA were checked at.
        integrated_time: i64,
    },
}

/// A pulled, verified bytecode image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// Normalised reference (`registry/repository:tag[@digest]`).
    pub reference: String,
    /// Digest the reference resolved to (an index or a manifest): pin with
    /// `repository@digest` to get the same image again.
    pub digest: String,
    /// Digest of the platform image manifest (equals `digest` without an index).
    pub manifest_digest: String,
    /// The BPF ELF object, byte for byte as packed.
    pub object: Vec<u8>,
    /// File name of the object inside the layer.
    pub object_name: String,
    /// `io.ebpf.programs`: program name → type (empty without the label).
    pub programs: BTreeMap<String, String>,
    /// `io.ebpf.maps`: map name → type (empty without the label).
    pub maps: BTreeMap<String, String>,
    /// Signature verdict under the configured policy.
    pub signature: SignatureStatus,
    /// True when no request went to the registry.
    pub from_cache: bool,
}

/// What [`inspect`] reports. Serializes as `bpfman image inspect -o json`
/// shows it, platforms as `os/arch[/variant]` strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    /// Normalised reference.
    pub reference: String,
    /// Digest the reference resolved to.
    pub digest: String,
    /// Digest of the platform image manifest.
    pub manifest_digest: String,
    /// Platform from the image config, when it has one.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "platform_string"
    )]
    pub platform: Option<Platform>,
    /// Platforms an index offers (empty for a plain manifest).
    #[serde(serialize_with = "platform_strings")]
    pub index_platforms: Vec<Platform>,
    /// `io.ebpf.programs`.
    pub programs: BTreeMap<String, String>,
    /// `io.ebpf.maps`.
    pub maps: BTreeMap<String, String>,
    /// All image labels.
    pub labels: BTreeMap<String, String>,
    /// Digest of the bytecode layer.
    pub layer_digest: String,
    /// Size of the layer as stored.
    pub layer_size: u64,
    /// Whether the layer is in the cache.
    pub layer_cached: bool,
}

fn platform_string<S: serde::Serializer>(p: &Option<Platform>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&p.as_ref().map(Platform::to_string).unwrap_or_default())
}

fn platform_strings<S: serde::Serializer>(p: &[Platform], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(Platform::to_string))
}

/// An image to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// The BPF ELF object.
    pub object: PathBuf,
    /// `io.ebpf.programs` (label left out when empty).
    pub programs: BTreeMap<String, String>,
    /// `io.ebpf.maps` (label left out when empty).
    pub maps: BTreeMap<String, String>,
    /// Platform written into the image config; its byte order must match
    /// the object's.
    pub platform: Platform,
    /// PEM ECDSA P-256 private key (PKCS#8 or SEC1, unencrypted): sign the
    /// image the cosign way.
    pub sign_key: Option<PathBuf>,
}

impl BuildRequest {
    /// A request for `object` on the host platform, unsigned, without labels.
    pub fn new(object: impl Into<PathBuf>) -> Self {
        BuildRequest {
            object: object.into(),
            programs: BTreeMap::new(),
            maps: BTreeMap::new(),
            platform: Platform::host(),
            sign_key: None,
        }
    }
}

/// Where [`build`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildDest {
    /// An OCI image layout directory (created if needed), with the manifest
    /// listed in its `index.json` under `tag`.
    OciLayout {
        /// Layout directory.
        dir: PathBuf,
        /// Tag (`org.opencontainers.image.ref.name`).
        tag: String,
    },
    /// A registry reference with a tag (`127.0.0.1:5000/bpf/stats:v1`).
    Registry(String),
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// Manifest (or index) digest.
    pub digest: String,
    /// Where it is, with tag and digest.
    pub reference: String,
    /// Digest of the cosign signature manifest, when signed.
    pub signature: Option<String>,
}

/// Pulls `reference` (or takes it from the cache, per `policy`), verifies it
/// and returns the ELF with its labels. See the crate docs for the checks.
pub fn pull(
    cfg: &ImageConfig,
    reference: &str,
    policy: PullPolicy,
    creds: Option<&Credentials>,
) -> Result<PulledImage, ImageError> {
    #[cfg(feature = "oci")]
    {
        pull::pull(cfg, reference, policy, creds)
    }
    #[cfg(not(feature = "oci"))]
    {
        let _ = (cfg, reference, policy, creds);
        Err(ImageError::Unsupported)
    }
}

/// Reads an image's manifest and config (not its layer, not its signature).
pub fn inspect(
    cfg: &ImageConfig,
    reference: &str,
    policy: PullPolicy,
    creds: Option<&Credentials>,
) -> Result<ImageInfo, ImageError> {
    #[cfg(feature = "oci")]
    {
        pull::inspect(cfg, reference, policy, creds)
    }
    #[cfg(not(feature = "oci"))]
    {
        let _ = (cfg, reference, policy, creds);
        Err(ImageError::Unsupported)
    }
}

/// Builds a bytecode image from `req.object` and writes it to `dest`
/// (`cfg` supplies `insecure_registries`). Builds are reproducible: the same
/// object, labels and platform give the same digest.
pub fn build(
    cfg: &ImageConfig,
    req: &BuildRequest,
    dest: &BuildDest,
    creds: Option<&Credentials>,
) -> Result<BuildOutput, ImageError> {
    #[cfg(feature = "oci")]
    {
        build::build(cfg, req, dest, creds)
    }
    #[cfg(not(feature = "oci"))]
    {
        let _ = (cfg, req, dest, creds);
        Err(ImageError::Unsupported)
    }
}

/// Writes a multi-arch index over image manifests already in `dest` (given
/// by digest; each one's platform comes from its config), under `dest`'s tag,
/// optionally signed.
pub fn build_index(
    cfg: &ImageConfig,
    manifests: &[String],
    dest: &BuildDest,
    sign_key: Option<&Path>,
    creds: Option<&Credentials>,
) -> Result<BuildOutput, ImageError> {
    #[cfg(feature = "oci")]
    {
        build::build_index(cfg, manifests, dest, sign_key, creds)
    }
    #[cfg(not(feature = "oci"))]
    {
        let _ = (cfg, manifests, dest, sign_key, creds);
        Err(ImageError::Unsupported)
    }
}

/// What [`build_multi`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiBuildOutput {
    /// The index (under the destination's tag) and its signature.
    pub index: BuildOutput,
    /// Each platform's image manifest digest.
    pub images: Vec<(Platform, String)>,
}

/// Builds one image per request (one platform each, stored by digest) and a
/// multi-arch index over them under `dest`'s tag, signed with `sign_key`
/// when given (pulls check the index's signature first).
pub fn build_multi(
    cfg: &ImageConfig,
    reqs: &[BuildRequest],
    dest: &BuildDest,
    sign_key: Option<&Path>,
    creds: Option<&Credentials>,
) -> Result<MultiBuildOutput, ImageError> {
    #[cfg(feature = "oci")]
    {
        let (index, images) = build::build_multi(cfg, reqs, dest, sign_key, creds)?;
        Ok(MultiBuildOutput { index, images })
    }
    #[cfg(not(feature = "oci"))]
    {
        let _ = (cfg, reqs, dest, sign_key, creds);
        Err(ImageError::Unsupported)
    }
}

/// Evicts least-recently-used images until the cache fits
/// `cfg.max_cache_bytes` (everything with `all`), and deletes unreferenced
/// blobs and leftovers of interrupted pulls. Waits for running pulls.
pub fn prune(cfg: &ImageConfig, all: bool) -> Result<PruneReport, ImageError> {
    let c = cache::Cache::open(&cfg.cache_dir, true)?;
    cache::prune_locked(&c, cfg.max_cache_bytes, all, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `image inspect -o json` shape (docs/json.md): platforms as strings,
    /// no `platform` key when the config names none.
    #[test]
    fn image_info_json_shape() {
        let mut info = ImageInfo {
            reference: "r".into(),
            digest: "d".into(),
            manifest_digest: "m".into(),
            platform: None,
            index_platforms: vec![
                "linux/amd64".parse().unwrap(),
                "linux/arm64/v8".parse().unwrap(),
            ],
            programs: BTreeMap::new(),
            maps: BTreeMap::new(),
            labels: BTreeMap::new(),
            layer_digest: "l".into(),
            layer_size: 3,
            layer_cached: true,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert!(v.get("platform").is_none(), "{v}");
        assert_eq!(
            v["index_platforms"],
            serde_json::json!(["linux/amd64", "linux/arm64/v8"])
        );
        info.platform = Some("linux/amd64".parse().unwrap());
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["platform"], "linux/amd64");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 11, "{keys:?}");
    }
}
