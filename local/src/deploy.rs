//! The event topology of `shared/routing.json`, created in the emulator as the CDK stacks create it in AWS.

use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use snapferry::clients::Clients;
use snapferry::error::{Error, Result};
use snapferry::routing::{Bus, Function, Routing, Side};
use snapferry::sqs::queue_arn;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::info;

/// The id of the one target each of our rules has; a fixed id makes `PutTargets` idempotent.
const TARGET_ID: &str = "snapferry";

/// Knobs of [`deploy`] that differ between the local uses.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Visibility timeout in seconds for every queue instead of `timeout × factor`: tests
    /// set a second or two so failed records come back (and reach the DLQ) quickly.
    pub visibility_timeout_override: Option<u32>,
    /// Deploy `copied_back` (the backup account returning "Snapshot Copied" to the source,
    /// which then withdraws its shares): tests of the other steps leave it out, to look at
    /// the shares before they go.
    pub copied_back: bool,
}

/// One function's queue in one account, as deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedQueue {
    pub function: String,
    pub account: String,
    pub region: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
    /// Lambda's `BatchSize` for this function's event source mapping.
    pub batch_size: u32,
    /// The function's timeout; the host abandons a batch that runs longer, as Lambda does.
    pub timeout: Duration,
}

/// A schedule rule, which the emulator never fires: [`Host::fire_schedule`] stands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedSchedule {
    pub function: String,
    pub account: String,
    pub region: String,
    pub rule_name: String,
    pub rule_arn: String,
}

/// What [`deploy`] created, keyed by (account, function name).
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub(super) queues: BTreeMap<(String, String), DeployedQueue>,
    pub(super) schedules: Vec<DeployedSchedule>,
    pipeline_buses: BTreeMap<String, String>,
}

impl Deployment {
    /// The queue of `function` in `account`, when that function runs in that account.
    pub fn queue(&self, account: &str, function: &str) -> Option<&DeployedQueue> {
        self.queues.get(&(account.to_string(), function.to_string()))
    }

    pub fn queue_url(&self, account: &str, function: &str) -> Option<&str> {
        self.queue(account, function).map(|q| q.queue_url.as_str())
    }

    pub fn queue_arn(&self, account: &str, function: &str) -> Option<&str> {
        self.queue(account, function).map(|q| q.queue_arn.as_str())
    }

    pub fn dlq_url(&self, account: &str, function: &str) -> Option<&str> {
        self.queue(account, function).map(|q| q.dlq_url.as_str())
    }

    /// Every deployed queue, ordered by account then function.
    pub fn queues(&self) -> impl Iterator<Item = &DeployedQueue> {
        self.queues.values()
    }

    pub fn schedules(&self) -> &[DeployedSchedule] {
        &self.schedules
    }

    /// The ARN of `account`'s pipeline bus.
    pub fn pipeline_bus_arn(&self, account: &str) -> Option<&str> {
        self.pipeline_buses.get(account).map(String::as_str)
    }
}

/// Creates (or brings up to date) the topology of `routing` in every source account and
/// every target account, as the CDK stacks do in AWS.
pub async fn deploy(
    routing: &Routing,
    sources: &[Clients],
    targets: &[Clients],
    options: &DeployOptions,
) -> Result<Deployment> {
    let mut deployment = Deployment::default();
    // Targets first: the sources' forwarding rules point at their buses, and a bus must
    // admit a source before its first event is forwarded to it.
    for target in targets {
        deploy_account(routing, target, Side::Target, options, &mut deployment).await?;
        for source in sources {
            let statement_id = format!("snapferry-source-{}", source.account);
            target
                .events
                .put_permission()
                .event_bus_name(&routing.pipeline_bus)
                .action("events:PutEvents")
                .principal(&source.account)
                .statement_id(statement_id)
                .send()
                .await
                .map_err(|e| Error::from_sdk("PutPermission", e))?;
        }
    }
    for source in sources {
        deploy_account(routing, source, Side::Source, options, &mut deployment).await?;
        for target in targets {
            let (rule_name, pattern) = routing.cross_account.for_account(&target.account);
            let target_bus = deployment
                .pipeline_bus_arn(&target.account)
                .ok_or_else(|| Error::Config(format!("no pipeline bus deployed in {}", target.account)))?
                .to_string();
            let bus = bus_name(routing, routing.cross_account.bus);
            put_rule(source, bus, &rule_name, Some(&pattern), None).await?;
            put_target(source, bus, &rule_name, &target_bus).await?;
            info!(rule = rule_name, target_bus, "cross-account forwarding deployed");
            if options.copied_back {
                copied_back(routing, source, target, &deployment).await?;
            }
        }
    }
    Ok(deployment)
}

/// The way back: `target` returns the "Snapshot Copied" events of `source`'s backups to
/// `source`'s pipeline bus, which admits `target` for them.
async fn copied_back(routing: &Routing, source: &Clients, target: &Clients, deployment: &Deployment) -> Result<()> {
    source
        .events
        .put_permission()
        .event_bus_name(&routing.pipeline_bus)
        .action("events:PutEvents")
        .principal(&target.account)
        .statement_id(format!("snapferry-target-{}", target.account))
        .send()
        .await
        .map_err(|e| Error::from_sdk("PutPermission", e))?;
    let (rule_name, pattern) = routing.copied_back.for_account(&source.account);
    let source_bus = deployment
        .pipeline_bus_arn(&source.account)
        .ok_or_else(|| Error::Config(format!("no pipeline bus deployed in {}", source.account)))?
        .to_string();
    let bus = bus_name(routing, routing.copied_back.bus);
    put_rule(target, bus, &rule_name, Some(&pattern), None).await?;
    put_target(target, bus, &rule_name, &source_bus).await?;
    info!(rule = rule_name, source_bus, "copies reported back to the source");
    Ok(())
}

async fn deploy_account(
    routing: &Routing,
    clients: &Clients,
    side: Side,
    options: &DeployOptions,
    deployment: &mut Deployment,
) -> Result<()> {
    let bus_arn = ensure_bus(clients, &routing.pipeline_bus).await?;
    deployment.pipeline_buses.insert(clients.account.clone(), bus_arn);
    if side == Side::Target {
        ensure_copy_ledger(clients, &routing.copy_ledger).await?;
    }
    for function in routing.functions.iter().filter(|f| f.account == side) {
        let queue = deploy_function(routing, clients, function, options, deployment).await?;
        info!(account = clients.account, function = function.name, queue = queue.queue_url, "function deployed");
        deployment.queues.insert((clients.account.clone(), function.name.clone()), queue);
    }
    Ok(())
}

async fn deploy_function(
    routing: &Routing,
    clients: &Clients,
    function: &Function,
    options: &DeployOptions,
    deployment: &mut Deployment,
) -> Result<DeployedQueue> {
    let retention = u64::from(routing.dlq_retention_days) * 24 * 3600;
    let dlq_url = ensure_queue(
        clients,
        &routing.dlq_name(function),
        &[(QueueAttributeName::MessageRetentionPeriod, retention.to_string())],
    )
    .await?;
    let dlq_arn = queue_arn(&clients.sqs, &dlq_url).await?;
    let visibility =
        options.visibility_timeout_override.unwrap_or_else(|| routing.visibility_timeout_seconds(function));
    let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": routing.max_receive_count });
    let queue_url = ensure_queue(
        clients,
        &function.queue,
        &[
            (QueueAttributeName::VisibilityTimeout, visibility.to_string()),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await?;
    let queue_arn = queue_arn(&clients.sqs, &queue_url).await?;

    let mut rule_arns = Vec::new();
    for rule in &function.rules {
        let bus = bus_name(routing, rule.bus);
        let arn = put_rule(clients, bus, &rule.name, rule.pattern.as_ref(), rule.schedule.as_deref()).await?;
        put_target(clients, bus, &rule.name, &queue_arn).await?;
        if rule.schedule.is_some() {
            let schedule = DeployedSchedule {
                function: function.name.clone(),
                account: clients.account.clone(),
                region: clients.region.clone(),
                rule_name: rule.name.clone(),
                rule_arn: arn.clone(),
            };
            deployment.schedules.retain(|s| (&s.account, &s.rule_name) != (&schedule.account, &schedule.rule_name));
            deployment.schedules.push(schedule);
        }
        rule_arns.push(arn);
    }
    // What CDK's `SqsQueue` target adds: EventBridge may send to the queue, for these rules only.
    let policy = queue_policy(&queue_arn, &rule_arns);
    clients
        .sqs
        .set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(|e| Error::from_sdk("SetQueueAttributes", e))?;

    Ok(DeployedQueue {
        function: function.name.clone(),
        account: clients.account.clone(),
        region: clients.region.clone(),
        queue_url,
        queue_arn,
        dlq_url,
        dlq_arn,
        batch_size: function.batch_size,
        timeout: Duration::from_secs(u64::from(function.timeout_seconds)),
    })
}

/// The queue policy CDK generates for an `SqsQueue` rule target, one statement per rule.
pub fn queue_policy(queue_arn: &str, rule_arns: &[String]) -> Value {
    let statements: Vec<Value> = rule_arns
        .iter()
        .map(|rule_arn| {
            json!({
                "Effect": "Allow",
                "Principal": { "Service": "events.amazonaws.com" },
                "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": rule_arn } },
            })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn bus_name(routing: &Routing, bus: Bus) -> &str {
    match bus {
        Bus::Default => "default",
        Bus::Pipeline => &routing.pipeline_bus,
    }
}

/// Creates the backup account's copy ledger table unless it exists, as the target stack
/// does: keys `pk` and `sk`, strings, on demand.
pub async fn ensure_copy_ledger(clients: &Clients, name: &str) -> Result<()> {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let attribute =
        |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build();
    let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build();
    let bad = |e: aws_sdk_dynamodb::error::BuildError| Error::Config(format!("copy ledger table: {e}"));
    let created = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(attribute("pk").map_err(bad)?)
        .attribute_definitions(attribute("sk").map_err(bad)?)
        .key_schema(key("pk", KeyType::Hash).map_err(bad)?)
        .key_schema(key("sk", KeyType::Range).map_err(bad)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(Error::from_sdk("CreateTable", e)),
    }
}

/// Creates the bus unless it exists; returns its ARN as EventBridge reports it.
async fn ensure_bus(clients: &Clients, name: &str) -> Result<String> {
    match clients.events.create_event_bus().name(name).send().await {
        Ok(out) => {
            if let Some(arn) = out.event_bus_arn() {
                return Ok(arn.to_string());
            }
        }
        Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
        Err(e) => return Err(Error::from_sdk("CreateEventBus", e)),
    }
    let described = clients
        .events
        .describe_event_bus()
        .name(name)
        .send()
        .await
        .map_err(|e| Error::from_sdk("DescribeEventBus", e))?;
    described.arn().map(str::to_string).ok_or_else(|| Error::Config(format!("DescribeEventBus {name} returned no ARN")))
}

/// `CreateQueue` with `attributes`; a queue that exists with other attributes (a changed
/// routing.json, another visibility override) is updated in place, as CloudFormation would.
async fn ensure_queue(clients: &Clients, name: &str, attributes: &[(QueueAttributeName, String)]) -> Result<String> {
    let mut create = clients.sqs.create_queue().queue_name(name);
    for (key, value) in attributes {
        create = create.attributes(key.clone(), value);
    }
    match create.send().await {
        Ok(out) => out
            .queue_url()
            .map(str::to_string)
            .ok_or_else(|| Error::Config(format!("CreateQueue {name} returned no URL"))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_name_exists()) => {
            let url = clients
                .sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| Error::from_sdk("GetQueueUrl", e))?
                .queue_url()
                .map(str::to_string)
                .ok_or_else(|| Error::Config(format!("GetQueueUrl {name} returned no URL")))?;
            let mut update = clients.sqs.set_queue_attributes().queue_url(&url);
            for (key, value) in attributes {
                update = update.attributes(key.clone(), value);
            }
            update.send().await.map_err(|e| Error::from_sdk("SetQueueAttributes", e))?;
            Ok(url)
        }
        Err(e) => Err(Error::from_sdk("CreateQueue", e)),
    }
}

/// `PutRule` creates or updates, so it is idempotent by itself; returns the rule's ARN.
async fn put_rule(
    clients: &Clients,
    bus: &str,
    name: &str,
    pattern: Option<&Value>,
    schedule: Option<&str>,
) -> Result<String> {
    let out = clients
        .events
        .put_rule()
        .name(name)
        .event_bus_name(bus)
        .set_event_pattern(pattern.map(Value::to_string))
        .set_schedule_expression(schedule.map(str::to_string))
        .state(RuleState::Enabled)
        .description("snapferry (shared/routing.json)")
        .send()
        .await
        .map_err(|e| Error::from_sdk("PutRule", e))?;
    out.rule_arn().map(str::to_string).ok_or_else(|| Error::Config(format!("PutRule {name} returned no ARN")))
}

async fn put_target(clients: &Clients, bus: &str, rule: &str, target_arn: &str) -> Result<()> {
    let target = Target::builder()
        .id(TARGET_ID)
        .arn(target_arn)
        .build()
        .map_err(|e| Error::Config(format!("target of {rule}: {e}")))?;
    let out = clients
        .events
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| Error::from_sdk("PutTargets", e))?;
    // Like PutEvents, PutTargets reports per-entry failures on an HTTP 200.
    if out.failed_entry_count() > 0 {
        let reasons: Vec<String> = out
            .failed_entries()
            .iter()
            .map(|f| format!("{}: {}", f.error_code().unwrap_or("?"), f.error_message().unwrap_or("?")))
            .collect();
        return Err(Error::Permanent {
            op: "PutTargets",
            code: "FailedEntry".into(),
            message: format!("rule {rule} → {target_arn}: {}", reasons.join("; ")),
            hint: None,
        });
    }
    Ok(())
}

/// The role `function` runs as: `snapferry-<function>` in `clients`' account, with exactly
/// `policy` (rendered from `shared/permissions.json`) as its one inline policy, replaced on
/// every deploy as a CloudFormation update replaces it. Returns clients acting as that role:
/// the emulator refuses any call the policy does not grant, as IAM would.
pub async fn step_role(clients: &Clients, function: &str, policy: &Value) -> Result<Clients> {
    let iam = aws_sdk_iam::Client::new(&clients.config);
    let name = format!("snapferry-{function}");
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole" }]
    });
    match iam.create_role().role_name(&name).assume_role_policy_document(trust.to_string()).send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_entity_already_exists_exception()) => {}
        Err(e) => return Err(Error::from_sdk("CreateRole", e)),
    }
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("snapferry")
        .policy_document(policy.to_string())
        .send()
        .await
        .map_err(|e| Error::from_sdk("PutRolePolicy", e))?;
    let role_arn = format!("arn:aws:iam::{}:role/{name}", clients.account);
    let config = Clients::assume_role(&clients.config, &role_arn, function).await?;
    Clients::with_account(config, clients.account.clone())
}
