#!/usr/bin/env bash
# Admin UI benchmark: the order list page (`/admin/orders`, 50 orders a page) rendered for a
# signed-in staff user once the store holds ORDERS orders placed through real checkouts, beside
# the API read the page is built on (`GET /v1/admin/orders?limit=50`) in the same run; then the
# list filtered by status and day, by a status no order has, the dashboard (which sums today's
# orders: all of them here) and one order's page. wrk's latency percentiles.
#
#   bench/admin.sh [ORDERS] [SECONDS]     (defaults 100000 and 20; needs wrk and curl)
#
# The orders come from the load generator's checkout (32 clients), on a fresh SQLite store.
# Traffic goes to 127.0.0.1 only. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-100000}
duration=${2:-20}
port=${BENCH_PORT:-18187}
base="http://127.0.0.1:$port"
clients=32
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p emporium -p emporium-loadgen
bin="$target/release/emporium"
loadgen="$target/release/loadgen"
password='bench staff passphrase'
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

echo "$password" | EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$work/data" admin create \
  --email bench@example.com --role admin >/dev/null
EMPORIUM_PAYMENTS__PROVIDERS="[test]" EMPORIUM_LOG_LEVEL=warn \
  "$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" &
pid=$!
until curl -fs "$base/readyz" >/dev/null 2>&1; do sleep 0.05; done

echo "== $orders orders through checkout ($clients clients)"
start=$(date +%s)
LOADGEN_ADMIN_PASSWORD=$password "$loadgen" --base "$base" --admin-email bench@example.com \
  --clients "$clients" --carts-per-client $(( (orders + clients - 1) / clients )) --products 30 |
  grep -E '^checkout|^errors'
echo "placed in $(( $(date +%s) - start )) s"

token=$(curl -fs "$base/v1/auth/token" -d grant_type=password -d username=bench@example.com \
  -d scope=admin --data-urlencode "password=$password" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
summary=$(curl -fs "$base/v1/admin/orders/summary?since=2000-01-01T00:00:00Z" -H "authorization: Bearer $token")
echo "orders summary: $summary"

# The UI's session: sign in through its form as a browser would.
jar="$work/cookies"
csrf=$(curl -fs -c "$jar" "$base/admin/login" | sed -n 's/.*name="_csrf" value="\([^"]*\)".*/\1/p' | head -n 1)
curl -fs -o /dev/null -b "$jar" -c "$jar" -H "origin: $base" "$base/admin/login" \
  --data-urlencode "_csrf=$csrf" --data-urlencode "email=bench@example.com" \
  --data-urlencode "password=$password"
cookie="emporium_admin=$(awk '$6 == "emporium_admin" { print $7 }' "$jar")"
order=$(curl -fs "$base/v1/admin/orders?limit=1" -H "authorization: Bearer $token" |
  sed -n 's/.*"id":"\(ord_[^"]*\)".*/\1/p' | head -n 1)
today=$(date -u +%F)

measure() {
  local what=$1
  shift
  echo "-- $what"
  wrk -t2 -c8 -d"${duration}s" --latency "$@" | grep -E "Requests/sec|^ +50%|^ +90%|^ +99%|Non-2xx|errors"
}
measure "API: GET /v1/admin/orders?limit=50" -H "authorization: Bearer $token" "$base/v1/admin/orders?limit=50"
measure "UI: GET /admin/orders" -H "cookie: $cookie" "$base/admin/orders"
measure "UI: GET /admin/orders?status=placed&from=$today&to=$today" -H "cookie: $cookie" \
  "$base/admin/orders?status=placed&from=$today&to=$today"
measure "UI: GET /admin/orders?status=cancelled (no order is: an empty page)" -H "cookie: $cookie" \
  "$base/admin/orders?status=cancelled"
measure "UI: GET /admin (the dashboard: today's orders summed, low stock)" -H "cookie: $cookie" "$base/admin"
measure "UI: GET /admin/orders/$order" -H "cookie: $cookie" "$base/admin/orders/$order"
echo "RSS of the store: $(awk '/VmRSS/ { print $2, $3 }' "/proc/$pid/status")"
