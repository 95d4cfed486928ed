/* test_mllama_vision.c - the mllama (Llama 3.2 Vision) tiling rule, preprocessing and
 * encoder binding: HF's aspect-ratio list and canvas choice, tile order and padding,
 * hostile files (every missing or misshapen key and tensor named), and allocation
 * failures in bind and encode (LMRT_E_NOMEM, no leaks under ASan). Numerical agreement
 * with the float64 reference is tests/vision/test_mllama_reference.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf.h"
#include "gguf_writer.h"
#include "model/mllama_preprocess.h"
#include "model/vision_mllama.h"
#include "tensor/types.h"

/* ---- tiling rule ---------------------------------------------------------------- */

static void aspect_ratios_are_hf_list(void **state)
{
    (void)state;
    /* HF get_all_supported_aspect_ratios(4), read as (height, width) */
    static const int32_t want[8][2] = {{1, 1}, {1, 2}, {1, 3}, {1, 4},
                                       {2, 1}, {2, 2}, {3, 1}, {4, 1}};
    assert_int_equal(mllama_aspect_ratio_count(4), 8);
    assert_int_equal(mllama_aspect_ratio_count(1), 1);
    assert_int_equal(mllama_aspect_ratio_count(6), 14);
    for (int32_t id = 1; id <= 8; id++) {
        int32_t h = 0, w = 0;
        assert_int_equal(mllama_aspect_ratio(4, id, &h, &w), LMRT_OK);
        assert_int_equal(h, want[id - 1][0]);
        assert_int_equal(w, want[id - 1][1]);
    }
    int32_t h, w;
    assert_int_equal(mllama_aspect_ratio(4, 0, &h, &w), LMRT_E_INVALID_ARG);
    assert_int_equal(mllama_aspect_ratio(4, 9, &h, &w), LMRT_E_INVALID_ARG);
    assert_int_equal(mllama_aspect_ratio(0, 1, &h, &w), LMRT_E_INVALID_ARG);
}

static void canvas_choice_follows_hf(void **state)
{
    (void)state;
    /* w, h -> tiles_h, tiles_w, id, resize_w, resize_h for 560-pixel tiles, 4 tiles;
     * worked by hand from HF's get_optimal_tiled_canvas / _fit_to_canvas and equal to
     * scripts/reference_mllama_vision.py --plan. */
    static const int32_t cases[][7] = {
        {560, 560, 1, 1, 1, 560, 560},    /* scale exactly 1 is an "upscale": 1x1 */
        {1120, 560, 1, 2, 2, 1120, 560},  /* wide: one row of two tiles, id 2 */
        {560, 1120, 2, 1, 5, 560, 1120},  /* tall: (2, 1) is id 5 */
        {100, 50, 1, 1, 1, 560, 280},     /* small: smallest upscale, aspect kept */
        {1121, 560, 1, 3, 3, 1121, 560},  /* just over two tiles: three, no resize */
        {2000, 100, 1, 4, 4, 2000, 100},  /* panorama: 1x4, height stays 100 */
        {10000, 1, 1, 4, 4, 2240, 1},     /* 0.224 px high: kept at one pixel */
        {3000, 3000, 2, 2, 6, 1120, 1120},/* large square: mildest downscale, 2x2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mllama_tiling t;
        assert_int_equal(mllama_plan_tiling(cases[i][0], cases[i][1], 560, 4, &t), LMRT_OK);
        assert_int_equal(t.tiles_h, cases[i][2]);
        assert_int_equal(t.tiles_w, cases[i][3]);
        assert_int_equal(t.aspect_ratio_id, cases[i][4]);
        assert_int_equal(t.resize_w, cases[i][5]);
        assert_int_equal(t.resize_h, cases[i][6]);
    }
    mllama_tiling t;
    assert_int_equal(mllama_plan_tiling(0, 10, 560, 4, &t), LMRT_E_INVALID_ARG);
    assert_int_equal(mllama_plan_tiling(10, 10, 0, 4, &t), LMRT_E_INVALID_ARG);
    assert_int_equal(mllama_plan_tiling(10, 10, 560, MLLAMA_MAX_TILES + 1, &t),
                     LMRT_E_INVALID_ARG);
}

/* A picture of exactly two 4-pixel tiles side by side resizes onto itself (PIL's
 * bilinear at scale 1 is the identity), so the tiles hold the left and right halves,
 * normalized; a 4x3 picture leaves the bottom row as padding = normalized black. */
static void tiles_are_row_major_and_padded_black(void **state)
{
    (void)state;
    const float mean[3] = {0.5f, 0.25f, 0.0f}, std[3] = {0.5f, 0.25f, 1.0f};
    uint8_t px[4 * 8 * 3];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
            for (int c = 0; c < 3; c++)
                px[(y * 8 + x) * 3 + c] = (uint8_t)(x < 4 ? 51 : 204);
    image_rgb8 img = {8, 4, px};
    mllama_tiling t;
    float *tiles = NULL;
    assert_int_equal(mllama_preprocess(&img, 4, 4, mean, std, &t, &tiles), LMRT_OK);
    assert_int_equal(t.tiles_h, 1);
    assert_int_equal(t.tiles_w, 2);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 16; i++)
            for (int c = 0; c < 3; c++) {
                float v = (k == 0 ? 51.0f : 204.0f) / 255.0f;
                assert_float_equal(tiles[(k * 16 + i) * 3 + c], (v - mean[c]) / std[c], 1e-5);
            }
    lmrt_mem_free(tiles);

    image_rgb8 small = {4, 3, px};   /* rows of 8 read as rows of 4: any values */
    assert_int_equal(mllama_preprocess(&small, 4, 4, mean, std, &t, &tiles), LMRT_OK);
    assert_int_equal(t.tiles_h * t.tiles_w, 1);
    assert_int_equal(t.resize_w, 4);
    assert_int_equal(t.resize_h, 3);   /* fits in one tile: no upscale past the canvas */
    for (int x = 0; x < 4; x++)
        for (int c = 0; c < 3; c++)
            assert_float_equal(tiles[(3 * 4 + x) * 3 + c], -mean[c] / std[c], 1e-6);
    lmrt_mem_free(tiles);
}

/* ---- a tiny mllama vision file, valid or broken on purpose ------------------------- */

typedef struct spec {
    int32_t E, F, H, n_layer, n_global, S, P, T, n_inter, inter[4], text;
    bool legacy;
    const char *skip_tensor;   /* leave out */
    const char *grow_tensor;   /* last dim + 1 */
    const char *f16_tensor;    /* stored as F16 */
    const char *skip_key;      /* leave out */
} spec;

static const spec GOOD = {.E = 8, .F = 16, .H = 2, .n_layer = 2, .n_global = 1, .S = 4,
                          .P = 2, .T = 2, .n_inter = 2, .inter = {0, 2}, .text = 12};

static uint32_t rng_state;

static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return ((float)(rng_state >> 8) / 16777216.0f - 0.5f);
}

static void tensor(gguf_writer *w, const spec *s, const char *name, uint32_t n_dims,
                   int64_t d0, int64_t d1)
{
    if (s->skip_tensor && strcmp(name, s->skip_tensor) == 0)
        return;
    int64_t dims[2] = {d0, d1};
    if (s->grow_tensor && strcmp(name, s->grow_tensor) == 0)
        dims[n_dims - 1]++;
    size_t n = (size_t)(dims[0] * (n_dims > 1 ? dims[1] : 1));
    bool f16 = s->f16_tensor && strcmp(name, s->f16_tensor) == 0;
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = strstr(name, "gate") ? 0.5f : frand();
    gw_tensor(w, name, f16 ? GGML_TYPE_F16 : GGML_TYPE_F32, n_dims, dims, f16 ? NULL : x);
    free(x);
}

static void key_u32(gguf_writer *w, const spec *s, const char *key, uint32_t v)
{
    if (!s->skip_key || strcmp(key, s->skip_key) != 0)
        gw_kv_u32(w, key, v);
}

static uint8_t *build(const spec *s, size_t *size)
{
    rng_state = 12345;
    gguf_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "mllama");
    key_u32(w, s, "mllama.vision.block_count", (uint32_t)s->n_layer);
    key_u32(w, s, "mllama.vision.global.block_count", (uint32_t)s->n_global);
    key_u32(w, s, "mllama.vision.embedding_length", (uint32_t)s->E);
    key_u32(w, s, "mllama.vision.feed_forward_length", (uint32_t)s->F);
    key_u32(w, s, "mllama.vision.attention.head_count", (uint32_t)s->H);
    key_u32(w, s, "mllama.vision.image_size", (uint32_t)s->S);
    key_u32(w, s, "mllama.vision.patch_size", (uint32_t)s->P);
    key_u32(w, s, "mllama.vision.max_num_tiles", (uint32_t)s->T);
    if (!s->skip_key || strcmp(s->skip_key, "mllama.vision.attention.layer_norm_epsilon"))
        gw_kv_f32(w, "mllama.vision.attention.layer_norm_epsilon", 1e-5f);
    if (!s->skip_key || strcmp(s->skip_key, "mllama.vision.intermediate_layers_indices"))
        gw_kv_arr(w, "mllama.vision.intermediate_layers_indices", GGUF_TYPE_INT32, s->inter,
                  (uint64_t)s->n_inter);
    const int64_t E = s->E, F = s->F, T = s->T, side = s->S / s->P;
    const int64_t n_pos = side * side + 1, n_ar = mllama_aspect_ratio_count(s->T) + 1;
    tensor(w, s, "v.patch_embd.weight", 2, 3 * s->P * s->P, E);
    tensor(w, s, "v.class_embd", 1, E, 1);
    tensor(w, s, "v.position_embd.weight", 2, E, n_pos);
    tensor(w, s, "v.tile_position_embd.weight", 2, T * n_pos * E, n_ar);
    tensor(w, s, "v.pre_tile_position_embd.weight", 2, T * E, n_ar);
    tensor(w, s, "v.post_tile_position_embd.weight", 2, T * E, n_ar);
    const char *gates[] = {"v.position_embd.gate", "v.tile_position_embd.gate",
                           "v.pre_tile_position_embd.gate", "v.post_tile_position_embd.gate"};
    for (int i = 0; i < 4; i++)
        tensor(w, s, gates[i], 1, 1, 1);
    const char *ln[] = {"v.pre_ln.weight", "v.pre_ln.bias", "v.post_ln.weight", "v.post_ln.bias"};
    for (int i = 0; i < 4; i++)
        tensor(w, s, ln[i], 1, E, 1);
    const char *n1 = s->legacy ? "ln1" : "attn_norm", *n2 = s->legacy ? "ln2" : "ffn_norm";
    const char *ao = s->legacy ? "attn_out" : "attn_output";
    const char *fc1 = s->legacy ? "ffn_down" : "ffn_up", *fc2 = s->legacy ? "ffn_up" : "ffn_down";
    for (int32_t l = 0; l < s->n_layer + s->n_global; l++) {
        char p[64], name[128];
        bool global = l >= s->n_layer;
        snprintf(p, sizeof p, "%s.%d.", global ? "v.global.blk" : "v.blk",
                 (int)(global ? l - s->n_layer : l));
#define T1(suffix, d0) (snprintf(name, sizeof name, "%s%s", p, suffix), tensor(w, s, name, 1, d0, 1))
#define T2(part, d0, d1) (snprintf(name, sizeof name, "%s%s.weight", p, part), tensor(w, s, name, 2, d0, d1))
        char b[64];
        snprintf(b, sizeof b, "%s.weight", n1), T1(b, E);
        snprintf(b, sizeof b, "%s.bias", n1), T1(b, E);
        T2("attn_q", E, E), T2("attn_k", E, E), T2("attn_v", E, E), T2(ao, E, E);
        snprintf(b, sizeof b, "%s.weight", n2), T1(b, E);
        snprintf(b, sizeof b, "%s.bias", n2), T1(b, E);
        T2(fc1, E, F);
        snprintf(b, sizeof b, "%s.bias", fc1), T1(b, F);
        T2(fc2, F, E);
        snprintf(b, sizeof b, "%s.bias", fc2), T1(b, E);
        if (global)
            T1("attn_gate", 1), T1("ffn_gate", 1);
#undef T1
#undef T2
    }
    tensor(w, s, "mm.0.weight", 2, E * (1 + s->n_inter), s->text);
    tensor(w, s, "mm.0.bias", 1, s->text, 1);
    uint8_t *buf = gw_finish(w, size);
    gw_free(w);
    return buf;
}

typedef struct fixture {
    const backend_vtable *be;
    backend_ctx *bctx;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->be = backend_find(LMRT_BACKEND_CPU);
    if (!fx->be || fx->be->ctx_create(0, 2, &fx->bctx))
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    fx->be->ctx_free(fx->bctx);
    free(fx);
    return 0;
}

/* Binds a file built from s with text width `text`; keeps the message. */
static lmrt_status try_bind(fixture *fx, const spec *s, int32_t text, char *msg, size_t cap,
                            mllama_vision **out, gguf_file **fout, uint8_t **bout)
{
    size_t size;
    uint8_t *buf = build(s, &size);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "mllama-test.gguf", &f), LMRT_OK);
    mllama_vision *v = NULL;
    lmrt_status st = mllama_vision_bind(f, text, fx->be, fx->bctx, &v);
    snprintf(msg, cap, "%s", st ? lmrt_last_error() : "");
    if (out && !st) {
        *out = v;
        *fout = f;
        *bout = buf;
        return st;
    }
    mllama_vision_free(v);
    gguf_close(f);
    free(buf);
    return st;
}

static void expect(fixture *fx, const spec *s, lmrt_status want, const char *needle)
{
    char msg[512];
    lmrt_status st = try_bind(fx, s, s->text, msg, sizeof msg, NULL, NULL, NULL);
    if (st != want || !strstr(msg, needle))
        fail_msg("want %d naming '%s', got %d: %s", (int)want, needle, (int)st, msg);
}

static void good_file_binds_and_encodes(void **state)
{
    fixture *fx = *state;
    for (int legacy = 0; legacy < 2; legacy++) {
        spec s = GOOD;
        s.legacy = legacy;
        char msg[512];
        mllama_vision *v = NULL;
        gguf_file *f = NULL;
        uint8_t *buf = NULL;
        assert_int_equal(try_bind(fx, &s, s.text, msg, sizeof msg, &v, &f, &buf), LMRT_OK);
        assert_true(mllama_file_has_vision(f));
        /* 10 top-level tensors, 12 per block, mm.0 weight and bias */
        assert_int_equal(mllama_vision_n_bound(v), 10 + 12 * 3 + 2);
        assert_int_equal(mllama_vision_tokens_per_tile(v), 5);
        assert_int_equal(mllama_vision_max_tiles(v), 2);
        uint8_t px[6 * 3 * 3];
        for (size_t i = 0; i < sizeof px; i++)
            px[i] = (uint8_t)(i * 37);
        image_rgb8 img = {6, 3, px};   /* 2:1 -> (1, 2), both tiles */
        float *feat = NULL;
        int32_t n = 0;
        assert_int_equal(mllama_vision_encode(v, &img, &feat, &n), LMRT_OK);
        assert_int_equal(n, 2 * 5);
        for (int32_t i = 0; i < n * s.text; i++)
            assert_true(isfinite(feat[i]));
        lmrt_mem_free(feat);
        mllama_vision_free(v);
        gguf_close(f);
        free(buf);
    }
}

static void file_without_vision_is_detected(void **state)
{
    (void)state;
    gguf_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "llama");
    size_t size;
    uint8_t *buf = gw_finish(w, &size);
    gw_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "text.gguf", &f), LMRT_OK);
    assert_false(mllama_file_has_vision(f));
    assert_false(mllama_file_has_vision(NULL));
    gguf_close(f);
    free(buf);
}

static void missing_tensors_are_named(void **state)
{
    fixture *fx = *state;
    const char *names[] = {"v.patch_embd.weight", "v.class_embd", "v.tile_position_embd.weight",
                           "v.post_tile_position_embd.gate", "v.pre_ln.bias",
                           "v.blk.1.attn_q.weight", "v.blk.0.ffn_down.bias",
                           "v.global.blk.0.ffn_gate", "v.global.blk.0.attn_norm.weight",
                           "mm.0.weight", "mm.0.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        spec s = GOOD;
        s.skip_tensor = names[i];
        expect(fx, &s, LMRT_E_FORMAT, names[i]);
    }
}

static void wrong_shapes_and_types_are_named(void **state)
{
    fixture *fx = *state;
    const char *grow[] = {"v.patch_embd.weight", "v.position_embd.weight",
                          "v.tile_position_embd.weight", "v.pre_tile_position_embd.weight",
                          "v.blk.0.attn_k.weight", "v.global.blk.0.ffn_up.weight",
                          "v.blk.1.ffn_norm.bias", "mm.0.weight"};
    for (size_t i = 0; i < sizeof grow / sizeof grow[0]; i++) {
        spec s = GOOD;
        s.grow_tensor = grow[i];
        expect(fx, &s, LMRT_E_FORMAT, grow[i]);
    }
    spec s = GOOD;
    s.grow_tensor = "v.global.blk.0.attn_gate";
    expect(fx, &s, LMRT_E_FORMAT, "v.global.blk.0.attn_gate");
    s = GOOD;
    s.f16_tensor = "v.tile_position_embd.gate";
    expect(fx, &s, LMRT_E_FORMAT, "v.tile_position_embd.gate");
    s = GOOD;
    s.f16_tensor = "v.blk.0.attn_norm.weight";
    expect(fx, &s, LMRT_E_UNSUPPORTED, "v.blk.0.attn_norm.weight");
    /* the projector must map onto the text model's width */
    char msg[512];
    assert_int_equal(try_bind(fx, &GOOD, 13, msg, sizeof msg, NULL, NULL, NULL), LMRT_E_FORMAT);
    assert_non_null(strstr(msg, "mm.0.weight"));
}

static void bad_keys_are_named(void **state)
{
    fixture *fx = *state;
    const char *keys[] = {"mllama.vision.block_count", "mllama.vision.global.block_count",
                          "mllama.vision.embedding_length", "mllama.vision.feed_forward_length",
                          "mllama.vision.attention.head_count", "mllama.vision.image_size",
                          "mllama.vision.patch_size", "mllama.vision.max_num_tiles",
                          "mllama.vision.attention.layer_norm_epsilon",
                          "mllama.vision.intermediate_layers_indices"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        spec s = GOOD;
        s.skip_key = keys[i];
        expect(fx, &s, LMRT_E_FORMAT, keys[i]);
    }
    spec s = GOOD;
    s.S = 5;   /* not a multiple of the patch */
    expect(fx, &s, LMRT_E_FORMAT, "mllama.vision.image_size");
    s = GOOD;
    s.H = 3;   /* 8 is not a multiple of 3 heads */
    expect(fx, &s, LMRT_E_FORMAT, "mllama.vision.attention.head_count");
    s = GOOD;
    s.T = MLLAMA_MAX_TILES + 1;
    expect(fx, &s, LMRT_E_FORMAT, "mllama.vision.max_num_tiles");
    s = GOOD;
    s.inter[0] = 2, s.inter[1] = 1;   /* not ascending */
    expect(fx, &s, LMRT_E_FORMAT, "intermediate_layers_indices");
    s = GOOD;
    s.inter[1] = 3;                   /* past block_count */
    expect(fx, &s, LMRT_E_FORMAT, "intermediate_layers_indices");
}

/* Every allocation of bind, then of encode, failing in turn: LMRT_E_NOMEM, nothing
 * leaked (the ASan build checks), and the next try goes further. */
static void allocation_failures_are_nomem_without_leaks(void **state)
{
    fixture *fx = *state;
    size_t size;
    uint8_t *buf = build(&GOOD, &size);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "mllama-test.gguf", &f), LMRT_OK);
    uint8_t px[5 * 9 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 11);
    image_rgb8 img = {5, 9, px};
    int failures = 0;
    for (long n = 0;; n++) {
        mllama_vision *v = NULL;
        float *feat = NULL;
        int32_t n_tok = 0;
        lmrt_alloc_fail_after(n);
        lmrt_status st = mllama_vision_bind(f, GOOD.text, fx->be, fx->bctx, &v);
        if (!st)
            st = mllama_vision_encode(v, &img, &feat, &n_tok);
        lmrt_alloc_fail_after(-1);
        lmrt_mem_free(feat);
        mllama_vision_free(v);
        if (!st) {
            assert_int_equal(n_tok, 2 * 5);   /* 5x9 is tall: (2, 1) */
            break;
        }
        assert_int_equal(st, LMRT_E_NOMEM);
        failures++;
        assert_true(n < 10000);
    }
    assert_true(failures > 5);
    gguf_close(f);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aspect_ratios_are_hf_list),
        cmocka_unit_test(canvas_choice_follows_hf),
        cmocka_unit_test(tiles_are_row_major_and_padded_black),
        cmocka_unit_test(file_without_vision_is_detected),
        cmocka_unit_test_setup_teardown(good_file_binds_and_encodes, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_tensors_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_shapes_and_types_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_keys_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(allocation_failures_are_nomem_without_leaks, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
