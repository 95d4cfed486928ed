#!/usr/bin/python3
"""test_reference_logits.py - lmrt's logits against the independent float64 reference.

  test_reference_logits.py BUILD_DIR SOURCE_ROOT [unittest args]

Writes every tiny test model (scripts/make_test_models.py: shapes tiny and
tiny-tied, types F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K) into a temporary folder, runs

  BUILD_DIR/examples/lmrt-generate -m MODEL --tokens ID,ID,... -n 0 --dump-logits OUT

(OUT: raw little-endian float32 [n_tokens][n_vocab], every fed position) on a
short prompt and a 100-token prompt, twice: with LMRT_CPU=scalar (the reference
kernels) and with the kernels the CPU gets by default (SIMD where there are
some), and compares with scripts/reference.py's float64 logits under the
per-type tolerances below. A missing lmrt-generate is a failure, not a skip. The reference itself is checked first: it must
reproduce llama2.c's greedy continuation of the trained stories260K model.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_reference_logits.py BUILD_DIR SOURCE_ROOT [unittest args]")
    BUILD_DIR, SOURCE_ROOT = (os.path.abspath(p) for p in sys.argv[1:3])
    del sys.argv[1:3]
else:
    BUILD_DIR = os.environ.get("LMRT_BUILD_DIR", "build")
    SOURCE_ROOT = os.environ.get("LMRT_SOURCE_ROOT",
                                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

SCRIPTS = os.path.join(SOURCE_ROOT, "scripts")
sys.path.insert(0, SCRIPTS)
import lmrt_gguf  # noqa: E402
import lmrt_quant  # noqa: E402
import make_test_models  # noqa: E402
import reference  # noqa: E402

GENERATE = os.path.join(BUILD_DIR, "examples", "lmrt-generate")
STORIES = os.path.join(SOURCE_ROOT, "lib", "model", "builtin", "stories260K.gguf")
GREEDY_IDS = os.path.join(SOURCE_ROOT, "tests", "data", "greedy_t0_n256.ids.json")

# Max |lmrt - reference| over all logits, per weight type. lmrt dequantizes
# weights exactly and computes in float32, so every type differs from the
# float64 reference only by float32 rounding. Measured on these models (both
# prompts, logits up to |3.7|): numpy float32 forward vs float64 reference,
# with BLAS summation order and with strictly sequential dot products, gives at
# most 4.8e-6 for every type (F32 4.8e-6, F16 3.9e-6, BF16 4.1e-6, Q8_0 4.8e-6,
# Q4_0 3.9e-6, Q4_K 4.3e-6, Q6_K 4.2e-6); a Q4_K matmul factored per sub-block
# (d*sc*sum(q*x) - dmin*m*sum(x)) is no worse than the direct one (no
# cancellation). So one tolerance fits all types: 1e-4, a 20x margin over that
# floor for other summation orders, FMA and libm differences. It still catches
# real errors by far: ignoring rope_freqs moves logits by 5e-2, eps 1e-6
# instead of 1e-5 by 1.6e-2, NeoX instead of adjacent-pair RoPE by 3.
# If lmrt ever quantizes activations (ggml-style q8 dot products) or keeps the
# KV cache in f16, these bounds must be re-derived for those paths.
TOLERANCE = {
    "F32": 1e-4,    # 20x the measured float32 floor (4.8e-6)
    "F16": 1e-4,    # f16 -> f32 is exact: same floor (3.9e-6) as F32
    "BF16": 1e-4,   # bf16 -> f32 is exact: same floor (4.1e-6)
    "Q8_0": 1e-4,   # d * q exact in f32 (11 + 8 bits): floor 4.8e-6
    "Q4_0": 1e-4,   # d * (q - 8) exact in f32: floor 3.9e-6
    "Q4_K": 1e-4,   # d*sc*q exact, minus dmin*m rounds once (2^-24 rel): floor 4.3e-6
    "Q6_K": 1e-4,   # d * sc * (q - 32) exact in f32 (11 + 8 + 6 bits): floor 4.2e-6
}

# The same comparison with the default kernels (SIMD where the CPU has them): (max,
# RMS) of |lmrt - reference| over all logits, per type. The float types' SIMD matmuls
# are the scalar kernel's bits (backend/cpu/cpu_simd.h); attention and silu_mul round
# differently, which measured at most 2.3e-6: they keep 1e-4. The quantized types'
# matmuls round x to int8 first (Q8_0 blocks of 32 for Q8_0/Q4_0, Q8_K blocks of 256
# for Q4_K/Q6_K), as ggml does: each activation moves by up to half a step, amax/254 of
# its block, before the integer dot. Through 2 layers and the output matrix that is
# measured (x86, AVX2 and AVX-512 give the same bits; logits std 0.81) as, max / RMS:
#   Q8_0 0.101 / 0.0160, Q4_0 0.084 / 0.0164, Q4_K 0.111 / 0.0226, Q6_K 0.113 / 0.0226
# (RMS about 2-3% of the logit spread; a random walk of many such roundings, not a
# bias). The bounds below are about 2.2x the worst of those, for other kernels (NEON)
# rounding the same activations in another order. They still catch broken kernels,
# which move logits by O(1) (a wrong scale or sign, a misread nibble); subtler model
# errors are what the tight scalar run above is for.
SIMD_TOLERANCE = {
    "F32": (1e-4, 1e-4), "F16": (1e-4, 1e-4), "BF16": (1e-4, 1e-4),
    "Q8_0": (0.25, 0.05), "Q4_0": (0.25, 0.05), "Q4_K": (0.25, 0.05), "Q6_K": (0.25, 0.05),
}

SHORT_PROMPT = [1, 17, 300, 42, 511, 0, 256]          # ids 0 and n_vocab-1 included
LONG_PROMPT = np.random.default_rng(2024).integers(0, 512, 100).tolist()

_state = {}


def setUpModule():
    t0 = time.time()
    _state["dir"] = tempfile.mkdtemp(prefix="lmrt-reference-")
    _state["paths"] = make_test_models.write_all_tiny(_state["dir"], seed=0)
    _state["ref"] = {}
    print("\nwrote %d tiny models in %.1f s" % (len(_state["paths"]), time.time() - t0),
          file=sys.stderr)


def tearDownModule():
    shutil.rmtree(_state.get("dir", ""), ignore_errors=True)


def model_path(shape, type_name):
    return make_test_models.model_path(_state["dir"], shape, type_name)


def reference_logits(shape, type_name, prompt_name):
    """float64 [n_tokens][n_vocab], computed once per model and prompt."""
    key = (shape, type_name, prompt_name)
    if key not in _state["ref"]:
        m = reference.Model(model_path(shape, type_name))
        for name, tokens in (("short", SHORT_PROMPT), ("long", LONG_PROMPT)):
            _state["ref"][(shape, type_name, name)] = m.logits(tokens)
    return _state["ref"][key]


def run_lmrt(model, tokens, out, cpu=None):
    """cpu: LMRT_CPU for the run (None: the default kernels, whatever the caller's
    environment says)."""
    cmd = [GENERATE, "-m", model, "--tokens", ",".join(str(t) for t in tokens), "-n", "0",
           "--dump-logits", out]
    env = dict(os.environ)
    env.pop("LMRT_CPU", None)
    if cpu:
        env["LMRT_CPU"] = cpu
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    if p.returncode != 0:
        raise AssertionError("%s exited with %d\nstdout: %s\nstderr: %s"
                             % (" ".join(cmd), p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    return np.fromfile(out, dtype="<f4")


class ReferenceChecks(unittest.TestCase):
    """The yardstick itself: quantizers, generator and reference are right."""

    def test_quantizers_pass_their_self_tests(self):
        self.assertTrue(lmrt_quant.self_test(verbose=False))

    def test_reference_reproduces_stories260k_greedy_ids(self):
        with open(GREEDY_IDS) as f:
            want = json.load(f)["generated_ids"]
        # The file's semantics: llama2.c greedy from BOS (1), stopping on BOS.
        p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "reference.py"), STORIES,
                            "--tokens", "1", "--greedy", str(len(want)), "--stop", "1"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = [int(t) for t in p.stdout.strip().split(",")]
        self.assertEqual(got, want)

    def test_reference_cli_writes_float64_logits(self):
        out = os.path.join(_state["dir"], "ref.f64")
        p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "reference.py"),
                            model_path("tiny", "Q4_K"), "--tokens",
                            ",".join(map(str, SHORT_PROMPT)), "--out", out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = np.fromfile(out, dtype="<f8").reshape(len(SHORT_PROMPT), -1)
        np.testing.assert_array_equal(got, reference_logits("tiny", "Q4_K", "short"))

    def test_reference_cache_feeding_equals_one_batch(self):
        m = reference.Model(model_path("tiny", "F32"))
        cache = m.new_cache()
        parts = [m.forward(LONG_PROMPT[:37], cache), m.forward(LONG_PROMPT[37:38], cache),
                 m.forward(LONG_PROMPT[38:], cache)]
        np.testing.assert_allclose(np.concatenate(parts), reference_logits("tiny", "F32", "long"),
                                   rtol=0, atol=1e-9)

    def test_tiny_model_files_have_the_llama_layout(self):
        r = lmrt_gguf.Reader(model_path("tiny", "Q6_K"))
        self.assertEqual(r.kv["general.architecture"], b"llama")
        self.assertEqual(r.kv["general.file_type"], 18)
        self.assertEqual(r.kv["llama.rope.dimension_count"], 32)
        self.assertEqual(len(r.kv["tokenizer.ggml.tokens"]), 512)
        self.assertEqual(r.tensors["token_embd.weight"][:2], ("Q6_K", [256, 512]))
        self.assertEqual(r.tensors["blk.1.attn_k.weight"][:2], ("Q6_K", [256, 64]))
        self.assertEqual(r.tensors["blk.1.ffn_down.weight"][:2], ("Q6_K", [512, 256]))
        self.assertEqual(r.tensors["blk.1.ffn_norm.weight"][:2], ("F32", [256]))
        self.assertEqual(r.tensors["rope_freqs.weight"][:2], ("F32", [16]))
        tied = lmrt_gguf.Reader(model_path("tiny-tied", "Q6_K"))
        self.assertNotIn("output.weight", tied.tensors)
        self.assertNotIn("rope_freqs.weight", tied.tensors)

    def test_rope_freqs_follow_llama_3_1_scaling(self):
        # base 10000, n_rot 32: pairs 0..10 have wavelength < 8192/4 (factor 1),
        # 13..15 > 8192 (factor 8), 11 and 12 are smoothed in between.
        f = make_test_models.rope_freq_factors(32, 10000.0, 8.0, 1.0, 4.0, 8192)
        np.testing.assert_array_equal(f[:11], 1.0)
        np.testing.assert_array_equal(f[13:], 8.0)
        wavelen = 2 * np.pi * 10000.0 ** (np.array([11, 12]) * 2 / 32)
        smooth = (8192 / wavelen - 1) / 3
        np.testing.assert_allclose(f[11:13], 1 / ((1 - smooth) / 8 + smooth), rtol=1e-6)

    def test_rope_freqs_change_logits_well_beyond_tolerance(self):
        m = reference.Model(model_path("tiny", "F32"))
        m.inv_freq = m.rope_base ** (-2.0 * np.arange(m.n_rot // 2) / m.n_rot)
        diff = np.abs(m.logits(LONG_PROMPT) - reference_logits("tiny", "F32", "long")).max()
        self.assertGreater(diff, 50 * TOLERANCE["F32"])

    def test_tiny_logits_are_not_degenerate(self):
        # Greedy decisions must be stable against float32 noise: at least 80% of
        # positions have a top-1 margin of 0.01 (100x the tolerance) or more.
        for shape in make_test_models.TINY_SHAPES:
            for type_name in make_test_models.TYPES:
                logits = reference_logits(shape, type_name, "long")
                top = np.sort(logits, axis=1)
                margin = top[:, -1] - top[:, -2]
                frac = np.mean(margin >= 0.01)
                self.assertGreaterEqual(frac, 0.8, "%s-%s: %.0f%% of positions"
                                        % (shape, type_name, 100 * frac))
                self.assertGreater(logits.std(), 0.3, "%s-%s" % (shape, type_name))

    def test_types_quantize_one_float_model(self):
        # Every type file quantizes the same float weights: logits stay near the
        # F32 model's, by a distance that grows with the quantization step
        # (measured RMS distance / logit std: F16 0.001, BF16 0.007, Q8_0 0.025,
        # Q6_K 0.08, Q4_K 0.32, Q4_0 0.35; unrelated random weights give 1.4).
        bound = {"F16": 0.005, "BF16": 0.02, "Q8_0": 0.06, "Q6_K": 0.16, "Q4_K": 0.6,
                 "Q4_0": 0.6}
        for shape in make_test_models.TINY_SHAPES:
            f32 = reference_logits(shape, "F32", "long")
            for type_name, b in bound.items():
                d = reference_logits(shape, type_name, "long") - f32
                rel = np.sqrt(np.mean(d * d)) / f32.std()
                self.assertLess(rel, b, "%s-%s" % (shape, type_name))


class LmrtLogits(unittest.TestCase):
    """lmrt-generate --dump-logits against the reference, per model and prompt."""

    def check(self, shape, type_name):
        self.assertTrue(os.access(GENERATE, os.X_OK),
                        "%s is missing: lmrt-generate must be built" % GENERATE)
        path = model_path(shape, type_name)
        for prompt_name, tokens in (("short", SHORT_PROMPT), ("long", LONG_PROMPT)):
            want = reference_logits(shape, type_name, prompt_name)
            for cpu, (tol, tol_rms) in (("scalar", (TOLERANCE[type_name],) * 2),
                                        (None, SIMD_TOLERANCE[type_name])):
                kernels = cpu or "default"
                out = os.path.join(_state["dir"], "%s-%s-%s-%s.f32"
                                   % (shape, type_name, prompt_name, kernels))
                got = run_lmrt(path, tokens, out, cpu)
                self.assertEqual(got.size, want.size, "%s (%s prompt): %d floats, expected "
                                 "[%d][%d]" % (path, prompt_name, got.size, *want.shape))
                got = got.reshape(want.shape).astype(np.float64)
                self.assertTrue(np.all(np.isfinite(got)), "non-finite logits")
                err = np.abs(got - want)
                rms = float(np.sqrt(np.mean(err * err)))
                worst = np.unravel_index(np.argmax(err), err.shape)
                print("  %s-%s %s prompt (%d tokens), %s kernels: max |lmrt - reference| = "
                      "%.3g (tolerance %g), RMS %.3g (%g)"
                      % (shape, type_name, prompt_name, len(tokens), kernels, err.max(), tol,
                         rms, tol_rms), file=sys.stderr)
                self.assertLessEqual(err.max(), tol,
                                     "%s-%s, %s prompt, %s kernels: max error %.3g at position "
                                     "%d, token %d (lmrt %.6f, reference %.6f)"
                                     % (shape, type_name, prompt_name, kernels, err.max(),
                                        worst[0], worst[1], got[worst], want[worst]))
                self.assertLessEqual(rms, tol_rms, "%s-%s, %s prompt, %s kernels: RMS error %.3g"
                                     % (shape, type_name, prompt_name, kernels, rms))


def _add_model_tests():
    for shape in make_test_models.TINY_SHAPES:
        for type_name in make_test_models.TYPES:
            def test(self, shape=shape, type_name=type_name):
                self.check(shape, type_name)
            name = "test_%s_%s" % (shape.replace("-", "_"), type_name)
            test.__name__ = name
            setattr(LmrtLogits, name, test)


_add_model_tests()

if __name__ == "__main__":
    unittest.main(verbosity=2)
