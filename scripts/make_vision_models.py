#!/usr/bin/python3
"""make_vision_models.py - write tiny random-weight image-encoder GGUF files for
lmrt's vision tests, one model family per function.

  make_vision_models.py --family clip --out DIR [--seed N]

--family clip: llama.cpp "mmproj" files (general.architecture "clip", clip.*
keys, v.* encoder and mm.* projector tensors; doc/formats.md), each pairing with
make_test_models.py's tiny text models (n_embd 256):

  DIR/clip-tiny-F32.gguf     image 56, patch 14 (4 x 4 patches), n_embd 64, n_ff 128,
                             4 heads, 3 blocks (no feature_layer key, so a LLaVA
                             projector uses the first 2), class token, pre_ln, no
                             post_ln, quick GELU, CLIP mean/std, ffn_up = fc1
                             (today's converter naming); projector 64 -> 256 -> 256
  DIR/clip-tiny-F16.gguf     the same weights with every 2-D or 4-D weight in F16
  DIR/clip-alt-F32.gguf      the other branches: image 48, patch 8 (6 x 6), no class
                             token, no patch bias, GELU (clip.use_gelu), feature_layer
                             [3] (all 3 blocks run), post_ln, mean/std 0.5, the legacy
                             converter's swapped ffn names (ffn_down = fc1)

Every tensor draws from its own generator, numpy default_rng([seed, crc32(name)]), in
float32, so the F16 file is a rounding of the F32 one. Weights are scaled so that the
activations stay of order 1 (std 1/sqrt(fan_in)); norms are 1 + 0.1 N(0, 1).
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

TEXT_N_EMBD = 256               # make_test_models.py's tiny shapes

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CLIP_VARIANTS = {
    "tiny": dict(image_size=56, patch_size=14, n_embd=64, n_ff=128, n_head=4, n_block=3,
                 feature_layer=None, class_token=True, patch_bias=True, pre_ln=True,
                 post_ln=False, use_gelu=False, mean=CLIP_MEAN, std=CLIP_STD,
                 legacy_ffn_names=False, eps=1e-5, types=("F32", "F16")),
    "alt": dict(image_size=48, patch_size=8, n_embd=48, n_ff=96, n_head=4, n_block=3,
                feature_layer=[3], class_token=False, patch_bias=False, pre_ln=True,
                post_ln=True, use_gelu=True, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5],
                legacy_ffn_names=True, eps=1e-6, types=("F32",)),
}


def _rng(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def clip_writer(variant, type_name, seed=0):
    """A gguf.Writer holding one mmproj file of CLIP_VARIANTS[variant]."""
    v = CLIP_VARIANTS[variant]
    E, F, P = v["n_embd"], v["n_ff"], v["patch_size"]
    n_side = v["image_size"] // P
    n_pos = n_side * n_side + (1 if v["class_token"] else 0)
    T = TEXT_N_EMBD

    w = gguf.Writer()
    w.add_str("general.architecture", "clip")
    w.add_str("general.name", "lmrt-test clip-%s %s (random weights, seed %d)"
              % (variant, type_name, seed))
    w.add_u32("general.file_type", 0 if type_name == "F32" else 1)
    w.add("clip.has_text_encoder", gguf.BOOL, False)
    w.add("clip.has_vision_encoder", gguf.BOOL, True)
    w.add("clip.has_llava_projector", gguf.BOOL, True)
    w.add_str("clip.projector_type", "mlp")
    w.add("clip.use_gelu", gguf.BOOL, v["use_gelu"])
    w.add_u32("clip.vision.image_size", v["image_size"])
    w.add_u32("clip.vision.patch_size", P)
    w.add_u32("clip.vision.embedding_length", E)
    w.add_u32("clip.vision.feed_forward_length", F)
    w.add_u32("clip.vision.projection_dim", T)
    w.add_u32("clip.vision.attention.head_count", v["n_head"])
    w.add_f32("clip.vision.attention.layer_norm_epsilon", v["eps"])
    w.add_u32("clip.vision.block_count", v["n_block"])
    w.add_array("clip.vision.image_mean", gguf.FLOAT32, v["mean"])
    w.add_array("clip.vision.image_std", gguf.FLOAT32, v["std"])
    if v["feature_layer"] is not None:
        w.add_array("clip.vision.feature_layer", gguf.INT32, v["feature_layer"])

    def weight(name, dims, std):
        """A weight of GGUF dims (dims[0] contiguous); 2-D and 4-D in type_name."""
        n = int(np.prod(dims))
        x = _rng(seed, name).standard_normal(n, dtype=np.float32) * np.float32(std)
        t = type_name if len(dims) >= 2 else "F32"
        data = x.astype("<f2" if t == "F16" else "<f4").tobytes()
        w.add_tensor(name, t, dims, data)

    def norm(prefix, n):
        g = (1.0 + 0.1 * _rng(seed, prefix + ".weight").standard_normal(n)).astype("<f4")
        b = (0.05 * _rng(seed, prefix + ".bias").standard_normal(n)).astype("<f4")
        w.add_tensor(prefix + ".weight", "F32", [n], g.tobytes())
        w.add_tensor(prefix + ".bias", "F32", [n], b.tobytes())

    def linear(prefix, n_in, n_out):
        weight(prefix + ".weight", [n_in, n_out], 1.0 / math.sqrt(n_in))
        weight(prefix + ".bias", [n_out], 0.05)

    # conv weight: PyTorch [n_embd][3][P][P] is GGUF [P, P, 3, n_embd]
    weight("v.patch_embd.weight", [P, P, 3, E], 1.0 / math.sqrt(3 * P * P))
    if v["patch_bias"]:
        weight("v.patch_embd.bias", [E], 0.05)
    if v["class_token"]:
        weight("v.class_embd", [E], 0.5)
    weight("v.position_embd.weight", [E, n_pos], 0.5)
    if v["pre_ln"]:
        norm("v.pre_ln", E)
    fc1, fc2 = ("ffn_down", "ffn_up") if v["legacy_ffn_names"] else ("ffn_up", "ffn_down")
    for i in range(v["n_block"]):
        p = "v.blk.%d." % i
        norm(p + "ln1", E)
        for t in ("attn_q", "attn_k", "attn_v", "attn_out"):
            linear(p + t, E, E)
        norm(p + "ln2", E)
        linear(p + fc1, E, F)
        linear(p + fc2, F, E)
    if v["post_ln"]:
        norm("v.post_ln", E)
    linear("mm.0", E, T)
    linear("mm.2", T, T)
    return w


def clip_path(out_dir, variant, type_name):
    return os.path.join(out_dir, "clip-%s-%s.gguf" % (variant, type_name))


def write_clip(out_dir, seed=0):
    """Writes every CLIP variant and type; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for variant, v in CLIP_VARIANTS.items():
        for t in v["types"]:
            path = clip_path(out_dir, variant, t)
            clip_writer(variant, t, seed).write(path)
            paths.append(path)
    return paths


# ---------------------------------------------------------------- mllama

# Llama 3.2 Vision encoders in Ollama's layout (mllama.vision.* keys, v.* and mm.0
# tensors; doc/formats.md "Image encoders: mllama"). Shapes as HF's MllamaVisionModel
# at toy size; the projector's output is the tiny text models' n_embd.
#   tiny:    tile 28, patch 7 (4 x 4 patches + class = 17 positions, 7 pad slots),
#            4 tiles (8 grids), n_embd 32, n_ff 64, 4 heads, 3 local + 1 global blocks,
#            intermediate layers [0, 2, 3] (3 = the last local block's output), the
#            converter's names; F32 and F16 (every 2-D or larger weight in F16)
#   legacy:  tile 56, patch 14, 3 tiles (5 grids), n_embd 48, n_ff 96, 4 heads,
#            2 local + 2 global blocks, intermediate [1], the older projector blob's
#            names (ln1/ln2, attn_out, ffn_down = fc1), gated local blocks too, and
#            lmrt's optional image_mean/image_std keys with other statistics; F32
# Gates are stored as Ollama's converter stores them: tanh(g) for the tile, pre/post
# tile and block gates, 1 - tanh(g) for v.position_embd.gate, g one raw HF parameter.
MLLAMA_VARIANTS = {
    "tiny": dict(image_size=28, patch_size=7, max_tiles=4, n_embd=32, n_ff=64, n_head=4,
                 n_layer=3, n_global=1, inter=[0, 2, 3], legacy=False, local_gates=False,
                 mean=None, std=None, eps=1e-5, types=("F32", "F16")),
    "legacy": dict(image_size=56, patch_size=14, max_tiles=3, n_embd=48, n_ff=96, n_head=4,
                   n_layer=2, n_global=2, inter=[1], legacy=True, local_gates=True,
                   mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], eps=1e-6, types=("F32",)),
}


def mllama_n_ratios(max_tiles):
    return sum(max_tiles // h for h in range(1, max_tiles + 1))


def mllama_vision_add(w, variant, type_name, seed=0, n_embd_text=TEXT_N_EMBD):
    """Adds the mllama.vision.* keys and the v.* / mm.0 tensors of MLLAMA_VARIANTS[variant]
    to gguf.Writer w (a vision-only file, or the vision half of a unified one)."""
    v = MLLAMA_VARIANTS[variant]
    E, F, P, T = v["n_embd"], v["n_ff"], v["patch_size"], v["max_tiles"]
    n_pos = (v["image_size"] // P) ** 2 + 1
    n_ar = mllama_n_ratios(T) + 1            # aspect ratio ids 0 .. count (0: padding)
    k = "mllama.vision."
    w.add_u32(k + "block_count", v["n_layer"])
    w.add_u32(k + "global.block_count", v["n_global"])
    w.add_array(k + "intermediate_layers_indices", gguf.INT32, v["inter"])
    w.add_u32(k + "embedding_length", E)
    w.add_u32(k + "feed_forward_length", F)
    w.add_u32(k + "attention.head_count", v["n_head"])
    w.add_f32(k + "attention.layer_norm_epsilon", v["eps"])
    w.add_u32(k + "image_size", v["image_size"])
    w.add_u32(k + "patch_size", P)
    w.add_u32(k + "max_num_tiles", T)
    w.add_u32(k + "num_channels", 3)
    if v["mean"] is not None:
        w.add_array(k + "image_mean", gguf.FLOAT32, v["mean"])
        w.add_array(k + "image_std", gguf.FLOAT32, v["std"])

    def weight(name, dims, std):
        n = int(np.prod(dims))
        x = _rng(seed, name).standard_normal(n, dtype=np.float32) * np.float32(std)
        t = type_name if len(dims) >= 2 else "F32"
        w.add_tensor(name, t, dims, x.astype("<f2" if t == "F16" else "<f4").tobytes())

    def scalar(name, value):
        w.add_tensor(name, "F32", [1], np.array([value], dtype="<f4").tobytes())

    def raw_gate(name):
        return float(_rng(seed, name).standard_normal()) * 0.8

    def norm(prefix, n):
        g = (1.0 + 0.1 * _rng(seed, prefix + ".weight").standard_normal(n)).astype("<f4")
        b = (0.05 * _rng(seed, prefix + ".bias").standard_normal(n)).astype("<f4")
        w.add_tensor(prefix + ".weight", "F32", [n], g.tobytes())
        w.add_tensor(prefix + ".bias", "F32", [n], b.tobytes())

    def linear(prefix, n_in, n_out, bias=True):
        weight(prefix + ".weight", [n_in, n_out], 1.0 / math.sqrt(n_in))
        if bias:
            weight(prefix + ".bias", [n_out], 0.05)

    # conv weight: PyTorch [E][3][P][P] is GGUF [P, P, 3, E]
    weight("v.patch_embd.weight", [P, P, 3, E], 1.0 / math.sqrt(3 * P * P))
    weight("v.class_embd", [E], 0.5)
    weight("v.position_embd.weight", [E, n_pos], 0.5)
    g = raw_gate("v.position_embd.gate")
    scalar("v.position_embd.gate", 1.0 - math.tanh(g))
    scalar("v.tile_position_embd.gate", math.tanh(g))
    # HF's precomputed tables: nn.Embedding(n_ar, T * n_pos * E) and (n_ar, T * E)
    weight("v.tile_position_embd.weight", [T * n_pos * E, n_ar], 0.5)
    for name in ("v.pre_tile_position_embd", "v.post_tile_position_embd"):
        weight(name + ".weight", [T * E, n_ar], 0.5)
        scalar(name + ".gate", math.tanh(raw_gate(name + ".gate")))
    norm("v.pre_ln", E)
    norm("v.post_ln", E)
    names = (("ln1", "attn_out", "ln2", "ffn_down", "ffn_up") if v["legacy"]
             else ("attn_norm", "attn_output", "ffn_norm", "ffn_up", "ffn_down"))
    blocks = [("v.blk.%d." % i, v["local_gates"]) for i in range(v["n_layer"])]
    blocks += [("v.global.blk.%d." % i, True) for i in range(v["n_global"])]
    for p, gated in blocks:
        norm(p + names[0], E)
        for t in ("attn_q", "attn_k", "attn_v", names[1]):
            linear(p + t, E, E, bias=False)
        norm(p + names[2], E)
        linear(p + names[3], E, F)
        linear(p + names[4], F, E)
        if gated:
            scalar(p + "attn_gate", math.tanh(raw_gate(p + "attn_gate")))
            scalar(p + "ffn_gate", math.tanh(raw_gate(p + "ffn_gate")))
    linear("mm.0", E * (1 + len(v["inter"])), n_embd_text)


def mllama_writer(variant, type_name, seed=0):
    """A gguf.Writer holding a vision-only mllama file of MLLAMA_VARIANTS[variant]."""
    w = gguf.Writer()
    w.add_str("general.architecture", "mllama")
    w.add_str("general.name", "lmrt-test mllama-vision-%s %s (random weights, seed %d)"
              % (variant, type_name, seed))
    w.add_u32("general.file_type", 0 if type_name == "F32" else 1)
    mllama_vision_add(w, variant, type_name, seed)
    return w


def mllama_path(out_dir, variant, type_name):
    return os.path.join(out_dir, "mllama-vision-%s-%s.gguf" % (variant, type_name))


def write_mllama(out_dir, seed=0):
    """Writes every mllama vision variant and type; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for variant, v in MLLAMA_VARIANTS.items():
        for t in v["types"]:
            path = mllama_path(out_dir, variant, t)
            mllama_writer(variant, t, seed).write(path)
            paths.append(path)
    return paths


FAMILIES = {"clip": write_clip, "mllama": write_mllama}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for p in FAMILIES[a.family](a.out, a.seed):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
