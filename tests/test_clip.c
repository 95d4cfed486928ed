/* test_clip.c - the mmproj CLIP encoder's loader and its failure paths: a tiny
 * in-memory projector file binds and encodes; every missing tensor, wrong shape,
 * wrong projector type or unsupported option is the right error naming it; every
 * allocation failing in turn is LMRT_E_NOMEM without leaks (run under ASan). The
 * numbers themselves are checked against the float64 reference by
 * tests/vision/test_clip_reference.py. */
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
#include "model/vision_clip.h"
#include "tensor/types.h"

/* image 16, patch 4 (16 patches), n_embd 8, n_ff 16, 2 heads, 3 blocks (2 run),
 * projector 8 -> 12 -> 12 (the "text model" n_embd). */
enum { S = 16, P = 4, E = 8, F = 16, NH = 2, NB = 3, MM = 12, TXT = 12, NPOS = 17 };

typedef struct spec {
    const char *skip;            /* tensor left out */
    const char *reshape;         /* tensor whose last dim grows by 1 */
    const char *proj_type;       /* NULL: "mlp" */
    bool legacy_ffn;             /* fc1 named ffn_down */
    bool silu;
    int n_feature_layers;        /* 0: no key */
    bool no_vision;
    const char *skip_key;
    uint32_t matrix_type;        /* GGML_TYPE_F32 or _F16 */
} spec;

static uint32_t rng_state;

static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void tensor(gguf_writer *w, const spec *s, const char *name, uint32_t n_dims,
                   int64_t d0, int64_t d1, int64_t d2, int64_t d3, float scale, float offset)
{
    if (s->skip && strcmp(s->skip, name) == 0)
        return;
    int64_t dims[4] = {d0, d1, d2, d3};
    if (s->reshape && strcmp(s->reshape, name) == 0)
        dims[n_dims - 1] += 1;
    int64_t n = 1;
    for (uint32_t i = 0; i < n_dims; i++)
        n *= dims[i];
    uint32_t type = n_dims >= 2 ? s->matrix_type : GGML_TYPE_F32;
    float *x = malloc((size_t)n * sizeof *x);
    uint16_t *h = malloc((size_t)n * sizeof *h);
    assert_true(x && h);
    for (int64_t i = 0; i < n; i++) {
        x[i] = offset + scale * frand();
        if (type == GGML_TYPE_F16) {     /* truncated to half; tiny values flush to 0 */
            uint32_t bits;
            memcpy(&bits, &x[i], 4);
            uint32_t sign = (bits >> 16) & 0x8000u;
            int32_t ex = (int32_t)((bits >> 23) & 0xff) - 127 + 15;
            h[i] = (uint16_t)(ex <= 0 ? sign
                              : sign | ((uint32_t)ex << 10) | ((bits >> 13) & 0x3ffu));
        }
    }
    gw_tensor(w, name, type, n_dims, dims, type == GGML_TYPE_F16 ? (void *)h : (void *)x);
    free(x);
    free(h);
}

static void key_u32(gguf_writer *w, const spec *s, const char *key, uint32_t v)
{
    if (!s->skip_key || strcmp(s->skip_key, key) != 0)
        gw_kv_u32(w, key, v);
}

static uint8_t *build(const spec *s, size_t *size)
{
    rng_state = 12345;
    gguf_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "clip");
    gw_kv_bool(w, "clip.has_vision_encoder", !s->no_vision);
    gw_kv_str(w, "clip.projector_type", s->proj_type ? s->proj_type : "mlp");
    if (s->silu)
        gw_kv_bool(w, "clip.use_silu", true);
    key_u32(w, s, "clip.vision.image_size", S);
    key_u32(w, s, "clip.vision.patch_size", P);
    key_u32(w, s, "clip.vision.embedding_length", E);
    key_u32(w, s, "clip.vision.feed_forward_length", F);
    key_u32(w, s, "clip.vision.attention.head_count", NH);
    key_u32(w, s, "clip.vision.block_count", NB);
    gw_kv_f32(w, "clip.vision.attention.layer_norm_epsilon", 1e-5f);
    const float mean[3] = {0.48f, 0.46f, 0.41f}, std[3] = {0.27f, 0.26f, 0.28f};
    gw_kv_arr(w, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, mean, 3);
    gw_kv_arr(w, "clip.vision.image_std", GGUF_TYPE_FLOAT32, std, 3);
    if (s->n_feature_layers) {
        const int32_t fl[2] = {2, 3};
        gw_kv_arr(w, "clip.vision.feature_layer", GGUF_TYPE_INT32, fl,
                  (uint64_t)s->n_feature_layers);
    }
    tensor(w, s, "v.patch_embd.weight", 4, P, P, 3, E, 0.3f, 0);
    tensor(w, s, "v.patch_embd.bias", 1, E, 1, 1, 1, 0.1f, 0);
    tensor(w, s, "v.class_embd", 1, E, 1, 1, 1, 1.0f, 0);
    tensor(w, s, "v.position_embd.weight", 2, E, NPOS, 1, 1, 1.0f, 0);
    tensor(w, s, "v.pre_ln.weight", 1, E, 1, 1, 1, 0.2f, 1.0f);
    tensor(w, s, "v.pre_ln.bias", 1, E, 1, 1, 1, 0.1f, 0);
    for (int l = 0; l < NB; l++) {
        char n[64];
#define T(suffix, nd, a, b, sc, off) \
    (snprintf(n, sizeof n, "v.blk.%d." suffix, l), tensor(w, s, n, nd, a, b, 1, 1, sc, off))
        T("ln1.weight", 1, E, 1, 0.2f, 1.0f);
        T("ln1.bias", 1, E, 1, 0.1f, 0);
        T("attn_q.weight", 2, E, E, 0.7f, 0);
        T("attn_q.bias", 1, E, 1, 0.1f, 0);
        T("attn_k.weight", 2, E, E, 0.7f, 0);
        T("attn_k.bias", 1, E, 1, 0.1f, 0);
        T("attn_v.weight", 2, E, E, 0.7f, 0);
        T("attn_v.bias", 1, E, 1, 0.1f, 0);
        T("attn_out.weight", 2, E, E, 0.7f, 0);
        T("attn_out.bias", 1, E, 1, 0.1f, 0);
        T("ln2.weight", 1, E, 1, 0.2f, 1.0f);
        T("ln2.bias", 1, E, 1, 0.1f, 0);
        if (s->legacy_ffn) {
            T("ffn_down.weight", 2, E, F, 0.7f, 0);
            T("ffn_down.bias", 1, F, 1, 0.1f, 0);
            T("ffn_up.weight", 2, F, E, 0.5f, 0);
            T("ffn_up.bias", 1, E, 1, 0.1f, 0);
        } else {
            T("ffn_up.weight", 2, E, F, 0.7f, 0);
            T("ffn_up.bias", 1, F, 1, 0.1f, 0);
            T("ffn_down.weight", 2, F, E, 0.5f, 0);
            T("ffn_down.bias", 1, E, 1, 0.1f, 0);
        }
#undef T
    }
    tensor(w, s, "mm.0.weight", 2, E, MM, 1, 1, 0.7f, 0);
    tensor(w, s, "mm.0.bias", 1, MM, 1, 1, 1, 0.1f, 0);
    tensor(w, s, "mm.2.weight", 2, MM, TXT, 1, 1, 0.6f, 0);
    tensor(w, s, "mm.2.bias", 1, TXT, 1, 1, 1, 0.1f, 0);
    uint8_t *data = gw_finish(w, size);
    gw_free(w);
    return data;
}

typedef struct fixture {
    const backend_vtable *be;
    backend_ctx *bctx;
} fixture;

static int setup(void **state)
{
    static fixture fx;
    fx.be = backend_find(LMRT_BACKEND_CPU);
    if (!fx.be || fx.be->ctx_create(0, 2, &fx.bctx) != LMRT_OK)
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    fx->be->ctx_free(fx->bctx);
    return 0;
}

/* A file built from a spec, opened, and (when it binds) its encoder. The CPU backend
 * binds weights in place, so the buffer lives as long as the encoder. */
typedef struct loaded {
    uint8_t *data;
    gguf_file *f;
    clip_encoder *e;
} loaded;

static lmrt_status load(fixture *fx, const spec *s, loaded *out)
{
    size_t size;
    out->data = build(s, &size);
    out->f = NULL;
    out->e = NULL;
    assert_int_equal(gguf_open_memory(out->data, size, "clip.gguf", &out->f), LMRT_OK);
    return clip_encoder_bind(out->f, TXT, fx->be, fx->bctx, &out->e);
}

static void unload(loaded *l)
{
    clip_encoder_free(l->e);
    gguf_close(l->f);
    free(l->data);
}

/* Binds a file built from `s` and lets it go; returns the status, the message in
 * `msg`. */
static lmrt_status try_bind(fixture *fx, const spec *s, char *msg, size_t msg_size)
{
    loaded l;
    lmrt_status st = load(fx, s, &l);
    snprintf(msg, msg_size, "%s", st ? lmrt_last_error() : "");
    if (st == LMRT_OK)
        assert_non_null(l.e);
    else
        assert_null(l.e);
    unload(&l);
    return st;
}

static image_rgb8 test_image(int32_t w, int32_t h)
{
    image_rgb8 img = {.width = w, .height = h, .pixels = malloc((size_t)w * (size_t)h * 3)};
    assert_non_null(img.pixels);
    for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++)
        img.pixels[i] = (uint8_t)(i * 37 % 251);
    return img;
}

static void good_file_binds_and_encodes(void **state)
{
    fixture *fx = *state;
    const spec specs[] = {{.matrix_type = GGML_TYPE_F32}, {.matrix_type = GGML_TYPE_F16}};
    for (size_t k = 0; k < 2; k++) {
        size_t size;
        uint8_t *data = build(&specs[k], &size);
        gguf_file *f = NULL;
        assert_int_equal(gguf_open_memory(data, size, "clip.gguf", &f), LMRT_OK);
        assert_true(clip_file_has_vision(f));
        clip_encoder *e = NULL;
        lmrt_status st = clip_encoder_bind(f, TXT, fx->be, fx->bctx, &e);
        if (st)
            fail_msg("%s", lmrt_last_error());
        assert_int_equal(clip_encoder_n_tokens(e), 16);
        /* patch w+b, class, pos, pre_ln 2, 2 run blocks x 16, mm 4: block 2 unbound */
        assert_int_equal(clip_encoder_n_bound(e), 4 + 2 + 2 * 16 + 4);
        image_rgb8 img = test_image(23, 9);
        float out1[16 * TXT], out2[16 * TXT];
        assert_int_equal(clip_encode_image(e, &img, out1), LMRT_OK);
        assert_int_equal(clip_encode_image(e, &img, out2), LMRT_OK);
        assert_memory_equal(out1, out2, sizeof out1);     /* deterministic */
        for (size_t i = 0; i < 16 * TXT; i++)
            assert_true(isfinite(out1[i]));
        free(img.pixels);
        clip_encoder_free(e);
        gguf_close(f);
        free(data);
    }
}

/* The legacy converter named fc1 "ffn_down"; the shapes say so, and the encoder
 * then computes exactly what the same weights under today's names give. */
static void legacy_ffn_names_are_recognized(void **state)
{
    fixture *fx = *state;
    loaded now, old;
    spec s_now = {.matrix_type = GGML_TYPE_F32}, s_old = s_now;
    s_old.legacy_ffn = true;
    assert_int_equal(load(fx, &s_now, &now), LMRT_OK);
    assert_int_equal(load(fx, &s_old, &old), LMRT_OK);
    assert_int_equal(clip_encoder_n_bound(old.e), clip_encoder_n_bound(now.e));
    /* The two files hold different random numbers for fc1 and fc2 (drawn in another
     * order), so here both only have to run; test_clip_reference.py checks a
     * legacy-named file's numbers against the reference. */
    image_rgb8 img = test_image(16, 16);
    float out[16 * TXT];
    assert_int_equal(clip_encode_image(old.e, &img, out), LMRT_OK);
    assert_int_equal(clip_encode_image(now.e, &img, out), LMRT_OK);
    free(img.pixels);
    unload(&now);
    unload(&old);
}

static void expect(fixture *fx, const spec *s, lmrt_status want, const char *needle)
{
    char msg[512];
    lmrt_status st = try_bind(fx, s, msg, sizeof msg);
    if (st != want || !strstr(msg, needle))
        fail_msg("want status %d with '%s', got %d: %s", (int)want, needle, (int)st, msg);
}

static void missing_tensors_are_named(void **state)
{
    fixture *fx = *state;
    const char *names[] = {"v.patch_embd.weight", "v.position_embd.weight",
                           "v.blk.1.attn_k.weight", "v.blk.0.ln2.bias", "v.blk.1.ffn_down.weight",
                           "mm.0.weight", "mm.2.weight", "mm.2.bias", "v.pre_ln.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        spec s = {.matrix_type = GGML_TYPE_F32, .skip = names[i]};
        expect(fx, &s, LMRT_E_FORMAT, names[i]);
    }
    /* tensors of the block that is not run may be absent */
    spec s = {.matrix_type = GGML_TYPE_F32, .skip = "v.blk.2.attn_q.weight"};
    char msg[512];
    assert_int_equal(try_bind(fx, &s, msg, sizeof msg), LMRT_OK);
}

static void wrong_shapes_are_named(void **state)
{
    fixture *fx = *state;
    const char *names[] = {"v.patch_embd.weight", "v.position_embd.weight",
                           "v.blk.0.attn_q.weight", "v.blk.1.ln1.weight", "v.blk.0.ffn_up.bias",
                           "mm.0.bias", "mm.2.weight", "v.class_embd"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        spec s = {.matrix_type = GGML_TYPE_F32, .reshape = names[i]};
        expect(fx, &s, LMRT_E_FORMAT, names[i]);
    }
}

static void unsupported_options_are_named(void **state)
{
    fixture *fx = *state;
    spec s = {.matrix_type = GGML_TYPE_F32, .proj_type = "ldpv2"};
    expect(fx, &s, LMRT_E_UNSUPPORTED, "'ldpv2'");
    s.proj_type = "resampler";
    expect(fx, &s, LMRT_E_UNSUPPORTED, "'resampler'");
    s.proj_type = NULL;
    s.silu = true;
    expect(fx, &s, LMRT_E_UNSUPPORTED, "use_silu");
    s.silu = false;
    s.n_feature_layers = 2;
    expect(fx, &s, LMRT_E_UNSUPPORTED, "feature_layer");
    s.n_feature_layers = 1;                   /* [2]: two blocks, as the default */
    char msg[512];
    assert_int_equal(try_bind(fx, &s, msg, sizeof msg), LMRT_OK);
}

static void missing_keys_are_named(void **state)
{
    fixture *fx = *state;
    const char *keys[] = {"clip.vision.image_size", "clip.vision.patch_size",
                          "clip.vision.embedding_length", "clip.vision.block_count",
                          "clip.vision.attention.head_count"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        spec s = {.matrix_type = GGML_TYPE_F32, .skip_key = keys[i]};
        expect(fx, &s, LMRT_E_FORMAT, keys[i]);
    }
    spec s = {.matrix_type = GGML_TYPE_F32, .no_vision = true};
    expect(fx, &s, LMRT_E_FORMAT, "has_vision_encoder");
}

static void text_width_mismatch_is_format_error(void **state)
{
    fixture *fx = *state;
    size_t size;
    spec s = {.matrix_type = GGML_TYPE_F32};
    uint8_t *data = build(&s, &size);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(data, size, "clip.gguf", &f), LMRT_OK);
    clip_encoder *e = NULL;
    assert_int_equal(clip_encoder_bind(f, 256, fx->be, fx->bctx, &e), LMRT_E_FORMAT);
    assert_null(e);
    assert_non_null(strstr(lmrt_last_error(), "mm.2.weight"));
    gguf_close(f);
    free(data);
}

static void allocation_failures_are_nomem_without_leaks(void **state)
{
    fixture *fx = *state;
    size_t size;
    spec s = {.matrix_type = GGML_TYPE_F32};
    uint8_t *data = build(&s, &size);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(data, size, "clip.gguf", &f), LMRT_OK);
    image_rgb8 img = test_image(20, 12);
    float want[16 * TXT], got[16 * TXT];
    clip_encoder *e = NULL;
    assert_int_equal(clip_encoder_bind(f, TXT, fx->be, fx->bctx, &e), LMRT_OK);
    assert_int_equal(clip_encode_image(e, &img, want), LMRT_OK);
    clip_encoder_free(e);
    for (long n = 0;; n++) {                   /* bind and encode, the n-th alloc failing */
        lmrt_alloc_fail_after(n);
        e = NULL;
        lmrt_status st = clip_encoder_bind(f, TXT, fx->be, fx->bctx, &e);
        if (st == LMRT_OK)
            st = clip_encode_image(e, &img, got);
        lmrt_alloc_fail_after(-1);
        clip_encoder_free(e);
        if (st == LMRT_OK) {
            assert_memory_equal(got, want, sizeof want);
            break;
        }
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_true(n < 10000);
    }
    free(img.pixels);
    gguf_close(f);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_file_binds_and_encodes),
        cmocka_unit_test(legacy_ffn_names_are_recognized),
        cmocka_unit_test(missing_tensors_are_named),
        cmocka_unit_test(wrong_shapes_are_named),
        cmocka_unit_test(unsupported_options_are_named),
        cmocka_unit_test(missing_keys_are_named),
        cmocka_unit_test(text_width_mismatch_is_format_error),
        cmocka_unit_test(allocation_failures_are_nomem_without_leaks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
