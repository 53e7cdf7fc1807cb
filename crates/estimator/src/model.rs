//! The resolved, architecture-independent description of a model: an inventory of weight tensors
//! (what the parameter count and weight bytes are computed from) and, per decoder layer, what the
//! layer keeps per token or per request (what the KV cache is computed from).
//!
//! Every family file in `arch/` produces one of these; nothing downstream looks at `config.json`.

use crate::dtype::{FloatDtype, KvDtype, Quant};
use serde::{Deserialize, Serialize};

/// What a weight tensor is for. Decides whether quantisation applies and how it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Embedding,
    PositionEmbedding,
    LmHead,
    AttnQ,
    AttnKv,
    AttnO,
    Mlp,
    Expert,
    SharedExpert,
    Router,
    RecurrentLinear,
    RecurrentParam,
    Norm,
    Bias,
    /// Vision or audio encoder of a multimodal checkpoint (modelled, see `ModelShape::notes`).
    Encoder,
}

impl Role {
    /// Linear layers that AWQ/GPTQ/FP8/MXFP4 checkpoints quantise.
    pub fn is_quantisable_linear(self) -> bool {
        matches!(
            self,
            Role::AttnQ | Role::AttnKv | Role::AttnO | Role::Mlp | Role::Expert | Role::SharedExpert | Role::RecurrentLinear
        )
    }
    /// The module-name fragments a `modules_to_not_convert` entry may use for this role.
    pub fn module_names(self) -> &'static [&'static str] {
        match self {
            Role::Embedding => &["embed_tokens", "embed", "wte", "word_embeddings"],
            Role::PositionEmbedding => &["wpe", "embed_positions"],
            Role::LmHead => &["lm_head", "output"],
            Role::AttnQ | Role::AttnKv | Role::AttnO => &["self_attn", "attn", "attention"],
            Role::Mlp => &["mlp"],
            Role::Expert => &["experts"],
            Role::SharedExpert => &["shared_expert", "shared_experts"],
            Role::Router => &["router", "gate"],
            Role::RecurrentLinear | Role::RecurrentParam => &["mamba", "mixer", "linear_attn"],
            Role::Norm => &["norm"],
            Role::Bias => &["bias"],
            Role::Encoder => &["vision", "visual", "vision_tower", "multi_modal_projector"],
        }
    }
}

/// How tensor parallelism shards a tensor across `tp` ranks (Megatron-style, as vLLM does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Split {
    /// Output features divided: `ceil(rows / tp)` per rank.
    Column,
    /// Input features divided: `ceil(cols / tp)` per rank.
    Row,
    /// Output features are `heads x head_dim`; each rank holds `ceil(heads / tp)` heads, so KV heads
    /// are replicated when there are fewer of them than ranks.
    Heads { heads: u64 },
    /// Every rank holds all of it (norms, routers, MLA latent projections in vLLM).
    Replicated,
    /// Output features divided, except `groups x group_rows` of them, of which every rank holds
    /// `ceil(groups / tp)` whole groups: Mamba-2's `in_proj` and `conv1d`, whose B and C rows vLLM
    /// and SGLang replicate where the ranks do not divide the groups
    /// (`extra_groups_for_head_shards`).
    ColumnWithGroups { groups: u64, group_rows: u64 },
    /// Output features divided when the ranks divide `heads`, all of it on every rank otherwise
    /// (vLLM's InternViT attention, which it builds unsharded when they do not).
    WholeHeads { heads: u64 },
}

/// A group of `count` identical weight matrices of `rows x cols` elements (a vector has `cols = 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub name: String,
    pub role: Role,
    pub rows: u64,
    pub cols: u64,
    /// Copies (experts of a MoE layer).
    pub count: u64,
    /// Copies used for one token (MoE: top-k); equals `count` for dense tensors.
    pub active: u64,
    pub split: Split,
}

impl Tensor {
    pub fn new(name: impl Into<String>, role: Role, rows: u64, cols: u64, split: Split) -> Self {
        Tensor { name: name.into(), role, rows, cols, count: 1, active: 1, split }
    }
    pub fn experts(mut self, count: u64, active: u64) -> Self {
        self.count = count;
        self.active = active.min(count);
        self
    }
    /// The token embedding (`embed_tokens`, GPT-2's `wte`), which a tied head reuses; not Gemma
    /// 3n's per-layer embeddings.
    pub fn is_token_embedding(&self) -> bool {
        self.role == Role::Embedding && matches!(self.name.as_str(), "embed_tokens" | "wte")
    }
    /// Elements of all copies (saturating: absurd configs are rejected elsewhere).
    pub fn elements(&self) -> u128 {
        self.rows as u128 * self.cols as u128 * self.count as u128
    }
    /// `(rows, cols)` held by one of `tp` ranks.
    pub fn shard(&self, tp: u64) -> (u64, u64) {
        let tp = tp.max(1);
        match self.split {
            Split::Column => (self.rows.div_ceil(tp), self.cols),
            Split::Row => (self.rows, self.cols.div_ceil(tp)),
            Split::Heads { heads } if heads > 0 => {
                let per_head = self.rows / heads;
                (heads.div_ceil(tp) * per_head, self.cols)
            }
            Split::ColumnWithGroups { groups, group_rows } => {
                let grouped = groups.saturating_mul(group_rows).min(self.rows);
                let per_rank = groups.div_ceil(tp).saturating_mul(group_rows).min(grouped);
                ((self.rows - grouped).div_ceil(tp).saturating_add(per_rank), self.cols)
            }
            Split::WholeHeads { heads } if heads % tp == 0 => (self.rows.div_ceil(tp), self.cols),
            Split::Heads { .. } | Split::WholeHeads { .. } | Split::Replicated => (self.rows, self.cols),
        }
    }
}

/// Attention span of a layer's KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "tokens")]
pub enum Window {
    /// Keeps every token of the request.
    Full,
    /// Keeps the last `n` tokens (sliding-window attention).
    Sliding(u64),
    /// Attends within chunks of `n` tokens (Llama 4 chunked attention); keeps at most `n`.
    Chunked(u64),
}

impl Window {
    /// Tokens a request of `len` tokens keeps in this layer's cache.
    pub fn tokens_kept(self, len: u64) -> u64 {
        match self {
            Window::Full => len,
            Window::Sliding(w) | Window::Chunked(w) => len.min(w),
        }
    }
    pub fn limit(self) -> Option<u64> {
        match self {
            Window::Full => None,
            Window::Sliding(w) | Window::Chunked(w) => Some(w),
        }
    }
}

/// What one decoder layer keeps while a request is alive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Mixer {
    /// Softmax attention: K and V per token, per KV head.
    Attention { heads: u64, kv_heads: u64, k_dim: u64, v_dim: u64, window: Window },
    /// Multi-head latent attention (DeepSeek-V2/V3): one compressed latent plus a shared rope key
    /// per token, identical for all heads and therefore replicated on every TP rank. DeepSeek
    /// Sparse Attention (V3.2) adds a lightning indexer that caches one key of `index_head_dim`
    /// values per token beside the latent (0: no indexer).
    Mla {
        heads: u64,
        kv_lora_rank: u64,
        qk_rope_head_dim: u64,
        qk_nope_head_dim: u64,
        v_head_dim: u64,
        #[serde(default)]
        index_head_dim: u64,
    },
    /// Recurrent layers (Mamba, gated DeltaNet, lightning attention): a constant state per request,
    /// a convolution window (in the activation dtype unless `conv_fp32`) and an SSM state (float32
    /// when `ssm_fp32`).
    Recurrent {
        kind: String,
        conv_elems: u64,
        ssm_elems: u64,
        ssm_fp32: bool,
        heads: u64,
        #[serde(default)]
        conv_fp32: bool,
        /// Mamba-2's B/C groups (0 for other kinds), and the convolution values of one group
        /// (`2 x state x (d_conv - 1)`, part of `conv_elems`): vLLM and SGLang shard the groups
        /// with the heads, but give every TP rank a whole group when they do not divide
        /// (`extra_groups_for_head_shards`; only one group is allowed then).
        #[serde(default)]
        groups: u64,
        #[serde(default)]
        group_conv_elems: u64,
    },
    /// Cross-attention to encoder outputs (image tokens): no per-token cache of the text.
    CrossAttention { kv_heads: u64, head_dim: u64 },
    /// Attention that reads the cache of an earlier layer (Gemma 4 `num_kv_shared_layers`): its
    /// queries attend over that layer's keys and values, so it keeps no cache of its own.
    SharedKv { heads: u64, kv_heads: u64, k_dim: u64, v_dim: u64, window: Window },
    /// A block without a sequence mixer (an MLP-only block of a hybrid).
    None,
}

/// One decoder layer (or block of a hybrid pattern).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub mixer: Mixer,
    /// A second sequence mixer that reads the same input beside `mixer` and whose output is added
    /// to its own (Falcon-H1: a Mamba-2 mixer beside the attention of every layer). Its cache
    /// adds to the layer's: engines register it as a layer of its own kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beside: Option<Mixer>,
    pub tensors: Vec<Tensor>,
}

impl Layer {
    pub fn new(mixer: Mixer, tensors: Vec<Tensor>) -> Self {
        Layer { mixer, beside: None, tensors }
    }
    /// The layer's mixers: `mixer`, then `beside` where there is one.
    pub fn mixers(&self) -> impl Iterator<Item = &Mixer> {
        std::iter::once(&self.mixer).chain(self.beside.as_ref())
    }
    fn mixers_mut(&mut self) -> impl Iterator<Item = &mut Mixer> {
        std::iter::once(&mut self.mixer).chain(self.beside.as_mut())
    }
}

/// A default the resolver applied because the config did not say: shown with every answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultUsed {
    pub field: String,
    pub value: String,
    pub why: String,
}

/// The model families the estimator knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Llama,
    Llama4,
    Mllama,
    Mistral,
    Mixtral,
    Qwen,
    Qwen2,
    Qwen3,
    Qwen2Moe,
    Qwen3Moe,
    Qwen3Next,
    Qwen35,
    Gemma,
    Gemma2,
    Gemma3,
    Gemma4,
    Gemma3n,
    Phi,
    Phi3,
    Phi3Small,
    PhiMoe,
    Gpt2,
    GptJ,
    Opt,
    Falcon,
    Mpt,
    Starcoder2,
    Deepseek,
    DeepseekV2,
    DeepseekV3,
    DeepseekV32,
    GptOss,
    Glm,
    Olmo,
    Olmo2,
    Olmo3,
    Olmoe,
    StableLm,
    Granite,
    GraniteMoe,
    Jamba,
    Mamba,
    NemotronH,
    GraniteMoeHybrid,
    MiniMax,
    MiniMaxM2,
    MiMoV2Flash,
    FalconH1,
    Ernie45,
    Ernie45Moe,
    Hunyuan,
    HunyuanMoe,
    SeedOss,
    Cohere2,
    Baichuan,
    Lfm2,
    Lfm2Moe,
    Apertus,
    Arcee,
    Nemotron,
    GptNeox,
    Bloom,
    Dbrx,
    NemotronNas,
    Generic,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Llama4 => "llama4",
            Family::Mllama => "mllama",
            Family::Mistral => "mistral",
            Family::Mixtral => "mixtral",
            Family::Qwen => "qwen",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Qwen2Moe => "qwen2-moe",
            Family::Qwen3Moe => "qwen3-moe",
            Family::Qwen3Next => "qwen3-next",
            Family::Qwen35 => "qwen3.5",
            Family::Gemma => "gemma",
            Family::Gemma2 => "gemma2",
            Family::Gemma3 => "gemma3",
            Family::Gemma4 => "gemma4",
            Family::Gemma3n => "gemma3n",
            Family::Phi => "phi",
            Family::Phi3 => "phi3",
            Family::Phi3Small => "phi3-small",
            Family::PhiMoe => "phi-moe",
            Family::Gpt2 => "gpt2",
            Family::GptJ => "gpt-j",
            Family::Opt => "opt",
            Family::Falcon => "falcon",
            Family::Mpt => "mpt",
            Family::Starcoder2 => "starcoder2",
            Family::Deepseek => "deepseek",
            Family::DeepseekV2 => "deepseek-v2",
            Family::DeepseekV3 => "deepseek-v3",
            Family::DeepseekV32 => "deepseek-v3.2",
            Family::GptOss => "gpt-oss",
            Family::Glm => "glm",
            Family::Olmo => "olmo",
            Family::Olmo2 => "olmo2",
            Family::Olmo3 => "olmo3",
            Family::Olmoe => "olmoe",
            Family::StableLm => "stablelm",
            Family::Granite => "granite",
            Family::GraniteMoe => "granite-moe",
            Family::Jamba => "jamba",
            Family::Mamba => "mamba",
            Family::NemotronH => "nemotron-h",
            Family::GraniteMoeHybrid => "granite-moe-hybrid",
            Family::MiniMax => "minimax",
            Family::MiniMaxM2 => "minimax-m2",
            Family::MiMoV2Flash => "mimo-v2-flash",
            Family::FalconH1 => "falcon-h1",
            Family::Ernie45 => "ernie4.5",
            Family::Ernie45Moe => "ernie4.5-moe",
            Family::Hunyuan => "hunyuan",
            Family::HunyuanMoe => "hunyuan-moe",
            Family::SeedOss => "seed-oss",
            Family::Cohere2 => "cohere2",
            Family::Baichuan => "baichuan",
            Family::Lfm2 => "lfm2",
            Family::Lfm2Moe => "lfm2-moe",
            Family::Apertus => "apertus",
            Family::Arcee => "arcee",
            Family::Nemotron => "nemotron",
            Family::GptNeox => "gpt-neox",
            Family::Bloom => "bloom",
            Family::Dbrx => "dbrx",
            Family::NemotronNas => "nemotron-nas",
            Family::Generic => "generic",
        }
    }
}

/// One RoPE scaling entry of a config: its type (`linear`, `dynamic`, `yarn`, `llama3`,
/// `longrope`, `default`, ...), its `factor` and its `original_max_position_embeddings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    pub rope_type: String,
    pub factor: Option<f64>,
    pub original_max_position_embeddings: Option<u64>,
    /// Written under a layer kind (`rope_parameters.full_attention`), not at the top level of
    /// `rope_scaling`: SGLang's context length reads only a top-level `factor`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_layer_kind: bool,
}

/// The resolved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelShape {
    /// `model_type` as written in the config (top level).
    pub model_type: String,
    pub family: Family,
    /// True when the family was not recognised and the generic decoder path was used.
    pub generic: bool,
    pub hidden_size: u64,
    pub vocab_size: u64,
    pub num_attention_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    pub intermediate_size: u64,
    pub max_position_embeddings: Option<u64>,
    /// The RoPE scaling the config declares (`rope_scaling`, or transformers v5's
    /// `rope_parameters`, one entry per layer kind when nested), and the top-level
    /// `original_max_position_embeddings` (LongRoPE): vLLM derives its default `max_model_len`
    /// from them.
    #[serde(default)]
    pub rope_scaling: Vec<RopeScaling>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<u64>,
    /// The config's other context-length keys beside `max_position_embeddings` (`seq_length`,
    /// `model_max_length`, ...), as written: vLLM takes the smallest of them all as the model's
    /// length (the first Qwen-14B release: 8192 and `seq_length` 2048), SGLang the first in its
    /// own order ([`ModelShape::length_key`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub length_keys: Vec<(String, u64)>,
    pub tied_embeddings: bool,
    /// MoE: (routed experts, experts per token).
    pub moe: Option<(u64, u64)>,
    /// Dtype the checkpoint declares (`torch_dtype`), if any.
    pub checkpoint_dtype: Option<FloatDtype>,
    /// The checkpoint's `quantization_config`, resolved.
    pub quantization: Option<Quant>,
    /// The KV-cache dtype the checkpoint was calibrated for (ModelOpt's `kv_cache_quant_algo`),
    /// which vLLM applies under `--kv-cache-dtype auto` from 0.14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_kv: Option<KvDtype>,
    /// The SSM-state dtype the config asks for (`mamba_ssm_dtype`, at the top or in
    /// `text_config`), which SGLang reads from 0.5.9 for the families whose config class passes
    /// itself to `mamba2_state_dtype`; `None` when absent or not a float type SGLang knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_ssm_dtype: Option<FloatDtype>,
    /// Tensors outside the decoder layers: embeddings, final norm, LM head, encoders.
    pub globals: Vec<Tensor>,
    pub layers: Vec<Layer>,
    pub defaults: Vec<DefaultUsed>,
    pub notes: Vec<String>,
    /// Multimodal tokens of the largest prompt (one item per modality) vLLM profiles, where the
    /// vision tower's rule is known; V0 fits `max_num_batched_tokens / this` dummy sequences.
    #[serde(default)]
    pub mm_tokens_per_prompt: Option<u64>,
    /// The multimodal item vLLM V1 runs through the vision tower before its profiling forward,
    /// where the family's largest item is known (see [`VisionDummy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision_dummy: Option<VisionDummy>,
    /// Runs of consecutive identical layers, `(first index, count)`, indexed once by
    /// [`ModelShape::index_runs`]: every per-layer sum walks runs, so a 32-layer dense model costs
    /// one layer's arithmetic, not 32. Not serialised; an empty or stale index falls back to
    /// one run per layer.
    #[serde(skip)]
    pub runs: Vec<(usize, usize)>,
}

/// One multimodal item of the largest kind a vision tower takes, as vLLM V1's `profile_run`
/// builds it: it runs `max_num_batched_tokens / tokens_per_item` of them (at least one) through
/// the tower and keeps their embeddings, and the input tensors, alive through the text model's
/// dummy forward. Shapes come from `vision_config` and the family's image-processor defaults
/// (which `config.json` does not carry); every field is a count, the byte sizes follow from them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisionDummy {
    /// What the item is, for the explanation ("an image of 896 x 896 pixels").
    pub what: String,
    /// Tokens it takes in the encoder budget (its placeholder tokens in the prompt).
    pub tokens_per_item: u64,
    /// Rows of the embedding the tower returns for it.
    pub output_rows: u64,
    /// Width of one row (the text model's hidden size; Qwen3-VL adds its deepstack levels).
    pub output_width: u64,
    /// Values of its input tensor (`pixel_values`), which the processors hand over as float32
    /// (vLLM casts them to the model dtype from 0.9.1).
    pub input_values: u64,
    /// Patches the tower's layers run for it.
    pub patches: u64,
    /// The tower's width and its MLP's intermediate width.
    pub width: u64,
    pub mlp_width: u64,
    /// A gated MLP (gate and up projections, then their product).
    pub gated_mlp: bool,
    /// Rotary positions applied to q and k in float32 (Qwen2-VL's and Qwen2.5-VL's towers),
    /// which copies q, k and v out of the fused projection first.
    pub rotary_f32: bool,
    /// The item above is one temporal group of a video whose frame count follows a length
    /// (Qwen2-VL's and Qwen2.5-VL's processors, `get_num_frames_with_most_features`): the engine
    /// multiplies it by the groups that fit ([`FrameVideo`] says which length).
    #[serde(default)]
    pub video_groups: bool,
    /// Qwen3-VL's and Qwen3.5's dummy video as vLLM 0.11 and 0.12 build it, which those releases
    /// profile instead of the item above (its budget count, 12.5 tokens an embedding for the
    /// timestamps, is the largest): ascending `min_model_len`, the last one `max_model_len`
    /// reaches applies. Empty for other families.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_videos: Vec<VideoDummy>,
    /// A video of single-tile frames whose count follows `max_model_len` (InternVL with a text
    /// model whose tokenizer has a video token), which vLLM profiles instead of the image above
    /// when it has more tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_video: Option<FrameVideo>,
    /// How the tower's attention is split over TP, where it is not simply divided over the ranks
    /// (`None`): InternViT's is whole on each rank unless the ranks divide its heads, the -hf
    /// tower's always, and so are its activations; GLM-4.xV's is divided by heads, which vLLM
    /// needs the ranks to divide (`engine::vllm::run` refuses the TP otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_split: Option<Split>,
    /// GLM-4.xV: the geometry of the dummy video vLLM profiles instead of the item above, whose
    /// frames and size follow the release and a length (`crate::arch::glm4v::video_item`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glm_video: Option<GlmVideo>,
}

/// [`VisionDummy::glm_video`]: a GLM-4.xV tower's patch, merge and temporal sizes and its
/// channels, from which transformers' `smart_resize` sizes vLLM's dummy image and video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlmVideo {
    pub patch: u64,
    pub merge: u64,
    pub temporal: u64,
    pub channels: u64,
}

/// [`VisionDummy::frame_video`]: vLLM's `get_num_frames_with_most_features` gives `length /
/// tokens_per_frame` frames, at least one; the length is `max_model_len` (less the largest image's
/// tokens before 0.10.2) for the budget, and for the dummy batch `max_num_batched_tokens` before
/// 0.11, `max_model_len` from it ([`crate::engine::vllm::encoder_profile`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameVideo {
    /// The vLLM release that takes videos for this model.
    pub from: (u64, u64, u64),
    pub tokens_per_frame: u64,
    pub patches_per_frame: u64,
    pub input_per_frame: u64,
}

/// One dummy video of [`VisionDummy::early_videos`]: the frames vLLM's
/// `get_num_frames_with_most_features` gives every `max_model_len` from `min_model_len` up to the
/// next entry's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoDummy {
    /// The shortest `max_model_len` that profiles this video.
    pub min_model_len: u64,
    /// What the item is, for the explanation.
    pub what: String,
    /// Tokens it takes in the encoder budget.
    pub tokens_per_item: u64,
    /// Rows of the embedding the tower returns, patches it runs, values of its input (the
    /// processor's float32 pixels, which vLLM casts to the model dtype from 0.9.1).
    pub output_rows: u64,
    pub patches: u64,
    pub input_values: u64,
}

impl ModelShape {
    /// Indexes runs of consecutive identical layers (called by every resolver; call it again after
    /// editing `layers` by hand).
    pub fn index_runs(&mut self) {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            match runs.last_mut() {
                Some((start, n)) if self.layers.get(*start) == Some(l) => *n += 1,
                _ => runs.push((i, 1)),
            }
        }
        self.runs = runs;
    }

    /// Layers `lo..hi` as `(layer, how many identical copies)`, in order.
    pub fn runs_in(&self, lo: usize, hi: usize) -> impl Iterator<Item = (&Layer, u64)> + '_ {
        let hi = hi.min(self.layers.len());
        let valid = self.runs.iter().map(|r| r.1).sum::<usize>() == self.layers.len();
        let count = if valid { self.runs.len() } else { self.layers.len() };
        (0..count).filter_map(move |i| {
            let (start, n) = if valid { self.runs.get(i).copied().unwrap_or((i, 0)) } else { (i, 1) };
            let a = start.max(lo);
            let b = (start + n).min(hi);
            (b > a).then(|| self.layers.get(start).map(|l| (l, (b - a) as u64))).flatten()
        })
    }

    /// Every layer as `(layer, copies)`.
    pub fn runs_all(&self) -> impl Iterator<Item = (&Layer, u64)> + '_ {
        self.runs_in(0, self.layers.len())
    }

    /// The shortest context-length key when it is shorter than `max_position_embeddings`
    /// (vLLM's `_get_and_verify_max_len` takes the minimum of the keys present).
    pub fn shorter_length_key(&self) -> Option<(&str, u64)> {
        let (key, n) = self.length_keys.iter().min_by_key(|(_, n)| *n)?;
        self.max_position_embeddings.is_some_and(|l| *n < l).then_some((key.as_str(), *n))
    }

    /// The first of `keys` the config has, with its value.
    pub fn length_key(&self, keys: &[&str]) -> Option<(&str, u64)> {
        keys.iter().find_map(|k| self.length_keys.iter().find(|(n, _)| n == k)).map(|(k, n)| (k.as_str(), *n))
    }

    fn sum_tensors(&self, f: impl Fn(&Tensor) -> u128) -> u64 {
        let globals: u128 = self.globals.iter().map(&f).sum();
        let layers: u128 = self.runs_all().map(|(l, n)| l.tensors.iter().map(&f).sum::<u128>() * n as u128).sum();
        u64::try_from(globals + layers).unwrap_or(u64::MAX)
    }
    /// Total parameters (all experts, all tensors).
    pub fn params_total(&self) -> u64 {
        self.sum_tensors(Tensor::elements)
    }
    /// Parameters used for one token: routed experts count `top_k` times, not `num_experts`.
    pub fn params_active(&self) -> u64 {
        self.sum_tensors(|t| if t.role == Role::Encoder { 0 } else { t.rows as u128 * t.cols as u128 * t.active as u128 })
    }
    pub fn all_tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.globals.iter().chain(self.layers.iter().flat_map(|l| l.tensors.iter()))
    }
    /// Number of decoder layers (blocks).
    pub fn num_layers(&self) -> u64 {
        self.layers.len() as u64
    }
    /// Attention FLOPs per token of a prefill of `n` tokens, summed over the layers: QK^T and AV at
    /// 2 FLOPs per multiply-add, each query over the tokens it attends to, averaged causally (n / 2
    /// under full attention; a window `w` past its length averages `w - w^2 / 2n`, a chunk `c`
    /// about `c / 2`). Recurrent and cross-attention layers are left out: theirs does not grow
    /// with the prompt.
    pub fn attention_flops_per_token(&self, n: u64) -> f64 {
        let n = n as f64;
        let attended = |w: Window| -> f64 {
            match w {
                Window::Full => n / 2.0,
                Window::Sliding(w) if (w as f64) < n => w as f64 - (w as f64).powi(2) / (2.0 * n),
                Window::Chunked(c) if (c as f64) < n => c as f64 / 2.0,
                _ => n / 2.0,
            }
        };
        self.runs_all()
            .map(|(l, copies)| {
                let (heads, qk, v, w) = match l.mixer {
                    Mixer::Attention { heads, k_dim, v_dim, window, .. } | Mixer::SharedKv { heads, k_dim, v_dim, window, .. } => (heads, k_dim, v_dim, window),
                    Mixer::Mla { heads, qk_rope_head_dim, qk_nope_head_dim, v_head_dim, .. } => (heads, qk_rope_head_dim + qk_nope_head_dim, v_head_dim, Window::Full),
                    _ => return 0.0,
                };
                2.0 * heads as f64 * (qk + v) as f64 * attended(w) * copies as f64
            })
            .sum()
    }
    /// Layers whose cache grows with the number of tokens.
    pub fn kv_layers(&self) -> usize {
        self.runs_all().filter(|(l, _)| matches!(l.mixer, Mixer::Attention { .. } | Mixer::Mla { .. })).map(|(_, n)| n as usize).sum()
    }
    /// Values (positions x width) of the rotary cos/sin caches vLLM's `get_rope` builds at load,
    /// one per distinct rope (`rotary_embedding/__init__.py`, read in the 0.19 wheel; SGLang's is
    /// a port): `max_position x` [`Self::rotary_dim`], where the scaled ropes cover more positions:
    /// `linear` and `dynamic` the length times their factor (`max_len = max_position_embeddings *
    /// scaling_factor`), YaRN `original_max_position_embeddings x factor`, LongRoPE its short and
    /// long tables (`original + max_position`). Gemma 3 and 3n build a second, unscaled cache for
    /// their sliding layers (`rope_local_base_freq`, default scaling). Nested (per layer kind)
    /// entries are left at `max_position`, their widths already counted apart.
    pub fn rope_cache_values(&self) -> u64 {
        let Some(max) = self.max_position_embeddings else { return 0 };
        let width = self.rotary_dim();
        let scaled = |f: Option<f64>, base: u64| -> u64 {
            let f = f.filter(|f| f.is_finite() && *f >= 1.0).unwrap_or(1.0);
            let n = (base as f64 * f).floor();
            if n.is_finite() && n < u64::MAX as f64 { n as u64 } else { base }
        };
        let positions = match self.rope_scaling.as_slice() {
            [r] => match r.rope_type.as_str() {
                "linear" | "dynamic" => scaled(r.factor, max),
                "yarn" | "deepseek_yarn" => r.original_max_position_embeddings.map_or(max, |o| scaled(r.factor, o)),
                "longrope" => max.saturating_add(r.original_max_position_embeddings.or(self.original_max_position_embeddings).unwrap_or(0)),
                _ => max,
            },
            _ => max,
        };
        let mut values = positions.saturating_mul(width);
        if self.model_type.starts_with("gemma3") && self.has_sliding_window() {
            values = values.saturating_add(max.saturating_mul(width));
        }
        values
    }
    /// Width of the rotary cos/sin caches vLLM builds at load, per position: the decoupled rope
    /// key of MLA, else one cache per distinct attention head size (Gemma 4's sliding and full
    /// layers, 256 and 512, build two), else the head size.
    pub fn rotary_dim(&self) -> u64 {
        if let Some(d) = self.layers.iter().find_map(|l| match l.mixer {
            Mixer::Mla { qk_rope_head_dim, .. } => Some(qk_rope_head_dim),
            _ => None,
        }) {
            return d;
        }
        let mut dims: Vec<u64> = self
            .layers
            .iter()
            .filter_map(|l| match l.mixer {
                Mixer::Attention { k_dim, .. } => Some(k_dim),
                _ => None,
            })
            .collect();
        dims.sort_unstable();
        dims.dedup();
        if dims.is_empty() {
            self.head_dim
        } else {
            dims.iter().sum()
        }
    }
    pub fn is_mla(&self) -> bool {
        self.layers.iter().any(|l| matches!(l.mixer, Mixer::Mla { .. }))
    }
    /// The indexer key width of DeepSeek Sparse Attention layers (V3.2), if the model has them.
    pub fn sparse_mla_index_dim(&self) -> Option<u64> {
        self.layers.iter().find_map(|l| match l.mixer {
            Mixer::Mla { index_head_dim, .. } if index_head_dim > 0 => Some(index_head_dim),
            _ => None,
        })
    }
    /// This shape with each sparse-MLA layer's indexer key cached as one more stretch of the
    /// latent, at the KV dtype (llama.cpp's `deepseek32` keeps it in a second cache of the same
    /// `n_ctx` cells, `index_head_dim` values in `type_k`: the same bytes); carried in
    /// `kv_lora_rank`, which only sizes the cache.
    /// This shape with the first attention layer's cache on every layer without a mixer, as SGLang
    /// sizes its pool for Nemotron NAS (`num_hidden_layers` buffers of one KV-head count); used
    /// through [`crate::kv::kv_layout_with_shared`] for [`Self::pool_only_layers`].
    pub fn with_cache_on_every_layer(&self) -> ModelShape {
        let mut s = self.clone();
        let first = s.layers.iter().find(|l| matches!(l.mixer, Mixer::Attention { .. })).map(|l| l.mixer.clone());
        if let Some(first) = first {
            for l in s.layers.iter_mut().filter(|l| l.mixer == Mixer::None) {
                l.mixer = first.clone();
            }
        }
        s.index_runs();
        s
    }
    /// Layers that cache nothing but that an engine sizing its pool by `num_hidden_layers`
    /// (SGLang) still gives buffers: Nemotron NAS's layers without attention. Zero for other
    /// families, whose layers without a mixer (Nemotron-H's MLP blocks) SGLang's hybrid pools skip.
    pub fn pool_only_layers(&self) -> u64 {
        if self.family != Family::NemotronNas {
            return 0;
        }
        self.runs_all().filter(|(l, _)| l.mixer == Mixer::None).map(|(_, n)| n).sum()
    }
    pub fn with_indexer_in_latent(&self, why: String) -> ModelShape {
        let mut s = self.clone();
        for l in &mut s.layers {
            if let Mixer::Mla { kv_lora_rank, index_head_dim, .. } = &mut l.mixer {
                *kv_lora_rank += *index_head_dim;
                *index_head_dim = 0;
            }
        }
        s.notes.insert(0, why);
        s
    }
    /// This shape with each MLA layer's cache entry (latent + rope key) padded to a multiple of
    /// `multiple` values, as vLLM V0 0.7.2 to 0.7.x aligns it to 256 bytes; the padding is carried
    /// in `kv_lora_rank`, which only sizes the cache. `why` becomes the shape's first note.
    pub fn with_mla_entry_padded(&self, multiple: u64, why: String) -> ModelShape {
        let mut s = self.clone();
        for l in &mut s.layers {
            if let Mixer::Mla { kv_lora_rank, qk_rope_head_dim, .. } = &mut l.mixer {
                let entry = (*kv_lora_rank + *qk_rope_head_dim).div_ceil(multiple.max(1)) * multiple.max(1);
                *kv_lora_rank = entry - *qk_rope_head_dim;
            }
        }
        s.notes.insert(0, why);
        s
    }
    /// This shape with its MLA layers cached as an engine without an MLA kernel caches them:
    /// every head's K and V of `dim` values each (`None`: the per-head query-key width
    /// `qk_nope_head_dim + qk_rope_head_dim`, V padded to it), split over the TP ranks by head;
    /// the weights are unchanged. `why` becomes the shape's first note.
    pub fn with_mla_per_head(&self, dim: Option<u64>, why: String) -> ModelShape {
        let mut s = self.clone();
        for l in &mut s.layers {
            if let Mixer::Mla { heads, qk_rope_head_dim, qk_nope_head_dim, v_head_dim, .. } = l.mixer {
                let d = dim.unwrap_or((qk_nope_head_dim + qk_rope_head_dim).max(v_head_dim));
                l.mixer = Mixer::Attention { heads, kv_heads: heads, k_dim: d, v_dim: d, window: Window::Full };
            }
        }
        s.notes.insert(0, why);
        s
    }
    /// Whether some attention layer's values are narrower than its keys (MiMo-V2-Flash).
    pub fn has_narrower_values(&self) -> bool {
        self.layers.iter().any(|l| matches!(l.mixer, Mixer::Attention { k_dim, v_dim, .. } if v_dim < k_dim))
    }
    /// This shape with every attention layer's values padded to its key width, as an engine whose
    /// attention kernel takes one head size caches them; the weights are unchanged. `why` becomes
    /// the shape's first note.
    pub fn with_values_padded_to_keys(&self, why: String) -> ModelShape {
        let mut s = self.clone();
        for l in &mut s.layers {
            if let Mixer::Attention { k_dim, v_dim, .. } = &mut l.mixer {
                *v_dim = (*v_dim).max(*k_dim);
            }
        }
        s.notes.insert(0, why);
        s
    }
    /// This shape with every recurrent layer's SSM state in float32, and with `conv` its
    /// convolution window too (SGLang's default `mamba_ssm_dtype` keeps the SSM state in float32;
    /// llama.cpp's recurrent memory is `GGML_TYPE_F32` for both); `None` when nothing changes.
    /// `why` becomes the shape's first note.
    pub fn with_f32_state(&self, conv: bool, why: String) -> Option<ModelShape> {
        let mut s = self.clone();
        let mut changed = false;
        for m in s.layers.iter_mut().flat_map(Layer::mixers_mut) {
            if let Mixer::Recurrent { ssm_fp32, conv_fp32, ssm_elems, conv_elems, .. } = m {
                if !*ssm_fp32 && *ssm_elems > 0 {
                    (*ssm_fp32, changed) = (true, true);
                }
                if conv && !*conv_fp32 && *conv_elems > 0 {
                    (*conv_fp32, changed) = (true, true);
                }
            }
        }
        s.notes.insert(0, why);
        changed.then_some(s)
    }
    /// This shape with every recurrent layer's state in the activation dtype (2 bytes a value in
    /// bf16 or fp16), whatever the config's own cache dtype says: SGLang's when the config's
    /// `mamba_ssm_dtype` asks for a 16-bit state.
    pub fn with_state_in_activation_dtype(&self) -> ModelShape {
        let mut s = self.clone();
        for m in s.layers.iter_mut().flat_map(Layer::mixers_mut) {
            if let Mixer::Recurrent { ssm_fp32, conv_fp32, .. } = m {
                (*ssm_fp32, *conv_fp32) = (false, false);
            }
        }
        s
    }
    /// Layers that read an earlier layer's cache ([`Mixer::SharedKv`]).
    pub fn shared_kv_layers(&self) -> u64 {
        self.runs_all().filter(|(l, _)| matches!(l.mixer, Mixer::SharedKv { .. })).map(|(_, n)| n).sum()
    }
    pub fn has_recurrent_state(&self) -> bool {
        self.layers.iter().flat_map(Layer::mixers).any(|m| matches!(m, Mixer::Recurrent { .. }))
    }
    pub fn has_sliding_window(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l.mixer, Mixer::Attention { window: Window::Sliding(_) | Window::Chunked(_), .. }))
    }
}
