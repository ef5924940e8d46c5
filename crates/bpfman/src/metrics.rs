//! Prometheus metrics of the daemon (`bpfman serve --metrics-listen ADDR`):
//! request counts and latencies, operations by type and outcome, gc and
//! start-up reconciliation, store size, build info, and at scrape time every
//! managed program's run count and run time (the kernel counts them while the
//! daemon holds `BPF_ENABLE_STATS`), links and maps. Encoded by
//! `prometheus-client` in the Prometheus text format (0.0.4).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bpfman_manager::Manager;
use bpfman_uds::observe::Observer;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, UnixListener};
use tonic::codegen::http;
use tracing::{info, warn};

use crate::serve::SocketFile;

/// Request counter labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    server: &'static str,
    method: String,
    code: String,
}

/// Latency histogram labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    server: &'static str,
    method: String,
}

/// Operation labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
    program_type: String,
    outcome: &'static str,
}

/// gc labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GcLabels {
    kind: &'static str,
    action: &'static str,
}

/// Reconciliation labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    step: &'static str,
    result: &'static str,
}

/// The daemon's metrics, shared by the services and the scrape endpoint.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    operations: Family<OperationLabels, Counter>,
    gc_items: Family<GcLabels, Counter>,
    reconcile: Family<ReconcileLabels, Gauge>,
    /// Method paths a label may name; anything else is `unknown` (a client
    /// cannot grow the series by inventing paths).
    methods: BTreeSet<String>,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    /// The registry, with the per-program collector over `mgr`.
    pub fn new(mgr: Arc<Manager>, stats_enabled: bool) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let operations = Family::<OperationLabels, Counter>::default();
        let gc_items = Family::<GcLabels, Counter>::default();
        let reconcile = Family::<ReconcileLabels, Gauge>::default();
        registry.register(
            "bpfman_requests",
            "gRPC requests served, by server, method and status code",
            requests.clone(),
        );
        registry.register(
            "bpfman_request_duration_seconds",
            "Time to answer a gRPC request, by server and method",
            latency.clone(),
        );
        registry.register(
            "bpfman_operations",
            "Loads, attaches, detaches and unloads, by program type and outcome",
            operations.clone(),
        );
        registry.register(
            "bpfman_gc_items",
            "Stale items gc found (action=found) and removed (action=pruned), by kind",
            gc_items.clone(),
        );
        registry.register(
            "bpfman_startup_reconcile_items",
            "Items start-up reconciliation repaired (result=repaired) or a failed step (result=failed)",
            reconcile.clone(),
        );
        registry.register(
            "bpfman_build",
            "bpfman build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(ProgramCollector { mgr, stats_enabled }));
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            operations,
            gc_items,
            reconcile,
            methods: known_methods(),
        })
    }

    /// Records one answered request.
    pub fn observe_request(&self, server: &'static str, path: &str, code: i32, took: Duration) {
        let method = if self.methods.contains(path) {
            path.to_string()
        } else {
            "unknown".to_string()
        };
        self.requests
            .get_or_create(&RequestLabels {
                server,
                method: method.clone(),
                code: code_name(code).to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { server, method })
            .observe(took.as_secs_f64());
    }

    /// Records one load/attach/detach/unload.
    pub fn observe_operation(&self, operation: &'static str, program_type: &str, ok: bool) {
        self.operations
            .get_or_create(&OperationLabels {
                operation,
                program_type: program_type.to_string(),
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Records the items of one gc run.
    pub fn observe_gc(&self, items: &[bpfman_core::gc::GcItem], pruned: bool) {
        for i in items {
            let action = if pruned { "pruned" } else { "found" };
            self.gc_items
                .get_or_create(&GcLabels {
                    kind: i.kind.as_str(),
                    action,
                })
                .inc();
        }
    }

    /// Records start-up reconciliation: per step, items repaired or a failure.
    pub fn observe_reconcile(&self, step: &'static str, repaired: Option<usize>) {
        let (result, n) = match repaired {
            Some(n) => ("repaired", n as i64),
            None => ("failed", 1),
        };
        self.reconcile
            .get_or_create(&ReconcileLabels { step, result })
            .set(n);
    }

    /// The text exposition of every metric (blocking: reads the store and
    /// the kernel).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// gRPC status code names, as grpc-go and the spec spell them.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Every method path the daemon and its CSI plugin serve: bpfman's from the
/// compiled protos, the standard ones by name.
fn known_methods() -> BTreeSet<String> {
    use prost::Message as _;
    let mut out = BTreeSet::new();
    if let Ok(set) = prost_types::FileDescriptorSet::decode(bpfman_api::FILE_DESCRIPTOR_SET) {
        for f in &set.file {
            for s in &f.service {
                for m in &s.method {
                    out.insert(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
                }
            }
        }
    }
    for m in ["Check", "Watch", "List"] {
        out.insert(format!("/grpc.health.v1.Health/{m}"));
    }
    for m in ["GetPluginInfo", "GetPluginCapabilities", "Probe"] {
        out.insert(format!("/csi.v1.Identity/{m}"));
    }
    for m in [
        "NodeStageVolume",
        "NodeUnstageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeGetVolumeStats",
        "NodeExpandVolume",
        "NodeGetCapabilities",
        "NodeGetInfo",
    ] {
        out.insert(format!("/csi.v1.Node/{m}"));
    }
    out
}

/// Scrape-time metrics: the programs, their counters, links and maps, the
/// store's size.
struct ProgramCollector {
    mgr: Arc<Manager>,
    stats_enabled: bool,
}

impl std::fmt::Debug for ProgramCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramCollector")
            .field("stats_enabled", &self.stats_enabled)
            .finish_non_exhaustive()
    }
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ProgramCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut enc,
            "bpfman_store_bytes",
            "Bytes the store takes on disk (database and write-ahead log)",
            i64::try_from(self.mgr.store_bytes()).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut enc,
            "bpfman_bpf_stats_enabled",
            "1 when the daemon holds BPF_ENABLE_STATS (run counts grow)",
            i64::from(self.stats_enabled),
        )?;
        let sample = match self.mgr.stats_sample(self.stats_enabled) {
            Ok(s) => s,
            Err(e) => {
                warn!("metrics: cannot read the programs: {}", e.message);
                return gauge(
                    &mut enc,
                    "bpfman_programs_scrape_ok",
                    "1 when the programs could be read for this scrape",
                    0,
                );
            }
        };
        gauge(
            &mut enc,
            "bpfman_programs_scrape_ok",
            "1 when the programs could be read for this scrape",
            1,
        )?;
        gauge(
            &mut enc,
            "bpfman_managed_programs",
            "Programs bpfman manages",
            sample.programs.len() as i64,
        )?;
        let labels = |p: &bpfman_core::stats::ProgramStats| {
            vec![
                ("program_id", p.id.to_string()),
                ("name", p.name.clone()),
                ("type", p.program_type.clone()),
                ("application", p.application.clone().unwrap_or_default()),
            ]
        };
        let mut d = enc.encode_descriptor(
            "bpfman_program_run_count",
            "Runs of a managed program the kernel counted (while BPF stats were on)",
            None,
            MetricType::Counter,
        )?;
        for p in &sample.programs {
            ConstCounter::new(p.run_cnt).encode(d.encode_family(&labels(p))?)?;
        }
        let mut d = enc.encode_descriptor(
            "bpfman_program_run_time_seconds",
            "CPU time a managed program spent in its runs (kernel run_time_ns)",
            None,
            MetricType::Counter,
        )?;
        for p in &sample.programs {
            ConstCounter::new(p.run_time_ns as f64 / 1e9).encode(d.encode_family(&labels(p))?)?;
        }
        let mut d = enc.encode_descriptor(
            "bpfman_program_links",
            "Links of a managed program",
            None,
            MetricType::Gauge,
        )?;
        for p in &sample.programs {
            ConstGauge::new(i64::from(p.links)).encode(d.encode_family(&labels(p))?)?;
        }
        let mut d = enc.encode_descriptor(
            "bpfman_program_maps",
            "Maps of a managed program",
            None,
            MetricType::Gauge,
        )?;
        for p in &sample.programs {
            ConstGauge::new(p.maps.len() as i64).encode(d.encode_family(&labels(p))?)?;
        }
        let mut d = enc.encode_descriptor(
            "bpfman_map_max_entries",
            "Capacity of a map of a managed program",
            None,
            MetricType::Gauge,
        )?;
        for p in &sample.programs {
            for m in &p.maps {
                let mut l = labels(p);
                l.push(("map", m.name.clone()));
                l.push(("map_id", m.id.to_string()));
                ConstGauge::new(i64::from(m.max_entries)).encode(d.encode_family(&l)?)?;
            }
        }
        let u = &sample.unmanaged;
        gauge(
            &mut enc,
            "bpfman_unmanaged_programs",
            "Kernel programs bpfman does not manage (summed, not listed)",
            u.programs as i64,
        )?;
        let c = ConstCounter::new(u.run_cnt);
        c.encode(enc.encode_descriptor(
            "bpfman_unmanaged_program_run_count",
            "Runs of the programs bpfman does not manage, summed",
            None,
            c.metric_type(),
        )?)?;
        let c = ConstCounter::new(u.run_time_ns as f64 / 1e9);
        c.encode(enc.encode_descriptor(
            "bpfman_unmanaged_program_run_time_seconds",
            "CPU time of the programs bpfman does not manage, summed",
            None,
            c.metric_type(),
        )?)
    }
}

/// The request observer of one server (`grpc`, `csi`), for
/// [`bpfman_uds::observe::ObserveLayer`]; a no-op without metrics.
pub fn observer(metrics: Option<Arc<Metrics>>, server: &'static str) -> Option<Observer> {
    let m = metrics?;
    Some(Arc::new(move |path: &str, code: i32, took: Duration| {
        m.observe_request(server, path, code, took)
    }))
}

/// Where `/metrics` is served.
pub enum MetricsListener {
    /// HOST:PORT.
    Tcp(TcpListener),
    /// A Unix socket (its file removed when this is dropped, on any path).
    Unix(UnixListener, SocketFile),
}

impl MetricsListener {
    /// Binds `addr`: a path (contains `/`) is a Unix socket, else HOST:PORT.
    pub async fn bind(addr: &str) -> Result<MetricsListener, String> {
        if addr.contains('/') {
            let path = Path::new(addr);
            let fail = |e: std::io::Error| format!("cannot listen for metrics on {addr}: {e}");
            let l = bpfman_api::client::bind_uds(path).map_err(fail)?;
            return Ok(MetricsListener::Unix(
                l,
                SocketFile::claim(path).map_err(fail)?,
            ));
        }
        let sa: std::net::SocketAddr = addr.parse().map_err(|_| {
            format!(
                "--metrics-listen {addr}: give HOST:PORT (e.g. 127.0.0.1:9090) or a Unix socket path"
            )
        })?;
        TcpListener::bind(sa)
            .await
            .map(MetricsListener::Tcp)
            .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))
    }

    /// What it listens on, for the log.
    pub fn describe(&self) -> String {
        match self {
            MetricsListener::Tcp(l) => l
                .local_addr()
                .map(|a| format!("http://{a}/metrics"))
                .unwrap_or_else(|_| "tcp".into()),
            MetricsListener::Unix(_, f) => format!("unix:{} /metrics", f.path().display()),
        }
    }
}

/// Serves `/metrics` until `stop` resolves.
pub async fn serve(
    listener: MetricsListener,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    info!(at = %listener.describe(), "serving Prometheus metrics");
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            r = accept(&listener, &metrics) => r,
        };
        if let Err(e) = accepted {
            warn!("metrics: accept failed: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Accepts one connection and serves it on its own task.
async fn accept(listener: &MetricsListener, metrics: &Arc<Metrics>) -> std::io::Result<()> {
    match listener {
        MetricsListener::Tcp(l) => {
            spawn_conn(TokioIo::new(l.accept().await?.0), Arc::clone(metrics))
        }
        MetricsListener::Unix(l, _) => {
            spawn_conn(TokioIo::new(l.accept().await?.0), Arc::clone(metrics))
        }
    }
    Ok(())
}

fn spawn_conn<I>(io: I, metrics: Arc<Metrics>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| handle(req, Arc::clone(&metrics)));
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await
        {
            tracing::debug!("metrics connection: {e}");
        }
    });
}

async fn handle(
    req: http::Request<hyper::body::Incoming>,
    metrics: Arc<Metrics>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let reply = |status: u16, ctype: &str, body: String| {
        let mut r = http::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        if let Ok(v) = http::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(
            404,
            "text/plain",
            "not found: scrape /metrics\n".into(),
        ));
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return Ok(reply(405, "text/plain", "use GET\n".into()));
    }
    let text = tokio::task::spawn_blocking(move || metrics.encode()).await;
    Ok(match text {
        Ok(Ok(t)) => reply(
            200,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            t,
        ),
        _ => reply(500, "text/plain", "cannot encode the metrics\n".into()),
    })
}
