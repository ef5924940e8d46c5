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

/// Lets aya use the feature answers an earlier process of this boot kept in
/// `cache`. Call it before the first aya load or attach of the process; if
/// the answers were not there, aya probes as before and
/// [`keep_aya_features`] (after the operation succeeded) writes them.
///
/// aya adapts loads and attaches to the kernel (BTF kinds it can take,
/// helpers, program names, perf links, ...) and finds out by probing, about
/// 17 `bpf()` calls that each load a tiny program, map or BTF blob, once per
/// process. The daemon pays that once; a CLI call is a process, and paid it
/// on every load and attach (a good part of a cold `bpfman load`). The
/// answers only change with the kernel, so they are kept with the boot id
/// (`/proc/sys/kernel/random/boot_id`) and used only on the same boot. Any
/// problem with the file (missing, unreadable, another boot, a field
/// missing) means probing, as before.
pub fn share_aya_features(cache: &Path) {
    TO_KEEP.get_or_init(|| {
        let boot = boot_id()?;
        let kept = std::fs::read_to_string(cache)
            .ok()
            .and_then(|text| parse_aya_features(&text, &boot));
        // Refused: this process probed already; then keep its answers.
        let used = kept.is_some_and(aya::set_features);
        (!used).then_some(boot)
    });
}

/// Writes aya's answers to `cache` when [`share_aya_features`] found none
/// to use, once per process. Call it after an operation succeeded, so that a
/// failed one leaves the runtime directory as it was. Failing to write only
/// costs the next process a probe.
pub fn keep_aya_features(cache: &Path) {
    static KEPT: OnceLock<()> = OnceLock::new();
    let Some(Some(boot)) = TO_KEEP.get() else {
        return;
    };
    KEPT.get_or_init(|| {
        let text = format_aya_features(aya::features(), boot);
        // Written whole, then renamed: a reader sees no file or a whole one.
        let tmp = cache.with_extension(format!("tmp.{}", std::process::id()));
        if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, cache).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    });
}

/// What [`share_aya_features`] found: the boot id when this process probes
/// (no usable answers), `None` when it used the kept ones or has no boot id.
static TO_KEEP: OnceLock<Option<String>> = OnceLock::new();

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// First line of the cache file: what it is, and its format version.
const AYA_FEATURES_HEADER: &str = "bpfman kernel features v1";

/// The file: the header, `boot_id ID`, then one `name 0|1` line per answer
/// (the BTF ones only when `btf` is 1).
fn format_aya_features(f: &aya_obj::Features, boot: &str) -> String {
    let b = |v: bool| u8::from(v);
    let mut out = format!("{AYA_FEATURES_HEADER}\nboot_id {boot}\n");
    let mut line = |name: &str, v: bool| out.push_str(&format!("{name} {}\n", b(v)));
    line("bpf_name", f.bpf_name());
    line("bpf_probe_read_kernel", f.bpf_probe_read_kernel());
    line("bpf_perf_link", f.bpf_perf_link());
    line("bpf_global_data", f.bpf_global_data());
    line("bpf_cookie", f.bpf_cookie());
    line("cpumap_prog_id", f.cpumap_prog_id());
    line("devmap_prog_id", f.devmap_prog_id());
    line("btf", f.btf().is_some());
    if let Some(t) = f.btf() {
        line("btf_func", t.btf_func());
        line("btf_func_global", t.btf_func_global());
        line("btf_datasec", t.btf_datasec());
        line("btf_datasec_zero", t.btf_datasec_zero());
        line("btf_float", t.btf_float());
        line("btf_decl_tag", t.btf_decl_tag());
        line("btf_type_tag", t.btf_type_tag());
        line("btf_enum64", t.btf_enum64());
    }
    out
}

/// The answers of a file written by [`format_aya_features`] on boot `boot`;
/// `None` for anything else.
fn parse_aya_features(text: &str, boot: &str) -> Option<aya_obj::Features> {
    let mut lines = text.lines();
    if lines.next()? != AYA_FEATURES_HEADER || lines.next()? != format!("boot_id {boot}") {
        return None;
    }
    let mut values = std::collections::BTreeMap::new();
    for l in lines {
        let (name, v) = l.split_once(' ')?;
        let v = match v {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        if values.insert(name, v).is_some() {
            return None;
        }
    }
    let mut get = |name: &str| values.remove(name);
    let btf = if get("btf")? {
        Some(aya_obj::btf::BtfFeatures::new(
            get("btf_func")?,
            get("btf_func_global")?,
            get("btf_datasec")?,
            get("btf_datasec_zero")?,
            get("btf_float")?,
            get("btf_decl_tag")?,
            get("btf_type_tag")?,
            get("btf_enum64")?,
        ))
    } else {
        None
    };
    let f = aya_obj::Features::new(
        get("bpf_name")?,
        get("bpf_probe_read_kernel")?,
        get("bpf_perf_link")?,
        get("bpf_global_data")?,
        get("bpf_cookie")?,
        get("cpumap_prog_id")?,
        get("devmap_prog_id")?,
        btf,
    );
    // Every line was read: a file with more (a newer format) is not this one.
    values.is_empty().then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(btf: bool) -> aya_obj::Features {
        let t = btf.then(|| {
            aya_obj::btf::BtfFeatures::new(true, false, true, false, true, false, true, false)
        });
        aya_obj::Features::new(true, false, true, false, true, false, true, t)
    }

    #[test]
    fn aya_features_round_trip_through_the_cache_text() {
        for btf in [true, false] {
            let text = format_aya_features(&sample(btf), "b-1");
            let back = parse_aya_features(&text, "b-1").expect("parses");
            assert_eq!(format_aya_features(&back, "b-1"), text);
        }
    }

    #[test]
    fn aya_features_of_another_boot_or_a_damaged_file_are_not_used() {
        let text = format_aya_features(&sample(true), "b-1");
        assert!(parse_aya_features(&text, "b-2").is_none(), "other boot");
        assert!(parse_aya_features("", "b-1").is_none());
        let short: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert!(parse_aya_features(&short, "b-1").is_none(), "truncated");
        let bad = text.replace("btf_float 1", "btf_float yes");
        assert!(parse_aya_features(&bad, "b-1").is_none(), "bad value");
        let dup = format!("{text}bpf_name 1\n");
        assert!(parse_aya_features(&dup, "b-1").is_none(), "repeated line");
        let more = format!("{text}new_feature 1\n");
        assert!(parse_aya_features(&more, "b-1").is_none(), "unknown line");
    }
}
