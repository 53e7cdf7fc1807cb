//! Llama-Nemotron NAS models (`nemotron-nas`, `DeciLMForCausalLM`: Llama-3.3-Nemotron-Super-49B,
//! Llama-3.1-Nemotron-Ultra-253B), Llama layers pruned block by block. Each entry of
//! `block_configs` says, for its layer:
//! - `attention`: `no_op` (no attention and no `input_layernorm`), `replace_with_linear` (one
//!   `hidden x hidden` linear after the norm, no cache), or GQA with
//!   `num_attention_heads / n_heads_in_group` KV heads;
//! - `ffn`: `no_op` (no MLP and no `post_attention_layernorm`), `replace_with_linear`, or a gated
//!   MLP whose width comes from `ffn_mult`: `int(2 x ffn_mult x hidden / 3)` rounded up to a
//!   multiple of 256 (`_ffn_mult_to_intermediate_size`, the same in transformers' remote code,
//!   vLLM, SGLang and llama.cpp).
//!
//! Only the layers with attention hold a KV cache (vLLM builds no `Attention` module for the
//! others; llama.cpp gives them zero KV heads). The config's `num_key_value_heads` and
//! `intermediate_size` are null; the shape reports the first attention layer's KV heads (as vLLM
//! does) and the widest MLP.
//!
//! DeciLM-7B (`deci`, without `block_configs`) gives one KV head count per layer in
//! `num_key_value_heads_per_layer`, every layer with attention and the same MLP.

use super::*;

/// `_ffn_mult_to_intermediate_size`: `int(2 * ffn_mult * hidden / 3)`, then up to a multiple of 256.
pub(crate) fn ffn_mult_to_intermediate(mult: f64, hidden: u64) -> u64 {
    let width = (2.0 * mult * hidden as f64 / 3.0).floor();
    let width = if width.is_finite() && width >= 0.0 { width.min(MAX_DIM as f64) as u64 } else { 0 };
    width.div_ceil(256).saturating_mul(256)
}

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    // the config writes `num_key_value_heads: null`: the KV heads are per layer, not a default
    cx.defaults.retain(|d| d.field != "num_key_value_heads");
    let h = c.hidden;
    let tied = cx.tied(false);
    let bias = cx.raw.attention_bias.unwrap_or(false);
    let bias = AttnBias { qkv: bias, o: bias };
    let mlp_bias = cx.raw.mlp_bias.unwrap_or(false);
    let blocks = match cx.raw.json.get("block_configs") {
        Some(Value::Array(b)) => Some(b.clone()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Error::FieldType { field: "block_configs".into(), message: "expected a list of {attention, ffn} objects".into() }),
    };
    let Some(blocks) = blocks else { return deci_7b(cx, c, tied, bias, mlp_bias) };
    if blocks.len() as u64 != c.layers {
        return Err(Error::invalid("block_configs", format!("{} entries", blocks.len()), format!("one per layer ({})", c.layers)));
    }
    let mut layers = Vec::with_capacity(blocks.len());
    let (mut first_kv, mut widest) = (None, 0);
    let (mut no_attention, mut no_ffn, mut linear_attn, mut linear_ffn) = (0, 0, 0, 0);
    for (i, b) in blocks.iter().enumerate() {
        let part = |name: &str| -> Result<Map<String, Value>> {
            match b.get(name) {
                Some(Value::Object(m)) => Ok(m.clone()),
                None | Some(Value::Null) => Ok(Map::new()),
                Some(_) => Err(Error::FieldType { field: format!("block_configs[{i}].{name}"), message: "expected an object".into() }),
            }
        };
        let (attn, ffn) = (part("attention")?, part("ffn")?);
        let flag = |m: &Map<String, Value>, part: &str, key: &str| -> Result<bool> {
            match m.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(v)) => Ok(*v),
                Some(_) => Err(Error::FieldType { field: format!("block_configs[{i}].{part}.{key}"), message: "expected true or false".into() }),
            }
        };
        let mut t = vec![];
        let mixer = if flag(&attn, "attention", "no_op")? {
            no_attention += 1;
            Mixer::None
        } else if flag(&attn, "attention", "replace_with_linear")? {
            linear_attn += 1;
            norms("input_layernorm", 1, h, false, &mut t);
            t.push(Tensor::new("self_attn.linear_attn", Role::AttnO, h, h, Split::Row));
            Mixer::None
        } else {
            let field = format!("block_configs[{i}].attention.n_heads_in_group");
            let group = match attn.get("n_heads_in_group") {
                Some(v) if !v.is_null() => <u64 as crate::config::FromJson>::from_json(v, &field)?,
                _ => return Err(Error::MissingField { field, model_type: cx.model_type.clone(), needed_for: "the layer's KV heads".into() }),
            };
            if group == 0 || c.heads % group != 0 {
                return Err(Error::invalid(&field, group, format!("a positive divisor of num_attention_heads ({})", c.heads)));
            }
            let layer = Common { kv_heads: c.heads / group, ..c };
            first_kv.get_or_insert(layer.kv_heads);
            norms("input_layernorm", 1, h, false, &mut t);
            attention(&layer, bias, QkNorm::None, Window::Full, &mut t)
        };
        if flag(&ffn, "ffn", "no_op")? {
            no_ffn += 1;
        } else if flag(&ffn, "ffn", "replace_with_linear")? {
            linear_ffn += 1;
            norms("post_attention_layernorm", 1, h, false, &mut t);
            t.push(Tensor::new("mlp.linear_mlp", Role::Mlp, h, h, Split::Row));
        } else {
            let field = format!("block_configs[{i}].ffn.ffn_mult");
            let mult = ffn.get("ffn_mult").and_then(Value::as_f64).filter(|m| m.is_finite() && *m > 0.0).ok_or_else(|| match ffn.get("ffn_mult") {
                None | Some(Value::Null) => Error::MissingField { field: field.clone(), model_type: cx.model_type.clone(), needed_for: "the layer's MLP width".into() },
                Some(v) => Error::invalid(&field, v, "a positive number"),
            })?;
            let inter = ffn_mult_to_intermediate(mult, h);
            widest = widest.max(inter);
            norms("post_attention_layernorm", 1, h, false, &mut t);
            gated_mlp("mlp", Role::Mlp, h, inter, mlp_bias, &mut t);
        }
        layers.push(Layer::new(mixer, t));
    }
    let c = Common { kv_heads: first_kv.unwrap_or(c.kv_heads), ..c };
    cx.note(format!(
        "Nemotron NAS: {} of {} layers with attention, {} with an MLP (widths from each block's ffn_mult){}",
        c.layers - no_attention - linear_attn,
        c.layers,
        c.layers - no_ffn - linear_ffn,
        if linear_attn + linear_ffn > 0 { format!(", {} attention and {linear_ffn} MLP blocks replaced by one linear, which vLLM and SGLang do not build", linear_attn) } else { String::new() }
    ));
    let g = embeddings(c.vocab, h, tied, false, false);
    cx.finish(Family::NemotronNas, &c, widest, tied, g, layers)
}

/// DeciLM-7B: a Llama with `num_key_value_heads_per_layer`.
fn deci_7b(cx: &mut Cx, c: Common, tied: bool, bias: AttnBias, mlp_bias: bool) -> Result<ModelShape> {
    let per_layer: Vec<u64> = match cx.raw.json.get("num_key_value_heads_per_layer") {
        Some(v @ Value::Array(_)) => <Vec<u64> as crate::config::FromJson>::from_json(v, "num_key_value_heads_per_layer")?,
        // a `deci` config with one KV head count is a Llama
        _ if cx.model_type == "deci" && cx.raw.num_key_value_heads.is_some() => vec![c.kv_heads; c.layers as usize],
        _ => {
            return Err(Error::MissingField {
                field: "block_configs".into(),
                model_type: cx.model_type.clone(),
                needed_for: "each layer's attention and MLP (or num_key_value_heads_per_layer for DeciLM-7B)".into(),
            })
        }
    };
    if per_layer.len() as u64 != c.layers {
        return Err(Error::invalid("num_key_value_heads_per_layer", format!("{} entries", per_layer.len()), format!("one per layer ({})", c.layers)));
    }
    if let Some(&bad) = per_layer.iter().find(|&&k| k == 0 || c.heads % k != 0) {
        return Err(Error::invalid("num_key_value_heads_per_layer", bad, format!("positive divisors of num_attention_heads ({})", c.heads)));
    }
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let layers = per_layer
        .iter()
        .map(|&kv| {
            let mut t = vec![];
            let mixer = attention(&Common { kv_heads: kv, ..c }, bias, QkNorm::None, Window::Full, &mut t);
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, mlp_bias, &mut t);
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let c = Common { kv_heads: per_layer.first().copied().unwrap_or(c.kv_heads), ..c };
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    cx.finish(Family::NemotronNas, &c, inter, tied, g, layers)
}
