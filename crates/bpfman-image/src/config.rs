//! Image settings and the signing policy, read from `/etc/bpfman/bpfman.toml`:
//!
//! ```toml
//! [signing]
//! verify = true            # check cosign signatures (upstream's `verify_enabled` is accepted too)
//! allow_unsigned = false   # refuse images without a signature
//! public_key = "/etc/bpfman/cosign.pub"
//!
//! [images]
//! cache_dir = "/var/cache/bpfman/images"
//! max_cache_bytes = 1073741824
//! max_layer_bytes = 67108864
//! insecure_registries = ["127.0.0.1:5000"]
//! platform = "linux/amd64"   # default: the host's
//! ```
//!
//! Other tables in the file belong to other parts of bpfman and are ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ImageError;
use crate::platform::Platform;

/// Default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/bpfman/images";
/// Default bound on the whole cache (1 GiB).
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 1 << 30;
/// Default bound on one layer, packed and unpacked (64 MiB).
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 64 << 20;
/// Bound on manifests, indexes, image configs and signature payloads (4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// How cosign signatures are checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignaturePolicy {
    /// Check signatures at all. When false no signature is fetched or read.
    pub verify: bool,
    /// With `verify`, accept images that have no signature (a signature that
    /// exists but does not verify is always refused).
    pub allow_unsigned: bool,
    /// PEM public key (ECDSA P-256, `cosign generate-key-pair`'s `cosign.pub`).
    pub public_key: Option<PathBuf>,
    /// Keyless (Fulcio/Rekor) rules; parsed but not supported yet: with
    /// `verify`, a policy that sets them fails with a clear error.
    pub keyless: Option<KeylessPolicy>,
}

/// Keyless signature rules (parsed, not yet enforced: see [`SignaturePolicy::keyless`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessPolicy {
    /// Expected certificate identity (SAN), e.g. a workflow URL or e-mail.
    pub identity: Option<String>,
    /// Expected OIDC issuer.
    pub issuer: Option<String>,
    /// Offline trust root (Sigstore trusted_root.json).
    pub trust_root: Option<PathBuf>,
}

impl SignaturePolicy {
    /// Checks the policy can be applied; the error says what to change.
    pub fn validate(&self) -> Result<(), ImageError> {
        if !self.verify {
            return Ok(());
        }
        if self.keyless.is_some() {
            // Refused rather than ignored: a user who wrote identity rules
            // expects them enforced.
            return Err(ImageError::Policy(
                "keyless (Fulcio/Rekor) verification is not supported yet; remove [signing.keyless] \
                 and set signing.public_key to a cosign public key, or set signing.verify = false"
                    .to_string(),
            ));
        }
        if self.public_key.is_none() {
            return Err(ImageError::Policy(
                "signing.verify = true needs signing.public_key (a cosign ECDSA P-256 PEM public key); \
                 keyless verification is not supported yet"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// Everything the image functions need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// Persistent cache (content-addressed blobs + tag index).
    pub cache_dir: PathBuf,
    /// Size bound of the cache; pulls prune least-recently-used images past it.
    pub max_cache_bytes: u64,
    /// Bound on one layer, both as stored (gzip) and unpacked.
    pub max_layer_bytes: u64,
    /// Signature policy.
    pub policy: SignaturePolicy,
    /// Registries (`host[:port]`) reached over plain HTTP instead of HTTPS.
    pub insecure_registries: Vec<String>,
    /// Platform picked from multi-arch indexes; the host's by default.
    pub platform: Platform,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            max_cache_bytes: DEFAULT_MAX_CACHE_BYTES,
            max_layer_bytes: DEFAULT_MAX_LAYER_BYTES,
            policy: SignaturePolicy::default(),
            insecure_registries: Vec::new(),
            platform: Platform::host(),
        }
    }
}

impl ImageConfig {
    /// Defaults with another cache directory (handy for tests and tools).
    pub fn with_cache_dir(cache_dir: impl Into<PathBuf>) -> Self {
        ImageConfig {
            cache_dir: cache_dir.into(),
            ..ImageConfig::default()
        }
    }

    pub(crate) fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_registries.iter().any(|r| r == registry)
    }
}

#[derive(Deserialize, Default)]
struct FileConfig {
    #[serde(default)]
    signing: Option<SigningSection>,
    #[serde(default)]
    images: Option<ImagesSection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SigningSection {
    #[serde(alias = "verify_enabled")]
    verify: Option<bool>,
    allow_unsigned: Option<bool>,
    public_key: Option<PathBuf>,
    keyless: Option<KeylessPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ImagesSection {
    cache_dir: Option<PathBuf>,
    max_cache_bytes: Option<u64>,
    max_layer_bytes: Option<u64>,
    insecure_registries: Option<Vec<String>>,
    platform: Option<String>,
}

/// Reads the `[signing]` and `[images]` tables of a bpfman.toml. A missing
/// file gives the defaults (verification off, unsigned allowed); a file that
/// does not parse, or a policy that cannot be applied, is an error.
pub fn load_config(path: &Path) -> Result<ImageConfig, ImageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ImageConfig::default()),
        Err(e) => return Err(ImageError::io(format!("read {}", path.display()), e)),
    };
    parse_config(&text).map_err(|reason| ImageError::Config {
        path: path.to_path_buf(),
        reason,
    })
}

/// [`load_config`] on a string.
pub fn parse_config(text: &str) -> Result<ImageConfig, String> {
    let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut cfg = ImageConfig::default();
    if let Some(s) = file.signing {
        cfg.policy = SignaturePolicy {
            verify: s.verify.unwrap_or(false),
            allow_unsigned: s.allow_unsigned.unwrap_or(true),
            public_key: s.public_key,
            keyless: s.keyless,
        };
    }
    if let Some(i) = file.images {
        if let Some(d) = i.cache_dir {
            if !d.is_absolute() {
                return Err(format!(
                    "images.cache_dir {} must be an absolute path",
                    d.display()
                ));
            }
            cfg.cache_dir = d;
        }
        if let Some(n) = i.max_cache_bytes {
            cfg.max_cache_bytes = n;
        }
        if let Some(n) = i.max_layer_bytes {
            if n == 0 {
                return Err("images.max_layer_bytes must be > 0".to_string());
            }
            cfg.max_layer_bytes = n;
        }
        if let Some(r) = i.insecure_registries {
            cfg.insecure_registries = r;
        }
        if let Some(p) = i.platform {
            cfg.platform = p.parse()?;
        }
    }
    cfg.policy.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let cfg = parse_config("").unwrap();
        assert_eq!(cfg, ImageConfig::default());
        assert!(!cfg.policy.verify);
        assert_eq!(cfg.cache_dir, Path::new(DEFAULT_CACHE_DIR));
    }

    #[test]
    fn full_file() {
        let cfg = parse_config(
            r#"
            [database]
            whatever = 1
            [signing]
            verify_enabled = true
            allow_unsigned = false
            public_key = "/etc/bpfman/cosign.pub"
            [images]
            cache_dir = "/tmp/c"
            max_cache_bytes = 10
            max_layer_bytes = 20
            insecure_registries = ["127.0.0.1:5000"]
            platform = "linux/arm64"
            "#,
        )
        .unwrap();
        assert!(cfg.policy.verify);
        assert!(!cfg.policy.allow_unsigned);
        assert_eq!(
            cfg.policy.public_key.as_deref(),
            Some(Path::new("/etc/bpfman/cosign.pub"))
        );
        assert_eq!(cfg.max_cache_bytes, 10);
        assert_eq!(cfg.max_layer_bytes, 20);
        assert!(cfg.is_insecure("127.0.0.1:5000"));
        assert_eq!(cfg.platform.to_string(), "linux/arm64");
    }

    #[test]
    fn unusable_policies_are_refused() {
        let e = parse_config("[signing]\nverify = true\n").unwrap_err();
        assert!(e.contains("public_key"), "{e}");
        let e = parse_config("[signing]\nverify = true\n[signing.keyless]\nissuer = \"x\"\n")
            .unwrap_err();
        assert!(e.contains("keyless"), "{e}");
        let e = parse_config(
            "[signing]\nverify = true\npublic_key = \"/k\"\n[signing.keyless]\nissuer = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("not supported yet"), "{e}");
        let e = parse_config("[signing]\nverfy = true\n").unwrap_err();
        assert!(e.contains("verfy"), "{e}");
    }

    #[test]
    fn missing_file_is_defaults() {
        let cfg = load_config(Path::new("/nonexistent/bpfman.toml")).unwrap();
        assert_eq!(cfg, ImageConfig::default());
    }
}
