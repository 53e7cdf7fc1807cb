//! Issue #6 end to end: `kv-runner measure` (CPU, the bundled tiny model) `--upload`s to a freshly
//! started `kv-hub` (real SQLite file, real HTTP on 127.0.0.1); headless Chromium opens the page
//! the hub serves with a permalink for that scenario and finds the measured point on the chart and
//! its row in the accuracy table. Also: what the service stores is shown as text, never markup.

use anyhow::Result;
use kv_e2e::*;
use std::process::Command;

const SCENARIO: &str = "v=1&m=kv-planner/tiny-llama&gpu=h100-80gb&tp=1&pp=1&dt=fp32&q=auto&kv=auto&e=candle&in=32&out=8&n=2&dev=cpu";

#[tokio::test(flavor = "multi_thread")]
async fn a_measured_upload_shows_on_the_served_page() -> Result<()> {
    let _one = one_browser_at_a_time();
    let hub = Hub::start(Some("e2e-token"), None)?;
    let dir = TempDir::new("upload");
    let file = dir.0.join("tiny.json");
    let out = Command::new(bin("kv-runner"))
        .args(["measure", "--model", "kv-planner/tiny-llama", "--device", "cpu", "--dtype", "f32", "--concurrency", "1,2,4", "--input-len", "32", "--output-len", "8", "--out"])
        .arg(&file)
        .args(["--upload", &hub.url, "--token", "e2e-token"])
        .env("KV_MODEL_CONFIGS", repo().join("model-configs"))
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("uploaded") && err.contains("(new)"), "{err}");
    assert!(file.is_file(), "the file is written before the upload");
    // the service has it
    let v: serde_json::Value = serde_json::from_str(&http_get(&format!("{}/api/v1/measurements?model=kv-planner/tiny-llama", hub.url))?)?;
    assert_eq!(v["total"], 1, "{v}");
    // the page from the same origin, with a permalink for that scenario
    let b = Browser::start().await?;
    b.c.goto(&format!("{}/?{SCENARIO}", hub.url)).await?;
    b.wait("#verdict").await?;
    let row = b.wait("#accuracy-table tr.accuracy-row[data-origin='service'][data-model='kv-planner/tiny-llama'][data-concurrency='2'][data-input='32'][data-output='8']").await?;
    let text = row.text().await?;
    assert!(text.contains("candle") && text.contains("kv-runner") && text.contains('%'), "{text}");
    // all three points of the sweep have rows (beside the bundled sweep of the same model, which
    // has other prompt lengths), and the chart marks the measured peaks of this scenario
    let uploaded = b.c.find_all(fantoccini::Locator::Css("#accuracy-table tr.accuracy-row[data-origin='service']")).await?;
    assert_eq!(uploaded.len(), 3);
    let bundled = b.c.find_all(fantoccini::Locator::Css("#accuracy-table tr.accuracy-row[data-origin='bundled']")).await?;
    let in_file = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(repo().join("measurements/kv-planner-tiny-llama-cpu-f32.json"))?)?["points"].as_array().map_or(0, |p| p.len());
    assert_eq!(bundled.len(), in_file, "the bundled measurement of the same model is listed too");
    let markers = b.c.find_all(fantoccini::Locator::Css("#chart-concurrency circle.marker.measured")).await?;
    assert_eq!(markers.len(), 3, "one marker per measured concurrency");
    // the KV column is exact (0 % error): candle's cache is what the estimator computes
    let kv_cell = b.c.execute("return document.querySelectorAll('#accuracy-table tr.accuracy-row[data-origin=\"service\"][data-concurrency=\"2\"] td')[6].textContent", vec![]).await?;
    assert_eq!(kv_cell.as_str(), Some("+0.0 %"), "{kv_cell}");
    b.screenshot("served-page-with-uploaded-measurement").await?;
    b.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_are_text_never_markup() -> Result<()> {
    let _one = one_browser_at_a_time();
    let hub = Hub::start(Some("t"), None)?;
    let b = Browser::start().await?;
    // a model id with markup in a permalink: shown as text in the error, no element created
    let evil = "%3Cimg%20src%3Dx%20id%3Dinjected%20onerror%3Dwindow.pwned%3D1%3E/x";
    b.c.goto(&format!("{}/?v=1&m={evil}", hub.url)).await?;
    let msg = b.text("#model-error").await?;
    assert!(msg.contains("<img src=x id=injected"), "{msg}");
    let injected = b.c.execute("return [document.querySelectorAll('#injected').length, window.pwned === 1]", vec![]).await?;
    assert_eq!(injected, serde_json::json!([0, false]));
    b.close().await
}
