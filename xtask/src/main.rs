//! `cargo xtask`: the project's automation in Rust (alias in `.cargo/config.toml`).
//!
//! - `cargo xtask serve [kv-hub args]`: installs what is missing (wasm target, trunk,
//!   wasm-bindgen-cli, wasm-opt), builds the page in release mode and starts `kv-hub` on
//!   127.0.0.1:8080 with the embedded database `data/kv-hub.db` (bundled measurements imported on
//!   first start).
//! - `cargo xtask test`: installs what the tests need (the tools above, Chromium and its
//!   WebDriver), runs the tidy checks, builds the page, runs every test of the workspace (browser
//!   tests included), checks that the estimator builds for `wasm32-unknown-unknown`, and that the
//!   accuracy report is current.
//! - `cargo xtask bench-web [RUNS]`: the page's speed budget: gzipped wasm + JS, and the timings the
//!   browser test records over RUNS runs (default 10): first estimate after navigation, recompute
//!   after an input change.
//! - `cargo xtask prerender`: writes the page's first frame for its default link into the built
//!   `index.html` (trunk's post-build hook runs it on the staging directory; else `dist/`).
//! - `cargo xtask index`: regenerates `model-configs/index.json` and `measurements/index.json`.
//! - `cargo xtask accuracy`: regenerates `docs/accuracy/engine-logs.md` and
//!   `docs/accuracy/engine-logs-extra.md` (`kv-runner validate` on the two case sets), and the
//!   engines' track records over both sets, `crates/estimator/src/track-record.json`, which the page
//!   and `kv-runner estimate` show beside each engine's figures.
//! - `cargo xtask import-configs DIR`: lays out `shared/model-configs` copies as `<org>/<name>/config.json`.

mod tools;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// This package's directory: cargo's run-time `CARGO_MANIFEST_DIR` (set by `cargo run`, `cargo
/// test`), else the one it was compiled in. With a target directory shared between clones, a binary
/// cargo did not rebuild would otherwise point at the clone it was first built in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn root() -> PathBuf {
    manifest_dir().parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("serve") => serve(&args[1..]),
        Some("build-web") => tools::build_web(),
        Some("prerender") => prerender(),
        Some("bench-web") => bench_web(&args[1..]),
        Some("index") => {
            let text = index_json()?;
            std::fs::write(root().join("model-configs/index.json"), text)?;
            std::fs::write(root().join(MEASUREMENT_INDEX), measurement_index()?)?;
            println!("wrote model-configs/index.json and {MEASUREMENT_INDEX}");
            Ok(())
        }
        Some("accuracy") => {
            for (cases, report) in REPORTS {
                std::fs::write(root().join(report), accuracy_report(cases)?)?;
                println!("wrote {report}");
            }
            std::fs::write(root().join(TRACK_RECORD), track_record()?)?;
            println!("wrote {TRACK_RECORD}");
            Ok(())
        }
        Some("import-configs") => import(args.get(1).map(PathBuf::from).unwrap_or_else(|| root().join("../shared/model-configs"))),
        _ => {
            eprintln!("usage: cargo xtask <serve [kv-hub args]|test|build-web|prerender|bench-web [RUNS]|index|accuracy|import-configs [DIR]>");
            std::process::exit(2)
        }
    }
}

/// The placeholder in `index.html` the page mounts in.
const APP_SLOT: &str = r#"<div id="app"></div>"#;

/// Writes the first frame of the page's default link (`kv_markup::first_frame` of
/// `kv_markup::default_estimate`, the estimate the wasm computes for a link without parameters)
/// into the built `index.html`: a visitor sees the default estimate in the first paint, and the
/// page replaces it with its own rendering of the same figures when the wasm has started.
fn prerender() -> Result<()> {
    let dir = std::env::var_os("TRUNK_STAGING_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("dist"));
    let path = dir.join("index.html");
    let html = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if !html.contains(APP_SLOT) {
        bail!("{} has no empty `{APP_SLOT}` to prerender into (already prerendered, or index.html changed)", path.display());
    }
    let e = kv_markup::default_estimate().map_err(|e| anyhow::anyhow!("estimating the page's default scenario: {e}"))?;
    let frame = kv_markup::first_frame(&e);
    // the bundled models whose config the page fetches (the default one is compiled in): a link
    // to one preloads it while the wasm loads (index.html's inline script)
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("model-configs/index.json"))?)?;
    let bundled: Vec<&str> = index["models"]
        .as_array()
        .map(|a| a.iter().filter(|m| m["supported"].as_bool() == Some(true)).filter_map(|m| m["id"].as_str()).filter(|id| *id != kv_markup::DEFAULT_MODEL && !id.contains(' ')).collect())
        .unwrap_or_default();
    let app = format!(r#"<div id="app" data-bundled="{}">{frame}</div>"#, kv_markup::escape(&bundled.join(" ")));
    std::fs::write(&path, html.replacen(APP_SLOT, &app, 1))?;
    eprintln!("prerendered the default estimate into {} ({} B)", path.display(), frame.len());
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let st = cmd.current_dir(root()).status().with_context(|| format!("starting {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test() -> Result<()> {
    tidy()?;
    tools::ensure_browser()?;
    tools::build_web()?;
    run(cargo().args(["test", "--workspace", "--all-targets"]).env("INSTA_UPDATE", "no").env("CI", "true"))?;
    run(cargo().args(["build", "-p", "kv-estimator", "--target", "wasm32-unknown-unknown", "--release"]))?;
    eprintln!("kv-estimator builds for wasm32-unknown-unknown");
    accuracy_report_is_current()?;
    Ok(())
}

/// Builds the page and runs `kv-hub` in the foreground (Ctrl-C stops it).
fn serve(extra: &[String]) -> Result<()> {
    tools::build_web()?;
    run(cargo().args(["build", "--release", "-p", "kv-hub"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let hub = target.join("release/kv-hub");
    let mut cmd = Command::new(hub);
    let has = |flag: &str| extra.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if !has("--addr") {
        cmd.args(["--addr", "127.0.0.1:8080"]);
    }
    if !has("--db") {
        cmd.args(["--db", "data/kv-hub.db"]);
    }
    if !has("--dist") {
        cmd.args(["--dist", "dist"]);
    }
    // local uploads work out of the box: a random token in data/upload-token (mode 0600), which
    // `kv-runner upload` / `measure --upload` read for a hub on 127.0.0.1
    if !has("--tokens-file") && std::env::var_os("KV_HUB_TOKENS").is_none() {
        let file = root().join("data/upload-token");
        if !file.is_file() {
            let mut bytes = [0u8; 16];
            std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).context("reading /dev/urandom for an upload token")?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::create_dir_all(root().join("data"))?;
            std::fs::write(&file, format!("{token}\n"))?;
            #[cfg(unix)]
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        }
        eprintln!("uploads: token in data/upload-token (kv-runner upload / measure --upload to 127.0.0.1 use it)");
        cmd.arg("--tokens-file").arg(&file);
    }
    cmd.args(extra);
    run(&mut cmd)
}

/// Builds the page, measures what a browser downloads (gzip -9) and runs the browser timing test.
fn bench_web(args: &[String]) -> Result<()> {
    tools::build_web()?;
    tools::ensure_browser()?;
    let mut wasm_js = 0u64;
    let mut rows = vec![];
    for e in std::fs::read_dir(root().join("dist"))? {
        let p = e?.path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if matches!(ext, "wasm" | "js" | "css" | "html") {
            let raw = std::fs::metadata(&p)?.len();
            let gz = Command::new("sh").arg("-c").arg(format!("gzip -9 -c '{}' | wc -c", p.display())).output()?;
            let gz: u64 = String::from_utf8_lossy(&gz.stdout).trim().parse().unwrap_or(0);
            if matches!(ext, "wasm" | "js") {
                wasm_js += gz;
            }
            rows.push(format!("| {} | {} B | {} B |", p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(), raw, gz));
        }
    }
    rows.sort();
    println!("| file | bytes | gzip -9 |\n|---|---|---|\n{}\n", rows.join("\n"));
    println!("wasm + JS gzipped: {wasm_js} B (budget 400 KB)");
    // the timings vary by tens of per cent between runs on a shared VM: one run says little
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10).max(1);
    let mut all: Vec<serde_json::Value> = vec![];
    for i in 1..=runs {
        run(cargo().args(["test", "-q", "-p", "kv-e2e", "--test", "browser", "speed_budget_is_recorded"]))?;
        let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("target/e2e/web-timings.json"))?)?;
        let num = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "run {i}/{runs}: first estimate {:.0} ms (fresh browser {:.0}, another link {:.0}, second navigation {:.0}); recompute median {:.1} ms, max {:.1} ms",
            num("first_estimate_ms"),
            num("first_estimate_fresh_browser_ms"),
            num("first_estimate_other_link_ms"),
            num("first_estimate_warm_ms"),
            num("recompute_median_ms"),
            num("recompute_max_ms")
        );
        all.push(t);
    }
    std::fs::write(root().join("target/e2e/web-timings-runs.json"), serde_json::to_string_pretty(&all)?)?;
    let stat = |k: &str, budget: f64| -> String {
        let mut v: Vec<f64> = all.iter().filter_map(|t| t[k].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return "no data".into();
        }
        let under = v.iter().filter(|x| **x < budget).count();
        format!("median {:.1} ms, range {:.1}-{:.1} ms, under {budget} ms in {under} of {} runs", v[v.len() / 2], v[0], v[v.len() - 1], v.len())
    };
    println!("first estimate on screen after navigation, first visit in a running browser (the default link, prerendered: its first contentful paint): {}", stat("first_estimate_ms", 300.0));
    println!("  the same as the first page of a freshly started Chromium: {}", stat("first_estimate_fresh_browser_ms", 300.0));
    println!("  a first visit to a link of another scenario (the page's own estimate: Element Timing of its verdict): {}", stat("first_estimate_other_link_ms", 300.0));
    println!("  a second navigation (files cached): {}", stat("first_estimate_warm_ms", 300.0));
    println!("recompute after an input change (10 changes per run, until the last DOM mutation, charts included):");
    println!("  median per run: {}", stat("recompute_median_ms", 16.0));
    println!("  worst of the 10 per run: {}", stat("recompute_max_ms", 16.0));
    Ok(())
}

const MEASUREMENT_INDEX: &str = "measurements/index.json";

/// `measurements/index.json`: the bundled measurement files the page loads.
fn measurement_index() -> Result<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("measurements"))
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.ends_with(".json") && n != "index.json").collect())
        .unwrap_or_default();
    files.sort();
    Ok(serde_json::to_string_pretty(&serde_json::json!({ "generated_by": "cargo xtask index", "files": files }))? + "\n")
}

/// The engine-log case sets and their committed reports: the development set from
/// `shared/validation`, and the extra set this project collected from other public logs.
const REPORTS: [(&str, &str); 2] = [
    ("crates/estimator/tests/data/engine-logs-dev.jsonl", "docs/accuracy/engine-logs.md"),
    ("crates/estimator/tests/data/engine-logs-extra.jsonl", "docs/accuracy/engine-logs-extra.md"),
];

/// The engines' track records over both case sets, which the estimator embeds.
const TRACK_RECORD: &str = "crates/estimator/src/track-record.json";

fn accuracy_report(cases: &str) -> Result<String> {
    validate(&["--markdown", "--cases", cases])
}

fn track_record() -> Result<String> {
    let mut args = vec!["--track-record"];
    for (cases, _) in REPORTS {
        args.extend(["--cases", cases]);
    }
    validate(&args)
}

/// What `kv-runner validate --offline ARGS` prints.
fn validate(args: &[&str]) -> Result<String> {
    let out = cargo()
        .args(["run", "-q", "-p", "kv-runner", "--", "validate", "--offline"])
        .args(args)
        .current_dir(root())
        .output()
        .context("running kv-runner validate")?;
    if !out.status.success() {
        bail!("kv-runner validate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Each `docs/accuracy/engine-logs*.md`, and the track records, are what `kv-runner validate`
/// prints today.
fn accuracy_report_is_current() -> Result<()> {
    for (cases, report) in REPORTS {
        let want = accuracy_report(cases)?;
        let have = std::fs::read_to_string(root().join(report)).unwrap_or_default();
        if want != have {
            bail!("{report} is out of date: run `cargo xtask accuracy`");
        }
        eprintln!("tidy: {report} current");
    }
    let have = std::fs::read_to_string(root().join(TRACK_RECORD)).unwrap_or_default();
    if track_record()? != have {
        bail!("{TRACK_RECORD} is out of date: run `cargo xtask accuracy`");
    }
    eprintln!("tidy: {TRACK_RECORD} current");
    Ok(())
}

/// Tree checks: the generated index is current; every Rust source starts with a `//!` doc.
fn tidy() -> Result<()> {
    let want = index_json()?;
    let have = std::fs::read_to_string(root().join("model-configs/index.json")).unwrap_or_default();
    if want != have {
        bail!("model-configs/index.json is out of date: run `cargo xtask index`");
    }
    if measurement_index()? != std::fs::read_to_string(root().join(MEASUREMENT_INDEX)).unwrap_or_default() {
        bail!("{MEASUREMENT_INDEX} is out of date: run `cargo xtask index`");
    }
    let mut missing = vec![];
    for dir in ["crates/estimator/src", "crates/hub/src", "crates/markup/src", "runner/src", "web/src", "xtask/src", "tests"] {
        visit(&root().join(dir), &mut |p| {
            if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                if !text.starts_with("//!") {
                    missing.push(p.display().to_string());
                }
            }
        });
    }
    if !missing.is_empty() {
        bail!("these files do not open with a //! doc comment: {}", missing.join(", "));
    }
    eprintln!("tidy: index current, every source documented");
    Ok(())
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path)) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                visit(&p, f);
            } else {
                f(&p);
            }
        }
    }
}

/// Every bundled config: id (from the path), family and computed parameter counts.
fn index_json() -> Result<String> {
    let base = root().join("model-configs");
    let mut rows = vec![];
    visit(&base, &mut |p| {
        if p.file_name().is_some_and(|n| n == "config.json") {
            rows.push(p.to_path_buf());
        }
    });
    let mut models = vec![];
    for p in rows {
        let id = p.parent().and_then(|d| d.strip_prefix(&base).ok()).map(|d| d.to_string_lossy().replace('\\', "/")).unwrap_or_default();
        let text = std::fs::read_to_string(&p)?;
        let entry = match kv_estimator::parse_config(&text) {
            Ok(s) => serde_json::json!({"id": id, "family": s.family.as_str(), "model_type": s.model_type, "params_total": s.params_total(), "params_active": s.params_active(), "supported": true}),
            Err(e) => serde_json::json!({"id": id, "family": null, "supported": false, "reason": e.to_string()}),
        };
        models.push(entry);
    }
    let doc = serde_json::json!({"generated_by": "cargo xtask index", "models": models});
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// Copies `org--name.json` files into `model-configs/org/name/config.json`, using the model id
/// column of SOURCES.md where it names one id.
fn import(src: PathBuf) -> Result<()> {
    let sources = std::fs::read_to_string(src.join("SOURCES.md")).context("reading SOURCES.md")?;
    let dest = root().join("model-configs");
    std::fs::copy(src.join("SOURCES.md"), dest.join("SOURCES.md"))?;
    for entry in std::fs::read_dir(&src)? {
        let p = entry?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else { continue };
        if !name.ends_with(".json") {
            continue;
        }
        let from_table = sources.lines().find_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            (cols.len() > 2 && cols[1] == name).then(|| cols[2].to_string())
        });
        let id = match from_table {
            Some(id) if !id.contains(' ') && id.matches('/').count() == 1 => id,
            _ => name.trim_end_matches(".json").replacen("--", "/", 1),
        };
        let dir = dest.join(&id);
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(&p, dir.join("config.json"))?;
        println!("{name} -> {id}");
    }
    Ok(())
}
