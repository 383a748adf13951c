#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 60), one after
# the other, and prints libFuzzer's closing statistics.
#
#   fuzz/run.sh 300          # all targets, five minutes each
#   fuzz/run.sh 60 token     # one target
#
# New interesting inputs go to fuzz/target/corpus/<target> (not committed),
# seeded from the committed fuzz/corpus/<target>, which stays small. A crash
# is saved under fuzz/artifacts/<target>/: fix it, then copy the input into
# fuzz/corpus/<target>/ so that `cargo test --test fuzz_corpus` replays it.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(token armor license filter request machine revocations keys receipt report lease state license_key)
fi

status=0
for target in "${targets[@]}"; do
    work="target/corpus/$target"
    mkdir -p "$work"
    echo "== $target: ${seconds}s"
    if ! cargo +nightly fuzz run "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=70000 -print_final_stats=1; then
        echo "== $target: FAILED (see fuzz/artifacts/$target/)"
        status=1
    fi
done
exit "$status"
