//! CSI volumes: which maps a volume's attributes select.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::error::{CoreError, invalid};
use crate::metadata::{Metadata, Selector};
use crate::model::{MapRecord, ProgramRecord};
use crate::{PROGRAM_NAME_KEY, ProgramId};

/// Attribute prefix kubelet uses for pod information.
pub const K8S_PREFIX: &str = "csi.storage.k8s.io/";
/// Attribute prefix for bpfman's own volume options.
pub const BPFMAN_PREFIX: &str = "csi.bpfman.io/";
/// Upstream-style attribute naming a program (matches `bpfman.io/ProgramName`).
pub const PROGRAM_ATTR: &str = "csi.bpfman.io/program";
/// Upstream-style attribute limiting the volume to some maps (`a,b`).
pub const MAPS_ATTR: &str = "csi.bpfman.io/maps";

/// A request to publish a volume, as the CSI layer hands it to the manager.
///
/// By the time the manager sees it, `volume_id` is a safe token (non-empty, at
/// most 128 bytes, no `/`, NUL or control characters, not `.` or `..`) and
/// `target_path` is absolute, normalised, free of symlinks up to its parent
/// and strictly inside the kubelet pods directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// Volume id chosen by kubelet (`csi-<sha256>` for inline volumes).
    pub volume_id: String,
    /// Where the volume must appear (created when missing).
    pub target_path: std::path::PathBuf,
    /// `volume_context`: the pod's `volumeAttributes` plus kubelet's pod-info
    /// keys (`csi.storage.k8s.io/...`). Secrets are never included.
    pub attributes: BTreeMap<String, String>,
    /// Publish read-only (requested, or implied by a reader-only access mode).
    pub readonly: bool,
    /// Group that should own the volume's files (the pod's fsGroup), if any.
    pub fs_group: Option<u32>,
}

/// One map to re-pin into a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMap {
    /// File name inside the volume.
    pub name: String,
    /// Current pin of the map under `<fs>`.
    pub source_pin: String,
}

/// The result of planning a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumePlan {
    /// Selector used, for messages and records.
    pub selector: String,
    /// Programs matched.
    pub programs: Vec<ProgramId>,
    /// Maps to publish, sorted by name.
    pub maps: Vec<VolumeMap>,
}

/// Picks the maps for a volume from its attributes and the loaded programs
/// (each with the map rows of its map owner directory).
pub fn plan_volume(
    attributes: &BTreeMap<String, String>,
    programs: &[(ProgramRecord, Vec<MapRecord>)],
) -> Result<VolumePlan, CoreError> {
    let mut selector = Metadata::new();
    for (k, v) in attributes {
        if k.starts_with(K8S_PREFIX) || k.starts_with(BPFMAN_PREFIX) {
            continue;
        }
        selector.insert(k.clone(), v.clone());
    }
    if let Some(name) = attributes.get(PROGRAM_ATTR) {
        if name.is_empty() {
            return Err(invalid(format!("volume attribute {PROGRAM_ATTR} is empty")));
        }
        selector.insert(PROGRAM_NAME_KEY.to_string(), name.clone());
    }
    let wanted_maps: Option<BTreeSet<String>> = match attributes.get(MAPS_ATTR) {
        None => None,
        Some(list) => {
            let set: BTreeSet<String> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if set.is_empty() {
                return Err(invalid(format!(
                    "volume attribute {MAPS_ATTR} names no map"
                )));
            }
            Some(set)
        }
    };
    if selector.is_empty() {
        return Err(invalid(format!(
            "volume attributes select no program: add a metadata pair such as bpfman.io/application: NAME, or {PROGRAM_ATTR}: NAME"
        )));
    }
    let sel = Selector(selector);
    let matched: Vec<&(ProgramRecord, Vec<MapRecord>)> = programs
        .iter()
        .filter(|(p, _)| sel.matches(&p.metadata))
        .collect();
    if matched.is_empty() {
        return Err(CoreError::NotFound(format!(
            "no loaded program matches volume selector {}",
            sel.describe()
        )));
    }

    // name -> pin; the same pin reached twice (programs sharing maps) is one map.
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for (_, maps) in &matched {
        for m in maps {
            if m.name.starts_with('.') {
                continue; // .rodata/.data/.bss: internal to the program
            }
            if let Some(w) = &wanted_maps
                && !w.contains(&m.name)
            {
                continue;
            }
            match by_name.get(&m.name) {
                Some(existing) if existing != &m.pin_path => {
                    return Err(CoreError::FailedPrecondition(format!(
                        "selector {} matches two different maps named '{}' ({existing} and {}): narrow the selector or use {MAPS_ATTR}",
                        sel.describe(),
                        m.name,
                        m.pin_path
                    )));
                }
                _ => {
                    by_name.insert(m.name.clone(), m.pin_path.clone());
                }
            }
        }
    }
    if let Some(w) = &wanted_maps {
        let missing: Vec<&str> = w
            .iter()
            .filter(|n| !by_name.contains_key(*n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::NotFound(format!(
                "programs matching {} have no map named {}",
                sel.describe(),
                missing.join(", ")
            )));
        }
    }
    if by_name.is_empty() {
        return Err(CoreError::NotFound(format!(
            "programs matching {} have no maps to publish",
            sel.describe()
        )));
    }
    Ok(VolumePlan {
        selector: sel.describe(),
        programs: matched.iter().map(|(p, _)| p.id).collect(),
        maps: by_name
            .into_iter()
            .map(|(name, source_pin)| VolumeMap { name, source_pin })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const FS: &str = "/fs";

    /// Program `id`, owner of its maps, labelled `md`.
    fn prog(id: u32, md: &[(&str, &str)]) -> ProgramRecord {
        ProgramRecord {
            metadata: fixtures::metadata(md),
            ..fixtures::program(id, id, FS)
        }
    }

    /// Map rows `names` of `owner`'s directory.
    fn maps(owner: u32, names: &[&str]) -> Vec<MapRecord> {
        names
            .iter()
            .map(|n| fixtures::map_row(owner, n, FS))
            .collect()
    }

    fn attrs(a: &[(&str, &str)]) -> BTreeMap<String, String> {
        a.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seed_style_selects_by_metadata() {
        let progs = vec![
            (
                prog(1, &[("bpfman.io/application", "stats")]),
                maps(1, &["stats_map", ".rodata"]),
            ),
            (
                prog(2, &[("bpfman.io/application", "other")]),
                maps(2, &["other_map"]),
            ),
        ];
        let plan = plan_volume(
            &attrs(&[
                ("bpfman.io/application", "stats"),
                ("csi.storage.k8s.io/pod.name", "p"),
            ]),
            &progs,
        )
        .unwrap();
        assert_eq!(
            plan.maps,
            vec![VolumeMap {
                name: "stats_map".into(),
                source_pin: "/fs/1/stats_map".into()
            }]
        );
    }

    #[test]
    fn upstream_style_program_and_maps() {
        let progs = vec![(
            prog(1, &[("bpfman.io/ProgramName", "counter")]),
            maps(1, &["a", "b", "c"]),
        )];
        let plan = plan_volume(
            &attrs(&[
                ("csi.bpfman.io/program", "counter"),
                ("csi.bpfman.io/maps", "a, c"),
            ]),
            &progs,
        )
        .unwrap();
        let names: Vec<_> = plan.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        let e = plan_volume(
            &attrs(&[
                ("csi.bpfman.io/program", "counter"),
                ("csi.bpfman.io/maps", "zz"),
            ]),
            &progs,
        )
        .unwrap_err();
        assert!(matches!(e, CoreError::NotFound(m) if m.contains("zz")));
    }

    #[test]
    fn errors_are_precise() {
        let progs = vec![
            (prog(1, &[("app", "x")]), maps(1, &["m"])),
            (prog(2, &[("app", "x")]), maps(2, &["m"])),
        ];
        assert!(matches!(
            plan_volume(&attrs(&[]), &progs),
            Err(CoreError::InvalidArgument(_))
        ));
        assert!(
            matches!(plan_volume(&attrs(&[("app", "nope")]), &progs), Err(CoreError::NotFound(m)) if m.contains("app=nope"))
        );
        assert!(
            matches!(plan_volume(&attrs(&[("app", "x")]), &progs), Err(CoreError::FailedPrecondition(m)) if m.contains("'m'"))
        );
    }
}
