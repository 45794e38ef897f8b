#!/usr/bin/env bash
# Builds one gridsweep image from the repository root:
#
#   deploy/docker/build.sh worker        # gridsweep-worker:<version>: worker + CUDA libtorch (torch==2.11.0 wheel)
#   deploy/docker/build.sh coordinator   # gridsweep-coordinator:<version>: coordinator only, no libtorch
#   deploy/docker/build.sh --print worker   # print the image name and the build command, build nothing
#
# <version> is the workspace version in Cargo.toml, the tag the manifests under deploy/k8s use.
# Environment:
#   CONTAINER_ENGINE        docker or podman (default: docker if on PATH, else podman)
#   GRIDSWEEP_IMAGE_PREFIX  put before the name, e.g. registry.example.org/gridsweep/ (then push it)
# Further arguments go to the engine's `build` (e.g. --build-arg RUST_IMAGE=..., --no-cache).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
print=0
if [[ "${1:-}" == "--print" ]]; then
    print=1
    shift
fi
kind="${1:-}"
case "$kind" in
    worker | coordinator) shift ;;
    *)
        echo "usage: $0 [--print] worker|coordinator [engine build args...]" >&2
        exit 2
        ;;
esac

# The first `version = "..."` of Cargo.toml is [workspace.package]'s.
version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
if [[ -z "$version" ]]; then
    echo "error: no version in $root/Cargo.toml" >&2
    exit 1
fi
image="${GRIDSWEEP_IMAGE_PREFIX:-}gridsweep-$kind:$version"

engine="${CONTAINER_ENGINE:-}"
if [[ -z "$engine" ]]; then
    if command -v docker > /dev/null; then engine=docker; else engine=podman; fi
fi
cmd=("$engine" build -f "$root/deploy/docker/Dockerfile.$kind" -t "$image" --build-arg "GRIDSWEEP_VERSION=$version" "$@" "$root")

if [[ $print == 1 ]]; then
    echo "image: $image"
    echo "command: ${cmd[*]}"
    exit 0
fi
echo "building $image: ${cmd[*]}" >&2
"${cmd[@]}"
echo "built $image" >&2
