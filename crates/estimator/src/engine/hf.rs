//! Hugging Face transformers (dynamic cache).
//!
//! The cache grows with the sequence: a request of `L` tokens holds exactly `L` tokens per layer
//! (sliding-window layers at most the window in transformers >= 4.53), nothing is reserved up
//! front, and the budget is the whole GPU. The prefill of the whole prompt is one forward pass, so
//! the activation peak is modelled for `input_len x concurrency` tokens; logits are kept for the
//! last token only.

use super::{gib, Ctx, EngineReport};
use crate::activation::forward_peak;
use crate::error::Result;
use crate::units::{Bytes, Figure};

/// CUDA context and library handles for a PyTorch process (modelled).
pub const CONTEXT_BYTES: u64 = 500 << 20;

pub(crate) fn run(cx: &Ctx) -> Result<EngineReport> {
    let s = cx.scenario;
    let tp = u64::from(s.tp.max(1));
    let prefill_tokens = s.input_len.max(1).saturating_mul(s.concurrency.max(1));
    let act = forward_peak(cx.shape, prefill_tokens, cx.plan.activation.bytes(), tp);
    let activation = Figure::modelled("activation peak", Bytes(act), "input_len x concurrency x per-token width x act bytes", gib(act));
    let context = if s.cpu { 0 } else { CONTEXT_BYTES };
    let overhead = Figure::modelled("runtime overhead", Bytes(context), "CUDA context and library handles (~500 MiB on a GPU, none on a CPU)", Bytes(context).to_string());
    let l = cx.max_model_len;
    let budget = cx.memory.0.saturating_sub(cx.weights_per_gpu.0 + act + overhead.bytes.0);
    let need = cx.kv.request_bytes(l)?;
    // the tokens the budget holds and the longest request that fits (a recurrent state alone:
    // requests of max_model_len, any length)
    let (kv_tokens, max_len) = super::grown_cache_capacity(budget, cx.kv.bytes_per_token, need, l, |len| cx.kv.request_bytes(len).ok());
    let fits = cx.weights_per_gpu.0 + act + overhead.bytes.0 <= cx.memory.0;
    Ok(EngineReport {
        name: s.engine.as_str().into(),
        version: s.engine_version.clone().unwrap_or_else(|| "4.57".into()),
        utilization: 1.0,
        max_model_len: l,
        block_size: 1,
        kv_pool_bytes: Bytes(budget),
        kv_in_host_memory: Bytes(0),
        budget_shortfall: Bytes(0),
        kv_tokens,
        num_blocks: 0,
        max_concurrency: if need == 0 { 0.0 } else { budget as f64 / need as f64 },
        fits,
        message: (!fits).then(|| format!("CUDA out of memory: weights {} + activations {} exceed {}", gib(cx.weights_per_gpu.0), gib(act), gib(cx.memory.0))),
        loaded_weights_bytes: cx.weights_per_gpu,
        kv_needed_for_max_len: Bytes(need),
        max_len_that_fits: max_len,
        activation,
        overhead,
        kv_batch: None,
        block_pool: None,
        cuda_graph_in_budget_bytes: Bytes(0),
        running_cap: None,
        kv_parts: vec![],
        budget: None,
        notes: vec!["memory grows with the sequence; nothing is reserved up front".into()],
    })
}
