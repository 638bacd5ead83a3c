#!/usr/bin/env bash
# The CI gate, A/B in one run: builds l4proxy at a base revision
# (GATE_BASE, default the previous commit) into a temporary folder, and
# head from the working tree; runs both builds of every l4proxy strategy
# interleaved in the same rounds; fails when head regressed against base,
# paired by round, or when either build failed.
#
#   scripts/gate.sh                      # base HEAD~1, head the working tree
#   GATE_BASE=origin/main scripts/gate.sh
#   GATE_BASE=HEAD GATE_FORCE=1 scripts/gate.sh   # an A/A run (clean tree)
#
# Needs bin/l4bench (make build). Writes the run under
# results/gate/, and the gate's markdown table to $GITHUB_STEP_SUMMARY
# when set (GitHub Actions).
set -euo pipefail
cd "$(dirname "$0")/.."

base_ref=${GATE_BASE:-HEAD~1}
# shellcheck source=scripts/gate-run.sh
source scripts/gate-run.sh
run_flags=${GATE_RUN:-$gate_run_default}

if ! base_rev=$(git rev-parse --verify --quiet "${base_ref}^{commit}"); then
	echo "gate: GATE_BASE=${base_ref} is not a commit here (a shallow clone? fetch more history, or set GATE_BASE to a ref that exists)" >&2
	exit 2
fi
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
# Both builds the same way, so that they differ only where their sources
# do: -trimpath and no VCS stamp make one source one binary, byte for byte.
# (Head used to be make's bin/l4proxy, with its source path and revision
# stamped in: an A/A run then found head's RSS per idle connection 0.6-0.8%
# above base's in every round, enough to fail the 1% allowance.)
build=(go build -trimpath -buildvcs=false)
echo "gate: building base l4proxy at ${base_ref} (${base_rev:0:12}) and head from the working tree"
git worktree add --detach --quiet "$tmp/src" "$base_rev"
(cd "$tmp/src" && "${build[@]}" -o "$tmp/l4proxy-base" ./cmd/l4proxy)
"${build[@]}" -o "$tmp/l4proxy-head" ./cmd/l4proxy
# Byte-identical builds (a change to docs, tests or the harness alone) can
# only differ by the machine's noise: an A/B of them is an A/A run, whose
# false alarms are all it could report. GATE_FORCE=1 runs it anyway.
if [[ -z ${GATE_FORCE:-} ]] && cmp -s "$tmp/l4proxy-base" "$tmp/l4proxy-head"; then
	echo "gate: base (${base_ref}, ${base_rev:0:12}) and head build the same l4proxy, byte for byte: no A/B to run, nothing in it can have regressed (GATE_FORCE=1 runs it anyway, as an A/A run)"
	exit 0
fi
for b in bin/l4bench; do
	[[ -x $b ]] || { echo "gate: $b is missing: run make build" >&2; exit 2; }
done

# shellcheck disable=SC2086 # run_flags is a list of flags
# A folder of this run's own, so that no older run's results can stand in
# for a run that wrote none.
out=results/gate/ab-$(date -u +%Y%m%dT%H%M%SZ)-$$
bin/l4bench run $run_flags --l4proxy-bin "base=$tmp/l4proxy-base" --l4proxy-bin "head=$tmp/l4proxy-head" --out "$out" || run_status=$?
current=$(find "$out" -mindepth 2 -maxdepth 2 -name results.json | head -n 1)
if [[ -z $current ]]; then
	echo "gate: the run wrote no results (exit ${run_status:-?})" >&2
	exit 1
fi
# The run's own failures (a build that did not start, died, lost a sample
# or stopped splicing) are rows the gate fails on, so its verdict stands
# for both.
status=0
bin/l4bench gate --ab base,head --current "$current" || status=$?
if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
	bin/l4bench gate --ab base,head --current "$current" --format markdown >>"$GITHUB_STEP_SUMMARY" || true
fi
exit "$status"
