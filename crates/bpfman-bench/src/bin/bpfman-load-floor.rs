//! `bpfman-load-floor STORE OBJECT PROGRAM DIR FEATURES`: the least work a
//! store-backed load can do in a fresh process, as a yardstick for the CLI.
//!
//! It opens a SQLite store in WAL mode that stays between processes and is
//! checkpointed past 256 KiB (as bpfman's store is), loads PROGRAM and its
//! maps from OBJECT with aya (no kernel BTF, kernel features from the cache
//! file FEATURES, as bpfman does), creates DIR and pins the program and every
//! map in it, and records one row in one transaction. Nothing else: no
//! argument parser, no logging, one table, no metadata, no read-back of kernel
//! facts. `bpfman-bench` runs it interleaved with `bpftool prog load` and
//! `bpfman load`, so the report shows how far the CLI is from what any
//! process of this shape costs on the machine. Prints the program id.

use std::path::Path;
use std::process::ExitCode;

use aya::programs::TracePoint;
use rusqlite::FileControl;
use rusqlite::config::DbConfig;

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, object, program, dir, features] = args.as_slice() else {
        eprintln!("usage: bpfman-load-floor STORE OBJECT PROGRAM DIR FEATURES");
        return ExitCode::from(2);
    };
    match load(
        Path::new(store),
        Path::new(object),
        program,
        Path::new(dir),
        Path::new(features),
    ) {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bpfman-load-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(
    store: &Path,
    object: &Path,
    program: &str,
    dir: &Path,
    features: &Path,
) -> Result<u32, Error> {
    let mut db = rusqlite::Connection::open(store)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    // Without these, the last connection to close checkpoints the WAL and
    // deletes it: fsyncs and an unlink per process, which bpfman avoids.
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    let mut persist: std::ffi::c_int = 1;
    db.file_control(None::<&str>, FileControl::PersistWal(&mut persist))?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS loads (
             id INTEGER PRIMARY KEY, name TEXT NOT NULL, pin TEXT NOT NULL
         ) STRICT",
    )?;
    bpfman_kernel::share_aya_features(features);
    let bytes = std::fs::read(object)?;
    let mut ebpf = aya::EbpfLoader::with_btf(None).load(&bytes)?;
    let prog: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("no program {program} in {}", object.display()))?
        .try_into()?;
    prog.load()?;
    // A directory that exists is refused before anything is pinned in it.
    std::fs::create_dir(dir)?;
    // From here a failure removes the directory and the pins made in it,
    // which frees the program and its map, as a failed bpfman load does.
    let recorded = pin_and_record(&mut ebpf, program, dir, &mut db, store);
    if recorded.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let id = recorded?;
    bpfman_kernel::keep_aya_features(features);
    Ok(id)
}

/// Pins the loaded `program` and every map in `dir`, then records the
/// program in one transaction; checkpoints the WAL past the bound bpfman's
/// store uses.
fn pin_and_record(
    ebpf: &mut aya::Ebpf,
    program: &str,
    dir: &Path,
    db: &mut rusqlite::Connection,
    store: &Path,
) -> Result<u32, Error> {
    let prog: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("no program {program}"))?
        .try_into()?;
    let pin = dir.join(program);
    prog.pin(&pin)?;
    let id = prog.info()?.id();
    for (name, map) in ebpf.maps_mut() {
        map.pin(dir.join(name))?;
    }
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO loads (id, name, pin) VALUES (?1, ?2, ?3)",
        rusqlite::params![id, program, pin.to_string_lossy()],
    )?;
    tx.commit()?;
    let wal = std::path::PathBuf::from(format!("{}-wal", store.display()));
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > bpfman_store::WAL_CHECKPOINT_BYTES) {
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(id)
}
