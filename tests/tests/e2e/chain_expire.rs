//! Retention on the emulator: hourly backups against a manual snapshot quota small enough
//! that, without expiry, the source account fills it within three hours and every backup
//! after that is refused. The quota is lowered for this test's accounts only.

use chrono::{Duration, Utc};
use serde_json::json;
use snapferry::ResourceKind::DbInstance;
use snapferry_e2e::chain::*;
use snapferry_e2e::control;

#[tokio::test]
async fn hourly_backups_keep_going_past_the_snapshot_quota_because_what_is_not_kept_expires() {
    // Each hour the source makes two snapshots (the scheduled one on aws/rds, and its
    // re-encrypted copy that is shared): with a quota of 3, the second hour's copy would be
    // refused, and every backup after it.
    let options = PipelineOptions {
        release_shares: true,
        min_interval_minutes: 0,
        retention_source: Some(r#"[{"keep_last": 1}]"#.into()),
        retention_backup: Some(r#"[{"keep_last": 2}]"#.into()),
        // The whole lowered quota is this source's.
        copies_held_per_source: Some("3".into()),
        ..fast_options()
    };
    let p = start(&options).await;
    for account in [&p.source.account, &p.target.account] {
        control::quotas(account, json!({"manual_db_snapshots": 3}));
    }
    instance(&p.source, "hourly", Encryption::AwsManaged, &[]).await;
    let start_at = Utc::now();
    let mut events = Vec::new();
    const HOURS: usize = 4;
    for hour in 0..HOURS {
        let at = start_at + Duration::hours(hour as i64);
        p.host.fire(Some("create-snapshot"), at).await.expect("fire create-snapshot");
        let want = hour + 1;
        run_until(&p, &mut events, &format!("backup {want} verified"), |seen| count(seen, "hourly", VERIFIED) == want)
            .await;
        // The copy came back to the source, which withdrew its share; the schedule an hour
        // on deletes what is not kept, and the intermediate copy, its grace over.
        settle(&p, &mut events).await;
        let expiry = at + Duration::minutes(61);
        p.host.fire(Some("expire-snapshots"), expiry).await.expect("fire expire-snapshots");
        p.host.fire(Some("expire-copies"), expiry).await.expect("fire expire-copies");
        settle(&p, &mut events).await;
        let source = managed(&p.source, DbInstance).await;
        assert_eq!(source.len(), 1, "hour {hour}: the source keeps its newest snapshot only: {source:?}");
        let target = managed(&p.target, DbInstance).await;
        assert_eq!(target.len(), want.min(2), "hour {hour}: the backup account keeps two copies: {target:?}");
    }
    assert_eq!(count(&events, "hourly", REJECTED), 0, "nothing refused:\n{}", summary(&events));
    // Every hour's share copy; every scheduled snapshot but the newest; every copy but the
    // newest two.
    let expired = count(&events, "hourly", "Snapshot Expired");
    assert_eq!(expired, HOURS + (HOURS - 1) + (HOURS - 2), "{}", summary(&events));
    assert_dlqs_empty(&p).await;
}
