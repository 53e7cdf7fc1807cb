//! SGLang. Source: `sglang/srt/model_executor/model_runner.py::profile_max_num_token`.
//!
//! `rest = free_after_weights - free_at_load x (1 - mem_fraction_static)`, i.e.
//! `free_at_load x mem_fraction_static - weights`; `max_total_num_tokens = rest / bytes_per_token`
//! with pages of one token (MLA: the 576-value latent per layer; int8/fp8 KV: 1 byte). A custom
//! memory is the free memory at "Load weight begin"; a catalog GPU's total is reduced by the
//! CUDA context first ([`CONTEXT_BEFORE_LOAD_GIB`]). What is left outside the
//! fraction holds the request-to-token table and the pool's padding and rounding
//! ([`req_to_token_table`], [`PoolSide`]: "Memory pool end. avail mem" follows), then activations
//! (chunked prefill) and CUDA graphs. Without a fraction, SGLang's own
//! default by version and board ([`default_fraction`]). The pool is allocated whole at start-up,
//! so the verdict ([`super::Budget`]) asks whether the requests' KV fits the pool and the
//! activation peak the share outside it, against the free memory at load.
//! Hybrid sliding-window pools (`SWAKVPool`): for the architectures SGLang lists (gpt-oss and
//! Llama 4 from 0.5.8, MiMo-V2-Flash from 0.5.7, Gemma 4 from 0.5.11; Gemma 2 and 3 only in 0.4.10, after which they are
//! forced back to one pool) the window layers get their own pool of `swa_full_tokens_ratio` (0.8)
//! times the full pool's tokens: `full = rest / (F + 0.8 x S)` with F and S the bytes per token of
//! the full and the window layers (before 0.5.9 the split is by layer counts,
//! `T x layers / (0.8 x n_swa + n_full)` with `T = rest / (F + S)`); `max_total_num_tokens` is the
//! full pool's tokens. Other versions and models keep every layer at full length in one pool.
//! SGLang measures the weights as the drop in free memory over the load ("mem usage"): the
//! parameters as PyTorch's caching allocator holds them (each large tensor rounded up to 2 MiB,
//! [`crate::allocator`]) plus the rotary cos/sin cache, which SGLang keeps in fp32 on CUDA from
//! 0.4.3. Qwen2.5-32B at TP4: 15.26 GiB of tensors hold 15.48 GiB of segments, 15.54 GiB with the
//! fp32 rotary cache (131072 x 128 x 4 B); the log says 15.54 GiB, and 46,611 tokens for 46,604.

use super::{gib, parse_semver, Ctx, EngineReport};
use crate::activation::forward_peak;
use crate::error::Result;
use crate::dtype::FloatDtype;
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

/// `mem_fraction_static` when it is not set, before 0.4.8 (`server_args.py`): it shrinks with the
/// tensor-parallel size, which needs more room outside the static pool for communication.
pub fn default_mem_fraction_static(tp: u64) -> f64 {
    match tp {
        16.. => 0.79,
        8.. => 0.81,
        4.. => 0.85,
        2.. => 0.87,
        _ => 0.88,
    }
}

/// `(chunked_prefill_size, cuda_graph_max_bs)` when not set, by the board's memory in MiB as
/// `nvidia-smi` prints it (`server_args.py::_handle_gpu_memory_settings`; from 0.5.20
/// `arg_groups/memory_hook.py`). Before 0.5.3 the chunk is 2048 below 35 GiB, 8192 below 160 and
/// 16384 above, and the graphs' batch size only enters the fraction from 0.5.3.
pub fn memory_tier_defaults(ver: (u64, u64, u64), gpu_mib: f64, tp: u64) -> (u64, u64) {
    let gib = gpu_mib / 1024.0;
    let few = tp < 4;
    if ver < (0, 5, 3) {
        let chunk = if gib < 35.0 { 2048 } else if gib < 160.0 { 8192 } else { 16384 };
        return (chunk, if gib < 35.0 && few { 8 } else if gib < 35.0 { 80 } else { 160 });
    }
    if gib < 20.0 {
        (2048, 8)
    } else if gib < 35.0 {
        if ver >= (0, 5, 20) {
            (4096, if few { 48 } else { 160 })
        } else {
            (2048, if !few { 80 } else if ver >= (0, 5, 5) { 24 } else { 16 })
        }
    } else if gib < 60.0 {
        (4096, if few { 32 } else { 160 })
    } else if gib < 160.0 {
        (8192, if few { 256 } else { 512 })
    } else {
        (16384, 512)
    }
}

/// The token counts SGLang captures piecewise (prefill) CUDA graphs for, up to `max_tokens`
/// (`_generate_piecewise_cuda_graph_tokens`, from 0.5.20 `generate_prefill_cuda_graph_batch_sizes`).
pub fn piecewise_graph_tokens(max_tokens: u64) -> usize {
    let steps: [(u64, u64, u64); 6] = [(4, 32, 4), (48, 256, 16), (288, 512, 32), (576, 1024, 64), (1280, 4096, 256), (4608, u64::MAX, 512)];
    steps.iter().map(|&(from, to, step)| if max_tokens < from { 0 } else { ((to.min(max_tokens) - from) / step + 1) as usize }).sum()
}

/// What SGLang's default `mem_fraction_static` depends on besides the version.
#[derive(Debug, Clone, Copy)]
pub struct FractionInputs {
    /// The board's memory in MiB as `nvidia-smi` prints it (`get_device_memory_capacity`).
    pub gpu_mib: f64,
    pub tp: u64,
    pub pp: u64,
    /// A vision tower (multimodal model): SGLang keeps more outside the static fraction.
    pub multimodal: bool,
    /// MLA attention (DeepSeek): from 0.5.10 its piecewise graphs reserve 1.5 GiB.
    pub mla: bool,
    /// An NVIDIA board (piecewise CUDA graphs are off on AMD).
    pub nvidia: bool,
    /// `--chunked-prefill-size` when given (else the board's default, [`memory_tier_defaults`]).
    pub chunk: Option<u64>,
    /// `--cpu-offload-gb` above 0, which turns the piecewise prefill graphs off.
    pub offload: bool,
}

/// SGLang's default `mem_fraction_static` by version (`server_args.py`):
/// - before 0.4.8: by TP size ([`default_mem_fraction_static`]);
/// - 0.4.8 to 0.5.2: `(gpu - reserved) / gpu` to three decimals, `reserved` (2.8 + tp x pp / 10) GiB
///   below 35 GiB, (9.5 + tp x pp / 2) below 90, (12 + tp x pp / 2) below 160, 32 GiB above;
///   x 0.9 for a multimodal model;
/// - from 0.5.3: `reserved` = 512 MiB + 1.5 MiB x max(chunk, 2048) (the given chunked-prefill
///   size, else the board's) + 2 MiB x the graphs' largest batch + tp x pp / 8 GiB, from 0.5.10
///   plus 8 MiB per piecewise prefill graph, one per captured size up to the chunk (1.5 GiB with
///   MLA; none on AMD, with PP, CPU offload or for a multimodal model), at least 10 GiB on boards
///   above 60 GiB;
///   a multimodal model x 0.95 (SGLang scales that by the vision tower's size; a ViT-L-sized one
///   is assumed).
pub fn default_fraction(ver: (u64, u64, u64), f: FractionInputs) -> f64 {
    if ver < (0, 4, 8) {
        return default_mem_fraction_static(f.tp);
    }
    let gpu = f.gpu_mib.max(1.0);
    let parallel = (f.tp.max(1) * f.pp.max(1)) as f64;
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    if ver < (0, 5, 3) {
        let gib = gpu / 1024.0;
        let reserved_gib = if gib < 35.0 { 2.8 + parallel / 10.0 } else if gib < 90.0 { 9.5 + parallel / 2.0 } else if gib < 160.0 { 12.0 + parallel / 2.0 } else { 32.0 };
        let frac = round3((gpu - reserved_gib * 1024.0) / gpu).max(0.0);
        return if f.multimodal { frac * 0.9 } else { frac };
    }
    let (tier_chunk, max_bs) = memory_tier_defaults(ver, gpu, f.tp);
    let chunk = f.chunk.unwrap_or(tier_chunk);
    let mut reserved = 512.0 + chunk.max(2048) as f64 * 1.5 + max_bs as f64 * 2.0 + parallel / 8.0 * 1024.0;
    if ver >= (0, 5, 10) && f.nvidia && f.pp <= 1 && !f.multimodal && !f.offload {
        reserved += if f.mla { 1536.0 } else { piecewise_graph_tokens(chunk) as f64 * 8.0 };
    }
    if gpu > 60.0 * 1024.0 {
        reserved = reserved.max(10.0 * 1024.0);
    }
    // a board smaller than the reserve gets no static pool (never a negative fraction)
    let frac = round3((gpu - reserved) / gpu).max(0.0);
    if f.multimodal { frac * 0.95 } else { frac }
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
        // listed from its first release (day-0 support, PR 15207)
        Family::MiMoV2Flash => ver >= (0, 5, 7),
        Family::Gemma4 => ver >= (0, 5, 11),
        Family::Gemma2 | Family::Gemma3 => ver == (0, 4, 10),
        _ => false,
    }
}

/// The context-length keys SGLang's `get_context_length` reads before `max_position_embeddings`,
/// in its order (`CONTEXT_LENGTH_KEYS`, `hf_transformers_utils.py`): the first present wins.
const CONTEXT_LENGTH_KEYS: &[&str] = &["max_sequence_length", "seq_length", "max_seq_len", "model_max_length"];

/// The release from which `--max-running-requests` sets the request-to-token table's slots (capped
/// from 0.5.10; with an extra row before 0.4.7 and from 0.5.11) and the table's rows are
/// `context_len + 4` wide ([`req_to_token_table`]).
pub const TABLE_FROM_RUNNING_FLAG: (u64, u64, u64) = (0, 3, 0);
/// The release whose request-to-token table has one row per request slot, not one more
/// ([`req_to_token_table`]).
pub const TABLE_WITHOUT_EXTRA_ROW_FROM: (u64, u64, u64) = (0, 4, 7);
/// The release that caps the request slots at half the pool's tokens and sets the scheduler's
/// `max_running_requests` to them (`_resolve_max_num_reqs`).
pub const SLOTS_CAPPED_FROM: (u64, u64, u64) = (0, 5, 10);
/// The release from which the table has a padding row 0 before the request slots.
pub const PADDING_SLOT_FROM: (u64, u64, u64) = (0, 5, 11);
/// The release from which `--max-running-requests` is capped at half the pool's tokens instead of
/// the default's clamped estimate.
pub const FLAG_CAPPED_BY_HALF_FROM: (u64, u64, u64) = (0, 5, 14);
/// The release whose hybrid sliding-window allocator maps full-pool slots to window-pool slots
/// with an int64 list of `full + page_size + 1` entries (`full + window + 1` before).
pub const SWA_MAPPING_PER_FULL_FROM: (u64, u64, u64) = (0, 5, 8);
/// The release that reserves a multimodal model's embedding cache out of the KV pool's budget
/// (`mm_runtime_reservation_gb`; absent from 0.5.17).
pub const MM_RESERVATION_FROM: (u64, u64, u64) = (0, 5, 18);
/// `SGLANG_VLM_CACHE_SIZE_MB`'s default there (GPU feature transport, opt-in, would add 1 GiB).
pub const MM_EMBEDDING_CACHE_MIB: u64 = 100;
/// The release from which every layer's KV buffer has `page_size` padding rows and the free slots
/// are an int64 list on the GPU ([`PoolSide`]).
pub const PAGE_PADDING_FROM: (u64, u64, u64) = (0, 4, 0);

/// The release whose `get_context_length` reads `max_position_embeddings` last (PR 1799, October
/// 2024); before, it came third, before `max_seq_len` and `model_max_length`.
pub const MAX_POSITION_LAST_FROM: (u64, u64, u64) = (0, 3, 5);

/// SGLang's default `context_len` where it differs from `max_position_embeddings`, with its
/// derivation: the first of [`CONTEXT_LENGTH_KEYS`] the text config has (else
/// `max_position_embeddings`; before [`MAX_POSITION_LAST_FROM`] `max_position_embeddings` came
/// before `max_seq_len` and `model_max_length`), times `rope_scaling.factor` unless the scaling
/// names an `original_max_position_embeddings` or is `llama3` (`get_context_length`, 0.3 on; how
/// 0.1-0.2 skipped the factor is not read: the same rule is applied). A nested (per-layer-kind)
/// `rope_scaling` has no top-level factor, so it scales nothing, even with one kind. A config with
/// none of the keys gets 2048.
pub fn default_context_len(shape: &ModelShape, ver: (u64, u64, u64)) -> Option<(u64, String)> {
    let configured = shape.max_position_embeddings;
    let (first, then): (&[&str], &[&str]) = if ver >= MAX_POSITION_LAST_FROM { (CONTEXT_LENGTH_KEYS, &[]) } else { (&CONTEXT_LENGTH_KEYS[..2], &CONTEXT_LENGTH_KEYS[2..]) };
    let Some((key, base)) = shape.length_key(first).or(configured.map(|c| ("max_position_embeddings", c))).or_else(|| shape.length_key(then)) else {
        // none of the keys (Falcon-Mamba, Mamba and Mamba-2 configs)
        let n = super::vllm::NO_LENGTH_KEY_DEFAULT;
        return Some((n, format!("SGLang's default context_len when the config has none of its length keys (max_position_embeddings, max_sequence_length, seq_length, max_seq_len, model_max_length): {n}")));
    };
    let scaling = match shape.rope_scaling.as_slice() {
        [r] if !r.per_layer_kind && r.original_max_position_embeddings.is_none() && r.rope_type != "llama3" => r.factor.filter(|f| *f != 1.0).map(|f| (f, r.rope_type.as_str())),
        _ => None,
    };
    let len = scaling.map_or(base as f64, |(f, _)| (base as f64 * f).floor());
    if !(1.0..=(1u64 << 40) as f64).contains(&len) || Some(len as u64) == configured {
        return None;
    }
    let len = len as u64;
    let how = match scaling {
        Some((f, kind)) => format!("{key} {base} x {kind} RoPE factor {f}"),
        None => format!("{key} {base}"),
    };
    let not = match configured {
        Some(c) if key != "max_position_embeddings" => format!(", not max_position_embeddings {c}"),
        _ => String::new(),
    };
    Some((len, format!("SGLang's default context_len, {how}{not}")))
}

/// SGLang's request-to-token table (`ReqToTokenPool`): one int32 row of token indices per request
/// slot, sized after the KV pool from its token count `T` and allocated outside
/// `mem_fraction_static` (no release subtracts it from the pool's budget). Read release by
/// release (the published wheels):
/// - 0.1: `int(T / context_len x 256)` rows of `context_len + 8`;
/// - 0.2: `int(T / context_len x 512)` rows clamped to 2048..=5120, of `context_len + 8`;
/// - from 0.3, rows of `context_len + 4` for `max_num_reqs` request slots, `max_num_reqs` the
///   `--max-running-requests` given, else `int(T / context_len x 512)` clamped to 2048..=4096:
///   - 0.3 to 0.4.6: `max_num_reqs + 1` rows (the logs' `max_running_requests=2049` or `4097`);
///   - 0.4.7 to 0.5.10: `max_num_reqs` rows (the decode request pool of PR 6980);
///   - from 0.5.10 (`_resolve_max_num_reqs`, PR 20142) without the flag, at most `T / 2` slots;
///     with it, at most the clamped estimate (0.5.10 to 0.5.13) or `T / 2` (from 0.5.14, PR 27399);
///   - from 0.5.11: `max_num_reqs + 1` rows again, row 0 a padding slot (PR 24243).
///
/// Speculative decoding's wider rows (`+ speculative_num_draft_tokens`) and its default of 48
/// requests are not modelled: the scenario has no draft model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqTable {
    /// Request slots (`max_num_reqs`; 0.1-0.2: the rows).
    pub slots: u64,
    pub rows: u64,
    pub columns: u64,
}

/// The state pool of a model with recurrent layers (gated DeltaNet, Mamba-2: SGLang's
/// `MambaPool` beside a `HybridLinearKVPool` of the attention layers' tokens), in SGLang's
/// default configuration (radix cache on, no `--max-mamba-cache-size`, no speculative decoding),
/// read release by release:
/// - before 0.5.4: `max_mamba_cache_size` = `--max-running-requests` or 512 slots, taken from the
///   pool's budget first;
/// - from 0.5.4 (gated DeltaNet) and 0.5.7 (Mamba-2 hybrids, which kept the 512 slots while they
///   ran without the radix cache): `mamba_full_memory_ratio` (0.9) / 1.9 of the budget, in whole
///   slots; from 0.5.17 less one slot, the pool's padding slot now budgeted;
/// - the pool allocates one padding slot more than `max_mamba_cache_size` (before 0.5.17 out of
///   the share outside the fraction);
/// - a request holds a slot, and the scheduler runs at most `slots / ratio` of them (the table's
///   request slots): 1 before 0.5.4 and without the radix cache, 3 from 0.5.4, 5 in 0.5.7 and from
///   0.5.14 (the `extra_buffer` strategy's ping-pong slots).
///
/// A model with no attention layers (Mamba, Falcon-Mamba, Mamba-2; served from
/// [`PURE_SSM_FROM`]) has the same budgeted pool, with 3 slots per request: its architectures are
/// not among those SGLang gives the `extra_buffer` strategy (`_MAMBA_EXTRA_BUFFER_ARCHS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatePool {
    /// Request slots (`max_mamba_cache_size`).
    pub slots: u64,
    /// Bytes of one slot on one GPU: every recurrent layer's convolution window (bf16) and SSM
    /// state (float32 by default).
    pub slot_bytes: u64,
    /// Bytes taken from the pool's budget.
    pub budgeted: u64,
    /// The share of the budget the slots were sized from (`0.9 / 1.9` of it; the slots' bytes
    /// when they are a count).
    pub share: u64,
    /// Bytes allocated (`slots + 1` slots).
    pub allocated: u64,
    /// Slots per running request.
    pub per_request: u64,
    /// How the slots were sized, for display.
    pub how: &'static str,
}

/// `mamba_full_memory_ratio`'s default: the state pool gets `0.9 / 1.9` of the budget.
pub const MAMBA_FULL_MEMORY_RATIO: f64 = 0.9;
/// State slots when they are not sized from the budget ([`StatePool`]).
pub const DEFAULT_STATE_SLOTS: u64 = 512;
/// The release that sizes a gated-DeltaNet model's state pool from the budget.
pub const STATE_FROM_BUDGET_FROM: (u64, u64, u64) = (0, 5, 4);
/// The release from which Mamba-2 hybrids keep the radix cache, and so size their state pool from
/// the budget too.
pub const MAMBA2_RADIX_FROM: (u64, u64, u64) = (0, 5, 7);
/// The release that budgets the state pool's padding slot.
pub const STATE_PADDING_BUDGETED_FROM: (u64, u64, u64) = (0, 5, 17);

/// The release that serves models without attention layers: Mamba, Falcon-Mamba and Mamba-2
/// (`models/mamba.py`, `falcon_mamba.py`, `mamba2.py`; absent from the 0.5.19 wheel).
pub const PURE_SSM_FROM: (u64, u64, u64) = (0, 5, 20);

/// What a state pool serves ([`state_pool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrent {
    /// Gated DeltaNet beside attention (Qwen3-Next, Qwen3.5).
    GatedDeltaNet,
    /// Mamba-2 or short convolutions beside attention (Nemotron-H, Falcon-H1, Granite 4, LFM2).
    Hybrid,
    /// No attention layers at all (Mamba, Falcon-Mamba, Mamba-2).
    Pure,
}

/// [`StatePool`] for a budget of `rest` bytes, slots of `slot_bytes`, the kind of model, and
/// `--max-running-requests`.
pub fn state_pool(ver: (u64, u64, u64), kind: Recurrent, rest: u64, slot_bytes: u64, max_running: Option<u64>) -> StatePool {
    let slot = slot_bytes.max(1);
    let gdn = kind == Recurrent::GatedDeltaNet;
    let from_budget = ver >= STATE_FROM_BUDGET_FROM && (gdn || kind == Recurrent::Pure || ver >= MAMBA2_RADIX_FROM);
    let (slots, budgeted, share, how) = if !from_budget {
        let k = max_running.unwrap_or(DEFAULT_STATE_SLOTS);
        (k, k.saturating_mul(slot_bytes), k.saturating_mul(slot_bytes), if max_running.is_some() { "--max-running-requests" } else { "SGLang's default of 512" })
    } else {
        let budget = (rest as f64 * MAMBA_FULL_MEMORY_RATIO / (1.0 + MAMBA_FULL_MEMORY_RATIO)) as u64;
        if ver >= STATE_PADDING_BUDGETED_FROM {
            let k = budget.saturating_sub(slot) / slot;
            (k, k.saturating_add(1).saturating_mul(slot_bytes), budget, "mamba_full_memory_ratio 0.9: 0.9 / 1.9 of the budget, less the padding slot")
        } else {
            let k = budget / slot;
            (k, k.saturating_mul(slot_bytes), budget, "mamba_full_memory_ratio 0.9: 0.9 / 1.9 of the budget")
        }
    };
    let per_request = if !from_budget {
        1
    } else if kind == Recurrent::Pure {
        3
    } else if ver == MAMBA2_RADIX_FROM || ver >= (0, 5, 14) {
        5
    } else {
        3
    };
    StatePool { slots, slot_bytes, budgeted, share, allocated: slots.saturating_add(1).saturating_mul(slot_bytes), per_request, how }
}

/// The first SGLang release that reads a config's own `mamba_ssm_dtype` (`mamba2_state_dtype`,
/// `configs/mamba_utils.py`), for the families whose config class passes itself to it.
pub const CONFIG_SSM_DTYPE_FROM: (u64, u64, u64) = (0, 5, 9);

/// The shape SGLang caches when it is not the config's: recurrent layers keep their SSM state in
/// float32 (`mamba_ssm_dtype`'s default), unless, from 0.5.9, the config of Nemotron-H,
/// Qwen3-Next / Qwen3.5 or Falcon-H1 asks for bfloat16 or float16 (Granite 4's config class passes
/// nothing: float32 whatever it says); `None` when nothing changes.
pub(crate) fn cached_shape(shape: &ModelShape, ver: (u64, u64, u64)) -> Option<ModelShape> {
    let reads_config = ver >= CONFIG_SSM_DTYPE_FROM && matches!(shape.family, Family::NemotronH | Family::Qwen3Next | Family::Qwen35 | Family::FalconH1);
    match shape.config_ssm_dtype {
        Some(d) if reads_config && d != FloatDtype::F32 => {
            let mut s = shape.with_state_in_activation_dtype();
            s.notes.insert(0, format!("SGLang keeps the recurrent layers' SSM state in {} as the config's mamba_ssm_dtype asks (read from 0.5.9), and their convolution window in bf16", d.as_str()));
            Some(s)
        }
        _ => shape.with_f32_state(false, "SGLang keeps the recurrent layers' SSM state in float32 (mamba_ssm_dtype's default) and their convolution window in bf16".into()),
    }
}

/// [`ReqTable`] for a pool of `tokens`, a context of `context_len` and `--max-running-requests`.
pub fn req_to_token_table(ver: (u64, u64, u64), tokens: u64, context_len: u64, max_running: Option<u64>) -> ReqTable {
    req_to_token_table_capped(ver, tokens, context_len, max_running, None)
}

/// [`req_to_token_table`] with the request slots at most `state_cap` (a state pool's
/// `slots / per_request`, [`StatePool`]), from 0.3 (before, no release served a recurrent model).
pub fn req_to_token_table_capped(ver: (u64, u64, u64), tokens: u64, context_len: u64, max_running: Option<u64>, state_cap: Option<u64>) -> ReqTable {
    let ctx = context_len.max(1);
    let per_ctx = |m: u128| u64::try_from(tokens as u128 * m / ctx as u128).unwrap_or(u64::MAX);
    if ver < (0, 2, 0) {
        let rows = per_ctx(256);
        return ReqTable { slots: rows, rows, columns: ctx.saturating_add(8) };
    }
    if ver < TABLE_FROM_RUNNING_FLAG {
        let rows = per_ctx(512).clamp(2048, 5120);
        return ReqTable { slots: rows, rows, columns: ctx.saturating_add(8) };
    }
    let estimated = per_ctx(512).clamp(2048, 4096);
    let slots = match max_running {
        _ if ver < SLOTS_CAPPED_FROM => max_running.unwrap_or(estimated),
        Some(n) if ver < FLAG_CAPPED_BY_HALF_FROM => n.min(estimated),
        Some(n) => n.min(tokens / 2),
        None => estimated.min(tokens / 2),
    };
    let slots = state_cap.map_or(slots, |cap| slots.min(cap));
    let padding_row = ver < TABLE_WITHOUT_EXTRA_ROW_FROM || ver >= PADDING_SLOT_FROM;
    ReqTable { slots, rows: slots.saturating_add(u64::from(padding_row)), columns: ctx.saturating_add(4) }
}

/// What SGLang allocates with its token pool beyond the `T x bytes per token` it sizes, all in
/// the share outside `mem_fraction_static` (the table exact; the buffers modelled: K and V as
/// halves of a layer's bytes, each part served by a fresh allocator, the layers of a group from a
/// 16-layer sample):
/// - the request-to-token table ([`req_to_token_table`]);
/// - the padding rows of every layer's K and V buffers (`size + page_size` rows from 0.4,
///   `size + 1` in 0.2-0.3) and PyTorch's 2 MiB rounding of each ([`crate::allocator`]);
/// - the free-slot list: `T` int64 indices on the GPU from 0.4 (one per page when paged), a one-byte
///   state per slot before;
/// - a hybrid sliding-window pool's `full_to_swa_index_mapping`: int64 entries for every full-pool
///   and window-pool slot plus one, from 0.5.8 for the full-pool slots and one page plus one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSide {
    /// Request slots of the table ([`ReqTable::slots`]).
    pub table_slots: u64,
    pub table_rows: u64,
    pub table_columns: u64,
    pub table_bytes: u64,
    /// Padding rows, segment rounding and the free-slot list.
    pub buffers_bytes: u64,
}

impl PoolSide {
    pub fn bytes(&self) -> u64 {
        self.table_bytes.saturating_add(self.buffers_bytes)
    }
}

/// [`PoolSide`] for a pool of `tokens` (full layers) and `swa_tokens` (window layers in a hybrid
/// pool; every layer holds `tokens` otherwise), pages of `page` tokens, whose `T x bytes per
/// token` is `counted` bytes.
fn pool_side(ver: (u64, u64, u64), cx: &Ctx, tokens: u64, swa_tokens: Option<u64>, page: u64, counted: u64, state: Option<StatePool>) -> PoolSide {
    let cap = state.map(|p| p.slots / p.per_request.max(1));
    let ReqTable { slots: table_slots, rows, columns: cols } = req_to_token_table_capped(ver, tokens, cx.max_model_len, cx.scenario.max_num_seqs, cap);
    let table = rows.saturating_mul(cols).saturating_mul(4);
    let pad = if ver >= PAGE_PADDING_FROM { page } else if ver >= (0, 2, 0) { 1 } else { 0 };
    // segments each group's layers hold: the first few served in order, the rest alike (every
    // layer's buffers have one size, so the pattern repeats; a bounded loop on any layer count)
    let mut reserved = crate::allocator::reserved_for([table]);
    for g in &cx.kv.groups {
        let t = match (swa_tokens, g.window) {
            (Some(s), Window::Sliding(_) | Window::Chunked(_)) => s,
            _ => tokens,
        }
        .saturating_add(pad);
        let per_layer = t.saturating_mul(g.bytes_per_token_per_layer);
        let sizes: &[u64] = if g.mla { &[per_layer] } else { &[per_layer / 2, per_layer - per_layer / 2] };
        let sample = g.layers.min(16);
        let r = crate::allocator::reserved_for((0..sample).flat_map(|_| sizes.iter().copied()));
        reserved = reserved.saturating_add(if sample == 0 { 0 } else { (r as u128 * g.layers as u128 / sample as u128).min(u64::MAX as u128) as u64 });
    }
    let slots = if ver >= PAGE_PADDING_FROM { (tokens / page.max(1)).saturating_mul(8) } else { tokens.saturating_add(1) };
    reserved = reserved.saturating_add(crate::allocator::reserved_for([slots]));
    // a hybrid pool's full-to-window slot mapping (`full_to_swa_index_mapping`, int64)
    if let Some(swa) = swa_tokens {
        let entries = if ver >= SWA_MAPPING_PER_FULL_FROM { tokens.saturating_add(page).saturating_add(1) } else { tokens.saturating_add(swa).saturating_add(1) };
        reserved = reserved.saturating_add(crate::allocator::reserved_for([entries.saturating_mul(8)]));
    }
    // the state pool's padding slot, which no request holds (out of the share outside the
    // fraction before 0.5.17, budgeted with the pool after)
    let state_beyond = state.map_or(0, |p| p.allocated.saturating_sub(p.slots.saturating_mul(p.slot_bytes)));
    let buffers = reserved.saturating_sub(table).saturating_sub(counted).saturating_add(state_beyond);
    PoolSide { table_slots, table_rows: rows, table_columns: cols, table_bytes: table, buffers_bytes: buffers }
}

/// The SGLang version a scenario models ([`DEFAULT_VERSION`] when none is given or it does not parse).
pub(crate) fn version_of(s: &crate::scenario::Scenario) -> (u64, u64, u64) {
    s.engine_version.as_deref().and_then(parse_semver).unwrap_or(DEFAULT_VERSION)
}

/// Page size of SGLang's DeepSeek Sparse Attention pool on CUDA (`NSATokenToKVPool`; "Setting
/// page size to 64 for DeepSeek NSA"); on ROCm it stays 1.
pub const NSA_PAGE: u64 = 64;

/// DeepSeek Sparse Attention (V3.2): the bytes per token SGLang's `get_cell_size_per_token` counts,
/// and the pool's page. It counts an fp8 latent as `kv_lora_rank + qk_rope_head_dim` bytes, while
/// `NSATokenToKVPool` stores it as `fp8_ds_mla` (one fp32 scale per 128 values, the rope key in
/// bf16: 80 B more per layer for V3.2's 512 + 64), so for V3.2 the pool takes about 11 % more than
/// the budget it was cut from; at bf16 the two agree. `None` for other models.
fn nsa_cell(cx: &Ctx, nvidia: bool) -> Option<(u64, u64)> {
    let (kv_lora, rope) = cx.shape.layers.iter().find_map(|l| match l.mixer {
        crate::model::Mixer::Mla { kv_lora_rank, qk_rope_head_dim, index_head_dim, .. } if index_head_dim > 0 => Some((kv_lora_rank, qk_rope_head_dim)),
        _ => None,
    })?;
    let layers: u64 = cx.kv.groups.iter().filter(|g| g.mla).map(|g| g.layers).sum();
    let uncounted = if cx.kv.kv_ratio == (1, 1) { kv_lora.div_ceil(crate::kv::SPARSE_QUANT_BLOCK) * 4 + rope } else { 0 };
    Some((cx.kv.bytes_per_token.saturating_sub(layers.saturating_mul(uncounted)), if nvidia { NSA_PAGE } else { 1 }))
}

pub(crate) fn run(cx: &Ctx) -> Result<EngineReport> {
    let s = cx.scenario;
    let tp = u64::from(s.tp.max(1));
    let ver = version_of(s);
    let nvidia = s.gpu.catalog().is_none_or(|g| g.compute_capability > 0);
    // the board as nvidia-smi sizes it: the memory PyTorch sees plus the driver's share (a given
    // size is the free memory at load, so the context too)
    let board_gib = cx.memory.gib() + if nvidia { crate::gpu::DRIVER_RESERVE_GIB } else { 0.0 } + if s.gpu.memory_is_given() { CONTEXT_BEFORE_LOAD_GIB } else { 0.0 };
    let multimodal = cx.shape.globals.iter().any(|t| t.role == crate::model::Role::Encoder);
    let fraction_inputs = FractionInputs { gpu_mib: board_gib * 1024.0, tp, pp: u64::from(s.pp.max(1)), multimodal, mla: cx.shape.is_mla(), nvidia, chunk: s.max_num_batched_tokens, offload: s.cpu_offload_gib.is_some_and(|g| g > 0.0) };
    let mfs = s.gpu_memory_utilization.unwrap_or_else(|| default_fraction(ver, fraction_inputs));
    let l = cx.max_model_len;
    let before_load = before_load_gib(s.gpu.catalog(), tp);
    let free_at_load = if !s.gpu.memory_is_given() { cx.memory.0.saturating_sub((before_load * GIB as f64) as u64) } else { cx.memory.0 };
    let static_b = (free_at_load as f64 * mfs) as u64;
    // the rotary cos/sin cache stays in fp32 on CUDA from 0.4.3 ("cache needs to be in FP32 for
    // numerical stability", `rotary_embedding.py`), on ROCm from 0.5.22; before (vLLM's `get_rope`
    // to 0.4.1, SGLang's own in 0.4.2) and elsewhere it is cast to the model dtype
    let rope_fp32 = if nvidia { ver >= (0, 4, 3) } else { ver >= (0, 5, 22) };
    let rope_value = if rope_fp32 { 4 } else { cx.plan.activation.bytes() };
    let super::LoadExtras { rope, slack, .. } = super::load_extras_with(cx, rope_value);
    let loaded = cx.weights_per_gpu.0.saturating_add(rope).saturating_add(slack);
    // a multimodal model keeps its embedding cache (`SGLANG_VLM_CACHE_SIZE_MB`, 100 MiB by
    // default) out of the pool's budget from 0.5.18 (`mm_runtime_reservation_gb`)
    let mm_reserve = if multimodal && ver >= MM_RESERVATION_FROM { MM_EMBEDDING_CACHE_MIB << 20 } else { 0 };
    let rest = static_b.saturating_sub(loaded).saturating_sub(mm_reserve);
    // recurrent layers (gated DeltaNet, Mamba-2) keep their state in a pool of its own, sized
    // first; the attention layers' tokens get what it leaves
    // a model without attention layers has only the state pool; its token pool has context_len
    // slots of no bytes (`DefaultPoolConfigurator._zero_kv_max_tokens`: `--max-total-tokens` or
    // context_len), which still bound the tokens in flight
    let pure = cx.kv.state_bytes_per_request > 0 && cx.kv.bytes_per_token == 0;
    let kind = if pure {
        Recurrent::Pure
    } else if matches!(cx.shape.family, Family::Qwen3Next | Family::Qwen35) {
        Recurrent::GatedDeltaNet
    } else {
        Recurrent::Hybrid
    };
    let state = (cx.kv.state_bytes_per_request > 0).then(|| state_pool(ver, kind, rest, cx.kv.state_bytes_per_request, s.max_num_seqs));
    let rest = rest.saturating_sub(state.map_or(0, |p| p.budgeted));
    let per_token = cx.kv.bytes_per_token.max(1);
    // DeepSeek Sparse Attention: the cell SGLang counts and its pool's page
    let nsa = nsa_cell(cx, nvidia);
    // the full layers' and the window layers' bytes per token, and their layer counts
    let full_b = cx.kv.full_bytes_per_token();
    let swa_b = cx.kv.bytes_per_token.saturating_sub(full_b);
    let n_full: u64 = cx.kv.groups.iter().filter(|g| g.window == Window::Full).map(|g| g.layers).sum();
    let n_swa: u64 = cx.kv.groups.iter().map(|g| g.layers).sum::<u64>() - n_full;
    let hybrid = swa_b > 0 && full_b > 0 && cx.kv.state_bytes_per_request == 0 && hybrid_swa(ver, cx.shape);
    let r = SWA_FULL_TOKENS_RATIO;
    let (tokens, swa_tokens, pool) = if pure {
        (l, 0, 0)
    } else if hybrid {
        let full = if ver >= (0, 5, 9) {
            (rest as f64 / (full_b as f64 + r * swa_b as f64)).floor() as u64
        } else {
            let t = rest / per_token;
            (t as f64 * (n_swa + n_full) as f64 / (r * n_swa as f64 + n_full as f64)) as u64
        };
        let swa = (full as f64 * r) as u64;
        (full, swa, full.saturating_mul(full_b).saturating_add(swa.saturating_mul(swa_b)))
    } else if let Some((counted, page)) = nsa {
        // DeepSeek Sparse Attention's pool: tokens from the cell size SGLang counts, in pages
        // of 64; the pool allocates the full cell
        let t = rest / counted.max(1) / page * page;
        (t, 0, t * per_token)
    } else {
        let t = rest / per_token;
        (t, 0, t * per_token)
    };
    // token pool pages: 1, or 64 for DeepSeek Sparse Attention
    let page = nsa.map_or(1, |(_, p)| p);
    let chunk = s.max_num_batched_tokens.unwrap_or(memory_tier_defaults(ver, board_gib * 1024.0, tp).0);
    let act = forward_peak(cx.shape, chunk, cx.plan.activation.bytes(), tp);
    let activation = Figure::modelled("activation peak", Bytes(act), "chunked_prefill_size x per-token width x act bytes", format!("{chunk} tokens -> {}", gib(act)))
        .note("lives in the (1 - mem_fraction_static) share with CUDA graphs");
    let outside = free_at_load.saturating_sub(static_b);
    // what the pool's tables and buffers take beside its tokens' KV, out of the free memory left
    // after the pool ("Memory pool end. avail mem"); the activations and graphs get the rest
    let side = pool_side(ver, cx, tokens, hybrid.then_some(swa_tokens), page, pool, state);
    // (the slots requests hold; the padding slot is with the buffers beside the pool)
    let state_slots_bytes = state.map_or(0, |p| p.slots.saturating_mul(p.slot_bytes));
    let after_pool = free_at_load.saturating_sub(loaded.saturating_add(pool).saturating_add(state_slots_bytes));
    let left = after_pool.saturating_sub(side.bytes());
    let graphs = left.saturating_sub(act).min((GIB as f64 * 1.5) as u64);
    let overhead = Figure::modelled(
        "runtime overhead",
        Bytes(graphs.saturating_add(side.bytes()).saturating_add(slack).saturating_add(rope)),
        "CUDA graphs and workspaces in the share outside mem_fraction_static + SGLang's request-to-token table and pool buffers + allocator rounding of the weights + rotary cos/sin cache",
        format!(
            "{} (at most 1.5 GiB of the {} left outside the static fraction after the request-to-token table and the pool's buffers) + {} (request-to-token table: {} rows x {} int32, exact) + {} (pool padding rows, 2 MiB segment rounding and free-slot list, modelled) + {} (weights in 2 MiB-rounded segments, exact) + {} (rotary cos/sin caches: positions x rotary_dim x {rope_value} B{}, exact)",
            gib(graphs),
            gib(left),
            Bytes(side.table_bytes),
            side.table_rows,
            side.table_columns,
            Bytes(side.buffers_bytes),
            Bytes(slack),
            Bytes(rope),
            if rope_fp32 { ", fp32" } else { "" }
        ),
    );
    // one pool keeps the window layers' tokens at full length
    let one_pool_with_windows = swa_b > 0 && !hybrid;
    let need = if one_pool_with_windows { cx.kv.clone().windows_at_full_length().request_bytes(l)? } else { cx.kv.request_bytes(l)? };
    // the table and buffers are allocated at start-up: out of memory when they do not fit
    // and a table without request slots (0.1's int(T / context_len x 256) below one, or from
    // 0.5.10 half of a one-token pool) admits no request
    let no_state = state.is_some_and(|p| p.slots == 0);
    // no release before PURE_SSM_FROM has a model class for a model without attention layers
    let unserved = pure && ver < PURE_SSM_FROM;
    let fits = !unserved && tokens > 0 && !no_state && side.table_slots > 0 && side.bytes() <= after_pool;
    let usable_why = if !s.gpu.memory_is_given() {
        let what = if before_load > CONTEXT_BEFORE_LOAD_GIB { format!("{CONTEXT_BEFORE_LOAD_GIB} GiB of CUDA context and {NCCL_NVSWITCH_BEFORE_LOAD_GIB} GiB of NCCL buffers over the NVSwitch") } else { format!("{CONTEXT_BEFORE_LOAD_GIB} GiB of CUDA context") };
        format!("{} less {what}, modelled", gib(cx.memory.0))
    } else {
        "as given".to_string()
    };
    // the window pool's requests keep at most the largest window of its layers
    let window = cx.kv.groups.iter().filter_map(|g| match g.window {
        Window::Sliding(w) | Window::Chunked(w) => Some(w),
        Window::Full => None,
    });
    let budget = super::Budget {
        usable: Bytes(free_at_load),
        derivation: format!("free at load: {usable_why}"),
        kv_room: Bytes(pool.saturating_add(state_slots_bytes)),
        full_pool: super::PoolPart { tokens, bytes_per_token: if hybrid || pure { full_b } else { per_token } },
        state_pool: state.map(|p| super::PoolPart { tokens: p.slots, bytes_per_token: p.slot_bytes }),
        window_pool: hybrid.then(|| (super::PoolPart { tokens: swa_tokens, bytes_per_token: swa_b }, window.max().unwrap_or(u64::MAX))),
        // the graphs take what the activation leaves (at most 1.5 GiB), so only the activation
        // (after the pool's tables and buffers) can fall short
        work_shortfall: Bytes(act.saturating_add(side.bytes()).saturating_sub(after_pool)),
        windows_at_full_length: one_pool_with_windows,
        beside_pool: Bytes(side.bytes()),
        left_after_pool: Bytes(left),
    };
    let message = if unserved {
        let (v0, v1, v2) = ver;
        let (p0, p1, p2) = PURE_SSM_FROM;
        Some(format!(
            "SGLang {v0}.{v1}.{v2} has no model class for `{}`, a model without attention layers: SGLang serves Mamba, Falcon-Mamba and Mamba-2 from {p0}.{p1}.{p2}",
            cx.shape.model_type
        ))
    } else if let Some(p) = state.filter(|p| p.slots == 0) {
        Some(format!(
            "Not enough GPU memory for hybrid (mamba/linear-attention) state cache. Computed max_mamba_cache_size=0 ({} of the pool's budget for states of {} each); raise --mem-fraction-static",
            gib(p.share),
            Bytes(p.slot_bytes)
        ))
    } else if let Some(p) = state.filter(|p| p.slots / p.per_request.max(1) == 0) {
        Some(format!(
            "No request can run: max_mamba_cache_size {} / {} state slots per running request is 0, so the request-to-token table has no request slots; raise --mem-fraction-static",
            p.slots, p.per_request
        ))
    } else if tokens == 0 {
        Some(format!("Not enough memory. Please try to increase --mem-fraction-static. ({} static, {} weights as loaded)", gib(static_b), gib(loaded)))
    } else if side.table_slots == 0 && ver < (0, 2, 0) {
        Some(format!("The request-to-token table has no rows: max_total_num_tokens {tokens} / context_len {l} x 256 is below one, so no request is admitted; lower --context-length"))
    } else if side.table_slots == 0 {
        Some(format!("The request-to-token table has no request slots: max_total_num_tokens {tokens} / 2 is below one, so no request is admitted; raise --mem-fraction-static"))
    } else if !fits {
        Some(format!(
            "CUDA out of memory. (The request-to-token table, {} rows x {} int32 = {}, and the pool's buffers, {}, need more than the {} left beside the KV pool; lower --context-length, --max-running-requests or --mem-fraction-static.)",
            side.table_rows,
            side.table_columns,
            gib(side.table_bytes),
            gib(side.buffers_bytes),
            gib(after_pool)
        ))
    } else {
        None
    };
    // the scheduler's limit on running requests (`max_running_requests`): the given
    // --max-running-requests, else half the pool's tokens; at most the table's rows (0.2: one
    // fewer, as its scheduler keeps one)
    // (0.3 to 0.4.6 admit as many as the table has rows, its extra row included; from 0.5.10 the
    // slots are the limit, already capped)
    let limit = if ((0, 2, 0)..TABLE_FROM_RUNNING_FLAG).contains(&ver) {
        side.table_rows.saturating_sub(1)
    } else if ver < TABLE_WITHOUT_EXTRA_ROW_FROM {
        side.table_rows
    } else {
        side.table_slots
    };
    let running = if ver >= SLOTS_CAPPED_FROM { limit } else { s.max_num_seqs.unwrap_or(tokens / 2).min(limit) };
    // a state pool caps the request slots at its slots / slots per request
    let state_cap = state.map(|p| (p.slots / p.per_request.max(1), p));
    let by_state = state_cap.filter(|(cap, _)| *cap == running).map(|(cap, p)| format!("the state pool's {} slots / {} per request = {cap}", p.slots, p.per_request));
    let running_cap = Some(super::RunningCap {
        requests: running,
        source: match (s.max_num_seqs, by_state) {
            (Some(n), Some(why)) if n > running => format!("--max-running-requests {n}, at most {why}"),
            (None, Some(why)) => format!("SGLang's default, at most {why}"),
            (Some(n), _) if n <= running => format!("--max-running-requests {n}"),
            (Some(n), _) if ver >= FLAG_CAPPED_BY_HALF_FROM => format!("--max-running-requests {n}, at most max_total_num_tokens / 2"),
            (Some(n), _) if ver >= SLOTS_CAPPED_FROM => format!("--max-running-requests {n}, at most SGLang's estimate min(4096, max(2048, max_total_num_tokens / context_len x 512))"),
            (Some(n), _) => format!("--max-running-requests {n}, at most the {limit} request-to-token rows"),
            (None, _) if ver >= SLOTS_CAPPED_FROM => "SGLang's default, min(max(2048, min(4096, max_total_num_tokens / context_len x 512)), max_total_num_tokens / 2)".to_string(),
            (None, _) => format!("SGLang's default, min(max_total_num_tokens / 2, {limit} request-to-token rows)"),
        },
    });
    Ok(EngineReport {
        name: "sglang".into(),
        version: s.engine_version.clone().unwrap_or_else(|| format!("{}.{}.{}", DEFAULT_VERSION.0, DEFAULT_VERSION.1, DEFAULT_VERSION.2)),
        utilization: mfs,
        max_model_len: l,
        block_size: page,
        kv_pool_bytes: Bytes(pool),
        kv_in_host_memory: Bytes(0),
        budget_shortfall: Bytes(0),
        kv_tokens: tokens,
        num_blocks: tokens / page,
        max_concurrency: tokens as f64 / l.max(1) as f64,
        fits,
        message,
        loaded_weights_bytes: Bytes(loaded),
        kv_needed_for_max_len: Bytes(need),
        max_len_that_fits: tokens,
        activation,
        overhead,
        kv_batch: None,
        block_pool: None,
        cuda_graph_in_budget_bytes: Bytes(0),
        running_cap,
        kv_parts: vec![],
        budget: Some(budget),
        notes: {
            let mut n = vec![format!("static budget {} = {} free at load ({usable_why}) x {mfs}; the requests' KV must fit its token pool, the activation peak and CUDA graphs what the request-to-token table and the pool's buffers leave of the {} outside it", gib(static_b), gib(free_at_load), gib(outside))];
            if let Some(p) = state {
                let tokens_are = if pure {
                    format!("the token pool has context_len ({l}) slots of no bytes, as a model without attention layers gets (--max-total-tokens raises them), and they bound the tokens in flight; the rest of the budget stays unused")
                } else {
                    "the token pool holds the attention layers' tokens".to_string()
                };
                n.push(format!(
                    "state pool (MambaPool) {}: {} request slots ({}) x {} (every recurrent layer's convolution window and SSM state), plus a padding slot; {tokens_are}; a request holds a slot, and the scheduler runs at most slots / {} = {} at once (the other slots keep cached states)",
                    gib(p.allocated),
                    p.slots,
                    p.how,
                    Bytes(p.slot_bytes),
                    p.per_request,
                    p.slots / p.per_request.max(1)
                ));
            }
            if mm_reserve > 0 {
                n.push(format!("{MM_EMBEDDING_CACHE_MIB} MiB of the static budget kept for the multimodal embedding cache (SGLANG_VLM_CACHE_SIZE_MB, from 0.5.18), not the token pool; free at start-up, as SGLang's \"avail mem\" counts it, until images fill the cache"));
            }
            n.extend(cx.max_model_len_why.clone());
            let running = match s.max_num_seqs {
                Some(n) if ver >= TABLE_FROM_RUNNING_FLAG && n == side.table_slots => format!("{} request slots, --max-running-requests", side.table_slots),
                Some(n) if ver >= TABLE_FROM_RUNNING_FLAG => format!("{} request slots, --max-running-requests {n} capped", side.table_slots),
                _ => format!("{} request slots, SGLang's default", side.table_slots),
            };
            let extra = if side.table_rows > side.table_slots { " and a padding row" } else { "" };
            n.push(format!(
                "request-to-token table {}: {} rows ({running}{extra}) x {} (context_len {l} + padding) x 4 B, allocated after the pool outside mem_fraction_static; with the pool's padding rows, segment rounding and free-slot list ({}) it leaves {} of the {} after the pool for activations and CUDA graphs",
                gib(side.table_bytes),
                side.table_rows,
                side.table_columns,
                gib(side.buffers_bytes),
                gib(left),
                gib(after_pool)
            ));
            if s.gpu_memory_utilization.is_none() {
                let (v0, v1, v2) = ver;
                n.push(format!("mem_fraction_static {mfs}: SGLang {v0}.{v1}.{v2}'s default for a board of {board_gib:.2} GiB (as nvidia-smi counts it) at TP {tp}{}", if multimodal { ", lowered for the vision tower" } else if mfs == 0.0 { ": what it reserves outside the pool is more than the board" } else { "" }));
            }
            if cx.shape.pool_only_layers() > 0 {
                n.push(format!("the {} layers without attention get pool buffers like every layer (SGLang sizes its pool by num_hidden_layers with one KV-head count), though they cache nothing", cx.shape.pool_only_layers()));
            }
            if cx.shape.shared_kv_layers() > 0 {
                n.push(format!("the {} KV-shared layers get pool buffers like every layer (SGLang sizes its pool by num_hidden_layers), though they read an earlier layer's cache", cx.shape.shared_kv_layers()));
            }
            if let Some((counted, page)) = nsa {
                n.push(format!("DeepSeek Sparse Attention pool: max_total_num_tokens = rest / {counted} B counted per token, in pages of {page}; the pool allocates {per_token} B per token{}", if counted < per_token { " (SGLang counts an fp8 latent without its scales and bf16 rope key)" } else { "" }));
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

    #[test]
    fn default_fraction_follows_the_board_from_0_4_8() {
        use super::{default_fraction, piecewise_graph_tokens, FractionInputs};
        let at = |gpu_mib: f64, tp: u64| FractionInputs { gpu_mib, tp, pp: 1, multimodal: false, mla: false, nvidia: true, chunk: None, offload: false };
        // logged choices: 0.874 on an H100 (81559 MiB, issue 7495, 0.4.8), 0.909 on an RTX 5090
        // (32607 MiB, issue 7227)
        assert_eq!(default_fraction((0, 4, 8), at(81559.0, 1)), 0.874);
        assert_eq!(default_fraction((0, 4, 9), at(32607.0, 1)), 0.909);
        assert_eq!(default_fraction((0, 4, 7), at(81559.0, 4)), 0.85);
        // from 0.5.3: 512 + 8192 x 1.5 + 256 x 2 + 1024 / 8 = 13440 MiB on an H100
        assert_eq!(default_fraction((0, 5, 8), at(81559.0, 1)), 0.835);
        // from 0.5.10 the piecewise prefill graphs add 8 MiB each: 58 up to 8192 tokens
        assert_eq!(piecewise_graph_tokens(8192), 58);
        assert_eq!(piecewise_graph_tokens(2048), 42);
        assert_eq!(piecewise_graph_tokens(2), 0);
        assert_eq!(default_fraction((0, 5, 10), at(81559.0, 1)), ((81559.0 - 13440.0 - 58.0 * 8.0) / 81559.0 * 1000.0_f64).round() / 1000.0);
        // an RTX 4090 (24564 MiB) on 0.5.23: a 4096-token chunk and 48 graphs
        let r = 512.0 + 4096.0 * 1.5 + 48.0 * 2.0 + 128.0 + 58.0_f64.min(piecewise_graph_tokens(4096) as f64) * 8.0;
        assert_eq!(default_fraction((0, 5, 23), at(24564.0, 1)), ((24564.0 - r) / 24564.0 * 1000.0_f64).round() / 1000.0);
        assert!(default_fraction((0, 5, 23), at(24564.0, 1)) < 0.75);
        // a chunk given on the command line replaces the board's in the reserve: 2048 tokens on
        // an H100 at 0.5.8 reserve 512 + 3072 + 512 + 128 MiB, below the 10 GiB floor
        assert_eq!(default_fraction((0, 5, 8), FractionInputs { chunk: Some(2048), ..at(81559.0, 1) }), ((81559.0 - 10240.0) / 81559.0 * 1000.0_f64).round() / 1000.0);
        assert_eq!(default_fraction((0, 5, 8), FractionInputs { chunk: Some(16384), ..at(81559.0, 1) }), ((81559.0 - (512.0 + 24576.0 + 512.0 + 128.0)) / 81559.0 * 1000.0_f64).round() / 1000.0);
        // a board smaller than the reserve: no static pool, never a negative fraction
        assert_eq!(default_fraction((0, 5, 23), at(2048.0, 1)), 0.0);
        assert_eq!(default_fraction((0, 4, 9), at(2048.0, 1)), 0.0);
    }
}
