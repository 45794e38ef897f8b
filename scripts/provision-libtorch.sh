#!/usr/bin/env bash
#! Provisions libtorch for the worker: PyPI's `torch` wheel (the version the pinned `tch` expects)
#! in a virtual environment under the user cache, never the system Python. Idempotent: a finished
#! install is marked and reused. Links `.libtorch` in the repository root to torch's package
#! directory (which holds `include/` and `lib/`), where `.cargo/config.toml` points `LIBTORCH`.
set -euo pipefail

TORCH_VERSION=2.11.0
root=$(cd "$(dirname "$0")/.." && pwd)
home="${GRIDSWEEP_TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/gridsweep/torch-$TORCH_VERSION}"
python="${PYTHON:-python3}"

if [ ! -f "$home/.complete" ]; then
    echo "provision-libtorch: installing torch==$TORCH_VERSION into $home (about 4.6 GB)" >&2
    rm -rf "$home"
    mkdir -p "$home"
    "$python" -m venv "$home/venv"
    "$home/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        "torch==$TORCH_VERSION" numpy
    touch "$home/.complete"
fi

torch_dir=$("$home/venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
if [ ! -f "$torch_dir/lib/libtorch.so" ]; then
    echo "provision-libtorch: $torch_dir/lib/libtorch.so is missing; delete $home and rerun" >&2
    exit 1
fi
ln -sfn "$torch_dir" "$root/.libtorch"
echo "provision-libtorch: .libtorch -> $torch_dir" >&2
