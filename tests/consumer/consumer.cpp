// consumer.cpp - the public header compiles and links as C++.
#include <lmrt.h>

#include <cstdio>

int main()
{
    lmrt_context_params params;
    lmrt_context_params_init(&params, sizeof params);
    std::printf("lmrt %s, abi %d, default backend %d\n", lmrt_version(), (int)lmrt_abi_version(),
                (int)params.backend);
    return lmrt_abi_version() == LMRT_ABI_VERSION ? 0 : 1;
}
