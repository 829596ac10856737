#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the real test servers
# (etcd, moto, s3s-fs, the GCS emulator, Azurite, PostgreSQL), checks
# formatting and lints, then runs every test of the workspace against them.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -E 'test(sqlite)'   # extra arguments go to cargo nextest
#
# Once the servers are installed a missing one is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n==> %s (%ss)\n' "$*" "$((SECONDS - started))" >&2; }

step "installing test servers"
scripts/install-test-services.sh
export TELEPORT_TEST_REQUIRE_SERVICES=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo check --no-default-features (memory, sqlite and local files only)"
cargo check -p teleport --no-default-features --all-targets --locked

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
    # nextest does not run doctests.
    cargo test --workspace --doc --locked
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi
step "all green"
