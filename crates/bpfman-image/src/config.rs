//! Image settings and the signing policy, read from `/etc/bpfman/bpfman.toml`:
//!
//! ```toml
//! [signing]
//! verify = true            # check cosign signatures (upstream's `verify_enabled` is accepted too)
//! allow_unsigned = false   # refuse images without a signature
//! public_key = "/etc/bpfman/cosign.pub"
//!
//! [signing.keyless]       # keyless (Fulcio + Rekor) signatures, checked offline
//! trust_root = "/etc/bpfman/trusted_root.json"
//! identity = "release@example.com"          # or identity_regexp
//! issuer = "https://accounts.example.com"   # or issuer_regexp
//! # [[signing.keyless.identities]] adds more signers
//!
//! [images]
//! cache_dir = "/var/cache/bpfman/images"
//! max_cache_bytes = 1073741824
//! max_layer_bytes = 67108864
//! insecure_registries = ["127.0.0.1:5000"]
//! certs_dir = "/etc/bpfman/certs.d"   # <host[:port]>/ca.crt: a registry's own CA
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
/// Default directory of per-registry CAs: `<dir>/<host[:port]>/*.crt`, the
/// containerd/docker `certs.d` layout.
pub const DEFAULT_CERTS_DIR: &str = "/etc/bpfman/certs.d";
/// Default bound on the whole cache (1 GiB).
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 1 << 30;
/// Default bound on one layer, packed and unpacked (64 MiB).
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 64 << 20;
/// Bound on manifests, indexes, image configs and signature payloads (4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Most tar entries read from one layer (directories, links and whiteouts
/// count too): a bytecode layer holds one file.
pub const MAX_LAYER_ENTRIES: usize = 1024;
/// Most referrers (signature bundles) of one image examined.
pub const MAX_REFERRERS: usize = 32;

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
    /// Keyless (Fulcio certificate + Rekor entry) rules. With both a key and
    /// keyless rules, a signature passes if either accepts it.
    pub keyless: Option<KeylessPolicy>,
}

/// Keyless signatures: a short-lived Fulcio certificate naming the signer,
/// logged in Rekor. Checked offline against a Sigstore trust root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeylessPolicy {
    /// Sigstore `trusted_root.json` (Fulcio CAs, Rekor keys, CT log keys).
    /// Required: verification never goes to the network.
    pub trust_root: Option<PathBuf>,
    /// Accepted signers: a certificate passes if one rule matches it.
    pub identities: Vec<IdentityRule>,
}

/// One accepted signer: exactly one of `identity`/`identity_regexp` and
/// exactly one of `issuer`/`issuer_regexp`. Regular expressions must match
/// the whole value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRule {
    /// The certificate's subject alternative name (an e-mail address, or a
    /// URI such as a CI workflow), exactly.
    pub identity: Option<String>,
    /// A regular expression over the subject alternative name.
    pub identity_regexp: Option<String>,
    /// The OIDC issuer recorded in the certificate, exactly.
    pub issuer: Option<String>,
    /// A regular expression over the OIDC issuer.
    pub issuer_regexp: Option<String>,
}

impl IdentityRule {
    /// Checks the rule is complete and its expressions compile.
    fn validate(&self, n: usize) -> Result<(), ImageError> {
        let bad = |what: String| Err(ImageError::Policy(format!("signing.keyless {what}")));
        match (&self.identity, &self.identity_regexp) {
            (None, None) => {
                return bad(format!(
                    "rule {n} needs identity or identity_regexp (the signer's certificate subject)"
                ));
            }
            (Some(_), Some(_)) => {
                return bad(format!(
                    "rule {n} sets both identity and identity_regexp; keep one"
                ));
            }
            _ => {}
        }
        match (&self.issuer, &self.issuer_regexp) {
            (None, None) => {
                return bad(format!(
                    "rule {n} needs issuer or issuer_regexp (the OIDC issuer, e.g. \
                     https://token.actions.githubusercontent.com)"
                ));
            }
            (Some(_), Some(_)) => {
                return bad(format!(
                    "rule {n} sets both issuer and issuer_regexp; keep one"
                ));
            }
            _ => {}
        }
        for re in [&self.identity_regexp, &self.issuer_regexp]
            .into_iter()
            .flatten()
        {
            if let Err(e) = anchored(re) {
                return bad(format!(
                    "rule {n}: regular expression {re:?} does not compile: {e}"
                ));
            }
        }
        Ok(())
    }

    /// Does a certificate with these subject alternative names and this
    /// issuer match? Returns the name that matched.
    pub fn matches<'a>(&self, names: &'a [String], issuer: &str) -> Option<&'a str> {
        let issuer_ok = match (&self.issuer, &self.issuer_regexp) {
            (Some(i), _) => i == issuer,
            (None, Some(re)) => anchored(re).is_ok_and(|r| r.is_match(issuer)),
            (None, None) => false,
        };
        if !issuer_ok {
            return None;
        }
        names
            .iter()
            .find(|n| match (&self.identity, &self.identity_regexp) {
                (Some(i), _) => i == *n,
                (None, Some(re)) => anchored(re).is_ok_and(|r| r.is_match(n)),
                (None, None) => false,
            })
            .map(String::as_str)
    }
}

/// `re` compiled to match a whole value, not a part of it. The syntax is
/// regex-lite's: that of the `regex` crate and RE2 without Unicode classes
/// (`\p{..}` is refused); `(?i)`, `\w`, `\d` and `\s` are ASCII.
fn anchored(re: &str) -> Result<regex_lite::Regex, regex_lite::Error> {
    regex_lite::Regex::new(&format!("^(?:{re})$"))
}

impl SignaturePolicy {
    /// Checks the policy can be applied; the error says what to change.
    pub fn validate(&self) -> Result<(), ImageError> {
        if !self.verify {
            return Ok(());
        }
        let Some(k) = &self.keyless else {
            if self.public_key.is_none() {
                return Err(ImageError::Policy(
                    "signing.verify = true needs signing.public_key (a cosign ECDSA P-256 PEM \
                     public key) or [signing.keyless] rules"
                        .to_string(),
                ));
            }
            return Ok(());
        };
        if k.trust_root.is_none() {
            return Err(ImageError::Policy(
                "signing.keyless needs trust_root: a Sigstore trusted_root.json (for the public \
                 Sigstore instance, the trusted_root.json target of its TUF repository, e.g. \
                 from `cosign trusted-root create` or sigstore's root-signing repository); \
                 bpfman verifies offline and never fetches it"
                    .to_string(),
            ));
        }
        if k.identities.is_empty() {
            return Err(ImageError::Policy(
                "signing.keyless needs at least one signer: identity (or identity_regexp) and \
                 issuer (or issuer_regexp), or [[signing.keyless.identities]] entries"
                    .to_string(),
            ));
        }
        for (n, rule) in k.identities.iter().enumerate() {
            rule.validate(n + 1)?;
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
    /// Per-registry CAs: every `<certs_dir>/<host[:port]>/*.crt` is trusted
    /// for that registry, on top of the system trust store.
    pub certs_dir: PathBuf,
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
            certs_dir: PathBuf::from(DEFAULT_CERTS_DIR),
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
    keyless: Option<KeylessSection>,
}

/// `[signing.keyless]`: one signer inline, more in `identities`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeylessSection {
    trust_root: Option<PathBuf>,
    identity: Option<String>,
    identity_regexp: Option<String>,
    issuer: Option<String>,
    issuer_regexp: Option<String>,
    #[serde(default)]
    identities: Vec<IdentityRule>,
}

impl From<KeylessSection> for KeylessPolicy {
    fn from(s: KeylessSection) -> Self {
        let inline = IdentityRule {
            identity: s.identity,
            identity_regexp: s.identity_regexp,
            issuer: s.issuer,
            issuer_regexp: s.issuer_regexp,
        };
        let mut identities = Vec::new();
        if inline != IdentityRule::default() {
            identities.push(inline);
        }
        identities.extend(s.identities);
        KeylessPolicy {
            trust_root: s.trust_root,
            identities,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ImagesSection {
    cache_dir: Option<PathBuf>,
    max_cache_bytes: Option<u64>,
    max_layer_bytes: Option<u64>,
    insecure_registries: Option<Vec<String>>,
    certs_dir: Option<PathBuf>,
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
    parse_config(&text).map_err(|e| ImageError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Why a config text is refused (the file name is added by [`load_config`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or unknown keys and wrong types.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A directory setting that must be absolute.
    #[error("images.{key} {} must be an absolute path", path.display())]
    NotAbsolute {
        /// The key under `[images]`.
        key: &'static str,
        /// The value given.
        path: PathBuf,
    },
    /// `images.max_layer_bytes = 0` would refuse every image.
    #[error("images.max_layer_bytes must be > 0")]
    ZeroLayerBytes,
    /// `images.platform` is not `os/architecture[/variant]`.
    #[error("{0}")]
    Platform(String),
    /// A signing policy that cannot be applied.
    #[error("{0}")]
    Policy(ImageError),
}

/// [`load_config`] on a string.
pub fn parse_config(text: &str) -> Result<ImageConfig, ConfigError> {
    let file: FileConfig = toml::from_str(text)?;
    let mut cfg = ImageConfig::default();
    if let Some(s) = file.signing {
        cfg.policy = SignaturePolicy {
            verify: s.verify.unwrap_or(false),
            allow_unsigned: s.allow_unsigned.unwrap_or(true),
            public_key: s.public_key,
            keyless: s.keyless.map(KeylessPolicy::from),
        };
    }
    if let Some(i) = file.images {
        if let Some(d) = i.cache_dir {
            if !d.is_absolute() {
                return Err(ConfigError::NotAbsolute {
                    key: "cache_dir",
                    path: d,
                });
            }
            cfg.cache_dir = d;
        }
        if let Some(n) = i.max_cache_bytes {
            cfg.max_cache_bytes = n;
        }
        if let Some(n) = i.max_layer_bytes {
            if n == 0 {
                return Err(ConfigError::ZeroLayerBytes);
            }
            cfg.max_layer_bytes = n;
        }
        if let Some(r) = i.insecure_registries {
            cfg.insecure_registries = r;
        }
        if let Some(d) = i.certs_dir {
            if !d.is_absolute() {
                return Err(ConfigError::NotAbsolute {
                    key: "certs_dir",
                    path: d,
                });
            }
            cfg.certs_dir = d;
        }
        if let Some(p) = i.platform {
            cfg.platform = p.parse().map_err(ConfigError::Platform)?;
        }
    }
    cfg.policy.validate().map_err(ConfigError::Policy)?;
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
            certs_dir = "/tmp/certs.d"
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
        assert_eq!(cfg.certs_dir, Path::new("/tmp/certs.d"));
        assert_eq!(cfg.platform.to_string(), "linux/arm64");
    }

    #[test]
    fn unusable_policies_are_refused() {
        let e = parse_config("[signing]\nverify = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("public_key") && e.contains("keyless"), "{e}");
        let e = parse_config("[signing]\nverify = true\n[signing.keyless]\nissuer = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("trust_root"), "{e}");
        let e = parse_config(
            "[signing]\nverify = true\n[signing.keyless]\ntrust_root = \"/r\"\nissuer = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rule 1 needs identity"), "{e}");
        let e = parse_config("[signing]\nverify = true\n[signing.keyless]\ntrust_root = \"/r\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one signer"), "{e}");
        let e = parse_config(
            "[signing]\nverify = true\n[signing.keyless]\ntrust_root = \"/r\"\n\
             identity = \"a@b\"\nissuer = \"x\"\nissuer_regexp = \"y\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("both issuer and issuer_regexp"), "{e}");
        let e = parse_config(
            "[signing]\nverify = true\n[signing.keyless]\ntrust_root = \"/r\"\n\
             identity_regexp = \"(\"\nissuer = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not compile"), "{e}");
        // Unicode classes are refused when the config is read, not when a
        // signature is checked.
        let e = parse_config(
            "[signing]\nverify = true\n[signing.keyless]\ntrust_root = \"/r\"\n\
             identity_regexp = \"\\\\p{L}+@example\\\\.com\"\nissuer = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not compile") && e.contains("p{L}"), "{e}");
        let e = parse_config("[images]\ncerts_dir = \"certs.d\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute"), "{e}");
        let e = parse_config("[signing]\nverfy = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("verfy"), "{e}");
        let e = parse_config("[signing.keyless]\nsubject = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("subject"), "{e}");
    }

    #[test]
    fn keyless_rules() {
        let cfg = parse_config(
            r#"
            [signing]
            verify = true
            allow_unsigned = false
            [signing.keyless]
            trust_root = "/etc/bpfman/trusted_root.json"
            identity = "release@example.com"
            issuer = "https://accounts.example.com"
            [[signing.keyless.identities]]
            identity_regexp = "https://github\\.com/org/[^/]+/\\.github/workflows/.*"
            issuer = "https://token.actions.githubusercontent.com"
            "#,
        )
        .unwrap();
        let k = cfg.policy.keyless.unwrap();
        assert_eq!(
            k.trust_root.as_deref(),
            Some(Path::new("/etc/bpfman/trusted_root.json"))
        );
        assert_eq!(k.identities.len(), 2);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mail = names(&["release@example.com"]);
        assert_eq!(
            k.identities[0].matches(&mail, "https://accounts.example.com"),
            Some("release@example.com")
        );
        assert_eq!(
            k.identities[0].matches(&mail, "https://evil.example.com"),
            None
        );
        let wf =
            names(&["https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"]);
        let gh = "https://token.actions.githubusercontent.com";
        assert!(k.identities[1].matches(&wf, gh).is_some());
        // Anchored: a prefix or a suffix elsewhere does not match.
        let evil = names(&["https://evil.com/?https://github.com/org/repo/.github/workflows/x"]);
        assert_eq!(k.identities[1].matches(&evil, gh), None);
        assert_eq!(
            k.identities[1].matches(&wf, "https://token.actions.githubusercontent.com.evil"),
            None
        );
    }

    /// The regexp features a signer rule may use: case-insensitive groups
    /// and classes (ASCII), alternation, repetition, non-ASCII literals.
    #[test]
    fn identity_regexp_syntax() {
        let rule = |re: &str| IdentityRule {
            identity_regexp: Some(re.to_string()),
            issuer: Some("iss".to_string()),
            ..Default::default()
        };
        let one = |s: &str| vec![s.to_string()];
        let r = rule(r"(?i)release@Example\.COM");
        r.validate(1).unwrap();
        assert!(r.matches(&one("RELEASE@example.com"), "iss").is_some());
        assert!(r.matches(&one("release@example.co"), "iss").is_none());
        let r = rule(r"\w+-(ci|cd)\d{2}@exampl[eé]\.org");
        r.validate(1).unwrap();
        assert!(
            r.matches(&one("bot_1-cd07@exampl\u{e9}.org"), "iss")
                .is_some()
        );
        assert!(r.matches(&one("bot-qa07@example.org"), "iss").is_none());
        // An issuer regexp is anchored like an identity one.
        let r = IdentityRule {
            identity: Some("a@b".to_string()),
            issuer_regexp: Some(r"https://[a-z]+\.example\.com".to_string()),
            ..Default::default()
        };
        assert!(r.matches(&one("a@b"), "https://idp.example.com").is_some());
        assert!(
            r.matches(&one("a@b"), "https://idp.example.com/x")
                .is_none()
        );
    }

    #[test]
    fn missing_file_is_defaults() {
        let cfg = load_config(Path::new("/nonexistent/bpfman.toml")).unwrap();
        assert_eq!(cfg, ImageConfig::default());
    }
}
