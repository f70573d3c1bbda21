//! Retention rules: which snapshots of one resource in one region are kept, and by what.
//! The expire steps delete what they do not keep; reconcile-copies does not copy back into
//! an extra region what that region's rules would not keep.
//!
//! `RETENTION` is a JSON list of rules; the first whose `resources` regex and `regions`
//! match a resource in a region decides for its snapshots, and a resource no rule matches
//! keeps everything. A snapshot is kept when any criterion of the rule keeps it:
//! - `keep_last`: the newest N;
//! - `max_age_days`: those younger than N days;
//! - `daily`, `weekly`, `monthly`, `yearly`: the newest snapshot of each of the last N days,
//!   ISO weeks, months or years that have one (grandfather-father-son, with restic's
//!   `--keep-daily` semantics: periods without a snapshot do not count).

use crate::lineage::Lineage;
use crate::store::Snapshot;
use chrono::{DateTime, Datelike, Duration, Utc};
use regex::Regex;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// One rule as written in `RETENTION`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    resources: Option<String>,
    #[serde(default)]
    regions: Vec<String>,
    keep_last: Option<usize>,
    max_age_days: Option<i64>,
    daily: Option<usize>,
    weekly: Option<usize>,
    monthly: Option<usize>,
    yearly: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// Regex on the resource id; every resource when `None`.
    pub resources: Option<Regex>,
    /// The regions the rule is for; every region when empty.
    pub regions: Vec<String>,
    pub keep_last: Option<usize>,
    pub max_age_days: Option<i64>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    pub yearly: Option<usize>,
}

/// A calendar period of grandfather-father-son: its name, its count in a rule, and the
/// key that is the same for every time within one period.
type Period = (&'static str, fn(&Rule) -> Option<usize>, fn(DateTime<Utc>) -> (i32, u32));

const PERIODS: [Period; 4] = [
    ("daily", |r| r.daily, |t| (t.year(), t.ordinal())),
    ("weekly", |r| r.weekly, |t| (t.iso_week().year(), t.iso_week().week())),
    ("monthly", |r| r.monthly, |t| (t.year(), t.month())),
    ("yearly", |r| r.yearly, |t| (t.year(), 0)),
];

/// Parses and checks `RETENTION`; the error says what is wrong with which rule.
pub fn parse(json: &str) -> Result<Vec<Rule>, String> {
    let raw: Vec<RawRule> = serde_json::from_str(json).map_err(|e| format!("not a list of rules: {e}"))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let at = |what: String| format!("rule {}: {what}", i + 1);
            let resources =
                r.resources.as_deref().map(Regex::new).transpose().map_err(|e| at(format!("resources: {e}")))?;
            let rule = Rule {
                resources,
                regions: r.regions,
                keep_last: r.keep_last,
                max_age_days: r.max_age_days,
                daily: r.daily,
                weekly: r.weekly,
                monthly: r.monthly,
                yearly: r.yearly,
            };
            if rule.max_age_days.is_some_and(|d| d < 1) {
                return Err(at("max_age_days must be 1 or more".into()));
            }
            if rule.criteria().is_empty() {
                return Err(at(
                    "keeps nothing: give at least one of keep_last, max_age_days, daily, weekly, monthly, yearly"
                        .into(),
                ));
            }
            Ok(rule)
        })
        .collect()
}

/// When the data of `s` was taken, which the rules count by: a copy's snapshot's time, as
/// AWS reported it when it was copied; a scheduled snapshot's own.
pub fn taken_at(s: &Snapshot) -> Option<DateTime<Utc>> {
    Lineage::of(s).snapshot_taken_at().or(s.created_at)
}

/// The account and resource a snapshot is of: the source database or volume (copies
/// carry it in their lineage), which the rules' `resources` regex matches. Snapshots are
/// kept or not within this group.
pub fn group_of(s: &Snapshot) -> (String, String) {
    let resource = Lineage::of(s).origin_resource().unwrap_or(&s.resource_id).to_string();
    let account = Lineage::of(s).source_account().unwrap_or(&s.account).to_string();
    (account, resource)
}

/// Whether `rules` keep `s` in `region` at `now` beside `others`, the snapshots of its
/// group there: a resource no rule is for keeps everything.
pub fn keeps(rules: &[Rule], region: &str, s: &Snapshot, others: &[&Snapshot], now: DateTime<Utc>) -> bool {
    let (_, resource) = group_of(s);
    let Some(rule) = rule_for(rules, &resource, region) else { return true };
    let group = group_of(s);
    let dated: Vec<(String, DateTime<Utc>)> = std::iter::once(s)
        .chain(others.iter().copied().filter(|o| group_of(o) == group && o.name != s.name))
        .filter_map(|x| Some((x.name.clone(), taken_at(x)?)))
        .collect();
    rule.kept(&dated, now).contains_key(&s.name)
}

/// The first of `rules` for `resource` in `region`.
pub fn rule_for<'a>(rules: &'a [Rule], resource: &str, region: &str) -> Option<&'a Rule> {
    rules.iter().find(|r| {
        r.resources.as_ref().is_none_or(|re| re.is_match(resource))
            && (r.regions.is_empty() || r.regions.iter().any(|x| x == region))
    })
}

impl Rule {
    /// The rule's criteria as written, for reasons and logs: `keep_last 7, daily 7`.
    pub fn criteria(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(n) = self.keep_last {
            out.push(format!("keep_last {n}"));
        }
        if let Some(n) = self.max_age_days {
            out.push(format!("max_age_days {n}"));
        }
        for (name, count, _) in PERIODS {
            if let Some(n) = count(self) {
                out.push(format!("{name} {n}"));
            }
        }
        out
    }

    /// Which of `snapshots` (id, time taken) the rule keeps at `now`, each with the
    /// criterion that keeps it; the others are not in the map.
    pub fn kept(&self, snapshots: &[(String, DateTime<Utc>)], now: DateTime<Utc>) -> BTreeMap<String, String> {
        let mut newest_first: Vec<&(String, DateTime<Utc>)> = snapshots.iter().collect();
        newest_first.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut kept = BTreeMap::new();
        let mut keep = |id: &str, why: String| {
            kept.entry(id.to_string()).or_insert(why);
        };
        if let Some(n) = self.keep_last {
            for (id, _) in newest_first.iter().take(n) {
                keep(id, format!("keep_last {n}"));
            }
        }
        if let Some(days) = self.max_age_days {
            for (id, at) in &newest_first {
                if now - *at < Duration::days(days) {
                    keep(id, format!("max_age_days {days}"));
                }
            }
        }
        for (name, count, key) in PERIODS {
            let Some(n) = count(self) else { continue };
            let mut periods = BTreeSet::new();
            for (id, at) in &newest_first {
                if periods.len() >= n {
                    break;
                }
                // The newest snapshot of each period is the first seen of it.
                if periods.insert(key(*at)) {
                    keep(id, format!("{name} {n}"));
                }
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn rule(json: &str) -> Rule {
        parse(&format!("[{json}]")).unwrap().remove(0)
    }

    /// Hourly snapshots from `from` for `hours`, named by their time.
    fn hourly(from: DateTime<Utc>, hours: i64) -> Vec<(String, DateTime<Utc>)> {
        (0..hours).map(|h| from + Duration::hours(h)).map(|t| (t.format("%Y-%m-%dT%H").to_string(), t)).collect()
    }

    fn kept_ids(rule: &Rule, snapshots: &[(String, DateTime<Utc>)], now: DateTime<Utc>) -> Vec<String> {
        rule.kept(snapshots, now).into_keys().collect()
    }

    #[test]
    fn keep_last_and_max_age() {
        let snaps = hourly(at(2026, 11, 1, 0), 48);
        let now = at(2026, 11, 3, 0);
        assert_eq!(
            kept_ids(&rule(r#"{"keep_last": 3}"#), &snaps, now),
            ["2026-11-02T21", "2026-11-02T22", "2026-11-02T23"]
        );
        let young = kept_ids(&rule(r#"{"max_age_days": 1}"#), &snaps, now);
        assert_eq!(young.len(), 23, "younger than 24 hours: {young:?}");
        assert_eq!(young[0], "2026-11-02T01", "one exactly a day old is not younger than a day");
    }

    #[test]
    fn grandfather_father_son_keeps_the_newest_of_each_period() {
        // A year of hourly snapshots, 2025-11-01 to 2026-11-01.
        let snaps = hourly(at(2025, 11, 1, 0), 365 * 24);
        let now = at(2026, 11, 1, 0);
        let r = rule(r#"{"daily": 7, "weekly": 4, "monthly": 12, "yearly": 2}"#);
        let kept = r.kept(&snaps, now);
        let daily: Vec<_> = kept.iter().filter(|(_, why)| *why == "daily 7").map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            daily,
            [
                "2026-10-25T23",
                "2026-10-26T23",
                "2026-10-27T23",
                "2026-10-28T23",
                "2026-10-29T23",
                "2026-10-30T23",
                "2026-10-31T23"
            ]
        );
        // Weeks and months whose newest snapshot a daily already keeps count, but add nothing.
        let months: BTreeSet<_> = kept.keys().map(|id| &id[..7]).collect();
        assert_eq!(months.len(), 12, "one per month for 12 months: {months:?}");
        assert!(kept.contains_key("2025-12-31T23"), "the newest of 2025 (yearly)");
        // 7 daily + 3 more weekly (week of 10-25 is kept already) + 11 more monthly + 1 more yearly (2025's newest is kept by monthly).
        assert!(kept.len() <= 7 + 4 + 12 + 2, "{} kept: {kept:?}", kept.len());
        assert!(kept.len() >= 12, "{kept:?}");
    }

    #[test]
    fn periods_without_snapshots_do_not_count() {
        // Snapshots on 3 days spread over a month: daily 2 keeps the newest of the newest 2 days.
        let snaps = vec![
            ("a".to_string(), at(2026, 10, 1, 10)),
            ("b".to_string(), at(2026, 10, 15, 9)),
            ("c".to_string(), at(2026, 10, 15, 11)),
            ("d".to_string(), at(2026, 10, 30, 8)),
        ];
        assert_eq!(kept_ids(&rule(r#"{"daily": 2}"#), &snaps, at(2026, 11, 1, 0)), ["c", "d"]);
    }

    #[test]
    fn first_matching_rule_by_resource_and_region() {
        let rules = parse(
            r#"[{"resources": "^prod-", "regions": ["eu-west-1"], "keep_last": 2},
                {"resources": "^prod-", "keep_last": 30},
                {"max_age_days": 7}]"#,
        )
        .unwrap();
        assert_eq!(rule_for(&rules, "prod-db", "eu-west-1").unwrap().keep_last, Some(2));
        assert_eq!(rule_for(&rules, "prod-db", "us-east-1").unwrap().keep_last, Some(30));
        assert_eq!(rule_for(&rules, "dev-db", "eu-west-1").unwrap().max_age_days, Some(7));
        assert!(rule_for(&parse(r#"[{"resources": "^prod-", "keep_last": 1}]"#).unwrap(), "dev", "x").is_none());
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (json, says) in [
            ("{}", "not a list"),
            ("[{}]", "rule 1: keeps nothing"),
            (r#"[{"keep_last": 1}, {"resources": "("}]"#, "rule 2: resources"),
            (r#"[{"max_age_days": 0}]"#, "max_age_days must be 1"),
            (r#"[{"keep_lats": 1}]"#, "unknown field"),
            (r#"[{"keep_last": -1}]"#, "not a list"),
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
