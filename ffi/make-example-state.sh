#!/usr/bin/env bash
# Makes, with the `entitle` CLI, what the examples run against: a vendor
# key (DIR/vendor.key, DIR/vendor.pub), a license `lic_c_example` of
# `acme-cad` (export; render metered, 100 units; simulate floating, one
# seat) and an install's state DIR/state holding it; and for a license
# server on the LAN, its own state DIR/server holding the same license and
# the key its leases are signed with, DIR/lease.pub (`serve
# --print-lease-pub`; the CLI is built with `--features server`).
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
"$entitle" --state "$work/server" init --pub "$work/vendor.pub" --product acme-cad >/dev/null
"$entitle" --state "$work/server" license add "$work/license.lic" >/dev/null
"$entitle" --state "$work/server" serve --print-lease-pub >"$work/lease.pub"
