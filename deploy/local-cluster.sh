#!/usr/bin/env bash
# A local cluster of the scaled-out store on this machine: the gateway and two instances of
# each service group apart (identity, catalog, search, inventory and ordering: carts, pricing,
# payments and orders), each a process on its own loopback port, on this machine's PostgreSQL
# (a database per group), NATS (with JetStream) and Redis.
#
#   deploy/local-cluster.sh up       start it (refused when it is already up), wait until every
#                                    process is ready, print the gateway URL and demo accounts
#   deploy/local-cluster.sh status   each process with its pid and readiness
#   deploy/local-cluster.sh down     SIGTERM to each (the instances drain), wait, SIGKILL after a
#                                    bound; exits 1 when a process had to be killed
#   deploy/local-cluster.sh clean    (when down) drop the cluster's databases, remove the folder
#
# Settings (environment):
#   EMPORIUM_BIN                  the binary (default target/release/emporium, built with
#                                 `cargo build --release --locked` when missing)
#   EMPORIUM_GATEWAY_BIN          the binary that runs `emporium gateway` (default EMPORIUM_BIN)
#   EMPORIUM_CLUSTER_DIR          the run folder: configs, data, logs, pids (default ./cluster-run)
#   EMPORIUM_CLUSTER_DB_PREFIX    database names PREFIX_identity, PREFIX_catalog, PREFIX_search,
#                                 PREFIX_inventory and PREFIX_ordering, also the events' namespace
#                                 and the registry bucket (default emporium_local; [a-z0-9_])
#   EMPORIUM_CLUSTER_PG_URL       PostgreSQL server (default postgres://postgres@127.0.0.1:5432;
#                                 PGPASSWORD is used when the URL has no password)
#   EMPORIUM_CLUSTER_NATS_URL     default nats://127.0.0.1:4222
#   EMPORIUM_CLUSTER_REDIS_URL    default redis://127.0.0.1:6379
#   EMPORIUM_CLUSTER_GATEWAY_PORT the gateway's port (default: a free one)
#   EMPORIUM_CLUSTER_DEMO         1 (default): identity-1 (accounts), ordering-1 (pricing) and
#                                 catalog-1 (products, their stock) run with --demo, and every
#                                 ordering instance takes `test` payments; 0: an empty store
#   EMPORIUM_CLUSTER_DRAIN_MS     how long an instance keeps serving after SIGTERM (default 2000)
#   EMPORIUM_CLUSTER_START_TIMEOUT seconds to wait for each process to be ready (default 180)
#   EMPORIUM_CLUSTER_STOP_TIMEOUT  seconds to wait for the processes to exit (default 30)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${EMPORIUM_CLUSTER_DIR:-./cluster-run}
prefix=${EMPORIUM_CLUSTER_DB_PREFIX:-emporium_local}
pg_url=${EMPORIUM_CLUSTER_PG_URL:-postgres://postgres@127.0.0.1:5432}
nats_url=${EMPORIUM_CLUSTER_NATS_URL:-nats://127.0.0.1:4222}
redis_url=${EMPORIUM_CLUSTER_REDIS_URL:-redis://127.0.0.1:6379}
drain_ms=${EMPORIUM_CLUSTER_DRAIN_MS:-2000}
demo=${EMPORIUM_CLUSTER_DEMO:-1}
start_timeout=${EMPORIUM_CLUSTER_START_TIMEOUT:-180}
stop_timeout=${EMPORIUM_CLUSTER_STOP_TIMEOUT:-30}
# Signalled in this order, the gateway first; the instances keep serving while they drain.
names=(gateway ordering-2 ordering-1 search-2 search-1 catalog-2 catalog-1 identity-2 identity-1
    inventory-2 inventory-1)
# The instances, in start order; the kinds, one service group each with a database of its own.
instances=(inventory-1 inventory-2 identity-1 ordering-1 catalog-1 search-1
    identity-2 ordering-2 catalog-2 search-2)
kinds=(identity catalog search inventory ordering)

demo_owner="owner@demo.emporium.test / demo owner passphrase"
demo_shopper="shopper@demo.emporium.test / demo shopper passphrase"

say() { printf 'local-cluster: %s\n' "$*"; }
die() {
    printf 'local-cluster: %s\n' "$*" >&2
    exit 1
}

case "$prefix" in
    '' | *[!a-z0-9_]*) die "EMPORIUM_CLUSTER_DB_PREFIX must be lowercase letters, digits and _" ;;
esac
case "$demo" in
    0 | 1) ;;
    *) die "EMPORIUM_CLUSTER_DEMO must be 0 or 1" ;;
esac
for value in "$drain_ms" "$start_timeout" "$stop_timeout"; do
    case "$value" in
        '' | *[!0-9]*) die "timeouts and EMPORIUM_CLUSTER_DRAIN_MS must be whole numbers" ;;
    esac
done
run_dir=$(realpath -m "$run_dir")
# `env` arguments that drop every EMPORIUM_* variable from a process's environment.
unset_emporium=(-u EMPORIUM_CONFIG)
for var in ${!EMPORIUM_@}; do unset_emporium+=(-u "$var"); done

# The server's URL with database $1, and the password from PGPASSWORD when the URL has none.
pg_database_url() {
    python3 - "$pg_url" "$1" <<'PY'
import os, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
netloc = url.netloc
password = os.environ.get("PGPASSWORD")
if password and url.password is None:
    user, _, host = netloc.rpartition("@")
    if not user:
        sys.exit("EMPORIUM_CLUSTER_PG_URL names no user")
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}"
print(urllib.parse.urlunsplit((url.scheme, netloc, "/" + sys.argv[2], url.query, "")))
PY
}

pid_of() {
    cat "$run_dir/$1.pid" 2>/dev/null || true
}

# True when $2 runs and is the process this cluster started as $1 (its command line names the
# run folder), so that a pid reused by another program is never signalled.
alive() {
    local pid=$2 command
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    command=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $command == *"$run_dir/$1"* ]]
}

health_path() {
    if [ "$1" = gateway ]; then echo /gateway/healthz; else echo /readyz; fi
}

# The HTTP status of $1's health answer, 000 when it does not answer.
health_of() {
    local port
    port=$(cat "$run_dir/$1.port" 2>/dev/null) || {
        echo 000
        return
    }
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port$(health_path "$1")" || true
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

find_binary() {
    bin=${EMPORIUM_BIN:-$root/target/release/emporium}
    if [ ! -x "$bin" ]; then
        [ -z "${EMPORIUM_BIN:-}" ] || die "EMPORIUM_BIN=$bin is not an executable"
        say "building $bin (cargo build --release --locked)"
        (cd "$root" && CARGO_TARGET_DIR="$root/target" cargo build --release --locked -p emporium)
    fi
    gateway_bin=${EMPORIUM_GATEWAY_BIN:-$bin}
    [ -x "$gateway_bin" ] || die "EMPORIUM_GATEWAY_BIN=$gateway_bin is not an executable"
    "$gateway_bin" gateway --help >/dev/null 2>&1 ||
        die "$gateway_bin has no \`gateway\` command; set EMPORIUM_GATEWAY_BIN to a binary that has"
    case "$("$bin" serve --help 2>/dev/null || true)" in
        *--services*) ;;
        *) die "$bin cannot run service groups apart (\`serve --services\`)" ;;
    esac
}

create_databases() {
    local admin db kind
    admin=$(pg_database_url postgres)
    psql "$admin" -qAtc 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL at $pg_url"
    for kind in "${kinds[@]}"; do
        db=${prefix}_$kind
        if [ -z "$(psql "$admin" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
            psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
            say "created database $db"
        fi
    done
}

# Writes the configuration of instance $1 (KIND-N, running the service group KIND) on port $2.
write_instance_config() {
    local name=$1 port=$2 kind=${1%-*} database
    database=$(pg_database_url "${prefix}_$kind")
    mkdir -p "$run_dir/$name"
    (
        umask 077
        cat >"$run_dir/$name.toml" <<EOF
# $name of the local cluster (deploy/local-cluster.sh).
listen = "127.0.0.1:$port"
data_dir = "$run_dir/$name"
database_url = "$database"
services = ["$kind"]

[auth]
# One keyring for every process: the first to start creates it.
signing_keys_file = "$run_dir/keys/jwt-signing-keys.json"

[cluster]
nats_url = "$nats_url"
service_secret = "$secret"
advertise_url = "http://127.0.0.1:$port"
drain_ms = $drain_ms
# Event streams and a registry of this cluster's own, apart from any other on the same NATS.
namespace = "${prefix}"
registry_bucket = "${prefix}_registry"
EOF
        if [ "$kind" = ordering ] && [ "$demo" = 1 ]; then
            # `--demo` (ordering-1 only) enables the `test` payment provider on its own
            # instance; a checkout may reach either, so every ordering instance takes it.
            printf '\n[payments]\nproviders = ["test"]\n' >>"$run_dir/$name.toml"
        fi
        if [ "$kind" = ordering ]; then
            # The staff web UI on the ordering instances, calling the API through the gateway
            # so each page reaches every group; the other groups serve none.
            printf '\n[admin]\napi_url = "http://127.0.0.1:%s"\n' "$(cat "$run_dir/gateway.port")" >>"$run_dir/$name.toml"
        else
            printf '\n[admin]\nenabled = false\n' >>"$run_dir/$name.toml"
        fi
        if [ "$kind" = catalog ]; then
            # Media in one folder both catalog instances share (the data folders are their
            # own), as a bucket would be: a file uploaded through one is served by either.
            mkdir -p "$run_dir/media"
            ln -sfn ../media "$run_dir/$name/media"
        fi
        if [ "$with_redis" = 1 ]; then
            printf '\n[cache]\nredis_url = "%s"\n' "$redis_url" >>"$run_dir/$name.toml"
        fi
    )
}

write_gateway_config() {
    local port=$1 kind name
    {
        echo "# The gateway of the local cluster (deploy/local-cluster.sh): the routes of"
        echo "# deploy/gateway.toml, the instances of this cluster."
        sed -e '/^\[\[upstreams\./,$d' -e '/^#/d' \
            -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
            -e "s|^openapi_file = .*|openapi_file = \"$run_dir/openapi.json\"|" \
            "$root/deploy/gateway.toml"
        for kind in "${kinds[@]}"; do
            for name in "$kind-1" "$kind-2"; do
                printf '[[upstreams.%s.instances]]\nurl = "http://127.0.0.1:%s"\n' \
                    "$kind" "$(cat "$run_dir/$name.port")"
            done
        done
    } >"$run_dir/gateway.toml"
}

# Starts process $1 with arguments $2…, in a session of its own, its output in a fresh $1.log. The
# settings come from its file alone: EMPORIUM_* variables of this shell (this script's own
# among them) are not passed on, since the binary reads each as a setting.
start() {
    local name=$1
    shift
    env "${unset_emporium[@]}" setsid "$@" </dev/null >"$run_dir/$name.log" 2>&1 &
    echo $! >"$run_dir/$name.pid"
    say "started $name (pid $!, port $(cat "$run_dir/$name.port"))"
}

# Waits until each of $@ answers its health path with 200; fails when one exits or the time runs out.
wait_ready() {
    local deadline=$((SECONDS + start_timeout)) name pending
    while :; do
        pending=
        for name in "$@"; do
            # The pid alone: just after the fork the command line is still this script's.
            if ! kill -0 "$(pid_of "$name")" 2>/dev/null; then
                tail -n 20 "$run_dir/$name.log" >&2 || true
                die "$name exited while starting (log: $run_dir/$name.log)"
            fi
            [ "$(health_of "$name")" = 200 ] || pending="$pending $name"
        done
        [ -z "$pending" ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            for name in $pending; do tail -n 20 "$run_dir/$name.log" >&2 || true; done
            die "not ready after ${start_timeout}s:$pending (logs in $run_dir)"
        fi
        sleep 0.25
    done
}

any_alive() {
    local name
    for name in "${names[@]}"; do
        alive "$name" "$(pid_of "$name")" && return 0
    done
    return 1
}

stop_after_failed_start() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        say "start failed; stopping what started"
        cmd_down >/dev/null 2>&1 || true
    fi
}

cmd_up() {
    if any_alive; then
        die "already up in $run_dir (deploy/local-cluster.sh status; down first)"
    fi
    mkdir -p "$run_dir"
    find_binary
    with_redis=0
    probe="$run_dir/redis-probe.toml"
    printf '[cache]\nredis_url = "%s"\n' "$redis_url" >"$probe"
    if env "${unset_emporium[@]}" "$bin" --config "$probe" --data-dir "$run_dir/probe" config >/dev/null 2>&1; then
        with_redis=1
    else
        say "warning: $bin has no cache.redis_url; the instances run without Redis"
    fi
    rm -rf "$probe" "$run_dir/probe"
    create_databases
    mkdir -p "$run_dir/keys"
    rm -f "$run_dir"/*.pid
    secret_file="$run_dir/service-secret"
    if [ ! -s "$secret_file" ]; then
        (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n' >"$secret_file")
    fi
    secret=$(cat "$secret_file")
    local name kind
    for name in "${names[@]}"; do
        if [ "$name" = gateway ] && [ -n "${EMPORIUM_CLUSTER_GATEWAY_PORT:-}" ]; then
            echo "$EMPORIUM_CLUSTER_GATEWAY_PORT" >"$run_dir/$name.port"
        else
            free_port >"$run_dir/$name.port"
        fi
    done
    for name in "${instances[@]}"; do
        write_instance_config "$name" "$(cat "$run_dir/$name.port")"
    done
    # The whole store's API document, which the gateway answers /openapi.json with.
    env "${unset_emporium[@]}" "$bin" --data-dir "$run_dir/openapi-scratch" openapi >"$run_dir/openapi.json"
    rm -rf "$run_dir/openapi-scratch"
    write_gateway_config "$(cat "$run_dir/gateway.port")"
    # A failed start leaves nothing running.
    trap stop_after_failed_start EXIT
    # inventory-1 first: it creates the keyring the others then read. With --demo, identity-1
    # seeds the accounts, ordering-1 the pricing and catalog-1 the products with their stock,
    # which goes to inventory: so catalog-1 starts once inventory answers (it reaches identity
    # and pricing lazily). The first instance of each kind migrates its database before the
    # second starts.
    local demo_args=()
    [ "$demo" = 0 ] || demo_args=(--demo)
    start inventory-1 "$bin" --config "$run_dir/inventory-1.toml" serve
    wait_ready inventory-1
    start inventory-2 "$bin" --config "$run_dir/inventory-2.toml" serve
    start identity-1 "$bin" --config "$run_dir/identity-1.toml" serve "${demo_args[@]}"
    start ordering-1 "$bin" --config "$run_dir/ordering-1.toml" serve "${demo_args[@]}"
    start catalog-1 "$bin" --config "$run_dir/catalog-1.toml" serve "${demo_args[@]}"
    start search-1 "$bin" --config "$run_dir/search-1.toml" serve
    wait_ready inventory-2 identity-1 ordering-1 catalog-1 search-1
    for kind in identity ordering catalog search; do
        start "$kind-2" "$bin" --config "$run_dir/$kind-2.toml" serve
    done
    start gateway "$gateway_bin" gateway --config "$run_dir/gateway.toml"
    wait_ready identity-2 ordering-2 catalog-2 search-2 gateway
    trap - EXIT
    local url
    url="http://127.0.0.1:$(cat "$run_dir/gateway.port")"
    echo "$url" >"$run_dir/gateway.url"
    say "up; logs and pids in $run_dir"
    echo "gateway: $url"
    if [ "$demo" = 1 ]; then
        echo "demo owner: $demo_owner"
        echo "demo shopper: $demo_shopper"
    fi
}

cmd_status() {
    local name pid state all=0
    for name in "${instances[@]}" gateway; do
        pid=$(pid_of "$name")
        if alive "$name" "$pid"; then
            state="$(health_path "$name") $(health_of "$name")"
            [ "${state##* }" = 200 ] || all=1
        else
            state="not running"
            pid=${pid:--}
            all=1
        fi
        printf '%-12s pid %-8s port %-6s %s\n' "$name" "$pid" "$(cat "$run_dir/$name.port" 2>/dev/null || echo -)" "$state"
    done
    return "$all"
}

cmd_down() {
    local name pid stopping=() deadline killed=0
    for name in "${names[@]}"; do
        pid=$(pid_of "$name")
        if alive "$name" "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            stopping+=("$name")
        fi
    done
    if [ "${#stopping[@]}" -eq 0 ]; then
        say "nothing running in $run_dir"
        rm -f "$run_dir"/*.pid
        return 0
    fi
    say "SIGTERM sent to ${stopping[*]}; waiting up to ${stop_timeout}s"
    deadline=$((SECONDS + stop_timeout))
    for name in "${stopping[@]}"; do
        pid=$(pid_of "$name")
        while alive "$name" "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.2
        done
        if alive "$name" "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt $((deadline + 10)) ]; do
                sleep 0.1
            done
            say "$name (pid $pid) did not exit in time: killed"
            killed=1
        else
            say "$name (pid $pid) stopped"
        fi
        rm -f "$run_dir/$name.pid"
    done
    return "$killed"
}

cmd_clean() {
    if any_alive; then
        die "still up in $run_dir; down first"
    fi
    local admin db kind
    admin=$(pg_database_url postgres)
    for kind in "${kinds[@]}"; do
        db=${prefix}_$kind
        psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
        say "dropped database $db"
    done
    # What `up` made, by name (the folder may be one of the user's own), then the folder if empty.
    local name
    for name in "${names[@]}"; do
        rm -f "$run_dir/$name".{toml,log,pid,port}
        [ "$name" = gateway ] || rm -rf "${run_dir:?}/$name"
    done
    rm -rf "${run_dir:?}/keys" "${run_dir:?}/media"
    rm -f "$run_dir/service-secret" "$run_dir/gateway.url" "$run_dir/redis-probe.toml" "$run_dir/openapi.json"
    rmdir "$run_dir" 2>/dev/null || true
    say "removed the cluster's files from $run_dir"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    clean) cmd_clean ;;
    *)
        echo "usage: $0 up|status|down|clean (see the head of this file for the settings)" >&2
        exit 2
        ;;
esac
