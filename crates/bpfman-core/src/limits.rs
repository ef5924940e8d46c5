//! Bounds on everything bpfman reads from outside (a client, a file, a
//! registry), in one place: each is checked before the input is used, and an
//! input over a bound is an INVALID_ARGUMENT naming the bound, with nothing
//! done. Bounds enforced outside this crate (gRPC message size, image
//! manifests and layers, tar entries) are listed in SECURITY.md with theirs.

/// Longest metadata key, in bytes (a Kubernetes label key with prefix).
pub const MAX_METADATA_KEY_BYTES: usize = 253;

/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 1024;

/// Most metadata entries on one program or link (also the most selector
/// entries of a `list` or a CSI volume).
pub const MAX_METADATA_ENTRIES: usize = 64;

/// Most programs named in one load request.
pub const MAX_PROGRAMS_PER_LOAD: usize = 256;

/// Most programs bpfman reads from one ELF object.
pub const MAX_OBJECT_PROGRAMS: usize = 1024;

/// Largest BPF ELF object bpfman reads from a file (64 MiB, the default
/// bound of an image layer too).
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;

/// Most global-data variables set in one load request.
pub const MAX_GLOBAL_DATA_ENTRIES: usize = 256;

/// Largest global-data value, in bytes (the whole of a big `.rodata`).
pub const MAX_GLOBAL_DATA_BYTES: usize = 1 << 20;
