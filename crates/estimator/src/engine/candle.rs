//! candle-transformers 0.11 (what `kv-runner measure` runs), from its model sources:
//!
//! - **KV cache** (exact): most families keep K and V per layer and grow them with `Tensor::cat`,
//!   without any window cap (`mistral`, `gemma2` apply windows to the mask only); `gemma3` uses
//!   `candle_nn::kv_cache`: a rotating buffer of `sliding_window` tokens on sliding layers and a
//!   buffer of `max_position_embeddings` tokens on global layers, both allocated whole on the
//!   first token; GLM-4-0414 (`glm4`) grows in chunks of 512 tokens; DeepSeek-V2 keeps the
//!   decompressed per-head K (`qk_nope + qk_rope`) and V (`v_head_dim`), not the MLA latent; Mamba
//!   keeps `d_inner x 16` of SSM state plus four conv steps that are views of the `in_proj`
//!   output (`2 x d_inner` each) per layer and request, in the model dtype.
//! - **Weights** (exact): the checkpoint's, plus a separate `lm_head` copy where candle always
//!   loads one although the config ties it (`mistral`, `mixtral`, `phi`, `falcon`, `stablelm`,
//!   `granite`), minus the head where candle always ties it (`starcoder2`, `mamba`).
//! - **Activations** (modelled): the larger of the prefill of `input_len x concurrency` tokens in
//!   one forward pass (the widest layer's tensors, and the attention scores that candle keeps three
//!   times in f32 without flash attention: scores, masked scores and softmax, 12 B per score;
//!   qwen3 on CPU uses candle's fused attention and keeps none) and one layer's cache while a
//!   decode step's `Tensor::cat` holds the old and the new copy.
//! - **Overhead** (modelled): rotary tables `max_position x head_dim x dtype` (falcon: per layer,
//!   5000 positions, f32), plus a CUDA context (~500 MiB) on a GPU, or the process's own heap on a
//!   CPU (gemm's thread-local packing slab, one L2 cache of the host, 0.5 MiB when unknown, with
//!   materialised attention; 40 KiB without).
//!
//! Measured with `kv-runner measure` on CPU (runner tests, 20 families): weights and KV exact to
//! the byte; the peak within [`PEAK_TOLERANCE_PCT`].

use super::{gib, Ctx, EngineReport};
use crate::activation::forward_peak;
use crate::error::Result;
use crate::model::{Family, Mixer, ModelShape, Window};
use crate::units::{Bytes, Figure};

/// CUDA context and library handles of a candle process on a GPU (modelled).
pub const CUDA_CONTEXT_BYTES: u64 = 500 << 20;
/// A CPU process's own heap besides tensors when attention scores go through a batched matmul:
/// gemm's thread-local packing slab, one L2 cache of the host (`gemm_common::cache::CACHE_INFO`;
/// [`crate::Scenario::cpu_l2_cache_bytes`]), this much when the host is not known. Each worker
/// thread that runs a large matmul adds its own slab; modelled as one thread, which only shows on
/// models of a few MiB (kv-planner/tiny-llama at 64 tokens: peak -24 %).
pub const CPU_PROCESS_BYTES: u64 = 512 << 10;
/// The same without materialised attention (fused attention, recurrent models): the runner only.
pub const CPU_PROCESS_BYTES_FUSED: u64 = 40 << 10;
/// Bytes per attention score candle keeps without flash attention (f32 scores, masked, softmax).
pub const SCORE_BYTES: u64 = 12;
/// Positions of the rotary tables candle's falcon builds per layer (`MAX_SEQ_LEN`).
pub const FALCON_ROPE_POSITIONS: u64 = 5000;
/// How far the predicted peak may be from the measured one (percent), from the runner's
/// measurements of every supported family on CPU (2 layers, 16 to 112 tokens, 1 to 3 requests):
/// falcon -21 % at worst, every other family within +-15 %.
pub const PEAK_TOLERANCE_PCT: f64 = 25.0;
/// GLM-4-0414's `KvCache::new(2, 512)`.
pub const GLM4_CHUNK: u64 = 512;

/// How candle's head differs from the config's: `+1` when candle loads an `lm_head` of its own
/// although the config ties it (`mistral`, `mixtral`, `phi`, `falcon`, `stablelm`, `granite`),
/// `-1` when candle always ties it although the config does not (`starcoder2`, `mamba`), `0`
/// otherwise.
fn head_difference(shape: &ModelShape) -> i8 {
    match shape.model_type.as_str() {
        "mistral" | "mixtral" | "phi" | "falcon" | "stablelm" | "granite" if shape.tied_embeddings => 1,
        "starcoder2" | "mamba" if !shape.tied_embeddings => -1,
        _ => 0,
    }
}

/// Bytes candle holds for one request of `len` tokens on one device, per its cache type.
pub fn request_bytes(shape: &ModelShape, len: u64, dtype_bytes: u64) -> u64 {
    let max_pos = shape.max_position_embeddings.unwrap_or(len).max(1);
    let gemma3 = shape.family == Family::Gemma3;
    let glm4_0414 = shape.model_type == "glm4";
    let mut total = 0u64;
    for (l, n) in shape.runs_all() {
        let per_layer: u64 = l.mixers().map(|m| match m {
            Mixer::Attention { kv_heads, k_dim, v_dim, window, .. } => {
                let tokens = if gemma3 {
                    match window {
                        Window::Sliding(w) | Window::Chunked(w) => *w,
                        Window::Full => len.div_ceil(max_pos).max(1).saturating_mul(max_pos),
                    }
                } else if glm4_0414 {
                    len.div_ceil(GLM4_CHUNK).max(1).saturating_mul(GLM4_CHUNK)
                } else {
                    len
                };
                kv_heads.saturating_mul(k_dim + v_dim).saturating_mul(tokens).saturating_mul(dtype_bytes)
            }
            Mixer::Mla { heads, qk_nope_head_dim, qk_rope_head_dim, v_head_dim, .. } => {
                heads.saturating_mul(qk_nope_head_dim + qk_rope_head_dim + v_head_dim).saturating_mul(len).saturating_mul(dtype_bytes)
            }
            // candle's mamba (d_state 16, d_conv 4 fixed): the SSM state, d_inner x 16, and four
            // conv steps that are views of the in_proj output (2 x d_inner each): 24 x d_inner
            Mixer::Recurrent { kind, ssm_elems, heads, .. } if kind == "mamba" => heads.saturating_mul(24).max(*ssm_elems).saturating_mul(dtype_bytes),
            Mixer::Recurrent { conv_elems, ssm_elems, .. } => (conv_elems + ssm_elems).saturating_mul(dtype_bytes),
            Mixer::CrossAttention { .. } | Mixer::SharedKv { .. } | Mixer::None => 0,
        }).fold(0u64, u64::saturating_add);
        total = total.saturating_add(per_layer.saturating_mul(n));
    }
    total
}

pub(crate) fn run(cx: &Ctx) -> Result<EngineReport> {
    let s = cx.scenario;
    let shape = cx.shape;
    let tp = u64::from(s.tp.max(1));
    let act_b = cx.plan.activation.bytes();
    let len = s.context_len();
    let n = s.concurrency.max(1);
    let per_req = request_bytes(shape, len, act_b);
    let batch = per_req.saturating_mul(n);
    let mut kv = Figure::exact(
        "KV cache",
        Bytes(batch),
        "concurrency x (per layer: K and V of every token kept, as candle's cache type allocates)",
        format!("{n} x {} = {}", Bytes(per_req), Bytes(batch)),
    );
    if shape.has_sliding_window() && shape.family != Family::Gemma3 {
        kv = kv.note("candle keeps every token on sliding-window layers (the window only masks attention)");
    }
    if shape.family == Family::Gemma3 {
        kv = kv.note("gemma3 in candle allocates the whole window (sliding layers) and max_position_embeddings (global layers) on the first token");
    }
    if shape.is_mla() {
        kv = kv.note("candle's deepseek2 caches decompressed per-head K and V, not the MLA latent");
    }
    // activations: the prefill (widest layer for all tokens + attention scores), or one layer's
    // cache during a decode step's Tensor::cat, whichever is larger
    // recurrent models take one token per call in candle
    let prefill_tokens = if shape.kv_layers() == 0 { n } else { s.input_len.max(1).saturating_mul(n) };
    let fwd = forward_peak(shape, prefill_tokens, act_b, tp);
    let heads = shape.num_attention_heads.max(1);
    // qwen3 on CPU: candle_nn's fused attention keeps one f32 copy of the scores; granite's
    // attention multiplier adds two more copies to the usual three; falcon one more
    let fused = s.cpu && matches!(shape.model_type.as_str(), "qwen3" | "qwen3_moe");
    let per_score = match shape.model_type.as_str() {
        _ if shape.kv_layers() == 0 => 0,
        _ if fused => 4,
        "granite" => SCORE_BYTES + 8,
        // falcon binds every step to a shadowed variable: scaled, mask-added and softmax scores,
        // the broadcast f32 mask and its sum all stay alive until the attention returns (5 x 4 B)
        "falcon" => SCORE_BYTES + 8,
        _ => SCORE_BYTES,
    };
    let scores = n.saturating_mul(heads).saturating_mul(s.input_len.max(1).saturating_mul(s.input_len.max(1))).saturating_mul(per_score);
    let layers = (shape.kv_layers() as u64).max(1);
    let cat = batch / layers;
    let prefill = fwd.saturating_add(scores);
    let act = prefill.max(cat);
    let activation = Figure::modelled(
        "activation peak",
        Bytes(act),
        "max(prefill tokens x widest layer width x act bytes + concurrency x heads x input_len^2 x 12 B of scores, one layer's cache during Tensor::cat)",
        format!("max({} + {}, {}) = {}", gib(fwd), gib(scores), gib(cat), gib(act)),
    )
    .note(format!("measured on CPU with kv-runner measure: the total peak within +-{PEAK_TOLERANCE_PCT} % for every supported family"));
    let rope = if shape.model_type == "falcon" {
        // per layer, cos and sin of head_dim each, f32
        (shape.num_layers()).saturating_mul(FALCON_ROPE_POSITIONS).saturating_mul(shape.head_dim).saturating_mul(2 * 4)
    } else if shape.kv_layers() == 0 {
        0
    } else {
        shape.max_position_embeddings.unwrap_or(4096).saturating_mul(shape.head_dim).saturating_mul(act_b)
    };
    let context = match (s.cpu, per_score) {
        (false, _) => CUDA_CONTEXT_BYTES,
        (true, SCORE_BYTES..) => s.cpu_l2_cache_bytes.unwrap_or(CPU_PROCESS_BYTES),
        (true, _) => CPU_PROCESS_BYTES_FUSED,
    };
    let head = shape.vocab_size.saturating_mul(shape.hidden_size).saturating_mul(act_b);
    let diff = head_difference(shape);
    let head_copy = if diff > 0 { head } else { 0 };
    let head_dropped = if diff < 0 { head } else { 0 };
    let overhead = Figure::modelled(
        "runtime overhead",
        Bytes(context.saturating_add(rope).saturating_add(head_copy)),
        "CUDA context on a GPU (the process heap on a CPU) + rotary tables (max_position x head_dim x act bytes) + the lm_head copy candle loads for a tied head (exact)",
        format!("{} + {} + {}", Bytes(context), Bytes(rope), Bytes(head_copy)),
    );
    let loaded = cx.weights_per_gpu.0.saturating_add(head_copy).saturating_sub(head_dropped);
    let fixed = cx.weights_per_gpu.0.saturating_sub(head_dropped).saturating_add(act).saturating_add(overhead.bytes.0);
    let fits = fixed.saturating_add(batch) <= cx.memory.0;
    let budget = cx.memory.0.saturating_sub(fixed);
    let need = request_bytes(shape, cx.max_model_len, act_b);
    // the tokens the budget holds and the longest request that fits (a recurrent state alone:
    // requests of max_model_len, any length)
    let (kv_tokens, max_len) = super::grown_cache_capacity(budget, cx.kv.bytes_per_token, need, cx.max_model_len, |len| Some(request_bytes(shape, len, act_b)));
    let mut notes = vec!["memory grows with the sequence; nothing is reserved up front (gemma3, glm4 excepted)".to_string()];
    if head_copy > 0 {
        notes.push(format!("candle loads a separate lm_head for `{}` although the config ties it: +{}", shape.model_type, Bytes(head_copy)));
    }
    if head_dropped > 0 {
        notes.push(format!("candle ties the head of `{}` although the config does not: -{}", shape.model_type, Bytes(head_dropped)));
    }
    Ok(EngineReport {
        name: "candle".into(),
        version: s.engine_version.clone().unwrap_or_else(|| "0.11.1".into()),
        utilization: 1.0,
        max_model_len: cx.max_model_len,
        block_size: 1,
        kv_pool_bytes: Bytes(budget),
        kv_in_host_memory: Bytes(0),
        budget_shortfall: Bytes(0),
        kv_tokens,
        num_blocks: 0,
        max_concurrency: if need == 0 { 0.0 } else { budget as f64 / need as f64 },
        fits,
        message: (!fits).then(|| format!("out of memory: weights {} + activations {} + KV {} + overhead {} exceed {}", gib(loaded), gib(act), gib(batch), gib(overhead.bytes.0), gib(cx.memory.0))),
        loaded_weights_bytes: Bytes(loaded),
        kv_needed_for_max_len: Bytes(need),
        max_len_that_fits: max_len,
        activation,
        overhead,
        kv_batch: Some(kv),
        block_pool: None,
        cuda_graph_in_budget_bytes: Bytes(0),
        running_cap: None,
        kv_parts: vec![],
        budget: None,
        notes,
    })
}
