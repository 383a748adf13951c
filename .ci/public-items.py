#!/usr/bin/env python3
"""Counts the public items of a crate from rustdoc's JSON: those reachable
from the crate root through public modules and re-exports."""
import json, sys
from collections import Counter
doc = json.load(open(sys.argv[1]))
index = doc["index"]
root = doc["root"]
seen = set()
kinds = Counter()
def inner_kind(item):
    return next(iter(item["inner"])) if isinstance(item["inner"], dict) else item["inner"]
def walk(item_id):
    item_id = str(item_id)
    if item_id in seen or item_id not in index:
        return
    seen.add(item_id)
    item = index[item_id]
    kind = inner_kind(item)
    inner = item["inner"][kind] if isinstance(item["inner"], dict) else {}
    if kind == "module":
        for child in inner.get("items", []):
            c = index.get(str(child))
            if c and (c["visibility"] == "public" or inner_kind(c) == "use"):
                walk(child)
        if item_id != str(root):
            kinds["module"] += 1
        return
    if kind == "use":
        if inner.get("id") is not None and item["visibility"] == "public":
            walk(inner["id"])
        return
    kinds[kind] += 1
    if kind in ("struct", "enum", "trait", "union"):
        impls = inner.get("impls", [])
        for impl_id in impls:
            impl = index.get(str(impl_id))
            if not impl: continue
            ii = impl["inner"]["impl"]
            if ii.get("trait") is not None or ii.get("synthetic") or ii.get("blanket_impl"):
                continue
            for m in ii["items"]:
                mi = index.get(str(m))
                if mi and mi["visibility"] == "public":
                    kinds["method" if inner_kind(mi) == "function" else inner_kind(mi)] += 1
        if kind == "trait":
            kinds["trait method"] += len(inner.get("items", []))
walk(root)
types = kinds["struct"] + kinds["enum"] + kinds["trait"] + kinds["type_alias"] + kinds["union"]
fns = kinds["function"] + kinds["method"] + kinds["trait method"]
print(json.dumps(dict(kinds), sort_keys=True))
print(f"public types: {types}, public functions and methods: {fns}, modules: {kinds['module']}, constants: {kinds['constant']}")
