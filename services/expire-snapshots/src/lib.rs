//! expire-snapshots (source account) and expire-copies (backup account): on their
//! schedule, delete the snapshots snapferry made that the retention rules no longer keep,
//! so the manual snapshot quotas never fill up and stall every backup.
//!
//! Only snapferry's own snapshots are candidates: tagged `snapferry:managed=true`, named
//! by snapferry, and made by the step this account runs (`create` in a source, `copy` in a
//! backup account); the roles' policies allow deleting nothing else. Whatever the rules
//! say, nothing is deleted that is still being created, copied, shared or restore-tested,
//! nor a locked copy, nor a resource's newest good verified copy (a copy whose data fell
//! since the one before, "Restore Suspicious", is not one until accepted), nor every snapshot of a
//! resource (unless `ALLOW_DELETE_ALL`). In the source, the intermediate re-encrypted copy
//! and the share go as soon as the backup account reports its copy ("Snapshot Copied",
//! returned to the source's bus).

use chrono::{DateTime, Utc};
use snapferry::config::Env;
use snapferry::error::{Error, Result};
use snapferry::events::{PipelineEvent, Recheck, RecheckWhat, Step};
use snapferry::inbound::Incoming;
use snapferry::lineage::{self, Lineage, MadeBy, Mark};
use snapferry::retention::{self, Rule, group_of, taken_at};
use snapferry::sqs::{Outcome, Record};
use snapferry::step::{PipelineStep, StepContext, StepEnv};
use snapferry::store::{Snapshot, SnapshotStore, Status};
use snapferry::sweep::{Failures, TAKEN_ELSEWHERE_LOOKBACK};
use snapferry::{ResourceKind, naming, tags};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The source account's step in `shared/routing.json` and `shared/environment.json`.
pub const SOURCE_STEP: &str = "expire-snapshots";
/// The backup account's step.
pub const BACKUP_STEP: &str = "expire-copies";

/// Time one invocation spends before handing the rest to a follow-up message: well within
/// the functions' 300 s timeout, with room for the last deletions and the hand-over.
const TIME_BUDGET: chrono::Duration = chrono::Duration::seconds(180);

/// How long a released intermediate copy stays: longer than any re-check of the share step
/// can still be on its way (SQS delays a message at most 900 s), so none finds it gone.
pub const RELEASE_GRACE: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone)]
pub struct Config {
    pub step: StepEnv,
    /// [`SOURCE_STEP`] or [`BACKUP_STEP`].
    pub name: &'static str,
    pub kinds: Vec<ResourceKind>,
    /// Regions besides the home region (backup account: the extra regions).
    pub extra_regions: Vec<String>,
    pub rules: Vec<Rule>,
    pub allow_delete_all: bool,
    pub dry_run: bool,
    pub max_deletes: usize,
    pub quota_warning_percent: u64,
    /// Source: the backup accounts whose "Snapshot Copied" releases what fed them.
    pub target_accounts: Vec<String>,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config> {
        let name = match env.step() {
            SOURCE_STEP => SOURCE_STEP,
            BACKUP_STEP => BACKUP_STEP,
            other => return Err(Error::Config(format!("{other} is not an expire step"))),
        };
        let kinds = env.kinds("KINDS")?;
        let rules =
            retention::parse(&env.required("RETENTION")?).map_err(|e| Error::Config(format!("RETENTION: {e}")))?;
        let max_deletes: usize = env.parse("MAX_DELETES_PER_RUN")?;
        let quota_warning_percent: u64 = env.parse("QUOTA_WARNING_PERCENT")?;
        if max_deletes == 0 || !(1..=100).contains(&quota_warning_percent) {
            return Err(Error::Config(
                "MAX_DELETES_PER_RUN must be 1 or more and QUOTA_WARNING_PERCENT 1 to 100".into(),
            ));
        }
        let (extra_regions, target_accounts) = match name {
            SOURCE_STEP => (Vec::new(), env.accounts("TARGET_ACCOUNTS")?),
            _ => (env.list("EXTRA_REGIONS"), Vec::new()),
        };
        Ok(Config {
            step: StepEnv::from_env(env)?,
            name,
            kinds,
            extra_regions,
            rules,
            allow_delete_all: env.parse("ALLOW_DELETE_ALL")?,
            dry_run: env.parse("EXPIRE_DRY_RUN")?,
            max_deletes,
            quota_warning_percent,
            target_accounts,
        })
    }

    fn backup(&self) -> bool {
        self.name == BACKUP_STEP
    }

    /// The step that made the snapshots this account's rules expire.
    fn made_by(&self) -> MadeBy {
        if self.backup() { MadeBy::Copy } else { MadeBy::Create }
    }
}

pub struct Handler {
    ctx: StepContext,
    config: Config,
}

/// What one pass over a store did.
struct Pass {
    deleted: usize,
    /// The deletion budget ran out before the store was done.
    unfinished: bool,
}

impl Handler {
    pub fn new(ctx: StepContext, config: Config) -> Self {
        Handler { ctx, config }
    }

    /// The step as its Lambda or the local host runs it.
    pub fn from_env(env: &Env, ports: impl FnOnce(StepEnv) -> StepContext) -> Result<Self> {
        let config = Config::from_env(env)?;
        Ok(Handler::new(ports(config.step.clone()), config))
    }

    /// Every (kind, region) this step expires, in a fixed order: a follow-up message
    /// names where to go on by its index.
    fn units(&self) -> Vec<(ResourceKind, String)> {
        let regions: Vec<String> =
            std::iter::once(self.ctx.region().to_string()).chain(self.config.extra_regions.iter().cloned()).collect();
        self.config.kinds.iter().flat_map(|k| regions.iter().map(move |r| (*k, r.clone()))).collect()
    }

    /// One run from unit `from`, judging ages at `now` (a scheduled run: the time
    /// EventBridge stamped on its event, as create-snapshot's slots are).
    async fn run(&self, from: usize, now: DateTime<Utc>) -> Result<Outcome> {
        let started = self.ctx.now();
        let mut budget = self.config.max_deletes;
        // A snapshot, or a whole kind and region, that fails is reported and passed over.
        let mut failures = Failures::new(self.config.name);
        let mut unlisted = None;
        for (i, (kind, region)) in self.units().into_iter().enumerate().skip(from) {
            if budget == 0 || self.ctx.now() - started > TIME_BUDGET {
                failures.report(&self.ctx).await?;
                return self.go_on_from(i).await;
            }
            let pass = match self.expire(kind, &region, budget, now, &mut failures).await {
                Ok(pass) => pass,
                Err(e) => {
                    warn!(%kind, region, error = %e, "this kind and region could not be expired; the others go on");
                    unlisted.get_or_insert(e);
                    continue;
                }
            };
            budget -= pass.deleted;
            if pass.unfinished {
                failures.report(&self.ctx).await?;
                return self.go_on_from(i).await;
            }
        }
        let warned = self.warn_quotas().await;
        failures.report(&self.ctx).await?;
        warned?;
        unlisted.map_or(Ok(Outcome::Done), Err)
    }

    async fn go_on_from(&self, unit: usize) -> Result<Outcome> {
        info!(unit, "budget used up; the rest goes on in a follow-up message");
        let what = RecheckWhat::ExpireFrom { unit: unit as u32 };
        self.ctx.follow_up(Recheck::new("expire", 1, None, what), Duration::ZERO).await?;
        Ok(Outcome::Done)
    }

    /// One pass over this account's snapshots of `kind` in `region`.
    async fn expire(
        &self,
        kind: ResourceKind,
        region: &str,
        budget: usize,
        now: DateTime<Utc>,
        failures: &mut Failures,
    ) -> Result<Pass> {
        let store = self.ctx.stores.store_in(kind, region);
        let all = store.list_managed().await?;
        let candidates: Vec<&Snapshot> = all
            .iter()
            .filter(|s| Lineage::of(s).is(self.config.made_by()))
            .filter(|s| s.name.starts_with(naming::PREFIX))
            .collect();
        let busy = self.busy(store.as_ref(), kind, region, &all).await?;
        let available: Vec<Snapshot> =
            candidates.iter().filter(|s| s.status == Status::Available).map(|s| (*s).clone()).collect();
        let locked: BTreeSet<String> = store.locked(&available).await?.into_iter().collect();

        let mut groups: BTreeMap<(String, String), Vec<&Snapshot>> = BTreeMap::new();
        for s in candidates {
            groups.entry(group_of(s)).or_default().push(s);
        }
        let mut pass = Pass { deleted: 0, unfinished: false };
        if !self.config.backup() {
            pass.deleted += self.expire_released(store.as_ref(), &all, budget, now, failures).await?;
            if pass.deleted >= budget {
                pass.unfinished = true;
                return Ok(pass);
            }
        }
        for ((_, resource), snapshots) in groups {
            let Some(rule) = retention::rule_for(&self.config.rules, &resource, region) else { continue };
            // By the data's time: a copy made late (a backlog, a replay) counts for the day
            // its snapshot was taken, not the day it was copied.
            let dated: Vec<(String, DateTime<Utc>)> =
                snapshots.iter().filter_map(|s| Some((s.id.clone(), taken_at(s)?))).collect();
            let kept = rule.kept(&dated, now);
            if kept.is_empty() && !self.config.allow_delete_all {
                warn!(resource, region, rule = ?rule.criteria(), "the rules would delete every snapshot of this resource; none deleted (ALLOW_DELETE_ALL is off)");
                continue;
            }
            // A suspicious copy (its data fell since the one before) does not count: the good
            // copy before it stays until an operator accepts the suspicious one.
            let newest_verified =
                snapshots.iter().filter(|s| Lineage::of(s).is_good()).max_by_key(|s| taken_at(s)).map(|s| s.id.clone());
            let mut doomed = Vec::new();
            for s in snapshots {
                if kept.contains_key(&s.id) {
                    continue;
                }
                let guard = if s.created_at.is_none() {
                    Some("no creation time")
                } else if s.status != Status::Available {
                    Some("still being made")
                } else if locked.contains(&s.id) {
                    Some("locked (EBS Snapshot Lock)")
                } else if newest_verified.as_deref() == Some(s.id.as_str()) {
                    Some("the newest verified copy of its resource")
                } else if busy.contains(&tags::sanitize_value(&s.arn)) || busy.contains(&s.name) {
                    Some("being copied, shared or restore-tested")
                } else if !self.config.backup() {
                    match failures.check(|| s.to_ref(), store.shared_with(s).await) {
                        None => Some("its shares could not be read"),
                        Some(with) if !with.is_empty() => {
                            Some("still shared: the backup account has not reported its copy")
                        }
                        Some(_) => None,
                    }
                } else {
                    None
                };
                if let Some(why) = guard {
                    info!(snapshot_arn = s.arn, why, "kept whatever the rules say");
                    continue;
                }
                doomed.push(s);
            }
            doomed.sort_by_key(|s| s.created_at);
            let room = budget - pass.deleted;
            if doomed.len() > room {
                doomed.truncate(room);
                pass.unfinished = true;
            }
            let why = format!("not kept by {}", rule.criteria().join(", "));
            pass.deleted += self.delete(store.as_ref(), &doomed, &why, failures).await?;
            if pass.unfinished {
                break;
            }
        }
        Ok(pass)
    }

    /// Source: intermediate copies released longer than [`RELEASE_GRACE`] ago and shared
    /// with nobody any more; one of a snapshot taken outside snapferry once it is older
    /// than [`TAKEN_ELSEWHERE_LOOKBACK`] too.
    async fn expire_released(
        &self,
        store: &dyn SnapshotStore,
        all: &[Snapshot],
        budget: usize,
        now: DateTime<Utc>,
        failures: &mut Failures,
    ) -> Result<usize> {
        let mut doomed = Vec::new();
        for s in all {
            let released = Lineage::of(s).at(Mark::Released);
            if !Lineage::of(s).is(MadeBy::Share)
                || s.status != Status::Available
                || released.is_none_or(|t| now - t < RELEASE_GRACE)
                // Made from a snapshot taken outside snapferry (not among ours), the copy is
                // what tells reconcile that snapshot was backed up: kept while it looks.
                || (Lineage::of(s).origin().is_some_and(|o| !all.iter().any(|m| m.arn == o.arn))
                    && s.created_at.is_none_or(|t| now - t < TAKEN_ELSEWHERE_LOOKBACK))
                || failures.check(|| s.to_ref(), store.shared_with(s).await).is_none_or(|with| !with.is_empty())
            {
                continue;
            }
            doomed.push(s);
            if doomed.len() == budget {
                break;
            }
        }
        self.delete(store, &doomed, "an intermediate copy: the backup account has its own", failures).await
    }

    /// What must not be deleted now, by ARN or name: snapshots being restore-tested (backup
    /// account), copied to another region under the same name (backup), or copied to the
    /// sharing key (source: the origin of a share copy not yet available, which a failed
    /// copy is made again from).
    async fn busy(
        &self,
        store: &dyn SnapshotStore,
        kind: ResourceKind,
        region: &str,
        all: &[Snapshot],
    ) -> Result<BTreeSet<String>> {
        let mut busy = BTreeSet::new();
        if !self.config.backup() {
            for s in all.iter().filter(|s| Lineage::of(s).is(MadeBy::Share)) {
                if s.status != Status::Available
                    && let Some(origin) = Lineage::of(s).origin()
                {
                    busy.insert(tags::sanitize_value(&origin.arn));
                }
            }
            return Ok(busy);
        }
        for test in store.list_restore_tests().await? {
            busy.extend(Lineage::of_resource(&test).source_arn().map(str::to_string));
        }
        if region == self.ctx.region() {
            for extra in &self.config.extra_regions {
                let there = self.ctx.stores.store_in(kind, extra).list_managed().await?;
                busy.extend(there.into_iter().filter(|s| s.status != Status::Available).map(|s| s.name));
            }
        }
        Ok(busy)
    }

    /// A deleted copy of the backup account leaves its source's count of copies held in the
    /// copy ledger. A failure to count it out is only logged: the hourly correction counts
    /// from AWS, and a deletion is never undone for it.
    async fn count_out(&self, s: &Snapshot) {
        if self.config.name != BACKUP_STEP || !Lineage::of(s).is(MadeBy::Copy) {
            return;
        }
        let Some(source) = Lineage::of(s).source_account() else { return };
        let pool = snapferry::ledger::Pool::new(s.kind, &s.region);
        if let Err(e) = self.ctx.ledger.held_less(&pool, source).await {
            warn!(snapshot_arn = s.arn, error = %e, "copy ledger not told of the deletion; the hourly correction will be");
        }
    }

    /// Announces, then deletes (a failure in between repeats the announcement on the next
    /// run, never loses a deletion's record). A dry run only announces.
    async fn delete(
        &self,
        store: &dyn SnapshotStore,
        doomed: &[&Snapshot],
        why: &str,
        failures: &mut Failures,
    ) -> Result<usize> {
        if doomed.is_empty() {
            return Ok(0);
        }
        let events: Vec<PipelineEvent> = doomed
            .iter()
            .map(|s| {
                // A copy's lineage names its origin; a scheduled snapshot is its own origin.
                let origin = Lineage::of(s).recorded_origin().unwrap_or_else(|| s.to_ref());
                let correlation_id = Lineage::of(s).correlation_id();
                let step = Step::Expired { rule: why.to_string(), dry_run: self.config.dry_run };
                PipelineEvent::new(correlation_id, s.to_ref(), origin, step)
            })
            .collect();
        self.ctx.publish(&events).await?;
        for s in doomed {
            if self.config.dry_run {
                info!(snapshot_arn = s.arn, why, "would expire (dry run)");
                continue;
            }
            if failures.check(|| s.to_ref(), store.delete(s).await).is_some() {
                info!(snapshot_arn = s.arn, why, "expired");
                self.count_out(s).await;
            }
        }
        Ok(doomed.len())
    }

    /// A warning event and metric for each manual snapshot quota past the threshold.
    async fn warn_quotas(&self) -> Result<()> {
        let metric = snapferry::routing::Routing::load().metrics.quota_warning;
        for kind in &self.config.kinds {
            let store = self.ctx.stores.store(*kind);
            let Some(usage) = store.quota_usage().await? else { continue };
            if usage.used * 100 < usage.max.saturating_mul(self.config.quota_warning_percent) {
                continue;
            }
            warn!(quota = usage.name, used = usage.used, max = usage.max, "snapshot quota nearly full");
            self.ctx.metrics.count(&metric, self.config.name);
            // About snapferry's newest snapshot there: what the warning is for.
            let newest = store.list_managed().await?.into_iter().max_by_key(|s| s.created_at);
            if let Some(s) = newest {
                let step = Step::QuotaWarning { quota: usage.name.to_string(), used: usage.used, max: usage.max };
                let event = PipelineEvent::new(Lineage::of(&s).correlation_id(), s.to_ref(), s.to_ref(), step);
                self.ctx.publish(&[event]).await?;
            }
        }
        Ok(())
    }

    /// Source: the backup account `sender` reports its copy of a snapshot of ours. The share
    /// of the snapshot it names as copied from, and of that one only, is withdrawn, when
    /// AWS describes it here as snapferry's and shared with `sender`; it is marked released
    /// (and, an intermediate copy, goes after [`RELEASE_GRACE`]). The event's origin is not
    /// used: whatever it names, nothing but the snapshot copied stops being shared.
    async fn release(&self, sender: Option<&str>, event: &PipelineEvent) -> Result<Outcome> {
        let Some(sender) = sender.filter(|s| self.config.target_accounts.iter().any(|t| t == s)) else {
            warn!(
                sender,
                copy_arn = event.snapshot.arn,
                "a copy reported by an account not in TARGET_ACCOUNTS; ignored"
            );
            return Ok(Outcome::Done);
        };
        let Step::Copied { copied_from: Some(copied_from) } = &event.step else {
            // A copy in an extra region, made from the home copy: nothing of ours to release.
            return Ok(Outcome::Done);
        };
        let Some(arn) = snapferry::arn::Arn::parse(copied_from).filter(|a| a.account == self.ctx.account()) else {
            return Ok(Outcome::Done);
        };
        let store: Arc<dyn SnapshotStore> = self.ctx.stores.store_in(event.snapshot.kind, arn.region);
        let Some(s) = store.describe(copied_from).await? else {
            info!(snapshot_arn = copied_from, "reported copied, but no longer here");
            return Ok(Outcome::Done);
        };
        let ours = Lineage::of(&s).is(MadeBy::Share) || Lineage::of(&s).is(MadeBy::Create);
        if !ours || s.account != self.ctx.account() {
            warn!(
                snapshot_arn = s.arn,
                account = sender,
                "reported copied, but not a snapshot snapferry made here; left as it is"
            );
            return Ok(Outcome::Done);
        }
        if self.config.dry_run || !store.shared_with(&s).await?.iter().any(|a| a == sender) {
            return Ok(Outcome::Done);
        }
        // Marked first: a late event or re-check of the share step then leaves it alone
        // instead of sharing it again.
        if !Lineage::of(&s).has(Mark::Released) {
            let stamp = lineage::stamp(Mark::Released, self.ctx.now());
            store.tag(&s, &stamp).await?;
        }
        store.unshare(&s, &[sender.to_string()]).await?;
        info!(snapshot_arn = s.arn, account = sender, "share withdrawn: the backup account has its copy");
        // The scheduled snapshot an intermediate copy was made from is backed up too: marked
        // so, reconcile does not take it for one whose share was lost once the copy is gone.
        if let Some(origin) = Lineage::of(&s).origin().filter(|_| Lineage::of(&s).is(MadeBy::Share))
            && let Some(scheduled) = store.describe(&origin.arn).await?
            && Lineage::of(&scheduled).is(MadeBy::Create)
            && scheduled.account == self.ctx.account()
            && !Lineage::of(&scheduled).has(Mark::Released)
        {
            store.tag(&scheduled, &lineage::stamp(Mark::Released, self.ctx.now())).await?;
        }
        Ok(Outcome::Done)
    }
}

#[async_trait::async_trait]
impl PipelineStep for Handler {
    fn context(&self) -> &StepContext {
        &self.ctx
    }

    async fn step(&self, incoming: Incoming, _record: Record) -> Result<Outcome> {
        match incoming {
            Incoming::Schedule(e) => self.run(0, e.time.unwrap_or_else(|| self.ctx.now())).await,
            Incoming::Recheck(e) => match e.detail.what {
                RecheckWhat::ExpireFrom { unit } => self.run(unit as usize, self.ctx.now()).await,
                other => Err(Error::BadInput(format!("{} does not handle re-check {other:?}", self.config.name))),
            },
            Incoming::Pipeline(e) if !self.config.backup() => match &e.detail.step {
                Step::Copied { .. } => self.release(e.account.as_deref(), &e.detail).await,
                _ => Ok(Outcome::Done),
            },
            other => Err(Error::BadInput(format!("{} does not handle {}", self.config.name, other.describe()))),
        }
    }
}
