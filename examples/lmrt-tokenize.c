/* lmrt-tokenize - the token ids of a text, space-separated on one line.
 *
 *   lmrt-tokenize [-m MODEL] [--no-bos] [--special] TEXT
 *
 * No -m: the built-in model. BOS comes first when the vocabulary asks for it,
 * unless --no-bos; --special turns "<|eot_id|>" and the like into their tokens.
 * Exits 1 with lmrt's message when the model cannot be loaded or tokenize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmrt.h>

static void usage(void)
{
    fprintf(stderr, "usage: lmrt-tokenize [-m MODEL] [--no-bos] [--special] TEXT\n");
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *text = NULL;
    uint32_t flags = LMRT_TOKENIZE_ADD_BOS;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            model_path = argv[++i];
        } else if (strcmp(argv[i], "--no-bos") == 0) {
            flags &= ~(uint32_t)LMRT_TOKENIZE_ADD_BOS;
        } else if (strcmp(argv[i], "--special") == 0) {
            flags |= LMRT_TOKENIZE_PARSE_SPECIAL;
        } else if (strcmp(argv[i], "--") == 0 && i + 2 == argc) {
            text = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            usage();
            return 2;
        } else if (!text) {
            text = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (!text) {
        usage();
        return 2;
    }

    lmrt_model *model = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    lmrt_status st = model_path ? lmrt_model_load(model_path, NULL, &model)
                                : lmrt_model_load_builtin(NULL, &model);
    if (st == LMRT_OK)   /* count, then fill */
        st = lmrt_tokenize(model, text, strlen(text), flags, NULL, 0, &n);
    if (st == LMRT_OK) {
        ids = malloc((n ? n : 1) * sizeof *ids);
        if (!ids) {
            fprintf(stderr, "lmrt-tokenize: out of memory\n");
            lmrt_model_free(model);
            return 1;
        }
        st = lmrt_tokenize(model, text, strlen(text), flags, ids, n, &n);
    }
    if (st != LMRT_OK) {
        fprintf(stderr, "lmrt-tokenize: %s: %s\n", lmrt_status_str(st), lmrt_last_error());
        free(ids);
        lmrt_model_free(model);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s%d", i ? " " : "", (int)ids[i]);
    putchar('\n');
    free(ids);
    lmrt_model_free(model);
    return 0;
}
