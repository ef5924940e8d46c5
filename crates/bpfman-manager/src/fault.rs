//! Fault injection for crash-consistency tests.
//!
//! `BPFMAN_FAULT=<op>:<step>` makes the named step fail; with
//! `BPFMAN_FAULT_MODE=crash` the process aborts there instead (as a kill would),
//! leaving whatever it had done for `gc --prune` to repair. Steps are listed in
//! [`STEPS`]; the tests walk all of them.

use crate::error::{Code, ManagerError, Result};

/// Every injectable step, as `op:step`.
pub const STEPS: &[&str] = &[
    "load:loaded",
    "load:pinned_programs",
    "load:pinned_maps",
    "load:before_commit",
    "attach:attached",
    "attach:before_commit",
    "detach:unpinned_link",
    "detach:before_commit",
    "unload:detached_links",
    "unload:unpinned_program",
    "unload:removed_maps",
    "unload:before_commit",
];

/// How an injected fault behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Return an error (the operation must undo what it did).
    Error,
    /// Abort the process (state is repaired by `gc --prune`).
    Crash,
}

/// One configured fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `op:step`.
    pub at: String,
    /// Error or crash.
    pub mode: FaultMode,
}

impl Fault {
    /// Reads `BPFMAN_FAULT` / `BPFMAN_FAULT_MODE`.
    pub fn from_env() -> Option<Fault> {
        let at = std::env::var("BPFMAN_FAULT")
            .ok()
            .filter(|s| !s.is_empty())?;
        let mode = match std::env::var("BPFMAN_FAULT_MODE").as_deref() {
            Ok("crash") => FaultMode::Crash,
            _ => FaultMode::Error,
        };
        Some(Fault { at, mode })
    }
}

/// Fails (or aborts) when `fault` names `point`.
pub fn check(fault: &Option<Fault>, point: &str) -> Result<()> {
    match fault {
        Some(f) if f.at == point => match f.mode {
            FaultMode::Error => Err(ManagerError::new(
                Code::Internal,
                format!("injected fault at {point}"),
            )),
            FaultMode::Crash => {
                eprintln!("bpfman: injected crash at {point}");
                std::process::abort()
            }
        },
        _ => Ok(()),
    }
}
