//! Wire compatibility with upstream bpfman.v1.
//!
//! Two independent checks: (1) the compiled descriptor of `proto/bpfman.proto`
//! matches, field by field, a table generated mechanically from the
//! wire-contracts document; (2) prost encodes a few tricky messages with the
//! exact tags upstream uses (read back with a hand-written wire parser).

#[allow(dead_code)]
#[path = "support/wire_table.rs"]
mod wire_table;

use std::collections::{BTreeMap, BTreeSet};

use bpfman_api::{FILE_DESCRIPTOR_SET, v1};
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

fn file(package: &str) -> FileDescriptorProto {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .into_iter()
        .find(|f| f.package() == package)
        .unwrap_or_else(|| panic!("no file for package {package}"))
}

fn scalar_name(t: Type) -> &'static str {
    match t {
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Bool => "bool",
        Type::Int32 => "int32",
        Type::Uint32 => "uint32",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Fixed32 => "fixed32",
        Type::Fixed64 => "fixed64",
        Type::Double => "double",
        Type::Float => "float",
        other => panic!("unexpected scalar {other:?}"),
    }
}

/// Collects every message as (full name → rows of (field, number, type, label)),
/// rendering types and labels the way the wire-contracts tables do.
fn collect(
    prefix: &str,
    msgs: &[DescriptorProto],
    out: &mut BTreeMap<String, BTreeSet<(String, i32, String, String)>>,
) {
    for m in msgs {
        let full = format!("{prefix}.{}", m.name());
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        let entries: BTreeMap<String, &DescriptorProto> = m
            .nested_type
            .iter()
            .filter(|n| n.options.as_ref().is_some_and(|o| o.map_entry()))
            .map(|n| (format!(".{full}.{}", n.name()), n))
            .collect();
        let type_of = |f: &prost_types::FieldDescriptorProto| -> String {
            match f.r#type() {
                Type::Message | Type::Enum => f.type_name().trim_start_matches('.').to_string(),
                t => scalar_name(t).to_string(),
            }
        };
        let mut rows = BTreeSet::new();
        for f in &m.field {
            let (ty, label) = if let Some(entry) = entries.get(f.type_name()) {
                let k = type_of(&entry.field[0]);
                let v = type_of(&entry.field[1]);
                (format!("map<{k}, {v}>"), "map".to_string())
            } else if f.label() == Label::Repeated {
                (type_of(f), "repeated".to_string())
            } else if f.proto3_optional() {
                (type_of(f), "optional".to_string())
            } else if let Some(i) = f.oneof_index {
                let oneof = m.oneof_decl[i as usize].name().to_string();
                (type_of(f), format!("oneof {oneof}"))
            } else {
                (type_of(f), "singular".to_string())
            };
            rows.insert((f.name().to_string(), f.number(), ty, label));
        }
        out.insert(full.clone(), rows);
        collect(&full, &m.nested_type, out);
    }
}

#[test]
fn bpfman_v1_descriptor_matches_the_contract_tables() {
    let f = file("bpfman.v1");
    assert_eq!(f.syntax(), "proto3");
    assert!(f.dependency.is_empty(), "bpfman.v1 has no imports");

    let mut actual = BTreeMap::new();
    collect("bpfman.v1", &f.message_type, &mut actual);

    let mut expected: BTreeMap<String, BTreeSet<(String, i32, String, String)>> = BTreeMap::new();
    for (msg, field, no, ty, label) in wire_table::FIELDS {
        expected.entry(msg.to_string()).or_default().insert((
            field.to_string(),
            *no,
            ty.to_string(),
            label.to_string(),
        ));
    }
    for m in wire_table::EMPTY_MESSAGES {
        expected.insert(m.to_string(), BTreeSet::new());
    }
    // 33 upstream v0.6.0 messages plus the two LSM messages of §1.10.
    assert_eq!(expected.len(), 35);
    let names_a: BTreeSet<_> = actual.keys().collect();
    let names_e: BTreeSet<_> = expected.keys().collect();
    assert_eq!(names_a, names_e, "message names differ");
    for (name, rows) in &expected {
        assert_eq!(&actual[name], rows, "fields of {name} differ");
    }

    // Enum.
    assert_eq!(f.enum_type.len(), 1);
    let e = &f.enum_type[0];
    let got: Vec<_> = e
        .value
        .iter()
        .map(|v| {
            (
                format!("bpfman.v1.{}", e.name()),
                v.name().to_string(),
                v.number(),
            )
        })
        .collect();
    let want: Vec<_> = wire_table::ENUM_VALUES
        .iter()
        .map(|(en, v, n)| (en.to_string(), v.to_string(), *n))
        .collect();
    assert_eq!(got, want);

    // Service and methods (all unary).
    assert_eq!(f.service.len(), 1);
    let s = &f.service[0];
    assert_eq!(s.name(), "Bpfman");
    let got: Vec<_> = s
        .method
        .iter()
        .map(|m| {
            assert!(!m.client_streaming() && !m.server_streaming());
            (
                m.name().to_string(),
                m.input_type().trim_start_matches('.').to_string(),
                m.output_type().trim_start_matches('.').to_string(),
            )
        })
        .collect();
    let want: Vec<_> = wire_table::RPCS
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn ext_service_is_separate_and_complete() {
    let f = file("bpfman.ext.v1");
    assert_eq!(f.service.len(), 1);
    assert_eq!(f.service[0].name(), "BpfmanExt");
    let methods: Vec<_> = f.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        [
            "ListPrograms",
            "GetProgram",
            "ListLinks",
            "GetLink",
            "Gc",
            "Load",
            "Attach",
            "ProgramStats"
        ]
    );
}

/// Reads a varint; returns the value and the bytes consumed.
fn varint(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("truncated varint");
}

/// Top-level (field number, wire type, payload) triples of an encoded message.
fn fields(mut b: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, n) = varint(b);
        b = &b[n..];
        let (no, wt) = (key >> 3, key & 7);
        let payload = match wt {
            0 => {
                let (_, n) = varint(b);
                let p = b[..n].to_vec();
                b = &b[n..];
                p
            }
            2 => {
                let (len, n) = varint(b);
                let p = b[n..n + len as usize].to_vec();
                b = &b[n + len as usize..];
                p
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((no, wt, payload));
    }
    out
}

fn tags(b: &[u8]) -> Vec<(u64, u64)> {
    fields(b).into_iter().map(|(n, w, _)| (n, w)).collect()
}

#[test]
fn load_request_tags() {
    let req = v1::LoadRequest {
        bytecode: Some(v1::BytecodeLocation {
            location: Some(v1::bytecode_location::Location::File("/x.o".into())),
        }),
        metadata: [("k".to_string(), "v".to_string())].into(),
        global_data: [("g".to_string(), vec![1u8])].into(),
        uuid: Some(String::new()),
        map_owner_id: Some(0),
        info: vec![v1::LoadInfo {
            name: "p".into(),
            program_type: v1::BpfmanProgramType::Tcx as i32,
            info: None,
        }],
    };
    let raw = req.encode_to_vec();
    // Optional fields at their default are still sent (explicit presence).
    assert_eq!(tags(&raw), [(1, 2), (5, 2), (6, 2), (7, 2), (8, 0), (9, 2)]);
    let f = fields(&raw);
    // BytecodeLocation.file is field 3 (there is no field 1).
    assert_eq!(tags(&f[0].2), [(3, 2)]);
    // LoadInfo: name = 1, program_type = 2 with TCX = 7.
    assert_eq!(fields(&f[5].2)[1], (2, 0, vec![7]));

    let image = v1::BytecodeLocation {
        location: Some(v1::bytecode_location::Location::Image(
            v1::BytecodeImage::default(),
        )),
    };
    assert_eq!(tags(&image.encode_to_vec()), [(2, 2)]);
}

#[test]
fn attach_info_tags() {
    let tcx = v1::AttachInfo {
        info: Some(v1::attach_info::Info::TcxAttachInfo(v1::TcxAttachInfo {
            priority: 5,
            iface: "eth0".into(),
            position: 0,
            direction: "ingress".into(),
            netns: Some("/run/netns/x".into()),
            metadata: [("a".to_string(), "b".to_string())].into(),
        })),
    };
    let raw = tcx.encode_to_vec();
    let f = fields(&raw);
    assert_eq!(
        tags(&raw),
        [(6, 2)],
        "tcx_attach_info is AttachInfo field 6"
    );
    // TCXAttachInfo: netns = 5, metadata = 6 (unlike TCAttachInfo).
    assert_eq!(tags(&f[0].2), [(1, 0), (2, 2), (4, 2), (5, 2), (6, 2)]);

    let tc = v1::TcAttachInfo {
        priority: 1,
        iface: "eth0".into(),
        direction: "egress".into(),
        proceed_on: vec![-1, 30],
        netns: Some("n".into()),
        ..Default::default()
    };
    let raw = tc.encode_to_vec();
    assert_eq!(tags(&raw), [(1, 0), (2, 2), (4, 2), (5, 2), (6, 2)]);
    // proceed_on is packed, and -1 is an int32 (10-byte varint), not sint32.
    let packed = &fields(&raw)[3].2;
    assert_eq!(packed.len(), 11);
    assert_eq!(varint(packed).0 as i64, -1);

    let lsm = v1::AttachInfo {
        info: Some(v1::attach_info::Info::LsmAttachInfo(
            v1::LsmAttachInfo::default(),
        )),
    };
    assert_eq!(tags(&lsm.encode_to_vec()), [(9, 2)]);
}

#[test]
fn unpacked_repeated_ints_decode() {
    // XDPAttachInfo.proceed_on (field 4) sent unpacked, as some encoders do.
    let raw = [0x20, 2, 0x20, 31];
    let x = v1::XdpAttachInfo::decode(&raw[..]).unwrap();
    assert_eq!(x.proceed_on, [2, 31]);
}

#[test]
fn list_response_tags() {
    let resp = v1::ListResponse {
        results: vec![v1::list_response::ListResult {
            info: None,
            kernel_info: Some(v1::KernelProgramInfo {
                id: 42,
                verified_insns: 1,
                ..Default::default()
            }),
        }],
    };
    let raw = resp.encode_to_vec();
    assert_eq!(tags(&raw), [(3, 2)], "results is ListResponse field 3");
    let result = &fields(&raw)[0].2;
    assert_eq!(
        tags(result),
        [(2, 2)],
        "kernel_info is field 2, info absent"
    );
    let kernel = &fields(result)[0].2;
    assert_eq!(tags(kernel), [(1, 0), (13, 0)]);

    let req = v1::ListRequest {
        program_type: Some(0),
        bpfman_programs_only: Some(false),
        match_metadata: Default::default(),
    };
    assert_eq!(tags(&req.encode_to_vec()), [(1, 0), (2, 0)]);
}
