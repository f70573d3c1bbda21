//! `snapferry doctor` against the emulator: silent on the local pipeline as deployed; each
//! misconfiguration seeded into it is found, with the AWS error it will cause and its fix.

use aws_sdk_rds::types::OptionConfiguration;
use serde_json::json;
use snapferry::clients::Clients;
use snapferry::routing::Routing;
use snapferry_cli::doctor::{self, Finding, SHARING_KEY_ALIAS, Setup, Severity};
use snapferry_e2e::chain::*;
use snapferry_e2e::control;
use snapferry_local::pipeline::BACKUP_KEY_ALIAS;

fn setup() -> Setup {
    Setup {
        backup_key: BACKUP_KEY_ALIAS.into(),
        sharing_key: SHARING_KEY_ALIAS.into(),
        extra_regions: Vec::new(),
        quota_warning_percent: 80,
    }
}

async fn new_key(c: &Clients) -> String {
    let key = c.kms.create_key().send().await.expect("CreateKey");
    key.key_metadata().and_then(|m| m.arn()).expect("arn").to_string()
}

async fn key_id(c: &Clients, alias: &str) -> String {
    let out = c.kms.describe_key().key_id(alias).send().await.expect("DescribeKey");
    out.key_metadata().map(|m| m.key_id().to_string()).expect("a key")
}

fn find<'a>(findings: &'a [Finding], check: &str, subject: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.check == check && f.subject.contains(subject))
        .unwrap_or_else(|| panic!("no {check} finding about {subject} in {findings:#?}"))
}

#[tokio::test]
async fn doctor_is_silent_on_a_correct_setup_and_finds_each_seeded_misconfiguration() {
    let p = start(&fast_options()).await;
    let routing = Routing::load();
    instance(&p.source, "on-the-sharing-key", Encryption::Key(&p.sharing_key), &[]).await;
    let clean = doctor::check(&p.target, Some(&p.source), &routing, &setup()).await.expect("doctor");
    assert!(clean.is_empty(), "a correct setup has no findings: {clean:#?}");
    assert_eq!(doctor::exit_code(&clean), std::process::ExitCode::SUCCESS);
    assert_eq!(doctor::render(&clean), "no findings");
    assert_eq!(run_cli(&p, "doctor").await, std::process::ExitCode::SUCCESS);

    // Keys: a database on aws/rds, one on a disabled key, one on a key pending deletion.
    instance(&p.source, "on-aws-rds", Encryption::AwsManaged, &[]).await;
    let disabled = new_key(&p.source).await;
    instance(&p.source, "on-a-disabled-key", Encryption::Key(&disabled), &[]).await;
    p.source.kms.disable_key().key_id(&disabled).send().await.expect("DisableKey");
    let doomed = new_key(&p.source).await;
    instance(&p.source, "on-a-doomed-key", Encryption::Key(&doomed), &[]).await;
    p.source.kms.schedule_key_deletion().key_id(&doomed).pending_window_in_days(7).send().await.expect("schedule");
    // The sharing key's policy without the backup account; the backup key's without the account's roles.
    let sharing = key_id(&p.source, SHARING_KEY_ALIAS).await;
    let owner_only = |account: &str, actions: &[&str]| {
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "Owner", "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": actions, "Resource": "*"}]})
        .to_string()
    };
    let put = |c: &Clients, key: String, policy: String| {
        let kms = c.kms.clone();
        async move { kms.put_key_policy().key_id(key).policy_name("default").policy(policy).send().await }
    };
    put(&p.source, sharing, owner_only(&p.source.account, &["kms:*"])).await.expect("PutKeyPolicy");
    let backup = key_id(&p.target, BACKUP_KEY_ALIAS).await;
    let admin_only = owner_only(&p.target.account, &["kms:Describe*", "kms:Put*", "kms:Get*", "kms:List*"]);
    put(&p.target, backup, admin_only).await.expect("PutKeyPolicy");
    // The pipeline bus no longer admits the source; the restore queue lost its DLQ.
    let statement = format!("snapferry-source-{}", p.source.account);
    p.target
        .events
        .remove_permission()
        .event_bus_name(&routing.pipeline_bus)
        .statement_id(statement)
        .send()
        .await
        .expect("RemovePermission");
    let restore = p.deployment.queues().find(|q| q.function == "restore").expect("restore queue").queue_url.clone();
    p.target
        .sqs
        .set_queue_attributes()
        .queue_url(&restore)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, "")
        .send()
        .await
        .expect("SetQueueAttributes");
    // The copy ledger table deleted by hand.
    p.target.dynamodb.delete_table().table_name(&routing.copy_ledger).send().await.expect("DeleteTable");
    // Resources snapferry cannot protect as they are.
    let rds = &p.source.rds;
    rds.create_option_group()
        .option_group_name("oracle-tde")
        .engine_name("oracle-ee")
        .major_engine_version("19")
        .option_group_description("TDE")
        .send()
        .await
        .expect("CreateOptionGroup");
    rds.modify_option_group()
        .option_group_name("oracle-tde")
        .options_to_include(OptionConfiguration::builder().option_name("TDE").build())
        .apply_immediately(true)
        .send()
        .await
        .expect("ModifyOptionGroup");
    rds.create_db_instance()
        .db_instance_identifier("oracle-with-tde")
        .engine("oracle-ee")
        .db_instance_class("db.m5.large")
        .allocated_storage(20)
        .license_model("bring-your-own-license")
        .option_group_name("oracle-tde")
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .expect("CreateDBInstance oracle");
    rds.create_db_cluster()
        .db_cluster_identifier("multi-az")
        .engine("postgres")
        .db_cluster_instance_class("db.m6gd.large")
        .allocated_storage(100)
        .storage_type("io1")
        .iops(1000)
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .expect("CreateDBCluster");
    rds.create_db_instance()
        .db_instance_identifier("rds-custom")
        .engine("custom-sqlserver-ee")
        .db_instance_class("db.m5.large")
        .allocated_storage(40)
        .custom_iam_instance_profile("AWSRDSCustomInstanceProfile")
        .kms_key_id(&p.sharing_key)
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .expect("CreateDBInstance custom");
    // The source's manual snapshot quota full.
    control::quotas(&p.source.account, json!({"manual_db_snapshots": 1}));
    let made = p
        .source
        .rds
        .create_db_snapshot()
        .db_instance_identifier("on-the-sharing-key")
        .db_snapshot_identifier("manual-1");
    made.send().await.expect("CreateDBSnapshot");

    let findings = doctor::check(&p.target, Some(&p.source), &routing, &setup()).await.expect("doctor");
    assert_eq!(run_cli(&p, "doctor").await, std::process::ExitCode::from(1));
    let f = find(&findings, "aws-managed-key", "on-aws-rds");
    assert_eq!(f.severity, Severity::Note, "re-encrypted, not a failure");
    assert!(f.problem.contains("copied onto the sharing key"), "{f:#?}");
    let f = find(&findings, "key-not-enabled", "on-a-disabled-key");
    assert!(f.aws_error.contains("KMSKeyNotAccessibleFault") && f.fix.contains("enable-key"), "{f:#?}");
    let f = find(&findings, "key-pending-deletion", "on-a-doomed-key");
    assert!(f.fix.contains("cancel-key-deletion"), "{f:#?}");
    let f = find(&findings, "sharing-key-policy", SHARING_KEY_ALIAS);
    assert_eq!((f.severity, f.account.as_str()), (Severity::Error, p.source.account.as_str()));
    assert!(f.problem.contains(&p.target.account) && f.aws_error.contains("KMSKeyNotAccessibleFault"), "{f:#?}");
    assert!(f.fix.contains("kms:GrantIsForAWSResource") && f.fix.contains(&p.target.account), "{}", f.fix);
    let fix: serde_json::Value = serde_json::from_str(f.fix.split_once('\n').unwrap().1).expect("the fix is JSON");
    assert!(fix.as_array().is_some_and(|s| s.len() == 2), "{fix}");
    let f = find(&findings, "backup-key-policy", BACKUP_KEY_ALIAS);
    assert!(f.problem.contains("kms:CreateGrant"), "{f:#?}");
    let f = find(&findings, "bus-policy", &routing.pipeline_bus);
    assert!(f.problem.contains(&p.source.account) && f.fix.contains("events:PutEvents"), "{f:#?}");
    let f = find(&findings, "copy-ledger-missing", &format!("table {}", routing.copy_ledger));
    assert!(f.fix.contains("create-table") && f.fix.contains("KeyType=RANGE"), "{f:#?}");
    let f = find(&findings, "queue-without-dlq", "snapferry-restore");
    assert!(f.fix.contains("snapferry-restore-dlq") && f.fix.contains("maxReceiveCount"), "{f:#?}");
    assert!(find(&findings, "cannot-protect", "oracle-with-tde").problem.contains("TDE"));
    assert!(find(&findings, "cannot-protect", "multi-az").problem.contains("Multi-AZ"));
    assert!(find(&findings, "cannot-protect", "rds-custom").problem.contains("RDS Custom"));
    let f = find(&findings, "snapshot-quota", "ManualSnapshots");
    assert_eq!((f.severity, f.account.as_str()), (Severity::Error, p.source.account.as_str()), "1 of 1 used");
    // Nothing else: each finding above is one of the seeded ones.
    assert_eq!(findings.len(), 12, "{findings:#?}");
    assert_eq!(doctor::exit_code(&findings), std::process::ExitCode::from(1));
    let text = doctor::render(&findings);
    assert!(text.contains("Fixes:") && text.contains("cancel-key-deletion"), "{text}");
}
