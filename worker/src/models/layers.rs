//! The building blocks shared by the three architectures: a convolution with its batch norm, the
//! CIFAR BasicBlock, and the cost accounting each layer does for itself (thop's convention).

use std::ops::{Add, AddAssign};

use tch::Tensor;
use tch::nn::{self, ModuleT};

/// What one layer costs: trainable parameters and FLOPs for one 3x32x32 image, counted the way
/// `thop` counts (conv/linear multiply-accumulates, 4 per batch-norm output element, k+1 per
/// average-pool output element, nothing for ReLU, additions and averages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Number of trainable scalars (running statistics are buffers, not parameters).
    pub params: u64,
    /// Operations for one forward pass of one image.
    pub flops: u64,
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost { params: self.params + o.params, flops: self.flops + o.flops }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

/// The shape of one image's feature map, which each layer maps to its output shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Channels.
    pub c: i64,
    /// Height.
    pub h: i64,
    /// Width.
    pub w: i64,
}

impl Shape {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        (self.c * self.h * self.w) as u64
    }
}

/// Number of elements of a tensor, as a count.
pub(crate) fn numel(t: &Tensor) -> u64 {
    t.size().iter().product::<i64>() as u64
}

/// A bias-free convolution followed by batch normalisation; the pair every block is made of.
#[derive(Debug)]
pub struct ConvBn {
    /// The convolution; weights Kaiming-normal (fan-out, ReLU), no bias.
    pub conv: nn::Conv2D,
    /// Its batch norm; weight 1, bias 0.
    pub bn: nn::BatchNorm,
    /// Kept for the cost and shape arithmetic (tch keeps the conv's config private).
    stride: i64,
    /// Zero padding on each side, likewise.
    padding: i64,
}

impl ConvBn {
    /// A `k`x`k` convolution registered as `conv_name` and its batch norm as `bn_name` under `p`.
    pub fn new(p: &nn::Path<'_>, conv_name: &str, bn_name: &str, c_in: i64, c_out: i64, k: i64, stride: i64) -> Self {
        let padding = k / 2;
        let conv_cfg = nn::ConvConfig {
            stride,
            padding,
            bias: false,
            ws_init: nn::Init::Kaiming {
                dist: nn::init::NormalOrUniform::Normal,
                fan: nn::init::FanInOut::FanOut,
                non_linearity: nn::init::NonLinearity::ReLU,
            },
            ..Default::default()
        };
        let bn_cfg =
            nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), ..Default::default() };
        ConvBn {
            conv: nn::conv2d(p / conv_name, c_in, c_out, k, conv_cfg),
            bn: nn::batch_norm2d(p / bn_name, c_out, bn_cfg),
            stride,
            padding,
        }
    }

    /// conv, then batch norm (batch statistics when `train`, running statistics otherwise).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.conv).apply_t(&self.bn, train)
    }

    /// The output shape for `input` and what this pair costs on it.
    pub fn cost(&self, input: Shape) -> (Shape, Cost) {
        let size = self.conv.ws.size();
        let (c_out, c_in, k) = (size[0], size[1], size[2]);
        let out_hw = |x: i64| (x + 2 * self.padding - k) / self.stride + 1;
        let out = Shape { c: c_out, h: out_hw(input.h), w: out_hw(input.w) };
        debug_assert_eq!(c_in, input.c);
        let conv_flops = out.numel() * (c_in * k * k) as u64;
        let bn_flops = 4 * out.numel();
        let params = numel(&self.conv.ws)
            + self.conv.bs.as_ref().map_or(0, numel)
            + self.bn.ws.as_ref().map_or(0, numel)
            + self.bn.bs.as_ref().map_or(0, numel);
        (out, Cost { params, flops: conv_flops + bn_flops })
    }
}

/// How a block's input reaches its output besides the residual branch.
#[derive(Debug)]
pub enum Shortcut {
    /// No shortcut at all: the plain (VGG-style) network.
    None,
    /// The input is added unchanged.
    Identity,
    /// A 1x1 strided convolution and batch norm, where the block changes width and resolution.
    Projection(Box<ConvBn>),
}

/// The CIFAR BasicBlock: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.
#[derive(Debug)]
pub struct BasicBlock {
    /// First conv (carries the stride) and BN.
    pub conv1: ConvBn,
    /// Second conv and BN.
    pub conv2: ConvBn,
    /// The skip path.
    pub shortcut: Shortcut,
}

impl BasicBlock {
    /// A block under `p`: parameters `conv1.*`, `bn1.*`, `conv2.*`, `bn2.*` and, for a projection,
    /// `shortcut.conv.*`, `shortcut.bn.*`. `residual = false` gives the plain block.
    pub fn new(p: &nn::Path<'_>, c_in: i64, c_out: i64, stride: i64, residual: bool) -> Self {
        let shortcut = if !residual {
            Shortcut::None
        } else if stride != 1 || c_in != c_out {
            Shortcut::Projection(Box::new(ConvBn::new(&(p / "shortcut"), "conv", "bn", c_in, c_out, 1, stride)))
        } else {
            Shortcut::Identity
        };
        BasicBlock {
            conv1: ConvBn::new(p, "conv1", "bn1", c_in, c_out, 3, stride),
            conv2: ConvBn::new(p, "conv2", "bn2", c_out, c_out, 3, 1),
            shortcut,
        }
    }

    /// The residual branch alone, F(x), before the shortcut is added.
    pub fn branch_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.conv1.forward_t(x, train).relu();
        self.conv2.forward_t(&h, train)
    }

    /// relu(F(x) + shortcut(x)).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.branch_t(x, train);
        match &self.shortcut {
            Shortcut::None => h.relu(),
            Shortcut::Identity => (h + x).relu(),
            Shortcut::Projection(p) => (h + p.forward_t(x, train)).relu(),
        }
    }

    /// Output shape and cost (the shortcut's addition and the ReLUs cost nothing).
    pub fn cost(&self, input: Shape) -> (Shape, Cost) {
        let (s1, c1) = self.conv1.cost(input);
        let (s2, c2) = self.conv2.cost(s1);
        let cs = match &self.shortcut {
            Shortcut::Projection(p) => p.cost(input).1,
            Shortcut::None | Shortcut::Identity => Cost::default(),
        };
        (s2, c1 + c2 + cs)
    }

    /// The fewest and the most residual branches a path through this block passes: a path
    /// either goes through the branch (1) or, where there is a shortcut, around it (0).
    pub fn path_range(&self) -> (u64, u64) {
        match self.shortcut {
            Shortcut::None => (1, 1),
            Shortcut::Identity | Shortcut::Projection(_) => (0, 1),
        }
    }
}

/// The stem: conv3x3(3->16), BN, ReLU.
#[derive(Debug)]
pub struct Stem {
    /// The stem's conv and BN, named `stem.conv.*` and `stem.bn.*`.
    pub conv_bn: ConvBn,
}

impl Stem {
    /// The stem under `p` (normally `root / "stem"`).
    pub fn new(p: &nn::Path<'_>, c_out: i64) -> Self {
        Stem { conv_bn: ConvBn::new(p, "conv", "bn", 3, c_out, 3, 1) }
    }

    /// relu(bn(conv(x))).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.conv_bn.forward_t(x, train).relu()
    }

    /// Output shape and cost.
    pub fn cost(&self, input: Shape) -> (Shape, Cost) {
        self.conv_bn.cost(input)
    }
}

/// The head: global average pooling and a linear classifier, PyTorch's default initialisation.
#[derive(Debug)]
pub struct Head {
    /// The classifier, `fc.weight` and `fc.bias`.
    pub fc: nn::Linear,
}

impl Head {
    /// A head from `c_in` channels to `classes` logits under `p` (normally `root / "fc"`).
    pub fn new(p: &nn::Path<'_>, c_in: i64, classes: i64) -> Self {
        // PyTorch's nn.Linear default: kaiming_uniform(a = sqrt 5) for the weight, which is
        // U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
        let bound = 1.0 / (c_in as f64).sqrt();
        let init = nn::Init::Uniform { lo: -bound, up: bound };
        let cfg = nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true };
        Head { fc: nn::linear(p, c_in, classes, cfg) }
    }

    /// Logits for a batch of feature maps.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        // A mean over height and width: the same as adaptive_avg_pool2d(1), and its backward
        // is deterministic on CUDA (the pool's is not).
        x.mean_dim([2i64, 3].as_slice(), false, x.kind()).apply(&self.fc)
    }

    /// Cost: the pool (k + 1 per output element, k the pooled window) and the linear layer
    /// (in_features per output element; thop leaves the bias out).
    pub fn cost(&self, input: Shape) -> Cost {
        let pool = input.c as u64 * (input.h * input.w + 1) as u64;
        let size = self.fc.ws.size();
        let (out, inp) = (size[0] as u64, size[1] as u64);
        let params = numel(&self.fc.ws) + self.fc.bs.as_ref().map_or(0, numel);
        Cost { params, flops: pool + out * inp }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        BasicBlock::forward_t(self, xs, train)
    }
}
