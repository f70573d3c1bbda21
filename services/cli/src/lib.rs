//! The operator CLI. Subcommands live in their own modules; `main.rs` only parses and runs.
//! `demo`, `local` and `fire-schedule` are the local host's (the `snapferry-local` binary,
//! crate `snapferry-local`): this binary runs that one for them, so it does not link the
//! host, the emulator harness or the demo's database drivers.

pub mod accept;
pub mod account;
pub mod dlq;
pub mod doctor;
pub mod report;
pub mod status;
pub mod table;

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
    /// Evidence for an auditor: every copy's restore test and the recovery point over a period.
    ///
    /// Per protected resource: every copy held with its restore test (time to restore, data
    /// checks, data recovery point), the recovery point achieved over time against the RPO,
    /// gaps past it, failures with their reasons, and locks. Writes report.html (charts,
    /// self-contained), copies.csv, resources.csv, failures.csv and report.json.
    Report(report::ReportArgs),
    /// Accept a copy reported suspicious ("Restore Suspicious"), as a good copy.
    ///
    /// Its data fell against the previous good copy of its resource (a table gone, most rows
    /// gone, older data), so retention kept that previous copy. Accepted, the copy counts as
    /// its resource's newest good copy, and retention may expire the ones before it.
    Accept(accept::AcceptArgs),
    /// Run the whole chain on a local emulator, and show every backup verified.
    ///
    /// Runs `snapferry-local demo` (the local host, built beside this binary by
    /// `cargo build -p snapferry-local`); `snapferry demo --help` shows its options.
    Demo(Forwarded),
    /// Run the pipeline locally against an emulator until Ctrl-C (no demo data).
    ///
    /// Runs `snapferry-local local`.
    Local(Forwarded),
    /// Deliver the scheduled steps' events now, as EventBridge would.
    ///
    /// Runs `snapferry-local fire-schedule`.
    FireSchedule(Forwarded),
}

/// Logs to standard error at `SNAPFERRY_LOG`'s level (`warn` when unset): the output of
/// both binaries is for people, their logs for when something goes wrong.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SNAPFERRY_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
}

/// A command's exit status; an error is printed first.
pub fn exit_code(result: Result<ExitCode, snapferry::Error>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

pub async fn run(cli: Cli) -> Result<ExitCode, snapferry::Error> {
    match cli.command {
        Command::Dlq(args) => dlq::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Accept(args) => accept::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Demo(args) => local_host("demo", args),
        Command::Local(args) => local_host("local", args),
        Command::FireSchedule(args) => local_host("fire-schedule", args),
    }
}

/// The arguments of a local host command, handed to `snapferry-local` as they are
/// (`--help` included).
#[derive(Debug, Clone, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Forwarded {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<std::ffi::OsString>,
}

/// The local host's binary: beside this one (as cargo builds both, and as they are
/// installed together), else `snapferry-local` on the `PATH`.
pub fn local_host_binary() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("snapferry-local"))
        .filter(|beside| beside.is_file())
        .unwrap_or_else(|| "snapferry-local".into())
}

/// Runs `snapferry-local <command> <args>` in this process's place, so its output, exit
/// status and Ctrl-C are the command's own.
fn local_host(command: &str, forwarded: Forwarded) -> Result<ExitCode, snapferry::Error> {
    use std::os::unix::process::CommandExt;
    let binary = local_host_binary();
    let e = std::process::Command::new(&binary).arg(command).args(&forwarded.args).exec();
    Err(snapferry::Error::Config(format!(
        "snapferry {command} is run by the local host, {}, which could not be started ({e}): build it with `cargo build -p snapferry-local`",
        binary.display()
    )))
}
