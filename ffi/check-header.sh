#!/usr/bin/env bash
# Fails when ffi/include/entitle.h is not what the source generates: run
# ffi/gen-header.sh and commit the header.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fresh="$(mktemp)"
trap 'rm -f "$fresh"' EXIT
"$here/gen-header.sh" "$fresh"
if ! diff -u "$here/include/entitle.h" "$fresh"; then
    echo "ffi/include/entitle.h is stale: run ffi/gen-header.sh and commit it" >&2
    exit 1
fi
echo "ffi/include/entitle.h is up to date"
