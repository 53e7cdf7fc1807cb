//! Falcon (`falcon`): the original 7B layout (`multi_query`: one K/V head, one LayerNorm, parallel
//! attention and MLP) and the new decoder architecture of 40B/180B (`new_decoder_architecture`:
//! `num_kv_heads` groups, separate `ln_attn` and `ln_mlp`). LayerNorms with bias; linear biases when
//! `bias`; a 4x GELU MLP (`ffn_hidden_size` when given); LM head tied to the embedding.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let mut c = cx.common()?;
    let new_arch = cx.raw.new_decoder_architecture.unwrap_or(false);
    if !new_arch && cx.flag(cx.raw.multi_query, "multi_query", true, "absent: FalconConfig's default") {
        // the K/V head count is multi_query's, not the multi-head default `common` recorded
        c.kv_heads = 1;
        cx.defaults.retain(|d| d.field != "num_key_value_heads");
        cx.note("falcon multi_query: one K/V head shared by all query heads");
    }
    // FalconConfig has `ffn_hidden_size` (new decoder architecture) and no `intermediate_size`
    let ffn = cx.raw.json.get("ffn_hidden_size").and_then(serde_json::Value::as_u64);
    let inter = cx.or(ffn, "ffn_hidden_size", 4 * c.hidden, "absent: 4 x hidden_size")?;
    let bias = cx.raw.bias.unwrap_or(false);
    let parallel = cx.raw.parallel_attn.unwrap_or(true);
    let tied = cx.tied(true);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, Window::Full, &mut t);
            plain_mlp("mlp", Role::Mlp, c.hidden, inter, bias, &mut t);
            let n = if new_arch || !parallel { 2 } else { 1 };
            norms("layernorms", n, c.hidden, true, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, true, false);
    cx.finish(Family::Falcon, &c, inter, tied, g, layers)
}
