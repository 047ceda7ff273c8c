#!/usr/bin/env bash
# Load benchmark of the all-in-one store: start-up time, idle and loaded RSS, and wrk figures for
# GET /healthz, an authenticated GET /v1/store/me, and the password grant.
#
#   bench/run.sh [DURATION_SECONDS]      (default 10; needs wrk: apt-get install wrk)
#
# Traffic goes to 127.0.0.1 only. Run it on a quiet machine: a build on the other core halves
# every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
port=${BENCH_PORT:-18181}
base="http://127.0.0.1:$port"
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p emporium
bin="$target/release/emporium"
data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# Start-up: create and migrate a fresh database, then serve. Measured from exec to the first
# successful /readyz, polled every millisecond.
start=$(date +%s%N)
EMPORIUM_LOG_LEVEL=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" &
pid=$!
until curl -fs "$base/readyz" >/dev/null 2>&1; do sleep 0.001; done
ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))
sleep 1
idle_rss=$(rss_kb "$pid")

curl -fs "$base/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery","name":"Bench"}' >/dev/null
token=$(curl -fs "$base/v1/auth/token" -d grant_type=password -d username=bench@example.com \
  --data-urlencode 'password=correct horse battery' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')

peak=0
sample_rss() {
  while kill -0 "$pid" 2>/dev/null; do
    r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    echo "$peak" > "$data/peak"
    sleep 0.2
  done
}
sample_rss & sampler=$!

echo "== GET /healthz, 64 connections, ${duration}s"
wrk -t2 -c64 -d"${duration}s" --latency "$base/healthz" | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|errors"
echo "== GET /v1/store/me (bearer JWT), 64 connections, ${duration}s"
wrk -t2 -c64 -d"${duration}s" --latency -H "authorization: Bearer $token" "$base/v1/store/me" | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|errors"
echo "== POST /v1/auth/token grant_type=password (argon2id m=19456 KiB, t=2, p=1), 8 connections, ${duration}s"
wrk -t2 -c8 -d"${duration}s" --latency -s bench/password_grant.lua "$base/v1/auth/token" | grep -E "Requests/sec|^ +50%|^ +99%|non-200|errors"

kill "$sampler" 2>/dev/null || true
echo "== process"
echo "ready after: ${ready_ms} ms (exec to first 200 from /readyz, fresh database)"
echo "RSS idle: $((idle_rss / 1024)) MiB"
echo "RSS peak under load: $(( $(cat "$data/peak") / 1024 )) MiB"
