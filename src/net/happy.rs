//! Happy Eyeballs (RFC 8305) for a connect to several addresses (N6).
//!
//! Owns: the order of the attempts and the race between them. Must not touch: sockets —
//! each attempt is a future made by the caller's function (`TcpStream::connect_addr`)
//! — or name resolution (`addr`).
//!
//! The addresses are interleaved by family, starting with the family of the first one
//! (the resolver's preferred order, RFC 6724). The first attempt starts at once; each
//! further attempt starts [`ATTEMPT_DELAY`] after the one before it started, or at once
//! when that one fails sooner (as asyncio's `staggered_race`). Attempts in flight keep going when a new one
//! starts. The first to connect wins and the race ends: the other attempts are dropped,
//! which closes their sockets. When every attempt failed, the caller gets each address
//! with its error.
//!
//! The race is one future polled by the awaiting task: its waits (each socket's
//! writability, the stagger timer) are loop-native awaits, so cancelling the task ends
//! the race with the cancellation and closes every socket in flight.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use super::error::is_cancellation;

/// RFC 8305's recommended connection attempt delay.
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// How a race ended without a connection.
pub(crate) enum Lost {
    /// The awaiting task was cancelled (the `io::Error` around `CancelledError`).
    Cancelled(io::Error),
    /// Every address failed: each, in the order tried, with its error.
    Failed(Vec<(SocketAddr, io::Error)>),
}

/// `addrs` interleaved by family, starting with the first address's family (RFC 8305
/// §4, with a "first address family count" of one); the order within a family is kept.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let first_v6 = first.is_ipv6();
    let (preferred, other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    let (mut preferred, mut other) = (preferred.into_iter(), other.into_iter());
    loop {
        match (preferred.next(), other.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Races `attempt(addr)` over `addrs` (already in the order to try) as described in the
/// module doc.
pub(crate) async fn race<T, F, Fut>(addrs: Vec<SocketAddr>, mut attempt: F) -> Result<T, Lost>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut queue = addrs.into_iter().enumerate();
    // (the attempt's place in the order tried, its address, the attempt)
    let mut running: Vec<(usize, SocketAddr, Pin<Box<Fut>>)> = Vec::new();
    let mut failed: Vec<(usize, SocketAddr, io::Error)> = Vec::new();
    let mut stagger: Option<crate::time::Sleep> = None;
    let mut start_next = true;
    // The attempt started last is still running (it is `running`'s last entry).
    let mut latest_running = false;
    poll_fn(move |cx| {
        loop {
            if start_next {
                start_next = false;
                match queue.next() {
                    Some((index, addr)) => {
                        running.push((index, addr, Box::pin(attempt(addr))));
                        latest_running = true;
                        stagger = Some(crate::time::sleep(ATTEMPT_DELAY));
                    }
                    None => stagger = None,
                }
            }
            if running.is_empty() {
                // Reported in the order tried, not the order they failed in.
                let mut failed = std::mem::take(&mut failed);
                failed.sort_by_key(|(index, _, _)| *index);
                let failed = failed.into_iter().map(|(_, a, e)| (a, e)).collect();
                return Poll::Ready(Err(Lost::Failed(failed)));
            }
            let mut i = 0;
            while i < running.len() {
                match running[i].2.as_mut().poll(cx) {
                    Poll::Ready(Ok(won)) => return Poll::Ready(Ok(won)),
                    Poll::Ready(Err(e)) if is_cancellation(&e) => {
                        return Poll::Ready(Err(Lost::Cancelled(e)));
                    }
                    Poll::Ready(Err(e)) => {
                        if latest_running && i + 1 == running.len() {
                            // The latest attempt failed: the next one starts now, not
                            // when the stagger timer fires.
                            latest_running = false;
                            start_next = true;
                        }
                        let (index, addr, _) = running.remove(i);
                        failed.push((index, addr, e));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if start_next {
                continue;
            }
            if let Some(sleep) = stagger.as_mut() {
                match Pin::new(sleep).poll(cx) {
                    Poll::Ready(Ok(())) => {
                        start_next = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(Lost::Cancelled(io::Error::from(e))));
                    }
                    Poll::Pending => {}
                }
            }
            return Poll::Pending;
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families_alternate_starting_with_the_first() {
        let mixed = addrs(&["[::1]:1", "[::2]:1", "[::3]:1", "10.0.0.1:1", "10.0.0.2:1"]);
        assert_eq!(
            interleave(mixed),
            addrs(&["[::1]:1", "10.0.0.1:1", "[::2]:1", "10.0.0.2:1", "[::3]:1"])
        );
        let v4_first = addrs(&["10.0.0.1:1", "[::1]:1", "10.0.0.2:1", "10.0.0.3:1"]);
        assert_eq!(
            interleave(v4_first),
            addrs(&["10.0.0.1:1", "[::1]:1", "10.0.0.2:1", "10.0.0.3:1"])
        );
        let one_family = addrs(&["10.0.0.2:1", "10.0.0.1:1"]);
        assert_eq!(interleave(one_family.clone()), one_family);
        assert_eq!(interleave(Vec::new()), Vec::new());
    }
}
