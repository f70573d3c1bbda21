//! reconcile-snapshots (source account) and reconcile-copies (backup account): on their
//! schedule, find backups whose chain stalled because an event never came, and restart the
//! stalled step; raise the dead-man's switch for resources whose backups stopped; and
//! report each protected resource's recovery point.
//!
//! Repairs go to the stalled step's own queue as the message that step already acts on (a
//! re-check, or the "Snapshot Copied" the restore step reads), so the step's own
//! idempotency makes a repair that was not needed a no-op. A repaired snapshot of snapferry's
//! is tagged `snapferry:reconciled-at` and not repaired again within [`REPAIR_EVERY`]; one
//! taken outside snapferry (by hand, by RDS) is not tagged, and is restarted each run until
//! its copy exists or it is older than [`TAKEN_ELSEWHERE_LOOKBACK`].

use chrono::{DateTime, Utc};
use snapferry::ResourceKind;
use snapferry::config::Env;
use snapferry::error::{Error, Result};
use snapferry::events::{self, EventEnvelope, PipelineEvent, Recheck, RecheckWhat, SnapshotRef, Step};
use snapferry::inbound::Incoming;
use snapferry::ledger::{Pool, Truth};
use snapferry::lineage::{self, Lineage, MadeBy, Mark};
use snapferry::retention::{self, Rule};
use snapferry::routing::Routing;
use snapferry::select::Selection;
use snapferry::sqs::{Outcome, Record};
use snapferry::step::{PipelineStep, StepContext, StepEnv, recheck_body};
use snapferry::store::{Resource, Snapshot, SnapshotStore, Status};
use snapferry::sweep::{Failures, TAKEN_ELSEWHERE_LOOKBACK};
use std::collections::BTreeMap;
use tracing::{info, warn};

/// The source account's step in `shared/routing.json` and `shared/environment.json`.
pub const SOURCE_STEP: &str = "reconcile-snapshots";
/// The backup account's step.
pub const BACKUP_STEP: &str = "reconcile-copies";

/// A repair is not repeated sooner: the restarted step has long finished, or failed into
/// its DLQ with a reason, by then.
pub const REPAIR_EVERY: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, Clone)]
pub struct Config {
    pub step: StepEnv,
    /// [`SOURCE_STEP`] or [`BACKUP_STEP`].
    pub name: &'static str,
    pub kinds: Vec<ResourceKind>,
    /// Source: the resources that must have recent snapshots.
    pub selection: Selection,
    /// Source: how often create-snapshot runs.
    pub schedule: chrono::Duration,
    /// A chain stalled longer than this is repaired.
    pub grace: chrono::Duration,
    /// Backup: the recovery point objective.
    pub rpo: chrono::Duration,
    /// Backup: expire-copies' retention rules: a copy an extra region's rules would not keep
    /// is not copied back there.
    pub rules: Vec<Rule>,
    pub extra_regions: Vec<String>,
    /// Backup: whether every copy is restore-tested (so an untested copy is a stalled one),
    /// and whether the recovery point is the newest verified copy or the newest copy.
    pub restore_every_copy: bool,
    pub restore_enabled: bool,
    pub share_queue: String,
    pub copy_queue: String,
    pub restore_queue: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config> {
        let minutes = |name: &str| -> Result<chrono::Duration> {
            let m: i64 = env.parse(name)?;
            if m < 1 {
                return Err(Error::Config(format!("{name} must be 1 or more")));
            }
            Ok(chrono::Duration::minutes(m))
        };
        let mut c = Config {
            step: StepEnv::from_env(env)?,
            name: SOURCE_STEP,
            kinds: Vec::new(),
            selection: Selection::default(),
            schedule: chrono::Duration::hours(1),
            grace: minutes("GRACE_MINUTES")?,
            rpo: chrono::Duration::days(1),
            rules: Vec::new(),
            extra_regions: Vec::new(),
            restore_every_copy: true,
            restore_enabled: true,
            share_queue: String::new(),
            copy_queue: String::new(),
            restore_queue: String::new(),
        };
        match env.step() {
            SOURCE_STEP => {
                c.kinds = env.kinds("KINDS")?;
                c.selection = Selection::from_env(env)?;
                c.schedule = minutes("SCHEDULE_MINUTES")?;
                c.share_queue = env.required("SHARE_QUEUE_URL")?;
            }
            BACKUP_STEP => {
                c.name = BACKUP_STEP;
                c.kinds = env.kinds("KINDS")?;
                c.rpo = minutes("RPO_MINUTES")?;
                c.rules = retention::parse(&env.required("RETENTION")?)
                    .map_err(|e| Error::Config(format!("RETENTION: {e}")))?;
                c.extra_regions = env.list("EXTRA_REGIONS");
                c.restore_enabled = env.parse("RESTORE_ENABLED")?;
                c.restore_every_copy = c.restore_enabled && env.parse::<u32>("RESTORE_EVERY_NTH")? == 1;
                c.copy_queue = env.required("COPY_QUEUE_URL")?;
                c.restore_queue = env.required("RESTORE_QUEUE_URL")?;
            }
            other => return Err(Error::Config(format!("{other} is not a reconcile step"))),
        }
        Ok(c)
    }
}

pub struct Handler {
    ctx: StepContext,
    config: Config,
}

fn made_by(s: &Snapshot, by: MadeBy) -> bool {
    Lineage::of(s).is(by)
}

fn older_than(s: &Snapshot, now: DateTime<Utc>, age: chrono::Duration) -> bool {
    s.created_at.is_some_and(|t| now - t >= age)
}

/// A copy's source resource as the recovery point names it: `<source account>/<resource>`
/// (`@<region>` added for an extra region's copies).
fn resource_of(c: &Snapshot) -> String {
    format!(
        "{}/{}",
        Lineage::of(c).source_account().unwrap_or("?"),
        Lineage::of(c).origin_resource().unwrap_or(&c.resource_id)
    )
}

/// The newest recovery point of each resource (and region): when, and the copy.
type Points = BTreeMap<String, (DateTime<Utc>, Snapshot)>;

/// A kind whose sweep failed (a listing AWS refused, a publish that failed) does not stop
/// the others; the first such failure is the run's, so SQS brings the run again (every
/// repair is idempotent) and in the end dead-letters it with that reason.
fn go_on(kind: ResourceKind, swept: Result<()>, first: &mut Option<Error>) {
    if let Err(e) = swept {
        warn!(%kind, error = %e, "this kind could not be reconciled; the others go on");
        first.get_or_insert(e);
    }
}

/// Whether the share step has made `s`'s re-encrypted copy (among `managed`, in any state).
fn has_share_copy(managed: &[Snapshot], s: &Snapshot) -> bool {
    managed.iter().any(|c| made_by(c, MadeBy::Share) && Lineage::of(c).origin().is_some_and(|o| o.arn == s.arn))
}

/// The run a snapshot belongs to and the snapshot it started from, from its tags.
fn run_of(s: &Snapshot) -> (String, SnapshotRef) {
    let origin = Lineage::of(s).recorded_origin().unwrap_or_else(|| s.to_ref());
    (Lineage::of(s).correlation_id(), origin)
}

impl Handler {
    pub fn new(ctx: StepContext, config: Config) -> Self {
        Handler { ctx, config }
    }

    pub fn from_env(env: &Env, ports: impl FnOnce(StepEnv) -> StepContext) -> Result<Self> {
        let config = Config::from_env(env)?;
        Ok(Handler::new(ports(config.step.clone()), config))
    }

    fn repaired_recently(&self, s: &Snapshot, now: DateTime<Utc>) -> bool {
        Lineage::of(s).at(Mark::Reconciled).is_some_and(|t| now - t < REPAIR_EVERY)
    }

    /// Sends `body` to the stalled step's queue, marks `s` repaired and says so.
    async fn repair(&self, store: &dyn SnapshotStore, s: &Snapshot, queue: &str, body: String, at: &str) -> Result<()> {
        warn!(snapshot_arn = s.arn, stalled_at = at, "stalled; restarted");
        self.ctx.queue.send_to(queue, &body).await?;
        let stamp = lineage::stamp(Mark::Reconciled, self.ctx.now());
        store.tag(s, &stamp).await?;
        let (correlation_id, origin) = run_of(s);
        let repaired = Step::Repaired { stalled_at: at.to_string() };
        self.ctx.publish(&[PipelineEvent::new(correlation_id, s.to_ref(), origin, repaired)]).await
    }

    async fn announce_again(
        &self,
        store: &dyn SnapshotStore,
        s: &Snapshot,
        accounts: &[String],
        correlation_id: &str,
        origin: SnapshotRef,
    ) -> Result<()> {
        warn!(snapshot_arn = s.arn, stalled_at = "copy", "shared but never copied; announced again");
        let (tags, set) = (Lineage::of(s).user_tags(), Lineage::of(s).set());
        let shared: Vec<PipelineEvent> = accounts
            .iter()
            .map(|a| {
                let step =
                    Step::Shared { target_account: a.clone(), tags: tags.clone(), set: set.clone(), source_data: None };
                PipelineEvent::new(correlation_id, s.to_ref(), origin.clone(), step)
            })
            .collect();
        self.ctx.publish(&shared).await?;
        let stamp = lineage::stamp(Mark::Reconciled, self.ctx.now());
        store.tag(s, &stamp).await?;
        let repaired = Step::Repaired { stalled_at: "copy".to_string() };
        self.ctx.publish(&[PipelineEvent::new(correlation_id, s.to_ref(), origin, repaired)]).await
    }

    async fn overdue(&self, snapshot: SnapshotRef, last: Option<DateTime<Utc>>, limit: chrono::Duration) -> Result<()> {
        warn!(resource = snapshot.resource_id, ?last, "backup overdue");
        self.ctx.metrics.count(&Routing::load().metrics.backup_overdue, self.config.name);
        let step = Step::Overdue { last, limit_minutes: limit.num_minutes().max(0) as u64 };
        let correlation_id = format!("overdue-{}", snapshot.resource_id);
        self.ctx.publish(&[PipelineEvent::new(correlation_id, snapshot.clone(), snapshot, step)]).await
    }

    /// Source: scheduled snapshots created but never shared (the snapshot-created event was
    /// lost), or shared and never copied (the "Snapshot Shared" event was lost: the backup
    /// account returns "Snapshot Copied", which withdraws the share); snapshots of selected
    /// resources taken by hand or by RDS whose event was lost (never re-encrypted); selected
    /// resources with no recent snapshot.
    async fn reconcile_source(&self, now: DateTime<Utc>, failures: &mut Failures) -> Result<()> {
        let mut first = None;
        for kind in &self.config.kinds {
            let swept = self.reconcile_source_kind(*kind, now, failures).await;
            go_on(*kind, swept, &mut first);
        }
        first.map_or(Ok(()), Err)
    }

    /// [`Self::reconcile_source`] for the snapshots of one kind.
    async fn reconcile_source_kind(
        &self,
        kind: ResourceKind,
        now: DateTime<Utc>,
        failures: &mut Failures,
    ) -> Result<()> {
        {
            let store = self.ctx.stores.store(kind);
            let own = store.list_own().await?;
            let (all, elsewhere): (Vec<Snapshot>, Vec<Snapshot>) =
                own.into_iter().partition(|s| Lineage::of(s).is_managed());
            for s in &all {
                let stalled = s.status == Status::Available
                    && (made_by(s, MadeBy::Create) || made_by(s, MadeBy::Share))
                    && !Lineage::of(s).has(Mark::Released)
                    && older_than(s, now, self.config.grace)
                    && !self.repaired_recently(s, now);
                if !stalled {
                    continue;
                }
                // A scheduled snapshot that has a re-encrypted copy is that copy's to share.
                if made_by(s, MadeBy::Create) && has_share_copy(&all, s) {
                    continue;
                }
                let Some(shared_with) = failures.check(|| s.to_ref(), store.shared_with(s).await) else { continue };
                let (correlation_id, origin) = run_of(s);
                let repaired = if shared_with.is_empty() {
                    let what = RecheckWhat::ShareWhenAvailable { copy: s.to_ref(), origin };
                    let body = recheck_body(Recheck::new(correlation_id, 1, None, what))?;
                    self.repair(store.as_ref(), s, &self.config.share_queue, body, "share").await
                } else {
                    // Shared, and no backup account has returned "Snapshot Copied" (which
                    // withdraws the share): its "Snapshot Shared" was lost. Announced again,
                    // a copy that was merely slow is found by its name and not repeated.
                    self.announce_again(store.as_ref(), s, &shared_with, &correlation_id, origin).await
                };
                failures.check(|| s.to_ref(), repaired);
            }
            let resources = store.list_resources().await?;
            let selected: Vec<Resource> =
                resources.into_iter().filter(|r| r.selected_by(&self.config.selection)).collect();
            for s in elsewhere.iter().filter(|s| self.taken_elsewhere_and_lost(s, &all, &selected, now)) {
                failures.check(|| s.to_ref(), self.share_taken_elsewhere(s).await);
            }
            self.dead_mans_switch(store.as_ref(), &all, &selected, now).await?;
        }
        Ok(())
    }

    /// Whether `s`, a snapshot snapferry did not make, is one the share step would have
    /// backed up had its creation event come, and has not: of a selected resource, taken
    /// between the grace and [`TAKEN_ELSEWHERE_LOOKBACK`] ago (a grace longer than half the
    /// lookback counts as half), with no re-encrypted copy (`managed` holds them, in any state).
    fn taken_elsewhere_and_lost(
        &self,
        s: &Snapshot,
        managed: &[Snapshot],
        selected: &[Resource],
        now: DateTime<Utc>,
    ) -> bool {
        let grace = self.config.grace.min(TAKEN_ELSEWHERE_LOOKBACK / 2);
        s.status == Status::Available
            && older_than(s, now, grace)
            && !older_than(s, now, TAKEN_ELSEWHERE_LOOKBACK)
            && (self.config.selection.matches_id(&s.resource_id)
                || selected.iter().any(|r| r.id == s.resource_id || r.members.contains(&s.resource_id)))
            && !has_share_copy(managed, s)
    }

    /// Restarts the share step at `s`, as its creation event would have. The snapshot is
    /// not snapferry's, so it is not tagged: until its copy exists, each run says it again,
    /// and the share step finds the copy by its deterministic name.
    async fn share_taken_elsewhere(&self, s: &Snapshot) -> Result<()> {
        warn!(
            snapshot_arn = s.arn,
            resource = s.resource_id,
            "taken outside snapferry and never backed up (its event was lost); restarted"
        );
        let correlation_id = snapferry::naming::run_of_snapshot(&s.arn);
        let what = RecheckWhat::ShareWhenAvailable { copy: s.to_ref(), origin: s.to_ref() };
        let body = recheck_body(Recheck::new(correlation_id.clone(), 1, None, what))?;
        self.ctx.queue.send_to(&self.config.share_queue, &body).await?;
        let repaired = Step::Repaired { stalled_at: "share".to_string() };
        self.ctx.publish(&[PipelineEvent::new(correlation_id, s.to_ref(), s.to_ref(), repaired)]).await
    }

    /// A selected resource whose newest scheduled snapshot is older than two schedules.
    async fn dead_mans_switch(
        &self,
        store: &dyn SnapshotStore,
        all: &[Snapshot],
        resources: &[Resource],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let limit = self.config.schedule * 2;
        let sets: Vec<String> = resources.iter().flat_map(|r| r.members.clone()).collect();
        for r in resources.iter().filter(|r| !sets.contains(&r.id)) {
            let newest = all
                .iter()
                .filter(|s| made_by(s, MadeBy::Create))
                .filter(|s| s.resource_id == r.id || r.members.contains(&s.resource_id))
                .max_by_key(|s| s.created_at);
            let last = newest.and_then(|s| s.created_at);
            // Judged from the newest snapshot, or for one that has none from when the
            // resource was created: a new database is not overdue before its first schedule.
            if last.or(r.created_at).is_none_or(|t| now - t <= limit) {
                continue;
            }
            let about = newest.map(Snapshot::to_ref).unwrap_or_else(|| SnapshotRef {
                kind: r.kind,
                arn: r.arn.clone(),
                id: r.id.clone(),
                account: store.account().to_string(),
                region: store.region().to_string(),
                resource_id: r.id.clone(),
                encrypted: r.encrypted,
                kms_key_id: r.kms_key_id.clone(),
            });
            self.overdue(about, last, limit).await?;
        }
        Ok(())
    }

    /// Backup account: copies never announced, never restore-tested, or missing in an extra
    /// region; each source resource's recovery point against the RPO, in every region.
    async fn reconcile_backup(&self, now: DateTime<Utc>, failures: &mut Failures) -> Result<()> {
        let mut points: Points = BTreeMap::new();
        let mut first = None;
        for kind in &self.config.kinds {
            let swept = self.reconcile_copies_of(*kind, now, failures, &mut points).await;
            go_on(*kind, swept, &mut first);
        }
        self.report_points(now, &points).await?;
        first.map_or(Ok(()), Err)
    }

    /// [`Self::reconcile_backup`]'s repairs for the copies of one kind, and their recovery points.
    async fn reconcile_copies_of(
        &self,
        kind: ResourceKind,
        now: DateTime<Utc>,
        failures: &mut Failures,
        points: &mut Points,
    ) -> Result<()> {
        let store = self.ctx.stores.store(kind);
        let copies: Vec<Snapshot> =
            store.list_managed().await?.into_iter().filter(|s| made_by(s, MadeBy::Copy)).collect();
        {
            // A copy is a recovery point once verified (with restore tests off, once there);
            // a copy in an extra region is one when its home copy is.
            let counts = |c: &Snapshot| {
                c.status == Status::Available && (!self.config.restore_enabled || Lineage::of(c).has(Mark::Verified))
            };
            let mut point = |resource: String, c: &Snapshot| {
                if let Some(at) = c.created_at
                    && points.get(&resource).is_none_or(|(t, _)| at > *t)
                {
                    points.insert(resource, (at, c.clone()));
                }
            };
            let counted: Vec<&str> = copies.iter().filter(|c| counts(c)).map(|c| c.name.as_str()).collect();
            let mut elsewhere: BTreeMap<&str, Vec<Snapshot>> = BTreeMap::new();
            for region in &self.config.extra_regions {
                let there = self.ctx.stores.store_in(kind, region).list_managed().await?;
                for c in there.iter().filter(|c| made_by(c, MadeBy::Copy) && c.status == Status::Available) {
                    if counted.contains(&c.name.as_str()) {
                        point(format!("{}@{region}", resource_of(c)), c);
                    }
                }
                elsewhere.insert(region, there);
            }
            for c in &copies {
                if c.status != Status::Available {
                    continue;
                }
                if counts(c) {
                    point(resource_of(c), c);
                }
                if !older_than(c, now, self.config.grace) || self.repaired_recently(c, now) {
                    continue;
                }
                let (correlation_id, origin) = run_of(c);
                let home = self.ctx.region().to_string();
                if !Lineage::of(c).has(Mark::Copied) {
                    let what = RecheckWhat::CopyWhenAvailable { copy: c.to_ref(), origin, destination_region: home };
                    let body = recheck_body(Recheck::new(correlation_id, 1, None, what))?;
                    let repaired =
                        self.repair(store.as_ref(), c, &self.config.copy_queue, body, "announce the copy").await;
                    failures.check(|| c.to_ref(), repaired);
                } else if self.config.restore_every_copy && !Lineage::of(c).has(Mark::Verified) {
                    let copied =
                        PipelineEvent::new(correlation_id, c.to_ref(), origin, Step::Copied { copied_from: None });
                    let mut envelope = EventEnvelope::new(events::SOURCE, copied.detail_type(), copied);
                    envelope.account = Some(self.ctx.account().to_string());
                    envelope.region = Some(home);
                    let body = serde_json::to_string(&envelope)
                        .map_err(|e| Error::BadInput(format!("event not serialisable: {e}")))?;
                    let repaired =
                        self.repair(store.as_ref(), c, &self.config.restore_queue, body, "restore test").await;
                    failures.check(|| c.to_ref(), repaired);
                } else if let Some((region, _)) = elsewhere.iter().find(|(region, there)| {
                    // Missing there, and one the region's rules would keep: what expire-copies
                    // deleted there (shorter rules than home's) is not copied back.
                    let copies: Vec<&Snapshot> = there.iter().filter(|s| made_by(s, MadeBy::Copy)).collect();
                    !there.iter().any(|s| s.name == c.name)
                        && retention::keeps(&self.config.rules, region, c, &copies, now)
                }) {
                    let what =
                        RecheckWhat::CopyToRegion { copy: c.to_ref(), origin, destination_region: region.to_string() };
                    let body = recheck_body(Recheck::new(correlation_id, 1, None, what))?;
                    let at = format!("copy to {region}");
                    let repaired = self.repair(store.as_ref(), c, &self.config.copy_queue, body, &at).await;
                    failures.check(|| c.to_ref(), repaired);
                }
            }
            // The copy ledger, corrected from the same listings: no further call to AWS.
            let mut corrected = self.correct_ledger(kind, self.ctx.region(), &copies, now).await;
            for (region, there) in &elsewhere {
                let there: Vec<Snapshot> = there.iter().filter(|c| made_by(c, MadeBy::Copy)).cloned().collect();
                corrected = corrected.and(self.correct_ledger(kind, region, &there, now).await);
            }
            corrected
        }
    }

    /// Corrects the copy ledger's pool of `kind` in `region` from our `copies` there.
    async fn correct_ledger(
        &self,
        kind: ResourceKind,
        region: &str,
        copies: &[Snapshot],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let truth = Truth::of(copies, now, self.ctx.env.quota_wait);
        let pool = Pool::new(kind, region);
        let corrected = self.ctx.ledger.correct(&pool, &truth).await?;
        if !corrected.is_empty() {
            warn!(%pool, freed = ?corrected.freed, dropped = ?corrected.dropped, recounted = ?corrected.recounted, "copy ledger corrected from what AWS reports");
        }
        Ok(())
    }

    /// Each resource's recovery point (in every region), and the oldest, against the RPO.
    async fn report_points(&self, now: DateTime<Utc>, points: &Points) -> Result<()> {
        let names = Routing::load().metrics;
        let mut worst = 0.0f64;
        for (resource, (at, copy)) in points {
            let age = (now - *at).num_seconds().max(0) as f64;
            worst = worst.max(age);
            self.ctx.metrics.value(&names.recovery_point, self.config.name, Some(resource), age, "Seconds");
            // Restore tests are of the home copies.
            if let Some(seconds) = Lineage::of(copy).restore_seconds().filter(|_| copy.region == self.ctx.region()) {
                self.ctx.metrics.value(&names.restore_seconds, self.config.name, Some(resource), seconds, "Seconds");
            }
            if now - *at > self.config.rpo {
                let (_, origin) = run_of(copy);
                let about = SnapshotRef { resource_id: origin.resource_id.clone(), ..copy.to_ref() };
                self.overdue(about, Some(*at), self.config.rpo).await?;
            }
            info!(resource, recovery_point_seconds = age, "recovery point");
        }
        // Nothing to report without a copy: the alarm treats a missing figure as a breach.
        if !points.is_empty() {
            self.ctx.metrics.value(&names.recovery_point_max, self.config.name, None, worst, "Seconds");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl PipelineStep for Handler {
    fn context(&self) -> &StepContext {
        &self.ctx
    }

    async fn step(&self, incoming: Incoming, _record: Record) -> Result<Outcome> {
        let now = match incoming {
            Incoming::Schedule(e) => e.time.unwrap_or_else(|| self.ctx.now()),
            other => {
                return Err(Error::BadInput(format!(
                    "{} handles only its schedule, not {}",
                    self.config.name,
                    other.describe()
                )));
            }
        };
        // A snapshot whose repair fails is reported and passed over: the rest are repaired.
        let mut failures = Failures::new(self.config.name);
        let swept = if self.config.name == SOURCE_STEP {
            self.reconcile_source(now, &mut failures).await
        } else {
            self.reconcile_backup(now, &mut failures).await
        };
        failures.report(&self.ctx).await?;
        swept.map(|()| Outcome::Done)
    }
}
