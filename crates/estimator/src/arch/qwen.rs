//! Qwen2/2.5 (`qwen2`: bias on q/k/v, sliding window only with `use_sliding_window` and only from
//! `max_window_layers` on), Qwen2-VL's language model, Qwen3 (`qwen3`: per-head q/k RMS norms, no
//! bias; Qwen3-VL's language model is the same), and their MoE variants: Qwen2-MoE (`qwen2_moe`: routed experts plus a gated shared
//! expert) and Qwen3-MoE (`qwen3_moe`: routed experts only). A layer is MoE when it is not in
//! `mlp_only_layers` and `(i + 1) % decoder_sparse_step == 0`. The first Qwen (`qwen`,
//! `QWenLMHeadModel`): a fused `c_attn` that always has a bias, and `intermediate_size` counting
//! both gated halves (`w1` and `w2` are `intermediate_size / 2` wide each, as transformers' remote
//! code and vLLM's `qwen.py` build them).

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    // Qwen3-VL nests `qwen3_vl_text` / `qwen3_vl_moe_text`: the same layers as Qwen3 / Qwen3-MoE
    let mt = cx.model_type.trim_end_matches("_text").to_string();
    let qwen3 = mt.starts_with("qwen3");
    let is_moe = mt.ends_with("_moe");
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let qwen1 = mt == "qwen";
    let inter = if qwen1 {
        if cx.raw.json.get("visual").is_some_and(|v| v.is_object()) {
            return Err(Error::Unsupported { model_type: "qwen".into(), reason: "its config has a `visual` vision tower (Qwen-VL), whose size is not modelled; the text model alone would understate the weights".into() });
        }
        let half = cx.req(Some(inter / 2), "intermediate_size / 2", "the first Qwen's MLP, whose intermediate_size counts both gated halves")?;
        cx.note(format!("Qwen (first release): intermediate_size {inter} counts both gated halves, so each is {half} wide"));
        half
    } else {
        inter
    };
    let tied = cx.tied(false);
    let qkv_bias = qwen1 || cx.raw.attention_bias.unwrap_or(!qwen3);
    let (experts, top_k, moe_inter, shared_inter, step) = if is_moe {
        let e = cx.req(cx.raw.num_experts, "num_experts", "MoE weights")?;
        let k = cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")?;
        let mi = cx.req(cx.raw.moe_intermediate_size, "moe_intermediate_size", "expert weights")?;
        let si = if qwen3 { 0 } else { cx.raw.shared_expert_intermediate_size.unwrap_or(0) };
        let st = cx.or(cx.raw.decoder_sparse_step, "decoder_sparse_step", 1, "absent: every layer is MoE")?;
        (e, k, mi, si, st)
    } else {
        (0, 0, 0, 0, 1)
    };
    let mlp_only = cx.raw.mlp_only_layers.clone().unwrap_or_default();
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let qk = if qwen3 { QkNorm::PerHead } else { QkNorm::None };
            let mixer = attention(&c, AttnBias { qkv: qkv_bias, o: false }, qk, window_for(cx, i, true), &mut t);
            if is_moe && !mlp_only.contains(&(i as u64)) && (i as u64 + 1) % step == 0 {
                moe(c.hidden, experts, top_k, moe_inter, true, &mut t);
                if shared_inter > 0 {
                    gated_mlp("mlp.shared_expert", Role::SharedExpert, c.hidden, shared_inter, false, &mut t);
                    t.push(Tensor::new("mlp.shared_expert_gate", Role::Router, 1, c.hidden, Split::Replicated));
                }
            } else {
                gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            }
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, c.hidden, tied, false, false);
    vision::add_encoder(cx, c.hidden, &mut g);
    let family = match (qwen3, is_moe) {
        _ if qwen1 => Family::Qwen,
        (false, false) => Family::Qwen2,
        (true, false) => Family::Qwen3,
        (false, true) => Family::Qwen2Moe,
        (true, true) => Family::Qwen3Moe,
    };
    cx.finish(family, &c, inter, tied, g, layers)
}
