//! The routes: the measurement API, the accuracy view, the health check and the page.
//! Parameters are validated here into typed values once; every failure is an [`Error`], which
//! renders as a JSON body naming the parameter or field.

use crate::db::{Filter, Row};
use crate::error::{Error, Result};
use crate::{AppState, BODY_LIMIT};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use jiff::Timestamp;
use kv_estimator::measurement::{AccuracyRow, Measurement};
use serde::Serialize;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

pub(crate) fn router(state: AppState) -> Router {
    // reads are open to any origin (a page on another host may show the results); writes get no
    // CORS headers at all, and a preflight for them only ever lists GET and HEAD, so no browser
    // page can make a cross-origin upload
    let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::GET, Method::HEAD]);
    Router::new()
        .route("/healthz", get(healthz).layer(cors.clone()))
        .route("/api/v1/measurements", get(list).layer(cors.clone()).post(upload))
        .route("/api/v1/measurements/{id}", get(by_id).layer(cors.clone()))
        .route("/api/v1/accuracy", get(accuracy).layer(cors))
        .route("/api/{*rest}", any(api_not_found))
        .fallback(page)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Result<Json<Value>> {
    let n = state.blocking(|db| db.count()).await?;
    Ok(Json(json!({ "status": "ok", "measurements": n, "version": env!("CARGO_PKG_VERSION") })))
}

impl From<BytesRejection> for Error {
    fn from(r: BytesRejection) -> Error {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge { limit: BODY_LIMIT }
        } else {
            Error::BadBody { message: format!("the request body could not be read: {}", r.body_text()) }
        }
    }
}

/// `POST /api/v1/measurements`: the token is checked before the body is read; the answer is sent
/// only after the row is committed.
async fn upload(State(state): State<AppState>, req: Request) -> Result<Response> {
    state.tokens().check(req.headers())?;
    let body = Bytes::from_request(req, &state).await?;
    let text = std::str::from_utf8(&body).map_err(|e| Error::BadBody { message: format!("the body is not UTF-8 text: {e}") })?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(Error::BadBody { message: format!("the body is not valid JSON (line {}, column {}): {e}", e.line(), e.column()) });
    }
    let m = Measurement::from_json(text).map_err(Error::from_measurement)?;
    let stored = state.blocking(move |db| db.insert(&m)).await?;
    if stored.duplicate {
        return Ok((StatusCode::OK, Json(json!({ "id": stored.id, "duplicate": true }))).into_response());
    }
    let location = format!("/api/v1/measurements/{}", stored.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(json!({ "id": stored.id }))).into_response())
}

fn query_params(q: std::result::Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<Vec<(String, String)>> {
    q.map(|Query(v)| v).map_err(|e| Error::param("(query)", "", &format!("a URL-encoded query ({})", e.body_text())))
}

fn unknown_param(name: &str, value: &str, known: &str) -> Error {
    Error::BadParam { param: name.chars().take(100).collect(), value: value.chars().take(100).collect(), expected: format!("no such parameter; known: {known}") }
}

/// One entry of the list.
#[derive(Serialize)]
struct Item {
    id: i64,
    model: String,
    device: String,
    gpu: Option<String>,
    engine: Option<String>,
    dtype: String,
    time: String,
    received: String,
    measurement: Value,
}

impl TryFrom<Row> for Item {
    type Error = Error;
    fn try_from(r: Row) -> Result<Item> {
        let measurement = serde_json::from_str(&r.document).map_err(|e| Error::internal(format!("stored measurement {} is not JSON: {e}", r.id)))?;
        Ok(Item { id: r.id, model: r.model, device: r.device, gpu: r.gpu, engine: r.engine, dtype: r.dtype, time: r.time, received: r.received, measurement })
    }
}

/// `GET /api/v1/measurements`: filters are exact matches; `since` bounds the received time.
async fn list(State(state): State<AppState>, q: std::result::Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<Json<Value>> {
    let mut f = Filter { limit: DEFAULT_LIMIT, ..Filter::default() };
    for (k, v) in query_params(q)? {
        let text = || (!v.is_empty()).then(|| v.clone());
        match k.as_str() {
            "model" => f.model = text(),
            "gpu" => f.gpu = text(),
            "engine" => f.engine = text(),
            "since" => {
                let t = v.parse::<Timestamp>().map_err(|_| Error::param("since", &v, "an RFC 3339 time with an offset, e.g. 2026-01-31T00:00:00Z"))?;
                f.since = Some(t);
            }
            "limit" => {
                f.limit = v.parse::<u32>().ok().filter(|n| *n <= MAX_LIMIT).ok_or_else(|| Error::param("limit", &v, "an integer from 0 to 500"))?;
            }
            "offset" => {
                f.offset = v.parse::<u64>().ok().filter(|n| i64::try_from(*n).is_ok()).ok_or_else(|| Error::param("offset", &v, "a non-negative integer"))?;
            }
            other => return Err(unknown_param(other, &v, "model, gpu, engine, since, limit, offset")),
        }
    }
    let (limit, offset) = (f.limit, f.offset);
    let (items, total) = state
        .blocking(move |db| {
            let (rows, total) = db.list(&f)?;
            let items = rows.into_iter().map(Item::try_from).collect::<Result<Vec<Item>>>()?;
            Ok((items, total))
        })
        .await?;
    Ok(Json(json!({ "items": items, "total": total, "limit": limit, "offset": offset })))
}

/// `GET /api/v1/measurements/{id}`: the stored (canonical) document as it is.
async fn by_id(State(state): State<AppState>, id: std::result::Result<Path<String>, PathRejection>) -> Result<Response> {
    let Path(raw) = id.map_err(|e| Error::param("id", "", &format!("a measurement id ({})", e.body_text())))?;
    let id = raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| Error::param("id", &raw, "a positive integer measurement id"))?;
    match state.blocking(move |db| db.get(id)).await? {
        Some(doc) => Ok(([(header::CONTENT_TYPE, "application/json")], doc).into_response()),
        None => Err(Error::NotFound { what: format!("measurement {id}") }),
    }
}

/// Per-component mean of the signed and absolute errors over the rows.
#[derive(Serialize)]
struct Summary {
    component: String,
    points: u64,
    mean_error_pct: Option<f64>,
    mean_abs_error_pct: Option<f64>,
}

fn summarise(rows: &[AccuracyRow]) -> Vec<Summary> {
    // (component, points, sum, sum of absolute values), in the order the estimator lists them
    let mut acc: Vec<(String, u64, f64, f64)> = Vec::new();
    for c in rows.iter().flat_map(|r| r.components.iter()) {
        let i = match acc.iter().position(|a| a.0 == c.component) {
            Some(i) => i,
            None => {
                acc.push((c.component.clone(), 0, 0.0, 0.0));
                acc.len() - 1
            }
        };
        if let (Some(e), Some(a)) = (c.error_pct, acc.get_mut(i)) {
            a.1 += 1;
            a.2 += e;
            a.3 += e.abs();
        }
    }
    acc.into_iter()
        .map(|(component, points, sum, abs)| {
            let mean = |s: f64| (points > 0).then(|| s / points as f64);
            Summary { component, points, mean_error_pct: mean(sum), mean_abs_error_pct: mean(abs) }
        })
        .collect()
}

/// `GET /api/v1/accuracy?model=`: the estimator's accuracy rows of every stored measurement of
/// the model (of all models without `model`), and their per-component summary.
async fn accuracy(State(state): State<AppState>, q: std::result::Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<Json<Value>> {
    let mut model = None;
    for (k, v) in query_params(q)? {
        match k.as_str() {
            "model" => model = (!v.is_empty()).then_some(v),
            other => return Err(unknown_param(other, &v, "model")),
        }
    }
    let wanted = model.clone();
    let (rows, summary) = state
        .blocking(move |db| {
            let mut rows = Vec::new();
            for (id, doc) in db.documents(wanted.as_deref())? {
                let m: Measurement = serde_json::from_str(&doc).map_err(|e| Error::internal(format!("stored measurement {id} does not parse: {e}")))?;
                rows.extend(m.accuracy_rows());
            }
            let summary = summarise(&rows);
            Ok((rows, summary))
        })
        .await?;
    Ok(Json(json!({ "model": model, "rows": rows, "summary": summary })))
}

async fn api_not_found(req: Request) -> Error {
    Error::NotFound { what: format!("route {} {}", req.method(), req.uri().path()) }
}

/// The page: files of the dist directory, unknown paths answered with `index.html` (the page
/// routes itself); 503 with a hint while the page is not built. Checked per request, so building
/// the page while the service runs needs no restart.
async fn page(State(state): State<AppState>, req: Request) -> Response {
    let dist = state.dist().to_path_buf();
    let built = tokio::fs::metadata(&dist).await.is_ok_and(|m| m.is_dir());
    if !built {
        return not_built(&dist.display().to_string());
    }
    let index = dist.join("index.html");
    match ServeDir::new(&dist).fallback(ServeFile::new(index)).oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(never) => match never {},
    }
}

fn not_built(dist: &str) -> Response {
    let dist: String = dist
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect();
    let html = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>kv-hub: the page is not built</title>\n\
         <h1>The page is not built</h1>\n\
         <p>There is no page directory <code>{dist}</code>. Run <code>cargo xtask serve</code> to build the page and serve it, \
         or start kv-hub with <code>--dist DIR</code> pointing at a built page.</p>\n\
         <p>The API works meanwhile: <a href=\"/api/v1/measurements\">/api/v1/measurements</a>, <a href=\"/healthz\">/healthz</a>.</p>\n"
    );
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_estimator::measurement::ComponentError;

    fn row(errors: &[(&str, Option<f64>)]) -> AccuracyRow {
        AccuracyRow {
            model: "m".into(),
            device: "cpu".into(),
            gpu: None,
            dtype: "f32".into(),
            engine: "candle".into(),
            time: "2026-01-01T00:00:00Z".into(),
            provenance: "kv-runner 0.1.0".into(),
            concurrency: 1,
            input_len: 1,
            output_len: 1,
            oom: false,
            components: errors.iter().map(|(c, e)| ComponentError { component: (*c).into(), estimated: 1, measured: 1, error_pct: *e }).collect(),
        }
    }

    #[test]
    fn summary_means_signed_and_absolute_errors_skipping_unmeasured() {
        let s = summarise(&[row(&[("weights", Some(10.0)), ("kv_cache", None)]), row(&[("weights", Some(-20.0)), ("kv_cache", Some(4.0))])]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].component.as_str(), s[0].points, s[0].mean_error_pct, s[0].mean_abs_error_pct), ("weights", 2, Some(-5.0), Some(15.0)));
        assert_eq!((s[1].component.as_str(), s[1].points, s[1].mean_error_pct), ("kv_cache", 1, Some(4.0)));
        assert!(summarise(&[]).is_empty());
    }
}
