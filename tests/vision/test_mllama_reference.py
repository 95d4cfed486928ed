#!/usr/bin/python3
"""test_mllama_reference.py - lmrt's mllama (Llama 3.2 Vision) image encoder against
the independent float64 reference, and its tiling planner against HF's rule.

  test_mllama_reference.py MLLAMA_DUMP SOURCE_ROOT [unittest args]

Writes the tiny mllama vision models (scripts/make_vision_models.py --family mllama)
into a temporary folder, runs MLLAMA_DUMP encode on real photographs of
tests/data/images and pictures derived from them (a 2:1 crop, a transposed crop that
is three times taller than wide, a tiny crop that must be upscaled), and compares the
projected states with scripts/reference_mllama_vision.py: same tile grid, same
aspect-ratio id, same token count, max |lmrt - reference| <= 1e-4.

Tolerance: lmrt computes in float32 what the reference computes in float64; with
these models the states are of order 1 and the float32 rounding through 4-4 blocks
measured a few 1e-6, so 1e-4 leaves a 20x margin and still catches real errors
(a wrong gate, an off-by-one intermediate layer or a missing mask moves the states by
1e-2 or more; the test of the mask below checks that).
"""
import os
import random
import subprocess
import sys
import tempfile
import unittest

import numpy as np

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_mllama_reference.py MLLAMA_DUMP SOURCE_ROOT [unittest args]")
    DUMP, SOURCE_ROOT = (os.path.abspath(p) for p in sys.argv[1:3])
    del sys.argv[1:3]
else:
    DUMP = os.environ.get("LMRT_MLLAMA_DUMP", "build/tests/mllama_dump")
    SOURCE_ROOT = os.environ.get("LMRT_SOURCE_ROOT",
                                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

sys.path.insert(0, os.path.join(SOURCE_ROOT, "scripts"))
import make_vision_models  # noqa: E402
import reference_mllama_vision as ref  # noqa: E402

IMAGES = os.path.join(SOURCE_ROOT, "tests", "data", "images")
TOLERANCE = 1e-4
N_TEXT = make_vision_models.TEXT_N_EMBD

# (image, crop, transpose, what it exercises)
CASES = [
    ("chelsea.png", None, False, "wide photo 451x300: 2x2 grid, every tile used"),
    ("chelsea.png", (0, 40, 450, 225), False, "wide 2:1 crop: 1x2 grid, 2 unused tiles"),
    ("chelsea.png", (0, 0, 450, 150), True, "tall 150x450 (transposed crop): 3x1 grid"),
    ("camera.png", None, False, "greyscale square photo: 2x2"),
    ("chelsea.png", (200, 100, 20, 10), False, "20x10 crop: upscaled into one tile"),
]


class MllamaReference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.models = make_vision_models.write_mllama(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_dump(self, model, image, crop, transpose, out):
        cmd = [DUMP, "encode", model, image, str(N_TEXT), out]
        if crop:
            cmd += ["--crop"] + [str(c) for c in crop]
        if transpose:
            cmd.append("--transpose")
        p = subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        gh, gw, ar_id, n_tok = (int(x) for x in p.stdout.split())
        y = np.fromfile(out, dtype="<f4").astype(np.float64)
        return y.reshape(n_tok, N_TEXT), (gh, gw, ar_id)

    def test_states_match_reference(self):
        for model in self.models:
            m = ref.MllamaVision(model)
            cases = CASES if "tiny-F32" in model else CASES[:3]
            for image, crop, transpose, what in cases:
                with self.subTest(model=os.path.basename(model), case=what):
                    path = os.path.join(IMAGES, image)
                    out = os.path.join(self.tmp.name, "states.f32")
                    got, grid = self.run_dump(model, path, crop, transpose, out)
                    want, want_grid = m.encode(ref.load_image(path, crop, transpose))
                    self.assertEqual(grid, want_grid)
                    self.assertEqual(got.shape, want.shape)
                    err = np.abs(got - want).max()
                    self.assertLessEqual(err, TOLERANCE, "max |lmrt - reference| = %g" % err)
                    if os.environ.get("LMRT_VERBOSE"):
                        print("%s %s: max err %.2e, max |state| %.2f" % (os.path.basename(model), what, err, np.abs(want).max()))
                    self.assertGreater(np.abs(want).max(), 0.1)   # not a vacuous match

    def test_reference_mask_matters(self):
        """The quirky HF mask changes the states here, so the comparison above tests
        lmrt's version of it: without it (every query sees every key) the reference
        moves by far more than the tolerance."""
        model = [p for p in self.models if "tiny-F32" in p][0]
        m = ref.MllamaVision(model)
        img = ref.load_image(os.path.join(IMAGES, "chelsea.png"), (0, 40, 450, 225), False)
        want, _ = m.encode(img)
        block = m.block
        m.block = lambda x, prefix, mask, gated: block(x, prefix, np.zeros_like(mask), gated)
        unmasked, _ = m.encode(img)
        self.assertGreater(np.abs(unmasked - want).max(), 100 * TOLERANCE)

    def test_tiling_plan_follows_hf_rule(self):
        rng = random.Random(7)
        sizes = [(w, h) for w in (1, 2, 27, 28, 29, 55, 56, 57, 111, 112, 113)
                 for h in (1, 28, 56, 84, 112, 113, 300)]
        sizes += [(rng.randint(1, 3000), rng.randint(1, 3000)) for _ in range(400)]
        sizes += [(rng.randint(1, 60), rng.randint(1, 4000)) for _ in range(100)]
        for tile, max_tiles in ((28, 4), (560, 4), (56, 3), (14, 6), (100, 1)):
            with self.subTest(tile=tile, max_tiles=max_tiles):
                inp = "".join("%d %d\n" % s for s in sizes)
                p = subprocess.run([DUMP, "plan", str(tile), str(max_tiles)], input=inp,
                                   capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, p.stderr)
                got = [tuple(int(x) for x in line.split()) for line in p.stdout.splitlines()]
                want = [ref.plan(w, h, tile, max_tiles) for w, h in sizes]
                self.assertEqual(len(got), len(want))
                for s, g, w in zip(sizes, got, want):
                    self.assertEqual(g, w, "size %dx%d" % s)


if __name__ == "__main__":
    unittest.main()
