//! vLLM, V1 (default) and V0. Source: `vllm/v1/worker/gpu_worker.py::determine_available_memory`,
//! `vllm/v1/core/kv_cache_utils.py`, `vllm/worker/worker.py` (V0), `vllm/engine/arg_utils.py`.
//!
//! `kv_pool = total x gpu_memory_utilization - weights - activation peak - non-torch memory`
//! (from v0.20 also minus the estimated CUDA-graph memory, `VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`
//! on by default in the 0.20.0 wheel; before, graphs are captured after the
//! KV cache, outside the budget; from v0.27, on Model Runner V2, also minus the sampler's
//! per-request state, [`mrv2_sampler_state_bytes`]). `num_blocks = floor(kv_pool / (block_size x bytes_per_token))`,
//! "GPU KV cache size" = `num_blocks x block_size`, concurrency = tokens / `max_model_len`.
//! The profiling batch: V1 runs `max_num_batched_tokens` tokens (API-server default 8192 on
//! GPUs of at least 70 GiB other than A100, from 0.28 16384 on those of 160 GiB, else 2048,
//! earlier versions differ: [`v1_batch_defaults`]) and
//! a sampler over `max_num_seqs` rows (1024 / 256), whose bytes per logit follow the version and
//! the model runner ([`sampler_path`]);
//! V0 runs `max(max_model_len, 2048)` tokens (with chunked prefill, on by default above 32K from
//! 0.5.3 except for multimodal and sliding-window models, 2048, or 512 before 0.6.5)
//! and a sampler over 256 rows. While the sampler runs, the batch's forward output (tokens x
//! hidden) is still held (V0, and V1 from 0.9.2). The peak is the larger of the forward pass and
//! the sampler with that output.
//! V0 before 0.6.4 budgets with the drop in free memory over the profile, so with `tp > 1` the
//! all-reduced activations PyTorch holds for NCCL's stream count too ([`v0_held_all_reduce`]).
//! V1 groups hybrid layers into pages shared by groups of equal layer count (from 0.12 a layer
//! kind with smaller pages takes proportionally larger blocks, so that every page is the same
//! size): a sliding-window layer holds `cdiv(min(window - 1 + max_num_batched_tokens, len), block)
//! + 1` blocks per request, recurrent layers their state; V0 sizes every layer at full length.
//! "Model loading took" is the checkpoint's bytes plus what vLLM builds at load: the rotary
//! cos/sin cache, and for MXFP4 MoE checkpoints the kernel layout of the experts, which follows
//! the GPU (`mxfp4.py`: Marlin pads on Ampere/Ada, Triton on Hopper keeps a second copy of the
//! scales, padded to 256 rows; see [`Mxfp4Backend`]).

use super::{gib, parse_semver, Ctx, EngineReport};
use crate::activation::{forward_peak, sampler_peak};
use crate::dtype::Quant;
use crate::error::Result;
use crate::model::{ModelShape, Role, Split, Window};
use crate::weights::WeightPlan;
use crate::scenario::Engine;
use crate::units::{count, Bytes, Figure, GIB};

/// Non-torch memory on one GPU (CUDA context, cuBLAS workspaces outside PyTorch's allocator) as
/// vLLM reports it: 0.6.x logs show 0.26 to 0.35 GiB (three logs, mean 0.31), 0.8 and later
/// 0.06 to 0.13 GiB (four logs, mean 0.1); the profiler's baseline moved between the two.
pub const NON_TORCH_SINGLE_GIB: f64 = 0.1;
/// Non-torch memory before v0.7 (see [`NON_TORCH_SINGLE_GIB`]).
pub const NON_TORCH_SINGLE_GIB_V06: f64 = 0.3;
/// Extra non-torch memory per GPU when `tp > 1` (NCCL communicators and vLLM's custom all-reduce
/// buffers), by the fabric between the GPUs; see [`non_torch_tp_gib`].
/// On an NVSwitch of Hopper or later GPUs NCCL adds NVLink SHARP buffers: vLLM PR 10511 logs
/// +1.79 GiB from TP1 to TP2 on H100 SXM (0.6.5), PR 21429 logs 2.04 GiB non-torch in all at TP4
/// on H200 (0.10, Qwen3-235B-A22B-FP8).
pub const NON_TORCH_TP_NVLS_GIB: f64 = 1.9;
/// Without a switch (PCIe, NVLink bridges): a vLLM 0.8 log of TP on RTX 3090s (PR 14447) shows
/// 0.20 GiB non-torch in all, 0.1 above one GPU's.
pub const NON_TORCH_TP_P2P_GIB: f64 = 0.1;
/// A100 on an NVSwitch (no NVLS), AMD, or a custom GPU whose fabric is unknown: not measured;
/// between the two above.
pub const NON_TORCH_TP_OTHER_GIB: f64 = 0.5;

/// Extra non-torch GiB per GPU when `tp > 1`, by the catalog GPU's fabric (custom GPUs: unknown).
pub fn non_torch_tp_gib(gpu: Option<&crate::gpu::Gpu>) -> f64 {
    use crate::gpu::Fabric;
    match gpu {
        Some(g) if g.nvswitch_hopper_or_later() => NON_TORCH_TP_NVLS_GIB,
        Some(g) if g.fabric == Fabric::PointToPoint => NON_TORCH_TP_P2P_GIB,
        _ => NON_TORCH_TP_OTHER_GIB,
    }
}
/// Custom all-reduce's largest tensor (`max_size`, 8 MiB, from 0.3.0): larger all-reduces of an
/// eager forward go through NCCL.
pub const CUSTOM_ALL_REDUCE_MAX_BYTES: u64 = 8 << 20;

/// What V0 before 0.6.4 keeps reserved, under tensor parallelism, for the all-reduces of its
/// profiling prefill: `(bytes, tensors held at the end, all-reduces in the forward)`.
///
/// Those versions budget with the drop in free memory over the profile (`init_gpu_memory - free`,
/// `worker.py` 0.3 to 0.6.3; `total - free` in 0.2), with no `empty_cache` before reading it, so
/// blocks the caching allocator keeps reserved count. Eager all-reduces above custom all-reduce's
/// 8 MiB (all of them before 0.3) go through `torch.distributed.all_reduce` (pynccl is enabled
/// only while CUDA graphs are captured), and PyTorch's `ProcessGroupNCCL::collective` records
/// each input on NCCL's stream (`recordStream`): a freed block so recorded is not reused until
/// that stream has passed it. The CPU launches the whole prefill long before the GPU finishes its
/// first layers, so every all-reduced activation (`tokens x hidden`: the vocab-parallel
/// embedding's and two per layer, attention's and the MLP's outputs) keeps its own block. When
/// the next one does not fit in `room` (the memory beside the weights, the non-torch memory and
/// the forward's working set), PyTorch synchronises, releases its cache (`release_cached_blocks`)
/// and the count starts again.
///
/// The vLLM PR 2031 figures fit this: Llama-2-70B at TP4 on A100s, 4096 profile tokens, 161
/// all-reduces of 64 MiB (10.06 GiB); the free-memory measure gave 31615 - 20865 = 10750 blocks
/// (13.1 GiB per GPU) less than the allocated peak, where Llama-2-7B on one GPU lost 98 (0.77 GiB).
pub fn v0_held_all_reduce(ver: (u64, u64, u64), tp: u64, tokens: u64, hidden: u64, act_bytes: u64, layers: u64, room: u64) -> (u64, u64, u64) {
    if tp <= 1 || ver >= (0, 6, 4) {
        return (0, 0, 0);
    }
    let size = tokens.saturating_mul(hidden).saturating_mul(act_bytes);
    if size == 0 || (ver >= (0, 3, 0) && size <= CUSTOM_ALL_REDUCE_MAX_BYTES) {
        return (0, 0, 0);
    }
    let n = layers.saturating_mul(2).saturating_add(1);
    // the segments `k` of them reserve, and how many fit in `room` before a release
    let held = |k: u64| crate::allocator::reserved_for(std::iter::repeat(size).take(k as usize));
    let fit = crate::estimate::largest(0, n, |k| held(k) <= room).unwrap_or(0);
    if fit == 0 {
        return (0, 0, n);
    }
    // each release happens at the allocation after `fit`, which then starts the new count (all
    // `n` when they fit)
    let end = (n - 1) % fit + 1;
    (held(end), end, n)
}

/// CUDA-graph memory per decoder layer on a GPU (modelled): vLLM captures one piecewise graph per
/// layer and batch size and full graphs whose nodes grow with the layers. The median over twelve
/// logs at the default capture sizes (`Estimated CUDA graph memory` of 0.19 to 0.26 and `Graph
/// capturing ... took` of 0.11 to 0.26: Qwen3-0.6B to Qwen2.5-72B, 28 to 80 layers, 0.10 to 2.73
/// GiB) is 18.5 MiB per layer; half the logs lie within a factor 1.5 of it, the extremes at 0.2x and
/// 3.6x (Qwen3-8B on an A100: 2.35 GiB). Mean absolute error 0.41 GiB, against 0.55 GiB for the
/// flat 0.5 GiB it replaces. The logs: seven estimates (the validation cases tokenkaki Qwen3-8B
/// 0.19.1 and gnosia93 Qwen2.5-72B TP4, and Qwen2.5-VL-7B 0.23, Qwen2.5-Omni-7B 0.21, Qwen3-0.6B
/// W4A16 0.19.1 twice and Gemma 4 31B 0.26, public logs found by their text) and five captures (the
/// `cuda_graph_gib` of the llm-d Qwen3-0.6B and gpt-oss-120b, demoenvl4 Llama-3.1-8B, kagaho
/// Llama-3-70B AWQ TP2 and kvcachelab Qwen2.5-7B AWQ cases).
pub const CUDA_GRAPH_MIB_PER_LAYER: f64 = 18.5;

/// The batch sizes V1 captures CUDA graphs for (`config/vllm.py::_set_cudagraph_sizes`, read in
/// the 0.19 and 0.27 wheels): up to `min(2 x max_num_seqs, 512, max_num_batched_tokens)`, the
/// sizes 1, 2, 4, every 8 below 256 and every 16 from 256, and `max_num_batched_tokens` itself when
/// it is below that bound. The defaults (512) give 51 sizes.
pub fn cuda_graph_capture_sizes(max_num_seqs: u64, max_num_batched_tokens: u64) -> u64 {
    let max = max_num_seqs.saturating_mul(2).min(512).min(max_num_batched_tokens).max(1);
    let mut sizes: Vec<u64> = [1, 2, 4].into_iter().chain((8..256).step_by(8)).chain((256..=512).step_by(16)).filter(|&i| i <= max).collect();
    if max_num_batched_tokens <= max && !sizes.contains(&max_num_batched_tokens) {
        sizes.push(max_num_batched_tokens);
    }
    sizes.len() as u64
}

/// The capture sizes [`CUDA_GRAPH_MIB_PER_LAYER`] was measured at (the defaults: up to 512).
pub const DEFAULT_CUDA_GRAPH_SIZES: u64 = 51;

/// The kernel family vLLM's MXFP4 MoE method picks (`quantization/mxfp4.py::get_mxfp4_backend`),
/// by compute capability: Triton kernels on 9.x (from 0.11, see [`mxfp4_backend`]) and 10.x without
/// FlashInfer, FlashInfer on 10.x (bundled in vLLM's images), Marlin elsewhere (Ampere, Ada,
/// consumer Blackwell, Hopper before 0.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mxfp4Backend {
    /// Marlin: per-rank intermediate size padded to 128, hidden size to 256.
    Marlin,
    /// Triton `matmul_ogs`: weights and scales swizzled into new tensors (the scales padded to
    /// the Hopper layout's 256 rows, [`hopper_swizzled_scale_bytes`]), the checkpoint-layout
    /// scale tensors stay registered, expert biases become fp32; intermediate padded to 64.
    Triton,
    /// FlashInfer on SM100: intermediate and hidden padded to 256.
    FlashInferSm100,
}

/// Hopper takes the Triton kernels only when the `triton_kernels` package is there (0.10.1's
/// `_should_use_marlin`), which vLLM's wheel bundles from 0.12 (neither the wheels nor the
/// Dockerfile of 0.10.1 to 0.11.0 install it). Logs of gpt-oss-120b on an H100: Marlin's layout
/// under 0.10.1 (65.97 GiB) and a plain ~0.11 install (issue 27508), Triton's in the llm-d
/// benchmark's ~0.11 runs (64.38 GiB) and 0.14.1. 0.11 is taken as the first version with them,
/// which keeps the benchmark's runs and misses plain 0.11 installs by 1.7 GiB. A GPU of unknown
/// compute capability (custom memory) is taken for Hopper.
fn mxfp4_backend(compute_capability: Option<u32>, ver: (u64, u64, u64)) -> Mxfp4Backend {
    match compute_capability {
        Some(100..=109) => Mxfp4Backend::FlashInferSm100,
        Some(90..=99) | None if ver >= (0, 11, 0) => Mxfp4Backend::Triton,
        _ => Mxfp4Backend::Marlin,
    }
}

/// Architectures whose vLLM model declares `embedding_modules` (`embed_tokens`, `lm_head`), so
/// that `--enable-lora` also wraps the token embedding and the logits (Llama, Mistral, Mixtral,
/// Phi-3); others (Qwen2, ...) get LoRA on their linear layers only.
const LORA_EMBEDDING_ARCHS: &[&str] = &["llama", "mistral", "mixtral", "phi3"];

/// The LoRA slots vLLM allocates at load with `--enable-lora` (`lora/layers`,
/// `create_lora_weights`; read in the 0.8.2, 0.10.1, 0.11, 0.12, 0.20 and 0.33 wheels), on the GPU
/// holding the most, in the model dtype, all inside "Model loading took":
/// - every linear layer, per slot (`--max-loras`) and per packed slice (q, k and v; gate and up;
///   Phi-3 packs `qkv_proj` and `gate_up_proj` as one slice each): `A = rank x input` and
///   `B = output x rank`, sharded as the layer is (column-parallel: B's output; row-parallel:
///   A's input); the router gate too; routed experts from 0.11.1 (`FusedMoEWithLoRA`, the
///   experts this GPU holds);
/// - with `embedding_modules` ([`LORA_EMBEDDING_ARCHS`]), the embedding `A = vocab x rank`,
///   `B = hidden x rank` and the logits `A = rank x hidden`, `B = vocab x rank`, whole on every
///   rank; before 0.12 the vocabulary there counts `lora_extra_vocab_size` (256) added tokens
///   (the logits' padded to 256), each slot keeps the added tokens' embeddings (`256 x hidden`,
///   embedding and logits), and the base embedding grows by `256 x slots` rows and the LM head
///   by 256 (padded to 64 and 256; a tied head is the embedding), sharded over TP.
///
/// The punica wrapper's index buffers (about 64 B per batched token) are left out. Returns
/// `(bytes, what)`.
pub fn lora_slot_bytes(shape: &ModelShape, plan: &WeightPlan, ex: crate::weights::ExpertSplit, tp: u64, pp: u64, rank: u64, slots: u64, ver: (u64, u64, u64)) -> (u64, String) {
    let tp = tp.max(1) as u128;
    let b = plan.activation.bytes() as u128;
    let (r, m) = (rank as u128, slots as u128);
    let phi3 = shape.model_type == "phi3";
    let experts = ver >= (0, 11, 1);
    let ends_apply = LORA_EMBEDDING_ARCHS.contains(&shape.model_type.as_str());
    let extra: u128 = if ver < (0, 12, 0) { 256 } else { 0 };
    let (h, v) = (shape.hidden_size as u128, shape.vocab_size as u128);
    let pad = |x: u128, a: u128| x.div_ceil(a) * a;
    let stages = crate::weights::pp_partition(shape.num_layers(), pp.max(1));
    let last = stages.len().saturating_sub(1);
    // (total, linear layers, embedding and logits) of the stage holding the most
    let mut best: (u128, u128, u128) = (0, 0, 0);
    let mut start = 0usize;
    for (i, n) in stages.into_iter().enumerate() {
        let (lo, hi) = (start, start + n as usize);
        start = hi;
        let mut layers: u128 = 0;
        for (layer, copies) in shape.runs_in(lo, hi) {
            let mut one: u128 = 0;
            for t in &layer.tensors {
                let wrapped = match t.role {
                    Role::AttnQ | Role::AttnKv | Role::AttnO | Role::Mlp | Role::SharedExpert | Role::Router => true,
                    Role::Expert => experts,
                    _ => false,
                };
                if !wrapped {
                    continue;
                }
                let (rows, cols, count) = if t.role == Role::Expert { ex.shard(t) } else { (t.shard(tp as u64).0, t.shard(tp as u64).1, t.count) };
                // A's input width, once per packed slice, and B's output rows on this GPU
                let fused_gate_up = t.name.ends_with("gate_up_proj");
                let a_slices: u128 = match t.role {
                    Role::AttnKv if phi3 => 0,
                    _ if fused_gate_up && !phi3 => 2,
                    _ => 1,
                };
                let a_in = if t.split == Split::Row { cols } else { t.cols } as u128;
                let b_out = if t.split == Split::Row { t.rows } else { rows } as u128;
                one += count as u128 * r * (a_slices * a_in + b_out);
            }
            layers += one * copies as u128;
        }
        let mut ends: u128 = 0;
        if ends_apply {
            if i == 0 {
                ends += m * ((v + extra) * r + h * r + extra * h) + (pad(pad(v, 64) + extra * m, 64) - pad(v, 64)) * h / tp;
            }
            if i == last {
                let logits_rows = if extra > 0 { pad(v + extra, 256) } else { v };
                ends += m * (r * h + logits_rows * r + extra * h);
                // a tied head is the embedding's weight, already grown above
                if shape.globals.iter().any(|t| t.role == Role::LmHead) {
                    ends += (pad(pad(v, 256) + extra, 256) - pad(v, 64)) * h / tp;
                }
            }
        }
        let total = layers * m + ends;
        if total > best.0 {
            best = (total, layers * m, ends);
        }
    }
    let bytes = (best.0 * b).min(u64::MAX as u128) as u64;
    let what = format!(
        "{m} slot(s) of rank {r} on the linear layers{} ({} values){} x {b} B",
        if experts && shape.moe.is_some() { " and experts" } else { "" },
        best.1,
        if best.2 > 0 { format!(" + embedding and logits{} ({} values)", if extra > 0 { " with 256 added tokens" } else { "" }, best.2) } else { String::new() }
    );
    (bytes, what)
}

/// Bytes per GPU that vLLM's MXFP4 MoE layout adds to the checkpoint's expert tensors
/// (exact for a given backend; the backend follows the GPU, Hopper when the GPU is custom).
/// Marlin on an A100 turns gpt-oss-20b's 12.8 GiB into vLLM's logged 13.7 GiB. With
/// `hopper_value_pad` (the Triton kernels' `HopperMXValueLayout` from vLLM 0.17, whose
/// `swizzle_data` pads both dimensions of the packed values to 64 before swizzling: the bytes of
/// the input width and the output rows) the values grow too: gpt-oss-20b split over two H100s
/// under 0.19 pads the 1440- and 736-byte rows to 1472 and 768, 0.13 GiB per GPU.
fn mxfp4_relayout_extra(shape: &ModelShape, plan: &WeightPlan, ex: crate::weights::ExpertSplit, backend: Mxfp4Backend, hopper_value_pad: bool) -> u64 {
    let Some(q @ Quant::Mxfp4 { .. }) = &plan.quant else { return 0 };
    let (pad_i, pad_h) = match backend {
        Mxfp4Backend::Marlin => (128, 256),
        Mxfp4Backend::Triton => (64, 1),
        Mxfp4Backend::FlashInferSm100 => (256, 256),
    };
    let up = |x: u64, a: u64| x.div_ceil(a).saturating_mul(a);
    let mut extra: u128 = 0;
    for (layer, n) in shape.runs_all() {
        let mut per_layer: u128 = 0;
        for t in &layer.tensors {
            let (rows, cols, count) = ex.shard(t);
            let count = count as u128;
            match t.role {
                Role::Expert => {
                    // fused gate/up (column split): rows = 2 x intermediate per rank, cols = hidden;
                    // down (row split): rows = hidden, cols = intermediate per rank
                    let (pr, pc) = if t.split == Split::Column { (2 * up(rows / 2, pad_i), up(cols, pad_h)) } else { (up(rows, pad_h), up(cols, pad_i)) };
                    per_layer += count * (q.matrix_bytes(pr, pc) - q.matrix_bytes(rows, cols)) as u128;
                    if hopper_value_pad {
                        // the packed values, `pr` rows of `pc / 2` bytes, padded to 64 both ways
                        let bytes = pc.div_ceil(2);
                        per_layer += count * (up(bytes, 64) as u128 * up(pr, 64) as u128 - bytes as u128 * pr as u128);
                    }
                    if backend == Mxfp4Backend::Triton {
                        // the checkpoint-layout scales stay registered beside the swizzled ones
                        per_layer += count * hopper_swizzled_scale_bytes(pr, pc) as u128;
                    }
                }
                Role::Bias if t.count > 1 && backend == Mxfp4Backend::Triton => {
                    // expert biases: bf16 in the checkpoint, fp32 after loading
                    per_layer += count * rows as u128 * cols as u128 * 2;
                }
                _ => {}
            }
        }
        extra += per_layer * n as u128;
    }
    u64::try_from(extra).unwrap_or(u64::MAX)
}

/// Bytes of one expert's MXFP4 scales for a `rows x cols` weight in the Hopper layout of the
/// Triton kernels (`triton_kernels` `HopperMXScaleLayout`, which vLLM calls with 8 warps): the
/// `rows x cols/32` scale matrix is padded to a multiple of `2 x 8 warps x 2 x 8 = 256` rows and
/// of 2 scale columns before it is swizzled. gpt-oss-120b's down projection has 2880 rows, so
/// its swizzled scales hold 3072 (0.12 GiB more over the model than the checkpoint's scales).
fn hopper_swizzled_scale_bytes(rows: u64, cols: u64) -> u64 {
    const ALIGN_ROWS: u64 = 2 * 8 * 2 * 8;
    let scale_cols = cols.div_ceil(32);
    let padded_rows = rows.div_ceil(ALIGN_ROWS).saturating_mul(ALIGN_ROWS);
    padded_rows.saturating_mul(scale_cols.div_ceil(2).saturating_mul(2))
}

/// V1's API-server defaults for `(max_num_batched_tokens, max_num_seqs)`, which size the
/// profiling batch (`arg_utils.py::_set_default_args_v1`), by version and GPU:
/// - 0.7.1 (PR 12369): 8192 tokens on H100/H200 (by device name), 2048 elsewhere; 1024 sequences;
/// - 0.8.4 (PR 16158): 256 sequences except on H100/H200;
/// - 0.8.5 (PR 17073): 8192 tokens and 1024 sequences on every GPU of 70 GiB or more;
/// - 0.9.0 (PR 17885): ... except the A100;
/// - 0.28.0: 16384 tokens and 1024 sequences on every GPU of 160 GiB or more (B200, MI300X),
///   A100 or not. (0.33 also keeps the GB10 of a DGX Spark on the small tier; the catalog has no
///   GB10, and a custom size of its 119 GiB counts as an H100-class board.)
///
/// A custom GPU has no name: 70 GiB or more counts as an H100-class board.
pub fn v1_batch_defaults(ver: (u64, u64, u64), memory_gib: f64, gpu: Option<&crate::gpu::Gpu>) -> (u64, u64) {
    let big = memory_gib >= 70.0;
    let hopper_name = gpu.map_or(big, |g| g.id.starts_with("h100") || g.id == "h200");
    let a100 = gpu.is_some_and(|g| g.id.starts_with("a100"));
    if ver >= (0, 28, 0) && memory_gib >= 160.0 {
        return (16384, 1024);
    }
    if ver < (0, 7, 1) {
        (2048, 1024)
    } else if ver < (0, 8, 4) {
        (if hopper_name { 8192 } else { 2048 }, 1024)
    } else if ver < (0, 8, 5) {
        if hopper_name { (8192, 1024) } else { (2048, 256) }
    } else if big && (ver < (0, 9, 0) || !a100) {
        (8192, 1024)
    } else {
        (2048, 256)
    }
}

/// Whether vLLM runs the model on Model Runner V2, whose dummy sampler run sets no top-k/top-p
/// before 0.33 ([`sampler_path`]) (`config/vllm.py`): Qwen3 dense from 0.22, Llama and Mistral from 0.23 (unquantised), some MoE
/// architectures from 0.24, every non-MoE non-recurrent model from 0.25, everything from 0.29.
pub fn model_runner_v2(ver: (u64, u64, u64), shape: &ModelShape, quantised: bool) -> bool {
    let t = shape.model_type.as_str();
    let moe = shape.moe.is_some();
    let listed_moe = matches!(t, "deepseek_v2" | "qwen2_moe" | "granitemoe");
    if ver >= (0, 25, 0) {
        ver >= (0, 29, 0) || (!moe && !shape.has_recurrent_state()) || listed_moe
    } else {
        (ver >= (0, 24, 0) && listed_moe)
            || (ver >= (0, 23, 0) && matches!(t, "llama" | "mistral") && !quantised)
            || (ver >= (0, 22, 0) && t == "qwen3" && !quantised)
    }
}

/// Model Runner V2's persistent sampler state on each GPU, as the profiler counts it: from 0.27
/// `memory_profiling` takes the drop in free memory since start-up (`total_consumed`), which
/// includes the buffers the sampler allocates after the weights load (`sample/penalties.py`:
/// `output_bin_counts`, `max_num_seqs x vocab` int32, and `prompt_bin_mask`, `max_num_seqs x
/// ceil(vocab / 32)` int32); before, only the profile run's peak above its start counted. The
/// other per-request buffers (logit bias, stop and bad-word ids, under 20 KiB a request) are left out.
pub fn mrv2_sampler_state_bytes(ver: (u64, u64, u64), max_num_seqs: u64, vocab: u64) -> u64 {
    if ver < (0, 27, 0) {
        return 0;
    }
    let per_request = vocab.saturating_mul(4).saturating_add(vocab.div_ceil(32).saturating_mul(4));
    max_num_seqs.saturating_mul(per_request)
}

/// How vLLM's dummy sampler run keeps its logits ([`sampler_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerPath {
    /// Bytes per sampler row and vocabulary entry.
    pub per_logit: u64,
    /// Which tensors those are, for the explanation.
    pub why: &'static str,
    /// The Triton top-k/top-p kernel runs, with its per-program scratch buffer
    /// ([`triton_filter_buffer_bytes`]).
    pub triton_filter: bool,
}

/// SMs taken for a GPU the catalog does not know, when a kernel sizes a buffer by them: an
/// H100's 132 (the most common board in public vLLM logs).
pub const DEFAULT_SM_COUNT: u64 = 132;

/// Rows of the scratch buffer of vLLM's Triton top-k/top-p kernel (`topk_topp_triton.py`, 0.17
/// on), one per program: `min(next_power_of_2(min(SMs, rows)), SMs)`.
pub fn triton_filter_rows(sms: u64, rows: u64) -> u64 {
    let programs = sms.min(rows);
    if programs == 0 {
        return 0;
    }
    programs.checked_next_power_of_two().unwrap_or(u64::MAX).min(sms)
}

/// That buffer in bytes: a float32 vocabulary row per [`triton_filter_rows`], allocated by the
/// dummy sampler run and cached for the life of the process, so the profile's peak counts it
/// (132 SMs x 262,144 vocab: 132 MiB on an H100).
pub fn triton_filter_buffer_bytes(sms: u64, rows: u64, vocab: u64) -> u64 {
    triton_filter_rows(sms, rows).saturating_mul(vocab).saturating_mul(4)
}

/// Bytes per logit of vLLM's dummy sampler run, why, and whether the Triton top-k/top-p kernel
/// (with its scratch buffer) runs (`sampler.py`, `topk_topp_sampler.py`):
/// V0 and V1 0.8 to 0.16 sort for top-k/top-p ([`crate::activation::SAMPLER_BYTES_PER_LOGIT`]);
/// V1 0.7 computes the logits only; from 0.17 the Triton top-k/top-p filters without sorting for
/// 8 rows or more ([`crate::activation::SORT_FREE_BYTES_PER_LOGIT`]; 0.21's second, seeded run
/// takes the same path). Model Runner V2 (`worker/gpu/sample/sampler.py`) profiles no
/// top-k/top-p before 0.33: 0.22 to 0.25 copy the logits to fp32 for every batch; 0.26 works in
/// place, and from 0.27 the copy is made only for requests that need processing, which the dummy
/// ones do not: the logits alone. 0.33 adds a warm-up pass with top-k, top-p and penalties for
/// every row, through FlashInfer's sampler by default on CUDA GPUs of compute capability 8.0 to
/// 12.1 (bf16 logits, fp32 copy, masked logits, probabilities: 14 B, as the Triton path's count);
/// elsewhere (Turing, Volta, ROCm) the Triton top-k/top-p filters the fp32 copy in place (6 B).
/// `cc` is the board's compute capability x 10 (0 on ROCm); `None` for a size on no known board,
/// taken as a FlashInfer GPU.
///
/// `flashinfer` is the scenario's FlashInfer sampler setting (`None`: the version's default for a
/// pip install). V1 0.8 to 0.11 take FlashInfer's `top_k_top_p_sampling_from_logits` whenever
/// FlashInfer is installed (`topk_topp_sampler.py`: `VLLM_USE_FLASHINFER_SAMPLER` unset counts as
/// yes; the dummy run passes no generators), which masks and normalises without sorting: the
/// sort-free 14 B; vLLM's wheels list FlashInfer as an extra until 0.12, so the default is the sort.
/// From 0.12 the kernels are opt-in (`VLLM_USE_FLASHINFER_SAMPLER=1`); on Model Runner V2 from
/// 0.33 they are the default, and `off` is the Triton path. V0 is not modelled with them.
pub fn sampler_path(v0: bool, ver: (u64, u64, u64), shape: &ModelShape, quantised: bool, rows: u64, act_bytes: u64, cc: Option<u32>, flashinfer: Option<bool>) -> SamplerPath {
    use crate::activation::{SAMPLER_BYTES_PER_LOGIT as SORT, SORT_FREE_BYTES_PER_LOGIT as SORT_FREE};
    if v0 {
        return SamplerPath { per_logit: SORT, why: "V0 sorts the logits for top-k/top-p (bf16 logits, fp32 copy, sorted values and int64 indices, softmax, cumulative sum, mask, probabilities, exponential draw)", triton_filter: false };
    }
    if ver < (0, 8, 0) {
        return SamplerPath { per_logit: act_bytes, why: "V1 before 0.8 computes the logits but runs no dummy sampler", triton_filter: false };
    }
    if model_runner_v2(ver, shape, quantised) {
        if ver >= (0, 33, 0) {
            if cc.is_some_and(|c| !(80..=121).contains(&c)) {
                return SamplerPath { per_logit: act_bytes + 4, why: "Model Runner V2 from 0.33 warms the sampler up with top-k/top-p on every row; without FlashInfer's sampler (compute capability outside 8.0 to 12.1, or ROCm) the Triton top-k/top-p filters the fp32 copy in place: bf16 logits and their fp32 copy", triton_filter: true };
            }
            if flashinfer == Some(false) {
                return SamplerPath { per_logit: act_bytes + 4, why: "Model Runner V2 from 0.33 warms the sampler up with top-k/top-p on every row; with FlashInfer's sampler off (VLLM_USE_FLASHINFER_SAMPLER=0) the Triton top-k/top-p filters the fp32 copy in place: bf16 logits and their fp32 copy", triton_filter: true };
            }
            return SamplerPath { per_logit: SORT_FREE, why: "Model Runner V2 from 0.33 warms the sampler up with top-k/top-p on every row (FlashInfer: bf16 logits, fp32 copy, masked logits, probabilities)", triton_filter: false };
        }
        if ver >= (0, 26, 0) {
            return SamplerPath { per_logit: act_bytes, why: "Model Runner V2 profiles no top-k/top-p and, from 0.26, makes no fp32 copy for the dummy requests: the logits alone", triton_filter: false };
        }
        return SamplerPath { per_logit: act_bytes + 4, why: "Model Runner V2 before 0.26 profiles no top-k/top-p: the logits and their fp32 copy", triton_filter: false };
    }
    if flashinfer == Some(true) && cc != Some(0) {
        return SamplerPath { per_logit: SORT_FREE, why: "FlashInfer's top-k/top-p sampler (installed, which 0.8 to 0.11 use when present, or VLLM_USE_FLASHINFER_SAMPLER=1 from 0.12) masks without sorting: bf16 logits, fp32 copy, masked logits, probabilities", triton_filter: false };
    }
    if ver >= (0, 17, 0) && rows >= 8 {
        return SamplerPath { per_logit: SORT_FREE, why: "from 0.17 the Triton top-k/top-p filters without sorting: bf16 logits, fp32 copy, probabilities, exponential draw", triton_filter: true };
    }
    SamplerPath { per_logit: SORT, why: "top-k/top-p by sort (bf16 logits, fp32 copy, sorted values and int64 indices, softmax, cumulative sum, mask, probabilities, exponential draw), as vLLM runs it without FlashInfer's sampler; with it (FlashInfer installed, as in vLLM's images, for 0.8 to 0.11; VLLM_USE_FLASHINFER_SAMPLER=1 from 0.12) 24 B less a logit", triton_filter: false }
}

/// The newest vLLM release whose start-up this profile follows, the default version (release
/// notes and wheel sources read up to it: batch defaults, utilisation, Model Runner V2, sampler,
/// memory accounting, default context).
pub const NEWEST_VLLM: &str = "0.33.0";
/// The newest vLLM release with the V0 engine the V0 profile follows (V0 was removed in 0.11).
pub const NEWEST_VLLM_V0: &str = "0.8.5";

/// What vLLM V1's `profile_run` adds for a multimodal model before its text forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderProfile {
    /// Items of the largest kind it runs: `max(max_num_batched_tokens, tokens_per_item) /
    /// tokens_per_item`, at least one, at most `max_num_seqs` prompts' worth.
    pub items: u64,
    /// Their inputs (float32 before 0.9.1, then in the model dtype) and the embeddings the tower
    /// returns, held in the encoder cache through the text model's dummy forward.
    pub held: u64,
    /// The tower's own peak: the inputs plus the larger of its attention and MLP working sets.
    pub forward_peak: u64,
    /// The arithmetic, for the explanation.
    pub how: String,
    /// The item it runs ([`VisionDummy::what`](crate::model::VisionDummy::what), or the early video).
    pub what: String,
}

/// The encoder part of V1's profile (`profile_run`: `_get_mm_dummy_batch`, `embed_multimodal`,
/// the outputs kept in `encoder_cache` until after `_dummy_run`). The budget is
/// `compute_mm_encoder_budget`'s `max(max_num_batched_tokens, tokens per item)`, divided by the
/// tokens per item rounding down from 0.10 (`MultiModalBudget`) and up before (`cdiv`); the
/// decoder side allows `max_num_seqs` prompts of `max(1, max_model_len / tokens per item)` items.
/// Qwen2-VL's and Qwen2.5-VL's largest item is a video whose length follows a length
/// (`get_num_frames_with_most_features`): the budget counts `max_model_len`'s, the tower runs
/// `max_num_batched_tokens`' before 0.11 and `max_model_len`'s from it, so a long context
/// profiles a long video: at the default 128,000 tokens of Qwen2.5-VL-7B, 14 frames of 16,384
/// tokens a pair. InternVL's video of single-tile frames and GLM-4.xV's (`arch::glm4v`) follow
/// the same two lengths. Qwen3-VL's and
/// Qwen3.5's is a 4096 x 4096 image from 0.13; 0.11 and 0.12 count a video's embeddings 12.5
/// times in the budget (`get_max_video_tokens`, for its timestamps), so they profile one video:
/// two frames of 3520 x 3520 below a `max_model_len` of 16,200, else 24,576 frames of 32 x 32.
///
/// The tower's working set counts the tensors a ViT layer keeps alive over `patches x width x act
/// bytes` (U): the layer input and its norm (2U) and, divided over the TP ranks, at attention the
/// fused qkv (3U) with either the attention output (U) or, for a tower that applies rotary
/// positions in float32 (Qwen2-VL's `apply_rotary_pos_emb_vision`), the contiguous q, k and v
/// (3U) and the rotary step's float32 copy, result and cast (5U); at the MLP the intermediate
/// and its activation (two, or three for a gated MLP, of `patches x mlp_width`). Modelled, not
/// exact: public logs put Qwen2-VL-2B's peak at 2.65 GiB where this gives 2.17.
pub fn encoder_profile(d: &crate::model::VisionDummy, ver: (u64, u64, u64), batch_tokens: u64, max_num_seqs: u64, max_model_len: u64, act_bytes: u64, tp: u64) -> EncoderProfile {
    // two lengths set a video's frames (`get_num_frames_with_most_features`): the budget's largest
    // item (`get_max_tokens_per_item_by_modality`: `max_model_len` with one item of every modality,
    // so less one largest image before 0.10.2) sets how many items are profiled and which
    // modality; the dummy batch (`_get_mm_dummy_batch`) builds the item for its modality alone,
    // with `seq_len` the scheduler's `max_num_batched_tokens` before 0.11.0, `max_model_len` from it
    let budget_room = |image_tokens: u64| if ver < (0, 10, 2) { max_model_len.saturating_sub(image_tokens) } else { max_model_len };
    let (dummy_room, dummy_len) = if ver < (0, 11, 0) { (batch_tokens, "max_num_batched_tokens") } else { (max_model_len, "max_model_len") };
    // Qwen3-VL / 3.5 before 0.13: the dummy video, which the budget counts as the largest item
    let early = if ver < (0, 13, 0) { d.early_videos.iter().rfind(|v| v.min_model_len <= max_model_len) } else { None };
    // InternVL's video of single-tile frames, profiled when the budget's has more tokens than the
    // largest image
    let frames = d.frame_video.as_ref().filter(|f| ver >= f.from).and_then(|f| {
        let per_frame = f.tokens_per_frame.max(1);
        let budget = (budget_room(d.tokens_per_item) / per_frame).max(1).saturating_mul(per_frame);
        (budget > d.tokens_per_item).then(|| {
            let n = (dummy_room / per_frame).max(1);
            let tokens = n.saturating_mul(per_frame);
            let what = format!("a video of {n} frames of one tile each ({dummy_len} {dummy_room} / {per_frame} tokens a frame): {tokens} tokens from {} patches; the budget counts {budget} tokens an item", n.saturating_mul(f.patches_per_frame));
            (what, budget, tokens, n.saturating_mul(f.patches_per_frame), n.saturating_mul(f.input_per_frame))
        })
    });
    // GLM-4.xV's dummy video of frames of the largest image, which outranks any image: the budget
    // counts the one for max_model_len less the largest image's tokens, the tower runs the one
    // for the dummy's length
    let glm = d.glm_video.as_ref().map(|g| {
        use crate::arch::glm4v;
        let image = glm4v::budget_image_tokens(ver, g);
        let budget = glm4v::video_item(ver, max_model_len.saturating_sub(image), g).tokens;
        // the modality with the most tokens, a tie to the video: before 0.17 the image's count
        // (5,832) beats a short context's video
        if image > budget {
            let built = glm4v::image_item(ver, g);
            let what = format!("{}; the budget counts {image} tokens for it, more than a video of max_model_len less that image ({budget})", built.what);
            return (what, image, built.tokens, built.patches, built.input_values);
        }
        let built = glm4v::video_item(ver, dummy_room, g);
        let what = format!("{} ({dummy_len} {dummy_room}); the budget counts {budget} tokens an item (max_model_len less the largest image's {image})", built.what);
        (what, budget, built.tokens, built.patches, built.input_values)
    });
    let (what, tokens_per_item, output_rows, patches_per_item, input_values) = match (early, frames.or(glm)) {
        (Some(v), _) => (v.what.clone(), v.tokens_per_item, v.output_rows, v.patches, v.input_values),
        (None, Some(f)) => f,
        (None, None) => (d.what.clone(), d.tokens_per_item, d.output_rows, d.patches, d.input_values),
    };
    // Qwen2-VL's video: as many frames as the length holds, at most 16 (14 from 0.11), in temporal
    // groups of two; at least one group (the budget's and the dummy's)
    let (budget_groups, groups) = if d.video_groups {
        let group = tokens_per_item.max(1);
        let cap = if ver >= (0, 11, 0) { 14 } else { 16 };
        let fill = |room: u64| (2 * (room / group)).min(cap).max(1).div_ceil(2);
        (fill(budget_room(group)), fill(dummy_room))
    } else {
        (1, 1)
    };
    let per = tokens_per_item.max(1).saturating_mul(budget_groups);
    let budget = batch_tokens.max(per);
    let per_prompt = (max_model_len / per).max(1);
    let fit = if ver >= (0, 10, 0) { budget / per } else { budget.div_ceil(per) };
    let items = fit.min(max_num_seqs.max(1).saturating_mul(per_prompt)).max(1);
    let items_g = items.saturating_mul(groups);
    // the processor's float32 pixels, cast to the model dtype from 0.9.1 (`call_hf_processor`
    // "emulates output.to(dtype=self.model_config.dtype)" for every floating-point tensor)
    let input_bytes = if ver >= (0, 9, 1) { act_bytes } else { 4 };
    let inputs = items_g.saturating_mul(input_values).saturating_mul(input_bytes);
    let outputs = items_g.saturating_mul(output_rows).saturating_mul(d.output_width).saturating_mul(act_bytes);
    let held = inputs.saturating_add(outputs);
    let tp = tp.max(1);
    let patches = items_g.saturating_mul(patches_per_item);
    let u = patches.saturating_mul(d.width).saturating_mul(act_bytes);
    // GLM-4.xV's tower applies its rotary positions in the model dtype from 0.12
    let rotary_f32 = d.rotary_f32 && !(d.glm_video.is_some() && ver >= crate::arch::glm4v::ROTARY_IN_MODEL_DTYPE_FROM);
    let attention_units = if rotary_f32 { 3 + 3 + 5 } else { 3 + 1 };
    // the heads' tensors are divided over the ranks, unless the tower's attention is whole on each
    let attention_tp = match d.attention_split {
        Some(crate::model::Split::Replicated) => 1,
        Some(crate::model::Split::WholeHeads { heads }) if heads % tp != 0 => 1,
        _ => tp,
    };
    let attention = u.saturating_mul(2).saturating_add(u.saturating_mul(attention_units) / attention_tp);
    let mlp_units = if d.gated_mlp { 3 } else { 2 };
    let mlp = u.saturating_mul(2).saturating_add(patches.saturating_mul(d.mlp_width).saturating_mul(act_bytes).saturating_mul(mlp_units) / tp);
    let forward_peak = inputs.saturating_add(attention.max(mlp));
    let how = format!(
        "{} of {} inputs + max(attention {}, MLP {}) over {patches} patches x {} wide{}",
        gib(inputs),
        if input_bytes == 4 { "float32" } else { "model-dtype" },
        gib(attention),
        gib(mlp),
        d.width,
        match (tp > 1, attention_tp == tp) {
            (false, _) => String::new(),
            (true, true) => format!(", split over {tp} ranks"),
            (true, false) => format!(", the MLP split over {tp} ranks, the attention whole on each"),
        }
    );
    let how = if d.video_groups { format!("{} frames in {groups} groups ({dummy_len} {dummy_room}), the budget counting {per} tokens an item; {how}", 2 * groups) } else { how };
    EncoderProfile { items, held, forward_peak, how, what }
}

/// The release a scenario without a version models: [`NEWEST_VLLM`], or [`NEWEST_VLLM_V0`] for V0.
fn newest_version(engine: Engine) -> &'static str {
    if engine == Engine::VllmV0 { NEWEST_VLLM_V0 } else { NEWEST_VLLM }
}

/// How vLLM caches an MLA model (DeepSeek V2/V3) when it does not cache the latent: `Some((dim,
/// why))` with the per-head K and V width (`None`: `qk_head_dim`), `None` when it caches the
/// 576-value latent. Before 0.7.0 `DeepseekV2Attention` pads q, k and v to 256 per head
/// (`deepseek_v2.py`/`deepseek_v3.py` 0.5 to 0.6.6); 0.7.0 pads v to `qk_head_dim`; 0.7.1 brings
/// the MLA kernels, which 0.7.1 and 0.7.2 switch off for a quantisation other than fp8
/// (`ModelConfig.use_mla`); from 0.7.3 MLA is always used.
fn mla_per_head(ver: (u64, u64, u64), quant: Option<&Quant>) -> Option<(Option<u64>, String)> {
    if ver < (0, 7, 0) {
        Some((Some(256), "vLLM before 0.7.0 has no MLA kernel: it caches every head's K and V, each padded to 256 values (deepseek_v2.py), not the 576-value latent".into()))
    } else if ver < (0, 7, 1) {
        Some((None, "vLLM 0.7.0 has no MLA kernel: it caches every head's K and V of qk_head_dim values each (V padded to it), not the 576-value latent".into()))
    } else if ver < (0, 7, 3) && quant.is_some_and(|q| !matches!(q, Quant::Fp8 { .. })) {
        Some((None, format!("vLLM {}.{}.{} switches MLA off for {} weights (only fp8 keeps it): it caches every head's K and V of qk_head_dim values each, not the 576-value latent", ver.0, ver.1, ver.2, quant.map(Quant::name).unwrap_or_default())))
    } else {
        None
    }
}

/// The multiple of values vLLM V0 0.7.2 to 0.7.x pads an MLA cache entry to on CUDA
/// (`CacheEngine._align_cache`, `VLLM_CUDA_MEM_ALIGN_KV_CACHE` on by default): 256 bytes of the
/// model dtype (`align_to_256bytes(entry, model_config.dtype)` in `get_cache_block_size`), so 576
/// values become 640 in bf16. 0.8.0 drops it; V1 never had it.
fn mla_entry_alignment(engine: Engine, ver: (u64, u64, u64), act_bytes: u64) -> Option<u64> {
    (engine == Engine::VllmV0 && ver >= (0, 7, 2) && ver < (0, 8, 0)).then(|| 256 / act_bytes.max(1))
}

/// The release from which V1 serves hybrids of attention and recurrent layers with its own KV
/// cache manager (PR 20016; Qwen3-Next from 0.10.2).
pub const MAMBA_HYBRID_V1_FROM: (u64, u64, u64) = (0, 10, 0);
/// Tokens the attention block size of a recurrent hybrid is a multiple of (the attention
/// backends' smallest kernel block on Hopper; from 0.18 a larger `--block-size` replaces it).
pub const MAMBA_BLOCK_ALIGN: u64 = 16;

/// How V1 pages a hybrid of full-attention and recurrent layers
/// (`HybridAttentionMambaModelConfig.verify_and_update_config`, from 0.18
/// `Platform._align_hybrid_block_size`), with prefix caching off (`mamba_cache_mode` none):
/// - the attention block is the smallest multiple of [`MAMBA_BLOCK_ALIGN`] tokens whose page
///   (`block x attention bytes per token and layer`) holds one layer's recurrent state, which is
///   padded to that page;
/// - the layers are cut into groups of `group_size` (the smaller kind's count, or the larger's when
///   within 1.25x from 0.12, 1.5x from 0.18), sharing `group_size` tensors: a block id is one page
///   in each, `num_blocks = pool / (page x group_size)`;
/// - a request holds `cdiv(len, block)` blocks in each attention group and one in each recurrent
///   group; "Maximum concurrency" is `num_blocks` over that sum, and "GPU KV cache size"
///   `num_blocks / groups x block` until 0.20.1, `concurrency x max_model_len` after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MambaPaging {
    /// Attention block size in tokens.
    pub block: u64,
    /// Bytes of one page (one layer's block, or one layer's padded state).
    pub page: u64,
    /// One layer's recurrent state before padding.
    pub state_page: u64,
    pub group_size: u64,
    pub attention_groups: u64,
    pub recurrent_groups: u64,
}

impl MambaPaging {
    /// `attn_per_token`: one attention layer's bytes per token; `state_per_layer`: one recurrent
    /// layer's state; `block_size`: `--block-size`.
    pub fn new(ver: (u64, u64, u64), attn_per_token: u64, attn_layers: u64, state_per_layer: u64, recurrent_layers: u64, block_size: Option<u64>) -> Option<Self> {
        if attn_per_token == 0 || attn_layers == 0 || recurrent_layers == 0 || state_per_layer == 0 {
            return None;
        }
        let align = if ver >= (0, 18, 0) { block_size.unwrap_or(0).max(MAMBA_BLOCK_ALIGN) } else { MAMBA_BLOCK_ALIGN };
        let unit = align.checked_mul(attn_per_token)?;
        let mut block = align.checked_mul(state_per_layer.div_ceil(unit))?;
        if ver < (0, 18, 0) {
            block = block.max(block_size.unwrap_or(0));
        }
        let (min, max) = (attn_layers.min(recurrent_layers), attn_layers.max(recurrent_layers));
        let within = if ver >= (0, 18, 0) { max.saturating_mul(2) < min.saturating_mul(3) } else { max.saturating_mul(4) < min.saturating_mul(5) };
        let group_size = if ver >= (0, 12, 0) && within { max } else { min };
        Some(MambaPaging {
            block,
            page: block.checked_mul(attn_per_token)?,
            state_page: state_per_layer,
            group_size,
            attention_groups: attn_layers.div_ceil(group_size),
            recurrent_groups: recurrent_layers.div_ceil(group_size),
        })
    }
    /// A model of recurrent layers only (Mamba, Mamba-2): one group of every layer, whose block
    /// is `max_model_len` tokens (`mamba_block_size` without prefix caching), so a request holds
    /// one block id: a page of each layer's state.
    pub fn recurrent_only(state_per_layer: u64, recurrent_layers: u64, max_model_len: u64) -> Option<Self> {
        (state_per_layer > 0 && recurrent_layers > 0).then_some(MambaPaging {
            block: max_model_len.max(1),
            page: state_per_layer,
            state_page: state_per_layer,
            group_size: recurrent_layers,
            attention_groups: 0,
            recurrent_groups: 1,
        })
    }
    /// The whole blocks of a pool of `pool` bytes, each block id a page in every tensor.
    pub fn block_pool(&self, pool: u64) -> super::BlockPool {
        let block_bytes = self.page.saturating_mul(self.group_size);
        super::BlockPool { num_blocks: pool / block_bytes.max(1), block_bytes, block_tokens: self.block, attention_groups: self.attention_groups, recurrent_groups: self.recurrent_groups }
    }
    /// Block ids in a pool of `pool` bytes.
    pub fn num_blocks(&self, pool: u64) -> u64 {
        self.block_pool(pool).num_blocks
    }
    /// Block ids one request of `len` tokens holds.
    pub fn blocks(&self, len: u64) -> u64 {
        self.block_pool(0).blocks(len)
    }
    /// "Maximum concurrency" at `len` tokens per request, and "GPU KV cache size".
    pub fn capacity(&self, ver: (u64, u64, u64), pool: u64, len: u64) -> (f64, u64) {
        let n = self.num_blocks(pool);
        let c = n as f64 / self.blocks(len).max(1) as f64;
        let tokens = if ver < (0, 20, 2) { n / (self.attention_groups + self.recurrent_groups).max(1) * self.block } else { (c * len as f64).floor() as u64 };
        (c, tokens)
    }
}

/// The release whose attention caches values narrower than the keys at their own width
/// (`FlashAttentionDiffKVBackend`, PR 40045, merged three days before 0.20.0 was tagged); before,
/// MiMo-V2-Flash's model code padded its 128-wide values to the 192-wide keys.
pub const DIFF_KV_FROM: (u64, u64, u64) = (0, 20, 0);

/// The shape whose KV layout vLLM allocates when it is not the config's: an MLA model per head
/// ([`mla_per_head`]) or with its latent padded ([`mla_entry_alignment`]), values padded to the
/// keys' width before [`DIFF_KV_FROM`]; `None` otherwise.
pub(crate) fn cached_shape(shape: &ModelShape, s: &crate::scenario::Scenario, quant: Option<&Quant>, act_bytes: u64) -> Option<ModelShape> {
    if !matches!(s.engine, Engine::Vllm | Engine::VllmV0) {
        return None;
    }
    let (version, ver) = version_of(s);
    if shape.has_narrower_values() && ver < DIFF_KV_FROM {
        return Some(shape.with_values_padded_to_keys(format!(
            "vLLM {version} caches values narrower than the keys padded to the key width (one head size per attention layer; unpadded from 0.20, FlashAttentionDiffKVBackend)"
        )));
    }
    if !shape.is_mla() {
        return None;
    }
    if let Some((dim, why)) = mla_per_head(ver, quant) {
        return Some(shape.with_mla_per_head(dim, why));
    }
    mla_entry_alignment(s.engine, ver, act_bytes).map(|m| {
        shape.with_mla_entry_padded(m, format!("vLLM V0 {version} pads each layer's MLA cache entry to a multiple of 256 bytes ({m} values; CacheEngine._align_cache), 0.7.2 to 0.7.x"))
    })
}

/// `vllm` with a version before 0.7.0 can only be V0 (V1 came as an opt-in with 0.7, which `vllm`
/// with a 0.7 version models, and became the default in 0.8.0): the note saying so, when it applies.
pub(crate) fn only_v0(s: &crate::scenario::Scenario) -> Option<String> {
    let (version, ver) = version_of(s);
    (s.engine == Engine::Vllm && ver < (0, 7, 0)).then(|| format!("vLLM {version} has only its V0 engine (V1 came as an opt-in with 0.7): modelled as vllm-v0"))
}

/// The vLLM version a scenario models (default: [`newest_version`]) and its parts; a version
/// that does not parse is taken as the default.
pub(crate) fn version_of(s: &crate::scenario::Scenario) -> (String, (u64, u64, u64)) {
    let newest = newest_version(s.engine);
    let version = s.engine_version.clone().unwrap_or_else(|| newest.into());
    let ver = parse_semver(&version).or_else(|| parse_semver(newest)).unwrap_or_default();
    (version, ver)
}

/// The `max_model_len` vLLM takes when none is given (`_get_and_verify_max_len`), when it is not
/// the config's `max_position_embeddings`, with how it was derived: a RoPE scaling other than
/// `llama3` and LongRoPE multiplies the length by its `factor` (YaRN its
/// `original_max_position_embeddings`), except for Gemma 3, whose length is already scaled; from
/// 0.11.1 a LongRoPE model defaults to its `original_max_position_embeddings`; from 0.30 YaRN
/// (and DeepSeek's YaRN variants) no longer scales it: `max_position_embeddings` is taken as
/// already scaled (`config/model.py::_get_and_verify_max_len`). Without `max_position_embeddings`,
/// the shortest other length key, else 2048 ([`NO_LENGTH_KEY_DEFAULT`]).
pub(crate) fn default_max_model_len(shape: &ModelShape, ver: (u64, u64, u64)) -> Option<(u64, String)> {
    let Some(configured) = shape.max_position_embeddings else {
        // without `max_position_embeddings`, the shortest of the other length keys, else the
        // length vLLM assumes (Falcon-Mamba, Mamba and Mamba-2 configs have none)
        return Some(match shape.length_keys.iter().min_by_key(|(_, n)| *n) {
            Some((key, n)) => (*n, format!("vLLM's default, the shortest length key of the config: {key} {n}")),
            None => (NO_LENGTH_KEY_DEFAULT, format!("vLLM's default when the config has none of its length keys (max_position_embeddings, n_positions, max_seq_len, ...): {NO_LENGTH_KEY_DEFAULT}")),
        });
    };
    // the smallest of the length keys the config has
    let (base_key, base) = shape.shorter_length_key().unwrap_or(("max_position_embeddings", configured));
    let unscaled = (base != configured).then(|| (base, format!("vLLM's default, the shortest length key of the config: {base_key} {base}, not max_position_embeddings {configured}")));
    let rope = &shape.rope_scaling;
    if ver >= (0, 11, 1) && rope.iter().any(|r| r.rope_type == "longrope") {
        // `getattr(hf_text_config, "original_max_position_embeddings", ...)`: Phi3Config defaults it to 4096
        // `getattr(hf_config, "original_max_position_embeddings", derived_max_model_len)`
        let Some(orig) = shape.original_max_position_embeddings.or(shape.model_type.starts_with("phi3").then_some(4096)) else { return unscaled };
        return (orig != configured).then(|| (orig, format!("vLLM's default for a LongRoPE model (from 0.11.1): original_max_position_embeddings {orig}, not max_position_embeddings {configured}")));
    }
    if shape.model_type.contains("gemma3") {
        return unscaled;
    }
    let yarn_unscaled = ver >= (0, 30, 0);
    let scaled: Vec<_> = rope
        .iter()
        .filter(|r| !matches!(r.rope_type.as_str(), "longrope" | "llama3"))
        .filter(|r| !(yarn_unscaled && matches!(r.rope_type.as_str(), "yarn" | "deepseek_yarn" | "deepseek_llama_scaling")))
        .collect();
    let Some(last) = scaled.last() else { return unscaled };
    let factor = scaled.iter().rev().find_map(|r| r.factor).unwrap_or(1.0);
    // any YaRN entry (one per layer kind when nested) starts from its original length
    let yarn = scaled.iter().rev().find(|r| r.rope_type == "yarn");
    let (from, what, kind) = match yarn.and_then(|r| r.original_max_position_embeddings) {
        Some(o) => (o, "original_max_position_embeddings", "yarn"),
        None => (base, base_key, last.rope_type.as_str()),
    };
    let len = (from as f64 * factor).floor();
    if !(1.0..=(1u64 << 40) as f64).contains(&len) || len as u64 == configured {
        return None;
    }
    let len = len as u64;
    Some((len, format!("vLLM's default, {what} {from} x {kind} RoPE factor {factor}")))
}

/// The length vLLM and SGLang assume when a config has none of their length keys
/// (`_get_and_verify_max_len`'s `default_max_len`; SGLang's `get_context_length`).
pub const NO_LENGTH_KEY_DEFAULT: u64 = 2048;

/// The block size vLLM forces for DeepSeek Sparse Attention (FlashMLA-sparse and the indexer).
pub const SPARSE_MLA_BLOCK: u64 = 64;

pub(crate) fn run(cx: &Ctx) -> Result<EngineReport> {
    let s = cx.scenario;
    let v0 = s.engine == Engine::VllmV0;
    let (version, ver) = version_of(s);
    let util = s.gpu_memory_utilization.unwrap_or_else(|| super::default_utilization(s));
    // DeepSeek Sparse Attention runs on FlashMLA-sparse, whose kernels take blocks of 64 only:
    // `CudaPlatform.check_and_update_config` forces it ("Forcing kv cache block size to 64"), on
    // CUDA only
    let nvidia = s.gpu.catalog().is_none_or(|g| g.compute_capability > 0);
    let sparse_mla = !v0 && nvidia && cx.shape.sparse_mla_index_dim().is_some();
    let bs = if sparse_mla { SPARSE_MLA_BLOCK } else { s.block_size.unwrap_or(16).max(1) };
    let tp = u64::from(s.tp.max(1));
    // a vision tower divided by heads needs ranks that divide them: `dist_utils.divide` asserts
    // for GLM-4.xV's 12 heads at TP 8 (vLLM's default `--mm-encoder-tp-mode weights`)
    if let Some(Split::Heads { heads }) = cx.shape.vision_dummy.as_ref().and_then(|d| d.attention_split) {
        if heads > 0 && heads % tp != 0 {
            return Err(crate::error::Error::scenario("tp", tp, format!("a divisor of the vision tower's {heads} heads: vLLM divides them over the ranks and stops at start-up otherwise (\"{heads} is not divisible by {tp}\"); --mm-encoder-tp-mode data, where the release has it for this model, runs the tower whole on each rank instead")));
        }
    }
    let l = cx.max_model_len;
    let mut mm_note = None;
    let multimodal = cx.shape.globals.iter().any(|t| t.role == Role::Encoder);
    // the profile's batch: its tokens, its sampler's rows, and the scheduler's max_num_seqs
    let (tokens, rows, sched) = if v0 {
        // chunked prefill is switched on above 32K (`arg_utils.py`, from 0.5.3), except for multimodal models,
        // models with one sliding window (V0 drops the window of interleaved ones such as Gemma 2,
        // which keep it on) and, in 0.8, MLA; its budget was 512 tokens before 0.6.5
        // (PR 10544). 0.7 switches it off for MLA only in `VllmConfig.__post_init__`, after the
        // scheduler took the chunked budget, so the profile keeps that budget
        let sliding = !cx.kv.groups.is_empty() && cx.kv.groups.iter().all(|g| matches!(g.window, Window::Sliding(_)));
        let mla = cx.shape.is_mla() && ver >= (0, 8, 0) && ver < (0, 9, 0);
        let chunked = ver >= (0, 5, 3) && l > 32_768 && !multimodal && !sliding && !mla;
        let chunk = if ver < (0, 6, 5) { 512 } else { 2048 };
        let tokens = s.max_num_batched_tokens.unwrap_or(if chunked { chunk } else { l.max(2048) });
        let seqs = s.max_num_seqs.unwrap_or(256);
        // a multimodal model's dummy batch holds as many sequences as prompts of the largest
        // multimodal items fit in it, at least one (`profile_run`, 0.5 to V0's end)
        let fit_seqs = match cx.shape.mm_tokens_per_prompt.filter(|_| multimodal) {
            Some(mm) => {
                let fit = seqs.min(tokens / mm.max(1)).max(1);
                mm_note = Some(format!("multimodal: V0 profiles min({seqs}, {tokens} // {mm} multimodal tokens of the largest prompt) = {fit} sequences, at least 1 (the vision tower's own activations are not modelled)"));
                fit
            }
            None => seqs,
        };
        (tokens, fit_seqs, seqs)
    } else {
        let (t, r) = v1_batch_defaults(ver, cx.memory.gib(), s.gpu.catalog());
        let seqs = s.max_num_seqs.unwrap_or(r);
        (s.max_num_batched_tokens.unwrap_or(t), seqs, seqs)
    };
    let act_bytes = cx.plan.activation.bytes();
    // V0's CPU offload copies a layer's offloaded parameters to the GPU for its forward
    // (`functional_call` in `maybe_offload_to_cpu`); V1 reads them in place through UVA
    let offload_copy = if v0 { cx.offload.largest_layer } else { 0 };
    let fwd = forward_peak(cx.shape, tokens, act_bytes, tp).saturating_add(offload_copy);
    let sample_rows = rows.min(tokens);
    let SamplerPath { per_logit, why: path, triton_filter } = sampler_path(v0, ver, cx.shape, cx.plan.quant.is_some(), sample_rows, act_bytes, s.gpu.catalog().map(|g| g.compute_capability), s.flashinfer_sampler);
    let sms = s.gpu.catalog().map(|g| u64::from(g.sm_count));
    let sm = sms.unwrap_or(DEFAULT_SM_COUNT);
    let (filter_rows, filter_buffer) = if triton_filter { (triton_filter_rows(sm, sample_rows), triton_filter_buffer_bytes(sm, sample_rows, cx.shape.vocab_size)) } else { (0, 0) };
    // the whole batch's forward output (tokens x hidden) stays alive while the sampler runs on
    // its last rows: V0's `execute_model` holds it, and V1's `profile_run` from 0.9.2, where
    // `_dummy_run` returns it beside the last rows (before, it returned only those rows)
    let holds_forward_output = v0 || ver >= (0, 9, 2);
    let held = if holds_forward_output { tokens.saturating_mul(cx.shape.hidden_size).saturating_mul(act_bytes) } else { 0 };
    let smp = sampler_peak(cx.shape, sample_rows, per_logit).saturating_add(filter_buffer).saturating_add(held);
    let text_peak = fwd.max(smp);
    let encoder = if v0 || !multimodal { None } else { cx.shape.vision_dummy.as_ref().map(|d| encoder_profile(d, ver, tokens, rows, l, act_bytes, tp)) };
    let act = match &encoder {
        Some(e) => text_peak.saturating_add(e.held).max(e.forward_peak),
        None => text_peak,
    };
    let activation = Figure::modelled(
        "activation peak",
        Bytes(act),
        "max(profile tokens x per-token width x act bytes, sampler rows x vocab x bytes per logit + the Triton top-k/top-p buffer + the forward output it holds, profile tokens x hidden x act bytes)",
        format!(
            "max({tokens} tokens -> {}, {sample_rows} rows x {} vocab x {per_logit} B{}{} -> {})",
            gib(fwd),
            cx.shape.vocab_size,
            if triton_filter { format!(" + {filter_rows} x {} vocab x 4 B", cx.shape.vocab_size) } else { String::new() },
            if holds_forward_output { format!(" + {tokens} x {} hidden x {act_bytes} B", cx.shape.hidden_size) } else { String::new() },
            gib(smp)
        ),
    )
    .note("vLLM profiles one dummy batch; V1 uses its chunked-prefill budget, V0 max_model_len without chunked prefill")
    .note(format!("sampler: {path}"));
    let activation = match (triton_filter, sms) {
        (true, Some(n)) => activation.note(format!("sampler: the Triton top-k/top-p kernel keeps a float32 vocabulary row per program, one per SM up to the rows ({n} SMs on this GPU): {}", gib(filter_buffer))),
        (true, None) => activation.note(format!("sampler: the Triton top-k/top-p kernel keeps a float32 vocabulary row per program, one per SM up to the rows; this GPU's SM count is not known, taken as {DEFAULT_SM_COUNT} (an H100's): {}", gib(filter_buffer))),
        _ => activation,
    };
    let activation = match mm_note {
        Some(n) => activation.note(n),
        None => activation,
    };
    let activation = match &encoder {
        Some(e) => activation.note(format!(
            "multimodal: V1 first runs the vision tower on {} of its largest item, {} (its peak {}, modelled: {}), then keeps their inputs and embeddings ({}) alive through the text model's forward ({} + {}); the larger counts",
            e.items,
            e.what,
            gib(e.forward_peak),
            e.how,
            gib(e.held),
            gib(text_peak),
            gib(e.held)
        )),
        _ if multimodal && !v0 => activation.note("multimodal: the vision tower's own profile is not modelled for this family (only the text model's forward)"),
        _ => activation,
    };
    let mrv2 = !v0 && model_runner_v2(ver, cx.shape, cx.plan.quant.is_some());
    let activation = if mrv2 {
        activation.note("this version runs the model on Model Runner V2, whose profile peak public logs check only in part: on 0.30 and 0.31 the transient peak of Qwen2.5 1.5B and 3B is this model's (0.12 and 0.15 GiB) in two logs and 0.3 GiB above it in a third; 0.26 with Qwen2.5-7B AWQ on an RTX 4080 under WSL2 logged 1.04 GiB where this model gives 0.26, and 0.29 on an RTX 5090 kept about 1.1 GiB more outside the KV pool than modelled, gaps the source does not explain; treat the activation peak as uncertain here")
    } else {
        activation
    };
    let activation = if offload_copy > 0 {
        activation.note(format!("the forward includes {} of one offloaded layer, which V0 copies to the GPU for its forward (V1 reads host memory in place)", gib(offload_copy)))
    } else {
        activation
    };
    // communicators between GPUs: tensor parallel, or the expert-parallel group of dp x tp
    let experts = s.expert_split(cx.shape.moe.is_some());
    let non_torch_tp = if tp > 1 || experts.ranks > 1 { non_torch_tp_gib(s.gpu.catalog()) } else { 0.0 };
    let non_torch = if ver < (0, 7, 0) { NON_TORCH_SINGLE_GIB_V06 } else { NON_TORCH_SINGLE_GIB } + non_torch_tp;
    // `get_rope` builds a cos/sin cache per distinct rope (max_position x rotary_dim, scaled ropes
    // longer: `ModelShape::rope_cache_values`) in the model dtype at load;
    // "Model loading took" counts it (Llama-3.1-8B: 16,060,522,496 B + 32 MiB = 14.9888 GiB) and the
    // caching allocator's unsplit segment tails (Qwen2.5-7B: 2 MiB per layer, 14.19 -> 14.25 GiB)
    let super::LoadExtras { rope, tails, .. } = super::load_extras(cx);
    let at_load = rope.saturating_add(tails);
    let cc = s.gpu.catalog().map(|g| g.compute_capability);
    let backend = mxfp4_backend(cc, ver);
    // Triton is the Hopper backend (or a GPU of unknown compute capability, taken for Hopper)
    let hopper_value_pad = backend == Mxfp4Backend::Triton && ver >= (0, 17, 0);
    let relayout = mxfp4_relayout_extra(cx.shape, cx.plan, experts, backend, hopper_value_pad);
    // LoRA slots are created with the model, inside "Model loading took"
    let (lora, lora_what) = match s.lora_rank {
        Some(r) => lora_slot_bytes(cx.shape, cx.plan, experts, tp, u64::from(s.pp.max(1)), r, s.max_loras.unwrap_or(1), ver),
        None => (0, String::new()),
    };
    // all that "Model loading took" adds to the checkpoint's weights
    let loaded_extra = at_load.saturating_add(relayout).saturating_add(lora);
    // `cudagraph_memory_estimate` is 0 when `cudagraph_mode` is NONE (`--enforce-eager`), and
    // Model Runner V2's `profile_cudagraph_memory` returns 0 from 0.22 to 0.28 (0.29 captures)
    let mrv2_unestimated = mrv2 && ver < (0, 29, 0);
    let graphs_in_budget = !v0 && ver >= (0, 20, 0) && !s.enforce_eager && !mrv2_unestimated;
    let stage_layers = crate::weights::pp_partition(cx.shape.num_layers(), u64::from(s.pp.max(1))).into_iter().max().unwrap_or(0);
    // one piecewise graph per layer and batch size: fewer sizes (a small max_num_seqs) capture less
    let graph_sizes = cuda_graph_capture_sizes(rows, tokens);
    let graph_mib = CUDA_GRAPH_MIB_PER_LAYER * graph_sizes.min(DEFAULT_CUDA_GRAPH_SIZES) as f64 / DEFAULT_CUDA_GRAPH_SIZES as f64;
    let graph_b = if graphs_in_budget { (stage_layers as f64 * graph_mib * (1u64 << 20) as f64) as u64 } else { 0 };
    let non_torch_b = (non_torch * GIB as f64) as u64;
    let state_b = if mrv2 { mrv2_sampler_state_bytes(ver, rows, cx.shape.vocab_size) } else { 0 };
    let room = cx.memory.0.saturating_sub(cx.weights_per_gpu.0.saturating_add(loaded_extra).saturating_add(non_torch_b).saturating_add(act));
    let (held_b, held_n, all_reduces) = if v0 { v0_held_all_reduce(ver, tp, tokens, cx.shape.hidden_size, act_bytes, stage_layers, room) } else { (0, 0, 0) };
    let overhead = Figure::modelled(
        "runtime overhead",
        Bytes(non_torch_b.saturating_add(graph_b).saturating_add(loaded_extra).saturating_add(state_b).saturating_add(held_b)),
        "non-torch memory (CUDA context, NCCL) + CUDA graphs when inside the budget (v0.20+) + rotary cos/sin cache + allocator tails of the weights + MXFP4 expert re-layout + LoRA slots (--enable-lora) + Model Runner V2's sampler state (v0.27+) + all-reduced activations held for NCCL's stream (V0 before 0.6.4, tp > 1)",
        {
            let mut d = format!(
                "{} + {} + {} (rotary cos/sin caches: positions x rotary_dim x act bytes, exact) + {} (unsplit 2 MiB-segment tails PyTorch counts as allocated, exact)",
                gib(non_torch_b),
                if graphs_in_budget {
                    if graph_sizes < DEFAULT_CUDA_GRAPH_SIZES {
                        format!("{} ({stage_layers} layers x {CUDA_GRAPH_MIB_PER_LAYER} MiB x {graph_sizes} of the default {DEFAULT_CUDA_GRAPH_SIZES} capture sizes)", gib(graph_b))
                    } else {
                        format!("{} ({stage_layers} layers x {CUDA_GRAPH_MIB_PER_LAYER} MiB)", gib(graph_b))
                    }
                } else {
                    gib(graph_b)
                },
                crate::units::Bytes(rope),
                crate::units::Bytes(tails)
            );
            if relayout > 0 {
                d.push_str(&format!(" + {} (MXFP4 experts in vLLM's {:?} layout, exact)", crate::units::Bytes(relayout), backend));
            }
            if lora > 0 {
                d.push_str(&format!(" + {} (LoRA: {lora_what}, exact)", crate::units::Bytes(lora)));
            }
            if state_b > 0 {
                d.push_str(&format!(" + {} ({} x {} vocab: penalty counts and prompt mask, exact)", crate::units::Bytes(state_b), count(rows, "request"), cx.shape.vocab_size));
            }
            if held_b > 0 {
                d.push_str(&format!(" + {} ({held_n} of the profile's {all_reduces} all-reduced activations of {tokens} x {} hidden x {act_bytes} B, held for NCCL's stream)", gib(held_b), cx.shape.hidden_size));
            }
            d
        },
    )
    .note(if graphs_in_budget {
        "CUDA graphs are estimated and subtracted before the KV cache (v0.20+); modelled per layer from vLLM's own estimates, which vary from 0.2x to 3.6x of it"
    } else if s.enforce_eager {
        "--enforce-eager: no CUDA graphs are captured"
    } else if mrv2_unestimated && ver >= (0, 20, 0) {
        "Model Runner V2 does not estimate CUDA graphs before 0.29: they are captured after the KV cache, outside gpu_memory_utilization"
    } else {
        "CUDA graphs (0.1-5 GiB) are captured after the KV cache, outside gpu_memory_utilization"
    });
    let overhead = if all_reduces > 0 {
        let how = if held_n == all_reduces {
            format!("all {all_reduces} stay reserved")
        } else if held_n == 0 {
            "not even one fits beside the forward's working set".to_string()
        } else {
            format!("they do not all fit beside the weights and the forward, so PyTorch releases its cache whenever the next one does not; {held_n} held at the end")
        };
        overhead.note(format!("V0 before 0.6.4 counts the memory PyTorch keeps reserved after the profile; its eager all-reduces go through torch.distributed, which records each tensor on NCCL's stream, and the CPU runs ahead of the GPU: {how}"))
    } else {
        overhead
    };
    let overhead = if tp > 1 {
        let fabric = match s.gpu.catalog() {
            Some(g) => format!("{:?} fabric of the {}", g.fabric, g.name),
            None => "fabric unknown for a custom GPU".to_string(),
        };
        overhead.note(format!("tensor parallel: NCCL and all-reduce buffers add {non_torch_tp} GiB per GPU ({fabric}; modelled from vLLM logs)"))
    } else {
        overhead
    };
    let requested = (cx.memory.0 as f64 * util) as u64;
    let used = cx.weights_per_gpu.0.saturating_add(loaded_extra).saturating_add(act).saturating_add(non_torch_b).saturating_add(graph_b).saturating_add(state_b).saturating_add(held_b);
    let pool = requested.saturating_sub(used);

    // per-request bytes at length `len` as this engine allocates them
    // the hybrid KV cache manager arrived in 0.9.1; before, V1 sized sliding layers of a mixed model
    // as full attention (`unify_hybrid_kv_cache_specs`)
    let hybrid_v1 = !v0 && ver >= (0, 9, 1) && (cx.kv.groups.len() > 1 || cx.kv.state_bytes_per_request > 0) && cx.kv.groups.iter().any(|g| g.window != Window::Full);
    // blocks one request holds in a layer of this kind with blocks of `b` tokens
    // (`kv_cache_interface.py`): a sliding window keeps its last `window - 1` tokens plus one
    // scheduled chunk (`max_num_batched_tokens`), one block more as the window may start
    // mid-block; a chunked-local layer its chunk plus `max_num_batched_tokens`
    let blocks = |w: Window, len: u64, b: u64| -> u64 {
        match w {
            Window::Sliding(win) if hybrid_v1 => len.min(win.saturating_sub(1).saturating_add(tokens)).div_ceil(b).saturating_add(1),
            Window::Chunked(c) if hybrid_v1 => len.min(c.saturating_add(tokens)).div_ceil(b),
            _ => len.div_ceil(b),
        }
    };
    // V1 hybrids share one page size (`_get_kv_cache_config_uniform_page_size`). From 0.12 layers
    // of a smaller page take proportionally larger blocks (`unify_kv_cache_spec_page_size`: Gemma
    // 4's full layers, half the bytes per token of its sliding ones, get blocks of 32); before,
    // unequal pages were not supported and are sized as one pool. Each kind is cut into groups of
    // `group_size` layers: the smallest kind's count, or from 0.12 the largest when it is within
    // 1.25x of the smallest (1.5x from 0.18), the last group padded. The pool is cut into
    // `group_size` tensors shared by one layer of every group; a block is one page of each.
    // Concurrency counts the padded groups; whether one request fits, and the longest that does,
    // sum the layers themselves (`check_enough_kv_cache_memory`)
    let page = cx.kv.groups.iter().map(|g| g.bytes_per_token_per_layer.saturating_mul(bs)).max().unwrap_or(0);
    let unify = ver >= (0, 12, 0);
    let uniform = hybrid_v1
        && cx.kv.state_bytes_per_request == 0
        && page > 0
        && cx.kv.groups.iter().all(|g| {
            let own = g.bytes_per_token_per_layer.saturating_mul(bs);
            own == page || (unify && own > 0 && page % own == 0)
        });
    // tokens per block of each group (the scenario's block size unless unified)
    let group_bs: Vec<u64> = cx
        .kv
        .groups
        .iter()
        .map(|g| if uniform { (page / g.bytes_per_token_per_layer.max(1)).max(1) } else { bs })
        .collect();
    let group_size = {
        let min = cx.kv.groups.iter().map(|g| g.layers).min().unwrap_or(1).max(1);
        let max = cx.kv.groups.iter().map(|g| g.layers).max().unwrap_or(1).max(1);
        let within = if ver >= (0, 18, 0) { max * 2 < min * 3 } else { max * 4 < min * 5 };
        if unify && within {
            max
        } else {
            min
        }
    };
    let kv_groups: u64 = cx.kv.groups.iter().map(|g| g.layers.div_ceil(group_size)).sum();
    let padded_blocks = |len: u64| -> u64 {
        cx.kv.groups.iter().zip(&group_bs).map(|(g, &b)| g.layers.div_ceil(group_size).saturating_mul(blocks(g.window, len, b))).sum()
    };
    let per_request = |len: u64| -> u64 {
        let mut total = cx.kv.state_bytes_per_request;
        for (g, &b) in cx.kv.groups.iter().zip(&group_bs) {
            total = total.saturating_add(g.bytes_per_token.saturating_mul(blocks(g.window, len, b).saturating_mul(b)));
        }
        total
    };
    let per_token_all = cx.kv.bytes_per_token.max(1);
    let block_bytes = if uniform { page.saturating_mul(group_size) } else { per_token_all.saturating_mul(bs) };
    let num_blocks = pool / block_bytes.max(1);
    // a hybrid of full attention and recurrent layers: V1's enlarged attention blocks
    let attn_one = cx.kv.groups.first().map_or(0, |g| g.bytes_per_token_per_layer);
    let attn_layers: u64 = cx.kv.groups.iter().map(|g| g.layers).sum();
    let mamba = (!v0 && ver >= MAMBA_HYBRID_V1_FROM && cx.kv.recurrent_layers > 0 && cx.kv.groups.iter().all(|g| g.window == Window::Full && !g.mla && g.bytes_per_token_per_layer == attn_one))
        .then(|| {
            let state_per_layer = cx.kv.state_bytes_per_request.div_ceil(cx.kv.recurrent_layers);
            if attn_layers == 0 {
                MambaPaging::recurrent_only(state_per_layer, cx.kv.recurrent_layers, l)
            } else {
                MambaPaging::new(ver, attn_one, attn_layers, state_per_layer, cx.kv.recurrent_layers, s.block_size)
            }
        })
        .flatten();
    let (bs, num_blocks) = match mamba {
        Some(m) => (m.block, m.num_blocks(pool)),
        None => (bs, num_blocks),
    };
    // the bytes one request of `len` tokens takes in the layers themselves
    // (`check_enough_kv_cache_memory`): every attention layer's blocks and every recurrent layer's
    // padded state
    let per_request = |len: u64| -> u64 {
        match mamba {
            Some(m) => len.div_ceil(m.block).saturating_mul(m.page).saturating_mul(attn_layers).saturating_add(m.page.saturating_mul(cx.kv.recurrent_layers)),
            None => per_request(len),
        }
    };
    let need = per_request(l);
    let (kv_tokens, max_conc) = if let Some(m) = mamba {
        let (c, t) = m.capacity(ver, pool, l);
        (t, c)
    } else if hybrid_v1 || cx.kv.state_bytes_per_request > 0 {
        // vLLM divides whole blocks by the blocks a request holds
        let c = match (need, uniform) {
            (0, _) => 0.0,
            (_, true) => num_blocks as f64 / padded_blocks(l).max(1) as f64,
            _ => pool as f64 / need as f64,
        };
        // "GPU KV cache size": blocks per group x block size until 0.20.1, concurrency x
        // max_model_len from 0.20.2 (`kv_cache_utils.py`)
        let t = if uniform && ver < (0, 20, 2) { num_blocks / kv_groups.max(1) * bs } else { (c * l as f64).floor() as u64 };
        (t, c)
    } else {
        let t = num_blocks * bs;
        (t, t as f64 / l.max(1) as f64)
    };
    // the longest length that fits one request, rounded down to a block (vLLM's estimate)
    let max_len = crate::estimate::largest(0, crate::scenario::MAX_TOKENS, |len| per_request(len) <= pool).unwrap_or(0) / bs * bs;
    // layer kinds of unequal pages that vLLM cannot put in one page size: before 0.12 any unequal
    // pages (`get_kv_cache_config` raises a bare NotImplementedError), from 0.12 a page that does not
    // divide the largest (`unify_kv_cache_spec_page_size`). Layers that all hold the same tokens
    // (one window kind) are one group of per-layer sizes instead and never get here
    // (`UniformTypeKVCacheSpecs`); recurrent hybrids align their pages another way
    let one_kind = cx.kv.groups.windows(2).all(|w| w[0].window == w[1].window);
    let unpageable = hybrid_v1 && cx.kv.state_bytes_per_request == 0 && page > 0 && !uniform && !one_kind;
    let (fits, message) = if pool == 0 {
        (false, Some(format!("No available memory for the cache blocks: {} requested, {} used by weights, activations and overhead. Try increasing `gpu_memory_utilization` when initializing the engine.", gib(requested), gib(used))))
    } else if v0 && kv_tokens < l {
        (false, Some(format!("The model's max seq len ({l}) is larger than the maximum number of tokens that can be stored in KV cache ({kv_tokens}). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.")))
    } else if !v0 && need > pool {
        (false, Some(format!("To serve at least one request with the models's max seq len ({l}), ({}) KV cache is needed, which is larger than the available KV cache memory ({}). Based on the available memory, the estimated maximum model length is {max_len}. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.", gib(need), gib(pool))))
    } else if unpageable {
        let pages: Vec<String> = cx.kv.groups.iter().map(|g| format!("{} B", g.bytes_per_token_per_layer.saturating_mul(bs))).collect();
        let why = if unify {
            "The page size of the layer is not divisible by the maximum page size. Cannot unify by adjusting block_size."
        } else {
            "NotImplementedError: hybrid layer kinds of unequal page sizes are supported from vLLM 0.12."
        };
        (false, Some(format!("{why} (pages of {} tokens per layer kind: {})", bs, pages.join(", "))))
    } else {
        (true, None)
    };
    let mut notes = vec![format!("budget {} = {} x {util}", gib(requested), gib(cx.memory.0))];
    if sparse_mla {
        notes.push(format!("DeepSeek Sparse Attention: blocks of {SPARSE_MLA_BLOCK} tokens (vLLM forces them for FlashMLA-sparse{}); each block holds every layer's latent and its indexer key in one group", match s.block_size {
            Some(b) if b != SPARSE_MLA_BLOCK => format!(", whatever --block-size {b} asks"),
            _ => String::new(),
        }));
    }
    if s.gpu_memory_utilization.is_none() {
        let range = if v0 { "V0's default" } else { "vLLM's default: 0.92 from 0.20.0, 0.9 before" };
        notes.push(format!("gpu_memory_utilization {util}: vLLM's default for {version} ({range})"));
    }
    if s.engine_version.as_deref().is_some_and(|v| parse_semver(v).is_none()) {
        notes.push(format!("engine version `{version}` is not a release number: modelled as the newest, {}", newest_version(s.engine)));
    }
    notes.extend(cx.max_model_len_why.clone());
    if let Some(m) = mamba.filter(|m| m.attention_groups == 0) {
        notes.push(format!(
            "recurrent layers only: one group of every layer, blocks of max_model_len ({} tokens) so a request holds one block id, a page of each layer's state ({}); GPU KV cache size is blocks x max_model_len",
            m.block,
            crate::units::Bytes(m.page)
        ));
    }
    if let Some(m) = mamba.filter(|m| m.attention_groups > 0) {
        notes.push(format!(
            "recurrent hybrid: attention blocks of {} tokens so a page ({}) holds one layer's recurrent state ({}, padded by {:.2} %); layers in groups of {} ({} attention groups, {} recurrent groups), a block id one page of each of the {} tensors; a request holds ceil(len / {}) blocks per attention group and one per recurrent group (prefix caching off, mamba_cache_mode none)",
            m.block,
            crate::units::Bytes(m.page),
            crate::units::Bytes(m.state_page),
            (m.page.saturating_sub(m.state_page)) as f64 / m.state_page.max(1) as f64 * 100.0,
            m.group_size,
            m.attention_groups,
            m.recurrent_groups,
            m.group_size,
            m.block
        ));
        if ver >= (0, 27, 0) {
            notes.push("releases from August 2026 (PR 50991) turn prefix caching on for recurrent hybrids by default (mamba_cache_mode align: a block size aligned to the kernel's checkpoints and two or three blocks per recurrent group), which this estimate does not model: its figures are vLLM's with --no-enable-prefix-caching".into());
        }
    }
    if cx.kv.groups.iter().any(|g| matches!(g.window, Window::Sliding(_))) && !hybrid_v1 {
        notes.push("sliding-window layers sized at full length (V0, V1 before its hybrid manager in 0.9.1, or a uniform window vLLM does not exploit)".into());
    }
    // the scheduler's limit on running requests: --max-num-seqs, else the release's default
    // (V0: 256; V1: the API server's by GPU), as the profile took it
    let running_cap = Some(super::RunningCap {
        requests: sched,
        source: match s.max_num_seqs {
            Some(n) => format!("--max-num-seqs {n}"),
            None if v0 => format!("max_num_seqs {sched}, vLLM V0's default"),
            None => format!("max_num_seqs {sched}, vLLM {version}'s default on this GPU for its API server"),
        },
    });
    Ok(EngineReport {
        name: s.engine.as_str().into(),
        version,
        utilization: util,
        max_model_len: l,
        block_size: bs,
        kv_pool_bytes: Bytes(pool),
        kv_in_host_memory: Bytes(0),
        budget_shortfall: Bytes(used.saturating_sub(requested)),
        kv_tokens,
        num_blocks,
        max_concurrency: max_conc,
        fits,
        message,
        loaded_weights_bytes: Bytes(cx.weights_per_gpu.0.saturating_add(loaded_extra)),
        kv_needed_for_max_len: Bytes(need),
        max_len_that_fits: max_len,
        activation,
        overhead,
        cuda_graph_in_budget_bytes: Bytes(graph_b),
        running_cap,
        kv_batch: None,
        block_pool: mamba.map(|m| m.block_pool(pool)),
        kv_parts: vec![],
        budget: None,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::v1_batch_defaults;
    use crate::gpu::find;

    /// vLLM PR 2031: Llama-2-70B at TP4, 4096 profile tokens, bf16 activations of hidden 8192.
    #[test]
    fn v0_holds_every_all_reduce_of_the_profile_until_the_cache_is_released() {
        use super::v0_held_all_reduce;
        const MIB: u64 = 1 << 20;
        let room = 40 * 1024 * MIB;
        // 2 x 80 layers + the embedding, 64 MiB each (own segments, already a multiple of 2 MiB)
        assert_eq!(v0_held_all_reduce((0, 2, 5), 4, 4096, 8192, 2, 80, room), (161 * 64 * MIB, 161, 161));
        // from 0.6.4 the profile reads allocated bytes after empty_cache; one GPU has no NCCL
        assert_eq!(v0_held_all_reduce((0, 6, 4), 4, 4096, 8192, 2, 80, room), (0, 0, 0));
        assert_eq!(v0_held_all_reduce((0, 4, 3), 1, 4096, 8192, 2, 80, room), (0, 0, 0));
        // 8 MiB and less goes to custom all-reduce from 0.3
        assert_eq!(v0_held_all_reduce((0, 4, 3), 2, 2048, 2048, 2, 24, room), (0, 0, 0));
        // before 0.3 it is held too: two 8 MiB blocks to each 20 MiB segment
        assert_eq!(v0_held_all_reduce((0, 2, 5), 2, 2048, 2048, 2, 24, room), (25 * 20 * MIB, 49, 49));
        // 10 fit in the room: releases after the 10th, 20th, ...; 161 = 16 x 10 + 1
        assert_eq!(v0_held_all_reduce((0, 2, 5), 4, 4096, 8192, 2, 80, 10 * 64 * MIB + 1), (64 * MIB, 1, 161));
        assert_eq!(v0_held_all_reduce((0, 2, 5), 4, 4096, 8192, 2, 80, 10 * 64 * MIB - 1).1, 8); // 9 fit: 160 = 17 x 9 + 7
        assert_eq!(v0_held_all_reduce((0, 2, 5), 4, 4096, 8192, 2, 80, 63 * MIB), (0, 0, 161));
    }

    #[test]
    fn v1_defaults_follow_the_version_and_the_gpu() {
        let (h100, a100, l4) = (find("h100-80gb").ok(), find("a100-80gb").ok(), find("l4").ok());
        assert_eq!(v1_batch_defaults((0, 8, 3), 79.19, h100), (8192, 1024));
        assert_eq!(v1_batch_defaults((0, 8, 3), 22.03, l4), (2048, 1024));
        assert_eq!(v1_batch_defaults((0, 8, 4), 22.03, l4), (2048, 256));
        assert_eq!(v1_batch_defaults((0, 8, 4), 79.15, a100), (2048, 256));
        assert_eq!(v1_batch_defaults((0, 8, 5), 79.15, a100), (8192, 1024));
        assert_eq!(v1_batch_defaults((0, 9, 0), 79.15, a100), (2048, 256));
        // from 0.28 a board of 160 GiB or more takes 16384 tokens
        let b200 = Some(find("b200").unwrap());
        assert_eq!(v1_batch_defaults((0, 27, 1), 178.35, b200), (8192, 1024));
        assert_eq!(v1_batch_defaults((0, 28, 0), 178.35, b200), (16384, 1024));
        assert_eq!(v1_batch_defaults((0, 28, 0), 191.98, Some(find("mi300x").unwrap())), (16384, 1024));
        assert_eq!(v1_batch_defaults((0, 33, 0), 139.72, Some(find("h200").unwrap())), (8192, 1024));
        assert_eq!(v1_batch_defaults((0, 11, 0), 79.19, h100), (8192, 1024));
        assert_eq!(v1_batch_defaults((0, 11, 0), 139.8, None), (8192, 1024));
        assert_eq!(v1_batch_defaults((0, 11, 0), 44.0, None), (2048, 256));
    }
}
