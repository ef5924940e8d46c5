//! Kernel facts of managed programs as read right after their load. What
//! `bpf_prog_info` reports of a loaded program (name, type, load time, tag,
//! map ids, sizes, memlock, verified instructions) never changes while it
//! lives, and program ids are not reused, so `list` shows these instead of
//! asking the kernel again for each program (half a dozen syscalls apiece).

use std::collections::BTreeMap;

use bpfman_core::{KernelProgramInfo, ProgramId};
use rusqlite::{Connection, params};

use crate::error::{Result, StoreError};

/// Records (or replaces) the facts of one program.
pub(crate) fn put_kernel_info(conn: &Connection, info: &KernelProgramInfo) -> Result<()> {
    let json = serde_json::to_string(info)
        .map_err(|e| StoreError::Encode(format!("kernel facts of program {}: {e}", info.id)))?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO program_kernel_info (program_id, info) VALUES (?1, ?2)",
    )?
    .execute(params![info.id.get(), json])?;
    Ok(())
}

/// The recorded facts of every program that has them, by id.
pub(crate) fn kernel_infos(conn: &Connection) -> Result<BTreeMap<ProgramId, KernelProgramInfo>> {
    let mut stmt = conn.prepare_cached("SELECT program_id, info FROM program_kernel_info")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (id, text) = row?;
        let info: KernelProgramInfo = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("program_kernel_info {id}: info: {e}")))?;
        out.insert(info.id, info);
    }
    Ok(out)
}

/// Drops the facts of a program (with its row).
pub(crate) fn forget_kernel_info(conn: &Connection, program_id: u32) -> Result<()> {
    conn.prepare_cached("DELETE FROM program_kernel_info WHERE program_id = ?1")?
        .execute([program_id])?;
    Ok(())
}
