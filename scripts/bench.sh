#!/bin/sh
# bench.sh - reproduces the results table of doc/performance.md: lmrt-bench on the
# llama-3.2-1b shape (random weights) in each type, medians as one markdown table,
# and peak RSS against the budget "model file + KV cache + 64 MiB" (PASS/FAIL).
# A benchmark, not a test: meson test never runs it.
#
#   scripts/bench.sh [TYPE...]                 default: Q8_0 Q4_0 Q4_K Q6_K F16 BF16
#   scripts/bench.sh --report DIR [TYPE...]    the table of an earlier run's JSON only
#
# Generation is given twice, as lmrt-bench measures it: tgN from an empty context
# (llama-bench's tgN) and tgN@pP after the ppP prompt. tgN's roofline is given twice:
# against the bandwidth each run measured, and against the best bandwidth of all
# runs in the table (bandwidth is the machine's, not the model's, and other work on
# the cores only ever lowers a measurement); then "paired": the median over the
# repeats of each tgN against the mean bandwidth read right after it (lmrt-bench's
# roofline_fraction_paired; "-" in JSON from before it existed).
#
# Environment (defaults in brackets):
#   LMRT_MODELS  model cache; missing models are generated there   [/tmp/lmrt-models]
#   BUILD_DIR    meson build dir for examples/lmrt-bench; set up and built if needed
#                                                                   [./build-bench]
#   THREADS [2]  PROMPT [512]  GEN [128]  REPEATS [5]               lmrt-bench -t -p -n -r
#   RESULTS      where each run's JSON is kept        [/tmp/lmrt-bench-results/TIME-COMMIT]
#   PYTHON       a python3 with numpy, for make_test_models.py      [/usr/bin/python3]
#   COMMIT       the source the build came from, for the header
#                [git rev-parse --short HEAD, "+dirty" when tracked files differ from it]
#   LMRT_CPU     passed through to lmrt (scalar, avx2, avx512); the header shows it
# Exits 1 when a run fails or a peak RSS is over its budget.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
models=${LMRT_MODELS:-/tmp/lmrt-models}
build=${BUILD_DIR:-$root/build-bench}
threads=${THREADS:-2}
prompt=${PROMPT:-512}
gen=${GEN:-128}
repeats=${REPEATS:-5}
python=${PYTHON:-/usr/bin/python3}
[ -x "$python" ] || python=python3
shape=llama-3.2-1b
status=0

report_only=
if [ "${1:-}" = --report ]; then
    [ $# -ge 2 ] || { echo "usage: bench.sh --report DIR [TYPE...]" >&2; exit 2; }
    report_only=$2
    shift 2
fi
types=${*:-Q8_0 Q4_0 Q4_K Q6_K F16 BF16}

if [ -n "${COMMIT:-}" ]; then
    commit=$COMMIT
elif [ -n "$report_only" ]; then
    commit="(see $report_only)"
else
    commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | head -c1)
    if [ -n "$dirty" ]; then commit="$commit+dirty"; fi
fi

# Builds lmrt-bench, makes the missing models, runs each type into $results.
run_all() {
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" "$root" >/dev/null
    fi
    ninja -C "$build" examples/lmrt-bench >/dev/null
    mkdir -p "$models" "$results"
    for t in $types; do
        f=$models/$shape-$t.gguf
        if [ ! -f "$f" ]; then
            echo "bench.sh: generating $f" >&2
            "$python" "$root/scripts/make_test_models.py" --shape "$shape" --type "$t" \
                --out "$models"
        fi
    done
    for t in $types; do
        echo "bench.sh: $shape $t: lmrt-bench -t $threads -p $prompt -n $gen -r $repeats" >&2
        if ! "$build/examples/lmrt-bench" -m "$models/$shape-$t.gguf" -t "$threads" \
                -p "$prompt" -n "$gen" -r "$repeats" --json >"$results/$t.json"; then
            echo "bench.sh: lmrt-bench failed on $t" >&2
            rm -f "$results/$t.json"
            status=1
        fi
    done
}

if [ -n "$report_only" ]; then
    results=$report_only
    date=$(date -u -r "$results" +%Y-%m-%d 2>/dev/null || date -u +%Y-%m-%d)
else
    results=${RESULTS:-/tmp/lmrt-bench-results/$(date -u +%Y%m%dT%H%M%SZ)-$commit}
    date=$(date -u +%Y-%m-%d)
    run_all
    echo "bench.sh: JSON kept in $results" >&2
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
# shellcheck disable=SC2086  # $types is a list of words
"$python" - "$results" "$date" "$commit" "${cpu:-unknown CPU}" \
    "$(nproc 2>/dev/null || echo ?)" $types <<'EOF' || status=1
import json, os, sys
results, date, commit, cpu, ncpu, types = (*sys.argv[1:6], sys.argv[6:])
MIB = 1 << 20
runs = {}
for t in types:
    path = os.path.join(results, t + ".json")
    if os.path.exists(path):
        with open(path) as f:
            runs[t] = json.load(f)
if not runs:
    print("bench.sh: no results in %s" % results, file=sys.stderr)
    sys.exit(1)
first = next(iter(runs.values()))
p, n = first["n_prompt"], first["n_gen"]
best_bw = max(r["bandwidth_gb_s"] for r in runs.values())
print("%s, commit %s, LMRT_CPU=%s (%s kernels), %s (%s CPUs), %d threads, "
      "medians of %d repeats" % (date, commit, first["lmrt_cpu_env"] or "unset",
                                 first["cpu_simd"], cpu, ncpu, first["n_threads"],
                                 first["repeats"]))
print()
print("| type | file MiB | pp%d t/s (min..max) | tg%d t/s (min..max) | roofline | "
      "roofline at %.1f GB/s | paired (min..max) | tg%d@p%d t/s (min..max) | roofline | "
      "MiB/token (tg, @p) | read GB/s (best, paired) | peak RSS MiB | budget MiB | RSS | "
      "load s | load avg |" % (p, n, best_bw, n, p))
print("|------|---------:|-----------------:|-----------------:|---------:|---------:|"
      "------------------:|-----------------:|---------:|---------:|----------:|"
      "-------------:|-----------:|-----|-------:|---------:|")


def gen(r, key, bytes_key, roof_key):
    """'tokens/s (min..max)', roofline, roofline at best_bw and MiB/token of one
    generation test (JSON from before tgN@pP was added holds the after-prompt test
    under the tg keys, and no tgN)."""
    t = r[key + "_tokens_per_s"]
    return ("%.3f (%.3f..%.3f)" % (t, r[key + "_tokens_per_s_min"],
                                   r[key + "_tokens_per_s_max"]),
            "%.1f%%" % (100 * r[roof_key]),
            "%.1f%%" % (100 * t * r[bytes_key] / (best_bw * 1e9)),
            "%.1f" % (r[bytes_key] / MIB))


failed = False
for t in types:
    if t not in runs:
        print("| %s | run failed |" % t)
        failed = True
        continue
    r = runs[t]
    if "tg_after_prompt_tokens_per_s" in r:
        tg = gen(r, "tg", "bytes_per_token", "roofline_fraction")
        tgp = gen(r, "tg_after_prompt", "bytes_per_token_after_prompt",
                  "roofline_fraction_after_prompt")
    else:
        tg = ("-",) * 4
        tgp = gen(r, "tg", "bytes_per_token", "roofline_fraction")
    if r.get("roofline_fraction_paired") is not None:
        paired = "%.1f%% (%.1f..%.1f%%)" % (100 * r["roofline_fraction_paired"],
                                            100 * r["roofline_fraction_paired_min"],
                                            100 * r["roofline_fraction_paired_max"])
        read = "%.2f, %.2f" % (r["bandwidth_gb_s"], r["bandwidth_paired_gb_s"])
    else:
        paired, read = "-", "%.2f, -" % r["bandwidth_gb_s"]
    # The budget, computed here from its parts rather than taken from the tool.
    budget = r["model_file_bytes"] + r["kv_cache_bytes"] + 64 * MIB
    ok = r["peak_rss_bytes"] <= budget
    failed |= not ok
    print("| %s | %.0f | %.2f (%.2f..%.2f) | %s | %s | %s | %s | %s | %s | %s, %s | %s | %.0f | "
          "%.0f | %s | %.3f | %.1f..%.1f |" % (
              t, r["model_file_bytes"] / MIB,
              r["pp_tokens_per_s"], r["pp_tokens_per_s_min"], r["pp_tokens_per_s_max"],
              tg[0], tg[1], tg[2], paired, tgp[0], tgp[1], tg[3], tgp[3], read,
              r["peak_rss_bytes"] / MIB, budget / MIB, "PASS" if ok else "FAIL",
              r["load_s"], r["loadavg_start"], r["loadavg_end"]))
sys.exit(1 if failed else 0)
EOF
exit $status
