//! Repairs the `:authority` of gRPC clients that put a URL there.
//!
//! etcdctl 3.4 dials `passthrough:///http://host:port` for its per-endpoint calls (`endpoint
//! status`, `endpoint hashkv`, `defrag`) when the endpoints are given as URLs, which is how
//! etcd's documentation writes them. grpc-go then sends `http://host:port` as each request's
//! `:authority`. etcd ignores the value; the h2 crate refuses the stream as malformed
//! (`RST_STREAM` with `PROTOCOL_ERROR`) before the request reaches a service.
//!
//! [`AuthorityFix`] reads the client's HTTP/2 frames ahead of h2 until the connection's first
//! header block. When that block's authority is valid (every other client), the rest of the
//! connection passes through untouched. When it is not, every header block of the connection is
//! decoded (HPACK) and encoded again with the authority repaired: the scheme is dropped, or the
//! field when even that does not leave a valid authority. Other frames are never changed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What every HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Largest frame payload written towards h2 (the HTTP/2 default, which h2 keeps).
const MAX_FRAME: usize = 16_384;
/// Bytes read from the client per call while header blocks are inspected.
const READ_CHUNK: usize = 16 * 1024;
/// Most bytes held back for one unfinished header block; past that, h2 gets the frames as they
/// are and applies its own header-size limit.
const MAX_PENDING: usize = 1 << 20;

/// How the connection's incoming bytes are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Until the first header block: frames are parsed, nothing is changed yet.
    Inspect,
    /// The first request was well-formed: bytes go to h2 as they come.
    Pass,
    /// The first request's authority was not: every header block is rewritten.
    Rewrite,
}

/// An incoming connection whose header blocks get a valid `:authority` (see the module docs).
pub(crate) struct AuthorityFix<T> {
    inner: T,
    mode: Mode,
    /// Bytes of the preface not yet passed on.
    preface_left: usize,
    /// Bytes read from the client, not yet handled.
    input: Vec<u8>,
    /// Handled bytes for h2, from `out_pos` on.
    output: Vec<u8>,
    out_pos: usize,
    /// The client has closed its side.
    eof: bool,
    /// Mirrors the client's HPACK encoder.
    decoder: loona_hpack::Decoder<'static>,
    /// Encodes the rewritten blocks; h2's decoder mirrors it.
    encoder: loona_hpack::Encoder<'static>,
}

impl<T> AuthorityFix<T> {
    pub(crate) fn new(inner: T) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Inspect,
            preface_left: PREFACE.len(),
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
            eof: false,
            decoder: loona_hpack::Decoder::new(),
            encoder: loona_hpack::Encoder::new(),
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Moves every complete unit of `input` (preface, frame, whole header block) to `output`,
    /// rewritten where the mode says so.
    fn process(&mut self) -> io::Result<()> {
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.input.len());
            self.output.extend(self.input.drain(..n));
            self.preface_left -= n;
            if self.preface_left > 0 {
                return Ok(());
            }
        }
        loop {
            if self.mode == Mode::Pass {
                self.output.append(&mut self.input);
                return Ok(());
            }
            let Some((len, kind, _)) = frame_header(&self.input) else {
                return Ok(());
            };
            if len > MAX_FRAME {
                // Larger than h2 accepts: not buffered here, h2 refuses it at once.
                self.mode = Mode::Pass;
                continue;
            }
            if self.input.len() < FRAME_HEADER + len {
                return Ok(());
            }
            if kind != TYPE_HEADERS {
                self.output.extend(self.input.drain(..FRAME_HEADER + len));
                continue;
            }
            let Some(block) = HeaderBlock::parse(&self.input) else {
                if self.input.len() > MAX_PENDING {
                    self.mode = Mode::Pass;
                    continue;
                }
                return Ok(());
            };
            let Some(block) = block else {
                // Not a well-formed block: h2 will say so; nothing here changes it.
                self.mode = Mode::Pass;
                continue;
            };
            self.handle_block(&block)?;
        }
    }

    /// Decodes one complete header block at the start of `input` and passes it on, as it is or
    /// rewritten.
    fn handle_block(&mut self, block: &HeaderBlock) -> io::Result<()> {
        let fragment: Vec<u8> = block
            .fragments
            .iter()
            .flat_map(|r| self.input[r.clone()].iter().copied())
            .collect();
        let mut headers = self.decoder.decode(&fragment).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable HTTP/2 header block: {e:?}"),
            )
        })?;
        let repaired = repair_authority(&mut headers);
        if self.mode == Mode::Inspect && !repaired {
            self.output.extend(self.input.drain(..block.len));
            self.mode = Mode::Pass;
            return Ok(());
        }
        if repaired && self.mode == Mode::Inspect {
            tracing::debug!("client sends a URL as :authority; its header blocks are repaired");
        }
        self.mode = Mode::Rewrite;
        let mut encoded = Vec::new();
        self.encoder
            .encode_into(headers.iter().map(|(n, v)| (&n[..], &v[..])), &mut encoded)?;
        write_block(&mut self.output, block, &encoded);
        self.input.drain(..block.len);
        Ok(())
    }
}

/// A header block (HEADERS and its CONTINUATION frames) at the start of a buffer.
struct HeaderBlock {
    /// Bytes the frames take.
    len: usize,
    stream_id: [u8; 4],
    /// The HEADERS frame's END_STREAM flag.
    end_stream: bool,
    /// The HEADERS frame's priority fields, if it has them.
    priority: Option<[u8; 5]>,
    /// Where the block's fragments lie in the buffer.
    fragments: Vec<std::ops::Range<usize>>,
}

impl HeaderBlock {
    /// `None` until the whole block has arrived; `Some(None)` when the frames are malformed.
    fn parse(buf: &[u8]) -> Option<Option<HeaderBlock>> {
        let (len, _, flags) = frame_header(buf)?;
        if buf.len() < FRAME_HEADER + len {
            return None;
        }
        let payload = &buf[FRAME_HEADER..FRAME_HEADER + len];
        let mut start = 0;
        let mut pad = 0;
        if flags & FLAG_PADDED != 0 {
            let Some(&p) = payload.first() else {
                return Some(None);
            };
            pad = usize::from(p);
            start = 1;
        }
        let mut priority = None;
        if flags & FLAG_PRIORITY != 0 {
            let Some(p) = payload.get(start..start + 5) else {
                return Some(None);
            };
            priority = Some(<[u8; 5]>::try_from(p).expect("five bytes"));
            start += 5;
        }
        if start + pad > len {
            return Some(None);
        }
        let mut block = HeaderBlock {
            len: FRAME_HEADER + len,
            stream_id: <[u8; 4]>::try_from(&buf[5..9]).expect("four bytes"),
            end_stream: flags & FLAG_END_STREAM != 0,
            priority,
            fragments: std::iter::once(FRAME_HEADER + start..FRAME_HEADER + len - pad).collect(),
        };
        let mut end_headers = flags & FLAG_END_HEADERS != 0;
        while !end_headers {
            let rest = &buf[block.len..];
            let (len, kind, flags) = frame_header(rest)?;
            if kind != TYPE_CONTINUATION || rest[5..9] != block.stream_id {
                return Some(None);
            }
            if rest.len() < FRAME_HEADER + len {
                return None;
            }
            block
                .fragments
                .push(block.len + FRAME_HEADER..block.len + FRAME_HEADER + len);
            block.len += FRAME_HEADER + len;
            end_headers = flags & FLAG_END_HEADERS != 0;
        }
        Some(Some(block))
    }
}

/// Length, type and flags of the frame starting `buf`, once its header has arrived.
fn frame_header(buf: &[u8]) -> Option<(usize, u8, u8)> {
    let h = buf.get(..FRAME_HEADER)?;
    let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
    Some((len, h[3], h[4]))
}

/// Appends `block`'s frames again, carrying the header block `encoded` (split into
/// CONTINUATION frames where it exceeds the frame size).
fn write_block(out: &mut Vec<u8>, block: &HeaderBlock, encoded: &[u8]) {
    let prio_len = block.priority.map_or(0, |_| 5);
    let first_len = encoded.len().min(MAX_FRAME - prio_len);
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = 0;
    if block.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    push_frame_header(out, prio_len + first.len(), TYPE_HEADERS, flags, block.stream_id);
    if let Some(p) = block.priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        let flags = if tail.is_empty() { FLAG_END_HEADERS } else { 0 };
        push_frame_header(out, chunk.len(), TYPE_CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn push_frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream_id: [u8; 4]) {
    let len = u32::try_from(len).expect("frame payloads are at most MAX_FRAME bytes");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id);
}

/// Makes the `:authority` valid: `scheme://host:port[/...]` becomes `host:port`; a value that is
/// still invalid is dropped (gRPC does not need it). Returns whether anything changed.
fn repair_authority(headers: &mut Vec<(Vec<u8>, Vec<u8>)>) -> bool {
    let Some(i) = headers.iter().position(|(n, _)| n == b":authority") else {
        return false;
    };
    let value = &headers[i].1;
    if is_valid_authority(value) {
        return false;
    }
    let host = value
        .windows(3)
        .position(|w| w == b"://")
        .map(|p| &value[p + 3..])
        .map(|rest| rest.split(|&b| b == b'/').next().unwrap_or_default().to_vec())
        .filter(|host| is_valid_authority(host));
    match host {
        Some(host) => headers[i].1 = host,
        None => {
            headers.remove(i);
        }
    }
    true
}

fn is_valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthorityFix<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.out_pos);
                buf.put_slice(&this.output[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.output.len() {
                    this.output.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::Pass && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.eof {
                // Whatever is left is incomplete: h2 gets it as it is and reports it.
                this.output.append(&mut this.input);
                if this.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let filled = this.input.len();
            this.input.resize(filled + READ_CHUNK, 0);
            let mut read = ReadBuf::new(&mut this.input[filled..]);
            let res = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let got = read.filled().len();
            this.input.truncate(filled + got);
            ready!(res)?;
            if got == 0 {
                this.eof = true;
                continue;
            }
            this.process()?;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    type Headers = Vec<(Vec<u8>, Vec<u8>)>;

    fn request(authority: &str, path: &str) -> Headers {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_frame_header(&mut out, payload.len(), kind, flags, stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A client's byte stream: preface, SETTINGS, then per request a header block (in frames of
    /// at most `chunk` bytes) and a DATA frame. One encoder for all blocks, as a client has, so
    /// later blocks refer to the dynamic table.
    fn client_bytes(requests: &[Headers], chunk: usize) -> Vec<u8> {
        let mut enc = loona_hpack::Encoder::new();
        let mut out = PREFACE.to_vec();
        out.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        for (i, headers) in requests.iter().enumerate() {
            let stream = 1 + 2 * i as u32;
            let block = enc.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
            let chunks: Vec<&[u8]> = block.chunks(chunk).collect();
            for (j, c) in chunks.iter().enumerate() {
                let kind = if j == 0 { TYPE_HEADERS } else { TYPE_CONTINUATION };
                let flags = if j + 1 == chunks.len() {
                    FLAG_END_HEADERS
                } else {
                    0
                };
                out.extend(frame(kind, flags, stream, c));
            }
            out.extend(frame(0x0, FLAG_END_STREAM, stream, b"\0\0\0\0\x02hi"));
        }
        out
    }

    /// Hands out its bytes a few at a time, as a slow network would; then ends the stream, or
    /// with `open` keeps it open without sending more.
    struct Trickle(Vec<u8>, usize, bool);

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if this.1 == this.0.len() && this.2 {
                return Poll::Pending;
            }
            let n = 3.min(this.0.len() - this.1).min(buf.remaining());
            buf.put_slice(&this.0[this.1..this.1 + n]);
            this.1 += n;
            Poll::Ready(Ok(()))
        }
    }

    async fn through_fix(bytes: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        AuthorityFix::new(Trickle(bytes, 0, false))
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    /// What h2 would see: each header block decoded (one decoder for the connection), and
    /// the other frames' types.
    fn server_view(bytes: &[u8]) -> (Vec<Headers>, Vec<u8>) {
        assert!(bytes.starts_with(PREFACE));
        let mut rest = &bytes[PREFACE.len()..];
        let mut dec = loona_hpack::Decoder::new();
        let (mut blocks, mut others) = (Vec::new(), Vec::new());
        while !rest.is_empty() {
            let (_, kind, _) = frame_header(rest).unwrap();
            if kind == TYPE_HEADERS {
                let block = HeaderBlock::parse(rest).expect("complete").expect("well-formed");
                let fragment: Vec<u8> = block
                    .fragments
                    .iter()
                    .flat_map(|r| rest[r.clone()].to_vec())
                    .collect();
                blocks.push(dec.decode(&fragment).unwrap());
                rest = &rest[block.len..];
            } else {
                let (len, ..) = frame_header(rest).unwrap();
                others.push(kind);
                rest = &rest[FRAME_HEADER + len..];
            }
        }
        (blocks, others)
    }

    #[tokio::test]
    async fn a_well_formed_connection_passes_through_byte_for_byte() {
        let bytes = client_bytes(
            &[
                request("127.0.0.1:2379", "/etcdserverpb.KV/Put"),
                request("127.0.0.1:2379", "/etcdserverpb.KV/Range"),
            ],
            20,
        );
        assert_eq!(through_fix(bytes.clone()).await, bytes);
    }

    #[tokio::test]
    async fn a_url_authority_is_repaired_in_every_block_of_the_connection() {
        let paths = [
            "/etcdserverpb.Maintenance/Status",
            "/etcdserverpb.Maintenance/HashKV",
        ];
        for chunk in [MAX_FRAME, 20] {
            let sent: Vec<Headers> = paths
                .iter()
                .map(|p| request("http://127.0.0.1:2379", p))
                .collect();
            let (blocks, others) = server_view(&through_fix(client_bytes(&sent, chunk)).await);
            assert_eq!(others, vec![0x4, 0x0, 0x0], "SETTINGS and DATA frames are kept");
            assert_eq!(blocks.len(), 2);
            for (got, path) in blocks.iter().zip(paths) {
                assert_eq!(got, &request("127.0.0.1:2379", path));
            }
        }
    }

    #[tokio::test]
    async fn an_authority_that_cannot_be_repaired_is_dropped() {
        let sent = vec![request("unix:///var/run/etcd.sock", "/etcdserverpb.KV/Range")];
        let (blocks, _) = server_view(&through_fix(client_bytes(&sent, MAX_FRAME)).await);
        let mut expected = request("x", "/etcdserverpb.KV/Range");
        expected.retain(|(n, _)| n != b":authority");
        assert_eq!(blocks, vec![expected]);
    }

    #[tokio::test]
    async fn a_block_larger_than_a_frame_is_split_into_continuations() {
        let mut big = request("http://127.0.0.1:2379", "/etcdserverpb.KV/Range");
        big.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
        let out = through_fix(client_bytes(std::slice::from_ref(&big), MAX_FRAME)).await;
        let (blocks, _) = server_view(&out);
        assert_eq!(blocks[0][3], (b":authority".to_vec(), b"127.0.0.1:2379".to_vec()));
        assert_eq!(blocks[0][6].1.len(), 40_000);
        // Every frame stays within the default frame size.
        let mut rest = &out[PREFACE.len()..];
        while let Some((len, ..)) = frame_header(rest) {
            assert!(len <= MAX_FRAME, "{len}");
            rest = &rest[FRAME_HEADER + len..];
        }
    }

    #[tokio::test]
    async fn an_oversized_frame_goes_to_h2_unbuffered() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(&frame(0x0, 0, 1, b"")[..5]);
        bytes[PREFACE.len()..PREFACE.len() + 3].copy_from_slice(&[0x10, 0, 0]);
        assert_eq!(through_fix(bytes.clone()).await, bytes);
    }

    #[tokio::test]
    async fn an_endless_header_block_is_not_held_back_without_bound() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(TYPE_HEADERS, 0, 1, &[0x82]));
        while bytes.len() <= MAX_PENDING + MAX_FRAME {
            bytes.extend(frame(TYPE_CONTINUATION, 0, 1, &[0x82; MAX_FRAME]));
        }
        // The client keeps the connection open: nothing but the bound lets the bytes through.
        let mut fix = AuthorityFix::new(Trickle(bytes.clone(), 0, true));
        let mut out = vec![0u8; bytes.len()];
        tokio::time::timeout(std::time::Duration::from_secs(10), fix.read_exact(&mut out))
            .await
            .expect("held back")
            .unwrap();
        assert_eq!(out, bytes, "passed on unchanged once past the bound");
        assert!(fix.input.is_empty());
    }

    #[tokio::test]
    async fn an_undecodable_block_is_an_error_not_a_panic() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0x7f],
        ));
        let mut out = Vec::new();
        let err = AuthorityFix::new(Trickle(bytes, 0, false))
            .read_to_end(&mut out)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
