/* test_audio_encoder.c - the log-mel tables and the audio encoder's contract, on a
 * tiny Ultravox projector built in memory: its shapes and token counts, every
 * allocation failing in turn (binding and encoding) is LMRT_E_NOMEM and leaks
 * nothing, bad arguments are clean errors, and results do not depend on the
 * thread count. The numbers themselves are checked against the float64
 * reference by tests/model/test_audio_reference.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf.h"
#include "gguf_writer.h"
#include "model/audio_encoder.h"
#include "model/audio_mel.h"

/* tiny shape: 8 mel bins, d 8, 2 heads, FFN 16, 1 block, stack 8, P 16, text 8 */
enum { N_MEL = 8, D = 8, N_FF = 16, STACK = 8, P = 16, N_TEXT = 8, N_POS = 1500 };

static uint32_t rng_state = 12345;

static float rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return ((float)(rng_state >> 8) / (float)(1u << 24) - 0.5f) * 0.5f;
}

static void tensor(gguf_writer *w, const char *name, int n_dims, int64_t d0, int64_t d1,
                   int64_t d2, float base)
{
    const int64_t dims[3] = {d0, d1, d2};
    int64_t n = d0 * (n_dims > 1 ? d1 : 1) * (n_dims > 2 ? d2 : 1);
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = base + rnd();
    gw_tensor(w, name, 0 /* F32 */, (uint32_t)n_dims, dims, x);
    free(x);
}

/* The tiny model; skip names one tensor to leave out (NULL: none). */
static uint8_t *tiny_model(const char *skip, size_t *size)
{
    gguf_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "clip");
    gw_kv_bool(w, "clip.has_audio_encoder", true);
    gw_kv_str(w, "clip.projector_type", "ultravox");
    gw_kv_u32(w, "clip.audio.projection_dim", N_TEXT);
    gw_kv_u32(w, "clip.audio.embedding_length", D);
    gw_kv_u32(w, "clip.audio.feed_forward_length", N_FF);
    gw_kv_u32(w, "clip.audio.block_count", 1);
    gw_kv_u32(w, "clip.audio.attention.head_count", 2);
    gw_kv_f32(w, "clip.audio.attention.layer_norm_epsilon", 1e-5f);
    gw_kv_u32(w, "clip.audio.num_mel_bins", N_MEL);
    gw_kv_u32(w, "clip.audio.projector.stack_factor", STACK);
#define T(name, nd, a, b, c, base)                                                           \
    if (!skip || strcmp(skip, name))                                                         \
        tensor(w, name, nd, a, b, c, base);
    T("a.conv1d.1.weight", 3, 3, N_MEL, D, 0.0f)
    T("a.conv1d.1.bias", 2, 1, D, 1, 0.0f)
    T("a.conv1d.2.weight", 3, 3, D, D, 0.0f)
    T("a.conv1d.2.bias", 2, 1, D, 1, 0.0f)
    T("a.position_embd.weight", 2, D, N_POS, 1, 0.0f)
    T("a.blk.0.ln1.weight", 1, D, 1, 1, 1.0f)
    T("a.blk.0.ln1.bias", 1, D, 1, 1, 0.0f)
    T("a.blk.0.attn_q.weight", 2, D, D, 1, 0.0f)
    T("a.blk.0.attn_q.bias", 1, D, 1, 1, 0.0f)
    T("a.blk.0.attn_k.weight", 2, D, D, 1, 0.0f)
    T("a.blk.0.attn_v.weight", 2, D, D, 1, 0.0f)
    T("a.blk.0.attn_v.bias", 1, D, 1, 1, 0.0f)
    T("a.blk.0.attn_out.weight", 2, D, D, 1, 0.0f)
    T("a.blk.0.attn_out.bias", 1, D, 1, 1, 0.0f)
    T("a.blk.0.ln2.weight", 1, D, 1, 1, 1.0f)
    T("a.blk.0.ln2.bias", 1, D, 1, 1, 0.0f)
    T("a.blk.0.ffn_up.weight", 2, D, N_FF, 1, 0.0f)
    T("a.blk.0.ffn_up.bias", 1, N_FF, 1, 1, 0.0f)
    T("a.blk.0.ffn_down.weight", 2, N_FF, D, 1, 0.0f)
    T("a.blk.0.ffn_down.bias", 1, D, 1, 1, 0.0f)
    T("a.post_ln.weight", 1, D, 1, 1, 1.0f)
    T("a.post_ln.bias", 1, D, 1, 1, 0.0f)
    T("mm.a.norm_pre.weight", 1, D * STACK, 1, 1, 1.0f)
    T("mm.a.mlp.1.weight", 2, D * STACK, P, 1, 0.0f)
    T("mm.a.norm_mid.weight", 1, P / 2, 1, 1, 1.0f)
    T("mm.a.mlp.2.weight", 2, P / 2, N_TEXT, 1, 0.0f)
#undef T
    uint8_t *buf = gw_finish(w, size);
    gw_free(w);
    return buf;
}

typedef struct fixture {
    uint8_t *bytes;
    gguf_file *file;
    const backend_vtable *be;
    backend_ctx *bctx;
    float *pcm;                  /* [n_pcm] a chirp with a little noise */
    size_t n_pcm;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    size_t size = 0;
    rng_state = 12345;
    fx->bytes = tiny_model(NULL, &size);
    assert_int_equal(gguf_open_memory(fx->bytes, size, "tiny-audio", &fx->file), LMRT_OK);
    fx->be = backend_find(LMRT_BACKEND_CPU);
    assert_non_null(fx->be);
    assert_int_equal(fx->be->ctx_create(0, 2, &fx->bctx), LMRT_OK);
    fx->n_pcm = 16000 * 2;
    fx->pcm = malloc(fx->n_pcm * sizeof *fx->pcm);
    for (size_t i = 0; i < fx->n_pcm; i++) {
        double t = (double)i / 16000.0;
        fx->pcm[i] = (float)(0.3 * sin(2 * M_PI * (200.0 + 400.0 * t) * t)) + 0.01f * rnd();
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    fx->be->ctx_free(fx->bctx);
    gguf_close(fx->file);
    free(fx->bytes);
    free(fx->pcm);
    free(fx);
    return 0;
}

static void window_counts_round_up(void **state)
{
    (void)state;
    assert_int_equal(audio_mel_n_windows(0), 0);
    assert_int_equal(audio_mel_n_windows(1), 1);
    assert_int_equal(audio_mel_n_windows(480000), 1);
    assert_int_equal(audio_mel_n_windows(480001), 2);
}

static void mel_rejects_bad_sizes_and_windows(void **state)
{
    fixture *fx = *state;
    audio_mel *m = NULL;
    assert_int_equal(audio_mel_create(0, &m), LMRT_E_FORMAT);
    assert_int_equal(audio_mel_create(513, &m), LMRT_E_FORMAT);
    assert_null(m);
    assert_int_equal(audio_mel_create(80, &m), LMRT_OK);
    assert_int_equal(audio_mel_n_mel(m), 80);
    float *out = malloc((size_t)AUDIO_WINDOW_FRAMES * 80 * sizeof *out);
    assert_int_equal(audio_mel_window(m, fx->pcm, fx->n_pcm, 1, out), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_mel_window(m, fx->pcm, fx->n_pcm, 0, out), LMRT_OK);
    /* (x + 4) / 4 of a log10 clamped to 8 below the max: values within 2 of each other */
    float lo = out[0], hi = out[0];
    for (size_t i = 0; i < (size_t)AUDIO_WINDOW_FRAMES * 80; i++) {
        lo = out[i] < lo ? out[i] : lo;
        hi = out[i] > hi ? out[i] : hi;
    }
    assert_true(hi - lo <= 2.0f + 1e-6f);
    assert_true(hi - lo > 1.0f);   /* the padded silence sits at the floor */
    free(out);
    audio_mel_free(m);
    audio_mel_free(NULL);
}

static void encoder_binds_every_tensor_and_counts_tokens(void **state)
{
    fixture *fx = *state;
    assert_true(audio_file_has_encoder(fx->file));
    assert_false(audio_file_has_encoder(NULL));
    audio_encoder *e = NULL;
    assert_int_equal(audio_encoder_bind(fx->file, N_TEXT, fx->be, fx->bctx, &e), LMRT_OK);
    assert_int_equal(audio_encoder_n_bound(e), 26);   /* 11 + 15 per block */
    assert_int_equal(audio_encoder_n_tokens(e, 1), 188);
    assert_int_equal(audio_encoder_n_tokens(e, 480001), 2 * 188);
    float *embd = NULL;
    int32_t n_tok = 0;
    assert_int_equal(audio_encode(e, fx->pcm, fx->n_pcm, &embd, &n_tok), LMRT_OK);
    assert_int_equal(n_tok, 188);
    for (int32_t i = 0; i < n_tok * N_TEXT; i++)
        assert_true(isfinite(embd[i]));
    lmrt_mem_free(embd);
    audio_encoder_free(e);
    audio_encoder_free(NULL);
    assert_int_equal(audio_encoder_n_bound(NULL), 0);
}

static void bad_arguments_are_errors_and_leave_outputs(void **state)
{
    fixture *fx = *state;
    audio_encoder *e = NULL;
    assert_int_equal(audio_encoder_bind(fx->file, 0, fx->be, fx->bctx, &e), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_encoder_bind(fx->file, N_TEXT + 1, fx->be, fx->bctx, &e),
                     LMRT_E_FORMAT);
    assert_non_null(strstr(lmrt_last_error(), "projection_dim"));
    assert_null(e);
    assert_int_equal(audio_encoder_bind(fx->file, N_TEXT, fx->be, fx->bctx, &e), LMRT_OK);
    float *embd = (float *)&embd;
    int32_t n_tok = -7;
    assert_int_equal(audio_encode(e, fx->pcm, 0, &embd, &n_tok), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_encode(e, NULL, 10, &embd, &n_tok), LMRT_E_INVALID_ARG);
    assert_ptr_equal(embd, (float *)&embd);
    assert_int_equal(n_tok, -7);
    audio_encoder_free(e);
}

static void missing_tensor_is_format_error_naming_it(void **state)
{
    fixture *fx = *state;
    static const char *names[] = {"a.conv1d.1.bias", "a.blk.0.attn_k.weight",
                                  "mm.a.mlp.2.weight", "a.post_ln.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t size = 0;
        uint8_t *bytes = tiny_model(names[i], &size);
        gguf_file *f = NULL;
        assert_int_equal(gguf_open_memory(bytes, size, "hostile", &f), LMRT_OK);
        audio_encoder *e = NULL;
        assert_int_equal(audio_encoder_bind(f, N_TEXT, fx->be, fx->bctx, &e), LMRT_E_FORMAT);
        assert_null(e);
        assert_non_null(strstr(lmrt_last_error(), names[i]));
        gguf_close(f);
        free(bytes);
    }
}

static void allocation_failures_are_nomem_and_leak_nothing(void **state)
{
    fixture *fx = *state;
    for (long n = 0;; n++) {
        lmrt_alloc_fail_after(n);
        audio_encoder *e = NULL;
        float *embd = NULL;
        int32_t n_tok = 0;
        lmrt_status st = audio_encoder_bind(fx->file, N_TEXT, fx->be, fx->bctx, &e);
        if (st == LMRT_OK)
            st = audio_encode(e, fx->pcm, 4000, &embd, &n_tok);
        lmrt_alloc_fail_after(-1);
        lmrt_mem_free(embd);
        audio_encoder_free(e);
        if (st == LMRT_OK)
            break;
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_true(n < 1000);
    }
}

static void results_do_not_depend_on_thread_count(void **state)
{
    fixture *fx = *state;
    float *out[2] = {NULL, NULL};
    int32_t n_tok[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        backend_ctx *bctx = NULL;
        assert_int_equal(fx->be->ctx_create(0, i ? 3 : 1, &bctx), LMRT_OK);
        audio_encoder *e = NULL;
        assert_int_equal(audio_encoder_bind(fx->file, N_TEXT, fx->be, bctx, &e), LMRT_OK);
        assert_int_equal(audio_encode(e, fx->pcm, fx->n_pcm, &out[i], &n_tok[i]), LMRT_OK);
        audio_encoder_free(e);
        fx->be->ctx_free(bctx);
    }
    assert_int_equal(n_tok[0], n_tok[1]);
    assert_memory_equal(out[0], out[1], (size_t)n_tok[0] * N_TEXT * sizeof(float));
    lmrt_mem_free(out[0]);
    lmrt_mem_free(out[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(window_counts_round_up),
        cmocka_unit_test(mel_rejects_bad_sizes_and_windows),
        cmocka_unit_test(encoder_binds_every_tensor_and_counts_tokens),
        cmocka_unit_test(bad_arguments_are_errors_and_leave_outputs),
        cmocka_unit_test(missing_tensor_is_format_error_naming_it),
        cmocka_unit_test(allocation_failures_are_nomem_and_leak_nothing),
        cmocka_unit_test(results_do_not_depend_on_thread_count),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
