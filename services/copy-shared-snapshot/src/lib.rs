//! copy-shared-snapshot (backup account): copies a snapshot a source account shared into
//! this account, re-encrypted with this account's own key, then into each extra region.
//!
//! A "shared" event is acted on only when the account that sent it is allowlisted and owns
//! the snapshot, as AWS describes it; anything else is rejected with an event and a
//! warning, never copied. Every copy is waited for with delayed re-checks; for DB instance
//! copies RDS-EVENT-0197 on this account's default bus usually comes first, and the copy's
//! `snapferry:copied-at` tag tells the later re-check that it was announced. Each extra
//! region is copied from the home copy by a message of its own.

use regex::Regex;
use snapferry::ResourceKind;
use snapferry::arn::Arn;
use snapferry::config::{Env, is_account_id};
use snapferry::copy::{Admission, Admitted, Budget, Copier, Slots};
use snapferry::error::{Error, Result, Retry};
use snapferry::events::{PipelineEvent, Recheck, RecheckWhat, SnapshotRef, Step};
use snapferry::inbound::Incoming;
use snapferry::inbound::native::NativeSignal;
use snapferry::lineage::{self, CopyRecord, Lineage, Made, MadeBy, Mark};
use snapferry::naming;
use snapferry::sqs::{Outcome, Record};
use snapferry::step::{PipelineStep, StepContext, StepEnv};
use snapferry::store::{CopyRequest, Snapshot, SnapshotStore, Status};
use snapferry::tags::{self, Tags};
use std::time::Duration;
use tracing::{info, warn};

/// This step's name in `shared/routing.json` and `shared/environment.json`.
pub const STEP: &str = "copy-shared-snapshot";

/// How long a function instance goes by the manual snapshot quota it read: a raised quota
/// widens the sources' default budgets within this, at one `DescribeAccountAttributes` per
/// kind and region in this time, not one per copy.
pub const QUOTA_READ_EVERY: chrono::Duration = chrono::Duration::minutes(15);

/// When a quota was read, and its maximum (`None`: AWS reports none for the kind).
type QuotaRead = (chrono::DateTime<chrono::Utc>, Option<u64>);

#[derive(Debug, Clone)]
pub struct Config {
    pub step: StepEnv,
    /// Accounts whose shared snapshots are copied: the allowlist.
    pub source_accounts: Vec<String>,
    pub target_key: String,
    /// Extra regions and the key to encrypt each region's copy with.
    pub extra_regions: Vec<(String, String)>,
    pub identifier_regex: Option<Regex>,
    pub description_regex: Option<Regex>,
    /// Copies of a kind AWS runs at once into one region, where not AWS's default.
    pub copy_slots: Slots,
    /// Copies of one kind each source may hold in a region, where set.
    pub copies_held: PerSource,
    /// Copies of one kind each source may have in progress into a region, where set.
    pub copies_in_flight: PerSource,
    /// `OPTION_GROUPS`: per extra region, the option group there for each non-default
    /// option group DB snapshots use (AWS refuses a copy into another region without one).
    pub option_groups: Vec<OptionGroupMapping>,
}

/// One entry of `OPTION_GROUPS`: `region:source=destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionGroupMapping {
    pub region: String,
    pub source: String,
    pub destination: String,
}

impl OptionGroupMapping {
    /// `OPTION_GROUPS`: `region:source=destination`, comma-separated; each region one of
    /// `regions` (the extra regions), each (region, source) once.
    fn parse(env: &Env, regions: &[(String, String)]) -> Result<Vec<OptionGroupMapping>> {
        let mut out: Vec<OptionGroupMapping> = Vec::new();
        for entry in env.list("OPTION_GROUPS") {
            let bad = |why: &str| Error::Config(format!("OPTION_GROUPS has {entry:?}: {why}"));
            let (region, groups) = entry.split_once(':').ok_or_else(|| bad("expected region:source=destination"))?;
            let (source, destination) =
                groups.split_once('=').ok_or_else(|| bad("expected region:source=destination"))?;
            let (region, source, destination) = (region.trim(), source.trim(), destination.trim());
            let name =
                |n: &str| !n.is_empty() && n.len() <= 255 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !name(source) || !name(destination) {
                return Err(bad("option group names are 1 to 255 letters, digits and hyphens"));
            }
            if !regions.iter().any(|(r, _)| r == region) {
                return Err(bad(&format!("{region} is not one of EXTRA_REGIONS")));
            }
            if out.iter().any(|m| m.region == region && m.source == source) {
                return Err(bad(&format!("{source} is mapped twice for {region}")));
            }
            out.push(OptionGroupMapping {
                region: region.into(),
                source: source.into(),
                destination: destination.into(),
            });
        }
        Ok(out)
    }
}

/// A budget per source account: one for every source, and some sources' own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerSource {
    pub every: Option<usize>,
    pub sources: Vec<(String, usize)>,
}

impl PerSource {
    /// `N` and/or `account=N`, comma-separated; each account one of `allowed`.
    fn parse(env: &Env, name: &str, allowed: &[String]) -> Result<PerSource> {
        let mut out = PerSource::default();
        for item in env.list(name) {
            let bad = |why: &str| Error::Config(format!("{name} has {item:?}: {why}; expected N or account=N, N >= 1"));
            let count = |n: &str| n.trim().parse::<usize>().ok().filter(|n| *n > 0);
            match item.split_once('=') {
                None if out.every.is_some() => return Err(bad("a second budget for every source")),
                None => out.every = Some(count(&item).ok_or_else(|| bad("not a count"))?),
                Some((account, n)) => {
                    let account = account.trim().to_string();
                    if !allowed.contains(&account) {
                        return Err(bad("not an account in SOURCE_ACCOUNTS"));
                    }
                    if out.sources.iter().any(|(a, _)| *a == account) {
                        return Err(bad("that account twice"));
                    }
                    out.sources.push((account, count(n).ok_or_else(|| bad("not a count"))?));
                }
            }
        }
        Ok(out)
    }

    /// `source`'s budget, where one is set.
    pub fn of(&self, source: &str) -> Option<usize> {
        self.sources.iter().find(|(a, _)| a == source).map(|(_, n)| *n).or(self.every)
    }
}

impl Config {
    /// How many copies of `kind` may be in progress into one region at once.
    pub fn slots(&self, kind: ResourceKind) -> usize {
        self.copy_slots.of(kind)
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config> {
        let source_accounts = env.accounts("SOURCE_ACCOUNTS")?;
        if source_accounts.is_empty() {
            return Err(Error::Config("SOURCE_ACCOUNTS must name at least one allowlisted account".into()));
        }
        let keys: Vec<(String, String)> = env
            .list("EXTRA_REGION_KMS_KEYS")
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(r, k)| (r.trim().to_string(), k.trim().to_string()))
                    .ok_or_else(|| Error::Config(format!("EXTRA_REGION_KMS_KEYS has {pair:?}; expected region=keyArn")))
            })
            .collect::<Result<_>>()?;
        let extra_regions: Vec<(String, String)> = env
            .list("EXTRA_REGIONS")
            .into_iter()
            .map(|region| {
                let key = keys.iter().find(|(r, _)| *r == region).map(|(_, k)| k.clone()).ok_or_else(|| {
                    Error::Config(format!("EXTRA_REGIONS names {region} but EXTRA_REGION_KMS_KEYS has no key for it"))
                })?;
                Ok((region, key))
            })
            .collect::<Result<_>>()?;
        let copies_held = PerSource::parse(env, "COPIES_HELD_PER_SOURCE", &source_accounts)?;
        let copies_in_flight = PerSource::parse(env, "COPIES_IN_FLIGHT_PER_SOURCE", &source_accounts)?;
        let option_groups = OptionGroupMapping::parse(env, &extra_regions)?;
        Ok(Config {
            option_groups,
            step: StepEnv::from_env(env)?,
            copies_held,
            copies_in_flight,
            source_accounts,
            target_key: env.required("TARGET_KMS_KEY_ARN")?,
            extra_regions,
            identifier_regex: env.regex("IDENTIFIER_REGEX")?,
            description_regex: env.regex("DESCRIPTION_REGEX")?,
            copy_slots: Slots::from_env(env)?,
        })
    }
}

pub struct Handler {
    ctx: StepContext,
    config: Config,
    /// AWS's manual snapshot quota per (kind, region), and when it was read: the held
    /// budgets' default, read again after [`QUOTA_READ_EVERY`].
    quotas: std::sync::Mutex<std::collections::BTreeMap<(ResourceKind, String), QuotaRead>>,
}

impl Handler {
    pub fn new(ctx: StepContext, config: Config) -> Self {
        Handler { ctx, config, quotas: Default::default() }
    }

    /// What `source` may have in `store`: as configured, or else its share of AWS's manual
    /// snapshot quota (none where AWS reports no quota: EBS) and of the copy slots.
    async fn budget(&self, store: &dyn SnapshotStore, source: &str) -> Result<Budget> {
        let sources = self.config.source_accounts.len().max(1);
        let held = match self.config.copies_held.of(source) {
            Some(n) => Some(n),
            None => {
                let key = (store.kind(), store.region().to_string());
                let poisoned = |_| Error::BadInput("quota cache poisoned".into());
                let now = self.ctx.now();
                let known = self.quotas.lock().map_err(poisoned)?.get(&key).copied();
                let max = match known {
                    Some((read_at, max)) if now - read_at < QUOTA_READ_EVERY => max,
                    _ => {
                        let max = store.quota_usage().await?.map(|u| u.max);
                        self.quotas.lock().map_err(poisoned)?.insert(key, (now, max));
                        max
                    }
                };
                max.map(|m| (m as usize / sources).max(1))
            }
        };
        let slots = self.config.slots(store.kind());
        let set = self.config.copies_in_flight.of(source);
        let in_flight = set.unwrap_or_else(|| slots.div_ceil(sources).max(1));
        Ok(Budget { held, in_flight, in_flight_cap: set.is_some() })
    }

    /// A copy of `snapshot` refused by its source's budget is reported at once (Snapshot
    /// Rejected naming the budget, the alarm's metric) and dead-lettered, to replay once the
    /// source has room.
    async fn budget_checked(
        &self,
        admitted: Result<Admitted>,
        (correlation_id, snapshot, origin): (&str, &SnapshotRef, &SnapshotRef),
        source: &str,
    ) -> Result<Admitted> {
        match admitted {
            Err(Error::Rejected(reason)) => {
                warn!(snapshot_arn = snapshot.arn, source, reason, "over its source's budget; rejected");
                self.ctx.metrics.count(&snapferry::routing::Routing::load().metrics.budget_exceeded, STEP);
                let rejected = Step::Rejected { reason: reason.clone(), sender_account: Some(source.to_string()) };
                let event = PipelineEvent::new(correlation_id, snapshot.clone(), origin.clone(), rejected);
                self.ctx.publish(&[event]).await?;
                Err(Error::Rejected(reason))
            }
            other => other,
        }
    }

    /// The step as its Lambda or the local host runs it: configured from its environment,
    /// acting through the ports `ports` builds for that configuration.
    pub fn from_env(env: &Env, ports: impl FnOnce(StepEnv) -> StepContext) -> Result<Self> {
        let config = Config::from_env(env)?;
        Ok(Handler::new(ports(config.step.clone()), config))
    }

    /// The sending account, when it is allowlisted; why not otherwise. The sender is the
    /// envelope's `account`, which EventBridge sets to the account that put the event.
    fn allowed_sender<'a>(&self, sender: Option<&'a str>) -> std::result::Result<&'a str, String> {
        match sender {
            None => Err("the event names no sending account".into()),
            Some(s) if !self.config.source_accounts.iter().any(|a| a == s) => {
                Err(format!("sender account {s} is not in SOURCE_ACCOUNTS"))
            }
            Some(s) => Ok(s),
        }
    }

    async fn reject(&self, event: &PipelineEvent, sender: Option<&str>, reason: String) -> Result<Outcome> {
        warn!(snapshot_arn = event.snapshot.arn, correlation_id = event.correlation_id, reason, "rejected");
        let sender_account = sender.filter(|s| is_account_id(s)).map(str::to_string);
        self.ctx.publish(&[event.next(event.snapshot.clone(), Step::Rejected { reason, sender_account })]).await?;
        Ok(Outcome::Done)
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_shared(
        &self,
        handling: Handling<'_>,
        sender: Option<&str>,
        event: &PipelineEvent,
        target_account: &str,
        source_tags: &Tags,
        set: Option<snapferry::events::BackupSet>,
        source_data: Option<&snapferry::events::SourceData>,
    ) -> Result<Outcome> {
        if target_account != self.ctx.account() {
            return Ok(Outcome::Done);
        }
        let sender_account = match self.allowed_sender(sender) {
            Ok(s) => s,
            Err(reason) => return self.reject(event, sender, reason).await,
        };
        let store = self.ctx.stores.store(event.snapshot.kind);
        let Some(shared) = store.describe(&event.snapshot.arn).await? else {
            // A redelivery after the source withdrew the share (it does once the copy is
            // announced): the copy made from it says so, and there is nothing left to do.
            // Looked for among the copies of the resource the event names, not the account's:
            // a wrong name finds nothing, and the message is tried again and dead-lettered.
            let copied = store.managed_of(&event.origin.resource_id).await?;
            let copied_from = |c: &Snapshot| Lineage::of(c).copied_from() == Some(event.snapshot.arn.as_str());
            if copied.iter().any(|c| is_our_copy(c) && copied_from(c)) {
                info!(snapshot_arn = event.snapshot.arn, "copied already and no longer shared; nothing to do");
                return Ok(Outcome::Done);
            }
            // Shared before the event was sent, so this is propagation delay: try again.
            return Err(Error::Retryable {
                retry: Retry::NotReady,
                op: "DescribeSharedSnapshot",
                code: "NotVisibleYet".into(),
                message: format!("{} is not visible to this account yet", event.snapshot.arn),
            });
        };
        if let Some(reason) = owner_refusal(sender_account, event, &shared) {
            return self.reject(event, sender, reason).await;
        }
        // From here on the run's origin is what AWS reports where AWS reports it.
        let event = &PipelineEvent { origin: checked_origin(&event.origin, &shared), ..event.clone() };
        // Failed, or archived (which cannot be copied): nothing to wait for.
        if let Status::Failed(why) = &shared.status {
            return self.reject(event, sender, format!("{} cannot be copied: {why}", shared.arn)).await;
        }
        if let Some(why) = self.filtered_out(&shared, source_tags) {
            info!(snapshot_arn = shared.arn, correlation_id = event.correlation_id, why, "filtered out; not copied");
            return Ok(Outcome::Done);
        }
        // The source's figures only feed a comparison; implausible ones are left off, not trusted.
        let source_figures = source_data.and_then(tags::SourceFigures::from_event);
        match source_data {
            Some(sent) if source_figures.is_none() => {
                // The digest is the source's text, as long as an event allows: its start and
                // length go to the log, not all of it.
                let digest: String = sent.table_digest.chars().take(32).collect();
                let digest_len = sent.table_digest.len();
                let (tables, rows) = (sent.tables, sent.rows);
                warn!(
                    snapshot_arn = shared.arn,
                    tables, rows, digest, digest_len, "implausible source figures left off"
                );
            }
            _ => {}
        }
        let record = CopyRecord {
            made: Made {
                source_arn: event.origin.arn.clone(),
                source_account: shared.account.clone(),
                correlation_id: event.correlation_id.clone(),
                by: MadeBy::Copy,
            },
            origin: &event.origin,
            copied_from: Some(&shared.arn),
            // Its place among AWS's 50 tags; its value is set at the copy call (`stamped`).
            started_at: self.ctx.now(),
            taken_at: shared.created_at,
            // The set only groups reports; a malformed one from the source is left off.
            set: set.filter(tags::valid_set),
            source_figures,
        };
        let ours = record.tags();
        // The source's tags are its data: nothing in them may pose as snapferry's own.
        let (copy_tags, dropped) = tags::within_limit(&tags::user_tags(source_tags), &ours);
        if !dropped.is_empty() {
            warn!(snapshot_arn = shared.arn, ?dropped, "tags beyond AWS's limit of 50 left off the copy");
        }
        let copy_id = naming::target_copy_id(&shared.arn, shared.created_at);
        if let Some(existing) = store.find(&copy_id).await? {
            // The other of AWS's notification and the pipeline's event, or a redelivery: the
            // copy is under way or made, and is not made again. What this one knows is added;
            // it is announced as started again (after a crash this may be the only
            // announcement; subscribers see events at least once) and followed to its end, so
            // nothing waits on a chain that was lost.
            self.top_up_tags(store.as_ref(), &existing, &copy_tags).await?;
            let started = Step::CopyStarted { destination_region: self.ctx.region().to_string() };
            self.ctx.publish(&[event.next(existing.to_ref(), started)]).await?;
            // A copy in progress has a chain of re-checks: the one of the handling that
            // started it, whose message holds its slot. Only that message's redelivery (its
            // first handling may have died before sending it) starts another; a second
            // message about the same share (a duplicate, the other of the two announcements)
            // does not, or two chains would both make a failed copy again, one deleting what
            // the other just made.
            let in_progress = !matches!(existing.status, Status::Available | Status::Failed(_));
            if in_progress && !self.copier().follows(&existing, handling.by, handling.again).await? {
                info!(copy_arn = existing.arn, "copy in progress; its own re-checks follow it");
                return Ok(Outcome::Done);
            }
            return match existing.status {
                // Announced already, yet the source announces its share again: its reconcile
                // does so while no "Snapshot Copied" came back, so that one was lost. Said again
                // (never copied again), so the source can release the share.
                Status::Available if Lineage::of(&existing).has(Mark::Copied) => {
                    self.announce(&existing).await?;
                    Ok(Outcome::Done)
                }
                Status::Available => self.on_copy_available(existing, handling.by).await,
                _ => self.recheck(store.as_ref(), &existing, 0),
            };
        }
        let budget = self.budget(store.as_ref(), &shared.account).await?;
        let admission = Admission {
            copy: &copy_id,
            source: &shared.account,
            by: handling.by,
            taken_at: shared.created_at,
            slots: self.config.slots(store.kind()),
            budget: &budget,
        };
        let admitted = self.copier().take_slot(store.as_ref(), &admission).await;
        let about = (event.correlation_id.as_str(), &event.snapshot, &event.origin);
        if self.budget_checked(admitted, about, &shared.account).await? == Admitted::Elsewhere {
            // That handling makes the copy and follows it; this message comes back for what
            // only it knows (the pipeline's event brings the source's tags, which AWS's
            // notification lacks), and finds the copy made.
            return Err(Error::Retryable {
                retry: Retry::NotReady,
                op: "copy",
                code: "CopyHeldElsewhere".into(),
                message: format!("another handling of this share holds {copy_id}'s slot and is making it"),
            });
        }
        let copy_tags = self.stamped(copy_tags);
        let copied = store
            .copy(&CopyRequest {
                source: &shared.arn,
                source_region: Some(&shared.region),
                target_id: &copy_id,
                kms_key_id: Some(&self.config.target_key),
                tags: &copy_tags,
                // Same region: no option group to name; the snapshot's own (not the engine's
                // default) comes along into this account, for its restore and extra regions.
                option_group: None,
                copy_option_group: shared.option_group.as_deref().is_some_and(|g| !g.starts_with("default:")),
            })
            .await;
        let copied = self.copier().copy_called(store.as_ref(), &admission, copied).await;
        let copy =
            self.quota_checked(copied, event.correlation_id.clone(), event.snapshot.clone(), &event.origin).await?;
        info!(snapshot_arn = shared.arn, copy_arn = copy.arn, correlation_id = event.correlation_id, "copy started");
        let home = self.ctx.region().to_string();
        self.ctx.publish(&[event.next(copy.to_ref(), Step::CopyStarted { destination_region: home.clone() })]).await?;
        match copy.status {
            Status::Available => self.on_copy_available(copy, handling.by).await,
            // Re-checked even where RDS announces the end (RDS-EVENT-0197): the event only
            // makes it sooner, and it may never come.
            _ => self.recheck(store.as_ref(), &copy, 0),
        }
    }

    /// AWS's `shareSnapshot` notification: the sharing account is AWS's word, but it is
    /// still checked against the allowlist and against the owner `DescribeSnapshots`
    /// reports. Without the pipeline's event the run's origin is the shared snapshot itself.
    async fn on_shared_natively(
        &self,
        handling: Handling<'_>,
        kind: snapferry::ResourceKind,
        snapshot_id: &str,
        from_account: Option<&str>,
    ) -> Result<Outcome> {
        let store = self.ctx.stores.store(kind);
        let Some(shared) = store.describe(snapshot_id).await? else {
            info!(snapshot = snapshot_id, "shared with us, but not visible (unshared since?); nothing to copy");
            return Ok(Outcome::Done);
        };
        let step = Step::Shared {
            target_account: self.ctx.account().to_string(),
            tags: Tags::new(),
            set: None,
            source_data: None,
        };
        let correlation_id = naming::identifier("run", &[&shared.arn], 40);
        let event = PipelineEvent::new(correlation_id, shared.to_ref(), shared.to_ref(), step);
        self.on_shared(handling, from_account, &event, self.ctx.account(), &Tags::new(), None, None).await
    }

    /// A copy made first from AWS's shareSnapshot notification could not know the source's
    /// tags, set or figures (another account's tags are not visible to us): added when the
    /// pipeline's event brings them. Lineage stays as first written.
    async fn top_up_tags(&self, store: &dyn SnapshotStore, copy: &Snapshot, wanted: &Tags) -> Result<()> {
        let missing = Lineage::of(copy).lacking(wanted);
        if missing.is_empty() || !Lineage::of(copy).is_managed() {
            return Ok(());
        }
        store.tag(copy, &missing).await
    }

    fn filtered_out(&self, shared: &Snapshot, source_tags: &Tags) -> Option<String> {
        if let Some(re) = &self.config.identifier_regex
            && !re.is_match(&shared.name)
        {
            return Some(format!("snapshot name {} does not match IDENTIFIER_REGEX", shared.name));
        }
        if let Some(re) = &self.config.description_regex {
            // EBS snapshots have one, as AWS describes it; RDS snapshots have none, and the
            // source's `Description` tag stands in, as in DLM.
            let description = shared
                .description
                .as_deref()
                .or(source_tags.get("Description").map(String::as_str))
                .unwrap_or_default();
            if !re.is_match(description) {
                return Some(format!("description {description:?} does not match DESCRIPTION_REGEX"));
            }
        }
        None
    }

    /// A copy is available: fan out to extra regions (from the home copy) and announce it.
    async fn on_copy_available(&self, copy: Snapshot, by: &str) -> Result<Outcome> {
        if Lineage::of(&copy).has(Mark::Copied) {
            // Announced already (its slot freed before): the re-check behind an event that did come.
            return Ok(Outcome::Done);
        }
        // Its slot frees first, before the announcement that marks it done.
        self.copier().ended(&copy).await?;
        let (origin, correlation_id) = self.announce(&copy).await?;
        if copy.region == self.ctx.region() {
            for (region, _) in &self.config.extra_regions {
                self.start_copy_to_region(&copy, &origin, region, &correlation_id, by).await?;
            }
        }
        // Recorded after it is announced and fanned out: a failure before this line repeats
        // the announcement (a duplicate the restore step handles), never loses it.
        let stamp = lineage::stamp(Mark::Copied, self.ctx.now());
        self.ctx.stores.store_in(copy.kind, &copy.region).tag(&copy, &stamp).await?;
        Ok(Outcome::Done)
    }

    /// Publishes "Snapshot Copied" for `copy`; its origin and run, as its lineage records them.
    async fn announce(&self, copy: &Snapshot) -> Result<(SnapshotRef, String)> {
        let Some(origin) = Lineage::of(copy).origin() else {
            return Err(Error::BadInput(format!("{} has no lineage tags; not a snapferry copy", copy.arn)));
        };
        let correlation_id = Lineage::of(copy).correlation_id();
        // A home copy names the shared snapshot it was copied from, the one the source may
        // stop sharing; a copy in an extra region was copied from the home copy.
        let home = copy.region == self.ctx.region();
        let copied_from = home.then(|| Lineage::of(copy).copied_from().map(str::to_string)).flatten();
        let announce =
            PipelineEvent::new(correlation_id.clone(), copy.to_ref(), origin.clone(), Step::Copied { copied_from });
        self.ctx.publish(&[announce]).await?;
        info!(copy_arn = copy.arn, correlation_id, "copied");
        Ok((origin, correlation_id))
    }

    /// Starts the copy of the home copy `copy` into `region` here and now, so it starts as
    /// soon as the home copy is there (a message of its own would first wait for this batch
    /// to end). When it cannot start now (its slots are full, AWS refused or failed), it goes
    /// on as a message of its own, which waits, retries and dead-letters as any other; the
    /// follow-up of a copy started here is sent as one too.
    async fn start_copy_to_region(
        &self,
        copy: &Snapshot,
        origin: &SnapshotRef,
        region: &str,
        correlation_id: &str,
        by: &str,
    ) -> Result<()> {
        let started = Box::pin(self.copy_to_region(copy.to_ref(), origin.clone(), region, correlation_id, by)).await;
        match started {
            Ok(Outcome::Later { delay, body }) => self.ctx.queue.send_later(&body, delay, 1, None, None).await,
            Ok(_) => Ok(()),
            Err(e) => {
                let delay = e.retry_after().unwrap_or(Duration::ZERO);
                info!(copy_arn = copy.arn, region, error = %e, "copy into an extra region goes on as a message");
                let what = RecheckWhat::CopyToRegion {
                    copy: copy.to_ref(),
                    origin: origin.clone(),
                    destination_region: region.to_string(),
                };
                self.ctx.follow_up(Recheck::new(correlation_id, 1, None, what), delay).await
            }
        }
    }

    /// Copies the home copy into one extra region, on that region's key.
    async fn copy_to_region(
        &self,
        home: SnapshotRef,
        origin: SnapshotRef,
        region: &str,
        correlation_id: &str,
        by: &str,
    ) -> Result<Outcome> {
        let Some(key) = self.config.extra_regions.iter().find(|(r, _)| r == region).map(|(_, k)| k) else {
            return Err(Error::BadInput(format!("{region} is not in EXTRA_REGIONS")));
        };
        let source = self.ctx.stores.store(home.kind);
        let Some(copy) = source.describe(&home.id).await? else {
            return Err(Error::NotFound { op: "copy", what: home.arn });
        };
        let option_group = match self.option_group_in(&copy, region) {
            Ok(group) => group,
            Err(reason) => {
                warn!(copy_arn = copy.arn, region, reason, "no option group there; not copied");
                let rejected = Step::Rejected { reason: reason.clone(), sender_account: None };
                self.ctx.publish(&[PipelineEvent::new(correlation_id, home.clone(), origin, rejected)]).await?;
                return Err(Error::Rejected(reason));
            }
        };
        // The lineage travels; what the home copy has been through (announced, verified) does not.
        let carried = lineage::for_another_region(&Lineage::of(&copy));
        let regional = self.ctx.stores.store_in(copy.kind, region);
        let source = Lineage::of(&copy).source_account().unwrap_or(&copy.account).to_string();
        let budget = self.budget(regional.as_ref(), &source).await?;
        let admission = Admission {
            copy: &copy.name,
            source: &source,
            by,
            taken_at: Lineage::of(&copy).snapshot_taken_at().or(copy.created_at),
            slots: self.config.slots(regional.kind()),
            budget: &budget,
        };
        // Made already (a redelivery): the copy call answers with it, and it holds no slot.
        if regional.find(&copy.name).await?.is_none() {
            let admitted = self.copier().take_slot(regional.as_ref(), &admission).await;
            let about = (correlation_id, &home, &origin);
            if self.budget_checked(admitted, about, &source).await? == Admitted::Elsewhere {
                info!(copy = copy.name, region, "another handling holds this copy's slot and makes it");
                return Ok(Outcome::Done);
            }
        }
        let carried = self.stamped(carried);
        let copied = regional
            .copy(&CopyRequest {
                source: &copy.arn,
                source_region: Some(&copy.region),
                target_id: &copy.name,
                kms_key_id: Some(key),
                tags: &carried,
                option_group,
                copy_option_group: false,
            })
            .await;
        let copied = self.copier().copy_called(regional.as_ref(), &admission, copied).await;
        let extra = self.quota_checked(copied, correlation_id.to_string(), home.clone(), &origin).await?;
        let started = Step::CopyStarted { destination_region: region.to_string() };
        self.ctx.publish(&[PipelineEvent::new(correlation_id, extra.to_ref(), origin, started)]).await?;
        match extra.status {
            Status::Available => self.on_copy_available(extra, by).await,
            _ => self.recheck(regional.as_ref(), &extra, 0),
        }
    }

    /// The option group `copy` (a DB snapshot) takes in `region`: none for a default option
    /// group (AWS gives the copy the engine's default there) or a kind without option groups,
    /// else the one `OPTION_GROUPS` maps it to there. Unmapped, the reason it cannot be copied,
    /// naming the mapping, before AWS is asked: AWS refuses such a copy (RDS API Reference,
    /// CopyDBSnapshot, OptionGroupName).
    fn option_group_in<'a>(&'a self, copy: &Snapshot, region: &str) -> std::result::Result<Option<&'a str>, String> {
        let Some(group) = copy.option_group.as_deref().filter(|g| !g.starts_with("default:")) else { return Ok(None) };
        match self.config.option_groups.iter().find(|m| m.region == region && m.source == group) {
            Some(m) => Ok(Some(m.destination.as_str())),
            None => Err(format!(
                "{} uses the option group {group}, which OPTION_GROUPS maps to none in {region} \
                 (add {region}:{group}=<an option group there>; target.copy.optionGroups in the stacks): \
                 AWS refuses a copy into another region without one",
                copy.arn
            )),
        }
    }

    /// AWS reports our `copy` failed: made again from where it was copied from (the shared
    /// snapshot; for an extra region, the home copy) a bounded number of times, then
    /// reported (Snapshot Rejected with AWS's reason) and dead-lettered. `attempt` is the
    /// re-check's that found it, 0 for an RDS event (which leaves reporting to the chain).
    async fn on_copy_failed(&self, copy: Snapshot, attempt: u32) -> Result<Outcome> {
        let store = self.ctx.stores.store_in(copy.kind, &copy.region);
        let home = copy.region == self.ctx.region();
        let source = if home {
            Lineage::of(&copy).copied_from().map(str::to_string)
        } else {
            Some(self.ctx.stores.store(copy.kind).snapshot_arn(&copy.name))
        };
        let key = if home {
            Some(self.config.target_key.clone())
        } else {
            self.config.extra_regions.iter().find(|(r, _)| *r == copy.region).map(|(_, k)| k.clone())
        };
        let source_region = source.as_deref().and_then(Arn::parse).map(|a| a.region.to_string());
        let again = match (&source, &key) {
            (Some(source), Some(key)) => {
                self.copier().again(store.as_ref(), &copy, source, source_region.as_deref(), Some(key)).await
            }
            _ => Err(Error::CopyFailed {
                op: "copy",
                message: format!("{} failed and names no source to copy again from: {:?}", copy.arn, copy.status),
                hint: None,
            }),
        };
        let origin = Lineage::of(&copy).origin().unwrap_or_else(|| copy.to_ref());
        let correlation_id = Lineage::of(&copy).correlation_id();
        match again {
            Ok(again) => {
                let started = Step::CopyStarted { destination_region: again.region.clone() };
                self.ctx.publish(&[PipelineEvent::new(&correlation_id, again.to_ref(), origin, started)]).await?;
                self.recheck(store.as_ref(), &again, attempt)
            }
            // Reported by the re-check chain only, so a failure seen by both it and
            // RDS-EVENT-0190 is reported once.
            Err(e @ Error::CopyFailed { .. }) if attempt > 0 => {
                self.copier().ended(&copy).await?;
                let rejected = Step::Rejected { reason: e.to_string(), sender_account: None };
                self.ctx.publish(&[PipelineEvent::new(correlation_id, copy.to_ref(), origin, rejected)]).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// `tags` with the copy's start as of now, just before the copy call: stamped earlier,
    /// the wait for a slot and the looks before it would make the copy look older, and
    /// slower, than it is, and the waiters behind it come back late.
    fn copier(&self) -> Copier<'_> {
        Copier::new(&self.ctx)
    }

    fn stamped(&self, mut tags: Tags) -> Tags {
        lineage::stamp_started(&mut tags, self.ctx.now());
        tags
    }

    /// A copy refused because the account's manual snapshot count is full is reported at
    /// once (Snapshot Rejected about `snapshot`, the alarm's metric) and dead-lettered.
    async fn quota_checked(
        &self,
        copied: Result<Snapshot>,
        correlation_id: String,
        snapshot: SnapshotRef,
        origin: &SnapshotRef,
    ) -> Result<Snapshot> {
        match copied {
            Err(e @ Error::QuotaFull { .. }) => {
                let rejected = Step::Rejected { reason: e.to_string(), sender_account: None };
                let event = PipelineEvent::new(correlation_id, snapshot, origin.clone(), rejected);
                Err(self.copier().quota_full(STEP, event, e).await)
            }
            other => other,
        }
    }

    /// Looks at `copy` (in `store`'s region) again later.
    fn recheck(&self, store: &dyn SnapshotStore, copy: &Snapshot, attempt: u32) -> Result<Outcome> {
        let origin = Lineage::of(copy).origin().unwrap_or_else(|| copy.to_ref());
        let correlation_id = Lineage::of(copy).correlation_id();
        let what =
            RecheckWhat::CopyWhenAvailable { copy: copy.to_ref(), origin, destination_region: store.region().into() };
        self.copier().recheck(store, copy, Recheck::new(correlation_id, attempt + 1, None, what))
    }
}

/// The message a step handles: whether it was handled before, and its SQS message id, which
/// holds a copy's slot in the ledger (so only its own redelivery makes that copy).
#[derive(Debug, Clone, Copy)]
struct Handling<'a> {
    again: bool,
    by: &'a str,
}

/// Why the snapshot AWS describes must not be copied for `sender`, if it must not: its
/// owner, as AWS reports it (never as the event says), must be the allowlisted account that
/// sent the event, so no allowlisted account can launder another account's snapshot, and
/// the event's snapshot and origin must name that same account, the origin's ARN included:
/// the copy's "Snapshot Copied" goes back to the origin's account, whose expire step would
/// otherwise stop sharing a snapshot of an account that never sent it.
fn owner_refusal(sender: &str, event: &PipelineEvent, shared: &Snapshot) -> Option<String> {
    let named = Arn::parse(&event.snapshot.arn).map(|a| a.account);
    if shared.account != sender {
        return Some(format!(
            "snapshot {} is owned by {}, not by the sending account {sender}",
            shared.arn, shared.account
        ));
    }
    if event.snapshot.account != shared.account || named != Some(shared.account.as_str()) {
        return Some(format!(
            "the event names account {} ({}) for a snapshot AWS says {} owns",
            event.snapshot.account, event.snapshot.arn, shared.account
        ));
    }
    if event.origin.account != sender {
        return Some(format!("the origin {} is not in the sending account {sender}", event.origin.arn));
    }
    let origin_named = Arn::parse(&event.origin.arn);
    if origin_named.as_ref().map(|a| a.account) != Some(shared.account.as_str()) || event.origin.kind != shared.kind {
        return Some(format!(
            "the origin {} is not a {} snapshot of the sending account {sender}",
            event.origin.arn, shared.kind
        ));
    }
    None
}

/// The origin a copy records: the one announced (its ARN, checked by [`owner_refusal`] to
/// lie in the owner's account; the backup account cannot see the source's other snapshots),
/// with what AWS reports of the shared snapshot in place of what the source says: the
/// account that shared it and, where a copy names it, the resource it was taken of.
fn checked_origin(announced: &SnapshotRef, shared: &Snapshot) -> SnapshotRef {
    let mut origin = announced.clone();
    origin.account = shared.account.clone();
    if snapferry::kinds::of(shared.kind).copies_name_their_resource {
        origin.resource_id = shared.resource_id.clone();
    }
    origin
}

fn is_our_copy(s: &Snapshot) -> bool {
    Lineage::of(s).is(MadeBy::Copy)
}

#[async_trait::async_trait]
impl PipelineStep for Handler {
    fn context(&self) -> &StepContext {
        &self.ctx
    }

    async fn step(&self, incoming: Incoming, record: Record) -> Result<Outcome> {
        let handling = Handling {
            // This message handled before (SQS's redelivery, or sent again after a failure).
            again: record.receive_count > 1 || record.attempt > 0,
            by: record.handling(),
        };
        let by = handling.by;
        match incoming {
            Incoming::Pipeline(envelope) => match &envelope.detail.step {
                Step::Shared { target_account, tags, set, source_data } => {
                    let (set, sender) = (set.clone(), envelope.account.as_deref());
                    let data = source_data.as_deref();
                    self.on_shared(handling, sender, &envelope.detail, target_account, tags, set, data).await
                }
                _ => Ok(Outcome::Done),
            },
            Incoming::Native(event) => match event.signal() {
                // EBS tells the receiving account itself; the pipeline's "shared" event may
                // come before or after, and whichever comes second finds the copy made.
                NativeSignal::SharedWithUs { snapshot, from_account } => {
                    self.on_shared_natively(handling, snapshot.kind, &snapshot.id, from_account.as_deref()).await
                }
                NativeSignal::CopyFinished { snapshot, .. } => {
                    let store = self.ctx.stores.store(snapshot.kind);
                    match store.describe(&snapshot.id).await? {
                        Some(copy) if is_our_copy(&copy) => self.on_copy_available(copy, by).await,
                        _ => Ok(Outcome::Done),
                    }
                }
                // RDS-EVENT-0190 / 0061: the copy was canceled. What AWS describes decides.
                NativeSignal::CopyFailed { snapshot, .. } => {
                    let store = self.ctx.stores.store(snapshot.kind);
                    match store.describe(&snapshot.id).await? {
                        // Made again at once; the copy's own re-check chain goes on waiting
                        // for it, and reports it if it failed for the last time.
                        Some(copy) if is_our_copy(&copy) && matches!(copy.status, Status::Failed(_)) => {
                            match self.on_copy_failed(copy, 0).await {
                                Err(Error::CopyFailed { .. }) => Ok(Outcome::Done),
                                other => other.map(|_| Outcome::Done),
                            }
                        }
                        _ => Ok(Outcome::Done),
                    }
                }
                _ => Ok(Outcome::Done),
            },
            Incoming::Recheck(e) => match e.detail.what {
                RecheckWhat::CopyToRegion { copy, origin, destination_region } => {
                    self.copy_to_region(copy, origin, &destination_region, &e.detail.correlation_id, by).await
                }
                RecheckWhat::CopyWhenAvailable { copy, destination_region, .. } => {
                    let found = self.ctx.stores.store_in(copy.kind, &destination_region).describe(&copy.id).await?;
                    match found {
                        // Gone for a moment while another invocation makes a failed copy again
                        // (deleted, then copied under the same name); tried again, and
                        // dead-lettered with the reason if it stays gone.
                        None => Err(Error::Retryable {
                            retry: Retry::NotReady,
                            op: "copy",
                            code: "NotFound".into(),
                            message: format!("{} not found (made again by another invocation, or deleted)", copy.arn),
                        }),
                        Some(c) if c.status == Status::Available => self.on_copy_available(c, by).await,
                        Some(c) if matches!(c.status, Status::Failed(_)) => {
                            self.on_copy_failed(c, e.detail.attempt).await
                        }
                        Some(c) => {
                            let store = self.ctx.stores.store_in(c.kind, &destination_region);
                            self.recheck(store.as_ref(), &c, e.detail.attempt)
                        }
                    }
                }
                other => Err(Error::BadInput(format!("copy-shared-snapshot does not handle re-check {other:?}"))),
            },
            other => Err(Error::BadInput(format!("copy-shared-snapshot does not handle {}", other.describe()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        let base = [
            ("QUEUE_URL", "q"),
            ("DLQ_URL", "d"),
            ("SOURCE_ACCOUNTS", "111111111111"),
            ("TARGET_KMS_KEY_ARN", "arn:aws:kms:us-east-1:222222222222:key/k"),
        ];
        Env::from_pairs(STEP, base.iter().chain(extra).copied()).unwrap()
    }

    #[test]
    fn extra_regions_need_a_key_each() {
        let e = Config::from_env(&env(&[("EXTRA_REGIONS", "eu-west-1")])).unwrap_err().to_string();
        assert!(e.contains("EXTRA_REGION_KMS_KEYS") && e.contains("eu-west-1"), "{e}");
        let ok = Config::from_env(&env(&[
            ("EXTRA_REGIONS", "eu-west-1,ap-southeast-2,us-west-2,ca-central-1"),
            ("EXTRA_REGION_KMS_KEYS", "eu-west-1=k1,ap-southeast-2=k2,us-west-2=k3,ca-central-1=k4"),
        ]))
        .unwrap();
        assert_eq!(ok.extra_regions.len(), 4, "no limit of three regions");
        assert_eq!(ok.extra_regions[1], ("ap-southeast-2".to_string(), "k2".to_string()));
    }

    #[test]
    fn option_groups_map_a_group_per_extra_region() {
        let regions = [("EXTRA_REGIONS", "eu-west-1"), ("EXTRA_REGION_KMS_KEYS", "eu-west-1=k")];
        let with = |value: &'static str| {
            let mut vars = regions.to_vec();
            vars.push(("OPTION_GROUPS", value));
            Config::from_env(&env(&vars))
        };
        let c = with("eu-west-1:orders-tz=orders-tz-dr").unwrap();
        let mapping = OptionGroupMapping {
            region: "eu-west-1".into(),
            source: "orders-tz".into(),
            destination: "orders-tz-dr".into(),
        };
        assert_eq!(c.option_groups, [mapping]);
        for (value, want) in [
            ("us-west-2:a=b", "us-west-2 is not one of EXTRA_REGIONS"),
            ("eu-west-1:a", "expected region:source=destination"),
            ("eu-west-1", "expected region:source=destination"),
            ("eu-west-1:a=b_c", "letters, digits and hyphens"),
            ("eu-west-1:a=b,eu-west-1:a=c", "a is mapped twice for eu-west-1"),
        ] {
            let e = with(value).unwrap_err().to_string();
            assert!(e.contains("OPTION_GROUPS") && e.contains(want), "{value}: {e}");
        }
    }

    #[test]
    fn the_allowlist_is_required() {
        let e = Config::from_env(&Env::from_pairs(STEP, [("QUEUE_URL", "q"), ("DLQ_URL", "d")]).unwrap()).unwrap_err();
        assert!(e.to_string().contains("SOURCE_ACCOUNTS"), "{e}");
    }
}
