//! Minimal rtnetlink for TC: the clsact qdisc and `cls_bpf` filters in
//! direct-action mode. Runs in the calling thread's network namespace.
//!
//! Why not aya's helpers: they cannot delete a qdisc or list filters with
//! their program ids, and their filter handles detach on drop.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use bpfman_core::spec::Direction;

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NETLINK_EXT_ACK: libc::c_int = 11;

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

const TC_H_CLSACT: u32 = 0xffff_fff1;
const TC_H_MIN_INGRESS: u32 = 0xfff2;
const TC_H_MIN_EGRESS: u32 = 0xfff3;
const ETH_P_ALL: u16 = 0x0003;

const NLMSG_HDRLEN: usize = 16;
const TCMSG_LEN: usize = 20;

/// A `cls_bpf` filter found on a clsact hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) priority: u16,
    pub(crate) handle: u32,
    pub(crate) name: String,
    pub(crate) prog_id: u32,
}

/// The clsact parent of a direction.
fn parent(direction: Direction) -> u32 {
    let minor = match direction {
        Direction::Ingress => TC_H_MIN_INGRESS,
        Direction::Egress => TC_H_MIN_EGRESS,
    };
    (TC_H_CLSACT & 0xffff_0000) | minor
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink request under construction.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(
        msg_type: u16,
        flags: u16,
        tcm_ifindex: u32,
        handle: u32,
        parent: u32,
        info: u32,
    ) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&msg_type.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf[8..12].copy_from_slice(&1u32.to_ne_bytes());
        // struct tcmsg: family u8, pad u8, pad u16, ifindex i32, handle, parent, info.
        buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        buf.extend_from_slice(&(tcm_ifindex as i32).to_ne_bytes());
        buf.extend_from_slice(&handle.to_ne_bytes());
        buf.extend_from_slice(&parent.to_ne_bytes());
        buf.extend_from_slice(&info.to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(ty, &d);
    }

    fn begin_nest(&mut self, ty: u16) {
        self.nests.push(self.buf.len());
        self.attr(ty | NLA_F_NESTED, &[]);
    }

    fn end_nest(&mut self) {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// A NETLINK_ROUTE socket in the calling thread's namespace.
struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor we own.
        let sock = Socket(unsafe { OwnedFd::from_raw_fd(fd) });
        let one: libc::c_int = 1;
        // Best effort: extended acks carry the kernel's explanation.
        // SAFETY: valid option pointer and length.
        unsafe {
            libc::setsockopt(
                sock.fd().as_raw_fd(),
                libc::SOL_NETLINK,
                NETLINK_EXT_ACK,
                &one as *const libc::c_int as *const libc::c_void,
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(sock)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_fd()
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl addressed to the kernel (pid 0).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and addr are valid for the given lengths.
        let r = unsafe {
            libc::sendto(
                self.fd().as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of its length.
        let r = unsafe {
            libc::recv(
                self.fd().as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Sends `msg` and collects reply messages until the ack (or the end of
    /// a dump). Each returned item is one message's payload after its header.
    fn request(&self, msg: &[u8]) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.send(msg)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            let mut off = 0;
            let mut multi = false;
            while off + NLMSG_HDRLEN <= n {
                let len = u32_at(&buf, off) as usize;
                let ty = u16_at(&buf, off + 4);
                let flags = u16_at(&buf, off + 6);
                if len < NLMSG_HDRLEN || off + len > n {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let payload = &buf[off + NLMSG_HDRLEN..off + len];
                multi |= flags & NLM_F_MULTI != 0;
                match ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = -(u32_at(payload, 0) as i32);
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(ext_ack_error(errno, flags, payload));
                    }
                    _ => out.push((ty, payload.to_vec())),
                }
                off += align4(len);
            }
            if !multi {
                // A reply that was neither acked nor multipart: nothing more comes.
                return Ok(out);
            }
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// An io::Error for a netlink error, with the kernel's extended-ack text.
fn ext_ack_error(errno: i32, flags: u16, payload: &[u8]) -> io::Error {
    let base = io::Error::from_raw_os_error(errno);
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 4 + NLMSG_HDRLEN {
        return base;
    }
    let orig_len = u32_at(payload, 4) as usize;
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        orig_len
    };
    let start = 4 + align4(skip);
    for (ty, data) in attrs(payload.get(start..).unwrap_or(&[])) {
        if ty == NLMSGERR_ATTR_MSG {
            let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
            let text = String::from_utf8_lossy(&data[..end]).into_owned();
            return io::Error::new(base.kind(), format!("{base} ({text})"));
        }
    }
    base
}

/// Iterates the attributes of a buffer.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16_at(b, 0) as usize;
        let ty = u16_at(b, 2) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

/// Adds the clsact qdisc to `ifindex`. Returns `true` if this call created
/// it, `false` if it was already there.
pub(crate) fn add_clsact(ifindex: u32) -> io::Result<bool> {
    let sock = Socket::open()?;
    let mut m = Msg::new(
        RTM_NEWQDISC,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ifindex,
        TC_H_CLSACT & 0xffff_0000,
        TC_H_CLSACT,
        0,
    );
    m.attr_str(TCA_KIND, "clsact");
    match sock.request(&m.finish()) {
        Ok(_) => Ok(true),
        // Kinds, not raw errnos: extended-ack errors carry the kernel's text.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the clsact qdisc of `ifindex` (and with it every TC filter).
pub(crate) fn del_clsact(ifindex: u32) -> io::Result<()> {
    let sock = Socket::open()?;
    let mut m = Msg::new(
        RTM_DELQDISC,
        NLM_F_ACK,
        ifindex,
        TC_H_CLSACT & 0xffff_0000,
        TC_H_CLSACT,
        0,
    );
    m.attr_str(TCA_KIND, "clsact");
    sock.request(&m.finish()).map(|_| ())
}

/// Creates, or atomically replaces in place, the direct-action `cls_bpf`
/// filter at (`priority`, `handle`) of a clsact hook so that it runs `prog`.
/// Replacing an existing filter swaps the program under RCU: every packet
/// sees either the old or the new program, never neither.
pub(crate) fn set_filter(
    ifindex: u32,
    direction: Direction,
    priority: u16,
    handle: u32,
    prog: BorrowedFd<'_>,
    name: &str,
) -> io::Result<()> {
    let sock = Socket::open()?;
    let info = ((priority as u32) << 16) | ETH_P_ALL.to_be() as u32;
    // NLM_F_CREATE without NLM_F_EXCL: create if absent, replace if present.
    let mut m = Msg::new(
        RTM_NEWTFILTER,
        NLM_F_ACK | NLM_F_CREATE,
        ifindex,
        handle,
        parent(direction),
        info,
    );
    m.attr_str(TCA_KIND, "bpf");
    m.begin_nest(TCA_OPTIONS);
    m.attr(TCA_BPF_FD, &(prog.as_raw_fd() as u32).to_ne_bytes());
    m.attr_str(TCA_BPF_NAME, name);
    m.attr(TCA_BPF_FLAGS, &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes());
    m.end_nest();
    sock.request(&m.finish()).map(|_| ())
}

/// Deletes the filter at (`priority`, `handle`); absent is fine.
pub(crate) fn del_filter(
    ifindex: u32,
    direction: Direction,
    priority: u16,
    handle: u32,
) -> io::Result<()> {
    let sock = Socket::open()?;
    let info = ((priority as u32) << 16) | ETH_P_ALL.to_be() as u32;
    let mut m = Msg::new(
        RTM_DELTFILTER,
        NLM_F_ACK,
        ifindex,
        handle,
        parent(direction),
        info,
    );
    m.attr_str(TCA_KIND, "bpf");
    match sock.request(&m.finish()) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
            ) =>
        {
            // EINVAL: no qdisc/filter chain any more; ENOENT: no such filter.
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Lists the filters of a clsact hook. No clsact qdisc: an empty list.
pub(crate) fn list_filters(ifindex: u32, direction: Direction) -> io::Result<Vec<Filter>> {
    let sock = Socket::open()?;
    let m = Msg::new(RTM_GETTFILTER, NLM_F_DUMP, ifindex, 0, parent(direction), 0);
    let replies = match sock.request(&m.finish()) {
        Ok(r) => r,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (ty, payload) in replies {
        if ty != RTM_NEWTFILTER || payload.len() < TCMSG_LEN {
            continue;
        }
        let handle = u32_at(&payload, 8);
        let info = u32_at(&payload, 16);
        let mut kind = String::new();
        let mut name = String::new();
        let mut prog_id = 0;
        for (aty, data) in attrs(&payload[TCMSG_LEN..]) {
            match aty {
                TCA_KIND => kind = cstr(data),
                TCA_OPTIONS => {
                    for (oty, od) in attrs(data) {
                        match oty {
                            TCA_BPF_NAME => name = cstr(od),
                            TCA_BPF_ID if od.len() >= 4 => prog_id = u32_at(od, 0),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // Handle 0 entries describe the filter chain itself, not a filter.
        if handle == 0 {
            continue;
        }
        out.push(Filter {
            priority: (info >> 16) as u16,
            handle,
            name: if kind == "bpf" {
                name
            } else {
                format!("{kind}:{name}")
            },
            prog_id,
        });
    }
    Ok(out)
}

fn cstr(d: &[u8]) -> String {
    let end = d.iter().position(|b| *b == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}
