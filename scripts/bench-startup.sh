#!/usr/bin/env bash
# Time from `teleport start --roles=auth` to /readyz answering 200, on the
# embedded default (SQLite), for a first start (a new cluster: CA
# generation) and for restarts of the same data dir. Release build.
#
#   scripts/bench-startup.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
if [[ "${1:-}" == "--runs" ]]; then runs=$2; fi
cargo build --release --quiet --bin teleport
bin=$(pwd)/target/release/teleport
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One start: prints milliseconds until /readyz is 200, then stops it.
start_once() {
  local dir=$1 diag auth
  diag=$(free_port)
  auth=$(free_port)
  cat > "$dir/teleport.yaml" <<YAML
version: v3
teleport:
  data_dir: $dir/data
  diag_addr: 127.0.0.1:$diag
auth_service:
  listen_addr: 127.0.0.1:$auth
  cluster_name: bench.local
proxy_service:
  enabled: false
ssh_service:
  enabled: false
YAML
  python3 - "$bin" "$dir/teleport.yaml" "$diag" <<'PY'
import subprocess, sys, time, urllib.request, signal
bin, cfg, diag = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.monotonic()
p = subprocess.Popen([bin, "start", "--roles=auth", "-c", cfg], stderr=subprocess.DEVNULL)
while True:
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{diag}/readyz", timeout=1).status == 200:
            break
    except Exception:
        pass
    if p.poll() is not None:
        sys.exit("teleport exited early")
    time.sleep(0.002)
ms = (time.monotonic() - t0) * 1000
p.send_signal(signal.SIGTERM)
p.wait()
print(f"{ms:.0f}")
PY
}

first=()
restart=()
for i in $(seq 1 "$runs"); do
  d="$work/run$i"
  mkdir -p "$d"
  first+=("$(start_once "$d")")
  restart+=("$(start_once "$d")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "teleport start -> /readyz 200, sqlite, release build, $runs runs each"
echo "first start (new cluster, 9 CAs generated): median $(median "${first[@]}") ms  (runs: ${first[*]})"
echo "restart (same data dir):                     median $(median "${restart[@]}") ms  (runs: ${restart[*]})"
