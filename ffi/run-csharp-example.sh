#!/usr/bin/env bash
# Compiles ffi/csharp/Desktop.cs with Mono's C# compiler and runs it
# against a state the CLI made, and a real license server (`entitle
# serve` on 127.0.0.1, a free port) it takes a seat from. No .NET SDK is in the registries this
# project reaches; Debian's Mono is (apt-get install mono-mcs
# mono-runtime). Without `mcs` and `mono` it says so and exits 0, unless
# ENTITLE_REQUIRE_CSHARP=1.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if ! command -v mcs >/dev/null || ! command -v mono >/dev/null; then
    echo "run-csharp-example: skipped, no mcs/mono (apt-get install mono-mcs mono-runtime)"
    [ "${ENTITLE_REQUIRE_CSHARP:-0}" = 1 ] && exit 1
    exit 0
fi
cargo build -q -p entitle-ffi --release
cargo build -q --bin entitle --features server
lib="$root/target/release"
entitle="$root/target/debug/entitle"
work="$(mktemp -d)"
# shellcheck source=ffi/example-server.sh
. "$root/ffi/example-server.sh"
trap 'stop_example_server; rm -rf "$work"' EXIT
"$root/ffi/make-example-state.sh" "$entitle" "$work"
start_example_server "$entitle" "$work"
mcs -nologo -warnaserror -out:"$work/Desktop.exe" ffi/csharp/Desktop.cs
LD_LIBRARY_PATH="$lib" mono "$work/Desktop.exe" "$work/state" "$work/vendor.pub" \
    "$server_url" "$work/lease.pub"
held="$("$entitle" --state "$work/server" --json lease list |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))')"
if [ "$held" != 0 ]; then
    echo "run-csharp-example: the server still holds $held lease(s) the program freed" >&2
    exit 1
fi
echo "run-csharp-example: ok"
