//! share-snapshot (source account): when a snapshot of a selected database is created (or
//! a snapferry copy finishes), make sure the backup accounts get it.
//!
//! Only a snapshot snapferry manages *and* on the sharing CMK is shared as it is. Anything
//! else (automated snapshots, the AWS-managed `aws/rds` key, any other key, unencrypted) is
//! first copied to a manual snapshot on the sharing CMK, whose key policy names the backup
//! accounts, and that copy is shared once available. A delayed re-check waits for every
//! copy; for DB instance copies RDS-EVENT-0197 usually comes first and the re-check only
//! backs up a lost event. Announced first, shared second, so whichever comes second stops
//! at "already shared". Never shared with `all`.
//!
//! Where `SOURCE_DATA_CHECKS` names the database, the "shared" event also carries its
//! figures at that moment (see [`source_data`]), for the restore test to compare against;
//! a database that cannot be measured is logged and counted, and shared all the same.

pub mod source_data;

use snapferry::config::Env;
use snapferry::copy::Copier;
use snapferry::error::{Error, Result};
use snapferry::events::{PipelineEvent, Recheck, RecheckWhat, SnapshotRef, SourceData, Step};
use snapferry::inbound::Incoming;
use snapferry::inbound::native::NativeSignal;
use snapferry::lineage::{CopyRecord, Lineage, Made, MadeBy, Mark};
use snapferry::select::Selection;
use snapferry::sqs::{Outcome, Record};
use snapferry::step::{PipelineStep, StepContext, StepEnv};
use snapferry::store::{CopyRequest, Snapshot, SnapshotStore, Status, first_made};
use snapferry::tags;
use snapferry::{kinds, kms, naming};
use source_data::{AwsMeter, Meter, SourceDataConfig};
use std::sync::Arc;
use tracing::{info, warn};

/// AWS's limit of accounts one snapshot can be shared with.
pub const MAX_TARGET_ACCOUNTS: usize = 20;

/// This step's name in `shared/routing.json` and `shared/environment.json`.
pub const STEP: &str = "share-snapshot";

#[derive(Debug, Clone)]
pub struct Config {
    pub step: StepEnv,
    pub target_accounts: Vec<String>,
    pub sharing_key: String,
    pub selection: Selection,
    /// The source databases measured when their snapshots are shared; `None`: none.
    pub source_data: Option<SourceDataConfig>,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config> {
        let target_accounts = env.accounts("TARGET_ACCOUNTS")?;
        if target_accounts.is_empty() || target_accounts.len() > MAX_TARGET_ACCOUNTS {
            return Err(Error::Config(format!(
                "TARGET_ACCOUNTS must name 1 to {MAX_TARGET_ACCOUNTS} accounts (AWS's sharing limit), not {}",
                target_accounts.len()
            )));
        }
        Ok(Config {
            step: StepEnv::from_env(env)?,
            target_accounts,
            sharing_key: env.required("SHARING_KMS_KEY_ARN")?,
            selection: Selection::from_env(env)?,
            source_data: match snapferry_data::Connection::from_env(env, "SOURCE_DATA_CHECKS")? {
                Some((raw, connection)) => Some(SourceDataConfig::parse(&raw, connection)?),
                None => None,
            },
        })
    }
}

pub struct Handler {
    ctx: StepContext,
    config: Config,
    /// Measures source databases; `None`: none is.
    meter: Option<Arc<dyn Meter>>,
}

impl Handler {
    pub fn new(ctx: StepContext, config: Config) -> Self {
        Handler { ctx, config, meter: None }
    }

    /// Measures the databases `SOURCE_DATA_CHECKS` names with `meter`.
    pub fn with_meter(self, meter: Arc<dyn Meter>) -> Self {
        Handler { meter: Some(meter), ..self }
    }

    /// The step as its Lambda or the local host runs it: configured from its environment,
    /// acting through the ports `ports` builds for that configuration, and reading the
    /// source databases' secrets with `aws`'s identity.
    pub fn from_env(
        env: &Env,
        ports: impl FnOnce(StepEnv) -> StepContext,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let config = Config::from_env(env)?;
        let meter = config.source_data.as_ref().map(|s| Arc::new(AwsMeter::new(aws, s.connection.clone())));
        let handler = Handler::new(ports(config.step.clone()), config);
        Ok(match meter {
            Some(meter) => handler.with_meter(meter),
            None => handler,
        })
    }

    async fn on_snapshot(&self, store: &Arc<dyn SnapshotStore>, snapshot: Snapshot, attempt: u32) -> Result<Outcome> {
        if Lineage::of(&snapshot).has(Mark::Released) {
            // A late event or re-check: the backup account has its copy, and the share was
            // withdrawn on purpose. Sharing again would undo that.
            info!(snapshot_arn = snapshot.arn, "released: the backup account has its copy; not shared again");
            return Ok(Outcome::Done);
        }
        let own_copy = is_own_copy(&snapshot);
        if !own_copy && !self.selected(store.as_ref(), &snapshot).await? {
            info!(snapshot_arn = snapshot.arn, resource = snapshot.resource_id, "not a selected database; not shared");
            return Ok(Outcome::Done);
        }
        let correlation_id = Lineage::of(&snapshot)
            .recorded_correlation_id()
            .map_or_else(|| naming::run_of_snapshot(&snapshot.arn), str::to_string);
        // The origin is the snapshot the run started from: recorded on our copies, else itself.
        let origin = if own_copy {
            Lineage::of(&snapshot).origin().unwrap_or_else(|| snapshot.to_ref())
        } else {
            snapshot.to_ref()
        };
        match &snapshot.status {
            Status::Available => {}
            Status::Failed(_) if own_copy => {
                return self.copy_again(store, &snapshot, &origin, &correlation_id, attempt).await;
            }
            Status::Failed(why) => {
                return Err(Error::Permanent {
                    op: "share",
                    code: "SnapshotFailed".into(),
                    message: format!("{} is {why}", snapshot.arn),
                    hint: None,
                });
            }
            _ => return self.recheck(store.as_ref(), &snapshot, &origin, &correlation_id, attempt),
        }
        if self.duplicate(store.as_ref(), &snapshot).await? {
            return Ok(Outcome::Done);
        }
        let shareable = Lineage::of(&snapshot).is_managed()
            && snapshot.kms_key_id.as_deref().is_some_and(|k| kms::same_key(k, &self.config.sharing_key));
        if shareable {
            return self.share(store.as_ref(), &snapshot, &origin, &correlation_id).await;
        }
        self.reencrypt(store, &snapshot, &correlation_id, attempt).await
    }

    async fn selected(&self, store: &dyn SnapshotStore, snapshot: &Snapshot) -> Result<bool> {
        if self.config.selection.matches_id(&snapshot.resource_id) {
            return Ok(true);
        }
        if !self.config.selection.needs_tags() {
            return Ok(false);
        }
        // A member of a backup set is selected through its instance.
        let resources = store.list_resources().await?;
        Ok(resources.iter().any(|r| {
            (r.id == snapshot.resource_id || r.members.contains(&snapshot.resource_id))
                && r.selected_by(&self.config.selection)
        }))
    }

    /// Whether `snapshot` is a duplicate: one of ours, of a kind AWS does not refuse a
    /// second of a name (EBS), that another handling of the same work made first (a
    /// schedule delivered twice and handled at once, two re-encryptions at once). It is
    /// deleted and the first goes on alone. Asked once it is available: every namesake
    /// started before it is listed by then, so every handling agrees on the first.
    async fn duplicate(&self, store: &dyn SnapshotStore, snapshot: &Snapshot) -> Result<bool> {
        if kinds::of(snapshot.kind).named_by_identifier || !Lineage::of(snapshot).is_managed() {
            return Ok(false);
        }
        let namesakes = store.named(&snapshot.name).await?;
        let first = first_made(namesakes.iter().filter(|s| s.resource_id == snapshot.resource_id));
        let Some(first) = first.filter(|first| first.id != snapshot.id) else {
            return Ok(false);
        };
        warn!(
            snapshot_arn = snapshot.arn,
            first = first.arn,
            name = snapshot.name,
            "a duplicate of a snapshot made first: deleted, not shared"
        );
        store.delete(snapshot).await?;
        Ok(true)
    }

    /// Copies to the sharing CMK under a deterministic id; an existing copy is reused.
    async fn reencrypt(
        &self,
        store: &Arc<dyn SnapshotStore>,
        snapshot: &Snapshot,
        correlation_id: &str,
        attempt: u32,
    ) -> Result<Outcome> {
        let origin = snapshot.to_ref();
        let ours = CopyRecord {
            made: Made {
                source_arn: snapshot.arn.clone(),
                source_account: snapshot.account.clone(),
                correlation_id: correlation_id.to_string(),
                by: MadeBy::Share,
            },
            origin: &origin,
            copied_from: None,
            started_at: self.ctx.now(),
            taken_at: None,
            set: Lineage::of(snapshot).set(),
            source_figures: None,
        }
        .tags();
        let (copy_tags, dropped) = tags::within_limit(&Lineage::of(snapshot).user_tags(), &ours);
        if !dropped.is_empty() {
            warn!(snapshot_arn = snapshot.arn, ?dropped, "tags beyond AWS's limit of 50 left off the copy");
        }
        let copy_id = naming::shared_copy_id(&snapshot.id, snapshot.created_at);
        let copied = store
            .copy(&CopyRequest {
                source: &snapshot.id,
                source_region: None,
                target_id: &copy_id,
                kms_key_id: Some(&self.config.sharing_key),
                tags: &copy_tags,
                option_group: None,
                copy_option_group: false,
            })
            .await;
        let copy = match copied {
            Err(e @ Error::QuotaFull { .. }) => {
                let rejected = Step::Rejected { reason: e.to_string(), sender_account: None };
                let event = PipelineEvent::new(correlation_id, origin.clone(), origin, rejected);
                return Err(Copier::new(&self.ctx).quota_full(STEP, event, e).await);
            }
            // Tried first, not admitted by a look at the slots: AWS's refusal answers
            // whether one is free at no extra call, where a look lists the account's
            // snapshots before every re-encryption. Refused, the wait is timed by the line.
            refused => Copier::new(&self.ctx).refused(store.as_ref(), refused).await?,
        };
        info!(snapshot_arn = snapshot.arn, copy_arn = copy.arn, correlation_id, "re-encrypting with the sharing key");
        match copy.status {
            Status::Available => self.share(store.as_ref(), &copy, &origin, correlation_id).await,
            // An announced end (RDS-EVENT-0197 for DB instance copies) brings us back.
            // Waited for by re-checks even where RDS announces the end (RDS-EVENT-0197):
            // the event only makes it sooner, and it may never come.
            _ => self.recheck(store.as_ref(), &copy, &origin, correlation_id, attempt),
        }
    }

    /// Our re-encrypting copy failed: made again from its origin (a bounded number of
    /// times), or reported with AWS's reason and dead-lettered.
    async fn copy_again(
        &self,
        store: &Arc<dyn SnapshotStore>,
        failed: &Snapshot,
        origin: &SnapshotRef,
        correlation_id: &str,
        attempt: u32,
    ) -> Result<Outcome> {
        let again = Copier::new(&self.ctx)
            .again(store.as_ref(), failed, &origin.id, None, Some(&self.config.sharing_key))
            .await;
        match again {
            Ok(copy) => self.recheck(store.as_ref(), &copy, origin, correlation_id, attempt),
            Err(e @ Error::CopyFailed { .. }) => {
                let rejected = Step::Rejected { reason: e.to_string(), sender_account: None };
                let event = PipelineEvent::new(correlation_id, failed.to_ref(), origin.clone(), rejected);
                self.ctx.publish(&[event]).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn recheck(
        &self,
        store: &dyn SnapshotStore,
        copy: &Snapshot,
        origin: &SnapshotRef,
        correlation_id: &str,
        attempt: u32,
    ) -> Result<Outcome> {
        let what = RecheckWhat::ShareWhenAvailable { copy: copy.to_ref(), origin: origin.clone() };
        Copier::new(&self.ctx).recheck(store, copy, Recheck::new(correlation_id, attempt + 1, None, what))
    }

    async fn share(
        &self,
        store: &dyn SnapshotStore,
        snapshot: &Snapshot,
        origin: &SnapshotRef,
        correlation_id: &str,
    ) -> Result<Outcome> {
        let shared_with = store.shared_with(snapshot).await?;
        if self.config.target_accounts.iter().all(|a| shared_with.contains(a)) {
            // Shared only after it was announced (below): this one is done.
            info!(snapshot_arn = snapshot.arn, correlation_id, "already shared and announced");
            return Ok(Outcome::Done);
        }
        let tags = Lineage::of(snapshot).user_tags();
        let set = Lineage::of(snapshot).set();
        let source_data = self.measure(store, origin, correlation_id).await;
        let events: Vec<_> = self
            .config
            .target_accounts
            .iter()
            .map(|account| {
                PipelineEvent::new(
                    correlation_id,
                    snapshot.to_ref(),
                    origin.clone(),
                    Step::Shared {
                        target_account: account.clone(),
                        tags: tags.clone(),
                        set: set.clone(),
                        source_data: source_data.clone(),
                    },
                )
            })
            .collect();
        // Announced first, shared second: whichever of the event or the re-check comes
        // second finds it shared and stops, and a failure in between is retried with the
        // announcement again (a duplicate the backup account handles), never lost. The
        // backup account treats a snapshot it cannot see yet as not ready and retries.
        self.ctx.publish(&events).await?;
        store.share(snapshot, &self.config.target_accounts).await?;
        info!(snapshot_arn = snapshot.arn, correlation_id, accounts = ?self.config.target_accounts, "shared");
        Ok(Outcome::Done)
    }
}

impl Handler {
    /// The figures of the database `origin` was taken of, where `SOURCE_DATA_CHECKS` names
    /// it. Measured at share time, the nearest this step comes to the snapshot's: the
    /// restore allows for the rows written in between. Never in the way of the share (the
    /// backup matters more than its comparison): a database that cannot be measured is
    /// logged with the reason and counted, and the event goes without figures.
    async fn measure(
        &self,
        store: &dyn SnapshotStore,
        origin: &SnapshotRef,
        correlation_id: &str,
    ) -> Option<Box<SourceData>> {
        let (Some(config), Some(meter)) = (&self.config.source_data, &self.meter) else { return None };
        let resource = &origin.resource_id;
        let entry = config.for_resource(resource)?;
        let measured = match store.database(resource).await {
            Ok(Some(database)) => meter.measure(&database, entry).await,
            Ok(None) => {
                info!(resource, correlation_id, "no database to measure (gone, or not a database)");
                return None;
            }
            Err(e) => Err(format!("the database could not be described: {e}")),
        };
        match measured {
            Ok(figures) => {
                info!(
                    resource,
                    correlation_id,
                    tables = figures.tables,
                    rows = figures.rows,
                    "source database measured"
                );
                Some(Box::new(SourceData {
                    tables: figures.tables,
                    rows: figures.rows,
                    table_digest: figures.digest,
                    measured_at: self.ctx.now(),
                }))
            }
            Err(why) => {
                warn!(resource, correlation_id, why, "source database not measured; shared without its figures");
                self.ctx.metrics.count(&snapferry::routing::Routing::load().metrics.source_data_unmeasured, STEP);
                None
            }
        }
    }

    /// A snapshot of ours that AWS failed to take (or a set with a failed member, which is
    /// not crash-consistent as a whole) is reported with AWS's reason and not shared; the
    /// next scheduled run takes a new one.
    async fn report_failed(
        &self,
        snapshots: &[snapferry::inbound::native::NativeSnapshot],
        reason: &str,
    ) -> Result<Outcome> {
        let mut events = Vec::new();
        for member in snapshots {
            let store = self.ctx.stores.store(member.kind);
            let Some(found) = store.describe(&member.id).await? else { continue };
            if !Lineage::of(&found).is_managed() {
                continue;
            }
            warn!(snapshot_arn = found.arn, reason, "snapshot failed; not shared");
            let correlation_id = Lineage::of(&found)
                .recorded_correlation_id()
                .map_or_else(|| naming::run_of_snapshot(&found.arn), str::to_string);
            let rejected = Step::Rejected { reason: reason.to_string(), sender_account: None };
            events.push(PipelineEvent::new(correlation_id, found.to_ref(), found.to_ref(), rejected));
        }
        self.ctx.publish(&events).await?;
        Ok(Outcome::Done)
    }
}

#[async_trait::async_trait]
impl PipelineStep for Handler {
    fn context(&self) -> &StepContext {
        &self.ctx
    }

    async fn step(&self, incoming: Incoming, record: Record) -> Result<Outcome> {
        match incoming {
            Incoming::Native(event) => match event.signal() {
                // A canceled copy (RDS-EVENT-0190) of ours is made again at once; its re-check
                // chain goes on waiting for it, and reports it if it failed for the last time.
                NativeSignal::CopyFailed { snapshot, .. } => {
                    let store = self.ctx.stores.store(snapshot.kind);
                    match store.describe(&snapshot.id).await? {
                        Some(copy) if is_own_copy(&copy) && matches!(copy.status, Status::Failed(_)) => {
                            let origin = Lineage::of(&copy).origin().unwrap_or_else(|| copy.to_ref());
                            let key = Some(self.config.sharing_key.as_str());
                            match Copier::new(&self.ctx).again(store.as_ref(), &copy, &origin.id, None, key).await {
                                Err(e) if !matches!(e, Error::CopyFailed { .. }) => Err(e),
                                _ => Ok(Outcome::Done),
                            }
                        }
                        _ => Ok(Outcome::Done),
                    }
                }
                NativeSignal::SnapshotCreated { snapshot, .. } | NativeSignal::CopyFinished { snapshot, .. } => {
                    let store = self.ctx.stores.store(snapshot.kind);
                    match store.describe(snapshot.arn.as_deref().unwrap_or(&snapshot.id)).await? {
                        Some(found) => self.on_snapshot(&store, found, record.attempt).await,
                        None => {
                            info!(snapshot = snapshot.id, "gone before it could be shared");
                            Ok(Outcome::Done)
                        }
                    }
                }
                NativeSignal::SetCreated { snapshots, failed: None } => {
                    for member in snapshots {
                        let store = self.ctx.stores.store(member.kind);
                        if let Some(found) = store.describe(&member.id).await? {
                            self.on_snapshot(&store, found, record.attempt).await?;
                        }
                    }
                    Ok(Outcome::Done)
                }
                NativeSignal::SetCreated { snapshots, failed: Some(reason) } => {
                    self.report_failed(&snapshots, &reason).await
                }
                NativeSignal::SnapshotFailed { snapshot, reason } => self.report_failed(&[snapshot], &reason).await,
                NativeSignal::Ignored { reason } => {
                    info!(event_id = event.id, reason, "ignored");
                    Ok(Outcome::Done)
                }
                other => {
                    warn!(event_id = event.id, signal = ?other, "nothing to share");
                    Ok(Outcome::Done)
                }
            },
            Incoming::Recheck(e) => match e.detail.what {
                RecheckWhat::ShareWhenAvailable { copy, .. } => {
                    let store = self.ctx.stores.store(copy.kind);
                    match store.describe(&copy.id).await? {
                        Some(found) => self.on_snapshot(&store, found, e.detail.attempt).await,
                        None => Err(Error::NotFound { op: "share", what: copy.arn }),
                    }
                }
                other => Err(Error::BadInput(format!("share-snapshot does not handle re-check {other:?}"))),
            },
            other => Err(Error::BadInput(format!("share-snapshot does not handle {}", other.describe()))),
        }
    }
}

/// A copy this step made (re-encrypted with the sharing key, or the manual copy of an
/// automated snapshot).
fn is_own_copy(snapshot: &Snapshot) -> bool {
    Lineage::of(snapshot).is(MadeBy::Share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_limits_targets_to_twenty_and_names_variables() {
        let many = (0..21).map(|i| format!("{:012}", 100_000_000_000u64 + i)).collect::<Vec<_>>().join(",");
        let base = [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("SHARING_KMS_KEY_ARN", "k")];
        let env = Env::from_pairs(STEP, base.iter().copied().chain([("TARGET_ACCOUNTS", many.as_str())])).unwrap();
        let e = Config::from_env(&env).unwrap_err().to_string();
        assert!(e.contains("TARGET_ACCOUNTS") && e.contains("20"), "{e}");
        let env =
            Env::from_pairs(STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("TARGET_ACCOUNTS", "222222222222")]).unwrap();
        assert!(Config::from_env(&env).unwrap_err().to_string().contains("SHARING_KMS_KEY_ARN"));
    }

    #[test]
    fn correlation_ids_derived_from_a_snapshot_are_stable() {
        let a = naming::run_of_snapshot("arn:aws:rds:us-east-1:111111111111:snapshot:rds:db-1");
        assert_eq!(a, naming::run_of_snapshot("arn:aws:rds:us-east-1:111111111111:snapshot:rds:db-1"));
        assert_ne!(a, naming::run_of_snapshot("arn:aws:rds:us-east-1:111111111111:snapshot:rds:db-2"));
    }
}
