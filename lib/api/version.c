/* version.c - lmrt_version() and lmrt_abi_version(). */
#include "lmrt.h"

const char *lmrt_version(void)
{
    return LMRT_VERSION;
}

int32_t lmrt_abi_version(void)
{
    return LMRT_ABI_MAJOR;
}
