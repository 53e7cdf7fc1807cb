//! Reading a Hugging Face `config.json`.
//!
//! Two layers, as in candle: [`RawConfig`] mirrors the file (every field optional, every spelling
//! of a field listed once in [`raw_config!`], unknown keys ignored), then [`parse_config`] hands it
//! to the family resolver in `arch/`, which turns it into a [`ModelShape`] and records every
//! default it applied.
//!
//! Multimodal and nested configs (`text_config`, `llm_config`) are read by overlaying the nested
//! text fields on the top level, so `gemma3`, `mllama` and `llama4` read like their text models.

use crate::arch;
use crate::error::{Error, Result};
use crate::model::ModelShape;
use serde_json::{Map, Value};

/// Conversion from a JSON value, with the error naming the key that held it.
pub trait FromJson: Sized {
    fn from_json(v: &Value, key: &str) -> Result<Self>;
}

fn type_error(key: &str, v: &Value, expected: &str) -> Error {
    let shown = match v {
        Value::String(s) => format!("\"{}\"", s.chars().take(40).collect::<String>()),
        other => {
            let s = other.to_string();
            s.chars().take(40).collect()
        }
    };
    Error::FieldType { field: key.to_string(), message: format!("found {shown}, expected {expected}") }
}

impl FromJson for u64 {
    fn from_json(v: &Value, key: &str) -> Result<Self> {
        match v {
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Ok(u)
                } else if let Some(f) = n.as_f64() {
                    if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 {
                        Ok(f as u64)
                    } else {
                        Err(type_error(key, v, "a non-negative integer"))
                    }
                } else {
                    Err(type_error(key, v, "a non-negative integer"))
                }
            }
            _ => Err(type_error(key, v, "a non-negative integer")),
        }
    }
}

impl FromJson for f64 {
    fn from_json(v: &Value, key: &str) -> Result<Self> {
        match v.as_f64() {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(type_error(key, v, "a finite number")),
        }
    }
}

impl FromJson for bool {
    fn from_json(v: &Value, key: &str) -> Result<Self> {
        v.as_bool().ok_or_else(|| type_error(key, v, "true or false"))
    }
}

impl FromJson for String {
    fn from_json(v: &Value, key: &str) -> Result<Self> {
        v.as_str().map(str::to_string).ok_or_else(|| type_error(key, v, "a string"))
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(v: &Value, key: &str) -> Result<Self> {
        let arr = v.as_array().ok_or_else(|| type_error(key, v, "an array"))?;
        arr.iter().enumerate().map(|(i, x)| T::from_json(x, &format!("{key}[{i}]"))).collect()
    }
}

impl FromJson for Value {
    fn from_json(v: &Value, _key: &str) -> Result<Self> {
        Ok(v.clone())
    }
}

/// A sliding window: an integer, or `null`/`false` for none (both appear on the Hub).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeWindow(pub Option<u64>);

impl FromJson for MaybeWindow {
    fn from_json(v: &Value, key: &str) -> Result<Self> {
        match v {
            Value::Bool(false) | Value::Null => Ok(MaybeWindow(None)),
            _ => u64::from_json(v, key).map(|w| MaybeWindow(Some(w))),
        }
    }
}

/// Spellings of shared fields that Hunyuan's configs may write once per layer (its `moe_topk` and
/// `num_shared_expert` are not shared fields: only its resolver reads them). A list whose entries
/// are all the same integer reads as that integer, and for Hunyuan (whose resolver reads these keys
/// per layer from `json`) a list that varies is left to the resolver; elsewhere a list stays an
/// error naming the field.
const PER_LAYER_KEYS: &[&str] = &["moe_intermediate_size", "num_experts"];
/// Shared fields that a family writes as a 0/1 list, one entry per layer, and whose resolver reads
/// that list from `json`: MiMo-V2-Flash's `moe_layer_freq` (1: a MoE layer), where DeepSeek writes
/// one integer (every n-th layer). MiMo-V2.5 (`mimo_v2`, with vision and audio towers) writes it
/// the same way; its type is refused by name, not by a type error here.
const PER_LAYER_FLAG_KEYS: &[(&str, &str)] = &[("mimo_v2_flash", "moe_layer_freq"), ("mimo_v2", "moe_layer_freq")];
/// Shared integer fields that a family's config class also accepts as `"auto"` (derived by its
/// resolver, which records it): Falcon-H1's `mamba_d_head` (`mamba_d_ssm / mamba_n_heads`).
/// Elsewhere `"auto"` stays a type error naming the field.
const AUTO_KEYS: &[(&str, &str)] = &[("falcon_h1", "mamba_d_head")];

fn collapse_uniform_lists(json: &Map<String, Value>) -> Option<Map<String, Value>> {
    let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
    let per_layer_family = model_type.starts_with("hunyuan");
    let mut out: Option<Map<String, Value>> = None;
    for (family, key) in PER_LAYER_FLAG_KEYS {
        if model_type == *family && json.get(*key).is_some_and(Value::is_array) {
            out.get_or_insert_with(|| json.clone()).remove(*key);
        }
    }
    for (family, key) in AUTO_KEYS {
        if model_type == *family && json.get(*key).and_then(Value::as_str) == Some("auto") {
            out.get_or_insert_with(|| json.clone()).remove(*key);
        }
    }
    for key in PER_LAYER_KEYS {
        let Some(a) = json.get(*key).and_then(Value::as_array) else { continue };
        let first = a.first().and_then(Value::as_u64);
        match first {
            Some(f) if a.iter().all(|x| x.as_u64() == Some(f)) => {
                out.get_or_insert_with(|| json.clone()).insert((*key).to_string(), Value::from(f));
            }
            _ if per_layer_family => {
                out.get_or_insert_with(|| json.clone()).remove(*key);
            }
            _ => {}
        }
    }
    out
}

macro_rules! raw_config {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = [$($key:literal),+] ),* $(,)?) => {
        /// `config.json` as written: each field lists every spelling the Hub uses, first match wins.
        #[derive(Debug, Clone, Default)]
        pub struct RawConfig {
            $( $(#[$doc])* pub $field: Option<$ty>, )*
            /// The merged JSON object, for family-specific nested sections (`attn_config`, ...).
            pub json: Map<String, Value>,
        }

        impl RawConfig {
            /// Reads every known field; a present field of the wrong type is an error naming it.
            pub fn from_map(json: Map<String, Value>) -> Result<Self> {
                let mut raw = RawConfig::default();
                let read = collapse_uniform_lists(&json);
                let read = read.as_ref().unwrap_or(&json);
                $(
                    for key in [$($key),+] {
                        match read.get(key) {
                            None | Some(Value::Null) => continue,
                            Some(v) => {
                                raw.$field = Some(<$ty as FromJson>::from_json(v, key)?);
                                break;
                            }
                        }
                    }
                )*
                raw.json = json;
                Ok(raw)
            }

            /// The spellings accepted for each field, for documentation and tests.
            pub fn aliases() -> &'static [(&'static str, &'static [&'static str])] {
                &[ $( (stringify!($field), &[$($key),+]) ),* ]
            }
        }
    };
}

raw_config! {
    model_type: String = ["model_type"],
    architectures: Vec<String> = ["architectures"],
    hidden_size: u64 = ["hidden_size", "n_embd", "n_embed", "d_model", "model_dim"],
    num_hidden_layers: u64 = ["num_hidden_layers", "n_layer", "n_layers", "num_layers"],
    num_attention_heads: u64 = ["num_attention_heads", "n_head", "n_heads", "num_heads"],
    num_key_value_heads: u64 = ["num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads", "multi_query_group_num"],
    head_dim: u64 = ["head_dim", "attention_head_dim", "kv_channels", "head_size"],
    intermediate_size: u64 = ["intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "ff_intermediate_size", "d_ff"],
    /// Llama 4: the dense MLP width (its `intermediate_size` is the expert width).
    intermediate_size_mlp: u64 = ["intermediate_size_mlp"],
    vocab_size: u64 = ["vocab_size", "padded_vocab_size", "n_vocab"],
    max_position_embeddings: u64 = ["max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length", "seq_length"],
    tie_word_embeddings: bool = ["tie_word_embeddings"],
    torch_dtype: String = ["torch_dtype", "dtype"],
    // biases and attention variants
    attention_bias: bool = ["attention_bias", "qkv_bias", "add_qkv_bias"],
    bias: bool = ["bias", "use_bias", "enable_bias"],
    no_bias: bool = ["no_bias"],
    mlp_bias: bool = ["mlp_bias"],
    multi_query: bool = ["multi_query"],
    new_decoder_architecture: bool = ["new_decoder_architecture"],
    parallel_attn: bool = ["parallel_attn"],
    sliding_window: MaybeWindow = ["sliding_window", "sliding_window_size"],
    use_sliding_window: bool = ["use_sliding_window"],
    max_window_layers: u64 = ["max_window_layers"],
    sliding_window_pattern: u64 = ["sliding_window_pattern", "_sliding_window_pattern"],
    layer_types: Vec<String> = ["layer_types"],
    attention_chunk_size: u64 = ["attention_chunk_size"],
    no_rope_layers: Vec<u64> = ["no_rope_layers"],
    cross_attention_layers: Vec<u64> = ["cross_attention_layers"],
    word_embed_proj_dim: u64 = ["word_embed_proj_dim"],
    expansion_ratio: f64 = ["expansion_ratio"],
    // mixture of experts
    num_experts: u64 = ["num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"],
    num_experts_per_tok: u64 = ["num_experts_per_tok", "experts_per_token", "moe_top_k", "num_experts_per_token"],
    moe_intermediate_size: u64 = ["moe_intermediate_size", "expert_intermediate_size"],
    shared_expert_intermediate_size: u64 = ["shared_expert_intermediate_size", "moe_shared_expert_intermediate_size", "shared_intermediate_size"],
    n_shared_experts: u64 = ["n_shared_experts", "num_shared_experts"],
    decoder_sparse_step: u64 = ["decoder_sparse_step"],
    mlp_only_layers: Vec<u64> = ["mlp_only_layers"],
    first_k_dense_replace: u64 = ["first_k_dense_replace"],
    moe_layer_freq: u64 = ["moe_layer_freq"],
    interleave_moe_layer_step: u64 = ["interleave_moe_layer_step"],
    // multi-head latent attention
    kv_lora_rank: u64 = ["kv_lora_rank"],
    q_lora_rank: u64 = ["q_lora_rank"],
    qk_rope_head_dim: u64 = ["qk_rope_head_dim"],
    qk_nope_head_dim: u64 = ["qk_nope_head_dim"],
    v_head_dim: u64 = ["v_head_dim"],
    num_nextn_predict_layers: u64 = ["num_nextn_predict_layers", "mtp_num_hidden_layers"],
    // recurrent state (Mamba 1/2, gated DeltaNet, lightning attention)
    state_size: u64 = ["state_size", "ssm_state_size", "mamba_d_state"],
    conv_kernel: u64 = ["conv_kernel", "mamba_d_conv", "conv_kernel_size"],
    expand: u64 = ["expand", "mamba_expand"],
    time_step_rank: u64 = ["time_step_rank", "mamba_dt_rank"],
    mamba_num_heads: u64 = ["mamba_num_heads", "mamba_n_heads"],
    mamba_head_dim: u64 = ["mamba_head_dim", "mamba_d_head"],
    n_groups: u64 = ["n_groups", "mamba_n_groups"],
    mamba_ssm_cache_dtype: String = ["mamba_ssm_cache_dtype"],
    hybrid_override_pattern: String = ["hybrid_override_pattern"],
    layers_block_type: Vec<String> = ["layers_block_type"],
    attn_layer_period: u64 = ["attn_layer_period"],
    attn_layer_offset: u64 = ["attn_layer_offset"],
    expert_layer_period: u64 = ["expert_layer_period"],
    expert_layer_offset: u64 = ["expert_layer_offset"],
    attn_type_list: Vec<u64> = ["attn_type_list"],
    full_attention_interval: u64 = ["full_attention_interval"],
    linear_num_key_heads: u64 = ["linear_num_key_heads"],
    linear_num_value_heads: u64 = ["linear_num_value_heads"],
    linear_key_head_dim: u64 = ["linear_key_head_dim"],
    linear_value_head_dim: u64 = ["linear_value_head_dim"],
    linear_conv_kernel_dim: u64 = ["linear_conv_kernel_dim"],
    quantization_config: Value = ["quantization_config", "compression_config"],
}

/// Model types that are not decoder-only generators; refused with a reason instead of guessed.
const ENCODER_TYPES: &[(&str, &str)] = &[
    ("bert", "an encoder-only model (no generation, no KV cache)"),
    ("roberta", "an encoder-only model (no generation, no KV cache)"),
    ("distilbert", "an encoder-only model (no generation, no KV cache)"),
    ("deberta", "an encoder-only model (no generation, no KV cache)"),
    ("deberta-v2", "an encoder-only model (no generation, no KV cache)"),
    ("electra", "an encoder-only model (no generation, no KV cache)"),
    ("xlm-roberta", "an encoder-only model (no generation, no KV cache)"),
    ("modernbert", "an encoder-only model (no generation, no KV cache)"),
    ("t5", "an encoder-decoder model; the planner sizes decoder-only generators"),
    ("mt5", "an encoder-decoder model; the planner sizes decoder-only generators"),
    ("bart", "an encoder-decoder model; the planner sizes decoder-only generators"),
    ("mbart", "an encoder-decoder model; the planner sizes decoder-only generators"),
    ("whisper", "an encoder-decoder speech model; the planner sizes decoder-only generators"),
    ("vit", "a vision encoder without a language model"),
    ("clip", "a vision-text encoder without a generator"),
];

/// Replaces the non-JSON tokens `Infinity`, `-Infinity` and `NaN` that Python's `json.dump` writes
/// (as in `nvidia/Nemotron-H-56B-Base-8K`) with `null`, outside strings only. Returns the text and
/// whether anything was replaced.
pub fn sanitize_python_json(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if !in_string {
            if let Some(tok) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|t| rest.starts_with(t)) {
                out.push_str("null");
                rest = &rest[tok.len()..];
                changed = true;
                continue;
            }
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    (out, changed)
}

/// Parses a `config.json` text into a resolved model.
///
/// Errors name the field and the value: invalid JSON (with line and column), wrong types,
/// missing fields the architecture needs, impossible values, and unsupported model types.
pub fn parse_config(text: &str) -> Result<ModelShape> {
    let (clean, had_nonstandard) = sanitize_python_json(text);
    let value: Value = serde_json::from_str(&clean).map_err(|e| Error::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string().split(" at line ").next().unwrap_or("invalid JSON").to_string(),
    })?;
    let Value::Object(top) = value else {
        return Err(Error::FieldType { field: "(root)".into(), message: "expected a JSON object".into() });
    };
    let mut notes = Vec::new();
    if had_nonstandard {
        notes.push("config contains Infinity/NaN (Python JSON); read as null".to_string());
    }
    let mut merged = overlay_text_config(top, &mut notes);
    // Gemma 3n may give one MLP width per layer: its resolver reads the list, every other
    // architecture still gets a type error naming the field
    let gemma3n = ["model_type", "text_model_type"].iter().any(|k| merged.get(*k).and_then(Value::as_str).is_some_and(|t| t.starts_with("gemma3n")));
    if gemma3n && merged.get("intermediate_size").is_some_and(Value::is_array) {
        if let Some(list) = merged.remove("intermediate_size") {
            merged.insert("intermediate_sizes".into(), list);
        }
    }
    let raw = RawConfig::from_map(merged)?;
    let model_type = raw.model_type.clone().unwrap_or_default();
    if let Some((_, reason)) = ENCODER_TYPES.iter().find(|(t, _)| *t == model_type) {
        return Err(Error::Unsupported { model_type, reason: (*reason).to_string() });
    }
    let mut shape = arch::resolve(&raw)?;
    shape.notes.splice(0..0, notes);
    Ok(shape)
}

/// Whether a `config.json` leaves its quantisation to an `hf_quant_config.json` beside it: it is a
/// JSON object without a `quantization_config` block (what the runner and the page ask before
/// fetching or awaiting that file).
pub fn wants_hf_quant_config(text: &str) -> bool {
    let (clean, _) = sanitize_python_json(text);
    matches!(serde_json::from_str::<Value>(&clean), Ok(Value::Object(top)) if !top.get("quantization_config").is_some_and(Value::is_object))
}

/// `config.json` with the checkpoint's ModelOpt `hf_quant_config.json` laid in as its
/// `quantization_config`, as vLLM reads it when `config.json` has none (NVIDIA's earlier FP8 and
/// NVFP4 exports); `None` when `config.json` has its own block, which wins, or is not a JSON
/// object (whose error [`parse_config`] gives). An `hf_quant_config.json` that is not a JSON
/// object is an error naming the file.
pub fn merge_hf_quant_config(text: &str, hf_quant_config: &str) -> Result<Option<String>> {
    let quant: Value = serde_json::from_str(hf_quant_config).map_err(|e| Error::FieldType {
        field: "hf_quant_config.json".into(),
        message: format!("invalid JSON: {}", e.to_string().split(" at line ").next().unwrap_or("")),
    })?;
    if !quant.is_object() {
        return Err(Error::FieldType { field: "hf_quant_config.json".into(), message: "expected a JSON object".into() });
    }
    if !wants_hf_quant_config(text) {
        return Ok(None);
    }
    let (clean, _) = sanitize_python_json(text);
    let Ok(Value::Object(mut top)) = serde_json::from_str::<Value>(&clean) else { return Ok(None) };
    top.insert("quantization_config".into(), quant);
    Ok(Some(Value::Object(top).to_string()))
}

/// Parses a `config.json` with the checkpoint's `hf_quant_config.json` beside it
/// ([`merge_hf_quant_config`]).
pub fn parse_config_with_quant(text: &str, hf_quant_config: &str) -> Result<ModelShape> {
    match merge_hf_quant_config(text, hf_quant_config)? {
        Some(merged) => parse_config(&merged),
        None => parse_config(text),
    }
}

/// Lays the fields of a nested `text_config` (or `llm_config`/`language_config`) over the top level;
/// the top-level `model_type` is kept and the nested one saved as `text_model_type`.
fn overlay_text_config(mut top: Map<String, Value>, notes: &mut Vec<String>) -> Map<String, Value> {
    for key in ["text_config", "llm_config", "language_config"] {
        if let Some(Value::Object(text)) = top.get(key).cloned() {
            notes.push(format!("text model read from nested `{key}`"));
            let top_type = top.get("model_type").cloned();
            if let Some(t) = text.get("model_type").cloned() {
                top.insert("text_model_type".into(), t);
            }
            // the top level's dtype describes the whole checkpoint; keep it when the text one is absent
            for (k, v) in text {
                if v.is_null() {
                    continue;
                }
                top.insert(k, v);
            }
            if let Some(t) = top_type {
                top.insert("model_type".into(), t);
            }
            break;
        }
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizer_replaces_only_outside_strings() {
        let (s, changed) = sanitize_python_json(r#"{"a": [0.0, Infinity], "b": "Infinity NaN", "c": -Infinity, "d": NaN}"#);
        assert!(changed);
        assert_eq!(s, r#"{"a": [0.0, null], "b": "Infinity NaN", "c": null, "d": null}"#);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["b"], "Infinity NaN");
    }

    #[test]
    fn sanitizer_keeps_unicode() {
        let (s, changed) = sanitize_python_json(r#"{"name": "modèle ✓", "x": 1}"#);
        assert!(!changed);
        assert_eq!(s, r#"{"name": "modèle ✓", "x": 1}"#);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = parse_config(r#"{"model_type": "llama", "hidden_size": "big"}"#).unwrap_err();
        assert_eq!(e.to_string(), "config.json field `hidden_size`: found \"big\", expected a non-negative integer");
    }

    #[test]
    fn truncated_json_gives_position() {
        let e = parse_config(r#"{"model_type": "llama", "hidden_size": 40"#).unwrap_err();
        assert!(matches!(e, Error::Json { line: 1, .. }), "{e}");
    }

    #[test]
    fn aliases_are_read() {
        let mut m = Map::new();
        m.insert("n_embd".into(), Value::from(768));
        m.insert("n_layer".into(), Value::from(12));
        let raw = RawConfig::from_map(m).unwrap();
        assert_eq!(raw.hidden_size, Some(768));
        assert_eq!(raw.num_hidden_layers, Some(12));
    }

    #[test]
    fn encoder_models_are_refused_with_reason() {
        let e = parse_config(r#"{"model_type": "bert", "hidden_size": 768}"#).unwrap_err();
        assert!(e.to_string().contains("encoder-only"), "{e}");
    }
}
