//! `kv-web`: the calculator page. `main` mounts [`App`] in `#app` (index.html holds the header,
//! the footer and, for the default link, the prerendered first frame); the state and loading
//! live in `app`, the controls in `inputs`, the results in `views` (the first frame's markup in
//! `kv-markup`), the SVG chart model in `chart` and the browser calls in `io`. Every figure comes from `kv-estimator`, compiled to wasm with the page.

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
    }
}

fn main() {
    io::mark("wasm_start_ms", io::now_ms(), false);
    console_error_panic_hook::set_once();
    // the page lives in `#app` (index.html holds the header and footer). The frame prerendered
    // there for the default link (`cargo xtask prerender`) gives way to the live page in this
    // same task, so no frame shows neither.
    match io::app_root() {
        Some(root) => {
            root.set_inner_html("");
            leptos::mount::mount_to(root, App).forget();
        }
        None => mount_to_body(App),
    }
}
