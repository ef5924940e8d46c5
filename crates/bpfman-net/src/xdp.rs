//! XDP hooks: the interface runs one bpf_link (pinned, so it survives
//! restarts) whose program is the dispatcher, or the single program when
//! extension programs are refused. Swaps update that link in place.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use bpfman_core::KernelLinkId;
use bpfman_core::dispatcher::{HookKey, HookKind};
use bpfman_core::spec::XdpMode;

use crate::dispatcher::Flavor;
use crate::error::NetError;
use crate::hook::{self, DesiredProgram, HookOps, HookState};
use crate::layout::{NetPaths, mkdir_p, prune_up, remove_tree, unpin};
use crate::lock::HookLock;
use crate::netns::{Iface, Presence, presence};
use aya_obj::generated::{XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, bpf_link_info, bpf_link_type};
use bpfman_kernel::sys::{self, IdSpace};

/// Makes the XDP hook of `iface` run exactly `desired` (any order: run order
/// is priority, then attach order, then link id) in `mode`. An empty set
/// removes the dispatcher, the link and every pin of the hook.
///
/// When `iface` no longer exists as recorded (namespace deleted, interface
/// gone), the hook's pins are removed; that is success for an empty set and
/// `NotFound` otherwise.
pub fn apply_xdp(
    paths: &NetPaths,
    iface: &Iface,
    mode: XdpMode,
    desired: &[DesiredProgram],
) -> Result<HookState, NetError> {
    let key = iface.key(HookKind::Xdp);
    let hook_dir = paths.xdp_hook_dir(iface.netns_ino, iface.ifindex);
    let _lock = HookLock::acquire(paths)?;
    // xdp-loader reads the revision pins under libxdp's own lock.
    let _libxdp = HookLock::acquire_libxdp(&hook_dir.join("xdp"))?;
    match presence(iface)? {
        Presence::Vanished(why) => {
            forget(paths, &hook_dir)?;
            if desired.is_empty() {
                Ok(HookState::empty(key, &hook_dir, true))
            } else {
                Err(NetError::NotFound(why))
            }
        }
        Presence::Live(ns) => ns.run(|| {
            let mut ops = XdpOps::new(hook_dir.clone(), iface, Some(mode));
            hook::apply(&mut ops, paths, desired)
        }),
    }
}

/// Removes the pins of an XDP hook whose interface is gone. Unpinning the
/// link releases it, so this is also safe if the interface still exists.
pub(crate) fn forget(paths: &NetPaths, hook_dir: &Path) -> Result<(), NetError> {
    remove_tree(hook_dir)?;
    prune_up(paths, hook_dir);
    Ok(())
}

/// Reads the XDP hook of `iface` back; `None` if bpfman has nothing there.
pub(crate) fn xdp_state(paths: &NetPaths, iface: &Iface) -> Result<Option<HookState>, NetError> {
    let hook_dir = paths.xdp_hook_dir(iface.netns_ino, iface.ifindex);
    // The link says everything needed; no need to enter the namespace.
    let mut ops = XdpOps::new(hook_dir, iface, None);
    hook::read_state(&mut ops)
}

/// The interface's pinned XDP link.
struct HookLink {
    pin: PathBuf,
    mode: XdpMode,
    fd: OwnedFd,
    info: bpf_link_info,
}

struct XdpOps<'a> {
    hook_dir: PathBuf,
    iface: &'a Iface,
    /// Requested mode (None when only reading).
    mode: Option<XdpMode>,
    link: Option<HookLink>,
    loaded: bool,
}

impl<'a> XdpOps<'a> {
    fn new(hook_dir: PathBuf, iface: &'a Iface, mode: Option<XdpMode>) -> Self {
        XdpOps {
            hook_dir,
            iface,
            mode,
            link: None,
            loaded: false,
        }
    }

    fn link_pin(&self, mode: XdpMode) -> PathBuf {
        self.hook_dir.join(format!("link-{}", mode.as_str()))
    }

    fn load_link(&mut self) -> Result<(), NetError> {
        if self.loaded {
            return Ok(());
        }
        self.loaded = true;
        for mode in [XdpMode::Native, XdpMode::Skb] {
            let pin = self.link_pin(mode);
            match sys::open_link(&pin) {
                Ok((fd, info)) => {
                    self.link = Some(HookLink {
                        pin,
                        mode,
                        fd,
                        info,
                    });
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NetError::io("opening XDP link", &pin, e)),
            }
        }
        Ok(())
    }

    /// The link, if it is still attached to our interface (after the
    /// device is gone the kernel reports ifindex 0).
    fn live_link(&self) -> Option<&HookLink> {
        self.link.as_ref().filter(|l| {
            l.info.type_ == bpf_link_type::BPF_LINK_TYPE_XDP as u32
                && sys::link_ifindex(&l.info) == Some(self.iface.ifindex)
        })
    }
}

impl HookOps for XdpOps<'_> {
    fn key(&self) -> HookKey {
        self.iface.key(HookKind::Xdp)
    }
    fn flavor(&self) -> Flavor {
        Flavor::Xdp
    }
    fn hook_dir(&self) -> &Path {
        &self.hook_dir
    }
    fn revisions_dir(&self) -> PathBuf {
        // libxdp's layout: <LIBXDP_BPFFS>/xdp/dispatch-<ifindex>-<id>.
        self.hook_dir.join("xdp")
    }
    fn scope(&self) -> &'static str {
        "interface"
    }

    fn running(&mut self) -> Result<Option<u32>, NetError> {
        self.load_link()?;
        Ok(self.live_link().map(|l| l.info.prog_id))
    }

    fn precheck(&mut self) -> Result<(), NetError> {
        self.load_link()?;
        if let (Some(l), Some(want)) = (self.live_link(), self.mode)
            && l.mode != want
        {
            return Err(NetError::Conflict(format!(
                "XDP programs on {} run in {} mode; all bpfman XDP programs on an interface share one mode: attach with --mode {} or detach them first",
                self.iface.describe(),
                l.mode.as_str(),
                l.mode.as_str()
            )));
        }
        Ok(())
    }

    fn attach(
        &mut self,
        prog: BorrowedFd<'_>,
        _name: &str,
        expected: Option<u32>,
    ) -> Result<(), NetError> {
        self.load_link()?;
        if let Some(l) = self.live_link() {
            // Atomic: the interface runs the old program until this returns
            // and the new one from then on. BPF_F_REPLACE makes it fail if
            // someone else changed the link meanwhile.
            let old = expected.and_then(|id| sys::get_fd_by_id(IdSpace::Program, id).ok());
            return sys::link_update(l.fd.as_fd(), prog, old.as_ref().map(|f| f.as_fd())).map_err(
                |e| {
                    if e.raw_os_error() == Some(libc::EPERM) && old.is_some() {
                        NetError::Conflict(format!(
                            "the XDP link on {} changed while bpfman was updating it; retry",
                            self.iface.describe()
                        ))
                    } else {
                        NetError::kernel(
                            format!("updating the XDP link on {}", self.iface.describe()),
                            e,
                        )
                    }
                },
            );
        }
        // No live link: a stale pin (device gone and back) is replaced.
        if let Some(stale) = self.link.take() {
            unpin(&stale.pin)?;
        }
        let mode = self.mode.unwrap_or_default();
        let flags = match mode {
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Skb => XDP_FLAGS_SKB_MODE,
        };
        let fd = sys::link_create_xdp(prog, self.iface.ifindex, flags).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EBUSY) | Some(libc::EEXIST) => NetError::Conflict(format!(
                    "{} already has an XDP program that bpfman does not manage; remove it first",
                    self.iface.describe()
                )),
                Some(libc::EOPNOTSUPP) if mode == XdpMode::Native => {
                    NetError::Unsupported(format!(
                        "the driver of {} has no native XDP support: attach with --mode skb",
                        self.iface.describe()
                    ))
                }
                _ => NetError::kernel(format!("attaching XDP to {}", self.iface.describe()), e),
            }
        })?;
        mkdir_p(&self.hook_dir)?;
        let pin = self.link_pin(mode);
        // If pinning fails, dropping `fd` destroys the link: nothing stays attached.
        sys::obj_pin(fd.as_fd(), &pin).map_err(|e| NetError::io("pinning", &pin, e))?;
        let info = sys::link_info(fd.as_fd())
            .map_err(|e| NetError::kernel("reading the new XDP link", e))?;
        self.link = Some(HookLink {
            pin,
            mode,
            fd,
            info,
        });
        Ok(())
    }

    fn detach(&mut self) -> Result<(), NetError> {
        // Detach now (not when the kernel gets round to releasing the
        // unpinned link), then unpin.
        if let Some(l) = self.link.take()
            && let Err(e) = sys::link_detach(l.fd.as_fd())
        {
            log::warn!(
                "detaching the XDP link {}: {e}; unpinning it anyway",
                l.pin.display()
            );
        }
        for mode in [XdpMode::Native, XdpMode::Skb] {
            unpin(&self.link_pin(mode))?;
        }
        Ok(())
    }

    fn mode(&self) -> Option<XdpMode> {
        self.link.as_ref().map(|l| l.mode).or(self.mode)
    }

    fn hook_link_id(&self) -> Option<KernelLinkId> {
        self.link.as_ref().map(|l| KernelLinkId(l.info.id))
    }
}
