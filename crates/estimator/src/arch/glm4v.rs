//! GLM-4.1V, GLM-4.5V and GLM-4.6V (`glm4v`: GLM-4.1V-9B and GLM-4.6V-Flash, a GLM-4 text model
//! with four norms a layer; `glm4v_moe`: GLM-4.5V and GLM-4.6V, the GLM-4.5-Air text model;
//! transformers' `glm46v` wrapper around either). The
//! text model is resolved by `glm.rs`; this file counts the vision tower and the dummy image and
//! video vLLM profiles it with.
//!
//! The tower, tensor by tensor as transformers' `Glm4vVisionModel` and vLLM's `glm4_1v.py` build
//! it (H = `hidden_size`, O = `out_hidden_size`, I = `intermediate_size`):
//! - a patch convolution over `temporal_patch_size x patch_size^2` pixels of each channel, with a
//!   bias, an RMS norm after it, and a learned table of `(image_size / patch_size)^2` positions;
//! - per layer: two RMS norms, a fused `qkv` (a bias with `attention_bias`) and `proj` without,
//!   and a gated MLP whose width is `out_hidden_size` (not `intermediate_size`), without biases;
//! - a final RMS norm, a `spatial_merge_size^2` convolution from H to O with a bias, and a merger
//!   of one O x O linear, a LayerNorm with bias and a gated MLP of width I, without biases.
//!
//! vLLM divides the attention by heads (its `qkv` is a `QKVParallelLinear` over
//! `num_heads`, which the ranks must divide: TP 8 fails on 12 heads), the MLPs and the merger's
//! linears over the ranks, and replicates the convolutions, norms and position table.

use super::*;
use crate::model::{GlmVideo, VisionDummy};

/// The pixels transformers' GLM-4.1V video processor keeps over all frames of a video
/// (`size.longest_edge`, 28 x 28 x 2 x 30000), which vLLM also takes for the largest image
/// before 0.17.
pub const VIDEO_MAX_PIXELS: u64 = 47_040_000;
/// The pixels GLM-4.1V's image processor keeps (`smart_resize`'s `max_pixels`, 14 x 14 x 2 x 2 x
/// 2 x 6144), which vLLM's largest image follows from 0.17.
pub const IMAGE_MAX_PIXELS: u64 = 9_633_792;
/// Frames vLLM allows the dummy video (`_MAX_FRAMES_PER_VIDEO`).
pub const MAX_FRAMES: u64 = 600;
/// The vLLM release from which the tower applies its rotary positions in the model dtype
/// (`get_rope`'s cache); before, in float32 (`apply_rotary_pos_emb_vision`).
pub const ROTARY_IN_MODEL_DTYPE_FROM: (u64, u64, u64) = (0, 12, 0);

/// The tower and merger of a GLM-4.xV config (its `vision_config`; none, no tower), and the
/// geometry of vLLM's dummy items.
pub(crate) fn add_tower(cx: &mut Cx, text_hidden: u64, g: &mut Vec<Tensor>) {
    let Some(Value::Object(v)) = cx.raw.json.get("vision_config") else { return };
    // an absent or absurd size takes Glm4vVisionConfig's default, recorded
    let mut size = |key: &str, default: u64| -> u64 {
        match v.get(key).and_then(Value::as_u64).filter(|&x| (1..=MAX_DIM).contains(&x)) {
            Some(x) => x,
            None => {
                cx.default(&format!("vision_config.{key}"), default, "absent or out of range: Glm4vVisionConfig's default");
                default
            }
        }
    };
    let h = size("hidden_size", 1536);
    let layers = size("depth", 24);
    let heads = size("num_heads", 12);
    let out = size("out_hidden_size", 4096);
    let inter = size("intermediate_size", 13696);
    let patch = size("patch_size", 14);
    let image = size("image_size", 336);
    let merge = size("spatial_merge_size", 2);
    let temporal = size("temporal_patch_size", 2);
    let channels = size("in_channels", 3);
    // heads that do not divide the width are not a tower transformers builds
    let heads = if h % heads == 0 {
        heads
    } else {
        let d = if h % 12 == 0 { 12 } else { 1 };
        cx.default("vision_config.num_heads", d, &format!("{heads} does not divide hidden_size {h}"));
        d
    };
    let bias = v.get("attention_bias").and_then(Value::as_bool).unwrap_or(false);
    if out != text_hidden {
        cx.note(format!("vision_config.out_hidden_size {out} is not the text model's hidden_size {text_hidden}: the merger is counted at {out}"));
    }
    // u128 and saturating: each size is at most 2^24, their products are not
    let (hw, ow, iw, lw) = (h as u128, out as u128, inter as u128, layers as u128);
    let clamp = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    let per_patch = (channels as u128) * (temporal as u128) * (patch as u128).pow(2);
    let positions = ((image / patch.max(1)) as u128).pow(2);
    // attention: qkv and proj, divided by heads
    g.push(Tensor::new("visual.attention", Role::Encoder, clamp(4 * hw), h, Split::Heads { heads }).experts(layers, layers));
    if bias {
        g.push(Tensor::new("visual.attention.qkv.bias", Role::Encoder, clamp(3 * hw), 1, Split::Heads { heads }).experts(layers, layers));
    }
    // the gated MLP of width O: gate, up and down
    g.push(Tensor::new("visual.mlp", Role::Encoder, clamp(3 * ow), h, Split::Column).experts(layers, layers));
    // two RMS norms a layer; the patch convolution and its bias, its norm, the position table,
    // the final norm; the merge convolution and its bias; the merger's LayerNorm
    let replicated = lw * 2 * hw + per_patch * hw + hw + hw + positions * hw + hw + ow * hw * (merge as u128).pow(2) + ow + 2 * ow;
    g.push(Tensor::new("visual.norms_convolutions_and_positions", Role::Encoder, clamp(replicated), 1, Split::Replicated));
    // the merger: an O x O linear and a gated MLP of width I
    g.push(Tensor::new("visual.merger", Role::Encoder, clamp(ow * ow + 3 * iw * ow), 1, Split::Column));
    let tower: u128 = g.iter().filter(|t| t.role == Role::Encoder).map(Tensor::elements).sum();
    cx.note(format!("vision tower: GLM-4.xV ViT ({layers} layers x {h} wide, {heads} heads, MLP {out} wide) and its merger: {:.3}B parameters, counted from vision_config", tower as f64 / 1e9));
    let geometry = GlmVideo { patch, merge, temporal, channels };
    // the item V1 profiles is sized by release in `encoder_profile`; this is the largest image
    // of the newest releases, for the shape's explanation
    let img = image_item((0, 17, 0), &geometry);
    cx.vision_dummy = Some(VisionDummy {
        what: img.what,
        tokens_per_item: img.tokens,
        output_rows: img.tokens,
        output_width: out,
        input_values: img.input_values,
        patches: img.patches,
        width: h,
        mlp_width: out,
        gated_mlp: true,
        // float32 before [`ROTARY_IN_MODEL_DTYPE_FROM`], which `encoder_profile` applies
        rotary_f32: true,
        video_groups: false,
        early_videos: Vec::new(),
        frame_video: None,
        attention_split: Some(Split::Heads { heads }),
        glm_video: Some(geometry),
    });
}

/// One dummy item: what it is, its tokens (embeddings), patches and input values.
pub struct Item {
    pub what: String,
    pub tokens: u64,
    pub patches: u64,
    pub input_values: u64,
}

/// transformers' GLM-4.1V `smart_resize` of `frames` square frames of `side` pixels (at least
/// `temporal_patch_size` and 2 frames, as `_get_vision_info` passes them, in its default temporal
/// factor of 2): the side in cells of `patch x merge` once all frames keep at most `max_pixels`,
/// at least one cell.
fn resized_side(frames: u64, side: u64, g: &GlmVideo, max_pixels: u64) -> u64 {
    let cell = g.patch.saturating_mul(g.merge).max(1);
    crate::arch::vision::qwen3_video_side(frames.max(g.temporal).max(2), side, cell, 2, max_pixels)
}

/// The temporal groups of `frames` frames: padded to a multiple of `temporal_patch_size`.
fn groups(frames: u64, g: &GlmVideo) -> u64 {
    let t = g.temporal.max(1);
    (frames.saturating_add(frames % t) / t).max(1)
}

/// The largest side vLLM asks for: `frames` frames of it (at least 2) fill `max_pixels`.
fn largest_side(frames: u64, g: &GlmVideo, max_pixels: u64) -> u64 {
    let cell = g.patch.saturating_mul(g.merge).max(1);
    let side = ((max_pixels / frames.max(2)) as f64).sqrt().floor() as u64;
    (side / cell).saturating_mul(cell).max(cell)
}

/// `frames` frames of `side` pixels resized to keep at most `max_pixels`: (resized side,
/// temporal groups, patches, tokens).
fn video_grid(frames: u64, side: u64, g: &GlmVideo, max_pixels: u64) -> (u64, u64, u64, u64) {
    let s = resized_side(frames, side, g, max_pixels);
    let groups = groups(frames, g);
    let patches = groups.saturating_mul((s / g.patch.max(1)).saturating_pow(2));
    (s, groups, patches, patches / g.merge.max(1).saturating_pow(2))
}

/// The processor's values for `patches` patches (`temporal_patch_size x patch_size^2` pixels of
/// each channel).
fn input_values(patches: u64, g: &GlmVideo) -> u64 {
    patches.saturating_mul(g.channels.saturating_mul(g.temporal).saturating_mul(g.patch.saturating_pow(2)))
}

/// The side of vLLM's largest image (`get_image_size_with_most_features`): 16 frames filling the
/// video processor's pixels before 0.17, one image filling the image processor's from it.
fn image_side(ver: (u64, u64, u64), g: &GlmVideo) -> u64 {
    if ver < (0, 17, 0) {
        largest_side(16, g, VIDEO_MAX_PIXELS)
    } else {
        largest_side(1, g, IMAGE_MAX_PIXELS)
    }
}

/// The largest image vLLM builds, one frame of [`image_side`].
pub fn image_item(ver: (u64, u64, u64), g: &GlmVideo) -> Item {
    let side = image_side(ver, g);
    let patches = (side / g.patch.max(1)).saturating_pow(2);
    let tokens = patches / g.merge.max(1).saturating_pow(2);
    Item { what: format!("an image of {side} x {side} pixels: {tokens} tokens from {patches} patches"), tokens, patches, input_values: input_values(patches, g) }
}

/// The tokens the budget counts for the largest image (`get_max_image_tokens`): before 0.17, 16
/// frames of the image at the image processor's pixels (more than the image vLLM builds).
pub fn budget_image_tokens(ver: (u64, u64, u64), g: &GlmVideo) -> u64 {
    if ver < (0, 17, 0) {
        video_grid(16, image_side(ver, g), g, IMAGE_MAX_PIXELS).3
    } else {
        image_item(ver, g).tokens
    }
}

/// The dummy video of frames of the largest image for `room` tokens (`_get_max_video_frames`):
/// before 0.26 frames are added while the next count still fits (at most [`MAX_FRAMES`]); from
/// 0.26 the first count up to [`MAX_FRAMES`] with the most tokens that fit.
pub fn video_item(ver: (u64, u64, u64), room: u64, g: &GlmVideo) -> Item {
    let side = image_side(ver, g);
    let tokens_of = |n: u64| video_grid(n, side, g, VIDEO_MAX_PIXELS).3;
    let frames = if ver < (0, 26, 0) {
        let mut n = 0;
        while n < MAX_FRAMES {
            let next = tokens_of(n + 1);
            if next > room || next == 0 {
                break;
            }
            n += 1;
        }
        n.max(1)
    } else {
        let mut best = (1, 0);
        for n in 1..=MAX_FRAMES {
            let t = tokens_of(n);
            if t <= room && t > best.1 {
                best = (n, t);
            }
        }
        best.0
    };
    let (s, groups, patches, tokens) = video_grid(frames, side, g, VIDEO_MAX_PIXELS);
    Item { what: format!("a video of {frames} frames of {s} x {s} pixels in {groups} temporal groups: {tokens} tokens from {patches} patches"), tokens, patches, input_values: input_values(patches, g) }
}
