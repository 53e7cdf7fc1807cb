//! GPT-2 (`gpt2`), GPT-1 (`openai-gpt`), StarCoder 1 / SantaCoder (`gpt_bigcode`, multi-query when
//! `multi_query`), GPT-J (`gptj`). Learned position embeddings (`n_positions x n_embd`) except
//! GPT-J (rotary); LayerNorms and linear layers with bias; `n_inner` defaults to `4 x n_embd`;
//! GPT-2 ties the LM head to the token embedding, GPT-J has its own head with a bias.
//! GPT-NeoX / Pythia (`gpt_neox`): rotary, fused q/k/v and output with bias
//! (`attention_bias`, default true), a two-matrix MLP of `intermediate_size` with bias, two
//! LayerNorms per layer, an untied `embed_out` without bias. BLOOM (`bloom`): ALiBi (no position
//! table), a LayerNorm right after the word embedding, biases everywhere, a two-matrix MLP of
//! 4 x hidden, the head tied; its config has no length, so vLLM's default of 2048 applies.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let mut c = cx.common()?;
    let mt = cx.model_type.clone();
    let gptj = mt == "gptj";
    if mt == "gpt_neox" || mt == "bloom" {
        return resolve_neox_bloom(cx, c);
    }
    if mt == "gpt_bigcode" && cx.raw.multi_query.unwrap_or(true) {
        c.kv_heads = 1;
        cx.note("gpt_bigcode multi_query: one K/V head");
    }
    let inter = cx.or(cx.raw.intermediate_size, "n_inner", 4 * c.hidden, "absent or null: 4 x n_embd")?;
    let positions = if gptj { 0 } else { cx.or(cx.raw.max_position_embeddings, "n_positions", 1024, "absent: GPT-2 default")? };
    let tied = if gptj { cx.tied(false) } else { true };
    let layers = layers(&c, inter, !gptj, if gptj { 1 } else { 2 });
    let mut g = vec![Tensor::new("wte", Role::Embedding, c.vocab, c.hidden, Split::Column)];
    if positions > 0 {
        g.push(Tensor::new("wpe", Role::PositionEmbedding, positions, c.hidden, Split::Replicated));
    }
    if mt != "openai-gpt" {
        norms("ln_f", 1, c.hidden, true, &mut g);
    }
    if !tied {
        g.push(Tensor::new("lm_head", Role::LmHead, c.vocab, c.hidden, Split::Column));
        g.push(Tensor::new("lm_head.bias", Role::Bias, c.vocab, 1, Split::Column));
    }
    let family = if gptj { Family::GptJ } else { Family::Gpt2 };
    cx.finish(family, &c, inter, tied, g, layers)
}

/// GPT-NeoX and BLOOM: no learned positions, LayerNorms with bias, two-matrix MLPs with bias.
fn resolve_neox_bloom(cx: &mut Cx, c: Common) -> Result<ModelShape> {
    let bloom = cx.model_type == "bloom";
    let (inter, bias, tied) = if bloom {
        // BloomConfig has no MLP width (4 x hidden) and no length (vLLM falls back to 2048)
        cx.positions_default(2048, "absent: BLOOM uses ALiBi and its config gives no length; vLLM's default");
        (4 * c.hidden, true, cx.tied(true))
    } else {
        let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
        cx.positions_default(2048, "absent: GPTNeoXConfig default");
        (inter, cx.flag(cx.raw.attention_bias, "attention_bias", true, "absent: GPTNeoXConfig default"), cx.tied(false))
    };
    let layers = layers(&c, inter, bias, 2);
    // `embed_in` / `word_embeddings` in the checkpoints; named as the token embedding a tied head
    // reuses (`Tensor::is_token_embedding`)
    let mut g = vec![Tensor::new("embed_tokens", Role::Embedding, c.vocab, c.hidden, Split::Column)];
    if bloom {
        norms("word_embeddings_layernorm", 1, c.hidden, true, &mut g);
    }
    norms("final_layer_norm", 1, c.hidden, true, &mut g);
    if !tied {
        g.push(Tensor::new("lm_head", Role::LmHead, c.vocab, c.hidden, Split::Column));
    }
    let family = if bloom { Family::Bloom } else { Family::GptNeox };
    cx.finish(family, &c, inter, tied, g, layers)
}

/// The layers every family of this file shares: full attention (with biases on q/k/v and the
/// output when `attn_bias`), a two-matrix MLP with bias, `ln` LayerNorms with bias.
fn layers(c: &Common, inter: u64, attn_bias: bool, ln: u64) -> Vec<Layer> {
    range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(c, AttnBias { qkv: attn_bias, o: attn_bias }, QkNorm::None, Window::Full, &mut t);
            plain_mlp("mlp", Role::Mlp, c.hidden, inter, true, &mut t);
            norms("ln", ln, c.hidden, true, &mut t);
            Layer::new(mixer, t)
        })
        .collect()
}
