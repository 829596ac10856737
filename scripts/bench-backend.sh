#!/usr/bin/env bash
# Backend throughput next to the raw speed of the same store, in one run.
# Usage: scripts/bench-backend.sh [--items N] [--seconds S] [--dir PATH]
# Prints a markdown table (copy it into docs/benchmarks.md with the date and
# the machine). Builds in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -m), rustc $(rustc --version | cut -d' ' -f2)" >&2
exec cargo bench --bench backend --quiet -- "$@"
