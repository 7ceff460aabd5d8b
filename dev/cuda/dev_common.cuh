/* dev/cuda/dev_common.cuh - what the dev/cuda harnesses share: a CUDA error check that stops the
 * program (harnesses only; library code returns errors) and a device fill with uniform values in
 * [-1, 1) from a hashed index, so inputs are fresh for each seed without a host round trip. */
#ifndef PAGODA_DEV_CUDA_COMMON_CUH
#define PAGODA_DEV_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CUDA_CHECK(...)                                                                            \
    do {                                                                                           \
        cudaError_t e_ = (__VA_ARGS__);                                                            \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

__global__ void fill_uniform(__nv_bfloat16 *x, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13, h *= 3266489917u, h ^= h >> 16;
        x[i] = __float2bfloat16((float)(h >> 8) * (2.f / 16777216.f) - 1.f);
    }
}

#endif
