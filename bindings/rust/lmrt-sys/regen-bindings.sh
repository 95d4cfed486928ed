#!/bin/sh
# regen-bindings.sh - regenerates src/bindings.rs from include/lmrt.h with the
# bindgen CLI (Debian: apt-get install bindgen), then formats it with rustfmt
# when one is installed. Run it after every change to the public header and
# commit the result; `cargo test` (tests/fresh.rs) fails while it is stale.
#
#   regen-bindings.sh [OUT]     OUT defaults to src/bindings.rs; "-" is stdout
#
# Exits 77 when bindgen is not installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
header="$here/../../../include/lmrt.h"
out=${1:-"$here/src/bindings.rs"}
command -v bindgen >/dev/null 2>&1 || { echo "regen-bindings.sh: bindgen is not installed" >&2; exit 77; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# The flags are the contract of the committed file: keep them in one place.
bindgen "$header" \
    --allowlist-function 'lmrt_.*' --allowlist-type 'lmrt_.*' --allowlist-var 'LMRT_.*' \
    --size_t-is-usize --translate-enum-integer-types \
    --no-rustfmt-bindings --no-doc-comments \
    -o "$tmp" -- -I"$here/../../../include" >/dev/null
if command -v rustfmt >/dev/null 2>&1; then
    rustfmt --edition 2021 --config normalize_doc_attributes=false "$tmp" 2>/dev/null \
        || rustfmt --edition 2021 "$tmp"
fi
if [ "$out" = "-" ]; then cat "$tmp"; else cp "$tmp" "$out"; fi
