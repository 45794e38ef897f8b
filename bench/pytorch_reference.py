#!/usr/bin/env python3
"""The paper's three networks in plain PyTorch, written independently of the Rust worker, to
hold it against: parameter and FLOP counts (with thop, when installed) and training-step
throughput. Parameter names match the worker's (`stage2.node_1_3.conv1.weight`).

    python bench/pytorch_reference.py count                       # all 12 Table 1 cells, JSON lines
    python bench/pytorch_reference.py bench --arch grid --depth 26 --batch 128 --steps 20
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """CIFAR BasicBlock; shortcut is None (plain), identity, or 1x1 conv + BN."""

    def __init__(self, c_in, c_out, stride, residual):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.residual = residual
        if residual and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Module()
            self.shortcut.conv = nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)
            self.shortcut.bn = nn.BatchNorm2d(c_out)
            self.project = True
        else:
            self.project = False

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if not self.residual:
            return F.relu(h)
        s = self.shortcut.bn(self.shortcut.conv(x)) if self.project else x
        return F.relu(h + s)


class Chain(nn.ModuleDict):
    def __init__(self, c_in, c_out, stride, n, residual):
        super().__init__({f"block_{k}": Block(c_in if k == 0 else c_out, c_out, stride if k == 0 else 1, residual)
                          for k in range(n)})

    def forward(self, x):
        for b in self.values():
            x = b(x)
        return x


class Grid(nn.ModuleDict):
    def __init__(self, c_in, c_out, stride, r):
        super().__init__({f"node_{i}_{j}": Block(c_in if (i, j) == (0, 0) else c_out, c_out,
                                                 stride if (i, j) == (0, 0) else 1, True)
                          for i in range(r) for j in range(r)})
        self.r = r

    def forward(self, x):
        r, out = self.r, {}
        for i in range(r):
            for j in range(r):
                parents = [out[p] for p in ((i - 1, j), (i, j - 1)) if p in out]
                z = x if not parents else parents[0] if len(parents) == 1 else (parents[0] + parents[1]) / 2
                out[(i, j)] = self[f"node_{i}_{j}"](z)
        return out[(r - 1, r - 1)]


class Net(nn.Module):
    def __init__(self, arch, depth):
        super().__init__()
        n = (depth - 2) // 6
        assert depth == 6 * n + 2, depth
        self.stem = nn.Module()
        self.stem.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.stem.bn = nn.BatchNorm2d(16)
        c_in = 16
        for k, c_out in enumerate((16, 32, 64)):
            stride = 1 if k == 0 else 2
            if arch == "grid":
                r = math.isqrt(n)
                assert r * r == n, depth
                stage = Grid(c_in, c_out, stride, r)
            else:
                stage = Chain(c_in, c_out, stride, n, arch == "resnet")
            setattr(self, f"stage{k + 1}", stage)
            c_in = c_out
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.stem.bn(self.stem.conv(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def count(args):
    from thop import profile  # pip install thop

    for arch in args.archs:
        for depth in args.depths:
            net = Net(arch, depth)
            flops, params = profile(net, inputs=(torch.randn(1, 3, 32, 32),), verbose=False)
            print(json.dumps({"arch": arch, "depth": depth, "params": int(params), "flops": int(flops),
                              "state_params": sum(p.numel() for p in net.parameters())}), flush=True)


def bench(args):
    torch.manual_seed(0)
    dev = torch.device(args.device)
    # The worker's settings: cuDNN picks the fastest algorithms; fp32 stays IEEE unless --tf32.
    torch.backends.cudnn.benchmark = True
    precision = "tf32" if args.tf32 else "ieee"
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cudnn.rnn.fp32_precision = precision
    fmt = torch.channels_last if args.memory_format == "channels-last" else torch.contiguous_format
    net = Net(args.arch, args.depth).to(dev, memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-4)
    x = torch.randn(args.batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x.contiguous(memory_format=fmt)), y).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    seconds = []
    for _ in range(args.steps):
        sync()
        t = time.perf_counter()
        step()
        sync()
        seconds.append(time.perf_counter() - t)
    print(json.dumps({"impl": "pytorch", "arch": args.arch, "depth": args.depth, "batch": args.batch,
                      "steps": args.steps, "device": str(dev), "threads": torch.get_num_threads(),
                      "memory_format": args.memory_format, "tf32": args.tf32 and dev.type == "cuda",
                      "params": sum(p.numel() for p in net.parameters()),
                      # batch / median step time, as `worker bench --compare` reports.
                      "images_per_s": args.batch / statistics.median(seconds),
                      "mean_images_per_s": args.batch * args.steps / sum(seconds),
                      "step_seconds": seconds}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count", help="params and FLOPs with thop")
    c.add_argument("--archs", nargs="+", default=["vgg", "resnet", "grid"])
    c.add_argument("--depths", nargs="+", type=int, default=[26, 98, 386, 1538])
    b = sub.add_parser("bench", help="training-step throughput")
    b.add_argument("--arch", default="resnet", choices=["vgg", "resnet", "grid"])
    b.add_argument("--depth", type=int, default=26)
    b.add_argument("--batch", type=int, default=128)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    b.add_argument("--memory-format", default="contiguous", choices=["contiguous", "channels-last"])
    b.add_argument("--tf32", action="store_true", help="let cuDNN fp32 convolutions use TF32")
    args = p.parse_args()
    count(args) if args.cmd == "count" else bench(args)


if __name__ == "__main__":
    main()
