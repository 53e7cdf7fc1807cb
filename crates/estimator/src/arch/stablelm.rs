//! StableLM (`stablelm`: StableLM-2, StableLM-3B-4E1T): Llama-shaped attention and SwiGLU MLP, but
//! LayerNorms with bias (two per layer and a final one), QKV biases when `use_qkv_bias`, a partial
//! rotary embedding (no weights), and an untied LM head by default.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let qkv_bias = cx.raw.json.get("use_qkv_bias").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: qkv_bias, o: false }, QkNorm::None, Window::Full, &mut t);
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            norms("layernorms", 2, c.hidden, true, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, true, false);
    cx.finish(Family::StableLm, &c, inter, tied, g, layers)
}
