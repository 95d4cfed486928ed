#!/usr/bin/python3
"""make_audio_models.py - writes tiny random-weight Ultravox-style audio projector
GGUFs (llama.cpp's mmproj layout: a Whisper encoder plus the Ultravox projector),
for lmrt's audio tests.

  make_audio_models.py --shape tiny-80 --type F32 --out DIR [--seed N]  -> DIR/audio-tiny-80-F32.gguf
  make_audio_models.py --all --out DIR [--seed N]                       every shape x type

Types: F32, F16. The type applies to every matrix (convolution kernels and the
position table included); biases and norm weights stay F32, as llama.cpp's
converter writes them.

Shapes (text n_embd 256 = make_test_models.py's tiny shapes):
  tiny-80    80 mel bins, d_model 64, 4 heads, FFN 256, 2 blocks, stack factor 8,
             projector 512 -> SwiGLU -> 256 -> 256
  tiny-128   128 mel bins, d_model 64, 4 heads, FFN 128, 3 blocks, stack factor 4,
             projector 384 -> SwiGLU -> 192 -> 256

Tensors, in GGUF dims order ([contiguous, ...]; d = d_model, S = d * stack):
  a.conv1d.1.weight [3, n_mel, d]   a.conv1d.1.bias [1, d]
  a.conv1d.2.weight [3, d, d]       a.conv1d.2.bias [1, d]
  a.position_embd.weight [d, 1500]  (Whisper's sinusoids)
  a.blk.N.{ln1,ln2}.{weight,bias} [d]
  a.blk.N.attn_{q,v,out}.{weight [d, d], bias [d]}, a.blk.N.attn_k.weight [d, d]
  a.blk.N.ffn_up.{weight [d, F], bias [F]}, a.blk.N.ffn_down.{weight [F, d], bias [d]}
  a.post_ln.{weight,bias} [d]
  mm.a.norm_pre.weight [S]   mm.a.mlp.1.weight [S, P]
  mm.a.norm_mid.weight [P/2] mm.a.mlp.2.weight [P/2, n_embd_text]
Every tensor draws from numpy default_rng([seed, crc32(name)]) in float32, so
the F16 file is a rounding of the F32 one.
"""
import argparse
import math
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lmrt_gguf as gguf  # noqa: E402

TYPES = ("F32", "F16")
FILE_TYPE = {"F32": 0, "F16": 1}
N_POS = 1500
LN_EPS = 1e-5

SHAPES = {
    "tiny-80": dict(n_mel=80, d=64, n_head=4, n_ff=256, n_layer=2, stack=8, n_proj=512,
                    n_embd_text=256),
    "tiny-128": dict(n_mel=128, d=64, n_head=4, n_ff=128, n_layer=3, stack=4, n_proj=384,
                     n_embd_text=256),
}


def _rng(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def sinusoids(length, channels, max_timescale=10000):
    """Whisper's fixed position table: [length][channels], sin then cos halves."""
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def build_writer(shape, type_name, seed=0):
    if type_name not in TYPES:
        raise ValueError("type %s is not one of %s" % (type_name, " ".join(TYPES)))
    s = SHAPES[shape]
    d, F, S, P = s["d"], s["n_ff"], s["d"] * s["stack"], s["n_proj"]
    w = gguf.Writer()
    w.add_str("general.architecture", "clip")
    w.add_str("general.name", "lmrt-test audio %s %s (random weights, seed %d)"
              % (shape, type_name, seed))
    w.add_u32("general.file_type", FILE_TYPE[type_name])
    w.add("clip.has_vision_encoder", gguf.BOOL, False)
    w.add("clip.has_audio_encoder", gguf.BOOL, True)
    w.add_str("clip.projector_type", "ultravox")
    w.add_u32("clip.audio.projection_dim", s["n_embd_text"])
    w.add_u32("clip.audio.embedding_length", d)
    w.add_u32("clip.audio.feed_forward_length", F)
    w.add_u32("clip.audio.block_count", s["n_layer"])
    w.add_u32("clip.audio.attention.head_count", s["n_head"])
    w.add_f32("clip.audio.attention.layer_norm_epsilon", LN_EPS)
    w.add_u32("clip.audio.num_mel_bins", s["n_mel"])
    w.add_u32("clip.audio.projector.stack_factor", s["stack"])

    def put(name, dims, x, tname):
        x = np.ascontiguousarray(x, dtype=np.float32)
        data = x.astype("<f4") if tname == "F32" else x.astype("<f2")
        w.add_tensor(name, tname, dims, data.tobytes())

    def matrix(name, dims, fan_in):
        """A weight of GGUF dims (dims[0] contiguous), std 1/sqrt(fan_in)."""
        n = int(np.prod(dims))
        x = _rng(seed, name).standard_normal(n, dtype=np.float32) / np.float32(math.sqrt(fan_in))
        put(name, dims, x, type_name)

    def bias(name, dims, scale=0.1):
        n = int(np.prod(dims))
        put(name, dims, scale * _rng(seed, name).standard_normal(n, dtype=np.float32), "F32")

    def norm(name, n):
        put(name, [n], 1.0 + 0.1 * _rng(seed, name).standard_normal(n, dtype=np.float32), "F32")

    matrix("a.conv1d.1.weight", [3, s["n_mel"], d], 3 * s["n_mel"])
    bias("a.conv1d.1.bias", [1, d])
    matrix("a.conv1d.2.weight", [3, d, d], 3 * d)
    bias("a.conv1d.2.bias", [1, d])
    put("a.position_embd.weight", [d, N_POS], sinusoids(N_POS, d), type_name)
    for i in range(s["n_layer"]):
        p = "a.blk.%d." % i
        norm(p + "ln1.weight", d)
        bias(p + "ln1.bias", [d])
        for m in ("attn_q", "attn_k", "attn_v", "attn_out"):
            matrix(p + m + ".weight", [d, d], d)
            if m != "attn_k":
                bias(p + m + ".bias", [d])
        norm(p + "ln2.weight", d)
        bias(p + "ln2.bias", [d])
        matrix(p + "ffn_up.weight", [d, F], d)
        bias(p + "ffn_up.bias", [F])
        matrix(p + "ffn_down.weight", [F, d], F)
        bias(p + "ffn_down.bias", [d])
    norm("a.post_ln.weight", d)
    bias("a.post_ln.bias", [d])
    norm("mm.a.norm_pre.weight", S)
    matrix("mm.a.mlp.1.weight", [S, P], S)
    norm("mm.a.norm_mid.weight", P // 2)
    matrix("mm.a.mlp.2.weight", [P // 2, s["n_embd_text"]], P // 2)
    return w


def model_path(out_dir, shape, type_name):
    return os.path.join(out_dir, "audio-%s-%s.gguf" % (shape, type_name))


def write_model(shape, type_name, out_dir, seed=0):
    os.makedirs(out_dir, exist_ok=True)
    path = model_path(out_dir, shape, type_name)
    build_writer(shape, type_name, seed).write(path)
    return path


def write_all(out_dir, seed=0):
    return [write_model(shape, t, out_dir, seed) for shape in SHAPES for t in TYPES]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES))
    ap.add_argument("--type", choices=TYPES)
    ap.add_argument("--all", action="store_true", help="every shape in every type")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.all == bool(a.shape or a.type) or (not a.all and not (a.shape and a.type)):
        ap.error("give either --all or both --shape and --type")
    paths = write_all(a.out, a.seed) if a.all else [write_model(a.shape, a.type, a.out, a.seed)]
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
