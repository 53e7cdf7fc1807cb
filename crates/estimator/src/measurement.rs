//! The measurement schema (what `kv-runner measure` writes, the service stores and the page
//! overlays) and the comparison of an estimate with a measurement per component.
//! Documented in `docs/measurement-schema.md`. Version 1.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The schema version this crate reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Where and with what a measurement was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    pub tool: String,
    pub tool_version: String,
    pub commit: Option<String>,
    pub gpu: Option<String>,
    pub driver: Option<String>,
    pub cuda: Option<String>,
    pub candle_version: Option<String>,
    /// RFC 3339 time of the run.
    pub time: String,
}

/// The estimator's prediction for one point, stored beside the measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Predicted {
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub activation_bytes: u64,
    pub overhead_bytes: u64,
    pub total_bytes: u64,
}

/// One measured point of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub concurrency: u64,
    pub input_len: u64,
    pub output_len: u64,
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub baseline_bytes: u64,
    pub peak_bytes: u64,
    pub ttft_ms: f64,
    pub decode_ms_mean: f64,
    pub decode_ms_p50: f64,
    pub decode_ms_p95: f64,
    pub tokens_per_s_request: f64,
    pub tokens_per_s_total: f64,
    pub oom: bool,
    pub predicted: Option<Predicted>,
    /// Peak during the prefill alone (the whole-point peak is `peak_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_prefill_bytes: Option<u64>,
    /// Peak during the decode steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_decode_bytes: Option<u64>,
    /// Why the point was not run (predicted not to fit, interrupted); its figures are then zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What is special about the point (a mixed batch of short and long prompts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A measurement document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub schema_version: u32,
    pub model: String,
    pub device: String,
    pub dtype: String,
    #[serde(default)]
    pub engine: Option<String>,
    pub provenance: Provenance,
    pub points: Vec<Point>,
}

const MAX_BYTES: u64 = 1 << 50; // 1 PiB: anything above is not a real device
const MAX_MS: f64 = 1.0e9;

impl Measurement {
    /// Parses and validates a document; errors name the offending field.
    pub fn from_json(text: &str) -> Result<Measurement> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Measurement { field: "(document)".into(), message: e.to_string() })?;
        match v.get("schema_version").and_then(serde_json::Value::as_u64) {
            Some(n) if n == SCHEMA_VERSION as u64 => {}
            Some(n) => return Err(Error::Measurement { field: "schema_version".into(), message: format!("version {n} is not supported; expected {SCHEMA_VERSION}") }),
            None => return Err(Error::Measurement { field: "schema_version".into(), message: "missing or not an integer".into() }),
        }
        let m: Measurement = serde_json::from_value(v).map_err(|e| Error::Measurement { field: "(document)".into(), message: e.to_string() })?;
        m.validate()?;
        Ok(m)
    }

    /// Checks ranges: ids are short plain text (no markup characters), figures finite,
    /// non-negative and plausible.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: String, message: String| Err(Error::Measurement { field, message });
        let engine = self.engine.clone().unwrap_or_else(|| "candle".into());
        let prov = &self.provenance;
        let texts = [
            ("model", self.model.as_str()),
            ("device", self.device.as_str()),
            ("dtype", self.dtype.as_str()),
            ("engine", engine.as_str()),
            ("provenance.tool", prov.tool.as_str()),
            ("provenance.tool_version", prov.tool_version.as_str()),
            ("provenance.time", prov.time.as_str()),
        ];
        let optional = [
            ("provenance.commit", prov.commit.as_deref()),
            ("provenance.gpu", prov.gpu.as_deref()),
            ("provenance.driver", prov.driver.as_deref()),
            ("provenance.cuda", prov.cuda.as_deref()),
            ("provenance.candle_version", prov.candle_version.as_deref()),
        ];
        for (name, s) in texts.into_iter().chain(optional.into_iter().filter_map(|(n, s)| s.map(|s| (n, s)))) {
            if s.is_empty() || s.len() > 200 || s.chars().any(|c| c.is_control()) {
                return bad(name.into(), format!("1 to 200 printable characters, found {} characters", s.chars().count()));
            }
            if let Some(c) = s.chars().find(|c| matches!(c, '<' | '>' | '"' | '\'' | '`' | '&' | '\\')) {
                return bad(name.into(), format!("plain text without markup characters, found `{c}`"));
            }
        }
        if self.points.is_empty() || self.points.len() > 10_000 {
            return bad("points".into(), "between 1 and 10000 points".into());
        }
        for (i, p) in self.points.iter().enumerate() {
            for (name, b) in [("weights_bytes", p.weights_bytes), ("kv_cache_bytes", p.kv_cache_bytes), ("baseline_bytes", p.baseline_bytes), ("peak_bytes", p.peak_bytes)] {
                if b > MAX_BYTES {
                    return bad(format!("points[{i}].{name}"), format!("{b} is above 1 PiB"));
                }
            }
            for (name, x) in [
                ("ttft_ms", p.ttft_ms),
                ("decode_ms_mean", p.decode_ms_mean),
                ("decode_ms_p50", p.decode_ms_p50),
                ("decode_ms_p95", p.decode_ms_p95),
                ("tokens_per_s_request", p.tokens_per_s_request),
                ("tokens_per_s_total", p.tokens_per_s_total),
            ] {
                if !x.is_finite() || x < 0.0 || x > MAX_MS {
                    return bad(format!("points[{i}].{name}"), format!("{x} is not a finite, non-negative figure"));
                }
            }
            if p.concurrency == 0 || p.concurrency > 1 << 20 {
                return bad(format!("points[{i}].concurrency"), format!("{} is not between 1 and 1048576", p.concurrency));
            }
            for (name, n) in [("input_len", p.input_len), ("output_len", p.output_len)] {
                if n > 1 << 26 {
                    return bad(format!("points[{i}].{name}"), format!("{n} tokens is above 67108864"));
                }
            }
            for (name, b) in [("peak_prefill_bytes", p.peak_prefill_bytes), ("peak_decode_bytes", p.peak_decode_bytes)] {
                if b.is_some_and(|b| b > MAX_BYTES) {
                    return bad(format!("points[{i}].{name}"), "above 1 PiB".into());
                }
            }
            if let Some(pr) = &p.predicted {
                for (name, b) in [("weights_bytes", pr.weights_bytes), ("kv_cache_bytes", pr.kv_cache_bytes), ("activation_bytes", pr.activation_bytes), ("overhead_bytes", pr.overhead_bytes), ("total_bytes", pr.total_bytes)] {
                    if b > MAX_BYTES {
                        return bad(format!("points[{i}].predicted.{name}"), format!("{b} is above 1 PiB"));
                    }
                }
            }
            for (name, t) in [("skipped", &p.skipped), ("label", &p.label)] {
                if t.as_ref().is_some_and(|s| s.len() > 500 || s.chars().any(|c| matches!(c, '<' | '>'))) {
                    return bad(format!("points[{i}].{name}"), "a short plain-text note".into());
                }
            }
        }
        Ok(())
    }
}

/// Estimate vs measurement for one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentError {
    pub component: String,
    pub estimated: u64,
    pub measured: u64,
    /// `(estimated - measured) / measured x 100`; `None` when nothing was measured.
    pub error_pct: Option<f64>,
}

/// Signed percent errors per component of one point.
pub fn compare(predicted: &Predicted, p: &Point) -> Vec<ComponentError> {
    let measured_act = p.peak_bytes.saturating_sub(p.baseline_bytes + p.weights_bytes + p.kv_cache_bytes);
    [
        ("weights", predicted.weights_bytes, p.weights_bytes),
        ("kv_cache", predicted.kv_cache_bytes, p.kv_cache_bytes),
        ("activations", predicted.activation_bytes, measured_act),
        ("overhead", predicted.overhead_bytes, p.baseline_bytes),
        ("peak", predicted.total_bytes, p.peak_bytes),
    ]
    .into_iter()
    .map(|(c, e, m)| ComponentError {
        component: c.into(),
        estimated: e,
        measured: m,
        error_pct: (m > 0).then(|| (e as f64 - m as f64) / m as f64 * 100.0),
    })
    .collect()
}

/// One row of the accuracy table: a measured point with its provenance and the signed error
/// of each component (what the page and the service show, model by model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    pub model: String,
    pub device: String,
    pub gpu: Option<String>,
    pub dtype: String,
    pub engine: String,
    /// RFC 3339 time of the run.
    pub time: String,
    /// `kv-runner 0.1.0 (abc1234)`.
    pub provenance: String,
    pub concurrency: u64,
    pub input_len: u64,
    pub output_len: u64,
    pub oom: bool,
    pub components: Vec<ComponentError>,
}

impl Measurement {
    /// One row per measured point that carries the estimator's prediction (skipped points and
    /// points without a prediction have nothing to compare).
    pub fn accuracy_rows(&self) -> Vec<AccuracyRow> {
        let prov = &self.provenance;
        let provenance = match &prov.commit {
            Some(c) => format!("{} {} ({})", prov.tool, prov.tool_version, c.chars().take(12).collect::<String>()),
            None => format!("{} {}", prov.tool, prov.tool_version),
        };
        self.points
            .iter()
            .filter(|p| p.skipped.is_none())
            .filter_map(|p| {
                let pred = p.predicted.as_ref()?;
                Some(AccuracyRow {
                    model: self.model.clone(),
                    device: self.device.clone(),
                    gpu: prov.gpu.clone(),
                    dtype: self.dtype.clone(),
                    engine: self.engine.clone().unwrap_or_else(|| "candle".into()),
                    time: prov.time.clone(),
                    provenance: provenance.clone(),
                    concurrency: p.concurrency,
                    input_len: p.input_len,
                    output_len: p.output_len,
                    oom: p.oom,
                    components: if p.oom { vec![] } else { compare(pred, p) },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn doc(v: u32, ttft: &str) -> String {
        format!(r#"{{"schema_version":{v},"model":"m","device":"cpu","dtype":"f32","provenance":{{"tool":"kv-runner","tool_version":"0.1.0","time":"2026-11-23T00:00:00Z"}},"points":[{{"concurrency":1,"input_len":8,"output_len":2,"weights_bytes":100,"kv_cache_bytes":10,"baseline_bytes":0,"peak_bytes":150,"ttft_ms":{ttft},"decode_ms_mean":1,"decode_ms_p50":1,"decode_ms_p95":1,"tokens_per_s_request":1,"tokens_per_s_total":1,"oom":false,"predicted":null}}]}}"#)
    }
    #[test]
    fn version_and_ranges_are_checked() {
        assert!(Measurement::from_json(&doc(1, "5")).is_ok());
        let e = Measurement::from_json(&doc(2, "5")).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        let e = Measurement::from_json(&doc(1, "-5")).unwrap_err();
        assert!(e.to_string().contains("ttft_ms"), "{e}");
        let html = doc(1, "5").replace(r#""model":"m""#, r#""model":"<script>alert(1)</script>""#);
        let e = Measurement::from_json(&html).unwrap_err();
        assert!(e.to_string().contains("`model`") && e.to_string().contains("markup"), "{e}");
    }
    #[test]
    fn accuracy_rows_carry_provenance_and_errors() {
        let mut m = Measurement::from_json(&doc(1, "5")).unwrap();
        assert!(m.accuracy_rows().is_empty(), "no prediction, no row");
        m.points[0].predicted = Some(Predicted { weights_bytes: 110, kv_cache_bytes: 10, activation_bytes: 40, overhead_bytes: 0, total_bytes: 160 });
        let rows = m.accuracy_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].provenance, "kv-runner 0.1.0");
        assert_eq!(rows[0].components[0].error_pct, Some(10.0));
    }
    #[test]
    fn compare_gives_signed_errors() {
        let m = Measurement::from_json(&doc(1, "5")).unwrap();
        let p = Predicted { weights_bytes: 110, kv_cache_bytes: 10, activation_bytes: 40, overhead_bytes: 0, total_bytes: 160 };
        let c = compare(&p, &m.points[0]);
        assert_eq!(c[0].error_pct, Some(10.0));
        assert_eq!(c[1].error_pct, Some(0.0));
    }
}
