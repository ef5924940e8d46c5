//! Store rows for tests: one builder each for the program, map and link rows
//! (and their labels), so that a test spells out only what it is about. A
//! test that needs another value of a field sets it with struct-update
//! syntax: `LinkRecord { pin_path: …, ..fixtures::link(1, 2, "/fs") }`.
//!
//! Compiled for the core's own unit tests, and for other crates' tests (the
//! store's) through the `fixtures` feature; bpfman itself never enables it.

use crate::kind::ProgramKind;
use crate::metadata::Metadata;
use crate::model::{LinkRecord, MapRecord, ProgramRecord};
use crate::spec::{AttachSpec, BytecodeSource};
use crate::{KernelLinkId, LinkId, MapId, ProgramId};

/// A tracepoint program row `id` named `p`, whose maps live in `owner`'s
/// directory, with its pins under `fs` (a runtime dir's `fs` directory):
/// maps in `<fs>/<owner>`, the program at `<fs>/<id>/p`. No labels, no global
/// data, recorded at time 0.
pub fn program(id: u32, owner: u32, fs: &str) -> ProgramRecord {
    ProgramRecord {
        id: ProgramId(id),
        name: "p".into(),
        kind: ProgramKind::Tracepoint,
        section: "tp/a/b".into(),
        attach_fn: None,
        source: BytecodeSource::File {
            path: "/o.o".into(),
        },
        metadata: Default::default(),
        global_data: Default::default(),
        map_owner_id: ProgramId(owner),
        map_pin_path: format!("{fs}/{owner}"),
        pin_path: format!("{fs}/{id}/p"),
        created_at: 0,
    }
}

/// A map row `name` of `owner`'s directory under `fs`, pinned at
/// `<fs>/<owner>/<name>`, of kernel map 3.
pub fn map_row(owner: u32, name: &str, fs: &str) -> MapRecord {
    MapRecord {
        owner_id: ProgramId(owner),
        name: name.into(),
        kernel_id: MapId(3),
        pin_path: format!("{fs}/{owner}/{name}"),
    }
}

/// A link row `id` attaching program `program_id` to tracepoint `a/b` (the
/// one of [`program`]'s section), pinned at `<fs>/links/<id>`, of kernel
/// link `100 + id`. No labels, made at time 0.
pub fn link(id: u32, program_id: u32, fs: &str) -> LinkRecord {
    LinkRecord {
        id: LinkId(id),
        program_id: ProgramId(program_id),
        spec: AttachSpec::Tracepoint {
            tracepoint: Some("a/b".into()),
        },
        pin_path: format!("{fs}/links/{id}"),
        kernel_link_id: Some(KernelLinkId(100 + id)),
        metadata: Default::default(),
        created_at: 0,
    }
}

/// Labels (a row's `metadata`) from `pairs`.
pub fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
