//! A TCP relay on loopback that holds every chunk a client sends for a while before passing it on: it makes
//! each AWS call to the real moto server slow, so a remediation is still running when a test needs it to be.
//! Switched to failing, it drops every connection at once, as an unreachable AWS endpoint would. It forwards
//! bytes unchanged; it knows nothing of the AWS API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::fault_relay::{Fate, Relay};

/// The relay; it stops when dropped.
pub struct SlowProxy {
    /// `http://127.0.0.1:PORT`, to use as `aws.endpoint_url`.
    pub endpoint: String,
    failing: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    _relay: Relay,
}

impl SlowProxy {
    /// Relays to the `http://HOST:PORT` endpoint `upstream`, delaying each client chunk by `delay`.
    pub async fn start(upstream: &str, delay: Duration) -> Self {
        let failing = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (fail, count) = (Arc::clone(&failing), Arc::clone(&connections));
        let relay = Relay::start(upstream, move || {
            count.fetch_add(1, Ordering::SeqCst);
            if fail.load(Ordering::SeqCst) {
                Fate::Drop
            } else {
                Fate::Relay(delay)
            }
        })
        .await;
        Self {
            endpoint: relay.endpoint.clone(),
            failing,
            connections,
            _relay: relay,
        }
    }

    /// Relays to `upstream`, holding each chunk of every answer for `delay`: a request reaches AWS at once,
    /// and its caller hears of it late.
    pub async fn holding_replies(upstream: &str, delay: Duration) -> Self {
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        let relay = Relay::start(upstream, move || {
            count.fetch_add(1, Ordering::SeqCst);
            Fate::HoldReplies(delay)
        })
        .await;
        Self {
            endpoint: relay.endpoint.clone(),
            failing: Arc::new(AtomicBool::new(false)),
            connections,
            _relay: relay,
        }
    }

    /// From now on, drops every new connection at once (`true`), or relays again (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Connections accepted so far (each AWS client connection, relayed or dropped).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
