//! Network hooks of links and the object bytes dispatchers reload.

use bpfman_core::dispatcher::{HookKey, HookKind};
use bpfman_core::model::NetLinkRecord;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, StoreError};
use bpfman_core::LinkId;

const COLS: &str = "link_id, hook_kind, netns_ino, ifindex, iface, netns";

fn kind_from_str(s: &str) -> Option<HookKind> {
    [
        HookKind::Xdp,
        HookKind::TcIngress,
        HookKind::TcEgress,
        HookKind::TcxIngress,
        HookKind::TcxEgress,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
}

fn read(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<NetLinkRecord>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(args, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(link_id, kind, ino, ifindex, iface, netns)| {
            let bad = |what: &str| StoreError::Corrupt(format!("net_links row {link_id}: {what}"));
            Ok(NetLinkRecord {
                link_id: LinkId(u32::try_from(link_id).map_err(|_| bad("link_id"))?),
                hook: HookKey {
                    kind: kind_from_str(&kind).ok_or_else(|| bad("hook_kind"))?,
                    netns_ino: ino as u64,
                    ifindex: u32::try_from(ifindex).map_err(|_| bad("ifindex"))?,
                },
                iface,
                netns,
            })
        })
        .collect()
}

pub(crate) fn insert_net_link(conn: &Connection, n: &NetLinkRecord) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO net_links ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?
    .execute(params![
        n.link_id.get(),
        n.hook.kind.as_str(),
        n.hook.netns_ino as i64,
        n.hook.ifindex,
        n.iface,
        n.netns
    ])?;
    Ok(())
}

pub(crate) fn set_hook_kernel_link(
    conn: &Connection,
    hook: &HookKey,
    kernel_link_id: Option<u32>,
) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE links SET kernel_link_id = ?4 WHERE kernel_link_id IS NOT ?4 AND id IN \
             (SELECT link_id FROM net_links WHERE hook_kind = ?1 AND netns_ino = ?2 AND ifindex = ?3)",
        )?
        .execute(params![
            hook.kind.as_str(),
            hook.netns_ino as i64,
            hook.ifindex,
            kernel_link_id
        ])?)
}

pub(crate) fn net_link(conn: &Connection, link_id: u32) -> Result<Option<NetLinkRecord>> {
    Ok(read(
        conn,
        &format!("SELECT {COLS} FROM net_links WHERE link_id = ?1"),
        [link_id],
    )?
    .pop())
}

pub(crate) fn net_links_on(conn: &Connection, hook: &HookKey) -> Result<Vec<NetLinkRecord>> {
    read(
        conn,
        &format!(
            "SELECT {COLS} FROM net_links WHERE hook_kind = ?1 AND netns_ino = ?2 AND ifindex = ?3 ORDER BY link_id"
        ),
        params![hook.kind.as_str(), hook.netns_ino as i64, hook.ifindex],
    )
}

pub(crate) fn list_net_links(conn: &Connection) -> Result<Vec<NetLinkRecord>> {
    read(
        conn,
        &format!("SELECT {COLS} FROM net_links ORDER BY link_id"),
        [],
    )
}

pub(crate) fn put_object(
    conn: &Connection,
    program_id: u32,
    digest: &str,
    bytes: &[u8],
) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO objects (digest, bytes) VALUES (?1, ?2)")?
        .execute(params![digest, bytes])?;
    conn.prepare_cached("INSERT INTO program_objects (program_id, digest) VALUES (?1, ?2)")?
        .execute(params![program_id, digest])?;
    Ok(())
}

pub(crate) fn object_of(conn: &Connection, program_id: u32) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached(
            "SELECT o.bytes FROM program_objects p JOIN objects o ON o.digest = p.digest WHERE p.program_id = ?1",
        )?
        .query_row([program_id], |r| r.get(0))
        .optional()?)
}

/// Drops a program's object reference, and the object when nothing else uses it.
pub(crate) fn forget_object(conn: &Connection, program_id: u32) -> Result<()> {
    let digest: Option<String> = conn
        .prepare_cached("DELETE FROM program_objects WHERE program_id = ?1 RETURNING digest")?
        .query_row([program_id], |r| r.get(0))
        .optional()?;
    if let Some(d) = digest {
        conn.prepare_cached(
            "DELETE FROM objects WHERE digest = ?1 \
             AND NOT EXISTS (SELECT 1 FROM program_objects WHERE digest = ?1)",
        )?
        .execute([d])?;
    }
    Ok(())
}
