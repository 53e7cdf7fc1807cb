//! GPU catalog: the memory the driver reports (what `torch.cuda.mem_get_info` and the engines call
//! "total GPU memory", a little below the marketing size), HBM/GDDR bandwidth and dense bf16/fp16
//! tensor throughput (no sparsity). Memory figures marked `engine logs` were read from vLLM/SGLang
//! start-up logs in `shared/validation`; the others from `nvidia-smi` totals (MiB / 1024).

use crate::error::{Error, Result};
use crate::units::Bytes;
use serde::{Deserialize, Serialize};

/// One catalog entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gpu {
    pub id: &'static str,
    pub name: &'static str,
    /// Memory the driver reports, GiB.
    pub memory_gib: f64,
    /// Memory bandwidth, GB/s (10^9 bytes per second).
    pub bandwidth_gbs: f64,
    /// Dense bf16/fp16 tensor throughput, TFLOP/s.
    pub bf16_tflops: f64,
    /// Where the memory figure comes from.
    pub memory_source: &'static str,
    /// CUDA compute capability as `major x 10 + minor` (90 for Hopper); 0 for non-NVIDIA GPUs.
    /// Engines pick kernels (and weight layouts) by it.
    pub compute_capability: u32,
    /// How the GPUs of one server are connected; collective libraries size their buffers by it.
    pub fabric: Fabric,
}

/// The link between the GPUs of one server, as far as it changes memory: NCCL on an NVSwitch
/// of Hopper or later GPUs sets up NVLink SHARP (NVLS) buffers, which take GiBs per GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fabric {
    /// SXM boards on an NVSwitch (HGX/DGX A100, H100, H200, B200).
    NvSwitch,
    /// PCIe cards, NVLink bridges between pairs, or SXM2 meshes: no switch.
    PointToPoint,
    /// Not an NVIDIA fabric (AMD Infinity Fabric): not modelled separately.
    Other,
}

macro_rules! gpus {
    ($( $id:literal, $name:literal, $mem:literal, $bw:literal, $tf:literal, $src:literal, $cc:literal, $fabric:ident; )*) => {
        /// Every GPU in the catalog.
        pub const CATALOG: &[Gpu] = &[ $( Gpu { id: $id, name: $name, memory_gib: $mem, bandwidth_gbs: $bw, bf16_tflops: $tf, memory_source: $src, compute_capability: $cc, fabric: Fabric::$fabric } ),* ];
    };
}

gpus! {
    "h100-80gb", "NVIDIA H100 80GB HBM3 (SXM)", 79.19, 3350.0, 989.0, "engine logs (79.18-79.25)", 90, NvSwitch;
    "h100-pcie", "NVIDIA H100 PCIe 80GB", 79.19, 2000.0, 756.0, "nvidia-smi 81559 MiB", 90, PointToPoint;
    "h100-nvl", "NVIDIA H100 NVL 94GB", 93.1, 3900.0, 835.0, "nvidia-smi 95830 MiB less reserved", 90, PointToPoint;
    "h200", "NVIDIA H200 141GB", 139.72, 4800.0, 989.0, "engine logs", 90, NvSwitch;
    "b200", "NVIDIA B200 180GB", 178.35, 8000.0, 2250.0, "nvidia-smi 183359 MiB less reserved", 100, NvSwitch;
    "a100-80gb", "NVIDIA A100 80GB", 79.15, 2039.0, 312.0, "torch total for A100-SXM4-80GB", 80, NvSwitch;
    "a100-40gb", "NVIDIA A100 40GB", 39.38, 1555.0, 312.0, "engine logs", 80, NvSwitch;
    "l40s", "NVIDIA L40S 48GB", 44.42, 864.0, 362.0, "nvidia-smi 46068 MiB less reserved", 89, PointToPoint;
    "rtx-a6000", "NVIDIA RTX A6000 48GB", 44.55, 768.0, 155.0, "engine logs", 86, PointToPoint;
    "l4", "NVIDIA L4 24GB", 22.03, 300.0, 121.0, "nvidia-smi 23034 MiB less reserved", 89, PointToPoint;
    "a10g", "NVIDIA A10G 24GB", 21.99, 600.0, 70.0, "engine logs", 86, PointToPoint;
    "t4", "NVIDIA T4 16GB", 14.56, 320.0, 65.0, "engine logs", 75, PointToPoint;
    "v100-16gb", "NVIDIA V100 16GB", 15.77, 900.0, 125.0, "nvidia-smi 16160 MiB", 70, PointToPoint;
    "v100-32gb", "NVIDIA V100 32GB", 31.74, 900.0, 125.0, "nvidia-smi 32510 MiB", 70, PointToPoint;
    "rtx-3090", "NVIDIA GeForce RTX 3090 24GB", 23.58, 936.0, 71.0, "engine logs", 86, PointToPoint;
    "rtx-4090", "NVIDIA GeForce RTX 4090 24GB", 23.65, 1008.0, 165.0, "torch total", 89, PointToPoint;
    "rtx-5090", "NVIDIA GeForce RTX 5090 32GB", 31.36, 1792.0, 209.0, "torch total", 120, PointToPoint;
    "mi300x", "AMD Instinct MI300X 192GB", 191.98, 5300.0, 1307.0, "rocm-smi 196592 MiB", 0, Other;
}

/// Looks a GPU up by catalog id (case-insensitive).
pub fn find(id: &str) -> Result<&'static Gpu> {
    let want = id.trim();
    CATALOG.iter().find(|g| g.id.eq_ignore_ascii_case(want)).ok_or_else(|| {
        let ids: Vec<&str> = CATALOG.iter().map(|g| g.id).collect();
        Error::scenario("gpu", id, format!("one of {}", ids.join(", ")))
    })
}

/// The GPU of a scenario: a catalog entry or a custom memory size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuChoice {
    Catalog(String),
    Custom { memory_gib: f64 },
}

impl GpuChoice {
    /// Memory per GPU in bytes.
    pub fn memory(&self) -> Result<Bytes> {
        match self {
            GpuChoice::Catalog(id) => Bytes::from_gib(find(id)?.memory_gib, "gpu"),
            GpuChoice::Custom { memory_gib } => {
                if !(memory_gib.is_finite() && *memory_gib > 0.0 && *memory_gib <= 4096.0) {
                    return Err(Error::scenario("gpu_memory_gib", memory_gib, "a number of GiB between 0 and 4096"));
                }
                Bytes::from_gib(*memory_gib, "gpu_memory_gib")
            }
        }
    }
    pub fn catalog(&self) -> Option<&'static Gpu> {
        match self {
            GpuChoice::Catalog(id) => find(id).ok(),
            GpuChoice::Custom { .. } => None,
        }
    }
    pub fn label(&self) -> String {
        match self {
            GpuChoice::Catalog(id) => find(id).map_or_else(|_| id.clone(), |g| g.name.to_string()),
            GpuChoice::Custom { memory_gib } => format!("custom {memory_gib} GiB"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn h100_is_what_the_driver_reports() {
        let b = GpuChoice::Catalog("H100-80GB".into()).memory().unwrap();
        assert!((b.gib() - 79.19).abs() < 1e-6);
        assert!(find("h101").unwrap_err().to_string().contains("h100-80gb"));
        assert!(GpuChoice::Custom { memory_gib: f64::NAN }.memory().is_err());
    }
}
