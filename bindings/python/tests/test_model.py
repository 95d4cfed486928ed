"""Models through the binding: info, metadata, tensors, tokens, capabilities."""
import lmrt
import lmrt_gguf as g
import pytest

from conftest import STORIES, small_model


def test_builtin_info_metadata_and_tensors(model):
    info = model.info
    assert info.architecture == "llama"
    assert info.n_vocab == 512 and info.n_tensors == 48 and info.n_metadata == 19
    assert info.modalities == {"text"}
    md = model.metadata
    assert len(md) == 19 and len(list(md)) == 19
    assert md["general.architecture"] == "llama"
    assert md["llama.block_count"] == info.n_layer
    assert "general.architecture" in md and "no.such.key" not in md
    assert md.get("no.such.key", 7) == 7
    ref = g.Reader(STORIES)
    tokens = md["tokenizer.ggml.tokens"]
    assert len(tokens) == 512 and tokens[1] == "<s>" and tokens[-1] == tokens[511]
    assert tokens[:3] == [t.decode() for t in ref.kv["tokenizer.ggml.tokens"][:3]]
    assert "llama" in md.format("general.architecture")
    tensors = model.tensors
    assert [t.name for t in tensors] == list(ref.tensors)
    for t in tensors:
        type_name, dims, _ = ref.tensors[t.name]
        assert (t.type_name, list(t.dims)) == (type_name, list(dims))


def test_missing_metadata_key_is_not_found_and_key_error(model):
    with pytest.raises(lmrt.NotFound) as e:
        model.metadata["no.such.key"]
    assert isinstance(e.value, KeyError) and e.value.status == -6
    assert "no.such.key" in e.value.message


def test_tokenize_detokenize_round_trip(model):
    ids = model.tokenize("Once upon a time")
    assert ids[0] == model.special_token("bos") == 1
    assert model.tokenize("Once upon a time", bos=False) == ids[1:]
    assert model.detokenize(ids[1:]).strip() == "Once upon a time"
    assert model.tokenize("") == [] or model.tokenize("", bos=False) == []
    assert model.is_eog(model.special_token("eos"))


def test_file_and_memory_loads_equal_the_builtin(model):
    with lmrt.Model(STORIES) as f:
        assert f.info == model.info
        assert f.path == STORIES
    with open(STORIES, "rb") as fh:
        data = fh.read()
    with lmrt.Model.from_bytes(data) as mem:
        assert mem.tokenize("Lily") == model.tokenize("Lily")


def test_capabilities_builtin_is_text_only_in_de(model):
    caps = model.capabilities("DE")
    assert caps.region == "DE" and caps.region_known and caps.region_in_eu
    assert caps.present == {"text"} and caps.licensed == {"text"}
    assert caps.withheld == {}
    assert caps.runtime.version == lmrt.library_version()
    assert "cpu" in caps.runtime.backends


def test_capabilities_multimodal_withheld_in_de_licensed_in_us(tmp_gguf):
    path = tmp_gguf("mm.gguf", small_model(multimodal=True))
    with lmrt.Model(path) as m:
        assert m.info.modalities == {"text", "image", "audio"}
        de = m.capabilities("de")
        assert de.region == "DE" and de.region_in_eu
        assert de.present == {"text", "image", "audio"}
        assert de.licensed == {"text"}
        assert set(de.withheld) == {"image", "audio"}
        assert de.withheld["audio"] == ("audio withheld in DE: multimodal models are not "
                                        "licensed in the European Union (default policy)")
        assert "image withheld in DE" in de.withheld["image"]
        us = m.capabilities("US")
        assert us.licensed == {"text", "image", "audio"} and us.withheld == {}
        unknown = m.capabilities(None)
        assert not unknown.region_known and unknown.licensed == {"text"}


def test_context_capabilities_apply_the_deployer_policy(tmp_gguf, tmp_path):
    path = tmp_gguf("mm.gguf", small_model(multimodal=True))
    policy = tmp_path / "deployer.policy"
    policy.write_text("allow image JP  # only Japan\n")
    with lmrt.Model(path) as m:
        with lmrt.Context(m, region="US", policy=policy) as ctx:
            caps = ctx.capabilities()
            assert caps.licensed == {"text", "audio"}
            assert "deployer policy" in caps.withheld["image"]
        with m.context(region="US", policy="deny audio ALL\n") as ctx:
            assert ctx.capabilities().licensed == {"text", "image"}


def test_devices_list_the_cpu():
    cpus = lmrt.devices("cpu")
    assert len(cpus) >= 1 and cpus[0].backend == "cpu" and cpus[0].index == 0
    assert isinstance(lmrt.devices("cuda"), list)
