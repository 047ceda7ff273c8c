#!/usr/bin/env bash
# The gateway against nginx as the reverse proxy in front of the same two store instances:
# product reads by id at 64 connections, requests/s and p99 for each, beside the same reads
# sent to one instance directly and GET /healthz through each proxy, all in one run. Rounds
# alternate nginx and the gateway, so drift on a shared machine hits both alike.
#
#   bench/gateway.sh [DURATION_SECONDS] [ROUNDS]   (defaults 10 and 3; needs wrk, nginx, curl,
#                                                   python3 and a PostgreSQL at BENCH_PG_URL)
#
# The two instances are all-in-one stores over one PostgreSQL database (created and dropped
# here), the first seeded with the demo data. Traffic goes to 127.0.0.1 only. Run it on a
# quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
rounds=${2:-3}
pg=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target
for tool in wrk nginx curl python3 psql; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p emporium
  bin="$target/release/emporium"
fi
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
db="emporium_bench_gateway_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$pg" -qc "CREATE DATABASE $db" >/dev/null
db_url="${pg%/*}/$db"

a=$(free_port); b=$(free_port); gw=$(free_port); ng=$(free_port)
start_store() { # port, extra args
  local port=$1; shift
  EMPORIUM_LOG_LEVEL=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/store-$port" \
    --database-url "$db_url" "$@" >"$work/store-$port.log" 2>&1 &
  pids+=($!)
  until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
}
start_store "$a" --demo
start_store "$b"

cat >"$work/gateway.toml" <<EOF
listen = "127.0.0.1:$gw"
[[routes]]
prefix = "/"
group = "catalog"
balance = "round_robin"
[upstreams.catalog]
instances = [{ url = "http://127.0.0.1:$a" }, { url = "http://127.0.0.1:$b" }]
EOF
EMPORIUM_LOG_LEVEL=warn RUST_LOG=warn "$bin" gateway --config "$work/gateway.toml" >"$work/gateway.log" 2>&1 &
pids+=($!)

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream stores {
    server 127.0.0.1:$a;
    server 127.0.0.1:$b;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$ng;
    location / {
      proxy_pass http://stores;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
until curl -fs "http://127.0.0.1:$gw/gateway/healthz" >/dev/null 2>&1; do sleep 0.05; done
until curl -fs "http://127.0.0.1:$ng/healthz" >/dev/null 2>&1; do sleep 0.05; done

product=$(curl -fs "http://127.0.0.1:$a/v1/store/products?limit=1" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
path="/v1/store/products/$product"
for port in "$a" "$b" "$gw" "$ng"; do curl -fs "http://127.0.0.1:$port$path" >/dev/null; done

run() { # label port path
  local out
  out=$(wrk -t2 -c64 -d"${duration}s" --latency "http://127.0.0.1:$2$3")
  printf '%-34s %10s req/s  p50 %8s  p99 %8s  %s\n' "$1" \
    "$(awk '/Requests\/sec/ { print $2 }' <<<"$out")" \
    "$(awk '$1 == "50%" { print $2 }' <<<"$out")" \
    "$(awk '$1 == "99%" { print $2 }' <<<"$out")" \
    "$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')"
}
echo "== $(nproc) cores, wrk -t2 -c64 -d${duration}s, product $product"
run "one instance directly" "$a" "$path"
for round in $(seq 1 "$rounds"); do
  echo "-- round $round"
  run "nginx, 2 instances" "$ng" "$path"
  run "gateway, 2 instances" "$gw" "$path"
done
run "nginx, GET /healthz" "$ng" /healthz
run "gateway, GET /healthz" "$gw" /healthz
