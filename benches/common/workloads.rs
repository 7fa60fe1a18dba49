//! The evloop bodies that more than one bench runs, so that they run literally the same
//! code: P3 `yield_many` and P12 `tcp_echo` (`benches/tasks.rs`, `benches/tcp_echo.rs`)
//! and P16, the same two bodies with the cooperative budget on and off
//! (`benches/budget.rs`). The constants are shared with the other peers of P3 and P12.

use std::rc::Rc;

/// P3: tasks, each yielding `YIELDS` times.
pub const YIELD_TASKS: usize = 200;
pub const YIELDS: usize = 1_000;

/// P12: connections, round trips per connection and iteration, message size.
pub const ECHO_CONNS: usize = 64;
pub const ECHO_ROUNDS: usize = 100;
pub const ECHO_MSG: usize = 64;

/// P3 on evloop: 200 tasks × 1 000 `yield_now`, awaited one after another.
pub async fn evloop_yield_many() {
    let tasks: Vec<_> = (0..YIELD_TASKS)
        .map(|_| {
            evloop::create_task(async {
                for _ in 0..YIELDS {
                    evloop::yield_now().await?;
                }
                Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// P12 on evloop: `ECHO_CONNS` loopback connections whose server ends are echo tasks on
/// the loop they were set up on; the client ends are kept for the iterations.
pub struct EvloopEcho {
    clients: Vec<Rc<evloop::net::TcpStream>>,
}

impl EvloopEcho {
    /// Connects the clients and starts one echo server task per connection on `rt`.
    pub fn new(rt: &evloop::Runtime) -> EvloopEcho {
        let clients = rt.block_on(async {
            let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut clients = Vec::new();
            for _ in 0..ECHO_CONNS {
                let client = evloop::net::TcpStream::connect(addr).await.unwrap();
                client.set_nodelay(true).unwrap();
                let (server, _) = listener.accept().await.unwrap();
                server.set_nodelay(true).unwrap();
                evloop::create_task(async move {
                    let mut buf = [0u8; ECHO_MSG];
                    loop {
                        server.read_exact(&mut buf).await?;
                        server.write_all(&buf).await?;
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), evloop::Error>(())
                });
                clients.push(Rc::new(client));
            }
            clients
        });
        EvloopEcho { clients }
    }

    /// One iteration: a task per client doing `ECHO_ROUNDS` round trips, all awaited.
    /// Runs inside `block_on` of the runtime the echo was set up on.
    pub async fn round(&self) {
        let tasks: Vec<_> = self
            .clients
            .iter()
            .map(|client| {
                let client = client.clone();
                evloop::create_task(async move {
                    let msg = [7u8; ECHO_MSG];
                    let mut buf = [0u8; ECHO_MSG];
                    for _ in 0..ECHO_ROUNDS {
                        client.write_all(&msg).await?;
                        client.read_exact(&mut buf).await?;
                    }
                    Ok::<(), evloop::Error>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
}
