//! Crash consistency, proven by fault injection: a failure forced after each
//! step of load, attach, detach and unload must leave no trace (error mode),
//! and a crash there must leave state that `gc --prune` repairs completely.

mod common;

use bpfman_manager::fault::{FaultOp, FaultPoint};
use common::{Env, Mode, kernel_has_program, obj, root_or_skip, tree};

// The steps walked are `FaultPoint::ALL`, and `prepare`/`command` match
// every `FaultOp`: a new step is tested, a new operation fails to compile.

/// Brings the runtime to the state the operation under test starts from.
/// Returns (program id, link id) as strings when they exist.
fn prepare(env: &Env, op: FaultOp) -> (Option<String>, Option<String>) {
    match op {
        FaultOp::Load => (None, None),
        FaultOp::Attach => (
            Some(env.load(&[&obj("examples/stats/stats.bpf.o")])[0].to_string()),
            None,
        ),
        FaultOp::Detach | FaultOp::Unload => {
            let id = env.load(&[&obj("examples/stats/stats.bpf.o")])[0].to_string();
            let l = env.ok_json(&["attach", &id, "tracepoint"]);
            (Some(id), Some(l["id"].to_string()))
        }
    }
}

fn command(op: FaultOp, id: &Option<String>, link: &Option<String>) -> Vec<String> {
    let stats = obj("examples/stats/stats.bpf.o");
    match op {
        FaultOp::Load => vec!["load".into(), "file".into(), stats],
        FaultOp::Attach => vec!["attach".into(), id.clone().unwrap(), "tracepoint".into()],
        FaultOp::Detach => vec!["detach".into(), link.clone().unwrap()],
        FaultOp::Unload => vec!["unload".into(), id.clone().unwrap()],
    }
}

/// Store, kernel and bpffs agree: every recorded program is alive and pinned,
/// every link pinned, and gc finds nothing.
fn assert_consistent(env: &Env) {
    for p in env.ok_json(&["list"]).as_array().unwrap() {
        let id = p["id"].as_u64().unwrap() as u32;
        assert!(
            kernel_has_program(id),
            "program {id} recorded but not in the kernel"
        );
        assert!(std::path::Path::new(p["record"]["pin_path"].as_str().unwrap()).exists());
        for l in p["links"].as_array().unwrap() {
            assert!(std::path::Path::new(l["pin_path"].as_str().unwrap()).exists());
        }
    }
    let gc = env.ok_json(&["gc"]);
    assert_eq!(
        gc["items"].as_array().unwrap().len(),
        0,
        "gc still finds: {gc}"
    );
}

fn snapshot(
    env: &Env,
) -> (
    serde_json::Value,
    Vec<String>,
    std::collections::BTreeMap<String, String>,
) {
    (env.ok_json(&["list"]), env.leftovers(), tree(env.runtime()))
}

#[test]
fn injected_errors_leave_no_trace() {
    if !root_or_skip("injected_errors_leave_no_trace") {
        return;
    }
    for point in FaultPoint::ALL {
        let step = point.as_str();
        let op = point.op();
        let env = Env::new(Mode::Embedded);
        let (id, link) = prepare(&env, op);
        let before = snapshot(&env);
        let cmd = command(op, &id, &link);
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let r = env.run_embedded_env(&args, &[("BPFMAN_FAULT", step)]);
        assert!(!r.ok, "{step}: command should fail");
        assert!(
            r.stderr.contains(&format!("injected fault at {step}")),
            "{step}: {}",
            r.stderr
        );
        assert_eq!(
            snapshot(&env),
            before,
            "{step}: state changed by a failed operation"
        );
        assert_consistent(&env);
        // The operation still works afterwards.
        let r = env.run(&args);
        assert!(r.ok, "{step}: retry failed: {}", r.stderr);
        assert_consistent(&env);
    }
}

#[test]
fn crashes_are_repaired_by_gc_prune() {
    if !root_or_skip("crashes_are_repaired_by_gc_prune") {
        return;
    }
    for point in FaultPoint::ALL {
        let step = point.as_str();
        let op = point.op();
        let env = Env::new(Mode::Embedded);
        let (id, link) = prepare(&env, op);
        let cmd = command(op, &id, &link);
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let r = env.run_embedded_env(
            &args,
            &[("BPFMAN_FAULT", step), ("BPFMAN_FAULT_MODE", "crash")],
        );
        assert!(
            !r.ok && r.code.is_none(),
            "{step}: expected an abort, got {:?}: {}",
            r.code,
            r.stderr
        );
        if point == FaultPoint::AttachAttached {
            // The crash left a link pin with no row: a new attach does not
            // trip over it, before any gc. (Another program: the kernel
            // refuses the same program twice on one tracepoint.)
            let other = env.load(&[&obj("examples/stats/stats.bpf.o")])[0].to_string();
            let l = env.ok_json(&["attach", &other, "tracepoint"]);
            assert!(
                !env.leftovers().is_empty(),
                "{step}: the crash should have left its pin"
            );
            env.ok_json(&["detach", &l["id"].to_string()]);
        }
        let pruned = env.ok_json(&["gc", "--prune"]);
        eprintln!(
            "{step}: gc --prune removed {}",
            pruned["items"].as_array().unwrap().len()
        );
        assert_consistent(&env);
        // Everything can still be cleaned up through the normal commands.
        for p in env.ok_json(&["list"]).as_array().unwrap() {
            env.ok_json(&["unload", &p["id"].to_string()]);
        }
        env.assert_empty();
    }
}
