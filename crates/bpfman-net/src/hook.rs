//! The declarative engine shared by XDP and TC hooks: given the complete
//! desired set of programs of one hook, make the kernel run exactly that,
//! replacing the previous state atomically, and read the state back.
//!
//! A hook runs either
//! - a dispatcher revision whose slots hold the programs as extensions
//!   (kernels that allow extension programs), or
//! - one program attached directly (kernels that refuse them, as libxdp
//!   degrades; a second program is refused with a clear error).
//!
//! Every change builds the new state completely (new dispatcher, every slot
//! filled, all pinned) before one atomic switch of the hook (XDP: update of
//! the pinned link; TC: in-place replacement of the filter). Only then is the
//! previous revision unpinned. A failure before the switch removes what this
//! call created, leaving the previous state untouched.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::programs::Extension;
use aya::programs::links::FdLink;
use bpfman_core::dispatcher::{
    self, HookEntry, HookKey, HookKind, proceed_on_codes, proceed_on_mask,
};
use bpfman_core::spec::XdpMode;

use crate::dispatcher::{
    ExtensionSource, ExtensionSupport, Flavor, RETURN_BIT, SlotConfig, extension_support,
    load_dispatcher, load_extension, read_config,
};
use crate::error::{NetError, from_program_error};
use crate::layout::{
    NetPaths, RevisionPins, mkdir_p, prune_up, read_direct, read_revisions, remove_if_empty,
    remove_tree, revision_name, slot_marker, unpin,
};
use aya_obj::generated::{bpf_prog_info, bpf_prog_type};
use bpfman_core::{KernelLinkId, LinkId, ProgramId};
use bpfman_kernel::sys;

/// One program the manager wants on a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredProgram {
    /// bpfman link id.
    pub link_id: LinkId,
    /// Pin of the program as bpfman loaded it (XDP or SCHED_CLS type); what
    /// runs when the program is attached directly.
    pub program_pin: PathBuf,
    /// How to load the program as an extension of a dispatcher slot; used
    /// only when the program is not in the current dispatcher already.
    pub extension: ExtensionSource,
    /// Lower runs first.
    pub priority: i32,
    /// Actions after which the chain continues (codes, see
    /// `bpfman_core::dispatcher`).
    pub proceed_on: Vec<i32>,
    /// Monotonic attach order: earlier runs first among equal priorities.
    pub attached_seq: u64,
}

/// What a hook runs, as read back from pins and the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookState {
    /// The hook.
    pub key: HookKey,
    /// Its pin directory.
    pub pin_dir: PathBuf,
    /// XDP attach mode (XDP only).
    pub mode: Option<XdpMode>,
    /// The XDP bpf_link that attaches the hook to the interface (XDP only).
    pub kernel_link_id: Option<KernelLinkId>,
    /// The dispatcher, when programs run through one.
    pub dispatcher: Option<DispatcherInfo>,
    /// Programs in run order.
    pub programs: Vec<HookProgram>,
    /// True when the kernel hook runs what the pins describe. False means the
    /// kernel state is gone or was changed behind bpfman's back: applying the
    /// desired set again repairs it.
    pub attached: bool,
    /// Set by the apply functions: false when the kernel already matched the
    /// desired set and nothing was done.
    pub changed: bool,
}

/// A dispatcher revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherInfo {
    /// Kernel program id of the dispatcher (also names the revision).
    pub program_id: ProgramId,
    /// The revision's pin directory.
    pub revision_dir: PathBuf,
}

/// One program on a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookProgram {
    /// bpfman link id.
    pub link_id: LinkId,
    /// 0-based run position.
    pub position: u32,
    /// Dispatcher slot (`prog<N>`; equal to `position`); `None` when attached directly.
    pub slot: Option<u32>,
    /// Kernel id of what runs: the extension copy in the slot, or the
    /// program itself when attached directly (0 when its pin is unreadable).
    pub program_id: ProgramId,
    /// Kernel link: the slot's freplace link, or the XDP link when attached
    /// directly (TC filters have none).
    pub kernel_link_id: Option<KernelLinkId>,
    /// Priority recorded in the dispatcher.
    pub priority: Option<i32>,
    /// Proceed-on codes recorded in the dispatcher (always includes
    /// `dispatcher_return`).
    pub proceed_on: Vec<i32>,
}

impl HookState {
    pub(crate) fn empty(key: HookKey, pin_dir: &Path, changed: bool) -> HookState {
        HookState {
            key,
            pin_dir: pin_dir.to_path_buf(),
            mode: None,
            kernel_link_id: None,
            dispatcher: None,
            programs: Vec::new(),
            attached: false,
            changed,
        }
    }
}

/// The kernel side of one hook kind.
pub(crate) trait HookOps {
    fn key(&self) -> HookKey;
    fn flavor(&self) -> Flavor;
    /// The hook's pin directory.
    fn hook_dir(&self) -> &Path;
    /// Where revision directories live.
    fn revisions_dir(&self) -> PathBuf;
    /// Kernel id of the program our attachment runs now; `None` if there is
    /// no live attachment of ours.
    fn running(&mut self) -> Result<Option<u32>, NetError>;
    /// Fails if the hook cannot take our programs at all.
    fn precheck(&mut self) -> Result<(), NetError>;
    /// Makes the hook run `prog`: atomic replacement when attached, a fresh
    /// attachment otherwise. `expected` is the program it should run now.
    fn attach(
        &mut self,
        prog: BorrowedFd<'_>,
        name: &str,
        expected: Option<u32>,
    ) -> Result<(), NetError>;
    /// Removes our attachment; idempotent.
    fn detach(&mut self) -> Result<(), NetError>;
    /// After the hook directory is gone (TC: the qdisc, if ours and unused).
    fn after_teardown(&mut self) -> Result<(), NetError> {
        Ok(())
    }
    /// XDP mode of the attachment.
    fn mode(&self) -> Option<XdpMode> {
        None
    }
    /// Kernel link of the attachment itself (XDP).
    fn hook_link_id(&self) -> Option<KernelLinkId> {
        None
    }
    /// "interface" or "interface and direction", for messages.
    fn scope(&self) -> &'static str;
}

/// Validates the set and returns it in run order.
fn plan(kind: HookKind, desired: &[DesiredProgram]) -> Result<Vec<&DesiredProgram>, NetError> {
    let entries: Vec<HookEntry> = desired
        .iter()
        .map(|p| HookEntry {
            link_id: p.link_id,
            program_id: ProgramId(0),
            priority: p.priority,
            proceed_on: p.proceed_on.clone(),
            attached_seq: p.attached_seq,
        })
        .collect();
    if desired.len() > dispatcher::MAX_DISPATCHER_SLOTS {
        return Err(NetError::TooMany(format!(
            "{} programs requested on one {kind} hook; a dispatcher holds at most {}",
            desired.len(),
            dispatcher::MAX_DISPATCHER_SLOTS
        )));
    }
    dispatcher::validate_set(kind, &entries)?;
    Ok(dispatcher::order(&entries)
        .iter()
        .filter_map(|e| desired.iter().find(|p| p.link_id == e.link_id))
        .collect())
}

/// Whether to use a dispatcher for `n` programs; an error when one is
/// needed but extension programs are refused.
fn use_dispatcher(
    paths: &NetPaths,
    ops: &dyn HookOps,
    n: usize,
    current: &[(LinkId, PathBuf)],
) -> Result<bool, NetError> {
    let refusal = if paths.extensions_disabled() {
        Some("extension programs are disabled by configuration".to_string())
    } else {
        match extension_support()? {
            ExtensionSupport::Supported => None,
            ExtensionSupport::Refused(errno) => {
                Some(format!("this kernel refuses extension programs ({errno})"))
            }
        }
    };
    match refusal {
        None => Ok(true),
        Some(why) if n > 1 => {
            let holder = current.first().map_or(String::new(), |(id, _)| {
                format!(" (bpfman link {id} is attached there)")
            });
            Err(NetError::Unsupported(format!(
                "{why}, so only one {} program per {} is possible here{holder}",
                ops.flavor().kind_name(),
                ops.scope()
            )))
        }
        Some(_) => Ok(false),
    }
}

/// Applies `desired` to a live hook (see the module docs).
pub(crate) fn apply(
    ops: &mut dyn HookOps,
    paths: &NetPaths,
    desired: &[DesiredProgram],
) -> Result<HookState, NetError> {
    let key = ops.key();
    let ordered = plan(key.kind, desired)?;
    let running = ops.running()?;
    if ordered.is_empty() {
        let existed = ops.hook_dir().exists() || running.is_some();
        ops.detach()?;
        remove_tree(ops.hook_dir())?;
        ops.after_teardown()?;
        prune_empty(paths, ops);
        return Ok(HookState::empty(key, ops.hook_dir(), existed));
    }
    let directs = read_direct(ops.hook_dir())?;
    let result = ops.precheck().and_then(|()| {
        if use_dispatcher(paths, ops, ordered.len(), &directs)? {
            apply_dispatcher(ops, &ordered, running)
        } else {
            apply_direct(ops, ordered[0], running)
        }
    });
    let changed = match result {
        Ok(c) => c,
        Err(e) => {
            // A refused or failed change leaves no directory behind either.
            prune_empty(paths, ops);
            return Err(e);
        }
    };
    let mut state = read_state(ops)?.ok_or_else(|| {
        NetError::NotFound(format!("the pins of {} vanished while applying", key))
    })?;
    state.changed = changed;
    Ok(state)
}

/// Removes a tree, logging instead of failing: used after the switch, when
/// the new state is in effect and leftovers are cleaned by the next apply.
fn cleanup_tree(dir: &Path) {
    if let Err(e) = remove_tree(dir) {
        log::warn!("leaving stale dispatcher pins behind: {e}");
    }
}

fn cleanup_pin(pin: &Path) {
    if let Err(e) = unpin(pin) {
        log::warn!("leaving a stale pin behind: {e}");
    }
}

/// Removes the empty directories of a hook, bottom-up to `<fs>/dispatchers`.
fn prune_empty(paths: &NetPaths, ops: &dyn HookOps) {
    remove_if_empty(&ops.revisions_dir());
    prune_up(paths, ops.hook_dir());
}

/// Removes a revision directory this call created if the call fails before
/// the switch.
struct TreeGuard {
    dir: Option<PathBuf>,
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            cleanup_tree(&dir);
        }
    }
}

fn open_user_program(ops: &dyn HookOps, pin: &Path) -> Result<(OwnedFd, bpf_prog_info), NetError> {
    let (fd, info) = sys::open_prog(pin).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NetError::NotFound(format!("program pin {} does not exist", pin.display()))
        } else {
            NetError::io("opening program pin", pin, e)
        }
    })?;
    if info.type_ != ops.flavor().prog_type() {
        return Err(NetError::InvalidArgument(format!(
            "program '{}' at {} is not a {} program (kernel type {})",
            sys::c_name(&info.name),
            pin.display(),
            ops.flavor().kind_name(),
            info.type_
        )));
    }
    Ok((fd, info))
}

fn pin_fd(fd: BorrowedFd<'_>, path: &Path) -> Result<(), NetError> {
    sys::obj_pin(fd, path).map_err(|e| NetError::io("pinning", path, e))
}

/// Single-program mode: the program itself on the hook.
fn apply_direct(
    ops: &mut dyn HookOps,
    p: &DesiredProgram,
    running: Option<u32>,
) -> Result<bool, NetError> {
    let (fd, info) = open_user_program(ops, &p.program_pin)?;
    let hook_dir = ops.hook_dir().to_path_buf();
    let directs = read_direct(&hook_dir)?;
    let revisions = read_revisions(&ops.revisions_dir())?;
    let marker = hook_dir.join(format!("direct-{}", p.link_id));
    let marker_prog = sys::open_prog(&marker).ok().map(|(_, i)| i.id);
    if running == Some(info.id)
        && marker_prog == Some(info.id)
        && directs.len() == 1
        && revisions.is_empty()
    {
        return Ok(false);
    }
    mkdir_p(&hook_dir)?;
    let fresh_marker = marker_prog != Some(info.id);
    if fresh_marker {
        unpin(&marker)?;
        pin_fd(fd.as_fd(), &marker)?;
    }
    if let Err(e) = ops.attach(fd.as_fd(), &format!("bpfman-link{}", p.link_id), running) {
        if fresh_marker {
            cleanup_pin(&marker);
        }
        return Err(e);
    }
    if !revisions.is_empty() {
        synchronize_rcu();
    }
    for (id, pin) in directs {
        if id != p.link_id {
            cleanup_pin(&pin);
        }
    }
    for r in revisions {
        cleanup_tree(&r.dir);
    }
    Ok(true)
}

/// Dispatcher mode.
fn apply_dispatcher(
    ops: &mut dyn HookOps,
    ordered: &[&DesiredProgram],
    running: Option<u32>,
) -> Result<bool, NetError> {
    let key = ops.key();
    let flavor = ops.flavor();
    let slots = ordered
        .iter()
        .map(|p| {
            Ok(SlotConfig {
                mask: proceed_on_mask(key.kind, &p.proceed_on)? | RETURN_BIT,
                // Stored bit for bit; read back with `as i32`.
                priority: p.priority as u32,
            })
        })
        .collect::<Result<Vec<_>, NetError>>()?;
    let revisions_dir = ops.revisions_dir();
    let revisions = read_revisions(&revisions_dir)?;
    let directs = read_direct(ops.hook_dir())?;
    let wanted: Vec<(u32, LinkId)> = ordered
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32, p.link_id))
        .collect();
    if let Some(cur) = revisions
        .iter()
        .find(|r| Some(r.dispatcher_id.get()) == running)
        && revisions.len() == 1
        && directs.is_empty()
        && cur.slots == wanted
        && let Ok((fd, _)) = sys::open_prog(&cur.dispatcher_pin())
        && read_config(&fd)? == slots
    {
        return Ok(false);
    }

    let d = load_dispatcher(flavor, &slots)?;
    let rev = RevisionPins {
        dir: revisions_dir.join(revision_name(key.ifindex, ProgramId(d.id))),
        dispatcher_id: ProgramId(d.id),
        slots: wanted.clone(),
    };
    mkdir_p(&rev.dir)?;
    let mut guard = TreeGuard {
        dir: Some(rev.dir.clone()),
    };
    pin_fd(d.fd.as_fd(), &rev.dispatcher_pin())?;
    for (slot, p) in wanted.iter().map(|(s, _)| *s).zip(ordered) {
        // Reuse the extension already loaded for this link (libxdp does the
        // same: one extension program, re-attached to each new dispatcher).
        let reused = revisions
            .iter()
            .find_map(|r| r.slot_of(p.link_id).map(|s| r.prog_pin(s)))
            .and_then(|pin| sys::open_prog(&pin).ok())
            .filter(|(_, info)| info.type_ == bpf_prog_type::BPF_PROG_TYPE_EXT as u32)
            .map(|(fd, _)| fd);
        let ext_fd = match reused {
            Some(fd) => fd,
            None => load_extension(&p.extension, &d.fd, slot)?,
        };
        let prog_pin = rev.prog_pin(slot);
        pin_fd(ext_fd.as_fd(), &prog_pin)?;
        let what = format!("attaching link {} to dispatcher slot prog{slot}", p.link_id);
        let mut ext =
            Extension::from_pin(&prog_pin).map_err(|e| from_program_error(what.clone(), e))?;
        let link_id = ext
            .attach_to_program(&d.fd, &format!("prog{slot}"))
            .map_err(|e| from_program_error(what.clone(), e))?;
        let link: FdLink = ext
            .take_link(link_id)
            .map_err(|e| from_program_error(what.clone(), e))?
            .into();
        let link_pin = rev.link_pin(slot);
        link.pin(&link_pin).map_err(|e| {
            NetError::io("pinning", &link_pin, std::io::Error::other(e.to_string()))
        })?;
        pin_fd(ext_fd.as_fd(), &rev.dir.join(slot_marker(slot, p.link_id)))?;
    }
    ops.attach(d.fd.as_fd(), "bpfman-dispatcher", running)?;
    guard.dir = None;
    // Packets already inside the old dispatcher finish with its slots intact.
    synchronize_rcu();
    for r in revisions {
        cleanup_tree(&r.dir);
    }
    for (_, pin) in directs {
        cleanup_pin(&pin);
    }
    Ok(true)
}

/// Reads a hook's state back; `None` when it has no pins.
pub(crate) fn read_state(ops: &mut dyn HookOps) -> Result<Option<HookState>, NetError> {
    let key = ops.key();
    let hook_dir = ops.hook_dir().to_path_buf();
    if !hook_dir.exists() {
        return Ok(None);
    }
    let running = ops.running()?;
    let revisions = read_revisions(&ops.revisions_dir())?;
    let directs = read_direct(&hook_dir)?;
    let mut state = HookState::empty(key, &hook_dir, false);
    state.mode = ops.mode();
    state.kernel_link_id = ops.hook_link_id();
    // The revision the kernel runs; without one, the newest (to show and repair).
    let rev = revisions
        .iter()
        .find(|r| Some(r.dispatcher_id.get()) == running)
        .or_else(|| revisions.iter().max_by_key(|r| r.dispatcher_id));
    if let Some(rev) = rev {
        let config = sys::open_prog(&rev.dispatcher_pin())
            .ok()
            .and_then(|(fd, _)| read_config(&fd).ok());
        for (position, (slot, link_id)) in rev.slots.iter().enumerate() {
            let cfg = config.as_ref().and_then(|c| c.get(*slot as usize));
            state.programs.push(HookProgram {
                link_id: *link_id,
                position: position as u32,
                slot: Some(*slot),
                program_id: ProgramId(
                    sys::open_prog(&rev.prog_pin(*slot)).map_or(0, |(_, i)| i.id),
                ),
                kernel_link_id: sys::open_link(&rev.link_pin(*slot))
                    .ok()
                    .map(|(_, i)| KernelLinkId(i.id)),
                priority: cfg.map(|c| c.priority as i32),
                proceed_on: cfg.map_or_else(Vec::new, |c| proceed_on_codes(key.kind, c.mask)),
            });
        }
        state.attached = running == Some(rev.dispatcher_id.get());
        state.dispatcher = Some(DispatcherInfo {
            program_id: rev.dispatcher_id,
            revision_dir: rev.dir.clone(),
        });
    } else if let Some((link_id, pin)) = directs.first() {
        let program_id = ProgramId(sys::open_prog(pin).map_or(0, |(_, i)| i.id));
        state.programs.push(HookProgram {
            link_id: *link_id,
            position: 0,
            slot: None,
            program_id,
            kernel_link_id: ops.hook_link_id(),
            priority: None,
            proceed_on: Vec::new(),
        });
        state.attached = program_id.get() != 0 && running == Some(program_id.get());
    }
    Ok(Some(state))
}

/// Waits for an RCU grace period (membarrier(MEMBARRIER_CMD_GLOBAL) calls
/// synchronize_rcu): every packet that started on a program detached before
/// this call has finished. Where the kernel rejects it (nohz_full), falls
/// back to a pause far longer than one softirq batch.
fn synchronize_rcu() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_GLOBAL,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if r != 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
