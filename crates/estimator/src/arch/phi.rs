//! Phi-1/1.5/2 (`phi`: MHA with biases everywhere, one LayerNorm per layer shared by the parallel
//! attention and MLP, a two-matrix GELU MLP, an LM head with bias), Phi-3/3.5/4 and Phi-4-mini
//! (`phi3`: fused qkv and gate_up projections, Llama-shaped counts, sliding window when set),
//! Phi-3-small (`phi3small`: biases, GeGLU of width `ff_intermediate_size`, LayerNorms with bias,
//! block-sparse attention on alternate layers that caches K/V like dense attention), and
//! Phi-3.5-MoE (`phimoe`: 16 experts, top-2, LayerNorms with bias).

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let mt = cx.model_type.clone();
    let (family, tied) = match mt.as_str() {
        "phi" => (Family::Phi, cx.tied(false)),
        "phi3small" => (Family::Phi3Small, cx.tied(true)),
        "phimoe" => (Family::PhiMoe, cx.tied(false)),
        _ => (Family::Phi3, cx.tied(false)),
    };
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = match family {
                Family::Phi => {
                    let m = attention(&c, AttnBias { qkv: true, o: true }, QkNorm::None, Window::Full, &mut t);
                    plain_mlp("mlp", Role::Mlp, c.hidden, inter, true, &mut t);
                    norms("input_layernorm", 1, c.hidden, true, &mut t);
                    m
                }
                Family::Phi3Small => {
                    let m = attention(&c, AttnBias { qkv: true, o: true }, QkNorm::None, Window::Full, &mut t);
                    gated_mlp("mlp", Role::Mlp, c.hidden, inter, true, &mut t);
                    norms("norms", 2, c.hidden, true, &mut t);
                    m
                }
                Family::PhiMoe => {
                    let experts = cx.raw.num_experts.unwrap_or(16);
                    let top_k = cx.raw.num_experts_per_tok.unwrap_or(2);
                    let bias = cx.raw.attention_bias.unwrap_or(true);
                    let m = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, window_for(cx, i, true), &mut t);
                    moe(c.hidden, experts, top_k, inter, true, &mut t);
                    norms("norms", 2, c.hidden, true, &mut t);
                    m
                }
                _ => {
                    let m = attention(&c, AttnBias::default(), QkNorm::None, window_for(cx, i, true), &mut t);
                    gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
                    norms("norms", 2, c.hidden, false, &mut t);
                    m
                }
            };
            Layer::new(mixer, t)
        })
        .collect();
    let ln_bias = matches!(family, Family::Phi | Family::Phi3Small | Family::PhiMoe);
    let head_bias = family == Family::Phi || (family == Family::PhiMoe && cx.raw.json.get("lm_head_bias").and_then(Value::as_bool).unwrap_or(false));
    let g = embeddings(c.vocab, c.hidden, tied, ln_bias, head_bias);
    cx.finish(family, &c, inter, tied, g, layers)
}
