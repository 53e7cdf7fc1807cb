//! Granite 3.x (`granite`: Llama-shaped with embedding/residual/logit multipliers that do not change
//! shapes), Granite MoE (`granitemoe`: routed SwiGLU experts in every layer) and Granite MoE with a
//! shared MLP (`granitemoeshared`: plus `shared_intermediate_size`).

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let tied = cx.tied(true);
    let bias = cx.raw.attention_bias.unwrap_or(false);
    let mt = cx.model_type.clone();
    let experts = if mt == "granite" { 0 } else { cx.req(cx.raw.num_experts, "num_local_experts", "MoE weights")? };
    let top_k = if experts > 0 { cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")? } else { 0 };
    let shared = cx.raw.shared_expert_intermediate_size.unwrap_or(0);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, Window::Full, &mut t);
            if experts > 0 {
                moe(c.hidden, experts, top_k, inter, true, &mut t);
                if shared > 0 {
                    gated_mlp("shared_mlp", Role::SharedExpert, c.hidden, shared, false, &mut t);
                }
            } else {
                gated_mlp("mlp", Role::Mlp, c.hidden, inter, cx.raw.mlp_bias.unwrap_or(false), &mut t);
            }
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    cx.finish(if experts > 0 { Family::GraniteMoe } else { Family::Granite }, &c, inter, tied, g, layers)
}
