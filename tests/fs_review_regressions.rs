//! Regression tests from the review of `fs::File` (issue 19). What each pins:
//!
//! - a File over a pipe read ahead 8 KiB when asked for 2 bytes; a `try_clone` (or a
//!   write, `set_len`, `into_std`) then discarded the unread bytes, since a pipe's
//!   position cannot move back — the data was lost. A File that is not seekable now
//!   reads only what each caller asks for;
//! - a waker that panicked when the write-behind job woke a writer waiting for room cut
//!   the job short: the queued bytes it had just taken over, accepted by an earlier
//!   `write`, never reached the disk. The job now finishes and raises the panic after.
mod common;

use common::fs::{Blocker, TempDir, one_pool_thread};

use std::future::Future as _;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use evloop::Error;
use evloop::fs::File;

struct PanicWaker;

impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        panic!("fs_review_regressions: a panicking waker (expected)");
    }
}

#[test]
fn bytes_of_a_pipe_are_never_read_ahead_and_lost() {
    use std::io::Write;
    let (r, mut w) = std::io::pipe().unwrap();
    w.write_all(b"0123456789").unwrap();
    drop(w);
    let std = std::fs::File::from(std::os::fd::OwnedFd::from(r));
    common::run_guarded(async move {
        let mut file = File::from_std(std);
        let mut two = [0; 2];
        file.read_exact(&mut two).await?;
        assert_eq!(&two, b"01");
        let mut clone = file.try_clone().await?;
        let mut rest = Vec::new();
        clone.read_to_end(&mut rest).await?;
        assert_eq!(
            rest, b"23456789",
            "the clone reads what the File did not hand out"
        );
        let mut after = Vec::new();
        file.read_to_end(&mut after).await?;
        assert_eq!(after, b"", "one pipe: the clone took the rest");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_panicking_waker_does_not_cut_a_write_behind_job_short() {
    let tmp = TempDir::new("panicroom");
    let path = tmp.0.join("data");
    let rt = one_pool_thread();
    let _watchdog = common::Watchdog::new("panicking waker", Duration::from_secs(30));
    rt.block_on(async {
        let mut file = File::create(&path).await?;
        file.set_max_buf_size(4);
        let pool = Blocker::new();
        file.write_all(b"AAAA").await?; // the write job, queued behind the blocker
        file.write_all(b"BBBB").await?; // queued in the slot, behind that job
        let third = {
            let mut w3 = pin!(file.write(b"CCCC"));
            let waker = Waker::from(Arc::new(PanicWaker));
            let mut cx = Context::from_waker(&waker);
            assert!(w3.as_mut().poll(&mut cx).is_pending(), "the queue is full");
            pool.release().await;
            // The job writes AAAA, takes BBBB over and wakes the panicking waker, then
            // (the point) writes BBBB too.
            for _ in 0..20_000 {
                if std::fs::metadata(&path)?.len() >= 8 {
                    break;
                }
                evloop::time::sleep(Duration::from_millis(1)).await?;
            }
            assert_eq!(std::fs::read(&path)?, b"AAAABBBB");
            w3.await
        };
        assert_eq!(third?, 4);
        file.flush().await?;
        assert_eq!(std::fs::read(&path)?, b"AAAABBBBCCCC");
        Ok::<_, Error>(())
    })
    .unwrap();
}
