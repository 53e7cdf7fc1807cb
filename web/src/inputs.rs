//! The input panel. Every control reads its value with `Scenario::get(key)` and writes it with
//! `St::change(key, text)`, i.e. through the permalink's own parser: the page, the URL and the CLI
//! accept exactly the same values, and an invalid value is refused with the estimator's message.

use crate::app::{Origin, Source, St};
use crate::io;
use kv_estimator::gpu::CATALOG;
use kv_estimator::scenario::PRESETS;
use kv_estimator::{Engine, KvDtype, QuantChoice, Scenario, WeightDtype};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// A text field bound to one scenario key.
fn field(st: St, key: &'static str, label: &'static str, hint: &'static str, help: &'static str) -> impl IntoView {
    let id = format!("in-{key}");
    let err_id = format!("err-{key}");
    view! {
        <div class="field">
            <label for=id.clone() title=help>{label}</label>
            <input
                id=id
                type="text"
                inputmode="decimal"
                autocomplete="off"
                placeholder=hint
                aria-describedby=err_id.clone()
                prop:value=move || st.scenario.with(|s| s.get(key).unwrap_or_default())
                on:change=move |ev| st.change(key, &event_target_value(&ev))
            />
            <p class="field-error" id=err_id role="alert">{move || st.field_error(key)}</p>
        </div>
    }
}

/// A select bound to one scenario key.
fn choice(st: St, key: &'static str, label: &'static str, options: Vec<(String, String)>, help: &'static str) -> impl IntoView {
    let id = format!("in-{key}");
    let initial = st.scenario.with_untracked(|s| s.get(key));
    view! {
        <div class="field">
            <label for=id.clone() title=help>{label}</label>
            // one reactive value per select (not one per option); `selected` marks the first value
            // for the moment before the options exist
            <select id=id on:change=move |ev| st.change(key, &event_target_value(&ev))
                prop:value=move || st.scenario.with(|s| s.get(key).unwrap_or_default())>
                {options
                    .into_iter()
                    .map(|(value, text)| {
                        let selected = initial.as_deref() == Some(value.as_str());
                        view! { <option value=value selected=selected>{text}</option> }
                    })
                    .collect_view()}
            </select>
            <p class="field-error" role="alert">{move || st.field_error(key)}</p>
        </div>
    }
}

/// The model chooser: bundled list with a filter, a Hugging Face id, and pasted/dropped configs.
#[component]
pub fn ModelPicker(st: St) -> impl IntoView {
    let filter = RwSignal::new(String::new());
    let hub_id = RwSignal::new(String::new());
    let pasted = RwSignal::new(String::new());
    let matches = move || {
        let f = filter.get().to_ascii_lowercase();
        let words: Vec<String> = f.split_whitespace().map(str::to_string).collect();
        st.index.with(|idx| idx.iter().filter(|e| e.supported && words.iter().all(|w| e.id.to_ascii_lowercase().contains(w.as_str()) || e.family.contains(w.as_str()))).take(10).cloned().collect::<Vec<_>>())
    };
    let pick = move |id: String| {
        st.scenario.update(|s| s.model = id.clone());
        st.load_model(id, false);
    };
    let fetch = move || {
        let id = hub_id.get_untracked().trim().to_string();
        if !id.is_empty() {
            st.scenario.update(|s| s.model = id.clone());
            st.load_model(id, true);
        }
    };
    let on_file = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(file) = input.files().and_then(|f| f.get(0)) {
            let name = file.name();
            spawn_local(async move {
                match io::file_text(file).await {
                    Ok(text) => st.use_file(name, text),
                    Err(e) => st.measurement_notes.update(|n| n.push(format!("{name}: {e}"))),
                }
            });
        }
    };
    view! {
        <section class="panel" aria-labelledby="h-model">
            <h2 id="h-model">"Model"</h2>
            <div class="field">
                <label for="model-filter">"Bundled configs (" {move || st.index.with(|i| i.iter().filter(|e| e.supported).count())} ")"</label>
                <input id="model-filter" type="search" placeholder="filter: llama 70b, qwen3, gemma…" autocomplete="off"
                    prop:value=move || filter.get() on:input=move |ev| filter.set(event_target_value(&ev)) />
                <ul id="bundled-list" class="picklist">
                    <For each=matches key=|e| e.id.clone() let:e>
                        <li>
                            <button class="pick" data-id=e.id.clone() on:click={
                                let id = e.id.clone();
                                move |_| pick(id.clone())
                            }>
                                {e.id.clone()}
                                <small>{format!(" {} · {}", e.family, if e.params >= 1_000_000_000 { format!("{:.1}B", e.params as f64 / 1e9) } else { format!("{:.0}M", e.params as f64 / 1e6) })}</small>
                            </button>
                        </li>
                    </For>
                </ul>
            </div>
            <div class="field">
                <label for="hub-id">"Any Hugging Face model id"</label>
                <div class="row">
                    <input id="hub-id" type="text" placeholder="org/name, e.g. Qwen/Qwen2.5-7B-Instruct" autocomplete="off"
                        prop:value=move || hub_id.get()
                        on:input=move |ev| hub_id.set(event_target_value(&ev))
                        on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { fetch() } />
                    <button id="hub-fetch" on:click=move |_| fetch()>"Fetch from the Hub"</button>
                </div>
            </div>
            <details id="hub-settings">
                <summary>"Hub settings (mirror, access token)"</summary>
                <div class="field">
                    <label for="hub-endpoint">"Hub endpoint"</label>
                    <input id="hub-endpoint" type="url" prop:value=move || st.hub_endpoint.get()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            io::store("kv.hub_endpoint", Some(&v).filter(|v| !v.trim().is_empty()).map(|v| v.as_str()));
                            st.hub_endpoint.set(v);
                        } />
                </div>
                <div class="field">
                    <label for="hub-token">"Access token (gated models; never put in the link)"</label>
                    <input id="hub-token" type="password" autocomplete="off" prop:value=move || st.hub_token.get()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if st.remember_token.get_untracked() {
                                io::store("kv.hf_token", Some(&v).filter(|v| !v.is_empty()).map(|v| v.as_str()));
                            }
                            st.hub_token.set(v);
                        } />
                    <label class="check">
                        <input id="hub-remember" type="checkbox" prop:checked=move || st.remember_token.get()
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                st.remember_token.set(on);
                                let tok = st.hub_token.get_untracked();
                                io::store("kv.hf_token", if on && !tok.is_empty() { Some(tok.as_str()) } else { None });
                            } />
                        " remember on this device (local storage)"
                    </label>
                </div>
            </details>
            <details id="paste">
                <summary>"Paste or drop a config.json (or a measurement file)"</summary>
                <textarea id="config-text" rows="6" placeholder="{ \"model_type\": \"llama\", … }" prop:value=move || pasted.get()
                    on:input=move |ev| pasted.set(event_target_value(&ev))></textarea>
                <div class="row">
                    <button id="use-config" on:click=move |_| st.use_config_text("config.json", &pasted.get_untracked())>"Use this config"</button>
                    <label class="file">"or choose a file " <input id="file-input" type="file" accept=".json,application/json" on:change=on_file /></label>
                </div>
                <p class="hint">"You can also drop a file anywhere on the page."</p>
            </details>
            <ModelStatus st=st />
        </section>
    }
}

/// Which config is in use, or why none is.
#[component]
fn ModelStatus(st: St) -> impl IntoView {
    move || match st.source.get() {
        Source::None => view! { <p id="model-status" class="status">"No model yet."</p> }.into_any(),
        Source::Loading(id) => view! { <p id="model-status" class="status" aria-live="polite">"Loading " {id} "…"</p> }.into_any(),
        Source::Loaded { id, origin, shape } => {
            let from = match origin {
                Origin::Bundled => "bundled copy".to_string(),
                Origin::Hub(url) => format!("live from {url}"),
                Origin::Pasted(name) => format!("pasted {name} (a link cannot carry it)"),
            };
            let generic = shape.generic.then(|| view! { <span class="warn">" · unknown model_type, generic decoder path"</span> });
            view! { <p id="model-status" class="status ok" aria-live="polite"><strong>{id}</strong> " (" {shape.family.as_str()} ", " {from} ")" {generic}</p> }.into_any()
        }
        Source::Failed { id, message, bundled } => {
            let offer = bundled.map(|b| {
                let label = format!("Use the bundled copy of {b}");
                view! {
                    <button id="use-bundled" on:click=move |_| {
                        st.scenario.update(|s| s.model = b.clone());
                        st.load_model(b.clone(), false);
                    }>{label}</button>
                }
            });
            view! {
                <div id="model-error" class="error" role="alert">
                    <p><strong>{id}</strong> ": " {message}</p>
                    {offer}
                </div>
            }
            .into_any()
        }
    }
}

/// Hardware, precision, engine and workload.
#[component]
pub fn ScenarioInputs(st: St) -> impl IntoView {
    let mut gpus: Vec<(String, String)> = CATALOG.iter().map(|g| (g.id.to_string(), format!("{} ({} GiB)", g.name, g.memory_gib))).collect();
    gpus.push(("custom".into(), "Custom size…".into()));
    let custom = move || st.scenario.with(|s| s.get("mem").is_some());
    // the select shows the board (with or without a memory override), or "custom" for a size on
    // no known board
    let gpu_choice = |s: &Scenario| s.get("gpu").unwrap_or_else(|| "custom".to_string());
    let gpu_value = move || st.scenario.with(gpu_choice);
    let initial_gpu = st.scenario.with_untracked(gpu_choice);
    let dtypes: Vec<(String, String)> = WeightDtype::ALL.iter().map(|d| (d.to_string(), if *d == WeightDtype::Auto { "auto (checkpoint)".into() } else { d.to_string() })).collect();
    // `checkpoint` (what the engines' container names such as compressed-tensors mean) last, so a
    // permalink from the command line that carries it shows it
    let quants: Vec<(String, String)> = QuantChoice::ALL
        .iter()
        .chain([QuantChoice::Checkpoint].iter())
        .map(|q| {
            let label = match q {
                QuantChoice::Auto => "auto (config)".into(),
                QuantChoice::Checkpoint => "checkpoint (config's, required)".into(),
                q => q.to_string(),
            };
            (q.to_string(), label)
        })
        .collect();
    let kvs: Vec<(String, String)> = KvDtype::ALL.iter().map(|k| (k.to_string(), if *k == KvDtype::Auto { "auto (as the engine picks)".into() } else { k.to_string() })).collect();
    let engines: Vec<(String, String)> = Engine::ALL.iter().map(|e| (e.to_string(), e.to_string())).collect();
    view! {
        <section class="panel" aria-labelledby="h-hw">
            <h2 id="h-hw">"Hardware"</h2>
            <div class="grid">
                <div class="field">
                    <label for="in-gpu">"GPU"</label>
                    <select id="in-gpu" prop:value=gpu_value on:change=move |ev| {
                        let v = event_target_value(&ev);
                        // "custom" keeps the size and drops the board; a board brings its catalog size
                        st.change("gpu", &v);
                    }>
                        {gpus.into_iter().map(|(v, t)| {
                            let selected = v == initial_gpu;
                            view! { <option value=v selected=selected>{t}</option> }
                        }).collect_view()}
                    </select>
                </div>
                <Show when=custom>{field(st, "mem", "GiB per GPU", "e.g. 79.19", "the memory the driver reports (nvidia-smi total / 1024); for SGLang the free memory at load. With a board selected it overrides the board's size; empty goes back to it")}</Show>
                {field(st, "gpus", "GPUs", "tp x pp x dp", "number of GPUs; default tp x pp x dp")}
                {field(st, "tp", "Tensor parallel", "1", "must divide the attention heads; KV heads replicate when fewer than TP")}
                {field(st, "pp", "Pipeline parallel", "1", "layers split in stages")}
                {field(st, "dp", "Data parallel", "1", "replicas, each with its own KV pool (vLLM --data-parallel-size); vLLM spreads a MoE model's experts over tp x dp GPUs")}
                {choice(st, "ep", "Expert parallel", vec![(String::new(), "off".into()), ("on".into(), "on (whole experts per GPU)".into())], "MoE: whole routed experts per GPU of the expert group (vLLM tp x dp, --enable-expert-parallel; SGLang tp, --ep-size) instead of slices")}
            </div>
        </section>
        <section class="panel" aria-labelledby="h-prec">
            <h2 id="h-prec">"Precision"</h2>
            <div class="grid">
                {choice(st, "dt", "Weights", dtypes, "weight dtype; auto = the checkpoint's")}
                {choice(st, "q", "Quantisation", quants, "auto = the config's quantization_config; q8_0 to q4_0 are llama.cpp GGUF presets (llama-quantize's per-tensor mix), for engine llama.cpp")}
                {choice(st, "kv", "KV cache", kvs, "KV-cache element type")}
            </div>
        </section>
        <section class="panel" aria-labelledby="h-engine">
            <h2 id="h-engine">"Engine"</h2>
            <div class="grid">
                {choice(st, "e", "Engine", engines, "whose allocation behaviour is modelled")}
                {choice(st, "dev", "Device", vec![("gpu".into(), "GPU".into()), ("cpu".into(), "CPU (candle / transformers on the host)".into())], "a CPU run has no CUDA context")}
                {field(st, "ev", "Version", "newest", "e.g. 0.11.0 (vLLM), b5121 (llama.cpp); empty = newest behaviour")}
                {field(st, "util", "Memory fraction", "engine default", "vLLM gpu_memory_utilization, SGLang mem_fraction_static")}
                {field(st, "ctx", "Max model length", "model's", "vLLM max_model_len, SGLang context_len, llama.cpp n_ctx; empty = the engine's default from the config's length keys")}
                {field(st, "bs", "Block size", "16", "KV block size in tokens (vLLM)")}
                {field(st, "mbt", "Max batched tokens", "engine default", "profiling batch / chunked-prefill size / llama.cpp -ub")}
                {choice(st, "fis", "FlashInfer sampler", vec![(String::new(), "version default".into()), ("on".into(), "on (installed / opted in)".into()), ("off".into(), "off (PyTorch / Triton)".into())], "vLLM V1 top-k/top-p sampling with FlashInfer: 0.8 to 0.11 use it whenever FlashInfer is installed (vLLM's images ship it, pip does not), from 0.12 with VLLM_USE_FLASHINFER_SAMPLER=1; it needs 24 B less a logit in the profiling run than the sort. The start-up log says \"Using FlashInfer for top-p & top-k sampling\"")}
                {choice(st, "eager", "CUDA graphs", vec![(String::new(), "captured".into()), ("on".into(), "none (--enforce-eager)".into())], "vLLM --enforce-eager: no CUDA graphs; from vLLM 0.20 their estimate is no longer subtracted before the KV cache")}
                {field(st, "lora", "LoRA rank", "no LoRA", "vLLM --enable-lora --max-lora-rank: adapter slots of this rank on every linear layer, the embedding and the LM head, allocated at load. Empty = no LoRA")}
                {field(st, "loras", "LoRA slots", "1", "vLLM --max-loras: adapters one batch may use, each with its own slots (needs a LoRA rank)")}
                {field(st, "offload", "CPU offload (GiB)", "0", "vLLM/SGLang --cpu-offload-gb: GiB of weights per GPU kept in host memory (the first decoder layers), read over PCIe every step")}
                {choice(st, "fa", "Flash attention", vec![(String::new(), "build default".into()), ("on".into(), "on (-fa on)".into()), ("off".into(), "off (-fa off)".into())], "llama.cpp -fa: without it the compute buffer holds the n_ctx x n_ubatch x heads KQ matrix in f32; on by default from b6300")}
                {field(st, "ngl", "GPU layers (-ngl)", "all", "llama.cpp -ngl: the last N decoder layers on the GPU (above the layer count the output layer too); the rest and their KV in host memory. Empty = all")}
                {choice(st, "nkvo", "KV in host (-nkvo)", vec![(String::new(), "no: KV on the GPU".into()), ("on".into(), "yes (-nkvo)".into())], "llama.cpp -nkvo: the KV cache and the attention over it stay in host memory")}
            </div>
        </section>
        <section class="panel" aria-labelledby="h-work">
            <h2 id="h-work">"Workload"</h2>
            <div class="presets" role="group" aria-label="Workload presets">
                {PRESETS.iter().map(|p| {
                    let id = format!("preset-{}", p.id);
                    let pid = p.id;
                    view! {
                        <button id=id class="preset" title=p.description on:click=move |_| st.scenario.update(|s| { let _ = s.apply_preset(pid); })>{p.label}</button>
                    }
                }).collect_view()}
            </div>
            <div class="grid">
                {field(st, "in", "Input tokens", "per request", "prompt tokens per request")}
                {field(st, "out", "Output tokens", "per request", "generated tokens per request")}
                {field(st, "n", "Concurrent requests", "1", "requests in flight at once")}
            </div>
        </section>
    }
}
