//! A snapferry copy: what both steps that copy (share-snapshot's re-encrypting copy in a
//! source account, copy-shared-snapshot's into the backup account) do around the copy
//! call. Taking a free slot of the [`Slots`] in the copy ledger, atomically and within the
//! source's [`Budget`], or saying when to look again ([`Copier::take_slot`], the timing of
//! [`crate::slots`]), giving it back when the copy ends ([`Copier::ended`]), timing
//! share-snapshot's refusal for copies in progress ([`Copier::refused`]), the line's order,
//! fair across sources ([`fair`]), making a failed copy again a bounded number of times
//! ([`Copier::again`]), the re-check that backs up AWS's announcement of its end
//! ([`Copier::recheck`]), and a full snapshot count quota ([`Copier::quota_full`]).
//! [`StepContext`] keeps the ports and settings; the policy is here.

use crate::ResourceKind;
use crate::config::Env;
use crate::error::{Error, Result};
use crate::events::{PipelineEvent, Recheck};
use crate::kinds::CopyCompletion;
use crate::ledger::{Book, Claim, Entry, Pool, State as LedgerState, Taken};
use crate::lineage::Lineage;
use crate::slots;
use crate::sqs::Outcome;
use crate::step::StepContext;
use crate::store::{CopyRequest, Snapshot, SnapshotStore, Status, default_copy_slots};
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
/// Copies past their estimated end looked up, at most, each time a copy finds every slot
/// taken: the calls a look costs stay the same however many copies are in progress.
const LOOKUPS_PER_LOOK: usize = 2;

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

/// A copy asking the ledger for a slot.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The copy's name.
    pub copy: &'a str,
    /// Its source account, as AWS reports it.
    pub source: &'a str,
    /// The handling that asks: its SQS message id.
    pub by: &'a str,
    /// When the snapshot it copies was taken: its place in the line.
    pub taken_at: Option<DateTime<Utc>>,
    /// Slots of its kind in its region.
    pub slots: usize,
    pub budget: &'a Budget,
}

/// The ledger's copies in progress, as the slot timing reads copies in progress: AWS's
/// progress figure is not read (that would be a call per copy), so the copy time decides.
fn in_progress(book: &Book) -> Vec<crate::store::CopyInProgress> {
    book.copying()
        .map(|(e, started_at)| crate::store::CopyInProgress {
            id: e.copy.clone(),
            started_at: Some(started_at),
            percent: None,
            source: Some(e.source.clone()),
        })
        .collect()
}

/// What [`Copier::take_slot`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// A slot: this handling makes the copy.
    Slot,
    /// Another handling holds the copy's slot and makes it (and its re-checks follow it):
    /// this one makes nothing, or EBS, which has no name to refuse a second copy by, would
    /// hold two.
    Elsewhere,
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

    /// AWS refused share-snapshot's re-encrypting copy for copies in progress (its own, or
    /// other tools'): where the kind's API lists the copies in progress alone (EBS), it comes
    /// back when the first of them should end; elsewhere (RDS lists snapshots by no state,
    /// and finding them would list every snapshot of the account) the backoff decides. The
    /// copies waiting there are all one account's, so there is no line to keep fair, and
    /// AWS's refusal of all but one of those that come back at once times the others again.
    pub async fn refused(&self, store: &dyn SnapshotStore, copied: Result<Snapshot>) -> Result<Snapshot> {
        match copied {
            Err(e) if e.retry() == Some(crate::error::Retry::QuotaExceeded) => match store.pending_copies().await {
                Ok(Some(in_progress)) if !in_progress.is_empty() => {
                    let slots = in_progress.len();
                    let moment = slots::moment(self.ctx.now(), &in_progress, slots, 0, self.ctx.env.recheck);
                    let after = slots::delay_before(self.ctx.now(), moment);
                    // This step keeps no line: the copy is the next to go.
                    let message = format!(
                        "{slots} of {slots} {} copy slots in {} taken, 1 copies waiting, this one 1",
                        store.kind(),
                        store.region()
                    );
                    info!(after_s = after.as_secs(), message, "copy slots full; looking again later");
                    Err(Error::SlotsFull { after, message })
                }
                // Nothing to time the wait by: the backoff decides.
                _ => Err(e),
            },
            other => other,
        }
    }

    /// Takes one of `a.slots` slots of `store`'s kind and region in the copy ledger for
    /// `a.copy`, within its source's budget, atomically (of two invocations racing for the
    /// last slot, one gets it). The ledger answers without listing the account: one `Query`
    /// and one `TransactWriteItems` a look, however many snapshots the account holds.
    ///
    /// A source holding all the copies it may is refused ([`Error::Rejected`], naming the
    /// budget). With every slot taken (or the source's copies in flight at its budget) the
    /// copy joins the line in the ledger and [`Error::SlotsFull`] says when to look again;
    /// a turn due within the second is waited for here (SQS times whole seconds only),
    /// within [`slots::HANDOVER_BUDGET`].
    pub async fn take_slot(&self, store: &dyn SnapshotStore, a: &Admission<'_>) -> Result<Admitted> {
        let ledger = self.ctx.ledger.as_ref();
        let pool = Pool::new(store.kind(), store.region());
        let first = self.ctx.now();
        // In the line before it looks: copies asking at once then see each other, and each
        // gets a moment of its own. Taking a slot takes it out of the line.
        let waiting = Entry {
            copy: a.copy.to_string(),
            source: a.source.to_string(),
            state: LedgerState::Waiting { since: first, taken_at: a.taken_at },
        };
        ledger.wait(&pool, &waiting).await?;
        loop {
            let book = ledger.book(&pool).await?;
            let mine = book.source(a.source);
            let budget = a.budget;
            // A share holds only while another source's copy waits; a cap always.
            let others_wait = book.waiting().any(|(e, _)| e.source != a.source);
            let in_flight = (budget.in_flight_cap || others_wait).then_some(budget.in_flight);
            let claim = Claim {
                copy: a.copy,
                source: a.source,
                by: a.by,
                slots: a.slots,
                held: budget.held,
                in_flight,
                now: self.ctx.now(),
            };
            match ledger.take(&pool, &claim).await? {
                Taken::Slot | Taken::Already => return Ok(Admitted::Slot),
                Taken::Elsewhere => return Ok(Admitted::Elsewhere),
                Taken::HeldFull => {
                    ledger.unwait(&pool, a.copy).await?;
                    return Err(Error::Rejected(format!(
                        "source {} holds {} {} copies in {}, its budget (COPIES_HELD_PER_SOURCE) is {}",
                        a.source,
                        mine.held.max(budget.held.unwrap_or_default()),
                        store.kind(),
                        store.region(),
                        budget.held.unwrap_or_default()
                    )));
                }
                Taken::InFlightFull => {
                    let own: Vec<_> =
                        in_progress(&book).into_iter().filter(|c| c.source.as_deref() == Some(a.source)).collect();
                    let after = slots::next_look(self.ctx.now(), &own, own.len().max(1), 0, self.copy_time(&book));
                    let message = format!(
                        "source {} has {} {} copies in progress into {}, its budget (COPIES_IN_FLIGHT_PER_SOURCE) is {}",
                        a.source,
                        mine.in_flight,
                        store.kind(),
                        store.region(),
                        budget.in_flight
                    );
                    info!(
                        after_s = after.as_secs(),
                        message, "source's copies in flight at its budget; looking again later"
                    );
                    return Err(Error::SlotsFull { after, message });
                }
                Taken::SlotsFull => {
                    if self.free_ended(store, &pool, &book).await? > 0 {
                        continue;
                    }
                    let turn = self.booked_turn(&book, a);
                    let now = self.ctx.now();
                    let wait = (turn.moment - now).to_std().unwrap_or_default().max(slots::LOOK_AGAIN);
                    let spent = (now - first).to_std().unwrap_or_default();
                    if turn.moment - now >= chrono::Duration::from_std(slots::HANDOVER).unwrap_or_default()
                        || spent + wait > slots::HANDOVER_BUDGET
                    {
                        let after = slots::delay_before(now, turn.moment);
                        let message = format!(
                            "{} of {} {} copy slots in {} taken, {} copies waiting, this one {}",
                            book.in_flight,
                            a.slots,
                            store.kind(),
                            store.region(),
                            turn.waiting,
                            turn.rank + 1
                        );
                        info!(after_s = after.as_secs(), message, "copy slots full; looking again later");
                        return Err(Error::SlotsFull { after, message });
                    }
                    debug!(
                        copy = a.copy,
                        wait_ms = wait.as_millis(),
                        "copy slot due within the second; waiting for it here"
                    );
                    self.ctx.wait(wait).await;
                }
            }
        }
    }

    /// How long a copy takes here: the last one's time, else the re-check interval.
    fn copy_time(&self, book: &Book) -> Duration {
        book.copy_time.unwrap_or(self.ctx.env.recheck)
    }

    /// Where `a.copy` stands in the ledger's line, fair across sources, and when its slot frees.
    fn booked_turn(&self, book: &Book, a: &Admission<'_>) -> Turn {
        let mut line: Vec<Waiting> = book
            .waiting()
            .map(|(e, taken_at)| Waiting { source: e.source.clone(), at: taken_at, name: e.copy.clone() })
            .collect();
        if !line.iter().any(|w| w.name == a.copy) {
            line.push(Waiting { source: a.source.to_string(), at: a.taken_at, name: a.copy.to_string() });
        }
        let in_flight = book.sources.iter().map(|(s, c)| (s.clone(), c.in_flight)).collect();
        let line = fair(line, &in_flight);
        let rank = line.iter().position(|w| w.name == a.copy).unwrap_or(line.len());
        let moment = slots::moment(self.ctx.now(), &in_progress(book), a.slots, rank, self.copy_time(book));
        Turn { rank, waiting: line.len().max(rank + 1), moment }
    }

    /// Frees the slots of copies in `book` past their estimated end that AWS no longer
    /// makes: a copy's end is normally recorded by the step that follows it, but that may lag
    /// (or its message be lost), and the slot would stay taken till the hourly correction.
    /// Looked up by name, the oldest first, at most [`LOOKUPS_PER_LOOK`] a look, and only
    /// while every slot is taken. Returns how many were freed.
    async fn free_ended(&self, store: &dyn SnapshotStore, pool: &Pool, book: &Book) -> Result<usize> {
        let now = self.ctx.now();
        let copy_time = chrono::Duration::from_std(self.copy_time(book)).unwrap_or(chrono::Duration::MAX);
        let mut due: Vec<_> = book.copying().filter(|(_, started)| *started + copy_time <= now).collect();
        due.sort_by_key(|(_, started)| *started);
        let mut freed = 0;
        for (entry, started_at) in due.into_iter().take(LOOKUPS_PER_LOOK) {
            let ended = match store.find(&entry.copy).await? {
                Some(copy) => copy.status != Status::Creating,
                // Not there past its end: its copy call failed, or it was deleted.
                None => true,
            };
            if ended && self.ctx.ledger.release(pool, &entry.copy, &entry.source, None).await? {
                info!(copy = entry.copy, %started_at, "a copy's end was not recorded yet; its slot freed");
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// The copy call after [`Copier::take_slot`]: a refusal for copies in progress (other
    /// tools' copies hold AWS's slots) gives the slot back and puts the copy in the line
    /// for a look after a copy time; any other failure gives the slot back too.
    pub async fn copy_called(
        &self,
        store: &dyn SnapshotStore,
        a: &Admission<'_>,
        copied: Result<Snapshot>,
    ) -> Result<Snapshot> {
        let pool = Pool::new(store.kind(), store.region());
        let e = match copied {
            Ok(copy) => return Ok(copy),
            Err(e) => e,
        };
        self.ctx.ledger.release(&pool, a.copy, a.source, None).await?;
        if e.retry() != Some(crate::error::Retry::QuotaExceeded) {
            return Err(e);
        }
        let entry = Entry {
            copy: a.copy.to_string(),
            source: a.source.to_string(),
            state: LedgerState::Waiting { since: self.ctx.now(), taken_at: a.taken_at },
        };
        self.ctx.ledger.wait(&pool, &entry).await?;
        // Timed by our copies in progress where there are any, else a copy time from now.
        let book = self.ctx.ledger.book(&pool).await?;
        let busy = in_progress(&book);
        let after = if busy.is_empty() {
            slots::whole_seconds_up(self.copy_time(&book)).clamp(Duration::from_secs(1), MAX_DELAY)
        } else {
            let moment = slots::moment(self.ctx.now(), &busy, busy.len(), 0, self.copy_time(&book));
            slots::delay_before(self.ctx.now(), moment)
        };
        let message =
            format!("AWS refused the {} copy into {} for copies in progress: {e}", store.kind(), store.region());
        info!(after_s = after.as_secs(), message, "copy refused; looking again later");
        Err(Error::SlotsFull { after, message })
    }

    /// Whether the handling `by` follows `copy` (ours, in progress) with its re-checks: the
    /// one whose claim holds its slot in the ledger does; where none holds it (made before
    /// the ledger knew it), a handling of a message delivered again (`again`: its first
    /// handling may have died before sending its re-check) does.
    pub async fn follows(&self, copy: &Snapshot, by: &str, again: bool) -> Result<bool> {
        let pool = Pool::new(copy.kind, &copy.region);
        Ok(match self.ctx.ledger.holder(&pool, &copy.name).await? {
            Some(holder) => holder == by,
            None => again,
        })
    }

    /// `copy` (of ours) ended: its slot in the ledger frees. A copy that was made teaches the
    /// ledger how long a copy takes here.
    pub async fn ended(&self, copy: &Snapshot) -> Result<()> {
        let pool = Pool::new(copy.kind, &copy.region);
        let took = match copy.status {
            Status::Available => {
                // A copy's creation time is its start (RDS's SnapshotCreateTime, EBS's StartTime).
                copy.created_at.and_then(|s| (self.ctx.now() - s).to_std().ok())
            }
            _ => None,
        };
        // The source its lineage records: our own tag, written from what AWS reported.
        let Some(source) = Lineage::of(copy).source_account() else { return Ok(()) };
        self.ctx.ledger.release(&pool, &copy.name, source, took).await.map(drop)
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
        // Into another region, the option group the failed copy was given there.
        let cross_region = source_region.is_some_and(|r| r != store.region());
        let own_group = failed.option_group.as_deref().filter(|g| !g.starts_with("default:"));
        let option_group = own_group.filter(|_| cross_region);
        // From another account (a home copy), the option group comes along, as the first time.
        let copy_option_group = own_group.is_some() && !cross_region;
        let request = CopyRequest {
            source,
            source_region,
            target_id: &failed.name,
            kms_key_id,
            tags: &again,
            option_group,
            copy_option_group,
        };
        store.copy(&request).await
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
