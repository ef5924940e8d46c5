//! Records bpfman keeps (store rows) and facts the kernel reports, plus the
//! views printed by `list`/`get` (their JSON shape is a documented contract).

use serde::{Deserialize, Serialize};

use crate::kind::ProgramKind;
use crate::metadata::Metadata;
use crate::spec::{AttachSpec, BytecodeSource, GlobalData};
use crate::{KernelLinkId, LinkId, MapId, ProgramId};

/// A program bpfman loaded (one store row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRecord {
    /// Kernel program id.
    pub id: ProgramId,
    /// Function name as requested (untruncated).
    pub name: String,
    /// bpfman kind.
    pub kind: ProgramKind,
    /// ELF section the program came from.
    pub section: String,
    /// fentry/fexit target bound at load.
    pub attach_fn: Option<String>,
    /// Where the bytecode came from.
    pub source: BytecodeSource,
    /// Labels.
    pub metadata: Metadata,
    /// Global data overrides applied at load.
    #[serde(with = "hex_map")]
    pub global_data: GlobalData,
    /// Program whose map directory this one uses (itself when it owns its maps).
    pub map_owner_id: ProgramId,
    /// Directory of the pinned maps: `<fs>/<map_owner_id>`.
    pub map_pin_path: String,
    /// Pin of the program: `<fs>/<id>/<name>`.
    pub pin_path: String,
    /// Unix time (seconds) bpfman recorded the program.
    pub created_at: i64,
}

impl ProgramRecord {
    /// True when the program shares another program's maps.
    pub fn shares_maps(&self) -> bool {
        self.map_owner_id != self.id
    }
}

/// A map pinned by bpfman under an owner's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRecord {
    /// Program id whose directory holds the pin.
    pub owner_id: ProgramId,
    /// Map name in the object.
    pub name: String,
    /// Kernel map id.
    pub kernel_id: MapId,
    /// Pin path.
    pub pin_path: String,
}

/// An attachment bpfman made (one store row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// bpfman link id.
    pub id: LinkId,
    /// Program attached.
    pub program_id: ProgramId,
    /// Resolved attach specification.
    pub spec: AttachSpec,
    /// bpffs pin of the kernel link.
    pub pin_path: String,
    /// Kernel link id, when the attachment is a kernel link.
    pub kernel_link_id: Option<KernelLinkId>,
    /// Labels.
    pub metadata: Metadata,
    /// Unix time (seconds) of the attach.
    pub created_at: i64,
}

/// What the kernel reports about a program (`bpf_prog_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelProgramInfo {
    /// Kernel program id.
    pub id: ProgramId,
    /// Kernel-side (possibly truncated) name.
    pub name: String,
    /// Kernel `bpf_prog_type`.
    pub program_type: u32,
    /// Load time, RFC 3339 UTC.
    pub loaded_at: String,
    /// Program tag as hex.
    pub tag: String,
    /// GPL compatible.
    pub gpl_compatible: bool,
    /// Maps used.
    pub map_ids: Vec<MapId>,
    /// BTF object id (0 = none).
    pub btf_id: u32,
    /// Translated size.
    pub bytes_xlated: u32,
    /// JIT compiled.
    pub jited: bool,
    /// JIT size.
    pub bytes_jited: u32,
    /// Locked memory.
    pub bytes_memlock: u32,
    /// Instructions the verifier processed.
    pub verified_insns: u32,
}

/// What the kernel reports about a map (`bpf_map_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMapInfo {
    /// Kernel map id.
    pub id: MapId,
    /// Kernel-side name.
    pub name: String,
    /// Map type name (e.g. `array`, `hash`).
    pub map_type: String,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// Map flags.
    pub flags: u32,
}

/// One map as `get` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapView {
    /// Name in the object.
    pub name: String,
    /// Pin path.
    pub pin_path: String,
    /// Kernel facts (absent when the map could not be read).
    pub kernel: Option<KernelMapInfo>,
}

/// One link as `list links` / `get link` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// bpfman link id.
    pub id: LinkId,
    /// Program attached.
    pub program_id: ProgramId,
    /// Program name.
    pub program_name: String,
    /// Attach type (`tracepoint`, `uprobe`, ...).
    #[serde(rename = "type")]
    pub link_type: String,
    /// Human description of the attach point.
    pub attach_point: String,
    /// Full attach specification.
    pub spec: AttachSpec,
    /// Pin path.
    pub pin_path: String,
    /// Kernel link id.
    pub kernel_link_id: Option<KernelLinkId>,
    /// Labels.
    pub metadata: Metadata,
    /// Unix time of the attach.
    pub created_at: i64,
    /// Network hook details (XDP, TC, TCX links only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<NetHookView>,
}

/// Where a network link sits on its hook, as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetHookView {
    /// Hook kind (`xdp`, `tc-ingress`, `tc-egress`, `tcx-ingress`, `tcx-egress`).
    pub kind: String,
    /// Interface name given at attach.
    pub iface: String,
    /// Namespace path given at attach.
    pub netns: Option<String>,
    /// Namespace inode (the hook's identity with `ifindex`).
    pub netns_ino: u64,
    /// Interface index inside the namespace.
    pub ifindex: u32,
    /// 0-based run position on the hook (absent when not running).
    pub position: Option<u32>,
    /// Dispatcher slot (absent when attached directly or through TCX).
    pub slot: Option<u32>,
    /// Kernel id of the dispatcher program, when there is one.
    pub dispatcher_id: Option<ProgramId>,
}

/// One program as `list` and `get` show it. `record` is absent for programs
/// bpfman did not load (`list --all`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramView {
    /// Kernel program id.
    pub id: ProgramId,
    /// True when bpfman manages this program.
    pub managed: bool,
    /// Program name (requested name when managed, kernel name otherwise).
    pub name: String,
    /// bpfman kind (managed) or kernel type name (unmanaged).
    #[serde(rename = "type")]
    pub program_type: String,
    /// What bpfman recorded.
    pub record: Option<ProgramRecord>,
    /// Program ids that share this program's maps (including itself).
    pub map_used_by: Vec<ProgramId>,
    /// Maps (filled by `get`).
    pub maps: Vec<MapView>,
    /// Links.
    pub links: Vec<LinkView>,
    /// Kernel facts (absent if the kernel program is gone).
    pub kernel: Option<KernelProgramInfo>,
    /// For programs bpfman did not load but runs on users' behalf (XDP/TC
    /// dispatchers and their extension copies): what they are, with the pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
}

mod hex_map {
    //! Global data as `{name: "hex"}` in JSON.
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeMap};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(k, &crate::spec::to_hex(v))?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                crate::spec::parse_hex(&v)
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// A CSI volume bpfman published (one store row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// CSI volume id.
    pub volume_id: String,
    /// Target path kubelet asked for.
    pub target_path: String,
    /// Private bpffs mount holding the volume's pins: `<runtime>/csi/<n>`.
    pub bpffs_path: String,
    /// Volume attributes as received.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Maps published (name and source pin).
    pub maps: Vec<crate::volume::VolumeMap>,
    /// Mounted read-only.
    pub readonly: bool,
    /// Group given access (pod fsGroup).
    pub fs_group: Option<u32>,
    /// Unix time of publish.
    pub created_at: i64,
}

/// The network hook of an XDP, TC or TCX link, fixed when it was attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLinkRecord {
    /// bpfman link id.
    pub link_id: LinkId,
    /// Hook identity: kind, namespace inode, interface index.
    pub hook: crate::dispatcher::HookKey,
    /// Interface name given at attach.
    pub iface: String,
    /// Namespace path given at attach.
    pub netns: Option<String>,
}
