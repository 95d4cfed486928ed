/* model.c - turn validated GGUF files into a model: architecture, hyperparameters,
 * modalities present and the model's own policy. Binds no tensors to a backend;
 * that happens per context, for the modalities the context is licensed for. */
#include "model/model.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "tensor/types.h"

/* general.file_type numbers as llama.cpp's converters write them. */
static const char *file_type_name(int64_t ftype)
{
    switch (ftype) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 19: return "IQ2_XXS";
    case 20: return "IQ2_XS";
    case 21: return "Q2_K_S";
    case 22: return "IQ3_XS";
    case 23: return "IQ3_XXS";
    case 24: return "IQ1_S";
    case 25: return "IQ4_NL";
    case 26: return "IQ3_S";
    case 27: return "IQ3_M";
    case 28: return "IQ2_S";
    case 29: return "IQ2_M";
    case 30: return "IQ4_XS";
    case 31: return "IQ1_M";
    case 32: return "BF16";
    }
    return "unknown";
}

/* Without general.file_type: the type of the largest share of 2-D weights. */
static const char *infer_file_type(const gguf_file *f)
{
    uint64_t bytes_by_type[GGML_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].n_dims >= 2 && f->tensors[i].type < GGML_TYPE_COUNT)
            bytes_by_type[f->tensors[i].type] += f->tensors[i].n_bytes;
    uint32_t best = GGML_TYPE_COUNT;
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++)
        if (bytes_by_type[t] && (best == GGML_TYPE_COUNT || bytes_by_type[t] > bytes_by_type[best]))
            best = t;
    return best == GGML_TYPE_COUNT ? "unknown" : tensor_type_name(best);
}

/* Reads "<arch>.<suffix>" as a positive int32 into *out; absent leaves *out as is. */
static lmrt_status read_hparam(const gguf_file *f, const char *arch, const char *suffix,
                               int32_t max, int32_t *out)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    lmrt_status st = gguf_get_int(f, key, &v);
    if (st == LMRT_E_NOT_FOUND)
        return LMRT_OK;
    if (st != LMRT_OK)
        return st;
    if (v <= 0 || v > max)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' = %" PRId64 " is outside 1..%d",
                         f->path, key, v, (int)max);
    *out = (int32_t)v;
    return LMRT_OK;
}

static lmrt_status read_hparam_float(const gguf_file *f, const char *arch, const char *suffix,
                                     float *out)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    lmrt_status st = gguf_get_float(f, key, &v);
    if (st == LMRT_E_NOT_FOUND)
        return LMRT_OK;
    if (st != LMRT_OK)
        return st;
    if (!(v > 0.0 && v < 1e30))
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' = %g is not a positive finite number",
                         f->path, key, v);
    *out = (float)v;
    return LMRT_OK;
}

static lmrt_status read_hparams(const gguf_file *f, const char *arch, llama_hparams *hp)
{
    lmrt_status st;
    const int32_t big = 1 << 24;
    if ((st = read_hparam(f, arch, "context_length", big, &hp->n_ctx_train)) ||
        (st = read_hparam(f, arch, "embedding_length", big, &hp->n_embd)) ||
        (st = read_hparam(f, arch, "block_count", 65536, &hp->n_layer)) ||
        (st = read_hparam(f, arch, "feed_forward_length", big, &hp->n_ff)) ||
        (st = read_hparam(f, arch, "attention.head_count", 65536, &hp->n_head)) ||
        (st = read_hparam(f, arch, "attention.head_count_kv", 65536, &hp->n_head_kv)) ||
        (st = read_hparam(f, arch, "rope.dimension_count", 65536, &hp->n_rot)) ||
        (st = read_hparam(f, arch, "vocab_size", INT32_MAX, &hp->n_vocab)))
        return st;
    hp->rms_eps = 1e-5f;
    hp->rope_freq_base = 10000.0f;
    if ((st = read_hparam_float(f, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) ||
        (st = read_hparam_float(f, arch, "rope.freq_base", &hp->rope_freq_base)))
        return st;
    if (hp->n_head && !hp->n_head_kv)
        hp->n_head_kv = hp->n_head;
    if (hp->n_head && hp->n_embd && !hp->n_rot)
        hp->n_rot = hp->n_embd / hp->n_head;

    /* mllama: vocab_size is the rows of output.weight (the logits), and the token
     * list is one longer (<|image|> = vocab_size, which only token_embd has). */
    bool vocab_key_wins = strcmp(arch, "mllama") == 0 && hp->n_vocab;
    const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
    if (tokens && !vocab_key_wins) {
        if (tokens->value.type != GGUF_TYPE_ARRAY ||
            tokens->value.v.arr.elem_type != GGUF_TYPE_STRING)
            return lmrt_fail(LMRT_E_FORMAT, "%s: key 'tokenizer.ggml.tokens' is not an array "
                             "of strings", f->path);
        if (tokens->value.v.arr.count > INT32_MAX)
            return lmrt_fail(LMRT_E_FORMAT, "%s: 'tokenizer.ggml.tokens' has %" PRIu64
                             " entries, more than lmrt supports", f->path,
                             tokens->value.v.arr.count);
        hp->n_vocab = (int32_t)tokens->value.v.arr.count;
    } else if (!tokens && !hp->n_vocab) {
        const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
        if (embd && embd->n_dims == 2 && embd->ne[1] <= INT32_MAX)
            hp->n_vocab = (int32_t)embd->ne[1];
    }
    return LMRT_OK;
}

static bool has_tensor_prefix(const gguf_file *f, const char *prefix)
{
    size_t n = strlen(prefix);
    for (uint64_t i = 0; f && i < f->n_tensors; i++)
        if (strncmp(f->tensors[i].name, prefix, n) == 0)
            return true;
    return false;
}

static bool key_is_true(const gguf_file *f, const char *key)
{
    bool b = false;
    return f && gguf_get_bool(f, key, &b) == LMRT_OK && b;
}

/* Modalities from tensors and keys: a decoder is text; encoder tensors in the
 * model or its projector file (llama.cpp mmproj "v."/"a.", mllama "v.") add
 * image or audio. */
static uint32_t detect_modalities(const gguf_file *f, const gguf_file *proj)
{
    uint32_t m = 0;
    if (gguf_find_tensor(f, "token_embd.weight") && has_tensor_prefix(f, "blk."))
        m |= LMRT_MODALITY_TEXT;
    if (has_tensor_prefix(f, "v.") || has_tensor_prefix(proj, "v.") ||
        key_is_true(f, "clip.has_vision_encoder") || key_is_true(proj, "clip.has_vision_encoder"))
        m |= LMRT_MODALITY_IMAGE;
    if (has_tensor_prefix(f, "a.") || has_tensor_prefix(proj, "a.") ||
        key_is_true(f, "clip.has_audio_encoder") || key_is_true(proj, "clip.has_audio_encoder"))
        m |= LMRT_MODALITY_AUDIO;
    return m;
}

/* FNV-1a 64 over the file's metadata and tensor table (everything before the
 * tensor data) and its size: cheap even for large models, and any change of
 * shape, type, vocabulary or layout changes it. */
static uint64_t header_hash(const gguf_file *f)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t end = f->data_offset < f->size ? f->data_offset : f->size;
    for (uint64_t i = 0; i < end; i++)
        h = (h ^ f->base[i]) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++)
        h = (h ^ ((f->size >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h;
}

static void count_params(const gguf_file *f, int64_t *n_params, int64_t *n_bytes)
{
    for (uint64_t i = 0; f && i < f->n_tensors; i++) {
        *n_params += f->tensors[i].n_elements;
        *n_bytes += (int64_t)f->tensors[i].n_bytes;
    }
}

static lmrt_status copy_meta_strings(model *m)
{
    const gguf_file *f = m->file;
    m->meta_strings = lmrt_calloc(f->n_kv ? f->n_kv : 1, sizeof *m->meta_strings);
    if (!m->meta_strings)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory copying metadata strings", f->path);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_value *v = &f->kv[i].value;
        if (v->type != GGUF_TYPE_STRING)
            continue;
        m->meta_strings[i] = lmrt_strndup(v->v.str.ptr, (size_t)v->v.str.len);
        if (!m->meta_strings[i])
            return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory copying metadata strings",
                             f->path);
    }
    return LMRT_OK;
}

static lmrt_status dup_meta_string(const gguf_file *f, const char *key, char **out)
{
    gguf_str s = {"", 0};
    lmrt_status st = gguf_get_str(f, key, &s);
    if (st != LMRT_OK && st != LMRT_E_NOT_FOUND)
        return st;
    *out = lmrt_strndup(s.ptr, (size_t)s.len);
    if (!*out)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory reading '%s'", f->path, key);
    return LMRT_OK;
}

lmrt_status model_open(gguf_file *file, gguf_file *projector, model **out)
{
    lmrt_status st;
    model *m = lmrt_calloc(1, sizeof *m);
    if (!m) {
        gguf_close(file);
        gguf_close(projector);
        return lmrt_fail(LMRT_E_NOMEM, "out of memory opening a model");
    }
    m->file = file;
    m->projector = projector;

    if ((st = dup_meta_string(file, "general.architecture", &m->architecture)) ||
        (st = dup_meta_string(file, "general.name", &m->name)) ||
        (st = copy_meta_strings(m)))
        goto fail;
    if (m->architecture[0] && (st = read_hparams(file, m->architecture, &m->hp)))
        goto fail;

    int64_t ftype;
    st = gguf_get_int(file, "general.file_type", &ftype);
    if (st == LMRT_OK)
        m->file_type = file_type_name(ftype);
    else if (st == LMRT_E_NOT_FOUND)
        m->file_type = infer_file_type(file);
    else
        goto fail;

    m->modalities = detect_modalities(file, projector);
    m->hash = header_hash(file);
    count_params(file, &m->n_params, &m->n_bytes);
    count_params(projector, &m->n_params, &m->n_bytes);

    if ((st = tokenizer_load(file, &m->tok)))
        goto fail;
    if ((st = policy_from_gguf(file, &m->policy)))
        goto fail;
    if (projector && (st = policy_from_gguf(projector, &m->projector_policy)))
        goto fail;
    *out = m;
    return LMRT_OK;
fail:
    model_close(m);
    return st;
}

void model_close(model *m)
{
    if (!m)
        return;
    tokenizer_free(m->tok);
    policy_layer_free(m->projector_policy);
    policy_layer_free(m->policy);
    if (m->meta_strings)
        for (uint64_t i = 0; i < m->file->n_kv; i++)
            lmrt_mem_free(m->meta_strings[i]);
    lmrt_mem_free(m->meta_strings);
    lmrt_mem_free(m->name);
    lmrt_mem_free(m->architecture);
    gguf_close(m->projector);
    gguf_close(m->file);
    lmrt_mem_free(m);
}
