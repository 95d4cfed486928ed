#!/usr/bin/python3
"""reference_clip.py - an independent float64 reference of the CLIP image encoder
and LLaVA MLP projector of an mmproj GGUF, from the PNG file to the embeddings.

Shares no code with lib/: it decodes the PNG itself (zlib + the five scanline
filters; 8-bit greyscale and RGB, not interlaced, which is what the photos in
tests/data/images are), preprocesses in float64 and runs the model with numpy:

  img   = pad_square(png, fill = int(mean * 255))       (LLaVA's expand2square)
  img   = resize(img, S, S, bicubic)                    (PIL's algorithm, float,
                                                         clamped to 0..255 per pass)
  x     = (img / 255 - mean) / std
  p     = patches of P x P, each flattened as [channel][row][col]
  x     = [class_embd ;] p @ Wpatch^T + bpatch, + position_embd
  x     = layernorm(x) with pre_ln                      (if present)
  per block i < n_run:
          x += Wout attention(Wq ln1(x) + bq, Wk ln1(x) + bk, Wv ln1(x) + bv) + bout
          x += Wfc2 act(Wfc1 ln2(x) + bfc1) + bfc2
  x     = layernorm(x) with post_ln                     (if present)
  out   = W2 gelu_erf(W0 x[patches] + b0) + b2          (class token row dropped)

n_run = clip.vision.feature_layer[0] when the key exists, else block_count - 1.
fc1 is the ffn tensor of shape [n_embd -> n_ff]: ffn_up in today's files, ffn_down
in the legacy converter's. act is GELU (erf) with clip.use_gelu, else quick GELU.

  reference_clip.py MODEL IMAGE.png --out EMB.f64      raw float64 [n_tokens][n_text]
  reference_clip.py --resize IMAGE.png W H bicubic|bilinear --out PIX.f64
                                                       raw float64 [H][W][3]
"""
import argparse
import math
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmrt_gguf  # noqa: E402
import lmrt_quant  # noqa: E402


# ---------------------------------------------------------------- PNG

def decode_png(path):
    """8-bit greyscale (colour type 0) or RGB (2), non-interlaced -> uint8 [h][w][3]."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG" % path)
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, colour, _, _, interlace = hdr
    if depth != 8 or colour not in (0, 2) or interlace:
        raise ValueError("%s: depth %d colour %d interlace %d is not decoded here"
                         % (path, depth, colour, interlace))
    ch = 1 if colour == 0 else 3
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    stride = w * ch
    raw = raw.reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        ftype, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        if ftype == 0:
            cur[:] = line
        elif ftype == 2:
            cur[:] = (line + prev) & 255
        else:
            for i in range(stride):
                a = cur[i - ch] if i >= ch else 0
                b = prev[i]
                c = prev[i - ch] if i >= ch else 0
                if ftype == 1:
                    pred = a
                elif ftype == 3:
                    pred = (a + b) // 2
                elif ftype == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                else:
                    raise ValueError("%s: filter %d" % (path, ftype))
                cur[i] = (line[i] + pred) & 255
        out[y] = cur
        prev = cur
    img = out.reshape(h, w, ch).astype(np.uint8)
    return np.repeat(img, 3, axis=2) if ch == 1 else img


# ---------------------------------------------------------------- preprocessing

def _kernel(name):
    if name == "bilinear":
        return 1.0, lambda x: np.maximum(0.0, 1.0 - np.abs(x))
    a = -0.5

    def cubic(x):
        x = np.abs(x)
        return np.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
                        np.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0))
    return 2.0, cubic


def resample_matrix(n_in, n_out, filt):
    """[n_out][n_in] weights of PIL's resampling along one axis."""
    support, k = _kernel(filt)
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support *= fscale
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        center = (o + 0.5) * scale
        x0 = max(int(center - support + 0.5), 0)
        x1 = min(int(center + support + 0.5), n_in)
        xs = np.arange(x0, x1)
        wts = k((xs - center + 0.5) / fscale)
        s = wts.sum()
        m[o, x0:x1] = wts / s if s != 0.0 else wts
    return m


def resize(img, out_w, out_h, filt="bicubic"):
    """uint8 or float [h][w][3] -> float64 [out_h][out_w][3], horizontal pass first,
    each pass clamped to 0..255."""
    x = np.asarray(img, dtype=np.float64)
    h, w, _ = x.shape
    x = np.clip(np.einsum("ow,hwc->hoc", resample_matrix(w, out_w, filt), x), 0.0, 255.0)
    return np.clip(np.einsum("oh,hwc->owc", resample_matrix(h, out_h, filt), x), 0.0, 255.0)


def pad_square(img, fill):
    h, w, _ = img.shape
    side = max(w, h)
    out = np.empty((side, side, 3), dtype=img.dtype)
    out[:, :] = np.asarray(fill, dtype=img.dtype)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0:y0 + h, x0:x0 + w] = img
    return out


# ---------------------------------------------------------------- the model

class Clip:
    def __init__(self, path):
        r = lmrt_gguf.Reader(path)
        kv, self.t = r.kv, r.tensors

        def key(k):
            if k not in kv:
                raise ValueError("%s: no key %s" % (path, k))
            return kv[k]
        self.S = key("clip.vision.image_size")
        self.P = key("clip.vision.patch_size")
        self.E = key("clip.vision.embedding_length")
        self.F = key("clip.vision.feed_forward_length")
        self.H = key("clip.vision.attention.head_count")
        self.eps = key("clip.vision.attention.layer_norm_epsilon")
        n_block = key("clip.vision.block_count")
        self.mean = np.array(key("clip.vision.image_mean"), dtype=np.float64)
        self.std = np.array(key("clip.vision.image_std"), dtype=np.float64)
        self.use_gelu = bool(kv.get("clip.use_gelu", False))
        fl = kv.get("clip.vision.feature_layer")
        self.n_run = fl[0] if fl else n_block - 1

    def w(self, name, optional=False):
        if name not in self.t:
            if optional:
                return None
            raise ValueError("no tensor %s" % name)
        type_name, dims, data = self.t[name]
        x = lmrt_quant.dequantize(type_name, data)
        return x.reshape(list(reversed(dims)))       # numpy order: last GGUF dim first

    def layernorm(self, x, prefix):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w(prefix + ".weight") \
            + self.w(prefix + ".bias")

    def linear(self, x, prefix):
        y = x @ self.w(prefix + ".weight").T
        b = self.w(prefix + ".bias", optional=True)
        return y + b if b is not None else y

    def act(self, x):
        if self.use_gelu:
            return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
        return x / (1.0 + np.exp(-1.702 * x))

    def preprocess(self, img):
        fill = [int(m * 255) for m in self.mean]
        x = resize(pad_square(img, fill), self.S, self.S, "bicubic")
        return (x / 255.0 - self.mean) / self.std

    def encode(self, img):
        S, P, E, H = self.S, self.P, self.E, self.H
        x = self.preprocess(img)                               # [S][S][3]
        n = S // P
        x = x[:n * P, :n * P]
        patches = x.reshape(n, P, n, P, 3).transpose(0, 2, 4, 1, 3).reshape(n * n, 3 * P * P)
        wp = self.w("v.patch_embd.weight").reshape(E, 3 * P * P)
        h = patches @ wp.T
        bp = self.w("v.patch_embd.bias", optional=True)
        if bp is not None:
            h = h + bp
        cls = self.w("v.class_embd", optional=True)
        if cls is not None:
            h = np.concatenate([cls[None, :], h], axis=0)
        h = h + self.w("v.position_embd.weight")
        if "v.pre_ln.weight" in self.t:
            h = self.layernorm(h, "v.pre_ln")
        hd = E // H
        for i in range(self.n_run):
            p = "v.blk.%d." % i
            up = self.t[p + "ffn_up.weight"][1]               # GGUF dims [n_in, n_out]
            fc1, fc2 = ("ffn_up", "ffn_down")
            if up[0] != E or up[1] != self.F:
                fc1, fc2 = ("ffn_down", "ffn_up")
            a = self.layernorm(h, p + "ln1")
            q = self.linear(a, p + "attn_q").reshape(-1, H, hd).transpose(1, 0, 2)
            k = self.linear(a, p + "attn_k").reshape(-1, H, hd).transpose(1, 0, 2)
            v = self.linear(a, p + "attn_v").reshape(-1, H, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            att = (s @ v).transpose(1, 0, 2).reshape(-1, E)
            h = h + self.linear(att, p + "attn_out")
            a = self.layernorm(h, p + "ln2")
            h = h + self.linear(self.act(self.linear(a, p + fc1)), p + fc2)
        if "v.post_ln.weight" in self.t:
            h = self.layernorm(h, "v.post_ln")
        if cls is not None:
            h = h[1:]
        y = self.linear(h, "mm.0")
        y = 0.5 * y * (1.0 + np.vectorize(math.erf)(y / math.sqrt(2.0)))
        return self.linear(y, "mm.2")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("args", nargs="+", help="MODEL IMAGE, or with --resize IMAGE W H FILTER")
    ap.add_argument("--resize", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.resize:
        path, w, h, filt = a.args
        y = resize(decode_png(path), int(w), int(h), filt)
    else:
        model, path = a.args
        y = Clip(model).encode(decode_png(path))
    y.astype("<f8").tofile(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
