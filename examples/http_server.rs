//! An HTTP server on evloop with hyper: HTTP/1.1 and HTTP/2 (cleartext, prior
//! knowledge — detected per connection) on 127.0.0.1, or HTTPS with HTTP/2 or HTTP/1.1
//! chosen by ALPN.
//!
//! ```sh
//! cargo run --release --features hyper --example http_server -- --port 8080 --loops 2
//! curl http://127.0.0.1:8080/                               # Hello, world!
//! curl --http2-prior-knowledge http://127.0.0.1:8080/json   # {"message":…}
//!
//! # HTTPS (feature tls): a certificate for localhost, then curl over either protocol
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
//!     -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout key.pem -out cert.pem
//! cargo run --release --features hyper,tls --example http_server -- \
//!     --port 8443 --tls-cert cert.pem --tls-key key.pem
//! curl --cacert cert.pem --http2 https://localhost:8443/json      # "protocol":"HTTP/2.0"
//! curl --cacert cert.pem --http1.1 https://localhost:8443/json    # "protocol":"HTTP/1.1"
//! ```
//!
//! Routes: `GET /` (text), `GET /json` (a small JSON document with the request count
//! and protocol), `GET /sleep/<ms>` (answers after a timer; for watching graceful
//! shutdown), anything else 404.
//!
//! Options: `--port N` (0, the default, picks a free port; the first line printed is
//! `listening on http://ADDR`), `--header-timeout-ms MS` (HTTP/1 header-read timeout,
//! default 10 000: a client that does not finish its request head in time is dropped),
//! `--grace-secs S` (default 10), `--tls-cert FILE --tls-key FILE` (PEM; serve HTTPS,
//! offering `h2` and `http/1.1` by ALPN; needs feature `tls`), `--loops N` (default 1: N loops on N threads, a
//! listener on each sharing the port through `SO_REUSEPORT`, the kernel spreading the
//! connections; every loop serves its own connections), `--help`.
//!
//! One task per connection. On SIGTERM or Ctrl-C every loop stops accepting, asks every
//! open connection to shut down gracefully (in-flight requests finish; HTTP/1 closes
//! after the current response, HTTP/2 sends GOAWAY; a TLS handshake still under way is
//! abandoned, as it carries no request yet), waits for them up to the grace period, and
//! exits with status 0.
//!
//! The request counter is an `Rc<Cell<u64>>`: services need not be `Send`, even for
//! HTTP/2, because hyper's background tasks are spawned on the loop by
//! [`LocalExec`].

#[path = "common/args.rs"]
mod args;
#[path = "common/dump.rs"]
mod dump;

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evloop::hyper::{LocalExec, Timer};
use evloop::net::{ListenOptions, TcpListener, TcpStream};
use evloop::{Error, Future, LoopGroup, LoopHandle, Task, create_task};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::server::conn::auto;

/// The command line (see the module doc).
struct Options {
    port: u16,
    loops: usize,
    header_timeout: Duration,
    grace: Duration,
    /// `--tls-cert` and `--tls-key`, loaded once and shared by every loop.
    #[cfg(feature = "tls")]
    tls: Option<evloop::tls::TlsAcceptor>,
}

const OPTIONS: &[args::Opt] = &[
    args::Opt::value(
        "--port",
        "N",
        "the port to listen on (default 0: any free port)",
    ),
    args::Opt::value(
        "--loops",
        "N",
        "loops (threads) sharing the port (default 1)",
    ),
    args::Opt::value(
        "--header-timeout-ms",
        "MS",
        "HTTP/1 request-head read timeout (default 10000)",
    ),
    args::Opt::value(
        "--grace-secs",
        "S",
        "how long open connections may finish after a signal (default 10)",
    ),
    args::Opt::value(
        "--tls-cert",
        "FILE",
        "serve HTTPS with this PEM certificate chain (with --tls-key; feature tls)",
    ),
    args::Opt::value("--tls-key", "FILE", "the PEM private key of --tls-cert"),
];

fn parse_args() -> Options {
    let args = args::Args::parse(
        "http_server",
        "An HTTP/1.1 and HTTP/2 (prior knowledge) server on 127.0.0.1, with hyper on evloop.",
        OPTIONS,
    );
    let tls = match (args.value_of("--tls-cert"), args.value_of("--tls-key")) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert, key)),
        _ => args.fail("--tls-cert and --tls-key go together"),
    };
    #[cfg(not(feature = "tls"))]
    if tls.is_some() {
        args.fail("--tls-cert needs the tls feature: --features hyper,tls");
    }
    Options {
        port: args.get("--port", 0),
        loops: args.get_at_least("--loops", 1, 1),
        header_timeout: Duration::from_millis(args.get("--header-timeout-ms", 10_000)),
        grace: Duration::from_secs(args.get("--grace-secs", 10)),
        #[cfg(feature = "tls")]
        tls: tls.map(|(cert, key)| {
            evloop::tls::TlsAcceptor::from_pem_files(cert, key)
                .unwrap_or_else(|e| args.fail(e))
                .with_alpn(&["h2", "http/1.1"])
        }),
    }
}

/// Answers one request. Runs on the loop; `requests` is loop-local state.
async fn handle(
    req: Request<Incoming>,
    requests: Rc<Cell<u64>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    requests.set(requests.get() + 1);
    let path = req.uri().path();
    let response = if path == "/" {
        Response::builder()
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"Hello, world!\n")))
    } else if path == "/json" {
        let json = format!(
            "{{\"message\":\"Hello, world!\",\"requests\":{},\"protocol\":\"{:?}\"}}",
            requests.get(),
            req.version()
        );
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json)))
    } else if let Some(Ok(ms)) = path.strip_prefix("/sleep/").map(str::parse::<u64>) {
        let _ = evloop::time::sleep(Duration::from_millis(ms)).await;
        Response::builder().body(Full::new(Bytes::from(format!("slept {ms} ms\n"))))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found\n")))
    };
    Ok(response.expect("a valid response"))
}

/// The connection builders of one loop: `auto` detects HTTP/1 or HTTP/2 (prior
/// knowledge) on cleartext connections; over TLS, ALPN has already chosen one.
struct Builders {
    auto: auto::Builder<LocalExec>,
    #[cfg(feature = "tls")]
    http1: auto::Builder<LocalExec>,
    #[cfg(feature = "tls")]
    http2: auto::Builder<LocalExec>,
}

impl Builders {
    fn new(options: &Options) -> Builders {
        let make = || {
            let mut builder = auto::Builder::new(LocalExec);
            builder
                .http1()
                .timer(Timer)
                .header_read_timeout(options.header_timeout);
            builder.http2().timer(Timer);
            builder
        };
        Builders {
            auto: make(),
            #[cfg(feature = "tls")]
            http1: make().http1_only(),
            #[cfg(feature = "tls")]
            http2: make().http2_only(),
        }
    }
}

/// One accepted connection: the TLS handshake first when serving HTTPS (abandoned if
/// `stop` completes meanwhile: a handshake carries no request yet), then HTTP.
async fn connection(
    stream: TcpStream,
    options: Arc<Options>,
    builders: Rc<Builders>,
    requests: Rc<Cell<u64>>,
    stop: Future<()>,
) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    #[cfg(feature = "tls")]
    if let Some(acceptor) = &options.tls {
        let mut handshake = pin!(acceptor.accept(stream));
        let mut stopped = stop.clone();
        let done = poll_fn(|cx| {
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return std::task::Poll::Ready(None);
            }
            handshake.as_mut().poll(cx).map(Some)
        })
        .await;
        let Some(tls) = done else {
            return Ok(()); // SIGTERM mid-handshake: the socket closes with the task
        };
        let tls = tls?;
        let h2 = tls.alpn_protocol() == Some(&b"h2"[..]);
        let builder = if h2 { &builders.http2 } else { &builders.http1 };
        return serve(tls, builder, requests, stop).await;
    }
    let _ = &options;
    serve(stream, &builders.auto, requests, stop).await
}

/// Serves HTTP on one connection until the client closes it, or until `stop` completes
/// and the graceful shutdown that follows is done.
async fn serve<S>(
    stream: S,
    builder: &auto::Builder<LocalExec>,
    requests: Rc<Cell<u64>>,
    stop: Future<()>,
) -> Result<(), Error>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let service = service_fn(move |req| handle(req, requests.clone()));
    let mut conn = pin!(builder.serve_connection(stream, service));
    let mut stop = stop;
    let mut stopping = false;
    poll_fn(|cx| {
        if !stopping && Pin::new(&mut stop).poll(cx).is_ready() {
            conn.as_mut().graceful_shutdown();
            stopping = true;
        }
        conn.as_mut().poll(cx)
    })
    .await
    .map_err(Error::from_boxed)
}

/// One loop's server: bind (loop 0 first, so port 0 resolves to one port that every
/// loop then shares through `SO_REUSEPORT`), accept until SIGTERM / Ctrl-C, then shut
/// this loop's connections down gracefully. Returns (accepted, requests served).
async fn serve_loop(
    index: usize,
    options: Arc<Options>,
    port: Future<u16>,
) -> Result<(u64, u64), Error> {
    let listen = ListenOptions {
        reuse_port: options.loops > 1,
        ..ListenOptions::default()
    };
    let listener = if index == 0 {
        let listener = TcpListener::bind_with(("127.0.0.1", options.port), listen).await?;
        let addr = listener.local_addr()?;
        println!("listening on {}://{addr}", scheme(&options));
        if options.loops > 1 {
            println!("{} loops share the port (SO_REUSEPORT)", options.loops);
        }
        let _ = port.set_result(addr.port());
        listener
    } else {
        // A future completed on loop 0, awaited here on loop `index` (G5).
        TcpListener::bind_with(("127.0.0.1", port.await?), listen).await?
    };

    // SIGTERM or Ctrl-C completes `signalled`; the handlers run on this loop (every
    // loop of the group registers its own).
    let signalled: Future<i32> = Future::new();
    let loop_ = LoopHandle::current();
    // SIGUSR1: every loop prints a dump of its own tasks.
    dump::dump_tasks_on_sigusr1(&loop_)?;
    for signum in [libc::SIGINT, libc::SIGTERM] {
        let signalled = signalled.clone();
        loop_.add_signal_handler(signum, move || {
            let _ = signalled.set_result(signum);
        })?;
    }
    // Completing `stop` asks every connection of this loop to shut down gracefully.
    let stop: Future<()> = Future::new();

    let builders = Rc::new(Builders::new(&options));
    let requests = Rc::new(Cell::new(0u64));

    let connections: Rc<RefCell<Vec<Task<()>>>> = Rc::default();
    let acceptor = {
        let connections = connections.clone();
        let stop = stop.clone();
        let requests = requests.clone();
        let options = options.clone();
        create_task(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        let e = Error::from(e);
                        if e.is_cancelled() {
                            return Err(e);
                        }
                        eprintln!("accept: {e}"); // e.g. EMFILE: the listener backs off
                        continue;
                    }
                };
                let task = create_task(connection(
                    stream,
                    options.clone(),
                    builders.clone(),
                    requests.clone(),
                    stop.clone(),
                ));
                task.set_name(format!("http {peer}"));
                // A connection that fails (a client reset, a header-read timeout) is
                // logged here rather than reported as a never-retrieved error.
                task.add_done_callback(move |t| {
                    if let Ok(Some(e)) = t.exception() {
                        eprintln!("connection {peer}: {e}");
                    }
                });
                let mut tasks = connections.borrow_mut();
                tasks.retain(|t| !t.done());
                tasks.push(task);
            }
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        })
    };

    let signum = signalled.await?;
    acceptor.cancel();
    let _ = acceptor.await; // ends cancelled; the listener is closed with it
    let open: Vec<_> = connections
        .borrow_mut()
        .drain(..)
        .filter(|t| !t.done())
        .collect();
    println!(
        "loop {index}: signal {signum}: stopped accepting; shutting down {} open connection(s)",
        open.len()
    );
    let _ = stop.set_result(());
    match evloop::wait_for(evloop::gather_results(open), options.grace).await {
        Ok(_) => {}
        Err(e) if e.is_timeout() => println!("loop {index}: grace period over; closing the rest"),
        Err(e) => return Err(e),
    }
    Ok((loop_.stats().accepts, requests.get()))
}

fn scheme(options: &Options) -> &'static str {
    #[cfg(feature = "tls")]
    if options.tls.is_some() {
        return "https";
    }
    let _ = options;
    "http"
}

fn main() -> Result<(), Error> {
    let options = Arc::new(parse_args());
    // One loop per thread; with --loops 1 this is a single loop on one thread.
    let group = LoopGroup::new(options.loops)?;
    let port: Future<u16> = Future::with_loop(&group.handles()[0]);
    let results =
        group.block_on_each(move |index, _| serve_loop(index, options.clone(), port.clone()));
    let mut failed = false;
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok((accepted, requests)) => {
                println!(
                    "loop {index}: accepted {accepted} connection(s), served {requests} request(s)"
                )
            }
            Err(e) => {
                eprintln!("loop {index}: {e}");
                failed = true;
            }
        }
    }
    group.shutdown()?;
    if failed {
        std::process::exit(1);
    }
    println!("all connections closed; bye");
    Ok(())
}
