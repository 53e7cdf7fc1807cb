//! The device a sweep runs on and how its memory is read: on CPU the counting allocator (exact
//! live and peak bytes); on CUDA (feature `cuda`) the driver's used memory (`total - free`) and a
//! peak sampled by a polling thread every 200 µs, the context baseline being what is used before
//! the model loads. Also real safetensors weights (memory-mapped).

use super::alloc;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

/// Facts about the device for the provenance.
#[derive(Debug, Default)]
pub struct Info {
    pub gpu: Option<String>,
    pub driver: Option<String>,
    pub cuda: Option<String>,
}

/// The memory probe of one device.
pub struct Probe {
    device: Device,
    label: String,
    total: u64,
    #[cfg(feature = "cuda")]
    cuda: Option<cuda::Sampler>,
}

/// Physical memory of this machine (`MemTotal` of /proc/meminfo).
pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `nvidia-smi` facts (name, driver, CUDA) of GPU `index`, when the tool is there.
pub fn nvidia_smi(index: usize) -> Info {
    let q = std::process::Command::new("nvidia-smi").args(["--query-gpu=name,driver_version", "--format=csv,noheader"]).output().ok().filter(|o| o.status.success());
    let line = q.and_then(|o| String::from_utf8_lossy(&o.stdout).lines().nth(index).map(str::to_string));
    let cuda = std::process::Command::new("nvidia-smi")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).split("CUDA Version:").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string));
    match line {
        Some(l) => {
            let mut it = l.split(',').map(|x| x.trim().to_string());
            Info { gpu: it.next(), driver: it.next(), cuda }
        }
        None => Info::default(),
    }
}

impl Probe {
    /// `cpu`, `cuda` or `cuda:N`; on CPU an optional soft cap in GiB.
    pub fn new(spec: &str, cap_gib: Option<f64>) -> Result<Probe> {
        let spec = spec.trim().to_ascii_lowercase();
        if spec == "cpu" {
            let cap = match cap_gib {
                Some(g) if g.is_finite() && g > 0.0 => Some((g * (1u64 << 30) as f64) as u64),
                Some(g) => bail!("--memory-cap {g}: expected a positive number of GiB"),
                None => None,
            };
            alloc::set_cap(cap);
            let total = cap.or_else(host_memory).unwrap_or(u64::MAX / 4);
            return Ok(Probe {
                device: Device::Cpu,
                label: "cpu".into(),
                total,
                #[cfg(feature = "cuda")]
                cuda: None,
            });
        }
        let ordinal: usize = match spec.strip_prefix("cuda") {
            Some("") => 0,
            Some(rest) => rest.trim_start_matches(':').parse().with_context(|| format!("--device `{spec}`: expected cpu, cuda or cuda:N"))?,
            None => bail!("--device `{spec}`: expected cpu, cuda or cuda:N"),
        };
        if cap_gib.is_some() {
            bail!("--memory-cap applies to --device cpu; a GPU's memory is its own cap");
        }
        Self::cuda(ordinal)
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda(ordinal: usize) -> Result<Probe> {
        bail!("--device cuda:{ordinal}: this kv-runner was built without CUDA; build it with `cargo build --release -p kv-runner --features cuda` (README: \"Measuring on a GPU\")")
    }

    #[cfg(feature = "cuda")]
    fn cuda(ordinal: usize) -> Result<Probe> {
        let device = Device::new_cuda(ordinal).with_context(|| format!("opening cuda:{ordinal}"))?;
        let sampler = cuda::Sampler::start(&device)?;
        let total = sampler.total();
        Ok(Probe { device, label: format!("cuda:{ordinal}"), total, cuda: Some(sampler) })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn label(&self) -> String {
        self.label.clone()
    }
    pub fn is_cpu(&self) -> bool {
        matches!(self.device, Device::Cpu)
    }
    /// Memory the device has for the run (the cap on CPU when set).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes in use now.
    pub fn current(&self) -> u64 {
        #[cfg(feature = "cuda")]
        if let Some(s) = &self.cuda {
            return s.used();
        }
        alloc::current()
    }
    /// Bytes of tensor storage in use now: on CPU without tensor bookkeeping (see
    /// `alloc::BULK`); on CUDA all of the device's used memory (bookkeeping lives on the host).
    pub fn storage(&self) -> u64 {
        #[cfg(feature = "cuda")]
        if let Some(s) = &self.cuda {
            return s.used();
        }
        alloc::bulk()
    }
    /// Highest bytes in use since [`Probe::reset_peak`].
    pub fn peak(&self) -> u64 {
        #[cfg(feature = "cuda")]
        if let Some(s) = &self.cuda {
            return s.peak();
        }
        alloc::peak()
    }
    pub fn reset_peak(&self) {
        #[cfg(feature = "cuda")]
        if let Some(s) = &self.cuda {
            s.reset_peak();
            return;
        }
        alloc::reset_peak()
    }
    /// The CPU soft cap was passed (GPU out-of-memory shows as an error instead).
    pub fn over_cap(&self) -> bool {
        self.is_cpu() && alloc::take_over_cap()
    }
    /// Waits for queued work (CUDA); nothing on CPU.
    pub fn sync(&self, device: &Device) -> Result<()> {
        device.synchronize()?;
        Ok(())
    }
    /// Lets freed memory return before a reading (CUDA frees are stream-ordered).
    pub fn settle(&self, device: &Device) {
        let _ = device.synchronize();
        #[cfg(feature = "cuda")]
        if let Some(s) = &self.cuda {
            s.refresh();
        }
    }
    pub fn info(&self) -> Info {
        match &self.device {
            Device::Cpu => Info::default(),
            _ => nvidia_smi(self.label.trim_start_matches("cuda:").parse().unwrap_or(0)),
        }
    }
}

/// Real weights: every `*.safetensors` file of `path` (a file or a folder), memory-mapped.
pub fn safetensors(path: &str, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    let p = std::path::Path::new(path);
    let files: Vec<std::path::PathBuf> = if p.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|f| f.extension().is_some_and(|x| x == "safetensors")).collect();
        v.sort();
        v
    } else if p.is_file() {
        vec![p.to_path_buf()]
    } else {
        bail!("--weights `{path}`: expected random, zeros, a .safetensors file or a folder of them");
    };
    if files.is_empty() {
        bail!("--weights `{path}`: no .safetensors files in that folder");
    }
    // SAFETY: the files are mapped read-only and must not change while the sweep runs; that is
    // the contract of every safetensors loader (candle's own examples map them the same way).
    #[allow(unsafe_code)]
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device) }.with_context(|| format!("mapping {path}"))?;
    Ok(vb)
}

#[cfg(feature = "cuda")]
mod cuda {
    //! Used-memory readings and a polled peak on one CUDA device.
    use anyhow::Result;
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    use candle_core::Device;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    pub struct Sampler {
        ctx: Arc<CudaContext>,
        total: u64,
        used: Arc<AtomicU64>,
        peak: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    }

    impl Sampler {
        pub fn start(device: &Device) -> Result<Sampler> {
            let ctx = device.as_cuda_device()?.cuda_stream().context().clone();
            let (free, total) = ctx.mem_get_info()?;
            let used = Arc::new(AtomicU64::new((total - free) as u64));
            let peak = Arc::new(AtomicU64::new((total - free) as u64));
            let stop = Arc::new(AtomicBool::new(false));
            let (c, u, p, s) = (ctx.clone(), used.clone(), peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Ok((free, total)) = c.mem_get_info() {
                        let now = (total - free) as u64;
                        u.store(now, Ordering::Relaxed);
                        p.fetch_max(now, Ordering::Relaxed);
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            });
            Ok(Sampler { ctx, total: total as u64, used, peak, stop })
        }
        pub fn total(&self) -> u64 {
            self.total
        }
        pub fn refresh(&self) {
            if let Ok((free, total)) = self.ctx.mem_get_info() {
                let now = (total - free) as u64;
                self.used.store(now, Ordering::Relaxed);
                self.peak.fetch_max(now, Ordering::Relaxed);
            }
        }
        pub fn used(&self) -> u64 {
            self.refresh();
            self.used.load(Ordering::Relaxed)
        }
        pub fn peak(&self) -> u64 {
            self.refresh();
            self.peak.load(Ordering::Relaxed)
        }
        pub fn reset_peak(&self) {
            self.refresh();
            self.peak.store(self.used.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    impl Drop for Sampler {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}
