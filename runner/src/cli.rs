//! The clap parser. Arguments become the estimator's validated `Scenario` through the same
//! `Scenario::set` the permalinks use, so the CLI and the page accept exactly the same values.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kv-runner", version, about = "KV capacity planner: will this model fit, how many requests, how sure?")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Estimate weights, KV cache, activations, overheads and capacity for a scenario.
    Estimate(EstimateArgs),
    /// List the bundled model configs.
    Models(ModelsArgs),
    /// Score the engine profiles against engine start-up logs (JSONL cases).
    Validate(ValidateArgs),
    /// Upload a measurement document to a kv-hub results service.
    Upload(UploadArgs),
    /// Measure real memory, latency and throughput with candle (CPU, or CUDA with the `cuda` feature).
    Measure(MeasureArgs),
    /// Describe this machine: OS, CPU, memory, GPUs, candle version, features compiled in.
    Env(EnvArgs),
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// Bundled model id, a config.json path, a local Hugging Face snapshot folder, or a Hub id
    /// (the Hub cache is used when it has the config).
    #[arg(long, short = 'm')]
    pub model: String,
    /// Weights: random (default; memory and speed do not depend on the values), zeros, or a
    /// .safetensors file or folder.
    #[arg(long, default_value = "random")]
    pub weights: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// f32, bf16 or f16 (default: f32 on CPU, where candle has no bf16 matmul, bf16 on CUDA).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Concurrent requests, a list: 1,2,4,8.
    #[arg(long, short = 'n', value_delimiter = ',', default_value = "1")]
    pub concurrency: Vec<u64>,
    /// Prompt tokens per request, a list.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub input_len: Vec<u64>,
    /// Generated tokens per request, a list.
    #[arg(long, value_delimiter = ',', default_value = "16")]
    pub output_len: Vec<u64>,
    /// Warm-up passes before the first point (not recorded).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Repetitions of each point (latencies pooled; memory from the first).
    #[arg(long, default_value_t = 1)]
    pub iters: usize,
    /// Also run a mixed batch per concurrency: SHORT,LONG (half the requests each, padded to LONG).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub mixed: Option<Vec<u64>>,
    /// Write the measurement document here (always before any upload).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print CSV instead of the summary table.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print the measurement document (JSON).
    #[arg(long)]
    pub json: bool,
    /// Run points the estimator predicts not to fit.
    #[arg(long)]
    pub force: bool,
    /// After an out-of-memory point, go on with the rest of the sweep.
    #[arg(long)]
    pub keep_going: bool,
    /// CPU only: a soft memory cap in GiB; a point that passes it is recorded as out of memory.
    #[arg(long)]
    pub memory_cap_gib: Option<f64>,
    /// Upload the document to a kv-hub (default URL: $KV_HUB_URL or http://127.0.0.1:8080).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub upload: Option<String>,
    /// Upload token (default: $KV_HUB_TOKEN, or data/upload-token for a hub on 127.0.0.1).
    #[arg(long, env = "KV_HUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The measurement document (JSON, docs/measurement-schema.md); validated before sending.
    pub file: std::path::PathBuf,
    /// Base URL of the kv-hub.
    #[arg(long, env = "KV_HUB_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Upload token, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "KV_HUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The cases: one logged engine start-up per line (see shared/validation/README.md); repeat
    /// the flag to score several files as one set.
    #[arg(long, required = true)]
    pub cases: Vec<std::path::PathBuf>,
    /// Print the results as JSON (cases and summary).
    #[arg(long, conflicts_with_all = ["markdown", "track_record"])]
    pub json: bool,
    /// Print each engine's track record as JSON (what crates/estimator/src/track-record.json holds:
    /// how far the KV and weights figures have been off, per engine).
    #[arg(long, conflicts_with = "markdown")]
    pub track_record: bool,
    /// Print the Markdown report (docs/accuracy/engine-logs.md).
    #[arg(long)]
    pub markdown: bool,
    /// Only the strict cases (no caveat flag).
    #[arg(long)]
    pub strict_only: bool,
    /// Never ask the Hugging Face Hub for configs that are not bundled (those cases are skipped).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct EstimateArgs {
    /// Bundled model id (see `kv-runner models`), a path to a config.json, or a Hugging Face id.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// A permalink query (`v=1&m=...&gpu=...`) to start from; flags override its fields.
    #[arg(long)]
    pub permalink: Option<String>,
    /// GPU from the catalog (e.g. h100-80gb, a100-40gb, l4, rtx-4090), or its name as nvidia-smi
    /// prints it ("NVIDIA A100-SXM4-40GB").
    #[arg(long)]
    pub gpu: Option<String>,
    /// GPU memory in GiB the engine sees (for SGLang: the free memory at "Load weight begin").
    /// With `--gpu` it overrides that board's size and keeps its fabric, compute capability and
    /// bandwidth; alone, it is a GPU the catalog does not know.
    #[arg(long)]
    pub gpu_memory_gib: Option<f64>,
    /// Number of GPUs (default tp x pp x dp).
    #[arg(long)]
    pub num_gpus: Option<u32>,
    /// Tensor-parallel size.
    #[arg(long)]
    pub tp: Option<u32>,
    /// Pipeline-parallel size.
    #[arg(long)]
    pub pp: Option<u32>,
    /// Data-parallel replicas (vLLM `--data-parallel-size`); each has its own KV pool, and vLLM spreads
    /// a MoE model's experts over the tp x dp GPUs.
    #[arg(long)]
    pub dp: Option<u32>,
    /// Expert parallelism (vLLM `--enable-expert-parallel`, SGLang `--ep-size`): whole routed experts
    /// per GPU of the expert group (vLLM tp x dp, SGLang tp) instead of slices; MoE models only.
    #[arg(long)]
    pub enable_expert_parallel: bool,
    /// Weight dtype: auto, fp32, bf16, fp16, fp8, int8, int4.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Quantisation: auto, none, awq, gptq (w4a16), fp8, int8 (w8a8), mxfp4, nvfp4, bnb4, bnb8, or a
    /// llama.cpp GGUF preset (q8_0, q6_k, q5_k_m, q5_k_s, q4_k_m, q4_k_s, q4_0; engine llama.cpp).
    /// vLLM's method names are taken as written (awq_marlin, gptq_marlin, bitsandbytes,
    /// modelopt_fp4); compressed-tensors, modelopt, fbgemm_fp8, moe_wna16 and quark read the scheme
    /// from the checkpoint's quantization_config and refuse a config that has none.
    #[arg(long)]
    pub quantization: Option<String>,
    /// KV-cache dtype: auto, fp16, bf16, fp8, int8, nvfp4, q8_0, q4_0.
    #[arg(long)]
    pub kv_dtype: Option<String>,
    /// Engine: vllm, vllm-v0, sglang, llama.cpp, transformers, candle.
    #[arg(long)]
    pub engine: Option<String>,
    /// Engine version whose behaviour to model (default: the newest modelled; the output names it).
    #[arg(long)]
    pub engine_version: Option<String>,
    /// Max model length (SGLang: context_len, llama.cpp: n_ctx); default: the engine's own, from the config's length keys and RoPE scaling.
    #[arg(long)]
    pub max_model_len: Option<u64>,
    /// vLLM gpu_memory_utilization (SGLang: mem_fraction_static).
    #[arg(long)]
    pub gpu_memory_utilization: Option<f64>,
    /// KV block size in tokens.
    #[arg(long)]
    pub block_size: Option<u64>,
    /// Max batched tokens (vLLM profiling batch, SGLang chunked prefill, llama.cpp `-ub`).
    #[arg(long)]
    pub max_num_batched_tokens: Option<u64>,
    /// Max sequences the engine schedules at once (vLLM --max-num-seqs, SGLang
    /// --max-running-requests, which also sizes its request-to-token table).
    #[arg(long)]
    pub max_num_seqs: Option<u64>,
    /// GiB of weights per GPU kept in host memory (vLLM and SGLang `--cpu-offload-gb`).
    #[arg(long, value_name = "GIB")]
    pub cpu_offload_gb: Option<f64>,
    /// No CUDA graphs (vLLM `--enforce-eager`; from vLLM 0.20 nothing is set aside for them).
    #[arg(long)]
    pub enforce_eager: bool,
    /// vLLM V1's top-k/top-p sampler is FlashInfer's, `on` or `off`: 0.8 to 0.11 use it whenever
    /// FlashInfer is installed (vLLM's images ship it, a pip install does not), from 0.12 with
    /// `VLLM_USE_FLASHINFER_SAMPLER=1`; the start-up log says "Using FlashInfer for top-p & top-k
    /// sampling". Without it, the version's default for a pip install.
    #[arg(long, value_name = "on|off")]
    pub flashinfer_sampler: Option<String>,
    /// Flash attention, `on` or `off` (llama.cpp `-fa`; without it, the build's default: on from b6300).
    #[arg(long, value_name = "on|off")]
    pub flash_attn: Option<String>,
    /// Layers llama.cpp puts on the GPU (`-ngl`): the last N decoder layers, and the output layer
    /// when N exceeds the layer count; the rest, and their KV, stay in host memory. Default: all.
    #[arg(long, visible_alias = "ngl", value_name = "N")]
    pub n_gpu_layers: Option<u64>,
    /// llama.cpp `-nkvo`: the KV cache (and the attention over it) in host memory.
    #[arg(long, visible_alias = "nkvo")]
    pub no_kv_offload: bool,
    /// LoRA adapters served (vLLM `--enable-lora --max-lora-rank R`): vLLM allocates slots of
    /// this rank on every linear layer, the embedding and the LM head at load.
    #[arg(long, value_name = "R")]
    pub max_lora_rank: Option<u64>,
    /// LoRA adapters one batch may use (vLLM `--max-loras`, default 1), with `--max-lora-rank`.
    #[arg(long, value_name = "N")]
    pub max_loras: Option<u64>,
    /// Concurrent requests.
    #[arg(long, short = 'n')]
    pub concurrency: Option<u64>,
    /// Input (prompt) tokens per request.
    #[arg(long)]
    pub input_len: Option<u64>,
    /// Output tokens per request.
    #[arg(long)]
    pub output_len: Option<u64>,
    /// Print the answer as JSON (integers in bytes, per GPU).
    #[arg(long)]
    pub json: bool,
    /// Show each figure's derivation (formula with values).
    #[arg(long)]
    pub explain: bool,
    /// Also solve: longest context, most requests, fewest GPUs, smallest dtype, utilisation needed.
    #[arg(long)]
    pub solve: bool,
}
