//! Mamba (`mamba`, `falcon_mamba`: selective-scan SSM, no attention) and Mamba-2 (`mamba2`). A
//! recurrent layer keeps a constant state per request instead of K/V per token: the convolution
//! window (`conv_dim x (conv_kernel - 1)`, as vLLM stores it) and the SSM state (Mamba-1:
//! `intermediate x state_size`; Mamba-2: `heads x head_dim x state_size`). The builders here are
//! shared with the hybrids in `hybrid.rs`.

use super::*;

/// Mamba-1 dimensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mamba1 {
    pub inner: u64,
    pub state: u64,
    pub conv: u64,
    pub dt_rank: u64,
    /// Jamba's extra RMS norms on dt, B and C.
    pub inner_norms: bool,
}

/// Mamba-2 dimensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mamba2 {
    pub heads: u64,
    pub head_dim: u64,
    pub groups: u64,
    pub state: u64,
    pub conv: u64,
    /// The convolution's bias (Mamba2Config's `use_conv_bias`, Falcon-H1's `mamba_conv_bias`).
    pub conv_bias: bool,
    /// The gated RMS norm before `out_proj` (Falcon-H1 makes it optional: `mamba_rms_norm`).
    pub gated_norm: bool,
    /// Biases of `in_proj` and `out_proj` (Falcon-H1's `mamba_proj_bias` and `projectors_bias`).
    pub in_bias: bool,
    pub out_bias: bool,
}

pub(crate) fn mamba1_dims(cx: &mut Cx, hidden: u64) -> Result<Mamba1> {
    let expand = cx.raw.expand.unwrap_or(2);
    let inner = match cx.raw.intermediate_size {
        Some(i) if cx.model_type != "jamba" => i,
        _ => expand * hidden,
    };
    let state = cx.or(cx.raw.state_size, "state_size", 16, "absent: MambaConfig default")?;
    let conv = cx.or(cx.raw.conv_kernel, "conv_kernel", 4, "absent: MambaConfig default")?;
    let dt_rank = cx.or(cx.raw.time_step_rank, "time_step_rank", hidden.div_ceil(16), "absent or \"auto\": ceil(hidden_size / 16)")?;
    Ok(Mamba1 { inner, state, conv, dt_rank, inner_norms: cx.model_type == "jamba" })
}

pub(crate) fn mamba2_dims(cx: &mut Cx, hidden: u64) -> Result<Mamba2> {
    let state = cx.or(cx.raw.state_size, "ssm_state_size", 128, "absent: Mamba2Config default")?;
    let conv = cx.or(cx.raw.conv_kernel, "conv_kernel", 4, "absent: Mamba2Config default")?;
    let groups = cx.or(cx.raw.n_groups, "n_groups", 1, "absent: one group")?;
    let head_dim = cx.or(cx.raw.mamba_head_dim, "mamba_head_dim", 64, "absent: Mamba2Config default")?;
    let heads = match cx.raw.mamba_num_heads {
        Some(h) => cx.req(Some(h), "mamba_num_heads", "the SSM state")?,
        None => {
            let expand = cx.raw.expand.unwrap_or(2);
            let h = expand * hidden / head_dim;
            cx.default("mamba_num_heads", h, "absent: expand x hidden_size / mamba_head_dim");
            h
        }
    };
    Mamba2 { heads, head_dim, groups, state, conv, conv_bias: true, gated_norm: true, in_bias: false, out_bias: false }.checked(cx)
}

impl Mamba2 {
    /// The Mamba width, `heads x head_dim`.
    pub(crate) fn inner(&self) -> u64 {
        self.heads * self.head_dim
    }
    /// The convolution's channels: the width plus B and C of every group.
    pub(crate) fn conv_dim(&self) -> u64 {
        self.inner() + 2 * self.groups * self.state
    }
    /// These sizes once their products (the state, the convolution window, the projections) are
    /// known to fit: each is refused by name above 2^40 elements, before [`mamba2_layer`]
    /// multiplies them.
    pub(crate) fn checked(self, cx: &Cx) -> Result<Self> {
        let fits = |x: Option<u64>| x.filter(|&x| x <= 1 << 40);
        let inner = fits(self.heads.checked_mul(self.head_dim)).ok_or_else(|| Error::invalid(cx.key("mamba_head_dim"), self.head_dim, format!("a Mamba width (heads {} x head size) that fits in memory", self.heads)))?;
        fits(inner.checked_mul(self.state)).ok_or_else(|| Error::invalid(cx.key("state_size"), self.state, format!("an SSM state (width {inner} x state size) that fits in memory")))?;
        let conv_dim = fits(self.groups.checked_mul(self.state).and_then(|g| g.checked_mul(2)).and_then(|g| g.checked_add(inner)))
            .ok_or_else(|| Error::invalid(cx.key("n_groups"), self.groups, format!("a convolution width (width {inner} + 2 x groups x state size {}) that fits in memory", self.state)))?;
        fits(conv_dim.checked_mul(self.conv)).ok_or_else(|| Error::invalid(cx.key("conv_kernel"), self.conv, format!("a convolution window ({conv_dim} channels) that fits in memory")))?;
        Ok(self)
    }
}

pub(crate) fn mamba1_layer(hidden: u64, m: Mamba1, conv_bias: bool, t: &mut Vec<Tensor>) -> Mixer {
    let i = m.inner;
    t.push(Tensor::new("mixer.in_proj", Role::RecurrentLinear, 2 * i, hidden, Split::Column));
    t.push(Tensor::new("mixer.conv1d", Role::RecurrentParam, i, m.conv + u64::from(conv_bias), Split::Column));
    t.push(Tensor::new("mixer.x_proj", Role::RecurrentLinear, m.dt_rank + 2 * m.state, i, Split::Row));
    t.push(Tensor::new("mixer.dt_proj", Role::RecurrentLinear, i, m.dt_rank, Split::Column));
    t.push(Tensor::new("mixer.dt_proj.bias", Role::Bias, i, 1, Split::Column));
    t.push(Tensor::new("mixer.A_log_D", Role::RecurrentParam, i, m.state + 1, Split::Column));
    t.push(Tensor::new("mixer.out_proj", Role::RecurrentLinear, hidden, i, Split::Row));
    if m.inner_norms {
        t.push(Tensor::new("mixer.dt_b_c_norms", Role::Norm, m.dt_rank + 2 * m.state, 1, Split::Replicated));
    }
    Mixer::Recurrent { kind: "mamba".into(), conv_elems: i * (m.conv - 1), ssm_elems: i * m.state, ssm_fp32: false, heads: i, conv_fp32: false, groups: 0, group_conv_elems: 0 }
}

pub(crate) fn mamba2_layer(hidden: u64, m: Mamba2, ssm_fp32: bool, t: &mut Vec<Tensor>) -> Mixer {
    let (inner, conv_dim) = (m.inner(), m.conv_dim());
    // the B and C rows of every group go with the heads, a whole group on every rank where the
    // groups do not divide over TP (vLLM's and SGLang's `extra_groups_for_head_shards`)
    let split = Split::ColumnWithGroups { groups: m.groups, group_rows: 2 * m.state };
    t.push(Tensor::new("mixer.in_proj", Role::RecurrentLinear, inner + conv_dim + m.heads, hidden, split));
    if m.in_bias {
        t.push(Tensor::new("mixer.in_proj.bias", Role::Bias, inner + conv_dim + m.heads, 1, split));
    }
    t.push(Tensor::new("mixer.conv1d", Role::RecurrentParam, conv_dim, m.conv + u64::from(m.conv_bias), split));
    t.push(Tensor::new("mixer.dt_bias_A_log_D", Role::RecurrentParam, 3 * m.heads, 1, Split::Column));
    if m.gated_norm {
        t.push(Tensor::new("mixer.norm", Role::Norm, inner, 1, Split::Column));
    }
    t.push(Tensor::new("mixer.out_proj", Role::RecurrentLinear, hidden, inner, Split::Row));
    if m.out_bias {
        t.push(Tensor::new("mixer.out_proj.bias", Role::Bias, hidden, 1, Split::Replicated));
    }
    Mixer::Recurrent {
        kind: "mamba2".into(),
        conv_elems: conv_dim * (m.conv - 1),
        ssm_elems: m.heads * m.head_dim * m.state,
        ssm_fp32,
        heads: m.heads,
        conv_fp32: false,
        groups: m.groups,
        group_conv_elems: 2 * m.state * (m.conv - 1),
    }
}

pub(crate) fn ssm_fp32(cx: &Cx) -> bool {
    cx.raw.mamba_ssm_cache_dtype.as_deref().and_then(FloatDtype::from_hf) == Some(FloatDtype::F32)
}

pub(crate) fn resolve(cx: &mut Cx) -> Result<ModelShape> {
    let r = cx.raw;
    let hidden = cx.req(r.hidden_size, "hidden_size", "every weight shape")?;
    let layers_n = cx.req(r.num_hidden_layers, "num_hidden_layers", "the recurrent state")?;
    let vocab = cx.req(r.vocab_size, "vocab_size", "embedding and LM head")?;
    let v2 = cx.model_type == "mamba2";
    let tied = cx.tied(cx.model_type == "mamba");
    let fp32 = ssm_fp32(cx);
    let mut layers = vec![];
    if v2 {
        let m = mamba2_dims(cx, hidden)?;
        for _ in range(layers_n) {
            let mut t = vec![];
            let mixer = mamba2_layer(hidden, m, fp32, &mut t);
            norms("norm", 1, hidden, false, &mut t);
            layers.push(Layer::new(mixer, t));
        }
    } else {
        let m = mamba1_dims(cx, hidden)?;
        let conv_bias = cx.raw.json.get("use_conv_bias").and_then(Value::as_bool).unwrap_or(true);
        for _ in range(layers_n) {
            let mut t = vec![];
            let mixer = mamba1_layer(hidden, m, conv_bias, &mut t);
            norms("norm", 1, hidden, false, &mut t);
            layers.push(Layer::new(mixer, t));
        }
    }
    let c = Common { hidden, layers: layers_n, heads: 0, kv_heads: 0, head_dim: 0, vocab };
    let g = embeddings(vocab, hidden, tied, false, false);
    let inter = cx.raw.intermediate_size.unwrap_or(2 * hidden);
    cx.finish(Family::Mamba, &c, inter, tied, g, layers)
}
