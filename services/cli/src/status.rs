//! `snapferry status`: per protected database, cluster and volume, how far its newest
//! backup got, the achieved recovery point against the RPO, and for a stalled chain the
//! step it is stuck at and why.
//!
//! Everything comes from what AWS reports: the snapshots' own tags (which each step writes
//! as it finishes), the accounts a snapshot is shared with, and the dead letters of every
//! step's DLQ. The backup account is the one that knows whether a backup made it; the
//! source account (`--source-profile` / `--source-account`) adds the snapshots that have
//! not reached it yet.

use crate::account::{Account, SourceAccount, age};
use crate::dlq::{self, DeadLetter};
use crate::table::Grid;
use chrono::{DateTime, Utc};
use serde::Serialize;
use snapferry::ResourceKind;
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::lineage::{Lineage, MadeBy, Mark};
use snapferry::routing::Routing;
use snapferry::store::Stores;
use snapferry::store::{Snapshot, Status};
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  snapferry status --profile backup --source-profile prod\n  \
    snapferry status orders-db --profile backup --extra-regions eu-west-1 --json")]
pub struct StatusArgs {
    /// The backup account (`--profile` / `--account`): copies, restore tests, dead letters.
    #[command(flatten)]
    pub account: Account,
    /// Only this database, cluster or volume (its id).
    pub resource: Option<String>,
    /// A source account (optional): its snapshots that have not reached the backup account yet.
    #[command(flatten)]
    pub source: SourceAccount,
    /// The extra regions every copy is copied to.
    #[arg(long, value_delimiter = ',')]
    pub extra_regions: Vec<String>,
    /// The recovery point objective: a newest verified copy older than this is a finding.
    #[arg(long, default_value_t = 1440)]
    pub rpo_minutes: u32,
    /// A step that has not happened this long after the one before it is stalled.
    #[arg(long, default_value_t = 60)]
    pub grace_minutes: u32,
    /// Judge as of this time (RFC 3339) instead of now.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
}

/// One snapshot as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotState {
    pub id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub status: String,
}

impl SnapshotState {
    fn of(s: &Snapshot) -> SnapshotState {
        let status = match &s.status {
            Status::Available => "available".to_string(),
            Status::Creating => "creating".to_string(),
            Status::Failed(why) => format!("failed: {why}"),
            Status::Other(other) => other.clone(),
        };
        SnapshotState { id: s.id.clone(), created_at: s.created_at, status }
    }
}

/// How a resource's backups stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Health {
    /// The newest verified copy is within the RPO and nothing is stuck.
    Healthy,
    /// A backup is on its way (within the grace of its current step).
    InProgress { step: String },
    /// A backup is stuck at `step`.
    Stalled { step: String, reason: String },
    /// The newest verified copy is older than the RPO, or there is none.
    PastRpo,
}

impl Health {
    pub fn is_finding(&self) -> bool {
        matches!(self, Health::Stalled { .. } | Health::PastRpo)
    }
}

/// One protected resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceStatus {
    pub source_account: String,
    pub resource: String,
    pub kind: ResourceKind,
    /// The newest snapshot the source account took (when it was looked at).
    pub source_snapshot: Option<SnapshotState>,
    /// The accounts the newest backup is shared with, until the backup account copied it.
    pub shared_with: Vec<String>,
    /// The newest copy in the backup account's home region.
    pub backup_copy: Option<SnapshotState>,
    /// The extra regions the newest copy is in, and those it is missing from.
    pub regions: BTreeMap<String, bool>,
    pub last_verified_at: Option<DateTime<Utc>>,
    pub restore_seconds: Option<f64>,
    /// The data recovery point its restore test's data checks measured, where they ran.
    pub data_recovery_seconds: Option<f64>,
    /// Age of the newest verified copy.
    pub recovery_point_seconds: Option<i64>,
    pub rpo_seconds: i64,
    pub health: Health,
}

/// What status judges by.
#[derive(Debug, Clone)]
pub struct Policy {
    pub now: DateTime<Utc>,
    pub rpo: chrono::Duration,
    pub grace: chrono::Duration,
    pub extra_regions: Vec<String>,
}

fn made_by(s: &Snapshot, by: MadeBy) -> bool {
    Lineage::of(s).is(by)
}

/// The resource a snapshot backs up, as the backup account knows it: the origin the
/// source's lineage tags name.
fn origin_resource(s: &Snapshot) -> &str {
    Lineage::of(s).origin_resource().unwrap_or(&s.resource_id)
}

fn newest<'a>(snapshots: impl Iterator<Item = &'a Snapshot>) -> Option<&'a Snapshot> {
    snapshots.max_by_key(|s| s.created_at)
}

/// What the source account holds about one resource.
#[derive(Debug, Clone, Default)]
pub struct SourceView {
    pub snapshots: Vec<Snapshot>,
    /// The accounts each snapshot (by ARN) is shared with.
    pub shared: BTreeMap<String, Vec<String>>,
}

/// The judgement for one resource, from its snapshots in both accounts and its dead letters.
pub fn judge(
    key: (&str, &str, ResourceKind),
    source: Option<&SourceView>,
    copies: &[&Snapshot],
    elsewhere: &BTreeMap<String, Vec<String>>,
    letters: &[&DeadLetter],
    policy: &Policy,
) -> ResourceStatus {
    let (account, resource, kind) = key;
    let late = |t: Option<DateTime<Utc>>| t.is_some_and(|t| policy.now - t >= policy.grace);
    let created = source.and_then(|v| newest(v.snapshots.iter().filter(|s| made_by(s, MadeBy::Create))));
    // What the newest run shares: its re-encrypted copy when it has one.
    let shared_snapshot = created.map(|c| {
        source
            .into_iter()
            .flat_map(|v| v.snapshots.iter())
            .find(|s| made_by(s, MadeBy::Share) && Lineage::of(s).source_arn() == Some(c.arn.as_str()))
            .unwrap_or(c)
    });
    let shared_with =
        shared_snapshot.and_then(|s| source.and_then(|v| v.shared.get(&s.arn))).cloned().unwrap_or_default();
    let copy = newest(copies.iter().copied());
    let verified = newest(copies.iter().copied().filter(|c| Lineage::of(c).has(Mark::Verified)));
    let regions: BTreeMap<String, bool> = policy
        .extra_regions
        .iter()
        .map(|r| (r.clone(), copy.is_some_and(|c| elsewhere.get(r).is_some_and(|names| names.contains(&c.name)))))
        .collect();
    let recovery_point = verified.and_then(|v| v.created_at).map(|t| (policy.now - t).num_seconds().max(0));
    // Whether the newest run reached the backup account (unknown without the source: yes).
    let copied =
        shared_snapshot.is_none_or(|s| copies.iter().any(|c| Lineage::of(c).copied_from() == Some(s.arn.as_str())));

    // Where the newest backup is, and whether it has been there too long.
    let (step, since) = match (shared_snapshot, copy) {
        (Some(s), _) if !copied && s.status != Status::Available => ("snapshot", s.created_at),
        (Some(s), _) if !copied && shared_with.is_empty() && !Lineage::of(s).has(Mark::Released) => {
            ("share", s.created_at)
        }
        (Some(s), _) if !copied => ("copy", s.created_at),
        (_, Some(c)) if c.status != Status::Available => ("copy", c.created_at),
        (_, Some(c)) if !Lineage::of(c).has(Mark::Copied) => ("copy (announce)", c.created_at),
        (_, Some(c)) if !Lineage::of(c).has(Mark::Verified) => ("restore test", c.created_at),
        (_, Some(c)) => match regions.iter().any(|(_, there)| !there) {
            true => ("copy to region", c.created_at),
            false => ("", None),
        },
        (_, None) => ("", None),
    };
    let failed = |s: Option<&Snapshot>| match s.map(|s| &s.status) {
        Some(Status::Failed(why)) => Some(why.clone()),
        _ => None,
    };
    let letter = letters.iter().max_by_key(|d| d.sent_at);
    let health = if let Some(d) = letter {
        let at = if step.is_empty() { "dead letter" } else { step };
        Health::Stalled { step: at.to_string(), reason: format!("in the DLQ: {}", d.reason) }
    } else if let Some(why) = failed(shared_snapshot).or_else(|| failed(copy)) {
        Health::Stalled { step: step.to_string(), reason: format!("AWS reports the snapshot failed: {why}") }
    } else if !step.is_empty() && late(since) {
        let reason = "no event moved it on within the grace (lost?): reconcile restarts it".to_string();
        Health::Stalled { step: step.to_string(), reason }
    } else if recovery_point.is_none_or(|age| age > policy.rpo.num_seconds()) && !in_first_backup(since, step, policy) {
        Health::PastRpo
    } else if !step.is_empty() {
        Health::InProgress { step: step.to_string() }
    } else {
        Health::Healthy
    };
    ResourceStatus {
        source_account: account.to_string(),
        resource: resource.to_string(),
        kind,
        source_snapshot: created.map(SnapshotState::of),
        shared_with,
        backup_copy: copy.map(SnapshotState::of),
        regions,
        last_verified_at: verified.and_then(|v| Lineage::of(v).at(Mark::Verified)),
        restore_seconds: verified.and_then(|v| Lineage::of(v).restore_seconds()),
        data_recovery_seconds: verified.and_then(|v| Lineage::of(v).data_recovery_seconds()),
        recovery_point_seconds: recovery_point,
        rpo_seconds: policy.rpo.num_seconds(),
        health,
    }
}

/// A resource's first backup, still within its grace, has no recovery point yet and is not late.
fn in_first_backup(since: Option<DateTime<Utc>>, step: &str, policy: &Policy) -> bool {
    !step.is_empty() && since.is_some_and(|t| policy.now - t < policy.rpo)
}

/// Every protected resource's status, from the backup account and, when given, a source.
pub async fn collect(
    backup: &Clients,
    source: Option<&Clients>,
    routing: &Routing,
    only: Option<&str>,
    policy: &Policy,
) -> Result<Vec<ResourceStatus>> {
    let kinds: Vec<ResourceKind> = snapferry::kinds::all().collect();
    let mut letters = Vec::new();
    for f in &routing.functions {
        match dlq::show(backup, routing, &f.name).await {
            Ok(found) => letters.extend(found.letters),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(source) = source {
            match dlq::show(source, routing, &f.name).await {
                Ok(found) => letters.extend(found.letters),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut out = Vec::new();
    for kind in kinds {
        let copies: Vec<Snapshot> =
            backup.store(kind).list_managed().await?.into_iter().filter(|s| made_by(s, MadeBy::Copy)).collect();
        let mut elsewhere = BTreeMap::new();
        for region in &policy.extra_regions {
            let there = backup.store_in(kind, region).list_managed().await?;
            elsewhere.insert(region.clone(), there.into_iter().map(|s| s.name).collect::<Vec<_>>());
        }
        let mut by_resource: BTreeMap<(String, String), Vec<&Snapshot>> = BTreeMap::new();
        for c in &copies {
            let account = Lineage::of(c).source_account().unwrap_or_default().to_string();
            by_resource.entry((account, origin_resource(c).to_string())).or_default().push(c);
        }
        let mut views: BTreeMap<String, SourceView> = BTreeMap::new();
        if let Some(source) = source {
            let store = source.store(kind);
            for s in store.list_managed().await? {
                let resource = origin_resource(&s).to_string();
                let view = views.entry(resource.clone()).or_default();
                let shared = store.shared_with(&s).await?;
                view.shared.insert(s.arn.clone(), shared);
                view.snapshots.push(s);
                by_resource.entry((source.account.clone(), resource)).or_default();
            }
        }
        for ((account, resource), copies) in &by_resource {
            if only.is_some_and(|r| r != resource) {
                continue;
            }
            let view = source.filter(|s| &s.account == account).and_then(|_| views.get(resource));
            let about = letters_about(&letters, account, resource);
            out.push(judge((account, resource, kind), view, copies, &elsewhere, &about, policy));
        }
    }
    Ok(out)
}

/// The dead letters about `account`'s `resource` ([`dlq::is_about`]).
fn letters_about<'a>(letters: &'a [DeadLetter], account: &str, resource: &str) -> Vec<&'a DeadLetter> {
    letters.iter().filter(|d| dlq::is_about(d.account.as_deref(), d.resource.as_deref(), account, resource)).collect()
}

/// The table for people: one row per resource, sized to fit 80 columns.
pub fn render(statuses: &[ResourceStatus], now: DateTime<Utc>) -> String {
    if statuses.is_empty() {
        return "no protected resources found".into();
    }
    let mut t = Grid::new(&["resource", "newest backup", "copies", "verified", "recovery point", "state"]);
    // Why each stalled one is stuck, below the table: too long for a cell.
    let mut reasons = Vec::new();
    for s in statuses {
        let newest = match (&s.source_snapshot, &s.backup_copy) {
            (Some(src), _) => src.created_at,
            (None, Some(c)) => c.created_at,
            _ => None,
        };
        let mut copies = match &s.backup_copy {
            Some(c) if c.status == "available" => "home".to_string(),
            Some(c) => format!("home {}", c.status),
            None => "-".to_string(),
        };
        for (region, there) in &s.regions {
            copies.push_str(&format!("\n{region}{}", if *there { "" } else { " missing" }));
        }
        let mut verified = match (s.last_verified_at, s.restore_seconds) {
            (Some(at), Some(secs)) => format!("{} ago\nrestore {}", age((now - at).num_seconds()), age(secs as i64)),
            (Some(at), None) => format!("{} ago", age((now - at).num_seconds())),
            _ => "never".to_string(),
        };
        if let Some(point) = s.data_recovery_seconds {
            verified.push_str(&format!("\ndata {} old", age(point as i64)));
        }
        let point = match s.recovery_point_seconds {
            Some(p) => format!("{} / {}", age(p), age(s.rpo_seconds)),
            None => format!("- / {}", age(s.rpo_seconds)),
        };
        let state = match &s.health {
            Health::Healthy => "healthy".to_string(),
            Health::InProgress { step } => format!("in progress: {step}"),
            Health::Stalled { step, reason } => {
                reasons.push(format!("{} ({}): stalled at {step}: {reason}", s.resource, s.source_account));
                format!("STALLED at {step}")
            }
            Health::PastRpo => "PAST RPO".to_string(),
        };
        t.row(vec![
            format!("{}\n{} {}", s.resource, s.kind, s.source_account),
            newest.map(|t| format!("{} ago", age((now - t).num_seconds()))).unwrap_or_else(|| "-".into()),
            copies,
            verified,
            point,
            state,
        ]);
    }
    let mut out = t.render();
    if !reasons.is_empty() {
        out.push_str("\n\n");
        out.push_str(&reasons.join("\n"));
    }
    out
}

/// `snapferry status`.
pub async fn run(args: StatusArgs) -> Result<ExitCode> {
    let out = args.account.output();
    let backup = args.account.clients().await?;
    let source = args.source.clients(&args.account).await?;
    let policy = Policy {
        now: args.at.unwrap_or_else(Utc::now),
        rpo: chrono::Duration::minutes(i64::from(args.rpo_minutes)),
        grace: chrono::Duration::minutes(i64::from(args.grace_minutes)),
        extra_regions: args.extra_regions.clone(),
    };
    let statuses = collect(&backup, source.as_ref(), &Routing::load(), args.resource.as_deref(), &policy).await?;
    if let (Some(r), true) = (&args.resource, statuses.is_empty()) {
        return Err(Error::NotFound { op: "status", what: format!("no backups of {r}") });
    }
    out.print(&statuses, || render(&statuses, policy.now))?;
    Ok(exit_code(&statuses))
}

/// 1 when any resource is stalled or past its RPO.
pub fn exit_code(statuses: &[ResourceStatus]) -> ExitCode {
    if statuses.iter().any(|s| s.health.is_finding()) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dead_letters_count_for_the_account_and_resource_they_name() {
        let letter = |account: Option<&str>, resource: &str| {
            let mut d = dlq::tests::letter("m", "r", Some(resource), 0);
            d.account = account.map(str::to_string);
            d
        };
        let letters = [
            letter(Some("111111111111"), "orders"),
            letter(Some("444444444444"), "orders"),
            letter(None, "orders"),
            letter(Some("111111111111"), "billing"),
        ];
        let about = letters_about(&letters, "111111111111", "orders");
        let accounts: Vec<_> = about.iter().map(|d| d.account.as_deref()).collect();
        assert_eq!(accounts, [Some("111111111111"), None], "not the neighbour's database of the same name");
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, hour, 0, 0).unwrap()
    }

    fn row(resource: &str, kind: ResourceKind, verified_hours_ago: Option<u32>, health: Health) -> ResourceStatus {
        let snapshot = |id: &str, hour: u32| SnapshotState {
            id: id.into(),
            created_at: Some(at(hour)),
            status: "available".into(),
        };
        ResourceStatus {
            source_account: "111111111111".into(),
            resource: resource.into(),
            kind,
            source_snapshot: Some(snapshot("snapferry-x", 11)),
            shared_with: Vec::new(),
            backup_copy: Some(snapshot("snapferry-x", 11)),
            regions: BTreeMap::from([("eu-west-1".to_string(), !matches!(health, Health::Stalled { .. }))]),
            last_verified_at: verified_hours_ago.map(|h| at(12 - h)),
            restore_seconds: verified_hours_ago.map(|_| 412.0),
            data_recovery_seconds: verified_hours_ago.map(|_| 75.0),
            recovery_point_seconds: verified_hours_ago.map(|h| i64::from(h) * 3600 + 600),
            rpo_seconds: 86_400,
            health,
        }
    }

    /// A kind as the contract spells it.
    fn kind(name: &str) -> ResourceKind {
        name.parse().expect("a kind of the contract")
    }

    #[test]
    fn the_status_table_names_each_state() {
        let statuses = [
            row("orders", kind("db-instance"), Some(1), Health::Healthy),
            row("billing", kind("db-cluster"), Some(2), Health::InProgress { step: "restore test".into() }),
            row(
                "vol-0abc1234def567890",
                kind("ebs"),
                Some(3),
                Health::Stalled {
                    step: "copy".into(),
                    reason: "in the DLQ: KMSKeyNotAccessibleFault: the key policy does not admit this account".into(),
                },
            ),
            row("legacy", kind("db-instance"), None, Health::PastRpo),
        ];
        insta::assert_snapshot!(render(&statuses, at(12)));
        assert_eq!(render(&[], at(12)), "no protected resources found");
        assert_eq!(exit_code(&statuses[..2]), ExitCode::SUCCESS);
        assert_eq!(exit_code(&statuses), ExitCode::from(1));
    }
}
