//! The layering rule of DESIGN.md, checked: bpfman-core does no I/O. Its
//! normal dependencies are pure crates only, and its sources name no module
//! of std that reaches the outside world.

use std::path::PathBuf;

/// The crates the core may depend on (none does I/O).
const PURE: &[&str] = &["serde", "serde_json", "thiserror"];

/// std modules (and crates) whose use would mean I/O in the core.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::os::",
    "std::env",
    "std::io",
    "std::thread",
    "std::time::SystemTime",
    "tokio",
    "libc",
    "nix::",
    "rusqlite",
    "aya",
];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_core_depends_on_pure_crates_only() {
    let text = std::fs::read_to_string(manifest_dir().join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line
                .split(['=', '.', ' '])
                .next()
                .unwrap_or_default()
                .trim();
            deps.push(name.to_string());
        }
    }
    assert!(!deps.is_empty(), "no [dependencies] read from Cargo.toml");
    for d in &deps {
        assert!(
            PURE.contains(&d.as_str()),
            "bpfman-core depends on {d}: the core must stay free of I/O crates (allowed: {PURE:?})"
        );
    }
}

#[test]
fn the_core_sources_name_no_io_module() {
    let files: Vec<PathBuf> = bpfman_testkit::files_under(&manifest_dir().join("src"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    assert!(files.len() > 10, "too few sources found: {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for bad in FORBIDDEN {
                assert!(
                    !code.contains(bad),
                    "{}:{}: uses {bad}; the core does no I/O (effects are data, interpreted by the manager)",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}
