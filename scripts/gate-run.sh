# shellcheck shell=bash
# The gate's run, sourced by gate.sh and planted.sh so that the planted
# regressions are judged by the very run the gate makes: quick profile,
# 10 rounds, five l4proxy strategies (the allowances in
# bench/gate/allowances.json were tuned on A/A runs of this very list;
# the A/A noise here is the rounds', so 10 rounds allow tighter ones than
# 5, README). GATE_RUN replaces it.
gate_run_default="--profile quick --count 10 --scenario tcp-stream-1 --scenario tcp-rr --scenario tcp-crr --scenario tcp-idle --scenario syscalls-up --target l4proxy-splice --target l4proxy-buffered --target l4proxy-pooled --target l4proxy-loop --target l4proxy-loopsplice"
