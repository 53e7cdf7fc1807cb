//! The results: every number comes from `kv_estimator` (`estimate`, `fragmentation`, `solve`,
//! `Measurement::accuracy_rows`); these components only lay them out, with units, a basis
//! tooltip (exact or modelled) and the derivation one click away.

use crate::app::{Source, St};
use crate::chart::{self, Marker, Series, Spec};
use crate::io;
use kv_estimator::engine::EngineReport;
use kv_estimator::estimate::{fragmentation_table, inflight_lengths_label, solve, ContextRow, Estimate};
use kv_estimator::model::DefaultUsed;
use kv_estimator::units::{count, fixed};
use kv_estimator::{Engine, Scenario, WeightDtype};
use leptos::prelude::*;

use kv_markup::{gib, params, MODELLED_TIP};

fn gib_f(b: f64) -> f64 {
    b / (1u64 << 30) as f64
}

/// Permalink notices, the copy-link bar.
#[component]
pub fn LinkBar(st: St) -> impl IntoView {
    let copied = RwSignal::new(String::new());
    let link = move || st.scenario.with(|s| format!("?{}", s.to_query()));
    view! {
        <div class="linkbar">
            <code id="permalink" title="every input is in this link">{link}</code>
            <button id="copy-link" on:click=move |_| {
                let url = io::href();
                leptos::task::spawn_local(async move {
                    copied.set(match io::copy(&url).await {
                        Ok(()) => "link copied".into(),
                        Err(e) => format!("copy failed ({e}); the address bar holds the same link"),
                    });
                });
            }>"Copy link"</button>
            <span id="copy-status" aria-live="polite">{move || copied.get()}</span>
        </div>
        <Show when=move || st.notices.with(|n| !n.is_empty())>
            <div id="notices" class="notice" role="status">
                <p>"Some link parameters could not be used:"</p>
                <ul>{move || st.notices.get().into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul>
                <button id="dismiss-notices" on:click=move |_| st.notices.set(vec![])>"Dismiss"</button>
            </div>
        </Show>
    }
}

/// What the results area shows. It changes far less often than the estimate: the sections inside
/// re-render on their own, each when the figures it shows change.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    /// No estimate yet; the text says why, and whether it is an answer (a failed config).
    Waiting(String, bool),
    Error(String),
    Estimate,
}

/// `f` of the current estimate, when there is one (tracked: a closure or memo calling this
/// re-runs when the estimate changes).
fn with_estimate<T>(st: St, f: impl FnOnce(&Estimate) -> T) -> Option<T> {
    st.estimate.with(|e| e.as_ref().and_then(|r| r.as_ref().ok()).map(f))
}

/// The current estimate, when there is one.
fn current(st: St) -> Option<Estimate> {
    with_estimate(st, Estimate::clone)
}

/// Everything computed for the scenario, or why nothing is.
#[component]
pub fn Results(st: St) -> impl IntoView {
    let shown = Memo::new(move |_| match st.estimate.with(|e| e.as_ref().map(|r| r.as_ref().err().cloned())) {
        Some(Some(e)) => Shown::Error(e),
        Some(None) => Shown::Estimate,
        None => st.source.with(|src| match src {
            Source::Loading(id) => Shown::Waiting(format!("loading {id}…"), false),
            Source::Failed { .. } => Shown::Waiting("no config: see the message under Model".into(), true),
            Source::None | Source::Loaded { .. } => Shown::Waiting("pick a model".into(), false),
        }),
    });
    // sections whose figures do not depend on every input (the engine report and the capacity
    // table do not change with the number of requests) skip the re-render when they are unchanged
    // with the engine profile's published track record (how far off it has been in public logs)
    let engine = Memo::new(move |_| {
        with_estimate(st, |e| (e.engine.clone(), kv_estimator::validation::published_track_record(e.scenario.engine).map(|t| t.summary())))
    });
    let capacity = Memo::new(move |_| with_estimate(st, |e| e.context_table.clone()));
    let notes = Memo::new(move |_| with_estimate(st, |e| (e.model.defaults.clone(), e.model.notes.iter().chain(e.weights.plan.notes.iter()).cloned().collect::<Vec<String>>())));
    move || match shown.get() {
        Shown::Waiting(why, answer) => {
            // a failed config is an answer; the controls need not wait long for a model from the Hub
            first_view(st, if answer { First::NoEstimate } else { First::Waiting });
            view! { <p id="no-result" class="status">{why}</p> }.into_any()
        }
        Shown::Error(e) => {
            first_view(st, First::NoEstimate);
            view! { <div id="estimate-error" class="error" role="alert"><p>{e}</p></div> }.into_any()
        }
        Shown::Estimate => {
            first_view(st, First::Estimate);
            view! {
                {move || current(st).map(|e| view! {
                    <Verdict e=e.clone() />
                    <Breakdown e=e.clone() />
                    <Figures e=e st=st />
                })}
                // the rest renders once the first estimate is on screen (`first_view`)
                <Show when=move || st.full.get()>
                    {move || engine.get().map(|(en, track)| view! { <EngineSection en=en track=track /> })}
                    {move || capacity.get().map(|rows| view! { <CapacityTable rows=rows /> })}
                    <Charts st=st />
                    {move || current(st).map(|e| view! {
                        <Fragmentation e=e.clone() />
                        <Throughput e=e />
                    })}
                    {move || notes.get().map(|(defaults, notes)| view! { <Notes defaults=defaults notes=notes /> })}
                </Show>
            }
            .into_any()
        }
    }
}

/// What the results area's first view holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum First {
    /// A model is still loading.
    Waiting,
    /// The estimate (its verdict heading carries `elementtiming="estimate"`).
    Estimate,
    /// Why there is no estimate (a failed config, an invalid scenario).
    NoEstimate,
}

/// How long the controls wait for a loading model's first answer before they render anyway (a
/// bundled config answers in tens of ms; the Hub can take seconds).
const REVEAL_WAIT_MS: i32 = 400;

/// Lets the rest of the page (controls, charts, tables) render once the first answer is on
/// screen, and records when it got there: the estimate, or why there is none. While a model loads,
/// the rest waits up to [`REVEAL_WAIT_MS`], so a bundled config's estimate is not held up by it.
fn first_view(st: St, what: First) {
    use std::cell::Cell;
    thread_local! {
        static MARKED: Cell<bool> = const { Cell::new(false) };
        static WAITING: Cell<bool> = const { Cell::new(false) };
    }
    if what == First::Waiting {
        if !st.full.get_untracked() && !WAITING.with(|w| w.replace(true)) {
            io::set_timeout(REVEAL_WAIT_MS, move || st.full.set(true));
        }
        return;
    }
    if MARKED.with(|m| m.replace(true)) {
        return;
    }
    io::mark("results_view_ms", io::now_ms(), false);
    io::after_render(move || io::mark("first_estimate_dom_ms", io::now_ms(), false));
    // the rest renders once this frame is on screen: on 2 cores a long render right after the
    // paint delays the frame's presentation
    let done = move |t: f64| {
        io::mark("first_estimate_ms", t, false);
        st.full.set(true);
    };
    match what {
        First::Estimate => io::after_estimate_painted(done),
        _ => io::after_paint(move || done(io::now_ms())),
    }
}

/// The verdict (fits or not, the headroom, the most requests that fit), as `index.html`'s
/// prerendered frame shows it for the default link (`kv_markup::verdict`).
#[component]
fn Verdict(e: Estimate) -> impl IntoView {
    view! { <div class="part" inner_html=kv_markup::verdict(&e)></div> }
}

/// The stacked bar of the memory breakdown against the capacity (`kv_markup::breakdown`: it is in
/// the page's first frame, where every distinct element-building function the browser meets is
/// compiled on its first call, so it is one markup string set in one DOM call).
#[component]
fn Breakdown(e: Estimate) -> impl IntoView {
    view! { <div class="part" inner_html=kv_markup::breakdown(&e)></div> }
}

/// The per-GPU figures (`kv_markup::figures`), then the checkpoint's size from the Hub when it
/// was fetched for this model.
#[component]
fn Figures(e: Estimate, st: St) -> impl IntoView {
    let checkpoint = move || {
        st.safetensors.get().and_then(|(id, r)| {
            let current = st.scenario.with(|s| s.model.clone());
            (id == current).then(|| match r {
                Ok(size) => view! { <p id="safetensors" data-bytes=size.to_string()>"Checkpoint on the Hub (model.safetensors.index.json total_size): " <strong>{gib(size)}</strong> {format!(" ({size} B)")}</p> }.into_any(),
                Err(why) => view! { <p id="safetensors">"Checkpoint size from the Hub: not available (" {why} ")"</p> }.into_any(),
            })
        })
    };
    view! {
        <div class="part">
            <section id="figures" class="panel" aria-labelledby="h-figures">
                <div class="part" inner_html=kv_markup::figures(&e)></div>
                {checkpoint}
            </section>
        </div>
    }
}

#[component]
fn EngineSection(en: EngineReport, track: Option<String>) -> impl IntoView {
    view! {
        <section id="engine" class="panel" aria-labelledby="h-engine-report">
            <h2 id="h-engine-report">{format!("What {} {} would allocate", en.name, en.version)}</h2>
            <dl class="kv">
                <dt title=MODELLED_TIP>"KV pool"</dt><dd id="engine-pool" data-bytes=en.kv_pool_bytes.0.to_string()>{gib(en.kv_pool_bytes.0)}</dd>
                <dt>"tokens it holds"</dt><dd id="engine-tokens" data-value=en.kv_tokens.to_string()>{count(en.kv_tokens, "token")}</dd>
                <dt>"blocks"</dt><dd id="engine-blocks">{format!("{} of {}", en.num_blocks, count(en.block_size, "token"))}</dd>
                <dt>"max concurrency"</dt><dd id="engine-concurrency">{format!("{}x at {} per request", fixed(en.max_concurrency, 2), count(en.max_model_len, "token"))}</dd>
                {en.running_cap.clone().map(|c| view! { <dt>"runs at once"</dt><dd id="engine-running" data-value=c.requests.to_string()>{format!("at most {} ({})", count(c.requests, "request"), c.source)}</dd> })}
                <dt>"starts?"</dt><dd id="engine-starts">{if en.fits { "yes".to_string() } else { "no: refuses to start".to_string() }}</dd>
            </dl>
            {en.notes.into_iter().map(|n| view! { <p class="note">{n}</p> }).collect_view()}
            {track.map(|t| view! { <p id="engine-track-record" class="note">"How sure: " {t} " (every case: docs/accuracy/engine-logs*.md)."</p> })}
        </section>
    }
}

#[component]
fn CapacityTable(rows: Vec<ContextRow>) -> impl IntoView {
    view! {
        <section id="capacity" class="panel" aria-labelledby="h-capacity">
            <h2 id="h-capacity">"Concurrent requests per context length"</h2>
            <table id="capacity-table">
                <thead><tr><th>"tokens per request"</th><th>"KV per request"</th><th>"max concurrent requests"</th></tr></thead>
                <tbody>
                    {rows.iter().map(|r| view! {
                        <tr data-context=r.context.to_string()><td class="num">{chart::count_label(r.context as f64)}</td><td class="num">{r.kv_bytes_per_request.to_string()}</td><td class="num">{r.max_concurrency}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// One SVG chart from a spec.
fn svg_chart(id: &'static str, title: String, spec: Spec) -> impl IntoView {
    let d = chart::draw(&spec);
    let legend: Vec<(String, &'static str)> = spec.series.iter().map(|s| (s.label.clone(), s.class)).collect();
    let has_markers = !d.markers.is_empty();
    view! {
        <figure class="chart" id=id>
            <figcaption>{title.clone()}</figcaption>
            <svg viewBox=format!("0 0 {} {}", chart::WIDTH, chart::HEIGHT) role="img" aria-label=title inner_html=chart::svg_markup(&d)></svg>
            <ul class="legend">
                {legend.into_iter().map(|(l, c)| view! { <li><span class=format!("sw {c}")></span>{l}</li> }).collect_view()}
                {has_markers.then(|| view! { <li><span class="sw measured"></span>"measured"</li> })}
            </ul>
        </figure>
    }
}

/// The estimate at a modified scenario (the same function, never a re-derived formula).
fn at(shape: &kv_estimator::ModelShape, s: &Scenario) -> Option<Estimate> {
    kv_estimator::estimate(shape, s).ok()
}

#[component]
fn Charts(st: St) -> impl IntoView {
    // the three charts' data; each chart re-renders only when its own data changes (the capacity
    // chart does not depend on the number of requests)
    let specs = Memo::new(move |_| -> Option<[(String, Spec); 3]> {
        let Source::Loaded { shape, .. } = st.source.get() else { return None };
        let s = st.scenario.get();
        let base = current(st)?;
        // where the requests stop fitting: the usable memory, or (SGLang) the full KV pool
        let cap = gib_f(base.fit_limit().0 as f64);
        let max_n = (base.max_concurrency.saturating_mul(2)).clamp(64, 4096);
        let conc: Vec<(f64, f64)> = chart::doubling(1, max_n).into_iter().filter_map(|n| at(&shape, &Scenario { concurrency: n, ..s.clone() }).map(|e| (n as f64, gib_f(e.total.0 as f64)))).collect();
        let max_ctx = base.engine.max_model_len.clamp(4096, 1 << 20);
        let ctx_points: Vec<(u64, Estimate)> = chart::doubling(1024, max_ctx)
            .into_iter()
            .filter_map(|c| {
                let t = Scenario { input_len: c.saturating_sub(s.output_len.min(c / 2)).max(1), output_len: s.output_len.min(c / 2), max_model_len: Some(c.max(base.engine.max_model_len)), ..s.clone() };
                at(&shape, &t).map(|e| (c, e))
            })
            .collect();
        let mem_ctx: Vec<(f64, f64)> = ctx_points.iter().map(|(c, e)| (*c as f64, gib_f(e.total.0 as f64))).collect();
        let cap_ctx: Vec<(f64, f64)> = ctx_points.iter().map(|(c, e)| (*c as f64, e.max_concurrency as f64)).collect();
        // measured points of this model: same lengths -> vs concurrency; same concurrency -> vs context
        let (mut m_conc, mut m_ctx) = (vec![], vec![]);
        st.measurements.with(|ms| {
            for m in ms.iter().filter(|m| m.doc.model == s.model) {
                for p in m.doc.points.iter().filter(|p| !p.oom && p.skipped.is_none() && p.peak_bytes > 0) {
                    let label = format!("measured {} on {}: {} x ({} + {}) tokens, peak {}", m.doc.model, m.doc.device, count(p.concurrency, "request"), p.input_len, p.output_len, gib(p.peak_bytes));
                    if p.input_len == s.input_len && p.output_len == s.output_len {
                        m_conc.push(Marker { x: p.concurrency as f64, y: gib_f(p.peak_bytes as f64), label: label.clone(), class: "measured" });
                    }
                    if p.concurrency == s.concurrency {
                        m_ctx.push(Marker { x: (p.input_len + p.output_len) as f64, y: gib_f(p.peak_bytes as f64), label, class: "measured" });
                    }
                }
            }
        });
        let cap_label = format!("{} {} GiB", if base.engine.budget.is_some() { "pool full at" } else { "usable" }, fixed(cap, 1));
        Some([
            (
                format!("Memory per GPU vs concurrent requests ({} each)", count(s.context_len(), "token")),
                Spec { x_label: "concurrent requests".into(), y_label: "GiB per GPU".into(), series: vec![Series { label: "estimated total".into(), class: "total", points: conc }], hlines: vec![(cap, cap_label.clone())], markers: m_conc },
            ),
            (
                format!("Memory per GPU vs tokens per request ({})", count(s.concurrency, "request")),
                Spec { x_label: "tokens per request".into(), y_label: "GiB per GPU".into(), series: vec![Series { label: "estimated total".into(), class: "total", points: mem_ctx }], hlines: vec![(cap, cap_label)], markers: m_ctx },
            ),
            (
                "Concurrent requests that fit vs tokens per request".to_string(),
                Spec { x_label: "tokens per request".into(), y_label: "requests".into(), series: vec![Series { label: "max concurrent requests".into(), class: "cap", points: cap_ctx }], hlines: vec![], markers: vec![] },
            ),
        ])
    });
    let any = Memo::new(move |_| specs.with(Option::is_some));
    let one = move |i: usize, id: &'static str| {
        let spec = Memo::new(move |_| specs.with(|s| s.as_ref().map(|s| s[i].clone())));
        move || spec.get().map(|(title, sp)| svg_chart(id, title, sp))
    };
    move || {
        any.get().then(|| {
            view! {
                <section id="charts" class="panel" aria-labelledby="h-charts">
                    <h2 id="h-charts">"Memory and capacity"</h2>
                    <div class="charts">
                        {one(0, "chart-concurrency")}
                        {one(1, "chart-context")}
                        {one(2, "chart-capacity")}
                    </div>
                </section>
            }
        })
    }
}

#[component]
fn Fragmentation(e: Estimate) -> impl IntoView {
    let s = &e.scenario;
    let rows = fragmentation_table(&e);
    let contiguous = rows.first().cloned();
    let (n, max_len) = contiguous.as_ref().map_or((0, 0), |f| (f.requests, f.max_len));
    view! {
        <section id="fragmentation" class="panel" aria-labelledby="h-frag">
            <h2 id="h-frag">"Paged vs contiguous KV"</h2>
            <p class="sub">{format!("{} in flight, {}; contiguous caches reserve max_model_len = {max_len} each.", count(n, "request"), inflight_lengths_label(s))}</p>
            <table id="fragmentation-table">
                <thead><tr><th>"allocation"</th><th>"reserved"</th><th>"used"</th><th>"wasted"</th></tr></thead>
                <tbody>
                    {contiguous.map(|f| view! { <tr data-kind="contiguous"><td>"contiguous (reserve max length)"</td><td class="num">{f.contiguous.to_string()}</td><td class="num">{f.used.to_string()}</td><td class="num">{format!("{} %", fixed(f.contiguous_waste_pct, 1))}</td></tr> })}
                    {rows.into_iter().map(|f| view! {
                        <tr data-kind="paged" data-block=f.block_size.to_string()><td>{format!("paged, blocks of {}", count(f.block_size, "token"))}</td><td class="num">{f.paged.to_string()}</td><td class="num">{f.used.to_string()}</td><td class="num">{format!("{} %", fixed(f.paged_waste_pct, 2))}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn Throughput(e: Estimate) -> impl IntoView {
    let t = e.throughput.clone();
    view! {
        <section id="throughput" class="panel" aria-labelledby="h-tp">
            <h2 id="h-tp">"Throughput bound (roofline, not a prediction)"</h2>
            <p title=MODELLED_TIP>
                "decode ≤ " <strong id="tp-decode">{format!("{} tokens/s", fixed(t.decode_tokens_per_s, 0))}</strong>
                {format!(" in total ({} per request); prefill ≤ ", fixed(t.decode_tokens_per_s_per_request, 1))}
                <strong>{format!("{} tokens/s", fixed(t.prefill_tokens_per_s, 0))}</strong>
            </p>
            <p class="note">{t.derivation}</p>
        </section>
    }
}

#[component]
fn Notes(defaults: Vec<DefaultUsed>, notes: Vec<String>) -> impl IntoView {
    (!defaults.is_empty() || !notes.is_empty()).then(|| {
        view! {
            <section id="defaults" class="panel" aria-labelledby="h-defaults">
                <h2 id="h-defaults">"Defaults and notes"</h2>
                <ul>
                    {defaults.into_iter().map(|d| view! { <li>"default " <code>{d.field}</code> " = " {d.value} " (" {d.why} ")"</li> }).collect_view()}
                    {notes.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}
                </ul>
            </section>
        }
    })
}

/// The reverse questions: computed only while the panel is open.
#[component]
pub fn Solve(st: St) -> impl IntoView {
    let answers = move || {
        if !st.solve_open.get() {
            return ().into_any();
        }
        let Source::Loaded { shape, .. } = st.source.get() else { return view! { <p>"no model"</p> }.into_any() };
        let s = st.scenario.get();
        let longest = solve::longest_context(&shape, &s);
        let most = solve::most_requests(&shape, &s);
        let gpus = solve::fewest_gpus(&shape, &s);
        let dtype = solve::smallest_dtype(&shape, &s);
        let util = solve::utilization_needed(&shape, &s);
        let ngl = solve::most_gpu_layers(&shape, &s);
        let layers = shape.num_layers();
        let or = |o: Option<String>, none: &str| o.unwrap_or_else(|| none.to_string());
        view! {
            <dl class="kv" id="solve-answers">
                <dt>{format!("Longest context for {}", count(s.concurrency, "request"))}</dt>
                <dd id="solve-context">{or(longest.map(|l| count(l, "token")), "none fits")}</dd>
                <dt>{format!("Most requests of {}", count(s.context_len(), "token"))}</dt>
                <dd id="solve-requests">{or(most.map(|n| count(n, "request")), "not even one")}</dd>
                <dt>"Fewest GPUs"</dt>
                <dd id="solve-gpus">{or(gpus.map(|(tp, pp)| format!("{} (tp={tp}, pp={pp}){}", count(u64::from(tp * pp), "GPU"), if s.dp > 1 || s.expert_parallel { ", one replica without data parallelism" } else { "" })), "more than 64")}</dd>
                <dt>"Widest dtype that fits"</dt>
                <dd id="solve-dtype">{or(dtype.map(|(d, k)| format!("weights {}, KV {}", if d == WeightDtype::Auto { "as the checkpoint".to_string() } else { d.to_string() }, k)), "none of bf16/fp8/int8/int4 with auto/fp8 KV")}</dd>
                <dt>"Memory fraction needed"</dt>
                <dd id="solve-util">{or(util.map(|u| format!("{u:.3}")), "more than the whole GPU")}</dd>
                {(s.engine == Engine::LlamaCpp && s.tp * s.pp <= 1).then(|| view! {
                    <dt>"Most layers on the GPU (llama.cpp -ngl)"</dt>
                    <dd id="solve-ngl">{or(ngl.map(|n| if n > layers { format!("all {layers} layers and the output (-ngl {n})") } else { format!("{n} of {layers} layers (-ngl {n}), the rest in host memory") }), "not even -ngl 0")}</dd>
                })}
            </dl>
        }
        .into_any()
    };
    view! {
        <details id="solve" class="panel" on:toggle=move |ev| {
            let open = event_target::<web_sys::HtmlDetailsElement>(&ev).open();
            st.solve_open.set(open);
        }>
            <summary><h2>"Reverse solve: longest context, most users, fewest GPUs, smallest dtype"</h2></summary>
            {answers}
        </details>
    }
}

/// Several models on the same scenario.
#[component]
pub fn Compare(st: St) -> impl IntoView {
    let pick = RwSignal::new(String::new());
    let rows = move || {
        let s = st.scenario.get();
        st.compare.get().into_iter().map(move |(id, shape)| {
            let rid = id.clone();
            let remove = move |_| st.compare.update(|c| c.retain(|(i, _)| *i != rid));
            let cells = match shape {
                Err(e) => view! { <td colspan="6" class="error">{e}</td> }.into_any(),
                Ok(shape) => match kv_estimator::estimate(&shape, &Scenario { model: id.clone(), ..s.clone() }) {
                    Err(e) => view! { <td colspan="6" class="error">{e.to_string()}</td> }.into_any(),
                    Ok(e) => view! {
                        <td class="num">{params(e.model.params_total)}</td>
                        <td class="num">{gib(e.weights.per_gpu.0)}</td>
                        <td class="num">{format!("{} B", e.kv.bytes_per_token)}</td>
                        <td class="num">{gib(e.total.0)}</td>
                        <td>{if e.fits { "fits" } else { "does not fit" }}</td>
                        <td class="num">{e.max_concurrency}</td>
                    }.into_any(),
                },
            };
            view! { <tr data-model=id.clone()><th scope="row">{id.clone()}</th>{cells}<td><button class="remove" on:click=remove>"remove"</button></td></tr> }
        }).collect_view()
    };
    view! {
        <section id="compare" class="panel" aria-labelledby="h-compare">
            <h2 id="h-compare">"Compare models on this scenario"</h2>
            <div class="row">
                <label for="compare-id" class="sr">"bundled model to compare"</label>
                <input id="compare-id" list="compare-options" placeholder="add a bundled model id" prop:value=move || pick.get() on:input=move |ev| pick.set(event_target_value(&ev)) />
                <datalist id="compare-options">
                    {move || st.index.get().into_iter().filter(|e| e.supported).map(|e| view! { <option value=e.id.clone()></option> }).collect_view()}
                </datalist>
                <button id="compare-add" on:click=move |_| { st.add_compare(pick.get_untracked()); pick.set(String::new()); }>"Add"</button>
            </div>
            <table id="compare-table">
                <thead><tr><th>"model"</th><th>"params"</th><th>"weights/GPU"</th><th>"KV/token"</th><th>"total"</th><th>"verdict"</th><th>"max requests"</th><th></th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
}

/// Measured points beside the estimate: the accuracy table of the current model, and a summary
/// per model of everything loaded.
#[component]
pub fn Accuracy(st: St) -> impl IntoView {
    let rows = move || {
        let model = st.scenario.with(|s| s.model.clone());
        st.measurements.with(|ms| {
            ms.iter()
                .filter(|m| m.doc.model == model)
                .flat_map(|m| m.doc.accuracy_rows().into_iter().map(move |r| (m.origin.clone(), r)))
                .collect::<Vec<_>>()
        })
    };
    let summary = move || {
        st.measurements.with(|ms| {
            let mut per: Vec<(String, usize, Vec<f64>)> = vec![];
            for m in ms {
                for r in m.doc.accuracy_rows() {
                    let peak = r.components.iter().find(|c| c.component == "peak").and_then(|c| c.error_pct);
                    match per.iter_mut().find(|(id, _, _)| *id == r.model) {
                        Some(e) => {
                            e.1 += 1;
                            e.2.extend(peak);
                        }
                        None => per.push((r.model.clone(), 1, peak.into_iter().collect())),
                    }
                }
            }
            per
        })
    };
    let err_cell = |c: Option<&kv_estimator::measurement::ComponentError>| match c {
        Some(c) => {
            let t = format!("estimated {} vs measured {}", gib(c.estimated), gib(c.measured));
            let v = c.error_pct.map(|p| format!("{}{} %", if p >= 0.0 { "+" } else { "" }, fixed(p, 1))).unwrap_or_else(|| "n/a".into());
            view! { <td class="num" title=t>{v}</td> }.into_any()
        }
        None => view! { <td>"-"</td> }.into_any(),
    };
    view! {
        <section id="measured" class="panel" aria-labelledby="h-measured">
            <h2 id="h-measured">"Measured vs estimated"</h2>
            <p class="sub">"Signed error = (estimate − measured) / measured, per component, for measurements of this model (bundled, from the results service, or dropped on the page). Estimates here are the ones stored with each measurement."</p>
            <table id="accuracy-table">
                <thead><tr><th>"date"</th><th>"device"</th><th>"engine"</th><th>"dtype"</th><th>"point"</th><th>"weights"</th><th>"KV"</th><th>"activations"</th><th>"overhead"</th><th>"peak"</th><th>"provenance"</th></tr></thead>
                <tbody>
                    {move || rows().into_iter().map(|(origin, r)| {
                        let find = |name: &str| r.components.iter().find(|c| c.component == name).cloned();
                        let (w, k, a, o, p) = (find("weights"), find("kv_cache"), find("activations"), find("overhead"), find("peak"));
                        view! {
                            <tr class="accuracy-row" data-origin=origin.split(' ').next().unwrap_or_default().to_string() data-model=r.model.clone() data-concurrency=r.concurrency.to_string() data-input=r.input_len.to_string() data-output=r.output_len.to_string()>
                                <td>{r.time.chars().take(10).collect::<String>()}</td>
                                <td>{r.gpu.clone().unwrap_or_else(|| r.device.clone())}</td>
                                <td>{r.engine.clone()}</td>
                                <td>{r.dtype.clone()}</td>
                                <td>{if r.oom { format!("{} × ({}+{}) OOM", r.concurrency, r.input_len, r.output_len) } else { format!("{} × ({}+{})", r.concurrency, r.input_len, r.output_len) }}</td>
                                {err_cell(w.as_ref())}{err_cell(k.as_ref())}{err_cell(a.as_ref())}{err_cell(o.as_ref())}{err_cell(p.as_ref())}
                                <td class="prov">{format!("{} · {origin}", r.provenance)}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <Show when=move || rows().is_empty()>
                <p id="no-measurements" class="hint">"No measurement of this model loaded yet. Drop a measurement JSON (kv-runner measure --out FILE) on the page, or point the results service setting at a kv-hub."</p>
            </Show>
            <h3>"All loaded measurements"</h3>
            <table id="accuracy-summary">
                <thead><tr><th>"model"</th><th>"points"</th><th>"mean |peak error|"</th></tr></thead>
                <tbody>
                    {move || summary().into_iter().map(|(id, n, errs)| {
                        let mean = if errs.is_empty() { "n/a".to_string() } else { format!("{} %", fixed(errs.iter().map(|e| e.abs()).sum::<f64>() / errs.len() as f64, 1)) };
                        view! { <tr><th scope="row">{id}</th><td class="num">{n}</td><td class="num">{mean}</td></tr> }
                    }).collect_view()}
                </tbody>
            </table>
            <div class="field">
                <label for="service-url">"Results service URL (empty = this page's origin)"</label>
                <div class="row">
                    <input id="service-url" type="url" placeholder="https://results.example.org" prop:value=move || st.service.get()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            io::store("kv.service", Some(&v).filter(|v| !v.trim().is_empty()).map(|v| v.as_str()));
                            st.service.set(v);
                            st.load_service_measurements(st.scenario.with_untracked(|s| s.model.clone()));
                        } />
                    <button id="service-reload" on:click=move |_| st.load_service_measurements(st.scenario.with_untracked(|s| s.model.clone()))>"Reload"</button>
                </div>
            </div>
            <ul id="measurement-notes" class="notes">{move || st.measurement_notes.get().into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul>
        </section>
    }
}
