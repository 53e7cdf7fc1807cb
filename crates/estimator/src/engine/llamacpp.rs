//! llama.cpp. Source: `src/llama-kv-cache.cpp`, `src/llama-kv-cache-iswa.cpp`, `ggml_row_size`.
//!
//! The whole cache is allocated up front: `n_ctx` cells x every layer, K and V each
//! `n_head_kv x head_dim` values of the cache type (f16 by default, q8_0 = 34/32 and q4_0 = 18/32
//! bytes per value), shared by all slots (`-np`). Builds from b5000 on (iSWA) give sliding-window
//! layers only `min(n_ctx, pad(window x n_seq + n_ubatch))` cells (padded as `n_ctx` is); older builds size them at
//! `n_ctx`. Layer split over GPUs (`-ts`) divides layers, hence KV, by layer. The compute buffer is
//! modelled on ggml's graph allocator (see [`compute_buffer`]): without flash attention the KQ
//! matrix `n_ctx x n_ubatch x n_head x 4 B` and its mask usually dominate, otherwise the logits
//! `n_ubatch x vocab x 4 B`. Flash attention is the scenario's `fa` (`-fa`), else the build's
//! default (on from b6300, `-fa auto`).
//!
//! MLA models (DeepSeek V2/V3/R1): builds before b5150 (the MLA implementation, April 2025) cache
//! K and V per head like any attention (`heads x (qk_nope + qk_rope)` and `heads x v_head_dim`
//! values per layer, 24576 + 16384 for V3); later builds cache the 576-value latent.
//!
//! `n_ctx` is padded before the cache is sized (`llama_context`): builds with flash attention
//! (b2776 on) pad it to 256 cells with `-fa` and 32 without (`llama_kv_cache_get_padding`); from
//! b7000 (the `n_ctx_seq` rework) always to 256. Slots that do not share one cache (`-np N`
//! without `--kv-unified`, about b6100 on) get `pad(ceil(n_ctx / N))` cells each, from b7000
//! `pad256(n_ctx / N)`. Older builds use `n_ctx` as given.
//!
//! `-ngl N` below every layer (one GPU): the last N layers and their cache are on the GPU, the rest
//! and the output layer (unless N exceeds the layer count) in host memory; `-nkvo` keeps the whole
//! cache there. The pool reported is still the whole cache (what "KV self size" logs), with
//! `kv_in_host_memory` saying how much of it the GPU does not hold.

use super::{gib, Ctx, EngineReport};
use crate::error::Result;
use crate::model::{Mixer, Window};
use crate::units::{count, mul_ratio_ceil, Bytes, Figure};

/// Physical batch size (`-ub`), llama.cpp default; the scenario's `max_num_batched_tokens` sets it.
pub const N_UBATCH: u64 = 512;
/// Logical batch size (`-b`), llama.cpp default: the most `-ub` can be.
pub const N_BATCH: u64 = 2048;
/// First build with the sliding-window (iSWA) cache.
pub const ISWA_BUILD: u64 = 5000;
/// First build with flash attention on by default (`-fa auto`).
pub const FA_AUTO_BUILD: u64 = 6300;
/// First build with flash attention (`-fa`), which brought the padding of `n_ctx`.
pub const FA_BUILD: u64 = 2776;
/// First build that caches the MLA latent instead of per-head K and V.
pub const MLA_BUILD: u64 = 5150;
/// First build whose slots (`-np N` without `--kv-unified`) each get their own cache of
/// `pad(ceil(n_ctx / N))` cells: the non-unified cache (July 2025) with `ggml_set_rows` on by
/// default (`llama-model.cpp` as vendored in llama-cpp-python 0.3.16, August 2025; about b6100).
pub const STREAMS_BUILD: u64 = 6100;
/// First build that pads `n_ctx` (and each slot's share) to 256 whatever `-fa` says.
pub const PAD256_BUILD: u64 = 7000;

/// Cells of one slot's cache and the number of such caches (streams): `n_ctx` as the build pads
/// it, one stream shared by all slots; from about b6100 `n_seq` separate slots of
/// `pad(ceil(n_ctx / n_seq))`, from b7000 of `pad256(pad256(n_ctx) / n_seq)`.
pub fn cache_cells(n_ctx: u64, n_seq: u64, build: u64, flash: bool) -> (u64, u64) {
    let to = cell_padding(build, flash);
    if build >= PAD256_BUILD {
        let n_ctx = pad(n_ctx, to);
        if n_seq > 1 {
            return (pad(n_ctx / n_seq, to).max(to), n_seq);
        }
        return (n_ctx, 1);
    }
    if build >= STREAMS_BUILD && n_seq > 1 {
        return (pad(n_ctx.div_ceil(n_seq), to), n_seq);
    }
    (pad(n_ctx, to), 1)
}

/// The multiple a build rounds cache sizes to (`n_ctx`, the sliding-window cache): 256 from b7000,
/// before that 256 with flash attention and 32 without (from b2776), 1 in older builds.
pub fn cell_padding(build: u64, flash: bool) -> u64 {
    if build >= PAD256_BUILD || (build >= FA_BUILD && flash) {
        256
    } else if build >= FA_BUILD {
        32
    } else {
        1
    }
}

fn pad(x: u64, to: u64) -> u64 {
    x.div_ceil(to.max(1)).saturating_mul(to.max(1))
}

/// The build a scenario without a version models: the newest behaviour this profile follows
/// (from b7000 `n_ctx` and each slot's share are padded to 256; later builds are taken to size
/// their caches the same way).
pub const NEWEST_BUILD: &str = "b7000";

fn build_number(v: &str) -> Option<u64> {
    let digits: String = v.trim().trim_start_matches(['~', 'b', 'B']).chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Rows of the KQ mask are padded to this (`GGML_KQ_MASK_PAD`: 32 in 2024 builds, 64 later; equal
/// for the default `n_ubatch` of 512).
pub const KQ_MASK_PAD: u64 = 64;

/// The compute buffer of a GPU holding every layer and its KV (`CUDA0 compute buffer size`): ggml's
/// graph allocator reserves the worst-case graph of one `n_ubatch` and reuses a tensor's memory
/// once its last reader has run, so the buffer is the larger of two moments.
/// - Attention: the KQ matrix `n_kv x n_ubatch x n_head` in f32 (absent with flash attention), the
///   KQ mask `n_kv x pad(n_ubatch)` (an input, f32, f16 with flash attention) and four hidden
///   states `n_ubatch x n_embd` in f32 (residual, normed input, Q, attention output).
/// - Output: the logits `n_ubatch x vocab` in f32 and the normed hidden state they are made from;
///   the mask has been freed after the last layer.
///
/// Six logged buffers match to the printed 0.01 MiB (Mistral-7B at 32000 cells 2094.50 MiB,
/// Llama-3.1-70B row split at 8000 cells 1079.63, Llama-2-7B at 4096 and 512 cells 296.00 and
/// 70.50, Gemma-2-2B 504.50, Qwen2.5-3B 300.75) and Gemma 3n within 0.7 % (516.50 against 520 MiB).
///
/// With the output layer in host memory (`-ngl` up to the layer count) the scheduler runs the head's
/// matrix product on the GPU for a batch of 32 tokens or more (`ggml_backend_sched` op offload) and
/// copies the head's weight into this buffer for it: Gemma-2-27B Q8_0 with `-ngl 0` logs 1704.31
/// MiB, the 1195.31 MiB head, 500 MiB of logits and one hidden state, exactly. With the KV in host
/// memory (`-nkvo`) the attention moment leaves the GPU (the KQ matrix and mask go to the host's
/// `CUDA_Host` buffer, not modelled); so do the attention of layers left on the CPU, whose other
/// products the scheduler may also run on the GPU (Llama-3.1-8B with 10 of 32 layers: 920 MiB
/// logged, 670 modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeBuffer {
    pub kq: u64,
    pub mask: u64,
    pub logits: u64,
    pub hidden: u64,
    /// The output head's weight, copied in when the output layer is in host memory.
    pub head_copy: u64,
}

impl ComputeBuffer {
    pub fn attention(&self) -> u64 {
        self.kq.saturating_add(self.mask).saturating_add(self.hidden.saturating_mul(4))
    }
    pub fn output(&self) -> u64 {
        self.logits.saturating_add(self.hidden).saturating_add(self.head_copy)
    }
    pub fn bytes(&self) -> u64 {
        self.attention().max(self.output())
    }
    fn describe(&self, shape: &crate::model::ModelShape, n_kv: u64, n_ubatch: u64, flash: bool) -> String {
        let m = |b: u64| format!("{:.2} MiB", b as f64 / crate::units::MIB as f64);
        let kq = if flash { String::new() } else { format!("KQ {n_kv} x {n_ubatch} x {} heads x 4 B = {} + ", shape.num_attention_heads.max(1), m(self.kq)) };
        let mask_b = if flash { 2 } else { 4 };
        let attention = if self.mask == 0 { format!("4 x {n_ubatch} x {} x 4 B = {}", shape.hidden_size, m(self.attention())) } else { format!("{kq}mask {n_kv} x {} x {mask_b} B = {} + 4 x {n_ubatch} x {} x 4 B = {}", pad(n_ubatch, KQ_MASK_PAD), m(self.mask), shape.hidden_size, m(self.attention())) };
        let head = if self.head_copy > 0 { format!(" + the head's weight copied from host memory {}", m(self.head_copy)) } else { String::new() };
        format!(
            "max(attention: {attention}, output: logits {n_ubatch} x {} x 4 B + {n_ubatch} x {} x 4 B{head} = {}) = {}",
            shape.vocab_size,
            shape.hidden_size,
            m(self.output()),
            m(self.bytes())
        )
    }
}

/// The compute buffer for `n_kv` cells (a slot's cache) and a physical batch of `n_ubatch`.
pub fn compute_buffer(shape: &crate::model::ModelShape, n_kv: u64, n_ubatch: u64, flash: bool) -> ComputeBuffer {
    let heads = shape.num_attention_heads.max(1);
    ComputeBuffer {
        kq: if flash { 0 } else { n_kv.saturating_mul(n_ubatch).saturating_mul(heads).saturating_mul(4) },
        mask: n_kv.saturating_mul(pad(n_ubatch, KQ_MASK_PAD)).saturating_mul(if flash { 2 } else { 4 }),
        logits: n_ubatch.saturating_mul(shape.vocab_size).saturating_mul(4),
        hidden: n_ubatch.saturating_mul(shape.hidden_size).saturating_mul(4),
        head_copy: 0,
    }
}

/// The smallest batch whose matrix products the CUDA backend takes over from the CPU
/// (`ggml_backend_cuda_device_offload_op`).
pub const OP_OFFLOAD_MIN_BATCH: u64 = 32;

/// The cache of `layout`'s layers: bytes for `n_ctx` cells (window layers fewer in iSWA builds),
/// bytes per cell of the full layers, and the parts an iSWA build logs apart.
fn cache_bytes(layout: &crate::kv::KvLayout, n_ctx: u64, n_seq: u64, per_head_mla: Option<(u64, u64, u64)>, swa_cells: &dyn Fn(u64) -> u64, build: u64, notes: &mut Vec<String>) -> Result<(u64, u64, Vec<super::KvPart>)> {
    let mut kv = layout.state_bytes_per_request.saturating_mul(n_seq);
    let mut per_cell = 0u64;
    let mut parts: Vec<super::KvPart> = vec![];
    for g in &layout.groups {
        let (swa, cells) = match g.window {
            Window::Sliding(w) | Window::Chunked(w) if build >= ISWA_BUILD => (true, swa_cells(w)),
            _ => (false, n_ctx),
        };
        let per_token = match per_head_mla {
            Some((heads, k, v)) if g.mla => {
                let (num, den) = layout.kv_ratio;
                let layer = mul_ratio_ceil(heads.saturating_mul(k), num, den, "KV row bytes")?.saturating_add(mul_ratio_ceil(heads.saturating_mul(v), num, den, "KV row bytes")?);
                notes.push(format!("MLA cached per head before b{MLA_BUILD}: {heads} heads x ({k} K + {v} V) values per layer, not the latent"));
                layer.saturating_mul(g.layers)
            }
            _ => g.bytes_per_token,
        };
        per_cell = per_cell.saturating_add(per_token);
        let bytes = per_token.saturating_mul(cells);
        kv = kv.saturating_add(bytes);
        // iSWA builds log the full-attention cache and the window cache apart
        match parts.iter_mut().find(|p| p.cells == cells && (p.window != Window::Full) == swa) {
            Some(p) => {
                p.layers += g.layers;
                p.bytes = Bytes(p.bytes.0.saturating_add(bytes));
            }
            None => parts.push(super::KvPart { kind: if swa { g.kind.clone() } else { "full attention".into() }, window: if swa { g.window } else { Window::Full }, layers: g.layers, cells, bytes: Bytes(bytes) }),
        }
    }
    if parts.len() < 2 {
        parts.clear();
    }
    for p in &parts {
        notes.push(format!("{} cache: {} cells x {} layers = {:.2} MiB", p.kind, p.cells, p.layers, p.bytes.0 as f64 / crate::units::MIB as f64));
    }
    Ok((kv, per_cell, parts))
}

pub(crate) fn run(cx: &Ctx) -> Result<EngineReport> {
    let s = cx.scenario;
    let version = s.engine_version.clone().unwrap_or_else(|| NEWEST_BUILD.into());
    let build = build_number(&version).unwrap_or(u64::MAX);
    let requested = cx.max_model_len;
    // `-ub`: the scenario's batch, else llama.cpp's default; llama.cpp caps it at `n_batch` (2048
    // by default) and `n_batch` at `n_ctx`
    let n_ubatch = s.max_num_batched_tokens.unwrap_or(N_UBATCH).min(N_BATCH).min(requested).max(1);
    let n_seq = s.concurrency.max(1);
    // `-fa on|off` when the scenario says so, else the build's default (`-fa auto` from b6300)
    let flash = s.flash_attention.unwrap_or(build >= FA_AUTO_BUILD);
    let (slot_cells, streams) = cache_cells(requested, n_seq, build, flash);
    let n_ctx = slot_cells.saturating_mul(streams);
    // a shared cache holds every slot's window; separate ones one window each
    let swa_cells = |w: u64| {
        let kept = if streams > 1 { w } else { w.saturating_mul(n_seq) };
        slot_cells.min(pad(kept.saturating_add(n_ubatch), cell_padding(build, flash))).saturating_mul(streams)
    };
    let mut notes = vec![];
    // (K, V) bytes per cell and layer of MLA layers in builds before the latent cache
    let per_head_mla = cx.shape.layers.iter().find_map(|l| match l.mixer {
        Mixer::Mla { heads, qk_rope_head_dim, qk_nope_head_dim, v_head_dim, .. } if build < MLA_BUILD => Some((heads, qk_nope_head_dim + qk_rope_head_dim, v_head_dim)),
        _ => None,
    });
    let (kv, per_cell, parts) = cache_bytes(cx.kv, n_ctx, n_seq, per_head_mla, &swa_cells, build, &mut notes)?;
    // what the GPU holds with layers (-ngl) or the cache (-nkvo) in host memory
    let (gpu_kv, gpu_per_cell) = match cx.host_layers {
        Some((_, on_gpu)) => {
            let (b, c, _) = cache_bytes(on_gpu, n_ctx, n_seq, per_head_mla, &swa_cells, build, &mut vec![])?;
            (b, c)
        }
        None => (kv, per_cell),
    };
    let n_layer = cx.shape.num_layers();
    let (gpu_layers, output_on_gpu, head) = cx.host_layers.map_or((n_layer, true, 0), |(sp, _)| (sp.gpu_layers, sp.output_on_gpu, sp.head));
    if let Some((sp, _)) = cx.host_layers {
        let mib = |b: u64| format!("{:.2} MiB", b as f64 / crate::units::MIB as f64);
        if s.kv_on_host {
            notes.push(format!("-nkvo: the whole cache ({}) is in host memory", mib(kv)));
        } else if sp.gpu_layers == 0 {
            notes.push(format!("no layer on the GPU: the whole cache ({}) is in host memory", mib(kv)));
        } else if gpu_kv < kv {
            notes.push(format!("-ngl: the cache of the {} layers on the GPU is {} there, {} in host memory", sp.gpu_layers, mib(gpu_kv), mib(kv - gpu_kv)));
        }
        if gpu_layers < n_layer {
            notes.push(format!("{} of {n_layer} layers{} in host memory: {} of weights with the token embeddings, run by the CPU (llama.cpp's CPU_Mapped buffer maps the file range that holds them, up to the whole file)", n_layer - gpu_layers, if output_on_gpu { "" } else { " and the output" }, mib(sp.host)));
        }
    }
    let flash_source = match s.flash_attention {
        Some(true) => "-fa on",
        Some(false) => "-fa off",
        None if flash => "on by default from b6300",
        None => "off by default before b6300",
    };
    let mut compute = compute_buffer(cx.shape, slot_cells, n_ubatch, flash);
    if s.kv_on_host || gpu_layers == 0 {
        // the attention over a cache in host memory runs there
        compute.kq = 0;
        compute.mask = 0;
    }
    if !output_on_gpu && n_ubatch >= OP_OFFLOAD_MIN_BATCH {
        compute.head_copy = head;
    }
    let activation = Figure::modelled(
        "compute buffer",
        Bytes(compute.bytes()),
        "max(attention: KQ matrix (no flash attention) + KQ mask + 4 hidden states, output: logits + 1 hidden state), all f32 but the mask (f16 with flash attention); ggml's graph allocator frees the mask before the logits",
        format!("{} (flash attention {flash_source})", compute.describe(cx.shape, slot_cells, n_ubatch, flash)),
    );
    let overhead = Figure::modelled("runtime overhead", Bytes(300 << 20), "CUDA context and cuBLAS workspace, about 300 MiB", "300 MiB");
    let total = cx.weights_per_gpu.0.saturating_add(gpu_kv).saturating_add(compute.bytes()).saturating_add(overhead.bytes.0);
    let fits = total <= cx.memory.0;
    // the buffer llama.cpp fails to allocate: the KV cache, or with none on the GPU the compute buffer
    let failing = if gpu_kv > 0 { gpu_kv } else { compute.bytes() };
    let message = (!fits).then(|| format!("ggml_backend_cuda_buffer_type_alloc_buffer: allocating {} failed: cudaMalloc failed: out of memory ({} on a {} GPU)", gib(failing), gib(total), gib(cx.memory.0)));
    // the largest n_ctx that fits: the KV, and the KQ matrix and mask of the attention moment, grow
    // with the cells; the output moment does not
    let max_len = if gpu_per_cell == 0 {
        // the cells cost the GPU nothing: any n_ctx, if the rest fits
        if fits {
            n_ctx
        } else {
            0
        }
    } else {
        let avail = cx.memory.0.saturating_sub(cx.weights_per_gpu.0.saturating_add(overhead.bytes.0));
        let attention_per_cell = compute.kq.saturating_add(compute.mask).checked_div(n_ctx).unwrap_or(0);
        let by_output = avail.saturating_sub(compute.output()) / gpu_per_cell;
        let by_attention = avail.saturating_sub(compute.hidden.saturating_mul(4)) / gpu_per_cell.saturating_add(attention_per_cell);
        by_output.min(by_attention)
    };
    if n_ctx != requested {
        let rule = if build >= PAD256_BUILD {
            "from b7000 n_ctx, and each separate slot's share, are padded to 256".to_string()
        } else {
            let share = if streams > 1 { ", each separate slot's share of it" } else { "" };
            format!("n_ctx{share} is padded to {} with flash attention {}", if flash { 256 } else { 32 }, if flash { "on" } else { "off" })
        };
        notes.push(format!("n_ctx {requested} becomes {n_ctx} cells ({rule})"));
    }
    if streams > 1 {
        notes.push(format!("{n_ctx} cells in {streams} separate slots of {slot_cells} (-np {n_seq} without --kv-unified)"));
    } else {
        notes.push(format!("{n_ctx} cells shared by {}: {} per slot", count(n_seq, "slot"), count(n_ctx / n_seq, "token")));
    }
    Ok(EngineReport {
        name: "llama.cpp".into(),
        version,
        utilization: 1.0,
        // a request's longest: the whole cache when slots share it, its slot's share otherwise
        max_model_len: if streams > 1 { slot_cells } else { n_ctx },
        block_size: 1,
        kv_pool_bytes: Bytes(kv),
        kv_in_host_memory: Bytes(kv.saturating_sub(gpu_kv)),
        budget_shortfall: Bytes(0),
        kv_tokens: n_ctx,
        num_blocks: n_ctx,
        max_concurrency: n_seq as f64,
        fits,
        message,
        loaded_weights_bytes: cx.weights_per_gpu,
        kv_needed_for_max_len: Bytes(kv),
        max_len_that_fits: max_len,
        activation,
        overhead,
        kv_batch: None,
        block_pool: None,
        cuda_graph_in_budget_bytes: Bytes(0),
        running_cap: None,
        kv_parts: parts,
        budget: None,
        notes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_numbers() {
        assert_eq!(super::build_number("b5121"), Some(5121));
        assert_eq!(super::build_number("~b4460"), Some(4460));
        assert_eq!(super::build_number("latest"), None);
    }
}
