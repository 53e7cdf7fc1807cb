//! GLM: ChatGLM2/3 and GLM-4-9B-chat (`chatglm`: `multi_query_group_num` KV groups, `kv_channels`
//! head size, `ffn_hidden_size` SwiGLU, bias on the fused qkv, untied `output_layer`), GLM-4-hf
//! (`glm`) and GLM-4-0414 / GLM-Z1 (`glm4`: two extra post norms per layer), GLM-4.5 (`glm4_moe`:
//! routed + shared experts after `first_k_dense_replace` dense layers, a score-correction bias in each router), and the text models of
//! GLM-4.1V / 4.6V-Flash (`glm4v`: GLM-4-0414's layout; transformers' `glm46v` wrapper takes either) and GLM-4.5V / 4.6V (`glm4v_moe`:
//! GLM-4.5's), whose vision tower `glm4v.rs` counts.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let c = cx.common()?;
    let mt = cx.model_type.clone();
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let tied = cx.tied(false);
    let qkv_bias = cx.raw.attention_bias.unwrap_or(true);
    // GLM-4-0414's four norms a layer, also in GLM-4.1V's text model (`glm4v`, or `glm4v_text`
    // under transformers' `glm46v` wrapper)
    let text_type = cx.raw.json.get("text_model_type").and_then(Value::as_str).unwrap_or("");
    let n_norms = if mt == "glm4" || mt == "glm4v" || (mt == "glm46v" && text_type != "glm4v_moe_text") { 4 } else { 2 };
    let experts = cx.raw.num_experts.unwrap_or(0);
    let first_dense = cx.raw.first_k_dense_replace.unwrap_or(0);
    let (top_k, moe_inter) = if experts > 0 {
        (cx.req(cx.raw.num_experts_per_tok, "num_experts_per_tok", "active parameters")?, cx.req(cx.raw.moe_intermediate_size, "moe_intermediate_size", "expert weights")?)
    } else {
        (0, 0)
    };
    let shared = cx.bounded(cx.raw.n_shared_experts.unwrap_or(0), "n_shared_experts")?;
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: qkv_bias, o: false }, QkNorm::None, Window::Full, &mut t);
            if experts > 0 && i as u64 >= first_dense {
                // with the router's score-correction bias, stored with the checkpoint (Glm4MoeTopkRouter)
                deepseek_moe(c.hidden, experts, top_k, moe_inter, shared, true, &mut t);
            } else {
                gated_mlp("mlp", Role::Mlp, c.hidden, inter, false, &mut t);
            }
            norms("norms", n_norms, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let mut g = embeddings(c.vocab, c.hidden, tied, false, false);
    // GLM-4.xV's tower (THUDM/glm-4v-9b's EVA-CLIP under `chatglm` is not counted, as before)
    if mt.starts_with("glm4v") || mt == "glm46v" {
        glm4v::add_tower(cx, c.hidden, &mut g);
    }
    cx.finish(Family::Glm, &c, inter, tied, g, layers)
}
