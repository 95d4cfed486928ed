/* mllama_logits.c - test driver: runs the decoder layer (lib/model/llama.c) of an
 * mllama GGUF through a sequence of token runs and image states, and writes the
 * logits of every token fed, for test_mllama_logits.py to compare with
 * scripts/reference.py. Test code: prints, exits.
 *
 *   mllama_logits MODEL OUT [--batch N] [--threads N] STEP...
 *     STEP  t:ID,ID,...   feed these tokens (all logits kept)
 *           img:FILE      set image states from FILE, raw little-endian float32
 *                         [n][n_embd] (llama_state_set_cross)
 *           clear         drop the image states (llama_state_clear_cross)
 *   OUT: raw little-endian float32 [tokens fed][n_vocab] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "format/gguf.h"
#include "lmrt.h"
#include "model/llama.h"
#include "model/model.h"

static void die(const char *what, lmrt_status st)
{
    fprintf(stderr, "mllama_logits: %s failed (%d): %s\n", what, (int)st, lmrt_last_error());
    exit(1);
}

static float *read_features(const char *path, int32_t n_embd, int32_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t row = (size_t)n_embd * sizeof(float);
    if (size <= 0 || (size_t)size % row) {
        fprintf(stderr, "mllama_logits: %s: %ld bytes is not [n][%d] float32\n", path, size,
                (int)n_embd);
        exit(1);
    }
    float *buf = malloc((size_t)size);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "mllama_logits: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *n = (int32_t)((size_t)size / row);
    return buf;
}

static int32_t parse_ids(const char *s, int32_t **out)
{
    int32_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    int32_t *ids = malloc((size_t)n * sizeof *ids), k = 0;
    if (!ids)
        exit(1);
    for (char *end; *s; s = *end ? end + 1 : end) {
        ids[k++] = (int32_t)strtol(s, &end, 10);
        if (end == s) {
            fprintf(stderr, "mllama_logits: bad token list\n");
            exit(1);
        }
    }
    *out = ids;
    return k;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: mllama_logits MODEL OUT [--batch N] [--threads N] STEP...\n");
        return 2;
    }
    int32_t n_batch = 64, n_threads = 2;
    int first = 3;
    while (first + 1 < argc && strncmp(argv[first], "--", 2) == 0) {
        if (strcmp(argv[first], "--batch") == 0)
            n_batch = atoi(argv[first + 1]);
        else if (strcmp(argv[first], "--threads") == 0)
            n_threads = atoi(argv[first + 1]);
        else
            break;
        first += 2;
    }
    lmrt_status st;
    gguf_file *f;
    model *m;
    backend_ctx *bctx;
    llama_weights *w;
    llama_state *state;
    const backend_vtable *be = &cpu_backend;
    if ((st = gguf_open(argv[1], true, &f)))
        die("gguf_open", st);
    if ((st = model_open(f, NULL, &m)))
        die("model_open", st);
    if ((st = be->ctx_create(0, n_threads, &bctx)))
        die("ctx_create", st);
    if ((st = llama_weights_bind(m, be, bctx, &w)))
        die("llama_weights_bind", st);
    if ((st = llama_state_create(w, 256, n_batch, true, &state)))
        die("llama_state_create", st);
    FILE *out = fopen(argv[2], "wb");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    const size_t V = (size_t)w->hp.n_vocab;
    for (int i = first; i < argc; i++) {
        if (strncmp(argv[i], "t:", 2) == 0) {
            int32_t *ids, n = parse_ids(argv[i] + 2, &ids);
            float *logits = malloc((size_t)n * V * sizeof(float));
            if (!logits)
                return 1;
            if ((st = llama_forward(w, state, ids, n, true, logits, NULL, NULL)))
                die("llama_forward", st);
            if (fwrite(logits, sizeof(float), (size_t)n * V, out) != (size_t)n * V)
                return 1;
            free(logits);
            free(ids);
        } else if (strncmp(argv[i], "img:", 4) == 0) {
            int32_t n;
            float *feat = read_features(argv[i] + 4, w->hp.n_embd, &n);
            if ((st = llama_state_set_cross(w, state, feat, n)))
                die("llama_state_set_cross", st);
            free(feat);
        } else if (strcmp(argv[i], "clear") == 0) {
            llama_state_clear_cross(w, state);
        } else {
            fprintf(stderr, "mllama_logits: unknown step '%s'\n", argv[i]);
            return 2;
        }
    }
    if (fclose(out))
        return 1;
    llama_state_free(w, state);
    llama_weights_free(w);
    be->ctx_free(bctx);
    model_close(m);
    return 0;
}
