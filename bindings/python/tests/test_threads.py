"""Threads and the log callback: sessions of one model run in parallel threads
(ctypes releases the GIL in C calls), calls on one session from several
threads are serialized, and log messages reach a Python callback."""
import threading

import lmrt

PROMPT = "Once upon a time"


def test_sessions_run_in_parallel_threads_on_one_model(model):
    ctx = lmrt.Context(model, threads=1)
    results, errors = [], []

    def work():
        try:
            with ctx.session() as s:
                results.append("".join(s.generate(PROMPT, max_tokens=16, temperature=0)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and len(set(results)) == 1
    ctx.close()


def test_one_session_used_from_several_threads_is_serialized(model):
    s = model.session()
    s.feed(PROMPT)
    s.set_sampler(temperature=0)
    tokens = []

    def step():
        for _ in range(5):
            tokens.append(s.next_token().id)

    threads = [threading.Thread(target=step) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == 15
    assert s.n_tokens == len(model.tokenize(PROMPT)) + 15


def test_close_from_another_thread_waits_and_then_fails_cleanly(model):
    s = model.session()
    s.feed(PROMPT)
    t = threading.Thread(target=s.close)
    t.start()
    t.join()
    try:
        s.next_token()
    except lmrt.InvalidState:
        pass
    else:  # pragma: no cover
        raise AssertionError("a closed session answered")


def test_log_callback_receives_messages():
    seen = []
    lmrt.set_log_callback(lambda level, msg: seen.append((level, msg)), lmrt.LOG_DEBUG)
    try:
        with lmrt.Model() as m:
            m.session(n_ctx=1 << 20).close()    # more than the model's: a warning
    finally:
        lmrt.set_log_callback(None)
    assert any(level <= lmrt.LOG_INFO for level, _ in seen), seen
    assert any("n_ctx" in msg for _, msg in seen), seen


def test_log_callback_exceptions_do_not_unwind_into_c(capsys):
    def bad(level, msg):
        raise RuntimeError("callback trouble")
    lmrt.set_log_callback(bad, lmrt.LOG_DEBUG)
    try:
        with lmrt.Model():
            pass
    finally:
        lmrt.set_log_callback(None)
    assert "callback trouble" in capsys.readouterr().err
