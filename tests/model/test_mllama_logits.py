#!/usr/bin/python3
"""test_mllama_logits.py - the mllama decoder's cross-attention layers against the
independent float64 reference.

  test_mllama_logits.py BUILD_DIR SOURCE_ROOT [unittest args]

Writes the tiny-mllama text decoder (scripts/make_test_models.py, F32 and F16) and
seeded random image features (raw float32 [n][256]) into a temporary folder, runs

  BUILD_DIR/tests/mllama_logits MODEL OUT [--batch N] STEP...

(the C driver over lib/model/llama.c: token runs, llama_state_set_cross, clear;
OUT holds the logits of every token fed) with LMRT_CPU=scalar and with the
default kernels, and compares with scripts/reference.py under 1e-4, the bound
test_reference_logits.py derives for float32 arithmetic on float weights. The
scenarios: text only (cross layers skipped), text then an image then more text
(the image token <|image|> = 512 fed as a token), the states replaced by a
second image, and dropped again. A missing driver is a failure, not a skip.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_mllama_logits.py BUILD_DIR SOURCE_ROOT [unittest args]")
    BUILD_DIR, SOURCE_ROOT = (os.path.abspath(p) for p in sys.argv[1:3])
    del sys.argv[1:3]
else:
    BUILD_DIR = os.environ.get("LMRT_BUILD_DIR", "build")
    SOURCE_ROOT = os.environ.get("LMRT_SOURCE_ROOT",
                                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

SCRIPTS = os.path.join(SOURCE_ROOT, "scripts")
sys.path.insert(0, SCRIPTS)
import lmrt_gguf  # noqa: E402
import make_test_models  # noqa: E402
import reference  # noqa: E402

DRIVER = os.path.join(BUILD_DIR, "tests", "mllama_logits")
TOLERANCE = 1e-4        # F32 and F16 weights: float32 rounding only (test_reference_logits.py)
IMAGE = 512             # <|image|>: vocab_size, a row of token_embd but not of output
N_EMBD = 256

PROMPT = [1, 17, 300, 42, 511, 0, 256]
AFTER = [IMAGE, 5, 99, 400, 2, 519]                  # 519: the last row of token_embd
LONG = np.random.default_rng(7).integers(0, 512, 40).tolist()

_state = {}


def features(name, n, seed):
    """Seeded random features [n][n_embd] in float32, written to the temporary folder."""
    path = os.path.join(_state["dir"], name)
    f = np.random.default_rng(seed).standard_normal((n, N_EMBD)).astype("<f4")
    f.tofile(path)
    return path


def setUpModule():
    _state["dir"] = tempfile.mkdtemp(prefix="lmrt-mllama-")
    for t in ("F32", "F16"):
        make_test_models.write_model("tiny-mllama", t, _state["dir"], seed=0)
    _state["img_a"] = features("a.f32", 37, 1)
    _state["img_b"] = features("b.f32", 5, 2)
    _state["ref"] = {}


def tearDownModule():
    shutil.rmtree(_state.get("dir", ""), ignore_errors=True)


def model_path(type_name):
    return make_test_models.model_path(_state["dir"], "tiny-mllama", type_name)


# Scenarios: a list of steps in the driver's syntax.
SCENARIOS = {
    "text_only": ["t:" + ",".join(map(str, PROMPT)), "t:" + ",".join(map(str, LONG))],
    "text_image_text": ["t:" + ",".join(map(str, PROMPT)), "img:A",
                        "t:" + ",".join(map(str, AFTER)), "t:" + ",".join(map(str, LONG))],
    "image_replaced": ["t:1", "img:A", "t:" + ",".join(map(str, AFTER)), "img:B",
                       "t:" + ",".join(map(str, AFTER)), "t:7"],
    "image_cleared": ["img:A", "t:" + ",".join(map(str, PROMPT)), "clear",
                      "t:" + ",".join(map(str, AFTER))],
}


def concrete(steps):
    return [{"img:A": "img:" + _state["img_a"], "img:B": "img:" + _state["img_b"]}.get(s, s)
            for s in steps]


def reference_logits(type_name, scenario):
    key = (type_name, scenario)
    if key not in _state["ref"]:
        m = reference.Model(model_path(type_name))
        _state["ref"][key] = reference.run_steps(
            m, reference.parse_steps(m, ";".join(concrete(SCENARIOS[scenario]))))
    return _state["ref"][key]


def run_driver(type_name, steps, out, cpu=None, batch=None):
    cmd = [DRIVER, model_path(type_name), out]
    if batch:
        cmd += ["--batch", str(batch)]
    cmd += concrete(steps)
    env = dict(os.environ)
    env.pop("LMRT_CPU", None)
    if cpu:
        env["LMRT_CPU"] = cpu
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    if p.returncode != 0:
        raise AssertionError("%s exited with %d\nstderr: %s"
                             % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return np.fromfile(out, dtype="<f4")


class ReferenceChecks(unittest.TestCase):
    """The yardstick: the model file, the reference's cross layers, and that the
    scenarios are sensitive to what they test."""

    def test_model_file_has_the_mllama_layout(self):
        r = lmrt_gguf.Reader(model_path("F16"))
        self.assertEqual(r.kv["general.architecture"], b"mllama")
        self.assertEqual(r.kv["mllama.attention.cross_attention_layers"], [1, 3])
        self.assertEqual(r.kv["mllama.vocab_size"], 512)
        self.assertEqual(r.kv["tokenizer.ggml.tokens"][IMAGE], b"<|image|>")
        self.assertEqual(r.tensors["token_embd.weight"][:2], ("F16", [256, 520]))
        self.assertEqual(r.tensors["output.weight"][:2], ("F16", [256, 512]))
        self.assertEqual(r.tensors["blk.1.cross_attn_k_proj.weight"][:2], ("F16", [256, 64]))
        self.assertEqual(r.tensors["blk.3.cross_attn_q_norm.weight"][:2], ("F32", [32]))
        self.assertEqual(r.tensors["blk.3.cross_attn_mlp_gate"][:2], ("F32", [1]))
        self.assertNotIn("blk.1.attn_q.weight", r.tensors)
        self.assertIn("blk.2.attn_q.weight", r.tensors)

    def test_image_moves_logits_far_beyond_tolerance(self):
        # The same tokens after PROMPT, with and without image A: the cross layers
        # must matter (else the comparisons below could not fail).
        with_img = reference_logits("F32", "text_image_text")[len(PROMPT):]
        m = reference.Model(model_path("F32"))
        cache = m.new_cache()
        m.forward(PROMPT, cache)
        without = np.concatenate([m.forward(AFTER, cache), m.forward(LONG, cache)])
        self.assertGreater(np.abs(with_img - without).max(), 1000 * TOLERANCE)
        # ... and so must replacing the states by image B.
        rep = reference_logits("F32", "image_replaced")
        n = len(AFTER)
        self.assertGreater(np.abs(rep[1:1 + n] - rep[1 + n:1 + 2 * n]).max(), 1000 * TOLERANCE)

    def test_cleared_states_skip_cross_layers_again(self):
        got = reference_logits("F32", "image_cleared")[len(PROMPT):]
        m = reference.Model(model_path("F32"))
        cache = m.new_cache()
        m.set_cross(np.fromfile(_state["img_a"], "<f4").reshape(-1, N_EMBD), cache)
        m.forward(PROMPT, cache)
        for L, c in zip(m.layers, cache):
            if L["cross"]:
                c[0], c[1] = c[0][:0], c[1][:0]
        np.testing.assert_array_equal(got, m.forward(AFTER, cache))

    def test_gates_are_applied_through_tanh(self):
        m = reference.Model(model_path("F32"))
        r = lmrt_gguf.Reader(model_path("F32"))
        raw = np.frombuffer(r.tensors["blk.1.cross_attn_attn_gate"][2], "<f4")[0]
        self.assertAlmostEqual(m.layers[1]["attn_gate"], np.tanh(float(raw)), places=12)
        self.assertGreater(abs(raw), 0.3)

    def test_cache_feeding_equals_one_batch(self):
        m = reference.Model(model_path("F32"))
        cache = m.new_cache()
        m.forward(PROMPT, cache)
        m.set_cross(np.fromfile(_state["img_a"], "<f4").reshape(-1, N_EMBD), cache)
        parts = np.concatenate([m.forward(AFTER[:2], cache), m.forward(AFTER[2:], cache),
                                m.forward(LONG, cache)])
        want = reference_logits("F32", "text_image_text")[len(PROMPT):]
        np.testing.assert_allclose(parts, want, rtol=0, atol=1e-9)

    def test_reference_cli_steps(self):
        out = os.path.join(_state["dir"], "cli.f64")
        steps = ";".join(concrete(SCENARIOS["text_image_text"]))
        p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "reference.py"),
                            model_path("F32"), "--steps", steps, "--out", out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        want = reference_logits("F32", "text_image_text")
        np.testing.assert_array_equal(np.fromfile(out, "<f8").reshape(want.shape), want)


class LmrtLogits(unittest.TestCase):
    """The C decoder against the reference, per weight type, scenario and kernels."""

    def check(self, type_name, scenario, batch=None):
        self.assertTrue(os.access(DRIVER, os.X_OK), "%s is missing: it must be built" % DRIVER)
        want = reference_logits(type_name, scenario)
        for cpu in ("scalar", None):
            kernels = cpu or "default"
            out = os.path.join(_state["dir"], "%s-%s-%s.f32" % (type_name, scenario, kernels))
            got = run_driver(type_name, SCENARIOS[scenario], out, cpu, batch)
            self.assertEqual(got.size, want.size, "%d floats, expected [%d][%d]"
                             % (got.size, *want.shape))
            got = got.reshape(want.shape).astype(np.float64)
            self.assertTrue(np.all(np.isfinite(got)))
            err = np.abs(got - want)
            worst = np.unravel_index(np.argmax(err), err.shape)
            print("  tiny-mllama-%s %s, %s kernels%s: max |lmrt - reference| = %.3g"
                  % (type_name, scenario, kernels, ", batch %d" % batch if batch else "",
                     err.max()), file=sys.stderr)
            self.assertLessEqual(err.max(), TOLERANCE,
                                 "%s %s %s kernels: max error %.3g at token %d, logit %d"
                                 % (type_name, scenario, kernels, err.max(), *worst))

    def test_small_batches_split_image_runs(self):
        # n_batch 3: every run after the image is cut into chunks.
        self.check("F32", "text_image_text", batch=3)


def _add_tests():
    for type_name in ("F32", "F16"):
        for scenario in SCENARIOS:
            def test(self, type_name=type_name, scenario=scenario):
                self.check(type_name, scenario)
            name = "test_%s_%s" % (type_name, scenario)
            test.__name__ = name
            setattr(LmrtLogits, name, test)


_add_tests()

if __name__ == "__main__":
    unittest.main(verbosity=2)
