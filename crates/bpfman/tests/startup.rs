//! What every `bpfman` process pays before `main`: the shared libraries the
//! dynamic loader maps. Each CLI call is a process, so each library is a
//! cost per call (build.rs and src/nolibs.rs say why these two are gone).

use object::read::elf::{ElfFile64, FileHeader};
use object::{Endianness, elf};

/// The DT_NEEDED entries of the ELF file at `path`.
fn needed(path: &str) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let file = ElfFile64::<Endianness>::parse(&*data).unwrap();
    let endian = file.endian();
    let sections = file.elf_header().sections(endian, &*data).unwrap();
    let table = sections.dynamic_table(endian, &*data).unwrap();
    table
        .iter()
        .filter(|d| d.tag == elf::DT_NEEDED)
        .map(|d| String::from_utf8_lossy(table.string(d).unwrap()).into_owned())
        .collect()
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_binary_needs_libc_and_nothing_else() {
    let libs = needed(env!("CARGO_BIN_EXE_bpfman"));
    assert!(libs.iter().any(|l| l.starts_with("libc.so")), "{libs:?}");
    for lib in &libs {
        assert!(
            lib.starts_with("libc.so") || lib.starts_with("ld-linux"),
            "bpfman needs {lib} ({libs:?}): libgcc_s is replaced by the static \
             unwinder (build.rs), libm's pow by src/nolibs.rs"
        );
    }
}

#[test]
fn needed_reads_a_library_that_does_need_others() {
    // The check above must be able to fail: libm itself needs libc.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(libm) = libm else {
        bpfman_testkit::skip(
            "needed_reads_a_library_that_does_need_others",
            "no libm.so.6 at a known path",
        );
        return;
    };
    let libs = needed(libm);
    assert!(libs.iter().any(|l| l.starts_with("libc.so")), "{libs:?}");
}
