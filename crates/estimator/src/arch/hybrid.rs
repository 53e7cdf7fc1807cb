//! Hybrids of attention and recurrent layers, whose cache is K/V per token for the attention layers
//! plus a constant state per request for the recurrent ones:
//! - Jamba (`jamba`): Mamba-1 everywhere except every `attn_layer_period`-th layer (from
//!   `attn_layer_offset`); MoE every `expert_layer_period`-th layer.
//! - Nemotron-H (`nemotron_h`): `hybrid_override_pattern`, one block per character: `M` Mamba-2,
//!   `*` attention, `-` ReLU² MLP, `E` MoE (non-gated experts plus shared experts).
//! - Granite 4 (`granitemoehybrid`): `layer_types` of `mamba` / `attention`, each followed by MoE
//!   (and a shared MLP) or a dense MLP.

use super::mamba::{mamba1_dims, mamba1_layer, mamba2_dims, mamba2_layer, ssm_fp32};
use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let mt = cx.model_type.clone();
    let c = cx.common()?;
    let tied = cx.tied(false);
    let fp32 = ssm_fp32(cx);
    let h = c.hidden;
    let mut layers = vec![];
    let family;
    let inter = cx.raw.intermediate_size.unwrap_or(4 * h);
    match mt.as_str() {
        "jamba" => {
            family = Family::Jamba;
            let m = mamba1_dims(cx, h)?;
            let ap = cx.or(cx.raw.attn_layer_period, "attn_layer_period", 8, "absent: JambaConfig default")?;
            let ao = cx.raw.attn_layer_offset.unwrap_or(4);
            let ep = cx.or(cx.raw.expert_layer_period, "expert_layer_period", 2, "absent: JambaConfig default")?;
            let eo = cx.raw.expert_layer_offset.unwrap_or(1);
            let experts = cx.raw.num_experts.unwrap_or(16);
            let top_k = cx.raw.num_experts_per_tok.unwrap_or(2);
            for i in 0..c.layers {
                let mut t = vec![];
                let mixer = if i % ap == ao {
                    attention(&c, AttnBias::default(), QkNorm::None, Window::Full, &mut t)
                } else {
                    mamba1_layer(h, m, true, &mut t)
                };
                if experts > 1 && i % ep == eo {
                    moe(h, experts, top_k, inter, true, &mut t);
                } else {
                    gated_mlp("feed_forward", Role::Mlp, h, inter, false, &mut t);
                }
                norms("norms", 2, h, false, &mut t);
                layers.push(Layer::new(mixer, t));
            }
        }
        "nemotron_h" => {
            family = Family::NemotronH;
            let pattern = cx.raw.hybrid_override_pattern.clone().ok_or_else(|| Error::MissingField {
                field: "hybrid_override_pattern".into(),
                model_type: mt.clone(),
                needed_for: "which blocks are Mamba, attention, MLP or MoE".into(),
            })?;
            if pattern.chars().count() as u64 != c.layers {
                return Err(Error::invalid("hybrid_override_pattern", format!("{} characters", pattern.chars().count()), format!("one character per layer ({} layers)", c.layers)));
            }
            let m = mamba2_dims(cx, h)?;
            let experts = cx.raw.num_experts.unwrap_or(0);
            let top_k = cx.raw.num_experts_per_tok.unwrap_or(0);
            let moe_inter = cx.raw.moe_intermediate_size.unwrap_or(inter);
            let shared = cx.raw.shared_expert_intermediate_size.unwrap_or(0);
            for ch in pattern.chars() {
                let mut t = vec![];
                let mixer = match ch {
                    'M' => mamba2_layer(h, m, fp32, &mut t),
                    '*' => attention(&c, AttnBias::default(), QkNorm::None, Window::Full, &mut t),
                    '-' => {
                        plain_mlp("mixer", Role::Mlp, h, inter, false, &mut t);
                        Mixer::None
                    }
                    'E' => {
                        moe(h, experts.max(1), top_k.max(1), moe_inter, false, &mut t);
                        t.push(Tensor::new("mixer.gate.e_score_correction_bias", Role::Router, experts, 1, Split::Replicated));
                        if shared > 0 {
                            plain_mlp("mixer.shared_experts", Role::SharedExpert, h, shared, false, &mut t);
                        }
                        Mixer::None
                    }
                    other => {
                        return Err(Error::invalid("hybrid_override_pattern", other, "the characters M, *, - and E"));
                    }
                };
                norms("norm", 1, h, false, &mut t);
                layers.push(Layer::new(mixer, t));
            }
        }
        _ => {
            family = Family::GraniteMoeHybrid;
            let kinds: Vec<String> = cx.raw.layer_types.clone().or_else(|| cx.raw.layers_block_type.clone()).ok_or_else(|| Error::MissingField {
                field: "layer_types".into(),
                model_type: mt.clone(),
                needed_for: "which layers are Mamba and which attention".into(),
            })?;
            if kinds.len() as u64 != c.layers {
                return Err(Error::invalid("layer_types", format!("{} entries", kinds.len()), format!("one per layer ({})", c.layers)));
            }
            let m = mamba2_dims(cx, h)?;
            let experts = cx.raw.num_experts.unwrap_or(0);
            let top_k = cx.raw.num_experts_per_tok.unwrap_or(0);
            let shared = cx.raw.shared_expert_intermediate_size.unwrap_or(0);
            for kind in &kinds {
                let mut t = vec![];
                let mixer = if kind == "attention" {
                    attention(&c, AttnBias::default(), QkNorm::None, Window::Full, &mut t)
                } else {
                    mamba2_layer(h, m, fp32, &mut t)
                };
                if experts > 0 {
                    moe(h, experts, top_k.max(1), inter, true, &mut t);
                }
                if shared > 0 {
                    gated_mlp("shared_mlp", Role::SharedExpert, h, shared, false, &mut t);
                } else if experts == 0 {
                    gated_mlp("mlp", Role::Mlp, h, inter, false, &mut t);
                }
                norms("norms", 2, h, false, &mut t);
                layers.push(Layer::new(mixer, t));
            }
        }
    }
    let g = embeddings(c.vocab, h, tied, false, false);
    cx.finish(family, &c, inter, tied, g, layers)
}
