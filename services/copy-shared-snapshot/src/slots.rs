//! Copy slots. AWS runs only so many copies of a kind into one region of an account at once
//! (20 DB instance snapshot copies, 5 Aurora cluster snapshot copies, 20 EBS snapshot
//! copies) and refuses the next with `SnapshotQuotaExceeded` / `ResourceLimitExceeded`. A
//! refusal costs a call and says nothing about when to come back, so blind retries with a
//! backoff either hammer a full quota or leave slots idle while work waits.
//!
//! Instead the step looks at the copies in progress before it starts one. When every slot
//! is taken it works out when slots will free: each copy in progress ends at about
//! `start + elapsed x 100 / percent`, and after those ends a slot frees once per copy time.
//! The message then comes back at one of those moments, drawn at random among about as many
//! moments as there are copies waiting for these slots (as AWS shows them, over
//! [`OVERBOOK`]), so the waiters spread over the moments the slots free instead of all
//! coming back at once; a little jitter keeps two waiters that drew the same moment from
//! asking in the same instant. A waiter that comes back to a full quota (an estimate was
//! early, or another waiter of its moment came first) only looks, and draws again.

use chrono::{DateTime, Utc};
use snapferry::store::CopyInProgress;
use std::time::Duration;

/// Waiters per moment a slot frees, on average: with three, a moment that nobody drew (a
/// slot left idle until the next waiter comes) is rare (e^-3, 5 %), while the other waiters
/// of a moment find the slot taken and only look (they do not ask AWS to copy).
pub const OVERBOOK: u64 = 3;
/// The soonest a waiter comes back: a copy estimated to end in the past is about to.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// SQS delays a message by at most 15 minutes; a longer wait is several looks.
const MAX_WAIT: Duration = Duration::from_secs(900);
/// The most jitter added to a drawn moment: enough to part two waiters by more than a
/// look and a copy call take, small against the minutes a copy takes in AWS.
const MAX_JITTER: Duration = Duration::from_secs(2);

/// When a copy that found every one of `slots` taken by `busy` should look again. `waiting`
/// is how many copies wait for these slots (this one included); `fallback` is the copy time
/// assumed when no copy in progress reports how far it is.
pub fn next_look(
    now: DateTime<Utc>,
    busy: &[CopyInProgress],
    slots: usize,
    waiting: u64,
    fallback: Duration,
    rng: &mut fastrand::Rng,
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
    let moments = waiting.max(1).div_ceil(OVERBOOK) as usize;
    let drawn = rng.usize(0..moments.max(1));
    let (slot, round) = (drawn % frees.len(), drawn / frees.len());
    let spacing = copy_time / slots as u32;
    let jitter = Duration::from_millis(rng.u64(0..=(spacing / 4).min(MAX_JITTER).as_millis() as u64));
    let at = frees[slot] + copy_time * round as u32 + jitter;
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

    fn looks(busy: &[CopyInProgress], slots: usize, waiting: u64, n: usize) -> Vec<u64> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..n).map(|_| next_look(at(100), busy, slots, waiting, Duration::from_secs(30), &mut rng).as_secs()).collect()
    }

    #[test]
    fn a_lone_waiter_comes_back_when_the_first_copy_ends() {
        // Started at 0 and 50, each "50 %" at 100 s: they end at about 200 s and 150 s (at
        // the soonest, as if 51 %: 196 s and 148 s).
        let busy = [copy(0, Some(50)), copy(50, Some(50))];
        for wait in looks(&busy, 2, 1, 20) {
            assert!((48..=52).contains(&wait), "{wait}");
        }
    }

    #[test]
    fn waiters_spread_over_the_moments_slots_free() {
        // Two slots; at the soonest (as if 51 % and 26 %), copies of 78.4 s and 76.9 s ending
        // 38.4 s and 56.9 s from now, then a slot frees every 78.4 s (the median copy time);
        // 60 waiters -> 20 moments: 38.4, 56.9, 116.9, 135.4, ... 744.3, 762.8 s from now.
        let busy = [copy(60, Some(50)), copy(80, Some(25))];
        let moments: Vec<f64> = (0..10).flat_map(|k| [38.4 + 78.4 * k as f64, 56.9 + 78.4 * k as f64]).collect();
        let waits = looks(&busy, 2, 60, 400);
        let mut drawn = std::collections::BTreeSet::new();
        for w in &waits {
            // Jitter (at most 2 s) and SQS's whole seconds, rounded up.
            let at = moments.iter().position(|m| (*m..=m + 3.5).contains(&(*w as f64)));
            drawn.insert(at.unwrap_or_else(|| panic!("{w} s is no moment a slot frees: {waits:?}")));
        }
        assert!(drawn.len() >= 18, "spread over the moments: {drawn:?}");
        let first = waits.iter().filter(|w| (39..=42).contains(*w)).count();
        assert!(first > 5 && first < 45, "about 1 in 20 at the first moment: {first}");
    }

    #[test]
    fn copies_that_say_nothing_are_assumed_to_take_the_fallback_time() {
        let busy = [copy(90, None), copy(95, Some(0))];
        for wait in looks(&busy, 2, 1, 10) {
            // Fallback 30 s from their starts: they end at 120 s and 125 s.
            assert!((20..=24).contains(&wait), "{wait}");
        }
    }

    #[test]
    fn with_more_copies_than_slots_a_slot_frees_only_when_the_surplus_ended() {
        // Three copies of about 100 s in progress (at the soonest ending at 109, 148 and
        // 196 s), quota lowered to 2.
        let busy = [copy(10, Some(90)), copy(50, Some(50)), copy(0, Some(50))];
        for wait in looks(&busy, 2, 1, 10) {
            assert!(wait >= 48, "not before the second ends: {wait}");
        }
    }

    #[test]
    fn an_overdue_estimate_looks_again_soon() {
        let busy = [copy(0, Some(99))];
        assert!(looks(&busy, 1, 1, 10).iter().all(|w| (1..=3).contains(w)));
    }
}
