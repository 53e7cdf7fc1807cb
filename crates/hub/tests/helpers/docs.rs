//! Measurement documents for the tests and the load example, built with the estimator's serde
//! types (never hand-written JSON), distinct by a seed.

#![allow(dead_code)]

use kv_estimator::measurement::{Measurement, Point, Predicted, Provenance, SCHEMA_VERSION};
use serde_json::Value;

pub const TOKEN: &str = "test-token-1";

/// A valid document; `seed` makes it distinct (run time, lengths and a timing figure).
pub fn measurement(seed: u64) -> Measurement {
    let gib = 1u64 << 30;
    Measurement {
        schema_version: SCHEMA_VERSION,
        model: "Qwen/Qwen2.5-0.5B".into(),
        device: "cuda:0".into(),
        dtype: "bf16".into(),
        engine: Some("candle".into()),
        provenance: Provenance {
            tool: "kv-runner".into(),
            tool_version: "0.1.0".into(),
            commit: Some("abc1234def567".into()),
            gpu: Some("NVIDIA H100 80GB HBM3".into()),
            driver: Some("550.54.15".into()),
            cuda: Some("12.4".into()),
            candle_version: Some("0.9.1".into()),
            time: format!("2026-01-{:02}T{:02}:{:02}:{:02}Z", 1 + seed / 86_400 % 28, seed / 3600 % 24, seed / 60 % 60, seed % 60),
        },
        points: vec![Point {
            concurrency: 1 + seed % 64,
            input_len: 1024 + seed,
            output_len: 128,
            weights_bytes: gib,
            kv_cache_bytes: gib / 4,
            baseline_bytes: gib / 8,
            peak_bytes: gib + gib / 2,
            ttft_ms: 12.5 + seed as f64,
            decode_ms_mean: 8.0,
            decode_ms_p50: 7.9,
            decode_ms_p95: 9.5,
            tokens_per_s_request: 120.0,
            tokens_per_s_total: 120.0 * (1 + seed % 64) as f64,
            oom: false,
            predicted: Some(Predicted { weights_bytes: gib + gib / 100, kv_cache_bytes: gib / 4, activation_bytes: gib / 16, overhead_bytes: gib / 10, total_bytes: gib + gib / 2 }),
            peak_prefill_bytes: None,
            peak_decode_bytes: None,
            skipped: None,
            label: None,
        }],
    }
}

/// The document as JSON text.
pub fn json(m: &Measurement) -> String {
    serde_json::to_string(m).unwrap()
}

/// A document as a JSON value, to break it on purpose.
pub fn value(m: &Measurement) -> Value {
    serde_json::to_value(m).unwrap()
}
