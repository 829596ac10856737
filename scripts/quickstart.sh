#!/usr/bin/env bash
# The embedded default in one command: build teleport and tctl, start an auth
# service on SQLite under ./quickstart, create a user and a join token with
# tctl, stop it, then clone its cluster state into a second SQLite store and
# verify the copy. Safe to run again (it starts from a clean ./quickstart).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin teleport --bin tctl
bin=target/release
rm -rf quickstart
mkdir -p quickstart
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
auth_port=$(free_port)
diag_port=$(free_port)
cat > quickstart/teleport.yaml <<YAML
version: v3
teleport:
  data_dir: $(pwd)/quickstart/data
  diag_addr: 127.0.0.1:${diag_port}
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:${auth_port}
  cluster_name: quickstart.local
  authentication:
    type: local
    second_factor: "off"
proxy_service:
  enabled: false
ssh_service:
  enabled: false
YAML

echo "+ teleport start --roles=auth -c quickstart/teleport.yaml"
"$bin/teleport" start --roles=auth -c quickstart/teleport.yaml 2> quickstart/teleport.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -fs "127.0.0.1:${diag_port}/readyz" > /dev/null 2>&1; then break; fi
  if ! kill -0 $pid 2>/dev/null; then cat quickstart/teleport.log; exit 1; fi
  sleep 0.1
done
tctl() { echo "+ tctl $*"; "$bin/tctl" -c quickstart/teleport.yaml "$@"; }
tctl status
echo "quickstart-password" | tctl users add alice --roles=access,editor --logins=alice --password-stdin
tctl users ls
tctl tokens add --type=node --ttl=1h
tctl get roles --format=text
kill -TERM $pid
wait $pid
trap - EXIT

cat > quickstart/clone.yaml <<YAML
src:
  type: sqlite
  path: $(pwd)/quickstart/data/backend
dst:
  type: sqlite
  path: $(pwd)/quickstart/copy
parallel: 4
YAML
echo "+ teleport backend clone -c quickstart/clone.yaml --verify"
"$bin/teleport" backend clone -c quickstart/clone.yaml --verify
printf 'type: sqlite\npath: %s/quickstart/copy\n' "$(pwd)" > quickstart/copy.yaml
echo "+ teleport backend -c quickstart/copy.yaml ls /web/users"
"$bin/teleport" backend -c quickstart/copy.yaml ls /web/users
