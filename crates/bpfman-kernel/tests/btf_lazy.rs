//! The kernel's BTF is parsed only by loads that need it. Its own test
//! binary (its own process): other tests would parse it in a shared process.

use std::collections::BTreeMap;

use bpfman_core::ProgramKind;
use bpfman_core::spec::GlobalData;
use bpfman_kernel::btf::vmlinux_parsed;
use bpfman_kernel::{LoadRequest, ProgramToLoad, load};

static TP_COUNTER: &[u8] = include_bytes!("../../../tests/bpf/tp_counter.bpf.o");
static CORE: &[u8] = include_bytes!("../../../tests/bpf/core.bpf.o");

fn load_one(bytes: &[u8], name: &str) {
    let programs = [ProgramToLoad {
        name: name.to_string(),
        kind: ProgramKind::Tracepoint,
        attach_fn: None,
    }];
    // Loaded and dropped unpinned: the kernel frees it at once.
    load(&LoadRequest {
        bytes,
        programs: &programs,
        global_data: &GlobalData::new(),
        reuse_maps: &BTreeMap::new(),
    })
    .unwrap();
}

#[test]
fn kernel_btf_is_parsed_only_for_objects_with_core_relocations() {
    if !bpfman_testkit::root_or_skip("kernel_btf_is_parsed_only_for_objects_with_core_relocations")
    {
        return;
    }
    load_one(TP_COUNTER, "count_sched_switch");
    assert!(
        !vmlinux_parsed(),
        "a load without CO-RE parsed the kernel BTF"
    );
    load_one(CORE, "core_pid");
    assert!(vmlinux_parsed(), "a CO-RE load did not use the kernel BTF");
}
