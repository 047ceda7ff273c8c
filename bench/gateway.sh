#!/usr/bin/env bash
# The gateway against nginx as the reverse proxy in front of the same two store instances:
# product reads by id at 64 connections, requests/s, p99 and the CPU time per request of the
# proxy and of the instances for each, beside the same reads sent to one instance directly and
# GET /healthz through each proxy, all in one run. Rounds alternate nginx and the gateway (and
# which of them goes first), so drift on a shared machine hits both alike.
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
  cargo build --release --locked -q -p emporium
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
# wait_up PID URL LOG: until URL answers 200; fails when PID exits or after 120 s.
wait_up() {
  local deadline=$((SECONDS + 120))
  until curl -fs "$2" >/dev/null 2>&1; do
    if ! kill -0 "$1" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "bench: $2 did not come up; the end of $3:" >&2
      tail -n 20 "$3" >&2
      exit 1
    fi
    sleep 0.05
  done
}
start_store() { # port, extra args
  local port=$1; shift
  EMPORIUM_LOG_LEVEL=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/store-$port" \
    --database-url "$db_url" "$@" >"$work/store-$port.log" 2>&1 &
  pids+=($!)
  wait_up "$!" "http://127.0.0.1:$port/readyz" "$work/store-$port.log"
}
start_store "$a" --demo
store_a=${pids[-1]}
start_store "$b"
store_b=${pids[-1]}

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
gateway=$!
pids+=("$gateway")

mkdir -p "$work/nginx"
# nginx tuned as one would for this job: a worker per core, no access log, keep-alive to the
# instances, and connections kept open as long as wrk keeps them (nginx closes a keep-alive
# connection after 1,000 requests by default, on both sides). It sets the headers the gateway
# sets, but traceparent, which nginx cannot make without a module.
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile 65536;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream stores {
    server 127.0.0.1:$a;
    server 127.0.0.1:$b;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$ng;
    location / {
      proxy_pass http://stores;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$proxy_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
EOF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/out.log" 2>&1 &
nginx=$!
pids+=("$nginx")
wait_up "$gateway" "http://127.0.0.1:$gw/gateway/healthz" "$work/gateway.log"
wait_up "$nginx" "http://127.0.0.1:$ng/healthz" "$work/nginx/error.log"

product=$(curl -fs "http://127.0.0.1:$a/v1/store/products?limit=1" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
path="/v1/store/products/$product"
for port in "$a" "$b" "$gw" "$ng"; do curl -fs "http://127.0.0.1:$port$path" >/dev/null; done

# CPU ticks (utime + stime, /proc/PID/stat) of the processes named, and of nginx's workers.
hz=$(getconf CLK_TCK)
ticks() {
  local pid line total=0 fields
  for pid in "$@"; do
    read -r line 2>/dev/null <"/proc/$pid/stat" || continue
    read -r -a fields <<<"${line##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}
nginx_ticks() {
  # shellcheck disable=SC2046
  ticks "$nginx" $(pgrep -P "$nginx")
}

# run LABEL PORT PATH [PROXY]: one wrk run; with PROXY (nginx or gateway), also the CPU time
# per request of that proxy and of the two instances together.
run() {
  local out proxy_before=0 proxy_after=0 stores_before stores_after requests
  case "${4:-}" in
    nginx) proxy_before=$(nginx_ticks) ;;
    gateway) proxy_before=$(ticks "$gateway") ;;
  esac
  stores_before=$(ticks "$store_a" "$store_b")
  out=$(wrk -t2 -c64 -d"${duration}s" --latency "http://127.0.0.1:$2$3")
  stores_after=$(ticks "$store_a" "$store_b")
  case "${4:-}" in
    nginx) proxy_after=$(nginx_ticks) ;;
    gateway) proxy_after=$(ticks "$gateway") ;;
  esac
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  printf '%-30s %10s req/s  p50 %8s  p99 %8s  CPU µs/req: proxy %5s, instances %5s  %s\n' "$1" \
    "$(awk '/Requests\/sec/ { print $2 }' <<<"$out")" \
    "$(awk '$1 == "50%" { print $2 }' <<<"$out")" \
    "$(awk '$1 == "99%" { print $2 }' <<<"$out")" \
    "$(awk -v t=$((proxy_after - proxy_before)) -v n="$requests" -v hz="$hz" \
      'BEGIN { printf "%.1f", t * 1e6 / hz / n }')" \
    "$(awk -v t=$((stores_after - stores_before)) -v n="$requests" -v hz="$hz" \
      'BEGIN { printf "%.1f", t * 1e6 / hz / n }')" \
    "$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')"
}
echo "== $(nproc) cores, wrk -t2 -c64 -d${duration}s, product $product"
run "one instance directly" "$a" "$path"
for round in $(seq 1 "$rounds"); do
  echo "-- round $round"
  # Each round swaps which proxy goes first.
  if [ $((round % 2)) = 1 ]; then
    run "nginx, 2 instances" "$ng" "$path" nginx
    run "gateway, 2 instances" "$gw" "$path" gateway
  else
    run "gateway, 2 instances" "$gw" "$path" gateway
    run "nginx, 2 instances" "$ng" "$path" nginx
  fi
done
echo "-- GET /healthz"
run "one instance directly" "$a" /healthz
run "nginx, 2 instances" "$ng" /healthz nginx
run "gateway, 2 instances" "$gw" /healthz gateway
