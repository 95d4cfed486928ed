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

Llama 3.2 Vision's decoder (general.architecture "mllama") has cross-attention
layers at the indices mllama.attention.cross_attention_layers lists. They have no
self-attention and no KV cache of their own; once image states S [n_img][n_embd]
are set (set_cross), every later position runs

              h = rmsnorm(x) * attn_norm
              q = rmsnorm_per_head(Wq h) * q_norm
              K = rmsnorm_per_head(Wk S) * k_norm,  V = Wv S
              x += tanh(attn_gate) * Wo attention(q, K, V)   (no mask, grouped-query)
              h = rmsnorm(x) * ffn_norm
              x += tanh(mlp_gate) * Wdown (silu(Wgate h) * Wup h)

and before any image is set the cross layers are skipped (identity). token_embd
has vocab_size + 8 rows (<|image|> = vocab_size among them); output has
vocab_size.

rmsnorm(x) = x / sqrt(mean(x^2) + eps). RoPE is GGUF's "normal" convention: pair
(x[2i], x[2i+1]) of each head turns by pos * base^(-2i/n_rot) / rope_freqs[i]
(rope_freqs.weight if the file has it, else 1). A GGUF tensor of dims
[n_cols, n_rows] is a row-major matrix of n_rows rows, and y = W @ x.

  reference.py MODEL --tokens 1,2,3 --out logits.f64   raw little-endian float64
                                                       [n_tokens][n_vocab]
  reference.py MODEL --tokens 1 --greedy 256           prints the generated ids,
                                                       comma-separated
  reference.py MODEL --steps 't:1,2,3;img:FEAT.f32;t:512,4' --out logits.f64
                                                       mllama: feeds token runs (t:) and
                                                       sets image states (img: raw
                                                       little-endian float32
                                                       [n][n_embd]) in order; logits of
                                                       every token fed
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
        self.arch = arch

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

        # mllama: [vocab_size + 8][n_embd], else [n_vocab][n_embd]
        self.token_embd = self.matrix("token_embd.weight")
        self.n_vocab = hp("vocab_size") if arch == "mllama" else self.token_embd.shape[0]
        self.output_norm = self.vector("output_norm.weight")          # [n_embd]
        self.tied = "output.weight" not in r.tensors
        self.output = (self.token_embd[:self.n_vocab] if self.tied
                       else self.matrix("output.weight"))             # [n_vocab][n_embd]
        self.cross_layers = (list(hp("attention.cross_attention_layers")) if arch == "mllama"
                             else [])
        self.rope_factors = (self.vector("rope_freqs.weight") if "rope_freqs.weight" in r.tensors
                             else np.ones(self.n_rot // 2, dtype=dtype))  # [n_rot/2]
        self.layers = []
        for i in range(self.n_layer):
            p = "blk.%d." % i
            if i in self.cross_layers:
                self.layers.append({
                    "cross": True,
                    "attn_norm": self.vector(p + "attn_norm.weight"),     # [n_embd]
                    "wq": self.matrix(p + "cross_attn_q_proj.weight"),    # [n_head*hd][n_embd]
                    "wk": self.matrix(p + "cross_attn_k_proj.weight"),    # [n_head_kv*hd][n_embd]
                    "wv": self.matrix(p + "cross_attn_v_proj.weight"),    # [n_head_kv*hd][n_embd]
                    "wo": self.matrix(p + "cross_attn_o_proj.weight"),    # [n_embd][n_head*hd]
                    "q_norm": self.vector(p + "cross_attn_q_norm.weight"),  # [hd]
                    "k_norm": self.vector(p + "cross_attn_k_norm.weight"),  # [hd]
                    # the file stores the gates before tanh, one value each
                    "attn_gate": np.tanh(self.vector(p + "cross_attn_attn_gate")[0]),
                    "mlp_gate": np.tanh(self.vector(p + "cross_attn_mlp_gate")[0]),
                    "ffn_norm": self.vector(p + "ffn_norm.weight"),       # [n_embd]
                    "w_gate": self.matrix(p + "ffn_gate.weight"),         # [n_ff][n_embd]
                    "w_up": self.matrix(p + "ffn_up.weight"),             # [n_ff][n_embd]
                    "w_down": self.matrix(p + "ffn_down.weight"),         # [n_embd][n_ff]
                })
                continue
            self.layers.append({
                "cross": False,
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
        """Per layer K and V: [0][n_head_kv][head_dim] arrays that grow by position.
        A cross layer's entry holds the image states' K and V instead: [n_img][...]
        once set_cross ran, 0 rows (no image: the layer is skipped) before."""
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

    def attention(self, q, k, v, n_past, causal=True):
        """q: [n_tok][n_head][hd]; k, v: [n_past+n_tok][n_head_kv][hd] -> [n_tok][n_head*hd].
        causal=False: every query sees every key (cross-attention; n_past unused)."""
        n_tok, T = q.shape[0], k.shape[0]
        group = self.n_head // self.n_head_kv
        scale = self.dtype(1.0 / np.sqrt(self.head_dim))
        # query t sits at position n_past + t and sees keys 0 .. n_past + t
        mask = np.arange(T)[None, :] > (n_past + np.arange(n_tok))[:, None]   # [n_tok][T]
        if not causal:
            mask[:] = False
        out = np.empty((n_tok, self.n_head, self.head_dim), self.dtype)
        for h in range(self.n_head):
            kh, vh = k[:, h // group, :], v[:, h // group, :]                # [T][hd]
            scores = (q[:, h, :] @ kh.T) * scale                              # [n_tok][T]
            scores[mask] = -np.inf
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            out[:, h, :] = p @ vh
        return out.reshape(n_tok, -1)

    def set_cross(self, features, cache):
        """mllama: image states from features [n_img][n_embd]; replaces earlier ones."""
        S = np.asarray(features, dtype=np.float64).astype(self.dtype)
        assert S.ndim == 2 and S.shape[1] == self.n_embd and S.shape[0] > 0, S.shape
        shape = (S.shape[0], self.n_head_kv, self.head_dim)
        for L, c in zip(self.layers, cache):
            if L["cross"]:
                c[0] = self.rmsnorm((S @ L["wk"].T).reshape(shape), L["k_norm"])
                c[1] = (S @ L["wv"].T).reshape(shape)

    def ffn(self, x, L):
        h = self.rmsnorm(x, L["ffn_norm"])
        gate = h @ L["w_gate"].T
        up = h @ L["w_up"].T
        return (gate / (1.0 + np.exp(-gate)) * up) @ L["w_down"].T           # silu(g) * u

    def forward(self, tokens, cache, embd=None):
        """Feeds tokens after what cache holds -- or, with embd, input embeddings
        [n][n_embd] (image or audio projector outputs) in their place; returns
        logits [n_tok][n_vocab]."""
        first_self = next(i for i, L in enumerate(self.layers) if not L["cross"])
        n_past = cache[first_self][0].shape[0]
        n_tok = len(tokens) if embd is None else len(embd)
        pos = np.arange(n_past, n_past + n_tok, dtype=np.float64)
        hd = self.head_dim
        if embd is None:
            x = self.token_embd[np.asarray(tokens)].copy()                   # [n_tok][n_embd]
        else:
            x = np.array(embd, dtype=self.dtype)
        for L, c in zip(self.layers, cache):
            if L["cross"]:
                if c[0].shape[0] == 0:
                    continue                        # no image yet: the layer is skipped
                h = self.rmsnorm(x, L["attn_norm"])
                q = self.rmsnorm((h @ L["wq"].T).reshape(n_tok, self.n_head, hd), L["q_norm"])
                att = self.attention(q, c[0], c[1], 0, causal=False) @ L["wo"].T
                x = x + self.dtype(L["attn_gate"]) * att
                x = x + self.dtype(L["mlp_gate"]) * self.ffn(x, L)
                continue
            h = self.rmsnorm(x, L["attn_norm"])
            q = (h @ L["wq"].T).reshape(n_tok, self.n_head, hd)
            k = (h @ L["wk"].T).reshape(n_tok, self.n_head_kv, hd)
            v = (h @ L["wv"].T).reshape(n_tok, self.n_head_kv, hd)
            self.rope(q, pos)
            self.rope(k, pos)
            c[0] = np.concatenate([c[0], k])
            c[1] = np.concatenate([c[1], v])
            x = x + self.attention(q, c[0], c[1], n_past) @ L["wo"].T
            x = x + self.ffn(x, L)
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


def read_features(path, n_embd):
    """Raw little-endian float32 [n][n_embd] image features."""
    f = np.fromfile(path, dtype="<f4")
    if f.size == 0 or f.size % n_embd:
        raise ValueError("%s: %d floats is not [n][%d]" % (path, f.size, n_embd))
    return f.reshape(-1, n_embd)


def run_steps(m, steps):
    """Feeds steps in order: ("t", [ids]), ("e", embeddings [n][n_embd]), ("img",
    features [n][n_embd]) or ("clear", None); returns
    the logits of every token fed, [n_tokens][n_vocab]."""
    cache = m.new_cache()
    out = []
    for kind, arg in steps:
        if kind == "t":
            out.append(m.forward(list(arg), cache))
        elif kind == "e":
            out.append(m.forward(None, cache, embd=arg))
        elif kind == "img":
            m.set_cross(arg, cache)
        else:                                       # "clear": drop the image states
            for L, c in zip(m.layers, cache):
                if L["cross"]:
                    c[0], c[1] = c[0][:0], c[1][:0]
    return np.concatenate(out)


def parse_steps(m, text):
    steps = []
    for part in text.split(";"):
        kind, _, arg = part.strip().partition(":")
        if kind == "t":
            steps.append(("t", parse_ids(arg)))
        elif kind == "img":
            steps.append(("img", read_features(arg, m.n_embd)))
        elif kind == "e":
            steps.append(("e", read_features(arg, m.n_embd)))
        elif kind == "clear":
            steps.append(("clear", None))
        else:
            raise ValueError("step %r is none of t:IDS, e:FILE, img:FILE, clear" % part)
    return steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--steps", help="mllama: 't:IDS;img:FEATURES.f32;t:IDS...' (with --out)")
    ap.add_argument("--out", help="write logits [n_tokens][n_vocab] as raw little-endian float64")
    ap.add_argument("--greedy", type=int, metavar="N", help="generate N tokens greedily")
    ap.add_argument("--stop", type=int, metavar="ID", help="with --greedy: stop when ID comes out")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    a = ap.parse_args(argv)
    if (a.out is None) == (a.greedy is None):
        ap.error("give exactly one of --out and --greedy")
    if (a.tokens is None) == (a.steps is None) or (a.steps and a.out is None):
        ap.error("give exactly one of --tokens and --steps (--steps with --out)")
    m = Model(a.model, np.float64 if a.dtype == "float64" else np.float32)
    if a.steps:
        steps = parse_steps(m, a.steps)
        tokens = [t for kind, arg in steps if kind == "t" for t in arg]
    else:
        tokens = parse_ids(a.tokens)
    n_ids = m.token_embd.shape[0]
    bad = [t for t in tokens if not 0 <= t < n_ids]
    if not tokens or bad:
        ap.error("token ids must be in 0..%d (got %s)" % (n_ids - 1, bad or "none"))
    if a.steps:
        run_steps(m, steps).astype("<f8").tofile(a.out)
    elif a.greedy is not None:
        print(",".join(str(t) for t in m.greedy(tokens, a.greedy, a.stop)))
    else:
        m.logits(tokens).astype("<f8").tofile(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
