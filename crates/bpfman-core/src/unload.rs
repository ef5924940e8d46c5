//! Unload planning: which pins and directories an unload removes, and
//! whether the map owner's maps go with it.

use std::path::PathBuf;

use crate::ProgramId;
use crate::attach::dispatcher_hooks;
use crate::model::{LinkRecord, MapRecord, NetLinkRecord, ProgramRecord};
use crate::paths::RuntimePaths;
use crate::spec::XdpMode;

/// What one unload removes, in the order the manager removes it (a fault
/// point sits after the links, the program pin, and the maps and dirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloadPlan {
    /// The dispatcher hooks its links are on, each once, with their XDP
    /// mode: re-applied first without those links.
    pub hooks: Vec<(NetLinkRecord, XdpMode)>,
    /// Pins of the links that are not a dispatcher's, in link order (the
    /// dispatcher links are detached through their hooks first).
    pub link_pins: Vec<PathBuf>,
    /// The program's own pin.
    pub program_pin: PathBuf,
    /// The map owner directory's map pins, when no other program uses them.
    pub map_pins: Vec<PathBuf>,
    /// Directories to remove if empty, after the map pins.
    pub dirs: Vec<PathBuf>,
    /// True when the owner's map rows go too (the last user is leaving).
    pub remove_maps: bool,
}

/// Plans the unload of `prog`: `links` are its links (`net` the hook rows of
/// those that have one), `map_users` every program using its map owner's
/// directory (itself included) and `owner_maps` that directory's rows.
pub fn plan_unload(
    prog: &ProgramRecord,
    links: &[LinkRecord],
    net: &[NetLinkRecord],
    map_users: &[ProgramId],
    owner_maps: &[MapRecord],
    paths: &RuntimePaths,
) -> UnloadPlan {
    let owner = prog.map_owner_id;
    let refs: Vec<&LinkRecord> = links.iter().collect();
    let hooks = dispatcher_hooks(&refs, net);
    let dispatched = |l: &LinkRecord| {
        net.iter()
            .any(|n| n.link_id == l.id && n.hook.kind.uses_dispatcher())
    };
    // The owner's directory goes when its last user goes, unless the owner
    // itself is still recorded (then its own unload removes it).
    let remove_maps = map_users.iter().all(|p| *p == prog.id);
    let mut map_pins = Vec::new();
    let mut dirs = Vec::new();
    if remove_maps {
        map_pins.extend(owner_maps.iter().map(|m| PathBuf::from(&m.pin_path)));
        dirs.push(paths.program_dir(owner));
    }
    // A sharer's own directory holds only its program pin. The owner's
    // directory went above with the maps, or stays for the other users.
    if owner != prog.id {
        dirs.push(paths.program_dir(prog.id));
    }
    UnloadPlan {
        hooks,
        link_pins: links
            .iter()
            .filter(|l| !dispatched(l))
            .map(|l| PathBuf::from(&l.pin_path))
            .collect(),
        program_pin: PathBuf::from(&prog.pin_path),
        map_pins,
        dirs,
        remove_maps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LinkId;
    use crate::dispatcher::{HookKey, HookKind};
    use crate::fixtures;

    fn paths() -> RuntimePaths {
        RuntimePaths::new("/rt")
    }

    /// The bpffs directory of `paths()`.
    const FS: &str = "/rt/fs";

    fn pb(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn the_last_user_owner_takes_its_maps_and_directory() {
        let plan = plan_unload(
            &fixtures::program(1, 1, FS),
            &[],
            &[],
            &[ProgramId(1)],
            &[fixtures::map_row(1, "m", FS)],
            &paths(),
        );
        assert_eq!(plan.program_pin, pb("/rt/fs/1/p"));
        assert_eq!(plan.map_pins, vec![pb("/rt/fs/1/m")]);
        assert_eq!(plan.dirs, vec![pb("/rt/fs/1")]);
        assert!(plan.remove_maps);
    }

    #[test]
    fn an_owner_with_sharers_leaves_its_maps_and_directory() {
        let plan = plan_unload(
            &fixtures::program(1, 1, FS),
            &[],
            &[],
            &[ProgramId(1), ProgramId(2)],
            &[fixtures::map_row(1, "m", FS)],
            &paths(),
        );
        assert!(plan.map_pins.is_empty() && plan.dirs.is_empty());
        assert!(!plan.remove_maps);
    }

    #[test]
    fn a_sharer_removes_its_own_directory_and_the_maps_when_last() {
        let plan = plan_unload(
            &fixtures::program(2, 1, FS),
            &[],
            &[],
            &[ProgramId(1), ProgramId(2)],
            &[fixtures::map_row(1, "m", FS)],
            &paths(),
        );
        assert_eq!(plan.dirs, vec![pb("/rt/fs/2")]);
        assert!(plan.map_pins.is_empty() && !plan.remove_maps);
        // The owner was unloaded before: the last sharer cleans its directory.
        let plan = plan_unload(
            &fixtures::program(2, 1, FS),
            &[],
            &[],
            &[ProgramId(2)],
            &[fixtures::map_row(1, "m", FS)],
            &paths(),
        );
        assert_eq!(plan.map_pins, vec![pb("/rt/fs/1/m")]);
        assert_eq!(plan.dirs, vec![pb("/rt/fs/1"), pb("/rt/fs/2")]);
        assert!(plan.remove_maps);
    }

    #[test]
    fn dispatcher_links_are_left_to_their_hooks() {
        let links = [
            fixtures::link(5, 1, FS),
            fixtures::link(6, 1, FS),
            fixtures::link(7, 1, FS),
        ];
        let hook = |link, kind| NetLinkRecord {
            link_id: LinkId(link),
            hook: HookKey {
                kind,
                netns_ino: 1,
                ifindex: 2,
            },
            iface: "eth0".into(),
            netns: None,
        };
        // 6 is on the XDP dispatcher; 7 is a TCX link, pinned like 5.
        let net = [hook(6, HookKind::Xdp), hook(7, HookKind::TcxIngress)];
        let plan = plan_unload(
            &fixtures::program(1, 1, FS),
            &links,
            &net,
            &[ProgramId(1)],
            &[],
            &paths(),
        );
        assert_eq!(
            plan.link_pins,
            vec![pb("/rt/fs/links/5"), pb("/rt/fs/links/7")]
        );
        assert_eq!(plan.hooks, vec![(net[0].clone(), XdpMode::Native)]);
    }
}
