/* test_mllama_decoder.c - the mllama text decoder's cross-attention side (lib/model/
 * llama.c): a tiny mllama GGUF built here binds, takes image states and runs; states
 * are replaced wholly and a failed replacement keeps the old ones; hostile files (bad
 * cross-layer lists, missing cross tensors, malformed gates, short token_embd) are
 * LMRT_E_FORMAT naming the key or tensor; every allocation failure is LMRT_E_NOMEM
 * without leaks. The numbers themselves are checked against the float64 reference by
 * tests/model/test_mllama_logits.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf.h"
#include "gguf_writer.h"
#include "model/llama.h"
#include "model/model.h"
#include "tensor/types.h"

/* The tiny shape: 3 layers, layer 1 cross; head_dim 8, 2 heads, 1 kv head. */
enum { E = 16, F = 32, NL = 3, NH = 2, NKV = 1, HD = 8, V = 8, EXTRA = 8 };

typedef struct variant {
    const char *arch;            /* "mllama" */
    int32_t cross[4];            /* the cross_attention_layers value */
    int n_cross;
    bool cross_key_absent;
    bool cross_key_strings;      /* written as an array of strings */
    const char *omit;            /* a tensor not written */
    int64_t gate_len;            /* elements of blk.1.cross_attn_attn_gate */
    uint32_t gate_type;
    int64_t embd_rows;
} variant;

static variant good(void)
{
    return (variant){.arch = "mllama", .cross = {1}, .n_cross = 1, .gate_len = 1,
                     .gate_type = GGML_TYPE_F32, .embd_rows = V + EXTRA};
}

static uint32_t lcg_state;

static float *random_floats(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        lcg_state = lcg_state * 1664525u + 1013904223u;
        p[i] = scale * ((float)(lcg_state >> 8) / (float)(1u << 24) - 0.5f);
    }
    return p;
}

static void put(gguf_writer *w, const variant *v, const char *name, int64_t cols, int64_t rows,
                float scale, float offset)
{
    if (v->omit && strcmp(v->omit, name) == 0)
        return;
    float *data = random_floats((size_t)(cols * rows), scale);
    for (int64_t i = 0; i < cols * rows; i++)
        data[i] += offset;
    int64_t dims[2] = {cols, rows};
    gw_tensor(w, name, GGML_TYPE_F32, rows == 1 ? 1 : 2, dims, data);
    free(data);
}

/* The file of variant v, malloc'd. */
static uint8_t *build(const variant *v, size_t *size)
{
    lcg_state = 12345;
    gguf_writer *w = gw_new();
    char key[128];
#define KEY(s) (snprintf(key, sizeof key, "%s." s, v->arch), key)
    gw_kv_str(w, "general.architecture", v->arch);
    gw_kv_u32(w, KEY("embedding_length"), E);
    gw_kv_u32(w, KEY("block_count"), NL);
    gw_kv_u32(w, KEY("feed_forward_length"), F);
    gw_kv_u32(w, KEY("attention.head_count"), NH);
    gw_kv_u32(w, KEY("attention.head_count_kv"), NKV);
    gw_kv_u32(w, KEY("vocab_size"), V);
    if (v->cross_key_strings) {
        const char *s[] = {"1"};
        gw_kv_arr_str(w, KEY("attention.cross_attention_layers"), s, 1);
    } else if (!v->cross_key_absent) {
        gw_kv_arr(w, KEY("attention.cross_attention_layers"), 5 /* INT32 */, v->cross,
                  (uint64_t)v->n_cross);
    }
#undef KEY
    char name[96];
    put(w, v, "token_embd.weight", E, v->embd_rows, 2.0f, 0.0f);
    for (int l = 0; l < NL; l++) {
#define T(suffix, cols, rows, scale, offset)                                                   \
    snprintf(name, sizeof name, "blk.%d." suffix, l);                                        \
    put(w, v, name, cols, rows, scale, offset)
        T("attn_norm.weight", E, 1, 0.2f, 1.0f);
        if (l == 1) {
            T("cross_attn_q_proj.weight", E, NH * HD, 0.5f, 0.0f);
            T("cross_attn_k_proj.weight", E, NKV * HD, 0.5f, 0.0f);
            T("cross_attn_v_proj.weight", E, NKV * HD, 0.5f, 0.0f);
            T("cross_attn_o_proj.weight", NH * HD, E, 0.5f, 0.0f);
            T("cross_attn_q_norm.weight", HD, 1, 0.2f, 1.0f);
            T("cross_attn_k_norm.weight", HD, 1, 0.2f, 1.0f);
            snprintf(name, sizeof name, "blk.1.cross_attn_attn_gate");
            if (!v->omit || strcmp(v->omit, name)) {
                float g[4] = {0.7f, 0.7f, 0.7f, 0.7f};
                uint16_t h[4] = {0x3999, 0x3999, 0x3999, 0x3999};
                int64_t dims[1] = {v->gate_len};
                gw_tensor(w, name, v->gate_type, 1, dims,
                          v->gate_type == GGML_TYPE_F32 ? (const void *)g : (const void *)h);
            }
            T("cross_attn_mlp_gate", 1, 1, 0.0f, -0.9f);
        } else {
            T("attn_q.weight", E, NH * HD, 0.5f, 0.0f);
            T("attn_k.weight", E, NKV * HD, 0.5f, 0.0f);
            T("attn_v.weight", E, NKV * HD, 0.5f, 0.0f);
            T("attn_output.weight", NH * HD, E, 0.5f, 0.0f);
        }
        T("ffn_norm.weight", E, 1, 0.2f, 1.0f);
        T("ffn_gate.weight", E, F, 0.5f, 0.0f);
        T("ffn_up.weight", E, F, 0.5f, 0.0f);
        T("ffn_down.weight", F, E, 0.5f, 0.0f);
#undef T
    }
    put(w, v, "output_norm.weight", E, 1, 0.2f, 1.0f);
    put(w, v, "output.weight", E, V, 1.0f, 0.0f);
    uint8_t *bytes = gw_finish(w, size);
    gw_free(w);
    return bytes;
}

/* A bound decoder over the file of a variant. */
typedef struct fixture {
    uint8_t *bytes;
    model *m;
    backend_ctx *bctx;
    llama_weights *w;
    llama_state *st;
} fixture;

static const backend_vtable *be = &cpu_backend;

/* Opens and binds; returns the status of the first step that fails. */
static lmrt_status open_variant(const variant *v, fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    size_t size;
    fx->bytes = build(v, &size);
    gguf_file *f;
    lmrt_status st;
    if ((st = gguf_open_memory(fx->bytes, size, "mllama.gguf", &f)) ||
        (st = model_open(f, NULL, &fx->m)) ||
        (st = be->ctx_create(0, 1, &fx->bctx)) ||
        (st = llama_weights_bind(fx->m, be, fx->bctx, &fx->w)))
        return st;
    return llama_state_create(fx->w, 32, 4, true, &fx->st);
}

static void close_fixture(fixture *fx)
{
    if (fx->w)
        llama_state_free(fx->w, fx->st);
    llama_weights_free(fx->w);
    if (fx->bctx)
        be->ctx_free(fx->bctx);
    model_close(fx->m);
    free(fx->bytes);
    memset(fx, 0, sizeof *fx);
}

static void expect_format_error(const variant *v, const char *needle)
{
    fixture fx;
    lmrt_status st = open_variant(v, &fx);
    assert_int_equal(st, LMRT_E_FORMAT);
    if (!strstr(lmrt_last_error(), needle))
        fail_msg("error '%s' does not name '%s'", lmrt_last_error(), needle);
    close_fixture(&fx);
}

/* ------------------------------------------------------------------------ */

static void tiny_mllama_binds_with_its_cross_layer(void **state)
{
    (void)state;
    variant v = good();
    fixture fx;
    assert_int_equal(open_variant(&v, &fx), LMRT_OK);
    assert_true(llama_is_cross_model(fx.w));
    assert_int_equal(fx.w->n_cross, 1);
    assert_true(fx.w->layers[1].cross && !fx.w->layers[0].cross && !fx.w->layers[2].cross);
    assert_int_equal(fx.w->layers[1].cross_index, 0);
    assert_int_equal(fx.w->hp.n_vocab, V);
    assert_int_equal(fx.w->n_tok_rows, V + EXTRA);
    assert_float_equal(fx.w->layers[1].attn_gate, tanhf(0.7f), 1e-7);
    assert_true(fx.w->layers[1].mlp_gate < 0.0f);
    assert_int_equal(llama_state_cross_bytes(fx.w, 10), 10 * NKV * HD * sizeof(float));
    /* <|image|> = V is a token; V + EXTRA is not. */
    float logits[2 * V];
    int32_t ids[2] = {V, V + EXTRA - 1};
    assert_int_equal(llama_forward(fx.w, fx.st, ids, 2, true, logits, NULL, NULL), LMRT_OK);
    int32_t bad = V + EXTRA;
    assert_int_equal(llama_forward(fx.w, fx.st, &bad, 1, false, logits, NULL, NULL),
                     LMRT_E_INVALID_ARG);
    close_fixture(&fx);
    /* Without output.weight the logits come from token_embd's first V rows. */
    v.omit = "output.weight";
    assert_int_equal(open_variant(&v, &fx), LMRT_OK);
    assert_ptr_equal(fx.w->output.data, fx.w->tok_embd.data);
    assert_int_equal(fx.w->output.n_rows, V);
    assert_int_equal(fx.w->tok_embd.n_rows, V + EXTRA);
    assert_int_equal(llama_forward(fx.w, fx.st, ids, 2, true, logits, NULL, NULL), LMRT_OK);
    close_fixture(&fx);
}

/* Runs ids from position 0 with states from `feat` ([n][E]) and returns the logits. */
static void run_with(fixture *fx, const float *feat, int32_t n, float *logits)
{
    int32_t ids[5] = {1, V, 3, 7, 2};
    fx->st->n_past = 0;
    if (feat)
        assert_int_equal(llama_state_set_cross(fx->w, fx->st, feat, n), LMRT_OK);
    assert_int_equal(llama_forward(fx->w, fx->st, ids, 5, true, logits, NULL, NULL), LMRT_OK);
}

static void states_are_replaced_wholly_and_change_the_logits(void **state)
{
    (void)state;
    variant v = good();
    fixture fx;
    assert_int_equal(open_variant(&v, &fx), LMRT_OK);
    lcg_state = 99;
    float *a = random_floats(7 * E, 3.0f), *b = random_floats(3 * E, 3.0f);
    float none[5 * V], la[5 * V], lb[5 * V], again[5 * V];
    run_with(&fx, NULL, 0, none);
    run_with(&fx, a, 7, la);
    assert_int_equal(fx.st->n_cross_kv, 7);
    run_with(&fx, b, 3, lb);
    assert_int_equal(fx.st->n_cross_kv, 3);
    run_with(&fx, a, 7, again);
    assert_memory_equal(la, again, sizeof la);
    float d_none = 0, d_b = 0;
    for (int i = 0; i < 5 * V; i++) {
        d_none = fmaxf(d_none, fabsf(la[i] - none[i]));
        d_b = fmaxf(d_b, fabsf(la[i] - lb[i]));
    }
    assert_true(d_none > 1e-2f);
    assert_true(d_b > 1e-2f);
    /* Cleared: the cross layer is skipped again, as before any image. */
    llama_state_clear_cross(fx.w, fx.st);
    assert_int_equal(fx.st->n_cross_kv, 0);
    run_with(&fx, NULL, 0, again);
    assert_memory_equal(none, again, sizeof none);
    /* A failed replacement keeps the states it would have replaced. */
    run_with(&fx, a, 7, la);
    lmrt_alloc_fail_after(0);
    lmrt_status st = llama_state_set_cross(fx.w, fx.st, b, 3);
    lmrt_alloc_fail_after(-1);
    assert_int_equal(st, LMRT_E_NOMEM);
    assert_int_equal(fx.st->n_cross_kv, 7);
    run_with(&fx, NULL, 0, again);
    assert_memory_equal(la, again, sizeof la);
    /* Save and restore through the host: the same logits. */
    size_t bytes = llama_state_cross_bytes(fx.w, 7);
    float *k = malloc(bytes), *vv = malloc(bytes);
    assert_int_equal(be->download(fx.bctx, k, fx.st->cross_k, bytes), LMRT_OK);
    assert_int_equal(be->download(fx.bctx, vv, fx.st->cross_v, bytes), LMRT_OK);
    llama_state_clear_cross(fx.w, fx.st);
    assert_int_equal(llama_state_restore_cross(fx.w, fx.st, 7, k, vv), LMRT_OK);
    run_with(&fx, NULL, 0, again);
    assert_memory_equal(la, again, sizeof la);
    free(k);
    free(vv);
    /* Bad arguments. */
    assert_int_equal(llama_state_set_cross(fx.w, fx.st, a, 0), LMRT_E_INVALID_ARG);
    assert_int_equal(llama_state_set_cross(fx.w, fx.st, NULL, 3), LMRT_E_INVALID_ARG);
    assert_int_equal(fx.st->n_cross_kv, 7);
    free(a);
    free(b);
    close_fixture(&fx);
}

static void llama_models_take_no_image_states(void **state)
{
    (void)state;
    gguf_file *f;
    model *m;
    backend_ctx *bctx;
    llama_weights *w;
    llama_state *st;
    assert_int_equal(gguf_open(LMRT_SOURCE_ROOT "/lib/model/builtin/stories260K.gguf", true, &f),
                     LMRT_OK);
    assert_int_equal(model_open(f, NULL, &m), LMRT_OK);
    assert_int_equal(be->ctx_create(0, 1, &bctx), LMRT_OK);
    assert_int_equal(llama_weights_bind(m, be, bctx, &w), LMRT_OK);
    assert_int_equal(llama_state_create(w, 8, 4, false, &st), LMRT_OK);
    assert_false(llama_is_cross_model(w));
    assert_int_equal(w->n_tok_rows, w->hp.n_vocab);
    float feat[64 * 2] = {0};
    assert_int_equal(llama_state_set_cross(w, st, feat, 2), LMRT_E_UNSUPPORTED);
    assert_int_equal(llama_state_cross_bytes(w, 2), 0);
    llama_state_free(w, st);
    llama_weights_free(w);
    be->ctx_free(bctx);
    model_close(m);
}

static void hostile_cross_layer_lists_are_format_errors(void **state)
{
    (void)state;
    variant v = good();
    v.cross[0] = NL;                      /* out of range */
    expect_format_error(&v, "cross_attention_layers");
    v = good();
    v.cross[0] = -1;
    expect_format_error(&v, "cross_attention_layers");
    v = good();
    v.cross[1] = 1, v.n_cross = 2;        /* twice */
    expect_format_error(&v, "twice");
    v = good();
    v.cross[1] = 0, v.cross[2] = 2, v.cross[3] = 1, v.n_cross = 4;   /* more than layers */
    expect_format_error(&v, "cross_attention_layers");
    v = good();
    v.cross_key_absent = true;
    expect_format_error(&v, "mllama.attention.cross_attention_layers");
    v = good();
    v.cross_key_strings = true;
    expect_format_error(&v, "not an array of integers");
    v = good();
    v.cross[0] = 0;                       /* layer 0 is written as a self layer */
    expect_format_error(&v, "blk.0.cross_attn_q_proj.weight");
}

static void missing_cross_tensors_and_bad_gates_are_format_errors(void **state)
{
    (void)state;
    const char *names[] = {"blk.1.cross_attn_q_proj.weight", "blk.1.cross_attn_k_norm.weight",
                           "blk.1.cross_attn_o_proj.weight", "blk.1.cross_attn_attn_gate",
                           "blk.1.cross_attn_mlp_gate", "blk.1.ffn_up.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        variant v = good();
        v.omit = names[i];
        expect_format_error(&v, names[i]);
    }
    variant v = good();
    v.gate_len = 2;
    expect_format_error(&v, "blk.1.cross_attn_attn_gate");
    v = good();
    v.gate_type = GGML_TYPE_F16;
    expect_format_error(&v, "blk.1.cross_attn_attn_gate");
    v = good();
    v.embd_rows = V - 1;
    expect_format_error(&v, "token_embd.weight");
}

static void allocation_failures_are_nomem_and_leak_nothing(void **state)
{
    (void)state;
    variant v = good();
    lcg_state = 5;
    float *feat = random_floats(6 * E, 3.0f);
    for (long n = 0;; n++) {
        fixture fx;
        lmrt_alloc_fail_after(n);
        lmrt_status st = open_variant(&v, &fx);
        float logits[3 * V];
        int32_t ids[3] = {2, V, 5};
        if (!st)
            st = llama_state_set_cross(fx.w, fx.st, feat, 6);
        if (!st)
            st = llama_forward(fx.w, fx.st, ids, 3, true, logits, NULL, NULL);
        if (!st)
            st = llama_state_set_cross(fx.w, fx.st, feat, 3);
        lmrt_alloc_fail_after(-1);
        close_fixture(&fx);
        if (st == LMRT_OK)
            break;
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_true(n < 100000);
    }
    free(feat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiny_mllama_binds_with_its_cross_layer),
        cmocka_unit_test(states_are_replaced_wholly_and_change_the_logits),
        cmocka_unit_test(llama_models_take_no_image_states),
        cmocka_unit_test(hostile_cross_layer_lists_are_format_errors),
        cmocka_unit_test(missing_cross_tensors_and_bad_gates_are_format_errors),
        cmocka_unit_test(allocation_failures_are_nomem_and_leak_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
