#!/usr/bin/env bash
# Statements per placed order on PostgreSQL, counted by pg_stat_statements over the checkout
# phase alone (the carts are filled first, then the counters are reset), background work
# (completer, outbox relay, event consumers) included, until the outbox is delivered.
#
#   bench/pg-statements.sh [CARTS_PER_CLIENT] [CLIENTS] [PRODUCTS]   (defaults 100, 32, 3)
#
# It starts a throw-away PostgreSQL cluster of its own (pg_stat_statements preloaded, default
# durability) on a free loopback port, so the machine's server is left as it is; it needs
# PostgreSQL's initdb and pg_ctl under /usr/lib/postgresql/*/bin and runs them as `postgres`.
# Also prints `pgbench -M prepared` TPC-B tps on the same cluster and cores, the ceiling the
# orders/s figure is read against.
set -euo pipefail
cd "$(dirname "$0")/.."
carts=${1:-100}
clients=${2:-32}
products=${3:-3}
port=${BENCH_PORT:-18184}
pg_port=${BENCH_PG_PORT:-55433}
base="http://127.0.0.1:$port"
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

# Statement counts do not depend on the build: BENCH_PROFILE=debug skips the release build.
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release -q -p emporium -p emporium-loadgen
else
  cargo build -q -p emporium -p emporium-loadgen
fi
# BENCH_BIN runs another build of the server (an older commit's, for a baseline).
bin=${BENCH_BIN:-$target/$profile/emporium}
loadgen="$target/$profile/loadgen"
password='bench staff passphrase'
cluster=$(mktemp -d /tmp/emporium-pgss.XXXXXX)
data=$(mktemp -d)
chown postgres "$cluster"
pid=
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  as_pg "$pg_bin/pg_ctl" -D "$cluster/db" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$cluster" "$data"
}
trap cleanup EXIT

as_pg "$pg_bin/initdb" -D "$cluster/db" --auth=trust -U postgres >/dev/null
cat >>"$cluster/db/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$cluster'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
max_connections = 200
CONF
as_pg "$pg_bin/pg_ctl" -D "$cluster/db" -l "$cluster/log" -w start >/dev/null
admin_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
psql -q "$admin_url" -c "CREATE EXTENSION pg_stat_statements" -c "CREATE DATABASE emporium" >/dev/null
url="postgres://postgres@127.0.0.1:$pg_port/emporium"

echo "$password" | EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$data" --database-url "$url" admin create \
  --email bench@example.com --role admin >/dev/null
EMPORIUM_PAYMENTS__PROVIDERS="[test]" EMPORIUM_LOG_LEVEL=warn "$bin" --data-dir "$data" --database-url "$url" \
  serve --listen "127.0.0.1:$port" &
pid=$!
until curl -fs "$base/readyz" >/dev/null 2>&1; do sleep 0.01; done

counted() {
  psql -qAt "$admin_url" -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
    JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'emporium'"
}
pending() { curl -fs "$base/metrics" | awk '$1 == "emporium_outbox_pending_events" { print $2 }'; }

fifo="$cluster/go"
mkfifo "$fifo"
LOADGEN_ADMIN_PASSWORD=$password "$loadgen" --base "$base" --admin-email bench@example.com \
  --clients "$clients" --carts-per-client "$carts" --products "$products" --pause-before-checkout \
  <"$fifo" | tee "$cluster/loadgen.out" &
lg=$!
exec 3>"$fifo"
# Wait for the pause and for the carts' events to be delivered, then count from zero.
until grep -q 'carts ready' "$cluster/loadgen.out" 2>/dev/null; do sleep 0.2; done
sleep 1
while [ "$(pending)" != 0 ]; do sleep 0.1; done
psql -qAt "$admin_url" -c "SELECT pg_stat_statements_reset()" >/dev/null
echo >&3
wait "$lg"
exec 3>&-
# Let the background work of the last orders finish (the completer runs on its own).
sleep 2
while [ "$(pending)" != 0 ]; do sleep 0.1; done
sleep 1
orders=$(( carts * clients ))
total=$(counted)
echo "statements over the checkout phase: $total for $orders orders = $(python3 -c "print(round($total / $orders, 1))") per order"
psql -qAt "$admin_url" -F ' | ' -c "SELECT round(s.calls::numeric / $orders, 2), left(regexp_replace(s.query, '\s+', ' ', 'g'), 110)
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
  WHERE d.datname = 'emporium' ORDER BY s.calls DESC LIMIT 30"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "== pgbench -M prepared -c 32 -j 2 -T 10 (TPC-B-like), same cluster"
as_pg "$pg_bin/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -i -q -s 10 postgres >/dev/null 2>&1
as_pg "$pg_bin/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -M prepared -c 32 -j 2 -T 10 postgres 2>/dev/null | grep -E '^tps'
