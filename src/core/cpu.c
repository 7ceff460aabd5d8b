/* core/cpu.c - CPU feature detection through the compiler's cpuid builtins. */
#include "core/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cpu_features features;
static char features_text[160];
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect(void) {
    __builtin_cpu_init();
    features.avx2 = __builtin_cpu_supports("avx2");
    features.fma = __builtin_cpu_supports("fma");
    features.f16c = true; /* implied by x86-64-v3, the build's baseline */
    const char *off = getenv("PAGODA_NO_AVX512");
    bool allow = !(off && *off && strcmp(off, "0") != 0);
    features.avx512f = allow && __builtin_cpu_supports("avx512f");
    features.avx512bw = allow && __builtin_cpu_supports("avx512bw");
    features.avx512vl = allow && __builtin_cpu_supports("avx512vl");
    features.avx512vnni = allow && __builtin_cpu_supports("avx512vnni");
    features.avx512bf16 = allow && __builtin_cpu_supports("avx512bf16");
    snprintf(features_text, sizeof features_text, "%s%s%s%s%s%s%s%s", features.avx2 ? "AVX2 " : "",
             features.fma ? "FMA " : "", features.f16c ? "F16C " : "",
             features.avx512f ? "AVX512F " : "", features.avx512bw ? "AVX512BW " : "",
             features.avx512vl ? "AVX512VL " : "", features.avx512vnni ? "AVX512_VNNI " : "",
             features.avx512bf16 ? "AVX512_BF16" : "");
}

const cpu_features *cpu_get_features(void) {
    pthread_once(&detect_once, detect);
    return &features;
}

bool cpu_use_avx512(void) {
    const cpu_features *f = cpu_get_features();
    return f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
}

const char *cpu_features_string(void) {
    cpu_get_features();
    return features_text;
}
