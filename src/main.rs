//! The `reflex` command line: parses arguments and calls into the library.

// No function over 80 lines (clippy.toml); tests aside.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reflex::commands;
use reflex::controls::{Named, Names};
use reflex::target::{Place, TargetRef};

/// reflex turns load-balancer alerts into safe, audited self-healing on AWS.
///
/// It receives alerts over HTTP(S), proves who sent them, reads the load balancer's health, terminates
/// broken instances within safety limits and records every step in an audit trail.
#[derive(Debug, Parser)]
#[command(name = "reflex", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: routes /remediate, /sns, /alertmanager, /grafana, /audit, /metrics, /healthz, /readyz.
    ///
    /// HTTPS when [server] tls_cert and tls_key are set, plain HTTP otherwise. SIGTERM or SIGINT stop
    /// accepting and let in-flight remediations finish (server.shutdown_grace_secs); SIGHUP reloads the TLS
    /// certificate and key.
    Serve {
        /// Configuration file (TOML); see reflex.example.toml.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
    },
    /// The kill switch: stop reflex acting on a target, a rule, one instance (or on everything) until
    /// `reflex resume`. Alerts for a paused target or rule are answered `refused` (paused) and audited, with
    /// no AWS call at all; a paused instance is skipped (`paused`) by every run in its account and region. The
    /// pause is in the audit store, so it survives restarts and holds for every server and replica sharing it.
    /// Without --reason, lists the pauses in force.
    Pause {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The configured target to pause (its load_balancer or target_group name); every target without it.
        #[arg(long)]
        target: Option<String>,
        /// The [[rules]] entry to pause, by name, instead of a target.
        #[arg(long, conflicts_with = "target")]
        rule: Option<String>,
        /// The EC2 instance to pause, by id, instead of a target: every target's and rule's run in its place
        /// (--account, --region; default the local account and aws.region) leaves it alone (skipped `paused`).
        #[arg(long, conflicts_with_all = ["target", "rule"])]
        instance: Option<String>,
        #[command(flatten)]
        place: PlaceArgs,
        /// Why (recorded in the pause, the audit trail and every refused answer).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a pause set by `reflex pause`: of one target (--target), rule (--rule) or instance (--instance), of
    /// everything without any (single targets' pauses stay).
    Resume {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The paused target; the pause of everything without it.
        #[arg(long)]
        target: Option<String>,
        /// The paused [[rules]] entry, by name, instead of a target.
        #[arg(long, conflicts_with = "target")]
        rule: Option<String>,
        /// The paused instance, by id, instead of a target.
        #[arg(long, conflicts_with_all = ["target", "rule"])]
        instance: Option<String>,
        #[command(flatten)]
        place: PlaceArgs,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
    /// A pause with an end: stop reflex acting on a target, a rule or one instance (or on everything) for a while
    /// (a deploy, an incident, maintenance). Alerts are answered `refused` (silenced: who, why, until when) and
    /// audited, with no AWS call (a silenced instance is skipped by every run in its place); the silence is in the audit store, so it survives restarts and holds for every replica; it
    /// ends by itself (announced to [[notify]] webhooks) or with `reflex unsilence ID`. Without --for, lists
    /// the silences in force.
    Silence {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The configured target to silence (its load_balancer or target_group name); every target without it.
        #[arg(long)]
        target: Option<String>,
        /// The [[rules]] entry to silence, by name, instead of a target.
        #[arg(long, conflicts_with = "target")]
        rule: Option<String>,
        /// The EC2 instance to silence, by id, instead of a target: every run in its place (--account,
        /// --region; default the local account and aws.region) leaves it alone (skipped `silenced`).
        #[arg(long, conflicts_with_all = ["target", "rule"])]
        instance: Option<String>,
        #[command(flatten)]
        place: PlaceArgs,
        /// How long: a number and a unit, s, m, h or d (90s, 15m, 2h, 1h30m; at most 30d).
        #[arg(long = "for", value_name = "LENGTH")]
        length: Option<String>,
        /// Why (required with --for; recorded, and in every refused answer).
        #[arg(long)]
        reason: Option<String>,
        /// Who sets it (default: the login name and host).
        #[arg(long)]
        by: Option<String>,
    },
    /// Lift a silence before its end, by the id `reflex silence` printed (or listed).
    Unsilence {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The silence's id.
        id: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
    /// A target's breaker: it opens when a budget is exhausted, when runs keep hitting AWS errors
    /// (remediation.breaker_after_failures) or when a recovery check fails, and then refuses the target's
    /// alerts (`refused: breaker-open`, no AWS call) until a person resets it here.
    Breaker {
        #[command(subcommand)]
        command: BreakerCommand,
    },
    /// Held decisions of targets in approve mode: list those waiting (with their evidence), or approve or
    /// reject one with an approver token. The approval that completes a decision acts at once: reflex
    /// reads the target again, decides under every rule as it stands, and replaces only instances that are
    /// both in the approved decision and still broken.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Each target's mode and what observe and approve modes have seen of it: runs, would have acted, held,
    /// approved, rejected, expired, acted and recovered, so that a target can be promoted with evidence.
    Targets {
        /// Configuration file (TOML).
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The audit page (`/ui/`).
    Ui {
        #[command(subcommand)]
        command: UiCommand,
    },
    /// Run one remediation of a configured load balancer or target group, or one run of a rule that lists
    /// "manual" in its sources, and print the summary JSON.
    ///
    /// Examples: `reflex remediate --load-balancer web-elb --dry-run`;
    /// `reflex remediate --rule restart-kafka --instance-id i-0123456789abcdef0 --reason "broker hung"`.
    Remediate {
        /// Configuration file (TOML).
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// Classic ELB name; must be listed under [[targets]].
        #[arg(
            long,
            required_unless_present_any = ["target_group", "rule"],
            conflicts_with_all = ["target_group", "rule"]
        )]
        load_balancer: Option<String>,
        /// ALB/NLB target group (name or ARN); must be listed under [[targets]].
        #[arg(long, conflicts_with = "rule")]
        target_group: Option<String>,
        #[command(flatten)]
        place: PlaceArgs,
        /// A [[rules]] entry to run instead of a target: one that lists "manual" in its sources.
        #[arg(long)]
        rule: Option<String>,
        /// The instance the rule acts on (i-...), for a rule whose instances = "alert".
        #[arg(long)]
        instance_id: Option<String>,
        /// A label the rule's match and when read (alert.labels), as KEY=VALUE; repeat for more.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
        labels: Vec<(String, String)>,
        /// Why, as the record and the summary's message give it.
        #[arg(long)]
        reason: Option<String>,
        /// Plan and report only; write nothing to AWS.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate a configuration file (and read the TLS certificate and key it names); exits non-zero with the
    /// offending key on error. Prints the next three occurrences of each maintenance window.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// Also look every target up in AWS with the configured credentials, as start-up does (target groups
        /// resolved and checked to hold instances), and read each one's health once. Read-only.
        #[arg(long)]
        aws: bool,
    },
    /// Verify a captured SNS message offline: prints `verified` (exit 0) or the reason (exit 1).
    ///
    /// The SigningCertURL policy and every check apply; `--cert` only replaces fetching the certificate.
    SnsVerify {
        /// The message body as SNS delivered it (JSON).
        file: PathBuf,
        /// Use this PEM certificate instead of fetching the one the message names.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Check the Timestamp and certificate validity as of this RFC 3339 time instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Also apply this config's [sns] topic_arns, max_age_secs and cert_dir (and its emulator endpoint).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Probe a running reflex: exits 0 when the URL answers 2xx, 1 otherwise (for container health checks
    /// in images without a shell or curl).
    Healthcheck {
        /// The URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
        /// Accept any TLS certificate (for an HTTPS listener probed as 127.0.0.1 whose certificate names
        /// the public host).
        #[arg(long)]
        insecure: bool,
    },
    /// Read or prune the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the least-privilege IAM policy (JSON) for the config's targets and the action kinds their ladders
    /// name: the reads every run makes, each kind's actions on the resources it touches (the configured
    /// balancers by ARN; instances and groups tagged reflex:managed; never an instance with the protect tag),
    /// SNS confirmation and the member roles. Reads the config only: no AWS call.
    IamPolicy {
        /// Configuration file (TOML).
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The policy of this [[accounts]] entry's member role instead of reflex's own.
        #[arg(long)]
        account: Option<String>,
    },
    /// Try the config's [[rules]] on captured alerts.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

/// `reflex rules ...`.
#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// For a captured alert (a CloudWatch alarm as SNS delivers it or its Message, an Alertmanager or Grafana
    /// webhook payload, a manual request's body), show every rule in order: matched, or the first condition
    /// that failed with the alert's value; and which rule the alert would be the response of. Reads only the
    /// two files: no store, no AWS call.
    Test {
        /// Configuration file (TOML) with the [[rules]].
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The alert file (JSON).
        #[arg(long, required_unless_present = "suite", conflicts_with = "suite")]
        alert: Option<PathBuf>,
        /// A suite of cases (TOML: [[cases]] with `alert` = an alert file, relative to the suite, optional
        /// `source`, and `rule` = the rule every alert of the file must come to, or "none"): prints one line
        /// per alert and exits non-zero when any came to another rule. For an operator's own CI.
        #[arg(long, conflicts_with_all = ["source", "json"])]
        suite: Option<PathBuf>,
        /// The alert's source when the file's shape does not say: sns, alertmanager, grafana or manual.
        #[arg(long)]
        source: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try every alert the audit trail kept of the last days again under this config's [[rules]] (before a
    /// change goes to production) and print, rule by rule, the alerts that would now come to another rule or to
    /// none, what the rule they would come to acts on, and those its mode or a maintenance window would hold.
    /// Reads the store and the config only: no AWS call, no write. Alerts are kept (each with the rule it came
    /// to) from SNS, Alertmanager and Grafana while any rule is configured.
    Replay {
        /// Configuration file (TOML) with the [[rules]] to try; its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// How far back: a span (7d, 36h, 90m) or an RFC 3339 time.
        #[arg(long, default_value = "7d")]
        since: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `reflex ui ...`.
#[derive(Debug, Subcommand)]
enum UiCommand {
    /// Replace the audit page's signing key (random, kept in the audit store, shared by every replica) with a
    /// new one: every session ends at once on every replica, and every login form must be loaded again.
    RotateKey {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
    },
}

/// `reflex breaker ...`.
#[derive(Debug, Subcommand)]
enum BreakerCommand {
    /// Close a target's (or a rule's) open breaker, recorded in the audit trail with the reason.
    Reset {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The configured target whose breaker to close.
        #[arg(long, required_unless_present = "rule")]
        target: Option<String>,
        /// The [[rules]] entry, by name, whose breaker to close (instead of a target).
        #[arg(long, conflicts_with = "target")]
        rule: Option<String>,
        #[command(flatten)]
        place: PlaceArgs,
        /// Why it is safe to act again (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Print pauses, breakers and budgets left, as JSON (what `GET /admin/state` answers).
    Status {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// The held decisions waiting, soonest to expire first, with their evidence (JSON).
    List {
        /// Configuration file (TOML).
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
    },
    /// Approve a held decision with an approver token (counted once per person, or per unnamed token, whatever
    /// door they use; acts when enough distinct approvers approved).
    Approve {
        /// Configuration file (TOML).
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The approval's id (the held run's audit id).
        id: String,
        /// A file whose first line is an approver's token (`[[approvals.approvers]]`, `[approvals] tokens`; or set
        /// REFLEX_APPROVER_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Reject a held decision with an approver token: nothing is done.
    Reject {
        /// Configuration file (TOML).
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// The approval's id.
        id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
        /// A file whose first line is an approver's token (`[[approvals.approvers]]`, `[approvals] tokens`; or set
        /// REFLEX_APPROVER_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// List audit records, newest first.
    List {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// How many records to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Instead of records: delivery claims left unsettled by a process that died (killed, crashed). The
        /// next redelivery of each takes it over and finishes its run.
        #[arg(long)]
        stuck: bool,
    },
    /// Check the tamper-evident chain of the trail: every entry against its hash and the one before it, from
    /// the last prune's checkpoint to the newest. Exit 0 when intact; exit 1 naming the first entry changed,
    /// removed or moved.
    Verify {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// Also check the chain against a file of anchors printed earlier by `reflex audit anchor` (one per
        /// line), kept where the database's owner cannot edit them: a rewrite, a cut end or a faked prune
        /// shows.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
    /// Print the chain's head as an anchor (`SEQ HASH TIME`), for a cron job to append to a file kept outside
    /// the database (see `reflex audit verify --anchor`).
    Anchor {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
    },
    /// Write the trail's entries (every version of every record, with its place in the chain and its hashes)
    /// written at or after TIME, oldest first, one JSON object per line, to stdout: for archiving elsewhere.
    Export {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// RFC 3339 time, e.g. 2026-11-01T00:00:00Z.
        #[arg(long, value_name = "TIME")]
        since: String,
    },
    /// Remove the oldest entries, written more than DAYS days ago (never a run that may still be acting), as
    /// `audit.retain_days` does hourly while serving; the rest of the chain stays verifiable from a
    /// checkpoint. Prints how many went. Refuses DAYS inside what the safety rules read back (the budgets' day,
    /// the cooldown, sns.max_age_secs, the webhook dedup windows), naming the smallest allowed value.
    Prune {
        /// Configuration file (TOML); its [audit] url names the store.
        #[arg(long, env = "REFLEX_CONFIG")]
        config: PathBuf,
        /// Age in days of the oldest record to keep.
        #[arg(long, value_name = "DAYS")]
        older_than: u32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("reflex: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--account` and `--region`: where a target is, when several targets share its name, or where an instance
/// is.
#[derive(Debug, clap::Args)]
struct PlaceArgs {
    /// The target's (or rule's) account ([[accounts]] name, "local", or account id), when targets in several
    /// accounts share its name; an instance's (default: local).
    #[arg(long)]
    account: Option<String>,
    /// The target's (or rule's) region, when targets in several regions share its name; an instance's
    /// (default: aws.region).
    #[arg(long)]
    region: Option<String>,
}

impl PlaceArgs {
    fn place(self) -> Place {
        Place::new(self.account, self.region)
    }

    /// The place of `target`; refused without one, since a place alone names no target.
    fn of(self, target: Option<&str>) -> anyhow::Result<Place> {
        let place = self.place();
        anyhow::ensure!(
            target.is_some() || !place.is_given(),
            "--account and --region say where a target, a rule or an instance is: give --target, --rule or \
             --instance too (without any of them, every target)"
        );
        Ok(place)
    }
}

/// Runs the command line's command; the exit code is a failure when a check it makes (`sns-verify`, `audit
/// verify`) fails.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => commands::serve_command(&config).await?,
        command @ Command::Remediate { .. } => remediate(command).await?,
        Command::CheckConfig { config, aws } => check_config(&config, aws).await?,
        Command::SnsVerify {
            file,
            cert,
            at,
            config,
        } => return sns_verify(&file, cert.as_deref(), at.as_deref(), config.as_deref()).await,
        Command::Healthcheck { url, insecure } => {
            commands::healthcheck_command(&url, insecure).await?;
        }
        command @ (Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Silence { .. }
        | Command::Unsilence { .. }) => control(command).await?,
        Command::Breaker { command } => println!("{}", breaker(command).await?),
        Command::Approvals { command } => {
            let (config, vote) = approvals_vote(command)?;
            println!("{}", commands::approvals_command(&config, vote).await?);
        }
        Command::Targets { config, json } => {
            print!("{}", commands::targets_command(&config, json).await?);
        }
        Command::Ui {
            command: UiCommand::RotateKey { config },
        } => println!("{}", commands::ui_rotate_key_command(&config).await?),
        Command::Audit { command } => return audit(command).await,
        Command::Rules { command } => return rules(command).await,
        Command::IamPolicy { config, account } => return iam_policy(&config, account.as_deref()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `pause`, `resume`, `silence` and `unsilence`: a people's control of a target, a rule or everything.
async fn control(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pause {
            config,
            target,
            rule,
            instance,
            place,
            reason,
        } => {
            let subject = Subject::of(target, rule, instance);
            print!(
                "{}",
                pause(&config, subject, place, reason.as_deref()).await?
            )
        }
        Command::Resume {
            config,
            target,
            rule,
            instance,
            place,
            reason,
        } => {
            let subject = Subject::of(target, rule, instance);
            println!(
                "{}",
                resume(&config, subject, place, reason.as_deref()).await?
            )
        }
        Command::Silence {
            config,
            target,
            rule,
            instance,
            place,
            length,
            reason,
            by,
        } => print!(
            "{}",
            silence(
                &config,
                Subject::of(target, rule, instance),
                place,
                length.as_deref(),
                reason.as_deref(),
                by.as_deref()
            )
            .await?
        ),
        Command::Unsilence { config, id, reason } => {
            println!(
                "{}",
                commands::unsilence_command(&config, &id, reason.as_deref()).await?
            );
        }
        _ => unreachable!("only the control commands come here"),
    }
    Ok(())
}

/// `iam-policy`: prints the policy.
fn iam_policy(config: &Path, account: Option<&str>) -> anyhow::Result<ExitCode> {
    print!("{}", commands::iam_policy_command(config, account)?);
    Ok(ExitCode::SUCCESS)
}

/// `rules test`: the report of the config's rules on an alert file, or on a suite's cases (failing when any
/// case came to another rule).
async fn rules(command: RulesCommand) -> anyhow::Result<ExitCode> {
    let (config, alert, suite, source, json) = match command {
        RulesCommand::Replay {
            config,
            since,
            json,
        } => {
            let config = commands::load_config(&config)?;
            print!(
                "{}",
                reflex::replay::replay_command(&config, &since, json).await?
            );
            return Ok(ExitCode::SUCCESS);
        }
        RulesCommand::Test {
            config,
            alert,
            suite,
            source,
            json,
        } => (config, alert, suite, source, json),
    };
    if let Some(suite) = suite {
        let report = commands::rules_suite_command(&config, &suite)?;
        print!("{}", report.text);
        return Ok(if report.passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let alert = alert.ok_or_else(|| anyhow::anyhow!("--alert or --suite is required"))?;
    print!(
        "{}",
        commands::rules_test_command(&config, &alert, source.as_deref(), json)?
    );
    Ok(ExitCode::SUCCESS)
}

/// `remediate`: runs the remedy once on the named target, or the named rule once, and prints the run's
/// summary.
async fn remediate(command: Command) -> anyhow::Result<()> {
    let Command::Remediate {
        config,
        load_balancer,
        target_group,
        place,
        rule,
        instance_id,
        labels,
        reason,
        dry_run,
    } = command
    else {
        unreachable!("called with `reflex remediate` only")
    };
    let asked = match rule {
        Some(name) => commands::Manual::Rule {
            name,
            instance_id,
            labels: labels.into_iter().collect(),
            place: place.place(),
        },
        None if instance_id.is_some() || !labels.is_empty() => {
            anyhow::bail!("--instance-id and --label are for a rule's run: give --rule NAME too")
        }
        // clap requires exactly one of the two; the pair is checked once more like every other.
        None => commands::Manual::Target(
            TargetRef::from_pair(load_balancer, target_group)?,
            place.place(),
        ),
    };
    let summary = commands::remediate_command(&config, asked, reason, dry_run).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// A `--label KEY=VALUE` argument.
fn key_value(argument: &str) -> Result<(String, String), String> {
    match argument.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{argument:?} is not KEY=VALUE")),
    }
}

/// `check-config`: loads the configuration and its TLS files, with `--aws` probes the targets, and prints
/// the windows' summary.
async fn check_config(config: &Path, aws: bool) -> anyhow::Result<()> {
    let loaded = commands::load_config(config)?;
    reflex::load_tls(&loaded)?;
    if aws {
        for line in commands::probe_targets_command(&loaded).await? {
            println!("{line}");
        }
    }
    print!(
        "{}",
        commands::windows_summary(&loaded, jiff::Timestamp::now())
    );
    if !loaded.rules.is_empty() {
        println!(
            "{} rule(s) compiled, each with its ladder",
            loaded.rules.len()
        );
    }
    println!("{}: ok", config.display());
    Ok(())
}

/// `sns-verify`: checks a saved SNS delivery; a failure when it does not verify, saying why.
async fn sns_verify(
    file: &Path,
    cert: Option<&Path>,
    at: Option<&str>,
    config: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let outcome = commands::sns_verify_command(file, cert, at, config).await?;
    if let Err(reason) = outcome {
        println!("{reason}");
        return Ok(ExitCode::FAILURE);
    }
    println!("verified");
    Ok(ExitCode::SUCCESS)
}

/// What a brake command names: a target (`--target`), a rule (`--rule`), an instance (`--instance`), or
/// everything.
enum Subject {
    Target(String),
    Rule(String),
    Instance(String),
    Everything,
}

impl Subject {
    /// What `--target`, `--rule` and `--instance` (which clap keeps apart) name.
    fn of(target: Option<String>, rule: Option<String>, instance: Option<String>) -> Self {
        match (target, rule, instance) {
            (_, Some(rule), _) => Self::Rule(rule),
            (_, None, Some(instance)) => Self::Instance(instance),
            (Some(target), None, None) => Self::Target(target),
            (None, None, None) => Self::Everything,
        }
    }

    /// The name given, if any.
    fn name(&self) -> Option<&str> {
        match self {
            Self::Target(name) | Self::Rule(name) | Self::Instance(name) => Some(name),
            Self::Everything => None,
        }
    }

    /// As the controls take it, in `place`.
    fn named<'a>(&'a self, place: &'a Place) -> Option<Named<'a>> {
        let names = match self {
            Self::Rule(_) => Names::Rule,
            Self::Instance(_) => Names::Instance,
            Self::Target(_) | Self::Everything => Names::Target,
        };
        self.name().map(|name| Named { name, place, names })
    }
}

/// `pause`: pauses a target (or everything) for a reason; without one, lists the pauses.
async fn pause(
    config: &Path,
    subject: Subject,
    place: PlaceArgs,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let place = place.of(subject.name())?;
    commands::pause_command(config, subject.named(&place), reason).await
}

/// `resume`: lifts the pause of a target (or of everything).
async fn resume(
    config: &Path,
    subject: Subject,
    place: PlaceArgs,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let place = place.of(subject.name())?;
    commands::resume_command(config, subject.named(&place), reason).await
}

/// `silence`: refuses options that do not go together, then silences a target (or everything) or, without
/// options, lists the silences in force.
async fn silence(
    config: &Path,
    subject: Subject,
    place: PlaceArgs,
    length: Option<&str>,
    reason: Option<&str>,
    by: Option<&str>,
) -> anyhow::Result<String> {
    if length.is_some() && reason.is_none() {
        anyhow::bail!("--reason is required with --for: say why (it is recorded)");
    }
    if length.is_none() && (subject.name().is_some() || reason.is_some() || by.is_some()) {
        anyhow::bail!(
            "--for is required to silence: say how long (90s, 15m, 2h); without options, the \
             silences in force are listed"
        );
    }
    let place = place.of(subject.name())?;
    commands::silence_command(config, subject.named(&place), length, reason, by).await
}

/// `breaker reset` and `breaker status`: what each prints.
async fn breaker(command: BreakerCommand) -> anyhow::Result<String> {
    match command {
        BreakerCommand::Reset {
            config,
            target,
            rule,
            place,
            reason,
        } => {
            let subject = Subject::of(target, rule, None);
            let place = place.of(subject.name())?;
            let named = subject
                .named(&place)
                .ok_or_else(|| anyhow::anyhow!("--target or --rule names the breaker to close"))?;
            commands::breaker_reset_command(&config, named, &reason).await
        }
        BreakerCommand::Status { config } => commands::breaker_status_command(&config).await,
    }
}

/// `approvals list|approve|reject`: the configuration, and the vote with the approver's token unless listing.
fn approvals_vote(
    command: ApprovalsCommand,
) -> anyhow::Result<(PathBuf, Option<(commands::CliVote, String)>)> {
    Ok(match command {
        ApprovalsCommand::List { config } => (config, None),
        ApprovalsCommand::Approve {
            config,
            id,
            token_file,
        } => {
            let token = commands::approver_token(token_file.as_deref())?;
            let ballot = reflex::approvals::Ballot::Approve;
            let vote = commands::CliVote { id, ballot };
            (config, Some((vote, token)))
        }
        ApprovalsCommand::Reject {
            config,
            id,
            reason,
            token_file,
        } => {
            let token = commands::approver_token(token_file.as_deref())?;
            let ballot = reflex::approvals::Ballot::Reject(reason);
            let vote = commands::CliVote { id, ballot };
            (config, Some((vote, token)))
        }
    })
}

/// `audit list|prune|anchor|verify|export`; a failure when `verify` finds the chain broken.
async fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::List {
            config,
            limit,
            json,
            stuck,
        } => print!(
            "{}",
            if stuck {
                commands::audit_stuck_command(&config, json).await?
            } else {
                commands::audit_list_command(&config, limit, json).await?
            }
        ),
        AuditCommand::Prune { config, older_than } => {
            let removed = commands::audit_prune_command(&config, older_than).await?;
            println!("removed {removed} audit entries older than {older_than} days");
        }
        AuditCommand::Anchor { config } => {
            println!("{}", commands::audit_anchor_command(&config).await?)
        }
        AuditCommand::Verify { config, anchor } => {
            match commands::audit_verify_command(&config, anchor.as_deref()).await? {
                Ok(verified) => println!("{verified}"),
                Err(broken) => {
                    println!("{broken}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        AuditCommand::Export { config, since } => {
            commands::audit_export_command(&config, &since).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// mimalloc: the request path allocates many small short-lived buffers (JSON, headers), where it is markedly
/// cheaper than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
