//! bpfman-core: the pure heart of bpfman.
//!
//! Domain types (programs, maps, links, volumes), parsing and validation of
//! user input, and planners that turn a snapshot of facts into decisions
//! (`plan_gc`, `plan_volume`, `plan_load`, `plan_attach`, `plan_unload`). Nothing here performs I/O: the
//! manager fetches facts, calls a planner, and executes the returned actions.

pub mod action;
pub mod actions;
pub mod attach;
pub mod auth;
pub mod dispatcher;
pub mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod gc;
pub mod ids;
pub mod kind;
pub mod limits;
pub mod load;
pub mod metadata;
pub mod model;
pub mod paths;
pub mod section;
pub mod spec;
pub mod stats;
pub mod unload;
pub mod volume;

pub use error::CoreError;
pub use kind::ProgramKind;
pub use metadata::{Metadata, Selector};
pub use model::{
    KernelMapInfo, KernelProgramInfo, LinkRecord, LinkView, MapRecord, MapView, NetHookView,
    ProgramRecord, ProgramView, VolumeRecord,
};
pub use paths::RuntimePaths;
pub use spec::{AttachSpec, BytecodeSource, LoadSpec, ProgramRequest};

pub use ids::{KernelLinkId, LinkId, MapId, ProgramId};
/// Metadata key that names the application a program belongs to.
pub const APPLICATION_KEY: &str = "bpfman.io/application";
/// Metadata key that upstream's `csi.bpfman.io/program` attribute matches.
pub const PROGRAM_NAME_KEY: &str = "bpfman.io/ProgramName";
