//! What a failed SDK call means for the engine: transient, permanent or not found.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::engine::port::{FailureKind, FleetError};

/// Error codes AWS uses for throttling: a 4xx answer that is worth retrying.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "SlowDown",
    "EC2ThrottledException",
];

/// Classifies a failed SDK call for the engine. Transient: no answer (network, timeout), throttling, a 5xx.
/// Permanent: any other answer of the service (AccessDenied, UnauthorizedOperation, validation), and a request
/// the SDK could not even build. `not_found` names the codes that mean the target itself does not exist.
pub(super) fn classify<E>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
    not_found: &[&str],
) -> FleetError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let mut code = err.code().map(str::to_owned);
    let kind = match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            // An answer whose error code could not be read is still told apart by its status.
            code.get_or_insert_with(|| format!("HTTP {status}"));
            match code.as_deref() {
                Some(code) if not_found.contains(&code) => FailureKind::NotFound,
                Some(code) if THROTTLING_CODES.contains(&code) => FailureKind::Transient,
                _ if status >= 500 || status == 429 => FailureKind::Transient,
                _ => FailureKind::Permanent,
            }
        }
        SdkError::ConstructionFailure(_) => FailureKind::Permanent,
        _ => FailureKind::Transient,
    };
    FleetError::new(kind, operation, code, DisplayErrorContext(err).to_string())
}
