//! Test support for bpfman's crates, so that each crate's tests do not carry
//! their own copy: one skip wording, a private runtime dir with its own
//! bpffs, a recursive directory walker, paths to the repository's fixtures
//! and a loopback OCI registry. Test-only code: it panics on setup failures,
//! which fail the test that asked.

mod bpf;
mod daemon;
mod fs;
mod netns;
mod registry;
mod skip;

pub use bpf::{kernel_has_program, read_u64};
pub use daemon::{Daemon, DaemonBuilder, healthy};
pub use fs::{RuntimeDir, entries_under, files_under, fixture, repo, repo_file};
pub use netns::{ADDR_A, ADDR_B, NetPair, in_ns, ip, run_ok, send_udp, send_udp_received};
pub use registry::{Registry, RegistryBuilder, answers_as, tool_exists};
pub use skip::{current_test, is_root, root_or_skip, skip};
