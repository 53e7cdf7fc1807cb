//! Fuzz target: arbitrary bytes as config.json, then an estimate; neither may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(shape) = kv_estimator::parse_config(text) {
            let s = kv_estimator::Scenario { model: "fuzz/model".into(), ..Default::default() };
            let _ = kv_estimator::estimate(&shape, &s);
        }
    }
});
