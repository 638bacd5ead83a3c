#!/usr/bin/env bash
# install-peers.sh: install the real peers and tools l4bench compares and
# uses, from Debian's packages. Idempotent: packages already present are
# skipped, and apt-get update runs only when something is missing.
#
#   scripts/install-peers.sh            # everything: haproxy nginx socat iperf3 strace
#   scripts/install-peers.sh strace     # only the named packages
#
# Package services are not started: l4bench starts each peer itself, on
# loopback ports it picks, with a config it writes into the run's folder.
#
# Environment (for tests; the defaults are what a real machine needs):
#   INSTALL_PEERS_POLICY  the policy-rc.d path (default /usr/sbin/policy-rc.d)
#   INSTALL_PEERS_LOG     apt-get's log (default /tmp/install-peers.log)
set -euo pipefail

all=(haproxy nginx libnginx-mod-stream socat iperf3 strace)
want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${all[@]}")

missing=()
for p in "${want[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "install-peers: $p already installed"
  else
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-peers: need root to install: ${missing[*]} (run as root, or: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
else
  SUDO=
fi

log=${INSTALL_PEERS_LOG:-/tmp/install-peers.log}
: >"$log"

# Keep package scripts from starting nginx/haproxy on their default ports.
# Debian's container images already ship a policy-rc.d: then it is left
# as it is, and only a file this script made is removed again.
policy=${INSTALL_PEERS_POLICY:-/usr/sbin/policy-rc.d}
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  made_policy=1
fi
# The trap must not change the script's exit status: a bare
# `[ -n "$made_policy" ] && ...` returns 1 when there is nothing to remove,
# and bash then exits 1 after a successful install.
cleanup() {
  local rc=$?
  if [ -n "$made_policy" ]; then
    $SUDO rm -f "$policy" || true
  fi
  exit "$rc"
}
trap cleanup EXIT

echo "install-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  echo "install-peers: apt-get install failed; updating the package lists and retrying"
  $SUDO apt-get update -qq >>"$log" 2>&1 || true
  if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    echo "install-peers: apt-get install ${missing[*]} failed; see $log" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
fi
# Stop any service a package started anyway (no-op where none runs).
for svc in nginx haproxy; do
  if pgrep -x "$svc" >/dev/null 2>&1 && command -v service >/dev/null; then
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  fi
done
echo "install-peers: done"
