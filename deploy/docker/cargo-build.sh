#!/usr/bin/env bash
# Builder stage: one release binary, from the repository root, with the locked dependencies.
# The worker links the torch wheel that scripts/provision-libtorch.sh installs (idempotent: the
# Dockerfile runs it once in an earlier, cached layer); build.rs sets the rpath to its lib dir.
#   deploy/docker/cargo-build.sh worker|coordinator
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
case "${1:-}" in
    worker)
        scripts/provision-libtorch.sh
        cargo build --release --locked -p gridsweep-worker --bin worker
        ;;
    coordinator)
        cargo build --release --locked -p gridsweep-coordinator --bin coordinator
        ;;
    *)
        echo "usage: $0 worker|coordinator" >&2
        exit 2
        ;;
esac
