#!/usr/bin/python3
"""test_clip_reference.py - lmrt's CLIP encoder and resampler against the float64
reference (scripts/reference_clip.py), on the real photos in tests/data/images.

  test_clip_reference.py CLIP_DUMP SOURCE_ROOT [unittest args]

Writes the tiny mmproj files of scripts/make_vision_models.py --family clip into a
temporary folder, runs CLIP_DUMP (tests/vision/clip_dump.c) on each photo and
compares its float32 embeddings [n_patches][256] with the reference's. The photos:
camera.png (512 x 512 greyscale, so padding does nothing) and chelsea.png (451 x 300
RGB, padded to 451 x 451 with the mean colour). A missing CLIP_DUMP is a failure.
"""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_clip_reference.py CLIP_DUMP SOURCE_ROOT [unittest args]")
    CLIP_DUMP, SOURCE_ROOT = (os.path.abspath(p) for p in sys.argv[1:3])
    del sys.argv[1:3]
else:
    CLIP_DUMP = os.environ.get("LMRT_CLIP_DUMP", "build/tests/clip_dump")
    SOURCE_ROOT = os.environ.get("LMRT_SOURCE_ROOT",
                                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

sys.path.insert(0, os.path.join(SOURCE_ROOT, "scripts"))
import lmrt_gguf  # noqa: E402
import make_vision_models  # noqa: E402
import reference_clip  # noqa: E402

IMAGES = os.path.join(SOURCE_ROOT, "tests", "data", "images")
PHOTOS = ("camera.png", "chelsea.png")
N_TEXT = make_vision_models.TEXT_N_EMBD

# Max |lmrt - reference| over all embeddings (values up to about 4). lmrt computes
# in float32 from the same weights; float32 rounding through 2-3 blocks and the
# projector stays near 1e-5 on these models, so 1e-4 leaves a margin for summation
# order and libm while catching real errors by far: a one-pixel shift of the padding
# or a bilinear instead of bicubic resize moves the outputs by 1e-2 or more, quick
# GELU instead of GELU by 1e-1.
TOL = 1e-4
# F16 weights: the reference reads the same rounded weights, so the tolerance is the
# same; the test only adds the F16 matmul and get_rows paths.
# The resampler: float32 output of 0..255 values computed in double, against float64.
RESIZE_TOL = 2e-3


class ClipReference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(CLIP_DUMP, os.X_OK):
            raise AssertionError("clip_dump not built: " + CLIP_DUMP)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.models = make_vision_models.write_clip(cls.tmp.name)
        cls.photos = {p: reference_clip.decode_png(os.path.join(IMAGES, p)) for p in PHOTOS}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def dump(self, *args):
        out = os.path.join(self.tmp.name, "out.f32")
        r = subprocess.run([CLIP_DUMP] + [str(a) for a in args] + [out],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return np.fromfile(out, dtype="<f4").astype(np.float64)

    def test_png_decoder_matches_lmrt(self):
        """The reference's own PNG decoder agrees with lmrt's (a resize to the same
        size is the identity in both), so the two pipelines start from one image."""
        for p, img in self.photos.items():
            h, w, _ = img.shape
            got = self.dump("resize", os.path.join(IMAGES, p), w, h, "bicubic")
            np.testing.assert_array_equal(got.reshape(h, w, 3), img.astype(np.float64), p)

    def test_resize_matches_reference(self):
        """2x up, 2x down, uneven factors, 1x1, and extreme aspect ratios."""
        for p, img in self.photos.items():
            h, w, _ = img.shape
            cases = [(2 * w, 2 * h), (w // 2, h // 2), (w // 4, int(h * 0.4)),
                     (int(w * 1.37), int(h * 0.71)), (1, 1), (3, 2 * h), (w, 1), (700, 2)]
            for filt in ("bicubic", "bilinear"):
                for ow, oh in cases:
                    got = self.dump("resize", os.path.join(IMAGES, p), ow, oh, filt)
                    want = reference_clip.resize(img, ow, oh, filt)
                    err = np.abs(got - want.reshape(-1)).max()
                    self.assertLess(err, RESIZE_TOL, "%s %s %dx%d" % (p, filt, ow, oh))

    def test_embeddings_match_reference(self):
        for path in self.models:
            ref = reference_clip.Clip(path)
            n_patches = (ref.S // ref.P) ** 2
            for p, img in self.photos.items():
                got = self.dump("encode", path, os.path.join(IMAGES, p), N_TEXT)
                want = ref.encode(img)
                self.assertEqual(want.shape, (n_patches, N_TEXT))
                self.assertEqual(got.size, want.size, "%s %s" % (path, p))
                err = np.abs(got - want.reshape(-1)).max()
                print("%s %s: max |lmrt - ref| = %.2e (max |ref| %.2f)"
                      % (os.path.basename(path), p, err, np.abs(want).max()))
                self.assertLess(err, TOL, "%s %s" % (path, p))

    def test_reference_is_sensitive(self):
        """The tolerance means something: the pipeline's choices move the outputs by
        far more than TOL."""
        path = [m for m in self.models if "tiny-F32" in m][0]
        ref = reference_clip.Clip(path)
        img = self.photos["chelsea.png"]
        base = ref.encode(img)
        shifted = np.roll(img, 1, axis=1)
        self.assertGreater(np.abs(ref.encode(shifted) - base).max(), 100 * TOL)
        ref.use_gelu = True
        self.assertGreater(np.abs(ref.encode(img) - base).max(), 100 * TOL)

    def test_hostile_files_fail_with_named_error(self):
        """Whole-file checks through the dump program: the message names the culprit."""
        src = [m for m in self.models if "tiny-F32" in m][0]
        r = lmrt_gguf.Reader(src)

        def rewrite(tag, drop=None, proj=None):
            w = lmrt_gguf.Writer()
            for key, value in r.kv.items():
                vtype, elem = r.kv_types[key]
                if key == "clip.projector_type" and proj:
                    value = proj
                w.add(key, vtype, value, elem)
            for name, (t, dims, data) in r.tensors.items():
                if name != drop:
                    w.add_tensor(name, t, dims, bytes(data))
            path = os.path.join(self.tmp.name, "hostile-%s.gguf" % tag)
            w.write(path)
            return path

        photo = os.path.join(IMAGES, "camera.png")
        for path, needle in ((rewrite("drop", drop="v.blk.1.attn_v.weight"), "v.blk.1.attn_v.weight"),
                             (rewrite("proj", proj="ldp"), "'ldp'")):
            out = os.path.join(self.tmp.name, "x.f32")
            res = subprocess.run([CLIP_DUMP, "encode", path, photo, str(N_TEXT), out],
                                 capture_output=True, text=True)
            self.assertEqual(res.returncode, 1)
            self.assertIn(needle, res.stderr)
        res = subprocess.run([CLIP_DUMP, "encode", src, photo, "100", out],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 1)
        self.assertIn("mm.2.weight", res.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
