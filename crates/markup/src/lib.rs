//! `kv-markup`: the calculator page's first frame as HTML text.
//!
//! The verdict, the memory breakdown and the per-GPU figures are what a visitor waits for. The
//! page (`kv-web`, wasm) sets them with this markup in one DOM call each, and `cargo xtask
//! prerender` (a trunk post-build hook) writes the same markup for the page's default scenario into
//! `index.html`, so a visitor sees the default estimate in the browser's first paint, before the
//! wasm has loaded. Both estimate with [`kv_estimator::estimate`] from [`DEFAULT_CONFIG`] and
//! [`default_scenario`] (the prerender through [`default_estimate`]); nothing here computes a figure, it only lays the estimator's out, with
//! units, the exact/modelled basis and the derivation. Every text is escaped ([`escape`]).
//!
//! Never: a formula, I/O, or markup the page renders differently (the browser tests compare the
//! prerendered frame with the one the wasm renders).

use kv_estimator::units::{count, fixed, Basis, Bytes, Figure};
use kv_estimator::{Estimate, Scenario};
use std::fmt::Write;

/// The model shown when a link names none.
pub const DEFAULT_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// The default model's bundled config (the file itself, verbatim), compiled in: the page needs no
/// fetch before its first estimate.
pub const DEFAULT_CONFIG: &str = include_str!("../../../model-configs/meta-llama/Llama-3.1-8B-Instruct/config.json");

/// Tooltip of an exact figure.
pub const EXACT_TIP: &str = "exact arithmetic from config.json and the scenario";
/// Tooltip of a modelled figure.
pub const MODELLED_TIP: &str = "modelled: a documented estimate; see its derivation and docs/accuracy for how far off it has been";

/// The scenario of a link without parameters: the default model, 32 requests of 4,096 + 1,024
/// tokens, every other field the estimator's default.
pub fn default_scenario() -> Scenario {
    Scenario { model: DEFAULT_MODEL.into(), input_len: 4096, output_len: 1024, concurrency: 32, ..Scenario::default() }
}

/// The estimate of [`default_scenario`] on [`DEFAULT_CONFIG`].
pub fn default_estimate() -> kv_estimator::Result<Estimate> {
    let shape = kv_estimator::parse_config(DEFAULT_CONFIG)?;
    kv_estimator::estimate(&shape, &default_scenario())
}

/// Text for SVG/HTML markup: `&`, `<`, `>`, `"` and `'` escaped, so a model id or a device name
/// from an uploaded measurement is shown as text, never parsed as markup.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The tooltip of a basis.
pub fn tip(b: Basis) -> &'static str {
    match b {
        Basis::Exact => EXACT_TIP,
        Basis::Modelled => MODELLED_TIP,
    }
}

/// `exact` or `modelled`.
pub fn basis_word(b: Basis) -> &'static str {
    match b {
        Basis::Exact => "exact",
        Basis::Modelled => "modelled",
    }
}

/// Bytes as GiB with two decimals (the unit engines print).
pub fn gib(b: u64) -> String {
    Bytes(b).to_string()
}

/// `8.03B`, `541.3M`, `12.0K`: a parameter count at its magnitude.
pub fn params(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{}B", fixed(x / 1e9, 2))
    } else if x >= 1e6 {
        format!("{}M", fixed(x / 1e6, 1))
    } else {
        format!("{}K", fixed(x / 1e3, 1))
    }
}

/// The verdict: fits or not, with the headroom, and the most requests that fit.
pub fn verdict(e: &Estimate) -> String {
    let s = &e.scenario;
    let class = if e.fits { "verdict fits" } else { "verdict nofit" };
    let headline = if !e.engine.fits {
        format!("Does not fit: {} would refuse to start", e.engine.name)
    } else if let Some(b) = &e.engine.budget {
        // an engine that allocates its KV pool whole (SGLang): the requests draw on the pool
        let (kv, pool) = (e.kv_cache.bytes.0, b.kv_room.0);
        // a recurrent hybrid's requests hold their state's slots beside their tokens
        let pools = if b.state_pool.is_some() { "KV and state pools" } else { "KV pool" };
        if e.fits {
            format!("Fits: {} of {} take {} of {}'s {} {pools} ({} headroom); {} of {} in all", count(s.concurrency, "request"), count(s.context_len(), "token"), gib(kv), e.engine.name, gib(pool), gib(e.headroom_bytes.max(0) as u64), gib(e.total.0), gib(e.capacity.0))
        } else if b.work_shortfall.0 > 0 {
            format!("Does not fit: the activation peak ({}) needs {} more than {} leaves after its pool and the request-to-token table and buffers beside it", gib(e.activation.bytes.0), gib(b.work_shortfall.0), e.engine.name)
        } else if let Some(p) = b.state_pool.filter(|p| s.concurrency > p.tokens) {
            // a request holds a slot of the recurrent layers' state pool as well as its tokens
            format!(
                "Does not fit: {} need as many slots of {}'s state pool for their recurrent layers, which holds {} ({} each)",
                count(s.concurrency, "request"),
                e.engine.name,
                count(p.tokens, "slot"),
                gib(p.bytes_per_token)
            )
        } else if b.window_pool.is_some() || b.state_pool.is_some() {
            // with a separate window pool the full-attention pool is what runs out; with a state
            // pool whose slots suffice, the token pool (slots without bytes for a model without
            // attention layers, SGLang's, where more memory would not help)
            let bytes_short = format!(" ({} short)", gib(e.headroom_bytes.unsigned_abs()));
            let (which, holds, short) = match (b.window_pool.is_some(), b.full_pool.bytes_per_token) {
                (true, _) => ("full-attention pool", "holds", bytes_short),
                (false, 0) => ("token slots", "hold", ": its context length, as a model without attention layers gets (--max-total-tokens raises the slots, --context-length the longest request)".to_string()),
                (false, _) => ("token pool", "holds", bytes_short),
            };
            format!(
                "Does not fit: {} of {} need {} of {}'s {which}, which {holds} {}{short}",
                count(s.concurrency, "request"),
                count(s.context_len(), "token"),
                count(b.tokens_needed(s.context_len(), s.concurrency).0, "token"),
                e.engine.name,
                count(b.full_pool.tokens, "token"),
            )
        } else {
            format!("Does not fit: {} of {} need {} of KV, {}'s pool holds {} ({} short)", count(s.concurrency, "request"), count(s.context_len(), "token"), gib(kv), e.engine.name, gib(pool), gib(e.headroom_bytes.unsigned_abs()))
        }
    } else if e.fits {
        format!("Fits: {} of {} use {} of {} ({} headroom)", count(s.concurrency, "request"), count(s.context_len(), "token"), gib(e.total.0), gib(e.capacity.0), gib(e.headroom_bytes.max(0) as u64))
    } else {
        format!("Does not fit: {} needed, {} available ({} short)", gib(e.total.0), gib(e.capacity.0), gib(e.headroom_bytes.unsigned_abs()))
    };
    let mut m = String::with_capacity(512);
    let _ = write!(
        m,
        r#"<section id="verdict" class="{class}" data-fits="{}" aria-live="polite"><h2 elementtiming="estimate">{}</h2><p id="max-concurrency" data-value="{}">Up to {} of {} {} on {}.</p>"#,
        e.fits,
        escape(&headline),
        e.max_concurrency,
        count(e.max_concurrency, "concurrent request"),
        count(s.context_len(), "token"),
        if e.max_concurrency == 1 { "fits" } else { "fit" },
        if s.dp > 1 { format!("each of the {} data-parallel replicas", s.dp) } else { "each GPU".to_string() }
    );
    if let Some(n) = e.running_note() {
        let _ = write!(m, r#"<p id="running-cap">{}.</p>"#, escape(&n));
    }
    if let Some(msg) = &e.engine.message {
        let _ = write!(m, r#"<p id="engine-message" class="engine-msg">{} would say: <q>{}</q></p>"#, escape(&e.engine.name), escape(msg));
    }
    m.push_str("</section>");
    m
}

/// The stacked bar of the memory breakdown (weights, KV cache, activations, overhead, free)
/// against the usable capacity and the GPU's memory, with its legend.
pub fn breakdown(e: &Estimate) -> String {
    let mut parts = vec![
        ("weights", e.weights.per_gpu.0, "weights"),
        ("KV cache", e.kv_cache.bytes.0, "kv"),
        ("activations", e.activation.bytes.0, "act"),
        ("overhead", e.overhead.bytes.0, "over"),
        // with an engine's own split, the pool's bytes the requests do not take
        match &e.engine.budget {
            Some(b) if b.state_pool.is_some() => ("unused in the KV and state pools", e.unused_in_pool().0, "free"),
            Some(_) => ("unused in the KV pool", e.unused_in_pool().0, "free"),
            None => ("free", e.headroom_bytes.max(0) as u64, "free"),
        },
    ];
    // an engine's own split (SGLang): what it keeps outside its pool beyond the activations and
    // graphs, which the requests' KV cannot use
    if e.engine.budget.is_some() {
        parts.push(("held outside the pool", e.held_outside_pool().0, "held"));
    }
    let scale = e.total.0.max(e.capacity.0).max(e.gpu_memory.0).max(1) as f64;
    let w = 460.0;
    let mut m = String::with_capacity(2048);
    m.push_str(r#"<section id="breakdown" class="panel" aria-labelledby="h-breakdown"><h2 id="h-breakdown">Where the memory goes (per GPU)</h2><svg viewBox="0 0 480 64" role="img" aria-label="memory breakdown against capacity" class="bar">"#);
    let mut x = 0.0;
    for &(label, b, class) in &parts {
        let width = b as f64 / scale * w;
        let _ = write!(m, r#"<rect x="{:.1}" y="8" width="{:.1}" height="30" class="seg {class}"><title>{}</title></rect>"#, 10.0 + x, width.max(0.0), escape(&format!("{label}: {}", gib(b))));
        x += width;
    }
    let cap_x = e.capacity.0 as f64 / scale * w;
    let mem_x = e.gpu_memory.0 as f64 / scale * w;
    let _ = write!(m, r#"<line x1="{c:.1}" x2="{c:.1}" y1="2" y2="44" class="cap"></line><line x1="{g:.1}" x2="{g:.1}" y1="2" y2="44" class="mem"></line>"#, c = 10.0 + cap_x, g = 10.0 + mem_x);
    // near the right edge the label ends at the line instead of centring on it (it stays inside the 480-wide box)
    let (label_x, anchor) = if 10.0 + cap_x > 400.0 { ((10.0 + cap_x).min(476.0), "end") } else { (10.0 + cap_x, "middle") };
    let _ = write!(m, r#"<text x="{label_x:.1}" y="58" class="cap-label" text-anchor="{anchor}">{}</text></svg><ul class="legend">"#, escape(&format!("usable {}", gib(e.capacity.0))));
    for (label, b, class) in parts {
        let _ = write!(m, r#"<li><span class="sw {class}"></span>{} {}</li>"#, escape(label), escape(&gib(b)));
    }
    m.push_str("</ul></section>");
    m
}

/// One figure's table row: GiB, bytes, basis (with its tooltip) and the derivation one click away.
fn figure_row(out: &mut String, id: &str, f: &Figure) {
    let b = f.bytes.0;
    let word = basis_word(f.basis);
    let tip = escape(tip(f.basis));
    let _ = write!(
        out,
        r#"<tr id="{id}" data-bytes="{b}" data-basis="{word}"><th scope="row">{}</th><td class="num" title="{tip}">{}</td><td class="num">{b} B</td><td><span class="basis {word}" title="{tip}">{word}</span></td><td><details class="derivation"><summary>how</summary><p class="formula">{}</p><p class="subst">= {}</p>"#,
        escape(&f.name),
        escape(&gib(b)),
        escape(&f.formula),
        escape(&f.substituted)
    );
    for n in &f.notes {
        let _ = write!(out, r#"<p class="note">{}</p>"#, escape(n));
    }
    out.push_str("</details></td></tr>");
}

/// The per-GPU figures (the inside of the `#figures` panel, which the page completes with the
/// checkpoint size from the Hub when it has one): the scenario line, the four components, total,
/// usable and headroom, the KV per token and per request, the parameter count.
pub fn figures(e: &Estimate) -> String {
    let s = &e.scenario;
    let mut m = String::with_capacity(8192);
    let _ = write!(
        m,
        r#"<h2 id="h-figures">Per GPU</h2><p class="sub">{}</p><table><thead><tr><th>component</th><th>GiB</th><th>bytes</th><th>basis</th><th>derivation</th></tr></thead><tbody>"#,
        escape(&format!("{} × {} ({} each), {}, {} {}, weights {}, KV {}", e.gpus, e.gpu_label, e.gpu_memory, s.parallelism(), e.engine.name, e.engine.version, e.weights.plan.label, e.kv.kv_dtype))
    );
    figure_row(&mut m, "fig-weights", &e.weights.figure);
    figure_row(&mut m, "fig-kv", &e.kv_cache);
    figure_row(&mut m, "fig-activation", &e.activation);
    figure_row(&mut m, "fig-overhead", &e.overhead);
    let headroom = e.headroom_text("−");
    let _ = write!(m, r#"<tr id="fig-total" data-bytes="{t}"><th scope="row">total</th><td class="num">{}</td><td class="num">{t} B</td><td></td><td></td></tr>"#, escape(&gib(e.total.0)), t = e.total.0);
    let _ = write!(
        m,
        r#"<tr id="fig-capacity" data-bytes="{c}"><th scope="row">{}</th><td class="num">{}</td><td class="num">{c} B</td><td></td><td></td></tr>"#,
        escape(&format!("usable ({})", e.capacity_basis("×"))),
        escape(&gib(e.capacity.0)),
        c = e.capacity.0
    );
    let _ = write!(m, r#"<tr id="fig-headroom" data-bytes="{h}"><th scope="row">headroom</th><td class="num">{}</td><td class="num">{h} B</td><td></td><td></td></tr></tbody></table>"#, escape(&headroom), h = e.headroom_bytes);
    let groups = e.kv_groups_label("×");
    let _ = write!(
        m,
        r#"<p id="kv-per-token" data-bytes="{bpt}" title="{EXACT_TIP}">KV per token: <strong>{bpt} B</strong> ({}); per request: <strong>{}</strong>{}</p>"#,
        escape(&groups),
        escape(&e.kv_per_request.bytes.to_string()),
        if e.kv.state_bytes_per_request > 0 { escape(&format!("; recurrent state {} per request", Bytes(e.kv.state_bytes_per_request))) } else { String::new() },
        bpt = e.kv.bytes_per_token,
    );
    let active = if e.model.params_active != e.model.params_total { format!(", {} active per token", params(e.model.params_active)) } else { String::new() };
    let _ = write!(m, r#"<p class="sub">{} parameters{}; weights in all: {}</p>"#, escape(&params(e.model.params_total)), escape(&active), escape(&e.weights.total.to_string()));
    m
}

/// The permalink bar as the page first shows it (the page's own bar replaces it, with the copy
/// button working).
pub fn link_bar(query: &str) -> String {
    format!(r#"<div class="linkbar"><code id="permalink" title="every input is in this link">?{}</code><button id="copy-link">Copy link</button><span id="copy-status" aria-live="polite"></span></div>"#, escape(query))
}

/// The page's first frame for `e`, as `index.html` carries it before the wasm runs: the layout
/// with the (still empty) controls column, the link bar, the verdict, the breakdown and the
/// per-GPU figures. `data-query` is the link it answers: a visit with another link never shows it.
pub fn first_frame(e: &Estimate) -> String {
    let query = e.scenario.to_query();
    format!(
        r#"<main class="layout" id="prerendered" data-query="{}"><div class="inputs"></div><div class="results">{}<div class="part">{}</div><div class="part">{}</div><div class="part"><section id="figures" class="panel" aria-labelledby="h-figures"><div class="part">{}</div></section></div></div></main>"#,
        escape(&query),
        link_bar(&query),
        verdict(e),
        breakdown(e),
        figures(e)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup() {
        assert_eq!(escape(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_default_frame_carries_the_estimators_figures() {
        let e = default_estimate().expect("the default scenario estimates");
        let f = first_frame(&e);
        for (id, bytes) in [("fig-weights", e.weights.per_gpu.0), ("fig-kv", e.kv_cache.bytes.0), ("fig-activation", e.activation.bytes.0), ("fig-overhead", e.overhead.bytes.0), ("fig-total", e.total.0), ("fig-capacity", e.capacity.0)] {
            assert!(f.contains(&format!(r#"<tr id="{id}" data-bytes="{bytes}""#)), "{id} with {bytes} B");
        }
        assert!(f.contains(&format!(r#"data-value="{}""#, e.max_concurrency)));
        assert!(f.contains(&format!(r#"data-query="{}""#, escape(&e.scenario.to_query()))));
        assert!(f.contains("meta-llama/Llama-3.1-8B-Instruct"));
        // balanced: every opened section and table is closed
        assert_eq!(f.matches("<section").count(), f.matches("</section>").count());
        assert_eq!(f.matches("<div").count(), f.matches("</div>").count());
    }

    #[test]
    fn one_request_and_one_token_are_singular() {
        let shape = kv_estimator::parse_config(DEFAULT_CONFIG).unwrap();
        let verdict_at = |q: &str| verdict(&kv_estimator::estimate(&shape, &kv_estimator::Scenario::from_query(q).unwrap()).unwrap());
        let v = verdict_at("m=meta-llama/Llama-3.1-8B-Instruct&gpu=h100-80gb&n=1&in=1000&out=24");
        assert!(v.contains("Fits: 1 request of 1024 tokens use") && !v.contains("1 requests"), "{v}");
        // one 131,072-token request beside the weights on a 40 GB A100: at most one fits
        let v = verdict_at("m=meta-llama/Llama-3.1-8B-Instruct&gpu=a100-40gb&n=1&in=100000&out=31072");
        assert!(v.contains("Up to 1 concurrent request of 131072 tokens fits on each GPU."), "{v}");
        let v = verdict_at("m=meta-llama/Llama-3.1-8B-Instruct&gpu=h100-80gb&n=2&in=1000&out=24");
        assert!(v.contains("Fits: 2 requests of 1024 tokens use") && v.contains("concurrent requests of 1024 tokens fit on"), "{v}");
        // a one-token context (a link may ask for one) reads "1 token", wherever the count appears
        let v = verdict_at("m=meta-llama/Llama-3.1-8B-Instruct&gpu=h100-80gb&n=1&in=1&out=0");
        assert!(v.contains("Fits: 1 request of 1 token use") && v.contains("concurrent requests of 1 token fit on") && !v.contains("1 tokens"), "{v}");
    }

    #[test]
    fn the_schedulers_limit_shows_where_it_binds() {
        let shape = kv_estimator::parse_config(DEFAULT_CONFIG).unwrap();
        let verdict_at = |q: &str| verdict(&kv_estimator::estimate(&shape, &kv_estimator::Scenario::from_query(q).unwrap()).unwrap());
        // one-token requests: the memory holds far more than vLLM's 1024 sequences on an H100
        let v = verdict_at("m=meta-llama/Llama-3.1-8B-Instruct&gpu=h100-80gb&n=1&in=1&out=0");
        assert!(v.contains(r#"<p id="running-cap">vllm runs at most 1024 requests at once (max_num_seqs 1024, vLLM "#), "{v}");
        // 2000 requests: 976 wait, though their KV fits
        let v = verdict_at("m=meta-llama/Llama-3.1-8B-Instruct&gpu=h100-80gb&n=2000&in=16&out=0");
        assert!(v.contains("Fits:") && v.contains("976 of these 2000 wait in its queue"), "{v}");
        // the page's default (32 requests of 5120 tokens) stays within it: nothing said
        assert!(!verdict(&default_estimate().unwrap()).contains("running-cap"));
    }

    #[test]
    fn a_refusal_names_the_engine_and_its_message() {
        let shape = kv_estimator::parse_config(DEFAULT_CONFIG).unwrap();
        let mut s = default_scenario();
        s.set("gpu", "l4").unwrap();
        s.set("ctx", "131072").unwrap();
        s.set("e", "vllm").unwrap();
        let e = kv_estimator::estimate(&shape, &s).unwrap();
        // 16 GiB of KV for one 131,072-token request beside 15 GiB of weights on a 24 GB L4
        assert!(!e.engine.fits && !e.fits);
        let v = verdict(&e);
        assert!(v.contains("Does not fit: vLLM would refuse to start") || v.contains("would refuse to start"), "{v}");
        assert!(v.contains(r#"id="engine-message""#) && v.contains(r#"data-fits="false""#), "{v}");
    }

    #[test]
    fn sglang_verdicts_read_its_token_pool() {
        let shape = kv_estimator::parse_config(DEFAULT_CONFIG).unwrap();
        let at = |n: &str| {
            let mut s = default_scenario();
            for (k, v) in [("gpu", "h100-80gb"), ("e", "sglang"), ("n", n), ("in", "4096"), ("out", "1024")] {
                s.set(k, v).unwrap();
            }
            kv_estimator::estimate(&shape, &s).unwrap()
        };
        let e = at("8");
        let pool = gib(e.engine.kv_pool_bytes.0);
        let v = verdict(&e);
        assert!(e.fits && v.contains(&escape(&format!("take {} of sglang's {pool} KV pool", gib(e.kv_cache.bytes.0)))), "{v}");
        let over = at(&(e.max_concurrency + 1).to_string());
        let v = verdict(&over);
        assert!(!over.fits && v.contains(&escape(&format!("sglang's pool holds {pool}"))) && v.contains("short"), "{v}");
        // the capacity row says where the usable memory comes from
        assert!(figures(&e).contains("usable (free at load: "), "{}", figures(&e));
        // the bar's parts fill the free memory at load: what SGLang holds outside its pool beyond
        // the activations and graphs is a part of its own
        let held = e.held_outside_pool().0;
        assert!(held > 0 && breakdown(&e).contains("held outside the pool"));
        assert_eq!(e.total.0 + (e.engine.kv_pool_bytes.0 - e.kv_cache.bytes.0) + held, e.capacity.0);
        // gpt-oss on 0.5.23 keeps its window layers in a pool of their own: the full-attention
        // pool is what 20 requests of 64k tokens overrun, in tokens
        let cfg = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../model-configs/openai/gpt-oss-20b/config.json")).unwrap();
        let oss = kv_estimator::parse_config(&cfg).unwrap();
        let s = kv_estimator::Scenario::from_query("m=openai/gpt-oss-20b&gpu=h100-80gb&e=sglang&in=60000&out=4000&n=20").unwrap();
        let e = kv_estimator::estimate(&oss, &s).unwrap();
        let full = e.engine.budget.as_ref().unwrap().full_pool.tokens;
        assert!(full < 20 * 64_000 && !e.fits);
        let v = verdict(&e);
        assert!(v.contains(&escape(&format!("need 1280000 tokens of sglang's full-attention pool, which holds {full} tokens"))), "{v}");
        // Qwen3-Next keeps its DeltaNet layers' state in a pool of request slots: more requests
        // than slots do not fit, however few tokens they hold; the bar's parts still fill the
        // free memory at load
        let cfg = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../model-configs/Qwen/Qwen3-Next-80B-A3B-Thinking/config.json")).unwrap();
        let next = kv_estimator::parse_config(&cfg).unwrap();
        let at = |n: u64| {
            let s = kv_estimator::Scenario::from_query(&format!("m=Qwen/Qwen3-Next-80B-A3B-Thinking&gpu=h200&tp=2&e=sglang&in=100&out=28&n={n}")).unwrap();
            kv_estimator::estimate(&next, &s).unwrap()
        };
        let slots = at(1).engine.budget.as_ref().unwrap().state_pool.unwrap().tokens;
        let (fits, over) = (at(slots), at(slots + 1));
        assert!(fits.fits && !over.fits, "{slots}");
        assert!(verdict(&fits).contains("KV and state pools"), "{}", verdict(&fits));
        let v = verdict(&over);
        assert!(v.contains(&format!("{} requests need as many slots of sglang&#39;s state pool", slots + 1)) && v.contains(&format!("holds {slots} slots")), "{v}");
        // nine requests of 262,144 tokens are within the slots, and overrun the token pool
        let long = kv_estimator::Scenario::from_query("m=Qwen/Qwen3-Next-80B-A3B-Thinking&gpu=h200&tp=2&e=sglang&in=262000&out=144&n=9").unwrap();
        let long = kv_estimator::estimate(&next, &long).unwrap();
        let held = long.engine.budget.as_ref().unwrap().full_pool.tokens;
        assert!(!long.fits && verdict(&long).contains(&format!("need 2359296 tokens of sglang&#39;s token pool, which holds {held} tokens")), "{}", verdict(&long));
        assert!(breakdown(&fits).contains("unused in the KV and state pools"));
        // Falcon-Mamba has no attention layers: SGLang's token pool is context_len (2048) slots of
        // no bytes, which two requests of 1280 tokens overrun with room in the state pool
        let cfg = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../model-configs/tiiuae/falcon-mamba-7b/config.json")).unwrap();
        let fm = kv_estimator::parse_config(&cfg).unwrap();
        let at = |n: u64| {
            let s = kv_estimator::Scenario::from_query(&format!("m=tiiuae/falcon-mamba-7b&gpu=h100-80gb&e=sglang&in=1024&out=256&n={n}")).unwrap();
            kv_estimator::estimate(&fm, &s).unwrap()
        };
        let (one, two) = (at(1), at(2));
        assert!(one.fits && verdict(&one).contains("KV and state pools"), "{}", verdict(&one));
        let v = verdict(&two);
        assert!(!two.fits && v.contains("need 2560 tokens of sglang&#39;s token slots, which hold 2048 tokens: its context length"), "{v}");
        assert!(figures(&two).contains("−512 token slots"), "{}", figures(&two));
    }
}
