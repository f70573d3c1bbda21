//! Copy slots. AWS runs only so many copies of a kind into one region of an account at once
//! (20 DB instance snapshot copies, 5 Aurora cluster snapshot copies, 20 EBS snapshot
//! copies) and refuses the next with `SnapshotQuotaExceeded` / `ResourceLimitExceeded`. A
//! refusal costs a call and says nothing about when to come back, so blind retries with a
//! backoff either hammer a full quota or leave slots idle while work waits.
//!
//! Instead the step looks at the copies in progress before it starts one. When every slot
//! is taken it works out when slots will free: each copy in progress ends at about
//! `start + elapsed x 100 / percent` (below [`SETTLED_PERCENT`], at its start plus the copy
//! time of those further on), and after those ends a slot frees once per copy time.
//! The copies waiting for these slots, as AWS shows them, form a line, oldest first; the
//! copy `rank` places in it comes back at the `rank`-th moment a slot frees. Every waiter
//! computes the same line from the same listing, so each moment has one waiter: the slot
//! is taken as soon as it frees, and no two waiters ask for it in the same instant. A
//! waiter that comes back to a full quota (an estimate was early) only looks, and takes its
//! place in the line again, now nearer its head.
//!
//! SQS delays a message by whole seconds, so a waiter timed by SQS alone takes its slot
//! half a second late on average. The copy step's waiter comes back within the second
//! before its moment ([`delay_before`]) and waits out the rest itself, bounded by
//! [`HANDOVER_BUDGET`], looking again after [`LOOK_AGAIN`], or after as long as the copy
//! it waits for is late, until the slot frees.

use crate::store::CopyInProgress;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The soonest a waiter comes back: a copy estimated to end in the past is about to.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// SQS delays a message by at most 15 minutes; a longer wait is several looks.
const MAX_WAIT: Duration = Duration::from_secs(900);

/// A waiter whose moment is nearer than this waits for it in its handler: SQS cannot time
/// less than a second.
pub const HANDOVER: Duration = Duration::from_secs(1);
/// The most one message waits in its handler for its slot, in all (a Lambda second costs
/// less than the slot it keeps busy; a wrong estimate goes back to SQS). The records of a
/// batch wait at once, so a batch waits about as long, well within the copy step's timeout
/// (`shared/routing.json`).
pub const HANDOVER_BUDGET: Duration = Duration::from_secs(2);
/// How soon a waiter whose moment has come, to a slot still taken, looks again.
pub const LOOK_AGAIN: Duration = Duration::from_millis(250);

/// When a copy that found every one of `slots` taken by `busy` should look again, as an
/// SQS delay: rounded up to whole seconds, so it comes a little after its [`moment`]
/// rather than just before it, to a slot still taken.
pub fn next_look(
    now: DateTime<Utc>,
    busy: &[CopyInProgress],
    slots: usize,
    rank: usize,
    fallback: Duration,
) -> Duration {
    let wait = (moment(now, busy, slots, rank, fallback) - now).to_std().unwrap_or_default();
    whole_seconds_up(wait).clamp(MIN_WAIT, MAX_WAIT)
}

/// `d` as SQS can delay a message: in whole seconds, rounded up, so a look comes just after
/// the moment it is timed for rather than just before it.
pub fn whole_seconds_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// The SQS delay of a waiter that waits out the last of its wait itself: the whole seconds
/// to its `moment`, rounded down, so the message arrives within the second before it.
pub fn delay_before(now: DateTime<Utc>, moment: DateTime<Utc>) -> Duration {
    let wait = (moment - now).to_std().unwrap_or_default();
    Duration::from_secs(wait.as_secs()).clamp(MIN_WAIT, MAX_WAIT)
}

/// The moment a copy that found every one of `slots` taken by `busy` gets one. `rank` is
/// its place in the line of copies waiting for these slots (0: next); `fallback` is the
/// copy time assumed when no copy in progress reports how far it is.
pub fn moment(
    now: DateTime<Utc>,
    busy: &[CopyInProgress],
    slots: usize,
    rank: usize,
    fallback: Duration,
) -> DateTime<Utc> {
    let slots = slots.max(1);
    let copy_time = copy_time(now, busy).unwrap_or(fallback).max(MIN_WAIT);
    let tenth = chrono::Duration::from_std(copy_time / 10).unwrap_or(chrono::Duration::MAX);
    let mut ends: Vec<DateTime<Utc>> = busy
        .iter()
        .map(|c| match c.ends_at(now).filter(|_| settled(c)) {
            Some(end) => end,
            None => c.started_at.unwrap_or(now) + copy_time,
        })
        // A copy past its estimated end (stuck at 0 %, or slower than its figures said) is
        // looked at again after as long as it is late, so a stuck copy is not looked at
        // every second; at most a tenth of a copy time later, so a slot it frees late idles
        // that long at most.
        .map(|end| if end >= now { end } else { now + (now - end).min(tenth) })
        .collect();
    ends.sort();
    // With more copies in progress than slots (the quota was lowered, or others copy too),
    // a slot frees only when the surplus has ended as well.
    let frees: Vec<DateTime<Utc>> = ends.iter().skip(ends.len().saturating_sub(slots)).copied().collect();
    let frees = if frees.is_empty() { vec![now] } else { frees };
    // The waiters ahead take the slots as they free, then the copies they start free them
    // again a copy time later.
    let (slot, round) = (rank % frees.len(), rank / frees.len());
    frees[slot] + copy_time * u32::try_from(round).unwrap_or(u32::MAX)
}

/// Below this a copy's progress says little of its end: whole percents, counted from a
/// start that is the copy call's (a tenth of a second early is a tenth of the whole copy
/// at 1 %), and an EBS copy's first percents come unevenly. Such a copy is taken to last
/// as long as those further on, and only when none is does its own figure count.
const SETTLED_PERCENT: u8 = 10;

fn settled(copy: &CopyInProgress) -> bool {
    copy.percent.is_some_and(|p| p >= SETTLED_PERCENT)
}

/// How long a copy takes here: the median of the copies in progress that say how far they
/// are, of the settled ones when there are any.
fn copy_time(now: DateTime<Utc>, busy: &[CopyInProgress]) -> Option<Duration> {
    let median = |copies: Vec<&CopyInProgress>| {
        let mut totals: Vec<Duration> = copies.iter().filter_map(|c| c.duration(now)?.to_std().ok()).collect();
        totals.sort();
        totals.get(totals.len() / 2).copied()
    };
    median(busy.iter().filter(|c| settled(c)).collect()).or_else(|| median(busy.iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn copy(started: i64, percent: Option<u8>) -> CopyInProgress {
        CopyInProgress { id: format!("c{started}"), started_at: Some(at(started)), percent, source: None }
    }

    fn look(busy: &[CopyInProgress], slots: usize, rank: usize) -> u64 {
        next_look(at(100), busy, slots, rank, Duration::from_secs(30)).as_secs()
    }

    #[test]
    fn the_head_of_the_line_comes_back_when_the_first_copy_ends() {
        // Started at 0 and 50, each "50 %" at 100 s: at the soonest (as if 51 %) they end
        // 96 s and 48 s from now; SQS's whole seconds, rounded up.
        let busy = [copy(0, Some(50)), copy(50, Some(50))];
        assert_eq!(look(&busy, 2, 0), 49);
        assert_eq!(look(&busy, 2, 1), 97);
    }

    #[test]
    fn each_waiter_has_a_moment_of_its_own_in_the_order_of_the_line() {
        // Two slots; at the soonest (as if 51 % and 26 %), copies of 78.4 s and 76.9 s ending
        // 38.4 s and 56.9 s from now, then a slot frees every 78.4 s (the median copy time):
        // 38.4, 56.9, 116.9, 135.4, ... s from now.
        let busy = [copy(60, Some(50)), copy(80, Some(25))];
        let waits: Vec<u64> = (0..20).map(|rank| look(&busy, 2, rank)).collect();
        assert_eq!(waits[..4], [39, 57, 117, 136]);
        for (rank, wait) in waits.iter().enumerate() {
            let moment = [38.4, 56.9][rank % 2] + 78.4 * (rank / 2) as f64;
            assert!((*wait as f64 - moment.ceil()).abs() <= 1.0, "rank {rank}: {waits:?}");
        }
        assert!(waits.windows(2).all(|w| w[0] < w[1] || w[1] == 900), "one waiter per moment: {waits:?}");
    }

    #[test]
    fn copies_that_say_nothing_are_assumed_to_take_the_fallback_time() {
        // Fallback 30 s from their starts: they end 20 s and 25 s from now.
        let busy = [copy(90, None), copy(95, Some(0))];
        assert_eq!(look(&busy, 2, 0), 20);
        assert_eq!(look(&busy, 2, 1), 25);
    }

    #[test]
    fn with_more_copies_than_slots_a_slot_frees_only_when_the_surplus_ended() {
        // Three copies of about 100 s in progress (at the soonest ending at 109, 148 and
        // 196 s), quota lowered to 2: the first slot frees when the second copy ends.
        let busy = [copy(10, Some(90)), copy(50, Some(50)), copy(0, Some(50))];
        assert_eq!(look(&busy, 2, 0), 49);
    }

    #[test]
    fn an_overdue_estimate_looks_again_soon() {
        let busy = [copy(0, Some(99))];
        assert_eq!(look(&busy, 1, 0), 1);
    }

    #[test]
    fn a_copys_first_percents_do_not_time_its_end_while_others_say_more() {
        // One copy 50 % through after 100 s (at the soonest, 196.1 s in all); one started
        // 2 s ago, "1 %": by its own figure 100 s in all, ending 98 s from now, before the
        // first. It is taken to last as long as the first: the second slot frees 194.1 s
        // from now, not 98.
        let busy = [copy(0, Some(50)), copy(98, Some(1))];
        assert_eq!(look(&busy, 2, 0), 97);
        assert_eq!(look(&busy, 2, 1), 195);
        // With no copy further on, the first percents are all there is, and count: two
        // copies of 100 s ending 97 and 98 s from now, not the fallback's 30 s.
        let busy = [copy(98, Some(1)), copy(97, Some(2))];
        assert_eq!(look(&busy, 2, 0), 97);
    }

    #[test]
    fn a_copy_past_its_end_is_looked_at_again_as_late_as_it_is_and_at_most_a_tenth_of_a_copy_later() {
        let wait = |started: i64, fallback: u64| {
            next_look(at(100), &[copy(started, Some(0))], 1, 0, Duration::from_secs(fallback)).as_secs()
        };
        // Stuck at 0 %: taken to last the fallback's 30 s, it is 70 s late; looked at again
        // in 3 s (a tenth of the copy time), not every second.
        assert_eq!(wait(0, 30), 3);
        // 2 s late on a 50 s copy: looked at again in 2 s.
        assert_eq!(wait(48, 50), 2);
        // Just late: SQS's least.
        assert_eq!(wait(69, 30), 1);
    }

    #[test]
    fn no_wait_is_longer_than_sqs_allows() {
        // The 30th in line for one slot freeing every 30 s.
        let busy = [copy(99, None)];
        assert_eq!(look(&busy, 1, 29), 899);
        assert_eq!(look(&busy, 1, 30), 900);
        assert_eq!(look(&busy, 1, 1000), 900);
    }

    #[test]
    fn a_waiter_that_waits_out_its_last_second_arrives_within_the_second_before_its_moment() {
        let now = at(100);
        let ms = chrono::Duration::milliseconds;
        // 38.4 s away: 38 s by SQS, the last 0.4 s waited for in the handler.
        assert_eq!(delay_before(now, now + ms(38_400)), Duration::from_secs(38));
        // Within the second, or past: SQS's least, for a waiter that could not wait it out.
        assert_eq!(delay_before(now, now + ms(400)), Duration::from_secs(1));
        assert_eq!(delay_before(now, now - ms(400)), Duration::from_secs(1));
        // Beyond SQS's 15 minutes: several looks.
        assert_eq!(delay_before(now, now + chrono::Duration::hours(1)), Duration::from_secs(900));
        // next_look is the same moment, rounded up.
        let busy = [copy(0, Some(50)), copy(50, Some(50))];
        let m = moment(now, &busy, 2, 0, Duration::from_secs(30));
        assert_eq!(delay_before(now, m).as_secs() + 1, look(&busy, 2, 0));
    }
}
