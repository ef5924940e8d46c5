//! Where network attachments live in bpffs (a contract: see README.md).
//!
//! ```text
//! <fs>/dispatchers/
//!   xdp/<netns_ino>_<ifindex>/                 one XDP hook (LIBXDP_BPFFS for xdp-loader)
//!     link-native | link-skb                   the interface's XDP bpf_link, updated in place
//!     direct-<link_id>                         single-program mode: the program attached directly
//!     xdp/dispatch-<ifindex>-<prog_id>/        the dispatcher revision (libxdp's naming)
//!       dispatcher                             the dispatcher program
//!       prog<N>-prog, prog<N>-link             slot N: extension program and its freplace link
//!       slot<N>-link<link_id>                  slot N belongs to bpfman link <link_id>
//!   tc/<netns_ino>_<ifindex>/                  one interface's TC hooks
//!     clsact-created                           (empty dir) bpfman added the clsact qdisc
//!     ingress/ | egress/                       one TC hook
//!       direct-<link_id>                       single-program mode
//!       dispatch-<ifindex>-<prog_id>/          the dispatcher revision, same content as XDP
//! <fs>/links/<link_id>                         TCX links, like every other link
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bpfman_core::dispatcher::{HookKey, HookKind};
use bpfman_core::spec::Direction;
use bpfman_core::{LinkId, ProgramId, RuntimePaths};

use crate::error::NetError;

/// Pin layout for network attachments, derived from bpfman's runtime paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPaths {
    fs: PathBuf,
    extensions_disabled: bool,
}

impl NetPaths {
    /// The layout under `<runtime>/fs` (which must be a mounted bpffs).
    pub fn new(paths: &RuntimePaths) -> NetPaths {
        NetPaths::from_bpffs(paths.fs())
    }

    /// The layout under an explicit bpffs directory.
    pub fn from_bpffs(fs: impl Into<PathBuf>) -> NetPaths {
        NetPaths {
            fs: fs.into(),
            extensions_disabled: false,
        }
    }

    /// Never use dispatchers: behave as on a kernel that refuses extension
    /// programs (one XDP program and one TC program per hook, attached
    /// directly). For configurations that want no dispatcher, and for tests
    /// of that mode on kernels that would allow extensions.
    pub fn without_extensions(mut self) -> NetPaths {
        self.extensions_disabled = true;
        self
    }

    /// True when [`NetPaths::without_extensions`] was applied.
    pub fn extensions_disabled(&self) -> bool {
        self.extensions_disabled
    }

    /// The bpffs root.
    pub fn fs(&self) -> &Path {
        &self.fs
    }

    /// `<fs>/dispatchers`.
    pub fn dispatchers_dir(&self) -> PathBuf {
        self.fs.join("dispatchers")
    }

    /// `<fs>/dispatchers/xdp/<netns_ino>_<ifindex>`: one XDP hook. Also the
    /// directory to give `xdp-loader status` as `LIBXDP_BPFFS`.
    pub fn xdp_hook_dir(&self, netns_ino: u64, ifindex: u32) -> PathBuf {
        self.dispatchers_dir()
            .join("xdp")
            .join(format!("{netns_ino}_{ifindex}"))
    }

    /// `<fs>/dispatchers/tc/<netns_ino>_<ifindex>`: both TC hooks of an interface.
    pub fn tc_iface_dir(&self, netns_ino: u64, ifindex: u32) -> PathBuf {
        self.dispatchers_dir()
            .join("tc")
            .join(format!("{netns_ino}_{ifindex}"))
    }

    /// `<fs>/dispatchers/tc/<netns_ino>_<ifindex>/<direction>`: one TC hook.
    pub fn tc_hook_dir(&self, netns_ino: u64, ifindex: u32, direction: Direction) -> PathBuf {
        self.tc_iface_dir(netns_ino, ifindex)
            .join(direction_name(direction))
    }

    /// The pin directory of a dispatcher hook; `None` for TCX (links live
    /// under `<fs>/links`).
    pub fn hook_dir(&self, key: &HookKey) -> Option<PathBuf> {
        match key.kind {
            HookKind::Xdp => Some(self.xdp_hook_dir(key.netns_ino, key.ifindex)),
            HookKind::TcIngress => {
                Some(self.tc_hook_dir(key.netns_ino, key.ifindex, Direction::Ingress))
            }
            HookKind::TcEgress => {
                Some(self.tc_hook_dir(key.netns_ino, key.ifindex, Direction::Egress))
            }
            HookKind::TcxIngress | HookKind::TcxEgress => None,
        }
    }

    /// `<fs>/links/<link_id>`: where a TCX link is pinned.
    pub fn link_pin(&self, link_id: LinkId) -> PathBuf {
        self.fs.join("links").join(link_id.to_string())
    }

    /// Every dispatcher hook that has pins, for gc and start-up reconciliation.
    pub fn list_hooks(&self) -> Result<Vec<HookKey>, NetError> {
        let mut out = Vec::new();
        for (ino, ifindex, _) in numbered_dirs(&self.dispatchers_dir().join("xdp"))? {
            out.push(HookKey {
                kind: HookKind::Xdp,
                netns_ino: ino,
                ifindex,
            });
        }
        for (ino, ifindex, dir) in numbered_dirs(&self.dispatchers_dir().join("tc"))? {
            for (direction, kind) in [
                (Direction::Ingress, HookKind::TcIngress),
                (Direction::Egress, HookKind::TcEgress),
            ] {
                if dir.join(direction_name(direction)).is_dir() {
                    out.push(HookKey {
                        kind,
                        netns_ino: ino,
                        ifindex,
                    });
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `ingress` / `egress`.
pub(crate) fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

/// `<ino>_<ifindex>` directories of `dir`.
fn numbered_dirs(dir: &Path) -> Result<Vec<(u64, u32, PathBuf)>, NetError> {
    let mut out = Vec::new();
    for name in read_dir_names(dir)? {
        if let Some((a, b)) = name.split_once('_')
            && let (Ok(ino), Ok(ifindex)) = (a.parse::<u64>(), b.parse::<u32>())
        {
            out.push((ino, ifindex, dir.join(&name)));
        }
    }
    Ok(out)
}

/// Names in a directory; a missing directory is empty.
pub(crate) fn read_dir_names(dir: &Path) -> Result<Vec<String>, NetError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::io("listing", dir, e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| NetError::io("listing", dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Creates a directory and its parents (bpffs supports mkdir).
pub(crate) fn mkdir_p(dir: &Path) -> Result<(), NetError> {
    fs::create_dir_all(dir).map_err(|e| NetError::io("creating directory", dir, e))
}

/// Removes a pin; absent is fine.
pub(crate) fn unpin(path: &Path) -> Result<(), NetError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("unpinning", path, e)),
    }
}

/// Removes a directory of pins and subdirectories; absent is fine. Unpinning
/// a link releases it (detaches it) once no descriptor holds it.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), NetError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("removing", dir, e)),
    }
}

/// Removes `dir` if it is empty; anything else is left alone.
pub(crate) fn remove_if_empty(dir: &Path) {
    // ENOTEMPTY and ENOENT are both fine here: the directory is in use or gone.
    let _ = fs::remove_dir(dir);
}

/// Removes `dir` and its parents while empty, up to (not including)
/// `<fs>/dispatchers`.
pub(crate) fn prune_up(paths: &NetPaths, dir: &Path) {
    let top = paths.dispatchers_dir();
    for d in dir.ancestors() {
        if !d.starts_with(&top) || d == top {
            break;
        }
        remove_if_empty(d);
    }
}

/// A dispatcher revision directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevisionPins {
    pub(crate) dir: PathBuf,
    /// Kernel id of the dispatcher program (from the directory name).
    pub(crate) dispatcher_id: ProgramId,
    /// `(slot, link_id)` pairs from the `slot<N>-link<ID>` pins, by slot.
    pub(crate) slots: Vec<(u32, LinkId)>,
}

impl RevisionPins {
    pub(crate) fn prog_pin(&self, slot: u32) -> PathBuf {
        self.dir.join(format!("prog{slot}-prog"))
    }
    pub(crate) fn link_pin(&self, slot: u32) -> PathBuf {
        self.dir.join(format!("prog{slot}-link"))
    }
    pub(crate) fn dispatcher_pin(&self) -> PathBuf {
        self.dir.join("dispatcher")
    }
    /// The slot of `link_id` in this revision.
    pub(crate) fn slot_of(&self, link_id: LinkId) -> Option<u32> {
        self.slots
            .iter()
            .find(|(_, l)| *l == link_id)
            .map(|(s, _)| *s)
    }
}

/// Name of a revision directory.
pub(crate) fn revision_name(ifindex: u32, dispatcher_id: ProgramId) -> String {
    format!("dispatch-{ifindex}-{dispatcher_id}")
}

/// Name of the pin recording that slot `slot` belongs to link `link_id`.
pub(crate) fn slot_marker(slot: u32, link_id: LinkId) -> String {
    format!("slot{slot}-link{link_id}")
}

/// Reads the revision directories under `parent`.
pub(crate) fn read_revisions(parent: &Path) -> Result<Vec<RevisionPins>, NetError> {
    let mut out = Vec::new();
    for name in read_dir_names(parent)? {
        let Some(rest) = name.strip_prefix("dispatch-") else {
            continue;
        };
        let Some((_, id)) = rest.split_once('-') else {
            continue;
        };
        let Ok(dispatcher_id) = id.parse::<ProgramId>() else {
            continue;
        };
        let dir = parent.join(&name);
        let mut slots = Vec::new();
        for pin in read_dir_names(&dir)? {
            if let Some(rest) = pin.strip_prefix("slot")
                && let Some((s, l)) = rest.split_once("-link")
                && let (Ok(s), Ok(l)) = (s.parse::<u32>(), l.parse::<LinkId>())
            {
                slots.push((s, l));
            }
        }
        slots.sort();
        out.push(RevisionPins {
            dir,
            dispatcher_id,
            slots,
        });
    }
    Ok(out)
}

/// `direct-<link_id>` pins of a hook directory: `(link_id, path)`.
pub(crate) fn read_direct(hook: &Path) -> Result<Vec<(LinkId, PathBuf)>, NetError> {
    let mut out = Vec::new();
    for name in read_dir_names(hook)? {
        if let Some(id) = name.strip_prefix("direct-")
            && let Ok(id) = id.parse::<LinkId>()
        {
            out.push((id, hook.join(&name)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let p = NetPaths::new(&RuntimePaths::new("/run/bpfman"));
        assert_eq!(
            p.xdp_hook_dir(4026531840, 3),
            PathBuf::from("/run/bpfman/fs/dispatchers/xdp/4026531840_3")
        );
        assert_eq!(
            p.tc_hook_dir(7, 2, Direction::Egress),
            PathBuf::from("/run/bpfman/fs/dispatchers/tc/7_2/egress")
        );
        assert_eq!(
            p.link_pin(LinkId(9)),
            PathBuf::from("/run/bpfman/fs/links/9")
        );
        let key = HookKey {
            kind: HookKind::TcxIngress,
            netns_ino: 1,
            ifindex: 1,
        };
        assert_eq!(p.hook_dir(&key), None);
        assert_eq!(revision_name(3, ProgramId(88)), "dispatch-3-88");
        assert_eq!(slot_marker(2, LinkId(17)), "slot2-link17");
    }

    #[test]
    fn reads_revisions_and_hooks_from_plain_dirs() {
        // The parsing only looks at names, so an ordinary directory works.
        let t = tempfile::tempdir().unwrap();
        let p = NetPaths::from_bpffs(t.path());
        let rev = p.xdp_hook_dir(5, 2).join("xdp").join("dispatch-2-40");
        fs::create_dir_all(&rev).unwrap();
        for n in ["slot1-link9", "slot0-link12", "prog0-prog", "dispatcher"] {
            fs::write(rev.join(n), b"").unwrap();
        }
        fs::create_dir_all(p.tc_hook_dir(5, 3, Direction::Egress)).unwrap();
        fs::write(p.xdp_hook_dir(5, 2).join("direct-4"), b"").unwrap();
        let revs = read_revisions(&p.xdp_hook_dir(5, 2).join("xdp")).unwrap();
        assert_eq!(revs.len(), 1);
        assert_eq!(revs[0].dispatcher_id, ProgramId(40));
        assert_eq!(revs[0].slots, vec![(0, LinkId(12)), (1, LinkId(9))]);
        assert_eq!(revs[0].slot_of(LinkId(9)), Some(1));
        assert_eq!(read_direct(&p.xdp_hook_dir(5, 2)).unwrap()[0].0, LinkId(4));
        let hooks = p.list_hooks().unwrap();
        assert_eq!(
            hooks,
            vec![
                HookKey {
                    kind: HookKind::Xdp,
                    netns_ino: 5,
                    ifindex: 2
                },
                HookKey {
                    kind: HookKind::TcEgress,
                    netns_ino: 5,
                    ifindex: 3
                },
            ]
        );
    }
}
