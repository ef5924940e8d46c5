//! libbpf section names through the CLI: the kind and the default attach
//! point come from bpfman's section table (`tp/…`, `ksyscall/…`), and
//! sections of kinds bpfman does not manage are refused in one line.
//! The TC/TCX section names are tested with real traffic in net.rs.

mod common;

use std::path::PathBuf;

use common::{Env, Mode, eventually, obj, read_u64, root_or_skip};

const OBJ: &str = "tests/bpf/sections.bpf.o";

#[test]
fn tp_section_attaches_from_its_name_and_counts() {
    if !root_or_skip("tp_section_attaches_from_its_name_and_counts") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let ids = env.load(&[&obj(OBJ), "tp_switch"]);
    let id = ids[0].to_string();
    let got = env.ok_json(&["get", &id]);
    assert_eq!(got["record"]["kind"], "tracepoint", "{got}");
    let pin = PathBuf::from(got["record"]["map_pin_path"].as_str().unwrap()).join("section_counts");
    // No --tracepoint: SEC("tp/sched/sched_switch") names it.
    let link = env.ok_json(&["attach", &id, "tracepoint"]);
    assert_eq!(link["spec"]["tracepoint"], "sched/sched_switch", "{link}");
    let start = read_u64(&pin, 3);
    eventually("tp/sched/sched_switch counter grows", || {
        read_u64(&pin, 3) > start
    });
    env.ok_json(&["unload", &id]);
    env.assert_empty();
}

#[test]
fn ksyscall_section_loads_as_kprobe_on_the_syscall() {
    if !root_or_skip("ksyscall_section_loads_as_kprobe_on_the_syscall") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let ids = env.load(&[&obj(OBJ), "ksys_getpid"]);
    let id = ids[0].to_string();
    let got = env.ok_json(&["get", &id]);
    assert_eq!(got["record"]["kind"], "kprobe", "{got}");
    if std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        let link = env.ok_json(&["attach", &id, "kprobe"]);
        let f = link["spec"]["fn_name"].as_str().unwrap().to_string();
        assert!(f.ends_with("sys_getpid"), "{link}");
    } else {
        eprintln!("note: this kernel has no kprobes: ksys_getpid loaded as a kprobe, not attached");
    }
    env.ok_json(&["unload", &id]);
    env.assert_empty();
}

#[test]
fn unmanaged_sections_are_refused_in_one_line() {
    if !root_or_skip("unmanaged_sections_are_refused_in_one_line") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    for (prog, section) in [
        ("raw_switch", "raw_tp/sched_switch"),
        ("usdt_probe", "usdt"),
    ] {
        // Named plainly or with a type: the section decides, and refuses.
        for name in [prog.to_string(), format!("tracepoint:{prog}")] {
            let mut args = vec!["load", "file"];
            let o = obj(OBJ);
            if name.contains(':') {
                args.extend(["--path", &o, "--programs", &name]);
            } else {
                args.extend([o.as_str(), &name]);
            }
            let line = env.fails(&args);
            assert!(line.contains(&format!("section '{section}'")), "{line}");
            assert!(
                line.contains("supported sections: tracepoint/GROUP/NAME, tp/GROUP/NAME"),
                "{line}"
            );
            assert!(line.contains("tcx/ingress, tcx/egress"), "{line}");
        }
    }
    env.assert_empty();
}
