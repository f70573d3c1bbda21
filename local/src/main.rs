use clap::Parser;
use snapferry_cli::{exit_code, init_logging};
use snapferry_local::{Cli, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logging();
    exit_code(run(Cli::parse()).await)
}
