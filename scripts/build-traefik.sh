#!/usr/bin/env bash
# Builds the traefik peer from the Go module proxy into a cache folder
# outside the repository (make peers-traefik). Never part of make test:
# it takes minutes and about 3 GB of memory.
#
# Pinned to v3.6.12 through tools/traefik/go.mod (a `tool` line, with the
# replace and exclude lines traefik's own go.mod needs copied in). The
# v3.7 releases need modules this machine's module proxy refuses, so they
# do not build here.
#
# Output: $L4BENCH_CACHE/traefik-<version>/traefik, where L4BENCH_CACHE
# defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/l4bench. The traefik target
# looks there (or at $L4BENCH_TRAEFIK).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
tools="$here/tools/traefik"
version="$(awk '$1 == "github.com/traefik/traefik/v3" {print $2}' "$tools/go.mod")"
cache="${L4BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/l4bench}"
out="$cache/traefik-$version/traefik"

if [[ -x "$out" && "${1:-}" != "--force" ]]; then
	echo "traefik $version already built: $out (--force rebuilds)"
	exit 0
fi
mkdir -p "$(dirname "$out")"
cd "$tools"
echo "==> downloading traefik $version and its modules (go mod download)"
go mod download -x 2>&1 | awk '/^# get / {n++; if (n % 50 == 0) printf "    %d modules fetched\n", n} END {printf "    %d modules fetched\n", n}'
echo "==> building traefik $version (several minutes, ~3 GB of memory; about 2000 packages)"
log="$(dirname "$out")/build.log"
start=$(date +%s)
if ! go build -v -trimpath -ldflags "-X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
	-o "$out.tmp" github.com/traefik/traefik/v3/cmd/traefik 2>&1 | tee "$log" |
	awk -v start="$start" '{n++; if (n % 100 == 0) {cmd = "date +%s"; cmd | getline now; close(cmd); printf "    %d packages compiled (%ds)\n", n, now - start}} END {printf "    %d packages compiled\n", n}'; then
	echo "build-traefik: go build failed; the end of $log:" >&2
	tail -n 30 "$log" >&2
	exit 1
fi
mv "$out.tmp" "$out"
echo "==> $out"
"$out" version | sed 's/^/    /'
