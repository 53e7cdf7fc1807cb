//! The estimate: one function from a resolved model and a scenario to every figure the product
//! shows, each with its derivation; plus the capacity table, the throughput bound, paged vs
//! contiguous fragmentation, and the reverse solvers built on it.

use crate::dtype::{KvDtype, QuantChoice, WeightDtype};
use crate::engine::{self, EngineReport};
use crate::error::{Error, Result};
use crate::kv::{kv_layout, KvLayout};
use crate::model::{DefaultUsed, ModelShape};
use crate::scenario::{Engine, Scenario};
use crate::units::{count, fixed, Bytes, Figure};
use crate::weights::{weight_plan, weights_ep, LayerSplit, WeightReport};
use serde::{Deserialize, Serialize};

/// The model as the answer describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub id: String,
    pub family: String,
    pub model_type: String,
    pub generic_path: bool,
    pub params_total: u64,
    pub params_active: u64,
    pub layers: u64,
    pub kv_layers: u64,
    pub hidden_size: u64,
    pub num_attention_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    pub vocab_size: u64,
    pub max_position_embeddings: Option<u64>,
    pub defaults: Vec<DefaultUsed>,
    pub notes: Vec<String>,
}

/// One row of the capacity table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRow {
    pub context: u64,
    pub kv_bytes_per_request: Bytes,
    pub max_concurrency: u64,
}

/// Roofline bounds (upper bounds, not predictions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Decode tokens/s over all requests: `concurrency / (bytes read per step / bandwidth)`.
    pub decode_tokens_per_s: f64,
    pub decode_tokens_per_s_per_request: f64,
    /// Prefill tokens/s: `FLOP/s / (2 x active params + attention)`.
    pub prefill_tokens_per_s: f64,
    pub derivation: String,
}

/// Everything the planner answers for one scenario, per GPU unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub scenario: Scenario,
    pub model: ModelSummary,
    pub gpu_label: String,
    pub gpu_memory: Bytes,
    pub gpus: u64,
    pub weights: WeightReport,
    pub kv: KvLayout,
    /// KV of one request of `input_len + output_len` tokens.
    pub kv_per_request: Figure,
    /// KV of `concurrency` such requests.
    pub kv_cache: Figure,
    pub activation: Figure,
    pub overhead: Figure,
    pub total: Bytes,
    /// What the engine may use: `memory x utilisation`, or the engine's own budget's usable
    /// memory (SGLang: the free memory at load) ([`Estimate::capacity_basis`]).
    pub capacity: Bytes,
    /// `capacity - total`, negative when it does not fit; with an engine's own budget, what the
    /// tightest part of the pool has left after the requests' KV (negative by the activation's
    /// shortfall when the activation peak does not fit outside the pool).
    pub headroom_bytes: i64,
    /// The engine starts and the workload fits.
    pub fits: bool,
    /// Requests of `input_len + output_len` tokens that fit at once.
    pub max_concurrency: u64,
    pub context_table: Vec<ContextRow>,
    pub engine: EngineReport,
    pub throughput: Throughput,
}

impl Estimate {
    /// How the capacity is derived: `memory x utilization` (`times` is the multiplication sign),
    /// or the engine's own budget.
    pub fn capacity_basis(&self, times: &str) -> String {
        match &self.engine.budget {
            Some(b) => b.derivation.clone(),
            None => format!("{} {times} {}", self.gpu_memory, self.engine.utilization),
        }
    }
    /// The total the scenario's memory may reach before it stops fitting (`total + headroom`):
    /// the capacity under a `memory x utilization` budget; under an engine's own split (SGLang),
    /// the weights, activations and overhead plus the whole KV pool.
    pub fn fit_limit(&self) -> Bytes {
        match &self.engine.budget {
            // the weights, activations and overhead, and the whole pool
            Some(b) => Bytes(self.total.saturating_sub(self.kv_cache.bytes).0.saturating_add(b.kv_room.0)),
            None => self.capacity,
        }
    }
    /// What an engine's own pool (SGLang) has that the scenario's requests do not take (bytes of
    /// any part of it); zero under a `memory x utilization` budget, whose free memory is the
    /// headroom.
    pub fn unused_in_pool(&self) -> Bytes {
        match &self.engine.budget {
            Some(b) => b.kv_room.saturating_sub(self.kv_cache.bytes),
            None => Bytes(0),
        }
    }
    /// What an engine's own split keeps for its activations and CUDA graphs beyond what they are
    /// estimated to use (SGLang: the share outside `mem_fraction_static`, less the request-to-token
    /// table and pool buffers, the activation peak and graphs, `usable - fit_limit`): memory the
    /// requests' KV cannot use. Zero under a `memory x utilization` budget.
    pub fn held_outside_pool(&self) -> Bytes {
        match &self.engine.budget {
            Some(_) => self.capacity.saturating_sub(self.fit_limit()),
            None => Bytes(0),
        }
    }
    /// The token slots the scenario's requests need beyond a pool of slots without bytes
    /// ([`engine::Budget::slots_short`]); `None` when none is short.
    pub fn slots_short(&self) -> Option<u64> {
        self.engine.budget.as_ref().and_then(|b| b.slots_short(self.scenario.context_len(), self.scenario.concurrency))
    }
    /// The headroom as shown: bytes, or the token slots short where a pool of slots without
    /// bytes is what does not fit ([`engine::Budget::slots_short`]), with `minus` as the sign.
    pub fn headroom_text(&self, minus: &str) -> String {
        match self.slots_short() {
            Some(n) => format!("{minus}{}", count(n, "token slot")),
            None if self.headroom_bytes < 0 => format!("{minus}{}", Bytes(self.headroom_bytes.unsigned_abs())),
            None => Bytes(self.headroom_bytes as u64).to_string(),
        }
    }
    /// The engine's scheduler limit where it binds before the memory does (vLLM `max_num_seqs`,
    /// SGLang `max_running_requests`): the scenario's requests fit in memory but exceed what it
    /// runs at once, so the rest wait in its queue; or the memory holds more requests than it
    /// runs at once. `None` when the memory binds first, or the engine would not start.
    pub fn running_note(&self) -> Option<String> {
        let cap = self.engine.running_cap.as_ref().filter(|c| c.requests > 0 && self.engine.fits)?;
        let n = self.scenario.concurrency;
        let name = &self.engine.name;
        let runs = format!("{name} runs at most {} at once ({})", crate::units::count(cap.requests, "request"), cap.source);
        if self.fits && n > cap.requests {
            Some(format!("{runs}: {} of these {n} wait in its queue", n - cap.requests))
        } else if self.max_concurrency > cap.requests {
            Some(format!("{runs}, fewer than the {} the memory holds", crate::units::count(self.max_concurrency, "request")))
        } else {
            None
        }
    }
    /// The layer groups behind "KV per token" (`32 x full attention`, joined by ` + `; `times` is
    /// the multiplication sign), or where the cache is when the GPU holds none of it.
    pub fn kv_groups_label(&self, times: &str) -> String {
        if self.kv.groups.is_empty() && self.engine.kv_in_host_memory.0 > 0 {
            return "none on the GPU: the cache is in host memory".into();
        }
        if self.kv.groups.is_empty() && self.kv.state_bytes_per_request > 0 {
            return "no attention layers: only a recurrent state per request".into();
        }
        self.kv.groups.iter().map(|g| format!("{} {times} {}", g.layers, g.kind)).collect::<Vec<_>>().join(" + ")
    }
    /// The prediction stored beside a measured point: the weights as the engine loads them (with
    /// any copy or buffer it adds at load), the KV, the activations, and the overhead without what
    /// the loaded figure already counts; the parts sum to `total`.
    pub fn predicted(&self) -> crate::measurement::Predicted {
        let loaded = self.engine.loaded_weights_bytes.0;
        let w = self.weights.per_gpu.0;
        // what the loaded figure adds to (or drops from) the checkpoint's weights
        let overhead = if loaded >= w { self.overhead.bytes.0.saturating_sub(loaded - w) } else { self.overhead.bytes.0 };
        let kv = self.kv_cache.bytes.0;
        let act = self.activation.bytes.0;
        crate::measurement::Predicted {
            weights_bytes: loaded,
            kv_cache_bytes: kv,
            activation_bytes: act,
            overhead_bytes: overhead,
            total_bytes: loaded.saturating_add(kv).saturating_add(act).saturating_add(overhead),
        }
    }
}

/// Context lengths of the capacity table.
pub const TABLE_CONTEXTS: [u64; 5] = [2048, 4096, 8192, 32_768, 131_072];

fn check_tp(shape: &ModelShape, tp: u64) -> Result<()> {
    let heads = shape.num_attention_heads;
    if tp > 1 && heads > 0 && heads % tp != 0 {
        return Err(Error::scenario("tp", tp, format!("a divisor of the {heads} attention heads")));
    }
    Ok(())
}

/// What vLLM's and SGLang's `MambaMixer2` assert at start-up about a Mamba-2 mixer under TP: the
/// ranks divide its heads, and its B/C groups unless there is one group (which every rank then
/// keeps whole); and a quantised model only where they divide the groups.
fn check_mamba2_tp(shape: &ModelShape, tp: u64, quantized: bool) -> Result<()> {
    if tp <= 1 {
        return Ok(());
    }
    let mixer = shape.layers.iter().flat_map(crate::model::Layer::mixers).find_map(|m| match m {
        crate::model::Mixer::Recurrent { kind, heads, groups, .. } if kind == "mamba2" => Some((*heads, *groups)),
        _ => None,
    });
    let Some((heads, groups)) = mixer else { return Ok(()) };
    if heads % tp != 0 {
        return Err(Error::scenario("tp", tp, format!("a divisor of the {heads} Mamba-2 heads (\"Tensor parallel world size must divide num heads.\")")));
    }
    if groups % tp != 0 && groups != 1 {
        return Err(Error::scenario("tp", tp, format!("a divisor of the {groups} Mamba-2 groups (\"If tensor parallel world size does not divide num_groups, then num_groups must equal 1.\")")));
    }
    if groups % tp != 0 && quantized {
        return Err(Error::scenario(
            "tp",
            tp,
            format!("a divisor of the Mamba-2 groups ({groups}) for a quantised model (\"Tensor parallel currently supported for quantized models only if tensor parallel world size divides num groups.\"); unquantised, each rank keeps the group whole"),
        ));
    }
    Ok(())
}

/// The KV dtype an engine actually uses: llama.cpp caches f16 under `auto`; vLLM from 0.14
/// (`resolve_kv_cache_dtype_string`) and SGLang from 0.5.3 (`ModelRunner` reading the quant
/// config's `kv_cache_quant_algo`) the dtype a ModelOpt checkpoint was calibrated for.
pub fn effective_kv(shape: &ModelShape, scenario: &Scenario) -> KvDtype {
    let sparse = shape.sparse_mla_index_dim().is_some();
    match (scenario.engine, scenario.kv_dtype, shape.checkpoint_kv) {
        (Engine::LlamaCpp, KvDtype::Auto, _) => KvDtype::Fp16,
        // DeepSeek Sparse Attention: vLLM 0.11.0 read `auto` as its fp8 `fp8_ds_mla` (PR 25988),
        // 0.11.1 went back to bf16 (PR 27121); SGLang picks fp8 on Blackwell (compute capability
        // 10 and up), bf16 before (`_set_default_nsa_kv_cache_dtype`)
        (Engine::Vllm, KvDtype::Auto, _) if sparse && engine::vllm::version_of(scenario).1 == (0, 11, 0) => KvDtype::Fp8,
        (Engine::Sglang, KvDtype::Auto, _) if sparse && scenario.gpu.catalog().is_some_and(|g| g.compute_capability >= 100) => KvDtype::Fp8,
        (Engine::Vllm, KvDtype::Auto, Some(ck)) if engine::vllm::version_of(scenario).1 >= (0, 14, 0) => ck,
        (Engine::Sglang, KvDtype::Auto, Some(ck)) if engine::sglang::version_of(scenario) >= (0, 5, 3) => ck,
        (_, kv, _) => kv,
    }
}

/// Computes the estimate for a scenario.
pub fn estimate(shape: &ModelShape, scenario: &Scenario) -> Result<Estimate> {
    if let Err(mut errs) = scenario.validate() {
        return Err(errs.remove(0));
    }
    // `vllm` before 0.7.0 can only be V0
    let default_v0;
    let v0_note = engine::vllm::only_v0(scenario);
    let scenario = if v0_note.is_some() {
        default_v0 = Scenario { engine: Engine::VllmV0, ..scenario.clone() };
        &default_v0
    } else {
        scenario
    };
    let tp = u64::from(scenario.tp);
    let pp = u64::from(scenario.pp);
    check_tp(shape, tp)?;
    let memory = scenario.gpu.memory()?;
    let mut plan = weight_plan(shape, scenario.dtype, scenario.quantization)?;
    if matches!(scenario.engine, Engine::Vllm | Engine::VllmV0 | Engine::Sglang) {
        check_mamba2_tp(shape, tp, plan.quant.is_some())?;
    }
    if let (Some(crate::dtype::Quant::Gguf { ftype }), false) = (&plan.quant, scenario.engine == Engine::LlamaCpp) {
        return Err(Error::scenario(
            "quantization",
            ftype.as_str(),
            format!("engine llama.cpp for a GGUF preset (the engine is {}, whose GGUF loader is not modelled), or another quantisation: awq, gptq, fp8, bnb4, bnb8", scenario.engine),
        ));
    }
    // an NVFP4 KV cache is vLLM's from 0.20 (`nvfp4_kv_cache_full_dim`) and SGLang's
    let nvfp4_kv = match scenario.engine {
        Engine::Vllm => engine::vllm::version_of(scenario).1 >= (0, 20, 0),
        Engine::Sglang => true,
        _ => false,
    };
    if scenario.kv_dtype == KvDtype::Nvfp4 && !nvfp4_kv {
        return Err(Error::scenario("kv_dtype", "nvfp4", format!("an engine with an NVFP4 KV cache, vLLM 0.20 or newer or SGLang (the engine is {}{}), or another KV dtype", scenario.engine, scenario.engine_version.as_deref().map(|v| format!(" {v}")).unwrap_or_default())));
    }
    // the layers as the engine caches them (vLLM's MLA per head before 0.7.3, padded in V0 0.7.2+;
    // SGLang's recurrent state in float32)
    let cached;
    let cached_by_engine = match scenario.engine {
        Engine::Sglang => engine::sglang::cached_shape(shape, engine::sglang::version_of(scenario)),
        // llama.cpp keeps recurrent state in float32 (`GGML_TYPE_F32` for r and s)
        Engine::LlamaCpp => shape.with_f32_state(true, "llama.cpp keeps the recurrent layers' convolution window and SSM state in float32".into()),
        _ => engine::vllm::cached_shape(shape, scenario, plan.quant.as_ref(), plan.activation.bytes()),
    };
    let shape = match cached_by_engine {
        Some(s) => {
            cached = s;
            &cached
        }
        None => shape,
    };
    // DeepSeek Sparse Attention: vLLM runs it on V1 from 0.11.0, with a bf16 or fp8 cache (as
    // SGLang); llama.cpp's `deepseek32` (and transformers, candle) keep the indexer key in the KV
    // type, not in vLLM's fp8 form
    let indexed;
    let (vllm_version, vllm_ver) = engine::vllm::version_of(scenario);
    let shape = match shape.sparse_mla_index_dim() {
        Some(_) if scenario.engine == Engine::VllmV0 => {
            return Err(Error::scenario("engine", "vllm-v0", "vllm (V1) 0.11.0 or newer, sglang or llama.cpp: DeepSeek Sparse Attention runs on vLLM's V1 engine only"));
        }
        Some(_) if scenario.engine == Engine::Vllm && vllm_ver < (0, 11, 0) => {
            return Err(Error::scenario("engine_version", vllm_version, "0.11.0 or newer, vLLM's first release with DeepSeek Sparse Attention"));
        }
        Some(_) if matches!(scenario.engine, Engine::Vllm | Engine::Sglang) && !matches!(scenario.kv_dtype, KvDtype::Auto | KvDtype::Bf16 | KvDtype::Fp8) => {
            return Err(Error::scenario("kv_dtype", scenario.kv_dtype, "auto, bf16 or fp8: the only caches vLLM and SGLang have for DeepSeek Sparse Attention"));
        }
        Some(d) if !matches!(scenario.engine, Engine::Vllm | Engine::Sglang) => {
            indexed = shape.with_indexer_in_latent(format!("{} caches the sparse-attention indexer key ({d} values per token and layer) in the KV type, beside the latent (the same cells)", scenario.engine));
            &indexed
        }
        _ => shape,
    };
    // llama.cpp keeps the token embeddings in host memory (its input layer)
    plan.host_embedding = scenario.engine == Engine::LlamaCpp;
    let w = weights_ep(shape, &plan, tp, pp, scenario.expert_split(shape.moe.is_some()))?;
    let (w, offloaded) = cpu_offloaded(shape, scenario, w)?;
    let (w, offloaded, split) = llamacpp_gpu_layers(shape, scenario, w, offloaded)?;
    let kv_dtype = effective_kv(shape, scenario);
    let kv = kv_layout(shape, kv_dtype, plan.activation, tp, pp)?;
    // llama.cpp keeps the cache of the layers it offloads on the GPU, none with -nkvo
    let n_layer = shape.layers.len();
    let host_layers = if scenario.engine == Engine::LlamaCpp && (split.is_some() || scenario.kv_on_host) {
        let split = split.unwrap_or(LayerSplit { gpu_layers: n_layer as u64, output_on_gpu: true, gpu: w.per_gpu.0, host: crate::weights::host_embedding_bytes(shape, &plan), head: 0 });
        let first = if scenario.kv_on_host { n_layer } else { n_layer - split.gpu_layers as usize };
        Some((split, crate::kv::kv_layout_of_layers(shape, kv_dtype, plan.activation, first, n_layer)?))
    } else {
        None
    };
    let ctx_len = scenario.context_len();
    let derived = if scenario.max_model_len.is_none() { engine::default_max_model_len(shape, scenario) } else { None };
    let max_model_len = scenario
        .max_model_len
        .or(derived.as_ref().map(|d| d.0))
        .or(shape.max_position_embeddings)
        .unwrap_or(ctx_len)
        .max(1);
    let max_model_len_why = derived.map(|(len, why)| format!("max_model_len {len}: {why}"));
    // SGLang gives every layer of `num_hidden_layers` a buffer, KV-shared ones and Nemotron NAS's
    // layers without attention included (what a request holds there, so every figure below uses it)
    let kv = if scenario.engine == Engine::Sglang && shape.shared_kv_layers() + shape.pool_only_layers() > 0 { crate::kv::kv_layout_with_shared(shape, kv_dtype, plan.activation, tp, pp)? } else { kv };
    let mut eng = engine::run(&engine::Ctx {
        shape,
        scenario,
        plan: &plan,
        weights_per_gpu: w.per_gpu,
        offload: offloaded,
        kv: &kv,
        host_layers: host_layers.as_ref().map(|(s, k)| (*s, k)),
        memory,
        max_model_len,
        max_model_len_why,
    })?;
    if let Some(n) = v0_note {
        eng.notes.insert(0, n);
    }
    // the figures per GPU count the cache on the GPU
    let kv = match host_layers {
        Some((_, on_gpu)) => on_gpu,
        None => kv,
    };
    // a pool that keeps window layers at full length holds every token of a request there
    let kv = if eng.budget.as_ref().is_some_and(|b| b.windows_at_full_length) { kv.windows_at_full_length() } else { kv };
    // what one request of `len` tokens holds: candle keeps caches of its own (a Gemma 3 global
    // layer allocates max_position_embeddings on the first token, GLM-4-0414 grows by chunks,
    // Mamba keeps 24 x d_inner values), so its requests are counted in them
    let act_bytes = plan.activation.bytes();
    let request_bytes = |len: u64| -> Result<u64> {
        if scenario.engine == Engine::Candle {
            Ok(crate::engine::candle_request_bytes(shape, len, act_bytes))
        } else {
            kv.request_bytes(len)
        }
    };

    let per_req = request_bytes(ctx_len)?;
    let batch = kv.batch_bytes(ctx_len, scenario.concurrency)?;
    let ratio = kv.kv_ratio;
    let dtype_label = if ratio.1 == 1 { format!("{} B", ratio.0) } else { format!("{}/{} B", ratio.0, ratio.1) };
    let groups: Vec<String> = kv.groups.iter().map(|g| format!("{} layers {} x {} B", g.layers, g.kind, g.bytes_per_token_per_layer)).collect();
    let mut kv_req = Figure::exact(
        "KV per request",
        Bytes(per_req),
        "sum over layer groups of bytes/token x tokens kept (window-capped) + recurrent state",
        format!("{} at {} ({}; {} per value; state {})", Bytes(per_req), count(ctx_len, "token"), groups.join(", "), dtype_label, Bytes(kv.state_bytes_per_request)),
    );
    if kv.groups.iter().any(|g| g.window != crate::model::Window::Full) {
        kv_req = kv_req.note("sliding-window / chunked layers keep at most their window");
    }
    let layout_req = kv.request_bytes(ctx_len)?;
    if per_req != layout_req {
        kv_req = kv_req.note(format!("candle's own cache: {} where the layer groups' arithmetic gives {}", Bytes(per_req), Bytes(layout_req)));
    }
    if scenario.kv_dtype == KvDtype::Auto && kv_dtype != KvDtype::Auto && shape.checkpoint_kv == Some(kv_dtype) {
        kv_req = kv_req.note(format!("KV {kv_dtype}: the checkpoint's kv_cache_quant_algo, which vLLM (from 0.14) and SGLang (from 0.5.3) use under --kv-cache-dtype auto"));
    }
    if let Some(index) = shape.sparse_mla_index_dim() {
        if scenario.kv_dtype == KvDtype::Auto && kv_dtype == KvDtype::Fp8 && scenario.engine != Engine::LlamaCpp {
            let why = if scenario.engine == Engine::Sglang { "SGLang's default for DeepSeek Sparse Attention on Blackwell" } else { "vLLM 0.11.0's default for DeepSeek Sparse Attention (0.11.1 went back to bf16)" };
            kv_req = kv_req.note(format!("KV fp8 under --kv-cache-dtype auto: {why}"));
        }
        // (llama.cpp's shape carries the key in its latent and says so in its own note)
        kv_req = kv_req.note(format!("DeepSeek Sparse Attention: each layer also caches the indexer's {index}-value key in fp8 with an fp32 scale per {} values, whatever the KV dtype; an fp8 latent is stored as fp8_ds_mla (fp32 scales, the rope key in bf16)", crate::kv::SPARSE_QUANT_BLOCK));
    }
    let kv_cache = match (&eng.kv_batch, eng.block_pool) {
        (Some(f), _) => f.clone(),
        // whole blocks: every request's blocks at its length, each block one page per tensor
        (None, Some(p)) => {
            let blocks = p.blocks(ctx_len).saturating_mul(scenario.concurrency);
            Figure::exact("KV cache", Bytes(blocks.saturating_mul(p.block_bytes)), "concurrency x blocks per request x block bytes", format!("{} x {} blocks x {} = {}", scenario.concurrency, p.blocks(ctx_len), Bytes(p.block_bytes), Bytes(blocks.saturating_mul(p.block_bytes))))
                .note(format!("{}'s blocks of {} tokens: ceil(len / block) per attention group and one per recurrent group, each block id a page in every layer of its group", eng.name, p.block_tokens))
        }
        (None, None) => Figure::exact("KV cache", Bytes(batch), "concurrency x KV per request", format!("{} x {} = {}", scenario.concurrency, Bytes(per_req), Bytes(batch))),
    };
    let batch = kv_cache.bytes.0;
    let fixed = w.per_gpu.add(eng.activation.bytes, "total")?.add(eng.overhead.bytes, "total")?;
    let total = fixed.add(Bytes(batch), "total")?;
    let util = eng.utilization;
    // the memory the engine may use, and what the requests' KV may take of it: `memory x
    // utilization` less the weights, activations and overhead, or the engine's own split
    // (SGLang: the free memory at load, the KV in the token pool and the activation peak in the
    // share outside the static fraction)
    let (capacity, headroom) = match &eng.budget {
        None => {
            let capacity = Bytes((memory.0 as f64 * util) as u64);
            (capacity, capacity.0 as i128 - total.0 as i128)
        }
        // the pool's parts bound the requests in tokens (`Budget::requests` below)
        Some(b) => (b.usable, b.slack(ctx_len, scenario.concurrency)),
    };
    let free_for_kv = capacity.saturating_sub(fixed).0;
    let headroom_bytes = headroom.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    // no cache on the GPU (llama.cpp -nkvo, -ngl 0): the n_ctx cells bound the requests
    let on_host = scenario.engine == Engine::LlamaCpp && kv.groups.is_empty() && kv.state_bytes_per_request == 0;
    let max_conc = |len: u64| -> Result<u64> {
        let r = request_bytes(len)?;
        Ok(if let Some(b) = &eng.budget {
            b.requests(len)
        } else if let Some(p) = eng.block_pool {
            if fixed.0 > capacity.0 {
                0
            } else {
                p.requests(len)
            }
        } else if on_host {
            if fixed.0 > capacity.0 {
                0
            } else {
                eng.kv_tokens / len.max(1)
            }
        } else if r == 0 {
            0
        } else {
            free_for_kv / r
        })
    };
    let max_concurrency = max_conc(ctx_len)?;
    let context_table = TABLE_CONTEXTS
        .iter()
        .map(|&c| Ok(ContextRow { context: c, kv_bytes_per_request: Bytes(request_bytes(c)?), max_concurrency: max_conc(c)? }))
        .collect::<Result<Vec<_>>>()?;
    let throughput = roofline(shape, scenario, &w, Bytes(offloaded.bytes), batch);
    let model = ModelSummary {
        id: scenario.model.clone(),
        family: shape.family.as_str().into(),
        model_type: shape.model_type.clone(),
        generic_path: shape.generic,
        params_total: w.params_total,
        params_active: w.params_active,
        layers: shape.num_layers(),
        kv_layers: shape.kv_layers() as u64,
        hidden_size: shape.hidden_size,
        num_attention_heads: shape.num_attention_heads,
        num_kv_heads: shape.num_kv_heads,
        head_dim: shape.head_dim,
        vocab_size: shape.vocab_size,
        max_position_embeddings: shape.max_position_embeddings,
        defaults: shape.defaults.clone(),
        notes: shape.notes.clone(),
    };
    Ok(Estimate {
        scenario: scenario.clone(),
        model,
        gpu_label: scenario.gpu.label(),
        gpu_memory: memory,
        gpus: scenario.gpus(),
        weights: w,
        kv,
        kv_per_request: kv_req,
        kv_cache,
        activation: eng.activation.clone(),
        overhead: eng.overhead.clone(),
        total,
        capacity,
        headroom_bytes,
        fits: eng.fits && headroom >= 0,
        max_concurrency,
        context_table,
        engine: eng,
        throughput,
    })
}

/// llama.cpp's `-ngl n` below every layer and the output ([`LayerSplit`]): the weights on the GPU
/// are the last `n` layers' (and the output layer's when `n` exceeds the layer count); modelled on
/// one GPU.
fn llamacpp_gpu_layers(shape: &ModelShape, s: &Scenario, mut w: WeightReport, off: crate::weights::Offload) -> Result<(WeightReport, crate::weights::Offload, Option<LayerSplit>)> {
    let n_layer = shape.num_layers();
    let Some(ngl) = s.gpu_layers.filter(|&n| s.engine == Engine::LlamaCpp && n <= n_layer) else { return Ok((w, off, None)) };
    let gpus = u64::from(s.tp.max(1)) * u64::from(s.pp.max(1));
    if gpus > 1 {
        return Err(Error::scenario("ngl", ngl, format!("more than the {n_layer} layers when splitting over {gpus} GPUs (every layer and the output on the GPUs): fewer layers on the GPU are modelled on one GPU")));
    }
    let split = crate::weights::llamacpp_layer_split(shape, &w.plan, ngl);
    let before = w.per_gpu;
    w.per_gpu = Bytes(split.gpu);
    w.figure.bytes = w.per_gpu;
    w.figure.substituted = format!("{before} with every layer and the output on the GPU; with -ngl {ngl}: {}", w.per_gpu);
    w.figure = w.figure.note(format!(
        "-ngl {ngl}: the last {} of {n_layer} decoder layers on the GPU, the output layer {}; {} of weights in host memory (token embeddings included), exact",
        split.gpu_layers,
        if split.output_on_gpu { "too" } else { "in host memory (it needs -ngl above the layer count)" },
        Bytes(split.host)
    ));
    let embeddings = crate::weights::host_embedding_bytes(shape, &w.plan);
    let off = crate::weights::Offload { bytes: split.host.saturating_sub(embeddings), per_gpu: split.gpu, whole_layers: n_layer - split.gpu_layers, largest_layer: 0 };
    Ok((w, off, Some(split)))
}

/// The weights left on each GPU under `--cpu-offload-gb` ([`crate::weights::cpu_offload`]), and
/// what moved to host memory.
fn cpu_offloaded(shape: &ModelShape, s: &Scenario, mut w: WeightReport) -> Result<(WeightReport, crate::weights::Offload)> {
    let Some(gib) = s.cpu_offload_gib.filter(|g| *g > 0.0) else { return Ok((w, crate::weights::Offload::default())) };
    // vLLM: `cpu_offload_gb * 1024**3` bytes
    let limit = (gib * crate::units::GIB as f64).min(u64::MAX as f64) as u64;
    let off = crate::weights::cpu_offload(shape, &w.plan, u64::from(s.tp.max(1)), u64::from(s.pp.max(1)), s.expert_split(shape.moe.is_some()), limit);
    let before = w.per_gpu;
    w.per_gpu = Bytes(off.per_gpu);
    w.figure.bytes = w.per_gpu;
    w.figure.substituted = format!("{} - {} kept in host memory = {}", before, Bytes(off.bytes), w.per_gpu);
    w.figure = w.figure.note(format!(
        "--cpu-offload-gb {gib}: {} of decoder-layer parameters per GPU live in host memory ({} whole layers, then parameters until {gib} GiB is reached, the one crossing it included; embeddings and LM head stay), exact",
        Bytes(off.bytes),
        off.whole_layers
    ));
    if off.bytes < limit {
        w.figure = w.figure.note(format!("the decoder layers hold only {}: less than the {gib} GiB asked for moves", Bytes(off.bytes)));
    }
    Ok((w, off))
}

fn roofline(shape: &ModelShape, s: &Scenario, w: &WeightReport, offloaded: Bytes, kv_batch: u64) -> Throughput {
    let (bw, tflops) = s.gpu.catalog().map_or((0.0, 0.0), |g| (g.bandwidth_gbs * 1e9, g.bf16_tflops * 1e12));
    if bw == 0.0 {
        return Throughput { decode_tokens_per_s: 0.0, decode_tokens_per_s_per_request: 0.0, prefill_tokens_per_s: 0.0, derivation: "custom GPU: bandwidth and FLOP/s unknown, no bound".into() };
    }
    let active_frac = if w.params_total == 0 { 1.0 } else { w.params_active as f64 / w.params_total as f64 };
    // bytes read per decode step on one GPU: the active weights and the batch's KV
    // offloaded weights are read too, over the host link (a bound that ignores it is optimistic)
    let step_bytes = w.per_gpu.0.saturating_add(offloaded.0) as f64 * active_frac.max(1.0 / s.concurrency.max(1) as f64).min(1.0) + kv_batch as f64;
    let step_s = step_bytes / bw;
    let n = s.concurrency.max(1) as f64;
    let decode = if step_s > 0.0 { n / step_s } else { 0.0 };
    let attn = shape.attention_flops_per_token(s.input_len);
    let flops_per_token = 2.0 * w.params_active as f64 + attn;
    let prefill = if flops_per_token > 0.0 { tflops * s.tp.max(1) as f64 / flops_per_token } else { 0.0 };
    let host = match (offloaded.0 > 0, s.engine) {
        (true, Engine::LlamaCpp) => format!("; {} of weights in layers left in host memory are read by the CPU every step, which this bound counts at GPU memory speed: expect decode several times slower", offloaded),
        (true, _) => format!("; {} of weights in host memory cross the PCIe link every step, which this bound counts at GPU memory speed: expect decode several times slower", offloaded),
        _ => String::new(),
    };
    Throughput {
        decode_tokens_per_s: decode,
        decode_tokens_per_s_per_request: decode / n,
        prefill_tokens_per_s: prefill,
        derivation: format!(
            "roofline upper bound: decode = {} / ({} GB read per step / {} GB/s); prefill = {} TFLOP/s x tp / {} GFLOP per token; {}",
            count(s.concurrency.max(1), "request"),
            fixed(step_bytes / 1e9, 2),
            fixed(bw / 1e9, 0),
            fixed(tflops / 1e12, 0),
            fixed(flops_per_token / 1e9, 2),
            count(u64::from(s.tp.max(1)) * u64::from(s.pp.max(1)), "GPU")
        ) + &host,
    }
}

/// Paged vs contiguous KV for a mix of request lengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fragmentation {
    pub requests: u64,
    /// The length every request reserves when contiguous.
    #[serde(default)]
    pub max_len: u64,
    pub used: Bytes,
    /// Reserving `max_len` per request (contiguous allocation, as HF static caches do).
    pub contiguous: Bytes,
    pub contiguous_waste_pct: f64,
    /// Blocks of `block_size` tokens (vLLM paged attention): waste under one block per request per group.
    pub paged: Bytes,
    pub paged_waste_pct: f64,
    pub block_size: u64,
}

/// The scenario's requests in flight for the fragmentation comparison: `concurrency` requests
/// (at most 4096) spread evenly over the decode, from `input_len` to `input_len + output_len`
/// tokens (the midpoint of each share), as a continuously batched server holds them.
pub fn inflight_lengths(s: &Scenario) -> Vec<u64> {
    let n = s.concurrency.clamp(1, 4096);
    (0..n).map(|i| s.input_len.saturating_add(s.output_len.saturating_mul(2 * i + 1) / (2 * n)).max(1)).collect()
}

/// What [`inflight_lengths`] spans, as the page and the runner print it: "each of 1024 tokens"
/// when every request has the same length, else "lengths spread from 1000 to 1024 tokens".
pub fn inflight_lengths_label(s: &Scenario) -> String {
    if s.output_len == 0 {
        format!("each of {}", count(s.input_len, "token"))
    } else {
        format!("lengths spread from {} to {} tokens", s.input_len, s.context_len())
    }
}

/// The fragmentation table of an estimate: contiguous reservation at the engine's max length
/// vs paged blocks of the engine's block size, 16 and 128 tokens, for [`inflight_lengths`].
pub fn fragmentation_table(e: &Estimate) -> Vec<Fragmentation> {
    let lengths = inflight_lengths(&e.scenario);
    let max_len = e.engine.max_model_len.max(lengths.iter().copied().max().unwrap_or(1));
    let mut sizes: Vec<u64> = vec![];
    for b in [e.engine.block_size.max(1), 16, 128] {
        if !sizes.contains(&b) {
            sizes.push(b);
        }
    }
    sizes.into_iter().filter_map(|bs| fragmentation(&e.kv, &lengths, max_len, bs).ok()).collect()
}

/// Compares contiguous reservation at `max_len` with paged blocks for the given request lengths.
pub fn fragmentation(kv: &KvLayout, lengths: &[u64], max_len: u64, block_size: u64) -> Result<Fragmentation> {
    if block_size == 0 {
        return Err(Error::scenario("bs", 0, "a block size of at least 1 token"));
    }
    let mut used = 0u64;
    let mut paged = 0u64;
    let mut contiguous = 0u64;
    for &l in lengths {
        if l > max_len {
            return Err(Error::scenario("lengths", l, format!("at most max_len ({max_len})")));
        }
        used = used.checked_add(kv.request_bytes(l)?).ok_or_else(|| Error::overflow("fragmentation"))?;
        paged = paged.checked_add(kv.request_bytes(l.div_ceil(block_size) * block_size)?).ok_or_else(|| Error::overflow("fragmentation"))?;
        contiguous = contiguous.checked_add(kv.request_bytes(max_len)?).ok_or_else(|| Error::overflow("fragmentation"))?;
    }
    let pct = |x: u64| if x == 0 { 0.0 } else { 100.0 * (x - used.min(x)) as f64 / x as f64 };
    Ok(Fragmentation {
        requests: lengths.len() as u64,
        max_len,
        used: Bytes(used),
        contiguous: Bytes(contiguous),
        contiguous_waste_pct: pct(contiguous),
        paged: Bytes(paged),
        paged_waste_pct: pct(paged),
        block_size,
    })
}

/// The largest `x` in `lo..=hi` with `ok(x)`, for `ok` true up to some point and false after it
/// (binary search); `None` when `ok(lo)` is false.
pub(crate) fn largest(lo: u64, hi: u64, ok: impl Fn(u64) -> bool) -> Option<u64> {
    if !ok(lo) {
        return None;
    }
    let (mut lo, mut hi) = (lo, hi);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// Reverse solving: the questions users ask peers.
pub mod solve {
    use super::*;

    fn fits(shape: &ModelShape, s: &Scenario) -> bool {
        estimate(shape, s).map(|e| e.fits).unwrap_or(false)
    }

    /// Whether the GPU holds no cache (llama.cpp `-nkvo`, `-ngl 0`): then `n_ctx` bounds the
    /// requests, not the GPU's memory.
    fn cache_on_host(shape: &ModelShape, s: &Scenario) -> Option<Estimate> {
        let e = estimate(shape, s).ok()?;
        (s.engine == Engine::LlamaCpp && e.kv.groups.is_empty() && e.kv.state_bytes_per_request == 0).then_some(e)
    }

    /// The longest context (`input_len`, output fixed) at which `concurrency` requests fit.
    /// With the cache in host memory: the scenario's context, if it fits (the GPU does not bound it).
    pub fn longest_context(shape: &ModelShape, s: &Scenario) -> Option<u64> {
        if let Some(e) = cache_on_host(shape, s) {
            return e.fits.then(|| s.context_len());
        }
        largest(1, crate::scenario::MAX_TOKENS, |l| {
            let mut t = s.clone();
            t.input_len = l.saturating_sub(s.output_len).max(1);
            t.output_len = l - t.input_len;
            t.max_model_len = Some(l.max(s.max_model_len.unwrap_or(0)));
            fits(shape, &t)
        })
    }

    /// The most concurrent requests at the scenario's context (with the cache in host memory:
    /// as many as `n_ctx` cells hold).
    pub fn most_requests(shape: &ModelShape, s: &Scenario) -> Option<u64> {
        if let Some(e) = cache_on_host(shape, s) {
            return (e.fits && e.max_concurrency > 0).then_some(e.max_concurrency);
        }
        largest(1, crate::scenario::MAX_CONCURRENCY, |n| fits(shape, &Scenario { concurrency: n, ..s.clone() }))
    }

    /// The fewest GPUs (and the TP x PP layout) that fit; TP must divide the attention heads.
    pub fn fewest_gpus(shape: &ModelShape, s: &Scenario) -> Option<(u32, u32)> {
        for g in 1u32..=64 {
            for tp in [1u32, 2, 4, 8] {
                if g % tp != 0 {
                    continue;
                }
                let pp = g / tp;
                if pp as u64 > shape.num_layers() {
                    continue;
                }
                let t = Scenario { tp, pp, dp: 1, num_gpus: None, ..s.clone() };
                if fits(shape, &t) {
                    return Some((tp, pp));
                }
            }
        }
        None
    }

    /// The widest weight dtype, then KV dtype, that fits (bf16 > fp8 > int8 > int4; auto > fp8).
    pub fn smallest_dtype(shape: &ModelShape, s: &Scenario) -> Option<(WeightDtype, KvDtype)> {
        for dt in [WeightDtype::Auto, WeightDtype::Fp8, WeightDtype::Int8, WeightDtype::Int4] {
            for kv in [KvDtype::Auto, KvDtype::Fp8] {
                let t = Scenario { dtype: dt, quantization: if dt == WeightDtype::Auto { s.quantization } else { QuantChoice::Auto }, kv_dtype: kv, ..s.clone() };
                if fits(shape, &t) {
                    return Some((dt, kv));
                }
            }
        }
        None
    }

    /// llama.cpp: the most layers `-ngl` can put on one GPU for the scenario's requests, the
    /// output layer counting as the last (`layers + 1` is every layer); `None` for other engines,
    /// on several GPUs, or when not even `-ngl 0` fits.
    pub fn most_gpu_layers(shape: &ModelShape, s: &Scenario) -> Option<u64> {
        if s.engine != Engine::LlamaCpp || u64::from(s.tp.max(1)) * u64::from(s.pp.max(1)) > 1 {
            return None;
        }
        largest(0, shape.num_layers() + 1, |n| fits(shape, &Scenario { gpu_layers: Some(n), ..s.clone() }))
    }

    /// The smallest `gpu_memory_utilization` (SGLang: `mem_fraction_static`) that fits the
    /// scenario's requests (None above 1.0). Under SGLang a larger fraction can fail again: it
    /// leaves less outside the pool for the activation peak.
    pub fn utilization_needed(shape: &ModelShape, s: &Scenario) -> Option<f64> {
        let ok = |pm: u64| fits(shape, &Scenario { gpu_memory_utilization: Some(pm as f64 / 1000.0), ..s.clone() });
        (1..=1000).find(|&pm| ok(pm)).map(|pm| pm as f64 / 1000.0)
    }
}
