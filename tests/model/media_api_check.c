/* media_api_check.c - the image/audio entry points of the public API against
 * real model files (made by test_media_generate.py): licence before anything
 * else, argument and budget errors, sessions with media saved, restored and
 * forked, and every allocation failing in turn. Prints one line per check.
 *
 *   media_api_check image|audio TEXT.gguf PROJECTOR.gguf MEDIA_FILE
 * Exits 0 when every check passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmrt.h>

#include "base/alloc.h"

static int failures;
static int image_mode;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        int ok_ = (cond);                                                                    \
        printf(ok_ ? "ok   " : "FAIL ");                                                     \
        printf(__VA_ARGS__);                                                                 \
        printf("%s%s\n", ok_ ? "" : " -- ", ok_ ? "" : lmrt_last_error());                  \
        failures += !ok_;                                                                    \
    } while (0)

static lmrt_context *context(lmrt_model *m, const char *region, int64_t budget)
{
    lmrt_context_params p;
    lmrt_context_params_init(&p, sizeof p);
    p.region = region;
    p.n_threads = 2;
    if (image_mode)
        p.max_image_pixels = budget;
    else
        p.max_audio_samples = budget;
    lmrt_context *ctx = NULL;
    if (lmrt_context_create(m, &p, &ctx) != LMRT_OK)
        return NULL;
    return ctx;
}

static lmrt_session *session(lmrt_context *ctx)
{
    lmrt_session_params p;
    lmrt_session_params_init(&p, sizeof p);
    p.n_ctx = 512;
    lmrt_session *s = NULL;
    if (lmrt_session_create(ctx, &p, &s) != LMRT_OK)
        return NULL;
    lmrt_sampler_params sp;
    lmrt_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 0;
    lmrt_session_set_sampler(s, &sp);
    return s;
}

static lmrt_status feed_media(lmrt_session *s, const char *path)
{
    return image_mode ? lmrt_session_feed_image_file(s, path)
                      : lmrt_session_feed_audio_file(s, path);
}

static int64_t n_tokens(const lmrt_session *s)
{
    int64_t n = -1;
    lmrt_session_n_tokens(s, &n);
    return n;
}

/* BOS, the media, two tokens. */
static lmrt_status feed_all(lmrt_session *s, const char *media)
{
    const int32_t bos = 1, rest[] = {17, 42};
    lmrt_status st = lmrt_session_feed_tokens(s, &bos, 1);
    if (!st)
        st = feed_media(s, media);
    if (!st)
        st = lmrt_session_feed_tokens(s, rest, 2);
    return st;
}

/* Greedy continuation of n tokens into ids. */
static lmrt_status continue_greedy(lmrt_session *s, int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        lmrt_status st = lmrt_session_next_token(s, &ids[i], NULL, 0, NULL);
        if (st)
            return st;
    }
    return LMRT_OK;
}

static void licence_checks(lmrt_model *m, const char *media)
{
    const char *region = image_mode ? "DE" : "FR";
    lmrt_context *ctx = context(m, region, 0);
    lmrt_session *s = ctx ? session(ctx) : NULL;
    CHECK(s != NULL, "%s: context and session", region);
    if (!s)
        goto out;
    /* The licence is checked before the input is even opened or its arguments read. */
    CHECK(feed_media(s, "/nonexistent/input") == LMRT_E_NOT_LICENSED,
          "%s: a missing file is LMRT_E_NOT_LICENSED, not an I/O error", region);
    CHECK(strstr(lmrt_last_error(), "European Union") != NULL, "%s: the reason: %s", region,
          lmrt_last_error());
    lmrt_status st = image_mode ? lmrt_session_feed_image_rgb(s, NULL, 0, 0, 0)
                                : lmrt_session_feed_audio_pcm(s, NULL, 0, 0);
    CHECK(st == LMRT_E_NOT_LICENSED, "%s: raw input with bad arguments: still NOT_LICENSED",
          region);
    CHECK(feed_media(s, media) == LMRT_E_NOT_LICENSED, "%s: the real file: NOT_LICENSED",
          region);
    CHECK(n_tokens(s) == 0, "%s: nothing was fed", region);
    lmrt_context_info info;
    lmrt_context_info_init(&info, sizeof info);
    CHECK(lmrt_context_get_info(ctx, &info) == LMRT_OK && info.tensors_bound[1] == 0 &&
              info.tensors_bound[2] == 0 && !(info.modalities_bound & ~LMRT_MODALITY_TEXT) &&
              info.modalities_licensed == LMRT_MODALITY_TEXT,
          "%s: no encoder tensor bound (image %lld, audio %lld), only text licensed", region,
          (long long)info.tensors_bound[1], (long long)info.tensors_bound[2]);
out:
    lmrt_session_free(s);
    lmrt_context_free(ctx);
}

static void argument_checks(lmrt_model *m, const char *media)
{
    lmrt_context *ctx = context(m, "US", 0);
    lmrt_session *s = ctx ? session(ctx) : NULL;
    CHECK(s != NULL, "US: context and session");
    if (!s)
        goto out;
    CHECK(feed_media(s, "/nonexistent/input") == LMRT_E_IO, "US: a missing file is LMRT_E_IO");
    CHECK(feed_media(s, NULL) == LMRT_E_INVALID_ARG, "US: a NULL path is LMRT_E_INVALID_ARG");
    static const char junk[] = "this is not an image or a WAV file";
    lmrt_status st = image_mode ? lmrt_session_feed_image_encoded(s, junk, sizeof junk)
                                : lmrt_session_feed_audio_encoded(s, junk, sizeof junk);
    CHECK(st == LMRT_E_FORMAT || st == LMRT_E_UNSUPPORTED, "US: junk bytes are refused (%d)",
          (int)st);
    if (image_mode) {
        uint8_t px[12] = {0};
        CHECK(lmrt_session_feed_image_rgb(s, px, 0, 2, 6) == LMRT_E_INVALID_ARG,
              "US: a zero width is LMRT_E_INVALID_ARG");
        CHECK(lmrt_session_feed_image_rgb(s, px, 2, 2, 5) == LMRT_E_INVALID_ARG,
              "US: rows shorter than 3 x width are LMRT_E_INVALID_ARG");
        CHECK(lmrt_session_feed_image_rgb(s, px, 2, 2, 6) == LMRT_OK,
              "US: a 2 x 2 RGB image is encoded and fed");
    } else {
        float pcm[1600] = {0};
        pcm[7] = NAN;
        CHECK(lmrt_session_feed_audio_pcm(s, pcm, 1600, 16000) == LMRT_E_INVALID_ARG,
              "US: a NaN sample is LMRT_E_INVALID_ARG");
        pcm[7] = 0.5f;
        CHECK(lmrt_session_feed_audio_pcm(s, pcm, 1600, 0) == LMRT_E_INVALID_ARG,
              "US: sample rate 0 is LMRT_E_INVALID_ARG");
        for (int i = 0; i < 1600; i++)
            pcm[i] = 0.3f * sinf(0.05f * (float)i);
        CHECK(lmrt_session_feed_audio_pcm(s, pcm, 1600, 8000) == LMRT_OK,
              "US: 0.2 s of 8 kHz PCM is resampled, encoded and fed");
    }
    CHECK(n_tokens(s) > 0, "US: the fed positions count (%lld)", (long long)n_tokens(s));
out:
    lmrt_session_free(s);
    lmrt_context_free(ctx);

    ctx = context(m, "US", image_mode ? 1000 : 100);
    s = ctx ? session(ctx) : NULL;
    CHECK(s && feed_media(s, media) == LMRT_E_FORMAT && n_tokens(s) == 0,
          "US: an input over the context's budget is LMRT_E_FORMAT");
    lmrt_session_free(s);
    lmrt_context_free(ctx);
}

static void state_checks(lmrt_model *m, const char *media)
{
    enum { N = 8 };
    lmrt_context *ctx = context(m, "US", 0);
    lmrt_session *a = ctx ? session(ctx) : NULL, *b = NULL, *c = NULL;
    void *blob = NULL;
    size_t size = 0;
    int32_t ids_a[N], ids_b[N], ids_c[N];
    lmrt_status st = a ? feed_all(a, media) : LMRT_E_INTERNAL;
    CHECK(st == LMRT_OK, "state: BOS, media, tokens fed (%lld positions)",
          (long long)(a ? n_tokens(a) : 0));
    if (st)
        goto out;
    CHECK(lmrt_session_save(a, &blob, &size) == LMRT_OK, "state: saved (%zu bytes)", size);
    CHECK(lmrt_session_fork(a, &c) == LMRT_OK, "state: forked");
    CHECK(continue_greedy(a, ids_a, N) == LMRT_OK, "state: original continues");
    CHECK(blob && lmrt_session_restore(ctx, blob, size, &b) == LMRT_OK, "state: restored");
    CHECK(b && continue_greedy(b, ids_b, N) == LMRT_OK && !memcmp(ids_a, ids_b, sizeof ids_a),
          "state: the restored session continues with the same %d tokens", N);
    CHECK(c && continue_greedy(c, ids_c, N) == LMRT_OK && !memcmp(ids_a, ids_c, sizeof ids_a),
          "state: the fork continues with the same %d tokens", N);
    CHECK(lmrt_session_reset(a) == LMRT_OK && n_tokens(a) == 0 && feed_all(a, media) == LMRT_OK &&
              continue_greedy(a, ids_b, N) == LMRT_OK && !memcmp(ids_a, ids_b, sizeof ids_a),
          "state: reset, fed again: the same tokens");
out:
    lmrt_free(blob);
    lmrt_session_free(a);
    lmrt_session_free(b);
    lmrt_session_free(c);
    lmrt_context_free(ctx);
}

/* Every allocation of a media feed failing in turn: LMRT_E_NOMEM, nothing fed,
 * and the session still works afterwards. */
static void allocation_checks(lmrt_model *m, const char *media)
{
    lmrt_context *ctx = context(m, "US", 0);
    int bad = 0, steps = 0;
    for (long k = 0; k < 100000 && ctx; k++, steps++) {
        lmrt_session *s = session(ctx);
        const int32_t bos = 1;
        if (!s || lmrt_session_feed_tokens(s, &bos, 1) != LMRT_OK) {
            bad++;
            lmrt_session_free(s);
            break;
        }
        lmrt_alloc_fail_after(k);
        lmrt_status st = feed_media(s, media);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK) {
            lmrt_session_free(s);
            break;
        }
        if (st != LMRT_E_NOMEM || n_tokens(s) != 1)
            bad++;
        /* The session still works: the media goes in now. */
        if (feed_media(s, media) != LMRT_OK)
            bad++;
        lmrt_session_free(s);
    }
    CHECK(ctx && bad == 0, "allocations: each of %d failing in turn gives LMRT_E_NOMEM, the "
          "session unchanged and usable", steps);
    lmrt_context_free(ctx);
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "image") && strcmp(argv[1], "audio"))) {
        fprintf(stderr, "usage: media_api_check image|audio TEXT.gguf PROJECTOR.gguf MEDIA\n");
        return 2;
    }
    image_mode = !strcmp(argv[1], "image");
    const char *media = argv[4];
    lmrt_model_params mp;
    lmrt_model_params_init(&mp, sizeof mp);
    lmrt_model *text_only = NULL, *m = NULL;
    CHECK(lmrt_model_load(argv[2], NULL, &text_only) == LMRT_OK, "text model loads");
    if (text_only) {
        lmrt_context *ctx = context(text_only, "US", 0);
        lmrt_session *s = ctx ? session(ctx) : NULL;
        CHECK(s && feed_media(s, media) == LMRT_E_UNSUPPORTED,
              "without a projector: LMRT_E_UNSUPPORTED");
        lmrt_session_free(s);
        lmrt_context_free(ctx);
        lmrt_model_free(text_only);
    }
    mp.projector_path = argv[3];
    CHECK(lmrt_model_load(argv[2], &mp, &m) == LMRT_OK, "model + projector load");
    if (m) {
        licence_checks(m, media);
        argument_checks(m, media);
        state_checks(m, media);
        allocation_checks(m, media);
    }
    lmrt_model_free(m);
    printf("%s\n", failures ? "FAILED" : "all media API checks passed");
    return failures ? 1 : 0;
}
