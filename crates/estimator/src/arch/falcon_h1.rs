//! Falcon-H1 (`falcon_h1`; the Falcon-H1, H1R and H1-Tiny releases): every decoder layer runs
//! softmax attention and a Mamba-2 mixer side by side on the same normed input and adds their
//! outputs, then a gated MLP. Each layer therefore caches K and V per token *and* keeps a Mamba-2
//! state per request; vLLM registers the two as separate layers (`model.layers.{i}.attn` and
//! `model.{N+i}.mixer`), SGLang lists every layer as both a full-attention and a Mamba layer, and
//! llama.cpp's hybrid memory gives every layer a KV cache and a recurrent state.
//!
//! Shapes follow transformers' `FalconH1Config` and `FalconH1Mixer`:
//! - the Mamba width is `mamba_d_ssm` (`null`: `mamba_expand x hidden_size`; absent: the config
//!   class's 1024), split into `mamba_n_heads` heads of `mamba_d_head` (`"auto"`: width / heads);
//! - `in_proj`: hidden to `d_ssm + conv_dim + heads` (gate, x/B/C, dt), with
//!   `conv_dim = d_ssm + 2 x mamba_n_groups x mamba_d_state`; a depthwise `conv1d` of
//!   `mamba_d_conv` taps (bias: `mamba_conv_bias`); `dt_bias`, `A_log`, `D` per head; the gated
//!   RMS norm only with `mamba_rms_norm`; `out_proj` back to hidden (bias: `projectors_bias`);
//! - state per layer and request: the convolution window `conv_dim x (d_conv - 1)` and the SSM
//!   state `heads x d_head x d_state`.
//!
//! The muP multipliers (`ssm_multipliers`, `mlp_multipliers`, ...) scale activations, not shapes.

use super::mamba::{mamba2_layer, ssm_fp32, Mamba2};
use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    cx.positions_default(8192, "absent: FalconH1Config default");
    let c = cx.common()?;
    let h = c.hidden;
    let inter = cx.or(cx.raw.intermediate_size, "intermediate_size", 14_336, "absent: FalconH1Config default")?;
    let tied = cx.tied(false);
    let attn_bias = cx.raw.attention_bias.unwrap_or(false);
    let mlp_bias = cx.raw.mlp_bias.unwrap_or(false);
    let d_ssm = match cx.raw.json.get("mamba_d_ssm") {
        Some(Value::Null) => {
            let expand = cx.or(cx.raw.expand, "mamba_expand", 2, "absent: FalconH1Config default")?;
            let w = expand.checked_mul(h).filter(|&w| w <= MAX_DIM).ok_or_else(|| Error::invalid("mamba_expand", expand, format!("a Mamba width mamba_expand x hidden_size ({h}) of at most {MAX_DIM}")))?;
            cx.default("mamba_d_ssm", w, "null: mamba_expand x hidden_size");
            w
        }
        None => cx.or(None, "mamba_d_ssm", 1024, "absent: FalconH1Config default")?,
        Some(_) => cx.req(cx.opt_u64("mamba_d_ssm")?, "mamba_d_ssm", "the Mamba-2 width")?,
    };
    let heads = cx.or(cx.raw.mamba_num_heads, "mamba_n_heads", 128, "absent: FalconH1Config default")?;
    if d_ssm % heads != 0 {
        return Err(Error::invalid("mamba_n_heads", heads, format!("a divisor of the Mamba width mamba_d_ssm ({d_ssm})")));
    }
    let head_dim = match cx.raw.mamba_head_dim {
        Some(d) => cx.req(Some(d), "mamba_d_head", "the SSM state")?,
        None => {
            cx.default("mamba_d_head", d_ssm / heads, "absent or \"auto\": mamba_d_ssm / mamba_n_heads");
            d_ssm / heads
        }
    };
    if head_dim.checked_mul(heads) != Some(d_ssm) {
        return Err(Error::invalid("mamba_d_head", head_dim, format!("mamba_d_ssm / mamba_n_heads = {d_ssm} / {heads} (FalconH1Config's check)")));
    }
    let m = Mamba2 {
        heads,
        head_dim,
        groups: cx.or(cx.raw.n_groups, "mamba_n_groups", 1, "absent: FalconH1Config default")?,
        state: cx.or(cx.raw.state_size, "mamba_d_state", 256, "absent: FalconH1Config default")?,
        conv: cx.or(cx.raw.conv_kernel, "mamba_d_conv", 4, "absent: FalconH1Config default")?,
        conv_bias: cx.opt_bool("mamba_conv_bias")?.unwrap_or(true),
        gated_norm: cx.opt_bool("mamba_rms_norm")?.unwrap_or(false),
        in_bias: cx.opt_bool("mamba_proj_bias")?.unwrap_or(false),
        out_bias: cx.opt_bool("projectors_bias")?.unwrap_or(false),
    }
    .checked(cx)?;
    if cx.raw.json.get("attn_layer_indices").is_some_and(|v| !v.is_null()) {
        cx.note("`attn_layer_indices` is set, but transformers, vLLM, SGLang and llama.cpp put attention in every Falcon-H1 layer: so does this estimate");
    }
    let fp32 = ssm_fp32(cx);
    let layer = {
        let mut t = vec![];
        let mixer = attention(&c, AttnBias { qkv: attn_bias, o: attn_bias }, QkNorm::None, Window::Full, &mut t);
        let mamba = mamba2_layer(h, m, fp32, &mut t);
        gated_mlp("feed_forward", Role::Mlp, h, inter, mlp_bias, &mut t);
        norms("norms", 2, h, false, &mut t);
        Layer { beside: Some(mamba), ..Layer::new(mixer, t) }
    };
    let layers = range(c.layers).map(|_| layer.clone()).collect();
    let g = embeddings(c.vocab, h, tied, false, false);
    cx.finish(Family::FalconH1, &c, inter, tied, g, layers)
}
