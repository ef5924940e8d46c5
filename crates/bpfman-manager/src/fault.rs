//! Fault injection for crash-consistency tests.
//!
//! `BPFMAN_FAULT=<op>:<step>` makes the named step fail; with
//! `BPFMAN_FAULT_MODE=crash` the process aborts there instead (as a kill would),
//! leaving whatever it had done for `gc --prune` to repair. Steps are listed in
//! [`FaultPoint::ALL`]; the tests walk all of them.

use std::fmt;
use std::str::FromStr;

use crate::error::{Code, ManagerError, Result};

/// The operation a fault point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `load`.
    Load,
    /// `attach`.
    Attach,
    /// `detach`.
    Detach,
    /// `unload`.
    Unload,
}

/// One injectable step; spelled `op:step` in `BPFMAN_FAULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Load: programs are in the kernel, nothing pinned yet.
    LoadLoaded,
    /// Load: programs pinned.
    LoadPinnedPrograms,
    /// Load: maps pinned.
    LoadPinnedMaps,
    /// Load: everything done but the store commit.
    LoadBeforeCommit,
    /// Attach: the kernel link exists, not pinned.
    AttachAttached,
    /// Attach: everything done but the store commit.
    AttachBeforeCommit,
    /// Detach: the link pin is gone.
    DetachUnpinnedLink,
    /// Detach: everything done but the store commit.
    DetachBeforeCommit,
    /// Unload: the program's links are detached.
    UnloadDetachedLinks,
    /// Unload: the program pin is gone.
    UnloadUnpinnedProgram,
    /// Unload: the map pins are gone.
    UnloadRemovedMaps,
    /// Unload: everything done but the store commit.
    UnloadBeforeCommit,
}

impl FaultPoint {
    /// Every injectable step, in operation order.
    pub const ALL: [FaultPoint; 12] = [
        FaultPoint::LoadLoaded,
        FaultPoint::LoadPinnedPrograms,
        FaultPoint::LoadPinnedMaps,
        FaultPoint::LoadBeforeCommit,
        FaultPoint::AttachAttached,
        FaultPoint::AttachBeforeCommit,
        FaultPoint::DetachUnpinnedLink,
        FaultPoint::DetachBeforeCommit,
        FaultPoint::UnloadDetachedLinks,
        FaultPoint::UnloadUnpinnedProgram,
        FaultPoint::UnloadRemovedMaps,
        FaultPoint::UnloadBeforeCommit,
    ];

    /// The `op:step` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultPoint::LoadLoaded => "load:loaded",
            FaultPoint::LoadPinnedPrograms => "load:pinned_programs",
            FaultPoint::LoadPinnedMaps => "load:pinned_maps",
            FaultPoint::LoadBeforeCommit => "load:before_commit",
            FaultPoint::AttachAttached => "attach:attached",
            FaultPoint::AttachBeforeCommit => "attach:before_commit",
            FaultPoint::DetachUnpinnedLink => "detach:unpinned_link",
            FaultPoint::DetachBeforeCommit => "detach:before_commit",
            FaultPoint::UnloadDetachedLinks => "unload:detached_links",
            FaultPoint::UnloadUnpinnedProgram => "unload:unpinned_program",
            FaultPoint::UnloadRemovedMaps => "unload:removed_maps",
            FaultPoint::UnloadBeforeCommit => "unload:before_commit",
        }
    }

    /// The operation this step is part of.
    pub fn op(self) -> FaultOp {
        match self {
            FaultPoint::LoadLoaded
            | FaultPoint::LoadPinnedPrograms
            | FaultPoint::LoadPinnedMaps
            | FaultPoint::LoadBeforeCommit => FaultOp::Load,
            FaultPoint::AttachAttached | FaultPoint::AttachBeforeCommit => FaultOp::Attach,
            FaultPoint::DetachUnpinnedLink | FaultPoint::DetachBeforeCommit => FaultOp::Detach,
            FaultPoint::UnloadDetachedLinks
            | FaultPoint::UnloadUnpinnedProgram
            | FaultPoint::UnloadRemovedMaps
            | FaultPoint::UnloadBeforeCommit => FaultOp::Unload,
        }
    }
}

impl fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `BPFMAN_FAULT` names no known step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault point {0:?}")]
pub struct UnknownFaultPoint(pub String);

impl FromStr for FaultPoint {
    type Err = UnknownFaultPoint;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        FaultPoint::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownFaultPoint(s.to_string()))
    }
}

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
    /// Where it fires.
    pub at: FaultPoint,
    /// Error or crash.
    pub mode: FaultMode,
}

impl Fault {
    /// Reads `BPFMAN_FAULT` / `BPFMAN_FAULT_MODE`. A name that is no known
    /// step configures nothing, as it never matched any step before.
    pub fn from_env() -> Option<Fault> {
        let at = std::env::var("BPFMAN_FAULT").ok()?.parse().ok()?;
        let mode = match std::env::var("BPFMAN_FAULT_MODE").as_deref() {
            Ok("crash") => FaultMode::Crash,
            _ => FaultMode::Error,
        };
        Some(Fault { at, mode })
    }
}

/// Fails (or aborts) when `fault` names `point`.
pub fn check(fault: &Option<Fault>, point: FaultPoint) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for p in FaultPoint::ALL {
            assert_eq!(p.as_str().parse::<FaultPoint>(), Ok(p));
            assert!(p.as_str().starts_with(match p.op() {
                FaultOp::Load => "load:",
                FaultOp::Attach => "attach:",
                FaultOp::Detach => "detach:",
                FaultOp::Unload => "unload:",
            }));
        }
        assert!("load:nowhere".parse::<FaultPoint>().is_err());
    }
}
