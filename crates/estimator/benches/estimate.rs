//! Criterion benchmarks: one estimate (target < 10 us natively) and a sweep of 1,000 scenarios
//! (target < 5 ms). Results are recorded in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};
use kv_estimator::{estimate, parse_config, Engine, Scenario};
use std::hint::black_box;

fn config(id: &str) -> String {
    // cargo's run-time CARGO_MANIFEST_DIR: a bench binary built in another clone is not rebuilt
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = format!("{dir}/../../model-configs/{id}/config.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let llama = parse_config(&config("meta-llama/Llama-3.1-8B-Instruct")).unwrap();
    let s = Scenario { model: "meta-llama/Llama-3.1-8B-Instruct".into(), concurrency: 32, input_len: 4096, output_len: 1024, ..Scenario::default() };
    c.bench_function("estimate llama-3.1-8b vllm", |b| b.iter(|| estimate(black_box(&llama), black_box(&s)).unwrap()));
    let text = config("deepseek-ai/DeepSeek-V3");
    c.bench_function("parse deepseek-v3 config", |b| b.iter(|| parse_config(black_box(&text)).unwrap()));
    let scenarios: Vec<Scenario> = (0..1000u64)
        .map(|i| Scenario { concurrency: 1 + i % 64, input_len: 512 * (1 + i % 32), engine: Engine::ALL[(i % 6) as usize], tp: [1, 2, 4, 8][(i % 4) as usize], ..s.clone() })
        .collect();
    c.bench_function("sweep 1000 scenarios", |b| b.iter(|| scenarios.iter().filter(|s| estimate(&llama, s).map(|e| e.fits).unwrap_or(false)).count()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
