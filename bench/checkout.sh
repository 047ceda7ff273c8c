#!/usr/bin/env bash
# Checkout benchmark: orders/s and latency of POST /v1/store/carts/{id}/checkout with a realistic
# cart (three lines, one coupon, address, shipping), at CLIENTS concurrent clients each with its
# own carts, plus the "add item → totals" latency; on SQLite, and on PostgreSQL when
# BENCH_POSTGRES_URL is set (a server URL; the script creates and drops its own database).
# With PRODUCTS 3 every cart buys the same three products (a sale: every checkout contends
# for the same stock rows); with more, each cart takes three of them.
#
#   bench/checkout.sh [CARTS_PER_CLIENT] [CLIENTS] [PRODUCTS]   (defaults 100, 32, 3; needs wrk)
#
# A GET /healthz baseline (wrk, 64 connections, 5 s) is measured in the same run. Traffic goes
# to 127.0.0.1 only. Run it on a quiet machine: a build on the other core halves every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
carts=${1:-100}
clients=${2:-32}
products=${3:-3}
port=${BENCH_PORT:-18183}
base="http://127.0.0.1:$port"
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p emporium -p emporium-loadgen
bin="$target/release/emporium"
loadgen="$target/release/loadgen"
password='bench staff passphrase'
pid=
data=
database=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ -n "$data" ] && rm -rf "$data"
  [ -n "$database" ] && psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $database" >/dev/null
  pid= data= database=
}
trap cleanup EXIT

# run NAME [--database-url URL]: a fresh store, a staff user, then the load generator.
run() {
  local name=$1; shift
  data=$(mktemp -d)
  echo "$password" | EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$data" "$@" admin create \
    --email bench@example.com --role admin >/dev/null
  # The load pays with the test provider, which a store enables only by choice.
  EMPORIUM_PAYMENTS__PROVIDERS="[test]" EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$data" "$@" serve --listen "127.0.0.1:$port" &
  pid=$!
  until curl -fs "$base/readyz" >/dev/null 2>&1; do sleep 0.01; done
  echo "== $name: GET /healthz (baseline), 64 connections, 5 s"
  wrk -t2 -c64 -d5s --latency "$base/healthz" | grep -E 'Requests/sec|50%|99%'
  echo "== $name: checkout, $clients clients × $carts carts, $products products"
  LOADGEN_ADMIN_PASSWORD=$password "$loadgen" --base "$base" --admin-email bench@example.com \
    --clients "$clients" --carts-per-client "$carts" --products "$products"
  echo "RSS after the run: $(( $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status") / 1024 )) MiB"
  cleanup
}

run sqlite
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  database="emporium_bench_$$"
  psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $database" >/dev/null
  run postgresql --database-url "${BENCH_POSTGRES_URL%/*}/$database"
fi
