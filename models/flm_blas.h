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

#endif
