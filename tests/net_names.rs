//! SPEC §15 N6: name lookup on the blocking pool, Happy Eyeballs connects, and errors
//! that name their address — against real sockets on the loopback interface.
//!
//! A "black hole" below is a listener with a backlog of 0 whose one queue slot is taken
//! by a connection nobody accepts: the kernel drops further SYNs, so a connect to it
//! stays in progress (the client retransmits for about two minutes). The tests that use
//! one assert an order of events — the other address wins while the black-holed
//! attempt is still in progress — with a 60 s guard against a hang, far below the
//! kernel's SYN timeout and far above any scheduling delay.

mod common;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Duration;

use common::child::isolate;
use evloop::net::{AddrError, TcpListener, TcpStream, UnixStream, lookup_host};
use evloop::{Error, Runtime, time};
use socket2::{Domain, Socket, Type};

const GUARD: Duration = Duration::from_secs(60);

fn detail(e: &io::Error) -> &AddrError {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<AddrError>())
        .unwrap_or_else(|| panic!("not an AddrError: {e:?}"))
}

/// A socket bound to `addr` without listening: connects to it are refused, and nobody
/// else can bind (and so accept on) that address while it lives.
fn refusing(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// A listener on `ip` and a refusing socket on the same port of `other` (retrying
/// ports until both binds succeed).
async fn listener_with_refusing_twin(ip: &str, other: &str) -> (TcpListener, Socket) {
    for _ in 0..50 {
        let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let twin: SocketAddr = format!("{other}:{port}").parse().unwrap();
        if let Ok(twin) = refusing(twin) {
            return (listener, twin);
        }
    }
    panic!("no port free on both {ip} and {other}");
}

/// A listener whose SYN queue is full (see the module doc), and the connection that
/// fills it (keep both alive).
fn black_hole() -> (Socket, std::net::TcpStream, SocketAddr) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    // A blocking connect: when it returns, the handshake is done and the connection
    // sits in the (now full) accept queue.
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (l, filler, addr)
}

#[test]
fn lookup_host_resolves_names_and_passes_literals_through() {
    evloop::run(async {
        let addrs = lookup_host("localhost:4321").await?;
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 4321),
            "{addrs:?}"
        );
        let pair = lookup_host(("localhost", 4321)).await?;
        assert_eq!(pair, addrs);
        let literal = lookup_host("[::1]:53").await?;
        assert_eq!(literal, ["[::1]:53".parse::<SocketAddr>().unwrap()]);
        Ok::<_, io::Error>(())
    })
    .unwrap();
}

#[test]
fn a_failed_lookup_names_the_host() {
    evloop::run(async {
        let err = lookup_host("nosuch.invalid:80").await.unwrap_err();
        assert!(
            err.to_string().starts_with("lookup nosuch.invalid:80: "),
            "{err}"
        );
        assert_eq!(detail(&err).name(), Some("nosuch.invalid:80"));
        assert_eq!(detail(&err).errors()[0].0, None);
        // A connect by that name says it was a connect.
        let err = TcpStream::connect("nosuch.invalid:80").await.unwrap_err();
        assert!(
            err.to_string().starts_with("connect nosuch.invalid:80: "),
            "{err}"
        );
        // A port that is not a number is the caller's mistake, named too.
        let err = lookup_host("localhost:http-ish").await.unwrap_err();
        assert!(err.to_string().contains("localhost:http-ish"), "{err}");
        Ok::<_, io::Error>(())
    })
    .unwrap();
}

#[test]
fn a_lookup_waiting_for_the_pool_is_cancelled_at_once() {
    // One pool thread, kept busy until the cancellation is seen: the lookup cannot have
    // finished first, so the task must end cancelled.
    let rt = Runtime::builder().blocking_threads(1).build().unwrap();
    rt.block_on(async {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = evloop::spawn_blocking(move || hold.recv().ok());
        let lookup = evloop::create_task(async {
            lookup_host("localhost:80").await?;
            Ok::<_, Error>(())
        });
        time::sleep(Duration::from_millis(1)).await?;
        assert!(lookup.cancel());
        let ended = lookup.await;
        assert!(matches!(ended, Err(Error::Cancelled(_))), "{ended:?}");
        release.send(()).unwrap();
        busy.await?;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn connect_by_name_reaches_a_listener_on_127_0_0_1() {
    evloop::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stream = TcpStream::connect(format!("localhost:{port}")).await?;
        assert_eq!(stream.peer_addr()?, listener.local_addr()?);
        let (served, _) = listener.accept().await?;
        assert_eq!(served.peer_addr()?, stream.local_addr()?);
        Ok::<_, io::Error>(())
    })
    .unwrap();
}

#[test]
fn happy_eyeballs_reaches_a_listener_on_either_family() {
    // What a dual-stack "localhost" resolves to ([::1] and 127.0.0.1, in either order),
    // with the listener on only one of them and the other refusing. (This machine's
    // /etc/hosts maps localhost to 127.0.0.1 alone, so the list is given literally.)
    evloop::run(async {
        for (listen_on, refuse_on) in [("[::1]", "127.0.0.1"), ("127.0.0.1", "[::1]")] {
            let (listener, _twin) = listener_with_refusing_twin(listen_on, refuse_on).await;
            let open = listener.local_addr()?;
            let closed: SocketAddr = format!("{refuse_on}:{}", open.port()).parse().unwrap();
            for order in [[closed, open], [open, closed]] {
                let stream = TcpStream::connect(&order[..]).await?;
                assert_eq!(stream.peer_addr()?, open, "order {order:?}");
                listener.accept().await?;
            }
        }
        Ok::<_, io::Error>(())
    })
    .unwrap();
}

#[test]
fn a_black_holed_first_address_loses_to_the_second() {
    let (_hole, _filler, hole) = black_hole();
    evloop::run(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let open = listener.local_addr()?;
        // Sequential tries would wait for the first attempt's SYN timeout (minutes);
        // Happy Eyeballs starts the second attempt 250 ms after the first.
        let stream = time::timeout(GUARD, TcpStream::connect(&[hole, open][..])).await??;
        assert_eq!(stream.peer_addr()?, open);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn the_losing_attempt_is_closed() {
    // In a child process, so that no other test opens or closes descriptors while this
    // one counts them.
    isolate("the_losing_attempt_is_closed", || {
        let (_hole, _filler, hole) = black_hole();
        evloop::run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let open = listener.local_addr()?;
            time::sleep(Duration::from_millis(1)).await?;
            let before = open_fds();
            let stream = time::timeout(GUARD, TcpStream::connect(&[hole, open][..])).await??;
            // The winner is the one new descriptor: the black-holed attempt's socket,
            // still connecting when the race ended, was closed.
            assert_eq!(open_fds(), before + 1);
            drop(stream);
            assert_eq!(open_fds(), before);
            Ok::<_, Error>(())
        })
        .unwrap();
    });
}

#[test]
fn a_cancelled_connect_closes_every_attempt() {
    isolate("a_cancelled_connect_closes_every_attempt", || {
        let (_hole, _filler, hole) = black_hole();
        let (_hole2, _filler2, hole2) = black_hole();
        evloop::run(async move {
            time::sleep(Duration::from_millis(1)).await?;
            let before = open_fds();
            let connect = evloop::create_task(async move {
                TcpStream::connect(&[hole, hole2][..]).await?;
                Ok::<_, Error>(())
            });
            // Past the stagger: both attempts are in flight.
            time::sleep(Duration::from_millis(400)).await?;
            assert!(open_fds() >= before + 2, "two attempts in flight");
            assert!(connect.cancel());
            let ended = connect.await;
            assert!(matches!(ended, Err(Error::Cancelled(_))), "{ended:?}");
            assert_eq!(open_fds(), before);
            Ok::<_, Error>(())
        })
        .unwrap();
    });
}

#[test]
fn a_refused_connect_names_the_address() {
    evloop::run(async {
        let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        assert_eq!(
            err.to_string(),
            format!("connect {addr}: Connection refused (os error 111)")
        );
        assert_eq!(detail(&err).raw_os_error(), Some(libc::ECONNREFUSED));
        // `?` into evloop::Error keeps the message.
        let e = Error::from(err);
        assert!(e.to_string().contains(&format!("connect {addr}")), "{e}");
        Ok::<_, io::Error>(())
    })
    .unwrap();
}

#[test]
fn when_every_address_is_refused_each_is_named() {
    evloop::run(async {
        let (listener, _twin) = listener_with_refusing_twin("127.0.0.1", "[::1]").await;
        let port = listener.local_addr()?.port();
        drop(listener);
        let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let err = TcpStream::connect(&[v4, v6][..]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        let tried: Vec<_> = detail(&err).errors().iter().map(|(a, _)| *a).collect();
        assert_eq!(tried, [Some(v4), Some(v6)]);
        assert_eq!(
            err.to_string(),
            format!(
                "connect: {v4}: Connection refused (os error 111); \
                 {v6}: Connection refused (os error 111)"
            )
        );
        Ok::<_, io::Error>(())
    })
    .unwrap();
}

#[test]
fn bind_and_unix_errors_name_the_address_or_path() {
    evloop::run(async {
        let taken = TcpListener::bind("127.0.0.1:0").await?;
        let addr = taken.local_addr()?;
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert_eq!(
            err.to_string(),
            format!("bind {addr}: Address already in use (os error 98)")
        );
        let udp = evloop::net::UdpSocket::bind("127.0.0.1:0").await?;
        let err = evloop::net::UdpSocket::bind(udp.local_addr()?)
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("bind 127.0.0.1:"), "{err}");

        let path = "/nonexistent-evloop-dir/sock";
        let err = UnixStream::connect(path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            format!("connect {path}: No such file or directory (os error 2)")
        );
        let err = evloop::net::UnixListener::bind(path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.to_string().starts_with(&format!("bind {path}: ")),
            "{err}"
        );
        Ok::<_, io::Error>(())
    })
    .unwrap();
}
