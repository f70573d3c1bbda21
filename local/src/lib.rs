//! The local Lambda host: what the CDK stacks and the Lambda service do in AWS, done
//! against the emulator so the whole pipeline runs on one machine (`snapferry-local demo`,
//! `snapferry-local local`, `snapferry-local fire-schedule`, which the operator CLI's
//! `snapferry demo|local|fire-schedule` run, and the end-to-end tests). The operator CLI
//! does not link it.
//!
//! - [`deploy()`] creates the event topology of `shared/routing.json` (pipeline buses,
//!   queues with their DLQs and redrive policies, rules, the cross-account forwarding and
//!   the bus policies that admit it). It is idempotent, like a CloudFormation update.
//! - [`Host`] plays Lambda's SQS event source mapping: it receives a batch per function,
//!   calls the step's [`BatchHandler`](snapferry::sqs::BatchHandler), and deletes exactly
//!   the records that did not fail (`ReportBatchItemFailures`). Failed records stay in the
//!   queue, come back after their visibility timeout and reach the DLQ through SQS's own
//!   redrive, as in AWS.
//! - [`pipeline`] sets a whole pipeline up (keys, restore network, topology, one role per
//!   step) and registers each step's handler from the Lambda binary's registry
//!   ([`snapferry_lambda::handler`]), so the handlers are the very ones the Lambdas run.
//! - [`demo`]: the demo, the long-running local pipeline and the schedule on demand.

pub mod demo;
mod deploy;
mod host;
pub mod pipeline;

pub use deploy::{
    DeployOptions, DeployedQueue, DeployedSchedule, Deployment, deploy, ensure_copy_ledger, queue_policy, step_role,
};
pub use host::Host;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "snapferry-local",
    version,
    about = "Run the snapferry pipeline on the local emulator (the operator CLI's demo, local and fire-schedule)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole chain on a local emulator, and show every backup verified.
    ///
    /// Databases and volumes backed up into a second account, copied to another region
    /// and restore-tested; ends with a table.
    Demo(demo::DemoArgs),
    /// Run the pipeline locally against an emulator until Ctrl-C (no demo data).
    Local(demo::LocalArgs),
    /// Deliver the scheduled steps' events now, as EventBridge would.
    ///
    /// Every scheduled step: create-snapshot, expire and reconcile in both accounts, and
    /// the restore sweep (`--step` for one of them).
    FireSchedule(demo::FireArgs),
    /// Check step environments with the parsers the Lambda runs at init.
    ///
    /// Reads JSON from standard input: a list of `{"function": "...", "step": "<handler>",
    /// "environment": {"VAR": "value", ...}}` (the environments the CDK stacks render, with
    /// their CloudFormation references replaced by placeholders). Prints one line per
    /// function; exit 1 when any is refused, naming the variable.
    #[command(after_help = "Example (the infra tests run it so):\n  \
        snapferry-local check-env < environments.json")]
    CheckEnv,
    /// Print every function's environment as the local host renders it (every optional
    /// feature on, placeholder accounts and ARNs), as JSON `check-env` reads.
    LocalEnv,
    /// Print every step's role policy as the local host renders it from
    /// `shared/permissions.json`, for the deployment described on standard input.
    ///
    /// Reads JSON: the scope (`{"partition": "aws", "account": "...", "region": "...",
    /// "extra_regions": [...], "sources": [["account", "region"], ...], "sharing_key": ...,
    /// "target_key": ..., "restore_subnet_group": ..., "queue_arn": ..., "dlq_arn": ...,
    /// "bus_arn": ..., "step_queue_arns": {"step": "arn"}, "source_database_secrets": [...]}`,
    /// every field optional). Prints `{"<step>": <policy document>, ...}`. The infra tests
    /// compare it with the CDK's rendering of the same roles.
    #[command(after_help = "Example (the infra tests run it so):\n  \
        snapferry-local role-policy < scope.json")]
    RolePolicy,
}

pub async fn run(cli: Cli) -> Result<ExitCode, snapferry::Error> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Local(args) => demo::local(args).await,
        Command::FireSchedule(args) => demo::fire_schedule(args).await,
        Command::CheckEnv => check_env(std::io::stdin().lock()),
        Command::LocalEnv => {
            let rendered: Vec<serde_json::Value> = pipeline::PipelineOptions::everything()
                .rendered()
                .into_iter()
                .map(|(step, environment)| serde_json::json!({"function": step, "step": step, "environment": environment}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&rendered).expect("JSON"));
            Ok(ExitCode::SUCCESS)
        }
        Command::RolePolicy => {
            println!("{}", serde_json::to_string_pretty(&role_policies(std::io::stdin().lock())?).expect("JSON"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `role-policy`: every step's role policy for the scope `input` describes.
pub fn role_policies(input: impl std::io::Read) -> Result<serde_json::Value, snapferry::Error> {
    let scope: snapferry::permissions::Scope = serde_json::from_reader(input)
        .map_err(|e| snapferry::Error::BadInput(format!("role-policy reads a JSON scope: {e}")))?;
    let permissions = snapferry::permissions::Permissions::load();
    Ok(permissions.steps.keys().map(|step| (step.clone(), permissions.role_policy(step, &scope))).collect())
}

/// One function's environment, as `check-env` reads it.
#[derive(Debug, serde::Deserialize)]
struct FunctionEnvironment {
    function: String,
    step: String,
    environment: std::collections::BTreeMap<String, String>,
}

/// `check-env`: each environment of `input` parsed as its step's handler parses it at init.
pub fn check_env(input: impl std::io::Read) -> Result<ExitCode, snapferry::Error> {
    let functions: Vec<FunctionEnvironment> = serde_json::from_reader(input)
        .map_err(|e| snapferry::Error::BadInput(format!("check-env reads a JSON list of environments: {e}")))?;
    let mut refused = 0;
    for f in &functions {
        let checked =
            snapferry::config::Env::new(&f.step, f.environment.clone()).and_then(|env| snapferry_lambda::check(&env));
        match checked {
            Ok(()) => println!("ok       {} ({})", f.function, f.step),
            Err(e) => {
                refused += 1;
                println!("REFUSED  {} ({}): {e}", f.function, f.step);
            }
        }
    }
    println!("{} environment(s) checked, {refused} refused", functions.len());
    Ok(if refused == 0 && !functions.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_environment_the_local_host_renders_is_one_its_step_accepts() {
        let rendered = pipeline::PipelineOptions::everything().rendered();
        assert_eq!(rendered.len(), snapferry_lambda::STEPS.len());
        let input: Vec<serde_json::Value> = rendered
            .iter()
            .map(|(step, environment)| serde_json::json!({"function": step, "step": step, "environment": environment}))
            .collect();
        let input = serde_json::to_vec(&input).unwrap();
        assert_eq!(check_env(input.as_slice()).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn check_env_refuses_an_environment_its_step_would_refuse_and_an_empty_list() {
        let bad = serde_json::json!([{"function": "snapferry-restore", "step": "restore",
            "environment": {"QUEUE_URL": "q", "DLQ_URL": "d", "RESTORE_EVERY_NTH": "0"}}]);
        assert_eq!(check_env(bad.to_string().as_bytes()).unwrap(), ExitCode::FAILURE);
        assert_eq!(check_env(&b"[]"[..]).unwrap(), ExitCode::FAILURE);
        assert!(check_env(&b"{"[..]).is_err());
    }
}
