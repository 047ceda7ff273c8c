#!/usr/bin/env bash
# Browser tests of the admin UI: starts a real SMTP server (aiosmtpd, the e-mail suites' sink)
# and `emporium serve --demo` from the given binary on free loopback ports with a fresh data
# folder, sending its mail to that server and allowed to call webhook receivers on loopback;
# runs the node:test suites in tests/ against it in Debian's Chromium (/usr/bin/chromium), and
# stops both. Builds nothing.
#
#   e2e/run.sh PATH/TO/emporium
#
# Needs `npm ci` done in e2e/ (playwright-core), /usr/bin/chromium, and a Python with aiosmtpd
# ($EMPORIUM_TEST_PYTHON, as .ci/run sets it; else python3). Screenshots go to
# docs/screenshots/. The exit status is the tests'.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="${1:?usage: e2e/run.sh PATH/TO/emporium}"
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
[ -x "$binary" ] || { echo "e2e: $binary is not an executable" >&2; exit 2; }
[ -x /usr/bin/chromium ] || { echo "e2e: /usr/bin/chromium is missing (apt-get install chromium)" >&2; exit 2; }
[ -d "$here/node_modules/playwright-core" ] || { echo "e2e: run npm ci in $here first" >&2; exit 2; }
python="${EMPORIUM_TEST_PYTHON:-python3}"
"$python" -c 'import aiosmtpd' 2>/dev/null ||
    { echo "e2e: $python lacks aiosmtpd (set EMPORIUM_TEST_PYTHON to a Python that has it)" >&2; exit 2; }

data="$(mktemp -d)"
log="$data/server.log"
server_pid=""
smtp_pid=""
cleanup() {
    if [ -n "$smtp_pid" ]; then kill "$smtp_pid" 2>/dev/null || true; fi
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

# A free loopback port: the kernel picks one for a socket that is closed at once.
free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
port="$(free_port)"
base="http://127.0.0.1:$port"

# The SMTP server: one JSON line per message received, in $mail.
smtp_port="$(free_port)"
mail="$data/mail.jsonl"
"$python" "$here/../crates/emporium/tests/support/smtp_sink.py" "$smtp_port" >"$mail" 2>"$data/smtp.log" &
smtp_pid=$!
for _ in $(seq 1 100); do
    grep -q '^ready$' "$mail" 2>/dev/null && break
    kill -0 "$smtp_pid" 2>/dev/null || { cat "$data/smtp.log" >&2; exit 1; }
    sleep 0.1
done
grep -q '^ready$' "$mail" || { echo "e2e: the SMTP server did not start" >&2; exit 1; }

EMPORIUM_NOTIFY__EMAIL__SMTP_URL="smtp://127.0.0.1:$smtp_port" \
EMPORIUM_NOTIFY__EMAIL__STAFF='["orders@demo.emporium.test"]' \
EMPORIUM_NOTIFY__WEBHOOKS__ALLOWED_NETWORKS='["127.0.0.1/32"]' \
EMPORIUM_LOG_FORMAT=human "$binary" serve --demo --listen "127.0.0.1:$port" --data-dir "$data/store" >"$log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 600); do
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if node -e "fetch('$base/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null; then
        ready=yes
        break
    fi
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "e2e: the server did not become ready; its log:" >&2
    cat "$log" >&2
    exit 1
fi
echo "e2e: emporium ready at $base"

status=0
(cd "$here" && EMPORIUM_E2E_BASE="$base" EMPORIUM_E2E_MAIL="$mail" node --test --test-concurrency=1 tests/) || status=$?
if [ "$status" -ne 0 ]; then
    echo "e2e: tests failed; the server's log (last 80 lines):" >&2
    tail -n 80 "$log" >&2
fi
exit "$status"
