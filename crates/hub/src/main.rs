//! `kv-hub`: the results service binary. Parses the flags, opens (and on first start fills) the
//! database, binds, prints one `kv-hub: serving http://...` line and serves [`kv_hub::app`] until
//! Ctrl-C or SIGTERM. Errors are one line on stderr and exit code 2, like `kv-runner`.

use anyhow::Context;
use clap::Parser;
use kv_hub::{import_dir, AppState, Db, Tokens};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "kv-hub", version, about = "Results service of the KV capacity planner: stores measurements, serves them and the page")]
struct Cli {
    /// Address to listen on (port 0: any free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// SQLite database file (created with its directory when missing).
    #[arg(long, default_value = "data/kv-hub.db")]
    db: PathBuf,
    /// The built page directory (`trunk build` output), served at `/`.
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Upload tokens, one per line (`#` comments); added to those of KV_HUB_TOKENS (comma separated).
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Measurement files (`*.json`) imported on first start, when the database is empty.
    #[arg(long, default_value = "measurements")]
    import: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("kv-hub: error: {}", msg.join(": "));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let env_tokens = std::env::var("KV_HUB_TOKENS").ok();
    let file_tokens = match &cli.tokens_file {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading the tokens file {}", p.display()))?),
        None => None,
    };
    let tokens = Tokens::parse(env_tokens.as_deref(), file_tokens.as_deref());

    let db = Db::open(&cli.db).with_context(|| format!("opening the database {}", cli.db.display()))?;
    if db.count()? == 0 {
        let report = import_dir(&db, &cli.import).with_context(|| format!("importing {}", cli.import.display()))?;
        for (file, reason) in &report.skipped {
            eprintln!("kv-hub: warning: skipping {}: {reason}", file.display());
        }
        if report.imported > 0 {
            eprintln!("kv-hub: imported {} measurements from {}", report.imported, cli.import.display());
        }
    }
    let count = db.count()?;
    let uploads = if tokens.enabled() { "enabled" } else { "disabled" };
    let state = AppState::new(db, tokens, cli.dist.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cli.addr).await.with_context(|| format!("listening on {}", cli.addr))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        println!("kv-hub: serving http://{addr} (db {}, {count} measurements, uploads {uploads})", cli.db.display());
        axum::serve(listener, kv_hub::app(state)).with_graceful_shutdown(shutdown_signal()).await.context("serving")?;
        eprintln!("kv-hub: stopped");
        anyhow::Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish before the process exits.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
