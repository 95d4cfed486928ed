"""lmrt_quant.py - numpy quantizers and independent float64 dequantizers for the
GGML block formats lmrt computes on: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K.

Used by make_test_models.py (to write weights) and reference.py (to read them
back exactly). The byte layouts follow ggml's block structs; the quantizers are
plain round-to-nearest with per-block max scaling (valid, not optimal).

Block layouts (all little-endian; f16 = IEEE half):
  Q8_0  32 elems, 34 bytes: f16 d | int8 q[32];             x = d * q
  Q4_0  32 elems, 18 bytes: f16 d | u8 qs[16];              x = d * (q - 8)
        element j < 16 is the low nibble of qs[j], element 16 + j the high one
  Q4_K 256 elems, 144 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
        8 sub-blocks of 32 with 6-bit scale sc[s] and min m[s]:
          s < 4:  sc = scales[s] & 63,  m = scales[s + 4] & 63
          s >= 4: sc = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4
                  m  = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4
        qs holds 4 groups of 32 bytes; group g: low nibbles are sub-block 2g,
        high nibbles sub-block 2g + 1;          x = d * sc * q - dmin * m
  Q6_K 256 elems, 210 bytes: u8 ql[128] | u8 qh[64] | int8 scales[16] | f16 d
        two halves of 128 elements (ql += 64, qh += 32 per half); in a half,
        for l < 32:  q[l]    = ql[l]    & 15 | ((qh[l] >> 0) & 3) << 4
                     q[l+32] = ql[l+32] & 15 | ((qh[l] >> 2) & 3) << 4
                     q[l+64] = ql[l]    >> 4 | ((qh[l] >> 4) & 3) << 4
                     q[l+96] = ql[l+32] >> 4 | ((qh[l] >> 6) & 3) << 4
        element e of the block uses scales[e // 16];  x = d * scales[e//16] * (q - 32)

Run `python3 lmrt_quant.py` to run the self-tests.
"""
import sys

import numpy as np

# name -> (elements per block, bytes per block); numbers live in lmrt_gguf.TENSOR_TYPES.
BLOCK = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34), "Q4_0": (32, 18),
         "Q4_K": (256, 144), "Q6_K": (256, 210)}
TYPES = tuple(BLOCK)


def nbytes(type_name, n_elements):
    block, size = BLOCK[type_name]
    assert n_elements % block == 0, "%s needs a multiple of %d elements" % (type_name, block)
    return n_elements // block * size


# ---------------------------------------------------------------- helpers

def _f16(x):
    """float array -> float16 array (round to nearest even, as ggml's FP32_TO_FP16)."""
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def _f16_bytes(h):
    """float16 array [n] -> uint8 [n, 2]."""
    return np.ascontiguousarray(h, dtype="<f2").view(np.uint8).reshape(-1, 2)


def _read_f16(b):
    """uint8 [n, 2] -> float64 [n]."""
    return np.ascontiguousarray(b).view("<f2").reshape(-1).astype(np.float64)


def _safe_inv(d):
    d = np.asarray(d, dtype=np.float64)
    out = np.zeros_like(d)
    np.divide(1.0, d, out=out, where=d != 0)
    return out


def _blocks(x, block):
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    assert x.size % block == 0, "need a multiple of %d elements, got %d" % (block, x.size)
    return x.reshape(-1, block)


def _as_u8(data):
    return np.frombuffer(bytes(data) if isinstance(data, memoryview) else data, dtype=np.uint8)


# ---------------------------------------------------------------- quantizers

def _q_f32(x):
    return np.asarray(x, dtype="<f4").reshape(-1).view(np.uint8)


def _q_f16(x):
    return _f16(np.asarray(x).reshape(-1)).astype("<f2").view(np.uint8)


def _q_bf16(x):
    """Round to nearest even on the upper 16 bits; NaN stays a (quiet) NaN."""
    u = np.asarray(x, dtype="<f4").reshape(-1).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32).reshape(-1))
    r[nan] = ((u[nan] >> 16) | 64).astype(np.uint16)
    return r.astype("<u2").view(np.uint8)


def _q_q8_0(x):
    b = _blocks(x, 32)
    d = _f16(np.abs(b).max(axis=1) / 127.0)
    q = np.clip(np.rint(b * _safe_inv(d)[:, None]), -127, 127).astype(np.int8)
    return np.concatenate([_f16_bytes(d), q.view(np.uint8)], axis=1).reshape(-1)


def _q_q4_0(x):
    b = _blocks(x, 32)
    # The signed value of largest magnitude maps to q = 0 (-8 * d), as ggml does.
    mx = np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)[:, 0]
    d = _f16(mx / -8.0)
    q = np.clip(np.floor(b * _safe_inv(d)[:, None] + 8.5), 0, 15).astype(np.uint8)
    qs = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([_f16_bytes(d), qs], axis=1).reshape(-1)


def pack_q4_k_scales(sc, m):
    """sc, m: uint8 [n, 8] six-bit values -> uint8 [n, 12] as get_scale_min_k4 reads them."""
    sc = np.asarray(sc, dtype=np.uint8)
    m = np.asarray(m, dtype=np.uint8)
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 15) | ((m[:, 4:8] & 15) << 4)
    return out


def _q_q4_k(x):
    b = _blocks(x, 256).reshape(-1, 8, 32).astype(np.float64)
    lo = np.minimum(b.min(axis=2), 0.0)            # min folded to <= 0, stored as -lo >= 0
    scale = (b.max(axis=2) - lo) / 15.0
    d = _f16(scale.max(axis=1) / 63.0)
    dmin = _f16(-lo.min(axis=1) / 63.0)
    d64, dmin64 = d.astype(np.float64), dmin.astype(np.float64)
    sc = np.clip(np.rint(scale * _safe_inv(d64)[:, None]), 0, 63).astype(np.uint8)
    m = np.clip(np.rint(-lo * _safe_inv(dmin64)[:, None]), 0, 63).astype(np.uint8)
    step = d64[:, None] * sc                       # [n, 8]
    offs = dmin64[:, None] * m
    q = np.clip(np.rint((b + offs[:, :, None]) * _safe_inv(step)[:, :, None]), 0, 15)
    q = q.astype(np.uint8).reshape(-1, 4, 2, 32)   # group g holds sub-blocks 2g, 2g+1
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(-1, 128)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), pack_q4_k_scales(sc, m), qs],
                          axis=1).reshape(-1)


def _q_q6_k(x):
    b = _blocks(x, 256).reshape(-1, 16, 16).astype(np.float64)
    mx = np.take_along_axis(b, np.abs(b).argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    scale = mx / -32.0                             # the largest magnitude maps to q - 32 = -32
    d = _f16(np.abs(scale).max(axis=1) / 127.0)
    d64 = d.astype(np.float64)
    sc = np.clip(np.rint(scale * _safe_inv(d64)[:, None]), -128, 127).astype(np.int8)
    step = d64[:, None] * sc
    q = np.clip(np.rint(b * _safe_inv(step)[:, :, None]), -32, 31) + 32
    L = q.astype(np.uint8).reshape(-1, 2, 4, 32)   # [block, half, group of 32, l]
    lo = L & 15
    ql = np.concatenate([lo[:, :, 0] | (lo[:, :, 2] << 4), lo[:, :, 1] | (lo[:, :, 3] << 4)],
                        axis=2).reshape(-1, 128)
    qh = ((L[:, :, 0] >> 4) | ((L[:, :, 1] >> 4) << 2) | ((L[:, :, 2] >> 4) << 4)
          | ((L[:, :, 3] >> 4) << 6)).reshape(-1, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), _f16_bytes(d)], axis=1).reshape(-1)


_QUANT = {"F32": _q_f32, "F16": _q_f16, "BF16": _q_bf16, "Q8_0": _q_q8_0, "Q4_0": _q_q4_0,
          "Q4_K": _q_q4_k, "Q6_K": _q_q6_k}


def quantize(type_name, x):
    """Any float array (row-major; rows a multiple of the block) -> bytes in type_name."""
    return _QUANT[type_name](x).tobytes()


# ---------------------------------------------------------------- dequantizers (float64)

def _dq_f32(u):
    return u.view("<f4").astype(np.float64)


def _dq_f16(u):
    return u.view("<f2").astype(np.float64)


def _dq_bf16(u):
    return (u.view("<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)


def _dq_q8_0(u):
    blk = u.reshape(-1, 34)
    d = _read_f16(blk[:, 0:2])
    q = blk[:, 2:].view(np.int8).astype(np.float64)
    return (d[:, None] * q).reshape(-1)


def _dq_q4_0(u):
    blk = u.reshape(-1, 18)
    d = _read_f16(blk[:, 0:2])
    qs = blk[:, 2:]
    q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.float64)  # elems 0..15, 16..31
    return (d[:, None] * (q - 8.0)).reshape(-1)


def unpack_q4_k_scales(s):
    """uint8 [n, 12] -> (sc, m) uint8 [n, 8], following get_scale_min_k4 term by term."""
    sc = np.empty((s.shape[0], 8), dtype=np.uint8)
    m = np.empty((s.shape[0], 8), dtype=np.uint8)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            m[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
            m[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, m


def _dq_q4_k(u):
    blk = u.reshape(-1, 144)
    d = _read_f16(blk[:, 0:2])
    dmin = _read_f16(blk[:, 2:4])
    sc, m = unpack_q4_k_scales(blk[:, 4:16])
    qs = blk[:, 16:144].reshape(-1, 4, 32)
    out = np.empty((blk.shape[0], 256), dtype=np.float64)
    for g in range(4):
        for half, nib in ((0, qs[:, g] & 15), (1, qs[:, g] >> 4)):
            s = 2 * g + half
            out[:, 32 * s:32 * s + 32] = (d * sc[:, s])[:, None] * nib - (dmin * m[:, s])[:, None]
    return out.reshape(-1)


def _dq_q6_k(u):
    blk = u.reshape(-1, 210)
    ql, qh = blk[:, 0:128], blk[:, 128:192]
    sc = blk[:, 192:208].view(np.int8).astype(np.float64)
    d = _read_f16(blk[:, 208:210])
    q = np.empty((blk.shape[0], 256), dtype=np.int32)
    for h in range(2):
        a = ql[:, 64 * h:64 * h + 32]           # low nibbles: groups 0, high: group 2
        c = ql[:, 64 * h + 32:64 * h + 64]      # low nibbles: group 1, high: group 3
        hb = qh[:, 32 * h:32 * h + 32]          # 2 bits for each of the 4 groups
        base = 128 * h
        q[:, base + 0:base + 32] = (a & 15) | (((hb >> 0) & 3) << 4)
        q[:, base + 32:base + 64] = (c & 15) | (((hb >> 2) & 3) << 4)
        q[:, base + 64:base + 96] = (a >> 4) | (((hb >> 4) & 3) << 4)
        q[:, base + 96:base + 128] = (c >> 4) | (((hb >> 6) & 3) << 4)
    scale = np.repeat(sc, 16, axis=1) * d[:, None]   # element e uses scales[e // 16]
    return (scale * (q - 32)).reshape(-1)


_DEQUANT = {"F32": _dq_f32, "F16": _dq_f16, "BF16": _dq_bf16, "Q8_0": _dq_q8_0,
            "Q4_0": _dq_q4_0, "Q4_K": _dq_q4_k, "Q6_K": _dq_q6_k}


def dequantize(type_name, data, n_elements=None):
    """bytes / memoryview in type_name -> float64 [n_elements]."""
    u = _as_u8(data)
    if n_elements is not None and len(u) != nbytes(type_name, n_elements):
        raise ValueError("%s: %d bytes for %d elements" % (type_name, len(u), n_elements))
    return _DEQUANT[type_name](u)


# ---------------------------------------------------------------- self-tests

def _le16(v):
    return [v & 255, v >> 8]


def _check(name, got, want):
    got = np.asarray(got, dtype=np.float64)
    if not np.array_equal(got, np.asarray(want, dtype=np.float64)):
        raise AssertionError("%s: got %s, want %s" % (name, got.tolist(), list(want)))


def hand_made_blocks():
    """(type, bytes, {element: value}) with values derived by hand from the layouts above."""
    cases = []
    # F16: 1.0, -2.0, largest finite, smallest subnormal.
    cases.append(("F16", bytes(_le16(0x3C00) + _le16(0xC000) + _le16(0x7BFF) + _le16(0x0001)),
                  {0: 1.0, 1: -2.0, 2: 65504.0, 3: 2.0 ** -24}))
    # BF16: top half of the f32 bits: 1.0, -3.0, 1 + 2^-7.
    cases.append(("BF16", bytes(_le16(0x3F80) + _le16(0xC040) + _le16(0x3F81)),
                  {0: 1.0, 1: -3.0, 2: 1.0078125}))
    # Q8_0: d = 0.5 (0x3800), q[i] = i - 16.
    cases.append(("Q8_0", bytes(_le16(0x3800) + [(i - 16) & 255 for i in range(32)]),
                  {0: -8.0, 16: 0.0, 17: 0.5, 31: 7.5}))
    # Q4_0: d = 2.0 (0x4000), qs[j] = j | (15 - j) << 4.
    cases.append(("Q4_0", bytes(_le16(0x4000) + [j | ((15 - j) << 4) for j in range(16)]),
                  {0: -16.0, 15: 14.0, 16: 14.0, 31: -16.0, 8: 0.0}))
    # Q4_K: d = 1.0, dmin = 0.25 (0x3400); sc = 1 2 3 4 17 33 49 63, m = 4 3 2 1 20 40 60 16
    # packed by hand: bytes 0-3 = sc[0..3] | (sc[4..7] >> 4) << 6 = 65 130 195 196;
    # bytes 4-7 = m[0..3] | (m[4..7] >> 4) << 6 = 68 131 194 65;
    # bytes 8-11 = sc[4..7] & 15 | (m[4..7] & 15) << 4 = 65 129 193 15.
    # qs[k] = (k % 16) | ((k // 8) % 16) << 4.
    scales = [65, 130, 195, 196, 68, 131, 194, 65, 65, 129, 193, 15]
    qs = [(k % 16) | (((k // 8) % 16) << 4) for k in range(128)]
    cases.append(("Q4_K", bytes(_le16(0x3C00) + _le16(0x3400) + scales + qs), {
        0: -1.0,      # qs[0] low = 0, sub-block 0: 1*0 - 0.25*4
        5: 4.0,       # qs[5] low = 5: 1*5 - 1
        33: -0.75,    # qs[1] high = 0, sub-block 1: 2*0 - 0.25*3
        63: 5.25,     # qs[31] high = 3: 2*3 - 0.75
        64: -0.5,     # qs[32] low = 0, sub-block 2: 3*0 - 0.25*2
        100: 15.75,   # qs[36] high = 4, sub-block 3: 4*4 - 0.25*1
        130: 29.0,    # qs[66] low = 2, sub-block 4: 17*2 - 0.25*20
        170: 287.0,   # qs[74] high = 9, sub-block 5: 33*9 - 0.25*40
        200: 377.0,   # qs[104] low = 8, sub-block 6: 49*8 - 0.25*60
        255: 941.0}))  # qs[127] high = 15, sub-block 7: 63*15 - 0.25*16
    # Q6_K: ql[k] = k, qh[k] = (37 k) & 255, scales[i] = i - 8, d = 0.5.
    ql = list(range(128))
    qh = [(37 * k) & 255 for k in range(64)]
    sc = [(i - 8) & 255 for i in range(16)]
    cases.append(("Q6_K", bytes(ql + qh + sc + _le16(0x3800)), {
        0: 128.0,     # ql[0]&15 = 0, qh[0]&3 = 0 -> q 0; 0.5 * -8 * -32
        1: 60.0,      # ql[1]&15 = 1, qh[1]=37 &3 = 1 -> q 17; 0.5 * -8 * -15
        40: -24.0,    # ql[40]&15 = 8, qh[8]=40 >>2&3 = 2 -> q 40; 0.5 * -6 * 8
        100: -2.0,    # ql[36]>>4 = 2, qh[4]=148 >>6&3 = 2 -> q 34; 0.5 * -2 * 2
        150: 3.0,     # ql[86]&15 = 6, qh[54]=206 &3 = 2 -> q 38; 0.5 * 1 * 6
        200: -56.0,   # ql[72]>>4 = 4, qh[40]=200 >>4&3 = 0 -> q 4; 0.5 * 4 * -28
        255: -87.5})) # ql[127]>>4 = 7, qh[63]=27 >>6&3 = 0 -> q 7; 0.5 * 7 * -25
    return cases


def element_value(type_name, blk, e):
    """Element e of one block, computed alone from where its bits sit (a second,
    scalar reading of the layouts, checked against the vectorized dequantizers)."""
    f16 = lambda o: float(np.frombuffer(bytes(blk[o:o + 2]), dtype="<f2")[0])
    i8 = lambda v: v - 256 if v > 127 else v
    if type_name == "Q8_0":
        return f16(0) * i8(blk[2 + e])
    if type_name == "Q4_0":
        byte = blk[2 + e % 16]
        return f16(0) * (((byte >> 4) if e >= 16 else (byte & 15)) - 8)
    if type_name == "Q4_K":
        s, g = e // 32, e // 64                   # sub-block, group of 64
        byte = blk[16 + 32 * g + e % 32]
        q = (byte >> 4) if s % 2 else (byte & 15)
        sb = blk[4:16]
        if s < 4:
            sc, m = sb[s] & 63, sb[s + 4] & 63
        else:
            sc = (sb[s + 4] & 15) + 16 * (sb[s - 4] >> 6)
            m = (sb[s + 4] >> 4) + 16 * (sb[s] >> 6)
        return f16(0) * sc * q - f16(2) * m
    if type_name == "Q6_K":
        h, p = e // 128, e % 128
        g, l = p // 32, p % 32
        lbyte = blk[64 * h + l + (32 if g in (1, 3) else 0)]
        low = (lbyte >> 4) if g >= 2 else (lbyte & 15)
        high = (blk[128 + 32 * h + l] >> (2 * g)) & 3
        return f16(208) * i8(blk[192 + e // 16]) * (low + 16 * high - 32)
    raise ValueError(type_name)


# Relative RMS error bound (vs. the data's RMS) of quantize -> dequantize on N(0, 1)
# data: a uniform quantizer with step s has RMS error s/sqrt(12); these bounds sit
# comfortably above what round-to-nearest reaches and far below what a layout bug gives.
ROUNDTRIP_RMS = {"F32": 0.0, "F16": 1e-3, "BF16": 5e-3, "Q8_0": 0.012, "Q4_0": 0.15,
                 "Q4_K": 0.12, "Q6_K": 0.03}


def self_test(verbose=True):
    for type_name, data, want in hand_made_blocks():
        got = dequantize(type_name, data)
        idx = sorted(want)
        _check("hand-made %s" % type_name, got[idx], [want[i] for i in idx])
        if verbose:
            print("ok  hand-made %-5s block: %d values match" % (type_name, len(idx)))
    # Random bytes (with finite f16 scales): vectorized == scalar, element by element.
    rng = np.random.default_rng(7)
    f16_at = {"Q8_0": (0,), "Q4_0": (0,), "Q4_K": (0, 2), "Q6_K": (208,)}
    for type_name, offsets in f16_at.items():
        blk = rng.integers(0, 256, size=BLOCK[type_name][1], dtype=np.uint8)
        for o in offsets:
            blk[o:o + 2] = _f16_bytes(_f16([rng.uniform(-2, 2)]))[0]
        got = dequantize(type_name, blk.tobytes())
        want = [element_value(type_name, [int(v) for v in blk], e) for e in range(got.size)]
        _check("random %s block" % type_name, got, want)
        if verbose:
            print("ok  random  %-5s block: all %d values match the scalar reading"
                  % (type_name, got.size))
    # The packer and the unpacker of Q4_K scales agree on every 6-bit value.
    sc = rng.integers(0, 64, size=(1000, 8), dtype=np.uint8)
    m = rng.integers(0, 64, size=(1000, 8), dtype=np.uint8)
    sc2, m2 = unpack_q4_k_scales(pack_q4_k_scales(sc, m))
    assert np.array_equal(sc, sc2) and np.array_equal(m, m2), "Q4_K scale packing"
    x = rng.standard_normal(256 * 64).astype(np.float32)
    x[:256] *= 1e-3                                # a block of tiny values
    x[256:512] = np.abs(x[256:512])                # a block with no negative values
    x[512:768] = 0.0                               # an all-zero block
    for type_name in TYPES:
        data = quantize(type_name, x)
        assert len(data) == nbytes(type_name, x.size), type_name
        y = dequantize(type_name, data, x.size)
        assert np.all(y[512:768] == 0.0), "%s: zero block" % type_name
        rel = np.sqrt(np.mean((y - x) ** 2) / np.mean(x.astype(np.float64) ** 2))
        rel_small = np.sqrt(np.mean((y[:256] - x[:256]) ** 2) / np.mean(x[:256] ** 2.0))
        assert rel <= ROUNDTRIP_RMS[type_name], "%s: relative RMS error %g" % (type_name, rel)
        assert rel_small <= 2 * ROUNDTRIP_RMS[type_name] + 1e-3, \
            "%s: tiny block error %g" % (type_name, rel_small)
        # Re-quantizing what a dequantizer returns is a fixed point for the exact types.
        if type_name in ("F32", "F16", "BF16"):
            assert quantize(type_name, y) == data, type_name
        if verbose:
            print("ok  %-5s round trip: relative RMS error %.2e (bound %.0e)"
                  % (type_name, rel, ROUNDTRIP_RMS[type_name]))
    return True


if __name__ == "__main__":
    self_test()
    sys.exit(0)
