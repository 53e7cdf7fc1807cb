//! `kv-runner measure`: builds the model with candle (synthetic or real weights), runs each point of
//! the sweep (prefill of `concurrency x input_len` tokens, then `output_len` decode steps) and
//! records memory, latency and throughput beside the estimator's prediction for the same point,
//! as one measurement document (`kv_estimator::measurement`).
//!
//! Memory on CPU comes from the counting allocator (exact); on CUDA from the driver (used memory
//! and a polled peak). Weights are the bytes of the tensors the weight loader handed out; KV is
//! the tensor storage the point leaves allocated after its last decode step (minus what candle
//! keeps besides K/V, see `Lm::retained_besides_kv`; tensor bookkeeping is not storage, see
//! `alloc::BULK`); the baseline is everything else resident (the process, rotary tables, a CUDA
//! context).

pub mod alloc;
mod device;
mod models;

use crate::cli::MeasureArgs;
use crate::{models as configs, upload};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use device::Probe;
use kv_estimator::gpu::GpuChoice;
use kv_estimator::measurement::{Measurement, Point, Provenance, SCHEMA_VERSION};
use kv_estimator::{Engine, Scenario, WeightDtype};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// candle version the runner is built with (pinned in Cargo.toml).
pub const CANDLE_VERSION: &str = "0.11.1";

static STOP: AtomicBool = AtomicBool::new(false);

/// Synthetic weights: random (N(0, 0.02), so MoE routers spread tokens) or zeros; norms get ones.
/// Counts the bytes it hands out: the weights as candle holds them.
struct Synthetic {
    random: bool,
    tied: bool,
    bytes: Arc<AtomicU64>,
}

impl SimpleBackend for Synthetic {
    fn get(&self, s: candle_core::Shape, _name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.bytes.fetch_add((s.elem_count() * dtype.size_in_bytes()) as u64, Ordering::Relaxed);
        match h {
            Init::Const(v) if v == 0.0 => Tensor::zeros(s, dtype, dev),
            Init::Const(v) => Tensor::ones(s, dtype, dev)?.affine(v, 0.0),
            _ if !self.random => Tensor::zeros(s, dtype, dev),
            _ => match dtype {
                DType::BF16 => Tensor::randn(half::bf16::from_f64(0.0), half::bf16::from_f64(0.02), s, dev),
                DType::F16 => Tensor::randn(half::f16::from_f64(0.0), half::f16::from_f64(0.02), s, dev),
                DType::F32 => Tensor::randn(0f32, 0.02, s, dev),
                other => Tensor::randn(0f32, 0.02, s, dev)?.to_dtype(other),
            },
        }
    }
    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("synthetic weights need a shape for `{name}`")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        // qwen2 decides whether the head is tied by looking for lm_head.weight
        !(self.tied && name == "lm_head.weight")
    }
}

fn dtype_of(s: &str) -> Result<(DType, WeightDtype)> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => (DType::F32, WeightDtype::Fp32),
        "bf16" | "bfloat16" => (DType::BF16, WeightDtype::Bf16),
        "f16" | "fp16" | "float16" => (DType::F16, WeightDtype::Fp16),
        other => bail!("--dtype `{other}`: expected f32, bf16 or f16"),
    })
}

/// One point of the sweep.
#[derive(Debug, Clone, Copy)]
struct Plan {
    concurrency: u64,
    input_len: u64,
    output_len: u64,
    /// `--mixed SHORT,LONG`: half the requests carry SHORT real tokens, padded to LONG.
    mixed_short: Option<u64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn is_oom(e: &candle_core::Error) -> bool {
    let s = e.to_string().to_ascii_lowercase();
    s.contains("out of memory") || s.contains("out_of_memory")
}

/// The estimator's prediction for a point (engine candle, this device's memory).
fn predict(shape: &kv_estimator::ModelShape, model: &str, wdt: WeightDtype, total: u64, cpu: bool, p: &Plan) -> Result<kv_estimator::Estimate> {
    let s = Scenario {
        model: model.to_string(),
        gpu: GpuChoice::custom((total as f64 / (1u64 << 30) as f64).max(0.001)),
        engine: Engine::Candle,
        dtype: wdt,
        concurrency: p.concurrency,
        input_len: p.input_len,
        output_len: p.output_len,
        cpu,
        // the packing slab gemm keeps per thread is this host's L2 cache
        cpu_l2_cache_bytes: cpu.then(|| gemm_common::cache::CACHE_INFO[1].cache_bytes as u64),
        ..Scenario::default()
    };
    Ok(kv_estimator::estimate(shape, &s)?)
}

struct Runner<'a> {
    lm: Box<dyn models::Lm>,
    probe: &'a Probe,
    vocab: u64,
    weights_bytes: u64,
    warmed: bool,
}

/// A measured (or refused) point.
fn skipped(p: &Plan, why: String, predicted: Option<kv_estimator::measurement::Predicted>) -> Point {
    Point {
        concurrency: p.concurrency,
        input_len: p.input_len,
        output_len: p.output_len,
        weights_bytes: 0,
        kv_cache_bytes: 0,
        baseline_bytes: 0,
        peak_bytes: 0,
        ttft_ms: 0.0,
        decode_ms_mean: 0.0,
        decode_ms_p50: 0.0,
        decode_ms_p95: 0.0,
        tokens_per_s_request: 0.0,
        tokens_per_s_total: 0.0,
        oom: false,
        predicted,
        peak_prefill_bytes: None,
        peak_decode_bytes: None,
        skipped: Some(why),
        label: None,
    }
}

enum Outcome {
    Done(Point),
    Oom(Point),
    Interrupted,
}

impl Runner<'_> {
    fn prompt(&self, row: u64, len: u64) -> Vec<u32> {
        let v = self.vocab.clamp(2, 32_000);
        (0..len).map(|j| ((row * 31 + j * 7 + 1) % v) as u32).collect()
    }

    /// One forward over `ids` (batch x tokens); recurrent models get one token per call.
    fn step(&mut self, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        if self.lm.one_token_per_call() && ids.dim(1)? > 1 {
            let mut last = None;
            for t in 0..ids.dim(1)? {
                last = Some(self.lm.forward(&ids.narrow(1, t, 1)?, offset + t)?);
            }
            last.ok_or_else(|| candle_core::Error::Msg("empty prompt".into()))
        } else {
            self.lm.forward(ids, offset)
        }
    }

    fn run(&mut self, p: &Plan, iters: usize) -> Result<Outcome> {
        let b = p.concurrency as usize;
        let (l, out) = (p.input_len.max(1) as usize, p.output_len as usize);
        let device = self.probe.device().clone();
        let mut ttfts = vec![];
        let mut decode = vec![];
        let mut mem: Option<(u64, u64, u64, u64)> = None; // base, kv, peak prefill, peak decode
        for it in 0..iters.max(1) {
            self.lm.reset(b)?;
            self.probe.settle(&device);
            let _ = alloc::take_over_cap();
            let base = self.probe.current();
            let base_storage = self.probe.storage();
            self.probe.reset_peak();
            let mut rows: Vec<u32> = Vec::with_capacity(b * l);
            for r in 0..b as u64 {
                rows.extend(self.prompt(r, l as u64));
            }
            let ids = Tensor::from_vec(rows, (b, l), &device)?;
            let t0 = Instant::now();
            let logits = match self.step(&ids, 0) {
                Ok(x) => x,
                Err(e) if is_oom(&e) => return Ok(Outcome::Oom(self.oom_point(p, base, "prefill", &e.to_string()))),
                Err(e) => return Err(e.into()),
            };
            let mut next = logits.argmax(D::Minus1)?.unsqueeze(1)?;
            self.probe.sync(&device)?;
            ttfts.push(t0.elapsed().as_secs_f64() * 1000.0);
            drop(logits);
            drop(ids);
            if self.probe.over_cap() {
                return Ok(Outcome::Oom(self.oom_point(p, base, "prefill", "the memory cap")));
            }
            let peak_prefill = self.probe.peak();
            self.probe.reset_peak();
            for i in 0..out {
                if STOP.load(Ordering::Relaxed) {
                    return Ok(Outcome::Interrupted);
                }
                let t = Instant::now();
                let logits = match self.step(&next, l + i) {
                    Ok(x) => x,
                    Err(e) if is_oom(&e) => return Ok(Outcome::Oom(self.oom_point(p, base, "decode", &e.to_string()))),
                    Err(e) => return Err(e.into()),
                };
                next = logits.argmax(D::Minus1)?.unsqueeze(1)?;
                self.probe.sync(&device)?;
                decode.push(t.elapsed().as_secs_f64() * 1000.0);
                if self.probe.over_cap() {
                    return Ok(Outcome::Oom(self.oom_point(p, base, "decode", "the memory cap")));
                }
            }
            drop(next);
            self.probe.settle(&device);
            let peak_decode = self.probe.peak();
            let after = self.probe.current();
            let retained = self.lm.retained_besides_kv(l);
            let retained = if self.probe.is_cpu() && retained < alloc::BULK as u64 { 0 } else { retained };
            let kv = self.probe.storage().saturating_sub(base_storage).saturating_sub(retained);
            if it == 0 {
                mem = Some((base, kv, peak_prefill, peak_decode.max(after)));
            }
        }
        let (base, kv, peak_prefill, peak_decode) = mem.unwrap_or_default();
        decode.sort_by(f64::total_cmp);
        ttfts.sort_by(f64::total_cmp);
        let mean = if decode.is_empty() { 0.0 } else { decode.iter().sum::<f64>() / decode.len() as f64 };
        let per_req = if mean > 0.0 { 1000.0 / mean } else { 0.0 };
        Ok(Outcome::Done(Point {
            concurrency: p.concurrency,
            input_len: p.input_len,
            output_len: p.output_len,
            weights_bytes: self.weights_bytes,
            kv_cache_bytes: kv,
            baseline_bytes: base.saturating_sub(self.weights_bytes),
            peak_bytes: peak_prefill.max(peak_decode),
            ttft_ms: percentile(&ttfts, 0.5),
            decode_ms_mean: mean,
            decode_ms_p50: percentile(&decode, 0.5),
            decode_ms_p95: percentile(&decode, 0.95),
            tokens_per_s_request: per_req,
            tokens_per_s_total: per_req * p.concurrency as f64,
            oom: false,
            predicted: None,
            peak_prefill_bytes: Some(peak_prefill),
            peak_decode_bytes: Some(peak_decode),
            skipped: None,
            label: p.mixed_short.map(|s| format!("mixed: {} requests of {s} tokens and {} of {}, padded to {} (static batching)", p.concurrency / 2, p.concurrency - p.concurrency / 2, p.input_len, p.input_len)),
        }))
    }

    fn oom_point(&mut self, p: &Plan, base: u64, phase: &str, why: &str) -> Point {
        let peak = self.probe.peak();
        let _ = self.lm.reset(1);
        let mut pt = skipped(p, format!("out of memory during {phase} ({why})"), None);
        pt.skipped = None;
        pt.oom = true;
        pt.weights_bytes = self.weights_bytes;
        pt.baseline_bytes = base.saturating_sub(self.weights_bytes);
        pt.peak_bytes = peak;
        pt
    }
}

fn provenance(probe: &Probe) -> Provenance {
    let git = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let info = probe.info();
    Provenance {
        tool: "kv-runner".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        commit: git.filter(|g| !g.is_empty()),
        gpu: info.gpu,
        driver: info.driver,
        cuda: info.cuda,
        candle_version: Some(CANDLE_VERSION.into()),
        time: jiff::Timestamp::now().round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default(),
    }
}

fn csv(m: &Measurement) -> String {
    let mut out = String::from("concurrency,input_len,output_len,weights_bytes,kv_cache_bytes,baseline_bytes,peak_bytes,ttft_ms,decode_ms_mean,decode_ms_p50,decode_ms_p95,tokens_per_s_request,tokens_per_s_total,oom,skipped,predicted_total_bytes,predicted_kv_cache_bytes\n");
    for p in &m.points {
        let pr = p.predicted.as_ref();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.2},{:.2},{},{},{},{}\n",
            p.concurrency,
            p.input_len,
            p.output_len,
            p.weights_bytes,
            p.kv_cache_bytes,
            p.baseline_bytes,
            p.peak_bytes,
            p.ttft_ms,
            p.decode_ms_mean,
            p.decode_ms_p50,
            p.decode_ms_p95,
            p.tokens_per_s_request,
            p.tokens_per_s_total,
            p.oom,
            p.skipped.as_deref().unwrap_or("").replace(',', ";"),
            pr.map_or(0, |x| x.total_bytes),
            pr.map_or(0, |x| x.kv_cache_bytes),
        ));
    }
    out
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1u64 << 20) as f64)
}

fn summary(m: &Measurement) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(["n", "in", "out", "weights MiB", "KV MiB (est.)", "peak MiB (est.)", "TTFT ms", "decode ms p50/p95", "tok/s per req", "tok/s total", "note"]);
    for p in &m.points {
        let pr = p.predicted.as_ref();
        let est = |x: Option<u64>| x.map(|v| format!(" ({})", mib(v))).unwrap_or_default();
        t.add_row([
            p.concurrency.to_string(),
            p.input_len.to_string(),
            p.output_len.to_string(),
            mib(p.weights_bytes),
            format!("{}{}", mib(p.kv_cache_bytes), est(pr.map(|x| x.kv_cache_bytes))),
            format!("{}{}", mib(p.peak_bytes), est(pr.map(|x| x.total_bytes))),
            format!("{:.1}", p.ttft_ms),
            format!("{:.2}/{:.2}", p.decode_ms_p50, p.decode_ms_p95),
            format!("{:.1}", p.tokens_per_s_request),
            format!("{:.1}", p.tokens_per_s_total),
            if p.oom { format!("OOM at concurrency {}", p.concurrency) } else { p.skipped.clone().unwrap_or_default() },
        ]);
    }
    t.to_string()
}

pub fn run(args: MeasureArgs) -> Result<()> {
    let (id, text, source) = configs::load(&args.model)?;
    let shape = kv_estimator::parse_config(&text).with_context(|| format!("reading config.json ({source})"))?;
    let (model_type, json) = models::candle_json(&text)?;
    let limits = models::limits(&model_type, &json)?;
    let probe = Probe::new(&args.device, args.memory_cap_gib)?;
    let cpu = probe.is_cpu();
    let default_dtype = if cpu || limits.f32_only { "f32" } else { "bf16" };
    let (dtype, wdt) = dtype_of(args.dtype.as_deref().unwrap_or(default_dtype))?;
    if limits.f32_only && dtype != DType::F32 {
        bail!("`{model_type}` runs only in f32 in candle {CANDLE_VERSION} (bf16/f16 fail inside its layers); use --dtype f32");
    }
    // the sweep
    let mut plans = vec![];
    for &n in &args.concurrency {
        for &i in &args.input_len {
            for &o in &args.output_len {
                plans.push(Plan { concurrency: n, input_len: i, output_len: o, mixed_short: None });
            }
        }
        if let Some([short, long]) = args.mixed.as_deref().and_then(|v| <[u64; 2]>::try_from(v).ok()) {
            for &o in &args.output_len {
                plans.push(Plan { concurrency: n, input_len: long, output_len: o, mixed_short: Some(short) });
            }
        }
    }
    if plans.is_empty() {
        bail!("the sweep is empty: give --concurrency, --input-len and --output-len values");
    }
    for p in &plans {
        if p.concurrency == 0 || p.input_len == 0 {
            bail!("--concurrency and --input-len values must be at least 1");
        }
    }
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed));
    // the model, once per sweep
    let before = probe.current();
    let counted = Arc::new(AtomicU64::new(0));
    let vb: VarBuilder<'static> = match args.weights.as_str() {
        "random" | "zeros" => VarBuilder::from_backend(Box::new(Synthetic { random: args.weights == "random", tied: shape.tied_embeddings, bytes: counted.clone() }), dtype, probe.device().clone()),
        path => device::safetensors(path, dtype, probe.device())?,
    };
    eprintln!("building {id} ({model_type}) with {} weights on {} in {dtype:?}", args.weights, probe.label());
    let lm = models::build(&model_type, json, vb, dtype, probe.device())?;
    probe.settle(probe.device());
    let synthetic = matches!(args.weights.as_str(), "random" | "zeros");
    let weights_bytes = if synthetic { counted.load(Ordering::Relaxed) } else { probe.current().saturating_sub(before) };
    let mut runner = Runner { lm, probe: &probe, vocab: shape.vocab_size, weights_bytes, warmed: false };
    let total = probe.total();
    let mut m = Measurement { schema_version: SCHEMA_VERSION, model: id.clone(), device: probe.label(), dtype: format!("{dtype:?}").to_ascii_lowercase(), engine: Some("candle".into()), provenance: provenance(&probe), points: vec![] };
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) { indicatif::ProgressBar::new(plans.len() as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    let mut stop_after_oom = false;
    for p in &plans {
        bar.set_message(format!("n={} in={} out={}", p.concurrency, p.input_len, p.output_len));
        if STOP.load(Ordering::Relaxed) {
            m.points.push(skipped(p, "interrupted (Ctrl-C) before this point".into(), None));
            continue;
        }
        let est = predict(&shape, &id, wdt, total, cpu, p)?;
        let predicted = Some(est.predicted());
        if let Some(max) = limits.max_batch {
            if p.concurrency > max {
                m.points.push(skipped(p, format!("candle's `{model_type}` runs batches of at most {max}"), predicted));
                bar.inc(1);
                continue;
            }
        }
        let positions = if model_type == "falcon" { 5000 } else { shape.max_position_embeddings.unwrap_or(u64::MAX) };
        if p.input_len + p.output_len > positions {
            m.points.push(skipped(p, format!("{} + {} tokens exceed the model's {positions} positions (candle's rotary tables stop there)", p.input_len, p.output_len), predicted));
            bar.inc(1);
            continue;
        }
        if stop_after_oom {
            m.points.push(skipped(p, "not run: an earlier point ran out of memory (--keep-going to run it)".into(), predicted));
            bar.inc(1);
            continue;
        }
        if !est.fits && !args.force {
            m.points.push(skipped(p, format!("predicted not to fit: {} needed, {} available (--force runs it)", kv_estimator::Bytes(est.total.0), kv_estimator::Bytes(total)), predicted));
            eprintln!("skipping n={} in={} out={}: predicted not to fit ({} > {})", p.concurrency, p.input_len, p.output_len, kv_estimator::Bytes(est.total.0), kv_estimator::Bytes(total));
            bar.inc(1);
            continue;
        }
        if !runner.warmed {
            // warm-up passes first, at the sweep's longest prompt: lazily allocated buffers that
            // stay (gemm's packing buffer in each worker thread once matmuls go parallel, CUDA
            // kernels) must not be counted as a point's cache
            // (and at the shortest: smaller matmuls stay on the calling thread, which has its own)
            let longest = plans.iter().map(|q| q.input_len).max().unwrap_or(p.input_len);
            let shortest = plans.iter().map(|q| q.input_len).min().unwrap_or(p.input_len);
            let positions = if model_type == "falcon" { 5000 } else { shape.max_position_embeddings.unwrap_or(u64::MAX) };
            for _ in 0..args.warmup {
                for len in [shortest, longest] {
                    let warm = Plan { concurrency: 1, input_len: len.min(positions.saturating_sub(2)).max(1), output_len: 2, mixed_short: None };
                    let _ = runner.run(&warm, 1)?;
                }
            }
            runner.warmed = true;
        }
        match runner.run(p, args.iters)? {
            Outcome::Done(mut pt) => {
                pt.predicted = predicted;
                m.points.push(pt);
            }
            Outcome::Oom(mut pt) => {
                eprintln!("OOM at concurrency {} ({} + {} tokens)", p.concurrency, p.input_len, p.output_len);
                pt.predicted = predicted;
                m.points.push(pt);
                stop_after_oom = !args.keep_going;
            }
            Outcome::Interrupted => {
                m.points.push(skipped(p, "interrupted (Ctrl-C) during this point".into(), predicted));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    m.validate().context("the measurement does not follow the schema (a bug)")?;
    let text = serde_json::to_string_pretty(&m)?;
    // the file first, always, then anything else
    let out = match (&args.out, &args.upload) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(_)) => Some(std::path::PathBuf::from(format!("kv-measurement-{}.json", m.provenance.time.replace(':', "")))),
        _ => None,
    };
    if let Some(path) = &out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        println!("{text}");
    } else if args.csv {
        print!("{}", csv(&m));
    } else {
        println!("{}", summary(&m));
    }
    if STOP.load(Ordering::Relaxed) {
        eprintln!("interrupted: the points measured so far are written");
    }
    if let (Some(url), Some(path)) = (&args.upload, &out) {
        let url = if url.is_empty() { std::env::var("KV_HUB_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()) } else { url.clone() };
        let token = upload::resolve_token(&url, args.token.as_deref());
        let up = upload::upload_file(&url, token.as_deref(), path)?;
        eprintln!("uploaded {} -> {} ({})", path.display(), up.location, if up.duplicate { "already stored" } else { "new" });
    }
    Ok(())
}
