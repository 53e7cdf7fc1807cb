//! Gemma 1/2/3 (`gemma`, `gemma2`, `gemma3`, `gemma3_text`): explicit `head_dim` (not hidden /
//! heads), tied embeddings, GeGLU MLP. Gemma 2 adds pre/post norms (4 per layer) and alternates
//! sliding-window (even layers) and global attention; Gemma 3 adds per-head q/k norms and a
//! pattern of 5 sliding layers to 1 global (`sliding_window_pattern`, or `layer_types`). Gemma 3
//! multimodal checkpoints nest the text model in `text_config`, which may omit head counts: the
//! `Gemma3TextConfig` defaults then apply (8 heads, 4 KV heads, head_dim 256, vocab 262208, 131072
//! positions) and are reported.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let mt = cx.model_type.clone();
    let v3 = mt.starts_with("gemma3");
    let v2 = mt == "gemma2";
    let c = if v3 {
        let r = cx.raw;
        let why = "absent in text_config: Gemma3TextConfig default";
        let hidden = cx.req(r.hidden_size, "hidden_size", "every weight shape")?;
        let layers = cx.req(r.num_hidden_layers, "num_hidden_layers", "weights and KV cache")?;
        let heads = cx.or(r.num_attention_heads, "num_attention_heads", 8, why)?;
        let kv_heads = cx.or(r.num_key_value_heads, "num_key_value_heads", 4, why)?;
        let head_dim = cx.or(r.head_dim, "head_dim", 256, why)?;
        let vocab = cx.or(r.vocab_size, "vocab_size", 262_208, why)?;
        cx.positions_default(131_072, why);
        Common { hidden, layers, heads, kv_heads, head_dim, vocab }
    } else {
        cx.common()?
    };
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let tied = cx.tied(true);
    let pattern = match (v2, v3) {
        (_, true) => Some(cx.or(cx.raw.sliding_window_pattern, "sliding_window_pattern", 6, "absent: Gemma 3 default (5 local : 1 global)")?),
        (true, false) => Some(2),
        _ => None,
    };
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let w = interleaved_window(cx, i, pattern);
            let qk = if v3 { QkNorm::PerHead } else { QkNorm::None };
            let mixer = attention(&c, AttnBias::default(), qk, w, &mut t);
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            norms("norms", if v2 || v3 { 4 } else { 2 }, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, c.hidden, tied, false, false);
    vision::add_encoder(cx, c.hidden, &mut g);
    let family = if v3 {
        Family::Gemma3
    } else if v2 {
        Family::Gemma2
    } else {
        Family::Gemma
    };
    cx.finish(family, &c, inter, tied, g, layers)
}
