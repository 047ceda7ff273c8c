#!/usr/bin/env bash
# Catalog benchmark on a catalog of N products (default 100,000): import rate, event catch-up,
# storefront reads (product by handle, list pages of 20 with and without calculated prices, as a
# guest and as a signed-in customer), search, index size and RSS under load. Each
# wrk figure is printed beside a GET /healthz baseline from the same run.
#
#   bench/catalog.sh [PRODUCTS] [DURATION_SECONDS]   (defaults 100000 and 10; needs wrk, python3)
#
# Traffic goes to 127.0.0.1 only. Run it on a quiet machine: a build on the other core halves
# every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
products=${1:-100000}
duration=${2:-10}
port=${BENCH_PORT:-18182}
base="http://127.0.0.1:$port"
target=${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}
export CARGO_TARGET_DIR=$target

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench: python3 is missing" >&2; exit 1; }
cargo build --release -q -p emporium
bin="$target/release/emporium"
# BENCH_DATA keeps the data folder (and a later run with the same folder skips the import).
if [ -n "${BENCH_DATA:-}" ]; then data=$BENCH_DATA; mkdir -p "$data"; keep=1; else data=$(mktemp -d); keep=0; fi
pid=
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; [ "$keep" = 1 ] || rm -rf "$data"' EXIT

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
metric() { curl -fs "$base/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
run_wrk() { # connections path-or-script label; $AUTH, when set, is sent as the Authorization header
  local c=$1 what=$2 label=$3
  local headers=()
  [ -n "${AUTH:-}" ] && headers=(-H "Authorization: $AUTH")
  echo "== $label, $c connections, ${duration}s"
  if [ -f "$what" ]; then
    wrk -t2 -c"$c" -d"${duration}s" --latency "${headers[@]}" -s bench/random_path.lua "$base" | grep -E "Requests/sec|^ +50%|^ +99%|non-2xx"
  else
    wrk -t2 -c"$c" -d"${duration}s" --latency "${headers[@]}" "$base$what" | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|errors"
  fi
}

echo "== catalog of $products products"
if [ ! -f "$data/emporium.db" ]; then
  "$bin" seed --products "$products" --output "$data/catalog.jsonl" --data-dir "$data" >/dev/null
  start=$(date +%s%N)
  EMPORIUM_LOG_LEVEL=warn "$bin" import products "$data/catalog.jsonl" --data-dir "$data"
  import_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "import: $products products in ${import_ms} ms = $(( products * 1000 / import_ms )) products/s (file $(du -h "$data/catalog.jsonl" | cut -f1))"
  echo "database: $(du -ch "$data"/emporium.db* | tail -1 | cut -f1)"
  [ "${BENCH_IMPORT_ONLY:-0}" = 1 ] && exit 0
fi

# Serve: the import's events are delivered (journal, projections) and indexed from the outbox.
start=$(date +%s%N)
EMPORIUM_LOG_LEVEL=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" &
pid=$!
until curl -fs "$base/readyz" >/dev/null 2>&1; do sleep 0.01; done
published=$(grep -c '"status":"published"' "$data/catalog.jsonl")
while true; do
  pending=$(metric emporium_outbox_pending_events)
  total=$(curl -fs "$base/v1/store/search?limit=1" | json "d['total']")
  [ "${pending:-1}" = 0 ] && [ "$total" = "$published" ] && break
  sleep 0.5
done
caught_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "catch-up after start (outbox delivered, $published published products searchable): ${caught_ms} ms, journal position $(metric emporium_search_checkpoint)"
echo "search index: $(du -sh "$data/search" | cut -f1)"
echo "RSS after catch-up: $(( $(rss_kb "$pid") / 1024 )) MiB"

# Paths: every published handle; a category; a deep cursor; typical searches.
sed -n 's/^{"handle":"\([^"]*\)","title":"[^"]*","description":"[^"]*","status":"published".*/\/v1\/store\/products\/\1/p' \
  "$data/catalog.jsonl" > "$data/handles"
category=$(curl -fs "$base/v1/store/categories" | json "d['items'][0]['id']")
list="/v1/store/products?category=$category&in_stock=true&sort=price_asc&currency=EUR&limit=24"
cursor_path=$list
for _ in $(seq 1 200); do
  next=$(curl -fs "$base$cursor_path" | json "d['next_cursor'] or ''")
  [ -z "$next" ] && break
  cursor_path="$list&cursor=$next"
done
python3 - "$data/searches" <<'PY'
import random, sys, urllib.parse
words = ["linen shirt", "wool", "merino sweater", "oak", "cast iron", "parka", "leather",
         "table lamp", "camping tent", "cookbook", "alpine down parka", "cotton throw",
         "nordic wool scarf", "brass pendant", "titanium camp stove", "denim jeans",
         "chambray", "velvet cushion", "recycled helmet", "heritage"]
random.seed(7)
with open(sys.argv[1], "w") as out:
    for q in words:
        out.write("/v1/store/search?q=" + urllib.parse.quote(q) + "\n")
        out.write("/v1/store/search?q=" + urllib.parse.quote(q) + "&in_stock=true&currency=EUR&min_price=2000&max_price=15000\n")
PY

peak=0
sample_rss() {
  while kill -0 "$pid" 2>/dev/null; do
    r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    echo "$peak" > "$data/peak"
    sleep 0.2
  done
}
sample_rss & sampler=$!

run_wrk 64 /healthz "GET /healthz (baseline)"
# Warm-up: three runs' time of random handles reaches nearly the whole catalog (a miss costs a
# database read); the figures below are the cached ones.
duration=$(( duration * 3 )) PATHS="$data/handles" run_wrk 64 "$data/handles" "warm-up: GET /v1/store/products/{random handle}"
cache_line() {
  echo "product cache: $(metric 'emporium_cache_requests_total{cache="product",result="hit"}') hits, $(metric 'emporium_cache_requests_total{cache="product",result="miss"}') misses, $(metric 'emporium_cache_entries{cache="product"}') entries"
}
cache_line
PATHS="$data/handles" run_wrk 64 "$data/handles" "GET /v1/store/products/{random handle}"
PATHS="$data/handles" run_wrk 16 "$data/handles" "GET /v1/store/products/{random handle}"
cache_line
run_wrk 64 /healthz "GET /healthz (baseline, again)"
run_wrk 16 "$list" "GET $list (first page)"
# List pages of 20: plain, with calculated prices (and a region's tax), with filters and a sort,
# and for a signed-in customer (whose groups the prices follow).
page="/v1/store/products?limit=20"
filtered="/v1/store/products?category=$category&in_stock=true&sort=price_asc&currency=EUR&country=DE&limit=20"
curl -fs "$base/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery","name":"Bench"}' >/dev/null || true
token=$(curl -fs "$base/v1/auth/token" -d grant_type=password -d username=bench@example.com \
  --data-urlencode 'password=correct horse battery' | json "d['access_token']")
run_wrk 64 "$page" "GET $page (list page)"
run_wrk 64 "$page&currency=EUR" "GET $page&currency=EUR (calculated prices)"
run_wrk 64 "$page&currency=EUR&country=DE" "GET $page&currency=EUR&country=DE (calculated prices, tax)"
run_wrk 64 "$filtered" "GET $filtered (filters, sort, calculated prices)"
AUTH="Bearer $token" run_wrk 64 "$page&currency=EUR&country=DE" "GET $page&currency=EUR&country=DE as a customer"
run_wrk 64 /healthz "GET /healthz (baseline, after the lists)"
run_wrk 16 "$cursor_path" "GET deep cursor page ($(echo "$cursor_path" | wc -c) chars)"
PATHS="$data/searches" run_wrk 16 "$data/searches" "GET /v1/store/search (20 queries of 1-3 words, with and without filters; facets always)"
PATHS="$data/searches" run_wrk 64 "$data/searches" "GET /v1/store/search, 64 connections"

kill "$sampler" 2>/dev/null || true
echo "== process"
echo "RSS peak under load: $(( $(cat "$data/peak") / 1024 )) MiB"
echo "RSS now: $(( $(rss_kb "$pid") / 1024 )) MiB"
