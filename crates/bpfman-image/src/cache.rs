//! The image cache, keyed by digest:
//!
//! ```text
//! <cache_dir>/lock                      flock: shared while pulling, exclusive to prune
//! <cache_dir>/blobs/sha256/<hex>        content-addressed manifests, configs, layers, signatures
//! <cache_dir>/refs/<sha256(ref)>.json   {"reference": "host/repo:tag", "digest": "sha256:..."}
//! <cache_dir>/images/<hex>.json         per pulled digest: references, last use, signature state
//! <cache_dir>/tmp/                      writes land here, then rename(2) into place
//! ```
//!
//! Concurrent pulls are safe: every file is written to `tmp/` and renamed,
//! blobs are immutable and verified on every read, and pruning takes the lock
//! exclusively so it never removes what a pull is writing. Nothing secret is
//! ever stored: references, digests and public content only.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest;
use crate::error::ImageError;
use crate::oci::{self, AnyManifest};

/// What is known about an image's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum SigState {
    /// Never looked (verification was off when it was pulled).
    NotFetched,
    /// Looked: the registry had no signature.
    Absent,
    /// Signatures (cached) for `subject`: the cosign `.sig` manifest and/or
    /// Sigstore bundle referrer manifests (cosign v3).
    Present {
        subject: String,
        /// The legacy `sha256-<hex>.sig` manifest.
        manifest: Option<String>,
        /// Referrer manifests holding Sigstore bundles.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bundles: Vec<String>,
    },
}

/// Per-digest bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub digest: String,
    #[serde(default)]
    pub references: BTreeSet<String>,
    #[serde(default)]
    pub last_used: u64,
    /// Signature state per repository (`registry/repository`): cosign keeps
    /// signatures next to the image, so the same digest pulled from two
    /// repositories can be signed in one and not in the other.
    #[serde(default)]
    pub signatures: BTreeMap<String, SigState>,
}

#[derive(Serialize, Deserialize)]
struct RefFile {
    reference: String,
    digest: String,
}

/// An open cache holding the lock.
pub(crate) struct Cache {
    root: PathBuf,
    // Held for its flock; released on drop.
    _lock: File,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> ImageError {
    move |e| ImageError::io(context, e)
}

impl Cache {
    fn prepare(root: &Path) -> Result<File, ImageError> {
        for sub in ["blobs/sha256", "refs", "images", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(io(format!(
                "create the image cache directory {}",
                d.display()
            )))?;
        }
        let lock = root.join("lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(io(format!("open {}", lock.display())))
    }

    /// Opens the cache, waiting for the lock (shared, or exclusive for prune).
    pub(crate) fn open(root: &Path, exclusive: bool) -> Result<Cache, ImageError> {
        let f = Self::prepare(root)?;
        let r = if exclusive { f.lock() } else { f.lock_shared() };
        r.map_err(io(format!("lock {}", root.join("lock").display())))?;
        Ok(Cache {
            root: root.to_path_buf(),
            _lock: f,
        })
    }

    /// Exclusive lock without waiting; `None` when a pull is running.
    pub(crate) fn try_open_exclusive(root: &Path) -> Result<Option<Cache>, ImageError> {
        let f = Self::prepare(root)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Cache {
                root: root.to_path_buf(),
                _lock: f,
            })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(ImageError::io(
                format!("lock {}", root.join("lock").display()),
                e,
            )),
        }
    }

    fn blob_path(&self, d: &str) -> Result<PathBuf, ImageError> {
        let hex = digest::hex_part(d).map_err(|e| ImageError::corrupt(d, e))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    fn write_atomic(&self, dest: &Path, data: &[u8]) -> Result<(), ImageError> {
        let tmp = self.root.join("tmp").join(format!(
            "{}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let res = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, dest)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(io(format!("write {}", dest.display())))
    }

    /// Reads a blob and checks its digest; a damaged blob is removed and
    /// reported as absent, so the next pull with network repairs it.
    pub(crate) fn read_blob(&self, d: &str) -> Result<Option<Vec<u8>>, ImageError> {
        let p = self.blob_path(d)?;
        let data = match fs::read(&p) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io(format!("read {}", p.display()), e)),
        };
        if digest::check(&data, d).is_err() {
            let _ = fs::remove_file(&p);
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// Stores a blob under its digest.
    pub(crate) fn write_blob(&self, data: &[u8]) -> Result<String, ImageError> {
        let d = digest::sha256(data);
        let p = self.blob_path(&d)?;
        if !p.exists() {
            self.write_atomic(&p, data)?;
        }
        Ok(d)
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        let key = digest::sha256(reference.as_bytes());
        self.root.join("refs").join(format!("{}.json", &key[7..]))
    }

    /// The digest a tag reference resolved to at its last network pull.
    pub(crate) fn get_ref(&self, reference: &str) -> Result<Option<String>, ImageError> {
        let p = self.ref_path(reference);
        let text = match fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io(format!("read {}", p.display()), e)),
        };
        // A damaged ref file is a cache miss, not an error.
        Ok(serde_json::from_slice::<RefFile>(&text)
            .ok()
            .filter(|r| r.reference == reference && digest::hex_part(&r.digest).is_ok())
            .map(|r| r.digest))
    }

    /// Records what a tag resolved to.
    pub(crate) fn set_ref(&self, reference: &str, d: &str) -> Result<(), ImageError> {
        let body = serde_json::to_vec(&RefFile {
            reference: reference.to_string(),
            digest: d.to_string(),
        })
        .map_err(|e| ImageError::io("encode ref", std::io::Error::other(e)))?;
        self.write_atomic(&self.ref_path(reference), &body)
    }

    fn entry_path(&self, d: &str) -> Result<PathBuf, ImageError> {
        let hex = digest::hex_part(d).map_err(|e| ImageError::corrupt(d, e))?;
        Ok(self.root.join("images").join(format!("{hex}.json")))
    }

    /// The bookkeeping of a pulled digest.
    pub(crate) fn get_entry(&self, d: &str) -> Result<Option<Entry>, ImageError> {
        let p = self.entry_path(d)?;
        match fs::read(&p) {
            Ok(t) => Ok(serde_json::from_slice::<Entry>(&t)
                .ok()
                .filter(|e| e.digest == d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::io(format!("read {}", p.display()), e)),
        }
    }

    /// Stores an entry.
    pub(crate) fn put_entry(&self, e: &Entry) -> Result<(), ImageError> {
        let body = serde_json::to_vec_pretty(e)
            .map_err(|x| ImageError::io("encode cache entry", std::io::Error::other(x)))?;
        self.write_atomic(&self.entry_path(&e.digest)?, &body)
    }

    fn all_entries(&self) -> Result<Vec<Entry>, ImageError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for f in fs::read_dir(&dir).map_err(io(format!("list {}", dir.display())))? {
            let f = f.map_err(io(format!("list {}", dir.display())))?;
            if let Ok(t) = fs::read(f.path())
                && let Ok(e) = serde_json::from_slice::<Entry>(&t)
                && digest::hex_part(&e.digest).is_ok()
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn blob_sizes(&self) -> Result<BTreeMap<String, u64>, ImageError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = BTreeMap::new();
        for f in fs::read_dir(&dir).map_err(io(format!("list {}", dir.display())))? {
            let f = f.map_err(io(format!("list {}", dir.display())))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            out.insert(format!("sha256:{}", f.file_name().to_string_lossy()), size);
        }
        Ok(out)
    }

    /// Total bytes of cached blobs.
    pub(crate) fn total_bytes(&self) -> Result<u64, ImageError> {
        Ok(self.blob_sizes()?.values().sum())
    }

    /// Blobs an entry needs: its manifest (and, for an index, the cached
    /// child manifests), their configs and layers, and its signature blobs.
    fn reachable(&self, e: &Entry, sizes: &BTreeMap<String, u64>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut manifests = vec![e.digest.clone()];
        for s in e.signatures.values() {
            if let SigState::Present {
                manifest, bundles, ..
            } = s
            {
                manifests.extend(manifest.iter().cloned());
                manifests.extend(bundles.iter().cloned());
            }
        }
        while let Some(m) = manifests.pop() {
            if !sizes.contains_key(&m) || !out.insert(m.clone()) {
                continue;
            }
            let Ok(Some(bytes)) = self.read_blob(&m) else {
                continue;
            };
            match oci::parse_manifest(&bytes) {
                Ok(AnyManifest::Index(i)) => {
                    manifests.extend(i.manifests.into_iter().map(|d| d.digest));
                }
                Ok(AnyManifest::Image(im)) => {
                    out.insert(im.config.digest);
                    out.extend(im.layers.into_iter().map(|l| l.digest));
                }
                Err(_) => {}
            }
        }
        out
    }
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Digests of the images removed from the cache.
    pub images_removed: Vec<String>,
    /// Number of blob files deleted.
    pub blobs_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Bytes still cached.
    pub bytes_kept: u64,
}

/// Evicts least-recently-used images until the cache fits `max_bytes`
/// (everything with `all`), never `keep`, then deletes blobs no remaining
/// image needs and leftovers of interrupted writes.
pub(crate) fn prune_locked(
    cache: &Cache,
    max_bytes: u64,
    all: bool,
    keep: Option<&str>,
) -> Result<PruneReport, ImageError> {
    let sizes = cache.blob_sizes()?;
    let mut entries = cache.all_entries()?;
    // Oldest first.
    entries.sort_by_key(|e| (e.last_used, e.digest.clone()));
    let reach: Vec<BTreeSet<String>> = entries.iter().map(|e| cache.reachable(e, &sizes)).collect();
    let mut kept: Vec<bool> = entries
        .iter()
        .map(|e| !all || keep == Some(e.digest.as_str()))
        .collect();
    let used = |kept: &[bool]| -> u64 {
        let mut u = BTreeSet::new();
        for (i, r) in reach.iter().enumerate() {
            if kept[i] {
                u.extend(r.iter());
            }
        }
        u.iter().map(|d| sizes.get(*d).copied().unwrap_or(0)).sum()
    };
    for i in 0..entries.len() {
        if used(&kept) <= max_bytes {
            break;
        }
        if keep != Some(entries[i].digest.as_str()) {
            kept[i] = false;
        }
    }
    let mut report = PruneReport::default();
    let mut live: BTreeSet<&String> = BTreeSet::new();
    let mut live_digests: BTreeSet<&str> = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        if kept[i] {
            live.extend(reach[i].iter());
            live_digests.insert(e.digest.as_str());
        } else {
            let p = cache.entry_path(&e.digest)?;
            fs::remove_file(&p).map_err(io(format!("remove {}", p.display())))?;
            report.images_removed.push(e.digest.clone());
        }
    }
    // Tags pointing at removed images.
    let refs = cache.root.join("refs");
    for f in fs::read_dir(&refs).map_err(io(format!("list {}", refs.display())))? {
        let f = f.map_err(io(format!("list {}", refs.display())))?;
        let keep_ref = fs::read(f.path())
            .ok()
            .and_then(|t| serde_json::from_slice::<RefFile>(&t).ok())
            .is_some_and(|r| live_digests.contains(r.digest.as_str()));
        if !keep_ref {
            let _ = fs::remove_file(f.path());
        }
    }
    for (d, size) in &sizes {
        if live.contains(d) {
            report.bytes_kept += size;
            continue;
        }
        let p = cache.blob_path(d).unwrap_or_else(|_| {
            // A stray file name that is not a digest: remove it all the same.
            cache.root.join("blobs/sha256").join(&d[7..])
        });
        fs::remove_file(&p).map_err(io(format!("remove {}", p.display())))?;
        report.blobs_removed += 1;
        report.bytes_freed += size;
    }
    // Under the exclusive lock no write is in flight: tmp/ is all debris.
    let tmp = cache.root.join("tmp");
    if let Ok(rd) = fs::read_dir(&tmp) {
        for f in rd.flatten() {
            let _ = fs::remove_file(f.path());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_refs_entries() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path(), false).unwrap();
        let d = c.write_blob(b"hello").unwrap();
        assert_eq!(c.read_blob(&d).unwrap().unwrap(), b"hello");
        // A damaged blob reads as absent and is removed.
        fs::write(c.blob_path(&d).unwrap(), b"hellO").unwrap();
        assert!(c.read_blob(&d).unwrap().is_none());
        assert!(!c.blob_path(&d).unwrap().exists());
        assert!(c.read_blob("sha256:../../x").is_err());
        c.set_ref("r/a:1", &d).unwrap();
        assert_eq!(c.get_ref("r/a:1").unwrap(), Some(d.clone()));
        assert_eq!(c.get_ref("r/a:2").unwrap(), None);
        let e = Entry {
            digest: d.clone(),
            references: ["r/a:1".to_string()].into(),
            last_used: 5,
            signatures: [("r/a".to_string(), SigState::Absent)].into(),
        };
        c.put_entry(&e).unwrap();
        assert_eq!(c.get_entry(&d).unwrap().unwrap().last_used, 5);
        assert!(
            fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn prune_is_lru_and_collects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path(), true).unwrap();
        // Three "images" whose manifests are plain blobs of 1000 bytes.
        let mut ds = Vec::new();
        for (i, used) in [(0u8, 30u64), (1, 10), (2, 20)] {
            let d = c.write_blob(&vec![i; 1000]).unwrap();
            c.put_entry(&Entry {
                digest: d.clone(),
                references: BTreeSet::new(),
                last_used: used,
                signatures: BTreeMap::new(),
            })
            .unwrap();
            c.set_ref(&format!("r/a:{i}"), &d).unwrap();
            ds.push(d);
        }
        let stray = c.write_blob(b"stray").unwrap();
        fs::write(dir.path().join("tmp/junk"), b"x").unwrap();
        let r = prune_locked(&c, 2000, false, None).unwrap();
        // The least recently used (image 1) goes, and the stray blob.
        assert_eq!(r.images_removed, vec![ds[1].clone()]);
        assert_eq!(r.blobs_removed, 2);
        assert_eq!(r.bytes_kept, 2000);
        assert!(c.read_blob(&stray).unwrap().is_none());
        assert!(c.get_ref("r/a:1").unwrap().is_none());
        assert!(c.get_ref("r/a:0").unwrap().is_some());
        assert!(!dir.path().join("tmp/junk").exists());
        // Everything, except the one kept.
        let r = prune_locked(&c, 0, true, Some(&ds[0])).unwrap();
        assert_eq!(r.images_removed, vec![ds[2].clone()]);
        assert_eq!(r.bytes_kept, 1000);
    }
}
