//! bpfman-kernel: the kernel side of bpfman, built on aya `=0.14.0`.
//!
//! Everything that touches the `bpf(2)` syscall, bpffs and mounts lives
//! here, and nothing else does: no database, no policy. The manager calls
//! these functions, keeps the undo state and decides what to do on failure.
//!
//! One module per concern, as in aya:
//! - [`object`]: what an object file holds (no kernel needed);
//! - [`load`]: loading programs all-or-nothing, pinning programs and maps;
//! - [`btf`]: the kernel's BTF, parsed once and only when a load needs it;
//! - `sections`: section names renamed so aya reads them as bpfman's table says;
//! - [`attach`]: attaching pinned programs and pinning their links;
//! - [`info`]: kernel facts about programs, maps and links;
//! - [`pin`]: uniform open / pin / unpin of any pinned object (for undo);
//! - [`bpffs`]: bpffs and bind mounts;
//! - [`fs`]: plain directories around pins and mounts (create, remove, modes, list);
//! - [`features`]: what this kernel can do;
//! - [`stats`]: programs' run counts and run time, and turning them on;
//! - [`sys`]: the raw bpf(2) calls aya keeps private (bpfman-net uses them too).

pub mod attach;
pub mod bpffs;
pub mod btf;
pub mod error;
pub mod features;
pub mod fs;
pub mod info;
pub mod load;
pub mod object;
pub mod pin;
mod sections;
pub mod stats;
pub mod sys;
pub mod tracefs;

pub use attach::attach;
pub use bpffs::{
    bind_mount, ensure_bpffs, filesystem_name, is_bpffs, is_mountpoint, is_shared_filesystem,
    mount_bpffs, unmount,
};
pub use error::KernelError;
pub use features::{Features, features, keep_aya_features, share_aya_features};
pub use info::{
    link_id_by_pin, live_link_ids, live_map_ids, live_program_ids, loaded_programs,
    map_info_by_pin, program_id_by_pin, program_info, programs_info, rfc3339_utc,
};
pub use load::{LoadRequest, LoadedObject, ProgramToLoad, load, object_for_aya, parse_object};
pub use object::{ObjectProgram, inspect_object, object_maps};
pub use pin::{ObjectKind, PinnedObject, open_pinned, unpin};
