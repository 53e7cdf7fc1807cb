//! Engine profiles: how each serving engine turns GPU memory into a KV-cache pool, what it
//! allocates besides, and when it refuses to start. One module per engine; the behaviour that
//! changed across versions takes the version as an input (default: the newest behaviour).

mod candle;
pub use candle::PEAK_TOLERANCE_PCT as CANDLE_PEAK_TOLERANCE_PCT;
pub(crate) use candle::request_bytes as candle_request_bytes;
mod hf;
mod llamacpp;
pub use llamacpp::N_UBATCH as LLAMACPP_N_UBATCH;
pub use llamacpp::NEWEST_BUILD as LLAMACPP_NEWEST_BUILD;
pub mod sglang;
pub mod vllm;

use crate::error::Result;
use crate::kv::KvLayout;
use crate::model::ModelShape;
use crate::scenario::{Engine, Scenario};
use crate::units::{Bytes, Figure};
use crate::weights::WeightPlan;
use serde::{Deserialize, Serialize};

/// What the engine would allocate and report at start-up, per GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    pub name: String,
    /// Version whose behaviour is modelled.
    pub version: String,
    /// Memory fraction used (vLLM `gpu_memory_utilization`, SGLang `mem_fraction_static`; 1 otherwise).
    pub utilization: f64,
    pub max_model_len: u64,
    pub block_size: u64,
    /// KV memory the engine allocates (vLLM "Available KV cache memory", SGLang token pool, llama.cpp KV buffer).
    pub kv_pool_bytes: Bytes,
    /// The part of the pool in host memory (llama.cpp `-ngl`, `-nkvo`); 0 for the others.
    #[serde(default)]
    pub kv_in_host_memory: Bytes,
    /// What the engine's own use exceeds its budget by, when it does (vLLM logs it as a negative
    /// "Available KV cache memory"); zero otherwise.
    #[serde(default)]
    pub budget_shortfall: Bytes,
    /// Tokens the pool holds (vLLM "GPU KV cache size", SGLang `max_total_num_tokens`, llama.cpp `n_ctx`).
    pub kv_tokens: u64,
    pub num_blocks: u64,
    /// Requests of `max_model_len` tokens that fit at once.
    pub max_concurrency: f64,
    /// False when the engine would refuse to start.
    pub fits: bool,
    /// The engine's own error message when it would refuse, with its figures.
    pub message: Option<String>,
    /// What the engine reports as loaded model memory ("Model loading took X GiB"): the weights
    /// plus buffers it creates at load (vLLM: the rotary cos/sin cache).
    #[serde(default)]
    pub loaded_weights_bytes: Bytes,
    /// Bytes one request of `max_model_len` tokens needs in this engine.
    pub kv_needed_for_max_len: Bytes,
    /// The largest length one request can have (vLLM's "estimated maximum model length").
    pub max_len_that_fits: u64,
    pub activation: Figure,
    pub overhead: Figure,
    /// The CUDA-graph memory the engine sets aside inside its budget before the KV cache (vLLM's
    /// estimate from 0.20, part of `overhead`); 0 where graphs are captured after the KV cache,
    /// outside the budget, or not at all.
    #[serde(default)]
    pub cuda_graph_in_budget_bytes: Bytes,
    /// The KV of the scenario's batch when this engine's cache differs from the generic layout
    /// (candle's per-family cache types); `None`: the generic layout's figure holds.
    #[serde(default)]
    pub kv_batch: Option<Figure>,
    /// Whole blocks the engine hands out where a request's bytes are not its tokens' (vLLM V1's
    /// recurrent hybrids, [`vllm::MambaPaging`]): the scenario's KV and the requests that fit are
    /// counted in blocks. `None`: the generic layout's bytes hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_pool: Option<BlockPool>,
    /// The pool's parts where the engine sizes layer kinds apart and logs each (llama.cpp's
    /// full-attention and sliding-window caches); empty where it logs one pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kv_parts: Vec<KvPart>,
    /// The most requests the engine's scheduler runs at once, whatever the memory holds (vLLM
    /// `max_num_seqs`, SGLang `max_running_requests`); more wait in its queue. `None` where the
    /// engine sets no such limit apart from its memory (llama.cpp's slots are its `n_ctx` cells,
    /// transformers and candle run the batch they are given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_cap: Option<RunningCap>,
    /// The engine's own split of the memory where it decides the verdict instead of `memory x
    /// utilization` less everything else (SGLang); `None`: that generic budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    pub notes: Vec<String>,
}

/// How an engine that sizes its KV pool apart from its activations bounds a scenario. SGLang's
/// static fraction holds the weights and the token pool, allocated whole at start-up; the rest of
/// the free memory at load holds the request-to-token table and the pool's buffers
/// (`beside_pool`), then the activations of a prefill chunk and the CUDA graphs. The scenario's
/// requests fit when their KV fits the pool and the activation peak fits in what is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// All the memory the engine may use on the GPU (SGLang: the free memory at load).
    pub usable: Bytes,
    /// How `usable` is derived, for display.
    pub derivation: String,
    /// What the requests' KV may take: the pool, every part of it.
    pub kv_room: Bytes,
    /// The pool the full-attention (or only) layers draw on: tokens it holds and bytes per token.
    pub full_pool: PoolPart,
    /// A separate pool for the sliding-window layers (SGLang's `SWAKVPool`), where a request
    /// holds at most `window` tokens; `None` with one pool.
    pub window_pool: Option<(PoolPart, u64)>,
    /// The request slots of a separate state pool (SGLang's `MambaPool` for recurrent layers):
    /// `tokens` are slots, one per request, `bytes_per_token` the bytes of one; `None` without.
    #[serde(default)]
    pub state_pool: Option<PoolPart>,
    /// What the activation peak needs beyond what is left for it after the pool and what is
    /// allocated beside it (zero when it fits).
    pub work_shortfall: Bytes,
    /// The pool keeps the window layers' tokens at full length (one pool for every layer), so a
    /// request of `len` tokens takes `len x bytes per token` there.
    pub windows_at_full_length: bool,
    /// What the engine allocates with the pool beyond what requests hold (SGLang: the
    /// request-to-token table, the buffers' padding rows and segment rounding, the free-slot list,
    /// a state pool's padding slot; [`sglang::PoolSide`]), outside the pool's budget but for that
    /// slot from 0.5.17. Part of `overhead`.
    #[serde(default)]
    pub beside_pool: Bytes,
    /// The free memory left once the pool and what is allocated beside it are (SGLang's "Memory
    /// pool end. avail mem"): `usable` less the weights as loaded, the pool and `beside_pool`.
    #[serde(default)]
    pub left_after_pool: Bytes,
}

/// The scheduler's limit on requests running at once ([`EngineReport::running_cap`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningCap {
    pub requests: u64,
    /// The setting and where its value comes from (`max_num_seqs 1024: vLLM 0.11's default on
    /// this GPU`), for display.
    pub source: String,
}

/// Tokens one part of an engine's pool holds, and the bytes each takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPart {
    pub tokens: u64,
    pub bytes_per_token: u64,
}

impl Budget {
    /// Requests of `len` tokens the pool holds at once (0 when the activation peak does not fit
    /// outside it: the engine would fail on its first full chunk).
    pub fn requests(&self, len: u64) -> u64 {
        if self.work_shortfall.0 > 0 {
            return 0;
        }
        let len = len.max(1);
        let full = self.full_pool.tokens / len;
        let tokens = match self.window_pool {
            Some((w, window)) => full.min(w.tokens / len.min(window.max(1))),
            None => full,
        };
        self.state_pool.map_or(tokens, |p| tokens.min(p.tokens))
    }
    /// The token slots `n` requests of `len` tokens need beyond what a pool of slots without bytes
    /// has (SGLang's token pool for a model without attention layers); `None` for a pool of bytes
    /// or when they fit.
    pub fn slots_short(&self, len: u64, n: u64) -> Option<u64> {
        let need = len.max(1).saturating_mul(n);
        (self.full_pool.bytes_per_token == 0 && need > self.full_pool.tokens).then(|| need - self.full_pool.tokens)
    }
    /// Tokens `n` requests of `len` tokens take in the full-attention (or only) pool, and in the
    /// window pool where there is one (each request keeps at most the window there).
    pub fn tokens_needed(&self, len: u64, n: u64) -> (u64, Option<u64>) {
        (len.saturating_mul(n), self.window_pool.map(|(_, window)| len.min(window).saturating_mul(n)))
    }
    /// Bytes the tightest part of the pool has left after `n` requests of `len` tokens
    /// (negative when they do not fit), or the activation's shortfall when that is tighter. A part
    /// whose slots take no bytes (SGLang's token pool for a model without attention layers) binds
    /// nothing while it has room, and when it is short gives -1: no memory would make up for it
    /// ([`Budget::slots_short`] says by how many slots).
    pub fn slack(&self, len: u64, n: u64) -> i128 {
        let left = |p: PoolPart, need: u64| {
            let d = p.tokens as i128 - need as i128;
            match p.bytes_per_token {
                0 if d >= 0 => i128::MAX,
                0 => -1,
                b => d.checked_mul(b as i128).unwrap_or(if d < 0 { i128::MIN } else { i128::MAX }),
            }
        };
        let (full_need, window_need) = self.tokens_needed(len, n);
        let mut s = left(self.full_pool, full_need);
        if let (Some((w, _)), Some(need)) = (self.window_pool, window_need) {
            s = s.min(left(w, need));
        }
        if let Some(p) = self.state_pool {
            s = s.min(left(p, n));
        }
        if self.work_shortfall.0 > 0 {
            s = s.min(-(self.work_shortfall.0 as i128));
        }
        s
    }
}

/// A pool of whole blocks ([`EngineReport::block_pool`]): a request of `len` tokens holds
/// `ceil(len / block_tokens)` blocks per attention group and one per recurrent group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPool {
    pub num_blocks: u64,
    /// Bytes of one block id (a page in each of the group's tensors).
    pub block_bytes: u64,
    pub block_tokens: u64,
    pub attention_groups: u64,
    pub recurrent_groups: u64,
}

impl BlockPool {
    /// Block ids one request of `len` tokens holds.
    pub fn blocks(&self, len: u64) -> u64 {
        self.attention_groups.saturating_mul(len.div_ceil(self.block_tokens.max(1))).saturating_add(self.recurrent_groups)
    }
    /// Requests of `len` tokens the pool holds.
    pub fn requests(&self, len: u64) -> u64 {
        self.num_blocks / self.blocks(len).max(1)
    }
}

/// One separately sized part of an engine's KV pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvPart {
    /// `full attention`, `sliding window 512`, ...
    pub kind: String,
    pub window: crate::model::Window,
    pub layers: u64,
    /// Tokens (cells) each layer of the part holds.
    pub cells: u64,
    pub bytes: Bytes,
}

/// Inputs shared by every profile.
pub(crate) struct Ctx<'a> {
    pub shape: &'a ModelShape,
    pub scenario: &'a Scenario,
    pub plan: &'a WeightPlan,
    pub weights_per_gpu: Bytes,
    /// What `--cpu-offload-gb` keeps in host memory on that GPU (not in `weights_per_gpu`).
    pub offload: crate::weights::Offload,
    pub kv: &'a KvLayout,
    /// llama.cpp with layers (`-ngl`) or the KV (`-nkvo`) in host memory: the layers on the GPU
    /// and the cache they keep there (`kv` stays the whole cache, which llama.cpp logs).
    pub host_layers: Option<(crate::weights::LayerSplit, &'a KvLayout)>,
    pub memory: Bytes,
    pub max_model_len: u64,
    /// How the engine derived `max_model_len` when the scenario gave none and it is not the
    /// config's length ([`default_max_model_len`]).
    pub max_model_len_why: Option<String>,
}

/// What vLLM-style loaders (vLLM, SGLang) hold on a GPU beyond the checkpoint's weights (exact).
pub(crate) struct LoadExtras {
    /// The rotary cos/sin caches (`get_rope`): one table per distinct rope, shared by the layers
    /// that use it ([`crate::model::ModelShape::rope_cache_values`]), in the model dtype (vLLM) or
    /// fp32 ([`load_extras_with`]).
    pub rope: u64,
    /// Unsplit segment tails PyTorch counts as allocated (what vLLM's "Model loading took" adds).
    pub tails: u64,
    /// Segment rounding the GPU loses (what SGLang's free-memory drop adds).
    pub slack: u64,
}

/// The weights and rotary cache served by PyTorch's caching allocator ([`crate::allocator`]), the
/// cache in the model dtype.
pub(crate) fn load_extras(cx: &Ctx) -> LoadExtras {
    load_extras_with(cx, cx.plan.activation.bytes())
}

/// [`load_extras`] with the rotary cache's bytes per value (SGLang keeps it in fp32 on CUDA).
pub(crate) fn load_extras_with(cx: &Ctx, rope_value_bytes: u64) -> LoadExtras {
    let rope = cx.shape.rope_cache_values().saturating_mul(rope_value_bytes);
    let m = crate::weights::loaded_memory_ep(cx.shape, cx.plan, u64::from(cx.scenario.tp.max(1)), u64::from(cx.scenario.pp.max(1)), cx.scenario.expert_split(cx.shape.moe.is_some()), &[rope]);
    let on_gpu = cx.weights_per_gpu.0;
    let moved = cx.offload.bytes;
    let base = on_gpu.saturating_add(moved).saturating_add(rope);
    let (tails, slack) = (m.allocated.saturating_sub(base), m.reserved.saturating_sub(base));
    // offloaded parameters leave their segments: the tails of what stays, pro rata
    let keep = |b: u64| if moved == 0 { b } else { (b as u128 * on_gpu as u128 / (on_gpu as u128 + moved as u128).max(1)) as u64 };
    LoadExtras { rope, tails: keep(tails), slack: keep(slack) }
}

/// Runs the scenario's engine profile.
pub(crate) fn run(cx: &Ctx) -> Result<EngineReport> {
    let mut report = match cx.scenario.engine {
        Engine::Vllm | Engine::VllmV0 => vllm::run(cx),
        Engine::Sglang => sglang::run(cx),
        Engine::LlamaCpp => llamacpp::run(cx),
        Engine::Transformers => hf::run(cx),
        Engine::Candle => candle::run(cx),
    }?;
    // `fa` is llama.cpp's switch; the other profiles model one attention path and do not read it
    if let (Some(fa), false) = (cx.scenario.flash_attention, cx.scenario.engine == Engine::LlamaCpp) {
        report.notes.push(format!("fa={} is a llama.cpp setting (-fa); the {} profile does not depend on it", if fa { "on" } else { "off" }, report.name));
    }
    if cx.scenario.enforce_eager && !matches!(cx.scenario.engine, Engine::Vllm | Engine::VllmV0) {
        report.notes.push(format!("eager=on is a vLLM setting (--enforce-eager); the {} profile does not depend on it", report.name));
    }
    Ok(report)
}

/// What a cache that grows with the sequence (transformers, candle) holds in `budget` bytes: its
/// tokens, and the longest request that fits. A model without attention layers holds requests,
/// not tokens: as many of `max_model_len` as their states fit (`need` each), and any length once
/// one state fits (`request` gives a request's bytes by length).
pub(crate) fn grown_cache_capacity(budget: u64, bytes_per_token: u64, need: u64, max_model_len: u64, request: impl Fn(u64) -> Option<u64>) -> (u64, u64) {
    match bytes_per_token {
        0 => (
            (budget / need.max(1)).saturating_mul(max_model_len),
            crate::estimate::largest(0, crate::scenario::MAX_TOKENS, |len| request(len).is_some_and(|r| r <= budget)).unwrap_or(0),
        ),
        b => (budget / b, budget / b),
    }
}

/// The memory fraction an engine uses when none is given: vLLM's `gpu_memory_utilization`, 0.92
/// from 0.20.0 (`CacheConfig`; 0.9 before, and on V0); SGLang's `mem_fraction_static` at TP 1
/// before 0.4.8 (0.88; SGLang's own choice depends on the board and version,
/// [`sglang::default_fraction`], which its profile uses); other engines all memory.
pub fn default_utilization(scenario: &Scenario) -> f64 {
    match scenario.engine {
        Engine::Vllm if vllm::version_of(scenario).1 >= (0, 20, 0) => 0.92,
        Engine::Vllm | Engine::VllmV0 => 0.9,
        Engine::Sglang => 0.88,
        _ => 1.0,
    }
}

/// The engine's own default `max_model_len` where it differs from `max_position_embeddings`
/// (vLLM and SGLang read other length keys and scale them by the RoPE factor, each its own way),
/// with its derivation.
pub fn default_max_model_len(shape: &ModelShape, scenario: &Scenario) -> Option<(u64, String)> {
    match scenario.engine {
        Engine::Vllm | Engine::VllmV0 => vllm::default_max_model_len(shape, vllm::version_of(scenario).1),
        Engine::Sglang => sglang::default_context_len(shape, sglang::version_of(scenario)),
        _ => None,
    }
}

/// Parses `0.11.0`, `v0.8.3`, `~0.6.4 (V0)` into `(major, minor, patch)`.
pub fn parse_semver(v: &str) -> Option<(u64, u64, u64)> {
    let s: String = v.trim().trim_start_matches(['~', 'v']).chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut it = s.split('.').map(|p| p.parse::<u64>().ok());
    let a = it.next()??;
    let b = it.next().flatten().unwrap_or(0);
    let c = it.next().flatten().unwrap_or(0);
    Some((a, b, c))
}

pub(crate) fn gib(b: u64) -> String {
    crate::units::gib_text(b)
}
