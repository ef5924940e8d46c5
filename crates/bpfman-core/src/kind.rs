//! Program kinds bpfman manages and their mapping to kernel and wire numbers.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::{CoreError, invalid};

/// The kind of a bpfman program: decides how it loads and how it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramKind {
    /// XDP, attached through a dispatcher.
    Xdp,
    /// TC classifier, attached through a dispatcher.
    Tc,
    /// TCX (kernel multi-attach TC).
    Tcx,
    /// Tracepoint.
    Tracepoint,
    /// kprobe.
    Kprobe,
    /// kretprobe.
    Kretprobe,
    /// uprobe.
    Uprobe,
    /// uretprobe.
    Uretprobe,
    /// fentry (BTF trampoline).
    Fentry,
    /// fexit (BTF trampoline).
    Fexit,
}

impl ProgramKind {
    /// Every kind, in a stable order.
    pub const ALL: [ProgramKind; 10] = [
        ProgramKind::Xdp,
        ProgramKind::Tc,
        ProgramKind::Tcx,
        ProgramKind::Tracepoint,
        ProgramKind::Kprobe,
        ProgramKind::Kretprobe,
        ProgramKind::Uprobe,
        ProgramKind::Uretprobe,
        ProgramKind::Fentry,
        ProgramKind::Fexit,
    ];

    /// The lowercase name used on the CLI, in JSON and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramKind::Xdp => "xdp",
            ProgramKind::Tc => "tc",
            ProgramKind::Tcx => "tcx",
            ProgramKind::Tracepoint => "tracepoint",
            ProgramKind::Kprobe => "kprobe",
            ProgramKind::Kretprobe => "kretprobe",
            ProgramKind::Uprobe => "uprobe",
            ProgramKind::Uretprobe => "uretprobe",
            ProgramKind::Fentry => "fentry",
            ProgramKind::Fexit => "fexit",
        }
    }

    /// Kernel `enum bpf_prog_type` number reported for this logical kind
    /// (as upstream bpfman does: XDP 6, TC/TCX 3, probes 2, tracepoint 5, tracing 26).
    pub fn kernel_prog_type(self) -> u32 {
        match self {
            ProgramKind::Xdp => 6,
            ProgramKind::Tc | ProgramKind::Tcx => 3,
            ProgramKind::Kprobe
            | ProgramKind::Kretprobe
            | ProgramKind::Uprobe
            | ProgramKind::Uretprobe => 2,
            ProgramKind::Tracepoint => 5,
            ProgramKind::Fentry | ProgramKind::Fexit => 26,
        }
    }

    /// Number in upstream's `bpfman.v1.BpfmanProgramType` enum.
    pub fn wire_type(self) -> i32 {
        match self {
            ProgramKind::Xdp => 0,
            ProgramKind::Tc => 1,
            ProgramKind::Tracepoint => 2,
            ProgramKind::Kprobe | ProgramKind::Kretprobe => 3,
            ProgramKind::Uprobe | ProgramKind::Uretprobe => 4,
            ProgramKind::Fentry => 5,
            ProgramKind::Fexit => 6,
            ProgramKind::Tcx => 7,
        }
    }

    /// Kind from upstream's wire enum; the probe direction is refined from the ELF section.
    pub fn from_wire_type(v: i32) -> Result<Self, CoreError> {
        Ok(match v {
            0 => ProgramKind::Xdp,
            1 => ProgramKind::Tc,
            2 => ProgramKind::Tracepoint,
            3 => ProgramKind::Kprobe,
            4 => ProgramKind::Uprobe,
            5 => ProgramKind::Fentry,
            6 => ProgramKind::Fexit,
            7 => ProgramKind::Tcx,
            other => {
                return Err(invalid(format!(
                    "unknown program type {other} (expected 0..=7)"
                )));
            }
        })
    }

    /// True for kprobe/kretprobe/uprobe/uretprobe.
    pub fn is_probe(self) -> bool {
        matches!(
            self,
            ProgramKind::Kprobe
                | ProgramKind::Kretprobe
                | ProgramKind::Uprobe
                | ProgramKind::Uretprobe
        )
    }

    /// True for kinds that need a trampoline (fentry/fexit).
    pub fn is_trampoline(self) -> bool {
        matches!(self, ProgramKind::Fentry | ProgramKind::Fexit)
    }

    /// True when both kinds are loaded the same way (a kprobe may attach as a kretprobe
    /// only if its section says so, so they are distinct here).
    pub fn same_family(self, other: ProgramKind) -> bool {
        let sched_cls = |k| matches!(k, ProgramKind::Tc | ProgramKind::Tcx);
        self.wire_type() == other.wire_type() || (sched_cls(self) && sched_cls(other))
    }
}

impl fmt::Display for ProgramKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProgramKind {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        ProgramKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| {
                let names: Vec<_> = ProgramKind::ALL.iter().map(|k| k.as_str()).collect();
                invalid(format!(
                    "unknown program type '{s}' (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ProgramKind::ALL {
            assert_eq!(k.as_str().parse::<ProgramKind>().unwrap(), k);
        }
        assert!("bogus".parse::<ProgramKind>().is_err());
    }

    #[test]
    fn wire_numbers_match_upstream() {
        assert_eq!(ProgramKind::Tcx.wire_type(), 7);
        assert_eq!(ProgramKind::from_wire_type(3).unwrap(), ProgramKind::Kprobe);
        assert!(ProgramKind::from_wire_type(42).is_err());
    }
}
