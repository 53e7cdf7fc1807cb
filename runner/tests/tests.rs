//! End-to-end tests of the `kv-runner` binary on the bundled configs.

use std::process::Command;

/// A path in the repository, from cargo's run-time `CARGO_MANIFEST_DIR` (see `tests/lib.rs`).
fn repo_path(rel: &str) -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    format!("{dir}/../{rel}")
}

fn runner(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kv-runner"))
        .args(args)
        .env("KV_MODEL_CONFIGS", repo_path("model-configs"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

#[test]
fn gpu_names_as_logs_print_them_pick_the_catalog_entry() {
    let by_name = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "NVIDIA A100-SXM4-40GB", "--json"]);
    assert!(by_name.status.success(), "{}", String::from_utf8_lossy(&by_name.stderr));
    let v: serde_json::Value = serde_json::from_slice(&by_name.stdout).unwrap();
    assert!(v["permalink"].as_str().unwrap().contains("gpu=a100-40gb"), "{}", v["permalink"]);
    let by_id = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "a100-40gb", "--json"]);
    let w: serde_json::Value = serde_json::from_slice(&by_id.stdout).unwrap();
    assert_eq!(v["capacity_bytes"], w["capacity_bytes"]);
    // GH200 by the name nvidia-smi prints is the 96 GB Grace Hopper, not an H200 nor 480 GB
    let gh = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "NVIDIA GH200 480GB", "--json"]);
    assert!(gh.status.success(), "{}", String::from_utf8_lossy(&gh.stderr));
    let g: serde_json::Value = serde_json::from_slice(&gh.stdout).unwrap();
    assert!(g["permalink"].as_str().unwrap().contains("gpu=gh200&"), "{}", g["permalink"]);
    // a board the catalog lacks is refused with the list, not taken for a neighbour (GB300 is no B300)
    let gb = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "NVIDIA GB300", "--json"]);
    assert!(!gb.status.success());
    assert!(String::from_utf8_lossy(&gb.stderr).contains("expected one of h100-80gb"));
}

#[test]
fn an_upload_of_a_bundled_model_is_sized_from_it_when_the_hub_is_unreachable() {
    // the runner() helper points HF_ENDPOINT at a closed port
    let out = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct-AWQ", "--gpu", "l4", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: the Hub is unreachable"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["requested"], "Qwen/Qwen2.5-7B-Instruct-AWQ");
    // the Instruct release it names, not the base (whose 131,072 positions the upload does not have)
    assert_eq!(v["config"]["used"], "Qwen/Qwen2.5-7B-Instruct");
    // AWQ from the id: 4-bit linear layers, bf16 embeddings and head
    let bf16 = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "l4", "--json"]);
    let b: serde_json::Value = serde_json::from_slice(&bf16.stdout).unwrap();
    let (awq, full) = (v["weights_bytes"].as_u64().unwrap(), b["weights_bytes"].as_u64().unwrap());
    assert!(awq < full * 2 / 5, "awq {awq} vs bf16 {full}");
    // an id that is no upload of a bundled model still fails, naming the Hub
    let none = runner(&["estimate", "--model", "someone/entirely-new-model", "--json"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("unreachable"));
}

#[test]
fn a_snapshot_with_a_modelopt_hf_quant_config_is_sized_as_nvfp4() {
    // a local snapshot of an NVIDIA ModelOpt export: the base config.json and, beside it, the
    // real hf_quant_config.json of nvidia's Qwen3-30B-A3B NVFP4 (FP8 KV calibrated)
    let d = temp_dir("nvfp4-snapshot");
    std::fs::copy(repo_path("model-configs/Qwen/Qwen3-30B-A3B/config.json"), d.join("config.json")).unwrap();
    std::fs::copy(repo_path("crates/estimator/tests/data/quant/nvidia__Qwen3-30B-A3B-NVFP4.hf_quant_config.json"), d.join("hf_quant_config.json")).unwrap();
    let dir = d.to_str().unwrap();
    let json = |model: &str| -> serde_json::Value {
        let out = runner(&["estimate", "--model", model, "--gpu", "rtx-5090", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (q, base) = (json(dir), json("Qwen/Qwen3-30B-A3B"));
    let (wq, wb) = (q["weights_bytes"].as_u64().unwrap(), base["weights_bytes"].as_u64().unwrap());
    assert!(wq * 100 / wb < 32 && wq * 100 / wb > 28, "nvfp4 {wq} vs bf16 {wb}");
    // vLLM (newest) takes the checkpoint's FP8 KV under --kv-dtype auto
    assert_eq!(q["kv_bytes_per_token"].as_u64().unwrap() * 2, base["kv_bytes_per_token"].as_u64().unwrap());
    let text = String::from_utf8_lossy(&runner(&["estimate", "--model", dir, "--gpu", "rtx-5090"]).stdout).to_string();
    assert!(text.contains("hf_quant_config.json") && text.contains("nvfp4"), "{text}");
    // the config.json path itself reads the file beside it too
    assert_eq!(json(d.join("config.json").to_str().unwrap())["weights_bytes"], q["weights_bytes"]);
    // a broken file beside the config is named, not skipped
    std::fs::write(d.join("hf_quant_config.json"), "{\"quantization\": ").unwrap();
    let bad = runner(&["estimate", "--model", dir]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("hf_quant_config.json"));
}

#[test]
fn estimate_json_has_the_contract_fields() {
    let out = runner(&["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-80gb", "--concurrency", "32", "--input-len", "4096", "--output-len", "1024", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["weights_bytes"], 16_060_522_496u64);
    assert_eq!(v["kv_bytes_per_token"], 131_072);
    assert_eq!(v["kv_cache_bytes"], 32u64 * 5120 * 131_072);
    for k in ["activation_bytes", "overhead_bytes", "total_bytes"] {
        assert!(v[k].as_u64().is_some(), "{k}");
    }
    assert_eq!(v["fits"], true);
    assert_eq!(v["model"]["family"], "llama");
    assert_eq!(v["model"]["params_total"], 8_030_261_248u64);
    assert_eq!(v["model"]["layers"], 32);
    for k in ["name", "kv_pool_bytes", "kv_tokens", "num_blocks", "max_concurrency"] {
        assert!(!v["engine"][k].is_null(), "engine.{k}");
    }
    let total = v["weights_bytes"].as_u64().unwrap() + v["kv_cache_bytes"].as_u64().unwrap() + v["activation_bytes"].as_u64().unwrap() + v["overhead_bytes"].as_u64().unwrap();
    assert_eq!(v["total_bytes"].as_u64().unwrap(), total);
}

#[test]
fn human_output_is_a_table_with_units() {
    let out = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--explain"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("GiB") && text.contains("exact") && text.contains("modelled"), "{text}");
    assert!(text.contains("permalink: ?v=1&m=Qwen/Qwen2.5-7B-Instruct"));
}

#[test]
fn malformed_config_is_one_line_exit_2() {
    let dir = std::env::temp_dir().join(format!("kvr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, needle) in [
        ("trunc.json", r#"{"model_type": "llama", "hidden_size": 4096, "#, "not valid JSON"),
        ("type.json", r#"{"model_type": "llama", "hidden_size": "4096"}"#, "hidden_size"),
        ("missing.json", r#"{"model_type": "llama", "hidden_size": 4096}"#, "num_hidden_layers"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let out = runner(&["estimate", "--model", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn unreachable_hub_names_bundled_alternatives() {
    // no bundled model is named in it: the error lists the bundled ids nearest to it first
    let out = runner(&["estimate", "--model", "Qwen/Qwen2.6-7B-Instruct"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("unreachable") && err.contains("instead: Qwen/Qwen2.5-7B-Instruct, "), "{err}");
    // a fine-tune named after a bundled release is sized from it, with a warning that says so
    let out = runner(&["estimate", "--model", "someone/Qwen2.5-7B-Instruct-my-tune"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("unreachable") && err.contains("named after Qwen/Qwen2.5-7B-Instruct"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("model-configs/Qwen/Qwen2.5-7B-Instruct/config.json"));
}

#[test]
fn permalink_and_flags_agree() {
    let a = runner(&["estimate", "--permalink", "v=1&m=google/gemma-2-9b&gpu=l4&n=4&in=2000&out=500&e=sglang", "--json"]);
    let b = runner(&["estimate", "--model", "google/gemma-2-9b", "--gpu", "l4", "-n", "4", "--input-len", "2000", "--output-len", "500", "--engine", "sglang", "--json"]);
    assert!(a.status.success() && b.status.success());
    let (a, b): (serde_json::Value, serde_json::Value) = (serde_json::from_slice(&a.stdout).unwrap(), serde_json::from_slice(&b.stdout).unwrap());
    assert_eq!(a["total_bytes"], b["total_bytes"]);
    assert_eq!(a["engine"]["kv_tokens"], b["engine"]["kv_tokens"]);
    // llama.cpp's -fa: the flag and the link's `fa` give the same compute buffer, smaller than
    // without flash attention at a long context on a build before -fa auto
    let link = "v=1&m=meta-llama/Llama-3.1-8B-Instruct&gpu=rtx-4090&e=llama.cpp&ev=b4800&ctx=65536";
    let flag = runner(&["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "rtx-4090", "--engine", "llama.cpp", "--engine-version", "b4800", "--max-model-len", "65536", "--flash-attn", "on", "--json"]);
    let on = runner(&["estimate", "--permalink", &format!("{link}&fa=on"), "--json"]);
    let off = runner(&["estimate", "--permalink", link, "--json"]);
    assert!(flag.status.success() && on.status.success() && off.status.success(), "{}", String::from_utf8_lossy(&flag.stderr));
    let [flag, on, off]: [serde_json::Value; 3] = [flag, on, off].map(|o| serde_json::from_slice(&o.stdout).unwrap());
    assert_eq!(flag["activation_bytes"], on["activation_bytes"]);
    assert!(on["activation_bytes"].as_u64() < off["activation_bytes"].as_u64(), "{} vs {}", on["activation_bytes"], off["activation_bytes"]);
    let bad = runner(&["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--flash-attn", "maybe"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("on or off"), "{}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn every_bundled_model_estimates_or_refuses_clearly() {
    let idx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo_path("model-configs/index.json")).unwrap()).unwrap();
    for m in idx["models"].as_array().unwrap().iter().take(80) {
        let id = m["id"].as_str().unwrap();
        let out = runner(&["estimate", "--model", id, "--json", "--gpu", "b200", "--tp", "1"]);
        if m["supported"] == true {
            assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        } else {
            assert_eq!(out.status.code(), Some(2), "{id}");
        }
    }
}

#[test]
fn validate_scores_the_engine_logs() {
    let cases = repo_path("crates/estimator/tests/data/engine-logs-dev.jsonl");
    let out = runner(&["validate", "--cases", &cases, "--offline", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["cases"], 32);
    assert!(v["summary"]["evaluated"].as_u64().unwrap() >= 20);
    let llama = v["cases"].as_array().unwrap().iter().find(|c| c["id"] == "llamacpp-issue5134-phi2-q4_0-3090-ctx512").unwrap();
    let kv = llama["checks"].as_array().unwrap().iter().find(|c| c["figure"] == "llamacpp_kv_mib").unwrap();
    assert_eq!(kv["logged"], 160.0);
    assert_eq!(kv["estimated"], 160.0);
    // the human table names every case and the summary line
    let out = runner(&["validate", "--cases", &cases, "--offline"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("vllm-issue15360-qwen25-7b-a10g") && text.contains("targets met"), "{text}");
    // a malformed line is one error naming the line, exit 2
    let dir = std::env::temp_dir().join(format!("kvr-val-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": \"x\", \"figures\": 3}\n").unwrap();
    let out = runner(&["validate", "--cases", bad.to_str().unwrap(), "--offline"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cases line 1"));
    // both sets as one: the engines' track records, as the estimator embeds them; `estimate` says
    // the engine's in one line
    let extra = repo_path("crates/estimator/tests/data/engine-logs-extra.jsonl");
    let out = runner(&["validate", "--offline", "--track-record", "--cases", &cases, "--cases", &extra]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["sets"].as_array().unwrap().len(), 2);
    let published: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo_path("crates/estimator/src/track-record.json")).unwrap()).unwrap();
    assert_eq!(got["engines"], published["engines"], "run `cargo xtask accuracy`");
    let vllm = &got["engines"][0];
    assert_eq!(vllm["engine"], "vllm");
    let out = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "l4", "--engine", "vllm-v0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("how sure: in {} public vLLM start-up logs, the KV this profile predicts was within 5 % of the logged figure in {} (", vllm["kv"]["cases"], vllm["kv"]["within_5"]);
    assert!(text.contains(&want), "{text}");
    let out = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "l4", "--engine", "transformers"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("how sure"));
    // --json and --track-record are one output each
    assert_eq!(runner(&["validate", "--offline", "--json", "--track-record", "--cases", &cases]).status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// kv-runner upload: against a scripted HTTP server (exact attempt counts), and against the real
// kv-hub binary when this cargo invocation built it beside kv-runner
// ---------------------------------------------------------------------------------------------

mod upload {
    use kv_estimator::measurement::{Measurement, Point, Predicted, Provenance, SCHEMA_VERSION};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Command, Output, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    fn measurement(seed: u64) -> Measurement {
        Measurement {
            schema_version: SCHEMA_VERSION,
            model: "Qwen/Qwen2.5-0.5B".into(),
            device: "cuda:0".into(),
            dtype: "bf16".into(),
            engine: Some("candle".into()),
            provenance: Provenance { tool: "kv-runner".into(), tool_version: "0.1.0".into(), gpu: Some("NVIDIA L4".into()), time: format!("2026-02-01T00:00:{:02}Z", seed % 60), ..Provenance::default() },
            points: vec![Point {
                concurrency: 1,
                input_len: 512 + seed,
                output_len: 64,
                weights_bytes: 1 << 30,
                kv_cache_bytes: 1 << 28,
                baseline_bytes: 1 << 27,
                peak_bytes: 3 << 29,
                ttft_ms: 10.0,
                decode_ms_mean: 5.0,
                decode_ms_p50: 5.0,
                decode_ms_p95: 6.0,
                tokens_per_s_request: 200.0,
                tokens_per_s_total: 200.0,
                oom: false,
                predicted: Some(Predicted { weights_bytes: 1 << 30, kv_cache_bytes: 1 << 28, activation_bytes: 1 << 26, overhead_bytes: 1 << 27, total_bytes: 3 << 29 }),
                peak_prefill_bytes: None,
                peak_decode_bytes: None,
                skipped: None,
                label: None,
            }],
        }
    }

    /// Writes a document into a fresh per-test directory.
    fn file(test: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kvr-upload-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("sweep.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn upload(args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kv-runner"));
        cmd.arg("upload").args(args).env_remove("KV_HUB_URL").env_remove("KV_HUB_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let out = cmd.output().unwrap();
        (out, start.elapsed())
    }

    /// What the scripted server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        request_line: String,
        authorization: Option<String>,
        body: String,
    }

    /// A server on 127.0.0.1:0 that answers the scripted (status, body) pairs in order, one per
    /// connection, then stops listening (further connections are refused).
    fn scripted(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let (mut length, mut authorization) = (0usize, None);
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => authorization = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
                let mut body_in = vec![0; length];
                reader.read_exact(&mut body_in).unwrap();
                log.lock().unwrap().push(Seen { request_line: request_line.trim().to_string(), authorization, body: String::from_utf8(body_in).unwrap() });
                let mut stream = reader.into_inner();
                let answer = format!("HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (url, seen)
    }

    fn stderr_line(out: &Output) -> String {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    #[test]
    fn upload_reports_new_then_already_stored() {
        let text = serde_json::to_string_pretty(&measurement(1)).unwrap();
        let path = file("new", &text);
        let p = path.to_str().unwrap();
        let (url, seen) = scripted(vec![(201, r#"{"id":7}"#), (200, r#"{"id":7,"duplicate":true}"#)]);
        let (out, _) = upload(&[p, "--url", &format!("{url}/"), "--token", "s3cret"], &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("uploaded {p} -> {url}/api/v1/measurements/7 (new)"));
        // the same through the environment
        let (out, _) = upload(&[p], &[("KV_HUB_URL", &url), ("KV_HUB_TOKEN", "s3cret")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("uploaded {p} -> {url}/api/v1/measurements/7 (already stored)"));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        for s in &seen {
            assert_eq!(s.request_line, "POST /api/v1/measurements HTTP/1.1");
            assert_eq!(s.authorization.as_deref(), Some("Bearer s3cret"));
            assert_eq!(s.body, text, "the file is sent as it is");
        }
    }

    #[test]
    fn refused_token_is_final_with_the_hubs_reason_and_the_retry_command() {
        let path = file("token", &serde_json::to_string(&measurement(2)).unwrap());
        let p = path.to_str().unwrap();
        let (url, seen) = scripted(vec![(401, r#"{"error":"the upload token is not accepted by this kv-hub","field":null}"#), (201, r#"{"id":1}"#)]);
        let (out, _) = upload(&[p, "--url", &url, "--token", "wrong"], &[]);
        let err = stderr_line(&out);
        assert!(err.contains("401") && err.contains("the upload token is not accepted by this kv-hub"), "{err}");
        assert!(err.ends_with(&format!("retry with: kv-runner upload {p} --url {url}")), "{err}");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(seen.lock().unwrap().len(), 1, "a 401 is not retried");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong"), "the token is never printed");
    }

    #[test]
    fn overload_and_server_errors_are_retried_with_backoff() {
        let path = file("retry", &serde_json::to_string(&measurement(3)).unwrap());
        let (url, seen) = scripted(vec![(503, r#"{"error":"busy"}"#), (429, ""), (201, r#"{"id":12}"#)]);
        let (out, took) = upload(&[path.to_str().unwrap(), "--url", &url, "--token", "t"], &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("/api/v1/measurements/12 (new)"));
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert!(took >= Duration::from_millis(1500), "waited 0.5 s then 1 s: {took:?}");
    }

    #[test]
    fn unreachable_hub_is_retried_then_names_the_retry_command() {
        let path = file("down", &serde_json::to_string(&measurement(4)).unwrap());
        let p = path.to_str().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed again
        let url = format!("http://127.0.0.1:{port}");
        let (out, took) = upload(&[p, "--url", &url], &[]);
        let err = stderr_line(&out);
        assert!(err.contains("gave up after 5 attempts") && err.contains("unreachable"), "{err}");
        assert!(err.ends_with(&format!("retry with: kv-runner upload {p} --url {url}")), "{err}");
        assert!(took >= Duration::from_millis(7500), "0.5 + 1 + 2 + 4 s of backoff: {took:?}");
    }

    #[test]
    fn invalid_document_is_refused_locally_naming_the_field() {
        let mut v = serde_json::to_value(measurement(5)).unwrap();
        v["points"][0]["ttft_ms"] = (-1.0).into();
        let path = file("invalid", &v.to_string());
        let (url, seen) = scripted(vec![(201, r#"{"id":1}"#)]);
        let (out, _) = upload(&[path.to_str().unwrap(), "--url", &url, "--token", "t"], &[]);
        let err = stderr_line(&out);
        assert!(err.contains("points[0].ttft_ms") && err.contains("not a valid measurement"), "{err}");
        assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
        let (out, _) = upload(&["/no/such/sweep.json", "--url", &url], &[]);
        assert!(stderr_line(&out).contains("reading /no/such/sweep.json"));
    }

    /// The real service, when `cargo test -p kv-hub -p kv-runner` (or the workspace) built it:
    /// test binaries of a package cannot name another package's binary, so it is looked up beside
    /// kv-runner and the test says so when it is not there.
    #[test]
    fn upload_to_the_real_kv_hub() {
        let hub_bin = std::path::Path::new(env!("CARGO_BIN_EXE_kv-runner")).with_file_name(format!("kv-hub{}", std::env::consts::EXE_SUFFIX));
        if !hub_bin.is_file() {
            eprintln!("skipped: {} is not built (run `cargo test -p kv-hub -p kv-runner`)", hub_bin.display());
            return;
        }
        let dir = std::env::temp_dir().join(format!("kvr-upload-{}-real", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut hub = Command::new(&hub_bin)
            .args(["--addr", "127.0.0.1:0", "--db"])
            .arg(dir.join("hub.db"))
            .arg("--import")
            .arg(dir.join("none"))
            .env("KV_HUB_TOKENS", "real-token")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(hub.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line.strip_prefix("kv-hub: serving ").and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("{line}")).to_string();

        let path = file("real", &serde_json::to_string_pretty(&measurement(6)).unwrap());
        let p = path.to_str().unwrap();
        let (first, _) = upload(&[p, "--url", &url, "--token", "real-token"], &[]);
        let (second, _) = upload(&[p, "--url", &url, "--token", "real-token"], &[]);
        let (bad, _) = upload(&[p, "--url", &url, "--token", "not-it"], &[]);
        let (none, _) = upload(&[p, "--url", &url], &[]);
        let _ = hub.kill();
        let _ = hub.wait();

        assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
        let first = String::from_utf8_lossy(&first.stdout).trim().to_string();
        assert!(first.starts_with(&format!("uploaded {p} -> {url}/api/v1/measurements/")) && first.ends_with("(new)"), "{first}");
        assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), first.replace("(new)", "(already stored)"));
        let err = stderr_line(&bad);
        assert!(err.contains("401") && err.contains("not accepted") && err.ends_with(&format!("--url {url}")), "{err}");
        let err = stderr_line(&none);
        assert!(err.contains("Authorization") && err.contains("KV_HUB_TOKEN"), "{err}");
    }
}

// ---- kv-runner measure (issue #5) ----

/// A tiny config of every family `measure` supports: 2 layers, hidden 64, made here.
fn tiny_configs() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let base = json!({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "float32", "hidden_act": "silu"});
    let families: Vec<(&str, serde_json::Value)> = vec![
        ("llama", json!({})),
        ("granite", json!({})),
        ("mistral", json!({"sliding_window": 32})),
        ("mixtral", json!({"num_local_experts": 4, "num_experts_per_tok": 2})),
        ("qwen2", json!({"tie_word_embeddings": true})),
        ("qwen2_moe", json!({"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64, "decoder_sparse_step": 1})),
        ("qwen3", json!({"head_dim": 16})),
        ("qwen3_moe", json!({"head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "decoder_sparse_step": 1})),
        ("gemma", json!({"head_dim": 16, "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": true})),
        ("gemma2", json!({"head_dim": 16, "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 16, "sliding_window": 32, "tie_word_embeddings": true, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0})),
        ("gemma3_text", json!({"head_dim": 16, "num_key_value_heads": 1, "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 16, "sliding_window": 32, "sliding_window_pattern": 2, "tie_word_embeddings": true})),
        ("phi", json!({"num_key_value_heads": 4, "hidden_act": "gelu_new", "partial_rotary_factor": 0.5, "layer_norm_eps": 1e-5})),
        ("phi3", json!({})),
        ("falcon", json!({"intermediate_size": null, "multi_query": true, "new_decoder_architecture": false, "parallel_attn": true, "bias": false, "alibi": false})),
        ("starcoder2", json!({"hidden_act": "gelu_pytorch_tanh", "use_bias": true, "norm_epsilon": 1e-5})),
        ("stablelm", json!({"partial_rotary_factor": 0.25, "layer_norm_eps": 1e-5})),
        ("olmo", json!({"attention_bias": false})),
        ("olmo2", json!({"attention_bias": false})),
        ("deepseek_v2", json!({"kv_lora_rank": 32, "q_lora_rank": null, "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16, "n_routed_experts": 4, "num_experts_per_tok": 2,
            "moe_intermediate_size": 32, "n_shared_experts": 1, "first_k_dense_replace": 1, "moe_layer_freq": 1, "topk_method": "greedy", "n_group": 1, "topk_group": 1,
            "scoring_func": "softmax", "routed_scaling_factor": 1.0, "norm_topk_prob": false, "rope_scaling": null, "attention_bias": false})),
        ("glm4", json!({"head_dim": 16, "partial_rotary_factor": 0.5, "attention_bias": true})),
        ("mamba", json!({"state_size": 16, "conv_kernel": 4, "expand": 2, "time_step_rank": 4, "num_attention_heads": null, "num_key_value_heads": null})),
    ];
    families
        .into_iter()
        .map(|(t, extra)| {
            let mut c = base.as_object().unwrap().clone();
            c.insert("model_type".into(), json!(t));
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() && !matches!(k.as_str(), "q_lora_rank" | "rope_scaling") {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
            (t, serde_json::Value::Object(c))
        })
        .collect()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kvr-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn measurement(out: &std::process::Output) -> kv_estimator::measurement::Measurement {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    kv_estimator::measurement::Measurement::from_json(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|e| panic!("not a valid measurement: {e}"))
}

#[test]
fn measure_matches_the_estimator_for_every_supported_family() {
    let dir = temp_dir("families");
    let tolerance = kv_estimator::engine::CANDLE_PEAK_TOLERANCE_PCT;
    for (family, config) in tiny_configs() {
        let path = dir.join(format!("{family}.json"));
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        let out = runner(&["measure", "--model", path.to_str().unwrap(), "--device", "cpu", "--concurrency", "1,2", "--input-len", "16,48", "--output-len", "4", "--json"]);
        let m = measurement(&out);
        assert_eq!(m.engine.as_deref(), Some("candle"));
        assert_eq!(m.points.len(), 4, "{family}");
        let mut measured = 0;
        for p in &m.points {
            let pr = p.predicted.as_ref().unwrap_or_else(|| panic!("{family}: no prediction"));
            if let Some(why) = &p.skipped {
                assert!(p.concurrency == 2 && why.contains("at most 1"), "{family}: unexpected skip: {why}");
                continue;
            }
            measured += 1;
            assert!(!p.oom, "{family}");
            let werr = (p.weights_bytes as f64 - pr.weights_bytes as f64).abs() / pr.weights_bytes as f64 * 100.0;
            assert!(werr <= 0.1, "{family}: weights {} measured vs {} estimated", p.weights_bytes, pr.weights_bytes);
            assert_eq!(p.kv_cache_bytes, pr.kv_cache_bytes, "{family} n={} in={}: KV measured vs the estimator's candle profile", p.concurrency, p.input_len);
            let perr = (pr.total_bytes as f64 - p.peak_bytes as f64) / p.peak_bytes as f64 * 100.0;
            assert!(perr.abs() <= tolerance, "{family} n={} in={}: peak {} measured vs {} estimated ({perr:+.1} %, tolerance {tolerance} %)", p.concurrency, p.input_len, p.peak_bytes, pr.total_bytes);
            assert!(p.ttft_ms > 0.0 && p.decode_ms_mean > 0.0 && p.decode_ms_p95 >= p.decode_ms_p50 && p.tokens_per_s_total > 0.0, "{family}: timings");
            assert!(p.peak_bytes >= p.weights_bytes + p.kv_cache_bytes, "{family}: peak below weights + KV");
            // the per-component comparison the page shows
            let c = kv_estimator::measurement::compare(pr, p);
            assert_eq!(c.iter().find(|c| c.component == "kv_cache").and_then(|c| c.error_pct), Some(0.0));
        }
        assert!(measured >= 2, "{family}: only {measured} points measured");
    }
}

#[test]
fn measure_prints_a_document_with_every_field_for_a_bundled_tiny_config() {
    let out = runner(&["measure", "--model", "kv-planner/tiny-llama", "--device", "cpu", "--concurrency", "1,2,4", "--input-len", "64", "--output-len", "16", "--json"]);
    let m = measurement(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["schema_version", "model", "device", "dtype", "provenance", "points"] {
        assert!(!v[k].is_null(), "{k}");
    }
    assert_eq!(m.model, "kv-planner/tiny-llama");
    assert_eq!(v["provenance"]["candle_version"], "0.11.1");
    assert_eq!(m.points.len(), 3);
    for p in v["points"].as_array().unwrap() {
        for k in ["concurrency", "input_len", "output_len", "weights_bytes", "kv_cache_bytes", "baseline_bytes", "peak_bytes", "ttft_ms", "decode_ms_mean", "decode_ms_p50", "decode_ms_p95", "tokens_per_s_request", "tokens_per_s_total", "oom", "predicted"] {
            assert!(p.get(k).is_some_and(|x| !x.is_null()), "point field {k}: {p}");
        }
    }
    // KV doubles with the batch, exactly
    assert_eq!(m.points[1].kv_cache_bytes, 2 * m.points[0].kv_cache_bytes);
    assert_eq!(m.points[2].kv_cache_bytes, 4 * m.points[0].kv_cache_bytes);
}

#[test]
fn measure_records_out_of_memory_under_a_cap_and_skips_what_cannot_fit() {
    let dir = temp_dir("oom");
    let path = dir.join("llama.json");
    std::fs::write(&path, serde_json::to_string(&tiny_configs()[0].1).unwrap()).unwrap();
    let model = path.to_str().unwrap();
    // a cap between what one request and four take, measured and predicted, on this host (whose
    // L2 cache sizes gemm's packing slab, part of every peak)
    let free = measurement(&runner(&["measure", "--model", model, "--concurrency", "1,4,8", "--input-len", "96", "--output-len", "4", "--json"]));
    let (one, four) = (&free.points[0], &free.points[1]);
    let (pred_one, pred_four) = (one.predicted.as_ref().unwrap().total_bytes, four.predicted.as_ref().unwrap().total_bytes);
    let (low, high) = (one.peak_bytes.max(pred_one), four.peak_bytes.min(pred_four));
    assert!(low < high, "one request {low} B, four {high} B");
    let cap_bytes = (low + high) / 2;
    let cap = format!("{:.9}", cap_bytes as f64 / (1u64 << 30) as f64);
    let args = ["measure", "--model", model, "--concurrency", "1,4,8", "--input-len", "96", "--output-len", "4", "--memory-cap-gib", cap.as_str()];
    // predicted not to fit: skipped with the reason
    let m = measurement(&runner(&[&args[..], &["--json"]].concat()));
    assert!(m.points[0].skipped.is_none() && !m.points[0].oom);
    assert!(m.points[1].skipped.as_deref().unwrap_or("").contains("predicted not to fit"), "{:?}", m.points[1]);
    // forced: a real out-of-memory point is recorded, the rest stops cleanly ...
    let m = measurement(&runner(&[&args[..], &["--json", "--force"]].concat()));
    assert!(m.points[1].oom, "{:?}", m.points[1]);
    assert!(m.points[1].peak_bytes > cap_bytes);
    assert!(m.points[2].skipped.as_deref().unwrap_or("").contains("earlier point ran out of memory"));
    // ... or goes on
    let m = measurement(&runner(&[&args[..], &["--json", "--force", "--keep-going"]].concat()));
    assert!(m.points[1].oom && m.points[2].oom);
    let table = runner(&[&args[..], &["--force"]].concat());
    assert!(String::from_utf8_lossy(&table.stdout).contains("OOM at concurrency 4"));
}

#[test]
fn measure_refuses_what_candle_cannot_build() {
    let out = runner(&["measure", "--model", "deepseek-ai/DeepSeek-V3", "--concurrency", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("`deepseek_v3` is not measurable yet") && err.trim().lines().count() == 1, "{err}");
    let out = runner(&["measure", "--model", "google/gemma-3-27b-it", "--concurrency", "1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("gemma3 with more than one KV head is not measurable yet"));
    let out = runner(&["measure", "--model", "kv-planner/tiny-llama", "--device", "cuda:0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built without CUDA") && err.contains("--features cuda"), "{err}");
    let out = runner(&["measure", "--model", "kv-planner/tiny-llama", "--dtype", "int3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dtype `int3`"));
}

#[test]
fn measure_writes_the_file_first_and_prints_csv() {
    let dir = temp_dir("files");
    let file = dir.join("m.json");
    let out = runner(&["measure", "--model", "kv-planner/tiny-llama", "--concurrency", "1,2", "--input-len", "32", "--output-len", "4", "--mixed", "8,32", "--csv", "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("concurrency,input_len,output_len,weights_bytes,kv_cache_bytes"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    let m = kv_estimator::measurement::Measurement::from_json(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(m.points.len(), 4);
    assert!(m.points.iter().any(|p| p.label.as_deref().is_some_and(|l| l.contains("mixed"))));
    // an upload that cannot reach its hub keeps the file and says how to retry
    let file2 = dir.join("m2.json");
    let out = runner(&["measure", "--model", "kv-planner/tiny-llama", "--concurrency", "1", "--input-len", "8", "--output-len", "2", "--out", file2.to_str().unwrap(), "--upload", "http://127.0.0.1:9", "--token", "t"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(file2.is_file());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retry with: kv-runner upload"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn env_describes_the_machine() {
    let out = runner(&["env", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["cpu"]["threads"].as_u64().unwrap() >= 1);
    assert!(v["memory_total_bytes"].as_u64().unwrap() > 1 << 28);
    assert_eq!(v["candle_version"], "0.11.1");
    assert!(v["gpus"].is_array());
    let out = runner(&["env"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("candle:"));
}

/// `kv-runner validate ... | head -1`: the reader goes away after one line of a report larger than
/// a pipe's buffer (75 KB); the runner ends as a Unix filter does (SIGPIPE), without a panic.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv-runner"))
        .args(["validate", "--offline", "--cases", &repo_path("crates/estimator/tests/data/engine-logs-extra.jsonl")])
        .env("KV_MODEL_CONFIGS", repo_path("model-configs"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with('┌'), "{first}");
    // the reader is dropped here: the rest of the output meets a closed pipe
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // 13 = SIGPIPE
    assert!(out.status.success() || out.status.signal() == Some(13), "{:?}", out.status);
}
