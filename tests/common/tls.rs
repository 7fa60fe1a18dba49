//! Certificates and TLS servers for the TLS tests (`tests/tls_peers.rs`, which includes
//! this file with `#[path]` next to `mod common;`: it needs feature `tls`, which the
//! other test binaries are built without).
//!
//! [`Pki::new`] makes, with rcgen, a test CA and three leaves it signs — a good one for
//! `localhost` and `127.0.0.1`, an expired one for the same names, one for the wrong name
//! `other.example` — and writes them as PEM files into a temporary directory that is
//! removed on drop. [`serve_one`] and [`serve_many`] run evloop TLS servers as tasks.
#![allow(dead_code)]

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{TcpListener, TcpStream};
use evloop::tls::{TlsAcceptor, TlsConnector, TlsStream, rustls};
use evloop::{Error, Task, time};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::common::fs::TempDir;

/// Hang guard for every await in a TLS test (never a timing assertion).
pub const GUARD: Duration = Duration::from_secs(20);

/// The server name every good certificate here is for.
pub const NAME: &str = "localhost";

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// An acceptor presenting this certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from_pem_files(&self.cert, &self.key).expect("the test certificate loads")
    }
}

/// A test CA and the leaves it signed, as PEM files in a temporary directory.
pub struct Pki {
    pub dir: TempDir,
    /// The CA's certificate: the only root the clients trust.
    pub ca: PathBuf,
    /// For `localhost` and `127.0.0.1`, valid from 1975 to 4096.
    pub good: CertFiles,
    /// For `localhost` and `127.0.0.1`, valid only during 2020.
    pub expired: CertFiles,
    /// For `other.example` only.
    pub wrong_name: CertFiles,
}

impl Pki {
    /// Makes the CA and the leaves in `evloop-<name>-<pid>` under the temp dir (`name`
    /// unique per test).
    pub fn new(name: &str) -> Pki {
        let dir = TempDir::new(name);

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "evloop test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();

        let leaf = |file: &str, names: &[&str], expired: bool| -> CertFiles {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut params = CertificateParams::new(names.clone()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, names[0].as_str());
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
            let files = CertFiles {
                cert: dir.join(format!("{file}.pem")),
                key: dir.join(format!("{file}-key.pem")),
            };
            std::fs::write(&files.cert, cert.pem()).unwrap();
            std::fs::write(&files.key, key.serialize_pem()).unwrap();
            files
        };
        let good = leaf("localhost", &[NAME, "127.0.0.1"], false);
        let expired = leaf("expired", &[NAME, "127.0.0.1"], true);
        let wrong_name = leaf("other", &["other.example"], false);
        Pki {
            dir,
            ca,
            good,
            expired,
            wrong_name,
        }
    }

    /// A client trusting only the test CA.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::with_root_file(&self.ca).expect("the test CA loads")
    }
}

/// A listener on an ephemeral loopback port, and its address.
pub async fn listen() -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// How a server ends a connection after its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// `shutdown()`: `close_notify`, then the TCP write side; then it reads until the
    /// client closes too.
    Notify,
    /// `into_inner()` and drop: the TCP connection closes with no `close_notify`.
    Drop,
}

/// What one server connection saw.
#[derive(Debug)]
pub struct Served {
    /// The client's address as the server saw it.
    pub peer: SocketAddr,
    pub alpn: Option<Vec<u8>>,
    pub sni: Option<String>,
    pub version: Option<rustls::ProtocolVersion>,
    /// Everything the client sent before its first newline (included).
    pub received: Vec<u8>,
}

/// Reads until the bytes so far end with a newline (or the stream ends), echoes them in
/// one write, and closes as `close` says.
pub async fn echo_line(mut tls: TlsStream<TcpStream>, close: Close) -> io::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while !received.ends_with(b"\n") {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    tls.write_all(&received).await?;
    match close {
        Close::Notify => {
            tls.shutdown().await?;
            // Keep the socket until the client is done with it, so no unread byte of its
            // own close makes the kernel answer with a reset.
            let mut rest = Vec::new();
            let _ = time::timeout(GUARD, tls.read_to_end(&mut rest)).await;
        }
        Close::Drop => drop(tls.into_inner()),
    }
    Ok(received)
}

/// A task serving one connection on `listener` with [`echo_line`]: it resolves to what
/// the server saw, or to the accept's (handshake's) error.
pub fn serve_one(listener: TcpListener, acceptor: TlsAcceptor, close: Close) -> Task<Served> {
    evloop::create_task(async move {
        let (tcp, peer) = time::timeout(GUARD, listener.accept()).await??;
        let tls = time::timeout(GUARD, acceptor.accept(tcp)).await??;
        let alpn = tls.alpn_protocol().map(<[u8]>::to_vec);
        let sni = tls.sni_hostname().map(str::to_string);
        let version = tls.protocol_version();
        let received = time::timeout(GUARD, echo_line(tls, close)).await??;
        Ok(Served {
            peer,
            alpn,
            sni,
            version,
            received,
        })
    })
}

/// A task accepting `count` connections on `listener`, each served by a task of its own
/// with [`echo_line`] and [`Close::Notify`]; `handshakes` counts the handshakes that
/// succeeded. Resolves to the connection tasks (each to what its client sent).
pub fn serve_many(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    count: usize,
    handshakes: Rc<Cell<usize>>,
) -> Task<Vec<Task<Vec<u8>>>> {
    evloop::create_task(async move {
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            let (tcp, _) = time::timeout(GUARD, listener.accept()).await??;
            let (acceptor, handshakes) = (acceptor.clone(), handshakes.clone());
            connections.push(evloop::create_task(async move {
                let tls = time::timeout(GUARD, acceptor.accept(tcp)).await??;
                handshakes.set(handshakes.get() + 1);
                Ok::<_, Error>(time::timeout(GUARD, echo_line(tls, Close::Notify)).await??)
            }));
        }
        Ok(connections)
    })
}

/// A connected (client, server) pair of TLS streams over loopback, with the good
/// certificate.
pub async fn pair(pki: &Pki) -> io::Result<(TlsStream<TcpStream>, TlsStream<TcpStream>)> {
    let (listener, addr) = listen().await?;
    let acceptor = pki.good.acceptor();
    let server = evloop::create_task(async move {
        let (tcp, _) = listener.accept().await?;
        Ok::<_, Error>(time::timeout(GUARD, acceptor.accept(tcp)).await??)
    });
    let tcp = TcpStream::connect(addr).await?;
    let client = time::timeout(GUARD, pki.connector().connect(NAME, tcp))
        .await
        .map_err(io::Error::other)??;
    let server = time::timeout(GUARD, server)
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    Ok((client, server))
}
