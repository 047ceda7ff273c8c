#!/usr/bin/env bash
# Drives the demo store through a gateway, as a shopper and a member of staff would: the
# whole API document (every group's routes) at /openapi.json, the storefront's in-stock products (answered by the catalog group, as the gateway's counters
# show), one of them read by id and found by search (the search group's index, fed by the
# catalog's events), the demo shopper's sign-in at identity (registered when missing), a cart
# with one in-stock variant, an address, shipping, checkout at ordering with the `test`
# provider (`tok_success`) answered 201 with an order, the order read back by the shopper, and
# the variant's stock one unit lower as inventory tells the demo owner, the order in the staff
# web UI (served by ordering, calling the API through the gateway); at the end, each of the
# groups identity, catalog, search, inventory and ordering answered at least one of its
# requests (the gateway's counters). Exits non-zero at the first answer that is not the expected one.
#
#   deploy/cluster-smoke.sh http://127.0.0.1:PORT     (default: cluster-run/gateway.url's URL)
set -euo pipefail

base=${1:-}
if [ -z "$base" ]; then
    base=$(cat "${EMPORIUM_CLUSTER_DIR:-./cluster-run}/gateway.url" 2>/dev/null) || {
        echo "usage: $0 GATEWAY_URL" >&2
        exit 2
    }
fi
base=${base%/}

shopper_email=shopper@demo.emporium.test
shopper_password="demo shopper passphrase"
owner_email=owner@demo.emporium.test
owner_password="demo owner passphrase"

body=$(mktemp)
jar=$(mktemp)
trap 'rm -f "$body" "$jar"' EXIT

fail() {
    printf 'cluster-smoke: FAILED: %s\n' "$*" >&2
    if [ -s "$body" ]; then
        printf 'cluster-smoke: the answer was: %s\n' "$(head -c 2000 "$body")" >&2
    fi
    exit 1
}

# call STEP EXPECTED METHOD PATH [curl arguments…]: the answer's body in $body; fails unless the
# status is one of EXPECTED (separated by |).
call() {
    local step=$1 expected=$2 method=$3 path=$4 status
    shift 4
    status=$(curl -sS -o "$body" -w '%{http_code}' --max-time 60 -X "$method" "$base$path" "$@") ||
        fail "$step: $method $path did not answer"
    case "|$expected|" in
        *"|$status|"*) printf 'cluster-smoke: %-32s %s %s -> %s\n' "$step" "$method" "$path" "$status" ;;
        *) fail "$step: $method $path answered $status, expected $expected" ;;
    esac
}

# json EXPR: evaluates the Python expression EXPR over the last answer (`d`); fails when it
# raises or yields nothing.
json() {
    python3 - "$1" "$body" <<'PY' || fail "no ${1} in the answer"
import json, sys
with open(sys.argv[2]) as f:
    d = json.load(f)
value = eval(sys.argv[1], {"d": d})
if value is None or value == "" or value == []:
    sys.exit(1)
print(value)
PY
}

json_body() {
    python3 -c 'import json, sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@"
}

# The requests the gateway's upstreams of group $1 answered (its /gateway/metrics counters).
answered_by() {
    curl -fsS --max-time 10 "$base/gateway/metrics" | python3 -c '
import re, sys
total = 0.0
for line in sys.stdin:
    if (line.startswith("emporium_gateway_upstream_requests_total{")
            and re.search(r"[{,]group=\"%s\"" % sys.argv[1], line)
            and "outcome=\"success\"" in line):
        total += float(line.split()[-1])
print(int(total))' "$1" || fail "no counters at $base/gateway/metrics"
}

groups=(identity catalog search inventory ordering)
echo "cluster-smoke: gateway $base"
declare -A before
for group in "${groups[@]}"; do before[$group]=$(answered_by "$group"); done
catalog_before=${before[catalog]}
call "the whole API document" 200 GET /openapi.json
json 'all(p in d["paths"] for p in ("/v1/auth/token", "/v1/store/products", "/v1/store/search", "/v1/store/carts")) or None' >/dev/null ||
    fail "the gateway's /openapi.json lacks some group's routes"
call "products in stock" 200 GET '/v1/store/products?in_stock=true&currency=EUR&limit=50'
picked=$(json '" ".join(next((p["id"], v["id"]) for p in d["items"] for v in p["variants"] if (v.get("available") or 0) > 0))')
product=${picked% *}
variant=${picked#* }
catalog_after=$(answered_by catalog)
[ "$catalog_after" -gt "$catalog_before" ] ||
    fail "the product list was not answered by the catalog group (gateway counters)"
call "the product by id" 200 GET "/v1/store/products/$product?currency=EUR"
[ "$(json 'd["id"]')" = "$product" ] || fail "the product read back is not $product"
title=$(json 'd["title"]')
# Search runs apart, its index fed by the catalog's events: give it time to catch up.
deadline=$((SECONDS + 60))
until call "search finds the product" 200 GET /v1/store/search -G --data-urlencode "q=$title" -d limit=100 &&
    python3 -c 'import json, sys; sys.exit(not any(h["id"] == sys.argv[2] for h in json.load(open(sys.argv[1]))["hits"]))' \
        "$body" "$product"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "search did not find $product ($title) within 60 s"
    sleep 0.5
done

call "register the demo shopper" '201|409' POST /v1/auth/register -H 'content-type: application/json' \
    -d "$(json_body email "$shopper_email" password "$shopper_password" name 'Demo Shopper')"
call "shopper signs in" 200 POST /v1/auth/token -d grant_type=password \
    --data-urlencode "username=$shopper_email" --data-urlencode "password=$shopper_password"
shopper=$(json 'd["access_token"]')

call "owner signs in" 200 POST /v1/auth/token -d grant_type=password -d scope=admin \
    --data-urlencode "username=$owner_email" --data-urlencode "password=$owner_password"
owner=$(json 'd["access_token"]')
call "stock before (inventory)" 200 GET "/v1/admin/inventory/levels?variant_id=$variant" \
    -H "authorization: Bearer $owner"
available_before=$(json 'd["available"] if "available" in d else d["items"][0]["available"]')

auth=(-H "authorization: Bearer $shopper")
call "open a cart" 201 POST /v1/store/carts "${auth[@]}" -H 'content-type: application/json' \
    -d '{"currency":"EUR"}'
cart=$(json 'd["cart"]["id"]')
auth+=(-H "x-cart-token: $(json 'd["token"]')")
call "add the variant" '200|201' POST "/v1/store/carts/$cart/items" "${auth[@]}" \
    -H 'content-type: application/json' -d "{\"variant_id\":\"$variant\",\"quantity\":1}"
call "e-mail and shipping address" 200 PATCH "/v1/store/carts/$cart" "${auth[@]}" \
    -H 'content-type: application/json' \
    -d "{\"email\":\"$shopper_email\",\"shipping_address\":{\"name\":\"Demo Shopper\",\"line1\":\"Hauptstr. 1\",\"city\":\"Berlin\",\"postal_code\":\"10115\",\"country\":\"DE\"}}"
call "shipping options" 200 GET "/v1/store/carts/$cart/shipping-options" "${auth[@]}"
shipping=$(json 'd[0]["id"]')
call "choose shipping" 200 PUT "/v1/store/carts/$cart/shipping-option" "${auth[@]}" \
    -H 'content-type: application/json' -d "{\"option_id\":\"$shipping\"}"
call "checkout (tok_success)" 201 POST "/v1/store/carts/$cart/checkout" "${auth[@]}" \
    -H "idempotency-key: smoke-$cart" -H 'content-type: application/json' \
    -d '{"payment":{"provider":"test","token":"tok_success"}}'
order=$(json 'd["order"]["id"]')

call "read the order back" 200 GET "/v1/store/orders/$order" -H "authorization: Bearer $shopper"
[ "$(json 'd["id"]')" = "$order" ] || fail "the order read back is not $order"
call "stock after (inventory)" 200 GET "/v1/admin/inventory/levels?variant_id=$variant" \
    -H "authorization: Bearer $owner"
available_after=$(json 'd["available"] if "available" in d else d["items"][0]["available"]')
[ "$available_after" -eq $((available_before - 1)) ] ||
    fail "available stock of $variant went from $available_before to $available_after, not one less"

# The staff web UI through the gateway: served by ordering, which calls every group's API back
# through the gateway (`admin.api_url`): sign-in at identity, the dashboard (ordering's order
# summary, inventory's low stock), and the order list holding the order just placed.
call "admin UI sign-in form" 200 GET /admin/login -c "$jar"
csrf=$(python3 -c 'import re, sys; print(re.search(r"name=\"_csrf\" value=\"([^\"]+)\"", open(sys.argv[1]).read()).group(1))' "$body") ||
    fail "no CSRF field on the sign-in form"
call "admin UI sign-in" 303 POST /admin/login -b "$jar" -c "$jar" -H "origin: $base" \
    --data-urlencode "_csrf=$csrf" --data-urlencode "email=$owner_email" \
    --data-urlencode "password=$owner_password"
call "admin UI dashboard" 200 GET /admin -b "$jar" -c "$jar"
call "admin UI order list" 200 GET /admin/orders -b "$jar" -c "$jar"
grep -q "$order" "$body" || fail "the admin UI's order list through the gateway lacks $order"

# Every group of the layout answered through the gateway during this run: sign-in at identity,
# products at the catalog, search at search, stock at inventory, carts and checkout at ordering.
answered=
for group in "${groups[@]}"; do
    count=$(($(answered_by "$group") - before[$group]))
    [ "$count" -gt 0 ] || fail "group $group answered none of this run's requests (gateway counters)"
    answered="$answered $group=$count"
done
echo "cluster-smoke: requests answered per group:$answered"

echo "cluster-smoke: OK: order $order placed through $base"
