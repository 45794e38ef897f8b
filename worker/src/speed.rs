//! The switches that change how fast a job trains but not what it computes (beyond summation
//! order): how grid stages run and the memory layout. Each is recorded in the result's
//! environment. The defaults follow what was measured on the CPU (`Speed::default_for`); the CUDA
//! grid execution's default by grid side (`default_grid_exec`) awaits GPU figures. Precision (TF32)
//! changes what is computed, so it is the job's setting (`TrainConfig::precision`), not a switch.

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::layout::MemoryFormat;
use crate::models::{GridExec, ModelSpec};

/// Speed switches of one training run, resolved against the device. The grid execution's
/// default also depends on the grid (see `default_grid_exec`), so it is resolved per model by
/// `Speed::grid_exec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Speed {
    /// How grid stages run when asked for (`--grid-exec`); `None`: the default for the device
    /// and the grid's side.
    pub grid_exec: Option<GridExec>,
    /// Whether training runs on CUDA: the grid execution's default differs there.
    pub cuda: bool,
    /// Layout of images, activations and convolution weights.
    pub memory_format: MemoryFormat,
}

/// The grid execution used when none is asked for: node by node on the CPU, where the wavefront
/// ran 0.8-0.97x of it (2 threads, release build, `worker bench --compare`); on CUDA node by node
/// for grids of side R <= 2 (depth 26) and the wavefront from R = 3 on. The CUDA rule is read
/// from the work each does, not yet measured: at R = 2 a stage's 4 blocks take 3 wavefront
/// steps instead of 4 (one block saved) while every forward concatenates the diagonal's
/// weights, so the wavefront's gain cannot pay for its copies there; at depth 1538 (R = 16) it
/// cuts a stage's 256 blocks to 31 steps, ~4.6x fewer launches for a launch-bound step. It
/// awaits GPU figures from `scripts/gpu-check.sh` (`bench --compare` at depth 26 and 1538).
/// vgg and resnet have no grid: node by node, which is all they do.
pub fn default_grid_exec(cuda: bool, spec: ModelSpec) -> GridExec {
    match spec.grid_side() {
        Some(side) if cuda && side > 2 => GridExec::Wavefront,
        _ => GridExec::Sequential,
    }
}

impl Speed {
    /// The defaults on `device`: contiguous everywhere, and the grid execution of
    /// `default_grid_exec`. Channels-last ran resnet and node-by-node grid 1.15-1.4x faster on
    /// the CPU, but its fp32 weight gradients were much further from an fp64 reference (depth 26,
    /// worst parameter 1.2-2.0e-2 relative vs 5e-6-5e-4 contiguous; PyTorch's own channels-last
    /// shows the same), so it stays opt-in; it has not been measured on a GPU yet
    /// (`scripts/gpu-check.sh` measures it).
    pub fn default_for(device: Device) -> Self {
        Speed { grid_exec: None, cuda: device.is_cuda(), memory_format: MemoryFormat::Contiguous }
    }

    /// How `spec`'s grid stages run: as asked for, else the default for the device and its side.
    pub fn grid_exec(&self, spec: ModelSpec) -> GridExec {
        self.grid_exec.unwrap_or_else(|| default_grid_exec(self.cuda, spec))
    }

    /// The grid execution of models of any size, for a record that covers several (a
    /// calibration): the one asked for, or the default's rule in words.
    pub fn grid_exec_label(&self) -> String {
        match (self.grid_exec, self.cuda) {
            (Some(e), _) => e.name().to_owned(),
            (None, false) => GridExec::Sequential.name().to_owned(),
            (None, true) => "sequential at grid side <= 2, else wavefront".to_owned(),
        }
    }
}

/// The command-line form: each switch unset means the device's default.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct SpeedFlags {
    /// How grid stages run: node by node or one batched step per anti-diagonal (default:
    /// sequential on CPU; on CUDA sequential for a grid of side 2 (depth 26), wavefront for
    /// larger ones).
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
            grid_exec: self.grid_exec.or(d.grid_exec),
            cuda: d.cuda,
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
    fn the_default_grid_execution_follows_the_device_and_the_side() {
        use crate::models::Arch;
        let none = Cli::parse_from(["x"]).speed;
        assert_eq!(none.resolve(Device::Cpu), Speed::default_for(Device::Cpu));
        let (cpu, cuda) = (none.resolve(Device::Cpu), none.resolve(Device::Cuda(0)));
        for (depth, side) in [(26, 2), (98, 4), (386, 8), (1538, 16)] {
            let grid = ModelSpec::new(Arch::Grid, depth).unwrap();
            assert_eq!(grid.grid_side(), Some(side));
            assert_eq!(cpu.grid_exec(grid), GridExec::Sequential, "cpu, depth {depth}");
            let want = if side <= 2 { GridExec::Sequential } else { GridExec::Wavefront };
            assert_eq!(cuda.grid_exec(grid), want, "cuda, depth {depth}");
            let resnet = ModelSpec::new(Arch::Resnet, depth).unwrap();
            assert_eq!(cuda.grid_exec(resnet), GridExec::Sequential);
        }
        assert_eq!(cpu.grid_exec_label(), "sequential");
    }

    #[test]
    fn flags_override_defaults_and_round_trip() {
        let none = Cli::parse_from(["x"]).speed;
        assert!(none.to_args().is_empty());
        let all = Cli::parse_from(["x", "--grid-exec", "wavefront", "--memory-format", "channels-last"]).speed;
        let s = all.resolve(Device::Cpu);
        assert_eq!(
            s,
            Speed { grid_exec: Some(GridExec::Wavefront), cuda: false, memory_format: MemoryFormat::ChannelsLast }
        );
        let grid26 = ModelSpec::new(crate::models::Arch::Grid, 26).unwrap();
        assert_eq!(all.resolve(Device::Cuda(0)).grid_exec(grid26), GridExec::Wavefront);
        let again = Cli::parse_from(std::iter::once("x".to_owned()).chain(all.to_args())).speed;
        assert_eq!(again.resolve(Device::Cpu), s);
    }
}
