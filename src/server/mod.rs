//! Wiring: build the application from a validated config, serve it on a listener, shut down gracefully.

mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::Service as _;

use tls::ReloadingCert;

use crate::audit::{AuditStore, Home, WriterTask};
use crate::aws::{self, Places};
use crate::config::{Config, TargetConfig};
use crate::engine::Engine;
use crate::engine::port::Fleet;
use crate::http::{self, AppShared, AppState};
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::sns::SnsReceiver;
use aws_config::SdkConfig;

/// Everything a running reflex holds: the shared state and the audit writer to drain at shutdown.
#[derive(Debug)]
pub struct App {
    /// The handlers' shared state.
    pub state: AppState,
    writer: WriterTask,
    jobs: Jobs,
}

/// What serves the targets: AWS, each target through its own account and region, or one given fleet for all
/// of them (tests put a fake fleet here).
#[derive(Debug)]
pub enum Fleets {
    /// The AWS SDK: the local account's clients, or those of the role assumed in the target's account.
    Aws,
    /// This fleet, for every target.
    One(Arc<dyn Fleet>),
}

impl App {
    /// Opens the audit store and builds the AWS clients and the engine.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Fleets::Aws).await
    }

    /// Like `build`, with the targets served by `fleets`.
    pub async fn build_with(config: Config, fleets: Fleets) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        if let Some(endpoint) = &config.aws.endpoint_url {
            tracing::warn!(endpoint, "AWS calls go to an EMULATOR endpoint, not to AWS");
        }
        if config.remediation.dry_run {
            tracing::warn!(
                "remediation.dry_run is set: reflex plans and reports but never writes to AWS"
            );
        }
        let (audit, writer) = AuditStore::open(&config.audit.url).await.with_context(|| {
            format!(
                "failed to open the audit store {}",
                crate::audit::redacted(&config.audit.url)
            )
        })?;
        let sdk = aws::sdk_config(&config.aws).await;
        let metrics = Arc::new(Metrics::with_audit_failures(audit.write_failures()));
        let notifier = Notifier::start(&config, Arc::clone(&metrics))?;
        let home = learn_home(&config, &sdk, &audit).await?;
        let places = Places::new(&config, &sdk, Arc::clone(&metrics));
        let fleet_of = |target: &TargetConfig| {
            let fleet = match &fleets {
                Fleets::Aws => places.fleet_of(&config, target),
                Fleets::One(fleet) => Arc::clone(fleet),
            };
            (fleet, config.place_of(target, &home.account))
        };
        let engine = Engine::start_with(
            Arc::clone(&config),
            home.clone(),
            &fleet_of,
            audit.clone(),
            Arc::clone(&metrics),
            notifier.clone(),
            crate::actions::builtin(),
        )
        .await?;
        let engine = Arc::new(engine);
        let jobs = Jobs::new(audit.clone(), Arc::clone(&engine), notifier);
        let in_flight = Arc::new(Semaphore::new(config.server.max_in_flight));
        let reads_in_flight = Arc::new(Semaphore::new(config.server.max_reads_in_flight));
        let sns = SnsReceiver::new(&config, &sdk, &metrics)
            .context("failed to set up SNS verification")?;
        Ok(Self {
            state: AppState::new(AppShared {
                config,
                engine,
                audit,
                sns: Arc::new(sns),
                metrics,
                tasks: tokio_util::task::TaskTracker::new(),
                in_flight,
                reads_in_flight,
                rejections: Arc::default(),
                logins: Arc::default(),
            }),
            writer,
            jobs,
        })
    }

    /// Records what the rejection throttle only counted, commits every audit record handed to the store, then
    /// stops its writer.
    pub async fn close(self) {
        if let Err(err) = self.state.record_suppressed().await {
            tracing::error!(error = %err, "cannot record the suppressed rejections");
        }
        drop(self.state);
        self.writer.finish().await;
    }
}

/// Where reflex runs: the account (`aws.account_id`, else learned once with STS GetCallerIdentity) and
/// `aws.region`, recorded in the store the first time (the home of every row from before targets had an
/// account). Later starts in the same region take the recorded account without waiting for STS, and check it
/// against STS in the background (a mismatch is logged: the credentials now belong to another account). With
/// nothing recorded and STS unreachable, reflex does not start.
pub async fn learn_home(
    config: &Config,
    sdk: &SdkConfig,
    audit: &AuditStore,
) -> anyhow::Result<Home> {
    let recorded = audit.home().await?;
    let account = match (&config.aws.account_id, recorded) {
        (Some(account), _) => account.clone(),
        (None, Some(recorded)) if recorded.region == config.aws.region => {
            let sdk = sdk.clone();
            let expected = recorded.account.clone();
            tokio::spawn(async move {
                match aws::caller_account(&sdk).await {
                    Ok(account) if account == expected => {}
                    Ok(account) => tracing::error!(
                        recorded = expected,
                        credentials = account,
                        "the AWS credentials belong to another account than the one recorded in the audit store"
                    ),
                    Err(err) => tracing::warn!(error = %err, "cannot check the AWS account with STS"),
                }
            });
            recorded.account
        }
        (None, _) => aws::caller_account(sdk).await.context(
            "cannot learn the AWS account reflex runs in (STS GetCallerIdentity); check the credentials and \
             the network, or set aws.account_id",
        )?,
    };
    let learned = Home {
        account,
        region: config.aws.region.clone(),
    };
    let recorded = audit.settle_home(learned.clone()).await?;
    if recorded != learned {
        tracing::warn!(
            recorded = ?recorded,
            now = ?learned,
            "the audit store's recorded home differs from where these credentials are; rows from before \
             accounts were recorded stay the recorded home's"
        );
    }
    tracing::info!(
        account = learned.account,
        region = learned.region,
        "AWS account learned"
    );
    Ok(learned)
}

/// Serves `app` on `listener` (HTTPS when `server.tls_cert` is set) until `shutdown` resolves, then stops
/// accepting, lets in-flight requests and remediations finish within `server.shutdown_grace_secs`, and
/// drains the audit writer.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = &app.state.config.server;
    let tls = load_tls(&app.state.config)?;
    let acceptor = tls.as_ref().map(ReloadingCert::acceptor).transpose()?;
    let reloader = match &tls {
        Some(tls) => tls.watch(Duration::from_secs(settings.tls_reload_secs)),
        None => ReloadingCert::ignore_hangups(),
    };
    let connections = Connections {
        router: http::router(app.state.clone()),
        acceptor,
        header_timeout: Duration::from_secs(settings.header_read_timeout_secs),
    };
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    let scheme = if connections.acceptor.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, "reflex ready");

    let summaries = tokio::spawn(record_suppressed_every(app.state.clone(), SUMMARY_EVERY));
    let pruning = tokio::spawn(prune_every(app.state.clone(), PRUNE_EVERY));
    let jobs = tokio::spawn(app.jobs.clone().run_every(JOBS_POLL));
    let brakes = tokio::spawn(refresh_brakes_every(app.state.clone(), BRAKES_EVERY));
    let graceful = GracefulShutdown::new();
    accept_until(
        &listener,
        &connections,
        &graceful,
        settings.max_connections,
        shutdown,
    )
    .await;
    drop(listener);
    // No new jobs are claimed from here on; the ones running finish within the grace, as requests do.
    jobs.abort();

    finish_in_flight(&app, graceful).await;
    reloader.abort();
    summaries.abort();
    pruning.abort();
    brakes.abort();
    app.close().await;
    tracing::info!("reflex stopped");
    Ok(())
}

/// Accepts connections, each served on its own task, until `shutdown` resolves; at most `max_connections`
/// are open at once.
async fn accept_until(
    listener: &TcpListener,
    connections: &Connections,
    graceful: &GracefulShutdown,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    // At most `server.max_connections` open: past it, new connections wait in the kernel's accept queue.
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => connections.serve(stream, peer, graceful.watcher(), slot),
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
}

/// Lets in-flight connections, requests and remediations, and the jobs running, finish within
/// `server.shutdown_grace_secs`; past it, says what is still in flight.
async fn finish_in_flight(app: &App, graceful: GracefulShutdown) {
    let tasks = app.state.tasks.clone();
    tasks.close();
    let grace = Duration::from_secs(app.state.config.server.shutdown_grace_secs);
    let drained = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
        tasks.wait().await;
        app.jobs.drain().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            in_flight = tasks.len(),
            grace_secs = grace.as_secs(),
            "shutdown grace elapsed with work in flight; exiting anyway (intent records are in the audit trail)"
        );
    }
}

/// How often the breaker and pause gauges are read from the store.
const BRAKES_EVERY: Duration = Duration::from_secs(5);

/// Keeps `reflex_breaker_open`, `reflex_paused` and `reflex_silenced` in step with the store, which every replica shares.
async fn refresh_brakes_every(state: AppState, every: Duration) {
    use crate::metrics::TargetLabels;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (breakers, pauses, silences) = match tokio::try_join!(
            state.audit.breakers(),
            state.audit.pauses(),
            state.audit.silences()
        ) {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read breakers, pauses and silences for the metrics");
                continue;
            }
        };
        let everything = TargetLabels {
            target: "*".to_owned(),
            account: String::new(),
            region: String::new(),
        };
        let paused = pauses.iter().any(|p| p.target.is_none());
        state
            .metrics
            .paused
            .get_or_create(&everything)
            .set(i64::from(paused));
        let silenced = silences.iter().any(|s| s.target.is_none());
        state
            .metrics
            .silenced
            .get_or_create(&everything)
            .set(i64::from(silenced));
        for id in state.engine.target_ids() {
            let label = TargetLabels {
                target: id.name.clone(),
                account: id.account.clone(),
                region: id.region.clone(),
            };
            let at = |target: &str, account: &str, region: &str| {
                target == id.name && account == id.account && region == id.region
            };
            let open = breakers
                .iter()
                .any(|b| b.open.is_some() && at(&b.target, &b.account, &b.region));
            let paused = pauses
                .iter()
                .any(|p| match (&p.target, &p.account, &p.region) {
                    (Some(target), Some(account), Some(region)) => at(target, account, region),
                    _ => false,
                });
            state
                .metrics
                .breaker_open
                .get_or_create(&label)
                .set(i64::from(open));
            state
                .metrics
                .paused
                .get_or_create(&label)
                .set(i64::from(paused));
            let silenced = silences
                .iter()
                .any(|s| match (&s.target, &s.account, &s.region) {
                    (Some(target), Some(account), Some(region)) => at(target, account, region),
                    _ => false,
                });
            state
                .metrics
                .silenced
                .get_or_create(&label)
                .set(i64::from(silenced));
        }
    }
}

/// How often due jobs (recovery checks, notifications, from any process) are looked for.
const JOBS_POLL: Duration = Duration::from_millis(500);

/// How often the rejections the throttle only counted are written as summary records.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// How often records older than `audit.retain_days` are pruned (also once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

async fn record_suppressed_every(state: AppState, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        if let Err(err) = state.record_suppressed().await {
            tracing::error!(error = %err, "cannot record the suppressed rejections");
        }
    }
}

async fn prune_every(state: AppState, every: Duration) {
    let days = state.config.audit.retain_days;
    if days == 0 {
        return;
    }
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match state.audit.prune_older_than(days).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, days, "pruned audit records past audit.retain_days")
            }
            Err(err) => tracing::error!(error = %err, "audit pruning failed"),
        }
    }
}

/// The configured certificate and key, read and matched (`None` for plain HTTP); `check-config` uses it too.
pub fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<ReloadingCert>>> {
    match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(
            ReloadingCert::load(cert, key)
                .context("cannot use server.tls_cert / server.tls_key")?,
        )),
        _ => Ok(None),
    }
}

/// How each accepted connection is served.
struct Connections {
    router: axum::Router,
    acceptor: Option<TlsAcceptor>,
    header_timeout: Duration,
}

impl Connections {
    /// Serves one connection on its own task: the TLS handshake and every request's headers must arrive
    /// within the header timeout, so slow clients cannot hold connections open.
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        slot: OwnedSemaphorePermit,
    ) {
        let router = self.router.clone();
        let acceptor = self.acceptor.clone();
        let header_timeout = self.header_timeout;
        // Answers are small and written whole: send them at once.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().call(request)
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let served = match acceptor {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}
