//! MPT (`mpt`): `d_model`, `n_heads`, `n_layers`, an MLP of `expansion_ratio x d_model`, ALiBi (no
//! position embedding), `no_bias` LayerNorms and linears, grouped-query attention when
//! `attn_config.kv_n_heads` is set, LM head tied to the embedding.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let mut c = cx.common()?;
    let attn_cfg = cx.raw.json.get("attn_config").cloned().unwrap_or(Value::Null);
    if let Some(kv) = attn_cfg.get("kv_n_heads").and_then(Value::as_u64) {
        if kv == 0 || c.heads % kv != 0 {
            return Err(Error::invalid("attn_config.kv_n_heads", kv, format!("a divisor of n_heads ({})", c.heads)));
        }
        c.kv_heads = kv;
    }
    let ratio = cx.raw.expansion_ratio.unwrap_or_else(|| {
        cx.default("expansion_ratio", 4, "absent: MPTConfig default");
        4.0
    });
    if !(ratio > 0.0 && ratio < 64.0) {
        return Err(Error::invalid("expansion_ratio", ratio, "a number between 0 and 64"));
    }
    let inter = (c.hidden as f64 * ratio).round() as u64;
    let bias = !cx.raw.no_bias.unwrap_or(true);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, Window::Full, &mut t);
            plain_mlp("ffn", Role::Mlp, c.hidden, inter, bias, &mut t);
            norms("norms", 2, c.hidden, bias, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, true, bias, false);
    cx.finish(Family::Mpt, &c, inter, true, g, layers)
}
