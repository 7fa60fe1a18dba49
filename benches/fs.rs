//! SPEC §11 P17, the file half: evloop::fs against tokio::fs, on evloop, tokio
//! `current_thread` and tokio `multi_thread` with 1 worker, in the same run.
//!
//! * `P17_file_read`: a 256 MiB file (created once, in the page cache after the first
//!   iteration) read from the start in 64 KiB chunks until the end — `File::open` and
//!   `File::read` into one 64 KiB buffer, tokio's `File::open` and `AsyncReadExt::read`
//!   into the same. evloop reads ahead up to 1 MiB per pool job; tokio::fs makes one
//!   pool round trip per chunk.
//! * `P17_small_reads`: 10 000 `fs::read` of small files — 100 files of 1 KiB, each read
//!   100 times (a config directory read over and over, all in the page cache), one
//!   after the other as plain sequential awaits: one pool job each on both runtimes.
//!   The `*_concurrent_64` functions read the same 10 000 files 64 at a time
//!   (`futures_util::future::join_all` on both runtimes), as a server serving small
//!   files would.
//!
//! The files live in a directory under the system's temp dir, removed at the end.
//!
//! Run: `cargo bench --bench fs`.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;

const BIG: u64 = 256 << 20;
const CHUNK: usize = 64 << 10;
const SMALL_FILES: usize = 100;
const SMALL_SIZE: usize = 1024;
const ROUNDS: usize = 100;
const CONCURRENT: usize = 64;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The bench's files; removed when dropped.
struct Files {
    dir: PathBuf,
}

static FILES: OnceLock<(PathBuf, Vec<PathBuf>)> = OnceLock::new();

impl Files {
    fn create() -> Files {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("evloop-bench-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let big = dir.join("256mib");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&big).expect("big file"));
        let block: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..BIG >> 20 {
            out.write_all(&block).expect("big file");
        }
        out.flush().expect("big file");
        let small = (0..SMALL_FILES)
            .map(|i| {
                let path = dir.join(format!("small-{i:03}"));
                std::fs::write(&path, vec![i as u8; SMALL_SIZE]).expect("small file");
                path
            })
            .collect();
        FILES.set((big, small)).expect("created once");
        Files { dir }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn big() -> &'static PathBuf {
    &FILES.get().expect("files created").0
}

/// The 10 000 small-file reads, in order.
fn small() -> impl Iterator<Item = &'static PathBuf> {
    let files = &FILES.get().expect("files created").1;
    (0..ROUNDS).flat_map(move |_| files.iter())
}

async fn evloop_read_big() {
    let mut file = evloop::fs::File::open(big()).await.unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, BIG);
}

async fn tokio_read_big() {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(big()).await.unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, BIG);
}

fn file_read(g: &mut Group<'_>) {
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| b.iter(|| rt.block_on(evloop_read_big())));
    bench_tokio_peers(g, tokio_read_big);
}

async fn evloop_small_reads() {
    let mut bytes = 0;
    for path in small() {
        bytes += evloop::fs::read(path).await.unwrap().len();
    }
    assert_eq!(bytes, SMALL_FILES * SMALL_SIZE * ROUNDS);
}

async fn tokio_small_reads() {
    let mut bytes = 0;
    for path in small() {
        bytes += tokio::fs::read(path).await.unwrap().len();
    }
    assert_eq!(bytes, SMALL_FILES * SMALL_SIZE * ROUNDS);
}

async fn evloop_small_reads_concurrent() {
    let paths: Vec<_> = small().collect();
    let mut bytes = 0;
    for batch in paths.chunks(CONCURRENT) {
        let reads = batch.iter().map(evloop::fs::read);
        for data in futures_util::future::join_all(reads).await {
            bytes += data.unwrap().len();
        }
    }
    assert_eq!(bytes, SMALL_FILES * SMALL_SIZE * ROUNDS);
}

async fn tokio_small_reads_concurrent() {
    let paths: Vec<_> = small().collect();
    let mut bytes = 0;
    for batch in paths.chunks(CONCURRENT) {
        let reads = batch.iter().map(tokio::fs::read);
        for data in futures_util::future::join_all(reads).await {
            bytes += data.unwrap().len();
        }
    }
    assert_eq!(bytes, SMALL_FILES * SMALL_SIZE * ROUNDS);
}

fn small_reads(g: &mut Group<'_>) {
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| b.iter(|| rt.block_on(evloop_small_reads())));
    bench_tokio_peers(g, tokio_small_reads);
    g.bench_function("evloop_concurrent_64", |b| {
        b.iter(|| rt.block_on(evloop_small_reads_concurrent()))
    });
    let tokio = tokio_ct();
    g.bench_function("tokio_current_thread_concurrent_64", |b| {
        b.iter(|| tokio.block_on(tokio_small_reads_concurrent()))
    });
    let tokio = tokio_mt1();
    g.bench_function("tokio_multi_thread_1_concurrent_64", |b| {
        b.iter(|| tokio_on_worker(&tokio, tokio_small_reads_concurrent()))
    });
}

fn main() {
    let files = Files::create();
    let mut c = config_heavy().configure_from_args();
    let mut g = c.benchmark_group("P17_file_read");
    file_read(&mut g);
    g.finish();
    let mut c2 = config().configure_from_args();
    let mut g = c2.benchmark_group("P17_small_reads");
    small_reads(&mut g);
    g.finish();
    c.final_summary();
    drop(files);
}
