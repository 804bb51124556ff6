//! The snapshot file format of the etcd API.
//!
//! etcd's clients check a saved snapshot the way etcd writes it: the database, whose size is a
//! multiple of 512 bytes, followed by the SHA-256 of it (`etcdctl snapshot save` refuses a file
//! whose size is not `512 * n + 32`). The store's own snapshot bytes are wrapped to that shape:
//!
//! ```text
//! store snapshot ‖ zero padding ‖ "KEELSNAP" ‖ be_u64(len(store snapshot)) ‖ sha256(all before)
//! ```
//!
//! with the padding chosen so everything before the digest is a multiple of 512 bytes.
//! [`unwrap_snapshot`] checks a file and returns the store's bytes for its restore.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use storage::SnapshotStream;

/// Marks the trailer of a wrapped snapshot.
const MAGIC: &[u8; 8] = b"KEELSNAP";
/// Size of the magic plus the length.
const TRAILER: usize = 16;
/// Size of the SHA-256 digest at the end.
const DIGEST: usize = 32;
/// Size the part before the digest is a multiple of.
const SECTOR: usize = 512;
/// Largest message sent on the snapshot stream.
const CHUNK: usize = 64 * 1024;

/// Why a snapshot file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// The size does not have the etcd snapshot shape.
    #[error("not a snapshot file: size {0} is not 512*n+32")]
    Size(usize),
    /// The SHA-256 at the end does not match the contents.
    #[error("snapshot file is corrupt: checksum mismatch")]
    Checksum,
    /// The trailer is missing or names an impossible length.
    #[error("not a Keelson snapshot file (no trailer)")]
    Trailer,
}

/// Checks a snapshot file written from the etcd API and returns the store's snapshot in it.
pub fn unwrap_snapshot(file: &[u8]) -> Result<&[u8], SnapshotFileError> {
    let len = file.len();
    if len < SECTOR + DIGEST || len % SECTOR != DIGEST {
        return Err(SnapshotFileError::Size(len));
    }
    let (body, digest) = file.split_at(len - DIGEST);
    if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest {
        return Err(SnapshotFileError::Checksum);
    }
    let trailer = &body[body.len() - TRAILER..];
    if &trailer[..8] != MAGIC {
        return Err(SnapshotFileError::Trailer);
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&trailer[8..]);
    let data_len = usize::try_from(u64::from_be_bytes(n)).map_err(|_| SnapshotFileError::Trailer)?;
    if data_len > body.len() - TRAILER {
        return Err(SnapshotFileError::Trailer);
    }
    Ok(&body[..data_len])
}

/// The trailer that follows `data_len` bytes of store snapshot.
fn trailer(data_len: usize) -> Vec<u8> {
    let pad = (SECTOR - (data_len + TRAILER) % SECTOR) % SECTOR;
    let mut t = vec![0u8; pad];
    t.extend_from_slice(MAGIC);
    t.extend_from_slice(&(data_len as u64).to_be_bytes());
    t
}

/// Wraps a store's snapshot stream into the etcd file shape, in messages of at most 64 KiB,
/// each with the number of bytes known to follow it (0 on the last).
pub(crate) struct Framer;

enum Phase {
    Data,
    Trailer,
    Digest,
    Done,
}

struct FrameState {
    inner: SnapshotStream,
    pending: Bytes,
    sha: ring::digest::Context,
    len: usize,
    phase: Phase,
}

impl Framer {
    /// The framed stream.
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new(
        inner: SnapshotStream,
    ) -> impl Stream<Item = storage::Result<(Bytes, u64)>> + Send + 'static {
        let state = FrameState {
            inner,
            pending: Bytes::new(),
            sha: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
            phase: Phase::Data,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                match s.phase {
                    Phase::Data => {
                        if !s.pending.is_empty() {
                            let n = s.pending.len().min(CHUNK);
                            let piece = s.pending.split_to(n);
                            s.sha.update(&piece);
                            s.len += piece.len();
                            let at_least = (TRAILER + DIGEST + s.pending.len()) as u64;
                            return Some((Ok((piece, at_least)), s));
                        }
                        match s.inner.next().await {
                            Some(Ok(chunk)) => s.pending = chunk,
                            Some(Err(e)) => {
                                s.phase = Phase::Done;
                                return Some((Err(e), s));
                            }
                            None => s.phase = Phase::Trailer,
                        }
                    }
                    Phase::Trailer => {
                        let t = trailer(s.len);
                        s.sha.update(&t);
                        s.phase = Phase::Digest;
                        return Some((Ok((Bytes::from(t), DIGEST as u64)), s));
                    }
                    Phase::Digest => {
                        let digest = s.sha.clone().finish();
                        s.phase = Phase::Done;
                        return Some((Ok((Bytes::copy_from_slice(digest.as_ref()), 0)), s));
                    }
                    Phase::Done => return None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frame(chunks: Vec<&'static [u8]>) -> Vec<u8> {
        let inner: SnapshotStream =
            futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed();
        let mut out = Vec::new();
        let mut last_remaining = None;
        let mut s = std::pin::pin!(Framer::new(inner));
        while let Some(item) = s.next().await {
            let (b, remaining) = item.unwrap();
            out.extend_from_slice(&b);
            last_remaining = Some(remaining);
        }
        assert_eq!(last_remaining, Some(0));
        out
    }

    #[tokio::test]
    async fn framed_snapshot_has_etcd_shape_and_round_trips() {
        for chunks in [
            vec![],
            vec![&b"hello"[..], &b" world"[..]],
            vec![&[7u8; 496][..]],
            vec![&[1u8; 200_000][..]],
        ] {
            let data: Vec<u8> = chunks.concat();
            let file = frame(chunks).await;
            assert_eq!(file.len() % 512, 32, "etcdctl's size check");
            assert_eq!(unwrap_snapshot(&file).unwrap(), &data[..]);
        }
    }

    #[tokio::test]
    async fn damaged_files_are_refused() {
        let mut file = frame(vec![b"data"]).await;
        assert!(matches!(
            unwrap_snapshot(&file[..100]),
            Err(SnapshotFileError::Size(100))
        ));
        file[1] ^= 1;
        assert!(matches!(unwrap_snapshot(&file), Err(SnapshotFileError::Checksum)));
    }
}
