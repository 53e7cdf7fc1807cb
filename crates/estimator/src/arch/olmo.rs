//! OLMo (`olmo`: LayerNorm without parameters, no biases) and OLMo 2 (`olmo2`: RMS norms on the
//! whole q and k projections, norms after attention and after the MLP instead of before).

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let v2 = cx.model_type == "olmo2";
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let qk = if v2 { QkNorm::Full } else { QkNorm::None };
            let mixer = attention(&c, AttnBias::default(), qk, Window::Full, &mut t);
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            if v2 {
                norms("norms", 2, c.hidden, false, &mut t);
            }
            Layer { mixer, tensors: t }
        })
        .collect();
    let mut g = vec![Tensor::new("embed_tokens", Role::Embedding, c.vocab, c.hidden, Split::Column)];
    if v2 {
        norms("norm", 1, c.hidden, false, &mut g);
    }
    if !tied {
        g.push(Tensor::new("lm_head", Role::LmHead, c.vocab, c.hidden, Split::Column));
    }
    cx.finish(if v2 { Family::Olmo2 } else { Family::Olmo }, &c, inter, tied, g, layers)
}
