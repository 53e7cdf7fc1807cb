//! The architectures `measure` can build: candle-transformers 0.11.1 models behind one small
//! trait, with the config adjustments each needs (fields the Hub omits that candle requires, filled
//! with the transformers defaults) and the limits candle has (batch 1 only, f32 only). A family
//! candle lacks is an error saying so, never a different model.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models as m;
use serde_json::{Map, Value};

/// One model, ready to run batches of token ids.
pub trait Lm {
    /// Runs `ids` (batch x tokens) starting at position `offset`; returns the logits of the last
    /// position (batch x vocab).
    fn forward(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor>;
    /// Drops the KV cache (or recurrent state) for a new batch of `batch` requests.
    fn reset(&mut self, batch: usize) -> Result<()>;
    /// Bytes candle keeps besides K/V after a prefill of `len` tokens (subtracted from the
    /// measured cache growth): llama and granite cache the prefill's causal mask (u8, len x len).
    fn retained_besides_kv(&self, _len: usize) -> u64 {
        0
    }
    /// Whether a prompt must be fed one token per call (recurrent models in candle).
    fn one_token_per_call(&self) -> bool {
        false
    }
}

/// What candle supports for a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest batch candle's implementation runs (falcon and GLM-4-0414 index batch 0).
    pub max_batch: Option<u64>,
    /// Dtypes it runs in (mixtral and phi fail in bf16 on candle 0.11.1).
    pub f32_only: bool,
}

/// The `model_type`s `measure` can build, with the candle module used.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("llama", "llama"),
    ("mistral", "mistral"),
    ("mixtral", "mixtral"),
    ("qwen2", "qwen2"),
    ("qwen2_moe", "qwen2_moe"),
    ("qwen3", "qwen3"),
    ("qwen3_moe", "qwen3_moe"),
    ("gemma", "gemma"),
    ("gemma2", "gemma2"),
    ("gemma3", "gemma3"),
    ("gemma3_text", "gemma3"),
    ("phi", "phi"),
    ("phi3", "phi3"),
    ("falcon", "falcon"),
    ("starcoder2", "starcoder2"),
    ("stablelm", "stable_lm"),
    ("olmo", "olmo"),
    ("olmo2", "olmo2"),
    ("deepseek_v2", "deepseek2"),
    ("granite", "granite"),
    ("glm4", "glm4_new"),
    ("mamba", "mamba"),
];

/// The config as candle reads it: a nested `text_config` flattened, and `model_type` known.
pub fn candle_json(config_text: &str) -> Result<(String, Map<String, Value>)> {
    let (clean, _) = kv_estimator::config::sanitize_python_json(config_text);
    let v: Value = serde_json::from_str(&clean).context("config.json is not valid JSON")?;
    let Value::Object(mut top) = v else { bail!("config.json is not a JSON object") };
    if let Some(Value::Object(text)) = top.get("text_config").cloned() {
        for (k, v) in text {
            if !v.is_null() && k != "model_type" {
                top.insert(k, v);
            }
        }
    }
    let model_type = top.get("model_type").and_then(Value::as_str).unwrap_or("").to_string();
    Ok((model_type, top))
}

/// Why a model type cannot be measured, or its limits.
pub fn limits(model_type: &str, json: &Map<String, Value>) -> Result<Limits> {
    if !SUPPORTED.iter().any(|(t, _)| *t == model_type) {
        let known: Vec<&str> = SUPPORTED.iter().map(|(t, _)| *t).collect();
        bail!(
            "model_type `{model_type}` is not measurable yet: candle-transformers 0.11.1 has no implementation of it (measurable: {})",
            known.join(", ")
        );
    }
    let int = |k: &str| json.get(k).and_then(Value::as_u64);
    let flag = |k: &str| json.get(k).and_then(Value::as_bool).unwrap_or(false);
    if model_type == "falcon" && (flag("new_decoder_architecture") || flag("alibi") || int("num_kv_heads").is_some_and(|n| n > 1)) {
        bail!("this falcon config (new decoder architecture / alibi / grouped KV) is not measurable yet: candle's falcon implements the falcon-7b layout only");
    }
    if model_type == "mamba" {
        let (state, conv, expand) = (int("state_size").unwrap_or(16), int("conv_kernel").unwrap_or(4), int("expand").unwrap_or(2));
        if (state, conv, expand) != (16, 4, 2) {
            bail!("this mamba config (state_size {state}, conv_kernel {conv}, expand {expand}) is not measurable yet: candle's mamba fixes them at 16, 4 and 2");
        }
    }
    if matches!(model_type, "gemma3" | "gemma3_text") && int("num_key_value_heads").unwrap_or(1) > 1 {
        bail!("gemma3 with more than one KV head is not measurable yet: candle-transformers 0.11.1 fails at prefill (\"slice-set only supports contiguous tensors\", fix pending in huggingface/candle#3902)");
    }
    // falcon and glm4 index batch 0 in their rotary code; mamba's selective scan fails to
    // broadcast a batch above 1 (candle-transformers 0.11.1)
    Ok(Limits { max_batch: matches!(model_type, "falcon" | "glm4" | "mamba").then_some(1), f32_only: matches!(model_type, "mixtral" | "phi") })
}

fn fill(json: &mut Map<String, Value>, key: &str, v: Value) {
    if json.get(key).is_none_or(Value::is_null) {
        json.insert(key.to_string(), v);
    }
}

/// Fills what candle's config structs require and Hub configs may leave out, with the
/// transformers defaults of each family.
fn fill_defaults(model_type: &str, j: &mut Map<String, Value>) {
    let heads = j.get("num_attention_heads").cloned().unwrap_or(Value::from(1));
    fill(j, "num_key_value_heads", heads);
    fill(j, "rms_norm_eps", Value::from(1e-6));
    fill(j, "rope_theta", Value::from(10_000.0));
    fill(j, "hidden_act", Value::from("silu"));
    fill(j, "max_position_embeddings", Value::from(4096));
    fill(j, "tie_word_embeddings", Value::from(false));
    match model_type {
        "mixtral" => {
            fill(j, "sliding_window", Value::from(4096));
            fill(j, "use_flash_attn", Value::from(false));
        }
        "qwen2" | "qwen2_moe" | "qwen3" | "qwen3_moe" => {
            fill(j, "sliding_window", Value::from(4096));
            let layers = j.get("num_hidden_layers").cloned().unwrap_or(Value::from(0));
            fill(j, "max_window_layers", layers);
            fill(j, "use_sliding_window", Value::from(false));
            fill(j, "attention_bias", Value::from(false));
            fill(j, "norm_topk_prob", Value::from(false));
            fill(j, "decoder_sparse_step", Value::from(1));
            fill(j, "shared_expert_intermediate_size", Value::from(0));
            if j.get("head_dim").is_none_or(Value::is_null) {
                if let (Some(h), Some(n)) = (j.get("hidden_size").and_then(Value::as_u64), j.get("num_attention_heads").and_then(Value::as_u64)) {
                    j.insert("head_dim".into(), Value::from(h / n.max(1)));
                }
            }
        }
        "gemma" | "gemma2" | "gemma3" | "gemma3_text" => {
            fill(j, "attention_bias", Value::from(false));
            fill(j, "rope_local_base_freq", Value::from(10_000.0));
            fill(j, "query_pre_attn_scalar", Value::from(256));
            fill(j, "sliding_window_pattern", Value::from(6));
            if model_type != "gemma" {
                let act = j.get("hidden_act").cloned().unwrap_or(Value::from("gelu_pytorch_tanh"));
                fill(j, "hidden_activation", act);
            } else if j.get("hidden_activation").is_some_and(|v| !v.is_null()) {
                // candle's gemma refuses a config that sets both
                j.remove("hidden_act");
            }
        }
        "phi" => {
            fill(j, "layer_norm_eps", Value::from(1e-5));
            fill(j, "partial_rotary_factor", Value::from(0.5));
            fill(j, "qk_layernorm", Value::from(false));
            fill(j, "hidden_act", Value::from("gelu_new"));
        }
        "phi3" => {
            if let Some(Value::Object(rs)) = j.get_mut("rope_scaling") {
                if rs.get("type").and_then(Value::as_str) == Some("su") {
                    rs.insert("type".into(), Value::from("longrope"));
                }
            }
        }
        "starcoder2" => {
            fill(j, "norm_epsilon", Value::from(1e-5));
            fill(j, "use_bias", Value::from(true));
            fill(j, "hidden_act", Value::from("gelu_pytorch_tanh"));
        }
        "stablelm" => {
            fill(j, "partial_rotary_factor", Value::from(0.25));
            fill(j, "layer_norm_eps", Value::from(1e-5));
            fill(j, "use_cache", Value::from(true));
        }
        "olmo" | "olmo2" => {
            fill(j, "attention_bias", Value::from(false));
            fill(j, "clip_qkv", Value::Null);
        }
        "falcon" => {
            fill(j, "layer_norm_epsilon", Value::from(1e-5));
            fill(j, "initializer_range", Value::from(0.02));
            fill(j, "use_cache", Value::from(true));
            fill(j, "bos_token_id", Value::from(11));
            fill(j, "eos_token_id", Value::from(11));
            fill(j, "hidden_dropout", Value::from(0.0));
            fill(j, "attention_dropout", Value::from(0.0));
            fill(j, "alibi", Value::from(false));
            fill(j, "new_decoder_architecture", Value::from(false));
            fill(j, "multi_query", Value::from(true));
            fill(j, "parallel_attn", Value::from(true));
            fill(j, "bias", Value::from(false));
        }
        "glm4" => {
            fill(j, "attention_bias", Value::from(true));
        }
        "mamba" => {
            let d = j.get("hidden_size").cloned().unwrap_or(Value::from(0));
            fill(j, "d_model", d);
            let n = j.get("num_hidden_layers").cloned().unwrap_or(Value::from(0));
            fill(j, "n_layer", n);
            fill(j, "pad_vocab_size_multiple", Value::from(8));
        }
        _ => {}
    }
}

fn cfg<T: serde::de::DeserializeOwned>(j: &Map<String, Value>, module: &str) -> Result<T> {
    serde_json::from_value(Value::Object(j.clone())).map_err(|e| anyhow!("config.json as candle's {module}::Config: {e}"))
}

/// Logits of the last position as (batch, vocab), whatever rank the model returns.
fn last(t: Tensor) -> candle_core::Result<Tensor> {
    match t.rank() {
        3 => {
            let l = t.dim(1)?;
            t.i((.., l - 1, ..))
        }
        _ => Ok(t),
    }
}

/// Families with `new(&cfg, vb)`, `forward(ids, offset)` and `clear_kv_cache()`.
macro_rules! standard {
    ($name:ident, $model:ty) => {
        struct $name($model);
        impl Lm for $name {
            fn forward(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
                last(self.0.forward(ids, offset)?)
            }
            fn reset(&mut self, _batch: usize) -> Result<()> {
                self.0.clear_kv_cache();
                Ok(())
            }
        }
    };
}

standard!(Mistral, m::mistral::Model);
standard!(Qwen2, m::qwen2::ModelForCausalLM);
standard!(Qwen2Moe, m::qwen2_moe::Model);
standard!(Qwen3, m::qwen3::ModelForCausalLM);
standard!(Qwen3Moe, m::qwen3_moe::ModelForCausalLM);
standard!(Gemma, m::gemma::Model);
standard!(Gemma2, m::gemma2::Model);
standard!(Gemma3, m::gemma3::Model);
standard!(Phi3, m::phi3::Model);
standard!(Starcoder2, m::starcoder2::Model);
standard!(Olmo, m::olmo::Model);
standard!(Olmo2, m::olmo2::Model);
standard!(DeepSeek2, m::deepseek2::DeepSeekV2);
standard!(Glm4, m::glm4_new::ModelForCausalLM);

/// Llama: the cache lives outside the model.
struct Llama {
    model: m::llama::Llama,
    cache: m::llama::Cache,
    cfg: m::llama::Config,
    dtype: DType,
    device: Device,
}

impl Lm for Llama {
    fn forward(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        last(self.model.forward(ids, offset, &mut self.cache)?)
    }
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.cache = m::llama::Cache::new(true, self.dtype, &self.cfg, &self.device)?;
        Ok(())
    }
    fn retained_besides_kv(&self, len: usize) -> u64 {
        if len > 1 {
            (len * len) as u64
        } else {
            0
        }
    }
}

/// Granite: llama's structure with its own types.
struct Granite {
    model: m::granite::Granite,
    cache: m::granite::Cache,
    cfg: m::granite::Config,
    dtype: DType,
    device: Device,
}

impl Lm for Granite {
    fn forward(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        last(self.model.forward(ids, offset, &mut self.cache)?)
    }
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.cache = m::granite::Cache::new(true, self.dtype, &self.cfg, &self.device)?;
        Ok(())
    }
    fn retained_besides_kv(&self, len: usize) -> u64 {
        if len > 1 {
            (len * len) as u64
        } else {
            0
        }
    }
}

/// Phi-2: the position comes from the cache.
struct Phi(m::phi::Model);

impl Lm for Phi {
    fn forward(&mut self, ids: &Tensor, _offset: usize) -> candle_core::Result<Tensor> {
        last(self.0.forward(ids)?)
    }
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.0.clear_kv_cache();
        Ok(())
    }
}

/// Falcon (7b layout): the position comes from the cache.
struct Falcon(m::falcon::Falcon);

impl Lm for Falcon {
    fn forward(&mut self, ids: &Tensor, _offset: usize) -> candle_core::Result<Tensor> {
        last(self.0.forward(ids)?)
    }
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.0.clear_kv_cache();
        Ok(())
    }
}

/// Mixtral has no way to clear its cache: an untouched clone (sharing the weights) replaces it.
struct Mixtral {
    fresh: m::mixtral::Model,
    model: m::mixtral::Model,
}

impl Lm for Mixtral {
    fn forward(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        last(self.model.forward(ids, offset)?)
    }
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.model = self.fresh.clone();
        Ok(())
    }
}

/// StableLM has no way to clear its cache and is not `Clone`: it is rebuilt (same weights).
struct StableLm {
    model: m::stable_lm::Model,
    cfg: m::stable_lm::Config,
    vb: VarBuilder<'static>,
}

impl Lm for StableLm {
    fn forward(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        last(self.model.forward(ids, offset)?)
    }
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.model = m::stable_lm::Model::new(&self.cfg, self.vb.clone())?;
        Ok(())
    }
}

/// Mamba: a recurrent state per request (created with the first token, so it is measured as
/// the point's cache), one token per call.
struct Mamba {
    model: m::mamba::Model,
    state: Option<m::mamba::State>,
    cfg: m::mamba::Config,
    dtype: DType,
    device: Device,
}

impl Lm for Mamba {
    fn forward(&mut self, ids: &Tensor, _offset: usize) -> candle_core::Result<Tensor> {
        // (batch, 1) -> (batch,)
        let ids = if ids.rank() == 2 { ids.squeeze(1)? } else { ids.clone() };
        let state = match &mut self.state {
            Some(s) => s,
            None => self.state.insert(m::mamba::State::new(ids.dim(0)?, &self.cfg, self.dtype, &self.device)?),
        };
        last(self.model.forward(&ids, state)?)
    }
    fn reset(&mut self, _batch: usize) -> Result<()> {
        self.state = None;
        Ok(())
    }
    fn one_token_per_call(&self) -> bool {
        true
    }
}

/// Builds the model of `model_type` from `json` with the weights `vb` gives.
pub fn build(model_type: &str, mut json: Map<String, Value>, vb: VarBuilder<'static>, dtype: DType, device: &Device) -> Result<Box<dyn Lm>> {
    fill_defaults(model_type, &mut json);
    let j = &json;
    Ok(match model_type {
        "llama" => {
            let raw: m::llama::LlamaConfig = cfg(j, "llama")?;
            let c = raw.into_config(false);
            let model = m::llama::Llama::load(vb, &c)?;
            let cache = m::llama::Cache::new(true, dtype, &c, device)?;
            Box::new(Llama { model, cache, cfg: c, dtype, device: device.clone() })
        }
        "granite" => {
            let raw: m::granite::GraniteConfig = cfg(j, "granite")?;
            let c = raw.into_config(false);
            let model = m::granite::Granite::load(vb, &c)?;
            let cache = m::granite::Cache::new(true, dtype, &c, device)?;
            Box::new(Granite { model, cache, cfg: c, dtype, device: device.clone() })
        }
        "mistral" => Box::new(Mistral(m::mistral::Model::new(&cfg(j, "mistral")?, vb)?)),
        "mixtral" => {
            let fresh = m::mixtral::Model::new(&cfg(j, "mixtral")?, vb)?;
            Box::new(Mixtral { model: fresh.clone(), fresh })
        }
        "qwen2" => Box::new(Qwen2(m::qwen2::ModelForCausalLM::new(&cfg(j, "qwen2")?, vb)?)),
        "qwen2_moe" => Box::new(Qwen2Moe(m::qwen2_moe::Model::new(&cfg(j, "qwen2_moe")?, vb)?)),
        "qwen3" => Box::new(Qwen3(m::qwen3::ModelForCausalLM::new(&cfg(j, "qwen3")?, vb)?)),
        "qwen3_moe" => Box::new(Qwen3Moe(m::qwen3_moe::ModelForCausalLM::new(&cfg(j, "qwen3_moe")?, vb)?)),
        "gemma" => Box::new(Gemma(m::gemma::Model::new(false, &cfg(j, "gemma")?, vb)?)),
        "gemma2" => Box::new(Gemma2(m::gemma2::Model::new(false, &cfg(j, "gemma2")?, vb)?)),
        "gemma3" | "gemma3_text" => Box::new(Gemma3(m::gemma3::Model::new(false, &cfg(j, "gemma3")?, vb)?)),
        "phi" => Box::new(Phi(m::phi::Model::new(&cfg(j, "phi")?, vb)?)),
        "phi3" => Box::new(Phi3(m::phi3::Model::new(&cfg(j, "phi3")?, vb)?)),
        "falcon" => Box::new(Falcon(m::falcon::Falcon::load(vb, cfg(j, "falcon")?)?)),
        "starcoder2" => Box::new(Starcoder2(m::starcoder2::Model::new(&cfg(j, "starcoder2")?, vb)?)),
        "stablelm" => {
            let c: m::stable_lm::Config = cfg(j, "stable_lm")?;
            Box::new(StableLm { model: m::stable_lm::Model::new(&c, vb.clone())?, cfg: c, vb })
        }
        "olmo" => Box::new(Olmo(m::olmo::Model::new(&cfg(j, "olmo")?, vb)?)),
        "olmo2" => Box::new(Olmo2(m::olmo2::Model::new(&cfg(j, "olmo2")?, vb)?)),
        "deepseek_v2" => Box::new(DeepSeek2(m::deepseek2::DeepSeekV2::new(&cfg(j, "deepseek2")?, vb)?)),
        "glm4" => Box::new(Glm4(m::glm4_new::ModelForCausalLM::new(&cfg(j, "glm4_new")?, vb)?)),
        "mamba" => {
            let c: m::mamba::Config = cfg(j, "mamba")?;
            let model = m::mamba::Model::new(&c, vb.pp("backbone"))?;
            Box::new(Mamba { model, state: None, cfg: c, dtype, device: device.clone() })
        }
        other => bail!("model_type `{other}` is not measurable yet"),
    })
}
