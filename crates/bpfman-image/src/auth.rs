//! Registry credentials: given on the command line (`--registry-auth`, base64
//! of `user:password`) or found in the usual docker/podman auth files. They
//! live in memory only: this crate never writes them anywhere, and `Debug`
//! redacts them so they cannot leak through logs.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::ImageError;
use crate::reference::DOCKER_HUB;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Decodes base64 `user:password` (upstream's `--registry-auth` and the
    /// `auth` field of auth files). The error never repeats the input.
    pub fn from_base64(encoded: &str) -> Result<Credentials, ImageError> {
        let bad = |why: &str| {
            ImageError::Policy(format!(
                "registry auth is not base64 of user:password ({why})"
            ))
        };
        let raw = STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad("not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
        let (user, pass) = text.split_once(':').ok_or_else(|| bad("no ':'"))?;
        if user.is_empty() {
            return Err(bad("empty user name"));
        }
        Ok(Credentials::new(user, pass))
    }

    /// `Basic` authorization header value.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// The auth files searched, in podman's order then docker's:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `~/.config/containers/auth.json`, `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`.
pub fn auth_file_paths() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut paths = Vec::new();
    if let Some(p) = env("REGISTRY_AUTH_FILE") {
        paths.push(p);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        paths.push(d.join("containers/auth.json"));
    }
    let home = env("HOME");
    if let Some(h) = &home {
        paths.push(h.join(".config/containers/auth.json"));
    }
    match env("DOCKER_CONFIG") {
        Some(d) => paths.push(d.join("config.json")),
        None => {
            if let Some(h) = &home {
                paths.push(h.join(".docker/config.json"));
            }
        }
    }
    paths
}

/// Credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub)
/// from the first auth file that has an entry for it. Unreadable or
/// malformed files are skipped: a missing credential then shows up as a
/// clear "requires credentials" from the registry.
pub fn credentials_from_auth_files(registry: &str) -> Option<Credentials> {
    auth_file_paths()
        .iter()
        .find_map(|p| credentials_from_auth_file(p, registry).ok().flatten())
}

/// [`credentials_from_auth_files`] for the registry of an image reference
/// (`None` too when the reference does not parse: `pull` reports that).
pub fn credentials_for_reference(reference: &str) -> Option<Credentials> {
    let r = crate::reference::Reference::parse(reference).ok()?;
    credentials_from_auth_files(&r.registry)
}

/// Credentials for `registry` from one auth file (`{"auths": {"host": {"auth": base64}}}`,
/// or `username`/`password` fields). `Ok(None)`: file or entry absent.
pub fn credentials_from_auth_file(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, ImageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io(format!("read {}", path.display()), e)),
    };
    let bad = |why: &str| ImageError::Config {
        path: path.to_path_buf(),
        reason: why.to_string(),
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad("not valid JSON"))?;
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let want = normalise_host(registry);
    for (key, entry) in auths {
        if normalise_host(key) != want {
            continue;
        }
        if let Some(a) = entry.get("auth").and_then(|a| a.as_str())
            && !a.is_empty()
        {
            return Credentials::from_base64(a)
                .map(Some)
                .map_err(|_| bad(&format!("auths.{key}.auth is not base64 of user:password")));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(|v| v.as_str()),
            entry.get("password").and_then(|v| v.as_str()),
        ) {
            return Ok(Some(Credentials::new(u, p)));
        }
    }
    Ok(None)
}

/// `https://index.docker.io/v1/` → `docker.io`, `https://quay.io/` → `quay.io`,
/// `quay.io/org/repo` → `quay.io` (repository-scoped keys count for the host).
fn normalise_host(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let c = Credentials::new("alice", "s3cret");
        let s = format!("{c:?}");
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("alice"));
    }

    #[test]
    fn base64_roundtrip_and_errors() {
        let c = Credentials::from_base64(&STANDARD.encode("u:p:q")).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:q"));
        let e = Credentials::from_base64("c2VjcmV0")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret") && !e.contains("c2VjcmV0"), "{e}");
        assert!(Credentials::from_base64("!!").is_err());
    }

    #[test]
    fn auth_file_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        std::fs::write(
            &f,
            format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}"}},
                    "127.0.0.1:5000": {{"auth": "{}"}},
                    "quay.io/org/repo": {{"username": "q", "password": "w"}}
                }}}}"#,
                STANDARD.encode("hub:pw"),
                STANDARD.encode("local:pw2")
            ),
        )
        .unwrap();
        let get = |r| credentials_from_auth_file(&f, r).unwrap();
        assert_eq!(get("docker.io").unwrap().username, "hub");
        assert_eq!(get("127.0.0.1:5000").unwrap().password, "pw2");
        assert_eq!(get("quay.io").unwrap().username, "q");
        assert!(get("ghcr.io").is_none());
        assert!(
            credentials_from_auth_file(&dir.path().join("none"), "x")
                .unwrap()
                .is_none()
        );
    }
}
