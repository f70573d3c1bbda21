//! A whole snapferry pipeline on the local emulator: the keys, the restore-test network,
//! the topology from `shared/routing.json`, and every step of the routing hosted with Lambda's SQS
//! semantics. `snapferry demo`, `snapferry local` and the end-to-end tests all use it, so
//! they run the very handlers the Lambdas run.

use crate::{DeployOptions, Deployment, Host, deploy, step_role};
use serde_json::json;
use snapferry::ResourceKind;
use snapferry::clients::Clients;
use snapferry::config::Env;
use snapferry::error::{Error, Result};
use snapferry::events::{EventEnvelope, PipelineEvent};
use snapferry::inbound::{Incoming, parse_message};
use snapferry::permissions::{Permissions, Scope};
use snapferry::routing::Routing;
use std::collections::BTreeMap;
use std::time::Duration;

pub use snapferry::permissions::BACKUP_KEY_ALIAS;
pub use snapferry_cli::doctor::SHARING_KEY_ALIAS;
pub const RESTORE_NETWORK: &str = "snapferry-restore-test";
const MONITOR_QUEUE: &str = "snapferry-monitor";

/// What differs between the demo, a long-running local pipeline and a test. Each field
/// becomes the step variable the CDK stacks set from their config (see [`Self::variables`]).
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// `SELECT_REGEX` of create-snapshot and share-snapshot.
    pub select_regex: Option<String>,
    /// `SELECT_IDENTIFIERS`.
    pub select_identifiers: Vec<String>,
    /// `SELECT_TAG`: `key` or `key=value`.
    pub select_tag: Option<String>,
    /// `SELECT_INSTANCE_TAG`: EC2 instances whose volumes are snapshotted as one set.
    pub select_instance_tag: Option<String>,
    /// `KINDS` of create-snapshot.
    pub kinds: Vec<ResourceKind>,
    /// `LOCK_MODE` and `LOCK_DAYS` of restore (`None`: no lock).
    pub lock: Option<(String, u32)>,
    /// The backup account reports its copies back, and the source withdraws the share and
    /// deletes its intermediate copy (the stacks always deploy this; tests of the other
    /// steps leave it out to look at the shares).
    pub release_shares: bool,
    /// `RETENTION` of expire-snapshots (source) and expire-copies (backup); the
    /// environment's defaults when `None`.
    pub retention_source: Option<String>,
    pub retention_backup: Option<String>,
    /// `EXPIRE_DRY_RUN` of both.
    pub expire_dry_run: bool,
    /// `GRACE_MINUTES` of both reconcile steps: a chain stalled longer is repaired.
    pub reconcile_grace_minutes: u32,
    /// `RPO_MINUTES` of reconcile-copies.
    pub rpo_minutes: u32,
    pub extra_regions: Vec<String>,
    /// `OPTION_GROUPS` of copy-shared-snapshot: `region:source=destination,...`.
    pub option_groups: Option<String>,
    /// Allowlisted source accounts; the source account when empty.
    pub allowlist: Vec<String>,
    pub recheck: Duration,
    pub retry_base: Duration,
    pub visibility_timeout_override: Option<u32>,
    pub min_interval_minutes: i64,
    pub restore_enabled: bool,
    pub restore_every_nth: usize,
    /// `DATA_CHECKS` of restore (JSON); `None`: no data checks. The local pipeline trusts
    /// the emulator's CA for them (`DATA_CHECK_CA_BUNDLE`), as an operator adds RDS's.
    pub data_checks: Option<String>,
    /// `DATA_CHECK_TIMEOUT_SECONDS`, of restore and share-snapshot.
    pub data_check_timeout_seconds: u32,
    /// `SOURCE_DATA_CHECKS` of share-snapshot (JSON); `None`: no source database is
    /// measured. Trusts the emulator's CA as `data_checks` does.
    pub source_data_checks: Option<String>,
    pub identifier_regex: Option<String>,
    pub description_regex: Option<String>,
    /// `MANUAL_SNAPSHOT_QUOTA` of create-snapshot.
    pub manual_snapshot_quota: u32,
    /// `ALLOW_DELETE_ALL`, `MAX_DELETES_PER_RUN` and `QUOTA_WARNING_PERCENT` of both expire steps.
    pub expire_allow_delete_all: bool,
    pub expire_max_deletes_per_run: u32,
    pub quota_warning_percent: u32,
    /// `SCHEDULE_MINUTES` of reconcile-snapshots: how often create-snapshot runs.
    pub schedule_minutes: u32,
    /// `COPY_SLOTS` of copy-shared-snapshot (`kind=count,...`); AWS's defaults when `None`.
    /// Set to the emulator's lowered copy quotas where a run lowers them.
    pub copy_slots: Option<String>,
    /// `COPIES_HELD_PER_SOURCE` and `COPIES_IN_FLIGHT_PER_SOURCE` of copy-shared-snapshot;
    /// derived from AWS's quotas and slots and the number of sources when `None`.
    pub copies_held_per_source: Option<String>,
    pub copies_in_flight_per_source: Option<String>,
    /// Invocations of each function at once, as Lambda's event source mapping runs them
    /// (its minimum maximum concurrency is 2): every step must be idempotent under it.
    pub concurrency: usize,
    /// What each step's role may do; `shared/permissions.json` unless a test takes an
    /// action away to see the chain fail.
    pub permissions: Permissions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            select_regex: Some(".*".into()),
            select_identifiers: Vec::new(),
            select_tag: None,
            select_instance_tag: None,
            kinds: vec![ResourceKind::DbInstance, ResourceKind::DbCluster],
            lock: None,
            release_shares: false,
            retention_source: None,
            retention_backup: None,
            expire_dry_run: false,
            // The stacks' defaults: no repair of a chain that is merely slow.
            reconcile_grace_minutes: 60,
            rpo_minutes: 1440,
            extra_regions: Vec::new(),
            option_groups: None,
            allowlist: Vec::new(),
            recheck: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            visibility_timeout_override: Some(5),
            min_interval_minutes: 60,
            restore_enabled: true,
            restore_every_nth: 1,
            data_checks: None,
            data_check_timeout_seconds: 10,
            source_data_checks: None,
            identifier_regex: None,
            description_regex: None,
            copy_slots: None,
            copies_held_per_source: None,
            copies_in_flight_per_source: None,
            concurrency: 2,
            // The contract's defaults, which the stacks write out too.
            manual_snapshot_quota: 100,
            expire_allow_delete_all: false,
            expire_max_deletes_per_run: 100,
            quota_warning_percent: 80,
            schedule_minutes: 60,
            permissions: Permissions::load(),
        }
    }
}

impl PipelineOptions {
    /// Every optional feature on, each with a valid value: the local host's side of the
    /// infra tests' comparison of rendered environments (`snapferry-local local-env`).
    pub fn everything() -> Self {
        PipelineOptions {
            select_identifiers: vec!["orders".into()],
            select_tag: Some("backup=daily".into()),
            select_instance_tag: Some("fleet=web".into()),
            kinds: snapferry::kinds::all().collect(),
            lock: Some(("governance".into(), 7)),
            release_shares: true,
            retention_source: Some(r#"[{"keep_last": 1}]"#.into()),
            retention_backup: Some(
                r#"[{"resources": "^prod-", "regions": ["eu-west-1"], "keep_last": 2}, {"daily": 7, "monthly": 12}]"#
                    .into(),
            ),
            extra_regions: vec!["eu-west-1".into()],
            allowlist: vec![crate::demo::SOURCE_ACCOUNT.into(), "444444444444".into()],
            data_checks: Some(r#"{"databases": [{"resources": ".*", "database": "app"}]}"#.into()),
            source_data_checks: Some(r#"{"databases": [{"resources": ".*", "database": "app"}]}"#.into()),
            identifier_regex: Some("^snapferry-".into()),
            description_regex: Some(".*".into()),
            copy_slots: Some("db-instance=20,db-cluster=5,ebs=20".into()),
            copies_held_per_source: Some("40,444444444444=10".into()),
            copies_in_flight_per_source: Some("4".into()),
            ..PipelineOptions::default()
        }
    }
}

/// What the local pipeline knows once its keys and network exist, that steps are configured with.
struct Deployed<'a> {
    /// Every source account of the pipeline.
    sources: &'a [String],
    target_account: &'a str,
    sharing_key: &'a str,
    target_key: &'a str,
    extra_keys: &'a [(String, String)],
    subnet_group: &'a str,
    security_group: &'a str,
    /// The emulator's CA, when data checks are on.
    ca_bundle: Option<&'a str>,
}

impl PipelineOptions {
    /// The allowlisted source accounts: every source of the pipeline when none are given.
    fn allowlist_or(&self, sources: &[String]) -> Vec<String> {
        if self.allowlist.is_empty() { sources.to_vec() } else { self.allowlist.clone() }
    }

    /// The variables of `step` that the CDK stacks set from their config; the queue
    /// variables are added by the host, as the stacks' step construct adds them.
    fn variables(&self, step: &str, d: &Deployed) -> BTreeMap<String, String> {
        let seconds = |d: Duration| d.as_secs().to_string();
        let selection = || {
            vec![
                ("SELECT_REGEX", self.select_regex.clone().unwrap_or_default()),
                ("SELECT_IDENTIFIERS", self.select_identifiers.join(",")),
                ("SELECT_TAG", self.select_tag.clone().unwrap_or_default()),
                ("SELECT_INSTANCE_TAG", self.select_instance_tag.clone().unwrap_or_default()),
            ]
        };
        // The backup account's steps handle the kinds its sources back up, as the stacks' `target.kinds`.
        let kinds = || self.kinds.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        let expire = || {
            vec![
                ("EXPIRE_DRY_RUN", self.expire_dry_run.to_string()),
                ("ALLOW_DELETE_ALL", self.expire_allow_delete_all.to_string()),
                ("MAX_DELETES_PER_RUN", self.expire_max_deletes_per_run.to_string()),
                ("QUOTA_WARNING_PERCENT", self.quota_warning_percent.to_string()),
            ]
        };
        let mut vars =
            vec![("RECHECK_SECONDS", seconds(self.recheck)), ("RETRY_BASE_SECONDS", seconds(self.retry_base))];
        match step {
            snapferry_create_snapshot::STEP => {
                vars.extend(selection());
                let kinds: Vec<String> = self.kinds.iter().map(ToString::to_string).collect();
                vars.push(("KINDS", kinds.join(",")));
                vars.push(("MIN_INTERVAL_MINUTES", self.min_interval_minutes.to_string()));
                vars.push(("MANUAL_SNAPSHOT_QUOTA", self.manual_snapshot_quota.to_string()));
            }
            snapferry_share_snapshot::STEP => {
                vars.extend(selection());
                vars.push(("TARGET_ACCOUNTS", d.target_account.to_string()));
                vars.push(("SHARING_KMS_KEY_ARN", d.sharing_key.to_string()));
                if let Some(checks) = &self.source_data_checks {
                    vars.push(("SOURCE_DATA_CHECKS", checks.clone()));
                    vars.push(("DATA_CHECK_TIMEOUT_SECONDS", self.data_check_timeout_seconds.to_string()));
                    vars.push(("DATA_CHECK_CA_BUNDLE", d.ca_bundle.unwrap_or_default().to_string()));
                }
            }
            snapferry_copy_shared_snapshot::STEP => {
                vars.push(("SOURCE_ACCOUNTS", self.allowlist_or(d.sources).join(",")));
                vars.push(("TARGET_KMS_KEY_ARN", d.target_key.to_string()));
                vars.push(("EXTRA_REGIONS", self.extra_regions.join(",")));
                let keys: Vec<String> = d.extra_keys.iter().map(|(r, k)| format!("{r}={k}")).collect();
                vars.push(("EXTRA_REGION_KMS_KEYS", keys.join(",")));
                vars.push(("OPTION_GROUPS", self.option_groups.clone().unwrap_or_default()));
                vars.push(("IDENTIFIER_REGEX", self.identifier_regex.clone().unwrap_or_default()));
                vars.push(("DESCRIPTION_REGEX", self.description_regex.clone().unwrap_or_default()));
                vars.push(("COPY_SLOTS", self.copy_slots.clone().unwrap_or_default()));
                vars.push(("COPIES_HELD_PER_SOURCE", self.copies_held_per_source.clone().unwrap_or_default()));
                vars.push((
                    "COPIES_IN_FLIGHT_PER_SOURCE",
                    self.copies_in_flight_per_source.clone().unwrap_or_default(),
                ));
            }
            snapferry_restore::STEP => {
                vars.push(("RESTORE_ENABLED", self.restore_enabled.to_string()));
                vars.push(("RESTORE_EVERY_NTH", self.restore_every_nth.to_string()));
                vars.push(("RESTORE_SUBNET_GROUP", d.subnet_group.to_string()));
                vars.push(("RESTORE_SECURITY_GROUP_IDS", d.security_group.to_string()));
                vars.push(("TARGET_KMS_KEY_ARN", d.target_key.to_string()));
                vars.push(("RESTORE_TIMEOUT_MINUTES", "30".into()));
                if let Some(checks) = &self.data_checks {
                    vars.push(("DATA_CHECKS", checks.clone()));
                    vars.push(("DATA_CHECK_TIMEOUT_SECONDS", self.data_check_timeout_seconds.to_string()));
                    vars.push(("DATA_CHECK_CA_BUNDLE", d.ca_bundle.unwrap_or_default().to_string()));
                }
                if let Some((mode, days)) = &self.lock {
                    vars.push(("LOCK_MODE", mode.clone()));
                    vars.push(("LOCK_DAYS", days.to_string()));
                }
            }
            snapferry_expire_snapshots::SOURCE_STEP => {
                let kinds: Vec<String> = self.kinds.iter().map(ToString::to_string).collect();
                vars.push(("KINDS", kinds.join(",")));
                vars.push(("TARGET_ACCOUNTS", d.target_account.to_string()));
                vars.push(("RETENTION", self.retention_source.clone().unwrap_or_default()));
                vars.extend(expire());
            }
            snapferry_reconcile::SOURCE_STEP => {
                vars.extend(selection());
                let kinds: Vec<String> = self.kinds.iter().map(ToString::to_string).collect();
                vars.push(("KINDS", kinds.join(",")));
                vars.push(("GRACE_MINUTES", self.reconcile_grace_minutes.to_string()));
                vars.push(("SCHEDULE_MINUTES", self.schedule_minutes.to_string()));
            }
            snapferry_reconcile::BACKUP_STEP => {
                vars.push(("KINDS", kinds()));
                vars.push(("EXTRA_REGIONS", self.extra_regions.join(",")));
                vars.push(("GRACE_MINUTES", self.reconcile_grace_minutes.to_string()));
                vars.push(("RPO_MINUTES", self.rpo_minutes.to_string()));
                vars.push(("RETENTION", self.retention_backup.clone().unwrap_or_default()));
                vars.push(("RESTORE_ENABLED", self.restore_enabled.to_string()));
                vars.push(("RESTORE_EVERY_NTH", self.restore_every_nth.to_string()));
            }
            snapferry_expire_snapshots::BACKUP_STEP => {
                vars.push(("KINDS", kinds()));
                vars.push(("EXTRA_REGIONS", self.extra_regions.join(",")));
                vars.push(("RETENTION", self.retention_backup.clone().unwrap_or_default()));
                vars.extend(expire());
            }
            _ => {}
        }
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The whole environment of `function` as Lambda would have it: what the stacks set
    /// from their config ([`Self::variables`]), plus the platform variables their step
    /// construct adds: its queue and DLQ (`queue_of` gives a step's queue and DLQ URLs), the
    /// pipeline bus, and the other steps' queues reconcile sends its repairs to.
    fn environment(
        &self,
        function: &str,
        d: &Deployed,
        pipeline_bus: &str,
        queue_of: impl Fn(&str) -> Option<(String, String)>,
    ) -> BTreeMap<String, String> {
        let mut vars = self.variables(function, d);
        if let Some((queue_url, dlq_url)) = queue_of(function) {
            vars.insert("QUEUE_URL".into(), queue_url);
            vars.insert("DLQ_URL".into(), dlq_url);
        }
        vars.insert("PIPELINE_BUS".into(), pipeline_bus.to_string());
        for (var, step) in [
            ("SHARE_QUEUE_URL", "share-snapshot"),
            ("COPY_QUEUE_URL", "copy-shared-snapshot"),
            ("RESTORE_QUEUE_URL", "restore"),
        ] {
            let declared = snapferry::environment::var(function, var).is_some();
            if let (true, Some((queue_url, _))) = (declared, queue_of(step)) {
                vars.insert(var.into(), queue_url);
            }
        }
        vars
    }

    /// Every function's environment as the local host renders it with these options, for
    /// a deployment of placeholders (documentation account ids, `us-east-1`): what the
    /// infra tests hold the stacks' rendered environments against (`snapferry-local
    /// local-env`).
    pub fn rendered(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let (source, target) = (crate::demo::SOURCE_ACCOUNT, crate::demo::TARGET_ACCOUNT);
        let key = |account: &str, id: &str| format!("arn:aws:kms:us-east-1:{account}:key/{id}");
        let (sharing_key, target_key) = (key(source, "sharing"), key(target, "backup"));
        let extra_keys: Vec<(String, String)> =
            self.extra_regions.iter().map(|r| (r.clone(), format!("arn:aws:kms:{r}:{target}:key/backup"))).collect();
        let sources = [source.to_string()];
        let deployed = Deployed {
            sources: &sources,
            target_account: target,
            sharing_key: &sharing_key,
            target_key: &target_key,
            extra_keys: &extra_keys,
            subnet_group: RESTORE_NETWORK,
            security_group: "sg-0123456789abcdef0",
            // RDS's own CAs, compiled in (the emulator's is a file of the machine that runs it).
            ca_bundle: None,
        };
        let routing = Routing::load();
        routing
            .functions
            .iter()
            .map(|f| {
                let account = if f.account == snapferry::routing::Side::Source { source } else { target };
                let queue_of = |step: &str| {
                    let url = format!("https://sqs.us-east-1.amazonaws.com/{account}/snapferry-{step}");
                    Some((url.clone(), format!("{url}-dlq")))
                };
                (f.name.clone(), self.environment(&f.name, &deployed, &routing.pipeline_bus, queue_of))
            })
            .collect()
    }
}

pub struct LocalPipeline {
    /// The first source account; the tests' own.
    pub source: Clients,
    /// The other source accounts, each a pipeline of its own into the same backup account:
    /// the neighbours a source's flood, failure or lie must not harm.
    pub neighbours: Vec<Clients>,
    pub target: Clients,
    /// The first source's sharing key.
    pub sharing_key: String,
    /// Every source's sharing key, by account.
    pub sharing_keys: BTreeMap<String, String>,
    pub target_key: String,
    pub extra_keys: Vec<(String, String)>,
    pub deployment: Deployment,
    pub host: Host,
    monitors: Vec<(Clients, String)>,
}

impl LocalPipeline {
    /// Sets everything up (idempotently) and registers every step of the routing, for one
    /// source account.
    pub async fn start(source: Clients, target: Clients, options: &PipelineOptions) -> Result<LocalPipeline> {
        LocalPipeline::start_many(source, Vec::new(), target, options).await
    }

    /// As [`Self::start`], with `neighbours`: more source accounts into the same backup
    /// account, each with the source steps, keys and rules of its own.
    pub async fn start_many(
        source: Clients,
        neighbours: Vec<Clients>,
        target: Clients,
        options: &PipelineOptions,
    ) -> Result<LocalPipeline> {
        let routing = Routing::load();
        let sources: Vec<Clients> = std::iter::once(source.clone()).chain(neighbours.iter().cloned()).collect();
        let accounts: Vec<String> = sources.iter().map(|s| s.account.clone()).collect();
        let mut sharing_keys = BTreeMap::new();
        for s in &sources {
            let policy =
                snapferry::kms::sharing_key_policy(&s.account, &s.region, std::slice::from_ref(&target.account));
            sharing_keys.insert(s.account.clone(), ensure_key(s, SHARING_KEY_ALIAS, policy).await?);
        }
        let sharing_key = sharing_keys[&source.account].clone();
        let target_key = ensure_key(
            &target,
            BACKUP_KEY_ALIAS,
            snapferry::kms::sharing_key_policy(&target.account, &target.region, &[]),
        )
        .await?;
        let mut extra_keys = Vec::new();
        for region in &options.extra_regions {
            let regional = target.for_region(region);
            let key = ensure_key(
                &regional,
                BACKUP_KEY_ALIAS,
                snapferry::kms::sharing_key_policy(&target.account, region, &[]),
            )
            .await?;
            extra_keys.push((region.clone(), key));
        }
        let (subnet_group, security_group) = restore_network(&target).await?;
        let deploy_options = DeployOptions {
            visibility_timeout_override: options.visibility_timeout_override,
            copied_back: options.release_shares,
        };
        let deployment = deploy(&routing, &sources, std::slice::from_ref(&target), &deploy_options).await?;

        let ca_bundle = match (&options.data_checks, &options.source_data_checks) {
            (None, None) => None,
            _ => Some(emulator_ca_bundle(&target).await?),
        };
        let mut host = Host::new(&deployment);
        host.set_concurrency(options.concurrency);
        for function in &routing.functions {
            let side: Vec<&Clients> = if function.account == snapferry::routing::Side::Source {
                sources.iter().collect()
            } else {
                vec![&target]
            };
            for clients in side {
                // A source step shares with its own key; the backup account's steps name the first's.
                let sharing_key = sharing_keys.get(&clients.account).unwrap_or(&sharing_key).clone();
                let deployed = Deployed {
                    sources: &accounts,
                    target_account: &target.account,
                    sharing_key: &sharing_key,
                    target_key: &target_key,
                    extra_keys: &extra_keys,
                    subnet_group: &subnet_group,
                    security_group: &security_group,
                    ca_bundle: ca_bundle.as_deref(),
                };
                let queue = deployment
                    .queue(&clients.account, &function.name)
                    .ok_or_else(|| Error::Config(format!("{} not deployed", function.name)))?;
                let queue_of = |step: &str| {
                    deployment.queue(&clients.account, step).map(|q| (q.queue_url.clone(), q.dlq_url.clone()))
                };
                let vars = options.environment(&function.name, &deployed, &routing.pipeline_bus, queue_of);
                let env = Env::new(&function.name, vars)?;
                // Each step acts as a role of its own holding exactly its permissions, so the
                // emulator refuses what the deployed role would not allow.
                let scope = Scope {
                    partition: "aws".into(),
                    account: clients.account.clone(),
                    region: clients.region.clone(),
                    extra_regions: options.extra_regions.clone(),
                    sources: options.allowlist_or(&accounts).into_iter().map(|a| (a, source.region.clone())).collect(),
                    sharing_key: Some(sharing_key.clone()),
                    target_key: Some(target_key.clone()),
                    restore_subnet_group: Some(subnet_group.clone()),
                    queue_arn: queue.queue_arn.clone(),
                    dlq_arn: queue.dlq_arn.clone(),
                    step_queue_arns: routing
                        .functions
                        .iter()
                        .filter_map(|f| {
                            let queue = deployment.queue(&clients.account, &f.name)?;
                            Some((f.name.clone(), queue.queue_arn.clone()))
                        })
                        .collect(),
                    bus_arn: deployment.pipeline_bus_arn(&clients.account).unwrap_or_default().to_string(),
                    // RDS's managed secrets only: the local pipeline's sources are made with them.
                    source_database_secrets: options.source_data_checks.as_ref().map(|_| Vec::new()),
                };
                let policy = options.permissions.role_policy(&function.name, &scope);
                let role = step_role(clients, &function.name, &policy).await?;
                host.register(&role, &function.name, snapferry_lambda::handler(&env, &role)?)?;
            }
        }
        let mut monitors = Vec::new();
        for clients in sources.iter().chain([&target]) {
            monitors.push((clients.clone(), monitor(clients, &routing.pipeline_bus).await?));
        }
        Ok(LocalPipeline {
            source,
            neighbours,
            target,
            sharing_key,
            sharing_keys,
            target_key,
            extra_keys,
            deployment,
            host,
            monitors,
        })
    }

    /// Pipeline events published since the last call, on either account's pipeline bus.
    pub async fn events(&self) -> Result<Vec<EventEnvelope<PipelineEvent>>> {
        let mut events = Vec::new();
        for (clients, url) in &self.monitors {
            loop {
                let out = clients
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk("ReceiveMessage", e))?;
                if out.messages().is_empty() {
                    break;
                }
                for m in out.messages() {
                    if let Ok(Incoming::Pipeline(e)) = parse_message(m.body().unwrap_or_default()) {
                        events.push(e);
                    }
                    if let Some(handle) = m.receipt_handle() {
                        clients
                            .sqs
                            .delete_message()
                            .queue_url(url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| Error::from_sdk("DeleteMessage", e))?;
                    }
                }
            }
        }
        // An event forwarded across accounts reaches both monitors with the same id.
        events.sort_by(|a, b| (a.detail.emitted_at, &a.id).cmp(&(b.detail.emitted_at, &b.id)));
        events.dedup_by(|a, b| a.id == b.id);
        Ok(events)
    }
}

/// The key behind `alias`, created with `policy` when missing.
pub async fn ensure_key(clients: &Clients, alias: &str, policy: serde_json::Value) -> Result<String> {
    if let Ok(found) = clients.kms.describe_key().key_id(alias).send().await
        && let Some(arn) = found.key_metadata().and_then(|m| m.arn())
    {
        return Ok(arn.to_string());
    }
    let created = clients
        .kms
        .create_key()
        .description(format!("snapferry {alias}"))
        .policy(policy.to_string())
        .send()
        .await
        .map_err(|e| Error::from_sdk("CreateKey", e))?;
    let meta = created.key_metadata().ok_or_else(|| Error::BadInput("CreateKey returned no key".into()))?;
    clients
        .kms
        .create_alias()
        .alias_name(alias)
        .target_key_id(meta.key_id())
        .send()
        .await
        .map_err(|e| Error::from_sdk("CreateAlias", e))?;
    Ok(meta.arn().unwrap_or(meta.key_id()).to_string())
}

/// The isolated network restore tests run in: a VPC with two subnets, a DB subnet group
/// and a security group without ingress rules, as the target stack creates.
async fn restore_network(target: &Clients) -> Result<(String, String)> {
    let existing = target
        .ec2
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values(RESTORE_NETWORK).build())
        .send()
        .await
        .map_err(|e| Error::from_sdk("DescribeSecurityGroups", e))?;
    if let Some(id) = existing.security_groups().first().and_then(|g| g.group_id()) {
        return Ok((RESTORE_NETWORK.to_string(), id.to_string()));
    }
    let vpc =
        target.ec2.create_vpc().cidr_block("10.42.0.0/16").send().await.map_err(|e| Error::from_sdk("CreateVpc", e))?;
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ["a", "b"].iter().enumerate() {
        let subnet = target
            .ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.42.{i}.0/24"))
            .availability_zone(format!("{}{zone}", target.region))
            .send()
            .await
            .map_err(|e| Error::from_sdk("CreateSubnet", e))?;
        subnets.push(subnet.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_string());
    }
    target
        .rds
        .create_db_subnet_group()
        .db_subnet_group_name(RESTORE_NETWORK)
        .db_subnet_group_description("snapferry restore tests: no route to anything")
        .set_subnet_ids(Some(subnets))
        .send()
        .await
        .map_err(|e| Error::from_sdk("CreateDBSubnetGroup", e))?;
    let group = target
        .ec2
        .create_security_group()
        .group_name(RESTORE_NETWORK)
        .description("snapferry restore tests: no ingress")
        .vpc_id(&vpc_id)
        .send()
        .await
        .map_err(|e| Error::from_sdk("CreateSecurityGroup", e))?;
    Ok((RESTORE_NETWORK.to_string(), group.group_id().unwrap_or_default().to_string()))
}

/// A queue that receives every snapferry event on `bus`: how the demo and tests watch.
async fn monitor(clients: &Clients, bus: &str) -> Result<String> {
    let url = clients
        .sqs
        .create_queue()
        .queue_name(MONITOR_QUEUE)
        .send()
        .await
        .map_err(|e| Error::from_sdk("CreateQueue", e))?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let arn = snapferry::sqs::queue_arn(&clients.sqs, &url).await?;
    clients
        .events
        .put_rule()
        .name(MONITOR_QUEUE)
        .event_bus_name(bus)
        .event_pattern(json!({"source": [snapferry::events::SOURCE]}).to_string())
        .send()
        .await
        .map_err(|e| Error::from_sdk("PutRule", e))?;
    clients
        .events
        .put_targets()
        .rule(MONITOR_QUEUE)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("monitor")
                .arn(arn)
                .build()
                .map_err(|e| Error::BadInput(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| Error::from_sdk("PutTargets", e))?;
    Ok(url)
}

/// One call to the emulator's control API at `clients`' endpoint: (status line, body).
pub async fn emulator_control(clients: &Clients, method: &str, path: &str, body: &str) -> Result<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let endpoint = clients
        .config
        .endpoint_url()
        .ok_or_else(|| Error::Config("the emulator's control API needs the emulator's endpoint".into()))?;
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let fail = |e: std::io::Error| Error::Config(format!("the emulator at {host}: {e}"));
    let mut stream = tokio::net::TcpStream::connect(&host).await.map_err(fail)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.map_err(fail)?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.map_err(fail)?;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Ok((head.lines().next().unwrap_or_default().to_string(), rest.to_string()))
}

/// Switches the emulator's AWS API throttling on for every account, with AWS's buckets
/// (RDS: 300 requests in a burst, 12 a second sustained, per account and region; EC2's), as
/// the local pipeline runs by default: a step that calls too much is refused as on AWS.
pub async fn throttle_like_aws(clients: &Clients) -> Result<()> {
    let (status, body) = emulator_control(clients, "POST", "/_snapferry/throttling", "{}").await?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(Error::Config(format!("the emulator refused to throttle: {status} {body}")));
    }
    Ok(())
}

/// The emulator's CA for its PostgreSQL endpoints (`GET /_snapferry/rds-ca`), written to a
/// file named after its content, for `DATA_CHECK_CA_BUNDLE`. The emulator makes a new CA
/// each time it starts.
pub async fn emulator_ca_bundle(clients: &Clients) -> Result<String> {
    let (head, pem) = emulator_control(clients, "GET", "/_snapferry/rds-ca", "").await?;
    if !head.starts_with("HTTP/1.1 200") || !pem.contains("BEGIN CERTIFICATE") {
        return Err(Error::Config(format!("the emulator serves no CA for its databases: {head}")));
    }
    let pem = pem.as_str();
    // Named after its content: pipelines started at once against one emulator write the same file.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(pem, &mut hasher);
    let name = format!("snapferry-emulator-rds-ca-{:016x}.pem", std::hash::Hasher::finish(&hasher));
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, pem).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(path.display().to_string())
}
