//! Test fixtures: a private bpffs, a pair of network namespaces joined by a
//! veth pair (test addresses only), a UDP sender that runs inside a
//! namespace, and the counting test programs of `tests/bpf/net_test.bpf.c`.
//! Everything is removed on drop, also when a test fails.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aya::EbpfLoader;
use aya::maps::{Array, Map, MapData};
use aya::programs::{SchedClassifier, Xdp};
use bpfman_net::{DesiredProgram, ExtensionSource, ExtensionSupport, NetPaths};
use bpfman_testkit::RuntimeDir;

/// The test programs (see tests/bpf/net_test.bpf.c).
pub static TEST_OBJ: &[u8] = aya::include_bytes_aligned!("../bpf/net_test.bpf.o");

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

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command inside a namespace (`ip netns exec`), returning stdout.
pub fn in_ns(ns: &str, cmd: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("running ip netns exec");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Two namespaces, `a` (va, 192.0.2.1) and `b` (vb, 192.0.2.2), joined by a
/// veth pair. Packets to 192.0.2.2:9999 sent from `a` are the test traffic.
pub struct NetPair {
    pub a: String,
    pub b: String,
    deleted: bool,
}

pub const ADDR_A: &str = "192.0.2.1";
pub const ADDR_B: &str = "192.0.2.2";

impl NetPair {
    pub fn new() -> NetPair {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("bpfnet{}x{n}", std::process::id());
        let pair = NetPair {
            a: format!("{base}a"),
            b: format!("{base}b"),
            deleted: false,
        };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link", "add", "va", "netns", &pair.a, "type", "veth", "peer", "name", "vb", "netns",
            &pair.b,
        ]);
        for (ns, dev, addr) in [(&pair.a, "va", ADDR_A), (&pair.b, "vb", ADDR_B)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }
    pub fn path_a(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.a))
    }
    pub fn path_b(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.b))
    }
    /// Deletes both namespaces now (the veth pair goes with them).
    pub fn delete(&mut self) {
        if !self.deleted {
            self.deleted = true;
            let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
            let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
        }
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Sends `count` test datagrams numbered `first..` from inside namespace
/// `ns_path` to 192.0.2.2:9999, on a thread that joined the namespace.
pub fn send_udp(ns_path: &Path, first: u32, count: u32) {
    let path = ns_path.to_path_buf();
    std::thread::spawn(move || {
        let f = File::open(&path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let sock = UdpSocket::bind((ADDR_A, 0)).unwrap();
        for n in first..first + count {
            let mut payload = n.to_le_bytes().to_vec();
            payload.extend_from_slice(b"bpfman-net test");
            sock.send_to(&payload, (ADDR_B, 9999)).unwrap();
        }
    })
    .join()
    .unwrap();
}

/// Sends like [`send_udp`] to a socket bound in namespace `ns_b` and returns
/// once it has received all `count` datagrams: a sync point that they went
/// through every hook on the way, where no program counts them (no fixed
/// sleep). Fails the test after a generous bound.
pub fn send_udp_received(ns_a: &Path, ns_b: &Path, first: u32, count: u32) {
    let path = ns_b.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        let f = File::open(&path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let sock = UdpSocket::bind((ADDR_B, 9999)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        for got in 0..count {
            if let Err(e) = sock.recv(&mut buf) {
                panic!("namespace B received {got} of {count} datagrams: {e}");
            }
        }
    });
    ready_rx.recv().unwrap();
    send_udp(ns_a, first, count);
    receiver.join().unwrap();
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
            link_id,
            program_pin: self.pin.clone(),
            extension: self.source.clone(),
            priority,
            proceed_on: proceed_on.to_vec(),
            attached_seq: seq,
        }
    }
}
