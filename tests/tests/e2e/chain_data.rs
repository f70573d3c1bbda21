//! The restore step's data checks end to end: PostgreSQL instances and Aurora PostgreSQL
//! clusters whose data lives in the emulator's real PostgreSQL server are backed up, and
//! each restore test logs in over verified TLS with a password it set, and checks tables,
//! row counts and probes. A snapshot damaged through the emulator's control API (a table
//! dropped, truncated, its timestamps moved back) fails the check that covers it.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry::events::Step;
use snapferry_e2e::chain::*;
use snapferry_e2e::control;
use snapferry_e2e::fixtures::{postgres, sql};

/// Every probe's and table's expectation, for every database of these tests.
fn checks(extra_probe: Option<serde_json::Value>) -> String {
    let mut probes = vec![
        json!({"name": "orders", "sql": "select count(*) from orders", "min": 1}),
        json!({"name": "newest order", "sql": "select max(created_at) from orders", "max_age_minutes": 120}),
    ];
    probes.extend(extra_probe);
    json!({"databases": [{"resources": ".*", "database": "app", "tables": ["public.orders"], "probes": probes}]})
        .to_string()
}

/// 50 orders, the newest 10 minutes old.
const ORDERS: &str =
    "CREATE TABLE orders (id serial PRIMARY KEY, amount int NOT NULL, created_at timestamptz NOT NULL);
     INSERT INTO orders (amount, created_at)
     SELECT g, now() - interval '10 minutes' - g * interval '1 second' FROM generate_series(1, 50) g;";

/// The master passwords the emulator saw set in `account`.
fn passwords_set(account: &str) -> Vec<String> {
    control::call("GET", "/_snapferry/postgres", None)["master_passwords_set"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["account"] == account)
        .filter_map(|p| p["password"].as_str().map(str::to_string))
        .collect()
}

fn data_options(checks: String, timeout_seconds: u32) -> snapferry_local::pipeline::PipelineOptions {
    snapferry_local::pipeline::PipelineOptions {
        data_checks: Some(checks),
        data_check_timeout_seconds: timeout_seconds,
        ..fast_options()
    }
}

#[tokio::test]
async fn good_backups_pass_every_data_check_over_tls_and_report_their_data_recovery_point() {
    let logs = snapferry_e2e::captured_logs();
    let p = start(&data_options(checks(None), 10)).await;
    postgres(&p.source, ResourceKind::DbInstance, "shop").await;
    postgres(&p.source, ResourceKind::DbCluster, "ledger").await;
    for (kind, name) in [(ResourceKind::DbInstance, "shop"), (ResourceKind::DbCluster, "ledger")] {
        sql(&p.source, kind, name, ORDERS).await;
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "both verified", verified(&["shop", "ledger"])).await;

    for (kind, name) in [(ResourceKind::DbInstance, "shop"), (ResourceKind::DbCluster, "ledger")] {
        let Step::RestoreVerified { data: Some(data), engine, .. } = &first(&events, name, VERIFIED).detail.step else {
            panic!("{name}: verified without data checks:\n{}", summary(&events));
        };
        assert!(engine.as_deref().is_some_and(|e| e.contains("postgres")), "{engine:?}");
        assert_eq!(data.database, "app");
        assert_eq!((data.tables, data.rows), (1, 50), "{name}: the restored copy holds the orders: {data:?}");
        // The catalogue, the required table and the two probes.
        assert_eq!(data.checks, 4, "{data:?}");
        // The newest order is 10 minutes and 1 second older than the data written; the
        // snapshot was taken seconds after it.
        let point = data.recovery_point_seconds.expect("a data recovery point");
        assert!((601.0..720.0).contains(&point), "{name}: data recovery point {point} s");
        assert!(data.newest_data_at.is_some());
        // Kept on the verified copy, for `snapferry status`.
        let copies = made_by(&p.target, kind, "copy", name).await;
        let tagged = copies[0].tags.get(snapferry::tags::DATA_RECOVERY_SECONDS).and_then(|v| v.parse::<f64>().ok());
        assert!(tagged.is_some_and(|t| (t - point).abs() <= 1.0), "{name}: {:?}", copies[0].tags);
    }
    no_restore_resources_left(&p.target).await;
    assert_dlqs_empty(&p).await;

    // The checks logged in with a password set for the test (the source's is never used),
    // which appears in no log line and no event.
    let passwords = passwords_set(&p.target.account);
    assert_eq!(passwords.len(), 2, "one password per restore test: {passwords:?}");
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).to_string();
    assert!(logged.contains("\"check\":\"newest order\""), "the data checks' log lines are captured");
    let published = serde_json::to_string(&events).expect("events as JSON");
    for password in passwords.iter().map(String::as_str).chain([snapferry_e2e::fixtures::MASTER_PASSWORD]) {
        assert!(!logged.contains(password), "a password is in the logs");
        assert!(!published.contains(password), "a password is in the events");
    }
    // Rows are counted, never shown.
    assert!(!logged.contains("\"amount\""), "row data in the logs");
}

#[tokio::test]
async fn each_kind_of_damage_fails_the_check_that_covers_it_and_keeps_the_copy() {
    let p = start(&data_options(checks(None), 10)).await;
    let damage = [
        ("dropped", json!({"action": "drop-table", "table": "orders"}), "table public.orders", "missing"),
        ("emptied", json!({"action": "truncate", "table": "orders"}), "table public.orders", "empty"),
        (
            "stale",
            json!({"action": "backdate", "table": "orders", "column": "created_at", "interval": "6 hours"}),
            "newest order",
            "minutes before the snapshot",
        ),
    ];
    for (name, ..) in &damage {
        postgres(&p.source, ResourceKind::DbInstance, name).await;
        sql(&p.source, ResourceKind::DbInstance, name, ORDERS).await;
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    // Each scheduled snapshot is damaged once it exists, before anything copies it.
    let actions: Vec<_> = damage.iter().map(|(name, action, ..)| (*name, action)).collect();
    damage_scheduled_snapshots(&p, &mut events, &actions).await;
    run_until(&p, &mut events, "three restore failures", |events| {
        damage.iter().all(|(name, ..)| has(events, name, RESTORE_FAILED))
    })
    .await;
    for (name, _, check, actual) in &damage {
        let Step::RestoreFailed { reason, check: Some(failed) } = &first(&events, name, RESTORE_FAILED).detail.step
        else {
            panic!("{name}: no failed check named:\n{}", summary(&events));
        };
        assert_eq!(&failed.name, check, "{name}: {reason}");
        assert!(failed.actual.contains(actual), "{name}: {failed:?}");
        assert!(reason.contains(check) && reason.contains(&failed.expected), "{name}: {reason}");
        assert!(!has(&events, name, VERIFIED), "{name} must not be verified");
        // The copy is kept (only its restore test failed), and not tagged verified.
        let copies = made_by(&p.target, ResourceKind::DbInstance, "copy", name).await;
        assert_eq!(copies.len(), 1, "{name}: the copy is kept");
        assert!(!copies[0].tags.contains_key(snapferry::tags::VERIFIED_AT));
    }
    no_restore_resources_left(&p.target).await;
    // A failed check is a verdict, not an error: nothing is dead-lettered.
    assert_dlqs_empty(&p).await;
}

#[tokio::test]
async fn a_probe_that_times_out_or_errors_is_a_failed_check_not_a_crash() {
    let slow = json!({"name": "slow", "sql": "select count(*) from orders, pg_sleep(3)", "min": 1});
    let broken = json!({"name": "broken", "sql": "select count(*) from no_such_table", "min": 1});
    let checks = json!({"databases": [
        {"resources": "^slow$", "tables": ["public.orders"], "probes": [slow]},
        {"resources": "^broken$", "tables": ["public.orders"], "probes": [broken]},
    ]});
    // A 1 s statement timeout against a probe that sleeps 3 s.
    let p = start(&data_options(checks.to_string(), 1)).await;
    for name in ["slow", "broken"] {
        postgres(&p.source, ResourceKind::DbInstance, name).await;
        sql(&p.source, ResourceKind::DbInstance, name, ORDERS).await;
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "two restore failures", |events| {
        has(events, "slow", RESTORE_FAILED) && has(events, "broken", RESTORE_FAILED)
    })
    .await;
    let failed = |name: &str| match &first(&events, name, RESTORE_FAILED).detail.step {
        Step::RestoreFailed { check: Some(check), .. } => check.clone(),
        other => panic!("{name}: {other:?}"),
    };
    let slow = failed("slow");
    assert_eq!(slow.name, "slow");
    assert!(slow.actual.contains("timed out"), "{slow:?}");
    let broken = failed("broken");
    assert_eq!(broken.name, "broken");
    // PostgreSQL's undefined-table error names the table, not data, so it is kept.
    assert!(broken.actual.contains("42P01") && broken.actual.contains("no_such_table"), "{broken:?}");
    no_restore_resources_left(&p.target).await;
    assert_dlqs_empty(&p).await;
}

/// A poisoned backup (most rows gone: ransomware, a bad migration) restores fine and passes
/// its checks: it is reported against the last good copy, and retention keeps that copy
/// until an operator accepts the new one.
#[tokio::test]
async fn a_copy_whose_rows_fell_since_the_last_good_one_is_suspicious_and_the_good_one_is_kept() {
    use snapferry::ResourceKind::DbInstance;
    let options = snapferry_local::pipeline::PipelineOptions {
        // Only the newest copy by the rules: the good one goes unless something keeps it.
        retention_backup: Some(r#"[{"keep_last": 1}]"#.into()),
        // The second backup an hour of the schedule later, minutes of the clock's.
        min_interval_minutes: 0,
        ..data_options(checks(None), 10)
    };
    let p = start(&options).await;
    postgres(&p.source, DbInstance, "shop").await;
    sql(&p.source, DbInstance, "shop", ORDERS).await;
    let start_at = chrono::Utc::now();
    let mut events = Vec::new();
    p.host.fire(Some("create-snapshot"), start_at).await.expect("fire create-snapshot");
    run_until(&p, &mut events, "the first backup verified", |seen| count(seen, "shop", VERIFIED) == 1).await;
    settle(&p, &mut events).await;
    assert!(!has(&events, "shop", SUSPICIOUS), "nothing to compare the first copy with");

    // 45 of the 50 orders deleted; the 5 left pass every check (orders >= 1, the newest recent).
    sql(&p.source, DbInstance, "shop", "DELETE FROM orders WHERE id > 5").await;
    let an_hour_on = start_at + chrono::Duration::hours(1);
    p.host.fire(Some("create-snapshot"), an_hour_on).await.expect("fire create-snapshot");
    run_until(&p, &mut events, "the second backup verified and suspicious", |seen| {
        count(seen, "shop", VERIFIED) == 2 && has(seen, "shop", SUSPICIOUS)
    })
    .await;
    settle(&p, &mut events).await;
    let report = first(&events, "shop", SUSPICIOUS);
    let Step::RestoreSuspicious { findings, previous } = &report.detail.step else { unreachable!() };
    assert_eq!(findings, &["rows: 50 -> 5 (-90%)"], "{}", summary(&events));
    let copies = made_by(&p.target, DbInstance, "copy", "shop").await;
    assert_eq!(copies.len(), 2, "{copies:?}");
    let good = copies.iter().find(|c| c.id == previous.id).expect("the previous good copy");
    let poisoned = copies.iter().find(|c| c.arn == report.detail.snapshot.arn).expect("the suspicious copy");
    assert!(good.tags.get(snapferry::tags::RESTORED_DATA).is_some_and(|v| v.starts_with("tables=1 rows=50 ")));
    assert!(poisoned.tags.contains_key(snapferry::tags::SUSPICIOUS_AT), "{:?}", poisoned.tags);
    assert!(poisoned.tags.contains_key(snapferry::tags::VERIFIED_AT), "it restores: verified, and suspicious");

    // Retention keeping one copy keeps the good one too.
    p.host.fire(Some("expire-copies"), an_hour_on + chrono::Duration::hours(1)).await.expect("fire expire-copies");
    settle(&p, &mut events).await;
    let kept: Vec<String> = made_by(&p.target, DbInstance, "copy", "shop").await.into_iter().map(|c| c.id).collect();
    assert_eq!(kept.len(), 2, "the good copy survives retention: {kept:?}");

    // Accepted by the operator, the new copy is the good one, and the old one may go.
    let accept = ["accept", poisoned.arn.as_str()];
    assert_eq!(snapferry_e2e::faults::run_cli_in(&p.target.account, &accept).await, std::process::ExitCode::SUCCESS);
    p.host.fire(Some("expire-copies"), an_hour_on + chrono::Duration::hours(2)).await.expect("fire expire-copies");
    settle(&p, &mut events).await;
    let kept: Vec<String> = made_by(&p.target, DbInstance, "copy", "shop").await.into_iter().map(|c| c.id).collect();
    assert_eq!(kept, std::slice::from_ref(&poisoned.id), "only the accepted copy is kept by keep_last 1");
    assert_dlqs_empty(&p).await;
}
