//! DBRX (`dbrx`): its sizes sit in two nested objects, `attn_config` (`kv_n_heads`, the GQA
//! key/value heads) and `ffn_config` (`moe_num_experts`, `moe_top_k`, `ffn_hidden_size`, each
//! expert's width). Every layer: a fused `Wqkv` and `out_proj` without bias, a router of
//! `moe_num_experts x d_model`, gated experts (`w1`, `v1`, `w2`), two LayerNorms without bias;
//! an untied head: Mixtral's layout (`mixtral::sparse_decoder`). DBRX 132B: 16 experts, 4 active.

use super::*;

/// A required positive integer inside `obj` (`attn_config` or `ffn_config`), named in full when
/// it is absent or wrong.
fn nested(cx: &Cx, obj: &str, key: &str, needed_for: &str) -> Result<u64> {
    let field = format!("{obj}.{key}");
    let v = match cx.raw.json.get(obj).and_then(|o| o.get(key)) {
        None | Some(Value::Null) => None,
        Some(v) => Some(<u64 as crate::config::FromJson>::from_json(v, &field)?),
    };
    cx.req(v, &field, needed_for)
}

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let r = cx.raw;
    let hidden = cx.req(r.hidden_size, "d_model", "every weight shape")?;
    let layers = cx.req(r.num_hidden_layers, "n_layers", "weights and KV cache")?;
    let heads = cx.req(r.num_attention_heads, "n_heads", "attention shapes")?;
    let vocab = cx.req(r.vocab_size, "vocab_size", "embedding and LM head")?;
    let kv_heads = nested(cx, "attn_config", "kv_n_heads", "the KV cache")?;
    let head_dim = cx.head_dim(hidden, heads, kv_heads, None)?;
    let experts = nested(cx, "ffn_config", "moe_num_experts", "expert weights")?;
    let top_k = nested(cx, "ffn_config", "moe_top_k", "active parameters")?;
    let inter = nested(cx, "ffn_config", "ffn_hidden_size", "expert weights")?;
    let c = Common { hidden, layers, heads, kv_heads, head_dim, vocab };
    // Mixtral's layers (DBRX's config has no sliding window)
    super::mixtral::sparse_decoder(cx, Family::Dbrx, &c, experts, top_k, inter)
}
