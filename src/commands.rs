//! The command-line subcommands, called by `main.rs` after argument parsing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::audit::{AuditStore, Auth, Outcome, RequestMeta, Source, rfc3339};
use crate::aws::SnsFetcher;
use crate::config::{self, Config};
use crate::controls::{ControlError, Controls, Named};
use crate::engine::{Authenticated, Trigger};
use crate::sns::{CertSource, CertStore, SigningCert, SnsReceiver, Verifier, VerifyPolicy};
use crate::target::TargetRef;
use crate::untrusted::bounded;
use crate::{App, init_logging, serve};

/// Loads and validates the configuration, with the file named in the error: every target's ladder is checked
/// against the built-in action kinds too.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let config = config::load(path).with_context(|| format!("config {}", path.display()))?;
    crate::actions::check(&config).with_context(|| format!("config {}", path.display()))?;
    crate::rules::Rules::for_config(&config, "")
        .with_context(|| format!("config {}", path.display()))?;
    Ok(config)
}

/// `reflex rules test`: the config's rules tried on the alert file at `alert`, as `rules::test_command` says.
pub fn rules_test_command(
    path: &Path,
    alert: &Path,
    source: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    let config = load_config(path)?;
    let text = std::fs::read_to_string(alert)
        .with_context(|| format!("alert file {}", alert.display()))?;
    let now = jiff::Timestamp::now().as_second();
    crate::rules::test_command(&config, &text, source, now, json)
}

/// `reflex rules test --suite`: the suite at `suite` run against the config's rules; its report, and whether
/// every case passed.
pub fn rules_suite_command(path: &Path, suite: &Path) -> anyhow::Result<crate::rules::SuiteReport> {
    let config = load_config(path)?;
    let now = jiff::Timestamp::now().as_second();
    crate::rules::run_suite(&config, suite, now)
}

/// `reflex iam-policy`: the least-privilege IAM policy (JSON) for the config's targets and action kinds, for
/// reflex's own account or for `account`'s member role.
pub fn iam_policy_command(path: &Path, account: Option<&str>) -> anyhow::Result<String> {
    let config = load_config(path)?;
    let kinds = crate::actions::builtin()
        .check(&config)
        .with_context(|| format!("config {}", path.display()))?;
    let policy = crate::iam_policy::policy(&config, &kinds, account)?;
    Ok(serde_json::to_string_pretty(&policy)? + "\n")
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

/// What `reflex remediate` runs: a configured target, or a rule that takes manual requests.
#[derive(Debug, Clone)]
pub enum Manual {
    /// A configured balancer or target group, in a place when several share its name.
    Target(TargetRef, crate::target::Place),
    /// A `[[rules]]` entry that lists `manual` in its sources.
    Rule {
        /// The rule's name.
        name: String,
        /// The instance it acts on, for a rule whose instances come with the alert.
        instance_id: Option<String>,
        /// The labels its `match` and `when` read.
        labels: std::collections::BTreeMap<String, String>,
        /// The account and region the request names, as `alert.account` and `alert.region`.
        place: crate::target::Place,
    },
}

/// The reason a manual run gives when its operator gives none.
const CLI_REASON: &str = "manual remediation (command line)";

/// `reflex remediate`: one run of the engine, audited as source `cli`; prints the summary JSON.
/// Returns the summary so the caller decides the exit code.
pub async fn remediate_command(
    path: &Path,
    asked: Manual,
    reason: Option<String>,
    dry_run: bool,
) -> anyhow::Result<serde_json::Value> {
    let config = load_config(path)?;
    init_logging(config.server.log_format);
    let app = App::build(config).await?;
    let mut meta = RequestMeta::new(Source::Cli, None);
    meta.auth = Auth::LocalOperator;
    let result = match manual_trigger(&app, &mut meta, asked, reason, dry_run) {
        Ok(trigger) => app.state.engine.run(meta, &trigger, None).await,
        Err(refusal) => {
            let (status, code) = refusal.status_and_code();
            meta.note("error", refusal.to_string());
            let record = meta.into_record(Outcome::Rejected, status, Some(code), 0);
            let recorded = app.state.audit.put(record).await;
            app.close().await;
            recorded.context("cannot record the refusal in the audit store")?;
            return Err(
                anyhow::Error::new(refusal).context(format!("remediation refused ({code})"))
            );
        }
    };
    app.close().await;
    let run = result.context("remediation failed")?;
    Ok(serde_json::to_value(&run.summary)?)
}

/// The trigger of what `asked` runs, the rule (and its refusal) noted in `meta`.
fn manual_trigger(
    app: &App,
    meta: &mut RequestMeta,
    asked: Manual,
    reason: Option<String>,
    dry_run: bool,
) -> Result<Trigger, crate::engine::ManualRefusal> {
    let reason = reason.unwrap_or_else(|| CLI_REASON.to_owned());
    match asked {
        Manual::Target(target, place) => {
            Ok(Trigger::new(Authenticated::issued(), target, reason, dry_run).in_place(place))
        }
        Manual::Rule {
            name,
            instance_id,
            labels,
            place,
        } => {
            let request = serde_json::json!({
                "rule": name,
                "instance_id": instance_id,
                "labels": labels,
                "account": place.account,
                "region": place.region,
                "reason": reason,
            });
            meta.note("request", &request);
            let matched = app
                .state
                .engine
                .manual(Some(&name), instance_id.as_deref(), &request)?;
            meta.note("rule", &matched.rule);
            Ok(Trigger::for_rule(
                Authenticated::issued(),
                matched,
                reason,
                dry_run,
            ))
        }
    }
}

/// The approver token of a vote from the command line: the first line of `file`, else `REFLEX_APPROVER_TOKEN`.
pub fn approver_token(file: Option<&Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the approver token file {}", file.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        None => std::env::var("REFLEX_APPROVER_TOKEN").unwrap_or_default(),
    };
    anyhow::ensure!(
        !token.is_empty(),
        "a vote needs an approver token: --token-file FILE or REFLEX_APPROVER_TOKEN"
    );
    Ok(token)
}

/// `reflex approvals list|approve|reject`: the held decisions waiting (pretty JSON), or a vote on one with an
/// approver token (counted as the API counts it: its named person, or the unnamed token); approving the last
/// needed approval acts at once, through the engine, as the server would. The vote's outcome as pretty JSON.
pub async fn approvals_command(
    path: &Path,
    vote: Option<(CliVote, String)>,
) -> anyhow::Result<String> {
    let config = load_config(path)?;
    if let Some((_, token)) = &vote {
        // Checked before the store is opened; who it is needs the store's key.
        anyhow::ensure!(
            crate::approvers::Approvers::holds_token(&config, token.as_bytes()),
            "the token is no approver's: its SHA-256 is no [[approvals.approvers]] token_sha256 and it is not \
             one of [approvals] tokens"
        );
    }
    init_logging(config.server.log_format);
    let app = App::build(config).await?;
    let out = approvals_run(&app, vote).await;
    app.close().await;
    out
}

/// Lists the held decisions, or casts `vote` with its token, in `app`.
async fn approvals_run(app: &App, vote: Option<(CliVote, String)>) -> anyhow::Result<String> {
    let approvals = crate::approvals::Approvals::new(&app.state.audit, &app.state.engine);
    let mut meta = RequestMeta::new(Source::Approval, None);
    let Some((CliVote { id, ballot }, token)) = vote else {
        // Listing is the operator's at this host.
        meta.auth = Auth::LocalOperator;
        let pending = approvals.pending().await?;
        return Ok(serde_json::to_string_pretty(&pending)?);
    };
    let key = app.state.audit.ui_key().await?;
    let verified = crate::approvers::Approvers::new(&app.state.config, &key)
        .context("the audit store's page key is not hex: run `reflex ui rotate-key`")?
        .by_token(token.as_bytes())
        .context("the token is no approver's")?;
    meta.auth = Auth::Passed;
    meta.note("at_host", login_at_host());
    let approver = verified.voting_through("cli");
    let voted = approvals.cast(meta, &id, approver, ballot).await?;
    Ok(serde_json::to_string_pretty(&voted)?)
}

/// A vote from the command line: on which held decision, and the ballot.
#[derive(Debug, Clone)]
pub struct CliVote {
    /// The held decision.
    pub id: String,
    /// Approve, or reject for a reason.
    pub ballot: crate::approvals::Ballot,
}

/// `reflex targets`: each target's mode and what observe and approve modes have seen of it (runs, would
/// have acted, held, approved, rejected, expired, acted, recovered), as a table or as JSON.
pub async fn targets_command(path: &Path, json: bool) -> anyhow::Result<String> {
    let config = load_config(path)?;
    init_logging(config.server.log_format);
    let app = App::build(config).await?;
    let ways = crate::approvals::way_up(&app.state.audit, &app.state.engine).await;
    app.close().await;
    let ways = ways?;
    if json {
        return Ok(serde_json::to_string_pretty(&ways)?);
    }
    let mut out = format!(
        "{:<32} {:<8} {:>5} {:>9} {:>5} {:>8} {:>8} {:>7} {:>5} {:>9}\n",
        "TARGET",
        "MODE",
        "RUNS",
        "WOULD-ACT",
        "HELD",
        "APPROVED",
        "REJECTED",
        "EXPIRED",
        "ACTED",
        "RECOVERED"
    );
    for way in ways {
        let checked = way.recovered + way.not_recovered;
        out.push_str(&format!(
            "{:<32} {:<8} {:>5} {:>9} {:>5} {:>8} {:>8} {:>7} {:>5} {:>9}\n",
            format!("{} ({}/{})", way.target, way.account, way.region),
            way.mode,
            way.runs,
            way.would_act,
            way.held,
            way.approved,
            way.rejected,
            way.expired,
            way.acted,
            format!("{}/{checked}", way.recovered),
        ));
    }
    Ok(out)
}

/// The next three occurrences of each `[[windows]]` entry after `now`, in its own time zone, one per line.
pub fn windows_summary(config: &Config, now: jiff::Timestamp) -> String {
    let mut out = String::new();
    for window in &config.windows {
        out.push_str(&format!(
            "window {:?} ({}; {}): next\n",
            window.name,
            window.targets.join(", "),
            window.zone_name()
        ));
        for occurrence in window.next(now, 3) {
            out.push_str(&format!(
                "  {} to {}{}\n",
                window.local(occurrence.start),
                window.local(occurrence.end),
                if occurrence.start <= now {
                    "  (in force now)"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

/// `reflex check-config --aws`: every target looked up and read once, with the configured AWS access.
pub async fn probe_targets_command(config: &Config) -> anyhow::Result<Vec<String>> {
    let sdk = crate::aws::sdk_config(&config.aws).await;
    let places = crate::aws::Places::new(config, &sdk, Arc::default());
    let account = match &config.aws.account_id {
        Some(account) => account.clone(),
        None => crate::aws::caller_account(&sdk)
            .await
            .context("cannot learn the AWS account (STS GetCallerIdentity)")?,
    };
    let home = crate::audit::Home {
        account,
        region: config.aws.region.clone(),
    };
    let fleet_of = |target: &crate::config::TargetConfig| {
        let place = config.place_of(target, &home.account);
        (places.fleet_of(config, target), place)
    };
    crate::engine::probe_targets(config, &fleet_of, &crate::actions::builtin())
        .await
        .context("a target cannot be used")
}

/// The audit store the config at `path` names, for the `reflex audit` commands.
async fn open_audit(path: &Path) -> anyhow::Result<(AuditStore, crate::audit::WriterTask)> {
    open_store(&load_config(path)?).await
}

/// The audit store `config` names.
async fn open_store(config: &Config) -> anyhow::Result<(AuditStore, crate::audit::WriterTask)> {
    AuditStore::open(&config.audit.url).await.with_context(|| {
        format!(
            "failed to open the audit store {}",
            crate::audit::redacted(&config.audit.url)
        )
    })
}

/// `reflex pause`: pauses a configured target (or everything) with `reason`, recording who did it in the audit
/// trail; without a reason, lists the pauses in force.
pub async fn pause_command(
    path: &Path,
    target: Option<Named<'_>>,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let Some(reason) = reason else {
        return with_controls(path, async |controls| {
            let mut out = String::new();
            for pause in controls.audit.pauses().await? {
                out.push_str(&format!(
                    "{}  since {}  {}\n",
                    pause.target.as_deref().unwrap_or("(every target)"),
                    rfc3339(pause.since),
                    bounded(&pause.reason),
                ));
            }
            Ok(if out.is_empty() {
                "no pauses\n".into()
            } else {
                out
            })
        })
        .await;
    };
    with_controls(path, async |controls| {
        controls.pause(operator(), target, reason).await?;
        Ok(format!("paused {}: {reason}\n", or_everything(target)))
    })
    .await
}

/// `reflex resume`: lifts the pause of `target` (or of everything), recorded in the audit trail.
pub async fn resume_command(
    path: &Path,
    target: Option<Named<'_>>,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    with_controls(path, async |controls| {
        controls
            .resume(operator(), target, reason)
            .await
            .map_err(|err| match err {
                ControlError::NotPaused(_) => {
                    anyhow::anyhow!("{err} (reflex pause --config FILE lists the pauses)")
                }
                err => err.into(),
            })?;
        Ok(format!("resumed {}", or_everything(target)))
    })
    .await
}

/// `reflex silence`: silences `target` (or everything) for `length`, recorded in the audit trail; without a
/// length, lists the silences in force.
pub async fn silence_command(
    path: &Path,
    target: Option<Named<'_>>,
    length: Option<&str>,
    reason: Option<&str>,
    by: Option<&str>,
) -> anyhow::Result<String> {
    let Some(length) = length else {
        return with_controls(path, async |controls| {
            let mut out = String::new();
            for silence in controls.audit.silences().await? {
                out.push_str(&format!(
                    "{}  {}  until {}  by {}  {}\n",
                    silence.id,
                    silence.target.as_deref().unwrap_or("(every target)"),
                    rfc3339(silence.until),
                    bounded(&silence.by),
                    bounded(&silence.reason),
                ));
            }
            Ok(if out.is_empty() {
                "no silences\n".into()
            } else {
                out
            })
        })
        .await;
    };
    let by = by.map_or_else(local_operator, ToOwned::to_owned);
    with_controls(path, async |controls| {
        let silence = controls
            .silence(operator(), target, length, reason.unwrap_or_default(), &by)
            .await?;
        Ok(format!(
            "silenced {} until {} (id {}): {}\n",
            or_everything(target),
            rfc3339(silence.until),
            silence.id,
            silence.reason
        ))
    })
    .await
}

/// `reflex unsilence`: lifts the silence `id` before its end, recorded in the audit trail.
pub async fn unsilence_command(
    path: &Path,
    id: &str,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    with_controls(path, async |controls| {
        let lifted = controls
            .unsilence(operator(), id, reason)
            .await
            .map_err(|err| match err {
                ControlError::NotSilenced(_) => {
                    anyhow::anyhow!("{err} (reflex silence --config FILE lists the silences)")
                }
                err => err.into(),
            })?;
        Ok(format!(
            "lifted the silence of {}",
            lifted.target.as_deref().unwrap_or("every target")
        ))
    })
    .await
}

/// Who runs a command at this host, as a silence records it: the login name and the host.
fn local_operator() -> String {
    format!("{} (reflex silence)", login_at_host())
}

/// The login name and the host (`alice@ops-1`), or the login name alone.
fn login_at_host() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "an operator".to_owned());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// `reflex breaker reset`: closes `target`'s open breaker, recorded in the audit trail with `reason`.
pub async fn breaker_reset_command(
    path: &Path,
    target: Named<'_>,
    reason: &str,
) -> anyhow::Result<String> {
    with_controls(path, async |controls| {
        controls.reset_breaker(operator(), target, reason).await?;
        Ok(format!("breaker of {target} reset: {reason}"))
    })
    .await
}

/// A control's target in words: the target, or every target.
fn or_everything(target: Option<Named<'_>>) -> String {
    target.map_or_else(|| "every target".to_owned(), |named| named.to_string())
}

/// `reflex breaker status`: pauses, breakers and budgets left, as pretty JSON.
pub async fn breaker_status_command(path: &Path) -> anyhow::Result<String> {
    with_controls(path, async |controls| {
        Ok(serde_json::to_string_pretty(&controls.state().await?)?)
    })
    .await
}

/// Runs `work` with the controls over the store the config at `path` names, then lets the store's writer
/// commit and stop.
async fn with_controls<T>(
    path: &Path,
    work: impl AsyncFnOnce(Controls<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let config = load_config(path)?;
    let (store, writer) = open_store(&config).await?;
    // The same home the server works out (it takes the recorded one without asking STS when it fits), so a
    // pause or a reset names the row the engine reads.
    let sdk = crate::aws::sdk_config(&config.aws).await;
    let home = crate::server::learn_home(&config, &sdk, &store).await?;
    let done = work(Controls {
        audit: &store,
        config: &config,
        home: &home,
        metrics: None,
    })
    .await;
    drop(store);
    writer.finish().await;
    done
}

/// The audit record of an operator's command at this host.
fn operator() -> RequestMeta {
    let mut meta = RequestMeta::new(Source::Cli, None);
    meta.auth = Auth::LocalOperator;
    meta
}

/// `reflex audit list`: the newest records, as a table or one JSON object per line.
pub async fn audit_list_command(path: &Path, limit: u32, json: bool) -> anyhow::Result<String> {
    let (store, writer) = open_audit(path).await?;
    let records = store.list(limit).await?;
    writer.finish().await;
    let mut out = String::new();
    for record in records {
        if json {
            out.push_str(&serde_json::to_string(&record)?);
        } else {
            out.push_str(&format!(
                "{}  {}  {:<10} {:<9} {:>3}  {:<22} {:<12} {:<14} {}",
                record.id,
                rfc3339(record.at),
                record.source.as_str(),
                record.outcome.as_str(),
                record.status,
                bounded(record.target.as_deref().unwrap_or("-")),
                record.account.as_deref().unwrap_or("-"),
                record.region.as_deref().unwrap_or("-"),
                bounded(record.error.as_deref().unwrap_or("")),
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

/// `reflex audit list --stuck`: delivery claims whose process died before settling them.
pub async fn audit_stuck_command(path: &Path, json: bool) -> anyhow::Result<String> {
    let (store, writer) = open_audit(path).await?;
    let stuck = store.stuck_claims().await;
    writer.finish().await;
    let mut out = String::new();
    for claim in stuck? {
        if json {
            out.push_str(&serde_json::to_string(&claim)?);
        } else {
            out.push_str(&format!(
                "{}  {}  {}  (process {})",
                claim.audit_id,
                rfc3339(claim.claimed_at),
                bounded(&claim.key),
                claim.owner.as_deref().unwrap_or("unknown"),
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

/// `reflex audit prune`: removes records older than `days` days; returns how many.
pub async fn audit_prune_command(path: &Path, days: u32) -> anyhow::Result<u64> {
    let config = load_config(path)?;
    if let Some(refusal) = config.lookback().refusal(days) {
        anyhow::bail!("refusing to prune with --older-than {days}: {refusal}");
    }
    let (store, writer) = open_store(&config).await?;
    let removed = store.prune_older_than(days).await;
    drop(store);
    writer.finish().await;
    Ok(removed?)
}

/// `reflex ui rotate-key`: a new random key for the audit page, which ends every session; recorded in the audit
/// trail.
pub async fn ui_rotate_key_command(path: &Path) -> anyhow::Result<String> {
    let (store, writer) = open_audit(path).await?;
    let rotated = store.rotate_ui_key().await;
    let recorded = match &rotated {
        Ok(()) => {
            let mut meta = operator();
            meta.note("ui", "signing key rotated: every session ended");
            store
                .put(meta.into_record(crate::audit::Outcome::Completed, 200, None, 0))
                .await
        }
        Err(_) => Ok(()),
    };
    drop(store);
    writer.finish().await;
    rotated?;
    recorded?;
    Ok("audit page key rotated: every session has ended".to_owned())
}

/// `reflex audit anchor`: the chain's head, as a line to keep elsewhere.
pub async fn audit_anchor_command(path: &Path) -> anyhow::Result<String> {
    let (store, writer) = open_audit(path).await?;
    let anchor = store.anchor().await;
    drop(store);
    writer.finish().await;
    Ok(anchor?.to_string())
}

/// `reflex audit verify`: `Ok(Ok(summary))` for an intact chain, `Ok(Err(what broke))` for a tampered one;
/// with `anchors` (a file of `reflex audit anchor` lines), also against each of them.
pub async fn audit_verify_command(
    path: &Path,
    anchors: Option<&Path>,
) -> anyhow::Result<Result<String, String>> {
    let config = load_config(path)?;
    let anchors = anchors.map(read_anchors).transpose()?;
    let (store, writer) = open_store(&config).await?;
    let verified = store.verify().await;
    let anchored = match (&anchors, &verified) {
        (Some(anchors), Ok(Ok(_))) => Some(
            store
                .check_anchors(anchors, config.lookback().min_days())
                .await,
        ),
        _ => None,
    };
    drop(store);
    writer.finish().await;
    let anchored = match anchored.transpose()? {
        Some(Err(mismatch)) => return Ok(Err(format!("audit chain broken: {mismatch}"))),
        Some(Ok(checked)) => format!(
            "; {} anchors matched, {} behind a prune",
            checked.matched, checked.pruned
        ),
        None => String::new(),
    };
    Ok(match verified? {
        Ok(verified) if verified.entries == 0 => Ok(format!(
            "audit chain intact: no entries after checkpoint {}{anchored}",
            verified.from
        )),
        Ok(verified) => Ok(format!(
            "audit chain intact: {} entries, {} to {}{}{anchored}",
            verified.entries,
            verified.from + 1,
            verified.to,
            if verified.from > 0 {
                format!(" (verified from the checkpoint at entry {})", verified.from)
            } else {
                String::new()
            }
        )),
        Err(broken) => Err(format!("audit chain broken: {broken}")),
    })
}

/// The anchors in `file`, one `reflex audit anchor` line each.
fn read_anchors(file: &Path) -> anyhow::Result<Vec<crate::audit::Anchor>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the anchors file {}", file.display()))?;
    crate::audit::Anchor::parse_all(&text)
        .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))
}

/// `reflex audit export`: the entries written at or after `since`, as JSON lines on stdout.
pub async fn audit_export_command(path: &Path, since: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let since = time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("--since {since:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z")
        })?;
    let (store, writer) = open_audit(path).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = None;
    let exported: anyhow::Result<()> = async {
        loop {
            let page = store.entries_since(since, after).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.seq);
            for entry in &page {
                serde_json::to_writer(&mut out, entry)?;
                out.write_all(b"\n")?;
            }
        }
    }
    .await;
    drop(store);
    writer.finish().await;
    exported?;
    out.flush()?;
    Ok(())
}

/// `reflex sns-verify`: verifies a captured SNS message offline. `Ok(Err(reason))` is a message that does not
/// verify; `Err` is a usage problem (unreadable file, bad `--at`).
pub async fn sns_verify_command(
    file: &Path,
    cert: Option<&Path>,
    at: Option<&str>,
    config: Option<&Path>,
) -> anyhow::Result<Result<(), String>> {
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let now = match at {
        Some(at) => time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .with_context(|| {
                format!("--at {at:?} is not an RFC 3339 time such as 2022-04-22T18:13:06.659Z")
            })?,
        None => time::OffsetDateTime::now_utc(),
    };
    let config = config.map(load_config).transpose()?;
    let fixed = match cert {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            match SigningCert::from_pem(&pem) {
                Ok(cert) => Some(cert),
                Err(err) => return Ok(Err(format!("{}: {err}", err.code()))),
            }
        }
        None => None,
    };
    let verifier = match (&config, fixed) {
        (_, Some(cert)) => Verifier::new(
            VerifyPolicy {
                topic_arns: config.as_ref().map(|c| c.sns.topic_arns.clone()),
                max_age: Duration::from_secs(config.as_ref().map_or(3600, |c| c.sns.max_age_secs)),
                min_signature_version: config.as_ref().map_or(1, |c| c.sns.min_signature_version),
            },
            CertStore::new(CertSource::Fixed(Arc::new(cert))),
        ),
        (Some(config), None) => {
            let sdk = crate::aws::sdk_config(&config.aws).await;
            SnsReceiver::new(config, &sdk, &crate::metrics::Metrics::default())?.verifier
        }
        (None, None) => {
            let sdk = aws_config::SdkConfig::builder().build();
            Verifier::new(
                VerifyPolicy {
                    topic_arns: None,
                    max_age: Duration::from_secs(3600),
                    min_signature_version: 1,
                },
                CertStore::new(CertSource::Fetch(SnsFetcher::new(&sdk, None)?)),
            )
        }
    };
    Ok(verifier
        .verify(&body, None, now)
        .await
        .map(|_| ())
        .map_err(|err| format!("{}: {err}", err.code())))
}

/// `reflex healthcheck`: GETs `url` with a short timeout; an error unless it answers 2xx.
pub async fn healthcheck_command(url: &str, insecure: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .danger_accept_invalid_certs(insecure)
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(())
}
