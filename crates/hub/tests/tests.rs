//! Tests of `kv-hub`: every route and error in-process (`oneshot`), concurrent uploads over a real
//! socket into a real SQLite file, and the real binary (start-up line, first-start import,
//! graceful shutdown, and a `kill -9` in the middle of 16 concurrent uploaders).

mod helpers;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use helpers::{json, measurement, rows_and_hashes, serve, value, Hub, TestApp, TOKEN};
use kv_estimator::measurement::Measurement;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// in-process
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn upload_is_stored_once_and_answered_with_its_location() {
    let app = TestApp::new(&[TOKEN]);
    let m = measurement(1);
    let r = app.post(Some(TOKEN), json(&m)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(r.json(), serde_json::json!({ "id": id }));
    assert_eq!(r.header("location").as_deref(), Some(format!("/api/v1/measurements/{id}").as_str()));
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));

    // the same document again, and once more pretty-printed with the keys in another order and an
    // integer written as a float: the same content, so the same row
    let again = app.post(Some(TOKEN), json(&m)).await;
    assert_eq!((again.status, again.json()), (StatusCode::OK, serde_json::json!({ "id": id, "duplicate": true })));
    let mut reordered = serde_json::Map::new();
    let v = value(&m);
    for (k, x) in v.as_object().unwrap().iter().rev() {
        reordered.insert(k.clone(), x.clone());
    }
    let pretty = serde_json::to_string_pretty(&Value::Object(reordered)).unwrap().replace("\"decode_ms_mean\": 8.0", "\"decode_ms_mean\": 8");
    assert!(pretty.contains("\"decode_ms_mean\": 8,"), "{pretty}");
    let r = app.post(Some(TOKEN), pretty).await;
    assert_eq!((r.status, r.json()["id"].as_i64()), (StatusCode::OK, Some(id)));
    assert_eq!(app.count(), 1);

    // the stored document is the canonical one, and reads back as the same measurement
    let got = app.get(&format!("/api/v1/measurements/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(got.text(), json(&m));
    assert_eq!(Measurement::from_json(&got.text()).unwrap(), m);
}

#[tokio::test]
async fn bad_uploads_are_4xx_with_a_json_reason_and_store_nothing() {
    let app = TestApp::new(&[TOKEN, "second-token"]);
    let good = json(&measurement(7));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = value(&measurement(7));
        f(&mut v);
        v.to_string()
    };
    let ten_mib = format!("{{\"pad\":\"{}\"}}", "x".repeat(10 << 20));
    // (name, token, body, status, field, words of the reason)
    type Case<'a> = (&'a str, Option<&'a str>, Body, StatusCode, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        ("no token", None, good.clone().into(), StatusCode::UNAUTHORIZED, None, "Authorization"),
        ("wrong token", Some("nope"), good.clone().into(), StatusCode::UNAUTHORIZED, None, "not accepted"),
        ("10 MiB body", Some(TOKEN), ten_mib.into(), StatusCode::PAYLOAD_TOO_LARGE, None, "262144 bytes"),
        ("truncated JSON", Some(TOKEN), good[..good.len() / 2].to_string().into(), StatusCode::BAD_REQUEST, None, "not valid JSON"),
        ("empty body", Some(TOKEN), Body::empty(), StatusCode::BAD_REQUEST, None, "not valid JSON"),
        ("not UTF-8", Some(TOKEN), vec![0xff, 0xfe, b'{'].into(), StatusCode::BAD_REQUEST, None, "UTF-8"),
        ("schema version 2", Some(TOKEN), with(&|v| v["schema_version"] = 2.into()).into(), StatusCode::UNPROCESSABLE_ENTITY, Some("schema_version"), "version 2 is not supported"),
        ("no schema version", Some(TOKEN), with(&|v| drop(v.as_object_mut().unwrap().remove("schema_version"))).into(), StatusCode::UNPROCESSABLE_ENTITY, Some("schema_version"), "missing"),
        ("negative figure", Some(TOKEN), with(&|v| v["points"][0]["ttft_ms"] = (-5.0).into()).into(), StatusCode::UNPROCESSABLE_ENTITY, Some("points[0].ttft_ms"), "non-negative"),
        ("negative bytes", Some(TOKEN), with(&|v| v["points"][0]["weights_bytes"] = (-1).into()).into(), StatusCode::UNPROCESSABLE_ENTITY, Some("(document)"), "u64"),
        ("absurd figure", Some(TOKEN), with(&|v| v["points"][0]["peak_bytes"] = (1u64 << 51).into()).into(), StatusCode::UNPROCESSABLE_ENTITY, Some("points[0].peak_bytes"), "1 PiB"),
        ("HTML model id", Some(TOKEN), with(&|v| v["model"] = "<script>alert(1)</script>".into()).into(), StatusCode::UNPROCESSABLE_ENTITY, Some("model"), "markup"),
        ("no points", Some(TOKEN), with(&|v| v["points"] = Value::Array(vec![])).into(), StatusCode::UNPROCESSABLE_ENTITY, Some("points"), "between 1 and 10000"),
        ("a JSON array", Some(TOKEN), "[1,2,3]".into(), StatusCode::UNPROCESSABLE_ENTITY, Some("schema_version"), "missing"),
    ];
    for (name, token, body, status, field, needle) in cases {
        let r = app.post(token, body).await;
        assert_eq!(r.status, status, "{name}: {}", r.text());
        let j = r.json();
        let error = j["error"].as_str().unwrap_or_else(|| panic!("{name}: no error text: {j}"));
        assert!(error.contains(needle), "{name}: {error}");
        assert_eq!(j["field"].as_str(), field, "{name}: {j}");
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"), "{name}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"), "{name}");
        }
        assert_eq!(app.count(), 0, "{name}: nothing may be stored");
    }
    let r = app.send(Request::post("/api/v1/measurements").header(header::AUTHORIZATION, format!("Basic {TOKEN}")).body(Body::from(good.clone())).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "not a bearer token");

    // still serving: the second token works, and so do reads
    let r = app.post(Some("second-token"), good).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(app.count(), 1);
    assert_eq!(app.get("/healthz").await.json()["measurements"], 1);
}

#[tokio::test]
async fn uploads_without_configured_tokens_are_refused_with_how_to_enable_them() {
    let app = TestApp::new(&[]);
    for token in [None, Some(TOKEN)] {
        let r = app.post(token, json(&measurement(1))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains("uploads are disabled") && e.contains("KV_HUB_TOKENS") && e.contains("--tokens-file"), "{e}");
    }
    assert_eq!(app.count(), 0);
    assert_eq!(app.get("/api/v1/measurements").await.status, StatusCode::OK, "reads work without tokens");
}

#[tokio::test]
async fn by_id_answers_404_and_400_as_json() {
    let app = TestApp::new(&[TOKEN]);
    let r = app.get("/api/v1/measurements/42").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "measurement 42 not found");
    for bad in ["abc", "0", "-3", "1.5", "99999999999999999999"] {
        let r = app.get(&format!("/api/v1/measurements/{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json()["field"], "id", "{bad}");
    }
    let r = app.get("/api/v1/nothing/here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].as_str().unwrap().contains("/api/v1/nothing/here"));
}

#[tokio::test]
async fn list_filters_pages_and_rejects_bad_parameters() {
    let app = TestApp::new(&[TOKEN]);
    let mut ids = Vec::new();
    for seed in 0..5u64 {
        let mut m = measurement(seed);
        if seed >= 3 {
            m.model = "meta-llama/Llama-3.1-8B-Instruct".into();
            m.engine = Some("vllm".into());
            m.provenance.gpu = Some("NVIDIA A10G".into());
        }
        let r = app.post(Some(TOKEN), json(&m)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        ids.push(r.json()["id"].as_i64().unwrap());
    }

    let r = app.get("/api/v1/measurements").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    let j = r.json();
    assert_eq!((j["total"].as_u64(), j["limit"].as_u64(), j["offset"].as_u64()), (Some(5), Some(50), Some(0)));
    let got: Vec<i64> = j["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(got, ids.iter().rev().copied().collect::<Vec<_>>(), "newest first");
    let first = &j["items"][0];
    let m4 = {
        let mut m = measurement(4);
        m.model = "meta-llama/Llama-3.1-8B-Instruct".into();
        m.engine = Some("vllm".into());
        m.provenance.gpu = Some("NVIDIA A10G".into());
        m
    };
    assert_eq!(first["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!((first["device"].as_str(), first["dtype"].as_str(), first["engine"].as_str(), first["gpu"].as_str()), (Some("cuda:0"), Some("bf16"), Some("vllm"), Some("NVIDIA A10G")));
    assert_eq!(first["time"].as_str(), Some(m4.provenance.time.as_str()));
    assert_eq!(first["measurement"], value(&m4));
    let received = first["received"].as_str().unwrap();
    assert!(received.ends_with('Z') && received.len() == "2026-01-01T00:00:00.000Z".len(), "{received}");

    for (query, total, n) in [
        ("model=Qwen/Qwen2.5-0.5B", 3, 3),
        ("model=meta-llama%2FLlama-3.1-8B-Instruct", 2, 2),
        ("gpu=NVIDIA%20A10G", 2, 2),
        ("engine=candle", 3, 3),
        ("engine=vllm&model=Qwen/Qwen2.5-0.5B", 0, 0),
        ("model=", 5, 5),
        ("limit=2", 5, 2),
        ("limit=2&offset=4", 5, 1),
        ("offset=10", 5, 0),
        ("limit=0", 5, 0),
        ("since=2000-01-01T00:00:00Z", 5, 5),
        ("since=2000-01-01T00:00:00%2B02:00", 5, 5),
        ("since=2100-01-01T00:00:00Z", 0, 0),
    ] {
        let j = app.get(&format!("/api/v1/measurements?{query}")).await.json();
        assert_eq!((j["total"].as_u64(), j["items"].as_array().map(Vec::len)), (Some(total), Some(n)), "{query}: {j}");
    }
    let limit = app.get("/api/v1/measurements?limit=2&offset=1").await.json();
    assert_eq!(limit["items"][0]["id"].as_i64(), Some(ids[3]));

    for (query, param) in [
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=18446744073709551615", "offset"),
        ("since=yesterday", "since"),
        ("since=2026-01-01", "since"),
        ("colour=red", "colour"),
    ] {
        let r = app.get(&format!("/api/v1/measurements?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(r.json()["field"], param, "{query}: {}", r.text());
    }
}

#[tokio::test]
async fn accuracy_is_the_estimators_rows_with_a_summary() {
    let app = TestApp::new(&[TOKEN]);
    let mut docs = Vec::new();
    for seed in 0..3u64 {
        let mut m = measurement(seed);
        m.points[0].weights_bytes += seed << 20; // different errors per document
        docs.push(m);
    }
    let mut other = measurement(9);
    other.model = "google/gemma-2-9b".into();
    let mut oom = measurement(10);
    oom.points[0].oom = true;
    let mut unpredicted = measurement(11);
    unpredicted.points[0].predicted = None;
    for m in docs.iter().chain([&other, &oom, &unpredicted]) {
        assert_eq!(app.post(Some(TOKEN), json(m)).await.status, StatusCode::CREATED);
    }
    docs.push(oom.clone());
    docs.push(unpredicted);

    let r = app.get("/api/v1/accuracy?model=Qwen/Qwen2.5-0.5B").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["model"], "Qwen/Qwen2.5-0.5B");
    let expected: Vec<_> = docs.iter().flat_map(Measurement::accuracy_rows).collect();
    assert_eq!(expected.len(), 4, "3 compared rows and 1 OOM row (no components); the unpredicted point has none");
    // serde_json parses floats to within one ulp (no `float_roundtrip`): compare them rounded
    assert_eq!(rounded(&j["rows"]), rounded(&serde_json::to_value(&expected).unwrap()));

    let summary = j["summary"].as_array().unwrap();
    let names: Vec<&str> = summary.iter().map(|s| s["component"].as_str().unwrap()).collect();
    assert_eq!(names, ["weights", "kv_cache", "activations", "overhead", "peak"]);
    let errors: Vec<f64> = expected.iter().flat_map(|r| &r.components).filter(|c| c.component == "weights").filter_map(|c| c.error_pct).collect();
    assert_eq!(errors.len(), 3);
    let mean = errors.iter().sum::<f64>() / 3.0;
    let mean_abs = errors.iter().map(|e| e.abs()).sum::<f64>() / 3.0;
    assert_eq!(summary[0]["points"], 3);
    assert!((summary[0]["mean_error_pct"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!((summary[0]["mean_abs_error_pct"].as_f64().unwrap() - mean_abs).abs() < 1e-9);

    let gemma = app.get("/api/v1/accuracy?model=google/gemma-2-9b").await.json();
    assert_eq!(gemma["rows"].as_array().unwrap().len(), 1);
    let all = app.get("/api/v1/accuracy").await.json();
    assert_eq!((all["model"].clone(), all["rows"].as_array().unwrap().len()), (Value::Null, 5));
    let none = app.get("/api/v1/accuracy?model=nobody/nothing").await.json();
    assert_eq!((none["rows"].as_array().unwrap().len(), none["summary"].as_array().unwrap().len()), (0, 0));
    let r = app.get("/api/v1/accuracy?gpu=h100").await;
    assert_eq!((r.status, r.json()["field"].as_str()), (StatusCode::BAD_REQUEST, Some("gpu")));
}

/// The value with every non-integer number rounded to 9 decimals.
fn rounded(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => serde_json::json!((n.as_f64().unwrap() * 1e9).round() / 1e9),
        Value::Array(a) => Value::Array(a.iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), rounded(x))).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn healthz_counts_and_names_the_version() {
    let app = TestApp::new(&[TOKEN]);
    app.post(Some(TOKEN), json(&measurement(1))).await;
    let j = app.get("/healthz").await.json();
    assert_eq!(j, serde_json::json!({ "status": "ok", "measurements": 1, "version": env!("CARGO_PKG_VERSION") }));
}

#[tokio::test]
async fn reads_are_open_to_any_origin_writes_are_not() {
    let app = TestApp::new(&[TOKEN]);
    for uri in ["/api/v1/measurements", "/healthz", "/api/v1/accuracy?model=x"] {
        let r = app.send(Request::get(uri).header(header::ORIGIN, "https://elsewhere.example").body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("*"), "{uri}");
    }
    // a browser asks before a cross-origin POST with a token: the answer must not allow it
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/v1/measurements")
        .header(header::ORIGIN, "https://elsewhere.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .body(Body::empty())
        .unwrap();
    let r = app.send(preflight).await;
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(!methods.to_ascii_uppercase().contains("POST"), "preflight allows POST: {methods}");
    assert!(!r.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase().contains("authorization"));
    // and a POST's answer carries no CORS header a page could use to read it
    let post = Request::post("/api/v1/measurements")
        .header(header::ORIGIN, "https://elsewhere.example")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(json(&measurement(1))))
        .unwrap();
    let r = app.send(post).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn page_is_served_with_spa_fallback_and_wasm_type() {
    let app = TestApp::new(&[TOKEN]);
    // not built yet: 503 with the hint, the API unaffected
    let r = app.get("/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("not built") && r.text().contains("cargo xtask serve"), "{}", r.text());
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);

    let dist = app.state.dist().to_path_buf();
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>KV planner</title>").unwrap();
    std::fs::write(dist.join("web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dist.join("assets/app.js"), "console.log(1)").unwrap();
    for (uri, status, ctype, body) in [
        ("/", 200, "text/html", "KV planner"),
        ("/index.html", 200, "text/html", "KV planner"),
        ("/web_bg.wasm", 200, "application/wasm", "asm"),
        ("/assets/app.js", 200, "javascript", "console"),
        ("/planner/qwen?v=1&m=x", 200, "text/html", "KV planner"),
        ("/api/v1/nope", 404, "application/json", "not found"),
    ] {
        let r = app.get(uri).await;
        assert_eq!(r.status.as_u16(), status, "{uri}");
        assert!(r.header("content-type").unwrap_or_default().contains(ctype), "{uri}: {:?}", r.header("content-type"));
        assert!(r.text().contains(body), "{uri}");
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"), "{uri}");
    }
}

#[tokio::test]
async fn import_reads_a_directory_skipping_invalid_files() {
    let app = TestApp::new(&[TOKEN]);
    let dir = app.dir.path().join("measurements");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.json"), json(&measurement(1))).unwrap();
    std::fs::write(dir.join("b.json"), serde_json::to_string_pretty(&measurement(2)).unwrap()).unwrap();
    std::fs::write(dir.join("b-copy.json"), json(&measurement(2))).unwrap();
    std::fs::write(dir.join("broken.json"), "{\"schema_version\": 1,").unwrap();
    std::fs::write(dir.join("v9.json"), json(&measurement(3)).replace("\"schema_version\":1", "\"schema_version\":9")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a measurement").unwrap();
    std::fs::write(dir.join("index.json"), r#"{"files": ["a.json"], "generated_by": "cargo xtask index"}"#).unwrap();
    let report = kv_hub::import_dir(app.state.db(), &dir).unwrap();
    assert_eq!((report.imported, report.duplicates), (2, 1));
    let skipped: Vec<String> = report.skipped.iter().map(|(p, why)| format!("{}: {why}", p.file_name().unwrap().to_string_lossy())).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].starts_with("broken.json: ") && skipped[1].starts_with("v9.json: ") && skipped[1].contains("version 9"), "{skipped:?}");
    assert_eq!(app.count(), 2);
    let missing = kv_hub::import_dir(app.state.db(), &app.dir.path().join("no-such-dir")).unwrap();
    assert_eq!(missing, kv_hub::ImportReport::default());
}

#[test]
fn database_is_migrated_once_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/hub.db");
    let db = kv_hub::Db::open(&path).unwrap();
    db.insert(&measurement(1)).unwrap();
    drop(db);
    let db = kv_hub::Db::open(&path).unwrap();
    assert_eq!(db.count().unwrap(), 1, "reopening keeps the rows");
    drop(db);
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).unwrap(), "wal");
    assert_eq!(c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), 1);
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let e = kv_hub::Db::open(&path).unwrap_err();
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// real socket, real SQLite file
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_clients_upload_two_thousand_measurements_over_a_socket() {
    let app = TestApp::new(&[TOKEN]);
    let base = serve(app.state.clone()).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/measurements");
    let mut tasks = Vec::new();
    for c in 0..16u64 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..125u64 {
                let r = client.post(&url).bearer_auth(TOKEN).body(json(&measurement(c * 125 + i))).send().await.unwrap();
                assert_eq!(r.status(), reqwest::StatusCode::CREATED);
                ids.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "every upload got its own id");
    assert_eq!(rows_and_hashes(&app.db_path()), (2000, 2000));

    // re-uploading answers 200 duplicate with the first id
    let first: Value = client.get(format!("{base}/api/v1/measurements?limit=500&offset=1500")).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["total"], 2000);
    for item in first["items"].as_array().unwrap().iter().take(20) {
        let r = client.post(&url).bearer_auth(TOKEN).body(item["measurement"].to_string()).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let j: Value = r.json().await.unwrap();
        assert_eq!((j["id"].clone(), j["duplicate"].clone()), (item["id"].clone(), Value::Bool(true)));
    }

    // 16 clients sending the same new document at once: one row, one 201, fifteen duplicates
    let doc = json(&measurement(99_999));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, doc) = (client.clone(), url.clone(), doc.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.post(&url).bearer_auth(TOKEN).body(doc).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap()["id"].as_i64().unwrap())
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|a| a.0 == 201).count(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.0 == 200).count(), 15, "{answers:?}");
    assert!(answers.iter().all(|a| a.1 == answers[0].1));
    assert_eq!(rows_and_hashes(&app.db_path()), (2001, 2001));

    // a 10 MiB body over a real connection is refused, and the server keeps serving
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(10 << 20));
    if let Ok(r) = client.post(&url).bearer_auth(TOKEN).body(big).send().await {
        assert_eq!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    }
    let health: Value = client.get(format!("{base}/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["measurements"], 2001);
}

// ---------------------------------------------------------------------------------------------
// the real binary
// ---------------------------------------------------------------------------------------------

#[test]
fn binary_prints_the_url_imports_on_first_start_only_and_refuses_uploads_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let import = dir.path().join("measurements");
    std::fs::create_dir_all(&import).unwrap();
    std::fs::write(import.join("one.json"), json(&measurement(1))).unwrap();
    std::fs::write(import.join("two.json"), json(&measurement(2))).unwrap();
    std::fs::write(import.join("bad.json"), "{ nope").unwrap();
    let db = dir.path().join("db/hub.db");
    let db_s = db.to_str().unwrap();
    let dist = dir.path().join("dist");
    let args = ["--db", db_s, "--import", import.to_str().unwrap(), "--dist", dist.to_str().unwrap()];

    let mut hub = Hub::start(&args, None);
    let port = hub.url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert_ne!(port, 0, "the real port is printed");
    assert_eq!(hub.first_line, format!("kv-hub: serving {} (db {db_s}, 2 measurements, uploads disabled)", hub.url));
    let client = reqwest::blocking::Client::new();
    let r = client.post(format!("{}/api/v1/measurements", hub.url)).bearer_auth(TOKEN).body(json(&measurement(3))).send().unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(r.text().unwrap().contains("KV_HUB_TOKENS"));
    let r = client.get(format!("{}/", hub.url)).send().unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    hub.kill9();
    let mut stderr = String::new();
    std::io::Read::read_to_string(hub.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("warning: skipping") && stderr.contains("bad.json"), "{stderr}");

    // second start: the database is not empty, so the directory is not imported again
    std::fs::write(import.join("three.json"), json(&measurement(3))).unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, "# uploaders\nfrom-file # ci\n").unwrap();
    let hub = Hub::start(&[&args[..], &["--tokens-file", tokens.to_str().unwrap()]].concat(), None);
    assert_eq!(hub.first_line, format!("kv-hub: serving {} (db {db_s}, 2 measurements, uploads enabled)", hub.url));
    let r = client.post(format!("{}/api/v1/measurements", hub.url)).bearer_auth("from-file").body(json(&measurement(3))).send().unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
}

#[test]
fn binary_defaults_to_a_database_under_data_and_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kv-hub"))
        .args(["--addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("KV_HUB_TOKENS")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.starts_with("kv-hub: serving http://127.0.0.1:") && line.contains("(db data/kv-hub.db, 0 measurements, uploads disabled)"), "{line}");
    assert!(dir.path().join("data/kv-hub.db").is_file());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kv-hub"))
        .args(["--addr", "127.0.0.1:0", "--tokens-file", "/no/such/tokens"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/tokens"), "{err}");
}

#[cfg(unix)]
#[test]
fn binary_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let none = dir.path().join("none");
    let mut hub = Hub::start(&["--db", db.to_str().unwrap(), "--import", none.to_str().unwrap()], Some(TOKEN));
    let r = reqwest::blocking::Client::new().post(format!("{}/api/v1/measurements", hub.url)).bearer_auth(TOKEN).body(json(&measurement(1))).send().unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let status = std::process::Command::new("kill").args(["-TERM", &hub.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = hub.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "kv-hub did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(hub.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("kv-hub: stopped"), "{stderr}");
}

/// Every upload the hub acknowledged survives a `kill -9` in the middle of 16 concurrent
/// uploaders, and the file passes SQLite's integrity check afterwards.
#[test]
fn kill_9_under_load_loses_no_acknowledged_upload() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let none = dir.path().join("none");
    let args = ["--db", db.to_str().unwrap(), "--import", none.to_str().unwrap()];
    let mut hub = Hub::start(&args, Some(TOKEN));
    let url = format!("{}/api/v1/measurements", hub.url);
    let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in 0..16u64 {
        let (url, acked, sent, failed) = (url.clone(), acked.clone(), sent.clone(), failed.clone());
        threads.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            for i in 0..100_000u64 {
                let doc = json(&measurement(1_000_000 * (c + 1) + i));
                sent.fetch_add(1, Ordering::SeqCst);
                match client.post(&url).bearer_auth(TOKEN).body(doc.clone()).send() {
                    Ok(r) if r.status().is_success() => {
                        let id = r.json::<Value>().unwrap()["id"].as_i64().unwrap();
                        acked.lock().unwrap().push((id, doc));
                    }
                    Ok(r) => {
                        failed.store(true, Ordering::SeqCst);
                        panic!("unexpected answer {}", r.status());
                    }
                    Err(_) => return, // the hub is gone
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 400 && Instant::now() < deadline && !failed.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    hub.kill9();
    for t in threads {
        t.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let in_flight = sent.load(Ordering::SeqCst) - acked.len();
    assert!(acked.len() >= 400, "only {} acknowledged before the deadline", acked.len());
    eprintln!("killed with {} acknowledged uploads and {in_flight} unanswered", acked.len());
    // the committed rows are (at least partly) still in the write-ahead log: the restart replays it
    let wal = std::fs::metadata(dir.path().join("crash.db-wal")).map(|m| m.len()).unwrap_or(0);
    assert!(wal > 0, "no write-ahead log left by the killed process");

    let hub = Hub::start(&args, Some(TOKEN));
    let client = reqwest::blocking::Client::new();
    for (id, doc) in &acked {
        let r = client.get(format!("{}/api/v1/measurements/{id}", hub.url)).send().unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK, "acknowledged upload {id} lost");
        assert_eq!(&r.text().unwrap(), doc, "upload {id} changed");
    }
    let (rows, hashes) = rows_and_hashes(&db);
    assert_eq!(rows, hashes);
    assert!(rows >= acked.len() as i64 && rows <= sent.load(Ordering::SeqCst) as i64, "{rows} rows");
    let c = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)).unwrap(), "ok");
}
