//! `kv-web`: the calculator page. `main` mounts [`App`]; the state and loading live in `app`, the
//! controls in `inputs`, the results in `views`, the SVG chart model in `chart` and the browser
//! calls in `io`. Every figure comes from `kv-estimator`, compiled to wasm with the page.

mod app;
mod chart;
mod inputs;
mod io;
mod views;

use app::St;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The whole page.
#[component]
fn App() -> impl IntoView {
    io::mark("app_start_ms", io::now_ms(), false);
    let st = St::new();
    st.start();
    // the URL always holds the scenario (the permalink)
    Effect::new(move |_| {
        let q = st.scenario.with(|s| s.to_query());
        io::set_query(&q);
    });
    // measurements of the current model from the results service
    let model = Memo::new(move |_| st.scenario.with(|s| s.model.clone()));
    Effect::new(move |_| {
        let m = model.get();
        // after the first estimate is on screen (see St::start)
        if st.full.get() && !m.starts_with("pasted:") {
            st.load_service_measurements(m);
        }
    });
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        let Some(files) = ev.data_transfer().and_then(|dt| dt.files()) else { return };
        for i in 0..files.length() {
            if let Some(file) = files.get(i) {
                let name = file.name();
                spawn_local(async move {
                    match io::file_text(file).await {
                        Ok(text) => st.use_file(name, text),
                        Err(e) => st.measurement_notes.update(|n| n.push(format!("{name}: {e}"))),
                    }
                });
            }
        }
    };
    view! {
        <header class="top">
            <h1>"KV capacity planner"</h1>
            <p>"Will this model fit, how many concurrent requests at what context length, and how sure can you be? Exact where arithmetic can be exact (weights, KV cache), modelled and labelled where it cannot (activations, engine overheads)."</p>
        </header>
        <main class="layout" on:dragover=|ev: web_sys::DragEvent| ev.prevent_default() on:drop=on_drop>
            // the controls render in the frame after the first estimate is on screen (with the
            // rest of the page): the answer comes first, and on a phone the empty column keeps
            // the estimate where it will stay (style.css `.inputs:empty`)
            <div class="inputs">
                <Show when=move || st.full.get()>
                    <inputs::ModelPicker st=st />
                    <inputs::ScenarioInputs st=st />
                </Show>
            </div>
            <div class="results">
                <views::LinkBar st=st />
                <views::Results st=st />
                <Show when=move || st.full.get()>
                    <views::Solve st=st />
                    <views::Compare st=st />
                    <views::Accuracy st=st />
                </Show>
            </div>
        </main>
        <footer class="bottom">
            <p>"Computed in your browser by kv-estimator (the same code as the kv-runner CLI). GiB = 2"<sup>"30"</sup>" bytes. How far the modelled parts have been off: docs/accuracy/engine-logs.md in the repository."</p>
        </footer>
    }
}

fn main() {
    io::mark("wasm_start_ms", io::now_ms(), false);
    console_error_panic_hook::set_once();
    mount_to_body(App);
}
