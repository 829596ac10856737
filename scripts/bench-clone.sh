#!/usr/bin/env bash
# Clone throughput next to each destination's raw batched write speed, in
# one run, and the peak memory of cloning 1,000,000 items.
#
#   scripts/bench-clone.sh [--items N] [--rss-items M]
#
# Destinations: SQLite, and etcd when installed (scripts/install-test-services.sh etcd).
# Release build. Copy the output into docs/benchmarks.md with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -m), rustc $(rustc --version | cut -d' ' -f2)" >&2
exec cargo bench --bench clone --quiet -- "$@"
