//! OLMo (`olmo`: LayerNorm without parameters, no biases) and OLMo 2 (`olmo2`: RMS norms on the
//! whole q and k projections, norms after attention and after the MLP instead of before); OLMo 3
//! (`olmo3`: OLMo 2's layers, with a sliding window on the layers `layer_types` names
//! `sliding_attention`, three in four in the 7B and 32B releases); OLMoE
//! (`olmoe`: OLMo's attention with RMS norms on the whole q and k projections, pre-norms, and
//! `num_experts` routed experts, top `num_experts_per_tok`, in every layer).

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let v3 = cx.model_type == "olmo3";
    let v2 = cx.model_type == "olmo2" || v3;
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let qk = if v2 { QkNorm::Full } else { QkNorm::None };
            let window = if v3 { window_for(cx, i, false) } else { Window::Full };
            let mixer = attention(&c, AttnBias::default(), qk, window, &mut t);
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            if v2 {
                norms("norms", 2, c.hidden, false, &mut t);
            }
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = vec![Tensor::new("embed_tokens", Role::Embedding, c.vocab, c.hidden, Split::Column)];
    if v2 {
        norms("norm", 1, c.hidden, false, &mut g);
    }
    if !tied {
        g.push(Tensor::new("lm_head", Role::LmHead, c.vocab, c.hidden, Split::Column));
    }
    let family = match (v2, v3) {
        (_, true) => Family::Olmo3,
        (true, false) => Family::Olmo2,
        _ => Family::Olmo,
    };
    cx.finish(family, &c, inter, tied, g, layers)
}

pub(crate) fn resolve_olmoe(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "expert weights")?;
    let experts = cx.or(cx.raw.num_experts, "num_experts", 64, "absent: OlmoeConfig default")?;
    let top_k = cx.or(cx.raw.num_experts_per_tok, "num_experts_per_tok", 8, "absent: OlmoeConfig default")?;
    let tied = cx.tied(false);
    let bias = cx.raw.attention_bias.unwrap_or(false);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::Full, Window::Full, &mut t);
            moe(c.hidden, experts, top_k, inter, true, &mut t);
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    cx.finish(Family::Olmoe, &c, inter, tied, g, layers)
}
