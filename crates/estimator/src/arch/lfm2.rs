//! Liquid LFM2 (`lfm2`) and LFM2-MoE (`lfm2_moe`): a hybrid of attention layers and gated
//! short-convolution layers. `layer_types` (or, in the first releases, `full_attn_idxs`) says which
//! layers are attention (`full_attention`: GQA with per-head q/k RMS norms, K/V per token) and
//! which are convolutions (`conv`: `in_proj` of 3 x hidden, a depthwise kernel of `conv_L_cache`,
//! `out_proj`; their cache is a constant state of `hidden x (conv_L_cache - 1)` values per
//! request, as vLLM stores it). LFM2's MLP width is `block_ff_dim` (or `intermediate_size`), which
//! `block_auto_adjust_ff_dim` turns into `2/3` of it, times `block_ffn_dim_multiplier`, rounded up
//! to `block_multiple_of`. LFM2-MoE's first `num_dense_layers` layers have a dense MLP of
//! `intermediate_size`; the others `num_experts` routed experts of `moe_intermediate_size`, a
//! router and an fp32 expert bias (`use_expert_bias`). The head is tied by default.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let moe_model = cx.model_type == "lfm2_moe";
    let c = cx.common()?;
    let h = c.hidden;
    let kernel = cx.or(cx.opt_u64("conv_L_cache")?, "conv_L_cache", 3, "absent: Lfm2Config default")?;
    let conv_bias = cx.opt_bool("conv_bias")?.unwrap_or(false);
    let tied = match cx.opt_bool("tie_embedding")? {
        Some(t) if cx.raw.tie_word_embeddings.is_none() => t,
        _ => cx.tied(true),
    };
    let kinds = layer_kinds(cx, c.layers)?;
    let inter = if moe_model { cx.req(cx.raw.intermediate_size, "intermediate_size", "the dense MLP")? } else { ff_dim(cx)? };
    let moe_block = if moe_model {
        let e = cx.req(cx.raw.num_experts, "num_experts", "MoE weights")?;
        let k = cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")?;
        let mi = cx.req(cx.raw.moe_intermediate_size, "moe_intermediate_size", "expert weights")?;
        let dense = cx.or(cx.opt_u64("num_dense_layers")?, "num_dense_layers", 2, "absent: Lfm2MoeConfig default")?;
        let bias = cx.opt_bool("use_expert_bias")?.unwrap_or(true);
        Some((e, k, mi, dense, bias))
    } else {
        None
    };
    let layers = kinds
        .iter()
        .enumerate()
        .map(|(i, attn)| {
            let mut t = vec![];
            let mixer = if *attn {
                attention(&c, AttnBias::default(), QkNorm::PerHead, Window::Full, &mut t)
            } else {
                t.push(Tensor::new("conv.in_proj", Role::RecurrentLinear, 3 * h, h, Split::Column));
                t.push(Tensor::new("conv.conv", Role::RecurrentParam, h, kernel + u64::from(conv_bias), Split::Column));
                t.push(Tensor::new("conv.out_proj", Role::RecurrentLinear, h, h, Split::Row));
                if conv_bias {
                    t.push(Tensor::new("conv.proj.bias", Role::Bias, 4 * h, 1, Split::Replicated));
                }
                Mixer::Recurrent { kind: "short_conv".into(), conv_elems: h * (kernel - 1), ssm_elems: 0, ssm_fp32: false, heads: h, conv_fp32: false, groups: 0, group_conv_elems: 0 }
            };
            match moe_block {
                Some((e, k, mi, dense, bias)) if i as u64 >= dense => {
                    moe(h, e, k, mi, true, &mut t);
                    if bias {
                        t.push(Tensor::new("feed_forward.expert_bias", Role::Router, e, 1, Split::Replicated));
                    }
                }
                _ => gated_mlp("feed_forward", Role::Mlp, h, inter, false, &mut t),
            }
            norms("norms", 2, h, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, h, tied, false, false);
    let family = if moe_model { Family::Lfm2Moe } else { Family::Lfm2 };
    cx.finish(family, &c, inter, tied, g, layers)
}

/// Whether each layer is attention (true) or a short convolution (false).
fn layer_kinds(cx: &mut Cx, layers: u64) -> Result<Vec<bool>> {
    if let Some(kinds) = cx.raw.layer_types.clone() {
        if kinds.len() as u64 != layers {
            return Err(Error::invalid("layer_types", format!("{} entries", kinds.len()), format!("one per layer ({layers})")));
        }
        return kinds
            .iter()
            .map(|k| match k.as_str() {
                "full_attention" | "attention" => Ok(true),
                "conv" => Ok(false),
                other => Err(Error::invalid("layer_types", format!("\"{other}\""), "\"full_attention\" or \"conv\"")),
            })
            .collect();
    }
    match cx.raw.json.get("full_attn_idxs") {
        None | Some(Value::Null) => {
            cx.default("layer_types", "every layer attention", "absent (no `layer_types` or `full_attn_idxs`): Lfm2Config default");
            Ok(vec![true; layers as usize])
        }
        Some(v) => {
            let idx = <Vec<u64> as crate::config::FromJson>::from_json(v, "full_attn_idxs")?;
            if let Some(bad) = idx.iter().find(|&&i| i >= layers) {
                return Err(Error::invalid("full_attn_idxs", bad, format!("layer indices below num_hidden_layers ({layers})")));
            }
            Ok((0..layers).map(|i| idx.contains(&i)).collect())
        }
    }
}

/// LFM2's MLP width after `block_auto_adjust_ff_dim`, as `Lfm2MLP` computes it.
fn ff_dim(cx: &mut Cx) -> Result<u64> {
    let given = match cx.opt_u64("block_ff_dim")? {
        Some(d) => cx.req(Some(d), "block_ff_dim", "MLP weights")?,
        None => cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?,
    };
    let adjust = cx.opt_bool("block_auto_adjust_ff_dim")?;
    if !cx.flag(adjust, "block_auto_adjust_ff_dim", true, "absent: Lfm2Config default") {
        return Ok(given);
    }
    let multiple = cx.or(cx.opt_u64("block_multiple_of")?, "block_multiple_of", 256, "absent: Lfm2Config default")?;
    let mut ff = 2 * given / 3;
    match cx.raw.json.get("block_ffn_dim_multiplier") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let m = <f64 as crate::config::FromJson>::from_json(v, "block_ffn_dim_multiplier")?;
            if !(m > 0.0 && m <= 16.0) {
                return Err(Error::invalid("block_ffn_dim_multiplier", m, "a positive number up to 16"));
            }
            ff = (m * ff as f64) as u64;
        }
    }
    Ok(ff.div_ceil(multiple) * multiple)
}
