//! A TCP relay on loopback in front of the real moto server that, while switched on, gives each new connection
//! one fault: slow (each client chunk held a while), dropped (closed at once, nothing reaches AWS), or throttled
//! (answered `429 Too Many Requests` without reaching AWS); the other connections are relayed unchanged. It
//! knows HTTP only as far as writing that one answer; it knows nothing of the AWS API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a slow connection holds each chunk.
const SLOW: Duration = Duration::from_millis(700);

/// What a connection got.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub relayed: AtomicU64,
    pub slow: AtomicU64,
    pub dropped: AtomicU64,
    pub throttled: AtomicU64,
}

/// The relay; it stops when dropped.
pub struct FaultRelay {
    /// `http://127.0.0.1:PORT`, to use as `aws.endpoint_url`.
    pub endpoint: String,
    /// Connections by what they got.
    pub counts: Arc<FaultCounts>,
    faulty: Arc<AtomicBool>,
    _relay: Relay,
}

impl FaultRelay {
    /// Relays to the `http://HOST:PORT` endpoint `upstream`; faults are off until `faults(true)`. `seed` makes
    /// the choice of faults repeatable.
    pub async fn start(upstream: &str, seed: u64) -> Self {
        let faulty = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FaultCounts::default());
        let (on, count) = (Arc::clone(&faulty), Arc::clone(&counts));
        let mut state = seed | 1;
        let relay = Relay::start(upstream, move || {
            // xorshift64: enough to spread the faults, repeatable from the seed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (counter, fate) = match (on.load(Ordering::SeqCst), state % 100) {
                (true, 0..10) => (&count.dropped, Fate::Drop),
                (true, 10..20) => (&count.throttled, Fate::Throttle),
                (true, 20..35) => (&count.slow, Fate::Relay(SLOW)),
                _ => (&count.relayed, Fate::Relay(Duration::ZERO)),
            };
            counter.fetch_add(1, Ordering::SeqCst);
            fate
        })
        .await;
        Self {
            endpoint: relay.endpoint.clone(),
            counts,
            faulty,
            _relay: relay,
        }
    }

    /// Switches the faults on or off (new connections only).
    pub fn faults(&self, on: bool) {
        self.faulty.store(on, Ordering::SeqCst);
    }
}

/// What one accepted connection gets.
pub(crate) enum Fate {
    /// Relayed, each client chunk held this long first.
    Relay(Duration),
    /// Relayed, each chunk of the upstream's answer held this long first: the request arrives at once, its
    /// answer late.
    HoldReplies(Duration),
    /// Closed at once: nothing reaches the upstream.
    Drop,
    /// Answered 429 without reaching the upstream.
    Throttle,
}

/// The accept loop both relays share: each new connection gets the fate `choose` gives it. It stops when
/// dropped.
pub(crate) struct Relay {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port in front of the `http://IP:PORT` endpoint `upstream`.
    pub(crate) async fn start(
        upstream: &str,
        mut choose: impl FnMut() -> Fate + Send + 'static,
    ) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream is http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                match choose() {
                    Fate::Drop => drop(client),
                    Fate::Throttle => drop(tokio::spawn(throttle(client))),
                    Fate::Relay(delay) => {
                        drop(tokio::spawn(relay(client, upstream, delay, Duration::ZERO)));
                    }
                    Fate::HoldReplies(delay) => {
                        drop(tokio::spawn(relay(client, upstream, Duration::ZERO, delay)));
                    }
                }
            }
        });
        Self { endpoint, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the request (its head, then as many bytes as its `content-length` says) and answers it 429, closing
/// the connection.
async fn throttle(mut client: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    let head_end = loop {
        if let Some(at) = seen.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while seen.len() < head_end + length {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let body = "Rate exceeded";
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// Relays one connection to `upstream`, holding each client chunk for `delay` and each chunk of the answer
/// for `reply_delay`.
async fn relay(client: TcpStream, upstream: SocketAddr, delay: Duration, reply_delay: Duration) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let outbound = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let inbound = async move {
        if reply_delay.is_zero() {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        } else {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = server_read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tokio::time::sleep(reply_delay).await;
                if client_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(outbound, inbound);
}
