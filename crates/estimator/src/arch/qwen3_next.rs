//! Qwen3-Next (`qwen3_next`): every `full_attention_interval`-th layer is gated softmax attention
//! (q projection doubled for the output gate, per-head q/k norms); the others are gated DeltaNet
//! linear attention, whose per-request state is a convolution window over q/k/v plus a
//! `value_heads x key_dim x value_dim` recurrent matrix. Every layer has a MoE block with a gated
//! shared expert.
//!
//! Qwen3.5 (`qwen3_5`, `qwen3_5_moe`, `modeling_qwen3_5*.py`) is the same layer stack: the layer
//! kinds are written out in `layer_types`, the DeltaNet input projection is split four ways
//! (`in_proj_qkv`, `in_proj_z`, `in_proj_b`, `in_proj_a`: the same widths), the dense models have
//! a gated MLP of `intermediate_size` where Qwen3-Next has experts, and a Qwen3-VL vision tower
//! (learned position table, merger to the text width) ships with every checkpoint.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let qwen35 = cx.model_type.starts_with("qwen3_5");
    let c = cx.common_with_head_dim(Some((256, "absent: Qwen3NextConfig / Qwen3_5TextConfig default")))?;
    let h = c.hidden;
    let interval = cx.or(cx.raw.full_attention_interval, "full_attention_interval", 4, "absent: Qwen3NextConfig default")?;
    // `layer_types` when written (Qwen3.5 always writes it), else every interval-th layer full
    let full: Vec<bool> = match &cx.raw.layer_types {
        Some(types) => {
            if types.len() as u64 != c.layers {
                return Err(Error::invalid("layer_types", format!("{} entries", types.len()), format!("one entry per layer (num_hidden_layers = {})", c.layers)));
            }
            if let Some(t) = types.iter().find(|t| t.as_str() != "full_attention" && t.as_str() != "linear_attention") {
                return Err(Error::invalid("layer_types", t, "`full_attention` or `linear_attention`"));
            }
            types.iter().map(|t| t == "full_attention").collect()
        }
        None => range(c.layers).map(|i| (i as u64 + 1) % interval == 0).collect(),
    };
    let kh = cx.req(cx.raw.linear_num_key_heads, "linear_num_key_heads", "the DeltaNet state")?;
    let vh = cx.req(cx.raw.linear_num_value_heads, "linear_num_value_heads", "the DeltaNet state")?;
    let kd = cx.req(cx.raw.linear_key_head_dim, "linear_key_head_dim", "the DeltaNet state")?;
    let vd = cx.req(cx.raw.linear_value_head_dim, "linear_value_head_dim", "the DeltaNet state")?;
    let conv = cx.or(cx.raw.linear_conv_kernel_dim, "linear_conv_kernel_dim", 4, "absent: Qwen3NextConfig default")?;
    // Qwen3.5's dense models (`qwen3_5`, not `qwen3_5_moe`) have no experts: a gated MLP in every layer
    let ffn = if qwen35 && !cx.model_type.starts_with("qwen3_5_moe") {
        Ffn::Dense(cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?)
    } else {
        Ffn::Moe {
            experts: cx.req(cx.raw.num_experts, "num_experts", "MoE weights")?,
            top_k: cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")?,
            inter: cx.req(cx.raw.moe_intermediate_size, "moe_intermediate_size", "expert weights")?,
            shared: cx.or(cx.raw.shared_expert_intermediate_size, "shared_expert_intermediate_size", 512, "absent: Qwen3NextConfig / Qwen3_5MoeTextConfig default")?,
        }
    };
    // the DeltaNet state per layer, in elements: refused by name before it could overflow
    let state = |a: u64, b: u64, c: u64| a.checked_mul(b).and_then(|x| x.checked_mul(c)).filter(|&x| x <= 1 << 40);
    let ssm_elems = state(vh, kd, vd).ok_or_else(|| Error::invalid("linear_num_value_heads", vh, format!("a DeltaNet state that fits in memory (value heads x key dim {kd} x value dim {vd})")))?;
    let conv_dim = 2 * kh * kd + vh * vd;
    let conv_elems = state(conv_dim, conv.saturating_sub(1), 1).ok_or_else(|| Error::invalid("linear_conv_kernel_dim", conv, format!("a convolution window that fits in memory ({conv_dim} channels)")))?;
    let bias = cx.raw.attention_bias.unwrap_or(false);
    let inter = match ffn {
        Ffn::Dense(i) => i,
        Ffn::Moe { inter, .. } => cx.raw.intermediate_size.unwrap_or(inter),
    };
    // the output gate doubles q_proj (Qwen3.5 may name it `attn_output_gate`, default on)
    let gate = match cx.raw.json.get("attn_output_gate") {
        Some(v) => v.as_bool().ok_or_else(|| Error::invalid("attn_output_gate", v, "true or false"))?,
        None => true,
    };
    if let Some(n) = cx.raw.num_nextn_predict_layers.filter(|&n| n > 0) {
        cx.note(format!("{n} multi-token-prediction layer(s) in the checkpoint are not loaded for serving and not counted"));
    }
    let tied = cx.tied(false);
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = if full[i] {
                let m = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::PerHead, Window::Full, &mut t);
                if gate {
                    t.push(Tensor::new("self_attn.q_gate", Role::AttnQ, c.heads * c.head_dim, h, Split::Heads { heads: c.heads }));
                }
                m
            } else {
                t.push(Tensor::new("linear_attn.in_proj_qkvz", Role::RecurrentLinear, 2 * kh * kd + 2 * vh * vd, h, Split::Column));
                t.push(Tensor::new("linear_attn.in_proj_ba", Role::RecurrentLinear, 2 * vh, h, Split::Column));
                t.push(Tensor::new("linear_attn.conv1d", Role::RecurrentParam, conv_dim, conv, Split::Column));
                t.push(Tensor::new("linear_attn.dt_bias_A_log", Role::RecurrentParam, 2 * vh, 1, Split::Column));
                t.push(Tensor::new("linear_attn.norm", Role::Norm, vd, 1, Split::Replicated));
                t.push(Tensor::new("linear_attn.out_proj", Role::RecurrentLinear, h, vh * vd, Split::Row));
                Mixer::Recurrent { kind: "gated_deltanet".into(), conv_elems, ssm_elems, ssm_fp32: false, heads: vh, conv_fp32: false, groups: 0, group_conv_elems: 0 }
            };
            match ffn {
                Ffn::Dense(inter) => gated_mlp("mlp", Role::Mlp, h, inter, false, &mut t),
                Ffn::Moe { experts, top_k, inter, shared } => {
                    moe(h, experts, top_k, inter, true, &mut t);
                    if shared > 0 {
                        gated_mlp("mlp.shared_expert", Role::SharedExpert, h, shared, false, &mut t);
                        t.push(Tensor::new("mlp.shared_expert_gate", Role::Router, 1, h, Split::Replicated));
                    }
                }
            }
            norms("norms", 2, h, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, h, tied, false, false);
    vision::add_encoder(cx, h, &mut g);
    cx.finish(if qwen35 { Family::Qwen35 } else { Family::Qwen3Next }, &c, inter, tied, g, layers)
}

#[derive(Clone, Copy)]
enum Ffn {
    Dense(u64),
    Moe { experts: u64, top_k: u64, inter: u64, shared: u64 },
}
