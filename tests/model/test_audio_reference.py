#!/usr/bin/python3
"""test_audio_reference.py - lmrt's log-mel spectrogram and audio encoder against
the independent float64 reference (scripts/reference_audio.py), and the
encoder's checks of hostile projector files.

  test_audio_reference.py BUILD_DIR SOURCE_ROOT [unittest args]

Drives BUILD_DIR/tests/audio_dump (tests/audio_dump.c), which writes lmrt's
float32 results for raw float32 PCM. The speech is real: tests/data/audio
(LibriVox read speech and a spoken card name, 16 kHz s16 mono), read with
Python's wave module and scaled by 1/32768. A missing audio_dump is a failure.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import wave

import numpy as np

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_audio_reference.py BUILD_DIR SOURCE_ROOT [unittest args]")
    BUILD_DIR, SOURCE_ROOT = (os.path.abspath(p) for p in sys.argv[1:3])
    del sys.argv[1:3]
else:
    BUILD_DIR = os.environ.get("LMRT_BUILD_DIR", "build")
    SOURCE_ROOT = os.environ.get("LMRT_SOURCE_ROOT",
                                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

sys.path.insert(0, os.path.join(SOURCE_ROOT, "scripts"))
import lmrt_gguf  # noqa: E402
import make_audio_models  # noqa: E402
import reference_audio  # noqa: E402

DUMP = os.path.join(BUILD_DIR, "tests", "audio_dump")
AUDIO = os.path.join(SOURCE_ROOT, "tests", "data", "audio")
SPEECH = {
    "librivox": os.path.join(AUDIO, "sense_and_sensibility_01_austen_64kb-0880.wav"),
    "cards": os.path.join(AUDIO, "cards_001.wav"),
}
N_EMBD_TEXT = 256

# Mel: max |lmrt - reference| / max |reference| over the whole spectrogram (every
# window, every bin) must stay below 1e-5, the bound. lmrt computes the
# FFT, filterbank and log10 in double and rounds each log value to float32 once
# before the clamp and (x + 4) / 4, done in float32: measured 5e-8 to 6e-8 on
# this speech. Errors of definition are far above the bound: zero instead of
# reflect padding at the window ends moves it by 0.34, a symmetric instead of
# a periodic Hann window by 1.3e-2.
MEL_REL_TOL = 1e-5
# Encoder + projector with F32 weights: max |lmrt - reference| over all outputs
# (outputs up to |4.5|). float32 arithmetic through 2-3 blocks of 1500 positions
# measured 2e-6 to 3e-6; 1e-4 is the bound, a 30x margin. It catches
# wrong math by far (dropping one attn_out bias moves outputs by 1.26, swapping
# the SwiGLU halves by 3.6); only the projector's RMSNorm epsilon (1e-5 instead
# of 1e-6: 7.6e-5) hides below it, as it hardly matters for inputs of RMS ~ 1.
ENC_ABS_TOL = 1e-4

_state = {}


def read_wav(path):
    with wave.open(path) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000), path
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / np.float32(32768.0)


def setUpModule():
    if not os.path.exists(DUMP):
        raise RuntimeError("%s is missing: build the tests first" % DUMP)
    d = tempfile.mkdtemp(prefix="lmrt-audio-")
    _state["dir"] = d
    _state["models"] = {(s, t): make_audio_models.write_model(s, t, d)
                        for s in make_audio_models.SHAPES for t in make_audio_models.TYPES}
    speech = {k: read_wav(p) for k, p in SPEECH.items()}
    # 34 s: two windows, the second mostly padding (tiled LibriVox, then the card)
    speech["long"] = np.concatenate([speech["librivox"]] * 11 + [speech["cards"]])
    speech["silence"] = np.zeros(16000, dtype=np.float32)
    _state["pcm"] = {}
    for k, x in speech.items():
        p = os.path.join(d, k + ".f32")
        x.astype("<f4").tofile(p)
        _state["pcm"][k] = p
    _state["speech"] = speech


def tearDownModule():
    shutil.rmtree(_state.get("dir", ""), ignore_errors=True)


def run_dump(*args):
    return subprocess.run([DUMP] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=300)


def lmrt_mel(name, n_mel):
    out = os.path.join(_state["dir"], "mel-%s-%d.f32" % (name, n_mel))
    r = run_dump("mel", n_mel, _state["pcm"][name], out)
    if r.returncode:
        raise AssertionError("audio_dump mel failed: " + r.stderr)
    return np.fromfile(out, dtype="<f4").astype(np.float64).reshape(-1, n_mel)


def lmrt_encode(model, name, n_embd_text=N_EMBD_TEXT):
    out = os.path.join(_state["dir"], "embd.f32")
    r = run_dump("encode", model, n_embd_text, _state["pcm"][name], out)
    if r.returncode:
        raise AssertionError("audio_dump encode failed: " + r.stderr)
    return np.fromfile(out, dtype="<f4").astype(np.float64).reshape(-1, n_embd_text)


class Mel(unittest.TestCase):
    def check(self, name, n_mel):
        ref = reference_audio.log_mel(_state["speech"][name].astype(np.float64), n_mel)
        got = lmrt_mel(name, n_mel)
        self.assertEqual(got.shape, ref.shape)
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        print("\n  mel %-8s %3d bins: %s frames, max|d|/max|ref| = %.2e"
              % (name, n_mel, got.shape[0], rel), file=sys.stderr)
        self.assertLess(rel, MEL_REL_TOL)
        return got

    def test_librivox_80_bins_matches_reference(self):
        self.check("librivox", 80)

    def test_librivox_128_bins_matches_reference(self):
        self.check("librivox", 128)

    def test_cards_80_bins_matches_reference(self):
        self.check("cards", 80)

    def test_cards_128_bins_matches_reference(self):
        self.check("cards", 128)

    def test_audio_over_30_s_is_two_windows(self):
        got = self.check("long", 80)
        self.assertEqual(got.shape[0], 2 * 3000)

    def test_silence_is_the_clamped_floor(self):
        # log10(1e-10) = -10 everywhere, so the max is -10 and (x + 4) / 4 = -1.5
        got = lmrt_mel("silence", 80)
        np.testing.assert_array_equal(got, np.full((3000, 80), -1.5))

    def test_bad_mel_count_is_format_error(self):
        for n in (0, 513):
            r = run_dump("mel", n, _state["pcm"]["cards"], os.path.join(_state["dir"], "x"))
            self.assertEqual(r.returncode, 1)
            self.assertIn("LMRT_E_FORMAT", r.stderr)
            self.assertIn("num_mel_bins", r.stderr)


class Encoder(unittest.TestCase):
    def check(self, shape, type_name, name):
        path = _state["models"][(shape, type_name)]
        ref = reference_audio.Encoder(path).encode(_state["speech"][name].astype(np.float64))
        got = lmrt_encode(path, name)
        self.assertEqual(got.shape, ref.shape)
        err = np.abs(got - ref).max()
        print("\n  encoder %s %s %-8s: %d tokens, max|d| = %.2e (max|ref| %.2f)"
              % (shape, type_name, name, got.shape[0], err, np.abs(ref).max()), file=sys.stderr)
        self.assertLess(err, ENC_ABS_TOL)

    def test_tiny_80_f32_librivox_matches_reference(self):
        self.check("tiny-80", "F32", "librivox")

    def test_tiny_128_f32_cards_matches_reference(self):
        self.check("tiny-128", "F32", "cards")

    def test_tiny_80_f32_over_30_s_matches_reference(self):
        self.check("tiny-80", "F32", "long")

    def test_tiny_80_f16_smoke(self):
        # F16 weights dequantize exactly, so the reference of the same file is as close
        self.check("tiny-80", "F16", "cards")

    def test_token_counts(self):
        self.assertEqual(lmrt_encode(_state["models"][("tiny-80", "F32")], "cards").shape[0],
                         188)        # ceil(1500 / 8)
        self.assertEqual(lmrt_encode(_state["models"][("tiny-128", "F32")], "long").shape[0],
                         2 * 375)    # two windows of 1500 / 4


def hostile(edit):
    """A copy of the tiny-80 F32 model changed by edit(kv, tensors), where kv is a
    list of (key, type, value, elem_type) and tensors a list of (name, type, dims,
    bytes); returns its path."""
    w = make_audio_models.build_writer("tiny-80", "F32")
    edit(w.kv, w.tensors)
    path = os.path.join(_state["dir"], "hostile.gguf")
    w.write(path)
    return path


def drop(items, name):
    items[:] = [t for t in items if t[0] != name]


def reshape(tensors, name, dims):
    for i, (n, tn, _, data) in enumerate(tensors):
        if n == name:
            nbytes = lmrt_gguf.tensor_nbytes(tn, dims)
            tensors[i] = (n, tn, dims, (bytes(data) * 2)[:nbytes].ljust(nbytes, b"\0"))


class Hostile(unittest.TestCase):
    def expect(self, path, status, *words, n_embd_text=N_EMBD_TEXT):
        r = run_dump("encode", path, n_embd_text, _state["pcm"]["cards"],
                     os.path.join(_state["dir"], "x"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(status, r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)

    def test_missing_tensor_is_format_error_naming_it(self):
        for name in ("a.blk.1.attn_v.bias", "a.conv1d.2.weight", "mm.a.norm_mid.weight",
                     "a.position_embd.weight", "a.post_ln.bias", "mm.a.mlp.1.weight"):
            self.expect(hostile(lambda kv, t: drop(t, name)), "LMRT_E_FORMAT", "'%s'" % name)

    def test_wrong_shape_is_format_error_naming_it(self):
        cases = [("a.blk.0.attn_q.weight", [64, 63]), ("a.conv1d.1.weight", [3, 79, 64]),
                 ("a.conv1d.1.weight", [240, 64]), ("mm.a.mlp.2.weight", [256, 255]),
                 ("mm.a.mlp.1.weight", [512, 511]), ("a.blk.1.ffn_up.bias", [255]),
                 ("a.position_embd.weight", [64, 1499]), ("mm.a.norm_pre.weight", [2, 256])]
        for name, dims in cases:
            self.expect(hostile(lambda kv, t: reshape(t, name, dims)), "LMRT_E_FORMAT",
                        "'%s'" % name)

    def test_missing_key_is_format_error_naming_it(self):
        for key in ("clip.audio.block_count", "clip.audio.projector.stack_factor",
                    "clip.audio.attention.layer_norm_epsilon", "clip.audio.num_mel_bins"):
            self.expect(hostile(lambda kv, t: drop(kv, key)), "LMRT_E_FORMAT", key)

    def test_bad_key_values_are_format_errors(self):
        def setkey(key, value):
            def edit(kv, t):
                for i, item in enumerate(kv):
                    if item[0] == key:
                        kv[i] = (key, item[1], value, item[3])
            return edit
        self.expect(hostile(setkey("clip.audio.attention.head_count", 5)), "LMRT_E_FORMAT",
                    "head_count")
        self.expect(hostile(setkey("clip.audio.block_count", 0)), "LMRT_E_FORMAT",
                    "clip.audio.block_count")
        self.expect(hostile(setkey("clip.has_audio_encoder", False)), "LMRT_E_FORMAT",
                    "clip.has_audio_encoder")
        self.expect(hostile(setkey("clip.projector_type", "qwen2a")), "LMRT_E_UNSUPPORTED",
                    "qwen2a")

    def test_projector_of_another_text_model_is_refused(self):
        self.expect(_state["models"][("tiny-80", "F32")], "LMRT_E_FORMAT", "projection_dim",
                    n_embd_text=255)

    def test_f16_norm_weight_is_unsupported_naming_it(self):
        def edit(kv, tensors):
            for i, (n, tn, dims, data) in enumerate(tensors):
                if n == "a.blk.0.ln2.weight":
                    x = np.frombuffer(data, dtype="<f4").astype("<f2")
                    tensors[i] = (n, "F16", dims, x.tobytes())
        self.expect(hostile(edit), "LMRT_E_UNSUPPORTED", "'a.blk.0.ln2.weight'")


if __name__ == "__main__":
    unittest.main(verbosity=2)
