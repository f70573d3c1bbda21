//! Copy slots. AWS runs only so many copies of a kind into one region of an account at once
//! (20 DB instance snapshot copies, 5 Aurora cluster snapshot copies, 20 EBS snapshot
//! copies) and refuses the next with `SnapshotQuotaExceeded` / `ResourceLimitExceeded`. A
//! refusal costs a call and says nothing about when to come back, so blind retries with a
//! backoff either hammer a full quota or leave slots idle while work waits.
//!
//! Instead the step looks at the copies in progress before it starts one. When every slot
//! is taken it works out when slots will free: each copy in progress ends at about
//! `start + elapsed x 100 / percent`, and after those ends a slot frees once per copy time.
//! The copies waiting for these slots, as AWS shows them, form a line, oldest first; the
//! copy `rank` places in it comes back at the `rank`-th moment a slot frees. Every waiter
//! computes the same line from the same listing, so each moment has one waiter: the slot
//! is taken as soon as it frees, and no two waiters ask for it in the same instant. A
//! waiter that comes back to a full quota (an estimate was early) only looks, and takes its
//! place in the line again, now nearer its head.

use crate::store::CopyInProgress;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The soonest a waiter comes back: a copy estimated to end in the past is about to.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// SQS delays a message by at most 15 minutes; a longer wait is several looks.
const MAX_WAIT: Duration = Duration::from_secs(900);

/// When a copy that found every one of `slots` taken by `busy` should look again. `rank` is
/// its place in the line of copies waiting for these slots (0: next); `fallback` is the
/// copy time assumed when no copy in progress reports how far it is.
pub fn next_look(
    now: DateTime<Utc>,
    busy: &[CopyInProgress],
    slots: usize,
    rank: usize,
    fallback: Duration,
) -> Duration {
    let slots = slots.max(1);
    let copy_time = copy_time(now, busy).unwrap_or(fallback).max(MIN_WAIT);
    let mut ends: Vec<DateTime<Utc>> = busy
        .iter()
        .map(|c| c.ends_at(now).unwrap_or_else(|| c.started_at.unwrap_or(now) + copy_time))
        .map(|e| e.max(now))
        .collect();
    ends.sort();
    // With more copies in progress than slots (the quota was lowered, or others copy too),
    // a slot frees only when the surplus has ended as well.
    let frees: Vec<DateTime<Utc>> = ends.iter().skip(ends.len().saturating_sub(slots)).copied().collect();
    let frees = if frees.is_empty() { vec![now] } else { frees };
    // The waiters ahead take the slots as they free, then the copies they start free them
    // again a copy time later.
    let (slot, round) = (rank % frees.len(), rank / frees.len());
    let at = frees[slot] + copy_time * u32::try_from(round).unwrap_or(u32::MAX);
    let wait = (at - now).to_std().unwrap_or_default();
    // SQS delays in whole seconds: rounded up, the waiter comes a little after its moment
    // rather than just before it, to a slot still taken.
    Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).clamp(MIN_WAIT, MAX_WAIT)
}

/// How long a copy takes here: the median of the copies in progress that say how far they are.
fn copy_time(now: DateTime<Utc>, busy: &[CopyInProgress]) -> Option<Duration> {
    let mut totals: Vec<Duration> = busy.iter().filter_map(|c| c.duration(now)?.to_std().ok()).collect();
    totals.sort();
    totals.get(totals.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn copy(started: i64, percent: Option<u8>) -> CopyInProgress {
        CopyInProgress { id: format!("c{started}"), started_at: Some(at(started)), percent }
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
    fn no_wait_is_longer_than_sqs_allows() {
        // The 30th in line for one slot freeing every 30 s.
        let busy = [copy(99, None)];
        assert_eq!(look(&busy, 1, 29), 899);
        assert_eq!(look(&busy, 1, 30), 900);
        assert_eq!(look(&busy, 1, 1000), 900);
    }
}
