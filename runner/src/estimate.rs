//! `kv-runner estimate`: the estimator's answer as a table (`--explain` for derivations) or JSON.

use crate::cli::EstimateArgs;
use crate::models;
use anyhow::{anyhow, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use kv_estimator::estimate::{solve, Estimate};
use kv_estimator::units::{count, Basis, Bytes, Figure};
use kv_estimator::{parse_config, Scenario};
use serde_json::json;

/// Builds the scenario: permalink first, then each flag through `Scenario::set` (same validation).
pub fn scenario(args: &EstimateArgs) -> Result<Scenario> {
    let mut s = match &args.permalink {
        Some(q) => Scenario::from_query(q).map_err(|errs| anyhow!("{}", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?,
        None => Scenario::default(),
    };
    let mut set = |k: &str, v: Option<String>| -> Result<()> {
        if let Some(v) = v {
            s.set(k, &v)?;
        }
        Ok(())
    };
    set("m", args.model.clone())?;
    // a catalog id, or a GPU's name as nvidia-smi or a log prints it (`NVIDIA A100-SXM4-40GB`)
    let gpu = args.gpu.as_deref().map(|g| match (kv_estimator::gpu::find(g), kv_estimator::gpu::match_name(g)) {
        (Err(_), Some(found)) => found.id.to_string(),
        _ => g.to_string(),
    });
    set("gpu", gpu)?;
    set("mem", args.gpu_memory_gib.map(|f| f.to_string()))?;
    // `--gpu-memory-gib` overrides the board `--gpu` or the permalink names; alone, it is a GPU the
    // catalog does not know (not the default board)
    let board_named = args.gpu.is_some() || args.permalink.as_deref().is_some_and(|q| kv_estimator::scenario::query_pairs(q).any(|(k, _)| k == "gpu"));
    if args.gpu_memory_gib.is_some() && !board_named {
        set("gpu", Some(kv_estimator::gpu::CUSTOM.to_string()))?;
    }
    set("gpus", args.num_gpus.map(|v| v.to_string()))?;
    set("tp", args.tp.map(|v| v.to_string()))?;
    set("pp", args.pp.map(|v| v.to_string()))?;
    set("dp", args.dp.map(|v| v.to_string()))?;
    set("ep", args.enable_expert_parallel.then(|| "on".to_string()))?;
    set("dt", args.dtype.clone())?;
    set("q", args.quantization.clone())?;
    set("kv", args.kv_dtype.clone())?;
    set("e", args.engine.clone())?;
    set("ev", args.engine_version.clone())?;
    set("ctx", args.max_model_len.map(|v| v.to_string()))?;
    set("util", args.gpu_memory_utilization.map(|v| v.to_string()))?;
    set("bs", args.block_size.map(|v| v.to_string()))?;
    set("mbt", args.max_num_batched_tokens.map(|v| v.to_string()))?;
    set("seqs", args.max_num_seqs.map(|v| v.to_string()))?;
    set("offload", args.cpu_offload_gb.map(|v| v.to_string()))?;
    set("eager", args.enforce_eager.then(|| "on".to_string()))?;
    set("fis", args.flashinfer_sampler.clone())?;
    set("lora", args.max_lora_rank.map(|v| v.to_string()))?;
    set("loras", args.max_loras.map(|v| v.to_string()))?;
    set("fa", args.flash_attn.clone())?;
    set("ngl", args.n_gpu_layers.map(|v| v.to_string()))?;
    set("nkvo", args.no_kv_offload.then(|| "on".to_string()))?;
    set("n", args.concurrency.map(|v| v.to_string()))?;
    set("in", args.input_len.map(|v| v.to_string()))?;
    set("out", args.output_len.map(|v| v.to_string()))?;
    s.validate().map_err(|errs| anyhow!("{}", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
    Ok(s)
}

/// The stable JSON contract (integers in bytes, per GPU) plus the full estimate under `details`.
pub fn to_json(e: &Estimate) -> serde_json::Value {
    json!({
        "weights_bytes": e.weights.per_gpu.0,
        "kv_bytes_per_token": e.kv.bytes_per_token,
        "kv_cache_bytes": e.kv_cache.bytes.0,
        "activation_bytes": e.activation.bytes.0,
        "overhead_bytes": e.overhead.bytes.0,
        "total_bytes": e.total.0,
        "capacity_bytes": e.capacity.0,
        "headroom_bytes": e.headroom_bytes,
        "fits": e.fits,
        "max_concurrency": e.max_concurrency,
        "model": {
            "id": e.model.id,
            "family": e.model.family,
            "params_total": e.model.params_total,
            "params_active": e.model.params_active,
            "layers": e.model.layers,
        },
        "engine": {
            "name": e.engine.name,
            "version": e.engine.version,
            "kv_pool_bytes": e.engine.kv_pool_bytes.0,
            "kv_in_host_memory_bytes": e.engine.kv_in_host_memory.0,
            "kv_tokens": e.engine.kv_tokens,
            "num_blocks": e.engine.num_blocks,
            "max_concurrency": e.engine.max_concurrency,
            "fits": e.engine.fits,
            "message": e.engine.message,
            "running_cap": e.engine.running_cap.as_ref().map(|c| c.requests),
        },
        "running_note": e.running_note(),
        "permalink": e.scenario.to_query(),
        "details": e,
    })
}

fn basis(f: &Figure) -> &'static str {
    match f.basis {
        Basis::Exact => "exact",
        Basis::Modelled => "modelled",
    }
}

pub fn run(args: EstimateArgs) -> Result<()> {
    let mut s = scenario(&args)?;
    let requested = s.model.clone();
    let (id, text, source, derived) = match models::load(&s.model) {
        Ok((id, text, source)) => (id, text, source, None),
        Err(err) => {
            let (id, text, source, how) = models::derived_fallback(&s.model, &err).ok_or(err)?;
            eprintln!("warning: {how}; sized from the bundled {id} (pass a config.json path for the checkpoint's own)");
            (id, text, source, Some(how))
        }
    };
    s.model = id;
    let mut shape = parse_config(&text).with_context(|| format!("reading config.json ({source})"))?;
    if let Some(how) = &derived {
        // what the id says about the upload (`-AWQ`, `-GPTQ-Int8`, `-FP8`, `-bnb-4bit`)
        let case = kv_estimator::validation::Case { model: requested.clone(), ..Default::default() };
        kv_estimator::validation::derive_checkpoint(&mut shape, &case);
        shape.notes.insert(0, format!("config: {how}"));
    }
    let e = kv_estimator::estimate(&shape, &s)?;
    if args.json {
        let mut v = to_json(&e);
        if let Some(how) = derived {
            v["config"] = json!({ "requested": requested, "used": e.model.id, "derived": how });
        }
        if args.solve {
            v["solve"] = solve_json(&shape, &s);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print_human(&e, &source, args.explain);
    if args.solve {
        println!("\nReverse solving (same scenario):\n{}", serde_json::to_string_pretty(&solve_json(&shape, &s))?);
    }
    Ok(())
}

fn solve_json(shape: &kv_estimator::ModelShape, s: &Scenario) -> serde_json::Value {
    json!({
        "longest_context_tokens": solve::longest_context(shape, s),
        "most_requests": solve::most_requests(shape, s),
        "fewest_gpus_tp_pp": solve::fewest_gpus(shape, s),
        "smallest_dtype_weights_kv": solve::smallest_dtype(shape, s).map(|(d, k)| (d.to_string(), k.to_string())),
        "gpu_memory_utilization_needed": solve::utilization_needed(shape, s),
        "most_gpu_layers_llamacpp_ngl": solve::most_gpu_layers(shape, s),
    })
}

fn print_human(e: &Estimate, source: &str, explain: bool) {
    let s = &e.scenario;
    println!(
        "{} ({}, {:.2}B params{}) from {source}",
        e.model.id,
        e.model.family,
        e.model.params_total as f64 / 1e9,
        if e.model.params_active != e.model.params_total { format!(", {:.2}B active", e.model.params_active as f64 / 1e9) } else { String::new() }
    );
    println!(
        "{} x {} ({}), {}{}, engine {} {}, {} x ({} in + {} out) tokens, weights {}, KV {}",
        e.gpus,
        e.gpu_label,
        e.gpu_memory,
        s.parallelism(),
        if s.dp > 1 { " (figures per GPU of one replica)" } else { "" },
        e.engine.name, e.engine.version, count(s.concurrency, "request"), s.input_len, s.output_len, e.weights.plan.label, e.kv.kv_dtype
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(["per GPU", "bytes", "GiB", "basis"]);
    for f in [&e.weights.figure, &e.kv_cache, &e.activation, &e.overhead] {
        t.add_row([f.name.to_string(), f.bytes.0.to_string(), format!("{:.2}", f.bytes.gib()), basis(f).into()]);
    }
    t.add_row(["total".to_string(), e.total.0.to_string(), format!("{:.2}", e.total.gib()), String::new()]);
    t.add_row([format!("capacity ({})", e.capacity_basis("x")), e.capacity.0.to_string(), format!("{:.2}", e.capacity.gib()), String::new()]);
    // (a pool of token slots without bytes that is short: the slots, not bytes)
    let headroom_gib = if e.slots_short().is_some() { e.headroom_text("-") } else { format!("{:.2}", e.headroom_bytes as f64 / (1u64 << 30) as f64) };
    t.add_row(["headroom".to_string(), e.headroom_bytes.to_string(), headroom_gib, String::new()]);
    println!("{t}");
    println!(
        "KV per token: {} B ({}); per request: {}; verdict: {}",
        e.kv.bytes_per_token,
        e.kv_groups_label("x"),
        e.kv_per_request.bytes,
        if e.fits { format!("FITS, up to {} of {}", count(e.max_concurrency, "concurrent request"), count(s.context_len(), "token")) } else { "DOES NOT FIT".into() }
    );
    if let Some(n) = e.running_note() {
        println!("{n}");
    }
    let en = &e.engine;
    println!(
        "{} would allocate {} of KV: {}, {} blocks of {}, max concurrency {:.2} at {}{}",
        en.name,
        en.kv_pool_bytes,
        count(en.kv_tokens, "token"),
        en.num_blocks,
        en.block_size,
        en.max_concurrency,
        count(en.max_model_len, "token"),
        en.message.as_ref().map(|m| format!("\n  refuses to start: {m}")).unwrap_or_default()
    );
    if let Some(t) = kv_estimator::validation::published_track_record(s.engine) {
        println!("how sure: {}", t.summary());
    }
    let mut c = Table::new();
    c.load_preset(UTF8_FULL_CONDENSED).set_header(["context", "KV per request", "max concurrent requests"]);
    for r in &e.context_table {
        c.add_row([r.context.to_string(), Bytes::to_string(&r.kv_bytes_per_request), r.max_concurrency.to_string()]);
    }
    println!("{c}");
    let frag = kv_estimator::estimate::fragmentation_table(e);
    if let Some(first) = frag.first() {
        let mut f = Table::new();
        f.load_preset(UTF8_FULL_CONDENSED).set_header(["KV allocation", "reserved", "used", "wasted"]);
        f.add_row([format!("contiguous (max_model_len {})", first.max_len), first.contiguous.to_string(), first.used.to_string(), format!("{:.1} %", first.contiguous_waste_pct)]);
        for r in &frag {
            f.add_row([format!("paged, blocks of {}", count(r.block_size, "token")), r.paged.to_string(), r.used.to_string(), format!("{:.2} %", r.paged_waste_pct)]);
        }
        println!("fragmentation, {} in flight, {}:\n{f}", count(first.requests, "request"), kv_estimator::estimate::inflight_lengths_label(s));
    }
    println!("throughput ({}): decode <= {:.0} tok/s total, prefill <= {:.0} tok/s", e.throughput.derivation, e.throughput.decode_tokens_per_s, e.throughput.prefill_tokens_per_s);
    for d in &e.model.defaults {
        println!("default: {} = {} ({})", d.field, d.value, d.why);
    }
    for n in &e.model.notes {
        println!("note: {n}");
    }
    if explain {
        println!("\nDerivations:");
        for f in [&e.weights.figure, &e.kv_per_request, &e.kv_cache, &e.activation, &e.overhead] {
            println!("- {} [{}]: {}\n    = {}", f.name, basis(f), f.formula, f.substituted);
            for n in &f.notes {
                println!("    note: {n}");
            }
        }
        for n in &e.engine.notes {
            println!("- engine: {n}");
        }
    }
    println!("permalink: ?{}", s.to_query());
}
