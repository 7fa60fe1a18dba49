//! Leftover bytes cost memory only while they exist (SPEC Q4, P14; `net::scratch`): a
//! small read that takes more from the kernel than its buffer holds keeps the rest
//! with the stream, in one allocation; reading the last of them frees it, and so does
//! dropping the stream (or the last of its split halves) with bytes still left over.
//!
//! How: a counting `#[global_allocator]` and a single test in this binary, so nothing
//! else allocates concurrently. The scenario runs once to warm up (the loop's slabs,
//! the thread's scratch buffer), then the live allocations and bytes are recorded and
//! must be exactly back at that baseline after each case.

mod common;

use std::io::Write;
use std::time::Duration;

use common::counting_alloc::{CountingAlloc, Live, Watchdog, live};
use evloop::net::UnixStream;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// A Unix pair whose `ours` end has read 10 of 1 000 bytes, so 990 are left over.
async fn with_leftover() -> (UnixStream, std::os::unix::net::UnixStream) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let ours = UnixStream::from_std(ours).unwrap();
    (&theirs).write_all(&[7u8; 1_000]).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(ours.read(&mut buf).await.unwrap(), 10);
    (ours, theirs)
}

async fn cases(baseline: Option<Live>) {
    let check = |what: &str| {
        if let Some(baseline) = baseline {
            assert_eq!(live(), baseline, "{what}: memory not back at the baseline");
        }
    };
    // 1. All leftover bytes read: their allocation is gone while the stream lives on.
    let (ours, theirs) = with_leftover().await;
    let during = live();
    if let Some(baseline) = baseline {
        // The stream, its registration and the leftover bytes.
        assert!(
            during.bytes >= baseline.bytes + 990,
            "no leftover allocation seen"
        );
    }
    let mut rest = [0u8; 990];
    ours.read_exact(&mut rest).await.unwrap();
    let after_read = live();
    assert!(
        after_read.bytes <= during.bytes - 990,
        "the leftover bytes were not freed once read ({during:?} → {after_read:?})"
    );
    drop((ours, theirs));
    check("stream read to the end of its leftover bytes");

    // 2. Dropped with bytes left over.
    let (ours, theirs) = with_leftover().await;
    drop((ours, theirs));
    check("stream dropped with leftover bytes");

    // 3. Split, and both halves dropped with bytes left over.
    let (ours, theirs) = with_leftover().await;
    let (read_half, write_half) = ours.into_split();
    drop(read_half);
    drop(write_half);
    drop(theirs);
    check("split halves dropped with leftover bytes");
}

#[test]
fn leftover_bytes_are_freed_when_read_or_when_the_stream_is_dropped() {
    let _watchdog = Watchdog::arm("leak_stream_leftover", Duration::from_secs(60));
    let rt = evloop::Runtime::new().unwrap();
    rt.block_on(cases(None));
    rt.block_on(async {
        let baseline = live();
        cases(Some(baseline)).await;
    });
}
