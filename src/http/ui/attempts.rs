//! Login attempts to the audit page, limited per source address and per token prefix: a handful a minute
//! each, so that tokens cannot be guessed online from one address or by spreading one guess over many.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Attempts allowed at once, per key.
const BURST: f64 = 10.0;
/// Attempts allowed again per second, per key (10 a minute).
const PER_SEC: f64 = 10.0 / 60.0;
/// Keys remembered at most. Past it, keys whose buckets are full again (idle for a minute) are forgotten; while
/// it is still full, an attempt under a key not yet remembered is refused: a flood of addresses can neither fill
/// memory nor wipe the buckets of the keys that are being limited.
const MAX_KEYS: usize = 10_000;

/// The buckets of login attempts.
#[derive(Debug, Default)]
pub struct LoginAttempts {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl LoginAttempts {
    /// Whether an attempt from `source` (the caller's address; an IPv6 one counts by its /64) with a token
    /// starting like `token` may be checked now; it takes one attempt from the source's bucket, then (only when
    /// that allowed it) one from the token prefix's.
    pub fn allow(&self, source: &str, token: &str) -> bool {
        let prefix: String = token.chars().take(4).collect();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, bucket| refilled(*bucket, now) < BURST);
        }
        [
            format!("source:{}", bucket_of(source)),
            format!("token:{prefix}"),
        ]
        .into_iter()
        .all(|key| take(&mut buckets, key, now))
    }

    /// How many keys are remembered.
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// The attempts `bucket` holds at `now`, refilled since it was last taken from.
fn refilled((tokens, last): (f64, Instant), now: Instant) -> f64 {
    (tokens + now.duration_since(last).as_secs_f64() * PER_SEC).min(BURST)
}

/// Takes one attempt from the bucket of `key` (made full when new, unless the memory is full: then refused).
fn take(buckets: &mut HashMap<String, (f64, Instant)>, key: String, now: Instant) -> bool {
    if !buckets.contains_key(&key) && buckets.len() >= MAX_KEYS {
        return false;
    }
    let bucket = buckets.entry(key).or_insert((BURST, now));
    let tokens = refilled(*bucket, now);
    let allowed = tokens >= 1.0;
    *bucket = (if allowed { tokens - 1.0 } else { tokens }, now);
    allowed
}

/// The bucket an address counts in: an IPv4 address alone, an IPv6 address by its /64 (one host holds a whole
/// /64, so that each of its addresses is not a bucket of its own).
fn bucket_of(address: &str) -> String {
    let Ok(std::net::IpAddr::V6(v6)) = address.parse::<std::net::IpAddr>() else {
        return address.to_owned();
    };
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The address part of a caller (`IP:PORT`, `[IPv6]:PORT`, or an address alone; behind a trusted proxy, the
/// client's address before ` (via PROXY:PORT)`).
pub fn address_of(caller: &str) -> &str {
    let caller = caller
        .split_once(" (via ")
        .map_or(caller, |(client, _)| client);
    if caller.parse::<std::net::IpAddr>().is_ok() {
        return caller;
    }
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
    fn the_addresses_of_one_ipv6_64_share_a_bucket() {
        let attempts = LoginAttempts::default();
        let allowed = (0..30)
            .filter(|n| attempts.allow(&format!("2001:db8:1:2::{n:x}"), &format!("g{n:03}")))
            .count();
        assert_eq!(allowed, 10);
        assert!(attempts.allow("2001:db8:1:3::1", "zzzz"), "another /64");
    }

    #[test]
    fn a_flood_of_new_keys_neither_resets_a_limited_source_nor_grows_past_the_memory() {
        let attempts = LoginAttempts::default();
        let allowed = (0..20)
            .filter(|n| attempts.allow("10.0.0.1", &format!("g{n:03}")))
            .count();
        assert_eq!(allowed, 10);
        // Refused attempts remember no token prefix.
        let keys = attempts.keys();
        assert!(!attempts.allow("10.0.0.1", "new-prefix"));
        assert_eq!(attempts.keys(), keys);
        // Thousands of addresses, each with a token prefix of its own, fill the memory.
        for n in 0..MAX_KEYS {
            let source = format!("10.{}.{}.{}", 1 + n / 65_536, (n / 256) % 256, n % 256);
            attempts.allow(&source, &format!("{n:04x}"));
        }
        assert!(attempts.keys() <= MAX_KEYS);
        assert!(!attempts.allow("10.0.0.1", "g100"), "still limited");
    }

    #[test]
    fn the_address_of_a_caller_drops_its_port() {
        assert_eq!(address_of("127.0.0.1:4242"), "127.0.0.1");
        assert_eq!(address_of("[::1]:4242"), "::1");
        assert_eq!(address_of("10.0.0.9"), "10.0.0.9");
        // Behind a trusted proxy, the client's address, whatever port the proxy's connection came from.
        assert_eq!(
            address_of("203.0.113.7 (via 10.0.0.2:51234)"),
            "203.0.113.7"
        );
        assert_eq!(
            address_of("2001:db8::1 (via 10.0.0.2:40000)"),
            "2001:db8::1"
        );
    }
}
