//! What this kernel can do, for clear errors and for tests that must skip.

use std::path::Path;
use std::sync::OnceLock;

use aya_obj::btf::BtfKind;

use crate::sys;
use crate::tracefs::find_tracefs;

/// Kernel features that vary between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// kprobes can be created (perf kprobe PMU, or tracefs `kprobe_events`).
    pub kprobes: bool,
    /// Trampoline programs (fentry/fexit) may be loaded.
    pub trampolines: bool,
}

/// Probes the kernel once and remembers the answer.
pub fn features() -> Features {
    static CACHE: OnceLock<Features> = OnceLock::new();
    *CACHE.get_or_init(|| Features {
        kprobes: has_kprobes(),
        trampolines: has_trampolines(),
    })
}

fn has_kprobes() -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe").exists()
        || find_tracefs().is_some_and(|t| t.join("kprobe_events").exists())
        || Path::new("/sys/kernel/tracing/kprobe_events").exists()
}

/// Loads a two-instruction fentry program on a function every BTF kernel
/// has; a refusal (EPERM from a host policy, or no BTF) means no trampolines.
fn has_trampolines() -> bool {
    let Ok(btf) = crate::btf::vmlinux() else {
        return false;
    };
    ["bpf_fentry_test1", "do_unlinkat"]
        .iter()
        .filter_map(|f| btf.id_by_type_name_kind(f, BtfKind::Func).ok())
        .any(|id| sys::load_probe_fentry(id).is_ok())
}
