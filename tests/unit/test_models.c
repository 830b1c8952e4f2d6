/* Unit tests for the models training engine: the GEMM seam and its kernel selection, every layer
 * against finite differences, whole architectures against finite differences, golden values from
 * PyTorch (tests/fixtures/golden/make_golden.py), the optimizers and flm_train_local.
 *
 * Tolerances (float32 engine):
 *   - flm_sgemm vs flm_sgemm_ref (double accumulation): |d| <= 1e-5 * (sum_k |a_k b_k| + |beta c|).
 *   - layer finite differences: the loss is sum(out * R) accumulated in double, central
 *     differences with eps = 1e-3 on inputs kept away from relu / maxpool kinks:
 *     |num - ana| <= 2e-3 + 1e-2 |ana|.
 *   - whole architectures, per tensor: the 6 largest-gradient coordinates one at a time
 *     (eps = 1e-3 for cnn/mlp, 1e-2 for lstm), |num - ana| <= 3e-4 + 2e-2 |ana|; for the smooth
 *     lstm also a random +-1 direction over the whole tensor, |num - ana| <= 1e-4 + 2e-2 |ana|.
 *   - golden (PyTorch float64): logits and loss 1e-4 relative to the largest magnitude; gradients
 *     and parameters after 3 SGD steps 2e-3 (gradients) / 1e-4 (parameters) relative to the
 *     tensor's largest magnitude.
 *   - the mlp, cnn and lstm forward passes as fl_client/README.md states them (double, plain
 *     loops): each logit within 1e-4 of its sample's largest logit magnitude, + 1e-7.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flm_blas.h"
#include "flm_layers.h"
#include "flm_model.h"
#include "flm_moge.h"
#include "flm_optim.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static void fill_uniform(float *x, size_t n, float lo, float hi, fl_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * fl_rng_uniform(r);
}

/* N uniform 28x28 images into x (N * 784 floats) from seed's data stream, label (i * step) % 10
 * into y: a batch of Fashion-MNIST's shape for tests that need no real data. */
static flm_samples synth_images(float *x, int32_t *y, int N, uint64_t seed, int step)
{
    fl_rng dr = fl_rng_stream(seed, 0, 0, FL_RNG_DATA);
    fill_uniform(x, (size_t)N * 784, 0, 1, &dr);
    for (int i = 0; i < N; i++)
        y[i] = (i * step) % 10;
    return (flm_samples){x, NULL, y, NULL, (size_t)N};
}

/* Values bounded away from 0 (relu kinks): |x| in [0.05, 1]. */
static void fill_away_from_zero(float *x, size_t n, fl_rng *r)
{
    for (size_t i = 0; i < n; i++) {
        const float v = 0.05f + 0.95f * fl_rng_uniform(r);
        x[i] = fl_rng_u32(r) & 1 ? v : -v;
    }
}

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static int close_enough(double num, double ana, double abs_tol, double rel_tol)
{
    return fabs(num - ana) <= abs_tol + rel_tol * fabs(ana);
}

/* ---- GEMM seam -------------------------------------------------------------------------------- */

static void test_sgemm_matches_reference(void **state)
{
    (void)state;
    /* includes the shapes of flm_blas.c's skinny kernels (m <= 16 or k <= 16 with a big other
     * side: NT, NN and rank-k, at every edge of their register blocks) and OpenBLAS's */
    static const int shapes[][3] = {
        {1, 1, 1},     {7, 13, 5},    {33, 17, 65},  {129, 3, 257}, {10, 2048, 3},
        {64, 196, 800}, {5, 1, 31},   {2, 97, 1},    {10, 301, 257}, {16, 129, 300},
        {3, 1000, 33}, {11, 257, 130}, {1, 40000, 1}, {300, 257, 10}, {129, 301, 1},
        {257, 130, 16}, {17, 300, 200}, {9, 31, 4100}};
    static const float ab[][2] = {{1.0f, 0.0f}, {-0.5f, 1.0f}, {2.0f, 0.25f}};
    fl_rng r = fl_rng_stream(1, 0, 0, FL_RNG_TEST);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t k = 0; k < sizeof ab / sizeof ab[0]; k++) {
                    /* padded leading dimensions catch stride mix-ups */
                    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
                    const size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
                    const size_t nc = (size_t)M * ldc;
                    float *A = malloc(na * 4), *Bm = malloc(nb * 4), *C1 = malloc(nc * 4),
                          *C2 = malloc(nc * 4);
                    assert_non_null(A);
                    assert_non_null(Bm);
                    assert_non_null(C1);
                    assert_non_null(C2);
                    fill_uniform(A, na, -1, 1, &r);
                    fill_uniform(Bm, nb, -1, 1, &r);
                    fill_uniform(C1, nc, -1, 1, &r);
                    memcpy(C2, C1, nc * 4);
                    const float alpha = ab[k][0], beta = ab[k][1];
                    flm_sgemm(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C1, ldc);
                    flm_sgemm_ref(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C2, ldc);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < ldc; j++) {
                            const size_t at = (size_t)i * ldc + j;
                            if (j >= N) { /* padding untouched */
                                assert_true(C1[at] == C2[at]);
                                continue;
                            }
                            const double bound = 1e-5 * (fabs(alpha) * K + fabs(beta) + 1.0);
                            if (fabs(C1[at] - C2[at]) > bound)
                                fail_msg("sgemm %dx%dx%d ta=%d tb=%d: C[%d,%d] %g vs ref %g", M,
                                         N, K, ta, tb, i, j, C1[at], C2[at]);
                        }
                    free(A);
                    free(Bm);
                    free(C1);
                    free(C2);
                }
    }
}

/* flm_dense_bwd_update against two reference GEMMs, on both sides of its kernel's limits
 * (B <= 10, C * OC >= 32768, a column count that is not a multiple of 16). */
static void test_dense_bwd_update(void **state)
{
    (void)state;
    static const int cases[][3] = {{1, 300, 150}, {7, 300, 150}, {10, 301, 129}, {13, 300, 150},
                                   {4, 20, 9}};
    fl_rng r = fl_rng_stream(8, 0, 0, FL_RNG_TEST);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int B = cases[t][0], C = cases[t][1], OC = cases[t][2];
        const size_t nw = (size_t)OC * C;
        float *w = malloc(nw * 4), *w_ref = malloc(nw * 4), *x = malloc((size_t)B * C * 4);
        float *dout = malloc((size_t)B * OC * 4), *dinp = malloc((size_t)B * C * 4);
        float *dinp_ref = malloc((size_t)B * C * 4);
        fill_uniform(w, nw, -1, 1, &r);
        fill_uniform(x, (size_t)B * C, -1, 1, &r);
        fill_uniform(dout, (size_t)B * OC, -1, 1, &r);
        memcpy(w_ref, w, nw * 4);
        const float alpha = -0.05f, decay = 0.999f;
        flm_sgemm_ref(0, 0, B, C, OC, 1.0f, dout, OC, w_ref, C, 0.0f, dinp_ref, C);
        flm_sgemm_ref(1, 0, OC, C, B, alpha, dout, OC, x, C, decay, w_ref, C);
        for (int with_dinp = 0; with_dinp < 2; with_dinp++) {
            float *w2 = malloc(nw * 4), *w3 = malloc(nw * 4), *w_keep = malloc(nw * 4);
            float *dinp3 = malloc((size_t)B * C * 4);
            memcpy(w2, w, nw * 4);
            memcpy(w_keep, w, nw * 4);
            flm_dense_bwd_update(with_dinp ? dinp : NULL, w2, dout, x, B, C, OC, alpha, decay);
            for (size_t i = 0; i < nw; i++)
                if (fabs(w2[i] - w_ref[i]) > 1e-5 * (1 + B))
                    fail_msg("B=%d C=%d OC=%d: W[%zu] %g vs %g", B, C, OC, i, w2[i], w_ref[i]);
            if (with_dinp)
                for (int i = 0; i < B * C; i++)
                    if (fabs(dinp[i] - dinp_ref[i]) > 1e-5 * OC)
                        fail_msg("B=%d C=%d OC=%d: dinp[%d] %g vs %g", B, C, OC, i, dinp[i],
                                 dinp_ref[i]);
            /* the step out of other weights: the in-place step's bits, the source untouched */
            for (size_t i = 0; i < nw; i++)
                w3[i] = NAN;
            flm_dense_bwd_update_from(with_dinp ? dinp3 : NULL, w3, w, dout, x, B, C, OC, alpha,
                                      decay);
            assert_memory_equal(w3, w2, nw * 4);
            assert_memory_equal(w, w_keep, nw * 4);
            if (with_dinp)
                assert_memory_equal(dinp3, dinp, (size_t)B * C * 4);
            free(w2);
            free(w3);
            free(w_keep);
            free(dinp3);
        }
        free(w); free(w_ref); free(x); free(dout); free(dinp); free(dinp_ref);
    }
}

static void test_blas_kernel_selection(void **state)
{
    (void)state;
    assert_int_equal(flm_blas_init(), FL_OK);
    const char *core = flm_blas_corename();
    assert_non_null(core);
    const char *want = flm_blas_cpu_coretype();
    const char *set = flm_blas_coretype_set();
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (set) {
        /* we chose the core: OpenBLAS must run exactly that one, not its generic fallback */
        assert_non_null(want);
        assert_string_equal(set, want);
        if (strcasecmp(core, set) != 0)
            fail_msg("OpenBLAS runs '%s', expected '%s'", core, set);
    } else if (want && user && *user) {
        print_message("OPENBLAS_CORETYPE=%s set by the user; OpenBLAS runs %s\n", user, core);
    }
    assert_int_equal(flm_blas_set_threads(0), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_blas_init_threads(0), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_blas_init_threads(1), FL_OK); /* loaded already: idempotent */
    assert_int_equal(flm_blas_set_threads(1), FL_OK);
    assert_int_equal(flm_blas_threads(), 1);
}

/* flm_blas_env_coretype_other: the environment's OPENBLAS_CORETYPE when it is not the pick. The
 * variable is restored afterwards (OpenBLAS, loaded or not, has read it already or will not). */
static void test_blas_env_coretype_other(void **state)
{
    (void)state;
    const char *pick = flm_blas_cpu_coretype();
    const char *was = getenv("OPENBLAS_CORETYPE");
    char saved[64] = "";
    if (was)
        snprintf(saved, sizeof saved, "%s", was);
    int slower = -1;
    unsetenv("OPENBLAS_CORETYPE");
    assert_null(flm_blas_env_coretype_other(&slower));
    assert_int_equal(slower, 0);
    setenv("OPENBLAS_CORETYPE", "", 1);
    assert_null(flm_blas_env_coretype_other(NULL));
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    const char *other = flm_blas_env_coretype_other(&slower);
    if (!pick) { /* a CPU with no pick: nothing to compare the user's choice with */
        assert_null(other);
    } else {
        assert_non_null(other);
        assert_string_equal(other, "Prescott");
        /* Prescott has no AVX-512; a SkylakeX pick loses it, a Haswell pick has none to lose */
        assert_int_equal(slower, strcmp(pick, "SkylakeX") == 0);
        char lower[32];
        snprintf(lower, sizeof lower, "%s", pick);
        for (char *c = lower; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        setenv("OPENBLAS_CORETYPE", lower, 1); /* the pick itself, in other letters */
        assert_null(flm_blas_env_coretype_other(&slower));
        assert_int_equal(slower, 0);
        if (strcmp(pick, "SkylakeX") == 0) { /* another AVX-512 kernel: other bits, no slower */
            setenv("OPENBLAS_CORETYPE", "Cooperlake", 1);
            assert_non_null(flm_blas_env_coretype_other(&slower));
            assert_int_equal(slower, 0);
        }
    }
    if (was)
        setenv("OPENBLAS_CORETYPE", saved, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
}

/* ---- layers: finite differences ------------------------------------------------------------- */

/* A layer under test: forward(ctx) writes ctx's output; the checker perturbs one input buffer. */
typedef struct fd_case {
    void (*forward)(struct fd_case *c);
    float *out;      /* (n_out) */
    size_t n_out;
    const float *R;  /* (n_out) loss weights: L = sum(out * R) */
    void *p[8];
    int d[8];
} fd_case;

static double fd_loss(fd_case *c)
{
    c->forward(c);
    return dot_d(c->out, c->R, c->n_out);
}

/* Checks d L / d x[i] == g[i] for up to max_checks indexes spread over x. */
static void fd_check(const char *what, fd_case *c, float *x, const float *g, size_t n,
                     size_t max_checks)
{
    const float eps = 1e-3f;
    const size_t step = n > max_checks ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += step) {
        const float save = x[i];
        x[i] = save + eps;
        const double lp = fd_loss(c);
        x[i] = save - eps;
        const double lm = fd_loss(c);
        x[i] = save;
        const double num = (lp - lm) / (2.0 * eps);
        if (!close_enough(num, g[i], 2e-3, 1e-2))
            fail_msg("%s: d/dx[%zu]: finite difference %.6g, backward %.6g", what, i, num, g[i]);
    }
    c->forward(c);
}

static void dense_fwd(fd_case *c)
{
    flm_dense_forward(c->out, c->p[0], c->p[1], c->p[2], c->d[0], c->d[1], c->d[2], 0);
}

static void test_dense_grad(void **state)
{
    (void)state;
    const int B = 3, C = 17, OC = 9;
    fl_rng r = fl_rng_stream(2, 0, 0, FL_RNG_TEST);
    float x[3 * 17], w[9 * 17], b[9], out[3 * 9], R[3 * 9];
    float dx[3 * 17], dw[9 * 17] = {0}, db[9] = {0};
    fill_uniform(x, B * C, -1, 1, &r);
    fill_uniform(w, OC * C, -1, 1, &r);
    fill_uniform(b, OC, -1, 1, &r);
    fill_uniform(R, B * OC, -1, 1, &r);
    fd_case c = {dense_fwd, out, (size_t)B * OC, R, {x, w, b}, {B, C, OC}};
    c.forward(&c);
    /* forward against the definition */
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OC; o++)
            assert_float_equal(out[i * OC + o], b[o] + dot_d(x + i * C, w + o * C, C), 1e-5);
    flm_dense_backward(dx, dw, db, R, x, w, B, C, OC);
    fd_check("dense dinp", &c, x, dx, B * C, 64);
    fd_check("dense dw", &c, w, dw, OC * C, 200);
    fd_check("dense db", &c, b, db, OC, 64);
    /* gradients accumulate */
    float dw2[9 * 17], db2[9];
    memcpy(dw2, dw, sizeof dw);
    memcpy(db2, db, sizeof db);
    flm_dense_backward(NULL, dw2, db2, R, x, w, B, C, OC);
    for (int i = 0; i < OC * C; i++)
        assert_float_equal(dw2[i], 2 * dw[i], 1e-5);
    for (int i = 0; i < OC; i++)
        assert_float_equal(db2[i], 2 * db[i], 1e-5);
}

static void conv_fwd(fd_case *c)
{
    flm_conv2d_forward(c->out, c->p[3], c->p[0], c->p[1], c->p[2], c->d[0], c->d[1], c->d[2],
                       c->d[3], c->d[4], c->d[5], c->d[6], 0);
}

static void check_conv(int B, int C, int H, int W, int OC, int K, int pad)
{
    const int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1;
    fl_rng r = fl_rng_stream(3, (uint32_t)K, (uint32_t)pad, FL_RNG_TEST);
    const size_t nx = (size_t)B * C * H * W, nw = (size_t)OC * C * K * K, no = (size_t)B * OC * OH * OW;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(OC * 4), *out = malloc(no * 4),
          *R = malloc(no * 4), *dx = malloc(nx * 4), *dw = calloc(nw, 4), *db = calloc(OC, 4);
    float *col = malloc(flm_conv2d_col_floats(B, C, K, OH, OW) * 4);
    float *scr = malloc(flm_conv2d_scratch_floats(B, C, OC, K, OH, OW) * 4);
    fill_uniform(x, nx, -1, 1, &r);
    fill_uniform(w, nw, -1, 1, &r);
    fill_uniform(b, OC, -1, 1, &r);
    fill_uniform(R, no, -1, 1, &r);
    fd_case c = {conv_fwd, out, no, R, {x, w, b, col}, {B, C, H, W, OC, K, pad}};
    c.forward(&c);
    /* forward against the direct definition */
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OC; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double s = b[o];
                    for (int ci = 0; ci < C; ci++)
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++) {
                                const int ih = oh + kh - pad, iw = ow + kw - pad;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                    continue;
                                s += (double)w[((o * C + ci) * K + kh) * K + kw] *
                                     x[((i * C + ci) * H + ih) * W + iw];
                            }
                    assert_float_equal(out[((i * OC + o) * OH + oh) * OW + ow], s, 1e-4);
                }
    flm_conv2d_backward(dx, dw, db, scr, R, col, w, B, C, H, W, OC, K, pad);
    fd_check("conv dinp", &c, x, dx, nx, 150);
    fd_check("conv dw", &c, w, dw, nw, 150);
    fd_check("conv db", &c, b, db, OC, 32);
    free(x); free(w); free(b); free(out); free(R); free(dx); free(dw); free(db); free(col); free(scr);
}

static void test_conv2d_grad(void **state)
{
    (void)state;
    check_conv(2, 3, 7, 6, 4, 5, 2); /* same */
    check_conv(2, 2, 6, 7, 3, 3, 0); /* valid */
    check_conv(1, 1, 5, 5, 2, 5, 2); /* kernel as large as the input */
}

static void pool_fwd(fd_case *c)
{
    flm_maxpool2d_forward(c->out, c->p[1], c->p[0], c->d[0], c->d[1], c->d[2], c->d[3], c->d[4]);
}

static void check_pool(int B, int C, int H, int W, int K)
{
    const int OH = H / K, OW = W / K;
    const size_t nx = (size_t)B * C * H * W, no = (size_t)B * C * OH * OW;
    float *x = malloc(nx * 4), *out = malloc(no * 4), *R = malloc(no * 4), *dx = malloc(nx * 4);
    int32_t *arg = malloc(no * 4);
    fl_rng r = fl_rng_stream(4, (uint32_t)K, 0, FL_RNG_TEST);
    /* distinct values 0.01 apart: no ties within eps */
    for (size_t i = 0; i < nx; i++)
        x[i] = 0.01f * (float)i;
    for (size_t i = nx - 1; i > 0; i--) {
        const size_t j = fl_rng_below(&r, (uint32_t)(i + 1));
        const float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    fill_uniform(R, no, -1, 1, &r);
    fd_case c = {pool_fwd, out, no, R, {x, arg}, {B, C, H, W, K}};
    c.forward(&c);
    flm_maxpool2d_backward(dx, R, arg, B, C, H, W, K);
    fd_check("maxpool dinp", &c, x, dx, nx, nx);
    /* fused with the backward of a relu before it: the same as the two passes */
    float *xr = malloc(nx * 4), *d2 = malloc(nx * 4);
    for (size_t i = 0; i < nx; i++)
        xr[i] = x[i] - 0.01f * (float)(nx / 2); /* half the inputs are not positive */
    flm_relu_forward(xr, xr, nx);
    flm_maxpool2d_forward(out, arg, xr, B, C, H, W, K);
    flm_maxpool2d_backward(dx, R, arg, B, C, H, W, K);
    flm_relu_backward(dx, dx, xr, nx);
    flm_maxpool2d_relu_backward(d2, R, arg, xr, B, C, H, W, K);
    assert_memory_equal(d2, dx, nx * 4);
    free(xr); free(d2);
    free(x); free(out); free(R); free(dx); free(arg);
}

static void test_maxpool_grad(void **state)
{
    (void)state;
    check_pool(2, 3, 6, 5, 2); /* the unrolled window, odd width dropped */
    check_pool(2, 3, 28, 28, 2); /* windows tile the input: the AVX-512 relu backward, 8 + 6 */
    check_pool(1, 2, 4, 36, 2);  /* 8 + 8 + 2 windows per row */
    check_pool(1, 2, 7, 9, 3); /* the generic window */
    /* ties go to the first element, as in PyTorch */
    float t[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, o;
    int32_t a;
    flm_maxpool2d_forward(&o, &a, t, 1, 1, 2, 2, 2);
    assert_int_equal(a, 0);
    flm_maxpool2d_forward(&o, &a, t, 1, 1, 3, 3, 3);
    assert_int_equal(a, 0);
}

static void relu_fwd(fd_case *c) { flm_relu_forward(c->out, c->p[0], c->n_out); }

static void test_relu_grad(void **state)
{
    (void)state;
    enum { N = 101 };
    float x[N], out[N], R[N], dx[N];
    fl_rng r = fl_rng_stream(5, 0, 0, FL_RNG_TEST);
    fill_away_from_zero(x, N, &r);
    fill_uniform(R, N, -1, 1, &r);
    fd_case c = {relu_fwd, out, N, R, {x}, {0}};
    c.forward(&c);
    flm_relu_backward(dx, R, out, N);
    fd_check("relu dinp", &c, x, dx, N, N);
    /* in place, as the model runs it */
    float y[N], dy[N];
    memcpy(y, x, sizeof x);
    flm_relu_forward(y, y, N);
    memcpy(dy, R, sizeof R);
    flm_relu_backward(dy, dy, y, N);
    assert_memory_equal(dy, dx, sizeof dx);
}

static void last_fwd(fd_case *c) { flm_last_step_forward(c->out, c->p[0], c->d[0], c->d[1], c->d[2]); }

static void test_last_step_grad(void **state)
{
    (void)state;
    enum { B = 2, T = 4, C = 3 };
    float x[B * T * C], out[B * C], R[B * C], dx[B * T * C];
    fl_rng r = fl_rng_stream(6, 0, 0, FL_RNG_TEST);
    fill_uniform(x, B * T * C, -1, 1, &r);
    fill_uniform(R, B * C, -1, 1, &r);
    fd_case c = {last_fwd, out, B * C, R, {x}, {B, T, C}};
    c.forward(&c);
    flm_last_step_backward(dx, R, B, T, C);
    fd_check("last step dinp", &c, x, dx, B * T * C, B * T * C);
}

static void test_softmax_xent_grad(void **state)
{
    (void)state;
    enum { B = 3, V = 7 };
    float z[B * V], dz[B * V];
    int32_t y[B] = {0, 6, 3};
    fl_rng r = fl_rng_stream(7, 0, 0, FL_RNG_TEST);
    fill_uniform(z, B * V, -3, 3, &r);
    const double L = flm_softmax_xent(dz, z, y, B, V);
    /* against the definition */
    double ref = 0;
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int v = 0; v < V; v++)
            s += exp(z[i * V + v]);
        ref += log(s) - z[i * V + y[i]];
    }
    assert_float_equal(L, ref / B, 1e-6);
    const float eps = 1e-3f;
    for (int i = 0; i < B * V; i++) {
        const float save = z[i];
        z[i] = save + eps;
        const double lp = flm_softmax_xent(NULL, z, y, B, V);
        z[i] = save - eps;
        const double lm = flm_softmax_xent(NULL, z, y, B, V);
        z[i] = save;
        assert_true(close_enough((lp - lm) / (2 * eps), dz[i], 1e-4, 1e-3));
    }
    /* huge logits stay finite */
    float big[2] = {1e30f, -1e30f}, dbig[2];
    int32_t y1 = 1;
    assert_true(isfinite(flm_softmax_xent(dbig, big, &y1, 1, 2)));
    assert_true(isfinite(dbig[0]) && isfinite(dbig[1]));
}

/* ---- whole architectures -------------------------------------------------------------------- */

typedef struct arch_case {
    flm_arch a;
    flm_model *m;
    float *params, *grads;
    float *x;
    int32_t *tok, *y;
    int B;
} arch_case;

/* keep: when non-NULL, the submodel keeping keep[d] units of droppable layer d */
static void arch_case_new_sub(arch_case *c, const char *spec, const int *keep, int B, uint32_t seed)
{
    memset(c, 0, sizeof *c);
    char err[128];
    assert_int_equal(flm_arch_parse(spec, &c->a, err, sizeof err), FL_OK);
    if (keep) {
        flm_arch full = c->a;
        assert_int_equal(flm_arch_sub(&full, keep, &c->a), FL_OK);
    }
    assert_int_equal(flm_model_new(&c->a, B, &c->m), FL_OK);
    c->B = B;
    c->params = malloc(c->a.n_params * 4);
    c->grads = calloc(c->a.n_params, 4);
    assert_non_null(c->params);
    assert_non_null(c->grads);
    fl_rng r = fl_rng_stream(seed, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&c->a, c->params, &r);
    fl_rng d = fl_rng_stream(seed, 1, 0, FL_RNG_TEST);
    const size_t D = (size_t)c->a.in_C * c->a.in_H * c->a.in_W;
    c->y = malloc((size_t)B * sizeof(int32_t));
    for (int i = 0; i < B; i++)
        c->y[i] = (int32_t)fl_rng_below(&d, (uint32_t)c->a.classes);
    if (c->a.token_input) {
        c->tok = malloc((size_t)B * c->a.in_H * sizeof(int32_t));
        for (int i = 0; i < B * c->a.in_H; i++)
            c->tok[i] = (int32_t)fl_rng_below(&d, (uint32_t)c->a.layers[0].C);
    } else {
        c->x = malloc((size_t)B * D * 4);
        fill_uniform(c->x, (size_t)B * D, 0, 1, &d);
    }
}

static void arch_case_new(arch_case *c, const char *spec, int B, uint32_t seed)
{
    arch_case_new_sub(c, spec, NULL, B, seed);
}

static void arch_case_free(arch_case *c)
{
    flm_model_free(c->m);
    free(c->params);
    free(c->grads);
    free(c->x);
    free(c->tok);
    free(c->y);
}

/* What training minimises: the forward's loss plus a MoGE load-balancing loss (0 without). */
static double arch_loss(arch_case *c)
{
    float L;
    assert_int_equal(flm_model_forward(c->m, c->params, c->x, c->tok, c->y, c->B, &L), FL_OK);
    return L + flm_model_aux_loss(c->m);
}

/* Per tensor: 6 of the 10 coordinates with the largest gradients, one at a time (a single
 * coordinate moves few relu / maxpool pre-activations across their kinks; a coordinate whose
 * one-sided slopes disagree has a kink within eps and is skipped, at least 3 must be checked), and for smooth models (directional
 * != 0) also a random +-1 direction over the whole tensor. */
static void check_arch_grad_sub(const char *spec, const int *keep, int B, float eps,
                               int directional)
{
    arch_case c;
    arch_case_new_sub(&c, spec, keep, B, 11);
    arch_loss(&c);
    assert_int_equal(flm_model_backward(c.m, c.params, c.grads), FL_OK);
    fl_rng r = fl_rng_stream(12, 0, 0, FL_RNG_TEST);
    for (int t = 0; t < c.a.n_tensors; t++) {
        const flm_tensor *ten = &c.a.tensors[t];
        float *w = c.params + ten->offset;
        const float *g = c.grads + ten->offset;
        size_t top[10];
        int ntop = 0;
        for (size_t i = 0; i < ten->numel; i++) {
            int at;
            if (ntop < 10)
                at = ntop++;
            else if (fabs(g[i]) > fabs(g[top[9]]))
                at = 9;
            else
                continue;
            top[at] = i;
            while (at > 0 && fabs(g[top[at]]) > fabs(g[top[at - 1]])) {
                const size_t tmp = top[at];
                top[at] = top[at - 1];
                top[at - 1] = tmp;
                at--;
            }
        }
        const double l0 = arch_loss(&c);
        int checked = 0;
        for (int k = 0; k < ntop && checked < 6; k++) {
            const size_t i = top[k];
            const float save = w[i];
            w[i] = save + eps;
            const double lp = arch_loss(&c);
            w[i] = save - eps;
            const double lm = arch_loss(&c);
            w[i] = save;
            const double num = (lp - lm) / (2.0 * eps);
            /* a relu / maxpool kink within eps: the one-sided slopes disagree; not differentiable
             * there, take the next coordinate */
            const double left = (l0 - lm) / eps, right = (lp - l0) / eps;
            if (fabs(left - right) > 3e-4 + 2e-2 * fabs(g[i]))
                continue;
            checked++;
            if (getenv("FLM_FD_DEBUG"))
                print_message("%s %s[%zu]: %.6g vs %.6g\n", spec, ten->name, i, num, g[i]);
            if (!close_enough(num, g[i], 3e-4, 2e-2))
                fail_msg("%s %s[%zu]: finite difference %.6g, backward %.6g", spec, ten->name, i,
                         num, g[i]);
        }
        if (checked < (ntop < 3 ? ntop : 3))
            fail_msg("%s %s: only %d smooth coordinates", spec, ten->name, checked);
        if (!directional)
            continue;
        float *save = malloc(ten->numel * 4);
        float *v = malloc(ten->numel * 4);
        memcpy(save, w, ten->numel * 4);
        for (size_t i = 0; i < ten->numel; i++)
            v[i] = fl_rng_u32(&r) & 1 ? 1.0f : -1.0f;
        const double ana = dot_d(g, v, ten->numel);
        for (size_t i = 0; i < ten->numel; i++)
            w[i] = save[i] + eps * v[i];
        const double lp = arch_loss(&c);
        for (size_t i = 0; i < ten->numel; i++)
            w[i] = save[i] - eps * v[i];
        const double lm = arch_loss(&c);
        memcpy(w, save, ten->numel * 4);
        const double num = (lp - lm) / (2.0 * eps);
        if (getenv("FLM_FD_DEBUG"))
            print_message("%s %s along v: %.6g vs %.6g\n", spec, ten->name, num, ana);
        if (!close_enough(num, ana, 1e-4, 2e-2))
            fail_msg("%s %s: directional derivative %.6g, backward %.6g", spec, ten->name, num, ana);
        free(save);
        free(v);
    }
    arch_case_free(&c);
}

static void check_arch_grad(const char *spec, int B, float eps, int directional)
{
    check_arch_grad_sub(spec, NULL, B, eps, directional);
}

/* Submodels (what a client trains under federated dropout) are ordinary archs to the engine. */
static void test_arch_grad_submodels(void **state)
{
    (void)state;
    static const int cnn_keep[3] = {20, 37, 1000}; /* conv0, conv1, dense0 units */
    check_arch_grad_sub("cnn:10:12x12x1", cnn_keep, 2, 1e-3f, 0);
    static const int lstm_keep[2] = {5, 3};        /* lstm0, lstm1 units */
    check_arch_grad_sub("lstm:20:4:8:2:6", lstm_keep, 3, 1e-2f, 1);
}

static void test_arch_grad_mlp(void **state)
{
    (void)state;
    check_arch_grad("mlp:12-7-6-5", 4, 1e-3f, 0);
}

static void test_arch_grad_cnn(void **state)
{
    (void)state;
    check_arch_grad("cnn:10:12x12x1", 3, 1e-3f, 0);
    check_arch_grad("cnn:4:8x8x2", 2, 1e-3f, 0);
}

static void test_arch_grad_lstm(void **state)
{
    (void)state;
    check_arch_grad("lstm:20:4:8:2:6", 3, 1e-2f, 1);
}

/* The MoGE layer against a naive per-sample reference in double, written from flm_moge.h's
 * formulas: softmax over all experts, per group the K' of largest gate logit (ties to the lower
 * index, by a stable sort here rather than repeated selection), experts read from the
 * (OC, N, C) layout. Table-driven over shapes, including K > E (clipped to E) and tied logits;
 * a sample's output does not depend on the rest of its batch. */
static void moge_ref(double *out, const float *x, const float *gw, const float *gb,
                     const float *w, const float *b, int C, int N, int G, int K, int OC)
{
    const int E = N / G, Ka = K < E ? K : E;
    double z[64], p[64], m = -INFINITY, sum = 0.0;
    for (int e = 0; e < N; e++) {
        z[e] = gb[e];
        for (int c = 0; c < C; c++)
            z[e] += (double)gw[e * C + c] * x[c];
        m = fmax(m, z[e]);
    }
    for (int e = 0; e < N; e++)
        sum += p[e] = exp(z[e] - m);
    for (int o = 0; o < OC; o++)
        out[o] = 0.0;
    for (int g = 0; g < G; g++) {
        int order[64];
        for (int j = 0; j < E; j++)
            order[j] = g * E + j;
        for (int i = 1; i < E; i++) /* insertion sort, descending z: stable, ties keep index order */
            for (int j = i; j > 0 && z[order[j]] > z[order[j - 1]]; j--) {
                const int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        for (int s = 0; s < Ka; s++) {
            const int e = order[s];
            for (int o = 0; o < OC; o++) {
                double h = b[o * N + e];
                for (int c = 0; c < C; c++)
                    h += (double)w[((size_t)o * N + e) * C + c] * x[c];
                out[o] += p[e] / sum * h;
            }
        }
    }
}

static void test_moge_layer_reference(void **state)
{
    (void)state;
    static const struct { int B, C, N, G, K, OC, tie; } rows[] = {
        {7, 5, 6, 2, 2, 4, 0}, {5, 9, 12, 3, 1, 6, 0}, {4, 3, 4, 1, 4, 2, 0},
        {3, 4, 6, 3, 5, 3, 0}, /* K 5 > E 2: every expert runs */
        {6, 5, 8, 2, 1, 3, 1}, /* experts 0 and 1 tied: 0 wins */
    };
    fl_rng r = fl_rng_stream(21, 0, 0, FL_RNG_TEST);
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
        const int B = rows[ri].B, C = rows[ri].C, N = rows[ri].N, G = rows[ri].G,
                  K = rows[ri].K, OC = rows[ri].OC;
        float *x = malloc((size_t)B * C * 4), *gw = malloc((size_t)N * C * 4);
        float *gb = malloc((size_t)N * 4), *w = malloc((size_t)OC * N * C * 4);
        float *b = malloc((size_t)OC * N * 4), *out = malloc((size_t)B * OC * 4);
        float *out1 = malloc((size_t)OC * 4);
        float *cache = malloc(flm_moge_cache_floats(B, N, G, K, OC) * 4);
        int32_t *route = malloc(flm_moge_route_ints(B, N, G, K) * 4);
        float *scratch = malloc(flm_moge_scratch_floats(B, C, N, OC) * 4);
        assert_true(x && gw && gb && w && b && out && out1 && cache && route && scratch);
        float *vs[] = {x, gw, gb, w, b};
        const size_t ns[] = {(size_t)B * C, (size_t)N * C, (size_t)N, (size_t)OC * N * C,
                             (size_t)OC * N};
        for (int v = 0; v < 5; v++)
            for (size_t i = 0; i < ns[v]; i++)
                vs[v][i] = fl_rng_uniform(&r) * 2.0f - 1.0f;
        if (rows[ri].tie) { /* expert 1's gate = expert 0's, and both above the rest of group 0 */
            for (int c = 0; c < C; c++)
                gw[C + c] = gw[c];
            gb[0] = gb[1] = 10.0f;
        }
        flm_moge_forward(out, cache, route, scratch, x, gw, gb, w, b, B, C, N, G, K, OC);
        if (rows[ri].tie) /* every sample's pick in group 0: the lower index of the tied two */
            for (int i = 0; i < B; i++)
                assert_int_equal(route[i * G * flm_moge_active(N, G, K)], 0);
        for (int i = 0; i < B; i++) {
            double want[64];
            moge_ref(want, x + (size_t)i * C, gw, gb, w, b, C, N, G, K, OC);
            for (int o = 0; o < OC; o++)
                if (fabs(out[i * OC + o] - want[o]) > 1e-5 * (1.0 + fabs(want[o])))
                    fail_msg("row %zu sample %d out[%d]: %.8g, reference %.8g", ri, i, o,
                             out[i * OC + o], want[o]);
            /* alone in its batch: the same values (to rounding: another GEMM shape may run
             * another kernel) */
            flm_moge_forward(out1, cache, route, scratch, x + (size_t)i * C, gw, gb, w, b, 1, C,
                             N, G, K, OC);
            for (int o = 0; o < OC; o++)
                assert_true(fabs(out1[o] - out[i * OC + o]) <= 1e-6 * (1.0 + fabs(out1[o])));
        }
        /* a NaN logit ranks as -inf: expert 0 (NaN) never picked while its group has a finite
         * one, expert 1 (+inf) always first */
        gb[0] = NAN;
        gb[1] = INFINITY;
        flm_moge_forward(out, cache, route, scratch, x, gw, gb, w, b, B, C, N, G, K, OC);
        const int Ka = flm_moge_active(N, G, K), E = N / G;
        for (int i = 0; i < B; i++) {
            assert_int_equal(route[i * G * Ka], 1);
            for (int t = 0; t < Ka; t++) {
                const int32_t e = route[i * G * Ka + t];
                assert_true(e >= 0 && e < E);
                if (Ka < E)
                    assert_int_not_equal(e, 0);
                for (int u = 0; u < t; u++) /* distinct picks */
                    assert_int_not_equal(route[i * G * Ka + u], e);
            }
        }
        float *all[] = {x, gw, gb, w, b, out, out1, cache, scratch};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            free(all[k]);
        free(route);
    }
}

/* A mixture of grouped experts: 3 groups of 4 experts, top 2 of each group. The top-k routing is
 * piecewise constant in the weights (a coordinate that flips a choice has one-sided slopes that
 * disagree, and is skipped like a relu kink); the gate's softmax and the experts are smooth. */
static void test_arch_grad_moge(void **state)
{
    (void)state;
    check_arch_grad("moge:12:9:3:4:2:5", 6, 1e-3f, 0);
    check_arch_grad("moge:10:6:1:5:5:4", 3, 1e-3f, 0); /* one group, every expert used */
    static const int keep[2] = {7, 6};                  /* dense0 units; 2 experts of each group */
    check_arch_grad_sub("moge:12:9:3:4:2:5", keep, 6, 1e-3f, 0);
    /* with the load-balancing loss, large enough to matter beside the task's */
    check_arch_grad("moge:12:9:3:4:2:5:0.5", 6, 1e-3f, 0);
    check_arch_grad("moge:10:6:1:5:2:4:1", 5, 1e-3f, 0);
    check_arch_grad_sub("moge:12:9:3:4:2:5:0.5", keep, 6, 1e-3f, 0);
}

/* The load-balancing loss (flm_model_aux_loss: flm_moge.h's formula, computed here in double
 * from the gate alone) is part of what training minimises but not of the loss reported: the
 * forward's and the evaluation's are the task's alone, the same bits as the model without AUX. */
static void test_moge_aux_loss(void **state)
{
    (void)state;
    const int B = 6, C = 9, N = 12, G = 3, E = 4, K = 2, Ka = 2;
    arch_case plain, aux;
    arch_case_new(&plain, "moge:12:9:3:4:2:5", B, 21);
    arch_case_new(&aux, "moge:12:9:3:4:2:5:0.25", B, 21);
    assert_int_equal(plain.a.n_params, aux.a.n_params);
    assert_memory_equal(plain.params, aux.params, plain.a.n_params * 4);
    const double l0 = arch_loss(&plain), l1 = arch_loss(&aux);
    /* L_aux from the hidden activations: relu(dense0 x), the gate, its softmax and top-K' */
    const flm_tensor *d0w = &aux.a.tensors[0], *d0b = &aux.a.tensors[1];
    const flm_tensor *gw = &aux.a.tensors[2], *gb = &aux.a.tensors[3];
    double P[12] = {0}, picks[12] = {0};
    for (int i = 0; i < B; i++) {
        double h[9], z[12], p[12], m = -INFINITY, sum = 0.0;
        for (int c = 0; c < C; c++) {
            h[c] = aux.params[d0b->offset + c];
            for (int k = 0; k < 12; k++)
                h[c] += (double)aux.params[d0w->offset + (size_t)c * 12 + k] * aux.x[i * 12 + k];
            h[c] = h[c] > 0 ? h[c] : 0;
        }
        for (int e = 0; e < N; e++) {
            z[e] = aux.params[gb->offset + e];
            for (int c = 0; c < C; c++)
                z[e] += (double)aux.params[gw->offset + (size_t)e * C + c] * h[c];
            m = fmax(m, z[e]);
        }
        for (int e = 0; e < N; e++)
            sum += p[e] = exp(z[e] - m);
        for (int e = 0; e < N; e++)
            P[e] += p[e] / sum / B;
        for (int g = 0; g < G; g++) /* the Ka largest of the group (no ties in random data) */
            for (int e = g * E; e < (g + 1) * E; e++) {
                int above = 0;
                for (int j = g * E; j < (g + 1) * E; j++)
                    above += z[j] > z[e];
                picks[e] += above < Ka;
            }
    }
    double laux = 0.0;
    for (int e = 0; e < N; e++)
        laux += picks[e] / (B * G * Ka) * P[e];
    laux *= 0.25 * N;
    (void)K;
    /* arch_loss adds flm_model_aux_loss: 0 for the plain model */
    if (fabs((l1 - l0) - laux) > 1e-5)
        fail_msg("L_aux %.8g (%.8g - %.8g), in double %.8g", l1 - l0, l1, l0, laux);
    assert_true(flm_model_aux_loss(plain.m) == 0.0);
    assert_true(laux > 0.2); /* at least aux, which even use would give */
    float f0, f1; /* the forward's loss: the task's, the same bits */
    assert_int_equal(flm_model_forward(plain.m, plain.params, plain.x, NULL, plain.y, B, &f0), FL_OK);
    assert_int_equal(flm_model_forward(aux.m, aux.params, aux.x, NULL, aux.y, B, &f1), FL_OK);
    assert_memory_equal(&f0, &f1, sizeof f0);
    /* evaluation: the task's loss alone, the same bits */
    const flm_samples sp = {aux.x, NULL, aux.y, NULL, (size_t)B};
    double e0, e1, a0, a1;
    assert_int_equal(flm_model_evaluate(plain.m, plain.params, &sp, &e0, &a0), FL_OK);
    assert_int_equal(flm_model_evaluate(aux.m, aux.params, &sp, &e1, &a1), FL_OK);
    assert_memory_equal(&e0, &e1, sizeof e0);
    assert_memory_equal(&a0, &a1, sizeof a0);
    assert_true(fabs(e0 - l0) < 1e-6);
    arch_case_free(&plain);
    arch_case_free(&aux);
}

/* ---- the forward pass as fl_client/README.md states it ------------------------------------- */

/* This section checks fl_client/README.md ("A plug-in trainer"): the mlp, cnn and lstm forward
 * passes that a device maker's own trainer (an NPU) must reproduce. The reference below is written
 * from that text alone, in plain loops with double accumulation: each tensor's name, shape and
 * place in the flat buffer (in the order the guide lists them), the layer equations, and the sizes
 * a submodel's kept units give. If fedrop's layout or computation changes, the guide and this
 * code change together. The sizes come from the spec string and the kept units, never from the
 * flm_arch, whose tensor shapes are compared with the guide's instead. */

typedef struct doc_walk {
    const flm_arch *a;
    const float *p;
    size_t next; /* where the next tensor must start: tensors lie in the guide's order */
} doc_walk;

/* The tensor `name` of w's weights, after checking that it has the guide's shape (the leading
 * non-zero dimensions of d0..d3) and follows the previous one in the flat buffer. */
static const float *doc_tensor(doc_walk *w, const char *name, int d0, int d1, int d2, int d3)
{
    const int t = flm_arch_find_tensor(w->a, name);
    if (t < 0)
        fail_msg("%s: no tensor %s", w->a->spec, name);
    const flm_tensor *ten = &w->a->tensors[t];
    const int want[4] = {d0, d1, d2, d3};
    int rank = 0;
    while (rank < 4 && want[rank] > 0)
        rank++;
    if (ten->rank != rank)
        fail_msg("%s %s: rank %d, the guide says %d", w->a->spec, name, ten->rank, rank);
    for (int k = 0; k < rank; k++)
        if (ten->shape[k] != want[k])
            fail_msg("%s %s: shape[%d] %d, the guide says %d", w->a->spec, name, k,
                     ten->shape[k], want[k]);
    if (ten->offset != w->next)
        fail_msg("%s %s: at offset %zu, the guide's order puts it at %zu", w->a->spec, name,
                 ten->offset, w->next);
    w->next += ten->numel;
    return w->p + ten->offset;
}

static double *doc_alloc(size_t n)
{
    double *x = calloc(n, sizeof *x);
    assert_non_null(x);
    return x;
}

/* y (out) = W x + b, W (out, in) row-major; relu != 0: max(0, .) after. */
static void doc_dense(double *y, doc_walk *w, int L, const double *x, int in, int out, int relu)
{
    char nw[24], nb[24];
    snprintf(nw, sizeof nw, "dense%d.w", L);
    snprintf(nb, sizeof nb, "dense%d.b", L);
    const float *W = doc_tensor(w, nw, out, in, 0, 0), *b = doc_tensor(w, nb, out, 0, 0, 0);
    for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++)
            s += (double)W[(size_t)o * in + i] * x[i];
        y[o] = relu && s < 0 ? 0 : s;
    }
}

/* mlp:IN-H1-...-Hn-CLASSES with dims[0 .. n+1] = IN, the kept widths, CLASSES. */
static void doc_mlp(double *z, doc_walk w, const float *x, const int *dims, int nd)
{
    double h[64], y[64];
    for (int i = 0; i < dims[0]; i++)
        h[i] = x[i];
    for (int L = 0; L + 1 < nd; L++) {
        assert_true(dims[L + 1] <= 64);
        doc_dense(y, &w, L, h, dims[L], dims[L + 1], L + 2 < nd);
        memcpy(h, y, (size_t)dims[L + 1] * sizeof *h);
    }
    memcpy(z, h, (size_t)dims[nd - 1] * sizeof *z);
    assert_int_equal(w.next, w.a->n_params);
}

/* conv: cross-correlation, 5x5, stride 1, zero padding 2: x (C, H, W) -> y (O, H, W), relu. */
static void doc_conv_relu(double *y, doc_walk *w, int L, const double *x, int C, int H, int W,
                          int O)
{
    char nw[24], nb[24];
    snprintf(nw, sizeof nw, "conv%d.w", L);
    snprintf(nb, sizeof nb, "conv%d.b", L);
    const float *k = doc_tensor(w, nw, O, C, 5, 5), *b = doc_tensor(w, nb, O, 0, 0, 0);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double s = b[o];
                for (int c = 0; c < C; c++)
                    for (int u = 0; u < 5; u++)
                        for (int v = 0; v < 5; v++) {
                            const int ii = i + u - 2, jj = j + v - 2;
                            if (ii >= 0 && ii < H && jj >= 0 && jj < W)
                                s += (double)k[((o * C + c) * 5 + u) * 5 + v] *
                                     x[((size_t)c * H + ii) * W + jj];
                        }
                y[((size_t)o * H + i) * W + j] = s > 0 ? s : 0;
            }
}

/* max pool 2x2, stride 2: (C, H, W) -> (C, H/2, W/2), floors. */
static void doc_pool(double *y, const double *x, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                double m = -INFINITY;
                for (int u = 0; u < 2; u++)
                    for (int v = 0; v < 2; v++)
                        m = fmax(m, x[((size_t)c * H + 2 * i + u) * W + 2 * j + v]);
                y[((size_t)c * OH + i) * OW + j] = m;
            }
}

/* cnn:CLASSES:HxWxC with kept units u = F0, F1, D; x (C, H, W). */
static void doc_cnn(double *z, doc_walk w, const float *x, int classes, int H, int W, int C,
                    const int *u)
{
    const int F0 = u[0], F1 = u[1], D = u[2], H1 = H / 2, W1 = W / 2, H2 = H1 / 2, W2 = W1 / 2;
    double *in = doc_alloc((size_t)C * H * W), *c0 = doc_alloc((size_t)F0 * H * W);
    double *p0 = doc_alloc((size_t)F0 * H1 * W1), *c1 = doc_alloc((size_t)F1 * H1 * W1);
    double *p1 = doc_alloc((size_t)F1 * H2 * W2), *flat = doc_alloc((size_t)F1 * H2 * W2);
    double *d0 = doc_alloc((size_t)D);
    for (size_t i = 0; i < (size_t)C * H * W; i++)
        in[i] = x[i];
    doc_conv_relu(c0, &w, 0, in, C, H, W, F0);
    doc_pool(p0, c0, F0, H, W);
    doc_conv_relu(c1, &w, 1, p0, F0, H1, W1, F1);
    doc_pool(p1, c1, F1, H1, W1);
    for (int c = 0; c < F1; c++)
        for (int i = 0; i < H2; i++)
            for (int j = 0; j < W2; j++)
                flat[(size_t)c * H2 * W2 + i * W2 + j] = p1[((size_t)c * H2 + i) * W2 + j];
    doc_dense(d0, &w, 0, flat, F1 * H2 * W2, D, 1);
    doc_dense(z, &w, 1, d0, D, classes, 0);
    assert_int_equal(w.next, w.a->n_params);
    double *all[] = {in, c0, p0, c1, p1, flat, d0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}

static double doc_sigmoid(double a)
{
    return 1.0 / (1.0 + exp(-a));
}

/* lstm:V:E:HIDDEN:LAYERS:T with kept units U[l] per layer; tok (T). */
static void doc_lstm(double *z, doc_walk w, const int32_t *tok, int V, int E, int layers, int T,
                     const int *U)
{
    enum { MAXT = 16, MAXU = 16 };
    assert_true(T <= MAXT && E <= MAXU);
    double seq[MAXT][MAXU], h[MAXU], c[MAXU], a[4 * MAXU];
    const float *emb = doc_tensor(&w, "embed.w", V, E, 0, 0);
    for (int t = 0; t < T; t++)
        for (int e = 0; e < E; e++)
            seq[t][e] = emb[(size_t)tok[t] * E + e];
    int I = E;
    for (int l = 0; l < layers; l++) {
        const int N = U[l];
        assert_true(N <= MAXU);
        char n_ih[24], n_hh[24], n_b[24];
        snprintf(n_ih, sizeof n_ih, "lstm%d.w_ih", l);
        snprintf(n_hh, sizeof n_hh, "lstm%d.w_hh", l);
        snprintf(n_b, sizeof n_b, "lstm%d.b", l);
        const float *wih = doc_tensor(&w, n_ih, 4 * N, I, 0, 0);
        const float *whh = doc_tensor(&w, n_hh, 4 * N, N, 0, 0);
        const float *b = doc_tensor(&w, n_b, 4 * N, 0, 0, 0);
        for (int j = 0; j < N; j++)
            h[j] = c[j] = 0;
        for (int t = 0; t < T; t++) {
            for (int r = 0; r < 4 * N; r++) {
                double s = b[r];
                for (int k = 0; k < I; k++)
                    s += (double)wih[(size_t)r * I + k] * seq[t][k];
                for (int k = 0; k < N; k++)
                    s += (double)whh[(size_t)r * N + k] * h[k];
                a[r] = s;
            }
            for (int j = 0; j < N; j++) { /* gate blocks i, f, g, o */
                const double ig = doc_sigmoid(a[j]), fg = doc_sigmoid(a[N + j]);
                const double gg = tanh(a[2 * N + j]), og = doc_sigmoid(a[3 * N + j]);
                c[j] = fg * c[j] + ig * gg;
                h[j] = og * tanh(c[j]);
                seq[t][j] = h[j]; /* the next layer's x_t (this step's input is read above) */
            }
        }
        I = N;
    }
    doc_dense(z, &w, 0, seq[T - 1], I, V, 0);
    assert_int_equal(w.next, w.a->n_params);
}

static void test_forward_as_documented(void **state)
{
    (void)state;
    /* keep[0] == 0: the full model; sub: the submodel's spec the guide gives (sub_arch) */
    static const struct { const char *spec; int keep[3]; const char *sub; } rows[] = {
        {"mlp:7-6-5-3", {0}, "mlp:7-6-5-3"},
        {"mlp:7-6-5-3", {4, 2}, "mlp:7-4-2-3"},
        {"cnn:3:10x13x2", {0}, "cnn:3:10x13x2"},          /* odd pooled rows, H != W, C > 1 */
        {"cnn:3:10x13x2", {3, 4, 5}, "cnn:3:10x13x2/3,4,5"},
        {"lstm:11:3:5:2:4", {0}, "lstm:11:3:5:2:4"},
        {"lstm:11:3:5:2:4", {4, 2}, "lstm:11:3:5:2:4/4,2"},
    };
    enum { B = 3 };
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
        const char *spec = rows[ri].spec;
        const int *keep = rows[ri].keep[0] ? rows[ri].keep : NULL;
        flm_arch full, a;
        char err[128];
        assert_int_equal(flm_arch_parse(spec, &full, err, sizeof err), FL_OK);
        a = full;
        if (keep)
            assert_int_equal(flm_arch_sub(&full, keep, &a), FL_OK);
        assert_string_equal(a.spec, rows[ri].sub);
        flm_model *m;
        assert_int_equal(flm_model_new(&a, B, &m), FL_OK);
        float *params = malloc(a.n_params * sizeof *params);
        assert_non_null(params);
        fl_rng r = fl_rng_stream(31, ri, 0, FL_RNG_TEST);
        flm_model_init_params(&a, params, &r);
        const doc_walk w0 = {&a, params, 0};
        double want[B][16];
        float *x = NULL;
        int32_t *tok = NULL;
        int classes = 0;
        if (strncmp(spec, "mlp:", 4) == 0) {
            int dims[8], nd = 0;
            for (const char *p = spec + 4; *p; p += *p == '-') {
                char *end;
                dims[nd++] = (int)strtol(p, &end, 10);
                p = end;
            }
            for (int d = 1; keep && d + 1 < nd; d++)
                dims[d] = keep[d - 1];
            classes = dims[nd - 1];
            x = malloc((size_t)B * dims[0] * sizeof *x);
            assert_non_null(x);
            fill_uniform(x, (size_t)B * dims[0], -1, 1, &r);
            for (int i = 0; i < B; i++)
                doc_mlp(want[i], w0, x + (size_t)i * dims[0], dims, nd);
        } else if (strncmp(spec, "cnn:", 4) == 0) {
            int H, W, C;
            assert_int_equal(sscanf(spec, "cnn:%d:%dx%dx%d", &classes, &H, &W, &C), 4);
            const int fullu[3] = {32, 64, 2048};
            const size_t D = (size_t)C * H * W;
            x = malloc(B * D * sizeof *x);
            assert_non_null(x);
            fill_uniform(x, B * D, -1, 1, &r);
            for (int i = 0; i < B; i++)
                doc_cnn(want[i], w0, x + i * D, classes, H, W, C, keep ? keep : fullu);
        } else {
            int V, E, Hd, L, T;
            assert_int_equal(sscanf(spec, "lstm:%d:%d:%d:%d:%d", &V, &E, &Hd, &L, &T), 5);
            int U[8];
            for (int l = 0; l < L; l++)
                U[l] = keep ? keep[l] : Hd;
            classes = V;
            tok = malloc((size_t)B * T * sizeof *tok);
            assert_non_null(tok);
            for (int i = 0; i < B * T; i++)
                tok[i] = (int32_t)fl_rng_below(&r, (uint32_t)V);
            for (int i = 0; i < B; i++)
                doc_lstm(want[i], w0, tok + (size_t)i * T, V, E, L, T, U);
        }
        assert_int_equal(a.classes, classes);
        assert_int_equal(flm_model_forward(m, params, x, tok, NULL, B, NULL), FL_OK);
        const float *z = flm_model_logits(m);
        for (int i = 0; i < B; i++) {
            double scale = 0;
            for (int k = 0; k < classes; k++)
                scale = fmax(scale, fabs(want[i][k]));
            for (int k = 0; k < classes; k++)
                if (fabs(z[i * classes + k] - want[i][k]) > 1e-4 * scale + 1e-7)
                    fail_msg("%s sample %d logit %d: fedrop %.8g, the guide's %.8g", rows[ri].sub,
                             i, k, z[i * classes + k], want[i][k]);
        }
        flm_model_free(m);
        free(params);
        free(x);
        free(tok);
    }
}

/* ---- golden values from PyTorch ------------------------------------------------------------- */

typedef struct golden {
    unsigned char *buf;
    size_t len;
} golden;

static int golden_load(golden *g)
{
    const char *root = getenv("FEDROP_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/golden/golden.bin", root ? root : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    g->len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    g->buf = malloc(g->len);
    const size_t got = fread(g->buf, 1, g->len, f);
    fclose(f);
    if (got != g->len || g->len < 4 || memcmp(g->buf, "FLMG", 4) != 0)
        return -1;
    return 0;
}

/* The record `name` (count floats), or a test failure. */
static const float *golden_get(const golden *g, const char *name, size_t *count)
{
    size_t off = 4;
    while (off + 36 <= g->len) {
        uint32_t n;
        memcpy(&n, g->buf + off + 32, 4);
        if (strncmp((const char *)g->buf + off, name, 32) == 0) {
            *count = n;
            return (const float *)(g->buf + off + 36); /* 4-aligned: 36-byte headers */
        }
        off += 36 + (size_t)n * 4;
    }
    fail_msg("golden record %s missing", name);
    return NULL;
}

/* The generator make_golden.py shares with us. */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static float gen(uint64_t seed, uint64_t i)
{
    return (float)((double)(splitmix64((seed << 32) + i) >> 40) / 16777216.0 * 2.0 - 1.0);
}

static void golden_params(const flm_arch *a, float *p)
{
    for (int t = 0; t < a->n_tensors; t++) {
        const flm_tensor *ten = &a->tensors[t];
        const flm_layer *l = &a->layers[ten->layer];
        double bound;
        if (l->op == FLM_OP_EMBEDDING)
            bound = 1.0;
        else if (l->op == FLM_OP_LSTM)
            bound = 1.0 / sqrt((double)l->OC);
        else if (l->op == FLM_OP_CONV2D)
            bound = 1.0 / sqrt((double)l->C * l->K * l->K);
        else
            bound = 1.0 / sqrt((double)l->C);
        for (size_t i = 0; i < ten->numel; i++)
            p[ten->offset + i] = (float)(bound * (double)gen(100 + (uint64_t)t, i));
    }
}

static void golden_inputs(const flm_arch *a, int B, float *x, int32_t *tok, int32_t *y)
{
    const size_t D = (size_t)a->in_C * a->in_H * a->in_W;
    if (x)
        for (size_t i = 0; i < (size_t)B * D; i++)
            x[i] = (float)(((double)gen(7, i) + 1.0) / 2.0);
    if (tok)
        for (int i = 0; i < B * a->in_H; i++)
            tok[i] = (7 * i + 3) % a->layers[0].C;
    for (int b = 0; b < B; b++)
        y[b] = (5 * b + 1) % a->classes;
}

static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         size_t stride, double rel)
{
    double scale = 0;
    for (size_t j = 0; j < n; j++)
        scale = fmax(scale, fabs(want[j]));
    for (size_t j = 0; j < n; j++)
        if (fabs(got[j * stride] - want[j]) > rel * scale + 1e-7)
            fail_msg("%s[%zu]: %.8g, PyTorch %.8g (scale %.3g)", what, j * stride,
                     got[j * stride], want[j], scale);
}

static void expect_tensors(const golden *g, const char *tag, char kind, const flm_arch *a,
                           const float *v, double rel)
{
    for (int t = 0; t < a->n_tensors; t++) {
        char name[32], what[64];
        snprintf(name, sizeof name, "%s.%c%d", tag, kind, t);
        size_t n = 0;
        const float *want = golden_get(g, name, &n);
        const size_t numel = a->tensors[t].numel;
        const size_t stride = numel / 4096 > 1 ? numel / 4096 : 1;
        assert_int_equal(n, (numel + stride - 1) / stride);
        snprintf(what, sizeof what, "%s %c %s", tag, kind, a->tensors[t].name);
        expect_close(what, v + a->tensors[t].offset, want, n, stride, rel);
    }
}

static void check_golden(const golden *g, const char *tag, const char *spec, int B)
{
    flm_arch a;
    assert_int_equal(flm_arch_parse(spec, &a, NULL, 0), FL_OK);
    flm_model *m;
    assert_int_equal(flm_model_new(&a, B, &m), FL_OK);
    const size_t D = (size_t)a.in_C * a.in_H * a.in_W;
    float *w0 = malloc(a.n_params * 4), *w = malloc(a.n_params * 4);
    float *gr = calloc(a.n_params, 4);
    float *x = a.token_input ? NULL : malloc((size_t)B * D * 4);
    int32_t *tok = a.token_input ? malloc((size_t)B * a.in_H * 4) : NULL;
    int32_t y[16];
    golden_params(&a, w0);
    golden_inputs(&a, B, x, tok, y);
    /* forward and gradients */
    float L;
    assert_int_equal(flm_model_forward(m, w0, x, tok, y, B, &L), FL_OK);
    char name[32];
    size_t n = 0;
    snprintf(name, sizeof name, "%s.logits", tag);
    const float *want = golden_get(g, name, &n);
    assert_int_equal(n, (size_t)B * a.classes);
    expect_close(name, flm_model_logits(m), want, n, 1, 1e-4);
    snprintf(name, sizeof name, "%s.loss", tag);
    want = golden_get(g, name, &n);
    assert_float_equal(L, want[0], 1e-4 * fabs(want[0]));
    assert_int_equal(flm_model_backward(m, w0, gr), FL_OK);
    expect_tensors(g, tag, 'g', &a, gr, 2e-3);
    /* 3 steps of plain SGD through flm_train_local (fused step): one batch of B samples per
     * epoch, so the shuffle cannot change the full-batch gradient */
    flm_samples s = {x, tok, y, NULL, (size_t)B};
    fl_rng order = fl_rng_stream(1, 0, 0, FL_RNG_BATCH);
    memcpy(w, w0, a.n_params * 4);
    const flm_sgd plain = {0.1f, 0.0f, 0.0f, 0.0f};
    double mean;
    assert_int_equal(flm_train_local(m, w, NULL, &s, 3, &plain, &order, &mean), FL_OK);
    expect_tensors(g, tag, 's', &a, w, 1e-4);
    /* momentum + weight decay + FedProx around w0 (unfused path) */
    memcpy(w, w0, a.n_params * 4);
    const flm_sgd heavy = {0.05f, 0.9f, 1e-3f, 0.01f};
    assert_int_equal(flm_train_local(m, w, w0, &s, 3, &heavy, &order, &mean), FL_OK);
    expect_tensors(g, tag, 'm', &a, w, 1e-4);
    flm_model_free(m);
    free(w0);
    free(w);
    free(gr);
    free(x);
    free(tok);
}

static void test_golden_pytorch(void **state)
{
    (void)state;
    golden g = {0};
    if (golden_load(&g) != 0)
        fail_msg("tests/fixtures/golden/golden.bin not found (FEDROP_SOURCE_ROOT=%s)",
                 getenv("FEDROP_SOURCE_ROOT") ? getenv("FEDROP_SOURCE_ROOT") : "unset");
    check_golden(&g, "cnn", "cnn:10:12x12x1", 4);
    check_golden(&g, "lstm", "lstm:20:4:8:2:6", 4);
    /* the real cnn:10, forward */
    flm_arch a;
    assert_int_equal(flm_arch_parse("cnn:10", &a, NULL, 0), FL_OK);
    flm_model *m;
    assert_int_equal(flm_model_new(&a, 3, &m), FL_OK);
    float *w = malloc(a.n_params * 4), *x = malloc(3 * 784 * 4);
    int32_t y[3];
    golden_params(&a, w);
    golden_inputs(&a, 3, x, NULL, y);
    float L;
    assert_int_equal(flm_model_forward(m, w, x, NULL, y, 3, &L), FL_OK);
    size_t n = 0;
    expect_close("cnnfull.logits", flm_model_logits(m), golden_get(&g, "cnnfull.logits", &n), n,
                 1, 1e-4);
    const float *want = golden_get(&g, "cnnfull.loss", &n);
    assert_float_equal(L, want[0], 1e-4 * fabs(want[0]));
    flm_model_free(m);
    free(w);
    free(x);
    free(g.buf);
}

/* ---- optimizer, runtime, training ------------------------------------------------------------ */

static void test_sgd_step(void **state)
{
    (void)state;
    float w[3] = {1, -2, 0.5f}, v[3] = {0}, g[3] = {0.1f, 0.2f, -0.3f}, wg[3] = {0, 0, 1};
    const flm_sgd o = {0.5f, 0.9f, 0.01f, 0.1f};
    flm_sgd_step(w, v, g, wg, 3, &o);
    /* d = g + wd w + mu (w - wg); v = d; w -= lr v */
    const float d0 = 0.1f + 0.01f * 1 + 0.1f * 1, d2 = -0.3f + 0.01f * 0.5f + 0.1f * (0.5f - 1);
    assert_float_equal(v[0], d0, 1e-6);
    assert_float_equal(w[0], 1 - 0.5f * d0, 1e-6);
    assert_float_equal(w[2], 0.5f - 0.5f * d2, 1e-6);
    const float v0 = v[0], w0 = w[0];
    flm_sgd_step(w, v, g, wg, 3, &o);
    const float d0b = 0.1f + 0.01f * w0 + 0.1f * w0;
    assert_float_equal(v[0], 0.9f * v0 + d0b, 1e-6);
    assert_float_equal(w[0], w0 - 0.5f * (0.9f * v0 + d0b), 1e-6);
    flm_sgd bad = o;
    bad.lr = NAN;
    assert_int_equal(flm_sgd_validate(&bad), FL_ERR_INVALID_ARG);
    bad = o;
    bad.momentum = 1.0f;
    assert_int_equal(flm_sgd_validate(&bad), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_sgd_validate(&o), FL_OK);
}

/* The fused backward+SGD equals backward followed by flm_sgd_step. */
static void test_fused_sgd_matches(void **state)
{
    (void)state;
    /* the last with the load-balancing loss, whose gate gradient the fused step takes too */
    const char *specs[] = {"mlp:20-16-5", "cnn:6:8x8x1", "lstm:12:4:6:1:5", "moge:10:8:2:3:2:4",
                           "moge:10:8:2:3:2:4:0.5"};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        arch_case c;
        arch_case_new(&c, specs[s], 4, 21);
        const size_t P = c.a.n_params;
        float *w1 = malloc(P * 4), *w2 = malloc(P * 4);
        memcpy(w1, c.params, P * 4);
        memcpy(w2, c.params, P * 4);
        const flm_sgd o = {0.2f, 0, 0.05f, 0};
        float L;
        assert_int_equal(flm_model_forward(c.m, w1, c.x, c.tok, c.y, 4, &L), FL_OK);
        assert_int_equal(flm_model_backward(c.m, w1, c.grads), FL_OK);
        flm_sgd_step(w1, NULL, c.grads, NULL, P, &o);
        assert_int_equal(flm_model_forward(c.m, w2, c.x, c.tok, c.y, 4, &L), FL_OK);
        assert_int_equal(flm_model_backward_sgd(c.m, w2, o.lr, o.weight_decay), FL_OK);
        double maxdiff = 0, moved = 0;
        for (size_t i = 0; i < P; i++) {
            maxdiff = fmax(maxdiff, fabs(w1[i] - w2[i]));
            moved = fmax(moved, fabs(w1[i] - c.params[i]));
        }
        assert_true(moved > 1e-4);
        if (maxdiff > 1e-6)
            fail_msg("%s: fused step differs by %g", specs[s], maxdiff);
        free(w1);
        free(w2);
        arch_case_free(&c);
    }
}

static void test_model_errors(void **state)
{
    (void)state;
    arch_case c;
    arch_case_new(&c, "mlp:4-3", 2, 31);
    flm_model *m2 = NULL;
    assert_int_equal(flm_model_new(&c.a, 0, &m2), FL_ERR_INVALID_ARG);
    assert_null(m2);
    assert_int_equal(flm_model_backward(c.m, c.params, c.grads), FL_ERR_STATE);
    int32_t bad[2] = {0, 3};
    assert_int_equal(flm_model_forward(c.m, c.params, c.x, NULL, bad, 2, NULL), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_model_forward(c.m, c.params, c.x, NULL, c.y, 3, NULL), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_model_forward(c.m, c.params, NULL, NULL, c.y, 2, NULL), FL_ERR_INVALID_ARG);
    /* logits only: no backward */
    assert_int_equal(flm_model_forward(c.m, c.params, c.x, NULL, NULL, 2, NULL), FL_OK);
    assert_int_equal(flm_model_backward(c.m, c.params, c.grads), FL_ERR_STATE);
    assert_true(flm_model_bytes(c.m) > c.a.n_params * 4);
    flm_model_free(NULL);
    arch_case_free(&c);
    arch_case t;
    arch_case_new(&t, "lstm:5:2:3:1:4", 2, 32);
    t.tok[3] = 5; /* out of the vocabulary */
    assert_int_equal(flm_model_forward(t.m, t.params, NULL, t.tok, t.y, 2, NULL), FL_ERR_INVALID_ARG);
    arch_case_free(&t);
}

/* Synthetic, learnable data: class c is a bump at position c. */
static void make_blobs(float *x, int32_t *y, size_t n, int D, int classes, fl_rng *r)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % (size_t)classes);
        for (int d = 0; d < D; d++)
            x[i * D + d] = 0.3f * fl_rng_uniform(r) + (d % classes == y[i] ? 1.0f : 0.0f);
    }
}

static void test_train_local(void **state)
{
    (void)state;
    flm_arch a;
    assert_int_equal(flm_arch_parse("mlp:16-12-4", &a, NULL, 0), FL_OK);
    enum { N = 203, D = 16 };
    float *x = malloc(N * D * 4);
    int32_t y[N];
    fl_rng dr = fl_rng_stream(5, 0, 0, FL_RNG_DATA);
    make_blobs(x, y, N, D, 4, &dr);
    uint32_t idx[150];
    for (int i = 0; i < 150; i++)
        idx[i] = (uint32_t)(i + 50); /* a view: rows 50..199 */
    flm_samples train = {x, NULL, y, idx, 150};
    flm_samples all = {x, NULL, y, NULL, N};
    flm_model *m;
    assert_int_equal(flm_model_new(&a, 8, &m), FL_OK);
    float *w = malloc(a.n_params * 4), *w2 = malloc(a.n_params * 4), *wg = malloc(a.n_params * 4);
    fl_rng ir = fl_rng_stream(5, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&a, w, &ir);
    memcpy(w2, w, a.n_params * 4);
    memcpy(wg, w, a.n_params * 4);
    double loss0, acc0, loss1, acc1, mean;
    assert_int_equal(flm_model_evaluate(m, w, &all, &loss0, &acc0), FL_OK);
    const flm_sgd o = {0.1f, 0.5f, 1e-4f, 0.01f};
    fl_rng order = fl_rng_stream(5, 1, 2, FL_RNG_BATCH);
    assert_int_equal(flm_train_local(m, w, wg, &train, 5, &o, &order, &mean), FL_OK);
    assert_int_equal(flm_model_evaluate(m, w, &all, &loss1, &acc1), FL_OK);
    assert_true(loss1 < 0.5 * loss0);
    assert_true(acc1 > 0.9);
    assert_true(mean < loss0);
    /* same stream, same bits */
    fl_rng order2 = fl_rng_stream(5, 1, 2, FL_RNG_BATCH);
    assert_int_equal(flm_train_local(m, w2, wg, &train, 5, &o, &order2, &mean), FL_OK);
    assert_memory_equal(w, w2, a.n_params * 4);
    /* evaluation does not depend on the batch size */
    flm_model *m3;
    assert_int_equal(flm_model_new(&a, 7, &m3), FL_OK);
    double loss3, acc3;
    assert_int_equal(flm_model_evaluate(m3, w, &all, &loss3, &acc3), FL_OK);
    assert_float_equal(loss3, loss1, 1e-5);
    assert_float_equal(acc3, acc1, 1e-12);
    /* FedProx needs the global model; bad arguments are refused */
    const flm_sgd prox = {0.1f, 0, 0, 0.5f};
    assert_int_equal(flm_train_local(m, w, NULL, &train, 1, &prox, &order, &mean), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_train_local(m, w, NULL, &train, 0, &o, &order, &mean), FL_ERR_INVALID_ARG);
    /* a diverging run reports FL_ERR_NUMERIC instead of returning NaN weights silently */
    const flm_sgd wild = {1e30f, 0, 0, 0};
    assert_int_equal(flm_train_local(m, w2, NULL, &train, 3, &wild, &order, &mean), FL_ERR_NUMERIC);
    flm_model_free(m);
    flm_model_free(m3);
    free(x);
    free(w);
    free(w2);
    free(wg);
}

/* flm_train_local_from: the bits of copying init into params and training in place, init
 * untouched, for the fused step (dense layers out of init, others copied) and the unfused one
 * (momentum), and init's values when no step was taken. */
static void test_train_local_from(void **state)
{
    (void)state;
    static const char *specs[] = {"mlp:784-200-200-10", "cnn:10", "moge:784:64:4:4:2:10"};
    enum { N = 23 };
    float *x = malloc((size_t)N * 784 * 4);
    int32_t y[N];
    const flm_samples s = synth_images(x, y, N, 31, 7);
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        flm_arch a;
        assert_int_equal(flm_arch_parse(specs[k], &a, NULL, 0), FL_OK);
        flm_model *m;
        assert_int_equal(flm_model_new(&a, 10, &m), FL_OK);
        const size_t P = a.n_params;
        float *init = malloc(P * 4), *keep = malloc(P * 4), *w_ref = malloc(P * 4);
        float *w = malloc(P * 4);
        fl_rng ir = fl_rng_stream(31, 0, 0, FL_RNG_INIT);
        flm_model_init_params(&a, init, &ir);
        memcpy(keep, init, P * 4);
        const flm_sgd opts[] = {{0.05f, 0, 0, 0}, {0.05f, 0, 1e-3f, 0}, {0.05f, 0.9f, 0, 0}};
        for (size_t o = 0; o < sizeof opts / sizeof opts[0]; o++) {
            double l_ref, l;
            memcpy(w_ref, init, P * 4);
            fl_rng or1 = fl_rng_stream(31, 1, 0, FL_RNG_BATCH), or2 = or1;
            assert_int_equal(flm_train_local(m, w_ref, NULL, &s, 2, &opts[o], &or1, &l_ref), FL_OK);
            for (size_t i = 0; i < P; i++)
                w[i] = NAN;
            assert_int_equal(flm_train_local_from(m, w, init, NULL, &s, 2, &opts[o], &or2, &l,
                                                  NULL), FL_OK);
            if (memcmp(w, w_ref, P * 4) != 0)
                fail_msg("%s, options %zu: not the bits of training a copy", specs[k], o);
            assert_memory_equal(init, keep, P * 4);
            assert_true(l == l_ref);
        }
        /* stopped before the first step: params hold init's values */
        atomic_int stop = 1;
        for (size_t i = 0; i < P; i++)
            w[i] = NAN;
        fl_rng or3 = fl_rng_stream(31, 1, 0, FL_RNG_BATCH);
        assert_int_equal(flm_train_local_from(m, w, init, NULL, &s, 1, &opts[0], &or3, NULL, &stop),
                         FL_ERR_CANCELLED);
        assert_memory_equal(w, init, P * 4);
        /* refused arguments (0 epochs): no step either */
        for (size_t i = 0; i < P; i++)
            w[i] = NAN;
        assert_int_equal(flm_train_local_from(m, w, init, NULL, &s, 0, &opts[0], &or3, NULL, NULL),
                         FL_ERR_INVALID_ARG);
        assert_memory_equal(w, init, P * 4);
        flm_model_free(m);
        free(init);
        free(keep);
        free(w_ref);
        free(w);
    }
    free(x);
}

/* Same seed, same bits, whatever the number of OpenBLAS threads (the full cnn, whose conv GEMMs
 * are big enough for OpenBLAS to split them over threads). */
static void test_threads_same_bits(void **state)
{
    (void)state;
    /* moge at 1536 hidden: each expert GEMM (1536 x 1536, strided) is large enough to split;
     * two picks of three experts a sample */
    static const char *specs[] = {"cnn:10", "moge:784:1536:1:3:2:10"};
    for (size_t si = 0; si < sizeof specs / sizeof specs[0]; si++) {
        flm_arch a;
        assert_int_equal(flm_arch_parse(specs[si], &a, NULL, 0), FL_OK);
        enum { N = 30 };
        float *x = malloc((size_t)N * 784 * 4);
        int32_t y[N];
        flm_samples s = synth_images(x, y, N, 77, 1);
        float *w[2];
        for (int t = 0; t < 2; t++) {
            assert_int_equal(flm_blas_set_threads(t + 1), FL_OK);
            assert_int_equal(flm_blas_threads(), t + 1); /* the 2-thread run really has 2 */
            flm_model *m;
            assert_int_equal(flm_model_new(&a, 10, &m), FL_OK);
            w[t] = malloc(a.n_params * 4);
            fl_rng ir = fl_rng_stream(77, 0, 0, FL_RNG_INIT);
            flm_model_init_params(&a, w[t], &ir);
            fl_rng order = fl_rng_stream(77, 0, 0, FL_RNG_BATCH);
            const flm_sgd o = {0.05f, 0, 0, 0};
            double loss;
            assert_int_equal(flm_train_local(m, w[t], NULL, &s, 1, &o, &order, &loss), FL_OK);
            flm_model_free(m);
        }
        assert_int_equal(flm_blas_set_threads(1), FL_OK);
        assert_memory_equal(w[0], w[1], a.n_params * 4);
        free(w[0]);
        free(w[1]);
        free(x);
    }
}

static void test_init_params(void **state)
{
    (void)state;
    flm_arch a;
    assert_int_equal(flm_arch_parse("cnn:10:12x12x1", &a, NULL, 0), FL_OK);
    float *p = malloc(a.n_params * 4), *q = malloc(a.n_params * 4);
    fl_rng r1 = fl_rng_stream(9, 0, 0, FL_RNG_INIT), r2 = fl_rng_stream(9, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&a, p, &r1);
    flm_model_init_params(&a, q, &r2);
    assert_memory_equal(p, q, a.n_params * 4);
    for (int t = 0; t < a.n_tensors; t++) {
        const flm_tensor *ten = &a.tensors[t];
        const flm_layer *l = &a.layers[ten->layer];
        const double fan = l->op == FLM_OP_CONV2D ? (double)l->C * l->K * l->K : l->C;
        const double bound = 1 / sqrt(fan);
        double mx = 0, var = 0;
        for (size_t i = 0; i < ten->numel; i++) {
            mx = fmax(mx, fabs(p[ten->offset + i]));
            var += (double)p[ten->offset + i] * p[ten->offset + i];
        }
        var /= (double)ten->numel;
        assert_true(mx <= bound);
        if (ten->numel > 1000) /* U(-b, b) has variance b^2 / 3 */
            assert_float_equal(var, bound * bound / 3, 0.1 * bound * bound / 3);
    }
    free(p);
    free(q);
}

/* Child half of test_blas_missing: runs with a library path where every OpenBLAS name is a broken
 * file. Returns 0 when the engine reports FL_ERR_BLAS, keeps working on the reference GEMM and
 * nothing aborted. */
static int noblas_child(void)
{
    if (flm_blas_init() != FL_ERR_BLAS || strcmp(flm_blas_corename(), "reference") != 0 ||
        flm_blas_set_threads(1) != FL_ERR_BLAS)
        return 10;
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, -1, 2, 0.5f, 1}, C[4], R[4];
    flm_sgemm(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    flm_sgemm_ref(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, R, 2);
    if (memcmp(C, R, sizeof C) != 0)
        return 11;
    flm_arch a;
    flm_model *m;
    if (flm_arch_parse("mlp:8-6-3", &a, NULL, 0) != FL_OK || flm_model_new(&a, 4, &m) != FL_OK)
        return 12;
    float w[8 * 6 + 6 + 6 * 3 + 3], x[4 * 8];
    int32_t y[4] = {0, 1, 2, 0};
    fl_rng r = fl_rng_stream(1, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&a, w, &r);
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i % 5) * 0.2f;
    flm_samples s = {x, NULL, y, NULL, 4};
    const flm_sgd o = {0.1f, 0, 0, 0};
    double before, after;
    fl_rng order = fl_rng_stream(1, 0, 0, FL_RNG_BATCH);
    if (flm_model_evaluate(m, w, &s, &before, NULL) != FL_OK ||
        flm_train_local(m, w, NULL, &s, 20, &o, &order, NULL) != FL_OK ||
        flm_model_evaluate(m, w, &s, &after, NULL) != FL_OK || !(after < before))
        return 13;
    flm_model_free(m);
    return 0;
}

/* Without a loadable OpenBLAS the engine returns FL_ERR_BLAS and runs on the reference GEMM
 * (checked in a child process: the library is loaded once per process). */
static void test_blas_missing(void **state)
{
    (void)state;
    char dir[] = "/tmp/flm_noblas_XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so",
                                        "libopenblasp-r0.3.21.so"};
    char path[128];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("not a library", f);
        fclose(f);
    }
    char self[4096];
    const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(len > 0);
    self[len] = '\0';
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("LD_LIBRARY_PATH", dir, 1);
        setenv("FLM_TEST_NOBLAS_CHILD", "1", 1);
        execl(self, self, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child without OpenBLAS failed with code %d", WEXITSTATUS(status));
}

/* fl_big_alloc (--wrap): the calls for at least g_big_watch bytes (0: none counted). */
void *__real_fl_big_alloc(size_t n);
void *__wrap_fl_big_alloc(size_t n);
static size_t g_big_watch;
static int g_big_calls;

void *__wrap_fl_big_alloc(size_t n)
{
    if (g_big_watch && n >= g_big_watch)
        g_big_calls++;
    return __real_fl_big_alloc(n);
}

/* A simulator trains thousands of clients a round on one model each worker: the momentum buffer
 * is the model's, made by its first training and zeroed by each (the same bits as a fresh one),
 * not a buffer of the model's size each training (fl_big_alloc: from 1 MiB an mmap whose pages
 * fault in anew, 3.6 ms instead of 0.6 for a client of 8 samples of a 1M-parameter mlp). */
static void test_train_velocity_reused(void **state)
{
    (void)state;
    enum { N = 12 };
    float *x = malloc((size_t)N * 784 * 4);
    int32_t y[N];
    const flm_samples s = synth_images(x, y, N, 5, 7);
    flm_arch a;
    assert_int_equal(flm_arch_parse("mlp:784-200-200-10", &a, NULL, 0), FL_OK);
    const size_t P = a.n_params;
    flm_model *m;
    assert_int_equal(flm_model_new(&a, 4, &m), FL_OK);
    float *init = malloc(P * 4), *w0 = malloc(P * 4), *w = malloc(P * 4);
    fl_rng ir = fl_rng_stream(5, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&a, init, &ir);
    const flm_sgd o = {0.05f, 0.9f, 0, 0};
    memcpy(w0, init, P * 4);
    fl_rng r0 = fl_rng_stream(5, 1, 0, FL_RNG_BATCH);
    assert_int_equal(flm_train_local(m, w0, NULL, &s, 2, &o, &r0, NULL), FL_OK);
    g_big_watch = P * sizeof(float);
    g_big_calls = 0;
    for (int k = 0; k < 3; k++) {
        memcpy(w, init, P * 4);
        fl_rng r = fl_rng_stream(5, 1, 0, FL_RNG_BATCH);
        assert_int_equal(flm_train_local(m, w, NULL, &s, 2, &o, &r, NULL), FL_OK);
        if (memcmp(w, w0, P * 4) != 0)
            fail_msg("training %d on the model: not the bits of its first", k + 2);
    }
    g_big_watch = 0;
    if (g_big_calls != 0)
        fail_msg("3 trainings with momentum on one model allocated %d buffers of its size",
                 g_big_calls);
    flm_model_free(m);
    free(init);
    free(w0);
    free(w);
    free(x);
}

/* flm_model_new_eval: the very bits of the training runtime's evaluation (loss, accuracy, logits)
 * on every family, the LSTM's and MoGE's (AUX set: its loss is not reported) included, at several
 * batch sizes with a last partial batch, full size for the default cnn and lstm (OpenBLAS's
 * blocking of their GEMMs) and a cnn submodel of few filters (fedrop's skinny kernels); in less
 * memory; the training entry points refused with FL_ERR_STATE. */
static void test_eval_runtime_same_bits(void **state)
{
    (void)state;
    static const int keep_cnn[] = {6, 12, 40};
    static const struct {
        const char *spec;
        const int *keep;
        int B[3];
    } cases[] = {
        {"mlp:20-16-12-5", NULL, {1, 5, 16}},
        {"cnn:10:12x12x2", NULL, {1, 4, 9}},
        {"cnn:10:12x12x2", keep_cnn, {3, 8, 0}},
        {"cnn", NULL, {8, 0, 0}},
        {"lstm:12:4:8:2:6", NULL, {1, 5, 16}},
        {"lstm", NULL, {4, 0, 0}},
        {"moge:20:16:2:4:2:5:0.01", NULL, {1, 5, 16}},
        {"moge", NULL, {7, 0, 0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int j = 0; j < 3 && cases[k].B[j]; j++) {
            const int B = cases[k].B[j];
            const int n = 2 * B + B / 2 + 1; /* the last batch partial but for B = 1 */
            arch_case c;
            arch_case_new_sub(&c, cases[k].spec, cases[k].keep, n, (uint32_t)(70 + k));
            flm_model *train, *ev;
            assert_int_equal(flm_model_new(&c.a, B, &train), FL_OK);
            assert_int_equal(flm_model_new_eval(&c.a, B, &ev), FL_OK);
            const flm_samples s = {c.x, c.tok, c.y, NULL, (size_t)n};
            double l0, a0, l1, a1;
            assert_int_equal(flm_model_evaluate(train, c.params, &s, &l0, &a0), FL_OK);
            assert_int_equal(flm_model_evaluate(ev, c.params, &s, &l1, &a1), FL_OK);
            if (memcmp(&l0, &l1, sizeof l0) || memcmp(&a0, &a1, sizeof a0))
                fail_msg("%s B %d: loss %.17g acc %.17g, evaluation runtime %.17g %.17g",
                         c.a.spec, B, l0, a0, l1, a1);
            /* the logits of the last (partial) batch, and its loss */
            const int last = n - (n - 1) / B * B;
            float f0, f1;
            assert_int_equal(flm_model_forward_samples(train, c.params, &s, (size_t)(n - last),
                                                       last, &f0), FL_OK);
            assert_int_equal(flm_model_forward_samples(ev, c.params, &s, (size_t)(n - last),
                                                       last, &f1), FL_OK);
            assert_memory_equal(&f0, &f1, sizeof f0);
            assert_memory_equal(flm_model_logits(train), flm_model_logits(ev),
                                (size_t)last * c.a.classes * sizeof(float));
            assert_true(flm_model_aux_loss(ev) == flm_model_aux_loss(train));
            assert_true(flm_model_bytes(ev) < flm_model_bytes(train));
            /* forward only: no training on it */
            assert_null(flm_model_grads(ev));
            assert_null(flm_model_velocity(ev));
            assert_int_equal(flm_model_backward(ev, c.params, c.grads), FL_ERR_STATE);
            assert_int_equal(flm_model_backward_sgd(ev, c.params, 0.1f, 0.0f), FL_ERR_STATE);
            assert_int_equal(flm_model_backward_sgd_from(ev, c.grads, c.params, 0.1f, 0.0f),
                             FL_ERR_STATE);
            const flm_sgd o = {0.1f, 0.0f, 0.0f, 0.0f};
            fl_rng order = fl_rng_stream(1, 0, 0, FL_RNG_BATCH);
            memset(c.grads, 0, c.a.n_params * sizeof(float));
            assert_int_equal(flm_train_local_from(ev, c.grads, c.params, NULL, &s, 1, &o, &order,
                                                  NULL, NULL), FL_ERR_STATE);
            assert_memory_equal(c.grads, c.params, c.a.n_params * sizeof(float));
            /* cancelled before its first batch, then whole again */
            atomic_int stop = 1;
            double l2 = -1.0;
            assert_int_equal(flm_model_evaluate_cancel(ev, c.params, &s, &stop, &l2, NULL),
                             FL_ERR_CANCELLED);
            assert_true(l2 == -1.0);
            atomic_store(&stop, 0);
            assert_int_equal(flm_model_evaluate_cancel(ev, c.params, &s, &stop, &l2, NULL), FL_OK);
            assert_memory_equal(&l0, &l2, sizeof l0);
            flm_model_free(train);
            flm_model_free(ev);
            arch_case_free(&c);
        }
    flm_model *m = NULL;
    flm_arch a;
    assert_int_equal(flm_arch_parse("mlp:4-3", &a, NULL, 0), FL_OK);
    assert_int_equal(flm_model_new_eval(&a, 0, &m), FL_ERR_INVALID_ARG);
    assert_int_equal(flm_model_new_eval(NULL, 4, &m), FL_ERR_INVALID_ARG);
}

int main(void)
{
    if (getenv("FLM_TEST_NOBLAS_CHILD"))
        return noblas_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_matches_reference),
        cmocka_unit_test(test_blas_kernel_selection),
        cmocka_unit_test(test_blas_env_coretype_other),
        cmocka_unit_test(test_blas_missing),
        cmocka_unit_test(test_dense_bwd_update),
        cmocka_unit_test(test_dense_grad),
        cmocka_unit_test(test_conv2d_grad),
        cmocka_unit_test(test_maxpool_grad),
        cmocka_unit_test(test_relu_grad),
        cmocka_unit_test(test_last_step_grad),
        cmocka_unit_test(test_softmax_xent_grad),
        cmocka_unit_test(test_arch_grad_mlp),
        cmocka_unit_test(test_arch_grad_cnn),
        cmocka_unit_test(test_arch_grad_lstm),
        cmocka_unit_test(test_arch_grad_moge),
        cmocka_unit_test(test_moge_aux_loss),
        cmocka_unit_test(test_moge_layer_reference),
        cmocka_unit_test(test_forward_as_documented),
        cmocka_unit_test(test_arch_grad_submodels),
        cmocka_unit_test(test_golden_pytorch),
        cmocka_unit_test(test_sgd_step),
        cmocka_unit_test(test_fused_sgd_matches),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_eval_runtime_same_bits),
        cmocka_unit_test(test_train_local),
        cmocka_unit_test(test_train_local_from),
        cmocka_unit_test(test_train_velocity_reused),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_init_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
