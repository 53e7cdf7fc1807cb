//! `kv-runner env`: what this machine is (OS, CPU, memory, GPUs with total/free memory, driver,
//! CUDA and compute capability from `nvidia-smi`), the candle version and the features compiled
//! in; as a table or `--json`.

use crate::cli::EnvArgs;
use crate::measure::CANDLE_VERSION;
use anyhow::Result;
use serde_json::{json, Value};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn os() -> String {
    let pretty = read("/etc/os-release").lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    match pretty {
        Some(p) => format!("{p} (kernel {kernel}, {})", std::env::consts::ARCH),
        None => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

fn cpu() -> Value {
    let info = read("/proc/cpuinfo");
    let model = info.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()));
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    json!({ "model": model, "threads": threads })
}

fn meminfo(key: &str) -> Option<u64> {
    read("/proc/meminfo").lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// GPUs as `nvidia-smi` reports them (none when it is absent).
fn gpus() -> Vec<Value> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,name,memory.total,memory.free,driver_version,compute_cap", "--format=csv,noheader,nounits"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let cuda = std::process::Command::new("nvidia-smi").output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).split("CUDA Version:").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string));
    let Some(out) = out else { return vec![] };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let mib = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).map(|m| m * (1 << 20));
            json!({
                "index": f.first(), "name": f.get(1), "memory_total_bytes": mib(2), "memory_free_bytes": mib(3),
                "driver": f.get(4), "compute_capability": f.get(5), "cuda": cuda,
            })
        })
        .collect()
}

pub fn run(args: EnvArgs) -> Result<()> {
    let features: Vec<&str> = [cfg!(feature = "cuda").then_some("cuda")].into_iter().flatten().collect();
    let v = json!({
        "os": os(),
        "cpu": cpu(),
        "memory_total_bytes": meminfo("MemTotal:"),
        "memory_available_bytes": meminfo("MemAvailable:"),
        "gpus": gpus(),
        "candle_version": CANDLE_VERSION,
        "kv_runner_version": env!("CARGO_PKG_VERSION"),
        "features": features,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let gib = |x: &Value| x.as_u64().map(|b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_else(|| "?".into());
    println!("os:       {}", v["os"].as_str().unwrap_or("?"));
    println!("cpu:      {} ({} threads)", v["cpu"]["model"].as_str().unwrap_or("?"), v["cpu"]["threads"]);
    println!("memory:   {} total, {} available", gib(&v["memory_total_bytes"]), gib(&v["memory_available_bytes"]));
    let gpus = v["gpus"].as_array().cloned().unwrap_or_default();
    if gpus.is_empty() {
        println!("gpus:     none found (nvidia-smi absent or no NVIDIA GPU)");
    }
    for g in gpus {
        println!(
            "gpu {}:    {} · {} total, {} free · driver {} · CUDA {} · compute {}",
            g["index"].as_str().unwrap_or("?"),
            g["name"].as_str().unwrap_or("?"),
            gib(&g["memory_total_bytes"]),
            gib(&g["memory_free_bytes"]),
            g["driver"].as_str().unwrap_or("?"),
            g["cuda"].as_str().unwrap_or("?"),
            g["compute_capability"].as_str().unwrap_or("?")
        );
    }
    println!("candle:   {CANDLE_VERSION}; features compiled in: {}", if features.is_empty() { "none (CPU only)".to_string() } else { features.join(", ") });
    Ok(())
}
