"""Images and audio through the Python binding, on tiny random-weight models made
by the project's scripts: the logits after the image/audio equal the float64
reference's (the C tests check the same through lmrt-generate), the region policy
raises NotLicensed before the input is opened and binds no encoder, and the
context reports what it bound."""
import os
import subprocess
import sys
import wave

import pytest

from conftest import DATA, SOURCE_ROOT

import lmrt

np = pytest.importorskip("numpy")
SCRIPTS = os.path.join(SOURCE_ROOT, "scripts")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PHOTO = os.path.join(DATA, "images", "chelsea.png")
SPEECH = os.path.join(DATA, "audio", "cards_001.wav")
PROMPT = [5, 17, 42]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("media-models"))
    for script, args in (("make_test_models.py", ["--shape", "tiny", "--type", "F32"]),
                         ("make_vision_models.py", ["--family", "clip"]),
                         ("make_audio_models.py", ["--shape", "tiny-80", "--type", "F32"])):
        subprocess.run([PY, os.path.join(SCRIPTS, script)] + args + ["--out", out],
                       check=True, stdout=subprocess.DEVNULL)
    return {"text": os.path.join(out, "tiny-F32.gguf"),
            "clip": os.path.join(out, "clip-tiny-F32.gguf"),
            "audio": os.path.join(out, "audio-tiny-80-F32.gguf")}


def reference_logits(text_path, embd):
    sys.path.insert(0, SCRIPTS)
    import reference
    m = reference.Model(text_path)
    return reference.run_steps(m, [("t", [1]), ("e", embd), ("t", PROMPT)])[-1]


def run(models, projector, region, feed):
    with lmrt.Model(models["text"], projector=models[projector]) as model:
        ctx = lmrt.Context(model, region=region, threads=2)
        s = ctx.session()
        s.feed_tokens([1])
        feed(s)
        s.feed_tokens(PROMPT)
        return np.array(s.logits()), ctx.info(), s.n_tokens


def test_image_logits_match_the_reference(models):
    sys.path.insert(0, SCRIPTS)
    import reference_clip
    got, info, n = run(models, "clip", "US", lambda s: s.feed_image(PHOTO))
    embd = reference_clip.Clip(models["clip"]).encode(reference_clip.decode_png(PHOTO))
    want = reference_logits(models["text"], embd)
    assert np.abs(got - want).max() < 1e-4
    assert n == 1 + len(embd) + len(PROMPT)
    assert info["tensors_bound"]["image"] > 0 and info["tensors_bound"]["audio"] == 0


def test_audio_logits_match_the_reference(models):
    sys.path.insert(0, SCRIPTS)
    import reference_audio
    got, info, _ = run(models, "audio", "US", lambda s: s.feed_audio(SPEECH))
    with wave.open(SPEECH) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768.0
    want = reference_logits(models["text"], reference_audio.Encoder(models["audio"]).encode(pcm))
    assert np.abs(got - want).max() < 1e-4
    assert info["tensors_bound"]["audio"] > 0


@pytest.mark.parametrize("projector,feed", [
    ("clip", lambda s: s.feed_image("/nonexistent.png")),
    ("audio", lambda s: s.feed_audio("/nonexistent.wav")),
    ("audio", lambda s: s.feed_audio_pcm([0.0] * 1600, 16000)),
])
def test_eu_is_refused_before_the_input_and_binds_nothing(models, projector, feed):
    with lmrt.Model(models["text"], projector=models[projector]) as model:
        ctx = lmrt.Context(model, region="DE")
        s = ctx.session()
        with pytest.raises(lmrt.NotLicensed) as e:
            feed(s)
        assert "European Union" in str(e.value)
        info = ctx.info()
        assert info["tensors_bound"]["image"] == 0 and info["tensors_bound"]["audio"] == 0
        assert info["modalities_licensed"] == {"text"} and info["modalities_bound"] == {"text"}


def test_image_budget(models):
    with lmrt.Model(models["text"], projector=models["clip"]) as model:
        s = lmrt.Context(model, region="US", max_image_pixels=1000).session()
        with pytest.raises(lmrt.FormatError):
            s.feed_image(PHOTO)
        assert s.n_tokens == 0
