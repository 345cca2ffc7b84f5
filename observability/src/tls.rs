//! HTTPS for `/metrics`: the certificate (from `tls.crt`/`tls.key` in a directory, as a
//! `kubernetes.io/tls` Secret or OpenShift's service-serving certificates are mounted, or self-signed
//! in memory at start) and a listener that completes TLS handshakes off the accept loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Error;

/// The certificate file in a certificate directory.
pub const CERT_FILE: &str = "tls.crt";
/// The private key file in a certificate directory.
pub const KEY_FILE: &str = "tls.key";

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum Certificate {
    /// `tls.crt` (the chain, leaf first) and `tls.key` in this directory. The files are read again
    /// when they change (a rotated Secret or service-serving certificate), checked every
    /// [`RELOAD_CHECK`].
    Directory(PathBuf),
    /// A self-signed certificate made at start for these DNS names and IP addresses.
    SelfSigned(Vec<String>),
}

/// How often a certificate directory is checked for new files.
pub const RELOAD_CHECK: Duration = Duration::from_secs(60);

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the current certificate; [`Certificate::Directory`] swaps it when the files change.
#[derive(Debug)]
struct CurrentCertificate(std::sync::RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(current.clone())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| e.to_string())
}

/// Reads `tls.crt` and `tls.key` from `directory`.
fn read_directory(directory: &Path) -> Result<CertifiedKey, String> {
    let cert_path = directory.join(CERT_FILE);
    let key_path = directory.join(KEY_FILE);
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
    certified_key(chain, key)
        .map_err(|e| format!("{} and {}: {e}", cert_path.display(), key_path.display()))
}

/// A fresh self-signed certificate for `names`.
fn self_signed(names: &[String]) -> Result<CertifiedKey, String> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    certified_key(vec![generated.cert.der().clone()], key.into())
}

/// The modification times of a directory's certificate files (to notice a rotation).
fn modified(directory: &Path) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let time = |file: &str| std::fs::metadata(directory.join(file)).and_then(|m| m.modified());
    Some((time(CERT_FILE).ok()?, time(KEY_FILE).ok()?))
}

/// The rustls configuration for `certificate`, and the certificate chain served (for clients in tests
/// that trust a self-signed certificate).
pub(crate) fn server_config(
    certificate: &Certificate,
) -> Result<(Arc<rustls::ServerConfig>, Vec<CertificateDer<'static>>), Error> {
    let key = match certificate {
        Certificate::Directory(directory) => read_directory(directory),
        Certificate::SelfSigned(names) => self_signed(names),
    }
    .map_err(Error::Tls)?;
    let chain = key.cert.clone();
    let current = Arc::new(CurrentCertificate(std::sync::RwLock::new(Arc::new(key))));
    if let Certificate::Directory(directory) = certificate {
        tokio::spawn(reload_on_change(directory.clone(), current.clone()));
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(current);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), chain))
}

/// Checks the directory every [`RELOAD_CHECK`] and serves the new files once both read well; a
/// broken pair is logged and the old certificate kept. Ends with the server.
async fn reload_on_change(directory: PathBuf, current: Arc<CurrentCertificate>) {
    let mut seen = modified(&directory);
    let mut ticks = tokio::time::interval(RELOAD_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if Arc::strong_count(&current) == 1 {
            return;
        }
        seen = reload_if_changed(&directory, &current, seen);
    }
}

type Modified = Option<(std::time::SystemTime, std::time::SystemTime)>;

/// Reads the files again when their modification times differ from `seen`; returns the times of
/// what is served now (unchanged when the new files do not read, so they are tried again later).
fn reload_if_changed(directory: &Path, current: &CurrentCertificate, seen: Modified) -> Modified {
    let now = modified(directory);
    if now == seen {
        return seen;
    }
    match read_directory(directory) {
        Ok(key) => {
            *current
                .0
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
            tracing::info!(directory = %directory.display(), "serving the renewed metrics certificate");
            now
        }
        Err(message) => {
            tracing::error!("keeping the metrics certificate: {message}");
            seen
        }
    }
}

/// Accepts TCP connections and hands on those whose TLS handshake completed, so that a slow or
/// silent client delays nobody else.
pub(crate) struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, handshaken) = mpsc::channel(16);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), sender));
        Ok(TlsListener {
            handshaken,
            local_addr,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = sender.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning, as axum does.
                tracing::debug!("accepting a metrics connection failed: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, "TLS handshake failed: {error}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this receiver is gone: never reached while serving.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a fresh pair dated `at` seconds after the epoch (file times are coarse: two writes in
    /// a row can share one).
    fn write_pair(directory: &Path, name: &str, at: u64) -> CertificateDer<'static> {
        let generated =
            rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("certificate");
        std::fs::write(directory.join(CERT_FILE), generated.cert.pem()).expect("tls.crt");
        std::fs::write(
            directory.join(KEY_FILE),
            generated.signing_key.serialize_pem(),
        )
        .expect("tls.key");
        date(directory, at);
        generated.cert.der().clone()
    }

    fn date(directory: &Path, at: u64) {
        let time = std::time::UNIX_EPOCH + Duration::from_secs(at);
        for file in [CERT_FILE, KEY_FILE] {
            let opened = std::fs::File::options()
                .write(true)
                .open(directory.join(file));
            opened.and_then(|f| f.set_modified(time)).expect("dated");
        }
    }

    fn served(current: &CurrentCertificate) -> CertificateDer<'static> {
        let key = current.0.read().expect("lock").clone();
        key.cert[0].clone()
    }

    #[test]
    fn a_rotated_certificate_is_served_and_a_broken_one_is_not() {
        let directory =
            std::env::temp_dir().join(format!("fieldwise-tls-reload-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("directory");
        let first = write_pair(&directory, "first.example", 1_000);
        let current = CurrentCertificate(std::sync::RwLock::new(Arc::new(
            read_directory(&directory).expect("first pair reads"),
        )));
        let seen = modified(&directory);
        assert_eq!(
            reload_if_changed(&directory, &current, seen),
            seen,
            "nothing changed"
        );
        assert_eq!(served(&current), first);

        let second = write_pair(&directory, "second.example", 2_000);
        let seen = reload_if_changed(&directory, &current, seen);
        assert_eq!(served(&current), second, "the rotated pair is served");

        // A half-written rotation (a key that is not PEM) keeps the pair being served.
        std::fs::write(directory.join(KEY_FILE), "not a key").expect("tls.key");
        date(&directory, 3_000);
        let kept = reload_if_changed(&directory, &current, seen);
        assert_eq!(kept, seen, "tried again at the next check");
        assert_eq!(served(&current), second);
        let _ = std::fs::remove_dir_all(directory);
    }
}
