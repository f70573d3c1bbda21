//! The operator CLI. Subcommands live in their own modules; `main.rs` only parses and runs.

pub mod account;
pub mod demo;
pub mod dlq;
pub mod doctor;
pub mod local;
pub mod pipeline;
pub mod status;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "snapferry", version, about = "Operate the snapferry backup pipeline", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every step's dead-letter queue: list them, show why messages failed, replay them.
    Dlq(dlq::DlqArgs),
    /// How each protected database, cluster and volume's backups stand.
    ///
    /// How far its newest backup got, its recovery point against the RPO, and where and
    /// why a chain is stuck. Exit 1 when any is stalled or past its RPO.
    Status(status::StatusArgs),
    /// Find what will make backups fail, before they do, and the fix for each.
    ///
    /// A preflight over the backup account and a source account: keys, key policies, the
    /// bus policy, DLQs, quota headroom, resources that cannot be protected; each finding
    /// with the AWS error it will cause and the fix. Exit 1 on any warning or error.
    Doctor(doctor::DoctorArgs),
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
}

pub async fn run(cli: Cli) -> Result<ExitCode, snapferry::Error> {
    match cli.command {
        Command::Dlq(args) => dlq::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Local(args) => demo::local(args).await,
        Command::FireSchedule(args) => demo::fire_schedule(args).await,
    }
}
