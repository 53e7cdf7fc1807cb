//! Family resolvers: one file per architecture family turns a [`RawConfig`] into a [`ModelShape`].
//!
//! This module holds the dispatch on `model_type` and the builders every family shares (attention
//! projections, gated and plain MLPs, MoE blocks, norms, embeddings), so each family file only
//! states what is special about it. Parameter shapes follow the Hugging Face modeling files.

mod dbrx;
mod deepseek;
mod ernie;
mod falcon;
mod falcon_h1;
mod gemma;
mod gemma3n;
mod gemma4;
mod generic;
mod glm;
pub(crate) mod glm4v;
mod gpt2;
mod gpt_oss;
mod granite;
mod hunyuan;
mod hybrid;
mod internvl;
mod lfm2;
mod llama;
mod mamba;
mod mimo;
mod minimax;
mod mixtral;
mod mpt;
mod nemotron_nas;
mod olmo;
mod opt;
mod phi;
mod qwen;
mod qwen3_next;
mod stablelm;
mod starcoder2;
mod vision;

use crate::config::RawConfig;
use crate::dtype::{FloatDtype, KvDtype, Quant};
use crate::error::{Error, Result};
use crate::model::{DefaultUsed, Family, Layer, Mixer, ModelShape, Role, RopeScaling, Split, Tensor, Window};
use serde_json::{Map, Value};

/// Resolves a raw config by `model_type`; unknown types with the standard fields take the generic path.
pub(crate) fn resolve(raw: &RawConfig) -> Result<ModelShape> {
    let model_type = raw.model_type.clone().unwrap_or_default();
    let text_type = raw.json.get("text_model_type").and_then(Value::as_str).unwrap_or("").to_string();
    let mut cx = Cx::new(raw, &model_type);
    let key = if model_type.is_empty() { text_type.as_str() } else { model_type.as_str() };
    if matches!(key, "internvl_chat" | "internvl") {
        return internvl::resolve(&mut cx, &text_type);
    }
    by_type(&mut cx, key, &text_type)
}

/// The family resolver for `model_type` `key` (`text_type`: the nested text model's type).
fn by_type(cx: &mut Cx, key: &str, text_type: &str) -> Result<ModelShape> {
    match key {
        "llama" | "mistral" | "ministral" | "internlm2" | "yi" | "cohere" | "exaone" | "smollm3" | "seed_oss" | "baichuan" | "cohere2" | "apertus" | "arcee" | "nemotron" => llama::resolve(cx),
        // multimodal wrappers of a Llama-shaped text model; another text model takes the generic
        // path, which says so (and refuses Mistral 4's latent attention by its `kv_lora_rank`)
        "mistral3" | "llava" | "llava_next" if matches!(text_type, "llama" | "mistral" | "ministral" | "ministral3" | "") => llama::resolve(cx),
        "llama4" | "llama4_text" => llama::resolve_llama4(cx),
        "mllama" | "mllama_text_model" => llama::resolve_mllama(cx),
        "mixtral" => mixtral::resolve(cx),
        "qwen" | "qwen2" | "qwen2_vl" | "qwen2_5_vl" | "qwen3" | "qwen2_moe" | "qwen3_moe" | "qwen3_vl" | "qwen3_vl_text" | "qwen3_vl_moe" | "qwen3_vl_moe_text" => qwen::resolve(cx),
        "qwen3_next" | "qwen3_5" | "qwen3_5_text" | "qwen3_5_moe" | "qwen3_5_moe_text" => qwen3_next::resolve(cx),
        "gemma" | "gemma2" | "gemma3" | "gemma3_text" => gemma::resolve(cx),
        "gemma4" | "gemma4_text" => gemma4::resolve(cx),
        "gemma3n" | "gemma3n_text" => gemma3n::resolve(cx),
        "phi" | "phi3" | "phi3small" | "phimoe" => phi::resolve(cx),
        "gpt2" | "openai-gpt" | "gptj" | "gpt_bigcode" | "gpt_neox" | "bloom" => gpt2::resolve(cx),
        "opt" => opt::resolve(cx),
        "falcon" | "RefinedWeb" | "RefinedWebModel" => falcon::resolve(cx),
        "mpt" => mpt::resolve(cx),
        "starcoder2" => starcoder2::resolve(cx),
        "stablelm" | "stablelm_epoch" => stablelm::resolve(cx),
        "deepseek" | "deepseek_v2" | "deepseek_v3" | "deepseek_v32" | "kimi_k2" | "glm4_moe_lite" => deepseek::resolve(cx),
        "gpt_oss" => gpt_oss::resolve(cx),
        "dbrx" => dbrx::resolve(cx),
        "nemotron-nas" | "nemotron_nas" | "deci" => nemotron_nas::resolve(cx),
        "ernie4_5" | "ernie4_5_moe" => ernie::resolve(cx),
        "hunyuan_v1_dense" | "hunyuan_v1_moe" | "hunyuan" => hunyuan::resolve(cx),
        "lfm2" | "lfm2_moe" => lfm2::resolve(cx),
        "glm" | "glm4" | "glm4_moe" | "chatglm" | "glm4v" | "glm4v_moe" | "glm46v" => glm::resolve(cx),
        "olmo" | "olmo2" | "olmo3" => olmo::resolve(cx),
        "olmoe" => olmo::resolve_olmoe(cx),
        "granite" | "granitemoe" | "granitemoeshared" => granite::resolve(cx),
        "mamba" | "falcon_mamba" | "mamba2" => mamba::resolve(cx),
        "falcon_h1" => falcon_h1::resolve(cx),
        "jamba" | "nemotron_h" | "granitemoehybrid" => hybrid::resolve(cx),
        "minimax_m1" | "minimax_text_01" | "minimax" => minimax::resolve(cx),
        "minimax_m2" => minimax::resolve_m2(cx),
        "mimo_v2_flash" => mimo::resolve(cx),
        "mimo_v2" => Err(Error::Unsupported {
            model_type: "mimo_v2".into(),
            reason: "MiMo-V2.5's language model is MiMo-V2-Flash's (model_type mimo_v2_flash), but its vision and audio towers (`vision_config`, `audio_config`) are not read, and its weights would be undercounted".into(),
        }),
        _ => generic::resolve(cx),
    }
}

/// A size in a tower's sub-config, or `default` when absent or absurd (above [`MAX_DIM`]): towers
/// are modelled, so an impossible value falls back as a missing one does.
pub(crate) fn sub_u64(v: &Map<String, Value>, key: &str, default: u64) -> u64 {
    v.get(key).and_then(Value::as_u64).filter(|&x| x <= MAX_DIM).unwrap_or(default)
}

/// Resolution context: the raw config plus the defaults and notes collected on the way.
pub(crate) struct Cx<'a> {
    pub raw: &'a RawConfig,
    pub model_type: String,
    pub defaults: Vec<DefaultUsed>,
    pub notes: Vec<String>,
    /// The context length when the family's config class defaults it (the config leaves it out).
    pub max_positions: Option<u64>,
    /// Multimodal tokens of the largest prompt an engine profiles (set by the vision tower).
    pub mm_tokens: Option<u64>,
    /// The largest multimodal item vLLM V1 runs through the vision tower (set by the tower).
    pub vision_dummy: Option<crate::model::VisionDummy>,
    /// An InternVL config: `finish` adds the InternViT tower, whatever the text family.
    pub intern_vit: bool,
}

impl<'a> Cx<'a> {
    fn new(raw: &'a RawConfig, model_type: &str) -> Self {
        Cx { raw, model_type: model_type.to_string(), defaults: vec![], notes: vec![], max_positions: None, mm_tokens: None, vision_dummy: None, intern_vit: false }
    }

    /// An optional integer outside the shared raw fields, type-checked; `null` reads as absent.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.raw.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => <u64 as crate::config::FromJson>::from_json(v, key).map(Some),
        }
    }

    /// An optional switch outside the shared raw fields, type-checked; `null` reads as absent.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.raw.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => <bool as crate::config::FromJson>::from_json(v, key).map(Some),
        }
    }

    /// A nested sub-config object (`vision_config`, `audio_config`), when present.
    pub fn sub_config(&self, key: &str) -> Option<Map<String, Value>> {
        match self.raw.json.get(key) {
            Some(Value::Object(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// The key the config spells a shared field with (`state_size` may be written
    /// `mamba_d_state`), or the field's name when the config has none: errors name what the
    /// user wrote.
    pub fn key(&self, field: &'static str) -> &'static str {
        self.spelled(field).unwrap_or(field)
    }

    /// The key the config spells a shared field with, if it has the field at all.
    pub fn spelled(&self, field: &str) -> Option<&'static str> {
        let keys = RawConfig::aliases().iter().find(|(f, _)| *f == field).map_or(&[][..], |(_, k)| *k);
        keys.iter().copied().find(|k| self.raw.json.get(*k).is_some_and(|v| !v.is_null()))
    }

    /// A required positive integer.
    pub fn req(&self, v: Option<u64>, field: &str, needed_for: &str) -> Result<u64> {
        match v {
            None => Err(Error::MissingField {
                field: field.into(),
                model_type: self.model_type.clone(),
                needed_for: needed_for.into(),
            }),
            Some(0) => Err(Error::invalid(field, 0, "a positive integer")),
            Some(x) if x > MAX_DIM => Err(Error::invalid(field, x, format!("at most {MAX_DIM}"))),
            Some(x) => Ok(x),
        }
    }

    /// A count that may be zero (shared experts), at most [`MAX_DIM`]: a larger one is an error
    /// naming the field, not an overflow in the sizes built from it.
    pub fn bounded(&self, v: u64, field: &str) -> Result<u64> {
        if v > MAX_DIM {
            return Err(Error::invalid(field, v, format!("at most {MAX_DIM}")));
        }
        Ok(v)
    }

    /// An integer with a documented default, recorded when used.
    pub fn or(&mut self, v: Option<u64>, field: &str, default: u64, why: &str) -> Result<u64> {
        match v {
            Some(0) => Err(Error::invalid(field, 0, "a positive integer")),
            Some(x) if x > MAX_DIM => Err(Error::invalid(field, x, format!("at most {MAX_DIM}"))),
            Some(x) => Ok(x),
            None => {
                self.default(field, default, why);
                Ok(default)
            }
        }
    }

    /// A boolean with a documented default, recorded when used.
    pub fn flag(&mut self, v: Option<bool>, field: &str, default: bool, why: &str) -> bool {
        v.unwrap_or_else(|| {
            self.default(field, default, why);
            default
        })
    }

    pub fn default(&mut self, field: &str, value: impl ToString, why: &str) {
        self.defaults.push(DefaultUsed { field: field.into(), value: value.to_string(), why: why.into() });
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    /// The standard fields of a decoder: hidden, layers, heads, kv heads (default: heads, i.e.
    /// multi-head attention), head dim (default: hidden / heads), vocabulary.
    pub fn common(&mut self) -> Result<Common> {
        self.common_with_head_dim(None)
    }

    /// [`Cx::common`] for a family whose config class gives `head_dim` a default of its own.
    pub fn common_with_head_dim(&mut self, head_dim_default: Option<(u64, &str)>) -> Result<Common> {
        let r = self.raw;
        let hidden = self.req(r.hidden_size, "hidden_size", "every weight shape")?;
        let layers = self.req(r.num_hidden_layers, "num_hidden_layers", "weights and KV cache")?;
        let heads = self.req(r.num_attention_heads, "num_attention_heads", "attention shapes")?;
        let vocab = self.req(r.vocab_size, "vocab_size", "embedding and LM head")?;
        let kv_heads = self.or(r.num_key_value_heads, "num_key_value_heads", heads, "absent: multi-head attention, one KV head per query head")?;
        let head_dim = self.head_dim(hidden, heads, kv_heads, head_dim_default)?;
        Ok(Common { hidden, layers, heads, kv_heads, head_dim, vocab })
    }

    /// `head_dim` (given, the family's default, or hidden / heads, recorded) once the head counts
    /// are known, and the check that the KV heads divide the query heads.
    pub fn head_dim(&mut self, hidden: u64, heads: u64, kv_heads: u64, head_dim_default: Option<(u64, &str)>) -> Result<u64> {
        let head_dim = match (self.raw.head_dim, head_dim_default) {
            (Some(d), _) => self.req(Some(d), "head_dim", "attention shapes")?,
            (None, Some((d, why))) => {
                self.default("head_dim", d, why);
                d
            }
            (None, None) => {
                if hidden % heads != 0 {
                    return Err(Error::invalid("num_attention_heads", heads, format!("a divisor of hidden_size {hidden} (no head_dim given)")));
                }
                self.default("head_dim", hidden / heads, "absent: hidden_size / num_attention_heads");
                hidden / heads
            }
        };
        if kv_heads > heads || heads % kv_heads != 0 {
            return Err(Error::invalid("num_key_value_heads", kv_heads, format!("a divisor of num_attention_heads ({heads})")));
        }
        Ok(head_dim)
    }

    /// The context length a config class gives when the file leaves `max_position_embeddings`
    /// out (recorded); the file's own value otherwise.
    pub fn positions_default(&mut self, n: u64, why: &str) {
        if self.raw.max_position_embeddings.is_none() {
            self.default("max_position_embeddings", n, why);
            self.max_positions = Some(n);
        }
    }

    /// `tie_word_embeddings` with the family's default.
    pub fn tied(&mut self, family_default: bool) -> bool {
        self.flag(self.raw.tie_word_embeddings, "tie_word_embeddings", family_default, "absent: the family's default in transformers")
    }

    /// Layer kinds from `layer_types` (transformers >= 4.53 writes it for hybrids).
    pub fn layer_type(&self, i: usize) -> Option<&str> {
        self.raw.layer_types.as_ref().and_then(|t| t.get(i)).map(String::as_str)
    }

    /// Builds the final shape.
    pub fn finish(&mut self, family: Family, c: &Common, intermediate: u64, tied: bool, mut globals: Vec<Tensor>, layers: Vec<Layer>) -> Result<ModelShape> {
        if self.intern_vit {
            internvl::add_tower(self, c.hidden, &mut globals);
        }
        let moe = layers.iter().flat_map(|l| l.tensors.iter()).find(|t| t.role == Role::Expert).map(|t| (t.count, t.active));
        let checkpoint_dtype = self.raw.torch_dtype.as_deref().and_then(FloatDtype::from_hf);
        let mut notes = std::mem::take(&mut self.notes);
        if let Some(d) = self.raw.torch_dtype.as_deref() {
            if checkpoint_dtype.is_none() {
                notes.push(format!("torch_dtype `{d}` is not a dense float type; weights sized by the quantisation config or the chosen dtype"));
            }
        }
        let quantization = match &self.raw.quantization_config {
            Some(q) => parse_quant(q, &mut notes)?,
            None => None,
        };
        let checkpoint_kv = self.raw.quantization_config.as_ref().and_then(|q| modelopt_kv(q, &mut notes));
        let mut shape = ModelShape {
            model_type: self.model_type.clone(),
            family,
            generic: family == Family::Generic,
            hidden_size: c.hidden,
            vocab_size: c.vocab,
            num_attention_heads: c.heads,
            num_kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            intermediate_size: intermediate,
            max_position_embeddings: self.raw.max_position_embeddings.or(self.max_positions),
            rope_scaling: rope_scaling(&self.raw.json, &mut notes),
            original_max_position_embeddings: positions(self.raw.json.get("original_max_position_embeddings")),
            length_keys: LENGTH_KEYS.iter().filter_map(|k| positions(self.raw.json.get(*k)).map(|n| (k.to_string(), n))).collect(),
            tied_embeddings: tied,
            moe,
            checkpoint_dtype,
            quantization,
            checkpoint_kv,
            config_ssm_dtype: self.raw.json.get("mamba_ssm_dtype").and_then(Value::as_str).and_then(|d| match d {
                "float32" => Some(FloatDtype::F32),
                "bfloat16" => Some(FloatDtype::Bf16),
                "float16" => Some(FloatDtype::F16),
                _ => None,
            }),
            globals,
            layers,
            defaults: std::mem::take(&mut self.defaults),
            notes,
            mm_tokens_per_prompt: self.mm_tokens,
            vision_dummy: self.vision_dummy.take(),
            runs: Vec::new(),
        };
        shape.index_runs();
        Ok(shape)
    }
}

/// The context-length keys vLLM's `_get_and_verify_max_len` reads (`possible_keys`) beside
/// `max_position_embeddings`; SGLang's `CONTEXT_LENGTH_KEYS` are among them.
const LENGTH_KEYS: &[&str] = &["n_positions", "max_seq_len", "seq_length", "model_max_length", "max_sequence_length", "max_seq_length", "seq_len"];

/// The config's RoPE scaling entries: `rope_scaling` (or `rope_parameters`), a single entry or
/// one per layer kind. `type` is read as `rope_type` (older configs) and `su` as `longrope`, as
/// vLLM patches them; an entry whose factor is not a positive number is kept without it and named.
fn rope_scaling(json: &Map<String, Value>, notes: &mut Vec<String>) -> Vec<RopeScaling> {
    let Some((key, Value::Object(rs))) = ["rope_scaling", "rope_parameters"].iter().find_map(|k| json.get(*k).filter(|v| v.is_object()).map(|v| (*k, v))) else {
        return vec![];
    };
    let one = |m: &Map<String, Value>, per_layer_kind: bool, notes: &mut Vec<String>| -> Option<RopeScaling> {
        let kind = m.get("rope_type").or_else(|| m.get("type")).and_then(Value::as_str)?;
        let kind = if kind == "su" { "longrope" } else { kind };
        let factor = match m.get("factor") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64().filter(|f| f.is_finite() && *f > 0.0 && *f <= 1e6) {
                Some(f) => Some(f),
                None => {
                    notes.push(format!("{key}.factor `{v}` is not a positive number: not applied to the default context"));
                    None
                }
            },
        };
        let original = positions(m.get("original_max_position_embeddings"));
        Some(RopeScaling { rope_type: kind.to_string(), factor, original_max_position_embeddings: original, per_layer_kind })
    };
    if rs.contains_key("rope_type") || rs.contains_key("type") {
        return one(rs, false, notes).into_iter().collect();
    }
    // nested: one entry per layer kind (`full_attention`, `sliding_attention`)
    rs.values().filter_map(|v| v.as_object()).filter_map(|m| one(m, true, notes)).collect()
}

/// A position count (`original_max_position_embeddings`): positive and at most 2^30, else absent.
fn positions(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64).filter(|&n| n > 0 && n <= MAX_DIM * 64)
}

/// Dimensions above this are not real models and would only overflow.
pub(crate) const MAX_DIM: u64 = 1 << 24;

/// The standard decoder dimensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common {
    pub hidden: u64,
    pub layers: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub vocab: u64,
}

/// Biases on the attention projections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AttnBias {
    pub qkv: bool,
    pub o: bool,
}

/// Per-head RMS norms on queries and keys (Qwen3, Gemma 3) or over the whole projection (OLMo 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QkNorm {
    None,
    PerHead,
    Full,
}

/// Standard attention: `q`, `k`, `v`, `o` projections (fused or not, the count is the same).
pub(crate) fn attention(c: &Common, bias: AttnBias, qk: QkNorm, window: Window, t: &mut Vec<Tensor>) -> Mixer {
    let (h, d) = (c.hidden, c.head_dim);
    let q = c.heads * d;
    let kv = c.kv_heads * d;
    t.push(Tensor::new("self_attn.q_proj", Role::AttnQ, q, h, Split::Heads { heads: c.heads }));
    t.push(Tensor::new("self_attn.k_proj", Role::AttnKv, kv, h, Split::Heads { heads: c.kv_heads }));
    t.push(Tensor::new("self_attn.v_proj", Role::AttnKv, kv, h, Split::Heads { heads: c.kv_heads }));
    t.push(Tensor::new("self_attn.o_proj", Role::AttnO, h, q, Split::Row));
    if bias.qkv {
        t.push(Tensor::new("self_attn.q_proj.bias", Role::Bias, q, 1, Split::Heads { heads: c.heads }));
        t.push(Tensor::new("self_attn.kv_proj.bias", Role::Bias, 2 * kv, 1, Split::Heads { heads: c.kv_heads }));
    }
    if bias.o {
        t.push(Tensor::new("self_attn.o_proj.bias", Role::Bias, h, 1, Split::Replicated));
    }
    match qk {
        QkNorm::None => {}
        QkNorm::PerHead => t.push(Tensor::new("self_attn.qk_norm", Role::Norm, 2 * d, 1, Split::Replicated)),
        QkNorm::Full => t.push(Tensor::new("self_attn.qk_norm", Role::Norm, q + kv, 1, Split::Replicated)),
    }
    Mixer::Attention { heads: c.heads, kv_heads: c.kv_heads, k_dim: d, v_dim: d, window }
}

/// SwiGLU/GeGLU MLP: `gate`, `up` (hidden -> inter) and `down` (inter -> hidden).
pub(crate) fn gated_mlp(prefix: &str, role: Role, hidden: u64, inter: u64, bias: bool, t: &mut Vec<Tensor>) {
    t.push(Tensor::new(format!("{prefix}.gate_up_proj"), role, 2 * inter, hidden, Split::Column));
    t.push(Tensor::new(format!("{prefix}.down_proj"), role, hidden, inter, Split::Row));
    if bias {
        t.push(Tensor::new(format!("{prefix}.gate_up_proj.bias"), Role::Bias, 2 * inter, 1, Split::Column));
        t.push(Tensor::new(format!("{prefix}.down_proj.bias"), Role::Bias, hidden, 1, Split::Replicated));
    }
}

/// Two-matrix MLP (GPT-2, Phi-2, StarCoder2, Nemotron relu2): `fc1` and `fc2`.
pub(crate) fn plain_mlp(prefix: &str, role: Role, hidden: u64, inter: u64, bias: bool, t: &mut Vec<Tensor>) {
    t.push(Tensor::new(format!("{prefix}.fc1"), role, inter, hidden, Split::Column));
    t.push(Tensor::new(format!("{prefix}.fc2"), role, hidden, inter, Split::Row));
    if bias {
        t.push(Tensor::new(format!("{prefix}.fc1.bias"), Role::Bias, inter, 1, Split::Column));
        t.push(Tensor::new(format!("{prefix}.fc2.bias"), Role::Bias, hidden, 1, Split::Replicated));
    }
}

/// The DeepSeek-style MoE block (DeepSeek-V2/V3, GLM-4.5, MiMo-V2-Flash): gated routed experts,
/// the router's `e_score_correction_bias` when `correction_bias`, and `shared` shared experts
/// fused into one gated MLP of `shared x inter`.
pub(crate) fn deepseek_moe(hidden: u64, experts: u64, top_k: u64, inter: u64, shared: u64, correction_bias: bool, t: &mut Vec<Tensor>) {
    moe(hidden, experts, top_k, inter, true, t);
    if correction_bias {
        t.push(Tensor::new("mlp.gate.e_score_correction_bias", Role::Router, experts, 1, Split::Replicated));
    }
    if shared > 0 {
        gated_mlp("mlp.shared_experts", Role::SharedExpert, hidden, shared * inter, false, t);
    }
}

/// Routed experts (gated unless `gated` is false) with a router of `experts x hidden`.
pub(crate) fn moe(hidden: u64, experts: u64, top_k: u64, inter: u64, gated: bool, t: &mut Vec<Tensor>) {
    t.push(Tensor::new("mlp.router", Role::Router, experts, hidden, Split::Replicated));
    let up = if gated { 2 * inter } else { inter };
    t.push(Tensor::new("mlp.experts.gate_up_proj", Role::Expert, up, hidden, Split::Column).experts(experts, top_k));
    t.push(Tensor::new("mlp.experts.down_proj", Role::Expert, hidden, inter, Split::Row).experts(experts, top_k));
}

/// `n` norms of width `w` (with bias for LayerNorm).
pub(crate) fn norms(name: &str, n: u64, w: u64, bias: bool, t: &mut Vec<Tensor>) {
    if n == 0 {
        return;
    }
    let per = if bias { 2 * w } else { w };
    t.push(Tensor::new(name, Role::Norm, n * per, 1, Split::Replicated));
}

/// Gemma's per-layer inputs (Gemma 3n, the small Gemma 4 models), in one layer: a gate from the
/// hidden state to `width` and a projection back. Nothing when `width` is 0.
pub(crate) fn per_layer_input(hidden: u64, width: u64, t: &mut Vec<Tensor>) {
    if width > 0 {
        t.push(Tensor::new("per_layer_input_gate", Role::Mlp, width, hidden, Split::Replicated));
        t.push(Tensor::new("per_layer_projection", Role::Mlp, hidden, width, Split::Replicated));
    }
}

/// Gemma's per-layer inputs, once per model: the table of `width` per layer for each of `vocab`
/// tokens, its projection from the hidden state and that projection's norm.
pub(crate) fn per_layer_embeddings(layers: u64, hidden: u64, width: u64, vocab: u64, g: &mut Vec<Tensor>) {
    if width > 0 {
        let packed = layers.saturating_mul(width);
        g.push(Tensor::new("embed_tokens_per_layer", Role::Embedding, vocab, packed, Split::Column));
        g.push(Tensor::new("per_layer_model_projection", Role::Mlp, packed, hidden, Split::Replicated));
        norms("per_layer_projection_norm", 1, width, false, g);
    }
}

/// Token embedding, final norm and LM head (absent when tied).
pub(crate) fn embeddings(vocab: u64, hidden: u64, tied: bool, final_norm_bias: bool, head_bias: bool) -> Vec<Tensor> {
    let mut g = vec![Tensor::new("embed_tokens", Role::Embedding, vocab, hidden, Split::Column)];
    norms("norm", 1, hidden, final_norm_bias, &mut g);
    if !tied {
        g.push(Tensor::new("lm_head", Role::LmHead, vocab, hidden, Split::Column));
    }
    if head_bias {
        g.push(Tensor::new("lm_head.bias", Role::Bias, vocab, 1, Split::Column));
    }
    g
}

/// The window of a layer from `layer_types` / `sliding_window` / `use_sliding_window`.
/// `all_sliding_default`: whether a plain `sliding_window` applies to every layer (Mistral, Phi-3).
pub(crate) fn window_for(cx: &Cx, i: usize, all_sliding_default: bool) -> Window {
    let w = cx.raw.sliding_window.and_then(|w| w.0).filter(|&w| w > 0);
    if cx.raw.use_sliding_window == Some(false) {
        return Window::Full;
    }
    match (cx.layer_type(i), w) {
        (Some("sliding_attention"), Some(w)) => Window::Sliding(w),
        (Some("chunked_attention"), _) => cx.raw.attention_chunk_size.map_or(Window::Full, Window::Chunked),
        (Some(_), _) => Window::Full,
        (None, Some(w)) if all_sliding_default => {
            // Qwen2 style: only layers from max_window_layers on use the window
            match cx.raw.max_window_layers {
                Some(m) if cx.raw.use_sliding_window == Some(true) && (i as u64) < m => Window::Full,
                _ => Window::Sliding(w),
            }
        }
        _ => Window::Full,
    }
}

/// The window of layer `i` in a family that interleaves sliding and full layers: `layer_types`
/// when the file gives it, else a sliding window on every layer but each `pattern`-th (Gemma 2: 2,
/// Gemma 3: 6, Command A: 4); no pattern and no `layer_types` means full attention.
pub(crate) fn interleaved_window(cx: &Cx, i: usize, pattern: Option<u64>) -> Window {
    let w = cx.raw.sliding_window.and_then(|w| w.0).filter(|&w| w > 0);
    match (cx.layer_type(i), w, pattern) {
        (Some("sliding_attention"), Some(w), _) => Window::Sliding(w),
        (Some(_), _, _) => Window::Full,
        (None, Some(w), Some(p)) if (i as u64 + 1) % p != 0 => Window::Sliding(w),
        _ => Window::Full,
    }
}

/// Parses `quantization_config` into a storage scheme.
pub(crate) fn parse_quant(q: &Value, notes: &mut Vec<String>) -> Result<Option<Quant>> {
    let Some(obj) = q.as_object() else {
        return Err(Error::FieldType { field: "quantization_config".into(), message: "expected an object".into() });
    };
    let method = quant_method(obj);
    if !obj.contains_key("quant_method") && method == "modelopt" {
        notes.push("quantisation read from ModelOpt's hf_quant_config.json (config.json has no quantization_config)".into());
    }
    let int = |keys: &[&str]| keys.iter().find_map(|k| obj.get(*k).and_then(Value::as_i64));
    let skip = |keys: &[&str]| -> Vec<String> {
        keys.iter()
            .find_map(|k| obj.get(*k).and_then(Value::as_array))
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let group = |g: Option<i64>| match g {
        Some(g) if g > 0 => Some(g as u64),
        _ => None,
    };
    let bits_ok = |b: i64, field: &str| -> Result<u64> {
        if matches!(b, 2 | 3 | 4 | 8) {
            Ok(b as u64)
        } else {
            Err(Error::invalid(format!("quantization_config.{field}"), b, "2, 3, 4 or 8 bits"))
        }
    };
    let scheme = match method.as_str() {
        "awq" => Quant::Awq {
            bits: bits_ok(int(&["bits", "w_bit"]).unwrap_or(4), "bits")?,
            group_size: group(int(&["group_size", "q_group_size"]).or(Some(128))),
            skip: skip(&["modules_to_not_convert"]),
        },
        "gptq" | "auto-round" | "autoround" => Quant::Gptq {
            bits: bits_ok(int(&["bits"]).unwrap_or(4), "bits")?,
            group_size: group(int(&["group_size"]).or(Some(128))),
            skip: skip(&["modules_to_not_convert", "modules_in_block_to_quantize_skip"]),
        },
        "fp8" | "fbgemm_fp8" => {
            let block = obj.get("weight_block_size").and_then(Value::as_array).and_then(|a| {
                let v: Vec<u64> = a.iter().filter_map(Value::as_u64).collect();
                (v.len() == 2 && v[0] > 0 && v[1] > 0).then(|| [v[0], v[1]])
            });
            Quant::Fp8 { block, skip: skip(&["modules_to_not_convert", "ignored_layers"]) }
        }
        "mxfp4" => Quant::Mxfp4 { skip: skip(&["modules_to_not_convert"]) },
        "modelopt" | "modelopt_fp4" | "modelopt_fp8" => {
            // NVIDIA ModelOpt exports: the scheme in `quant_algo` (at the top of config.json's
            // block, under `quantization` in hf_quant_config.json), excluded modules in `ignore`
            // (newer exports) or `exclude_modules`
            let inner = obj.get("quantization").and_then(Value::as_object).unwrap_or(obj);
            let get = |k: &str| inner.get(k).or_else(|| obj.get(k));
            let sk: Vec<String> = ["ignore", "exclude_modules"]
                .iter()
                .find_map(|k| get(k).and_then(Value::as_array))
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            let algo = get("quant_algo").and_then(Value::as_str).unwrap_or("").to_ascii_uppercase();
            // MIXED_PRECISION names a scheme per layer: one scheme for all of them is sized as that scheme
            let algos: Vec<String> = match get("quantized_layers").and_then(Value::as_object) {
                Some(layers) if algo == "MIXED_PRECISION" => {
                    let mut v: Vec<String> = layers.values().filter_map(|l| l.get("quant_algo").and_then(Value::as_str)).map(str::to_ascii_uppercase).collect();
                    v.sort();
                    v.dedup();
                    v
                }
                _ => vec![algo.clone()],
            };
            match algos.as_slice() {
                [a] if a.contains("NVFP4") => Quant::Nvfp4 { skip: sk },
                [a] if a == "FP8" => Quant::Fp8 { block: None, skip: sk },
                [a] if a == "FP8_PB_WO" || a == "FP8_BLOCK" => Quant::Fp8 { block: Some([128, 128]), skip: sk },
                _ => {
                    notes.push(format!("ModelOpt quant_algo `{}` is not modelled; weights sized at the activation dtype (an over-estimate)", if algos.len() > 1 { algos.join(" + ") } else { algo }));
                    return Ok(None);
                }
            }
        }
        "bitsandbytes" | "bnb" => {
            let b4 = obj.get("load_in_4bit").and_then(Value::as_bool).unwrap_or(false);
            let sk = skip(&["llm_int8_skip_modules", "modules_to_not_convert"]);
            if b4 {
                let dq = obj.get("bnb_4bit_use_double_quant").and_then(Value::as_bool).unwrap_or(false);
                Quant::Bnb4 { double_quant: dq, skip: sk }
            } else {
                Quant::Bnb8 { skip: sk }
            }
        }
        "compressed-tensors" | "compressed_tensors" => {
            let groups: Vec<&Value> = obj.get("config_groups").and_then(Value::as_object).map(|g| g.values().collect()).unwrap_or_default();
            let weights = groups.first().and_then(|g| g.get("weights")).cloned().unwrap_or(Value::Null);
            let scheme = |w: Option<&Value>| ["num_bits", "type", "group_size"].map(|k| w.and_then(|w| w.get(k)).cloned());
            if groups.iter().any(|g| scheme(g.get("weights")) != scheme(Some(&weights))) {
                notes.push(format!("compressed-tensors config_groups: {} groups whose weight schemes differ (mixed precision); every linear sized as the first group's", groups.len()));
            }
            let bits = weights.get("num_bits").and_then(Value::as_i64).unwrap_or(8);
            let ty = weights.get("type").and_then(Value::as_str).unwrap_or("int");
            let sk = skip(&["ignore"]);
            let group_size = weights.get("group_size").and_then(Value::as_i64);
            if ty == "float" && bits == 4 {
                // nvfp4-pack-quantized (group 16, fp8 scales) or mxfp4-pack-quantized (group 32, e8m0 scales)
                if group_size == Some(32) { Quant::Mxfp4 { skip: sk } } else { Quant::Nvfp4 { skip: sk } }
            } else if ty == "float" && bits == 8 {
                let block = weights.get("block_structure").and_then(Value::as_array).and_then(|a| {
                    let v: Vec<u64> = a.iter().filter_map(Value::as_u64).collect();
                    (v.len() == 2).then(|| [v[0], v[1]])
                });
                Quant::Fp8 { block, skip: sk }
            } else if bits == 8 && weights.get("group_size").map_or(true, Value::is_null) {
                Quant::Int8PerChannel { skip: sk }
            } else {
                Quant::Gptq { bits: bits_ok(bits, "config_groups.weights.num_bits")?, group_size: group(weights.get("group_size").and_then(Value::as_i64)), skip: sk }
            }
        }
        "" => {
            notes.push("quantization_config has no quant_method; weights sized unquantised".into());
            return Ok(None);
        }
        other => {
            notes.push(format!("quantization method `{other}` is not modelled; weights sized at the activation dtype (an over-estimate)"));
            return Ok(None);
        }
    };
    Ok(Some(scheme))
}

/// `quant_method`, lower-cased; a ModelOpt `hf_quant_config.json` names its `producer` instead.
fn quant_method(obj: &Map<String, Value>) -> String {
    match obj.get("quant_method").and_then(Value::as_str) {
        Some(m) => m.to_ascii_lowercase(),
        None => obj.get("producer").and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("").to_ascii_lowercase(),
    }
}

/// The KV-cache dtype a ModelOpt checkpoint was calibrated for (`kv_cache_quant_algo: FP8`, or a
/// `kv_cache_scheme` of static 8-bit floats), which vLLM (from 0.14) and SGLang (from 0.5.3) use
/// under `--kv-cache-dtype auto` ([`crate::estimate::effective_kv`]); other quantisation methods
/// name none.
pub(crate) fn modelopt_kv(q: &Value, notes: &mut Vec<String>) -> Option<KvDtype> {
    let obj = q.as_object()?;
    if !quant_method(obj).starts_with("modelopt") {
        return None;
    }
    let inner = obj.get("quantization").and_then(Value::as_object).unwrap_or(obj);
    let algo = ["kv_cache_scheme", "kv_cache_quant_algo"]
        .iter()
        .find_map(|k| inner.get(*k).or_else(|| obj.get(*k)).filter(|v| !v.is_null()))?;
    let fp8 = match algo {
        Value::String(s) => s.eq_ignore_ascii_case("fp8"),
        Value::Object(m) => {
            m.get("dynamic").and_then(Value::as_bool) == Some(false)
                && m.get("num_bits").and_then(Value::as_i64) == Some(8)
                && m.get("type").and_then(Value::as_str) == Some("float")
        }
        _ => false,
    };
    if fp8 {
        Some(KvDtype::Fp8)
    } else {
        notes.push(format!("ModelOpt KV-cache scheme `{algo}` is not modelled; the KV cache is sized at the dtype asked for"));
        None
    }
}

/// Layer indices where `f` holds, for building alternating patterns.
pub(crate) fn range(n: u64) -> impl Iterator<Item = usize> {
    0..n as usize
}
