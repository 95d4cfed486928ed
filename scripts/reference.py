#!/usr/bin/python3
"""reference.py - an independent float64 reference forward pass of the Llama
decoder, the yardstick lmrt's logits are tested against.

Reads a GGUF with lmrt_gguf.py, dequantizes every weight with lmrt_quant.py's
float64 dequantizers, and runs the decoder the plain way, one step per line:

  x = token_embd[ids]
  per layer:  h = rmsnorm(x) * attn_norm
              q, k, v = Wq h, Wk h, Wv h;  rope(q), rope(k)   (adjacent pairs)
              x += Wo attention(q, k, v)   (causal, grouped-query, scale 1/sqrt(head_dim))
              h = rmsnorm(x) * ffn_norm
              x += Wdown (silu(Wgate h) * Wup h)
  logits = Woutput (rmsnorm(x) * output_norm)      (Woutput = token_embd when tied)

rmsnorm(x) = x / sqrt(mean(x^2) + eps). RoPE is GGUF's "normal" convention: pair
(x[2i], x[2i+1]) of each head turns by pos * base^(-2i/n_rot) / rope_freqs[i]
(rope_freqs.weight if the file has it, else 1). A GGUF tensor of dims
[n_cols, n_rows] is a row-major matrix of n_rows rows, and y = W @ x.

  reference.py MODEL --tokens 1,2,3 --out logits.f64   raw little-endian float64
                                                       [n_tokens][n_vocab]
  reference.py MODEL --tokens 1 --greedy 256           prints the generated ids,
                                                       comma-separated
--dtype float32 runs the same arithmetic in float32 (to estimate how far a
float32 implementation may drift from float64); --stop ID ends greedy
generation early when ID comes out (llama2.c stops on BOS, id 1).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmrt_gguf  # noqa: E402
import lmrt_quant  # noqa: E402


class Model:
    """Hyperparameters and dequantized weights of one GGUF Llama model."""

    def __init__(self, path, dtype=np.float64):
        self.dtype = dtype
        r = lmrt_gguf.Reader(path)
        self.kv = r.kv
        self._tensors = r.tensors
        arch = r.kv.get("general.architecture", b"llama").decode()

        def hp(key, default=None):
            v = r.kv.get("%s.%s" % (arch, key), default)
            if v is None:
                raise ValueError("%s: missing key %s.%s" % (path, arch, key))
            return v

        self.n_embd = hp("embedding_length")
        self.n_layer = hp("block_count")
        self.n_head = hp("attention.head_count")
        self.n_head_kv = hp("attention.head_count_kv", self.n_head)
        self.head_dim = self.n_embd // self.n_head
        self.n_rot = hp("rope.dimension_count", self.head_dim)
        self.rope_base = float(hp("rope.freq_base", 10000.0))
        self.eps = float(hp("attention.layer_norm_rms_epsilon", 1e-5))
        self.n_ctx = hp("context_length", 2048)

        self.token_embd = self.matrix("token_embd.weight")           # [n_vocab][n_embd]
        self.n_vocab = self.token_embd.shape[0]
        self.output_norm = self.vector("output_norm.weight")          # [n_embd]
        self.tied = "output.weight" not in r.tensors
        self.output = self.token_embd if self.tied else self.matrix("output.weight")
        self.rope_factors = (self.vector("rope_freqs.weight") if "rope_freqs.weight" in r.tensors
                             else np.ones(self.n_rot // 2, dtype=dtype))  # [n_rot/2]
        self.layers = []
        for i in range(self.n_layer):
            p = "blk.%d." % i
            self.layers.append({
                "attn_norm": self.vector(p + "attn_norm.weight"),     # [n_embd]
                "wq": self.matrix(p + "attn_q.weight"),               # [n_head*hd][n_embd]
                "wk": self.matrix(p + "attn_k.weight"),               # [n_head_kv*hd][n_embd]
                "wv": self.matrix(p + "attn_v.weight"),               # [n_head_kv*hd][n_embd]
                "wo": self.matrix(p + "attn_output.weight"),          # [n_embd][n_head*hd]
                "ffn_norm": self.vector(p + "ffn_norm.weight"),       # [n_embd]
                "w_gate": self.matrix(p + "ffn_gate.weight"),         # [n_ff][n_embd]
                "w_up": self.matrix(p + "ffn_up.weight"),             # [n_ff][n_embd]
                "w_down": self.matrix(p + "ffn_down.weight"),         # [n_embd][n_ff]
            })
        del self._tensors
        # Inverse frequencies of the rotary pairs: base^(-2i/n_rot) / factor[i].
        i = np.arange(self.n_rot // 2, dtype=np.float64)
        self.inv_freq = self.rope_base ** (-2.0 * i / self.n_rot) / self.rope_factors.astype(
            np.float64)

    def _dequant(self, name):
        type_name, dims, data = self._tensors[name]
        n = int(np.prod(dims))
        return lmrt_quant.dequantize(type_name, data, n).astype(self.dtype), dims

    def matrix(self, name):
        w, dims = self._dequant(name)
        assert len(dims) == 2, (name, dims)
        return w.reshape(dims[1], dims[0])

    def vector(self, name):
        return self._dequant(name)[0]

    def new_cache(self):
        """Per layer K and V: [0][n_head_kv][head_dim] arrays that grow by position."""
        shape = (0, self.n_head_kv, self.head_dim)
        return [[np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)]
                for _ in range(self.n_layer)]

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.dtype(self.eps)) * w

    def rope(self, x, pos):
        """x: [n_tok][n_heads][head_dim], rotated in place on its first n_rot dims."""
        angle = np.outer(pos, self.inv_freq)                       # [n_tok][n_rot/2]
        cos = np.cos(angle).astype(self.dtype)[:, None, :]
        sin = np.sin(angle).astype(self.dtype)[:, None, :]
        x0 = x[:, :, 0:self.n_rot:2].copy()
        x1 = x[:, :, 1:self.n_rot:2].copy()
        x[:, :, 0:self.n_rot:2] = x0 * cos - x1 * sin
        x[:, :, 1:self.n_rot:2] = x0 * sin + x1 * cos
        return x

    def attention(self, q, k, v, n_past):
        """q: [n_tok][n_head][hd]; k, v: [n_past+n_tok][n_head_kv][hd] -> [n_tok][n_head*hd]."""
        n_tok, T = q.shape[0], k.shape[0]
        group = self.n_head // self.n_head_kv
        scale = self.dtype(1.0 / np.sqrt(self.head_dim))
        # query t sits at position n_past + t and sees keys 0 .. n_past + t
        mask = np.arange(T)[None, :] > (n_past + np.arange(n_tok))[:, None]   # [n_tok][T]
        out = np.empty((n_tok, self.n_head, self.head_dim), self.dtype)
        for h in range(self.n_head):
            kh, vh = k[:, h // group, :], v[:, h // group, :]                # [T][hd]
            scores = (q[:, h, :] @ kh.T) * scale                              # [n_tok][T]
            scores[mask] = -np.inf
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out[:, h, :] = p @ vh
        return out.reshape(n_tok, -1)

    def forward(self, tokens, cache):
        """Feeds tokens after what cache holds; returns logits [n_tok][n_vocab]."""
        n_past = cache[0][0].shape[0]
        n_tok = len(tokens)
        pos = np.arange(n_past, n_past + n_tok, dtype=np.float64)
        hd = self.head_dim
        x = self.token_embd[np.asarray(tokens)].copy()                       # [n_tok][n_embd]
        for L, c in zip(self.layers, cache):
            h = self.rmsnorm(x, L["attn_norm"])
            q = (h @ L["wq"].T).reshape(n_tok, self.n_head, hd)
            k = (h @ L["wk"].T).reshape(n_tok, self.n_head_kv, hd)
            v = (h @ L["wv"].T).reshape(n_tok, self.n_head_kv, hd)
            self.rope(q, pos)
            self.rope(k, pos)
            c[0] = np.concatenate([c[0], k])
            c[1] = np.concatenate([c[1], v])
            x = x + self.attention(q, c[0], c[1], n_past) @ L["wo"].T
            h = self.rmsnorm(x, L["ffn_norm"])
            gate = h @ L["w_gate"].T
            up = h @ L["w_up"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ L["w_down"].T       # silu(g) * u
        return self.rmsnorm(x, self.output_norm) @ self.output.T

    def logits(self, tokens):
        """Logits of every position of tokens, fed at once from an empty cache."""
        return self.forward(list(tokens), self.new_cache())

    def greedy(self, tokens, n, stop=None):
        """Feeds tokens, then picks the argmax n times (fewer if `stop` comes out)."""
        cache = self.new_cache()
        logits = self.forward(list(tokens), cache)
        out = []
        for _ in range(n):
            t = int(np.argmax(logits[-1]))
            if stop is not None and t == stop:
                break
            out.append(t)
            if len(out) == n:
                break
            logits = self.forward([t], cache)
        return out


def parse_ids(s):
    return [int(t) for t in s.replace(" ", ",").split(",") if t]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="write logits [n_tokens][n_vocab] as raw little-endian float64")
    ap.add_argument("--greedy", type=int, metavar="N", help="generate N tokens greedily")
    ap.add_argument("--stop", type=int, metavar="ID", help="with --greedy: stop when ID comes out")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    a = ap.parse_args(argv)
    if (a.out is None) == (a.greedy is None):
        ap.error("give exactly one of --out and --greedy")
    tokens = parse_ids(a.tokens)
    m = Model(a.model, np.float64 if a.dtype == "float64" else np.float32)
    bad = [t for t in tokens if not 0 <= t < m.n_vocab]
    if not tokens or bad:
        ap.error("token ids must be in 0..%d (got %s)" % (m.n_vocab - 1, bad or "none"))
    if a.greedy is not None:
        print(",".join(str(t) for t in m.greedy(tokens, a.greedy, a.stop)))
    else:
        m.logits(tokens).astype("<f8").tofile(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
