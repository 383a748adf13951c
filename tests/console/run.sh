#!/usr/bin/env bash
# The console's browser test (docs/http.md#the-console): builds `entitle`,
# makes a state with the CLI (a site license with floating seats, one in
# its grace period, one more license file to upload), starts the real
# `entitle serve` on 127.0.0.1:0 with an admin token, takes seats as
# clients do (one client named `<script>alert(1)</script>`, one refused),
# then drives the console in Debian's chromium with playwright-core
# (tests/console/console.test.mjs) and stops the server.
#   bash tests/console/run.sh
# Env: CHROMIUM (default /usr/bin/chromium); CONSOLE_FEATURES, the cargo
# features to build with (default server,client; CI passes those of its
# test build so that the binary is not built twice). Screenshots go to
# target/console-screenshots/.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

cargo build --features "${CONSOLE_FEATURES:-server,client}" --bin entitle
entitle="$root/target/debug/entitle"

(cd tests/console && npm ci --no-audit --no-fund)

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

in_days() { date -u -d "$1 days" +%Y-%m-%dT%H:%M:%SZ; }

# --- the state, made with the CLI -------------------------------------------
"$entitle" keygen --out "$work/vendor" >/dev/null
cat >"$work/site.json" <<JSON
{
  "id": "lic_site", "product": "acme-cad", "name": "Acme CAD Site",
  "customer": "Example Ltd", "kind": "subscription",
  "expires_at": "$(in_days 365)",
  "seats": {"max": 25},
  "floating": {"seats": 3, "lease_secs": 300, "borrow_max_secs": 86400},
  "features": [
    {"code": "cad"},
    {"code": "render", "floating": {"seats": 1, "lease_secs": 300}}
  ]
}
JSON
# Expired yesterday, within 30 days of grace: the overview's grace banner.
cat >"$work/addon.json" <<JSON
{
  "id": "lic_addon", "product": "acme-cad", "name": "Simulation add-on",
  "kind": "time_limited", "expires_at": "$(in_days -1)", "grace_secs": 2592000,
  "features": [{"code": "simulate"}]
}
JSON
# Not installed: the test uploads it through the console.
cat >"$work/upload.json" <<JSON
{
  "id": "lic_upload", "product": "acme-cad", "name": "Seat top-up",
  "floating": {"seats": 2, "lease_secs": 300},
  "features": [{"code": "cad"}]
}
JSON
for name in site addon upload; do
    "$entitle" issue --key "$work/vendor.key" --spec "$work/$name.json" --out "$work/$name.lic" >/dev/null
done
"$entitle" --state "$work/state" init --pub "$work/vendor.pub" --product acme-cad >/dev/null
"$entitle" --state "$work/state" license add "$work/site.lic" >/dev/null
"$entitle" --state "$work/state" license add "$work/addon.lic" >/dev/null
token="console-test-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$token" >"$work/admin.token"

# --- the server --------------------------------------------------------------
# Starts `entitle serve` with the admin token and ARGS on 127.0.0.1:0, and
# sets $url from its `listening on` line.
start_server() {
    : >"$work/stdout"
    "$entitle" --state "$work/state" serve --listen 127.0.0.1:0 \
        --admin-token-file "$work/admin.token" "$@" >"$work/stdout" 2>"$work/stderr" &
    server_pid=$!
    url=""
    for _ in $(seq 1 300); do
        line="$(head -n 1 "$work/stdout" 2>/dev/null || true)"
        if [ -n "$line" ]; then
            url="${line#listening on }"
            break
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$url" ]; then
        echo "console test: the server did not start:" >&2
        cat "$work/stderr" >&2
        exit 1
    fi
    case "$url" in
        http://127.0.0.1:*) ;;
        *) echo "console test: unexpected first line: $url" >&2; exit 1 ;;
    esac
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}

start_server

# --- clients take seats -------------------------------------------------------
checkout() {
    curl -sS -o "$work/lease.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "$1" "$url/v1/leases"
}
status="$(checkout '{"client": "<script>alert(1)</script>", "feature": "cad"}')"
[ "$status" = 201 ] || { echo "console test: checkout answered $status: $(cat "$work/lease.json")" >&2; exit 1; }
status="$(checkout '{"client": "render-node-1", "feature": "render"}')"
[ "$status" = 201 ] || { echo "console test: checkout answered $status: $(cat "$work/lease.json")" >&2; exit 1; }
# The render pool has one seat: this one is refused, a denial in the history.
status="$(checkout '{"client": "render-node-2", "feature": "render"}')"
[ "$status" = 409 ] || { echo "console test: a second render seat answered $status" >&2; exit 1; }

# --- the browser ---------------------------------------------------------------
mkdir -p "$root/target/console-screenshots"
export CONSOLE_TOKEN="$token" CONSOLE_UPLOAD="$work/upload.lic" \
    CONSOLE_SCREENSHOTS="$root/target/console-screenshots" \
    CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
CONSOLE_URL="$url" node --test tests/console/console.test.mjs
stop_server

# The same state on a server that keeps no history: its three routes answer
# 404, and the console says so in their views.
start_server --history-days 0
CONSOLE_URL="$url" node --test tests/console/degraded.test.mjs
stop_server
