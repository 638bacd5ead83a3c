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
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-peers: need root to install: ${missing[*]} (run as root, or: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
else
  SUDO=
fi

# Keep package scripts from starting nginx/haproxy on their default ports.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  made_policy=1
fi
cleanup() { [ -n "$made_policy" ] && $SUDO rm -f "$policy"; }
trap cleanup EXIT

echo "install-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/install-peers.log 2>&1; then
  echo "install-peers: apt-get install failed; updating the package lists and retrying"
  $SUDO apt-get update -qq >>/tmp/install-peers.log 2>&1
  if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/install-peers.log 2>&1; then
    echo "install-peers: apt-get install ${missing[*]} failed; see /tmp/install-peers.log" >&2
    tail -n 20 /tmp/install-peers.log >&2
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
