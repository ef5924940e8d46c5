//! The one error type of the crate.
//!
//! Every message names the image or registry it is about and, where there is
//! one, the action that fixes it. No message ever carries a password or a
//! registry token: credentials only travel in request headers.

use std::path::PathBuf;

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse (`[registry/]repository[:tag][@sha256:...]`).
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The registry has no such repository, tag or digest.
    #[error("image {reference} not found: {reason}")]
    NotFound {
        /// Canonical reference.
        reference: String,
        /// The registry's words, or what was missing.
        reason: String,
    },

    /// The registry wants credentials, or refused the ones given.
    #[error("registry {registry} {reason}")]
    Unauthorized {
        /// Registry `host[:port]`.
        registry: String,
        /// e.g. "refused the credentials" or "requires credentials: ...".
        reason: String,
    },

    /// Pull policy `Never` and the image is not in the cache.
    #[error(
        "image {reference} is not in the cache {} and the pull policy is Never; \
         pull it first (bpfman image pull {reference}) or use the pull policy IfNotPresent",
        cache_dir.display()
    )]
    NotCached {
        /// Canonical reference.
        reference: String,
        /// The cache directory that was searched.
        cache_dir: PathBuf,
    },

    /// Content that is not what it claims to be: a digest mismatch, a bad
    /// gzip or tar stream, a layer without a BPF ELF, an ELF of the wrong
    /// endianness, a malformed manifest or label.
    #[error("image {reference} is corrupt or not a BPF bytecode image: {reason}")]
    Corrupt {
        /// Canonical reference.
        reference: String,
        /// What did not match.
        reason: String,
    },

    /// A manifest, config or layer exceeds the configured bound.
    #[error(
        "image {reference}: {what} is {size} bytes, over the limit of {limit} bytes \
         (raise images.{setting} in bpfman.toml if this is expected)"
    )]
    TooLarge {
        /// Canonical reference.
        reference: String,
        /// Which object ("layer", "manifest", "unpacked object", ...).
        what: String,
        /// Its (announced or observed) size.
        size: u64,
        /// The bound.
        limit: u64,
        /// The config key holding the bound.
        setting: &'static str,
    },

    /// A multi-arch index has no entry for the wanted platform.
    #[error(
        "image {reference} has no entry for platform {platform}; the index offers: {available}"
    )]
    NoPlatform {
        /// Canonical reference.
        reference: String,
        /// The wanted platform, e.g. linux/amd64.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },

    /// The policy requires a signature and the image has none.
    #[error(
        "image {reference} ({digest}) has no cosign signature and the signing policy \
         requires one (signing.allow_unsigned = false)"
    )]
    SignatureMissing {
        /// Canonical reference.
        reference: String,
        /// Digest that was looked up.
        digest: String,
    },

    /// A signature exists but does not verify against the configured key.
    #[error("image {reference} ({digest}): signature rejected: {reason}")]
    SignatureInvalid {
        /// Canonical reference.
        reference: String,
        /// Digest the signature should cover.
        digest: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The signing policy cannot be applied (no key configured, unreadable
    /// key, keyless requested, signature not cached while offline, ...).
    #[error("signing policy: {0}")]
    Policy(String),

    /// The registry could not be reached or the connection failed.
    #[error("cannot talk to registry {registry}: {reason}")]
    Network {
        /// Registry `host[:port]`.
        registry: String,
        /// Transport error.
        reason: String,
    },

    /// The registry's TLS certificate chains to no CA bpfman trusts.
    #[error(
        "registry {registry} presented a certificate signed by an unknown authority; trust \
         its CA system-wide (update-ca-certificates) or put it in {}",
        ca_path.display()
    )]
    UntrustedCertificate {
        /// Registry `host[:port]`.
        registry: String,
        /// Where this registry's CA would be read from
        /// (`<images.certs_dir>/<host[:port]>/ca.crt`).
        ca_path: PathBuf,
    },

    /// A registry CA file (`<images.certs_dir>/<host[:port]>/*.crt`) that
    /// holds no usable CA certificate.
    #[error("registry CA file {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The registry answered with an unexpected status.
    #[error("registry {registry} answered {status} to {what}: {message}")]
    Registry {
        /// Registry `host[:port]`.
        registry: String,
        /// HTTP status.
        status: u16,
        /// The request, e.g. "GET manifest 1.0".
        what: String,
        /// Registry error message, trimmed.
        message: String,
    },

    /// A bad config file.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Bad input to `build` (object not a BPF ELF, bad key, ...).
    #[error("build: {0}")]
    Build(String),

    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The crate was built without the `oci` feature.
    #[error("this bpfman was built without the `oci` feature: OCI image support is not available")]
    Unsupported,
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    /// `reason` is any message or typed error of the crate's parsers; only
    /// its text is kept, as `ImageError` is what the CLI and API report.
    pub(crate) fn corrupt(reference: &str, reason: impl std::fmt::Display) -> Self {
        ImageError::Corrupt {
            reference: reference.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn build(reason: impl std::fmt::Display) -> Self {
        ImageError::Build(reason.to_string())
    }
}
