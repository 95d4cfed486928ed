"""session.py - lmrt.Context and lmrt.Session: feeding text, tokens, chats and
media, sampling, streaming generation with stop strings, logits, saved state
and forks. A Session keeps its Context (and so its Model) alive on the Python
side; the C library keeps freed handles in memory for their users and answers
LMRT_E_INVALID_STATE, so a closed model under a live session is an error, never
a crash.
"""
import array
import codecs
import ctypes
import os
from typing import Iterator, List, NamedTuple, Optional

from . import _lib, _structs as S
from ._handle import Handle, ids_arg, path_arg, string_array, text_arg
from .errors import IOError as LmrtIOError, InvalidArgument, InvalidState
from .model import Capabilities, Model, _backend_code, _messages, _modality_set

STOP_REASONS = {0: None, 1: "eog", 2: "max_tokens", 3: "stop_string", 4: "callback"}
_BUFFER_TOO_SMALL = -10


class Context(Handle):
    """Execution resources for one model: backend and device, threads, and the
    caller's region with its licensing policy, fixed for the context's life.

    region: ISO 3166-1 alpha-2 ("US", "DE"); None is unknown, which licenses only
    what is licensed everywhere. policy: deployer policy text (doc/licensing.md)
    or an os.PathLike naming a file holding it; it can only narrow."""

    _free_name = "lmrt_context_free"
    _kind = "context"

    def __init__(self, model, region=None, policy=None, backend="auto", device=0, threads=0,
                 max_image_pixels=0, max_audio_samples=0):
        super().__init__()
        if not isinstance(model, Model):
            raise InvalidArgument("Context needs an lmrt.Model, not %s" % type(model).__name__)
        lib = _lib.lib()
        p = S.new(S.ContextParams, lib)
        self._region = None if region is None else text_arg(region, "region")
        if isinstance(policy, os.PathLike):
            try:
                with open(policy, "rb") as f:
                    policy = f.read()
            except OSError as e:
                raise LmrtIOError("policy file %s: %s" % (os.fspath(policy), e.strerror)) from e
        self._policy = None if policy is None else text_arg(policy, "policy")
        p.region, p.policy = self._region, self._policy
        p.backend = _backend_code(backend)
        p.device = _int32(device, "device")
        p.n_threads = _int32(threads, "threads")
        p.max_image_pixels = _int64(max_image_pixels, "max_image_pixels")
        p.max_audio_samples = _int64(max_audio_samples, "max_audio_samples")
        h = ctypes.c_void_p()
        model._call("lmrt_context_create", ctypes.byref(p), ctypes.byref(h))
        self._set(h.value)
        self.model = model          # keeps the Model object alive while we are
        self._users = 0             # sessions that own this context (Model.session)

    def capabilities(self) -> Capabilities:
        """Capabilities in this context's region, deployer policy applied."""
        c = S.new(S.Capabilities, _lib.lib())
        self._call("lmrt_context_capabilities", ctypes.byref(c))
        return Capabilities._from_c(c)

    def info(self):
        """What the context has bound so far: a dict with modalities_licensed and
        modalities_bound (sets of "text", "image", "audio") and tensors_bound per
        modality ({"text": n, "image": n, "audio": n})."""
        c = S.new(S.ContextInfo, _lib.lib())
        self._call("lmrt_context_get_info", ctypes.byref(c))
        return {"modalities_licensed": _modality_set(c.modalities_licensed),
                "modalities_bound": _modality_set(c.modalities_bound),
                "tensors_bound": {"text": c.tensors_bound[0], "image": c.tensors_bound[1],
                                  "audio": c.tensors_bound[2]},
                "backend": c.backend, "device": c.device, "n_threads": c.n_threads}

    def session(self, n_ctx=0, keep_all_logits=False):
        return Session(self, n_ctx=n_ctx, keep_all_logits=keep_all_logits)

    def _retain(self):
        with self._lock:
            self._users += 1

    def _drop(self):
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.close()

    def __repr__(self):
        return "<lmrt.Context %s>" % ("closed" if self.closed else
                                      "region=%r" % _decode(self._region))


def _decode(b):
    return None if b is None else b.decode("utf-8", "replace")


def _int32(v, what):
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise InvalidArgument("%s must be an int, not %r" % (what, v)) from None
    if not -(1 << 31) <= n < (1 << 31):
        raise InvalidArgument("%s = %d is out of range" % (what, n))
    return n


def _int64(v, what):
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise InvalidArgument("%s must be an int, not %r" % (what, v)) from None
    if not -(1 << 63) <= n < (1 << 63):
        raise InvalidArgument("%s = %d is out of range" % (what, n))
    return n


class Token(NamedTuple):
    """One generated token: its id, the text it completes (may be "" while a
    multi-byte character is pending, and is "" for end-of-generation tokens),
    and whether it ends generation."""
    id: int
    text: str
    eog: bool


_SAMPLER_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
                   "frequency_penalty", "presence_penalty", "seed")


class Session(Handle):
    """One conversation on a Context: token history, KV cache, sampler state.
    Used by one thread at a time (calls from several threads are serialized)."""

    _free_name = "lmrt_session_free"
    _kind = "session"

    def __init__(self, ctx, n_ctx=0, keep_all_logits=False, *, _owns=False, _handle=None):
        super().__init__()
        if not isinstance(ctx, Context):
            raise InvalidArgument("Session needs an lmrt.Context, not %s" % type(ctx).__name__)
        lib = _lib.lib()
        self.context = ctx
        self._owns = False
        self._sampler = S.new(S.SamplerParams, lib)
        self._text_cap = 256
        if _handle is None:
            p = S.new(S.SessionParams, lib)
            p.n_ctx = _int32(n_ctx, "n_ctx")
            p.keep_all_logits = bool(keep_all_logits)
            h = ctypes.c_void_p()
            ctx._call("lmrt_session_create", ctypes.byref(p), ctypes.byref(h))
            _handle = h.value
        self._set(_handle)
        if _owns:
            ctx._retain()
            self._owns = True

    @property
    def model(self) -> Model:
        return self.context.model

    def close(self):
        with self._lock:
            was_open = self._h is not None
            self._release()
            owns, self._owns = self._owns, False
        if owns and was_open:
            self.context._drop()

    # -- feeding ---------------------------------------------------------------

    def feed(self, text, bos=True, special=False):
        """Tokenizes and feeds text (BOS only when the session is empty)."""
        flags = (1 if bos else 0) | (2 if special else 0)
        self._call("lmrt_session_feed_text", text_arg(text), flags)
        return self

    def feed_tokens(self, ids):
        arr, n = ids_arg(ids)
        self._call("lmrt_session_feed_tokens", arr, n)
        return self

    def chat(self, messages, add_assistant=True):
        """Feeds [{"role": "user", "content": "..."}] in the model's chat format,
        opening the assistant's turn unless add_assistant is False."""
        roles, contents = _messages(messages)
        _, r = string_array(roles, "role")
        _, c = string_array(contents, "content")
        self._call("lmrt_session_feed_chat", r, c, len(roles), bool(add_assistant))
        return self

    def feed_image(self, image):
        """An image file (path) or encoded image bytes (PNG, PPM). The region
        policy is checked first: NotLicensed where images are withheld."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
            self._call("lmrt_session_feed_image_encoded", data, len(data))
        else:
            self._call("lmrt_session_feed_image_file", path_arg(image, "image"))
        return self

    def feed_image_rgb(self, rgb, width, height, row_stride=None):
        data = bytes(rgb)
        stride = 3 * int(width) if row_stride is None else int(row_stride)
        if int(height) > 0 and stride * (int(height) - 1) + 3 * int(width) > len(data):
            raise InvalidArgument("rgb holds %d bytes, too few for %dx%d with stride %d"
                                  % (len(data), width, height, stride))
        self._call("lmrt_session_feed_image_rgb", data, _int32(width, "width"),
                   _int32(height, "height"), stride)
        return self

    def feed_audio(self, audio):
        """A WAV file (path) or WAV bytes."""
        if isinstance(audio, (bytes, bytearray, memoryview)):
            data = bytes(audio)
            self._call("lmrt_session_feed_audio_encoded", data, len(data))
        else:
            self._call("lmrt_session_feed_audio_file", path_arg(audio, "audio"))
        return self

    def feed_audio_pcm(self, samples, sample_rate):
        """Mono float PCM (any sequence of floats) at `sample_rate` Hz."""
        pcm = array.array("f", samples)
        buf = (ctypes.c_float * max(len(pcm), 1)).from_buffer(pcm) if len(pcm) else None
        self._call("lmrt_session_feed_audio_pcm", buf, len(pcm), _int32(sample_rate, "rate"))
        return self

    def reset(self):
        """Forgets everything fed; keeps the sampler settings."""
        self._call("lmrt_session_reset")
        return self

    @property
    def n_tokens(self) -> int:
        n = ctypes.c_int64()
        self._call("lmrt_session_n_tokens", ctypes.byref(n))
        return n.value

    # -- sampling --------------------------------------------------------------

    def set_sampler(self, **params):
        """Changes sampler settings (temperature, top_k, top_p, min_p,
        repeat_penalty, repeat_last_n, frequency_penalty, presence_penalty,
        seed); the others keep their values. Restarts the random stream at seed."""
        with self._lock:
            p = S.SamplerParams.from_buffer_copy(self._sampler)
            for name, value in params.items():
                if name not in _SAMPLER_FIELDS:
                    raise InvalidArgument("unknown sampler setting %r (have %s)"
                                          % (name, ", ".join(_SAMPLER_FIELDS)))
                try:
                    setattr(p, name, value)
                except TypeError:
                    raise InvalidArgument("sampler setting %s=%r has the wrong type"
                                          % (name, value)) from None
                if name == "seed" and getattr(p, name) != value:
                    raise InvalidArgument("seed %r does not fit 64 bits" % (value,))
            self._call("lmrt_session_set_sampler", ctypes.byref(p))
            self._sampler = p
        return self

    @property
    def sampler(self) -> dict:
        return {name: getattr(self._sampler, name) for name in _SAMPLER_FIELDS}

    def next_token(self) -> Token:
        """Samples one token from the current logits and feeds it."""
        tok = ctypes.c_int32()
        n = ctypes.c_size_t()
        with self._lock:
            for _ in range(3):
                buf = ctypes.create_string_buffer(self._text_cap)
                st = self._call_raw("lmrt_session_next_token", ctypes.byref(tok), buf,
                                    self._text_cap, ctypes.byref(n))
                if st == _BUFFER_TOO_SMALL and n.value > self._text_cap:
                    self._text_cap = n.value       # nothing was sampled: ask again
                    continue
                _lib.check(st)
                break
            eog = self.model.is_eog(tok.value) if not n.value else False
        text = buf.raw[:n.value].decode("utf-8", "replace")
        return Token(tok.value, text, eog)

    def _next_raw(self):
        """(token id, bytes) of one step, for Generation."""
        tok = ctypes.c_int32()
        n = ctypes.c_size_t()
        with self._lock:
            while True:
                buf = ctypes.create_string_buffer(self._text_cap)
                st = self._call_raw("lmrt_session_next_token", ctypes.byref(tok), buf,
                                    self._text_cap, ctypes.byref(n))
                if st == _BUFFER_TOO_SMALL and n.value > self._text_cap:
                    self._text_cap = n.value
                    continue
                _lib.check(st)
                return tok.value, buf.raw[:n.value]

    def generate(self, prompt=None, max_tokens=256, temperature=None, top_k=None, top_p=None,
                 min_p=None, repeat_penalty=None, seed=None, stop=None, *, bos=True,
                 special=False, **more_sampling) -> "Generation":
        """Feeds `prompt` (if given) and returns an iterator over the generated
        text, piece by piece. Sampling settings that are given replace the
        session's (which start at lmrt's defaults: temperature 0.8, top_k 40,
        top_p 0.95, min_p 0.05, seed 0); temperature=0 is greedy. Generation
        stops at an end-of-generation token, after max_tokens tokens, or at the
        first stop string, whose text (and what follows) is not delivered, as
        lmrt_session_generate does. With nothing fed and no prompt it starts
        from BOS. The iterator's .tokens and .stop_reason tell what happened."""
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                        repeat_penalty=repeat_penalty, seed=seed, **more_sampling)
        sampling = {k: v for k, v in sampling.items() if v is not None}
        max_tokens = _int32(max_tokens, "max_tokens")
        if max_tokens < 0:
            raise InvalidArgument("max_tokens %d is negative" % max_tokens)
        if stop is None:
            stops = []
        elif isinstance(stop, (str, bytes)):
            stops = [stop]
        else:
            stops = list(stop)
        stops = [text_arg(s, "stop string") for s in stops]
        if any(not s for s in stops):
            raise InvalidArgument("a stop string is empty")
        with self._lock:
            if sampling:
                self.set_sampler(**sampling)
            if prompt is not None:
                self.feed(prompt, bos=bos, special=special)
            elif self.n_tokens == 0:
                bos_id = self.model.special_token("bos")
                if bos_id is None:
                    raise InvalidState("nothing has been fed and the model has no BOS token: "
                                       "give a prompt")
                self.feed_tokens([bos_id])
        return Generation(self, max_tokens, stops)

    # -- logits and state ------------------------------------------------------

    def logits(self, all_rows=False):
        """The logits of the last feed, copied: an array.array('f') of n_vocab
        floats for the last position, or with all_rows=True a list of them, one
        per fed position (needs keep_all_logits=True to hold more than one)."""
        p = ctypes.POINTER(ctypes.c_float)()
        rows, n_vocab = ctypes.c_int64(), ctypes.c_int32()
        with self._lock:
            self._call("lmrt_session_logits", ctypes.byref(p), ctypes.byref(rows),
                       ctypes.byref(n_vocab))
            n = n_vocab.value
            out = []
            first = 0 if all_rows else rows.value - 1
            for r in range(first, rows.value):
                a = array.array("f", bytes(4 * n))
                ctypes.memmove(a.buffer_info()[0], ctypes.addressof(p.contents) + 4 * n * r,
                               4 * n)
                out.append(a)
        return out if all_rows else out[0]

    def save(self) -> bytes:
        """The whole session (tokens, KV cache, sampler) as a compressed blob."""
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        with self._lock:
            self._call("lmrt_session_save", ctypes.byref(data), ctypes.byref(size))
            try:
                return ctypes.string_at(data.value, size.value)
            finally:
                _lib.lib().lmrt_free(data)

    @classmethod
    def restore(cls, ctx, blob) -> "Session":
        """A new session on `ctx` from save()'s blob. Another model's blob is
        Mismatch, a damaged one FormatError."""
        if not isinstance(ctx, Context):
            raise InvalidArgument("Session.restore needs an lmrt.Context, not %s"
                                  % type(ctx).__name__)
        data = bytes(blob)
        h = ctypes.c_void_p()
        ctx._call("lmrt_session_restore", data, len(data), ctypes.byref(h))
        return cls(ctx, _handle=h.value)

    def fork(self) -> "Session":
        """An independent copy of this session, on the same context."""
        h = ctypes.c_void_p()
        with self._lock:
            self._call("lmrt_session_fork", ctypes.byref(h))
            s = Session(self.context, _handle=h.value, _owns=self._owns)
            s._sampler = S.SamplerParams.from_buffer_copy(self._sampler)
        return s

    def capabilities(self) -> Capabilities:
        return self.context.capabilities()

    def __repr__(self):
        if self.closed:
            return "<lmrt.Session closed>"
        try:
            return "<lmrt.Session %d tokens>" % self.n_tokens
        except Exception:
            return "<lmrt.Session (unusable)>"


class Generation(Iterator[str]):
    """The iterator Session.generate returns: text pieces as they become safe to
    show. Text that could still become a stop string is held back until it
    cannot (the same rule, on the same bytes, as lmrt_session_generate).

    .tokens       ids generated so far (including a final end-of-generation token)
    .stop_reason  None while running, then "eog", "max_tokens", "stop_string"
                  or "closed" (close() before the end)
    """

    def __init__(self, session, max_tokens, stops):
        self._session = session
        self._left = max_tokens
        self._stops = stops
        self._held = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._error = None
        self.tokens: List[int] = []
        self.stop_reason: Optional[str] = None

    def __iter__(self):
        return self

    def _find_stop(self):
        best = -1
        for s in self._stops:
            at = self._held.find(s)
            if at >= 0 and (best < 0 or at < best):
                best = at
        return best

    def _releasable(self):
        keep = 0
        held = self._held
        for s in self._stops:
            for k in range(len(s) - 1, keep, -1):
                if k <= len(held) and held.endswith(s[:k]):
                    keep = k
                    break
        return len(held) - keep

    def _finish(self, reason):
        self.stop_reason = reason
        out = self._decoder.decode(self._held, final=True)
        self._held = b""
        return out

    def __next__(self) -> str:
        while True:
            if self.stop_reason is not None:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                raise StopIteration
            if self._left <= 0:
                piece = self._finish("max_tokens")
            else:
                try:
                    token, data = self._session._next_raw()
                except Exception as e:
                    # As lmrt_session_generate: text held back is delivered, then the error.
                    self._error = e
                    piece = self._finish("error")
                    if piece:
                        return piece
                    continue
                self._left -= 1
                self.tokens.append(token)
                if not data and self._session.model.is_eog(token):
                    piece = self._finish("eog")
                else:
                    self._held += data
                    at = self._find_stop()
                    if at >= 0:
                        self._held = self._held[:at]
                        piece = self._finish("stop_string")
                    else:
                        n = self._releasable()
                        piece = self._decoder.decode(self._held[:n])
                        self._held = self._held[n:]
            if piece:
                return piece

    def close(self):
        """Stops early (the tokens generated so far stay in the session)."""
        if self.stop_reason is None:
            self.stop_reason = "closed"
            self._held = b""

    def text(self) -> str:
        """Runs to the end and returns all the text."""
        return "".join(self)
