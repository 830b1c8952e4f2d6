/* flm_blas.h: the one GEMM seam of fedrop. Every matrix product of the training engine goes
 * through flm_sgemm, so a faster kernel or another device plugs in at one place; flm_sgemm_ref
 * is the naive reference behind it, used by tests.
 *
 * Row-major throughout: C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, where op(X)
 * is X or its transpose; lda/ldb/ldc are the row strides of A, B, C as stored.
 */
#ifndef FLM_BLAS_H
#define FLM_BLAS_H

#include "fl_status.h"

void flm_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

void flm_sgemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* A dense layer's backward fused with its SGD step, in one pass over the weights:
 *   dinp (B, C) = dout (B, OC) @ W (OC, C)          with W as it was before the step
 *                                                   (skipped when dinp is NULL)
 *   W = decay * W + alpha * dout^T (OC, B) @ x (B, C)   (alpha = -lr, decay = 1 - lr wd)
 * The seam's second entry point: at small batches both halves are bound by streaming W, so the
 * fused form reads and writes W once instead of reading it twice. AVX-512 kernel for B <= 10,
 * otherwise two flm_sgemm calls per block of rows. Same arithmetic up to float rounding. */
void flm_dense_bwd_update(float *dinp, float *W, const float *dout, const float *x, int B, int C,
                          int OC, float alpha, float decay);
/* The same step out of other weights: reads W as it was before the step from Wsrc and writes the
 * stepped weights to W (Wsrc == W: flm_dense_bwd_update). The same bits as copying Wsrc into W
 * and stepping in place, without the copy: a local round's first step can read the weights as
 * received and write the working ones. Wsrc and W must not otherwise overlap. */
void flm_dense_bwd_update_from(float *dinp, float *W, const float *Wsrc, const float *dout,
                               const float *x, int B, int C, int OC, float alpha, float decay);

/* Kernel selection (flm_blas.c). OpenBLAS is not linked at build time: the first call of any
 * function below or of flm_sgemm detects the CPU (AVX-512 -> "SkylakeX", AVX2+FMA -> "Haswell"),
 * sets OPENBLAS_CORETYPE to it unless the environment already names a core (or OpenBLAS is already
 * loaded into the process, which means its constructor has chosen), then dlopen()s
 * libopenblas.so.0, exactly once per process (pthread_once; thread-safe). Setting the variable
 * touches the process environment: call flm_blas_init() early, before other threads call
 * getenv/setenv, if that matters to the program. */

/* Loads OpenBLAS. FL_OK, or FL_ERR_BLAS when it cannot be loaded: flm_sgemm then runs
 * flm_sgemm_ref (correct, slow). Idempotent. */
fl_status flm_blas_init(void);
/* flm_blas_init, and if this call is the one that loads OpenBLAS: GEMMs start with max_threads
 * threads, and OpenBLAS is loaded without a thread pool (OPENBLAS_NUM_THREADS=1, set only when
 * the environment names no count; OpenBLAS creates its pool at load time and each pool thread
 * busy-waits for a while before sleeping, beside threads that would not use it).
 * FL_ERR_INVALID_ARG for max_threads < 1. */
fl_status flm_blas_init_threads(int max_threads);
/* The kernel that runs: openblas_get_corename() ("SkylakeX", "Haswell", "Prescott", ...), or
 * "reference" when OpenBLAS is not loaded. Static string. */
const char *flm_blas_corename(void);
/* The core type this library put into OPENBLAS_CORETYPE, or NULL when it left the environment as
 * it was (the user set it, or the CPU has neither AVX2 nor AVX-512). */
const char *flm_blas_coretype_set(void);
/* What the CPU detection picks: "SkylakeX", "Haswell", or NULL. Pure. */
const char *flm_blas_cpu_coretype(void);
/* The kernel that the environment's OPENBLAS_CORETYPE names when it is not the one this library
 * picks for the CPU (flm_blas_cpu_coretype, letter case aside), else NULL (unset, empty, the same,
 * or a CPU with no pick). OpenBLAS then runs the user's kernel: training rounds otherwise, so other
 * bits, and runs slower where the pick is an AVX-512 kernel and the named one is not (*slower = 1;
 * slower may be NULL). Reads the environment, loads nothing: a program may ask before it sets
 * the GEMM threads (flm_blas_init_threads), for a note to its user. */
const char *flm_blas_env_coretype_other(int *slower);
/* The environment's OPENBLAS_CORETYPE when OpenBLAS runs another kernel than it names (letter
 * case aside): a name OpenBLAS does not know (a typo: it then runs its own detection's pick), or
 * one it would not run on this CPU; else NULL (unset, empty, set by this library, honoured, or
 * OpenBLAS not loaded). Loads OpenBLAS (flm_blas_init). */
const char *flm_blas_env_coretype_ignored(void);
/* Threads for later GEMMs (process-wide; at most 64; by default OpenBLAS's count at load:
 * OPENBLAS_NUM_THREADS, else one per CPU). OpenBLAS itself always runs single-threaded: a large
 * GEMM is cut into blocks by its shape alone, each one OpenBLAS call, shared out among these
 * threads, so that the bits never depend on their number (OpenBLAS's own threading partitions by
 * the thread count, and some of its kernels round differently then). FL_ERR_INVALID_ARG for
 * n < 1, FL_ERR_BLAS without OpenBLAS. A program with several copies of fedrop's models (one in
 * libflclient.so, one of its own) has a count in each. */
fl_status flm_blas_set_threads(int n);
int flm_blas_threads(void);
/* 1 when FLM_NO_SKINNY turned off the AVX-512 kernels this CPU would otherwise run (their
 * results differ in the last bits from OpenBLAS's); 0 where it changes nothing. */
int flm_blas_skinny_off(void);
/* 1 when fedrop's own AVX-512 GEMM kernels run (the CPU has AVX-512, FLM_NO_SKINNY is unset),
 * whatever core OpenBLAS runs: with OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU they still do, so
 * the core's name alone does not say which kernels computed. */
int flm_blas_skinny_on(void);
/* The name of the GEMM kernels that compute, into out (cap bytes): flm_blas_corename(), then
 * "+AVX512" where fedrop's own AVX-512 kernels run beside a core whose name does not imply them,
 * "+FLM_NO_SKINNY" where that variable turned them off. Two runs with the same name used the
 * same kernels (fl_sim's summary.json "blas", the benchmarks' kernel). Returns out. */
const char *flm_blas_kernel_name(char *out, size_t cap);

#endif
