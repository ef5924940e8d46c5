//! Load planning: which programs of an object to load and how, which maps to
//! share, and then, once the kernel has answered, the pins and rows to make.
//!
//! Two pure steps around the kernel load: [`plan_load`] (and
//! [`LoadPlan::share_maps`]) decide before any effect; [`plan_effects`] turns
//! the plan and the kernel's ids into the ordered bpffs steps and the store
//! rows the manager executes with its undo log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::CoreError;
use crate::kind::ProgramKind;
use crate::model::{MapRecord, ProgramRecord};
use crate::paths::RuntimePaths;
use crate::section::{parse_section, supported_sections, unsupported_section};
use crate::spec::LoadSpec;
use crate::{MapId, PROGRAM_NAME_KEY, ProgramId};

/// A program found in an object file (what the kernel crate's
/// `inspect_object` reports, read from the ELF tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProgram {
    /// Function name (the name programs are loaded by).
    pub name: String,
    /// ELF section, e.g. `tracepoint/sched/sched_switch`.
    pub section: String,
    /// Kind implied by the section, when bpfman manages such programs.
    pub kind: Option<ProgramKind>,
}

/// One program to load from the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramToLoad {
    /// Function name in the object.
    pub name: String,
    /// How to load it.
    pub kind: ProgramKind,
    /// fentry/fexit target function (else taken from the ELF section).
    pub attach_fn: Option<String>,
}

/// What one load does with the object, decided before any kernel work.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadPlan {
    /// Programs to load, in the order the user named them (else the object's).
    pub programs: Vec<ProgramToLoad>,
    /// Each program's ELF section, by program name.
    pub sections: BTreeMap<String, String>,
    /// Maps reused from the map owner: map name -> its pin.
    pub reuse: BTreeMap<String, PathBuf>,
    /// The program whose directory holds the shared maps, when sharing.
    pub shared_owner: Option<ProgramId>,
    /// The object's map names (internal '.' maps included).
    pub map_names: Vec<String>,
}

/// Maps whose names start with '.' hold an object's global data; they belong
/// to each load and are neither pinned nor shared.
pub fn is_internal_map(name: &str) -> bool {
    name.starts_with('.')
}

/// True for kinds whose object bytes must be kept: dispatchers reload them as
/// extensions. TCX programs too: they attach through the TC dispatcher when
/// asked to (`tc/ingress` is a TCX section, attachable as tc).
pub fn keeps_object(kind: ProgramKind) -> bool {
    matches!(kind, ProgramKind::Xdp | ProgramKind::Tc | ProgramKind::Tcx)
}

/// Chooses the programs of an object to load (`spec.programs`, else every
/// program of a kind bpfman manages), resolves their kinds and trampoline
/// targets, and refuses a program named like a map (their pins would
/// collide). `origin` names the object in messages.
pub fn plan_load(
    spec: &LoadSpec,
    origin: &str,
    in_object: &[ObjectProgram],
    map_names: &[String],
) -> Result<LoadPlan, CoreError> {
    let mut programs = Vec::new();
    let mut sections = BTreeMap::new();
    if spec.programs.is_empty() {
        for p in in_object {
            if let Some(kind) = p.kind {
                programs.push(ProgramToLoad {
                    name: p.name.clone(),
                    kind,
                    attach_fn: None,
                });
                sections.insert(p.name.clone(), p.section.clone());
            }
        }
        if programs.is_empty() {
            let found: Vec<_> = in_object
                .iter()
                .map(|p| format!("{} in '{}'", p.name, p.section))
                .collect();
            return Err(CoreError::InvalidArgument(format!(
                "{origin} holds no program of a kind bpfman manages (it has: {}); supported \
                 sections: {}",
                found.join(", "),
                supported_sections()
            )));
        }
    } else {
        for req in &spec.programs {
            let found = in_object
                .iter()
                .find(|p| p.name == req.name)
                .ok_or_else(|| {
                    let names: Vec<_> = in_object.iter().map(|p| p.name.as_str()).collect();
                    CoreError::NotFound(format!(
                        "program '{}' is not in {origin} (it has: {})",
                        req.name,
                        names.join(", ")
                    ))
                })?;
            let kind = match (req.kind, found.kind) {
                // Probes: the section decides the direction (kprobe vs
                // kretprobe); TC and TCX share sections: the user's word decides.
                (Some(asked), Some(sec)) if asked.same_family(sec) => {
                    if sec.is_probe() {
                        sec
                    } else {
                        asked
                    }
                }
                (Some(asked), Some(sec)) => {
                    return Err(CoreError::InvalidArgument(format!(
                        "program '{}' is a {sec} program (section '{}'), not {asked}",
                        req.name, found.section
                    )));
                }
                (None, Some(sec)) => sec,
                // The kind comes from the section table, never from a guess.
                (_, None) => {
                    return Err(CoreError::InvalidArgument(
                        unsupported_section(&req.name, &found.section).unwrap_or_else(|| {
                            format!(
                                "program '{}' is in section '{}', which bpfman does not load",
                                req.name, found.section
                            )
                        }),
                    ));
                }
            };
            let attach_fn = req
                .attach_fn
                .clone()
                .or_else(|| parse_section(&found.section).and_then(|s| s.target));
            if kind.is_trampoline() && attach_fn.is_none() {
                return Err(CoreError::InvalidArgument(format!(
                    "{kind} program '{}' needs a target function: give it as {kind}:{}:FUNCTION",
                    req.name, req.name
                )));
            }
            programs.push(ProgramToLoad {
                name: req.name.clone(),
                kind,
                attach_fn,
            });
            sections.insert(req.name.clone(), found.section.clone());
        }
    }
    // Fill trampoline targets from sections when loading everything.
    for p in &mut programs {
        if p.kind.is_trampoline() && p.attach_fn.is_none() {
            p.attach_fn = sections
                .get(&p.name)
                .and_then(|s| parse_section(s))
                .and_then(|s| s.target);
        }
    }
    for p in &programs {
        if map_names.iter().any(|m| m == &p.name) {
            return Err(CoreError::InvalidArgument(format!(
                "program '{}' has the same name as a map of the object; their pins would collide",
                p.name
            )));
        }
    }
    Ok(LoadPlan {
        programs,
        sections,
        reuse: BTreeMap::new(),
        shared_owner: None,
        map_names: map_names.to_vec(),
    })
}

impl LoadPlan {
    /// Shares the maps of program `requested` (the spec's `map_owner_id`):
    /// `owner` is its record, when bpfman manages it, and `owner_maps` the map
    /// rows of its map owner's directory. Every map of the object except the
    /// internal ones must be there.
    pub fn share_maps(
        &mut self,
        requested: ProgramId,
        owner: Option<&ProgramRecord>,
        owner_maps: &[MapRecord],
    ) -> Result<(), CoreError> {
        let owner = owner.ok_or_else(|| {
            CoreError::NotFound(format!(
                "map owner program {requested} is not managed by bpfman"
            ))
        })?;
        let mut reuse = BTreeMap::new();
        for name in self.map_names.iter().filter(|n| !is_internal_map(n)) {
            let m = owner_maps.iter().find(|m| &m.name == name).ok_or_else(|| {
                CoreError::FailedPrecondition(format!(
                    "program {requested} has no map named '{name}' to share"
                ))
            })?;
            reuse.insert(name.clone(), PathBuf::from(&m.pin_path));
        }
        self.reuse = reuse;
        self.shared_owner = Some(owner.map_owner_id);
        Ok(())
    }
}

/// One bpffs effect of a load, in the order the manager performs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadStep {
    /// Create a program's directory.
    CreateDir(PathBuf),
    /// Pin a loaded program.
    PinProgram {
        /// Program name in the object.
        name: String,
        /// Where to pin it.
        pin: PathBuf,
    },
    /// Pin a map the load created.
    PinMap {
        /// Map name in the object.
        name: String,
        /// Where to pin it.
        pin: PathBuf,
    },
}

/// What the kernel load answered, in the plan's program order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// Kernel id of each planned program.
    pub program_ids: Vec<ProgramId>,
    /// Maps the load created (not reused): name and kernel map id.
    pub created_maps: Vec<(String, MapId)>,
}

/// The effects of a load after the kernel load: bpffs steps (programs, then
/// maps: a fault point sits between them) and the rows of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadEffects {
    /// Each program's directory, then its pin.
    pub program_steps: Vec<LoadStep>,
    /// The created maps' pins (none when sharing another program's maps).
    pub map_steps: Vec<LoadStep>,
    /// Program rows.
    pub programs: Vec<ProgramRecord>,
    /// Map rows.
    pub maps: Vec<MapRecord>,
    /// Programs whose object bytes the store keeps with them.
    pub keep_object: Vec<ProgramId>,
}

/// Turns a plan and the kernel's answer into the ordered effects of the load.
/// The first program owns the maps unless the plan shares another's.
pub fn plan_effects(
    spec: &LoadSpec,
    plan: &LoadPlan,
    loaded: &Loaded,
    paths: &RuntimePaths,
    created_at: i64,
) -> LoadEffects {
    let mut fx = LoadEffects::default();
    let Some(owner) = plan
        .shared_owner
        .or_else(|| loaded.program_ids.first().copied())
    else {
        return fx;
    };
    for (p, id) in plan.programs.iter().zip(&loaded.program_ids) {
        let pin = paths.program_pin(*id, &p.name);
        fx.program_steps
            .push(LoadStep::CreateDir(paths.program_dir(*id)));
        fx.program_steps.push(LoadStep::PinProgram {
            name: p.name.clone(),
            pin: pin.clone(),
        });
        let mut metadata = spec.metadata.clone();
        metadata
            .entry(PROGRAM_NAME_KEY.to_string())
            .or_insert_with(|| p.name.clone());
        fx.programs.push(ProgramRecord {
            id: *id,
            name: p.name.clone(),
            kind: p.kind,
            section: plan.sections.get(&p.name).cloned().unwrap_or_default(),
            attach_fn: p.attach_fn.clone().filter(|_| p.kind.is_trampoline()),
            source: spec.source.clone(),
            metadata,
            global_data: spec.global_data.clone(),
            map_owner_id: owner,
            map_pin_path: path_str(&paths.program_dir(owner)),
            pin_path: path_str(&pin),
            created_at,
        });
        if keeps_object(p.kind) {
            fx.keep_object.push(*id);
        }
    }
    if plan.shared_owner.is_none() {
        for (name, kernel_id) in &loaded.created_maps {
            if is_internal_map(name) {
                continue;
            }
            let pin = paths.map_pin(owner, name);
            fx.map_steps.push(LoadStep::PinMap {
                name: name.clone(),
                pin: pin.clone(),
            });
            fx.maps.push(MapRecord {
                owner_id: owner,
                name: name.clone(),
                kernel_id: *kernel_id,
                pin_path: path_str(&pin),
            });
        }
    }
    fx
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::spec::{BytecodeSource, ProgramRequest};

    fn spec(programs: Vec<ProgramRequest>) -> LoadSpec {
        LoadSpec {
            source: BytecodeSource::File {
                path: "/obj.o".into(),
            },
            programs,
            metadata: Default::default(),
            global_data: Default::default(),
            map_owner_id: None,
            pull_policy: None,
            registry_auth: None,
        }
    }

    fn req(name: &str, kind: Option<ProgramKind>, attach_fn: Option<&str>) -> ProgramRequest {
        ProgramRequest {
            name: name.into(),
            kind,
            attach_fn: attach_fn.map(Into::into),
        }
    }

    fn prog(name: &str, section: &str) -> ObjectProgram {
        ObjectProgram {
            name: name.into(),
            section: section.into(),
            kind: parse_section(section).map(|s| s.kind),
        }
    }

    fn object() -> Vec<ObjectProgram> {
        vec![
            prog("xdp_pass", "xdp"),
            prog("sock", "socket"),
            prog("open", "kretprobe/do_sys_openat2"),
            prog("tc_in", "tc"),
            prog("unlink", "fentry/do_unlinkat"),
        ]
    }

    fn maps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn planned(plan: &LoadPlan) -> Vec<(String, ProgramKind, Option<String>)> {
        plan.programs
            .iter()
            .map(|p| (p.name.clone(), p.kind, p.attach_fn.clone()))
            .collect()
    }

    fn invalid_msg(r: Result<LoadPlan, CoreError>) -> String {
        match r {
            Err(CoreError::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn no_names_selects_every_managed_program_with_section_targets() {
        let plan = plan_load(&spec(vec![]), "/obj.o", &object(), &maps(&["counts"])).unwrap();
        assert_eq!(
            planned(&plan),
            vec![
                ("xdp_pass".into(), ProgramKind::Xdp, None),
                ("open".into(), ProgramKind::Kretprobe, None),
                ("tc_in".into(), ProgramKind::Tc, None),
                (
                    "unlink".into(),
                    ProgramKind::Fentry,
                    Some("do_unlinkat".into())
                ),
            ]
        );
        assert_eq!(plan.sections["open"], "kretprobe/do_sys_openat2");
        assert!(!plan.sections.contains_key("sock"));
        assert!(plan.programs.iter().any(|p| keeps_object(p.kind)));
    }

    #[test]
    fn an_object_without_managed_programs_is_refused_with_what_it_has() {
        let m = invalid_msg(plan_load(
            &spec(vec![]),
            "/obj.o",
            &[prog("sock", "socket")],
            &[],
        ));
        assert!(
            m.starts_with(
                "/obj.o holds no program of a kind bpfman manages (it has: sock in 'socket')"
            ),
            "{m}"
        );
        assert!(m.contains("supported sections: "), "{m}");
    }

    #[test]
    fn named_programs_load_in_the_order_given() {
        let s = spec(vec![req("tc_in", None, None), req("xdp_pass", None, None)]);
        let plan = plan_load(&s, "/obj.o", &object(), &[]).unwrap();
        assert_eq!(
            planned(&plan),
            vec![
                ("tc_in".into(), ProgramKind::Tc, None),
                ("xdp_pass".into(), ProgramKind::Xdp, None)
            ]
        );
        assert!(!plan.sections.contains_key("open"));
    }

    #[test]
    fn a_name_not_in_the_object_is_not_found_listing_the_programs() {
        let s = spec(vec![req("nope", None, None)]);
        assert_eq!(
            plan_load(&s, "/obj.o", &object(), &[]),
            Err(CoreError::NotFound(
                "program 'nope' is not in /obj.o (it has: xdp_pass, sock, open, tc_in, unlink)"
                    .into()
            ))
        );
    }

    #[test]
    fn a_kind_of_another_family_is_refused() {
        let s = spec(vec![req("xdp_pass", Some(ProgramKind::Tracepoint), None)]);
        assert_eq!(
            invalid_msg(plan_load(&s, "/obj.o", &object(), &[])),
            "program 'xdp_pass' is a xdp program (section 'xdp'), not tracepoint"
        );
    }

    #[test]
    fn the_section_decides_a_probe_direction() {
        let s = spec(vec![req("open", Some(ProgramKind::Kprobe), None)]);
        let plan = plan_load(&s, "/obj.o", &object(), &[]).unwrap();
        assert_eq!(plan.programs[0].kind, ProgramKind::Kretprobe);
    }

    #[test]
    fn the_user_decides_tc_or_tcx() {
        for asked in [ProgramKind::Tc, ProgramKind::Tcx] {
            let s = spec(vec![req("tc_in", Some(asked), None)]);
            let plan = plan_load(&s, "/obj.o", &object(), &[]).unwrap();
            assert_eq!(plan.programs[0].kind, asked);
        }
    }

    #[test]
    fn an_unmanaged_section_is_explained() {
        let s = spec(vec![req("sock", None, None)]);
        let m = invalid_msg(plan_load(&s, "/obj.o", &object(), &[]));
        assert_eq!(Some(m), unsupported_section("sock", "socket"));
    }

    #[test]
    fn a_trampoline_needs_a_target_from_the_user_or_the_section() {
        let bare = [prog("f", "fentry")];
        let s = spec(vec![req("f", None, None)]);
        assert_eq!(
            invalid_msg(plan_load(&s, "/obj.o", &bare, &[])),
            "fentry program 'f' needs a target function: give it as fentry:f:FUNCTION"
        );
        let s = spec(vec![req("f", None, Some("vfs_read"))]);
        let plan = plan_load(&s, "/obj.o", &bare, &[]).unwrap();
        assert_eq!(plan.programs[0].attach_fn.as_deref(), Some("vfs_read"));
        // The user's target wins over the section's.
        let s = spec(vec![req("unlink", None, Some("vfs_read"))]);
        let plan = plan_load(&s, "/obj.o", &object(), &[]).unwrap();
        assert_eq!(plan.programs[0].attach_fn.as_deref(), Some("vfs_read"));
    }

    #[test]
    fn a_program_named_like_a_map_is_refused() {
        let s = spec(vec![req("xdp_pass", None, None)]);
        assert_eq!(
            invalid_msg(plan_load(&s, "/obj.o", &object(), &maps(&["xdp_pass"]))),
            "program 'xdp_pass' has the same name as a map of the object; their pins would collide"
        );
        // A map named like a program that is not loaded is fine.
        let s = spec(vec![req("tc_in", None, None)]);
        assert!(plan_load(&s, "/obj.o", &object(), &maps(&["xdp_pass"])).is_ok());
    }

    /// The bpffs directory of the store rows below.
    const FS: &str = "/run/fs";

    fn shared_plan() -> LoadPlan {
        let s = spec(vec![req("xdp_pass", None, None)]);
        plan_load(&s, "/obj.o", &object(), &maps(&["counts", ".rodata"])).unwrap()
    }

    #[test]
    fn sharing_reuses_the_owner_directory_maps_except_internal_ones() {
        let mut plan = shared_plan();
        // Program 7 itself shares the maps of 3: the directory is 3's.
        let rows = [
            fixtures::map_row(3, "counts", FS),
            fixtures::map_row(3, "other", FS),
        ];
        plan.share_maps(ProgramId(7), Some(&fixtures::program(7, 3, FS)), &rows)
            .unwrap();
        assert_eq!(plan.shared_owner, Some(ProgramId(3)));
        assert_eq!(
            plan.reuse,
            BTreeMap::from([("counts".to_string(), PathBuf::from("/run/fs/3/counts"))])
        );
    }

    #[test]
    fn sharing_needs_a_managed_owner_holding_every_map() {
        let mut plan = shared_plan();
        assert_eq!(
            plan.share_maps(ProgramId(7), None, &[]),
            Err(CoreError::NotFound(
                "map owner program 7 is not managed by bpfman".into()
            ))
        );
        assert_eq!(
            plan.share_maps(
                ProgramId(7),
                Some(&fixtures::program(7, 7, FS)),
                &[fixtures::map_row(7, "other", FS)]
            ),
            Err(CoreError::FailedPrecondition(
                "program 7 has no map named 'counts' to share".into()
            ))
        );
        assert_eq!(plan.shared_owner, None);
        assert!(plan.reuse.is_empty());
    }

    #[test]
    fn effects_pin_programs_then_owned_maps_skipping_internal_ones() {
        let s = spec(vec![req("xdp_pass", None, None), req("open", None, None)]);
        let plan = plan_load(&s, "/obj.o", &object(), &maps(&["counts", ".bss"])).unwrap();
        let paths = RuntimePaths::new("/run/b");
        let loaded = Loaded {
            program_ids: vec![ProgramId(11), ProgramId(12)],
            created_maps: vec![("counts".into(), MapId(5)), (".bss".into(), MapId(6))],
        };
        let fx = plan_effects(&s, &plan, &loaded, &paths, 42);
        assert_eq!(
            fx.program_steps,
            vec![
                LoadStep::CreateDir(paths.program_dir(ProgramId(11))),
                LoadStep::PinProgram {
                    name: "xdp_pass".into(),
                    pin: paths.program_pin(ProgramId(11), "xdp_pass")
                },
                LoadStep::CreateDir(paths.program_dir(ProgramId(12))),
                LoadStep::PinProgram {
                    name: "open".into(),
                    pin: paths.program_pin(ProgramId(12), "open")
                },
            ]
        );
        assert_eq!(
            fx.map_steps,
            vec![LoadStep::PinMap {
                name: "counts".into(),
                pin: paths.map_pin(ProgramId(11), "counts")
            }]
        );
        assert_eq!(fx.maps.len(), 1);
        assert_eq!(
            (fx.maps[0].owner_id, fx.maps[0].kernel_id),
            (ProgramId(11), MapId(5))
        );
        assert!(fx.programs.iter().all(|r| r.map_owner_id == ProgramId(11)));
        assert_eq!(fx.programs[1].section, "kretprobe/do_sys_openat2");
        assert_eq!(fx.programs[1].created_at, 42);
        assert_eq!(fx.programs[0].metadata[PROGRAM_NAME_KEY], "xdp_pass");
        assert_eq!(fx.keep_object, vec![ProgramId(11)]);
    }

    #[test]
    fn effects_of_a_sharing_load_pin_no_map() {
        let mut plan = shared_plan();
        plan.share_maps(
            ProgramId(7),
            Some(&fixtures::program(7, 3, FS)),
            &[fixtures::map_row(3, "counts", FS)],
        )
        .unwrap();
        let paths = RuntimePaths::new("/run/b");
        let loaded = Loaded {
            program_ids: vec![ProgramId(20)],
            created_maps: vec![(".rodata".into(), MapId(8))],
        };
        let fx = plan_effects(&spec(vec![]), &plan, &loaded, &paths, 0);
        assert!(fx.map_steps.is_empty() && fx.maps.is_empty());
        assert_eq!(fx.programs[0].map_owner_id, ProgramId(3));
        assert_eq!(
            fx.programs[0].map_pin_path,
            path_str(&paths.program_dir(ProgramId(3)))
        );
    }
}
