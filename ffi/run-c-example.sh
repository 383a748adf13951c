#!/usr/bin/env bash
# Builds the C ABI (cdylib and staticlib), makes a vendor key, a license
# and an install's state with the `entitle` CLI, then compiles
# ffi/examples/desktop.c against the header, linked both ways, and runs
# it: it must gate, consume, lease and show license info as the license
# says, and the CLI must see the units it consumed. A real license server
# (`entitle serve` on 127.0.0.1, a free port, over a state of its own)
# runs meanwhile: the example takes a seat from it too, and the server
# must have it back when the example ends.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build -q -p entitle-ffi --release
cargo build -q --bin entitle --features server
lib="$root/target/release"
entitle="$root/target/debug/entitle"

work="$(mktemp -d)"
# shellcheck source=ffi/example-server.sh
. "$root/ffi/example-server.sh"
trap 'stop_example_server; rm -rf "$work"' EXIT
"$root/ffi/make-example-state.sh" "$entitle" "$work"

# The license server, on loopback; its first line names its port.
start_example_server "$entitle" "$work"
url="$server_url"

cc -std=c11 -Wall -Wextra -Werror -I ffi/include ffi/examples/desktop.c \
    -L "$lib" -lentitle_ffi -o "$work/desktop-shared"
cc -std=c11 -Wall -Wextra -Werror -I ffi/include ffi/examples/desktop.c \
    "$lib/libentitle_ffi.a" -lpthread -ldl -lm -o "$work/desktop-static"
# The header is C++ too.
if command -v c++ >/dev/null; then
    c++ -std=c++17 -Wall -Wextra -Werror -x c++ -fsyntax-only -I ffi/include - <<'CPP'
#include "entitle.h"
int main() { entitle_engine *e = nullptr; return entitle_engine_open("p", "k", nullptr, &e) == ENTITLE_OK; }
CPP
else
    echo "run-c-example: no c++ here, the header's C++ check skipped (apt-get install g++)"
fi

LD_LIBRARY_PATH="$lib" "$work/desktop-shared" "$work/state" "$work/vendor.pub" "$url" "$work/lease.pub"
"$work/desktop-static" "$work/state" "$work/vendor.pub" "$url" "$work/lease.pub"

# Both seats went back to the server when the example freed them.
held="$("$entitle" --state "$work/server" --json lease list |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))')"
if [ "$held" != 0 ]; then
    echo "run-c-example: the server still holds $held lease(s) the example freed" >&2
    exit 1
fi
stop_example_server

used="$("$entitle" --state "$work/state" --json consumption render |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["used"])')"
if [ "$used" != 2 ]; then
    echo "run-c-example: the CLI sees $used units of render used, not 2" >&2
    exit 1
fi
echo "run-c-example: ok (shared and static; the CLI sees the 2 units consumed; the server's seats went back)"
