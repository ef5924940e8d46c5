//! Store rows for the planners' unit tests: one builder each, so the tests of
//! load, unload and the others describe only what differs.

use crate::kind::ProgramKind;
use crate::model::{MapRecord, ProgramRecord};
use crate::spec::BytecodeSource;
use crate::{MapId, ProgramId};

/// A tracepoint program row `id` named `p`, whose maps live in `owner`'s
/// directory, with its pins under `fs` (a runtime dir's `fs` directory).
pub(crate) fn program(id: u32, owner: u32, fs: &str) -> ProgramRecord {
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

/// A map row `name` of `owner`'s directory under `fs`.
pub(crate) fn map_row(owner: u32, name: &str, fs: &str) -> MapRecord {
    MapRecord {
        owner_id: ProgramId(owner),
        name: name.into(),
        kernel_id: MapId(3),
        pin_path: format!("{fs}/{owner}/{name}"),
    }
}
