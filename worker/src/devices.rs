//! `worker devices`: which libtorch this process runs on and which CUDA devices it sees.
//!
//! libtorch tells whether CUDA and cuDNN are usable; device names and memory come from the CUDA
//! driver API (`libcuda.so.1`, loaded at run time), whose few calls used here have a stable C ABI.

use std::ffi::{CStr, c_char, c_int};

use serde::Serialize;

/// One CUDA device.
#[derive(Clone, Debug, Serialize)]
pub struct CudaDevice {
    /// Ordinal, as in `cuda:N`.
    pub index: i64,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Total device memory in bytes.
    pub total_memory_bytes: u64,
    /// Compute capability, "9.0".
    pub compute_capability: String,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceReport {
    /// The libtorch loaded by this process (read from the `version.py` beside it).
    pub libtorch_version: String,
    /// The libtorch this binary was built against.
    pub libtorch_build_version: String,
    /// Whether libtorch can use CUDA.
    pub cuda_available: bool,
    /// Whether libtorch can use cuDNN.
    pub cudnn_available: bool,
    /// cuDNN version as libtorch reports it (e.g. 91002), when available.
    pub cudnn_version: Option<i64>,
    /// CUDA devices libtorch sees.
    pub cuda_device_count: i64,
    /// Their details; empty without CUDA.
    pub cuda_devices: Vec<CudaDevice>,
    /// Why device details are missing, when libtorch sees devices the driver API could not name.
    pub cuda_details_error: Option<String>,
    /// Intra-op CPU threads libtorch uses.
    pub cpu_threads: i32,
}

impl DeviceReport {
    /// Probes libtorch and the CUDA driver.
    pub fn probe() -> Self {
        let cuda_available = tch::Cuda::is_available();
        let cudnn_available = cuda_available && tch::Cuda::cudnn_is_available();
        let count = if cuda_available { tch::Cuda::device_count() } else { 0 };
        let (cuda_devices, cuda_details_error) = match count {
            0 => (Vec::new(), None),
            n => match driver_devices(n) {
                Ok(d) => (d, None),
                Err(e) => (Vec::new(), Some(e)),
            },
        };
        DeviceReport {
            libtorch_version: runtime_libtorch_version().unwrap_or_else(|| "unknown".to_owned()),
            libtorch_build_version: env!("GRIDSWEEP_LIBTORCH_BUILD_VERSION").to_owned(),
            cuda_available,
            cudnn_available,
            cudnn_version: cudnn_available.then(tch::utils::version_cudnn),
            cuda_device_count: count,
            cuda_devices,
            cuda_details_error,
            cpu_threads: tch::get_num_threads(),
        }
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "libtorch       {} (built against {})\ncuda           {}\ncudnn          {}\ncpu threads    {}\n",
            self.libtorch_version,
            self.libtorch_build_version,
            if self.cuda_available {
                format!("available, {} device(s)", self.cuda_device_count)
            } else {
                "not available".to_owned()
            },
            match (self.cudnn_available, self.cudnn_version) {
                (true, Some(v)) => format!("available, version {v}"),
                _ => "not available".to_owned(),
            },
            self.cpu_threads,
        );
        for d in &self.cuda_devices {
            s += &format!(
                "cuda:{}         {}, {:.1} GiB, compute capability {}\n",
                d.index,
                d.name,
                d.total_memory_bytes as f64 / (1u64 << 30) as f64,
                d.compute_capability
            );
        }
        if let Some(e) = &self.cuda_details_error {
            s += &format!("device details unavailable: {e}\n");
        }
        s
    }
}

/// The version of the libtorch mapped into this process: `version.py` in the torch package
/// directory that holds `lib/libtorch_cpu.so`.
fn runtime_libtorch_version() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with("/libtorch_cpu.so"))?;
    let torch_dir = std::path::Path::new(lib).parent()?.parent()?;
    let text = std::fs::read_to_string(torch_dir.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_owned())
}

type CuInit = unsafe extern "C" fn(u32) -> c_int;
type CuDeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type CuDeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type CuDeviceTotalMem = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
type CuDeviceGetAttribute = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;

/// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR.
const CC_MAJOR: c_int = 75;
const CC_MINOR: c_int = 76;

/// Names and memory of the first `count` devices, from the CUDA driver API.
pub(crate) fn driver_devices(count: i64) -> Result<Vec<CudaDevice>, String> {
    // SAFETY: libcuda.so.1 is the NVIDIA driver library; loading it runs no user code beyond
    // its initialisers, which libtorch has already run when CUDA is available.
    let lib = unsafe { libloading::Library::new("libcuda.so.1") }.map_err(|e| format!("loading libcuda.so.1: {e}"))?;
    // SAFETY: the signatures match the CUDA driver API (cuda.h) for these symbols.
    unsafe {
        let init: libloading::Symbol<'_, CuInit> = lib.get(b"cuInit\0").map_err(|e| e.to_string())?;
        let get: libloading::Symbol<'_, CuDeviceGet> = lib.get(b"cuDeviceGet\0").map_err(|e| e.to_string())?;
        let name: libloading::Symbol<'_, CuDeviceGetName> = lib.get(b"cuDeviceGetName\0").map_err(|e| e.to_string())?;
        let mem: libloading::Symbol<'_, CuDeviceTotalMem> =
            lib.get(b"cuDeviceTotalMem_v2\0").map_err(|e| e.to_string())?;
        let attr: libloading::Symbol<'_, CuDeviceGetAttribute> =
            lib.get(b"cuDeviceGetAttribute\0").map_err(|e| e.to_string())?;
        check(init(0), "cuInit")?;
        let mut out = Vec::new();
        for index in 0..count {
            let mut dev: c_int = 0;
            check(get(&mut dev, index as c_int), "cuDeviceGet")?;
            let mut buf = [0 as c_char; 256];
            check(name(buf.as_mut_ptr(), buf.len() as c_int, dev), "cuDeviceGetName")?;
            let mut bytes: usize = 0;
            check(mem(&mut bytes, dev), "cuDeviceTotalMem")?;
            let (mut major, mut minor): (c_int, c_int) = (0, 0);
            check(attr(&mut major, CC_MAJOR, dev), "cuDeviceGetAttribute")?;
            check(attr(&mut minor, CC_MINOR, dev), "cuDeviceGetAttribute")?;
            out.push(CudaDevice {
                index,
                name: CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned(),
                total_memory_bytes: bytes as u64,
                compute_capability: format!("{major}.{minor}"),
            });
        }
        Ok(out)
    }
}

/// The memory of `device` in bytes: a GPU's total memory (CUDA driver API), or for the CPU the
/// machine's RAM (`MemTotal` of /proc/meminfo); None when it cannot be read.
pub fn device_memory_bytes(device: tch::Device) -> Option<u64> {
    match device {
        tch::Device::Cuda(i) => {
            let devices = driver_devices(i as i64 + 1).ok()?;
            devices.get(i).map(|d| d.total_memory_bytes)
        }
        _ => {
            let text = std::fs::read_to_string("/proc/meminfo").ok()?;
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        }
    }
}

/// The environment variable through which `worker --slots K` tells each of its K child workers
/// how many slots share the device (`slots::Slots` sets it; a worker started alone has none).
pub const SLOT_SHARE_ENV: &str = "GRIDSWEEP_SLOT_SHARE";

/// The memory this worker registers with the coordinator, which records it as the need of a job
/// that ran out of memory here: `device_memory_bytes` divided among the slots sharing the device
/// (`SLOT_SHARE_ENV`; one when unset or not a positive number).
///
/// Each slot gets an equal share of the device's total memory rather than the device's free
/// memory at start: slots start together, so the free memory each would see depends on which
/// neighbour allocated first, while the share is the same for every slot on every identical
/// card. With the share, a job that overflowed one slot records "needs more than 1/K of the
/// device", so a worker with fewer slots on the same card (or a bigger card) can still take it;
/// with the whole device registered, a job pushed out by its neighbours would record a need no
/// card of the cluster meets, and stay blocked for ever.
pub fn registered_memory_bytes(device: tch::Device) -> Option<u64> {
    Some(share_of(device_memory_bytes(device)?, std::env::var(SLOT_SHARE_ENV).ok().as_deref()))
}

/// `total` divided by the slot count `slots` (`SLOT_SHARE_ENV`'s value; one slot when absent or
/// not a positive number).
fn share_of(total: u64, slots: Option<&str>) -> u64 {
    total / slots.and_then(|v| v.parse::<u64>().ok()).filter(|&k| k > 0).unwrap_or(1)
}

/// A CUDA driver status as a Result.
fn check(status: c_int, call: &str) -> Result<(), String> {
    if status == 0 { Ok(()) } else { Err(format!("{call} failed with CUDA error {status}")) }
}

#[cfg(test)]
mod memory_tests {
    #[test]
    fn the_cpus_memory_is_the_machines_ram() {
        let bytes = super::device_memory_bytes(tch::Device::Cpu).expect("/proc/meminfo on Linux");
        assert!(bytes > 256 << 20, "{bytes} bytes of RAM");
    }

    #[test]
    fn a_slot_registers_its_share_of_the_device() {
        let gib = 1u64 << 30;
        for (value, share) in [
            (None, 80 * gib),
            (Some("4"), 20 * gib),
            (Some("3"), 80 * gib / 3),
            (Some("0"), 80 * gib),
            (Some("x"), 80 * gib),
        ] {
            assert_eq!(super::share_of(80 * gib, value), share, "{value:?}");
        }
    }
}
