//! Mixtral (`mixtral`): Mistral attention (GQA, optional sliding window) with a sparse MoE block in
//! every layer: a router of `num_local_experts x hidden` and SwiGLU experts of `intermediate_size`.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "expert weights")?;
    let experts = cx.req(cx.raw.num_experts, "num_local_experts", "MoE weights")?;
    let top_k = cx.or(cx.raw.num_experts_per_tok, "num_experts_per_tok", 2, "absent: MixtralConfig default")?;
    sparse_decoder(cx, Family::Mixtral, &c, experts, top_k, inter)
}

/// Attention (GQA, the config's sliding window if any) and a MoE block of gated experts in every
/// layer, an untied head unless the config ties it: Mixtral's layout, which DBRX shares.
pub(super) fn sparse_decoder(cx: &mut Cx, family: Family, c: &Common, experts: u64, top_k: u64, inter: u64) -> Result<ModelShape> {
    let c = *c;
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias::default(), QkNorm::None, window_for(cx, i, true), &mut t);
            moe(c.hidden, experts, top_k, inter, true, &mut t);
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    cx.finish(family, &c, inter, tied, g, layers)
}
