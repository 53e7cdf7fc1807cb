//! Everything the page does with the browser: HTTP fetches, the URL query, local storage, the
//! clipboard, dropped files and timing marks. The rest of the crate stays plain Rust.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

fn js_err(v: JsValue) -> String {
    v.as_string().or_else(|| js_sys::JSON::stringify(&v).ok().and_then(|s| s.as_string())).unwrap_or_else(|| "unknown browser error".into())
}

/// The outcome of a GET: status and body, or the network error (unreachable, CORS refused).
pub enum Fetched {
    Ok(u16, String),
    Network(String),
}

/// GET `url`, with a bearer token when given.
pub async fn get(url: &str, bearer: Option<&str>) -> Fetched {
    start_get(url, bearer).await
}

/// Starts a GET at once (the browser sends it before this is awaited, so two requests run side
/// by side) and gives its outcome when awaited.
pub fn start_get(url: &str, bearer: Option<&str>) -> impl std::future::Future<Output = Fetched> {
    let sent = send(url, bearer);
    async move {
        let answer = async {
            let resp: web_sys::Response = JsFuture::from(sent?).await.map_err(js_err)?.dyn_into().map_err(js_err)?;
            let status = resp.status();
            let text = JsFuture::from(resp.text().map_err(js_err)?).await.map_err(js_err)?.as_string().unwrap_or_default();
            Ok::<_, String>((status, text))
        };
        match answer.await {
            Ok((s, t)) => Fetched::Ok(s, t),
            Err(e) => Fetched::Network(e),
        }
    }
}

/// The browser's fetch of `url`, already under way.
fn send(url: &str, bearer: Option<&str>) -> Result<js_sys::Promise, String> {
    let win = window().ok_or("no window")?;
    let opts = web_sys::RequestInit::new();
    opts.set_method("GET");
    opts.set_mode(web_sys::RequestMode::Cors);
    let req = web_sys::Request::new_with_str_and_init(url, &opts).map_err(js_err)?;
    if let Some(t) = bearer.filter(|t| !t.is_empty()) {
        req.headers().set("Authorization", &format!("Bearer {t}")).map_err(js_err)?;
    }
    Ok(win.fetch_with_request(&req))
}

/// The element the page mounts in (`<div id="app">` in index.html).
pub fn app_root() -> Option<web_sys::HtmlElement> {
    window()?.document()?.get_element_by_id("app")?.dyn_into::<web_sys::HtmlElement>().ok()
}

/// The page's query string without `?`.
pub fn query() -> String {
    window().and_then(|w| w.location().search().ok()).unwrap_or_default().trim_start_matches('?').to_string()
}

/// Replaces the URL's query without reloading (the permalink follows every input).
pub fn set_query(q: &str) {
    if let Some(w) = window() {
        let path = w.location().pathname().unwrap_or_default();
        if let Ok(h) = w.history() {
            let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}?{q}")));
        }
    }
}

/// The page's full URL.
pub fn href() -> String {
    window().and_then(|w| w.location().href().ok()).unwrap_or_default()
}

fn storage() -> Option<web_sys::Storage> {
    window()?.local_storage().ok()?
}

pub fn stored(key: &str) -> Option<String> {
    storage()?.get_item(key).ok()?
}

pub fn store(key: &str, value: Option<&str>) {
    if let Some(s) = storage() {
        let _ = match value {
            Some(v) => s.set_item(key, v),
            None => s.remove_item(key),
        };
    }
}

/// Copies text to the clipboard.
pub async fn copy(text: &str) -> Result<(), String> {
    let w = window().ok_or("no window")?;
    JsFuture::from(w.navigator().clipboard().write_text(text)).await.map(|_| ()).map_err(js_err)
}

/// The text of a dropped or chosen file.
pub async fn file_text(file: web_sys::File) -> Result<String, String> {
    let v = JsFuture::from(file.text()).await.map_err(js_err)?;
    v.as_string().ok_or_else(|| "the file is not text".into())
}

/// Milliseconds since navigation started.
pub fn now_ms() -> f64 {
    window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

/// Records a timing under `window.__kv[key]` (numbers) or appends to `window.__kv[key]` (arrays),
/// for the speed-budget script.
pub fn mark(key: &str, value: f64, append: bool) {
    let Some(w) = window() else { return };
    let obj = js_sys::Reflect::get(&w, &"__kv".into()).ok().filter(|o| o.is_object()).unwrap_or_else(|| {
        let o: JsValue = js_sys::Object::new().into();
        let _ = js_sys::Reflect::set(&w, &"__kv".into(), &o);
        o
    });
    if append {
        let arr = js_sys::Reflect::get(&obj, &key.into()).ok().filter(|a| a.is_object()).unwrap_or_else(|| {
            let a: JsValue = js_sys::Array::new().into();
            let _ = js_sys::Reflect::set(&obj, &key.into(), &a);
            a
        });
        if let Ok(a) = arr.dyn_into::<js_sys::Array>() {
            a.push(&value.into());
        }
    } else {
        let _ = js_sys::Reflect::set(&obj, &key.into(), &value.into());
    }
}

/// Runs `f` after the next frame has been painted: a `requestAnimationFrame` callback runs just
/// before the browser paints, and a zero timeout queued from it runs after that paint.
pub fn after_paint(f: impl FnOnce() + 'static) {
    let Some(w) = window() else { return };
    let raf = wasm_bindgen::closure::Closure::once_into_js(move || after_render(f));
    if w.request_animation_frame(raf.unchecked_ref()).is_err() {
        // no frames (a hidden tab): nothing is painted; fall back to after this task
        if let Ok(f) = raf.dyn_into::<js_sys::Function>() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&f, 0);
        }
    }
}

/// Runs `f` with the time the estimate rendered in this task reached the screen: the render time
/// the browser reports (Element Timing) for the verdict's heading (`elementtiming="estimate"`,
/// kv-markup), once its frame has been presented. Where the browser has no Element Timing
/// (Firefox, Safari), `f` runs after the next paint, with the time then; where no entry arrives
/// (a hidden tab), 250 ms after the next paint.
pub fn after_estimate_painted(f: impl FnOnce(f64) + 'static) {
    use std::cell::RefCell;
    use std::rc::Rc;
    type Pending = Rc<RefCell<Option<Box<dyn FnOnce(f64)>>>>;
    let pending: Pending = Rc::new(RefCell::new(Some(Box::new(f))));
    let fire = {
        let pending = pending.clone();
        move |t: f64| {
            let f = pending.borrow_mut().take();
            if let Some(f) = f {
                f(t)
            }
        }
    };
    let supported = js_sys::Reflect::get(&js_sys::global(), &"PerformanceObserver".into())
        .and_then(|po| js_sys::Reflect::get(&po, &"supportedEntryTypes".into()))
        .ok()
        .and_then(|types| types.dyn_into::<js_sys::Array>().ok())
        .is_some_and(|types| types.includes(&"element".into(), 0));
    if !supported {
        return after_paint(move || fire(now_ms()));
    }
    let fallback = fire.clone();
    let cb = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::PerformanceObserverEntryList, web_sys::PerformanceObserver)>::new(
        move |list: web_sys::PerformanceObserverEntryList, obs: web_sys::PerformanceObserver| {
            for e in list.get_entries().iter() {
                let id = js_sys::Reflect::get(&e, &"identifier".into()).ok().and_then(|v| v.as_string());
                if id.as_deref() == Some("estimate") {
                    let t = ["renderTime", "startTime"].iter().filter_map(|k| js_sys::Reflect::get(&e, &(*k).into()).ok().and_then(|v| v.as_f64())).find(|t| *t > 0.0).unwrap_or_else(now_ms);
                    obs.disconnect();
                    fire(t);
                    return;
                }
            }
        },
    );
    let init = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&init, &"type".into(), &"element".into());
    let _ = js_sys::Reflect::set(&init, &"buffered".into(), &true.into());
    if let Ok(obs) = web_sys::PerformanceObserver::new(cb.as_ref().unchecked_ref()) {
        obs.observe(init.unchecked_ref());
        // lives as long as the page (one observer, disconnected after its entry)
        cb.forget();
    }
    after_paint(move || set_timeout(250, move || fallback(now_ms())));
}

/// Runs `f` after `ms` milliseconds.
pub fn set_timeout(ms: i32, f: impl FnOnce() + 'static) {
    let Some(w) = window() else { return };
    let cb = wasm_bindgen::closure::Closure::once_into_js(f);
    let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), ms);
}

/// Runs `f` after the current task and its microtasks (after Leptos has updated the DOM).
pub fn after_render(f: impl FnOnce() + 'static) {
    let Some(w) = window() else { return };
    let cb = wasm_bindgen::closure::Closure::once_into_js(f);
    let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 0);
}
