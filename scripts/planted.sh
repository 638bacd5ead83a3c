#!/usr/bin/env bash
# Planted regressions: evidence that the gate catches real ones. Builds a
# head l4proxy with one deliberate regression, made by a real change to
# the source in a temporary worktree, and gates it against an unchanged
# base build in one A/B run, RUNS times.
#
#   scripts/planted.sh small-buffer|no-splice|slow-accept|slow-loop-accept|extra-fds|aa [RUNS]
#
#   small-buffer  the buffered strategy copies through a 2 KiB buffer
#   no-splice     splice falls back to a userspace copy: its conns are
#                 wrapped, so (*TCPConn).ReadFrom no longer sees a TCPConn
#   slow-accept   200 µs of busy work for every accepted connection
#   slow-loop-accept  the same in the event loops' accept (loop, loopsplice)
#   extra-fds     two more fds held for each connection's life
#   aa            no change: an A/A run (the gate must pass)
#
# Prints one line per run (caught or not, and the first failing row) and
# the count. Needs bin/l4bench (make build). Results under results/planted/.
# PLANTED_CHECK=1 only applies the change and builds (make test does, so
# that the script does not rot as the code moves).
set -euo pipefail
cd "$(dirname "$0")/.."
choices=(small-buffer no-splice slow-accept slow-loop-accept extra-fds aa)
what=${1:?usage: scripts/planted.sh $(IFS='|'; echo "${choices[*]}") [RUNS]}
runs=${2:-10}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "planted: RUNS must be a positive whole number, got '$runs'" >&2; exit 2; }

if [[ " ${choices[*]} " != *" $what "* ]]; then
	echo "planted: unknown regression '$what' (choices: $(IFS=','; echo "${choices[*]}" | sed 's/,/, /g'))" >&2
	exit 2
fi
[[ -n ${PLANTED_CHECK:-} || -x bin/l4bench ]] || { echo "planted: bin/l4bench is missing: run make build" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach --quiet "$tmp/src" HEAD
(cd "$tmp/src" && go build -trimpath -buildvcs=false -o "$tmp/l4proxy-base" ./cmd/l4proxy)

src=$tmp/src
must() { # file, sed expression: the change must apply
	local before
	before=$(sha256sum "$src/$1")
	sed -i "$2" "$src/$1"
	[[ $(sha256sum "$src/$1") != "$before" ]] || { echo "planted: $what: the change to $1 did not apply (the code moved?)" >&2; exit 2; }
}
case $what in
small-buffer)
	must proxy/copy/buffered.go 's/buf: make(\[\]byte, opts.bufferSize())/buf: make([]byte, 2048)/' ;;
no-splice)
	must proxy/copy/splice.go 's/\tvar r io.Reader = c.src$/\tvar r io.Reader = struct{ io.Reader }{c.src}/' ;;
slow-accept)
	must proxy/tcp/proxy.go 's/^\tstart := time.Now()$/\tstart := time.Now()\n\tfor time.Since(start) < 200*time.Microsecond {\n\t}/' ;;
slow-loop-accept)
	must proxy/copy/loopaccept.go 's/^\tp := &loopPair{e: e, done: c.Done, splice: w.ls.splice, connecting: true, next: c.Next}$/\tfor t0 := time.Now(); time.Since(t0) < 200*time.Microsecond; {\n\t}\n&/' ;;
extra-fds)
	must proxy/tcp/proxy.go 's/^\tstart := time.Now()$/\tstart := time.Now()\n\tfor range 2 {\n\t\tif f, err := os.Open(os.DevNull); err == nil {\n\t\t\tdefer f.Close()\n\t\t}\n\t}/'
	must proxy/tcp/proxy.go 's/^import (/import (\n\t"os"/' ;;
aa) ;;
esac
(cd "$src" && go build -trimpath -buildvcs=false -o "$tmp/l4proxy-head" ./cmd/l4proxy)
if [[ -n ${PLANTED_CHECK:-} ]]; then
	echo "planted: $what applies and builds"
	exit 0
fi

# shellcheck source=scripts/gate-run.sh
source scripts/gate-run.sh
run_flags=${GATE_RUN:-$gate_run_default}
caught=0
for i in $(seq 1 "$runs"); do
	out=results/planted/$what-$(date -u +%Y%m%dT%H%M%SZ)-$i
	# shellcheck disable=SC2086 # run_flags is a list of flags
	bin/l4bench run $run_flags --l4proxy-bin "base=$tmp/l4proxy-base" --l4proxy-bin "head=$tmp/l4proxy-head" --out "$out" >"$tmp/run.log" 2>&1 || true
	current=$(find "$out" -mindepth 2 -maxdepth 2 -name results.json | head -n 1)
	if [[ -z $current ]]; then
		echo "run $i: the run wrote no results: $(tail -n 1 "$tmp/run.log")" >&2
		exit 1
	fi
	if verdict=$(bin/l4bench gate --ab base,head --current "$current" 2>&1 >/dev/null); then
		echo "run $i: passed ($current)"
	else
		caught=$((caught + 1))
		echo "run $i: caught: ${verdict#l4bench: } ($current)"
	fi
done
echo "$what: the gate failed $caught of $runs runs"
