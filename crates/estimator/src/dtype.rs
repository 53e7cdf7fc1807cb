//! Element types: the dtype weights are stored in, the KV-cache dtype, and weight quantisation
//! schemes with their exact storage layouts.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A dense floating-point element type for weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FloatDtype {
    F32,
    F16,
    Bf16,
}

impl FloatDtype {
    pub fn bytes(self) -> u64 {
        match self {
            FloatDtype::F32 => 4,
            FloatDtype::F16 | FloatDtype::Bf16 => 2,
        }
    }
    /// Parses Hugging Face `torch_dtype` spellings.
    pub fn from_hf(s: &str) -> Option<FloatDtype> {
        match s.trim().trim_start_matches("torch.") {
            "float32" | "fp32" | "f32" | "float" => Some(FloatDtype::F32),
            "float16" | "fp16" | "f16" | "half" => Some(FloatDtype::F16),
            "bfloat16" | "bf16" => Some(FloatDtype::Bf16),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FloatDtype::F32 => "fp32",
            FloatDtype::F16 => "fp16",
            FloatDtype::Bf16 => "bf16",
        }
    }
}

/// The weight precision a user picks. `Auto` keeps the checkpoint (its dtype and its
/// `quantization_config`); the integer and fp8 choices quantise the linear layers only, as vLLM's
/// `--quantization fp8` and AWQ/GPTQ checkpoints do: embeddings, norms and the LM head stay in 16 bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    #[default]
    Auto,
    Fp32,
    Bf16,
    Fp16,
    Fp8,
    Int8,
    Int4,
}

impl WeightDtype {
    pub const ALL: [WeightDtype; 7] =
        [WeightDtype::Auto, WeightDtype::Fp32, WeightDtype::Bf16, WeightDtype::Fp16, WeightDtype::Fp8, WeightDtype::Int8, WeightDtype::Int4];
    pub fn as_str(self) -> &'static str {
        match self {
            WeightDtype::Auto => "auto",
            WeightDtype::Fp32 => "fp32",
            WeightDtype::Bf16 => "bf16",
            WeightDtype::Fp16 => "fp16",
            WeightDtype::Fp8 => "fp8",
            WeightDtype::Int8 => "int8",
            WeightDtype::Int4 => "int4",
        }
    }
}

impl FromStr for WeightDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => WeightDtype::Auto,
            "fp32" | "float32" | "f32" => WeightDtype::Fp32,
            "bf16" | "bfloat16" => WeightDtype::Bf16,
            "fp16" | "float16" | "f16" | "half" => WeightDtype::Fp16,
            "fp8" | "float8" => WeightDtype::Fp8,
            "int8" | "i8" => WeightDtype::Int8,
            "int4" | "i4" => WeightDtype::Int4,
            _ => return Err(Error::scenario("dtype", s, "auto, fp32, bf16, fp16, fp8, int8 or int4")),
        })
    }
}

impl fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// KV-cache element type. Sizes are exact rationals: llama.cpp's q8_0 stores 32 values in 34 bytes
/// (32 int8 + one fp16 scale), q4_0 in 18 bytes (ggml `block_q8_0` / `block_q4_0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KvDtype {
    /// The activation dtype of the model (vLLM `--kv-cache-dtype auto`).
    #[default]
    Auto,
    Fp32,
    Fp16,
    Bf16,
    Fp8,
    Int8,
    Q8_0,
    Q4_0,
    /// NVFP4 (vLLM from 0.20, SGLang): per head, `head_dim / 2` bytes of 4-bit values and
    /// `head_dim / 16` fp8 block scales (`nvfp4_kv_cache_full_dim`): 9/16 B per value.
    Nvfp4,
}

/// `(values, bytes)` per block as `(bytes, values)`.
fn swap((values, bytes): (u64, u64)) -> (u64, u64) {
    (bytes, values)
}

impl KvDtype {
    pub const ALL: [KvDtype; 9] =
        [KvDtype::Auto, KvDtype::Fp32, KvDtype::Fp16, KvDtype::Bf16, KvDtype::Fp8, KvDtype::Int8, KvDtype::Nvfp4, KvDtype::Q8_0, KvDtype::Q4_0];
    /// Bytes per element as `(numerator, denominator)`; `Auto` must be resolved first.
    pub fn ratio(self, activation: FloatDtype) -> (u64, u64) {
        match self {
            KvDtype::Auto => (activation.bytes(), 1),
            KvDtype::Fp32 => (4, 1),
            KvDtype::Fp16 | KvDtype::Bf16 => (2, 1),
            KvDtype::Fp8 | KvDtype::Int8 => (1, 1),
            // ggml's blocks, as the weights use them
            KvDtype::Q8_0 => swap(crate::gguf::GgmlType::Q8_0.block()),
            KvDtype::Q4_0 => swap(crate::gguf::GgmlType::Q4_0.block()),
            KvDtype::Nvfp4 => (9, 16),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            KvDtype::Auto => "auto",
            KvDtype::Fp32 => "fp32",
            KvDtype::Fp16 => "fp16",
            KvDtype::Bf16 => "bf16",
            KvDtype::Fp8 => "fp8",
            KvDtype::Int8 => "int8",
            KvDtype::Q8_0 => "q8_0",
            KvDtype::Q4_0 => "q4_0",
            KvDtype::Nvfp4 => "nvfp4",
        }
    }
}

impl FromStr for KvDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => KvDtype::Auto,
            "fp32" | "float32" | "f32" => KvDtype::Fp32,
            "fp16" | "float16" | "f16" | "half" => KvDtype::Fp16,
            "bf16" | "bfloat16" => KvDtype::Bf16,
            "fp8" | "fp8_e4m3" | "fp8_e5m2" | "float8" => KvDtype::Fp8,
            "int8" | "i8" => KvDtype::Int8,
            "q8_0" => KvDtype::Q8_0,
            "q4_0" => KvDtype::Q4_0,
            "nvfp4" => KvDtype::Nvfp4,
            _ => return Err(Error::scenario("kv_dtype", s, "auto, fp32, fp16, bf16, fp8, int8, nvfp4, q8_0 or q4_0")),
        })
    }
}

impl fmt::Display for KvDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A weight quantisation scheme with the parameters that decide its exact storage size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Quant {
    /// AutoAWQ: packed `qweight` (bits per value), `qzeros` (bits per group and output), fp16 `scales`.
    Awq { bits: u64, group_size: Option<u64>, skip: Vec<String> },
    /// GPTQ: as AWQ plus an int32 `g_idx` per input feature.
    Gptq { bits: u64, group_size: Option<u64>, skip: Vec<String> },
    /// FP8 weights (1 byte) with fp32 scales per `block` (DeepSeek-V3 style 128x128) or per tensor.
    Fp8 { block: Option<[u64; 2]>, skip: Vec<String> },
    /// Integer weights with one fp32 scale per output channel (W8A8 / `--dtype int8`).
    Int8PerChannel { skip: Vec<String> },
    /// OCP MXFP4: 4-bit values with one shared 8-bit exponent per 32 values (4.25 bits per value).
    Mxfp4 { skip: Vec<String> },
    /// NVIDIA NVFP4 (ModelOpt `quant_algo: NVFP4`, compressed-tensors `nvfp4-pack-quantized`):
    /// 4-bit E2M1 values, one FP8 E4M3 scale per 16 input values, and two fp32 scalars per
    /// matrix (the global weight scale and the input scale): 4.5 bits per value. A fused matrix
    /// (gate and up) is counted with one pair of scalars, 8 B less than the checkpoint's two.
    Nvfp4 { skip: Vec<String> },
    /// bitsandbytes NF4/FP4: 4-bit values, one absmax per 64 values (fp32, or 8-bit with double quantisation).
    Bnb4 { double_quant: bool, skip: Vec<String> },
    /// bitsandbytes LLM.int8(): int8 values with an fp32 scale per output row.
    Bnb8 { skip: Vec<String> },
    /// A llama.cpp GGUF preset: a per-tensor mix of ggml types ([`crate::gguf`]).
    Gguf { ftype: crate::gguf::GgufType },
}

impl Quant {
    pub fn name(&self) -> String {
        match self {
            Quant::Awq { bits, group_size, .. } => format!("awq w{bits} g{}", group_size.map_or("-1".into(), |g| g.to_string())),
            Quant::Gptq { bits, group_size, .. } => format!("gptq w{bits} g{}", group_size.map_or("-1".into(), |g| g.to_string())),
            Quant::Fp8 { block: Some([a, b]), .. } => format!("fp8 block {a}x{b}"),
            Quant::Fp8 { block: None, .. } => "fp8 per-tensor".into(),
            Quant::Int8PerChannel { .. } => "int8 per-channel".into(),
            Quant::Mxfp4 { .. } => "mxfp4".into(),
            Quant::Nvfp4 { .. } => "nvfp4".into(),
            Quant::Bnb4 { double_quant, .. } => format!("bitsandbytes 4-bit{}", if *double_quant { " (double quant)" } else { "" }),
            Quant::Bnb8 { .. } => "bitsandbytes 8-bit".into(),
            Quant::Gguf { ftype } => format!("gguf {}", ftype.as_str().to_ascii_uppercase()),
        }
    }
    /// Module-name patterns the checkpoint leaves unquantised (`modules_to_not_convert`, `ignore`).
    pub fn skip(&self) -> &[String] {
        match self {
            Quant::Awq { skip, .. }
            | Quant::Gptq { skip, .. }
            | Quant::Fp8 { skip, .. }
            | Quant::Int8PerChannel { skip }
            | Quant::Mxfp4 { skip }
            | Quant::Nvfp4 { skip }
            | Quant::Bnb4 { skip, .. }
            | Quant::Bnb8 { skip } => skip,
            Quant::Gguf { .. } => &[],
        }
    }

    /// Bytes of the shared 8-bit exponents (one per 32 values) of a `rows x cols` MXFP4 matrix.
    pub fn mxfp4_scale_bytes(rows: u64, cols: u64) -> u64 {
        u64::try_from((rows as u128 * cols as u128).div_ceil(32)).unwrap_or(u64::MAX)
    }

    /// Bytes of the packed values alone of a `rows x cols` linear weight (without scales, zeros
    /// and indices, which engines keep in tensors of their own).
    pub fn packed_bytes(&self, rows: u64, cols: u64) -> u64 {
        let elems = (rows as u128) * (cols as u128);
        let b = match self {
            Quant::Awq { bits, .. } | Quant::Gptq { bits, .. } => (elems * *bits as u128).div_ceil(8),
            Quant::Fp8 { .. } | Quant::Int8PerChannel { .. } | Quant::Bnb8 { .. } => elems,
            Quant::Mxfp4 { .. } | Quant::Nvfp4 { .. } | Quant::Bnb4 { .. } => elems.div_ceil(2),
            Quant::Gguf { .. } => return self.matrix_bytes(rows, cols),
        };
        u64::try_from(b).unwrap_or(u64::MAX)
    }

    /// Exact stored bytes of one `rows x cols` linear weight (rows = output features).
    /// Sources: AutoAWQ `WQLinear_GEMM` buffers, AutoGPTQ `QuantLinear` buffers, DeepSeek-V3
    /// `weight_scale_inv`, OCP MX spec, ModelOpt NVFP4 (`weight` u8 `[N, K/2]`, `weight_scale`
    /// fp8 `[N, K/16]`, `weight_scale_2` and `input_scale` fp32), bitsandbytes `Params4bit` /
    /// `Int8Params`.
    pub fn matrix_bytes(&self, rows: u64, cols: u64) -> u64 {
        let elems = (rows as u128) * (cols as u128);
        let groups = |g: Option<u64>| -> u128 {
            match g {
                Some(g) if g > 0 => cols.div_ceil(g) as u128,
                _ => 1,
            }
        };
        let b: u128 = match self {
            Quant::Awq { bits, group_size, .. } => {
                let bits = *bits as u128;
                let g = groups(*group_size);
                (elems * bits).div_ceil(8) + (g * rows as u128 * bits).div_ceil(8) + g * rows as u128 * 2
            }
            Quant::Gptq { bits, group_size, .. } => {
                let bits = *bits as u128;
                let g = groups(*group_size);
                (elems * bits).div_ceil(8) + (g * rows as u128 * bits).div_ceil(8) + g * rows as u128 * 2 + cols as u128 * 4
            }
            Quant::Fp8 { block: Some([br, bc]), .. } => {
                elems + (rows.div_ceil((*br).max(1)) as u128) * (cols.div_ceil((*bc).max(1)) as u128) * 4
            }
            Quant::Fp8 { block: None, .. } => elems + 4,
            Quant::Int8PerChannel { .. } => elems + rows as u128 * 4,
            Quant::Mxfp4 { .. } => elems.div_ceil(2) + Quant::mxfp4_scale_bytes(rows, cols) as u128,
            Quant::Nvfp4 { .. } => elems.div_ceil(2) + rows as u128 * cols.div_ceil(16) as u128 + 8,
            Quant::Bnb4 { double_quant, .. } => {
                let blocks = elems.div_ceil(64);
                if *double_quant {
                    elems.div_ceil(2) + blocks + blocks.div_ceil(256) * 4
                } else {
                    elems.div_ceil(2) + blocks * 4
                }
            }
            Quant::Bnb8 { .. } => elems + rows as u128 * 4,
            // the preset's base type; the per-tensor rules need the tensor's place ([`crate::gguf::place`])
            Quant::Gguf { ftype } => ftype.base().row_bytes(cols) * rows as u128,
        };
        u64::try_from(b).unwrap_or(u64::MAX)
    }
}

/// The quantisation a user asks for in a scenario. `Auto` uses the checkpoint's `quantization_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QuantChoice {
    #[default]
    Auto,
    None,
    Awq,
    Gptq,
    Fp8,
    Mxfp4,
    Nvfp4,
    Bnb4,
    Bnb8,
    /// int8 weights with one scale per output channel (compressed-tensors W8A8, SGLang `w8a8_int8`).
    Int8,
    /// The checkpoint's own `quantization_config`, which it must have: what an engine's method
    /// name that only says where to read the scheme (`compressed-tensors`, `modelopt`,
    /// `fbgemm_fp8`, `moe_wna16`, `quark`) asks for. Unlike `auto`, a checkpoint without one is an error.
    Checkpoint,
    /// llama.cpp GGUF presets.
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q6_k")]
    Q6K,
    #[serde(rename = "q5_k_m")]
    Q5KM,
    #[serde(rename = "q5_k_s")]
    Q5KS,
    #[serde(rename = "q4_k_m")]
    Q4KM,
    #[serde(rename = "q4_k_s")]
    Q4KS,
    #[serde(rename = "q4_0")]
    Q4_0,
}

impl QuantChoice {
    /// The usual choices. `Checkpoint` is left out: it is `auto` that also refuses a checkpoint
    /// without a `quantization_config`, which is what the engines' container names (compressed-tensors,
    /// modelopt) mean on the command line; the page lists it last.
    pub const ALL: [QuantChoice; 17] = [
        QuantChoice::Auto,
        QuantChoice::None,
        QuantChoice::Awq,
        QuantChoice::Gptq,
        QuantChoice::Fp8,
        QuantChoice::Int8,
        QuantChoice::Mxfp4,
        QuantChoice::Nvfp4,
        QuantChoice::Bnb4,
        QuantChoice::Bnb8,
        QuantChoice::Q8_0,
        QuantChoice::Q6K,
        QuantChoice::Q5KM,
        QuantChoice::Q5KS,
        QuantChoice::Q4KM,
        QuantChoice::Q4KS,
        QuantChoice::Q4_0,
    ];
    /// The GGUF preset this choice names, if it is one.
    pub fn gguf(self) -> Option<crate::gguf::GgufType> {
        use crate::gguf::GgufType as G;
        Some(match self {
            QuantChoice::Q8_0 => G::Q8_0,
            QuantChoice::Q6K => G::Q6K,
            QuantChoice::Q5KM => G::Q5KM,
            QuantChoice::Q5KS => G::Q5KS,
            QuantChoice::Q4KM => G::Q4KM,
            QuantChoice::Q4KS => G::Q4KS,
            QuantChoice::Q4_0 => G::Q4_0,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            QuantChoice::Auto => "auto",
            QuantChoice::None => "none",
            QuantChoice::Awq => "awq",
            QuantChoice::Gptq => "gptq",
            QuantChoice::Fp8 => "fp8",
            QuantChoice::Mxfp4 => "mxfp4",
            QuantChoice::Nvfp4 => "nvfp4",
            QuantChoice::Bnb4 => "bnb4",
            QuantChoice::Bnb8 => "bnb8",
            QuantChoice::Int8 => "int8",
            QuantChoice::Checkpoint => "checkpoint",
            other => other.gguf().map_or("auto", crate::gguf::GgufType::as_str),
        }
    }
    /// The scheme this choice stands for when the checkpoint does not say more (AWQ/GPTQ: 4 bit,
    /// group 128, the common published setting).
    pub fn default_scheme(self) -> Option<Quant> {
        match self {
            QuantChoice::Auto | QuantChoice::None | QuantChoice::Checkpoint => None,
            QuantChoice::Awq => Some(Quant::Awq { bits: 4, group_size: Some(128), skip: vec![] }),
            QuantChoice::Gptq => Some(Quant::Gptq { bits: 4, group_size: Some(128), skip: vec![] }),
            QuantChoice::Fp8 => Some(Quant::Fp8 { block: None, skip: vec![] }),
            QuantChoice::Mxfp4 => Some(Quant::Mxfp4 { skip: vec![] }),
            QuantChoice::Nvfp4 => Some(Quant::Nvfp4 { skip: vec![] }),
            QuantChoice::Bnb4 => Some(Quant::Bnb4 { double_quant: false, skip: vec![] }),
            QuantChoice::Bnb8 => Some(Quant::Bnb8 { skip: vec![] }),
            QuantChoice::Int8 => Some(Quant::Int8PerChannel { skip: vec![] }),
            other => other.gguf().map(|ftype| Quant::Gguf { ftype }),
        }
    }
}

impl FromStr for QuantChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => QuantChoice::Auto,
            "none" | "no" => QuantChoice::None,
            "awq" | "awq_marlin" => QuantChoice::Awq,
            // compressed-tensors W4A16 packs 4-bit weights with group-128 scales, sized as GPTQ
            "gptq" | "gptq_marlin" | "w4a16" => QuantChoice::Gptq,
            "fp8" | "w8a8_fp8" => QuantChoice::Fp8,
            "int8" | "w8a8" | "w8a8_int8" => QuantChoice::Int8,
            "mxfp4" => QuantChoice::Mxfp4,
            "nvfp4" | "modelopt_fp4" | "fp4" => QuantChoice::Nvfp4,
            "bnb4" | "bitsandbytes" | "bnb-4bit" | "nf4" => QuantChoice::Bnb4,
            "bnb8" | "bnb-8bit" | "llm.int8" => QuantChoice::Bnb8,
            "checkpoint" | "compressed-tensors" | "compressed_tensors" | "modelopt" | "fbgemm_fp8" | "moe_wna16" | "quark" => QuantChoice::Checkpoint,
            other => match crate::gguf::GgufType::parse(other) {
                Some(t) => *QuantChoice::ALL.iter().find(|c| c.gguf() == Some(t)).unwrap_or(&QuantChoice::Auto),
                None => return Err(Error::scenario("quantization", s, "auto, none, awq, gptq (w4a16), fp8, int8 (w8a8), mxfp4, nvfp4, bnb4, bnb8, checkpoint (an engine method that reads the scheme from config.json: compressed-tensors, modelopt, fbgemm_fp8, moe_wna16, quark), or a llama.cpp GGUF preset: q8_0, q6_k, q5_k_m, q5_k_s, q4_k_m, q4_k_s, q4_0")),
            },
        })
    }
}

impl fmt::Display for QuantChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn awq_layout_is_exact() {
        // 4096 x 4096, 4 bit, group 128: qweight 8 MiB, qzeros 32 x 4096 x 4 bit, scales 32 x 4096 x 2 B.
        let q = Quant::Awq { bits: 4, group_size: Some(128), skip: vec![] };
        assert_eq!(q.matrix_bytes(4096, 4096), 8_388_608 + 65_536 + 262_144);
    }
    #[test]
    fn nvfp4_is_4_5_bits_plus_two_scalars() {
        // 4096 x 4096: 8 MiB of nibbles, 4096 x 256 fp8 block scales, weight_scale_2 and input_scale
        let q = Quant::Nvfp4 { skip: vec![] };
        assert_eq!(q.matrix_bytes(4096, 4096), 8_388_608 + 1_048_576 + 8);
        assert_eq!(q.packed_bytes(4096, 4096), 8_388_608);
        assert_eq!("modelopt_fp4".parse::<QuantChoice>().unwrap(), QuantChoice::Nvfp4);
    }
    #[test]
    fn mxfp4_is_4_25_bits() {
        let q = Quant::Mxfp4 { skip: vec![] };
        assert_eq!(q.matrix_bytes(32, 32), 512 + 32);
    }
    #[test]
    fn llama_cpp_quant_ratios() {
        assert_eq!(KvDtype::Q8_0.ratio(FloatDtype::F16), (34, 32));
        assert_eq!(KvDtype::Q4_0.ratio(FloatDtype::F16), (18, 32));
        assert_eq!(KvDtype::Auto.ratio(FloatDtype::Bf16), (2, 1));
        // vLLM's nvfp4_kv_cache_full_dim(128) = 64 + 8 bytes per head
        let (b, v) = KvDtype::Nvfp4.ratio(FloatDtype::Bf16);
        assert_eq!(128 * b / v, 64 + 8);
    }
    #[test]
    fn parse_errors_name_the_param() {
        let e = "int3".parse::<WeightDtype>().unwrap_err();
        assert!(e.to_string().contains("dtype"));
    }
}
