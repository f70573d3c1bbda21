//! API economy: AWS calls per backup, by step and operation, from the emulator's request
//! log (each step calls AWS as its own role), next to the fewest calls the chain needs and
//! why; each step makes at most one call more per backup than its minimum.

use chrono::Utc;
use snapferry_e2e::chain::*;
use snapferry_e2e::control;
use std::collections::BTreeMap;

const BACKUPS: usize = 4;

/// The fewest AWS calls each step needs for one backup of a DB instance on the sharing key
/// (home region only, restore-tested), and why: so many per backup, per scheduled run, and
/// per look at something AWS is still doing. How many looks a backup takes depends on how
/// long AWS takes (a copy, a restore), not on the step: each look is a re-check the step
/// sends itself, so a step's looks are its own `sqs:SendMessage` calls, and only the calls
/// beyond what its looks need are judged. Calls that Lambda's SQS event source mapping makes
/// (receive, delete) are not the function's.
const MINIMUM: &[(&str, &str, u32, u32, u32, &str)] = &[
    // (step, action, per backup, per run, per look, why)
    ("create-snapshot", "rds:CreateDBSnapshot", 1, 0, 0, "take the snapshot"),
    ("create-snapshot", "rds:DescribeDBInstances", 0, 1, 0, "the instances to select from"),
    ("create-snapshot", "rds:DescribeDBClusters", 0, 1, 0, "the clusters to select from (KINDS has both)"),
    ("create-snapshot", "rds:DescribeDBSnapshots", 0, 1, 0, "each resource's newest snapshot (MIN_INTERVAL_MINUTES)"),
    (
        "create-snapshot",
        "sqs:SendMessage",
        0,
        1,
        0,
        "the schedule's event: EventBridge's in AWS, the local host's here",
    ),
    (
        "share-snapshot",
        "rds:DescribeDBSnapshots",
        1,
        0,
        0,
        "the event's snapshot as AWS has it: ours, available, its key",
    ),
    ("share-snapshot", "rds:DescribeDBSnapshotAttributes", 1, 0, 0, "whom it is shared with already (a redelivery)"),
    ("share-snapshot", "events:PutEvents", 1, 0, 0, "Snapshot Shared"),
    ("share-snapshot", "rds:ModifyDBSnapshotAttribute", 1, 0, 0, "share it"),
    (
        "copy-shared-snapshot",
        "rds:DescribeDBSnapshots",
        3,
        0,
        1,
        "the shared snapshot as AWS has it; its copy by name, so that a redelivery finds the copy instead of asking \
         for it again (into a full copy quota, perhaps); the copy when RDS says it finished; and one per look of \
         the backstop re-check. The copies in progress come from the copy ledger, not from a listing",
    ),
    (
        "copy-shared-snapshot",
        "dynamodb:PutItem",
        2,
        0,
        0,
        "the copy joins the line before it looks (copies asking at once see each other); the transaction taking \
         its slot writes its entry (IAM, and this count, see a transaction's items' actions)",
    ),
    (
        "copy-shared-snapshot",
        "dynamodb:UpdateItem",
        2,
        0,
        0,
        "the transaction taking the slot counts it for the pool and the source; the one freeing it counts it out",
    ),
    ("copy-shared-snapshot", "dynamodb:Query", 1, 0, 0, "the pool's slots, budgets and line before taking a slot"),
    ("copy-shared-snapshot", "dynamodb:DeleteItem", 1, 0, 0, "the transaction freeing the slot removes the entry"),
    ("copy-shared-snapshot", "rds:CopyDBSnapshot", 1, 0, 0, "copy it onto the backup key"),
    (
        "copy-shared-snapshot",
        "rds:DescribeAccountAttributes",
        0,
        1,
        0,
        "the manual snapshot quota, once per function instance: each source's default budget is its share",
    ),
    ("copy-shared-snapshot", "rds:AddTagsToResource", 1, 0, 0, "mark the copy announced (reconcile reads it)"),
    ("copy-shared-snapshot", "sqs:SendMessage", 0, 0, 1, "the backstop re-check, for an RDS event that never comes"),
    ("copy-shared-snapshot", "events:PutEvents", 1, 0, 0, "Snapshot Copied"),
    ("restore", "rds:DescribeDBSnapshots", 1, 0, 0, "the copy as AWS has it, checked against the restore"),
    ("restore", "rds:RestoreDBInstanceFromDBSnapshot", 1, 0, 0, "the test restore"),
    ("restore", "sqs:SendMessage", 0, 0, 1, "a re-check while the restore is created"),
    ("restore", "rds:DescribeDBInstances", 0, 0, 1, "the restore, at each look"),
    ("restore", "rds:AddTagsToResource", 1, 0, 0, "mark the copy verified"),
    ("restore", "rds:DeleteDBInstance", 1, 0, 0, "remove the test restore"),
    ("restore", "events:PutEvents", 1, 0, 0, "Restore Verified"),
];

#[tokio::test]
async fn each_step_makes_at_most_one_call_more_per_backup_than_it_needs() {
    let p = start(&fast_options()).await;
    let names: Vec<String> = (0..BACKUPS).map(|i| format!("economy-{i}")).collect();
    for name in &names {
        instance(&p.source, name, Encryption::Key(&p.sharing_key), &[]).await;
    }
    p.host.fire(Some("create-snapshot"), Utc::now()).await.expect("fire create-snapshot");
    let mut events = Vec::new();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    run_until(&p, &mut events, "every backup verified", verified(&all)).await;
    settle(&p, &mut events).await;

    // Each step calls AWS as its own role, snapferry-<step>; the test's own set-up calls are not a step's.
    let steps: Vec<&str> = MINIMUM.iter().map(|m| m.0).collect();
    let mut made: BTreeMap<(String, String), usize> = BTreeMap::new();
    for account in [&p.source.account, &p.target.account] {
        for (action, principal, _) in control::calls(account) {
            let Some(step) = principal.as_deref().and_then(|r| r.strip_prefix("snapferry-")) else { continue };
            if !steps.contains(&step) || matches!(action.as_str(), "sqs:ReceiveMessage" | "sqs:DeleteMessage") {
                continue;
            }
            *made.entry((step.to_string(), action)).or_default() += 1;
        }
    }
    let backups = BACKUPS as f64;
    // A step's looks: its re-checks, where a look is what it sends itself.
    let looks = |step: &str| {
        let waits = MINIMUM.iter().any(|m| m.0 == step && m.1 == "sqs:SendMessage" && m.4 > 0);
        let sent = made.get(&(step.to_string(), "sqs:SendMessage".to_string())).copied().unwrap_or(0);
        if waits { sent as f64 / backups } else { 0.0 }
    };
    let needed = |step: &str, action: &str| {
        MINIMUM
            .iter()
            .filter(|m| m.0 == step && m.1 == action)
            .map(|m| f64::from(m.2) + f64::from(m.3) / backups + f64::from(m.4) * looks(step))
            .sum::<f64>()
    };
    let mut table = String::from("| step | operation | calls per backup | minimum |\n|---|---|---:|---:|\n");
    let mut totals: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut keys: Vec<(String, String)> = made.keys().cloned().collect();
    keys.extend(MINIMUM.iter().map(|m| (m.0.to_string(), m.1.to_string())));
    keys.sort();
    keys.dedup();
    for (step, action) in &keys {
        let calls = made.get(&(step.clone(), action.clone())).copied().unwrap_or(0) as f64 / backups;
        let min = needed(step, action);
        table.push_str(&format!("| {step} | {action} | {calls:.2} | {min:.2} |\n"));
        let t = totals.entry(steps.iter().find(|s| *s == step).expect("a step")).or_default();
        t.0 += calls;
        t.1 += min;
    }
    println!("AWS calls per backup ({BACKUPS} backups, one scheduled run):\n{table}");
    for step in ["copy-shared-snapshot", "restore"] {
        println!("{step}: {:.2} looks per backup", looks(step));
    }
    for (step, (calls, min)) in &totals {
        println!("{step}: {calls:.2} calls per backup, minimum {min:.2}");
        assert!(*calls <= min + 1.0, "{step}: {calls:.2} calls per backup, minimum {min:.2}\n{table}");
    }
}
