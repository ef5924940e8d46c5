//! The daemon's gRPC services over the one manager: upstream's `bpfman.v1.Bpfman`
//! (wire-compatible, for bpfman-operator's agent and other upstream clients),
//! our `bpfman.ext.v1.BpfmanExt` (the CLI's remote mode), and the CSI volume
//! backend.
//!
//! The manager is blocking (file locks, SQLite, syscalls), so every call runs
//! on tokio's blocking pool; a client that gives up does not cancel a
//! half-done operation, which completes (or unwinds) on its own.

use std::path::Path;
use std::sync::Arc;

use bpfman_api::{convert, ext, v1};
use bpfman_core::metadata::Selector;
use bpfman_core::{AttachSpec, LoadSpec, ProgramKind, ProgramView};
use bpfman_manager::{Code, ListFilter, Manager, ManagerError};
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::metrics::Metrics;
use crate::trim::Trimmer;
use bpfman_core::{LinkId, ProgramId};

/// The gRPC services, sharing one manager.
#[derive(Clone)]
pub struct BpfmanService {
    mgr: Arc<Manager>,
    trim: Trimmer,
    metrics: Option<Arc<Metrics>>,
    /// The daemon holds BPF_ENABLE_STATS (metrics on).
    stats_enabled: bool,
}

impl BpfmanService {
    /// Services over `mgr` that poke `trim` after each request, counting
    /// operations into `metrics` when given.
    pub fn new(
        mgr: Arc<Manager>,
        trim: Trimmer,
        metrics: Option<Arc<Metrics>>,
        stats_enabled: bool,
    ) -> Self {
        BpfmanService {
            trim,
            mgr,
            metrics,
            stats_enabled,
        }
    }

    /// Loads, counting each program by type and outcome.
    async fn load_views(&self, spec: LoadSpec) -> Result<Vec<ProgramView>, Status> {
        let Some(metrics) = self.metrics.clone() else {
            return self.run(move |m| m.load(spec)).await;
        };
        let mut asked: Vec<String> = spec
            .programs
            .iter()
            .map(|p| p.kind.map_or("unknown", |k| k.as_str()).to_string())
            .collect();
        if asked.is_empty() {
            asked.push("unknown".to_string());
        }
        let r = self.run(move |m| m.load(spec)).await;
        match &r {
            Ok(views) => views
                .iter()
                .for_each(|v| metrics.observe_operation("load", &v.program_type, true)),
            Err(_) => asked
                .iter()
                .for_each(|t| metrics.observe_operation("load", t, false)),
        }
        r
    }

    /// Runs one mutation of program or link `id`, counting it by the type
    /// `type_of` reads before the change (only when metrics are on).
    async fn counted<T, G, F>(&self, op: &'static str, type_of: G, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        G: FnOnce(&Manager) -> Option<String> + Send + 'static,
        F: FnOnce(&Manager) -> Result<T, ManagerError> + Send + 'static,
    {
        let Some(metrics) = self.metrics.clone() else {
            return self.run(f).await;
        };
        let (ty, r) = self
            .run(move |m| {
                let ty = type_of(m).unwrap_or_else(|| "unknown".to_string());
                Ok((ty, f(m)))
            })
            .await?;
        metrics.observe_operation(op, &ty, r.is_ok());
        r.map_err(status_from_manager)
    }

    /// Runs `f` with the manager on the blocking pool and maps its error.
    async fn run<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Manager) -> Result<T, ManagerError> + Send + 'static,
    {
        let mgr = Arc::clone(&self.mgr);
        let done = tokio::task::spawn_blocking(move || f(&mgr)).await;
        self.trim.poke();
        match done {
            Ok(r) => r.map_err(status_from_manager),
            Err(e) => Err(Status::internal(format!(
                "the operation did not complete (bpfman bug): {e}; run `bpfman gc` to check for leftovers"
            ))),
        }
    }
}

/// The one mapping of manager failure classes to gRPC codes; the message is
/// passed on unchanged so remote and embedded CLI print the same line.
pub fn status_from_manager(e: ManagerError) -> Status {
    let code = match e.code {
        Code::InvalidArgument => tonic::Code::InvalidArgument,
        Code::NotFound => tonic::Code::NotFound,
        Code::FailedPrecondition => tonic::Code::FailedPrecondition,
        Code::AlreadyExists => tonic::Code::AlreadyExists,
        Code::Unavailable => tonic::Code::Unavailable,
        Code::Unimplemented => tonic::Code::Unimplemented,
        Code::Internal => tonic::Code::Internal,
    };
    Status::new(code, e.message)
}

/// Serialises a view for the ext service.
fn to_json<T: Serialize>(v: &T) -> Result<String, Status> {
    serde_json::to_string(v)
        .map_err(|e| Status::internal(format!("cannot encode the reply as JSON: {e}")))
}

/// Parses a JSON spec sent by a client.
fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, Status> {
    serde_json::from_str(s)
        .map_err(|e| Status::invalid_argument(format!("{what} is not valid: {e}")))
}

#[tonic::async_trait]
impl v1::bpfman_server::Bpfman for BpfmanService {
    async fn load(
        &self,
        r: Request<v1::LoadRequest>,
    ) -> Result<Response<v1::LoadResponse>, Status> {
        let spec = convert::load_spec_from_v1(r.into_inner())?;
        let views = self.load_views(spec).await?;
        Ok(Response::new(convert::load_response_from_views(views)))
    }

    async fn unload(
        &self,
        r: Request<v1::UnloadRequest>,
    ) -> Result<Response<v1::UnloadResponse>, Status> {
        let id = r.into_inner().id;
        self.counted(
            "unload",
            move |m| m.get(ProgramId(id)).ok().map(|v| v.program_type),
            move |m| m.unload(ProgramId(id)),
        )
        .await?;
        Ok(Response::new(v1::UnloadResponse {}))
    }

    async fn attach(
        &self,
        r: Request<v1::AttachRequest>,
    ) -> Result<Response<v1::AttachResponse>, Status> {
        let (id, spec, md) = convert::attach_request_from_v1(r.into_inner())?;
        let ty = spec.type_name().to_string();
        let link = self
            .counted("attach", move |_| Some(ty), move |m| m.attach(id, spec, md))
            .await?;
        Ok(Response::new(v1::AttachResponse {
            link_id: link.id.get(),
        }))
    }

    async fn detach(
        &self,
        r: Request<v1::DetachRequest>,
    ) -> Result<Response<v1::DetachResponse>, Status> {
        let link_id = r.into_inner().link_id;
        self.counted(
            "detach",
            move |m| m.get_link(LinkId(link_id)).ok().map(|l| l.link_type),
            move |m| m.detach(LinkId(link_id)),
        )
        .await?;
        Ok(Response::new(v1::DetachResponse {}))
    }

    async fn list(
        &self,
        r: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListResponse>, Status> {
        let r = r.into_inner();
        // Upstream lists every kernel program unless asked for bpfman's only;
        // `program_type` is in kernel bpf_prog_type numbering.
        let f = ListFilter {
            kind: None,
            kernel_type: r.program_type,
            selector: Selector(r.match_metadata),
            all: !r.bpfman_programs_only.unwrap_or(false),
        };
        let views = self.run(move |m| m.list(&f)).await?;
        Ok(Response::new(convert::list_response_from_views(views)))
    }

    async fn pull_bytecode(
        &self,
        r: Request<v1::PullBytecodeRequest>,
    ) -> Result<Response<v1::PullBytecodeResponse>, Status> {
        let Some(image) = r.into_inner().image else {
            return Err(Status::invalid_argument(
                "pull request has no image: set image.url",
            ));
        };
        let img = convert::image_request_from_v1(image)?;
        self.run(move |m| {
            m.pull_image(&img.url, Some(img.pull_policy), img.registry_auth.as_ref())
        })
        .await?;
        Ok(Response::new(v1::PullBytecodeResponse {}))
    }

    async fn get(&self, r: Request<v1::GetRequest>) -> Result<Response<v1::GetResponse>, Status> {
        let id = r.into_inner().id;
        let view = self.run(move |m| m.get(ProgramId(id))).await?;
        Ok(Response::new(convert::get_response_from_view(view)))
    }
}

#[tonic::async_trait]
impl ext::bpfman_ext_server::BpfmanExt for BpfmanService {
    async fn list_programs(
        &self,
        r: Request<ext::ListProgramsRequest>,
    ) -> Result<Response<ext::ListProgramsResponse>, Status> {
        let r = r.into_inner();
        let kind = r
            .program_type
            .as_deref()
            .map(str::parse::<ProgramKind>)
            .transpose()
            .map_err(convert::status_from_core)?;
        let f = ListFilter {
            kind,
            kernel_type: None,
            selector: Selector(r.selector),
            all: r.all,
        };
        let views = self.run(move |m| m.list(&f)).await?;
        Ok(Response::new(ext::ListProgramsResponse {
            json: to_json(&views)?,
        }))
    }

    async fn get_program(
        &self,
        r: Request<ext::GetProgramRequest>,
    ) -> Result<Response<ext::GetProgramResponse>, Status> {
        let id = r.into_inner().id;
        let view = self.run(move |m| m.get(ProgramId(id))).await?;
        Ok(Response::new(ext::GetProgramResponse {
            json: to_json(&view)?,
        }))
    }

    async fn list_links(
        &self,
        r: Request<ext::ListLinksRequest>,
    ) -> Result<Response<ext::ListLinksResponse>, Status> {
        let program = r.into_inner().program_id;
        let links = self
            .run(move |m| m.list_links(program.map(ProgramId)))
            .await?;
        Ok(Response::new(ext::ListLinksResponse {
            json: to_json(&links)?,
        }))
    }

    async fn get_link(
        &self,
        r: Request<ext::GetLinkRequest>,
    ) -> Result<Response<ext::GetLinkResponse>, Status> {
        let id = r.into_inner().id;
        let link = self.run(move |m| m.get_link(LinkId(id))).await?;
        Ok(Response::new(ext::GetLinkResponse {
            json: to_json(&link)?,
        }))
    }

    async fn gc(&self, r: Request<ext::GcRequest>) -> Result<Response<ext::GcResponse>, Status> {
        let prune = r.into_inner().prune;
        let items = self.run(move |m| m.gc(prune)).await?;
        if let Some(metrics) = &self.metrics {
            metrics.observe_gc(&items, prune);
        }
        Ok(Response::new(ext::GcResponse {
            json: to_json(&items)?,
        }))
    }

    async fn load(
        &self,
        r: Request<ext::LoadRequest>,
    ) -> Result<Response<ext::LoadResponse>, Status> {
        let spec: LoadSpec = from_json("load spec", &r.into_inner().spec_json)?;
        let views = self.load_views(spec).await?;
        Ok(Response::new(ext::LoadResponse {
            json: to_json(&views)?,
        }))
    }

    async fn attach(
        &self,
        r: Request<ext::AttachRequest>,
    ) -> Result<Response<ext::AttachResponse>, Status> {
        let r = r.into_inner();
        let spec: AttachSpec = from_json("attach spec", &r.spec_json)?;
        let (id, md) = (r.id, r.metadata);
        let ty = spec.type_name().to_string();
        let link = self
            .counted(
                "attach",
                move |_| Some(ty),
                move |m| m.attach(ProgramId(id), spec, md),
            )
            .await?;
        Ok(Response::new(ext::AttachResponse {
            json: to_json(&link)?,
        }))
    }

    async fn program_stats(
        &self,
        _r: Request<ext::ProgramStatsRequest>,
    ) -> Result<Response<ext::ProgramStatsResponse>, Status> {
        let on = self.stats_enabled;
        let sample = self.run(move |m| m.stats_sample(on)).await?;
        Ok(Response::new(ext::ProgramStatsResponse {
            json: to_json(&sample)?,
        }))
    }
}

/// The CSI node plugin's volume work, done by the manager.
pub struct ManagerVolumes {
    mgr: Arc<Manager>,
    trim: Trimmer,
}

impl ManagerVolumes {
    /// A CSI backend over `mgr` that pokes `trim` after each request.
    pub fn new(mgr: Arc<Manager>, trim: Trimmer) -> Self {
        ManagerVolumes { mgr, trim }
    }
}

/// Maps a manager failure to the CSI error of the same class.
fn volume_error(e: ManagerError) -> bpfman_csi::VolumeError {
    use bpfman_csi::VolumeError as V;
    match e.code {
        Code::InvalidArgument => V::InvalidArgument(e.message),
        Code::NotFound => V::NotFound(e.message),
        Code::AlreadyExists => V::AlreadyExists(e.message),
        Code::FailedPrecondition | Code::Unavailable | Code::Unimplemented => {
            V::FailedPrecondition(e.message)
        }
        Code::Internal => V::Internal(e.message),
    }
}

impl bpfman_csi::VolumeBackend for ManagerVolumes {
    fn publish(&self, req: &bpfman_csi::PublishRequest) -> Result<(), bpfman_csi::VolumeError> {
        // One request type (bpfman_core::volume) serves both sides.
        let r = self.mgr.publish_volume(req);
        self.trim.poke();
        r.map(|_| ()).map_err(volume_error)
    }

    fn unpublish(
        &self,
        volume_id: &str,
        target_path: &Path,
    ) -> Result<(), bpfman_csi::VolumeError> {
        let r = self.mgr.unpublish_volume(volume_id, target_path);
        self.trim.poke();
        r.map_err(volume_error)
    }

    fn ready(&self) -> Result<(), bpfman_csi::VolumeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_one_to_one_and_keep_the_message() {
        let cases = [
            (Code::InvalidArgument, tonic::Code::InvalidArgument),
            (Code::NotFound, tonic::Code::NotFound),
            (Code::FailedPrecondition, tonic::Code::FailedPrecondition),
            (Code::AlreadyExists, tonic::Code::AlreadyExists),
            (Code::Unavailable, tonic::Code::Unavailable),
            (Code::Unimplemented, tonic::Code::Unimplemented),
            (Code::Internal, tonic::Code::Internal),
        ];
        for (c, want) in cases {
            let s = status_from_manager(ManagerError::new(c, "program 7 does not exist"));
            assert_eq!(s.code(), want);
            assert_eq!(s.message(), "program 7 does not exist");
            assert_eq!(crate::remote::code_from_status(s.code()), c);
        }
    }

    #[test]
    fn volume_errors_keep_their_class() {
        let e = volume_error(ManagerError::not_found("no program matches app=x"));
        assert_eq!(
            e,
            bpfman_csi::VolumeError::NotFound("no program matches app=x".into())
        );
        let e = volume_error(ManagerError::new(Code::AlreadyExists, "busy"));
        assert_eq!(e.code(), tonic::Code::AlreadyExists);
    }
}
