#!/usr/bin/python3
"""test_cuda_logits.py - the tiny models' logits on the CUDA backend against the CPU.

  test_cuda_logits.py TOOL SOURCE_ROOT

TOOL is tests/test_cuda_logits (built with -Dcuda). Without a CUDA device it says so
and exits 77 (meson: skipped) before writing anything. Otherwise it writes every tiny
test model (scripts/make_test_models.py: tiny and tiny-tied, types F32 F16 BF16 Q8_0
Q4_0 Q4_K Q6_K) into a temporary folder and runs TOOL on each with a 7-token prompt
(the matrix-vector kernels), a 100-token prompt (the tensor-core GEMM) and 8 greedy
steps after each (generation), with LMRT_CPU=scalar: the CPU side is the exact float
reference kernels, so the differences are the GPU's own.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

# (max, RMS) of |CUDA - CPU| over all logits (std about 0.8, up to |3.7|), per type and
# path. F32 runs float kernels throughout: only summation order differs (float32 floor
# measured 4.8e-6 against float64), so 1e-3 is the bound with a 200x margin.
# F16/BF16 weights: generation reads them exactly (float x); the GEMM rounds x (and BF16
# weights) to f16, 2^-11 relative per element and matmul, which through 2 layers and the
# output matrix is about 1e-3 of the logits: 3e-2 / 5e-3 leave 10x. Quantized weights:
# generation quantizes x to int8 per 32 (as the CPU's SIMD kernels do, per 32 or 256),
# which tests/model/test_reference_logits.py measured at up to 0.11 max / 0.023 RMS for
# the CPU: the same bounds as its SIMD_TOLERANCE.
TOL = {
    "F32": {"prompt": (1e-3, 1e-3), "decode": (1e-3, 1e-3)},
    "F16": {"prompt": (3e-2, 5e-3), "decode": (3e-2, 5e-3)},
    "BF16": {"prompt": (3e-2, 5e-3), "decode": (3e-2, 5e-3)},
}
for _t in ("Q8_0", "Q4_0", "Q4_K", "Q6_K"):
    TOL[_t] = {"prompt": (0.25, 0.05), "decode": (0.25, 0.05)}
# The 7-token prompt runs the matvec kernels too (up to 8 tokens), which read F16/BF16
# exactly: with that prompt both phases keep F32's bound. (Generation after the 100-token
# prompt reads K and V that the GEMM wrote, so it keeps the GEMM's bound.)
SHORT_TOL = {"F16": (1e-3, 1e-3), "BF16": (1e-3, 1e-3)}

SHORT_PROMPT = [1, 17, 300, 42, 511, 0, 256]
LONG_PROMPT = np.random.default_rng(2024).integers(0, 512, 100).tolist()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: test_cuda_logits.py TOOL SOURCE_ROOT")
    tool, root = sys.argv[1], sys.argv[2]
    probe = subprocess.run([tool, "--probe"], capture_output=True, text=True)
    if probe.returncode == 77:
        print(probe.stdout.strip() or "no CUDA device: skipped")
        return 77
    if probe.returncode != 0:
        print(probe.stdout + probe.stderr)
        return 1
    sys.path.insert(0, os.path.join(root, "scripts"))
    import make_test_models  # noqa: E402

    tmp = tempfile.mkdtemp(prefix="lmrt-cuda-logits-")
    failures = 0
    try:
        paths = make_test_models.write_all_tiny(tmp, seed=0)
        env = dict(os.environ, LMRT_CPU="scalar")
        for path in paths:
            name = os.path.basename(path)[:-len(".gguf")]
            type_name = name.rsplit("-", 1)[1]
            for label, prompt in (("short", SHORT_PROMPT), ("long", LONG_PROMPT)):
                p = subprocess.run([tool, path, ",".join(map(str, prompt)), "8"],
                                   capture_output=True, text=True, timeout=300, env=env)
                if p.returncode != 0:
                    print("FAIL %s %s: exit %d\n%s%s" % (name, label, p.returncode, p.stdout,
                                                         p.stderr))
                    failures += 1
                    continue
                for line in p.stdout.splitlines():
                    m = re.match(r"(prompt|decode) \d+ max (\S+) rms (\S+)", line)
                    if not m:
                        continue
                    phase, mx, rms = m.group(1), float(m.group(2)), float(m.group(3))
                    lim = TOL[type_name][phase]
                    if label == "short" and type_name in SHORT_TOL:
                        lim = SHORT_TOL[type_name]
                    ok = mx <= lim[0] and rms <= lim[1]
                    print("%-4s %-16s %-5s %-6s max %.3g (<= %g) rms %.3g (<= %g)" %
                          ("ok" if ok else "FAIL", name, label, phase, mx, lim[0], rms, lim[1]))
                    failures += not ok
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
