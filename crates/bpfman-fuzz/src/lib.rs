//! Property-based fuzzing for bpfman's parsers, run as ordinary tests.
//!
//! The toolchain here has no nightly (no `cargo-fuzz`), so each harness is a
//! `proptest!` test with a bounded number of cases ([`config`]). Inputs are
//! committed seeds (`tests/fuzz-corpus/<harness>/` at the repository root)
//! mutated the way coverage-less fuzzers do ([`mutated`]): bit flips, byte
//! sets, inserts, deletes, truncations, chunk duplication and splices with
//! another seed, plus wholly random bytes. A harness asserts that the parser
//! returns (a value or an error) and never panics; a panic is a failing test
//! with the minimised input printed, which becomes a regression test.
//!
//! `BPFMAN_FUZZ_CASES=N` runs every harness with N cases instead (a longer
//! run by hand: `BPFMAN_FUZZ_CASES=100000 cargo test fuzz_`).

use std::path::{Path, PathBuf};

pub use proptest;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Environment variable overriding every harness's case count.
pub const CASES_ENV: &str = "BPFMAN_FUZZ_CASES";

/// The proptest settings of a harness: `cases` (unless [`CASES_ENV`] says
/// otherwise), no failure files written into the source tree (a failure is
/// turned into a named regression test instead), quick shrinking.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

/// The repository's seed directory.
pub fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz-corpus")
}

/// The seeds of `harness` (every file of `tests/fuzz-corpus/<harness>/`,
/// sorted by name). Panics when there are none: a harness without seeds
/// would only test random bytes.
pub fn corpus(harness: &str) -> Vec<Vec<u8>> {
    let dir = corpus_root().join(harness);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One mutation of a byte string.
#[derive(Debug, Clone)]
enum Op {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    Duplicate {
        at: usize,
        len: usize,
    },
    Splice {
        other: usize,
        at: usize,
        from: usize,
    },
    /// A byte that parsers treat specially (lengths, NUL, 0xff, quotes...).
    Magic {
        at: usize,
        which: usize,
    },
}

const MAGIC: &[&[u8]] = &[
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\x7f",
    b"\"",
    b"\\",
    b"/",
    b"..",
    b"../",
    b"{",
    b"}",
    b"[",
    b"]",
    b"=",
    b",",
    b":",
    b"@",
    b"%",
    b"\n",
    b"\xc3\x28",
    b"\xf0\x9f\x92\xa9",
    b"18446744073709551616",
    b"-1",
    b"1e999",
];

fn op() -> impl Strategy<Value = Op> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Op::Flip { at, bit }),
        (at, any::<u8>()).prop_map(|(at, byte)| Op::Set { at, byte }),
        (at, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Op::Insert { at, bytes }),
        (at, 1usize..64).prop_map(|(at, len)| Op::Delete { at, len }),
        at.prop_map(|at| Op::Truncate { at }),
        (at, 1usize..256).prop_map(|(at, len)| Op::Duplicate { at, len }),
        (any::<usize>(), at, any::<usize>()).prop_map(|(other, at, from)| Op::Splice {
            other,
            at,
            from
        }),
        (at, any::<usize>()).prop_map(|(at, which)| Op::Magic { at, which }),
    ]
}

fn apply(mut data: Vec<u8>, ops: &[Op], seeds: &[Vec<u8>]) -> Vec<u8> {
    for op in ops {
        let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
        match op {
            Op::Flip { at, bit } if !data.is_empty() => {
                let i = at % data.len();
                data[i] ^= 1 << bit;
            }
            Op::Set { at, byte } if !data.is_empty() => {
                let i = at % data.len();
                data[i] = *byte;
            }
            Op::Insert { at, bytes } => {
                let i = pos(*at, data.len());
                data.splice(i..i, bytes.iter().copied());
            }
            Op::Delete { at, len } if !data.is_empty() => {
                let i = at % data.len();
                let end = (i + len).min(data.len());
                data.drain(i..end);
            }
            Op::Truncate { at } => {
                let i = pos(*at, data.len());
                data.truncate(i);
            }
            Op::Duplicate { at, len } if !data.is_empty() => {
                let i = at % data.len();
                let end = (i + len).min(data.len());
                let chunk = data[i..end].to_vec();
                data.splice(end..end, chunk);
            }
            Op::Splice { other, at, from } => {
                let o = &seeds[other % seeds.len()];
                let i = pos(*at, data.len());
                let f = pos(*from, o.len());
                data.truncate(i);
                data.extend_from_slice(&o[f..]);
            }
            Op::Magic { at, which } => {
                let m = MAGIC[which % MAGIC.len()];
                let i = pos(*at, data.len());
                let end = (i + m.len()).min(data.len());
                data.splice(i..end, m.iter().copied());
            }
            _ => {}
        }
    }
    data
}

/// Inputs derived from `seeds`: a seed as is (1 in 16), a seed with 1 to 8
/// mutations (most cases), or random bytes (1 in 16).
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty());
    let n = seeds.len();
    let s1 = seeds.clone();
    let s2 = seeds;
    prop_oneof![
        1 => (0..n).prop_map(move |i| s1[i].clone()),
        14 => (0..n, proptest::collection::vec(op(), 1..8))
            .prop_map(move |(i, ops)| apply(s2[i].clone(), &ops, &s2)),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

/// [`mutated`] as text (invalid UTF-8 replaced), for parsers of strings.
pub fn mutated_str(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = String> {
    mutated(seeds).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The seeds of `harness` split into lines (for corpora of short strings
/// kept one per line in a file).
pub fn corpus_lines(harness: &str) -> Vec<Vec<u8>> {
    corpus(harness)
        .iter()
        .flat_map(|f| {
            f.split(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_in_bounds() {
        let seeds = vec![b"hello".to_vec(), Vec::new(), b"x".to_vec()];
        let mut runner = proptest::test_runner::TestRunner::new(config(2000));
        runner
            .run(
                &(0..3usize, proptest::collection::vec(op(), 0..16)),
                |(i, ops)| {
                    let _ = apply(seeds[i].clone(), &ops, &seeds);
                    Ok(())
                },
            )
            .unwrap();
    }
}
