//! Qwen3-Next (`qwen3_next`): every `full_attention_interval`-th layer is gated softmax attention
//! (q projection doubled for the output gate, per-head q/k norms); the others are gated DeltaNet
//! linear attention, whose per-request state is a convolution window over q/k/v plus a
//! `value_heads x key_dim x value_dim` recurrent matrix. Every layer has a MoE block with a gated
//! shared expert.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let h = c.hidden;
    let interval = cx.or(cx.raw.full_attention_interval, "full_attention_interval", 4, "absent: Qwen3NextConfig default")?;
    let kh = cx.req(cx.raw.linear_num_key_heads, "linear_num_key_heads", "the DeltaNet state")?;
    let vh = cx.req(cx.raw.linear_num_value_heads, "linear_num_value_heads", "the DeltaNet state")?;
    let kd = cx.req(cx.raw.linear_key_head_dim, "linear_key_head_dim", "the DeltaNet state")?;
    let vd = cx.req(cx.raw.linear_value_head_dim, "linear_value_head_dim", "the DeltaNet state")?;
    let conv = cx.or(cx.raw.linear_conv_kernel_dim, "linear_conv_kernel_dim", 4, "absent: Qwen3NextConfig default")?;
    let experts = cx.req(cx.raw.num_experts, "num_experts", "MoE weights")?;
    let top_k = cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")?;
    let moe_inter = cx.req(cx.raw.moe_intermediate_size, "moe_intermediate_size", "expert weights")?;
    let shared = cx.raw.shared_expert_intermediate_size.unwrap_or(0);
    let inter = cx.raw.intermediate_size.unwrap_or(moe_inter);
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = if (i as u64 + 1) % interval == 0 {
                let m = attention(&c, AttnBias::default(), QkNorm::PerHead, Window::Full, &mut t);
                t.push(Tensor::new("self_attn.q_gate", Role::AttnQ, c.heads * c.head_dim, h, Split::Heads { heads: c.heads }));
                m
            } else {
                let conv_dim = 2 * kh * kd + vh * vd;
                t.push(Tensor::new("linear_attn.in_proj_qkvz", Role::RecurrentLinear, 2 * kh * kd + 2 * vh * vd, h, Split::Column));
                t.push(Tensor::new("linear_attn.in_proj_ba", Role::RecurrentLinear, 2 * vh, h, Split::Column));
                t.push(Tensor::new("linear_attn.conv1d", Role::RecurrentParam, conv_dim, conv, Split::Column));
                t.push(Tensor::new("linear_attn.dt_bias_A_log", Role::RecurrentParam, 2 * vh, 1, Split::Column));
                t.push(Tensor::new("linear_attn.norm", Role::Norm, vd, 1, Split::Replicated));
                t.push(Tensor::new("linear_attn.out_proj", Role::RecurrentLinear, h, vh * vd, Split::Row));
                Mixer::Recurrent { kind: "gated_deltanet".into(), conv_elems: conv_dim * (conv - 1), ssm_elems: vh * kd * vd, ssm_fp32: false, heads: vh }
            };
            moe(h, experts, top_k, moe_inter, true, &mut t);
            if shared > 0 {
                gated_mlp("mlp.shared_expert", Role::SharedExpert, h, shared, false, &mut t);
                t.push(Tensor::new("mlp.shared_expert_gate", Role::Router, 1, h, Split::Replicated));
            }
            norms("norms", 2, h, false, &mut t);
            Layer { mixer, tensors: t }
        })
        .collect();
    let g = embeddings(c.vocab, h, tied, false, false);
    cx.finish(Family::Qwen3Next, &c, inter, tied, g, layers)
}
