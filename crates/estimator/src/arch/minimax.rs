//! MiniMax-Text-01 / MiniMax-M1 (`minimax_m1`, `minimax_text_01`): `attn_type_list` marks each layer
//! as lightning (linear) attention (0) or softmax GQA attention (1, every 8th layer). A lightning
//! layer keeps a per-request fp32 state of `heads x head_dim x head_dim`; every layer has a MoE
//! block (32 experts, top-2). MiniMax-M2 (`minimax_m2`): softmax GQA attention in every layer with
//! RMS norms on the whole q and k projections, and a sigmoid-routed MoE block (256 experts, top-8,
//! a routing bias per expert when `use_routing_bias`); its MTP modules are not counted (vLLM loads
//! them only for speculative decoding).

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let h = c.hidden;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "expert weights")?;
    let experts = cx.req(cx.raw.num_experts, "num_local_experts", "MoE weights")?;
    let top_k = cx.or(cx.raw.num_experts_per_tok, "num_experts_per_tok", 2, "absent: MiniMax default")?;
    let kinds = cx.raw.attn_type_list.clone().ok_or_else(|| Error::MissingField {
        field: "attn_type_list".into(),
        model_type: cx.model_type.clone(),
        needed_for: "which layers are linear and which softmax attention".into(),
    })?;
    if kinds.len() as u64 != c.layers {
        return Err(Error::invalid("attn_type_list", format!("{} entries", kinds.len()), format!("one per layer ({})", c.layers)));
    }
    let tied = cx.tied(false);
    let (n, d) = (c.heads, c.head_dim);
    let layers = kinds
        .iter()
        .map(|&k| {
            let mut t = vec![];
            let mixer = if k == 1 {
                attention(&c, AttnBias::default(), QkNorm::None, Window::Full, &mut t)
            } else {
                t.push(Tensor::new("self_attn.qkv_proj", Role::RecurrentLinear, 3 * n * d, h, Split::Heads { heads: n }));
                t.push(Tensor::new("self_attn.output_gate", Role::RecurrentLinear, n * d, h, Split::Heads { heads: n }));
                t.push(Tensor::new("self_attn.out_proj", Role::RecurrentLinear, h, n * d, Split::Row));
                t.push(Tensor::new("self_attn.norm", Role::Norm, n * d, 1, Split::Heads { heads: n }));
                Mixer::Recurrent { kind: "lightning_attention".into(), conv_elems: 0, ssm_elems: n * d * d, ssm_fp32: true, heads: n, conv_fp32: false, groups: 0, group_conv_elems: 0 }
            };
            moe(h, experts, top_k, inter, true, &mut t);
            norms("norms", 2, h, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, h, tied, false, false);
    cx.finish(Family::MiniMax, &c, inter, tied, g, layers)
}

pub(crate) fn resolve_m2(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let h = c.hidden;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "expert weights")?;
    let experts = cx.req(cx.raw.num_experts, "num_local_experts", "MoE weights")?;
    let top_k = cx.or(cx.raw.num_experts_per_tok, "num_experts_per_tok", 8, "absent: MiniMaxM2Config default")?;
    let routing_bias = cx.opt_bool("use_routing_bias")?.unwrap_or(true);
    if cx.opt_u64("num_mtp_modules")?.is_some_and(|n| n > 0) {
        cx.note("MTP modules (`num_mtp_modules`) not counted: vLLM loads them only for speculative decoding");
    }
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|_| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias::default(), QkNorm::Full, Window::Full, &mut t);
            moe(h, experts, top_k, inter, true, &mut t);
            if routing_bias {
                t.push(Tensor::new("block_sparse_moe.e_score_correction_bias", Role::Router, experts, 1, Split::Replicated));
            }
            norms("norms", 2, h, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, h, tied, false, false);
    cx.finish(Family::MiniMaxM2, &c, inter, tied, g, layers)
}
