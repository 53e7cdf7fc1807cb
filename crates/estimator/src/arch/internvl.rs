//! InternVL: an InternViT vision tower and an MLP projector in front of a text model of another
//! family (InternLM2, Qwen2/2.5, Qwen3, Llama, Phi-3, ...), in two layouts:
//! - `internvl_chat` (`InternVLChatModel`, OpenGVLab's remote code, InternVL 1.5 to 3.5): the text
//!   model in `llm_config`, the tower in `vision_config` (`intern_vit_6b`), the projector `mlp1`;
//! - `internvl` (transformers' `InternVLForConditionalGeneration`, the `-hf` uploads): the text
//!   model in `text_config`, the tower in `vision_config` (`internvl_vision`), the projector
//!   `multi_modal_projector`.
//!
//! The text model is resolved by its own family; the tower and projector are counted here from
//! the config, tensor by tensor as vLLM's `intern_vit.py` / `interns1_vit.py` and `internvl.py`
//! build them:
//! - per layer: fused `qkv` (a bias with `qkv_bias` / `attention_bias`), `proj` with a bias,
//!   q/k RMS norms over the width with `qk_normalization` / `use_qk_norm`, `fc1`/`fc2` with biases,
//!   two norms (RMS for `norm_type` `rms_norm`, the remote code's default; LayerNorm otherwise),
//!   two layer-scale vectors;
//! - a patch convolution with a bias, a class token and a table of `(image / patch)^2 + 1`
//!   positions; the `-hf` tower a final LayerNorm unless it mean-pools;
//! - the projector: a LayerNorm over `hidden x (1 / downsample_ratio)^2` (the pixel shuffle),
//!   a linear to the text width and one text width square, both with biases.
//!
//! `internvl_chat` builds `num_hidden_layers + select_layer + 1` layers when `select_layer` is
//! negative (all of them at -1). Under tensor parallelism vLLM divides the MLP; the remote-code
//! tower's attention only when the ranks divide its heads (InternViT-6B's 25 heads are
//! replicated), the `-hf` tower's attention never; embeddings, norms and the projector are
//! replicated.

use super::*;
use crate::model::VisionDummy;

/// Tiles the `-hf` processor cuts the largest image into (`max_patches` of its
/// `preprocessor_config.json`, which `config.json` does not carry), before the thumbnail.
pub const HF_MAX_PATCHES: u64 = 12;

/// Resolves the text model by its own `model_type`, with the InternViT tower added by
/// [`Cx::finish`] through [`add_tower`].
pub(crate) fn resolve(cx: &mut Cx, text_type: &str) -> Result<ModelShape> {
    let wrapper = cx.model_type.clone();
    let nested = if wrapper == "internvl_chat" { "llm_config" } else { "text_config" };
    if text_type.is_empty() || text_type.starts_with("internvl") {
        return Err(Error::MissingField {
            field: format!("{nested}.model_type"),
            model_type: wrapper,
            needed_for: "which family the language model is".into(),
        });
    }
    if !matches!(cx.raw.json.get("vision_config"), Some(Value::Object(_))) {
        return Err(Error::MissingField { field: "vision_config".into(), model_type: wrapper, needed_for: "the InternViT tower's weights".into() });
    }
    cx.model_type = text_type.to_string();
    cx.intern_vit = true;
    let mut shape = by_type(cx, text_type, "")?;
    shape.model_type = wrapper;
    Ok(shape)
}

/// The tower and projector of an InternVL config, and the largest image vLLM profiles.
pub(crate) fn add_tower(cx: &mut Cx, text_hidden: u64, g: &mut Vec<Tensor>) {
    let Some(Value::Object(v)) = cx.raw.json.get("vision_config").cloned() else { return };
    let top = cx.raw.json.clone();
    let hf = v.get("model_type").and_then(Value::as_str) == Some("internvl_vision") || !top.contains_key("llm_config");
    // sizes may be one integer or `[height, width]` (the -hf config); an absent one takes the
    // config class's default (InternVisionConfig: the 6B tower; InternVLVisionConfig: 300M), recorded
    let mut size = |m: &Map<String, Value>, key: &str, chat_default: u64, hf_default: u64| -> u64 {
        let value = match m.get(key) {
            Some(Value::Array(a)) => a.first().and_then(Value::as_u64),
            Some(x) => x.as_u64(),
            None => None,
        };
        match value.filter(|&x| (1..=MAX_DIM).contains(&x)) {
            Some(x) => x,
            None => {
                let d = if hf { hf_default } else { chat_default };
                cx.default(&format!("vision_config.{key}"), d, "absent or out of range: the vision config class's default");
                d
            }
        }
    };
    let h = size(&v, "hidden_size", 3200, 1024);
    let inter = size(&v, "intermediate_size", 12800, 4096);
    let heads = size(&v, "num_attention_heads", 25, 16);
    let all_layers = size(&v, "num_hidden_layers", 48, 24);
    let patch = size(&v, "patch_size", 14, 14);
    let image = size(&v, "image_size", 224, 448);
    let channels = size(&v, "num_channels", 3, 3);
    // `force_image_size` sets the tiles the processor cuts (their token count); the position
    // table follows the tower's own `image_size`
    let tile = if hf { image } else { top.get("force_image_size").and_then(Value::as_u64).filter(|&x| (1..=MAX_DIM).contains(&x)).unwrap_or(image) };
    let flag = |keys: &[&str], default: bool| keys.iter().find_map(|k| v.get(*k).and_then(Value::as_bool)).unwrap_or(default);
    let qkv_bias = flag(&["qkv_bias", "attention_bias"], false);
    let qk_norm = if hf { flag(&["use_qk_norm"], false) } else { flag(&["qk_normalization"], true) };
    let rms = v.get("norm_type").and_then(Value::as_str).unwrap_or(if hf { "layer_norm" } else { "rms_norm" }) == "rms_norm";
    let layers = if hf {
        all_layers
    } else {
        match top.get("select_layer").and_then(Value::as_i64).unwrap_or(-1) {
            s if s < 0 => all_layers.saturating_add_signed(s.saturating_add(1)).max(1),
            s => (s as u64).saturating_add(1).min(all_layers),
        }
    };
    // at most a 64 x 64 pixel shuffle
    let ratio = top.get("downsample_ratio").and_then(Value::as_f64).filter(|r| *r >= 1.0 / 64.0 && *r <= 1.0).unwrap_or(0.5);
    let shuffle = ((1.0 / ratio) as u128).max(1).pow(2);
    // u128 and saturating: the sizes are at most 2^24 each, their products are not
    let (hw, iw, lw, pw, cw, tw) = (h as u128, inter as u128, layers as u128, patch as u128, channels as u128, text_hidden as u128);
    let side = (image / patch).max(1) as u128;
    let norm = if rms { hw } else { 2 * hw };
    let clamp = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    // attention: the fused qkv and proj matrices (rows over the ranks when they divide the heads)
    let attn_split = if hf { Split::Replicated } else { Split::WholeHeads { heads } };
    g.push(Tensor::new("vision_model.attention", Role::Encoder, clamp(4 * hw), h, attn_split).experts(layers, layers));
    g.push(Tensor::new("vision_model.mlp", Role::Encoder, clamp(2 * iw), h, Split::Column).experts(layers, layers));
    // per layer: biases, q/k norms, two norms, two layer scales
    let vectors = if qkv_bias { 3 * hw } else { 0 } + hw + iw + hw + if qk_norm { 2 * hw } else { 0 } + 2 * norm + 2 * hw;
    let final_norm = if hf && !flag(&["use_mean_pooling"], true) { 2 * hw } else { 0 };
    let embeddings = cw * pw * pw * hw + hw + hw + (side * side + 1) * hw;
    g.push(Tensor::new("vision_model.vectors_and_embeddings", Role::Encoder, clamp(lw.saturating_mul(vectors) + embeddings + final_norm), 1, Split::Replicated));
    let merged = hw * shuffle;
    let projector = 2 * merged + merged * tw + tw + tw * tw + tw;
    g.push(Tensor::new(if hf { "multi_modal_projector" } else { "mlp1" }, Role::Encoder, clamp(projector), 1, Split::Replicated));
    let tower: u128 = g.iter().filter(|t| t.role == Role::Encoder).map(Tensor::elements).sum();
    cx.note(format!(
        "vision tower: InternViT ({layers} layers x {h} wide, {heads} heads{}) and its projector: {:.3}B parameters, counted from vision_config",
        if hf { ", attention replicated on every rank" } else { "" },
        tower as f64 / 1e9
    ));
    // the largest image: `max_dynamic_patch` tiles of `tile` pixels and a thumbnail
    let dynamic = hf || top.get("dynamic_image_size").and_then(Value::as_bool).unwrap_or(false);
    let max_tiles = if hf { HF_MAX_PATCHES } else { sub_u64(&top, "max_dynamic_patch", 6).clamp(1, 1024) };
    let thumbnail = hf || top.get("use_thumbnail").and_then(Value::as_bool).unwrap_or(false);
    let tiles = if !dynamic { 1 } else { max_tiles + u64::from(thumbnail && max_tiles > 1) };
    let tile_side = (tile / patch).max(1);
    let tile_patches = tile_side.saturating_mul(tile_side);
    let per_tile = ((tile_patches as f64 * ratio * ratio) as u64).max(1);
    let tokens = tiles.saturating_mul(per_tile);
    let pixels = channels.saturating_mul(tile.saturating_pow(2));
    let patches = tiles.saturating_mul(tile_patches.saturating_add(1));
    cx.vision_dummy = Some(VisionDummy {
        what: format!("an image of {tiles} tiles of {tile} x {tile} pixels{}: {tokens} tokens from {patches} patches", if thumbnail && tiles > 1 { " (thumbnail included)" } else { "" }),
        tokens_per_item: tokens,
        output_rows: tokens,
        output_width: text_hidden,
        input_values: tiles.saturating_mul(pixels),
        patches,
        width: h,
        mlp_width: inter,
        gated_mlp: false,
        rotary_f32: false,
        video_groups: false,
        early_videos: Vec::new(),
        frame_video: video_from(hf, &cx.model_type).map(|from| crate::model::FrameVideo {
            from,
            tokens_per_frame: per_tile,
            patches_per_frame: tile_patches.saturating_add(1),
            input_per_frame: pixels,
        }),
        attention_split: Some(attn_split),
        glm_video: None,
    });
    // V0 profiles prompts of one largest image each
    cx.mm_tokens = Some(tokens);
}

/// The vLLM release from which InternVL takes videos: `internvl_chat` with a text model whose
/// tokenizer has a video token, Qwen2/2.5 from 0.9.1 (PR 18499), Qwen3, Qwen3-MoE and gpt-oss
/// from 0.10.2 (PR 23658), not the others (InternLM2, Llama, Phi-3: images only); the -hf layout,
/// which vLLM runs as Intern-S1, from 0.10.1 (PR 21671).
fn video_from(hf: bool, text_type: &str) -> Option<(u64, u64, u64)> {
    if hf {
        return Some((0, 10, 1));
    }
    match text_type {
        "qwen2" => Some((0, 9, 1)),
        "qwen3" | "qwen3_moe" | "gpt_oss" => Some((0, 10, 2)),
        _ => None,
    }
}
