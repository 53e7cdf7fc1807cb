//! Tencent Hunyuan: the dense models (`hunyuan_v1_dense`) and the MoE models (`hunyuan_v1_moe`, and
//! `hunyuan`, the model type of the first Hunyuan-A13B release). A Llama-shaped decoder with
//! per-head q/k RMS norms when `use_qk_norm`, biases from `attention_bias` (or `bias`), and `head_dim`
//! (or `attention_head_dim`). The model is MoE when `num_experts` > 1, as vLLM decides: then every
//! layer has `num_experts` routed experts of `moe_intermediate_size` (`intermediate_size` when
//! absent), `moe_topk` of them per token, and with `use_mixed_mlp_moe` a shared MLP of
//! `num_shared_expert x intermediate_size`. `moe_topk`, `moe_intermediate_size` and
//! `num_shared_expert` may be one value or one per layer. With `use_cla` (cross-layer attention,
//! Hunyuan-Large) only every `cla_share_factor`-th layer projects and caches K/V; the layers between
//! read the cache of the layer before them and have a `hidden x hidden` query projection only.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let tied = cx.tied(false);
    let bias = cx.raw.attention_bias.unwrap_or(false) || cx.raw.bias.unwrap_or(false);
    let mlp_bias = cx.raw.mlp_bias.unwrap_or(false);
    let qk = if cx.opt_bool("use_qk_norm")?.unwrap_or(false) { QkNorm::PerHead } else { QkNorm::None };
    // MoE when any layer has more than one expert (vLLM: `max(num_experts) > 1`)
    let is_moe = (0..c.layers as usize).try_fold(false, |any, i| Ok::<_, Error>(any || per_layer(cx, "num_experts", i)?.unwrap_or(1) > 1))?;
    let mixed = cx.opt_bool("use_mixed_mlp_moe")?.unwrap_or(false);
    let cla = if cx.opt_bool("use_cla")?.unwrap_or(false) {
        cx.or(cx.opt_u64("cla_share_factor")?, "cla_share_factor", 1, "absent: no layer shares its cache")?
    } else {
        1
    };
    let mut layers = Vec::with_capacity(c.layers as usize);
    for i in 0..c.layers as usize {
        let mut t = vec![];
        let own_kv = (i as u64) % cla == 0;
        let mixer = if own_kv {
            attention(&c, AttnBias { qkv: bias, o: bias }, qk, Window::Full, &mut t)
        } else {
            // a cross-layer-attention layer: its queries read the K/V of the layer before it
            t.push(Tensor::new("self_attn.q_proj", Role::AttnQ, c.hidden, c.hidden, Split::Heads { heads: c.heads }));
            t.push(Tensor::new("self_attn.o_proj", Role::AttnO, c.hidden, c.heads * c.head_dim, Split::Row));
            if qk == QkNorm::PerHead {
                t.push(Tensor::new("self_attn.qk_norm", Role::Norm, 2 * c.head_dim, 1, Split::Replicated));
            }
            Mixer::SharedKv { heads: c.heads, kv_heads: c.kv_heads, k_dim: c.head_dim, v_dim: c.head_dim, window: Window::Full }
        };
        if is_moe {
            let top_k = cx.req(per_layer(cx, "moe_topk", i)?.or(cx.raw.num_experts_per_tok), "moe_topk", "active parameters")?;
            let experts = cx.req(per_layer(cx, "num_experts", i)?, "num_experts", "MoE weights")?;
            let e_inter = cx.bounded(per_layer(cx, "moe_intermediate_size", i)?.unwrap_or(inter), "moe_intermediate_size")?;
            moe(c.hidden, experts, top_k, e_inter, true, &mut t);
            if mixed {
                let shared = cx.bounded(per_layer(cx, "num_shared_expert", i)?.unwrap_or(1), "num_shared_expert")?;
                if shared > 0 {
                    // vLLM builds the shared MLP without biases whatever `mlp_bias` says
                    gated_mlp("mlp.shared_mlp", Role::SharedExpert, c.hidden, shared * inter, false, &mut t);
                }
            }
        } else {
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, mlp_bias, &mut t);
        }
        norms("norms", 2, c.hidden, false, &mut t);
        layers.push(Layer::new(mixer, t));
    }
    if cla > 1 {
        cx.note(format!("cross-layer attention: one layer in {cla} projects and caches K/V, the others read the cache of the layer before them"));
    }
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    let family = if is_moe { Family::HunyuanMoe } else { Family::Hunyuan };
    cx.finish(family, &c, inter, tied, g, layers)
}

/// A size written either once (an integer) or once per layer (a list): the value for layer `i`.
fn per_layer(cx: &Cx, key: &str, i: usize) -> Result<Option<u64>> {
    match cx.raw.json.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => match a.get(i) {
            Some(v) => <u64 as crate::config::FromJson>::from_json(v, key).map(Some),
            None => Err(Error::invalid(key, format!("a list of {}", a.len()), format!("an integer or one value per layer (layer {i} has none)"))),
        },
        Some(v) => <u64 as crate::config::FromJson>::from_json(v, key).map(Some),
    }
}
