//! Links the unwinder statically, so that a process starts without loading
//! libgcc_s.so.1. Used by the build scripts of `bpfman` and of the
//! benchmark's load floor (which has to pay what bpfman pays, no more).
//!
//! Why: each CLI call is a new process, and on this project's VMs loading
//! libgcc_s costs about 0.15–0.2 ms of a 2.5 ms `bpfman get` (the mapping,
//! its relocations, and its constructor, which runs CPUID, a VM exit, a
//! dozen times). Rust's std asks for the unwinder with `-lgcc_s` on
//! linux-gnu; gcc's `-static-libgcc` cannot undo an explicit `-lgcc_s`, so
//! this shadows it: a linker script named `libgcc_s.so` in a search
//! directory that comes first, which pulls in gcc's static unwinder,
//! `libgcc_eh.a` (what `-static-libgcc` links). Panics and backtraces work
//! as before (tests in crates/bpfman/src/nolibs.rs).
//!
//! Where `cc` cannot find `libgcc_eh.a` this does nothing but warn: the
//! binary then links libgcc_s as usual.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Emits the link search path that shadows `-lgcc_s` (a no-op off linux-gnu).
pub fn link() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    // A fully static build (crt-static) already links libgcc_eh.
    if os != "linux" || env != "gnu" || features.split(',').any(|f| f == "crt-static") {
        return;
    }
    // `cc` is the host's compiler: its libgcc_eh.a is for the host, so a
    // cross build keeps the target toolchain's libgcc_s.
    if std::env::var("TARGET").ok() != std::env::var("HOST").ok() {
        println!("cargo:warning=cross build: linking libgcc_s");
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    match static_unwinder() {
        Some(eh) => {
            // Quoted: a path with spaces or parentheses stays one file name.
            let script = format!(
                "/* -lgcc_s -> the static unwinder (bpfman build script) */\nINPUT(\"{}\")\n",
                eh.display()
            );
            let dir = out.join("static-unwinder");
            if std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("libgcc_s.so"), script))
                .is_ok()
            {
                println!("cargo:rustc-link-search=native={}", dir.display());
            } else {
                println!(
                    "cargo:warning=cannot write {}; linking libgcc_s",
                    dir.display()
                );
            }
        }
        None => println!("cargo:warning=libgcc_eh.a not found; linking libgcc_s"),
    }
}

/// The absolute path of gcc's static unwinder, as `cc` (rustc's default
/// linker driver on linux-gnu) finds it.
fn static_unwinder() -> Option<PathBuf> {
    let out = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // Not found, the compiler prints the bare name back.
    (out.status.success() && path.is_absolute() && is_file(&path)).then_some(path)
}

fn is_file(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file())
}
