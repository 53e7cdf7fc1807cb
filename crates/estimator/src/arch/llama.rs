//! Llama 2/3/3.x (`llama`), Mistral (`mistral`, sliding window on every layer when set), and the
//! Llama-shaped families that reuse `LlamaForCausalLM` (Yi, DeepSeek-LLM, SmolLM, Falcon3,
//! InternLM2, Cohere, EXAONE); Command A (`cohere2`: Cohere's tied head and single norm, a
//! sliding window on every layer but each `sliding_window_pattern`-th); Seed-OSS (`seed_oss`:
//! bias on q/k/v from `attention_bias`, on the output projection only with
//! `attention_out_bias`); Baichuan 2 (`baichuan`: multi-head attention
//! through one fused `W_pack`, ALiBi instead of RoPE at 13B, the context from `model_max_length`
//! when the file has no `max_position_embeddings`); Llama 4 (`llama4`: nested `text_config`, MoE every
//! `interleave_moe_layer_step` layers with a shared expert, chunked attention on RoPE layers and
//! full attention on the NoPE layers); Llama 3.2 Vision (`mllama`: cross-attention layers that keep
//! no per-token text cache); Mistral 3 and LLaVA (`mistral3`, `llava`: a Mistral or Llama text
//! model with a vision tower, see `vision.rs`); the Llama layouts with a two-matrix MLP
//! (`up_proj`, `down_proj`, no gate): Apertus (`apertus`: xIELU with two learned scalars per
//! layer, per-head q/k norms), Arcee AFM (`arcee`: ReLU squared) and Nemotron-4 / Minitron
//! (`nemotron`: ReLU squared, LayerNorm1p norms with a bias, partial rotary). GQA:
//! `num_key_value_heads` < `num_attention_heads`.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    // Mistral 3 (`mistral3`: Mistral Small 3.1/3.2, Devstral, Magistral) and LLaVA nest a Mistral
    // or Llama text model beside a vision tower
    let text_type = cx.raw.json.get("text_model_type").and_then(Value::as_str).unwrap_or("").to_string();
    let mistral = cx.model_type == "mistral" || text_type == "mistral";
    let (c, inter) = if cx.model_type.starts_with("llava") {
        llava_text(cx, mistral)?
    } else {
        (cx.common()?, cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?)
    };
    // Cohere (Command R): CohereConfig ties the head to the embeddings unless told otherwise, and
    // each layer has one norm before its parallel attention and MLP (and per-head q/k norms over
    // every head when `use_qk_norm`, Command R+)
    // Command A (`cohere2`): Cohere's layout with a sliding window on three layers in four
    // (`layer_types`, else every layer but each `sliding_window_pattern`-th; the full layers use no
    // RoPE, which changes no size)
    let cohere2 = cx.model_type == "cohere2";
    let cohere = cx.model_type == "cohere" || cohere2;
    let tied = cx.tied(cohere);
    let pattern = if cohere2 && cx.raw.layer_types.is_none() {
        Some(cx.or(cx.raw.sliding_window_pattern, "sliding_window_pattern", 4, "absent: Cohere2Config default (3 sliding : 1 full)")?)
    } else {
        None
    };
    let window = |cx: &Cx, i: usize| if cohere2 { interleaved_window(cx, i, pattern) } else { window_for(cx, i, true) };
    let qk = if cohere && cx.opt_bool("use_qk_norm")?.unwrap_or(false) { QkNorm::Full } else { QkNorm::None };
    let bias = cx.raw.attention_bias.unwrap_or(false);
    let seed_oss = cx.model_type == "seed_oss";
    // SeedOssConfig: `attention_bias` (q/k/v) defaults to true, `attention_out_bias` to false
    let attn_bias = if seed_oss {
        let qkv = cx.flag(cx.raw.attention_bias, "attention_bias", true, "absent: SeedOssConfig default");
        let o = cx.opt_bool("attention_out_bias")?;
        AttnBias { qkv, o: cx.flag(o, "attention_out_bias", false, "absent: SeedOssConfig default") }
    } else {
        AttnBias { qkv: bias, o: bias }
    };
    let mlp_bias = cx.raw.mlp_bias.unwrap_or(false);
    // Apertus, Arcee and Nemotron: `up_proj` then `down_proj` (transformers' ApertusMLP,
    // ArceeMLP, NemotronMLP; vLLM builds the same), no gate
    let two_matrix = matches!(cx.model_type.as_str(), "apertus" | "arcee" | "nemotron");
    let apertus = cx.model_type == "apertus";
    // Nemotron's LayerNorm1p keeps a bias beside its weight, in every layer and at the end
    let norm_bias = cx.model_type == "nemotron";
    let qk = if apertus { QkNorm::PerHead } else { qk };
    if cx.model_type == "baichuan" && cx.raw.max_position_embeddings.is_none() {
        if let Some(n) = cx.opt_u64("model_max_length")? {
            cx.positions_default(n, "absent: Baichuan's `model_max_length`, which vLLM reads as the context length");
        }
    }
    let family = match cx.model_type.as_str() {
        _ if mistral => Family::Mistral,
        "seed_oss" => Family::SeedOss,
        "cohere2" => Family::Cohere2,
        "baichuan" => Family::Baichuan,
        "apertus" => Family::Apertus,
        "arcee" => Family::Arcee,
        "nemotron" => Family::Nemotron,
        _ => Family::Llama,
    };
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = attention(&c, attn_bias, qk, window(cx, i), &mut t);
            if two_matrix {
                plain_mlp("mlp", Role::Mlp, c.hidden, inter, mlp_bias, &mut t);
            } else {
                gated_mlp("mlp", Role::Mlp, c.hidden, inter, mlp_bias, &mut t);
            }
            if apertus {
                // xIELU's `alpha_p` and `alpha_n`, one value each
                t.push(Tensor::new("mlp.act_fn.alpha", Role::Norm, 2, 1, Split::Replicated));
            }
            norms("norms", if cohere { 1 } else { 2 }, c.hidden, norm_bias, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, c.hidden, tied, norm_bias, false);
    vision::add_encoder(cx, c.hidden, &mut g);
    cx.finish(family, &c, inter, tied, g, layers)
}

/// LLaVA builds its text model from `text_config` with the Llama (or Mistral) config class, whose
/// defaults fill what the file leaves out (llava-1.5-7b-hf gives only its vocabulary and length):
/// 4096 wide, 32 layers of 32 heads, an MLP of 11008 (Mistral: 14336 and 8 KV heads), vocabulary
/// 32000, 2048 positions (Mistral: 131072). Each default used is recorded.
fn llava_text(cx: &mut Cx, mistral: bool) -> Result<(Common, u64)> {
    let r = cx.raw;
    let why = if mistral { "absent in text_config: MistralConfig default" } else { "absent in text_config: LlamaConfig default" };
    let hidden = cx.or(r.hidden_size, "hidden_size", 4096, why)?;
    let layers = cx.or(r.num_hidden_layers, "num_hidden_layers", 32, why)?;
    let heads = cx.or(r.num_attention_heads, "num_attention_heads", 32, why)?;
    let kv_heads = cx.or(r.num_key_value_heads, "num_key_value_heads", if mistral { 8 } else { heads }, why)?;
    let vocab = cx.or(r.vocab_size, "vocab_size", 32_000, why)?;
    let inter = cx.or(r.intermediate_size, "intermediate_size", if mistral { 14_336 } else { 11_008 }, why)?;
    let head_dim = cx.head_dim(hidden, heads, kv_heads, None)?;
    cx.positions_default(if mistral { 131_072 } else { 2048 }, why);
    Ok((Common { hidden, layers, heads, kv_heads, head_dim, vocab }, inter))
}

pub(crate) fn resolve_llama4(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let expert_inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "expert weights")?;
    let dense_inter = cx.or(cx.raw.intermediate_size_mlp, "intermediate_size_mlp", expert_inter * 2, "absent: Llama 4 default (2 x intermediate_size)")?;
    let experts = cx.or(cx.raw.num_experts, "num_local_experts", 16, "absent: Llama4TextConfig default")?;
    let top_k = cx.or(cx.raw.num_experts_per_tok, "num_experts_per_tok", 1, "absent: Llama4TextConfig default")?;
    let step = cx.or(cx.raw.interleave_moe_layer_step, "interleave_moe_layer_step", 1, "absent: every layer is MoE")?;
    let chunk = cx.or(cx.raw.attention_chunk_size, "attention_chunk_size", 8192, "absent: Llama4TextConfig default")?;
    let nope: Vec<u64> = match &cx.raw.no_rope_layers {
        Some(v) if v.len() as u64 == c.layers => v.clone(),
        _ => {
            cx.default("no_rope_layers", "every 4th layer NoPE", "absent: Llama4TextConfig default (1 = RoPE + chunked, 0 = NoPE + full)");
            (0..c.layers).map(|i| u64::from((i + 1) % 4 != 0)).collect()
        }
    };
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let window = if nope[i] == 1 { Window::Chunked(chunk) } else { Window::Full };
            let mixer = attention(&c, AttnBias::default(), QkNorm::None, window, &mut t);
            if (i as u64 + 1) % step == 0 {
                moe(c.hidden, experts, top_k, expert_inter, true, &mut t);
                gated_mlp("mlp.shared_expert", Role::SharedExpert, c.hidden, expert_inter, false, &mut t);
            } else {
                gated_mlp("mlp", Role::Mlp, c.hidden, dense_inter, false, &mut t);
            }
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, c.hidden, tied, false, false);
    vision::add_encoder(cx, c.hidden, &mut g);
    cx.finish(Family::Llama4, &c, dense_inter, tied, g, layers)
}

pub(crate) fn resolve_mllama(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let tied = cx.tied(false);
    let cross: Vec<u64> = cx.raw.cross_attention_layers.clone().unwrap_or_default();
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = if cross.contains(&(i as u64)) {
                attention(&c, AttnBias::default(), QkNorm::PerHead, Window::Full, &mut t);
                t.push(Tensor::new("cross_attn.gates", Role::Norm, 2, 1, Split::Replicated));
                Mixer::CrossAttention { kv_heads: c.kv_heads, head_dim: c.head_dim }
            } else {
                attention(&c, AttnBias::default(), QkNorm::None, Window::Full, &mut t)
            };
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    // MllamaTextModel's embedding has 8 extra rows for the image special tokens
    let mut g = vec![Tensor::new("embed_tokens", Role::Embedding, c.vocab + 8, c.hidden, Split::Column)];
    norms("norm", 1, c.hidden, false, &mut g);
    if !tied {
        g.push(Tensor::new("lm_head", Role::LmHead, c.vocab, c.hidden, Split::Column));
    }
    vision::add_encoder(cx, c.hidden, &mut g);
    cx.note("cross-attention layers cache image-token K/V once per request (not per text token); not counted in KV per token");
    cx.finish(Family::Mllama, &c, inter, tied, g, layers)
}
