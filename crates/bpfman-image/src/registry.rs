//! A small blocking client for the OCI distribution API: the `/v2/` ping and
//! auth challenge (Basic, or Bearer tokens from the realm the registry names),
//! manifests and blobs by digest with bounded reads, and pushes (monolithic
//! blob upload: POST then PUT with `?digest=`; manifest PUT).
//!
//! Credentials only ever go into `Authorization` headers; errors quote the
//! registry, never a header. HTTPS trusts the roots [`crate::tls`] picks for
//! the registry (system store and `certs.d`).

use std::path::PathBuf;
use std::time::Duration;

use ureq::Agent;
use ureq::http::{Request, Response};
use ureq::tls::TlsConfig;

use crate::auth::Credentials;
use crate::config::ImageConfig;
use crate::digest;
use crate::error::ImageError;
use crate::oci::{self, Descriptor};
use crate::reference::Reference;

/// A manifest as fetched: its bytes and digest.
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: String,
}

/// A session with one repository of one registry.
pub(crate) struct Registry<'a> {
    agent: Agent,
    base: String,
    registry: String,
    repository: String,
    /// Printable reference for error messages.
    display: String,
    creds: Option<&'a Credentials>,
    push: bool,
    insecure: bool,
    /// Where this registry's CA would go, for the untrusted-certificate error.
    ca_path: PathBuf,
    /// Current `Authorization` value (Basic or Bearer), once challenged.
    auth: Option<String>,
}

impl<'a> Registry<'a> {
    /// A session for `reference`'s repository; `push` asks for push scope.
    /// Fails on an unreadable or unusable CA file of the registry.
    pub(crate) fn new(
        cfg: &ImageConfig,
        reference: &Reference,
        creds: Option<&'a Credentials>,
        push: bool,
    ) -> Result<Registry<'a>, ImageError> {
        let insecure = cfg.is_insecure(&reference.registry);
        let mut tls = TlsConfig::builder();
        if !insecure {
            tls = tls.root_certs(crate::tls::root_certs(&cfg.certs_dir, &reference.registry)?);
        }
        let agent: Agent = Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .max_redirects(5)
            .user_agent(concat!("bpfman-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let scheme = if insecure { "http" } else { "https" };
        Ok(Registry {
            agent,
            base: format!("{scheme}://{}", reference.api_host()),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            display: reference.to_string(),
            creds,
            push,
            insecure,
            ca_path: crate::tls::ca_path(&cfg.certs_dir, &reference.registry),
            auth: None,
        })
    }

    fn network(&self, e: ureq::Error) -> ImageError {
        if crate::tls::is_unknown_issuer(&e) {
            return ImageError::UntrustedCertificate {
                registry: self.registry.clone(),
                ca_path: self.ca_path.clone(),
            };
        }
        ImageError::Network {
            registry: self.registry.clone(),
            reason: e.to_string(),
        }
    }

    fn raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        with_auth: bool,
    ) -> Result<Response<ureq::Body>, ImageError> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if with_auth && let Some(a) = &self.auth {
            b = b.header("Authorization", a.as_str());
        }
        let bad = |e: ureq::http::Error| ImageError::Network {
            registry: self.registry.clone(),
            reason: format!("cannot build request: {e}"),
        };
        let r = match body {
            Some(data) => self.agent.run(b.body(data).map_err(bad)?),
            None => self.agent.run(b.body(()).map_err(bad)?),
        };
        r.map_err(|e| self.network(e))
    }

    /// Sends a request, answering one auth challenge.
    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response<ureq::Body>, ImageError> {
        // Only our registry sees our Authorization header (an upload
        // Location may point elsewhere).
        let same_host = url.starts_with(&format!("{}/", self.base));
        let resp = self.raw(method, url, headers, body, same_host)?;
        if resp.status().as_u16() != 401 || !same_host {
            return Ok(resp);
        }
        let challenge = header(&resp, "www-authenticate").unwrap_or_default();
        self.authenticate(&challenge)?;
        let resp = self.raw(method, url, headers, body, true)?;
        if resp.status().as_u16() == 401 {
            // Basic credentials that were just tried and refused, or a token
            // the registry does not honour.
            return Err(self.refused());
        }
        Ok(resp)
    }

    fn refused(&self) -> ImageError {
        match self.creds {
            Some(c) => ImageError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!(
                    "refused the credentials of user {:?} for {} (check the user name and \
                     password, --registry-auth or the auth file entry for {})",
                    c.username, self.repository, self.registry
                ),
            },
            None => self.needs_credentials(),
        }
    }

    fn needs_credentials(&self) -> ImageError {
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            reason: format!(
                "requires credentials for {}: pass --registry-auth (base64 of user:password) \
                 or log in with `podman login {}` / `docker login {}`",
                self.repository, self.registry, self.registry
            ),
        }
    }

    /// Answers a `WWW-Authenticate` challenge: Basic uses the credentials as
    /// they are; Bearer trades them for a token at the named realm.
    fn authenticate(&mut self, challenge: &str) -> Result<(), ImageError> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let c = self.creds.ok_or_else(|| self.needs_credentials())?;
                self.auth = Some(c.basic_header());
                Ok(())
            }
            "bearer" => {
                let realm = params
                    .iter()
                    .find(|(k, _)| k == "realm")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| ImageError::Network {
                        registry: self.registry.clone(),
                        reason: "Bearer challenge without a realm".to_string(),
                    })?;
                if !(realm.starts_with("https://")
                    || (self.insecure && realm.starts_with("http://")))
                {
                    return Err(ImageError::Network {
                        registry: self.registry.clone(),
                        reason: format!(
                            "token realm {realm} is not https (list the registry in \
                             images.insecure_registries to allow plain http)"
                        ),
                    });
                }
                let actions = if self.push { "pull,push" } else { "pull" };
                let mut url = format!("{realm}{}", if realm.contains('?') { '&' } else { '?' });
                let mut q = Vec::new();
                if let Some((_, s)) = params.iter().find(|(k, _)| k == "service") {
                    q.push(format!("service={}", pct(s)));
                }
                q.push(format!(
                    "scope={}",
                    pct(&format!("repository:{}:{actions}", self.repository))
                ));
                url.push_str(&q.join("&"));
                let mut b = Request::get(&url);
                if let Some(c) = self.creds {
                    b = b.header("Authorization", c.basic_header());
                }
                let req = b.body(()).map_err(|e| ImageError::Network {
                    registry: self.registry.clone(),
                    reason: format!("cannot build token request: {e}"),
                })?;
                let mut resp = self.agent.run(req).map_err(|e| self.network(e))?;
                match resp.status().as_u16() {
                    200 => {}
                    401 | 403 => return Err(self.refused()),
                    s => {
                        return Err(ImageError::Registry {
                            registry: self.registry.clone(),
                            status: s,
                            what: "the token request".to_string(),
                            message: error_message(&mut resp),
                        });
                    }
                }
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| self.network(e))?;
                let v: serde_json::Value =
                    serde_json::from_slice(&text).map_err(|e| ImageError::Network {
                        registry: self.registry.clone(),
                        reason: format!("token response is not JSON: {e}"),
                    })?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ImageError::Network {
                        registry: self.registry.clone(),
                        reason: "token response has no token".to_string(),
                    })?;
                self.auth = Some(format!("Bearer {token}"));
                Ok(())
            }
            _ => Err(ImageError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!("asks for unsupported authentication {scheme:?}"),
            }),
        }
    }

    fn url(&self, kind: &str, r: &str) -> String {
        format!("{}/v2/{}/{kind}/{r}", self.base, self.repository)
    }

    fn unexpected(&self, resp: &mut Response<ureq::Body>, what: String) -> ImageError {
        let status = resp.status().as_u16();
        let message = error_message(resp);
        if status == 403 {
            return ImageError::Unauthorized {
                registry: self.registry.clone(),
                reason: format!("denied {what}: {message}"),
            };
        }
        ImageError::Registry {
            registry: self.registry.clone(),
            status,
            what,
            message,
        }
    }

    /// GET a manifest by tag or digest; `None` when the registry has none.
    /// The body is bounded and, when asked by digest, verified.
    pub(crate) fn get_manifest(&mut self, r: &str) -> Result<Option<Fetched>, ImageError> {
        let url = self.url("manifests", r);
        let mut resp = self.send("GET", &url, &[("Accept", oci::MANIFEST_ACCEPT)], None)?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.unexpected(&mut resp, format!("GET manifest {r}"))),
        }
        let limit = crate::config::MAX_MANIFEST_BYTES;
        let bytes = read_bounded(&mut resp, limit).map_err(|e| match e {
            ReadError::TooLarge(n) => ImageError::TooLarge {
                reference: self.display.clone(),
                what: "manifest".to_string(),
                size: n,
                limit,
                setting: "(fixed) manifest size",
            },
            ReadError::Net(e) => self.network(e),
        })?;
        let got = digest::sha256(&bytes);
        if r.starts_with("sha256:") && got != r {
            return Err(ImageError::corrupt(
                &self.display,
                format!("manifest {r} hashes to {got}"),
            ));
        }
        if let Some(h) = header(&resp, "docker-content-digest")
            && h.starts_with("sha256:")
            && h != got
        {
            return Err(ImageError::corrupt(
                &self.display,
                format!("manifest hashes to {got}, the registry says {h}"),
            ));
        }
        Ok(Some(Fetched { bytes, digest: got }))
    }

    /// GET a blob, refusing more than `limit` bytes or content that does not
    /// match the descriptor's size and digest.
    /// The referrers index of `digest` from the OCI 1.1 referrers API, or
    /// `None` when the registry does not offer the API.
    pub(crate) fn get_referrers(&mut self, d: &str) -> Result<Option<Vec<u8>>, ImageError> {
        let url = self.url("referrers", d);
        let mut resp = self.send("GET", &url, &[("Accept", oci::OCI_INDEX)], None)?;
        match resp.status().as_u16() {
            200 => {}
            // Registries without the API answer 404 (or refuse the route).
            400 | 404 | 405 => return Ok(None),
            _ => return Err(self.unexpected(&mut resp, format!("GET referrers {d}"))),
        }
        let limit = crate::config::MAX_MANIFEST_BYTES;
        read_bounded(&mut resp, limit)
            .map(Some)
            .map_err(|e| match e {
                ReadError::TooLarge(n) => ImageError::TooLarge {
                    reference: self.display.clone(),
                    what: "referrers index".to_string(),
                    size: n,
                    limit,
                    setting: "(fixed) manifest size",
                },
                ReadError::Net(e) => self.network(e),
            })
    }

    pub(crate) fn get_blob(
        &mut self,
        desc: &Descriptor,
        what: &str,
        limit: u64,
        setting: &'static str,
    ) -> Result<Vec<u8>, ImageError> {
        let too_large = |size| ImageError::TooLarge {
            reference: self.display.clone(),
            what: what.to_string(),
            size,
            limit,
            setting,
        };
        if desc.size > limit {
            return Err(too_large(desc.size));
        }
        digest::hex_part(&desc.digest).map_err(|e| ImageError::corrupt(&self.display, e))?;
        let url = self.url("blobs", &desc.digest);
        let mut resp = self.send("GET", &url, &[], None)?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(ImageError::NotFound {
                    reference: self.display.clone(),
                    reason: format!("the registry has no {what} blob {}", desc.digest),
                });
            }
            _ => return Err(self.unexpected(&mut resp, format!("GET {what} blob"))),
        }
        // One byte more than announced tells a lying descriptor from a short read.
        let bytes = read_bounded(&mut resp, desc.size.saturating_add(1)).map_err(|e| match e {
            ReadError::TooLarge(_) => ImageError::corrupt(
                &self.display,
                format!(
                    "{what} blob {} is larger than its descriptor's {} bytes",
                    desc.digest, desc.size
                ),
            ),
            ReadError::Net(e) => self.network(e),
        })?;
        if bytes.len() as u64 != desc.size {
            return Err(ImageError::corrupt(
                &self.display,
                format!(
                    "{what} blob {} is {} bytes, its descriptor says {}",
                    desc.digest,
                    bytes.len(),
                    desc.size
                ),
            ));
        }
        digest::check(&bytes, &desc.digest)
            .map_err(|e| ImageError::corrupt(&self.display, format!("{what} blob: {e}")))?;
        Ok(bytes)
    }

    /// GET a small blob whose size is not known (image configs when
    /// building an index), bounded by `limit` and digest-checked.
    pub(crate) fn get_small_blob(&mut self, d: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
        digest::hex_part(d).map_err(|e| ImageError::corrupt(&self.display, e))?;
        let url = self.url("blobs", d);
        let mut resp = self.send("GET", &url, &[], None)?;
        if resp.status().as_u16() != 200 {
            return Err(self.unexpected(&mut resp, format!("GET blob {d}")));
        }
        let bytes = read_bounded(&mut resp, limit).map_err(|e| match e {
            ReadError::TooLarge(n) => ImageError::TooLarge {
                reference: self.display.clone(),
                what: format!("blob {d}"),
                size: n,
                limit,
                setting: "(fixed) config size",
            },
            ReadError::Net(e) => self.network(e),
        })?;
        digest::check(&bytes, d).map_err(|e| ImageError::corrupt(&self.display, e))?;
        Ok(bytes)
    }

    fn blob_exists(&mut self, d: &str) -> Result<bool, ImageError> {
        let url = self.url("blobs", d);
        let mut resp = self.send("HEAD", &url, &[], None)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.unexpected(&mut resp, format!("HEAD blob {d}"))),
        }
    }

    /// Uploads a blob unless the registry has it.
    pub(crate) fn push_blob(&mut self, data: &[u8]) -> Result<String, ImageError> {
        let d = digest::sha256(data);
        if self.blob_exists(&d)? {
            return Ok(d);
        }
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        let mut resp = self.send("POST", &url, &[], Some(&[]))?;
        if resp.status().as_u16() != 202 {
            return Err(self.unexpected(&mut resp, "POST blob upload".to_string()));
        }
        let loc = header(&resp, "location").ok_or_else(|| ImageError::Registry {
            registry: self.registry.clone(),
            status: 202,
            what: "POST blob upload".to_string(),
            message: "no Location header".to_string(),
        })?;
        let loc = if loc.starts_with("http://") || loc.starts_with("https://") {
            loc
        } else {
            format!("{}/{}", self.base, loc.trim_start_matches('/'))
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={}", pct(&d));
        let len = data.len().to_string();
        let mut resp = self.send(
            "PUT",
            &put,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
            ],
            Some(data),
        )?;
        if resp.status().as_u16() != 201 {
            return Err(self.unexpected(&mut resp, format!("PUT blob {d}")));
        }
        Ok(d)
    }

    /// PUTs a manifest under a tag (or its digest); returns its digest.
    pub(crate) fn put_manifest(
        &mut self,
        r: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, ImageError> {
        let url = self.url("manifests", r);
        let mut resp = self.send("PUT", &url, &[("Content-Type", media_type)], Some(body))?;
        if resp.status().as_u16() != 201 {
            return Err(self.unexpected(&mut resp, format!("PUT manifest {r}")));
        }
        Ok(digest::sha256(body))
    }
}

enum ReadError {
    TooLarge(u64),
    Net(ureq::Error),
}

fn read_bounded(resp: &mut Response<ureq::Body>, limit: u64) -> Result<Vec<u8>, ReadError> {
    if let Some(n) = resp.body().content_length()
        && n > limit
    {
        return Err(ReadError::TooLarge(n));
    }
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(n) => ReadError::TooLarge(n.max(limit + 1)),
            e => ReadError::Net(e),
        })
}

fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// The first message of an OCI error body, or the status text.
fn error_message(resp: &mut Response<ureq::Body>) -> String {
    let reason = resp
        .status()
        .canonical_reason()
        .unwrap_or("unexpected status")
        .to_string();
    let Ok(text) = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
    else {
        return reason;
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            let t = text.trim();
            return if t.is_empty() {
                reason
            } else {
                t.chars().take(200).collect()
            };
        }
    };
    v.get("errors")
        .and_then(|e| e.get(0))
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            format!("{code} {msg}").trim().to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or(reason)
}

/// Splits `Bearer realm="...",service="..."` into the scheme and its params.
pub(crate) fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, after)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            // Quoted value, with backslash escapes.
            let mut v = String::new();
            let mut end = q.len();
            let mut esc = false;
            for (i, c) in q.char_indices() {
                if esc {
                    v.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    end = i + 1;
                    break;
                } else {
                    v.push(c);
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.push((k, v));
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

/// Bytes a query value keeps as they are: the unreserved set plus `:/,`,
/// which token scopes (`repository:a/b:pull,push`) are read with.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':')
    .remove(b'/')
    .remove(b',');

/// Percent-encodes a query value.
fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example.io/token",service="registry.example.io",scope="repository:a/b:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            vec![
                (
                    "realm".to_string(),
                    "https://auth.example.io/token".to_string()
                ),
                ("service".to_string(), "registry.example.io".to_string()),
                ("scope".to_string(), "repository:a/b:pull".to_string()),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="basic-realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p[0].1, "basic-realm");
        let (_, p) = parse_challenge(r#"Bearer realm=x, service = "a\"b""#);
        assert_eq!(p[0], ("realm".to_string(), "x".to_string()));
        assert_eq!(p[1], ("service".to_string(), "a\"b".to_string()));
    }

    #[test]
    fn percent() {
        assert_eq!(pct("repository:a/b:pull,push"), "repository:a/b:pull,push");
        assert_eq!(pct("a b&c"), "a%20b%26c");
    }
}
