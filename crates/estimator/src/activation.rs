//! Modelled (not exact) transient memory: the activation peak of a forward pass and of the sampler.
//!
//! Forward peak of `T` tokens on one TP rank, from the tensors a layer keeps alive at its widest
//! point (vLLM's `LlamaMLP.forward` holds the residual, the normed input and the layer output
//! (3 x hidden) plus the gate/up output (2 x I) and the activated output (I) at once):
//! `T x (3 x hidden + max(mlp_width, attn_width)) x act_bytes`, where `mlp_width` is
//! 1.5 x the up-projection rows (gated MLPs; 2 x for two-matrix MLPs) times the active experts, and
//! `attn_width` is the q, k, v and attention-output widths.
//!
//! Sampler peak for `R` rows (vLLM's dummy sampler run over `max_num_seqs` requests):
//! `R x vocab x 38 B`: bf16 logits (2), their fp32 copy (4), sorted values (4) and int64 indices (8)
//! for top-p/top-k, softmax of the sorted values (4), their cumulative sum (4), the scattered mask
//! (4), probabilities (4) and the exponential draw (4). vLLM adds the forward output it still holds
//! (`engine/vllm.rs`); with it, the ten logged "activation peak"s the sampler sets are within 2.8 %
//! (see docs/accuracy). Engines that sample without
//! sorting, or profile no top-k/top-p at all, keep fewer bytes per logit: the vLLM profile picks
//! the figure its version and model runner imply.

use crate::model::{ModelShape, Role, Split};

/// Bytes per sampler row and vocabulary entry (see the module docs for the 38).
pub const SAMPLER_BYTES_PER_LOGIT: u64 = 38;

/// Per-token transient width (elements) of the widest layer on one of `tp` ranks.
pub fn per_token_width(shape: &ModelShape, tp: u64) -> u64 {
    let tp = tp.max(1);
    let h = shape.hidden_size;
    let mut widest = 0u64;
    for (l, _) in shape.runs_all() {
        let mut mlp = 0u64;
        let mut attn = 0u64;
        let mut gated = true;
        for t in &l.tensors {
            let (rows, _) = t.shard(tp);
            match (t.role, t.split) {
                (Role::Mlp | Role::Expert | Role::SharedExpert, Split::Column) => {
                    if t.name.ends_with(".fc1") {
                        gated = false;
                    }
                    mlp += rows * t.active;
                }
                (Role::AttnQ | Role::AttnKv, _) => attn += rows,
                (Role::RecurrentLinear, Split::Column | Split::ColumnWithGroups { .. }) => attn += rows,
                _ => {}
            }
        }
        let mlp_width = if gated { mlp + mlp / 2 } else { 2 * mlp };
        widest = widest.max(mlp_width).max(attn + attn / 2);
    }
    3 * h + widest
}

/// Forward activation peak for `tokens` tokens, bytes.
pub fn forward_peak(shape: &ModelShape, tokens: u64, act_bytes: u64, tp: u64) -> u64 {
    tokens.saturating_mul(per_token_width(shape, tp)).saturating_mul(act_bytes)
}

/// Bytes per logit of the sort-free top-k/top-p path (vLLM's Triton kernel from 0.17): the
/// bf16 logits the caller holds (2), their fp32 copy filtered in place (4), the probabilities (4)
/// and the exponential draw (4).
pub const SORT_FREE_BYTES_PER_LOGIT: u64 = 14;

/// Sampler peak for `rows` requests at `bytes_per_logit`, bytes (logits are gathered to the full
/// vocabulary).
pub fn sampler_peak(shape: &ModelShape, rows: u64, bytes_per_logit: u64) -> u64 {
    rows.saturating_mul(shape.vocab_size).saturating_mul(bytes_per_logit)
}
