//! `bpfman serve`: the daemon. One manager behind the gRPC services on a Unix
//! socket (plus the standard health service), and optionally the CSI node
//! plugin on its own socket. SIGTERM/SIGINT stop it gracefully: no new
//! connections, in-flight calls finish, both sockets go away; programs, links
//! and published volumes stay, and the next start picks them up.
//!
//! `bpfman health`: asks a running daemon whether it serves.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bpfman_api::client::{bind_uds, connect_uds, uds_incoming};
use bpfman_api::ext::bpfman_ext_server::BpfmanExtServer;
use bpfman_api::v1::bpfman_server::BpfmanServer;
use bpfman_manager::{Code, Config, Manager, ManagerError};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;
use tracing::{error, info, warn};

use crate::cli::ServeArgs;
use crate::server::{BpfmanService, ManagerVolumes};
use crate::trim::Trimmer;

/// First file descriptor systemd passes with socket activation (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// How long `bpfman health` waits for an answer from a daemon that accepted
/// the connection (a wedged daemon must not hang a liveness probe).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request the services accept ([`bpfman_api::client::MAX_REQUEST_BYTES`]).
const MAX_REQUEST: usize = bpfman_api::client::MAX_REQUEST_BYTES;

/// Runs the daemon until SIGTERM or SIGINT.
///
/// Order matters: the gRPC socket is claimed first, so a second daemon on a
/// live socket refuses before touching anything; then the manager opens and
/// start-up reconciliation (`gc --prune`) repairs whatever a reboot or a
/// crash left behind, logging each repair and never refusing to start over
/// stale state; then both servers serve.
pub fn serve(runtime_dir: &Path, args: &ServeArgs) -> Result<(), ManagerError> {
    // One malloc arena for the whole daemon: with one per thread, memory
    // freed after a burst (1,000 loads, then unloads) stayed spread over
    // several half-used arenas that malloc_trim cannot give back (bench:
    // RssAnon 1 s after unloading everything 1.9-2.8 MiB, 1.8 with one
    // arena, idle 1.3; load and list latency unchanged on this 2-CPU host).
    // And no trimming between requests: a `list` of 1,000 programs grew the
    // heap by 2-3 MB and gave it back as it freed, so every list faulted its
    // pages in afresh (bench: gRPC list@1000 p50 8.1-8.8 ms, 6.2-6.5 ms
    // without). The idle trimmer (trim.rs) returns the memory once the
    // daemon goes quiet. The mmap threshold is set with it because setting
    // either turns off glibc's adaptive one, which would send the large
    // buffers to a fresh mmap on every request.
    // SAFETY: mallopt only sets glibc malloc parameters; called before the
    // runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bpfman-serve")
        .build()
        .map_err(|e| ManagerError::internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run(runtime_dir.to_path_buf(), args))
}

async fn run(runtime_dir: PathBuf, args: &ServeArgs) -> Result<(), ManagerError> {
    // Installed before the slow start-up so a signal meanwhile still means
    // "stop gracefully" rather than the default immediate death.
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| ManagerError::internal(format!("cannot handle SIGTERM: {e}")))?;
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| ManagerError::internal(format!("cannot handle SIGINT: {e}")))?;

    let (listener, socket) = listen(&args.listen)?;
    let where_ = match &socket {
        Some(s) => s.path.display().to_string(),
        None => format!("the socket passed by systemd (fd {LISTEN_FDS_START})"),
    };
    // Who may call what: [auth] of bpfman.toml; by default root and the
    // group of the socket file (systemd's SocketGroup= when activated).
    let socket_gid = socket_group(&listener);
    let policy = crate::auth::load_policy(&bpfman_manager::image::config_path(), socket_gid)?;
    info!(
        mutate_uids = ?policy.mutate_uids,
        mutate_gids = ?policy.mutate_gids,
        read_uids = ?policy.read_uids,
        read_gids = ?policy.read_gids,
        "gRPC access policy (auth.* in {})",
        policy.source
    );

    // The CSI socket is bound here too, like the gRPC one above: health
    // reports serving only once both exist, and a taken CSI socket refuses
    // to start instead of stopping a daemon that has reported healthy.
    let csi = if args.csi_support {
        let (endpoint, cfg) = csi_config(args)?;
        let listener = bpfman_csi::CsiListener::bind(&endpoint)
            .await
            .map_err(|e| {
                ManagerError::new(
                    Code::FailedPrecondition,
                    format!("CSI node plugin on {}: {e}", endpoint.display()),
                )
            })?;
        Some((listener, cfg))
    } else {
        None
    };

    // Bound before the manager opens: a bad or taken address refuses to
    // start rather than serving without the metrics asked for.
    let metrics_listener = match &args.metrics_listen {
        Some(addr) => Some(
            crate::metrics::MetricsListener::bind(addr)
                .await
                .map_err(|e| ManagerError::new(Code::FailedPrecondition, e))?,
        ),
        None => None,
    };

    let (mgr, repairs) =
        tokio::task::spawn_blocking(move || -> Result<(Manager, Repairs), ManagerError> {
            let mgr = Manager::open(Config::new(&runtime_dir))?;
            let repairs = reconcile(&mgr);
            Ok((mgr, repairs))
        })
        .await
        .map_err(|e| ManagerError::internal(format!("start-up did not complete: {e}")))??;
    let mgr = Arc::new(mgr);

    // Metrics on: the kernel counts run time while we hold the stats fd
    // (dropped, and counting off again, when the daemon stops).
    let (metrics, stats_guard) = match metrics_listener {
        Some(l) => {
            let guard = match bpfman_manager::stats::enable_run_time_stats() {
                Ok(g) => Some(g),
                Err(e) => {
                    warn!("metrics: run counts will not grow: {}", e.message);
                    None
                }
            };
            let m = crate::metrics::Metrics::new(Arc::clone(&mgr), guard.is_some());
            repairs.record(&m);
            (Some((m, l)), guard)
        }
        None => (None, None),
    };
    let metrics_handle = metrics.as_ref().map(|(m, _)| Arc::clone(m));

    let (reporter, health_service) = tonic_health::server::health_reporter();
    // One trimmer for both servers: a CSI publish is a request too.
    let trim = Trimmer::spawn(Arc::clone(&mgr));
    let svc = BpfmanService::new(
        Arc::clone(&mgr),
        trim.clone(),
        metrics_handle.clone(),
        stats_guard.is_some(),
    );
    let v1 = BpfmanServer::new(svc.clone()).max_decoding_message_size(MAX_REQUEST);
    let ext = BpfmanExtServer::new(svc).max_decoding_message_size(MAX_REQUEST);
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    reporter.set_serving::<BpfmanServer<BpfmanService>>().await;
    reporter
        .set_serving::<BpfmanExtServer<BpfmanService>>()
        .await;

    // One stop flag for both servers: a signal, or either server ending
    // (e.g. the CSI socket is taken), stops everything.
    let (stop_tx, stop_rx) = watch::channel(false);

    let grpc = async {
        let rx = stop_rx.clone();
        let reporter = reporter.clone();
        let socket = socket.as_ref();
        let signal = async move {
            wait_for_stop(rx).await;
            // New clients must fail fast while in-flight calls drain.
            reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
            if let Some(s) = socket {
                s.remove();
            }
            info!("gRPC server: no longer accepting, finishing in-flight calls");
        };
        info!(socket = %where_, "bpfman daemon serving bpfman.v1.Bpfman, bpfman.ext.v1.BpfmanExt and grpc.health.v1");
        let r = tonic::transport::Server::builder()
            .layer(
                bpfman_uds::observe::ObserveLayer::new(crate::metrics::observer(
                    metrics_handle.clone(),
                    "grpc",
                ))
                .gate(crate::auth::gate(policy)),
            )
            .add_service(health_service)
            .add_service(v1)
            .add_service(ext)
            .serve_with_incoming_shutdown(uds_incoming(listener), signal)
            .await;
        stop_tx.send_replace(true);
        r.map_err(|e| format!("gRPC server on {where_}: {}", chain(&e)))
    };

    let csi = async {
        let Some((listener, cfg)) = csi else {
            return Ok(());
        };
        let endpoint = listener.endpoint().to_path_buf();
        let backend = Arc::new(ManagerVolumes::new(Arc::clone(&mgr), trim));
        let observer = crate::metrics::observer(metrics_handle.clone(), "csi");
        let r = bpfman_csi::serve_observed(
            listener,
            cfg,
            backend,
            observer,
            wait_for_stop(stop_rx.clone()),
        )
        .await;
        stop_tx.send_replace(true);
        r.map_err(|e| format!("CSI node plugin on {}: {e}", endpoint.display()))
    };

    let signals = async {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM: shutting down"),
            _ = sigint.recv() => info!("SIGINT: shutting down"),
            _ = wait_for_stop(stop_rx.clone()) => {}
        }
        stop_tx.send_replace(true);
    };

    let metrics_server = async {
        if let Some((m, l)) = metrics {
            crate::metrics::serve(l, m, wait_for_stop(stop_rx.clone())).await;
        }
    };

    let (grpc, csi, (), ()) = tokio::join!(grpc, csi, signals, metrics_server);
    if let Some(s) = &socket {
        s.remove();
    }
    let errors: Vec<String> = [grpc.err(), csi.err()].into_iter().flatten().collect();
    if errors.is_empty() {
        info!("bpfman daemon stopped; programs, links and volumes stay in place");
        Ok(())
    } else {
        for e in &errors {
            error!("{e}");
        }
        Err(ManagerError::new(Code::Unavailable, errors.join("; ")))
    }
}

async fn wait_for_stop(mut rx: watch::Receiver<bool>) {
    // An error means every sender is gone, which also means "stop".
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Start-up repair: whatever a reboot (empty bpffs, stale store) or a crash
/// (half-done operation) left is removed, and said so in the log. A failure
/// here is logged and the daemon serves anyway: refusing to start would
/// leave the node without bpfman over state `gc --prune` can fix later.
fn reconcile(mgr: &Manager) -> Repairs {
    // Network hooks first: a dispatcher whose kernel state is gone is rebuilt
    // from the store (a no-op when the kernel already runs the recorded set).
    let net = match mgr.reconcile_net() {
        Ok(lines) => {
            lines.iter().for_each(|l| info!("reconcile: {l}"));
            Some(lines.len())
        }
        Err(e) => {
            warn!("reconcile of network hooks failed, serving anyway: {e}");
            None
        }
    };
    let gc = match mgr.gc(true) {
        Ok(items) if items.is_empty() => {
            info!("reconcile: store, kernel and bpffs agree");
            Some(items)
        }
        Ok(items) => {
            for i in &items {
                info!("reconcile: removed {} {}: {}", i.kind, i.subject, i.reason);
            }
            info!("reconcile: repaired {} item(s)", items.len());
            Some(items)
        }
        Err(e) => {
            error!(
                "reconcile failed, serving anyway (run `bpfman gc --prune` to retry): {}",
                e.message
            );
            None
        }
    };
    Repairs { net, gc }
}

/// What start-up reconciliation did, for the metrics (`None`: the step failed).
struct Repairs {
    net: Option<usize>,
    gc: Option<Vec<bpfman_core::gc::GcItem>>,
}

impl Repairs {
    fn record(&self, m: &crate::metrics::Metrics) {
        m.observe_reconcile("net_hooks", self.net);
        m.observe_reconcile("gc", self.gc.as_ref().map(Vec::len));
        if let Some(items) = &self.gc {
            m.observe_gc(items, true);
        }
    }
}

/// The socket file this daemon created: removed on shutdown (or when
/// start-up fails after binding), unless another process has put its own
/// file there since.
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The socket just bound at `path`, to remove later.
    pub(crate) fn claim(path: &Path) -> std::io::Result<SocketFile> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            warn!(socket = %self.path.display(), "cannot remove the socket: {e}");
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The gRPC listener: systemd's when socket-activated (then the socket file
/// is systemd's, not ours), else a socket bound at `path`.
fn listen(path: &Path) -> Result<(UnixListener, Option<SocketFile>), ManagerError> {
    if let Some(l) = activated_listener()? {
        return Ok((l, None));
    }
    let listener = bind_uds(path).map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AlreadyExists => {
                Code::FailedPrecondition
            }
            std::io::ErrorKind::PermissionDenied => Code::FailedPrecondition,
            _ => Code::Internal,
        };
        ManagerError::new(code, format!("cannot listen on {}: {e}", path.display()))
    })?;
    let file = SocketFile::claim(path)
        .map_err(|e| ManagerError::internal(format!("cannot inspect {}: {e}", path.display())))?;
    Ok((listener, Some(file)))
}

/// The group owning the socket file `listener` is bound to, if it has one.
fn socket_group(listener: &UnixListener) -> Option<u32> {
    let addr = listener.local_addr().ok()?;
    let path = addr.as_pathname()?;
    std::fs::metadata(path).ok().map(|m| m.gid())
}

/// The listening socket systemd passed (sd_listen_fds protocol), if
/// `LISTEN_PID` names this process and `LISTEN_FDS` is at least 1.
fn activated_listener() -> Result<Option<UnixListener>, ManagerError> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if !for_us || count == 0 {
        return Ok(None);
    }
    if count > 1 {
        warn!(
            "systemd passed {count} sockets; serving gRPC on the first (fd {LISTEN_FDS_START}) only"
        );
    }
    // SAFETY: with LISTEN_PID equal to our pid, systemd guarantees fd 3 is an
    // open socket handed to this process, and nothing else in bpfman uses it;
    // ownership moves here exactly once (this runs once, at start-up).
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let bad = |e: std::io::Error| {
        ManagerError::new(
            Code::FailedPrecondition,
            format!("socket activation: fd {LISTEN_FDS_START} is not a listening Unix socket: {e}"),
        )
    };
    // systemd does not set close-on-exec on passed sockets.
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| bad(e.into()))?;
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    // getsockname fails with "not a Unix socket" for any other kind of fd.
    std_listener.local_addr().map_err(bad)?;
    std_listener.set_nonblocking(true).map_err(bad)?;
    let listener = UnixListener::from_std(std_listener).map_err(bad)?;
    info!("socket activation: using the socket systemd passed on fd {LISTEN_FDS_START}");
    Ok(Some(listener))
}

/// CSI settings from the command line; the node id defaults to the host name.
fn csi_config(args: &ServeArgs) -> Result<(PathBuf, bpfman_csi::CsiConfig), ManagerError> {
    let node_id = match args.node_id.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => host_name()?,
    };
    let cfg = bpfman_csi::CsiConfig {
        driver_name: args.csi_driver_name.clone(),
        node_id,
        pods_dir: args.pods_dir.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    cfg.validate()
        .map_err(|e| ManagerError::invalid(e.to_string()))?;
    Ok((bpfman_csi::endpoint_path(&args.csi_endpoint), cfg))
}

fn host_name() -> Result<String, ManagerError> {
    if let Ok(h) = nix::unistd::gethostname()
        && let Some(h) = h.to_str().filter(|h| !h.is_empty())
    {
        return Ok(h.to_string());
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            ManagerError::invalid(
                "cannot tell the host name: pass --node-id (the Kubernetes node name)",
            )
        })
}

/// Renders an error and its sources on one line (tonic's own message is
/// often just "transport error").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.ends_with(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// Asks the daemon at `socket` whether it serves (grpc.health.v1 Check of the
/// whole server). `Ok("SERVING\n")` when it does; UNAVAILABLE otherwise.
pub fn health(socket: &Path) -> Result<String, ManagerError> {
    let unavailable = |why: String| ManagerError::new(Code::Unavailable, why);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ManagerError::internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let channel = connect_uds(socket).await.map_err(|e| {
            let bpfman_api::client::ClientError::Connect { reason, .. } = e;
            unavailable(format!(
                "cannot reach bpfman daemon at {}: {reason}",
                socket.display()
            ))
        })?;
        let mut client = HealthClient::new(channel);
        let check = client.check(HealthCheckRequest {
            service: String::new(),
        });
        let reply = tokio::time::timeout(HEALTH_TIMEOUT, check)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "bpfman daemon at {} did not answer the health check within {}s",
                    socket.display(),
                    HEALTH_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|s| {
                unavailable(format!(
                    "bpfman daemon at {} failed the health check: {}",
                    socket.display(),
                    s.message()
                ))
            })?;
        match reply.into_inner().status() {
            WireStatus::Serving => Ok("SERVING\n".to_string()),
            other => Err(unavailable(format!(
                "bpfman daemon at {} is not serving (status {})",
                socket.display(),
                other.as_str_name()
            ))),
        }
    })
}
