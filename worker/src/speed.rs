//! The switches that change how fast a job trains but not what it computes (beyond summation
//! order): how grid stages run and the memory layout. Each is recorded in the result's
//! environment. The defaults follow what was measured: see `Speed::default_for`. Precision (TF32)
//! changes what is computed, so it is the job's setting (`TrainConfig::precision`), not a switch.

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::layout::MemoryFormat;
use crate::models::GridExec;

/// Resolved speed switches of one training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Speed {
    /// Node by node or one batched step per anti-diagonal (grid only).
    pub grid_exec: GridExec,
    /// Layout of images, activations and convolution weights.
    pub memory_format: MemoryFormat,
}

impl Speed {
    /// The defaults on `device`: contiguous everywhere; node by node on the CPU, wavefront on
    /// CUDA. CPU measurements (2 threads, release build, `worker bench --compare`): the wavefront
    /// ran 0.8-0.97x of node by node; channels-last ran resnet and node-by-node grid 1.15-1.4x
    /// faster, but its fp32 weight gradients were much further from an fp64 reference (depth 26,
    /// worst parameter 1.2-2.0e-2 relative vs 5e-6-5e-4 contiguous; PyTorch's own channels-last
    /// shows the same), so it stays opt-in. On CUDA the node-by-node step is bound by kernel
    /// launches, which the wavefront cuts ~4.6x at depth 1538; neither switch has been measured
    /// on a GPU yet (`scripts/gpu-check.sh` measures both).
    pub fn default_for(device: Device) -> Self {
        let grid_exec = if device.is_cuda() { GridExec::Wavefront } else { GridExec::Sequential };
        Speed { grid_exec, memory_format: MemoryFormat::Contiguous }
    }
}

/// The command-line form: each switch unset means the device's default.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct SpeedFlags {
    /// How grid stages run: node by node or one batched step per anti-diagonal (default:
    /// sequential on CPU, wavefront on CUDA).
    #[arg(long, value_enum)]
    pub grid_exec: Option<GridExec>,
    /// Memory layout of images, activations and convolution weights (default: contiguous;
    /// channels-last ran 1.15-1.4x faster on CPU but with noisier fp32 gradients).
    #[arg(long, value_enum)]
    pub memory_format: Option<MemoryFormat>,
}

impl SpeedFlags {
    /// The flags over the defaults of `device`.
    pub fn resolve(self, device: Device) -> Speed {
        let d = Speed::default_for(device);
        Speed {
            grid_exec: self.grid_exec.unwrap_or(d.grid_exec),
            memory_format: self.memory_format.unwrap_or(d.memory_format),
        }
    }

    /// The same flags as command-line arguments, for a child process.
    pub fn to_args(self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = self.grid_exec {
            out.extend(["--grid-exec".to_owned(), e.name().to_owned()]);
        }
        if let Some(f) = self.memory_format {
            out.extend(["--memory-format".to_owned(), f.name().to_owned()]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        speed: SpeedFlags,
    }

    #[test]
    fn flags_override_defaults_and_round_trip() {
        let none = Cli::parse_from(["x"]).speed;
        assert_eq!(none.resolve(Device::Cpu), Speed::default_for(Device::Cpu));
        assert_eq!(none.resolve(Device::Cuda(0)).grid_exec, GridExec::Wavefront);
        assert!(none.to_args().is_empty());
        let all = Cli::parse_from(["x", "--grid-exec", "wavefront", "--memory-format", "channels-last"]).speed;
        let s = all.resolve(Device::Cpu);
        assert_eq!(s, Speed { grid_exec: GridExec::Wavefront, memory_format: MemoryFormat::ChannelsLast });
        let again = Cli::parse_from(std::iter::once("x".to_owned()).chain(all.to_args())).speed;
        assert_eq!(again.resolve(Device::Cpu), s);
    }
}
