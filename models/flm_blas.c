/* flm_blas.c: the GEMM seam, with runtime kernel selection.
 *
 * Debian's libopenblas0-pthread is built with DYNAMIC_ARCH: it chooses its kernels once, in the
 * library's load-time constructor, from cpuid or from the OPENBLAS_CORETYPE environment variable.
 * On many (virtualised) machines its cpuid detection fails and it falls back to the slow generic
 * "Prescott" kernels (5x slower sgemm than SkylakeX on an AVX-512 machine). So fedrop does not
 * link OpenBLAS at build time: on first use it detects AVX2 / AVX-512 itself, sets
 * OPENBLAS_CORETYPE (only when the user has not), and dlopen()s the library, once
 * (pthread_once). If the library cannot be loaded every GEMM runs on flm_sgemm_ref, correctly
 * but slowly, and flm_blas_init() says FL_ERR_BLAS.
 */
#include "flm_blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The CBLAS enum values, fixed by the CBLAS standard. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*cblas_sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta,
                               float *C, int ldc);
typedef void (*set_threads_fn)(int n);
typedef int (*get_threads_fn)(void);
typedef char *(*get_corename_fn)(void);

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* Written once inside pthread_once, read-only afterwards: pthread_once orders the writes before
 * every later reader. */
static struct {
    void *handle;
    cblas_sgemm_fn sgemm;
    set_threads_fn set_threads;
    get_threads_fn get_threads;
    get_corename_fn corename;
    const char *chosen; /* the OPENBLAS_CORETYPE we set, or NULL */
} g_blas;

const char *flm_blas_cpu_coretype(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

static void blas_load(void)
{
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (!env || !*env) {
        const char *core = flm_blas_cpu_coretype();
        if (core && setenv("OPENBLAS_CORETYPE", core, 0) == 0)
            g_blas.chosen = core;
    }
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so",
                                         "libopenblasp-r0.3.21.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    cblas_sgemm_fn sg;
    *(void **)&sg = dlsym(h, "cblas_sgemm");
    if (!sg) {
        dlclose(h);
        return;
    }
    *(void **)&g_blas.set_threads = dlsym(h, "openblas_set_num_threads");
    *(void **)&g_blas.get_threads = dlsym(h, "openblas_get_num_threads");
    *(void **)&g_blas.corename = dlsym(h, "openblas_get_corename");
    g_blas.handle = h;
    g_blas.sgemm = sg;
}

fl_status flm_blas_init(void)
{
    pthread_once(&g_once, blas_load);
    return g_blas.sgemm ? FL_OK : FL_ERR_BLAS;
}

const char *flm_blas_corename(void)
{
    if (flm_blas_init() != FL_OK)
        return "reference";
    if (!g_blas.corename)
        return "openblas";
    const char *s = g_blas.corename();
    return s ? s : "openblas";
}

const char *flm_blas_coretype_set(void)
{
    flm_blas_init();
    return g_blas.chosen;
}

fl_status flm_blas_set_threads(int n)
{
    if (n < 1)
        return FL_ERR_INVALID_ARG;
    const fl_status st = flm_blas_init();
    if (st != FL_OK)
        return st;
    if (g_blas.set_threads)
        g_blas.set_threads(n);
    return FL_OK;
}

int flm_blas_threads(void)
{
    if (flm_blas_init() != FL_OK || !g_blas.get_threads)
        return 1;
    return g_blas.get_threads();
}

void flm_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    pthread_once(&g_once, blas_load);
    if (g_blas.sgemm) {
        g_blas.sgemm(CBLAS_ROW_MAJOR, transA ? CBLAS_TRANS : CBLAS_NO_TRANS,
                     transB ? CBLAS_TRANS : CBLAS_NO_TRANS, M, N, K, alpha, A, lda, B, ldb, beta,
                     C, ldc);
        return;
    }
    flm_sgemm_ref(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void flm_sgemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                const float a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                const float b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}
