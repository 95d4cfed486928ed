#!/usr/bin/python3
"""reference_audio.py - an independent float64 reference of Whisper's log-mel
spectrogram and of the Whisper encoder + Ultravox projector of an mmproj GGUF,
the yardstick lmrt's audio path is tested against.

Written from the definitions (openai/whisper audio.py, librosa.filters.mel,
Hugging Face's WhisperEncoder, Ultravox's StackAudioFrames and projector), not
from lmrt's C. Per 30 s window of 480000 samples (the last zero-padded):

  mel:  x padded by 200 samples at each end, mirrored without repeating the end
        sample (torch.stft center=True, pad_mode="reflect"); 3001 frames of 400
        samples every 160, the last dropped; |rfft(hann * frame)|^2 with the
        periodic Hann window; the Slaney-scale, area-normalized filterbank of
        librosa.filters.mel(sr=16000, n_fft=400, n_mels); log10(max(., 1e-10));
        max(., window max - 8); (. + 4) / 4.           -> [3000][n_mel]
  encoder:  x = gelu(conv1d(mel, W1, b1, pad 1)); x = gelu(conv1d(x, W2, b2,
        stride 2, pad 1)) + pos[:1500]; per block (pre-LN):
            h = ln1(x); x += Wo softmax(q k^T / sqrt(hd)) v + bo,
                 q = Wq h + bq, k = Wk h, v = Wv h + bv (per head)
            h = ln2(x); x += Wdown gelu(Wup h + bup) + bdown
        x = post_ln(x)                                 -> [1500][d]
  projector: frames stacked sf at a time (zero frames pad the end) -> [n][d sf];
        y = rmsnorm(x) * norm_pre (eps 1e-6); h = W1 y; y = h[:P/2] * silu(h[P/2:]);
        embd = W2 (rmsnorm(y) * norm_mid)              -> [n][n_embd_text]
gelu is the exact one, x/2 (1 + erf(x / sqrt 2)); layernorm uses the biased
variance and the file's epsilon.

  reference_audio.py mel PCM.f32 --n-mel 80 --out MEL.f64     all windows, [n_win*3000][n_mel]
  reference_audio.py encode MODEL PCM.f32 --out EMBD.f64      [n_tok][n_embd_text]
PCM.f32: raw little-endian float32 samples at 16 kHz; outputs raw float64.
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmrt_gguf  # noqa: E402
import lmrt_quant  # noqa: E402

SR = 16000
N_FFT = 400
HOP = 160
WINDOW = 30 * SR
FRAMES = WINDOW // HOP
N_POS = FRAMES // 2
PROJ_EPS = 1e-6


# ---- mel --------------------------------------------------------------------

def slaney_hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3.0)
    log = 15.0 + np.log(np.maximum(f, 1e-300) / 1000.0) / (math.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def slaney_mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3.0)
    log = 1000.0 * np.exp((math.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filterbank(n_mel):
    """[n_mel][201]: librosa.filters.mel(sr=16000, n_fft=400, n_mels, htk=False,
    norm='slaney'), in float64."""
    bins = np.linspace(0.0, SR / 2.0, N_FFT // 2 + 1)
    edges = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(0.0), slaney_hz_to_mel(SR / 2.0),
                                         n_mel + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    fb = np.zeros((n_mel, bins.size))
    for i in range(n_mel):
        lower = -ramps[i] / width[i]
        upper = ramps[i + 2] / width[i + 1]
        fb[i] = np.maximum(0.0, np.minimum(lower, upper))
    return fb * (2.0 / (edges[2:n_mel + 2] - edges[:n_mel]))[:, None]


def n_windows(n_samples):
    return -(-n_samples // WINDOW)


def mel_window(pcm, w, n_mel, fb=None):
    """The log-mel spectrogram of 30 s window w: [3000][n_mel] float64."""
    x = np.zeros(WINDOW)
    chunk = np.asarray(pcm[w * WINDOW:(w + 1) * WINDOW], dtype=np.float64)
    x[:chunk.size] = chunk
    x = np.pad(x, N_FFT // 2, mode="reflect")
    idx = np.arange(FRAMES)[:, None] * HOP + np.arange(N_FFT)[None, :]
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(x[idx] * hann, axis=1)) ** 2            # [3000][201]
    fb = mel_filterbank(n_mel) if fb is None else fb
    mel = np.log10(np.maximum(power @ fb.T, 1e-10))
    mel = np.maximum(mel, mel.max() - 8.0)
    return (mel + 4.0) / 4.0


def log_mel(pcm, n_mel):
    """Every window's spectrogram, stacked: [n_windows * 3000][n_mel]."""
    fb = mel_filterbank(n_mel)
    return np.concatenate([mel_window(pcm, w, n_mel, fb) for w in range(n_windows(len(pcm)))])


# ---- encoder and projector --------------------------------------------------

def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layernorm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def conv1d(x, w, b, stride):
    """x: [T][c_in]; w: [c_out][c_in][3]; kernel 3, padding 1 -> [T_out][c_out]."""
    T = x.shape[0]
    xp = np.pad(x, ((1, 1), (0, 0)))
    t_out = (T + 2 - 3) // stride + 1
    y = np.tile(b, (t_out, 1))
    for k in range(3):
        y += xp[k:k + stride * (t_out - 1) + 1:stride] @ w[:, :, k].T
    return y


class Encoder:
    """Hyperparameters and dequantized weights of an Ultravox mmproj GGUF."""

    def __init__(self, path):
        r = lmrt_gguf.Reader(path)
        kv = r.kv
        self._t = r.tensors
        proj = kv.get("clip.audio.projector_type", kv.get("clip.projector_type"))
        assert proj in (b"ultravox", "ultravox"), proj
        self.n_mel = kv["clip.audio.num_mel_bins"]
        self.d = kv["clip.audio.embedding_length"]
        self.n_head = kv["clip.audio.attention.head_count"]
        self.n_layer = kv["clip.audio.block_count"]
        self.eps = float(kv["clip.audio.attention.layer_norm_epsilon"])
        self.stack = kv["clip.audio.projector.stack_factor"]
        self.conv1_w = self.tensor("a.conv1d.1.weight")                   # [d][n_mel][3]
        self.conv1_b = self.tensor("a.conv1d.1.bias").reshape(-1)
        self.conv2_w = self.tensor("a.conv1d.2.weight")                   # [d][d][3]
        self.conv2_b = self.tensor("a.conv1d.2.bias").reshape(-1)
        self.pos = self.tensor("a.position_embd.weight")                  # [n_pos][d]
        self.layers = []
        for i in range(self.n_layer):
            p = "a.blk.%d." % i
            L = {k: self.tensor(p + k) for k in (
                "ln1.weight", "ln1.bias", "attn_q.weight", "attn_q.bias", "attn_k.weight",
                "attn_v.weight", "attn_v.bias", "attn_out.weight", "attn_out.bias",
                "ln2.weight", "ln2.bias", "ffn_up.weight", "ffn_up.bias", "ffn_down.weight",
                "ffn_down.bias")}
            self.layers.append(L)
        self.post_w = self.tensor("a.post_ln.weight")
        self.post_b = self.tensor("a.post_ln.bias")
        self.norm_pre = self.tensor("mm.a.norm_pre.weight")
        self.mlp1 = self.tensor("mm.a.mlp.1.weight")                      # [P][d sf]
        self.norm_mid = self.tensor("mm.a.norm_mid.weight")
        self.mlp2 = self.tensor("mm.a.mlp.2.weight")                      # [n_embd_text][P/2]
        del self._t

    def tensor(self, name):
        """A GGUF tensor of dims [n0, n1, ...] as a numpy array of shape [..., n1, n0]."""
        type_name, dims, data = self._t[name]
        x = lmrt_quant.dequantize(type_name, data, int(np.prod(dims))).astype(np.float64)
        return x.reshape(tuple(reversed(dims))) if len(dims) > 1 else x

    def encode_mel(self, mel):
        """mel [3000][n_mel] -> encoder output [1500][d]."""
        d, nh = self.d, self.n_head
        hd = d // nh
        x = gelu(conv1d(mel, self.conv1_w, self.conv1_b, 1))
        x = gelu(conv1d(x, self.conv2_w, self.conv2_b, 2)) + self.pos[:N_POS]
        n = x.shape[0]
        for L in self.layers:
            h = layernorm(x, L["ln1.weight"], L["ln1.bias"], self.eps)
            q = (h @ L["attn_q.weight"].T + L["attn_q.bias"]).reshape(n, nh, hd)
            k = (h @ L["attn_k.weight"].T).reshape(n, nh, hd)
            v = (h @ L["attn_v.weight"].T + L["attn_v.bias"]).reshape(n, nh, hd)
            att = np.empty((n, nh, hd))
            for j in range(nh):
                s = q[:, j, :] @ k[:, j, :].T / math.sqrt(hd)
                p = np.exp(s - s.max(axis=1, keepdims=True))
                att[:, j, :] = (p / p.sum(axis=1, keepdims=True)) @ v[:, j, :]
            x = x + att.reshape(n, d) @ L["attn_out.weight"].T + L["attn_out.bias"]
            h = layernorm(x, L["ln2.weight"], L["ln2.bias"], self.eps)
            h = gelu(h @ L["ffn_up.weight"].T + L["ffn_up.bias"])
            x = x + h @ L["ffn_down.weight"].T + L["ffn_down.bias"]
        return layernorm(x, self.post_w, self.post_b, self.eps)

    def project(self, x):
        """[1500][d] -> [ceil(1500 / sf)][n_embd_text]."""
        n = -(-x.shape[0] // self.stack)
        xs = np.zeros((n * self.stack, self.d))
        xs[:x.shape[0]] = x
        xs = xs.reshape(n, self.stack * self.d)
        h = rmsnorm(xs, self.norm_pre, PROJ_EPS) @ self.mlp1.T
        half = h.shape[1] // 2
        a, gate = h[:, :half], h[:, half:]
        y = a * (gate / (1.0 + np.exp(-gate)))
        return rmsnorm(y, self.norm_mid, PROJ_EPS) @ self.mlp2.T

    def encode(self, pcm):
        """16 kHz float PCM -> [n_windows * n_stk][n_embd_text]."""
        fb = mel_filterbank(self.n_mel)
        return np.concatenate([self.project(self.encode_mel(mel_window(pcm, w, self.n_mel, fb)))
                               for w in range(n_windows(len(pcm)))])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mel")
    m.add_argument("pcm")
    m.add_argument("--n-mel", type=int, required=True)
    m.add_argument("--out", required=True)
    e = sub.add_parser("encode")
    e.add_argument("model")
    e.add_argument("pcm")
    e.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    pcm = np.fromfile(a.pcm, dtype="<f4").astype(np.float64)
    out = log_mel(pcm, a.n_mel) if a.cmd == "mel" else Encoder(a.model).encode(pcm)
    out.astype("<f8").tofile(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
