//! The restore step's data checks on MySQL engines end to end: a MySQL instance and an
//! Aurora MySQL cluster whose data lives in the emulator's real MariaDB server are backed
//! up; each restore test logs in over verified TLS with a password it set and checks the
//! catalogue, the required table and the probes. A damaged snapshot fails the check that
//! covers it, and a probe past its time limit is a failed check. The emulator's MariaDB
//! server is shared with the other tests; the passwords it saw set are told apart by account.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry::events::Step;
use snapferry_e2e::chain::*;
use snapferry_e2e::control;
use snapferry_e2e::fixtures::{mysql, mysql_sql};

fn checks(extra_probe: Option<serde_json::Value>) -> String {
    let mut probes = vec![
        json!({"name": "orders", "sql": "select count(*) from orders", "min": 1}),
        json!({"name": "newest order", "sql": "select max(created_at) from orders", "max_age_minutes": 120}),
    ];
    probes.extend(extra_probe);
    json!({"databases": [{"resources": ".*", "database": "app", "tables": ["app.orders"], "probes": probes}]})
        .to_string()
}

/// 50 orders, the newest 10 minutes old (UTC, as the checks' session reads them).
fn orders() -> Vec<String> {
    let rows: Vec<String> =
        (1..=50).map(|g| format!("({g}, UTC_TIMESTAMP(6) - INTERVAL {} SECOND)", 600 + g)).collect();
    vec![
        "CREATE TABLE orders (id int AUTO_INCREMENT PRIMARY KEY, amount int NOT NULL, created_at datetime(6) NOT NULL)"
            .into(),
        format!("INSERT INTO orders (amount, created_at) VALUES {}", rows.join(", ")),
    ]
}

fn options(checks: String, timeout_seconds: u32) -> snapferry_local::pipeline::PipelineOptions {
    snapferry_local::pipeline::PipelineOptions {
        data_checks: Some(checks),
        data_check_timeout_seconds: timeout_seconds,
        ..fast_options()
    }
}

#[tokio::test]
async fn mysql_and_aurora_mysql_backups_pass_their_data_checks_over_tls() {
    let p = start(&options(checks(None), 10)).await;
    let both = [(ResourceKind::DbInstance, "shop-mysql"), (ResourceKind::DbCluster, "ledger-aurora-mysql")];
    for (kind, name) in both {
        mysql(&p.source, kind, name).await;
        mysql_sql(&p.source, kind, name, &orders()).await;
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "both verified", verified(&["shop-mysql", "ledger-aurora-mysql"])).await;

    for (kind, name) in both {
        let Step::RestoreVerified { data: Some(data), engine, .. } = &first(&events, name, VERIFIED).detail.step else {
            panic!("{name}: verified without data checks:\n{}", summary(&events));
        };
        assert!(engine.as_deref().is_some_and(|e| e.contains("mysql")), "{engine:?}");
        assert_eq!(data.database, "app");
        // Counted exactly (a small InnoDB table's estimate lags), so exactly the 50 written.
        assert_eq!((data.tables, data.rows, data.checks), (1, 50, 4), "{name}: {data:?}");
        let point = data.recovery_point_seconds.expect("a data recovery point");
        assert!((601.0..720.0).contains(&point), "{name}: data recovery point {point} s");
        let copies = made_by(&p.target, kind, "copy", name).await;
        assert!(copies[0].tags.contains_key(snapferry::tags::DATA_RECOVERY_SECONDS), "{name}");
    }
    no_restore_resources_left(&p.target).await;
    assert_dlqs_empty(&p).await;
    // A password of its own per restore test, in no event.
    let set: Vec<String> = control::call("GET", "/_snapferry/mysql", None)["master_passwords_set"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| entry["account"] == p.target.account.as_str())
        .filter_map(|entry| entry["password"].as_str().map(str::to_string))
        .collect();
    assert_eq!(set.len(), 2, "{set:?}");
    let published = serde_json::to_string(&events).expect("events as JSON");
    for password in set.iter().map(String::as_str).chain([snapferry_e2e::fixtures::MASTER_PASSWORD]) {
        assert!(!published.contains(password), "a password is in the events");
    }
}

#[tokio::test]
async fn damage_and_a_probe_past_its_time_limit_fail_their_checks() {
    // MariaDB's max_statement_time (the emulator's server) or MySQL's max_execution_time,
    // whichever the server is, stops the probe at 1 s.
    let slow = json!({"name": "slow", "sql": "select count(*) from orders a, orders b, orders c, orders d, orders e", "min": 1});
    let p = start(&options(checks(Some(slow)), 1)).await;
    let damage = [
        ("mysql-dropped", json!({"action": "drop-table", "table": "orders"}), "table app.orders", "missing"),
        (
            "mysql-stale",
            json!({"action": "backdate", "table": "orders", "column": "created_at", "interval": "6 hours"}),
            "newest order",
            "minutes before the snapshot",
        ),
        ("mysql-slow", json!(null), "slow", "timed out"),
    ];
    for (name, ..) in &damage {
        mysql(&p.source, ResourceKind::DbInstance, name).await;
        mysql_sql(&p.source, ResourceKind::DbInstance, name, &orders()).await;
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
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
        assert!(reason.contains(check), "{name}: {reason}");
        assert!(
            reason.contains(&format!("{check:?} expected")) && reason.contains(actual),
            "{name}: {check} should fail with {actual}: {reason} (first failed: {failed:?})"
        );
        assert!(!has(&events, name, VERIFIED), "{name} must not be verified");
        assert_eq!(made_by(&p.target, ResourceKind::DbInstance, "copy", name).await.len(), 1, "{name}: kept");
    }
    no_restore_resources_left(&p.target).await;
    assert_dlqs_empty(&p).await;
}
