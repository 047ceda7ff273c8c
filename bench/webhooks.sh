#!/usr/bin/env bash
# Webhook benchmark: the checkout rate with ten webhook endpoints subscribed to `order.*`
# against none (same run, alternating, ROUNDS times each), and how fast the deliverer sends
# to a local receiver (nginx answering 204 on loopback).
#
#   bench/webhooks.sh [CARTS_PER_CLIENT] [CLIENTS] [ROUNDS] [ENDPOINTS] [TYPES]
#                     (defaults 50, 32, 2, 10, order.*; needs wrk's sibling tools: curl, nginx)
#
# The receiver runs at the lowest CPU priority (it stands in for other machines). Deliveries/s
# is read from the store's own counter of successful attempts
# (emporium_webhook_attempts_total) while the deliveries made by the run drain after it.
# On SQLite; on PostgreSQL instead when BENCH_POSTGRES_URL is set (a server URL; each round
# creates and drops a database of its own). Traffic goes to 127.0.0.1 only. Run it on a quiet
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
carts=${1:-50}
clients=${2:-32}
rounds=${3:-2}
endpoints=${4:-10}
types=${5:-order.*}
port=${BENCH_PORT:-18185}
hook_port=${BENCH_HOOK_PORT:-18186}
base="http://127.0.0.1:$port"
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target

command -v nginx >/dev/null || { echo "bench: nginx is missing (apt-get install nginx)" >&2; exit 1; }
cargo build --release -q -p emporium -p emporium-loadgen
bin="$target/release/emporium"
loadgen="$target/release/loadgen"
password='bench staff passphrase'
work=$(mktemp -d)
pid=
data=
database=
drop_database() {
  [ -n "$database" ] && psql -q "$BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null
  database=
}
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  drop_database
  rm -rf "$work"
}
trap cleanup EXIT

# The receiver: nginx, one worker per core, answering every POST with 204. It stands in for
# receivers on other machines, so it runs at the lowest CPU priority: what it spends on these
# two cores is not the store's cost.
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work;
  server {
    listen 127.0.0.1:$hook_port;
    keepalive_requests 100000;
    location / { return 204; }
  }
}
CONF
nice -n 19 nginx -c "$work/nginx.conf"

succeeded() {
  curl -fs "$base/metrics" | awk '/^emporium_webhook_attempts_total\{outcome="succeeded"\}/ { print $2 }' | tail -n 1
}

# run HOOKS: a fresh store with HOOKS endpoints, then the load generator's checkout.
run() {
  local hooks=$1
  data=$(mktemp -d -p "$work")
  if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    database="emporium_bench_hooks_$$"
    psql -q "$BENCH_POSTGRES_URL" -c "CREATE DATABASE $database" >/dev/null
    export EMPORIUM_DATABASE_URL="${BENCH_POSTGRES_URL%/*}/$database"
  fi
  echo "$password" | EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$data" admin create \
    --email bench@example.com --role admin >/dev/null
  EMPORIUM_PAYMENTS__PROVIDERS="[test]" EMPORIUM_LOG_LEVEL=warn \
    EMPORIUM_NOTIFY__WEBHOOKS__ALLOWED_NETWORKS='["127.0.0.0/8"]' \
    "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" &
  pid=$!
  until curl -fs "$base/readyz" >/dev/null 2>&1; do sleep 0.01; done
  local token
  token=$(curl -fs "$base/v1/auth/token" -d grant_type=password -d username=bench@example.com \
    -d scope=admin --data-urlencode "password=$password" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  for i in $(seq 1 "$hooks"); do
    curl -fs "$base/v1/admin/webhooks" -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"url\": \"http://127.0.0.1:$hook_port/hook/$i\", \"event_types\": [\"$types\"]}" >/dev/null
  done
  echo "== $hooks endpoints ($types): checkout, $clients clients × $carts carts"
  LOADGEN_ADMIN_PASSWORD=$password "$loadgen" --base "$base" --admin-email bench@example.com \
    --clients "$clients" --carts-per-client "$carts" --products 30 | grep -E '^checkout|^errors'
  if [ "$hooks" -gt 0 ]; then
    # The drain: successful attempts counted every 0.5 s until two readings agree.
    local start now before after t0
    t0=$(date +%s%N); start=$(succeeded); before=$start
    while sleep 0.5; do
      after=$(succeeded)
      [ "$after" = "$before" ] && break
      before=$after
    done
    now=$(date +%s%N)
    echo "deliveries: $after succeeded in all; $((${after%.*} - ${start%.*})) after the checkout phase in $(( (now - t0) / 1000000 - 500 )) ms"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  rm -rf "$data"
  drop_database
}

for _ in $(seq 1 "$rounds"); do
  run 0
  run "$endpoints"
done
