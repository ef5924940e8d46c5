//! The operations the CLI runs, either here (embedded: this process opens the
//! store and the kernel under the shared lock) or in the daemon (remote).

use bpfman_core::gc::GcItem;
use bpfman_core::metadata::Metadata;
use bpfman_core::model::{LinkView, ProgramView};
use bpfman_core::spec::{AttachSpec, LoadSpec};
use bpfman_core::stats::StatsSample;
use bpfman_core::{LinkId, ProgramId};
use bpfman_manager::{ListFilter, Manager, ManagerError};

/// What every backend offers.
pub trait Ops {
    /// Load programs.
    fn load(&self, spec: LoadSpec) -> Result<Vec<ProgramView>, ManagerError>;
    /// Unload a program.
    fn unload(&self, id: u32) -> Result<(), ManagerError>;
    /// Attach a program.
    fn attach(&self, id: u32, spec: AttachSpec, md: Metadata) -> Result<LinkView, ManagerError>;
    /// Detach a link.
    fn detach(&self, link_id: u32) -> Result<(), ManagerError>;
    /// List programs.
    fn list(&self, f: &ListFilter) -> Result<Vec<ProgramView>, ManagerError>;
    /// Get a program.
    fn get(&self, id: u32) -> Result<ProgramView, ManagerError>;
    /// List links.
    fn list_links(&self, program: Option<u32>) -> Result<Vec<LinkView>, ManagerError>;
    /// Get a link.
    fn get_link(&self, id: u32) -> Result<LinkView, ManagerError>;
    /// Garbage-collect.
    fn gc(&self, prune: bool) -> Result<Vec<GcItem>, ManagerError>;
    /// Run statistics of the managed programs.
    fn stats(&self) -> Result<StatsSample, ManagerError>;
}

impl Ops for Manager {
    fn load(&self, spec: LoadSpec) -> Result<Vec<ProgramView>, ManagerError> {
        Manager::load(self, spec)
    }
    fn unload(&self, id: u32) -> Result<(), ManagerError> {
        Manager::unload(self, ProgramId(id))
    }
    fn attach(&self, id: u32, spec: AttachSpec, md: Metadata) -> Result<LinkView, ManagerError> {
        Manager::attach(self, ProgramId(id), spec, md)
    }
    fn detach(&self, link_id: u32) -> Result<(), ManagerError> {
        Manager::detach(self, LinkId(link_id))
    }
    fn list(&self, f: &ListFilter) -> Result<Vec<ProgramView>, ManagerError> {
        Manager::list(self, f)
    }
    fn get(&self, id: u32) -> Result<ProgramView, ManagerError> {
        Manager::get(self, ProgramId(id))
    }
    fn list_links(&self, program: Option<u32>) -> Result<Vec<LinkView>, ManagerError> {
        Manager::list_links(self, program.map(ProgramId))
    }
    fn get_link(&self, id: u32) -> Result<LinkView, ManagerError> {
        Manager::get_link(self, LinkId(id))
    }
    fn gc(&self, prune: bool) -> Result<Vec<GcItem>, ManagerError> {
        Manager::gc(self, prune)
    }
    fn stats(&self) -> Result<StatsSample, ManagerError> {
        // Embedded: whether counting is on is the caller's (top holds it).
        Manager::stats_sample(self, false)
    }
}
