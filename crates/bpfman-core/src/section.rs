//! ELF section names: what kind a program is and where it attaches by default.

use crate::kind::ProgramKind;

/// What an ELF section name tells about a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// Program kind implied by the section.
    pub kind: ProgramKind,
    /// Default attach target, when the section carries one
    /// (`tracepoint/sched/sched_switch` → `sched/sched_switch`, `kprobe/do_unlinkat` → `do_unlinkat`).
    pub target: Option<String>,
}

/// Interprets a section name as libbpf does; `None` when it names no kind bpfman manages.
pub fn parse_section(section: &str) -> Option<SectionInfo> {
    let (head, rest) = match section.split_once('/') {
        Some((h, r)) => (h, Some(r).filter(|r| !r.is_empty())),
        None => (section, None),
    };
    let kind = match head {
        "tracepoint" | "tp" => ProgramKind::Tracepoint,
        "kprobe" => ProgramKind::Kprobe,
        "kretprobe" => ProgramKind::Kretprobe,
        "uprobe" | "uprobe.s" => ProgramKind::Uprobe,
        "uretprobe" | "uretprobe.s" => ProgramKind::Uretprobe,
        "fentry" | "fentry.s" => ProgramKind::Fentry,
        "fexit" | "fexit.s" => ProgramKind::Fexit,
        "xdp" | "xdp.frags" => ProgramKind::Xdp,
        "tcx" => ProgramKind::Tcx,
        "classifier" | "tc" => ProgramKind::Tc,
        _ => return None,
    };
    let target = match kind {
        // tracepoint targets must be GROUP/NAME; uprobe sections carry "binary:symbol" forms we do not guess at.
        ProgramKind::Tracepoint => rest.filter(|r| r.contains('/')).map(str::to_string),
        ProgramKind::Kprobe | ProgramKind::Kretprobe | ProgramKind::Fentry | ProgramKind::Fexit => {
            rest.map(str::to_string)
        }
        _ => None,
    };
    Some(SectionInfo { kind, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_sections() {
        let s = parse_section("tracepoint/sched/sched_switch").unwrap();
        assert_eq!(s.kind, ProgramKind::Tracepoint);
        assert_eq!(s.target.as_deref(), Some("sched/sched_switch"));
        assert_eq!(
            parse_section("kretprobe/do_unlinkat").unwrap().kind,
            ProgramKind::Kretprobe
        );
        assert_eq!(parse_section("uprobe").unwrap().kind, ProgramKind::Uprobe);
        assert_eq!(
            parse_section("fentry/do_unlinkat")
                .unwrap()
                .target
                .as_deref(),
            Some("do_unlinkat")
        );
        assert_eq!(parse_section("xdp").unwrap().kind, ProgramKind::Xdp);
        assert_eq!(parse_section("classifier").unwrap().kind, ProgramKind::Tc);
        assert_eq!(parse_section("tcx/ingress").unwrap().kind, ProgramKind::Tcx);
        assert!(parse_section("socket").is_none());
        assert!(parse_section("tracepoint/").unwrap().target.is_none());
    }
}
