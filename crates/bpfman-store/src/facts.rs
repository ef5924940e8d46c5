//! Kernel facts of managed programs as read right after their load. What
//! `bpf_prog_info` reports of a loaded program (name, type, load time, tag,
//! map ids, sizes, memlock, verified instructions) never changes while it
//! lives, and program ids are not reused, so `list` shows these instead of
//! asking the kernel again for each program (half a dozen syscalls apiece).

use std::collections::BTreeMap;

use bpfman_core::{KernelProgramInfo, MapId, ProgramId};
use rusqlite::{Connection, Row, params};

use crate::error::{Result, StoreError};
use crate::queries::to_u32;

/// Records (or replaces) the facts of one program.
pub(crate) fn put_kernel_info(conn: &Connection, k: &KernelProgramInfo) -> Result<()> {
    let map_ids = k
        .map_ids
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    conn.prepare_cached(
        "INSERT OR REPLACE INTO program_kernel_info (program_id, name, program_type, \
           loaded_at, tag, gpl_compatible, map_ids, btf_id, bytes_xlated, jited, \
           bytes_jited, bytes_memlock, verified_insns) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        k.id.get(),
        k.name,
        k.program_type,
        k.loaded_at,
        k.tag,
        k.gpl_compatible,
        map_ids,
        k.btf_id,
        k.bytes_xlated,
        k.jited,
        k.bytes_jited,
        k.bytes_memlock,
        k.verified_insns,
    ])?;
    Ok(())
}

/// The recorded facts of every program that has them, by id.
pub(crate) fn kernel_infos(conn: &Connection) -> Result<BTreeMap<ProgramId, KernelProgramInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT program_id, name, program_type, loaded_at, tag, gpl_compatible, map_ids, \
           btf_id, bytes_xlated, jited, bytes_jited, bytes_memlock, verified_insns \
         FROM program_kernel_info",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let k = decode(r)?;
        out.insert(k.id, k);
    }
    Ok(out)
}

fn decode(r: &Row<'_>) -> Result<KernelProgramInfo> {
    let id: i64 = r.get(0)?;
    let row = || format!("program_kernel_info row {id}");
    let u32_at = |i: usize, column: &str| -> Result<u32> { to_u32(r.get(i)?, &row, column) };
    let map_ids: String = r.get(6)?;
    let map_ids = map_ids
        .split_ascii_whitespace()
        .map(|m| {
            m.parse()
                .map(MapId)
                .map_err(|_| StoreError::Corrupt(format!("{}: map id {m} is not a number", row())))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(KernelProgramInfo {
        id: ProgramId(to_u32(id, &row, "program_id")?),
        name: r.get(1)?,
        program_type: u32_at(2, "program_type")?,
        loaded_at: r.get(3)?,
        tag: r.get(4)?,
        gpl_compatible: r.get(5)?,
        map_ids,
        btf_id: u32_at(7, "btf_id")?,
        bytes_xlated: u32_at(8, "bytes_xlated")?,
        jited: r.get(9)?,
        bytes_jited: u32_at(10, "bytes_jited")?,
        bytes_memlock: u32_at(11, "bytes_memlock")?,
        verified_insns: u32_at(12, "verified_insns")?,
    })
}

/// Drops the facts of a program (with its row).
pub(crate) fn forget_kernel_info(conn: &Connection, program_id: u32) -> Result<()> {
    conn.prepare_cached("DELETE FROM program_kernel_info WHERE program_id = ?1")?
        .execute([program_id])?;
    Ok(())
}
