/* model.h - a loaded model: its GGUF file(s), hyperparameters, modalities and own
 * licensing policy. Read-only after model_open(); shared by every context. */
#ifndef LMRT_MODEL_H
#define LMRT_MODEL_H

#include <stdint.h>

#include "format/gguf.h"
#include "policy/policy.h"
#include "tokenizer/tokenizer.h"

/* Decoder hyperparameters, from "<arch>.*" keys; zero where the file has none
 * (e.g. a vocabulary-only file). */
typedef struct llama_hparams {
    int32_t n_vocab;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    int32_t n_ctx_train;
    int32_t n_rot;               /* rope dimension count; head_dim when absent */
    float rms_eps;
    float rope_freq_base;
} llama_hparams;

typedef struct model {
    gguf_file *file;             /* the main GGUF */
    gguf_file *projector;        /* optional mmproj GGUF, or NULL */
    char *architecture;          /* general.architecture ("" when absent) */
    char *name;                  /* general.name ("" when absent) */
    const char *file_type;       /* from general.file_type, static storage */
    llama_hparams hp;
    uint32_t modalities;         /* LMRT_MODALITY_* */
    uint64_t hash;               /* identity for saved sessions: FNV-1a of the GGUF header */
    int64_t n_params;            /* over both files */
    int64_t n_bytes;
    policy_layer *policy;        /* the model's own lmrt.policy.* layer, or NULL */
    policy_layer *projector_policy;
    char **meta_strings;         /* [file->n_kv] NUL-terminated copies of STRING values */
    tokenizer *tok;              /* from tokenizer.ggml.*, or NULL */
} model;

/* Takes ownership of `file` and `projector` (may be NULL) on success and on failure. */
lmrt_status model_open(gguf_file *file, gguf_file *projector, model **out);
void model_close(model *m);

#endif
