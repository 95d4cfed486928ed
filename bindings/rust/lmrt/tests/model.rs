//! Models through the binding: info, metadata, tensors, tokens, capabilities.

mod common;

use lmrt::{ContextOptions, MetaValue, Modality, Model, SpecialToken, Status};

#[test]
fn builtin_info_metadata_and_tensors() {
    let m = Model::builtin().unwrap();
    let info = m.info().unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(
        (info.n_vocab, info.n_tensors, info.n_metadata),
        (512, 48, 19)
    );
    assert_eq!(info.modalities.names(), vec!["text"]);
    let keys = m.meta_keys().unwrap();
    assert_eq!(keys.len(), 19);
    assert_eq!(
        m.meta("general.architecture").unwrap(),
        MetaValue::String("llama".into())
    );
    assert_eq!(
        m.meta("llama.block_count").unwrap(),
        MetaValue::Int(info.n_layer as i64)
    );
    match m.meta("tokenizer.ggml.tokens").unwrap() {
        MetaValue::Array(v) => {
            assert_eq!(v.len(), 512);
            assert_eq!(v[1], MetaValue::String("<s>".into()));
        }
        other => panic!("{:?}", other),
    }
    assert!(m
        .meta_format("general.architecture", 8)
        .unwrap()
        .contains("llama"));
    let e = m.meta("no.such.key").unwrap_err();
    assert_eq!(e.status, Status::NotFound);
    assert!(e.message.contains("no.such.key"));
    let tensors = m.tensors().unwrap();
    assert_eq!(tensors.len(), 48);
    assert!(tensors
        .iter()
        .any(|t| t.name == "token_embd.weight" && t.dims == vec![64, 512]));
}

#[test]
fn tokenize_detokenize_round_trip() {
    let m = Model::builtin().unwrap();
    let ids = m.tokenize("Once upon a time", true, false).unwrap();
    assert_eq!(Some(ids[0]), m.special_token(SpecialToken::Bos).unwrap());
    assert_eq!(
        m.tokenize("Once upon a time", false, false).unwrap(),
        ids[1..].to_vec()
    );
    assert_eq!(m.detokenize(&ids[1..]).unwrap().trim(), "Once upon a time");
    assert!(m.is_eog(m.special_token(SpecialToken::Eos).unwrap().unwrap()));
}

#[test]
fn file_and_memory_loads_equal_the_builtin() {
    let b = Model::builtin().unwrap();
    let f = Model::load(common::stories()).unwrap();
    assert_eq!(f.info().unwrap(), b.info().unwrap());
    let mem = Model::from_bytes(std::fs::read(common::stories()).unwrap()).unwrap();
    assert_eq!(
        mem.tokenize("Lily", true, false).unwrap(),
        b.tokenize("Lily", true, false).unwrap()
    );
}

#[test]
fn capabilities_builtin_is_text_only_in_de() {
    let m = Model::builtin().unwrap();
    let caps = m.capabilities(Some("DE")).unwrap();
    assert_eq!(caps.region, "DE");
    assert!(caps.region_known && caps.region_in_eu);
    assert_eq!(caps.present.names(), vec!["text"]);
    assert_eq!(caps.licensed.names(), vec!["text"]);
    assert!(caps.withheld.is_empty());
    assert_eq!(caps.runtime.version, lmrt::version().unwrap());
    assert!(caps.runtime.backends.contains(&"cpu"));
}

#[test]
fn capabilities_multimodal_withheld_in_de_licensed_in_us() {
    let f = common::TempFile::new("mm.gguf", &common::small_model(true));
    let m = Model::load(&f.0).unwrap();
    assert_eq!(
        m.info().unwrap().modalities.names(),
        vec!["text", "image", "audio"]
    );
    let de = m.capabilities(Some("de")).unwrap();
    assert_eq!(de.region, "DE");
    assert_eq!(de.present.names(), vec!["text", "image", "audio"]);
    assert_eq!(de.licensed.names(), vec!["text"]);
    assert_eq!(
        de.withheld.keys().copied().collect::<Vec<_>>(),
        vec![Modality::Image, Modality::Audio]
    );
    assert_eq!(de.withheld[&Modality::Audio],
               "audio withheld in DE: multimodal models are not licensed in the European Union (default policy)");
    let us = m.capabilities(Some("US")).unwrap();
    assert_eq!(us.licensed.names(), vec!["text", "image", "audio"]);
    assert!(us.withheld.is_empty());
    let unknown = m.capabilities(None).unwrap();
    assert!(!unknown.region_known);
    assert_eq!(unknown.licensed.names(), vec!["text"]);
}

#[test]
fn context_capabilities_apply_the_deployer_policy() {
    let f = common::TempFile::new("mm2.gguf", &common::small_model(true));
    let m = Model::load(&f.0).unwrap();
    let ctx = m
        .context(
            &ContextOptions::new()
                .region("US")
                .policy("allow image JP  # only Japan\n"),
        )
        .unwrap();
    let caps = ctx.capabilities().unwrap();
    assert_eq!(caps.licensed.names(), vec!["text", "audio"]);
    assert!(caps.withheld[&Modality::Image].contains("deployer policy"));
}

#[test]
fn devices_list_the_cpu() {
    let cpus = lmrt::devices(lmrt::Backend::Cpu).unwrap();
    assert!(!cpus.is_empty());
    assert_eq!(cpus[0].index, 0);
    assert!(lmrt::devices(lmrt::Backend::Cuda).is_ok());
}
