#!/usr/bin/env python3
"""make_test_images.py - writes the image fuzzer's seed corpus (tests/fuzz/corpus/png/).

    python3 scripts/make_test_images.py [DIR]     (default: tests/fuzz/corpus/png)

Pure Python + zlib. Writes tiny images that reach every branch worth mutating:
PNG in each colour type and bit depth (some Adam7, with tRNS, split IDAT, every
filter type, an ancillary chunk), PPM/PGM in binary and plain form with 8- and
16-bit samples, and three JPEGs stored below as bytes (libjpeg-turbo 2.1.5,
quality 50, optimized Huffman: 16x8 RGB baseline, 9x7 grey progressive, 8x8 Adobe
CMYK). Files named z_*.bin are fuzz_png.c's spelled-out PNGs (IHDR fields and raw
scanlines that the harness compresses and wraps with valid CRCs). Every file is well
under 4 KiB; test_image.c builds its own PNGs and does not need these.
"""
import os
import struct
import sys
import zlib

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data=b""):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def pack_row(samples, depth):
    """Samples of one scanline at `depth` bits, leftmost in the high bits."""
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    out, acc, bits = bytearray(), 0, 0
    for s in samples:
        acc, bits = acc << depth | s, bits + depth
        if bits == 8:
            out.append(acc)
            acc, bits = 0, 0
    if bits:
        out.append(acc << (8 - bits))
    return bytes(out)


def filter_row(kind, row, prev, bpp):
    out = bytearray([kind])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev else 0
        c = prev[i - bpp] if prev and i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - pred) & 255)
    return bytes(out)


def png(w, h, depth, colour, interlace=0, palette=None, trns=None, split=0, extra=True):
    ch = CHANNELS[colour]
    top = (len(palette) // 3 if palette else 1 << depth) - 1

    def sample(x, y, k):
        return (x * 7 + y * 13 + k * 5) % (top + 1) if colour == 3 else \
            ((x * 37 + y * 91 + k * 53) * 2654435761 >> 7) & top

    bits = ch * depth
    bpp = max(1, bits // 8)
    raw, n = bytearray(), 0
    for x0, y0, dx, dy in (ADAM7 if interlace else [(0, 0, 1, 1)]):
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys:
            continue
        prev = None
        for y in ys:
            row = pack_row([sample(x, y, k) for x in xs for k in range(ch)], depth)
            raw += filter_row(n % 5, row, prev, bpp)
            prev, n = row, n + 1
    z = zlib.compress(bytes(raw), 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0,
                                                           interlace))
    if extra:
        out += chunk(b"gAMA", struct.pack(">I", 45455))
    if palette:
        out += chunk(b"PLTE", palette)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = split or len(z)
    for i in range(0, len(z), step):
        out += chunk(b"IDAT", z[i:i + step])
    if extra:
        out += chunk(b"tEXt", b"Comment\0seed")
    return out + chunk(b"IEND")


def spelled_out(w, h, depth, colour, interlace=0, palette=b"", trns=b""):
    """fuzz_png.c's 'Z' form: IHDR fields, PLTE, tRNS and raw scanlines (all filter 0),
    which the harness wraps into a PNG with valid CRCs and zlib stream."""
    raw = bytearray()
    for x0, y0, dx, dy in (ADAM7 if interlace else [(0, 0, 1, 1)]):
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if xs and ys:
            for y in ys:
                n = (len(xs) * CHANNELS[colour] * depth + 7) // 8
                raw += bytes([y % 5]) + bytes((x * 29 + y * 7) & 255 for x in range(n))
    return (b"Z" + struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace) +
            bytes([len(palette) // 3]) + palette + bytes([len(trns)]) + trns + bytes(raw))


def netpbm(magic, w, h, maxval, comment=True):
    ch = 3 if magic in "P3P6" else 1
    vals = [(i * 2654435761 >> 5) % (maxval + 1) for i in range(w * h * ch)]
    head = "%s\n%s%d %d\n%d\n" % (magic, "# seed\n" if comment else "", w, h, maxval)
    if magic in ("P2", "P3"):
        return (head + " ".join(map(str, vals)) + "\n").encode()
    return head.encode() + (bytes(vals) if maxval < 256 else
                            b"".join(struct.pack(">H", v) for v in vals))


JPEGS = {
    "rgb_16x8.jpg": bytes.fromhex(
        "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a1816"
        "16183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c6567"
        "63ffdb0043011112121815182f1a1a2f63423842636363636363636363636363636363636363636363636363"
        "6363636363636363636363636363636363636363636363636363ffc000110800080010030122000211010311"
        "01ffc400160001010100000000000000000000000000000405ffc40019100002030100000000000000000000"
        "00000004062231a1ffc40014010100000000000000000000000000000004ffc4001911000203010000000000"
        "00000000000000000304052151ffda000c03010002110311003f009578f650d45a3f94e001dd299d095d31d9"
        "a7ffd9"
    ),
    "grey_prog_9x7.jpg": bytes.fromhex(
        "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a1816"
        "16183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c6567"
        "63ffc2000b080007000901011100ffc4001500010100000000000000000000000000000306ffda0008010100"
        "0000013a4fffc4001510010100000000000000000000000000000410ffda000801010001050214ffc4001510"
        "010100000000000000000000000000000110ffda0008010100063f0227ffc400141001000000000000000000"
        "00000000000010ffda0008010100013f210fffda00080101000000103fffc400141001000000000000000000"
        "00000000000010ffda0008010100013f102fffd9"
    ),
    "cmyk_8x8.jpg": bytes.fromhex(
        "ffd8ffee000e41646f626500640000000000ffdb004300100b0c0e0c0a100e0d0e1211101318281a18161618"
        "3123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ff"
        "c000140800080008044311004d11005911004b1100ffc4001500010100000000000000000000000000000007"
        "ffc4001a1001000105000000000000000000000000000616436381a1ffda000e0443004d0059004b00003f00"
        "40ede8a23170501fffd9"
    ),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz", "corpus", "png")
    os.makedirs(out, exist_ok=True)
    pal4 = bytes(range(0, 12))
    pal16 = bytes((i * 17 + k * 60) & 255 for i in range(16) for k in range(3))
    files = {
        "grey1_interlaced_9x9.png": png(9, 9, 1, 0, interlace=1),
        "grey2_trns_5x3.png": png(5, 3, 2, 0, trns=b"\0\1"),
        "grey4_7x5.png": png(7, 5, 4, 0, extra=False),
        "grey16_interlaced_3x5.png": png(3, 5, 16, 0, interlace=1),
        "rgb8_split_idat_17x9.png": png(17, 9, 8, 2, split=16),
        "rgb16_trns_2x2.png": png(2, 2, 16, 2, trns=b"\0\0\0\0\0\0"),
        "palette1_8x2.png": png(8, 2, 1, 3, palette=pal4[:6]),
        "palette2_trns_interlaced_6x6.png": png(6, 6, 2, 3, interlace=1, palette=pal4,
                                                trns=b"\0\x80"),
        "palette4_4x4.png": png(4, 4, 4, 3, palette=pal16),
        "palette8_3x3.png": png(3, 3, 8, 3, palette=pal16, trns=b"\xff\0\x10"),
        "grey_alpha8_4x3.png": png(4, 3, 8, 4),
        "grey_alpha16_interlaced_5x5.png": png(5, 5, 16, 4, interlace=1),
        "rgba8_interlaced_10x3.png": png(10, 3, 8, 6, interlace=1),
        "rgba16_1x1.png": png(1, 1, 16, 6),
        "p6_4x3.ppm": netpbm("P6", 4, 3, 255),
        "p6_16bit_2x2.ppm": netpbm("P6", 2, 2, 65535),
        "p5_3x3.pgm": netpbm("P5", 3, 3, 100, comment=False),
        "p5_16bit_2x3.pgm": netpbm("P5", 2, 3, 1023),
        "p3_2x2.ppm": netpbm("P3", 2, 2, 15),
        "p2_3x2.pgm": netpbm("P2", 3, 2, 65535),
        "z_rgb8_4x3.bin": spelled_out(4, 3, 8, 2),
        "z_palette4_trns_interlaced_9x5.bin": spelled_out(9, 5, 4, 3, 1, bytes(range(48)),
                                                          b"\0\x40\x80"),
        "z_rgba16_interlaced_3x3.bin": spelled_out(3, 3, 16, 6, 1),
        "z_grey1_trns_13x2.bin": spelled_out(13, 2, 1, 0, 0, b"", b"\0\1"),
    }
    files.update(JPEGS)
    for name, data in sorted(files.items()):
        assert len(data) < 4096, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(files), out))


if __name__ == "__main__":
    main()
