//! The CLI's remote mode: every operation goes to the daemon over its Unix
//! socket through the `bpfman.ext.v1` service, which carries the same view
//! types the embedded mode renders, so both modes print the same output and
//! the same `Error: <message>` lines.

use std::future::Future;
use std::path::{Path, PathBuf};

use bpfman_api::client::{ClientError, connect_uds};
use bpfman_api::ext;
use bpfman_api::ext::bpfman_ext_client::BpfmanExtClient;
use bpfman_core::gc::GcItem;
use bpfman_core::metadata::Metadata;
use bpfman_core::model::{LinkView, ProgramView};
use bpfman_core::spec::{AttachSpec, LoadSpec};
use bpfman_core::stats::StatsSample;
use bpfman_manager::{Code, ListFilter, ManagerError};
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::ops::Ops;

use bpfman_api::client::MAX_REPLY_BYTES as MAX_REPLY;

/// A connection to the daemon, used synchronously by the CLI.
pub struct Remote {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    socket: PathBuf,
}

/// The manager failure class of a gRPC status code (inverse of the server's mapping).
pub fn code_from_status(c: tonic::Code) -> Code {
    match c {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Code::InvalidArgument,
        tonic::Code::NotFound => Code::NotFound,
        tonic::Code::FailedPrecondition => Code::FailedPrecondition,
        tonic::Code::AlreadyExists => Code::AlreadyExists,
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
            Code::Unavailable
        }
        tonic::Code::Unimplemented => Code::Unimplemented,
        _ => Code::Internal,
    }
}

impl Remote {
    /// Connects to the daemon at `socket`; UNAVAILABLE when nothing answers.
    pub fn connect(socket: &Path) -> Result<Remote, ManagerError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ManagerError::internal(format!("cannot start the async runtime: {e}")))?;
        let channel = rt.block_on(connect_uds(socket)).map_err(|e| {
            let ClientError::Connect { reason, .. } = e;
            ManagerError::new(
                Code::Unavailable,
                format!(
                    "cannot reach bpfman daemon at {}: {reason}",
                    socket.display()
                ),
            )
        })?;
        Ok(Remote {
            rt,
            channel,
            socket: socket.to_path_buf(),
        })
    }

    fn client(&self) -> BpfmanExtClient<Channel> {
        BpfmanExtClient::new(self.channel.clone()).max_decoding_message_size(MAX_REPLY)
    }

    /// Runs one call to completion and turns a status into the daemon's error.
    fn call<T, F>(&self, fut: F) -> Result<T, ManagerError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt
            .block_on(fut)
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error(s))
    }

    fn error(&self, s: tonic::Status) -> ManagerError {
        let code = code_from_status(s.code());
        // A status made by the daemon carries its message as the CLI prints
        // it; one made by the transport (daemon gone mid-call) needs context.
        let from_transport = std::error::Error::source(&s).is_some();
        let message = if from_transport {
            format!(
                "lost the bpfman daemon at {}: {}",
                self.socket.display(),
                s.message()
            )
        } else {
            s.message().to_string()
        };
        ManagerError::new(code, message)
    }
}

fn parse<T: DeserializeOwned>(json: &str) -> Result<T, ManagerError> {
    serde_json::from_str(json).map_err(|e| {
        ManagerError::internal(format!(
            "the daemon sent a reply this CLI cannot read ({e}): are the daemon and the CLI the same version?"
        ))
    })
}

fn encode<T: serde::Serialize>(what: &str, v: &T) -> Result<String, ManagerError> {
    serde_json::to_string(v)
        .map_err(|e| ManagerError::internal(format!("cannot encode the {what}: {e}")))
}

impl Ops for Remote {
    fn load(&self, spec: LoadSpec) -> Result<Vec<ProgramView>, ManagerError> {
        let req = ext::LoadRequest {
            spec_json: encode("load spec", &spec)?,
        };
        parse(&self.call(self.client().load(req))?.json)
    }

    fn unload(&self, id: u32) -> Result<(), ManagerError> {
        // Unload is the same operation in both services; use upstream's.
        let mut c = bpfman_api::v1::bpfman_client::BpfmanClient::new(self.channel.clone());
        self.call(c.unload(bpfman_api::v1::UnloadRequest { id }))
            .map(|_| ())
    }

    fn attach(&self, id: u32, spec: AttachSpec, md: Metadata) -> Result<LinkView, ManagerError> {
        let req = ext::AttachRequest {
            id,
            spec_json: encode("attach spec", &spec)?,
            metadata: md,
        };
        parse(&self.call(self.client().attach(req))?.json)
    }

    fn detach(&self, link_id: u32) -> Result<(), ManagerError> {
        let mut c = bpfman_api::v1::bpfman_client::BpfmanClient::new(self.channel.clone());
        self.call(c.detach(bpfman_api::v1::DetachRequest { link_id }))
            .map(|_| ())
    }

    fn list(&self, f: &ListFilter) -> Result<Vec<ProgramView>, ManagerError> {
        let req = ext::ListProgramsRequest {
            program_type: f.kind.map(|k| k.to_string()),
            selector: f.selector.0.clone(),
            all: f.all,
        };
        let mut views: Vec<ProgramView> =
            parse(&self.call(self.client().list_programs(req))?.json)?;
        // The ext service filters by bpfman kind only; a kernel type filter
        // is applied here, on the type the view reports (the logical one for
        // bpfman's programs, as the manager does).
        if let Some(t) = f.kernel_type {
            views.retain(|v| {
                let ty = match &v.record {
                    Some(r) => Some(r.kind.kernel_prog_type()),
                    None => v.kernel.as_ref().map(|k| k.program_type),
                };
                ty == Some(t)
            });
        }
        Ok(views)
    }

    fn get(&self, id: u32) -> Result<ProgramView, ManagerError> {
        parse(
            &self
                .call(self.client().get_program(ext::GetProgramRequest { id }))?
                .json,
        )
    }

    fn list_links(&self, program: Option<u32>) -> Result<Vec<LinkView>, ManagerError> {
        let req = ext::ListLinksRequest {
            program_id: program,
        };
        parse(&self.call(self.client().list_links(req))?.json)
    }

    fn get_link(&self, id: u32) -> Result<LinkView, ManagerError> {
        parse(
            &self
                .call(self.client().get_link(ext::GetLinkRequest { id }))?
                .json,
        )
    }

    fn gc(&self, prune: bool) -> Result<Vec<GcItem>, ManagerError> {
        parse(&self.call(self.client().gc(ext::GcRequest { prune }))?.json)
    }

    fn stats(&self) -> Result<StatsSample, ManagerError> {
        parse(
            &self
                .call(self.client().program_stats(ext::ProgramStatsRequest {}))?
                .json,
        )
    }
}
