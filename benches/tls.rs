//! SPEC §11 P18 (TLS): `evloop::tls` (futures-rustls) on evloop's loop against
//! tokio-rustls on tokio `current_thread` and `multi_thread` with 1 worker, in the same
//! run. Both sides use rustls with the ring provider (`evloop::tls::crypto_provider()`)
//! and literally the same
//! `ServerConfig` / `ClientConfig` values (built once, shared by `Arc`), with an ECDSA
//! P-256 certificate for `localhost` made by rcgen. Client and server run on the same
//! loop or runtime, over loopback TCP with `TCP_NODELAY` on both ends.
//!
//! * `P18_tls_echo`: 64 TLS 1.3 connections (both configs TLS 1.3 only), each doing 100
//!   round trips of 64 bytes — the client `write_all`s 64 bytes and flushes (evloop's
//!   `write_all` flushes; tokio-rustls's is followed by `flush`), the server reads them
//!   with `read_exact` and echoes them the same way, the client `read_exact`s the echo.
//!   The connections and their handshakes are made once, outside the timing (with one
//!   round trip each, which also takes in the server's session tickets); an iteration
//!   is 64 × 100 round trips, one client task and one server task per connection.
//! * `P18_tls_handshake`: 1 000 full handshakes, 16 in flight. Each is a TCP connect,
//!   the TLS handshake to completion on both ends (client `connect`, server `accept`),
//!   then the close: the server sends `close_notify` (`shutdown`) and drops the
//!   connection, the client reads the end of the stream and drops its end. The client
//!   config has resumption disabled and the server sends no session tickets, so every
//!   handshake is a full one: an ephemeral key exchange on each side, an ECDSA P-256
//!   signature by the server, the client verifying it and the certificate. rustls's
//!   default versions (1.3 and 1.2) are offered and 1.3 is negotiated. The key exchange
//!   is X25519: the provider is `evloop::tls::crypto_provider()`, ring with X25519
//!   first (rustls 0.23.48's ring provider lists secp384r1 first, whose generic
//!   arithmetic made a handshake ≈ 2.3 ms of CPU instead of ≈ 0.6 ms); the crypto is
//!   still most of each handshake. An iteration binds a
//!   listener, runs one accept loop (a task per accepted connection) and 16 client
//!   tasks that take handshakes from a shared count until 1 000 are done. evloop's
//!   handshakes run with its default 60 s handshake timeout armed (one timer each);
//!   tokio-rustls has none.
//!
//! Run: `cargo bench --features tls --bench tls`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use common::*;
use evloop::tls::rustls;

const CONNS: usize = 64;
const ROUNDS: usize = 100;
const MSG: usize = 64;
const HANDSHAKES: usize = 1_000;
const IN_FLIGHT: usize = 16;
const SERVER_NAME: &str = "localhost";

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The configurations every peer uses.
struct Configs {
    /// TLS 1.3 only, rustls's defaults otherwise (P18_tls_echo).
    echo_server: Arc<rustls::ServerConfig>,
    echo_client: Arc<rustls::ClientConfig>,
    /// rustls's default versions, no session tickets / no resumption (P18_tls_handshake).
    handshake_server: Arc<rustls::ServerConfig>,
    handshake_client: Arc<rustls::ClientConfig>,
}

static CONFIGS: OnceLock<Configs> = OnceLock::new();

fn configs() -> &'static Configs {
    CONFIGS.get_or_init(|| {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .expect("rcgen certificate");
        let cert: CertificateDer<'static> = made.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
        // evloop's provider: rustls's ring provider with X25519 preferred, as OpenSSL,
        // BoringSSL and Go do (rustls 0.23.48 lists P-384 first for ring). Both peers
        // get these very configurations.
        let provider = evloop::tls::crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("root");
        let server = |versions: &[&'static rustls::SupportedProtocolVersion]| {
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)
                .expect("ring supports these versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert.clone()], key.clone_key())
                .expect("server certificate")
        };
        let client = |versions: &[&'static rustls::SupportedProtocolVersion]| {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)
                .expect("ring supports these versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth()
        };
        let tls13 = &[&rustls::version::TLS13];
        let mut handshake_server = server(rustls::DEFAULT_VERSIONS);
        handshake_server.send_tls13_tickets = 0;
        let mut handshake_client = client(rustls::DEFAULT_VERSIONS);
        handshake_client.resumption = rustls::client::Resumption::disabled();
        Configs {
            echo_server: Arc::new(server(tls13)),
            echo_client: Arc::new(client(tls13)),
            handshake_server: Arc::new(handshake_server),
            handshake_client: Arc::new(handshake_client),
        }
    })
}

// ---------------------------------------------------------------------------------------
// P18_tls_echo
// ---------------------------------------------------------------------------------------

type EvloopTls = evloop::tls::TlsStream<evloop::net::TcpStream>;

async fn evloop_echo_setup() -> Vec<EvloopTls> {
    let c = configs();
    let acceptor = evloop::tls::TlsAcceptor::new(c.echo_server.clone());
    let connector = evloop::tls::TlsConnector::new(c.echo_client.clone());
    let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let tcp = evloop::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        let accept = acceptor.accept(server);
        let server = evloop::create_task(async move {
            let mut tls = accept.await?;
            let mut buf = [0u8; MSG];
            loop {
                tls.read_exact(&mut buf).await?;
                tls.write_all(&buf).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), evloop::Error>(())
        });
        drop(server);
        let mut tls = connector.connect(SERVER_NAME, tcp).await.unwrap();
        assert_eq!(
            tls.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let mut buf = [0u8; MSG];
        tls.write_all(&[7u8; MSG]).await.unwrap();
        tls.read_exact(&mut buf).await.unwrap();
        clients.push(tls);
    }
    clients
}

async fn evloop_echo_round(clients: Vec<EvloopTls>) -> Vec<EvloopTls> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut tls| {
            evloop::create_task(async move {
                let msg = [7u8; MSG];
                let mut buf = [0u8; MSG];
                for _ in 0..ROUNDS {
                    tls.write_all(&msg).await?;
                    tls.read_exact(&mut buf).await?;
                }
                Ok(tls)
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(CONNS);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    clients
}

fn evloop_echo(g: &mut Group<'_>) {
    let rt = evloop_rt();
    let clients = rt.block_on(evloop_echo_setup());
    bench_rounds(g, EVLOOP, clients, |c| rt.block_on(evloop_echo_round(c)));
}

type TokioTls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tokio_echo_setup() -> Vec<TokioTls> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = configs();
    let acceptor = tokio_rustls::TlsAcceptor::from(c.echo_server.clone());
    let connector = tokio_rustls::TlsConnector::from(c.echo_client.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        let accept = acceptor.accept(server);
        tokio::spawn(async move {
            let mut tls = accept.await?;
            let mut buf = [0u8; MSG];
            loop {
                tls.read_exact(&mut buf).await?;
                tls.write_all(&buf).await?;
                tls.flush().await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        });
        let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(
            tls.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let mut buf = [0u8; MSG];
        tls.write_all(&[7u8; MSG]).await.unwrap();
        tls.flush().await.unwrap();
        tls.read_exact(&mut buf).await.unwrap();
        clients.push(tls);
    }
    clients
}

async fn tokio_echo_round(clients: Vec<TokioTls>) -> Vec<TokioTls> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut tls| {
            tokio::spawn(async move {
                let msg = [7u8; MSG];
                let mut buf = [0u8; MSG];
                for _ in 0..ROUNDS {
                    tls.write_all(&msg).await.unwrap();
                    tls.flush().await.unwrap();
                    tls.read_exact(&mut buf).await.unwrap();
                }
                tls
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(CONNS);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    clients
}

fn tls_echo(g: &mut Group<'_>) {
    evloop_echo(g);
    bench_tokio_rounds(g, tokio_echo_setup, tokio_echo_round);
}

// ---------------------------------------------------------------------------------------
// P18_tls_handshake
// ---------------------------------------------------------------------------------------

/// Takes the next handshake of the iteration, if any is left.
fn take(count: &AtomicUsize) -> bool {
    count.fetch_add(1, Ordering::Relaxed) < HANDSHAKES
}

async fn evloop_handshakes() {
    let c = configs();
    let acceptor = evloop::tls::TlsAcceptor::new(c.handshake_server.clone());
    let connector = evloop::tls::TlsConnector::new(c.handshake_client.clone());
    let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = evloop::create_task(async move {
        for _ in 0..HANDSHAKES {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let accept = acceptor.accept(tcp);
            drop(evloop::create_task(async move {
                let mut tls = accept.await?;
                tls.shutdown().await?;
                Ok(())
            }));
        }
        Ok(())
    });
    let count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (connector, count) = (connector.clone(), count.clone());
            evloop::create_task(async move {
                while take(&count) {
                    let tcp = evloop::net::TcpStream::connect(addr).await?;
                    tcp.set_nodelay(true)?;
                    let mut tls = connector.connect(SERVER_NAME, tcp).await?;
                    let mut byte = [0u8; 1];
                    assert_eq!(tls.read(&mut byte).await?, 0, "close_notify");
                }
                Ok(())
            })
        })
        .collect();
    for t in clients {
        t.await.unwrap();
    }
    server.await.unwrap();
}

async fn tokio_handshakes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = configs();
    let acceptor = tokio_rustls::TlsAcceptor::from(c.handshake_server.clone());
    let connector = tokio_rustls::TlsConnector::from(c.handshake_client.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..HANDSHAKES {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let accept = acceptor.accept(tcp);
            tokio::spawn(async move {
                let mut tls = accept.await.unwrap();
                tls.shutdown().await.unwrap();
            });
        }
    });
    let count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (connector, count) = (connector.clone(), count.clone());
            tokio::spawn(async move {
                while take(&count) {
                    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                    tcp.set_nodelay(true).unwrap();
                    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).unwrap();
                    let mut tls = connector.connect(name, tcp).await.unwrap();
                    let mut byte = [0u8; 1];
                    assert_eq!(tls.read(&mut byte).await.unwrap(), 0, "close_notify");
                }
            })
        })
        .collect();
    for t in clients {
        t.await.unwrap();
    }
    server.await.unwrap();
}

fn tls_handshake(g: &mut Group<'_>) {
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| b.iter(|| rt.block_on(evloop_handshakes())));
    bench_tokio_peers(g, tokio_handshakes);
}

fn main() {
    configs();
    let mut c = config_heavy().configure_from_args();
    let mut g = c.benchmark_group("P18_tls_echo");
    tls_echo(&mut g);
    g.finish();
    let mut g = c.benchmark_group("P18_tls_handshake");
    tls_handshake(&mut g);
    g.finish();
    c.final_summary();
}
