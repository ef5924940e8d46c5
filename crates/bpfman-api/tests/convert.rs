//! Conversions between bpfman.v1 messages and bpfman-core types.

use std::collections::BTreeMap;

use bpfman_api::convert::{
    ConvertError, attach_request_from_v1, attach_spec_from_v1, get_response_from_view,
    image_request_from_v1, list_response_from_views, load_response_from_views, load_spec_from_v1,
    program_view_to_v1, status_from_core,
};
use bpfman_api::v1;
use bpfman_api::v1::attach_info::Info;
use bpfman_api::v1::bytecode_location::Location;
use bpfman_api::v1::prog_specific_info::Info as LoadInfoKind;
use bpfman_core::spec::{Direction, XdpMode};
use bpfman_core::{
    AttachSpec, BytecodeSource, CoreError, KernelProgramInfo, LinkView, ProgramKind, ProgramRecord,
    ProgramRequest, ProgramView,
};
use bpfman_core::{LinkId, MapId, ProgramId};

fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(path: &str) -> Option<v1::BytecodeLocation> {
    Some(v1::BytecodeLocation {
        location: Some(Location::File(path.into())),
    })
}

fn load_info(name: &str, t: v1::BpfmanProgramType) -> v1::LoadInfo {
    v1::LoadInfo {
        name: name.into(),
        program_type: t as i32,
        info: None,
    }
}

fn invalid_msg(r: Result<impl std::fmt::Debug, ConvertError>) -> String {
    match r {
        Err(ConvertError::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

// ---------- Load ----------

#[test]
fn load_request_full() {
    let req = v1::LoadRequest {
        bytecode: file("/opt/stats.o"),
        metadata: md(&[("bpfman.io/application", "stats")]),
        global_data: [("GLOBAL_u8".to_string(), vec![1u8])].into(),
        uuid: Some("ignored".into()),
        map_owner_id: Some(12),
        info: vec![
            load_info("count", v1::BpfmanProgramType::Tracepoint),
            load_info("xdp_pass", v1::BpfmanProgramType::Xdp),
            load_info("tc_pass", v1::BpfmanProgramType::Tc),
            load_info("tcx_pass", v1::BpfmanProgramType::Tcx),
            load_info("kp", v1::BpfmanProgramType::Kprobe),
            load_info("up", v1::BpfmanProgramType::Uprobe),
            v1::LoadInfo {
                name: "fe".into(),
                program_type: v1::BpfmanProgramType::Fentry as i32,
                info: Some(v1::ProgSpecificInfo {
                    info: Some(LoadInfoKind::FentryLoadInfo(v1::FentryLoadInfo {
                        fn_name: "do_unlinkat".into(),
                    })),
                }),
            },
            v1::LoadInfo {
                name: "fx".into(),
                program_type: v1::BpfmanProgramType::Fexit as i32,
                info: Some(v1::ProgSpecificInfo {
                    info: Some(LoadInfoKind::FexitLoadInfo(v1::FexitLoadInfo {
                        fn_name: "do_unlinkat".into(),
                    })),
                }),
            },
        ],
    };
    let spec = load_spec_from_v1(req).unwrap();
    assert_eq!(
        spec.source,
        BytecodeSource::File {
            path: "/opt/stats.o".into()
        }
    );
    assert_eq!(spec.metadata, md(&[("bpfman.io/application", "stats")]));
    assert_eq!(spec.global_data["GLOBAL_u8"], vec![1u8]);
    assert_eq!(spec.map_owner_id, Some(ProgramId(12)));
    let req = |name: &str, kind, f: Option<&str>| ProgramRequest {
        name: name.into(),
        kind: Some(kind),
        attach_fn: f.map(String::from),
    };
    assert_eq!(
        spec.programs,
        [
            req("count", ProgramKind::Tracepoint, None),
            req("xdp_pass", ProgramKind::Xdp, None),
            req("tc_pass", ProgramKind::Tc, None),
            req("tcx_pass", ProgramKind::Tcx, None),
            req("kp", ProgramKind::Kprobe, None),
            req("up", ProgramKind::Uprobe, None),
            req("fe", ProgramKind::Fentry, Some("do_unlinkat")),
            req("fx", ProgramKind::Fexit, Some("do_unlinkat")),
        ]
    );
}

#[test]
fn load_request_errors() {
    let base = || v1::LoadRequest {
        bytecode: file("/x.o"),
        info: vec![load_info("p", v1::BpfmanProgramType::Tracepoint)],
        ..Default::default()
    };

    let mut r = base();
    r.bytecode = None;
    assert!(invalid_msg(load_spec_from_v1(r)).contains("no bytecode"));
    let mut r = base();
    r.bytecode = Some(v1::BytecodeLocation { location: None });
    assert!(invalid_msg(load_spec_from_v1(r)).contains("no bytecode"));

    // Image bytecode: a bad pull policy or an empty url is the client's mistake.
    let image = |url: &str, policy: i32| {
        Some(v1::BytecodeLocation {
            location: Some(Location::Image(v1::BytecodeImage {
                url: url.into(),
                image_pull_policy: policy,
                ..Default::default()
            })),
        })
    };
    let mut r = base();
    r.bytecode = image("quay.io/bpfman-bytecode/go-xdp-counter:latest", 3);
    let m = invalid_msg(load_spec_from_v1(r));
    assert!(m.contains("image_pull_policy 3"), "{m}");
    let mut r = base();
    r.bytecode = image("", 1);
    assert!(invalid_msg(load_spec_from_v1(r)).contains("url"));

    let mut r = base();
    r.info[0].program_type = 42;
    let m = invalid_msg(load_spec_from_v1(r));
    assert!(
        m.contains("program 'p'") && m.contains("unknown program type 42"),
        "{m}"
    );

    let mut r = base();
    r.info[0].program_type = v1::BpfmanProgramType::Lsm as i32;
    assert!(matches!(
        load_spec_from_v1(r),
        Err(ConvertError::Unimplemented(_))
    ));

    let mut r = base();
    r.info = vec![];
    assert!(invalid_msg(load_spec_from_v1(r)).contains("names no programs"));

    // FENTRY without info, with an empty fn_name, and with FEXIT's info.
    for info in [
        None,
        Some(v1::ProgSpecificInfo {
            info: Some(LoadInfoKind::FentryLoadInfo(v1::FentryLoadInfo {
                fn_name: String::new(),
            })),
        }),
        Some(v1::ProgSpecificInfo {
            info: Some(LoadInfoKind::FexitLoadInfo(v1::FexitLoadInfo {
                fn_name: "f".into(),
            })),
        }),
    ] {
        let mut r = base();
        r.info[0].program_type = v1::BpfmanProgramType::Fentry as i32;
        r.info[0].info = info;
        let m = invalid_msg(load_spec_from_v1(r));
        assert!(m.contains("fentry_load_info.fn_name"), "{m}");
    }
    let mut r = base();
    r.info[0].program_type = v1::BpfmanProgramType::Fexit as i32;
    assert!(invalid_msg(load_spec_from_v1(r)).contains("fexit_load_info.fn_name"));

    // Core validation runs too: bad metadata key, duplicate program.
    let mut r = base();
    r.metadata = md(&[("bad key", "v")]);
    assert!(invalid_msg(load_spec_from_v1(r)).contains("bad key"));
    let mut r = base();
    r.info.push(r.info[0].clone());
    assert!(invalid_msg(load_spec_from_v1(r)).contains("named twice"));
}

#[test]
fn load_request_image() {
    let req = |policy: i32, username: Option<&str>, password: Option<&str>| v1::LoadRequest {
        bytecode: Some(v1::BytecodeLocation {
            location: Some(Location::Image(v1::BytecodeImage {
                url: "quay.io/bpfman-bytecode/go-tracepoint-counter:latest".into(),
                image_pull_policy: policy,
                username: username.map(str::to_string),
                password: password.map(str::to_string),
            })),
        }),
        info: vec![load_info("count", v1::BpfmanProgramType::Tracepoint)],
        ..Default::default()
    };
    let spec = load_spec_from_v1(req(0, Some("alice"), Some("s3cret"))).unwrap();
    assert_eq!(
        spec.source,
        BytecodeSource::Image {
            url: "quay.io/bpfman-bytecode/go-tracepoint-counter:latest".into(),
            digest: None
        }
    );
    assert_eq!(spec.pull_policy.map(|p| p.as_str()), Some("Always"));
    let auth = spec.registry_auth.clone().unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("alice", "s3cret")
    );
    assert!(!format!("{spec:?}").contains("s3cret"));
    assert_eq!(spec.programs[0].kind, Some(ProgramKind::Tracepoint));

    // Upstream clients send present-but-empty credentials: no credentials.
    let spec = load_spec_from_v1(req(1, Some(""), Some(""))).unwrap();
    assert_eq!(spec.pull_policy.map(|p| p.as_str()), Some("IfNotPresent"));
    assert_eq!(spec.registry_auth, None);
    let spec = load_spec_from_v1(req(2, None, None)).unwrap();
    assert_eq!(spec.pull_policy.map(|p| p.as_str()), Some("Never"));
    assert_eq!(spec.registry_auth, None);

    let img = image_request_from_v1(v1::BytecodeImage {
        url: "r/x:v1".into(),
        image_pull_policy: -1,
        username: Some("u".into()),
        password: Some("topsecret".into()),
    });
    let m = invalid_msg(img);
    assert!(!m.contains("topsecret"), "{m}");
}

// ---------- Attach ----------

fn attach(info: Info) -> Result<(AttachSpec, BTreeMap<String, String>), ConvertError> {
    attach_spec_from_v1(v1::AttachInfo { info: Some(info) })
}

#[test]
fn attach_tracepoint() {
    let (spec, m) = attach(Info::TracepointAttachInfo(v1::TracepointAttachInfo {
        tracepoint: "sched/sched_switch".into(),
        metadata: md(&[("a", "1")]),
    }))
    .unwrap();
    assert_eq!(
        spec,
        AttachSpec::Tracepoint {
            tracepoint: Some("sched/sched_switch".into())
        }
    );
    assert_eq!(m, md(&[("a", "1")]));
    // Empty: taken later from the ELF section.
    let (spec, _) = attach(Info::TracepointAttachInfo(Default::default())).unwrap();
    assert_eq!(spec, AttachSpec::Tracepoint { tracepoint: None });
    assert!(
        invalid_msg(attach(Info::TracepointAttachInfo(
            v1::TracepointAttachInfo {
                tracepoint: "nogroup".into(),
                ..Default::default()
            }
        )))
        .contains("GROUP/NAME")
    );
}

#[test]
fn attach_kprobe() {
    let (spec, m) = attach(Info::KprobeAttachInfo(v1::KprobeAttachInfo {
        fn_name: "do_unlinkat".into(),
        offset: 8,
        container_pid: Some(77),
        metadata: md(&[("k", "v")]),
    }))
    .unwrap();
    assert_eq!(
        spec,
        AttachSpec::Kprobe {
            fn_name: Some("do_unlinkat".into()),
            offset: 8,
            retprobe: false,
            container_pid: Some(77),
        }
    );
    assert_eq!(m, md(&[("k", "v")]));
    let (spec, _) = attach(Info::KprobeAttachInfo(Default::default())).unwrap();
    assert!(matches!(spec, AttachSpec::Kprobe { fn_name: None, .. }));
}

#[test]
fn attach_uprobe() {
    let (spec, m) = attach(Info::UprobeAttachInfo(v1::UprobeAttachInfo {
        fn_name: Some("malloc".into()),
        offset: 4,
        target: "libc".into(),
        pid: Some(10),
        container_pid: Some(11),
        metadata: md(&[("u", "p")]),
    }))
    .unwrap();
    assert_eq!(
        spec,
        AttachSpec::Uprobe {
            target: "libc".into(),
            fn_name: Some("malloc".into()),
            offset: 4,
            pid: Some(10),
            retprobe: false,
            container_pid: Some(11),
        }
    );
    assert_eq!(m, md(&[("u", "p")]));
    let (spec, _) = attach(Info::UprobeAttachInfo(v1::UprobeAttachInfo {
        fn_name: Some(String::new()),
        offset: 0x100,
        target: "/bin/true".into(),
        ..Default::default()
    }))
    .unwrap();
    assert!(matches!(
        spec,
        AttachSpec::Uprobe {
            fn_name: None,
            offset: 0x100,
            ..
        }
    ));
    assert!(invalid_msg(attach(Info::UprobeAttachInfo(Default::default()))).contains("target"));
}

#[test]
fn attach_fentry_fexit() {
    let (spec, m) = attach(Info::FentryAttachInfo(v1::FentryAttachInfo {
        metadata: md(&[("f", "e")]),
    }))
    .unwrap();
    assert_eq!((spec, m), (AttachSpec::Fentry, md(&[("f", "e")])));
    let (spec, m) = attach(Info::FexitAttachInfo(v1::FexitAttachInfo {
        metadata: md(&[("f", "x")]),
    }))
    .unwrap();
    assert_eq!((spec, m), (AttachSpec::Fexit, md(&[("f", "x")])));
    assert!(matches!(
        attach(Info::LsmAttachInfo(Default::default())),
        Err(ConvertError::Unimplemented(_))
    ));
}

fn xdp(priority: i32, proceed_on: Vec<i32>) -> Info {
    Info::XdpAttachInfo(v1::XdpAttachInfo {
        priority,
        iface: "veth0".into(),
        position: 9,
        proceed_on,
        netns: Some("/run/netns/t".into()),
        metadata: md(&[("x", "d")]),
    })
}

#[test]
fn attach_xdp() {
    let (spec, m) = attach(xdp(50, vec![1, 2])).unwrap();
    assert_eq!(
        spec,
        AttachSpec::Xdp {
            iface: "veth0".into(),
            priority: 50,
            proceed_on: vec![1, 2],
            netns: Some("/run/netns/t".into()),
            mode: XdpMode::Native,
        }
    );
    assert_eq!(m, md(&[("x", "d")]));
    // Empty proceed_on: upstream's default (pass, dispatcher_return).
    let (spec, _) = attach(xdp(1, vec![])).unwrap();
    assert!(matches!(spec, AttachSpec::Xdp { ref proceed_on, .. } if proceed_on == &[2, 31]));
    let (spec, _) = attach(xdp(1000, vec![0, 3, 4, 31])).unwrap();
    assert!(matches!(spec, AttachSpec::Xdp { priority: 1000, .. }));

    let m = invalid_msg(attach(xdp(50, vec![2, 30])));
    assert!(m.contains("proceed_on code 30"), "{m}");
    for p in [0, -1, 1001] {
        let m = invalid_msg(attach(xdp(p, vec![])));
        assert!(
            m.contains(&format!("priority {p} is outside 1..=1000")),
            "{m}"
        );
    }
}

fn tc(direction: &str, priority: i32, proceed_on: Vec<i32>) -> Info {
    Info::TcAttachInfo(v1::TcAttachInfo {
        priority,
        iface: "veth0".into(),
        position: 0,
        direction: direction.into(),
        proceed_on,
        netns: Some(String::new()),
        metadata: md(&[("t", "c")]),
    })
}

#[test]
fn attach_tc() {
    let (spec, m) = attach(tc("egress", 5, vec![-1, 0, 8, 30])).unwrap();
    assert_eq!(
        spec,
        AttachSpec::Tc {
            iface: "veth0".into(),
            direction: Some(Direction::Egress),
            priority: 5,
            proceed_on: vec![-1, 0, 8, 30],
            // An empty optional string means "no namespace".
            netns: None,
        }
    );
    assert_eq!(m, md(&[("t", "c")]));
    let (spec, _) = attach(tc("ingress", 5, vec![])).unwrap();
    assert!(matches!(
        spec,
        AttachSpec::Tc { direction: Some(Direction::Ingress), ref proceed_on, .. } if proceed_on == &[3, 30]
    ));
    assert!(invalid_msg(attach(tc("sideways", 5, vec![]))).contains("'sideways'"));
    assert!(invalid_msg(attach(tc("ingress", 5, vec![31]))).contains("proceed_on code 31"));
    assert!(invalid_msg(attach(tc("ingress", 0, vec![]))).contains("priority 0"));
}

#[test]
fn attach_tcx() {
    let (spec, m) = attach(Info::TcxAttachInfo(v1::TcxAttachInfo {
        priority: 1000,
        iface: "veth1".into(),
        position: 3,
        direction: "ingress".into(),
        netns: Some("/proc/1/ns/net".into()),
        metadata: md(&[("t", "x")]),
    }))
    .unwrap();
    assert_eq!(
        spec,
        AttachSpec::Tcx {
            iface: "veth1".into(),
            direction: Some(Direction::Ingress),
            priority: 1000,
            netns: Some("/proc/1/ns/net".into()),
        }
    );
    assert_eq!(m, md(&[("t", "x")]));
    let bad = |d: &str, p: i32| {
        attach(Info::TcxAttachInfo(v1::TcxAttachInfo {
            priority: p,
            iface: "veth1".into(),
            direction: d.into(),
            ..Default::default()
        }))
    };
    assert!(invalid_msg(bad("up", 10)).contains("must be 'ingress' or 'egress'"));
    // Empty: the program's section decides when attaching (`tcx/ingress`).
    assert!(matches!(
        bad("", 10).unwrap().0,
        AttachSpec::Tcx {
            direction: None,
            ..
        }
    ));
    assert!(invalid_msg(bad("egress", 1001)).contains("priority 1001"));
}

#[test]
fn attach_missing_or_bad_metadata() {
    let m = invalid_msg(attach_spec_from_v1(v1::AttachInfo { info: None }));
    assert!(m.contains("attach info is empty"), "{m}");
    let m = invalid_msg(attach_request_from_v1(v1::AttachRequest {
        id: 9,
        attach: None,
    }));
    assert!(m.contains("program 9"), "{m}");
    let (id, spec, md_) = attach_request_from_v1(v1::AttachRequest {
        id: 9,
        attach: Some(v1::AttachInfo {
            info: Some(Info::FentryAttachInfo(Default::default())),
        }),
    })
    .unwrap();
    assert_eq!(
        (id, spec, md_),
        (ProgramId(9), AttachSpec::Fentry, BTreeMap::new())
    );
    assert!(
        invalid_msg(attach(Info::FentryAttachInfo(v1::FentryAttachInfo {
            metadata: md(&[("", "v")]),
        })))
        .contains("metadata key is empty")
    );
}

#[test]
fn errors_map_to_status_codes() {
    let s: tonic::Status = ConvertError::InvalidArgument("x".into()).into();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    let s: tonic::Status = ConvertError::Unimplemented("y".into()).into();
    assert_eq!((s.code(), s.message()), (tonic::Code::Unimplemented, "y"));
    assert_eq!(
        status_from_core(CoreError::NotFound("n".into())).code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        status_from_core(CoreError::FailedPrecondition("f".into())).code(),
        tonic::Code::FailedPrecondition
    );
}

// ---------- Views ----------

fn kernel(id: u32, name: &str, program_type: u32) -> KernelProgramInfo {
    KernelProgramInfo {
        id: ProgramId(id),
        name: name.into(),
        program_type,
        loaded_at: "2026-01-01T00:00:00Z".into(),
        tag: "0123456789abcdef".into(),
        gpl_compatible: true,
        map_ids: vec![MapId(4), MapId(5)],
        btf_id: 6,
        bytes_xlated: 7,
        jited: true,
        bytes_jited: 8,
        bytes_memlock: 9,
        verified_insns: 10,
    }
}

fn managed_view(id: u32, owner: u32, source: BytecodeSource) -> ProgramView {
    let record = ProgramRecord {
        id: ProgramId(id),
        name: "xdp_pass_long_name".into(),
        kind: ProgramKind::Xdp,
        section: "xdp".into(),
        attach_fn: None,
        source,
        metadata: md(&[("bpfman.io/application", "stats")]),
        global_data: [("G".to_string(), vec![0xab])].into(),
        map_owner_id: ProgramId(owner),
        map_pin_path: format!("/run/bpfman/fs/{owner}"),
        pin_path: format!("/run/bpfman/fs/{id}/xdp_pass_long_name"),
        created_at: 1,
    };
    let link = |lid: u32| LinkView {
        id: LinkId(lid),
        program_id: ProgramId(id),
        program_name: record.name.clone(),
        link_type: "xdp".into(),
        attach_point: "xdp veth0 priority 50".into(),
        spec: AttachSpec::Xdp {
            iface: "veth0".into(),
            priority: 50,
            proceed_on: vec![2, 31],
            netns: None,
            mode: XdpMode::Native,
        },
        pin_path: format!("/run/bpfman/fs/links/{lid}"),
        kernel_link_id: None,
        metadata: BTreeMap::new(),
        created_at: 2,
        hook: None,
    };
    ProgramView {
        id: ProgramId(id),
        managed: true,
        name: record.name.clone(),
        program_type: "xdp".into(),
        map_used_by: vec![ProgramId(owner), ProgramId(id)],
        maps: vec![],
        links: vec![link(3), link(8)],
        // The kernel sees a dispatcher extension (EXT = 28).
        kernel: Some(kernel(id, "xdp_pass_long_n", 28)),
        record: Some(record),
        owned_by: None,
    }
}

#[test]
fn managed_program_view() {
    let view = managed_view(
        20,
        20,
        BytecodeSource::File {
            path: "/opt/x.o".into(),
        },
    );
    let (info, k) = program_view_to_v1(view.clone());
    let info = info.unwrap();
    assert_eq!(info.name, "xdp_pass_long_name");
    assert_eq!(
        info.bytecode.unwrap().location,
        Some(Location::File("/opt/x.o".into()))
    );
    assert_eq!(info.links, [3, 8]);
    assert_eq!(info.global_data["G"], vec![0xab]);
    assert_eq!(info.map_owner_id, None, "owns its maps");
    assert_eq!(info.map_pin_path, "/run/bpfman/fs/20");
    assert_eq!(info.map_used_by, ["20", "20"]);
    assert_eq!(info.metadata, md(&[("bpfman.io/application", "stats")]));

    let mut want = v1::KernelProgramInfo {
        id: 20,
        name: "xdp_pass_long_n".into(),
        program_type: 6, // logical XDP, not the kernel's EXT
        loaded_at: "2026-01-01T00:00:00Z".into(),
        tag: "0123456789abcdef".into(),
        gpl_compatible: true,
        map_ids: vec![4, 5],
        btf_id: 6,
        bytes_xlated: 7,
        jited: true,
        bytes_jited: 8,
        bytes_memlock: 9,
        verified_insns: 10,
    };
    assert_eq!(k, want);

    // Shares maps with 12; image source: credentials present but empty.
    let view = managed_view(
        21,
        12,
        BytecodeSource::Image {
            url: "quay.io/x:1".into(),
            digest: Some("sha256:00".into()),
        },
    );
    let (info, k) = program_view_to_v1(view.clone());
    let info = info.unwrap();
    assert_eq!(info.map_owner_id, Some(12));
    assert_eq!(info.map_used_by, ["12", "21"]);
    assert_eq!(
        info.bytecode.unwrap().location,
        Some(Location::Image(v1::BytecodeImage {
            url: "quay.io/x:1".into(),
            image_pull_policy: 1,
            username: Some(String::new()),
            password: Some(String::new()),
        }))
    );
    want.id = 21;
    assert_eq!(k, want);

    // Helpers wrap the same pair.
    let views = vec![view.clone()];
    let l = list_response_from_views(views.clone());
    assert_eq!(l.results.len(), 1);
    assert_eq!(l.results[0].kernel_info.as_ref().unwrap().id, 21);
    assert!(l.results[0].info.is_some());
    let lr = load_response_from_views(views);
    assert_eq!(
        lr.programs[0].info.as_ref().unwrap().name,
        "xdp_pass_long_name"
    );
    let g = get_response_from_view(view);
    assert_eq!(g.kernel_info.unwrap().program_type, 6);
}

#[test]
fn unmanaged_and_gone_program_views() {
    let view = ProgramView {
        id: ProgramId(99),
        managed: false,
        name: "sd_fw_egress".into(),
        program_type: "cgroup_skb".into(),
        record: None,
        map_used_by: vec![],
        maps: vec![],
        links: vec![],
        kernel: Some(kernel(99, "sd_fw_egress", 8)),
        owned_by: None,
    };
    let (info, k) = program_view_to_v1(view.clone());
    assert!(info.is_none());
    assert_eq!(
        (k.id, k.name.as_str(), k.program_type),
        (99, "sd_fw_egress", 8)
    );

    // Kernel facts missing: id and name still identify the program.
    let mut gone = managed_view(
        5,
        5,
        BytecodeSource::File {
            path: "/x.o".into(),
        },
    );
    gone.kernel = None;
    let (info, k) = program_view_to_v1(gone);
    assert!(info.is_some());
    assert_eq!(
        (k.id, k.name.as_str(), k.program_type),
        (5, "xdp_pass_long_name", 6)
    );
}
