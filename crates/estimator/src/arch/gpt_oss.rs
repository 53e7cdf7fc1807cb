//! gpt-oss (`gpt_oss`): GQA attention with biases and per-head attention sinks, alternating
//! sliding-window (128 tokens) and full attention (`layer_types`), a MoE block in every layer with
//! biased SwiGLU experts and a biased router. The published checkpoints store the experts in MXFP4
//! (`quantization_config.quant_method = mxfp4`) and everything else in bf16.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "expert weights")?;
    let experts = cx.req(cx.raw.num_experts, "num_local_experts", "MoE weights")?;
    let top_k = cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")?;
    let tied = cx.tied(false);
    let window = cx.raw.sliding_window.and_then(|w| w.0).unwrap_or(128);
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let w = match cx.layer_type(i) {
                Some("sliding_attention") => Window::Sliding(window),
                Some(_) => Window::Full,
                None if i % 2 == 0 => Window::Sliding(window),
                None => Window::Full,
            };
            let mixer = attention(&c, AttnBias { qkv: true, o: true }, QkNorm::None, w, &mut t);
            t.push(Tensor::new("self_attn.sinks", Role::Bias, c.heads, 1, Split::Heads { heads: c.heads }));
            moe(c.hidden, experts, top_k, inter, true, &mut t);
            t.push(Tensor::new("mlp.router.bias", Role::Bias, experts, 1, Split::Replicated));
            t.push(Tensor::new("mlp.experts.gate_up_proj_bias", Role::Bias, 2 * inter, 1, Split::Column).experts(experts, top_k));
            t.push(Tensor::new("mlp.experts.down_proj_bias", Role::Bias, c.hidden, 1, Split::Replicated).experts(experts, top_k));
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    cx.finish(Family::GptOss, &c, inter, tied, g, layers)
}
