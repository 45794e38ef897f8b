//! `worker inspect`: a model's size, cost and shape, read off the model as built.

use serde::Serialize;
use tch::{Device, nn};

use crate::models::{ModelSpec, Net};

/// What `worker inspect` reports; field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// vgg, resnet or grid.
    pub arch: String,
    /// Layers with weights.
    pub depth: u32,
    /// Trainable parameters.
    pub params: u64,
    /// FLOPs for one 3x32x32 image, thop's convention.
    pub flops: u64,
    /// Residual blocks in all three stages.
    pub blocks: usize,
    /// R for a grid, null otherwise.
    pub grid_side: Option<usize>,
    /// Most blocks' bodies an input-to-output path passes.
    pub longest_path_blocks: u64,
    /// Fewest blocks' bodies an input-to-output path passes (0 where every block can be
    /// skipped through its shortcut).
    pub shortest_path_blocks: u64,
}

impl Inspection {
    /// Reads the figures off a built network.
    pub fn of(net: &Net) -> Self {
        let cost = net.cost();
        let (shortest, longest) = net.path_range();
        Inspection {
            arch: net.spec.arch.name().to_owned(),
            depth: net.spec.depth,
            params: cost.params,
            flops: cost.flops,
            blocks: net.blocks(),
            grid_side: net.spec.grid_side(),
            longest_path_blocks: longest,
            shortest_path_blocks: shortest,
        }
    }

    /// Builds `spec` on the CPU and inspects it.
    pub fn build(spec: ModelSpec) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Net::new(&vs.root(), spec);
        Self::of(&net)
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let grid = self.grid_side.map_or_else(|| "-".to_owned(), |r| format!("{r} (stages of {r}x{r} blocks)"));
        format!(
            "arch           {}\ndepth          {}\nparams         {} ({:.2}M)\nflops          {} ({:.2}M)\n\
             blocks         {} (3 stages of {})\ngrid side R    {}\nlongest path   {} blocks\n\
             shortest path  {} blocks\n",
            self.arch,
            self.depth,
            thousands(self.params),
            self.params as f64 / 1e6,
            thousands(self.flops),
            self.flops as f64 / 1e6,
            self.blocks,
            self.blocks / 3,
            grid,
            self.longest_path_blocks,
            self.shortest_path_blocks,
        )
    }
}

/// 24868122 -> "24,868,122".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(24_868_122), "24,868,122");
    }
}
