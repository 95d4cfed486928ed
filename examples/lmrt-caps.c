/* lmrt-caps - what a model may do in a region, and what this runtime offers.
 *
 *   lmrt-caps [-m MODEL] [--mmproj FILE] --region CC [--policy FILE] [--json]
 *
 * No -m: the built-in model. --policy adds a deployer policy (doc/licensing.md).
 * Exits 1 with lmrt's message for an invalid region, policy or model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmrt.h>

static const char *const slot_names[] = {"text", "image", "audio"};
static const uint32_t slot_bits[] = {LMRT_MODALITY_TEXT, LMRT_MODALITY_IMAGE,
                                     LMRT_MODALITY_AUDIO};

static void usage(void)
{
    fprintf(stderr, "usage: lmrt-caps [-m MODEL] [--mmproj FILE] --region CC "
                    "[--policy FILE] [--json]\n");
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* A JSON string literal of `s`. */
static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_modalities(uint32_t mask)
{
    putchar('[');
    int first = 1;
    for (int i = 0; i < 3; i++)
        if (mask & slot_bits[i]) {
            printf("%s\"%s\"", first ? "" : ", ", slot_names[i]);
            first = 0;
        }
    putchar(']');
}

static void print_json(const lmrt_capabilities *c)
{
    printf("{\"region\": ");
    json_string(c->region);
    printf(", \"region_known\": %s, \"region_in_eu\": %s, \"present\": ",
           c->region_known ? "true" : "false", c->region_in_eu ? "true" : "false");
    json_modalities(c->modalities_present);
    printf(", \"licensed\": ");
    json_modalities(c->modalities_licensed);
    printf(", \"withheld\": {");
    int first = 1;
    for (int i = 0; i < 3; i++)
        if (c->withheld_reason[i][0]) {
            printf("%s\"%s\": ", first ? "" : ", ", slot_names[i]);
            json_string(c->withheld_reason[i]);
            first = 0;
        }
    printf("}, \"runtime\": {\"version\": ");
    json_string(c->version);
    printf(", \"backends\": [%s%s], \"cpu_simd\": ",
           c->backends & LMRT_BACKEND_CPU ? "\"cpu\"" : "",
           c->backends & LMRT_BACKEND_CUDA ? ", \"cuda\"" : "");
    json_string(c->cpu_simd);
    printf(", \"cuda_devices\": %d}}\n", (int)c->n_cuda_devices);
}

static void print_text(const lmrt_capabilities *c)
{
    printf("region:    %s%s%s\n", c->region[0] ? c->region : "(unset)",
           c->region_known ? "" : " (unknown: only what is licensed everywhere)",
           c->region_in_eu ? " (European Union)" : "");
    for (int i = 0; i < 3; i++) {
        if (!(c->modalities_present & slot_bits[i]))
            printf("%-6s     not in this model\n", slot_names[i]);
        else if (c->modalities_licensed & slot_bits[i])
            printf("%-6s     licensed\n", slot_names[i]);
        else
            printf("%-6s     withheld: %s\n", slot_names[i], c->withheld_reason[i]);
    }
    printf("runtime:   lmrt %s, backends:%s%s, cpu kernels: %s, cuda devices: %d\n", c->version,
           c->backends & LMRT_BACKEND_CPU ? " cpu" : "",
           c->backends & LMRT_BACKEND_CUDA ? " cuda" : "", c->cpu_simd, (int)c->n_cuda_devices);
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *mmproj = NULL, *region = NULL, *policy_path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = 1;
        } else if (i + 1 < argc && (!strcmp(a, "-m") || !strcmp(a, "--model"))) {
            model_path = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--mmproj")) {
            mmproj = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--region")) {
            region = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--policy")) {
            policy_path = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    if (!region) {
        usage();
        return 2;
    }
    char *policy = NULL;
    if (policy_path && !(policy = read_file(policy_path))) {
        fprintf(stderr, "lmrt-caps: cannot read policy file %s\n", policy_path);
        return 1;
    }
    lmrt_model_params mp;
    lmrt_model_params_init(&mp, sizeof mp);
    mp.projector_path = mmproj;
    lmrt_model *model = NULL;
    lmrt_context *ctx = NULL;
    lmrt_status st = model_path ? lmrt_model_load(model_path, &mp, &model)
                                : lmrt_model_load_builtin(&mp, &model);
    lmrt_capabilities caps;
    lmrt_capabilities_init(&caps, sizeof caps);
    if (st == LMRT_OK) {
        /* A context carries the deployer policy; the caps are those it enforces. */
        lmrt_context_params cp;
        lmrt_context_params_init(&cp, sizeof cp);
        cp.region = region;
        cp.policy = policy;
        cp.backend = LMRT_BACKEND_CPU;
        st = lmrt_context_create(model, &cp, &ctx);
    }
    if (st == LMRT_OK)
        st = lmrt_context_capabilities(ctx, &caps);
    int rc = 0;
    if (st != LMRT_OK) {
        fprintf(stderr, "lmrt-caps: %s: %s\n", lmrt_status_str(st), lmrt_last_error());
        rc = 1;
    } else if (json) {
        print_json(&caps);
    } else {
        print_text(&caps);
    }
    lmrt_context_free(ctx);
    lmrt_model_free(model);
    free(policy);
    return rc;
}
