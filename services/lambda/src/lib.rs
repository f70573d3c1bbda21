//! The step registry: which handler each step's name runs. The Lambda binary (`main.rs`)
//! and the local host both build their handlers here, so a step is registered once.

use snapferry::clients::Clients;
use snapferry::config::Env;
use snapferry::error::{Error, Result};
use snapferry::sqs::BatchHandler;
use snapferry::step::StepContext;
use std::sync::Arc;

/// Every step this binary runs, by the name its function's handler setting (`_HANDLER`)
/// and `shared/routing.json` give it.
pub const STEPS: [&str; 8] = [
    snapferry_create_snapshot::STEP,
    snapferry_share_snapshot::STEP,
    snapferry_expire_snapshots::SOURCE_STEP,
    snapferry_reconcile::SOURCE_STEP,
    snapferry_copy_shared_snapshot::STEP,
    snapferry_restore::STEP,
    snapferry_expire_snapshots::BACKUP_STEP,
    snapferry_reconcile::BACKUP_STEP,
];

/// The handler of the step `env` is for (`env.step()`), acting through `clients`' AWS
/// adapters. A bad configuration fails here, with a message that names the variable.
pub fn handler(env: &Env, clients: &Clients) -> Result<Arc<dyn BatchHandler>> {
    let ports = |step_env| StepContext::aws(clients, step_env);
    Ok(match env.step() {
        snapferry_create_snapshot::STEP => Arc::new(snapferry_create_snapshot::Handler::from_env(env, ports)?),
        snapferry_share_snapshot::STEP => {
            Arc::new(snapferry_share_snapshot::Handler::from_env(env, ports, &clients.config)?)
        }
        snapferry_copy_shared_snapshot::STEP => {
            Arc::new(snapferry_copy_shared_snapshot::Handler::from_env(env, ports)?)
        }
        snapferry_restore::STEP => Arc::new(snapferry_restore::Handler::from_env(env, ports)?),
        snapferry_expire_snapshots::SOURCE_STEP | snapferry_expire_snapshots::BACKUP_STEP => {
            Arc::new(snapferry_expire_snapshots::Handler::from_env(env, ports)?)
        }
        snapferry_reconcile::SOURCE_STEP | snapferry_reconcile::BACKUP_STEP => {
            Arc::new(snapferry_reconcile::Handler::from_env(env, ports)?)
        }
        other => return Err(Error::Config(format!("{other:?} names no snapferry step (known: {})", STEPS.join(", ")))),
    })
}

/// Parses the configuration of the step `env` is for, as its handler does at init, without
/// building the handler (no AWS client, no call): how an environment the CDK stacks render
/// is checked against the parsers the Lambda runs (`snapferry-local check-env`).
pub fn check(env: &Env) -> Result<()> {
    match env.step() {
        snapferry_create_snapshot::STEP => snapferry_create_snapshot::Config::from_env(env).map(drop),
        snapferry_share_snapshot::STEP => snapferry_share_snapshot::Config::from_env(env).map(drop),
        snapferry_copy_shared_snapshot::STEP => snapferry_copy_shared_snapshot::Config::from_env(env).map(drop),
        snapferry_restore::STEP => snapferry_restore::Config::from_env(env).map(drop),
        snapferry_expire_snapshots::SOURCE_STEP | snapferry_expire_snapshots::BACKUP_STEP => {
            snapferry_expire_snapshots::Config::from_env(env).map(drop)
        }
        snapferry_reconcile::SOURCE_STEP | snapferry_reconcile::BACKUP_STEP => {
            snapferry_reconcile::Config::from_env(env).map(drop)
        }
        other => Err(Error::Config(format!("{other:?} names no snapferry step (known: {})", STEPS.join(", ")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_of_the_routing_is_a_registered_step_and_no_other() {
        let routed: std::collections::BTreeSet<String> =
            snapferry::routing::Routing::load().functions.into_iter().map(|f| f.name).collect();
        let registered: std::collections::BTreeSet<String> = STEPS.iter().map(|s| s.to_string()).collect();
        assert_eq!(routed, registered);
    }

    #[test]
    fn check_parses_as_the_handler_does_and_names_the_variable_it_refuses() {
        let base = [
            ("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/222222222222/q"),
            ("DLQ_URL", "https://sqs.us-east-1.amazonaws.com/222222222222/d"),
            ("ACCOUNT_ID", "222222222222"),
            ("AWS_REGION", "us-east-1"),
        ];
        let restore = |extra: &[(&'static str, &'static str)]| {
            let mut pairs: Vec<(&str, &str)> = base.to_vec();
            pairs.extend_from_slice(extra);
            pairs.extend([("TARGET_KMS_KEY_ARN", "arn:aws:kms:us-east-1:222222222222:key/k")]);
            Env::from_pairs(snapferry_restore::STEP, pairs).unwrap()
        };
        check(&restore(&[])).unwrap();
        let e = check(&restore(&[("RESTORE_EVERY_NTH", "0")])).unwrap_err().to_string();
        assert!(e.contains("RESTORE_EVERY_NTH"), "{e}");
    }
}
