//! Helpers of the `kv-hub` tests: measurement documents built with the estimator's serde types,
//! an in-process app over a temporary database, requests through `oneshot`, a server on a real
//! socket, and the real `kv-hub` binary as a child process.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use kv_hub::{AppState, Db, Tokens};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use tower::ServiceExt;

pub mod docs;
pub use docs::{json, measurement, value, TOKEN};

/// An app over a fresh database in a temporary directory; `dist` is `<tmp>/dist` (not created).
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub state: AppState,
}

impl TestApp {
    pub fn new(tokens: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("data/kv-hub.db")).unwrap();
        let state = AppState::new(db, Tokens::new(tokens.iter().copied()), dir.path().join("dist"));
        TestApp { dir, state }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data/kv-hub.db")
    }

    pub fn count(&self) -> u64 {
        self.state.db().count().unwrap()
    }

    /// Sends one request through the router (`oneshot`).
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = kv_hub::app(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        Reply { status, headers, body: bytes.to_vec() }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    /// POST /api/v1/measurements with an optional bearer token.
    pub async fn post(&self, token: Option<&str>, body: impl Into<Body>) -> Reply {
        let mut req = Request::builder().method(Method::POST).uri("/api/v1/measurements").header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(body.into()).unwrap()).await
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

/// Serves the app on `127.0.0.1:0` (a real socket) in the current runtime; returns the base URL.
pub async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, kv_hub::app(state)).await.unwrap() });
    format!("http://{addr}")
}

/// Rows and distinct hashes in a database file, read with a separate connection.
pub fn rows_and_hashes(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT COUNT(*), COUNT(DISTINCT hash) FROM measurements", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
}

/// The real `kv-hub` binary, started on port 0; killed (SIGKILL) when dropped.
pub struct Hub {
    pub child: Child,
    /// Kept open so a later line on stdout never meets a closed pipe.
    pub stdout: BufReader<ChildStdout>,
    pub url: String,
    pub first_line: String,
}

impl Hub {
    pub fn start(args: &[&str], tokens: Option<&str>) -> Hub {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kv-hub"));
        cmd.args(["--addr", "127.0.0.1:0"]).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("KV_HUB_TOKENS");
        if let Some(t) = tokens {
            cmd.env("KV_HUB_TOKENS", t);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        if line.is_empty() {
            let out = child.wait_with_output().unwrap();
            panic!("kv-hub did not start: {}", String::from_utf8_lossy(&out.stderr));
        }
        let rest = line.strip_prefix("kv-hub: serving http://").unwrap_or_else(|| panic!("first line: {line}"));
        let addr = rest.split_whitespace().next().unwrap();
        Hub { child, stdout, url: format!("http://{addr}"), first_line: line.trim_end().to_string() }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
