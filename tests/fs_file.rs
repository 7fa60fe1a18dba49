//! SPEC §15 X2, `evloop::fs::File`: text and binary round trips, seeks counted from the
//! logical position (read-ahead accounted for), writes after seeks and reads after
//! writes, append mode, a 256 MiB sequential read in 64 KiB chunks checked byte for
//! byte and counted in pool round trips (the loop's `remote_schedules`: one per
//! completed job), errors naming the path (a missing file, `/dev/full`'s ENOSPC
//! reported by `flush`), cancellation never hiding a write error nor losing read data
//! (a one-thread pool held busy makes the job wait deterministically), write-behind
//! coalescing, a shut-down pool failing operations instead of hanging them, futures-io's
//! and tokio's traits, and `io::BufReader` lines over a `File`.

mod common;

use common::fs::{Blocker, TempDir, one_pool_thread};

use std::cell::RefCell;
use std::future::Future as _;
use std::io::{ErrorKind, SeekFrom};
use std::path::Path;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use evloop::fs::{File, OpenOptions, PathError};
use evloop::{Error, LoopHandle, Runtime};

/// `0, 1, …` as bytes: byte `i` of the file is `i % 251` (a prime: no chunk size lines up).
fn counting(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The `PathError` inside an `io::Error` from `evloop::fs`.
fn detail(e: &std::io::Error) -> &PathError {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<PathError>())
        .unwrap_or_else(|| panic!("not a PathError: {e:?}"))
}

/// Lends the file in `home` to a task: back home when the task's coroutine ends or is
/// dropped (cancelled), so the test can go on with the same `File`.
struct Lent {
    home: Rc<RefCell<Option<File>>>,
    file: Option<File>,
}

impl Lent {
    fn take(home: &Rc<RefCell<Option<File>>>) -> Lent {
        let file = home.borrow_mut().take();
        assert!(file.is_some(), "the file is lent once");
        Lent {
            home: home.clone(),
            file,
        }
    }

    fn file(&mut self) -> &mut File {
        self.file.as_mut().unwrap()
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        *self.home.borrow_mut() = self.file.take();
    }
}

fn guarded<T>(what: &'static str, rt: &Runtime, fut: impl std::future::Future<Output = T>) -> T {
    let _watchdog = common::Watchdog::new(what, Duration::from_secs(30));
    rt.block_on(fut)
}

#[test]
fn text_and_binary_round_trips() {
    let tmp = TempDir::new("roundtrip");
    common::run_guarded(async move {
        let path = tmp.join("text.txt");
        let mut file = File::create(&path).await?;
        file.write_all("héllo\nwörld\n".as_bytes()).await?;
        file.flush().await?;
        let mut text = String::new();
        File::open(&path).await?.read_to_string(&mut text).await?;
        assert_eq!(text, "héllo\nwörld\n");

        // Binary, with bytes that are not UTF-8, written in uneven pieces.
        let path = tmp.join("data.bin");
        let mut bytes = vec![0xff, 0xfe, 0xc0, 0x80, 0x00, 0xed, 0xa0, 0x80];
        bytes.extend(counting(3 << 20));
        let mut file = File::create(&path).await?;
        for piece in bytes.chunks(777_777) {
            file.write_all(piece).await?;
        }
        file.sync_all().await?;
        assert_eq!(file.metadata().await?.len(), bytes.len() as u64);
        let mut back = Vec::new();
        assert_eq!(
            File::open(&path).await?.read_to_end(&mut back).await?,
            bytes.len()
        );
        assert!(back == bytes);
        assert!(std::fs::read(&path)? == bytes, "what std sees");
        let e = File::open(&path)
            .await?
            .read_to_string(&mut String::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert_eq!(detail(&e).path(), path);

        // read_exact past the end: UnexpectedEof, named.
        let mut file = File::open(tmp.join("text.txt")).await?;
        let mut buf = [0; 100];
        let e = file.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("text.txt"), "{e}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn seeks_count_from_the_logical_position() {
    let tmp = TempDir::new("seek");
    let path = tmp.join("counting");
    let data = counting(100_000);
    std::fs::write(&path, &data).unwrap();
    common::run_guarded(async move {
        let mut file = File::open(&path).await?;
        let mut buf = [0; 10];
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, data[..10]);
        // The read-ahead holds far more than 10 bytes; positions are the logical ones.
        assert_eq!(file.seek(SeekFrom::Current(0)).await?, 10);
        assert_eq!(file.seek(SeekFrom::Current(5)).await?, 15);
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, data[15..25]);
        assert_eq!(file.seek(SeekFrom::Current(-20)).await?, 5);
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, data[5..15]);
        // Past the read-ahead, forwards.
        assert_eq!(file.seek(SeekFrom::Current(60_000)).await?, 60_015);
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, data[60_015..60_025]);
        assert_eq!(file.seek(SeekFrom::Start(1_000)).await?, 1_000);
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, data[1_000..1_010]);
        assert_eq!(file.seek(SeekFrom::End(-10)).await?, 99_990);
        let mut tail = Vec::new();
        assert_eq!(file.read_to_end(&mut tail).await?, 10);
        assert_eq!(tail, data[99_990..]);
        assert_eq!(file.read(&mut buf).await?, 0, "end of file");
        // Before the start: InvalidInput, named, and the position is unchanged.
        file.seek(SeekFrom::Start(50)).await?;
        file.read_exact(&mut buf[..1]).await?;
        let e = file.seek(SeekFrom::Current(-1_000)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            (detail(&e).op(), detail(&e).path()),
            ("seek", path.as_path())
        );
        file.read_exact(&mut buf[..1]).await?;
        assert_eq!(buf[0], data[51]);
        let e = file.seek(SeekFrom::End(-200_000)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(file.seek(SeekFrom::Current(0)).await?, 52);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn writes_after_seeks_and_reads_after_writes() {
    let tmp = TempDir::new("rw");
    let path = tmp.join("rw");
    std::fs::write(&path, counting(50_000)).unwrap();
    common::run_guarded(async move {
        let mut file = File::options().read(true).write(true).open(&path).await?;
        let mut buf = [0; 4];
        file.read_exact(&mut buf).await?;
        // The OS position is past the read-ahead; the write lands at the logical 4.
        file.write_all(b"ABCD").await?;
        // A read after the write sees what follows it.
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, counting(12)[8..12]);
        file.seek(SeekFrom::Start(30_000)).await?;
        file.write_all(b"xyz").await?;
        file.seek(SeekFrom::End(-2)).await?;
        file.write_all(b"END!").await?;
        file.seek(SeekFrom::Start(0)).await?;
        let mut all = Vec::new();
        file.read_to_end(&mut all).await?;
        let mut want = counting(50_000);
        want[4..8].copy_from_slice(b"ABCD");
        want[30_000..30_003].copy_from_slice(b"xyz");
        want.truncate(49_998);
        want.extend_from_slice(b"END!");
        assert!(all == want);
        // set_len keeps the position; a read after it sees the new length.
        file.seek(SeekFrom::Start(10)).await?;
        file.read_exact(&mut buf).await?;
        file.set_len(16).await?;
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).await?;
        assert_eq!(rest, want[14..16]);
        assert_eq!(file.metadata().await?.len(), 16);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn append_writes_land_at_the_end() {
    let tmp = TempDir::new("append");
    let path = tmp.join("log");
    std::fs::write(&path, "one\n").unwrap();
    common::run_guarded(async move {
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .await?;
        log.seek(SeekFrom::Start(0)).await?;
        log.write_all(b"two\n").await?;
        log.seek(SeekFrom::Start(1)).await?;
        let mut buf = [0; 2];
        log.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ne");
        log.write_all(b"three\n").await?;
        log.flush().await?;
        assert_eq!(std::fs::read_to_string(&path)?, "one\ntwo\nthree\n");
        // create_new refuses an existing file.
        let e = File::create_new(&path).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        let mut fresh = File::create_new(path.with_extension("new")).await?;
        fresh.write_all(b"new").await?;
        fresh.seek(SeekFrom::Start(0)).await?;
        let mut text = String::new();
        fresh.read_to_string(&mut text).await?;
        assert_eq!(text, "new");
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Period of the 256 MiB file's pattern: prime, so no 64 KiB chunk or 1 MiB window
/// lines up with it.
const PERIOD: usize = 65_537;

/// Whether `chunk`, read at `offset`, is the pattern there (slice compares: fast in
/// debug builds too).
fn matches_pattern(base: &[u8], offset: u64, chunk: &[u8]) -> bool {
    let mut at = (offset % PERIOD as u64) as usize;
    let mut rest = chunk;
    while !rest.is_empty() {
        let n = rest.len().min(PERIOD - at);
        if rest[..n] != base[at..at + n] {
            return false;
        }
        rest = &rest[n..];
        at = 0;
    }
    true
}

#[test]
fn a_256_mib_sequential_read_costs_few_pool_round_trips() {
    const SIZE: u64 = 256 << 20;
    const CHUNK: usize = 64 << 10;
    let tmp = TempDir::new("big");
    let path = tmp.join("256mib");
    let mut rng = common::SplitMix64::new(17);
    let base: Vec<u8> = (0..PERIOD).map(|_| rng.next_u64() as u8).collect();
    {
        use std::io::Write;
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
        let mut left = SIZE as usize;
        while left > 0 {
            let n = left.min(PERIOD);
            out.write_all(&base[..n]).unwrap();
            left -= n;
        }
        out.flush().unwrap();
    }
    common::run_guarded(async move {
        let mut file = File::open(&path).await?;
        let mut chunk = vec![0; CHUNK];
        let before = LoopHandle::current().stats().remote_schedules;
        let mut offset = 0u64;
        loop {
            let n = file.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            assert!(
                matches_pattern(&base, offset, &chunk[..n]),
                "wrong bytes at {offset}"
            );
            offset += n as u64;
        }
        let round_trips = LoopHandle::current().stats().remote_schedules - before;
        assert_eq!(offset, SIZE);
        // One job per window of up to 1 MiB: about 260 (tokio's File: 4096, one per chunk).
        assert!(round_trips < 1000, "{round_trips} pool round trips");
        eprintln!("256 MiB in 64 KiB chunks: {round_trips} pool round trips");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn errors_name_the_path() {
    let tmp = TempDir::new("errors");
    common::run_guarded(async move {
        let missing = tmp.join("missing");
        let e = File::open(&missing).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            format!(
                "open {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        assert_eq!(detail(&e).raw_os_error(), Some(libc::ENOENT));

        // A write is accepted at once; the disk's answer comes with flush.
        let mut full = OpenOptions::new().write(true).open("/dev/full").await?;
        assert_eq!(full.write(b"no room").await?, 7);
        let e = full.flush().await.unwrap_err();
        assert_eq!(detail(&e).raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(
            e.to_string(),
            "write /dev/full: No space left on device (os error 28)"
        );
        // Reported once; the file goes on.
        full.flush().await?;
        // sync_all after a failed write reports the write.
        full.write_all(b"again").await?;
        let e = full.sync_all().await.unwrap_err();
        assert_eq!(
            (detail(&e).op(), detail(&e).raw_os_error()),
            ("write", Some(libc::ENOSPC))
        );

        // A file from std names its descriptor.
        let std = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
        let mut unnamed = File::from_std(std);
        unnamed.write_all(b"x").await?;
        let e = unnamed.flush().await.unwrap_err();
        assert!(e.to_string().starts_with("write <fd "), "{e}");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_cancelled_flush_never_hides_the_write_error() {
    let rt = one_pool_thread();
    guarded("cancelled flush", &rt, async {
        let full = OpenOptions::new().write(true).open("/dev/full").await?;
        let home = Rc::new(RefCell::new(Some(full)));
        let pool = Blocker::new();
        let flushing = evloop::create_task({
            let home = home.clone();
            async move {
                let mut lent = Lent::take(&home);
                // Accepted at once; the job waits behind the blocker.
                lent.file().write_all(b"lost?").await?;
                lent.file().flush().await?;
                Ok::<_, Error>(())
            }
        });
        common::yield_times(3).await;
        assert!(!flushing.done(), "the flush waits for the queued job");
        assert!(flushing.cancel());
        assert!(matches!(flushing.await, Err(Error::Cancelled(_))));
        let mut full = home.borrow_mut().take().expect("the file came back");
        pool.release().await;
        // The write still ran, and its error is the next operation's.
        let e = full.seek(SeekFrom::Current(0)).await.unwrap_err();
        assert_eq!(
            (detail(&e).op(), detail(&e).raw_os_error()),
            ("write", Some(libc::ENOSPC))
        );
        assert_eq!(detail(&e).path(), Path::new("/dev/full"));
        full.flush().await?;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_dropped_flush_future_leaves_the_error_for_the_next_operation() {
    let rt = one_pool_thread();
    guarded("dropped flush", &rt, async {
        let mut full = OpenOptions::new().write(true).open("/dev/full").await?;
        let pool = Blocker::new();
        full.write_all(b"lost?").await?;
        {
            let mut flush = pin!(full.flush());
            let first = std::future::poll_fn(|cx| Poll::Ready(flush.as_mut().poll(cx))).await;
            assert!(first.is_pending(), "the job waits behind the blocker");
        }
        pool.release().await;
        let e = full.metadata().await.unwrap_err();
        assert_eq!(
            (detail(&e).op(), detail(&e).raw_os_error()),
            ("write", Some(libc::ENOSPC))
        );
        assert!(full.metadata().await?.file_type().is_char_device_like());
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// `FileType::is_char_device` through the unix extension trait, in one word.
trait CharDevice {
    fn is_char_device_like(&self) -> bool;
}

impl CharDevice for std::fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device()
    }
}

#[test]
fn a_cancelled_read_loses_no_data() {
    let tmp = TempDir::new("cancelread");
    let path = tmp.join("data");
    std::fs::write(&path, counting(20_000)).unwrap();
    let rt = one_pool_thread();
    guarded("cancelled read", &rt, async {
        let home = Rc::new(RefCell::new(Some(File::open(&path).await?)));
        let pool = Blocker::new();
        let reading = evloop::create_task({
            let home = home.clone();
            async move {
                let mut lent = Lent::take(&home);
                let mut buf = [0; 4];
                lent.file().read_exact(&mut buf).await?;
                Ok::<_, Error>(buf)
            }
        });
        common::yield_times(3).await;
        assert!(!reading.done());
        reading.cancel();
        assert!(matches!(reading.await, Err(Error::Cancelled(_))));
        pool.release().await;
        let mut file = home.borrow_mut().take().unwrap();
        assert_eq!(file.seek(SeekFrom::Current(0)).await?, 0);
        let mut all = Vec::new();
        file.read_to_end(&mut all).await?;
        assert!(all == counting(20_000));
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn small_writes_are_written_behind_together() {
    let tmp = TempDir::new("small");
    let want: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    // On the default pool: the content, whatever the timing.
    let path = tmp.join("lines");
    common::run_guarded({
        let path = path.clone();
        async move {
            let mut file = File::create(&path).await?;
            for i in 0..1000 {
                file.write_all(format!("line {i}\n").as_bytes()).await?;
            }
            file.flush().await?;
            Ok::<_, Error>(())
        }
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), want);

    // With the first write job held in the queue, the 999 writes after it are queued
    // for the same job: one write job in all.
    let path = tmp.join("coalesced");
    let rt = one_pool_thread();
    guarded("coalesced writes", &rt, async {
        let mut file = File::create(&path).await?;
        let pool = Blocker::new();
        let before = LoopHandle::current().stats().remote_schedules;
        for i in 0..1000 {
            file.write_all(format!("line {i}\n").as_bytes()).await?;
        }
        pool.release().await;
        file.flush().await?;
        let round_trips = LoopHandle::current().stats().remote_schedules - before;
        // The blocker's completion and the one write job.
        assert!(round_trips <= 3, "{round_trips} round trips");
        Ok::<_, Error>(())
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), want);

    // A write bigger than the max buffer size is taken in pieces.
    let path = tmp.join("pieces");
    common::run_guarded({
        let path = path.clone();
        async move {
            let mut file = File::create(&path).await?;
            file.set_max_buf_size(1000);
            assert_eq!(file.write(&[7; 5000]).await?, 1000);
            file.write_all(&[8; 5000]).await?;
            file.flush().await?;
            Ok::<_, Error>(())
        }
    })
    .unwrap();
    let back = std::fs::read(&path).unwrap();
    assert_eq!(back.len(), 6000);
    assert!(back[..1000].iter().all(|&b| b == 7) && back[1000..].iter().all(|&b| b == 8));
}

#[test]
fn a_shut_down_pool_fails_operations_instead_of_hanging() {
    let tmp = TempDir::new("shutdown");
    let path = tmp.join("data");
    std::fs::write(&path, b"data").unwrap();
    common::run_guarded(async move {
        let mut file = File::open(&path).await?;
        LoopHandle::current().shutdown_default_executor().await?;
        let e = file.read(&mut [0; 4]).await.unwrap_err();
        assert!(e.to_string().contains("blocking pool did not run"), "{e}");
        assert_eq!(detail(&e).path(), path);
        // The std file came back with the refused job.
        let std = file.try_into_std().expect("idle, error reported");
        assert_eq!(std::io::Read::bytes(std).count(), 4);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn std_conversions_keep_the_logical_position() {
    let tmp = TempDir::new("std");
    let path = tmp.join("data");
    std::fs::write(&path, counting(10_000)).unwrap();
    common::run_guarded(async move {
        use std::io::{Read, Seek};
        let mut file = File::open(&path).await?;
        file.read_exact(&mut [0; 10]).await?;
        let mut clone = file.try_clone().await?;
        let mut buf = [0; 5];
        clone.read_exact(&mut buf).await?;
        assert_eq!(buf, counting(15)[10..]);
        let mut std = clone.into_std().await?;
        assert_eq!(
            std.stream_position()?,
            15,
            "shared position, read-ahead given back"
        );
        std.read_exact(&mut buf)?;
        assert_eq!(buf, counting(20)[15..]);
        let mut file = File::from_std(std);
        file.read_exact(&mut buf).await?;
        assert_eq!(buf, counting(25)[20..]);
        let mut std = file.try_into_std().expect("idle");
        assert_eq!(std.stream_position()?, 25);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn futures_io_traits() {
    use futures_util::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
    let tmp = TempDir::new("futures");
    common::run_guarded(async move {
        let path = tmp.join("f");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await?;
        AsyncWriteExt::write_all(&mut file, b"hello futures-io").await?;
        // close flushes; the file stays open.
        AsyncWriteExt::close(&mut file).await?;
        assert_eq!(AsyncSeekExt::seek(&mut file, SeekFrom::Start(6)).await?, 6);
        let mut rest = String::new();
        AsyncReadExt::read_to_string(&mut file, &mut rest).await?;
        assert_eq!(rest, "futures-io");
        AsyncSeekExt::seek(&mut file, SeekFrom::Start(0)).await?;
        let mut hello = [0; 5];
        AsyncReadExt::read_exact(&mut file, &mut hello).await?;
        assert_eq!(&hello, b"hello");
        // A generic copy between two Files.
        let copy_path = tmp.join("copy");
        let mut copy = File::create(&copy_path).await?;
        AsyncSeekExt::seek(&mut file, SeekFrom::Start(0)).await?;
        let n = futures_util::io::copy(&mut file, &mut copy).await?;
        AsyncWriteExt::flush(&mut copy).await?;
        assert_eq!(n, 16);
        assert_eq!(std::fs::read(&copy_path)?, b"hello futures-io");
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[cfg(feature = "tokio-io")]
#[test]
fn tokio_traits() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
    let tmp = TempDir::new("tokio");
    common::run_guarded(async move {
        let path = tmp.join("t");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await?;
        AsyncWriteExt::write_all(&mut file, b"hello tokio\nsecond line\n").await?;
        AsyncWriteExt::shutdown(&mut file).await?;
        assert_eq!(AsyncSeekExt::seek(&mut file, SeekFrom::Start(6)).await?, 6);
        let mut word = [0; 5];
        AsyncReadExt::read_exact(&mut file, &mut word).await?;
        assert_eq!(&word, b"tokio");
        assert_eq!(AsyncSeekExt::stream_position(&mut file).await?, 11);
        AsyncSeekExt::rewind(&mut file).await?;
        let mut all = Vec::new();
        AsyncReadExt::read_to_end(&mut file, &mut all).await?;
        assert_eq!(all, b"hello tokio\nsecond line\n");
        // tokio's own BufReader over the File.
        AsyncSeekExt::rewind(&mut file).await?;
        let mut lines = tokio::io::BufReader::new(file).lines();
        assert_eq!(lines.next_line().await?.as_deref(), Some("hello tokio"));
        assert_eq!(lines.next_line().await?.as_deref(), Some("second line"));
        assert_eq!(lines.next_line().await?, None);
        // tokio's copy into another File.
        let mut from = File::open(&path).await?;
        let mut to = File::create(tmp.join("copy")).await?;
        assert_eq!(tokio::io::copy(&mut from, &mut to).await?, 24);
        AsyncWriteExt::flush(&mut to).await?;
        assert_eq!(std::fs::read(tmp.join("copy"))?, all);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn buf_reader_lines_over_a_file() {
    let tmp = TempDir::new("lines");
    let path = tmp.join("lines.txt");
    let text: String = (0..5000).map(|i| format!("line number {i}\r\n")).collect();
    std::fs::write(&path, &text).unwrap();
    common::run_guarded(async move {
        let mut lines = evloop::io::BufReader::new(File::open(&path).await?).lines();
        let mut n = 0;
        while let Some(line) = lines.next_line().await? {
            assert_eq!(line, format!("line number {n}"));
            n += 1;
        }
        assert_eq!(n, 5000);
        // And the stream form.
        use futures_util::StreamExt;
        let count = evloop::io::BufReader::new(File::open(&path).await?)
            .lines()
            .count()
            .await;
        assert_eq!(count, 5000);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn positions_hold_while_the_next_window_is_read_ahead() {
    const MIB: usize = 1 << 20;
    let tmp = TempDir::new("pipelined");
    let path = tmp.join("data");
    let data = counting(8 * MIB);
    std::fs::write(&path, &data).unwrap();
    common::run_guarded(async move {
        let mut file = File::options().read(true).write(true).open(&path).await?;
        let mut chunk = vec![0; 64 << 10];
        let mut pos = 0;
        // Past the window ramp-up (64 KiB … 1 MiB): the next window is read meanwhile.
        while pos < 3 * MIB + MIB / 2 {
            let n = file.read(&mut chunk).await?;
            assert!(chunk[..n] == data[pos..pos + n]);
            pos += n;
        }
        assert_eq!(file.seek(SeekFrom::Current(0)).await?, pos as u64);
        assert_eq!(
            file.seek(SeekFrom::Current(-100)).await?,
            (pos - 100) as u64
        );
        pos -= 100;
        let mut small = [0; 10];
        file.read_exact(&mut small).await?;
        assert_eq!(small, data[pos..pos + 10]);
        pos += 10;
        // Beyond both buffers.
        assert_eq!(
            file.seek(SeekFrom::Current(2 * MIB as i64)).await?,
            (pos + 2 * MIB) as u64
        );
        pos += 2 * MIB;
        file.read_exact(&mut small).await?;
        assert_eq!(small, data[pos..pos + 10]);
        // A write lands at the logical position, whatever was read ahead.
        file.seek(SeekFrom::Start(0)).await?;
        pos = 0;
        while pos < 3 * MIB {
            pos += file.read(&mut chunk).await?;
        }
        file.write_all(b"HERE").await?;
        file.flush().await?;
        let mut std = file.into_std().await?;
        use std::io::Seek;
        assert_eq!(std.stream_position()?, (pos + 4) as u64);
        let on_disk = std::fs::read(&path)?;
        assert_eq!(&on_disk[pos..pos + 4], b"HERE");
        assert!(on_disk[pos + 4..] == data[pos + 4..]);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Random reads, writes, seeks and flushes on a `File` with a small max buffer size
/// (so read-ahead windows, pipelined reads and write-behind queues turn over all the
/// time), checked at every step against a byte vector and position. Some seeds read
/// mostly (long sequential stretches, where the next window is read ahead), others
/// mix everything.
#[test]
fn random_operations_match_a_model() {
    for seed in 0..8 {
        model_run(seed, if seed % 2 == 0 { 90 } else { 55 });
    }
}

fn model_run(seed: u64, read_percent: u64) {
    let tmp = TempDir::new(&format!("model{seed}"));
    let path = tmp.join("data");
    let mut model = counting(60_000);
    std::fs::write(&path, &model).unwrap();
    common::run_guarded(async move {
        let mut rng = common::SplitMix64::new(seed);
        let mut file = File::options().read(true).write(true).open(&path).await?;
        file.set_max_buf_size(1 + rng.below(5000) as usize);
        let mut pos = 0usize;
        let mut buf = vec![0; 20_000];
        for step in 0..3000 {
            let dice = rng.below(100);
            if dice < read_percent {
                let want = rng.below(9000) as usize;
                let n = file.read(&mut buf[..want]).await?;
                let avail = model.len().saturating_sub(pos);
                assert!(
                    n <= want.min(avail),
                    "seed {seed} step {step}: read {n} of {want}"
                );
                assert!(
                    n > 0 || want == 0 || avail == 0,
                    "seed {seed} step {step}: early end"
                );
                assert!(
                    n == 0 || buf[..n] == model[pos..pos + n],
                    "seed {seed} step {step}: bytes at {pos}"
                );
                pos += n;
                continue;
            }
            match rng.below(100) {
                0..=44 => {
                    let (target, got) = match rng.below(3) {
                        0 => {
                            let to = rng.below(70_000);
                            (to as usize, file.seek(SeekFrom::Start(to)).await?)
                        }
                        1 => {
                            let k = rng.below(20_000) as i64 - 10_000;
                            if pos as i64 + k < 0 {
                                assert!(file.seek(SeekFrom::Current(k)).await.is_err());
                                continue;
                            }
                            (
                                (pos as i64 + k) as usize,
                                file.seek(SeekFrom::Current(k)).await?,
                            )
                        }
                        _ => {
                            let k = -(rng.below(10_000) as i64);
                            let to = (model.len() as i64 + k).max(0) as usize;
                            (to, file.seek(SeekFrom::End(k)).await?)
                        }
                    };
                    assert_eq!(got, target as u64, "seed {seed} step {step}: seek");
                    pos = target;
                }
                45..=89 => {
                    let len = rng.below(3000) as usize;
                    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                    let n = file.write(&bytes).await?;
                    assert!(
                        n <= len && (n > 0 || len == 0),
                        "seed {seed} step {step}: wrote {n}"
                    );
                    let end = pos + n;
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[pos..end].copy_from_slice(&bytes[..n]);
                    pos = end;
                }
                90..=94 => file.flush().await?,
                _ => {
                    let got = file.seek(SeekFrom::Current(0)).await?;
                    assert_eq!(got, pos as u64, "seed {seed} step {step}: position");
                }
            }
        }
        file.flush().await?;
        assert_eq!(file.metadata().await?.len(), model.len() as u64);
        drop(file);
        assert!(
            std::fs::read(&path)? == model,
            "seed {seed}: the file on disk"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}
