//! Turns parsed CLI arguments into core specs (pure; all validation errors
//! are one line a person can act on).

use std::collections::BTreeMap;
use std::path::Path;

use bpfman_core::metadata::{self, Metadata, Selector};
use bpfman_core::spec::{
    AttachSpec, BytecodeSource, Direction, GlobalData, LoadSpec, ProgramRequest, PullPolicy,
    RegistryAuth, parse_global, validate_symbol,
};
use bpfman_core::{APPLICATION_KEY, CoreError, ProgramId, ProgramKind};
use bpfman_manager::image::{BuildImageRequest, BuildObject, BuildTarget};

use crate::cli::{
    AttachArgs, ImageBuildArgs, ImageRefArgs, LoadCommon, LoadFileArgs, LoadImageArgs,
};

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

/// Plain program names (type from the ELF section), then `TYPE:NAME[:FN]` ones.
fn program_requests<'a>(
    names: impl Iterator<Item = &'a String>,
    typed: &[String],
) -> Result<Vec<ProgramRequest>, CoreError> {
    let mut programs: Vec<ProgramRequest> = names
        .map(|n| ProgramRequest {
            name: n.clone(),
            kind: None,
            attach_fn: None,
        })
        .collect();
    for p in typed {
        programs.push(parse_program(p)?);
    }
    Ok(programs)
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
    let programs = program_requests(positional, &a.programs)?;
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
        map_owner_id: a.common.map_owner_id.map(ProgramId),
        pull_policy: None,
        registry_auth: None,
    };
    spec.validate()?;
    Ok(spec)
}

/// `load image` arguments -> LoadSpec (credentials decoded, not yet used).
pub fn load_image_spec(a: &LoadImageArgs) -> Result<LoadSpec, CoreError> {
    let (metadata, global_data) = common(&a.common)?;
    let programs = program_requests(a.positional.iter(), &a.programs)?;
    let spec = LoadSpec {
        source: BytecodeSource::Image {
            url: a.image_url.clone(),
            digest: None,
        },
        programs,
        metadata,
        global_data,
        map_owner_id: a.common.map_owner_id.map(ProgramId),
        pull_policy: pull_policy(a.pull.pull_policy.as_deref())?,
        registry_auth: registry_auth(a.pull.registry_auth.as_deref())?,
    };
    spec.validate()?;
    Ok(spec)
}

/// `--pull-policy` (any case), when given.
pub fn pull_policy(p: Option<&str>) -> Result<Option<PullPolicy>, CoreError> {
    p.map(str::parse).transpose()
}

/// Decodes `--registry-auth` (base64 of USER:PASSWORD); the error never repeats it.
pub fn registry_auth(encoded: Option<&str>) -> Result<Option<RegistryAuth>, CoreError> {
    encoded
        .map(|e| {
            bpfman_manager::image::registry_auth_from_base64(e)
                .map_err(|e| invalid(format!("--registry-auth: {}", e.message)))
        })
        .transpose()
}

/// The reference of `image pull/inspect` (positional or `--image-url`).
pub fn image_ref(a: &ImageRefArgs) -> Result<String, CoreError> {
    a.reference
        .clone()
        .or_else(|| a.image_url.clone())
        .ok_or_else(|| invalid("no image: bpfman image pull|inspect REF"))
}

/// `NAME=TYPE` label pairs (repeatable flags) into a map.
pub fn labels(what: &str, items: &[String]) -> Result<BTreeMap<String, String>, CoreError> {
    let mut out = BTreeMap::new();
    for s in items {
        let Some((name, ty)) = s
            .split_once('=')
            .filter(|(n, t)| !n.is_empty() && !t.is_empty())
        else {
            return Err(invalid(format!("{what} '{s}' is not NAME=TYPE")));
        };
        validate_symbol(&format!("{what} name"), name)?;
        if out.insert(name.to_string(), ty.to_string()).is_some() {
            return Err(invalid(format!("{what} '{name}' is given twice")));
        }
    }
    Ok(out)
}

/// `--object PATH` or `--object OS/ARCH[/VARIANT]=PATH`.
fn build_object(s: &str) -> Result<BuildObject, CoreError> {
    if let Some((p, path)) = s.split_once('=')
        && p.contains('/')
        && p.parse::<bpfman_manager::image::ImagePlatform>().is_ok()
    {
        if path.is_empty() {
            return Err(invalid(format!("--object '{s}' names no file")));
        }
        return Ok(BuildObject {
            path: path.into(),
            platform: Some(p.to_string()),
        });
    }
    Ok(BuildObject {
        path: s.into(),
        platform: None,
    })
}

/// `image build` arguments -> a build request.
pub fn image_build_request(a: &ImageBuildArgs) -> Result<BuildImageRequest, CoreError> {
    let programs = labels("program", &a.programs)?;
    for (name, ty) in &programs {
        ty.parse::<ProgramKind>()
            .map_err(|e| invalid(format!("program '{name}': {e}")))?;
    }
    let target = match (&a.oci_layout, &a.push) {
        (Some(l), None) => {
            // DIR[:TAG]: a ':' after the last '/' starts the tag.
            let (dir, tag) = match l.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, t),
                _ => (l.as_str(), "latest"),
            };
            if tag.is_empty() {
                return Err(invalid(format!("--oci-layout '{l}' has an empty tag")));
            }
            BuildTarget::OciLayout {
                dir: dir.into(),
                tag: tag.to_string(),
            }
        }
        (None, Some(r)) => BuildTarget::Push(r.clone()),
        _ => {
            return Err(invalid(
                "give exactly one of --oci-layout DIR[:TAG] and --push REF",
            ));
        }
    };
    if a.registry_auth.is_some() && a.push.is_none() {
        return Err(invalid("--registry-auth applies to --push only"));
    }
    let mut objects = Vec::new();
    for o in &a.objects {
        objects.push(build_object(o)?);
    }
    match objects.as_mut_slice() {
        [] => return Err(invalid("give the BPF object with --object PATH")),
        [one] => match (&one.platform, &a.platform) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give the platform once: --object OS/ARCH=PATH or --platform OS/ARCH",
                ));
            }
            (None, p) => one.platform = p.clone(),
            _ => {}
        },
        many => {
            if a.platform.is_some() {
                return Err(invalid(
                    "--platform applies to a single object; give each object as --object OS/ARCH=PATH",
                ));
            }
            if let Some(o) = many.iter().find(|o| o.platform.is_none()) {
                return Err(invalid(format!(
                    "several objects make a multi-arch index: give {} as --object OS/ARCH=PATH",
                    o.path.display()
                )));
            }
        }
    }
    Ok(BuildImageRequest {
        objects,
        programs,
        maps: labels("map", &a.maps)?,
        sign_key: a.sign_key.clone(),
        target,
        auth: registry_auth(a.registry_auth.as_deref())?,
    })
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
    // Absent: the program's section decides (`tc/ingress`), see AttachSpec::resolve.
    let direction = a
        .direction
        .as_deref()
        .map(str::parse::<Direction>)
        .transpose()?;
    let spec = match a.attach_type {
        ProgramKind::Tracepoint => AttachSpec::Tracepoint {
            tracepoint: a.tracepoint.clone(),
        },
        ProgramKind::Kprobe | ProgramKind::Kretprobe => AttachSpec::Kprobe {
            fn_name: a.fn_name.clone(),
            offset: a.offset,
            retprobe: a.attach_type == ProgramKind::Kretprobe,
            container_pid: a.container_pid,
        },
        ProgramKind::Uprobe | ProgramKind::Uretprobe => AttachSpec::Uprobe {
            target: a
                .target
                .clone()
                .ok_or_else(|| invalid("uprobe needs --target PATH"))?,
            fn_name: a.fn_name.clone(),
            offset: a.offset,
            pid: a.pid,
            retprobe: a.attach_type == ProgramKind::Uretprobe,
            container_pid: a.container_pid,
        },
        ProgramKind::Fentry => AttachSpec::Fentry,
        ProgramKind::Fexit => AttachSpec::Fexit,
        ProgramKind::Xdp => AttachSpec::Xdp {
            iface: need_iface()?,
            priority: a.priority,
            proceed_on: proceed_on(
                &a.proceed_on,
                bpfman_core::actions::parse_xdp_proceed_on,
                &bpfman_core::actions::DEFAULT_XDP_PROCEED_ON,
            )?,
            netns: a.netns.clone(),
            mode: a.mode.parse()?,
        },
        ProgramKind::Tc => AttachSpec::Tc {
            iface: need_iface()?,
            direction,
            priority: a.priority,
            proceed_on: proceed_on(
                &a.proceed_on,
                bpfman_core::actions::parse_tc_proceed_on,
                &bpfman_core::actions::DEFAULT_TC_PROCEED_ON,
            )?,
            netns: a.netns.clone(),
        },
        ProgramKind::Tcx => AttachSpec::Tcx {
            iface: need_iface()?,
            direction,
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

    /// A parsed command line whose command is not `health`.
    struct Parsed {
        command: crate::cli::Command,
    }

    fn parse(args: &[&str]) -> Parsed {
        match crate::cli::Cli::try_parse_from(args).unwrap().command {
            crate::cli::TopCommand::Run(command) => Parsed { command },
            crate::cli::TopCommand::Health { .. } => panic!("health"),
        }
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
    fn load_image_forms() {
        let cli = parse(&[
            "bpfman",
            "load",
            "image",
            "--image-url",
            "127.0.0.1:5000/stats:v1",
            "--pull-policy",
            "Never",
            "--registry-auth",
            "YWxpY2U6cHc=",
            "count_sched_switch",
            "--programs",
            "xdp:pass",
            "-m",
            "bpfman.io/application=stats",
        ]);
        let crate::cli::Command::Load(crate::cli::LoadCommand::Image(a)) = cli.command else {
            panic!()
        };
        let spec = load_image_spec(&a).unwrap();
        assert_eq!(
            spec.source,
            BytecodeSource::Image {
                url: "127.0.0.1:5000/stats:v1".into(),
                digest: None
            }
        );
        assert_eq!(spec.pull_policy, Some(bpfman_core::spec::PullPolicy::Never));
        assert_eq!(spec.registry_auth.as_ref().unwrap().username, "alice");
        assert_eq!(spec.programs[0].name, "count_sched_switch");
        assert_eq!(spec.programs[1].kind, Some(ProgramKind::Xdp));
        assert_eq!(spec.metadata["bpfman.io/application"], "stats");

        let cli = parse(&["bpfman", "load", "image", "-i", "r/x:v1", "-p", "Sometimes"]);
        let crate::cli::Command::Load(crate::cli::LoadCommand::Image(a)) = cli.command else {
            panic!()
        };
        assert!(
            load_image_spec(&a)
                .unwrap_err()
                .to_string()
                .contains("Sometimes")
        );
        let cli = parse(&["bpfman", "load", "image", "-i", "r/x:v1", "-r", "hunter2!"]);
        let crate::cli::Command::Load(crate::cli::LoadCommand::Image(a)) = cli.command else {
            panic!()
        };
        let e = load_image_spec(&a).unwrap_err().to_string();
        assert!(
            e.contains("--registry-auth") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn image_build_forms() {
        let cli = parse(&[
            "bpfman",
            "image",
            "build",
            "--object",
            "stats.bpf.o",
            "--program",
            "count_sched_switch=tracepoint",
            "--map",
            "stats_map=array",
            "--oci-layout",
            "/tmp/layout:v2",
        ]);
        let crate::cli::Command::Image(crate::cli::ImageCommand::Build(a)) = cli.command else {
            panic!()
        };
        let r = image_build_request(&a).unwrap();
        assert_eq!(r.programs["count_sched_switch"], "tracepoint");
        assert_eq!(r.maps["stats_map"], "array");
        assert_eq!(
            r.target,
            BuildTarget::OciLayout {
                dir: "/tmp/layout".into(),
                tag: "v2".into()
            }
        );
        let cli = parse(&[
            "bpfman",
            "image",
            "build",
            "-b",
            "x.o",
            "--oci-layout",
            "/tmp/l",
        ]);
        let crate::cli::Command::Image(crate::cli::ImageCommand::Build(a)) = cli.command else {
            panic!()
        };
        let r = image_build_request(&a).unwrap();
        assert!(matches!(r.target, BuildTarget::OciLayout { ref tag, .. } if tag == "latest"));
        assert_eq!(
            r.objects,
            [BuildObject {
                path: "x.o".into(),
                platform: None
            }]
        );
        // Several objects, one per platform: a multi-arch index.
        let build = |extra: &[&str]| {
            let mut v = vec!["bpfman", "image", "build", "--oci-layout", "/tmp/l"];
            v.extend(extra);
            let crate::cli::Command::Image(crate::cli::ImageCommand::Build(a)) = parse(&v).command
            else {
                panic!()
            };
            image_build_request(&a)
        };
        let r = build(&["-b", "linux/amd64=a.o", "-b", "linux/arm64/v8=b.o"]).unwrap();
        assert_eq!(r.objects[1].platform.as_deref(), Some("linux/arm64/v8"));
        assert_eq!(r.objects[1].path, std::path::Path::new("b.o"));
        let r = build(&["-b", "linux/s390x=a.o"]).unwrap();
        assert_eq!(r.objects[0].platform.as_deref(), Some("linux/s390x"));
        let r = build(&["-b", "./a=b.o", "--platform", "linux/arm64"]).unwrap();
        assert_eq!(r.objects[0].path, std::path::Path::new("./a=b.o"));
        assert_eq!(r.objects[0].platform.as_deref(), Some("linux/arm64"));
        for (bad, want) in [
            (
                &["-b", "a.o", "-b", "linux/arm64=b.o"][..],
                "as --object OS/ARCH=PATH",
            ),
            (
                &[
                    "-b",
                    "linux/amd64=a.o",
                    "-b",
                    "linux/arm64=b.o",
                    "--platform",
                    "linux/amd64",
                ][..],
                "single object",
            ),
            (
                &["-b", "linux/amd64=a.o", "--platform", "linux/amd64"][..],
                "platform once",
            ),
            (&["-b", "linux/amd64="][..], "names no file"),
        ] {
            let e = build(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        // Exactly one destination.
        assert!(
            crate::cli::Cli::try_parse_from(["bpfman", "image", "build", "-b", "x.o"]).is_err()
        );
        let cli = parse(&[
            "bpfman",
            "image",
            "build",
            "-b",
            "x.o",
            "--push",
            "r/x:v1",
            "--program",
            "p=nope",
        ]);
        let crate::cli::Command::Image(crate::cli::ImageCommand::Build(a)) = cli.command else {
            panic!()
        };
        assert!(
            image_build_request(&a)
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
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
        // No --direction: left to the program's section when attaching.
        assert!(matches!(
            attach_spec(&a).unwrap().0,
            AttachSpec::Tc {
                direction: None,
                ..
            }
        ));
    }
}
