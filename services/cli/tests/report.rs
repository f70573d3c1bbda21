//! `snapferry report` on fixed holdings: the recovery point over time and its gaps past the
//! RPO, each copy's restore test as its tags record it, failures with their reasons, and
//! the CSV and JSON the report writes (stored snapshots).

use chrono::{DateTime, Duration, TimeZone, Utc};
use snapferry::ResourceKind;
use snapferry::lineage::{self, Mark};
use snapferry::store::{Snapshot, Status};
use snapferry::tags::{LineageTags, RestoredFigures, Tags};
use snapferry_cli::report::{self, CopyReport, Holdings, Letter, Query, RecoveryPoint, RestoreState};

const SOURCE: &str = "111111111111";
const NEIGHBOUR: &str = "444444444444";
const BACKUP: &str = "222222222222";

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn kind(name: &str) -> ResourceKind {
    name.parse().expect("a kind of the contract")
}

/// A copy in the backup account of `account`'s `resource`, taken on `day` at 02:00, with
/// `marks` recorded on it since.
fn copy(account: &str, resource: &str, kind_name: &str, id: &str, day: u32, marks: &[Tags]) -> Snapshot {
    let k = kind(kind_name);
    let mut tags = LineageTags {
        source_arn: format!("arn:aws:rds:us-east-1:{account}:snapshot:{id}"),
        source_account: account.into(),
        correlation_id: format!("run-{id}"),
        step: "copy".into(),
    }
    .tags();
    let origin = snapferry::events::SnapshotRef {
        kind: k,
        arn: format!("arn:aws:rds:us-east-1:{account}:snapshot:{id}"),
        id: id.into(),
        account: account.into(),
        region: "us-east-1".into(),
        resource_id: resource.into(),
        encrypted: true,
        kms_key_id: None,
    };
    tags.extend(snapferry::tags::origin_tags(&origin));
    tags.insert(snapferry::tags::SNAPSHOT_TAKEN_AT.into(), snapferry::tags::timestamp_value(at(day, 2)));
    tags.extend(lineage::stamp(Mark::Copied, at(day, 3)));
    for m in marks {
        tags.extend(m.clone());
    }
    Snapshot {
        kind: k,
        id: format!("{id}-copy"),
        name: format!("snapferry-copy-{id}"),
        arn: format!("arn:aws:rds:us-east-1:{BACKUP}:snapshot:snapferry-copy-{id}"),
        account: BACKUP.into(),
        region: "us-east-1".into(),
        resource_id: resource.into(),
        status: Status::Available,
        encrypted: true,
        kms_key_id: Some(format!("arn:aws:kms:us-east-1:{BACKUP}:key/backup")),
        automated: false,
        created_at: Some(at(day, 3)),
        engine: None,
        engine_version: None,
        tags,
        description: None,
        size_gib: None,
        progress: None,
        option_group: None,
    }
}

fn verified(day: u32, seconds: f64, rows: u64) -> Tags {
    let figures = RestoredFigures { tables: 3, rows, newest_data_at: Some(at(day, 1)) };
    lineage::verified(at(day, 4), seconds, Some(3600.0), Some(figures))
}

/// Three weeks of a database's and a volume's copies, and a neighbour's database.
fn holdings() -> Holdings {
    let copies = vec![
        // orders: daily from the 2nd; the 4th's restore failed, none on the 5th and 6th, the
        // 8th's rows fell (suspicious).
        copy(SOURCE, "orders", "db-instance", "orders-1102", 2, &[verified(2, 412.0, 1200)]),
        copy(SOURCE, "orders", "db-instance", "orders-1103", 3, &[verified(3, 398.5, 1210)]),
        copy(
            SOURCE,
            "orders",
            "db-instance",
            "orders-1104",
            4,
            &[lineage::restore_failed(at(4, 5), "KMSKeyNotAccessibleFault: the key, \"backup\", is disabled")],
        ),
        copy(SOURCE, "orders", "db-instance", "orders-1107", 7, &[verified(7, 420.0, 1230)]),
        copy(
            SOURCE,
            "orders",
            "db-instance",
            "orders-1108",
            8,
            &[verified(8, 405.0, 100), lineage::stamp(Mark::Suspicious, at(8, 4))],
        ),
        // Taken before the period: only its verification counts, as the base at its start.
        copy(SOURCE, "orders", "db-instance", "orders-1031", 1, &[verified(1, 400.0, 1190)]),
        copy(SOURCE, "vol-0abc", "ebs", "snap-a", 2, &[lineage::verified(at(2, 4), 65.0, None, None)]),
        copy(SOURCE, "vol-0abc", "ebs", "snap-b", 3, &[]),
        copy(NEIGHBOUR, "orders", "db-instance", "n-orders-1103", 3, &[verified(3, 300.0, 10)]),
    ];
    let mut elsewhere = std::collections::BTreeMap::new();
    elsewhere.insert(
        "eu-west-1".to_string(),
        ["snapferry-copy-orders-1102", "snapferry-copy-snap-a"].map(String::from).into(),
    );
    Holdings {
        account: BACKUP.into(),
        region: "us-east-1".into(),
        copies,
        elsewhere,
        locked: ["snap-a-copy".to_string()].into(),
        letters: vec![
            Letter {
                step: "copy-shared-snapshot".into(),
                message_id: "m-1".into(),
                reason: "copy slots stayed full for 6 hours, \"SnapshotQuotaExceeded\" <last>".into(),
                account: Some(SOURCE.into()),
                resource: Some("orders".into()),
                sent_at: Some(at(5, 9)),
            },
            // The neighbour's database of the same name: not the first source's failure.
            Letter {
                step: "copy-shared-snapshot".into(),
                message_id: "m-2".into(),
                reason: "unknown sender".into(),
                account: Some(NEIGHBOUR.into()),
                resource: Some("orders".into()),
                sent_at: Some(at(5, 9)),
            },
        ],
        dlq_retention_days: 14,
    }
}

fn query() -> Query {
    Query {
        from: at(2, 0),
        to: at(9, 0),
        rpo: Duration::hours(26),
        extra_regions: vec!["eu-west-1".into()],
        source_accounts: Vec::new(),
    }
}

#[test]
fn the_recovery_point_grows_with_time_drops_at_each_verified_copy_and_its_gaps_are_past_the_rpo() {
    let r = report::build(&holdings(), &query(), at(20, 0));
    let orders = r.resources.iter().find(|r| r.resource == "orders" && r.source_account == SOURCE).unwrap();
    let hours = |p: &RecoveryPoint| (p.at, p.seconds / 3600);
    let points: Vec<_> = orders.recovery_points.iter().map(hours).collect();
    assert_eq!(
        points,
        [
            (at(2, 0), 22), // the period starts with the copy of the 1st, verified before it
            (at(2, 4), 26),
            (at(2, 4), 2),
            (at(3, 4), 26),
            (at(3, 4), 2),
            (at(7, 4), 98), // the 4th's failed: the 3rd's stays the newest verified
            (at(7, 4), 2),
            (at(8, 4), 26),
            (at(8, 4), 2), // suspicious, but restorable: a recovery point
            (at(9, 0), 22),
        ]
    );
    assert_eq!(orders.gaps.len(), 1, "{:?}", orders.gaps);
    assert_eq!((orders.gaps[0].from, orders.gaps[0].to), (at(4, 4), at(7, 4)), "from when the 3rd's passed 26 h");
    assert_eq!(orders.worst_recovery_point_seconds, Some(98 * 3600));
    let within = orders.within_rpo_percent.unwrap();
    assert!((within - 100.0 * (7.0 * 24.0 - 72.0) / (7.0 * 24.0)).abs() < 0.01, "{within}");
    let states: Vec<RestoreState> = orders.copies.iter().map(|c| c.restore).collect();
    assert_eq!(
        states,
        [
            RestoreState::Verified,
            RestoreState::Verified,
            RestoreState::Failed,
            RestoreState::Verified,
            RestoreState::Suspicious
        ],
        "the copies taken in the period, oldest first"
    );
    let reasons: Vec<(&str, &str)> = orders.failures.iter().map(|f| (f.step.as_str(), f.reason.as_str())).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "restore test");
    assert!(reasons[0].1.starts_with("KMSKeyNotAccessibleFault"), "{reasons:?}");
    assert_eq!(
        reasons[1],
        ("copy-shared-snapshot", "copy slots stayed full for 6 hours, \"SnapshotQuotaExceeded\" <last>")
    );
    let neighbour = r.resources.iter().find(|r| r.source_account == NEIGHBOUR).unwrap();
    assert_eq!(neighbour.failures.len(), 1, "its own dead letter only");
}

#[test]
fn a_copy_reports_its_regions_its_lock_and_what_its_restore_held() {
    let r = report::build(&holdings(), &query(), at(20, 0));
    let copy = |name: &str| -> CopyReport {
        r.resources.iter().flat_map(|r| r.copies.iter()).find(|c| c.copy == name).cloned().unwrap()
    };
    let first = copy("snapferry-copy-orders-1102");
    assert_eq!(first.regions, ["us-east-1", "eu-west-1"]);
    assert_eq!((first.tables, first.rows, first.restore_seconds), (Some(3), Some(1200), Some(412.0)));
    assert_eq!(first.locked, None, "RDS has no lock");
    assert_eq!(copy("snapferry-copy-snap-a").locked, Some(true));
    assert_eq!(copy("snapferry-copy-snap-b").locked, Some(false));
    assert_eq!(copy("snapferry-copy-snap-b").restore, RestoreState::NotTested);
    assert!(r.horizon.contains("2026-11-01T02:00:00Z"), "the oldest copy held: {}", r.horizon);
}

#[test]
fn only_the_accounts_asked_for_are_reported() {
    let q = Query { source_accounts: vec![NEIGHBOUR.into()], ..query() };
    let r = report::build(&holdings(), &q, at(20, 0));
    let accounts: Vec<&str> = r.resources.iter().map(|r| r.source_account.as_str()).collect();
    assert_eq!(accounts, [NEIGHBOUR]);
}

#[test]
fn the_csv_and_json_hold_the_same_figures() {
    let r = report::build(&holdings(), &query(), at(20, 0));
    insta::assert_snapshot!("copies_csv", report::copies_csv(&r));
    insta::assert_snapshot!("resources_csv", report::resources_csv(&r));
    insta::assert_snapshot!("failures_csv", report::failures_csv(&r));
    insta::assert_json_snapshot!("report_json", r);
}

#[test]
fn the_page_is_self_contained_escaped_and_draws_both_charts_per_resource() {
    let r = report::build(&holdings(), &query(), at(20, 0));
    let page = report::html::render(&r);
    assert!(page.starts_with("<!doctype html>"));
    // Nothing to fetch: no script, no stylesheet or image by address (an SVG's xmlns names
    // its namespace, it is not fetched).
    for fetching in ["<script", "<link", "<img", "src=", "href=\"http", "url("] {
        assert!(!page.contains(fetching), "fetches nothing: {fetching}");
    }
    assert_eq!(page.matches("<section class=\"resource\"").count(), r.resources.len());
    // Each resource with a verified copy in the period has both charts drawn.
    assert_eq!(
        page.matches("<figure class=\"chart recovery-point\"><svg").count(),
        3,
        "orders, its neighbour's, the volume"
    );
    assert_eq!(page.matches("<figure class=\"chart restore-time\"><svg").count(), 3);
    assert!(page.contains("6 hours, &quot;SnapshotQuotaExceeded&quot; &lt;last&gt;"), "reasons are escaped");
}

#[test]
fn a_csv_field_with_a_comma_or_a_quote_is_quoted() {
    let r = report::build(&holdings(), &query(), at(20, 0));
    let csv = report::failures_csv(&r);
    let line = csv.lines().find(|l| l.contains(",m-1,")).unwrap();
    assert!(line.ends_with(r#","copy slots stayed full for 6 hours, ""SnapshotQuotaExceeded"" <last>""#), "{line}");
    assert!(csv.ends_with("\r\n"), "RFC 4180 line ends");
    assert!(csv.lines().all(|l| !l.is_empty()));
}
