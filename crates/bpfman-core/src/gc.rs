//! Garbage collection: which recorded or pinned things are stale, and why.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::action::Action;
use crate::model::{LinkRecord, MapRecord, ProgramRecord};
use crate::{KernelLinkId, LinkId, ProgramId};

/// A bpffs entry found under `<fs>` (top two levels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsEntry {
    /// Absolute path.
    pub path: String,
    /// True for directories.
    pub is_dir: bool,
}

/// Facts gathered by the manager for `plan_gc`.
#[derive(Debug, Clone, Default)]
pub struct GcSnapshot {
    /// Program rows.
    pub programs: Vec<ProgramRecord>,
    /// Map rows.
    pub maps: Vec<MapRecord>,
    /// Link rows.
    pub links: Vec<LinkRecord>,
    /// Kernel program ids alive now.
    pub live_programs: BTreeSet<ProgramId>,
    /// Kernel link ids alive now.
    pub live_links: BTreeSet<KernelLinkId>,
    /// Pin files that exist (absolute paths).
    pub pins: BTreeSet<String>,
    /// Numbered directories directly under `<fs>` (program id → path), and whether each is empty.
    pub program_dirs: BTreeMap<ProgramId, (String, bool)>,
    /// Pins directly under `<fs>/links`, by link id.
    pub link_pins: BTreeMap<LinkId, String>,
}

/// What kind of thing a [`GcItem`] is; serialized lowercase (docs/json.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GcKind {
    /// A recorded program.
    Program,
    /// A recorded link.
    Link,
    /// A recorded map.
    Map,
    /// A pin file with no record.
    Pin,
    /// A program directory with no record.
    Directory,
    /// A CSI volume.
    Volume,
    /// A network dispatcher.
    Dispatcher,
}

impl GcKind {
    /// The JSON / display spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GcKind::Program => "program",
            GcKind::Link => "link",
            GcKind::Map => "map",
            GcKind::Pin => "pin",
            GcKind::Directory => "directory",
            GcKind::Volume => "volume",
            GcKind::Dispatcher => "dispatcher",
        }
    }
}

impl std::fmt::Display for GcKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stale item, why it is stale, and what pruning does about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcItem {
    /// What kind of thing.
    pub kind: GcKind,
    /// Which one (an id or a path).
    pub subject: String,
    /// Why it is stale.
    pub reason: String,
    /// The effects that remove it, in order.
    pub actions: Vec<Action>,
}

/// Computes the stale items of a snapshot. Live programs, and anything not
/// created by bpfman (non-numeric entries under `<fs>`), are never touched.
pub fn plan_gc(s: &GcSnapshot) -> Vec<GcItem> {
    let mut items = Vec::new();
    let mut dead_programs: BTreeSet<ProgramId> = BTreeSet::new();

    for p in &s.programs {
        let reason = if !s.live_programs.contains(&p.id) {
            Some("its kernel program is gone")
        } else if !s.pins.contains(&p.pin_path) {
            Some("its pin is gone")
        } else {
            None
        };
        if let Some(reason) = reason {
            dead_programs.insert(p.id);
            let mut actions = Vec::new();
            if s.pins.contains(&p.pin_path) {
                actions.push(Action::Unpin {
                    path: p.pin_path.clone(),
                });
            }
            actions.push(Action::DeleteProgram { id: p.id });
            items.push(GcItem {
                kind: GcKind::Program,
                subject: format!("{} ({})", p.id, p.name),
                reason: format!("program row {} '{}': {reason}", p.id, p.name),
                actions,
            });
        }
    }

    // Links: a row whose pin or kernel link is gone, or whose program is being removed.
    let mut dead_links = BTreeSet::new();
    for l in &s.links {
        let reason = if dead_programs.contains(&l.program_id) {
            Some("its program is stale")
        } else if !s.pins.contains(&l.pin_path) {
            Some("its pin is gone")
        } else if l.kernel_link_id.is_some_and(|k| !s.live_links.contains(&k)) {
            Some("its kernel link is gone")
        } else {
            None
        };
        if let Some(reason) = reason {
            dead_links.insert(l.id);
            let mut actions = Vec::new();
            if s.pins.contains(&l.pin_path) {
                actions.push(Action::Unpin {
                    path: l.pin_path.clone(),
                });
            }
            actions.push(Action::DeleteLink { id: l.id });
            items.push(GcItem {
                kind: GcKind::Link,
                subject: l.id.to_string(),
                reason: format!("link row {} of program {}: {reason}", l.id, l.program_id),
                actions,
            });
        }
    }

    // Link pins with no row.
    let link_rows: BTreeSet<LinkId> = s.links.iter().map(|l| l.id).collect();
    for (id, path) in &s.link_pins {
        if !link_rows.contains(id) {
            items.push(GcItem {
                kind: GcKind::Pin,
                subject: path.clone(),
                reason: format!("link pin {path} has no link row"),
                actions: vec![Action::Unpin { path: path.clone() }],
            });
        }
    }

    // Owner directories still in use by a live program row.
    let live_rows: Vec<&ProgramRecord> = s
        .programs
        .iter()
        .filter(|p| !dead_programs.contains(&p.id))
        .collect();
    let dir_in_use = |dir_id: ProgramId| {
        live_rows
            .iter()
            .any(|p| p.id == dir_id || p.map_owner_id == dir_id)
    };

    // Map rows whose owner directory is no longer used by any live program.
    let mut owners_with_rows: BTreeSet<ProgramId> = BTreeSet::new();
    for m in &s.maps {
        owners_with_rows.insert(m.owner_id);
    }
    for owner in &owners_with_rows {
        if !dir_in_use(*owner) {
            items.push(GcItem {
                kind: GcKind::Map,
                subject: format!("maps of {owner}"),
                reason: format!("map rows of directory {owner}: no live program uses them"),
                actions: vec![Action::DeleteMaps { owner_id: *owner }],
            });
        }
    }

    // Numbered directories with no live program using them.
    for (id, (path, empty)) in &s.program_dirs {
        if dir_in_use(*id) {
            continue;
        }
        let reason = if *empty {
            format!("directory {path} is empty and no program uses it")
        } else {
            format!("pin directory {path} has no program row using it")
        };
        items.push(GcItem {
            kind: GcKind::Directory,
            subject: path.clone(),
            reason,
            actions: vec![Action::RemoveTree { path: path.clone() }],
        });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const FS: &str = "/fs";

    fn healthy() -> GcSnapshot {
        let mut s = GcSnapshot::default();
        s.programs.push(fixtures::program(10, 10, FS));
        s.live_programs.insert(ProgramId(10));
        s.pins.insert("/fs/10/p".into());
        s.program_dirs
            .insert(ProgramId(10), ("/fs/10".into(), false));
        s.links.push(LinkRecord {
            kernel_link_id: Some(KernelLinkId(55)),
            ..fixtures::link(1, 10, FS)
        });
        s.live_links.insert(KernelLinkId(55));
        s.pins.insert("/fs/links/1".into());
        s.link_pins.insert(LinkId(1), "/fs/links/1".into());
        s
    }

    #[test]
    fn clean_state_has_nothing_to_collect() {
        assert!(plan_gc(&healthy()).is_empty());
    }

    #[test]
    fn dead_program_takes_its_links_and_dir() {
        let mut s = healthy();
        s.live_programs.clear();
        let items = plan_gc(&s);
        let kinds: Vec<_> = items.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [GcKind::Program, GcKind::Link, GcKind::Directory]);
        assert!(
            items[0]
                .actions
                .contains(&Action::DeleteProgram { id: ProgramId(10) })
        );
    }

    #[test]
    fn orphan_pins_and_dirs_are_found() {
        let mut s = healthy();
        s.link_pins.insert(LinkId(7), "/fs/links/7".into());
        s.program_dirs
            .insert(ProgramId(99), ("/fs/99".into(), true));
        let items = plan_gc(&s);
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0].actions,
            vec![Action::Unpin {
                path: "/fs/links/7".into()
            }]
        );
        assert!(items[1].reason.contains("empty"));
    }

    #[test]
    fn shared_map_dir_survives_owner_unload() {
        let mut s = GcSnapshot::default();
        // Program 11 uses the maps of 10, which was unloaded.
        s.programs.push(fixtures::program(11, 10, FS));
        s.live_programs.insert(ProgramId(11));
        s.pins.insert("/fs/11/p".into());
        s.program_dirs
            .insert(ProgramId(10), ("/fs/10".into(), false));
        s.program_dirs
            .insert(ProgramId(11), ("/fs/11".into(), false));
        assert!(plan_gc(&s).is_empty());
    }

    #[test]
    fn kind_json_matches_display() {
        use GcKind::*;
        for k in [Program, Link, Map, Pin, Directory, Volume, Dispatcher] {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json, k.as_str());
            assert_eq!(serde_json::from_value::<GcKind>(json).unwrap(), k);
        }
    }

    #[test]
    fn link_with_dead_kernel_link_is_stale() {
        let mut s = healthy();
        s.live_links.clear();
        let items = plan_gc(&s);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].kind, GcKind::Link);
    }
}
