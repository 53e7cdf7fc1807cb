//! The page's state and data loading: the scenario (always the estimator's `Scenario`, mirrored
//! in the URL), the model config (bundled, from the Hub, or pasted), measurements (bundled, from a
//! results service, or dropped), and the estimate memo every view reads. No formula lives here.

use crate::io::{self, Fetched};
use kv_estimator::measurement::Measurement;
use kv_estimator::validation::match_model;
use kv_estimator::{parse_config, Estimate, ModelShape, Scenario};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::sync::Arc;

/// The model shown when a link names none.
pub const DEFAULT_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// Where Hugging Face configs come from unless the user sets a mirror.
pub const DEFAULT_HUB: &str = "https://huggingface.co";

/// One bundled config (from `model-configs/index.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub id: String,
    pub family: String,
    pub params: u64,
    pub supported: bool,
}

/// Where the current config came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Bundled,
    Hub(String),
    Pasted(String),
}

/// The model config state.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    None,
    Loading(String),
    Loaded { id: String, origin: Origin, shape: Arc<ModelShape> },
    /// `bundled`: a bundled config offered instead.
    Failed { id: String, message: String, bundled: Option<String> },
}

impl Source {
    pub fn id(&self) -> Option<&str> {
        match self {
            Source::None => None,
            Source::Loading(id) | Source::Loaded { id, .. } | Source::Failed { id, .. } => Some(id),
        }
    }
}

/// A measurement document with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub origin: String,
    pub doc: Arc<Measurement>,
}

/// Every signal of the page (all `Copy` handles).
#[derive(Clone, Copy)]
pub struct St {
    pub scenario: RwSignal<Scenario>,
    /// Permalink parameters that could not be applied.
    pub notices: RwSignal<Vec<String>>,
    /// Input errors per query key.
    pub field_errors: RwSignal<Vec<(String, String)>>,
    pub source: RwSignal<Source>,
    pub index: RwSignal<Vec<IndexEntry>>,
    pub hub_endpoint: RwSignal<String>,
    pub hub_token: RwSignal<String>,
    pub remember_token: RwSignal<bool>,
    /// Results-service base URL ("" = the page's own origin).
    pub service: RwSignal<String>,
    pub measurements: RwSignal<Vec<Measured>>,
    /// Messages about measurement loading (service absent, invalid file, ...).
    pub measurement_notes: RwSignal<Vec<String>>,
    /// `metadata.total_size` of the checkpoint on the Hub, for the model it was fetched for.
    pub safetensors: RwSignal<Option<(String, Result<u64, String>)>>,
    /// Models compared side by side on the same scenario.
    pub compare: RwSignal<Vec<(String, Result<Arc<ModelShape>, String>)>>,
    pub estimate: Memo<Option<Result<Estimate, String>>>,
    /// Whether the reverse-solve panel is open (its solvers run only then).
    pub solve_open: RwSignal<bool>,
}

impl St {
    /// Builds the state from the URL (lenient: bad parameters become notices and fall back).
    pub fn new() -> St {
        let q = io::query();
        let (mut s, errs) = if q.trim().is_empty() {
            let mut s = Scenario { model: DEFAULT_MODEL.into(), ..Scenario::default() };
            s.input_len = 4096;
            s.output_len = 1024;
            s.concurrency = 32;
            (s, vec![])
        } else {
            Scenario::from_query_lenient(&q)
        };
        let mut notices: Vec<String> = errs.iter().map(|e| format!("{e}; that field keeps its default")).collect();
        if s.model.trim().is_empty() {
            s.model = DEFAULT_MODEL.into();
            notices.push(format!("the link names no model (`m`); showing {DEFAULT_MODEL}"));
        }
        let scenario = RwSignal::new(s);
        let source = RwSignal::new(Source::None);
        let remember = io::stored("kv.hf_token").is_some();
        let estimate = Memo::new(move |_| {
            let s = scenario.get();
            source.with(|src| match src {
                Source::Loaded { shape, .. } => Some(kv_estimator::estimate(shape, &s).map_err(|e| e.to_string())),
                _ => None,
            })
        });
        St {
            scenario,
            notices: RwSignal::new(notices),
            field_errors: RwSignal::new(vec![]),
            source,
            index: RwSignal::new(vec![]),
            hub_endpoint: RwSignal::new(io::stored("kv.hub_endpoint").unwrap_or_else(|| DEFAULT_HUB.into())),
            hub_token: RwSignal::new(io::stored("kv.hf_token").unwrap_or_default()),
            remember_token: RwSignal::new(remember),
            service: RwSignal::new(io::stored("kv.service").unwrap_or_default()),
            measurements: RwSignal::new(vec![]),
            measurement_notes: RwSignal::new(vec![]),
            safetensors: RwSignal::new(None),
            compare: RwSignal::new(vec![]),
            estimate,
            solve_open: RwSignal::new(false),
        }
    }

    /// Applies one input through `Scenario::set` (the permalink's own parser), keeping the old
    /// value and showing the reason when it is invalid. An empty optional field is unset.
    pub fn change(&self, key: &str, value: &str) {
        let t0 = io::now_ms();
        let mut next = self.scenario.get_untracked();
        let applied = if value.trim().is_empty() { next.unset(key) } else { next.set(key, value.trim()) };
        let problem = match applied {
            Err(e) => Some(e.to_string()),
            Ok(()) => next.validate().err().and_then(|errs| {
                let names: Vec<&str> = match key {
                    "mem" => vec!["mem", "gpu_memory_gib"],
                    "in" | "out" => vec!["in", "out"],
                    k => vec![k],
                };
                errs.iter().find(|e| matches!(e, kv_estimator::Error::Scenario { param, .. } if names.contains(&param.as_str()))).map(|e| e.to_string())
            }),
        };
        self.field_errors.update(|f| f.retain(|(k, _)| k != key));
        match problem {
            Some(p) => self.field_errors.update(|f| f.push((key.to_string(), p))),
            None => {
                self.scenario.set(next);
                io::after_render(move || io::mark("recompute_ms", io::now_ms() - t0, true));
            }
        }
    }

    /// The error shown under the field of `key`, if any.
    pub fn field_error(&self, key: &str) -> Option<String> {
        self.field_errors.with(|f| f.iter().find(|(k, _)| k == key).map(|(_, e)| e.clone()))
    }

    fn hub_url(&self, id: &str, file: &str) -> String {
        let ep = self.hub_endpoint.get_untracked();
        let ep = if ep.trim().is_empty() { DEFAULT_HUB.to_string() } else { ep.trim().trim_end_matches('/').to_string() };
        format!("{ep}/{id}/resolve/main/{file}")
    }

    fn bundled_ids(&self) -> Vec<String> {
        self.index.with_untracked(|i| i.iter().filter(|e| e.supported).map(|e| e.id.clone()).collect())
    }

    /// Loads a model: the bundled copy when there is one (unless `hub`), else the Hub.
    pub fn load_model(&self, id: String, hub: bool) {
        let st = *self;
        let id = id.trim().to_string();
        if id.is_empty() {
            return;
        }
        if id.starts_with("pasted:") {
            if st.source.with_untracked(|s| s.id() != Some(id.as_str())) {
                st.source.set(Source::Failed { id: id.clone(), message: "this link refers to a config that was pasted into the page; a link cannot carry it. Paste or drop it again, or pick a model.".into(), bundled: None });
            }
            return;
        }
        st.source.set(Source::Loading(id.clone()));
        spawn_local(async move {
            let bundled = st.bundled_ids();
            let is_bundled = bundled.iter().any(|b| b == &id);
            let result = if is_bundled && !hub {
                match io::get(&format!("model-configs/{id}/config.json"), None).await {
                    Fetched::Ok(200, text) => parse(&id, &text, Origin::Bundled),
                    Fetched::Ok(s, _) => Source::Failed { id: id.clone(), message: format!("the bundled config of {id} could not be read (HTTP {s})"), bundled: None },
                    Fetched::Network(e) => Source::Failed { id: id.clone(), message: format!("the bundled config of {id} could not be read: {e}"), bundled: None },
                }
            } else {
                st.fetch_hub(&id, &bundled).await
            };
            // a newer choice wins over a late answer
            if st.scenario.with_untracked(|s| s.model == id) {
                st.source.set(result);
            }
        });
    }

    async fn fetch_hub(&self, id: &str, bundled: &[String]) -> Source {
        let url = self.hub_url(id, "config.json");
        let token = self.hub_token.get_untracked();
        let alt = match_model(id, bundled).map(|m| m.config_id);
        let offer = |alt: &Option<String>| alt.as_ref().map(|a| format!(" A bundled copy of {a} is available.")).unwrap_or_else(|| " Pick a bundled model or paste its config.json.".into());
        match io::get(&url, Some(&token)).await {
            Fetched::Ok(200, text) => {
                let src = parse(id, &text, Origin::Hub(url.clone()));
                if matches!(src, Source::Loaded { .. }) {
                    self.fetch_safetensors(id.to_string());
                }
                src
            }
            Fetched::Ok(s @ (401 | 403), _) => Source::Failed {
                id: id.into(),
                message: format!("{id} is gated or private (HTTP {s}): accept its licence on the Hub and enter an access token under \u{201c}Hub settings\u{201d}.{}", offer(&alt)),
                bundled: alt,
            },
            Fetched::Ok(404, _) => Source::Failed { id: id.into(), message: format!("{id} has no config.json on the Hub (HTTP 404): check the id (organisation/name).{}", offer(&alt)), bundled: alt },
            Fetched::Ok(s, _) => Source::Failed { id: id.into(), message: format!("the Hub answered HTTP {s} for {url}.{}", offer(&alt)), bundled: alt },
            Fetched::Network(e) => Source::Failed {
                id: id.into(),
                message: format!("the Hugging Face Hub could not be reached ({}): {e}. Check the connection or the Hub endpoint under \u{201c}Hub settings\u{201d}.{}", self.hub_endpoint.get_untracked(), offer(&alt)),
                bundled: alt,
            },
        }
    }

    /// The checkpoint's exact size from `model.safetensors.index.json` (`metadata.total_size`).
    fn fetch_safetensors(&self, id: String) {
        let st = *self;
        let url = st.hub_url(&id, "model.safetensors.index.json");
        let token = st.hub_token.get_untracked();
        spawn_local(async move {
            let r = match io::get(&url, Some(&token)).await {
                Fetched::Ok(200, text) => serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.pointer("/metadata/total_size").and_then(serde_json::Value::as_u64))
                    .ok_or_else(|| "the index has no metadata.total_size".to_string()),
                Fetched::Ok(404, _) => Err("a single-file checkpoint (no model.safetensors.index.json)".into()),
                Fetched::Ok(s, _) => Err(format!("HTTP {s}")),
                Fetched::Network(e) => Err(e),
            };
            st.safetensors.set(Some((id, r)));
        });
    }

    /// Uses a pasted or dropped config.json.
    pub fn use_config_text(&self, name: &str, text: &str) {
        let id = format!("pasted:{}", name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).take(60).collect::<String>());
        let src = parse(&id, text, Origin::Pasted(name.to_string()));
        self.source.set(src);
        self.scenario.update(|s| s.model = id);
    }

    /// Reads `model-configs/index.json`, then loads the scenario's model.
    pub fn start(&self) {
        let st = *self;
        spawn_local(async move {
            match io::get("model-configs/index.json", None).await {
                Fetched::Ok(200, text) => st.index.set(parse_index(&text)),
                _ => st.measurement_notes.update(|n| n.push("the bundled model list (model-configs/index.json) could not be read".into())),
            }
            let id = st.scenario.with_untracked(|s| s.model.clone());
            st.load_model(id, false);
        });
        self.load_bundled_measurements();
    }

    fn add_measurement(&self, origin: String, text: &str) -> Result<(), String> {
        let m = Measurement::from_json(text).map_err(|e| e.to_string())?;
        let doc = Arc::new(m);
        self.measurements.update(|v| {
            if !v.iter().any(|x| x.doc == doc) {
                v.push(Measured { origin, doc });
            }
        });
        Ok(())
    }

    fn load_bundled_measurements(&self) {
        let st = *self;
        spawn_local(async move {
            let files: Vec<String> = match io::get("measurements/index.json", None).await {
                Fetched::Ok(200, text) => serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("files").and_then(|f| f.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()))
                    .unwrap_or_default(),
                _ => vec![],
            };
            for f in files {
                if let Fetched::Ok(200, text) = io::get(&format!("measurements/{f}"), None).await {
                    if let Err(e) = st.add_measurement(format!("bundled {f}"), &text) {
                        st.measurement_notes.update(|n| n.push(format!("measurements/{f}: {e}")));
                    }
                }
            }
        });
    }

    /// Asks the results service for the measurements of `model`.
    pub fn load_service_measurements(&self, model: String) {
        let st = *self;
        let base = st.service.get_untracked();
        let base = base.trim().trim_end_matches('/').to_string();
        let url = format!("{}api/v1/measurements?model={}&limit=500", if base.is_empty() { String::new() } else { format!("{base}/") }, kv_estimator::scenario::encode(&model));
        spawn_local(async move {
            match io::get(&url, None).await {
                Fetched::Ok(200, text) => {
                    let items = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("items").and_then(|i| i.as_array()).cloned());
                    match items {
                        Some(items) => {
                            for it in items {
                                let id = it.get("id").and_then(|i| i.as_u64()).unwrap_or(0);
                                if let Some(m) = it.get("measurement") {
                                    if let Err(e) = st.add_measurement(format!("service #{id}"), &m.to_string()) {
                                        st.measurement_notes.update(|n| n.push(format!("results service item {id}: {e}")));
                                    }
                                }
                            }
                        }
                        None => st.note_service(format!("{url} did not answer with a measurement list (is a results service running there?)")),
                    }
                }
                Fetched::Ok(s, _) => st.note_service(format!("no results service at {} (HTTP {s}); bundled and dropped measurements still show", if base.is_empty() { "this page's origin" } else { &base })),
                Fetched::Network(e) => st.note_service(format!("the results service at {} could not be reached: {e}", if base.is_empty() { "this page's origin" } else { &base })),
            }
        });
    }

    fn note_service(&self, n: String) {
        self.measurement_notes.update(|v| {
            v.retain(|x| !x.contains("results service"));
            v.push(n);
        });
    }

    /// A dropped or chosen file: a measurement document or a config.json.
    pub fn use_file(&self, name: String, text: String) {
        let looks_like_measurement = serde_json::from_str::<serde_json::Value>(&text).ok().is_some_and(|v| v.get("schema_version").is_some() || v.get("points").is_some());
        if looks_like_measurement {
            match self.add_measurement(format!("dropped {name}"), &text) {
                Ok(()) => self.measurement_notes.update(|n| n.retain(|x| !x.starts_with(&format!("{name}:")))),
                Err(e) => self.measurement_notes.update(|n| n.push(format!("{name}: {e}"))),
            }
        } else {
            self.use_config_text(&name, &text);
        }
    }

    /// Adds a bundled model to the comparison.
    pub fn add_compare(&self, id: String) {
        let st = *self;
        if id.trim().is_empty() || st.compare.with_untracked(|c| c.iter().any(|(i, _)| *i == id) || c.len() >= 6) {
            return;
        }
        spawn_local(async move {
            let r = match io::get(&format!("model-configs/{id}/config.json"), None).await {
                Fetched::Ok(200, text) => parse_config(&text).map(Arc::new).map_err(|e| e.to_string()),
                Fetched::Ok(s, _) => Err(format!("not a bundled model (HTTP {s})")),
                Fetched::Network(e) => Err(e),
            };
            st.compare.update(|c| {
                if !c.iter().any(|(i, _)| *i == id) {
                    c.push((id, r));
                }
            });
        });
    }
}

fn parse(id: &str, text: &str, origin: Origin) -> Source {
    match parse_config(text) {
        Ok(shape) => Source::Loaded { id: id.to_string(), origin, shape: Arc::new(shape) },
        Err(e) => Source::Failed { id: id.to_string(), message: format!("config.json of {id}: {e}"), bundled: None },
    }
}

/// Reads `model-configs/index.json`.
pub fn parse_index(text: &str) -> Vec<IndexEntry> {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    v.get("models")
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some(IndexEntry {
                        id: m.get("id")?.as_str()?.to_string(),
                        family: m.get("family").and_then(|f| f.as_str()).unwrap_or("").to_string(),
                        params: m.get("params_total").and_then(|p| p.as_u64()).unwrap_or(0),
                        supported: m.get("supported").and_then(|s| s.as_bool()).unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
