#!/usr/bin/python3
"""reference_mllama_vision.py - an independent float64 reference of the Llama 3.2
Vision (mllama) image encoder and projector of an Ollama-layout GGUF, from decoded
pixels to the cross-attention states.

Shares no code with lib/. Decoding the PNG and PIL's resampling come from
reference_clip.py (decode_png, resize); everything mllama-specific is here,
written after Hugging Face's MllamaImageProcessor and MllamaVisionModel:

  grid    = HF get_optimal_tiled_canvas: among the (h, w) grids with h * w <= max
            tiles, the smallest scale >= 1 that fits the picture, else the largest
            scale < 1, ties to the smallest canvas; id = 1 + index in HF's list
  size    = HF get_image_size_fit_to_canvas (aspect kept, >= one tile where possible)
  canvas  = bilinear resize (float, no uint8 rounding), top-left on black, then
            (x / 255 - mean) / std, cut into tiles row by row; unused tile slots of
            the max_num_tiles are 0 (not normalized black), as HF packs them
  x       = patches (conv P x P, stride P, no bias) + g_pre * pre_tile[id][tile]
  x       = [class ; x] + g_pos * pos + g_tile * tile_pos[id][tile]
  x       = ln_pre(x), padded with zero rows to a multiple of 8 per tile
  mask    = HF's: query i may not see key j iff both are invalid (pad row or unused
            tile); every tile slot runs, as one sequence over all tiles
  local   = blocks x += ga * attn(ln1 x); x += gf * mlp(ln2 x) (gates 1 unless stored)
            keeping the inputs of the blocks in intermediate_layers_indices
            (index n_layer = the last block's output)
  x       = ln_post(x) + g_post * post_tile[id][tile]; global blocks (gated)
  out     = [x ; stack(intermediates, last axis).flatten] for the used tiles' first
            n_pos rows, then mm.0 (weight and bias)

Gates are used as stored: Ollama's converter stores tanh(g) (1 - tanh(g) for the
position gate), which this script checks (position + tile gate = 1).

  reference_mllama_vision.py MODEL IMAGE.png [--crop X Y W H] [--transpose] --out F.f64
        raw float64 [n_tok][n_embd_text]; prints "tiles_h tiles_w id n_tok"
  reference_mllama_vision.py --plan W H TILE MAX_TILES   prints "tiles_h tiles_w id rw rh"
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmrt_gguf  # noqa: E402
import lmrt_quant  # noqa: E402
from reference_clip import decode_png, resize  # noqa: E402

ERF = np.vectorize(math.erf, otypes=[np.float64])
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# ---------------------------------------------------------------- HF's tiling rule

def supported_aspect_ratios(max_tiles):
    """HF get_all_supported_aspect_ratios; HF reads each pair as (height, width)."""
    return [(a, b) for a in range(1, max_tiles + 1) for b in range(1, max_tiles + 1)
            if a * b <= max_tiles]


def optimal_canvas(h, w, max_tiles, tile):
    """HF get_optimal_tiled_canvas -> (canvas_h, canvas_w)."""
    sizes = np.array(supported_aspect_ratios(max_tiles)) * tile
    th, tw = sizes.T
    sh, sw = th / h, tw / w
    scales = np.where(sw > sh, sh, sw)
    up = scales[scales >= 1]
    sel = np.min(up) if len(up) > 0 else np.max(scales[scales < 1])
    chosen = sizes[scales == sel]
    if len(chosen) > 1:
        return tuple(int(x) for x in chosen[np.argmin(chosen[:, 0] * chosen[:, 1])])
    return tuple(int(x) for x in chosen[0])


def fit_to_canvas(h, w, ch, cw, tile):
    """HF get_image_size_fit_to_canvas -> (new_h, new_w); lmrt keeps sides >= 1."""
    tw = int(np.clip(w, tile, cw))
    th = int(np.clip(h, tile, ch))
    sh, sw = th / h, tw / w
    if sw < sh:
        nw, nh = tw, min(math.floor(h * sw), th)
    else:
        nh, nw = th, min(math.floor(w * sh), tw)
    return max(nh, 1), max(nw, 1)


def plan(w, h, tile, max_tiles):
    ch, cw = optimal_canvas(h, w, max_tiles, tile)
    gh, gw = ch // tile, cw // tile
    ar_id = supported_aspect_ratios(max_tiles).index((gh, gw)) + 1
    nh, nw = fit_to_canvas(h, w, ch, cw, tile)
    return gh, gw, ar_id, nw, nh


# ---------------------------------------------------------------- the model

class MllamaVision:
    def __init__(self, path):
        r = lmrt_gguf.Reader(path)
        kv, self.t = r.kv, r.tensors
        self.cache = {}

        def key(k, default=None):
            k = "mllama.vision." + k
            if k not in kv:
                if default is not None:
                    return default
                raise ValueError("%s: no key %s" % (path, k))
            return kv[k]
        self.S = key("image_size")
        self.P = key("patch_size")
        self.E = key("embedding_length")
        self.H = key("attention.head_count")
        self.eps = key("attention.layer_norm_epsilon")
        self.n_layer = key("block_count")
        self.n_global = key("global.block_count")
        self.T = key("max_num_tiles")
        self.inter = list(key("intermediate_layers_indices"))
        self.mean = np.array(key("image_mean", CLIP_MEAN), dtype=np.float64)
        self.std = np.array(key("image_std", CLIP_STD), dtype=np.float64)
        self.n_pos = (self.S // self.P) ** 2 + 1
        legacy = "v.blk.0.ln1.weight" in self.t
        self.names = (("ln1", "attn_out", "ln2", "ffn_down", "ffn_up") if legacy
                      else ("attn_norm", "attn_output", "ffn_norm", "ffn_up", "ffn_down"))
        g_pos, g_tile = self.gate("v.position_embd.gate"), self.gate("v.tile_position_embd.gate")
        assert abs(g_pos + g_tile - 1.0) < 1e-6, "position gates are not (1 - tanh g, tanh g)"

    def w(self, name):
        if name not in self.cache:
            type_name, dims, data = self.t[name]
            x = lmrt_quant.dequantize(type_name, data).astype(np.float64)
            self.cache[name] = x.reshape(list(reversed(dims)))   # last GGUF dim first
        return self.cache[name]

    def gate(self, name, default=None):
        if name not in self.t:
            if default is None:
                raise ValueError("no gate %s" % name)
            return default
        return float(self.w(name).reshape(-1)[0])

    def layernorm(self, x, prefix):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w(prefix + ".weight") \
            + self.w(prefix + ".bias")

    def preprocess(self, img):
        """uint8 [h][w][3] -> (tiles [n][S][S][3] normalized, (gh, gw, id))."""
        h, w, _ = img.shape
        gh, gw, ar_id, nw, nh = plan(w, h, self.S, self.T)
        canvas = np.zeros((gh * self.S, gw * self.S, 3))
        canvas[:nh, :nw] = resize(img, nw, nh, "bilinear")
        canvas = (canvas / 255.0 - self.mean) / self.std
        tiles = canvas.reshape(gh, self.S, gw, self.S, 3).transpose(0, 2, 1, 3, 4)
        return tiles.reshape(gh * gw, self.S, self.S, 3), (gh, gw, ar_id)

    def block(self, x, prefix, mask, gated):
        E, H = self.E, self.H
        hd = E // H
        nm = self.names
        ga = self.gate(prefix + "attn_gate", None if gated else 1.0)
        gf = self.gate(prefix + "ffn_gate", None if gated else 1.0)
        h = self.layernorm(x, prefix + nm[0])
        q = (h @ self.w(prefix + "attn_q.weight").T).reshape(-1, H, hd).transpose(1, 0, 2)
        k = (h @ self.w(prefix + "attn_k.weight").T).reshape(-1, H, hd).transpose(1, 0, 2)
        v = (h @ self.w(prefix + "attn_v.weight").T).reshape(-1, H, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        a = (s / s.sum(axis=-1, keepdims=True)) @ v
        a = a.transpose(1, 0, 2).reshape(-1, E)
        x = x + ga * (a @ self.w(prefix + nm[1] + ".weight").T)
        h = self.layernorm(x, prefix + nm[2])
        h = h @ self.w(prefix + nm[3] + ".weight").T + self.w(prefix + nm[3] + ".bias")
        h = 0.5 * h * (1.0 + ERF(h / math.sqrt(2.0)))
        h = h @ self.w(prefix + nm[4] + ".weight").T + self.w(prefix + nm[4] + ".bias")
        return x + gf * h

    def encode(self, img):
        E, S, P, T, n_pos = self.E, self.S, self.P, self.T, self.n_pos
        tiles, (gh, gw, ar_id) = self.preprocess(img)
        nt = gh * gw
        pix = np.zeros((T, S, S, 3))
        pix[:nt] = tiles
        # conv as a matmul: patch (i, j) flattened [channel][row][col]
        ns = S // P
        patches = pix.reshape(T, ns, P, ns, P, 3).transpose(0, 1, 3, 5, 2, 4)
        patches = patches.reshape(T, ns * ns, 3 * P * P)
        x = patches @ self.w("v.patch_embd.weight").reshape(E, 3 * P * P).T
        pre = self.w("v.pre_tile_position_embd.weight")[ar_id].reshape(T, 1, E)
        x = x + self.gate("v.pre_tile_position_embd.gate") * pre
        cls = np.broadcast_to(self.w("v.class_embd").reshape(1, 1, E), (T, 1, E))
        x = np.concatenate([cls, x], axis=1)
        x = x + self.gate("v.position_embd.gate") * self.w("v.position_embd.weight")[None]
        tile_pos = self.w("v.tile_position_embd.weight")[ar_id].reshape(T, n_pos, E)
        x = x + self.gate("v.tile_position_embd.gate") * tile_pos
        x = self.layernorm(x, "v.pre_ln")
        n_pad = (8 - n_pos % 8) % 8
        x = np.concatenate([x, np.zeros((T, n_pad, E))], axis=1)
        L = n_pos + n_pad
        x = x.reshape(T * L, E)
        invalid = np.ones((T, L), dtype=bool)
        invalid[:nt, :n_pos] = False
        invalid = invalid.reshape(-1)
        mask = np.where(invalid[:, None] & invalid[None, :], -np.inf, 0.0)
        states = []
        for i in range(self.n_layer):
            states.append(x)
            x = self.block(x, "v.blk.%d." % i, mask, gated=False)
        states.append(x)
        inter = np.stack([states[i] for i in range(len(states)) if i in self.inter], axis=-1)
        x = self.layernorm(x, "v.post_ln")
        post = self.w("v.post_tile_position_embd.weight")[ar_id].reshape(T, 1, E)
        x = (x.reshape(T, L, E) + self.gate("v.post_tile_position_embd.gate") * post)
        x = x.reshape(T * L, E)
        for i in range(self.n_global):
            x = self.block(x, "v.global.blk.%d." % i, mask, gated=True)
        out = np.concatenate([x, inter.reshape(T * L, -1)], axis=-1)
        out = out.reshape(T, L, -1)[:nt, :n_pos].reshape(nt * n_pos, -1)
        y = out @ self.w("mm.0.weight").T + self.w("mm.0.bias")
        return y, (gh, gw, ar_id)


def load_image(path, crop=None, transpose=False):
    img = decode_png(path)
    if crop:
        x, y, w, h = crop
        img = img[y:y + h, x:x + w]
    if transpose:
        img = img.transpose(1, 0, 2)
    return np.ascontiguousarray(img)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("image", nargs="?")
    ap.add_argument("--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"))
    ap.add_argument("--transpose", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--plan", type=int, nargs=4, metavar=("W", "H", "TILE", "MAX_TILES"))
    a = ap.parse_args(argv)
    if a.plan:
        print("%d %d %d %d %d" % plan(*a.plan))
        return 0
    if not (a.model and a.image and a.out):
        ap.error("give MODEL IMAGE --out F, or --plan")
    y, (gh, gw, ar_id) = MllamaVision(a.model).encode(load_image(a.image, a.crop, a.transpose))
    y.astype("<f8").tofile(a.out)
    print("%d %d %d %d" % (gh, gw, ar_id, y.shape[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
