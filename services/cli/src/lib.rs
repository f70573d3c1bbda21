//! The operator CLI. Subcommands live in their own modules; `main.rs` only parses and runs.

pub mod account;
pub mod demo;
pub mod dlq;
pub mod local;
pub mod pipeline;

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
    /// Run the whole chain on a local emulator: three databases backed up into a second
    /// account, copied to another region and restore-tested; ends with a table.
    Demo(demo::DemoArgs),
    /// Run the pipeline locally against an emulator until Ctrl-C (no demo data).
    Local(demo::LocalArgs),
    /// Deliver the scheduled steps' events now, as EventBridge would: create-snapshot,
    /// expire-snapshots, expire-copies and the restore sweep (`--step` for one of them).
    FireSchedule(demo::FireArgs),
}

pub async fn run(cli: Cli) -> Result<ExitCode, snapferry::Error> {
    match cli.command {
        Command::Dlq(args) => dlq::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Local(args) => demo::local(args).await,
        Command::FireSchedule(args) => demo::fire_schedule(args).await,
    }
}
