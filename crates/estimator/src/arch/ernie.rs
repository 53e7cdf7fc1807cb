//! ERNIE 4.5 (`ernie4_5`: the dense 0.3B; a Llama-shaped decoder whose `use_bias` puts a bias on
//! every projection, head tied by default, `head_dim` 128 by default) and ERNIE 4.5 MoE
//! (`ernie4_5_moe`: 21B-A3B, 300B-A47B). In the MoE model a layer `i` is sparse when
//! `(i + 1) % moe_layer_interval == 0` and `moe_layer_start_index <= i <= moe_layer_end_index`
//! (-1: the last layer); its block is `moe_num_experts` routed experts of `moe_intermediate_size`,
//! a router and a correction bias per expert (`moe_statics`; both fp32 in transformers, counted at the checkpoint dtype: under 10 MB for 21B-A3B), and
//! `moe_num_shared_experts` shared experts fused into one MLP of `moe_num_shared_experts x
//! moe_intermediate_size`. Other layers have a dense MLP of `intermediate_size`. The checkpoint's
//! multi-token-prediction layer is not loaded by transformers or vLLM and is not counted.

use super::*;

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let moe_model = cx.model_type == "ernie4_5_moe";
    let c = if moe_model { cx.common()? } else { cx.common_with_head_dim(Some((128, "absent: Ernie4_5Config default")))? };
    let inter = cx.req(cx.raw.intermediate_size, "intermediate_size", "MLP weights")?;
    let tied = cx.tied(true);
    let bias = cx.raw.bias.unwrap_or(false);
    let sparse = if moe_model { Some(sparse_layers(cx, c.layers)?) } else { None };
    let layers = range(c.layers)
        .map(|i| {
            let mut t = vec![];
            let mixer = attention(&c, AttnBias { qkv: bias, o: bias }, QkNorm::None, Window::Full, &mut t);
            match &sparse {
                Some(s) if s.is_sparse(i as u64) => {
                    moe(c.hidden, s.experts, s.top_k, s.inter, true, &mut t);
                    t.push(Tensor::new("mlp.moe_statics.e_score_correction_bias", Role::Router, s.experts, 1, Split::Replicated));
                    if s.shared > 0 {
                        gated_mlp("mlp.shared_experts", Role::SharedExpert, c.hidden, s.shared * s.inter, bias, &mut t);
                    }
                }
                _ => gated_mlp("mlp", Role::Mlp, c.hidden, inter, bias, &mut t),
            }
            norms("norms", 2, c.hidden, false, &mut t);
            Layer::new(mixer, t)
        })
        .collect();
    let g = embeddings(c.vocab, c.hidden, tied, false, bias && !tied);
    if cx.raw.num_nextn_predict_layers.is_some_and(|n| n > 0) {
        cx.note("the checkpoint's multi-token-prediction layer is skipped on load (transformers, vLLM): not counted");
    }
    let family = if moe_model { Family::Ernie45Moe } else { Family::Ernie45 };
    cx.finish(family, &c, inter, tied, g, layers)
}

/// Which layers of ERNIE 4.5 MoE are sparse, and their expert block.
struct Sparse {
    experts: u64,
    top_k: u64,
    inter: u64,
    shared: u64,
    start: u64,
    end: u64,
    interval: u64,
}

impl Sparse {
    fn is_sparse(&self, i: u64) -> bool {
        (i + 1) % self.interval == 0 && i >= self.start && i <= self.end
    }
}

fn sparse_layers(cx: &mut Cx, layers: u64) -> Result<Sparse> {
    let why = "absent: Ernie4_5_MoeConfig default";
    let experts = cx.or(cx.raw.num_experts, "moe_num_experts", 64, why)?;
    let top_k = cx.or(cx.opt_u64("moe_k")?.or(cx.raw.num_experts_per_tok), "moe_k", 6, why)?;
    let inter = cx.or(cx.raw.moe_intermediate_size, "moe_intermediate_size", 1536, why)?;
    let shared = match cx.opt_u64("moe_num_shared_experts")? {
        Some(n) => cx.bounded(n, "moe_num_shared_experts")?,
        None => {
            cx.default("moe_num_shared_experts", 2, why);
            2
        }
    };
    let start = match cx.opt_u64("moe_layer_start_index")? {
        Some(n) => n,
        None => {
            cx.default("moe_layer_start_index", 1, why);
            1
        }
    };
    // -1 (the config class's default) means the last layer
    let end = match cx.raw.json.get("moe_layer_end_index") {
        None | Some(Value::Null) => {
            cx.default("moe_layer_end_index", layers - 1, "absent: Ernie4_5_MoeConfig default (-1, the last layer)");
            layers - 1
        }
        Some(v) if v.as_i64() == Some(-1) => layers - 1,
        Some(v) => <u64 as crate::config::FromJson>::from_json(v, "moe_layer_end_index")?,
    };
    let interval = cx.or(cx.opt_u64("moe_layer_interval")?, "moe_layer_interval", 1, why)?;
    Ok(Sparse { experts, top_k, inter, shared, start, end, interval })
}
