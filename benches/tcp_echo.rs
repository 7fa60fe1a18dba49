//! SPEC §11 P12: 64 loopback TCP connections on one loop, each doing 100 round trips of
//! a 64-byte message through an echo server on the same loop — evloop, tokio
//! `current_thread` and `multi_thread` with 1 worker, smol (`Async<TcpStream>` on its
//! `LocalExecutor`), and a hand-written mio loop without any runtime (the floor), in
//! the same run. Connections are set up once; an iteration is 64 × 100 round trips,
//! one client task per connection, one server task per connection.
//!
//! Run: `cargo bench --bench tcp_echo`.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const CONNS: usize = workloads::ECHO_CONNS;
const ROUNDS: usize = workloads::ECHO_ROUNDS;
const MSG: usize = workloads::ECHO_MSG;

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The evloop body is shared with P16 (`common::workloads`).
fn evloop_echo(g: &mut Group<'_>) {
    let rt = evloop_rt();
    let echo = workloads::EvloopEcho::new(&rt);
    g.bench_function(EVLOOP, |b| b.iter(|| rt.block_on(echo.round())));
}

async fn tokio_setup() -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::new();
    for _ in 0..CONNS {
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; MSG];
            while server.read_exact(&mut buf).await.is_ok() {
                if server.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
        clients.push(client);
    }
    clients
}

/// One iteration: a task per client; the clients are handed back for the next one.
async fn tokio_round(clients: Vec<tokio::net::TcpStream>) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let msg = [7u8; MSG];
                let mut buf = [0u8; MSG];
                for _ in 0..ROUNDS {
                    client.write_all(&msg).await.unwrap();
                    client.read_exact(&mut buf).await.unwrap();
                }
                client
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(CONNS);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    clients
}

fn tokio_echo(g: &mut Group<'_>) {
    bench_tokio_rounds(g, tokio_setup, tokio_round);
}

fn smol_echo(g: &mut Group<'_>) {
    use smol::Async;
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    use std::rc::Rc;
    let clients: Vec<Rc<Async<std::net::TcpStream>>> = smol_block_on(async {
        let listener = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..CONNS {
            let client = Async::<std::net::TcpStream>::connect(addr).await.unwrap();
            client.get_ref().set_nodelay(true).unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            server.get_ref().set_nodelay(true).unwrap();
            smol_ex()
                .spawn(async move {
                    let mut buf = [0u8; MSG];
                    while server.read_exact(&mut buf).await.is_ok() {
                        if server.write_all(&buf).await.is_err() {
                            break;
                        }
                    }
                })
                .detach();
            clients.push(Rc::new(client));
        }
        clients
    });
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let tasks: Vec<_> = clients
                    .iter()
                    .map(|client| {
                        let client = client.clone();
                        smol_ex().spawn(async move {
                            let msg = [7u8; MSG];
                            let mut buf = [0u8; MSG];
                            for _ in 0..ROUNDS {
                                (&*client).write_all(&msg).await.unwrap();
                                (&*client).read_exact(&mut buf).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
            })
        })
    });
}

/// The floor: one mio `Poll`, non-blocking std sockets, a state machine per connection.
fn mio_echo(g: &mut Group<'_>) {
    use mio::net::TcpStream;
    use mio::{Events, Interest, Poll, Token};

    struct Conn {
        client: TcpStream,
        server: TcpStream,
        rounds_left: usize,
        client_got: usize,
        server_got: usize,
        server_buf: [u8; MSG],
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut poll = Poll::new().unwrap();
    let mut conns = Vec::new();
    for i in 0..CONNS {
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        for s in [&client, &server] {
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
        }
        let mut client = TcpStream::from_std(client);
        let mut server = TcpStream::from_std(server);
        poll.registry()
            .register(&mut client, Token(2 * i), Interest::READABLE)
            .unwrap();
        poll.registry()
            .register(&mut server, Token(2 * i + 1), Interest::READABLE)
            .unwrap();
        conns.push(Conn {
            client,
            server,
            rounds_left: 0,
            client_got: 0,
            server_got: 0,
            server_buf: [0; MSG],
        });
    }
    let mut events = Events::with_capacity(1024);
    g.bench_function(MIO_FLOOR, |b| {
        b.iter(|| {
            let msg = [7u8; MSG];
            let mut busy = CONNS;
            for conn in conns.iter_mut() {
                conn.rounds_left = ROUNDS;
                conn.client.write_all(&msg).unwrap();
            }
            let mut buf = [0u8; MSG];
            while busy > 0 {
                poll.poll(&mut events, None).unwrap();
                for event in events.iter() {
                    let conn = &mut conns[event.token().0 / 2];
                    if event.token().0 % 2 == 1 {
                        // Server side: echo every complete message.
                        loop {
                            match conn.server.read(&mut conn.server_buf[conn.server_got..]) {
                                Ok(0) => break,
                                Ok(n) => {
                                    conn.server_got += n;
                                    if conn.server_got == MSG {
                                        conn.server.write_all(&conn.server_buf).unwrap();
                                        conn.server_got = 0;
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    } else {
                        loop {
                            match conn.client.read(&mut buf[conn.client_got..]) {
                                Ok(0) => break,
                                Ok(n) => {
                                    conn.client_got += n;
                                    if conn.client_got == MSG {
                                        conn.client_got = 0;
                                        conn.rounds_left -= 1;
                                        if conn.rounds_left == 0 {
                                            busy -= 1;
                                        } else {
                                            conn.client.write_all(&msg).unwrap();
                                        }
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                }
            }
        })
    });
}

fn tcp_echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("P12_tcp_echo");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    mio_echo(&mut g);
    tokio_echo(&mut g);
    smol_echo(&mut g);
    evloop_echo(&mut g);
    g.finish();
}

criterion_group!(benches, tcp_echo);
criterion_main!(benches);
