//! Certificates and keys from PEM files, and the crypto provider every configuration
//! built here uses (ring: it builds with only a C compiler).
//!
//! Owns: reading and parsing PEM files, with errors naming the path. Must not touch:
//! the configurations' TLS policy (rustls's defaults: TLS 1.3 and 1.2, its cipher
//! suites).

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider of every configuration evloop builds (`from_pem_files`,
/// `with_roots`, `with_root_file`, `with_system_roots`): rustls's ring provider with
/// X25519 preferred for the key exchange, then P-256, then P-384 — the order OpenSSL,
/// BoringSSL and Go use. (rustls 0.23.48's ring provider lists P-384 first, whose
/// generic arithmetic in ring makes a full handshake about four times as costly.) Use
/// it to build a configuration of your own with `ServerConfig::builder_with_provider`.
///
/// The process-wide default provider is not consulted, so another crate enabling
/// aws-lc-rs cannot make evloop's builders ambiguous. rustls 0.23.48 deprecated the
/// ring provider because ring has no post-quantum key exchange (X25519MLKEM768 needs
/// aws-lc-rs, which needs cmake to build); ARCHITECTURE.md says why evloop keeps it. An
/// application wanting hybrid key exchange builds its configuration on aws-lc-rs and
/// passes it to `TlsAcceptor::new` / `TlsConnector::new`.
///
/// ```
/// use evloop::tls::{crypto_provider, rustls};
/// let provider = crypto_provider();
/// assert_eq!(provider.kx_groups[0].name(), rustls::NamedGroup::X25519);
/// let config = rustls::ServerConfig::builder_with_provider(provider)
///     .with_protocol_versions(&[&rustls::version::TLS13])
///     .unwrap();
/// # drop(config);
/// ```
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    Arc::new(provider)
}

/// Every certificate in the PEM file at `path`, in file order (a server's chain: its own
/// certificate first).
///
/// ```
/// let err = evloop::tls::load_certs("/no/such/cert.pem").unwrap_err();
/// assert!(err.to_string().contains("/no/such/cert.pem"), "{err}");
/// ```
///
/// # Errors
///
/// The file cannot be read, is not PEM, or holds no certificate; the message names the
/// path.
pub fn load_certs(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, "certificates", e))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in the PEM file at `path`.
///
/// ```
/// let err = evloop::tls::load_private_key("/no/such/key.pem").unwrap_err();
/// assert!(err.to_string().contains("/no/such/key.pem"), "{err}");
/// ```
///
/// # Errors
///
/// The file cannot be read or holds no private key; the message names the path.
pub fn load_private_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound if is_encrypted_key(path) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: the private key is encrypted, which rustls cannot read; decrypt it first \
                 (openssl pkey -in {0} -out key-plain.pem)",
                path.display()
            ),
        ),
        e => pem_error(path, "private key", e),
    })
}

/// Whether the PEM file at `path` holds a passphrase-protected key (PKCS#8
/// `ENCRYPTED PRIVATE KEY`, or a traditional key with `Proc-Type: 4,ENCRYPTED`).
fn is_encrypted_key(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| {
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
    })
}

fn pem_error(path: &Path, what: &str, err: rustls::pki_types::pem::Error) -> io::Error {
    use rustls::pki_types::pem::Error as E;
    match err {
        E::Io(io) => io::Error::new(
            io.kind(),
            format!("{}: reading {what}: {io}", path.display()),
        ),
        E::NoItemsFound => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no PEM {what} in the file", path.display()),
        ),
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not valid PEM {what}: {other}", path.display()),
        ),
    }
}

/// A rustls configuration error, naming what was being built.
pub(super) fn config_error(what: &str, err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {err}"))
}
