//! Network namespaces and interfaces.
//!
//! Anything that names an interface by index (XDP and TCX link creation,
//! netlink, TCX queries) is interpreted in the calling thread's network
//! namespace. To act inside another namespace this crate starts a short-lived
//! thread, moves only that thread into the namespace with setns(2), runs the
//! work there and lets the thread end: the caller's thread never changes
//! namespace. BPF objects and pins are namespace-independent, so file
//! descriptors made on that thread are fine to use afterwards.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bpfman_core::dispatcher::{HookKey, HookKind};
use nix::sched::{CloneFlags, setns};

use crate::error::NetError;

/// An interface as bpfman knows it: how to reach it (namespace file and name)
/// and who it is (namespace inode and interface index, the identity hooks are
/// keyed by). Build one with [`Iface::resolve`] at attach time and keep the
/// inode and index with the link, so the hook can still be found and cleaned
/// after the namespace or the interface is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Namespace file (`/var/run/netns/NAME`, `/proc/PID/ns/net`); `None` is
    /// the namespace of the calling thread.
    pub netns: Option<PathBuf>,
    /// Interface name (for messages; the index is what is acted on).
    pub name: String,
    /// Inode of the namespace.
    pub netns_ino: u64,
    /// Interface index inside the namespace.
    pub ifindex: u32,
}

impl Iface {
    /// Resolves `name` inside `netns` (or the caller's namespace).
    pub fn resolve(netns: Option<&Path>, name: &str) -> Result<Iface, NetError> {
        let (netns_ino, ifindex) = resolve_iface(netns, name)?;
        Ok(Iface {
            netns: netns.map(Path::to_path_buf),
            name: name.to_string(),
            netns_ino,
            ifindex,
        })
    }

    /// The hook of `kind` on this interface.
    pub fn key(&self, kind: HookKind) -> HookKey {
        HookKey {
            kind,
            netns_ino: self.netns_ino,
            ifindex: self.ifindex,
        }
    }

    /// `name (ifindex N) in netns PATH` for messages.
    pub fn describe(&self) -> String {
        match &self.netns {
            Some(p) => format!(
                "interface {} (ifindex {}) in netns {}",
                self.name,
                self.ifindex,
                p.display()
            ),
            None => format!("interface {} (ifindex {})", self.name, self.ifindex),
        }
    }
}

/// Returns `(netns inode, ifindex)` of interface `iface` inside `netns` (or
/// the caller's namespace when `None`). The lookup runs on a separate thread
/// that joins the namespace; the caller's thread is never moved.
pub fn resolve_iface(netns: Option<&Path>, iface: &str) -> Result<(u64, u32), NetError> {
    bpfman_core::spec::validate_iface(iface)?;
    let ns = open_netns(netns)?;
    let ino = ns.ino;
    let ifindex = ns.run(|| {
        if_nametoindex(iface)?.ok_or_else(|| {
            NetError::NotFound(format!(
                "interface {iface} does not exist{}",
                in_netns_suffix(netns)
            ))
        })
    })?;
    Ok((ino, ifindex))
}

fn in_netns_suffix(netns: Option<&Path>) -> String {
    netns.map_or(String::new(), |p| format!(" in netns {}", p.display()))
}

/// An opened network namespace (or the caller's own, when `file` is `None`).
pub(crate) struct Netns {
    file: Option<File>,
    /// Namespace inode.
    pub(crate) ino: u64,
}

/// Opens the namespace file, checking it really is a network namespace.
pub(crate) fn open_netns(netns: Option<&Path>) -> Result<Netns, NetError> {
    match netns {
        None => {
            let own = Path::new("/proc/thread-self/ns/net");
            let meta = std::fs::metadata(own)
                .map_err(|e| NetError::io("reading own network namespace", own, e))?;
            Ok(Netns {
                file: None,
                ino: meta.ino(),
            })
        }
        Some(path) => {
            let file = File::open(path).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    NetError::NotFound(format!(
                        "network namespace {} does not exist",
                        path.display()
                    ))
                } else {
                    NetError::io("opening network namespace", path, e)
                }
            })?;
            let meta = file
                .metadata()
                .map_err(|e| NetError::io("reading network namespace", path, e))?;
            Ok(Netns {
                file: Some(file),
                ino: meta.ino(),
            })
        }
    }
}

impl Netns {
    /// Runs `f` inside this namespace: on a scoped thread that joined it, or
    /// directly when this is the caller's own namespace.
    pub(crate) fn run<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, NetError> + Send,
    ) -> Result<T, NetError> {
        let Some(file) = &self.file else {
            return f();
        };
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                // Only this thread moves; it ends when `f` returns.
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetError::InvalidArgument(format!(
                        "cannot enter network namespace (is it a netns file?): {e}"
                    ))
                })?;
                f()
            });
            handle.join().unwrap_or_else(|_| {
                Err(NetError::kernel(
                    "network namespace worker",
                    io::Error::other("worker thread panicked"),
                ))
            })
        })
    }
}

/// `if_nametoindex(3)` in the calling thread's namespace; `None` if absent.
pub(crate) fn if_nametoindex(name: &str) -> Result<Option<u32>, NetError> {
    let c = CString::new(name)
        .map_err(|_| NetError::InvalidArgument(format!("interface name {name:?} contains NUL")))?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx != 0 {
        return Ok(Some(idx));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) => Ok(None),
        _ => Err(NetError::kernel(format!("looking up interface {name}"), e)),
    }
}

/// `if_indextoname(3)` in the calling thread's namespace; `None` if absent.
pub(crate) fn if_indextoname(ifindex: u32) -> Result<Option<String>, NetError> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr() as *mut libc::c_char) };
    if !p.is_null() {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        return Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned()));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) => Ok(None),
        _ => Err(NetError::kernel(format!("looking up ifindex {ifindex}"), e)),
    }
}

/// Whether a recorded interface still exists as recorded.
pub(crate) enum Presence {
    /// Same namespace, interface index present.
    Live(Netns),
    /// Gone; the string says what changed.
    Vanished(String),
}

/// Checks that `iface`'s namespace and interface index still exist. A
/// namespace file that now names another namespace counts as vanished: the
/// recorded hook lived in the old one.
pub(crate) fn presence(iface: &Iface) -> Result<Presence, NetError> {
    let ns = match open_netns(iface.netns.as_deref()) {
        Ok(ns) => ns,
        Err(NetError::NotFound(m)) => return Ok(Presence::Vanished(m)),
        Err(e) => return Err(e),
    };
    if ns.ino != iface.netns_ino {
        return Ok(Presence::Vanished(format!(
            "network namespace {} is now a different namespace (inode {} instead of {})",
            iface
                .netns
                .as_deref()
                .map_or("of the caller".into(), |p| p.display().to_string()),
            ns.ino,
            iface.netns_ino
        )));
    }
    let ifindex = iface.ifindex;
    let exists = ns.run(|| if_indextoname(ifindex))?;
    match exists {
        Some(_) => Ok(Presence::Live(ns)),
        None => Ok(Presence::Vanished(format!(
            "{} no longer exists",
            iface.describe()
        ))),
    }
}

/// Finds a path naming the network namespace with inode `ino`: the caller's
/// own (`None` inside `Some`), a file under /var/run/netns or /run/netns, or
/// /proc/PID/ns/net of a process inside it. `None` when nothing names it any
/// more, which for bpfman means the namespace is gone.
pub(crate) fn find_netns(ino: u64) -> Option<Option<PathBuf>> {
    let ino_of = |p: &Path| std::fs::metadata(p).ok().map(|m| m.ino());
    if ino_of(Path::new("/proc/thread-self/ns/net")) == Some(ino) {
        return Some(None);
    }
    for dir in ["/var/run/netns", "/run/netns"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if ino_of(&e.path()) == Some(ino) {
                    return Some(Some(e.path()));
                }
            }
        }
    }
    let rd = std::fs::read_dir("/proc").ok()?;
    for e in rd.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            let p = e.path().join("ns/net");
            if ino_of(&p) == Some(ino) {
                return Some(Some(p));
            }
        }
    }
    None
}
