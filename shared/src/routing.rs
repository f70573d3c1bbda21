//! The routing table (`shared/routing.json`): which events reach which step's queue, and
//! how the queues behave. The local host builds its topology from it; the CDK stacks are
//! checked against it, so the emulator and AWS cannot drift apart.

use serde::Deserialize;
use serde_json::Value;

pub const ROUTING_JSON: &str = include_str!("../routing.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Routing {
    pub source: String,
    pub pipeline_bus: String,
    /// The queue of events EventBridge could not deliver to a rule's target, in each account.
    pub delivery_dlq: String,
    /// The backup account's copy ledger table ([`crate::ledger`]), in its home region.
    pub copy_ledger: String,
    pub max_receive_count: u32,
    pub dlq_retention_days: u32,
    pub visibility_timeout_factor: u32,
    pub functions: Vec<Function>,
    pub cross_account: CrossAccount,
    /// The way back: a backup account returns "Snapshot Copied" to each source.
    pub copied_back: CrossAccount,
    pub metrics: MetricNames,
}

/// The metrics steps write and the stacks alarm on.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricNames {
    pub namespace: String,
    /// A snapshot count quota is full (never clears by itself).
    pub quota_full: String,
    /// A snapshot count quota is past its warning threshold.
    pub quota_warning: String,
    /// A resource's newest backup is older than it may be (the dead-man's switch).
    pub backup_overdue: String,
    /// Per resource: the age of its newest verified copy, in seconds.
    pub recovery_point: String,
    /// The largest of those in one run: what the RPO alarm watches.
    pub recovery_point_max: String,
    /// Per resource: how long its last restore test took.
    pub restore_seconds: String,
    /// Per resource: the snapshot's time minus the newest data its restore test found.
    pub data_recovery_point: String,
    /// A snapshot shared without its source database's figures, which were to be measured.
    pub source_data_unmeasured: String,
    /// A resource or snapshot a sweep failed at and went on past.
    pub resource_failed: String,
    /// A share rejected because its source is past its budget in the backup account.
    pub budget_exceeded: String,
    /// A verified copy whose data fell against the previous good copy of its resource.
    pub restore_suspicious: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    Default,
    Pipeline,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Function {
    pub name: String,
    pub account: Side,
    pub queue: String,
    pub timeout_seconds: u32,
    pub batch_size: u32,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    pub name: String,
    pub bus: Bus,
    #[serde(default)]
    pub pattern: Option<Value>,
    #[serde(default)]
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CrossAccount {
    pub rule: String,
    pub bus: Bus,
    pub pattern: Value,
}

impl Routing {
    pub fn load() -> Routing {
        // Checked by a unit test, so a bad routing.json never reaches a build.
        serde_json::from_str(ROUTING_JSON).expect("shared/routing.json is valid")
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    pub fn visibility_timeout_seconds(&self, f: &Function) -> u32 {
        f.timeout_seconds * self.visibility_timeout_factor
    }

    pub fn dlq_name(&self, f: &Function) -> String {
        format!("{}-dlq", f.queue)
    }
}

impl CrossAccount {
    /// The forwarding rule's name and pattern for one account (`{account}` filled in).
    pub fn for_account(&self, account: &str) -> (String, Value) {
        let pattern = self.pattern.to_string().replace("{account}", account);
        (self.rule.replace("{account}", account), serde_json::from_str(&pattern).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{BACKUP_REQUESTED, DETAIL_TYPES, SOURCE};

    #[test]
    fn routing_is_valid_and_consistent() {
        let r = Routing::load();
        assert_eq!(r.source, SOURCE);
        for f in &r.functions {
            assert!(!f.rules.is_empty(), "{} has no rule", f.name);
            assert!(f.batch_size >= 1 && f.batch_size <= 10, "{}", f.name);
            for rule in &f.rules {
                assert!(rule.pattern.is_some() ^ rule.schedule.is_some(), "{}: pattern or schedule", rule.name);
                // Our own events must be ones the contract defines.
                if let Some(p) = &rule.pattern
                    && p["source"][0] == SOURCE
                {
                    for dt in p["detail-type"].as_array().unwrap() {
                        let dt = dt.as_str().unwrap();
                        assert!(DETAIL_TYPES.contains(&dt) || dt == BACKUP_REQUESTED, "{}: unknown {dt}", rule.name);
                    }
                }
            }
        }
        let (name, pattern) = r.cross_account.for_account("222222222222");
        assert_eq!(name, "snapferry-shared-to-222222222222");
        assert_eq!(pattern["detail"]["target_account"][0], "222222222222");
    }
}
