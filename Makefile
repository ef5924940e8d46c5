# bpfman — `make` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help deps build release test test-unit test-kernel lint fmt demo bench ci

help: ## List every target with a one-line description
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

deps: ## Install what the project needs on a fresh Debian machine (apt, pip venv)
	bash scripts/install-deps.sh

build: ## Debug build of the whole workspace
	$(CARGO) build --workspace --all-targets

release: ## Release build of bpfman and stats-reader
	$(CARGO) build --release -p bpfman -p stats-reader

lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

test: deps ## The whole test suite: unit, store, kernel, protocol, manifests, demo, VM kernels
	bash scripts/test-all.sh

demo: deps release ## End to end without Kubernetes: daemon, load, attach, CSI volume, unprivileged reader
	bash scripts/demo.sh

bench: deps release ## Benchmarks (ratios against bpftool in the same run)
	bash scripts/bench.sh

-include mk/packaging.mk
-include mk/vm.mk
