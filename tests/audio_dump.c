/* audio_dump.c - runs lmrt's log-mel and audio encoder on raw PCM and writes the
 * floats, for tests/model/test_audio_reference.py to compare with the float64
 * reference (scripts/reference_audio.py). Test code: internal headers allowed.
 *
 *   audio_dump mel N_MEL PCM.f32 OUT.f32             every 30 s window, [n_win*3000][n_mel]
 *   audio_dump encode MMPROJ N_EMBD_TEXT PCM.f32 OUT.f32   [n_tok][n_embd_text]
 * PCM.f32: raw little-endian float32 at 16 kHz. Exit status 1 with lmrt's
 * message on stderr on any error, 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "format/gguf.h"
#include "model/audio_encoder.h"
#include "model/audio_mel.h"

static float *read_pcm(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *pcm = malloc(size > 0 ? (size_t)size : 1);
    *n = (size_t)(size > 0 ? size : 0) / sizeof(float);
    if (pcm && fread(pcm, sizeof(float), *n, f) != *n) {
        free(pcm);
        pcm = NULL;
    }
    fclose(f);
    return pcm;
}

static int write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n) {
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

static int fail(const char *what, lmrt_status st)
{
    fprintf(stderr, "audio_dump: %s: %s (%s)\n", what, lmrt_last_error(),
            lmrt_status_str(st));
    return 1;
}

static int dump_mel(int n_mel, const float *pcm, size_t n, const char *out_path)
{
    audio_mel *m = NULL;
    lmrt_status st = audio_mel_create(n_mel, &m);
    if (st)
        return fail("mel", st);
    const size_t n_win = audio_mel_n_windows(n), per = (size_t)AUDIO_WINDOW_FRAMES * n_mel;
    float *out = malloc(n_win * per * sizeof(float) + 1);
    int rc = 0;
    for (size_t w = 0; w < n_win && !rc; w++)
        if ((st = audio_mel_window(m, pcm, n, w, out + w * per)))
            rc = fail("mel window", st);
    if (!rc && write_floats(out_path, out, n_win * per)) {
        fprintf(stderr, "audio_dump: cannot write %s\n", out_path);
        rc = 1;
    }
    free(out);
    audio_mel_free(m);
    return rc;
}

static int dump_encode(const char *model, int n_embd_text, const float *pcm, size_t n,
                       const char *out_path)
{
    const backend_vtable *be = backend_find(LMRT_BACKEND_CPU);
    backend_ctx *bctx = NULL;
    gguf_file *f = NULL;
    audio_encoder *e = NULL;
    float *embd = NULL;
    int32_t n_tok = 0;
    int rc = 1;
    lmrt_status st;
    if ((st = gguf_open(model, true, &f))) {
        rc = fail(model, st);
        goto done;
    }
    if ((st = be->ctx_create(0, 0, &bctx))) {
        rc = fail("backend", st);
        goto done;
    }
    if ((st = audio_encoder_bind(f, n_embd_text, be, bctx, &e))) {
        rc = fail("bind", st);
        goto done;
    }
    if ((st = audio_encode(e, pcm, n, &embd, &n_tok))) {
        rc = fail("encode", st);
        goto done;
    }
    fprintf(stderr, "audio_dump: %d tensors bound, %d tokens\n", (int)audio_encoder_n_bound(e),
            (int)n_tok);
    rc = write_floats(out_path, embd, (size_t)n_tok * (size_t)n_embd_text) ? 1 : 0;
    if (rc)
        fprintf(stderr, "audio_dump: cannot write %s\n", out_path);
done:
    lmrt_mem_free(embd);
    audio_encoder_free(e);
    if (bctx)
        be->ctx_free(bctx);
    gguf_close(f);
    return rc;
}

int main(int argc, char **argv)
{
    const int is_mel = argc == 5 && !strcmp(argv[1], "mel");
    const int is_enc = argc == 6 && !strcmp(argv[1], "encode");
    if (!is_mel && !is_enc) {
        fprintf(stderr, "usage: audio_dump mel N_MEL PCM.f32 OUT.f32\n"
                        "       audio_dump encode MMPROJ N_EMBD_TEXT PCM.f32 OUT.f32\n");
        return 2;
    }
    size_t n = 0;
    const char *pcm_path = argv[is_mel ? 3 : 4];
    float *pcm = read_pcm(pcm_path, &n);
    if (!pcm) {
        fprintf(stderr, "audio_dump: cannot read %s\n", pcm_path);
        return 1;
    }
    int rc = is_mel ? dump_mel(atoi(argv[2]), pcm, n, argv[4])
                    : dump_encode(argv[2], atoi(argv[3]), pcm, n, argv[5]);
    free(pcm);
    return rc;
}
