//! Signing certificates by URL: pinned files, a fixed certificate, or fetched — through a bounded, expiring
//! cache that lets only one fetch per URL be in flight, however many messages arrive at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::OnceCell;

use super::{CertUrl, SigningCert, SnsError};
use crate::aws::{FetchError, SnsFetcher};

/// Most certificate URLs kept; SNS uses a handful at a time.
const CACHE_CAPACITY: usize = 64;
/// How long a fetched certificate is trusted before it is fetched again.
const CACHE_TTL: Duration = Duration::from_secs(6 * 3600);
/// How long a failed load is remembered: requests naming the same URL meanwhile fail at once instead of each
/// trying (and waiting on) the fetch again.
const FAILURE_TTL: Duration = Duration::from_secs(10);

/// Where certificates come from.
#[derive(Debug)]
pub enum CertSource {
    /// Fetched from the SigningCertURL (or the emulator), after the URL policy passed.
    Fetch(SnsFetcher),
    /// Read from `<dir>/<file name of the URL>`: for hosts without outbound access; nothing is fetched.
    Pinned(PathBuf),
    /// One certificate for every URL (offline verification with `--cert`); the URL policy still applies.
    Fixed(Arc<SigningCert>),
}

#[derive(Debug)]
struct Entry {
    created: Instant,
    cell: Arc<Slot>,
}

/// One URL's certificate, once loaded, and its last failed load.
#[derive(Debug, Default)]
struct Slot {
    cert: OnceCell<Arc<SigningCert>>,
    failed: Mutex<Option<(Instant, SnsError)>>,
}

impl Slot {
    /// The last failure, while it is recent.
    fn recent_failure(&self) -> Option<SnsError> {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FAILURE_TTL)
            .map(|(_, err)| err.clone())
    }
}

/// The certificate cache and its counters.
#[derive(Debug)]
pub struct CertStore {
    source: CertSource,
    cache: Mutex<HashMap<String, Entry>>,
    loads: Counter,
    hits: Counter,
}

impl CertStore {
    /// A store over `source` with counters of its own.
    pub fn new(source: CertSource) -> Self {
        Self::counted(source, Counter::default(), Counter::default())
    }

    /// A store over `source` that counts cache hits and loads in the given (exported) counters.
    pub fn counted(source: CertSource, hits: Counter, loads: Counter) -> Self {
        Self {
            source,
            cache: Mutex::new(HashMap::new()),
            loads,
            hits,
        }
    }

    /// The certificate for `url`, from the cache or loaded once for all concurrent callers.
    pub async fn get(&self, url: &CertUrl) -> Result<Arc<SigningCert>, SnsError> {
        if let CertSource::Fixed(cert) = &self.source {
            return Ok(Arc::clone(cert));
        }
        let slot = self.cell(url);
        if let Some(cert) = slot.cert.get() {
            self.hits.inc();
            return Ok(Arc::clone(cert));
        }
        if let Some(err) = slot.recent_failure() {
            return Err(err);
        }
        slot.cert
            .get_or_try_init(|| async {
                // Waiters queued behind a failed load see its failure instead of loading again.
                if let Some(err) = slot.recent_failure() {
                    return Err(err);
                }
                self.loads.inc();
                let loaded = self.load(url).await.map(Arc::new);
                if let Err(err) = &loaded {
                    *slot.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((Instant::now(), err.clone()));
                }
                loaded
            })
            .await
            .map(Arc::clone)
    }

    /// How many times a certificate was loaded (fetched or read), for tests and metrics.
    pub fn loads(&self) -> u64 {
        self.loads.get()
    }

    /// How many lookups were answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    fn cell(&self, url: &CertUrl) -> Arc<Slot> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if let Some(entry) = cache.get(url.as_str())
            && now.duration_since(entry.created) < CACHE_TTL
        {
            return Arc::clone(&entry.cell);
        }
        cache.retain(|_, entry| now.duration_since(entry.created) < CACHE_TTL);
        if cache.len() >= CACHE_CAPACITY
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, entry)| entry.created)
                .map(|(key, _)| key.clone())
        {
            cache.remove(&oldest);
        }
        let cell = Arc::new(Slot::default());
        cache.insert(
            url.as_str().to_owned(),
            Entry {
                created: now,
                cell: Arc::clone(&cell),
            },
        );
        cell
    }

    async fn load(&self, url: &CertUrl) -> Result<SigningCert, SnsError> {
        let pem = match &self.source {
            CertSource::Fixed(cert) => return Ok(SigningCert::clone(cert)),
            CertSource::Pinned(dir) => {
                let path = dir.join(url.file_name());
                tokio::fs::read(&path).await.map_err(|err| {
                    SnsError::CertificateRejected(format!(
                        "no pinned certificate {} in sns.cert_dir: {err}",
                        path.display()
                    ))
                })?
            }
            CertSource::Fetch(fetcher) => fetcher
                .get(url.as_str(), url.path_and_query())
                .await
                .map_err(|err| match err {
                    FetchError::TooLarge | FetchError::Refused(_) => {
                        SnsError::CertificateRejected(format!("{}: {err}", url.as_str()))
                    }
                    FetchError::Failed(reason) => {
                        SnsError::CertificateUnavailable(format!("{}: {reason}", url.as_str()))
                    }
                })?,
        };
        SigningCert::from_pem(&pem)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::aws::SnsFetcher;

    /// A loopback HTTP server answering every request with `status` after `delay`; counts the requests.
    async fn server(status: &'static str, delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        (endpoint, count)
    }

    fn store(endpoint: &str) -> CertStore {
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "test",
            )))
            .build();
        CertStore::new(CertSource::Fetch(
            SnsFetcher::new(&sdk, Some(endpoint)).unwrap(),
        ))
    }

    fn url() -> CertUrl {
        CertUrl::parse("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem")
            .unwrap()
    }

    /// Twenty concurrent lookups of the same URL; their error codes.
    async fn many_gets(store: CertStore) -> Vec<&'static str> {
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.get(&url()).await.map(|_| ()) })
            })
            .collect();
        let mut codes = Vec::new();
        for task in tasks {
            codes.push(task.await.unwrap().unwrap_err().code());
        }
        codes
    }

    #[tokio::test]
    async fn a_missing_certificate_is_a_permanent_rejection_fetched_once() {
        let (endpoint, requests) = server("404 Not Found", Duration::ZERO).await;
        let codes = many_gets(store(&endpoint)).await;
        assert!(
            codes.iter().all(|code| *code == "certificate-rejected"),
            "{codes:?}"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_throttling_host_is_transient_so_sns_sends_again() {
        for status in ["429 Too Many Requests", "408 Request Timeout"] {
            let (endpoint, _) = server(status, Duration::ZERO).await;
            let codes = many_gets(store(&endpoint)).await;
            assert!(
                codes.iter().all(|code| *code == "certificate-unavailable"),
                "{status}: {codes:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_failing_host_is_transient_and_waiters_fail_fast_behind_one_fetch() {
        let (endpoint, requests) =
            server("503 Service Unavailable", Duration::from_millis(200)).await;
        let codes = many_gets(store(&endpoint)).await;
        assert!(
            codes.iter().all(|code| *code == "certificate-unavailable"),
            "{codes:?}"
        );
        // One fetch for all twenty: the waiters queued behind it failed with its answer.
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }
}
