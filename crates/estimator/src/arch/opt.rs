//! OPT (`opt`): MHA with biases, ReLU MLP of `ffn_dim`, LayerNorms with bias, learned positions
//! with an offset of 2 rows, an optional `word_embed_proj_dim` projection (OPT-350m), LM head tied.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "ffn_dim", "MLP weights")?;
    let positions = cx.or(cx.raw.max_position_embeddings, "max_position_embeddings", 2048, "absent: OPTConfig default")?;
    let proj = cx.raw.word_embed_proj_dim.unwrap_or(c.hidden);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: true, o: true }, QkNorm::None, Window::Full, &mut t);
            plain_mlp("mlp", Role::Mlp, c.hidden, inter, true, &mut t);
            norms("layer_norms", 2, c.hidden, true, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = vec![
        Tensor::new("embed_tokens", Role::Embedding, c.vocab, proj, Split::Column),
        Tensor::new("embed_positions", Role::PositionEmbedding, positions + 2, c.hidden, Split::Replicated),
    ];
    if proj != c.hidden {
        g.push(Tensor::new("project_in", Role::Mlp, c.hidden, proj, Split::Replicated));
        g.push(Tensor::new("project_out", Role::Mlp, proj, c.hidden, Split::Replicated));
    } else {
        norms("final_layer_norm", 1, c.hidden, true, &mut g);
    }
    cx.finish(Family::Opt, &c, inter, true, g, layers)
}
