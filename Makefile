# gridsweep: the commands a new machine needs. See README.md.
#   make demo   provision libtorch, build release binaries, run a real job end to end
#   make test   provision libtorch, build, run every test (what CI runs)

CARGO ?= cargo
RELEASE := target/release

.PHONY: libtorch build demo test lint clean

# PyPI's torch==2.11.0 into the user cache, linked at .libtorch (idempotent, fast when done).
libtorch:
	@scripts/provision-libtorch.sh

build: libtorch
	$(CARGO) build --release --bins

demo: build
	scripts/demo.sh

test: libtorch
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

lint: libtorch
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
