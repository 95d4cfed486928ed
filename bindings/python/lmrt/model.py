"""model.py - lmrt.Model: loading (file, memory, built-in), info, metadata,
tensors, tokens, chat formatting and the capability query, as Python objects.
Sessions and contexts are in session.py; C calls go through _lib.
"""
import collections.abc
import ctypes
import dataclasses
import os
from typing import Dict, FrozenSet, List, Optional, Tuple

from . import _lib, _structs as S
from ._handle import Handle, fill_buffer, ids_arg, path_arg, string_array, text_arg
from .errors import InvalidArgument

MODALITIES = ("text", "image", "audio")
_BACKENDS = {"cpu": 1, "cuda": 2}

# GGUF metadata value types (LMRT_META_*).
_META_INT = {0, 1, 2, 3, 4, 5, 10, 11}
_META_FLOAT = {6, 12}
_META_BOOL, _META_STRING, _META_ARRAY = 7, 8, 9


def _modality_set(mask):
    return frozenset(m for i, m in enumerate(MODALITIES) if mask & (1 << i))


def _backend_set(mask):
    return frozenset(name for name, bit in _BACKENDS.items() if mask & bit)


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else ""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """lmrt_model_info as Python values; `modalities` is a set of names."""
    architecture: str
    name: str
    file_type: str
    n_params: int
    n_bytes: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx_train: int
    n_vocab: int
    gguf_version: int
    n_tensors: int
    n_metadata: int
    modalities: FrozenSet[str]


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    type_name: str
    type: int
    dims: Tuple[int, ...]   # dims[0] is the contiguous one
    offset: int             # absolute byte offset in the file
    n_bytes: int


@dataclasses.dataclass(frozen=True)
class RuntimeInfo:
    version: str                 # lmrt_version()
    backends: FrozenSet[str]     # {"cpu"} or {"cpu", "cuda"}
    cpu_simd: str                # e.g. "avx512-vnni-bf16"
    n_cuda_devices: int


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a model may do in a region (lmrt_capabilities)."""
    region: str                  # upper-cased; "" when unset
    region_known: bool           # False for unset or unassigned codes (fail closed)
    region_in_eu: bool
    present: FrozenSet[str]      # modalities the model has
    licensed: FrozenSet[str]     # the subset licensed in the region
    withheld: Dict[str, str]     # modality -> reason, for present-but-withheld ones
    runtime: RuntimeInfo

    @classmethod
    def _from_c(cls, c):
        present = _modality_set(c.modalities_present)
        licensed = _modality_set(c.modalities_licensed)
        withheld = {m: _s(c.withheld_reason[i].value) for i, m in enumerate(MODALITIES)
                    if m in present and m not in licensed}
        return cls(region=_s(c.region), region_known=bool(c.region_known),
                   region_in_eu=bool(c.region_in_eu), present=present, licensed=licensed,
                   withheld=withheld,
                   runtime=RuntimeInfo(version=_s(c.version), backends=_backend_set(c.backends),
                                       cpu_simd=_s(c.cpu_simd),
                                       n_cuda_devices=c.n_cuda_devices))


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    backend: str
    index: int
    name: str
    total_memory: int
    free_memory: int
    description: str


def devices(backend="cpu") -> List[DeviceInfo]:
    """The devices of one backend ("cpu" or "cuda"); [] when it has none."""
    lib = _lib.lib()
    code = _backend_code(backend, allow_auto=False)
    n = ctypes.c_int32()
    _lib.check(lib.lmrt_device_count(code, ctypes.byref(n)))
    out = []
    for i in range(n.value):
        d = S.new(S.DeviceInfo, lib)
        _lib.check(lib.lmrt_device_get_info(code, i, ctypes.byref(d)))
        out.append(DeviceInfo(backend=backend, index=d.index, name=_s(d.name),
                              total_memory=d.total_memory, free_memory=d.free_memory,
                              description=_s(d.description)))
    return out


def _backend_code(backend, allow_auto=True):
    if allow_auto and backend in (None, "auto"):
        return 0
    try:
        return _BACKENDS[backend]
    except (KeyError, TypeError):
        raise InvalidArgument("backend must be %s, not %r" % (
            "'auto', 'cpu' or 'cuda'" if allow_auto else "'cpu' or 'cuda'", backend)) from None


class MetadataArray(collections.abc.Sequence):
    """A GGUF array value, read element by element on access (token lists can
    hold 128k strings). Compares equal to a list or tuple with the same items."""

    def __init__(self, model, key, elem_type, count):
        self._model, self._key, self._type, self._n = model, key, elem_type, count

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("metadata array index out of range")
        return self._model._meta_element(self._key, self._type, i)

    def __eq__(self, other):
        if isinstance(other, (list, tuple, MetadataArray)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self):
        head = ", ".join(repr(self[i]) for i in range(min(self._n, 8)))
        return "MetadataArray([%s%s], len=%d)" % (head, ", ..." if self._n > 8 else "", self._n)


class Metadata(collections.abc.Mapping):
    """The model's GGUF metadata, in file order: m.metadata["general.name"].
    Integers read as int, bools as bool, floats as float, strings as str and
    arrays as MetadataArray. format(key) renders any value as lmrt does."""

    def __init__(self, model):
        self._model = model

    def __getitem__(self, key):
        return self._model._meta_value(key)

    def __iter__(self):
        for i in range(self._model.info.n_metadata):
            yield self._model._meta_key(i)

    def __len__(self):
        return self._model.info.n_metadata

    def __contains__(self, key):
        try:
            self._model._meta_type(key)
        except KeyError:
            return False
        return True

    def type_of(self, key):
        """(LMRT_META_* type, element type or -1, count) of a key."""
        return self._model._meta_type(key)

    def format(self, key, max_elems=8):
        """The value as one line of text (lmrt_model_meta_format)."""
        return self._model._meta_format(key, max_elems)


class Model(Handle):
    """A loaded model. Model() is the built-in stories260K; Model(path) a GGUF
    file, with an optional projector GGUF for image/audio. Model.from_bytes(data)
    loads from memory. Use it as a context manager or call close()."""

    _free_name = "lmrt_model_free"
    _kind = "model"

    def __init__(self, path=None, projector=None, *, use_mmap=True):
        super().__init__()
        lib = _lib.lib()
        self._keep = None
        self._info = None
        params = self._params(lib, projector, use_mmap)
        h = ctypes.c_void_p()
        if path is None:
            _lib.check(lib.lmrt_model_load_builtin(ctypes.byref(params), ctypes.byref(h)))
        else:
            _lib.check(lib.lmrt_model_load(path_arg(path), ctypes.byref(params),
                                           ctypes.byref(h)))
        self._adopt(h)
        self.path = None if path is None else os.fspath(path)

    @classmethod
    def from_bytes(cls, data, projector=None):
        """Loads a GGUF image from memory. The bytes are kept alive by the model."""
        self = cls.__new__(cls)
        Handle.__init__(self)
        lib = _lib.lib()
        self._info = None
        keep = bytes(data)
        self._keep = keep
        params = self._params(lib, projector, True)
        h = ctypes.c_void_p()
        _lib.check(lib.lmrt_model_load_memory(keep, len(keep), ctypes.byref(params),
                                              ctypes.byref(h)))
        self._adopt(h)
        self.path = None
        return self

    def _params(self, lib, projector, use_mmap):
        params = S.new(S.ModelParams, lib)
        self._projector = None if projector is None else path_arg(projector, "projector")
        params.projector_path = self._projector
        params.use_mmap = bool(use_mmap)
        return params

    def _adopt(self, h):
        self._set(h.value)
        try:
            _lib.check_model_structs(self._h)
        except BaseException:
            self.close()
            raise

    # -- information -------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            c = S.new(S.ModelInfo, _lib.lib())
            self._call("lmrt_model_get_info", ctypes.byref(c))
            self._info = ModelInfo(
                architecture=_s(c.architecture), name=_s(c.name), file_type=_s(c.file_type),
                n_params=c.n_params, n_bytes=c.n_bytes, n_layer=c.n_layer, n_embd=c.n_embd,
                n_head=c.n_head, n_head_kv=c.n_head_kv, n_ff=c.n_ff, n_ctx_train=c.n_ctx_train,
                n_vocab=c.n_vocab, gguf_version=c.gguf_version, n_tensors=c.n_tensors,
                n_metadata=c.n_metadata, modalities=_modality_set(c.modalities))
        else:
            self._handle()
        return self._info

    @property
    def metadata(self) -> Metadata:
        self._handle()
        return Metadata(self)

    @property
    def tensors(self) -> List[TensorInfo]:
        lib = _lib.lib()
        out = []
        for i in range(self.info.n_tensors):
            t = S.new(S.TensorInfo, lib)
            self._call("lmrt_model_tensor_info", i, ctypes.byref(t))
            out.append(TensorInfo(name=_s(t.name), type_name=_s(t.type_name), type=t.type,
                                  dims=tuple(t.dims[:max(t.n_dims, 0)]), offset=t.offset,
                                  n_bytes=t.n_bytes))
        return out

    def capabilities(self, region=None) -> Capabilities:
        """What this model may do in `region` (ISO 3166-1 alpha-2, e.g. "DE"); None
        or "" is unknown and fails closed. A malformed code is InvalidArgument."""
        lib = _lib.lib()
        c = S.new(S.Capabilities, lib)
        r = None if region is None else text_arg(region, "region")
        self._call("lmrt_query_capabilities", r, ctypes.byref(c))
        return Capabilities._from_c(c)

    # -- metadata ------------------------------------------------------------

    def _meta_key(self, i):
        key = ctypes.c_char_p()
        self._call("lmrt_model_meta_key", i, ctypes.byref(key))
        return _s(key.value)

    def _meta_type(self, key):
        t, et, n = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int64()
        self._call("lmrt_model_meta_type", text_arg(key, "key"), ctypes.byref(t),
                   ctypes.byref(et), ctypes.byref(n))
        return t.value, et.value, n.value

    def _meta_value(self, key):
        t, et, n = self._meta_type(key)
        k = text_arg(key, "key")
        if t == _META_ARRAY:
            return MetadataArray(self, k, et, n)
        if t in _META_INT or t == _META_BOOL:
            v = ctypes.c_int64()
            self._call("lmrt_model_meta_int", k, ctypes.byref(v))
            return bool(v.value) if t == _META_BOOL else v.value
        if t in _META_FLOAT:
            v = ctypes.c_double()
            self._call("lmrt_model_meta_float", k, ctypes.byref(v))
            return v.value
        if t == _META_STRING:
            v = ctypes.c_char_p()
            self._call("lmrt_model_meta_string", k, ctypes.byref(v))
            return _s(v.value)
        return self._meta_format(key, 8)

    def _meta_element(self, k, elem_type, i):
        if elem_type in _META_INT or elem_type == _META_BOOL:
            v = ctypes.c_int64()
            self._call("lmrt_model_meta_array_int", k, i, ctypes.byref(v))
            return bool(v.value) if elem_type == _META_BOOL else v.value
        if elem_type in _META_FLOAT:
            v = ctypes.c_double()
            self._call("lmrt_model_meta_array_float", k, i, ctypes.byref(v))
            return v.value
        if elem_type == _META_STRING:
            p, n = ctypes.c_void_p(), ctypes.c_size_t()
            with self._lock:   # the bytes belong to the model: copy before it can go
                self._call("lmrt_model_meta_array_string", k, i, ctypes.byref(p),
                           ctypes.byref(n))
                return _s(ctypes.string_at(p.value, n.value) if n.value else b"")
        raise InvalidArgument("metadata %s: arrays of type %d cannot be read element-wise"
                              % (_s(k), elem_type))

    def _meta_format(self, key, max_elems):
        k = text_arg(key, "key")
        return _s(fill_buffer(lambda buf, cap, n: self._call_raw(
            "lmrt_model_meta_format", k, max_elems, buf, cap, n)))

    # -- tokens ------------------------------------------------------------------

    def tokenize(self, text, bos=True, special=False) -> List[int]:
        """Text to token ids. bos: prepend BOS when the vocabulary asks for it;
        special: "<|eot_id|>" in the text becomes that token."""
        b = text_arg(text)
        flags = (1 if bos else 0) | (2 if special else 0)
        n = ctypes.c_size_t()
        self._call("lmrt_tokenize", b, len(b), flags, None, 0, ctypes.byref(n))
        if n.value == 0:
            return []
        ids = (ctypes.c_int32 * n.value)()
        self._call("lmrt_tokenize", b, len(b), flags, ids, n.value, ctypes.byref(n))
        return list(ids[:n.value])

    def detokenize_bytes(self, ids, special=False) -> bytes:
        arr, n = ids_arg(ids)
        return fill_buffer(lambda buf, cap, out: self._call_raw(
            "lmrt_detokenize", arr, n, 1 if special else 0, buf, cap, out),
            first_cap=max(64, 16 * n + 1))

    def detokenize(self, ids, special=False) -> str:
        """Token ids to text (invalid UTF-8, such as half a character, becomes U+FFFD)."""
        return self.detokenize_bytes(ids, special).decode("utf-8", "replace")

    def special_token(self, which) -> Optional[int]:
        """The id of "bos", "eos", "eot" or "pad"; None when the vocabulary has none."""
        codes = {"bos": 0, "eos": 1, "eot": 2, "pad": 3}
        if which not in codes:
            raise InvalidArgument("special token must be one of %s, not %r"
                                  % (", ".join(codes), which))
        out = ctypes.c_int32()
        st = self._call_raw("lmrt_model_special_token", codes[which], ctypes.byref(out))
        if st == -6:  # LMRT_E_NOT_FOUND
            return None
        _lib.check(st)
        return out.value

    def is_eog(self, token) -> bool:
        """Whether a token ends generation (EOS, EOT, ...)."""
        arr, _ = ids_arg([token], "token")
        return bool(self._call_raw("lmrt_model_token_is_eog", arr[0]))

    def chat_format(self, messages, add_assistant=True) -> str:
        """A conversation [{"role": ..., "content": ...}] rendered in the model's
        chat format, as the session would feed it."""
        roles, contents = _messages(messages)
        ka, r = string_array(roles, "role")
        kb, c = string_array(contents, "content")
        return _s(fill_buffer(lambda buf, cap, n: self._call_raw(
            "lmrt_chat_format", r, c, len(roles), bool(add_assistant), buf, cap, n)))

    # -- sessions --------------------------------------------------------------

    def context(self, region=None, policy=None, backend="auto", device=0, threads=0):
        """A Context on this model (see lmrt.Context)."""
        from .session import Context
        return Context(self, region=region, policy=policy, backend=backend, device=device,
                       threads=threads)

    def session(self, region=None, n_ctx=0, threads=0, policy=None, *, backend="auto",
                device=0, keep_all_logits=False):
        """A new Session on a new Context of its own (closed with the session and
        its forks). region None is unknown: only what is licensed everywhere."""
        from .session import Session
        ctx = self.context(region=region, policy=policy, backend=backend, device=device,
                           threads=threads)
        try:
            return Session(ctx, n_ctx=n_ctx, keep_all_logits=keep_all_logits, _owns=True)
        except BaseException:
            ctx.close()
            raise

    def __repr__(self):
        if self.closed:
            return "<lmrt.Model closed>"
        i = self.info
        return "<lmrt.Model %s %r %s, %d params>" % (i.architecture, i.name, i.file_type,
                                                     i.n_params)


def _messages(messages):
    roles, contents = [], []
    if isinstance(messages, (str, bytes, dict)):
        raise InvalidArgument("messages must be a list of {'role': ..., 'content': ...}")
    for i, m in enumerate(messages):
        try:
            if isinstance(m, dict):
                role, content = m["role"], m["content"]
            else:
                role, content = m
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("message %d must be {'role': ..., 'content': ...} or a "
                                  "(role, content) pair, not %r" % (i, m)) from None
        roles.append(role)
        contents.append(content)
    return roles, contents
