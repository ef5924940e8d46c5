//! Which certificate authorities a registry's TLS certificate may chain to.
//!
//! The roots for one registry are the union of:
//!
//! - the system trust store, as OpenSSL finds it (`/etc/ssl/certs`, what
//!   `update-ca-certificates` writes), or only `SSL_CERT_FILE` /
//!   `SSL_CERT_DIR` when either is set;
//! - when that store yields no certificate at all (a minimal container
//!   image without `ca-certificates`), Mozilla's roots built into bpfman
//!   stand in for it, so public registries keep working. A system store that
//!   has certificates is taken as the admin's choice: the built-in roots are
//!   then not added, and a CA removed from the system is not trusted;
//! - the registry's own CAs in the containerd/docker layout:
//!   `<certs_dir>/<host[:port]>/*.crt` (`ca.crt` by convention), with
//!   `certs_dir` from `images.certs_dir`, `/etc/bpfman/certs.d` by default.
//!
//! Files are read at each registry session, so a CA added or removed
//! applies to the next pull, daemon included.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use ureq::tls::{Certificate, RootCerts};

use crate::error::ImageError;

/// The directory of `registry`'s own CAs under `certs_dir`, or `None` for a
/// name that is no plain `host[:port]` directory name (`.`, `..`, ...).
pub(crate) fn registry_dir(certs_dir: &Path, registry: &str) -> Option<PathBuf> {
    if registry.is_empty() || registry.starts_with('.') || registry.contains('/') {
        return None;
    }
    Some(certs_dir.join(registry))
}

/// Where an admin puts `registry`'s CA: `<certs_dir>/<registry>/ca.crt`.
pub(crate) fn ca_path(certs_dir: &Path, registry: &str) -> PathBuf {
    registry_dir(certs_dir, registry)
        .unwrap_or_else(|| certs_dir.join("HOST:PORT"))
        .join("ca.crt")
}

/// The roots to verify `registry`'s certificate with (see the module doc).
pub(crate) fn root_certs(certs_dir: &Path, registry: &str) -> Result<RootCerts, ImageError> {
    let mut roots: Vec<CertificateDer<'static>> = rustls_native_certs::load_native_certs().certs;
    if roots.is_empty() {
        roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
    }
    if let Some(dir) = registry_dir(certs_dir, registry) {
        roots.extend(registry_cas(&dir)?);
    }
    Ok(RootCerts::Specific(Arc::new(
        roots
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    )))
}

/// The CA certificates of every `*.crt` file in `dir` (none when `dir` does
/// not exist). A file that holds no usable CA certificate is an error: a
/// trust the admin asked for is never dropped silently.
fn registry_cas(dir: &Path) -> Result<Vec<CertificateDer<'static>>, ImageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ImageError::io(format!("read {}", dir.display()), e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ImageError::io(format!("read {}", dir.display()), e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "crt") {
            files.push(path);
        }
    }
    // Docker's *.cert/*.key client certificates are not read (not supported).
    files.sort();
    let mut out = Vec::new();
    for path in files {
        out.extend(ca_file(&path)?);
    }
    Ok(out)
}

/// The certificates of one PEM file, each checked to be usable as a root.
fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ImageError> {
    let bad = |reason: String| ImageError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let bytes =
        std::fs::read(path).map_err(|e| ImageError::io(format!("read {}", path.display()), e))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(c.map_err(|e| bad(format!("not a PEM certificate file: {e}")))?);
    }
    if certs.is_empty() {
        return Err(bad(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string(),
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    for c in &certs {
        store
            .add(c.clone())
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(certs)
}

/// Is this transport error a certificate chaining to no trusted CA?
pub(crate) fn is_unknown_issuer(e: &ureq::Error) -> bool {
    let tls = match e {
        ureq::Error::Rustls(t) => Some(t),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(
        tls,
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_dirs() {
        let d = Path::new("/etc/bpfman/certs.d");
        assert_eq!(
            registry_dir(d, "127.0.0.1:5443"),
            Some(PathBuf::from("/etc/bpfman/certs.d/127.0.0.1:5443"))
        );
        assert_eq!(registry_dir(d, ".."), None);
        assert_eq!(registry_dir(d, "."), None);
        assert_eq!(
            ca_path(d, "quay.io"),
            Path::new("/etc/bpfman/certs.d/quay.io/ca.crt")
        );
    }

    #[test]
    fn bad_ca_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("r.example:5000");
        std::fs::create_dir(&reg).unwrap();
        // Not a .crt: ignored.
        std::fs::write(reg.join("client.key"), "not a cert").unwrap();
        assert!(registry_cas(&reg).unwrap().is_empty());
        std::fs::write(reg.join("ca.crt"), "not a cert").unwrap();
        let e = registry_cas(&reg).unwrap_err();
        assert!(
            matches!(e, ImageError::Certificate { .. }) && e.to_string().contains("ca.crt"),
            "{e}"
        );
        std::fs::write(
            reg.join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = registry_cas(&reg).unwrap_err();
        assert!(e.to_string().contains("usable CA"), "{e}");
        // No directory: no extra roots.
        assert!(registry_cas(&dir.path().join("none")).unwrap().is_empty());
    }
}
