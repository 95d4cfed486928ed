/* test_gguf.c - GGUF reader tests: the real files load (mmap, read() and memory), a
 * generated file round-trips every value type, and every broken variant of it -
 * each truncation, each bad field, each failing allocation - is a clean error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf.h"
#include "gguf_writer.h"
#include "tensor/types.h"

#define STORIES_PATH LMRT_SOURCE_ROOT "/lib/model/builtin/stories260K.gguf"
#define VOCAB_BPE_PATH LMRT_SOURCE_ROOT "/tests/data/ggml-vocab-llama-bpe.gguf"
#define VOCAB_SPM_PATH LMRT_SOURCE_ROOT "/tests/data/ggml-vocab-llama-spm.gguf"

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static uint8_t *read_whole_file(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

/* A temporary file path; the caller unlinks it. */
static void temp_path(char *buf, size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, cap, "%s/lmrt_test_gguf_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(buf);
    assert_true(fd >= 0);
    close(fd);
}

static bool str_eq(gguf_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static bool mentions(const char *needle)
{
    if (strstr(lmrt_last_error(), needle))
        return true;
    print_error("message \"%s\" does not mention \"%s\"\n", lmrt_last_error(), needle);
    return false;
}

/* Parses an exactly-sized heap copy, so that ASan sees any read past the end. */
static lmrt_status parse_copy(const uint8_t *bytes, size_t size, gguf_file **out)
{
    uint8_t *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size)
        memcpy(copy, bytes, size);
    lmrt_status st = gguf_open_memory(size ? copy : NULL, size, "broken.gguf", out);
    if (st == LMRT_OK)
        gguf_close(*out);
    free(copy);
    return st;
}

/* bytes[0, size) must be rejected with LMRT_E_FORMAT, a message naming the
 * file and an offset, and `needle` (if any); out stays untouched. */
static void assert_format_error(const uint8_t *bytes, size_t size, const char *needle)
{
    gguf_file *f = (gguf_file *)&f;   /* a sentinel that must survive */
    lmrt_status st = parse_copy(bytes, size, &f);
    if (st != LMRT_E_FORMAT)
        print_error("size %zu: status %s, message \"%s\"\n", size, lmrt_status_str(st),
                    lmrt_last_error());
    assert_int_equal(st, LMRT_E_FORMAT);
    assert_ptr_equal(f, (gguf_file *)&f);
    assert_true(mentions("broken.gguf: offset "));
    if (needle)
        assert_true(mentions(needle));
}

/* Finishes and frees `w`, then asserts the file is a format error. */
static void assert_writer_rejected(gguf_writer *w, const char *needle)
{
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);
    assert_format_error(bytes, size, needle);
    free(bytes);
}

/* ------------------------------------------------------------------------ */
/* the sample file: every value type, arrays of numbers and strings, three tensors */
/* ------------------------------------------------------------------------ */

static const int32_t sample_i32s[] = {1, -2, 3, INT32_MIN, INT32_MAX};
static const float sample_f32s[] = {0.5f, -1.25f, 3e38f};
static const bool sample_bools[] = {true, false, true};
static const uint64_t sample_u64s[] = {0, UINT64_MAX};
static const char *const sample_strs[] = {"alpha", "", "gamma with spaces", "\xce\xbb"};

static void add_sample_kvs(gguf_writer *w)
{
    gw_kv_str(w, "general.architecture", "llama");
    gw_kv_u8(w, "t.u8", 200);
    gw_kv_i8(w, "t.i8", -100);
    gw_kv_u16(w, "t.u16", 60000);
    gw_kv_i16(w, "t.i16", -30000);
    gw_kv_u32(w, "t.u32", 4000000000u);
    gw_kv_i32(w, "t.i32", -2000000000);
    gw_kv_f32(w, "t.f32", 1.5f);
    gw_kv_bool(w, "t.bool", true);
    gw_kv_u64(w, "t.u64", UINT64_MAX);
    gw_kv_i64(w, "t.i64", INT64_MIN);
    gw_kv_f64(w, "t.f64", -2.25);
    gw_kv_strn(w, "t.bytes", "a\0b", 3);
    gw_kv_arr(w, "t.arr_i32", GGUF_TYPE_INT32, sample_i32s, 5);
    gw_kv_arr(w, "t.arr_f32", GGUF_TYPE_FLOAT32, sample_f32s, 3);
    gw_kv_arr(w, "t.arr_bool", GGUF_TYPE_BOOL, sample_bools, 3);
    gw_kv_arr(w, "t.arr_u64", GGUF_TYPE_UINT64, sample_u64s, 2);
    gw_kv_arr(w, "t.arr_empty", GGUF_TYPE_UINT8, NULL, 0);
    gw_kv_arr_str(w, "t.arr_str", sample_strs, 4);
    gw_kv_arr_str(w, "t.arr_str_empty", NULL, 0);
}

static void add_sample_tensors(gguf_writer *w)
{
    gw_tensor(w, "tok.f32", GGML_TYPE_F32, 2, (const int64_t[]){8, 3}, NULL);
    gw_tensor(w, "blk.0.q4_0", GGML_TYPE_Q4_0, 2, (const int64_t[]){64, 2}, NULL);
    gw_tensor(w, "blk.0.f16", GGML_TYPE_F16, 3, (const int64_t[]){16, 1, 2}, NULL);
}

static gguf_writer *sample_writer(void)
{
    gguf_writer *w = gw_new();
    add_sample_kvs(w);
    add_sample_tensors(w);
    return w;
}

static uint8_t *sample_bytes(size_t *size)
{
    gguf_writer *w = sample_writer();
    uint8_t *bytes = gw_finish(w, size);
    gw_free(w);
    return bytes;
}

/* A writer with a little valid metadata, ready for one broken addition. */
static gguf_writer *base_writer(void)
{
    gguf_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "llama");
    gw_kv_u32(w, "llama.block_count", 2);
    return w;
}

static void check_sample(const gguf_file *f)
{
    int64_t i;
    double d;
    bool b;
    gguf_str s;

    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_kv, 20);
    assert_int_equal(f->n_tensors, 3);
    assert_int_equal(f->alignment, 32);
    assert_int_equal(f->data_offset % 32, 0);

    assert_int_equal(gguf_get_str(f, "general.architecture", &s), LMRT_OK);
    assert_true(str_eq(s, "llama"));
    assert_int_equal(gguf_get_int(f, "t.u8", &i), LMRT_OK);
    assert_int_equal(i, 200);
    assert_int_equal(gguf_get_int(f, "t.i8", &i), LMRT_OK);
    assert_int_equal(i, -100);
    assert_int_equal(gguf_get_int(f, "t.u16", &i), LMRT_OK);
    assert_int_equal(i, 60000);
    assert_int_equal(gguf_get_int(f, "t.i16", &i), LMRT_OK);
    assert_int_equal(i, -30000);
    assert_int_equal(gguf_get_int(f, "t.u32", &i), LMRT_OK);
    assert_int_equal(i, 4000000000);
    assert_int_equal(gguf_get_int(f, "t.i32", &i), LMRT_OK);
    assert_int_equal(i, -2000000000);
    assert_int_equal(gguf_get_int(f, "t.i64", &i), LMRT_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(gguf_get_float(f, "t.f32", &d), LMRT_OK);
    assert_true(d == 1.5);
    assert_int_equal(gguf_get_float(f, "t.f64", &d), LMRT_OK);
    assert_true(d == -2.25);
    assert_int_equal(gguf_get_bool(f, "t.bool", &b), LMRT_OK);
    assert_true(b);
    assert_int_equal(gguf_get_str(f, "t.bytes", &s), LMRT_OK);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "a\0b", 3);
    const gguf_kv *u64 = gguf_find(f, "t.u64");
    assert_non_null(u64);
    assert_int_equal(u64->value.type, GGUF_TYPE_UINT64);
    assert_true(u64->value.v.u64 == UINT64_MAX);

    const gguf_kv *kv = gguf_find(f, "t.arr_i32");
    assert_non_null(kv);
    assert_int_equal(kv->value.type, GGUF_TYPE_ARRAY);
    assert_int_equal(kv->value.v.arr.elem_type, GGUF_TYPE_INT32);
    assert_int_equal(kv->value.v.arr.count, 5);
    assert_null(kv->value.v.arr.strs);
    for (uint64_t k = 0; k < 5; k++) {
        assert_int_equal(gguf_array_int(&kv->value, k), sample_i32s[k]);
        assert_true(gguf_array_float(&kv->value, k) == sample_i32s[k]);
    }
    kv = gguf_find(f, "t.arr_f32");
    assert_non_null(kv);
    for (uint64_t k = 0; k < 3; k++)
        assert_true(gguf_array_float(&kv->value, k) == sample_f32s[k]);
    assert_int_equal(gguf_array_int(&kv->value, 1), -1);           /* truncates toward 0 */
    assert_true(gguf_array_int(&kv->value, 2) == INT64_MAX);       /* 3e38 saturates */
    kv = gguf_find(f, "t.arr_bool");
    assert_non_null(kv);
    for (uint64_t k = 0; k < 3; k++)
        assert_int_equal(gguf_array_int(&kv->value, k), sample_bools[k]);
    kv = gguf_find(f, "t.arr_u64");
    assert_non_null(kv);
    assert_int_equal(gguf_array_int(&kv->value, 0), 0);
    assert_true(gguf_array_int(&kv->value, 1) == INT64_MAX);       /* saturates */
    assert_true(gguf_array_float(&kv->value, 1) == 18446744073709551615.0);
    kv = gguf_find(f, "t.arr_empty");
    assert_non_null(kv);
    assert_int_equal(kv->value.v.arr.count, 0);
    kv = gguf_find(f, "t.arr_str");
    assert_non_null(kv);
    assert_int_equal(kv->value.v.arr.elem_type, GGUF_TYPE_STRING);
    assert_int_equal(kv->value.v.arr.count, 4);
    assert_non_null(kv->value.v.arr.strs);
    for (uint64_t k = 0; k < 4; k++)
        assert_true(str_eq(kv->value.v.arr.strs[k], sample_strs[k]));
    kv = gguf_find(f, "t.arr_str_empty");
    assert_non_null(kv);
    assert_int_equal(kv->value.v.arr.count, 0);

    /* kv offsets point at each key's length field, in file order */
    assert_int_equal(f->kv[0].offset, 24);
    for (uint64_t k = 0; k < f->n_kv; k++) {
        uint64_t len = 0;
        memcpy(&len, f->base + f->kv[k].offset, 8);
        assert_int_equal(len, strlen(f->kv[k].key));
        assert_memory_equal(f->base + f->kv[k].offset + 8, f->kv[k].key, len);
    }

    static const struct {
        const char *name;
        uint32_t type, n_dims;
        int64_t ne[4];
        uint64_t n_bytes;
    } want[] = {
        {"tok.f32", GGML_TYPE_F32, 2, {8, 3, 1, 1}, 8 * 3 * 4},
        {"blk.0.q4_0", GGML_TYPE_Q4_0, 2, {64, 2, 1, 1}, 4 * 18},
        {"blk.0.f16", GGML_TYPE_F16, 3, {16, 1, 2, 1}, 32 * 2},
    };
    for (uint64_t k = 0; k < 3; k++) {
        const gguf_tensor *t = &f->tensors[k];
        assert_string_equal(t->name, want[k].name);
        assert_ptr_equal(gguf_find_tensor(f, want[k].name), t);
        assert_int_equal(t->type, want[k].type);
        assert_int_equal(t->n_dims, want[k].n_dims);
        assert_memory_equal(t->ne, want[k].ne, sizeof t->ne);
        assert_int_equal(t->n_elements, want[k].ne[0] * want[k].ne[1] * want[k].ne[2]);
        assert_int_equal(t->n_bytes, want[k].n_bytes);
        assert_int_equal(t->offset % 32, 0);
        assert_ptr_equal(t->data, f->base + f->data_offset + t->offset);
        /* the writer's pattern: byte i of tensor k (1-based) is i * 7 + k */
        for (uint64_t j = 0; j < t->n_bytes; j++)
            assert_int_equal(t->data[j], (uint8_t)(j * 7 + k + 1));
    }
    assert_ptr_equal(f->tensors[2].data + f->tensors[2].n_bytes, f->base + f->size);
    assert_null(gguf_find_tensor(f, "missing"));
    assert_null(gguf_find(f, "missing"));
}

/* ------------------------------------------------------------------------ */
/* the real files                                                           */
/* ------------------------------------------------------------------------ */

static void check_stories(const gguf_file *f)
{
    int64_t i;
    double d;
    gguf_str s;
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_kv, 19);
    assert_int_equal(f->n_tensors, 48);
    assert_int_equal(f->size, 1185376);
    assert_int_equal(gguf_get_int(f, "llama.block_count", &i), LMRT_OK);
    assert_int_equal(i, 5);
    assert_int_equal(gguf_get_int(f, "llama.embedding_length", &i), LMRT_OK);
    assert_int_equal(i, 64);
    assert_int_equal(gguf_get_int(f, "llama.feed_forward_length", &i), LMRT_OK);
    assert_int_equal(i, 172);
    assert_int_equal(gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &d), LMRT_OK);
    assert_true(d == (double)1e-5f);
    assert_int_equal(gguf_get_str(f, "general.architecture", &s), LMRT_OK);
    assert_true(str_eq(s, "llama"));
    const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
    assert_non_null(tokens);
    assert_int_equal(tokens->value.v.arr.count, 512);
    assert_true(str_eq(tokens->value.v.arr.strs[1], "<s>"));

    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, GGML_TYPE_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    assert_int_equal(t->n_bytes, 64 * 512 * 4);
    assert_non_null(gguf_find_tensor(f, "blk.4.ffn_norm.weight"));
    const gguf_tensor *last = &f->tensors[f->n_tensors - 1];
    assert_true(last->data + last->n_bytes <= f->base + f->size);
}

static void stories260k_loads_with_mmap(void **state)
{
    (void)state;
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(STORIES_PATH, true, &f), LMRT_OK);
    assert_non_null(f->map);
    assert_null(f->heap);
    check_stories(f);
    gguf_close(f);
}

/* Same file through mmap and read(): identical tables and bytes. */
static void assert_same_file(const gguf_file *a, const gguf_file *b)
{
    assert_int_equal(a->size, b->size);
    assert_memory_equal(a->base, b->base, a->size);
    assert_int_equal(a->n_kv, b->n_kv);
    assert_int_equal(a->n_tensors, b->n_tensors);
    assert_int_equal(a->data_offset, b->data_offset);
    for (uint64_t k = 0; k < a->n_kv; k++) {
        assert_string_equal(a->kv[k].key, b->kv[k].key);
        assert_int_equal(a->kv[k].offset, b->kv[k].offset);
        assert_int_equal(a->kv[k].value.type, b->kv[k].value.type);
    }
    for (uint64_t k = 0; k < a->n_tensors; k++) {
        assert_string_equal(a->tensors[k].name, b->tensors[k].name);
        assert_int_equal(a->tensors[k].offset, b->tensors[k].offset);
        assert_int_equal(a->tensors[k].n_bytes, b->tensors[k].n_bytes);
        assert_int_equal(a->tensors[k].data - a->base, b->tensors[k].data - b->base);
    }
}

static void stories260k_loads_with_read_same_as_mmap(void **state)
{
    (void)state;
    gguf_file *m = NULL, *r = NULL;
    assert_int_equal(gguf_open(STORIES_PATH, true, &m), LMRT_OK);
    assert_int_equal(gguf_open(STORIES_PATH, false, &r), LMRT_OK);
    assert_null(r->map);
    assert_non_null(r->heap);
    check_stories(r);
    assert_same_file(m, r);
    gguf_close(m);
    gguf_close(r);
}

static void stories260k_loads_from_memory(void **state)
{
    (void)state;
    size_t size;
    uint8_t *bytes = read_whole_file(STORIES_PATH, &size);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, size, "stories.gguf", &f), LMRT_OK);
    assert_string_equal(f->path, "stories.gguf");
    assert_ptr_equal(f->base, bytes);
    assert_null(f->map);
    assert_null(f->heap);
    check_stories(f);
    gguf_close(f);
    free(bytes);
}

static void llama3_bpe_vocab_loads_both_ways(void **state)
{
    (void)state;
    for (int use_mmap = 0; use_mmap <= 1; use_mmap++) {
        gguf_file *f = NULL;
        int64_t i;
        gguf_str s;
        assert_int_equal(gguf_open(VOCAB_BPE_PATH, use_mmap, &f), LMRT_OK);
        assert_int_equal(f->version, 3);
        assert_int_equal(f->n_tensors, 0);
        assert_int_equal(f->data_offset, f->size);   /* vocab-only files end unpadded */
        const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
        assert_non_null(tokens);
        assert_int_equal(tokens->value.type, GGUF_TYPE_ARRAY);
        assert_int_equal(tokens->value.v.arr.elem_type, GGUF_TYPE_STRING);
        assert_int_equal(tokens->value.v.arr.count, 128256);
        assert_true(str_eq(tokens->value.v.arr.strs[0], "!"));
        assert_true(str_eq(tokens->value.v.arr.strs[128000], "<|begin_of_text|>"));
        const gguf_kv *merges = gguf_find(f, "tokenizer.ggml.merges");
        assert_non_null(merges);
        assert_int_equal(merges->value.v.arr.count, 280147);
        assert_int_equal(gguf_get_str(f, "tokenizer.ggml.model", &s), LMRT_OK);
        assert_true(str_eq(s, "gpt2"));
        assert_int_equal(gguf_get_int(f, "tokenizer.ggml.bos_token_id", &i), LMRT_OK);
        assert_int_equal(i, 128000);
        assert_int_equal(gguf_get_int(f, "tokenizer.ggml.eos_token_id", &i), LMRT_OK);
        assert_int_equal(i, 128001);
        gguf_close(f);
    }
}

static void llama2_spm_vocab_loads_both_ways(void **state)
{
    (void)state;
    for (int use_mmap = 0; use_mmap <= 1; use_mmap++) {
        gguf_file *f = NULL;
        bool b;
        assert_int_equal(gguf_open(VOCAB_SPM_PATH, use_mmap, &f), LMRT_OK);
        assert_int_equal(f->n_tensors, 0);
        const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
        assert_non_null(tokens);
        assert_int_equal(tokens->value.v.arr.count, 32000);
        assert_true(str_eq(tokens->value.v.arr.strs[1], "<s>"));
        const gguf_kv *types = gguf_find(f, "tokenizer.ggml.token_type");
        assert_non_null(types);
        assert_int_equal(gguf_array_int(&types->value, 0), 2);   /* <unk>: UNKNOWN */
        assert_int_equal(gguf_array_int(&types->value, 1), 3);   /* <s>: CONTROL */
        const gguf_kv *scores = gguf_find(f, "tokenizer.ggml.scores");
        assert_non_null(scores);
        assert_int_equal(scores->value.v.arr.elem_type, GGUF_TYPE_FLOAT32);
        assert_int_equal(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b), LMRT_OK);
        assert_true(b);
        assert_int_equal(gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b), LMRT_OK);
        assert_false(b);
        gguf_close(f);
    }
}

static void missing_path_is_io_error(void **state)
{
    (void)state;
    gguf_file *f = (gguf_file *)&f;
    assert_int_equal(gguf_open("/nonexistent/lmrt/model.gguf", true, &f), LMRT_E_IO);
    assert_ptr_equal(f, (gguf_file *)&f);
    assert_true(mentions("/nonexistent/lmrt/model.gguf"));
    assert_int_equal(gguf_open("/nonexistent/lmrt/model.gguf", false, &f), LMRT_E_IO);
}

static void directory_is_io_error(void **state)
{
    (void)state;
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(LMRT_SOURCE_ROOT "/tests", true, &f), LMRT_E_IO);
    assert_true(mentions("not a regular file"));
    assert_null(f);
}

static void empty_file_is_format_error_both_ways(void **state)
{
    (void)state;
    char path[512];
    temp_path(path, sizeof path);   /* mkstemp leaves it empty */
    for (int use_mmap = 0; use_mmap <= 1; use_mmap++) {
        gguf_file *f = NULL;
        assert_int_equal(gguf_open(path, use_mmap, &f), LMRT_E_FORMAT);
        assert_true(mentions("offset 0: magic needs 4 bytes but only 0 remain"));
        assert_null(f);
    }
    unlink(path);
}

static void null_arguments_are_invalid(void **state)
{
    (void)state;
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(NULL, true, &f), LMRT_E_INVALID_ARG);
    assert_int_equal(gguf_open(STORIES_PATH, true, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(gguf_open_memory(NULL, 10, "x", &f), LMRT_E_INVALID_ARG);
    assert_int_equal(gguf_open_memory("GGUF", 4, "x", NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(gguf_open_memory(NULL, 0, "x", &f), LMRT_E_FORMAT);   /* empty file */
    assert_null(f);
    gguf_close(NULL);
}

/* ------------------------------------------------------------------------ */
/* the generated file                                                       */
/* ------------------------------------------------------------------------ */

static void sample_roundtrips_every_value_type(void **state)
{
    (void)state;
    size_t size;
    uint8_t *bytes = sample_bytes(&size);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, size, NULL, &f), LMRT_OK);
    assert_string_equal(f->path, "<memory>");
    check_sample(f);
    gguf_close(f);
    free(bytes);
}

static void sample_loads_from_file_with_mmap_and_read(void **state)
{
    (void)state;
    char path[512];
    temp_path(path, sizeof path);
    gguf_writer *w = sample_writer();
    assert_int_equal(gw_write_file(w, path), 0);
    gw_free(w);
    gguf_file *m = NULL, *r = NULL;
    assert_int_equal(gguf_open(path, true, &m), LMRT_OK);
    assert_int_equal(gguf_open(path, false, &r), LMRT_OK);
    check_sample(m);
    check_sample(r);
    assert_same_file(m, r);
    gguf_close(m);
    gguf_close(r);
    unlink(path);
}

static void version_2_file_loads(void **state)
{
    (void)state;
    gguf_writer *w = sample_writer();
    gw_set_version(w, 2);
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, size, NULL, &f), LMRT_OK);
    assert_int_equal(f->version, 2);
    gguf_close(f);
    free(bytes);
}

static void custom_alignment_places_data_on_it(void **state)
{
    (void)state;
    gguf_writer *w = gw_new();
    gw_set_alignment(w, 256);
    add_sample_kvs(w);
    add_sample_tensors(w);
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, size, NULL, &f), LMRT_OK);
    assert_int_equal(f->alignment, 256);
    assert_int_equal(f->data_offset % 256, 0);
    for (uint64_t k = 0; k < f->n_tensors; k++)
        assert_int_equal(f->tensors[k].offset % 256, 0);
    assert_int_equal(f->tensors[1].offset, 256);
    gguf_close(f);
    free(bytes);
}

static void file_without_tensors_needs_no_data_padding(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);
    size_t unpadded = 24 + (8 + 20 + 4 + 8 + 5) + (8 + 17 + 4 + 4);
    assert_true(size > unpadded);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, unpadded, NULL, &f), LMRT_OK);
    assert_int_equal(f->data_offset, unpadded);
    assert_int_equal(f->n_kv, 2);
    gguf_close(f);
    free(bytes);
}

static void getters_widen_and_name_wrong_types(void **state)
{
    (void)state;
    size_t size;
    uint8_t *bytes = sample_bytes(&size);
    gguf_file *f = NULL;
    int64_t i = 7;
    double d = 7;
    bool b = false;
    gguf_str s = {0};
    assert_int_equal(gguf_open_memory(bytes, size, "sample.gguf", &f), LMRT_OK);

    assert_int_equal(gguf_get_int(f, "no.such.key", &i), LMRT_E_NOT_FOUND);
    assert_true(mentions("no.such.key"));
    assert_int_equal(gguf_get_float(f, "no.such.key", &d), LMRT_E_NOT_FOUND);
    assert_int_equal(gguf_get_bool(f, "no.such.key", &b), LMRT_E_NOT_FOUND);
    assert_int_equal(gguf_get_str(f, "no.such.key", &s), LMRT_E_NOT_FOUND);

    assert_int_equal(gguf_get_int(f, "t.u64", &i), LMRT_E_FORMAT);      /* > INT64_MAX */
    assert_true(mentions("t.u64"));
    assert_int_equal(gguf_get_int(f, "t.f32", &i), LMRT_E_FORMAT);
    assert_true(mentions("sample.gguf: offset "));
    assert_int_equal(gguf_get_int(f, "t.bool", &i), LMRT_E_FORMAT);
    assert_int_equal(gguf_get_int(f, "general.architecture", &i), LMRT_E_FORMAT);
    assert_int_equal(gguf_get_int(f, "t.arr_i32", &i), LMRT_E_FORMAT);
    assert_int_equal(i, 7);   /* untouched on failure */
    assert_int_equal(gguf_get_float(f, "t.u32", &d), LMRT_OK);         /* ints widen */
    assert_true(d == 4000000000.0);
    assert_int_equal(gguf_get_float(f, "t.i8", &d), LMRT_OK);
    assert_true(d == -100.0);
    assert_int_equal(gguf_get_float(f, "t.bytes", &d), LMRT_E_FORMAT);
    assert_int_equal(gguf_get_bool(f, "t.u8", &b), LMRT_E_FORMAT);
    assert_false(b);
    assert_int_equal(gguf_get_str(f, "t.arr_str", &s), LMRT_E_FORMAT);
    assert_null(s.ptr);
    gguf_close(f);
    free(bytes);
}

static void type_names_and_sizes_follow_the_spec(void **state)
{
    (void)state;
    assert_int_equal(gguf_type_size(GGUF_TYPE_UINT8), 1);
    assert_int_equal(gguf_type_size(GGUF_TYPE_INT16), 2);
    assert_int_equal(gguf_type_size(GGUF_TYPE_FLOAT32), 4);
    assert_int_equal(gguf_type_size(GGUF_TYPE_BOOL), 1);
    assert_int_equal(gguf_type_size(GGUF_TYPE_FLOAT64), 8);
    assert_int_equal(gguf_type_size(GGUF_TYPE_STRING), 0);
    assert_int_equal(gguf_type_size(GGUF_TYPE_ARRAY), 0);
    assert_int_equal(gguf_type_size(GGUF_TYPE_COUNT), 0);
    assert_string_equal(gguf_type_name(GGUF_TYPE_UINT64), "UINT64");
    assert_string_equal(gguf_type_name(GGUF_TYPE_ARRAY), "ARRAY");
    assert_string_equal(gguf_type_name(99), "unknown");
}

/* ------------------------------------------------------------------------ */
/* broken files                                                             */
/* ------------------------------------------------------------------------ */

static void truncation_at_every_offset_is_format_error(void **state)
{
    (void)state;
    size_t size;
    uint8_t *bytes = sample_bytes(&size);
    for (size_t n = 0; n < size; n++)
        assert_format_error(bytes, n, NULL);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, size, NULL, &f), LMRT_OK);   /* the whole is fine */
    gguf_close(f);
    free(bytes);
}

static void truncated_header_names_the_field(void **state)
{
    (void)state;
    size_t size;
    uint8_t *bytes = sample_bytes(&size);
    assert_format_error(bytes, 0, "offset 0: magic needs 4 bytes but only 0 remain");
    assert_format_error(bytes, 6, "offset 4: version");
    assert_format_error(bytes, 20, "offset 16: kv count");
    free(bytes);
}

static void bad_magic_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_set_magic(w, "GGML");
    assert_writer_rejected(w, "offset 0: not a GGUF file");
}

static void version_1_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_set_version(w, 1);
    assert_writer_rejected(w, "offset 4: GGUF version 1 is not supported");
}

static void version_4_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_set_version(w, 4);
    assert_writer_rejected(w, "unsupported GGUF version 4");
}

static void big_endian_file_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_set_version(w, 0x03000000);   /* version 3 written big-endian */
    assert_writer_rejected(w, "big-endian");
}

static void absurd_kv_count_is_format_error(void **state)
{
    (void)state;
    static const uint64_t counts[] = {UINT64_MAX, (uint64_t)1 << 40, 1000};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        gguf_writer *w = base_writer();
        gw_set_counts(w, counts[k], 0);
        assert_writer_rejected(w, "offset 16: kv count");
    }
    gguf_writer *w = base_writer();
    gw_set_counts(w, 3, 0);   /* plausible, but there are only 2: the padding is read */
    assert_writer_rejected(w, "offset 102: empty key");
}

static void absurd_tensor_count_is_format_error(void **state)
{
    (void)state;
    static const uint64_t counts[] = {UINT64_MAX, (uint64_t)1 << 40, 100};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        gguf_writer *w = base_writer();
        gw_set_counts(w, 2, counts[k]);
        assert_writer_rejected(w, "offset 8: tensor count");
    }
}

static void absurd_string_lengths_are_format_errors(void **state)
{
    (void)state;
    static const uint64_t lens[] = {UINT64_MAX, (uint64_t)1 << 62, 1000};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        gw_buf b = {0};
        gw_buf_u64(&b, lens[k]);   /* a key length */
        gw_buf_put(&b, "key", 3);
        gw_buf_u32(&b, GGUF_TYPE_UINT8);
        gw_buf_u8(&b, 1);
        gguf_writer *w = base_writer();
        gw_raw_kv(w, b.data, b.len);
        gw_buf_free(&b);
        assert_writer_rejected(w, "key length");

        gw_buf_u64(&b, lens[k]);   /* a string value length */
        gw_buf_put(&b, "abc", 3);
        w = base_writer();
        gw_kv_raw(w, "s", GGUF_TYPE_STRING, b.data, b.len);
        gw_buf_free(&b);
        assert_writer_rejected(w, "string value length");

        gw_buf_u32(&b, GGUF_TYPE_STRING);   /* a string array element length */
        gw_buf_u64(&b, 2);
        gw_buf_str(&b, "ok");
        gw_buf_u64(&b, lens[k]);
        gw_buf_put(&b, "abc", 3);
        w = base_writer();
        gw_kv_raw(w, "a", GGUF_TYPE_ARRAY, b.data, b.len);
        gw_buf_free(&b);
        assert_writer_rejected(w, "array string length");

        gw_buf_put(&b, "GGUF", 4);          /* a tensor name length */
        gw_buf_u32(&b, 3);
        gw_buf_u64(&b, 1);                  /* one tensor */
        gw_buf_u64(&b, 0);                  /* no kvs */
        gw_buf_u64(&b, lens[k]);
        gw_buf_put(&b, "name", 4);
        gw_buf_zeros(&b, 64);
        assert_format_error(b.data, b.len, "offset 24: tensor name length");
        gw_buf_free(&b);
    }
}

static void absurd_array_counts_are_format_errors(void **state)
{
    (void)state;
    static const uint32_t types[] = {GGUF_TYPE_UINT8, GGUF_TYPE_INT32, GGUF_TYPE_FLOAT64,
                                     GGUF_TYPE_BOOL, GGUF_TYPE_STRING};
    static const uint64_t counts[] = {UINT64_MAX, (uint64_t)1 << 61, 1 << 20};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
            gw_buf b = {0};
            gw_buf_u32(&b, types[t]);
            gw_buf_u64(&b, counts[k]);
            gw_buf_zeros(&b, 64);
            gguf_writer *w = base_writer();
            gw_kv_raw(w, "arr", GGUF_TYPE_ARRAY, b.data, b.len);
            gw_buf_free(&b);
            assert_writer_rejected(w, "key 'arr'");
        }
    }
}

static void bad_keys_are_format_errors(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_kv_u8(w, "", 1);
    assert_writer_rejected(w, "empty key");

    gw_buf b = {0};
    gw_buf_strn(&b, "bad\0key", 7);
    gw_buf_u32(&b, GGUF_TYPE_UINT8);
    gw_buf_u8(&b, 1);
    w = base_writer();
    gw_raw_kv(w, b.data, b.len);
    gw_buf_free(&b);
    assert_writer_rejected(w, "contains a NUL byte");

    char *long_key = malloc(65537);
    assert_non_null(long_key);
    memset(long_key, 'k', 65536);
    long_key[65536] = '\0';
    w = base_writer();
    gw_kv_u8(w, long_key, 1);
    assert_writer_rejected(w, "key is 65536 bytes long");
    long_key[65535] = '\0';   /* the longest allowed */
    w = base_writer();
    gw_kv_u8(w, long_key, 1);
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, size, NULL, &f), LMRT_OK);
    assert_non_null(gguf_find(f, long_key));
    gguf_close(f);
    free(bytes);
    free(long_key);
}

static void duplicate_key_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_kv_u8(w, "x.first", 1);
    gw_kv_u32(w, "llama.block_count", 3);
    assert_writer_rejected(w, "duplicate key 'llama.block_count' (first at offset 69)");
}

static void unknown_value_types_are_format_errors(void **state)
{
    (void)state;
    static const uint32_t types[] = {GGUF_TYPE_COUNT, 100, UINT32_MAX};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        gguf_writer *w = base_writer();
        gw_kv_raw(w, "odd", types[k], "\0\0\0\0\0\0\0\0", 8);
        assert_writer_rejected(w, "key 'odd' has unknown value type");

        gw_buf b = {0};
        gw_buf_u32(&b, types[k]);
        gw_buf_u64(&b, 1);
        gw_buf_zeros(&b, 8);
        w = base_writer();
        gw_kv_raw(w, "odd", GGUF_TYPE_ARRAY, b.data, b.len);
        gw_buf_free(&b);
        assert_writer_rejected(w, "array of unknown value type");
    }
}

static void nested_array_is_format_error(void **state)
{
    (void)state;
    gw_buf b = {0};
    gw_buf_u32(&b, GGUF_TYPE_ARRAY);   /* array of arrays of one u8 */
    gw_buf_u64(&b, 1);
    gw_buf_u32(&b, GGUF_TYPE_UINT8);
    gw_buf_u64(&b, 1);
    gw_buf_u8(&b, 7);
    gguf_writer *w = base_writer();
    gw_kv_raw(w, "nest", GGUF_TYPE_ARRAY, b.data, b.len);
    gw_buf_free(&b);
    assert_writer_rejected(w, "array of arrays");
}

static void bool_other_than_0_or_1_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_kv_raw(w, "flag", GGUF_TYPE_BOOL, "\x02", 1);
    assert_writer_rejected(w, "bool value is 2");

    const uint8_t elems[] = {1, 0, 255};
    w = base_writer();
    gw_kv_arr(w, "flags", GGUF_TYPE_BOOL, elems, 3);
    assert_writer_rejected(w, "bool element 2 is 255");
}

static void bad_alignment_is_format_error(void **state)
{
    (void)state;
    static const uint32_t values[] = {0, 3, 48, 0x80000001u};
    for (size_t k = 0; k < sizeof values / sizeof *values; k++) {
        gguf_writer *w = base_writer();
        gw_kv_u32(w, "general.alignment", values[k]);
        assert_writer_rejected(w, "is not a nonzero power of two");
    }
    gguf_writer *w = base_writer();
    gw_kv_u64(w, "general.alignment", 32);
    assert_writer_rejected(w, "general.alignment has type UINT64, not UINT32");
    w = base_writer();
    gw_kv_str(w, "general.alignment", "32");
    assert_writer_rejected(w, "general.alignment has type STRING");
}

/* A file with the sample kvs and one verbatim tensor info and 256 data bytes. */
static void assert_tensor_rejected(uint32_t type, uint32_t n_dims, const uint64_t *dims,
                                   uint64_t offset, const char *needle)
{
    gguf_writer *w = base_writer();
    gw_tensor(w, "good", GGML_TYPE_F32, 1, (const int64_t[]){8}, NULL);
    gw_tensor_raw(w, "bad", 3, type, n_dims, dims, offset);
    gw_data_pad(w, 256);
    assert_writer_rejected(w, needle);
}

static void bad_n_dims_is_format_error(void **state)
{
    (void)state;
    static const uint64_t dims[8] = {32, 1, 1, 1, 1, 1, 1, 1};
    assert_tensor_rejected(GGML_TYPE_F32, 0, dims, 64, "tensor 'bad' has 0 dimensions");
    assert_tensor_rejected(GGML_TYPE_F32, 5, dims, 64, "tensor 'bad' has 5 dimensions");
    assert_tensor_rejected(GGML_TYPE_F32, UINT32_MAX, dims, 64, "dimensions (1 to 4 allowed)");
}

static void absurd_dims_are_format_errors(void **state)
{
    (void)state;
    assert_tensor_rejected(GGML_TYPE_F32, 2, (const uint64_t[]){8, 0}, 64,
                           "tensor 'bad' dimension 1 is 0");
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){UINT64_MAX}, 64,
                           "dimension 0 is 18446744073709551615");
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){(uint64_t)INT64_MAX + 1}, 64,
                           "(must be 1 to INT64_MAX)");
    /* the largest dim is legal in itself: its data cannot fit */
    assert_tensor_rejected(GGML_TYPE_I8, 1, (const uint64_t[]){INT64_MAX}, 64,
                           "ends past the end of the file");
}

static void element_count_overflow_is_format_error(void **state)
{
    (void)state;
    const uint64_t big = (uint64_t)1 << 32;
    assert_tensor_rejected(GGML_TYPE_F32, 2, (const uint64_t[]){big, big}, 64,
                           "element count overflows at dimension 1");
    assert_tensor_rejected(GGML_TYPE_F32, 4, (const uint64_t[]){2, 2, 2, (uint64_t)1 << 61}, 64,
                           "element count overflows at dimension 3");
}

static void byte_size_overflow_is_format_error(void **state)
{
    (void)state;
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){(uint64_t)1 << 62}, 64,
                           "byte size overflows");
    assert_tensor_rejected(GGML_TYPE_F64, 2, (const uint64_t[]){1 << 20, (uint64_t)1 << 41}, 64,
                           "byte size overflows");
}

static void unknown_tensor_type_is_format_error(void **state)
{
    (void)state;
    static const uint32_t types[] = {4, 5, GGML_TYPE_COUNT, 1000, UINT32_MAX};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++)
        assert_tensor_rejected(types[k], 1, (const uint64_t[]){32}, 64,
                               "tensor 'bad' has unknown ggml type");
}

static void row_not_multiple_of_block_is_format_error(void **state)
{
    (void)state;
    assert_tensor_rejected(GGML_TYPE_Q4_0, 2, (const uint64_t[]){33, 2}, 64,
                           "row of 33 elements is not a multiple of the Q4_0 block size 32");
    assert_tensor_rejected(GGML_TYPE_Q4_K, 1, (const uint64_t[]){128}, 64,
                           "Q4_K block size 256");
}

static void misaligned_tensor_offset_is_format_error(void **state)
{
    (void)state;
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){8}, 33,
                           "tensor 'bad' data offset 33 is not a multiple of the alignment 32");
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){8}, 16,
                           "not a multiple of the alignment 32");
}

static void overlapping_tensors_are_format_error(void **state)
{
    (void)state;
    /* "good" holds [0, 32) */
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){8}, 0,
                           "overlaps tensor 'good'");
    gguf_writer *w = base_writer();
    gw_tensor_raw(w, "late", 4, GGML_TYPE_F32, 1, (const uint64_t[]){8}, 64);
    gw_tensor_raw(w, "wide", 4, GGML_TYPE_F32, 1, (const uint64_t[]){24}, 0);   /* [0, 96) */
    gw_data_pad(w, 128);
    assert_writer_rejected(w, "tensor 'late' data [+32) overlaps tensor 'wide'");
}

static void adjacent_tensors_are_fine(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_tensor_raw(w, "b", 1, GGML_TYPE_F32, 1, (const uint64_t[]){8}, 32);
    gw_tensor_raw(w, "a", 1, GGML_TYPE_F32, 1, (const uint64_t[]){8}, 0);
    gw_data_pad(w, 64);
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(bytes, size, NULL, &f), LMRT_OK);
    assert_int_equal(f->n_tensors, 2);
    gguf_close(f);
    free(bytes);
}

static void tensor_data_past_eof_is_format_error(void **state)
{
    (void)state;
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){64}, 64,
                           "tensor 'bad' data [+256) ends past the end of the file");
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){8}, 4096,
                           "data offset 4096 is past the end of the file");
    assert_tensor_rejected(GGML_TYPE_F32, 1, (const uint64_t[]){8}, UINT64_MAX - 31,
                           "data offset 18446744073709551584 is past the end of the file");
}

static void data_section_past_eof_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = gw_new();
    gw_tensor(w, "a", GGML_TYPE_F32, 1, (const int64_t[]){1}, NULL);
    size_t size;
    uint8_t *bytes = gw_finish(w, &size);
    gw_free(w);
    assert_int_equal(size, 64 + 4);   /* header 24 + info 33, padded to 64, + 4 data bytes */
    assert_format_error(bytes, 57, "offset 57: data section starts at 64, past the end");
    free(bytes);
}

static void bad_tensor_names_are_format_errors(void **state)
{
    (void)state;
    static const uint64_t dims[] = {8};
    gguf_writer *w = base_writer();
    gw_tensor_raw(w, "", 0, GGML_TYPE_F32, 1, dims, 0);
    gw_data_pad(w, 32);
    assert_writer_rejected(w, "empty tensor name");

    w = base_writer();
    gw_tensor_raw(w, "a\0b", 3, GGML_TYPE_F32, 1, dims, 0);
    gw_data_pad(w, 32);
    assert_writer_rejected(w, "tensor name 'a' contains a NUL byte");

    char *name = malloc(65536);
    assert_non_null(name);
    memset(name, 'n', 65536);
    w = base_writer();
    gw_tensor_raw(w, name, 65536, GGML_TYPE_F32, 1, dims, 0);
    gw_data_pad(w, 32);
    free(name);
    assert_writer_rejected(w, "tensor name is 65536 bytes long");
}

static void duplicate_tensor_name_is_format_error(void **state)
{
    (void)state;
    gguf_writer *w = base_writer();
    gw_tensor(w, "blk.0.w", GGML_TYPE_F32, 1, (const int64_t[]){8}, NULL);
    gw_tensor(w, "blk.1.w", GGML_TYPE_F32, 1, (const int64_t[]){8}, NULL);
    gw_tensor(w, "blk.0.w", GGML_TYPE_F32, 1, (const int64_t[]){8}, NULL);
    assert_writer_rejected(w, "duplicate tensor name 'blk.0.w' (first at offset ");
}

/* ------------------------------------------------------------------------ */
/* allocation failures                                                      */
/* ------------------------------------------------------------------------ */

typedef lmrt_status (*open_fn)(const void *arg, gguf_file **out);

/* Fails the 1st, 2nd, ... allocation in turn: each try ends in success or
 * LMRT_E_NOMEM (ASan reports any leak), until one try allocates freely. */
static void assert_survives_every_alloc_failure(open_fn open, const void *arg)
{
    bool done = false;
    for (long n = 0; !done; n++) {
        assert_true(n < 100000);
        gguf_file *f = (gguf_file *)&f;
        lmrt_alloc_fail_after(n);
        lmrt_status st = open(arg, &f);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK) {
            done = true;
            gguf_close(f);
        } else {
            if (st != LMRT_E_NOMEM)
                print_error("n=%ld: %s: %s\n", n, lmrt_status_str(st), lmrt_last_error());
            assert_int_equal(st, LMRT_E_NOMEM);
            assert_ptr_equal(f, (gguf_file *)&f);
            assert_true(mentions("out of memory"));
        }
    }
}

typedef struct mem_arg {
    const uint8_t *bytes;
    size_t size;
} mem_arg;

static lmrt_status open_mem(const void *arg, gguf_file **out)
{
    const mem_arg *m = arg;
    return gguf_open_memory(m->bytes, m->size, "sample.gguf", out);
}

static lmrt_status open_mmap(const void *arg, gguf_file **out)
{
    return gguf_open(arg, true, out);
}

static lmrt_status open_read(const void *arg, gguf_file **out)
{
    return gguf_open(arg, false, out);
}

static void every_alloc_failure_is_nomem_from_memory(void **state)
{
    (void)state;
    mem_arg m;
    uint8_t *bytes = sample_bytes(&m.size);
    m.bytes = bytes;
    assert_survives_every_alloc_failure(open_mem, &m);
    free(bytes);
}

static void every_alloc_failure_is_nomem_from_file(void **state)
{
    (void)state;
    char path[512];
    temp_path(path, sizeof path);
    gguf_writer *w = sample_writer();
    assert_int_equal(gw_write_file(w, path), 0);
    gw_free(w);
    assert_survives_every_alloc_failure(open_mmap, path);
    assert_survives_every_alloc_failure(open_read, path);
    unlink(path);
}

static void every_alloc_failure_is_nomem_for_stories260k(void **state)
{
    (void)state;
    assert_survives_every_alloc_failure(open_mmap, STORIES_PATH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stories260k_loads_with_mmap),
        cmocka_unit_test(stories260k_loads_with_read_same_as_mmap),
        cmocka_unit_test(stories260k_loads_from_memory),
        cmocka_unit_test(llama3_bpe_vocab_loads_both_ways),
        cmocka_unit_test(llama2_spm_vocab_loads_both_ways),
        cmocka_unit_test(missing_path_is_io_error),
        cmocka_unit_test(directory_is_io_error),
        cmocka_unit_test(empty_file_is_format_error_both_ways),
        cmocka_unit_test(null_arguments_are_invalid),
        cmocka_unit_test(sample_roundtrips_every_value_type),
        cmocka_unit_test(sample_loads_from_file_with_mmap_and_read),
        cmocka_unit_test(version_2_file_loads),
        cmocka_unit_test(custom_alignment_places_data_on_it),
        cmocka_unit_test(file_without_tensors_needs_no_data_padding),
        cmocka_unit_test(getters_widen_and_name_wrong_types),
        cmocka_unit_test(type_names_and_sizes_follow_the_spec),
        cmocka_unit_test(truncation_at_every_offset_is_format_error),
        cmocka_unit_test(truncated_header_names_the_field),
        cmocka_unit_test(bad_magic_is_format_error),
        cmocka_unit_test(version_1_is_format_error),
        cmocka_unit_test(version_4_is_format_error),
        cmocka_unit_test(big_endian_file_is_format_error),
        cmocka_unit_test(absurd_kv_count_is_format_error),
        cmocka_unit_test(absurd_tensor_count_is_format_error),
        cmocka_unit_test(absurd_string_lengths_are_format_errors),
        cmocka_unit_test(absurd_array_counts_are_format_errors),
        cmocka_unit_test(bad_keys_are_format_errors),
        cmocka_unit_test(duplicate_key_is_format_error),
        cmocka_unit_test(unknown_value_types_are_format_errors),
        cmocka_unit_test(nested_array_is_format_error),
        cmocka_unit_test(bool_other_than_0_or_1_is_format_error),
        cmocka_unit_test(bad_alignment_is_format_error),
        cmocka_unit_test(bad_n_dims_is_format_error),
        cmocka_unit_test(absurd_dims_are_format_errors),
        cmocka_unit_test(element_count_overflow_is_format_error),
        cmocka_unit_test(byte_size_overflow_is_format_error),
        cmocka_unit_test(unknown_tensor_type_is_format_error),
        cmocka_unit_test(row_not_multiple_of_block_is_format_error),
        cmocka_unit_test(misaligned_tensor_offset_is_format_error),
        cmocka_unit_test(overlapping_tensors_are_format_error),
        cmocka_unit_test(adjacent_tensors_are_fine),
        cmocka_unit_test(tensor_data_past_eof_is_format_error),
        cmocka_unit_test(data_section_past_eof_is_format_error),
        cmocka_unit_test(bad_tensor_names_are_format_errors),
        cmocka_unit_test(duplicate_tensor_name_is_format_error),
        cmocka_unit_test(every_alloc_failure_is_nomem_from_memory),
        cmocka_unit_test(every_alloc_failure_is_nomem_from_file),
        cmocka_unit_test(every_alloc_failure_is_nomem_for_stories260k),
    };
    return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
