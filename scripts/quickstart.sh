#!/usr/bin/env bash
# The embedded default in one command: build teleport, seed a SQLite
# cluster-state store under ./quickstart/backend, then list and read it with
# `teleport backend`. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin teleport --example seed_sqlite
mkdir -p quickstart
cat > quickstart/storage.yaml <<YAML
type: sqlite
path: $(pwd)/quickstart/backend
journal: WAL
YAML
target/release/examples/seed_sqlite quickstart/backend
echo "+ teleport backend -c quickstart/storage.yaml ls"
target/release/teleport backend -c quickstart/storage.yaml ls
echo "+ teleport backend -c quickstart/storage.yaml get /tokens/quickstart-node-token"
target/release/teleport backend -c quickstart/storage.yaml get /tokens/quickstart-node-token
