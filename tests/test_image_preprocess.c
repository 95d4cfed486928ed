/* test_image_preprocess.c - the resampler, padding, cropping and normalization the
 * image encoders use: exact results where the arithmetic fixes them (identity sizes,
 * constant images, symmetric averages, 1x1 images, extreme aspect ratios), and clean
 * errors for bad arguments and failing allocations. The comparison with the float64
 * reference resampler on real photos is in tests/vision/test_clip_reference.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "model/image_preprocess.h"

static image_rgb8 make_image(int32_t w, int32_t h, uint32_t seed)
{
    image_rgb8 img = {.width = w, .height = h};
    img.pixels = malloc((size_t)w * (size_t)h * 3);
    assert_non_null(img.pixels);
    for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) {
        seed = seed * 1664525u + 1013904223u;
        img.pixels[i] = (uint8_t)(seed >> 24);
    }
    return img;
}

static image_rgb8 constant_image(int32_t w, int32_t h, const uint8_t rgb[3])
{
    image_rgb8 img = {.width = w, .height = h};
    img.pixels = malloc((size_t)w * (size_t)h * 3);
    assert_non_null(img.pixels);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        memcpy(img.pixels + 3 * i, rgb, 3);
    return img;
}

static float *resize_or_fail(const image_rgb8 *img, int32_t w, int32_t h, image_filter f)
{
    float *out = malloc((size_t)w * (size_t)h * 3 * sizeof *out);
    assert_non_null(out);
    lmrt_status st = image_resize(img, w, h, f, out);
    if (st)
        fail_msg("resize %dx%d -> %dx%d: %s", (int)img->width, (int)img->height, (int)w, (int)h,
                 lmrt_last_error());
    return out;
}

static void identity_size_is_exact(void **state)
{
    (void)state;
    image_rgb8 img = make_image(37, 23, 7);
    for (int f = 0; f < 2; f++) {
        float *out = resize_or_fail(&img, 37, 23, (image_filter)f);
        for (size_t i = 0; i < 37 * 23 * 3; i++)
            assert_true(out[i] == (float)img.pixels[i]);
        free(out);
    }
    free(img.pixels);
}

/* Weights are normalized per output pixel, so a constant image stays constant (to
 * float rounding of the weight sums) whatever the scale, in both directions. */
static void constant_image_stays_constant(void **state)
{
    (void)state;
    static const int32_t sizes[][4] = {
        {10, 10, 20, 20}, {20, 20, 10, 10}, {1000, 1, 3, 7}, {1, 1000, 9, 2},
        {3, 5, 300, 1}, {640, 480, 1, 1}, {1, 1, 1, 1}, {7, 3, 64, 64},
    };
    const uint8_t rgb[3] = {200, 13, 255};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        image_rgb8 img = constant_image(sizes[s][0], sizes[s][1], rgb);
        for (int f = 0; f < 2; f++) {
            float *out = resize_or_fail(&img, sizes[s][2], sizes[s][3], (image_filter)f);
            for (size_t i = 0; i < (size_t)sizes[s][2] * (size_t)sizes[s][3]; i++)
                for (int c = 0; c < 3; c++)
                    assert_float_equal(out[3 * i + c], rgb[c], 1e-3);
            free(out);
        }
        free(img.pixels);
    }
}

/* 1x1 input: every output pixel is that pixel, exactly (one tap of weight 1). */
static void one_pixel_image_fills_the_output(void **state)
{
    (void)state;
    const uint8_t rgb[3] = {1, 128, 254};
    image_rgb8 img = constant_image(1, 1, rgb);
    for (int f = 0; f < 2; f++) {
        float *out = resize_or_fail(&img, 5, 3, (image_filter)f);
        for (size_t i = 0; i < 15; i++)
            for (int c = 0; c < 3; c++)
                assert_true(out[3 * i + c] == (float)rgb[c]);
        free(out);
    }
    free(img.pixels);
}

/* Shrinking 2x2 to 1x1: both filters give the two taps per axis equal weights, so the
 * result is the mean of the four pixels. */
static void two_by_two_to_one_is_the_mean(void **state)
{
    (void)state;
    image_rgb8 img = make_image(2, 2, 99);
    for (int f = 0; f < 2; f++) {
        float *out = resize_or_fail(&img, 1, 1, (image_filter)f);
        for (int c = 0; c < 3; c++) {
            double mean = 0;
            for (int p = 0; p < 4; p++)
                mean += img.pixels[3 * p + c] / 4.0;
            assert_float_equal(out[c], mean, 1e-4);
        }
        free(out);
    }
    free(img.pixels);
}

/* Bicubic overshoots at edges; the output is clamped to 0..255. */
static void bicubic_overshoot_is_clamped(void **state)
{
    (void)state;
    image_rgb8 img = {.width = 4, .height = 1};
    uint8_t px[12] = {0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255};
    img.pixels = px;
    float out[32 * 3];
    assert_int_equal(image_resize(&img, 32, 1, IMAGE_FILTER_BICUBIC, out), LMRT_OK);
    bool below = false, above = false;
    for (int i = 0; i < 96; i++) {
        assert_true(out[i] >= 0.0f && out[i] <= 255.0f);
        below |= out[i] == 0.0f;
        above |= out[i] == 255.0f;
    }
    assert_true(below && above);
}

static void bad_arguments_are_errors(void **state)
{
    (void)state;
    image_rgb8 img = make_image(4, 4, 1);
    float out[48];
    assert_int_equal(image_resize(NULL, 4, 4, IMAGE_FILTER_BICUBIC, out), LMRT_E_INVALID_ARG);
    assert_int_equal(image_resize(&img, 0, 4, IMAGE_FILTER_BICUBIC, out), LMRT_E_INVALID_ARG);
    assert_int_equal(image_resize(&img, 4, -1, IMAGE_FILTER_BICUBIC, out), LMRT_E_INVALID_ARG);
    assert_int_equal(image_resize(&img, 70000, 1, IMAGE_FILTER_BICUBIC, out),
                     LMRT_E_INVALID_ARG);
    assert_int_equal(image_resize(&img, 4, 4, (image_filter)7, out), LMRT_E_INVALID_ARG);
    assert_int_equal(image_resize(&img, 4, 4, IMAGE_FILTER_BICUBIC, NULL), LMRT_E_INVALID_ARG);
    image_rgb8 empty = {0};
    assert_int_equal(image_resize(&empty, 4, 4, IMAGE_FILTER_BICUBIC, out), LMRT_E_INVALID_ARG);
    image_rgb8 sq = {0};
    assert_int_equal(image_pad_square(&empty, (const uint8_t[3]){0, 0, 0}, &sq),
                     LMRT_E_INVALID_ARG);
    free(img.pixels);
}

static void allocation_failures_are_nomem(void **state)
{
    (void)state;
    image_rgb8 img = make_image(9, 5, 3);
    float out[4 * 6 * 3];
    for (long n = 0;; n++) {
        lmrt_alloc_fail_after(n);
        lmrt_status st = image_resize(&img, 4, 6, IMAGE_FILTER_BICUBIC, out);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK)
            break;
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_true(n < 100);
    }
    image_rgb8 sq = {0};
    lmrt_alloc_fail_after(0);
    assert_int_equal(image_pad_square(&img, (const uint8_t[3]){1, 2, 3}, &sq), LMRT_E_NOMEM);
    lmrt_alloc_fail_after(-1);
    assert_null(sq.pixels);
    free(img.pixels);
}

/* 3 wide x 1 high becomes 3 x 3 with the picture in the middle row; 2 x 5 becomes
 * 5 x 5 with the picture in columns 1..2 ((5 - 2) / 2 = 1). */
static void pad_square_centres_the_picture(void **state)
{
    (void)state;
    const uint8_t fill[3] = {122, 116, 104};
    image_rgb8 wide = make_image(3, 1, 5), sq = {0};
    assert_int_equal(image_pad_square(&wide, fill, &sq), LMRT_OK);
    assert_int_equal(sq.width, 3);
    assert_int_equal(sq.height, 3);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) {
            const uint8_t *p = sq.pixels + (y * 3 + x) * 3;
            assert_memory_equal(p, y == 1 ? wide.pixels + x * 3 : fill, 3);
        }
    image_rgb8_free(&sq);
    image_rgb8 tall = make_image(2, 5, 6);
    assert_int_equal(image_pad_square(&tall, fill, &sq), LMRT_OK);
    assert_int_equal(sq.width, 5);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) {
            const uint8_t *p = sq.pixels + (y * 5 + x) * 3;
            bool in = x >= 1 && x < 3;
            assert_memory_equal(p, in ? tall.pixels + (y * 2 + x - 1) * 3 : fill, 3);
        }
    image_rgb8_free(&sq);
    free(wide.pixels);
    free(tall.pixels);
}

static void center_crop_and_shortest_edge(void **state)
{
    (void)state;
    int32_t w, h;
    image_fit_shortest_edge(451, 300, 336, &w, &h);
    assert_int_equal(h, 336);
    assert_int_equal(w, 505);                 /* int(336 * 451 / 300) = int(505.12) */
    image_fit_shortest_edge(300, 451, 336, &w, &h);
    assert_int_equal(w, 336);
    assert_int_equal(h, 505);
    image_fit_shortest_edge(1, 10000, 2, &w, &h);
    assert_int_equal(w, 2);
    assert_int_equal(h, 20000);
    float src[5 * 4 * 3], out[3 * 2 * 3];
    for (int i = 0; i < 60; i++)
        src[i] = (float)i;
    image_center_crop(src, 5, 4, 3, 2, out);  /* origin (1, 1) */
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            for (int c = 0; c < 3; c++)
                assert_true(out[(y * 3 + x) * 3 + c] == src[((y + 1) * 5 + x + 1) * 3 + c]);
    float big[4 * 4 * 3];
    image_center_crop(src, 2, 1, 4, 4, big);  /* larger: origin (-1, -2), zeros around */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            bool in = y == 2 && x >= 1 && x < 3;
            float want = in ? src[(x - 1) * 3] : 0.0f;
            assert_true(big[(y * 4 + x) * 3] == want);
        }
}

static void normalize_applies_mean_and_std(void **state)
{
    (void)state;
    float px[6] = {0, 127.5f, 255, 51, 102, 153};
    const float mean[3] = {0.5f, 0.5f, 0.25f}, std[3] = {0.5f, 0.25f, 2.0f};
    image_normalize(px, 2, mean, std);
    assert_float_equal(px[0], -1.0, 1e-6);
    assert_float_equal(px[1], 0.0, 1e-6);
    assert_float_equal(px[2], 0.375, 1e-6);
    assert_float_equal(px[3], (0.2 - 0.5) / 0.5, 1e-6);
    assert_float_equal(px[4], (0.4 - 0.5) / 0.25, 1e-6);
    assert_float_equal(px[5], (0.6 - 0.25) / 2.0, 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identity_size_is_exact),
        cmocka_unit_test(constant_image_stays_constant),
        cmocka_unit_test(one_pixel_image_fills_the_output),
        cmocka_unit_test(two_by_two_to_one_is_the_mean),
        cmocka_unit_test(bicubic_overshoot_is_clamped),
        cmocka_unit_test(bad_arguments_are_errors),
        cmocka_unit_test(allocation_failures_are_nomem),
        cmocka_unit_test(pad_square_centres_the_picture),
        cmocka_unit_test(center_crop_and_shortest_edge),
        cmocka_unit_test(normalize_applies_mean_and_std),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
