#!/usr/bin/env bash
# Makes, with the `entitle` CLI, what the examples run against: a vendor
# key (DIR/vendor.key, DIR/vendor.pub), a license `lic_c_example` of
# `acme-cad` (export; render metered, 100 units; simulate floating, one
# seat) and an install's state DIR/state holding it.
#   ffi/make-example-state.sh ENTITLE_CLI DIR
set -euo pipefail
entitle="$1"
work="$2"
"$entitle" keygen --out "$work/vendor" >/dev/null
cat >"$work/spec.json" <<'JSON'
{
  "id": "lic_c_example", "product": "acme-cad", "name": "Acme CAD Pro",
  "features": [
    {"code": "export"},
    {"code": "render", "consumption": {"max": 100}},
    {"code": "simulate", "floating": {"seats": 1, "lease_secs": 300}}
  ]
}
JSON
"$entitle" issue --key "$work/vendor.key" --spec "$work/spec.json" --out "$work/license.lic" >/dev/null
"$entitle" --state "$work/state" init --pub "$work/vendor.pub" --product acme-cad >/dev/null
"$entitle" --state "$work/state" license add "$work/license.lic" >/dev/null
