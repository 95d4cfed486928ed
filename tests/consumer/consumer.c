/* consumer.c - a program that uses lmrt only through an installed lmrt.h and
 * `pkg-config --cflags --libs lmrt`, compiled as strict C99. */
#include <lmrt.h>
#include <stdio.h>

int main(void)
{
    if (lmrt_abi_version() != LMRT_ABI_VERSION) {
        fprintf(stderr, "ABI mismatch: header %d, library %d\n", LMRT_ABI_VERSION,
                (int)lmrt_abi_version());
        return 1;
    }
    lmrt_model *model = NULL;
    if (lmrt_model_load_builtin(NULL, &model) != LMRT_OK) {
        fprintf(stderr, "%s\n", lmrt_last_error());
        return 1;
    }
    lmrt_model_info info;
    lmrt_model_info_init(&info, sizeof info);
    lmrt_status st = lmrt_model_get_info(model, &info);
    lmrt_capabilities caps;
    lmrt_capabilities_init(&caps, sizeof caps);
    if (st == LMRT_OK)
        st = lmrt_query_capabilities(model, "US", &caps);
    if (st != LMRT_OK) {
        fprintf(stderr, "%s\n", lmrt_last_error());
        lmrt_model_free(model);
        return 1;
    }
    /* info's strings belong to the model: use them before freeing it. */
    printf("lmrt %s: %s, %d layers, licensed mask %u\n", lmrt_version(), info.architecture,
           (int)info.n_layer, (unsigned)caps.modalities_licensed);
    lmrt_model_free(model);
    return 0;
}
