//! ELF section names: what kind a program is and where it attaches by default.
//!
//! [`SECTIONS`] is libbpf's table of program section names (`section_defs`
//! in libbpf.c), each with the kernel program type it implies and, for the
//! kinds bpfman manages, the [`ProgramKind`], the load flags (sleepable, XDP
//! frags) and the default attach point the name carries. Names are matched
//! the way libbpf matches them: a row with `takes_target` matches the bare
//! name or the name followed by `/` and a target (libbpf's `+` rows); other
//! rows match only the exact name.

use std::fmt::Write as _;

use crate::kind::ProgramKind;
use crate::spec::Direction;

/// Where a section's default attach target comes from (the text after `NAME/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRule {
    /// The section carries no attach target.
    None,
    /// A tracepoint `GROUP/NAME` (`tp/sched/sched_switch` → `sched/sched_switch`).
    Tracepoint,
    /// A kernel function (`kprobe/do_unlinkat` → `do_unlinkat`).
    Function,
    /// A kernel function or a glob of them; only a plain name is a default
    /// (`kprobe.multi/do_unlinkat` → `do_unlinkat`, `kprobe.multi/vfs_*` → none).
    Pattern,
    /// A system call name, attached at the architecture's syscall entry
    /// function (`ksyscall/kill` → `__x64_sys_kill` on x86_64).
    Syscall,
    /// A target bpfman does not take from the section (uprobe `BINARY:FUNCTION`
    /// forms, which need a path; kinds bpfman does not manage).
    Ignored,
}

/// One libbpf program section name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionDef {
    /// The name, without libbpf's `+` (e.g. `tracepoint`, `tc/ingress`).
    pub name: &'static str,
    /// Matches `NAME/...` as well as `NAME` (libbpf's `+` rows).
    pub takes_target: bool,
    /// Kernel program type, as bpftool names it (`tracepoint`, `sched_cls`, `raw_tracepoint`…).
    pub program_type: &'static str,
    /// The kind bpfman loads it as; `None` when bpfman does not manage such programs.
    pub kind: Option<ProgramKind>,
    /// Loaded with `BPF_F_SLEEPABLE` (the `.s` variants).
    pub sleepable: bool,
    /// XDP program that handles multi-buffer packets (`BPF_F_XDP_HAS_FRAGS`).
    pub xdp_frags: bool,
    /// TC/TCX direction the name implies (`tc/ingress`, `tcx/egress`).
    pub direction: Option<Direction>,
    /// Where the default attach target comes from.
    pub target: TargetRule,
}

const fn row(
    name: &'static str,
    takes_target: bool,
    program_type: &'static str,
    kind: ProgramKind,
    target: TargetRule,
) -> SectionDef {
    SectionDef {
        name,
        takes_target,
        program_type,
        kind: Some(kind),
        sleepable: false,
        xdp_frags: false,
        direction: None,
        target,
    }
}

const fn sleepable(def: SectionDef) -> SectionDef {
    SectionDef {
        sleepable: true,
        ..def
    }
}

const fn tc_dir(name: &'static str, direction: Direction) -> SectionDef {
    SectionDef {
        direction: Some(direction),
        ..row(name, false, "sched_cls", ProgramKind::Tcx, TargetRule::None)
    }
}

/// A section bpfman recognises but cannot load.
const fn other(name: &'static str, takes_target: bool, program_type: &'static str) -> SectionDef {
    SectionDef {
        name,
        takes_target,
        program_type,
        kind: None,
        sleepable: false,
        xdp_frags: false,
        direction: None,
        target: TargetRule::Ignored,
    }
}

use ProgramKind as K;
use TargetRule as T;

/// libbpf's program section names (libbpf 1.5 `section_defs`), plus the
/// legacy `classifier/NAME` form older loaders accept.
pub const SECTIONS: &[SectionDef] = &[
    // Kinds bpfman manages.
    row(
        "tracepoint",
        true,
        "tracepoint",
        K::Tracepoint,
        T::Tracepoint,
    ),
    row("tp", true, "tracepoint", K::Tracepoint, T::Tracepoint),
    row("kprobe", true, "kprobe", K::Kprobe, T::Function),
    row("kretprobe", true, "kprobe", K::Kretprobe, T::Function),
    // Multi-probes load as single probes: bpfman attaches one function per link.
    row("kprobe.multi", true, "kprobe", K::Kprobe, T::Pattern),
    row("kretprobe.multi", true, "kprobe", K::Kretprobe, T::Pattern),
    row("ksyscall", true, "kprobe", K::Kprobe, T::Syscall),
    row("kretsyscall", true, "kprobe", K::Kretprobe, T::Syscall),
    row("uprobe", true, "kprobe", K::Uprobe, T::Ignored),
    row("uretprobe", true, "kprobe", K::Uretprobe, T::Ignored),
    sleepable(row("uprobe.s", true, "kprobe", K::Uprobe, T::Ignored)),
    sleepable(row("uretprobe.s", true, "kprobe", K::Uretprobe, T::Ignored)),
    row("uprobe.multi", true, "kprobe", K::Uprobe, T::Ignored),
    row("uretprobe.multi", true, "kprobe", K::Uretprobe, T::Ignored),
    sleepable(row("uprobe.multi.s", true, "kprobe", K::Uprobe, T::Ignored)),
    sleepable(row(
        "uretprobe.multi.s",
        true,
        "kprobe",
        K::Uretprobe,
        T::Ignored,
    )),
    row("fentry", true, "tracing", K::Fentry, T::Function),
    row("fexit", true, "tracing", K::Fexit, T::Function),
    sleepable(row("fentry.s", true, "tracing", K::Fentry, T::Function)),
    sleepable(row("fexit.s", true, "tracing", K::Fexit, T::Function)),
    row("xdp", false, "xdp", K::Xdp, T::None),
    SectionDef {
        xdp_frags: true,
        ..row("xdp.frags", false, "xdp", K::Xdp, T::None)
    },
    row("tc", false, "sched_cls", K::Tc, T::None),
    // libbpf: exact `classifier`; aya and older loaders also take `classifier/NAME`.
    row("classifier", true, "sched_cls", K::Tc, T::None),
    // libbpf: `tc/ingress` and `tc/egress` are aliases of the TCX names.
    tc_dir("tc/ingress", Direction::Ingress),
    tc_dir("tc/egress", Direction::Egress),
    tc_dir("tcx/ingress", Direction::Ingress),
    tc_dir("tcx/egress", Direction::Egress),
    // Program types bpfman does not manage.
    other("socket", false, "socket_filter"),
    other("sk_reuseport/migrate", false, "sk_reuseport"),
    other("sk_reuseport", false, "sk_reuseport"),
    other("kprobe.session", true, "kprobe"),
    other("uprobe.session", true, "kprobe"),
    other("uprobe.session.s", true, "kprobe"),
    other("usdt", true, "kprobe"),
    other("usdt.s", true, "kprobe"),
    other("action", false, "sched_act"),
    other("netkit/primary", false, "sched_cls"),
    other("netkit/peer", false, "sched_cls"),
    other("raw_tracepoint", true, "raw_tracepoint"),
    other("raw_tp", true, "raw_tracepoint"),
    other("raw_tracepoint.w", true, "raw_tracepoint_writable"),
    other("raw_tp.w", true, "raw_tracepoint_writable"),
    other("tp_btf", true, "tracing"),
    other("fmod_ret", true, "tracing"),
    other("fmod_ret.s", true, "tracing"),
    other("freplace", true, "ext"),
    other("lsm", true, "lsm"),
    other("lsm.s", true, "lsm"),
    other("lsm_cgroup", true, "lsm"),
    other("iter", true, "tracing"),
    other("iter.s", true, "tracing"),
    other("syscall", false, "syscall"),
    // XDP programs run from a devmap/cpumap entry, not attachable to an interface.
    other("xdp.frags/devmap", false, "xdp"),
    other("xdp/devmap", false, "xdp"),
    other("xdp.frags/cpumap", false, "xdp"),
    other("xdp/cpumap", false, "xdp"),
    other("perf_event", false, "perf_event"),
    other("lwt_in", false, "lwt_in"),
    other("lwt_out", false, "lwt_out"),
    other("lwt_xmit", false, "lwt_xmit"),
    other("lwt_seg6local", false, "lwt_seg6local"),
    other("sockops", false, "sock_ops"),
    other("sk_skb/stream_parser", false, "sk_skb"),
    other("sk_skb/stream_verdict", false, "sk_skb"),
    other("sk_skb/verdict", false, "sk_skb"),
    other("sk_skb", false, "sk_skb"),
    other("sk_msg", false, "sk_msg"),
    other("lirc_mode2", false, "lirc_mode2"),
    other("flow_dissector", false, "flow_dissector"),
    other("cgroup_skb/ingress", false, "cgroup_skb"),
    other("cgroup_skb/egress", false, "cgroup_skb"),
    other("cgroup/skb", false, "cgroup_skb"),
    other("cgroup/sock_create", false, "cgroup_sock"),
    other("cgroup/sock_release", false, "cgroup_sock"),
    other("cgroup/sock", false, "cgroup_sock"),
    other("cgroup/post_bind4", false, "cgroup_sock"),
    other("cgroup/post_bind6", false, "cgroup_sock"),
    other("cgroup/bind4", false, "cgroup_sock_addr"),
    other("cgroup/bind6", false, "cgroup_sock_addr"),
    other("cgroup/connect4", false, "cgroup_sock_addr"),
    other("cgroup/connect6", false, "cgroup_sock_addr"),
    other("cgroup/connect_unix", false, "cgroup_sock_addr"),
    other("cgroup/sendmsg4", false, "cgroup_sock_addr"),
    other("cgroup/sendmsg6", false, "cgroup_sock_addr"),
    other("cgroup/sendmsg_unix", false, "cgroup_sock_addr"),
    other("cgroup/recvmsg4", false, "cgroup_sock_addr"),
    other("cgroup/recvmsg6", false, "cgroup_sock_addr"),
    other("cgroup/recvmsg_unix", false, "cgroup_sock_addr"),
    other("cgroup/getpeername4", false, "cgroup_sock_addr"),
    other("cgroup/getpeername6", false, "cgroup_sock_addr"),
    other("cgroup/getpeername_unix", false, "cgroup_sock_addr"),
    other("cgroup/getsockname4", false, "cgroup_sock_addr"),
    other("cgroup/getsockname6", false, "cgroup_sock_addr"),
    other("cgroup/getsockname_unix", false, "cgroup_sock_addr"),
    other("cgroup/sysctl", false, "cgroup_sysctl"),
    other("cgroup/getsockopt", false, "cgroup_sockopt"),
    other("cgroup/setsockopt", false, "cgroup_sockopt"),
    other("cgroup/dev", false, "cgroup_device"),
    other("struct_ops", true, "struct_ops"),
    other("struct_ops.s", true, "struct_ops"),
    other("sk_lookup", false, "sk_lookup"),
    other("netfilter", false, "netfilter"),
];

/// What an ELF section name tells about a program bpfman manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// Program kind implied by the section.
    pub kind: ProgramKind,
    /// Default attach target, when the section carries one
    /// (`tracepoint/sched/sched_switch` → `sched/sched_switch`, `kprobe/do_unlinkat` → `do_unlinkat`).
    pub target: Option<String>,
    /// Default TC/TCX direction (`tc/ingress` → ingress).
    pub direction: Option<Direction>,
    /// Loaded with `BPF_F_SLEEPABLE`.
    pub sleepable: bool,
    /// XDP program loaded with `BPF_F_XDP_HAS_FRAGS`.
    pub xdp_frags: bool,
}

/// The row of [`SECTIONS`] a section name matches, with the text after
/// `NAME/` (`None` when absent or empty).
pub fn find_section(section: &str) -> Option<(&'static SectionDef, Option<&str>)> {
    SECTIONS.iter().find_map(|def| {
        if section == def.name {
            return Some((def, None));
        }
        let rest = section.strip_prefix(def.name)?.strip_prefix('/')?;
        def.takes_target
            .then_some((def, Some(rest).filter(|r| !r.is_empty())))
    })
}

/// The prefix of system call entry functions on the architecture bpfman is built for.
pub fn syscall_prefix() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "__x64_sys_"
    } else if cfg!(target_arch = "aarch64") {
        "__arm64_sys_"
    } else if cfg!(target_arch = "s390x") {
        "__s390x_sys_"
    } else if cfg!(target_arch = "riscv64") {
        "__riscv_sys_"
    } else if cfg!(target_arch = "powerpc64") {
        "sys_"
    } else {
        "__se_sys_"
    }
}

/// Interprets a section name as libbpf does; `None` when it names no kind bpfman manages.
pub fn parse_section(section: &str) -> Option<SectionInfo> {
    let (def, rest) = find_section(section)?;
    let kind = def.kind?;
    let target = rest.and_then(|r| match def.target {
        // Tracepoint targets must be GROUP/NAME.
        TargetRule::Tracepoint => r.contains('/').then(|| r.to_string()),
        TargetRule::Function => Some(r.to_string()),
        TargetRule::Pattern => (!r.contains(['*', '?'])).then(|| r.to_string()),
        TargetRule::Syscall => Some(format!("{}{r}", syscall_prefix())),
        TargetRule::None | TargetRule::Ignored => None,
    });
    Some(SectionInfo {
        kind,
        target,
        direction: def.direction,
        sleepable: def.sleepable,
        xdp_frags: def.xdp_frags,
    })
}

/// The section names bpfman loads, comma-separated (`tracepoint/GROUP/NAME, tp/GROUP/NAME, …`).
pub fn supported_sections() -> String {
    let mut out = String::new();
    for def in SECTIONS.iter().filter(|d| d.kind.is_some()) {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(def.name);
        if def.takes_target {
            out.push_str(match def.target {
                TargetRule::Tracepoint => "/GROUP/NAME",
                TargetRule::Function => "/FUNCTION",
                TargetRule::Pattern => "/PATTERN",
                TargetRule::Syscall => "/SYSCALL",
                TargetRule::None | TargetRule::Ignored => "[/...]",
            });
        }
    }
    out
}

/// One line explaining why a program in `section` cannot be loaded, naming
/// the section and listing the supported names; `None` when bpfman loads it.
pub fn unsupported_section(program: &str, section: &str) -> Option<String> {
    let mut msg = match find_section(section) {
        Some((def, _)) if def.kind.is_some() => return None,
        Some((def, _)) => format!(
            "program '{program}' is in section '{section}' (program type {}), which bpfman \
             does not manage",
            def.program_type
        ),
        None => format!(
            "program '{program}' is in section '{section}', which is not a program section \
             libbpf knows"
        ),
    };
    let _ = write!(msg, "; supported sections: {}", supported_sections());
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section name that selects `def`, with a target when the row takes one.
    fn sample(def: &SectionDef) -> String {
        if def.takes_target {
            match def.target {
                TargetRule::Tracepoint => format!("{}/sched/sched_switch", def.name),
                _ => format!("{}/do_unlinkat", def.name),
            }
        } else {
            def.name.to_string()
        }
    }

    #[test]
    fn every_row_is_found_by_its_own_name() {
        for def in SECTIONS {
            let (got, rest) = find_section(def.name).unwrap();
            assert_eq!(got, def, "{}", def.name);
            assert_eq!(rest, None);
            let s = sample(def);
            let (got, _) = find_section(&s).unwrap();
            assert_eq!(got, def, "{s}");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = SECTIONS.iter().map(|d| d.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn every_row_parses_as_the_table_says() {
        for def in SECTIONS {
            let s = sample(def);
            let info = parse_section(&s);
            let Some(kind) = def.kind else {
                assert!(info.is_none(), "{s}");
                let msg = unsupported_section("p", &s).unwrap();
                assert!(msg.contains(&format!("'{s}'")), "{msg}");
                assert!(msg.contains(def.program_type), "{msg}");
                assert!(msg.contains("supported sections: tracepoint/GROUP/NAME"));
                assert!(!msg.contains('\n'));
                continue;
            };
            let info = info.unwrap_or_else(|| panic!("{s}"));
            assert_eq!(info.kind, kind, "{s}");
            assert_eq!(info.sleepable, def.sleepable, "{s}");
            assert_eq!(info.xdp_frags, def.xdp_frags, "{s}");
            assert_eq!(info.direction, def.direction, "{s}");
            assert_eq!(unsupported_section("p", &s), None);
            let want = match def.target {
                TargetRule::Tracepoint => Some("sched/sched_switch".to_string()),
                TargetRule::Function | TargetRule::Pattern => Some("do_unlinkat".to_string()),
                TargetRule::Syscall => Some(format!("{}do_unlinkat", syscall_prefix())),
                TargetRule::None | TargetRule::Ignored => None,
            };
            assert_eq!(info.target, want, "{s}");
            // The bare name never carries a target.
            assert_eq!(
                parse_section(def.name).unwrap().target,
                None,
                "{}",
                def.name
            );
            // Rows that take a target do not match NAME with other suffixes.
            if def.takes_target {
                let glued = format!("{}x/y", def.name);
                assert!(
                    find_section(&glued).is_none_or(|(d, _)| d.name != def.name),
                    "{glued}"
                );
            }
        }
    }

    #[test]
    fn program_types_follow_kinds() {
        for def in SECTIONS {
            if let Some(kind) = def.kind {
                let ty = match kind {
                    K::Xdp => "xdp",
                    K::Tc | K::Tcx => "sched_cls",
                    K::Tracepoint => "tracepoint",
                    K::Kprobe | K::Kretprobe | K::Uprobe | K::Uretprobe => "kprobe",
                    K::Fentry | K::Fexit => "tracing",
                };
                assert_eq!(def.program_type, ty, "{}", def.name);
                // Only the tc/tcx direction rows imply a direction, and they are TCX.
                assert_eq!(
                    def.direction.is_some(),
                    def.name.contains('/'),
                    "{}",
                    def.name
                );
            }
        }
    }

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
        assert!(parse_section("xdp.frags").unwrap().xdp_frags);
        assert_eq!(parse_section("classifier").unwrap().kind, ProgramKind::Tc);
        assert_eq!(
            parse_section("classifier/stats").unwrap().kind,
            ProgramKind::Tc
        );
        assert_eq!(parse_section("tc").unwrap().kind, ProgramKind::Tc);
        let tcx = parse_section("tcx/ingress").unwrap();
        assert_eq!(tcx.kind, ProgramKind::Tcx);
        assert_eq!(tcx.direction, Some(Direction::Ingress));
        assert_eq!(
            parse_section("tc/egress").unwrap().direction,
            Some(Direction::Egress)
        );
        assert!(parse_section("uprobe.s//bin/true:main").unwrap().sleepable);
        assert_eq!(
            parse_section("kprobe.multi/vfs_*").unwrap().target,
            None,
            "a glob is no single function"
        );
        assert!(parse_section("socket").is_none());
        assert!(parse_section("tracepoint/").unwrap().target.is_none());
        assert!(parse_section("tp/sched").unwrap().target.is_none());
    }

    #[test]
    fn libbpf_matching_is_strict() {
        // Exact rows take no suffix; `+` rows need a `/` after the name.
        for s in [
            "tc/foo",
            "tcx",
            "tcx/foo",
            "xdp/foo",
            "xdp_prog",
            "kprobex/f",
            "tpx",
            "",
        ] {
            assert!(parse_section(s).is_none(), "{s}");
        }
        let msg = unsupported_section("p", "tc/foo").unwrap();
        assert!(msg.contains("not a program section libbpf knows"), "{msg}");
        let msg = unsupported_section("p", "raw_tp/sched_switch").unwrap();
        assert!(msg.starts_with(
            "program 'p' is in section 'raw_tp/sched_switch' (program type raw_tracepoint)"
        ));
        assert!(
            unsupported_section("p", "xdp/devmap")
                .unwrap()
                .contains("(program type xdp)")
        );
    }
}
