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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The CBLAS enum values, fixed by the CBLAS standard. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*cblas_sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb, float beta,
                               float *C, int ldc);
typedef void (*set_threads_fn)(int n);
typedef int (*get_threads_fn)(void);
typedef char *(*get_corename_fn)(void);

#define GEMM_THREADS_MAX 64

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
    int avx512;         /* the skinny kernels below may run */
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

static int have_avx512(void);
/* flm_blas_init_threads' count for the load, 0 = OpenBLAS's default. Atomic: clients made on
 * several threads at once (flc.h: distinct clients are independent) each store theirs. */
static atomic_int g_init_threads;
/* The threads of later GEMMs (flm_blas_set_threads). OpenBLAS itself always runs one: its own
 * threading partitions a GEMM by the thread count, and with some of its kernels (Haswell's, seen
 * on an AMD EPYC) the partition changes the rounding, so 1 and 2 threads gave other weights. The
 * GEMMs are split here instead, by their shape alone (gemm_blocks). */
static atomic_int g_threads = 1;

static void blas_load(void)
{
    g_blas.avx512 = have_avx512() && !getenv("FLM_NO_SKINNY");
    const char *env = getenv("OPENBLAS_CORETYPE");
    /* Already in the process (linked by the program)? Then its constructor has chosen already. */
    void *loaded = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (loaded)
        dlclose(loaded);
    if (!loaded && (!env || !*env)) {
        const char *core = flm_blas_cpu_coretype();
        if (core && setenv("OPENBLAS_CORETYPE", core, 1) == 0)
            g_blas.chosen = core;
    }
    const char *nt = getenv("OPENBLAS_NUM_THREADS");
    const int init_threads = atomic_load(&g_init_threads);
    /* A host that names its count (flm_blas_init_threads) loads OpenBLAS without a pool: its
     * threads would only spin beside those of gemm_blocks. The count is ours (g_threads). */
    const int named = init_threads > 0 && (!nt || !*nt);
    if (!loaded && named)
        (void)setenv("OPENBLAS_NUM_THREADS", "1", 1);
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
    /* else OpenBLAS's own count: OPENBLAS_NUM_THREADS, or one per CPU */
    const int t = named ? init_threads : g_blas.get_threads ? g_blas.get_threads() : 1;
    atomic_store(&g_threads, t < 1 ? 1 : t > GEMM_THREADS_MAX ? GEMM_THREADS_MAX : t);
    if (g_blas.set_threads)
        g_blas.set_threads(1);
}

fl_status flm_blas_init(void)
{
    pthread_once(&g_once, blas_load);
    return g_blas.sgemm ? FL_OK : FL_ERR_BLAS;
}

/* OpenBLAS's kernels that use AVX-512 (it picks none of them on a CPU without it). */
static int avx512_core(const char *name)
{
    static const char *const cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (strcasecmp(name, cores[i]) == 0)
            return 1;
    return 0;
}

const char *flm_blas_env_coretype_other(int *slower)
{
    if (slower)
        *slower = 0;
    const char *env = getenv("OPENBLAS_CORETYPE");
    const char *pick = flm_blas_cpu_coretype();
    if (!env || !*env || !pick || strcasecmp(env, pick) == 0)
        return NULL;
    if (slower)
        *slower = avx512_core(pick) && !avx512_core(env);
    return env;
}

const char *flm_blas_env_coretype_ignored(void)
{
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (!env || !*env || flm_blas_init() != FL_OK || g_blas.chosen || !g_blas.corename)
        return NULL;
    const char *core = g_blas.corename();
    return core && strcasecmp(core, env) != 0 ? env : NULL;
}

fl_status flm_blas_init_threads(int max_threads)
{
    if (max_threads < 1)
        return FL_ERR_INVALID_ARG;
    atomic_store(&g_init_threads, max_threads); /* read by blas_load under pthread_once */
    return flm_blas_init();
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
    atomic_store(&g_threads, n > GEMM_THREADS_MAX ? GEMM_THREADS_MAX : n);
    return FL_OK;
}

int flm_blas_skinny_off(void)
{
    flm_blas_init(); /* sets g_blas.avx512, with or without OpenBLAS */
    return have_avx512() && !g_blas.avx512;
}

int flm_blas_skinny_on(void)
{
    flm_blas_init();
    return g_blas.avx512;
}

const char *flm_blas_kernel_name(char *out, size_t cap)
{
    /* fedrop's own AVX-512 kernels round otherwise than OpenBLAS, so the name says whether they
     * ran. OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU runs them, a CPU with AVX2 alone does
     * not, and both used to be "Haswell": one name for two results. An AVX-512 core's name
     * (SkylakeX, Cooperlake, SapphireRapids: OpenBLAS picks none of them without AVX-512) stays
     * bare, as saved runs have it. */
    const char *core = flm_blas_corename();
    const int implied = avx512_core(core);
    const char *suffix = flm_blas_skinny_off()                ? "+FLM_NO_SKINNY"
                         : flm_blas_skinny_on() && !implied ? "+AVX512"
                                                            : "";
    if (cap)
        snprintf(out, cap, "%s%s", core, suffix);
    return out;
}

int flm_blas_threads(void)
{
    if (flm_blas_init() != FL_OK)
        return 1;
    return atomic_load(&g_threads);
}

/* ---- skinny GEMMs ---------------------------------------------------------------------------
 *
 * At the small batches of on-device training (B = 10), a dense layer's GEMMs are skinny: one
 * dimension is the batch. OpenBLAS packs the big operand for every call and then does only B
 * multiply-adds per packed element, reaching a third of its peak. These AVX-512 kernels stream the
 * big operand once, straight from memory, with the small operand held in cache/registers:
 *   NT  C (m, n) = A (m, k) B^T,  m <= 16   dense forward      (x W^T)
 *   NN  C (m, n) = A (m, k) B,    m <= 16   dense input grad   (dout W)
 * (The rank-B weight update W += -lr dout^T x stays with OpenBLAS, which does it as fast as a
 * hand kernel here: it is bound by reading and writing W.)
 * Chosen by shape only (never by thread count), so results are the same whatever the threads.
 * Single-threaded. */

#define SKINNY_MAX 16
#define SKINNY_MIN_WORK 32768 /* elements of the big operand below which OpenBLAS is as good */

/* One skinny / fused-backward GEMM split over threads (see "splitting the skinny kernels"
 * below); declared for every target, used where the AVX-512 kernels are built. */
typedef struct par_ctx {
    int kind; /* 0 NT, 1 NN, 2 fused dense backward */
    int M, N, K, lda, ldb, ldc, align;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int nparts;
    /* the fused dense backward: columns N of W (OC, N), dinp (M, N), x (M, N), dout (M, OC) */
    float *dinp, *W;
    const float *Wsrc, *dout, *x; /* W before the step: W itself, or another buffer */
    int OC;
    float decay;
} par_ctx;

/* The one thread launcher of both splits below: runs fn(ctx, i) for i = 1 .. n-1 on threads
 * created for this call (tens of microseconds against milliseconds of work) and fn(ctx, 0) here;
 * a part whose thread could not start runs here too, after the others are joined. */
#define RUN_PARTS_MAX 16

typedef struct run_part {
    void (*fn)(void *ctx, int part);
    void *ctx;
    int part;
} run_part;

static void *run_part_main(void *arg)
{
    const run_part *p = arg;
    p->fn(p->ctx, p->part);
    return NULL;
}

static void run_parts(int n, void (*fn)(void *ctx, int part), void *ctx)
{
    pthread_t th[RUN_PARTS_MAX];
    run_part parts[RUN_PARTS_MAX];
    int started[RUN_PARTS_MAX] = {0};
    if (n > RUN_PARTS_MAX)
        n = RUN_PARTS_MAX;
    for (int p = 1; p < n; p++) {
        parts[p] = (run_part){fn, ctx, p};
        started[p] = pthread_create(&th[p], NULL, run_part_main, &parts[p]) == 0;
    }
    fn(ctx, 0);
    for (int p = 1; p < n; p++) {
        if (started[p])
            pthread_join(th[p], NULL);
        else
            fn(ctx, p);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FLM_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

/* NT block: rows i0..i0+MI of C, columns j..j+JB; MI and JB are compile-time constants at every
 * call site, so acc stays in registers (MI <= 8, JB <= 3: 24 accumulators). The JB rows of B
 * stream from memory (prefetched 1 KB ahead); A's rows come from cache. skinny_nt uses it for
 * M outside 6..10 and for the last N % 4 rows of B; skinny_nt4 otherwise. */
static inline __attribute__((always_inline)) FLM_AVX512 void
nt_block(const int MI, const int JB, int K, float alpha, const float *A, int lda, const float *B,
         int ldb, float beta, float *C, int ldc)
{
    __m512 acc[8][3];
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < JB; j++)
            acc[i][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 b[3];
        for (int j = 0; j < JB; j++) {
            _mm_prefetch((const char *)(B + (size_t)j * ldb + k + 256), _MM_HINT_T0);
            b[j] = _mm512_loadu_ps(B + (size_t)j * ldb + k);
        }
        for (int i = 0; i < MI; i++) {
            __m512 a = _mm512_loadu_ps(A + (size_t)i * lda + k);
            __asm__("" : "+v"(a)); /* see nt4_pass */
            for (int j = 0; j < JB; j++)
                acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
        }
    }
    if (k < K) {
        const __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
        __m512 b[3];
        for (int j = 0; j < JB; j++)
            b[j] = _mm512_maskz_loadu_ps(mk, B + (size_t)j * ldb + k);
        for (int i = 0; i < MI; i++) {
            const __m512 a = _mm512_maskz_loadu_ps(mk, A + (size_t)i * lda + k);
            for (int j = 0; j < JB; j++)
                acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
        }
    }
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < JB; j++) {
            float *c = C + (size_t)i * ldc + j;
            const float v = alpha * _mm512_reduce_add_ps(acc[i][j]);
            *c = beta == 0.0f ? v : v + beta * *c;
        }
}

#define NT_CASE(MI, JB)                                                                        \
    case MI:                                                                                   \
        nt_block(MI, JB, K, alpha, A + (size_t)i * lda, lda, B + (size_t)j * ldb, ldb, beta,   \
                 C + (size_t)i * ldc + j, ldc);                                                \
        break;
#define NT_CASES(JB)                                                                           \
    NT_CASE(1, JB) NT_CASE(2, JB) NT_CASE(3, JB) NT_CASE(4, JB)                                \
    NT_CASE(5, JB) NT_CASE(6, JB) NT_CASE(7, JB) NT_CASE(8, JB)

/* For each group of 3 rows of B (streamed from memory once), all rows of A in chunks of 8
 * (the group, 3 rows of B, is still in cache for the second chunk). */
/* NT for 6 <= M <= 10 rows of A, 4 rows of B at a time, in two passes over each block of K
 * (rows 0-4 of A, then rows 5..M-1): the 4 rows of B are read from memory by the first pass and
 * from L1 by the second, and each vector of A loaded (from L2: A is too big for L1) feeds 4 FMAs
 * instead of 3 (nt_block with 3 rows of B and 8 + 2 rows of A). The accumulators of both passes
 * (up to 10 x 4) live in acc between blocks; each lane still sums k = l, l + 16, ... in order, the
 * masked tail last, and the same reduction: the bits are those of nt_block.
 * The empty asm keeps each vector of A in a register: without it GCC folds the load into every
 * FMA (JB loads of the same vector instead of one), and the kernel is bound by loads at ~50% of
 * the FMA peak. With it: 98 GFLOP/s with W in cache, dense0's forward (10 x 2048 x 3136, W from
 * memory) 2.8 -> 1.8 ms on the development VM (with the next 4 rows of W prefetched into L2). */
#define NT4_KB 512

static inline __attribute__((always_inline)) FLM_AVX512 void
nt4_pass(const int MI, int k0, int k1, int tail, const float *A, int lda, const float *B, int ldb,
         __m512 acc[][4], int prefetch, const float *next)
{
    __m512 r[5][4];
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < 4; j++)
            r[i][j] = acc[i][j];
    for (int k = k0; k < k1; k += 16) {
        __m512 b[4];
        for (int j = 0; j < 4; j++) {
            if (prefetch) {
                _mm_prefetch((const char *)(B + (size_t)j * ldb + k + 256), _MM_HINT_T0);
                if (next)
                    _mm_prefetch((const char *)(next + (size_t)j * ldb + k), _MM_HINT_T1);
            }
            b[j] = _mm512_loadu_ps(B + (size_t)j * ldb + k);
        }
        for (int i = 0; i < MI; i++) {
            __m512 a = _mm512_loadu_ps(A + (size_t)i * lda + k);
            __asm__("" : "+v"(a)); /* one load, in a register: not folded into each FMA */
            for (int j = 0; j < 4; j++)
                r[i][j] = _mm512_fmadd_ps(a, b[j], r[i][j]);
        }
    }
    if (tail) {
        const __mmask16 mk = (__mmask16)((1u << tail) - 1);
        __m512 b[4];
        for (int j = 0; j < 4; j++)
            b[j] = _mm512_maskz_loadu_ps(mk, B + (size_t)j * ldb + k1);
        for (int i = 0; i < MI; i++) {
            const __m512 a = _mm512_maskz_loadu_ps(mk, A + (size_t)i * lda + k1);
            for (int j = 0; j < 4; j++)
                r[i][j] = _mm512_fmadd_ps(a, b[j], r[i][j]);
        }
    }
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < 4; j++)
            acc[i][j] = r[i][j];
}

#define NT4_P2(MI2)                                                                            \
    case MI2:                                                                                  \
        nt4_pass(MI2, k0, k1, t, A + (size_t)5 * lda, lda, Bj, ldb, acc + 5, 0, NULL); \
        break;

static FLM_AVX512 void skinny_nt4(int M, int N4, int K, float alpha, const float *A, int lda,
                                  const float *B, int ldb, float beta, float *C, int ldc)
{
    const int Kf = K & ~15;
    __m512 acc[10][4];
    for (int j = 0; j < N4; j += 4) {
        const float *Bj = B + (size_t)j * ldb;
        /* the next 4 rows of B, prefetched into L2 while these are used: ~20% faster from memory */
        const float *next = j + 8 <= N4 ? Bj + (size_t)4 * ldb : NULL;
        for (int i = 0; i < M; i++)
            for (int jj = 0; jj < 4; jj++)
                acc[i][jj] = _mm512_setzero_ps();
        for (int k0 = 0; k0 < Kf || (k0 == Kf && K > Kf); k0 += NT4_KB) {
            const int k1 = Kf - k0 < NT4_KB ? Kf : k0 + NT4_KB;
            const int t = k1 == Kf ? K - Kf : 0; /* the masked tail after the last block */
            nt4_pass(5, k0, k1, t, A, lda, Bj, ldb, acc, 1, next);
            switch (M - 5) { NT4_P2(1) NT4_P2(2) NT4_P2(3) NT4_P2(4) NT4_P2(5) }
            if (k1 == Kf)
                break;
        }
        for (int i = 0; i < M; i++)
            for (int jj = 0; jj < 4; jj++) {
                float *c = C + (size_t)i * ldc + j + jj;
                const float v = alpha * _mm512_reduce_add_ps(acc[i][jj]);
                *c = beta == 0.0f ? v : v + beta * *c;
            }
    }
}

static FLM_AVX512 void skinny_nt(int M, int N, int K, float alpha, const float *A, int lda,
                                 const float *B, int ldb, float beta, float *C, int ldc)
{
    int j = 0;
    if (M >= 6 && M <= 10) {
        const int N4 = N & ~3;
        skinny_nt4(M, N4, K, alpha, A, lda, B, ldb, beta, C, ldc);
        for (j = N4; j < N; j++)
            for (int i = 0; i < M; i += 8)
                switch (M - i < 8 ? M - i : 8) { NT_CASES(1) }
        return;
    }
    for (; j + 3 <= N; j += 3)
        for (int i = 0; i < M; i += 8)
            switch (M - i < 8 ? M - i : 8) { NT_CASES(3) }
    for (; j < N; j++)
        for (int i = 0; i < M; i += 8)
            switch (M - i < 8 ? M - i : 8) { NT_CASES(1) }
}

/* NN block: rows i0..i0+MI of C, a strip of 32 columns (two vectors, masked at the edge). */
static inline __attribute__((always_inline)) FLM_AVX512 void
nn_block(const int MI, int K, float alpha, const float *A, int lda, const float *B, int ldb,
         float beta, float *C, int ldc, __mmask16 m0, __mmask16 m1)
{
    __m512 acc[10][2];
    for (int i = 0; i < MI; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        for (int i = 0; i < MI; i++) {
            const __m512 a = _mm512_set1_ps(A[(size_t)i * lda + k]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < MI; i++) {
        float *c = C + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), r1);
        }
        _mm512_mask_storeu_ps(c, m0, r0);
        _mm512_mask_storeu_ps(c + 16, m1, r1);
    }
}

#define NN_CASE(MI)                                                                            \
    case MI:                                                                                   \
        nn_block(MI, K, alpha, A + (size_t)i * lda, lda, B + j, ldb, beta,                     \
                 C + (size_t)i * ldc + j, ldc, m0, m1);                                        \
        break;

static FLM_AVX512 void skinny_nn(int M, int N, int K, float alpha, const float *A, int lda,
                                 const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int j = 0; j < N; j += 32) {
        const int w = N - j < 32 ? N - j : 32;
        const __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFFu : (1u << w) - 1);
        const __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFFu : w > 16 ? (1u << (w - 16)) - 1 : 0);
        for (int i = 0; i < M; i += 10) {
            const int mi = M - i < 10 ? M - i : 10;
            switch (mi) {
                NN_CASE(1) NN_CASE(2) NN_CASE(3) NN_CASE(4) NN_CASE(5)
                NN_CASE(6) NN_CASE(7) NN_CASE(8) NN_CASE(9) NN_CASE(10)
            }
        }
    }
}

/* Fused dense backward + SGD step (flm_dense_bwd_update_from) for a batch of MB <= 10 rows, over
 * rows [0, rb) of W starting at W and Ws (row stride C). For every 16-column chunk c: x[:, c] and
 * the dinp[:, c] accumulators stay in registers while the rb rows stream through once:
 *   acc_i += dout[i, k] * Ws[k, c]              (dinp, with W before the update)
 *   W[k, c] = decay * Ws[k, c] + sum_i sa[k][i] x[i, c]   (sa = alpha * dout^T)
 * (Ws == W: the step in place.)
 * d[k][i] = dout[i, r0 + k] and sa[k][i] are small transposed copies made by the caller. */
static inline __attribute__((always_inline)) FLM_AVX512 void
dbu_block(const int MB, int rb, int Cn, int C, float *W, const float *Ws, float *dinp,
          const float *x, const float *d, const float *sa, float decay, int first)
{
    /* Cn columns of row stride C */
    const __m512 vdecay = _mm512_set1_ps(decay);
    for (int c = 0; c < Cn; c += 16) {
        const __mmask16 m = (__mmask16)(Cn - c >= 16 ? 0xFFFFu : (1u << (Cn - c)) - 1);
        __m512 xv[10], acc[10];
        for (int i = 0; i < MB; i++) {
            xv[i] = _mm512_maskz_loadu_ps(m, x + (size_t)i * C + c);
            acc[i] = (first || !dinp) ? _mm512_setzero_ps()
                                      : _mm512_maskz_loadu_ps(m, dinp + (size_t)i * C + c);
        }
        for (int k = 0; k < rb; k++) {
            float *wk = W + (size_t)k * C + c;
            const float *wsk = Ws + (size_t)k * C + c;
            _mm_prefetch((const char *)(wsk + 128), _MM_HINT_T0);
            const __m512 w = _mm512_maskz_loadu_ps(m, wsk);
            const float *dk = d + k * MB, *sk = sa + k * MB;
            if (dinp)
                for (int i = 0; i < MB; i++)
                    acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(dk[i]), w, acc[i]);
            __m512 u0 = _mm512_mul_ps(vdecay, w), u1 = _mm512_setzero_ps();
            for (int i = 0; i + 1 < MB; i += 2) {
                u0 = _mm512_fmadd_ps(_mm512_set1_ps(sk[i]), xv[i], u0);
                u1 = _mm512_fmadd_ps(_mm512_set1_ps(sk[i + 1]), xv[i + 1], u1);
            }
            if (MB & 1)
                u0 = _mm512_fmadd_ps(_mm512_set1_ps(sk[MB - 1]), xv[MB - 1], u0);
            _mm512_mask_storeu_ps(wk, m, _mm512_add_ps(u0, u1));
        }
        if (dinp)
            for (int i = 0; i < MB; i++)
                _mm512_mask_storeu_ps(dinp + (size_t)i * C + c, m, acc[i]);
    }
}

#define DBU_ROWS 64
#define DBU_CASE(MB)                                                                           \
    case MB:                                                                                   \
        dbu_block(MB, rb, Cn, C, W + (size_t)r0 * C, Ws + (size_t)r0 * C, dinp, x, d, sa, decay, \
                  r0 == 0);                                                                    \
        break;

/* Columns [0, Cn) of W (row stride C), dinp and x (pointers already at the first column). */
static FLM_AVX512 void dbu_avx512(float *dinp, float *W, const float *Ws, const float *dout,
                                  const float *x, int B, int Cn, int C, int OC, float alpha,
                                  float decay)
{
    float d[DBU_ROWS * 10], sa[DBU_ROWS * 10];
    for (int r0 = 0; r0 < OC; r0 += DBU_ROWS) {
        const int rb = OC - r0 < DBU_ROWS ? OC - r0 : DBU_ROWS;
        for (int k = 0; k < rb; k++)
            for (int i = 0; i < B; i++) {
                d[k * B + i] = dout[(size_t)i * OC + r0 + k];
                sa[k * B + i] = alpha * d[k * B + i];
            }
        switch (B) {
            DBU_CASE(1) DBU_CASE(2) DBU_CASE(3) DBU_CASE(4) DBU_CASE(5)
            DBU_CASE(6) DBU_CASE(7) DBU_CASE(8) DBU_CASE(9) DBU_CASE(10)
        }
    }
}

static int have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
}

/* ---- splitting the skinny kernels over threads --------------------------------------------
 * Each part owns a disjoint range of output columns and computes every one of its outputs with
 * exactly the arithmetic of the single-threaded kernel, so the bits do not depend on the number
 * of parts. Threads are started per call (run_parts) and only for calls big enough; their number
 * follows flm_blas_set_threads. */
#define PAR_MAX RUN_PARTS_MAX
#define PAR_MIN_WORK (1u << 20) /* elements of the big operand per thread */

static FLM_AVX512 void par_run_part(void *ctx, int part)
{
    const par_ctx *c = ctx;
    /* range [j0, j1) of the split dimension, in multiples of c->align */
    const int units = (c->N + c->align - 1) / c->align;
    const int u0 = (int)((long)units * part / c->nparts), u1 = (int)((long)units * (part + 1) / c->nparts);
    const int j0 = u0 * c->align, j1 = u1 * c->align < c->N ? u1 * c->align : c->N;
    if (j1 <= j0)
        return;
    switch (c->kind) {
    case 0:
        skinny_nt(c->M, j1 - j0, c->K, c->alpha, c->A, c->lda, c->B + (size_t)j0 * c->ldb, c->ldb,
                  c->beta, c->C + j0, c->ldc);
        break;
    case 1:
        skinny_nn(c->M, j1 - j0, c->K, c->alpha, c->A, c->lda, c->B + j0, c->ldb, c->beta,
                  c->C + j0, c->ldc);
        break;
    default:
        dbu_avx512(c->dinp ? c->dinp + j0 : NULL, c->W + j0, c->Wsrc + j0, c->dout, c->x + j0,
                   c->M, j1 - j0, c->N, c->OC, c->alpha, c->decay);
        break;
    }
}

static int par_threads(size_t work)
{
    int t = atomic_load(&g_threads);
    const size_t cap = work / PAR_MIN_WORK;
    if ((size_t)t > cap)
        t = (int)cap;
    return t < 1 ? 1 : t > PAR_MAX ? PAR_MAX : t;
}

static void par_run(par_ctx *c)
{
    run_parts(c->nparts, par_run_part, c);
}

/* 1 when a skinny kernel took the call. */
static int skinny_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (!g_blas.avx512)
        return 0;
    if (M <= SKINNY_MAX && !transA && (size_t)N * K >= SKINNY_MIN_WORK) {
        par_ctx c = {transB ? 0 : 1, M, N, K, lda, ldb, ldc, transB ? 4 : 32, alpha, beta,
                     A, B, C, par_threads((size_t)N * K), NULL, NULL, NULL, NULL, NULL, 0, 0.0f};
        par_run(&c);
        return 1;
    }
    return 0;
}
#else
static int have_avx512(void) { return 0; }
static int par_threads(size_t work)
{
    (void)work;
    return 1;
}
static void par_run(par_ctx *c) { (void)c; }
static int skinny_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda;
    (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
    return 0;
}
#endif

/* ---- OpenBLAS's GEMMs over threads, the same bits whatever their number -------------------
 * A GEMM with at least 2 GEMM_BLOCK_WORK multiply-adds is cut into blocks of rows of C (or of
 * columns, when C has more of them), how many by its shape alone: at most GEMM_BLOCKS_MAX, each
 * of at least GEMM_BLOCK_WORK and a multiple of GEMM_BLOCK_ALIGN rows (columns) but the last.
 * Each block is one single-threaded OpenBLAS call, whichever thread makes it, so the bits do not
 * depend on the number of threads; the blocks are shared out among min(threads, blocks) threads,
 * started per call (run_parts). */
#define GEMM_BLOCK_WORK (1u << 22)
#define GEMM_BLOCKS_MAX 16
#define GEMM_BLOCK_ALIGN 16

typedef struct gemm_job {
    int transA, transB, M, N, K, by_rows, units, blocks;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    atomic_int next;
} gemm_job;

static void gemm_block(const gemm_job *g, int b)
{
    const int u0 = (int)((long)g->units * b / g->blocks);
    const int u1 = (int)((long)g->units * (b + 1) / g->blocks);
    const int all = g->by_rows ? g->M : g->N;
    const int i0 = u0 * GEMM_BLOCK_ALIGN, i1 = u1 * GEMM_BLOCK_ALIGN < all ? u1 * GEMM_BLOCK_ALIGN
                                                                            : all;
    if (i1 <= i0)
        return;
    const int ta = g->transA ? CBLAS_TRANS : CBLAS_NO_TRANS;
    const int tb = g->transB ? CBLAS_TRANS : CBLAS_NO_TRANS;
    if (g->by_rows) /* rows i0..i1 of op(A) and of C */
        g_blas.sgemm(CBLAS_ROW_MAJOR, ta, tb, i1 - i0, g->N, g->K, g->alpha,
                     g->A + (g->transA ? (size_t)i0 : (size_t)i0 * g->lda), g->lda, g->B, g->ldb,
                     g->beta, g->C + (size_t)i0 * g->ldc, g->ldc);
    else /* columns i0..i1 of op(B) and of C */
        g_blas.sgemm(CBLAS_ROW_MAJOR, ta, tb, g->M, i1 - i0, g->K, g->alpha, g->A, g->lda,
                     g->B + (g->transB ? (size_t)i0 * g->ldb : (size_t)i0), g->ldb, g->beta,
                     g->C + i0, g->ldc);
}

/* Any thread takes the next block left; one that starts late (or runs in place of a thread that
 * did not start) finds fewer or none. */
static void gemm_worker(void *ctx, int part)
{
    (void)part;
    gemm_job *g = ctx;
    for (int b; (b = atomic_fetch_add(&g->next, 1)) < g->blocks;)
        gemm_block(g, b);
}

static void gemm_blocks(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_job g = {transA, transB, M, N, K, M >= N, 0, 1, alpha, beta, A, B, C, lda, ldb, ldc, 0};
    const int along = g.by_rows ? M : N;
    g.units = (along + GEMM_BLOCK_ALIGN - 1) / GEMM_BLOCK_ALIGN;
    const double work = (double)M * N * (K > 0 ? K : 1);
    const double fit = work / GEMM_BLOCK_WORK;
    g.blocks = fit >= GEMM_BLOCKS_MAX ? GEMM_BLOCKS_MAX : fit >= 2 ? (int)fit : 1;
    if (g.blocks > g.units)
        g.blocks = g.units;
    int t = atomic_load(&g_threads);
    if (t > g.blocks)
        t = g.blocks;
    run_parts(t, gemm_worker, &g);
}

void flm_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    pthread_once(&g_once, blas_load);
    if (K > 0 && skinny_gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    if (g_blas.sgemm) {
        gemm_blocks(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

void flm_dense_bwd_update(float *dinp, float *W, const float *dout, const float *x, int B, int C,
                          int OC, float alpha, float decay)
{
    flm_dense_bwd_update_from(dinp, W, W, dout, x, B, C, OC, alpha, decay);
}

void flm_dense_bwd_update_from(float *dinp, float *W, const float *Wsrc, const float *dout,
                               const float *x, int B, int C, int OC, float alpha, float decay)
{
    if (B <= 0 || C <= 0 || OC <= 0)
        return;
    pthread_once(&g_once, blas_load);
    if (g_blas.avx512 && B <= 10 && (size_t)C * OC >= SKINNY_MIN_WORK) {
        par_ctx c = {2, B, C, 0, 0, 0, 0, 16, alpha, 0.0f, NULL, NULL, NULL,
                     par_threads((size_t)C * OC), dinp, W, Wsrc, dout, x, OC, decay};
        par_run(&c);
        return;
    }
    /* Two GEMMs per block of rows: the block is read from memory by the first and is still in
     * cache for the second (and for the copy from Wsrc before them, when the step is not in
     * place: the GEMMs read W as it was before the step, so they run on the copy). */
    int RB = 65536 / C;
    RB = RB < 8 ? 8 : RB > 256 ? 256 : RB;
    for (int r0 = 0; r0 < OC; r0 += RB) {
        const int rb = OC - r0 < RB ? OC - r0 : RB;
        float *wr = W + (size_t)r0 * C;
        if (Wsrc != W)
            memcpy(wr, Wsrc + (size_t)r0 * C, (size_t)rb * C * sizeof *wr);
        /* dinp (B, C) (+)= dout[:, r0 : r0+rb] (B, rb) @ W[r0 : r0+rb, :] (rb, C) */
        if (dinp)
            flm_sgemm(0, 0, B, C, rb, 1.0f, dout + r0, OC, wr, C, r0 ? 1.0f : 0.0f, dinp, C);
        /* W[r0 : r0+rb, :] = decay W + alpha dout[:, r0 : r0+rb]^T (rb, B) @ x (B, C) */
        flm_sgemm(1, 0, rb, C, B, alpha, dout + r0, OC, x, C, decay, wr, C);
    }
}
