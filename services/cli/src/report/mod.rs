//! `snapferry report`: the evidence an auditor asks for, per protected resource over a
//! period: every copy held with its restore test (time to restore, data checks, what they
//! found, the data recovery point), the recovery point achieved over time against the RPO,
//! the gaps past it, failures with their reasons, and each copy's lock. Written as a
//! self-contained HTML page with charts ([`html`]), and as CSV and JSON with the same figures.
//!
//! It reads only what AWS holds: the copies' own tags in the backup account (each step
//! records there what it did), the extra regions' copies, the locks, and the dead letters
//! of every step's DLQ. So it sees as far back as the oldest copy retention has kept, and
//! dead letters for as long as their DLQ keeps them; [`Report::horizon`] says so in the
//! report itself.

pub mod html;

use crate::account::{Account, SourceAccount};
use crate::dlq::{self, DeadLetter};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use snapferry::ResourceKind;
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::lineage::{Lineage, MadeBy, Mark};
use snapferry::routing::Routing;
use snapferry::store::{Snapshot, Status, Stores};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  snapferry report --profile backup --extra-regions eu-west-1\n  \
    snapferry report --profile backup --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z \
    --source-accounts 111111111111 --out audit-2026-11")]
pub struct ReportArgs {
    /// The backup account (`--profile` / `--account`): its copies, their restore tests, the
    /// dead letters.
    #[command(flatten)]
    pub account: Account,
    /// A source account (optional): its steps' dead letters too.
    #[command(flatten)]
    pub source: SourceAccount,
    /// Only the resources of these source accounts (every source's when unset).
    #[arg(long, value_delimiter = ',')]
    pub source_accounts: Vec<String>,
    /// The extra regions every copy is copied to.
    #[arg(long, value_delimiter = ',')]
    pub extra_regions: Vec<String>,
    /// The start of the period (RFC 3339); 30 days before `--to` when unset.
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// The end of the period (RFC 3339); now when unset.
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
    /// The recovery point objective the recovery point is judged against.
    #[arg(long, default_value_t = 1440)]
    pub rpo_minutes: u32,
    /// The directory to write report.html, copies.csv, resources.csv, failures.csv and
    /// report.json to (created if missing).
    #[arg(long, default_value = "snapferry-report")]
    pub out: PathBuf,
}

/// What a report covers.
#[derive(Debug, Clone)]
pub struct Query {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rpo: Duration,
    pub extra_regions: Vec<String>,
    /// Only these source accounts' resources; every source's when empty.
    pub source_accounts: Vec<String>,
}

/// The whole report: what the HTML, CSV and JSON show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub backup_account: String,
    pub home_region: String,
    pub extra_regions: Vec<String>,
    pub rpo_seconds: i64,
    /// The oldest copy held: nothing before it can be shown.
    pub oldest_copy_at: Option<DateTime<Utc>>,
    /// How far back the report can see, and why.
    pub horizon: String,
    pub resources: Vec<ResourceReport>,
}

/// One protected resource of one source account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceReport {
    pub source_account: String,
    pub resource: String,
    pub kind: ResourceKind,
    /// Its copies taken in the period, oldest first.
    pub copies: Vec<CopyReport>,
    /// The recovery point achieved: at each moment, the age of the source snapshot of the
    /// newest copy verified by then. A point where it changes, and the period's ends.
    pub recovery_points: Vec<RecoveryPoint>,
    /// The worst recovery point in the period, from its first verified copy on.
    pub worst_recovery_point_seconds: Option<i64>,
    /// The share of the period, from its first verified copy on, within the RPO.
    pub within_rpo_percent: Option<f64>,
    /// Stretches past the RPO.
    pub gaps: Vec<Gap>,
    /// Failed restore tests and dead letters, with their reasons.
    pub failures: Vec<Failure>,
}

/// One copy in the backup account, as its tags record it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyReport {
    /// snapferry's name of the copy (its identifier; EBS: its `snapferry:id`).
    pub copy: String,
    pub arn: String,
    /// When the source snapshot it is a copy of was taken: its recovery point.
    pub taken_at: Option<DateTime<Utc>>,
    pub copied_at: Option<DateTime<Utc>>,
    /// The regions holding it: the home region, and the extra regions it reached.
    pub regions: Vec<String>,
    pub restore: RestoreState,
    pub verified_at: Option<DateTime<Utc>>,
    /// From the restore call to the restored resource being available.
    pub restore_seconds: Option<f64>,
    /// What the data checks found in its restore, where they ran.
    pub tables: Option<u32>,
    pub rows: Option<u64>,
    pub newest_data_at: Option<DateTime<Utc>>,
    pub data_recovery_seconds: Option<f64>,
    pub failed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    /// Locked against deletion (EBS Snapshot Lock); `None` for kinds AWS cannot lock.
    pub locked: Option<bool>,
}

/// What a copy's restore test came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreState {
    Verified,
    /// Verified, but its data fell against the previous good copy, and not accepted.
    Suspicious,
    /// Found suspicious, then accepted by an operator.
    Accepted,
    Failed,
    /// Not tested (sampling, or not yet).
    NotTested,
}

impl RestoreState {
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreState::Verified => "verified",
            RestoreState::Suspicious => "suspicious",
            RestoreState::Accepted => "accepted",
            RestoreState::Failed => "failed",
            RestoreState::NotTested => "not tested",
        }
    }

    fn of(lineage: &Lineage<'_>) -> RestoreState {
        if lineage.has(Mark::Verified) {
            match (lineage.has(Mark::Suspicious), lineage.has(Mark::Accepted)) {
                (true, true) => RestoreState::Accepted,
                (true, false) => RestoreState::Suspicious,
                _ => RestoreState::Verified,
            }
        } else if lineage.has(Mark::RestoreFailed) {
            RestoreState::Failed
        } else {
            RestoreState::NotTested
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RecoveryPoint {
    pub at: DateTime<Utc>,
    pub seconds: i64,
}

/// A stretch of the period past the RPO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gap {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The worst recovery point within it.
    pub worst_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub at: Option<DateTime<Utc>>,
    /// Where: "restore test", or the step whose DLQ holds it.
    pub step: String,
    pub reason: String,
    /// The copy, for a failed restore test; the message, for a dead letter.
    pub subject: String,
}

/// A dead letter, as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// The step whose DLQ holds it.
    pub step: String,
    pub message_id: String,
    pub reason: String,
    pub account: Option<String>,
    pub resource: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl Letter {
    fn of(step: &str, d: DeadLetter) -> Letter {
        Letter {
            step: step.to_string(),
            message_id: d.message_id,
            reason: d.reason,
            account: d.account,
            resource: d.resource,
            sent_at: d.sent_at,
        }
    }
}

/// What the backup account holds, gathered once: the input of [`build`].
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    pub account: String,
    pub region: String,
    /// snapferry's copies in the home region.
    pub copies: Vec<Snapshot>,
    /// The names of snapferry's finished copies in each extra region.
    pub elsewhere: BTreeMap<String, BTreeSet<String>>,
    /// The ids of the copies locked against deletion.
    pub locked: BTreeSet<String>,
    /// Every step's dead letters.
    pub letters: Vec<Letter>,
    pub dlq_retention_days: u32,
}

/// Reads what the backup account (and a source, for its dead letters) holds.
pub async fn gather(backup: &Clients, source: Option<&Clients>, routing: &Routing, query: &Query) -> Result<Holdings> {
    let mut h = Holdings {
        account: backup.account.clone(),
        region: backup.region.clone(),
        dlq_retention_days: routing.dlq_retention_days,
        ..Holdings::default()
    };
    for kind in snapferry::kinds::all() {
        let store = backup.store(kind);
        let copies: Vec<Snapshot> =
            store.list_managed().await?.into_iter().filter(|s| Lineage::of(s).is(MadeBy::Copy)).collect();
        h.locked.extend(store.locked(&copies).await?);
        h.copies.extend(copies);
        for region in &query.extra_regions {
            // A copy still being made there is not a backup there yet.
            let there = backup.store_in(kind, region).list_managed().await?;
            let made = there.into_iter().filter(|s| s.status == Status::Available).map(|s| s.name);
            h.elsewhere.entry(region.clone()).or_default().extend(made);
        }
    }
    for account in std::iter::once(backup).chain(source) {
        for f in &routing.functions {
            match dlq::show(account, routing, &f.name).await {
                Ok(shown) => h.letters.extend(shown.letters.into_iter().map(|d| Letter::of(&f.name, d))),
                // A step not deployed in that account has no DLQ there.
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(h)
}

/// The report of `holdings` for `query`, as of `now`.
pub fn build(holdings: &Holdings, query: &Query, now: DateTime<Utc>) -> Report {
    let to = query.to.min(now);
    let mut by_resource: BTreeMap<(String, String, ResourceKind), Vec<&Snapshot>> = BTreeMap::new();
    for c in &holdings.copies {
        let lineage = Lineage::of(c);
        let account = lineage.source_account().unwrap_or_default().to_string();
        if !query.source_accounts.is_empty() && !query.source_accounts.contains(&account) {
            continue;
        }
        let resource = lineage.origin_resource().unwrap_or(&c.resource_id).to_string();
        by_resource.entry((account, resource, c.kind)).or_default().push(c);
    }
    let oldest_copy_at = holdings.copies.iter().filter_map(taken_at).min();
    let resources = by_resource
        .into_iter()
        .map(|((account, resource, kind), copies)| {
            let held: Vec<CopyReport> = copies.iter().map(|c| copy_report(c, holdings)).collect();
            let points = recovery_points(&held, query.from, to);
            let (gaps, within) = gaps(&points, query.rpo);
            let mut failures: Vec<Failure> = held
                .iter()
                .filter(|c| c.restore == RestoreState::Failed && in_period(c.failed_at, query.from, to))
                .map(|c| Failure {
                    at: c.failed_at,
                    step: "restore test".into(),
                    reason: c.failure.clone().unwrap_or_else(|| "restore test failed (no reason recorded)".into()),
                    subject: c.copy.clone(),
                })
                .collect();
            failures.extend(
                holdings
                    .letters
                    .iter()
                    .filter(|d| dlq::is_about(d.account.as_deref(), d.resource.as_deref(), &account, &resource))
                    .filter(|d| d.sent_at.is_none_or(|t| t >= query.from && t <= to))
                    .map(|d| Failure {
                        at: d.sent_at,
                        step: d.step.clone(),
                        reason: d.reason.clone(),
                        subject: d.message_id.clone(),
                    }),
            );
            failures.sort_by_key(|f| f.at);
            let mut copies: Vec<CopyReport> =
                held.into_iter().filter(|c| in_period(c.taken_at, query.from, to)).collect();
            copies.sort_by(|a, b| (a.taken_at, &a.copy).cmp(&(b.taken_at, &b.copy)));
            ResourceReport {
                source_account: account,
                resource,
                kind,
                copies,
                worst_recovery_point_seconds: points.iter().map(|p| p.seconds).max(),
                within_rpo_percent: within,
                recovery_points: points,
                gaps,
                failures,
            }
        })
        .collect();
    let horizon = format!(
        "This report reads what AWS holds. A copy retention has expired is gone with the tags \
         that recorded its restore test, so it sees back to the oldest copy held ({}); dead \
         letters leave their DLQ after {} days, so failures older than that are not shown. \
         Restore tests and recovery points before then are not in this report, not missing.",
        oldest_copy_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_else(|| "none held".into()),
        holdings.dlq_retention_days
    );
    Report {
        generated_at: now,
        from: query.from,
        to,
        backup_account: holdings.account.clone(),
        home_region: holdings.region.clone(),
        extra_regions: query.extra_regions.clone(),
        rpo_seconds: query.rpo.num_seconds(),
        oldest_copy_at,
        horizon,
        resources,
    }
}

fn in_period(t: Option<DateTime<Utc>>, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    t.is_some_and(|t| t >= from && t <= to)
}

/// When the source snapshot a copy was made of was taken (the copy's own start where its
/// tags do not say: later than the source's, so never a better recovery point than it was).
fn taken_at(c: &Snapshot) -> Option<DateTime<Utc>> {
    Lineage::of(c).snapshot_taken_at().or(c.created_at)
}

fn copy_report(c: &Snapshot, holdings: &Holdings) -> CopyReport {
    let lineage = Lineage::of(c);
    let figures = lineage.restored_figures();
    let mut regions = vec![holdings.region.clone()];
    regions.extend(holdings.elsewhere.iter().filter(|(_, names)| names.contains(&c.name)).map(|(r, _)| r.clone()));
    CopyReport {
        copy: c.name.clone(),
        arn: c.arn.clone(),
        taken_at: taken_at(c),
        copied_at: lineage.at(Mark::Copied),
        regions,
        restore: RestoreState::of(&lineage),
        verified_at: lineage.at(Mark::Verified),
        restore_seconds: lineage.restore_seconds(),
        tables: figures.map(|f| f.tables),
        rows: figures.map(|f| f.rows),
        newest_data_at: figures.and_then(|f| f.newest_data_at),
        data_recovery_seconds: lineage.data_recovery_seconds(),
        failed_at: lineage.at(Mark::RestoreFailed),
        failure: lineage.restore_failure().map(str::to_string),
        locked: snapferry::kinds::of(c.kind).lockable.then(|| holdings.locked.contains(&c.id)),
    }
}

/// The recovery point over `from..=to`: at each moment, the age of the source snapshot of
/// the newest copy verified by then. It grows with time and drops at each verification;
/// the points are where it changes, and the ends. It starts at the first verified copy
/// held, or at `from` where one verified before it is held.
pub fn recovery_points(copies: &[CopyReport], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<RecoveryPoint> {
    let mut verified: Vec<(DateTime<Utc>, DateTime<Utc>)> = copies
        .iter()
        .filter(|c| matches!(c.restore, RestoreState::Verified | RestoreState::Accepted | RestoreState::Suspicious))
        .filter_map(|c| Some((c.verified_at?, c.taken_at?)))
        .filter(|(at, _)| *at <= to)
        .collect();
    verified.sort();
    let point =
        |at: DateTime<Utc>, base: DateTime<Utc>| RecoveryPoint { at, seconds: (at - base).num_seconds().max(0) };
    let mut base: Option<DateTime<Utc>> = verified.iter().filter(|(at, _)| *at <= from).map(|(_, taken)| *taken).max();
    let mut points: Vec<RecoveryPoint> = base.map(|b| point(from, b)).into_iter().collect();
    for (at, taken) in verified.into_iter().filter(|(at, _)| *at > from) {
        if let Some(b) = base {
            points.push(point(at, b));
        }
        let newer = base.map_or(taken, |b| b.max(taken));
        base = Some(newer);
        points.push(point(at, newer));
    }
    if let Some(b) = base {
        points.push(point(to, b));
    }
    points.dedup();
    points
}

/// The stretches of a recovery point series past `rpo`, and the share of its span within.
pub fn gaps(points: &[RecoveryPoint], rpo: Duration) -> (Vec<Gap>, Option<f64>) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return (Vec::new(), None) };
    let span = (last.at - first.at).num_seconds();
    let rpo = rpo.num_seconds();
    let mut out: Vec<Gap> = Vec::new();
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // Within a pair the recovery point grows by the time passed (the same copy), or drops
        // at one moment (a newer copy verified).
        if b.at <= a.at || b.seconds < a.seconds || b.seconds <= rpo {
            continue;
        }
        let crossed = a.at + Duration::seconds((rpo - a.seconds).max(0));
        match out.last_mut() {
            Some(gap) if gap.to >= crossed => {
                gap.to = b.at;
                gap.worst_seconds = gap.worst_seconds.max(b.seconds);
            }
            _ => out.push(Gap { from: crossed, to: b.at, worst_seconds: b.seconds }),
        }
    }
    let past: i64 = out.iter().map(|g| (g.to - g.from).num_seconds()).sum();
    let within = if span > 0 { Some(100.0 * (span - past) as f64 / span as f64) } else { Some(100.0) };
    (out, within)
}

/// One row per copy.
pub fn copies_csv(report: &Report) -> String {
    let mut out = csv_row(&[
        "source_account",
        "resource",
        "kind",
        "copy",
        "taken_at",
        "copied_at",
        "regions",
        "restore",
        "verified_at",
        "restore_seconds",
        "tables",
        "rows",
        "newest_data_at",
        "data_recovery_seconds",
        "failed_at",
        "failure",
        "locked",
    ]);
    for r in &report.resources {
        for c in &r.copies {
            out.push_str(&csv_row(&[
                &r.source_account,
                &r.resource,
                &r.kind.to_string(),
                &c.copy,
                &time(c.taken_at),
                &time(c.copied_at),
                &c.regions.join(" "),
                c.restore.as_str(),
                &time(c.verified_at),
                &c.restore_seconds.map(|s| format!("{s:.1}")).unwrap_or_default(),
                &c.tables.map(|n| n.to_string()).unwrap_or_default(),
                &c.rows.map(|n| n.to_string()).unwrap_or_default(),
                &time(c.newest_data_at),
                &c.data_recovery_seconds.map(|s| format!("{s:.0}")).unwrap_or_default(),
                &time(c.failed_at),
                c.failure.as_deref().unwrap_or_default(),
                &c.locked.map(|l| l.to_string()).unwrap_or_default(),
            ]));
        }
    }
    out
}

/// One row per resource: its copies, how they restored, its recovery point against the RPO.
pub fn resources_csv(report: &Report) -> String {
    let mut out = csv_row(&[
        "source_account",
        "resource",
        "kind",
        "copies",
        "verified",
        "failed",
        "suspicious",
        "worst_recovery_point_seconds",
        "rpo_seconds",
        "within_rpo_percent",
        "gaps",
        "failures",
    ]);
    for r in &report.resources {
        let count = |state: RestoreState| r.copies.iter().filter(|c| c.restore == state).count().to_string();
        out.push_str(&csv_row(&[
            &r.source_account,
            &r.resource,
            &r.kind.to_string(),
            &r.copies.len().to_string(),
            &count(RestoreState::Verified),
            &count(RestoreState::Failed),
            &count(RestoreState::Suspicious),
            &r.worst_recovery_point_seconds.map(|s| s.to_string()).unwrap_or_default(),
            &report.rpo_seconds.to_string(),
            &r.within_rpo_percent.map(|p| format!("{p:.1}")).unwrap_or_default(),
            &r.gaps.len().to_string(),
            &r.failures.len().to_string(),
        ]));
    }
    out
}

/// One row per failure: failed restore tests and dead letters, with their reasons.
pub fn failures_csv(report: &Report) -> String {
    let mut out = csv_row(&["source_account", "resource", "kind", "at", "step", "subject", "reason"]);
    for r in &report.resources {
        for f in &r.failures {
            out.push_str(&csv_row(&[
                &r.source_account,
                &r.resource,
                &r.kind.to_string(),
                &time(f.at),
                &f.step,
                &f.subject,
                &f.reason,
            ]));
        }
    }
    out
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default()
}

/// A CSV line (RFC 4180): a field with a comma, a quote or a line break is quoted.
fn csv_row(fields: &[&str]) -> String {
    let quoted: Vec<String> =
        fields
            .iter()
            .map(|f| {
                if f.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.to_string()
                }
            })
            .collect();
    format!("{}\r\n", quoted.join(","))
}

/// The files a report is written to.
#[derive(Debug, Clone)]
pub struct Written {
    pub html: PathBuf,
    pub copies_csv: PathBuf,
    pub resources_csv: PathBuf,
    pub failures_csv: PathBuf,
    pub json: PathBuf,
}

/// Writes the report's four files into `dir` (created if missing).
pub fn write(report: &Report, dir: &Path) -> Result<Written> {
    let io = |what: &Path, e: std::io::Error| Error::Config(format!("cannot write {}: {e}", what.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| Error::BadInput(format!("report as JSON: {e}")))?;
    let written = Written {
        html: dir.join("report.html"),
        copies_csv: dir.join("copies.csv"),
        resources_csv: dir.join("resources.csv"),
        failures_csv: dir.join("failures.csv"),
        json: dir.join("report.json"),
    };
    for (path, text) in [
        (&written.html, html::render(report)),
        (&written.copies_csv, copies_csv(report)),
        (&written.resources_csv, resources_csv(report)),
        (&written.failures_csv, failures_csv(report)),
        (&written.json, json),
    ] {
        std::fs::write(path, text).map_err(|e| io(path, e))?;
    }
    Ok(written)
}

/// A line per resource, for the terminal.
pub fn summary(report: &Report) -> Vec<String> {
    report
        .resources
        .iter()
        .map(|r| {
            let verified = r.copies.iter().filter(|c| c.restore == RestoreState::Verified).count();
            let worst = r
                .worst_recovery_point_seconds
                .map(|s| format!("worst recovery point {}", crate::account::age(s)))
                .unwrap_or_else(|| "no verified copy".into());
            let within = r.within_rpo_percent.map(|p| format!(", {p:.0}% within the RPO")).unwrap_or_default();
            let n = |count: usize, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
            format!(
                "{} ({} {}): {}, {verified} verified, {worst}{within}, {}",
                r.resource,
                r.kind,
                r.source_account,
                n(r.copies.len(), "copy", "copies"),
                n(r.failures.len(), "failure", "failures")
            )
        })
        .collect()
}

/// `snapferry report`.
pub async fn run(args: ReportArgs) -> Result<ExitCode> {
    let backup = args.account.clients().await?;
    let source = args.source.clients(&args.account).await?;
    let now = Utc::now();
    let to = args.to.unwrap_or(now);
    let from = args.from.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(Error::BadInput(format!("--from ({from}) must be before --to ({to})")));
    }
    let query = Query {
        from,
        to,
        rpo: Duration::minutes(i64::from(args.rpo_minutes)),
        extra_regions: args.extra_regions.clone(),
        source_accounts: args.source_accounts.clone(),
    };
    let bar = args.account.output().progress();
    bar.set_message("reading copies, locks and dead letters");
    let holdings = gather(&backup, source.as_ref(), &Routing::load(), &query).await?;
    bar.finish_and_clear();
    let report = build(&holdings, &query, now);
    let written = write(&report, &args.out)?;
    if args.account.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Error::BadInput(e.to_string()))?);
    } else {
        for line in summary(&report) {
            println!("{line}");
        }
        println!("report: {}", written.html.display());
        let figures = [&written.copies_csv, &written.resources_csv, &written.failures_csv, &written.json];
        println!("figures: {}", figures.map(|p| p.display().to_string()).join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
