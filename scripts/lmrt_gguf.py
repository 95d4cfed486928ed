"""lmrt_gguf.py - a small, independent GGUF v3 reader and writer in pure Python.

Used by the test-model scripts and by the tests of the command-line examples.
It shares no code with lib/format/gguf.c on purpose: it is a second reading of
the format, so a bug in one is caught by the other.
"""
import os
import struct

GGUF_MAGIC = b"GGUF"

# Metadata value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR = {UINT8: "B", INT8: "b", UINT16: "H", INT16: "h", UINT32: "I", INT32: "i",
           FLOAT32: "f", BOOL: "?", UINT64: "Q", INT64: "q", FLOAT64: "d"}

# Tensor types: (number, elements per block, bytes per block).
TENSOR_TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36),
    "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "BF16": (30, 1, 2),
}
TYPE_BY_NUMBER = {v[0]: (k, v[1], v[2]) for k, v in TENSOR_TYPES.items()}


def tensor_nbytes(type_name, dims):
    _, block, size = TENSOR_TYPES[type_name]
    n = 1
    for d in dims:
        n *= d
    assert dims[0] % block == 0, "row length must be a multiple of the block size"
    return n // block * size


class Writer:
    """Collects metadata and tensors, then writes a GGUF v3 file."""

    def __init__(self, alignment=32):
        self.kv = []          # (key, type, value, elem_type)
        self.tensors = []     # (name, type_name, dims, bytes)
        self.alignment = alignment
        if alignment != 32:
            self.add("general.alignment", UINT32, alignment)

    def add(self, key, vtype, value, elem_type=None):
        self.kv.append((key, vtype, value, elem_type))

    def add_str(self, key, s):
        self.add(key, STRING, s)

    def add_u32(self, key, v):
        self.add(key, UINT32, v)

    def add_f32(self, key, v):
        self.add(key, FLOAT32, v)

    def add_array(self, key, elem_type, values):
        self.add(key, ARRAY, list(values), elem_type)

    def add_tensor(self, name, type_name, dims, data):
        """dims: GGUF order (dims[0] contiguous); data: bytes of exactly the right size."""
        assert len(data) == tensor_nbytes(type_name, dims), (name, len(data))
        self.tensors.append((name, type_name, list(dims), bytes(data)))

    def add_tensor_stream(self, name, type_name, dims, produce):
        """Like add_tensor, but the data comes later, at write(), from produce():
        an iterable of bytes-like chunks that together are exactly the tensor.
        Lets write() stream files larger than memory, one tensor at a time."""
        self.tensors.append((name, type_name, list(dims), produce))

    @staticmethod
    def _str(s):
        b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, value, elem_type):
        if vtype == STRING:
            return self._str(value)
        if vtype == ARRAY:
            out = struct.pack("<IQ", elem_type, len(value))
            if elem_type == STRING:
                return out + b"".join(self._str(v) for v in value)
            return out + struct.pack("<%d%s" % (len(value), _SCALAR[elem_type]), *value)
        return struct.pack("<" + _SCALAR[vtype], value)

    def _header(self):
        """The bytes before the tensor data (padded) and each tensor's data offset."""
        out = bytearray(GGUF_MAGIC + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
        for key, vtype, value, elem_type in self.kv:
            out += self._str(key) + struct.pack("<I", vtype) + self._value(vtype, value, elem_type)
        offset = 0
        layout = []
        for name, type_name, dims, _ in self.tensors:
            offset = -(-offset // self.alignment) * self.alignment
            layout.append(offset)
            out += self._str(name) + struct.pack("<I", len(dims))
            out += struct.pack("<%dQ" % len(dims), *dims)
            out += struct.pack("<IQ", TENSOR_TYPES[type_name][0], offset)
            offset += tensor_nbytes(type_name, dims)
        out += b"\0" * (-len(out) % self.alignment)
        return bytes(out), layout

    def _chunks(self):
        """The whole file as a sequence of bytes-like chunks."""
        header, layout = self._header()
        yield header
        pos = 0
        for (name, type_name, dims, data), off in zip(self.tensors, layout):
            yield b"\0" * (off - pos)
            n = 0
            for chunk in ((data,) if isinstance(data, (bytes, bytearray)) else data()):
                n += len(chunk)
                yield chunk
            assert n == tensor_nbytes(type_name, dims), (name, n)
            pos = off + n

    def to_bytes(self):
        return b"".join(bytes(c) for c in self._chunks())

    def write(self, path):
        """Writes the file through path + ".part", renamed at the end: an
        interrupted run never leaves a half-written model under the real name."""
        with open(path + ".part", "wb") as f:
            for chunk in self._chunks():
                f.write(chunk)
        os.replace(path + ".part", path)


class Reader:
    """Parses a GGUF v2/v3 file into .kv (dict key -> value) and .tensors
    (dict name -> (type_name, dims, memoryview of the data))."""

    def __init__(self, path_or_bytes):
        if isinstance(path_or_bytes, (bytes, bytearray)):
            self.buf = bytes(path_or_bytes)
        else:
            with open(path_or_bytes, "rb") as f:
                self.buf = f.read()
        self.pos = 0
        if self.buf[:4] != GGUF_MAGIC:
            raise ValueError("not a GGUF file")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", self.buf, 4)
        if version not in (2, 3):
            raise ValueError("GGUF version %d" % version)
        self.pos = 24
        self.kv = {}
        self.kv_types = {}    # key -> (value type, element type or None): to copy keys
        for _ in range(n_kv):
            key = self._read_str().decode("utf-8")
            (vtype,) = self._unpack("<I")
            if vtype == ARRAY:
                self.kv_types[key] = (vtype, struct.unpack_from("<I", self.buf, self.pos)[0])
            else:
                self.kv_types[key] = (vtype, None)
            self.kv[key] = self._read_value(vtype)
        infos = []
        for _ in range(n_tensors):
            name = self._read_str().decode("utf-8")
            (n_dims,) = self._unpack("<I")
            dims = list(self._unpack("<%dQ" % n_dims))
            ttype, off = self._unpack("<IQ")
            infos.append((name, ttype, dims, off))
        align = self.kv.get("general.alignment", 32)
        start = -(-self.pos // align) * align
        self.tensors = {}
        view = memoryview(self.buf)
        for name, ttype, dims, off in infos:
            type_name = TYPE_BY_NUMBER[ttype][0]
            n = tensor_nbytes(type_name, dims)
            self.tensors[name] = (type_name, dims, view[start + off:start + off + n])

    def _unpack(self, fmt):
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals

    def _read_str(self):
        (n,) = self._unpack("<Q")
        s = self.buf[self.pos:self.pos + n]
        self.pos += n
        return s

    def _read_value(self, vtype):
        if vtype == STRING:
            return self._read_str()
        if vtype == ARRAY:
            etype, n = self._unpack("<IQ")
            if etype == STRING:
                return [self._read_str() for _ in range(n)]
            return list(self._unpack("<%d%s" % (n, _SCALAR[etype])))
        return self._unpack("<" + _SCALAR[vtype])[0]
