//! Stream reads through a per-thread scratch buffer, and the bytes such a read took
//! from the kernel beyond what its caller asked for ([`Leftover`], one per stream).
//!
//! Owns: the scratch buffer (one per thread, allocated on the first small read), the
//! choice between reading into it and reading into the caller's buffer directly, and
//! the per-stream leftover bytes. Must not touch: readiness or wakers — a read reports
//! which readiness event it proved drained and `source` clears it — nor any user code:
//! nothing here calls a waker or drops a user value, so the scratch borrow and the
//! leftover lock are never held across user code.
//!
//! Why: with edge-triggered readiness a read that fills the caller's buffer exactly
//! does not prove the socket drained, so the next read would spend a `recv` only to
//! learn `WouldBlock` (a 64-byte `read_exact` of a 64-byte message: half of all
//! `recv`s). A read of fewer than [`DIRECT_FROM`] bytes asks the kernel for
//! [`SCRATCH_LEN`] instead: if less than that arrives, the receive queue is proven
//! empty and readiness can be forgotten at once (SPEC §11 P12). Whatever does not fit
//! into the caller's buffer is kept as leftover bytes, served — oldest first, without
//! touching the socket — by the next reads. They are allocated only while there are
//! some (an idle stream costs one pointer and a lock word, SPEC P14) and freed when
//! the last one is read or the stream is dropped.
//!
//! The rule that keeps waits right: while a stream has leftover bytes its read
//! readiness is not cleared. A read that drained the socket *and* left bytes over
//! stores the readiness event with them; the read that takes the last leftover byte
//! hands that event back to be cleared — and clearing is skipped when a newer event
//! arrived meanwhile (the tick check of `reactor::ScheduledIo`). So `readable()`, a
//! second waiter and the cooperative budget see a stream with leftover bytes exactly
//! as a socket with data in its queue, and every read — leftover or not — first
//! passes the usual readiness check (which delivers a cancellation and spends one
//! unit of budget). A read made with no readiness event in hand (a `try_read` before
//! the loop saw any) reads straight into the caller's buffer: there would be no
//! readiness to keep set, and epoll does not report a queue the read emptied.

use std::cell::RefCell;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::PoisonError;

use crate::loom::sync::Mutex;

/// Bytes one scratch read asks the kernel for (the socket is drained when fewer come).
/// 64 KiB: larger than anything loopback TCP delivers in one burst of small messages,
/// and the kernel only writes (so only touches) what it has.
pub(crate) const SCRATCH_LEN: usize = 64 * 1024;

/// Reads of at least this many bytes go straight into the caller's buffer. Chosen by
/// measurement (256 MiB over loopback TCP, one reader, CPU time): through the scratch
/// buffer a 512-byte reader needs 0.3× the CPU, 2–8 KiB readers 0.55–0.75×, 16–40 KiB
/// readers 0.8–0.95× (one `recv` serves several reads); at 48 KiB the results are
/// mixed (less CPU, more wall time) and at 60 KiB the extra copies cost more (1.2×)
/// than the `recv`s they save.
pub(crate) const DIRECT_FROM: usize = 32 * 1024;

thread_local! {
    /// This thread's scratch buffer; `None` until a small read needs it.
    static SCRATCH: RefCell<Option<Box<[u8]>>> = const { RefCell::new(None) };
}

/// The caller's buffer of a stream read.
pub(crate) enum ReadBuf<'a> {
    /// `read`, `try_read`, `AsyncRead`.
    Init(&'a mut [u8]),
    /// hyper's uninitialised `ReadBufCursor`: never zeroed; only bytes are written.
    #[cfg(any(feature = "hyper", feature = "tokio-io"))]
    Uninit(&'a mut [std::mem::MaybeUninit<u8>]),
}

impl ReadBuf<'_> {
    fn len(&self) -> usize {
        match self {
            ReadBuf::Init(b) => b.len(),
            #[cfg(any(feature = "hyper", feature = "tokio-io"))]
            ReadBuf::Uninit(b) => b.len(),
        }
    }

    /// Copies as much of `src` as fits to the start of the buffer; how much that was.
    fn fill_from(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.len());
        match self {
            ReadBuf::Init(b) => b[..n].copy_from_slice(&src[..n]),
            #[cfg(any(feature = "hyper", feature = "tokio-io"))]
            ReadBuf::Uninit(b) => {
                for (dst, &byte) in b[..n].iter_mut().zip(src) {
                    dst.write(byte);
                }
            }
        }
        n
    }

    /// One `recv` straight into the buffer.
    fn recv_direct(&mut self, socket: &impl AsFd) -> io::Result<usize> {
        match self {
            ReadBuf::Init(b) => recv(socket, b),
            #[cfg(any(feature = "hyper", feature = "tokio-io"))]
            ReadBuf::Uninit(b) => socket2::SockRef::from(socket).recv(b),
        }
    }
}

/// One `recv` (flags 0) into initialised memory.
fn recv(socket: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    (&*socket2::SockRef::from(socket)).read(buf)
}

/// What one [`Leftover::read`] returned: the bytes it gave the caller and, when it
/// proved the socket's receive queue empty with nothing left over, the readiness event
/// (`E`) to forget.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome<E> {
    pub(crate) n: usize,
    pub(crate) drained: Option<E>,
}

/// Bytes a stream read took from the kernel and no caller has read yet; see the module
/// docs. `E` is the readiness event a read proved drained (`reactor::ReadyEvent`).
pub(crate) struct Leftover<E> {
    pending: Mutex<Option<Box<Pending<E>>>>,
}

struct Pending<E> {
    bytes: Box<[u8]>,
    /// How many of `bytes` were read already.
    start: usize,
    /// The event the read that stored them drained, to forget with the last byte.
    drained: Option<E>,
}

impl<E: Copy> Leftover<E> {
    pub(crate) fn new() -> Leftover<E> {
        Leftover {
            pending: Mutex::new(None),
        }
    }

    /// Reads into `buf`: leftover bytes first (the socket untouched); otherwise one
    /// `recv` — into the scratch buffer when `buf` is small and `event` is known,
    /// straight into `buf` when it is large or empty or no readiness was seen. `event` is the readiness the caller saw, if any (it
    /// comes back in [`Outcome::drained`] when this read proved it gone). Errors, including
    /// `WouldBlock`, are the `recv`'s, and only happen when no bytes were left over.
    pub(crate) fn read(
        &self,
        socket: &impl AsFd,
        buf: &mut ReadBuf<'_>,
        event: Option<E>,
    ) -> io::Result<Outcome<E>> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pending.as_mut() {
            let n = buf.fill_from(&p.bytes[p.start..]);
            p.start += n;
            if p.start < p.bytes.len() {
                return Ok(Outcome { n, drained: None });
            }
            let done = pending.take();
            drop(pending);
            return Ok(Outcome {
                n,
                drained: done.and_then(|p| p.drained),
            });
        }
        let len = buf.len();
        // Only with a readiness event in hand: leftover bytes rely on the read readiness
        // staying set until they are read, and without an event there is none to keep
        // (epoll would not report a queue this read emptied, so a later wait would hang).
        let through_scratch = event.is_some() && len > 0 && len < DIRECT_FROM;
        let scratched = if through_scratch {
            // `try_with` / `try_borrow_mut`: a thread tearing down its locals, or a
            // (never expected) nested read, simply reads directly.
            SCRATCH
                .try_with(|cell| {
                    let mut scratch = cell.try_borrow_mut().ok()?;
                    let scratch =
                        scratch.get_or_insert_with(|| vec![0; SCRATCH_LEN].into_boxed_slice());
                    Some(recv(socket, scratch).map(|got| {
                        let n = buf.fill_from(&scratch[..got]);
                        let drained = event.filter(|_| got < scratch.len());
                        if got > n {
                            *pending = Some(Box::new(Pending {
                                bytes: scratch[n..got].into(),
                                start: 0,
                                drained,
                            }));
                            return Outcome { n, drained: None };
                        }
                        // `got == 0` is the end of the stream: not a drained queue.
                        Outcome {
                            n,
                            drained: drained.filter(|_| got > 0),
                        }
                    }))
                })
                .ok()
                .flatten()
        } else {
            None
        };
        // The lock is held across the direct `recv` too: a concurrent reader (another
        // thread) must not store leftover bytes that are older than what this one reads.
        let result = scratched.unwrap_or_else(|| {
            let n = buf.recv_direct(socket)?;
            Ok(Outcome {
                n,
                drained: event.filter(|_| n > 0 && n < len),
            })
        });
        drop(pending);
        result
    }

    /// How many leftover bytes wait to be read.
    #[cfg(all(test, not(loom)))]
    fn len(&self) -> usize {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.as_ref().map_or(0, |p| p.bytes.len() - p.start)
    }
}

impl<E> std::fmt::Debug for Leftover<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let left = pending.as_ref().map_or(0, |p| p.bytes.len() - p.start);
        f.debug_struct("Leftover").field("bytes", &left).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn read(left: &Leftover<u32>, s: &UnixStream, buf: &mut [u8], ev: u32) -> Outcome<u32> {
        left.read(s, &mut ReadBuf::Init(buf), Some(ev)).unwrap()
    }

    #[test]
    fn an_exact_small_read_proves_the_queue_drained() {
        let (mut a, b) = pair();
        let left = Leftover::new();
        a.write_all(&[1; 64]).unwrap();
        let mut buf = [0; 64];
        assert_eq!(
            read(&left, &b, &mut buf, 7),
            Outcome {
                n: 64,
                drained: Some(7)
            }
        );
        assert_eq!(left.len(), 0);
    }

    #[test]
    fn bytes_beyond_the_buffer_are_kept_in_order_and_the_last_one_hands_back_the_event() {
        let (mut a, b) = pair();
        let left = Leftover::new();
        let sent: Vec<u8> = (0..=255).cycle().take(192).collect();
        a.write_all(&sent).unwrap();
        let mut got = Vec::new();
        let mut buf = [0; 64];
        assert_eq!(
            read(&left, &b, &mut buf, 1),
            Outcome {
                n: 64,
                drained: None
            }
        );
        got.extend_from_slice(&buf);
        assert_eq!(left.len(), 128);
        // Served from the leftover: the new event is not the one to forget.
        assert_eq!(
            read(&left, &b, &mut buf, 2),
            Outcome {
                n: 64,
                drained: None
            }
        );
        got.extend_from_slice(&buf);
        assert_eq!(
            read(&left, &b, &mut buf, 3),
            Outcome {
                n: 64,
                drained: Some(1)
            }
        );
        got.extend_from_slice(&buf);
        assert_eq!(got, sent);
        assert_eq!(left.len(), 0);
        let err = left
            .read(&b, &mut ReadBuf::Init(&mut buf), Some(4))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_full_scratch_read_does_not_claim_the_queue_drained() {
        let (a, b) = pair();
        let sent: Vec<u8> = (0..SCRATCH_LEN + 100).map(|i| (i % 251) as u8).collect();
        // A blocking write, done before the first read: a Unix stream read copies from
        // every queued segment, so the first scratch read is full.
        a.set_nonblocking(false).unwrap();
        (&a).write_all(&sent).unwrap();
        let left = Leftover::new();
        let mut got = Vec::new();
        let mut buf = [0; 1000];
        let first = read(&left, &b, &mut buf, 1);
        assert_eq!(
            first,
            Outcome {
                n: 1000,
                drained: None
            }
        );
        got.extend_from_slice(&buf);
        assert_eq!(left.len(), SCRATCH_LEN - 1000);
        // Draining the leftover hands back no event: the full read proved nothing.
        while left.len() > 0 {
            let out = read(&left, &b, &mut buf, 2);
            assert_eq!(out.drained, None);
            got.extend_from_slice(&buf[..out.n]);
        }
        // The rest comes from the socket, short: now the queue is proven empty.
        assert_eq!(
            read(&left, &b, &mut buf, 3),
            Outcome {
                n: 100,
                drained: Some(3)
            }
        );
        got.extend_from_slice(&buf[..100]);
        assert_eq!(got, sent);
    }

    #[test]
    fn end_of_stream_comes_after_the_leftover_and_is_not_a_drained_queue() {
        let (mut a, b) = pair();
        let left = Leftover::new();
        a.write_all(b"hello world").unwrap();
        drop(a);
        let mut buf = [0; 5];
        assert_eq!(read(&left, &b, &mut buf, 1).n, 5);
        assert_eq!(&buf, b"hello");
        assert_eq!(read(&left, &b, &mut buf, 1).n, 5);
        assert_eq!(&buf, b" worl");
        assert_eq!(
            read(&left, &b, &mut buf, 1),
            Outcome {
                n: 1,
                drained: Some(1)
            }
        );
        assert_eq!(
            read(&left, &b, &mut buf, 1),
            Outcome {
                n: 0,
                drained: None
            }
        );
    }

    #[test]
    fn a_read_without_a_readiness_event_leaves_nothing_over() {
        let (mut a, b) = pair();
        let left = Leftover::<u32>::new();
        a.write_all(&[3; 100]).unwrap();
        let mut buf = [0; 10];
        let out = left.read(&b, &mut ReadBuf::Init(&mut buf), None).unwrap();
        assert_eq!(
            out,
            Outcome {
                n: 10,
                drained: None
            }
        );
        assert_eq!(left.len(), 0, "the other 90 bytes stay in the socket");
    }

    #[test]
    fn large_and_empty_buffers_read_directly() {
        let (mut a, b) = pair();
        let left = Leftover::new();
        a.write_all(&[5; 100]).unwrap();
        // An empty buffer must not pull bytes into a leftover (0 would read as EOF).
        assert_eq!(
            read(&left, &b, &mut [], 1),
            Outcome {
                n: 0,
                drained: None
            }
        );
        assert_eq!(left.len(), 0);
        let mut big = vec![0; DIRECT_FROM];
        assert_eq!(
            read(&left, &b, &mut big, 1),
            Outcome {
                n: 100,
                drained: Some(1)
            }
        );
    }
}
