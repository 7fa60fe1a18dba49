//! fd watches (L11): `add_reader` / `add_writer`, level-triggered like asyncio, on top
//! of the edge-triggered reactor.
//!
//! Owns: the loop-thread table of watched fds and their callbacks. Must not touch: mio
//! (registration goes through `core::Local` and the `Registrar`).
//!
//! A watched fd has one registration. When readiness arrives, a small waker per
//! direction schedules a loop callback that runs the user's callback, then re-arms the
//! fd (`EPOLL_CTL_MOD` makes the kernel report readiness again if it still holds), so
//! the callback keeps running once per iteration while the fd stays readable /
//! writable — and stops when it no longer is.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use crate::context;
use crate::core::Local;
use crate::error::Error;
use crate::exception::{ExceptionContext, ExceptionSource, drop_each_catching};
use crate::handle::LoopHandle;
use crate::reactor::{Direction, Interest, ScheduledIo, WakerKind};

type Callback = Box<dyn FnMut() + Send + 'static>;

struct Slot {
    /// `None` while the callback runs.
    callback: Option<Callback>,
    generation: u64,
    /// One waker for the slot's lifetime: re-arming registers the same identity, so it
    /// neither locks nor displaces a stale waker.
    waker: Waker,
}

struct Watch {
    io: Arc<ScheduledIo>,
    reader: Option<Slot>,
    writer: Option<Slot>,
}

impl Watch {
    fn slot(&mut self, dir: Direction) -> &mut Option<Slot> {
        match dir {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }

    fn interest(&self) -> Option<Interest> {
        interest_of(self.reader.is_some(), self.writer.is_some())
    }
}

/// The registration interest of a watch that reads and / or writes.
fn interest_of(reads: bool, writes: bool) -> Option<Interest> {
    match (reads, writes) {
        (true, true) => Some(Interest::Both),
        (true, false) => Some(Interest::Readable),
        (false, true) => Some(Interest::Writable),
        (false, false) => None,
    }
}

/// The watched fds of one loop (loop thread only).
#[derive(Default)]
pub(crate) struct Watches {
    map: HashMap<RawFd, Watch>,
    next_generation: u64,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("fds", &self.map.len())
            .finish()
    }
}

/// Wakes a watch: schedules the callback of one direction as a loop callback.
struct WatchWaker {
    owner: LoopHandle,
    fd: RawFd,
    dir: Direction,
    generation: u64,
}

impl Wake for WatchWaker {
    fn wake(self: Arc<Self>) {
        let (fd, dir, generation) = (self.fd, self.dir, self.generation);
        self.owner.call_soon(move || fire(fd, dir, generation));
    }
}

/// Runs the callback of `(fd, dir)` if it is still the one armed, then re-arms.
fn fire(fd: RawFd, dir: Direction, generation: u64) {
    let Some(local) = context::current() else {
        return;
    };
    let (callback, io, waker) = {
        let mut watches = local.watches.borrow_mut();
        let Some(watch) = watches.map.get_mut(&fd) else {
            return;
        };
        let io = watch.io.clone();
        match watch.slot(dir).as_mut() {
            Some(slot) if slot.generation == generation => {
                // Level-triggered: only call it while the fd really is ready.
                if io.ready_now(dir).is_none() {
                    (None, io, slot.waker.clone())
                } else {
                    (slot.callback.take(), io, slot.waker.clone())
                }
            }
            _ => return,
        }
    };
    let Some(mut callback) = callback else {
        arm(&io, dir, &waker);
        return;
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(&mut callback)) {
        let what = match dir {
            Direction::Read => "reader",
            Direction::Write => "writer",
        };
        local.handle.call_exception_handler(
            ExceptionContext::new(format!("Exception in {what} callback of fd {fd}"))
                .with_exception(Error::from_panic(payload))
                .with_source(ExceptionSource::Callback),
        );
    }
    // Put it back unless it was removed or replaced meanwhile, and re-arm.
    let rearm = {
        let mut watches = local.watches.borrow_mut();
        match watches.map.get_mut(&fd) {
            Some(watch) => match watch.slot(dir) {
                Some(slot) if slot.generation == generation => {
                    slot.callback = Some(callback);
                    Some((watch.io.clone(), watch.interest()))
                }
                _ => None,
            },
            None => None,
        }
    };
    if let Some((io, Some(interest))) = rearm {
        if let Some(event) = io.ready_now(dir) {
            io.clear_readiness(event);
        }
        if let Err(e) = local.handle.shared.registrar.reregister(&io, fd, interest) {
            local.handle.call_exception_handler(
                ExceptionContext::new(format!("re-arming fd {fd} failed"))
                    .with_exception(Error::new(e)),
            );
            return;
        }
        arm(&io, dir, &waker);
    }
}

/// Registers a slot's waker; if readiness is already there, fires next iteration.
fn arm(io: &ScheduledIo, dir: Direction, waker: &Waker) {
    if io
        .poll_ready(&mut Context::from_waker(waker), dir, |_| WakerKind::Loop)
        .is_ready()
    {
        waker.wake_by_ref();
    }
}

impl Local {
    fn add_watch(&self, fd: RawFd, dir: Direction, callback: Callback) -> io::Result<()> {
        let mut watches = self.watches.borrow_mut();
        let generation = watches.next_generation;
        watches.next_generation += 1;
        let waker = Waker::from(Arc::new(WatchWaker {
            owner: self.handle.clone(),
            fd,
            dir,
            generation,
        }));
        let slot = Slot {
            callback: Some(callback),
            generation,
            waker: waker.clone(),
        };
        // Whatever this replaces (and the new slot, on failure) is user code to drop:
        // after the borrow (rule 1).
        let mut stale: Option<Watch> = None;
        let mut failed = None;
        if let Some(watch) = watches.map.get_mut(&fd) {
            let reads = watch.reader.is_some() || dir == Direction::Read;
            let writes = watch.writer.is_some() || dir == Direction::Write;
            let interest = interest_of(reads, writes).expect("`dir` is one of them");
            // Always re-arm: besides updating the interest, it proves the fd is still
            // the one registered. An fd closed without `remove_reader` / `remove_writer`
            // left epoll's set, and its number may now name another file: `ENOENT`
            // then, and the stale watch is replaced by a new registration.
            match self
                .handle
                .shared
                .registrar
                .reregister(&watch.io, fd, interest)
            {
                Ok(()) => {
                    let replaced = watch.slot(dir).replace(slot);
                    let io = watch.io.clone();
                    drop(watches);
                    drop(replaced);
                    arm(&io, dir, &waker);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    log::debug!(target: "evloop", "fd {fd} was closed and reused while watched: registering it anew");
                    stale = watches.map.remove(&fd);
                }
                Err(e) => {
                    failed = Some(io::Error::new(
                        e.kind(),
                        format!("evloop: re-arming the watch of fd {fd} failed: {e}"),
                    ));
                }
            }
        }
        if let Some(e) = failed {
            drop(watches);
            drop(slot);
            return Err(e);
        }
        if let Some(stale) = &stale {
            self.forget_io(&stale.io);
        }
        let interest = interest_of(dir == Direction::Read, dir == Direction::Write)
            .expect("`dir` is one of them");
        let registered = self
            .register_io(fd, interest)
            .map_err(|e| io::Error::new(e.kind(), format!("evloop: cannot watch fd {fd}: {e}")));
        let io = match registered {
            Ok(io) => io,
            Err(e) => {
                drop(watches);
                drop(stale);
                return Err(e);
            }
        };
        let mut watch = Watch {
            io: io.clone(),
            reader: None,
            writer: None,
        };
        *watch.slot(dir) = Some(slot);
        watches.map.insert(fd, watch);
        drop(watches);
        drop(stale);
        arm(&io, dir, &waker);
        Ok(())
    }

    fn remove_watch(&self, fd: RawFd, dir: Direction) -> bool {
        let mut watches = self.watches.borrow_mut();
        let Some(watch) = watches.map.get_mut(&fd) else {
            return false;
        };
        let removed = watch.slot(dir).take();
        if removed.is_none() {
            return false;
        }
        let mut gone = None;
        match watch.interest() {
            Some(interest) => {
                let _ = self
                    .handle
                    .shared
                    .registrar
                    .reregister(&watch.io, fd, interest);
            }
            None => {
                let watch = watches.map.remove(&fd).expect("present");
                let _ = self.handle.shared.registrar.deregister(fd);
                self.forget_io(&watch.io);
                gone = Some(watch);
            }
        }
        drop(watches);
        // The callback's drop is user code: after the borrow (rule 1).
        drop((removed, gone));
        true
    }

    /// Drops every watch (loop close); the fds themselves belong to the user. Each
    /// callback is dropped under its own catch (rule 7).
    pub(crate) fn clear_watches(&self) {
        let watches = std::mem::take(&mut self.watches.borrow_mut().map);
        let mut callbacks = Vec::new();
        for (fd, watch) in watches {
            let _ = self.handle.shared.registrar.deregister(fd);
            self.forget_io(&watch.io);
            callbacks.extend(watch.reader);
            callbacks.extend(watch.writer);
        }
        drop_each_catching(
            &self.handle,
            "Exception while dropping an fd watch callback of a closing loop",
            callbacks,
        );
    }
}

impl LoopHandle {
    /// Calls `callback` on the loop whenever `fd` is readable (L11; level-triggered, as
    /// asyncio's `add_reader`: once per iteration while data is waiting). Adding again
    /// replaces the callback. The fd stays owned by the caller; remove the watch before
    /// closing it. Like asyncio's, this must be called on the loop's thread.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let (reader, mut writer) = std::os::unix::net::UnixStream::pair()?;
    /// reader.set_nonblocking(true)?;
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// evloop::run({
    ///     let calls = calls.clone();
    ///     async move {
    ///         let loop_ = evloop::LoopHandle::current();
    ///         let fd = reader.as_raw_fd();
    ///         loop_.add_reader(fd, move || {
    ///             calls.fetch_add(1, Ordering::SeqCst);
    ///             evloop::LoopHandle::current().remove_reader(fd);
    ///         })?;
    ///         writer.write_all(b"x")?;
    ///         evloop::time::sleep(std::time::Duration::from_millis(20)).await.unwrap();
    ///         Ok::<_, std::io::Error>(())
    ///     }
    /// })?;
    /// assert_eq!(calls.load(Ordering::SeqCst), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the reactor refuses the fd (a regular file, an invalid fd, or an fd that an
    /// evloop socket already registered); when called off the loop's thread or on a
    /// closed loop.
    pub fn add_reader<F: FnMut() + Send + 'static>(
        &self,
        fd: RawFd,
        callback: F,
    ) -> io::Result<()> {
        self.add_watch(fd, Direction::Read, Box::new(callback))
    }

    /// Calls `callback` on the loop whenever `fd` is writable (L11); see
    /// [`add_reader`](Self::add_reader).
    ///
    /// # Errors
    ///
    /// As [`add_reader`](Self::add_reader).
    pub fn add_writer<F: FnMut() + Send + 'static>(
        &self,
        fd: RawFd,
        callback: F,
    ) -> io::Result<()> {
        self.add_watch(fd, Direction::Write, Box::new(callback))
    }

    /// Stops watching `fd` for readability; `true` if it was watched. On the loop
    /// thread only (elsewhere `false` and nothing happens: use `call_soon`).
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.on_own_loop(|local| local.remove_watch(fd, Direction::Read))
            .unwrap_or(false)
    }

    /// Stops watching `fd` for writability; `true` if it was watched. On the loop thread
    /// only (elsewhere `false`).
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.on_own_loop(|local| local.remove_watch(fd, Direction::Write))
            .unwrap_or(false)
    }

    /// Runs `f` with this loop's core if the caller is on its thread. The core is held
    /// by reference count, not by the thread-local borrow `context::with_local` takes:
    /// `f` drops user callbacks.
    fn on_own_loop<R>(&self, f: impl FnOnce(&Local) -> R) -> Option<R> {
        let local = context::current_for(self.id())?;
        Some(f(&local))
    }

    fn add_watch(&self, fd: RawFd, dir: Direction, callback: Callback) -> io::Result<()> {
        if self.is_closed() {
            return Err(io::Error::other("evloop: the loop is closed"));
        }
        match self.on_own_loop(|local| local.add_watch(fd, dir, callback)) {
            Some(result) => result,
            None => Err(io::Error::other(
                "evloop: add_reader / add_writer must be called on the loop's thread (from a \
                 callback or task of that loop); use call_soon_threadsafe to get there",
            )),
        }
    }
}
