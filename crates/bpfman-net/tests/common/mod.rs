//! Test fixtures: a private bpffs, a pair of network namespaces joined by a
//! veth pair (test addresses only), a UDP sender that runs inside a
//! namespace, and the counting test programs of `tests/bpf/net_test.bpf.c`.
//! Everything is removed on drop, also when a test fails.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::EbpfLoader;
use aya::maps::{Array, Map, MapData};
use aya::programs::{SchedClassifier, Xdp};
use bpfman_net::{DesiredProgram, ExtensionSource, ExtensionSupport, NetPaths};
use bpfman_testkit::RuntimeDir;
// Each test uses some of these.
#[allow(unused_imports)]
pub use bpfman_testkit::{ADDR_A, ADDR_B, NetPair, in_ns, send_udp, send_udp_received};

/// The test programs (see tests/bpf/net_test.bpf.c).
pub static TEST_OBJ: &[u8] = aya::include_bytes_aligned!("../../../../tests/bpf/net_test.bpf.o");

pub const XDP_ABORTED: i32 = 0;
pub const XDP_DROP: i32 = 1;
pub const XDP_PASS: i32 = 2;
pub const TC_ACT_UNSPEC: i32 = -1;
pub const TC_ACT_OK: i32 = 0;
pub const TC_ACT_SHOT: i32 = 2;
pub const TC_ACT_PIPE: i32 = 3;
/// TCX: continue with the next program.
pub const TCX_NEXT: i32 = -1;
pub const XDP_DISPATCHER_RETURN: i32 = 31;
pub const TC_DISPATCHER_RETURN: i32 = 30;

/// True when running as root; otherwise prints why the test is skipped.
pub fn root_or_skip() -> bool {
    bpfman_testkit::root_or_skip(&bpfman_testkit::current_test())
}

/// True when dispatchers can run; otherwise prints the skip line.
pub fn dispatchers_or_skip() -> bool {
    match bpfman_net::extension_support().expect("probing extension support") {
        ExtensionSupport::Supported => true,
        ExtensionSupport::Refused(errno) => {
            bpfman_testkit::skip(
                &bpfman_testkit::current_test(),
                format!("this kernel refuses extension programs ({errno}); runs in the VM suite"),
            );
            false
        }
    }
}

/// A bpffs mounted on a fresh temporary directory (bpfman-testkit's
/// RuntimeDir: detached and removed on drop).
pub struct Bpffs {
    rt: RuntimeDir,
    fs: PathBuf,
}

impl Bpffs {
    pub fn new() -> Bpffs {
        let rt = RuntimeDir::with_bpffs("bpfman-net-");
        let fs = rt.fs();
        Bpffs { rt, fs }
    }
    pub fn path(&self) -> &Path {
        &self.fs
    }
    pub fn paths(&self) -> NetPaths {
        NetPaths::from_bpffs(self.path())
    }
    /// Every file (pin) below `sub`, relative, sorted.
    pub fn pins_under(&self, sub: &str) -> Vec<String> {
        self.relative(sub, bpfman_testkit::files_under)
    }
    /// Every entry (files and directories) below `sub`.
    pub fn entries_under(&self, sub: &str) -> Vec<String> {
        self.relative(sub, bpfman_testkit::entries_under)
    }
    fn relative(&self, sub: &str, walk: fn(&Path) -> Vec<PathBuf>) -> Vec<String> {
        let root = self.path().join(sub);
        let mut out: Vec<String> = walk(&root)
            .iter()
            .filter_map(|p| p.strip_prefix(&root).ok())
            .map(|p| p.display().to_string())
            .collect();
        out.sort();
        out
    }
}

/// The maps shared by all test program instances of one test.
pub struct TestMaps {
    pub dir: PathBuf,
}

impl TestMaps {
    pub fn new(fs: &Bpffs) -> TestMaps {
        let dir = fs.path().join("testmaps");
        std::fs::create_dir_all(&dir).unwrap();
        TestMaps { dir }
    }
    fn array(&self, name: &str) -> Option<MapData> {
        MapData::from_pin(self.dir.join(name)).ok()
    }
    /// Packets counted by instance `tag`.
    pub fn count(&self, tag: u32) -> u64 {
        let Some(md) = self.array("counts") else {
            return 0;
        };
        let a: Array<_, u64> = Array::try_from(Map::Array(md)).unwrap();
        a.get(&tag, 0).unwrap_or(0)
    }
    /// Tags recorded for packet `number`, in the order the programs ran.
    pub fn trace(&self, number: u32) -> Vec<u32> {
        let row = number % 64;
        let (Some(h), Some(t)) = (self.array("hits"), self.array("trace")) else {
            return Vec::new();
        };
        let hits: Array<_, u32> = Array::try_from(Map::Array(h)).unwrap();
        let trace: Array<_, u32> = Array::try_from(Map::Array(t)).unwrap();
        let n = hits.get(&row, 0).unwrap_or(0).min(8);
        (0..n)
            .map(|i| trace.get(&(row * 8 + i), 0).unwrap())
            .collect()
    }
    /// Waits until instance `tag` has counted at least `n` packets; returns
    /// the count (fails the test after a generous bound).
    pub fn wait_count(&self, tag: u32, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.count(tag);
            if c >= n {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "instance {tag} counted {c} packets, expected {n}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Which test program.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prog {
    Xdp,
    Tc,
}

/// A loaded test program instance, pinned like bpfman pins programs.
pub struct TestProg {
    pub pin: PathBuf,
    pub id: u32,
    pub source: ExtensionSource,
}

/// Loads one instance (`tag`, returning `ret`) sharing the maps of `maps`,
/// and pins it at `<fs>/<id>/<function>`.
pub fn load_prog(fs: &Bpffs, maps: &TestMaps, kind: Prog, tag: u32, ret: i32) -> TestProg {
    let function = match kind {
        Prog::Xdp => "xdp_test",
        Prog::Tc => "tc_test",
    };
    let map_pins: Vec<(String, PathBuf)> = ["counts", "hits", "trace"]
        .iter()
        .map(|m| (m.to_string(), maps.dir.join(m)))
        .collect();
    let mut globals = BTreeMap::new();
    globals.insert("TAG".to_string(), tag.to_ne_bytes().to_vec());
    globals.insert("RET".to_string(), ret.to_ne_bytes().to_vec());
    let mut loader = EbpfLoader::new();
    for (m, p) in &map_pins {
        loader.map_pin_path(m, p.as_path());
    }
    loader.override_global("TAG", &tag, true);
    loader.override_global("RET", &ret, true);
    let mut ebpf = loader.load(TEST_OBJ).unwrap();
    let prog = ebpf.program_mut(function).unwrap();
    let id = match kind {
        Prog::Xdp => {
            let p: &mut Xdp = prog.try_into().unwrap();
            p.load().unwrap();
            p.info().unwrap().id()
        }
        Prog::Tc => {
            let p: &mut SchedClassifier = prog.try_into().unwrap();
            p.load().unwrap();
            p.info().unwrap().id()
        }
    };
    let dir = fs.path().join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let pin = dir.join(function);
    ebpf.program_mut(function).unwrap().pin(&pin).unwrap();
    TestProg {
        pin,
        id,
        source: ExtensionSource {
            elf: Arc::from(TEST_OBJ),
            function: function.to_string(),
            maps: map_pins,
            globals,
        },
    }
}

impl TestProg {
    /// The desired-set entry for this program as link `link_id`.
    pub fn desired(
        &self,
        link_id: u32,
        priority: i32,
        proceed_on: &[i32],
        seq: u64,
    ) -> DesiredProgram {
        DesiredProgram {
            link_id: bpfman_core::LinkId(link_id),
            program_pin: self.pin.clone(),
            extension: self.source.clone(),
            priority,
            proceed_on: proceed_on.to_vec(),
            attached_seq: seq,
        }
    }
}
