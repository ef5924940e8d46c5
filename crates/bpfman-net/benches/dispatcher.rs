//! Per-packet cost of bpfman's XDP and TC dispatchers with 1, 2, 5 and 10
//! programs, against the same program attached directly, measured with
//! BPF_PROG_TEST_RUN and its repeat count.
//!
//!     sudo cargo bench -p bpfman-net
//!
//! The dispatchers are built by the real code path (`apply_xdp`/`apply_tc` on
//! a veth interface in a private network namespace) and run from their pins.
//! Where the kernel refuses extension programs the dispatcher rows say so and
//! only the direct baseline is measured; the VM suite runs this binary under
//! a stock kernel for the full table. Prints numbers, asserts nothing.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use aya::EbpfLoader;
use aya::programs::{SchedClassifier, Xdp};
use bpfman_core::spec::{Direction, XdpMode};
use bpfman_net::{
    DesiredProgram, ExtensionSource, ExtensionSupport, Iface, NetPaths, apply_tc, apply_xdp,
};

static TEST_OBJ: &[u8] = aya::include_bytes_aligned!("../../../tests/bpf/net_test.bpf.o");

const XDP_PASS: i32 = 2;
const TC_ACT_OK: i32 = 0;
const RUNS: usize = 5;

/// A private bpffs, unmounted on drop.
struct Bpffs(tempfile::TempDir);

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A private network namespace with a veth pair, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A 64-byte Ethernet/IPv4/UDP frame to port 9999 (what the test program counts).
fn packet() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut p[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
    ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
    let udp = &mut p[34..42];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9999u16.to_be_bytes());
    udp[4..6].copy_from_slice(&30u16.to_be_bytes());
    p[42..46].copy_from_slice(&7u32.to_le_bytes());
    p
}

/// ns per packet of `fd`: the median of the kernel's own figure over RUNS
/// runs of a large repeat count.
///
/// The kernel's figure (time spent in the loop / repeat) leaves out what wall
/// time would add: the fixed cost of each call (for XDP, milliseconds to swap
/// the kernel's XDP call dispatcher in and out) and any time the loop was
/// preempted on a busy machine. It is reported in whole nanoseconds, so ratios
/// of programs taking a few tens of ns carry about ±1 ns of rounding.
fn measure(fd: std::os::fd::BorrowedFd<'_>, pkt: &[u8]) -> Result<u32, String> {
    let run = |repeat: u32| -> Result<u32, String> {
        bpfman_net::test_run(fd, pkt, repeat)
            .map(|r| r.duration_ns)
            .map_err(|e| format!("BPF_PROG_TEST_RUN: {e}"))
    };
    let est = run(10_000)?;
    // About 0.3 s per run, on fast hosts and slow emulated CPUs alike.
    let repeat = ((300e6 / f64::from(est.max(1))) as u32).clamp(100_000, 50_000_000);
    let mut samples = (0..RUNS)
        .map(|_| run(repeat))
        .collect::<Result<Vec<_>, _>>()?;
    samples.sort();
    Ok(samples[RUNS / 2])
}

struct Loaded {
    pin: PathBuf,
    source: ExtensionSource,
}

/// Loads one instance of the test program (`tag`), pinned like bpfman pins.
fn load(fs: &Path, xdp: bool, tag: u32) -> Result<Loaded, String> {
    let function = if xdp { "xdp_test" } else { "tc_test" };
    let ret = if xdp { XDP_PASS } else { TC_ACT_OK };
    let maps_dir = fs.join("benchmaps");
    std::fs::create_dir_all(&maps_dir).map_err(|e| e.to_string())?;
    let maps: Vec<(String, PathBuf)> = ["counts", "hits", "trace"]
        .iter()
        .map(|m| (m.to_string(), maps_dir.join(m)))
        .collect();
    let mut loader = EbpfLoader::new();
    for (m, p) in &maps {
        loader.map_pin_path(m, p.as_path());
    }
    loader.override_global("TAG", &tag, true);
    loader.override_global("RET", &ret, true);
    let mut ebpf = loader.load(TEST_OBJ).map_err(|e| e.to_string())?;
    let prog = ebpf.program_mut(function).ok_or("test program missing")?;
    let id = if xdp {
        let p: &mut Xdp = prog.try_into().map_err(|e| format!("{e}"))?;
        p.load().map_err(|e| e.to_string())?;
        p.info().map_err(|e| e.to_string())?.id()
    } else {
        let p: &mut SchedClassifier = prog.try_into().map_err(|e| format!("{e}"))?;
        p.load().map_err(|e| e.to_string())?;
        p.info().map_err(|e| e.to_string())?.id()
    };
    let dir = fs.join(id.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pin = dir.join(function);
    ebpf.program_mut(function)
        .ok_or("test program missing")?
        .pin(&pin)
        .map_err(|e| e.to_string())?;
    let mut globals = BTreeMap::new();
    globals.insert("TAG".into(), tag.to_ne_bytes().to_vec());
    globals.insert("RET".into(), ret.to_ne_bytes().to_vec());
    Ok(Loaded {
        pin,
        source: ExtensionSource {
            elf: Arc::from(TEST_OBJ),
            function: function.into(),
            maps,
            globals,
        },
    })
}

fn open_pin(pin: &Path) -> Result<std::os::fd::OwnedFd, String> {
    bpfman_net::open_pinned_program(pin).map_err(|e| e.to_string())
}

fn bench(
    fs: &Path,
    paths: &NetPaths,
    iface: &Iface,
    xdp: bool,
    dispatchers: Option<&str>,
) -> Result<(), String> {
    let kind = if xdp { "XDP" } else { "TC " };
    let pkt = packet();
    let progs = (1..=10)
        .map(|t| load(fs, xdp, t))
        .collect::<Result<Vec<_>, _>>()?;
    let direct = measure(open_pin(&progs[0].pin)?.as_fd(), &pkt)?;
    println!("{kind} direct, 1 program        {direct:5} ns/packet");
    if let Some(why) = dispatchers {
        println!(
            "{kind} dispatcher: not measured: {why}; the VM suite runs this benchmark under a stock kernel"
        );
        return Ok(());
    }
    for n in [1usize, 2, 5, 10] {
        let pass = if xdp { XDP_PASS } else { TC_ACT_OK };
        let set: Vec<DesiredProgram> = progs[..n]
            .iter()
            .enumerate()
            .map(|(i, p)| DesiredProgram {
                link_id: bpfman_core::LinkId(i as u32 + 1),
                program_pin: p.pin.clone(),
                extension: p.source.clone(),
                priority: 50,
                proceed_on: vec![pass],
                attached_seq: i as u64,
            })
            .collect();
        let st = if xdp {
            apply_xdp(paths, iface, XdpMode::Skb, &set)
        } else {
            apply_tc(paths, iface, Direction::Ingress, &set)
        }
        .map_err(|e| e.to_string())?;
        let d = st.dispatcher.ok_or("no dispatcher was built")?;
        let fd = open_pin(&d.revision_dir.join("dispatcher"))?;
        let ns = measure(fd.as_fd(), &pkt)?;
        let d = f64::from(direct.max(1));
        println!(
            "{kind} dispatcher, {n:2} program{} {ns:5} ns/packet   ratio {:5.2} to 1 direct, {:5.2} to {n} x direct",
            if n == 1 { " " } else { "s" },
            f64::from(ns) / d,
            f64::from(ns) / (d * n as f64)
        );
    }
    if xdp {
        apply_xdp(paths, iface, XdpMode::Skb, &[])
    } else {
        apply_tc(paths, iface, Direction::Ingress, &[])
    }
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn run() -> Result<(), String> {
    let tmp = tempfile::Builder::new()
        .prefix("bpfman-net-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    nix::mount::mount(
        Some("bpf"),
        tmp.path(),
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mounting bpffs: {e}"))?;
    let fs = Bpffs(tmp);
    let ns = Netns(format!("bpfnetbench{}", std::process::id()));
    ip(&["netns", "add", &ns.0])?;
    ip(&[
        "-n", &ns.0, "link", "add", "bench0", "type", "veth", "peer", "name", "bench1",
    ])?;
    ip(&["-n", &ns.0, "link", "set", "bench0", "up"])?;
    let iface = Iface::resolve(
        Some(Path::new(&format!("/var/run/netns/{}", ns.0))),
        "bench0",
    )
    .map_err(|e| e.to_string())?;
    let paths = NetPaths::from_bpffs(fs.0.path());
    let refused = match bpfman_net::extension_support().map_err(|e| e.to_string())? {
        ExtensionSupport::Supported => None,
        ExtensionSupport::Refused(errno) => {
            Some(format!("this kernel refuses extension programs ({errno})"))
        }
    };
    let uname = nix::sys::utsname::uname().map_err(|e| e.to_string())?;
    println!(
        "bpfman-net dispatcher benchmark: BPF_PROG_TEST_RUN, 64-byte UDP frame, kernel-measured ns per packet, median of {RUNS} runs, kernel {}",
        uname.release().to_string_lossy()
    );
    println!(
        "(each program counts the packet in a map and passes it; every dispatcher slot proceeds)"
    );
    bench(fs.0.path(), &paths, &iface, true, refused.as_deref())?;
    bench(fs.0.path(), &paths, &iface, false, refused.as_deref())?;
    Ok(())
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: the dispatcher benchmark needs root (BPF, bpffs, network namespaces)");
        return;
    }
    if let Err(e) = run() {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
