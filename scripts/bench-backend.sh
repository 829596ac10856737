#!/usr/bin/env bash
# Store throughput next to the raw speed of the same store, in one run per
# store: benches/backend.rs (memory, SQLite) and every benches/store_*.rs
# (etcd, DynamoDB, ...; these start their server through testcontainers/, so
# run scripts/install-test-services.sh first).
#
#   scripts/bench-backend.sh [--items N] [--seconds S] [--dir PATH]
#   BENCHES="backend store_etcd" scripts/bench-backend.sh --items 20000
#
# Prints markdown tables; copy them into docs/benchmarks.md with the date and
# the machine. Builds in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
all=(backend)
for f in benches/store_*.rs; do
    [ -e "$f" ] && all+=("$(basename "$f" .rs)")
done
read -r -a selected <<<"${BENCHES:-${all[*]}}"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -m), rustc $(rustc --version | cut -d' ' -f2)" >&2
for b in "${selected[@]}"; do
    cargo bench --bench "$b" --quiet -- "$@"
    echo
done
