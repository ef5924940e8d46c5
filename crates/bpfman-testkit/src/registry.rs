//! A real OCI registry on loopback: Debian's `docker-registry`
//! (distribution 2.8), one per test on a free port, its storage in a temp
//! dir, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::skip::skip;

/// Reads header `name` of the registry's answer on a port (for TLS, where
/// the test's own client knows the CA).
type HeaderProbe<'a> = Box<dyn Fn(u16, &str) -> Option<String> + 'a>;

/// How to start a [`Registry`].
pub struct RegistryBuilder<'a> {
    test: String,
    basic: Option<(String, String)>,
    auth: String,
    tls: Option<(PathBuf, PathBuf, HeaderProbe<'a>)>,
    delete: bool,
}

/// A `docker-registry serve` child process on 127.0.0.1.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl<'a> RegistryBuilder<'a> {
    /// htpasswd (bcrypt) basic auth for one user (needs `htpasswd`).
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.basic = Some((user.to_string(), password.to_string()));
        self
    }

    /// Bearer tokens from a token server: its realm URL and service, the
    /// issuer, and the PEM root cert path that signs the tokens.
    pub fn token_auth(mut self, realm: &str, service: &str, issuer: &str, cert: &Path) -> Self {
        self.auth = format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    \
             issuer: {issuer}\n    rootcertbundle: {}\n",
            cert.display()
        );
        self
    }

    /// Serves HTTPS with this certificate and key; `header` reads a response
    /// header from `https://127.0.0.1:<port>/v2/` (the readiness check).
    pub fn tls(
        mut self,
        cert: &Path,
        key: &Path,
        header: impl Fn(u16, &str) -> Option<String> + 'a,
    ) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf(), Box::new(header)));
        self
    }

    /// Lets clients delete manifests and blobs.
    pub fn delete(mut self) -> Self {
        self.delete = true;
        self
    }

    /// Starts the registry and waits until it answers as itself; `None`,
    /// with the skip line printed, when the tools are missing.
    pub fn start(self) -> Option<Registry> {
        let test = &self.test;
        if !tool_exists("docker-registry") {
            skip(
                test,
                "docker-registry is not installed (apt-get install docker-registry)",
            );
            return None;
        }
        if self.basic.is_some() && !tool_exists("htpasswd") {
            skip(
                test,
                "htpasswd is not installed (apt-get install apache2-utils)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap_or_else(|e| panic!("{}: {e}", storage.display()));
        let auth = match &self.basic {
            Some((u, p)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .unwrap_or_else(|e| panic!("htpasswd: {e}"));
                assert!(out.status.success(), "htpasswd failed");
                let f = dir.path().join("htpasswd");
                std::fs::write(&f, &out.stdout).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                format!(
                    "auth:\n  htpasswd:\n    realm: bpfman-test\n    path: {}\n",
                    f.display()
                )
            }
            None => self.auth.clone(),
        };
        let tls_conf = self.tls.as_ref().map_or(String::new(), |(cert, key, _)| {
            format!(
                "\x20 tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
        });
        let delete = if self.delete {
            "  delete:\n    enabled: true\n"
        } else {
            ""
        };
        // Ask the kernel for a free port, then hand it to the registry; another
        // process may take it in between, so a bind failure tries a new port.
        // Sent back in a header, to tell this registry from any other.
        let id = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap_or_else(|e| panic!("a free port: {e}"))
                .port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n{delete}\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: bpfman-test-secret\n\
                     \x20 headers:\n    X-Bpfman-Test: [{id}]\n{tls_conf}{auth}",
                    storage.display()
                ),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path)
                .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
            let log2 = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log2)
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("docker-registry: {e}"));
            // Bounded wait for the listener (no timing assertion: just readiness).
            let mut exited = None;
            for _ in 0..400 {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some(status);
                    break;
                }
                // Ours, not another test's registry that got the same port
                // (then ours exits with "address already in use").
                let ours = match &self.tls {
                    Some((_, _, header)) => {
                        header(port, "X-Bpfman-Test").as_deref() == Some(id.as_str())
                    }
                    None => answers_as(port, &id),
                };
                if ours {
                    return Some(Registry { child, port, dir });
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            match exited {
                Some(_) if log.contains("address already in use") && attempt < 2 => continue,
                Some(status) => panic!("docker-registry exited with {status}: {log}"),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("docker-registry did not listen on 127.0.0.1:{port}: {log}");
                }
            }
        }
        unreachable!("the last attempt panics")
    }
}

impl Registry {
    /// A registry for `test` (named in skip lines): anonymous, plain HTTP,
    /// until the builder says otherwise.
    pub fn builder<'a>(test: &str) -> RegistryBuilder<'a> {
        RegistryBuilder {
            test: test.to_string(),
            basic: None,
            auth: String::new(),
            tls: None,
            delete: false,
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// An image reference on this registry: `127.0.0.1:<port>/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// Its storage root (`docker/registry/v2/...` below it).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Kills the registry now (drop does too).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Does the registry on `port` answer with this `id` in its X-Bpfman-Test header?
pub fn answers_as(port: u16, id: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let want = format!("X-Bpfman-Test: {id}");
    String::from_utf8_lossy(&reply)
        .lines()
        .any(|l| l.trim_end() == want)
}

/// True when `name` is an executable file on `PATH`.
pub fn tool_exists(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}
