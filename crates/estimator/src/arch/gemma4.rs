//! Gemma 4 (`gemma4`, `gemma4_text`; source: transformers `configuration_gemma4.py` and
//! `modeling_gemma4.py`, vLLM `models/gemma4.py`). Sliding-window and full-attention layers
//! (`layer_types`, default 5 sliding : 1 full, the last layer always full) with **different
//! shapes**: sliding layers use `head_dim` and `num_key_value_heads`; full layers use
//! `global_head_dim` (default 512) and, when `attention_k_eq_v` is set, `num_global_key_value_heads`
//! and no `v_proj` (the key projection is reused as the value, but engines still cache both K and V).
//! The last `num_kv_shared_layers` layers read the cache of the last earlier layer of their kind
//! and keep none of their own ([`Mixer::SharedKv`]). `enable_moe_block` adds a routed-expert block
//! (`num_experts`, `top_k_experts`, `moe_intermediate_size`) beside the dense MLP of every layer.
//! Small variants add per-layer embeddings (PLE, `hidden_size_per_layer_input`). The vision and
//! audio towers of the multimodal checkpoints are modelled from their sub-configs.

use super::*;
use crate::model::VisionDummy;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let tied = cx.tied(true);
    let window = cx.raw.sliding_window.and_then(|w| w.0).filter(|&w| w > 0);
    let global_head_dim = match cx.opt_u64("global_head_dim")? {
        Some(d) => cx.req(Some(d), "global_head_dim", "full-attention shapes")?,
        None => {
            cx.default("global_head_dim", 512, "absent: Gemma4TextConfig default");
            512
        }
    };
    let k_eq_v = match cx.opt_bool("attention_k_eq_v")? {
        Some(b) => b,
        None => cx.flag(None, "attention_k_eq_v", false, "absent: Gemma4TextConfig default (separate V projection)"),
    };
    let global_kv_heads = match (k_eq_v, cx.opt_u64("num_global_key_value_heads")?) {
        (true, Some(n)) => {
            let n = cx.req(Some(n), "num_global_key_value_heads", "full-attention KV heads")?;
            if n > c.heads || c.heads % n != 0 {
                return Err(Error::invalid("num_global_key_value_heads", n, format!("a divisor of num_attention_heads ({})", c.heads)));
            }
            n
        }
        _ => c.kv_heads,
    };
    let shared = cx.opt_u64("num_kv_shared_layers")?.unwrap_or(0);
    if shared >= c.layers && shared > 0 {
        return Err(Error::invalid("num_kv_shared_layers", shared, format!("fewer than num_hidden_layers ({})", c.layers)));
    }
    let first_shared = (c.layers - shared) as usize;
    let double_wide = cx.opt_bool("use_double_wide_mlp")?.unwrap_or(false);
    let moe_block = cx.opt_bool("enable_moe_block")?.unwrap_or(false);
    let moe_dims = if moe_block {
        let experts = cx.req(cx.raw.num_experts, "num_experts", "MoE weights")?;
        let top_k = cx.req(cx.opt_u64("top_k_experts")?.or(cx.raw.num_experts_per_tok), "top_k_experts", "active parameters")?;
        let moe_inter = cx.req(cx.raw.moe_intermediate_size, "moe_intermediate_size", "expert weights")?;
        Some((experts, top_k.min(experts), moe_inter))
    } else {
        None
    };
    let ple = match cx.opt_u64("hidden_size_per_layer_input")? {
        Some(0) | None => 0,
        Some(d) => cx.req(Some(d), "hidden_size_per_layer_input", "per-layer embeddings")?,
    };
    let ple_vocab = match cx.opt_u64("vocab_size_per_layer_input")? {
        Some(v) if ple > 0 => cx.req(Some(v), "vocab_size_per_layer_input", "per-layer embeddings")?,
        _ => c.vocab,
    };
    if let Some(types) = &cx.raw.layer_types {
        if types.len() as u64 != c.layers {
            return Err(Error::invalid("layer_types", format!("{} entries", types.len()), format!("one entry per layer (num_hidden_layers = {})", c.layers)));
        }
    } else {
        cx.default("layer_types", "5 sliding : 1 full, last layer full", "absent: Gemma4TextConfig default (sliding_window_pattern 6)");
    }
    let last = c.layers as usize - 1;
    let kinds: Vec<bool> = range(c.layers)
        .map(|i| {
            // the last layer is always full attention (Gemma4TextConfig.__post_init__)
            let full = match cx.layer_type(i) {
                Some(t) => t != "sliding_attention",
                None => (i + 1) % 6 == 0,
            };
            full || i == last
        })
        .collect();
    if window.is_none() && kinds.iter().any(|f| !f) {
        cx.default("sliding_window", 512, "absent: Gemma4TextConfig default");
    }
    let window = window.unwrap_or(512);
    let layers = range(c.layers)
        .map(|i| {
            let full = kinds[i];
            let mut t = vec![];
            let (d, kvh) = if full { (global_head_dim, global_kv_heads) } else { (c.head_dim, c.kv_heads) };
            let alt = Common { head_dim: d, kv_heads: kvh, ..c };
            let w = if full { Window::Full } else { Window::Sliding(window) };
            let mut mixer = attention(&alt, AttnBias::default(), QkNorm::PerHead, w, &mut t);
            if full && k_eq_v {
                // no v_proj: the key projection serves as the value
                t.retain(|x| x.name != "self_attn.v_proj");
            }
            if i >= first_shared {
                // reads the cache of the last non-shared layer of its kind
                mixer = Mixer::SharedKv { heads: c.heads, kv_heads: kvh, k_dim: d, v_dim: d, window: w };
            }
            let wide = if double_wide && i >= first_shared { 2 } else { 1 };
            gated_mlp("mlp", Role::Mlp, c.hidden, inter * wide, false, &mut t);
            let mut n_norms = 4;
            if let Some((experts, top_k, moe_inter)) = moe_dims {
                moe(c.hidden, experts, top_k, moe_inter, true, &mut t);
                // router scale (hidden) and per-expert scale
                t.push(Tensor::new("router.scales", Role::Router, c.hidden + experts, 1, Split::Replicated));
                n_norms += 3;
            }
            per_layer_input(c.hidden, ple, &mut t);
            if ple > 0 {
                n_norms += 1;
            }
            norms("norms", n_norms, c.hidden, false, &mut t);
            t.push(Tensor::new("layer_scalar", Role::Norm, 1, 1, Split::Replicated));
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, c.hidden, tied, false, false);
    per_layer_embeddings(c.layers, c.hidden, ple, ple_vocab, &mut g);
    add_towers(cx, c.hidden, &mut g);
    if shared > 0 {
        cx.note(format!("the last {shared} layers reuse the KV cache of earlier layers (num_kv_shared_layers): no cache of their own"));
    }
    if k_eq_v {
        cx.note(format!("full-attention layers: {global_kv_heads} KV heads of {global_head_dim} with K reused as V (attention_k_eq_v); engines still cache K and V"));
    }
    let family = Family::Gemma4;
    let mut shape = cx.finish(family, &c, inter, tied, g, layers)?;
    if let Some((experts, top_k, _)) = moe_dims {
        shape.moe = Some((experts, top_k));
    }
    Ok(shape)
}

/// Frames of vLLM's dummy video for Gemma 4 (`_VIDEO_MAX_FRAMES`, `gemma4_mm.py` 0.19 to 0.33).
pub const GEMMA4_VIDEO_FRAMES: u64 = 32;
/// Soft tokens a video frame may take at most (`_VIDEO_MAX_SOFT_TOKENS`; an image takes
/// `default_output_length`, 280).
pub const GEMMA4_VIDEO_SOFT_TOKENS: u64 = 70;
/// The side of vLLM's dummy images and frames: Gemma 4's image processor has no `size`, so
/// `get_dummy_mm_data` falls back to 224 x 224.
pub const GEMMA4_DUMMY_SIDE: u64 = 224;

/// Soft tokens the tower returns for a `side` x `side` image at `max_soft_tokens` (vLLM's
/// `_compute_num_soft_tokens`, in Python's float arithmetic): the image is scaled to fill
/// `max_soft_tokens x pooling^2` patches, each side cut down to a multiple of `patch x pooling`.
fn soft_tokens(side: u64, patch: u64, pooling: u64, max_soft_tokens: u64) -> u64 {
    let (patch, pooling) = (patch.max(1), pooling.max(1));
    let unit = patch.saturating_mul(pooling);
    let max_patches = max_soft_tokens.saturating_mul(pooling.saturating_pow(2));
    let per_side = side as f64 / patch as f64;
    let scale = (max_patches as f64 / (per_side * per_side)).sqrt();
    let target = unit.max(((side as f64 * scale / unit as f64).floor() as u64).saturating_mul(unit));
    (target / patch).saturating_pow(2) / pooling.saturating_pow(2)
}

/// The largest item of vLLM V1's encoder profile (0.19 to 0.33): a video, which
/// `get_mm_max_tokens_per_item` counts as 32 frames x (70 soft tokens + boi + eoi + 6 timestamp
/// tokens) = 2,496 tokens, against `default_output_length` (280) for an image. Its 224 x 224
/// frames each give 64 soft tokens at 70; the processor pads every frame to `70 x pooling^2`
/// patches of `3 x patch^2` values, and the tower's layers run the padding too. 0.19 and 0.20 run
/// the tower one frame at a time, later releases in chunks of frames: the engine's tower peak
/// over all frames at once is an upper bound, which stays below the sampler's peak of a 262,144
/// vocabulary; what the profile keeps (the inputs and the embeddings) is exact.
fn video_dummy(patch: u64, pooling: u64, width: u64, mlp_width: u64, text_hidden: u64) -> VisionDummy {
    let frames = GEMMA4_VIDEO_FRAMES;
    let per_frame = soft_tokens(GEMMA4_DUMMY_SIDE, patch, pooling, GEMMA4_VIDEO_SOFT_TOKENS);
    let slots = GEMMA4_VIDEO_SOFT_TOKENS.saturating_mul(pooling.saturating_pow(2));
    let patches = frames.saturating_mul(slots);
    // each frame's soft tokens, boi and eoi, and about six timestamp tokens
    let tokens = frames.saturating_mul(GEMMA4_VIDEO_SOFT_TOKENS + 2 + 6);
    let rows = frames.saturating_mul(per_frame);
    VisionDummy {
        what: format!(
            "a video of {frames} frames of {side} x {side} pixels (the dummy size; {GEMMA4_VIDEO_SOFT_TOKENS} soft tokens a frame at most, {per_frame} at that size): {rows} embeddings from {patches} patch slots, counted as {tokens} tokens with each frame's delimiters and timestamps",
            side = GEMMA4_DUMMY_SIDE
        ),
        tokens_per_item: tokens,
        output_rows: rows,
        output_width: text_hidden,
        input_values: patches.saturating_mul(3).saturating_mul(patch.saturating_pow(2)),
        patches,
        width,
        mlp_width,
        gated_mlp: true,
        rotary_f32: false,
        video_groups: false,
        early_videos: Vec::new(),
        frame_video: None,
        attention_split: None,
        glm_video: None,
    }
}

/// The vision tower (a ViT with a gated MLP, a 2-D position table and a projection into the text
/// width) and the audio tower (a conformer) of the multimodal checkpoints, from `vision_config`
/// and `audio_config`: modelled parameter counts.
fn add_towers(cx: &mut Cx, text_hidden: u64, g: &mut Vec<Tensor>) {
    if let Some(v) = cx.sub_config("vision_config") {
        // Gemma4VisionConfig defaults
        let (h, layers, inter) = (sub_u64(&v, "hidden_size", 768), sub_u64(&v, "num_hidden_layers", 16), sub_u64(&v, "intermediate_size", 3072));
        let heads = sub_u64(&v, "num_attention_heads", 12);
        let hd = sub_u64(&v, "head_dim", 64);
        let patch = sub_u64(&v, "patch_size", 16);
        let positions = sub_u64(&v, "position_embedding_size", 10_240);
        let attn = heads * hd;
        let per_layer = (4 * h as u128 * attn as u128) + (3 * h as u128 * inter as u128) + 4 * h as u128 + 2 * hd as u128;
        let params = layers as u128 * per_layer + 3 * (patch as u128).pow(2) * h as u128 + 2 * positions as u128 * h as u128 + h as u128 * text_hidden as u128;
        let params = u64::try_from(params).unwrap_or(u64::MAX);
        g.push(Tensor::new("vision_tower", Role::Encoder, params, 1, Split::Replicated));
        cx.note(format!("vision tower estimated from vision_config ({layers} layers x {h} wide, gated MLP {inter}): {:.2}B parameters, modelled", params as f64 / 1e9));
        let pooling = sub_u64(&v, "pooling_kernel_size", 3);
        cx.vision_dummy = Some(video_dummy(patch, pooling, h, inter, text_hidden));
    }
    if let Some(a) = cx.sub_config("audio_config") {
        // Gemma4AudioConfig defaults; a conformer layer: attention (q, k, v, out, relative key)
        // 5h^2, two feed-forward modules 16h^2, the convolution module 3h^2
        let (h, layers) = (sub_u64(&a, "hidden_size", 1024), sub_u64(&a, "num_hidden_layers", 12));
        let out = sub_u64(&a, "output_proj_dims", 1536);
        let params = layers as u128 * (24 * (h as u128).pow(2) + 12 * h as u128) + h as u128 * out as u128 + out as u128 + out as u128 * text_hidden as u128;
        let params = u64::try_from(params).unwrap_or(u64::MAX);
        g.push(Tensor::new("audio_tower", Role::Encoder, params, 1, Split::Replicated));
        cx.note(format!("audio tower estimated from audio_config (conformer, {layers} layers x {h} wide): {:.2}B parameters, modelled", params as f64 / 1e9));
    }
}
