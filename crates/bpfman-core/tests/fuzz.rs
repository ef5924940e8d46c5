//! Fuzz harnesses for the pure parsers every request goes through: section
//! names (from ELF objects), metadata pairs and selectors, global data,
//! load and attach specs as JSON (the ext service's wire form), and CSI
//! volume attributes. Seeds: `tests/fuzz-corpus/<harness>/`. Each asserts
//! no panic, and the invariants a valid result promises.

use std::collections::BTreeMap;

use bpfman_core::metadata::{self, Selector};
use bpfman_core::model::{MapRecord, ProgramRecord};
use bpfman_core::section::{find_section, parse_section, unsupported_section};
use bpfman_core::spec::{self, AttachSpec, BytecodeSource, LoadSpec};
use bpfman_core::volume::plan_volume;
use bpfman_core::{MapId, ProgramKind, fixtures, limits};
use bpfman_fuzz::proptest::prelude::*;
use bpfman_fuzz::{config, corpus, corpus_lines, mutated, mutated_str};

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn fuzz_section_names(s in mutated_str(corpus_lines("section_names"))) {
        let info = parse_section(&s);
        let _ = find_section(&s);
        let _ = unsupported_section("p", &s);
        if let Some(info) = info {
            // A target is part of the name it came from.
            if let Some(t) = &info.target {
                prop_assert!(!t.is_empty() || s.ends_with('/'), "{s:?} -> {t:?}");
            }
        }
    }

    #[test]
    fn fuzz_metadata(s in mutated_str(corpus_lines("metadata"))) {
        match metadata::parse_pair(&s) {
            Ok((k, v)) => {
                prop_assert!(k.len() <= limits::MAX_METADATA_KEY_BYTES);
                prop_assert!(v.len() <= limits::MAX_METADATA_VALUE_BYTES);
                prop_assert!(!v.chars().any(char::is_control));
                prop_assert_eq!(format!("{k}={v}"), s.clone());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let items: Vec<&str> = s.split(',').collect();
        if let Ok(sel) = Selector::parse(&items) {
            prop_assert!(sel.0.len() <= limits::MAX_METADATA_ENTRIES);
            let _ = sel.describe();
        }
    }

    #[test]
    fn fuzz_global_data(s in mutated_str(corpus_lines("global_data"))) {
        if let Ok((name, bytes)) = spec::parse_global(&s) {
            prop_assert!(!name.is_empty());
            // Round trip through the hex form.
            prop_assert_eq!(spec::parse_hex(&spec::to_hex(&bytes)), Ok(bytes));
        }
        let _ = spec::parse_hex(&s);
    }

    #[test]
    fn fuzz_load_spec_json(b in mutated(corpus("load_spec_json"))) {
        if let Ok(spec) = serde_json::from_slice::<LoadSpec>(&b)
            && spec.validate().is_ok()
        {
            prop_assert!(spec.programs.len() <= limits::MAX_PROGRAMS_PER_LOAD);
            prop_assert!(spec.metadata.len() <= limits::MAX_METADATA_ENTRIES);
            prop_assert!(spec.global_data.values().all(|v| !v.is_empty()
                && v.len() <= limits::MAX_GLOBAL_DATA_BYTES));
            for p in &spec.programs {
                prop_assert!(!p.name.contains('/') && p.name != ".." , "{:?}", p.name);
            }
            if let BytecodeSource::File { path } = &spec.source {
                prop_assert!(!path.is_empty());
            }
            // What validates survives the wire.
            let again: LoadSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
            prop_assert_eq!(again, spec);
        }
    }

    #[test]
    fn fuzz_attach_spec_json(b in mutated(corpus("attach_spec_json")), section in mutated_str(corpus_lines("section_names"))) {
        if let Ok(a) = serde_json::from_slice::<AttachSpec>(&b) {
            let _ = a.type_name();
            for kind in [ProgramKind::Tracepoint, ProgramKind::Uprobe, ProgramKind::Kprobe, ProgramKind::Xdp, ProgramKind::Tc, ProgramKind::Tcx, ProgramKind::Fentry] {
                let _ = a.clone().resolve(kind, &section, "p");
            }
        }
    }

    #[test]
    fn fuzz_volume_attributes(b in mutated(corpus("volume_attributes")), extra in mutated_str(corpus_lines("metadata"))) {
        let Ok(mut attrs) = serde_json::from_slice::<BTreeMap<String, String>>(&b) else {
            return Ok(());
        };
        if let Some((k, v)) = extra.split_once('=') {
            attrs.insert(k.to_string(), v.to_string());
        }
        let programs = programs();
        if let Ok(plan) = plan_volume(&attrs, &programs) {
            prop_assert!(!plan.programs.is_empty());
            for m in &plan.maps {
                // Names become files in the volume: never a path.
                prop_assert!(!m.name.contains('/') && m.name != "." && m.name != "..", "{:?}", m.name);
                prop_assert!(programs.iter().any(|(_, ms)| ms.iter().any(|x| x.pin_path == m.source_pin)));
            }
        }
    }
}

fn programs() -> Vec<(ProgramRecord, Vec<MapRecord>)> {
    let prog = |id: u32, md: &[(&str, &str)]| ProgramRecord {
        name: "count_sched_switch".into(),
        section: "tracepoint/sched/sched_switch".into(),
        metadata: fixtures::metadata(md),
        pin_path: format!("/fs/{id}/count"),
        ..fixtures::program(id, id, "/fs")
    };
    let map = |owner: u32, name: &str| MapRecord {
        kernel_id: MapId(owner * 10),
        ..fixtures::map_row(owner, name, "/fs")
    };
    vec![
        (
            prog(
                1,
                &[
                    ("bpfman.io/application", "stats"),
                    ("bpfman.io/ProgramName", "count_sched_switch"),
                ],
            ),
            vec![map(1, "stats_map"), map(1, ".rodata")],
        ),
        (
            prog(2, &[("bpfman.io/application", "other")]),
            vec![map(2, "other_map"), map(2, "stats_map")],
        ),
    ]
}
