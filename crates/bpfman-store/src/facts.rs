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
    let numbers = [
        k.program_type,
        u32::from(k.gpl_compatible),
        k.btf_id,
        k.bytes_xlated,
        u32::from(k.jited),
        k.bytes_jited,
        k.bytes_memlock,
        k.verified_insns,
    ]
    .map(|n| n.to_string())
    .join(" ");
    conn.prepare_cached(
        "INSERT OR REPLACE INTO program_kernel_info (program_id, name, loaded_at, tag, \
           map_ids, numbers) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        k.id.get(),
        k.name,
        k.loaded_at,
        k.tag,
        map_ids,
        numbers
    ])?;
    Ok(())
}

/// The recorded facts of every program that has them, by id.
pub(crate) fn kernel_infos(conn: &Connection) -> Result<BTreeMap<ProgramId, KernelProgramInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT program_id, name, loaded_at, tag, map_ids, numbers FROM program_kernel_info",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let k = decode(r)?;
        out.insert(k.id, k);
    }
    Ok(out)
}

/// How many numbers the `numbers` column holds (see schema V4).
const NUMBERS: usize = 8;

fn decode(r: &Row<'_>) -> Result<KernelProgramInfo> {
    let id: i64 = r.get(0)?;
    let row = || format!("program_kernel_info row {id}");
    let corrupt = |what: &str| StoreError::Corrupt(format!("{}: {what}", row()));
    // Borrowed, not copied into a String: both are parsed and dropped.
    let text = |i: usize, column: &str| -> Result<&str> {
        r.get_ref(i)?
            .as_str()
            .map_err(|e| corrupt(&format!("{column}: {e}")))
    };
    let map_ids = text(4, "map_ids")?
        .split_ascii_whitespace()
        .map(|m| {
            m.parse()
                .map(MapId)
                .map_err(|_| corrupt(&format!("map id {m} is not a number")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut n = [0u32; NUMBERS];
    let mut fields = text(5, "numbers")?.split_ascii_whitespace();
    for slot in &mut n {
        let field = fields
            .next()
            .ok_or_else(|| corrupt(&format!("numbers holds fewer than {NUMBERS} fields")))?;
        *slot = field
            .parse()
            .map_err(|_| corrupt(&format!("numbers: {field:?} is not a u32")))?;
    }
    if fields.next().is_some() {
        return Err(corrupt(&format!(
            "numbers holds more than {NUMBERS} fields"
        )));
    }
    let [
        program_type,
        gpl,
        btf_id,
        bytes_xlated,
        jited,
        bytes_jited,
        bytes_memlock,
        insns,
    ] = n;
    Ok(KernelProgramInfo {
        id: ProgramId(to_u32(id, &row, "program_id")?),
        name: r.get(1)?,
        program_type,
        loaded_at: r.get(2)?,
        tag: r.get(3)?,
        gpl_compatible: gpl != 0,
        map_ids,
        btf_id,
        bytes_xlated,
        jited: jited != 0,
        bytes_jited,
        bytes_memlock,
        verified_insns: insns,
    })
}

/// Drops the facts of a program (with its row).
pub(crate) fn forget_kernel_info(conn: &Connection, program_id: u32) -> Result<()> {
    conn.prepare_cached("DELETE FROM program_kernel_info WHERE program_id = ?1")?
        .execute([program_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `numbers` text that is not eight u32s is reported, with the row.
    #[test]
    fn a_bad_numbers_column_is_corrupt_not_a_panic() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        conn.execute_batch(crate::test_rows::PROGRAM_7).unwrap();
        for (numbers, what) in [
            ("5 1 33 144 0 91 4096", "fewer than 8"),
            ("5 1 33 144 0 91 4096 11 12", "more than 8"),
            ("5 1 33 144 0 91 -1 11", "\"-1\" is not a u32"),
        ] {
            conn.execute(
                "INSERT OR REPLACE INTO program_kernel_info VALUES (7, 'n', 't', 'g', '', ?1)",
                [numbers],
            )
            .unwrap();
            let e = kernel_infos(&conn).unwrap_err().to_string();
            assert!(
                e.contains("program_kernel_info row 7") && e.contains(what),
                "{e}"
            );
        }
    }
}
