//! Skipping a test that cannot run here, in one wording:
//! `skipped <test>: <reason>` on stderr. A skipped test returns early and
//! counts as passed to cargo; the line says why (scripts/vm/check-ci-tests.sh
//! looks for it).

use std::fmt::Display;

/// True when the process runs as root (BPF, mounts and namespaces need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints the skip line for `test`.
pub fn skip(test: &str, reason: impl Display) {
    eprintln!("skipped {test}: {reason}");
}

/// True when running as root; otherwise prints why `test` is skipped.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(
        test,
        "needs root (BPF, bpffs mounts and network namespaces)",
    );
    false
}

/// The running test's name, from the thread the test harness runs it on
/// (for helpers that are not told the name).
pub fn current_test() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => "this test".to_string(),
    }
}
