//! `kv-runner upload FILE`: sends a measurement document to a kv-hub results service.
//!
//! The document is validated locally with the estimator's schema first (a broken file never
//! leaves the machine, and the error names the field). The POST is retried with exponential
//! backoff on connection errors, timeouts, 5xx and 429; that is safe because the hub stores a
//! document once by its content hash, so a retry of an upload whose answer was lost is answered
//! "already stored". Other 4xx answers are final and print the hub's reason.

use crate::cli::UploadArgs;
use anyhow::{anyhow, bail, Context, Result};
use kv_estimator::measurement::Measurement;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use std::time::Duration;

/// Attempts before giving up on a retryable failure.
pub const ATTEMPTS: u32 = 5;
/// Wait before the second attempt; doubled before each further one (0.5, 1, 2, 4 s).
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The hub's id of the document.
    pub id: i64,
    /// The hub already had this document (same content).
    pub duplicate: bool,
    /// Where the document can be read back: `{url}/api/v1/measurements/{id}`.
    pub location: String,
}

/// Where `cargo xtask serve` keeps the upload token of the local hub it starts.
pub const LOCAL_TOKEN_FILE: &str = "data/upload-token";

/// The token to send: the one given, else, for a hub on this machine, the token `cargo xtask
/// serve` wrote to `data/upload-token` (in the current directory).
pub fn resolve_token(url: &str, given: Option<&str>) -> Option<String> {
    if let Some(t) = given.filter(|t| !t.trim().is_empty()) {
        return Some(t.trim().to_string());
    }
    let host = url.split("://").nth(1).unwrap_or("").split(['/', ':']).next().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return None;
    }
    let t = std::fs::read_to_string(LOCAL_TOKEN_FILE).ok()?.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?.to_string();
    eprintln!("using the local hub's upload token from {LOCAL_TOKEN_FILE}");
    Some(t)
}

pub fn run(args: UploadArgs) -> Result<()> {
    let token = resolve_token(&args.url, args.token.as_deref());
    let up = upload_file(&args.url, token.as_deref(), &args.file)?;
    println!("uploaded {} -> {} ({})", args.file.display(), up.location, if up.duplicate { "already stored" } else { "new" });
    Ok(())
}

/// Validates `text` as a measurement document and uploads it to the hub at `url` (its base URL,
/// e.g. `http://127.0.0.1:8080`). A failed upload's error ends with
/// `retry with: kv-runner upload FILE --url URL`; [`upload_file`] names the file in it.
#[allow(dead_code)] // for `kv-runner measure --upload` (issue #5), which holds the text it wrote
pub fn upload_text(url: &str, token: Option<&str>, text: &str) -> Result<Uploaded> {
    upload_named(url, token, text, "FILE")
}

/// [`upload_text`] for a document in a file, so the retry hint names the file.
pub fn upload_file(url: &str, token: Option<&str>, path: &std::path::Path) -> Result<Uploaded> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
    upload_named(url, token, &text, &file)
}

fn upload_named(url: &str, token: Option<&str>, text: &str, file: &str) -> Result<Uploaded> {
    // a local schema error is final: no request, no retry hint
    Measurement::from_json(text).map_err(|e| anyhow!("{file} is not a valid measurement document: {e}"))?;
    let base = url.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url `{base}` is not an http:// or https:// URL");
    }
    post_with_retries(base, token, text).map_err(|reason| anyhow!("{reason}; retry with: kv-runner upload {file} --url {base}"))
}

/// The error text with its causes (`error sending request: ...: connection refused`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The hub's reason from an error body `{"error": "...", "field": ...}`, else the text itself.
fn reason(status: StatusCode, body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    match parsed.as_ref().and_then(|v| v.get("error")).and_then(serde_json::Value::as_str) {
        Some(e) => e.to_string(),
        None if body.trim().is_empty() => status.canonical_reason().unwrap_or("no reason given").to_string(),
        None => body.trim().chars().take(300).collect(),
    }
}

fn post_with_retries(base: &str, token: Option<&str>, text: &str) -> Result<Uploaded, String> {
    let client = Client::builder()
        // a redirected POST would become a GET: report redirects instead of following them
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))?;
    let endpoint = format!("{base}/api/v1/measurements");
    let mut delay = FIRST_DELAY;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut req = client.post(&endpoint).header(CONTENT_TYPE, "application/json").body(text.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let mut wait = delay;
        match req.send() {
            Err(e) => last = format!("{endpoint} is unreachable: {}", chain(&e)),
            Ok(resp) => {
                let status = resp.status();
                let header = |name| resp.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok()).map(str::to_string);
                let retry_after = header(RETRY_AFTER).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
                let location = header(LOCATION);
                match resp.text() {
                    Err(e) => last = format!("{endpoint} answered {status} but the answer was cut off: {}", chain(&e)),
                    Ok(body) if status.is_success() => return accepted(base, status, &body),
                    Ok(body) if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
                        last = format!("{endpoint} answered {status}: {}", reason(status, &body));
                        if let Some(ra) = retry_after {
                            wait = wait.max(ra.min(MAX_RETRY_AFTER));
                        }
                    }
                    Ok(body) => {
                        // any other answer is final: the same request would be refused the same way
                        let hint = match (status, token, location) {
                            (StatusCode::UNAUTHORIZED, None, _) => " (pass --token or set KV_HUB_TOKEN)".to_string(),
                            (s, _, Some(to)) if s.is_redirection() => format!(" (redirected to {to}; pass the hub's own URL as --url)"),
                            _ => String::new(),
                        };
                        return Err(format!("{endpoint} answered {status}: {}{hint}", reason(status, &body)));
                    }
                }
            }
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(wait);
            delay = delay.saturating_mul(2);
        }
    }
    Err(format!("gave up after {ATTEMPTS} attempts: {last}"))
}

/// A 2xx answer: `{"id": N}` (201, new) or `{"id": N, "duplicate": true}` (200).
fn accepted(base: &str, status: StatusCode, body: &str) -> Result<Uploaded, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("{base} answered {status} with a body that is not JSON ({e}); is the URL a kv-hub?"))?;
    let id = v.get("id").and_then(serde_json::Value::as_i64).ok_or_else(|| format!("{base} answered {status} without an `id`; is the URL a kv-hub?"))?;
    let duplicate = status == StatusCode::OK || v.get("duplicate").and_then(serde_json::Value::as_bool).unwrap_or(false);
    Ok(Uploaded { id, duplicate, location: format!("{base}/api/v1/measurements/{id}") })
}
