//! Serving gRPC on a Unix socket to every mainstream client.
//!
//! [`incoming`] turns a bound [`UnixListener`] into the connection stream
//! that `tonic::transport::Server::serve_with_incoming` takes. Each
//! connection is an [`AnyAuthority`]: its client-to-server bytes go through
//! [`rewrite::Rewriter`], so requests whose `:authority` is a socket path
//! (gRPC C-core, grpc-java) are served like those that send `localhost`
//! (grpc-go, tonic, kubelet) instead of being reset by h2.

pub mod rewrite;

use std::io;
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
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|next| next.map(|conn| conn.map(AnyAuthority::new)))
    }
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
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: Connected> Connected for AnyAuthority<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
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
