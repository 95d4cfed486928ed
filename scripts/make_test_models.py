#!/usr/bin/python3
"""make_test_models.py - write Llama-3-architecture GGUF v3 models with seeded
random weights, for lmrt's logit tests (tiny shapes) and benchmarks (real shapes).

  make_test_models.py --shape tiny --type Q4_K --out DIR [--seed N]   -> DIR/tiny-Q4_K.gguf
  make_test_models.py --all-tiny --out DIR [--seed N]                  every tiny shape x type

Types: F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K. A type applies to every 2-D weight
(token_embd and output included); norms and rope_freqs stay F32.

The model is defined in GGUF terms (the weights are random, so there is no
Hugging Face layout to permute from): RoPE turns adjacent pairs (x[2i], x[2i+1])
by pos * base^(-2i/n_rot) / rope_freqs[i]. Every tensor draws from its own
generator, numpy default_rng([seed, crc32(name)]), in float32, so the same
shape and seed give the same float weights in every type (each type file is a
quantization of one float model) and files are written one tensor at a time,
in row chunks, never holding a whole model in memory.

Shapes:
  tiny           n_embd 256, n_ff 512, 2 layers, 8 heads / 2 kv heads, vocab 512,
                 ctx 256, rope base 10000, Llama 3.1 rope_freqs, separate output.weight
  tiny-tied      tiny without output.weight (tied to token_embd) and without rope_freqs
  tiny-mllama    the text decoder of a Llama 3.2 Vision model (general.architecture
                 "mllama", Ollama's layout, doc/formats.md): tiny with 4 layers of which
                 1 and 3 are cross-attention layers (cross_attn_q/k/v/o_proj, per-head
                 q/k RMSNorms, one-element F32 gates stored before tanh, no self-
                 attention), vocab_size 512 = output rows, token_embd 520 rows
                 (vocab_size + 8) and a 513-token vocabulary: stories260K's plus
                 <|image|> = 512, a control token
  llama-3.2-1b   16 layers, 2048, 32/8 heads, FFN 8192, vocab 128256, tied,
                 rope_freqs (factor 32 as in Llama 3.2), ctx 131072, rope base 500000
  llama-3-8b     32 layers, 4096, 32/8 heads, FFN 14336, vocab 128256, untied,
                 no rope_freqs, ctx 8192, rope base 500000
The tiny shapes carry stories260K's 512-token SentencePiece vocabulary; the
real shapes the Llama 3 tokenizer from tests/data/ggml-vocab-llama-bpe.gguf
(all tokenizer.ggml.* keys). The real shapes are large (llama-3-8b F32 is about
32 GB) and are made on demand for benchmarks only.
"""
import argparse
import math
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import lmrt_gguf as gguf  # noqa: E402
import lmrt_quant  # noqa: E402

TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K")
# general.file_type as llama.cpp numbers its ftypes (Q4_K files are written as Q4_K_M).
FILE_TYPE = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "Q4_K": 15, "Q6_K": 18, "BF16": 32}

STORIES_VOCAB = os.path.join(ROOT, "lib", "model", "builtin", "stories260K.gguf")
LLAMA3_VOCAB = os.path.join(ROOT, "tests", "data", "ggml-vocab-llama-bpe.gguf")

_TINY = dict(n_embd=256, n_ff=512, n_layer=2, n_head=8, n_head_kv=2, n_vocab=512, n_ctx=256,
             rope_base=10000.0, vocab=STORIES_VOCAB)
SHAPES = {
    "tiny": dict(_TINY, tied=False,
                 rope_scaling=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                   original_context=8192)),
    "tiny-tied": dict(_TINY, tied=True, rope_scaling=None),
    "llama-3.2-1b": dict(n_embd=2048, n_ff=8192, n_layer=16, n_head=32, n_head_kv=8,
                         n_vocab=128256, n_ctx=131072, rope_base=500000.0, tied=True,
                         rope_scaling=dict(factor=32.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0, original_context=8192),
                         vocab=LLAMA3_VOCAB),
    "llama-3-8b": dict(n_embd=4096, n_ff=14336, n_layer=32, n_head=32, n_head_kv=8,
                       n_vocab=128256, n_ctx=8192, rope_base=500000.0, tied=False,
                       rope_scaling=None, vocab=LLAMA3_VOCAB),
}
SHAPES["tiny-mllama"] = dict(SHAPES["tiny"], n_layer=4, cross_layers=[1, 3], extra_embd_rows=8,
                             image_token="<|image|>")
TINY_SHAPES = ("tiny", "tiny-tied")      # the llama shapes test_reference_logits.py checks
MLLAMA_SHAPES = ("tiny-mllama",)

RMS_EPS = 1e-5
CHUNK_ELEMENTS = 1 << 22          # rows per chunk are chosen so a chunk is about this big


def rope_freq_factors(n_rot, base, factor, low_freq_factor, high_freq_factor, original_context):
    """Llama 3.1 frequency factors (what Meta's apply_scaling divides each frequency
    by), one per rotary pair i < n_rot/2, as the HF->GGUF converter stores them:
      freq_i = base^(-2i/n_rot), wavelen = 2 pi / freq_i
      wavelen < original_context / high_freq_factor  -> 1
      wavelen > original_context / low_freq_factor   -> factor
      otherwise, smooth = (original_context / wavelen - low) / (high - low)
                                                     -> 1 / ((1 - smooth) / factor + smooth)"""
    out = []
    for i in range(n_rot // 2):
        freq = base ** (-2.0 * i / n_rot)
        wavelen = 2.0 * math.pi / freq
        if wavelen < original_context / high_freq_factor:
            out.append(1.0)
        elif wavelen > original_context / low_freq_factor:
            out.append(factor)
        else:
            smooth = ((original_context / wavelen - low_freq_factor)
                      / (high_freq_factor - low_freq_factor))
            out.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def weight_std(n_embd):
    """Random weights' standard deviation: about 1/sqrt(n_embd), kept in 0.02..0.05.
    With RMS-normalized inputs a projection's outputs then have an RMS near 1, so
    attention is neither uniform nor one-hot and logits spread by about 1."""
    return min(0.05, max(0.02, 1.0 / math.sqrt(n_embd)))


def _rng(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _matrix_chunks(name, n_rows, n_cols, std, type_name, seed):
    """Returns produce() for add_tensor_stream: the quantized rows, chunk by chunk."""
    def produce():
        rng = _rng(seed, name)
        step = max(1, CHUNK_ELEMENTS // n_cols)
        for r in range(0, n_rows, step):
            rows = min(step, n_rows - r)
            x = rng.standard_normal((rows, n_cols), dtype=np.float32) * np.float32(std)
            yield lmrt_quant.quantize(type_name, x)
    return produce


def norm_weight(name, n, seed):
    """Norm weights near 1: 1 + 0.1 N(0, 1)."""
    return (1.0 + 0.1 * _rng(seed, name).standard_normal(n)).astype(np.float32)


TOKEN_TYPE_CONTROL = 3


def _copy_tokenizer(w, path, extra_token=None):
    """Copies every tokenizer.* key of path; extra_token (a string) is appended to
    the vocabulary as a control token with score 0. Returns the token count
    without it."""
    r = gguf.Reader(path)
    for key, value in r.kv.items():
        if key.startswith("tokenizer."):
            vtype, elem_type = r.kv_types[key]
            if extra_token is not None and vtype == gguf.ARRAY:
                extra = {"tokenizer.ggml.tokens": extra_token.encode(),
                         "tokenizer.ggml.scores": 0.0,
                         "tokenizer.ggml.token_type": TOKEN_TYPE_CONTROL}
                value = list(value) + [extra[key]]
            w.add(key, vtype, value, elem_type)
    return len(r.kv["tokenizer.ggml.tokens"])


def gate_value(name, seed):
    """A cross layer's gate as stored (before tanh): |g| in 0.4..1.2, either sign.
    Trained gates are far from 0 (Hugging Face initializes them at 0, which would
    make the cross layers do nothing)."""
    u = _rng(seed, name).uniform(0.4, 1.2)
    return np.float32(u if zlib.crc32(name.encode()) % 2 else -u)


def build_writer(shape, type_name, seed=0):
    """A gguf.Writer holding the model's metadata and streamed tensors."""
    if type_name not in TYPES:
        raise ValueError("type %s is not one of %s" % (type_name, " ".join(TYPES)))
    s = SHAPES[shape]
    n_embd, n_ff, n_vocab = s["n_embd"], s["n_ff"], s["n_vocab"]
    hd = n_embd // s["n_head"]
    n_kv = s["n_head_kv"] * hd
    std = weight_std(n_embd)

    cross = s.get("cross_layers", [])
    arch = "mllama" if "cross_layers" in s else "llama"
    w = gguf.Writer()
    w.add_str("general.architecture", arch)
    w.add_str("general.name",
              "lmrt-test %s %s (random weights, seed %d)" % (shape, type_name, seed))
    w.add_u32("general.file_type", FILE_TYPE[type_name])
    w.add_u32("general.quantization_version", 2)
    w.add_u32(arch + ".context_length", s["n_ctx"])
    w.add_u32(arch + ".embedding_length", n_embd)
    w.add_u32(arch + ".block_count", s["n_layer"])
    w.add_u32(arch + ".feed_forward_length", n_ff)
    w.add_u32(arch + ".attention.head_count", s["n_head"])
    w.add_u32(arch + ".attention.head_count_kv", s["n_head_kv"])
    w.add_f32(arch + ".rope.freq_base", s["rope_base"])
    w.add_f32(arch + ".attention.layer_norm_rms_epsilon", RMS_EPS)
    w.add_u32(arch + ".rope.dimension_count", hd)
    w.add_u32(arch + ".vocab_size", n_vocab)
    if cross:
        w.add_array(arch + ".attention.cross_attention_layers", gguf.INT32, cross)
    n_tokens = _copy_tokenizer(w, s["vocab"], s.get("image_token"))
    assert n_tokens == n_vocab, (shape, n_tokens, n_vocab)

    def matrix(name, n_cols, n_rows):      # GGUF dims [n_cols, n_rows]
        w.add_tensor_stream(name, type_name, [n_cols, n_rows],
                            _matrix_chunks(name, n_rows, n_cols, std, type_name, seed))

    def vector(name, values):
        w.add_tensor(name, "F32", [len(values)], values.astype("<f4").tobytes())

    if s["rope_scaling"]:
        vector("rope_freqs.weight", rope_freq_factors(hd, s["rope_base"], **s["rope_scaling"]))
    matrix("token_embd.weight", n_embd, n_vocab + s.get("extra_embd_rows", 0))
    for i in range(s["n_layer"]):
        p = "blk.%d." % i
        vector(p + "attn_norm.weight", norm_weight(p + "attn_norm.weight", n_embd, seed))
        if i in cross:
            matrix(p + "cross_attn_q_proj.weight", n_embd, n_embd)
            matrix(p + "cross_attn_k_proj.weight", n_embd, n_kv)
            matrix(p + "cross_attn_v_proj.weight", n_embd, n_kv)
            matrix(p + "cross_attn_o_proj.weight", n_embd, n_embd)
            vector(p + "cross_attn_q_norm.weight", norm_weight(p + "cross_attn_q_norm.weight",
                                                               hd, seed))
            vector(p + "cross_attn_k_norm.weight", norm_weight(p + "cross_attn_k_norm.weight",
                                                               hd, seed))
            for gate in ("cross_attn_attn_gate", "cross_attn_mlp_gate"):
                vector(p + gate, np.array([gate_value(p + gate, seed)]))
        else:
            matrix(p + "attn_q.weight", n_embd, n_embd)
            matrix(p + "attn_k.weight", n_embd, n_kv)
            matrix(p + "attn_v.weight", n_embd, n_kv)
            matrix(p + "attn_output.weight", n_embd, n_embd)
        vector(p + "ffn_norm.weight", norm_weight(p + "ffn_norm.weight", n_embd, seed))
        matrix(p + "ffn_gate.weight", n_embd, n_ff)
        matrix(p + "ffn_up.weight", n_embd, n_ff)
        matrix(p + "ffn_down.weight", n_ff, n_embd)
    vector("output_norm.weight", norm_weight("output_norm.weight", n_embd, seed))
    if not s["tied"]:
        matrix("output.weight", n_embd, n_vocab)
    return w


def model_path(out_dir, shape, type_name):
    return os.path.join(out_dir, "%s-%s.gguf" % (shape, type_name))


def write_model(shape, type_name, out_dir, seed=0):
    """Writes out_dir/<shape>-<type>.gguf (via a temporary name) and returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = model_path(out_dir, shape, type_name)
    build_writer(shape, type_name, seed).write(path)
    return path


def write_all_tiny(out_dir, seed=0):
    """The tiny llama shapes in every type (tiny-mllama is made on its own)."""
    return [write_model(shape, t, out_dir, seed) for shape in TINY_SHAPES for t in TYPES]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES))
    ap.add_argument("--type", choices=TYPES)
    ap.add_argument("--all-tiny", action="store_true", help="every tiny shape in every type")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.all_tiny == bool(a.shape or a.type) or (not a.all_tiny and not (a.shape and a.type)):
        ap.error("give either --all-tiny or both --shape and --type")
    paths = (write_all_tiny(a.out, a.seed) if a.all_tiny
             else [write_model(a.shape, a.type, a.out, a.seed)])
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
