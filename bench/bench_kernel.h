/* bench_kernel.h: the name of the GEMM kernels a benchmark ran, as fl_sim's summary.json "blas"
 * names them (sim/flsim_run.c): OpenBLAS's openblas_get_corename(), then "+AVX512" where
 * fedrop's own AVX-512 kernels ran beside a core whose name does not imply them (as
 * OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU), "+FLM_NO_SKINNY" where that variable turned them
 * off. The core's name alone printed "Haswell" for a run whose dense layers used AVX-512 kernels,
 * whose figures (bench_train's "% of peak") then read as impossible. Header-only: each benchmark
 * is one program. */
#ifndef FEDROP_BENCH_KERNEL_H
#define FEDROP_BENCH_KERNEL_H

#include <stdio.h>
#include <string.h>

#include "flm_blas.h"

static inline const char *bench_kernel_name(char *out, size_t cap)
{
    const char *core = flm_blas_corename();
    static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    int implied = 0;
    for (size_t i = 0; i < sizeof avx512_cores / sizeof avx512_cores[0]; i++)
        implied |= strcmp(core, avx512_cores[i]) == 0;
    const char *suffix = flm_blas_skinny_off()                ? "+FLM_NO_SKINNY"
                         : flm_blas_skinny_on() && !implied ? "+AVX512"
                                                            : "";
    snprintf(out, cap, "%s%s", core, suffix);
    return out;
}

#endif
