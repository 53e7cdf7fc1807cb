//! # kv-estimator
//!
//! The single source of truth of the KV capacity planner: from a Hugging Face `config.json` and a
//! [`Scenario`] to weights, KV cache, activations, overheads, capacity and fragmentation, with the
//! derivation of every figure. Pure: no I/O, no panics, builds for `wasm32-unknown-unknown`.
//!
//! Data flow: [`parse_config`] (raw config -> [`ModelShape`]) -> [`estimate`] (shape + scenario ->
//! [`Estimate`]) -> the CLI table, the page, the service.

pub mod arch;
pub mod config;
pub mod dtype;
pub mod error;
pub mod gguf;
pub mod model;
pub mod units;

pub use config::{merge_hf_quant_config, parse_config, parse_config_with_quant, wants_hf_quant_config};
pub use dtype::{FloatDtype, KvDtype, Quant, QuantChoice, WeightDtype};
pub use error::{Error, Result};
pub use model::{Family, ModelShape};
pub use units::{Basis, Bytes, Figure};
pub mod kv;
pub mod weights;
pub mod gpu;
pub mod scenario;
pub use scenario::{Engine, Scenario};
pub mod activation;
pub mod allocator;
pub mod engine;
pub mod estimate;
pub use estimate::{estimate, Estimate};
pub mod measurement;
pub mod validation;
