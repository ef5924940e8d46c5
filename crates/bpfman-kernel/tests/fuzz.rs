//! Fuzz harness for ELF inspection, the first thing a load does with a
//! client's object: bpfman's own reading (`inspect_object`, `object_maps`),
//! its section renaming for aya (`object_for_aya`: a hand-written ELF
//! reader and writer of `.shstrtab` and BTF strings), and aya-obj's parser
//! on the result, exactly the bytes the loader hands to aya. Seeds: the
//! repository's BPF objects (`tests/fuzz-corpus/elf/`). No kernel, no root:
//! nothing is loaded.

use bpfman_fuzz::proptest::prelude::*;
use bpfman_fuzz::{config, corpus, mutated};

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn fuzz_elf_inspect(b in mutated(corpus("elf"))) {
        let programs = bpfman_kernel::inspect_object(&b);
        let _ = bpfman_kernel::object::object_maps(&b);
        if let Ok(programs) = &programs {
            prop_assert!(programs.len() <= bpfman_core::limits::MAX_OBJECT_PROGRAMS);
            prop_assert!(programs.iter().all(|p| !p.name.is_empty()));
        }
        // What a load reads before the kernel, aya's parser included.
        let parsed = bpfman_kernel::parse_object(&b);
        if programs.is_err() {
            prop_assert!(parsed.is_err());
        }
        if let Ok(renamed) = bpfman_kernel::object_for_aya(&b) {
            // Renaming is idempotent: the copy needs no further change.
            if programs.is_ok() {
                let again = bpfman_kernel::object_for_aya(&renamed);
                if let Ok(again) = again {
                    prop_assert_eq!(again.len(), renamed.len());
                }
            }
        }
    }
}

/// Found by fuzz_elf_inspect: a mutated object whose BTF makes aya-obj 0.3
/// panic (an unwrap on a missing type, or a slice out of range). The load
/// path reports it as an error naming the cause.
#[test]
fn aya_obj_btf_panic_is_an_error() {
    let b =
        std::fs::read(bpfman_fuzz::corpus_root().join("elf-regressions/aya-obj-btf-panic.bpf.o"))
            .unwrap();
    let e = bpfman_kernel::parse_object(&b).unwrap_err();
    assert!(e.to_string().contains("aya cannot read this object"), "{e}");
}
