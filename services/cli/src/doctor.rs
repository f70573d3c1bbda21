//! `snapferry doctor`: a preflight over the backup account and a source account that finds,
//! before the first backup fails, what makes backups fail with the tools in this space:
//! keys and key policies, the pipeline bus policy, queues without DLQs, snapshot quota
//! headroom, and resources that cannot be protected as they are. Each finding says what is
//! wrong, which AWS error it will cause, and the exact fix.
//!
//! The AWS facts behind the checks: a cross-account copy of an encrypted snapshot needs the
//! source key's policy to admit the backup account (`kms:Decrypt`, `kms:DescribeKey`,
//! `kms:CreateGrant` for AWS resources), or the copy fails with `KMSKeyNotAccessibleFault`
//! (RDS User Guide, USER_ShareSnapshot, "Sharing encrypted snapshots"); snapshots with
//! permanent or persistent options (Oracle and SQL Server TDE) cannot be shared (same page);
//! Multi-AZ DB cluster snapshots cannot be copied (RDS User Guide, Multi-AZ DB cluster
//! limitations); RDS Custom snapshots cannot be copied to another account (RDS Custom
//! limitations); a queue without a redrive policy retries a failing message until its
//! retention ends and then deletes it (SQS Developer Guide, dead-letter queues).

use crate::account::{Account, SourceAccount};
use crate::table::Grid;
use aws_sdk_kms::types::{KeyManagerType, KeyState};
use serde::Serialize;
use serde_json::{Value, json};
use snapferry::ResourceKind;
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::permissions::action_matches;
use snapferry::routing::{Routing, Side};
use snapferry::store::Stores;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// The sharing key's alias, as the source stack creates it.
pub const SHARING_KEY_ALIAS: &str = "alias/snapferry-sharing";

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  snapferry doctor --profile backup --source-profile prod\n  \
    snapferry doctor --profile backup --source-account 111111111111 --extra-regions eu-west-1 --json")]
pub struct DoctorArgs {
    /// The backup account (`--profile` / `--account`).
    #[command(flatten)]
    pub account: Account,
    /// A source account (optional): its sharing key, queues, quotas and resources.
    #[command(flatten)]
    pub source: SourceAccount,
    /// The backup account's key (in the home region and each extra region).
    #[arg(long, default_value = snapferry::permissions::BACKUP_KEY_ALIAS)]
    pub backup_key: String,
    /// The source account's sharing key.
    #[arg(long, default_value = SHARING_KEY_ALIAS)]
    pub sharing_key: String,
    /// The extra regions copies go to.
    #[arg(long, value_delimiter = ',')]
    pub extra_regions: Vec<String>,
    /// Warn when a snapshot quota is this full.
    #[arg(long, default_value_t = 80)]
    pub quota_warning_percent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Works, at a cost worth knowing.
    Note,
    /// Will fail later (e.g. when a quota fills), or fails without a trace.
    Warning,
    /// Backups fail now.
    Error,
}

/// One thing wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A short name of the check, stable for scripts.
    pub check: &'static str,
    pub account: String,
    pub region: String,
    /// What it is about: a key, a bus, a queue, a resource.
    pub subject: String,
    pub problem: String,
    /// The AWS error it will cause.
    pub aws_error: String,
    pub fix: String,
}

/// What the checks know about the setup.
#[derive(Debug, Clone)]
pub struct Setup {
    pub backup_key: String,
    pub sharing_key: String,
    pub extra_regions: Vec<String>,
    pub quota_warning_percent: u64,
}

struct Report<'a> {
    c: &'a Clients,
    findings: Vec<Finding>,
}

impl Report<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        severity: Severity,
        check: &'static str,
        subject: &str,
        problem: String,
        aws_error: &str,
        fix: String,
    ) {
        self.findings.push(Finding {
            severity,
            check,
            account: self.c.account.clone(),
            region: self.c.region.clone(),
            subject: subject.to_string(),
            problem,
            aws_error: aws_error.to_string(),
            fix,
        });
    }
}

/// A policy's statements that allow, as JSON values.
fn allow_statements(policy: &str) -> Vec<Value> {
    let parsed: Value = serde_json::from_str(policy).unwrap_or(Value::Null);
    let statements = match &parsed["Statement"] {
        Value::Array(all) => all.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    };
    statements.into_iter().filter(|s| s["Effect"] == "Allow").collect()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(all) => all.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Whether a statement's principal is `account` (its id, its root, or a role in it).
fn names_account(statement: &Value, account: &str) -> bool {
    let principal = &statement["Principal"];
    if principal == "*" {
        // Open to everyone, narrowed by conditions (an organization, say): admitted.
        return true;
    }
    strings(&principal["AWS"]).iter().any(|p| p == account || p.starts_with(&format!("arn:aws:iam::{account}:")))
}

fn allows(statement: &Value, action: &str) -> bool {
    strings(&statement["Action"]).iter().any(|a| action_matches(a, action))
}

/// The actions of `needed` that no statement naming `account` allows.
fn missing(policy: &str, account: &str, needed: &[&'static str]) -> Vec<&'static str> {
    let statements = allow_statements(policy);
    needed.iter().copied().filter(|a| !statements.iter().any(|s| names_account(s, account) && allows(s, a))).collect()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The actions a backup account needs on a source's sharing key (AWS's cross-account copy).
const SHARING_KEY_ACTIONS: &[&str] = &["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"];
/// What the copy and restore steps need on the backup key (through the key policy, or the
/// account's IAM when the policy delegates to it).
const BACKUP_KEY_ACTIONS: &[&str] =
    &["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"];

/// A key that is not enabled: what it breaks and how to bring it back.
fn key_state(r: &mut Report<'_>, subject: &str, meta: &aws_sdk_kms::types::KeyMetadata, breaks: &str) {
    let id = meta.key_id();
    match meta.key_state() {
        Some(KeyState::Enabled) | None => {}
        Some(KeyState::PendingDeletion) => r.add(
            Severity::Error,
            "key-pending-deletion",
            subject,
            format!(
                "the key is scheduled for deletion{}: {breaks}",
                match meta.deletion_date() {
                    Some(d) => format!(" on {d}"),
                    None => String::new(),
                }
            ),
            "KMSKeyNotAccessibleFault (KMS: KMSInvalidStateException)",
            format!("aws kms cancel-key-deletion --key-id {id} && aws kms enable-key --key-id {id}"),
        ),
        Some(other) => r.add(
            Severity::Error,
            "key-not-enabled",
            subject,
            format!("the key is {}: {breaks}", other.as_str()),
            "KMSKeyNotAccessibleFault (KMS: DisabledException)",
            format!("aws kms enable-key --key-id {id}"),
        ),
    }
}

async fn describe_key(c: &Clients, key: &str) -> Result<Option<aws_sdk_kms::types::KeyMetadata>> {
    match c.kms.describe_key().key_id(key).send().await {
        Ok(out) => Ok(out.key_metadata().cloned()),
        Err(e) => match Error::from_sdk("DescribeKey", e) {
            Error::NotFound { .. } => Ok(None),
            Error::Permanent { code, .. } if code == "NotFoundException" => Ok(None),
            e => Err(e),
        },
    }
}

async fn key_policy(c: &Clients, key_id: &str) -> Result<String> {
    let out = c
        .kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .map_err(|e| Error::from_sdk("GetKeyPolicy", e))?;
    Ok(out.policy().unwrap_or_default().to_string())
}

/// The backup key in one region: it exists, is enabled, and its policy lets the account's
/// roles (the copy and restore steps) use it.
async fn backup_key(r: &mut Report<'_>, alias: &str) -> Result<()> {
    let subject = format!("backup key {alias}");
    let Some(meta) = describe_key(r.c, alias).await? else {
        r.add(
            Severity::Error,
            "backup-key-missing",
            &subject,
            "no such key: copies cannot be encrypted with the backup account's own key".into(),
            "KMSKeyNotAccessibleFault (KMS: NotFoundException)",
            format!("deploy the backup stack in this region, or create a key and `aws kms create-alias --alias-name {alias} --target-key-id <key id>`"),
        );
        return Ok(());
    };
    key_state(r, &subject, &meta, "every copy into this account fails");
    let policy = key_policy(r.c, meta.key_id()).await?;
    let account = r.c.account.clone();
    let lacking = missing(&policy, &account, BACKUP_KEY_ACTIONS);
    if !lacking.is_empty() {
        let statement = json!({
            "Sid": "snapferry-copy-and-restore",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": BACKUP_KEY_ACTIONS,
            "Resource": "*"
        });
        r.add(
            Severity::Error,
            "backup-key-policy",
            &subject,
            format!("the key policy does not let this account's roles use the key ({})", lacking.join(", ")),
            "KMSKeyNotAccessibleFault on CopyDBSnapshot / CopySnapshot",
            format!("add to the key policy (it delegates to the roles' IAM policies):\n{}", pretty(&statement)),
        );
    }
    Ok(())
}

/// The pipeline bus admits `source`'s events.
async fn bus_admits(r: &mut Report<'_>, routing: &Routing, source: &str) -> Result<()> {
    let bus = &routing.pipeline_bus;
    let out = match r.c.events.describe_event_bus().name(bus).send().await {
        Ok(out) => out,
        Err(e) => {
            return match Error::from_sdk("DescribeEventBus", e) {
                Error::NotFound { .. } => {
                    r.add(
                        Severity::Error,
                        "bus-missing",
                        &format!("event bus {bus}"),
                        "the pipeline bus does not exist".into(),
                        "ResourceNotFoundException on the source's PutEvents",
                        "deploy the backup stack".into(),
                    );
                    Ok(())
                }
                e => Err(e),
            };
        }
    };
    let policy = out.policy().unwrap_or_default();
    if missing(policy, source, &["events:PutEvents"]).is_empty() {
        return Ok(());
    }
    let statement = json!({
        "Sid": format!("snapferry-source-{source}"),
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{source}:root")},
        "Action": "events:PutEvents",
        "Resource": out.arn().unwrap_or_default()
    });
    r.add(
        Severity::Error,
        "bus-policy",
        &format!("event bus {bus}"),
        format!("the bus policy does not admit source account {source}: its \"Snapshot Shared\" events are dropped"),
        "AccessDeniedException on the forwarding rule's PutEvents (the event is lost, not retried)",
        format!(
            "add {source} to the backup stack's allowlist and deploy, or add the statement:\n{}",
            pretty(&statement)
        ),
    );
    Ok(())
}

/// Every step of `side` has its queue, and the queue its DLQ.
async fn queues(r: &mut Report<'_>, routing: &Routing, side: Side) -> Result<()> {
    for f in routing.functions.iter().filter(|f| f.account == side) {
        let url = match r.c.sqs.get_queue_url().queue_name(&f.queue).send().await {
            Ok(out) => out.queue_url().unwrap_or_default().to_string(),
            Err(e) => match Error::from_sdk("GetQueueUrl", e) {
                Error::NotFound { .. } => {
                    r.add(
                        Severity::Error,
                        "queue-missing",
                        &format!("queue {}", f.queue),
                        format!("step {} has no queue: its events are not delivered", f.name),
                        "none: EventBridge drops what it cannot deliver",
                        "deploy the stack of this account".into(),
                    );
                    continue;
                }
                e => return Err(e),
            },
        };
        let out =
            r.c.sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
                .send()
                .await
                .map_err(|e| Error::from_sdk("GetQueueAttributes", e))?;
        let redrive = out
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy))
            .filter(|p| !p.is_empty());
        if redrive.is_none() {
            let dlq = routing.dlq_name(f);
            let policy = json!({
                "deadLetterTargetArn": format!("arn:aws:sqs:{}:{}:{dlq}", r.c.region, r.c.account),
                "maxReceiveCount": routing.max_receive_count
            });
            r.add(
                Severity::Error,
                "queue-without-dlq",
                &format!("queue {}", f.queue),
                format!(
                    "step {}'s queue has no DLQ: a message that keeps failing is retried until it expires, then lost",
                    f.name
                ),
                "none: the failure leaves no trace",
                format!(
                    "aws sqs set-queue-attributes --queue-url {url} --attributes '{{\"RedrivePolicy\":{}}}'",
                    serde_json::to_string(&policy.to_string()).unwrap_or_default()
                ),
            );
        }
    }
    Ok(())
}

/// The backup account's copy ledger table is there, with the keys the copy step writes.
async fn copy_ledger(r: &mut Report<'_>, routing: &Routing) -> Result<()> {
    let table = &routing.copy_ledger;
    let subject = format!("table {table}");
    let create = format!(
        "deploy the backup account's stack (it creates the table), or: aws dynamodb create-table --table-name {table} \
         --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
         --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE --billing-mode PAY_PER_REQUEST"
    );
    let described = match r.c.dynamodb.describe_table().table_name(table).send().await {
        Ok(out) => out.table,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => None,
        Err(e) => return Err(Error::from_sdk("DescribeTable", e)),
    };
    let Some(described) = described else {
        r.add(
            Severity::Error,
            "copy-ledger-missing",
            &subject,
            "the copy ledger is missing: copy-shared-snapshot cannot take a copy slot, and every copy waits".into(),
            "ResourceNotFoundException",
            create,
        );
        return Ok(());
    };
    let keys: Vec<(String, String)> = described
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_string(), k.key_type().as_str().to_string()))
        .collect();
    let wanted = [("pk".to_string(), "HASH".to_string()), ("sk".to_string(), "RANGE".to_string())];
    if keys != wanted {
        r.add(
            Severity::Error,
            "copy-ledger-keys",
            &subject,
            format!("the copy ledger's keys are {keys:?}, not pk (HASH) and sk (RANGE): its writes fail"),
            "ValidationException",
            format!("delete the table (aws dynamodb delete-table --table-name {table}) and {create}"),
        );
    }
    Ok(())
}

/// Each snapshot quota has headroom.
async fn quotas(r: &mut Report<'_>, kinds: &[ResourceKind], warn_percent: u64) -> Result<()> {
    for kind in kinds {
        let Some(q) = r.c.store(*kind).quota_usage().await? else { continue };
        if q.max == 0 || q.used * 100 < q.max * warn_percent {
            continue;
        }
        let severity = if q.used >= q.max { Severity::Error } else { Severity::Warning };
        r.add(
            severity,
            "snapshot-quota",
            &format!("quota {}", q.name),
            format!("{} of {} used ({}%)", q.used, q.max, q.used * 100 / q.max),
            "SnapshotQuotaExceeded / SnapshotLimitExceeded on the next snapshot or copy",
            "shorten the retention (RETENTION), delete snapshots snapferry does not manage, or raise the quota in Service Quotas".into(),
        );
    }
    Ok(())
}

/// The source's sharing key admits the backup account for cross-account copies.
async fn sharing_key(r: &mut Report<'_>, alias: &str, backup_account: &str) -> Result<()> {
    let subject = format!("sharing key {alias}");
    let Some(meta) = describe_key(r.c, alias).await? else {
        r.add(
            Severity::Error,
            "sharing-key-missing",
            &subject,
            "no such key: snapshots on AWS-managed keys cannot be re-encrypted for sharing".into(),
            "KMSKeyNotAccessibleFault",
            "deploy the source stack in this account and region".into(),
        );
        return Ok(());
    };
    key_state(r, &subject, &meta, "no snapshot can be shared or copied");
    let policy = key_policy(r.c, meta.key_id()).await?;
    let lacking = missing(&policy, backup_account, SHARING_KEY_ACTIONS);
    let grants_for_aws = allow_statements(&policy).iter().any(|s| {
        names_account(s, backup_account)
            && allows(s, "kms:CreateGrant")
            && strings(&s["Condition"]["Bool"]["kms:GrantIsForAWSResource"]).iter().any(|v| v == "true")
    });
    if lacking.is_empty() && grants_for_aws {
        return Ok(());
    }
    // The statements the source stack writes for the backup account.
    let policy = snapferry::kms::sharing_key_policy(&r.c.account, &r.c.region, &[backup_account.to_string()]);
    let statements: Vec<Value> =
        allow_statements(&policy.to_string()).into_iter().filter(|s| !names_account(s, &r.c.account)).collect();
    let problem = if lacking.is_empty() {
        format!(
            "the key policy lets backup account {backup_account} create grants for anything, not only for AWS resources"
        )
    } else {
        format!("the key policy does not admit backup account {backup_account} ({})", lacking.join(", "))
    };
    r.add(
        if lacking.is_empty() { Severity::Warning } else { Severity::Error },
        "sharing-key-policy",
        &subject,
        problem,
        if lacking.is_empty() {
            "none (a broader grant than needed)"
        } else {
            "KMSKeyNotAccessibleFault on the backup account's copy"
        },
        format!("add to the key policy:\n{}", pretty(&Value::Array(statements))),
    );
    Ok(())
}

/// Resources on AWS-managed or broken keys, and those snapferry cannot protect as they are.
async fn resources(r: &mut Report<'_>, kinds: &[ResourceKind]) -> Result<()> {
    let mut keys: BTreeMap<String, Option<aws_sdk_kms::types::KeyMetadata>> = BTreeMap::new();
    for kind in kinds {
        for res in r.c.store(*kind).list_resources().await? {
            if !res.members.is_empty() {
                continue; // An EC2 instance: its volumes are looked at one by one.
            }
            let Some(key) = res.kms_key_id.clone().filter(|_| res.encrypted) else { continue };
            if !keys.contains_key(&key) {
                keys.insert(key.clone(), describe_key(r.c, &key).await?);
            }
            let subject = format!("{kind} {}", res.id);
            match &keys[&key] {
                Some(meta) if meta.key_manager() == Some(&KeyManagerType::Aws) => r.add(
                    Severity::Note,
                    "aws-managed-key",
                    &subject,
                    "on the AWS-managed key, which cannot be shared: each backup is first copied onto the sharing key \
                     (one more snapshot copy per backup: its copy time, and the intermediate copy's storage until the \
                     backup account has its own copy)"
                        .into(),
                    "none: snapferry re-encrypts (other tools fail here with InvalidParameterValue)",
                    "none needed; to save the extra copy, move the resource to a customer managed key that admits the backup account".into(),
                ),
                Some(meta) => key_state(r, &subject, meta, "its snapshots cannot be created or copied"),
                None => r.add(
                    Severity::Error,
                    "key-missing",
                    &subject,
                    format!("its key {key} cannot be described (deleted, or not readable by this role)"),
                    "KMSKeyNotAccessibleFault",
                    "restore access to the key (kms:DescribeKey) or, if it is gone, restore the resource from a backup".into(),
                ),
            }
        }
    }
    use snapferry::kinds::Unprotectable;
    let checks = kinds.iter().flat_map(|k| snapferry::kinds::of(*k).unprotectable_checks);
    for check in checks {
        match check {
            Unprotectable::CustomOrPermanentOptions => rds_instances(r).await?,
            Unprotectable::NonAuroraClusters => non_aurora_clusters(r).await?,
        }
    }
    Ok(())
}

/// Instances on RDS Custom, or with permanent or persistent options (TDE).
async fn rds_instances(r: &mut Report<'_>) -> Result<()> {
    let mut pages = r.c.rds.describe_db_instances().into_paginator().send();
    let mut unprotectable: Vec<(String, String, &'static str, String)> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::from_sdk("DescribeDBInstances", e))?;
        for db in page.db_instances() {
            let id = db.db_instance_identifier().unwrap_or_default().to_string();
            let engine = db.engine().unwrap_or_default();
            if engine.starts_with("custom-") {
                unprotectable.push((
                    id.clone(),
                    format!("RDS Custom ({engine}): its snapshots cannot be copied to another account"),
                    "InvalidParameterCombination on CopyDBSnapshot",
                    "back it up within its account (RDS Custom automated backups), and leave it out of the selection"
                        .into(),
                ));
                continue;
            }
            for group in db.option_group_memberships() {
                // A default option group cannot be given options (RDS User Guide, Working with option groups).
                let Some(name) = group.option_group_name().filter(|n| !n.starts_with("default:")) else { continue };
                let out =
                    r.c.rds
                        .describe_option_groups()
                        .option_group_name(name)
                        .send()
                        .await
                        .map_err(|e| Error::from_sdk("DescribeOptionGroups", e))?;
                let sticky: Vec<String> = out
                    .option_groups_list()
                    .iter()
                    .flat_map(|g| g.options())
                    .filter(|o| o.persistent() == Some(true) || o.permanent() == Some(true))
                    .filter_map(|o| o.option_name().map(str::to_string))
                    .collect();
                if !sticky.is_empty() {
                    unprotectable.push((
                        id.clone(),
                        format!(
                            "option group {name} has permanent or persistent options ({}): its snapshots cannot be shared",
                            sticky.join(", ")
                        ),
                        "InvalidParameterValue on ModifyDBSnapshotAttribute",
                        "back it up in its own account (AWS Backup or native backups to S3), and leave it out of the selection".into(),
                    ));
                }
            }
        }
    }
    for (id, problem, error, fix) in unprotectable {
        r.add(Severity::Warning, "cannot-protect", &format!("db-instance {id}"), problem, error, fix);
    }
    Ok(())
}

/// Multi-AZ DB clusters (a cluster of a non-Aurora engine): their snapshots cannot be copied.
async fn non_aurora_clusters(r: &mut Report<'_>) -> Result<()> {
    let mut pages = r.c.rds.describe_db_clusters().into_paginator().send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::from_sdk("DescribeDBClusters", e))?;
        for c in page.db_clusters() {
            let engine = c.engine().unwrap_or_default();
            // The kinds that list clusters by engine (Aurora) cover it, or none does.
            let covered = snapferry::kinds::KINDS.iter().any(|k| k.engines.is_some() && k.covers_engine(Some(engine)));
            if !covered && !engine.is_empty() {
                found.push((c.db_cluster_identifier().unwrap_or_default().to_string(), engine.to_string()));
            }
        }
    }
    for (id, engine) in found {
        r.add(
            Severity::Warning,
            "cannot-protect",
            &format!("db-cluster {id}"),
            format!("a Multi-AZ DB cluster ({engine}): its snapshots cannot be copied"),
            "InvalidParameterValue on CopyDBClusterSnapshot",
            "restore its snapshot to a single-AZ DB instance and protect that, or back it up with AWS Backup".into(),
        );
    }
    Ok(())
}

/// Every check over the backup account and, when given, a source account.
pub async fn check(
    backup: &Clients,
    source: Option<&Clients>,
    routing: &Routing,
    setup: &Setup,
) -> Result<Vec<Finding>> {
    let kinds: Vec<ResourceKind> = snapferry::kinds::all().collect();
    let mut findings = Vec::new();
    let mut r = Report { c: backup, findings: Vec::new() };
    backup_key(&mut r, &setup.backup_key).await?;
    if let Some(s) = source {
        bus_admits(&mut r, routing, &s.account).await?;
    }
    queues(&mut r, routing, Side::Target).await?;
    copy_ledger(&mut r, routing).await?;
    quotas(&mut r, &kinds, setup.quota_warning_percent).await?;
    findings.append(&mut r.findings);
    for region in &setup.extra_regions {
        let there = backup.for_region(region);
        let mut r = Report { c: &there, findings: Vec::new() };
        backup_key(&mut r, &setup.backup_key).await?;
        quotas(&mut r, &kinds, setup.quota_warning_percent).await?;
        findings.append(&mut r.findings);
    }
    if let Some(s) = source {
        let mut r = Report { c: s, findings: Vec::new() };
        sharing_key(&mut r, &setup.sharing_key, &backup.account).await?;
        queues(&mut r, routing, Side::Source).await?;
        quotas(&mut r, &kinds, setup.quota_warning_percent).await?;
        resources(&mut r, &kinds).await?;
        findings.append(&mut r.findings);
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(findings)
}

/// The findings for people: a table, then each fix in full.
pub fn render(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no findings".into();
    }
    // The AWS error (a code and its cause) leaves the table first when it does not fit.
    let header = ["#", "severity", "account / region", "subject", "problem", "AWS error"];
    let mut t = Grid::new(&header).movable(&[5], "#");
    for (i, f) in findings.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            serde_json::to_value(f.severity).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            format!("{}\n{}", f.account, f.region),
            f.subject.clone(),
            f.problem.clone(),
            f.aws_error.clone(),
        ]);
    }
    let mut out = t.render();
    out.push_str("\n\nFixes:\n");
    for (i, f) in findings.iter().enumerate() {
        out.push_str(&format!("\n#{} {} ({}):\n{}\n", i + 1, f.subject, f.check, f.fix));
    }
    out
}

/// 1 when any finding is a warning or an error (notes only inform).
pub fn exit_code(findings: &[Finding]) -> ExitCode {
    if findings.iter().any(|f| f.severity > Severity::Note) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// `snapferry doctor`.
pub async fn run(args: DoctorArgs) -> Result<ExitCode> {
    let out = args.account.output();
    let backup = args.account.clients().await?;
    let source = args.source.clients(&args.account).await?;
    let setup = Setup {
        backup_key: args.backup_key.clone(),
        sharing_key: args.sharing_key.clone(),
        extra_regions: args.extra_regions.clone(),
        quota_warning_percent: args.quota_warning_percent,
    };
    let findings = check(&backup, source.as_ref(), &Routing::load(), &setup).await?;
    out.print(&findings, || render(&findings))?;
    Ok(exit_code(&findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_as_a_table_then_each_fix() {
        let finding = |severity, check, subject: &str, problem: &str, aws_error: &str, fix: &str| Finding {
            severity,
            check,
            account: "111111111111".into(),
            region: "eu-west-1".into(),
            subject: subject.into(),
            problem: problem.into(),
            aws_error: aws_error.into(),
            fix: fix.into(),
        };
        let findings = [
            finding(
                Severity::Error,
                "key-not-enabled",
                "db-instance orders",
                "the key is Disabled: its snapshots cannot be created or copied",
                "KMSKeyNotAccessibleFault (KMS: DisabledException)",
                "aws kms enable-key --key-id 1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            finding(
                Severity::Note,
                "aws-managed-key",
                "ebs vol-0abc1234def567890",
                "on the AWS-managed key, which cannot be shared",
                "none: snapferry re-encrypts",
                "none needed",
            ),
        ];
        insta::assert_snapshot!(render(&findings));
        assert_eq!(exit_code(&findings), ExitCode::from(1));
        assert_eq!(exit_code(&findings[1..]), ExitCode::SUCCESS, "notes only inform");
    }

    #[test]
    fn a_policy_admits_an_account_by_id_root_or_role_and_by_wildcard_actions() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": ["333333333333"]}, "Action": ["kms:Decrypt"], "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "111111111111"}, "Action": "kms:*", "Resource": "*"}
        ]})
        .to_string();
        assert!(missing(&policy, "222222222222", SHARING_KEY_ACTIONS).is_empty());
        assert_eq!(missing(&policy, "333333333333", SHARING_KEY_ACTIONS), ["kms:DescribeKey", "kms:CreateGrant"]);
        assert_eq!(missing(&policy, "111111111111", &["kms:Decrypt"]), ["kms:Decrypt"], "a Deny admits nothing");
        assert_eq!(missing("", "111111111111", &["events:PutEvents"]), ["events:PutEvents"], "no policy");
    }
}
