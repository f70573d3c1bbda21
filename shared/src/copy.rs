//! A snapferry copy: what both steps that copy (share-snapshot's re-encrypting copy in a
//! source account, copy-shared-snapshot's into the backup account) do around the copy
//! call. Admitting a copy into a free slot of the [`Slots`] or saying when to look again
//! ([`Copier::admit`], the line of [`crate::slots`]; share-snapshot's line is [`Unlisted`]),
//! timing a refusal for copies in progress ([`Copier::refused`]), the line's order, fair
//! across sources ([`fair`]), making a failed copy again a bounded number of times
//! ([`Copier::again`]), the re-check that backs up AWS's announcement of its end
//! ([`Copier::recheck`]), and a full snapshot count quota ([`Copier::quota_full`]).
//! [`StepContext`] keeps the ports and settings; the policy is here.

use crate::ResourceKind;
use crate::config::Env;
use crate::error::{Error, Result};
use crate::events::{PipelineEvent, Recheck};
use crate::kinds::CopyCompletion;
use crate::lineage::Lineage;
use crate::slots;
use crate::sqs::Outcome;
use crate::step::StepContext;
use crate::store::{Copies, CopyRequest, Snapshot, SnapshotStore, Status, default_copy_slots};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tracing::{debug, info, warn};

/// How many times in all a copy is made when AWS reports it failed, before the failure
/// is reported: a copy fails for transient reasons too (RDS-EVENT-0190 / 0061 say only
/// "canceled"), but one that keeps failing needs a person.
pub const MAX_COPY_ATTEMPTS: u32 = 3;

/// How much longer than [`crate::step::StepEnv::recheck`] a step waits before looking at a
/// copy whose end AWS announces: the event normally comes first, the re-check only backs it up.
const BACKSTOP_FACTOR: u32 = 10;
/// SQS delays a message by at most 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(900);

/// A copy waiting for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Whose copy it is: the source account, as AWS reports it.
    pub source: String,
    /// When the snapshot it copies was taken.
    pub at: Option<DateTime<Utc>>,
    /// The name its copy will have.
    pub name: String,
}

/// The copies waiting for a store's slots, as the step that copies into it sees them.
#[async_trait::async_trait]
pub trait Line: Sync {
    /// The copies into `store` that wait for its slots, as AWS shows them, named as their
    /// copies will be (those already there are left out by the caller), in any order.
    async fn waiting(&self, store: &dyn SnapshotStore) -> Result<Vec<Waiting>>;
}

/// The line in the order slots go: round by round, one copy of each source a round (its
/// oldest first), the older first within a round; a source's copies in progress
/// (`in_flight`) are rounds it has had already. A source that shares a backlog of old
/// snapshots takes one slot a round, not every freed slot: another source's copy waits at
/// most one copy per other waiting source.
pub fn fair(mut waiting: Vec<Waiting>, in_flight: &std::collections::BTreeMap<String, usize>) -> Vec<Waiting> {
    waiting.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
    let mut rounds: std::collections::BTreeMap<String, usize> = in_flight.clone();
    let mut ranked: Vec<(usize, Waiting)> = waiting
        .into_iter()
        .map(|w| {
            let round = rounds.entry(w.source.clone()).or_default();
            *round += 1;
            (*round, w)
        })
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| (ra, a.at, &a.name).cmp(&(rb, b.at, &b.name)));
    ranked.into_iter().map(|(_, w)| w).collect()
}

/// What one source may have in one store of the backup account: copies held (`None`: no
/// limit) and copies in progress at once. One source's flood then fills neither the
/// account's snapshot quota nor its copy slots for the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// The source account, as AWS reports it.
    pub source: String,
    pub held: Option<usize>,
    pub in_flight: usize,
    /// Whether `in_flight` holds while no other source waits. Set by the operator, a cap;
    /// the default (the source's share of the slots) is a share: a source alone uses every
    /// free slot, and keeps to its share as soon as another source's copy waits.
    pub in_flight_cap: bool,
}

/// How many copies of each kind AWS runs at once into one region of an account
/// (`COPY_SLOTS`, `kind=count,...`), where not AWS's default (the kinds table's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots(pub Vec<(ResourceKind, usize)>);

impl Slots {
    pub fn from_env(env: &Env) -> Result<Slots> {
        env.list("COPY_SLOTS")
            .iter()
            .map(|pair| {
                let bad = || Error::Config(format!("COPY_SLOTS has {pair:?}; expected kind=count, e.g. db-cluster=5"));
                let (kind, n) = pair.split_once('=').ok_or_else(bad)?;
                let kind: ResourceKind = kind.trim().parse().map_err(|_| bad())?;
                let n: usize = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
                Ok((kind, n))
            })
            .collect::<Result<_>>()
            .map(Slots)
    }

    /// How many copies of `kind` may be in progress into one region at once.
    pub fn of(&self, kind: ResourceKind) -> usize {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n).unwrap_or_else(|| default_copy_slots(kind))
    }
}

/// The line of a step that keeps none: share-snapshot's re-encrypting copies are all one
/// source account's, so there is no fairness to keep, and listing them (the account's
/// automated snapshots with no copy yet) would cost a listing on every look. Each copy
/// waiting takes itself for the next: it comes back when the first copy in progress should
/// end, and AWS's refusal of all but one of those that come back at once times the others
/// again ([`Copier::refused`]).
pub struct Unlisted;

#[async_trait::async_trait]
impl Line for Unlisted {
    async fn waiting(&self, _store: &dyn SnapshotStore) -> Result<Vec<Waiting>> {
        Ok(Vec::new())
    }
}

/// A waiting copy's place in the line for its region's slots.
#[derive(Debug, Clone, Copy)]
struct Turn {
    /// 0: the next to get a slot.
    rank: usize,
    /// Copies waiting, this one included.
    waiting: usize,
    /// When its slot should free.
    moment: DateTime<Utc>,
}

/// A step's copy policy, acting through its context's ports.
#[derive(Clone, Copy)]
pub struct Copier<'a> {
    ctx: &'a StepContext,
}

impl<'a> Copier<'a> {
    pub fn new(ctx: &'a StepContext) -> Self {
        Copier { ctx }
    }

    /// Returns once one of the `slots` of `store`'s kind is free in its region, or `target`
    /// is there already (asked again, AWS answers with it). A copy whose turn comes within
    /// the second waits for it here (SQS times whole seconds only), looking again until its
    /// slot frees, within [`slots::HANDOVER_BUDGET`]. Otherwise [`Error::SlotsFull`], naming
    /// when to look again. While it waits, the other records of its batch go on
    /// ([`StepContext::wait`]).
    ///
    /// Within `budget` first, from the same listing: a source holding all the copies it may
    /// is refused ([`Error::Rejected`], naming the budget); one with all the copies it may
    /// have in progress waits for one of its own to end, as for a full slot.
    pub async fn admit(
        &self,
        store: &dyn SnapshotStore,
        slots: usize,
        target: &str,
        line: &dyn Line,
        budget: Option<&Budget>,
    ) -> Result<()> {
        let first = self.ctx.now();
        loop {
            let copies = store.copies().await?;
            if copies.names.contains(target) {
                return Ok(());
            }
            if let Some(budget) = budget {
                self.within_held(store, &copies, budget)?;
            }
            if copies.in_progress.len() < slots {
                // A free slot, unless the source has all the copies in progress it may:
                // then it waits for one of its own. With every slot taken the line times it.
                return match budget {
                    Some(budget) => self.within_in_flight(store, &copies, budget, line).await,
                    None => Ok(()),
                };
            }
            let turn = self.turn(store, &copies, slots, target, line).await;
            let now = self.ctx.now();
            let wait = (turn.moment - now).to_std().unwrap_or_default().max(slots::LOOK_AGAIN);
            let spent = (now - first).to_std().unwrap_or_default();
            if turn.moment - now >= chrono::Duration::from_std(slots::HANDOVER).unwrap_or_default()
                || spent + wait > slots::HANDOVER_BUDGET
            {
                return Err(self.slots_full(store, &copies, slots, &turn));
            }
            debug!(copy = target, wait_ms = wait.as_millis(), "copy slot due within the second; waiting for it here");
            self.ctx.wait(wait).await;
        }
    }

    /// Whether `budget`'s source may hold one copy more in `store`.
    fn within_held(&self, store: &dyn SnapshotStore, copies: &Copies, budget: &Budget) -> Result<()> {
        let mine = copies.by_source.get(&budget.source).copied().unwrap_or_default();
        if let Some(held) = budget.held
            && mine.held >= held
        {
            return Err(Error::Rejected(format!(
                "source {} holds {} {} copies in {}, its budget (COPIES_HELD_PER_SOURCE) is {held}",
                budget.source,
                mine.held,
                store.kind(),
                store.region()
            )));
        }
        Ok(())
    }

    /// Whether `budget`'s source may have one copy more in progress into `store`: below its
    /// budget, or past a share (not a cap) while no other source's copy waits in `line`, so
    /// no slot stands idle for fairness to nobody.
    async fn within_in_flight(
        &self,
        store: &dyn SnapshotStore,
        copies: &Copies,
        budget: &Budget,
        line: &dyn Line,
    ) -> Result<()> {
        let mine = copies.by_source.get(&budget.source).copied().unwrap_or_default();
        if mine.in_flight >= budget.in_flight && !budget.in_flight_cap {
            // Without the line (its listing failed), as if another source waited.
            let others = match line.waiting(store).await {
                Ok(waiting) => waiting.iter().any(|w| w.source != budget.source && !copies.names.contains(&w.name)),
                Err(_) => true,
            };
            if !others {
                debug!(
                    source = budget.source,
                    in_flight = mine.in_flight,
                    "past its share, no other source waiting: a free slot is taken"
                );
                return Ok(());
            }
        }
        if mine.in_flight >= budget.in_flight {
            let own: Vec<_> =
                copies.in_progress.iter().filter(|c| c.source.as_ref() == Some(&budget.source)).cloned().collect();
            let after = slots::next_look(self.ctx.now(), &own, own.len().max(1), 0, self.ctx.env.recheck);
            let message = format!(
                "source {} has {} {} copies in progress into {}, its budget (COPIES_IN_FLIGHT_PER_SOURCE) is {}",
                budget.source,
                mine.in_flight,
                store.kind(),
                store.region(),
                budget.in_flight
            );
            info!(after_s = after.as_secs(), message, "source's copies in flight at its budget; looking again later");
            return Err(Error::SlotsFull { after, message });
        }
        Ok(())
    }

    /// AWS refused a copy for copies in progress (other tools' copies, or another
    /// invocation took the last slot first): the wait is scheduled as for a full look.
    pub async fn refused(
        &self,
        store: &dyn SnapshotStore,
        target: &str,
        copied: Result<Snapshot>,
        line: &dyn Line,
    ) -> Result<Snapshot> {
        match copied {
            Err(e) if e.retry() == Some(crate::error::Retry::QuotaExceeded) => match store.copies().await {
                Ok(copies) if !copies.in_progress.is_empty() => {
                    let slots = copies.in_progress.len();
                    let turn = self.turn(store, &copies, slots, target, line).await;
                    Err(self.slots_full(store, &copies, slots, &turn))
                }
                // Nothing to time the wait by: the backoff decides.
                _ => Err(e),
            },
            other => other,
        }
    }

    /// Where `target` stands in the line for `store`'s slots, and when its slot frees.
    async fn turn(
        &self,
        store: &dyn SnapshotStore,
        copies: &Copies,
        slots: usize,
        target: &str,
        line: &dyn Line,
    ) -> Turn {
        // Without the line (the listing failed) this copy takes itself for the next: it
        // comes back when the first copy ends, and looks again from there. Not in it (the
        // listing is older than the snapshot), it goes to its end.
        let mut waiting = line.waiting(store).await.unwrap_or_default();
        waiting.retain(|w| !copies.names.contains(&w.name));
        let in_flight = copies.by_source.iter().map(|(s, c)| (s.clone(), c.in_flight)).collect();
        let waiting = fair(waiting, &in_flight);
        let rank = waiting.iter().position(|w| w.name == target).unwrap_or(waiting.len());
        let moment = slots::moment(self.ctx.now(), &copies.in_progress, slots, rank, self.ctx.env.recheck);
        Turn { rank, waiting: waiting.len().max(rank + 1), moment }
    }

    /// Every slot taken: back within the second before its turn, by SQS's delay.
    fn slots_full(&self, store: &dyn SnapshotStore, copies: &Copies, slots: usize, turn: &Turn) -> Error {
        let after = slots::delay_before(self.ctx.now(), turn.moment);
        let message = format!(
            "{} of {slots} {} copy slots in {} taken, {} copies waiting, this one {}",
            copies.in_progress.len(),
            store.kind(),
            store.region(),
            turn.waiting,
            turn.rank + 1
        );
        info!(after_s = after.as_secs(), message, "copy slots full; looking again later");
        Error::SlotsFull { after, message }
    }

    /// Makes `failed` (a copy of ours AWS reports failed) again from `source`, under the
    /// same name and with the same lineage: the failed one is deleted first, since the name
    /// is deterministic. Past [`MAX_COPY_ATTEMPTS`] an [`Error::CopyFailed`] with AWS's
    /// reason instead, for the caller to report.
    pub async fn again(
        &self,
        store: &dyn SnapshotStore,
        failed: &Snapshot,
        source: &str,
        source_region: Option<&str>,
        kms_key_id: Option<&str>,
    ) -> Result<Snapshot> {
        let why = match &failed.status {
            Status::Failed(why) => why.clone(),
            _ => return Ok(failed.clone()),
        };
        let lineage = Lineage::of(failed);
        let attempt = lineage.copy_attempt();
        if attempt >= MAX_COPY_ATTEMPTS {
            return Err(Error::CopyFailed {
                op: "copy",
                message: format!("{} failed {attempt} times; the last time: {why}", failed.arn),
                hint: Some("look at the copy's events in the RDS console; replay the message to try once more"),
            });
        }
        // Two invocations may see the same failure at once (its re-check and AWS's event, or
        // a message delivered twice): the one that comes second finds the copy made again
        // under the same name and follows it, instead of deleting it.
        match store.describe(&failed.id).await? {
            Some(now) if !matches!(now.status, Status::Failed(_)) || Lineage::of(&now).copy_attempt() > attempt => {
                info!(copy_arn = now.arn, "made again already by another invocation; following it");
                return Ok(now);
            }
            _ => {}
        }
        warn!(copy_arn = failed.arn, attempt, why, "copy failed; making it again");
        store.delete(failed).await?;
        let again = crate::lineage::made_again(&lineage, self.ctx.now());
        store.copy(&CopyRequest { source, source_region, target_id: &failed.name, kms_key_id, tags: &again }).await
    }

    /// The outcome "look at `copy`, in progress into `store`, again later": every copy
    /// waited for is re-checked, and where AWS announces its end the re-check is only a
    /// backstop for a lost event (AWS delivers events best effort), so it comes later. A
    /// copy that says how far it is is looked at when it should end, no sooner: a handful
    /// of looks where a copy of an hour would take 120 at the re-check interval.
    ///
    /// No later, either, than the copy's age again: a progress figure can mislead (an EBS
    /// copy can sit at 1 % and then jump), and one early figure can put the end many times
    /// too far. Capped so, a wrong estimate costs at most the time the copy has taken so
    /// far, and the looks at a long copy come at doubling ages.
    pub fn recheck(&self, store: &dyn SnapshotStore, copy: &Snapshot, recheck: Recheck) -> Result<Outcome> {
        let base = match store.copy_completion() {
            CopyCompletion::Event => self.ctx.env.recheck.saturating_mul(BACKSTOP_FACTOR).min(MAX_DELAY),
            CopyCompletion::Recheck => self.ctx.env.recheck,
        };
        let now = self.ctx.now();
        let progress = copy.as_in_progress();
        let whole_seconds = |d: chrono::Duration| d.to_std().ok().map(slots::whole_seconds_up);
        let ends_in = progress.ends_at(now).and_then(|end| whole_seconds(end - now));
        let age = progress.started_at.and_then(|start| whole_seconds(now - start)).unwrap_or_default();
        let delay = ends_in.map_or(base, |d| d.min(age).max(base)).min(MAX_DELAY);
        debug!(copy = copy.id, started_at = ?progress.started_at, percent = ?progress.percent, delay_s = delay.as_secs(), "copy re-checked later");
        self.ctx.recheck_after(recheck, delay)
    }

    /// A snapshot count quota is full: `rejected` (a Snapshot Rejected event saying so) is
    /// published at once and the stacks' alarm metric counted for `step`; the error comes
    /// back, so the message is dead-lettered with its reason instead of being retried into
    /// a quota that only deleting snapshots (or raising it) clears.
    pub async fn quota_full(&self, step: &str, rejected: PipelineEvent, error: Error) -> Error {
        count_quota_full(self.ctx, step);
        match self.ctx.publish(&[rejected]).await {
            Ok(()) => error,
            Err(e) => e,
        }
    }
}

/// Counts a full snapshot count quota for `step` (the stacks alarm on it).
pub fn count_quota_full(ctx: &StepContext, step: &str) {
    ctx.metrics.count(&crate::routing::Routing::load().metrics.quota_full, step);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_takes_one_copy_of_each_source_a_round() {
        let at = |m: i64| Some(DateTime::<Utc>::from_timestamp(1_800_000_000 + m * 60, 0).unwrap());
        let w = |source: &str, m: i64, name: &str| Waiting { source: source.into(), at: at(m), name: name.into() };
        // A flood of old shares from one source, then two of another's.
        let mut line: Vec<Waiting> = (0..5).map(|i| w("444444444444", i, &format!("flood-{i}"))).collect();
        line.push(w("111111111111", 100, "honest-1"));
        line.push(w("111111111111", 101, "honest-2"));
        let order: Vec<String> = fair(line.clone(), &Default::default()).into_iter().map(|w| w.name).collect();
        assert_eq!(order, ["flood-0", "honest-1", "flood-1", "honest-2", "flood-2", "flood-3", "flood-4"]);
        // The flood holds the only slot already: the other source's copy is next, not its next.
        let holding = std::collections::BTreeMap::from([("444444444444".to_string(), 1)]);
        let order: Vec<String> = fair(line, &holding).into_iter().map(|w| w.name).collect();
        assert_eq!(order, ["honest-1", "flood-0", "honest-2", "flood-1", "flood-2", "flood-3", "flood-4"]);
    }
}
