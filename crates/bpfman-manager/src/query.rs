//! Read-only views: list, get, links. These take the shared lock so they never
//! see a half-done mutation of another process.

use std::collections::BTreeMap;
use std::path::Path;

use bpfman_core::metadata::Selector;
use bpfman_core::model::{LinkRecord, LinkView, MapView, ProgramRecord, ProgramView};
use bpfman_core::{KernelProgramInfo, LinkId, ProgramId, ProgramKind};

use crate::Manager;
use crate::error::{ManagerError, Result};

/// Filters for `list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this bpfman kind (managed) / its kernel type (unmanaged).
    pub kind: Option<ProgramKind>,
    /// Only this kernel `bpf_prog_type` number (gRPC List).
    pub kernel_type: Option<u32>,
    /// All pairs must match; a non-empty selector drops unmanaged programs.
    pub selector: Selector,
    /// Include programs bpfman did not load.
    pub all: bool,
}

/// A link as shown to users.
pub(crate) fn link_view(l: &LinkRecord, program_name: &str) -> LinkView {
    LinkView {
        id: l.id,
        program_id: l.program_id,
        program_name: program_name.to_string(),
        link_type: l.spec.type_name().to_string(),
        attach_point: l.spec.describe(),
        spec: l.spec.clone(),
        pin_path: l.pin_path.clone(),
        kernel_link_id: l.kernel_link_id,
        metadata: l.metadata.clone(),
        created_at: l.created_at,
        hook: None,
    }
}

fn kernel_type_name(t: u32) -> String {
    // Kernel enum bpf_prog_type names for the types people meet most.
    let name = match t {
        1 => "socket_filter",
        2 => "kprobe",
        3 => "sched_cls",
        4 => "sched_act",
        5 => "tracepoint",
        6 => "xdp",
        7 => "perf_event",
        8 => "cgroup_skb",
        9 => "cgroup_sock",
        13 => "sock_ops",
        17 => "raw_tracepoint",
        18 => "cgroup_sock_addr",
        26 => "tracing",
        27 => "struct_ops",
        28 => "ext",
        29 => "lsm",
        30 => "sk_lookup",
        31 => "syscall",
        32 => "netfilter",
        _ => return format!("type {t}"),
    };
    name.to_string()
}

fn managed_view(
    p: ProgramRecord,
    links: Vec<LinkView>,
    used_by: Vec<ProgramId>,
    kernel: Option<KernelProgramInfo>,
) -> ProgramView {
    let mut kernel = kernel;
    if let Some(k) = kernel.as_mut() {
        // Report the logical type, as upstream does (dispatcher-attached programs are EXT in the kernel).
        k.program_type = p.kind.kernel_prog_type();
    }
    ProgramView {
        id: p.id,
        managed: true,
        name: p.name.clone(),
        program_type: p.kind.to_string(),
        map_used_by: used_by,
        maps: Vec::new(),
        links,
        kernel,
        record: Some(p),
        owned_by: None,
    }
}

fn unmanaged_view(k: KernelProgramInfo) -> ProgramView {
    ProgramView {
        id: k.id,
        managed: false,
        name: k.name.clone(),
        program_type: kernel_type_name(k.program_type),
        record: None,
        map_used_by: Vec::new(),
        maps: Vec::new(),
        links: Vec::new(),
        kernel: Some(k),
        owned_by: None,
    }
}

/// What the kernel runs on one network hook, read once per view-building call.
pub(crate) enum HookRead {
    /// A dispatcher hook (XDP/TC): its state, `None` when gone or unreadable.
    Dispatcher(Option<bpfman_net::HookState>),
    /// A TCX hook: the chain in kernel order, `None` when unreadable.
    Tcx(Option<Vec<bpfman_net::TcxProgram>>),
}

/// Per-call cache of hook reads, keyed by hook.
pub(crate) type HookReads = BTreeMap<bpfman_core::dispatcher::HookKey, HookRead>;

impl Manager {
    /// A link as shown to users, with its place on a network hook read back
    /// from the kernel (position, slot, dispatcher).
    pub(crate) fn link_view_of(
        &self,
        store: &bpfman_store::Store,
        l: &LinkRecord,
        program_name: &str,
        hooks: &mut HookReads,
    ) -> Result<LinkView> {
        let mut v = link_view(l, program_name);
        let Some(n) = store.net_link(l.id)? else {
            return Ok(v);
        };
        let (mut position, mut slot, mut dispatcher_id) = (None, None, None);
        // Each hook is read from the kernel once per call, however many links it has.
        let read = hooks.entry(n.hook).or_insert_with(|| {
            let iface = crate::net::recorded_iface(&n);
            // A vanished namespace or interface reads as "not running".
            if n.hook.kind.uses_dispatcher() {
                HookRead::Dispatcher(
                    bpfman_net::hook_state(&self.net_paths(), &iface, n.hook.kind)
                        .ok()
                        .flatten(),
                )
            } else {
                HookRead::Tcx(
                    n.hook
                        .kind
                        .direction()
                        .and_then(|dir| bpfman_net::tcx_chain(&iface, dir).ok()),
                )
            }
        });
        match read {
            HookRead::Dispatcher(Some(state)) => {
                if let Some(hp) = state.programs.iter().find(|hp| hp.link_id == l.id) {
                    position = Some(hp.position);
                    slot = hp.slot;
                }
                dispatcher_id = state.dispatcher.as_ref().map(|d| d.program_id);
            }
            HookRead::Tcx(Some(chain)) => {
                position = chain
                    .iter()
                    .find(|t| t.kernel_link_id.is_some() && t.kernel_link_id == l.kernel_link_id)
                    .map(|t| t.position);
            }
            _ => {}
        }
        v.hook = Some(bpfman_core::NetHookView {
            kind: n.hook.kind.as_str().to_string(),
            iface: n.iface,
            netns: n.netns,
            netns_ino: n.hook.netns_ino,
            ifindex: n.hook.ifindex,
            position,
            slot,
            dispatcher_id,
        });
        Ok(v)
    }

    /// Programs, managed first (by id), then with `all` the kernel's others.
    pub fn list(&self, f: &ListFilter) -> Result<Vec<ProgramView>> {
        let _lock = self.lock.shared()?;
        // The kernel's id walk is one syscall per live program (about 1 ms
        // for a thousand) and needs nothing from the store: it runs on its
        // own thread while the store is read. Without a thread it runs here.
        std::thread::scope(|s| {
            let walk = std::thread::Builder::new()
                .name("bpfman-ids".into())
                .spawn_scoped(s, bpfman_kernel::live_program_ids)
                .ok();
            self.list_views(f, move || match walk {
                Some(w) => w
                    .join()
                    .map_err(|_| ManagerError::internal("the program id walk panicked"))?
                    .map_err(Into::into),
                None => bpfman_kernel::live_program_ids().map_err(Into::into),
            })
        })
    }

    /// [`Manager::list`] under its lock; `live` gives the ids of the
    /// programs the kernel runs, asked for once the store has been read.
    fn list_views(
        &self,
        f: &ListFilter,
        live: impl FnOnce() -> Result<std::collections::BTreeSet<ProgramId>>,
    ) -> Result<Vec<ProgramView>> {
        let store = self.store()?;
        let records = store.list_programs(f.kind, &f.selector)?;
        let mut links_by_prog: BTreeMap<ProgramId, Vec<LinkRecord>> = BTreeMap::new();
        for l in store.list_links()? {
            links_by_prog.entry(l.program_id).or_default().push(l);
        }
        // Map users span every program, not only the ones the filter keeps;
        // unfiltered, the rows already read are all of them.
        let mut users: BTreeMap<ProgramId, Vec<ProgramId>> = BTreeMap::new();
        let everyone_read;
        let everyone = if f.kind.is_none() && f.selector.is_empty() {
            &records
        } else {
            everyone_read = store.list_programs(None, &Selector::default())?;
            &everyone_read
        };
        for p in everyone {
            users.entry(p.map_owner_id).or_default().push(p.id);
        }
        // Kernel facts: those recorded at load for the managed programs that
        // still live (one id walk, no syscalls per program); the kernel is
        // asked only for the rest: managed programs recorded before facts
        // were kept, and with `all` the programs bpfman did not load (a node
        // may run hundreds, so only when they are listed).
        let recorded = store.kernel_infos()?;
        let live = live()?;
        let unknown: Vec<ProgramId> = if f.all {
            live.iter()
                .filter(|id| !recorded.contains_key(id))
                .copied()
                .collect()
        } else {
            records
                .iter()
                .map(|p| p.id)
                .filter(|id| live.contains(id) && !recorded.contains_key(id))
                .collect()
        };
        let mut kernel_all: BTreeMap<ProgramId, KernelProgramInfo> =
            bpfman_kernel::programs_info(&unknown)?
                .into_iter()
                .flatten()
                .map(|k| (k.id, k))
                .collect();
        kernel_all.extend(recorded.into_iter().filter(|(id, _)| live.contains(id)));
        let mut out = Vec::with_capacity(records.len());
        let mut hooks = HookReads::new();
        for p in records {
            if f.kernel_type
                .is_some_and(|t| t != p.kind.kernel_prog_type())
            {
                continue;
            }
            let links = links_by_prog
                .remove(&p.id)
                .unwrap_or_default()
                .iter()
                .map(|l| self.link_view_of(&store, l, &p.name, &mut hooks))
                .collect::<Result<Vec<_>>>()?;
            let used = users.get(&p.map_owner_id).cloned().unwrap_or_default();
            // Each id is listed once: move the facts, the rest serve `all`.
            let k = kernel_all.remove(&p.id);
            out.push(managed_view(p, links, used, k));
        }
        if f.all && f.selector.is_empty() {
            let managed: std::collections::BTreeSet<ProgramId> = out.iter().map(|v| v.id).collect();
            let all_records: std::collections::BTreeSet<ProgramId> =
                users.values().flatten().copied().collect();
            let ours: BTreeMap<ProgramId, String> = bpfman_net::pinned_programs(&self.net_paths())?
                .into_iter()
                .map(|(id, pin)| (id, format!("bpfman dispatcher ({})", pin.display())))
                .collect();
            for (id, k) in kernel_all {
                if managed.contains(&id) || all_records.contains(&id) {
                    continue;
                }
                if f.kind
                    .is_some_and(|kind| k.program_type != kind.kernel_prog_type())
                {
                    continue;
                }
                if f.kernel_type.is_some_and(|t| t != k.program_type) {
                    continue;
                }
                let mut v = unmanaged_view(k);
                v.owned_by = ours.get(&id).cloned();
                out.push(v);
            }
        }
        Ok(out)
    }

    /// One program (managed or not) with maps, links and kernel facts.
    pub fn get(&self, id: ProgramId) -> Result<ProgramView> {
        let _lock = self.lock.shared()?;
        let store = self.store()?;
        let Some(p) = store.get_program(id)? else {
            drop(store);
            return match bpfman_kernel::program_info(id)? {
                Some(k) => Ok(unmanaged_view(k)),
                None => Err(ManagerError::not_found(format!(
                    "program {id} does not exist"
                ))),
            };
        };
        let mut hooks = HookReads::new();
        let links = store
            .links_of(id)?
            .iter()
            .map(|l| self.link_view_of(&store, l, &p.name, &mut hooks))
            .collect::<Result<Vec<_>>>()?;
        let used = store.programs_using_maps_of(p.map_owner_id)?;
        let maps = store.maps_of(p.map_owner_id)?;
        drop(store);
        let kernel = bpfman_kernel::program_info(id)?;
        let mut v = managed_view(p, links, used, kernel);
        v.maps = maps
            .into_iter()
            .map(|m| MapView {
                kernel: bpfman_kernel::map_info_by_pin(Path::new(&m.pin_path)).ok(),
                name: m.name,
                pin_path: m.pin_path,
            })
            .collect();
        Ok(v)
    }

    /// Links, optionally of one program, by id.
    pub fn list_links(&self, program: Option<ProgramId>) -> Result<Vec<LinkView>> {
        let _lock = self.lock.shared()?;
        let store = self.store()?;
        let links = match program {
            Some(p) => store.links_of(p)?,
            None => store.list_links()?,
        };
        let mut names: BTreeMap<ProgramId, String> = BTreeMap::new();
        let mut out = Vec::with_capacity(links.len());
        let mut hooks = HookReads::new();
        for l in &links {
            if let std::collections::btree_map::Entry::Vacant(e) = names.entry(l.program_id) {
                e.insert(
                    store
                        .get_program(l.program_id)?
                        .map(|p| p.name)
                        .unwrap_or_default(),
                );
            }
            out.push(self.link_view_of(&store, l, &names[&l.program_id], &mut hooks)?);
        }
        Ok(out)
    }

    /// One link.
    pub fn get_link(&self, id: LinkId) -> Result<LinkView> {
        let _lock = self.lock.shared()?;
        let store = self.store()?;
        let l = store
            .get_link(id)?
            .ok_or_else(|| ManagerError::not_found(format!("link {id} does not exist")))?;
        let name = store
            .get_program(l.program_id)?
            .map(|p| p.name)
            .unwrap_or_default();
        Ok(link_view(&l, &name))
    }
}
