//! # kv-hub
//!
//! The results service of the KV capacity planner (issue #6): stores measurement documents
//! (`kv_estimator::measurement`, validated by the estimator, never re-parsed here) in SQLite,
//! serves them and the estimate-vs-measurement accuracy as JSON, and serves the built page.
//!
//! [`app`] builds the router from an [`AppState`]; `main.rs` only parses flags, opens the
//! database and serves. Blocking SQLite calls run in `tokio::task::spawn_blocking`.
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/v1/measurements` | bearer token; 201 `{"id"}` + `Location`, 200 `{"id","duplicate":true}`; 401/403/413/400/422 |
//! | `GET /api/v1/measurements?model=&gpu=&engine=&since=&limit=&offset=` | `{"items":[...],"total","limit","offset"}`, newest first |
//! | `GET /api/v1/measurements/{id}` | the stored document; 404, 400 |
//! | `GET /api/v1/accuracy?model=` | `{"model","rows":[AccuracyRow],"summary":[...]}` |
//! | `GET /healthz` | `{"status":"ok","measurements","version"}` |
//! | `GET /*` | the page directory with an SPA fallback to `index.html`; 503 when not built |
//!
//! `since` is a lower bound on the *received* time (the hub's clock when it stored the document),
//! not on the run's `provenance.time`: the received time is always a valid, comparable timestamp
//! and answers "what arrived since I last looked", while the run time is whatever the client
//! wrote. Every error is a JSON body `{"error": "...", "field": "..." | null}`.

pub mod db;
pub mod error;
mod routes;
pub mod tokens;

pub use db::{import_dir, Db, ImportReport};
pub use error::{Error, Result};
pub use tokens::Tokens;

use std::path::PathBuf;
use std::sync::Arc;

/// Largest accepted upload body (one measurement document).
pub const BODY_LIMIT: usize = 256 * 1024;

/// The shared state of every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    tokens: Tokens,
    dist: PathBuf,
}

impl AppState {
    /// A state over an open database, the upload tokens and the page directory.
    pub fn new(db: Db, tokens: Tokens, dist: PathBuf) -> AppState {
        AppState { inner: Arc::new(Inner { db, tokens, dist }) }
    }

    /// The database (blocking calls: use [`AppState::blocking`] from async code).
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The upload tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// The page directory.
    pub fn dist(&self) -> &std::path::Path {
        &self.inner.dist
    }

    /// Runs a blocking database call on the blocking thread pool.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(state.db())).await.map_err(|e| Error::internal(format!("database task failed: {e}")))?
    }
}

/// The service: API routes, CORS for reads, `nosniff` everywhere, the page as the fallback.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}
