//! `kv-runner`: the command-line front end of the KV capacity planner. Parsing lives in `cli.rs`,
//! one file per subcommand; every figure comes from `kv-estimator`.

mod cli;
mod env;
mod estimate;
mod measure;
mod models;
mod upload;
mod validate;

use clap::Parser;
use std::process::ExitCode;

/// Counts every heap byte, so `measure` reads exact memory on CPU (see `measure::alloc`).
#[global_allocator]
static ALLOC: measure::alloc::Counting = measure::alloc::Counting;

/// Restores the default SIGPIPE disposition (Rust's runtime ignores it, so writing to a closed pipe
/// such as `kv-runner estimate | head` made `println!` panic): the process ends quietly instead.
#[cfg(unix)]
fn reset_sigpipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler code; it runs at the start of `main`, before
    // any thread exists that could race on the disposition
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // a long `measure` sweep keeps its Ctrl-C save path whatever happens to its output
    #[cfg(unix)]
    if !matches!(cli.command, cli::Command::Measure(_)) {
        reset_sigpipe();
    }
    let result = match cli.command {
        cli::Command::Estimate(args) => estimate::run(args),
        cli::Command::Models(args) => models::run_list(args),
        cli::Command::Validate(args) => validate::run(args),
        cli::Command::Measure(args) => measure::run(args),
        cli::Command::Env(args) => env::run(args),
        cli::Command::Upload(args) => upload::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // one line, the whole chain: "reading config.json: field `hidden_size`: ..."
            // (candle errors carry a backtrace after their first line when RUST_BACKTRACE is set)
            let msg: Vec<String> = e.chain().map(|c| c.to_string().lines().next().unwrap_or("").to_string()).collect();
            eprintln!("error: {}", msg.join(": "));
            ExitCode::from(2)
        }
    }
}
