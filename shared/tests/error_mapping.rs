//! Every AWS error code snapferry maps, driven through the real SDK deserialisers with
//! aws-smithy-mocks: the wire-format error answers (RDS and EC2 query XML) go in, the
//! adapters' typed errors come out.

use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use snapferry::error::{Error, Retry};
use snapferry::store::ebs::Ebs;
use snapferry::store::rds::{RdsCluster, RdsInstance};
use snapferry::store::{CopyRequest, SnapshotStore};
use snapferry::tags::Tags;

const ACCOUNT: &str = "222222222222";
const REGION: &str = "us-east-1";

fn rds_error(status: u16, code: &str) -> Response {
    let xml = format!(
        "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{code} happened</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    );
    Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(xml))
}

fn ec2_error(status: u16, code: &str) -> Response {
    let xml = format!(
        "<Response><Errors><Error><Code>{code}</Code><Message>{code} happened</Message></Error></Errors>\
         <RequestID>r-1</RequestID></Response>"
    );
    Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(xml))
}

fn copy_request() -> CopyRequest<'static> {
    static TAGS: std::sync::OnceLock<Tags> = std::sync::OnceLock::new();
    CopyRequest {
        source: "arn:aws:rds:us-east-1:111111111111:snapshot:snapferry-shared-db",
        source_region: None,
        target_id: "snapferry-copy-db",
        kms_key_id: Some("arn:aws:kms:us-east-1:222222222222:key/k"),
        tags: TAGS.get_or_init(Tags::new),
        option_group: None,
        copy_option_group: false,
    }
}

/// What a code must become: retryable (and why), not found, already exists, or permanent.
#[derive(Debug, PartialEq)]
enum Class {
    Retry(Retry),
    NotFound,
    Permanent,
}

fn class(e: &Error) -> Class {
    match e {
        Error::Retryable { retry, .. } => Class::Retry(*retry),
        Error::NotFound { .. } => Class::NotFound,
        _ => Class::Permanent,
    }
}

fn rds_client(rule: &Rule) -> aws_sdk_rds::Client {
    // The SDK's own retries would hide the first answer; the mapping is what is tested here.
    mock_client!(aws_sdk_rds, RuleMode::MatchAny, [rule], |c| c
        .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled()))
}

#[tokio::test]
async fn rds_codes_map_to_the_right_class() {
    let table = [
        ("Throttling", 400, Class::Retry(Retry::Throttled)),
        ("SnapshotQuotaExceeded", 400, Class::Retry(Retry::QuotaExceeded)),
        ("InvalidDBSnapshotState", 400, Class::Retry(Retry::NotReady)),
        ("InternalFailure", 500, Class::Retry(Retry::Transient)),
        ("SomethingNew", 503, Class::Retry(Retry::Transient)),
        ("DBSnapshotNotFound", 404, Class::NotFound),
        ("KMSKeyNotAccessibleFault", 400, Class::Permanent),
        ("AccessDenied", 403, Class::Permanent),
        ("InvalidParameterValue", 400, Class::Permanent),
        ("SharedSnapshotQuotaExceeded", 400, Class::Permanent),
    ];
    // Quotas with room: a SnapshotQuotaExceeded then means copies in progress.
    let quotas = quotas_rule("ManualSnapshots", 3, 100);
    for (code, status, expected) in table {
        let rule = mock!(aws_sdk_rds::Client::copy_db_snapshot).then_http_response(move || rds_error(status, code));
        let store = RdsInstance::new(rds_clients(&[&rule, &quotas]), ACCOUNT, REGION);
        let err = store.copy(&copy_request()).await.unwrap_err();
        assert_eq!(class(&err), expected, "{code}: {err}");
        assert_eq!(err.code(), if expected == Class::NotFound { "NotFound" } else { code });
    }
}

fn quotas_rule(name: &'static str, used: i64, max: i64) -> Rule {
    mock!(aws_sdk_rds::Client::describe_account_attributes).then_http_response(move || {
        let xml = format!(
            "<DescribeAccountAttributesResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
             <DescribeAccountAttributesResult><AccountQuotas>\
             <AccountQuota><AccountQuotaName>DBInstances</AccountQuotaName><Used>1</Used><Max>40</Max></AccountQuota>\
             <AccountQuota><AccountQuotaName>{name}</AccountQuotaName><Used>{used}</Used><Max>{max}</Max></AccountQuota>\
             </AccountQuotas></DescribeAccountAttributesResult>\
             <ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></DescribeAccountAttributesResponse>"
        );
        Response::new(StatusCode::try_from(200).unwrap(), SdkBody::from(xml))
    })
}

fn rds_clients(rules: &[&Rule]) -> aws_sdk_rds::Client {
    mock_client!(aws_sdk_rds, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled()))
}

#[tokio::test]
async fn snapshot_quota_exceeded_is_a_full_count_or_a_wait_as_the_account_quotas_say() {
    let refused =
        || mock!(aws_sdk_rds::Client::copy_db_snapshot).then_http_response(|| rds_error(400, "SnapshotQuotaExceeded"));
    let refused_cluster = || {
        mock!(aws_sdk_rds::Client::create_db_cluster_snapshot)
            .then_http_response(|| rds_error(400, "SnapshotQuotaExceeded"))
    };
    let full = RdsInstance::new(rds_clients(&[&refused(), &quotas_rule("ManualSnapshots", 100, 100)]), ACCOUNT, REGION);
    let err = full.copy(&copy_request()).await.unwrap_err();
    assert_eq!((class(&err), err.code()), (Class::Permanent, snapferry::error::QUOTA_FULL), "{err}");
    assert!(err.to_string().contains("100 of 100 ManualSnapshots used in us-east-1"), "{err}");
    // Another family's quota full says nothing about this one: copies in progress.
    let other =
        RdsInstance::new(rds_clients(&[&refused(), &quotas_rule("ManualClusterSnapshots", 100, 100)]), ACCOUNT, REGION);
    assert_eq!(class(&other.copy(&copy_request()).await.unwrap_err()), Class::Retry(Retry::QuotaExceeded));
    let cluster = RdsCluster::new(
        rds_clients(&[&refused_cluster(), &quotas_rule("ManualClusterSnapshots", 7, 7)]),
        ACCOUNT,
        REGION,
    );
    let err = cluster.create("ledger", "snapferry-ledger", &Tags::new()).await.unwrap_err();
    assert_eq!(err.code(), snapferry::error::QUOTA_FULL, "{err}");
    // The quotas cannot be read: waiting (bounded) is the safe reading.
    let unreadable =
        mock!(aws_sdk_rds::Client::describe_account_attributes).then_http_response(|| rds_error(403, "AccessDenied"));
    let unknown = RdsInstance::new(rds_clients(&[&refused(), &unreadable]), ACCOUNT, REGION);
    assert_eq!(class(&unknown.copy(&copy_request()).await.unwrap_err()), Class::Retry(Retry::QuotaExceeded));
}

#[tokio::test]
async fn kms_key_not_accessible_says_what_to_check() {
    let rule = mock!(aws_sdk_rds::Client::copy_db_cluster_snapshot)
        .then_http_response(|| rds_error(400, "KMSKeyNotAccessibleFault"));
    let store = RdsCluster::new(rds_client(&rule), ACCOUNT, REGION);
    let err = store.copy(&copy_request()).await.unwrap_err().to_string();
    for needle in ["KMSKeyNotAccessibleFault", "kms:CreateGrant", "key policy", "CopyDBClusterSnapshot"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}

#[tokio::test]
async fn already_exists_answers_with_the_existing_snapshot() {
    let create =
        mock!(aws_sdk_rds::Client::create_db_snapshot).then_http_response(|| rds_error(400, "DBSnapshotAlreadyExists"));
    let describe = mock!(aws_sdk_rds::Client::describe_db_snapshots)
        .match_requests(|r| r.db_snapshot_identifier() == Some("snapferry-db-202611241300"))
        .then_output(|| {
            aws_sdk_rds::operation::describe_db_snapshots::DescribeDbSnapshotsOutput::builder()
                .db_snapshots(
                    aws_sdk_rds::types::DbSnapshot::builder()
                        .db_snapshot_identifier("snapferry-db-202611241300")
                        .db_snapshot_arn("arn:aws:rds:us-east-1:222222222222:snapshot:snapferry-db-202611241300")
                        .db_instance_identifier("db")
                        .status("available")
                        .build(),
                )
                .build()
        });
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&create, &describe]);
    let store = RdsInstance::new(client, ACCOUNT, REGION);
    let snapshot = store.create("db", "snapferry-db-202611241300", &Tags::new()).await.unwrap();
    assert_eq!(snapshot.id, "snapferry-db-202611241300");
    assert_eq!(snapshot.account, ACCOUNT);
    assert_eq!(create.num_calls(), 1);
    assert_eq!(describe.num_calls(), 1);
}

#[tokio::test]
async fn not_found_on_describe_and_delete_is_an_answer_not_an_error() {
    let describe = mock!(aws_sdk_rds::Client::describe_db_cluster_snapshots)
        .then_http_response(|| rds_error(404, "DBClusterSnapshotNotFoundFault"));
    let store = RdsCluster::new(rds_client(&describe), ACCOUNT, REGION);
    assert_eq!(store.describe("gone").await.unwrap(), None);

    let delete =
        mock!(aws_sdk_ec2::Client::delete_snapshot).then_http_response(|| ec2_error(400, "InvalidSnapshot.NotFound"));
    let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&delete]);
    let ebs = Ebs::new(ec2, ACCOUNT, REGION);
    let snapshot = snapferry::store::Snapshot {
        kind: snapferry::ResourceKind::Ebs,
        id: "snap-0gone".into(),
        name: "snap-0gone".into(),
        arn: "arn:aws:ec2:us-east-1:222222222222:snapshot/snap-0gone".into(),
        account: ACCOUNT.into(),
        region: REGION.into(),
        resource_id: "vol-1".into(),
        status: snapferry::store::Status::Available,
        encrypted: true,
        kms_key_id: None,
        automated: false,
        created_at: None,
        engine: None,
        engine_version: None,
        tags: Tags::new(),
        description: None,
        size_gib: None,
        progress: None,
        option_group: None,
    };
    ebs.delete(&snapshot).await.expect("deleting what is gone succeeds");
    assert_eq!(delete.num_calls(), 1);
}

#[tokio::test]
async fn ebs_codes_map_to_the_right_class() {
    let table = [
        ("ResourceLimitExceeded", 400, Class::Retry(Retry::QuotaExceeded)),
        ("RequestLimitExceeded", 503, Class::Retry(Retry::Throttled)),
        ("IncorrectState", 400, Class::Retry(Retry::NotReady)),
        ("UnauthorizedOperation", 403, Class::Permanent),
        ("InvalidParameterValue", 400, Class::Permanent),
    ];
    for (code, status, expected) in table {
        let lookup = mock!(aws_sdk_ec2::Client::describe_snapshots)
            .then_output(|| aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput::builder().build());
        let copy = mock!(aws_sdk_ec2::Client::copy_snapshot).then_http_response(move || ec2_error(status, code));
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&lookup, &copy], |c| c
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled()));
        let err = Ebs::new(ec2, ACCOUNT, REGION).copy(&copy_request()).await.unwrap_err();
        assert_eq!(class(&err), expected, "{code}: {err}");
        assert_eq!(err.code(), code);
    }
}
