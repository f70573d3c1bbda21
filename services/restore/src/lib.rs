//! restore (backup account): proves a copy restores. On "copied" it restores the copy into
//! an isolated network (small class, not publicly accessible, tagged as a test resource),
//! comes back by delayed re-checks until the restore is available, verifies it (encrypted
//! with this account's key, same engine and version as the source), tags the copy as
//! verified, reports the measured time to restore, and deletes the test resources. On
//! failure it reports why, keeps the copy and deletes what it created. Where the kind has
//! a snapshot lock (EBS) and one is configured, a verified copy is locked against deletion.
//! With data checks configured, a PostgreSQL or MySQL restore is also logged in to and its
//! data checked (see [`data`]), against its source's figures where the copy carries them,
//! before it counts as verified. A verified copy whose data fell against the previous good
//! copy of its resource (a table gone, most rows gone, older data: ransomware or a bad
//! migration, which restores fine) is reported suspicious, and retention keeps the good one.

pub mod data;

use chrono::Utc;
use snapferry::config::Env;
use snapferry::error::{Error, Result};
use snapferry::events::{BackupSet, DataChecked, FailedCheck, PipelineEvent, Recheck, RecheckWhat, SnapshotRef, Step};
use snapferry::inbound::Incoming;
use snapferry::lineage::{self, Lineage, MadeBy, Mark};
use snapferry::sqs::{Outcome, Record};
use snapferry::step::{PipelineStep, StepContext, StepEnv};
use snapferry::store::{LockMode, RestoreSpec, Restored, Snapshot, SnapshotStore, Status};
use snapferry::tags::RestoredFigures;
use snapferry::{kms, naming, retention};
use tracing::{info, warn};

/// This step's name in `shared/routing.json` and `shared/environment.json`.
pub const STEP: &str = "restore";

#[derive(Debug, Clone)]
pub struct Config {
    pub step: StepEnv,
    pub enabled: bool,
    /// Restore every Nth copy of each database (1: every copy).
    pub every_nth: usize,
    pub subnet_group: Option<String>,
    pub security_group_ids: Vec<String>,
    /// The class of test restores; the store's smallest for the engine when `None`.
    pub instance_class: Option<String>,
    pub target_key: String,
    /// Give up on a restore that is not available after this long.
    pub timeout: chrono::Duration,
    /// EBS: the availability zone of test volumes (the home region's `a` zone when `None`).
    pub availability_zone: Option<String>,
    /// Lock verified copies (where the kind can be locked), and for how many days.
    pub lock: Option<(LockMode, u32)>,
    /// Data checks of PostgreSQL and MySQL-family restores (`DATA_CHECKS`); `None`: not run.
    pub data_checks: Option<DataCheckConfig>,
}

#[derive(Debug, Clone)]
pub struct DataCheckConfig {
    pub checks: data::DataChecks,
    /// The connection's and each statement's time limit, and whom TLS trusts.
    pub connection: data::Connection,
}

impl DataCheckConfig {
    fn from_env(env: &Env) -> Result<Option<DataCheckConfig>> {
        let Some((raw, connection)) = data::Connection::from_env(env, "DATA_CHECKS")? else { return Ok(None) };
        Ok(Some(DataCheckConfig { checks: data::DataChecks::parse(&raw)?, connection }))
    }
}

/// How long one look waits for a master password it has just set to be accepted (RDS
/// applies it asynchronously); the next look sets a new one.
const LOGIN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const LOGIN_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What the data checks of a restore found.
enum Data {
    /// Not configured, or not an engine data checks run on (PostgreSQL, MySQL, MariaDB).
    Skipped,
    Passed(DataChecked),
    Failed(String, FailedCheck),
    /// The database could not be reached or logged in to yet.
    NotReached(String),
}

/// EBS Snapshot Lock durations: 1 day to 36500 days (EC2 API Reference, LockSnapshot).
const LOCK_DAYS: std::ops::RangeInclusive<u32> = 1..=36_500;

fn lock_from_env(env: &Env) -> Result<Option<(LockMode, u32)>> {
    let days: u32 = env.parse("LOCK_DAYS")?;
    if !LOCK_DAYS.contains(&days) {
        return Err(Error::Config(format!("LOCK_DAYS must be 1 to 36500 (AWS's range), not {days}")));
    }
    let opt_in: bool = env.parse("LOCK_COMPLIANCE_OPT_IN")?;
    let mode = match env.optional("LOCK_MODE").as_deref() {
        None => return Ok(None),
        Some("governance") => LockMode::Governance,
        Some("compliance") if opt_in => LockMode::Compliance,
        Some("compliance") => {
            return Err(Error::Config(
                "LOCK_MODE=compliance needs LOCK_COMPLIANCE_OPT_IN=true: nobody, the root user included, can remove or shorten a compliance lock once its cool-off has passed".into(),
            ));
        }
        Some(other) => return Err(Error::Config(format!("LOCK_MODE must be governance or compliance, not {other:?}"))),
    };
    Ok(Some((mode, days)))
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config> {
        let every_nth = env.parse("RESTORE_EVERY_NTH")?;
        if every_nth == 0 {
            return Err(Error::Config("RESTORE_EVERY_NTH must be 1 or more".into()));
        }
        Ok(Config {
            step: StepEnv::from_env(env)?,
            enabled: env.parse("RESTORE_ENABLED")?,
            every_nth,
            subnet_group: env.optional("RESTORE_SUBNET_GROUP"),
            security_group_ids: env.list("RESTORE_SECURITY_GROUP_IDS"),
            instance_class: env.optional("RESTORE_INSTANCE_CLASS"),
            target_key: env.required("TARGET_KMS_KEY_ARN")?,
            timeout: chrono::Duration::minutes(env.parse("RESTORE_TIMEOUT_MINUTES")?),
            availability_zone: env.optional("RESTORE_AVAILABILITY_ZONE"),
            lock: lock_from_env(env)?,
            data_checks: DataCheckConfig::from_env(env)?,
        })
    }
}

pub struct Handler {
    ctx: StepContext,
    config: Config,
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

    async fn on_copied(&self, event: &PipelineEvent) -> Result<Outcome> {
        let copy_ref = &event.snapshot;
        // Restore tests run where the function runs; extra-region copies are copies of a tested one.
        if !self.config.enabled || copy_ref.region != self.ctx.region() || copy_ref.account != self.ctx.account() {
            return Ok(Outcome::Done);
        }
        let store = self.ctx.stores.store(copy_ref.kind);
        let Some(copy) = store.describe(&copy_ref.id).await? else {
            warn!(copy_arn = copy_ref.arn, "copy gone before its restore test");
            return Ok(Outcome::Done);
        };
        if Lineage::of(&copy).has(Mark::Verified) {
            return Ok(Outcome::Done);
        }
        if !self.sampled(store.as_ref(), &copy).await? {
            info!(copy_arn = copy.arn, every_nth = self.config.every_nth, "not sampled for a restore test");
            return Ok(Outcome::Done);
        }
        let restore_id = naming::restore_id(&copy.id);
        // The sweep deletes test restores older than the restore timeout by their created-at.
        let test_tags = lineage::restore_test(&event.correlation_id, &copy.arn, self.ctx.now());
        let spec = RestoreSpec {
            restore_id: restore_id.clone(),
            subnet_group: self.config.subnet_group.clone(),
            security_group_ids: self.config.security_group_ids.clone(),
            instance_class: self.config.instance_class.clone(),
            availability_zone: self.config.availability_zone.clone(),
            tags: test_tags,
        };
        match store.restore(&copy, &spec).await {
            Ok(true) => {}
            // Started by another invocation (the same "Snapshot Copied" delivered twice, or
            // a repair): that one follows it to its end, so it is tested and reported once.
            Ok(false) => {
                info!(
                    copy_arn = copy.arn,
                    restore_id, "restore test under way already; left to the one that started it"
                );
                return Ok(Outcome::Done);
            }
            Err(e) => {
                // A permanent refusal can come after part of the restore exists (an Aurora
                // cluster whose instance is refused): delete it, report, and keep the reason.
                let failed = Progress {
                    copy: copy.to_ref(),
                    origin: event.origin.clone(),
                    restore_id,
                    started_at: self.ctx.now(),
                };
                return self.abandon(store.as_ref(), &event.correlation_id, &failed, e).await;
            }
        }
        info!(copy_arn = copy.arn, restore_id, correlation_id = event.correlation_id, "restore test started");
        let what = RecheckWhat::RestoreProgress {
            copy: copy.to_ref(),
            origin: event.origin.clone(),
            restored_resource_id: restore_id,
            started_at: self.ctx.now(),
        };
        self.ctx.recheck(Recheck::new(&event.correlation_id, 1, None, what))
    }

    /// Every Nth copy of the same database (of the same source account: two sources' databases
    /// of one name are two databases): a copy is tested when it is the Nth since the
    /// newest one whose test started (or none has), counted over the copies that exist now.
    /// Counting from the last test, not from the oldest copy, keeps the rate when retention
    /// deletes old copies (a position among the survivors would stay the same for ever).
    /// The sampled copy is tagged, so the count survives a failed test too.
    async fn sampled(&self, store: &dyn SnapshotStore, copy: &Snapshot) -> Result<bool> {
        if self.config.every_nth == 1 {
            return Ok(true);
        }
        let origin_resource = Lineage::of(copy).origin_resource();
        let source_account = Lineage::of(copy).source_account();
        let mut siblings: Vec<_> = store
            .list_managed()
            .await?
            .into_iter()
            .filter(|s| {
                Lineage::of(s).is(MadeBy::Copy)
                    && Lineage::of(s).origin_resource() == origin_resource
                    && Lineage::of(s).source_account() == source_account
                    && s.id != copy.id
                    && s.created_at <= copy.created_at
            })
            .collect();
        siblings.sort_by_key(|s| s.created_at);
        let tested = |s: &Snapshot| Lineage::of(s).has(Mark::RestoreTested) || Lineage::of(s).has(Mark::Verified);
        let since_last_test = match siblings.iter().rposition(tested) {
            Some(last) => siblings.len() - last,
            None => return self.mark_tested(store, copy).await,
        };
        if since_last_test < self.config.every_nth {
            return Ok(false);
        }
        self.mark_tested(store, copy).await
    }

    async fn mark_tested(&self, store: &dyn SnapshotStore, copy: &Snapshot) -> Result<bool> {
        let stamp = lineage::stamp(Mark::RestoreTested, self.ctx.now());
        store.tag(copy, &stamp).await?;
        Ok(true)
    }

    /// Ends a restore test that failed with `error`: a retryable error is retried as it is;
    /// a permanent one deletes what the test created and reports `Restore Failed`, then
    /// goes to the DLQ with its reason, so no test database is left running.
    async fn abandon(
        &self,
        store: &dyn SnapshotStore,
        correlation_id: &str,
        p: &Progress,
        error: Error,
    ) -> Result<Outcome> {
        if error.is_retryable() {
            return Err(error);
        }
        warn!(copy_arn = p.copy.arn, correlation_id, error = %error, "restore test abandoned; deleting what it created");
        store.delete_restore(&p.restore_id).await?;
        let failed = Step::RestoreFailed { reason: error.to_string(), check: None };
        self.ctx.publish(&[PipelineEvent::new(correlation_id, p.copy.clone(), p.origin.clone(), failed)]).await?;
        Err(error)
    }

    async fn on_progress(&self, correlation_id: &str, p: Progress, attempt: u32) -> Result<Outcome> {
        let store = self.ctx.stores.store(p.copy.kind);
        match self.progress(store.as_ref(), correlation_id, &p, attempt).await {
            Err(e) => self.abandon(store.as_ref(), correlation_id, &p, e).await,
            ok => ok,
        }
    }

    async fn progress(
        &self,
        store: &dyn SnapshotStore,
        correlation_id: &str,
        p: &Progress,
        attempt: u32,
    ) -> Result<Outcome> {
        let restored = store.restore_status(&p.restore_id).await?;
        let verdict = match restored {
            None => match store.describe(&p.copy.id).await? {
                Some(c) if Lineage::of(&c).has(Mark::Verified) => return Ok(Outcome::Done),
                Some(c) if failure_reported(&c, p.started_at) => {
                    info!(copy_arn = p.copy.arn, correlation_id, "this restore test's failure was reported already");
                    return Ok(Outcome::Done);
                }
                _ => Err("the restored resource disappeared".to_string()),
            },
            Some(r) if r.status == Status::Available => self.verify(store, &p.copy, &r).await?,
            Some(Restored { status: Status::Failed(why), .. }) => Err(format!("the restore failed: {why}")),
            Some(_) if self.ctx.now() - p.started_at > self.config.timeout => {
                Err(format!("not available after {} minutes", self.config.timeout.num_minutes()))
            }
            Some(_) => {
                let what = RecheckWhat::RestoreProgress {
                    copy: p.copy.clone(),
                    origin: p.origin.clone(),
                    restored_resource_id: p.restore_id.clone(),
                    started_at: p.started_at,
                };
                return self.ctx.recheck(Recheck::new(correlation_id, attempt + 1, None, what));
            }
        };
        let (restored, copy) = match verdict {
            Ok(found) => found,
            Err(reason) => return self.fail(store, correlation_id, p, reason, None).await,
        };
        let data = match self.check_data(store, &restored, &copy).await? {
            Data::Skipped => None,
            Data::Passed(found) => Some(found),
            Data::Failed(reason, check) => return self.fail(store, correlation_id, p, reason, Some(check)).await,
            Data::NotReached(why) if self.ctx.now() - p.started_at > self.config.timeout => {
                let check = FailedCheck {
                    name: "connect".into(),
                    expected: "the restored database answers over TLS and accepts the password set for the test".into(),
                    actual: why.clone(),
                };
                let reason = format!(
                    "the restored database could not be logged in to within {} minutes: {why}",
                    self.config.timeout.num_minutes()
                );
                return self.fail(store, correlation_id, p, reason, Some(check)).await;
            }
            Data::NotReached(why) => {
                info!(copy_arn = p.copy.arn, correlation_id, why, "restored database not reachable yet; looking again");
                let what = RecheckWhat::RestoreProgress {
                    copy: p.copy.clone(),
                    origin: p.origin.clone(),
                    restored_resource_id: p.restore_id.clone(),
                    started_at: p.started_at,
                };
                return self.ctx.recheck(Recheck::new(correlation_id, attempt + 1, None, what));
            }
        };
        let seconds = (self.ctx.now() - p.started_at).num_milliseconds() as f64 / 1000.0;
        info!(copy_arn = p.copy.arn, correlation_id, restore_seconds = seconds, "restore verified");
        if let Some(point) = data.as_ref().and_then(|d| d.recovery_point_seconds) {
            let resource = format!("{}/{}", p.origin.account, p.origin.resource_id);
            let metric = snapferry::routing::Routing::load().metrics.data_recovery_point;
            self.ctx.metrics.value(&metric, STEP, Some(&resource), point, "Seconds");
        }
        let figures =
            data.as_ref().map(|d| RestoredFigures { tables: d.tables, rows: d.rows, newest_data_at: d.newest_data_at });
        let suspicious = match &figures {
            Some(f) => self.suspicion(store, &copy, f).await?,
            None => None,
        };
        let (locked_until, lock_error) = self.lock(store, &copy).await?;
        // Recorded before it is published, so members of a set finishing together
        // each count the others; the test restore, deleted last, lets a redelivery
        // publish a verdict that was lost.
        let set = self.record_verified(store, &copy, seconds, data.as_ref(), figures, suspicious.is_some()).await?;
        let event = Step::RestoreVerified {
            restore_seconds: seconds,
            restored_resource_id: p.restore_id.clone(),
            engine: restored.engine,
            engine_version: restored.engine_version,
            size_gib: restored.size_gib,
            locked_until,
            lock_error,
            set,
            data,
        };
        let mut events = vec![PipelineEvent::new(correlation_id, p.copy.clone(), p.origin.clone(), event)];
        if let Some((findings, previous)) = suspicious {
            warn!(copy_arn = p.copy.arn, previous = previous.arn, ?findings, "restore suspicious: its data fell");
            self.ctx.metrics.count(&snapferry::routing::Routing::load().metrics.restore_suspicious, STEP);
            let step = Step::RestoreSuspicious { findings, previous };
            events.push(PipelineEvent::new(correlation_id, p.copy.clone(), p.origin.clone(), step));
        }
        self.ctx.publish(&events).await?;
        store.delete_restore(&p.restore_id).await?;
        Ok(Outcome::Done)
    }

    /// How `copy`'s data (`figures`) fell against the previous good copy of its resource:
    /// the newest verified copy of the same source's resource taken before it, not found
    /// suspicious itself (or accepted since), so a poisoned backup is compared with the last
    /// good one however many poisoned ones followed. One listing of that resource's copies.
    async fn suspicion(
        &self,
        store: &dyn SnapshotStore,
        copy: &Snapshot,
        figures: &RestoredFigures,
    ) -> Result<Option<(Vec<String>, SnapshotRef)>> {
        let Some(config) = &self.config.data_checks else { return Ok(None) };
        let resource = Lineage::of(copy).origin_resource().unwrap_or(&copy.resource_id);
        let Some(drop_percent) = config.checks.previous_drop(resource) else { return Ok(None) };
        let (source, taken) = (Lineage::of(copy).source_account(), retention::taken_at(copy));
        let previous = store
            .managed_of(resource)
            .await?
            .into_iter()
            .filter(|s| s.id != copy.id && Lineage::of(s).is(MadeBy::Copy) && Lineage::of(s).is_good())
            .filter(|s| Lineage::of(s).source_account() == source)
            .filter(|s| retention::taken_at(s).is_some_and(|t| taken.is_some_and(|mine| t < mine)))
            .filter_map(|s| Some((Lineage::of(&s).restored_figures()?, s)))
            .max_by_key(|(_, s)| retention::taken_at(s));
        let Some((before, previous)) = previous else { return Ok(None) };
        let findings = data::fell(&before, figures, drop_percent);
        Ok((!findings.is_empty()).then(|| (findings, previous.to_ref())))
    }

    /// Reports a failed restore test, keeps the copy and deletes the test restore.
    async fn fail(
        &self,
        store: &dyn SnapshotStore,
        correlation_id: &str,
        p: &Progress,
        reason: String,
        check: Option<FailedCheck>,
    ) -> Result<Outcome> {
        warn!(copy_arn = p.copy.arn, correlation_id, reason, "restore failed; the copy is kept");
        // Recorded before the test restore goes, so a duplicate re-check that finds it gone
        // knows the failure was reported (a redelivery before then reports it again).
        if let Some(copy) = store.describe(&p.copy.id).await? {
            store.tag(&copy, &lineage::restore_failed(self.ctx.now(), &reason)).await?;
        }
        let event = Step::RestoreFailed { reason, check };
        self.ctx.publish(&[PipelineEvent::new(correlation_id, p.copy.clone(), p.origin.clone(), event)]).await?;
        store.delete_restore(&p.restore_id).await?;
        Ok(Outcome::Done)
    }

    /// The data checks of an available, verified restore: a new master password (the
    /// source's is never known), a TLS login, the checks. The password lives for this
    /// look only and is never logged or sent anywhere but to RDS and the database.
    async fn check_data(&self, store: &dyn SnapshotStore, restored: &Restored, copy: &Snapshot) -> Result<Data> {
        let Some(config) = &self.config.data_checks else { return Ok(Data::Skipped) };
        let rds_engine = restored.engine.as_deref().unwrap_or_default();
        let Some(engine) = data::Engine::of(rds_engine) else {
            info!(
                copy_arn = copy.arn,
                engine = rds_engine,
                "data checks run on PostgreSQL and MySQL engines; not this one"
            );
            return Ok(Data::Skipped);
        };
        let Some(endpoint) = &restored.endpoint else {
            return Ok(Data::NotReached("RDS reports no endpoint yet".into()));
        };
        let resource = Lineage::of(copy).origin_resource().unwrap_or(&copy.resource_id);
        let checks = config.checks.for_resource(resource);
        let database = checks
            .and_then(|c| c.database.clone())
            .or_else(|| endpoint.database.clone())
            .or_else(|| engine.default_database().map(str::to_string));
        // AWS's time for the snapshot the copy was made of, as the copy step recorded it.
        let snapshot_at = Lineage::of(copy).snapshot_taken_at().or(copy.created_at).unwrap_or_else(|| self.ctx.now());
        // The source's figures, where the share step measured them and the comparison is on.
        let source = Lineage::of(copy).source_figures();
        let tolerance = config.checks.source_tolerance(resource);
        let compared = source.as_ref().zip(tolerance);
        let password = data::Password::generate();
        store.set_master_password(&restored.id, password.expose()).await?;
        let target = data::Target {
            engine,
            host: &endpoint.host,
            port: endpoint.port,
            user: &endpoint.user,
            database: database.as_deref(),
            password: &password,
        };
        let started = std::time::Instant::now();
        let report = loop {
            let (tls, timeout) = (&config.connection.tls, config.connection.timeout);
            match data::run(&target, tls, checks, compared, snapshot_at, timeout).await {
                Ok(report) => break report,
                Err(data::NotReached(why)) if started.elapsed() + LOGIN_RETRY < LOGIN_WAIT => {
                    info!(copy_arn = copy.arn, why, "data checks: not logged in yet");
                    tokio::time::sleep(LOGIN_RETRY).await;
                }
                Err(data::NotReached(why)) => return Ok(Data::NotReached(why)),
            }
        };
        for t in &report.tables {
            info!(
                copy_arn = copy.arn,
                schema = t.schema,
                table = t.name,
                rows = t.rows,
                bytes = t.bytes,
                "restored table"
            );
        }
        for c in &report.checks {
            info!(
                copy_arn = copy.arn,
                check = c.name,
                expected = c.expectation,
                actual = c.actual,
                passed = c.passed,
                "data check"
            );
        }
        if let Some(failed) = report.failed() {
            // Every failed check in the reason; the first in the event's `check`.
            let all: Vec<String> = report
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{:?} expected {}, found {}", c.name, c.expectation, c.actual))
                .collect();
            let reason = format!("data checks failed: {}", all.join("; "));
            let check = FailedCheck {
                name: failed.name.clone(),
                expected: failed.expectation.clone(),
                actual: failed.actual.clone(),
            };
            return Ok(Data::Failed(reason, check));
        }
        Ok(Data::Passed(DataChecked {
            database: report.database.clone(),
            tables: report.tables.len() as u32,
            rows: report.rows(),
            checks: report.checks.len() as u32,
            newest_data_at: report.newest_data_at,
            recovery_point_seconds: report.recovery_point_seconds,
            source: report.source.clone(),
        }))
    }

    /// Locks a verified copy as configured. A refusal that retrying cannot fix (no
    /// permission, a lock AWS will not shorten) is reported in the verdict, not retried.
    async fn lock(
        &self,
        store: &dyn SnapshotStore,
        copy: &Snapshot,
    ) -> Result<(Option<chrono::DateTime<Utc>>, Option<String>)> {
        let Some((mode, days)) = self.config.lock else { return Ok((None, None)) };
        match store.lock(copy, mode, days).await {
            Ok(until) => {
                if let Some(until) = until {
                    info!(copy_arn = copy.arn, %until, ?mode, "verified copy locked");
                }
                Ok((until, None))
            }
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                warn!(copy_arn = copy.arn, error = %e, "verified copy could not be locked");
                Ok((None, Some(e.to_string())))
            }
        }
    }

    /// Tags the copy verified, with the time its restore took (reconcile reports both per
    /// resource) and what it held, and suspicious where its data fell; for a member of a
    /// backup set, how many members are verified now.
    async fn record_verified(
        &self,
        store: &dyn SnapshotStore,
        snapshot: &Snapshot,
        seconds: f64,
        data: Option<&DataChecked>,
        figures: Option<RestoredFigures>,
        suspicious: bool,
    ) -> Result<Option<BackupSet>> {
        let now = self.ctx.now();
        let mut stamp = lineage::verified(now, seconds, data.and_then(|d| d.recovery_point_seconds), figures);
        if suspicious {
            stamp.extend(lineage::stamp(Mark::Suspicious, now));
        }
        store.tag(snapshot, &stamp).await?;
        let Some(set) = Lineage::of(snapshot).set() else { return Ok(None) };
        let verified = store
            .list_managed()
            .await?
            .iter()
            .filter(|s| s.id == snapshot.id || Lineage::of(s).has(Mark::Verified))
            .filter(|s| Lineage::of(s).is(MadeBy::Copy))
            .filter(|s| Lineage::of(s).set().is_some_and(|other| other.id == set.id))
            .count() as u32;
        if verified >= set.size {
            info!(set = set.id, members = set.size, "backup set verified");
        }
        Ok(Some(BackupSet { verified: Some(verified), ..set }))
    }

    /// Available is not enough: it must be on our key and be the same database as the
    /// source. The copy as AWS describes it now comes back with the verdict, for the lock
    /// and the verified tag (one look at it, not three).
    async fn verify(
        &self,
        store: &dyn SnapshotStore,
        copy: &SnapshotRef,
        restored: &Restored,
    ) -> Result<std::result::Result<(Restored, Snapshot), String>> {
        if !restored.encrypted {
            return Ok(Err("the restored resource is not encrypted".into()));
        }
        if !restored.kms_key_id.as_deref().is_some_and(|k| kms::same_key(k, &self.config.target_key)) {
            return Ok(Err(format!(
                "encrypted with {:?}, not the backup account's key {}",
                restored.kms_key_id, self.config.target_key
            )));
        }
        let Some(snapshot) = store.describe(&copy.id).await? else {
            return Ok(Err("the copy disappeared during the restore test".into()));
        };
        if snapshot.size_gib.is_some() && restored.size_gib != snapshot.size_gib {
            return Ok(Err(format!(
                "the restored volume is {:?} GiB, but the snapshot is of {:?} GiB",
                restored.size_gib, snapshot.size_gib
            )));
        }
        if snapshot.engine.is_some()
            && (restored.engine != snapshot.engine || restored.engine_version != snapshot.engine_version)
        {
            return Ok(Err(format!(
                "restored {:?} {:?}, but the snapshot is {:?} {:?}",
                restored.engine, restored.engine_version, snapshot.engine, snapshot.engine_version
            )));
        }
        Ok(Ok((restored.clone(), snapshot)))
    }
}

struct Progress {
    copy: SnapshotRef,
    origin: SnapshotRef,
    restore_id: String,
    started_at: chrono::DateTime<Utc>,
}

#[async_trait::async_trait]
impl PipelineStep for Handler {
    fn context(&self) -> &StepContext {
        &self.ctx
    }

    async fn step(&self, incoming: Incoming, _record: Record) -> Result<Outcome> {
        match incoming {
            Incoming::Pipeline(envelope) => match envelope.detail.step {
                Step::Copied { .. } => self.on_copied(&envelope.detail).await,
                _ => Ok(Outcome::Done),
            },
            Incoming::Recheck(e) => match e.detail.what {
                RecheckWhat::RestoreProgress { copy, origin, restored_resource_id, started_at } => {
                    let progress = Progress { copy, origin, restore_id: restored_resource_id, started_at };
                    self.on_progress(&e.detail.correlation_id, progress, e.detail.attempt).await
                }
                other => Err(Error::BadInput(format!("restore does not handle re-check {other:?}"))),
            },
            Incoming::Schedule(_) => self.sweep().await,
            other => Err(Error::BadInput(format!("restore does not handle {}", other.describe()))),
        }
    }
}

impl Handler {
    /// The periodic sweep: deletes every test restore older than the restore timeout, so a
    /// run that crashed, or a re-check chain that was lost, never leaves a restored copy of
    /// production data running. Only resources tagged as restore tests and named as ours
    /// are touched (the role's policy enforces both too).
    async fn sweep(&self) -> Result<Outcome> {
        let now = self.ctx.now();
        let mut failed = None;
        // Every kind: this step restores each.
        for kind in snapferry::kinds::all() {
            let store = self.ctx.stores.store(kind);
            for resource in store.list_restore_tests().await? {
                let name = resource.name();
                if !Lineage::of_resource(&resource).is_restore_test() || !name.starts_with(naming::RESTORE_PREFIX) {
                    continue;
                }
                let created = Lineage::of_resource(&resource).created_at();
                let Some(created) = created else {
                    warn!(resource = resource.id, "restore test without a valid created-at tag; left alone");
                    continue;
                };
                if now - created < self.config.timeout {
                    continue;
                }
                warn!(resource = resource.id, created = %created, "leftover restore test deleted by the sweep");
                if let Err(e) = store.delete_restore(name).await {
                    // The others are still deleted; the message is retried for this one.
                    warn!(resource = resource.id, error = %e, "could not delete a leftover restore test");
                    failed = Some(e);
                }
            }
        }
        failed.map_or(Ok(Outcome::Done), Err)
    }
}

/// Whether a failure of the restore test started at `started_at` was reported on `copy`
/// (the tag is to the second, so a failure reported in the test's first second counts).
fn failure_reported(copy: &Snapshot, started_at: chrono::DateTime<chrono::Utc>) -> bool {
    Lineage::of(copy).at(Mark::RestoreFailed).is_some_and(|at| at >= started_at - chrono::Duration::seconds(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_errors() {
        let base = [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("TARGET_KMS_KEY_ARN", "k")];
        let env =
            |extra: &[(&'static str, &'static str)]| Env::from_pairs(STEP, base.iter().chain(extra).copied()).unwrap();
        let c = Config::from_env(&env(&[])).unwrap();
        assert!(c.enabled);
        assert_eq!((c.every_nth, c.instance_class), (1, None), "the class is the store's smallest for the engine");
        let e = Config::from_env(&env(&[("RESTORE_EVERY_NTH", "0")])).unwrap_err();
        assert!(e.to_string().contains("RESTORE_EVERY_NTH"), "{e}");
        let e = Config::from_env(&env(&[("RESTORE_ENABLED", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("RESTORE_ENABLED"), "{e}");
    }

    #[test]
    fn locks_are_off_by_default_and_compliance_needs_an_explicit_opt_in() {
        let base = [("QUEUE_URL", "q"), ("DLQ_URL", "d"), ("TARGET_KMS_KEY_ARN", "k")];
        let env =
            |extra: &[(&'static str, &'static str)]| Env::from_pairs(STEP, base.iter().chain(extra).copied()).unwrap();
        assert_eq!(Config::from_env(&env(&[])).unwrap().lock, None);
        let governance = Config::from_env(&env(&[("LOCK_MODE", "governance")])).unwrap();
        assert_eq!(governance.lock, Some((LockMode::Governance, 35)));
        let e = Config::from_env(&env(&[("LOCK_MODE", "compliance")])).unwrap_err().to_string();
        assert!(e.contains("LOCK_COMPLIANCE_OPT_IN") && e.contains("root user"), "{e}");
        let compliance = Config::from_env(&env(&[
            ("LOCK_MODE", "compliance"),
            ("LOCK_COMPLIANCE_OPT_IN", "true"),
            ("LOCK_DAYS", "7"),
        ]))
        .unwrap();
        assert_eq!(compliance.lock, Some((LockMode::Compliance, 7)));
        let e = Config::from_env(&env(&[("LOCK_MODE", "governance"), ("LOCK_DAYS", "0")])).unwrap_err();
        assert!(e.to_string().contains("LOCK_DAYS"), "{e}");
        let e = Config::from_env(&env(&[("LOCK_MODE", "forever")])).unwrap_err();
        assert!(e.to_string().contains("governance or compliance"), "{e}");
    }
}
