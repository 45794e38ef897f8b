#!/usr/bin/env bash
# The worker's builder stage, as root: Python with venv, which the Rust image lacks, to install
# PyPI's torch wheel (scripts/provision-libtorch.sh) that the worker links. (The coordinator's
# builder needs nothing beyond the Rust image.)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates
rm -rf /var/lib/apt/lists/*
