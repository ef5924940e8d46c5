//! Turns parsed CLI arguments into core specs (pure; all validation errors
//! are one line a person can act on).

use std::path::Path;

use bpfman_core::metadata::{self, Metadata, Selector};
use bpfman_core::spec::{
    AttachSpec, BytecodeSource, Direction, GlobalData, LoadSpec, ProgramRequest, XdpMode,
    parse_global,
};
use bpfman_core::{APPLICATION_KEY, CoreError, ProgramKind};

use crate::cli::{AttachArgs, AttachType, LoadCommon, LoadFileArgs};

fn invalid(m: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(m.into())
}

fn common(c: &LoadCommon) -> Result<(Metadata, GlobalData), CoreError> {
    let mut md = Metadata::new();
    for s in &c.metadata {
        let (k, v) = metadata::parse_pair(s)?;
        md.insert(k, v);
    }
    if let Some(app) = &c.application {
        metadata::validate_value(APPLICATION_KEY, app)?;
        md.insert(APPLICATION_KEY.to_string(), app.clone());
    }
    let mut gd = GlobalData::new();
    for s in &c.global_data {
        let (k, v) = parse_global(s)?;
        gd.insert(k, v);
    }
    Ok((md, gd))
}

/// Parses `TYPE:NAME[:ATTACH_FN]`.
pub fn parse_program(s: &str) -> Result<ProgramRequest, CoreError> {
    let mut parts = s.splitn(3, ':');
    let (Some(t), Some(name)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("'{s}' is not TYPE:NAME[:ATTACH_FN]")));
    };
    let kind: ProgramKind = t.parse()?;
    let attach_fn = parts.next().filter(|f| !f.is_empty()).map(str::to_string);
    Ok(ProgramRequest {
        name: name.to_string(),
        kind: Some(kind),
        attach_fn,
    })
}

/// `load file` arguments -> LoadSpec. `cwd` makes relative paths absolute.
pub fn load_file_spec(a: &LoadFileArgs, cwd: &Path) -> Result<LoadSpec, CoreError> {
    let (metadata, global_data) = common(&a.common)?;
    let mut positional = a.positional.iter();
    let path = match (&a.path, positional.next()) {
        (Some(p), first) => {
            if let Some(extra) = first {
                return Err(invalid(format!(
                    "'{extra}': give programs with --programs TYPE:NAME when using --path"
                )));
            }
            p.clone()
        }
        (None, Some(p)) => p.into(),
        (None, None) => {
            return Err(invalid(
                "no object file: bpfman load file PATH [PROGRAM]...",
            ));
        }
    };
    let mut programs: Vec<ProgramRequest> = positional
        .map(|n| ProgramRequest {
            name: n.clone(),
            kind: None,
            attach_fn: None,
        })
        .collect();
    for p in &a.programs {
        programs.push(parse_program(p)?);
    }
    let abs = if path.is_absolute() {
        path
    } else {
        cwd.join(path)
    };
    let spec = LoadSpec {
        source: BytecodeSource::File {
            path: abs.to_string_lossy().into_owned(),
        },
        programs,
        metadata,
        global_data,
        map_owner_id: a.common.map_owner_id,
    };
    spec.validate()?;
    Ok(spec)
}

/// `attach` arguments -> (AttachSpec, link metadata).
pub fn attach_spec(a: &AttachArgs) -> Result<(AttachSpec, Metadata), CoreError> {
    let mut md = Metadata::new();
    for s in &a.metadata {
        let (k, v) = metadata::parse_pair(s)?;
        md.insert(k, v);
    }
    let need_iface = || {
        a.iface
            .clone()
            .ok_or_else(|| invalid("this attach type needs --iface IF"))
    };
    let need_direction = || -> Result<Direction, CoreError> {
        a.direction
            .as_deref()
            .ok_or_else(|| invalid("this attach type needs --direction ingress|egress"))?
            .parse()
    };
    let spec = match a.attach_type {
        AttachType::Tracepoint => AttachSpec::Tracepoint {
            tracepoint: a.tracepoint.clone(),
        },
        AttachType::Kprobe | AttachType::Kretprobe => AttachSpec::Kprobe {
            fn_name: a.fn_name.clone(),
            offset: a.offset,
            retprobe: a.attach_type == AttachType::Kretprobe,
            container_pid: a.container_pid,
        },
        AttachType::Uprobe | AttachType::Uretprobe => AttachSpec::Uprobe {
            target: a
                .target
                .clone()
                .ok_or_else(|| invalid("uprobe needs --target PATH"))?,
            fn_name: a.fn_name.clone(),
            offset: a.offset,
            pid: a.pid,
            retprobe: a.attach_type == AttachType::Uretprobe,
            container_pid: a.container_pid,
        },
        AttachType::Fentry => AttachSpec::Fentry,
        AttachType::Fexit => AttachSpec::Fexit,
        AttachType::Xdp => AttachSpec::Xdp {
            iface: need_iface()?,
            priority: a.priority,
            proceed_on: proceed_on(
                &a.proceed_on,
                bpfman_core::actions::parse_xdp_proceed_on,
                &bpfman_core::actions::DEFAULT_XDP_PROCEED_ON,
            )?,
            netns: a.netns.clone(),
            mode: match a.mode.as_str() {
                "native" | "drv" => XdpMode::Native,
                "skb" | "generic" => XdpMode::Skb,
                m => return Err(invalid(format!("XDP mode '{m}' must be native or skb"))),
            },
        },
        AttachType::Tc => AttachSpec::Tc {
            iface: need_iface()?,
            direction: need_direction()?,
            priority: a.priority,
            proceed_on: proceed_on(
                &a.proceed_on,
                bpfman_core::actions::parse_tc_proceed_on,
                &bpfman_core::actions::DEFAULT_TC_PROCEED_ON,
            )?,
            netns: a.netns.clone(),
        },
        AttachType::Tcx => AttachSpec::Tcx {
            iface: need_iface()?,
            direction: need_direction()?,
            priority: a.priority,
            netns: a.netns.clone(),
        },
    };
    Ok((spec, md))
}

/// Action names (repeatable or comma-separated) to codes; none given = the default.
fn proceed_on(
    names: &[String],
    parse: fn(&[String]) -> Result<Vec<i32>, CoreError>,
    default: &[i32],
) -> Result<Vec<i32>, CoreError> {
    if names.is_empty() {
        return Ok(default.to_vec());
    }
    let list: Vec<String> = names
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    parse(&list)
}

/// `-m KEY=VALUE` selectors.
pub fn selector(items: &[String]) -> Result<Selector, CoreError> {
    Selector::parse(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> crate::cli::Cli {
        crate::cli::Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn seed_form() {
        let cli = parse(&[
            "bpfman",
            "load",
            "file",
            "-m",
            "bpfman.io/application=stats",
            "stats.o",
            "count_sched_switch",
        ]);
        let crate::cli::Command::Load(crate::cli::LoadCommand::File(a)) = cli.command else {
            panic!()
        };
        let spec = load_file_spec(&a, Path::new("/w")).unwrap();
        assert_eq!(
            spec.source,
            BytecodeSource::File {
                path: "/w/stats.o".into()
            }
        );
        assert_eq!(spec.programs[0].name, "count_sched_switch");
        assert_eq!(spec.metadata["bpfman.io/application"], "stats");
    }

    #[test]
    fn upstream_form() {
        let cli = parse(&[
            "bpfman",
            "load",
            "file",
            "--path",
            "/o.o",
            "--programs",
            "fentry:f:do_unlinkat",
            "--programs",
            "tracepoint:t",
            "--application",
            "app",
            "-g",
            "G=01",
        ]);
        let crate::cli::Command::Load(crate::cli::LoadCommand::File(a)) = cli.command else {
            panic!()
        };
        let spec = load_file_spec(&a, Path::new("/")).unwrap();
        assert_eq!(spec.programs[0].attach_fn.as_deref(), Some("do_unlinkat"));
        assert_eq!(spec.programs[1].kind, Some(ProgramKind::Tracepoint));
        assert_eq!(spec.global_data["G"], vec![1]);
        assert_eq!(spec.metadata[APPLICATION_KEY], "app");
    }

    #[test]
    fn bad_inputs_are_one_line_errors() {
        assert!(parse_program("nocolon").is_err());
        assert!(parse_program("bogus:x").is_err());
        let cli = parse(&["bpfman", "load", "file", "x.o", "-m", "novalue"]);
        let crate::cli::Command::Load(crate::cli::LoadCommand::File(a)) = cli.command else {
            panic!()
        };
        let e = load_file_spec(&a, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn attach_forms() {
        let cli = parse(&[
            "bpfman",
            "attach",
            "7",
            "uprobe",
            "--target",
            "/bin/x",
            "--fn-name",
            "f",
            "--pid",
            "3",
        ]);
        let crate::cli::Command::Attach(a) = cli.command else {
            panic!()
        };
        let (spec, _) = attach_spec(&a).unwrap();
        assert!(matches!(spec, AttachSpec::Uprobe { pid: Some(3), .. }));
        let cli = parse(&[
            "bpfman",
            "attach",
            "7",
            "xdp",
            "--iface",
            "eth0",
            "--proceed-on",
            "drop",
        ]);
        let crate::cli::Command::Attach(a) = cli.command else {
            panic!()
        };
        let (spec, _) = attach_spec(&a).unwrap();
        assert!(matches!(spec, AttachSpec::Xdp { ref proceed_on, .. } if proceed_on == &vec![1]));
        let cli = parse(&["bpfman", "attach", "7", "tc", "--iface", "eth0"]);
        let crate::cli::Command::Attach(a) = cli.command else {
            panic!()
        };
        assert!(
            attach_spec(&a)
                .unwrap_err()
                .to_string()
                .contains("--direction")
        );
    }
}
