//! SGLang. Source: `sglang/srt/model_executor/model_runner.py::profile_max_num_token`.
//!
//! `rest = free_after_weights - free_at_load x (1 - mem_fraction_static)`, i.e.
//! `free_at_load x mem_fraction_static - weights`; `max_total_num_tokens = rest / bytes_per_token`
//! with pages of one token (MLA: the 576-value latent per layer; int8/fp8 KV: 1 byte). A custom
//! memory is the free memory at "Load weight begin"; a catalog GPU's total is reduced by the
//! CUDA context first ([`CONTEXT_BEFORE_LOAD_GIB`]). What is left outside the
//! fraction holds activations (chunked prefill) and CUDA graphs.
//! Hybrid sliding-window pools (`SWAKVPool`): for the architectures SGLang lists (gpt-oss and
//! Llama 4 from 0.5.8, Gemma 4 from 0.5.11; Gemma 2 and 3 only in 0.4.10, after which they are
//! forced back to one pool) the window layers get their own pool of `swa_full_tokens_ratio` (0.8)
//! times the full pool's tokens: `full = rest / (F + 0.8 x S)` with F and S the bytes per token of
//! the full and the window layers (before 0.5.9 the split is by layer counts,
//! `T x layers / (0.8 x n_swa + n_full)` with `T = rest / (F + S)`); `max_total_num_tokens` is the
//! full pool's tokens. Other versions and models keep every layer at full length in one pool.
//! SGLang measures the weights as the drop in free memory over the load ("mem usage"): the
//! parameters as PyTorch's caching allocator holds them (each large tensor rounded up to 2 MiB,
//! [`crate::allocator`]) plus the rotary cos/sin cache. Qwen2.5-32B at TP4: 15.26 GiB of tensors
//! hold 15.48 GiB of segments, 15.51 GiB with the rotary cache; the log says 15.54 GiB.

use super::{gib, parse_semver, Ctx, EngineReport};
use crate::activation::forward_peak;
use crate::error::Result;
use crate::model::{Family, ModelShape, Window};
use crate::units::{Bytes, Figure, GIB};

/// GiB a catalog GPU's total exceeds SGLang's "avail mem" at "Load weight begin" (the CUDA
/// context, and NCCL's communicators under TP, are set up by then): the development logs give
/// 0.40 (L4, TP4), 0.47 (A10G, TP4), 0.67 (A100 40GB, TP2) and 0.95 (RX 7900 XTX, TP2), median
/// 0.57 (modelled). A custom memory is taken as that free memory itself.
pub const CONTEXT_BEFORE_LOAD_GIB: f64 = 0.57;

/// GiB more that NCCL's communicators take before the load under TP on an NVSwitch of Hopper or
/// later GPUs (modelled). SGLang turns NVLink SHARP off (`NCCL_NVLS_ENABLE=0` unless
/// `--enable-nccl-nvls`), so these are the ring and tree buffers over the switch, fewer than
/// vLLM's ([`super::vllm::NON_TORCH_TP_NVLS_GIB`]). One log measures it: Qwen3-32B at TP4 on
/// B200s (0.5.10) had 176.28 of 178.35 GiB free at "Load weight begin", 2.07 GiB, 1.5 above the
/// single-GPU median; Qwen3-235B-A22B FP8 at TP4 on H100s (0.4.9) implies 1.35 from its pool.
/// The PCIe TP logs (L4, A10G, A100 PCIe, RX 7900 XTX) show nothing above the median.
pub const NCCL_NVSWITCH_BEFORE_LOAD_GIB: f64 = 1.5;

/// GiB a catalog GPU's total exceeds SGLang's free memory at "Load weight begin": the CUDA
/// context ([`CONTEXT_BEFORE_LOAD_GIB`]) and, under TP on an NVSwitch of Hopper or later GPUs,
/// NCCL's buffers ([`NCCL_NVSWITCH_BEFORE_LOAD_GIB`]).
pub fn before_load_gib(gpu: Option<&crate::gpu::Gpu>, tp: u64) -> f64 {
    CONTEXT_BEFORE_LOAD_GIB + if tp > 1 && gpu.is_some_and(|g| g.nvswitch_hopper_or_later()) { NCCL_NVSWITCH_BEFORE_LOAD_GIB } else { 0.0 }
}

/// `mem_fraction_static` when it is not set (`server_args.py`, 0.3/0.4): it shrinks with the
/// tensor-parallel size, which needs more room outside the static pool for communication.
/// Later versions derive it from the GPU's memory; the same values are kept as the estimate.
pub fn default_mem_fraction_static(tp: u64) -> f64 {
    match tp {
        16.. => 0.79,
        8.. => 0.81,
        4.. => 0.85,
        2.. => 0.87,
        _ => 0.88,
    }
}

/// The SGLang behaviour modelled when no version is given: the newest release read (0.5.23).
pub const DEFAULT_VERSION: (u64, u64, u64) = (0, 5, 23);

/// `swa_full_tokens_ratio`: the window pool's tokens per full-pool token (`server_args.py`, 0.8 in
/// every version that has it).
pub const SWA_FULL_TOKENS_RATIO: f64 = 0.8;

/// Whether this SGLang version gives the model's window layers a pool of their own
/// (`is_hybrid_swa_model`; the allowlist from 0.5.8, the generic check of 0.4.9.post3-0.5.6 with
/// its per-model opt-outs before that). Patch releases (`.postN`) are not told apart: 0.4.10 stands
/// for its posts.
pub fn hybrid_swa(ver: (u64, u64, u64), shape: &ModelShape) -> bool {
    match shape.family {
        Family::GptOss | Family::Llama4 => ver >= (0, 5, 8),
        Family::Gemma4 => ver >= (0, 5, 11),
        Family::Gemma2 | Family::Gemma3 => ver == (0, 4, 10),
        _ => false,
    }
}

pub(crate) fn run(cx: &Ctx) -> Result<EngineReport> {
    let s = cx.scenario;
    let tp = u64::from(s.tp.max(1));
    let mfs = s.gpu_memory_utilization.unwrap_or_else(|| default_mem_fraction_static(tp));
    let l = cx.max_model_len;
    let before_load = before_load_gib(s.gpu.catalog(), tp);
    let free_at_load = if !s.gpu.memory_is_given() { cx.memory.0.saturating_sub((before_load * GIB as f64) as u64) } else { cx.memory.0 };
    let static_b = (free_at_load as f64 * mfs) as u64;
    let super::LoadExtras { rope, slack, .. } = super::load_extras(cx);
    let loaded = cx.weights_per_gpu.0.saturating_add(rope).saturating_add(slack);
    let rest = static_b.saturating_sub(loaded);
    let per_token = cx.kv.bytes_per_token.max(1);
    let ver = s.engine_version.as_deref().and_then(parse_semver).unwrap_or(DEFAULT_VERSION);
    // the window layers' and the full layers' bytes per token (and layer counts)
    // the full layers' and the window layers' bytes per token, and their layer counts
    let full_b = cx.kv.full_bytes_per_token();
    let swa_b = cx.kv.bytes_per_token.saturating_sub(full_b);
    let n_full: u64 = cx.kv.groups.iter().filter(|g| g.window == Window::Full).map(|g| g.layers).sum();
    let n_swa: u64 = cx.kv.groups.iter().map(|g| g.layers).sum::<u64>() - n_full;
    let hybrid = swa_b > 0 && full_b > 0 && cx.kv.state_bytes_per_request == 0 && hybrid_swa(ver, cx.shape);
    let r = SWA_FULL_TOKENS_RATIO;
    let (tokens, swa_tokens, pool) = if hybrid {
        let full = if ver >= (0, 5, 9) {
            (rest as f64 / (full_b as f64 + r * swa_b as f64)).floor() as u64
        } else {
            let t = rest / per_token;
            (t as f64 * (n_swa + n_full) as f64 / (r * n_swa as f64 + n_full as f64)) as u64
        };
        let swa = (full as f64 * r) as u64;
        (full, swa, full.saturating_mul(full_b).saturating_add(swa.saturating_mul(swa_b)))
    } else {
        let t = rest / per_token;
        (t, 0, t * per_token)
    };
    let chunk = s.max_num_batched_tokens.unwrap_or(if cx.memory.gib() >= 60.0 { 8192 } else { 2048 });
    let act = forward_peak(cx.shape, chunk, cx.plan.activation.bytes(), tp);
    let activation = Figure::modelled("activation peak", Bytes(act), "chunked_prefill_size x per-token width x act bytes", format!("{chunk} tokens -> {}", gib(act)))
        .note("lives in the (1 - mem_fraction_static) share with CUDA graphs");
    let outside = free_at_load.saturating_sub(static_b);
    let graphs = outside.saturating_sub(act).min((GIB as f64 * 1.5) as u64);
    let overhead = Figure::modelled(
        "runtime overhead",
        Bytes(graphs.saturating_add(slack).saturating_add(rope)),
        "CUDA graphs and workspaces in the share outside mem_fraction_static + allocator rounding of the weights + rotary cos/sin cache",
        format!("{} (at most 1.5 GiB of the {} outside the static fraction) + {} (weights in 2 MiB-rounded segments, exact) + {} (max_position x rotary_dim x act bytes, exact)", gib(graphs), gib(outside), Bytes(slack), Bytes(rope)),
    );
    let need = cx.kv.request_bytes(l)?;
    let fits = tokens > 0;
    let message = (!fits).then(|| format!("Not enough memory. Please try to increase --mem-fraction-static. ({} static, {} weights as loaded)", gib(static_b), gib(loaded)));
    Ok(EngineReport {
        name: "sglang".into(),
        version: s.engine_version.clone().unwrap_or_else(|| format!("{}.{}.{}", DEFAULT_VERSION.0, DEFAULT_VERSION.1, DEFAULT_VERSION.2)),
        utilization: mfs,
        max_model_len: l,
        block_size: 1,
        kv_pool_bytes: Bytes(pool),
        kv_in_host_memory: Bytes(0),
        budget_shortfall: Bytes(0),
        kv_tokens: tokens,
        num_blocks: tokens,
        max_concurrency: tokens as f64 / l.max(1) as f64,
        fits,
        message,
        loaded_weights_bytes: Bytes(loaded),
        kv_needed_for_max_len: Bytes(need),
        max_len_that_fits: tokens,
        activation,
        overhead,
        kv_batch: None,
        kv_parts: vec![],
        notes: {
            let mut n = vec![if !s.gpu.memory_is_given() {
                let what = if before_load > CONTEXT_BEFORE_LOAD_GIB { format!("{CONTEXT_BEFORE_LOAD_GIB} GiB of CUDA context and {NCCL_NVSWITCH_BEFORE_LOAD_GIB} GiB of NCCL buffers over the NVSwitch") } else { format!("{CONTEXT_BEFORE_LOAD_GIB} GiB of CUDA context") };
                format!("static budget {} = {} free at load ({} total less {what}, modelled) x {mfs}", gib(static_b), gib(free_at_load), gib(cx.memory.0))
            } else {
                format!("static budget {} = {} free at load x {mfs}", gib(static_b), gib(free_at_load))
            }];
            if cx.shape.shared_kv_layers() > 0 {
                n.push(format!("the {} KV-shared layers get pool buffers like every layer (SGLang sizes its pool by num_hidden_layers), though they read an earlier layer's cache", cx.shape.shared_kv_layers()));
            }
            if hybrid {
                n.push(format!("sliding-window memory pool: {tokens} full-attention tokens and {swa_tokens} window tokens (swa_full_tokens_ratio {r}); max_total_num_tokens counts the full pool"));
            } else if swa_b > 0 {
                n.push("window layers sized at full length in one pool (no sliding-window pool for this model in this SGLang version)".into());
            }
            n
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_fraction_shrinks_with_tp() {
        let f: Vec<f64> = [1, 2, 4, 8, 16].iter().map(|&tp| super::default_mem_fraction_static(tp)).collect();
        assert_eq!(f, vec![0.88, 0.87, 0.85, 0.81, 0.79]);
    }
}
