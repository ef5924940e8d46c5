//! The SQL of every query and the mapping between rows and records.
//!
//! Everything here takes a plain [`Connection`] (a transaction derefs to one)
//! so [`crate::Store`] and [`crate::StoreTx`] share one implementation.
//! Rows are read into raw column values first and decoded afterwards, so a
//! bad row surfaces as [`StoreError::Corrupt`] naming the table and key.

use std::collections::BTreeMap;

use bpfman_core::action::Action;
use bpfman_core::spec::{GlobalData, parse_hex, to_hex};
use bpfman_core::volume::VolumeMap;
use bpfman_core::{
    AttachSpec, BytecodeSource, LinkRecord, MapRecord, Metadata, ProgramKind, ProgramRecord,
    Selector, VolumeRecord,
};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, StoreError, is_foreign_key_violation, is_unique_violation};
use bpfman_core::KernelLinkId;
use bpfman_core::{LinkId, MapId, ProgramId};

// ---------------------------------------------------------------- decoding

/// Converts a stored integer to a u32 id, or says which row holds a bad one.
pub(crate) fn to_u32(v: i64, row: &dyn Fn() -> String, column: &str) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("{}: {column} {v} is out of range", row())))
}

fn from_json<T: DeserializeOwned>(text: &str, row: &dyn Fn() -> String, column: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{}: {column}: {e}", row())))
}

fn to_json<T: Serialize>(value: &T, what: impl FnOnce() -> String) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(format!("{}: {e}", what())))
}

/// Global data is stored as `{name: "hex"}`, the same shape `ProgramRecord` uses in JSON.
fn encode_global_data(gd: &GlobalData) -> BTreeMap<&str, String> {
    gd.iter().map(|(k, v)| (k.as_str(), to_hex(v))).collect()
}

fn decode_global_data(text: &str, row: &dyn Fn() -> String) -> Result<GlobalData> {
    let raw: BTreeMap<String, String> = from_json(text, row, "global_data")?;
    raw.into_iter()
        .map(|(k, v)| match parse_hex(&v) {
            Ok(bytes) => Ok((k, bytes)),
            Err(e) => Err(StoreError::Corrupt(format!(
                "{}: global_data '{k}': {e}",
                row()
            ))),
        })
        .collect()
}

// ---------------------------------------------------------------- programs

const PROGRAM_COLS: &str = "p.id, p.name, p.kind, p.section, p.attach_fn, p.source, \
     p.global_data, p.map_owner_id, p.map_pin_path, p.pin_path, p.created_at";

struct RawProgram {
    id: i64,
    name: String,
    kind: String,
    section: String,
    attach_fn: Option<String>,
    source: String,
    global_data: String,
    map_owner_id: i64,
    map_pin_path: String,
    pin_path: String,
    created_at: i64,
}

impl RawProgram {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawProgram {
            id: r.get(0)?,
            name: r.get(1)?,
            kind: r.get(2)?,
            section: r.get(3)?,
            attach_fn: r.get(4)?,
            source: r.get(5)?,
            global_data: r.get(6)?,
            map_owner_id: r.get(7)?,
            map_pin_path: r.get(8)?,
            pin_path: r.get(9)?,
            created_at: r.get(10)?,
        })
    }

    fn decode(self, metadata: Metadata) -> Result<ProgramRecord> {
        let raw_id = self.id;
        let row = move || format!("programs row {raw_id}");
        let kind: ProgramKind = self
            .kind
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{}: kind: {e}", row())))?;
        Ok(ProgramRecord {
            id: ProgramId(to_u32(self.id, &row, "id")?),
            name: self.name,
            kind,
            section: self.section,
            attach_fn: self.attach_fn,
            source: from_json::<BytecodeSource>(&self.source, &row, "source")?,
            metadata,
            global_data: decode_global_data(&self.global_data, &row)?,
            map_owner_id: ProgramId(to_u32(self.map_owner_id, &row, "map_owner_id")?),
            map_pin_path: self.map_pin_path,
            pin_path: self.pin_path,
            created_at: self.created_at,
        })
    }
}

fn program_metadata(conn: &Connection, id: i64) -> Result<Metadata> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, value FROM program_metadata WHERE program_id = ?1 ORDER BY key",
    )?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Metadata>>()?)
}

/// Above this many rows, [`decode_programs`] reads all metadata in one query
/// instead of one query per row.
const METADATA_BATCH_ROWS: usize = 8;

fn decode_programs(conn: &Connection, raws: Vec<RawProgram>) -> Result<Vec<ProgramRecord>> {
    if raws.len() <= METADATA_BATCH_ROWS {
        return raws
            .into_iter()
            .map(|raw| {
                let md = program_metadata(conn, raw.id)?;
                raw.decode(md)
            })
            .collect();
    }
    let mut all: std::collections::HashMap<i64, Metadata> = std::collections::HashMap::new();
    let mut stmt = conn.prepare_cached("SELECT program_id, key, value FROM program_metadata")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (id, k, v) = row?;
        all.entry(id).or_default().insert(k, v);
    }
    raws.into_iter()
        .map(|raw| {
            let md = all.remove(&raw.id).unwrap_or_default();
            raw.decode(md)
        })
        .collect()
}

pub(crate) fn get_program(conn: &Connection, id: u32) -> Result<Option<ProgramRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PROGRAM_COLS} FROM programs p WHERE p.id = ?1"
    ))?;
    let Some(raw) = stmt.query_row([id], RawProgram::from_row).optional()? else {
        return Ok(None);
    };
    let md = program_metadata(conn, raw.id)?;
    raw.decode(md).map(Some)
}

/// Builds the program query for a kind and selector. Each selector pair is an
/// `IN` subquery answered from the `(key, value)` index, so the cost grows with
/// the number of matching rows, not with the number of programs.
fn list_programs_sql(kind: Option<ProgramKind>, selector: &Selector) -> (String, Vec<String>) {
    let mut sql = format!("SELECT {PROGRAM_COLS} FROM programs p WHERE 1");
    let mut args = Vec::new();
    if let Some(k) = kind {
        args.push(k.as_str().to_string());
        sql.push_str(&format!(" AND p.kind = ?{}", args.len()));
    }
    for (key, value) in &selector.0 {
        args.push(key.clone());
        args.push(value.clone());
        let (ki, vi) = (args.len() - 1, args.len());
        sql.push_str(&format!(
            " AND p.id IN (SELECT program_id FROM program_metadata \
               WHERE key = ?{ki} AND value = ?{vi})"
        ));
    }
    sql.push_str(" ORDER BY p.id");
    (sql, args)
}

pub(crate) fn list_programs(
    conn: &Connection,
    kind: Option<ProgramKind>,
    selector: &Selector,
) -> Result<Vec<ProgramRecord>> {
    let (sql, args) = list_programs_sql(kind, selector);
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(params_from_iter(args.iter()), RawProgram::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    decode_programs(conn, raws)
}

pub(crate) fn programs_using_maps_of(conn: &Connection, owner: u32) -> Result<Vec<u32>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM programs WHERE map_owner_id = ?1 ORDER BY id")?;
    let ids = stmt
        .query_map([owner], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    ids.into_iter()
        .map(|id| to_u32(id, &|| format!("programs row {id}"), "id"))
        .collect()
}

pub(crate) fn program_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM programs", [], |r| r.get(0))?;
    // count(*) is never negative.
    Ok(n.unsigned_abs())
}

pub(crate) fn insert_program(conn: &Connection, p: &ProgramRecord) -> Result<()> {
    let what = || format!("program {}", p.id);
    let source = to_json(&p.source, || format!("{} source", what()))?;
    let global_data = to_json(&encode_global_data(&p.global_data), || {
        format!("{} global data", what())
    })?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO programs (id, name, kind, section, attach_fn, source, global_data, \
           map_owner_id, map_pin_path, pin_path, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    stmt.execute(params![
        p.id.get(),
        p.name,
        p.kind.as_str(),
        p.section,
        p.attach_fn,
        source,
        global_data,
        p.map_owner_id.get(),
        p.map_pin_path,
        p.pin_path,
        p.created_at,
    ])
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists(format!("program {} is already recorded", p.id))
        } else {
            e.into()
        }
    })?;
    let mut md = conn.prepare_cached(
        "INSERT INTO program_metadata (program_id, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (k, v) in &p.metadata {
        md.execute(params![p.id.get(), k, v])?;
    }
    Ok(())
}

pub(crate) fn delete_program(conn: &Connection, id: u32) -> Result<bool> {
    // Explicit deletes rather than relying on ON DELETE CASCADE alone, so the
    // behaviour does not depend on the connection's foreign_keys setting.
    conn.prepare_cached("DELETE FROM program_metadata WHERE program_id = ?1")?
        .execute([id])?;
    conn.prepare_cached(
        "DELETE FROM net_links WHERE link_id IN (SELECT id FROM links WHERE program_id = ?1)",
    )?
    .execute([id])?;
    conn.prepare_cached("DELETE FROM links WHERE program_id = ?1")?
        .execute([id])?;
    crate::net::forget_object(conn, id)?;
    crate::facts::forget_kernel_info(conn, id)?;
    let n = conn
        .prepare_cached("DELETE FROM programs WHERE id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}

// ---------------------------------------------------------------- maps

const MAP_COLS: &str = "owner_id, name, kernel_id, pin_path";

fn read_maps(conn: &Connection, sql: &str, args: &[u32]) -> Result<Vec<MapRecord>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raws = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter()
        .map(|(owner, name, kernel_id, pin_path)| {
            let row = || format!("maps row ({owner}, {name})");
            Ok(MapRecord {
                owner_id: ProgramId(to_u32(owner, &row, "owner_id")?),
                kernel_id: MapId(to_u32(kernel_id, &row, "kernel_id")?),
                name,
                pin_path,
            })
        })
        .collect()
}

pub(crate) fn maps_of(conn: &Connection, owner: u32) -> Result<Vec<MapRecord>> {
    read_maps(
        conn,
        &format!("SELECT {MAP_COLS} FROM maps WHERE owner_id = ?1 ORDER BY name"),
        &[owner],
    )
}

pub(crate) fn all_maps(conn: &Connection) -> Result<Vec<MapRecord>> {
    read_maps(
        conn,
        &format!("SELECT {MAP_COLS} FROM maps ORDER BY owner_id, name"),
        &[],
    )
}

pub(crate) fn insert_map(conn: &Connection, m: &MapRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO maps (owner_id, name, kernel_id, pin_path) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        m.owner_id.get(),
        m.name,
        m.kernel_id.get(),
        m.pin_path
    ])
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists(format!(
                "map '{}' of program {} is already recorded",
                m.name, m.owner_id
            ))
        } else {
            e.into()
        }
    })?;
    Ok(())
}

pub(crate) fn delete_maps(conn: &Connection, owner: u32) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM maps WHERE owner_id = ?1")?
        .execute([owner])?)
}

// ---------------------------------------------------------------- links

const LINK_COLS: &str = "id, program_id, spec, pin_path, kernel_link_id, metadata, created_at";
const LINK_COUNTER: &str = "link_id";

struct RawLink {
    id: i64,
    program_id: i64,
    spec: String,
    pin_path: String,
    kernel_link_id: Option<i64>,
    metadata: String,
    created_at: i64,
}

impl RawLink {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawLink {
            id: r.get(0)?,
            program_id: r.get(1)?,
            spec: r.get(2)?,
            pin_path: r.get(3)?,
            kernel_link_id: r.get(4)?,
            metadata: r.get(5)?,
            created_at: r.get(6)?,
        })
    }

    fn decode(self) -> Result<LinkRecord> {
        let raw_id = self.id;
        let row = move || format!("links row {raw_id}");
        Ok(LinkRecord {
            id: LinkId(to_u32(self.id, &row, "id")?),
            program_id: ProgramId(to_u32(self.program_id, &row, "program_id")?),
            spec: from_json::<AttachSpec>(&self.spec, &row, "spec")?,
            pin_path: self.pin_path,
            kernel_link_id: self
                .kernel_link_id
                .map(|v| to_u32(v, &row, "kernel_link_id").map(KernelLinkId))
                .transpose()?,
            metadata: from_json::<Metadata>(&self.metadata, &row, "metadata")?,
            created_at: self.created_at,
        })
    }
}

fn read_links(conn: &Connection, sql: &str, args: &[u32]) -> Result<Vec<LinkRecord>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raws = stmt
        .query_map(params_from_iter(args.iter()), RawLink::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter().map(RawLink::decode).collect()
}

pub(crate) fn get_link(conn: &Connection, id: u32) -> Result<Option<LinkRecord>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {LINK_COLS} FROM links WHERE id = ?1"))?;
    stmt.query_row([id], RawLink::from_row)
        .optional()?
        .map(RawLink::decode)
        .transpose()
}

pub(crate) fn links_of(conn: &Connection, program_id: u32) -> Result<Vec<LinkRecord>> {
    read_links(
        conn,
        &format!("SELECT {LINK_COLS} FROM links WHERE program_id = ?1 ORDER BY id"),
        &[program_id],
    )
}

pub(crate) fn list_links(conn: &Connection) -> Result<Vec<LinkRecord>> {
    read_links(
        conn,
        &format!("SELECT {LINK_COLS} FROM links ORDER BY id"),
        &[],
    )
}

pub(crate) fn next_link_id(conn: &Connection) -> Result<u32> {
    let v: i64 = conn
        .prepare_cached("UPDATE counters SET value = value + 1 WHERE name = ?1 RETURNING value")?
        .query_row([LINK_COUNTER], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Corrupt(format!("counters row '{LINK_COUNTER}' is missing")))?;
    u32::try_from(v).map_err(|_| {
        StoreError::Corrupt(format!(
            "counters row '{LINK_COUNTER}': {v} is beyond the largest link id"
        ))
    })
}

pub(crate) fn peek_next_link_id(conn: &Connection) -> Result<u32> {
    let v: i64 = conn
        .prepare_cached("SELECT value + 1 FROM counters WHERE name = ?1")?
        .query_row([LINK_COUNTER], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Corrupt(format!("counters row '{LINK_COUNTER}' is missing")))?;
    u32::try_from(v).map_err(|_| {
        StoreError::Corrupt(format!(
            "counters row '{LINK_COUNTER}': {v} is beyond the largest link id"
        ))
    })
}

pub(crate) fn insert_link(conn: &Connection, l: &LinkRecord) -> Result<()> {
    let spec = to_json(&l.spec, || format!("link {} spec", l.id))?;
    let metadata = to_json(&l.metadata, || format!("link {} metadata", l.id))?;
    conn.prepare_cached(
        "INSERT INTO links (id, program_id, spec, pin_path, kernel_link_id, metadata, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        l.id.get(),
        l.program_id.get(),
        spec,
        l.pin_path,
        l.kernel_link_id.map(KernelLinkId::get),
        metadata,
        l.created_at,
    ])
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists(format!("link {} is already recorded", l.id))
        } else if is_foreign_key_violation(&e) {
            StoreError::NotFound(format!(
                "program {} is not recorded: cannot record link {}",
                l.program_id, l.id
            ))
        } else {
            e.into()
        }
    })?;
    // Keep the counter ahead of every id in use, so an id inserted without
    // next_link_id (e.g. by an import) is never handed out again.
    conn.prepare_cached("UPDATE counters SET value = max(value, ?2) WHERE name = ?1")?
        .execute(params![LINK_COUNTER, l.id.get()])?;
    Ok(())
}

pub(crate) fn delete_link(conn: &Connection, id: u32) -> Result<bool> {
    conn.prepare_cached("DELETE FROM net_links WHERE link_id = ?1")?
        .execute([id])?;
    Ok(conn
        .prepare_cached("DELETE FROM links WHERE id = ?1")?
        .execute([id])?
        > 0)
}

// ---------------------------------------------------------------- volumes

const VOLUME_COLS: &str =
    "volume_id, target_path, bpffs_path, attributes, maps, readonly, fs_group, created_at";

struct RawVolume {
    volume_id: String,
    target_path: String,
    bpffs_path: String,
    attributes: String,
    maps: String,
    readonly: bool,
    fs_group: Option<i64>,
    created_at: i64,
}

impl RawVolume {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawVolume {
            volume_id: r.get(0)?,
            target_path: r.get(1)?,
            bpffs_path: r.get(2)?,
            attributes: r.get(3)?,
            maps: r.get(4)?,
            readonly: r.get(5)?,
            fs_group: r.get(6)?,
            created_at: r.get(7)?,
        })
    }

    fn decode(self) -> Result<VolumeRecord> {
        let vid = self.volume_id.clone();
        let row = move || format!("volumes row '{vid}'");
        Ok(VolumeRecord {
            attributes: from_json::<BTreeMap<String, String>>(
                &self.attributes,
                &row,
                "attributes",
            )?,
            maps: from_json::<Vec<VolumeMap>>(&self.maps, &row, "maps")?,
            fs_group: self
                .fs_group
                .map(|v| to_u32(v, &row, "fs_group"))
                .transpose()?,
            volume_id: self.volume_id,
            target_path: self.target_path,
            bpffs_path: self.bpffs_path,
            readonly: self.readonly,
            created_at: self.created_at,
        })
    }
}

fn read_volume(conn: &Connection, column: &str, key: &str) -> Result<Option<VolumeRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VOLUME_COLS} FROM volumes WHERE {column} = ?1"
    ))?;
    stmt.query_row([key], RawVolume::from_row)
        .optional()?
        .map(RawVolume::decode)
        .transpose()
}

pub(crate) fn get_volume(conn: &Connection, volume_id: &str) -> Result<Option<VolumeRecord>> {
    read_volume(conn, "volume_id", volume_id)
}

pub(crate) fn volume_by_target(
    conn: &Connection,
    target_path: &str,
) -> Result<Option<VolumeRecord>> {
    read_volume(conn, "target_path", target_path)
}

pub(crate) fn list_volumes(conn: &Connection) -> Result<Vec<VolumeRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VOLUME_COLS} FROM volumes ORDER BY volume_id"
    ))?;
    let raws = stmt
        .query_map([], RawVolume::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter().map(RawVolume::decode).collect()
}

pub(crate) fn insert_volume(conn: &Connection, v: &VolumeRecord) -> Result<()> {
    // Checked first so the error names which of the two unique keys clashed.
    if get_volume(conn, &v.volume_id)?.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "volume '{}' is already recorded",
            v.volume_id
        )));
    }
    if let Some(other) = volume_by_target(conn, &v.target_path)? {
        return Err(StoreError::AlreadyExists(format!(
            "target path {} is already used by volume '{}'",
            v.target_path, other.volume_id
        )));
    }
    let attributes = to_json(&v.attributes, || {
        format!("volume '{}' attributes", v.volume_id)
    })?;
    let maps = to_json(&v.maps, || format!("volume '{}' maps", v.volume_id))?;
    conn.prepare_cached(
        "INSERT INTO volumes (volume_id, target_path, bpffs_path, attributes, maps, readonly, \
           fs_group, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        v.volume_id,
        v.target_path,
        v.bpffs_path,
        attributes,
        maps,
        v.readonly,
        v.fs_group,
        v.created_at,
    ])
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists(format!("volume '{}' is already recorded", v.volume_id))
        } else {
            e.into()
        }
    })?;
    Ok(())
}

pub(crate) fn delete_volume(conn: &Connection, volume_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM volumes WHERE volume_id = ?1")?
        .execute([volume_id])?
        > 0)
}

// ---------------------------------------------------------------- actions

pub(crate) fn apply(conn: &Connection, action: &Action) -> Result<()> {
    // A row already gone is not an error: gc plans may overlap and a re-run
    // after a crash must converge.
    match action {
        Action::DeleteProgram { id } => {
            delete_program(conn, (*id).get())?;
        }
        Action::DeleteLink { id } => {
            delete_link(conn, (*id).get())?;
        }
        Action::DeleteMaps { owner_id } => {
            delete_maps(conn, (*owner_id).get())?;
        }
        Action::DeleteVolume { volume_id } => {
            delete_volume(conn, volume_id)?;
        }
        // Filesystem and mount actions (Unpin, RemoveTree, RemoveDir, ...) are the
        // manager's to execute. A wildcard, because core grows such actions;
        // a new store-side action must get its own arm above.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The selector query must be driven by the (key, value) index, never by a
    /// scan of the metadata or programs table.
    #[test]
    fn selector_query_uses_the_metadata_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        let sel = Selector::parse(["a=1", "b=2"]).unwrap();
        for kind in [None, Some(ProgramKind::Xdp)] {
            let (sql, args) = list_programs_sql(kind, &sel);
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let text = plan.join("\n");
            assert!(
                text.contains("program_metadata_kv (key=? AND value=?)"),
                "metadata index unused:\n{text}"
            );
            assert!(
                !plan.iter().any(|l| l.starts_with("SCAN")),
                "table scanned:\n{text}"
            );
        }
    }
}
