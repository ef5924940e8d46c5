//! XDP, TC and TCX through the CLI with real traffic between two network
//! namespaces joined by a veth pair. On this host extension programs are
//! refused, so XDP/TC run one program per hook directly (and a second attach
//! is refused cleanly); in the VM suite the same tests drive the dispatchers.

mod common;

use std::path::PathBuf;

use bpfman_testkit::NetPair;
use common::{Env, Mode, eventually, obj, read_u64, root_or_skip};

const OBJ: &str = "tests/bpf/net_test.bpf.o";
/// Loads one instance of a test program with its TAG and return value;
/// instances after the first share the first one's maps.
fn load(env: &Env, prog: &str, tag: u32, ret: i32, owner: Option<u32>) -> u32 {
    let tag_hex = tag
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let ret_hex = ret
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let mut args = vec![
        obj(OBJ),
        prog.to_string(),
        "-g".into(),
        format!("TAG={tag_hex}"),
        "-g".into(),
        format!("RET={ret_hex}"),
    ];
    if let Some(o) = owner {
        args.extend(["--map-owner-id".into(), o.to_string()]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    env.load(&a)[0]
}

fn counts(env: &Env, owner: u32, tag: u32) -> u64 {
    read_u64(&env.fs().join(owner.to_string()).join("counts"), tag)
}

fn no_dispatcher_pins(env: &Env) {
    let d = env.fs().join("dispatchers");
    let left: Vec<_> = common::files_under(&d);
    assert!(left.is_empty(), "dispatcher pins left: {left:?}");
}

fn dispatcher_hook(env: &Env, kind: &str, id: u32, iface_args: &[&str], prio: &str) -> common::Run {
    let mut a = vec![
        "attach",
        &*Box::leak(id.to_string().into_boxed_str()),
        kind,
        "--priority",
        prio,
    ];
    a.extend(iface_args);
    env.run(&[&["-o", "json"][..], &a].concat())
}

/// `proceeds`: whether `pass` is in the default proceed-on set of the hook
/// (XDP: pass proceeds; TC: ok does not, so the chain stops after the first).
fn xdp_or_tc(kind: &str, prog: &str, pass: i32, proceeds: bool, extra: &[&str]) {
    let env = Env::new(Mode::Embedded);
    let pair = NetPair::new();
    let ns = pair.path_b().display().to_string();
    let mut iface = vec!["--iface", "vb", "--netns", &ns];
    iface.extend(extra);
    let first = load(&env, prog, 1, pass, None);
    let second = load(&env, prog, 2, pass, Some(first));

    let r = dispatcher_hook(&env, kind, first, &iface, "20");
    assert!(r.ok, "{}", r.stderr);
    let l1 = r.json();
    assert_eq!(l1["hook"]["position"], 0, "{l1}");
    pair.send(0, 5);
    eventually("first program counts", || counts(&env, first, 1) >= 5);

    let r = dispatcher_hook(&env, kind, second, &iface, "10");
    if !r.ok {
        // This kernel refuses extension programs: one program per hook, and the
        // refusal leaves nothing behind.
        assert!(r.stderr.contains("extension programs"), "{}", r.stderr);
        eprintln!(
            "note: {kind}: dispatchers unavailable here ({}); single-program mode checked",
            r.stderr.trim()
        );
        assert_eq!(env.ok_json(&["list", "links"]).as_array().unwrap().len(), 1);
    } else {
        // Dispatcher: the second (priority 10) runs first, both count.
        let l2 = r.json();
        assert_eq!(l2["hook"]["position"], 0, "{l2}");
        assert!(l2["hook"]["dispatcher_id"].is_u64());
        let got = env.ok_json(&["get", &first.to_string()]);
        assert_eq!(got["links"][0]["hook"]["position"], 1, "{got}");
        // The dispatcher shows in `list --all` as bpfman's.
        let all = env.ok_json(&["list", "--all"]);
        let disp = l2["hook"]["dispatcher_id"].clone();
        assert!(
            all.as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == disp && p["owned_by"].is_string()),
            "dispatcher {disp} not marked in list --all"
        );
        pair.send(100, 5);
        if proceeds {
            eventually("both programs count", || {
                counts(&env, first, 1) >= 10 && counts(&env, first, 2) >= 5
            });
        } else {
            // The first in order returns a non-proceed action: the chain stops.
            eventually("the first in order counts", || counts(&env, first, 2) >= 5);
            // One more packet through the same queue: once the first in order
            // has counted it, the dispatcher is done with the five before.
            pair.send(105, 1);
            eventually("the first in order counts one more", || {
                counts(&env, first, 2) >= 6
            });
            assert_eq!(
                counts(&env, first, 1),
                5,
                "the chain went on past a non-proceed action"
            );
        }
        // Detach the first: the second keeps running.
        env.ok_json(&["detach", &l1["id"].to_string()]);
        let before = counts(&env, first, 2);
        pair.send(200, 3);
        eventually("remaining program counts", || {
            counts(&env, first, 2) >= before + 3
        });
    }
    for id in [second, first] {
        env.ok_json(&["unload", &id.to_string()]);
    }
    no_dispatcher_pins(&env);
    env.assert_empty();
}

#[test]
fn xdp_attach_counts_traffic() {
    if root_or_skip("xdp_attach_counts_traffic") {
        xdp_or_tc("xdp", "xdp_test", 2, true, &["--mode", "skb"]);
    }
}

#[test]
fn tc_attach_counts_traffic() {
    if root_or_skip("tc_attach_counts_traffic") {
        // TC_ACT_OK = 0
        xdp_or_tc("tc", "tc_test", 0, false, &["--direction", "ingress"]);
    }
}

/// An unload that fails after its program and maps were unpinned puts the
/// pins back before it puts the program back on its hook (which reopens the
/// program from its pin): the hook runs it again, and it is still managed.
#[test]
fn a_failed_unload_leaves_its_hook_running() {
    if !root_or_skip("a_failed_unload_leaves_its_hook_running") {
        return;
    }
    for (kind, prog, pass, extra) in [
        ("xdp", "xdp_test", 2, ["--mode", "skb"]),
        ("tc", "tc_test", 0, ["--direction", "ingress"]),
    ] {
        let env = Env::new(Mode::Embedded);
        let pair = NetPair::new();
        let ns = pair.path_b().display().to_string();
        let mut iface = vec!["--iface", "vb", "--netns", &ns];
        iface.extend(extra);
        let id = load(&env, prog, 1, pass, None);
        let r = dispatcher_hook(&env, kind, id, &iface, "20");
        assert!(r.ok, "{kind}: {}", r.stderr);
        // The list minus the hook's kernel link, which a hook put back after
        // it was emptied gets anew (gc below checks the new one is live).
        let listed = || {
            let mut l = env.ok_json(&["list"]);
            for p in l.as_array_mut().unwrap() {
                for link in p["links"].as_array_mut().unwrap() {
                    link["kernel_link_id"] = serde_json::Value::Null;
                }
            }
            l
        };
        for point in ["unload:unpinned_program", "unload:removed_maps"] {
            let before = listed();
            let r = env.run_embedded_env(&["unload", &id.to_string()], &[("BPFMAN_FAULT", point)]);
            assert!(!r.ok, "{kind} {point}: unload should fail");
            assert!(
                !r.stderr.contains("gc --prune"),
                "{kind} {point}: undo left work for gc: {}",
                r.stderr
            );
            assert_eq!(listed(), before, "{kind} {point}");
            let n = counts(&env, id, 1);
            pair.send(0, 3);
            eventually(&format!("{kind} {point}: the hook still runs it"), || {
                counts(&env, id, 1) >= n + 3
            });
            let gc = env.ok_json(&["gc"]);
            assert_eq!(
                gc["items"].as_array().unwrap().len(),
                0,
                "{kind} {point}: {gc}"
            );
        }
        env.ok_json(&["unload", &id.to_string()]);
        no_dispatcher_pins(&env);
        env.assert_empty();
    }
}

/// libbpf's `SEC("tc")` loads as a TC program, attaches directly (the first
/// program on a hook) and counts; `tc/ingress` and `tcx/egress` attach as TCX
/// with the direction their section implies (no `--direction`).
#[test]
fn libbpf_tc_sections_attach_and_count() {
    if !root_or_skip("libbpf_tc_sections_attach_and_count") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let pair = NetPair::new();
    let (ns_a, ns_b) = (
        pair.path_a().display().to_string(),
        pair.path_b().display().to_string(),
    );
    let objf = obj("tests/bpf/sections.bpf.o");
    let ids = env.load(&[&objf, "tc_plain", "tc_ingress", "tcx_egress"]);
    let [tc, tc_ingress, tcx_egress] = ids[..] else {
        panic!("{ids:?}")
    };
    let got = env.ok_json(&["get", &tc.to_string()]);
    assert_eq!(got["record"]["kind"], "tc", "{got}");
    assert_eq!(got["record"]["section"], "tc", "{got}");
    let counts_pin =
        PathBuf::from(got["record"]["map_pin_path"].as_str().unwrap()).join("section_counts");
    let slot = |n| read_u64(&counts_pin, n);
    for (id, kind) in [(tc_ingress, "tcx"), (tcx_egress, "tcx")] {
        let got = env.ok_json(&["get", &id.to_string()]);
        assert_eq!(got["record"]["kind"], kind, "{got}");
    }

    // SEC("tc") implies no direction: it must be given.
    let line = env.fails(&[
        "attach",
        &tc.to_string(),
        "tc",
        "--iface",
        "vb",
        "--netns",
        &ns_b,
    ]);
    assert!(
        line.contains("--direction") && line.contains("'tc'"),
        "{line}"
    );
    let link = env.ok_json(&[
        "attach",
        &tc.to_string(),
        "tc",
        "--iface",
        "vb",
        "--netns",
        &ns_b,
        "--direction",
        "ingress",
    ]);
    assert_eq!(link["type"], "tc", "{link}");
    pair.send(0, 5);
    eventually("SEC(\"tc\") counts packets", || slot(0) >= 5);
    // A second TC program on the hook needs the dispatcher, which reloads
    // both from their objects as extensions: aya must read the object then too.
    let r = env.run(&[
        "-o",
        "json",
        "attach",
        &tc_ingress.to_string(),
        "tc",
        "--iface",
        "vb",
        "--netns",
        &ns_b,
        "--priority",
        "10",
    ]);
    if r.ok {
        assert_eq!(r.json()["spec"]["direction"], "ingress");
        let before = (slot(0), slot(1));
        pair.send(50, 5);
        eventually("tc/ingress runs first in the dispatcher", || {
            slot(1) >= before.1 + 5
        });
        env.ok_json(&["detach", &r.json()["id"].to_string()]);
    } else {
        assert!(r.stderr.contains("extension programs"), "{}", r.stderr);
        eprintln!("note: dispatchers unavailable here ({})", r.stderr.trim());
    }
    env.ok_json(&["detach", &link["id"].to_string()]);

    // The section gives the direction.
    let r = env.run(&[
        "-o",
        "json",
        "attach",
        &tc_ingress.to_string(),
        "tcx",
        "--iface",
        "vb",
        "--netns",
        &ns_b,
    ]);
    if !r.ok && r.stderr.contains("6.6") {
        eprintln!(
            "skipped the TCX part of libbpf_tc_sections_attach_and_count: {}",
            r.stderr.trim()
        );
    } else {
        assert!(r.ok, "{}", r.stderr);
        let l1 = r.json();
        assert_eq!(l1["spec"]["direction"], "ingress", "{l1}");
        let l2 = env.ok_json(&[
            "attach",
            &tcx_egress.to_string(),
            "tcx",
            "--iface",
            "va",
            "--netns",
            &ns_a,
        ]);
        assert_eq!(l2["spec"]["direction"], "egress", "{l2}");
        let (before_in, before_out) = (slot(1), slot(2));
        pair.send(100, 5);
        eventually("tc/ingress and tcx/egress count", || {
            slot(1) >= before_in + 5 && slot(2) >= before_out + 5
        });
    }
    for id in [tcx_egress, tc_ingress, tc] {
        env.ok_json(&["unload", &id.to_string()]);
    }
    no_dispatcher_pins(&env);
    env.assert_empty();
}

#[test]
fn tcx_orders_by_priority() {
    if !root_or_skip("tcx_orders_by_priority") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let pair = NetPair::new();
    let ns = pair.path_b().display().to_string();
    let iface = ["--iface", "vb", "--netns", &ns, "--direction", "ingress"];
    // TCX_NEXT = -1: let the next program run.
    let first = load(&env, "tc_test", 1, -1, None);
    let second = load(&env, "tc_test", 2, -1, Some(first));
    let r = dispatcher_hook(&env, "tcx", first, &iface, "20");
    if !r.ok && r.stderr.contains("TCX") {
        eprintln!("skipped tcx_orders_by_priority: {}", r.stderr.trim());
        return;
    }
    assert!(r.ok, "{}", r.stderr);
    let r2 = dispatcher_hook(&env, "tcx", second, &iface, "10");
    assert!(r2.ok, "{}", r2.stderr);
    assert_eq!(r2.json()["hook"]["position"], 0);
    let got = env.ok_json(&["get", &first.to_string()]);
    assert_eq!(got["links"][0]["hook"]["position"], 1, "{got}");
    pair.send(0, 4);
    eventually("both TCX programs count", || {
        counts(&env, first, 1) >= 4 && counts(&env, first, 2) >= 4
    });
    for id in [first, second] {
        env.ok_json(&["unload", &id.to_string()]);
    }
    env.assert_empty();
}

#[test]
fn deleted_namespace_stays_manageable() {
    if !root_or_skip("deleted_namespace_stays_manageable") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let mut pair = NetPair::new();
    let ns = pair.path_b().display().to_string();
    let xdp = load(&env, "xdp_test", 1, 2, None);
    let tc = load(&env, "tc_test", 2, 0, Some(xdp));
    let tcx = load(&env, "tc_test", 3, -1, Some(xdp));
    let x = env.ok_json(&[
        "attach",
        &xdp.to_string(),
        "xdp",
        "--iface",
        "vb",
        "--netns",
        &ns,
        "--mode",
        "skb",
    ]);
    env.ok_json(&[
        "attach",
        &tc.to_string(),
        "tc",
        "--iface",
        "vb",
        "--netns",
        &ns,
        "--direction",
        "egress",
    ]);
    let t = env.run(&[
        "attach",
        &tcx.to_string(),
        "tcx",
        "--iface",
        "vb",
        "--netns",
        &ns,
        "--direction",
        "ingress",
    ]);
    // TCX needs Linux 6.6; older kernels refuse it with that reason.
    assert!(t.ok || t.stderr.contains("6.6"), "tcx attach: {}", t.stderr);
    pair.delete();
    // Detach and unload still work with the namespace gone; gc leaves nothing.
    env.ok_json(&["detach", &x["id"].to_string()]);
    env.ok_json(&["gc", "--prune"]);
    for id in [xdp, tc, tcx] {
        env.ok_json(&["unload", &id.to_string()]);
    }
    no_dispatcher_pins(&env);
    env.assert_empty();
}

#[test]
fn bad_network_input_is_refused_cleanly() {
    if !root_or_skip("bad_network_input_is_refused_cleanly") {
        return;
    }
    let env = Env::new(Mode::Embedded);
    let pair = NetPair::new();
    let ns = pair.path_b().display().to_string();
    let id = load(&env, "xdp_test", 1, 2, None).to_string();
    let line = env.fails(&["attach", &id, "xdp", "--iface", "nosuchif0", "--netns", &ns]);
    assert!(line.contains("nosuchif0"), "{line}");
    let line = env.fails(&[
        "attach",
        &id,
        "xdp",
        "--iface",
        "vb",
        "--netns",
        "/var/run/netns/bpfman-no-such-ns",
    ]);
    assert!(line.contains("bpfman-no-such-ns"), "{line}");
    let line = env.fails(&["attach", &id, "xdp", "--iface", "vb", "--priority", "0"]);
    assert!(line.contains("priority"), "{line}");
    let line = env.fails(&[
        "attach",
        &id,
        "tc",
        "--iface",
        "vb",
        "--netns",
        &ns,
        "--direction",
        "ingress",
    ]);
    assert!(line.contains("xdp"), "{line}");
    env.ok_json(&["unload", &id]);
    no_dispatcher_pins(&env);
    env.assert_empty();
}

/// A daemon restart keeps network attachments working and manageable, and
/// start-up reconciliation repairs a hook whose kernel state was removed
/// behind bpfman's back (here: the TC filter deleted with `tc`).
#[test]
fn restart_repairs_and_keeps_network_attachments() {
    if !root_or_skip("restart_repairs_and_keeps_network_attachments") {
        return;
    }
    let mut env = Env::new(Mode::Remote);
    let pair = NetPair::new();
    let ns = pair.path_b().display().to_string();
    let xdp = load(&env, "xdp_test", 1, 2, None);
    let tc = load(&env, "tc_test", 2, 0, Some(xdp));
    let x = env.ok_json(&[
        "attach",
        &xdp.to_string(),
        "xdp",
        "--iface",
        "vb",
        "--netns",
        &ns,
        "--mode",
        "skb",
    ]);
    env.ok_json(&[
        "attach",
        &tc.to_string(),
        "tc",
        "--iface",
        "vb",
        "--netns",
        &ns,
        "--direction",
        "ingress",
    ]);
    pair.send(0, 3);
    eventually("both count", || {
        counts(&env, xdp, 1) >= 3 && counts(&env, xdp, 2) >= 3
    });

    env.stop_daemon();
    // Break the TC hook while no daemon runs.
    bpfman_testkit::ip(&[
        "netns", "exec", &pair.b, "tc", "filter", "del", "dev", "vb", "ingress",
    ]);
    pair.send(10, 3);
    // XDP runs before TC ingress: once it counted the three, they are past
    // where the deleted TC filter was.
    eventually("XDP counts while TC is gone", || counts(&env, xdp, 1) >= 6);
    let tc_before = counts(&env, xdp, 2);
    env.start_daemon();
    // XDP kept running; TC was repaired at start-up.
    pair.send(20, 3);
    eventually("XDP still counts", || counts(&env, xdp, 1) >= 9);
    eventually("TC repaired", || counts(&env, xdp, 2) >= tc_before + 3);
    // Still manageable after the restart.
    env.ok_json(&["detach", &x["id"].to_string()]);
    for id in [tc, xdp] {
        env.ok_json(&["unload", &id.to_string()]);
    }
    no_dispatcher_pins(&env);
    env.assert_empty();
}
