/* core/cpu.h - run-time CPU feature detection, so AVX-512 code is only called where it runs. */
#ifndef PAGODA_CORE_CPU_H
#define PAGODA_CORE_CPU_H

#include <stdbool.h>

typedef struct cpu_features {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
} cpu_features;

/* Detected once (thread-safe); PAGODA_NO_AVX512=1 in the environment disables the AVX-512 paths. */
const cpu_features *cpu_get_features(void);
/* True when the AVX-512 kernels (F, BW, VL, VNNI) may be used. */
bool cpu_use_avx512(void);
/* "AVX2 FMA F16C AVX512F ..." for start-up logs. */
const char *cpu_features_string(void);

#endif
