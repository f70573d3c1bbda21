//! What each step's role may do (`shared/permissions.json`): the CDK stacks render it into
//! each function's role, and the local host runs each step as a role of its own in the
//! emulator with exactly these statements, so a call the code makes and the JSON does not
//! grant fails on the emulator as it would in AWS (AccessDenied), before any deployment.
//!
//! Scopes and conditions are names in the JSON; [`Scope`] renders them into ARNs and IAM
//! conditions for one account and region, the same way `infra/lib/permissions.ts` does:
//! the infra tests render every step's role both ways (`snapferry-local role-policy`) and
//! fail when the two differ.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

pub const PERMISSIONS_JSON: &str = include_str!("../permissions.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Permissions {
    pub scopes: BTreeMap<String, String>,
    pub conditions: BTreeMap<String, String>,
    pub every_step: Vec<Statement>,
    pub event_source: Vec<Statement>,
    pub steps: BTreeMap<String, Vec<Statement>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Statement {
    pub sid: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub regions: Regions,
    /// The resource kinds the statement is for; empty: every kind. The stacks render it
    /// only where they handle one of them; the local host, which handles all, always does.
    #[serde(default)]
    pub kinds: Vec<String>,
    pub why: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regions {
    /// The stack's own region.
    #[default]
    Home,
    /// The home region and every extra region of the backup account.
    Pipeline,
}

impl Permissions {
    pub fn load() -> Permissions {
        // Checked by a unit test, so a bad permissions.json never reaches a build.
        serde_json::from_str(PERMISSIONS_JSON).expect("shared/permissions.json is valid")
    }

    /// Every statement `step`'s role holds: the step's own, those of every step, and what
    /// the SQS event source mapping polls with.
    pub fn statements(&self, step: &str) -> Vec<&Statement> {
        self.every_step.iter().chain(&self.event_source).chain(self.steps.get(step).into_iter().flatten()).collect()
    }

    /// Whether `step`'s role is granted `action` (`service:Operation`), wildcards as IAM
    /// matches them (`kms:ReEncrypt*`), case-insensitively.
    pub fn allows(&self, step: &str, action: &str) -> bool {
        self.statements(step).iter().flat_map(|s| &s.actions).any(|granted| action_matches(granted, action))
    }

    /// The same permissions with `action` taken out of every statement of `step` (and of
    /// the statements every step holds): what a role that lacks one action looks like.
    pub fn without(&self, step: &str, action: &str) -> Permissions {
        let mut p = self.clone();
        let strip = |list: &mut Vec<Statement>| {
            for s in list.iter_mut() {
                s.actions.retain(|a| a != action);
            }
            list.retain(|s| !s.actions.is_empty());
        };
        strip(p.steps.entry(step.to_string()).or_default());
        strip(&mut p.every_step);
        strip(&mut p.event_source);
        p
    }

    /// `step`'s role policy as an IAM policy document for the account and region of `scope`.
    pub fn role_policy(&self, step: &str, scope: &Scope) -> Value {
        let statements: Vec<Value> = self.statements(step).into_iter().flat_map(|s| scope.statement(s)).collect();
        json!({ "Version": "2012-10-17", "Statement": statements })
    }
}

/// `us-east-1` as a sid's suffix: `UsEast1` (sids are alphanumeric).
fn sid_suffix(region: &str) -> String {
    region
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Whether the IAM action pattern `pattern` (`kms:ReEncrypt*`) covers `action`, as IAM
/// matches them: case-insensitively, `*` standing for any run of characters.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match pattern.split_once('*') {
        None => pattern == action,
        Some((prefix, rest)) => action.starts_with(prefix) && (rest.is_empty() || action.ends_with(rest)),
    }
}

/// Where a role's statements apply: what the stacks know when they render them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Scope {
    pub partition: String,
    pub account: String,
    pub region: String,
    pub extra_regions: Vec<String>,
    /// Allowlisted source accounts and their regions (backup account).
    pub sources: Vec<(String, String)>,
    pub sharing_key: Option<String>,
    pub target_key: Option<String>,
    pub restore_subnet_group: Option<String>,
    pub queue_arn: String,
    pub dlq_arn: String,
    pub bus_arn: String,
    /// Every step's queue in this account, by the step's name.
    pub step_queue_arns: BTreeMap<String, String>,
    /// With source data checks: the secrets they name besides those RDS manages; `None`:
    /// no source data checks, and no access to any secret.
    pub source_database_secrets: Option<Vec<String>>,
}

/// The tags the JSON's conditions name.
const MANAGED_TAG: &str = crate::tags::MANAGED;
const RESTORE_TEST_TAG: &str = crate::tags::RESTORE_TEST;
/// The alias of the backup account's key in every region (the stacks' target key).
pub const BACKUP_KEY_ALIAS: &str = "alias/snapferry-target";

/// The conditions that name the service KMS is called through, in one region each.
const VIA: [&str; 2] = ["via-rds", "via-ec2"];

impl Scope {
    /// One statement of the JSON, rendered: none where its scopes are empty in this
    /// deployment (no extra regions, no source data checks), as the stacks render it; "*"
    /// stands only for the scopes that mean it. `kms:ViaService` names one region, so a
    /// statement that carries it is one statement per region of its resources (the key of
    /// a source in another region is used through RDS or EC2 in that region only), each
    /// sid suffixed with its region when there are several (sids are unique per policy).
    fn statement(&self, s: &Statement) -> Vec<Value> {
        let regions = match s.regions {
            Regions::Home => vec![self.region.clone()],
            Regions::Pipeline => self.pipeline_regions(),
        };
        let mut resources: Vec<String> = Vec::new();
        for arn in s.resources.iter().flat_map(|name| self.resources(name, &regions)) {
            // EBS snapshot ARNs carry no account: two scopes can name the same one.
            if !resources.contains(&arn) {
                resources.push(arn);
            }
        }
        if resources.is_empty() {
            return Vec::new();
        }
        // The region an ARN is in (`*` and region-less ARNs: the home region).
        let region_of = |arn: &str| match arn.split(':').nth(3) {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => self.region.clone(),
        };
        let groups: Vec<String> = if s.conditions.iter().any(|c| VIA.contains(&c.as_str())) {
            let mut groups: Vec<String> = Vec::new();
            for region in resources.iter().map(|arn| region_of(arn)) {
                if !groups.contains(&region) {
                    groups.push(region);
                }
            }
            groups
        } else {
            vec![self.region.clone()]
        };
        let several = groups.len() > 1;
        groups
            .iter()
            .map(|region| {
                let sid = if several { format!("{}{}", s.sid, sid_suffix(region)) } else { s.sid.clone() };
                let resources: Vec<&String> =
                    resources.iter().filter(|arn| !several || region_of(arn) == *region).collect();
                let mut statement =
                    json!({ "Sid": sid, "Effect": "Allow", "Action": s.actions, "Resource": resources });
                let conditions = self.conditions(&s.conditions, region);
                if conditions.as_object().is_some_and(|c| !c.is_empty()) {
                    statement["Condition"] = conditions;
                }
                statement
            })
            .collect()
    }

    fn pipeline_regions(&self) -> Vec<String> {
        std::iter::once(self.region.clone()).chain(self.extra_regions.iter().cloned()).collect()
    }

    fn rds(&self, region: &str, account: &str, rest: &str) -> String {
        format!("arn:{}:rds:{region}:{account}:{rest}", self.partition)
    }

    fn ec2(&self, regions: &[String], account: &str, rest: &str) -> Vec<String> {
        regions.iter().map(|r| format!("arn:{}:ec2:{r}:{account}:{rest}", self.partition)).collect()
    }

    fn resources(&self, name: &str, regions: &[String]) -> Vec<String> {
        let own = |rest: &str| regions.iter().map(|r| self.rds(r, &self.account, rest)).collect::<Vec<_>>();
        let kms = |region: &str, account: &str| format!("arn:{}:kms:{region}:{account}:key/*", self.partition);
        match name {
            "account" => vec!["*".to_string()],
            "rds:all" => own("*"),
            "rds:databases" => [own("db:*"), own("cluster:*")].concat(),
            "rds:any-snapshot" => [own("snapshot:*"), own("cluster-snapshot:*")].concat(),
            "rds:managed-snapshots" => [own("snapshot:snapferry-*"), own("cluster-snapshot:snapferry-*")].concat(),
            "rds:restore-tests" => [own("db:snapferry-*"), own("cluster:snapferry-*")].concat(),
            "rds:restore-network" => {
                let group = self.restore_subnet_group.as_deref().unwrap_or("snapferry-*");
                [own(&format!("subgrp:{group}")), own("og:*"), own("pg:*"), own("cluster-pg:*")].concat()
            }
            "rds:source-snapshots" => self
                .sources
                .iter()
                .flat_map(|(account, region)| {
                    [self.rds(region, account, "snapshot:*"), self.rds(region, account, "cluster-snapshot:*")]
                })
                .collect(),
            "kms:sharing-key" => self.sharing_key.iter().cloned().collect(),
            "kms:target-key" => self.target_key.iter().cloned().collect(),
            "kms:own-keys" => regions.iter().map(|r| kms(r, &self.account)).collect(),
            "kms:extra-region-keys" => self.extra_regions.iter().map(|r| kms(r, &self.account)).collect(),
            "kms:source-sharing-keys" => self.sources.iter().map(|(account, region)| kms(region, account)).collect(),
            // EC2 Describe* calls support no resource-level permissions.
            "ec2:all" => vec!["*".to_string()],
            "ec2:volumes" => self.ec2(regions, &self.account, "volume/*"),
            "ec2:instances" => self.ec2(regions, &self.account, "instance/*"),
            // EBS snapshot ARNs carry no account: conditions narrow them.
            "ec2:snapshots" => self.ec2(regions, "", "snapshot/*"),
            "ec2:source-snapshots" => self
                .sources
                .iter()
                .map(|(_, region)| format!("arn:{}:ec2:{region}::snapshot/*", self.partition))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            // The table is in the home region only, whatever the statement's regions.
            "dynamodb:copy-ledger" => vec![format!(
                "arn:{}:dynamodb:{}:{}:table/{}",
                self.partition,
                self.region,
                self.account,
                crate::routing::Routing::load().copy_ledger
            )],
            "sqs:own-queues" => vec![self.queue_arn.clone(), self.dlq_arn.clone()],
            "sqs:own-queue" => vec![self.queue_arn.clone()],
            "sqs:share-queue" => self.step_queue_arns.get("share-snapshot").cloned().into_iter().collect(),
            "sqs:copy-and-restore-queues" => ["copy-shared-snapshot", "restore"]
                .iter()
                .filter_map(|step| self.step_queue_arns.get(*step).cloned())
                .collect(),
            "events:pipeline-bus" => vec![self.bus_arn.clone()],
            "secretsmanager:source-database-secrets" => match &self.source_database_secrets {
                None => Vec::new(),
                // The databases measured are in the stack's own region.
                Some(named) => std::iter::once(format!(
                    "arn:{}:secretsmanager:{}:{}:secret:rds!*",
                    self.partition, self.region, self.account
                ))
                .chain(named.iter().cloned())
                .collect(),
            },
            other => panic!("permissions.json names the unknown scope {other}"),
        }
    }

    /// The conditions `names` for resources in `region`.
    fn conditions(&self, names: &[String], region: &str) -> Value {
        let mut out = serde_json::Map::new();
        let mut add = |operator: &str, key: String, value: Value| {
            let entry = out.entry(operator.to_string()).or_insert_with(|| json!({}));
            entry[key] = value;
        };
        for name in names {
            match name.as_str() {
                "request-tag:managed" => add("StringEquals", format!("aws:RequestTag/{MANAGED_TAG}"), json!("true")),
                "resource-tag:managed" => add("StringEquals", format!("aws:ResourceTag/{MANAGED_TAG}"), json!("true")),
                "request-tag:restore-test" => {
                    add("StringEquals", format!("aws:RequestTag/{RESTORE_TEST_TAG}"), json!("true"))
                }
                "resource-tag:restore-test" => {
                    add("StringEquals", format!("aws:ResourceTag/{RESTORE_TEST_TAG}"), json!("true"))
                }
                "via-rds" => add("StringEquals", "kms:ViaService".into(), json!(format!("rds.{region}.amazonaws.com"))),
                "via-ec2" => add("StringEquals", "kms:ViaService".into(), json!(format!("ec2.{region}.amazonaws.com"))),
                "create-action:snapshot" => add(
                    "StringEquals",
                    "ec2:CreateAction".into(),
                    json!(["CreateSnapshot", "CreateSnapshots", "CopySnapshot"]),
                ),
                "create-action:volume" => add("StringEquals", "ec2:CreateAction".into(), json!("CreateVolume")),
                "grant-for-aws-resource" => add("Bool", "kms:GrantIsForAWSResource".into(), json!("true")),
                "alias:backup" => {
                    add("ForAnyValue:StringEquals", "kms:ResourceAliases".into(), json!(BACKUP_KEY_ALIAS))
                }
                other => panic!("permissions.json names the unknown condition {other}"),
            }
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Routing;

    fn scope() -> Scope {
        Scope {
            partition: "aws".into(),
            account: "222222222222".into(),
            region: "us-east-1".into(),
            extra_regions: vec!["eu-west-1".into()],
            sources: vec![("111111111111".into(), "us-east-1".into())],
            sharing_key: Some("arn:aws:kms:us-east-1:111111111111:key/k".into()),
            target_key: Some("arn:aws:kms:us-east-1:222222222222:key/t".into()),
            restore_subnet_group: Some("snapferry-restore-test".into()),
            queue_arn: "arn:aws:sqs:us-east-1:222222222222:q".into(),
            dlq_arn: "arn:aws:sqs:us-east-1:222222222222:q-dlq".into(),
            bus_arn: "arn:aws:events:us-east-1:222222222222:event-bus/snapferry".into(),
            step_queue_arns: ["share-snapshot", "copy-shared-snapshot", "restore"]
                .iter()
                .map(|s| (s.to_string(), format!("arn:aws:sqs:us-east-1:222222222222:snapferry-{s}")))
                .collect(),
            source_database_secrets: Some(vec![
                "arn:aws:secretsmanager:us-east-1:222222222222:secret:reader-AbCdEf".into(),
            ]),
        }
    }

    #[test]
    fn every_function_has_permissions_and_every_name_renders() {
        let p = Permissions::load();
        let routing = Routing::load();
        let functions: BTreeSet<&str> = routing.functions.iter().map(|f| f.name.as_str()).collect();
        let steps: BTreeSet<&str> = p.steps.keys().map(String::as_str).collect();
        assert_eq!(functions, steps, "permissions.json and routing.json name the same steps");
        for step in steps {
            for s in p.statements(step) {
                assert!(!s.why.is_empty(), "{step}/{}: say why", s.sid);
                for r in &s.resources {
                    assert!(p.scopes.contains_key(r), "{step}/{}: scope {r} is not described", s.sid);
                }
                for c in &s.conditions {
                    assert!(p.conditions.contains_key(c), "{step}/{}: condition {c} is not described", s.sid);
                }
            }
            // Renders every name (an unknown one panics) into a policy with every action.
            let policy = p.role_policy(step, &scope());
            let rendered: usize =
                policy["Statement"].as_array().unwrap().iter().map(|s| s["Action"].as_array().unwrap().len()).sum();
            assert_eq!(rendered, p.statements(step).iter().map(|s| s.actions.len()).sum::<usize>());
        }
    }

    #[test]
    fn actions_match_as_iam_matches_them() {
        let p = Permissions::load();
        assert!(p.allows("copy-shared-snapshot", "kms:ReEncryptFrom"));
        assert!(p.allows("copy-shared-snapshot", "RDS:copydbsnapshot"));
        assert!(p.allows("restore", "rds:DescribeDBSnapshots"));
        assert!(p.allows("restore", "events:PutEvents"));
        assert!(!p.allows("restore", "rds:DeleteDBSnapshot"));
        assert!(!p.allows("create-snapshot", "rds:ModifyDBSnapshotAttribute"));
        let lacking = p.without("restore", "rds:DescribeDBSnapshots");
        assert!(!lacking.allows("restore", "rds:DescribeDBSnapshots"));
        assert!(lacking.allows("restore", "rds:DescribeDBInstances"));
        assert!(lacking.allows("copy-shared-snapshot", "rds:DescribeDBSnapshots"));
    }

    #[test]
    fn a_role_policy_is_scoped_and_conditioned() {
        let p = Permissions::load();
        let policy = p.role_policy("restore", &scope());
        let delete =
            policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "DeleteRestoreTestsOnly").unwrap();
        assert_eq!(
            delete["Resource"],
            json!([
                "arn:aws:rds:us-east-1:222222222222:db:snapferry-*",
                "arn:aws:rds:us-east-1:222222222222:cluster:snapferry-*"
            ])
        );
        assert_eq!(delete["Condition"]["StringEquals"]["aws:ResourceTag/snapferry:restore-test"], "true");
        let copy = p.role_policy("copy-shared-snapshot", &scope());
        let managed = copy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "TagManagedSnapshots").unwrap();
        assert_eq!(managed["Resource"].as_array().unwrap().len(), 4, "both regions, both families");
    }

    #[test]
    fn a_key_is_used_through_rds_or_ec2_in_its_own_region_only() {
        let p = Permissions::load();
        let two = Scope {
            sources: vec![("111111111111".into(), "us-east-1".into()), ("444444444444".into(), "eu-west-1".into())],
            ..scope()
        };
        let policy = p.role_policy("copy-shared-snapshot", &two);
        let via: Vec<(String, Value, Value)> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Condition"]["StringEquals"]["kms:ViaService"].is_string())
            .map(|s| {
                (
                    s["Sid"].as_str().unwrap().to_string(),
                    s["Resource"].clone(),
                    s["Condition"]["StringEquals"]["kms:ViaService"].clone(),
                )
            })
            .collect();
        let (sid, resources, service) = via
            .iter()
            .find(|(_, r, _)| r.to_string().contains("kms:eu-west-1:444444444444"))
            .expect("the neighbour's key");
        assert!(sid.ends_with("EuWest1"), "{sid}");
        assert_eq!(resources, &json!(["arn:aws:kms:eu-west-1:444444444444:key/*"]));
        assert!(service.as_str().unwrap().ends_with(".eu-west-1.amazonaws.com"), "{service}");
        assert!(
            via.iter().all(|(_, r, s)| r.as_array().unwrap().iter().all(|arn| {
                let region = arn.as_str().unwrap().split(':').nth(3).unwrap();
                region.is_empty() || s.as_str().unwrap().contains(&format!(".{region}."))
            })),
            "every key with the service of its own region: {via:?}"
        );
    }

    #[test]
    fn secrets_are_readable_only_with_source_data_checks_and_only_rds_ones_and_those_named() {
        let p = Permissions::load();
        let secrets = |scope: &Scope| {
            let policy = p.role_policy("share-snapshot", scope);
            let found =
                policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "SourceDatabaseSecrets").cloned();
            found.map(|s| s["Resource"].clone())
        };
        assert_eq!(
            secrets(&scope()),
            Some(json!([
                "arn:aws:secretsmanager:us-east-1:222222222222:secret:rds!*",
                "arn:aws:secretsmanager:us-east-1:222222222222:secret:reader-AbCdEf"
            ]))
        );
        let off = Scope { source_database_secrets: None, ..scope() };
        assert_eq!(secrets(&off), None, "no statement at all: not even a \"*\"");
        assert!(p.allows("share-snapshot", "secretsmanager:GetSecretValue"));
        assert!(!p.allows("restore", "secretsmanager:GetSecretValue"), "the restore step sets its own password");
    }
}
