#!/usr/bin/env bash
# The local cluster (deploy/local-cluster.sh: the gateway, two core and two inventory instances)
# against the all-in-one store, both on PostgreSQL, in one run, one shape after the other: an
# idle spell, GET /healthz, product reads by id (wrk, 64 connections, random ids of the demo
# catalog), then the checkout load of bench/loadgen (CLIENTS clients fill their carts, then
# check them all out). Around each phase it reads every process's CPU time (utime + stime from
# /proc/PID/stat), so each phase prints the CPU microseconds per request of each process: the
# gateway, each core and inventory instance or the all-in-one store, PostgreSQL (every backend
# of the server), NATS, Redis, and the load generator itself.
#
#   bench/cluster.sh [READ_SECONDS] [CARTS_PER_CLIENT] [CLIENTS] [PRODUCTS]
#                    (defaults 10, 50, 32, 3, as bench/checkout.sh takes them; needs wrk, curl,
#                     python3, psql, ss, and PostgreSQL, NATS and Redis on this machine)
#
# BENCH_BIN and BENCH_LOADGEN name the binaries (default: a release build in CARGO_TARGET_DIR),
# BENCH_PG_URL the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres),
# BENCH_NATS_URL and BENCH_REDIS_URL the cluster's NATS and Redis (the machine's by default).
# Every database, folder and process it makes is removed at exit. Traffic goes to 127.0.0.1
# only. Everything shares this machine's cores: run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
read_seconds=${1:-10}
carts=${2:-50}
clients=${3:-32}
products=${4:-3}
pg=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
nats=${BENCH_NATS_URL:-nats://127.0.0.1:4222}
redis=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target
for tool in wrk curl python3 psql ss; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
bin=${BENCH_BIN:-}
loadgen=${BENCH_LOADGEN:-}
if [ -z "$bin" ] || [ -z "$loadgen" ]; then
  cargo build --release --locked -q -p emporium -p emporium-loadgen
  bin=${bin:-$target/release/emporium}
  loadgen=${loadgen:-$target/release/loadgen}
fi
bin=$(realpath "$bin")
loadgen=$(realpath "$loadgen")
hz=$(getconf CLK_TCK)
TIMEFORMAT='%3U %3S' # what `time` reports: user and system seconds
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work=$(mktemp -d)
db="emporium_bench_aio_$$"
cluster_dir="$work/cluster"
cluster_prefix="emporium_bench_cluster_$$"
store_pid=
cluster_started=
cleanup() {
  set +e
  exec 3>&- 2>/dev/null
  [ -n "$store_pid" ] && { kill "$store_pid" 2>/dev/null; wait "$store_pid" 2>/dev/null; }
  if [ -n "$cluster_started" ]; then
    EMPORIUM_CLUSTER_DIR=$cluster_dir EMPORIUM_CLUSTER_DB_PREFIX=$cluster_prefix \
      deploy/local-cluster.sh down >/dev/null 2>&1
    EMPORIUM_CLUSTER_DIR=$cluster_dir EMPORIUM_CLUSTER_DB_PREFIX=$cluster_prefix \
      EMPORIUM_CLUSTER_PG_URL=${pg%/*} deploy/local-cluster.sh clean >/dev/null 2>&1
  fi
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# ticks PID: utime + stime of a running process (0 when gone); ticks_reaped PID: the cutime +
# cstime of the children it reaped (PostgreSQL's backends that ended).
stat_fields() { # PID: the fields after the command name (state is $1, utime $12)
  local line
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  echo "${line##*) }"
}
ticks() {
  local f
  f=$(stat_fields "$1") || { echo 0; return; }
  # shellcheck disable=SC2086
  set -- $f
  echo $(( ${12} + ${13} ))
}
ticks_reaped() {
  local f
  f=$(stat_fields "$1") || { echo 0; return; }
  # shellcheck disable=SC2086
  set -- $f
  echo $(( ${14} + ${15} ))
}
# PostgreSQL: the postmaster and every live child, plus the backends it reaped.
postgres_ticks() {
  local total f line rest
  total=$(( $(ticks "$postmaster") + $(ticks_reaped "$postmaster") ))
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    [ "$2" = "$postmaster" ] && total=$((total + ${12} + ${13}))
  done
  echo "$total"
}
machine_ticks() { # busy ticks of every CPU (user, nice, system, irq, softirq, steal)
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# The shared engines' processes: PostgreSQL's postmaster (the parent of its checkpointer), and
# whatever listens on NATS's and Redis's ports.
checkpointer=$(psql "$pg" -qAtc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
postmaster=$(stat_fields "$checkpointer" | awk '{ print $2 }')
[ -n "$postmaster" ] || { echo "bench: PostgreSQL must run on this machine" >&2; exit 1; }
listener_pid() { # URL: the pid listening on its port, empty when none is found
  local port=${1##*:}
  port=${port%%/*}
  ss -Hltnp "sport = :$port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}
nats_pid=$(listener_pid "$nats")
redis_pid=$(listener_pid "$redis")

# The processes of the shape under test, as "label=pid" (set by each shape), and a snapshot
# of their ticks per label.
procs=()
declare -A before after
snapshot() { # ARRAY-NAME
  local -n into=$1
  local entry
  into=()
  for entry in "${procs[@]}"; do into[${entry%%=*}]=$(ticks "${entry#*=}"); done
  into[postgresql]=$(postgres_ticks)
  [ -n "$nats_pid" ] && into[nats]=$(ticks "$nats_pid")
  [ -n "$redis_pid" ] && into[redis]=$(ticks "$redis_pid")
  into[machine]=$(machine_ticks)
  into[at]=$(date +%s.%N)
}

# report TITLE REQUESTS CLIENT-LABEL CLIENT-MS: CPU per process between the snapshots.
report() {
  local title=$1 requests=$2 client=$3 client_ms=$4 wall entry label ms sum_ms=0
  wall=$(awk -v a="${before[at]}" -v b="${after[at]}" 'BEGIN { printf "%.2f", b - a }')
  printf '%s: %d requests, %s s from snapshot to snapshot\n' "$title" "$requests" "$wall"
  printf '  %-22s %10s %12s %10s\n' process "CPU ms" "µs/request" "cores"
  row() { # label ms
    awk -v l="$1" -v ms="$2" -v n="$requests" -v w="$wall" 'BEGIN {
      printf "  %-22s %10.0f %12.1f %10.2f\n", l, ms, (n > 0 ? ms * 1000 / n : 0), ms / 1000 / w }'
  }
  for entry in "${procs[@]}" postgresql=0 nats=0 redis=0; do
    label=${entry%%=*}
    [ -n "${after[$label]:-}" ] || continue
    ms=$(( (after[$label] - before[$label]) * 1000 / hz ))
    sum_ms=$((sum_ms + ms))
    row "$label" "$ms"
  done
  row "$client" "$client_ms"
  sum_ms=$((sum_ms + client_ms))
  row "sum of the above" "$sum_ms"
  row "machine (/proc/stat)" $(( (after[machine] - before[machine]) * 1000 / hz ))
}

# time_ms FILE: user + system milliseconds from a `time` report written as "%3U %3S".
time_ms() { awk '{ printf "%d", ($1 + $2) * 1000 }' "$1"; }

# measure SHAPE BASE HEALTH-URL…: a shape's phases against BASE (its storefront entry point),
# after a GET /healthz baseline on each HEALTH-URL.
measure() {
  local shape=$1 base=$2 out requests client_ms url
  shift 2
  echo
  echo "######## $shape"
  # Ids of the demo catalog, read through the entry point under test.
  curl -fs "$base/v1/store/products?limit=100" |
    python3 -c 'import json,sys; [print("/v1/store/products/" + p["id"]) for p in json.load(sys.stdin)["items"]]' \
      >"$work/paths"
  # One read of each, so the measured reads find the caches as a running store has them.
  while read -r path; do curl -fs -o /dev/null "$base$path"; done <"$work/paths"

  snapshot before
  sleep 5
  snapshot after
  report "== $shape: idle, 5 s" 0 "(none)" 0

  for url in "$@"; do
    out=$(wrk -t2 -c64 -d5s --latency "$url")
    echo "== $shape: GET ${url#http://127.0.0.1:} (baseline), wrk -t2 -c64 -d5s:" \
      "$(awk '/Requests\/sec/ { print $2 }' <<<"$out") req/s," \
      "p50 $(awk '$1 == "50%" { print $2 }' <<<"$out"), p99 $(awk '$1 == "99%" { print $2 }' <<<"$out")"
  done

  snapshot before
  out=$( { time PATHS="$work/paths" wrk -t2 -c64 -d"${read_seconds}s" --latency \
    -s bench/random_path.lua "$base"; } 2>"$work/wrk.time")
  snapshot after
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  echo "== $shape: product by id (100 ids at random), wrk -t2 -c64 -d${read_seconds}s:" \
    "$(awk '/Requests\/sec/ { print $2 }' <<<"$out") req/s," \
    "p50 $(awk '$1 == "50%" { print $2 }' <<<"$out"), p99 $(awk '$1 == "99%" { print $2 }' <<<"$out")," \
    "$(grep -E '^non-2xx' <<<"$out")"
  report "   CPU" "$requests" wrk "$(time_ms "$work/wrk.time")"

  # The load generator waits before checking out (--pause-before-checkout): the snapshots
  # between its phases are taken while it waits, after the background work has settled.
  rm -f "$work/go" && mkfifo "$work/go"
  (
    { time LOADGEN_ADMIN_PASSWORD='demo owner passphrase' "$loadgen" --base "$base" \
      --admin-email owner@demo.emporium.test --clients "$clients" --carts-per-client "$carts" \
      --products "$products" --pause-before-checkout <"$work/go" >"$work/loadgen.out" 2>&1; } 2>"$work/loadgen.time"
  ) &
  local sub=$! lpid= started_ms
  exec 3>"$work/go"
  until grep -q '^shop ready' "$work/loadgen.out" 2>/dev/null; do
    kill -0 "$sub" 2>/dev/null || { cat "$work/loadgen.out" >&2; return 1; }
    sleep 0.01
  done
  lpid=$(pgrep -P "$sub" -x loadgen | head -n 1)
  snapshot before
  started_ms=$(( $(ticks "$lpid") * 1000 / hz ))
  until grep -q '^carts ready' "$work/loadgen.out"; do
    kill -0 "$sub" 2>/dev/null || { cat "$work/loadgen.out" >&2; return 1; }
    sleep 0.01
  done
  sleep 2
  snapshot after
  local filled_ms=$(( $(ticks "$lpid") * 1000 / hz ))
  grep '^carts:' "$work/loadgen.out" | sed "s/^/== $shape: /"
  echo "   (a cart is 7 requests: create, 3 × add item, address, shipping, coupon)"
  report "   CPU, filling carts" $((clients * carts * 7)) loadgen $((filled_ms - started_ms))

  snapshot before
  echo >&3
  exec 3>&-
  wait "$sub" || { cat "$work/loadgen.out" >&2; return 1; }
  sleep 2
  snapshot after
  grep -E '^(checkout|errors):' "$work/loadgen.out" | sed "s/^/== $shape: /"
  report "   CPU, checking out (until 2 s after the last answer)" $((clients * carts)) loadgen \
    $(( $(time_ms "$work/loadgen.time") - filled_ms ))
}

echo "== $(nproc) cores; $bin; $read_seconds s of reads; $clients clients × $carts carts"

# The all-in-one store on a database of its own.
psql "$pg" -qc "CREATE DATABASE $db" >/dev/null
port=$(free_port)
EMPORIUM_PAYMENTS__PROVIDERS="[test]" EMPORIUM_LOG_LEVEL=warn "$bin" serve \
  --listen "127.0.0.1:$port" --data-dir "$work/all-in-one" --database-url "${pg%/*}/$db" --demo \
  >"$work/all-in-one.log" 2>&1 &
store_pid=$!
until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  kill -0 "$store_pid" 2>/dev/null || { cat "$work/all-in-one.log" >&2; exit 1; }
  sleep 0.05
done
procs=("all-in-one=$store_pid")
measure all-in-one "http://127.0.0.1:$port" "http://127.0.0.1:$port/healthz"
kill "$store_pid"
wait "$store_pid" || true
store_pid=

# The local cluster, stopped and removed at exit.
cluster_started=1
EMPORIUM_BIN=$bin EMPORIUM_CLUSTER_DIR=$cluster_dir EMPORIUM_CLUSTER_DB_PREFIX=$cluster_prefix \
  EMPORIUM_CLUSTER_PG_URL=${pg%/*} EMPORIUM_CLUSTER_NATS_URL=$nats EMPORIUM_CLUSTER_REDIS_URL=$redis \
  deploy/local-cluster.sh up >"$work/cluster-up.log" 2>&1 || { cat "$work/cluster-up.log" >&2; exit 1; }
procs=()
for name in gateway core-1 core-2 inventory-1 inventory-2; do
  procs+=("$name=$(cat "$cluster_dir/$name.pid")")
done
# Baselines: the gateway's own health answer (no upstream), and core-1's /healthz directly.
gateway_url=$(cat "$cluster_dir/gateway.url")
measure "local cluster" "$gateway_url" "$gateway_url/gateway/healthz" \
  "http://127.0.0.1:$(cat "$cluster_dir/core-1.port")/healthz"
