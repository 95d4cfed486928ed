/* test_cuda_bandwidth.c - the device's memory bandwidth as a device-to-device copy
 * measures it (bytes read + written per second, best of 10 copies of 1 GiB), for
 * scripts/gpu-check.sh's roofline figures. Prints "device NAME" and "bandwidth_gb_s X";
 * exits 77 without a CUDA device. Not a test: a tool built beside the cuda suite. */
#include <stdio.h>

#include "backend/cuda/cuda_backend.h"
#include "base/error.h"
#include "lmrt.h"

int main(void)
{
    if (cuda_backend.device_count() == 0) {
        printf("no CUDA device\n");
        return 77;
    }
    lmrt_device_info info;
    double bw = 0.0;
    lmrt_status st = cuda_backend.device_info(0, &info);
    if (!st)
        st = cuda_rt_copy_bandwidth(0, (size_t)1 << 30, &bw);
    if (st) {
        fprintf(stderr, "test_cuda_bandwidth: %s\n", lmrt_last_error());
        return 1;
    }
    printf("device %s\nbandwidth_gb_s %.1f\n", info.name, bw / 1e9);
    return 0;
}
