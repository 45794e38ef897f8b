"""The paper's three networks in plain PyTorch, written from shared/SPEC.md: the CIFAR ResNet
family of He et al. 2016 at depth 6n + 2 (three stages of n BasicBlocks, widths 16/32/64,
stages 2 and 3 starting with stride 2), wired as a plain chain (`vgg`), a residual chain
(`resnet`) or an R x R grid per stage (`grid`, n = R^2, a node takes the mean of its parents).

Self-contained (torch only) so that both examples/pytorch/train.py and
bench/pytorch_reference.py import it. Parameter names are the Rust worker's:
`stem.conv.weight`, `stage2.block_0.shortcut.conv.weight`, `stage2.node_1_3.conv1.weight`,
`fc.bias`.

    import models
    net = models.Net("grid", 26)          # models.DepthError for a depth that does not fit
    models.param_count(net), models.flops("grid", 26)   # 369690, 56005312 (Table 1)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("vgg", "resnet", "grid")
# The deepest network accepted (a 64 x 64 grid per stage), as in the Rust worker: deeper
# requests are almost certainly typos and would exhaust memory.
MAX_DEPTH = 6 * 64 * 64 + 2
WIDTHS = (16, 32, 64)
CLASSES = 10
# Convolution initialisations: "kaiming" is Kaiming-normal, fan-out, ReLU gain (He et al.'s
# CIFAR ResNets, torchvision's ResNet and the Rust worker); "pytorch" keeps nn.Conv2d's default.
INITS = ("kaiming", "pytorch")


class DepthError(ValueError):
    """An architecture name we do not know, or a depth that does not build it."""


def _valid_depths(arch):
    """The depths `arch` builds at, increasing, up to MAX_DEPTH."""
    k = 1
    while True:
        d = 6 * k * k + 2 if arch == "grid" else 6 * k + 2
        if d > MAX_DEPTH:
            return
        yield d
        k += 1


def check_depth(arch, depth):
    """Blocks per stage for (arch, depth); DepthError naming the rule and the nearest valid
    depths when the pair does not fit."""
    if arch not in ARCHS:
        raise DepthError(f"unknown architecture {arch!r}: expected one of {', '.join(ARCHS)}")
    valid = list(_valid_depths(arch))
    if depth in valid:
        return (depth - 2) // 6
    rule = "6R^2 + 2 (8, 26, 56, 98, ..., 386, ..., 1538)" if arch == "grid" else "6n + 2 (8, 14, 20, 26, ...)"
    below = [d for d in valid if d < depth]
    above = [d for d in valid if d > depth]
    nearest = " or ".join(str(d) for d in (below[-1:] + above[:1])) or "none"
    raise DepthError(f"depth {depth} is not valid for {arch}: {arch} depths are {rule}; "
                     f"nearest valid depths: {nearest}")


class Block(nn.Module):
    """BasicBlock(in, out, stride): conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut
    (none for the plain network; identity, or conv1x1(stride)-BN when the shape changes), then
    ReLU."""

    def __init__(self, c_in, c_out, stride, residual):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.residual = residual
        self.project = residual and (stride != 1 or c_in != c_out)
        if self.project:
            self.shortcut = nn.Module()
            self.shortcut.conv = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)
            self.shortcut.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if not self.residual:
            return F.relu(h)
        s = self.shortcut.bn(self.shortcut.conv(x)) if self.project else x
        return F.relu(h + s)


class Chain(nn.ModuleDict):
    """A stage of n blocks in sequence (`block_0` .. `block_{n-1}`); the first one strides."""

    def __init__(self, c_in, c_out, stride, n, residual):
        super().__init__({f"block_{k}": Block(c_in if k == 0 else c_out, c_out, stride if k == 0 else 1, residual)
                          for k in range(n)})

    def forward(self, x):
        for b in self.values():
            x = b(x)
        return x


class Grid(nn.ModuleDict):
    """A stage of R^2 residual blocks on an R x R grid (`node_i_j`): node (0,0) takes the stage
    input (and strides), node (i,j) the mean of its existing parents (i-1,j) and (i,j-1); the
    stage output is node (R-1,R-1). Nodes run one by one, row by row."""

    def __init__(self, c_in, c_out, stride, r):
        super().__init__({f"node_{i}_{j}": Block(c_in if (i, j) == (0, 0) else c_out, c_out,
                                                 stride if (i, j) == (0, 0) else 1, True)
                          for i in range(r) for j in range(r)})
        self.r = r

    def forward(self, x):
        r = self.r
        above = [None] * r  # above[j]: the output of node (i-1, j), the row just finished
        for i in range(r):
            left = None
            for j in range(r):
                parents = [p for p in (above[j], left) if p is not None]
                z = x if not parents else parents[0] if len(parents) == 1 else (parents[0] + parents[1]) / 2
                left = self[f"node_{i}_{j}"](z)
                above[j] = left
        return above[r - 1]


class Net(nn.Module):
    """stem (conv3x3 3->16, BN, ReLU), three stages, global average pool, linear 64->10.
    BatchNorm starts at weight 1, bias 0; convolutions per `init` (see INITS); the linear
    layer keeps PyTorch's default."""

    def __init__(self, arch, depth, init="kaiming"):
        super().__init__()
        n = check_depth(arch, depth)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: expected one of {', '.join(INITS)}")
        self.arch, self.depth = arch, depth
        self.stem = nn.Module()
        self.stem.conv = nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False)
        self.stem.bn = nn.BatchNorm2d(WIDTHS[0])
        c_in = WIDTHS[0]
        for k, c_out in enumerate(WIDTHS):
            stride = 1 if k == 0 else 2
            if arch == "grid":
                stage = Grid(c_in, c_out, stride, math.isqrt(n))
            else:
                stage = Chain(c_in, c_out, stride, n, arch == "resnet")
            setattr(self, f"stage{k + 1}", stage)
            c_in = c_out
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(WIDTHS[-1], CLASSES)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and init == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.stem.bn(self.stem.conv(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        if x.is_cuda and torch.are_deterministic_algorithms_enabled():
            # The same mean, but with a deterministic backward (adaptive_avg_pool2d's CUDA
            # backward has none, so deterministic mode refuses it). Elsewhere the pool module
            # runs, which is what thop counts.
            return self.fc(x.mean((2, 3)))
        return self.fc(torch.flatten(self.pool(x), 1))


def param_count(net):
    """Trainable parameters (the paper's `params`)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def flops(arch, depth, size=32):
    """FLOPs of one image in the thop convention (shared/paper/SUMMARY.md): convolution and
    linear multiply-accumulates, 4 per BatchNorm output element, (k + 1) per average-pool output
    element, nothing for ReLU, sums and means. Counted from the shapes, without thop."""
    n = check_depth(arch, depth)
    total, hw = 0, size

    def conv_bn(c_in, c_out, k, out_hw):
        return out_hw * out_hw * c_out * (c_in * k * k + 4)

    total += conv_bn(3, WIDTHS[0], 3, hw)
    c_in = WIDTHS[0]
    for s, c_out in enumerate(WIDTHS):
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1
            first_in = c_in if b == 0 else c_out
            hw_out = hw // stride
            total += conv_bn(first_in, c_out, 3, hw_out) + conv_bn(c_out, c_out, 3, hw_out)
            if arch != "vgg" and (stride != 1 or first_in != c_out):
                total += conv_bn(first_in, c_out, 1, hw_out)
            hw = hw_out
        c_in = c_out
    total += (hw * hw + 1) * WIDTHS[-1]  # adaptive average pool: k + 1 per output element
    total += WIDTHS[-1] * CLASSES  # the classifier's multiply-accumulates
    return total
