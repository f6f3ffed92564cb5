//! Wiring: build the application from a validated config, serve it on a listener, shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::audit::{AuditStore, WriterTask};
use crate::aws::{self, Fleet};
use crate::config::Config;
use crate::engine::Engine;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::sns::SnsReceiver;

/// Everything a running reflex holds: the shared state and the audit writer to drain at shutdown.
#[derive(Debug)]
pub struct App {
    /// The handlers' shared state.
    pub state: AppState,
    writer: WriterTask,
}

impl App {
    /// Opens the audit store and builds the AWS clients and the engine.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        if let Some(endpoint) = &config.aws.endpoint_url {
            tracing::warn!(endpoint, "AWS calls go to an EMULATOR endpoint, not to AWS");
        }
        if config.remediation.dry_run {
            tracing::warn!(
                "remediation.dry_run is set: reflex plans and reports but never writes to AWS"
            );
        }
        let (audit, writer) = AuditStore::open(&config.audit.url)
            .await
            .with_context(|| format!("failed to open the audit store {}", config.audit.url))?;
        let sdk = aws::sdk_config(&config.aws).await;
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::new(
            Arc::clone(&config),
            Fleet::new(&sdk, Arc::clone(&metrics)),
            audit.clone(),
            Arc::clone(&metrics),
        );
        let sns = SnsReceiver::new(&config, &sdk).context("failed to set up SNS verification")?;
        Ok(Self {
            state: AppState {
                config,
                engine: Arc::new(engine),
                audit,
                sns: Arc::new(sns),
                metrics,
            },
            writer,
        })
    }

    /// Commits every audit record handed to the store, then stops its writer.
    pub async fn close(self) {
        drop(self.state);
        self.writer.finish().await;
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight requests (and
/// their remediations) finish, and drains the audit writer.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = http::router(app.state.clone());
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;
    tracing::info!(%addr, "reflex ready");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("server failed")?;
    app.close().await;
    tracing::info!("reflex stopped");
    Ok(())
}
