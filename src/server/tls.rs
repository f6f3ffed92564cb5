//! HTTPS: the certificate and key from `server.tls_cert` / `server.tls_key`, swapped in place when the files
//! change or on SIGHUP, so a renewal never needs a restart and never drops a connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM item of the expected kind.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The key does not fit the certificate, or the provider cannot use it.
    #[error("{cert} with {key}: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
}

/// Hands rustls the current certificate; reloads replace it for the handshakes that follow.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

impl ReloadingCert {
    /// Loads the pair once; an error here stops start-up with the file named.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = read_pair(cert_path, key_path, &provider)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads the files again and, when they hold a usable pair, serves it from the next handshake on.
    /// A broken pair (say, a certificate written before its key) keeps the previous one in service.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read_pair(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// The acceptor for incoming connections (HTTP/1.1 over TLS 1.2 or 1.3).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads when either file's modification time or size changes (checked every `every`; never when
    /// zero) and on each SIGHUP. Runs until the returned task is aborted.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        // Registered before the task runs, so a SIGHUP right after start-up is never the default (exit).
        let mut hangup = hangup_signal();
        tokio::spawn(async move {
            let mut seen = this.stamp();
            let mut tick = (!every.is_zero()).then(|| tokio::time::interval(every));
            loop {
                let cause = tokio::select! {
                    () = next_tick(&mut tick) => {
                        let now = this.stamp();
                        if now == seen {
                            continue;
                        }
                        seen = now;
                        "the certificate files changed"
                    }
                    () = next_hangup(&mut hangup) => {
                        seen = this.stamp();
                        "SIGHUP"
                    }
                };
                match this.reload() {
                    Ok(()) => {
                        tracing::info!(cause, cert = %this.cert_path.display(), "TLS certificate reloaded")
                    }
                    Err(err) => {
                        tracing::error!(cause, error = %err, "TLS certificate not reloaded; the previous one stays in service");
                    }
                }
            }
        })
    }

    /// Without TLS, SIGHUP (say, `systemctl reload`) must not take the default action, which ends the
    /// process: it is logged and otherwise ignored. Runs until the returned task is aborted.
    pub fn ignore_hangups() -> tokio::task::JoinHandle<()> {
        let mut hangup = hangup_signal();
        tokio::spawn(async move {
            loop {
                next_hangup(&mut hangup).await;
                tracing::info!("SIGHUP: plain HTTP, no TLS certificate to reload");
            }
        })
    }

    fn stamp(&self) -> [Option<(SystemTime, u64)>; 2] {
        [&self.cert_path, &self.key_path].map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
    }
}

fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, problem: String| TlsError::File {
        path: path.to_owned(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|err| file_error(cert_path, format!("not a PEM certificate chain ({err})")))?;
    if chain.is_empty() {
        return Err(file_error(cert_path, "holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|err| file_error(key_path, format!("not a PEM private key ({err})")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    })
}

async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(tick) => {
            tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|err| tracing::warn!(error = %err, "cannot listen for SIGHUP; certificate reloads only on file change"))
        .ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) {
    if let Some(signal) = hangup
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

#[cfg(not(unix))]
async fn next_hangup(_hangup: &mut Hangup) {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn write(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        (cert_path, key_path)
    }

    #[test]
    fn loads_a_matching_pair_and_refuses_a_key_of_another_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let (cert_path, key_path) = write(dir.path(), &cert, &key);
        let tls = ReloadingCert::load(&cert_path, &key_path).unwrap();
        assert!(tls.acceptor().is_ok());

        let (_, other_key) = pair();
        write(dir.path(), &cert, &other_key);
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::Pair { .. }), "{err}");
        let err = ReloadingCert::load(&cert_path, &key_path).unwrap_err();
        assert!(matches!(err, TlsError::Pair { .. }), "{err}");
    }

    #[test]
    fn refuses_files_that_are_not_pem_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let (cert_path, key_path) = write(dir.path(), "not a certificate", &key);
        let err = ReloadingCert::load(&cert_path, &key_path).unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
        write(dir.path(), &cert, "not a key");
        let err = ReloadingCert::load(&cert_path, &key_path).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
    }
}
