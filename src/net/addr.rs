//! Socket addresses: [`ToSocketAddrs`] and resolution off the loop thread (N1).
//!
//! Owns: turning what a user passes (`"host:port"`, `("host", port)`, a `SocketAddr`)
//! into addresses. Literal addresses are parsed on the spot; names are resolved on the
//! loop's default executor, so a slow DNS server never blocks the loop.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

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

/// The addresses `addr` names; names are looked up on the default executor.
pub(crate) async fn resolve<A: ToSocketAddrs + ?Sized>(addr: &A) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs as _;
    let lookup = match addr.to_resolve() {
        Resolve::Ready(addrs) => return non_empty(addrs),
        lookup => lookup,
    };
    let found = crate::spawn_blocking(move || -> io::Result<Vec<SocketAddr>> {
        match lookup {
            Resolve::HostPort(s) => Ok(s.to_socket_addrs()?.collect()),
            Resolve::Host(host, port) => Ok((host.as_str(), port).to_socket_addrs()?.collect()),
            Resolve::Ready(addrs) => Ok(addrs),
        }
    })
    .await
    .map_err(io::Error::from)??;
    non_empty(found)
}

fn non_empty(addrs: Vec<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
    if addrs.is_empty() {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ))
    } else {
        Ok(addrs)
    }
}

/// Tries `op` on each address in turn; the last error if all fail.
pub(crate) async fn each_addr<T, F, Fut>(addrs: Vec<SocketAddr>, mut op: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in addrs {
        match op(addr).await {
            Ok(v) => return Ok(v),
            Err(e)
                if e.get_ref()
                    .is_some_and(|inner| inner.is::<crate::CancelledError>()) =>
            {
                return Err(e);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses")))
}
