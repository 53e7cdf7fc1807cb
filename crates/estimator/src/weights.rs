//! Weight memory: parameter counts from the tensor inventory and exact bytes for the checkpoint
//! dtype, a chosen dtype, or a quantisation scheme, per GPU under tensor and pipeline parallelism.
//!
//! Rules (exact arithmetic): a dense tensor takes `elements x dtype bytes`; a quantised linear layer
//! takes its scheme's exact storage ([`Quant::matrix_bytes`]); embeddings, norms, biases, routers and
//! the LM head stay in the activation dtype, as in AWQ/GPTQ/FP8 checkpoints and vLLM's online FP8.
//! Tensor parallelism shards as vLLM does ([`Split`]); pipeline parallelism splits layers as vLLM's
//! `get_pp_indices` (the remainder goes to the middle stages), the first stage holds the embedding,
//! the last the final norm and LM head (a tied head is materialised there too), and the per-GPU
//! figure is that of the largest stage.

use crate::dtype::{FloatDtype, Quant, QuantChoice, WeightDtype};
use crate::error::{Error, Result};
use crate::model::{ModelShape, Role, Tensor};
use crate::units::{Bytes, Figure};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// How the weights are stored, resolved from the scenario and the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightPlan {
    /// Dtype of activations, the KV cache under `auto`, and every unquantised tensor.
    pub activation: FloatDtype,
    /// Quantisation of the linear layers, if any.
    pub quant: Option<Quant>,
    /// Short label, e.g. `bf16` or `awq w4 g128 + bf16`.
    pub label: String,
    pub notes: Vec<String>,
    /// The token embeddings stay in host memory and a tied head is copied to the GPU that holds
    /// the output (llama.cpp's input layer, whatever `-ngl` says).
    #[serde(default)]
    pub host_embedding: bool,
}

/// Resolves the user's dtype and quantisation choices against the checkpoint.
pub fn weight_plan(shape: &ModelShape, dtype: WeightDtype, quant: QuantChoice) -> Result<WeightPlan> {
    let mut notes = vec![];
    let checkpoint_float = shape.checkpoint_dtype;
    let activation = match dtype {
        WeightDtype::Fp32 => FloatDtype::F32,
        WeightDtype::Bf16 => FloatDtype::Bf16,
        WeightDtype::Fp16 => FloatDtype::F16,
        _ => match checkpoint_float {
            Some(FloatDtype::F32) => {
                notes.push("fp32 checkpoint served in bf16 (serving engines cast fp32 to 16 bit under dtype auto)".into());
                FloatDtype::Bf16
            }
            Some(d) => d,
            None => {
                notes.push("config has no torch_dtype: activations and unquantised tensors assumed bf16".into());
                FloatDtype::Bf16
            }
        },
    };
    let from_dtype = match dtype {
        WeightDtype::Fp8 => Some(Quant::Fp8 { block: None, skip: vec![] }),
        WeightDtype::Int8 => Some(Quant::Int8PerChannel { skip: vec![] }),
        WeightDtype::Int4 => Some(Quant::Awq { bits: 4, group_size: Some(128), skip: vec![] }),
        _ => None,
    };
    let q = match quant {
        QuantChoice::Auto => match dtype {
            WeightDtype::Auto => shape.quantization.clone(),
            WeightDtype::Fp32 | WeightDtype::Bf16 | WeightDtype::Fp16 => {
                if let Some(q) = &shape.quantization {
                    notes.push(format!("checkpoint is {}; sized dequantised to {} as asked", q.name(), activation.as_str()));
                }
                None
            }
            _ => from_dtype,
        },
        QuantChoice::Checkpoint => match &shape.quantization {
            Some(q) => Some(q.clone()),
            None => {
                return Err(Error::scenario(
                    "quantization",
                    "checkpoint",
                    "a checkpoint whose config.json has a quantization_config (an engine method such as compressed-tensors or modelopt reads the scheme from it); this config has none: pass the checkpoint's config.json, or name the scheme (awq, gptq, w4a16, fp8, int8, nvfp4, mxfp4, bnb4)",
                ))
            }
        },
        QuantChoice::None => {
            if let Some(q) = &shape.quantization {
                notes.push(format!("checkpoint is {}; sized without quantisation as asked", q.name()));
            }
            None
        }
        choice => {
            let wanted = choice.default_scheme();
            // keep the checkpoint's own parameters (bits, group, block) when it uses the same method
            match (&shape.quantization, &wanted) {
                (Some(have), Some(w)) if std::mem::discriminant(have) == std::mem::discriminant(w) => Some(have.clone()),
                _ => wanted,
            }
        }
    };
    let label = match &q {
        Some(q @ Quant::Gguf { .. }) => format!("{} (llama.cpp's per-tensor mix, norms f32)", q.name()),
        Some(q) => format!("{} + {}", q.name(), activation.as_str()),
        None => activation.as_str().to_string(),
    };
    Ok(WeightPlan { activation, quant: q, label, notes, host_embedding: false })
}

/// Whether the checkpoint leaves this tensor unquantised: the last module named by a
/// `modules_to_not_convert` / `ignore` / `exclude_modules` entry is its role's module
/// (`self_attn`, `experts`) or its own (`q_b_proj`), whether written plainly (`lm_head`,
/// `model.layers.0.self_attn.kv_b_proj`), as a glob (`model.layers.*.self_attn*`) or as a
/// compressed-tensors regex (`re:.*self_attn.*`, `re:.*mlp.gate$`). An entry naming one layer
/// is applied to every layer.
fn skipped(q: &Quant, t: &Tensor) -> bool {
    let own = t.name.rsplit('.').next().unwrap_or(&t.name);
    q.skip().iter().any(|s| {
        let s = s.strip_prefix("re:").unwrap_or(s).trim_end_matches(['*', '$', '.']);
        let last = s.rsplit('.').next().unwrap_or(s).trim_matches('*');
        last == own || t.role.module_names().iter().any(|n| *n == last)
    })
}

/// How one GPU holds the routed experts (and their per-expert biases): a slice of every expert
/// over `ranks` GPUs (tensor parallelism, `ranks` = tp unless the engine widens the expert group),
/// or, `whole`, `ceil(experts / ranks)` whole experts (expert parallelism).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpertSplit {
    pub ranks: u64,
    pub whole: bool,
}

impl ExpertSplit {
    /// Experts sliced like every other weight over `tp` ranks.
    pub fn tp(tp: u64) -> Self {
        ExpertSplit { ranks: tp.max(1), whole: false }
    }
    /// `(rows, cols, copies)` of a routed tensor on one GPU.
    pub fn shard(self, t: &Tensor) -> (u64, u64, u64) {
        if self.whole && self.ranks > 1 {
            (t.rows, t.cols, t.count.div_ceil(self.ranks))
        } else {
            let (r, c) = t.shard(self.ranks);
            (r, c, t.count)
        }
    }
}

/// Routed experts and their per-expert biases (one copy per expert).
pub fn is_routed(t: &Tensor) -> bool {
    t.role == Role::Expert || (t.role == Role::Bias && t.count > 1)
}

/// Exact bytes of one tensor group on one of `tp` ranks (routed experts as `ex` places them).
pub fn tensor_bytes(t: &Tensor, tp: u64, ex: ExpertSplit, plan: &WeightPlan) -> u128 {
    let (values, rest) = tensor_parts(t, tp, ex, plan);
    values + rest
}

/// Bytes of one tensor group on one of `tp` ranks as `(values, scales and zeros)`: a quantised
/// linear stores its packed values and, in tensors of their own, its scales, zeros and indices.
/// Routed experts follow `ex` ([`ExpertSplit`]) instead of `tp`.
pub fn tensor_parts(t: &Tensor, tp: u64, ex: ExpertSplit, plan: &WeightPlan) -> (u128, u128) {
    let (rows, cols, count) = if is_routed(t) { ex.shard(t) } else {
        let (r, c) = t.shard(tp);
        (r, c, t.count)
    };
    let quantised = match &plan.quant {
        Some(q) if t.role.is_quantisable_linear() && cols > 1 && !skipped(q, t) => Some(q),
        _ => None,
    };
    let n = count as u128;
    match quantised {
        Some(q) => {
            let all = q.matrix_bytes(rows, cols);
            let values = q.packed_bytes(rows, cols).min(all);
            (values as u128 * n, (all - values) as u128 * n)
        }
        None => (rows as u128 * cols as u128 * plan.activation.bytes() as u128 * n, 0),
    }
}

/// The globals a pipeline stage holds: the embedding (and position embedding, encoder) on the
/// first, the rest (final norm, head) on the last, and a tied head's copy of the embedding on
/// the last when `pp > 1`. `(before the layers, after them)`.
/// With `host_embedding` (llama.cpp) the token (and position) embeddings stay off the GPUs and a tied head's
/// copy goes to the last stage even without pipeline parallelism.
fn stage_globals(shape: &ModelShape, stage: usize, last: usize, pp: u64, host_embedding: bool) -> (Vec<&Tensor>, Vec<&Tensor>) {
    let (mut before, mut after) = (vec![], vec![]);
    for t in &shape.globals {
        let first = matches!(t.role, Role::Embedding | Role::PositionEmbedding | Role::Encoder);
        if first && stage == 0 && !(host_embedding && matches!(t.role, Role::Embedding | Role::PositionEmbedding)) {
            before.push(t);
        } else if !first && stage == last {
            after.push(t);
        }
        let tied_head = t.is_token_embedding() && shape.tied_embeddings;
        if tied_head && (pp > 1 || host_embedding) && stage == last {
            after.push(t);
        }
    }
    (before, after)
}

/// One layer's parameter allocations on one TP rank, as vLLM-style loaders (vLLM, SGLang) create
/// them: q, k and v fused into one `qkv_proj` and their biases into one, gate and up already
/// fused, the experts of a MoE layer one tensor per kind, a quantised linear's values apart from
/// its scales and zeros. Each allocation says whether its layout is the checkpoint's (`true`) or
/// a quantised linear's, which vLLM repacks after loading (Marlin) into tensors whose blocks the
/// estimate does not follow.
fn layer_allocations(tensors: &[Tensor], tp: u64, ex: ExpertSplit, plan: &WeightPlan, out: &mut Vec<(u64, bool)>) {
    let fusable = |t: &Tensor, bias: bool| matches!(t.split, crate::model::Split::Heads { .. }) && if bias { t.role == Role::Bias } else { matches!(t.role, Role::AttnQ | Role::AttnKv) };
    let mut push = |(v, r): (u128, u128)| {
        // a quantised linear has bytes besides its values
        let plain = r == 0;
        out.push((u64::try_from(v).unwrap_or(u64::MAX), plain));
        out.push((u64::try_from(r).unwrap_or(u64::MAX), plain));
    };
    let mut i = 0;
    while i < tensors.len() {
        let bias = tensors[i].role == Role::Bias;
        let mut j = i + 1;
        if fusable(&tensors[i], bias) {
            while j < tensors.len() && fusable(&tensors[j], bias) && tensors[j].role != Role::AttnQ {
                j += 1;
            }
        }
        push(tensors[i..j].iter().map(|t| tensor_parts(t, tp, ex, plan)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)));
        i = j;
    }
}

/// Runs of identical layers up to this many copies (every real model's) are served in full;
/// longer runs are extrapolated from their last half (within 0.1 % in the tests).
const SIMULATED_COPIES: u64 = 512;

/// Serves `copies` repetitions of one layer's allocations; returns the reserved and allocated
/// bytes of the copies that were extrapolated instead of served.
fn serve_copies(seg: &mut crate::allocator::Segments, allocs: &[(u64, bool)], copies: u64) -> (u128, u128) {
    let serve = |seg: &mut crate::allocator::Segments| allocs.iter().for_each(|&(a, plain)| seg.alloc_counting(a, plain));
    let served = copies.min(SIMULATED_COPIES);
    let half = served / 2;
    (0..half).for_each(|_| serve(seg));
    let (r_half, a_half) = (seg.reserved(), seg.allocated());
    (half..served).for_each(|_| serve(seg));
    let rest = (copies - served) as u128;
    let per = (served - half).max(1) as u128;
    ((seg.reserved() - r_half) as u128 * rest / per, (seg.allocated() - a_half) as u128 * rest / per)
}

/// The weights of the most loaded GPU once PyTorch's caching allocator has served them
/// ([`crate::allocator`]), with `extra` allocations made at load (the rotary cache) after the
/// embedding. Exact for unquantised checkpoints; quantised linears are taken as their values plus
/// one tensor of scales and zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadedMemory {
    /// What PyTorch counts as allocated (vLLM's "Model loading took").
    pub allocated: u64,
    /// The segments reserved from the GPU (SGLang's free-memory drop).
    pub reserved: u64,
}

/// See [`LoadedMemory`].
pub fn loaded_memory(shape: &ModelShape, plan: &WeightPlan, tp: u64, pp: u64, extra_allocs: &[u64]) -> LoadedMemory {
    loaded_memory_ep(shape, plan, tp, pp, ExpertSplit::tp(tp), extra_allocs)
}

/// [`loaded_memory`] with the routed experts placed as `ex` says.
pub fn loaded_memory_ep(shape: &ModelShape, plan: &WeightPlan, tp: u64, pp: u64, ex: ExpertSplit, extra_allocs: &[u64]) -> LoadedMemory {
    let tp = tp.max(1);
    let pp = pp.max(1);
    let parts = pp_partition(shape.num_layers(), pp);
    let last = parts.len().saturating_sub(1);
    let mut start = 0usize;
    let mut most = LoadedMemory::default();
    for (s, &n) in parts.iter().enumerate() {
        let (before, after) = stage_globals(shape, s, last, pp, plan.host_embedding);
        let mut seg = crate::allocator::Segments::default();
        let (mut extra, mut extra_alloc): (u128, u128) = (0, 0);
        let mut allocs = vec![];
        for t in before {
            layer_allocations(std::slice::from_ref(t), tp, ex, plan, &mut allocs);
        }
        allocs.extend(extra_allocs.iter().map(|&a| (a, true)));
        allocs.drain(..).for_each(|(a, plain)| seg.alloc_counting(a, plain));
        for (l, copies) in shape.runs_in(start, start + n as usize) {
            layer_allocations(&l.tensors, tp, ex, plan, &mut allocs);
            let (r, a) = serve_copies(&mut seg, &allocs, copies);
            extra += r;
            extra_alloc += a;
            allocs.clear();
        }
        start += n as usize;
        for t in after {
            layer_allocations(std::slice::from_ref(t), tp, ex, plan, &mut allocs);
        }
        allocs.drain(..).for_each(|(a, plain)| seg.alloc_counting(a, plain));
        let stage = LoadedMemory {
            allocated: u64::try_from(seg.allocated() as u128 + extra_alloc).unwrap_or(u64::MAX),
            reserved: u64::try_from(seg.reserved() as u128 + extra).unwrap_or(u64::MAX),
        };
        if stage.reserved >= most.reserved {
            most = stage;
        }
    }
    most
}

/// Bytes of tensors on one of `tp` GPUs as the plan stores them: a GGUF preset's per-tensor types
/// (which depend on each tensor's place in the model; llama.cpp's row split gives every split
/// tensor `ceil(bytes / tp)`, rows are not cut mid-block), or the plan's dtype and quantisation.
struct Sizer<'a> {
    shape: &'a ModelShape,
    plan: &'a WeightPlan,
    tp: u64,
    ex: ExpertSplit,
    placed: Option<Vec<crate::gguf::Placed<'a>>>,
}

impl<'a> Sizer<'a> {
    fn new(shape: &'a ModelShape, plan: &'a WeightPlan, tp: u64, ex: ExpertSplit) -> Self {
        let placed = match plan.quant {
            Some(Quant::Gguf { ftype }) => Some(crate::gguf::place(shape, ftype)),
            _ => None,
        };
        Sizer { shape, plan, tp, ex, placed }
    }
    fn share(&self, p: &crate::gguf::Placed) -> u128 {
        if self.tp > 1 && p.tensor.split != crate::model::Split::Replicated {
            p.bytes.div_ceil(self.tp as u128)
        } else {
            p.bytes
        }
    }
    /// Decoder layers `lo..hi`.
    fn layers(&self, lo: usize, hi: usize) -> u128 {
        match &self.placed {
            Some(placed) => placed.iter().filter(|p| p.layer.is_some_and(|l| l >= lo && l < hi)).map(|p| self.share(p)).sum(),
            None => self.shape.runs_in(lo, hi).map(|(l, copies)| l.tensors.iter().map(|t| tensor_bytes(t, self.tp, self.ex, self.plan)).sum::<u128>() * copies as u128).sum(),
        }
    }
    /// The input layer llama.cpp keeps in host memory: token (and learned position) embeddings.
    fn input_layer(&self) -> u128 {
        self.shape.globals.iter().filter(|t| matches!(t.role, Role::Embedding | Role::PositionEmbedding)).map(|t| self.global(t)).sum()
    }
    /// One tensor outside the layers.
    fn global(&self, t: &Tensor) -> u128 {
        match &self.placed {
            Some(placed) => placed.iter().filter(|p| p.layer.is_none() && std::ptr::eq(p.tensor, t)).map(|p| self.share(p)).sum(),
            None => tensor_bytes(t, self.tp, self.ex, self.plan),
        }
    }
}

/// Weight bytes on one GPU of each pipeline stage: its layers and the globals it holds.
fn stage_bytes(shape: &ModelShape, plan: &WeightPlan, tp: u64, pp: u64, ex: ExpertSplit) -> Vec<u128> {
    let sizer = Sizer::new(shape, plan, tp, ex);
    let parts = pp_partition(shape.num_layers(), pp);
    let last = parts.len().saturating_sub(1);
    let mut start = 0usize;
    let mut out = Vec::with_capacity(parts.len());
    for (s, &n) in parts.iter().enumerate() {
        let end = start + n as usize;
        let (before, after) = stage_globals(shape, s, last, pp, plan.host_embedding);
        out.push(sizer.layers(start, end) + before.iter().chain(after.iter()).map(|t| sizer.global(t)).sum::<u128>());
        start = end;
    }
    out
}

/// Bytes of the token (and learned position) embeddings, which llama.cpp keeps in host memory (`CPU_Mapped model
/// buffer` when every layer is on the GPU); 0 unless the plan says so.
pub fn host_embedding_bytes(shape: &ModelShape, plan: &WeightPlan) -> u64 {
    if !plan.host_embedding {
        return 0;
    }
    u64::try_from(Sizer::new(shape, plan, 1, ExpertSplit::tp(1)).input_layer()).unwrap_or(u64::MAX)
}

/// llama.cpp's `-ngl n` on one GPU: the last `n` decoder layers go to the GPU, the output layer
/// (final norm, head, a tied head's copy) too when `n` exceeds the layer count, and the input
/// layer (token embeddings) stays in host memory (`llama_model::load_tensors`: `i_gpu_start =
/// n_layer - n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LayerSplit {
    /// Decoder layers on the GPU.
    pub gpu_layers: u64,
    /// Whether the output layer is on the GPU.
    pub output_on_gpu: bool,
    /// Weight bytes on the GPU (`CUDA0 model buffer`).
    pub gpu: u64,
    /// Weight bytes in host memory, token embeddings included (`CPU_Mapped model buffer`).
    pub host: u64,
    /// Bytes of the output head's weight (the LM head, or the token embedding it is tied to), which
    /// the scheduler copies to the GPU for a large batch when the output layer is on the host.
    pub head: u64,
}

/// See [`LayerSplit`]. Under a GGUF preset every tensor has its preset type; otherwise the plan's.
pub fn llamacpp_layer_split(shape: &ModelShape, plan: &WeightPlan, ngl: u64) -> LayerSplit {
    let n_layer = shape.num_layers();
    let gpu_layers = ngl.min(n_layer);
    let output_on_gpu = ngl > n_layer;
    let first_gpu = (n_layer - gpu_layers) as usize;
    let sizer = Sizer::new(shape, plan, 1, ExpertSplit::tp(1));
    let on_gpu = sizer.layers(first_gpu, n_layer as usize);
    let on_host = sizer.layers(0, first_gpu);
    // one GPU's globals with the input layer on the host: the vision tower (its own mmproj file,
    // which llama.cpp's mtmd puts on the GPU) before the layers; the output layer after them (final
    // norm, head, or the copy of the token embedding a tied head uses)
    let (before, after) = stage_globals(shape, 0, 0, 1, true);
    let bytes = |ts: &[&Tensor]| -> u128 { ts.iter().map(|t| sizer.global(t)).sum() };
    let head: u128 = after.iter().filter(|t| matches!(t.role, Role::LmHead | Role::Embedding)).map(|t| sizer.global(t)).sum();
    let tied_copy: u128 = after.iter().filter(|t| t.role == Role::Embedding).map(|t| sizer.global(t)).sum();
    let output = bytes(&after);
    let (gpu, host) = if output_on_gpu { (on_gpu + bytes(&before) + output, on_host) } else { (on_gpu + bytes(&before), on_host + output - tied_copy) };
    let host = host + sizer.input_layer();
    let to = |b: u128| u64::try_from(b).unwrap_or(u64::MAX);
    LayerSplit { gpu_layers, output_on_gpu, gpu: to(gpu), host: to(host), head: to(head) }
}

/// What `--cpu-offload-gb` moves to host memory (vLLM, and SGLang, which copies its loader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Offload {
    /// Bytes moved to host memory on the GPU that holds the most after offloading.
    pub bytes: u64,
    /// Weights left on that GPU.
    pub per_gpu: u64,
    /// That GPU's decoder layers whose parameters all moved.
    pub whole_layers: u64,
    /// The most bytes moved from one layer (what vLLM V0 copies back for that layer's forward).
    pub largest_layer: u64,
}

/// vLLM's `maybe_offload_to_cpu`, which `make_layers` applies to each decoder layer as it is
/// built: the layer's parameters move to host memory one at a time, in order, while fewer than
/// `limit` bytes have moved, so the parameter that crosses the limit moves too. Embeddings, the
/// final norm and the LM head stay. The count is per process, so per GPU: every pipeline stage
/// offloads its own first layers, every TP rank its own shards. Parameters are those of
/// [`layer_allocations`] (fused qkv and gate/up, a quantised linear's values apart from its
/// scales).
pub fn cpu_offload(shape: &ModelShape, plan: &WeightPlan, tp: u64, pp: u64, ex: ExpertSplit, limit: u64) -> Offload {
    let (tp, pp) = (tp.max(1), pp.max(1));
    let parts = pp_partition(shape.num_layers(), pp);
    let totals = stage_bytes(shape, plan, tp, pp, ex);
    let mut start = 0usize;
    let mut worst = Offload::default();
    let mut allocs = vec![];
    for (s, (&n, &total)) in parts.iter().zip(&totals).enumerate() {
        let (mut moved, mut whole, mut largest): (u128, u64, u128) = (0, 0, 0);
        for (l, copies) in shape.runs_in(start, start + n as usize) {
            allocs.clear();
            layer_allocations(&l.tensors, tp, ex, plan, &mut allocs);
            let layer: u128 = allocs.iter().map(|&(a, _)| a as u128).sum();
            // whole layers at once while the limit is not reached before their end
            let room = (limit as u128).saturating_sub(moved);
            let full = room.checked_div(layer).map_or(0, |f| f.min(copies as u128) as u64);
            moved += layer * full as u128;
            if full > 0 {
                largest = largest.max(layer);
            }
            whole += full;
            if full < copies && moved < limit as u128 {
                // the layer where the limit falls: parameters until it is reached
                let mut part: u128 = 0;
                for &(a, _) in allocs.iter().filter(|a| a.0 > 0) {
                    if moved + part >= limit as u128 {
                        break;
                    }
                    part += a as u128;
                }
                moved += part;
                largest = largest.max(part);
                if part == layer {
                    whole += 1;
                }
            }
        }
        start += n as usize;
        let to = |b: u128| u64::try_from(b).unwrap_or(u64::MAX);
        let stage = Offload { bytes: to(moved), per_gpu: to(total.saturating_sub(moved)), whole_layers: whole, largest_layer: to(largest) };
        if s == 0 || stage.per_gpu > worst.per_gpu {
            worst = stage;
        }
    }
    worst
}

/// Weight figures for a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightReport {
    pub params_total: u64,
    pub params_active: u64,
    /// One full copy of the weights.
    pub total: Bytes,
    /// On the most loaded GPU.
    pub per_gpu: Bytes,
    /// Whole-model bytes per component (embeddings, attention, MLP, experts, ...).
    pub by_component: Vec<(Cow<'static, str>, Bytes)>,
    pub plan: WeightPlan,
    pub figure: Figure,
}

/// vLLM's `get_pp_indices`: layers per stage, remainder to the stages before the last.
pub fn pp_partition(layers: u64, pp: u64) -> Vec<u64> {
    let pp = pp.max(1);
    let base = layers / pp;
    let mut parts = vec![base; pp as usize];
    let rem = (layers % pp) as usize;
    for i in 2..rem + 2 {
        if let Some(idx) = parts.len().checked_sub(i) {
            parts[idx] += 1;
        }
    }
    parts
}

fn component(role: Role) -> &'static str {
    match role {
        Role::Embedding | Role::PositionEmbedding => "embeddings",
        Role::LmHead => "lm_head",
        Role::AttnQ | Role::AttnKv | Role::AttnO => "attention",
        Role::Mlp => "mlp",
        Role::Expert => "experts",
        Role::SharedExpert => "shared_experts",
        Role::Router => "routers",
        Role::RecurrentLinear | Role::RecurrentParam => "recurrent",
        Role::Norm | Role::Bias => "norms_biases",
        Role::Encoder => "encoder",
    }
}

/// Weight bytes per GPU under `tp` x `pp`.
pub fn weights(shape: &ModelShape, plan: &WeightPlan, tp: u64, pp: u64) -> Result<WeightReport> {
    weights_ep(shape, plan, tp, pp, ExpertSplit::tp(tp))
}

/// [`weights`] with the routed experts placed as `ex` says (attention and shared weights still
/// split by `tp`, replicated across data-parallel replicas).
pub fn weights_ep(shape: &ModelShape, plan: &WeightPlan, tp: u64, pp: u64, ex: ExpertSplit) -> Result<WeightReport> {
    let tp = tp.max(1);
    let pp = pp.max(1);
    if pp > shape.num_layers().max(1) {
        return Err(Error::scenario("pp", pp, format!("at most the number of layers ({})", shape.num_layers())));
    }
    let mut by: Vec<(&'static str, u128)> = vec![];
    let mut total: u128 = 0;
    let mut add = |role: Role, b: u128| {
        total += b;
        let name = component(role);
        match by.iter_mut().find(|(n, _)| std::ptr::eq(*n, name)) {
            Some(e) => e.1 += b,
            None => by.push((name, b)),
        }
    };
    if let Some(Quant::Gguf { ftype }) = plan.quant {
        crate::gguf::place(shape, ftype).iter().for_each(|p| add(p.tensor.role, p.bytes));
    } else {
        let one = |t: &Tensor| tensor_bytes(t, 1, ExpertSplit::tp(1), plan);
        shape.globals.iter().for_each(|t| add(t.role, one(t)));
        for (l, n) in shape.runs_all() {
            l.tensors.iter().for_each(|t| add(t.role, one(t) * n as u128));
        }
    }
    let per_gpu = stage_bytes(shape, plan, tp, pp, ex).into_iter().max().unwrap_or(0);
    let to = |b: u128, what: &str| u64::try_from(b).map(Bytes).map_err(|_| Error::overflow(what));
    let total_b = to(total, "weight bytes")?;
    let per_gpu_b = to(per_gpu, "weight bytes per GPU")?;
    let p_total = shape.params_total();
    let mut figure = Figure::exact(
        "weights",
        per_gpu_b,
        "sum over tensors of elements x bytes (quantised linears: packed values + scales + zeros), sharded by TP, largest PP stage",
        format!(
            "{}B params as {}: {} in all; per GPU (tp={tp}, pp={pp}{}): {}",
            crate::units::fixed(p_total as f64 / 1e9, 3),
            plan.label,
            total_b,
            match (ex.whole, ex.ranks) {
                (true, r) if r > 1 => format!(", experts whole over {r} GPUs"),
                (false, r) if r != tp => format!(", experts sliced over {r} GPUs"),
                _ => String::new(),
            },
            per_gpu_b
        ),
    );
    for n in &plan.notes {
        figure = figure.note(n.clone());
    }
    if let Some(Quant::Gguf { ftype }) = plan.quant {
        // bytes by ggml type, largest first
        let mut by_type: Vec<(&'static str, u128)> = vec![];
        for p in crate::gguf::place(shape, ftype).iter().filter(|p| p.bytes > 0) {
            match by_type.iter_mut().find(|(n, _)| *n == p.ty.name()) {
                Some(e) => e.1 += p.bytes,
                None => by_type.push((p.ty.name(), p.bytes)),
            }
        }
        by_type.sort_by(|a, b| b.1.cmp(&a.1));
        let parts: Vec<String> = by_type.iter().map(|(n, b)| format!("{n} {}", Bytes(u64::try_from(*b).unwrap_or(u64::MAX)))).collect();
        figure = figure.note(format!("{} as llama-quantize lays it out: {}", ftype.as_str().to_ascii_uppercase(), parts.join(", ")));
        if shape.globals.iter().any(|t| t.role == Role::Encoder) {
            figure = figure.note("the vision/audio tower is in a separate mmproj file, not counted");
        }
    }
    if plan.host_embedding {
        figure = figure.note(format!(
            "token embeddings ({}) stay in host memory (llama.cpp's input layer){}",
            Bytes(host_embedding_bytes(shape, plan)),
            if shape.tied_embeddings { "; the tied output head is copied to the GPU" } else { "" }
        ));
    }
    if shape.globals.iter().any(|t| t.role == Role::Encoder) && !matches!(plan.quant, Some(Quant::Gguf { .. })) {
        figure = figure.note("includes a vision tower estimated from vision_config (modelled, about +-5 % of that part)");
    }
    Ok(WeightReport {
        params_total: p_total,
        params_active: shape.params_active(),
        total: total_b,
        per_gpu: per_gpu_b,
        by_component: by.into_iter().map(|(n, b)| (Cow::Borrowed(n), Bytes(u64::try_from(b).unwrap_or(u64::MAX)))).collect(),
        plan: plan.clone(),
        figure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeating_layers_are_extrapolated_exactly() {
        use crate::allocator::Segments;
        const MIB: u64 = 1 << 20;
        let layers: [&[(u64, bool)]; 3] = [
            &[(8 * MIB, true), (12 * MIB, true), (259 * MIB + 512, true), (20_000, true)],
            &[(6 * MIB, true), (3 * MIB, false), (31 * MIB + MIB / 2, true)],
            &[(7 * MIB, true)],
        ];
        for allocs in layers {
            for copies in [1u64, 2, 3, 7, 61, 126, 257, 300, 1500, 3001] {
                let mut naive = Segments::default();
                naive.alloc(5 * MIB);
                let mut fast = naive.clone();
                (0..copies).for_each(|_| allocs.iter().for_each(|&(a, p)| naive.alloc_counting(a, p)));
                let (r, a) = serve_copies(&mut fast, allocs, copies);
                let (fr, fa) = (fast.reserved() as u128 + r, fast.allocated() as u128 + a);
                let (nr, na) = (naive.reserved() as u128, naive.allocated() as u128);
                if copies <= 300 {
                    // served in full: exact
                    assert_eq!((fr, fa), (nr, na), "{allocs:?} x {copies}");
                } else {
                    // a run longer than 512 copies is extrapolated from its last 256
                    assert!(fr.abs_diff(nr) * 1_000 <= nr && fa.abs_diff(na) * 1_000 <= na, "{allocs:?} x {copies}: {fr} vs {nr}");
                }
            }
        }
    }
    #[test]
    fn pp_partition_matches_vllm() {
        assert_eq!(pp_partition(32, 4), vec![8, 8, 8, 8]);
        assert_eq!(pp_partition(10, 4), vec![2, 3, 3, 2]);
        assert_eq!(pp_partition(61, 2), vec![31, 30]);
    }
}
