"""Bad input gives a Python exception with the library's message, never a crash;
handles used after their model, context or session were closed raise InvalidState."""
import pathlib

import lmrt
import pytest

from conftest import STORIES, small_model

PROMPT = "Once upon a time"


def test_status_classes_have_stable_numbers():
    expected = {
        lmrt.InvalidArgument: -1, lmrt.OutOfMemory: -2, lmrt.IOError: -3,
        lmrt.FormatError: -4, lmrt.Unsupported: -5, lmrt.NotFound: -6, lmrt.NotLicensed: -7,
        lmrt.ContextFull: -8, lmrt.Aborted: -9, lmrt.BufferTooSmall: -10,
        lmrt.Mismatch: -11, lmrt.BackendError: -12, lmrt.InvalidState: -13,
        lmrt.InternalError: -14,
    }
    for cls, status in expected.items():
        assert issubclass(cls, lmrt.Error) and cls.status == status
        assert cls.name.startswith("LMRT_E_")
        assert cls(message="m").status == status
    assert lmrt.errors.error_for_status(-99, "future").status == -99


def test_bad_region_is_invalid_argument(model):
    for bad in ("DEU", "1A", "D", "d\u20ac"):
        with pytest.raises(lmrt.InvalidArgument) as e:
            model.capabilities(bad)
        assert "ISO 3166-1" in e.value.message
        assert e.value.status == -1 and isinstance(e.value, ValueError)
    with pytest.raises(lmrt.InvalidArgument):
        model.session(region="DEU")


def test_bad_path_is_an_io_error():
    with pytest.raises(lmrt.IOError) as e:
        lmrt.Model("/nonexistent/x.gguf")
    assert isinstance(e.value, OSError) and isinstance(e.value, lmrt.Error)
    assert e.value.status == -3 and "/nonexistent/x.gguf" in e.value.message
    assert "LMRT_E_IO" in str(e.value)


def test_bad_gguf_is_a_format_error(tmp_gguf):
    data = small_model(multimodal=True)
    for n in (0, 3, 4, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(lmrt.FormatError) as e:
            lmrt.Model(tmp_gguf("cut.gguf", data[:n]))
        assert e.value.message
    with pytest.raises(lmrt.FormatError):
        lmrt.Model.from_bytes(b"GGUF" + bytes(60))
    with pytest.raises(lmrt.IOError):
        lmrt.Model(STORIES, projector="/nonexistent/mmproj.gguf")


def test_bad_token_ids(model):
    s = model.session()
    for bad in ([-1], [512], [1, 2, 10 ** 6]):
        with pytest.raises(lmrt.InvalidArgument) as e:
            s.feed_tokens(bad)
        assert "token id" in e.value.message or "vocabulary" in e.value.message
    for bad in ([2 ** 40], ["a"], [1.5], "abc", 5):
        with pytest.raises(lmrt.InvalidArgument):
            s.feed_tokens(bad)
    with pytest.raises(lmrt.InvalidArgument):
        s.feed_tokens([])
    assert s.n_tokens == 0       # nothing was fed by the failed calls
    with pytest.raises(lmrt.Error):
        model.detokenize([10 ** 6])


def test_bad_arguments_in_python(model):
    s = model.session()
    with pytest.raises(lmrt.InvalidArgument):
        s.feed("a\0b")
    with pytest.raises(lmrt.InvalidArgument):
        s.feed(42)
    with pytest.raises(lmrt.InvalidArgument):
        s.generate(PROMPT, stop=[""])
    with pytest.raises(lmrt.InvalidArgument):
        s.generate(PROMPT, max_tokens=-1)
    with pytest.raises(lmrt.InvalidArgument):
        s.set_sampler(temprature=0)
    with pytest.raises(lmrt.InvalidArgument):
        s.chat("hello")
    with pytest.raises(lmrt.InvalidArgument):
        s.chat([{"role": "user"}])
    with pytest.raises(lmrt.InvalidArgument):
        lmrt.Context("not a model")
    with pytest.raises(lmrt.InvalidArgument):
        model.session(backend="tpu")
    with pytest.raises(lmrt.InvalidArgument):
        model.session(n_ctx=-5)
    with pytest.raises(lmrt.IOError):
        lmrt.Context(model, policy=pathlib.Path("/nonexistent/policy"))


def test_generating_before_feeding_starts_at_bos_but_next_token_needs_a_prompt(model):
    s = model.session()
    with pytest.raises(lmrt.InvalidState):
        s.next_token()
    with pytest.raises(lmrt.InvalidState):
        s.logits()


def test_context_full(model):
    s = model.session(n_ctx=8)
    with pytest.raises(lmrt.ContextFull):
        s.feed_tokens([1] + [300] * 8)
    s.feed_tokens([1, 300])
    gen = s.generate(max_tokens=20, temperature=0)
    with pytest.raises(lmrt.ContextFull):
        list(gen)
    assert len(gen.tokens) == 6 and gen.stop_reason == "error"


def test_session_after_model_closed_is_invalid_state_not_a_crash():
    m = lmrt.Model()
    s = m.session(region="US")
    s.feed(PROMPT)
    fork = s.fork()
    ctx = lmrt.Context(m)
    m.close()
    assert m.closed
    for call in (lambda: s.feed(" more"), lambda: s.next_token(),
                 lambda: list(s.generate(max_tokens=3)), lambda: fork.save(),
                 lambda: s.logits(), lambda: lmrt.Session(ctx), lambda: ctx.capabilities()):
        with pytest.raises(lmrt.InvalidState) as e:
            call()
        assert e.value.status == -13 and e.value.message
    for call in (lambda: m.info, lambda: m.tokenize("x"), lambda: m.session(),
                 lambda: m.metadata, lambda: m.capabilities("US")):
        with pytest.raises(lmrt.InvalidState):
            call()
    m.close()    # twice is fine
    s.close()
    fork.close()
    ctx.close()


def test_session_after_context_closed_and_after_its_own_close(model):
    ctx = lmrt.Context(model, region="US")
    s = lmrt.Session(ctx)
    s.feed(PROMPT)
    ctx.close()
    with pytest.raises(lmrt.InvalidState):
        s.next_token()
    s.close()
    with pytest.raises(lmrt.InvalidState) as e:
        s.feed("x")
    assert "closed" in e.value.message
    with pytest.raises(lmrt.InvalidState):
        s.fork()


def test_with_blocks_close_everything(model):
    with model.session() as s:
        s.feed(PROMPT)
        ctx = s.context
    assert s.closed and ctx.closed          # the session owned its context
    with lmrt.Context(model) as ctx:
        with ctx.session() as s:
            s.feed(PROMPT)
        assert not ctx.closed
    assert ctx.closed


def test_owned_context_lives_while_a_fork_does(model):
    s = model.session()
    s.feed(PROMPT)
    f = s.fork()
    s.close()
    assert not f.context.closed
    f.set_sampler(temperature=0)
    f.next_token()
    f.close()
    assert f.context.closed


def test_save_restore_round_trip(model):
    s = model.session(region="US")
    s.feed(PROMPT)
    s.set_sampler(temperature=0)
    blob = s.save()
    assert isinstance(blob, bytes) and len(blob) > 16
    first = "".join(s.generate(max_tokens=16))
    r = lmrt.Session.restore(s.context, blob)
    assert r.n_tokens == len(model.tokenize(PROMPT))
    again = r.generate(max_tokens=16, temperature=0)
    assert "".join(again) == first
    f = s.fork()
    assert f.n_tokens == s.n_tokens
    with pytest.raises(lmrt.FormatError):
        lmrt.Session.restore(s.context, blob[:-7] + b"garbage")
    with pytest.raises(lmrt.Error):
        lmrt.Session.restore(s.context, b"")


def test_restore_into_another_model_is_mismatch(model):
    with open(STORIES, "rb") as fh:
        data = bytearray(fh.read())
    at = data.index(b"general.name") + len(b"general.name") + 4 + 8   # key, type, length
    data[at] ^= 0x01            # another name, same shape: another model hash
    with lmrt.Model.from_bytes(bytes(data)) as other:
        s = model.session()
        s.feed(PROMPT)
        blob = s.save()
        with other.context() as ctx:
            with pytest.raises(lmrt.Mismatch) as e:
                lmrt.Session.restore(ctx, blob)
            assert "another model" in e.value.message


def test_media_on_a_text_model_is_an_error_not_a_crash(model, tmp_path):
    s = model.session(region="US")
    s.feed(PROMPT)
    with pytest.raises(lmrt.Error):
        s.feed_image(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(lmrt.Error):
        s.feed_image(str(tmp_path / "missing.png"))
    with pytest.raises(lmrt.Error):
        s.feed_audio_pcm([0.0] * 160, 16000)
    with pytest.raises(lmrt.InvalidArgument):
        s.feed_image_rgb(b"\0" * 5, 2, 2)
