//! Scoring the engine profiles against real engine start-up logs (`shared/validation`,
//! `engine-logs-*.jsonl`): a log case becomes a [`Scenario`], the estimate is set beside every figure
//! the log printed, and the signed errors are summarised per engine, family and figure.
//!
//! Pure, like the rest of the crate: reading the cases file and the model configs is the caller's
//! job (`kv-runner validate`, the tests). What lives here is the mapping every caller must share:
//! which log field means which estimate field, in which unit, against which target.
//!
//! A case whose checkpoint is a derivative of a bundled config (a quantised upload, an instruct
//! fine-tune, a distillation into the same architecture) is sized with that config, and the
//! quantisation the log states is applied to it; the report names the config used for every case.

use crate::dtype::{FloatDtype, KvDtype, Quant, QuantChoice};
use crate::engine::parse_semver;
use crate::error::{Error, Result};
use crate::estimate::{estimate, Estimate};
use crate::gpu::GpuChoice;
use crate::model::{ModelShape, Window};
use crate::scenario::{Engine, Scenario};
use crate::units::{fixed, GIB, MIB};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One logged engine start-up (one line of an `engine-logs-*.jsonl` file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Case {
    pub id: String,
    pub engine: String,
    pub engine_version: Option<String>,
    pub model: String,
    pub gpu: String,
    pub num_gpus: Option<u64>,
    pub tensor_parallel_size: Option<u64>,
    pub pipeline_parallel_size: Option<u64>,
    pub dtype: Option<String>,
    pub quantization: Option<String>,
    pub kv_cache_dtype: Option<String>,
    pub max_model_len: Option<u64>,
    pub gpu_memory_utilization: Option<f64>,
    pub block_size: Option<u64>,
    /// vLLM `--enforce-eager`.
    #[serde(default)]
    pub enforce_eager: Option<bool>,
    pub figures: Map<String, Value>,
    pub family: Option<String>,
    pub caveat_flags: Vec<String>,
    pub notes: Option<String>,
    pub source: Option<String>,
    /// The log lines, verbatim.
    pub quote: Option<String>,
}

impl Case {
    /// Cases without caveat flags: raw logs with every setting known.
    pub fn strict(&self) -> bool {
        self.caveat_flags.is_empty()
    }
    pub fn flag(&self, f: &str) -> bool {
        self.caveat_flags.iter().any(|c| c == f)
    }
    fn fig(&self, key: &str) -> Option<f64> {
        self.figures.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
    }
    fn engine_kind(&self) -> Option<Engine> {
        let v = self.engine_version.as_deref().unwrap_or("");
        match self.engine.to_ascii_lowercase().as_str() {
            "vllm" => {
                let v0 = v.contains("V0") || v.contains("v0 ") || v.ends_with("v0");
                let v1 = v.contains("V1");
                Some(if v0 {
                    Engine::VllmV0
                } else if v1 {
                    Engine::Vllm
                } else {
                    // V1 became the default in 0.8.0
                    match version_in(v) {
                        Some(ver) if parse_semver(&ver).is_some_and(|s| s < (0, 8, 0)) => Engine::VllmV0,
                        _ => Engine::Vllm,
                    }
                })
            }
            "sglang" => Some(Engine::Sglang),
            "llama.cpp" | "llamacpp" | "llama-cpp" => Some(Engine::LlamaCpp),
            _ => None,
        }
    }
}

/// Parses a JSONL text; each line is a case or an error naming the line.
pub fn parse_cases(text: &str) -> Vec<Result<Case>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Case>(l).map_err(|e| Error::Scenario { param: format!("cases line {}", i + 1), value: l.chars().take(60).collect(), expected: format!("a case object ({e})") })
        })
        .collect()
}

/// The first version number in a free-text version (`~0.11.0 (V1)` -> `0.11.0`,
/// `vllm V1, ~0.9.x/0.10.0` -> `0.9`, `~b2950 (May 2024)` -> `b2950`).
pub fn version_in(text: &str) -> Option<String> {
    let t = text.trim();
    for (i, c) in t.char_indices() {
        if c == 'b' && t[i + 1..].starts_with(|d: char| d.is_ascii_digit()) && (i == 0 || !t[..i].ends_with(|p: char| p.is_ascii_alphanumeric())) {
            let n: String = t[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            return Some(format!("b{n}"));
        }
        // a word boundary before the number, or a `v` prefix that starts a word (`v0.10.1.1`)
        let starts_word = |j: usize| j == 0 || !t[..j].ends_with(|p: char| p.is_ascii_alphanumeric());
        let after_v = i > 0 && t[..i].ends_with(['v', 'V']) && starts_word(i - 1);
        if c.is_ascii_digit() && (starts_word(i) || after_v) {
            let v: String = t[i..].chars().take_while(|d| d.is_ascii_digit() || *d == '.').collect();
            let v = v.trim_end_matches('.');
            if v.contains('.') {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// Checkpoints known to share their architecture with a bundled config, and why. Only exact
/// shape matches: these are sized with the bundled config without any caveat on the figures the
/// logs print.
pub const SAME_SHAPE: &[(&str, &str, &str)] = &[
    ("Qwen/QwQ-32B", "Qwen/Qwen2.5-32B", "QwQ-32B is a Qwen2.5-32B fine-tune with the same config shape"),
    ("Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-32B", "Qwen2.5-Coder-32B has the Qwen2.5-32B config shape"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "Qwen/Qwen2.5-14B", "distilled into the Qwen2.5-14B architecture"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "meta-llama/Llama-3.1-8B", "distilled into the Llama-3.1-8B architecture"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "meta-llama/Llama-3.3-70B-Instruct", "distilled into the Llama-3.3-70B architecture"),
    ("meetkai/functionary-small-v3.2", "meta-llama/Llama-3.1-8B-Instruct", "a Llama-3.1-8B-Instruct fine-tune"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.3", "same layers and attention as v0.3 (KV identical; vocabulary 32000 vs 32768, +0.1 % weights)"),
    ("mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3", "base model of the same config"),
    ("mistralai/Mistral-7B-Instruct-v0.1", "mistralai/Mistral-7B-v0.1", "instruct fine-tune of the same config (4096-token sliding window)"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mistralai/Mixtral-8x7B-v0.1", "instruct fine-tune of the same config"),
    ("mistralai/Mixtral-8x22B-Instruct-v0.1", "mistralai/Mixtral-8x22B-v0.1", "same layers and experts (vocabulary 32768 vs 32000, +0.01 % weights)"),
    ("Qwen/Qwen2.5-Coder-0.5B-Instruct", "Qwen/Qwen2.5-0.5B", "Qwen2.5-Coder-0.5B has the Qwen2.5-0.5B config shape"),
    ("Qwen/Qwen2.5-Coder-1.5B-Instruct", "Qwen/Qwen2.5-1.5B", "Qwen2.5-Coder-1.5B has the Qwen2.5-1.5B config shape"),
    ("Qwen/Qwen2.5-Coder-3B-Instruct", "Qwen/Qwen2.5-3B", "Qwen2.5-Coder-3B has the Qwen2.5-3B config shape"),
    ("Qwen/Qwen2.5-Coder-7B-Instruct", "Qwen/Qwen2.5-7B", "Qwen2.5-Coder-7B has the Qwen2.5-7B config shape"),
    ("Qwen/Qwen2.5-Coder-14B-Instruct", "Qwen/Qwen2.5-14B", "Qwen2.5-Coder-14B has the Qwen2.5-14B config shape"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "Qwen/Qwen2.5-32B", "distilled into the Qwen2.5-32B architecture"),
    ("deepseek-ai/DeepSeek-V3.1", "deepseek-ai/DeepSeek-V3", "the DeepSeek-V3 architecture, retrained"),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "Qwen/Qwen3-30B-A3B", "the Qwen3-30B-A3B layers and experts with a 262,144-token context"),
    ("mistralai/Mistral-Nemo-Instruct-2407", "mistralai/Mistral-Nemo-Base-2407", "the instruct release of the same layers (its config gives 1,024,000 positions)"),
    ("THUDM/GLM-Z1-9B-0414", "THUDM/GLM-4-9B-0414", "GLM-Z1-9B-0414 is GLM-4-9B-0414 tuned for reasoning (same layers, llama.cpp logs the same shape)"),
    ("nvidia/Llama-3.1-Nemotron-70B-Instruct-HF", "meta-llama/Llama-3.1-70B-Instruct", "a Llama-3.1-70B-Instruct fine-tune (RLHF) with the same config"),
    ("lmsys/vicuna-7b-v1.5", "meta-llama/Llama-2-7b-hf", "a Llama-2-7B fine-tune with the same config (4096 positions, vocabulary 32000)"),
    ("lmsys/vicuna-13b-v1.5", "meta-llama/Llama-2-13b-hf", "a Llama-2-13B fine-tune with the same config (4096 positions, vocabulary 32000)"),
    ("moonshotai/Kimi-K2-Instruct-0905", "moonshotai/Kimi-K2-Instruct", "the September update of the same layers and experts with a 262,144-token context"),
    ("microsoft/Phi-4-reasoning", "microsoft/phi-4", "phi-4 tuned for reasoning: the same layers with a 32,768-token context"),
    ("microsoft/Phi-4-reasoning-plus", "microsoft/phi-4", "phi-4 tuned for reasoning: the same layers with a 32,768-token context"),
    ("deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", "deepseek-ai/DeepSeek-V2-Lite-Chat", "DeepSeek-V2-Lite pre-trained further on code: the same 27 MLA layers, 64 + 2 experts and 102,400-token vocabulary"),
    ("deepseek-ai/DeepSeek-Coder-V2-Lite-Base", "deepseek-ai/DeepSeek-V2-Lite-Chat", "DeepSeek-V2-Lite pre-trained further on code: the same 27 MLA layers, 64 + 2 experts and 102,400-token vocabulary"),
    ("Qwen/Qwen2-0.5B-Instruct", "Qwen/Qwen2.5-0.5B", "Qwen2.5-0.5B kept Qwen2-0.5B's layers, heads and tied 151,936-token vocabulary (Qwen2 Instruct configs give 32,768 positions)"),
    ("Qwen/Qwen2-1.5B-Instruct", "Qwen/Qwen2.5-1.5B", "Qwen2.5-1.5B kept Qwen2-1.5B's layers, heads and tied 151,936-token vocabulary (Qwen2 Instruct configs give 32,768 positions)"),
    ("HuggingFaceH4/zephyr-7b-beta", "mistralai/Mistral-7B-v0.1", "a Mistral-7B-v0.1 fine-tune with the same config (32 layers, 8 KV heads, vocabulary 32000, 4096-token sliding window)"),
    ("HuggingFaceH4/zephyr-7b-alpha", "mistralai/Mistral-7B-v0.1", "a Mistral-7B-v0.1 fine-tune with the same config (32 layers, 8 KV heads, vocabulary 32000, 4096-token sliding window)"),
    ("teknium/OpenHermes-2.5-Mistral-7B", "mistralai/Mistral-7B-v0.1", "a Mistral-7B-v0.1 fine-tune with the same layers (two added tokens, vocabulary 32002: +0.0002 % weights)"),
    ("meta-llama/Llama-Guard-3-8B", "meta-llama/Llama-3.1-8B", "a Llama-3.1-8B fine-tune for safety classification with the same config"),
    ("google/codegemma-7b-it", "google/gemma-7b-it", "CodeGemma 7B is Gemma 7B trained further on code: the same 28 layers, 16 heads of 256 and 256,000-token vocabulary"),
    ("google/codegemma-7b", "google/gemma-7b-it", "CodeGemma 7B is Gemma 7B trained further on code: the same 28 layers, 16 heads of 256 and 256,000-token vocabulary"),
    ("google/medgemma-4b-it", "google/gemma-3-4b-it", "MedGemma 4B is Gemma 3 4B, SigLIP tower included, trained further on medical data: the same layers and tower"),
    ("microsoft/Phi-4-mini-reasoning", "microsoft/Phi-4-mini-instruct", "Phi-4-mini tuned for reasoning: the same 32 layers, 24/8 heads, 200,064-token vocabulary and 131,072 positions"),
    ("deepseek-ai/DeepSeek-V3.2-Exp", "deepseek-ai/DeepSeek-V3.2", "the experimental release of the same architecture: V3.1's layers with the same sparse-attention indexer (64 heads of 128, top 2048), one inference code and config for both"),
    ("deepseek-ai/DeepSeek-V3.2-Speciale", "deepseek-ai/DeepSeek-V3.2", "a post-trained variant of V3.2 with the same layers and indexer"),
    ("allenai/Olmo-3-7B-Instruct", "allenai/Olmo-3-1025-7B", "Olmo 3 7B Instruct is post-trained from Olmo-3-1025-7B: the same 32 layers of 32 heads, window pattern and 100,278-token vocabulary"),
    ("allenai/Olmo-3-7B-Think", "allenai/Olmo-3-1025-7B", "Olmo 3 7B Think is post-trained from Olmo-3-1025-7B: the same 32 layers of 32 heads, window pattern and 100,278-token vocabulary"),
    ("01-ai/Yi-34B-Chat", "01-ai/Yi-1.5-34B", "Yi-1.5-34B is Yi-34B pre-trained further: the same 60 layers, 56/8 heads and 64,000-token vocabulary, 4,096 positions"),
];

/// Releases whose config is their base model's but for another native context
/// (`max_position_embeddings`): the Qwen3 2507 updates and Qwen3-Coder, Mistral-Nemo-Instruct,
/// Kimi-K2-Instruct-0905, Phi-4-reasoning, and the Qwen2 and Qwen2.5 (and Qwen2.5-Coder) Instruct
/// releases, which ship 32,768 positions where the 1.5B, 7B, 14B, 32B and 72B base models say
/// 131,072 (the 1M, Math and VL releases are other configs).
fn native_context(model: &str) -> Option<u64> {
    let m = model.to_ascii_lowercase();
    if (m.contains("qwen2.5-") || m.contains("qwen2-")) && m.contains("-instruct") && !["-1m", "math", "-vl"].iter().any(|w| m.contains(w)) {
        return Some(32_768);
    }
    if m.contains("mistral-nemo-instruct") {
        return Some(1_024_000);
    }
    if m.contains("kimi-k2-instruct-0905") {
        return Some(262_144);
    }
    if m.contains("phi-4-reasoning") {
        return Some(32_768);
    }
    (m.contains("qwen3") && (m.contains("-2507") || m.contains("qwen3-coder"))).then_some(262_144)
}

/// A model id's name reduced to its architecture: lower case, without the org, the quantisation
/// and fine-tune suffixes (`-Instruct`, `-it`, `-AWQ`, `-GPTQ-Int8`, `-FP8`, ...) and a `Meta-` prefix.
pub fn normalized_name(id: &str) -> String {
    let name = id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase();
    let mut n = name.trim_start_matches("meta-").to_string();
    const SUFFIXES: &[&str] = &[
        "-gguf", "-quantized.w8a8", "-quantized.w4a16", "-quantized.w8a16", "-w8a8", "-w4a16", "-unsloth-bnb-4bit", "-unsloth", "-awq-int4", "-awq", "-gptq-int4", "-gptq-int8", "-gptq", "-autoround-gptq-4bit", "-autoround", "-nvfp4a16", "-nvfp4-fp8", "-nvfp4", "-fp4", "-fp8-dynamic", "-fp8", "-int4", "-int8", "-bnb-4bit", "-4bit", "-8bit", "-2507", "-0528", "-0324", "-thinking", "-instruct", "-chat", "-it", "-hf", "-base",
    ];
    loop {
        let before = n.len();
        for s in SUFFIXES {
            if let Some(stripped) = n.strip_suffix(s) {
                n = stripped.to_string();
            }
        }
        if n.len() == before {
            return n;
        }
    }
}

/// How a case's model maps to a bundled config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMatch {
    pub config_id: String,
    /// `exact`, `same shape: <why>`, or `derived: <why>`.
    pub how: String,
    /// The config is not the checkpoint itself: the log's quantisation and dtype are applied to it.
    pub derived: bool,
}

/// Finds the bundled config for a case's model: the id itself, a known same-shape model, or the
/// bundled model whose normalised name is the same (a quantised or fine-tuned upload of it).
pub fn match_model(model: &str, bundled: &[String]) -> Option<ModelMatch> {
    let model = model.split(" (").next().unwrap_or(model).trim();
    if let Some(b) = bundled.iter().find(|b| b.eq_ignore_ascii_case(model)) {
        return Some(ModelMatch { config_id: b.clone(), how: "exact".into(), derived: false });
    }
    let norm = normalized_name(model);
    if let Some((_, to, why)) = SAME_SHAPE.iter().find(|(from, _, _)| from.eq_ignore_ascii_case(model) || normalized_name(from) == norm) {
        if bundled.iter().any(|b| b == to) {
            return Some(ModelMatch { config_id: (*to).to_string(), how: format!("same shape: {why}"), derived: true });
        }
    }
    let org = model.split('/').next().unwrap_or("").to_ascii_lowercase();
    let full = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    let release = |id: &str| id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase();
    // how long a release this id names whole (`...-7B-Instruct-AWQ` names Qwen2.5-7B-Instruct,
    // whose context may differ from the base's): the longer, the closer the config
    let named_whole = |id: &str| {
        let r = release(id);
        if contains_whole(&full, &r) { r.len() } else { 0 }
    };
    let mut hits: Vec<&String> = bundled.iter().filter(|b| normalized_name(b) == norm).collect();
    // the longest release named whole first, then the same organisation, then the shortest id
    hits.sort_by_key(|b| (std::cmp::Reverse(named_whole(b)), !b.to_ascii_lowercase().starts_with(&format!("{org}/")), b.len()));
    if let Some(b) = hits.first() {
        return Some(ModelMatch { config_id: (*b).clone(), how: format!("derived: {model} is a quantised or fine-tuned upload of {b}"), derived: true });
    }
    // a fine-tune named after its base (`Hermes-3-Llama-3.1-8B`): the longest bundled name (or
    // same-shape name) found whole in this one, with a size, and every size this one names; of the
    // same name, the longest release named whole in it (`...-Qwen2.5-7B-Instruct-...` takes the
    // Instruct config, whose context may differ), else the shortest id. A name that says it is a
    // different model of that base (distilled, pruned, a draft head, another modality, another
    // context or precision) is not taken for it.
    let sizes = size_words(&norm);
    let candidates = bundled.iter().map(|b| (b.clone(), b.clone())).chain(
        SAME_SHAPE.iter().filter(|(_, to, _)| bundled.iter().any(|b| b == to)).map(|(from, to, _)| (from.to_string(), to.to_string())),
    );
    candidates
        .map(|(named, b)| (normalized_name(&named), named, b))
        .filter(|(n, named, _)| {
            let own = size_words(n);
            !own.is_empty()
                && sizes.iter().all(|w| own.contains(w))
                && contains_whole(&norm, n)
                && !OTHER_MODEL_WORDS.iter().any(|w| contains_whole_word(&full, w) && !contains_whole_word(&release(named), w))
        })
        .max_by_key(|(n, named, b)| (n.len(), named_whole(named), std::cmp::Reverse(b.len())))
        .map(|(n, named, b)| {
            let via = if named == b { String::new() } else { format!(", which has the shape of {b}") };
            ModelMatch { config_id: b.clone(), how: format!("derived: {model} is named after {named} ({n}{via}), taken as a fine-tune of it"), derived: true }
        })
}

/// Words in a name that make it a different model than the base it is named after.
const OTHER_MODEL_WORDS: &[&str] = &[
    "distill", "reap", "pruned", "prune", "eagle", "eagle3", "speculator", "draft", "medusa", "multimodal", "vision", "vl", "omni", "audio", "flash", "bf16", "fp16", "fp32", "mlx", "1m", "16k", "32k", "64k", "128k", "200k", "256k",
];

/// The size words of a normalised name: `8b`, `1.5b`, `125m`, `8x7b`, `a3b`, `e4b`, `17b-16e`'s `16e`.
fn size_words(name: &str) -> Vec<&str> {
    name.split(['-', '_'])
        .filter(|w| {
            let w = w.strip_prefix(['a', 'e']).filter(|r| r.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(w);
            let Some(num) = w.strip_suffix(['b', 'm', 'e']) else { return false };
            let num = num.split_once('x').map_or(num, |(n, m)| if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() { m } else { "" });
            !num.is_empty() && num.chars().all(|c| c.is_ascii_digit() || c == '.') && num.starts_with(|c: char| c.is_ascii_digit())
        })
        .collect()
}

/// `word` is one of `name`'s words (split at `-`, `_` and `.`).
fn contains_whole_word(name: &str, word: &str) -> bool {
    name.split(['-', '_', '.']).any(|w| w == word)
}

/// `part` occurs in `name` between word boundaries (start, end, `-` or `_`): `llama-3.1-8b` is in
/// `hermes-3-llama-3.1-8b`, not in `llama-3.1-8b.2` or `codellama-3.1-8b`.
fn contains_whole(name: &str, part: &str) -> bool {
    let edge = |c: Option<char>| c.is_none_or(|c| c == '-' || c == '_');
    name.match_indices(part).any(|(i, _)| edge(name[..i].chars().next_back()) && edge(name[i + part.len()..].chars().next()))
}

/// The integer after the first of `flags` in a command line (`-dp=8`, `--data-parallel-size 8`).
fn arg_value(text: &str, flags: &[&str]) -> Option<u64> {
    flags.iter().find_map(|f| {
        text.match_indices(f).find_map(|(i, _)| {
            let rest = &text[i + f.len()..];
            // the flag must end here (`-dp` is not `-dpx`)
            let rest = rest.strip_prefix('=').or_else(|| rest.strip_prefix(' '))?;
            let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
    })
}

/// The checkpoint quantisation a case states (its `quantization` field, else its id suffix).
pub fn case_quant(case: &Case) -> Option<Quant> {
    let mut q = case.quantization.as_deref().unwrap_or("").to_ascii_lowercase();
    // "compressed-tensors" names the container, not the scheme: the case's text says which
    if q.contains("compressed-tensors") || q.contains("compressed_tensors") {
        let text = case.notes.as_deref().unwrap_or("").to_ascii_lowercase();
        // the scheme the text names first
        if let Some((_, scheme)) = ["w4a16", "w8a8", "fp8", "nvfp4"].into_iter().filter_map(|k| text.find(k).map(|i| (i, k))).min() {
            q.push(' ');
            q.push_str(scheme);
        }
    }
    let id = case.model.to_ascii_lowercase();
    let bits8 = q.contains("int8") || q.contains("8-bit") || q.contains("8bit") || id.contains("int8") || id.contains("8bit");
    let skip = vec![];
    // the group size the field states (`group size 32`, `group_size=64`, `g32`), else 128, the
    // common published setting
    let group = group_in(&q).unwrap_or(128);
    // a llama-quantize preset the estimator sizes (`gguf Q4_K_M`, `i1-Q4_K_M`, `Q8_0`)
    let preset = crate::gguf::GgufType::ALL.into_iter().find(|t| q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == t.as_str()));
    if let Some(ftype) = preset {
        return Some(Quant::Gguf { ftype });
    }
    if q.contains("gguf") {
        // a GGUF preset it does not follow, or none named
        return None;
    }
    if q.contains("awq") || id.contains("-awq") {
        Some(Quant::Awq { bits: if bits8 { 8 } else { 4 }, group_size: Some(group), skip })
    } else if q.contains("gptq") || q.contains("autoround") || id.contains("gptq") {
        Some(Quant::Gptq { bits: if bits8 { 8 } else { 4 }, group_size: Some(group), skip })
    } else if q.contains("bitsandbytes") || q.contains("bnb") || id.contains("-bnb-") {
        if bits8 {
            Some(Quant::Bnb8 { skip })
        } else {
            Some(Quant::Bnb4 { double_quant: true, skip })
        }
    } else if q.contains("mxfp4") {
        Some(Quant::Mxfp4 { skip })
    } else if q.contains("fp4") || id.contains("nvfp4") || id.contains("-fp4") {
        // NVFP4: `modelopt_fp4`, `nvfp4`, compressed-tensors `nvfp4-pack-quantized`, nvidia's `-FP4` uploads
        Some(Quant::Nvfp4 { skip })
    } else if (q.contains("w8a8") || id.contains("w8a8")) && !q.contains("fp8") {
        // compressed-tensors W8A8: int8 weights, one scale per output channel
        Some(Quant::Int8PerChannel { skip })
    } else if q.contains("w4a16") || id.contains("w4a16") {
        // compressed-tensors W4A16: 4-bit packed weights with group-128 scales, sized as GPTQ
        Some(Quant::Gptq { bits: 4, group_size: Some(group), skip })
    } else if q.contains("fp8") || q.contains("modelopt") || id.contains("-fp8") {
        // Qwen and DeepSeek FP8 uploads use 128 x 128 blocks with fp32 scales
        Some(Quant::Fp8 { block: Some([128, 128]), skip })
    } else {
        None
    }
}

/// A quantisation group size written in a case's text: `group size 32`, `group_size=64`,
/// `group 32`, or a `g32` word.
fn group_in(text: &str) -> Option<u64> {
    let t = text.to_ascii_lowercase();
    let after = |key: &str| {
        t.match_indices(key).find_map(|(i, _)| {
            let rest = t[i + key.len()..].trim_start_matches([' ', '=', ':']);
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            n.parse::<u64>().ok().filter(|n| *n > 0)
        })
    };
    after("group size").or_else(|| after("group_size")).or_else(|| after("group ")).or_else(|| {
        t.split(|c: char| !c.is_ascii_alphanumeric()).find_map(|w| w.strip_prefix('g').and_then(|n| n.parse::<u64>().ok()).filter(|n| [32, 64, 128].contains(n)))
    })
}

/// The activation dtype a case states (`bfloat16 ...`, `float16 ...`, `half`, `torch.bfloat16`,
/// `fp32`), if any.
fn case_float(case: &Case) -> Option<FloatDtype> {
    let d = case.dtype.as_deref().unwrap_or("").trim().to_ascii_lowercase();
    let first = d.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == '/').next().unwrap_or("");
    match first.trim_start_matches("torch.") {
        "bfloat16" | "bf16" => Some(FloatDtype::Bf16),
        "float16" | "fp16" | "half" | "f16" => Some(FloatDtype::F16),
        "float32" | "fp32" | "float" | "f32" => Some(FloatDtype::F32),
        _ => None,
    }
}

/// A quantisation the engine applies at load to an unquantised checkpoint (vLLM
/// `--quantization fp8` / `bitsandbytes`), as the scenario's choice: the schemes of
/// [`case_quant`] that can be applied at load.
fn online_quant(case: &Case) -> Option<QuantChoice> {
    match case_quant(case)? {
        Quant::Fp8 { .. } => Some(QuantChoice::Fp8),
        Quant::Bnb4 { .. } => Some(QuantChoice::Bnb4),
        Quant::Bnb8 { .. } => Some(QuantChoice::Bnb8),
        _ => None,
    }
}

/// Gives an unquantised config the quantisation the case states.
/// A config that carries another method than the one a checkpoint-only scheme of the log (AWQ,
/// GPTQ, W4A16, ...) names is the model the upload was made from (DeepSeek-V3's fp8 config for
/// an AWQ upload of it): the log's scheme replaces it.
fn apply_case_quant(shape: &mut ModelShape, case: &Case) {
    let Some(q) = case_quant(case) else { return };
    match &shape.quantization {
        None => {
            shape.notes.push(format!("{QUANT_FROM_LOG}: {}", q.name()));
            shape.quantization = Some(q);
        }
        Some(have) if checkpoint_only(&q) && std::mem::discriminant(have) != std::mem::discriminant(&q) => {
            shape.notes.push(format!("{QUANT_FROM_LOG}: {} (the config's own {} is the model the upload was made from)", q.name(), have.name()));
            shape.quantization = Some(q);
        }
        Some(_) => {}
    }
}

/// A scheme no engine applies at load: only a quantised checkpoint carries it.
fn checkpoint_only(q: &Quant) -> bool {
    !matches!(q, Quant::Fp8 { .. } | Quant::Bnb4 { .. } | Quant::Bnb8 { .. })
}

/// The note [`derive_checkpoint`] leaves when it applies the log's quantisation.
const QUANT_FROM_LOG: &str = "quantisation taken from the log";

/// Applies what a derived checkpoint differs in from the bundled config: the quantisation and
/// the activation dtype the log states.
pub fn derive_checkpoint(shape: &mut ModelShape, case: &Case) {
    apply_case_quant(shape, case);
    if let Some(d) = case_float(case) {
        shape.checkpoint_dtype = Some(d);
    }
    if let Some(n) = native_context(&case.model).filter(|n| shape.max_position_embeddings != Some(*n)) {
        shape.notes.push(format!("max_position_embeddings {n}: {} is a longer-context release of this config", case.model));
        shape.max_position_embeddings = Some(n);
        // a YaRN scaling reaches the longer context with a larger factor (Kimi-K2-Instruct-0905: 4096 x 64)
        for r in shape.rope_scaling.iter_mut().filter(|r| r.rope_type == "yarn") {
            if let Some(o) = r.original_max_position_embeddings {
                r.factor = Some(n as f64 / o as f64);
            }
        }
    }
}

/// GiB of GPU memory a case's engine saw: SGLang's free memory at load, the logged total, a
/// "total X GiB" in the GPU text, the catalog entry the GPU name matches, or the marketing size.
pub fn case_memory_gib(case: &Case, engine: Engine) -> Option<(f64, String)> {
    if engine == Engine::Sglang {
        if let Some(m) = case.fig("sglang_avail_mem_before_load_gb") {
            return Some((m, "SGLang avail mem before load".into()));
        }
        // "Load weight end. avail mem=A GB, mem usage=U GB": SGLang's usage is the drop in free
        // memory over the load, so the free memory at its start is A + U
        if let (Some(a), Some(u)) = (case.fig("sglang_avail_mem_after_load_gb"), case.fig("sglang_weights_mem_usage_gb")) {
            return Some((a + u, "SGLang avail mem after load + its mem usage (the free memory at load)".into()));
        }
        // a total (not the free memory at load): less the CUDA context, as for a catalog GPU
        // (which the SGLang profile reduces itself)
        let (m, src) = total_memory_gib(case)?;
        if src.starts_with("catalog ") {
            return Some((m, src));
        }
        let ctx = crate::engine::sglang::before_load_gib(crate::gpu::match_name(&case.gpu), case.tensor_parallel_size.unwrap_or(1));
        let what = if ctx > crate::engine::sglang::CONTEXT_BEFORE_LOAD_GIB { "CUDA context and NCCL's buffers over the NVSwitch" } else { "CUDA context" };
        return Some((m - ctx, format!("{src}, less {ctx} GiB of {what} before SGLang loads (modelled)")));
    }
    total_memory_gib(case)
}

/// The GPU's total memory: logged, stated with the GPU, the catalog entry its name matches, or
/// its marketing size.
fn total_memory_gib(case: &Case) -> Option<(f64, String)> {
    if let Some(m) = case.fig("total_gpu_memory_gib") {
        return Some((m, "logged total_gpu_memory".into()));
    }
    if let Some(m) = total_in_text(&case.gpu) {
        return Some((m, "total stated with the GPU".into()));
    }
    if let Some(g) = crate::gpu::match_name(&case.gpu) {
        return Some((g.memory_gib, format!("catalog {}", g.id)));
    }
    let nominal = nominal_gb(&case.gpu)?;
    let lower = case.gpu.to_ascii_lowercase();
    // a board named NVIDIA, or one of a size class whose maker the log does not name ("24 GB-class
    // consumer GPU": the vLLM and SGLang logs are CUDA's), loses the driver's share; AMD, Intel and
    // Apple boards report their whole memory
    let nvidia = ["nvidia", "geforce", "rtx", "tesla", "quadro"].iter().any(|w| lower.contains(w));
    let other_maker = ["amd", "radeon", "instinct", "mi300", "mi250", "intel", "arc ", "apple", "metal"].iter().any(|w| lower.contains(w));
    if nominal > 2.0 && (nvidia || (lower.contains("class") && !other_maker)) {
        let m = nominal - crate::gpu::DRIVER_RESERVE_GIB;
        Some((m, format!("not in the catalog: {nominal} GB less the {} GiB the CUDA driver keeps (modelled)", crate::gpu::DRIVER_RESERVE_GIB)))
    } else {
        Some((nominal, "not in the catalog: the GPU's nominal size".to_string()))
    }
}

/// `RTX 3060 Ti 8GB` -> 8: the marketing size, used as GiB when nothing better is known.
/// `24 GB-class` -> 24 as well: the number may stand apart from its unit.
fn nominal_gb(text: &str) -> Option<f64> {
    let words: Vec<&str> = text.split(|c: char| !c.is_ascii_alphanumeric() && c != '.').filter(|w| !w.is_empty()).collect();
    let size = |n: &str| n.parse::<f64>().ok().filter(|x| *x > 0.0 && *x < 4096.0);
    words.iter().enumerate().find_map(|(i, w)| match w.strip_suffix("GB").or_else(|| w.strip_suffix("gb")) {
        Some("") => i.checked_sub(1).and_then(|j| size(words[j])),
        Some(n) => size(n),
        None => None,
    })
}

/// `... total 79.18 GiB`, `total_gpu_memory 23.58GiB`, `~139.8 GiB total`.
fn total_in_text(text: &str) -> Option<f64> {
    let words: Vec<&str> = text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';' || c == ',').filter(|w| !w.is_empty()).collect();
    let num = |w: &str| -> Option<f64> {
        let t = w.trim_start_matches('~').trim_end_matches("GiB");
        t.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0)
    };
    for i in 0..words.len() {
        let w = words[i].to_ascii_lowercase();
        if w.starts_with("total") {
            if let Some(x) = words.get(i + 1).and_then(|n| num(n)) {
                if words[i + 1].ends_with("GiB") || words.get(i + 2).is_some_and(|u| u.starts_with("GiB")) {
                    return Some(x);
                }
            }
        }
        if w == "gib" && words.get(i + 1).is_some_and(|n| n.eq_ignore_ascii_case("total")) {
            if let Some(x) = i.checked_sub(1).and_then(|j| words.get(j)).and_then(|n| num(n)) {
                return Some(x);
            }
        }
    }
    None
}

/// A numeric engine setting written in free text as a flag or in an arguments dump:
/// `--max-num-seqs 8`, `--max-num-seqs=8`, `max_num_seqs=8`, `'max_num_seqs': 8`. A setting
/// given as something other than a number (`max_num_batched_tokens = max_model_len`) is not one.
fn setting_in(text: &str, name: &str) -> Option<u64> {
    setting_number_in(text, name, false).and_then(|n| n.parse::<u64>().ok()).filter(|&n| n > 0)
}

/// [`setting_in`] for a setting that may be fractional (`--cpu-offload-gb 12.5`).
fn setting_f64_in(text: &str, name: &str) -> Option<f64> {
    setting_number_in(text, name, true).and_then(|n| n.parse::<f64>().ok()).filter(|n| n.is_finite() && *n > 0.0)
}

/// The number after a setting's flag or key, as written (`fraction`: a decimal point allowed).
fn setting_number_in(text: &str, name: &str, fraction: bool) -> Option<String> {
    let flag = format!("--{}", name.replace('_', "-"));
    for key in [flag.as_str(), name] {
        for (i, _) in text.match_indices(key) {
            let rest = text[i + key.len()..].trim_start_matches(['\'', '"']);
            let rest = rest.trim_start();
            let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest).trim_start();
            let mut dot = !fraction;
            let digits: String = rest
                .chars()
                .take_while(|&c| {
                    let ok = c.is_ascii_digit() || (c == '.' && !dot);
                    dot |= c == '.';
                    ok
                })
                .collect();
            let digits = digits.trim_end_matches('.').to_string();
            let mut after = rest[digits.len()..].chars();
            // a whole number may close a sentence ("max_num_seqs=10. Logged"), not start a fraction
            let ends = match after.next() {
                None => true,
                Some('.') if !fraction => !after.next().is_some_and(|c| c.is_ascii_digit()),
                Some(c) => !c.is_ascii_alphanumeric() && (c != '.' || fraction),
            };
            if !digits.is_empty() && ends {
                return Some(digits);
            }
        }
    }
    None
}

/// Which top-k/top-p sampler a vLLM V1 start-up log says it runs: "Using FlashInfer for top-p &
/// top-k sampling" (`Some(true)`), or a fallback to PyTorch's ("Falling back to the PyTorch-native
/// implementation of top-p & top-k sampling" before 0.12, "FlashInfer top-p/top-k sampling is
/// available but disabled by default" from 0.12: `Some(false)`); `None` when the text says neither.
pub fn flashinfer_sampler_in(text: &str) -> Option<bool> {
    let t = text.to_ascii_lowercase();
    if t.contains("using flashinfer for top-p & top-k sampling") {
        return Some(true);
    }
    let off = ["falling back to the pytorch-native implementation of top-p & top-k sampling", "flashinfer top-p/top-k sampling is available but disabled"];
    off.iter().any(|w| t.contains(w)).then_some(false)
}

/// Flash attention in a llama.cpp case, and where the case says so: the `flash_attn` figure; else
/// the log (the quote first, then the notes): its `flash_attn = 1` line, `flash_attn = auto ->
/// enabled`, or "Flash Attention was auto, set to disabled"; else the `-fa` / `--flash-attn` flag
/// of its command (a bare flag is on, as in builds before `-fa on|off|auto`; not after "without" or
/// "no"). `None` when the case does not say, or says `auto` (the build's default).
fn flash_attention_in(case: &Case) -> Option<(bool, &'static str)> {
    // the link's on/off words, and the log's enabled/disabled/auto
    let word = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_ascii_lowercase();
        match w.as_str() {
            "enabled" => Some(Some(true)),
            "disabled" => Some(Some(false)),
            "auto" => Some(None),
            other => crate::scenario::on_off(other).map(Some),
        }
    };
    match case.figures.get("flash_attn") {
        Some(Value::Bool(b)) => return Some((*b, "the case's flash_attn figure")),
        Some(Value::Number(n)) => return n.as_u64().map(|n| (n > 0, "the case's flash_attn figure")),
        Some(Value::String(t)) => return word(t).flatten().map(|b| (b, "the case's flash_attn figure")),
        _ => {}
    }
    let texts = [case.quote.as_deref().unwrap_or(""), case.notes.as_deref().unwrap_or("")];
    // `=` as a token of its own: `flash_attn=1`, `--flash-attn=on` read like their spaced forms
    let tokenize = |t: &str| t.replace('=', " = ").split_whitespace().map(str::to_string).collect::<Vec<String>>();
    for text in texts {
        let tokens = tokenize(text);
        for (i, t) in tokens.iter().enumerate() {
            let at = |k: usize| tokens.get(i + k).map(String::as_str).unwrap_or("");
            let key = t.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_').to_ascii_lowercase();
            if key == "flash_attn" && at(1) == "=" {
                // `flash_attn = auto -> enabled`: the resolved value
                let v = if at(3) == "->" { at(4) } else { at(2) };
                // `auto` alone: the resolved value may follow on a later line
                if let Some(Some(b)) = word(v) {
                    return Some((b, "the log's flash_attn line"));
                }
            }
            // "Flash Attention was auto, set to disabled"
            if t.eq_ignore_ascii_case("attention") && at(1) == "was" && at(3) == "set" && at(4) == "to" {
                if let Some(Some(fa)) = word(at(5)) {
                    return Some((fa, "the log's flash attention line"));
                }
            }
        }
    }
    for text in texts {
        let tokens = tokenize(text);
        for (i, t) in tokens.iter().enumerate() {
            let flag = t.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            if flag != "-fa" && flag != "--flash-attn" {
                continue;
            }
            let before = i.checked_sub(1).map(|j| tokens[j].to_ascii_lowercase()).unwrap_or_default();
            if before == "without" || before == "no" {
                continue;
            }
            let mut v = tokens.get(i + 1).map(String::as_str).unwrap_or("");
            if v == "=" {
                v = tokens.get(i + 2).map(String::as_str).unwrap_or("");
            }
            return match word(v) {
                Some(fa) => fa.map(|b| (b, "the case's -fa flag")),
                None => Some((true, "the case's -fa flag")),
            };
        }
    }
    None
}

/// A vLLM budget the log does not state, from the figures it does: `(weights + activation peak +
/// non-torch + KV) / total`, to two decimals (how `gpu_memory_utilization` is given). Only for
/// cases flagged `gmu_inferred`.
fn inferred_utilization(case: &Case) -> Option<f64> {
    let parts = ["model_weights_gib", "activation_peak_gib", "non_torch_gib", "kv_cache_gib"];
    let used: f64 = parts.iter().map(|f| case.fig(f)).sum::<Option<f64>>()?;
    let total = case.fig("total_gpu_memory_gib")?;
    let u = (used / total * 100.0).round() / 100.0;
    (u > 0.0 && u <= 1.0).then_some(u)
}

/// The memory a llama.cpp case whose GPU is unknown is estimated with (Metal, CPU, a GPU the log
/// does not name): large enough that nothing is refused.
pub const MEMORY_STAND_IN_GIB: f64 = crate::gpu::MAX_CUSTOM_MEMORY_GIB;

/// The scenario a case describes, and notes on what was inferred.
pub fn case_scenario(case: &Case, model_id: &str) -> std::result::Result<(Scenario, Vec<String>), String> {
    let engine = case.engine_kind().ok_or_else(|| format!("engine `{}` is not profiled", case.engine))?;
    let mut notes = vec![];
    let (mem, mem_src) = match case_memory_gib(case, engine) {
        Some(m) => m,
        // llama.cpp sizes its KV and compute buffers from n_ctx alone: those figures are still
        // compared, the start-up outcome is not
        None if engine == Engine::LlamaCpp => (MEMORY_STAND_IN_GIB, format!("unknown (`{}`): llama.cpp sizes its buffers without it, so {MEMORY_STAND_IN_GIB} GiB stands in and the start-up outcome is not compared", case.gpu)),
        None => return Err(format!("the GPU memory is unknown (`{}`)", case.gpu)),
    };
    notes.push(format!("{} GiB per GPU ({mem_src})", fixed(mem, 2)));
    // a GPU known only by name is the catalog entry (engines pick defaults and kernels by it);
    // a logged total is kept as the memory it is, on the board the GPU's name matches (whose
    // fabric and compute capability the engines read); one that is the board's catalog figure (to
    // the log's two decimals) is the catalog entry itself
    let board = crate::gpu::match_name(&case.gpu);
    let named_same = board.filter(|g| (g.memory_gib - mem).abs() < 0.006 && engine != Engine::Sglang);
    let gpu = match (mem_src.strip_prefix("catalog "), named_same) {
        (Some(id), _) => GpuChoice::Catalog(id.to_string()),
        (None, Some(g)) => {
            notes.push(format!("the {} of the catalog, whose memory the log prints", g.name));
            GpuChoice::Catalog(g.id.to_string())
        }
        (None, None) => {
            // the memory the log shows, on the board its name matches (fabric, compute capability)
            if let Some(g) = board {
                notes.push(format!("on the {} of the catalog (its fabric and compute capability), with the memory above", g.name));
            }
            GpuChoice::Custom { memory_gib: mem, board: board.map(|g| g.id.to_string()) }
        }
    };
    let mut s = Scenario { model: model_id.to_string(), gpu, engine, ..Scenario::default() };
    s.engine_version = case.engine_version.as_deref().and_then(version_in);
    let tp = case.tensor_parallel_size.unwrap_or(1).max(1);
    let pp = case.pipeline_parallel_size.unwrap_or(1).max(1);
    if engine == Engine::LlamaCpp {
        // llama.cpp splits layers (and their KV) over GPUs; the log's "KV self size" is the total
        if tp * pp > 1 {
            notes.push(format!("layer split over {} GPUs: the total KV buffer is compared", tp * pp));
        }
    } else {
        s.tp = u32::try_from(tp).map_err(|_| "tensor_parallel_size too large".to_string())?;
        s.pp = u32::try_from(pp).map_err(|_| "pipeline_parallel_size too large".to_string())?;
        // data parallel and expert parallel: the case's figures, else the command it quotes. Only
        // vLLM's flags are read for data parallelism: SGLang's `--dp` with `--enable-dp-attention`
        // splits its `--tp` GPUs instead of adding replicas
        let text = format!("{} {}", case.quote.as_deref().unwrap_or(""), case.notes.as_deref().unwrap_or(""));
        let dp_flags: &[&str] = if engine == Engine::Sglang { &[] } else { &["--data-parallel-size", "-dp"] };
        let dp = case.fig("data_parallel_size").map(|d| d as u64).or_else(|| arg_value(&text, dp_flags)).unwrap_or(1).max(1);
        s.dp = u32::try_from(dp).map_err(|_| "data_parallel_size too large".to_string())?;
        s.expert_parallel = case.figures.get("expert_parallel").and_then(Value::as_bool).unwrap_or(false)
            || ["--enable-expert-parallel", "enable_expert_parallel=True", "--ep-size", "--expert-parallel-size"].iter().any(|f| text.contains(f));
        if s.dp > 1 || s.expert_parallel {
            notes.push(format!("data parallel {} x tensor parallel {tp}{}", s.dp, if s.expert_parallel { ", expert parallelism" } else { "" }));
        }
        // vLLM's LoRA slots: `--max-lora-rank` (16 when only `--enable-lora` is given) and `--max-loras`
        if matches!(engine, Engine::Vllm | Engine::VllmV0) {
            let rank = case.fig("max_lora_rank").map(|r| r as u64).or_else(|| arg_value(&text, &["--max-lora-rank", "max_lora_rank"]));
            let rank = rank.or_else(|| ["--enable-lora", "enable_lora=True"].iter().any(|f| text.contains(f)).then_some(16));
            if let Some(r) = rank {
                s.lora_rank = Some(r);
                s.max_loras = case.fig("max_loras").map(|n| n as u64).or_else(|| arg_value(&text, &["--max-loras", "max_loras"]));
                notes.push(format!("LoRA enabled: rank {r}, {} slot(s)", s.max_loras.unwrap_or(1)));
            }
        }
    }
    // a quantised checkpoint keeps its scheme; only an unquantised one takes the dtype as a choice
    let unquantised = case_quant(case).is_none() && case.quantization.as_deref().map_or(true, |q| q.trim().is_empty() || q == "none");
    match case_float(case) {
        Some(FloatDtype::Bf16) if unquantised => s.dtype = crate::dtype::WeightDtype::Bf16,
        Some(FloatDtype::F16) if unquantised => s.dtype = crate::dtype::WeightDtype::Fp16,
        Some(FloatDtype::F32) if unquantised => s.dtype = crate::dtype::WeightDtype::Fp32,
        _ => {}
    }
    let kv = case.kv_cache_dtype.as_deref().unwrap_or("auto").split_whitespace().next().unwrap_or("auto").to_ascii_lowercase();
    s.kv_dtype = match kv.as_str() {
        "auto" | "" => KvDtype::Auto,
        "f16" => KvDtype::Fp16,
        other => other.parse::<KvDtype>().map_err(|e| e.to_string())?,
    };
    s.max_model_len = case.max_model_len;
    if let Some(u) = case.gpu_memory_utilization.or_else(|| case.fig("mem_fraction_static")) {
        s.gpu_memory_utilization = Some(u);
    } else if let Some(u) = case.flag("gmu_inferred").then(|| inferred_utilization(case)).flatten() {
        notes.push(format!("gpu_memory_utilization {u} inferred from the logged figures (the case says it is not stated)"));
        s.gpu_memory_utilization = Some(u);
    }
    s.block_size = case.block_size.filter(|_| matches!(engine, Engine::Vllm | Engine::VllmV0));
    if let Some(n) = case.figures.get("n_parallel").and_then(Value::as_u64) {
        s.concurrency = n.max(1);
    }
    if let Some(c) = case.fig("chunked_prefill_size") {
        s.max_num_batched_tokens = Some(c as u64);
    }
    // the arguments and log lines the case states (notes first, then the quote)
    let text = format!("{} {}", case.notes.as_deref().unwrap_or(""), case.quote.as_deref().unwrap_or(""));
    if matches!(engine, Engine::Vllm | Engine::VllmV0) {
        // the profiling batch, when the case's arguments set it (`--max-num-seqs 8`,
        // `max_num_batched_tokens=4096` in an args dump)
        if let Some(n) = setting_in(&text, "max_num_seqs") {
            notes.push(format!("max_num_seqs {n} from the case's arguments"));
            s.max_num_seqs = Some(n);
        }
        if let Some(n) = setting_in(&text, "max_num_batched_tokens") {
            notes.push(format!("max_num_batched_tokens {n} from the case's arguments"));
            s.max_num_batched_tokens = Some(n);
        }
        s.enforce_eager = case.enforce_eager.unwrap_or(false);
        if engine == Engine::Vllm {
            if let Some(fi) = case.figures.get("flashinfer_sampler").and_then(Value::as_bool).or_else(|| flashinfer_sampler_in(&text)) {
                notes.push(format!("FlashInfer top-k/top-p sampler {} (the case's log)", if fi { "on" } else { "off" }));
                s.flashinfer_sampler = Some(fi);
            }
        }
        // a logged total keeps the memory exact but loses the board, whose name V1's defaults
        // follow (an A100 80GB gets the small profiling batch from 0.9): take them from the name
        let named = board.filter(|_| s.gpu.catalog().is_none());
        if let (Engine::Vllm, Some(g)) = (engine, named) {
            let ver = crate::engine::vllm::version_of(&s).1;
            let (t, r) = crate::engine::vllm::v1_batch_defaults(ver, mem, Some(g));
            if s.max_num_batched_tokens.is_none() && s.max_num_seqs.is_none() {
                s.max_num_batched_tokens = Some(t);
                s.max_num_seqs = Some(r);
                notes.push(format!("profiling batch {t} tokens x {r} sequences: V1's defaults for the {}", g.name));
            }
        }
    }
    // `--cpu-offload-gb`, which vLLM and SGLang both take
    if matches!(engine, Engine::Vllm | Engine::VllmV0 | Engine::Sglang) {
        if let Some(g) = setting_f64_in(&text, "cpu_offload_gb") {
            notes.push(format!("cpu_offload_gb {g} from the case's arguments"));
            s.cpu_offload_gib = Some(g);
        }
    }
    if engine == Engine::LlamaCpp {
        let text = format!("{} {}", case.quote.as_deref().unwrap_or(""), case.notes.as_deref().unwrap_or(""));
        let ubatch = setting_in(&text, "n_ubatch").or_else(|| setting_in(&text, "ubatch_size")).or_else(|| setting_in(&text, "-ub"));
        if let Some(n) = ubatch.filter(|n| *n != crate::engine::LLAMACPP_N_UBATCH) {
            notes.push(format!("n_ubatch {n} from the case's text"));
            s.max_num_batched_tokens = Some(n);
        }
        if let Some((fa, source)) = flash_attention_in(case) {
            notes.push(format!("flash attention {} ({source})", if fa { "on" } else { "off" }));
            s.flash_attention = Some(fa);
        }
        // `offloaded 10/33 layers to GPU`: the output layer counts as one, so fewer than all is -ngl
        if let Some((on, all)) = layers_offloaded(case).filter(|(on, all)| on < all) {
            let gpus = case.num_gpus.unwrap_or(1).max(case.tensor_parallel_size.unwrap_or(1) * case.pipeline_parallel_size.unwrap_or(1));
            if gpus > 1 {
                notes.push(format!("{on} of {all} layers offloaded over {gpus} GPUs: fewer layers than all are modelled on one GPU, so every layer is taken as offloaded"));
            } else {
                notes.push(format!("-ngl {on}: {on} of {all} layers offloaded (the output layer is the last)"));
                s.gpu_layers = Some(on);
            }
        }
        // `-nkvo`: the case's figure, else the log's cache line (`offload = 0`) or command
        let quote = case.quote.as_deref().unwrap_or("");
        let nkvo = match case.figures.get("kv_on_host").and_then(Value::as_bool) {
            Some(b) => b,
            None => quote.contains("offload = 0") || quote.split_whitespace().any(|w| w == "-nkvo" || w == "--no-kv-offload"),
        };
        if nkvo {
            notes.push("-nkvo: the KV cache in host memory".into());
            s.kv_on_host = true;
        }
    }
    s.input_len = 1;
    s.output_len = 0;
    s.validate().map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;
    Ok((s, notes))
}

/// `(offloaded, total)` layers of a llama.cpp case: its `layers_offloaded` figure (`"10/33"`), else the
/// log's `offloaded 10/33 layers to GPU` line. The total counts the output layer.
fn layers_offloaded(case: &Case) -> Option<(u64, u64)> {
    let pair = |t: &str| -> Option<(u64, u64)> {
        let (a, b) = t.trim().split_once('/')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    };
    if let Some(t) = case.figures.get("layers_offloaded").and_then(Value::as_str) {
        return pair(t);
    }
    let quote = case.quote.as_deref().unwrap_or("");
    let at = quote.find("offloaded ")?;
    pair(quote[at + "offloaded ".len()..].split_whitespace().next()?)
}

/// One logged figure beside the estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The log's field name.
    pub figure: String,
    pub unit: String,
    pub logged: f64,
    pub estimated: f64,
    /// `(estimated - logged) / logged x 100`.
    pub error_pct: f64,
    /// The project's target for this figure, when it has one.
    pub target_pct: Option<f64>,
}

impl Check {
    pub fn within_target(&self) -> Option<bool> {
        self.target_pct.map(|t| self.error_pct.abs() <= t + 1e-9)
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    pub engine: String,
    pub family: String,
    pub strict: bool,
    pub caveat_flags: Vec<String>,
    pub model: String,
    /// The bundled config used and how it was matched.
    pub config: Option<ModelMatch>,
    pub checks: Vec<Check>,
    /// `(logged, predicted)` start-up outcome.
    pub starts: Option<(bool, bool)>,
    /// The engine's refusal message as predicted.
    pub message: Option<String>,
    /// Why the case could not be evaluated.
    pub skipped: Option<String>,
    pub notes: Vec<String>,
}

impl CaseResult {
    /// A case that could not be evaluated.
    pub fn skipped(case: &Case, config: Option<ModelMatch>, why: impl Into<String>) -> Self {
        CaseResult {
            id: case.id.clone(),
            engine: case.engine.clone(),
            family: case.family.clone().unwrap_or_default(),
            strict: case.strict(),
            caveat_flags: case.caveat_flags.clone(),
            model: case.model.clone(),
            config,
            checks: vec![],
            starts: None,
            message: None,
            skipped: Some(why.into()),
            notes: vec![],
        }
    }
    /// The figure the case is judged by: the KV capacity the engine reports, in the order
    /// tokens, blocks, pool bytes, then weights.
    pub fn headline(&self) -> Option<&Check> {
        KV_FIGURES.iter().chain(&["model_weights_gib", "sglang_weights_mem_usage_gb"]).find_map(|k| self.checks.iter().find(|c| c.figure == *k))
    }
}

fn pct(est: f64, logged: f64) -> f64 {
    if logged == 0.0 {
        if est == 0.0 {
            0.0
        } else {
            100.0
        }
    } else {
        (est - logged) / logged * 100.0
    }
}

/// Sets the estimate beside every figure of the case that it models.
pub fn evaluate(case: &Case, shape: &ModelShape, config: ModelMatch) -> CaseResult {
    let base = CaseResult::skipped(case, Some(config.clone()), "");
    let (mut s, mut notes) = match case_scenario(case, &config.config_id) {
        Ok(x) => x,
        Err(why) => return CaseResult::skipped(case, Some(config), why),
    };
    if shape.quantization.is_none() {
        if let Some(q) = online_quant(case) {
            notes.push(format!("quantised at load ({}): the checkpoint is unquantised", q.as_str()));
            s.quantization = q;
        }
    }
    let e: Estimate = match estimate(shape, &s) {
        Ok(e) => e,
        Err(err) => return CaseResult::skipped(case, Some(config), format!("the estimate failed: {err}")),
    };
    match e.weights.plan.quant.as_ref().filter(|_| shape.notes.iter().any(|n| n.starts_with(QUANT_FROM_LOG))) {
        Some(q) => notes.push(format!("permalink ?{} (opens the bundled config; this estimate also applies the checkpoint's {}, which a permalink does not carry)", s.to_query(), q.name())),
        None => notes.push(format!("permalink ?{}", s.to_query())),
    }
    let quantised = matches!(e.weights.plan.quant, Some(Quant::Awq { .. } | Quant::Gptq { .. }));
    let gib = |b: u64| b as f64 / GIB as f64;
    let mib = |b: u64| b as f64 / MIB as f64;
    let en = &e.engine;
    let mut checks = vec![];
    let mut add = |figure: &str, unit: &str, logged: Option<f64>, estimated: f64, target: Option<f64>| {
        if let Some(l) = logged {
            checks.push(Check { figure: figure.into(), unit: unit.into(), logged: l, estimated, error_pct: pct(estimated, l), target_pct: target });
        }
    };
    let weights_target = Some(if quantised { 3.0 } else { 1.0 });
    // GGUF weights the estimator cannot size (a preset it does not follow, or none named)
    let gguf = case.quantization.as_deref().is_some_and(|q| q.to_ascii_lowercase().contains("gguf")) && !matches!(e.weights.plan.quant, Some(Quant::Gguf { .. }));
    let fails = case.flag("fails_to_start");
    match s.engine {
        Engine::Vllm | Engine::VllmV0 => {
            add("model_weights_gib", "GiB", case.fig("model_weights_gib").or(case.fig("model_weights_gb")), gib(en.loaded_weights_bytes.0), weights_target);
            // a start-up that fails for want of memory logs the budget's shortfall as a negative
            // "Available KV cache memory"
            let pool = gib(en.kv_pool_bytes.0) - gib(en.budget_shortfall.0);
            add("kv_cache_gib", "GiB", case.fig("kv_cache_gib"), pool, Some(3.0));
            add("kv_cache_tokens", "tokens", case.fig("kv_cache_tokens"), en.kv_tokens as f64, Some(5.0));
            add("num_gpu_blocks", "blocks", case.fig("num_gpu_blocks"), en.num_blocks as f64, Some(5.0));
            if !fails {
                add("max_concurrency", "requests", case.fig("max_concurrency"), en.max_concurrency, None);
            }
            // from 0.27 the logged "peak activation" is the transient peak plus the CUDA-graph
            // estimate taken out of the budget (`peak_activation_memory = transient_peak_headroom
            // + cudagraph_memory_estimate_applied`, gpu_worker.py); before, the torch peak alone
            let graphs_in_activation = s.engine == Engine::Vllm && parse_semver(&e.engine.version).is_some_and(|v| v >= (0, 27, 0));
            let act = e.activation.bytes.0.saturating_add(if graphs_in_activation { en.cuda_graph_in_budget_bytes.0 } else { 0 });
            add("activation_peak_gib", "GiB", case.fig("activation_peak_gib"), gib(act), None);
            let graphs_in_budget = !e.engine.version.is_empty() && parse_semver(&e.engine.version).is_some_and(|v| v >= (0, 20, 0)) && s.engine == Engine::Vllm;
            if !graphs_in_budget {
                // the overhead figure also carries what the engine adds to the weights at load
                // (counted in "Model loading took"), which the log's non-torch figure does not
                let at_load = en.loaded_weights_bytes.0.saturating_sub(e.weights.per_gpu.0);
                add("non_torch_gib", "GiB", case.fig("non_torch_gib"), gib(e.overhead.bytes.0.saturating_sub(at_load)), None);
            }
            add("requested_memory_gib", "GiB", case.fig("requested_memory_gib"), gib(e.capacity.0), None);
            add("kv_cache_gib_available", "GiB", case.fig("kv_cache_gib_available"), gib(en.kv_pool_bytes.0), Some(3.0));
            add("kv_cache_needed_gib_for_max_model_len", "GiB", case.fig("kv_cache_needed_gib_for_max_model_len"), gib(en.kv_needed_for_max_len.0), Some(1.0));
            add("estimated_max_model_len", "tokens", case.fig("estimated_max_model_len"), en.max_len_that_fits as f64, Some(5.0));
        }
        Engine::Sglang => {
            add("sglang_weights_mem_usage_gb", "GiB", case.fig("sglang_weights_mem_usage_gb"), gib(en.loaded_weights_bytes.0), weights_target);
            if !case.flag("pool_capped_by_max_total_tokens") {
                add("sglang_max_total_tokens", "tokens", case.fig("sglang_max_total_tokens"), en.kv_tokens as f64, Some(5.0));
                // "KV Cache is allocated. #tokens: N": the token pool is built with
                // max_total_num_tokens rows, so N is the same figure when only this line is logged
                if case.fig("sglang_max_total_tokens").is_none() {
                    add("sglang_kv_tokens", "tokens", case.fig("sglang_kv_tokens"), en.kv_tokens as f64, Some(5.0));
                }
                add("sglang_k_size_gb", "GiB", case.fig("sglang_k_size_gb"), gib(en.kv_pool_bytes.0) / 2.0, Some(3.0));
                // "Memory pool end. avail mem": what the pool and the request-to-token table leave
                if let Some(b) = &en.budget {
                    add("sglang_avail_after_pool_gb", "GiB", case.fig("sglang_avail_after_pool_gb"), gib(b.left_after_pool.0), None);
                }
            } else {
                notes.push("the pool was capped by --max-total-tokens: only weights are compared".into());
            }
        }
        Engine::LlamaCpp => {
            let kv = en.kv_pool_bytes.0;
            // llama.cpp prints MiB to two decimals: the estimate is rounded the same way
            let printed = |m: f64| (m * 100.0).round() / 100.0;
            add("llamacpp_kv_mib", "MiB", case.fig("llamacpp_kv_mib"), printed(mib(kv)), Some(0.0));
            // K and V are equal halves, except for MLA (per head: 192 K and 128 V values)
            if !shape.is_mla() && (e.kv.kv_ratio.1 == 1 || case.fig("llamacpp_k_mib") == case.fig("llamacpp_v_mib")) {
                add("llamacpp_k_mib", "MiB", case.fig("llamacpp_k_mib"), printed(mib(kv) / 2.0), Some(0.0));
                add("llamacpp_v_mib", "MiB", case.fig("llamacpp_v_mib"), printed(mib(kv) / 2.0), Some(0.0));
            }
            // iSWA builds log the full-attention and the window caches apart
            for (swa, name) in [(false, "full"), (true, "swa")] {
                let parts: Vec<_> = en.kv_parts.iter().filter(|p| (p.window != Window::Full) == swa).collect();
                if parts.is_empty() {
                    continue;
                }
                let bytes = parts.iter().fold(0u64, |a, p| a.saturating_add(p.bytes.0));
                let layers = parts.iter().fold(0u64, |a, p| a.saturating_add(p.layers));
                add(&format!("llamacpp_kv_mib_{name}_layers"), "MiB", case.fig(&format!("llamacpp_kv_mib_{name}_layers")), printed(mib(bytes)), Some(0.0));
                add(&format!("llamacpp_kv_{name}_layers"), "layers", case.fig(&format!("llamacpp_kv_{name}_layers")), layers as f64, Some(0.0));
                if let [one] = parts.as_slice() {
                    add(&format!("llamacpp_kv_cells_{name}_layers"), "cells", case.fig(&format!("llamacpp_kv_cells_{name}_layers")), one.cells as f64, Some(0.0));
                }
            }
            // with layers (-ngl) or the cache (-nkvo) in host memory, its two buffers
            let host_kv = en.kv_in_host_memory.0;
            add("llamacpp_kv_gpu_mib", "MiB", case.fig("llamacpp_kv_gpu_mib"), printed(mib(kv - host_kv)), Some(0.0));
            add("llamacpp_kv_cpu_mib", "MiB", case.fig("llamacpp_kv_cpu_mib"), printed(mib(host_kv)), Some(0.0));
            add("llamacpp_compute_buffer_mib", "MiB", case.fig("llamacpp_compute_buffer_mib"), mib(e.activation.bytes.0), None);
            // a GGUF preset's weights on one GPU: the layers offloaded; in host memory the token
            // embeddings when every layer is offloaded (with fewer, the mapped buffer spans the
            // file range of the host tensors, not their sum)
            let layers = layers_offloaded(case);
            if matches!(e.weights.plan.quant, Some(Quant::Gguf { .. })) && layers.is_some() && s.tp <= 1 && s.pp <= 1 {
                add("llamacpp_model_buffer_mib", "MiB", case.fig("llamacpp_model_buffer_mib"), printed(mib(e.weights.per_gpu.0)), Some(0.0));
                if layers.is_some_and(|(on, all)| on == all) {
                    add("llamacpp_cpu_mapped_model_buffer_mib", "MiB", case.fig("llamacpp_cpu_mapped_model_buffer_mib"), printed(mib(crate::weights::host_embedding_bytes(shape, &e.weights.plan))), Some(0.0));
                }
            }
        }
        _ => {}
    }
    if gguf {
        notes.push("GGUF weights are not sized (the quant mix is not in config.json)".into());
    }
    let mut predicted_start = en.fits;
    let mut message = en.message.clone();
    let gpus = case.tensor_parallel_size.unwrap_or(1).max(1) * case.pipeline_parallel_size.unwrap_or(1).max(1);
    if s.engine == Engine::LlamaCpp && gpus > 1 {
        // whether it starts depends on the most loaded GPU of the layer split
        let split = Scenario { pp: u32::try_from(gpus).unwrap_or(1), ..s.clone() };
        if let Ok(e) = estimate(shape, &split) {
            predicted_start = e.engine.fits;
            message = e.engine.message.clone();
        }
    }
    let host = case.caveat_flags.iter().any(|f| f.starts_with("kv_on_host") || f.starts_with("kv_partly_on_host"));
    let unknown_memory = case_memory_gib(case, s.engine).is_none();
    let logged_start = if unknown_memory {
        None
    } else if fails {
        Some(false)
    } else if host {
        notes.push("KV or layers kept in host memory: the start-up outcome is not compared".into());
        None
    } else if gguf {
        notes.push("GGUF weight size unknown: the start-up outcome is not compared".into());
        None
    } else {
        case.figures.get("fits").and_then(Value::as_bool).or(Some(true))
    };
    CaseResult { checks, starts: logged_start.map(|l| (l, predicted_start)), message, skipped: None, notes, ..base }
}

/// Where a config text came from, for [`evaluate_with`].
pub enum Loaded {
    /// The config text and a description of its source.
    Text(String, String),
    /// Why there is none (offline, not found, ...).
    Missing(String),
}

/// Evaluates a case end to end: finds its config among `bundled` (exact, same shape, derived) or
/// asks `load` for the model id itself, applies what the log says about a derived checkpoint, and
/// compares. `load` is the caller's I/O (bundled files, the Hub).
pub fn evaluate_with(case: &Case, bundled: &[String], load: &mut dyn FnMut(&str, bool) -> Loaded) -> CaseResult {
    let matched = match_model(&case.model, bundled);
    let (config, text) = match matched {
        Some(m) => match load(&m.config_id, true) {
            Loaded::Text(t, _) => (m, t),
            Loaded::Missing(why) => return CaseResult::skipped(case, Some(m), why),
        },
        None => {
            let id = case.model.split(" (").next().unwrap_or(&case.model).trim();
            match load(id, false) {
                Loaded::Text(t, src) => (ModelMatch { config_id: id.to_string(), how: format!("fetched: {src}"), derived: false }, t),
                Loaded::Missing(why) => return CaseResult::skipped(case, None, why),
            }
        }
    };
    let mut shape = match crate::parse_config(&text) {
        Ok(s) => s,
        Err(e) => return CaseResult::skipped(case, Some(config), format!("config.json: {e}")),
    };
    // a scheme no engine applies at load (AWQ, GPTQ, W4A16, ...) means a quantised checkpoint,
    // even when the case names the unquantised model it was made from
    let checkpoint_scheme = case_quant(case).is_some_and(|q| checkpoint_only(&q));
    if config.derived {
        derive_checkpoint(&mut shape, case);
    } else if checkpoint_scheme {
        // only the scheme: the config is the model's own
        apply_case_quant(&mut shape, case);
    }
    evaluate(case, &shape, config)
}

/// Cases within 1, 5 and 10 % on their headline figure, for one engine, family or figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub key: String,
    pub cases: usize,
    pub within_1: usize,
    pub within_5: usize,
    pub within_10: usize,
    pub mean_abs_error_pct: f64,
}

impl Bucket {
    fn add(&mut self, err: f64) {
        let a = err.abs();
        self.mean_abs_error_pct = (self.mean_abs_error_pct * self.cases as f64 + a) / (self.cases + 1) as f64;
        self.cases += 1;
        self.within_1 += usize::from(a <= 1.0);
        self.within_5 += usize::from(a <= 5.0);
        self.within_10 += usize::from(a <= 10.0);
    }
}

/// The summary of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub cases: usize,
    pub evaluated: usize,
    pub skipped: usize,
    /// Headline errors of every evaluated case.
    pub all: Bucket,
    /// Headline errors of the strict cases (no caveat flag).
    pub strict: Bucket,
    pub by_engine: Vec<Bucket>,
    pub by_family: Vec<Bucket>,
    /// Every check, per logged figure.
    pub by_figure: Vec<Bucket>,
    /// Checks with a target, and how many met it.
    pub targets_checked: usize,
    pub targets_met: usize,
    /// `fails_to_start` cases, and how many were predicted not to start.
    pub refusals: usize,
    pub refusals_predicted: usize,
}

fn bucket<'a>(v: &'a mut Vec<Bucket>, key: &str) -> &'a mut Bucket {
    if let Some(i) = v.iter().position(|b| b.key == key) {
        &mut v[i]
    } else {
        v.push(Bucket { key: key.to_string(), ..Bucket::default() });
        let last = v.len() - 1;
        &mut v[last]
    }
}

/// Summarises results per engine, family and figure.
pub fn summarize(results: &[CaseResult]) -> Summary {
    let mut s = Summary { cases: results.len(), all: Bucket { key: "all".into(), ..Bucket::default() }, strict: Bucket { key: "strict".into(), ..Bucket::default() }, ..Summary::default() };
    for r in results {
        if r.skipped.is_some() {
            s.skipped += 1;
            continue;
        }
        s.evaluated += 1;
        if r.caveat_flags.iter().any(|f| f == "fails_to_start") {
            s.refusals += 1;
            s.refusals_predicted += usize::from(r.starts.is_some_and(|(_, p)| !p));
        }
        for c in &r.checks {
            bucket(&mut s.by_figure, &c.figure).add(c.error_pct);
            if let Some(ok) = c.within_target() {
                s.targets_checked += 1;
                s.targets_met += usize::from(ok);
            }
        }
        if let Some(h) = r.headline() {
            s.all.add(h.error_pct);
            if r.strict {
                s.strict.add(h.error_pct);
            }
            bucket(&mut s.by_engine, &r.engine).add(h.error_pct);
            bucket(&mut s.by_family, if r.family.is_empty() { "unknown" } else { &r.family }).add(h.error_pct);
        }
    }
    s
}

/// The logged figures that say how much KV an engine allocated, in the order
/// [`CaseResult::headline`] and a track record take the first of.
const KV_FIGURES: &[&str] = &["kv_cache_tokens", "sglang_max_total_tokens", "sglang_kv_tokens", "num_gpu_blocks", "kv_cache_gib", "llamacpp_kv_mib", "llamacpp_kv_mib_full_layers", "kv_cache_gib_available"];
/// The logged figures that say how much the engine's weights took on the GPU.
const WEIGHT_FIGURES: &[&str] = &["model_weights_gib", "sglang_weights_mem_usage_gb", "llamacpp_model_buffer_mib"];

/// How far one engine profile has been off in public start-up logs: the KV the engine says it
/// allocated (each log's first KV figure: tokens, blocks or pool bytes) and the weights it says it
/// loaded, over the project's committed case sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    /// The cases' engine: `vllm` (V0 and V1), `sglang` or `llama.cpp`.
    pub engine: String,
    pub kv: Bucket,
    pub weights: Bucket,
    /// The KV figure furthest off: its case and signed error in %.
    pub worst_kv: Option<(String, f64)>,
}

/// The track records of every engine the case sets cover (`crates/estimator/src/track-record.json`,
/// written by `cargo xtask accuracy` and checked current by `cargo xtask test`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackRecords {
    /// The case files scored.
    pub sets: Vec<String>,
    pub engines: Vec<TrackRecord>,
}

/// Track records per engine from evaluated cases (skipped cases and cases without the figure
/// left out).
pub fn track_records(sets: &[String], results: &[CaseResult]) -> TrackRecords {
    let mut engines: Vec<TrackRecord> = vec![];
    for r in results.iter().filter(|r| r.skipped.is_none()) {
        let i = match engines.iter().position(|t| t.engine == r.engine) {
            Some(i) => i,
            None => {
                let key = |what: &str| Bucket { key: format!("{} {what}", r.engine), ..Bucket::default() };
                engines.push(TrackRecord { engine: r.engine.clone(), kv: key("KV"), weights: key("weights"), worst_kv: None });
                engines.len() - 1
            }
        };
        let t = &mut engines[i];
        if let Some(c) = KV_FIGURES.iter().find_map(|k| r.checks.iter().find(|c| c.figure == *k)) {
            t.kv.add(c.error_pct);
            if t.worst_kv.as_ref().is_none_or(|(_, w)| c.error_pct.abs() > w.abs()) {
                t.worst_kv = Some((r.id.clone(), c.error_pct));
            }
        }
        if let Some(c) = WEIGHT_FIGURES.iter().find_map(|k| r.checks.iter().find(|c| c.figure == *k)) {
            t.weights.add(c.error_pct);
        }
    }
    // rounded, so that the committed file does not depend on the last bits of a float
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    for t in &mut engines {
        t.kv.mean_abs_error_pct = round(t.kv.mean_abs_error_pct, 3);
        t.weights.mean_abs_error_pct = round(t.weights.mean_abs_error_pct, 3);
        if let Some((_, e)) = &mut t.worst_kv {
            *e = round(*e, 2);
        }
    }
    TrackRecords { sets: sets.to_vec(), engines }
}

/// The committed track records (see [`TrackRecords`]).
const PUBLISHED: &str = include_str!("track-record.json");

/// The published track record of the profile an engine runs, if public logs score it (vLLM V0
/// and V1 share one; transformers and candle have none: candle is checked by `measurements/`).
pub fn published_track_record(engine: Engine) -> Option<TrackRecord> {
    let key = match engine {
        Engine::Vllm | Engine::VllmV0 => "vllm",
        Engine::Sglang => "sglang",
        Engine::LlamaCpp => "llama.cpp",
        Engine::Transformers | Engine::Candle => return None,
    };
    let all: TrackRecords = serde_json::from_str(PUBLISHED).ok()?;
    all.engines.into_iter().find(|t| t.engine == key && t.kv.cases > 0)
}

impl TrackRecord {
    /// One sentence for a reader: how often the KV figure was within 5 and 10 %, the mean
    /// error, the case furthest off, and the weights.
    pub fn summary(&self) -> String {
        let pct = |n: usize, of: usize| if of == 0 { "0".to_string() } else { fixed(100.0 * n as f64 / of as f64, 0) };
        let mut s = format!(
            "in {} public {} start-up logs, the KV this profile predicts was within 5 % of the logged figure in {} ({} %) and within 10 % in {}; mean |error| {} %",
            self.kv.cases,
            match self.engine.as_str() {
                "vllm" => "vLLM",
                "sglang" => "SGLang",
                other => other,
            },
            self.kv.within_5,
            pct(self.kv.within_5, self.kv.cases),
            self.kv.within_10,
            fixed(self.kv.mean_abs_error_pct, 1)
        );
        if let Some((id, e)) = self.worst_kv.as_ref().filter(|(_, e)| e.abs() >= 1.0) {
            s.push_str(&format!(", furthest off {}{} % ({id})", if *e >= 0.0 { "+" } else { "" }, fixed(*e, 1)));
        }
        if self.weights.cases > 0 {
            s.push_str(&format!(
                "; the weights it loads within 1 % in {} of {} logs",
                self.weights.within_1, self.weights.cases
            ));
        }
        s
    }
}

fn share(n: usize, of: usize) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{n}/{of} ({} %)", fixed(100.0 * n as f64 / of as f64, 0))
    }
}

fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{}", fixed(x, 2))
    } else {
        fixed(x, 2)
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        fixed(x, 0)
    } else {
        fixed(x, 2)
    }
}

/// The report as Markdown (what `docs/accuracy/engine-logs.md` holds).
pub fn markdown(title: &str, source: &str, results: &[CaseResult]) -> String {
    let s = summarize(results);
    let mut out = String::new();
    let line = |out: &mut String, l: &str| {
        out.push_str(l);
        out.push('\n');
    };
    line(&mut out, &format!("# {title}"));
    line(&mut out, "");
    line(&mut out, &format!("Generated by `kv-runner validate --offline --markdown --cases {source}`; do not edit by hand (`cargo xtask test` checks it is current)."));
    line(&mut out, "Each case is a real engine start-up log; the estimate is computed from the bundled `config.json` with the case's settings, and");
    line(&mut out, "every figure the log printed is set beside it. Error = (estimate - logged) / logged. A case's headline figure is the KV");
    line(&mut out, "capacity the engine reports (tokens, else blocks, else pool GiB, else weights). Strict cases carry no caveat flag.");
    line(&mut out, "");
    line(&mut out, "## Summary");
    line(&mut out, "");
    line(&mut out, &format!("{} cases, {} evaluated, {} skipped (no config available offline, or a setting the log does not give).", s.cases, s.evaluated, s.skipped));
    line(&mut out, &format!("Targets met: {} of the checks that have a target. Refusals to start predicted: {}.", share(s.targets_met, s.targets_checked), share(s.refusals_predicted, s.refusals)));
    line(&mut out, "");
    line(&mut out, "| group | cases | within 1 % | within 5 % | within 10 % | mean abs error |");
    line(&mut out, "|---|---|---|---|---|---|");
    let rows = |out: &mut String, b: &Bucket, label: &str| {
        line(out, &format!("| {label} | {} | {} | {} | {} | {} % |", b.cases, share(b.within_1, b.cases), share(b.within_5, b.cases), share(b.within_10, b.cases), fixed(b.mean_abs_error_pct, 2)));
    };
    rows(&mut out, &s.all, "all evaluated (headline)");
    rows(&mut out, &s.strict, "strict cases (headline)");
    for b in &s.by_engine {
        rows(&mut out, b, &format!("engine {}", b.key));
    }
    for b in &s.by_family {
        rows(&mut out, b, &format!("family {}", b.key));
    }
    line(&mut out, "");
    line(&mut out, "Per logged figure (every check, not only headlines):");
    line(&mut out, "");
    line(&mut out, "| figure | checks | within 1 % | within 5 % | within 10 % | mean abs error |");
    line(&mut out, "|---|---|---|---|---|---|");
    for b in &s.by_figure {
        line(&mut out, &format!("| `{}` | {} | {} | {} | {} | {} % |", b.key, b.cases, share(b.within_1, b.cases), share(b.within_5, b.cases), share(b.within_10, b.cases), fixed(b.mean_abs_error_pct, 2)));
    }
    line(&mut out, "");
    line(&mut out, "## Cases");
    for r in results {
        line(&mut out, "");
        line(&mut out, &format!("### `{}`", r.id));
        line(&mut out, "");
        let flags = if r.caveat_flags.is_empty() { "strict".to_string() } else { r.caveat_flags.join(", ") };
        line(&mut out, &format!("{} · {} · {} · {}", r.engine, r.model, if r.family.is_empty() { "-" } else { &r.family }, flags));
        if let Some(c) = &r.config {
            line(&mut out, &format!("config: `{}` ({})", c.config_id, c.how));
        }
        if let Some(why) = &r.skipped {
            line(&mut out, &format!("**skipped**: {why}"));
            continue;
        }
        line(&mut out, "");
        line(&mut out, "| figure | logged | estimate | error | target |");
        line(&mut out, "|---|---|---|---|---|");
        for c in &r.checks {
            let target = match (c.target_pct, c.within_target()) {
                (Some(t), Some(true)) => format!("±{} % met", fixed(t, 0)),
                (Some(t), _) => format!("±{} % **missed**", fixed(t, 0)),
                _ => "-".into(),
            };
            line(&mut out, &format!("| `{}` | {} {} | {} {} | {} % | {} |", c.figure, num(c.logged), c.unit, num(c.estimated), c.unit, signed(c.error_pct), target));
        }
        if let Some((logged, predicted)) = r.starts {
            let word = |b: bool| if b { "starts" } else { "refuses to start" };
            line(&mut out, &format!("| start-up | {} | {} | {} | |", word(logged), word(predicted), if logged == predicted { "agrees" } else { "**disagrees**" }));
        }
        if let Some(m) = &r.message {
            line(&mut out, "");
            line(&mut out, &format!("Predicted message: {m}"));
        }
        for n in &r.notes {
            line(&mut out, &format!("- {n}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parallel_is_read_from_the_quoted_command() {
        let flags = ["--data-parallel-size", "-dp"];
        assert_eq!(super::arg_value("vllm serve m -dp=8  --enable-expert-parallel", &flags), Some(8));
        assert_eq!(super::arg_value("vllm serve m --data-parallel-size 4", &flags), Some(4));
        assert_eq!(super::arg_value("vllm serve m -dpx 3 --dp-size 2", &flags), None);
    }

    #[test]
    fn versions_are_found_in_free_text() {
        assert_eq!(version_in("~0.11.0 (V1)").as_deref(), Some("0.11.0"));
        assert_eq!(version_in("vllm V1, ~0.9.x/0.10.0 (July 2025)").as_deref(), Some("0.9"));
        assert_eq!(version_in("~b2950 (May 2024)").as_deref(), Some("b2950"));
        assert_eq!(version_in("b5121 (c94085df)").as_deref(), Some("b5121"));
        assert_eq!(version_in("0.10.1.dev101 (V1)").as_deref(), Some("0.10.1"));
        assert_eq!(version_in("latest"), None);
        assert_eq!(version_in("v0.10.1.1").as_deref(), Some("0.10.1.1"));
        assert_eq!(version_in("vllm v0.9.2 (V1)").as_deref(), Some("0.9.2"));
        assert_eq!(version_in("V0, ~0.6.4 (Dec 2024)").as_deref(), Some("0.6.4"));
    }

    #[test]
    fn names_normalise_to_the_architecture() {
        assert_eq!(normalized_name("hugging-quants/Meta-Llama-3.1-405B-Instruct-AWQ-INT4"), "llama-3.1-405b");
        assert_eq!(normalized_name("meta-llama/Llama-3.1-405B"), "llama-3.1-405b");
        assert_eq!(normalized_name("kaitchup/Phi-4-AutoRound-GPTQ-4bit"), "phi-4");
        assert_eq!(normalized_name("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8"), "qwen2.5-7b");
        assert_eq!(normalized_name("google/gemma-2-2b-it"), "gemma-2-2b");
        assert_eq!(normalized_name("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8"), "qwen3-235b-a22b");
        assert_eq!(normalized_name("Qwen/Qwen3-30B-A3B-Thinking-2507"), "qwen3-30b-a3b");
        assert_eq!(normalized_name("deepseek-ai/DeepSeek-R1-0528"), "deepseek-r1");
    }

    #[test]
    fn models_match_bundled_configs() {
        let bundled: Vec<String> = ["meta-llama/Llama-3.1-405B", "microsoft/phi-4", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B"].iter().map(|s| s.to_string()).collect();
        let m = match_model("hugging-quants/Meta-Llama-3.1-405B-Instruct-AWQ-INT4", &bundled).unwrap();
        assert_eq!(m.config_id, "meta-llama/Llama-3.1-405B");
        assert!(m.derived);
        assert_eq!(match_model("Qwen/Qwen2.5-7B-Instruct", &bundled).unwrap().how, "exact");
        let q = match_model("Qwen/QwQ-32B", &bundled).unwrap();
        assert!(q.how.starts_with("same shape") && q.derived, "{q:?}");
        assert!(match_model("deepseek-ai/DeepSeek-V2-Lite", &bundled).is_none());
        assert_eq!(match_model("mistralai/Mistral-7B-Instruct-v0.2 (GGUF)", &["mistralai/Mistral-7B-Instruct-v0.3".to_string()]).unwrap().config_id, "mistralai/Mistral-7B-Instruct-v0.3");
        // a fine-tune named after its base, at word boundaries only, the longest base winning
        let bundled: Vec<String> = ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B", "microsoft/phi-2", "openai-community/openai-gpt"].iter().map(|s| s.to_string()).collect();
        let h = match_model("NousResearch/Hermes-3-Llama-3.1-8B", &bundled).unwrap();
        assert_eq!(h.config_id, "meta-llama/Llama-3.1-8B");
        assert!(h.derived && h.how.contains("named after"), "{h:?}");
        assert!(match_model("cognitivecomputations/dolphin-2.6-phi-2", &bundled).is_none(), "a base named by its version alone is too vague");
        assert!(match_model("someone/codellama-3.1-8b", &bundled).is_none());
        assert!(match_model("someone/Llama-3.1-8B.2-merge", &bundled).is_none());
        assert!(match_model("someone/my-openai-gpt-tune", &bundled).is_none(), "a base name without a size is too vague");
        assert!(match_model("Qwen/Qwen2.5-72B-Instruct", &bundled).is_none());
        let nemo = match_model("mistralai/Mistral-Nemo-Instruct-2407", &["mistralai/Mistral-Nemo-Base-2407".to_string()]).unwrap();
        assert!(nemo.how.starts_with("same shape") && nemo.config_id == "mistralai/Mistral-Nemo-Base-2407", "{nemo:?}");
        assert_eq!(native_context("mistralai/Mistral-Nemo-Instruct-2407"), Some(1_024_000));
        // updates of a bundled release with a longer context keep its layers and take their own context
        let k2 = match_model("moonshotai/Kimi-K2-Instruct-0905", &["moonshotai/Kimi-K2-Instruct".to_string()]).unwrap();
        assert_eq!((k2.config_id.as_str(), native_context("moonshotai/Kimi-K2-Instruct-0905")), ("moonshotai/Kimi-K2-Instruct", Some(262_144)));
        let r = match_model("microsoft/Phi-4-reasoning-plus", &["microsoft/phi-4".to_string()]).unwrap();
        assert_eq!((r.config_id.as_str(), native_context("microsoft/Phi-4-reasoning-plus")), ("microsoft/phi-4", Some(32_768)));
        assert_eq!(native_context("microsoft/phi-4"), None);
        // Qwen2.5 Instruct uploads sized with a base config take the Instruct release's context
        let q = match_model("Qwen/Qwen2.5-14B-Instruct-AWQ", &["Qwen/Qwen2.5-14B".to_string()]).unwrap();
        assert_eq!((q.config_id.as_str(), native_context("Qwen/Qwen2.5-14B-Instruct-AWQ")), ("Qwen/Qwen2.5-14B", Some(32_768)));
        assert_eq!(native_context("Qwen/Qwen2.5-Coder-32B-Instruct"), Some(32_768));
        for other in ["Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-7B-Instruct-1M", "Qwen/Qwen2.5-Math-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"] {
            assert_eq!(native_context(other), None, "{other}");
        }
        // not a fine-tune of the base it names: distilled, pruned, a draft head, another precision (a bf16 copy of a quantised release),
        // another context, a merge of two sizes, a name without a size
        let bundled: Vec<String> = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-32B", "deepseek-ai/DeepSeek-R1", "openai/gpt-oss-20b", "zai-org/GLM-4.5-Air", "moonshotai/Kimi-K2-Instruct"].iter().map(|s| s.to_string()).collect();
        for id in [
            "RedHatAI/Llama-3.1-8B-Instruct-speculator.eagle3",
            "AngelSlim/Qwen3-8B_eagle3",
            "unsloth/gpt-oss-20b-BF16",
            "cerebras/GLM-4.5-Air-REAP-82B-A12B",
            "Qwen/Qwen2.5-7B-Instruct-1M",
            "someone/Llama-3.1-8B-x-Qwen2.5-7B",
            "moonshotai/Kimi-K2-Instruct-1234",
            "unsloth/DeepSeek-R1-BF16",
        ] {
            assert_eq!(match_model(id, &bundled), None, "{id}");
        }
        // NVFP4 uploads (sized since NVFP4 is modelled) are the model they quantise
        for (id, base) in [("nvidia/Llama-3.1-8B-Instruct-FP4", "meta-llama/Llama-3.1-8B-Instruct"), ("RedHatAI/Qwen3-8B-NVFP4", "Qwen/Qwen3-8B"), ("RedHatAI/Qwen3-8B-NVFP4A16", "Qwen/Qwen3-8B")] {
            assert_eq!(match_model(id, &bundled).map(|m| m.config_id), Some(base.to_string()), "{id}");
            assert_eq!(case_quant(&Case { model: id.into(), ..Case::default() }), Some(Quant::Nvfp4 { skip: vec![] }), "{id}");
        }
        // DeepSeek's R1 distill into Qwen3-8B is named after both: the sized one is its shape
        assert_eq!(match_model("deepseek-ai/DeepSeek-R1-0528-Qwen3-8B", &bundled).unwrap().config_id, "Qwen/Qwen3-8B");
        // a same-shape name found whole leads to its shape
        let d = match_model("huihui-ai/DeepSeek-R1-Distill-Qwen-32B-abliterated", &bundled).unwrap();
        assert_eq!(d.config_id, "Qwen/Qwen2.5-32B", "{d:?}");
        assert!(d.how.contains("which has the shape of Qwen/Qwen2.5-32B"), "{d:?}");
        assert_eq!(size_words("qwen3-30b-a3b"), ["30b", "a3b"]);
        assert_eq!(size_words("mixtral-8x7b"), ["8x7b"]);
        assert_eq!(size_words("llama-4-scout-17b-16e"), ["17b", "16e"]);
        assert!(size_words("deepseek-r1").is_empty() && size_words("phi-4").is_empty() && size_words("glm-4.5-air").is_empty());
        let bundled: Vec<String> = ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"].iter().map(|s| s.to_string()).collect();
        // of the same base, the release the name gives whole
        assert_eq!(match_model("someone/Llama-3.1-8B-Instruct-abliterated", &bundled).unwrap().config_id, "meta-llama/Llama-3.1-8B-Instruct");
        assert_eq!(match_model("someone/Llama-3.1-8B-lora-merged", &bundled).unwrap().config_id, "meta-llama/Llama-3.1-8B");
    }

    #[test]
    fn totals_are_read_from_gpu_text() {
        assert_eq!(total_in_text("NVIDIA H100 80GB (vLLM reports total 79.18 GiB)"), Some(79.18));
        assert_eq!(total_in_text("NVIDIA GeForce RTX 3090 (total_gpu_memory 23.58GiB)"), Some(23.58));
        assert_eq!(total_in_text("8x NVIDIA H20 (141GB variant; the 6.99 GiB gain for +0.05 gmu implies ~139.8 GiB total per GPU)"), Some(139.8));
        assert_eq!(total_in_text("4x NVIDIA L4 24GB"), None);
        assert_eq!(nominal_gb("NVIDIA GeForce RTX 3060 Ti 8GB"), Some(8.0));
        assert_eq!(nominal_gb("3x Tesla P40 24GB"), Some(24.0));
        assert_eq!(nominal_gb("24 GB-class consumer GPU (inferred)"), Some(24.0));
        assert_eq!(nominal_gb("unknown (not stated; ~24 GB class by arithmetic)"), Some(24.0));
        assert_eq!(nominal_gb("GB300"), None);
    }

    #[test]
    fn quantisation_comes_from_the_case() {
        let c = Case { model: "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8".into(), quantization: Some("gptq int8 (checkpoint)".into()), ..Case::default() };
        assert_eq!(case_quant(&c), Some(Quant::Gptq { bits: 8, group_size: Some(128), skip: vec![] }));
        let c = Case { model: "x/y-GGUF".into(), quantization: Some("gguf".into()), ..Case::default() };
        assert_eq!(case_quant(&c), None);
        let c = Case { model: "RedHatAI/Llama-3.3-70B-Instruct-quantized.w8a8".into(), quantization: Some("compressed-tensors".into()), ..Case::default() };
        assert_eq!(case_quant(&c), Some(Quant::Int8PerChannel { skip: vec![] }));
        assert_eq!(normalized_name(&c.model), "llama-3.3-70b");
        let c = Case { model: "unsloth/Llama-3.2-3B-Instruct-unsloth-bnb-4bit".into(), quantization: Some("bitsandbytes".into()), ..Case::default() };
        assert_eq!(case_quant(&c), Some(Quant::Bnb4 { double_quant: true, skip: vec![] }));
        assert_eq!(normalized_name(&c.model), "llama-3.2-3b");
        // "compressed-tensors" is the container; the case's text names the scheme
        let c = Case { model: "Qwen/Qwen3-32B (self-quantized, local dir)".into(), quantization: Some("compressed-tensors".into()), notes: Some("llm-compressor GPTQ W4A16, group 128".into()), ..Case::default() };
        assert_eq!(case_quant(&c), Some(Quant::Gptq { bits: 4, group_size: Some(128), skip: vec![] }));
        // a group size the field states
        let c = Case { model: "gaunernst/gemma-3-27b-it-int4-awq".into(), quantization: Some("awq (group size 32)".into()), ..Case::default() };
        assert_eq!(case_quant(&c), Some(Quant::Awq { bits: 4, group_size: Some(32), skip: vec![] }));
        assert_eq!(group_in("gptq g64 act-order"), Some(64));
        assert_eq!(group_in("awq_marlin"), None);
        let c = Case { quantization: Some("compressed-tensors".into()), ..Case::default() };
        assert_eq!(case_quant(&c), None);
        // `--quantization fp8` on an unquantised checkpoint is quantised by the engine at load
        let c = Case { quantization: Some("fp8".into()), ..Case::default() };
        assert_eq!(online_quant(&c), Some(QuantChoice::Fp8));
        let c = Case { quantization: Some("None".into()), ..Case::default() };
        assert_eq!(online_quant(&c), None);
    }

    #[test]
    fn settings_are_read_from_flags_and_argument_dumps() {
        assert_eq!(setting_in("vllm serve m --max-num-seqs 8 --enforce-eager", "max_num_seqs"), Some(8));
        assert_eq!(setting_in("--max-num-seqs=16", "max_num_seqs"), Some(16));
        assert_eq!(setting_in("gpu_memory_utilization=0.95, max_num_seqs=10. Logged: async", "max_num_seqs"), Some(10));
        assert_eq!(setting_in("max_num_seqs=1.5", "max_num_seqs"), None);
        assert_eq!(setting_in("args: Namespace(max_num_seqs=4, max_num_batched_tokens=None)", "max_num_seqs"), Some(4));
        assert_eq!(setting_in("args: Namespace(max_num_seqs=4, max_num_batched_tokens=None)", "max_num_batched_tokens"), None);
        assert_eq!(setting_in("non-default args: {'max_num_batched_tokens': 4096}", "max_num_batched_tokens"), Some(4096));
        assert_eq!(setting_in("profile_run uses max_num_batched_tokens = max_model_len", "max_num_batched_tokens"), None);
        assert_eq!(setting_in("max_num_seqs 2.5", "max_num_seqs"), None);
        // llama.cpp's physical batch, as logs and commands write it
        assert_eq!(setting_in("printed n_batch/n_ubatch 256, flash_attn 0", "n_ubatch"), Some(256));
        assert_eq!(setting_in("llama-server -m x.gguf --ubatch-size 128", "ubatch_size"), Some(128));
        assert_eq!(setting_in("llama-server -m x.gguf --ubatch-size 128", "-ub"), None);
        assert_eq!(setting_in("llama-cli -c 4096 -ub 64", "-ub"), Some(64));
        // fractional settings: a decimal point, a sentence's full stop, no number
        assert_eq!(setting_f64_in("Also --cpu-offload-gb 12 (logged)", "cpu_offload_gb"), Some(12.0));
        assert_eq!(setting_f64_in("cpu_offload_gb=12.5, swap_space=4", "cpu_offload_gb"), Some(12.5));
        assert_eq!(setting_f64_in("with --cpu-offload-gb 8.", "cpu_offload_gb"), Some(8.0));
        assert_eq!(setting_f64_in("--cpu-offload-gb N GiB", "cpu_offload_gb"), None);
        assert_eq!(setting_in("--cpu-offload-gb 12.5", "cpu_offload_gb"), None);
    }

    #[test]
    fn flashinfer_sampler_is_read_from_the_log() {
        assert_eq!(flashinfer_sampler_in("INFO [topk_topp_sampler.py:50] Using FlashInfer for top-p & top-k sampling."), Some(true));
        assert_eq!(flashinfer_sampler_in("FlashInfer is not available. Falling back to the PyTorch-native implementation of top-p & top-k sampling."), Some(false));
        assert_eq!(flashinfer_sampler_in("FlashInfer top-p/top-k sampling is available but disabled by default."), Some(false));
        assert_eq!(flashinfer_sampler_in("Using Flash Attention backend on V1 engine."), None);
    }

    #[test]
    fn flash_attention_is_read_from_figures_flags_and_log_lines() {
        let case = |figures: &str, notes: &str, quote: &str| -> Case {
            serde_json::from_value(serde_json::json!({"id": "t", "engine": "llama.cpp", "model": "m", "gpu": "RTX 4090", "figures": serde_json::from_str::<Value>(figures).unwrap(), "notes": notes, "quote": quote})).unwrap()
        };
        let fa = |c: Case| flash_attention_in(&c).map(|(b, _)| b);
        assert_eq!(fa(case(r#"{"flash_attn": 1}"#, "", "")), Some(true));
        assert_eq!(fa(case(r#"{"flash_attn": false}"#, "-fa", "")), Some(false));
        assert_eq!(fa(case("{}", "llama-server -m x.gguf -c 8192 -fa -ngl 99", "")), Some(true));
        assert_eq!(fa(case("{}", "llama-server -fa off -c 8192", "")), Some(false));
        assert_eq!(fa(case("{}", "--flash-attn=on", "")), Some(true));
        assert_eq!(fa(case("{}", "run with (-fa), n_ctx 8192", "")), Some(true));
        assert_eq!(fa(case("{}", "-fa auto", "")), None);
        assert_eq!(fa(case("{}", "", "llama_context: flash_attn    = 0")), Some(false));
        assert_eq!(fa(case("{}", "", "flash_attn=1")), Some(true));
        assert_eq!(fa(case("{}", "", "llama_context: flash_attn    = auto -> enabled")), Some(true));
        assert_eq!(fa(case("{}", "", "llama_context: flash_attn = auto\nFlash Attention was auto, set to disabled")), Some(false));
        // the log beats the prose around it
        assert_eq!(fa(case("{}", "the user passed -fa", "llama_context: flash_attn = 0")), Some(false));
        // not a flag: other words that contain it, or a flag said not to be used
        assert_eq!(fa(case("{}", "-fast mode, no-fa", "")), None);
        assert_eq!(fa(case("{}", "built and run without -fa", "")), None);
    }

    #[test]
    fn dtypes_are_read_in_the_spellings_logs_use() {
        for (text, want) in [("bfloat16", Some(FloatDtype::Bf16)), ("torch.bfloat16", Some(FloatDtype::Bf16)), ("half", Some(FloatDtype::F16)), ("fp16", Some(FloatDtype::F16)), ("float16 (AWQ)", Some(FloatDtype::F16)), ("float32", Some(FloatDtype::F32)), ("auto (bfloat16/float16)", None), ("Q4_K_M", None)] {
            let c = Case { dtype: Some(text.into()), ..Case::default() };
            assert_eq!(case_float(&c), want, "{text}");
        }
    }

    #[test]
    fn gpu_memory_comes_from_the_catalog_or_a_modelled_reserve() {
        let mem = |gpu: &str| case_memory_gib(&Case { gpu: gpu.into(), ..Case::default() }, Engine::Vllm).map(|(m, _)| m);
        assert_eq!(mem("NVIDIA A100-SXM4-40GB"), Some(39.38));
        assert_eq!(mem("NVIDIA B200"), Some(178.35));
        // GH200 is not an H200, and its "480GB" counts the CPU's LPDDR: the 96 GB board
        assert_eq!(mem("NVIDIA GH200 480GB"), Some(95.11));
        // a board the catalog lacks keeps its size less the driver's share
        assert_eq!(mem("NVIDIA GB300 288GB"), Some(288.0 - crate::gpu::DRIVER_RESERVE_GIB));
        assert_eq!(mem("NVIDIA GB200"), Some(184.31));
        assert_eq!(mem("AMD Radeon RX 7900 XTX 24GB"), Some(24.0));
        // a size class with no maker named: a CUDA board's total, less the driver's share
        assert_eq!(mem("24 GB-class consumer GPU (inferred)"), Some(24.0 - crate::gpu::DRIVER_RESERVE_GIB));
        assert_eq!(mem("24 GB-class AMD GPU"), Some(24.0));
        assert_eq!(mem("a GPU"), None);
    }
}
