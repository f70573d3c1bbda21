//! A restored database is the source's data: a crafted one must not mislead the data checks
//! (a schema of its own put before `pg_catalog` on the search path) nor flood them (a probe
//! that selects a table's rows). Checked on a database of the emulator's real PostgreSQL,
//! through the code the restore step and the share step run.

use snapferry::ResourceKind;
use snapferry::store::Stores;
use snapferry_e2e::*;
use snapferry_restore::data::{self, DataChecks, Engine, Password, Target};
use std::time::Duration;

#[tokio::test]
async fn a_database_that_shadows_the_catalogue_or_returns_a_million_rows_misleads_no_check() {
    let c = clients(&new_account(), REGION).await;
    fixtures::postgres(&c, ResourceKind::DbInstance, "crafted").await;
    fixtures::sql(
        &c,
        ResourceKind::DbInstance,
        "crafted",
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2), (3);
         CREATE SCHEMA decoy;
         CREATE VIEW decoy.pg_class AS SELECT * FROM pg_catalog.pg_class WHERE false;
         ALTER ROLE CURRENT_USER SET search_path = decoy, pg_catalog, public;",
    )
    .await;
    let endpoint = c.store(ResourceKind::DbInstance).restore_status("crafted").await.expect("describe");
    let endpoint = endpoint.and_then(|r| r.endpoint).expect("an endpoint");
    let ca = snapferry_local::pipeline::emulator_ca_bundle(&c).await.expect("the emulator's CA");
    let tls = data::tls_config(Some(&ca)).expect("TLS");
    let password = Password::from(fixtures::MASTER_PASSWORD.to_string());
    let target = Target {
        engine: Engine::Postgres,
        host: &endpoint.host,
        port: endpoint.port,
        user: "owner",
        database: Some("app"),
        password: &password,
    };
    let checks = DataChecks::parse(
        r#"{"databases": [{"resources": ".*", "database": "app", "tables": ["public.orders"],
            "probes": [{"name": "everything", "sql": "select g from generate_series(1, 5000000) g;", "min": 1},
                       {"name": "orders", "sql": "select count(*) from orders", "min": 3}]}]}"#,
    )
    .expect("checks");
    let checks = checks.for_resource("crafted").expect("configured");
    let report = data::run(&target, &tls, Some(checks), None, chrono::Utc::now(), Duration::from_secs(10))
        .await
        .expect("logged in");
    let names: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["orders"], "the real catalogue, not the decoy's: {:?}", report.checks);
    let check = |name: &str| report.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name}"));
    assert!(check("table public.orders").passed, "{:?}", report.checks);
    assert!(check("orders").passed, "{:?}", report.checks);
    let everything = check("everything");
    assert!(!everything.passed && everything.actual.contains("more than one row"), "{everything:?}");
}
