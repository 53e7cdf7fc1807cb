//! Load measurement of `kv-hub`: the app on `127.0.0.1:0` over a fresh SQLite file in a temporary
//! directory, 16 concurrent HTTP clients; uploads per second for N distinct documents, then the
//! p50/p99 latency of `GET /api/v1/measurements` (a page of 50) and of `GET /api/v1/measurements/{id}`.
//! Prints a Markdown table and the command that produced it.
//!
//! ```sh
//! cargo run --release -p kv-hub --example load            # 4000 uploads, 4000 GETs of each kind
//! cargo run --release -p kv-hub --example load -- 20000   # N uploads
//! ```

#[path = "../tests/helpers/docs.rs"]
mod docs;

use docs::{json, measurement, TOKEN};
use kv_hub::{AppState, Db, Tokens};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 16;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Runs `per_client` requests on each of the 16 clients; returns every latency, sorted, and the
/// wall time.
async fn drive<F, Fut>(per_client: u64, f: F) -> (Vec<Duration>, Duration)
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client as usize);
            for i in 0..per_client {
                let t = Instant::now();
                f(c, i).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let wall = start.elapsed();
    all.sort_unstable();
    (all, wall)
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(4000);
    let per_client = n.div_ceil(CLIENTS);
    let n = per_client * CLIENTS;
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(&dir.path().join("load.db")).expect("database");
    let state = AppState::new(db, Tokens::new([TOKEN]), dir.path().join("dist"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, kv_hub::app(state)).await.expect("serve") });
    let client = reqwest::Client::new();

    // documents are built before the clock starts
    let docs: std::sync::Arc<Vec<String>> = std::sync::Arc::new((0..n).map(|i| json(&measurement(i))).collect());
    let doc_bytes = docs.iter().map(String::len).sum::<usize>() / docs.len().max(1);
    let (c, url, d) = (client.clone(), format!("{base}/api/v1/measurements"), docs.clone());
    let (up_lat, up_wall) = drive(per_client, move |cl, i| {
        let (c, url, body) = (c.clone(), url.clone(), d[(cl * per_client + i) as usize].clone());
        async move {
            let r = c.post(&url).bearer_auth(TOKEN).body(body).send().await.expect("upload");
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        }
    })
    .await;

    let gets = 4000u64.div_ceil(CLIENTS);
    let (c, url) = (client.clone(), format!("{base}/api/v1/measurements?limit=50"));
    let (list_lat, list_wall) = drive(gets, move |cl, i| {
        let (c, url) = (c.clone(), format!("{url}&offset={}", (cl * 7919 + i * 50) % n));
        async move {
            let r = c.get(&url).send().await.expect("list");
            assert_eq!(r.status(), reqwest::StatusCode::OK);
            r.bytes().await.expect("list body");
        }
    })
    .await;
    let (c, base2) = (client.clone(), base.clone());
    let (id_lat, id_wall) = drive(gets, move |cl, i| {
        let (c, url) = (c.clone(), format!("{base2}/api/v1/measurements/{}", 1 + (cl * 104_729 + i * 31) % n));
        async move {
            let r = c.get(&url).send().await.expect("by id");
            assert_eq!(r.status(), reqwest::StatusCode::OK);
            r.bytes().await.expect("document");
        }
    })
    .await;

    let rate = |count: usize, wall: Duration| format!("{:.0}/s", count as f64 / wall.as_secs_f64());
    println!("| operation (16 concurrent clients) | requests | throughput | p50 | p99 |");
    println!("|---|---|---|---|---|");
    println!("| `POST /api/v1/measurements` (new, ~{doc_bytes} B documents) | {n} | {} | {} | {} |", rate(up_lat.len(), up_wall), ms(percentile(&up_lat, 0.5)), ms(percentile(&up_lat, 0.99)));
    println!("| `GET /api/v1/measurements?limit=50` | {} | {} | {} | {} |", list_lat.len(), rate(list_lat.len(), list_wall), ms(percentile(&list_lat, 0.5)), ms(percentile(&list_lat, 0.99)));
    println!("| `GET /api/v1/measurements/{{id}}` | {} | {} | {} | {} |", id_lat.len(), rate(id_lat.len(), id_wall), ms(percentile(&id_lat, 0.5)), ms(percentile(&id_lat, 0.99)));
    println!();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("command: `cargo run --release -p kv-hub --example load -- {n}` ({cpus} CPUs, clients and server in one process, SQLite file in a temporary directory, WAL + synchronous=NORMAL)");
}
