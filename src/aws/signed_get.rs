//! GETs of SNS-hosted files (signing certificates, SubscribeURLs): from the real URL, or — when an emulator is
//! configured — from the emulator endpoint with the same path and query, SigV4-signed for service `sns` as an
//! SDK call to the emulator would be (moto routes only signed requests to its SNS backend).

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// Largest body accepted from such a GET.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// How a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Network, timeout, or a 5xx answer: worth trying again later.
    #[error("{0}")]
    Failed(String),
    /// The host answered that the file is not there (or not for us): a 4xx, which a retry will not change.
    #[error("GET answered {0}")]
    Refused(u16),
    /// The body is larger than the limit.
    #[error("the answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// Where SNS-hosted files are fetched from.
#[derive(Clone, Debug)]
pub struct SnsFetcher {
    http: reqwest::Client,
    emulator: Option<Emulator>,
}

#[derive(Clone, Debug)]
struct Emulator {
    endpoint: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
}

impl SnsFetcher {
    /// A fetcher with short timeouts and no redirects; in emulator mode (`aws.endpoint_url`), requests go to the
    /// emulator and are signed with the SDK's credentials.
    pub fn new(sdk: &SdkConfig, emulator_endpoint: Option<&str>) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|err| FetchError::Failed(format!("cannot build the HTTP client: {err}")))?;
        let emulator = emulator_endpoint.map(|endpoint| Emulator {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            credentials: sdk.credentials_provider(),
        });
        Ok(Self { http, emulator })
    }

    /// Whether requests go to an emulator instead of AWS.
    pub fn is_emulated(&self) -> bool {
        self.emulator.is_some()
    }

    /// GETs `url` (already checked against the SNS URL policy); `path_and_query` is its path and query,
    /// used to address the emulator. Returns the body when the answer is 200.
    pub async fn get(&self, url: &str, path_and_query: &str) -> Result<Vec<u8>, FetchError> {
        let request = match &self.emulator {
            None => self.http.get(url),
            Some(emulator) => {
                let target = format!("{}{path_and_query}", emulator.endpoint);
                let mut request = self.http.get(&target);
                for (name, value) in emulator.sign(&target).await? {
                    request = request.header(name, value);
                }
                request
            }
        };
        let mut response = request
            .send()
            .await
            .map_err(|err| FetchError::Failed(format!("GET failed: {err}")))?;
        let status = response.status();
        // A host that throttles (429) or timed the request out (408) may answer the next one: not a refusal.
        let transient = matches!(
            status,
            reqwest::StatusCode::TOO_MANY_REQUESTS | reqwest::StatusCode::REQUEST_TIMEOUT
        );
        if status.is_client_error() && !transient {
            return Err(FetchError::Refused(status.as_u16()));
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Failed(format!("GET answered {status}")));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| FetchError::Failed(format!("reading the answer failed: {err}")))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl Emulator {
    /// SigV4 headers for a GET of `url`, scoped to service `sns`.
    async fn sign(&self, url: &str) -> Result<Vec<(&'static str, String)>, FetchError> {
        let failed =
            |what: &str, err: &dyn std::fmt::Display| FetchError::Failed(format!("{what}: {err}"));
        let Some(provider) = &self.credentials else {
            return Err(FetchError::Failed(
                "no AWS credentials to sign the emulator request".into(),
            ));
        };
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|err| failed("no AWS credentials", &err))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sns")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|err| failed("cannot sign", &err))?
            .into();
        let signable =
            SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
                .map_err(|err| failed("cannot sign", &err))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|err| failed("cannot sign", &err))?
            .into_parts();
        let (headers, _) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|header| (header.name(), header.value().to_owned()))
            .collect())
    }
}
