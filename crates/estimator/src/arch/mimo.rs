//! Xiaomi MiMo-V2-Flash (`mimo_v2_flash`): a MoE decoder whose layers alternate sliding-window
//! attention (a 128-token window, twice the KV heads, per-head attention sinks) and full attention
//! (the first layer and every sixth), with keys of `head_dim` (192) and smaller values of
//! `v_head_dim` (128), so a token's cache is `kv_heads x (192 + 128)` values per layer. The first
//! layer has a dense MLP, the others 256 routed experts (sigmoid router with an
//! `e_score_correction_bias`, no shared expert). Two config layouts exist and both are read:
//! - the Hub's (remote code, what vLLM and SGLang read): `hybrid_layer_pattern` (1 = window
//!   layer), `moe_layer_freq` (1 = MoE layer), `swa_num_attention_heads`,
//!   `swa_num_key_value_heads`, `swa_head_dim`, `swa_v_head_dim`, `sliding_window_size`,
//!   `add_swa_attention_sink_bias`, `add_full_attention_sink_bias`;
//! - transformers' native port (`MiMoV2FlashConfig`): `layer_types`, `mlp_layer_types`
//!   (`dense`/`sparse`), the window layers with twice `num_key_value_heads` and sinks, the full
//!   layers without.
//!
//! The multi-token-prediction layers (`model.mtp.*`) are skipped at load by vLLM, SGLang and
//! transformers unless speculative decoding asks for them, so they are not counted.

use super::*;

/// A per-layer integer list (`hybrid_layer_pattern`, `moe_layer_freq`): entry `i`, checked.
fn flag_at(cx: &Cx, key: &str, i: usize, layers: u64) -> Result<Option<u64>> {
    match cx.raw.json.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() as u64 == layers => match a.get(i).and_then(Value::as_u64) {
            Some(v @ (0 | 1)) => Ok(Some(v)),
            _ => Err(Error::invalid(format!("{key}[{i}]"), a.get(i).map_or("nothing".into(), Value::to_string), "0 or 1")),
        },
        Some(Value::Array(a)) => Err(Error::invalid(key, format!("{} entries", a.len()), format!("one per layer ({layers})"))),
        Some(v) => Err(Error::invalid(key, v, format!("a list of 0/1, one per layer ({layers})"))),
    }
}

/// A per-layer string list (`mlp_layer_types`): entry `i`, checked against `kinds`.
fn kind_at<'a>(cx: &'a Cx, key: &str, i: usize, layers: u64, kinds: &[&str]) -> Result<Option<&'a str>> {
    match cx.raw.json.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() as u64 == layers => match a.get(i).and_then(Value::as_str) {
            Some(k) if kinds.contains(&k) => Ok(Some(k)),
            other => Err(Error::invalid(format!("{key}[{i}]"), other.unwrap_or("nothing"), kinds.join(" or "))),
        },
        Some(Value::Array(a)) => Err(Error::invalid(key, format!("{} entries", a.len()), format!("one per layer ({layers})"))),
        Some(v) => Err(Error::invalid(key, v, format!("a list of {}, one per layer ({layers})", kinds.join("/")))),
    }
}

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    cx.positions_default(131_072, "absent: MiMoV2FlashConfig default");
    let c = cx.common_with_head_dim(Some((192, "absent: MiMoV2FlashConfig default")))?;
    let v_dim = cx.or(cx.raw.v_head_dim, "v_head_dim", 128, "absent: MiMoV2FlashConfig default")?;
    let inter = cx.or(cx.raw.intermediate_size, "intermediate_size", 16_384, "absent: MiMoV2FlashConfig default (the dense layer's MLP)")?;
    let experts = cx.or(cx.raw.num_experts, "n_routed_experts", 256, "absent: MiMoV2FlashConfig default")?;
    let top_k = cx.or(cx.raw.num_experts_per_tok, "num_experts_per_tok", 8, "absent: MiMoV2FlashConfig default")?;
    let moe_inter = cx.or(cx.raw.moe_intermediate_size, "moe_intermediate_size", 2048, "absent: MiMoV2FlashConfig default")?;
    let shared = cx.bounded(cx.raw.n_shared_experts.unwrap_or(0), "n_shared_experts")?;
    let tied = cx.tied(false);
    let window_key = ["sliding_window", "sliding_window_size"].into_iter().find(|k| cx.raw.json.get(*k).is_some_and(|v| !v.is_null())).unwrap_or("sliding_window");
    let window = match cx.raw.sliding_window.and_then(|w| w.0) {
        Some(w) => cx.req(Some(w), window_key, "the window layers' cache")?,
        None => cx.or(None, "sliding_window", 128, "absent: MiMoV2FlashConfig default")?,
    };
    // the window layers: the Hub's `swa_*` fields, else the native port's rule (same query heads
    // and head sizes, twice the KV heads)
    let swa_heads = cx.or(cx.opt_u64("swa_num_attention_heads")?, "swa_num_attention_heads", c.heads, "absent: num_attention_heads (transformers' port)")?;
    let swa_kv = match cx.opt_u64("swa_num_key_value_heads")? {
        Some(k) => cx.req(Some(k), "swa_num_key_value_heads", "the window layers' cache")?,
        None => {
            let k = 2 * c.kv_heads;
            cx.default("swa_num_key_value_heads", k, "absent: 2 x num_key_value_heads (transformers' port)");
            k
        }
    };
    if swa_kv > swa_heads || swa_heads % swa_kv != 0 {
        let expected = format!("a divisor of swa_num_attention_heads ({swa_heads})");
        return Err(match cx.opt_u64("swa_num_key_value_heads")? {
            Some(_) => Error::invalid("swa_num_key_value_heads", swa_kv, expected),
            None => Error::invalid("num_key_value_heads", c.kv_heads, format!("half of a divisor of swa_num_attention_heads ({swa_heads}): without swa_num_key_value_heads the window layers have twice as many")),
        });
    }
    let swa_k = cx.or(cx.opt_u64("swa_head_dim")?, "swa_head_dim", c.head_dim, "absent: head_dim")?;
    let swa_v = cx.or(cx.opt_u64("swa_v_head_dim")?, "swa_v_head_dim", v_dim, "absent: v_head_dim")?;
    let swa_sinks = cx.opt_bool("add_swa_attention_sink_bias")?.unwrap_or(true);
    let full_sinks = cx.opt_bool("add_full_attention_sink_bias")?.unwrap_or(false);
    let qkv_bias = cx.raw.attention_bias.unwrap_or(false);
    if let Some(n) = cx.raw.num_nextn_predict_layers.filter(|&n| n > 0) {
        cx.note(format!("{n} multi-token-prediction layer(s) in the checkpoint are not loaded for serving and not counted"));
    }
    let h = c.hidden;
    let mut layers = Vec::with_capacity(c.layers as usize);
    for i in 0..c.layers as usize {
        let swa = match (flag_at(cx, "hybrid_layer_pattern", i, c.layers)?, kind_at(cx, "layer_types", i, c.layers, &["full_attention", "sliding_attention"])?) {
            (Some(p), _) => p == 1,
            (None, Some(k)) => k == "sliding_attention",
            (None, None) => !(i == 0 || (i + 1) % 6 == 0),
        };
        let is_moe = match (flag_at(cx, "moe_layer_freq", i, c.layers)?, kind_at(cx, "mlp_layer_types", i, c.layers, &["dense", "sparse"])?) {
            (Some(f), _) => f == 1,
            (None, Some(k)) => k == "sparse",
            (None, None) => i > 0,
        };
        let (heads, kvh, kd, vd, w, sinks) = if swa { (swa_heads, swa_kv, swa_k, swa_v, Window::Sliding(window), swa_sinks) } else { (c.heads, c.kv_heads, c.head_dim, v_dim, Window::Full, full_sinks) };
        let mut t = vec![
            Tensor::new("self_attn.q_proj", Role::AttnQ, heads * kd, h, Split::Heads { heads }),
            Tensor::new("self_attn.k_proj", Role::AttnKv, kvh * kd, h, Split::Heads { heads: kvh }),
            Tensor::new("self_attn.v_proj", Role::AttnKv, kvh * vd, h, Split::Heads { heads: kvh }),
            Tensor::new("self_attn.o_proj", Role::AttnO, h, heads * vd, Split::Row),
        ];
        if qkv_bias {
            t.push(Tensor::new("self_attn.q_proj.bias", Role::Bias, heads * kd, 1, Split::Heads { heads }));
            t.push(Tensor::new("self_attn.kv_proj.bias", Role::Bias, kvh * (kd + vd), 1, Split::Heads { heads: kvh }));
        }
        if sinks {
            t.push(Tensor::new("self_attn.attention_sink_bias", Role::Bias, heads, 1, Split::Heads { heads }));
        }
        if is_moe {
            deepseek_moe(h, experts, top_k, moe_inter, shared, true, &mut t);
        } else {
            gated_mlp("mlp", Role::Mlp, h, inter, false, &mut t);
        }
        norms("norms", 2, h, false, &mut t);
        layers.push(Layer::new(Mixer::Attention { heads, kv_heads: kvh, k_dim: kd, v_dim: vd, window: w }, t));
    }
    let g = embeddings(c.vocab, h, tied, false, false);
    cx.finish(Family::MiMoV2Flash, &c, inter, tied, g, layers)
}
