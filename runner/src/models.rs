//! Model resolution: a bundled id (`model-configs/<org>/<name>/config.json`), a path to a
//! `config.json` or to a folder holding one (a local Hugging Face snapshot), a Hub id found in the
//! local Hub cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`), or a Hub id
//! fetched over HTTPS (`HF_TOKEN`, `HF_ENDPOINT`).

use crate::cli::ModelsArgs;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The bundled configs directory: `$KV_MODEL_CONFIGS`, `./model-configs`, or the repository's.
pub fn configs_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("KV_MODEL_CONFIGS") {
        return Some(PathBuf::from(d));
    }
    let here = PathBuf::from("model-configs");
    if here.join("index.json").is_file() {
        return Some(here);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-configs");
    repo.join("index.json").is_file().then_some(repo)
}

/// Bundled model ids with family and parameter count, from `model-configs/index.json`.
pub fn bundled() -> Vec<(String, String, u64)> {
    let Some(dir) = configs_dir() else { return vec![] };
    let Ok(text) = std::fs::read_to_string(dir.join("index.json")) else { return vec![] };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return vec![] };
    v.get("models")
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some((m.get("id")?.as_str()?.to_string(), m.get("family")?.as_str().unwrap_or("").to_string(), m.get("params_total").and_then(|p| p.as_u64()).unwrap_or(0)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the config text for `model`; returns (id, text, where it came from).
pub fn load(model: &str) -> Result<(String, String, String)> {
    let p = Path::new(model);
    if p.is_file() {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let (text, source) = beside(text, format!("file {}", p.display()), p)?;
        return Ok((model.to_string(), text, source));
    }
    if p.is_dir() && p.join("config.json").is_file() {
        let f = p.join("config.json");
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let (text, source) = beside(text, format!("snapshot {}", p.display()), &f)?;
        return Ok((model.trim_end_matches('/').to_string(), text, source));
    }
    if let Some(dir) = configs_dir() {
        let f = dir.join(model).join("config.json");
        if f.is_file() {
            let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            return Ok((model.to_string(), text, format!("bundled {}", f.display())));
        }
    }
    if model.split('/').count() != 2 || model.contains("..") || model.starts_with('/') {
        bail!("model `{model}` is neither a config.json path, a bundled id, nor a Hugging Face id (org/name); bundled: {}", suggestions(model));
    }
    if let Some(f) = hub_cache(model) {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let (text, source) = beside(text, format!("Hub cache {}", f.display()), &f)?;
        return Ok((model.to_string(), text, source));
    }
    fetch_hub(model)
}

/// A `config.json` with the ModelOpt `hf_quant_config.json` next to it (in a checkpoint's folder)
/// laid in, as vLLM reads it when `config.json` names no quantisation; a file of another name is
/// taken alone.
fn beside(text: String, source: String, config: &Path) -> Result<(String, String)> {
    if config.file_name().is_none_or(|n| n != "config.json") {
        return Ok((text, source));
    }
    let f = config.with_file_name("hf_quant_config.json");
    let Ok(quant) = std::fs::read_to_string(&f) else { return Ok((text, source)) };
    with_hf_quant(text, source, &quant, &f.display().to_string())
}

/// `text` with `quant` (an `hf_quant_config.json` read from `from`) laid in when it has no
/// `quantization_config` ([`kv_estimator::merge_hf_quant_config`]).
fn with_hf_quant(text: String, source: String, quant: &str, from: &str) -> Result<(String, String)> {
    match kv_estimator::merge_hf_quant_config(&text, quant).with_context(|| format!("reading {from}"))? {
        Some(merged) => Ok((merged, format!("{source} + {from}"))),
        None => Ok((text, source)),
    }
}

/// When the Hub cannot give `model`'s config (unreachable, or gated without a token), the bundled
/// config it is an upload or fine-tune of (`kv_estimator::validation::match_model`): its id, text,
/// source and how it was matched. A model the Hub says does not exist gets no stand-in.
pub fn derived_fallback(model: &str, err: &anyhow::Error) -> Option<(String, String, String, String)> {
    let msg = err.to_string();
    if !(msg.contains("unreachable") || msg.contains("gated")) {
        return None;
    }
    let ids: Vec<String> = bundled().into_iter().map(|(id, _, _)| id).collect();
    let m = kv_estimator::validation::match_model(model, &ids)?;
    let f = configs_dir()?.join(&m.config_id).join("config.json");
    let text = std::fs::read_to_string(&f).ok()?;
    let why = if msg.contains("gated") { "the Hub refused its config (gated)" } else { "the Hub is unreachable" };
    Some((m.config_id.clone(), text, format!("bundled {}", f.display()), format!("{why}: {}", m.how)))
}

/// `config.json` of `org/name` in the local Hub cache (the newest snapshot), if present.
pub fn hub_cache(id: &str) -> Option<PathBuf> {
    let base = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))?;
    let snaps = base.join(format!("models--{}", id.replace('/', "--"))).join("snapshots");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(snaps)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("config.json"))
        .filter(|f| f.is_file())
        .map(|f| (f.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), f))
        .collect();
    found.sort();
    found.pop().map(|(_, f)| f)
}

fn suggestions(model: &str) -> String {
    let all = bundled();
    let name = |id: &str| id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase();
    let key = name(model);
    let tokens: Vec<&str> = key.split(['-', '_']).collect();
    // nearest first: the longest common prefix of the names, then the most shared `-` words; ids
    // sharing neither are not listed (all of them, alphabetically, when none is near)
    let score = |id: &str| {
        let n = name(id);
        let prefix = n.chars().zip(key.chars()).take_while(|(a, b)| a == b).count();
        let shared = n.split(['-', '_']).filter(|t| tokens.contains(t)).count();
        (prefix, shared)
    };
    let mut close: Vec<((usize, usize), &str)> = all.iter().map(|(id, _, _)| (score(id), id.as_str())).filter(|((p, w), _)| *p >= 3 || *w > 0).collect();
    close.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut ids: Vec<&str> = close.into_iter().map(|(_, id)| id).collect();
    if ids.is_empty() {
        ids = all.iter().map(|(id, _, _)| id.as_str()).collect();
    }
    ids.truncate(8);
    ids.join(", ")
}

pub fn fetch_hub(id: &str) -> Result<(String, String, String)> {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let url = format!("{}/{id}/resolve/main/config.json", endpoint.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(20)).build()?;
    // a GET with the access token, when there is one
    let get = |url: &str| {
        let req = client.get(url);
        match std::env::var("HF_TOKEN") {
            Ok(tok) => req.bearer_auth(tok).send(),
            Err(_) => req.send(),
        }
    };
    let resp = match get(&url) {
        Ok(r) => r,
        Err(e) => bail!("the Hugging Face Hub is unreachable ({url}: {e}); use a bundled id instead: {}", suggestions(id)),
    };
    match resp.status().as_u16() {
        200 => {
            let text = resp.text()?;
            // an NVIDIA ModelOpt export may name its quantisation only in hf_quant_config.json
            if !kv_estimator::wants_hf_quant_config(&text) {
                return Ok((id.to_string(), text, format!("hub {url}")));
            }
            let qurl = url.replace("/config.json", "/hf_quant_config.json");
            match get(&qurl) {
                Ok(r) if r.status().as_u16() == 200 => with_hf_quant(text, format!("hub {url}"), &r.text()?, &qurl).map(|(t, s)| (id.to_string(), t, s)),
                Ok(r) if r.status().as_u16() == 404 => Ok((id.to_string(), text, format!("hub {url}"))),
                Ok(r) => bail!("the Hub answered HTTP {} for {qurl} (the checkpoint's quantisation, if it has one there)", r.status().as_u16()),
                Err(e) => bail!("the Hugging Face Hub is unreachable ({qurl}: {e}) after giving config.json"),
            }
        }
        401 | 403 => bail!("{id} is gated or private (HTTP {}): set HF_TOKEN to a token with access", resp.status().as_u16()),
        404 => bail!("{id} has no config.json on the Hub (HTTP 404); check the id. Bundled: {}", suggestions(id)),
        s => bail!("the Hub answered HTTP {s} for {url}"),
    }
}

pub fn run_list(args: ModelsArgs) -> Result<()> {
    let all = bundled();
    if all.is_empty() {
        bail!("no bundled configs found (model-configs/index.json); set KV_MODEL_CONFIGS");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all.iter().map(|(i, f, p)| serde_json::json!({"id": i, "family": f, "params_total": p})).collect::<Vec<_>>())?);
        return Ok(());
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(["model id", "family", "parameters"]);
    for (id, fam, p) in all {
        t.add_row([id, fam, format!("{:.2}B", p as f64 / 1e9)]);
    }
    println!("{t}");
    Ok(())
}
