//! The two errors of the buffered reader (N7): [`IncompleteRead`] and [`LimitOverrun`],
//! asyncio's `IncompleteReadError` and `LimitOverrunError`.
//!
//! Owns: their data, messages and `ErrorKind`s. Must not touch: buffers or streams —
//! `reader` builds them. Both travel inside an `io::Error` (downcast with
//! `get_ref()`), so `?` and `ErrorKind` matching work as for any read error.

use std::fmt;
use std::io;

/// The stream ended before a read could complete: `readexactly` / `read_exact` got
/// fewer bytes than asked for, or `readuntil` reached the end without the separator.
///
/// Carried by an `io::Error` of kind [`UnexpectedEof`](io::ErrorKind::UnexpectedEof);
/// the bytes that did arrive are in [`partial`](Self::partial) and are no longer in the
/// reader's buffer (as asyncio's `IncompleteReadError.partial`).
///
/// ```
/// use evloop::io::{BufReader, IncompleteRead};
///
/// evloop::run(async {
///     let (a, b) = evloop::net::UnixStream::pair()?;
///     a.write_all(b"abc").await?;
///     drop(a);
///     let mut reader = BufReader::new(b);
///     let err = reader.readexactly(5).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
///     let incomplete = err.get_ref().unwrap().downcast_ref::<IncompleteRead>().unwrap();
///     assert_eq!(incomplete.partial(), b"abc");
///     assert_eq!(incomplete.expected(), Some(5));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteRead {
    partial: Vec<u8>,
    expected: Option<usize>,
}

impl IncompleteRead {
    pub(crate) fn new(partial: Vec<u8>, expected: Option<usize>) -> IncompleteRead {
        IncompleteRead { partial, expected }
    }

    /// The bytes read before the end of the stream.
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// The bytes read before the end of the stream, by value.
    pub fn into_partial(self) -> Vec<u8> {
        self.partial
    }

    /// How many bytes were asked for; `None` for a `readuntil` (no length expected).
    pub fn expected(&self) -> Option<usize> {
        self.expected
    }

    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, self)
    }
}

impl fmt::Display for IncompleteRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(n) => write!(
                f,
                "{} bytes read on a total of {n} expected bytes",
                self.partial.len()
            ),
            None => write!(
                f,
                "{} bytes read on a total of undefined expected bytes (the stream ended \
                 before the separator)",
                self.partial.len()
            ),
        }
    }
}

impl std::error::Error for IncompleteRead {}

/// A `readline` / `readuntil` / `read_until` found no separator within the reader's
/// [`limit`](super::BufReader::limit), or found one farther than the limit.
///
/// Carried by an `io::Error` of kind [`InvalidData`](io::ErrorKind::InvalidData).
/// Nothing is consumed: the buffered bytes stay in the reader, so a `read(n)` (or a
/// larger limit and another `readuntil`) gets them — [`consumed`](Self::consumed) says
/// how many bytes the oversized chunk has so far (asyncio's `LimitOverrunError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverrun {
    consumed: usize,
    limit: usize,
    found: bool,
}

impl LimitOverrun {
    pub(crate) fn new(consumed: usize, limit: usize, found: bool) -> LimitOverrun {
        LimitOverrun {
            consumed,
            limit,
            found,
        }
    }

    /// The length of the chunk that overran: the separator's offset when it was found,
    /// else the bytes searched so far (asyncio's `consumed`).
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// The limit in force.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the separator was found (beyond the limit).
    pub fn separator_found(&self) -> bool {
        self.found
    }

    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl fmt::Display for LimitOverrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.found {
            write!(
                f,
                "separator is found, but chunk is longer than limit ({} > {} bytes; the data \
                 stays buffered)",
                self.consumed, self.limit
            )
        } else {
            write!(
                f,
                "separator is not found, and chunk exceeds the limit ({} > {} bytes; the data \
                 stays buffered)",
                self.consumed, self.limit
            )
        }
    }
}

impl std::error::Error for LimitOverrun {}
