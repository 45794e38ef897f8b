#!/usr/bin/env python3
"""The paper's three networks in plain PyTorch (examples/pytorch/models.py, written independently
of the Rust worker), to hold the worker against: parameter and FLOP counts (with thop, when
installed) and training-step throughput. Parameter names match the worker's
(`stage2.node_1_3.conv1.weight`).

    python bench/pytorch_reference.py count                       # all 12 Table 1 cells, JSON lines
    python bench/pytorch_reference.py bench --arch grid --depth 26 --batch 128 --steps 20
    python bench/pytorch_reference.py bench --arch grid --depth 26 --count-ops   # aten ops of one step
"""
import argparse
import collections
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# The networks live in one module, shared with examples/pytorch/train.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "pytorch"))
from models import Net  # noqa: E402


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
    if args.count_ops:
        print(json.dumps({"impl": "pytorch", "arch": args.arch, "depth": args.depth, "device": str(dev),
                          "params": len(list(net.parameters())), **count_ops(step)}))
        return
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


def count_ops(step):
    """The aten operators one call of `step` dispatches (after warm-up), counted by a
    TorchDispatchMode: every op the dispatcher routes, views and in-place ops included (a view
    or `detach` launches no kernel, so this bounds the kernels from above)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[str(func.overloadpacket.__name__)] += 1
            return func(*args, **(kwargs or {}))

    with Count() as c:
        step()
    return {"ops_per_step": sum(c.ops.values()), "by_op": dict(c.ops.most_common())}


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
    b.add_argument("--count-ops", action="store_true", help="count the aten ops of one step instead of timing")
    args = p.parse_args()
    count(args) if args.cmd == "count" else bench(args)


if __name__ == "__main__":
    main()
