#!/usr/bin/env bash
# Writes the C header from the crate's source: cbindgen, then the Rust
# examples of the doc comments (fenced with ```) and rustdoc's link targets
# taken out, since the header is read by C programmers.
#   ffi/gen-header.sh [OUT]   (default: ffi/include/entitle.h)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/include/entitle.h}"
# The header is compared byte for byte: the version that wrote it makes it.
want="0.29.4"
command -v cbindgen >/dev/null || {
    echo "cbindgen is missing: cargo install cbindgen --locked --version $want" >&2
    exit 1
}
have="$(cbindgen --version | awk '{print $2}')"
if [ "$have" != "$want" ]; then
    echo "cbindgen $have here, the header is made with $want: cargo install cbindgen --locked --version $want" >&2
    exit 1
fi
raw="$(mktemp)"
trap 'rm -f "$raw"' EXIT
cbindgen --quiet --config "$here/cbindgen.toml" --crate entitle-ffi --output "$raw" "$here"
awk '
    /^ *\* ```/ { fenced = !fenced; next }
    fenced { next }
    # A blank comment line left before the end of a comment goes too.
    held != "" && !/^ *\*\/$/ { print held }
    { held = "" }
    /^ *\*$/ { held = $0; next }
    { print }
    END { if (held != "") print held }
' "$raw" |
    sed -E 's/\[`([^`]*)`\]\((crate|entitle)::[^)]*\)/`\1`/g; s/\[`([^`]*)`\]/`\1`/g' >"$out"
