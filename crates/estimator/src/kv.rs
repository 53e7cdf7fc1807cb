//! KV cache: exact bytes per token and per request, per GPU.
//!
//! Per layer and token (source: vLLM `AttentionSpec.page_size_bytes`, llama.cpp `llama_kv_cache`):
//! - softmax attention: `ceil(kv_heads / tp) x (k_dim + v_dim) x kv_bytes` (KV heads are replicated
//!   when there are fewer than TP ranks); sliding-window layers keep at most `window` tokens,
//!   chunked-attention layers at most `chunk`;
//! - MLA: `(kv_lora_rank + qk_rope_head_dim) x kv_bytes`, the same on every TP rank; with
//!   DeepSeek Sparse Attention (V3.2) plus the indexer key, `index_head_dim` fp8 values and one
//!   fp32 scale per 128 (132 B), and an fp8 latent in `fp8_ds_mla` form (512 fp8 + 4 fp32 scales +
//!   64 bf16 rope values = 656 B), as vLLM and SGLang allocate them;
//! - recurrent layers: nothing per token, a constant state per request
//!   (`conv_elems + ssm_elems`, sharded by heads over TP; Mamba-2's B/C groups a whole group per
//!   rank where they do not divide, as vLLM and SGLang replicate them);
//! - cross-attention and MLP-only blocks: nothing per text token.
//!
//! Quantised KV types use exact rationals (q8_0: 34 bytes per 32 values).

use crate::dtype::{FloatDtype, KvDtype};
use crate::error::{Error, Result};
use crate::model::{Mixer, ModelShape, Window};
use crate::units::{mul, mul_ratio_ceil};
use crate::weights::pp_partition;
use serde::{Deserialize, Serialize};

/// Layers of one kind with their per-token bytes on one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvGroup {
    /// `full attention`, `sliding window 4096`, `MLA latent`, ...
    pub kind: String,
    pub window: Window,
    pub layers: u64,
    /// Bytes per token for all layers of the group on one GPU.
    pub bytes_per_token: u64,
    /// Bytes per token of one layer on one GPU.
    pub bytes_per_token_per_layer: u64,
    /// MLA latent layers (grouped apart from softmax attention of the same size).
    #[serde(default)]
    pub mla: bool,
}

/// The KV layout of a model under a KV dtype and parallelism, for the most loaded GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvLayout {
    pub groups: Vec<KvGroup>,
    /// Sum over groups: the marginal bytes of one more token before any window caps it.
    pub bytes_per_token: u64,
    /// Constant recurrent state per request on one GPU.
    pub state_bytes_per_request: u64,
    /// Recurrent layers on that GPU.
    pub recurrent_layers: u64,
    /// Element size as `(numerator, denominator)` bytes.
    pub kv_ratio: (u64, u64),
    pub kv_dtype: KvDtype,
}

impl KvLayout {
    /// Bytes one request of `len` tokens holds on one GPU (windows applied, state included).
    pub fn request_bytes(&self, len: u64) -> Result<u64> {
        let mut total = self.state_bytes_per_request;
        for g in &self.groups {
            total = total
                .checked_add(mul(g.bytes_per_token, g.window.tokens_kept(len), "KV bytes per request")?)
                .ok_or_else(|| Error::overflow("KV bytes per request"))?;
        }
        Ok(total)
    }
    /// Bytes for `n` requests of `len` tokens.
    pub fn batch_bytes(&self, len: u64, n: u64) -> Result<u64> {
        mul(self.request_bytes(len)?, n, "KV bytes for the batch")
    }
    /// The layout of a pool that keeps every layer's tokens at full length (SGLang's single pool
    /// for a model with window layers): the same bytes per token, no window caps a request.
    pub fn windows_at_full_length(mut self) -> Self {
        for g in self.groups.iter_mut().filter(|g| g.window != Window::Full) {
            g.kind = format!("{} (kept at full length)", g.kind);
            g.window = Window::Full;
        }
        self
    }
    /// Bytes per token of the layers that keep every token (no window).
    pub fn full_bytes_per_token(&self) -> u64 {
        self.groups.iter().filter(|g| g.window == Window::Full).map(|g| g.bytes_per_token).sum()
    }
}

/// Per-token bytes of one layer on one rank; `None` for layers without a per-token cache.
pub fn layer_bytes_per_token(mixer: &Mixer, ratio: (u64, u64), tp: u64) -> Result<Option<(String, Window, u64)>> {
    Ok(cache_kind(mixer, ratio, tp, false)?.map(|(mla, w, b)| (kind_label(mla, w), w, b)))
}

/// `(is MLA, window, bytes per token)` of one layer on one rank, without building a label.
/// KV-shared layers count only when `shared` (an engine that gives them buffers anyway).
fn cache_kind(mixer: &Mixer, ratio: (u64, u64), tp: u64, shared: bool) -> Result<Option<(bool, Window, u64)>> {
    let row = |n: u64| mul_ratio_ceil(n, ratio.0, ratio.1, "KV row bytes");
    Ok(match mixer {
        Mixer::Attention { kv_heads, k_dim, v_dim, window, .. } | Mixer::SharedKv { kv_heads, k_dim, v_dim, window, .. } if shared || matches!(mixer, Mixer::Attention { .. }) => {
            let kvh = kv_heads.div_ceil(tp.max(1));
            let b = row(kvh * k_dim)? + row(kvh * v_dim)?;
            Some((false, *window, b))
        }
        Mixer::Mla { kv_lora_rank, qk_rope_head_dim, index_head_dim: 0, .. } => Some((true, Window::Full, row(kv_lora_rank + qk_rope_head_dim)?)),
        Mixer::Mla { kv_lora_rank, qk_rope_head_dim, index_head_dim, .. } => {
            // DeepSeek Sparse Attention (vLLM's FlashMLA-sparse and SGLang's NSA pools): an fp8
            // cache is `fp8_ds_mla`, the latent in fp8 with one fp32 scale per 128 values and
            // the rope key left in bf16 (656 B for V3.2); the indexer key is fp8 with one fp32
            // scale per 128 values whatever the KV dtype (132 B)
            let latent = if ratio == (1, 1) {
                kv_lora_rank.saturating_add(kv_lora_rank.div_ceil(SPARSE_QUANT_BLOCK) * 4).saturating_add(qk_rope_head_dim.saturating_mul(2))
            } else {
                row(kv_lora_rank + qk_rope_head_dim)?
            };
            let index = index_head_dim.saturating_add(index_head_dim.div_ceil(SPARSE_QUANT_BLOCK) * 4);
            Some((true, Window::Full, latent.saturating_add(index)))
        }
        _ => None,
    })
}

/// Values per fp32 scale in DeepSeek Sparse Attention's fp8 caches (`quant_block_size`).
pub const SPARSE_QUANT_BLOCK: u64 = 128;

fn kind_label(mla: bool, window: Window) -> String {
    match (mla, window) {
        (true, _) => "MLA latent".to_string(),
        (false, Window::Full) => "full attention".to_string(),
        (false, Window::Sliding(w)) => format!("sliding window {w}"),
        (false, Window::Chunked(c)) => format!("chunked attention {c}"),
    }
}

/// Builds the KV layout for the most loaded GPU under `tp` x `pp`.
pub fn kv_layout(shape: &ModelShape, kv: KvDtype, activation: FloatDtype, tp: u64, pp: u64) -> Result<KvLayout> {
    layout(shape, kv, activation, tp, pp, false)
}

/// [`kv_layout`] with KV-shared layers ([`Mixer::SharedKv`]) and pool-only layers
/// ([`ModelShape::pool_only_layers`]) given buffers of their own, as an engine that sizes its pool
/// by `num_hidden_layers` does (SGLang).
pub fn kv_layout_with_shared(shape: &ModelShape, kv: KvDtype, activation: FloatDtype, tp: u64, pp: u64) -> Result<KvLayout> {
    if shape.pool_only_layers() > 0 {
        return layout(&shape.with_cache_on_every_layer(), kv, activation, tp, pp, true);
    }
    layout(shape, kv, activation, tp, pp, true)
}

/// The KV layout of decoder layers `lo..hi` on one GPU (llama.cpp's `-ngl`: the layers it
/// offloads keep their cache on the GPU).
pub fn kv_layout_of_layers(shape: &ModelShape, kv: KvDtype, activation: FloatDtype, lo: usize, hi: usize) -> Result<KvLayout> {
    range_layout(shape, kv, kv.ratio(activation), activation, 1, false, lo, hi.min(shape.layers.len()))
}

fn layout(shape: &ModelShape, kv: KvDtype, activation: FloatDtype, tp: u64, pp: u64, shared: bool) -> Result<KvLayout> {
    let ratio = kv.ratio(activation);
    let tp = tp.max(1);
    let parts = pp_partition(shape.num_layers(), pp.max(1));
    let mut best: Option<KvLayout> = None;
    let mut start = 0usize;
    for n in parts {
        let (lo, hi) = (start, start + n as usize);
        start += n as usize;
        let layout = range_layout(shape, kv, ratio, activation, tp, shared, lo, hi)?;
        let better = match &best {
            None => true,
            Some(b) => (layout.bytes_per_token, layout.state_bytes_per_request) > (b.bytes_per_token, b.state_bytes_per_request),
        };
        if better {
            best = Some(layout);
        }
    }
    best.ok_or_else(|| Error::scenario("pp", pp, "at least one layer per pipeline stage"))
}

#[allow(clippy::too_many_arguments)]
fn range_layout(shape: &ModelShape, kv: KvDtype, ratio: (u64, u64), activation: FloatDtype, tp: u64, shared: bool, lo: usize, hi: usize) -> Result<KvLayout> {
    let mut groups: Vec<KvGroup> = vec![];
    let mut state = 0u64;
    let mut recurrent = 0u64;
    for (l, copies) in shape.runs_in(lo, hi) {
        for m in l.mixers() {
            let Some((key, window, b)) = cache_kind(m, ratio, tp, shared)? else { continue };
            let bytes = mul(b, copies, "KV bytes per token")?;
            match groups.iter_mut().find(|g| g.window == window && g.bytes_per_token_per_layer == b && g.mla == key) {
                Some(g) => {
                    g.layers += copies;
                    g.bytes_per_token += bytes;
                }
                None => {
                    let sparse = matches!(m, Mixer::Mla { index_head_dim, .. } if *index_head_dim > 0);
                    let kind = if sparse { "MLA latent + indexer key".to_string() } else { kind_label(key, window) };
                    groups.push(KvGroup { kind, window, layers: copies, bytes_per_token: bytes, bytes_per_token_per_layer: b, mla: key })
                }
            }
        }
        for m in l.mixers() {
            let Mixer::Recurrent { conv_elems, ssm_elems, ssm_fp32, heads, conv_fp32, groups, group_conv_elems, .. } = m else { continue };
            let ssm_b = if *ssm_fp32 { 4 } else { activation.bytes() };
            let a = if *conv_fp32 { 4 } else { activation.bytes() };
            let heads = (*heads).max(1);
            let share = heads.div_ceil(tp);
            // Mamba-2's groups go with the heads, each rank a whole group where they do not divide
            let group_part = groups.saturating_mul(*group_conv_elems).min(*conv_elems);
            let rank_groups = if *groups == 0 { 0 } else if groups % tp == 0 { groups / tp } else { groups.div_ceil(tp) };
            let conv_elems = mul_ratio_ceil(conv_elems - group_part, share, heads, "recurrent state")?
                .checked_add(mul(rank_groups, *group_conv_elems, "recurrent state")?)
                .ok_or_else(|| Error::overflow("recurrent state"))?;
            let conv = mul(conv_elems, a, "recurrent state")?;
            let ssm = mul(mul_ratio_ceil(*ssm_elems, share, heads, "recurrent state")?, ssm_b, "recurrent state")?;
            let one = conv.checked_add(ssm).ok_or_else(|| Error::overflow("recurrent state"))?;
            state = state.checked_add(mul(one, copies, "recurrent state")?).ok_or_else(|| Error::overflow("recurrent state"))?;
            recurrent += copies;
        }
    }
    let per_token = groups.iter().map(|g| g.bytes_per_token).sum();
    Ok(KvLayout { groups, bytes_per_token: per_token, state_bytes_per_request: state, recurrent_layers: recurrent, kv_ratio: ratio, kv_dtype: kv })
}
