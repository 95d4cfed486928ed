#!/bin/sh
# test-all.sh - every check CI makes, from scratch, in build dirs under ./build-test/:
#   1. gcc, -Werror: build, then the whole meson test suite (cmocka summaries printed);
#      the only configuration that builds the CUDA backend (when nvcc is there; its
#      device tests skip without a GPU): the others say -Dcuda=disabled
#   2. clang, -Werror: build and the unit suite
#   3. gcc with ASan + UBSan (errors fatal, leaks checked): the whole suite but the
#      bindings, the install check and the encoders' float64 comparisons on full-size
#      photos and speech (suite encoder-reference)
#   4. TSan over the session and kernel tests (threads and shared models)
#   5. valgrind over the unit suite (the scalar paths, as valgrind has no AVX-512)
#   6. the ABI check against lib/abi/liblmrt.abi
#   7. libFuzzer on the GGUF reader for FUZZ_SECONDS (default 60) and on the image
#      decoders and the WAV reader for IMAGE_FUZZ_SECONDS (default 30) each when clang
#      is present
#   8. the aarch64 cross build (-Werror) and the unit suite under qemu-user, NEON
#      kernels included
# Needs what scripts/install-deps.sh installs.
set -eu
cd "$(dirname "$0")/.."
out=build-test
fuzz_seconds=${FUZZ_SECONDS:-60}
image_fuzz_seconds=${IMAGE_FUZZ_SECONDS:-30}
rm -rf "$out"
mkdir -p "$out"

step() { printf '\n==== %s ====\n' "$*"; }

step "gcc -Werror build and tests"
CC=gcc meson setup "$out/gcc" -Dwerror=true -Dcuda=auto >/dev/null
meson compile -C "$out/gcc"
meson test -C "$out/gcc" -v --print-errorlogs

step "clang -Werror build and unit tests"
CC=clang meson setup "$out/clang" -Dwerror=true -Dcuda=disabled >/dev/null
meson compile -C "$out/clang"
meson test -C "$out/clang" -v --print-errorlogs --suite unit

step "ASan + UBSan build and tests"
CC=gcc meson setup "$out/asan" -Dwerror=true -Dcuda=disabled -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fno-sanitize-recover=all >/dev/null
meson compile -C "$out/asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    meson test -C "$out/asan" -v --print-errorlogs --no-suite install --no-suite python --no-suite rust \
    --no-suite encoder-reference

step "TSan: sessions on many threads, the thread pool"
CC=gcc meson setup "$out/tsan" -Dcuda=disabled -Db_sanitize=thread -Db_lundef=false >/dev/null
meson compile -C "$out/tsan" tests/test_session tests/test_kernels
TSAN_OPTIONS=halt_on_error=1 meson test -C "$out/tsan" -v --print-errorlogs --no-rebuild session kernels

step "valgrind over the unit tests"
meson test -C "$out/gcc" --print-errorlogs --suite unit \
    --wrapper 'valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect' \
    --timeout-multiplier 10

step "ABI check"
python3 scripts/abi-check.py "$out/gcc"

# run_fuzzer NAME CORPUS_DIR SECONDS: one libFuzzer harness of the fuzz build over a
# copy of its seed corpus; a crash stops CI with the input left in $out/fuzz.
run_fuzzer() {
    meson compile -C "$out/fuzz" "fuzz_$1"
    corpus="$out/fuzz/corpus-$2"
    mkdir -p "$corpus"
    cp "tests/fuzz/corpus/$2"/* "$corpus/"
    fuzz_rc=0
    "$out/fuzz/tests/fuzz/fuzz_$1" -max_total_time="$3" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/fuzz/$1-" \
        -print_final_stats=1 "$corpus" >"$out/fuzz/fuzz_$1.log" 2>&1 || fuzz_rc=$?
    tail -n 12 "$out/fuzz/fuzz_$1.log"
    [ "$fuzz_rc" -eq 0 ] || { echo "fuzz_$1 failed (exit $fuzz_rc); the crash input is in $out/fuzz"; exit 1; }
}

if command -v clang >/dev/null 2>&1; then
    CC=clang meson setup "$out/fuzz" -Dfuzz=true -Dcuda=disabled -Db_sanitize=address,undefined -Db_lundef=false \
        -Dtests=true >/dev/null
    step "libFuzzer: GGUF reader for ${fuzz_seconds}s"
    run_fuzzer gguf gguf "$fuzz_seconds"
    step "libFuzzer: image decoders (PNG, PPM, JPEG) for ${image_fuzz_seconds}s"
    run_fuzzer png png "$image_fuzz_seconds"
    step "libFuzzer: WAV reader and resampler for ${image_fuzz_seconds}s"
    run_fuzzer wav wav "$image_fuzz_seconds"
fi

step "aarch64 cross build, unit tests under qemu"
# gcc-aarch64-linux-gnu and the arm64 multiarch libraries; the tests run under
# qemu-aarch64 -cpu max (the cross file's exe_wrapper), so the NEON kernels with SDOT
# run; then the NEON test once more on a CPU without dotprod (the widening-multiply
# path, chosen at run time). The Python/Rust bindings and the examples/install tests
# need a native build and stay with the steps above.
meson setup "$out/arm" --cross-file scripts/cross/aarch64-linux-gnu.ini -Dwerror=true -Dcuda=disabled >/dev/null
meson compile -C "$out/arm"
meson test -C "$out/arm" -v --print-errorlogs --suite unit
qemu-aarch64 -cpu cortex-a72 "$out/arm/tests/test_neon"

step "all checks passed"
