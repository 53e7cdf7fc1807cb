//! The generic decoder path for an unknown `model_type` that has the standard fields
//! (`hidden_size`, `num_hidden_layers`, `num_attention_heads`, `vocab_size`): a Llama-shaped
//! decoder (GQA from `num_key_value_heads`, SwiGLU MLP of `intermediate_size`, RMS norms). The
//! answer says the generic path was used; a config without those fields is an error naming the
//! first missing one.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.or(cx.raw.intermediate_size, "intermediate_size", 4 * c.hidden, "absent: 4 x hidden_size (generic path)")?;
    let tied = cx.tied(false);
    let bias = cx.raw.attention_bias.unwrap_or(false);
    let mt = if cx.model_type.is_empty() { "(none)".to_string() } else { cx.model_type.clone() };
    cx.note(format!("model_type `{mt}` is not a known family: sized with the generic Llama-shaped decoder (weights within a few percent, KV per token exact if the standard fields are right)"));
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, window_for(cx, i, true), &mut t);
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            norms("norms", 2, c.hidden, false, &mut t);
            Layer { mixer, tensors: t }
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    cx.finish(Family::Generic, &c, inter, tied, g, layers)
}
