//! End-to-end tests of the `kv-runner` binary on the bundled configs.

use std::process::Command;

fn runner(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kv-runner"))
        .args(args)
        .env("KV_MODEL_CONFIGS", concat!(env!("CARGO_MANIFEST_DIR"), "/../model-configs"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap()
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
    let out = runner(&["estimate", "--model", "Qwen/Qwen2.5-7B-Instruct-Nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("unreachable") && err.contains("Qwen/Qwen2.5-7B-Instruct"), "{err}");
}

#[test]
fn permalink_and_flags_agree() {
    let a = runner(&["estimate", "--permalink", "v=1&m=google/gemma-2-9b&gpu=l4&n=4&in=2000&out=500&e=sglang", "--json"]);
    let b = runner(&["estimate", "--model", "google/gemma-2-9b", "--gpu", "l4", "-n", "4", "--input-len", "2000", "--output-len", "500", "--engine", "sglang", "--json"]);
    assert!(a.status.success() && b.status.success());
    let (a, b): (serde_json::Value, serde_json::Value) = (serde_json::from_slice(&a.stdout).unwrap(), serde_json::from_slice(&b.stdout).unwrap());
    assert_eq!(a["total_bytes"], b["total_bytes"]);
    assert_eq!(a["engine"]["kv_tokens"], b["engine"]["kv_tokens"]);
}

#[test]
fn every_bundled_model_estimates_or_refuses_clearly() {
    let idx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../model-configs/index.json")).unwrap()).unwrap();
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
    let cases = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/estimator/tests/data/engine-logs-dev.jsonl");
    let out = runner(&["validate", "--cases", cases, "--offline", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["cases"], 32);
    assert!(v["summary"]["evaluated"].as_u64().unwrap() >= 20);
    let llama = v["cases"].as_array().unwrap().iter().find(|c| c["id"] == "llamacpp-issue5134-phi2-q4_0-3090-ctx512").unwrap();
    let kv = llama["checks"].as_array().unwrap().iter().find(|c| c["figure"] == "llamacpp_kv_mib").unwrap();
    assert_eq!(kv["logged"], 160.0);
    assert_eq!(kv["estimated"], 160.0);
    // the human table names every case and the summary line
    let out = runner(&["validate", "--cases", cases, "--offline"]);
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
}
