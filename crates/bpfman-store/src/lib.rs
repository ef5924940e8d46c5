//! bpfman-store: SQLite persistence for bpfman's records.
//!
//! One database file (`<runtime>/db/store.db`) holds the programs bpfman
//! loaded (with their metadata labels), the maps pinned for them, the links it
//! made, and the CSI volumes it published. Reads go through [`Store`]; every
//! write goes through [`Store::write`], which runs a closure inside one
//! IMMEDIATE transaction so a manager operation commits all of its rows or none.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated on open.
//! Several connections (several processes) may share the file: WAL mode lets
//! readers run beside the writer, and writers queue behind a 30 s busy timeout.

mod error;
mod facts;
mod net;
mod queries;
mod schema;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bpfman_core::action::Action;
use bpfman_core::dispatcher::HookKey;
use bpfman_core::model::NetLinkRecord;
use bpfman_core::{
    KernelLinkId, KernelProgramInfo, LinkId, LinkRecord, MapRecord, ProgramId, ProgramKind,
    ProgramRecord, Selector, VolumeRecord,
};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, FileControl, OpenFlags, Transaction, TransactionBehavior};

pub use error::{OpenFailure, Result, StoreError};
pub use schema::SCHEMA_VERSION;

/// How long a writer waits for another connection's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Retries `f` while SQLite reports the database busy, up to [`BUSY_TIMEOUT`].
///
/// Switching the journal mode of a fresh file needs an exclusive lock, and
/// SQLite answers BUSY at once (without its busy handler, to avoid deadlock)
/// when another connection is opening the same file at that moment.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(e) if error::is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// A connection to bpfman's database. Not `Sync`: share it behind a lock, or
/// open one `Store` per thread (they coordinate through SQLite's locks).
pub struct Store {
    conn: Connection,
    /// The WAL file of an on-disk store (none in memory).
    wal: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .finish()
    }
}

/// WAL size after which a commit checkpoints the WAL into the database and
/// truncates it (about a dozen loads' worth).
pub const WAL_CHECKPOINT_BYTES: u64 = 256 << 10;

impl Store {
    /// Opens the database at `path` (creating the file, not its directory) and
    /// migrates it to [`SCHEMA_VERSION`]. Uses WAL mode, a 30 s busy timeout,
    /// foreign keys ON and synchronous NORMAL.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        // Set before anything else touches the file, so the first statement
        // already waits instead of failing when another process holds a lock.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // The first real read happens here, so a file that is not a database
        // fails as an open error. The mode SQLite reports back is not checked:
        // where WAL is unavailable it keeps a rollback journal, which is slower
        // but still correct with the busy timeout.
        let _mode: String =
            retry_busy(|| conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)))
                .map_err(open_err)?;
        // Each CLI call is a process that opens, commits once and closes. By
        // default the last connection to close checkpoints the WAL into the
        // database and deletes it: two fsyncs and an unlink per call, most of
        // a cold `bpfman load` on a disk-backed runtime dir. Instead the WAL
        // (and its index) stay between processes and are checkpointed by
        // [`Store::bound_wal`] every WAL_CHECKPOINT_BYTES; reopening replays
        // the WAL, so nothing committed is lost.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(open_err)?;
        let mut persist: std::ffi::c_int = 1;
        conn.file_control(None::<&str>, FileControl::PersistWal(&mut persist))
            .map_err(open_err)?;
        // The first write (a migration) is where a file system without
        // working locks or shared memory shows itself: still an open error.
        Self::configure(conn).map_err(|e| match e {
            StoreError::Sqlite(source) => open_err(source),
            other => other,
        })
    }

    /// Opens a private in-memory database (for tests and dry runs).
    pub fn open_in_memory() -> Result<Store> {
        Self::configure(Connection::open_in_memory()?)
    }

    fn configure(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // With WAL, NORMAL only risks the last commits on power loss, never
        // corruption; a lost commit is repaired by gc like a crash mid-operation.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        schema::migrate(&mut conn)?;
        let wal = conn
            .path()
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}-wal").into());
        Ok(Store { conn, wal })
    }

    /// Checkpoints and truncates the WAL once it is over
    /// [`WAL_CHECKPOINT_BYTES`]. SQLite's own auto-checkpoint does not do
    /// here: the WAL outlives each process (see `open`), and the first opener
    /// rebuilds the WAL index with nothing marked as checkpointed, so with
    /// one commit per CLI process the WAL was never restarted and grew
    /// without bound (8 MB after 400 loads; every open then read all of it).
    fn bound_wal(&self) {
        let Some(wal) = &self.wal else { return };
        if std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_CHECKPOINT_BYTES) {
            // The commit is done; a checkpoint that cannot run now (another
            // process reading) is retried by the next commit.
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }

    /// Gives back the heap this connection holds that no statement is using:
    /// the page cache (up to 2 MB by default, kept full after a large burst of
    /// writes) and the prepared statements cached for reuse. A long-lived
    /// daemon calls it once it goes quiet; later queries refill both.
    pub fn release_memory(&self) -> Result<()> {
        self.conn.flush_prepared_statement_cache();
        self.conn.release_memory()?;
        Ok(())
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32> {
        schema::user_version(&self.conn)
    }

    /// Runs `f` inside one IMMEDIATE transaction: commits when `f` returns
    /// `Ok`, rolls back (nothing persisted) when it returns `Err`.
    ///
    /// IMMEDIATE takes the write lock up front, so two writers never both read
    /// and then collide on upgrade; the second one waits (busy timeout).
    pub fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&StoreTx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let out = {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| E::from(e.into()))?;
            let stx = StoreTx { tx };
            match f(&stx) {
                Ok(v) => {
                    stx.tx.commit().map_err(|e| E::from(e.into()))?;
                    v
                }
                Err(e) => {
                    // The caller's error is the one worth reporting; if the
                    // rollback itself fails SQLite rolls back on close anyway.
                    let _ = stx.tx.rollback();
                    return Err(e);
                }
            }
        };
        self.bound_wal();
        Ok(out)
    }

    /// The program recorded under `id`.
    pub fn get_program(&self, id: ProgramId) -> Result<Option<ProgramRecord>> {
        queries::get_program(&self.conn, id.get())
    }

    /// Programs of `kind` (any kind when `None`) whose metadata carries every
    /// pair of `selector` (an empty selector matches all), ordered by id.
    pub fn list_programs(
        &self,
        kind: Option<ProgramKind>,
        selector: &Selector,
    ) -> Result<Vec<ProgramRecord>> {
        queries::list_programs(&self.conn, kind, selector)
    }

    /// Ids of the programs whose `map_owner_id` is `owner` (the owner itself
    /// included while it is recorded), ordered.
    pub fn programs_using_maps_of(&self, owner: ProgramId) -> Result<Vec<ProgramId>> {
        queries::programs_using_maps_of(&self.conn, owner.get())
            .map(|v| v.into_iter().map(ProgramId).collect())
    }

    /// Map rows of the directory of program `owner`, ordered by name.
    pub fn maps_of(&self, owner: ProgramId) -> Result<Vec<MapRecord>> {
        queries::maps_of(&self.conn, owner.get())
    }

    /// Every map row, ordered by owner then name.
    pub fn all_maps(&self) -> Result<Vec<MapRecord>> {
        queries::all_maps(&self.conn)
    }

    /// The id [`StoreTx::next_link_id`] would hand out now, without taking
    /// it: a caller holding the writer lock can use it for pins before its
    /// transaction, and a failure before the commit leaves the store as it
    /// was ([`StoreTx::insert_link`] moves the counter past the id).
    pub fn peek_next_link_id(&self) -> Result<LinkId> {
        queries::peek_next_link_id(&self.conn).map(LinkId)
    }

    /// The link recorded under `id`.
    pub fn get_link(&self, id: LinkId) -> Result<Option<LinkRecord>> {
        queries::get_link(&self.conn, id.get())
    }

    /// Links of one program, ordered by id.
    pub fn links_of(&self, program_id: ProgramId) -> Result<Vec<LinkRecord>> {
        queries::links_of(&self.conn, program_id.get())
    }

    /// Every link, ordered by id.
    pub fn list_links(&self) -> Result<Vec<LinkRecord>> {
        queries::list_links(&self.conn)
    }

    /// The volume recorded under `volume_id`.
    pub fn get_volume(&self, volume_id: &str) -> Result<Option<VolumeRecord>> {
        queries::get_volume(&self.conn, volume_id)
    }

    /// The volume published at `target_path`.
    pub fn volume_by_target(&self, target_path: &str) -> Result<Option<VolumeRecord>> {
        queries::volume_by_target(&self.conn, target_path)
    }

    /// Every volume, ordered by volume id.
    pub fn list_volumes(&self) -> Result<Vec<VolumeRecord>> {
        queries::list_volumes(&self.conn)
    }

    /// The network hook of a link, if it is an XDP/TC/TCX link.
    pub fn net_link(&self, link_id: LinkId) -> Result<Option<NetLinkRecord>> {
        net::net_link(&self.conn, link_id.get())
    }

    /// The links on one network hook, oldest first.
    pub fn net_links_on(&self, hook: &HookKey) -> Result<Vec<NetLinkRecord>> {
        net::net_links_on(&self.conn, hook)
    }

    /// Every network link.
    pub fn list_net_links(&self) -> Result<Vec<NetLinkRecord>> {
        net::list_net_links(&self.conn)
    }

    /// The object bytes a program was loaded from, when they were kept.
    pub fn object_of(&self, program_id: ProgramId) -> Result<Option<Vec<u8>>> {
        net::object_of(&self.conn, program_id.get())
    }

    /// The kernel facts recorded at load, by program id (programs loaded
    /// before schema version 3 have none).
    pub fn kernel_infos(&self) -> Result<BTreeMap<ProgramId, KernelProgramInfo>> {
        facts::kernel_infos(&self.conn)
    }

    /// Number of recorded programs.
    pub fn program_count(&self) -> Result<u64> {
        queries::program_count(&self.conn)
    }
}

/// A write transaction handed to the closure of [`Store::write`]. Reads made
/// through it see the transaction's own uncommitted writes.
pub struct StoreTx<'a> {
    tx: Transaction<'a>,
}

impl StoreTx<'_> {
    /// Records a program and its metadata rows. A program already recorded
    /// under the same id is refused with [`StoreError::AlreadyExists`].
    pub fn insert_program(&self, p: &ProgramRecord) -> Result<()> {
        queries::insert_program(&self.tx, p)
    }

    /// Records a map row. The key is `(owner_id, name)`; a duplicate is
    /// refused with [`StoreError::AlreadyExists`] (never silently replaced).
    pub fn insert_map(&self, m: &MapRecord) -> Result<()> {
        queries::insert_map(&self.tx, m)
    }

    /// Allocates the next link id: starts at 1, monotonic, never reused even
    /// after deletes or across restarts.
    pub fn next_link_id(&self) -> Result<LinkId> {
        queries::next_link_id(&self.tx).map(LinkId)
    }

    /// Records a link. Its program must be recorded ([`StoreError::NotFound`]
    /// otherwise); a duplicate id is refused with [`StoreError::AlreadyExists`].
    pub fn insert_link(&self, l: &LinkRecord) -> Result<()> {
        queries::insert_link(&self.tx, l)
    }

    /// Deletes a program with its metadata and link rows (map rows stay: other
    /// programs may share them). Returns whether the program was recorded.
    pub fn delete_program(&self, id: ProgramId) -> Result<bool> {
        queries::delete_program(&self.tx, id.get())
    }

    /// Deletes a link row. Returns whether it was recorded.
    pub fn delete_link(&self, id: LinkId) -> Result<bool> {
        queries::delete_link(&self.tx, id.get())
    }

    /// Deletes the map rows of an owner directory. Returns how many went.
    pub fn delete_maps(&self, owner: ProgramId) -> Result<usize> {
        queries::delete_maps(&self.tx, owner.get())
    }

    /// Records a volume. Both the volume id and the target path must be unused
    /// ([`StoreError::AlreadyExists`] names the one that is not).
    pub fn insert_volume(&self, v: &VolumeRecord) -> Result<()> {
        queries::insert_volume(&self.tx, v)
    }

    /// Deletes a volume row. Returns whether it was recorded.
    pub fn delete_volume(&self, volume_id: &str) -> Result<bool> {
        queries::delete_volume(&self.tx, volume_id)
    }

    /// Records the network hook of a link (after the link row).
    pub fn insert_net_link(&self, n: &NetLinkRecord) -> Result<()> {
        net::insert_net_link(&self.tx, n)
    }

    /// Records the kernel link that attaches a dispatcher hook (XDP; `None`
    /// for TC) in the rows of every link on it, which share it: a hook put
    /// back after it was emptied is attached by a new link. Returns how many
    /// rows changed.
    pub fn set_hook_kernel_link(
        &self,
        hook: &HookKey,
        kernel_link_id: Option<KernelLinkId>,
    ) -> Result<usize> {
        net::set_hook_kernel_link(&self.tx, hook, kernel_link_id.map(|k| k.get()))
    }

    /// Records the kernel facts of a program just loaded (after its row).
    pub fn put_kernel_info(&self, info: &KernelProgramInfo) -> Result<()> {
        facts::put_kernel_info(&self.tx, info)
    }

    /// Keeps the object bytes a program was loaded from (deduplicated by digest).
    pub fn put_object(&self, program_id: ProgramId, digest: &str, bytes: &[u8]) -> Result<()> {
        net::put_object(&self.tx, program_id.get(), digest, bytes)
    }

    /// Applies the store side of a gc plan step (`DeleteProgram`, `DeleteLink`,
    /// `DeleteMaps`, `DeleteVolume`); filesystem actions are ignored. Rows
    /// already gone are not an error, so a re-run converges.
    pub fn apply(&self, action: &Action) -> Result<()> {
        queries::apply(&self.tx, action)
    }

    /// See [`Store::get_program`].
    pub fn get_program(&self, id: ProgramId) -> Result<Option<ProgramRecord>> {
        queries::get_program(&self.tx, id.get())
    }

    /// See [`Store::list_programs`].
    pub fn list_programs(
        &self,
        kind: Option<ProgramKind>,
        selector: &Selector,
    ) -> Result<Vec<ProgramRecord>> {
        queries::list_programs(&self.tx, kind, selector)
    }

    /// See [`Store::programs_using_maps_of`].
    pub fn programs_using_maps_of(&self, owner: ProgramId) -> Result<Vec<ProgramId>> {
        queries::programs_using_maps_of(&self.tx, owner.get())
            .map(|v| v.into_iter().map(ProgramId).collect())
    }

    /// See [`Store::maps_of`].
    pub fn maps_of(&self, owner: ProgramId) -> Result<Vec<MapRecord>> {
        queries::maps_of(&self.tx, owner.get())
    }

    /// See [`Store::get_link`].
    pub fn get_link(&self, id: LinkId) -> Result<Option<LinkRecord>> {
        queries::get_link(&self.tx, id.get())
    }

    /// See [`Store::links_of`].
    pub fn links_of(&self, program_id: ProgramId) -> Result<Vec<LinkRecord>> {
        queries::links_of(&self.tx, program_id.get())
    }

    /// See [`Store::list_links`].
    pub fn list_links(&self) -> Result<Vec<LinkRecord>> {
        queries::list_links(&self.tx)
    }

    /// See [`Store::get_volume`].
    pub fn get_volume(&self, volume_id: &str) -> Result<Option<VolumeRecord>> {
        queries::get_volume(&self.tx, volume_id)
    }

    /// See [`Store::volume_by_target`].
    pub fn volume_by_target(&self, target_path: &str) -> Result<Option<VolumeRecord>> {
        queries::volume_by_target(&self.tx, target_path)
    }

    /// See [`Store::program_count`].
    pub fn program_count(&self) -> Result<u64> {
        queries::program_count(&self.tx)
    }
}

/// Rows the unit tests of several modules insert.
#[cfg(test)]
mod test_rows {
    /// Program 7, a tracepoint, in the `programs` table (unchanged since V1).
    pub(crate) const PROGRAM_7: &str = "INSERT INTO programs (id, name, kind, section, \
        attach_fn, source, global_data, map_owner_id, map_pin_path, pin_path, created_at) \
        VALUES (7, 'p', 'tracepoint', 'tracepoint/a/b', NULL, '{}', '{}', 7, '/m', '/p', 1);";
}
