//! DeepSeek MoE (`deepseek`: MHA, `first_k_dense_replace` dense layers, routed + shared experts),
//! DeepSeek-V2/V2.5/V3/R1, Kimi-K2 and GLM-4.7-Flash (`deepseek_v2`, `deepseek_v3`, `kimi_k2`,
//! `glm4_moe_lite`, which vLLM builds on its DeepSeek-V2 classes): multi-head latent
//! attention. MLA caches, per token and layer, one compressed latent of `kv_lora_rank` values plus
//! one shared rope key of `qk_rope_head_dim` values (576 for V3), not per-head K and V; vLLM and
//! SGLang keep that latent whole on every tensor-parallel rank. Query low-rank projection when
//! `q_lora_rank` is set (V2-Lite has none). V3 routers carry an `e_score_correction_bias`.
//! Multi-token-prediction layers (`num_nextn_predict_layers`) ship in the checkpoint but are not
//! loaded for plain serving, so they are not counted. DeepSeek-V3.2 (`deepseek_v32`): V3's layers
//! plus DeepSeek Sparse Attention's lightning indexer in every layer (the reference
//! `inference/model.py` and vLLM's `Indexer`): `wq_b` (`q_lora_rank` -> `index_n_heads x
//! index_head_dim`) and `wk` (hidden -> `index_head_dim`), FP8 in the checkpoint; `weights_proj`
//! (hidden -> `index_n_heads`), kept in bf16; `k_norm`, a LayerNorm with bias. vLLM and SGLang
//! replicate the indexer on every tensor-parallel rank. It caches one `index_head_dim` key per token
//! and layer beside the latent (`kv.rs`).

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let mt = cx.model_type.clone();
    let mla = mt != "deepseek";
    // MLA heads are `qk_nope_head_dim + qk_rope_head_dim` wide whatever the hidden size, which
    // GLM-4.7-Flash's 20 heads do not divide (2048): only then is that width the head size recorded
    let r = cx.raw;
    let mla_head = match (r.head_dim, r.hidden_size, r.num_attention_heads, r.qk_nope_head_dim, r.qk_rope_head_dim) {
        (None, Some(h), Some(n), Some(nope), Some(rope)) if mla && n > 0 && h % n != 0 => Some(nope.saturating_add(rope)),
        _ => None,
    };
    let c = cx.common_with_head_dim(mla_head.map(|d| (d, "absent: MLA, qk_nope_head_dim + qk_rope_head_dim (hidden_size is not a multiple of the heads)")))?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "dense MLP weights")?;
    let experts = cx.raw.num_experts.unwrap_or(0);
    let (top_k, moe_inter) = if experts > 0 {
        (
            cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")?,
            cx.req(cx.raw.moe_intermediate_size, "moe_intermediate_size", "expert weights")?,
        )
    } else {
        (0, 0)
    };
    let shared = cx.bounded(cx.raw.n_shared_experts.unwrap_or(0), "n_shared_experts")?;
    let first_dense = cx.raw.first_k_dense_replace.unwrap_or(0);
    let freq = cx.raw.moe_layer_freq.unwrap_or(1).max(1);
    let v3 = matches!(mt.as_str(), "deepseek_v3" | "deepseek_v32" | "kimi_k2" | "glm4_moe_lite");
    let sparse = mt == "deepseek_v32";
    let indexer = if sparse {
        let dim = cx.opt_u64("index_head_dim")?;
        let heads = cx.opt_u64("index_n_heads")?;
        let q_lora = cx.raw.q_lora_rank.filter(|&r| r > 0);
        Some((
            cx.req(dim, "index_head_dim", "the sparse-attention indexer and its key cache")?,
            cx.req(heads, "index_n_heads", "the sparse-attention indexer")?,
            cx.req(q_lora, "q_lora_rank", "the sparse-attention indexer's query projection")?,
        ))
    } else {
        None
    };
    let tied = cx.tied(false);
    let mla_dims = if mla {
        Some((
            cx.req(cx.raw.kv_lora_rank, "kv_lora_rank", "the MLA latent cache")?,
            cx.req(cx.raw.qk_rope_head_dim, "qk_rope_head_dim", "the MLA rope key")?,
            cx.req(cx.raw.qk_nope_head_dim, "qk_nope_head_dim", "MLA query/key widths")?,
            cx.req(cx.raw.v_head_dim, "v_head_dim", "MLA value width")?,
            cx.raw.q_lora_rank.filter(|&r| r > 0),
        ))
    } else {
        None
    };
    if let Some(n) = cx.raw.num_nextn_predict_layers.filter(|&n| n > 0) {
        cx.note(format!("{n} multi-token-prediction layer(s) in the checkpoint are not loaded for serving and not counted"));
    }
    let h = c.hidden;
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = match mla_dims {
                Some((kv_lora, rope, nope, v, q_lora)) => {
                    let n = c.heads;
                    match q_lora {
                        Some(r) => {
                            t.push(Tensor::new("self_attn.q_a_proj", Role::AttnQ, r, h, Split::Replicated));
                            t.push(Tensor::new("self_attn.q_a_layernorm", Role::Norm, r, 1, Split::Replicated));
                            t.push(Tensor::new("self_attn.q_b_proj", Role::AttnQ, n * (nope + rope), r, Split::Heads { heads: n }));
                        }
                        None => t.push(Tensor::new("self_attn.q_proj", Role::AttnQ, n * (nope + rope), h, Split::Heads { heads: n })),
                    }
                    t.push(Tensor::new("self_attn.kv_a_proj_with_mqa", Role::AttnKv, kv_lora + rope, h, Split::Replicated));
                    t.push(Tensor::new("self_attn.kv_a_layernorm", Role::Norm, kv_lora, 1, Split::Replicated));
                    t.push(Tensor::new("self_attn.kv_b_proj", Role::AttnKv, n * (nope + v), kv_lora, Split::Heads { heads: n }));
                    t.push(Tensor::new("self_attn.o_proj", Role::AttnO, h, n * v, Split::Row));
                    let index_head_dim = match indexer {
                        Some((dim, index_heads, q_lora)) => {
                            t.push(Tensor::new("self_attn.indexer.wq_b", Role::AttnQ, index_heads * dim, q_lora, Split::Replicated));
                            t.push(Tensor::new("self_attn.indexer.wk", Role::AttnKv, dim, h, Split::Replicated));
                            t.push(Tensor::new("self_attn.indexer.k_norm", Role::Norm, 2 * dim, 1, Split::Replicated));
                            // bf16 in the FP8 checkpoint, as a router is
                            t.push(Tensor::new("self_attn.indexer.weights_proj", Role::Router, index_heads, h, Split::Replicated));
                            dim
                        }
                        None => 0,
                    };
                    Mixer::Mla { heads: n, kv_lora_rank: kv_lora, qk_rope_head_dim: rope, qk_nope_head_dim: nope, v_head_dim: v, index_head_dim }
                }
                None => attention(&c, AttnBias::default(), QkNorm::None, Window::Full, &mut t),
            };
            let is_moe = experts > 0 && i as u64 >= first_dense && i as u64 % freq == 0;
            if is_moe {
                deepseek_moe(h, experts, top_k, moe_inter, shared, v3, &mut t);
            } else {
                gated_mlp("mlp", Role::Mlp, h, inter, false, &mut t);
            }
            norms("norms", 2, h, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, h, tied, false, false);
    let family = match mt.as_str() {
        "deepseek" => Family::Deepseek,
        "deepseek_v2" => Family::DeepseekV2,
        "deepseek_v32" => Family::DeepseekV32,
        _ => Family::DeepseekV3,
    };
    cx.finish(family, &c, inter, tied, g, layers)
}
