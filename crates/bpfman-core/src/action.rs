//! Reified effects: what the manager's interpreter is asked to do.

use serde::{Deserialize, Serialize};

use crate::{LinkId, ProgramId};

/// One effect on bpffs or the store. Planners return these; the manager executes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Remove one bpffs pin (a program, map or link object).
    Unpin {
        /// Pin path.
        path: String,
    },
    /// Remove a directory after its contents: every pin under it, then the directory.
    RemoveTree {
        /// Directory path.
        path: String,
    },
    /// Remove an empty directory.
    RemoveDir {
        /// Directory path.
        path: String,
    },
    /// Unmount a mount bpfman made (a CSI volume's bpffs or bind mount).
    Unmount {
        /// Mount point.
        path: String,
    },
    /// Delete a program row (and its metadata and link rows; map rows go with `DeleteMaps`).
    DeleteProgram {
        /// Program id.
        id: ProgramId,
    },
    /// Delete a link row.
    DeleteLink {
        /// Link id.
        id: LinkId,
    },
    /// Delete the map rows of an owner directory.
    DeleteMaps {
        /// Owner program id.
        owner_id: ProgramId,
    },
    /// Delete a CSI volume row.
    DeleteVolume {
        /// Volume id.
        volume_id: String,
    },
}
