//! Write coalescing for HTTP/2 connections that carry many streams.
//!
//! The h2 crate writes every DATA frame larger than a few hundred bytes with a syscall of its own
//! and flushes after it. With 100 watchers on a connection, one event is 100 small responses:
//! 100 `writev`s, 100 TCP segments, 100 wake-ups of the client. [`Coalesced`] buffers what is
//! written and defers a flush to the connection's next turn: the task is woken at once, the other
//! streams' responses join the buffer meanwhile, and the next flush writes them all with one
//! syscall. The delay is one turn of the scheduler, not a timer.
//!
//! A turn is counted by reads: the h2 connection reads (until `Pending`) before it writes each
//! time it runs, so a flush deferred during one turn is carried out at the first flush of a later
//! one. The buffer is also written out whenever it passes [`HIGH_WATER`] bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes buffered at most before they are written regardless of deferral.
const HIGH_WATER: usize = 64 * 1024;

/// An I/O object whose writes are buffered and whose flushes are deferred by one turn.
pub(crate) struct Coalesced<T> {
    inner: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `inner`.
    written: usize,
    /// Reads so far: a new value marks a new turn of the connection.
    turn: u64,
    /// The turn in which a flush was deferred, if one is.
    deferred: Option<u64>,
}

impl<T> Coalesced<T> {
    pub(crate) fn new(inner: T) -> Self {
        Coalesced {
            inner,
            buf: Vec::new(),
            written: 0,
            turn: 0,
            deferred: None,
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> Coalesced<T> {
    /// Writes the whole buffer to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.turn = this.turn.wrapping_add(1);
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > HIGH_WATER {
            ready!(this.poll_drain(cx))?;
            if data.len() >= HIGH_WATER {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if this.buf.len() + total > HIGH_WATER {
            ready!(this.poll_drain(cx))?;
            if total >= HIGH_WATER {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buf.is_empty() {
            match this.deferred {
                None => {
                    // Come back next turn; what other streams add meanwhile goes out with it.
                    this.deferred = Some(this.turn);
                    cx.waker().wake_by_ref();
                    return Poll::Ready(Ok(()));
                }
                Some(turn) if turn == this.turn => return Poll::Ready(Ok(())),
                Some(_) => ready!(this.poll_drain(cx))?,
            }
        }
        this.deferred = None;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        this.deferred = None;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_deferred_flush_is_written_on_the_next_turn() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesced::new(a);
        w.write_all(b"one ").await.unwrap();
        w.flush().await.unwrap(); // deferred: nothing sent yet
        w.write_all(b"two").await.unwrap();
        w.flush().await.unwrap(); // same turn: still deferred
        let mut got = [0u8; 16];
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), b.read(&mut got)).await;
        assert!(pending.is_err(), "nothing is written before the next turn");
        // A read starts a new turn; the next flush writes both writes at once.
        let mut none = [0u8; 0];
        let _ = w.read(&mut none).await;
        w.flush().await.unwrap();
        let n = b.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"one two");
    }

    #[tokio::test]
    async fn big_writes_and_shutdown_drain_the_buffer() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesced::new(a);
        w.write_all(b"head").await.unwrap();
        let big = vec![7u8; HIGH_WATER + 10];
        w.write_all(&big).await.unwrap();
        w.write_all(b"tail").await.unwrap();
        w.shutdown().await.unwrap();
        let mut all = Vec::new();
        b.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), 4 + big.len() + 4);
        assert_eq!(&all[..4], b"head");
        assert_eq!(&all[all.len() - 4..], b"tail");
    }
}
