//! The operator CLI. Subcommands live in their own modules; `main.rs` only parses and runs.

pub mod demo;

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
    /// Run the demo against a local emulator: two accounts, a snapshot on the AWS-managed
    /// key re-encrypted with the sharing CMK, shared, and visible to the backup account.
    Demo(demo::DemoArgs),
}

pub async fn run(cli: Cli) -> Result<ExitCode, snapferry::Error> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
    }
}
