//! The blocking-pool half of [`File`](super::File): the job that owns the
//! `std::fs::File` while it runs, and the [`Slot`] it hands the file back through.
//!
//! Owns: the job bodies (one read, a write-behind loop, a seek, a sync, a `set_len`, a
//! `metadata`) and the slot's lock-protected state. Must not touch: the loop — a job
//! is submitted with `spawn_blocking` (its `JobHandle` is dropped: the result travels
//! through the slot, not the job's future, so cancelling the awaiting task can neither
//! cancel the job nor lose the file) and the File's waiting task is woken through its
//! waker, which for an evloop task goes through the loop's cross-thread queue. No user
//! code runs under the slot's lock: wakers are cloned before it is taken and woken or
//! dropped after it is released.
//!
//! A job always hands the file back: the [`Job`] guard publishes it when dropped, so a
//! job the pool drops unrun (executor shut down, loop closed) or one that panics still
//! returns the file, with [`Outcome::NotRun`].

use std::fs::{File as StdFile, Metadata, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::ops::DerefMut;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::loom::sync::Mutex;

/// What a job does with the file.
#[derive(Debug)]
pub(super) enum Work {
    /// One `read` of up to this many bytes into the buffer (which is at least that long).
    Read(usize),
    /// `write_all` of the buffer, then of whatever the File queued meanwhile
    /// ([`Slot::poll_write_behind`]), until nothing is queued.
    Write,
    Seek(SeekFrom),
    SyncAll,
    SyncData,
    SetLen(u64),
    SetPermissions(Permissions),
    Metadata,
}

/// How a job ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The bytes read into the buffer (0: end of file).
    Read(io::Result<usize>),
    /// Every byte written (the buffer comes back empty), or the first error.
    Write(io::Result<()>),
    Seek(io::Result<u64>),
    /// `sync_all`, `sync_data`, `set_len`, `set_permissions`.
    Unit(io::Result<()>),
    Metadata(io::Result<Metadata>),
    /// The pool dropped the job without running it, or it panicked.
    NotRun,
}

/// A finished job: the file and the buffer back, and the outcome.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) std: StdFile,
    pub(super) buf: Vec<u8>,
    pub(super) outcome: Outcome,
}

#[derive(Debug, Default)]
struct Shared {
    /// The finished job, until the File takes it.
    done: Option<Done>,
    /// The File's waiting task.
    waker: Option<Waker>,
    /// Bytes a write accepted while the write job ran, written by the same job.
    more: Vec<u8>,
    /// A write waits for room in `more` (woken when the job takes it).
    writer_waits: bool,
}

/// Where a running job hands the file back, one per `File` (reused by every job).
#[derive(Debug, Default)]
pub(super) struct Slot {
    shared: Mutex<Shared>,
}

impl Slot {
    fn lock(&self) -> impl DerefMut<Target = Shared> + '_ {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The finished job, if it is finished (never waits).
    pub(super) fn try_take(&self) -> Option<Done> {
        self.lock().done.take()
    }

    /// The finished job; otherwise registers the task's waker.
    pub(super) fn poll_done(&self, cx: &mut Context<'_>) -> Poll<Done> {
        {
            let mut s = self.lock();
            if let Some(done) = s.done.take() {
                return Poll::Ready(done);
            }
            if s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
        }
        self.wait(cx, false)
    }

    /// While a write job runs: queues up to `limit - queued` bytes of `src` for it
    /// (`Ok(n)`). `Err(done)` once the job has finished (nothing queued); `Pending`
    /// while the queue is full (woken when the job takes it).
    pub(super) fn poll_write_behind(
        &self,
        cx: &mut Context<'_>,
        src: &[u8],
        limit: usize,
    ) -> Poll<Result<usize, Done>> {
        {
            let mut s = self.lock();
            if let Some(done) = s.done.take() {
                return Poll::Ready(Err(done));
            }
            let room = limit.saturating_sub(s.more.len());
            if room > 0 || src.is_empty() {
                let n = room.min(src.len());
                s.more.extend_from_slice(&src[..n]);
                return Poll::Ready(Ok(n));
            }
            if s.writer_waits && s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
        }
        self.wait(cx, true).map(Err)
    }

    /// Stores a clone of the task's waker (cloned outside the lock), unless the job
    /// finished meanwhile.
    fn wait(&self, cx: &mut Context<'_>, for_room: bool) -> Poll<Done> {
        let waker = cx.waker().clone();
        let mut s = self.lock();
        if let Some(done) = s.done.take() {
            drop(s);
            drop(waker);
            return Poll::Ready(done);
        }
        s.writer_waits |= for_room;
        let old = s.waker.replace(waker);
        drop(s);
        drop(old);
        Poll::Pending
    }
}

/// A job on the pool: the file and the buffer while it runs. Dropping it (after it ran,
/// or unrun) publishes them to the slot.
struct Job {
    slot: Arc<Slot>,
    std: Option<StdFile>,
    buf: Vec<u8>,
    outcome: Option<Outcome>,
}

/// Runs `work` on `std` and `buf` on the blocking pool; the outcome arrives in `slot`.
///
/// # Panics
///
/// When no event loop runs on this thread.
pub(super) fn start(slot: &Arc<Slot>, std: StdFile, buf: Vec<u8>, work: Work) {
    let job = Job {
        slot: slot.clone(),
        std: Some(std),
        buf,
        outcome: None,
    };
    // The handle is not needed: the slot carries the result (dropping it does not
    // cancel the job). A panic in the job becomes its future's unretrieved exception,
    // which the loop reports; the guard still hands the file back.
    let handle = crate::spawn_blocking(move || job.run(work));
    if handle.done() {
        // Refused at once (executor shut down, loop closed): the dropped guard has
        // published `NotRun`, which the File reports; this exception says the same.
        let _ = handle.exception();
    }
}

impl Job {
    fn run(mut self, work: Work) {
        let Some(std) = self.std.as_ref() else {
            return;
        };
        let outcome = match work {
            Work::Read(want) => Outcome::Read(read_once(std, &mut self.buf[..want])),
            Work::Write => {
                self.write_behind();
                return;
            }
            Work::Seek(pos) => Outcome::Seek((&*std).seek(pos)),
            Work::SyncAll => Outcome::Unit(std.sync_all()),
            Work::SyncData => Outcome::Unit(std.sync_data()),
            Work::SetLen(len) => Outcome::Unit(std.set_len(len)),
            Work::SetPermissions(p) => Outcome::Unit(std.set_permissions(p)),
            Work::Metadata => Outcome::Metadata(std.metadata()),
        };
        self.outcome = Some(outcome);
        // Dropping `self` publishes.
    }

    /// Writes the buffer, then what the File queued meanwhile, until the queue is empty
    /// or a write fails; publishes under the same lock that found the queue empty, so
    /// no byte a write accepted is left behind.
    fn write_behind(&mut self) {
        let slot = self.slot.clone();
        // A panicking waker must not cut the job short (the bytes swapped in were
        // accepted by a write): its panic is raised once the job has published, and
        // the loop reports it as the job's exception, as any job panic.
        let mut panicked = None;
        while let Some(std) = &self.std {
            let written = (&*std).write_all(&self.buf);
            self.buf.clear();
            let mut s = slot.lock();
            if written.is_err() || s.more.is_empty() {
                self.outcome = Some(Outcome::Write(written));
                self.publish(s);
                break;
            }
            mem::swap(&mut self.buf, &mut s.more);
            let waker = if mem::take(&mut s.writer_waits) {
                s.waker.take()
            } else {
                None
            };
            drop(s);
            if let Some(waker) = waker {
                let woken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
                if let Err(panic) = woken {
                    panicked.get_or_insert(panic);
                }
            }
        }
        if let Some(panic) = panicked {
            std::panic::resume_unwind(panic);
        }
    }

    /// Hands the file, the buffer and the outcome to the slot and wakes the File's task.
    fn publish(&mut self, mut s: impl DerefMut<Target = Shared>) {
        let Some(std) = self.std.take() else {
            return;
        };
        let outcome = self.outcome.take().unwrap_or(Outcome::NotRun);
        if !matches!(outcome, Outcome::Write(Ok(()))) {
            // A failed (or unrun) write job drops what was queued for it: the error
            // reported next stands for those bytes too.
            s.more.clear();
        }
        s.done = Some(Done {
            std,
            buf: mem::take(&mut self.buf),
            outcome,
        });
        s.writer_waits = false;
        let waker = s.waker.take();
        drop(s);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.std.is_some() {
            let slot = self.slot.clone();
            self.publish(slot.lock());
        }
    }
}

/// One `read`, retried when a signal interrupts it.
fn read_once(std: &StdFile, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match (&*std).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// loom models of the slot's hand-off between the job (on a pool thread) and the File's
/// task: a finished job racing the task's registration is never a lost wake-up, and no
/// byte the File queued for a running write job is left unwritten. The job bodies run
/// for real on real files (the file I/O is not what is modelled); the slot's lock is
/// loom's. Run with
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib --target-dir target/loom loom_models`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::models::model;
    use crate::loom::sync::atomic::{AtomicUsize, Ordering};
    use std::fs::OpenOptions;

    /// The File's task's waker, counting its wake-ups: unlike the shared
    /// `loom::models::CountingWaker`, a loom atomic, because the write-behind model spins
    /// on it and a lost wake-up must then be a deadlock loom reports, not a hang.
    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl CountingWaker {
        fn new() -> Arc<CountingWaker> {
            Arc::new(CountingWaker(AtomicUsize::new(0)))
        }
        fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn job(slot: &Arc<Slot>, std: StdFile, buf: &[u8]) -> Job {
        Job {
            slot: slot.clone(),
            std: Some(std),
            buf: buf.to_vec(),
            outcome: None,
        }
    }

    /// A fresh, already unlinked file to write to (its content is read back through
    /// the handle the job returns).
    fn scratch() -> StdFile {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("evloop-loom-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    fn content(done: &Done) -> Vec<u8> {
        let mut out = Vec::new();
        let mut std = &done.std;
        std.seek(SeekFrom::Start(0)).unwrap();
        std.read_to_end(&mut out).unwrap();
        out
    }

    /// A job publishing `Done` racing the File's `poll_done` (twice: the second poll
    /// takes the already-registered fast path): either a poll gets the `Done` and
    /// nobody wakes the task, or the task is woken exactly once and its next poll is
    /// ready — never a lost wake-up.
    #[test]
    fn done_racing_poll_done_is_never_a_lost_wake_up() {
        model(|| {
            let slot = Arc::new(Slot::default());
            let std = StdFile::open("/dev/null").unwrap();
            let running = job(&slot, std, b"");
            let pool = loom::thread::spawn(move || running.run(Work::Seek(SeekFrom::Start(0))));
            let counter = CountingWaker::new();
            let waker = Waker::from(counter.clone());
            let mut cx = Context::from_waker(&waker);
            let mut polled = slot.poll_done(&mut cx);
            let registered = polled.is_pending();
            if registered {
                polled = slot.poll_done(&mut cx);
            }
            pool.join().unwrap();
            // Registered once (the second poll finds it registered): woken exactly
            // once, whether the second poll then saw the `Done` or not.
            let wakes = usize::from(registered);
            assert_eq!(
                counter.wakes(),
                wakes,
                "woken exactly when a poll was pending"
            );
            let done = match polled {
                Poll::Ready(done) => done,
                Poll::Pending => match slot.poll_done(&mut cx) {
                    Poll::Ready(done) => done,
                    Poll::Pending => panic!("woken, but the next poll is not ready"),
                },
            };
            assert!(matches!(done.outcome, Outcome::Seek(Ok(0))));
            assert!(slot.try_take().is_none(), "the Done is handed over once");
        });
    }

    /// The job's `write_behind` loop racing the File queuing two writes (room enough
    /// for both): every byte `poll_write_behind` accepted (`Ok(n)`) is written, in
    /// order, after the job's own buffer; once the File gets `Err(done)` nothing more
    /// is accepted; the queue ends empty and the job reports success.
    #[test]
    fn every_byte_queued_for_write_behind_is_written() {
        model(|| {
            let slot = Arc::new(Slot::default());
            let running = job(&slot, scratch(), b"ab");
            let pool = loom::thread::spawn(move || running.run(Work::Write));
            let counter = CountingWaker::new();
            let waker = Waker::from(counter.clone());
            let mut cx = Context::from_waker(&waker);
            let mut accepted = Vec::new();
            let mut finished = None;
            for chunk in [&b"cd"[..], b"ef"] {
                match slot.poll_write_behind(&mut cx, chunk, 4) {
                    Poll::Ready(Ok(n)) => {
                        assert_eq!(n, chunk.len(), "room enough for the whole chunk");
                        accepted.extend_from_slice(&chunk[..n]);
                    }
                    Poll::Ready(Err(done)) => {
                        finished = Some(done);
                        break;
                    }
                    Poll::Pending => panic!("pending with room in the queue"),
                }
            }
            pool.join().unwrap();
            let done = finished
                .or_else(|| slot.try_take())
                .expect("the job published");
            assert!(matches!(done.outcome, Outcome::Write(Ok(()))));
            assert!(done.buf.is_empty());
            assert!(slot.lock().more.is_empty(), "nothing left queued");
            let mut want = b"ab".to_vec();
            want.extend_from_slice(&accepted);
            assert_eq!(
                content(&done),
                want,
                "every accepted byte written, in order"
            );
            assert_eq!(counter.wakes(), 0, "nobody waited");
        });
    }

    /// A write waiting for room in a full queue (limit 2) racing the job taking the
    /// queue over or finishing: the waiting task is woken, and its next poll makes
    /// progress (queues the bytes or gets `Done`); every accepted byte is written.
    #[test]
    fn a_write_waiting_for_room_is_woken() {
        model(|| {
            let slot = Arc::new(Slot::default());
            let running = job(&slot, scratch(), b"ab");
            let pool = loom::thread::spawn(move || running.run(Work::Write));
            let counter = CountingWaker::new();
            let waker = Waker::from(counter.clone());
            let mut cx = Context::from_waker(&waker);
            let mut accepted = Vec::new();
            let mut finished = None;
            'chunks: for chunk in [&b"cd"[..], b"ef"] {
                loop {
                    // Read before polling: the wake may come before the poll returns.
                    let before = counter.wakes();
                    match slot.poll_write_behind(&mut cx, chunk, 2) {
                        Poll::Ready(Ok(n)) => {
                            assert_eq!(n, chunk.len());
                            accepted.extend_from_slice(&chunk[..n]);
                            break;
                        }
                        Poll::Ready(Err(done)) => {
                            finished = Some(done);
                            break 'chunks;
                        }
                        Poll::Pending => {
                            // The task sleeps until woken (a lost wake-up: this spins
                            // forever and loom reports the deadlock).
                            while counter.wakes() == before {
                                loom::thread::yield_now();
                            }
                        }
                    }
                }
            }
            pool.join().unwrap();
            let done = finished
                .or_else(|| slot.try_take())
                .expect("the job published");
            assert!(matches!(done.outcome, Outcome::Write(Ok(()))));
            assert!(slot.lock().more.is_empty(), "nothing left queued");
            let mut want = b"ab".to_vec();
            want.extend_from_slice(&accepted);
            assert_eq!(
                content(&done),
                want,
                "every accepted byte written, in order"
            );
        });
    }
}
