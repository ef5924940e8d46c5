//! Garbage collection: snapshot the facts, let the core plan, execute.

use std::path::Path;

use bpfman_core::action::Action;
use bpfman_core::gc::{GcItem, GcSnapshot, plan_gc};
use bpfman_core::metadata::Selector;

use bpfman_kernel::fs::read_dir;

use crate::error::Result;
use crate::{Manager, path_str};
use bpfman_core::{LinkId, ProgramId};

impl Manager {
    /// Finds stale items; with `prune`, removes exactly those and returns them.
    pub fn gc(&self, prune: bool) -> Result<Vec<GcItem>> {
        let _lock = if prune {
            self.lock.exclusive()?
        } else {
            self.lock.shared()?
        };
        let mut store = self.store()?;
        let snap = self.snapshot(&store)?;
        let mut items = plan_gc(&snap);
        items.extend(self.stale_volumes(&store)?);
        let orphan_hooks = self.orphan_hooks(&store)?;
        if prune {
            for (key, _) in &orphan_hooks {
                bpfman_net::remove_hook(&self.net_paths(), key)?;
            }
            for item in &items {
                for a in &item.actions {
                    execute_fs(a)?;
                }
            }
            store.write(|tx| -> Result<()> {
                for item in &items {
                    for a in &item.actions {
                        tx.apply(a)?;
                    }
                }
                Ok(())
            })?;
            for item in &items {
                tracing::info!(kind = %item.kind, subject = %item.subject, "gc removed: {}", item.reason);
            }
        }
        items.extend(orphan_hooks.into_iter().map(|(_, item)| item));
        Ok(items)
    }

    /// Dispatcher hooks with pins but no link row (a crash between the kernel
    /// change and the store commit, or state from an older store).
    fn orphan_hooks(
        &self,
        store: &bpfman_store::Store,
    ) -> Result<Vec<(bpfman_core::dispatcher::HookKey, GcItem)>> {
        let paths = self.net_paths();
        let mut out = Vec::new();
        for key in paths.list_hooks()? {
            if !store.net_links_on(&key)?.is_empty() {
                continue;
            }
            let dir = paths
                .hook_dir(&key)
                .map(|p| path_str(&p))
                .unwrap_or_default();
            out.push((
                key,
                GcItem {
                    kind: bpfman_core::gc::GcKind::Dispatcher,
                    subject: dir.clone(),
                    reason: format!("hook {key} has pins at {dir} but no link row"),
                    actions: vec![Action::RemoveTree { path: dir }],
                },
            ));
        }
        Ok(out)
    }

    fn snapshot(&self, store: &bpfman_store::Store) -> Result<GcSnapshot> {
        let mut s = GcSnapshot {
            programs: store.list_programs(None, &Selector::default())?,
            maps: store.all_maps()?,
            links: store.list_links()?,
            live_programs: bpfman_kernel::live_program_ids()?,
            live_links: bpfman_kernel::live_link_ids()?,
            ..Default::default()
        };
        // A dispatcher link's pin is its hook directory.
        let net = self.net_paths();
        for key in net.list_hooks()? {
            if let Some(dir) = net.hook_dir(&key) {
                s.pins.insert(path_str(&dir));
            }
        }
        let fs = self.paths.fs();
        for entry in read_dir(&fs)? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if name == "links" && is_dir {
                for l in read_dir(&path)? {
                    let lp = path_str(&l.path());
                    if let Ok(id) = l.file_name().to_string_lossy().parse::<u32>() {
                        s.link_pins.insert(LinkId(id), lp.clone());
                    }
                    s.pins.insert(lp);
                }
            } else if let (true, Ok(id)) = (is_dir, name.parse::<u32>()) {
                let mut empty = true;
                for f in read_dir(&path)? {
                    empty = false;
                    s.pins.insert(path_str(&f.path()));
                }
                s.program_dirs
                    .insert(ProgramId(id), (path_str(&path), empty));
            }
        }
        Ok(s)
    }
}

/// Executes the bpffs side of an action (store actions are applied in one transaction).
pub(crate) fn execute_fs(a: &Action) -> Result<()> {
    match a {
        Action::Unpin { path } => bpfman_kernel::unpin(Path::new(path))?,
        Action::RemoveTree { path } => bpfman_kernel::fs::remove_tree(Path::new(path))?,
        Action::RemoveDir { path } => {
            bpfman_kernel::fs::remove_dir(Path::new(path))?;
        }
        Action::Unmount { path } => bpfman_kernel::unmount(Path::new(path))?,
        _ => {}
    }
    Ok(())
}
