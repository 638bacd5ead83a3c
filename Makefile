# l4bench: the README's two commands are `make bench` and `make test`.
GO      ?= go
BIN     := bin
PROFILE ?= standard
# Extra flags for `l4bench run`, e.g. make bench BENCH_FLAGS="--proxy-cpus 1"
BENCH_FLAGS ?=

.PHONY: all build test bench peers fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/l4proxy ./cmd/l4proxy
	$(GO) build -o $(BIN)/l4bench ./cmd/l4bench

# Installs the peers (haproxy, nginx + stream module, socat, iperf3, strace)
# from Debian's packages; skips what is present.
peers:
	scripts/install-peers.sh

# Every test: vet, unit and loopback tests (strace data-path proofs
# included), the race detector on the proxy, and a short fuzz of the
# config parser.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -race -short -count=1 ./proxy/...
	$(GO) test -run '^$$' -fuzz FuzzParseConfig -fuzztime 10s ./proxy

# The main job: install what is missing, build, run the standard profile.
bench: peers build
	$(BIN)/l4bench run --profile $(PROFILE) $(BENCH_FLAGS)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseConfig -fuzztime 5m ./proxy

clean:
	rm -rf $(BIN)
