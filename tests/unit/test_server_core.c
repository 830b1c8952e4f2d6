/* Unit tests for fl_server/core: selection policies (full, fd, afd-single, afd-multi). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flm_submodel.h"
#include "fls_policy.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

static flm_arch arch_of(const char *spec)
{
    flm_arch a;
    char err[128];
    assert_int_equal(flm_arch_parse(spec, &a, err, sizeof err), FL_OK);
    return a;
}

static fls_policy *policy_of(fls_policy_kind kind, const flm_arch *a, uint64_t seed,
                             void (*tweak)(fls_policy_config *))
{
    fls_policy_config c = fls_policy_config_default();
    c.kind = kind;
    if (tweak)
        tweak(&c);
    fls_policy *p = NULL;
    assert_int_equal(fls_policy_new(&c, a, seed, &p), FL_OK);
    return p;
}

/* A copy of a keep-set the test owns (the policy's pointer dies at the next call). */
static flm_keepset ks_dup(const flm_keepset *ks)
{
    flm_keepset c;
    assert_int_equal(flm_keepset_copy(&c, ks), FL_OK);
    return c;
}

static flm_keepset get_ks(fls_policy *p, uint32_t client)
{
    const flm_keepset *ks = NULL;
    assert_int_equal(fls_policy_keepset(p, client, &ks), FL_OK);
    assert_non_null(ks);
    return ks_dup(ks);
}

static int ks_has(const flm_keepset *ks, int d, uint32_t u)
{
    for (int j = 0; j < ks->count[d]; j++)
        if (ks->idx[ks->offset[d] + j] == u)
            return 1;
    return 0;
}

static void tweak_per_client(fls_policy_config *c)
{
    c->fd_per_client = 1;
}

static void tweak_accumulate(fls_policy_config *c)
{
    c->score_accumulate = 1;
}

static void tweak_unweighted(fls_policy_config *c)
{
    c->loss_unweighted = 1;
}

static void tweak_k1(fls_policy_config *c)
{
    c->keep_p = 0.25; /* 1 of 4 units */
}

/* ---- policies --------------------------------------------------------------------------------- */

static void test_policy_full(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:20-16-12-3");
    fls_policy *p = policy_of(FLS_POLICY_FULL, &a, 1, NULL);
    assert_true(fls_policy_is_shared(p));
    const flm_keepset *ks;
    assert_int_equal(fls_policy_keepset(p, 3, &ks), FL_ERR_STATE); /* no round yet */
    assert_int_equal(fls_policy_begin_round(p, 0), FL_OK);
    flm_keepset got = get_ks(p, 3), full;
    assert_int_equal(flm_keepset_full(&full, &a), FL_OK);
    assert_true(flm_keepset_equal(&got, &full));
    assert_int_equal(fls_policy_report(p, 3, 1.0, 10), FL_OK);
    fls_policy_info info;
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(info.afd, 0);
    flm_keepset_free(&got);
    flm_keepset_free(&full);
    fls_policy_free(p);
}

static void test_policy_fd_shared_and_per_client(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:20-16-12-3");
    assert_int_equal(a.n_drop, 2);
    fls_policy *p = policy_of(FLS_POLICY_FD, &a, 7, NULL);
    fls_policy *q = policy_of(FLS_POLICY_FD, &a, 7, NULL);
    assert_true(fls_policy_is_shared(p));
    assert_int_equal(fls_policy_begin_round(p, 4), FL_OK);
    assert_int_equal(fls_policy_begin_round(q, 4), FL_OK);
    flm_keepset k1 = get_ks(p, 1), k2 = get_ks(p, 2), k3 = get_ks(q, 9);
    assert_int_equal(flm_keepset_validate(&k1, &a), FL_OK);
    assert_int_equal(k1.count[0], 12); /* round(0.75 * 16) */
    assert_int_equal(k1.count[1], 9);  /* round(0.75 * 12) */
    assert_true(flm_keepset_equal(&k1, &k2)); /* shared in a round */
    assert_true(flm_keepset_equal(&k1, &k3)); /* reproducible from the seed */
    assert_int_equal(fls_policy_end_round(p, NULL), FL_OK);
    assert_int_equal(fls_policy_begin_round(p, 5), FL_OK);
    flm_keepset k4 = get_ks(p, 1);
    assert_false(flm_keepset_equal(&k1, &k4)); /* a new draw each round */

    fls_policy *pc = policy_of(FLS_POLICY_FD, &a, 7, tweak_per_client);
    assert_false(fls_policy_is_shared(pc));
    assert_int_equal(fls_policy_begin_round(pc, 4), FL_OK);
    flm_keepset c1 = get_ks(pc, 1), c2 = get_ks(pc, 2), c1b = get_ks(pc, 1);
    assert_int_equal(flm_keepset_validate(&c2, &a), FL_OK);
    assert_false(flm_keepset_equal(&c1, &c2));
    assert_true(flm_keepset_equal(&c1, &c1b));
    flm_keepset *all[] = {&k1, &k2, &k3, &k4, &c1, &c2, &c1b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        flm_keepset_free(all[i]);
    fls_policy_free(p);
    fls_policy_free(q);
    fls_policy_free(pc);
}

/* Every unit is drawn about equally often by fd (k = 3 of 4, 4000 rounds: 3000 expected each). */
static void test_policy_fd_uniform(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:5-4-2");
    fls_policy *p = policy_of(FLS_POLICY_FD, &a, 11, NULL);
    int hits[4] = {0};
    for (uint32_t r = 0; r < 4000; r++) {
        const flm_keepset *ks;
        assert_int_equal(fls_policy_begin_round(p, r), FL_OK);
        assert_int_equal(fls_policy_keepset(p, 0, &ks), FL_OK);
        assert_int_equal(ks->count[0], 3);
        for (int j = 0; j < 3; j++)
            hits[ks->idx[j]]++;
        assert_int_equal(fls_policy_end_round(p, NULL), FL_OK);
    }
    for (int u = 0; u < 4; u++) /* sd = sqrt(4000 * .75 * .25) ~ 27 */
        assert_true(abs(hits[u] - 3000) < 140);
    fls_policy_free(p);
}

static void test_policy_afd_single_rule(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:20-16-12-3");
    fls_policy *p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 3, NULL);
    const size_t U = fls_policy_units(p);
    assert_int_equal(U, 28);
    double S[28];
    fls_policy_info info;

    /* Round 0: uniform first; the first loss can only explore (l_prev unset). */
    assert_int_equal(fls_policy_begin_round(p, 0), FL_OK);
    flm_keepset A0 = get_ks(p, 1), A0b = get_ks(p, 2);
    assert_true(flm_keepset_equal(&A0, &A0b));
    assert_int_equal(fls_policy_report(p, 1, 2.0, 10), FL_OK);
    assert_int_equal(fls_policy_report(p, 1, 2.0, 10), FL_ERR_STATE); /* twice */
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(info.afd, 1);
    assert_int_equal(info.resampled, 1);
    assert_int_equal(info.kept, 0);
    assert_float_equal(info.loss, 2.0, 0);
    assert_int_equal(fls_policy_scores(p, 0, S, U), FL_OK);
    for (size_t u = 0; u < U; u++)
        assert_true(S[u] == 0.0);

    /* Round 1: the loss improves 2.0 -> 1.5: S[u in A] = 0.25 exactly, A kept. */
    assert_int_equal(fls_policy_begin_round(p, 1), FL_OK);
    flm_keepset A1 = get_ks(p, 5);
    assert_false(flm_keepset_equal(&A0, &A1)); /* it was resampled (uniform: S all zero) */
    assert_int_equal(fls_policy_report(p, 5, 1.5, 4), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(info.kept, 1);
    assert_int_equal(info.resampled, 0);
    assert_int_equal(fls_policy_scores(p, 0, S, U), FL_OK);
    size_t nonzero = 0;
    for (int d = 0; d < a.n_drop; d++)
        for (int u = 0; u < a.drop_units[d]; u++) {
            const double s = S[(d ? a.drop_units[0] : 0) + u];
            if (ks_has(&A1, d, (uint32_t)u)) {
                assert_true(s == 0.25);
                nonzero++;
            } else {
                assert_true(s == 0.0);
            }
        }
    assert_int_equal(nonzero, 12 + 9);
    assert_int_equal(info.hist[FLS_POLICY_HIST_BINS - 1], 21);
    assert_int_equal(info.score_zero, 7);
    assert_true(info.score_max == 0.25);

    /* Round 2: A1 again; improve 1.5 -> 1.2: "=" overwrites with 0.2. */
    assert_int_equal(fls_policy_begin_round(p, 2), FL_OK);
    flm_keepset A2 = get_ks(p, 5);
    assert_true(flm_keepset_equal(&A1, &A2));
    assert_int_equal(fls_policy_report(p, 5, 1.2, 4), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(fls_policy_scores(p, 0, S, U), FL_OK);
    assert_true(fabs(S[A1.idx[0]] - (1.5 - 1.2) / 1.5) < 1e-15);

    /* Round 3: worse (1.3 > 1.2): resample proportional to S + eps; the 21 scored units carry
     * 0.2 each against eps = 2e-4 for the others, so with k = 21 the draw is A1 again unless a
     * 1-in-1000-weight unit wins; what must hold: scores unchanged, l_prev updated. */
    assert_int_equal(fls_policy_begin_round(p, 3), FL_OK);
    assert_int_equal(fls_policy_report(p, 5, 1.3, 4), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(info.resampled, 1);
    assert_float_equal(info.loss_prev, 1.2, 0);
    double S2[28];
    assert_int_equal(fls_policy_scores(p, 0, S2, U), FL_OK);
    assert_memory_equal(S, S2, sizeof S);

    flm_keepset *all[] = {&A0, &A0b, &A1, &A2};
    for (size_t i = 0; i < 4; i++)
        flm_keepset_free(all[i]);
    fls_policy_free(p);
}

/* The "+=" option accumulates gains; weighting options change l_t. */
static void test_policy_afd_options(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:5-4-2");
    fls_policy *p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 3, tweak_accumulate);
    double S[4];
    const double losses[] = {1.0, 0.5, 0.25};
    flm_keepset A = {0};
    for (uint32_t r = 0; r < 3; r++) {
        assert_int_equal(fls_policy_begin_round(p, r), FL_OK);
        if (r == 1)
            A = get_ks(p, 0);
        assert_int_equal(fls_policy_report(p, 0, losses[r], 1), FL_OK);
        assert_int_equal(fls_policy_end_round(p, NULL), FL_OK);
    }
    assert_int_equal(fls_policy_scores(p, 0, S, 4), FL_OK);
    for (uint32_t u = 0; u < 4; u++)
        assert_true(S[u] == (ks_has(&A, 0, u) ? 0.5 + 0.5 : 0.0));
    flm_keepset_free(&A);
    fls_policy_free(p);

    /* Losses 1.0 (n = 1) and 0.0 (n = 3): weighted mean 0.25, plain mean 0.5. */
    fls_policy_info info;
    p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 3, NULL);
    assert_int_equal(fls_policy_begin_round(p, 0), FL_OK);
    assert_int_equal(fls_policy_report(p, 2, 0.0, 3), FL_OK);
    assert_int_equal(fls_policy_report(p, 1, 1.0, 1), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_true(info.loss == 0.25);
    fls_policy_free(p);
    p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 3, tweak_unweighted);
    assert_int_equal(fls_policy_begin_round(p, 0), FL_OK);
    assert_int_equal(fls_policy_report(p, 2, 0.0, 3), FL_OK);
    assert_int_equal(fls_policy_report(p, 1, 1.0, 1), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_true(info.loss == 0.5);
    assert_int_equal(fls_policy_report(p, 1, NAN, 1), FL_ERR_INVALID_ARG);
    assert_int_equal(fls_policy_report(p, 1, 1.0, 0), FL_ERR_INVALID_ARG);
    fls_policy_free(p);
}

/* Builds an afd-single export with scores S (4 units, one layer, k = 1), l_prev = 1.0 and A = {0}
 * by hand: the documented little-endian layout. */
static size_t put_u32(uint8_t *b, size_t o, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[o + i] = (uint8_t)(v >> (8 * i));
    return o + 4;
}

static size_t put_f64(uint8_t *b, size_t o, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    o = put_u32(b, o, (uint32_t)u);
    return put_u32(b, o, (uint32_t)(u >> 32));
}

/* Exploration draws each unit with probability proportional to S + eps (k = 1 of 4). */
static void test_policy_afd_proportional(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:5-4-2");
    fls_policy *p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 99, tweak_k1);
    const double S[4] = {0.4, 0.3, 0.2, 0.0};
    uint8_t buf[256];
    size_t o = 0;
    o = put_u32(buf, o, 0x50534c46u);
    o = put_u32(buf, o, 1);
    o = put_u32(buf, o, FLS_POLICY_AFD_SINGLE);
    o = put_u32(buf, o, 1);     /* n_drop */
    o = put_u32(buf, o, 4);     /* units */
    o = put_u32(buf, o, 1);     /* k */
    o = put_u32(buf, o, FLS_POLICY_SHARED_CLIENT);
    buf[o++] = 1;               /* has_prev */
    o = put_f64(buf, o, 1.0);   /* l_prev */
    for (int u = 0; u < 4; u++)
        o = put_f64(buf, o, S[u]);
    buf[o++] = 1;               /* has A */
    o = put_u32(buf, o, 1);
    o = put_u32(buf, o, 0);
    const int trials = 6000;
    int hits[4] = {0};
    for (int t = 0; t < trials; t++) {
        assert_int_equal(fls_policy_import(p, buf, o), FL_OK);
        assert_int_equal(fls_policy_begin_round(p, (uint32_t)t), FL_OK);
        assert_int_equal(fls_policy_report(p, 0, 2.0, 1), FL_OK); /* worse: explore */
        fls_policy_info info;
        assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
        assert_int_equal(info.resampled, 1);
        const flm_keepset *A = fls_policy_current(p, 0);
        assert_int_equal(A->count[0], 1);
        hits[A->idx[0]]++;
    }
    const double eps = 1e-3 * 0.4, tot = 0.9 + 4 * eps;
    for (int u = 0; u < 4; u++) {
        const double pu = (S[u] + eps) / tot;
        const double sd = sqrt(trials * pu * (1 - pu));
        assert_true(fabs(hits[u] - trials * pu) < 5 * sd + 1);
    }
    assert_true(hits[3] < 20); /* eps alone: about 2.7 expected */
    /* Truncations and a bad keep-set are refused and leave the state alone. */
    for (size_t n = 0; n < o; n++)
        assert_int_not_equal(fls_policy_import(p, buf, n), FL_OK);
    buf[o - 4] = 7; /* unit 7 of a 4-unit layer */
    assert_int_equal(fls_policy_import(p, buf, o), FL_ERR_CHECKPOINT_FORMAT);
    buf[8] = FLS_POLICY_AFD_MULTI;
    assert_int_equal(fls_policy_import(p, buf, o), FL_ERR_CHECKPOINT_MISMATCH);
    fls_policy_free(p);
}

static void test_policy_afd_multi(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:20-16-12-3");
    fls_policy *p = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    fls_policy *fd = policy_of(FLS_POLICY_FD, &a, 5, tweak_per_client);
    assert_false(fls_policy_is_shared(p));
    const size_t U = fls_policy_units(p);
    double S[28];
    /* A client seen for the first time starts uniform: the fd per-client draw of that round. */
    assert_int_equal(fls_policy_begin_round(p, 0), FL_OK);
    assert_int_equal(fls_policy_begin_round(fd, 0), FL_OK);
    flm_keepset a0 = get_ks(p, 10), b0 = get_ks(p, 20), fa = get_ks(fd, 10);
    assert_true(flm_keepset_equal(&a0, &fa));
    assert_false(flm_keepset_equal(&a0, &b0));
    assert_int_equal(fls_policy_report(p, 30, 1.0, 1), FL_ERR_STATE); /* never given a task */
    assert_int_equal(fls_policy_report(p, 10, 1.0, 1), FL_OK);
    assert_int_equal(fls_policy_report(p, 20, 1.0, 1), FL_OK);
    fls_policy_info info;
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(info.resampled, 2);
    assert_int_equal(info.clients, 2);
    /* Round 1: client 10 improves, client 20 worsens; client 30 is new. */
    assert_int_equal(fls_policy_begin_round(p, 1), FL_OK);
    flm_keepset a1 = get_ks(p, 10), b1 = get_ks(p, 20), c1 = get_ks(p, 30);
    assert_int_equal(fls_policy_report(p, 10, 0.5, 1), FL_OK);
    assert_int_equal(fls_policy_report(p, 20, 1.5, 1), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK); /* 30 vanished: no report */
    assert_int_equal(info.kept, 1);
    assert_int_equal(info.resampled, 1);
    assert_int_equal(info.clients, 3);
    const flm_keepset *cur10 = fls_policy_current(p, 10), *cur30 = fls_policy_current(p, 30);
    assert_true(flm_keepset_equal(cur10, &a1)); /* kept */
    assert_true(flm_keepset_equal(cur30, &c1)); /* untouched */
    assert_int_equal(fls_policy_scores(p, 10, S, U), FL_OK);
    for (size_t u = 0; u < 16; u++)
        assert_true(S[u] == (ks_has(&a1, 0, (uint32_t)u) ? 0.5 : 0.0));
    assert_int_equal(fls_policy_scores(p, 20, S, U), FL_OK);
    for (size_t u = 0; u < U; u++)
        assert_true(S[u] == 0.0);
    assert_int_equal(fls_policy_scores(p, 99, S, U), FL_ERR_NOT_FOUND);

    /* Export, import into a fresh policy: the same state, the same future draws. */
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fls_policy_export(p, &buf, &len), FL_OK);
    fls_policy *q = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    assert_int_equal(fls_policy_import(q, buf, len), FL_OK);
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    assert_int_equal(fls_policy_export(q, &buf2, &len2), FL_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    for (size_t n = 0; n < len; n += 7)
        assert_int_not_equal(fls_policy_import(q, buf, n), FL_OK);
    fls_policy *wrong = policy_of(FLS_POLICY_AFD_SINGLE, &a, 5, NULL);
    assert_int_equal(fls_policy_import(wrong, buf, len), FL_ERR_CHECKPOINT_MISMATCH);
    free(buf);
    free(buf2);
    flm_keepset *all[] = {&a0, &b0, &fa, &a1, &b1, &c1};
    for (size_t i = 0; i < 6; i++)
        flm_keepset_free(all[i]);
    fls_policy_free(p);
    fls_policy_free(q);
    fls_policy_free(fd);
    fls_policy_free(wrong);
}

static void test_policy_config(void **state)
{
    (void)state;
    fls_policy_kind k;
    assert_int_equal(fls_policy_kind_parse("afd-multi", &k), FL_OK);
    assert_int_equal(k, FLS_POLICY_AFD_MULTI);
    assert_int_equal(fls_policy_kind_parse("afd", &k), FL_ERR_CONFIG);
    assert_string_equal(fls_policy_kind_name(FLS_POLICY_FD), "fd");
    const flm_arch a = arch_of("mlp:5-4-2");
    fls_policy_config c = fls_policy_config_default();
    fls_policy *p = NULL;
    c.keep_p = 0.0;
    assert_int_equal(fls_policy_new(&c, &a, 0, &p), FL_ERR_CONFIG);
    c = fls_policy_config_default();
    c.eps_rel = -1;
    assert_int_equal(fls_policy_new(&c, &a, 0, &p), FL_ERR_CONFIG);
    assert_null(p);
    fls_policy_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_config),
        cmocka_unit_test(test_policy_full),
        cmocka_unit_test(test_policy_fd_shared_and_per_client),
        cmocka_unit_test(test_policy_fd_uniform),
        cmocka_unit_test(test_policy_afd_single_rule),
        cmocka_unit_test(test_policy_afd_options),
        cmocka_unit_test(test_policy_afd_proportional),
        cmocka_unit_test(test_policy_afd_multi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
