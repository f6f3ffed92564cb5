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
    cell: Arc<OnceCell<Arc<SigningCert>>>,
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
        let cell = self.cell(url);
        if let Some(cert) = cell.get() {
            self.hits.inc();
            return Ok(Arc::clone(cert));
        }
        cell.get_or_try_init(|| async {
            self.loads.inc();
            self.load(url).await.map(Arc::new)
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

    fn cell(&self, url: &CertUrl) -> Arc<OnceCell<Arc<SigningCert>>> {
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
        let cell = Arc::new(OnceCell::new());
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
                    FetchError::TooLarge => SnsError::CertificateRejected(err.to_string()),
                    FetchError::Failed(reason) => {
                        SnsError::CertificateUnavailable(format!("{}: {reason}", url.as_str()))
                    }
                })?,
        };
        SigningCert::from_pem(&pem)
    }
}
