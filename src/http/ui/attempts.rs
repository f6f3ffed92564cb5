//! Login attempts to the audit page, limited per source address and per token prefix: a handful a minute
//! each, so that tokens cannot be guessed online from one address or by spreading one guess over many.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Attempts allowed at once, per key.
const BURST: f64 = 10.0;
/// Attempts allowed again per second, per key (10 a minute).
const PER_SEC: f64 = 10.0 / 60.0;
/// Keys remembered at most; past it the memory starts afresh (a flood of addresses cannot fill memory).
const MAX_KEYS: usize = 10_000;

/// The buckets of login attempts.
#[derive(Debug, Default)]
pub struct LoginAttempts {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl LoginAttempts {
    /// Whether an attempt from `source` (the caller's address) with a token starting like `token` may be
    /// checked now; each takes one attempt from both buckets.
    pub fn allow(&self, source: &str, token: &str) -> bool {
        let prefix: String = token.chars().take(4).collect();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > MAX_KEYS {
            buckets.clear();
        }
        let now = Instant::now();
        let mut allowed = true;
        for key in [format!("source:{source}"), format!("token:{prefix}")] {
            let (tokens, last) = buckets.entry(key).or_insert((BURST, now));
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * PER_SEC).min(BURST);
            *last = now;
            if *tokens >= 1.0 {
                *tokens -= 1.0;
            } else {
                allowed = false;
            }
        }
        allowed
    }
}

/// The address part of a caller (`IP:PORT`, `[IPv6]:PORT`, or an address alone).
pub fn address_of(caller: &str) -> &str {
    match caller.rsplit_once(':') {
        Some((address, port))
            if port.bytes().all(|b| b.is_ascii_digit()) && !address.is_empty() =>
        {
            address.trim_start_matches('[').trim_end_matches(']')
        }
        _ => caller,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_per_source_and_per_token_prefix() {
        let attempts = LoginAttempts::default();
        let allowed = (0..30)
            .filter(|n| attempts.allow("10.0.0.1", &format!("guess-{n}")))
            .count();
        assert_eq!(allowed, 10, "one address");
        let spread = (0..30)
            .filter(|n| attempts.allow(&format!("10.0.1.{n}"), "abcd-the-same-guess"))
            .count();
        assert_eq!(spread, 10, "one token prefix from many addresses");
        assert!(attempts.allow("10.0.2.1", "zzzz-another"));
    }

    #[test]
    fn the_address_of_a_caller_drops_its_port() {
        assert_eq!(address_of("127.0.0.1:4242"), "127.0.0.1");
        assert_eq!(address_of("[::1]:4242"), "::1");
        assert_eq!(address_of("10.0.0.9"), "10.0.0.9");
    }
}
