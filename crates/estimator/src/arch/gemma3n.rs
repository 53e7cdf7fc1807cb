//! Gemma 3n (`gemma3n`, `gemma3n_text`; source: transformers `configuration_gemma3n.py` and
//! `modeling_gemma3n.py`). Sliding-window and full-attention layers of one shape (`layer_types`,
//! default 4 sliding : 1 full). The last `num_kv_shared_layers` layers read the cache of the last
//! earlier layer of their kind and keep none of their own ([`Mixer::SharedKv`]); their `k_proj` and
//! `v_proj` stay in the checkpoint. Every layer adds AltUp (`altup_num_inputs` streams), a LAuReL low-rank block
//! (`laurel_rank`) and a per-layer embedding input (PLE, `hidden_size_per_layer_input`, from a
//! table of `vocab_size_per_layer_input` rows). `intermediate_size` is one width or one per layer.
//! The multimodal checkpoints carry a MobileNetV5 vision tower (its size by name) and a conformer
//! audio tower (from `audio_config`).

use super::*;
use crate::config::FromJson;

/// Parameters of timm's `mobilenetv5_300m_enc`, the vision tower every Gemma 3n checkpoint names:
/// "300m" as its name says (the architecture is not in `config.json`); modelled.
pub const MOBILENET_V5_300M_PARAMS: u64 = 300_000_000;


pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let tied = cx.tied(true);
    // one width, or one per layer (moved aside by the config reader as `intermediate_sizes`)
    let widths: Vec<u64> = match cx.raw.json.get("intermediate_sizes") {
        Some(Value::Array(list)) => {
            let list = list.clone();
            if list.len() as u64 != c.layers {
                return Err(Error::invalid("intermediate_size", format!("{} entries", list.len()), format!("one width per layer (num_hidden_layers = {})", c.layers)));
            }
            list.iter().map(|v| u64::from_json(v, "intermediate_size").and_then(|w| cx.req(Some(w), "intermediate_size", "MLP weights"))).collect::<Result<_>>()?
        }
        _ => {
            let w = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
            vec![w; c.layers as usize]
        }
    };
    let window = cx.raw.sliding_window.and_then(|w| w.0).filter(|&w| w > 0);
    let shared = match cx.opt_u64("num_kv_shared_layers")? {
        Some(n) => n,
        None => {
            cx.default("num_kv_shared_layers", 15, "absent: Gemma3nTextConfig default");
            15
        }
    };
    if shared >= c.layers && shared > 0 {
        return Err(Error::invalid("num_kv_shared_layers", shared, format!("fewer than num_hidden_layers ({})", c.layers)));
    }
    let first_shared = (c.layers - shared) as usize;
    let dims = |cx: &mut Cx, key: &str, default: u64| -> Result<u64> {
        match cx.opt_u64(key)? {
            Some(0) => Ok(0),
            Some(d) => cx.req(Some(d), key, "Gemma 3n layer weights"),
            None => {
                cx.default(key, default, "absent: Gemma3nTextConfig default");
                Ok(default)
            }
        }
    };
    let altup = dims(cx, "altup_num_inputs", 4)?.max(1);
    if altup > 64 {
        return Err(Error::invalid("altup_num_inputs", altup, "at most 64 AltUp streams (Gemma 3n uses 4)"));
    }
    let laurel = dims(cx, "laurel_rank", 64)?;
    let ple = dims(cx, "hidden_size_per_layer_input", 256)?;
    let ple_vocab = dims(cx, "vocab_size_per_layer_input", 262_144)?;
    if let Some(types) = &cx.raw.layer_types {
        if types.len() as u64 != c.layers {
            return Err(Error::invalid("layer_types", format!("{} entries", types.len()), format!("one entry per layer (num_hidden_layers = {})", c.layers)));
        }
    } else {
        cx.default("layer_types", "4 sliding : 1 full", "absent: Gemma3nTextConfig default");
    }
    let full: Vec<bool> = range(c.layers)
        .map(|i| match cx.layer_type(i) {
            Some(t) => t != "sliding_attention",
            None => (i + 1) % 5 == 0,
        })
        .collect();
    // every kind a shared layer reads must have a layer that keeps its cache
    for kind in [true, false] {
        if full[first_shared..].contains(&kind) && !full[..first_shared].contains(&kind) {
            return Err(Error::invalid("num_kv_shared_layers", shared, format!("a {} layer before the shared ones to read from", if kind { "full-attention" } else { "sliding-window" })));
        }
    }
    if window.is_none() && full.iter().any(|f| !f) {
        cx.default("sliding_window", 512, "absent: Gemma3nTextConfig default");
    }
    let window = window.unwrap_or(512);
    let layers = range(c.layers)
        .map(|i| {
            let w = if full[i] { Window::Full } else { Window::Sliding(window) };
            let mut t = vec![];
            let mut mixer = attention(&c, AttnBias::default(), QkNorm::PerHead, w, &mut t);
            if i >= first_shared {
                // the keys and values are an earlier layer's; the released checkpoints still carry
                // this layer's k_proj and v_proj (transformers 4.x built them in every layer)
                mixer = Mixer::SharedKv { heads: c.heads, kv_heads: c.kv_heads, k_dim: c.head_dim, v_dim: c.head_dim, window: w };
            }
            gated_mlp("mlp", Role::Mlp, c.hidden, widths[i], false, &mut t);
            // input, post-attention, pre- and post-feed-forward, post-per-layer-input norms
            norms("norms", 5, c.hidden, false, &mut t);
            if laurel > 0 {
                t.push(Tensor::new("laurel.linear_left", Role::Mlp, laurel, c.hidden, Split::Replicated));
                t.push(Tensor::new("laurel.linear_right", Role::Mlp, c.hidden, laurel, Split::Replicated));
                norms("laurel.post_laurel_norm", 1, c.hidden, false, &mut t);
            }
            // AltUp: output scale, correction and prediction coefficients, router and its norm
            t.push(Tensor::new("altup.coefs", Role::Router, altup * altup + altup * altup * altup + c.hidden, 1, Split::Replicated));
            t.push(Tensor::new("altup.modality_router", Role::Router, altup, c.hidden, Split::Replicated));
            norms("altup.router_norm", 1, c.hidden, false, &mut t);
            per_layer_input(c.hidden, ple, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, c.hidden, tied, false, false);
    per_layer_embeddings(c.layers, c.hidden, ple, ple_vocab, &mut g);
    if altup > 1 {
        // altup_projections and altup_unembed_projections
        g.push(Tensor::new("altup_projections", Role::Mlp, 2 * (altup - 1) * c.hidden, c.hidden, Split::Replicated));
    }
    add_towers(cx, c.hidden, &mut g);
    if shared > 0 {
        cx.note(format!("the last {shared} layers reuse the KV cache of earlier layers (num_kv_shared_layers): no cache of their own"));
    }
    let inter = widths.iter().copied().max().unwrap_or(0);
    cx.finish(Family::Gemma3n, &c, inter, tied, g, layers)
}

/// The MobileNetV5 vision tower (size by its timm name) and the conformer audio tower of the
/// multimodal checkpoints, each with its embedder into the text width: modelled parameter counts.
fn add_towers(cx: &mut Cx, text_hidden: u64, g: &mut Vec<Tensor>) {
    let th = text_hidden as u128;
    if let Some(v) = cx.sub_config("vision_config") {
        let arch = v.get("architecture").and_then(Value::as_str).unwrap_or("mobilenetv5_300m_enc").to_string();
        // embedder: a soft-token table, two norms and a projection into the text width
        let (h, vocab) = (sub_u64(&v, "hidden_size", 2048) as u128, sub_u64(&v, "vocab_size", 128) as u128);
        let embedder = vocab * h + 2 * h + h * th;
        let params = u64::try_from(MOBILENET_V5_300M_PARAMS as u128 + embedder).unwrap_or(u64::MAX);
        g.push(Tensor::new("vision_tower", Role::Encoder, params, 1, Split::Replicated));
        cx.note(format!("vision tower {arch}: about 300M parameters by its name, plus its embedder ({:.2}B in all), modelled", params as f64 / 1e9));
    }
    if let Some(a) = cx.sub_config("audio_config") {
        // Gemma3nAudioConfig defaults. A conformer block: two feed-forward modules (8h^2 each),
        // attention (q, k, v, relative position, output: 5h^2), the light convolution module (3h^2)
        let (h, layers, feat) = (sub_u64(&a, "hidden_size", 1536) as u128, sub_u64(&a, "conf_num_hidden_layers", 12) as u128, sub_u64(&a, "input_feat_size", 128) as u128);
        let vocab = sub_u64(&a, "vocab_size", 128) as u128;
        // sub-sampling: two 3x3 convolutions (1 -> 128 -> 32 channels) over features halved twice
        let sscp = 9 * 128 + 9 * 128 * 32 + 32 * (feat / 4) * h;
        let params = layers * (24 * h * h + 16 * h) + sscp + vocab * h + 2 * h + h * th;
        let params = u64::try_from(params).unwrap_or(u64::MAX);
        g.push(Tensor::new("audio_tower", Role::Encoder, params, 1, Split::Replicated));
        cx.note(format!("audio tower estimated from audio_config (conformer, {layers} layers x {h} wide): {:.2}B parameters, modelled", params as f64 / 1e9));
    }
}
