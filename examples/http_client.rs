//! An HTTP client on evloop with hyper: fetches N URLs concurrently with `gather`, over
//! HTTP/1.1 (a connection per URL) or HTTP/2 (one connection per host, the requests
//! multiplexed on it: prior knowledge for `http://`, ALPN `h2` for `https://`).
//!
//! ```sh
//! cargo run --release --features hyper --example http_client                  # self-contained demo
//! cargo run --release --features hyper --example http_client -- http://127.0.0.1:8080/ http://127.0.0.1:8080/json
//! cargo run --release --features hyper --example http_client -- --http2 http://127.0.0.1:8080/json
//! # https:// (feature tls): the system's root certificates, or the ones in --cacert
//! cargo run --release --features hyper,tls --example http_client -- \
//!     --cacert cert.pem --http2 https://localhost:8443/json
//! ```
//!
//! Options: `--http2` (one HTTP/2 connection per host instead of HTTP/1.1), `--cacert
//! FILE` (trust only the PEM certificates in FILE for `https://`, instead of the
//! system's), `--help`; then the `http://` or `https://` URLs to fetch.
//!
//! With no URL it starts a small hyper server on the same loop and fetches 10 URLs from
//! it twice, over HTTP/1.1 and over HTTP/2 — client and server share one thread.
//! Exits with status 1 if any fetch failed.

#[path = "common/args.rs"]
mod args;

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use evloop::hyper::{LocalExec, Timer};
use evloop::net::{TcpListener, TcpStream};
use evloop::{Error, create_task, gather_results};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};

/// What one fetch reports (`Clone`: a gather's result is a shared `Future`; `Bytes` clones
/// by reference count).
#[derive(Clone)]
struct Fetched {
    status: u16,
    version: hyper::Version,
    body: Bytes,
}

/// A connection hyper can speak over: a `TcpStream`, or a `TlsStream` over one.
trait Io: hyper::rt::Read + hyper::rt::Write + Unpin {}
impl<T: hyper::rt::Read + hyper::rt::Write + Unpin> Io for T {}

/// `--cacert`, set once in `main`.
static CACERT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Opens a connection to `uri`'s host and port (80 or 443 by default): TCP for
/// `http://`, TLS over TCP for `https://` offering `alpn` (`h2` or `http/1.1`).
async fn connect(uri: &Uri, alpn: &str) -> Result<Box<dyn Io>, Error> {
    let host = uri
        .host()
        .ok_or_else(|| Error::msg(format!("{uri}: no host")))?;
    let port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(Error::msg(format!("{uri}: only http:// and https:// URLs"))),
    };
    let stream = TcpStream::connect((
        host.trim_matches(['[', ']']),
        uri.port_u16().unwrap_or(port),
    ))
    .await?;
    stream.set_nodelay(true)?;
    if uri.scheme_str() == Some("http") {
        return Ok(Box::new(stream));
    }
    connect_tls(host, stream, alpn).await
}

#[cfg(feature = "tls")]
async fn connect_tls(host: &str, stream: TcpStream, alpn: &str) -> Result<Box<dyn Io>, Error> {
    use evloop::tls::TlsConnector;
    // Built once (the system's store is read from disk), shared by every connection.
    static CONNECTOR: std::sync::OnceLock<Result<TlsConnector, String>> =
        std::sync::OnceLock::new();
    let base = CONNECTOR.get_or_init(|| {
        match CACERT.get().cloned().flatten() {
            Some(file) => TlsConnector::with_root_file(file),
            None => TlsConnector::with_system_roots(),
        }
        .map_err(|e| e.to_string())
    });
    let connector = base.clone().map_err(Error::msg)?.with_alpn(&[alpn]);
    let tls = connector.connect(host, stream).await?;
    // A server with no ALPN accepts the handshake without choosing: speaking h2 to it
    // would fail obscurely, so say what happened.
    if alpn == "h2" && tls.alpn_protocol() != Some(&b"h2"[..]) {
        return Err(Error::msg(format!(
            "https://{host}: the server did not agree to HTTP/2 by ALPN (try without --http2)"
        )));
    }
    Ok(Box::new(tls))
}

#[cfg(not(feature = "tls"))]
async fn connect_tls(host: &str, _: TcpStream, _: &str) -> Result<Box<dyn Io>, Error> {
    Err(Error::msg(format!(
        "https://{host}: this build has no TLS (build with --features hyper,tls)"
    )))
}

fn get(uri: &Uri) -> Result<Request<Empty<Bytes>>, Error> {
    let host = uri.authority().map(|a| a.as_str()).unwrap_or("");
    Ok(Request::get(uri.clone())
        .header(hyper::header::HOST, host)
        .body(Empty::new())?)
}

async fn collect(resp: Response<hyper::body::Incoming>) -> Result<Fetched, Error> {
    let (status, version) = (resp.status().as_u16(), resp.version());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(Error::new)?
        .to_bytes();
    Ok(Fetched {
        status,
        version,
        body,
    })
}

/// HTTP/1.1: one connection per URL, driven by its own task.
async fn fetch_http1(uri: Uri) -> Result<Fetched, Error> {
    let (mut sender, conn) = http1::handshake(connect(&uri, "http/1.1").await?)
        .await
        .map_err(Error::new)?;
    create_task(async move { conn.await.map_err(Error::new) });
    let resp = sender.send_request(get(&uri)?).await.map_err(Error::new)?;
    collect(resp).await
}

/// HTTP/2: one connection per host (authority); every request to it is a stream on it.
async fn fetch_all_http2(uris: Vec<Uri>) -> Result<Vec<Result<Fetched, Error>>, Error> {
    let mut senders: HashMap<String, http2::SendRequest<Empty<Bytes>>> = HashMap::new();
    for uri in &uris {
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        if let std::collections::hash_map::Entry::Vacant(slot) = senders.entry(authority) {
            let (sender, conn) = http2::Builder::new(LocalExec)
                .timer(Timer)
                .handshake(connect(uri, "h2").await?)
                .await
                .map_err(Error::new)?;
            create_task(async move { conn.await.map_err(Error::new) });
            slot.insert(sender);
        }
    }
    let fetches = uris.iter().map(|uri| {
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let mut sender = senders[&authority].clone();
        let request = get(uri);
        create_task(async move {
            let resp = sender.send_request(request?).await.map_err(Error::new)?;
            collect(resp).await
        })
    });
    gather_results(fetches.collect::<Vec<_>>()).await
}

/// Fetches every URL at once and prints one line per URL; returns how many failed.
async fn fetch_and_print(uris: Vec<Uri>, use_http2: bool) -> Result<usize, Error> {
    let results = if use_http2 {
        // A host whose connection failed fails every URL (one connection per host).
        match fetch_all_http2(uris.clone()).await {
            Ok(results) => results,
            Err(e) => uris.iter().map(|_| Err(e.clone())).collect(),
        }
    } else {
        let tasks: Vec<_> = uris
            .iter()
            .cloned()
            .map(|u| create_task(fetch_http1(u)))
            .collect();
        gather_results(tasks).await?
    };
    let mut failed = 0;
    for (uri, result) in uris.iter().zip(results) {
        match result {
            Ok(f) => {
                let text = String::from_utf8_lossy(&f.body);
                let first = text.lines().next().unwrap_or("");
                println!(
                    "{uri}  {:?} {}  {} bytes  {first}",
                    f.version,
                    f.status,
                    f.body.len()
                );
            }
            Err(e) => {
                failed += 1;
                println!("{uri}  failed: {e}");
            }
        }
    }
    Ok(failed)
}

/// A tiny server on this loop for the self-contained demo (both protocols, detected).
async fn demo_server() -> Result<std::net::SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    create_task(async move {
        loop {
            let (stream, _) = listener.accept().await?;
            create_task(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = format!(
                        "you asked for {} over {:?}\n",
                        req.uri().path(),
                        req.version()
                    );
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                hyper_util::server::conn::auto::Builder::new(LocalExec)
                    .serve_connection(stream, service)
                    .await
                    .map_err(Error::from_boxed)
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), Error>(())
    });
    Ok(addr)
}

const OPTIONS: &[args::Opt] = &[
    args::Opt::flag(
        "--http2",
        "HTTP/2 (prior knowledge for http://, ALPN for https://), one connection per host",
    ),
    args::Opt::value(
        "--cacert",
        "FILE",
        "trust the PEM certificates in FILE for https:// (default: the system's)",
    ),
    args::Opt::positional(
        "URL",
        "http:// or https:// URLs to fetch (none: the self-contained demo)",
    ),
];

#[evloop::main]
async fn main() -> Result<(), Error> {
    let args = args::Args::parse(
        "http_client",
        "Fetches URLs at once over HTTP/1.1 or HTTP/2 (with no URL: a self-contained demo).",
        OPTIONS,
    );
    let use_http2 = args.flag("--http2");
    let _ = CACERT.set(args.value_of("--cacert").map(str::to_string));
    let uris: Vec<Uri> = args.positionals();
    let failed = if uris.is_empty() {
        let addr = demo_server().await?;
        let uris: Vec<Uri> = (0..10)
            .map(|i| format!("http://{addr}/item/{i}").parse().unwrap())
            .collect();
        println!("-- HTTP/1.1: 10 connections, 10 requests at once");
        let h1 = fetch_and_print(uris.clone(), false).await?;
        println!("-- HTTP/2: one connection, 10 streams at once");
        h1 + fetch_and_print(uris, true).await?
    } else {
        fetch_and_print(uris, use_http2).await?
    };
    if failed > 0 {
        eprintln!("{failed} fetch(es) failed");
        std::process::exit(1);
    }
    Ok(())
}
