/* lmrt-info - print a GGUF model's summary, metadata and tensor table, like gguf-dump.
 *
 *   lmrt-info [MODEL]        (no MODEL: the built-in stories260K)
 *
 * Exits 1 with lmrt's message when the file cannot be loaded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmrt.h>

static const char *meta_type_name(int32_t type)
{
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "str", "arr", "u64", "i64", "f64"};
    return type >= 0 && type < (int32_t)(sizeof names / sizeof names[0]) ? names[type] : "?";
}

static void modality_list(uint32_t m, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s%s", m & LMRT_MODALITY_TEXT ? "text " : "",
             m & LMRT_MODALITY_IMAGE ? "image " : "", m & LMRT_MODALITY_AUDIO ? "audio " : "",
             m ? "" : "none");
    size_t n = strlen(buf);
    if (n && buf[n - 1] == ' ')
        buf[n - 1] = '\0';
}

static int print_metadata(const lmrt_model *model, int64_t n)
{
    size_t cap = 4096;
    char *value = malloc(cap);
    if (!value)
        return 1;
    printf("\nmetadata (%" PRId64 " keys):\n", n);
    for (int64_t i = 0; i < n; i++) {
        const char *key;
        int32_t type, elem_type;
        int64_t count;
        size_t len;
        if (lmrt_model_meta_key(model, i, &key) != LMRT_OK ||
            lmrt_model_meta_type(model, key, &type, &elem_type, &count) != LMRT_OK)
            goto fail;
        lmrt_status st = lmrt_model_meta_format(model, key, 8, value, cap, &len);
        if (st == LMRT_E_BUFFER_TOO_SMALL) {
            char *bigger = realloc(value, len + 1);
            if (!bigger)
                goto fail;
            value = bigger;
            cap = len + 1;
            st = lmrt_model_meta_format(model, key, 8, value, cap, &len);
        }
        if (st != LMRT_OK)
            goto fail;
        if (type == LMRT_META_ARRAY)
            printf("  %5" PRId64 ": %-44s %s[%s x %" PRId64 "] = %s\n", i, key,
                   meta_type_name(type), meta_type_name(elem_type), count, value);
        else
            printf("  %5" PRId64 ": %-44s %s = %s\n", i, key, meta_type_name(type), value);
    }
    free(value);
    return 0;
fail:
    free(value);
    fprintf(stderr, "lmrt-info: %s\n", lmrt_last_error());
    return 1;
}

static int print_tensors(const lmrt_model *model, int64_t n)
{
    printf("\ntensors (%" PRId64 "):\n", n);
    printf("  %5s  %-36s %-6s %-24s %12s %12s\n", "#", "name", "type", "shape", "offset",
           "bytes");
    for (int64_t i = 0; i < n; i++) {
        lmrt_tensor_info t;
        lmrt_tensor_info_init(&t, sizeof t);
        if (lmrt_model_tensor_info(model, i, &t) != LMRT_OK) {
            fprintf(stderr, "lmrt-info: %s\n", lmrt_last_error());
            return 1;
        }
        char shape[64] = "";
        size_t used = 0;
        for (int d = 0; d < t.n_dims && used < sizeof shape; d++)
            used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%" PRId64,
                                     d ? " x " : "", t.dims[d]);
        printf("  %5" PRId64 "  %-36s %-6s %-24s %12" PRIu64 " %12" PRIu64 "\n", i, t.name,
               t.type_name, shape, t.offset, t.n_bytes);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
        fprintf(stderr, "usage: lmrt-info [MODEL.gguf]   (no MODEL: the built-in model)\n");
        return 2;
    }
    const char *path = argc == 2 ? argv[1] : NULL;
    lmrt_model *model = NULL;
    lmrt_status st = path ? lmrt_model_load(path, NULL, &model)
                          : lmrt_model_load_builtin(NULL, &model);
    if (st != LMRT_OK) {
        fprintf(stderr, "lmrt-info: %s: %s\n", lmrt_status_str(st), lmrt_last_error());
        return 1;
    }
    lmrt_model_info info;
    lmrt_model_info_init(&info, sizeof info);
    if (lmrt_model_get_info(model, &info) != LMRT_OK) {
        fprintf(stderr, "lmrt-info: %s\n", lmrt_last_error());
        lmrt_model_free(model);
        return 1;
    }
    char modalities[64];
    modality_list(info.modalities, modalities, sizeof modalities);
    printf("model:        %s\n", path ? path : "<built-in stories260K>");
    printf("gguf version: %d\n", (int)info.gguf_version);
    printf("architecture: %s\n", info.architecture[0] ? info.architecture : "(none)");
    printf("name:         %s\n", info.name);
    printf("file type:    %s\n", info.file_type);
    printf("parameters:   %" PRId64 " (%" PRId64 " bytes of tensor data)\n", info.n_params,
           info.n_bytes);
    printf("layers:       %d\n", (int)info.n_layer);
    printf("embedding:    %d\n", (int)info.n_embd);
    printf("heads:        %d (kv %d)\n", (int)info.n_head, (int)info.n_head_kv);
    printf("ffn:          %d\n", (int)info.n_ff);
    printf("context:      %d\n", (int)info.n_ctx_train);
    printf("vocabulary:   %d\n", (int)info.n_vocab);
    printf("modalities:   %s\n", modalities);
    int rc = print_metadata(model, info.n_metadata);
    if (!rc)
        rc = print_tensors(model, info.n_tensors);
    lmrt_model_free(model);
    return rc;
}
