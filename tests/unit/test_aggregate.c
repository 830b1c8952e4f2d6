/* Unit tests for fl_server/core aggregation (fls_agg) and server optimizers (fls_opt).
 *
 * References are direct computations in double over dense arrays (masks and scatters from the
 * models/ submodel code), so the aggregator's staging, run walking, weight cells and fixed-point
 * arithmetic are all checked against something written independently of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fenv.h>
#include <math.h>
#include <cmocka.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flm_submodel.h"
#include "fls_agg.h"
#include "fls_opt.h"
#include "test_par.h"

/* ---- helpers -------------------------------------------------------------------------------- */

/* One client update: weight, optional submodel, delta in the submodel's layout. */
typedef struct upd {
    uint64_t w;
    flm_keepset ks;
    flm_submodel *sm; /* NULL: full model */
    size_t n;
    float *d;
} upd;

static void upd_free(upd *u)
{
    flm_submodel_free(u->sm);
    flm_keepset_free(&u->ks);
    free(u->d);
    memset(u, 0, sizeof *u);
}

/* Client k of a test population: keep p (1.0 with full = NULL submodel when k % 4 == 0). */
static void make_upd(upd *u, const flm_arch *a, uint32_t k, double p, float amp, uint64_t seed)
{
    memset(u, 0, sizeof *u);
    fl_rng r = fl_rng_stream(seed, 1, k, FL_RNG_TEST);
    u->w = 1 + fl_rng_below(&r, 500);
    if (k % 4 == 0) {
        u->n = a->n_params;
    } else {
        assert_int_equal(flm_keepset_random(&u->ks, a, p, &r), FL_OK);
        assert_int_equal(flm_submodel_new(a, &u->ks, &u->sm), FL_OK);
        u->n = flm_submodel_arch(u->sm)->n_params;
    }
    u->d = malloc(u->n * sizeof(float));
    assert_non_null(u->d);
    for (size_t i = 0; i < u->n; i++)
        u->d[i] = amp * (2.0f * fl_rng_uniform(&r) - 1.0f);
}

/* feed() and the abort test add the pieces that are not decoded in place with this: the plain
 * add, or the borrowed one (no copy: u's arrays outlive the updates). */
static fl_status (*g_add)(fls_agg_update *, size_t, const float *, size_t) = fls_agg_update_add;

/* Adds u to agg in random chunks, in random order (seeded), then commits. */
static fl_status feed(fls_agg *agg, const upd *u, uint64_t chunk_seed)
{
    fls_agg_update *h = NULL;
    fl_status s = fls_agg_update_begin(agg, u->w, u->sm, &h);
    if (s != FL_OK)
        return s;
    assert_int_equal(fls_agg_update_size(h), u->n);
    if (chunk_seed == 0) {
        assert_int_equal(g_add(h, 0, u->d, u->n), FL_OK);
        return fls_agg_update_commit(h);
    }
    fl_rng r = fl_rng_stream(chunk_seed, 2, 0, FL_RNG_TEST);
    /* Cut points, then a random permutation of the pieces. */
    enum { MAXP = 64 };
    size_t cut[MAXP + 1];
    int np = 1 + (int)fl_rng_below(&r, MAXP);
    cut[0] = 0;
    for (int i = 1; i < np; i++)
        cut[i] = (size_t)fl_rng_below(&r, (uint32_t)u->n);
    cut[np] = u->n;
    for (int i = 1; i < np; i++) /* sort cut points */
        for (int j = i; j > 0 && cut[j] < cut[j - 1]; j--) {
            const size_t t = cut[j];
            cut[j] = cut[j - 1];
            cut[j - 1] = t;
        }
    int order[MAXP];
    for (int i = 0; i < np; i++)
        order[i] = i;
    for (int i = np - 1; i > 0; i--) {
        const int j = (int)fl_rng_below(&r, (uint32_t)(i + 1));
        const int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < np; i++) {
        const size_t a0 = cut[order[i]], a1 = cut[order[i] + 1];
        if (a1 == a0)
            continue;
        if (i & 1) { /* decode in place half of the time */
            float *dst = fls_agg_update_stage(h, a0, a1 - a0);
            assert_non_null(dst);
            memcpy(dst, u->d + a0, (a1 - a0) * sizeof(float));
            assert_int_equal(fls_agg_update_add(h, a0, dst, a1 - a0), FL_OK);
        } else {
            assert_int_equal(g_add(h, a0, u->d + a0, a1 - a0), FL_OK);
        }
    }
    return fls_agg_update_commit(h);
}

/* Dense double reference: num[i] = sum n_k d_k[i] (scattered), den[i] = sum of holders' n_k. */
static void reference_mean(const flm_arch *a, const upd *u, int K, int dilute, double *out,
                           uint8_t *held)
{
    const size_t N = a->n_params;
    double *num = calloc(N, sizeof(double)), *den = calloc(N, sizeof(double));
    float *mask = malloc(N * sizeof(float)), *tmp = malloc(N * sizeof(float));
    assert_true(num && den && mask && tmp);
    double wt = 0;
    for (int k = 0; k < K; k++) {
        wt += (double)u[k].w;
        if (u[k].sm) {
            flm_submodel_mask(u[k].sm, mask);
            memset(tmp, 0, N * sizeof(float));
            flm_submodel_scatter_add(u[k].sm, tmp, u[k].d, 1.0f);
        } else {
            for (size_t i = 0; i < N; i++)
                mask[i] = 1.0f;
            memcpy(tmp, u[k].d, N * sizeof(float));
        }
        for (size_t i = 0; i < N; i++) {
            num[i] += (double)u[k].w * (double)tmp[i];
            den[i] += (double)u[k].w * (double)mask[i];
        }
    }
    for (size_t i = 0; i < N; i++) {
        const double d = dilute ? (K ? wt : 0) : den[i];
        out[i] = d > 0 ? num[i] / d : 0.0;
        held[i] = d > 0;
    }
    free(num);
    free(den);
    free(mask);
    free(tmp);
}

static void parse(flm_arch *a, const char *spec)
{
    char err[128];
    assert_int_equal(flm_arch_parse(spec, a, err, sizeof err), FL_OK);
}

/* ---- aggregation ---------------------------------------------------------------------------- */

static void test_hand_weighted_mean(void **state)
{
    (void)state;
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(4, NULL, &agg), FL_OK);
    const float a[4] = {1, 2, 3, -4}, b[4] = {5, 6, 7, 8};
    fls_agg_update *h;
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, a, 4), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 3, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 2, b + 2, 2), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, b, 2), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    float d[4];
    uint8_t held[4];
    assert_int_equal(fls_agg_finalize(agg, d, held), FL_OK);
    /* (1*1 + 3*5)/4 = 4, (2 + 18)/4 = 5, (3 + 21)/4 = 6, (-4 + 24)/4 = 5: exact. */
    assert_true(d[0] == 4.0f && d[1] == 5.0f && d[2] == 6.0f && d[3] == 5.0f);
    for (int i = 0; i < 4; i++)
        assert_int_equal(held[i], 1);
    fls_agg_stats st;
    fls_agg_get_stats(agg, &st);
    assert_int_equal(st.n_updates, 2);
    assert_int_equal(st.total_weight, 4);
    /* A non-dyadic case: (0.1*2 + 0.3*5)/7 within the fixed-point resolution 2^-28. */
    assert_int_equal(fls_agg_begin_round(agg), FL_OK);
    const float c[4] = {0.1f, 0.1f, 0.1f, 0.1f}, e[4] = {0.3f, -0.3f, 0.0f, 1e-9f};
    assert_int_equal(fls_agg_update_begin(agg, 2, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, c, 4), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 5, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, e, 4), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
    for (int i = 0; i < 4; i++) {
        const double want = (2.0 * c[i] + 5.0 * e[i]) / 7.0;
        assert_true(fabs(d[i] - want) <= ldexp(1.0, -28) + 1e-7 * fabs(want));
    }
    /* An empty round finalizes to zeros, nothing held. */
    assert_int_equal(fls_agg_begin_round(agg), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, d, held), FL_OK);
    for (int i = 0; i < 4; i++)
        assert_true(d[i] == 0.0f && held[i] == 0);
    fls_agg_free(agg);
}

/* Submodel updates on an mlp: each coordinate averaged over its holders only; unheld ones are 0
 * and not held; with dilute, everything divides by the total weight. */
static void check_vs_reference(const char *spec, int K, double p, int dilute, uint64_t seed)
{
    flm_arch a;
    parse(&a, spec);
    const size_t N = a.n_params;
    upd *u = calloc((size_t)K, sizeof *u);
    for (int k = 0; k < K; k++)
        make_upd(&u[k], &a, (uint32_t)k + 1, p, 0.5f, seed);
    fls_agg_options o = fls_agg_options_default();
    o.dilute = dilute;
    fls_agg *agg;
    assert_int_equal(fls_agg_new(&a, &o, &agg), FL_OK);
    for (int k = 0; k < K; k++)
        assert_int_equal(feed(agg, &u[k], seed + (uint64_t)k), FL_OK);
    float *d = malloc(N * sizeof(float));
    uint8_t *held = malloc(N);
    double *want = malloc(N * sizeof(double));
    uint8_t *wheld = malloc(N);
    assert_int_equal(fls_agg_finalize(agg, d, held), FL_OK);
    reference_mean(&a, u, K, dilute, want, wheld);
    size_t n_unheld = 0;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(held[i], wheld[i]);
        if (!wheld[i]) {
            n_unheld++;
            assert_true(d[i] == 0.0f);
        }
        assert_true(fabs(d[i] - want[i]) <= ldexp(1.0, -27) + 1e-6 * fabs(want[i]));
    }
    if (!dilute && p < 1.0 && K < 4)
        assert_true(n_unheld > 0); /* the case "nobody held it" was really exercised */
    free(d);
    free(held);
    free(want);
    free(wheld);
    for (int k = 0; k < K; k++)
        upd_free(&u[k]);
    free(u);
    fls_agg_free(agg);
}

static void test_submodel_mean_mlp(void **state)
{
    (void)state;
    check_vs_reference("mlp:20-16-12-5", 3, 0.5, 0, 11); /* clients 1..3: all submodels */
    check_vs_reference("mlp:20-16-12-5", 9, 0.5, 0, 12);
    check_vs_reference("mlp:20-16-12-5", 3, 0.5, 1, 13); /* dilution */
}

/* A submodel of runs of a few elements (a 300x300 dense layer whose inputs and outputs both
 * drop: thousands of runs, gathered into more than one span of the fold, fls_agg.c's fold_run),
 * folded whole or in random chunks, plain, borrowed, early or not: each held coordinate of a
 * lone update of weight 1 finalizes to exactly round(x 2^28) / 2^28; and an update with a NaN in
 * the middle of such a run is refused and leaves the first one's bits as they were. */
static void check_short_runs_exact(int early, int borrowed, uint64_t chunk_seed)
{
    flm_arch a;
    parse(&a, "mlp:300-300-300-10");
    const size_t N = a.n_params;
    upd u, bad;
    make_upd(&u, &a, 1, 0.75, 0.5f, 41);
    make_upd(&bad, &a, 2, 0.75, 0.5f, 42);
    assert_non_null(u.sm);
    assert_non_null(bad.sm);
    u.w = 1;
    /* a NaN in the second hidden layer's weights, which come in runs of about 4 */
    const size_t w2 = flm_submodel_arch(bad.sm)->tensors[2].offset;
    bad.d[w2 + 1000] = NAN;
    fls_agg_options o = fls_agg_options_default();
    o.fold_early = early;
    fls_agg *agg;
    assert_int_equal(fls_agg_new(&a, &o, &agg), FL_OK);
    g_add = borrowed ? fls_agg_update_add_borrowed : fls_agg_update_add;
    assert_int_equal(feed(agg, &u, chunk_seed), FL_OK);
    assert_int_equal(feed(agg, &bad, chunk_seed + 1), FL_ERR_NUMERIC);
    g_add = fls_agg_update_add;
    float *d = malloc(N * sizeof(float)), *full = calloc(N, sizeof(float)),
          *mask = malloc(N * sizeof(float));
    uint8_t *held = malloc(N);
    assert_true(d && full && mask && held);
    flm_submodel_mask(u.sm, mask);
    flm_submodel_scatter_add(u.sm, full, u.d, 1.0f);
    assert_int_equal(fls_agg_finalize(agg, d, held), FL_OK);
    size_t n_held = 0;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(held[i], mask[i] != 0.0f);
        const float want = held[i] ? (float)(nearbyint((double)full[i] * 0x1p28) * 0x1p-28) : 0.0f;
        if (memcmp(&d[i], &want, sizeof want) != 0)
            fail_msg("coordinate %zu: %a, want %a", i, (double)d[i], (double)want);
        n_held += held[i];
    }
    assert_true(n_held > N / 2 && n_held < N);
    free(d);
    free(full);
    free(mask);
    free(held);
    upd_free(&u);
    upd_free(&bad);
    fls_agg_free(agg);
}

static void test_short_runs_exact(void **state)
{
    (void)state;
    check_short_runs_exact(0, 0, 0);
    check_short_runs_exact(1, 0, 0);
    check_short_runs_exact(1, 1, 0);
    check_short_runs_exact(1, 0, 7);
    check_short_runs_exact(1, 1, 8);
}

static void test_submodel_mean_cnn_lstm(void **state)
{
    (void)state;
    check_vs_reference("cnn:7:8x8x1", 5, 0.75, 0, 21);
    check_vs_reference("lstm:12:4:6:2:3", 6, 0.5, 0, 22);
}

/* Plants, at random places, the values where the fold kernels' paths part: around the AVX-512
 * kernel's 32-bit bound 2^(31-S) = 8 (S = 28), large ones up to the range bound 2^10, ties of
 * the fixed-point rounding (k + 1/2 units of 2^-28: to even), subnormals and signed zeros. */
static void plant_edges(upd *u, uint64_t seed)
{
    const float edge[] = {8.0f, -8.0f, 7.9999995f, -7.9999995f, 8.000001f, 1023.9f, -1024.0f,
                          0x1p-29f, -0x1p-29f, 0x3p-29f, 0x5p-29f, -0x7p-29f, 1e-40f, -1e-40f,
                          0.0f, -0.0f, 0x1.fffffep2f, 0x1.fffffep-1f};
    const size_t ne = sizeof edge / sizeof edge[0];
    fl_rng r = fl_rng_stream(seed, 4, 0, FL_RNG_TEST);
    for (size_t j = 0; j < u->n / 7 + 1; j++)
        u->d[fl_rng_below(&r, (uint32_t)u->n)] = edge[fl_rng_below(&r, (uint32_t)ne)];
}

static fls_agg_options with_par(fls_agg_options o, unsigned parts)
{
    o.fold_early = 1;
    o.par = (fl_par){par_run, NULL, parts, 1};
    return o;
}

/* The same updates in shuffled orders with random chunkings give the same bits, whichever
 * kernel folds them, on one thread or split over several. */
static void check_invariance(const char *spec, int K, double p, uint64_t seed, double clip)
{
    fls_agg_options base = fls_agg_options_default();
    base.clip_norm = clip;
    fls_agg_options portable = base;
    portable.no_simd = 1;
    fls_agg_options early = base; /* trials 3 and 4: each range folds as it is added */
    early.fold_early = 1;
    fls_agg_options early_portable = early;
    early_portable.no_simd = 1;
    fls_agg_options avx2 = base; /* trial 6: the AVX2 kernel where AVX-512 would run */
    avx2.no_avx512 = 1;
    /* trial 5: early folding with borrowed adds (pieces decoded in place are copied) */
    /* trials 7 and 8: early folds split over threads (8: borrowed, more pieces than most chunks
     * have 16-element steps, so many pieces are empty) */
    fls_agg_options par3 = with_par(base, 3), par64 = with_par(base, FL_PAR_MAX);
    const fls_agg_options *opts[9] = {&base, &base, &portable, &early, &early_portable, &early,
                                      &avx2, &par3, &par64};
    flm_arch a;
    parse(&a, spec);
    const size_t N = a.n_params;
    upd *u = calloc((size_t)K, sizeof *u);
    for (int k = 0; k < K; k++) {
        /* large values, and small ones whose fixed-point conversion really rounds */
        make_upd(&u[k], &a, (uint32_t)k, p, (k & 1) ? 0.002f : 3.0f, seed);
        if (k % 3 == 2)
            plant_edges(&u[k], seed + (uint64_t)k);
    }
    float *d0 = malloc(N * sizeof(float)), *d1 = malloc(N * sizeof(float));
    uint8_t *h0 = malloc(N), *h1 = malloc(N);
    const int trials = clip > 0 ? 7 : 9; /* clipping folds at commit, never early */
    for (int trial = 0; trial < trials; trial++) {
        g_add = trial == 5 || trial == 8 ? fls_agg_update_add_borrowed : fls_agg_update_add;
        const int calls = g_par_calls;
        fls_agg *agg;
        /* trial 2 runs the portable kernel: the same bits as the AVX2 one */
        assert_int_equal(fls_agg_new(&a, opts[trial], &agg), FL_OK);
        int order[64];
        for (int k = 0; k < K; k++)
            order[k] = k;
        fl_rng r = fl_rng_stream(seed, 3, (uint32_t)trial, FL_RNG_TEST);
        if (trial > 0)
            for (int i = K - 1; i > 0; i--) {
                const int j = (int)fl_rng_below(&r, (uint32_t)(i + 1));
                const int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        for (int i = 0; i < K; i++)
            assert_int_equal(feed(agg, &u[order[i]], trial ? seed * 100 + (uint64_t)(trial * K + i) : 0),
                             FL_OK);
        assert_int_equal(fls_agg_finalize(agg, trial ? d1 : d0, trial ? h1 : h0), FL_OK);
        if (trial >= 7) /* split, whatever the embedder's rounding mode (until 2026-12-07 any
                         * other kept folds serial: the fold now sets its own) */
            assert_true(g_par_calls > calls);
        if (clip > 0) { /* clipping was really exercised */
            fls_agg_stats st;
            fls_agg_get_stats(agg, &st);
            assert_true(st.n_clipped > 0 && st.n_clipped < (uint64_t)K);
        }
        if (trial) {
            assert_memory_equal(d0, d1, N * sizeof(float));
            assert_memory_equal(h0, h1, N);
        }
        fls_agg_free(agg);
    }
    g_add = fls_agg_update_add;
    free(d0);
    free(d1);
    free(h0);
    free(h1);
    for (int k = 0; k < K; k++)
        upd_free(&u[k]);
    free(u);
}

/* A lender whose threads run in a rounding mode of their own (started under an embedder's
 * fesetround): every piece on such a thread. */
static const int k_upward = FE_UPWARD;

/* The caller folds in the default mode: a split fold gives its bits whatever mode the lender's
 * threads are in (small deltas, whose fixed-point terms the mode would round otherwise), and a
 * rejected update's undo still cancels its fold. */
static void test_split_fold_lender_mode(void **state)
{
    (void)state;
    flm_arch a;
    parse(&a, "mlp:64-96-10");
    enum { K = 6 };
    upd u[K];
    for (int k = 0; k < K; k++)
        make_upd(&u[k], &a, (uint32_t)k, 0.7, 0.01f, 77);
    const size_t N = a.n_params;
    float *d[2] = {malloc(N * sizeof(float)), malloc(N * sizeof(float))};
    float *bad = malloc(u[1].n * sizeof(float));
    assert_non_null(d[0]);
    assert_non_null(d[1]);
    assert_non_null(bad);
    memcpy(bad, u[1].d, u[1].n * sizeof(float));
    bad[u[1].n - 1] = 1e9f; /* out of range in the last piece: rejected, undone */
    const int calls = g_par_calls;
    for (int t = 0; t < 2; t++) {
        fls_agg_options o = fls_agg_options_default();
        o.fold_early = 1;
        if (t)
            o.par = (fl_par){par_run, (void *)&k_upward, 4, 1};
        fls_agg *agg;
        assert_int_equal(fls_agg_new(&a, &o, &agg), FL_OK);
        for (int k = 0; k < K; k++) {
            assert_int_equal(feed(agg, &u[k], 0), FL_OK);
            if (k == 2) {
                fls_agg_update *h;
                assert_int_equal(fls_agg_update_begin(agg, u[1].w, u[1].sm, &h), FL_OK);
                assert_int_equal(fls_agg_update_add(h, 0, bad, u[1].n), FL_OK);
                assert_int_equal(fls_agg_update_commit(h), FL_ERR_AGG_RANGE);
            }
        }
        assert_int_equal(fls_agg_finalize(agg, d[t], NULL), FL_OK);
        fls_agg_free(agg);
    }
    assert_true(g_par_calls > calls); /* really split */
    assert_int_equal(fegetround(), FE_TONEAREST);
    assert_memory_equal(d[0], d[1], N * sizeof(float));
    for (int k = 0; k < K; k++)
        upd_free(&u[k]);
    free(bad);
    free(d[0]);
    free(d[1]);
}

/* Under another rounding mode (an embedder's fesetround) every kernel still gives the bits of
 * the portable one, and an undo still cancels its fold. */
static void test_invariance_rounding_modes(void **state)
{
    (void)state;
    const int modes[] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    for (int m = 0; m < 3; m++) {
        assert_int_equal(fesetround(modes[m]), 0);
        check_invariance("mlp:30-17-13-4", 11, 0.6, 35 + (uint64_t)m, 0.0);
        assert_int_equal(fesetround(FE_TONEAREST), 0);
    }
}

/* The caller's rounding mode changed between an early fold and its abort (an embedder's
 * fesetround, or on x86 its MXCSR alone, which glibc's fegetround does not read): the abort still
 * leaves the aggregate as if the update never came, and, without norm clipping (whose factor is
 * the caller's arithmetic), the round's mean is the bits of the default mode whatever the
 * caller's at fold, commit and finalize. Until 2026-12-07
 * the serial fold rounded its terms in the caller's mode: an update of weight 7 folded to nearest
 * and aborted upward left 7 of 16 coordinates off 0.25. */
static void mode_run(int fold_mode, int abort_mode, int mxcsr_only, int no_simd, float *out)
{
    enum { N = 16 };
    fls_agg_options o = fls_agg_options_default();
    o.fold_early = 1;
    o.max_open = 2;
    o.no_simd = no_simd;
    fls_agg *a;
    assert_int_equal(fls_agg_new_flat(N, &o, &a), FL_OK);
    float x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = 1e-4f * (float)(i + 1) / 3.0f;
        y[i] = 0.1f * (float)(i + 1) / 7.0f;
    }
#if defined(__x86_64__)
    const unsigned csr = _mm_getcsr();
#define SET_MODE(m)                                                                             \
    (mxcsr_only ? (_mm_setcsr((csr & ~0x6000u) | ((m) == FE_UPWARD ? 0x4000u                   \
                                                  : (m) == FE_DOWNWARD ? 0x2000u               \
                                                  : (m) == FE_TOWARDZERO ? 0x6000u : 0u)),     \
                   0)                                                                           \
                : fesetround(m))
#else
    (void)mxcsr_only;
#define SET_MODE(m) fesetround(m)
#endif
    fls_agg_update *h;
    SET_MODE(fold_mode);
    assert_int_equal(fls_agg_update_begin(a, 7, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, x, N), FL_OK);
    SET_MODE(abort_mode);
    fls_agg_update_abort(h);
    assert_int_equal(fls_agg_update_begin(a, 3, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, y, N), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_finalize(a, out, NULL), FL_OK);
    SET_MODE(FE_TONEAREST);
#undef SET_MODE
    fls_agg_free(a);
}

static void test_mode_changed_between_fold_and_abort(void **state)
{
    (void)state;
    const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    float ref[16], got[16];
    mode_run(FE_TONEAREST, FE_TONEAREST, 0, 1, ref);
    for (int via = 0; via < 2; via++)
        for (int simd = 0; simd < 2; simd++)
            for (int f = 0; f < 4; f++)
                for (int b = 0; b < 4; b++) {
                    mode_run(modes[f], modes[b], via, !simd, got);
                    if (memcmp(ref, got, sizeof ref) != 0)
                        fail_msg("folded in mode %d, aborted in mode %d (%s, %s): the mean "
                                 "differs from the default environment's (%.9g against %.9g, "
                                 "first coordinates)", f, b, via ? "MXCSR alone" : "fesetround",
                                 simd ? "SIMD" : "portable", (double)got[0], (double)ref[0]);
                }
    assert_int_equal(fegetround(), FE_TONEAREST);
}

static int restore_rounding(void **state)
{
    (void)state;
    return fesetround(FE_TONEAREST); /* after a failure too: the later tests need the default */
}

static void test_order_and_chunking_invariance(void **state)
{
    (void)state;
    check_invariance("mlp:30-17-13-4", 11, 0.6, 31, 0.0);
    check_invariance("cnn:5:8x8x1", 7, 0.75, 32, 0.0);
    check_invariance("lstm:12:4:6:2:3", 9, 0.5, 33, 0.0);
    check_invariance("mlp:30-17-13-4", 11, 0.6, 34, 20.0); /* norm clipping: same bits too */
}

/* Aborted and rejected updates leave no trace: bit-identical to the round without them (with
 * early folding, the undo subtracts exactly what was folded). */
static void check_abort_leaves_no_trace(int fold_early, int borrow, unsigned parts)
{
    flm_arch a;
    parse(&a, "mlp:20-16-12-5");
    const size_t N = a.n_params;
    upd u[5];
    for (int k = 0; k < 5; k++)
        make_upd(&u[k], &a, (uint32_t)k + 1, 0.5, 1.0f, 41);
    fls_agg *ref, *agg;
    assert_int_equal(fls_agg_new(&a, NULL, &ref), FL_OK);
    fls_agg_options o = fls_agg_options_default();
    o.max_open = 3;
    o.fold_early = fold_early;
    if (parts)
        o = with_par(o, parts);
    assert_int_equal(fls_agg_new(&a, &o, &agg), FL_OK);
    assert_int_equal(feed(ref, &u[0], 1), FL_OK);
    assert_int_equal(feed(ref, &u[1], 2), FL_OK);

    fls_agg_update *h1, *h2, *h3;
    g_add = borrow ? fls_agg_update_add_borrowed : fls_agg_update_add;
    assert_int_equal(feed(agg, &u[0], 3), FL_OK);
    /* partial update, aborted */
    assert_int_equal(fls_agg_update_begin(agg, u[2].w, u[2].sm, &h1), FL_OK);
    assert_int_equal(g_add(h1, 0, u[2].d, u[2].n / 2), FL_OK);
    /* complete update, aborted; interleaved with another open one */
    assert_int_equal(fls_agg_update_begin(agg, u[3].w, u[3].sm, &h2), FL_OK);
    assert_int_equal(g_add(h2, 0, u[3].d, u[3].n), FL_OK);
    fls_agg_update_abort(h1);
    fls_agg_update_abort(h2);
    /* incomplete commit */
    assert_int_equal(fls_agg_update_begin(agg, u[2].w, u[2].sm, &h1), FL_OK);
    assert_int_equal(g_add(h1, 1, u[2].d + 1, u[2].n - 1), FL_OK);
    assert_int_equal(fls_agg_update_commit(h1), FL_ERR_WIRE_CHUNK_MISSING);
    /* a value out of range in the LAST element, after the rest was folded */
    float *bad = malloc(u[4].n * sizeof(float));
    memcpy(bad, u[4].d, u[4].n * sizeof(float));
    bad[u[4].n - 1] = 5000.0f;
    assert_int_equal(fls_agg_update_begin(agg, u[4].w, u[4].sm, &h3), FL_OK);
    assert_int_equal(g_add(h3, 0, bad, u[4].n), FL_OK);
    assert_int_equal(fls_agg_update_commit(h3), FL_ERR_AGG_RANGE);
    bad[u[4].n - 1] = NAN;
    bad[0] = INFINITY;
    assert_int_equal(fls_agg_update_begin(agg, u[4].w, u[4].sm, &h3), FL_OK);
    assert_int_equal(g_add(h3, 0, bad, u[4].n), FL_OK);
    assert_int_equal(fls_agg_update_commit(h3), FL_ERR_NUMERIC);
    /* out of range in the FIRST element only (split folds: in the first piece alone) */
    memcpy(bad, u[4].d, u[4].n * sizeof(float));
    bad[0] = -5000.0f;
    assert_int_equal(fls_agg_update_begin(agg, u[4].w, u[4].sm, &h3), FL_OK);
    assert_int_equal(g_add(h3, 0, bad, u[4].n), FL_OK);
    assert_int_equal(fls_agg_update_commit(h3), FL_ERR_AGG_RANGE);
    free(bad);
    assert_int_equal(feed(agg, &u[1], 4), FL_OK);
    g_add = fls_agg_update_add;

    float *d0 = malloc(N * sizeof(float)), *d1 = malloc(N * sizeof(float));
    uint8_t *g0 = malloc(N), *g1 = malloc(N);
    assert_int_equal(fls_agg_finalize(ref, d0, g0), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, d1, g1), FL_OK);
    assert_memory_equal(d0, d1, N * sizeof(float));
    assert_memory_equal(g0, g1, N);
    fls_agg_stats st;
    fls_agg_get_stats(agg, &st);
    assert_int_equal(st.n_updates, 2);
    assert_int_equal(st.n_aborted, 6);
    assert_int_equal(st.total_weight, u[0].w + u[1].w);
    free(d0);
    free(d1);
    free(g0);
    free(g1);
    for (int k = 0; k < 5; k++)
        upd_free(&u[k]);
    fls_agg_free(ref);
    fls_agg_free(agg);
}

static void test_abort_leaves_no_trace(void **state)
{
    (void)state;
    check_abort_leaves_no_trace(0, 0, 0);
    check_abort_leaves_no_trace(1, 0, 0);
    check_abort_leaves_no_trace(1, 1, 0); /* the undo log in the caller's memory */
    /* folds and undos split over threads; the bad values sit in the first and last pieces */
    check_abort_leaves_no_trace(1, 0, 5);
    check_abort_leaves_no_trace(1, 1, 5);
}

/* Early folding's guards: folded but uncommitted values are never read; an in-place overwrite of
 * added values (which destroys the undo log) makes finalize refuse until the next round. A
 * submodel that keeps everything aggregates exactly as the full model. */
static void test_fold_early_guards(void **state)
{
    (void)state;
    flm_arch a;
    parse(&a, "mlp:20-16-12-5");
    const size_t N = a.n_params;
    fls_agg_options o = fls_agg_options_default();
    o.fold_early = 1;
    o.max_open = 2;
    fls_agg *agg, *other;
    assert_int_equal(fls_agg_new(&a, &o, &agg), FL_OK);
    assert_int_equal(fls_agg_new(&a, &o, &other), FL_OK);
    float *d = calloc(N, sizeof(float)), *out = malloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++)
        d[i] = 0.01f * (float)(i % 7);
    fls_agg_update *h, *h2;
    assert_int_equal(fls_agg_update_begin(agg, 3, NULL, &h), FL_OK);
    /* opened, nothing added: finalize may run (fls_core borrows a staging buffer this way) */
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, d, N / 2), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_ERR_STATE);
    assert_int_equal(fls_agg_merge(other, agg), FL_ERR_STATE);
    assert_int_equal(fls_agg_update_add(h, N / 2, d + N / 2, N - N / 2), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_OK);
    assert_int_equal(fls_agg_merge(other, agg), FL_OK);
    /* decoding in place over added values: the undo log is gone */
    assert_int_equal(fls_agg_update_begin(agg, 2, NULL, &h2), FL_OK);
    assert_int_equal(fls_agg_update_add(h2, 0, d, 10), FL_OK);
    float *st = fls_agg_update_stage(h2, 10, 5);
    assert_non_null(st);
    assert_int_equal(fls_agg_update_add(h2, 5, st - 5, 10), FL_ERR_WIRE_CHUNK_DUP);
    fls_agg_update_abort(h2);
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_ERR_INTERNAL);
    assert_int_equal(fls_agg_merge(other, agg), FL_ERR_STATE);
    assert_int_equal(fls_agg_begin_round(agg), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_OK);
    /* discarded without its undo (a core being freed): refused until the next round; an update
     * that folded nothing discards cleanly */
    assert_int_equal(fls_agg_update_begin(agg, 2, NULL, &h2), FL_OK);
    fls_agg_update_discard(h2);
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 2, NULL, &h2), FL_OK);
    assert_int_equal(fls_agg_update_add_borrowed(h2, 0, d, 10), FL_OK);
    fls_agg_update_discard(h2);
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_ERR_INTERNAL);
    assert_int_equal(fls_agg_begin_round(agg), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, out, NULL), FL_OK);

    /* a keep-everything submodel == the full model, bit for bit (held included) */
    flm_keepset ks;
    flm_submodel *sm;
    assert_int_equal(flm_keepset_full(&ks, &a), FL_OK);
    assert_int_equal(flm_submodel_new(&a, &ks, &sm), FL_OK);
    float *out2 = malloc(N * sizeof(float));
    uint8_t *g1 = malloc(N), *g2 = malloc(N);
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(fls_agg_begin_round(agg), FL_OK);
        assert_int_equal(fls_agg_update_begin(agg, 5, pass ? sm : NULL, &h), FL_OK);
        assert_int_equal(fls_agg_update_add(h, 0, d, N), FL_OK);
        assert_int_equal(fls_agg_update_commit(h), FL_OK);
        assert_int_equal(fls_agg_finalize(agg, pass ? out2 : out, pass ? g2 : g1), FL_OK);
    }
    assert_memory_equal(out, out2, N * sizeof(float));
    assert_memory_equal(g1, g2, N);
    flm_submodel_free(sm);
    flm_keepset_free(&ks);
    free(out2);
    free(g1);
    free(g2);
    free(d);
    free(out);
    fls_agg_free(agg);
    fls_agg_free(other);
}

static void test_chunk_errors_and_state(void **state)
{
    (void)state;
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(10, NULL, &agg), FL_OK);
    const float x[10] = {0};
    fls_agg_update *h, *h2;
    assert_int_equal(fls_agg_update_begin(agg, 0, NULL, &h), FL_ERR_INVALID_ARG);
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h2), FL_ERR_STATE); /* max_open 1 */
    assert_int_equal(fls_agg_begin_round(agg), FL_ERR_STATE);
    assert_int_equal(fls_agg_update_add(h, 8, x, 3), FL_ERR_WIRE_CHUNK_RANGE);
    assert_int_equal(fls_agg_update_add(h, 2, x, 3), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 6, x, 2), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 4, x, 2), FL_ERR_WIRE_CHUNK_DUP);
    assert_int_equal(fls_agg_update_add(h, 1, x, 2), FL_ERR_WIRE_CHUNK_DUP);
    assert_int_equal(fls_agg_update_add(h, 7, x, 2), FL_ERR_WIRE_CHUNK_DUP);
    assert_int_equal(fls_agg_update_add(h, 5, x, 1), FL_OK);  /* joins both sides: [2,8) */
    assert_null(fls_agg_update_stage(h, 9, 2));
    assert_null(fls_agg_update_stage(h, 7, 2)); /* overlaps [2,8) */
    assert_non_null(fls_agg_update_stage(h, 8, 2));
    assert_int_equal(fls_agg_update_add(h, 0, x, 2), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 8, x, 2), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    /* decoding in place over an added range poisons the update: it cannot commit */
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
    float *p0 = fls_agg_update_stage(h, 0, 6), *p1 = fls_agg_update_stage(h, 4, 6);
    assert_non_null(p0);
    assert_non_null(p1);
    assert_int_equal(fls_agg_update_add(h, 0, p0, 6), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 4, p1, 6), FL_ERR_WIRE_CHUNK_DUP);
    assert_int_equal(fls_agg_update_add(h, 6, x, 4), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_ERR_WIRE_CHUNK_DUP);
    /* a submodel on a flat aggregator is refused */
    flm_arch a;
    parse(&a, "mlp:4-3-2");
    flm_keepset ks;
    flm_submodel *sm;
    assert_int_equal(flm_keepset_full(&ks, &a), FL_OK);
    assert_int_equal(flm_submodel_new(&a, &ks, &sm), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 1, sm, &h), FL_ERR_INVALID_ARG);
    fls_agg *agg2;
    flm_arch b;
    parse(&b, "mlp:4-5-2");
    assert_int_equal(fls_agg_new(&b, NULL, &agg2), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg2, 1, sm, &h), FL_ERR_INVALID_ARG); /* other arch */
    fls_agg_free(agg2);
    flm_submodel_free(sm);
    flm_keepset_free(&ks);
    /* bad options */
    fls_agg_options o = fls_agg_options_default();
    o.frac_bits = 45;
    o.max_abs_log2 = 10;
    assert_int_equal(fls_agg_new_flat(4, &o, &agg2), FL_ERR_INVALID_ARG);
    o = fls_agg_options_default();
    o.trim_frac = 0.5;
    assert_int_equal(fls_agg_new_flat(4, &o, &agg2), FL_ERR_INVALID_ARG);
    fls_agg_free(agg);
    fls_agg_free(NULL);
}

/* Range limits: values above 2^max_abs_log2 are rejected (not wrapped), values at the bound are
 * exact, and the round's total weight is capped so that no sum can overflow. */
static void test_fixed_point_range(void **state)
{
    (void)state;
    fls_agg_options o = fls_agg_options_default();
    o.frac_bits = 30;
    o.max_abs_log2 = 12; /* |d| <= 4096, weight cap 2^20 */
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(3, &o, &agg), FL_OK);
    fls_agg_update *h;
    const float edge[3] = {4096.0f, -4096.0f, 1.0f};
    const float over[3] = {4096.0f, -4096.5f, 1.0f};
    assert_int_equal(fls_agg_update_begin(agg, 1u << 19, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, edge, 3), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 1u << 19, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, edge, 3), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    /* sums are now 2^20 * 4096 * 2^30 = 2^62: the extreme, still exact */
    float d[3];
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
    assert_true(d[0] == 4096.0f && d[1] == -4096.0f && d[2] == 1.0f);
    /* one more sample would pass the cap */
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, edge, 3), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_ERR_OVERFLOW);
    assert_int_equal(fls_agg_begin_round(agg), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 7, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, over, 3), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_ERR_AGG_RANGE);
    const float big[3] = {1e30f, 0, 0};
    assert_int_equal(fls_agg_update_begin(agg, 7, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, big, 3), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_ERR_AGG_RANGE);
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
    assert_true(d[0] == 0.0f && d[1] == 0.0f && d[2] == 0.0f);
    /* resolution: a value below 2^-31 rounds to zero, 2^-30 survives */
    const float tiny[3] = {(float)ldexp(1.0, -32), (float)ldexp(1.0, -30), 0.0f};
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, tiny, 3), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
    assert_true(d[0] == 0.0f && d[1] == (float)ldexp(1.0, -30));
    /* weights above 2^32 are refused up front */
    assert_int_equal(fls_agg_update_begin(agg, UINT64_C(1) << 33, NULL, &h), FL_ERR_INVALID_ARG);
    fls_agg_free(agg);
}

static void test_clipping(void **state)
{
    (void)state;
    fls_agg_options o = fls_agg_options_default();
    o.clip_norm = 5.0;
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(2, &o, &agg), FL_OK);
    const float big[2] = {6.0f, 8.0f};   /* norm 10 -> scaled by 0.5 */
    const float small[2] = {0.3f, 0.4f}; /* norm 0.5 -> unchanged */
    fls_agg_update *h;
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, big, 2), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_update_begin(agg, 3, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, small, 2), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    float d[2];
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
    assert_true(fabs(d[0] - (3.0 + 3 * 0.3) / 4) < 1e-7);
    assert_true(fabs(d[1] - (4.0 + 3 * 0.4) / 4) < 1e-7);
    fls_agg_stats st;
    fls_agg_get_stats(agg, &st);
    assert_int_equal(st.n_clipped, 1);
    assert_true(fabs(st.max_norm - 10.0) < 1e-9);
    /* clipping lets a large-but-finite update in once scaled within range */
    fls_agg_free(agg);
    o.max_abs_log2 = 3; /* |d| <= 8 after clipping */
    assert_int_equal(fls_agg_new_flat(2, &o, &agg), FL_OK);
    const float huge[2] = {600.0f, 800.0f};
    assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, huge, 2), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
    assert_true(fabs(d[0] - 3.0) < 1e-7 && fabs(d[1] - 4.0) < 1e-7);
    fls_agg_free(agg);
}

static int cmpd(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Trimmed mean and median against a direct per-coordinate computation; order-independent. */
static void check_robust(fls_agg_mode mode, double trim, int dilute)
{
    flm_arch a;
    parse(&a, "mlp:12-10-8-3");
    const size_t N = a.n_params;
    enum { K = 9 };
    upd u[K];
    for (int k = 0; k < K; k++)
        make_upd(&u[k], &a, 4 * (uint32_t)k + 1, 0.6, 2.0f, 51); /* all submodels */
    u[3].d[0] = 1000.0f; /* a Byzantine value within the range bound (test_robust_range) */
    fls_agg_options o = fls_agg_options_default();
    o.mode = mode;
    o.trim_frac = trim;
    o.dilute = dilute;
    float *d0 = malloc(N * sizeof(float)), *d1 = malloc(N * sizeof(float));
    uint8_t *h0 = malloc(N);
    for (int pass = 0; pass < 2; pass++) {
        fls_agg *agg;
        assert_int_equal(fls_agg_new(&a, &o, &agg), FL_OK);
        for (int i = 0; i < K; i++) {
            const int k = pass ? K - 1 - i : i;
            assert_int_equal(feed(agg, &u[k], (uint64_t)(pass * 50 + k + 1)), FL_OK);
        }
        assert_int_equal(fls_agg_finalize(agg, pass ? d1 : d0, pass ? NULL : h0), FL_OK);
        fls_agg_free(agg);
    }
    assert_memory_equal(d0, d1, N * sizeof(float));
    /* direct: dense scatter per client, NaN where not held */
    float *dense[K];
    float *mask = malloc(N * sizeof(float));
    for (int k = 0; k < K; k++) {
        dense[k] = calloc(N, sizeof(float));
        if (u[k].sm) {
            flm_submodel_scatter_add(u[k].sm, dense[k], u[k].d, 1.0f);
            flm_submodel_mask(u[k].sm, mask);
            for (size_t i = 0; i < N; i++)
                if (mask[i] == 0.0f)
                    dense[k][i] = NAN;
        } else {
            memcpy(dense[k], u[k].d, N * sizeof(float));
        }
    }
    size_t n_unheld = 0;
    for (size_t i = 0; i < N; i++) {
        double v[K];
        int m = 0;
        for (int k = 0; k < K; k++) {
            if (!isnan(dense[k][i]))
                v[m++] = dense[k][i];
            else if (dilute)
                v[m++] = 0.0;
        }
        if (m == 0) {
            n_unheld++;
            assert_int_equal(h0[i], 0);
            assert_true(d0[i] == 0.0f);
            continue;
        }
        assert_int_equal(h0[i], 1);
        qsort(v, (size_t)m, sizeof(double), cmpd);
        double want;
        if (mode == FLS_AGG_MEDIAN) {
            want = (m % 2) ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
        } else {
            const int t = (int)(trim * m);
            want = 0;
            for (int j = t; j < m - t; j++)
                want += v[j];
            want /= (m - 2 * t);
        }
        assert_true(fabs(d0[i] - want) <= 1e-6 * (1.0 + fabs(want)));
    }
    assert_true(n_unheld > 0 || dilute);
    for (int k = 0; k < K; k++) {
        free(dense[k]);
        upd_free(&u[k]);
    }
    free(mask);
    free(d0);
    free(d1);
    free(h0);
}

/* The robust modes store each value as the float product x * c (c < 1 when clipped) plus +0:
 * the same bits for subnormal x (computed without a float multiply, whose slow path a client
 * could choose), for -0 (stored as +0) and for normal x. One update's median is its values. */
static void test_robust_store_bits(void **state)
{
    (void)state;
    flm_arch a;
    parse(&a, "mlp:30-17-13-4");
    const size_t N = a.n_params;
    float *x = malloc(N * sizeof(float)), *d = malloc(N * sizeof(float));
    fl_rng r = fl_rng_stream(77, 0, 0, FL_RNG_TEST);
    for (size_t i = 0; i < N; i++) {
        const float u = 2.0f * fl_rng_uniform(&r) - 1.0f;
        switch (i % 4) {
        case 0: x[i] = u * 1e-39f; break;                  /* subnormal */
        case 1: x[i] = u * 3e-38f; break;                  /* normal; x * c may be subnormal */
        case 2: x[i] = (i & 8) ? -0.0f : 0x1p-149f; break; /* -0, the least subnormal */
        default: x[i] = u * 0.5f; break;
        }
    }
    for (int clip = 0; clip < 2; clip++) {
        fls_agg_options o = fls_agg_options_default();
        o.mode = FLS_AGG_MEDIAN;
        o.clip_norm = clip ? 0.25 : 0.0;
        fls_agg *agg;
        assert_int_equal(fls_agg_new(&a, &o, &agg), FL_OK);
        fls_agg_update *h;
        assert_int_equal(fls_agg_update_begin(agg, 5, NULL, &h), FL_OK);
        assert_int_equal(fls_agg_update_add(h, 0, x, N), FL_OK);
        assert_int_equal(fls_agg_update_commit(h), FL_OK);
        fls_agg_stats st;
        fls_agg_get_stats(agg, &st);
        const float c = clip ? (float)(0.25 / st.max_norm) : 1.0f;
        assert_true(clip ? c < 1.0f && st.n_clipped == 1 : st.n_clipped == 0);
        assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
        for (size_t i = 0; i < N; i++) {
            const float want = x[i] * c + 0.0f;
            if (memcmp(&want, &d[i], sizeof want) != 0)
                fail_msg("clip %d: x[%zu] = %a: stored %a, want %a", clip, i, (double)x[i],
                         (double)d[i], (double)want);
        }
        fls_agg_free(agg);
    }
    free(x);
    free(d);
}

/* The robust modes hold every stored value to the mean mode's range (2^max_abs_log2, 1024 by
 * default), as stored (x * c under clipping): with trim_frac 0, or with fewer holders than
 * 1 / trim_frac, or 1 or 2 holders under the median, nothing is trimmed, and one client's 1e30
 * went straight into the delta. A refused update leaves the round as it was. */
/* One whole-model update of weight w, x[0..n), added at once: the commit's status. */
static fl_status commit_whole(fls_agg *agg, uint64_t w, const float *x, size_t n)
{
    fls_agg_update *h;
    assert_int_equal(fls_agg_update_begin(agg, w, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, x, n), FL_OK);
    return fls_agg_update_commit(h);
}

static void test_robust_range(void **state)
{
    (void)state;
    const fls_agg_mode modes[3] = {FLS_AGG_TRIMMED_MEAN, FLS_AGG_TRIMMED_MEAN, FLS_AGG_MEDIAN};
    const double trims[3] = {0.0, 0.2, 0.0};
    const float honest[3] = {0.5f, -0.25f, 1.0f};
    for (int m = 0; m < 3; m++) {
        fls_agg_options o = fls_agg_options_default();
        o.mode = modes[m];
        o.trim_frac = trims[m];
        fls_agg *agg;
        assert_int_equal(fls_agg_new_flat(3, &o, &agg), FL_OK);
        assert_int_equal(commit_whole(agg, 10, honest, 3), FL_OK);
        float before[3], after[3];
        assert_int_equal(fls_agg_finalize(agg, before, NULL), FL_OK);
        const float bad[4][3] = {{0.5f, 1e30f, 1.0f}, {-1025.0f, 0.0f, 0.0f},
                                 {0.0f, 0.0f, nextafterf(1024.0f, INFINITY)},
                                 {-3e38f, 3e38f, 0.0f}};
        for (int b = 0; b < 4; b++)
            assert_int_equal(commit_whole(agg, 10, bad[b], 3), FL_ERR_AGG_RANGE);
        const float nan3[3] = {NAN, 2000.0f, 0.0f}; /* a NaN is said as such */
        assert_int_equal(commit_whole(agg, 10, nan3, 3), FL_ERR_NUMERIC);
        assert_int_equal(fls_agg_finalize(agg, after, NULL), FL_OK);
        assert_memory_equal(before, after, sizeof before);
        fls_agg_stats st;
        fls_agg_get_stats(agg, &st);
        assert_int_equal(st.n_updates, 1);
        assert_int_equal(st.n_aborted, 5);
        /* the bound itself passes */
        const float edge[3] = {1024.0f, -1024.0f, 0.0f};
        assert_int_equal(commit_whole(agg, 10, edge, 3), FL_OK);
        fls_agg_free(agg);
    }
    /* under clipping the stored value counts: 2000 scaled to norm 1000 passes */
    fls_agg_options o = fls_agg_options_default();
    o.mode = FLS_AGG_MEDIAN;
    o.clip_norm = 1000.0;
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(3, &o, &agg), FL_OK);
    const float big[3] = {2000.0f, 0.0f, 0.0f};
    assert_int_equal(commit_whole(agg, 1, big, 3), FL_OK);
    float d[3];
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
    assert_true(d[0] == 1000.0f && d[1] == 0.0f && d[2] == 0.0f);
    fls_agg_free(agg);
}

/* A refused value is located: which element, its value and the bound, in every mode and way of
 * adding (a copy, early folding, borrowed ranges added out of order), the first such element in
 * the update and a NaN before any out-of-range value (the status says which). Until 2026-12-08
 * the commit said only FL_ERR_AGG_RANGE, and the server's log and its Ack named no weight. */
static void test_bad_value_located(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float x[N];
    for (int v = 0; v < 5; v++) { /* mean, early, early borrowed, trimmed mean, median */
        fls_agg_options o = fls_agg_options_default();
        o.mode = v == 3 ? FLS_AGG_TRIMMED_MEAN : v == 4 ? FLS_AGG_MEDIAN : FLS_AGG_MEAN;
        o.trim_frac = 0.0;
        o.fold_early = v == 1 || v == 2;
        fls_agg *agg;
        assert_int_equal(fls_agg_new_flat(N, &o, &agg), FL_OK);
        fls_agg_bad b;
        assert_int_equal(fls_agg_last_bad(agg, &b), 0); /* nothing refused yet */
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < N; i++)
                x[i] = 0.001f * (float)(i % 7) - 0.003f;
            x[900] = -5000.0f; /* out of range, but not the first */
            x[700] = 2000.0f;
            if (k == 1)
                x[800] = NAN; /* said before any out of range */
            if (k == 2)
                x[700] = 1024.0f; /* the bound itself passes: 900 is the first */
            fls_agg_update *h;
            assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
            if (v == 2) { /* the later half first */
                assert_int_equal(fls_agg_update_add_borrowed(h, 500, x + 500, N - 500), FL_OK);
                assert_int_equal(fls_agg_update_add_borrowed(h, 0, x, 500), FL_OK);
            } else {
                assert_int_equal(fls_agg_update_add(h, 0, x, N), FL_OK);
            }
            assert_int_equal(fls_agg_update_commit(h), k == 1 ? FL_ERR_NUMERIC : FL_ERR_AGG_RANGE);
            assert_int_equal(fls_agg_last_bad(agg, &b), 1);
            assert_int_equal(b.status, k == 1 ? FL_ERR_NUMERIC : FL_ERR_AGG_RANGE);
            assert_true(b.found);
            assert_int_equal(b.index, k == 0 ? 700 : k == 1 ? 800 : 900);
            if (k == 1)
                assert_true(isnan(b.value));
            else
                assert_true(b.value == (k == 0 ? 2000.0f : -5000.0f));
            assert_true(b.bound == 1024.0f && b.max_abs == 1024.0f && b.clip == 1.0);
        }
        /* a commit taken, or refused for another reason, leaves nothing to say */
        x[700] = x[800] = x[900] = 0.0f;
        assert_int_equal(commit_whole(agg, 1, x, N), FL_OK);
        assert_int_equal(fls_agg_last_bad(agg, &b), 0);
        fls_agg_update *h;
        assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
        assert_int_equal(fls_agg_update_add(h, 0, x, N / 2), FL_OK);
        assert_int_equal(fls_agg_update_commit(h), FL_ERR_WIRE_CHUNK_MISSING);
        assert_int_equal(fls_agg_last_bad(agg, &b), 0);
        fls_agg_free(agg);
    }
    /* clipped: the bound on the value sent is 2^10 over the clip factor */
    fls_agg_options o = fls_agg_options_default();
    o.clip_norm = 2000.0;
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(3, &o, &agg), FL_OK);
    const float u[3] = {0.0f, 3000.0f, 4000.0f}; /* norm 5000: clip factor 0.4, bound 2560 */
    assert_int_equal(commit_whole(agg, 1, u, 3), FL_ERR_AGG_RANGE);
    fls_agg_bad b;
    assert_int_equal(fls_agg_last_bad(agg, &b), 1);
    assert_int_equal(b.index, 1);
    assert_true(b.value == 3000.0f && b.max_abs == 1024.0f);
    assert_true(fabs(b.clip - 0.4) < 1e-12 && fabs((double)b.bound - 2560.0) < 1e-3);
    fls_agg_free(agg);
}

/* Under clipping the robust modes decide as the mean mode does, value for value: the mean mode
 * takes x where |x| <= 2^A / c (the largest float not above it), so |x * c| <= 2^A exactly. Here
 * x * c = 1024.0000137 (c = clip_norm / ||u||): the mean mode refuses it, and so must the robust
 * modes, though x times the clip factor rounded to float (0.54407364, above c), rounded again
 * to float, is 1024. */
static void test_robust_range_clipped(void **state)
{
    (void)state;
    const fls_agg_mode modes[3] = {FLS_AGG_MEAN, FLS_AGG_TRIMMED_MEAN, FLS_AGG_MEDIAN};
    const float u[3] = {0x1.d6864ap+10f, 0x1.c73a06p+10f, 0.0f}; /* 1882.09827, 1820.90662 */
    for (int m = 0; m < 3; m++) {
        fls_agg_options o = fls_agg_options_default();
        o.mode = modes[m];
        o.trim_frac = 0.0;
        o.clip_norm = 0x1.6433b0cd04676p+10; /* 1424.8076660674101 */
        fls_agg *agg;
        assert_int_equal(fls_agg_new_flat(3, &o, &agg), FL_OK);
        assert_int_equal(commit_whole(agg, 1, u, 3), FL_ERR_AGG_RANGE);
        fls_agg_free(agg);
    }
}

static void test_trimmed_mean_and_median(void **state)
{
    (void)state;
    check_robust(FLS_AGG_TRIMMED_MEAN, 0.2, 0);
    check_robust(FLS_AGG_TRIMMED_MEAN, 0.0, 0);
    check_robust(FLS_AGG_MEDIAN, 0.0, 0);
    check_robust(FLS_AGG_MEDIAN, 0.0, 1);
    /* memory accounting says what the per-client storage costs */
    fls_agg_options o = fls_agg_options_default();
    const size_t mean = fls_agg_memory_bytes(NULL, 1000000, &o, 0);
    o.mode = FLS_AGG_MEDIAN;
    const size_t med = fls_agg_memory_bytes(NULL, 1000000, &o, 100);
    /* 8 B acc + 4 B staging per param, each in whole 2 MiB pages as allocated (8 + 4 MiB) */
    assert_true(mean >= 12582912 && mean < 12700000);
    assert_true(med >= 404000000);                    /* + 4 B per param per update */
    /* the cap on stored updates */
    o.max_updates = 2;
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(3, &o, &agg), FL_OK);
    const float x[3] = {1, 2, 3};
    fls_agg_update *h;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fls_agg_update_begin(agg, 1, NULL, &h), FL_OK);
        assert_int_equal(fls_agg_update_add(h, 0, x, 3), FL_OK);
        assert_int_equal(fls_agg_update_commit(h), i < 2 ? FL_OK : FL_ERR_STATE);
    }
    float d[3];
    assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK); /* full-model updates, median */
    assert_true(d[0] == 1.0f && d[1] == 2.0f && d[2] == 3.0f);
    fls_agg_free(agg);
    /* hand case: median of {1, 5, 2, -7} = 1.5, trimmed mean (0.25) of the same = 1.5 too,
     * of {1, 5, 2} with trim 0.34 -> drops 1 each end -> 2 */
    const float hv[4] = {1, 5, 2, -7};
    for (int mode = 0; mode < 3; mode++) {
        fls_agg_options q = fls_agg_options_default();
        q.mode = mode < 2 ? FLS_AGG_MEDIAN : FLS_AGG_TRIMMED_MEAN;
        q.trim_frac = 0.34;
        assert_int_equal(fls_agg_new_flat(1, &q, &agg), FL_OK);
        const int m = mode == 0 ? 4 : 3;
        for (int i = 0; i < m; i++) {
            assert_int_equal(fls_agg_update_begin(agg, (uint64_t)(100 * i + 1), NULL, &h), FL_OK);
            assert_int_equal(fls_agg_update_add(h, 0, hv + i, 1), FL_OK);
            assert_int_equal(fls_agg_update_commit(h), FL_OK);
        }
        assert_int_equal(fls_agg_finalize(agg, d, NULL), FL_OK);
        assert_true(d[0] == (mode == 0 ? 1.5f : 2.0f));
        fls_agg_free(agg);
    }
}

/* Partial aggregates merged give the same bits as one aggregator over all updates. */
static void test_merge(void **state)
{
    (void)state;
    flm_arch a;
    parse(&a, "mlp:20-16-12-5");
    const size_t N = a.n_params;
    enum { K = 8 };
    upd u[K];
    for (int k = 0; k < K; k++)
        make_upd(&u[k], &a, (uint32_t)k, 0.5, 1.0f, 61);
    fls_agg *all, *p0, *p1;
    assert_int_equal(fls_agg_new(&a, NULL, &all), FL_OK);
    assert_int_equal(fls_agg_new(&a, NULL, &p0), FL_OK);
    assert_int_equal(fls_agg_new(&a, NULL, &p1), FL_OK);
    for (int k = 0; k < K; k++) {
        assert_int_equal(feed(all, &u[k], 0), FL_OK);
        assert_int_equal(feed(k % 3 ? p0 : p1, &u[k], (uint64_t)k + 7), FL_OK);
    }
    assert_int_equal(fls_agg_merge(p1, p0), FL_OK);
    float *d0 = malloc(N * sizeof(float)), *d1 = malloc(N * sizeof(float));
    assert_int_equal(fls_agg_finalize(all, d0, NULL), FL_OK);
    assert_int_equal(fls_agg_finalize(p1, d1, NULL), FL_OK);
    assert_memory_equal(d0, d1, N * sizeof(float));
    fls_agg *flat;
    assert_int_equal(fls_agg_new_flat(N, NULL, &flat), FL_OK);
    assert_int_equal(fls_agg_merge(p1, flat), FL_ERR_INVALID_ARG);
    fls_agg_free(flat);
    free(d0);
    free(d1);
    for (int k = 0; k < K; k++)
        upd_free(&u[k]);
    fls_agg_free(all);
    fls_agg_free(p0);
    fls_agg_free(p1);
}

/* ---- server optimizers ---------------------------------------------------------------------- */

/* A step that would leave the finite floats (a model or state near the float range, as a
 * checkpoint made by hand can hold) is refused whole: FL_ERR_NUMERIC, nothing written, the step
 * not counted. Before, FedAvgM wrote inf into the model and FedAdam a NaN from a negative v. */
static void test_optimizer_step_refused_whole(void **state)
{
    (void)state;
    for (int k = FLS_OPT_FEDAVG; k <= FLS_OPT_FEDYOGI; k++) {
        const fls_opt_config c = fls_opt_config_default((fls_opt_kind)k);
        fls_opt *o = NULL;
        assert_int_equal(fls_opt_new(&c, 4, &o), FL_OK);
        float x[4] = {1.0f, 2.0f, 3.0f, 3e38f}, d[4] = {0.5f, 0.5f, 0.5f, 3e38f};
        for (size_t a = 0; a < fls_opt_n_state(o); a++) {
            size_t n = 0;
            const char *name = NULL;
            float *s = fls_opt_state(o, a, &name, &n);
            for (size_t i = 0; i < n; i++)
                s[i] = !strcmp(name, "v") ? 0.0f : 3e38f;
        }
        const float before[4] = {x[0], x[1], x[2], x[3]};
        assert_int_equal(fls_opt_step(o, x, d, NULL), FL_ERR_NUMERIC);
        assert_memory_equal(x, before, sizeof x);
        assert_int_equal(fls_opt_steps(o), 0);
        /* the same without the extreme coordinate: taken */
        const uint8_t held[4] = {1, 1, 1, 0};
        if (k == FLS_OPT_FEDAVG)
            assert_int_equal(fls_opt_step(o, x, d, held), FL_OK);
        fls_opt_free(o);
    }
}

static void test_optimizers_vs_formula(void **state)
{
    (void)state;
    enum { N = 7, STEPS = 5 };
    const fls_opt_kind kinds[] = {FLS_OPT_FEDAVG, FLS_OPT_FEDAVGM, FLS_OPT_FEDADAGRAD,
                                  FLS_OPT_FEDADAM, FLS_OPT_FEDYOGI};
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
        fls_opt_config c = fls_opt_config_default(kinds[ki]);
        c.lr = 0.5f;
        fls_opt *opt;
        assert_int_equal(fls_opt_new(&c, N, &opt), FL_OK);
        float x[N];
        double rx[N], rm[N], rv[N];
        for (int i = 0; i < N; i++) {
            x[i] = (float)(0.1 * i - 0.3);
            rx[i] = x[i];
            rm[i] = 0;
            rv[i] = (double)c.tau * c.tau;
        }
        const uint8_t held[N] = {1, 1, 0, 1, 1, 0, 1};
        fl_rng r = fl_rng_stream(71, 0, (uint32_t)ki, FL_RNG_TEST);
        for (int s = 0; s < STEPS; s++) {
            float d[N];
            for (int i = 0; i < N; i++)
                d[i] = (float)(fl_rng_normal(&r) * (s == 2 ? 0.001 : 0.3));
            const uint8_t *hm = s % 2 ? held : NULL;
            assert_int_equal(fls_opt_step(opt, x, d, hm), FL_OK);
            for (int i = 0; i < N; i++) {
                if (hm && !hm[i])
                    continue;
                const double di = d[i], d2 = di * di;
                switch (kinds[ki]) {
                case FLS_OPT_FEDAVG:
                    rx[i] += c.lr * di;
                    break;
                case FLS_OPT_FEDAVGM:
                    rm[i] = c.momentum * rm[i] + di;
                    rx[i] += c.lr * rm[i];
                    break;
                default:
                    rm[i] = c.beta1 * rm[i] + (1 - c.beta1) * di;
                    if (kinds[ki] == FLS_OPT_FEDADAGRAD)
                        rv[i] += d2;
                    else if (kinds[ki] == FLS_OPT_FEDADAM)
                        rv[i] = c.beta2 * rv[i] + (1 - c.beta2) * d2;
                    else
                        rv[i] -= (1 - c.beta2) * d2 * (rv[i] > d2 ? 1 : (rv[i] < d2 ? -1 : 0));
                    rx[i] += c.lr * rm[i] / (sqrt(rv[i]) + c.tau);
                    break;
                }
            }
            for (int i = 0; i < N; i++)
                assert_true(fabs(x[i] - rx[i]) <= 1e-5 * (1 + fabs(rx[i])));
        }
        assert_int_equal(fls_opt_steps(opt), STEPS);
        /* state exposed for checkpoints: restoring it into a fresh optimizer continues exactly */
        fls_opt *o2;
        assert_int_equal(fls_opt_new(&c, N, &o2), FL_OK);
        assert_int_equal(fls_opt_n_state(opt), kinds[ki] == FLS_OPT_FEDAVG ? 0
                                               : kinds[ki] == FLS_OPT_FEDAVGM ? 1 : 2);
        for (size_t si = 0; si < fls_opt_n_state(opt); si++) {
            const char *n1, *n2;
            size_t l1, l2;
            float *s1 = fls_opt_state(opt, si, &n1, &l1), *s2 = fls_opt_state(o2, si, &n2, &l2);
            assert_non_null(s1);
            assert_string_equal(n1, n2);
            assert_int_equal(l1, N);
            memcpy(s2, s1, l1 * sizeof(float));
        }
        assert_null(fls_opt_state(opt, 2, NULL, NULL));
        fls_opt_set_steps(o2, fls_opt_steps(opt));
        float x2[N], d[N];
        memcpy(x2, x, sizeof x);
        for (int i = 0; i < N; i++)
            d[i] = 0.01f * (float)i;
        assert_int_equal(fls_opt_step(opt, x, d, NULL), FL_OK);
        assert_int_equal(fls_opt_step(o2, x2, d, NULL), FL_OK);
        assert_memory_equal(x, x2, sizeof x);
        fls_opt_free(opt);
        fls_opt_free(o2);
    }
    /* names and bad configs */
    fls_opt_kind k;
    assert_int_equal(fls_opt_kind_parse("fedyogi", &k), FL_OK);
    assert_int_equal(k, FLS_OPT_FEDYOGI);
    assert_int_equal(fls_opt_kind_parse("sgd", &k), FL_ERR_INVALID_ARG);
    assert_string_equal(fls_opt_kind_name(FLS_OPT_FEDADAM), "fedadam");
    fls_opt_config c = fls_opt_config_default(FLS_OPT_FEDADAM);
    fls_opt *opt;
    c.tau = 0;
    assert_int_equal(fls_opt_new(&c, 4, &opt), FL_ERR_INVALID_ARG);
    c = fls_opt_config_default(FLS_OPT_FEDAVGM);
    c.momentum = 1.0f;
    assert_int_equal(fls_opt_new(&c, 4, &opt), FL_ERR_INVALID_ARG);
    fls_opt_free(NULL);
}

/* FedAvg with lr 1 after the aggregator reproduces the plain weighted average end to end, and an
 * unheld coordinate keeps its exact bits through every optimizer. */
static void test_agg_then_opt(void **state)
{
    (void)state;
    fls_agg *agg;
    assert_int_equal(fls_agg_new_flat(3, NULL, &agg), FL_OK);
    fls_agg_update *h;
    const float d1[3] = {0.5f, -1.0f, 2.0f};
    assert_int_equal(fls_agg_update_begin(agg, 2, NULL, &h), FL_OK);
    assert_int_equal(fls_agg_update_add(h, 0, d1, 3), FL_OK);
    assert_int_equal(fls_agg_update_commit(h), FL_OK);
    float delta[3];
    uint8_t held[3];
    assert_int_equal(fls_agg_finalize(agg, delta, held), FL_OK);
    held[1] = 0;
    for (int kind = FLS_OPT_FEDAVG; kind <= FLS_OPT_FEDYOGI; kind++) {
        fls_opt_config c = fls_opt_config_default((fls_opt_kind)kind);
        fls_opt *opt;
        assert_int_equal(fls_opt_new(&c, 3, &opt), FL_OK);
        float w[3] = {1.0f, 0.123f, -1.0f};
        for (int s = 0; s < 3; s++)
            assert_int_equal(fls_opt_step(opt, w, delta, held), FL_OK);
        assert_true(w[1] == 0.123f);
        if (kind == FLS_OPT_FEDAVG)
            assert_true(w[0] == 2.5f && w[2] == 5.0f);
        else
            assert_true(w[0] > 1.0f && w[2] > -1.0f);
        fls_opt_free(opt);
    }
    fls_agg_free(agg);
}

/* The round weight cap the server core divides among clients_per_round updates. */
static void test_weight_cap(void **state)
{
    (void)state;
    fls_agg *a = NULL;
    fls_agg_options o = fls_agg_options_default();
    assert_int_equal(fls_agg_new_flat(4, &o, &a), FL_OK);
    assert_true(fls_agg_weight_cap(a) == (UINT64_C(1) << 24)); /* 62 - 28 - 10 */
    fls_agg_free(a);
    o.frac_bits = 20; /* 2^32 is above the 32x32-bit multiply: UINT32_MAX */
    assert_int_equal(fls_agg_new_flat(4, &o, &a), FL_OK);
    assert_true(fls_agg_weight_cap(a) == UINT32_MAX);
    fls_agg_free(a);
    assert_true(fls_agg_weight_cap(NULL) == 0);
}

/* A split needs a parallel-for, and at most FL_PAR_MAX pieces. */
static void test_par_options(void **state)
{
    (void)state;
    fls_agg *a = NULL;
    fls_agg_options o = fls_agg_options_default();
    o.par = (fl_par){NULL, NULL, 2, 0};
    assert_int_equal(fls_agg_new_flat(4, &o, &a), FL_ERR_INVALID_ARG);
    o.par = (fl_par){par_run, NULL, FL_PAR_MAX + 1, 0};
    assert_int_equal(fls_agg_new_flat(4, &o, &a), FL_ERR_INVALID_ARG);
    o.par = (fl_par){NULL, NULL, 1, 0}; /* one piece: serial, run unused */
    assert_int_equal(fls_agg_new_flat(4, &o, &a), FL_OK);
    fls_agg_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_cap),
        cmocka_unit_test(test_par_options),
        cmocka_unit_test(test_split_fold_lender_mode),
        cmocka_unit_test(test_hand_weighted_mean),
        cmocka_unit_test(test_submodel_mean_mlp),
        cmocka_unit_test(test_short_runs_exact),
        cmocka_unit_test(test_submodel_mean_cnn_lstm),
        cmocka_unit_test(test_order_and_chunking_invariance),
        cmocka_unit_test_teardown(test_invariance_rounding_modes, restore_rounding),
        cmocka_unit_test_teardown(test_mode_changed_between_fold_and_abort, restore_rounding),
        cmocka_unit_test(test_abort_leaves_no_trace),
        cmocka_unit_test(test_fold_early_guards),
        cmocka_unit_test(test_chunk_errors_and_state),
        cmocka_unit_test(test_fixed_point_range),
        cmocka_unit_test(test_clipping),
        cmocka_unit_test(test_trimmed_mean_and_median),
        cmocka_unit_test(test_robust_range),
        cmocka_unit_test(test_bad_value_located),
        cmocka_unit_test(test_robust_range_clipped),
        cmocka_unit_test(test_robust_store_bits),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_optimizers_vs_formula),
        cmocka_unit_test(test_optimizer_step_refused_whole),
        cmocka_unit_test(test_agg_then_opt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
