#!/usr/bin/env bash
#! The end-to-end demo `make demo` runs with the release binaries: the device probe, then the
#! paper's Table 1 size and cost columns read off the twelve models as built.
#! (Training and the sweep arrive with issues #3 and #4; the demo grows with them.)
set -euo pipefail
bin=$(cd "$(dirname "$0")/.." && pwd)/target/release

echo "== worker devices"
"$bin/worker" devices
echo
echo "== Table 1, size and cost (thop convention, one 3x32x32 image)"
printf '%-7s %6s %12s %15s %7s %5s %9s\n' arch depth params flops blocks R 'paths'
for arch in vgg resnet grid; do
    for depth in 26 98 386 1538; do
        "$bin/worker" inspect --arch "$arch" --depth "$depth" --json | python3 -c '
import json, sys
v = json.load(sys.stdin)
r = v["grid_side"] if v["grid_side"] is not None else "-"
print(f"{v[\"arch\"]:<7} {v[\"depth\"]:>6} {v[\"params\"]:>12,} {v[\"flops\"]:>15,} {v[\"blocks\"]:>7} {r:>5} "
      f"{v[\"shortest_path_blocks\"]:>4}..{v[\"longest_path_blocks\"]}")'
    done
done
