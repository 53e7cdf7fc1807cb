//! The generic decoder path for an unknown `model_type` that has the standard fields
//! (`hidden_size`, `num_hidden_layers`, `num_attention_heads`, `vocab_size`): a Llama-shaped
//! decoder (GQA from `num_key_value_heads`, SwiGLU MLP of `intermediate_size`, RMS norms). The
//! answer says the generic path was used; a config without those fields is an error naming the
//! first missing one. A config that also describes experts, latent attention (MLA), recurrent
//! layers or an activation only two-matrix MLPs use (xIELU) is refused: a dense Llama-shaped count would understate
//! its weights (an unknown MoE), give it per-head keys and values instead of a latent, give it a
//! per-token cache it does not have (a conv or SSM hybrid) or count a gate it lacks, and each
//! answer would look exact.

use super::*;

/// Shared fields (their spellings are `RawConfig`'s) that only recurrent layers (SSM, linear
/// attention) have; LFM2's short convolutions write `conv_L_cache`, which no other family reads.
const RECURRENT_FIELDS: &[&str] = &["state_size", "conv_kernel", "linear_conv_kernel_dim", "hybrid_override_pattern"];
/// `hidden_act` values that transformers uses only in two-matrix MLPs (`up_proj`, `down_proj`):
/// xIELU (Apertus). ReLU squared is not one: Nemotron, Arcee and Persimmon use it with two
/// matrices, BitNet with a gate, so an unknown type with it is left to the generic decoder.
const TWO_MATRIX_ACTS: &[&str] = &["xielu"];
/// `layer_types` entries the generic decoder can size.
const ATTENTION_KINDS: &[&str] = &["full_attention", "sliding_attention", "chunked_attention", "attention"];
/// Keys under which configs list a kind per layer: transformers' `layer_types`, Jamba's and
/// Zamba's `layers_block_type`, MiniCPM-SALA's `mixer_types` (sparse and lightning-attention
/// layers), `block_types`. An entry the generic decoder does not know is a layer it would size as
/// full attention.
const KIND_LISTS: &[&str] = &["layer_types", "layers_block_type", "mixer_types", "block_types"];

/// Refuses a config whose layers the generic decoder would size wrongly, naming the field.
fn refuse_what_it_cannot_size(cx: &Cx, mt: &str) -> Result<()> {
    let unsupported = |reason: String| Err(Error::Unsupported { model_type: mt.to_string(), reason });
    if let Some(e) = cx.raw.num_experts.filter(|&e| e > 1) {
        let key = cx.key("num_experts");
        return unsupported(format!("its config has mixture-of-experts field `{key}` = {e}, and the generic dense decoder would count one MLP per layer instead of the experts"));
    }
    if let Some(r) = cx.raw.kv_lora_rank.filter(|&r| r > 0) {
        return unsupported(format!("its config has multi-head latent attention field `kv_lora_rank` = {r}, and the generic decoder would give it per-head keys and values instead of the latent"));
    }
    let recurrent = RECURRENT_FIELDS.iter().find_map(|f| cx.spelled(f));
    if let Some(key) = recurrent.or_else(|| cx.raw.json.get("conv_L_cache").filter(|v| !v.is_null()).map(|_| "conv_L_cache")) {
        return unsupported(format!("its config has recurrent-layer field `{key}`, and the generic decoder knows only attention layers"));
    }
    if let Some(act) = cx.raw.json.get("hidden_act").and_then(Value::as_str).filter(|a| TWO_MATRIX_ACTS.contains(a)) {
        return unsupported(format!("its config has `hidden_act` = \"{act}\", which transformers uses only in a two-matrix MLP, and the generic decoder would count a gated MLP of three"));
    }
    for key in KIND_LISTS {
        let kinds = cx.raw.json.get(*key).and_then(Value::as_array).into_iter().flatten();
        if let Some(kind) = kinds.filter_map(Value::as_str).find(|k| !ATTENTION_KINDS.contains(k)) {
            let known = ATTENTION_KINDS.join(", ");
            return unsupported(format!("`{key}` has \"{kind}\" layers, and the generic decoder knows only the attention kinds {known}"));
        }
    }
    Ok(())
}

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let mt = if cx.model_type.is_empty() { "(none)".to_string() } else { cx.model_type.clone() };
    refuse_what_it_cannot_size(cx, &mt)?;
    let c = cx.common()?;
    let inter = cx.or(cx.raw.intermediate_size, "intermediate_size", 4 * c.hidden, "absent: 4 x hidden_size (generic path)")?;
    let tied = cx.tied(false);
    let bias = cx.raw.attention_bias.unwrap_or(false);
    cx.note(format!("model_type `{mt}` is not a known family: sized with the generic Llama-shaped decoder (weights within a few percent, KV per token exact if the standard fields are right)"));
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, window_for(cx, i, true), &mut t);
            gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, false, false);
    cx.finish(Family::Generic, &c, inter, tied, g, layers)
}
