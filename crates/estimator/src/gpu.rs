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
    /// Streaming multiprocessors (compute units on AMD), as `torch.cuda.get_device_properties`
    /// counts them (NVIDIA and AMD spec sheets); kernels that launch one program per SM size
    /// their scratch buffers by it.
    pub sm_count: u32,
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

impl Gpu {
    /// SXM boards of Hopper or later on an NVSwitch, where NCCL's communicators take GiBs per
    /// GPU under tensor parallelism (vLLM's non-torch memory, SGLang's free memory at load).
    pub fn nvswitch_hopper_or_later(&self) -> bool {
        self.fabric == Fabric::NvSwitch && self.compute_capability >= 90
    }
}

macro_rules! gpus {
    ($( $id:literal, $name:literal, $mem:literal, $bw:literal, $tf:literal, $src:literal, $cc:literal, $sms:literal, $fabric:ident; )*) => {
        /// Every GPU in the catalog.
        pub const CATALOG: &[Gpu] = &[ $( Gpu { id: $id, name: $name, memory_gib: $mem, bandwidth_gbs: $bw, bf16_tflops: $tf, memory_source: $src, compute_capability: $cc, sm_count: $sms, fabric: Fabric::$fabric } ),* ];
    };
}

gpus! {
    "h100-80gb", "NVIDIA H100 80GB HBM3 (SXM)", 79.19, 3350.0, 989.0, "engine logs (79.18-79.25)", 90, 132, NvSwitch;
    "h100-pcie", "NVIDIA H100 PCIe 80GB", 79.19, 2000.0, 756.0, "nvidia-smi 81559 MiB", 90, 114, PointToPoint;
    "h100-nvl", "NVIDIA H100 NVL 94GB", 93.1, 3900.0, 835.0, "nvidia-smi 95830 MiB less reserved", 90, 132, PointToPoint;
    "h200", "NVIDIA H200 141GB", 139.72, 4800.0, 989.0, "engine logs", 90, 132, NvSwitch;
    "b200", "NVIDIA B200 180GB", 178.35, 8000.0, 2250.0, "nvidia-smi 183359 MiB less reserved", 100, 148, NvSwitch;
    "a100-80gb", "NVIDIA A100 80GB", 79.15, 2039.0, 312.0, "torch total for A100-SXM4-80GB", 80, 108, NvSwitch;
    "a100-40gb", "NVIDIA A100 40GB", 39.38, 1555.0, 312.0, "engine logs", 80, 108, NvSwitch;
    "l40s", "NVIDIA L40S 48GB", 44.42, 864.0, 362.0, "nvidia-smi 46068 MiB less reserved", 89, 142, PointToPoint;
    "rtx-a6000", "NVIDIA RTX A6000 48GB", 44.55, 768.0, 155.0, "engine logs", 86, 84, PointToPoint;
    "l4", "NVIDIA L4 24GB", 22.03, 300.0, 121.0, "nvidia-smi 23034 MiB less reserved", 89, 58, PointToPoint;
    "a10g", "NVIDIA A10G 24GB", 21.99, 600.0, 70.0, "engine logs", 86, 80, PointToPoint;
    "t4", "NVIDIA T4 16GB", 14.56, 320.0, 65.0, "engine logs", 75, 40, PointToPoint;
    "v100-16gb", "NVIDIA V100 16GB", 15.77, 900.0, 125.0, "nvidia-smi 16160 MiB", 70, 80, PointToPoint;
    "v100-32gb", "NVIDIA V100 32GB", 31.74, 900.0, 125.0, "nvidia-smi 32510 MiB", 70, 80, PointToPoint;
    "rtx-3090", "NVIDIA GeForce RTX 3090 24GB", 23.58, 936.0, 71.0, "engine logs", 86, 82, PointToPoint;
    "rtx-4090", "NVIDIA GeForce RTX 4090 24GB", 23.65, 1008.0, 165.0, "torch total", 89, 128, PointToPoint;
    "rtx-5090", "NVIDIA GeForce RTX 5090 32GB", 31.36, 1792.0, 209.0, "torch total", 120, 170, PointToPoint;
    "gh200-144gb", "NVIDIA GH200 144GB HBM3e (Grace Hopper)", 142.5, 4900.0, 989.0, "CUDA's total for \"NVIDIA GH200 144G HBM3e\" (153008209920 B)", 90, 132, PointToPoint;
    "rtx-pro-6000", "NVIDIA RTX PRO 6000 Blackwell 96GB", 94.97, 1792.0, 500.0, "torch total", 120, 188, PointToPoint;
    "mi300x", "AMD Instinct MI300X 192GB", 191.98, 5300.0, 1307.0, "rocm-smi 196592 MiB", 0, 304, Other;
    "gb200", "NVIDIA GB200 186GB (Grace Blackwell)", 184.31, 8000.0, 2500.0, "torch total in public OOM messages on \"NVIDIA GB200\" (nvidia-smi 189471 MiB)", 100, 148, NvSwitch;
    "b300", "NVIDIA B300 288GB", 267.69, 8000.0, 2250.0, "torch total in public OOM messages (nvidia-smi 275040 MiB on \"NVIDIA B300 SXM6 AC\")", 103, 160, NvSwitch;
    "dgx-spark", "NVIDIA GB10 (DGX Spark) 128GB unified", 119.63, 273.0, 125.0, "torch total in public OOM messages (119.18-119.70: the memory is the host's too, and what the system holds varies)", 121, 48, PointToPoint;
    "mi355x", "AMD Instinct MI355X 288GB", 287.98, 8000.0, 2300.0, "torch (HIP) total in public OOM messages", 0, 256, Other;
    "mi325x", "AMD Instinct MI325X 256GB", 255.98, 6000.0, 1307.0, "torch (HIP) total in public OOM messages", 0, 304, Other;
    // boards whose memory is another entry's (same memory, same ECC setting)
    "h800", "NVIDIA H800 80GB", 79.19, 3350.0, 989.0, "as the H100 80GB (nvidia-smi 81559 MiB)", 90, 132, NvSwitch;
    "a800-80gb", "NVIDIA A800 80GB", 79.15, 2039.0, 312.0, "as the A100 80GB (nvidia-smi 81920 MiB)", 80, 108, NvSwitch;
    "h20-141gb", "NVIDIA H20 141GB", 139.72, 4800.0, 148.0, "as the H200 (141 GB HBM3e; an 8x H20 log implies ~139.8 GiB)", 90, 78, NvSwitch;
    "a10", "NVIDIA A10 24GB", 21.99, 600.0, 125.0, "as the A10G (nvidia-smi 23028 MiB, ECC on)", 86, 72, PointToPoint;
    "l40", "NVIDIA L40 48GB", 44.42, 864.0, 181.0, "as the L40S (nvidia-smi 46068 MiB, ECC on)", 89, 142, PointToPoint;
    "l20", "NVIDIA L20 48GB", 44.42, 864.0, 119.5, "as the L40S (nvidia-smi 46068 MiB, ECC on)", 89, 92, PointToPoint;
    "a40", "NVIDIA A40 48GB", 44.42, 696.0, 150.0, "as the L40S (nvidia-smi 46068 MiB, ECC on)", 86, 84, PointToPoint;
    "rtx-a5000", "NVIDIA RTX A5000 24GB", 23.65, 768.0, 111.0, "as the RTX 4090 (nvidia-smi 24564 MiB)", 86, 64, PointToPoint;
    // modelled: nvidia-smi total less what the driver keeps (0.35 GiB on the GeForce logs above,
    // 0.47 GiB the median of the data-centre ones)
    "h20", "NVIDIA H20 96GB", 95.11, 4000.0, 148.0, "modelled: nvidia-smi 97871 MiB less 0.47 GiB", 90, 78, NvSwitch;
    "gh200", "NVIDIA GH200 96GB (Grace Hopper)", 95.11, 4000.0, 989.0, "modelled: nvidia-smi 97871 MiB (\"NVIDIA GH200 480GB\") less 0.47 GiB", 90, 132, PointToPoint;
    "a30", "NVIDIA A30 24GB", 23.53, 933.0, 165.0, "modelled: 24 GiB HBM2 less 0.47 GiB", 80, 56, PointToPoint;
    "rtx-6000-ada", "NVIDIA RTX 6000 Ada 48GB", 47.64, 960.0, 364.0, "modelled: nvidia-smi 49140 MiB less 0.35 GiB", 89, 142, PointToPoint;
    "rtx-a4000", "NVIDIA RTX A4000 16GB", 15.64, 448.0, 76.7, "modelled: nvidia-smi 16376 MiB less 0.35 GiB", 86, 48, PointToPoint;
    "rtx-5080", "NVIDIA GeForce RTX 5080 16GB", 15.44, 960.0, 112.6, "modelled: nvidia-smi 16303 MiB less the 0.48 GiB the RTX 5090 keeps", 120, 84, PointToPoint;
    "rtx-4080", "NVIDIA GeForce RTX 4080 16GB", 15.64, 717.0, 97.5, "modelled: nvidia-smi 16376 MiB less 0.35 GiB", 89, 76, PointToPoint;
    "rtx-4060-ti-16gb", "NVIDIA GeForce RTX 4060 Ti 16GB", 15.65, 288.0, 44.0, "modelled: nvidia-smi 16380 MiB less 0.35 GiB", 89, 34, PointToPoint;
    "rtx-3080", "NVIDIA GeForce RTX 3080 10GB", 9.65, 760.0, 59.5, "modelled: nvidia-smi 10240 MiB less 0.35 GiB", 86, 68, PointToPoint;
    "rtx-3060", "NVIDIA GeForce RTX 3060 12GB", 11.65, 360.0, 25.5, "modelled: nvidia-smi 12288 MiB less 0.35 GiB", 86, 28, PointToPoint;
    "rtx-2080-ti", "NVIDIA GeForce RTX 2080 Ti 11GB", 10.65, 616.0, 56.9, "modelled: nvidia-smi 11264 MiB less 0.35 GiB", 75, 68, PointToPoint;
}

/// GiB the CUDA driver keeps of a board's memory, for a GPU known only by its marketing size:
/// 0.35 on the GeForce totals above, 0.47 the median of the data-centre ones (0.35 to 0.85).
pub const DRIVER_RESERVE_GIB: f64 = 0.4;

/// Catalog GPUs by the words of their names, most specific first: the words in order, the
/// memory the name must state (if it decides between boards), and the entry (`None`: a board
/// the catalog does not hold, which a shorter pattern below would otherwise take).
const NAMES: &[(&[&str], Option<u32>, Option<&str>)] = &[
    (&["h100", "nvl"], None, Some("h100-nvl")),
    (&["h100", "pcie"], None, Some("h100-pcie")),
    (&["h100"], None, Some("h100-80gb")),
    (&["h800"], None, Some("h800")),
    (&["h200"], None, Some("h200")),
    (&["gh200", "144g"], None, Some("gh200-144gb")),
    (&["gh200"], Some(144), Some("gh200-144gb")),
    (&["gh200"], None, Some("gh200")),
    (&["h20"], Some(141), Some("h20-141gb")),
    (&["h20"], None, Some("h20")),
    (&["b200"], None, Some("b200")),
    (&["gb200"], None, Some("gb200")),
    (&["b300"], None, Some("b300")),
    (&["gb10"], None, Some("dgx-spark")),
    (&["dgx", "spark"], None, Some("dgx-spark")),
    (&["a100"], Some(40), Some("a100-40gb")),
    (&["a100"], None, Some("a100-80gb")),
    (&["a800"], Some(40), None),
    (&["a800"], None, Some("a800-80gb")),
    (&["a10g"], None, Some("a10g")),
    (&["a10"], None, Some("a10")),
    (&["a30"], None, Some("a30")),
    (&["a40"], None, Some("a40")),
    (&["l40s"], None, Some("l40s")),
    (&["l40"], None, Some("l40")),
    (&["l20"], None, Some("l20")),
    (&["l4"], None, Some("l4")),
    (&["t4"], None, Some("t4")),
    (&["v100"], Some(32), Some("v100-32gb")),
    (&["v100"], None, Some("v100-16gb")),
    (&["a6000"], None, Some("rtx-a6000")),
    (&["6000", "ada"], None, Some("rtx-6000-ada")),
    (&["pro", "6000"], None, Some("rtx-pro-6000")),
    (&["a5000"], None, Some("rtx-a5000")),
    (&["a4000"], None, Some("rtx-a4000")),
    (&["5090"], None, Some("rtx-5090")),
    (&["4090"], None, Some("rtx-4090")),
    (&["5080"], None, Some("rtx-5080")),
    (&["4080"], None, Some("rtx-4080")),
    (&["4060", "ti"], Some(16), Some("rtx-4060-ti-16gb")),
    (&["3090"], None, Some("rtx-3090")),
    (&["3080", "ti"], None, None),
    (&["3080"], Some(12), None),
    (&["3080"], None, Some("rtx-3080")),
    (&["3060", "ti"], None, None),
    (&["3060"], Some(8), None),
    (&["3060"], None, Some("rtx-3060")),
    (&["2080", "ti"], None, Some("rtx-2080-ti")),
    (&["mi300x"], None, Some("mi300x")),
    (&["mi325x"], None, Some("mi325x")),
    (&["mi355x"], None, Some("mi355x")),
];

/// The catalog entry a GPU's free-text name refers to (`NVIDIA A100-SXM4-40GB`,
/// `4x NVIDIA H100 NVL 94GB`, `Tesla T4`), matched on whole words (`GH200` is not an H200).
pub fn match_name(text: &str) -> Option<&'static Gpu> {
    let lower = text.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let digits = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    let stated_gb = words.iter().enumerate().find_map(|(i, w)| {
        let n = match w.strip_suffix("gb") {
            Some(n) if digits(n) => n,
            _ if digits(w) && words.get(i + 1) == Some(&"gb") => w,
            _ => return None,
        };
        n.parse::<u32>().ok()
    });
    let has = |seq: &[&str]| words.windows(seq.len()).any(|w| w == seq);
    let (_, _, id) = NAMES.iter().find(|(seq, gb, _)| has(seq) && gb.is_none_or(|g| stated_gb == Some(g)))?;
    id.and_then(|id| find(id).ok())
}

/// Looks a GPU up by catalog id (case-insensitive).
pub fn find(id: &str) -> Result<&'static Gpu> {
    let want = id.trim();
    CATALOG.iter().find(|g| g.id.eq_ignore_ascii_case(want)).ok_or_else(|| {
        let ids: Vec<&str> = CATALOG.iter().map(|g| g.id).collect();
        Error::scenario("gpu", id, format!("one of {}", ids.join(", ")))
    })
}

/// The `gpu` value of a memory size on no catalog board.
pub const CUSTOM: &str = "custom";

/// The largest custom memory a scenario accepts, GiB.
pub const MAX_CUSTOM_MEMORY_GIB: f64 = 4096.0;

/// The GPU of a scenario: a catalog entry, or a memory size the engine sees, optionally on a
/// catalog board (whose fabric, compute capability, bandwidth and engine defaults still apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuChoice {
    Catalog(String),
    Custom {
        memory_gib: f64,
        /// The catalog board whose memory this overrides (`gpu=h100-80gb&mem=79.0`); `None` for a
        /// GPU the catalog does not know (fabric, bandwidth and FLOP/s unknown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        board: Option<String>,
    },
}

impl GpuChoice {
    /// A memory size on no known board.
    pub fn custom(memory_gib: f64) -> GpuChoice {
        GpuChoice::Custom { memory_gib, board: None }
    }
    /// Memory per GPU in bytes.
    pub fn memory(&self) -> Result<Bytes> {
        match self {
            GpuChoice::Catalog(id) => Bytes::from_gib(find(id)?.memory_gib, "gpu"),
            GpuChoice::Custom { memory_gib, board } => {
                if let Some(b) = board {
                    find(b)?;
                }
                if !(memory_gib.is_finite() && *memory_gib > 0.0 && *memory_gib <= MAX_CUSTOM_MEMORY_GIB) {
                    return Err(Error::scenario("gpu_memory_gib", memory_gib, "a number of GiB between 0 and 4096"));
                }
                Bytes::from_gib(*memory_gib, "gpu_memory_gib")
            }
        }
    }
    /// The catalog board: the entry itself, or the board a memory size overrides.
    pub fn catalog(&self) -> Option<&'static Gpu> {
        match self {
            GpuChoice::Catalog(id) | GpuChoice::Custom { board: Some(id), .. } => find(id).ok(),
            GpuChoice::Custom { board: None, .. } => None,
        }
    }
    /// Whether the memory is given rather than the catalog's (SGLang reads a given size as the
    /// free memory at load).
    pub fn memory_is_given(&self) -> bool {
        matches!(self, GpuChoice::Custom { .. })
    }
    pub fn label(&self) -> String {
        match self {
            GpuChoice::Catalog(id) => find(id).map_or_else(|_| id.clone(), |g| g.name.to_string()),
            GpuChoice::Custom { memory_gib, board: None } => format!("custom {memory_gib} GiB"),
            GpuChoice::Custom { memory_gib, board: Some(id) } => {
                format!("{} with {memory_gib} GiB", find(id).map_or_else(|_| id.clone(), |g| g.name.to_string()))
            }
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
        assert!(GpuChoice::custom(f64::NAN).memory().is_err());
        let board = GpuChoice::Custom { memory_gib: 139.8, board: Some("h20-141gb".into()) };
        assert_eq!(board.catalog().map(|g| g.id), Some("h20-141gb"));
        assert!((board.memory().unwrap().gib() - 139.8).abs() < 1e-9);
        assert_eq!(board.label(), "NVIDIA H20 141GB with 139.8 GiB");
        assert!(GpuChoice::Custom { memory_gib: 80.0, board: Some("h999".into()) }.memory().is_err());
    }

    #[test]
    fn names_in_logs_find_their_entry() {
        let id = |t: &str| match_name(t).map(|g| g.id);
        assert_eq!(id("NVIDIA A100-SXM4-40GB"), Some("a100-40gb"));
        assert_eq!(id("2x NVIDIA A100-PCIE-40GB"), Some("a100-40gb"));
        assert_eq!(id("NVIDIA A100 80GB"), Some("a100-80gb"));
        assert_eq!(id("4x NVIDIA H100 NVL 94GB"), Some("h100-nvl"));
        assert_eq!(id("NVIDIA H100 80GB HBM3"), Some("h100-80gb"));
        assert_eq!(id("8x NVIDIA H20 (141GB variant)"), Some("h20-141gb"));
        assert_eq!(id("NVIDIA H20"), Some("h20"));
        assert_eq!(id("Tesla V100-SXM2-32GB"), Some("v100-32gb"));
        assert_eq!(id("NVIDIA GeForce RTX 4090 24GB (WSL2)"), Some("rtx-4090"));
        assert_eq!(id("NVIDIA GeForce RTX 3060 12GB"), Some("rtx-3060"));
        assert_eq!(id("4x NVIDIA L4 24GB (AWS g6.12xlarge)"), Some("l4"));
        assert_eq!(id("NVIDIA L40 48GB"), Some("l40"));
        assert_eq!(id("NVIDIA RTX 6000 Ada Generation"), Some("rtx-6000-ada"));
        assert_eq!(id("RTX 4060 Ti 16GB"), Some("rtx-4060-ti-16gb"));
        // Grace Hopper by the names nvidia-smi gives it (the 96 GB board says "480GB", its
        // LPDDR included), the RTX PRO 6000 by its edition's name
        assert_eq!(id("NVIDIA GH200 480GB"), Some("gh200"));
        assert_eq!(id("NVIDIA GH200 96GB"), Some("gh200"));
        assert_eq!(id("NVIDIA GH200 144G HBM3e"), Some("gh200-144gb"));
        assert_eq!(id("NVIDIA RTX PRO 6000 Blackwell Workstation Edition"), Some("rtx-pro-6000"));
        assert_eq!(id("NVIDIA RTX PRO 6000 Blackwell Server Edition"), Some("rtx-pro-6000"));
        assert_eq!(id("NVIDIA GeForce RTX 5080"), Some("rtx-5080"));
        // Grace Blackwell, Blackwell Ultra and DGX Spark by the names nvidia-smi prints
        assert_eq!(id("NVIDIA GB200"), Some("gb200"));
        assert_eq!(id("NVIDIA B300 SXM6 AC"), Some("b300"));
        assert_eq!(id("NVIDIA GB10"), Some("dgx-spark"));
        assert_eq!(id("AMD Instinct MI355X"), Some("mi355x"));
        // boards the catalog does not hold are not taken for a neighbour
        assert_eq!(id("NVIDIA GB300"), None);
        assert_eq!(id("NVIDIA GeForce RTX 3060 Ti 8GB"), None);
        assert_eq!(id("RTX 3080 Ti"), None);
        assert_eq!(id("RTX 4060 Ti 8GB"), None);
        assert_eq!(id("NVIDIA GeForce RTX 4070 Laptop GPU 8GB"), None);
        assert_eq!(id("AMD Radeon RX 7900 XTX 24GB"), None);
        // every pattern names an entry that exists
        for (_, _, id) in NAMES {
            if let Some(id) = id {
                assert!(find(id).is_ok(), "{id}");
            }
        }
    }
}
