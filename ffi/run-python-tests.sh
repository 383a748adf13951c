#!/usr/bin/env bash
# Builds the C ABI and the `entitle` CLI (debug), then runs the Python
# wrapper's tests (unittest; no other dependency) against them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build -q -p entitle-ffi
cargo build -q --bin entitle --features server
export ENTITLE_FFI_LIB="$root/target/debug/libentitle_ffi.so"
export ENTITLE_CLI="$root/target/debug/entitle"
cd "$root/ffi/python"
python3 -m unittest -v test_entitle
