//! The scenario: every input of an estimate in one type, validated once, with a short, versioned,
//! human-readable URL query encoding used by the page's permalinks and accepted by the CLI.
//!
//! `?v=1&m=meta-llama/Llama-3.1-8B-Instruct&gpu=h100-80gb&n=32&in=4096&out=1024&e=vllm`
//!
//! | key | field | default |
//! |---|---|---|
//! | `v` | encoding version | 1 |
//! | `m` | model id | required |
//! | `gpu` / `mem` | catalog id (`custom`: none) / GiB per GPU the engine sees (with `gpu`: that board's memory overridden) | `h100-80gb` |
//! | `gpus` | number of GPUs | `tp x pp` |
//! | `tp`, `pp` | tensor / pipeline parallel size | 1, 1 |
//! | `dp`, `ep` | data-parallel replicas, expert parallelism (`on`) | 1, off |
//! | `dt` | weight dtype | `auto` |
//! | `q` | quantisation: `auto`, `none`, `awq`, `gptq`, `fp8`, `mxfp4`, `nvfp4`, `bnb4`, `bnb8`, or a llama.cpp GGUF preset (`q8_0`, `q6_k`, `q5_k_m`, `q5_k_s`, `q4_k_m`, `q4_k_s`, `q4_0`) | `auto` |
//! | `kv` | KV-cache dtype | `auto` |
//! | `e`, `ev` | engine, engine version | `vllm`, newest |
//! | `in`, `out` | input / output tokens per request | 1024, 256 |
//! | `n` | concurrent requests | 1 |
//! | `ctx` | max model length (context window) | the model's |
//! | `util` | GPU memory utilisation (SGLang: `mem_fraction_static`) | engine default |
//! | `bs` | KV block size | engine default |
//! | `mbt` | max batched tokens | engine default |
//! | `seqs` | max concurrent sequences the engine schedules | engine default |
//! | `fa` | flash attention, `on` or `off` (llama.cpp's `-fa`: no KQ matrix in the compute buffer) | the build's default |
//! | `dev` | `gpu` or `cpu` (a CPU run has no CUDA context; what `kv-runner measure` uses on CPU) | `gpu` |
//! | `offload` | GiB per GPU of weights in host memory (vLLM, SGLang `--cpu-offload-gb`) | none |
//! | `eager` | `on`: no CUDA graphs (vLLM `--enforce-eager`) | off |
//! | `fis` | vLLM V1's top-k/top-p sampler is FlashInfer's, `on` or `off` (0.8 to 0.11: FlashInfer installed, as in vLLM's images; from 0.12: `VLLM_USE_FLASHINFER_SAMPLER=1`) | the version's default for a pip install |
//! | `ngl` | layers llama.cpp puts on the GPU (`-ngl`: the last N; above the layer count the output layer too) | all and the output |
//! | `nkvo` | `on`: llama.cpp keeps the KV cache in host memory (`-nkvo`) | off |
//! | `lora` | LoRA adapters served: the largest rank (vLLM `--enable-lora --max-lora-rank`) | no LoRA |
//! | `loras` | LoRA adapters in one batch (vLLM `--max-loras`), with `lora` | 1 |

use crate::dtype::{KvDtype, QuantChoice, WeightDtype};
use crate::error::{Error, Result};
use crate::gpu::{self, GpuChoice};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The current permalink encoding version.
pub const ENCODING_VERSION: u32 = 1;

/// The serving engine whose allocation behaviour is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// vLLM V1 (0.8 and later), the default.
    #[default]
    Vllm,
    /// vLLM V0 (up to 0.8 with `VLLM_USE_V1=0`).
    VllmV0,
    Sglang,
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    Transformers,
    Candle,
}

impl Engine {
    pub const ALL: [Engine; 6] = [Engine::Vllm, Engine::VllmV0, Engine::Sglang, Engine::LlamaCpp, Engine::Transformers, Engine::Candle];
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Vllm => "vllm",
            Engine::VllmV0 => "vllm-v0",
            Engine::Sglang => "sglang",
            Engine::LlamaCpp => "llama.cpp",
            Engine::Transformers => "transformers",
            Engine::Candle => "candle",
        }
    }
}

impl FromStr for Engine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "vllm" | "vllm-v1" => Engine::Vllm,
            "vllm-v0" => Engine::VllmV0,
            "sglang" => Engine::Sglang,
            "llama.cpp" | "llamacpp" | "llama-cpp" => Engine::LlamaCpp,
            "transformers" | "hf" => Engine::Transformers,
            "candle" => Engine::Candle,
            _ => return Err(Error::scenario("engine", s, "vllm, vllm-v0, sglang, llama.cpp, transformers or candle")),
        })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every input of an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub model: String,
    pub gpu: GpuChoice,
    pub num_gpus: Option<u32>,
    pub tp: u32,
    pub pp: u32,
    /// Data-parallel replicas (vLLM `--data-parallel-size`): each holds its own KV pool; under vLLM
    /// the replicas of a MoE model share its routed experts. Default 1.
    #[serde(default = "one")]
    pub dp: u32,
    /// Expert parallelism (vLLM `--enable-expert-parallel`, SGLang `--ep-size`): each GPU of the
    /// expert group holds whole routed experts instead of a slice of every expert
    /// ([`Scenario::expert_split`]); ignored for dense models and engines without it.
    #[serde(default)]
    pub expert_parallel: bool,
    pub dtype: WeightDtype,
    pub quantization: QuantChoice,
    pub kv_dtype: KvDtype,
    pub engine: Engine,
    pub engine_version: Option<String>,
    pub input_len: u64,
    pub output_len: u64,
    pub concurrency: u64,
    pub max_model_len: Option<u64>,
    pub gpu_memory_utilization: Option<f64>,
    pub block_size: Option<u64>,
    pub max_num_batched_tokens: Option<u64>,
    pub max_num_seqs: Option<u64>,
    /// Flash attention on or off (llama.cpp `-fa`); `None`: the build's default.
    #[serde(default)]
    pub flash_attention: Option<bool>,
    /// Runs on the CPU (no CUDA context, host memory); default: a GPU.
    #[serde(default)]
    pub cpu: bool,
    /// GiB of weights per GPU kept in host memory (vLLM and SGLang `--cpu-offload-gb`); `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_offload_gib: Option<f64>,
    /// No CUDA graphs (vLLM `--enforce-eager`): from vLLM 0.20 nothing is set aside for them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enforce_eager: bool,
    /// vLLM V1 samples top-k/top-p with FlashInfer's kernels (`Some(true)`) or without them
    /// (`Some(false)`): from 0.8 to 0.11 whenever FlashInfer is installed (vLLM's images ship it, a
    /// pip install does not), from 0.12 only with `VLLM_USE_FLASHINFER_SAMPLER=1`, and by default
    /// on Model Runner V2 from 0.33. `None`: the version's default for a pip install. The start-up
    /// log says which: "Using FlashInfer for top-p & top-k sampling".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flashinfer_sampler: Option<bool>,
    /// Layers llama.cpp puts on the GPU (`-ngl`): the last `n` decoder layers, and the output
    /// layer when `n` exceeds the layer count; `None`: all of them and the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<u64>,
    /// llama.cpp `-nkvo`: the KV cache (and the attention over it) stays in host memory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kv_on_host: bool,
    /// LoRA adapters served (vLLM `--enable-lora`): the largest rank (`--max-lora-rank`); `None`:
    /// no LoRA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_rank: Option<u64>,
    /// LoRA adapters one batch may use (vLLM `--max-loras`, default 1): the slots vLLM allocates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loras: Option<u64>,
    /// The host's L2 cache per core in bytes, for the candle profile on a CPU: candle's matmul
    /// (gemm) keeps a packing slab of that size per thread (`kv-runner measure` reads it from
    /// gemm); `None`: 512 KiB. Not in permalinks (a property of the machine measured, not of the
    /// deployment planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_l2_cache_bytes: Option<u64>,
}

/// The largest L2 cache per core a scenario may give (`cpu_l2_cache_bytes`).
pub const MAX_L2_CACHE_BYTES: u64 = 1 << 30;

fn one() -> u32 {
    1
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            model: String::new(),
            gpu: GpuChoice::Catalog("h100-80gb".into()),
            num_gpus: None,
            tp: 1,
            pp: 1,
            dp: 1,
            expert_parallel: false,
            dtype: WeightDtype::Auto,
            quantization: QuantChoice::Auto,
            kv_dtype: KvDtype::Auto,
            engine: Engine::Vllm,
            engine_version: None,
            input_len: 1024,
            output_len: 256,
            concurrency: 1,
            max_model_len: None,
            gpu_memory_utilization: None,
            block_size: None,
            max_num_batched_tokens: None,
            max_num_seqs: None,
            flash_attention: None,
            cpu: false,
            cpu_offload_gib: None,
            enforce_eager: false,
            flashinfer_sampler: None,
            gpu_layers: None,
            kv_on_host: false,
            lora_rank: None,
            max_loras: None,
            cpu_l2_cache_bytes: None,
        }
    }
}

/// A named workload: typical prompt and answer lengths and concurrency (the profiles of the
/// tuners we replace: chat/agent 2-8K context with short answers, RAG 8-32K with medium answers,
/// long-form 4-8K with 1-2K answers, a CI micro run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Preset {
    pub id: &'static str,
    pub label: &'static str,
    pub input_len: u64,
    pub output_len: u64,
    pub concurrency: u64,
    pub description: &'static str,
}

/// The workload presets.
pub const PRESETS: &[Preset] = &[
    Preset { id: "chat-agent", label: "Chat / agent", input_len: 4096, output_len: 256, concurrency: 32, description: "multi-turn chat and tool use: 2-8K context, short answers, latency first" },
    Preset { id: "rag", label: "RAG", input_len: 16_384, output_len: 512, concurrency: 8, description: "retrieval-augmented answers: 8-32K context, medium answers" },
    Preset { id: "long-form", label: "Long-form", input_len: 4096, output_len: 2048, concurrency: 16, description: "writing and summarising: 4-8K context, 1-2K tokens out, throughput first" },
    Preset { id: "ci-micro", label: "CI micro", input_len: 512, output_len: 32, concurrency: 1, description: "a quick smoke run" },
];

impl Scenario {
    /// Applies a workload preset (lengths and concurrency); other inputs stay.
    pub fn apply_preset(&mut self, id: &str) -> Result<()> {
        let p = PRESETS.iter().find(|p| p.id == id).ok_or_else(|| Error::scenario("preset", id, "chat-agent, rag, long-form or ci-micro"))?;
        self.input_len = p.input_len;
        self.output_len = p.output_len;
        self.concurrency = p.concurrency;
        Ok(())
    }
}

/// Largest token count accepted anywhere (beyond any published context window).
pub const MAX_TOKENS: u64 = 1 << 26;
/// Largest request count accepted.
pub const MAX_CONCURRENCY: u64 = 1 << 20;
/// Largest `-ngl` accepted (llama.cpp users pass 99 or 999 for "all").
pub const MAX_GPU_LAYERS: u64 = 100_000;

/// The `--max-lora-rank` values vLLM accepts (`LoRAConfig`).
pub const LORA_RANKS: &[u64] = &[1, 8, 16, 32, 64, 128, 256, 320, 512];
/// Most LoRA slots accepted (`--max-loras`).
pub const MAX_LORAS: u64 = 1024;

/// Largest `--cpu-offload-gb` accepted, GiB per GPU.
pub const MAX_OFFLOAD_GIB: f64 = 1_048_576.0;

impl Scenario {
    /// Tokens per request: input plus output.
    pub fn context_len(&self) -> u64 {
        self.input_len.saturating_add(self.output_len)
    }
    /// GPUs in use: `num_gpus`, or `tp x pp x dp`.
    pub fn gpus(&self) -> u64 {
        self.num_gpus.map_or(self.tp as u64 * self.pp as u64 * self.dp.max(1) as u64, u64::from)
    }
    /// The parallel layout as the answer prints it: `tp=2 pp=1`, with `dp=8` and `expert-parallel`
    /// when set.
    pub fn parallelism(&self) -> String {
        let mut p = format!("tp={} pp={}", self.tp, self.pp);
        if self.dp != 1 {
            p.push_str(&format!(" dp={}", self.dp));
        }
        if self.expert_parallel {
            p.push_str(" expert-parallel");
        }
        p
    }
    /// How one GPU holds the routed experts of a MoE model under this engine. vLLM: the experts
    /// of `dp` replicas form one group of `tp x dp` GPUs, sliced (tensor parallel) or, with
    /// `expert_parallel`, whole experts each. SGLang: replicas are independent; `--ep-size` (at most
    /// tp) gives whole experts over the `tp` GPUs. Other engines: sliced over `tp`.
    pub fn expert_split(&self, moe: bool) -> crate::weights::ExpertSplit {
        let (tp, dp) = (self.tp.max(1) as u64, self.dp.max(1) as u64);
        let ranks = match self.engine {
            Engine::Vllm | Engine::VllmV0 if moe => tp * dp,
            _ => tp,
        };
        let whole = moe && self.expert_parallel && matches!(self.engine, Engine::Vllm | Engine::VllmV0 | Engine::Sglang);
        crate::weights::ExpertSplit { ranks, whole }
    }

    /// Checks every field; returns all problems, each naming its parameter.
    pub fn validate(&self) -> std::result::Result<(), Vec<Error>> {
        let mut errs = vec![];
        if self.model.trim().is_empty() {
            errs.push(Error::scenario("m", "", "a model id or config"));
        }
        if let Err(e) = self.gpu.memory() {
            errs.push(e);
        }
        for (name, v) in [("tp", self.tp), ("pp", self.pp), ("dp", self.dp)] {
            if v == 0 || v > 1024 {
                errs.push(Error::scenario(name, v, "an integer from 1 to 1024"));
            }
        }
        if let Some(g) = self.num_gpus {
            let need = self.tp as u64 * self.pp as u64 * self.dp.max(1) as u64;
            if g == 0 || (g as u64) < need {
                errs.push(Error::scenario("gpus", g, format!("at least tp x pp x dp = {need}")));
            }
        }
        for (name, v) in [("in", self.input_len), ("out", self.output_len)] {
            if v > MAX_TOKENS {
                errs.push(Error::scenario(name, v, format!("at most {MAX_TOKENS} tokens")));
            }
        }
        if self.context_len() == 0 {
            errs.push(Error::scenario("in", 0, "at least one token per request (in + out > 0)"));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            errs.push(Error::scenario("n", self.concurrency, format!("an integer from 1 to {MAX_CONCURRENCY}")));
        }
        if let Some(l) = self.max_model_len {
            if l == 0 || l > MAX_TOKENS {
                errs.push(Error::scenario("ctx", l, format!("an integer from 1 to {MAX_TOKENS}")));
            }
        }
        if let Some(u) = self.gpu_memory_utilization {
            if !(u.is_finite() && u > 0.0 && u <= 1.0) {
                errs.push(Error::scenario("util", u, "a fraction in (0, 1]"));
            }
        }
        if let Some(b) = self.block_size {
            if b == 0 || b > 65_536 {
                errs.push(Error::scenario("bs", b, "a block size from 1 to 65536 tokens"));
            }
        }
        if let Some(t) = self.max_num_batched_tokens {
            if t == 0 || t > MAX_TOKENS {
                errs.push(Error::scenario("mbt", t, format!("an integer from 1 to {MAX_TOKENS}")));
            }
        }
        if let Some(s) = self.max_num_seqs {
            if s == 0 || s > MAX_CONCURRENCY {
                errs.push(Error::scenario("seqs", s, format!("an integer from 1 to {MAX_CONCURRENCY}")));
            }
        }
        if let Some(g) = self.cpu_offload_gib {
            if !(g.is_finite() && (0.0..=MAX_OFFLOAD_GIB).contains(&g)) {
                errs.push(Error::scenario("offload", g, format!("GiB per GPU from 0 to {MAX_OFFLOAD_GIB}")));
            } else if g > 0.0 && !matches!(self.engine, Engine::Vllm | Engine::VllmV0 | Engine::Sglang) {
                errs.push(Error::scenario("offload", g, "0 for this engine: --cpu-offload-gb is a vLLM and SGLang setting (llama.cpp offloads whole layers with -ngl)"));
            }
        }
        if let Some(n) = self.gpu_layers {
            if n > MAX_GPU_LAYERS {
                errs.push(Error::scenario("ngl", n, format!("a number of layers from 0 to {MAX_GPU_LAYERS}")));
            } else if self.engine != Engine::LlamaCpp {
                errs.push(Error::scenario("ngl", n, "no value for this engine: -ngl is a llama.cpp setting (vLLM and SGLang keep weights in host memory with --cpu-offload-gb)"));
            }
        }
        if self.kv_on_host && self.engine != Engine::LlamaCpp {
            errs.push(Error::scenario("nkvo", "on", "off for this engine: -nkvo is a llama.cpp setting"));
        }
        if let Some(fi) = self.flashinfer_sampler {
            if self.engine != Engine::Vllm {
                errs.push(Error::scenario("fis", if fi { "on" } else { "off" }, "no value for this engine: the FlashInfer sampler is a vLLM V1 setting"));
            }
        }
        if let Some(r) = self.lora_rank {
            if !LORA_RANKS.contains(&r) {
                let list: Vec<String> = LORA_RANKS.iter().map(u64::to_string).collect();
                errs.push(Error::scenario("lora", r, format!("a LoRA rank vLLM accepts: {} (--max-lora-rank)", list.join(", "))));
            } else if !matches!(self.engine, Engine::Vllm | Engine::VllmV0) {
                errs.push(Error::scenario("lora", r, "no value for this engine: the LoRA slots modelled are vLLM's (--enable-lora --max-lora-rank)"));
            }
        }
        if let Some(n) = self.max_loras {
            if n == 0 || n > MAX_LORAS {
                errs.push(Error::scenario("loras", n, format!("a number of LoRA slots from 1 to {MAX_LORAS} (--max-loras)")));
            } else if self.lora_rank.is_none() {
                errs.push(Error::scenario("loras", n, "no value without a LoRA rank (lora=R, --max-lora-rank): --max-loras needs --enable-lora"));
            }
        }
        if let Some(b) = self.cpu_l2_cache_bytes {
            if b == 0 || b > MAX_L2_CACHE_BYTES {
                errs.push(Error::scenario("cpu_l2_cache_bytes", b, format!("a CPU's L2 cache per core, 1 B to {} MiB", MAX_L2_CACHE_BYTES >> 20)));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// Every parameter as `(key, value)`, in encoding order; optional fields left unset are omitted.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q: Vec<(&'static str, String)> = vec![("v", ENCODING_VERSION.to_string()), ("m", self.model.clone())];
        match &self.gpu {
            GpuChoice::Catalog(id) => q.push(("gpu", id.clone())),
            GpuChoice::Custom { memory_gib, board } => {
                if let Some(b) = board {
                    q.push(("gpu", b.clone()));
                }
                q.push(("mem", memory_gib.to_string()))
            }
        }
        if let Some(g) = self.num_gpus {
            q.push(("gpus", g.to_string()));
        }
        q.push(("tp", self.tp.to_string()));
        q.push(("pp", self.pp.to_string()));
        if self.dp != 1 {
            q.push(("dp", self.dp.to_string()));
        }
        if self.expert_parallel {
            q.push(("ep", "on".into()));
        }
        q.push(("dt", self.dtype.to_string()));
        q.push(("q", self.quantization.to_string()));
        q.push(("kv", self.kv_dtype.to_string()));
        q.push(("e", self.engine.to_string()));
        if let Some(v) = &self.engine_version {
            q.push(("ev", v.clone()));
        }
        q.push(("in", self.input_len.to_string()));
        q.push(("out", self.output_len.to_string()));
        q.push(("n", self.concurrency.to_string()));
        let opt = |k: &'static str, v: Option<u64>| v.map(|v| (k, v.to_string()));
        q.extend(opt("ctx", self.max_model_len));
        if let Some(u) = self.gpu_memory_utilization {
            q.push(("util", u.to_string()));
        }
        q.extend(opt("bs", self.block_size));
        q.extend(opt("mbt", self.max_num_batched_tokens));
        q.extend(opt("seqs", self.max_num_seqs));
        if let Some(fa) = self.flash_attention {
            q.push(("fa", if fa { "on" } else { "off" }.into()));
        }
        if self.cpu {
            q.push(("dev", "cpu".into()));
        }
        if let Some(g) = self.cpu_offload_gib {
            q.push(("offload", g.to_string()));
        }
        if self.enforce_eager {
            q.push(("eager", "on".into()));
        }
        if let Some(fi) = self.flashinfer_sampler {
            q.push(("fis", if fi { "on" } else { "off" }.into()));
        }
        q.extend(opt("ngl", self.gpu_layers));
        if self.kv_on_host {
            q.push(("nkvo", "on".into()));
        }
        q.extend(opt("lora", self.lora_rank));
        q.extend(opt("loras", self.max_loras));
        q
    }

    /// The current value of one parameter as its query text (`None` when unset), so a form
    /// control shows exactly what a permalink would carry.
    pub fn get(&self, key: &str) -> Option<String> {
        self.pairs().into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Clears an optional parameter (back to the engine's or model's default).
    pub fn unset(&mut self, key: &str) -> Result<()> {
        match key {
            // an override of a board's memory goes back to the board's catalog size
            "mem" => match &self.gpu {
                GpuChoice::Custom { board: Some(b), .. } => {
                    self.gpu = GpuChoice::Catalog(b.clone());
                    Ok(())
                }
                GpuChoice::Catalog(_) => Ok(()),
                GpuChoice::Custom { board: None, .. } => Err(Error::scenario("mem", "", "GiB per GPU (a custom GPU needs its memory size)")),
            },
            "gpus" | "ev" | "ctx" | "util" | "bs" | "mbt" | "seqs" | "fa" | "dev" | "dp" | "ep" | "offload" | "eager" | "fis" | "ngl" | "nkvo" | "lora" | "loras" => {
                if key == "ev" {
                    self.engine_version = None;
                } else if key == "dev" {
                    self.cpu = false;
                } else {
                    self.reset(key);
                }
                Ok(())
            }
            other => Err(Error::scenario(other, "", "a value (this parameter cannot be left empty)")),
        }
    }

    /// The URL query (without `?`). Optional fields left at their default are omitted.
    pub fn to_query(&self) -> String {
        self.pairs().iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
    }

    /// Decodes a query leniently: every valid parameter is applied, every invalid one is reported
    /// and its field keeps the default (the page shows the notices and goes on).
    pub fn from_query_lenient(query: &str) -> (Scenario, Vec<Error>) {
        let mut s = Scenario::default();
        let mut errs = vec![];
        // the board before the memory size that overrides it, whatever their order in the link
        let mut pairs: Vec<(&str, &str)> = query_pairs(query).collect();
        pairs.sort_by_key(|(k, _)| *k != "gpu");
        // a size with no (valid) board named in the link is on no known board (not the default's)
        let mut board_named = false;
        for (k, raw) in pairs {
            let v = match decode(raw) {
                Ok(v) => v,
                Err(e) => {
                    errs.push(Error::scenario(k, raw, e));
                    continue;
                }
            };
            match s.set(k, &v) {
                Ok(()) => board_named |= k == "gpu",
                Err(e) => errs.push(e),
            }
        }
        if let GpuChoice::Custom { board, .. } = &mut s.gpu {
            if !board_named {
                *board = None;
            }
        }
        if let Err(v) = s.validate() {
            // report range problems too, and put those fields back to defaults
            let slots = s.max_loras;
            for e in v {
                if let Error::Scenario { param, .. } = &e {
                    s.reset(param);
                }
                if !errs.contains(&e) {
                    errs.push(e);
                }
            }
            // a rejected LoRA rank takes its slot count with it: say so
            if let (Some(n), None) = (slots, s.max_loras) {
                let e = Error::scenario("loras", n, "a valid LoRA rank beside it (lora was rejected, so the slots were dropped too)");
                if !errs.iter().any(|x| matches!(x, Error::Scenario { param, .. } if param == "loras")) {
                    errs.push(e);
                }
            }
        }
        (s, errs)
    }

    /// Decodes a query strictly: any invalid parameter is an error.
    pub fn from_query(query: &str) -> std::result::Result<Scenario, Vec<Error>> {
        let (s, errs) = Scenario::from_query_lenient(query);
        if errs.is_empty() {
            Ok(s)
        } else {
            Err(errs)
        }
    }

    fn reset(&mut self, param: &str) {
        let d = Scenario::default();
        match param {
            // a bad size on a board goes back to the board's catalog size
            "mem" | "gpu_memory_gib" => {
                self.gpu = match &self.gpu {
                    GpuChoice::Custom { board: Some(b), .. } if gpu::find(b).is_ok() => GpuChoice::Catalog(b.clone()),
                    _ => d.gpu,
                }
            }
            "gpu" => self.gpu = d.gpu,
            "gpus" => self.num_gpus = None,
            "tp" => self.tp = 1,
            "pp" => self.pp = 1,
            "dp" => self.dp = 1,
            "ep" => self.expert_parallel = false,
            "in" => self.input_len = d.input_len,
            "out" => self.output_len = d.output_len,
            "n" => self.concurrency = 1,
            "ctx" => self.max_model_len = None,
            "util" => self.gpu_memory_utilization = None,
            "bs" => self.block_size = None,
            "mbt" => self.max_num_batched_tokens = None,
            "seqs" => self.max_num_seqs = None,
            "fa" => self.flash_attention = None,
            "offload" => self.cpu_offload_gib = None,
            "eager" => self.enforce_eager = false,
            "fis" => self.flashinfer_sampler = None,
            "ngl" => self.gpu_layers = None,
            "nkvo" => self.kv_on_host = false,
            // no LoRA also means no slot count
            "lora" => {
                self.lora_rank = None;
                self.max_loras = None;
            }
            "loras" => self.max_loras = None,
            _ => {}
        }
    }

    /// Sets one parameter from its query key.
    pub fn set(&mut self, key: &str, v: &str) -> Result<()> {
        let int = |exp: &str| v.trim().parse::<u64>().map_err(|_| Error::scenario(key, v, exp.to_string()));
        match key {
            "v" => {
                if v != "1" {
                    return Err(Error::scenario("v", v, "encoding version 1"));
                }
            }
            "m" => self.model = v.to_string(),
            // a board replaces any memory size; `custom` keeps the size and drops the board
            "gpu" if v.trim().eq_ignore_ascii_case(gpu::CUSTOM) => {
                let gib = match &self.gpu {
                    GpuChoice::Catalog(id) => gpu::find(id)?.memory_gib,
                    GpuChoice::Custom { memory_gib, .. } => *memory_gib,
                };
                self.gpu = GpuChoice::custom(gib);
            }
            "gpu" => {
                gpu::find(v).map_err(|_| {
                    let ids: Vec<&str> = gpu::CATALOG.iter().map(|g| g.id).collect();
                    Error::scenario("gpu", v, format!("one of {}, or custom", ids.join(", ")))
                })?;
                self.gpu = GpuChoice::Catalog(v.trim().to_ascii_lowercase());
            }
            // a memory size keeps the board it overrides
            "mem" => {
                let f = v.trim().parse::<f64>().map_err(|_| Error::scenario("mem", v, "GiB per GPU, a number"))?;
                let board = match &self.gpu {
                    GpuChoice::Catalog(id) => Some(id.clone()),
                    GpuChoice::Custom { board, .. } => board.clone(),
                };
                let next = GpuChoice::Custom { memory_gib: f, board };
                next.memory()?;
                self.gpu = next;
            }
            "gpus" => self.num_gpus = Some(u32::try_from(int("a number of GPUs")?).map_err(|_| Error::scenario(key, v, "a number of GPUs"))?),
            "tp" => self.tp = u32::try_from(int("an integer from 1 to 1024")?).map_err(|_| Error::scenario(key, v, "an integer from 1 to 1024"))?,
            "pp" => self.pp = u32::try_from(int("an integer from 1 to 1024")?).map_err(|_| Error::scenario(key, v, "an integer from 1 to 1024"))?,
            "dp" => self.dp = u32::try_from(int("an integer from 1 to 1024")?).map_err(|_| Error::scenario(key, v, "an integer from 1 to 1024"))?,
            "ep" => self.expert_parallel = on_off(v).ok_or_else(|| Error::scenario("ep", v, "on or off (expert parallelism)"))?,
            "dt" => self.dtype = v.parse()?,
            "q" => self.quantization = v.parse()?,
            "kv" => self.kv_dtype = v.parse()?,
            "e" => self.engine = v.parse()?,
            "ev" => {
                if v.is_empty() || v.len() > 40 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                    return Err(Error::scenario("ev", v, "a version like 0.11.0 or b5121"));
                }
                self.engine_version = Some(v.to_string());
            }
            "in" => self.input_len = int("a number of tokens")?,
            "out" => self.output_len = int("a number of tokens")?,
            "n" => self.concurrency = int("a number of concurrent requests")?,
            "ctx" => self.max_model_len = Some(int("a number of tokens")?),
            "util" => {
                let f = v.trim().parse::<f64>().map_err(|_| Error::scenario("util", v, "a fraction in (0, 1]"))?;
                self.gpu_memory_utilization = Some(f);
            }
            "bs" => self.block_size = Some(int("a block size in tokens")?),
            "mbt" => self.max_num_batched_tokens = Some(int("a number of tokens")?),
            "seqs" => self.max_num_seqs = Some(int("a number of sequences")?),
            "fa" => self.flash_attention = Some(on_off(v).ok_or_else(|| Error::scenario("fa", v, "on or off (flash attention; leave it out for the build's default)"))?),
            "eager" => self.enforce_eager = on_off(v).ok_or_else(|| Error::scenario("eager", v, "on or off (--enforce-eager: no CUDA graphs)"))?,
            "fis" => self.flashinfer_sampler = Some(on_off(v).ok_or_else(|| Error::scenario("fis", v, "on or off (vLLM's FlashInfer top-k/top-p sampler; leave it out for the version's default)"))?),
            "ngl" => self.gpu_layers = Some(int("a number of layers on the GPU (llama.cpp -ngl)")?),
            "nkvo" => self.kv_on_host = on_off(v).ok_or_else(|| Error::scenario("nkvo", v, "on or off (llama.cpp -nkvo: KV cache in host memory)"))?,
            "lora" => self.lora_rank = Some(int("a LoRA rank (--max-lora-rank)")?),
            "loras" => self.max_loras = Some(int("a number of LoRA slots (--max-loras)")?),
            "offload" => {
                let f = v.trim().parse::<f64>().map_err(|_| Error::scenario("offload", v, "GiB per GPU kept in host memory (--cpu-offload-gb), a number"))?;
                self.cpu_offload_gib = Some(f);
            }
            "dev" => {
                self.cpu = match v.trim().to_ascii_lowercase().as_str() {
                    "cpu" => true,
                    "gpu" | "cuda" => false,
                    _ => return Err(Error::scenario("dev", v, "gpu or cpu")),
                }
            }
            other => return Err(Error::scenario(other, v, "a known parameter (v, m, gpu, mem, gpus, tp, pp, dp, ep, dt, q, kv, e, ev, in, out, n, ctx, util, bs, mbt, seqs, fa, dev, offload, eager, fis, ngl, nkvo, lora, loras)")),
        }
        Ok(())
    }
}

/// A switch as flags and links write it: `on`/`1`/`true`, `off`/`0`/`false` (any case).
pub(crate) fn on_off(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" => Some(true),
        "off" | "0" | "false" => Some(false),
        _ => None,
    }
}

/// Percent-encodes everything but unreserved characters and `/` (model ids stay readable).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes percent-encoding (and `+` as space); invalid escapes or UTF-8 are an error.
pub fn decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or("a complete %XX escape")?;
                let b = u8::from_str_radix(hex, 16).map_err(|_| "a valid %XX escape")?;
                out.push(b);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "UTF-8 text".to_string())
}

/// A permalink query's `key=value` pairs as written (values still percent-encoded), with or
/// without the leading `?`; a pair without `=` has an empty value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_permalink_decodes() {
        let s = Scenario::from_query("?m=meta-llama/Llama-3.1-8B-Instruct&gpu=h100-80gb&n=32&ctx=8192").unwrap();
        assert_eq!(s.model, "meta-llama/Llama-3.1-8B-Instruct");
        assert_eq!(s.concurrency, 32);
        assert_eq!(s.max_model_len, Some(8192));
    }

    #[test]
    fn invalid_params_fall_back_per_field() {
        let (s, errs) = Scenario::from_query_lenient("m=x&n=abc&tp=2&util=1.5&gpu=h999&zz=1");
        assert_eq!(s.tp, 2);
        assert_eq!(s.concurrency, 1);
        assert_eq!(s.gpu_memory_utilization, None);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs.iter().any(|e| e.to_string().contains("`n` = `abc`")));
    }

    #[test]
    fn get_and_unset_follow_the_encoding() {
        let mut s = Scenario::from_query("m=a/b&ctx=4096&util=0.8").unwrap();
        assert_eq!(s.get("ctx").as_deref(), Some("4096"));
        assert_eq!(s.get("util").as_deref(), Some("0.8"));
        assert_eq!(s.get("bs"), None);
        s.unset("ctx").unwrap();
        assert_eq!(s.get("ctx"), None);
        assert!(s.unset("n").is_err());
    }

    #[test]
    fn llamacpp_layer_settings_travel_in_the_link() {
        let s = Scenario::from_query("m=a/b&e=llama.cpp&ngl=10&nkvo=on").unwrap();
        assert_eq!((s.gpu_layers, s.kv_on_host), (Some(10), true));
        assert_eq!(Scenario::from_query(&s.to_query()).unwrap(), s);
        assert!(s.to_query().ends_with("&ngl=10&nkvo=on"), "{}", s.to_query());
        let (_, errs) = Scenario::from_query_lenient("m=a/b&e=vllm&ngl=10&nkvo=on");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|e| e.to_string().contains("llama.cpp setting")), "{errs:?}");
        assert!(Scenario::from_query("m=a/b&e=llama.cpp&ngl=x").unwrap_err()[0].to_string().contains("`ngl` = `x`"));
    }

    #[test]
    fn flashinfer_sampler_travels_in_the_link_for_vllm_v1_only() {
        let mut s = Scenario::from_query("m=a/b&e=vllm&ev=0.10.1.1&fis=on").unwrap();
        assert_eq!(s.flashinfer_sampler, Some(true));
        assert_eq!(Scenario::from_query(&s.to_query()).unwrap(), s);
        assert_eq!(s.get("fis").as_deref(), Some("on"));
        s.unset("fis").unwrap();
        assert_eq!((s.flashinfer_sampler, s.get("fis")), (None, None));
        assert_eq!(Scenario::from_query("m=a/b&fis=off").unwrap().flashinfer_sampler, Some(false));
        let errs = Scenario::from_query("m=a/b&e=sglang&fis=on").unwrap_err();
        assert!(errs[0].to_string().contains("`fis` = `on`") && errs[0].to_string().contains("vLLM V1"), "{errs:?}");
        assert!(Scenario::from_query("m=a/b&fis=yes").unwrap_err()[0].to_string().contains("on or off"));
    }

    #[test]
    fn a_memory_size_keeps_the_board_it_overrides() {
        // in either order, gpu + mem is the board with the memory the engine sees
        for q in ["m=a/b&gpu=h20-141gb&mem=139.8", "m=a/b&mem=139.8&gpu=h20-141gb"] {
            let s = Scenario::from_query(q).unwrap();
            assert_eq!(s.gpu, GpuChoice::Custom { memory_gib: 139.8, board: Some("h20-141gb".into()) }, "{q}");
            assert_eq!(s.gpu.catalog().map(|g| g.fabric), Some(gpu::Fabric::NvSwitch));
            assert_eq!(Scenario::from_query(&s.to_query()).unwrap(), s);
            assert_eq!(s.get("gpu").as_deref(), Some("h20-141gb"));
        }
        // a size alone is on no known board
        let mut s = Scenario::from_query("m=a/b&mem=40").unwrap();
        assert_eq!(s.gpu.catalog(), None);
        assert_eq!(s.get("gpu"), None);
        assert!(s.unset("mem").unwrap_err().to_string().contains("`mem`"));
        // picking a board brings its catalog size; clearing an override goes back to it
        s.set("gpu", "a100-80gb").unwrap();
        assert_eq!(s.gpu, GpuChoice::Catalog("a100-80gb".into()));
        s.set("mem", "79.5").unwrap();
        s.unset("mem").unwrap();
        assert_eq!(s.gpu, GpuChoice::Catalog("a100-80gb".into()));
        // `custom` keeps the size and drops the board
        s.set("gpu", "custom").unwrap();
        assert_eq!(s.gpu, GpuChoice::custom(79.15));
        let s = Scenario::from_query("m=a/b&gpu=custom&mem=21.52").unwrap();
        assert_eq!(s.gpu, GpuChoice::custom(21.52));
        // a bad board leaves the size on no board; a bad size on a board keeps the board's own
        let (s, errs) = Scenario::from_query_lenient("m=a/b&gpu=h999&mem=40");
        assert_eq!((s.gpu, errs.len()), (GpuChoice::custom(40.0), 1));
        let (s, errs) = Scenario::from_query_lenient("m=a/b&gpu=a100-80gb&mem=5000");
        assert_eq!((s.gpu, errs.len()), (GpuChoice::Catalog("a100-80gb".into()), 1));
        let e = Scenario::default().set("gpu", "h999").unwrap_err().to_string();
        assert!(e.contains("h100-80gb") && e.contains("or custom"), "{e}");
    }

    #[test]
    fn encoding_is_readable() {
        let s = Scenario { model: "Qwen/Qwen2.5-7B-Instruct".into(), ..Scenario::default() };
        let q = s.to_query();
        assert!(q.starts_with("v=1&m=Qwen/Qwen2.5-7B-Instruct&gpu=h100-80gb"), "{q}");
        assert_eq!(Scenario::from_query(&q).unwrap(), s);
    }
}
