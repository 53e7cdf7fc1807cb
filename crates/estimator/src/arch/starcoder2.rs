//! StarCoder2 (`starcoder2`): GQA with biases (`use_bias`), a two-matrix GELU MLP with biases,
//! LayerNorms with bias, sliding-window attention (4096) on every layer, LM head tied.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let bias = cx.raw.bias.unwrap_or(true);
    let tied = cx.tied(true);
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, window_for(cx, i, true), &mut t);
            plain_mlp("mlp", Role::Mlp, c.hidden, inter, bias, &mut t);
            norms("norms", 2, c.hidden, true, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, true, false);
    cx.finish(Family::Starcoder2, &c, inter, tied, g, layers)
}
