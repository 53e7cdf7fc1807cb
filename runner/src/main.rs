//! `kv-runner`: the command-line front end of the KV capacity planner. Parsing lives in `cli.rs`,
//! one file per subcommand; every figure comes from `kv-estimator`.

mod cli;
mod estimate;
mod models;
mod upload;
mod validate;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Estimate(args) => estimate::run(args),
        cli::Command::Models(args) => models::run_list(args),
        cli::Command::Validate(args) => validate::run(args),
        cli::Command::Upload(args) => upload::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // one line, the whole chain: "reading config.json: field `hidden_size`: ..."
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", msg.join(": "));
            ExitCode::from(2)
        }
    }
}
