//! The comparison with the source end to end: the share step logs in to the source
//! database with the master secret RDS manages for it (over verified TLS, with exactly its
//! role's permissions), records its tables and rows in the "shared" event, the copy step
//! keeps them on the copy as one tag, and the restore test compares the restored database
//! with them. A snapshot damaged through the emulator's control API (a table truncated or
//! dropped in the snapshot, not in the source) fails the restore test's `source drift` check,
//! which names both sides' figures.

use serde_json::json;
use snapferry::ResourceKind;
use snapferry::events::Step;
use snapferry::tags::SourceFigures;
use snapferry_e2e::chain::*;
use snapferry_e2e::fixtures::{managed_password, postgres_with_managed_secret, sql_as};

/// 50 orders and 3 customers.
const ROWS: &str = "CREATE TABLE orders (id serial PRIMARY KEY, amount int NOT NULL, created_at timestamptz NOT NULL);
     INSERT INTO orders (amount, created_at) SELECT g, now() - g * interval '1 second' FROM generate_series(1, 50) g;
     CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
     INSERT INTO customers (name) VALUES ('a'), ('b'), ('c');";

/// Both steps log in to `app`; the restore runs the built-in checks only, so a drift is the
/// one check that can fail.
fn options() -> snapferry_local::pipeline::PipelineOptions {
    snapferry_local::pipeline::PipelineOptions {
        source_data_checks: Some(json!({"databases": [{"resources": ".*", "database": "app"}]}).to_string()),
        data_checks: Some(
            json!({"databases": [{"resources": ".*", "database": "app",
                "compare_with_source": {"row_tolerance_percent": 10}}]})
            .to_string(),
        ),
        ..fast_options()
    }
}

/// A source database with a managed master secret and its rows; the master password.
async fn source(p: &snapferry_local::pipeline::LocalPipeline, kind: ResourceKind, name: &str) -> String {
    postgres_with_managed_secret(&p.source, kind, name).await;
    let password = managed_password(&p.source, kind, name).await;
    sql_as(&p.source, kind, name, &password, ROWS).await;
    password
}

#[tokio::test]
async fn the_source_is_measured_when_shared_and_a_good_restore_matches_it() {
    let logs = snapferry_e2e::captured_logs();
    let p = start(&options()).await;
    let mut passwords = Vec::new();
    for (kind, name) in [(ResourceKind::DbInstance, "shop"), (ResourceKind::DbCluster, "ledger")] {
        passwords.push(source(&p, kind, name).await);
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    run_until(&p, &mut events, "both verified", verified(&["shop", "ledger"])).await;

    for (kind, name) in [(ResourceKind::DbInstance, "shop"), (ResourceKind::DbCluster, "ledger")] {
        let Step::Shared { source_data: Some(measured), .. } = &first(&events, name, SHARED).detail.step else {
            let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).to_string();
            let why: Vec<&str> = logged.lines().filter(|l| l.contains("not measured")).collect();
            panic!("{name}: shared without the source's figures ({why:?}):\n{}", summary(&events));
        };
        assert_eq!((measured.tables, measured.rows), (2, 53), "{name}: {measured:?}");
        // Kept on the copy as one tag, and only what was checked.
        let copies = made_by(&p.target, kind, "copy", name).await;
        let kept = SourceFigures::from_tags(&copies[0].tags).expect("the source-data tag");
        assert_eq!((kept.tables, kept.rows, kept.digest.as_str()), (2, 53, measured.table_digest.as_str()));
        let Step::RestoreVerified { data: Some(data), .. } = &first(&events, name, VERIFIED).detail.step else {
            panic!("{name}: verified without data checks:\n{}", summary(&events));
        };
        let compared = data.source.as_ref().unwrap_or_else(|| panic!("{name}: no comparison: {data:?}"));
        assert!(compared.same_tables, "{name}: {compared:?}");
        assert_eq!((compared.source_tables, compared.source_rows), (2, 53));
        assert_eq!((compared.row_difference_percent, compared.row_tolerance_percent), (0.0, 10.0));
        assert_eq!((data.tables, data.rows), (2, 53));
    }
    no_restore_resources_left(&p.target).await;
    assert_dlqs_empty(&p).await;

    // The source's managed password reached the share step from Secrets Manager only: it is
    // in no log line and no event.
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).to_string();
    assert!(logged.contains("source database measured"), "the share step's log lines are captured");
    let published = serde_json::to_string(&events).expect("events as JSON");
    for password in &passwords {
        assert!(!logged.contains(password.as_str()), "a source password is in the logs");
        assert!(!published.contains(password.as_str()), "a source password is in the events");
    }
}

#[tokio::test]
async fn a_restore_that_lost_rows_or_a_table_since_the_source_fails_the_source_drift_check() {
    let p = start(&options()).await;
    let damage = [
        // (database, damage to its snapshot, what the restore then has)
        ("truncated", json!({"action": "truncate", "table": "orders"}), "2 tables", "), 3 rows"),
        ("dropped", json!({"action": "drop-table", "table": "customers"}), "1 tables", "), 50 rows"),
    ];
    for (name, ..) in &damage {
        source(&p, ResourceKind::DbInstance, name).await;
    }
    p.host.fire_schedule().await.expect("fire the schedule");
    let mut events = Vec::new();
    // The snapshots are damaged, not the databases: the share step measures them whole.
    let actions: Vec<_> = damage.iter().map(|(name, action, ..)| (*name, action)).collect();
    damage_scheduled_snapshots(&p, &mut events, &actions).await;
    run_until(&p, &mut events, "two restore failures", |events| {
        damage.iter().all(|(name, ..)| has(events, name, RESTORE_FAILED))
    })
    .await;
    for (name, _, tables, rows) in &damage {
        let Step::RestoreFailed { reason, check: Some(failed) } = &first(&events, name, RESTORE_FAILED).detail.step
        else {
            panic!("{name}: no failed check named:\n{}", summary(&events));
        };
        assert_eq!(failed.name, "source drift", "{name}: {reason}");
        // The source's figures, as measured at share time, and the restore's.
        assert!(failed.expected.contains("2 tables") && failed.expected.contains("53 rows"), "{name}: {failed:?}");
        assert!(failed.actual.starts_with(tables) && failed.actual.contains(rows), "{name}: {failed:?}");
        assert!(reason.contains("source drift"), "{name}: {reason}");
        assert!(!has(&events, name, VERIFIED), "{name} must not be verified");
        let copies = made_by(&p.target, ResourceKind::DbInstance, "copy", name).await;
        assert_eq!(copies.len(), 1, "{name}: the copy is kept");
        assert!(!copies[0].tags.contains_key(snapferry::tags::VERIFIED_AT));
    }
    no_restore_resources_left(&p.target).await;
    assert_dlqs_empty(&p).await;
}
