#!/usr/bin/env bash
# Checks the OpenAPI document with real tools: openapi-spec-validator (PyPI) validates it, and
# openapi-typescript (npm) generates TypeScript types from it that `clients/typescript/check.ts`
# must type-check against under `tsc --strict`. The document comes from `emporium openapi`, so
# no server runs. Fails when any step fails. Works locally and under .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/emporium-target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
tools="${CLIENT_TOOLS_DIR:-$HOME/.cache/emporium-tools}"
client=clients/typescript
generated="$client/generated"
mkdir -p "$generated" "$tools"

echo "openapi: building emporium and printing the document"
cargo build --locked -q -p emporium --bin emporium
"$CARGO_TARGET_DIR/debug/emporium" openapi >"$generated/openapi.json"

# A fresh Debian machine may lack the venv module or Node; install them from its packages.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "openapi: installing python3-venv, nodejs and npm from Debian packages"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv nodejs npm >/dev/null
    fi
fi

venv="$tools/openapi-venv"
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
    echo "openapi: installing openapi-spec-validator into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'openapi-spec-validator==0.9.0'
fi
echo "openapi: openapi-spec-validator"
"$venv/bin/openapi-spec-validator" "$generated/openapi.json"

echo "openapi: installing the TypeScript tools (npm ci)"
(cd "$client" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
echo "openapi: openapi-typescript"
(cd "$client" && npx --no-install openapi-typescript generated/openapi.json -o generated/schema.d.ts --silent)
echo "openapi: tsc --strict"
(cd "$client" && npx --no-install tsc --strict -p .)
echo "openapi: the document is valid and its TypeScript client type-checks"
