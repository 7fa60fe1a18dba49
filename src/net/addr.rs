//! Socket addresses: [`ToSocketAddrs`] and resolution off the loop thread (N1).
//!
//! Owns: turning what a user passes (`"host:port"`, `("host", port)`, a `SocketAddr`)
//! into addresses. Literal addresses are parsed on the spot; names are resolved on the
//! loop's default executor, so a slow DNS server never blocks the loop.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::error::{about, is_cancellation, named};

pub(crate) mod sealed {
    use std::net::SocketAddr;

    /// What an address argument turns into.
    #[derive(Debug)]
    pub enum Resolve {
        /// Literal addresses, no lookup needed.
        Ready(Vec<SocketAddr>),
        /// A `"host:port"` to resolve.
        HostPort(String),
        /// A host and port to resolve.
        Host(String, u16),
    }

    pub trait Sealed {
        fn to_resolve(&self) -> Resolve;
    }
}

use sealed::Resolve;

/// Anything that names socket addresses: `SocketAddr`, `(IpAddr, u16)`, `"host:port"`,
/// `("host", port)`, `String`s and slices of `SocketAddr`. Like
/// `std::net::ToSocketAddrs`, except that names are resolved off the loop thread.
pub trait ToSocketAddrs: sealed::Sealed {}

macro_rules! ready_addrs {
    ($($ty:ty => |$v:ident| $e:expr),+ $(,)?) => {$(
        impl sealed::Sealed for $ty {
            fn to_resolve(&self) -> Resolve {
                let $v = self;
                Resolve::Ready($e)
            }
        }
        impl ToSocketAddrs for $ty {}
    )+};
}

ready_addrs! {
    SocketAddr => |a| vec![*a],
    SocketAddrV4 => |a| vec![SocketAddr::V4(*a)],
    SocketAddrV6 => |a| vec![SocketAddr::V6(*a)],
    (IpAddr, u16) => |a| vec![SocketAddr::new(a.0, a.1)],
    (Ipv4Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V4(a.0), a.1)],
    (Ipv6Addr, u16) => |a| vec![SocketAddr::new(IpAddr::V6(a.0), a.1)],
    [SocketAddr] => |a| a.to_vec(),
    Vec<SocketAddr> => |a| a.clone(),
}

impl sealed::Sealed for str {
    fn to_resolve(&self) -> Resolve {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Resolve::Ready(vec![addr]),
            Err(_) => Resolve::HostPort(self.to_owned()),
        }
    }
}
impl ToSocketAddrs for str {}

impl sealed::Sealed for String {
    fn to_resolve(&self) -> Resolve {
        self.as_str().to_resolve()
    }
}
impl ToSocketAddrs for String {}

impl sealed::Sealed for (&str, u16) {
    fn to_resolve(&self) -> Resolve {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolve::Ready(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Resolve::Host(self.0.to_owned(), self.1),
        }
    }
}
impl ToSocketAddrs for (&str, u16) {}

impl sealed::Sealed for (String, u16) {
    fn to_resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).to_resolve()
    }
}
impl ToSocketAddrs for (String, u16) {}

impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {
    fn to_resolve(&self) -> Resolve {
        (**self).to_resolve()
    }
}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}

/// What `addr` resolved to: the addresses, and the name as given when one was looked
/// up (for error messages).
pub(crate) struct Resolved {
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) name: Option<String>,
}

/// Looks up `host` (`"host:port"`, `("host", port)` or literal addresses) on the loop's
/// default executor, so a slow DNS server never blocks the loop (N6). Literal addresses
/// are returned at once, without a lookup.
///
/// The lookup is `getaddrinfo(3)` (through `std::net::ToSocketAddrs`), so `/etc/hosts`,
/// `nsswitch.conf` and the resolver's address order apply. Cancelling the awaiting task
/// ends the await with the cancellation; the lookup already running on the pool cannot
/// be interrupted and its answer is dropped.
///
/// ```
/// evloop::run(async {
///     let addrs = evloop::net::lookup_host("localhost:8080").await?;
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
///     let literal = evloop::net::lookup_host("10.1.2.3:53").await?;
///     assert_eq!(literal, ["10.1.2.3:53".parse().unwrap()]);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// An [`AddrError`](super::AddrError) naming `host` when the lookup fails or finds no
/// address; an `io::Error` wrapping `CancelledError` when the awaiting task is
/// cancelled.
///
/// # Panics
///
/// When no event loop runs on this thread.
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    resolve(&host, "lookup").await.map(|r| r.addrs)
}

/// The addresses `addr` names; names are looked up on the default executor. A failed
/// lookup is an `AddrError` of `op` naming the name.
pub(crate) async fn resolve<A: ToSocketAddrs + ?Sized>(
    addr: &A,
    op: &'static str,
) -> io::Result<Resolved> {
    use std::net::ToSocketAddrs as _;
    let (lookup, name) = match addr.to_resolve() {
        Resolve::Ready(addrs) if addrs.is_empty() => {
            return Err(named(op, None, vec![(None, no_addresses())]));
        }
        Resolve::Ready(addrs) => return Ok(Resolved { addrs, name: None }),
        Resolve::HostPort(s) => {
            let name = s.clone();
            (Resolve::HostPort(s), name)
        }
        Resolve::Host(host, port) => {
            let name = format!("{host}:{port}");
            (Resolve::Host(host, port), name)
        }
    };
    let found = crate::spawn_blocking(move || -> io::Result<Vec<SocketAddr>> {
        match lookup {
            Resolve::HostPort(s) => Ok(s.to_socket_addrs()?.collect()),
            Resolve::Host(host, port) => Ok((host.as_str(), port).to_socket_addrs()?.collect()),
            Resolve::Ready(addrs) => Ok(addrs),
        }
    })
    .await
    .map_err(io::Error::from)
    .and_then(|found| found);
    match found {
        Ok(addrs) if !addrs.is_empty() => Ok(Resolved {
            addrs,
            name: Some(name),
        }),
        Ok(_) => Err(about(op, name, no_addresses())),
        Err(e) => Err(about(op, name, e)),
    }
}

fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    )
}

/// Tries `op` on each address in turn: the first success, or an `AddrError` of `what`
/// listing every address with its error. A cancellation ends the attempts at once.
pub(crate) async fn each_addr<T, F, Fut>(
    resolved: Resolved,
    what: &'static str,
    mut op: F,
) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut failed = Vec::new();
    for addr in resolved.addrs {
        match op(addr).await {
            Ok(v) => return Ok(v),
            Err(e) if is_cancellation(&e) => return Err(e),
            Err(e) => failed.push((Some(addr), e)),
        }
    }
    Err(named(what, resolved.name, failed))
}
