//! create-snapshot (source account): on the schedule, or on a "Backup Requested" event,
//! takes a manual snapshot of every selected database or volume that has none younger than
//! the minimum interval, and of every selected EC2 instance one crash-consistent set of all
//! its volumes. Identifiers derive from the resource and the scheduled minute, so a
//! duplicate or late event makes no second snapshot.

use chrono::{DateTime, Utc};
use snapferry::config::Env;
use snapferry::error::{Error, Result, Retry};
use snapferry::events::{PipelineEvent, SnapshotRef, Step, new_correlation_id};
use snapferry::inbound::Incoming;
use snapferry::lineage::{self, Made, MadeBy};
use snapferry::select::Selection;
use snapferry::sqs::{Outcome, Record};
use snapferry::step::{PipelineStep, StepContext, StepEnv};
use snapferry::store::{Resource, SnapshotStore};
use snapferry::sweep::Failures;
use snapferry::tags;
use snapferry::{ResourceKind, naming};
use tracing::{info, warn};

/// This step's name in `shared/routing.json` and `shared/environment.json`.
pub const STEP: &str = "create-snapshot";

#[derive(Debug, Clone)]
pub struct Config {
    pub step: StepEnv,
    pub kinds: Vec<ResourceKind>,
    pub selection: Selection,
    pub min_interval: chrono::Duration,
    /// snapferry's own budget of manual snapshots per kind and region; AWS's default quota is 100.
    pub manual_snapshot_quota: usize,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config> {
        let kinds = env.kinds("KINDS")?;
        if kinds.is_empty() {
            return Err(Error::Config("KINDS must name at least one resource kind".into()));
        }
        Ok(Config {
            step: StepEnv::from_env(env)?,
            kinds,
            selection: Selection::from_env(env)?,
            min_interval: chrono::Duration::minutes(env.parse("MIN_INTERVAL_MINUTES")?),
            manual_snapshot_quota: env.parse("MANUAL_SNAPSHOT_QUOTA")?,
        })
    }
}

pub struct Handler {
    ctx: StepContext,
    config: Config,
}

/// What to back up: everything selected on the schedule, or the named resources on demand.
struct Request {
    slot: DateTime<Utc>,
    kind: Option<ResourceKind>,
    /// `Some` for an on-demand request naming resources: exactly these.
    identifiers: Option<Vec<String>>,
    /// Asked for now: the minimum interval does not apply.
    on_demand: bool,
    correlation_id: Option<String>,
}

impl Handler {
    pub fn new(ctx: StepContext, config: Config) -> Self {
        Handler { ctx, config }
    }

    /// The step as its Lambda or the local host runs it: configured from its environment,
    /// acting through the ports `ports` builds for that configuration.
    pub fn from_env(env: &Env, ports: impl FnOnce(StepEnv) -> StepContext) -> Result<Self> {
        let config = Config::from_env(env)?;
        Ok(Handler::new(ports(config.step.clone()), config))
    }

    /// Snapshots every resource `request` chooses in `store`; one that fails is recorded in
    /// `failures` and the rest go on.
    async fn back_up(
        &self,
        store: &std::sync::Arc<dyn SnapshotStore>,
        request: &Request,
        failures: &mut Failures,
    ) -> Result<()> {
        let chosen: Vec<Resource> = store
            .list_resources()
            .await?
            .into_iter()
            .filter(|r| match &request.identifiers {
                Some(ids) => ids.contains(&r.id),
                None => r.selected_by(&self.config.selection),
            })
            .collect();
        // A volume in a chosen set is snapshotted with its set, not twice.
        let in_sets: Vec<String> = chosen.iter().flat_map(|r| r.members.clone()).collect();
        let chosen: Vec<Resource> = chosen.into_iter().filter(|r| !in_sets.contains(&r.id)).collect();
        if chosen.is_empty() {
            return Ok(());
        }
        let managed = store.list_managed().await?;
        let mut held = managed.len();
        let mut refused = Vec::new();
        for resource in chosen {
            let newest = managed
                .iter()
                .filter(|s| s.resource_id == resource.id || resource.members.contains(&s.resource_id))
                .filter_map(|s| s.created_at)
                .max();
            if !request.on_demand
                && let Some(newest) = newest
                && request.slot - newest < self.config.min_interval
            {
                info!(resource = resource.id, %newest, "skipped: a snapferry snapshot younger than the minimum interval exists");
                continue;
            }
            let id = naming::create_snapshot_id(&resource.id, request.slot);
            if managed.iter().any(|s| s.name == id) {
                continue;
            }
            if held >= self.config.manual_snapshot_quota {
                refused.push((
                    resource,
                    id,
                    "the manual snapshot quota would be exceeded: delete old snapferry snapshots or raise MANUAL_SNAPSHOT_QUOTA"
                        .to_string(),
                ));
                continue;
            }
            let correlation_id = request.correlation_id.clone().unwrap_or_else(new_correlation_id);
            let lineage = Made {
                source_arn: resource.arn.clone(),
                source_account: store.account().to_string(),
                correlation_id: correlation_id.clone(),
                by: MadeBy::Create,
            };
            // Passing tags makes AWS skip CopyTagsToSnapshot, so the database's own tags
            // (less `aws:` and `snapferry:` ones) are passed along with snapferry's.
            let mut ours = lineage.tags();
            if !resource.members.is_empty() {
                let size = resource.members.len() as u32;
                ours.extend(lineage::in_set(&snapferry::events::BackupSet { id: id.clone(), size, verified: None }));
            }
            let (snapshot_tags, dropped) = tags::within_limit(&tags::user_tags(&resource.tags), &ours);
            if !dropped.is_empty() {
                warn!(resource = resource.id, ?dropped, "tags beyond AWS's limit of 50 left off the snapshot");
            }
            match store.create_set(&resource, &id, &snapshot_tags).await {
                Ok(set) => {
                    held += set.len();
                    for s in set {
                        info!(snapshot_arn = s.arn, correlation_id, resource = resource.id, "snapshot started");
                    }
                }
                // AWS's own quota (other tools' snapshots count too): refuse this one, go on;
                // the next schedule tries again. A full count is also counted for the alarm.
                Err(e) if e.retry() == Some(Retry::QuotaExceeded) || matches!(e, Error::QuotaFull { .. }) => {
                    if matches!(e, Error::QuotaFull { .. }) {
                        snapferry::copy::count_quota_full(&self.ctx, STEP);
                    }
                    refused.push((resource, id, e.to_string()))
                }
                Err(e) => failures.record(would_be_snapshot(store.as_ref(), &resource, &id), e),
            }
        }
        if !refused.is_empty() {
            let events: Vec<_> = refused
                .into_iter()
                .map(|(resource, id, reason)| {
                    warn!(resource = resource.id, snapshot_id = id, reason, "snapshot refused");
                    let would_be = would_be_snapshot(store.as_ref(), &resource, &id);
                    PipelineEvent::new(
                        new_correlation_id(),
                        would_be.clone(),
                        would_be,
                        Step::Rejected { reason, sender_account: None },
                    )
                })
                .collect();
            self.ctx.publish(&events).await?;
        }
        Ok(())
    }
}

/// The snapshot a refused request would have made, so the rejection event names it.
fn would_be_snapshot(store: &dyn SnapshotStore, resource: &Resource, id: &str) -> SnapshotRef {
    SnapshotRef {
        kind: resource.kind,
        arn: store.snapshot_arn(id),
        id: id.to_string(),
        account: store.account().to_string(),
        region: store.region().to_string(),
        resource_id: resource.id.clone(),
        encrypted: resource.encrypted,
        kms_key_id: resource.kms_key_id.clone(),
    }
}

#[async_trait::async_trait]
impl PipelineStep for Handler {
    fn context(&self) -> &StepContext {
        &self.ctx
    }

    async fn step(&self, incoming: Incoming, _record: Record) -> Result<Outcome> {
        let request = match incoming {
            Incoming::Schedule(e) => Request {
                slot: e.time.unwrap_or_else(|| self.ctx.now()),
                kind: None,
                identifiers: None,
                on_demand: false,
                correlation_id: None,
            },
            Incoming::BackupRequested(e) => Request {
                slot: e.time.unwrap_or_else(|| self.ctx.now()),
                kind: e.detail.kind,
                // No identifiers: every selected resource, as the contract says.
                identifiers: Some(e.detail.identifiers).filter(|ids| !ids.is_empty()),
                on_demand: true,
                correlation_id: e.detail.correlation_id,
            },
            other => return Err(Error::BadInput(format!("create-snapshot does not handle {}", other.describe()))),
        };
        // One kind's store failing (its listing refused) does not stop the others either.
        let mut failures = Failures::new(STEP);
        let mut unlisted = None;
        for kind in &self.config.kinds {
            if request.kind.is_none_or(|k| k == *kind)
                && let Err(e) = self.back_up(&self.ctx.stores.store(*kind), &request, &mut failures).await
            {
                unlisted.get_or_insert(e);
            }
        }
        failures.report(&self.ctx).await?;
        unlisted.map_or(Ok(Outcome::Done), Err)
    }
}
