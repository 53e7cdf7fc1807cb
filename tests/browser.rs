//! The calculator page in headless Chromium, served as static files on 127.0.0.1 under a
//! sub-path (as any static host would): the figures it shows equal `kv-runner estimate --json`,
//! permalinks restore every field and report bad ones, dropped files give errors or accuracy
//! rows, the Hub-unreachable path offers the bundled copy, every control is reachable with the
//! keyboard, a phone-width window scrolls only down (wide tables scroll inside their panel).
//! Screenshots and the page's own timings land in `target/e2e/`.

use anyhow::Result;
use kv_e2e::*;
use kv_estimator::measurement::{Measurement, Point, Predicted, Provenance, SCHEMA_VERSION};
use serde_json::Value;

fn host() -> StaticHost {
    StaticHost::start(dist(), "/kv/calc/").expect("static host")
}

fn query_of(permalink: &str) -> String {
    permalink.trim().trim_start_matches('?').to_string()
}

/// The figures on the page, by element id, as the bytes they carry.
async fn page_bytes(b: &Browser, id: &str) -> Result<u64> {
    Ok(b.attr(&format!("#{id}"), "data-bytes").await?.parse()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn shown_figures_equal_the_cli_after_picking_a_model_and_changing_inputs() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    let b = Browser::start().await?;
    b.c.goto(&h.url).await?;
    b.wait("#verdict").await?;
    // pick a bundled model through the filter
    b.type_into("#model-filter", "qwen2.5 7b instruct").await?;
    b.wait("#bundled-list button[data-id='Qwen/Qwen2.5-7B-Instruct']").await?.click().await?;
    b.until("Qwen loaded", "return (document.querySelector('#model-status')||{}).textContent?.includes('Qwen/Qwen2.5-7B-Instruct')").await?;
    // change inputs the way a user does
    b.wait("#in-gpu").await?.select_by_value("l4").await?;
    b.wait("#in-e").await?.select_by_value("sglang").await?;
    b.type_into("#in-n", "4").await?;
    b.type_into("#in-in", "2000").await?;
    b.type_into("#in-out", "500").await?;
    b.wait("#in-kv").await?.select_by_value("fp8").await?;
    b.until("scenario in the link", "return document.querySelector('#permalink').textContent.includes('n=4') && document.querySelector('#permalink').textContent.includes('kv=fp8')").await?;
    let q = query_of(&b.text("#permalink").await?);
    for k in ["m=Qwen/Qwen2.5-7B-Instruct", "gpu=l4", "e=sglang", "in=2000", "out=500", "n=4", "kv=fp8"] {
        assert!(q.contains(k), "{k} missing from {q}");
    }
    // the URL bar holds the same link
    let url = b.c.current_url().await?;
    assert_eq!(url.query(), Some(q.as_str()));
    b.screenshot("main-view-qwen-l4-sglang").await?;
    // the CLI for the same scenario
    let out = runner(&["estimate", "--permalink", &q, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout)?;
    for (id, key) in [("fig-weights", "weights_bytes"), ("fig-kv", "kv_cache_bytes"), ("fig-activation", "activation_bytes"), ("fig-overhead", "overhead_bytes"), ("fig-total", "total_bytes"), ("kv-per-token", "kv_bytes_per_token"), ("fig-capacity", "capacity_bytes")] {
        assert_eq!(page_bytes(&b, id).await?, cli[key].as_u64().unwrap(), "{id} vs {key}");
    }
    assert_eq!(b.attr("#engine-pool", "data-bytes").await?, cli["engine"]["kv_pool_bytes"].to_string());
    assert_eq!(b.attr("#engine-tokens", "data-value").await?, cli["engine"]["kv_tokens"].to_string());
    // how sure: the engine profile's track record in public logs, the sentence the CLI prints
    let human = runner(&["estimate", "--permalink", &q]);
    let line = String::from_utf8_lossy(&human.stdout).lines().find_map(|l| l.strip_prefix("how sure: ").map(str::to_string)).expect("the CLI's track record");
    assert!(line.contains("public SGLang start-up logs"), "{line}");
    assert!(b.text("#engine-track-record").await?.contains(&line), "{line}");
    assert_eq!(b.attr("#max-concurrency", "data-value").await?, cli["max_concurrency"].to_string());
    assert_eq!(b.attr("#verdict", "data-fits").await?, cli["fits"].to_string());
    // every figure states its unit and basis
    assert_eq!(b.attr("#fig-weights", "data-basis").await?, "exact");
    assert_eq!(b.attr("#fig-activation", "data-basis").await?, "modelled");
    let title = b.c.execute("return document.querySelector('#fig-activation td.num').title", vec![]).await?;
    assert!(title.as_str().unwrap_or("").contains("modelled"), "{title}");
    assert!(b.text("#fig-weights").await?.contains("GiB"));
    // a derivation opens on click and shows the formula with values
    b.wait("#fig-kv details summary").await?.click().await?;
    let subst = b.text("#fig-kv .subst").await?;
    assert!(subst.contains(" x ") && subst.contains("="), "{subst}");
    // the reverse solver answers when opened
    b.wait("#solve summary").await?.click().await?;
    let most = b.text("#solve-requests").await?;
    let cli_max = cli["max_concurrency"].as_u64().unwrap();
    assert!(most.starts_with(&format!("{cli_max} ")) || most.contains("requests"), "{most}");
    b.screenshot("reverse-solve").await?;
    b.close().await
}

/// The current value of a form control.
/// The CLI's `--json` answer for a permalink query.
fn cli_json(q: &str) -> Result<Value> {
    Ok(serde_json::from_slice(&runner(&["estimate", "--permalink", q, "--json"]).stdout)?)
}

/// Opens the page at a permalink, waits for its estimate and `control`, checks that the page keeps
/// the link it was opened with, and returns the browser and the CLI's answer for that link.
async fn open_link(url: &str, q: &str, control: &str) -> Result<(Browser, Value)> {
    let b = Browser::start().await?;
    b.c.goto(&format!("{url}?{q}")).await?;
    b.wait("#verdict").await?;
    b.wait(control).await?;
    assert_eq!(query_of(&b.text("#permalink").await?), q);
    Ok((b, cli_json(q)?))
}

async fn value(b: &Browser, css: &str) -> Result<String> {
    Ok(b.c.execute("return document.querySelector(arguments[0]).value", vec![css.into()]).await?.as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permalink_restores_every_field_and_reports_bad_parameters() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    let b = Browser::start().await?;
    let q = "v=1&m=google/gemma-2-9b&gpu=a100-80gb&gpus=2&tp=2&pp=1&dt=bf16&q=none&kv=fp8&e=vllm-v0&ev=0.6.4&in=3000&out=700&n=12&ctx=8192&util=0.85&bs=32&mbt=4096&fa=on";
    b.c.goto(&format!("{}?{q}", h.url)).await?;
    b.wait("#verdict").await?;
    // the controls render once the estimate is on screen
    b.wait("#in-bs").await?;
    for (css, want) in [
        ("#in-gpu", "a100-80gb"),
        ("#in-gpus", "2"),
        ("#in-tp", "2"),
        ("#in-pp", "1"),
        ("#in-dt", "bf16"),
        ("#in-q", "none"),
        ("#in-kv", "fp8"),
        ("#in-e", "vllm-v0"),
        ("#in-ev", "0.6.4"),
        ("#in-in", "3000"),
        ("#in-out", "700"),
        ("#in-n", "12"),
        ("#in-ctx", "8192"),
        ("#in-util", "0.85"),
        ("#in-bs", "32"),
        ("#in-mbt", "4096"),
        ("#in-fa", "on"),
    ] {
        assert_eq!(value(&b, css).await?, want, "{css}");
    }
    assert!(b.text("#model-status").await?.contains("google/gemma-2-9b"));
    // the link the page keeps is the one it was opened with
    assert_eq!(query_of(&b.text("#permalink").await?), q);
    let out = runner(&["estimate", "--permalink", q, "--json"]);
    let cli: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(page_bytes(&b, "fig-total").await?, cli["total_bytes"].as_u64().unwrap());
    b.close().await?;

    // data and expert parallelism travel in the link too, and the page's weights are the CLI's
    let q = "v=1&m=Qwen/Qwen3-30B-A3B&gpu=h100-80gb&tp=1&pp=1&dp=4&ep=on&dt=bf16&q=auto&kv=auto&e=vllm&in=1024&out=256&n=8";
    let (b, cli) = open_link(&h.url, q, "#in-ep").await?;
    assert_eq!(value(&b, "#in-dp").await?, "4");
    assert_eq!(value(&b, "#in-ep").await?, "on");
    assert_eq!(page_bytes(&b, "fig-weights").await?, cli["weights_bytes"].as_u64().unwrap());
    let whole = cli_json(&q.replace("&dp=4&ep=on", ""))?;
    assert!(cli["weights_bytes"].as_u64().unwrap() < whole["weights_bytes"].as_u64().unwrap() / 2, "experts spread over 4 GPUs");
    b.close().await?;

    // CPU offload travels in the link, and the page keeps on the GPU what the CLI does
    let q = "v=1&m=meta-llama/Llama-3.1-8B-Instruct&gpu=rtx-3090&tp=1&pp=1&dt=auto&q=auto&kv=auto&e=vllm&ev=0.17.1&in=1024&out=256&n=4&ctx=8192&util=0.86&offload=12";
    let (b, cli) = open_link(&h.url, q, "#in-offload").await?;
    assert_eq!(value(&b, "#in-offload").await?, "12");
    let kept = cli["weights_bytes"].as_u64().unwrap();
    assert_eq!(page_bytes(&b, "fig-weights").await?, kept);
    let whole = cli_json(&q.replace("&offload=12", ""))?;
    assert!(kept + (12 << 30) <= whole["weights_bytes"].as_u64().unwrap(), "12 GiB stays in host memory");
    b.close().await?;

    // a llama.cpp GGUF preset travels in the link; the page's weights on the GPU are the CLI's
    // (the Q4_K_M mix without the token embedding, which llama.cpp keeps in host memory)
    let q = "v=1&m=meta-llama/Llama-3.1-8B-Instruct&gpu=rtx-4090&tp=1&pp=1&dt=auto&q=q4_k_m&kv=auto&e=llama.cpp&in=1024&out=256&n=1&ctx=8192";
    let (b, cli) = open_link(&h.url, q, "#in-q").await?;
    assert_eq!(value(&b, "#in-q").await?, "q4_k_m");
    assert_eq!(page_bytes(&b, "fig-weights").await?, cli["weights_bytes"].as_u64().unwrap());
    assert_eq!(cli["weights_bytes"].as_u64().unwrap(), 4_617_396_224);
    // the derivation (collapsed under "how") names the mix
    let how = b.c.execute("return document.querySelector('#fig-weights').textContent", vec![]).await?;
    assert!(how.as_str().unwrap_or("").contains("Q4_K_M as llama-quantize lays it out: Q4_K"), "{how}");
    assert!(b.text("#figures").await?.contains("weights gguf Q4_K_M"));
    b.close().await?;

    // llama.cpp with 10 layers on the GPU (issue 12213's setting): the page's weights and total on
    // the GPU are the CLI's, the last ten layers of the Q4_K_M file (1263.13 MiB)
    let q = "v=1&m=meta-llama/Llama-3.1-8B-Instruct&gpu=rtx-3060&tp=1&pp=1&dt=auto&q=q4_k_m&kv=auto&e=llama.cpp&ev=b4800&in=1024&out=256&n=1&ctx=131072&fa=on&ngl=10";
    let (b, cli) = open_link(&h.url, q, "#in-ngl").await?;
    assert_eq!(value(&b, "#in-ngl").await?, "10");
    assert_eq!(page_bytes(&b, "fig-weights").await?, 1_324_482_560);
    assert_eq!(cli["weights_bytes"].as_u64().unwrap(), 1_324_482_560);
    assert_eq!(page_bytes(&b, "fig-total").await?, cli["total_bytes"].as_u64().unwrap());
    // the reverse solver says how many layers fit, as the CLI does
    b.wait("#solve summary").await?.click().await?;
    let most = runner(&["estimate", "--permalink", q, "--json", "--solve"]);
    let most: Value = serde_json::from_slice(&most.stdout)?;
    let ngl = most["solve"]["most_gpu_layers_llamacpp_ngl"].as_u64().unwrap();
    assert!(b.text("#solve-ngl").await?.contains(&format!("(-ngl {ngl})")), "{ngl}");
    // the KV in host memory: none of it on the GPU
    b.wait("#in-nkvo").await?.select_by_value("on").await?;
    b.until("nkvo in the link", "return document.querySelector('#permalink').textContent.includes('nkvo=on')").await?;
    let host = query_of(&b.text("#permalink").await?);
    assert_eq!(page_bytes(&b, "fig-kv").await?, 0);
    assert_eq!(page_bytes(&b, "fig-total").await?, cli_json(&host)?["total_bytes"].as_u64().unwrap());
    b.close().await?;

    // a board with the memory its driver reports keeps the board (TP over its NVSwitch), as the
    // CLI does; "Custom size…" keeps the size on no known board
    let q = "v=1&m=Qwen/Qwen3-8B&gpu=h100-80gb&mem=79&tp=2&pp=1&dt=auto&q=auto&kv=auto&e=vllm&in=1024&out=256&n=8";
    let (b, cli) = open_link(&h.url, q, "#in-mem").await?;
    assert_eq!(value(&b, "#in-gpu").await?, "h100-80gb");
    assert_eq!(value(&b, "#in-mem").await?, "79");
    assert_eq!(page_bytes(&b, "fig-overhead").await?, cli["overhead_bytes"].as_u64().unwrap());
    let how = b.c.execute("return document.querySelector('#fig-overhead').textContent", vec![]).await?;
    assert!(how.as_str().unwrap_or("").contains("NvSwitch fabric of the NVIDIA H100"), "{how}");
    b.wait("#in-gpu").await?.select_by_value("custom").await?;
    b.until("the board dropped from the link", "return !document.querySelector('#permalink').textContent.includes('gpu=h100')").await?;
    let custom = query_of(&b.text("#permalink").await?);
    assert!(custom.contains("mem=79"), "{custom}");
    assert_eq!(page_bytes(&b, "fig-overhead").await?, cli_json(&custom)?["overhead_bytes"].as_u64().unwrap());
    assert!(cli_json(&custom)?["overhead_bytes"].as_u64().unwrap() < cli["overhead_bytes"].as_u64().unwrap(), "no NVSwitch buffers on an unknown board");
    b.close().await?;

    // bad parameters: a notice names each, the fields fall back, the rest applies
    let b = Browser::start().await?;
    b.c.goto(&format!("{}?v=1&m=meta-llama/Llama-3.1-8B-Instruct&n=abc&gpu=h999&tp=2&util=1.5&zz=1", h.url)).await?;
    let notices = b.text("#notices").await?;
    for bad in ["`n` = `abc`", "`gpu` = `h999`", "`util` = `1.5`", "`zz`"] {
        assert!(notices.contains(bad), "{bad} not reported: {notices}");
    }
    b.wait("#verdict").await?;
    // the controls render once the estimate is on screen
    b.wait("#in-tp").await?;
    assert_eq!(value(&b, "#in-tp").await?, "2");
    assert_eq!(value(&b, "#in-n").await?, "1");
    assert_eq!(value(&b, "#in-gpu").await?, "h100-80gb");
    b.screenshot("permalink-notices").await?;
    // an invalid input is refused with the estimator's reason and the old value kept
    b.type_into("#in-tp", "3").await?;
    let err = b.text("#err-tp").await?;
    assert!(err.contains("divisor"), "{err}");
    assert!(b.text("#permalink").await?.contains("tp=2"));
    b.close().await
}

fn measurement_for(model: &str, input_len: u64, output_len: u64) -> String {
    let point = |n: u64, peak: u64| Point {
        concurrency: n,
        input_len,
        output_len,
        weights_bytes: 16_060_522_496,
        kv_cache_bytes: n * (input_len + output_len) * 131_072,
        baseline_bytes: 500 << 20,
        peak_bytes: peak,
        ttft_ms: 120.0,
        decode_ms_mean: 21.0,
        decode_ms_p50: 20.5,
        decode_ms_p95: 24.0,
        tokens_per_s_request: 47.0,
        tokens_per_s_total: 47.0 * n as f64,
        oom: false,
        predicted: Some(Predicted { weights_bytes: 16_060_522_496, kv_cache_bytes: n * (input_len + output_len) * 131_072, activation_bytes: 1 << 30, overhead_bytes: 500 << 20, total_bytes: 20 << 30 }),
        peak_prefill_bytes: None,
        peak_decode_bytes: None,
        skipped: None,
        label: None,
    };
    let m = Measurement {
        schema_version: SCHEMA_VERSION,
        model: model.into(),
        device: "cuda:0".into(),
        dtype: "bf16".into(),
        engine: Some("candle".into()),
        provenance: Provenance { tool: "kv-runner".into(), tool_version: "0.1.0".into(), commit: Some("e2e".into()), gpu: Some("NVIDIA H100 80GB HBM3".into()), time: "2026-11-20T10:00:00Z".into(), ..Provenance::default() },
        points: vec![point(8, 19 << 30), point(32, 40 << 30)],
    };
    serde_json::to_string(&m).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_files_give_errors_or_accuracy_rows() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    let b = Browser::start().await?;
    b.c.goto(&format!("{}?v=1&m=meta-llama/Llama-3.1-8B-Instruct&in=4096&out=1024&n=32", h.url)).await?;
    b.wait("#verdict").await?;
    // a measurement of this model: a row in the accuracy table and points on the chart
    b.drop_file("llama-h100.json", &measurement_for("meta-llama/Llama-3.1-8B-Instruct", 4096, 1024)).await?;
    b.wait("#accuracy-table tr.accuracy-row[data-concurrency='32']").await?;
    let rows = b.c.find_all(fantoccini::Locator::Css("#accuracy-table tr.accuracy-row")).await?;
    assert_eq!(rows.len(), 2);
    let row = b.text("#accuracy-table tr.accuracy-row[data-concurrency='32']").await?;
    assert!(row.contains("H100") && row.contains("candle") && row.contains("2026-11-20") && row.contains('%'), "{row}");
    b.wait("#chart-concurrency circle.marker.measured").await?;
    b.screenshot("measured-overlay").await?;
    // a malformed measurement: a message naming the field, nothing added
    b.drop_file("bad.json", r#"{"schema_version": 2, "points": []}"#).await?;
    b.until("measurement error", "return document.querySelector('#measurement-notes').textContent.includes('schema_version')").await?;
    // a malformed config.json: the estimator's error, the rest of the page keeps working
    b.drop_file("config.json", r#"{"model_type": "llama", "hidden_size": "4096"}"#).await?;
    let err = b.text("#model-error").await?;
    assert!(err.contains("hidden_size") && err.contains("expected a non-negative integer"), "{err}");
    b.screenshot("malformed-config").await?;
    // a truncated one pasted into the text box
    b.wait("#paste summary").await?.click().await?;
    b.wait("#config-text").await?.send_keys(r#"{"model_type": "llama", "hidden_size": 4096,"#).await?;
    b.wait("#use-config").await?.click().await?;
    b.until("truncation reported", "return document.querySelector('#model-error').textContent.includes('not valid JSON')").await?;
    // a valid pasted config works again
    b.c.execute("document.querySelector('#config-text').value = ''", vec![]).await?;
    let cfg = std::fs::read_to_string(repo().join("model-configs/microsoft/phi-2/config.json"))?;
    b.drop_file("phi2.json", &cfg).await?;
    b.until("pasted model", "return (document.querySelector('#model-status')||{}).textContent?.includes('pasted')").await?;
    b.wait("#verdict").await?;
    b.close().await
}

/// Opens the page, sets the Hub endpoint under "Hub settings" and asks it for `id`.
async fn fetch_from_hub(h: &StaticHost, endpoint: &str, id: &str) -> Result<Browser> {
    let b = Browser::start().await?;
    b.c.goto(&h.url).await?;
    b.wait("#verdict").await?;
    b.wait("#hub-settings summary").await?.click().await?;
    b.type_into("#hub-endpoint", endpoint).await?;
    b.type_into("#hub-id", id).await?;
    b.wait("#hub-fetch").await?.click().await?;
    Ok(b)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_hub_offers_the_bundled_copy() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    let b = fetch_from_hub(&h, "http://127.0.0.1:9", "Qwen/Qwen2.5-7B-Instruct").await?;
    let err = b.text("#model-error").await?;
    assert!(err.contains("could not be reached") && err.contains("bundled copy of Qwen/Qwen2.5-7B-Instruct"), "{err}");
    b.screenshot("hub-unreachable").await?;
    // the rest of the page keeps working, and one click uses the bundled copy
    b.wait("#use-bundled").await?.click().await?;
    b.until("bundled copy in use", "return (document.querySelector('#model-status')||{}).textContent?.includes('bundled copy')").await?;
    assert!(b.text("#model-status").await?.contains("Qwen/Qwen2.5-7B-Instruct"));
    b.wait("#verdict").await?;
    // the token is never in the link
    b.type_into("#hub-token", "hf_secret_value").await?;
    assert!(!b.c.current_url().await?.as_str().contains("hf_secret"));
    // a Hub that accepts the connection and never answers: a link to a model that is not bundled
    // shows the controls while its config is loading (they do not wait for an answer)
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_url = format!("http://{}", silent.local_addr()?);
    std::thread::spawn(move || {
        let mut held = vec![];
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    b.type_into("#hub-endpoint", &silent_url).await?;
    b.c.goto(&format!("{}?v=1&m=example-org/not-bundled-7b&n=4", h.url)).await?;
    b.wait("#in-gpu").await?;
    b.wait("#hub-id").await?;
    let status = b.text("#no-result").await?;
    assert!(status.contains("loading example-org/not-bundled-7b"), "{status}");
    b.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_checkpoint_with_hf_quant_config_is_sized_as_the_cli_sizes_it() -> Result<()> {
    // a Hub on 127.0.0.1 holding an NVIDIA ModelOpt export: the base config.json (no
    // quantization_config) and the real hf_quant_config.json of Qwen3-30B-A3B NVFP4
    let root = TempDir::new("fake-hub");
    let files = root.0.join("nvidia/Qwen3-30B-A3B-FP4/resolve/main");
    std::fs::create_dir_all(&files)?;
    std::fs::copy(repo().join("model-configs/Qwen/Qwen3-30B-A3B/config.json"), files.join("config.json"))?;
    std::fs::copy(repo().join("crates/estimator/tests/data/quant/nvidia__Qwen3-30B-A3B-NVFP4.hf_quant_config.json"), files.join("hf_quant_config.json"))?;
    let fake = StaticHost::start(root.0.clone(), "/hub/")?;
    let endpoint = fake.url.trim_end_matches('/').to_string();
    let _one = one_browser_at_a_time();
    let h = host();
    let b = fetch_from_hub(&h, &endpoint, "nvidia/Qwen3-30B-A3B-FP4").await?;
    b.until("checkpoint loaded", "return (document.querySelector('#model-status')||{}).textContent?.includes('nvidia/Qwen3-30B-A3B-FP4')").await?;
    b.wait("#in-gpu").await?.select_by_value("rtx-5090").await?;
    b.until("scenario in the link", "return document.querySelector('#permalink').textContent.includes('gpu=rtx-5090') && document.querySelector('#permalink').textContent.includes('m=nvidia/Qwen3-30B-A3B-FP4')").await?;
    let q = query_of(&b.text("#permalink").await?);
    b.screenshot("hub-modelopt-nvfp4").await?;
    // the CLI with the same Hub fetches both files too
    let out = std::process::Command::new(bin("kv-runner"))
        .args(["estimate", "--permalink", &q, "--json"])
        .env("KV_MODEL_CONFIGS", repo().join("model-configs"))
        .env("HF_ENDPOINT", &endpoint)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout)?;
    for (id, key) in [("fig-weights", "weights_bytes"), ("fig-kv", "kv_cache_bytes"), ("kv-per-token", "kv_bytes_per_token"), ("fig-total", "total_bytes")] {
        assert_eq!(page_bytes(&b, id).await?, cli[key].as_u64().unwrap(), "{id} vs {key}");
    }
    // NVFP4 weights (about 0.3 of bf16) and the FP8 KV the checkpoint was calibrated for
    let bf16 = serde_json::from_slice::<Value>(&runner(&["estimate", "--model", "Qwen/Qwen3-30B-A3B", "--gpu", "rtx-5090", "--json"]).stdout)?;
    let ratio = cli["weights_bytes"].as_f64().unwrap() / bf16["weights_bytes"].as_f64().unwrap();
    assert!((0.28..0.32).contains(&ratio), "nvfp4 / bf16 weights = {ratio}");
    assert_eq!(cli["kv_bytes_per_token"].as_u64().unwrap() * 2, bf16["kv_bytes_per_token"].as_u64().unwrap());
    assert!(b.text("#fig-weights").await?.contains("nvfp4") || b.c.source().await?.contains("nvfp4"), "the page names the scheme");
    b.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_control_is_reachable_with_the_keyboard() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    let b = Browser::start().await?;
    b.c.goto(&h.url).await?;
    b.wait("#verdict").await?;
    b.wait("#compare-add").await?;
    let want = [
        "model-filter", "hub-id", "hub-fetch", "in-gpu", "in-gpus", "in-tp", "in-pp", "in-dt", "in-q", "in-kv", "in-e", "in-ev", "in-util", "in-ctx", "in-bs", "in-mbt", "in-eager", "in-offload", "in-fa", "in-ngl", "in-nkvo", "in-lora", "in-loras", "preset-chat-agent", "preset-rag",
        "preset-long-form", "preset-ci-micro", "in-in", "in-out", "in-n", "copy-link", "compare-id", "compare-add", "service-url", "service-reload",
    ];
    b.c.execute("document.activeElement && document.activeElement.blur(); window.focus();", vec![]).await?;
    let mut seen: Vec<String> = vec![];
    let mut summaries = 0;
    for _ in 0..400 {
        b.press('\u{e004}').await?;
        let v = b.c.execute("const a = document.activeElement; return [a.id || '', a.tagName];", vec![]).await?;
        let id = v[0].as_str().unwrap_or("").to_string();
        if v[1] == "SUMMARY" {
            summaries += 1;
        }
        if !id.is_empty() && !seen.contains(&id) {
            seen.push(id);
        }
        if want.iter().all(|w| seen.iter().any(|s| s == w)) {
            break;
        }
    }
    let missing: Vec<&&str> = want.iter().filter(|w| !seen.iter().any(|s| s == *w)).collect();
    assert!(missing.is_empty(), "not reachable with Tab: {missing:?} (seen {seen:?})");
    assert!(summaries >= 3, "the folded sections (Hub settings, paste, solve) are reachable: {summaries}");
    // a preset applied from the keyboard
    b.c.execute("document.querySelector('#preset-rag').focus()", vec![]).await?;
    b.press('\u{e007}').await?;
    b.until("RAG preset", "return document.querySelector('#permalink').textContent.includes('in=16384')").await?;
    b.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_phone_width_the_page_scrolls_only_down() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    // the widest content the page has: the per-GPU table with byte counts, vLLM's refusal quoted
    // in monospace, the comparison and measurement tables
    let q = "v=1&m=meta-llama/Llama-3.1-70B-Instruct&gpu=l40s&tp=2&pp=1&dt=auto&q=auto&kv=auto&e=vllm&in=4000&out=1000&n=16";
    let (b, cli) = open_link(&h.url, q, "#engine-message").await?;
    assert_eq!(cli["engine"]["fits"], false, "the link shows vLLM's refusal");
    b.c.set_window_size(400, 900).await?;
    b.until("the narrow layout", "return window.innerWidth <= 400").await?;
    let overflow = b
        .c
        .execute(
            "const w = document.documentElement.clientWidth; \
             const wide = [...document.querySelectorAll('.panel, .verdict, .linkbar, header.top, footer.bottom')] \
               .filter(e => e.getBoundingClientRect().right > w + 0.5) \
               .map(e => (e.id || e.className) + ' ends at ' + Math.round(e.getBoundingClientRect().right)); \
             return [document.documentElement.scrollWidth, w, wide.join('; ')];",
            vec![],
        )
        .await?;
    b.screenshot("phone-width-llama70b-l40s").await?;
    let (scroll, width) = (overflow[0].as_u64().unwrap_or(u64::MAX), overflow[1].as_u64().unwrap_or(0));
    assert!(width > 0 && scroll <= width, "the page is {scroll} px wide in a {width} px window: {}", overflow[2]);
    assert_eq!(overflow[2], "", "panels past the right edge");
    // wide tables scroll inside their panel instead
    let table_scrolls = b.c.execute("const p = document.querySelector('#figures'); return p.scrollWidth > p.clientWidth;", vec![]).await?;
    assert_eq!(table_scrolls.as_bool(), Some(true), "the per-GPU table is wider than a 400 px panel and scrolls there");
    b.close().await
}

/// When the first estimate reached the screen, in ms after navigation: the render time the
/// browser records (Element Timing) for the verdict's heading (`elementtiming="estimate"`), the
/// prerendered one or the page's own, whichever was painted first.
async fn estimate_painted(b: &Browser) -> Result<f64> {
    let v = b
        .c
        .execute_async(
            "const done = arguments[0]; let best = 0; \
             const o = new PerformanceObserver(l => { for (const e of l.getEntries()) if (e.identifier === 'estimate') { const t = e.renderTime || e.loadTime; if (t > 0 && (best === 0 || t < best)) best = t; } }); \
             o.observe({type: 'element', buffered: true}); setTimeout(() => { o.disconnect(); done(best); }, 100);",
            vec![],
        )
        .await?;
    Ok(v.as_f64().unwrap_or(0.0))
}

/// Opens `url` and waits for the page; returns when the first estimate reached the screen, in ms
/// after navigation, the first contentful paint, and whether the prerendered frame was shown.
/// With the prerendered frame in the document before the first contentful paint (its inline script
/// runs after it is parsed, and records when), the estimate is in that paint; otherwise it is the
/// page's own, and [`estimate_painted`] says when its heading was painted. (The prerendered
/// heading has no Element Timing entry of its own: the page replaces it before the browser reports
/// its paint.)
async fn open_timed(b: &Browser, url: &str) -> Result<(f64, f64, bool)> {
    b.c.goto(url).await?;
    b.wait("#verdict").await?;
    b.until("first estimate mark", "return !!(window.__kv && window.__kv.first_estimate_ms)").await?;
    let v = b.c.execute("return [(window.__kv || {}).prerendered_ms || 0, (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0]", vec![]).await?;
    let (pre, fcp) = (v[0].as_f64().unwrap_or(0.0), v[1].as_f64().unwrap_or(0.0));
    let painted = estimate_painted(b).await?;
    assert!(painted > 0.0, "no element timing for the estimate at {url}");
    let prerendered = pre > 0.0 && fcp >= pre;
    Ok((if prerendered { fcp } else { painted }, fcp, prerendered))
}

#[tokio::test(flavor = "multi_thread")]
async fn speed_budget_is_recorded() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    // 1. the page as the first thing a just-launched Chromium shows: the browser's own start-up
    //    (network service, first renderer, fonts) falls in this navigation
    let fresh = Browser::start().await?;
    let (first_fresh, _, pre_fresh) = open_timed(&fresh, &h.url).await?;
    fresh.close().await?;
    // 1b. a first visit to a link of another scenario in a running browser: no prerendered
    //     frame, the estimate is the page's own (what the budget measured before that frame)
    let other = Browser::start().await?;
    other.c.goto("data:text/html,<title>before</title><p>another site</p>").await?;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let (first_link, _, pre_link) = open_timed(&other, &format!("{}?v=1&m=Qwen/Qwen3-8B&gpu=l40s&in=8192&out=1024&n=8", h.url)).await?;
    assert!(!pre_link, "a link to another scenario never shows the default's prerendered frame");
    other.close().await?;
    // 2. a first visit in a running browser (another site open before, nothing of ours cached):
    //    what a user who opens a link sees; the budget's figure
    let b = Browser::start().await?;
    b.c.goto("data:text/html,<title>before</title><p>another site</p>").await?;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let (first, fcp, pre) = open_timed(&b, &h.url).await?;
    assert!(pre && pre_fresh, "a link without parameters shows the prerendered frame");
    // the page settles (the bundled measurements load after the first estimate) before changes are timed
    b.until("bundled measurements loaded", "return !!(window.__kv && window.__kv.bundled_measurements_ms)").await?;
    // each change: the time until the last DOM mutation it causes (charts included), observed
    // from outside the page with a MutationObserver; paint is the browser's and not counted
    let mut re: Vec<f64> = vec![];
    for (css, value) in [("#in-n", "8"), ("#in-n", "16"), ("#in-n", "64"), ("#in-in", "8192"), ("#in-out", "512"), ("#in-e", "sglang"), ("#in-kv", "fp8"), ("#in-gpu", "a100-80gb"), ("#in-e", "vllm"), ("#in-n", "32")] {
        let t = b
            .c
            .execute_async(
                "const [css, value, done] = arguments; const el = document.querySelector(css); let last = 0; \
                 const mo = new MutationObserver(() => { last = performance.now(); }); \
                 mo.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true}); \
                 const t0 = performance.now(); el.value = value; el.dispatchEvent(new Event('change', {bubbles: true})); \
                 setTimeout(() => { mo.disconnect(); done(last > 0 ? last - t0 : -1); }, 400);",
                vec![css.into(), value.into()],
            )
            .await?;
        let ms = t.as_f64().unwrap_or(-1.0);
        assert!(ms > 0.0, "{css} = {value} changed nothing on the page");
        re.push(ms);
    }
    assert!(b.text("#permalink").await?.contains("n=32"));
    let v = b.c.execute("return window.__kv", vec![]).await?;
    let resources = b.c.execute("return performance.getEntries().map(e => [e.entryType, e.name.split('/').pop(), Math.round(e.startTime), Math.round(e.responseEnd || e.startTime + e.duration)])", vec![]).await?;
    let frames = b.c.execute("return performance.getEntriesByType('long-animation-frame').map(e => ({start: e.startTime, duration: e.duration, render_start: e.renderStart, style_layout_start: e.styleAndLayoutStart, presentation: e.presentationTime, scripts: e.scripts.map(s => [s.invoker, s.startTime, s.duration])}))", vec![]).await?;
    // a second navigation in the same browser (what a user with a running browser sees)
    let (first_warm, fcp_warm, pre_warm) = open_timed(&b, &format!("{}?v=1&m=meta-llama/Llama-3.1-8B-Instruct&in=2048&out=512&n=16", h.url)).await?;
    assert!(!pre_warm, "another link does not show the default's prerendered frame");

    let warm = b.c.execute("return window.__kv", vec![]).await?;
    let timeline: Vec<f64> = re.clone();
    re.sort_by(f64::total_cmp);
    assert!(first.is_finite() && first > 0.0, "{v}");
    let report = serde_json::json!({
        "first_estimate_ms": first,
        "first_estimate_fresh_browser_ms": first_fresh,
        "first_estimate_warm_ms": first_warm,
        "first_estimate_other_link_ms": first_link,
        "first_contentful_paint_ms": fcp,
        "first_contentful_paint_warm_ms": fcp_warm,
        "recompute_ms": timeline,
        "recompute_median_ms": re[re.len() / 2],
        "recompute_max_ms": re.last(),
        "page_marks": v,
        "page_marks_warm": warm,
        "load_timeline": resources,
        "long_frames": frames,
        "note": "measured by tests/browser.rs speed_budget_is_recorded in headless Chromium against dist/ on 127.0.0.1",
    });
    std::fs::write(artefacts().join("web-timings.json"), serde_json::to_string_pretty(&report)?)?;
    b.screenshot("default-view").await?;
    b.close().await
}

/// The frame index.html carries for a link without parameters (`cargo xtask prerender`) is what
/// the page itself shows for it, figure for figure, and equals the CLI for the same link; a link
/// to another scenario never shows it (and preloads its bundled config), the default's own link
/// (a reload) does.
#[tokio::test(flavor = "multi_thread")]
async fn the_prerendered_default_frame_equals_the_live_page_and_the_cli() -> Result<()> {
    let _one = one_browser_at_a_time();
    let h = host();
    let b = Browser::start().await?;
    b.c.goto(&h.url).await?;
    b.until("the page replaced the prerendered frame", "return !document.getElementById('prerendered') && !!document.querySelector('#in-n')").await?;
    assert!(b.c.execute("return !!(window.__kv || {}).prerendered_ms", vec![]).await?.as_bool().unwrap_or(false), "the prerendered frame was shown");
    // index.html as served (DOMParser runs no script) beside the live page
    let v = b
        .c
        .execute_async(
            "const done = arguments[0]; \
             fetch(location.pathname).then(r => r.text()).then(t => { \
               const d = new DOMParser().parseFromString(t, 'text/html'); \
               const texts = root => ['#verdict', '#breakdown', '#figures table', '#kv-per-token', '#figures p.sub', '#permalink'].map(s => { const e = root.querySelector(s); return e ? e.textContent : null; }); \
               const attrs = root => [...root.querySelectorAll('#verdict [data-value], #verdict[data-fits], #figures [data-bytes]')].map(e => e.id + '=' + (e.getAttribute('data-bytes') || e.getAttribute('data-value') || e.getAttribute('data-fits'))); \
               const pre = d.getElementById('prerendered'); \
               done({pre: texts(d), live: texts(document), pre_attrs: attrs(d), live_attrs: attrs(document), query: pre ? pre.getAttribute('data-query') : null}); \
             });",
            vec![],
        )
        .await?;
    let query = v["query"].as_str().expect("index.html carries a prerendered frame with its link").to_string();
    assert!(v["pre"].as_array().is_some_and(|a| a.iter().all(|x| x.is_string())), "every part prerendered: {}", v["pre"]);
    assert_eq!(v["pre"], v["live"], "prerendered and live texts");
    assert_eq!(v["pre_attrs"], v["live_attrs"], "prerendered and live figures");
    assert!(v["pre_attrs"].as_array().map_or(0, Vec::len) >= 8, "{}", v["pre_attrs"]);
    // the page writes the same link into the address bar
    assert_eq!(query_of(&b.text("#permalink").await?), query);
    let out = runner(&["estimate", "--permalink", &query, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout)?;
    let attrs: Vec<String> = v["pre_attrs"].as_array().unwrap().iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
    for (id, key) in [("fig-weights", "weights_bytes"), ("fig-kv", "kv_cache_bytes"), ("fig-total", "total_bytes"), ("fig-capacity", "capacity_bytes"), ("max-concurrency", "max_concurrency")] {
        assert!(attrs.contains(&format!("{id}={}", cli[key])), "{id} = CLI {key} {} (prerendered: {attrs:?})", cli[key]);
    }
    // the default's own link (what a reload opens) shows it; another link never does
    b.c.goto(&format!("{}?{query}", h.url)).await?;
    b.wait("#verdict").await?;
    assert!(b.c.execute("return !!(window.__kv || {}).prerendered_ms", vec![]).await?.as_bool().unwrap_or(false), "a reload of the default link");
    b.c.goto(&format!("{}?v=1&m=google/gemma-2-9b&gpu=l4&n=4", h.url)).await?;
    b.until("gemma estimate", "return (document.querySelector('#figures p.sub') || {}).textContent?.includes('L4')").await?;
    assert!(!b.c.execute("return !!(window.__kv || {}).prerendered_ms", vec![]).await?.as_bool().unwrap_or(true), "another link shows no prerendered frame");
    assert_eq!(b.c.execute("return document.querySelectorAll('#verdict').length", vec![]).await?.as_u64(), Some(1));
    // its bundled config was preloaded while the wasm loaded, and the page's request used that
    let fetched = b.c.execute("return performance.getEntriesByType('resource').filter(e => e.name.endsWith('google/gemma-2-9b/config.json')).map(e => e.initiatorType)", vec![]).await?;
    assert_eq!(fetched, serde_json::json!(["link"]), "one request for the link's config, the preload");
    b.close().await
}
