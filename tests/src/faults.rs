//! Helpers of the fault campaign (`tests/tests/fault_campaign.rs`), usable by any chain test.

use crate::chain::{LocalPipeline, dlq_messages};
use crate::*;
use aws_sdk_eventbridge::types::Target;
use snapferry::routing::{Bus, Routing};
use std::collections::BTreeMap;

/// Every SQS queue's counts of messages in and out, as the emulator keeps them
/// (`GET /_snapferry/sqs-counts`), by queue ARN.
pub fn sqs_counts() -> BTreeMap<String, Value> {
    control::call("GET", "/_snapferry/sqs-counts", None)["queues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|q| (q["arn"].as_str().unwrap_or_default().to_string(), q))
        .collect()
}

/// Gives every rule of the pipeline (and the cross-account forwarding) a second target
/// on the same queue / bus, so EventBridge delivers every event twice. Returns how many
/// rules have one now.
pub async fn deliver_everything_twice(p: &LocalPipeline) -> usize {
    let mut duplicated = 0;
    let routing = Routing::load();
    let bus = |b: Bus| if b == Bus::Default { "default".to_string() } else { routing.pipeline_bus.clone() };
    for q in p.deployment.queues() {
        let c = crate::chain::account_clients(p, &q.account);
        let function = routing.functions.iter().find(|f| f.name == q.function).expect("function in routing.json");
        for rule in function.rules.iter().filter(|r| r.pattern.is_some()) {
            let target = Target::builder().id("duplicate").arn(&q.queue_arn).build().expect("target");
            let put = c.events.put_targets().rule(&rule.name).event_bus_name(bus(rule.bus)).targets(target);
            put.send().await.expect("PutTargets");
            duplicated += 1;
        }
    }
    let (rule, _) = routing.cross_account.for_account(&p.target.account);
    let target_bus = p.deployment.pipeline_bus_arn(&p.target.account).expect("target bus");
    let target = Target::builder().id("duplicate").arn(target_bus).build().expect("target");
    let put = p.source.events.put_targets().rule(rule).event_bus_name(bus(routing.cross_account.bus));
    put.targets(target).send().await.expect("PutTargets");
    duplicated + 1
}

/// AWS calls the emulator logged from `account`: (service, operation as called, role).
pub fn logged_calls(account: &str) -> Vec<(String, String, Option<String>)> {
    let all = control::call("GET", "/_snapferry/requests", None)["requests"].as_array().cloned().unwrap_or_default();
    all.into_iter()
        .filter(|r| r["account"] == account)
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("service"), text("operation"), r["principal"].as_str().map(str::to_string))
        })
        .collect()
}

/// EBS volumes left in `c`'s account and region that a restore test made (tagged
/// `snapferry:restore-test`).
pub async fn restore_test_volumes(c: &Clients) -> Vec<String> {
    let filter = aws_sdk_ec2::types::Filter::builder().name("tag-key").values(snapferry::tags::RESTORE_TEST).build();
    let out = c.ec2.describe_volumes().filters(filter).send().await.expect("DescribeVolumes");
    out.volumes().iter().filter_map(|v| v.volume_id().map(str::to_string)).collect()
}

/// DB instances and clusters left in `c`'s account and region that a restore test made
/// (named `snapferry-restore-*`).
pub async fn restore_test_databases(c: &Clients) -> Vec<String> {
    let instances = c.rds.describe_db_instances().send().await.expect("DescribeDBInstances");
    let clusters = c.rds.describe_db_clusters().send().await.expect("DescribeDBClusters");
    instances
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_identifier())
        .chain(clusters.db_clusters().iter().filter_map(|c| c.db_cluster_identifier()))
        .filter(|id| id.starts_with(snapferry::naming::RESTORE_PREFIX))
        .map(str::to_string)
        .collect()
}

/// Every dead letter of the pipeline's DLQs in `p`'s two accounts: (step, account, message).
pub async fn dead_letters(p: &LocalPipeline) -> Vec<(String, String, aws_sdk_sqs::types::Message)> {
    let mut all = Vec::new();
    for q in p.deployment.queues() {
        let c = crate::chain::account_clients(p, &q.account);
        for m in dlq_messages(c, &q.dlq_url).await {
            all.push((q.function.clone(), q.account.clone(), m));
        }
    }
    all
}

/// Runs the operator CLI, `snapferry <args> --endpoint <emulator> --region us-east-1
/// --account <account> --role snapferry-test`, as an operator would.
pub async fn run_cli_in(account: &str, args: &[&str]) -> std::process::ExitCode {
    let endpoint = emulator().endpoint.clone();
    let mut all = vec!["snapferry"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--endpoint",
        &endpoint,
        "--region",
        REGION,
        "--account",
        account,
        "--role",
        "snapferry-test",
    ]);
    let cli = <snapferry_cli::Cli as clap::Parser>::try_parse_from(&all).expect("arguments");
    snapferry_cli::run(cli).await.unwrap_or_else(|e| panic!("snapferry {}: {e}", args.join(" ")))
}
