//! N7: the buffered streams reuse their buffers instead of allocating per line (issue
//! 18: "the buffers are reused, not reallocated per line").
//!
//! 10 000 lines travel through an `io::BufWriter` into a Unix socket and out of an
//! `io::BufReader`; reading them with `read_line` into one reused `String` (and writing
//! them with `write`) must cost a small, fixed number of allocations — the reader's
//! buffer, the writer's buffer growing a few times, the flusher tasks' cells (pooled
//! after the first) — not one per line. As a check that the count can see per-line
//! allocations at all, the same lines read with `readline()` (which returns a new `Vec`
//! each time, by design) cost at least one per line.
//!
//! Method: this binary installs the counting `#[global_allocator]` and holds a single
//! test (parallel tests would disturb the counts).

mod common;

use common::counting_alloc::total_allocations;
use evloop::io::{BufReader, BufWriter};
use evloop::net::UnixStream;

#[global_allocator]
static GLOBAL: common::counting_alloc::CountingAlloc = common::counting_alloc::CountingAlloc;

const LINES: usize = 10_000;
const LINE: &[u8] = b"a line of thirty-two bytes ....\n";

/// Sends `LINES` lines through a `BufWriter` and reads them back; the allocations made
/// while doing so.
async fn allocations_for(per_line_vec: bool) -> std::io::Result<isize> {
    let (a, b) = UnixStream::pair()?;
    let mut reader = BufReader::new(b);
    let mut line = String::with_capacity(64);
    let before = total_allocations();
    let writer = evloop::create_task(async move {
        let mut w = BufWriter::new(a);
        for _ in 0..LINES {
            w.write(LINE)?;
            w.drain().await?;
        }
        w.close().await?;
        Ok::<_, evloop::Error>(())
    });
    let mut count = 0;
    loop {
        let got = if per_line_vec {
            reader.readline().await?.len()
        } else {
            line.clear();
            reader.read_line(&mut line).await?
        };
        if got == 0 {
            break;
        }
        assert_eq!(got, LINE.len());
        count += 1;
    }
    writer.await.map_err(std::io::Error::from)?;
    assert_eq!(count, LINES);
    Ok(total_allocations() - before)
}

#[test]
fn read_line_and_write_reuse_their_buffers() {
    let (reused, per_line) = evloop::run(async {
        // A warm-up round: first-use allocations (thread-locals, pools) are not counted.
        allocations_for(false).await?;
        let reused = allocations_for(false).await?;
        let per_line = allocations_for(true).await?;
        Ok::<_, std::io::Error>((reused, per_line))
    })
    .unwrap();
    println!("allocations for {LINES} lines: read_line {reused}, readline {per_line}");
    assert!(
        per_line >= LINES as isize,
        "readline() returns a new Vec per line, so the count must see {LINES}: {per_line}"
    );
    assert!(
        reused < (LINES / 20) as isize,
        "{reused} allocations for {LINES} lines with read_line and write"
    );
}
