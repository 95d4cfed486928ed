#!/bin/sh
# run-tests.sh BUILD_ROOT - the meson test `rust`: cargo test of both crates,
# offline, against the library of the meson build directory BUILD_ROOT, with
# cargo's output inside it. Exits 77 (meson: skipped) only when cargo is absent.
set -eu
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: skipping the Rust binding tests"
    exit 77
fi
build=$(cd "$1" && pwd)
cd "$(dirname "$0")"
export LMRT_BUILD_DIR="$build"
export CARGO_TARGET_DIR="$build/bindings/rust/target"
unset LMRT_LIB_DIR
cargo --version
exec cargo test --offline
