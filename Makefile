# l4bench: the README's two commands are `make bench` and `make test`.
GO      ?= go
BIN     := bin
PROFILE ?= standard
# Extra flags for `l4bench run`, e.g. make bench BENCH_FLAGS="--proxy-cpus 1"
BENCH_FLAGS ?=

# The CI gate, A/B in one run (scripts/gate.sh): l4proxy built at
# GATE_BASE (default the previous commit) against the working tree, both
# interleaved in the same rounds. GATE_RUN overrides the run's flags.
GATE_BASE ?= HEAD~1
# The baseline mode (make gate-baseline): the gate's own run (the
# scenarios and the five strategies of scripts/gate-run.sh), compared with
# results/baseline.json (history, dashboards).
BASELINE_RUN := $(shell . scripts/gate-run.sh && echo "$$gate_run_default")
GATE_FLAGS ?=

.PHONY: all build test fmt-check bench peers peers-traefik fuzz clean gate gate-baseline baseline

all: build

# The revision results.json records (host.revision). Stamped explicitly,
# because Go's own VCS stamping is off wherever GOFLAGS has -buildvcs=false
# (as on this machine) and fails outside a checkout.
REVISION := $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
LDFLAGS  := -X github.com/l4bench/l4bench/internal/buildinfo.Revision=$(REVISION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/l4proxy ./cmd/l4proxy
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/l4bench ./cmd/l4bench

# Installs the peers (haproxy, nginx + stream module, socat, iperf3, strace)
# from Debian's packages; skips what is present.
peers:
	scripts/install-peers.sh

# Builds traefik (the design l4proxy is modelled on) from the Go module
# proxy into ~/.cache/l4bench: minutes and ~3 GB of memory, so only when
# asked; make bench and make test never do. Then it is a target like the
# other peers.
peers-traefik:
	scripts/build-traefik.sh

# Every test: gofmt (a file it would change fails, named), vet, unit and
# loopback tests (strace data-path proofs
# included), the race detector on the proxy and the harness (-short skips
# what only measures the detector's slowdown), and a short fuzz of the
# config parser (a count of inputs, not a duration: a duration's deadline
# failed a CI run with "context deadline exceeded" when the workers stalled
# on slow inputs while the machine was loaded).
test: fmt-check
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -race -short -count=1 ./proxy/... ./bench/... ./scenarios/... ./internal/... ./scripts/...
	$(GO) test -run '^$$' -fuzz FuzzParseConfig -fuzztime 40000x ./proxy

fmt-check:
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$($(GO) list -f '{{.Dir}}' ./...) | sort -u); \
	if [ -n "$$unformatted" ]; then echo "gofmt: run gofmt -w on:"; echo "$$unformatted"; exit 1; fi

# The main job: install what is missing, build, run the standard profile
# and then the conformance matrix on the same designs.
bench: peers build
	$(BIN)/l4bench run --profile $(PROFILE) --conform $(BENCH_FLAGS)

# Gate head (the working tree) against base (GATE_BASE), paired by round.
gate: build
	GATE_BASE=$(GATE_BASE) scripts/gate.sh

# Compare a run with the committed baseline instead (history, dashboards).
gate-baseline: build
	$(BIN)/l4bench run $(BASELINE_RUN) $(GATE_FLAGS) --out results/gate
	$(BIN)/l4bench gate --baseline results/baseline.json --current "$$(ls -d results/gate/*/ | tail -n 1)results.json"

# Refresh results/baseline.json on this machine (see README: when to).
# 15 rounds instead of the gate's 10: one run spans minutes of the
# machine's drift, so the baseline is not one lucky or unlucky moment.
baseline: build
	$(BIN)/l4bench run $(BASELINE_RUN) --count 15 --out results/baseline-run
	cp "$$(ls -d results/baseline-run/*/ | tail -n 1)results.json" results/baseline.json

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseConfig -fuzztime 5m ./proxy

clean:
	rm -rf $(BIN)
