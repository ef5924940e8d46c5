//! The client-to-server half of an HTTP/2 connection, rewritten so that a
//! `:authority` that is not a valid URI authority becomes `localhost`.
//!
//! Why: over a Unix socket there is no host to name, and clients disagree on
//! what to send. gRPC C-core (Python, C++, Ruby, PHP) and grpc-java send the
//! socket path (`/run/bpfman-sock/bpfman.sock`), which h2 refuses with
//! `RST_STREAM(PROTOCOL_ERROR)` before tonic sees the request (hyperium/h2
//! keeps that strictness on purpose). grpc-go and kubelet send `localhost`.
//!
//! How: frames pass through untouched except header blocks (HEADERS plus
//! CONTINUATION), which are HPACK-decoded with the client's compression
//! context and re-encoded as literals without indexing, with the authority
//! fixed. Re-encoding every block keeps h2's decoder consistent: its dynamic
//! table stays empty and never depends on the client's. Padding and priority
//! fields of HEADERS are dropped (h2 ignores priorities).

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::Decoder;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD: usize = 9;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise: frames we
/// write are never larger, whatever the server configured.
const OUT_FRAME: usize = 16_384;
/// Largest header block we buffer (all its frames together). Servers refuse
/// header lists far smaller than this (hyper's default is 16 KiB).
pub const MAX_HEADER_BLOCK: usize = 1 << 20;
/// What replaces an authority that is not one.
const LOCALHOST: &[u8] = b"localhost";

/// Why the stream cannot be rewritten: the connection is closed, as h2 would
/// have closed it for the same input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewriteError {
    /// Frames of another kind or stream inside a header block, or a
    /// PUSH_PROMISE from a client.
    #[error("HTTP/2 protocol error from the client: {0}")]
    Protocol(&'static str),
    /// Header block bigger than [`MAX_HEADER_BLOCK`].
    #[error("HTTP/2 header block over {MAX_HEADER_BLOCK} bytes")]
    TooLarge,
    /// HPACK that does not decode.
    #[error("HTTP/2 header block does not decode (HPACK): {0}")]
    Hpack(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the 24-byte preface.
    Preface,
    /// At a frame boundary.
    FrameHead,
    /// Copying the rest of a frame we do not change.
    Forward(usize),
    /// Not HTTP/2 with prior knowledge: everything is copied, and the server
    /// says what is wrong.
    Raw,
}

struct Pending {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

/// The rewriter of one connection's client-to-server bytes.
pub struct Rewriter {
    state: State,
    decoder: Decoder<'static>,
    pending: Option<Pending>,
    /// Authorities replaced so far on this connection.
    replaced: u64,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewriter {
    /// A rewriter at the start of a connection.
    pub fn new() -> Self {
        Rewriter {
            state: State::Preface,
            decoder: Decoder::new(),
            pending: None,
            replaced: 0,
        }
    }

    /// How many `:authority` values were replaced so far.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Consumes what it can of `input` (bytes from the client), appending the
    /// bytes for the server to `out`. What is left in `input` is an
    /// incomplete frame head or header frame, to be fed again with more.
    pub fn feed(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<(), RewriteError> {
        loop {
            match self.state {
                State::Raw => {
                    out.extend_from_slice(&input.split());
                    return Ok(());
                }
                State::Preface => {
                    let n = input.len().min(PREFACE.len());
                    if input[..n] != PREFACE[..n] {
                        self.state = State::Raw;
                        continue;
                    }
                    if n < PREFACE.len() {
                        return Ok(());
                    }
                    out.extend_from_slice(&input.split_to(PREFACE.len()));
                    self.state = State::FrameHead;
                }
                State::Forward(0) => self.state = State::FrameHead,
                State::Forward(left) => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    let n = left.min(input.len());
                    out.extend_from_slice(&input.split_to(n));
                    self.state = State::Forward(left - n);
                }
                State::FrameHead => {
                    if input.len() < FRAME_HEAD {
                        return Ok(());
                    }
                    let len = (usize::from(input[0]) << 16)
                        | (usize::from(input[1]) << 8)
                        | usize::from(input[2]);
                    let kind = input[3];
                    let flags = input[4];
                    let stream =
                        u32::from_be_bytes([input[5], input[6], input[7], input[8]]) & 0x7fff_ffff;
                    let in_block = self.pending.is_some();
                    match kind {
                        HEADERS | CONTINUATION => {
                            if (kind == CONTINUATION) != in_block {
                                return Err(RewriteError::Protocol(if in_block {
                                    "HEADERS inside a header block"
                                } else {
                                    "CONTINUATION outside a header block"
                                }));
                            }
                            let buffered = self.pending.as_ref().map_or(0, |p| p.block.len());
                            if len > MAX_HEADER_BLOCK || buffered + len > MAX_HEADER_BLOCK {
                                return Err(RewriteError::TooLarge);
                            }
                            if input.len() < FRAME_HEAD + len {
                                return Ok(());
                            }
                            input.advance(FRAME_HEAD);
                            let payload = input.split_to(len);
                            self.header_frame(kind, flags, stream, payload, out)?;
                        }
                        _ if in_block => {
                            return Err(RewriteError::Protocol(
                                "a frame other than CONTINUATION inside a header block",
                            ));
                        }
                        PUSH_PROMISE => {
                            return Err(RewriteError::Protocol("PUSH_PROMISE from a client"));
                        }
                        _ => {
                            out.extend_from_slice(&input.split_to(FRAME_HEAD));
                            self.state = State::Forward(len);
                        }
                    }
                }
            }
        }
    }

    fn header_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        mut payload: BytesMut,
        out: &mut BytesMut,
    ) -> Result<(), RewriteError> {
        if kind == HEADERS {
            if flags & PADDED != 0 {
                let Some(&pad) = payload.first() else {
                    return Err(RewriteError::Protocol(
                        "padded HEADERS without a pad length",
                    ));
                };
                payload.advance(1);
                if usize::from(pad) > payload.len() {
                    return Err(RewriteError::Protocol(
                        "HEADERS padding longer than the frame",
                    ));
                }
                payload.truncate(payload.len() - usize::from(pad));
            }
            if flags & PRIORITY != 0 {
                if payload.len() < 5 {
                    return Err(RewriteError::Protocol("HEADERS priority field cut short"));
                }
                payload.advance(5);
            }
            self.pending = Some(Pending {
                stream,
                end_stream: flags & END_STREAM != 0,
                block: payload,
            });
        } else {
            match self.pending.as_mut() {
                Some(p) if p.stream == stream => p.block.extend_from_slice(&payload),
                _ => {
                    return Err(RewriteError::Protocol(
                        "CONTINUATION on another stream than its HEADERS",
                    ));
                }
            }
        }
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        let Some(p) = self.pending.take() else {
            return Err(RewriteError::Protocol("header block end without a start"));
        };
        let block = self.reencode(&p.block)?;
        write_header_frames(out, p.stream, p.end_stream, &block);
        Ok(())
    }

    /// Decodes a header block with the client's context and encodes it again
    /// as literals without indexing, with a valid authority.
    fn reencode(&mut self, block: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let mut encoded = Vec::with_capacity(block.len() * 2);
        let mut replaced = 0;
        self.decoder
            .decode_with_cb(block, |name, value| {
                let value: &[u8] = if &*name == b":authority" && !valid_authority(&value) {
                    replaced += 1;
                    LOCALHOST
                } else {
                    &value
                };
                literal_without_indexing(&mut encoded, &name, value);
            })
            .map_err(|e| RewriteError::Hpack(format!("{e:?}")))?;
        if replaced > 0 && self.replaced == 0 {
            tracing::debug!(
                "client sent an :authority that is not one (a socket path?): serving it as localhost"
            );
        }
        self.replaced += replaced;
        Ok(encoded)
    }
}

fn valid_authority(v: &[u8]) -> bool {
    http::uri::Authority::try_from(v).is_ok()
}

/// HPACK §6.2.2: `0000 0000`, then name and value as raw string literals.
fn literal_without_indexing(dst: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    dst.push(0);
    string_literal(dst, name);
    string_literal(dst, value);
}

/// HPACK §5.2 without Huffman: a 7-bit-prefix length, then the octets.
fn string_literal(dst: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 0x7f {
        dst.push(n as u8);
    } else {
        dst.push(0x7f);
        n -= 0x7f;
        while n >= 0x80 {
            dst.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        dst.push(n as u8);
    }
    dst.extend_from_slice(s);
}

/// One HEADERS frame, then CONTINUATION frames, none over [`OUT_FRAME`].
fn write_header_frames(out: &mut BytesMut, stream: u32, end_stream: bool, block: &[u8]) {
    let mut chunks = block.chunks(OUT_FRAME).peekable();
    let mut first = true;
    // An empty block still needs its HEADERS frame.
    let empty: &[u8] = &[];
    if chunks.peek().is_none() {
        write_frame(
            out,
            HEADERS,
            END_HEADERS | if end_stream { END_STREAM } else { 0 },
            stream,
            empty,
        );
        return;
    }
    while let Some(chunk) = chunks.next() {
        let mut flags = 0;
        if chunks.peek().is_none() {
            flags |= END_HEADERS;
        }
        let kind = if first {
            if end_stream {
                flags |= END_STREAM;
            }
            HEADERS
        } else {
            CONTINUATION
        };
        write_frame(out, kind, flags, stream, chunk);
        first = false;
    }
}

fn write_frame(out: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.reserve(FRAME_HEAD + len);
    out.put_u8((len >> 16) as u8);
    out.put_u8((len >> 8) as u8);
    out.put_u8(len as u8);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream & 0x7fff_ffff);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use loona_hpack::Encoder;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        write_frame(&mut b, kind, flags, stream, payload);
        b.to_vec()
    }

    /// Splits `out` (after the preface) into (kind, flags, stream, payload).
    fn frames(mut b: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
            v.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
            b = &b[9 + len..];
        }
        v
    }

    fn headers(auth: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (b":path".to_vec(), b"/grpc.health.v1.Health/Check".to_vec()),
            (b":authority".to_vec(), auth.to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
            (b"content-type".to_vec(), b"application/grpc".to_vec()),
        ]
    }

    fn encode(enc: &mut Encoder<'static>, h: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        enc.encode(h.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    fn run(rw: &mut Rewriter, bytes: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let mut input = BytesMut::from(bytes);
        let mut out = BytesMut::new();
        rw.feed(&mut input, &mut out)?;
        assert!(input.is_empty(), "left over: {input:?}");
        Ok(out.to_vec())
    }

    fn decode_all(out: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut dec = Decoder::new();
        let mut blocks = Vec::new();
        let mut cur = Vec::new();
        for (kind, flags, _, p) in frames(out) {
            if kind == HEADERS || kind == CONTINUATION {
                cur.extend_from_slice(&p);
                if flags & END_HEADERS != 0 {
                    blocks.push(dec.decode(&cur).unwrap());
                    cur.clear();
                }
            }
        }
        blocks
    }

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_the_table_stays_in_step() {
        let mut enc = Encoder::new();
        let mut input = PREFACE.to_vec();
        // SETTINGS, two requests on streams 1 and 3 (the second is mostly
        // dynamic-table references to the first), a DATA frame in between.
        input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        let h = headers(b"/run/bpfman-sock/bpfman.sock");
        input.extend(frame(HEADERS, END_HEADERS, 1, &encode(&mut enc, &h)));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        input.extend(frame(HEADERS, END_HEADERS, 3, &encode(&mut enc, &h)));
        let mut rw = Rewriter::new();
        let out = run(&mut rw, &input).unwrap();
        assert_eq!(&out[..24], PREFACE);
        let fr = frames(&out[24..]);
        assert_eq!(fr.len(), 4);
        assert_eq!(fr[0], (0x4, 0, 0, vec![0, 3, 0, 0, 0, 100]));
        assert_eq!(fr[2], (0x0, END_STREAM, 1, b"\0\0\0\0\0".to_vec()));
        let blocks = decode_all(&out[24..]);
        let want = headers(b"localhost");
        assert_eq!(blocks, vec![want.clone(), want]);
        assert_eq!(rw.replaced(), 2);
    }

    #[test]
    fn valid_authorities_are_kept() {
        for auth in [
            &b"localhost"[..],
            b"127.0.0.1:50051",
            b"[::1]:80",
            b"bpfman",
        ] {
            let mut enc = Encoder::new();
            let mut input = PREFACE.to_vec();
            input.extend(frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &encode(&mut enc, &headers(auth)),
            ));
            let mut rw = Rewriter::new();
            let out = run(&mut rw, &input).unwrap();
            assert_eq!(decode_all(&out[24..]), vec![headers(auth)]);
            assert_eq!(frames(&out[24..])[0].1, END_HEADERS | END_STREAM);
            assert_eq!(rw.replaced(), 0);
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_output() {
        let mut enc = Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &encode(&mut enc, &headers(b"/x.sock")),
        ));
        input.extend(frame(0x0, 0, 1, &[7; 300]));
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            3,
            &encode(&mut enc, &headers(b"/x.sock")),
        ));
        let whole = run(&mut Rewriter::new(), &input).unwrap();
        let mut rw = Rewriter::new();
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        for b in &input {
            buf.put_u8(*b);
            rw.feed(&mut buf, &mut out).unwrap();
        }
        assert!(buf.is_empty());
        assert_eq!(out.to_vec(), whole);
    }

    #[test]
    fn padding_priority_and_continuations_are_understood() {
        let mut enc = Encoder::new();
        let mut h = headers(b"/x.sock");
        h.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        let block = encode(&mut enc, &h);
        let (a, rest) = block.split_at(10);
        let (b, c) = rest.split_at(20_000);
        let mut first = vec![3u8]; // pad length
        first.extend([0x80, 0, 0, 1, 16]); // exclusive dependency on 1, weight 16
        first.extend(a);
        first.extend([0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 5, &first));
        input.extend(frame(CONTINUATION, 0, 5, b));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, c));
        let out = run(&mut Rewriter::new(), &input).unwrap();
        let fr = frames(&out[24..]);
        assert_eq!(fr[0].0, HEADERS);
        assert_eq!(fr[0].1, END_STREAM);
        assert!(fr.iter().all(|f| f.2 == 5 && f.3.len() <= OUT_FRAME));
        assert_eq!(
            fr.last().map(|f| (f.0, f.1)),
            Some((CONTINUATION, END_HEADERS))
        );
        let mut want = h.clone();
        want[3].1 = b"localhost".to_vec();
        assert_eq!(decode_all(&out[24..]), vec![want]);
    }

    #[test]
    fn not_http2_passes_through() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(run(&mut Rewriter::new(), input).unwrap(), input.to_vec());
    }

    #[test]
    fn broken_streams_are_refused() {
        let mut pre = PREFACE.to_vec();
        pre.extend(frame(CONTINUATION, END_HEADERS, 1, &[]));
        assert!(matches!(
            run(&mut Rewriter::new(), &pre),
            Err(RewriteError::Protocol(_))
        ));

        let mut pre = PREFACE.to_vec();
        pre.extend(frame(HEADERS, 0, 1, &[0x82]));
        pre.extend(frame(0x0, 0, 1, &[]));
        assert!(matches!(
            run(&mut Rewriter::new(), &pre),
            Err(RewriteError::Protocol(_))
        ));

        let mut pre = PREFACE.to_vec();
        pre.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0x7f]));
        assert!(matches!(
            run(&mut Rewriter::new(), &pre),
            Err(RewriteError::Hpack(_))
        ));

        let mut pre = PREFACE.to_vec();
        pre.extend_from_slice(&[0x10, 0, 1, HEADERS, 0, 0, 0, 0, 1]);
        let mut input = BytesMut::from(&pre[..]);
        assert_eq!(
            Rewriter::new().feed(&mut input, &mut BytesMut::new()),
            Err(RewriteError::TooLarge)
        );
    }

    #[test]
    fn long_string_lengths_use_the_integer_continuation() {
        let mut v = Vec::new();
        string_literal(&mut v, &[b'x'; 1337]);
        // 1337 - 127 = 1210 = 0b1001_0111010 -> 0xba 0x09
        assert_eq!(&v[..3], &[0x7f, 0xba, 0x09]);
        assert_eq!(v.len(), 3 + 1337);
    }
}
