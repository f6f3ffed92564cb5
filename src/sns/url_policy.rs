//! Which URLs in a message reflex will ever fetch: only `https://sns.<region>.amazonaws.com[.cn]/...` in the exact
//! shapes SNS uses. Checked before any fetch, because the URL fields are not covered by the signature.

use url::Url;

use super::SnsError;

/// A SigningCertURL that passed the policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertUrl {
    url: Url,
    file_name: String,
}

impl CertUrl {
    /// Accepts only `https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-<hex>.pem`, with no
    /// userinfo, port, query or fragment.
    pub fn parse(raw: &str) -> Result<Self, SnsError> {
        let reject = |reason: &str| SnsError::UntrustedUrl {
            field: "SigningCertURL",
            reason: reason.to_owned(),
        };
        let url = strict_sns_url(raw).map_err(|reason| reject(&reason))?;
        if url.query().is_some() {
            return Err(reject("a query is not allowed"));
        }
        let file_name = url
            .path()
            .strip_prefix('/')
            .filter(|name| is_cert_file_name(name))
            .ok_or_else(|| reject("the path must be /SimpleNotificationService-<hex>.pem"))?
            .to_owned();
        Ok(Self { url, file_name })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The path and query, for fetching the same file from an emulator endpoint.
    pub fn path_and_query(&self) -> &str {
        &self.url[url::Position::BeforePath..]
    }

    /// `SimpleNotificationService-<hex>.pem`: the name of a pinned certificate file.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The region of the SNS host, which must be the topic's.
    pub fn region(&self) -> &str {
        region_of(&self.url)
    }
}

/// `<region>` of an accepted `sns.<region>.amazonaws.com[.cn]` host.
fn region_of(url: &Url) -> &str {
    url.host_str()
        .and_then(|host| host.strip_prefix("sns."))
        .and_then(|rest| rest.split('.').next())
        .unwrap_or_default()
}

/// A SubscribeURL that passed the policy: an SNS host, path `/`, `Action=ConfirmSubscription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeUrl(Url);

impl SubscribeUrl {
    /// Accepts only `https://sns.<region>.amazonaws.com[.cn]/?Action=ConfirmSubscription&...`.
    pub fn parse(raw: &str) -> Result<Self, SnsError> {
        let reject = |reason: &str| SnsError::UntrustedUrl {
            field: "SubscribeURL",
            reason: reason.to_owned(),
        };
        let url = strict_sns_url(raw).map_err(|reason| reject(&reason))?;
        if url.path() != "/" {
            return Err(reject("the path must be /"));
        }
        let actions: Vec<_> = url.query_pairs().filter(|(k, _)| k == "Action").collect();
        if actions.len() != 1 || actions[0].1 != "ConfirmSubscription" {
            return Err(reject(
                "the query must carry Action=ConfirmSubscription exactly once",
            ));
        }
        Ok(Self(url))
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The path and query, for the same request to an emulator endpoint.
    pub fn path_and_query(&self) -> &str {
        &self.0[url::Position::BeforePath..]
    }

    /// The region of the SNS host, which must be the topic's.
    pub fn region(&self) -> &str {
        region_of(&self.0)
    }
}

/// Parses `raw` and checks the parts shared by both URL kinds. The re-serialised URL must equal the input, so
/// no normalisation (a default `:443`, an encoded host, backslashes, userinfo) can slip through.
fn strict_sns_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|err| format!("not a URL ({err})"))?;
    if url.scheme() != "https" {
        return Err("the scheme must be https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("userinfo is not allowed".into());
    }
    if url.fragment().is_some() {
        return Err("a fragment is not allowed".into());
    }
    let host = url.host_str().unwrap_or_default();
    if !is_sns_host(host) {
        return Err(format!(
            "host {host:?} is not sns.<region>.amazonaws.com[.cn]"
        ));
    }
    if url.as_str() != raw || raw.contains(&format!("{host}:")) {
        return Err("a port or a non-canonical form is not allowed".into());
    }
    Ok(url)
}

fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    region.is_some_and(is_region)
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`: lowercase words and a final number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn is_cert_file_name(name: &str) -> bool {
    name.strip_prefix("SimpleNotificationService-")
        .and_then(|rest| rest.strip_suffix(".pem"))
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem";

    #[test]
    fn accepts_genuine_certificate_urls() {
        for url in [
            GOOD,
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc123.pem",
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-ABC.pem",
        ] {
            let parsed = CertUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(parsed.file_name().starts_with("SimpleNotificationService-"));
        }
        assert_eq!(
            CertUrl::parse(GOOD).unwrap().path_and_query(),
            "/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
        );
    }

    #[test]
    fn rejects_every_trick() {
        for url in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem",
            "https://evil.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-abc.pem",
            "https://user:pw@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://evil.com#@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem#frag",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem",
            "https://sns.us-east-1.amazonaws.com/a/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/../SimpleNotificationService-abc.pem",
            "https://SNS.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.evil.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sqs.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com\\@evil.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com./SimpleNotificationService-abc.pem",
            " https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "file:///etc/passwd",
            "",
        ] {
            assert!(
                matches!(CertUrl::parse(url), Err(SnsError::UntrustedUrl { .. })),
                "{url:?} must be rejected"
            );
        }
    }

    #[test]
    fn subscribe_urls_must_confirm_on_an_sns_host() {
        let good = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:t&Token=abc";
        assert!(SubscribeUrl::parse(good).is_ok());
        for bad in [
            "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&Token=abc",
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Action=Publish",
            "https://sns.us-west-2.amazonaws.com/x?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com.evil.com/?Action=ConfirmSubscription",
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com:444/?Action=ConfirmSubscription",
        ] {
            assert!(SubscribeUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
