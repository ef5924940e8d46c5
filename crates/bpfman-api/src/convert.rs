//! Pure conversions between `bpfman.v1` messages and bpfman-core types.
//!
//! Requests from clients become core specs (checking everything that can be
//! checked without the system, so a bad request fails with one clear
//! INVALID_ARGUMENT line); core views become `bpfman.v1` responses following
//! the value conventions of upstream bpfman v0.6.0 (wire-contracts §1.9).

use bpfman_core::actions::{
    DEFAULT_TC_PROCEED_ON, DEFAULT_XDP_PROCEED_ON, validate_tc_proceed_on, validate_xdp_proceed_on,
};
use bpfman_core::metadata::{self, Metadata};
use bpfman_core::spec::{Direction, PullPolicy, RegistryAuth, XdpMode, validate_tracepoint};
use bpfman_core::{
    AttachSpec, BytecodeSource, CoreError, LoadSpec, ProgramId, ProgramKind, ProgramRequest,
    ProgramView,
};
use thiserror::Error;

use crate::v1;
use crate::v1::attach_info::Info as AttachKind;
use crate::v1::bytecode_location::Location;
use crate::v1::prog_specific_info::Info as LoadKindInfo;

/// Why a request could not be converted. Each maps to one gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConvertError {
    /// The request is malformed or violates a rule (gRPC INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is well-formed but asks for something bpfman does not do yet
    /// (gRPC UNIMPLEMENTED), e.g. LSM programs.
    #[error("{0}")]
    Unimplemented(String),
}

impl From<CoreError> for ConvertError {
    /// Core validation of client input is always the client's mistake.
    fn from(e: CoreError) -> Self {
        ConvertError::InvalidArgument(e.to_string())
    }
}

impl From<ConvertError> for tonic::Status {
    fn from(e: ConvertError) -> Self {
        match e {
            ConvertError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            ConvertError::Unimplemented(m) => tonic::Status::unimplemented(m),
        }
    }
}

/// The gRPC status for a core error (INVALID_ARGUMENT, FAILED_PRECONDITION or
/// NOT_FOUND), keeping its message unchanged.
pub fn status_from_core(e: CoreError) -> tonic::Status {
    match e {
        CoreError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
        CoreError::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
        CoreError::NotFound(m) => tonic::Status::not_found(m),
    }
}

fn invalid(msg: impl Into<String>) -> ConvertError {
    ConvertError::InvalidArgument(msg.into())
}

/// Treats an empty string as "not given": proto3 cannot tell them apart for
/// plain fields, and clients send `Some("")` for optional ones they fill blindly.
fn non_empty(s: impl Into<Option<String>>) -> Option<String> {
    s.into().filter(|s| !s.is_empty())
}

/// `bpfman.v1.LoadRequest` → [`LoadSpec`].
///
/// File bytecode gives a file source; image bytecode an image source with
/// the request's pull policy and credentials ([`image_request_from_v1`]).
/// Each `LoadInfo` becomes one [`ProgramRequest`] whose kind comes from the wire
/// enum (the kprobe/uprobe direction is refined later from the ELF section);
/// FENTRY/FEXIT need their `fn_name` in `ProgSpecificInfo`. `uuid` is ignored,
/// as upstream does. The result has passed [`LoadSpec::validate`].
pub fn load_spec_from_v1(req: v1::LoadRequest) -> Result<LoadSpec, ConvertError> {
    let (source, pull_policy, registry_auth) = match req.bytecode.and_then(|b| b.location) {
        None => {
            return Err(invalid(
                "load request has no bytecode: set bytecode.file to the path of an ELF object on the node",
            ));
        }
        Some(Location::Image(img)) => {
            let img = image_request_from_v1(img)?;
            (
                BytecodeSource::Image {
                    url: img.url,
                    digest: None,
                },
                Some(img.pull_policy),
                img.registry_auth,
            )
        }
        Some(Location::File(path)) => (BytecodeSource::File { path }, None, None),
    };
    if req.info.is_empty() {
        return Err(invalid(
            "load request names no programs: add one info entry (name and program_type) per function to load",
        ));
    }
    let programs = req
        .info
        .into_iter()
        .map(program_request_from_v1)
        .collect::<Result<Vec<_>, _>>()?;
    let spec = LoadSpec {
        source,
        programs,
        metadata: req.metadata,
        global_data: req.global_data,
        map_owner_id: req.map_owner_id.map(ProgramId),
        pull_policy,
        registry_auth,
    };
    spec.validate()?;
    Ok(spec)
}

/// An image to pull, from a `bpfman.v1.BytecodeImage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRequest {
    /// Image reference.
    pub url: String,
    /// When to contact the registry.
    pub pull_policy: PullPolicy,
    /// Credentials, when the request carries a user name.
    pub registry_auth: Option<RegistryAuth>,
}

/// `bpfman.v1.BytecodeImage` → [`ImageRequest`] (for Load and PullBytecode).
///
/// `image_pull_policy` is upstream's integer: 0 Always, 1 IfNotPresent, 2
/// Never. An empty `username` means no credentials (the daemon then looks in
/// its auth files); the password is never put into an error message.
pub fn image_request_from_v1(img: v1::BytecodeImage) -> Result<ImageRequest, ConvertError> {
    if img.url.trim().is_empty() {
        return Err(invalid("bytecode image has no url: set image.url"));
    }
    let pull_policy = match img.image_pull_policy {
        0 => PullPolicy::Always,
        1 => PullPolicy::IfNotPresent,
        2 => PullPolicy::Never,
        n => {
            return Err(invalid(format!(
                "image_pull_policy {n} is not 0 (Always), 1 (IfNotPresent) or 2 (Never)"
            )));
        }
    };
    let registry_auth = non_empty(img.username).map(|username| RegistryAuth {
        username,
        password: img.password.unwrap_or_default(),
    });
    Ok(ImageRequest {
        url: img.url,
        pull_policy,
        registry_auth,
    })
}

fn program_request_from_v1(info: v1::LoadInfo) -> Result<ProgramRequest, ConvertError> {
    if info.program_type == v1::BpfmanProgramType::Lsm as i32 {
        return Err(ConvertError::Unimplemented(format!(
            "program '{}': LSM programs are not supported yet",
            info.name
        )));
    }
    let kind = ProgramKind::from_wire_type(info.program_type)
        .map_err(|e| invalid(format!("program '{}': {e}", info.name)))?;
    let specific = info.info.and_then(|i| i.info);
    let attach_fn = match (kind, specific) {
        (ProgramKind::Fentry, Some(LoadKindInfo::FentryLoadInfo(f))) => non_empty(f.fn_name),
        (ProgramKind::Fexit, Some(LoadKindInfo::FexitLoadInfo(f))) => non_empty(f.fn_name),
        // Other kinds have no load-time target: upstream ignores the field for
        // them; a trampoline kind with the wrong or no member is caught below.
        _ => None,
    };
    if kind.is_trampoline() && attach_fn.is_none() {
        let field = if kind == ProgramKind::Fentry {
            "fentry_load_info"
        } else {
            "fexit_load_info"
        };
        return Err(invalid(format!(
            "{kind} program '{}' needs info.{field}.fn_name (the kernel function to attach to)",
            info.name
        )));
    }
    Ok(ProgramRequest {
        name: info.name,
        kind: Some(kind),
        attach_fn,
    })
}

/// `bpfman.v1.AttachRequest` → program id, [`AttachSpec`] and link metadata.
/// A request without `attach` is INVALID_ARGUMENT.
pub fn attach_request_from_v1(
    req: v1::AttachRequest,
) -> Result<(ProgramId, AttachSpec, Metadata), ConvertError> {
    let info = req.attach.ok_or_else(|| {
        invalid(format!(
            "attach request for program {} has no attach info: set one of attach.*_attach_info",
            req.id
        ))
    })?;
    let (spec, md) = attach_spec_from_v1(info)?;
    Ok((ProgramId(req.id), spec, md))
}

/// `bpfman.v1.AttachInfo` → [`AttachSpec`] plus the metadata carried in it.
///
/// Empty optional targets (tracepoint, kprobe function) become `None` so the
/// ELF section can supply them later; `retprobe` is left `false` because the
/// program's kind decides it ([`AttachSpec::resolve`]). XDP and TC
/// `proceed_on` default to upstream's lists when empty; `position` is ignored
/// as upstream does.
pub fn attach_spec_from_v1(info: v1::AttachInfo) -> Result<(AttachSpec, Metadata), ConvertError> {
    let kind = info
        .info
        .ok_or_else(|| invalid("attach info is empty: set one of the *_attach_info fields"))?;
    let (spec, md) = match kind {
        AttachKind::TracepointAttachInfo(t) => {
            let tracepoint = non_empty(t.tracepoint);
            if let Some(tp) = &tracepoint {
                validate_tracepoint(tp)?;
            }
            (AttachSpec::Tracepoint { tracepoint }, t.metadata)
        }
        AttachKind::KprobeAttachInfo(k) => (
            AttachSpec::Kprobe {
                fn_name: non_empty(k.fn_name),
                offset: k.offset,
                retprobe: false,
                container_pid: k.container_pid,
            },
            k.metadata,
        ),
        AttachKind::UprobeAttachInfo(u) => {
            if u.target.is_empty() {
                return Err(invalid(
                    "uprobe attach needs target (a binary or library path)",
                ));
            }
            (
                AttachSpec::Uprobe {
                    target: u.target,
                    fn_name: non_empty(u.fn_name),
                    offset: u.offset,
                    pid: u.pid,
                    retprobe: false,
                    container_pid: u.container_pid,
                },
                u.metadata,
            )
        }
        AttachKind::FentryAttachInfo(f) => (AttachSpec::Fentry, f.metadata),
        AttachKind::FexitAttachInfo(f) => (AttachSpec::Fexit, f.metadata),
        AttachKind::XdpAttachInfo(x) => {
            check_priority(x.priority)?;
            let proceed_on = if x.proceed_on.is_empty() {
                DEFAULT_XDP_PROCEED_ON.to_vec()
            } else {
                validate_xdp_proceed_on(&x.proceed_on)?;
                x.proceed_on
            };
            (
                AttachSpec::Xdp {
                    iface: x.iface,
                    priority: x.priority,
                    proceed_on,
                    netns: non_empty(x.netns),
                    mode: XdpMode::default(),
                },
                x.metadata,
            )
        }
        AttachKind::TcAttachInfo(t) => {
            check_priority(t.priority)?;
            let direction = non_empty(t.direction)
                .map(|d| d.parse::<Direction>())
                .transpose()?;
            let proceed_on = if t.proceed_on.is_empty() {
                DEFAULT_TC_PROCEED_ON.to_vec()
            } else {
                validate_tc_proceed_on(&t.proceed_on)?;
                t.proceed_on
            };
            (
                AttachSpec::Tc {
                    iface: t.iface,
                    direction,
                    priority: t.priority,
                    proceed_on,
                    netns: non_empty(t.netns),
                },
                t.metadata,
            )
        }
        AttachKind::TcxAttachInfo(t) => {
            check_priority(t.priority)?;
            let direction = non_empty(t.direction)
                .map(|d| d.parse::<Direction>())
                .transpose()?;
            (
                AttachSpec::Tcx {
                    iface: t.iface,
                    direction,
                    priority: t.priority,
                    netns: non_empty(t.netns),
                },
                t.metadata,
            )
        }
        AttachKind::LsmAttachInfo(_) => {
            return Err(ConvertError::Unimplemented(
                "LSM programs are not supported yet".into(),
            ));
        }
    };
    metadata::validate(&md)?;
    Ok((spec, md))
}

fn check_priority(priority: i32) -> Result<(), ConvertError> {
    if (1..=1000).contains(&priority) {
        Ok(())
    } else {
        Err(invalid(format!(
            "priority {priority} is outside 1..=1000 (lower runs first)"
        )))
    }
}

/// Upstream's `image_pull_policy` code for IfNotPresent. bpfman does not record
/// the policy a program was pulled with, so responses report this default.
const PULL_IF_NOT_PRESENT: i32 = 1;

/// [`ProgramView`] → `bpfman.v1` program info (present only for programs
/// bpfman loaded) and kernel info (always).
///
/// Follows §1.9: a bpfman program reports its logical kernel program type;
/// `map_used_by` holds decimal ids; `links` holds link ids; `map_owner_id` is
/// set only when the program shares another program's maps; image
/// credentials are present but empty.
///
/// Takes the view by value: its strings and maps move into the message, so a
/// list of a thousand programs copies and frees none of them.
pub fn program_view_to_v1(view: ProgramView) -> (Option<v1::ProgramInfo>, v1::KernelProgramInfo) {
    let ProgramView {
        id,
        name,
        record,
        map_used_by,
        links,
        kernel,
        ..
    } = view;
    // Without kernel facts (program gone) the view's id and name still identify it.
    let k = kernel.unwrap_or_else(|| bpfman_core::KernelProgramInfo {
        name,
        ..Default::default()
    });
    let mut kernel = v1::KernelProgramInfo {
        id: id.get(),
        name: k.name,
        program_type: k.program_type,
        loaded_at: k.loaded_at,
        tag: k.tag,
        gpl_compatible: k.gpl_compatible,
        map_ids: k.map_ids.iter().map(|m| m.get()).collect(),
        btf_id: k.btf_id,
        bytes_xlated: k.bytes_xlated,
        jited: k.jited,
        bytes_jited: k.bytes_jited,
        bytes_memlock: k.bytes_memlock,
        verified_insns: k.verified_insns,
    };
    let info = record.map(|r| {
        // Dispatcher-attached programs look like EXT to the kernel; clients
        // filter on the logical type, so report that (as upstream does).
        kernel.program_type = r.kind.kernel_prog_type();
        let map_owner_id = r.shares_maps().then_some(r.map_owner_id.get());
        let location = match r.source {
            BytecodeSource::File { path } => Location::File(path),
            BytecodeSource::Image { url, .. } => Location::Image(v1::BytecodeImage {
                url,
                image_pull_policy: PULL_IF_NOT_PRESENT,
                username: Some(String::new()),
                password: Some(String::new()),
            }),
        };
        v1::ProgramInfo {
            name: r.name,
            bytecode: Some(v1::BytecodeLocation {
                location: Some(location),
            }),
            links: links.iter().map(|l| l.id.get()).collect(),
            global_data: r.global_data,
            map_owner_id,
            map_pin_path: r.map_pin_path,
            map_used_by: map_used_by.iter().map(ProgramId::to_string).collect(),
            metadata: r.metadata,
        }
    });
    (info, kernel)
}

/// One `LoadResponse` entry per loaded program.
pub fn load_response_from_views(views: Vec<ProgramView>) -> v1::LoadResponse {
    v1::LoadResponse {
        programs: views
            .into_iter()
            .map(|v| {
                let (info, kernel) = program_view_to_v1(v);
                v1::LoadResponseInfo {
                    info,
                    kernel_info: Some(kernel),
                }
            })
            .collect(),
    }
}

/// `ListResponse` from program views (already filtered by the caller).
pub fn list_response_from_views(views: Vec<ProgramView>) -> v1::ListResponse {
    v1::ListResponse {
        results: views
            .into_iter()
            .map(|v| {
                let (info, kernel) = program_view_to_v1(v);
                v1::list_response::ListResult {
                    info,
                    kernel_info: Some(kernel),
                }
            })
            .collect(),
    }
}

/// `GetResponse` from one program view.
pub fn get_response_from_view(view: ProgramView) -> v1::GetResponse {
    let (info, kernel) = program_view_to_v1(view);
    v1::GetResponse {
        info,
        kernel_info: Some(kernel),
    }
}
