//! Schema and versioned migrations.
//!
//! `PRAGMA user_version` holds the number of steps applied. Each step runs in
//! its own IMMEDIATE transaction together with the version bump, so a crash
//! leaves the database at a whole version and two processes opening the same
//! file at once cannot apply a step twice. Steps are append-only: never edit
//! one that has shipped, add a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// Version 1: programs, their metadata, maps, links, the link id counter, volumes.
const V1: &str = r#"
CREATE TABLE programs (
    id           INTEGER PRIMARY KEY,   -- kernel program id
    name         TEXT    NOT NULL,
    kind         TEXT    NOT NULL,      -- ProgramKind::as_str
    section      TEXT    NOT NULL,
    attach_fn    TEXT,
    source       TEXT    NOT NULL,      -- JSON BytecodeSource
    global_data  TEXT    NOT NULL,      -- JSON {name: "hex"}
    map_owner_id INTEGER NOT NULL,
    map_pin_path TEXT    NOT NULL,
    pin_path     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX programs_kind ON programs(kind);
CREATE INDEX programs_map_owner ON programs(map_owner_id);

CREATE TABLE program_metadata (
    program_id INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (program_id, key)
) STRICT, WITHOUT ROWID;
-- Selectors look up (key, value) pairs: this index makes each pair a range scan
-- (and covers program_id, the table's primary key, so no table lookup is needed).
CREATE INDEX program_metadata_kv ON program_metadata(key, value);

-- No foreign key to programs: map rows outlive their owner while other
-- programs still share the directory; gc removes them explicitly.
CREATE TABLE maps (
    owner_id  INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    kernel_id INTEGER NOT NULL,
    pin_path  TEXT    NOT NULL,
    PRIMARY KEY (owner_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE links (
    id             INTEGER PRIMARY KEY,  -- bpfman link id (from the counter)
    program_id     INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
    spec           TEXT    NOT NULL,     -- JSON AttachSpec
    pin_path       TEXT    NOT NULL,
    kernel_link_id INTEGER,
    metadata       TEXT    NOT NULL,     -- JSON {key: value}
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX links_program ON links(program_id);

-- Named monotonic counters; ids handed out are never reused, even after deletes.
CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('link_id', 0);

CREATE TABLE volumes (
    volume_id   TEXT    PRIMARY KEY,
    target_path TEXT    NOT NULL UNIQUE,
    bpffs_path  TEXT    NOT NULL,
    attributes  TEXT    NOT NULL,        -- JSON {key: value}
    maps        TEXT    NOT NULL,        -- JSON [VolumeMap]
    readonly    INTEGER NOT NULL,
    fs_group    INTEGER,
    created_at  INTEGER NOT NULL
) STRICT;
"#;

/// Version 2: the network hook of each XDP/TC/TCX link (namespace inode and
/// interface index identify a hook), and the object bytes of programs that a
/// dispatcher must reload as extensions (deduplicated by digest).
const V2: &str = r#"
CREATE TABLE net_links (
    link_id   INTEGER PRIMARY KEY REFERENCES links(id) ON DELETE CASCADE,
    hook_kind TEXT    NOT NULL,      -- HookKind::as_str
    netns_ino INTEGER NOT NULL,
    ifindex   INTEGER NOT NULL,
    iface     TEXT    NOT NULL,
    netns     TEXT                   -- namespace path given at attach
) STRICT;
CREATE INDEX net_links_hook ON net_links(hook_kind, netns_ino, ifindex);

CREATE TABLE objects (
    digest TEXT PRIMARY KEY,         -- sha256 hex of the bytes
    bytes  BLOB NOT NULL
) STRICT;

CREATE TABLE program_objects (
    program_id INTEGER PRIMARY KEY REFERENCES programs(id) ON DELETE CASCADE,
    digest     TEXT    NOT NULL REFERENCES objects(digest)
) STRICT;
CREATE INDEX program_objects_digest ON program_objects(digest);
"#;

/// Version 3: the kernel facts of each managed program as read at its load
/// (`KernelProgramInfo`), so `list` need not ask the kernel per program.
/// Columns rather than JSON: decoding a thousand JSON rows cost more than
/// the rest of the query.
const V3: &str = r#"
CREATE TABLE program_kernel_info (
    program_id     INTEGER PRIMARY KEY REFERENCES programs(id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    program_type   INTEGER NOT NULL,
    loaded_at      TEXT    NOT NULL,
    tag            TEXT    NOT NULL,
    gpl_compatible INTEGER NOT NULL,
    map_ids        TEXT    NOT NULL,  -- space-separated kernel map ids
    btf_id         INTEGER NOT NULL,
    bytes_xlated   INTEGER NOT NULL,
    jited          INTEGER NOT NULL,
    bytes_jited    INTEGER NOT NULL,
    bytes_memlock  INTEGER NOT NULL,
    verified_insns INTEGER NOT NULL
) STRICT;
"#;

/// Version 4: the eight numeric kernel facts in one column. SQLite and
/// rusqlite spend about the same on each column read whatever it holds, and
/// `list` reads these for every program: with a thousand programs, the eight
/// integer columns cost more than parsing the same numbers from one text.
const V4: &str = r#"
CREATE TABLE program_kernel_info_v4 (
    program_id INTEGER PRIMARY KEY REFERENCES programs(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    loaded_at  TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    map_ids    TEXT    NOT NULL,  -- space-separated kernel map ids
    numbers    TEXT    NOT NULL   -- space-separated, in this order: program_type
                                  -- gpl_compatible btf_id bytes_xlated jited
                                  -- bytes_jited bytes_memlock verified_insns
                                  -- (booleans as 0/1)
) STRICT;
INSERT INTO program_kernel_info_v4 (program_id, name, loaded_at, tag, map_ids, numbers)
    SELECT program_id, name, loaded_at, tag, map_ids,
           program_type || ' ' || gpl_compatible || ' ' || btf_id || ' ' || bytes_xlated
             || ' ' || jited || ' ' || bytes_jited || ' ' || bytes_memlock
             || ' ' || verified_insns
    FROM program_kernel_info;
DROP TABLE program_kernel_info;
ALTER TABLE program_kernel_info_v4 RENAME TO program_kernel_info;
"#;

/// Every migration step, in order; step `i` takes the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Reads `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection) -> Result<u32> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    u32::try_from(v).map_err(|_| StoreError::Migration(format!("invalid schema version {v}")))
}

/// Applies the missing steps. Refuses a database written by a newer bpfman
/// rather than guessing how to read it.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        // Cheap check outside a transaction: the common case is "up to date".
        let current = user_version(conn)?;
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        check_not_newer(current)?;

        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read under the write lock: another process may have migrated meanwhile.
        let current = user_version(&tx)?;
        check_not_newer(current)?;
        let Some(step) = MIGRATIONS.get(current as usize) else {
            return Ok(());
        };
        let next = current + 1;
        tx.execute_batch(step)
            .map_err(|e| StoreError::Migration(format!("step to version {next}: {e}")))?;
        tx.pragma_update(None, "user_version", next)?;
        tx.commit()?;
    }
}

fn check_not_newer(current: u32) -> Result<()> {
    if current > SCHEMA_VERSION {
        return Err(StoreError::Migration(format!(
            "database schema version {current} is newer than this bpfman supports \
             ({SCHEMA_VERSION}); upgrade bpfman or move the database aside"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store at version 3 with kernel facts keeps them through the step to 4.
    #[test]
    fn kernel_facts_survive_the_step_to_one_numbers_column() {
        let mut conn = Connection::open_in_memory().unwrap();
        for step in &MIGRATIONS[..3] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(crate::test_rows::PROGRAM_7).unwrap();
        conn.execute_batch(
            "INSERT INTO program_kernel_info VALUES \
               (7, 'count_sched_swi', 5, '2026-12-07T01:43:20Z', 'd4d950593910dd42', 1, \
                '107 108', 33, 144, 0, 91, 4096, 11);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let got = crate::facts::kernel_infos(&conn).unwrap();
        let k = &got[&bpfman_core::ProgramId(7)];
        assert_eq!(
            (k.program_type, k.gpl_compatible, k.btf_id, k.bytes_xlated),
            (5, true, 33, 144)
        );
        assert_eq!(
            (k.jited, k.bytes_jited, k.bytes_memlock, k.verified_insns),
            (false, 91, 4096, 11)
        );
        assert_eq!(
            (k.name.as_str(), k.loaded_at.as_str(), k.tag.as_str()),
            (
                "count_sched_swi",
                "2026-12-07T01:43:20Z",
                "d4d950593910dd42"
            )
        );
        assert_eq!(
            k.map_ids,
            [bpfman_core::MapId(107), bpfman_core::MapId(108)]
        );
        // Still tied to its program.
        conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM programs WHERE id = 7;")
            .unwrap();
        assert!(crate::facts::kernel_infos(&conn).unwrap().is_empty());
    }
}
