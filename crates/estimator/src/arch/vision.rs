//! Vision towers of multimodal checkpoints (Gemma 3 SigLIP, Llama 3.2/4 vision, Qwen2-VL, Qwen3-VL,
//! Qwen3.5, and Pixtral in Mistral 3 and LLaVA; GLM-4.xV's in `glm4v.rs`). Their weights are loaded with the language model, so they count toward weight
//! memory; their shapes are estimated from `vision_config` as a ViT (attention + MLP + norms per layer, patch and
//! position embeddings, a projector to the text width). This part is modelled, not exact.
//!
//! Under tensor parallelism the tower is divided over the ranks: vLLM's and SGLang's ViTs (SigLIP,
//! Mllama and Llama 4 vision, Qwen2-VL to Qwen3-VL, Pixtral in the Hugging Face layout) build
//! their attention and MLP from column- and row-parallel linears (vLLM's default
//! `--mm-encoder-tp-mode weights`); the patch and position embeddings and norms they replicate
//! are a small part and are divided with the rest.

use super::*;
use crate::model::{VideoDummy, VisionDummy};

pub(crate) fn add_encoder(cx: &mut Cx, text_hidden: u64, g: &mut Vec<Tensor>) {
    // InternVL's tower is counted by `internvl.rs` whatever the text family
    if cx.intern_vit {
        return;
    }
    let Some(Value::Object(v)) = cx.raw.json.get("vision_config") else { return };
    if v.get("model_type").and_then(Value::as_str) == Some("pixtral") {
        return pixtral(cx, v, text_hidden, g);
    }
    let get = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(Value::as_u64).filter(|&x| x <= MAX_DIM));
    // Qwen2-VL names the tower's width `embed_dim` and its output (the text width) `hidden_size`
    let (Some(h), Some(layers)) = (get(&["embed_dim", "hidden_size", "width"]), get(&["num_hidden_layers", "depth", "num_layers"])) else {
        cx.note("vision_config without hidden_size/num_hidden_layers: vision tower not counted");
        return;
    };
    let inter = get(&["intermediate_size", "mlp_dim"]).unwrap_or(get(&["mlp_ratio"]).unwrap_or(4).saturating_mul(h));
    // Qwen2-VL / 2.5-VL merge `spatial_merge_size^2` patches before a 2-layer MLP to the text width
    let merge = get(&["spatial_merge_size"]).unwrap_or(1) as u128;
    let patch = get(&["patch_size"]).unwrap_or(14);
    let image = get(&["image_size"]).unwrap_or(336);
    let channels = get(&["num_channels", "in_channels", "in_chans"]).unwrap_or(3);
    // Qwen2.5-VL (the tower with window attention and `fullatt_block_indexes`): a gated MLP with
    // biases and RMS norms (no bias) where the others have a plain MLP and LayerNorms
    let gated = v.contains_key("fullatt_block_indexes") || cx.model_type.starts_with("qwen2_5_vl");
    // Qwen2-VL and later project to `out_hidden_size` (the text width in every release)
    let out = get(&["out_hidden_size"]).unwrap_or(text_hidden) as u128;
    let extra_layers = get(&["num_global_layers"]).unwrap_or(0);
    // u128 and saturating: absurd sub-config values must not overflow
    let (h, inter, layers, extra_layers, patch, image, channels) = (h as u128, inter as u128, layers as u128, extra_layers as u128, patch as u128, image as u128, channels as u128);
    // MLP parameters, and those of one norm over the width
    let (mlp, norm) = if gated { (3 * h * inter + 2 * inter + h, h) } else { (2 * h * inter + inter + h, 2 * h) };
    let per_layer = 4 * h * h + 4 * h + mlp + 2 * norm;
    // Qwen2-VL's patches span `temporal_patch_size` frames and take rotary positions (no table);
    // Qwen3-VL / 3.5 add a learned table of `num_position_embeddings`
    let temporal = get(&["temporal_patch_size"]).unwrap_or(1).max(1) as u128;
    let positions = match get(&["num_position_embeddings"]) {
        Some(n) => n as u128,
        None if merge > 1 => 0,
        None => (image / patch.max(1)).saturating_pow(2) + 1,
    };
    let projector = if merge > 1 {
        let m = (h * merge * merge).min(1 << 40);
        // a norm's parameters, then two linear layers with biases
        let merger = |norm: u128| norm + m * m + m + m * out + out;
        // Qwen3-VL: one more merger per deepstack layer, a LayerNorm over the merged width
        let deepstack = v.get("deepstack_visual_indexes").and_then(Value::as_array).map_or(0, |a| a.len().min(1024)) as u128;
        merger(norm) + deepstack * merger(2 * m)
    } else if cx.model_type.starts_with("llava") {
        // LlavaMultiModalProjector: two linears with biases (LLaVA-NeXT adds an image-newline vector)
        let t = text_hidden as u128;
        let newline = if cx.model_type == "llava_next" { t } else { 0 };
        h * t + t + t * t + t + newline
    } else {
        h * text_hidden as u128 + text_hidden as u128
    };
    // Qwen3-VL / 3.5 (the towers with a position table) put a bias on the patch embedding
    let patch_bias = if v.contains_key("num_position_embeddings") { h } else { 0 };
    let params = (layers + extra_layers).saturating_mul(per_layer) + channels * temporal * patch * patch * h + patch_bias + positions.saturating_mul(h) + projector;
    let params = u64::try_from(params).unwrap_or(u64::MAX);
    let (h, layers, extra_layers) = (h as u64, layers as u64, extra_layers as u64);
    g.push(Tensor::new("vision_tower", Role::Encoder, params, 1, Split::Column));
    let geometry = Geometry { width: h, mlp_width: inter as u64, patch: patch as u64, image: image as u64, merge: merge as u64, channels: channels as u64, temporal: temporal as u64, gated, out: out as u64 };
    cx.vision_dummy = largest_item(cx, v, &geometry);
    cx.mm_tokens = mm_tokens_per_prompt(cx, cx.vision_dummy.as_ref());
    cx.note(format!("vision tower estimated from vision_config as a ViT ({} layers x {h} wide): {:.2}B parameters, modelled", layers + extra_layers, params as f64 / 1e9));
}

/// The largest pixel count Qwen2-VL's and Qwen2.5-VL's image processor keeps (`max_pixels` of
/// their `preprocessor_config.json`, which `config.json` does not carry): 12845056 = 16384 merged
/// patches of 28 x 28.
pub const QWEN2_VL_MAX_PIXELS: u64 = 12_845_056;

/// The largest image Qwen3-VL's and Qwen3.5's image processor keeps (`size.longest_edge` of their
/// `preprocessor_config.json`, which `config.json` does not carry): 4096 x 4096 pixels.
pub const QWEN3_VL_MAX_PIXELS: u64 = 16_777_216;
/// The pixels Qwen3-VL's video processor keeps over all frames of a video (`size.longest_edge` of
/// `video_preprocessor_config.json`): 12,288 embeddings at most. vLLM 0.12's start-up of
/// Qwen3-VL-30B-A3B logs the encoder budget this gives, 153,600 tokens = 12,288 x 12.5.
pub const QWEN3_VL_VIDEO_MAX_PIXELS: u64 = 25_165_824;
/// Frames vLLM 0.11 and 0.12 allow Qwen3-VL's dummy video (`_MAX_FRAMES_PER_VIDEO`).
pub const QWEN3_VL_MAX_DUMMY_FRAMES: u64 = 24_576;

/// transformers' Qwen3-VL video `smart_resize` of `frames` square frames of `side` pixels: the
/// side in multiples of `cell` once all frames together keep at most `max_pixels` (the frame
/// count rounds half to even to the temporal patch, as Python's `round` does).
pub(crate) fn qwen3_video_side(frames: u64, side: u64, cell: u64, temporal: u64, max_pixels: u64) -> u64 {
    let (c, t) = (cell.max(1) as f64, temporal.max(1) as f64);
    let bar = ((side as f64 / c).round_ties_even() * c) as u64;
    let t_bar = ((frames as f64 / t).round_ties_even() * t) as u64;
    if t_bar.saturating_mul(bar).saturating_mul(bar) <= max_pixels {
        return bar;
    }
    let beta = (frames as f64 * side as f64 * side as f64 / max_pixels.max(1) as f64).sqrt();
    (((side as f64 / beta / c).floor() * c) as u64).max(cell)
}

/// Multimodal tokens of the largest prompt V0 profiles (one item of each modality, at its
/// largest), where the family's rule is known: Qwen2-VL / Qwen2.5-VL an image and a video of
/// `max_pixels` (the largest item's tokens each), LLaVA one CLIP image, Gemma 3
/// `mm_tokens_per_image`. `None` for other towers.
fn mm_tokens_per_prompt(cx: &Cx, item: Option<&VisionDummy>) -> Option<u64> {
    let (t, item) = (cx.model_type.as_str(), item?);
    if item.video_groups {
        Some(2 * item.tokens_per_item)
    } else if t == "llava" || t == "gemma3" {
        Some(item.tokens_per_item)
    } else {
        None
    }
}

/// The largest pixel count Llama 4's image processor tiles an image into: `max_patches` 16 tiles
/// of `image_size` (its `preprocessor_config.json`), plus one global tile.
pub const LLAMA4_MAX_TILES: u64 = 16;

/// What a tower's `vision_config` says about the items it runs.
struct Geometry {
    width: u64,
    mlp_width: u64,
    patch: u64,
    image: u64,
    merge: u64,
    channels: u64,
    temporal: u64,
    gated: bool,
    out: u64,
}

/// The largest item vLLM's processor builds for this family's dummy data, where the rule is
/// known: Qwen2-VL and Qwen2.5-VL a video of frames of `max_pixels` (one temporal group of two
/// frames is as large as the largest image; the engine adds the groups `max_model_len` allows); Gemma 3 one
/// SigLIP crop of `image_size` (pan-and-scan off, the default) giving `mm_tokens_per_image`; Llama 4
/// `max_patches` tiles and the global one, each pixel-shuffled by `pixel_shuffle_ratio`; LLaVA one
/// CLIP image; Qwen3-VL and Qwen3.5 an image of `longest_edge` (the largest from vLLM 0.13) and
/// the video vLLM 0.11 and 0.12 profile instead. `None` elsewhere (Mllama's cross-attention
/// tiles): the text model's profile alone is modelled there, and says so.
fn largest_item(cx: &Cx, v: &Map<String, Value>, g: &Geometry) -> Option<VisionDummy> {
    let t = cx.model_type.as_str();
    let per_side = (g.image / g.patch.max(1)).max(1);
    // Qwen-VL towers: a token is `merge^2` patches, a cell of `patch x merge` pixels a side; a
    // patch spans `temporal` frames of the input's channels
    let cell = g.patch.saturating_mul(g.merge.max(1)).max(1);
    let merged = g.merge.max(1).saturating_pow(2);
    let per_patch = g.channels.saturating_mul(g.temporal).saturating_mul(g.patch.saturating_pow(2));
    let plain = |tokens: u64, rows: u64, patches: u64, input: u64, what: String, rotary_f32: bool| VisionDummy {
        what,
        tokens_per_item: tokens.max(1),
        output_rows: rows,
        output_width: g.out,
        input_values: input,
        patches,
        width: g.width,
        mlp_width: g.mlp_width,
        gated_mlp: g.gated,
        rotary_f32,
        video_groups: false,
        early_videos: Vec::new(),
        frame_video: None,
        attention_split: None,
        glm_video: None,
    };
    if t.starts_with("qwen2_vl") || t.starts_with("qwen2_5_vl") {
        let tokens = (QWEN2_VL_MAX_PIXELS / cell.saturating_mul(cell)).max(1);
        let patches = tokens.saturating_mul(merged);
        let input = patches.saturating_mul(per_patch);
        // a video of frames of that size is at least as large, and is the item profiled
        let frames = VisionDummy { video_groups: true, ..plain(tokens, tokens, patches, input, format!("a video of frames of {QWEN2_VL_MAX_PIXELS} pixels (the processor's max_pixels), {tokens} tokens from {patches} patches per {} frames", g.temporal), true) };
        Some(frames)
    } else if t.starts_with("qwen3_vl") || t.starts_with("qwen3_5") {
        // the largest image: the largest square of `max_pixels` in cells of merged patches
        let side = (QWEN3_VL_MAX_PIXELS.isqrt() / cell).saturating_mul(cell);
        let grid = |side: u64| (side / g.patch.max(1)).saturating_pow(2);
        let patches = grid(side);
        let tokens = patches / merged;
        let image = plain(tokens, tokens, patches, patches.saturating_mul(per_patch), format!("an image of {side} x {side} pixels (the processor's longest_edge {QWEN3_VL_MAX_PIXELS}): {tokens} tokens from {patches} patches"), true);
        let out = g.out.saturating_mul(1 + v.get("deepstack_visual_indexes").and_then(Value::as_array).map_or(0, |a| a.len().min(64)) as u64);
        let video = |frames: u64| {
            let s = qwen3_video_side(frames, side, cell, g.temporal, QWEN3_VL_VIDEO_MAX_PIXELS);
            let t = g.temporal.max(1);
            let patches = ((frames + frames % t) / t).max(1).saturating_mul(grid(s));
            (s, patches, patches / merged)
        };
        // vLLM 0.11/0.12's `_get_max_video_frames(max_model_len)` adds frames from two while the
        // next count still fits: the frames it stops at change where a count sets a new record
        let mut early = Vec::new();
        let mut record = 0;
        let mut add = |min_model_len: u64, frames: u64| {
            let (s, patches, rows) = video(frames);
            let budget = rows.saturating_mul(25) / 2;
            early.push(VideoDummy {
                min_model_len,
                what: format!("a video of {frames} frames of {s} x {s} pixels (the video processor's longest_edge {QWEN3_VL_VIDEO_MAX_PIXELS} over all frames): {rows} embeddings from {patches} patches, counted as {budget} tokens (12.5 an embedding, for the timestamps)"),
                tokens_per_item: budget.max(1),
                output_rows: rows,
                patches,
                input_values: patches.saturating_mul(per_patch),
            });
        };
        add(0, 2);
        // once the resize always shrinks (from (max_pixels / side^2) + t/2 frames), g frames keep at
        // most ceil(g / t) x max(1, max_pixels / (g x cell^2)) embeddings: no later count beats a
        // record at or above that bound for the next g, or ceil(cap / t)
        let t = g.temporal.max(1) as u128;
        let (max_px, cell2) = (QWEN3_VL_VIDEO_MAX_PIXELS as u128, (cell as u128).pow(2));
        let shrinks_from = max_px.div_ceil((side as u128).pow(2).max(1)) + t.div_ceil(2) + 1;
        let bound = |g0: u128| (max_px.saturating_mul(g0 + t - 1) / t.saturating_mul(g0).saturating_mul(cell2).max(1)).max((QWEN3_VL_MAX_DUMMY_FRAMES as u128).div_ceil(t));
        for frames in 2..QWEN3_VL_MAX_DUMMY_FRAMES {
            let next = video(frames + 1).2;
            if next > record {
                if record > 0 {
                    add(record, frames);
                }
                record = next;
            }
            let rest = frames as u128 + 2;
            if rest >= shrinks_from && record as u128 >= bound(rest) {
                break;
            }
        }
        add(record, QWEN3_VL_MAX_DUMMY_FRAMES);
        Some(VisionDummy { output_width: out, early_videos: early, ..image })
    } else if t == "gemma3" {
        let tokens = cx.raw.json.get("mm_tokens_per_image").and_then(Value::as_u64).filter(|&n| (1..=MAX_DIM).contains(&n))?;
        let patches = per_side.saturating_pow(2);
        let input = g.channels.saturating_mul(g.image.saturating_pow(2));
        Some(plain(tokens, tokens, patches, input, format!("an image of {0} x {0} pixels (one SigLIP crop, pan-and-scan off): {tokens} tokens from {patches} patches", g.image), false))
    } else if t == "llama4" {
        let ratio = v.get("pixel_shuffle_ratio").and_then(Value::as_f64).filter(|r| *r > 0.0 && *r <= 1.0).unwrap_or(0.5);
        let tiles = LLAMA4_MAX_TILES + 1;
        let per_tile = ((per_side.saturating_pow(2)) as f64 * ratio * ratio) as u64;
        let tokens = tiles.saturating_mul(per_tile);
        // one class token per tile
        let patches = tiles.saturating_mul(per_side.saturating_pow(2).saturating_add(1));
        let input = tiles.saturating_mul(g.channels).saturating_mul(g.image.saturating_pow(2));
        Some(plain(tokens, tokens, patches, input, format!("an image of {LLAMA4_MAX_TILES} tiles and a global one of {0} x {0} pixels (the processor's max_patches): {tokens} tokens from {patches} patches", g.image), true))
    } else if t == "llava" {
        let tokens = per_side.saturating_pow(2);
        let input = g.channels.saturating_mul(g.image.saturating_pow(2));
        Some(plain(tokens, tokens, tokens.saturating_add(1), input, format!("an image of {0} x {0} pixels: {tokens} tokens", g.image), false))
    } else {
        None
    }
}

/// Pixtral (`vision_config.model_type = "pixtral"`): a ViT with 2-D rotary positions (no table), no
/// biases, gated MLPs and RMS norms, as transformers' `PixtralVisionModel` builds it. Mistral 3
/// (Mistral Small 3.1/3.2) projects through an RMS norm, a patch merger of `spatial_merge_size^2`
/// patches (top level, default 2) and two linears without bias; LLaVA (Pixtral-12B) through two
/// linears with bias (`multimodal_projector_bias`, default false for Mistral 3 and true for LLaVA).
fn pixtral(cx: &mut Cx, v: &Map<String, Value>, text_hidden: u64, g: &mut Vec<Tensor>) {
    let h = sub_u64(v, "hidden_size", 1024) as u128;
    let layers = sub_u64(v, "num_hidden_layers", 24) as u128;
    let inter = sub_u64(v, "intermediate_size", 4096) as u128;
    let patch = sub_u64(v, "patch_size", 16) as u128;
    let channels = sub_u64(v, "num_channels", 3) as u128;
    let text = text_hidden as u128;
    let top = &cx.raw.json;
    // one linear input per vision feature layer (an integer names one, a list several)
    let features = top.get("vision_feature_layer").and_then(Value::as_array).map_or(1, |a| a.len().clamp(1, 1024)) as u128;
    let mistral3 = cx.model_type == "mistral3";
    let bias = top.get("multimodal_projector_bias").and_then(Value::as_bool).unwrap_or(!mistral3);
    let bias = if bias { 1 } else { 0 };
    let merge = if mistral3 { top.get("spatial_merge_size").and_then(Value::as_u64).filter(|&x| x <= 64).unwrap_or(2) as u128 } else { 0 };
    let per_layer = 4 * h * h + 3 * h * inter + 2 * h;
    let tower = layers.saturating_mul(per_layer) + channels * patch * patch * h + h;
    let merger = if mistral3 { h + merge * merge * h * h } else { 0 };
    let projector = merger + h * features * text + bias * text + text * text + bias * text;
    let params = u64::try_from(tower + projector).unwrap_or(u64::MAX);
    g.push(Tensor::new("vision_tower", Role::Encoder, params, 1, Split::Column));
    // the largest image is `image_size` square; merged patches in rows, each row closed by an
    // [IMG_BREAK] (the last by [IMG_END]) that takes a token but no embedding of the tower
    let image = sub_u64(v, "image_size", 1024);
    let side = (image / (patch as u64).max(1)).max(1);
    let merged = (side / (merge as u64).max(1)).max(1);
    let (h, inter) = (h as u64, inter as u64);
    cx.vision_dummy = Some(VisionDummy {
        what: format!("an image of {image} x {image} pixels: {} tokens from {} patches", merged * (merged + 1), side * side),
        tokens_per_item: merged.saturating_mul(merged + 1),
        output_rows: merged.saturating_mul(merged),
        output_width: text_hidden,
        input_values: (channels as u64).saturating_mul(image.saturating_pow(2)),
        patches: side.saturating_mul(side),
        width: h,
        mlp_width: inter,
        gated_mlp: true,
        rotary_f32: true,
        video_groups: false,
        early_videos: Vec::new(),
        frame_video: None,
        attention_split: None,
        glm_video: None,
    });
    cx.note(format!("vision tower: Pixtral ({layers} layers x {h} wide) and its projector: {:.2}B parameters, from vision_config (modelled)", params as f64 / 1e9));
}
