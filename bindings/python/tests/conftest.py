"""Shared fixtures: the package under test, the meson build (for the C examples
the binding is compared with), the source tree (test data, scripts/lmrt_gguf.py)
and small hand-made GGUF files.

Run:  LMRT_BUILD_DIR=build /usr/bin/python3 -m pytest -v bindings/python/tests
(meson test --suite python sets LMRT_LIBRARY, LMRT_BUILD_DIR and PYTHONPATH).
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)                       # bindings/python
SOURCE_ROOT = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)
sys.path.insert(0, os.path.join(SOURCE_ROOT, "scripts"))

import lmrt  # noqa: E402
import lmrt_gguf as g  # noqa: E402

STORIES = os.path.join(SOURCE_ROOT, "lib", "model", "builtin", "stories260K.gguf")
DATA = os.path.join(SOURCE_ROOT, "tests", "data")


def small_model(multimodal=False, policy=None):
    """The hand-made GGUF of tests/examples/test_examples.py: enough to load and
    ask about capabilities, with vision and audio tensors when multimodal."""
    w = g.Writer()
    w.add_str("general.architecture", "llama")
    w.add_str("general.name", "tiny")
    w.add_u32("llama.block_count", 1)
    w.add_u32("llama.embedding_length", 32)
    w.add_array("tokenizer.ggml.tokens", g.STRING, ["<unk>", "<s>", "</s>", "a"])
    w.add_array("tokenizer.ggml.scores", g.FLOAT32, [0.0, 0.0, 0.0, -1.5])
    for key, values in (policy or {}).items():
        w.add_array(key, g.STRING, values)
    w.add_tensor("token_embd.weight", "F32", [32, 4], bytes(32 * 4 * 4))
    w.add_tensor("blk.0.attn_q.weight", "Q8_0", [32, 32], bytes(32 * 34))
    if multimodal:
        w.add_tensor("v.patch_embd.weight", "F16", [32, 2], bytes(32 * 2 * 2))
        w.add_tensor("a.conv1d.1.weight", "F16", [32, 2], bytes(32 * 2 * 2))
    return w.to_bytes()


@pytest.fixture(scope="session")
def build_dir():
    """The meson build directory whose library is under test (for its examples)."""
    d = os.environ.get("LMRT_BUILD_DIR")
    if not d:
        lib_path = os.path.realpath(lmrt.library_path())
        d = os.path.dirname(os.path.dirname(lib_path))
    if not os.path.isfile(os.path.join(d, "examples", "lmrt-generate")):
        pytest.skip("no meson build directory with examples/lmrt-generate (set LMRT_BUILD_DIR)")
    return d


@pytest.fixture
def model():
    with lmrt.Model() as m:
        yield m


@pytest.fixture
def tmp_gguf(tmp_path):
    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)
    return write
