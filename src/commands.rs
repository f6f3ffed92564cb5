//! The command-line subcommands, called by `main.rs` after argument parsing.

use std::path::Path;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::audit::{AuditStore, RequestMeta, Source};
use crate::config::{self, Config};
use crate::engine::{Authenticated, Trigger};
use crate::{App, init_logging, serve};

/// Loads and validates the configuration, with the file named in the error.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    config::load(path).with_context(|| format!("config {}", path.display()))
}

/// `reflex serve`: runs the service until SIGINT or SIGTERM.
pub async fn serve_command(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    init_logging(config.server.log_format);
    let listen = config.server.listen;
    let app = App::build(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (server.listen)"))?;
    serve(app, listener, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// `reflex remediate`: one run of the engine, audited as source `cli`; prints the summary JSON.
/// Returns the summary so the caller decides the exit code.
pub async fn remediate_command(
    path: &Path,
    load_balancer: String,
    dry_run: bool,
) -> anyhow::Result<serde_json::Value> {
    let config = load_config(path)?;
    init_logging(config.server.log_format);
    let app = App::build(config).await?;
    let mut meta = RequestMeta::new(Source::Cli, None);
    meta.auth = "local-operator".to_owned();
    let trigger = Trigger::new(
        Authenticated::issued(),
        load_balancer,
        "manual remediation (command line)".to_owned(),
        dry_run,
    );
    let result = app.state.engine.remediate(&mut meta, &trigger).await;
    let (record, outcome) = match result {
        Ok(run) => {
            meta.note("summary", &run.summary);
            (
                meta.record(run.outcome(), 200, None, run.acted),
                Ok(serde_json::to_value(&run.summary)?),
            )
        }
        Err(err) => {
            meta.note("error", err.to_string());
            (
                meta.record(crate::audit::Outcome::Rejected, 1, Some("failed"), 0),
                Err(anyhow::Error::new(err).context("remediation failed")),
            )
        }
    };
    let audit = app.state.audit.clone();
    audit
        .put(record)
        .await
        .context("failed to write the audit record")?;
    drop(audit);
    app.close().await;
    outcome
}

/// `reflex audit list`: the newest records, as a table or one JSON object per line.
pub async fn audit_list_command(path: &Path, limit: u32, json: bool) -> anyhow::Result<String> {
    let config = load_config(path)?;
    let (store, writer) = AuditStore::open(&config.audit.url)
        .await
        .with_context(|| format!("failed to open the audit store {}", config.audit.url))?;
    let records = store.list(limit).await?;
    writer.finish().await;
    let mut out = String::new();
    for record in records {
        if json {
            out.push_str(&serde_json::to_string(&record)?);
        } else {
            let at = record
                .at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            out.push_str(&format!(
                "{}  {at}  {:<10} {:<9} {:>3}  {:<22} {}",
                record.id,
                record.source,
                record.outcome,
                record.status,
                record.target.as_deref().unwrap_or("-"),
                record.error.as_deref().unwrap_or(""),
            ));
        }
        out.push('\n');
    }
    Ok(out)
}
