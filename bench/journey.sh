#!/usr/bin/env bash
# One shopper's path from a new cart to a placed order, one journey at a time, on SQLite at the
# default durability: the six requests (create the cart, add an item, set the e-mail and
# address, list the shipping options, choose one, check out), their p50 / p99 as a whole and
# each, beside a GET /healthz baseline (wrk, 64 connections, 5 s) from the same run.
#
#   bench/journey.sh [JOURNEYS]   (default 500; needs wrk)
#
# BENCH_BIN runs another build of the server (an older commit's, for a baseline in the same
# run). Traffic goes to 127.0.0.1 only; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
journeys=${1:-500}
port=${BENCH_PORT:-18185}
base="http://127.0.0.1:$port"
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p emporium -p emporium-loadgen
bin=${BENCH_BIN:-$target/release/emporium}
loadgen="$target/release/loadgen"
password='bench staff passphrase'
data=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$data"' EXIT

echo "$password" | EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$data" admin create \
  --email bench@example.com --role admin >/dev/null
# The journeys pay with the test provider, which a store enables only by choice.
EMPORIUM_PAYMENTS__PROVIDERS="[test]" EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$data" \
  serve --listen "127.0.0.1:$port" &
pid=$!
until curl -fs "$base/readyz" >/dev/null 2>&1; do sleep 0.01; done
echo "== GET /healthz (baseline), 64 connections, 5 s"
wrk -t2 -c64 -d5s --latency "$base/healthz" | grep -E 'Requests/sec|50%|99%'
echo "== $journeys journeys, one client"
LOADGEN_ADMIN_PASSWORD=$password "$loadgen" --base "$base" --admin-email bench@example.com \
  --products 3 --journeys "$journeys" | grep -v '^shop ready'
