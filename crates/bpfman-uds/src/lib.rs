//! Serving gRPC on a Unix socket to every mainstream client.
//!
//! [`incoming`] turns a bound [`UnixListener`] into the connection stream
//! that `tonic::transport::Server::serve_with_incoming` takes. Each
//! connection is an [`AnyAuthority`]: its client-to-server bytes go through
//! [`rewrite::Rewriter`], so requests whose `:authority` is a socket path
//! (gRPC C-core, grpc-java) are served like those that send `localhost`
//! (grpc-go, tonic, kubelet) instead of being reset by h2.
//!
//! Each connection also carries the peer's credentials as the kernel saw them
//! at `connect()` ([`PeerCred`]: `SO_PEERCRED` and `SO_PEERGROUPS`); tonic
//! puts them in every request's extensions as [`UdsPeer`], for authorisation.

pub mod observe;
pub mod rewrite;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::Stream;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Connected;

use rewrite::Rewriter;

/// Bytes read from the socket per read call.
const READ_CHUNK: usize = 16 * 1024;

/// Incoming connections of a bound socket, each wrapped in [`AnyAuthority`].
pub fn incoming(listener: UnixListener) -> Incoming {
    Incoming {
        inner: UnixListenerStream::new(listener),
    }
}

/// The stream [`incoming`] returns.
pub struct Incoming {
    inner: UnixListenerStream,
}

impl Stream for Incoming {
    type Item = io::Result<AnyAuthority<UnixStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|next| {
            next.map(|conn| {
                conn.map(|stream| {
                    let peer = peer_cred(&stream);
                    let mut conn = AnyAuthority::new(stream);
                    conn.peer = peer;
                    conn
                })
            })
        })
    }
}

/// Most supplementary groups read from a peer (the kernel's `NGROUPS_MAX`).
pub const MAX_PEER_GROUPS: usize = 65536;

/// A connected peer's credentials, fixed by the kernel when it connected
/// (later `setuid` calls of the peer do not change them). The core's type, so
/// that the authorisation policy reads what the socket layer took.
pub use bpfman_core::auth::Peer as PeerCred;

/// The credentials of the peer of `sock`, or `None` if the kernel gives none.
pub fn peer_cred<S: AsRawFd>(sock: &S) -> Option<PeerCred> {
    let fd = sock.as_raw_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred is a writable ucred and len its size, as SO_PEERCRED expects.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 || len as usize != std::mem::size_of::<libc::ucred>() {
        return None;
    }
    Some(PeerCred {
        uid: cred.uid,
        gid: cred.gid,
        pid: (cred.pid > 0).then_some(cred.pid),
        groups: peer_groups(fd),
    })
}

/// `SO_PEERGROUPS` of `fd`: empty when the kernel does not support it.
fn peer_groups(fd: RawFd) -> Vec<u32> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = std::mem::size_of_val(groups.as_slice()) as libc::socklen_t;
        // SAFETY: the buffer is writable for len bytes.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return groups;
        }
        // ERANGE: len now says how much is needed.
        if io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE)
            && n > groups.len()
            && n <= MAX_PEER_GROUPS
        {
            groups.resize(n, 0);
            continue;
        }
        return Vec::new();
    }
}

/// What tonic puts in each request's extensions for an [`AnyAuthority`]
/// connection: the wrapped connection's own info and the peer's credentials.
#[derive(Debug, Clone)]
pub struct UdsPeer<T> {
    /// The wrapped connection's connect info (tonic's `UdsConnectInfo` for a `UnixStream`).
    pub info: T,
    /// The peer's credentials, read at accept.
    pub cred: Option<PeerCred>,
}

/// A server-side connection whose incoming HTTP/2 header blocks carry a valid
/// `:authority` (see [`rewrite`]). Writes go to the socket unchanged.
pub struct AnyAuthority<IO> {
    io: IO,
    rewriter: Rewriter,
    /// Bytes from the client not yet rewritten (an incomplete frame).
    input: BytesMut,
    /// Rewritten bytes not yet read by the server.
    output: BytesMut,
    eof: bool,
    /// Credentials of the peer, read at accept.
    peer: Option<PeerCred>,
}

impl<IO> AnyAuthority<IO> {
    /// Wraps a freshly accepted connection.
    pub fn new(io: IO) -> Self {
        AnyAuthority {
            io,
            rewriter: Rewriter::new(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            eof: false,
            peer: None,
        }
    }

    /// The peer's credentials, when read at accept (see [`incoming`]).
    pub fn peer(&self) -> Option<&PeerCred> {
        self.peer.as_ref()
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: Connected> Connected for AnyAuthority<IO> {
    type ConnectInfo = UdsPeer<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        UdsPeer {
            info: self.io.connect_info(),
            cred: self.peer.clone(),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AnyAuthority<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = buf.remaining().min(this.output.len());
                buf.put_slice(&this.output.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // An incomplete frame at EOF is dropped: the server sees the
                // connection end mid-frame, as it would have without us.
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.eof = true;
                continue;
            }
            this.input.extend_from_slice(rb.filled());
            this.rewriter
                .feed(&mut this.input, &mut this.output)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AnyAuthority<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_credentials_are_ours_on_a_socket_pair() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let cred = peer_cred(&a).expect("SO_PEERCRED on a socket pair");
        // SAFETY: getters without preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!(cred.uid, uid);
        assert_eq!(cred.gid, gid);
        assert_eq!(cred.pid, Some(std::process::id() as i32));
        // SAFETY: getgroups(0, null) only counts.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        assert_eq!(cred.groups.len(), n as usize);
    }

    #[test]
    fn a_non_socket_has_no_peer() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(peer_cred(&f), None);
    }
}
