#!/usr/bin/env bash
# Lays out what a runtime image holds, as a tree under DEST to copy onto /, and checks it: the
# binary in DEST/usr/local/bin and, for the worker, the run-time part of the torch wheel (torch's
# lib/ and version.py, and the lib/ folders of the nvidia-* wheels that torch's libraries find
# through their $ORIGIN rpaths) at the same absolute path as where it was built against, where
# the worker's rpath points. Headers, static libraries, Python code and libtorch_python are left
# out. Runs anywhere (the builder stage, or a check on a machine with a built binary).
#
#   deploy/docker/stage.sh coordinator DEST [BIN]   # BIN default: target/release/coordinator
#   deploy/docker/stage.sh worker DEST [BIN]        # BIN default: target/release/worker
#
# Environment: LIBTORCH (torch's package directory; default: the repository's .libtorch link);
# GRIDSWEEP_STAGE_HARDLINK=1 hard-links torch's files instead of copying them (same filesystem).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
kind="${1:-}"
dest="${2:-}"
if [[ "$kind" != worker && "$kind" != coordinator || -z "$dest" ]]; then
    echo "usage: $0 worker|coordinator DEST [BIN]" >&2
    exit 2
fi
bin="${3:-$root/target/release/$kind}"
if [[ ! -x "$bin" ]]; then
    echo "stage: $bin is not an executable: build it first (deploy/docker/cargo-build.sh $kind)" >&2
    exit 1
fi
if ! command -v readelf > /dev/null; then
    echo "stage: needs readelf (binutils) to check the binary's libraries" >&2
    exit 1
fi
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
install -D -m 0755 "$bin" "$dest/usr/local/bin/$kind"

# The DT_NEEDED and DT_RUNPATH entries of an ELF file.
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
runpath() { readelf -d "$1" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p'; }

if [[ "$kind" == coordinator ]]; then
    if needed "$bin" | grep -E '^lib(torch|c10)'; then
        echo "stage: $bin links libtorch; the coordinator image must not" >&2
        exit 1
    fi
    echo "stage: $dest/usr/local/bin/coordinator ($(du -sh "$dest" | cut -f1))"
    exit 0
fi

torch="${LIBTORCH:-$root/.libtorch}"
if [[ ! -f "$torch/lib/libtorch.so" ]]; then
    echo "stage: no libtorch at $torch (set LIBTORCH or run scripts/provision-libtorch.sh)" >&2
    exit 1
fi
torch=$(cd -P "$torch" && pwd)
if [[ ":$(runpath "$bin"):" != *":$torch/lib:"* ]]; then
    echo "stage: $bin's rpath is '$(runpath "$bin")', not $torch/lib: it was built against another torch" >&2
    exit 1
fi
cp_flags=(-a)
if [[ "${GRIDSWEEP_STAGE_HARDLINK:-0}" == 1 ]]; then
    cp_flags=(-a -l)
fi
mkdir -p "$dest$torch/lib"
cp "${cp_flags[@]}" "$torch/lib/." "$dest$torch/lib/"
rm -f "$dest$torch/lib/libtorch_python.so"
cp "${cp_flags[@]}" "$torch/version.py" "$dest$torch/version.py"
site=$(dirname "$torch")
for lib in "$site"/nvidia/*/lib; do
    mkdir -p "$dest$lib"
    cp "${cp_flags[@]}" "$lib/." "$dest$lib/"
done
find "$dest$site/nvidia" \( -name '*.a' -o -name '*.bc' \) -delete

# Every library the worker loads, torch's and CUDA's included, must come from the staged tree or
# the system; LD_LIBRARY_PATH stands in for the rpath, which points at the builder's tree.
problems=$(LD_LIBRARY_PATH="$dest$torch/lib" ldd "$dest/usr/local/bin/worker" | awk -v d="$dest" '
    /not found/ { print "missing: " $1; next }
    $2 == "=>" && $3 !~ "^" d "/" && $3 !~ "^/(usr/)?lib(64|32)?/" { print "outside the image tree: " $1 " => " $3 }')
if [[ -n "$problems" ]]; then
    echo "stage: the staged worker does not load from the staged tree:" >&2
    echo "$problems" >&2
    exit 1
fi
count=$(LD_LIBRARY_PATH="$dest$torch/lib" ldd "$dest/usr/local/bin/worker" | grep -c "=> $dest/" || true)
echo "stage: $dest/usr/local/bin/worker and $torch's run-time libraries ($count loaded from the tree; $(du -sh "$dest" | cut -f1))"
