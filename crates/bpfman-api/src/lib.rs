//! bpfman-api: bpfman's gRPC contracts and the glue around them.
//!
//! - [`v1`]: upstream bpfman's `bpfman.v1` API, wire-compatible with upstream
//!   clients (service `bpfman.v1.Bpfman`).
//! - [`ext`]: our own `bpfman.ext.v1.BpfmanExt` service, which carries the
//!   CLI's JSON views so remote and embedded CLI output are identical.
//! - [`convert`]: pure conversions between `v1` messages and bpfman-core types.
//! - [`client`]: gRPC over a Unix socket (client connect and server bind).

pub mod client;
pub mod convert;

/// Generated code for `bpfman.v1` (messages, `bpfman_server`, `bpfman_client`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("bpfman.v1");
}

/// Generated code for `bpfman.ext.v1` (messages, `bpfman_ext_server`, `bpfman_ext_client`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod ext {
    tonic::include_proto!("bpfman.ext.v1");
}

/// Encoded `FileDescriptorSet` of both protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bpfman_descriptor.bin"));

pub use convert::ConvertError;
