#!/usr/bin/python3
"""test_media_generate.py - images and audio end to end through the public API,
driven by examples/lmrt-generate the way a user runs it, against the float64
references (scripts/reference*.py), plus the licence enforcement:

  image  a tiny text model with a CLIP mmproj (embeddings among the tokens) and the
         tiny Llama 3.2 Vision pair (cross-attention states + <|image|>), on a real
         photo: the logits of the prompt fed after the image match the reference;
  audio  a tiny text model with an Ultravox mmproj, on real speech: the same;
  both   in the EU the feed fails with LMRT_E_NOT_LICENSED and exit status 1, the
         encoder binds no tensor, and less of the projector file is ever resident.

  test_media_generate.py BUILD_DIR SOURCE_DIR image|audio
"""
import os
import re
import subprocess
import sys
import tempfile
import wave

import numpy as np

BUILD, SRC, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(SRC, "scripts"))
import reference                      # noqa: E402
import reference_audio                # noqa: E402
import reference_clip                 # noqa: E402
import reference_mllama_vision        # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
GENERATE = os.path.join(BUILD, "examples", "lmrt-generate")
API_CHECK = os.path.join(BUILD, "tests", "media_api_check")
PHOTO = os.path.join(SRC, "tests", "data", "images", "chelsea.png")
SPEECH = os.path.join(SRC, "tests", "data", "audio", "cards_001.wav")
PROMPT = [5, 17, 42, 99, 3]           # token ids fed after the media
BOS = 1                               # the tiny models' (stories260K) BOS
# float32 through an encoder and a decoder against float64: the encoders alone
# agree to ~3e-6 and the decoder to ~2e-6 (their own tests); 1e-4 as for each.
TOL = 1e-4

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def script(name, *args):
    subprocess.run([PY, os.path.join(SRC, "scripts", name)] + list(args), check=True,
                   stdout=subprocess.DEVNULL)


def generate(model, mmproj, media_flag, media, region, out):
    cmd = [GENERATE, "-m", model, "--mmproj", mmproj, media_flag, media, "--region", region,
           "--tokens", ",".join(map(str, PROMPT)), "-n", "0", "-t", "2", "-v",
           "--dump-logits", out]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stderr


def bound(stderr, modality):
    m = re.search(r"tensors bound: text (\d+), image (\d+), audio (\d+)", stderr)
    if not m:
        return None
    return int(m.group({"text": 1, "image": 2, "audio": 3}[modality]))


def resident_kib(stderr, path):
    m = re.search(re.escape(path) + r" mapped (\d+) KiB, resident (\d+) KiB", stderr)
    return (int(m.group(1)), int(m.group(2))) if m else None


def compare(name, out, expect):
    got = np.fromfile(out, dtype="<f4").reshape(-1, expect.shape[1])
    check(got.shape == expect.shape, "%s: logits shape %s, reference %s"
          % (name, got.shape, expect.shape))
    if got.shape == expect.shape:
        err = float(np.abs(got - expect).max())
        check(err <= TOL, "%s: max |lmrt - float64 reference| = %.3g <= %g" % (name, err, TOL))


def licensing(name, model, mmproj, flag, media, region, modality, allowed_stderr):
    """The same run in an EU region: refused with the licence message, nothing bound."""
    out = os.path.join(os.path.dirname(model), "denied.f32")
    rc, err = generate(model, mmproj, flag, media, region, out)
    check(rc == 1, "%s --region %s: exit status %d (want 1)" % (name, region, rc))
    msg = [l for l in err.splitlines() if "tensors bound" not in l and "resident" not in l
           and "Vm" not in l]
    msg = msg[0] if msg else "(nothing)"
    check("not licensed" in msg.lower() and modality in msg and "European Union" in msg,
          "%s --region %s: the licensing message is printed: %s" % (name, region, msg))
    check(bound(err, modality) == 0, "%s --region %s: %s tensors bound = %s (want 0)"
          % (name, region, modality, bound(err, modality)))
    check((bound(allowed_stderr, modality) or 0) > 0, "%s --region US: %s tensors bound = %s"
          % (name, modality, bound(allowed_stderr, modality)))
    denied, allowed = resident_kib(err, mmproj), resident_kib(allowed_stderr, mmproj)
    if denied and allowed:
        print("     %s: projector file %d KiB mapped; resident %d KiB in %s, %d KiB in US"
              % (name, denied[0], denied[1], region, allowed[1]))
        check(denied[1] < allowed[1], "%s: less of the projector is resident in %s than in "
              "US (%d < %d KiB)" % (name, region, denied[1], allowed[1]))
    else:
        check(False, "%s: lmrt-generate -v reports the projector mapping" % name)


def api_checks(name, kind, model, mmproj, media):
    """tests/model/media_api_check.c over the same files."""
    r = subprocess.run([API_CHECK, kind, model, mmproj, media], capture_output=True, text=True,
                       timeout=900)
    for line in r.stdout.splitlines():
        if line.startswith("FAIL"):
            print("     " + line)
    check(r.returncode == 0, "%s: media_api_check (%d lines: licence, arguments, budgets, "
          "save/restore/fork, allocation failures)%s" % (name, len(r.stdout.splitlines()),
                                                        "" if r.returncode == 0 else r.stderr))


def image_tests(tmp):
    script("make_test_models.py", "--shape", "tiny", "--type", "F32", "--out", tmp)
    script("make_test_models.py", "--shape", "tiny-mllama", "--type", "F32", "--out", tmp)
    script("make_vision_models.py", "--family", "clip", "--out", tmp)
    script("make_vision_models.py", "--family", "mllama", "--out", tmp)
    img = reference_clip.decode_png(PHOTO)

    # Projector model: BOS, 16 image embeddings, the prompt.
    text = os.path.join(tmp, "tiny-F32.gguf")
    proj = os.path.join(tmp, "clip-tiny-F32.gguf")
    out = os.path.join(tmp, "clip.f32")
    rc, err = generate(text, proj, "--image", PHOTO, "US", out)
    check(rc == 0, "clip: lmrt-generate --image exits 0 (%s)" % err.strip()[-300:])
    embd = reference_clip.Clip(proj).encode(img)
    m = reference.Model(text)
    expect = reference.run_steps(m, [("t", [BOS]), ("e", embd), ("t", PROMPT)])
    compare("clip", out, expect[-len(PROMPT):])
    licensing("clip", text, proj, "--image", PHOTO, "DE", "image", err)
    api_checks("clip", "image", text, proj, PHOTO)

    # Llama 3.2 Vision: BOS, cross states + <|image|>, the prompt.
    text = os.path.join(tmp, "tiny-mllama-F32.gguf")
    proj = os.path.join(tmp, "mllama-vision-tiny-F32.gguf")
    out = os.path.join(tmp, "mllama.f32")
    rc, err = generate(text, proj, "--image", PHOTO, "US", out)
    check(rc == 0, "mllama: lmrt-generate --image exits 0 (%s)" % err.strip()[-300:])
    feats, _ = reference_mllama_vision.MllamaVision(proj).encode(img)
    m = reference.Model(text)
    image_id = 512
    expect = reference.run_steps(m, [("t", [BOS]), ("img", feats), ("t", [image_id]),
                                     ("t", PROMPT)])
    compare("mllama", out, expect[-len(PROMPT):])
    licensing("mllama", text, proj, "--image", PHOTO, "FR", "image", err)
    api_checks("mllama", "image", text, proj, PHOTO)


def read_wav_mono(path):
    with wave.open(path) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == 16000
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float64) / 32768.0


def audio_tests(tmp):
    script("make_test_models.py", "--shape", "tiny", "--type", "F32", "--out", tmp)
    script("make_audio_models.py", "--shape", "tiny-80", "--type", "F32", "--out", tmp)
    text = os.path.join(tmp, "tiny-F32.gguf")
    proj = os.path.join(tmp, "audio-tiny-80-F32.gguf")
    out = os.path.join(tmp, "audio.f32")
    rc, err = generate(text, proj, "--audio", SPEECH, "US", out)
    check(rc == 0, "ultravox: lmrt-generate --audio exits 0 (%s)" % err.strip()[-300:])
    embd = reference_audio.Encoder(proj).encode(read_wav_mono(SPEECH))
    m = reference.Model(text)
    expect = reference.run_steps(m, [("t", [BOS]), ("e", embd), ("t", PROMPT)])
    compare("ultravox", out, expect[-len(PROMPT):])
    licensing("ultravox", text, proj, "--audio", SPEECH, "FR", "audio", err)
    api_checks("ultravox", "audio", text, proj, SPEECH)


def main():
    with tempfile.TemporaryDirectory(prefix="lmrt-media-") as tmp:
        {"image": image_tests, "audio": audio_tests}[MODE](tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
