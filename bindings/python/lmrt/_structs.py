"""_structs.py - the size-versioned structs of include/lmrt.h as ctypes Structures,
declared once, in the header's field order with its fixed-width types, and the
checks that prove at load time that they match the library that was loaded.

Why checks, and which: the C API has no sizeof query, and a struct declared
wrongly here would make the library read or write the wrong bytes. ctypes lays
fields out by the platform's C rules, so a correct declaration gets the C offsets;
what can go wrong is the declaration itself (a field missed, swapped or
mistyped) or a library whose structs differ. check_layouts() therefore proves,
against the library that was actually loaded:

1. Size handling (every struct with an *_init): init is called on a buffer of
   sizeof(ours) + GUARD bytes filled with a sentinel. The size field must read
   back sizeof(ours), every guard byte must be untouched (the library writes
   exactly `size` bytes, so our size_t and its agree), and no byte of the struct
   may still hold the sentinel (init wrote all of it).
2. Defaults at our offsets: each field is compared with the default the header
   documents (lmrt_sampler_params: temperature 0.8f, top_k 40, top_p 0.95f,
   min_p 0.05f, repeat_penalty 1, repeat_last_n 64, ...; lmrt_generate_params:
   max_tokens 256; lmrt_model_params: use_mmap true after a NULL projector_path).
   The non-zero defaults sit at distinct offsets, so a shifted, swapped or
   mistyped field reads the wrong number.
3. The library's own size of each output struct: output structs are filled
   "only as far as size reaches", so a probe with size = PROBE_SIZE over a
   sentinel buffer shows how many bytes the library writes, i.e. its sizeof
   (twice, with two sentinels, so a byte that happens to equal one sentinel is
   still seen). It must not be smaller than ours (a smaller one means fields we
   declared do not exist there), and the values must make sense at our offsets:
   lmrt_device_info of CPU device 0 says backend CPU, index 0 (checked at load);
   lmrt_capabilities carries lmrt_version() in `version`, after 1 KiB of other
   fields, and the region asked about in `region`; lmrt_model_info's n_tensors
   and n_metadata agree with the tensor table and the metadata keys (checked on
   the first model loaded, as they need one).

The tests add the exhaustive check a build machine can make: a C program
compiled against include/lmrt.h prints offsetof() of every field, and each must
equal ours (tests/test_layout.py).
"""
import ctypes
import math

c_size_t = ctypes.c_size_t
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p

MODALITY_SLOTS = 4

# Callback types (lmrt.h): typedef void (*lmrt_log_fn)(void *, int32_t, const char *);
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, ctypes.c_int32, c_char_p)
# typedef bool (*lmrt_token_fn)(void *user, int32_t token, const char *text, size_t len);
TOKEN_FN = ctypes.CFUNCTYPE(ctypes.c_bool, c_void_p, ctypes.c_int32,
                            ctypes.POINTER(ctypes.c_char), c_size_t)
# typedef bool (*lmrt_abort_fn)(void *user);
ABORT_FN = ctypes.CFUNCTYPE(ctypes.c_bool, c_void_p)


class DeviceInfo(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("backend", ctypes.c_int32),
        ("index", ctypes.c_int32),
        ("name", ctypes.c_char * 128),
        ("total_memory", ctypes.c_uint64),
        ("free_memory", ctypes.c_uint64),
        ("description", ctypes.c_char * 128),
    ]


class ModelParams(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("projector_path", c_char_p),
        ("use_mmap", ctypes.c_bool),
    ]


class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("architecture", c_char_p),
        ("name", c_char_p),
        ("file_type", c_char_p),
        ("n_params", ctypes.c_int64),
        ("n_bytes", ctypes.c_int64),
        ("n_layer", ctypes.c_int32),
        ("n_embd", ctypes.c_int32),
        ("n_head", ctypes.c_int32),
        ("n_head_kv", ctypes.c_int32),
        ("n_ff", ctypes.c_int32),
        ("n_ctx_train", ctypes.c_int32),
        ("n_vocab", ctypes.c_int32),
        ("gguf_version", ctypes.c_int32),
        ("n_tensors", ctypes.c_int64),
        ("n_metadata", ctypes.c_int64),
        ("modalities", ctypes.c_uint32),
    ]


class TensorInfo(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("name", c_char_p),
        ("type_name", c_char_p),
        ("type", ctypes.c_int32),
        ("n_dims", ctypes.c_int32),
        ("dims", ctypes.c_int64 * 4),
        ("offset", ctypes.c_uint64),
        ("n_bytes", ctypes.c_uint64),
    ]


class ContextParams(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("region", c_char_p),
        ("policy", c_char_p),
        ("backend", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("max_image_pixels", ctypes.c_int64),
        ("max_audio_samples", ctypes.c_int64),
    ]


class ContextInfo(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("modalities_licensed", ctypes.c_uint32),
        ("modalities_bound", ctypes.c_uint32),
        ("tensors_bound", ctypes.c_int64 * MODALITY_SLOTS),
        ("backend", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
    ]


class Capabilities(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("region", ctypes.c_char * 8),
        ("region_known", ctypes.c_bool),
        ("region_in_eu", ctypes.c_bool),
        ("modalities_present", ctypes.c_uint32),
        ("modalities_licensed", ctypes.c_uint32),
        ("withheld_reason", (ctypes.c_char * 256) * MODALITY_SLOTS),
        ("version", ctypes.c_char * 32),
        ("backends", ctypes.c_uint32),
        ("cpu_simd", ctypes.c_char * 64),
        ("n_cuda_devices", ctypes.c_int32),
    ]


class SessionParams(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("n_ctx", ctypes.c_int32),
        ("keep_all_logits", ctypes.c_bool),
    ]


class SamplerParams(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int32),
        ("frequency_penalty", ctypes.c_float),
        ("presence_penalty", ctypes.c_float),
        ("seed", ctypes.c_uint64),
    ]


class GenerateParams(ctypes.Structure):
    _fields_ = [
        ("size", c_size_t),
        ("max_tokens", ctypes.c_int32),
        ("stop", ctypes.POINTER(c_char_p)),
        ("n_stop", c_size_t),
        ("on_token", TOKEN_FN),
        ("should_abort", ABORT_FN),
        ("user", c_void_p),
    ]


# struct -> (C name, init function, documented defaults of every field).
# A float default is the float32 nearest the C literal (0.8f, not 0.8).
def _f32(x):
    return ctypes.c_float(x).value


STRUCTS = {
    DeviceInfo: ("lmrt_device_info", "lmrt_device_info_init",
                 {"backend": 0, "index": 0, "name": b"", "total_memory": 0, "free_memory": 0,
                  "description": b""}),
    ModelParams: ("lmrt_model_params", "lmrt_model_params_init",
                  {"projector_path": None, "use_mmap": True}),
    ModelInfo: ("lmrt_model_info", "lmrt_model_info_init",
                {"architecture": None, "name": None, "file_type": None, "n_params": 0,
                 "n_bytes": 0, "n_layer": 0, "n_embd": 0, "n_head": 0, "n_head_kv": 0,
                 "n_ff": 0, "n_ctx_train": 0, "n_vocab": 0, "gguf_version": 0, "n_tensors": 0,
                 "n_metadata": 0, "modalities": 0}),
    TensorInfo: ("lmrt_tensor_info", "lmrt_tensor_info_init",
                 {"name": None, "type_name": None, "type": 0, "n_dims": 0, "offset": 0,
                  "n_bytes": 0}),
    ContextParams: ("lmrt_context_params", "lmrt_context_params_init",
                    {"region": None, "policy": None, "backend": 0, "device": 0,
                     "n_threads": 0, "max_image_pixels": 0, "max_audio_samples": 0}),
    ContextInfo: ("lmrt_context_info", "lmrt_context_info_init",
                  {"modalities_licensed": 0, "modalities_bound": 0, "backend": 0,
                   "device": 0, "n_threads": 0}),
    Capabilities: ("lmrt_capabilities", "lmrt_capabilities_init",
                   {"region": b"", "region_known": False, "region_in_eu": False,
                    "modalities_present": 0, "modalities_licensed": 0, "version": b"",
                    "backends": 0, "cpu_simd": b"", "n_cuda_devices": 0}),
    SessionParams: ("lmrt_session_params", "lmrt_session_params_init",
                    {"n_ctx": 0, "keep_all_logits": False}),
    SamplerParams: ("lmrt_sampler_params", "lmrt_sampler_params_init",
                    {"temperature": _f32(0.8), "top_k": 40, "top_p": _f32(0.95),
                     "min_p": _f32(0.05), "repeat_penalty": 1.0, "repeat_last_n": 64,
                     "frequency_penalty": 0.0, "presence_penalty": 0.0, "seed": 0}),
    GenerateParams: ("lmrt_generate_params", "lmrt_generate_params_init",
                     {"max_tokens": 256, "n_stop": 0, "user": None}),
}

GUARD = 64           # sentinel bytes after the struct in the init probe
PROBE_SIZE = 4096    # `size` of the output-struct probe (the library caps at 64 KiB)
SENTINELS = (0xA5, 0x5A)


def new(struct_type, lib):
    """A struct prepared by its init function, as the header asks."""
    s = struct_type()
    getattr(lib, STRUCTS[struct_type][1])(ctypes.byref(s), ctypes.sizeof(s))
    return s


def _fail(cname, what):
    from .errors import LayoutError
    return LayoutError("struct %s: %s. The binding's declaration in lmrt/_structs.py does "
                       "not match the loaded library; use a binding built for it." % (cname, what))


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def check_init(struct_type, lib):
    """Checks 1 and 2 of the module comment for one struct."""
    cname, init_name, defaults = STRUCTS[struct_type]
    size = ctypes.sizeof(struct_type)
    buf = (ctypes.c_ubyte * (size + GUARD))(*([SENTINELS[0]] * (size + GUARD)))
    init = getattr(lib, init_name)
    init(ctypes.cast(buf, init.argtypes[0] if init.argtypes else ctypes.c_void_p), size)
    raw = bytes(buf)
    s = struct_type.from_buffer_copy(raw[:size])
    if s.size != size:
        raise _fail(cname, "%s(ptr, %d) stored size %d" % (init_name, size, s.size))
    if raw[size:] != bytes([SENTINELS[0]]) * GUARD:
        first = next(i for i in range(size, size + GUARD) if raw[i] != SENTINELS[0])
        raise _fail(cname, "%s(ptr, %d) wrote past the struct (byte %d changed)"
                    % (init_name, size, first))
    for name, _ in struct_type._fields_:
        field = getattr(struct_type, name)
        chunk = raw[field.offset:field.offset + field.size]
        if chunk == bytes([SENTINELS[0]]) * field.size:
            raise _fail(cname, "%s left field %s (offset %d) unwritten"
                        % (init_name, name, field.offset))
        value = getattr(s, name)
        if name not in defaults and isinstance(value, (ctypes._Pointer, ctypes._CFuncPtr)) \
                and value:
            raise _fail(cname, "pointer field %s at offset %d is not NULL after %s"
                        % (name, field.offset, init_name))
        if name in defaults and not _same(value, defaults[name]):
            raise _fail(cname, "field %s at offset %d reads %r after %s, expected the "
                        "default %r" % (name, field.offset, getattr(s, name), init_name,
                                        defaults[name]))


def probe_out(struct_type, lib, call):
    """Check 3: `call(ptr)` fills an output struct whose size field says
    PROBE_SIZE. Returns (struct as ours, the library's sizeof), or raises
    LayoutError when the library's struct is smaller than ours. `call` returns the
    lmrt_status; a failure returns (None, None) and leaves the judgement to later."""
    cname = STRUCTS[struct_type][0]
    size = ctypes.sizeof(struct_type)
    images = []
    for sentinel in SENTINELS:
        buf = (ctypes.c_ubyte * PROBE_SIZE)(*([sentinel] * PROBE_SIZE))
        ctypes.memmove(buf, ctypes.byref(c_size_t(PROBE_SIZE)), ctypes.sizeof(c_size_t))
        if call(ctypes.cast(buf, ctypes.POINTER(struct_type))) != 0:
            return None, None
        images.append(bytes(buf))
    touched = [i for i in range(PROBE_SIZE)
               if images[0][i] != SENTINELS[0] or images[1][i] != SENTINELS[1]]
    align = ctypes.alignment(struct_type)
    lib_size = -(-(touched[-1] + 1) // align) * align if touched else 0
    if lib_size < size:
        raise _fail(cname, "the library fills %d bytes, the binding declares %d"
                    % (lib_size, size))
    if lib_size >= PROBE_SIZE:
        raise _fail(cname, "the library wrote all %d bytes of a probe" % PROBE_SIZE)
    return struct_type.from_buffer_copy(images[0][:size]), lib_size


def check_device_info(lib):
    """Check 3 for lmrt_device_info: CPU device 0 must say backend CPU, index 0."""
    s, lib_size = probe_out(DeviceInfo, lib,
                            lambda p: lib.lmrt_device_get_info(1, 0, p))
    if s is None:
        return None
    if s.size != PROBE_SIZE:
        raise _fail("lmrt_device_info", "size field reads %d" % s.size)
    if s.backend != 1 or s.index != 0:
        raise _fail("lmrt_device_info", "CPU device 0 reads backend %d, index %d at the "
                    "declared offsets" % (s.backend, s.index))
    if s.total_memory and s.free_memory > s.total_memory:
        raise _fail("lmrt_device_info", "free_memory %d > total_memory %d"
                    % (s.free_memory, s.total_memory))
    return lib_size


def check_model_structs(lib, model_handle):
    """Check 3 for the structs that need a model. Returns {C name: library sizeof}."""
    sizes = {}
    info, sizes["lmrt_model_info"] = probe_out(
        ModelInfo, lib, lambda p: lib.lmrt_model_get_info(model_handle, p))
    if info is None:
        return sizes
    key = c_char_p()
    n_meta = 0
    while n_meta <= info.n_metadata and \
            lib.lmrt_model_meta_key(model_handle, n_meta, ctypes.byref(key)) == 0:
        n_meta += 1
    if n_meta != info.n_metadata:
        raise _fail("lmrt_model_info", "n_metadata reads %d but the model has %d keys"
                    % (info.n_metadata, n_meta))
    if info.n_tensors > 0:
        last = info.n_tensors - 1
        t, sizes["lmrt_tensor_info"] = probe_out(
            TensorInfo, lib, lambda p: lib.lmrt_model_tensor_info(model_handle, last, p))
        probe = new(TensorInfo, lib)
        if t is None or lib.lmrt_model_tensor_info(model_handle, last + 1,
                                                   ctypes.byref(probe)) == 0:
            raise _fail("lmrt_model_info", "n_tensors reads %d, which does not match the "
                        "tensor table" % info.n_tensors)
        if not t.name or not 1 <= t.n_dims <= 4 or any(d < 1 for d in t.dims):
            raise _fail("lmrt_tensor_info", "tensor %d reads name %r, n_dims %d, dims %r"
                        % (last, t.name, t.n_dims, list(t.dims)))
    caps, sizes["lmrt_capabilities"] = probe_out(
        Capabilities, lib, lambda p: lib.lmrt_query_capabilities(model_handle, b"us", p))
    if caps is not None:
        version = lib.lmrt_version()
        if caps.version != version or caps.region != b"US":
            raise _fail("lmrt_capabilities", "version reads %r (library %r), region %r "
                        "(asked 'us')" % (caps.version, version, caps.region))
        if caps.modalities_present != info.modalities or not caps.backends & 1:
            raise _fail("lmrt_capabilities", "modalities_present %#x (model info says %#x), "
                        "backends %#x" % (caps.modalities_present, info.modalities,
                                          caps.backends))
    return sizes


def check_layouts(lib):
    """Checks 1 and 2 for every struct, 3 for lmrt_device_info. Returns the
    library sizes found so far ({C name: sizeof})."""
    for struct_type in STRUCTS:
        check_init(struct_type, lib)
    sizes = {}
    dev = check_device_info(lib)
    if dev is not None:
        sizes["lmrt_device_info"] = dev
    return sizes
