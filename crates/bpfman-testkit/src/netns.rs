//! Two network namespaces joined by a veth pair (test addresses only), and
//! UDP test traffic sent from inside one of them.

use std::fs::File;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The address of `va` in namespace `a`.
pub const ADDR_A: &str = "192.0.2.1";
/// The address of `vb` in namespace `b`; test traffic goes to port 9999.
pub const ADDR_B: &str = "192.0.2.2";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `program` with `args` and returns its stdout, failing the test with
/// its stderr when it fails.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip` with `args`, failing the test with its stderr when it fails.
pub fn ip(args: &[&str]) {
    run_ok("ip", args);
}

/// Runs a command inside a namespace (`ip netns exec`): whether it
/// succeeded, and its stdout then stderr.
pub fn in_ns(ns: &str, cmd: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .unwrap_or_else(|e| panic!("running ip netns exec: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Two namespaces, `a` (va, 192.0.2.1) and `b` (vb, 192.0.2.2), joined by a
/// veth pair; deleted (the veth pair with them) on drop. Packets to
/// 192.0.2.2:9999 sent from `a` are the test traffic.
pub struct NetPair {
    /// The name of namespace `a`.
    pub a: String,
    /// The name of namespace `b`.
    pub b: String,
    deleted: bool,
}

impl NetPair {
    /// Creates both namespaces and the veth pair, addresses set, links up.
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

    /// The bind-mounted namespace file of `a`.
    pub fn path_a(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.a))
    }

    /// The bind-mounted namespace file of `b`.
    pub fn path_b(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.b))
    }

    /// Sends `count` test datagrams numbered `first..` from `a` to `b`.
    pub fn send(&self, first: u32, count: u32) {
        send_udp(&self.path_a(), first, count);
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

impl Default for NetPair {
    fn default() -> Self {
        NetPair::new()
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Joins the network namespace at `ns_path`, on the calling thread only.
fn join_netns(ns_path: &Path) {
    let f = File::open(ns_path).unwrap_or_else(|e| panic!("{}: {e}", ns_path.display()));
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {}: {e}", ns_path.display()));
}

/// Sends `count` test datagrams numbered `first..` from inside namespace
/// `ns_path` to 192.0.2.2:9999, on a thread that joined the namespace.
pub fn send_udp(ns_path: &Path, first: u32, count: u32) {
    let path = ns_path.to_path_buf();
    std::thread::spawn(move || {
        join_netns(&path);
        let sock = UdpSocket::bind((ADDR_A, 0)).unwrap_or_else(|e| panic!("bind: {e}"));
        for n in first..first + count {
            let mut payload = n.to_le_bytes().to_vec();
            payload.extend_from_slice(b"bpfman-net test");
            sock.send_to(&payload, (ADDR_B, 9999))
                .unwrap_or_else(|e| panic!("send: {e}"));
        }
    })
    .join()
    .unwrap_or_else(|_| panic!("the sender thread panicked"));
}

/// Sends like [`send_udp`] to a socket bound in namespace `ns_b` and returns
/// once it has received all `count` datagrams: a sync point that they went
/// through every hook on the way, where no program counts them (no fixed
/// sleep). Fails the test after a generous bound.
pub fn send_udp_received(ns_a: &Path, ns_b: &Path, first: u32, count: u32) {
    let path = ns_b.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        join_netns(&path);
        let sock = UdpSocket::bind((ADDR_B, 9999)).unwrap_or_else(|e| panic!("bind: {e}"));
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        let _ = ready_tx.send(());
        let mut buf = [0u8; 64];
        for got in 0..count {
            if let Err(e) = sock.recv(&mut buf) {
                panic!("namespace B received {got} of {count} datagrams: {e}");
            }
        }
    });
    ready_rx
        .recv()
        .unwrap_or_else(|_| panic!("the receiver thread failed to start"));
    send_udp(ns_a, first, count);
    receiver
        .join()
        .unwrap_or_else(|_| panic!("the receiver thread panicked"));
}
