//! The fault campaign: the whole pipeline, on a mixed set of backups (two DB instances, an
//! Aurora cluster, two EBS volumes; two extra regions), under every fault at once, from a
//! fixed seed. It clears the emulator's fault and drop rules between its phases, so this
//! binary has its own emulator.
//!
//! Faults, and how each is made:
//! - **throttling bursts** on every AWS operation the chain calls, in each account: a fault
//!   per operation (`/_snapferry/faults`), 1 to 3 calls long (the SDK gives up after 3, so a
//!   burst of 3 reaches the step's own retry). SQS operations get at most 2: the harness polls
//!   the same queues, and its calls must not fail. The list is checked both ways: a step
//!   calling an operation not listed, or a listed one never called, fails the campaign.
//! - **copy quotas**: one copy in progress per kind, account and region (emulator config), so
//!   copies queue behind each other and AWS answers `SnapshotQuotaExceeded` /
//!   `ResourceLimitExceeded`.
//! - **snapshot quota full**: two manual DB snapshots per account and region, so the source
//!   account cannot re-encrypt `fc-orders` (its two scheduled snapshots fill it): rejected with
//!   the quota's figures and dead-lettered; then the quota is raised and
//!   `snapferry dlq replay share-snapshot` (SQS's redrive) finishes it.
//! - **`KMSKeyNotAccessibleFault`**: the backup key of the second extra region is disabled, so
//!   AWS (the emulator) refuses every copy into that region; each is dead-lettered with the
//!   reason; then the key is enabled and `snapferry dlq replay copy-shared-snapshot --reason
//!   KMS` finishes them.
//! - **a snapshot deleted mid-chain**: `fc-vol-a`'s backup copy is deleted as soon as it is
//!   announced, before its copies into the extra regions and its restore test.
//! - **a handler killed mid-step**: one invocation each of create-snapshot, share-snapshot,
//!   copy-shared-snapshot and restore runs its handler, then dies before its messages are
//!   deleted ([`snapferry_local::Host::kill_invocation`]); SQS delivers them again.
//! - **every event duplicated**: every rule, and the cross-account forwarding, has a second
//!   target on the same queue or bus.
//! - **events reordered**: every "copy finished" notification (RDS-EVENT-0197, EBS
//!   `copySnapshot`) is held back and delivered after everything it announced was done, but
//!   the first of each kind in each account, which is lost: the copy's re-checks finish it.
//! - **an event dropped**: the cluster's "snapshot created" (RDS-EVENT-0075) is lost; the chain
//!   stalls until reconcile, fired past its grace, restarts it.
//! - **a failed copy**: the backup account's first cluster copy fails (made again).
//! - **a restore that fails**: the first restore test of a database fails (`Restore Failed`).
//! - **a hostile neighbour**: a second allowlisted source account backs up a database named
//!   as the first's (`fc-orders`), floods the backup account with hand-made shares past its
//!   budget of copies held, and announces a snapshot of its own as a copy of the first
//!   account's. Its flood is held to its budget (`Snapshot Rejected` naming it), its forgery
//!   rejected, and the first account's backups are not touched.
//! - **two invocations at once** of every function, as Lambda's event source mapping runs them.
//!
//! Then, counted from outside the pipeline (what the emulator holds and the events it
//! delivered): every snapshot either source made ends verified (a copy in the backup account
//! that AWS describes with its lineage and the verified mark), rejected with a reason (a
//! `Snapshot Rejected` / `Restore Failed` event about it), or dead-lettered with a reason;
//! none is lost or copied twice. Per backup, too: every backup is verified or explicitly
//! rejected with a reason (a `Snapshot
//! Rejected` / `Restore Failed` event, or a dead letter carrying the reason); no step made
//! two snapshots of one resource (in any account or region); no restore-test resource is
//! left; and no message was lost. Message accounting, over the pipeline's step queues and
//! their DLQs in both accounts, from the emulator's per-queue counts and the host's:
//! - **produced**: messages that entered a step queue other than by a replay: EventBridge
//!   deliveries (native and pipeline events, the forwarding), the scheduled events, and what
//!   the steps send themselves (re-checks, retries sent again later, copies into extra
//!   regions, reconcile's restarts), and the held-back events delivered late.
//! - **processed**: messages deleted from a step queue after their handler acknowledged them
//!   (counted by the host when SQS confirms the delete; the emulator's count of deletes must
//!   agree). A message a step wrote to its DLQ itself, with the reason, is acknowledged too.
//! - **dead-lettered**: messages that entered a DLQ: written there by a step (with its reason)
//!   or moved there by SQS's redrive policy after `max_receive_count` receives.
//! - **replayed**: messages taken out of a DLQ and back into their step queue by `snapferry
//!   dlq replay` (the only thing that takes messages out of a DLQ here).
//!
//! Nothing is lost when `produced + replayed = processed + moved to a DLQ by SQS` (every
//! message that entered a step queue left it one of those two ways, none is left), and
//! `dead-lettered = replayed + left in the DLQs` (every dead letter is still there or was
//! replayed). A message deleted without being acknowledged, one that vanished, or one
//! stranded in a queue breaks the first; a dead letter gone without a replay the second.
//!
//! The figures are printed, and written to `$SNAPFERRY_FAULT_CAMPAIGN_REPORT` when it is
//! set (`scripts/test` prints that file). Which message a burst hits depends on timing, so
//! the retry figures vary a little from run to run; the outcomes asserted do not.

use chrono::Utc;
use serde_json::{Value, json};
use snapferry::ResourceKind::{DbCluster, DbInstance, Ebs};
use snapferry::events::Step;
use snapferry::routing::Routing;
use snapferry::store::Stores;
use snapferry::tags;
use snapferry_e2e::chain::*;
use snapferry_e2e::faults::*;
use snapferry_e2e::{OTHER_REGION, REGION, control, fixtures};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

const SEED: u64 = 12;
const SECOND_REGION: &str = "us-west-2";
const ORDERS: &str = "fc-orders";
const BILLING: &str = "fc-billing";
const INVENTORY: &str = "fc-inventory";
/// Shares the hostile neighbour floods the backup account with, and the copies it may hold.
const FLOOD: usize = 5;
const HOSTILE_BUDGET: usize = 3;

/// Every AWS operation the chain calls in the source account, with its service.
const SOURCE_OPERATIONS: &[(&str, &str)] = &[
    ("ec2", "CopySnapshot"),
    ("ec2", "CreateSnapshot"),
    ("ec2", "CreateTags"),
    ("ec2", "DescribeInstances"),
    ("ec2", "DescribeSnapshotAttribute"),
    ("ec2", "DescribeSnapshots"),
    ("ec2", "DescribeVolumes"),
    ("ec2", "ModifySnapshotAttribute"),
    ("events", "PutEvents"),
    ("rds", "AddTagsToResource"),
    ("rds", "CopyDBClusterSnapshot"),
    ("rds", "CopyDBSnapshot"),
    ("rds", "CreateDBClusterSnapshot"),
    ("rds", "CreateDBSnapshot"),
    ("rds", "DescribeAccountAttributes"),
    ("rds", "DescribeDBClusterSnapshotAttributes"),
    ("rds", "DescribeDBClusterSnapshots"),
    ("rds", "DescribeDBClusters"),
    ("rds", "DescribeDBInstances"),
    ("rds", "DescribeDBSnapshotAttributes"),
    ("rds", "DescribeDBSnapshots"),
    ("rds", "ModifyDBClusterSnapshotAttribute"),
    ("rds", "ModifyDBSnapshotAttribute"),
    ("sqs", "DeleteMessageBatch"),
    ("sqs", "ReceiveMessage"),
    ("sqs", "SendMessage"),
];
/// Every AWS operation the chain calls in the backup account, with its service.
const BACKUP_OPERATIONS: &[(&str, &str)] = &[
    ("ec2", "CopySnapshot"),
    ("ec2", "CreateTags"),
    ("ec2", "CreateVolume"),
    ("ec2", "DeleteVolume"),
    ("ec2", "DescribeSnapshots"),
    ("ec2", "DescribeVolumes"),
    // The copy ledger: slots taken, freed and corrected, the flood's refused copy out of the line.
    ("dynamodb", "DeleteItem"),
    ("dynamodb", "PutItem"),
    ("dynamodb", "Query"),
    ("dynamodb", "TransactWriteItems"),
    ("dynamodb", "UpdateItem"),
    ("events", "PutEvents"),
    ("rds", "AddTagsToResource"),
    ("rds", "CopyDBClusterSnapshot"),
    ("rds", "CopyDBSnapshot"),
    ("rds", "CreateDBInstance"),
    ("rds", "DeleteDBCluster"),
    ("rds", "DeleteDBClusterSnapshot"),
    ("rds", "DeleteDBInstance"),
    ("rds", "DescribeAccountAttributes"),
    ("rds", "DescribeDBClusterSnapshots"),
    ("rds", "DescribeDBClusters"),
    ("rds", "DescribeDBInstances"),
    ("rds", "DescribeDBSnapshots"),
    ("rds", "RestoreDBClusterFromSnapshot"),
    ("rds", "RestoreDBInstanceFromDBSnapshot"),
    ("sqs", "DeleteMessageBatch"),
    ("sqs", "ReceiveMessage"),
    ("sqs", "SendMessage"),
];
/// Operations a step calls only in some runs, in either account: throttled too, but a run may
/// not need them (a retry's backoff, the copy step's look at its backlog when a quota is hit,
/// retention looking for EBS locks on what it may delete).
const SOMETIMES: &[(&str, &str)] =
    &[("sqs", "ChangeMessageVisibility"), ("sqs", "GetQueueAttributes"), ("ec2", "DescribeLockedSnapshots")];

/// The throttling error each service answers with (RDS, EC2, and the JSON services).
fn throttling(service: &str) -> (&'static str, u16) {
    match service {
        "rds" => ("Throttling", 400),
        "ec2" => ("RequestLimitExceeded", 503),
        _ => ("ThrottlingException", 400),
    }
}

/// The faults injected, by kind, as counted afterwards.
type Tally = BTreeMap<&'static str, String>;

#[tokio::test]
async fn the_pipeline_survives_the_fault_campaign_and_loses_no_message() {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(SEED);
    let quotas = json!({"rds_instance_copies": 1, "rds_cluster_copies": 1, "ebs_copies": 1});
    control::call("POST", "/_snapferry/config", Some(json!({ "quotas": quotas })));
    if std::env::var_os(LOGS_ENV).is_some() {
        snapferry_e2e::captured_logs();
    }
    let source_clients = snapferry_e2e::clients(&snapferry_e2e::new_account(), REGION).await;
    let hostile = snapferry_e2e::clients(&snapferry_e2e::new_account(), REGION).await;
    let target_clients = snapferry_e2e::clients(&snapferry_e2e::new_account(), REGION).await;
    // The source account's manual snapshot quota only: the backup account's is the sources'.
    control::quotas(&source_clients.account, json!({"manual_db_snapshots": 2}));
    let options = PipelineOptions {
        kinds: vec![DbInstance, DbCluster, Ebs],
        extra_regions: vec![OTHER_REGION.to_string(), SECOND_REGION.to_string()],
        reconcile_grace_minutes: 1,
        // As the stacks deploy it: the backup account reports its copies back, and the source
        // withdraws its shares (so reconcile does not take a finished share for a stalled one).
        release_shares: true,
        // The neighbour may hold three copies of a kind; the first source more than it makes.
        copies_held_per_source: Some(format!("100,{}={HOSTILE_BUDGET}", hostile.account)),
        ..fast_options()
    };
    let p = LocalPipeline::start_many(source_clients, vec![hostile.clone()], target_clients, &options)
        .await
        .expect("start the pipeline");
    let (source, target) = (p.source.account.clone(), p.target.account.clone());
    instance(&p.source, ORDERS, Encryption::AwsManaged, &[]).await;
    instance(&p.source, BILLING, Encryption::Key(&p.sharing_key), &[]).await;
    fixtures::resource(&p.source, DbCluster, INVENTORY, None).await;
    let vol_a = fixtures::resource(&p.source, Ebs, "fc-vol-a", Some(&p.sharing_key)).await;
    let vol_b = fixtures::resource(&p.source, Ebs, "fc-vol-b", None).await;
    let resources = [ORDERS, BILLING, INVENTORY, vol_a.as_str(), vol_b.as_str()];
    let kind_of = |r: &str| match r {
        ORDERS | BILLING => DbInstance,
        INVENTORY => DbCluster,
        _ => Ebs,
    };

    // The faults, all armed before the first backup starts.
    let duplicated = deliver_everything_twice(&p).await;
    let second_key = p.extra_keys.iter().find(|(r, _)| r == SECOND_REGION).map(|(_, k)| k.clone()).expect("key");
    let second = p.target.for_region(SECOND_REGION);
    second.kms.disable_key().key_id(&second_key).send().await.expect("DisableKey");
    let drop = json!({"detail_type": "RDS DB Cluster Snapshot Event", "event_id": "RDS-EVENT-0075", "account": source, "count": 1});
    control::call("POST", "/_snapferry/drop-events", Some(drop));
    for account in [&source, &target] {
        for (detail_type, id) in
            [("RDS DB Snapshot Event", "RDS-EVENT-0197"), ("EBS Snapshot Notification", "copySnapshot")]
        {
            let hold = json!({"detail_type": detail_type, "event_id": id, "account": account});
            control::call("POST", "/_snapferry/drop-events", Some(hold));
        }
    }
    for kind in ["db-cluster", "restore"] {
        let fail = json!({"kind": kind, "account": target, "count": 1});
        control::call("POST", "/_snapferry/fail-completions", Some(fail));
    }
    for (account, step) in [
        (&source, "create-snapshot"),
        (&source, "share-snapshot"),
        (&target, "copy-shared-snapshot"),
        (&target, "restore"),
    ] {
        p.host.kill_invocation(account, step, rng.usize(1..=2)).expect("a hosted step");
    }
    let mut bursts = 0;
    for (account, operations) in [(&source, SOURCE_OPERATIONS), (&target, BACKUP_OPERATIONS)] {
        for (service, operation) in operations.iter().chain(SOMETIMES) {
            let (code, status) = throttling(service);
            let count = if *service == "sqs" { rng.u32(1..=2) } else { rng.u32(1..=3) };
            control::fault(operation, Some(account), count, code, status);
            bursts += count as usize;
        }
    }

    // Phase 1: the round of backups, until each has got as far as its faults let it.
    p.host.fire_schedule().await.expect("fire the schedules");
    let mut events = Vec::new();
    run_until(&p, &mut events, "every backup as far as its faults let it", |seen| {
        let honest = of_account(seen, &source);
        has(&honest, ORDERS, REJECTED)
            && has(&honest, BILLING, RESTORE_FAILED)
            && has(&honest, &vol_a, VERIFIED)
            && has(&honest, &vol_b, VERIFIED)
    })
    .await;
    settle(&p, &mut events).await;
    let phase_1 = started.elapsed();

    // Mid-chain, deterministically (nothing runs between two phases): fc-vol-a's backup copy
    // is deleted while its copy into the second extra region waits in the DLQ for its key.
    let vol_a_copies = made_by(&p.target, Ebs, "copy", &vol_a).await;
    let [deleted_copy] = &vol_a_copies[..] else { panic!("one copy of {vol_a}: {vol_a_copies:?}") };
    p.target.ec2.delete_snapshot().snapshot_id(&deleted_copy.id).send().await.expect("DeleteSnapshot");

    // The hostile neighbour, while the first source's backups go on: a database named as the
    // first source's, a flood of hand-made shares, and one of its snapshots announced as a
    // copy of the first source's.
    let hostile_key = p.sharing_keys[&hostile.account].clone();
    instance(&hostile, ORDERS, Encryption::Key(&hostile_key), &[]).await;
    let hostile_store = hostile.store(DbInstance);
    let mut flood = Vec::new();
    for i in 0..FLOOD {
        let s = hostile_store.create(ORDERS, &format!("flood-{i}"), &Default::default()).await.expect("snapshot");
        let s = fixtures::available(hostile_store.as_ref(), &s.id).await;
        hostile_store.share(&s, std::slice::from_ref(&target)).await.expect("share");
        announce(&hostile, &target, s.to_ref(), s.to_ref(), &format!("hostile-{}", s.id)).await;
        flood.push(s);
    }
    let decoy = hostile_store.create(ORDERS, "decoy", &Default::default()).await.expect("snapshot");
    let decoy = fixtures::available(hostile_store.as_ref(), &decoy.id).await;
    hostile_store.share(&decoy, std::slice::from_ref(&target)).await.expect("share");
    let forged_arn = format!("arn:aws:rds:{REGION}:{source}:snapshot:snapferry-{ORDERS}-forged");
    let forged = snapferry::events::SnapshotRef {
        arn: forged_arn.clone(),
        id: format!("snapferry-{ORDERS}-forged"),
        account: hostile.account.clone(),
        ..decoy.to_ref()
    };
    announce(&hostile, &target, decoy.to_ref(), forged, "hostile-decoy").await;

    // Phase 2: the held-back events arrive late; the key and the quota are fixed and the dead
    // letters replayed, as an operator would; reconcile repairs the stalled cluster.
    control::call("DELETE", "/_snapferry/drop-events", None);
    let (late, lost) = deliver_held_back(&p).await;
    // vol-b's re-encrypting copy in the source; fc-billing's and a volume's copy in the backup account.
    assert!(lost >= 3, "a copy-finished event of each kind lost in each account: {lost}");
    second.kms.enable_key().key_id(&second_key).send().await.expect("EnableKey");
    control::quotas(&source, json!({"manual_db_snapshots": 100}));
    let kms_replay = ["dlq", "replay", "copy-shared-snapshot", "--reason", "KMSKeyNotAccessible|KMS\\.Disabled"];
    assert_eq!(run_cli_in(&target, &kms_replay).await, std::process::ExitCode::SUCCESS);
    assert_eq!(run_cli_in(&source, &["dlq", "replay", "share-snapshot"]).await, std::process::ExitCode::SUCCESS);
    let later = Utc::now() + chrono::Duration::minutes(2);
    for step in ["reconcile-snapshots", "reconcile-copies"] {
        p.host.fire(Some(step), later).await.expect("fire reconcile");
    }
    let complete: Vec<&str> = resources.iter().copied().filter(|r| *r != vol_a).collect();
    let flood_arns: Vec<String> = flood.iter().map(|s| s.arn.clone()).collect();
    run_until(&p, &mut events, "every backup but the deleted one verified and in both extra regions", |seen| {
        // Each of the neighbour's flood copied and verified, or rejected; its forgery rejected.
        let settled: BTreeSet<&str> = seen
            .iter()
            .filter(|e| matches!(e.detail.step, Step::Rejected { .. } | Step::RestoreVerified { .. }))
            .map(|e| e.detail.origin.arn.as_str())
            .filter(|arn| flood_arns.iter().any(|f| f == arn))
            .collect();
        let forgery_rejected =
            seen.iter().any(|e| e.detail.snapshot.arn == decoy.arn && e.detail.step.detail_type() == REJECTED);
        let seen = &of_account(seen, &source);
        settled.len() == FLOOD
            && forgery_rejected
            && [ORDERS, INVENTORY, vol_b.as_str()].iter().all(|r| has(seen, r, VERIFIED))
            && complete.iter().all(|r| {
                [OTHER_REGION, SECOND_REGION].iter().all(|region| {
                    about(seen, r)
                        .iter()
                        .any(|e| matches!(e.detail.step, Step::Copied { .. }) && e.detail.snapshot.region == *region)
                })
            })
    })
    .await;
    settle(&p, &mut events).await;

    // Every burst was used (each listed operation was called), but those of SOMETIMES; the
    // rest are cleared before the checks below read through the same operations.
    let left = control::call("GET", "/_snapferry/faults", None);
    let never_called: Vec<&Value> = left
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| !SOMETIMES.iter().any(|(_, o)| f["operation"] == *o))
        .collect();
    assert!(never_called.is_empty(), "throttling bursts on operations the chain never called: {never_called:?}");
    control::call("DELETE", "/_snapferry/faults", None);

    // Every operation a step called was throttled (listed for its account).
    let steps: BTreeSet<String> = Routing::load().functions.iter().map(|f| format!("snapferry-{}", f.name)).collect();
    let mut unthrottled = Vec::new();
    for (account, listed) in [(&source, SOURCE_OPERATIONS), (&target, BACKUP_OPERATIONS)] {
        let called: BTreeSet<(String, String)> = logged_calls(account)
            .into_iter()
            .filter(|(_, _, role)| role.as_ref().is_some_and(|r| steps.contains(r)))
            .map(|(service, operation, _)| (service, operation))
            .collect();
        let listed: BTreeSet<(String, String)> =
            listed.iter().chain(SOMETIMES).map(|(s, o)| (s.to_string(), o.to_string())).collect();
        unthrottled.extend(called.difference(&listed).map(|(s, o)| format!("{account} {s}:{o}")));
    }
    assert!(unthrottled.is_empty(), "called by the steps, never throttled: {unthrottled:#?}");

    // Outcomes: each backup verified, or rejected with its reason.
    let letters: Vec<Letter> = dead_letters(&p).await.into_iter().map(|(step, _, m)| Letter::of(step, &m)).collect();
    let mut outcomes = BTreeMap::new();
    let honest_events = of_account(&events, &source);
    for r in resources {
        let verified = has(&honest_events, r, VERIFIED);
        let reasons: Vec<String> = about(&honest_events, r)
            .into_iter()
            .filter_map(|e| match &e.detail.step {
                Step::Rejected { reason, .. } | Step::RestoreFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .chain(
                letters
                    .iter()
                    .filter(|d| d.resource.as_deref() == Some(r) && d.account.as_deref() == Some(source.as_str()))
                    .map(|d| format!("{}: {}", d.step, d.reason)),
            )
            .collect();
        assert!(verified || reasons.iter().any(|why| !why.trim().is_empty()), "{r}: neither verified nor rejected");
        outcomes.insert(r.to_string(), (verified, reasons));
    }
    // What needed the deleted copy (fc-vol-a's copy into the second region) was refused with
    // the reason, and not made.
    let (_, vol_a_reasons) = &outcomes[vol_a.as_str()];
    assert!(vol_a_reasons.iter().any(|r| r.contains(&deleted_copy.id) && r.contains("not found")), "{letters:#?}");
    let made = made_by(&second, Ebs, "copy", &vol_a).await;
    assert!(made.is_empty(), "{vol_a} copied from a deleted copy: {made:#?}");
    // The fixed faults left nothing behind: the KMS and quota dead letters were all replayed.
    for d in &letters {
        assert!(!d.reason.contains("KMS") && !d.reason.contains("ManualSnapshots"), "left: {d:?}");
    }

    // No duplicates: at most one snapshot per step and resource in every account and region.
    let mut duplicates = Vec::new();
    let places = [p.source.clone(), p.target.clone(), p.target.for_region(OTHER_REGION), second.clone()];
    for c in &places {
        for kind in [DbInstance, DbCluster, Ebs] {
            // By (step, source account, resource, what it was made from): the neighbour's
            // fc-orders is another database, each snapshot of its flood another backup, and a
            // snapshot it shares twice (by hand, and through its pipeline) two shares.
            let mut counts: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
            for s in c.store(kind).list_managed().await.expect("list") {
                let tag = |k: &str| s.tags.get(k).cloned().unwrap_or_default();
                let resource = s.tags.get(tags::ORIGIN_RESOURCE).cloned().unwrap_or_else(|| s.resource_id.clone());
                let from = s.tags.get(tags::COPIED_FROM).cloned().unwrap_or_else(|| tag(tags::SOURCE_ARN));
                *counts.entry((tag(tags::STEP), tag(tags::SOURCE_ACCOUNT), resource, from)).or_default() += 1;
            }
            for ((step, _, resource, _), n) in counts {
                if n > 1 {
                    duplicates.push(format!("{n} {step} snapshots of {resource} in {}/{}", c.account, c.region));
                }
            }
        }
    }
    for r in &complete {
        for region in [OTHER_REGION, SECOND_REGION] {
            let regional: Vec<_> = made_by(&p.target.for_region(region), kind_of(r), "copy", r)
                .await
                .into_iter()
                .filter(|c| c.tags.get(tags::SOURCE_ACCOUNT) == Some(&source))
                .collect();
            assert_eq!(regional.len(), 1, "{r} in {region}");
        }
    }

    // Counted from outside: every snapshot either source made (scheduled by create-snapshot,
    // or the neighbour's by hand), as the emulator holds them, and what became of each.
    let mut made: Vec<(String, String, snapferry::ResourceKind)> = Vec::new();
    for c in [&p.source, &hostile] {
        for kind in [DbInstance, DbCluster, Ebs] {
            for s in c.store(kind).list_managed().await.expect("list") {
                if s.tags.get(tags::STEP).is_some_and(|v| v == "create") {
                    made.push((c.account.clone(), s.arn.clone(), kind));
                }
            }
        }
    }
    made.extend(flood.iter().chain([&decoy]).map(|s| (hostile.account.clone(), s.arn.clone(), DbInstance)));
    let mut outside = Outside::default();
    for (account, arn, kind) in &made {
        let copies: Vec<_> = p
            .target
            .store(*kind)
            .list_managed()
            .await
            .expect("list copies")
            .into_iter()
            .filter(|c| c.tags.get(tags::SOURCE_ARN) == Some(arn) && c.tags.get(tags::SOURCE_ACCOUNT) == Some(account))
            .collect();
        let about = |e: &&Event| e.detail.origin.arn == *arn || e.detail.snapshot.arn == *arn;
        let rejected = events.iter().filter(about).any(|e| {
            matches!(&e.detail.step, Step::Rejected { reason, .. } | Step::RestoreFailed { reason, .. } if !reason.is_empty())
        });
        let dead_lettered =
            letters.iter().any(|d| d.origin_arn.as_deref() == Some(arn.as_str()) && !d.reason.is_empty());
        // Copied twice: two copies of one shared snapshot (one snapshot shared twice, as the
        // neighbour does by hand and through its pipeline, is two backups).
        let mut shares: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &copies {
            *shares.entry(c.tags.get(tags::COPIED_FROM).map(String::as_str).unwrap_or_default()).or_default() += 1;
        }
        if let Some((from, n)) = shares.iter().find(|(_, n)| **n > 1) {
            outside.duplicated.push(format!("{arn}: {n} copies of {from}"));
        }
        if copies.iter().any(|c| c.tags.contains_key(tags::VERIFIED_AT)) {
            outside.verified += 1;
        } else if rejected {
            outside.rejected += 1;
        } else if dead_lettered {
            outside.dead_lettered += 1;
        } else {
            // What is known of it, for the failure message.
            let seen: Vec<String> = events
                .iter()
                .filter(about)
                .map(|e| format!("{} {}", e.detail.step.detail_type(), e.detail.snapshot.arn))
                .collect();
            let elsewhere: Vec<String> = letters
                .iter()
                .filter(|d| d.resource.is_some() && d.origin_arn.is_none())
                .map(|d| format!("{} {:?}: {}", d.step, d.resource, d.reason))
                .collect();
            outside
                .lost
                .push(format!("{arn}: copies {copies:?}, events {seen:?}, letters without origin {elsewhere:?}"));
        }
    }
    // The first source's copies are all of its own snapshots: the forgery made none.
    for kind in [DbInstance, DbCluster, Ebs] {
        for c in p.target.store(kind).list_managed().await.expect("list copies") {
            if c.tags.get(tags::SOURCE_ACCOUNT) == Some(&source) {
                let from = c.tags.get(tags::COPIED_FROM).cloned().unwrap_or_default();
                assert!(from.contains(&format!(":{source}:")), "{} copied from {from}", c.arn);
            }
        }
    }
    let hostile_copies = made_by(&p.target, DbInstance, "copy", ORDERS)
        .await
        .into_iter()
        .filter(|c| c.tags.get(tags::SOURCE_ACCOUNT) == Some(&hostile.account))
        .count();
    assert!(
        hostile_copies <= HOSTILE_BUDGET,
        "the neighbour holds {hostile_copies} copies, its budget {HOSTILE_BUDGET}"
    );

    // Nothing a restore test made is left, in any region.
    let leaked = snapferry_e2e::eventually("restore tests cleaned up", DEADLINE, || async {
        let mut left = Vec::new();
        for c in &places[1..] {
            left.extend(restore_test_databases(c).await);
            left.extend(restore_test_volumes(c).await);
        }
        left.is_empty().then_some(left)
    })
    .await;

    // Messages.
    let books = Books::read(&p);
    let acknowledged = p.host.acknowledged();
    assert_eq!(books.deleted, acknowledged, "deleted from the step queues without their handler acknowledging them");
    assert_eq!(books.left_in_queues, 0, "messages stranded in step queues");
    assert_eq!(books.produced + books.replayed, acknowledged + books.dead_lettered_by_sqs, "messages lost: {books:?}");
    assert_eq!(books.dead_lettered(), books.replayed + books.left_in_dlqs, "dead letters lost: {books:?}");

    // The figures.
    let tally = tally(&p, &events, Planned { bursts, duplicated, late, lost, deleted: 1 });
    let mut report = String::new();
    let _ = writeln!(report, "fault campaign (seed {SEED}): {} backups, 2 accounts, 3 regions", resources.len());
    let _ = writeln!(report, "  faults injected, by kind:");
    for (kind, n) in &tally {
        let _ = writeln!(report, "    {kind:<48} {n:>5}");
    }
    let _ = writeln!(report, "  outcomes:");
    for (r, (verified, reasons)) in &outcomes {
        let verdict = if *verified { "verified" } else { "rejected" };
        let first = reasons.first().map(|s| s.chars().take(80).collect::<String>()).unwrap_or_default();
        let _ = writeln!(report, "    {r:<24} {verdict:<9} {:>2} refusal(s) on the way {first}", reasons.len());
    }
    let _ = writeln!(report, "  dead letters left (rejected, each with its reason):");
    for d in &letters {
        let reason: String = d.reason.chars().take(100).collect();
        let resource = d.resource.as_deref().unwrap_or("?");
        let _ = writeln!(report, "    {:<21} {resource:<24} {:<18} {reason}", d.step, d.what);
    }
    let _ = writeln!(report, "  messages:");
    let _ = writeln!(report, "    produced                                         {:>4}", books.produced);
    let _ = writeln!(report, "    processed                                        {acknowledged:>4}");
    let _ = writeln!(
        report,
        "    dead-lettered (by a step with its reason / by SQS) {:>4} ({} / {})",
        books.dead_lettered(),
        books.dead_lettered_by_steps,
        books.dead_lettered_by_sqs
    );
    let _ = writeln!(report, "    replayed                                         {:>4}", books.replayed);
    let _ = writeln!(report, "    left in DLQs (rejected, with their reasons)      {:>4}", books.left_in_dlqs);
    let _ = writeln!(
        report,
        "    produced + replayed = processed + moved by SQS: {} + {} = {} + {}",
        books.produced, books.replayed, acknowledged, books.dead_lettered_by_sqs
    );
    let _ = writeln!(
        report,
        "  counted from outside: {} snapshots made by the two sources: {} verified, {} rejected with a reason, {} dead-lettered with a reason, {} lost, {} copied twice",
        made.len(),
        outside.verified,
        outside.rejected,
        outside.dead_lettered,
        outside.lost.len(),
        outside.duplicated.len()
    );
    let _ = writeln!(
        report,
        "  the neighbour: {FLOOD} shares flooded, budget {HOSTILE_BUDGET}, {hostile_copies} copies held; its forged origin rejected"
    );
    let _ = writeln!(report, "  duplicates found: {}", duplicates.len());
    let _ = writeln!(report, "  leaked resources: {}", leaked.len());
    let _ = writeln!(report, "  wall time: {:.0?} (phase 1: {:.0?})", started.elapsed(), phase_1);
    println!("{report}");
    if let Ok(path) = std::env::var("SNAPFERRY_FAULT_CAMPAIGN_REPORT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    assert!(outside.lost.is_empty(), "snapshots with no outcome: {:?}", outside.lost);
    assert!(outside.duplicated.is_empty(), "copied twice: {:?}", outside.duplicated);
    assert!(leaked.is_empty(), "leaked: {leaked:?}");
}

/// The "copy finished" notifications held back (dropped by the emulator's rules, logged with
/// their envelopes), delivered now to the queue their rule feeds: late, out of order. The
/// first of each kind in each account stays lost. Returns (delivered late, lost).
async fn deliver_held_back(p: &LocalPipeline) -> (usize, usize) {
    let (mut sent, mut lost) = (0, 0);
    for (c, step) in [(&p.source, "share-snapshot"), (&p.target, "copy-shared-snapshot")] {
        let queue = p.deployment.queue(&c.account, step).expect("deployed").queue_url.clone();
        let mut first = BTreeSet::new();
        for e in control::events(&c.account) {
            let id = e["event_id_or_name"].as_str().unwrap_or_default().to_string();
            let held = e["dropped"] == true
                && e["region"] == REGION
                && ["RDS-EVENT-0197", "copySnapshot"].contains(&id.as_str());
            if !held {
                continue;
            }
            if first.insert(id) {
                lost += 1;
                continue;
            }
            let body = e["event"].to_string();
            c.sqs.send_message().queue_url(&queue).message_body(body).send().await.expect("SendMessage");
            sent += 1;
        }
    }
    (sent, lost)
}

/// What became of every snapshot the sources made, counted from outside the pipeline.
#[derive(Debug, Default)]
struct Outside {
    verified: usize,
    rejected: usize,
    dead_lettered: usize,
    lost: Vec<String>,
    duplicated: Vec<String>,
}

/// The events about `account`'s backups (the neighbour has a database of the same name).
fn of_account(events: &[Event], account: &str) -> Vec<Event> {
    events.iter().filter(|e| e.detail.origin.account == account).cloned().collect()
}

/// A dead letter: its step, the resource it is about, and why it failed.
#[derive(Debug)]
struct Letter {
    step: String,
    /// The account and the snapshot of its origin.
    account: Option<String>,
    origin_arn: Option<String>,
    /// The message's detail-type (`Snapshot Shared`, `Snapferry Recheck`, ...).
    what: String,
    resource: Option<String>,
    reason: String,
}

impl Letter {
    fn of(step: String, m: &aws_sdk_sqs::types::Message) -> Letter {
        // Pipeline events and re-checks alike carry their lineage in `detail.origin`.
        let body: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
        let resource = body["detail"]["origin"]["resource_id"].as_str().map(str::to_string);
        let account = body["detail"]["origin"]["account"].as_str().map(str::to_string);
        let origin_arn = body["detail"]["origin"]["arn"].as_str().map(str::to_string);
        let reason = Some(attribute(m, snapferry::sqs::ATTR_ERROR_REASON))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| snapferry_cli::dlq::REDRIVEN.to_string());
        let what = body["detail-type"].as_str().unwrap_or("?").to_string();
        Letter { step, account, origin_arn, what, resource, reason }
    }
}

/// The pipeline's message books, from the emulator's counts of its step queues and DLQs.
#[derive(Debug, Default)]
struct Books {
    produced: u64,
    replayed: u64,
    deleted: u64,
    dead_lettered_by_steps: u64,
    dead_lettered_by_sqs: u64,
    left_in_queues: u64,
    left_in_dlqs: u64,
}

impl Books {
    fn read(p: &LocalPipeline) -> Books {
        let counts = sqs_counts();
        let n = |arn: &str, field: &str| counts.get(arn).and_then(|q| q[field].as_u64()).unwrap_or(0);
        let mut books = Books::default();
        let mut entered = 0;
        for q in p.deployment.queues() {
            let dlq = q.dlq_arn.clone();
            entered += n(&q.queue_arn, "sent") + n(&q.queue_arn, "moved_in");
            books.deleted += n(&q.queue_arn, "deleted");
            books.dead_lettered_by_sqs += n(&q.queue_arn, "dead_lettered_out");
            books.left_in_queues += n(&q.queue_arn, "messages");
            // Only a replay takes a message out of a DLQ here: SQS's redrive, or the CLI's
            // selected replay (sent back, then deleted).
            books.replayed += n(&dlq, "moved_out") + n(&dlq, "deleted");
            books.dead_lettered_by_steps += n(&dlq, "sent");
            books.left_in_dlqs += n(&dlq, "messages");
            assert_eq!(n(&dlq, "dead_lettered_in"), n(&q.queue_arn, "dead_lettered_out"), "{}", q.function);
        }
        books.produced = entered - books.replayed;
        books
    }

    fn dead_lettered(&self) -> u64 {
        self.dead_lettered_by_steps + self.dead_lettered_by_sqs
    }
}

/// What the campaign armed that only it knows.
struct Planned {
    bursts: usize,
    duplicated: usize,
    late: usize,
    lost: usize,
    deleted: usize,
}

/// The faults injected, counted from what the emulator and the host saw where they can be.
fn tally(p: &LocalPipeline, events: &[Event], planned: Planned) -> Tally {
    let accounts = [&p.source.account, &p.target.account];
    let answered = |codes: &[&str]| -> usize {
        let refused = accounts.iter().flat_map(|a| control::requests(a)).filter_map(|(_, e)| e);
        refused.filter(|e| codes.contains(&e.as_str())).count()
    };
    let dropped = |id: &str| -> usize {
        let all = accounts.iter().flat_map(|a| control::events(a));
        all.filter(|e: &Value| e["dropped"] == true && e["event_id_or_name"] == id).count()
    };
    // Reports (each redelivery of a refused message reports it again) and the backups they are about.
    let reported = |is: &dyn Fn(&Step) -> bool| {
        let about: Vec<&Event> = events.iter().filter(|e| is(&e.detail.step)).collect();
        let backups: BTreeSet<&str> = about.iter().map(|e| e.detail.origin.resource_id.as_str()).collect();
        format!("{} backup(s), {} report(s)", backups.len(), about.len())
    };
    // fail-completions rules still armed (not used up) by kind.
    let unused = |kind: &str| -> usize {
        let armed = control::call("GET", "/_snapferry/fail-completions", None);
        armed
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["kind"] == kind)
            .filter_map(|f| f["count"].as_u64())
            .sum::<u64>() as usize
    };
    let mut t = Tally::new();
    let mut put = |kind, n: usize| t.insert(kind, n.to_string());
    put("throttling: calls in bursts armed", planned.bursts);
    put("throttling: calls refused", answered(&["Throttling", "ThrottlingException", "RequestLimitExceeded"]));
    put("copy quota: copies refused", answered(&["SnapshotQuotaExceeded", "ResourceLimitExceeded"]));
    put("KMSKeyNotAccessibleFault: copies refused", answered(&["KMSKeyNotAccessibleFault", "KMS.DisabledException"]));
    put("snapshots deleted mid-chain", planned.deleted);
    put("handler invocations killed", p.host.killed() as usize);
    put("events duplicated: rules with a second target", planned.duplicated);
    put("events reordered: held back, delivered late", planned.late);
    put("copy-finished events lost (re-checks repair)", planned.lost);
    put("events dropped (reconcile repairs)", dropped("RDS-EVENT-0075"));
    put("copies failed", 1 - unused("db-cluster").min(1));
    t.insert(
        "snapshot quota full: rejected",
        reported(&|s| matches!(s, Step::Rejected { reason, .. } if reason.contains("ManualSnapshots"))),
    );
    t.insert("restore tests failed", reported(&|s| matches!(s, Step::RestoreFailed { .. })));
    t
}
