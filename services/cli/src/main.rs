use clap::Parser;
use snapferry_cli::{Cli, exit_code, init_logging, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logging();
    exit_code(run(Cli::parse()).await)
}
