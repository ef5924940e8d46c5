//! CSI volumes: publish selected maps into a private bpffs bind-mounted at the
//! pod's target path; unpublish removes everything publish made.

use std::path::Path;

use bpfman_core::action::Action;
use bpfman_core::gc::GcItem;
use bpfman_core::metadata::Selector;
use bpfman_core::model::VolumeRecord;
use bpfman_core::volume::plan_volume;

use crate::error::{Code, ManagerError, Result};
use crate::undo::{Undo, UndoLog};
use crate::{Manager, create_dir, now, path_str};

pub use bpfman_core::volume::PublishRequest;

fn check_volume_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 128
        || id.contains('/')
        || id.contains('\0')
        || id == "."
        || id == ".."
    {
        return Err(ManagerError::invalid(format!(
            "volume id '{id}' is not a safe name"
        )));
    }
    Ok(())
}

impl Manager {
    /// Publishes a volume (idempotent for an identical request).
    pub fn publish_volume(&self, req: &PublishRequest) -> Result<VolumeRecord> {
        check_volume_id(&req.volume_id)?;
        let target = path_str(&req.target_path);
        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        if let Some(v) = store.get_volume(&req.volume_id)? {
            if v.target_path == target
                && v.attributes == req.attributes
                && v.readonly == req.readonly
                && v.fs_group == req.fs_group
            {
                return Ok(v);
            }
            return Err(ManagerError::new(
                Code::AlreadyExists,
                format!(
                    "volume {} is already published at {} with other parameters",
                    req.volume_id, v.target_path
                ),
            ));
        }
        if let Some(v) = store.volume_by_target(&target)? {
            return Err(ManagerError::new(
                Code::AlreadyExists,
                format!("{target} already holds volume {}", v.volume_id),
            ));
        }
        let mut candidates = Vec::new();
        for p in store.list_programs(None, &Selector::default())? {
            let maps = store.maps_of(p.map_owner_id)?;
            candidates.push((p, maps));
        }
        let plan = plan_volume(&req.attributes, &candidates)?;

        let csi_dir = self.paths.csi_dir();
        let mount = csi_dir.join(&req.volume_id);
        let mut undo = UndoLog::default();
        let result = (|| -> Result<VolumeRecord> {
            if !csi_dir.exists() {
                create_dir(&csi_dir)?;
                undo.push(Undo::RemoveDir(csi_dir.clone()));
            }
            create_dir(&mount)?;
            undo.push(Undo::RemoveDir(mount.clone()));
            bpfman_kernel::mount_bpffs(&mount)?;
            undo.push(Undo::Unmount(mount.clone()));
            let (dir_mode, file_mode) = match (req.fs_group.is_some(), req.readonly) {
                (true, true) => (0o750, 0o440),
                (true, false) => (0o770, 0o660),
                (false, true) => (0o755, 0o444),
                (false, false) => (0o755, 0o666),
            };
            for m in &plan.maps {
                let obj = bpfman_kernel::open_pinned(Path::new(&m.source_pin))?;
                let dst = mount.join(&m.name);
                obj.pin(&dst)?;
                set_owner_mode(&dst, req.fs_group, file_mode)?;
            }
            set_owner_mode(&mount, req.fs_group, dir_mode)?;
            if !req.target_path.exists() {
                create_dir(&req.target_path)?;
                undo.push(Undo::RemoveDir(req.target_path.clone()));
            }
            bpfman_kernel::bind_mount(&mount, &req.target_path, req.readonly)?;
            undo.push(Undo::Unmount(req.target_path.clone()));
            let rec = VolumeRecord {
                volume_id: req.volume_id.clone(),
                target_path: target.clone(),
                bpffs_path: path_str(&mount),
                attributes: req.attributes.clone(),
                maps: plan.maps.clone(),
                readonly: req.readonly,
                fs_group: req.fs_group,
                created_at: now(),
            };
            store.write(|tx| tx.insert_volume(&rec).map_err(ManagerError::from))?;
            Ok(rec)
        })();
        match result {
            Ok(rec) => {
                undo.commit();
                tracing::info!(volume = %rec.volume_id, target = %rec.target_path, maps = rec.maps.len(), selector = %plan.selector, "published volume");
                Ok(rec)
            }
            Err(e) => {
                undo.rollback();
                Err(e)
            }
        }
    }

    /// Unpublishes a volume: unmounts the target and the private bpffs, removes
    /// what publish created. Unknown volumes succeed (idempotent).
    pub fn unpublish_volume(&self, volume_id: &str, target_path: &Path) -> Result<()> {
        check_volume_id(volume_id)?;
        let _lock = self.lock.exclusive()?;
        let mut store = self.store()?;
        let Some(v) = store.get_volume(volume_id)? else {
            return Ok(());
        };
        if v.target_path != path_str(target_path) {
            return Err(ManagerError::not_found(format!(
                "volume {volume_id} is published at {}, not {}",
                v.target_path,
                target_path.display()
            )));
        }
        teardown(&v)?;
        store.write(|tx| tx.delete_volume(volume_id).map_err(ManagerError::from))?;
        tracing::info!(volume = volume_id, "unpublished volume");
        Ok(())
    }

    /// Volume rows whose mounts are gone (e.g. after a reboot), and leftover
    /// volume mounts with no row.
    pub(crate) fn stale_volumes(&self, store: &bpfman_store::Store) -> Result<Vec<GcItem>> {
        let mut items = Vec::new();
        let vols = store.list_volumes()?;
        for v in &vols {
            let target_ok =
                bpfman_kernel::is_mountpoint(Path::new(&v.target_path)).unwrap_or(false);
            let fs_ok = bpfman_kernel::is_bpffs(Path::new(&v.bpffs_path)).unwrap_or(false);
            if !(target_ok && fs_ok) {
                let mut actions = Vec::new();
                if target_ok {
                    actions.push(Action::Unmount {
                        path: v.target_path.clone(),
                    });
                }
                if fs_ok {
                    actions.push(Action::Unmount {
                        path: v.bpffs_path.clone(),
                    });
                }
                actions.push(Action::RemoveDir {
                    path: v.bpffs_path.clone(),
                });
                actions.push(Action::DeleteVolume {
                    volume_id: v.volume_id.clone(),
                });
                items.push(GcItem {
                    kind: bpfman_core::gc::GcKind::Volume,
                    subject: v.volume_id.clone(),
                    reason: format!(
                        "volume {} at {}: its mounts are gone",
                        v.volume_id, v.target_path
                    ),
                    actions,
                });
            }
        }
        let csi = self.paths.csi_dir();
        // An unreadable CSI dir hides no row: gc reports what it can see.
        for e in bpfman_kernel::fs::read_dir(&csi).unwrap_or_default() {
            let name = e.file_name().to_string_lossy().into_owned();
            if vols.iter().any(|v| v.volume_id == name) {
                continue;
            }
            let p = path_str(&e.path());
            let mut actions = Vec::new();
            if bpfman_kernel::is_mountpoint(&e.path()).unwrap_or(false) {
                actions.push(Action::Unmount { path: p.clone() });
            }
            actions.push(Action::RemoveDir { path: p.clone() });
            items.push(GcItem {
                kind: bpfman_core::gc::GcKind::Volume,
                subject: p.clone(),
                reason: format!("volume directory {p} has no volume row"),
                actions,
            });
        }
        Ok(items)
    }
}

fn teardown(v: &VolumeRecord) -> Result<()> {
    let target = Path::new(&v.target_path);
    bpfman_kernel::unmount(target)?;
    if let Err(e) = bpfman_kernel::fs::remove_dir(target) {
        tracing::warn!("{e}");
    }
    let fs = Path::new(&v.bpffs_path);
    bpfman_kernel::unmount(fs)?;
    bpfman_kernel::fs::remove_dir(fs)?;
    Ok(())
}

fn set_owner_mode(p: &Path, group: Option<u32>, mode: u32) -> Result<()> {
    if let Some(g) = group {
        bpfman_kernel::fs::set_group(p, g)?;
    }
    Ok(bpfman_kernel::fs::set_mode(p, mode)?)
}
