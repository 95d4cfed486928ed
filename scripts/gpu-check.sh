#!/bin/sh
# gpu-check.sh - what a session lent a GPU checks, in one go, in under 5 minutes:
#   1. writes the benchmark models in the background (Llama-3.2-1B and Llama-3-8B shapes
#      in Q4_0, Q8_0 and F16; see below)
#   2. builds with -Dcuda=enabled (-Werror) in $GPU_CHECK_DIR (default build-gpu)
#   3. the device: nvidia-smi, and its copy bandwidth (tests/test_cuda_bandwidth)
#   4. the cuda suite, verbose: every op against the CPU backend, the tiny models' logits
#      against the CPU's (F32 <= 1e-3), the host-side logic
#   5. lmrt-bench --backend cuda on the six models: pp512 and tg64, 2 repeats each
#   6. every other suite with the GPU visible (LMRT_BACKEND_AUTO then picks it), in the
#      time that is left
#   7. the report: per model, tg tokens/s and % of the HBM roofline (bytes per token over
#      the card's specified bandwidth, and over the measured copy bandwidth), pp512
#      tokens/s and % of the card's dense FP16 tensor-core peak
# Needs the repo, what scripts/install-deps.sh installs, and /usr/local/cuda.
#
# The benchmark models are random, so their values do not matter for speed: they are
# written by make_test_models.py's own writer (same metadata, tokenizer and tensors) with
# its per-tensor generator replaced by random bytes in each type's block layout (finite
# f16 scales), six files in parallel. Generating them through float32 and quantizing, as
# make_test_models.py does, takes several minutes per 8B file; this takes seconds.
set -u
cd "$(dirname "$0")/.."
out=${GPU_CHECK_DIR:-build-gpu}
build="$out/build"
models="$out/models"
budget=${GPU_CHECK_SECONDS:-290}
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
step() { printf '\n==== %s (at %ss) ====\n' "$*" "$(elapsed)"; }
failed=""
mkdir -p "$models"

step "writing the benchmark models in the background ($models)"
/usr/bin/python3 - "$models" >"$out/models.log" 2>&1 <<'EOF' &
import multiprocessing, os, sys, time
sys.path.insert(0, "scripts")
import numpy as np
import make_test_models as mtm

BLOCK = {"F16": (1, 2), "Q8_0": (32, 34), "Q4_0": (32, 18)}
D = np.frombuffer(np.float16(2.0 ** -12).tobytes(), np.uint8)   # every block's scale


def fast_chunks(name, n_rows, n_cols, std, type_name, seed):
    elems, nbytes = BLOCK[type_name]
    def produce():
        rng = mtm._rng(seed, name)
        step = max(1, mtm.CHUNK_ELEMENTS // n_cols)
        for r in range(0, n_rows, step):
            rows = min(step, n_rows - r)
            nb = rows * n_cols // elems
            b = np.frombuffer(rng.bytes(nb * nbytes), np.uint8).reshape(nb, nbytes).copy()
            if type_name == "F16":   # |w| in [2^-8, 2^-7): sign and mantissa random
                h = b.view(np.uint16)
                h &= np.uint16(0x83ff)
                h |= np.uint16(0x1c00)
            else:
                b[:, 0:2] = D
            yield b.tobytes()
    return produce


def write(job):
    shape, t, out = job
    path = mtm.model_path(out, shape, t)
    if os.path.exists(path):
        return path, 0.0
    t0 = time.time()
    mtm.write_model(shape, t, out)
    return path, time.time() - t0


mtm._matrix_chunks = fast_chunks
jobs = [(s, t, sys.argv[1]) for s in ("llama-3-8b", "llama-3.2-1b") for t in ("F16", "Q8_0", "Q4_0")]
with multiprocessing.Pool(len(jobs)) as pool:
    for path, s in pool.imap_unordered(write, jobs):
        print("%s: %.1f s" % (path, s), flush=True)
EOF
gen_pid=$!

step "build (-Dcuda=enabled -Dwerror=true) in $build"
if [ ! -d "$build" ]; then
    meson setup "$build" -Dcuda=enabled -Dwerror=true >"$out/setup.log" 2>&1 ||
        { cat "$out/setup.log"; exit 1; }
fi
meson compile -C "$build" >"$out/compile.log" 2>&1 || { tail -n 60 "$out/compile.log"; exit 1; }
echo "built in $(elapsed) s"

step "device"
nvidia-smi -L 2>/dev/null || echo "(no nvidia-smi)"
"$build/tests/test_cuda_bandwidth" >"$out/bandwidth.txt" 2>&1
rc=$?
cat "$out/bandwidth.txt"
[ "$rc" -eq 0 ] || { echo "no usable CUDA device: nothing more to check here"; exit 1; }

step "cuda suite: ops vs CPU, tiny-model logits vs CPU, host logic"
meson test -C "$build" --suite cuda --print-errorlogs -v --num-processes 2 \
    >"$out/cuda-suite.log" 2>&1 || failed="$failed cuda-suite"
grep -E "^ok |^FAIL |CUDA devices|device 0:|^ *[0-9]+/[0-9]+ lmrt:cuda|\[  (PASSED|FAILED) \]" \
    "$out/cuda-suite.log"

step "waiting for the models"
wait "$gen_pid" || { cat "$out/models.log"; failed="$failed models"; }
cat "$out/models.log"

step "lmrt-bench --backend cuda"
for shape in llama-3.2-1b llama-3-8b; do
    for t in Q4_0 Q8_0 F16; do
        f="$models/$shape-$t.gguf"
        [ -f "$f" ] || continue
        "$build/examples/lmrt-bench" -m "$f" --backend cuda -p 512 -n 64 -r 2 \
            --bw-mib 64 --bw-seconds 0 --json >"$out/bench-$shape-$t.json" \
            2>"$out/bench-$shape-$t.log" || { tail -n 5 "$out/bench-$shape-$t.log"; failed="$failed bench-$shape-$t"; }
        grep "repeat" "$out/bench-$shape-$t.log" | tail -n 1 | sed "s|^|$shape-$t: |"
    done
done

left=$((budget - $(elapsed)))
step "every other suite, GPU visible (${left}s left)"
if [ "$left" -gt 20 ]; then
    timeout "$left" meson test -C "$build" --no-suite cuda --print-errorlogs \
        >"$out/other-suites.log" 2>&1 || failed="$failed other-suites"
    grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):" "$out/other-suites.log" | grep -v " OK " | tail -n 30
else
    echo "skipped: no time left"
fi

step "report"
/usr/bin/python3 - "$out" <<'EOF'
import glob, json, os, re, sys
sys.path.insert(0, "scripts")
import make_test_models as mtm

out = sys.argv[1]
bw_txt = open(os.path.join(out, "bandwidth.txt")).read()
device = re.search(r"device (.*)", bw_txt).group(1)
measured = float(re.search(r"bandwidth_gb_s (\S+)", bw_txt).group(1)) * 1e9
# Specified HBM bandwidth (bytes/s) and dense FP16 tensor-core peak (FLOP/s), by name.
CARDS = [("H100 PCIe", 2.0e12, 756e12), ("H100 NVL", 3.9e12, 835e12),
         ("H100", 3.35e12, 989.4e12), ("H200", 4.8e12, 989.4e12),
         ("A100-PCIE", 1.94e12, 312e12), ("A100", 2.04e12, 312e12)]
spec_bw, peak = next(((b, p) for n, b, p in CARDS if n in device), (measured, 0.0))
print("device: %s; HBM %.2f TB/s specified, %.2f TB/s measured (device copy); "
      "dense FP16 tensor peak %s" % (device, spec_bw / 1e12, measured / 1e12,
                                     "%.0f TFLOPS" % (peak / 1e12) if peak else "unknown"))
print("%-20s %9s %8s %8s %9s %9s %8s" % ("model", "tg tok/s", "%HBM", "%copy", "pp512 t/s",
                                           "TFLOPS", "%tensor"))
for shape in ("llama-3.2-1b", "llama-3-8b"):
    s = mtm.SHAPES[shape]
    e, f, hd = s["n_embd"], s["n_ff"], s["n_embd"] // s["n_head"]
    kv = s["n_head_kv"] * hd
    # matmul FLOPs per prompt token: the layers (q, k, v, o, gate, up, down); logits are
    # computed for the last token only
    flops = 2 * s["n_layer"] * (e * (2 * e + 2 * kv) + 3 * e * f)
    for t in ("Q4_0", "Q8_0", "F16"):
        path = os.path.join(out, "bench-%s-%s.json" % (shape, t))
        try:
            j = json.load(open(path))
        except (OSError, ValueError):
            print("%-20s (no result)" % (shape + "-" + t))
            continue
        tg, pp = j["tg_tokens_per_s"], j["pp_tokens_per_s"]
        per_tok = j["weight_bytes_per_token"] + j["kv_bytes_per_token"]
        tf = pp * flops
        print("%-20s %9.1f %7.1f%% %7.1f%% %9.1f %9.1f %7.1f%%" % (
            shape + "-" + t, tg, 100 * tg * per_tok / spec_bw, 100 * tg * per_tok / measured,
            pp, tf / 1e12, 100 * tf / peak if peak else 0.0))
EOF

step "done in $(elapsed) s"
if [ -n "$failed" ]; then
    echo "FAILED:$failed (logs in $out)"
    exit 1
fi
echo "all GPU checks passed"
