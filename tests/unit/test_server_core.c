/* Unit tests for fl_server/core: selection policies (full, fd, afd-single, afd-multi), the round
 * engine (quorum, deadline, late / duplicate / unselected updates, vanishing clients), exact
 * resume from a checkpoint, and 20-round runs of every policy with simulated clients that train
 * real small models (models/flm_optim.h, in this test only: the server core never trains). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flm_submodel.h"
#include "flm_model.h"
#include "flm_optim.h"
#include "flp_wire.h"
#include "flz.h"
#include "fls_ckpt.h"
#include "fls_core.h"
#include "fls_policy.h"
#include "test_heap.h"

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

/* 1 when the policy's current keep-set of client is ks (fls_policy_current); 0 otherwise. */
static int cur_is(const fls_policy *p, uint32_t client, const flm_keepset *ks)
{
    flm_keepset cur;
    const fl_status st = fls_policy_current(p, client, &cur);
    const int eq = st == FL_OK && flm_keepset_equal(&cur, ks);
    flm_keepset_free(&cur);
    return eq;
}

/* 1 when the policy has no current keep-set for client. */
static int cur_none(const fls_policy *p, uint32_t client)
{
    flm_keepset cur;
    const fl_status st = fls_policy_current(p, client, &cur);
    flm_keepset_free(&cur);
    return st == FL_ERR_NOT_FOUND && cur.idx == NULL;
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

static void tweak_layer1_half(fls_policy_config *c)
{
    c->keep_p_layer[1] = 0.5;
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

    fls_policy *half = policy_of(FLS_POLICY_FD, &a, 7, tweak_layer1_half);
    assert_int_equal(fls_policy_begin_round(half, 0), FL_OK);
    flm_keepset kh = get_ks(half, 0);
    assert_int_equal(kh.count[0], 12); /* the default p for layer 0 */
    assert_int_equal(kh.count[1], 6);  /* the override for layer 1 */
    flm_keepset_free(&kh);
    fls_policy_free(half);

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

/* A version 1 policy state's head: magic, version, kind, then per droppable layer its units and
 * kept count (n_drop pairs in uk: units, k, units, k, ...). Returns the offset after it. */
static size_t put_policy_head(uint8_t *b, uint32_t kind, int n_drop, const uint32_t *uk)
{
    size_t o = put_u32(b, 0, 0x50534c46u);
    o = put_u32(b, o, 1);
    o = put_u32(b, o, kind);
    o = put_u32(b, o, (uint32_t)n_drop);
    for (int d = 0; d < 2 * n_drop; d++)
        o = put_u32(b, o, uk[d]);
    return o;
}

/* 1 when layer d of ks keeps the same number of units in each of its G groups of n / G. */
static int groups_even(const flm_keepset *ks, int d, int n, int G)
{
    int per[64] = {0};
    for (int j = 0; j < ks->count[d]; j++)
        per[ks->idx[ks->offset[d] + j] / (uint32_t)(n / G)]++;
    for (int g = 1; g < G; g++)
        if (per[g] != per[0])
            return 0;
    return per[0] * G == ks->count[d];
}

/* MoGE experts drop group by group (shared AFD.md: "the same number of experts is dropped in
 * every group"): uniform draws (fd, a first AFD round) and weighted ones (AFD exploring) alike. */
static void test_policy_moge_groups(void **state)
{
    (void)state;
    const flm_arch a = arch_of("moge:6:4:3:4:1:2"); /* 12 experts in 3 groups of 4 */
    fls_policy *fd = policy_of(FLS_POLICY_FD, &a, 5, tweak_per_client);
    assert_int_equal(fls_policy_begin_round(fd, 0), FL_OK);
    int seen[12] = {0};
    for (uint32_t c = 0; c < 300; c++) {
        flm_keepset ks = get_ks(fd, c);
        assert_int_equal(ks.count[1], 9); /* round(0.75 * 4) = 3 of each group */
        assert_true(groups_even(&ks, 1, 12, 3));
        assert_int_equal(flm_keepset_validate(&ks, &a), FL_OK);
        for (int j = 0; j < 9; j++)
            seen[ks.idx[ks.offset[1] + j]]++;
        flm_keepset_free(&ks);
    }
    for (int e = 0; e < 12; e++) /* 225 expected, sd 7.5 */
        assert_true(seen[e] > 180 && seen[e] < 270);
    fls_policy_free(fd);

    /* Weighted: every expert of group 0 scores 1, the others 0 (eps). A draw over the whole layer
     * would keep all four of group 0; group by group it keeps three of each. */
    fls_policy *p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 7, NULL);
    uint8_t buf[512];
    /* dense0: 4 units, 3 kept; experts: 12, 9 kept */
    size_t o = put_policy_head(buf, FLS_POLICY_AFD_SINGLE, 2, (const uint32_t[]){4, 3, 12, 9});
    o = put_u32(buf, o, FLS_POLICY_SHARED_CLIENT);
    buf[o++] = 1;               /* has_prev */
    o = put_f64(buf, o, 1.0);   /* l_prev */
    for (int u = 0; u < 4 + 12; u++)
        o = put_f64(buf, o, u < 4 ? 0.1 : u < 8 ? 1.0 : 0.0);
    buf[o++] = 1;               /* has A */
    o = put_u32(buf, o, 3);
    for (uint32_t u = 0; u < 3; u++)
        o = put_u32(buf, o, u);
    o = put_u32(buf, o, 9);
    const size_t a_at = o;
    static const uint32_t A_ok[9] = {0, 1, 2, 4, 5, 6, 8, 9, 10};
    for (int j = 0; j < 9; j++)
        o = put_u32(buf, o, A_ok[j]);
    fls_policy_info info;
    for (uint32_t t = 0; t < 50; t++) {
        assert_int_equal(fls_policy_import(p, buf, o), FL_OK);
        assert_int_equal(fls_policy_begin_round(p, t), FL_OK);
        assert_int_equal(fls_policy_report(p, 1, 2.0, 8), FL_OK); /* worse: explore */
        assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
        assert_int_equal(info.resampled, 1);
        flm_keepset A;
        assert_int_equal(fls_policy_current(p, 0, &A), FL_OK);
        assert_true(groups_even(&A, 1, 12, 3));
        assert_int_equal(flm_keepset_validate(&A, &a), FL_OK);
        flm_keepset_free(&A);
    }
    /* a checkpoint whose keep-set keeps the groups unevenly (4, 2, 3) is refused */
    static const uint32_t A_bad[9] = {0, 1, 2, 3, 4, 5, 8, 9, 10};
    for (int j = 0; j < 9; j++)
        put_u32(buf, a_at + 4 * (size_t)j, A_bad[j]);
    assert_int_equal(fls_policy_import(p, buf, o), FL_ERR_CHECKPOINT_FORMAT);
    fls_policy_free(p);
}

/* Exploration draws each unit with probability proportional to S + eps (k = 1 of 4). */
static void test_policy_afd_proportional(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:5-4-2");
    fls_policy *p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 99, tweak_k1);
    const double S[4] = {0.4, 0.3, 0.2, 0.0};
    uint8_t buf[256];
    size_t o = put_policy_head(buf, FLS_POLICY_AFD_SINGLE, 1, (const uint32_t[]){4, 1});
    o = put_u32(buf, o, FLS_POLICY_SHARED_CLIENT);
    buf[o++] = 1;               /* has_prev */
    o = put_f64(buf, o, 1.0);   /* l_prev */
    for (int u = 0; u < 4; u++)
        o = put_f64(buf, o, S[u]);
    buf[o++] = 1;               /* has A */
    o = put_u32(buf, o, 1);
    const size_t unit_at = o;   /* A's one unit */
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
        flm_keepset A;
        assert_int_equal(fls_policy_current(p, 0, &A), FL_OK);
        assert_int_equal(A.count[0], 1);
        hits[A.idx[0]]++;
        flm_keepset_free(&A);
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
    put_u32(buf, unit_at, 7); /* unit 7 of a 4-unit layer */
    assert_int_equal(fls_policy_import(p, buf, o), FL_ERR_CHECKPOINT_FORMAT);
    buf[8] = FLS_POLICY_AFD_MULTI;
    assert_int_equal(fls_policy_import(p, buf, o), FL_ERR_CHECKPOINT_MISMATCH);
    fls_policy_free(p);
}

static int keep_only_30(void *user, uint32_t client)
{
    (void)user;
    return client == 30;
}

/* fls_policy_client_bytes, the per-client state a host multiplies by the clients it may know
 * (fl_server's start estimate: server.max_clients of them), against what afd-multi really keeps
 * for 2000 clients between rounds after three rounds in which half improved (a map of codes) and
 * half did not (no map): 777 B a client held here, 971 said (a map for every client); a client
 * selected in a round holds its expanded state beside. The other policies keep nothing per
 * client. The start's estimate left it out (100000 clients of this model: about 97 MB). */
static void test_policy_client_bytes(void **state)
{
    (void)state;
    enum { N = 2000 };
    const flm_arch a = arch_of("mlp:784-500-10");
    fls_policy *p = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    size_t sel = 0;
    const size_t rest = fls_policy_client_bytes(p, &sel);
    /* 500 units: a code byte each, a 63-byte bitmap, the record; 375 indexes and 500 doubles */
    assert_true(rest > 563 && rest < 2000);
    assert_int_equal(sel, 375 * 4 + 500 * 8);
    const size_t h0 = heap_in_use();
    for (uint32_t r = 0; r < 3; r++) {
        assert_int_equal(fls_policy_begin_round(p, r), FL_OK);
        for (uint32_t k = 1; k <= N; k++) {
            const flm_keepset *ks;
            assert_int_equal(fls_policy_keepset(p, k, &ks), FL_OK);
            assert_int_equal(fls_policy_report(p, k, 2.0 - (k % 2) * 0.1 * r, 10), FL_OK);
        }
        assert_int_equal(fls_policy_end_round(p, NULL), FL_OK);
    }
    const size_t h1 = heap_in_use();
    if (h0 && h1 > h0) {
        const double held = (double)(h1 - h0) / N;
        if (!((double)rest >= 0.75 * held && (double)rest <= 1.5 * held))
            fail_msg("afd-multi keeps %.0f B a client between rounds, said %zu", held, rest);
    }
    fls_policy_free(p);
    for (int kind = FLS_POLICY_FULL; kind <= FLS_POLICY_AFD_SINGLE; kind++) {
        fls_policy *q = policy_of((fls_policy_kind)kind, &a, 5, NULL);
        assert_int_equal(fls_policy_client_bytes(q, &sel), 0);
        assert_int_equal(sel, 0);
        fls_policy_free(q);
    }
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
    assert_true(cur_is(p, 10, &a1)); /* kept */
    assert_true(cur_is(p, 30, &c1)); /* untouched */
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

    /* A forgotten client has no state left (its scores, loss and keep-set), the others keep
     * theirs, and the export is smaller by it. */
    fls_policy_forget(p, 20);
    fls_policy_forget(p, 99); /* unknown: nothing */
    assert_int_equal(fls_policy_scores(p, 20, S, U), FL_ERR_NOT_FOUND);
    assert_true(cur_none(p, 20));
    assert_true(cur_is(p, 10, &a1));
    assert_true(cur_is(p, 30, &c1));
    assert_int_equal(fls_policy_export(p, &buf, &len2), FL_OK);
    assert_true(len2 < len);
    free(buf);
    /* fls_policy_prune: the states of the clients `keep` refuses go (a restored checkpoint's, of
     * ids the host no longer knows), the others stay as they were. */
    assert_int_equal(fls_policy_prune(q, keep_only_30, NULL), 2);
    assert_int_equal(fls_policy_scores(q, 10, S, U), FL_ERR_NOT_FOUND);
    assert_true(cur_none(q, 20));
    assert_true(cur_is(q, 30, &c1));
    assert_int_equal(fls_policy_prune(q, keep_only_30, NULL), 0);
    flm_keepset *all[] = {&a0, &b0, &fa, &a1, &b1, &c1};
    for (size_t i = 0; i < 6; i++)
        flm_keepset_free(all[i]);
    fls_policy_free(p);
    fls_policy_free(q);
    fls_policy_free(fd);
    fls_policy_free(wrong);
}

/* afd-multi's export (version 2): a client whose submodel never helped has no score map in memory
 * or in the export (14 bytes and its keep-set's bitmaps); a map is written only when some score is
 * not 0, so an all-zero one, a bitmap with a bit past the last unit or with the wrong number of bits
 * are refused; version 1 is still read, an all-zero map of it becoming none. */
static void test_policy_export_compact(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:20-16-12-3"); /* droppable: 16 and 12 units, keep 12 and 9 */
    fls_policy *p = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    assert_int_equal(fls_policy_begin_round(p, 0), FL_OK);
    for (uint32_t c = 1; c <= 3; c++) {
        flm_keepset ks = get_ks(p, c);
        flm_keepset_free(&ks);
        assert_int_equal(fls_policy_report(p, c, 1.0, 1), FL_OK);
    }
    fls_policy_info info;
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(info.score_zero, 3 * 28);
    double S[28];
    assert_int_equal(fls_policy_scores(p, 2, S, 28), FL_OK);
    for (int u = 0; u < 28; u++)
        assert_true(S[u] == 0.0 && !signbit(S[u]));
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fls_policy_export(p, &buf, &len), FL_OK);
    /* magic, version, kind, n_drop, 2 x (units, k), count; 3 x (client, has_prev, l_prev, flags,
     * 2 + 2 bitmap bytes) */
    assert_int_equal(len, 36 + 3 * (14 + 4));
    assert_int_equal(buf[4], 2);
    fls_policy *q = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    assert_int_equal(fls_policy_import(q, buf, len), FL_OK);
    const size_t st0 = 36; /* the first state */
    assert_int_equal(buf[st0 + 13], 2); /* flags: a keep-set, no map */
    /* bitmaps: the 16-unit layer with none of its 12 bits, the 12-unit one with bits past 11 */
    uint8_t *bad = malloc(len + 28 * 8);
    memcpy(bad, buf, len);
    bad[st0 + 14] = bad[st0 + 15] = 0;
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    memcpy(bad, buf, len);
    uint8_t *lo = bad + st0 + 16, *hi = bad + st0 + 17; /* the 12-unit layer: units 0-7, 8-11 */
    if (*lo)
        *lo &= (uint8_t)(*lo - 1); /* one unit less... */
    else
        *hi &= (uint8_t)(*hi - 1);
    *hi |= 0x80;                  /* ...and unit 15 of 12 instead: the same bit count */
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    /* an all-zero map written out: refused in version 2 (one state, one encoding)... */
    memcpy(bad, buf, st0 + 13);
    bad[st0 + 13] = 3;
    memset(bad + st0 + 14, 0, 28 * 8);
    memcpy(bad + st0 + 14 + 28 * 8, buf + st0 + 14, len - st0 - 14);
    assert_int_equal(fls_policy_import(q, bad, len + 28 * 8), FL_ERR_CHECKPOINT_FORMAT);
    /* ...and read as none in version 1, re-exported as version 2 */
    fls_policy *one = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    uint8_t v1[512];
    size_t o = put_policy_head(v1, FLS_POLICY_AFD_MULTI, 2, (const uint32_t[]){16, 12, 12, 9});
    o = put_u32(v1, o, 1); /* one client */
    o = put_u32(v1, o, 7);
    v1[o++] = 0;
    o = put_f64(v1, o, 0.0);
    for (int u = 0; u < 28; u++)
        o = put_f64(v1, o, 0.0);
    v1[o++] = 1;
    o = put_u32(v1, o, 12);
    for (uint32_t u = 0; u < 12; u++)
        o = put_u32(v1, o, u + 4); /* units 4..15 */
    o = put_u32(v1, o, 9);
    for (uint32_t u = 0; u < 9; u++)
        o = put_u32(v1, o, u); /* units 0..8 */
    assert_int_equal(fls_policy_import(one, v1, o), FL_OK);
    uint8_t *v2 = NULL;
    size_t n2 = 0;
    assert_int_equal(fls_policy_export(one, &v2, &n2), FL_OK);
    assert_int_equal(n2, 36 + 14 + 4);
    assert_int_equal(v2[36 + 13], 2);
    const uint8_t bits[4] = {0xf0, 0xff, 0xff, 0x01};
    assert_memory_equal(v2 + 36 + 14, bits, 4);
    flm_keepset cur;
    assert_int_equal(fls_policy_current(one, 7, &cur), FL_OK);
    assert_int_equal(cur.idx[0], 4);
    assert_int_equal(cur.idx[cur.offset[1] + 8], 8);
    flm_keepset_free(&cur);
    free(v2);
    free(bad);
    free(buf);
    fls_policy_free(p);
    fls_policy_free(q);
    fls_policy_free(one);
}

/* Score maps at rest and in the export: one with at most 255 distinct values is a palette in
 * first-use order, one with more is written in full; each comes back bit for bit, and the other
 * spellings (a full map that fits a palette, a palette out of order, with an unused or a repeated
 * value) are refused. Built from a version-1 export of two clients over 300 units. */
static void test_policy_palette(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:20-300-3"); /* one droppable layer: 300 units, keep 225 */
    enum { U = 300, K = 225 };
    uint8_t *v1 = malloc(64 + 2 * (40 + U * 8 + K * 4));
    size_t o = put_policy_head(v1, FLS_POLICY_AFD_MULTI, 1, (const uint32_t[]){U, K});
    o = put_u32(v1, o, 2);
    double want[2][U];
    for (uint32_t c = 0; c < 2; c++) {
        o = put_u32(v1, o, c + 1);
        v1[o++] = 1;
        o = put_f64(v1, o, 1.0);
        for (int u = 0; u < U; u++) {
            /* client 1: 300 distinct values; client 2: two, the first use of 0.25 at unit 3 */
            want[c][u] = c == 0 ? 0.5 + 0.001 * u : (u % 4 == 3 ? 0.25 : 0.0);
            o = put_f64(v1, o, want[c][u]);
        }
        v1[o++] = 1;
        o = put_u32(v1, o, K);
        for (uint32_t j = 0; j < K; j++)
            o = put_u32(v1, o, j);
    }
    fls_policy *p = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    assert_int_equal(fls_policy_import(p, v1, o), FL_OK);
    double S[U];
    for (uint32_t c = 0; c < 2; c++) {
        assert_int_equal(fls_policy_scores(p, c + 1, S, U), FL_OK);
        assert_memory_equal(S, want[c], sizeof S);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fls_policy_export(p, &buf, &len), FL_OK);
    const size_t s1 = 28, bm = (U + 7) / 8, s2 = s1 + 14 + U * 8 + bm;
    assert_int_equal(buf[s1 + 13], 1 | 2);                 /* in full, a keep-set */
    assert_int_equal(buf[s2 + 13], 4 | 2);                 /* a palette, a keep-set */
    assert_int_equal(buf[s2 + 14], 2);                     /* P: 0.0, then 0.25 */
    assert_int_equal(len, s2 + 14 + 1 + 2 * 8 + U + bm);
    const size_t codes = s2 + 14 + 1 + 16;
    assert_int_equal(buf[codes + 2], 0);
    assert_int_equal(buf[codes + 3], 1);
    fls_policy *q = policy_of(FLS_POLICY_AFD_MULTI, &a, 5, NULL);
    assert_int_equal(fls_policy_import(q, buf, len), FL_OK);
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    assert_int_equal(fls_policy_export(q, &buf2, &len2), FL_OK);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    for (uint32_t c = 0; c < 2; c++) {
        assert_int_equal(fls_policy_scores(q, c + 1, S, U), FL_OK);
        assert_memory_equal(S, want[c], sizeof S);
    }
    assert_true(len >= codes + U);
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    /* a palette whose first code is not 0 (out of first-use order) */
    memcpy(bad, buf, len);
    bad[codes] = 1;
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    /* a value never used: every code 0 */
    memcpy(bad, buf, len);
    for (size_t u = 0; u < U; u++)
        bad[codes + u] = 0;
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    /* the same value twice */
    memcpy(bad, buf, len);
    memcpy(bad + s2 + 15 + 8, bad + s2 + 15, 8);
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    /* a full map of two values (it fits a palette) */
    memcpy(bad, buf, len);
    for (int u = 0; u < U; u++)
        put_f64(bad, s1 + 14 + (size_t)u * 8, u % 2 ? 0.5 : 0.75);
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    /* a palette of +0.0 and -0.0: every score is 0, a map that is never written */
    memcpy(bad, buf, len);
    put_f64(bad, s2 + 15 + 8, -0.0);
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    /* ...and bits 0 and 2 together */
    memcpy(bad, buf, len);
    bad[s1 + 13] = 1 | 2 | 4;
    assert_int_equal(fls_policy_import(q, bad, len), FL_ERR_CHECKPOINT_FORMAT);
    free(bad);
    free(buf);
    free(buf2);
    free(v1);
    fls_policy_free(p);
    fls_policy_free(q);
}

/* The score metrics of a round's end, which keep each map's share until the map changes, equal
 * the ones computed afresh over every score of every map (fls_policy_scores), round after round:
 * maps that change, that do not, that appear, and a forgotten one holding score_max. */
static void test_policy_score_stats(void **state)
{
    (void)state;
    const flm_arch a = arch_of("mlp:20-16-12-3");
    for (int acc = 0; acc < 2; acc++) {
        fls_policy_config cfg = fls_policy_config_default();
        cfg.kind = FLS_POLICY_AFD_MULTI;
        cfg.score_accumulate = acc;
        fls_policy *p = NULL;
        assert_int_equal(fls_policy_new(&cfg, &a, 3, &p), FL_OK);
        const size_t U = fls_policy_units(p);
        double S[28];
        int known[8] = {0};
        fl_rng r = fl_rng_stream(9, 0, 0, FL_RNG_TEST);
        for (uint32_t round = 0; round < 24; round++) {
            assert_int_equal(fls_policy_begin_round(p, round), FL_OK);
            for (uint32_t c = 0; c < 8; c++) {
                if (fl_rng_below(&r, 3) == 0 && round > 0)
                    continue; /* not selected this round */
                flm_keepset ks = get_ks(p, c);
                flm_keepset_free(&ks);
                known[c] = 1;
                assert_int_equal(fls_policy_report(p, c, 0.2 + 0.1 * fl_rng_below(&r, 10), 1), FL_OK);
            }
            if (round == 14) { /* the client holding score_max goes: the maximum moves down */
                double best = -1;
                uint32_t who = 0;
                for (uint32_t c = 0; c < 8; c++)
                    if (known[c] && fls_policy_scores(p, c, S, U) == FL_OK)
                        for (size_t u = 0; u < U; u++)
                            if (S[u] > best) {
                                best = S[u];
                                who = c;
                            }
                fls_policy_info skip;
                assert_int_equal(fls_policy_end_round(p, &skip), FL_OK);
                fls_policy_forget(p, who);
                known[who] = 0;
                assert_int_equal(fls_policy_begin_round(p, round + 100), FL_OK);
            }
            fls_policy_info info;
            assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
            double smax = 0.0, sum = 0.0;
            uint64_t n = 0, zero = 0, hist[FLS_POLICY_HIST_BINS] = {0};
            for (uint32_t c = 0; c < 8; c++) {
                if (!known[c])
                    continue;
                assert_int_equal(fls_policy_scores(p, c, S, U), FL_OK);
                for (size_t u = 0; u < U; u++) {
                    smax = S[u] > smax ? S[u] : smax;
                    sum += S[u];
                    zero += S[u] == 0.0;
                    n++;
                }
            }
            for (uint32_t c = 0; c < 8 && smax > 0; c++) {
                if (!known[c])
                    continue;
                assert_int_equal(fls_policy_scores(p, c, S, U), FL_OK);
                for (size_t u = 0; u < U; u++)
                    if (S[u] > 0.0) {
                        int b = (int)(S[u] / smax * FLS_POLICY_HIST_BINS);
                        hist[b >= FLS_POLICY_HIST_BINS ? FLS_POLICY_HIST_BINS - 1 : b]++;
                    }
            }
            assert_true(info.score_max == smax);
            assert_int_equal(info.score_zero, zero);
            assert_true(fabs(info.score_mean - sum / (double)n) <= 1e-12 * (1 + sum / (double)n));
            assert_memory_equal(info.hist, hist, sizeof hist);
        }
        fls_policy_free(p);
    }
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

/* ---- the round engine: a small simulated client ----------------------------------------------- */

/* Messages a client sends, kept so that a test can deliver them in any order. */
typedef struct umsg {
    uint32_t key;
    flp_msg m;
} umsg;

typedef struct ulist {
    umsg *v;
    size_t n, cap;
} ulist;

static void ulist_push(ulist *l, uint32_t key, const flp_msg *m)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n].key = key;
    l->v[l->n].m = *m;
    l->n++;
}

static void ulist_free(ulist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        flp_msg *m = &l->v[i].m;
        if (m->type == FLP_CHUNK)
            free((void *)m->chunk.payload);
        if (m->type == FLP_UPDATE) {
            for (uint32_t t = 0; t < m->update.n_tensors; t++)
                free((void *)m->update.tensors[t].name);
            free((void *)m->update.tensors);
        }
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* m encoded and decoded by the wire layer (asserting both succeed); flp_msg_free the result. */
static flp_msg *wire_roundtrip(const flp_msg *m)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    char err[FLP_ERRBUF];
    assert_int_equal(flp_encode_alloc(&bytes, &len, m, NULL, err, sizeof err), FL_OK);
    flp_msg *out = NULL;
    assert_int_equal(flp_decode(&out, bytes, len, NULL, err, sizeof err), FL_OK);
    free(bytes);
    return out;
}

/* A client's local data: float features and labels. */
typedef struct simdata {
    float *x;
    int32_t *y;
    size_t n;
} simdata;

/* What a simulated client does with its Task: fetch and decode every chunk, rebuild the
 * submodel, train it on d (or, without data, add a scripted delta), and queue its Update and the
 * delta's chunks (uplink codec, up_chunk elements each: 0 = the Task's chunking, the only one a
 * server accepts) on out. */
static void client_work(fls_core *core, uint32_t key, const simdata *d, float scripted,
                        double scripted_loss, uint32_t up_chunk, ulist *out)
{
    flp_msg task0;
    assert_int_equal(fls_core_task(core, key, &task0), FL_OK);
    assert_int_equal(task0.type, FLP_TASK);
    /* Through the real wire: encode, decode (with its validation), use what arrived. */
    flp_msg *tmsg = wire_roundtrip(&task0);
    const flp_msg task = *tmsg;
    const flp_task *tk = &tmsg->task;
    flm_arch full = arch_of(tk->arch);
    int counts[FLM_MAX_LAYERS];
    for (uint32_t l = 0; l < tk->n_layers; l++)
        counts[l] = (int)tk->layers[l].n_units;
    flm_keepset ks;
    assert_int_equal(flm_keepset_alloc(&ks, &full, counts), FL_OK);
    for (uint32_t l = 0; l < tk->n_layers; l++)
        memcpy(ks.idx + ks.offset[l], tk->layers[l].units, counts[l] * sizeof *ks.idx);
    flm_submodel *sm;
    assert_int_equal(flm_submodel_new(&full, &ks, &sm), FL_OK);
    const flm_arch *sub = flm_submodel_arch(sm);
    assert_int_equal(tk->n_tensors, (uint32_t)sub->n_tensors);
    const size_t n = sub->n_params;
    float *w = malloc(n * sizeof *w), *w0 = malloc(n * sizeof *w0);
    const size_t cap = fls_core_task_chunk_bound(core);
    uint8_t *buf = malloc(cap);
    flz_ctx *z;
    assert_int_equal(flz_ctx_new(NULL, &z), FL_OK);
    for (uint32_t t = 0; t < tk->n_tensors; t++) {
        assert_int_equal(tk->tensors[t].numel, sub->tensors[t].numel);
        for (uint32_t i = 0; i < tk->tensors[t].n_chunks; i++) {
            size_t len;
            flp_chunk ch;
            assert_int_equal(fls_core_task_chunk(core, key, t, i, buf, cap, &len, &ch), FL_OK);
            flp_msg cm;
            memset(&cm, 0, sizeof cm);
            cm.version = FLP_VERSION;
            cm.type = FLP_CHUNK;
            cm.round = task.round;
            cm.sender = "";
            cm.chunk = ch;
            flp_msg *got = wire_roundtrip(&cm);
            assert_int_equal(got->chunk.payload_len, len);
            assert_int_equal(flz_decode(z, got->chunk.payload, got->chunk.payload_len,
                                        w + sub->tensors[t].offset + got->chunk.offset,
                                        got->chunk.count),
                             FL_OK);
            flp_msg_free(got);
        }
    }
    memcpy(w0, w, n * sizeof *w);
    double loss = scripted_loss;
    uint64_t ns = 10;
    if (d) {
        flm_model *m;
        assert_int_equal(flm_model_new(sub, (int)tk->train.batch_size, &m), FL_OK);
        const flm_samples smp = {d->x, NULL, d->y, NULL, d->n};
        const flm_sgd o = {tk->train.lr, tk->train.momentum, tk->train.weight_decay, 0.0f};
        fl_rng r = fl_rng_stream(1234, (uint32_t)task.round, key, FL_RNG_BATCH);
        assert_int_equal(flm_train_local(m, w, NULL, &smp, (int)tk->train.epochs, &o, &r, &loss),
                         FL_OK);
        flm_model_free(m);
        ns = d->n;
    } else {
        for (size_t j = 0; j < n; j++)
            w[j] += scripted * (float)(1 + j % 3);
    }
    for (size_t j = 0; j < n; j++)
        w[j] -= w0[j]; /* the delta */
    flz_spec up;
    assert_int_equal(flz_spec_parse(tk->up_codec, &up, NULL, 0), FL_OK);
    if (up_chunk == 0)
        up_chunk = tk->tensors[0].chunk_elems;
    flp_tensor_header *h = calloc((size_t)sub->n_tensors, sizeof *h);
    for (int t = 0; t < sub->n_tensors; t++) {
        h[t].name = strdup(sub->tensors[t].name);
        h[t].ndim = (uint32_t)sub->tensors[t].rank;
        for (int k = 0; k < sub->tensors[t].rank; k++)
            h[t].shape[k] = (uint64_t)sub->tensors[t].shape[k];
        h[t].chunk_elems = up_chunk;
        assert_int_equal(flp_tensor_header_fill(&h[t]), FL_OK);
    }
    flp_msg u;
    memset(&u, 0, sizeof u);
    u.version = FLP_VERSION;
    u.type = FLP_UPDATE;
    u.round = task.round;
    u.sender = "";
    u.update.model_version = tk->model_version;
    u.update.n_tensors = (uint32_t)sub->n_tensors;
    u.update.tensors = h;
    u.update.n_samples = ns;
    u.update.loss = loss;
    ulist_push(out, key, &u);
    for (int t = 0; t < sub->n_tensors; t++)
        for (uint32_t i = 0; i < h[t].n_chunks; i++) {
            const size_t off = (size_t)i * up_chunk;
            const size_t cnt = h[t].numel - off < up_chunk ? h[t].numel - off : up_chunk;
            const size_t bound = flz_encode_bound(&up, cnt);
            uint8_t *p = malloc(bound);
            size_t len;
            flz_params fp = {0};
            fp.seed = 77 + ((uint64_t)t << 32) + i;
            fp.round = (uint32_t)task.round;
            fp.client = key;
            assert_int_equal(flz_encode(z, &up, &fp, w + sub->tensors[t].offset + off, cnt, p,
                                        bound, &len),
                             FL_OK);
            flp_msg c;
            memset(&c, 0, sizeof c);
            c.version = FLP_VERSION;
            c.type = FLP_CHUNK;
            c.round = task.round;
            c.sender = "";
            c.chunk.dir = FLP_DIR_UP;
            c.chunk.tensor = (uint32_t)t;
            c.chunk.index = i;
            c.chunk.offset = off;
            c.chunk.count = (uint32_t)cnt;
            c.chunk.payload = p;
            c.chunk.payload_len = len;
            ulist_push(out, key, &c);
        }
    flz_ctx_free(z);
    flp_msg_free(tmsg);
    free(buf);
    free(w);
    free(w0);
    flm_submodel_free(sm);
    flm_keepset_free(&ks);
}

/* Delivers every message of l whose key is `key` (all keys when key == 0), in order; returns the
 * first non-OK status (FL_OK if none). */
static fl_status deliver(fls_core *core, const ulist *l, uint32_t key, double now)
{
    fl_status first = FL_OK;
    for (size_t i = 0; i < l->n; i++) {
        if (key && l->v[i].key != key)
            continue;
        const fl_status st = fls_core_on_message(core, l->v[i].key, &l->v[i].m, now);
        if (st != FL_OK && first == FL_OK)
            first = st;
    }
    return first;
}

/* The clients of the open round, from its TASK events (other events are counted). */
static size_t take_tasks(fls_core *core, uint32_t *keys, size_t cap, int *round_ends, int *evals)
{
    fls_event ev;
    size_t n = 0;
    while (fls_core_poll(core, &ev)) {
        if (ev.kind == FLS_EV_TASK && n < cap)
            keys[n++] = ev.client;
        if (ev.kind == FLS_EV_ROUND_END && round_ends)
            (*round_ends)++;
        if (ev.kind == FLS_EV_EVALUATE && evals)
            (*evals)++;
    }
    return n;
}

static fls_config small_config(void)
{
    fls_config c = fls_config_default();
    snprintf(c.arch, sizeof c.arch, "mlp:8-6-3");
    c.seed = 42;
    c.clients_per_round = 3;
    c.overcommit = 1.3;     /* ceil(3.9) = 4 selected */
    c.round_timeout_s = 60;
    c.chunk_elems = 7;      /* several chunks per tensor */
    return c;
}

static fls_core *core_with_clients(const fls_config *cfg, uint32_t n_clients)
{
    fls_core *core = NULL;
    assert_int_equal(fls_core_new(cfg, &core), FL_OK);
    for (uint32_t k = 1; k <= n_clients; k++)
        assert_int_equal(fls_core_client_join(core, k * 10, 100, 0.0), FL_OK);
    return core;
}

/* ---- allocation failure in the round engine --------------------------------------------------- */

/* malloc, calloc and realloc, wrapped (meson.build: --wrap): the g_alloc_fail-th allocation from
 * here on fails (1: the next); g_alloc_failed says one did. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
static long g_alloc_fail;
static int g_alloc_failed;
static int g_alloc_fail_all; /* while set, every allocation fails */

static int alloc_fails(void)
{
    if (g_alloc_fail_all) {
        g_alloc_failed = 1;
        return 1;
    }
    if (g_alloc_fail > 0 && --g_alloc_fail == 0) {
        g_alloc_failed = 1;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    return alloc_fails() ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return n && alloc_fails() ? NULL : __real_realloc(p, n); /* p stays the caller's */
}

/* What a run leaves that a user would see: its events in order, every round's metrics (JSON) and
 * the checkpoint's bytes at its end (model, optimizer state, policy state, round, version). */
typedef struct runlog {
    char text[32768];
    size_t len;
    uint8_t *ck;
    size_t ck_len;
    int diverged; /* an update was refused for the failure: another run, rightly */
} runlog;

static void runlog_drain(fls_core *core, runlog *lg, uint32_t *keys, size_t *n_keys)
{
    fls_event ev;
    *n_keys = 0;
    while (fls_core_poll(core, &ev)) {
        lg->len += (size_t)snprintf(lg->text + lg->len, sizeof lg->text - lg->len,
                                    "ev %d %u %llu\n", (int)ev.kind, ev.client,
                                    (unsigned long long)ev.round);
        if (ev.kind == FLS_EV_TASK)
            keys[(*n_keys)++] = ev.client;
        if (ev.kind == FLS_EV_ROUND_END) {
            char js[4096];
            fls_round_metrics_json(fls_core_last_metrics(core), js, sizeof js);
            lg->len += (size_t)snprintf(lg->text + lg->len, sizeof lg->text - lg->len, "%s\n", js);
        }
        assert_true(lg->len < sizeof lg->text - 1);
    }
}

/* A tick with the fail-th allocation in it failing (fail 0: none). A tick that fails is a clear
 * error (FL_ERR_NOMEM), and the host's next tick at the same time does what it would have done.
 * Returns whether an allocation failed. */
static int tick_failing(fls_core *core, double now, long fail)
{
    g_alloc_fail = fail;
    g_alloc_failed = 0;
    const fl_status st = fls_core_tick(core, now);
    const int failed = g_alloc_failed;
    g_alloc_fail = 0;
    g_alloc_failed = 0;
    if (st != FL_OK) {
        assert_true(failed);
        assert_int_equal(st, FL_ERR_NOMEM);
        assert_true(fls_core_tick_due(core) <= now); /* a host that waits on it ticks again */
        assert_int_equal(fls_core_tick(core, now), FL_OK);
    }
    return failed;
}

/* A close at quorum or by leaves failed (the round still open): fls_core_tick_due says at once,
 * and a tick closes the round (the host's, before the deadline). */
static void retry_failed_close(fls_core *core, double now)
{
    assert_true(fls_core_round_open(core));
    assert_true(fls_core_tick_due(core) == -INFINITY);
    assert_true(now < fls_core_deadline(core));
    assert_int_equal(fls_core_tick(core, now), FL_OK);
    assert_false(fls_core_round_open(core));
}

/* Three rounds of 4 of 6 clients (fedadam, so the optimizer has state): two report, with losses
 * that fall for some clients and rise for others (the AFD rule keeps and redraws), one is
 * mid-upload and one silent at the deadline, which closes the round; with what 2, round fr closes
 * at quorum instead, when the third update's last chunk lands; with what 3, once the other two
 * have left (nobody can still report). The fail-th allocation of the tick that starts (what 0) or
 * closes (what 1) round fr, or of that last chunk (what 2) or last leave (what 3), fails and the
 * host ticks again. Returns whether an allocation failed. */
static int rounds_failing(const fls_config *cfg, int what, uint64_t fr, long fail, runlog *lg)
{
    fls_core *core = core_with_clients(cfg, 6);
    memset(lg, 0, sizeof *lg);
    int failed = 0;
    double now = 1.0;
    for (uint64_t r = 0; r < 3; r++) {
        failed |= tick_failing(core, now, what == 0 && r == fr ? fail : 0);
        assert_true(fls_core_round_open(core));
        /* due at its deadline, whatever close failed and was retried in the round before */
        assert_true(fls_core_tick_due(core) == fls_core_deadline(core));
        uint32_t keys[16];
        size_t n;
        runlog_drain(core, lg, keys, &n);
        assert_int_equal(n, 4);
        ulist l = {0};
        for (size_t i = 0; i < n; i++) {
            const double loss = 2.0 - 0.25 * (double)r + ((keys[i] / 10) % 2 ? 0.4 * (double)r : 0);
            client_work(core, keys[i], NULL, 0.01f * (float)(i + 1), loss, 0, &l);
        }
        assert_int_equal(deliver(core, &l, keys[0], now + 1), FL_OK);
        assert_int_equal(deliver(core, &l, keys[1], now + 1), FL_OK);
        /* keys[2]: its Update and first chunk; all of it where the round closes at quorum,
         * its last chunk then with the failure */
        const int quorum = what == 2 && r == fr, exhaust = what == 3 && r == fr;
        size_t sent = 0, total = 0;
        for (size_t i = 0; i < l.n; i++)
            total += l.v[i].key == keys[2];
        for (size_t i = 0; i < l.n && !exhaust && sent < (quorum ? total : 2); i++) {
            if (l.v[i].key != keys[2])
                continue;
            sent++;
            g_alloc_fail = quorum && sent == total ? fail : 0;
            g_alloc_failed = 0;
            const fl_status st = fls_core_on_message(core, keys[2], &l.v[i].m, now + 1);
            const int f = g_alloc_failed;
            g_alloc_fail = 0;
            g_alloc_failed = 0;
            failed |= f;
            if (st == FL_OK)
                continue;
            assert_true(f);
            assert_int_equal(st, FL_ERR_NOMEM);
            if (fls_core_update_state(core, keys[2], r) == FLS_UPDATE_FAILED)
                lg->diverged = 1; /* the update was refused: rightly another run */
            else /* committed, the close at quorum failed: the host's next tick closes */
                retry_failed_close(core, now + 1);
        }
        if (exhaust) { /* the other two leave, the second with the failure, and come back */
            assert_int_equal(fls_core_client_leave(core, keys[2], now + 1), FL_OK);
            g_alloc_fail = fail;
            g_alloc_failed = 0;
            const fl_status st = fls_core_client_leave(core, keys[3], now + 1);
            const int f = g_alloc_failed;
            g_alloc_fail = 0;
            g_alloc_failed = 0;
            failed |= f;
            if (st != FL_OK) {
                assert_true(f);
                assert_int_equal(st, FL_ERR_NOMEM);
                retry_failed_close(core, now + 1);
            }
            assert_false(fls_core_round_open(core));
            assert_int_equal(fls_core_client_join(core, keys[2], 100, now + 1), FL_OK);
            assert_int_equal(fls_core_client_join(core, keys[3], 100, now + 1), FL_OK);
        }
        if (fls_core_round_open(core)) {
            now = fls_core_deadline(core);
            failed |= tick_failing(core, now, what == 1 && r == fr ? fail : 0);
        }
        assert_false(fls_core_round_open(core));
        runlog_drain(core, lg, keys, &n);
        ulist_free(&l);
        now += 1.0;
    }
    assert_int_equal(fls_core_round(core), 3);
    assert_int_equal(fls_core_model_version(core), 3);
    fls_ckpt k;
    assert_int_equal(fls_core_checkpoint(core, &k), FL_OK);
    assert_int_equal(fls_ckpt_serialize(&k, &lg->ck, &lg->ck_len), FL_OK);
    fls_ckpt_clear(&k);
    fls_core_free(core);
    return failed;
}

/* Every allocation of a round's start and close fails in turn, under every policy: the tick
 * reports it, and after the host's next tick the run is the one without the failure, bit for bit
 * (a close that failed after the server step had moved the model stepped it again when retried,
 * and a policy that had taken part of the round's losses refused the rest). Throughout,
 * fls_core_tick_due says the retry is due at once, and only until it succeeded. */
static void test_engine_alloc_failure(void **state)
{
    (void)state;
    static const struct {
        fls_policy_kind kind;
        int per_client;
    } pols[] = {{FLS_POLICY_FULL, 0}, {FLS_POLICY_FD, 1}, {FLS_POLICY_AFD_SINGLE, 0},
                {FLS_POLICY_AFD_MULTI, 0}};
    static runlog ref, got;
    for (size_t p = 0; p < sizeof pols / sizeof pols[0]; p++) {
        fls_config cfg = small_config();
        snprintf(cfg.arch, sizeof cfg.arch, "mlp:8-6-5-3");
        cfg.policy.kind = pols[p].kind;
        cfg.policy.fd_per_client = pols[p].per_client;
        cfg.opt = fls_opt_config_default(FLS_OPT_FEDADAM);
        for (int what = 0; what < 4; what++)
            for (uint64_t fr = 0; fr < 3; fr++) {
                assert_int_equal(rounds_failing(&cfg, what, fr, 0, &ref), 0);
                long fail = 1;
                for (; fail < 10000 && rounds_failing(&cfg, what, fr, fail, &got); fail++) {
                    if (!got.diverged &&
                        (strcmp(got.text, ref.text) != 0 || got.ck_len != ref.ck_len ||
                         memcmp(got.ck, ref.ck, ref.ck_len) != 0))
                        fail_msg("policy %s: allocation %ld of the %s of round %llu failed: "
                                 "another run than without the failure",
                                 fls_policy_kind_name(pols[p].kind), fail,
                                 what == 0   ? "start"
                                 : what == 1 ? "close"
                                 : what == 2 ? "quorum close"
                                             : "close by leaves",
                                 (unsigned long long)fr);
                    free(got.ck);
                }
                free(got.ck);
                free(ref.ck);
                assert_true(fail > 1 && fail < 10000); /* the tick allocated, and not forever */
            }
    }
}

/* Every allocation of a restore fails in turn (afd-multi: the policy state is the largest part):
 * a restore that fails leaves the engine as it was, one that succeeds holds the checkpoint. */
static void test_restore_alloc_failure(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:8-6-5-3");
    cfg.policy.kind = FLS_POLICY_AFD_MULTI;
    cfg.opt = fls_opt_config_default(FLS_OPT_FEDADAM);
    static runlog lg;
    assert_int_equal(rounds_failing(&cfg, 0, 0, 0, &lg), 0); /* lg.ck: three rounds in */
    fls_ckpt k;
    char err[200];
    assert_int_equal(fls_ckpt_parse(lg.ck, lg.ck_len, &k, err, sizeof err), FL_OK);
    long fail = 1;
    for (;; fail++) {
        fls_core *core = core_with_clients(&cfg, 6);
        fls_ckpt before, after;
        assert_int_equal(fls_core_checkpoint(core, &before), FL_OK);
        uint8_t *b0, *b1;
        size_t l0, l1;
        assert_int_equal(fls_ckpt_serialize(&before, &b0, &l0), FL_OK);
        g_alloc_fail = fail;
        g_alloc_failed = 0;
        const fl_status st = fls_core_restore(core, &k);
        const int failed = g_alloc_failed;
        g_alloc_fail = 0;
        assert_int_equal(fls_core_checkpoint(core, &after), FL_OK);
        assert_int_equal(fls_ckpt_serialize(&after, &b1, &l1), FL_OK);
        if (st == FL_OK) {
            assert_true(l1 == lg.ck_len && memcmp(b1, lg.ck, l1) == 0);
        } else {
            assert_int_equal(st, FL_ERR_NOMEM);
            assert_true(l1 == l0 && memcmp(b1, b0, l0) == 0);
        }
        free(b0);
        free(b1);
        fls_ckpt_clear(&before);
        fls_ckpt_clear(&after);
        fls_core_free(core);
        if (!failed)
            break;
    }
    assert_true(fail > 1);
    fls_ckpt_clear(&k);
    free(lg.ck);
}

static void test_config_digest(void **state)
{
    (void)state;
    fls_config a = small_config(), b = small_config();
    uint8_t da[FL_SHA256_LEN], db[FL_SHA256_LEN];
    assert_int_equal(fls_config_digest(&a, da), FL_OK);
    b.max_rounds = 99; /* operational: same digest */
    b.round_timeout_s = 5;
    assert_int_equal(fls_config_digest(&b, db), FL_OK);
    assert_memory_equal(da, db, FL_SHA256_LEN);
    b.seed = 43;
    assert_int_equal(fls_config_digest(&b, db), FL_OK);
    assert_memory_not_equal(da, db, FL_SHA256_LEN);
    b = a;
    b.policy.keep_p = 0.5;
    assert_int_equal(fls_config_digest(&b, db), FL_OK);
    assert_memory_not_equal(da, db, FL_SHA256_LEN);
    b = a;
    snprintf(b.up_codec, sizeof b.up_codec, "q4");
    snprintf(a.up_codec, sizeof a.up_codec, "q4b256"); /* canonical forms digest alike */
    assert_int_equal(fls_config_digest(&a, da), FL_OK);
    assert_int_equal(fls_config_digest(&b, db), FL_OK);
    assert_memory_equal(da, db, FL_SHA256_LEN);
    char err[200];
    b.overcommit = 0.5;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    assert_non_null(strstr(err, "overcommit"));
    b = a;
    b.opt.lr = -1.0f;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    assert_non_null(strstr(err, "opt"));
    b = a;
    b.agg.frac_bits = 99;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    assert_non_null(strstr(err, "agg"));
    /* a robust mode keeps at most max_updates (0: 256) updates a round: not fewer than the
     * quorum; the mean keeps none */
    b = a;
    b.clients_per_round = 257;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_OK);
    b.agg.mode = FLS_AGG_MEDIAN;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    assert_non_null(strstr(err, "agg.max_updates (256) is below clients_per_round (257)"));
    b.agg.max_updates = 257;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_OK);
    /* a quorum above the round's weight budget (frac_bits 40, max_abs_log2 10: 4096 samples in
     * all) left each update a cap of 0 samples, and every update was refused without a word */
    b = a;
    b.agg.frac_bits = 40;
    b.agg.max_abs_log2 = 10;
    b.clients_per_round = 4096;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_OK);
    b.clients_per_round = 5000;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    assert_non_null(strstr(err, "clients_per_round (5000) is above the aggregator's weight budget "
                                "of a round (4096 samples"));
    /* mlp:8-6-3 has one droppable layer: an override for a second one would be ignored */
    b = a;
    b.policy.keep_p_layer[0] = 0.5;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_OK);
    b.policy.keep_p_layer[1] = 0.5;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    assert_non_null(strstr(err, "keep_p_layer[1]"));
    b = a;
    snprintf(b.down_codec, sizeof b.down_codec, "q3");
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    /* The wire carries at most 2^16 chunks a tensor: mlp:784-200-10's dense0.w (156,800 elements)
     * needs chunks of at least 3 elements; before 2026-12-06 a smaller chunk_elems was taken and
     * every Task failed to encode, the run going on with no update in any round. */
    flm_arch big;
    assert_int_equal(flm_arch_parse("mlp:784-200-10", &big, NULL, 0), FL_OK);
    int t = -2;
    assert_int_equal(fls_chunk_elems_min(&big, &t), 3);
    assert_string_equal(big.tensors[t].name, "dense0.w");
    flm_arch small;
    assert_int_equal(flm_arch_parse("mlp:8-6-3", &small, NULL, 0), FL_OK);
    assert_int_equal(fls_chunk_elems_min(&small, NULL), 1);
    b = a;
    snprintf(b.arch, sizeof b.arch, "mlp:784-200-10");
    b.chunk_elems = 2;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
    assert_string_equal(err, "chunk_elems 2 cuts tensor dense0.w of mlp:784-200-10 (156800 "
                             "elements) into 78400 chunks, more than the 65536 a tensor the wire "
                             "carries: it must be at least 3");
    assert_int_equal(fls_chunk_elems_refusal(&big, 3, err, sizeof err), 0);
    fls_core *none = NULL;
    assert_int_equal(fls_core_new(&b, &none), FL_ERR_CONFIG);
    assert_null(none);
    b.chunk_elems = 3;
    assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_OK);
    /* the downlink carries weights: no stage that zeroes some of them; the uplink takes both */
    static const char *const no_down[] = {"topk0.1", "topk0.5+q8+zstd", "sub0.5", "rot+sub0.3+q8"};
    for (size_t i = 0; i < sizeof no_down / sizeof no_down[0]; i++) {
        b = a;
        snprintf(b.down_codec, sizeof b.down_codec, "%s", no_down[i]);
        assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_ERR_CONFIG);
        assert_non_null(strstr(err, no_down[i][0] == 't' ? "down_codec: topk keeps only the "
                                                           "largest weights"
                                                         : "down_codec: sub zeroes weights"));
        b = a;
        snprintf(b.up_codec, sizeof b.up_codec, "%s", no_down[i]);
        assert_int_equal(fls_config_validate(&b, err, sizeof err), FL_OK);
    }
    b = a;
    snprintf(b.down_codec, sizeof b.down_codec, "topk0.1");
    fls_core *core = NULL;
    assert_int_equal(fls_core_new(&b, &core), FL_ERR_CONFIG);
    assert_null(core);
    /* Metrics render as JSON with null for NaN. */
    fls_round_metrics m;
    memset(&m, 0, sizeof m);
    m.mean_loss = NAN;
    m.closed_by = FLS_CLOSE_QUORUM;
    char js[1024];
    const size_t n = fls_round_metrics_json(&m, js, sizeof js);
    assert_int_equal(n, strlen(js));
    assert_non_null(strstr(js, "\"mean_loss\":null"));
    assert_non_null(strstr(js, "\"closed_by\":\"quorum\""));
}

static void drain_outbox(fls_core *core)
{
    fls_event ev;
    while (fls_core_poll(core, &ev)) {
    }
}

/* fls_core_tick_due says when a tick has work, and exactly then: INFINITY while too few able
 * clients are connected (one below the memory a submodel needs does not count), at once
 * (-INFINITY) when a tick would start a round or end the run, the deadline while a round is open.
 * A host that waits on it (fl_server's reactor since 2026-12-07) starts and closes rounds without
 * a periodic timer, and never spins on a due time that a tick would not move on. */
static void test_engine_tick_due(void **state)
{
    (void)state;
    const fls_config cfg = small_config(); /* 3 clients a round, deadline 60 s */
    fls_core *core = NULL;
    assert_int_equal(fls_core_new(&cfg, &core), FL_OK);
    assert_true(fls_core_tick_due(core) == INFINITY);
    assert_int_equal(fls_core_client_join(core, 10, 100, 0.0), FL_OK);
    assert_int_equal(fls_core_client_join(core, 20, 100, 0.0), FL_OK);
    assert_int_equal(fls_core_client_join(core, 30, 100, 0.0), FL_OK);
    assert_int_equal(fls_core_client_memory(core, 30, 1), FL_OK); /* too small: not able */
    assert_true(fls_core_tick_due(core) == INFINITY);
    assert_int_equal(fls_core_tick(core, 0.5), FL_OK); /* nothing to do, as it said */
    assert_false(fls_core_round_open(core));
    assert_true(fls_core_tick_due(core) == INFINITY);
    assert_int_equal(fls_core_client_join(core, 40, 100, 0.7), FL_OK);
    assert_true(fls_core_tick_due(core) == -INFINITY);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_true(fls_core_tick_due(core) == 61.0);
    assert_true(fls_core_tick_due(core) == fls_core_deadline(core));
    drain_outbox(core);
    assert_int_equal(fls_core_tick(core, 60.9), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_int_equal(fls_core_tick(core, 61.0), FL_OK);
    assert_false(fls_core_round_open(core));
    drain_outbox(core);
    if (cfg.eval_every) { /* the evaluation's report alone moves the run on */
        assert_true(fls_core_tick_due(core) == INFINITY);
        assert_int_equal(fls_core_report_eval(core, 0, 0.5, 1.0, 61.0), FL_OK);
        drain_outbox(core);
    }
    assert_true(fls_core_tick_due(core) == -INFINITY); /* round 1 can start at once */
    assert_int_equal(fls_core_tick(core, 61.0), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_true(fls_core_tick_due(core) == 121.0);
    assert_true(fls_core_tick_due(NULL) == INFINITY);
    fls_core_free(core);
}

static void test_engine_quorum_and_late(void **state)
{
    (void)state;
    const fls_config cfg = small_config();
    fls_core *core = core_with_clients(&cfg, 6);
    float before[200];
    memcpy(before, fls_core_params(core), fls_core_arch(core)->n_params * sizeof(float));
    assert_false(fls_core_round_open(core));
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    assert_true(fls_core_round_open(core));
    uint32_t keys[16];
    const size_t n = take_tasks(core, keys, 16, NULL, NULL);
    assert_int_equal(n, 4);
    ulist l = {0};
    for (size_t i = 0; i < n; i++)
        client_work(core, keys[i], NULL, 0.01f * (float)(i + 1), 1.0, 0, &l);
    /* Three complete updates close the round at quorum; the fourth is late. */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(deliver(core, &l, keys[i], 2.0), FL_OK);
    assert_false(fls_core_round_open(core));
    assert_int_equal(deliver(core, &l, keys[3], 2.5), FL_ERR_ROUND_CLOSED);
    int ends = 0;
    take_tasks(core, keys, 0, &ends, NULL);
    assert_int_equal(ends, 1);
    const fls_round_metrics *m = fls_core_last_metrics(core);
    assert_non_null(m);
    assert_int_equal(m->closed_by, FLS_CLOSE_QUORUM);
    assert_int_equal(m->selected, 4);
    assert_int_equal(m->quorum, 3);
    assert_int_equal(m->reported, 3);
    assert_int_equal(m->late, 1);
    assert_int_equal(m->failed, 0);
    assert_int_equal(m->samples, 30);
    assert_true(m->bytes_down > 0 && m->bytes_up > 0);
    assert_true(m->duration_s == 1.0);
    assert_true(m->mean_loss == 1.0);
    assert_int_equal(fls_core_model_version(core), 1);
    assert_int_equal(fls_core_round(core), 1);
    /* FedAvg of full-model deltas (0.01, 0.02, 0.03) * (1 + j % 3), equal weights: +0.02 * .. */
    const float *after = fls_core_params(core);
    for (size_t j = 0; j < fls_core_arch(core)->n_params; j++)
        assert_true(fabsf(after[j] - before[j] - 0.02f * (float)(1 + j % 3)) < 1e-5f);
    /* The late client's upload is refused, but it is no rejected message of the next round:
     * an over-committed round's straggler is that round's `late` (an operator saw them as
     * rejected input, round after round). */
    assert_int_equal(fls_core_tick(core, 3.0), FL_OK);
    assert_true(fls_core_round_open(core));
    /* ... but a committed client's replay of its round-0 update is rejected input (its Update
     * header and its chunks: 1 + chunks messages, as many as the late one sent) */
    size_t replayed = 0;
    for (size_t i = 0; i < l.n; i++)
        replayed += l.v[i].key == keys[0];
    assert_int_equal(deliver(core, &l, keys[0], 3.5), FL_ERR_ROUND_CLOSED);
    ulist_free(&l);
    memset(&l, 0, sizeof l);
    const size_t n2 = take_tasks(core, keys, 16, NULL, NULL);
    assert_int_equal(n2, 4);
    for (size_t i = 0; i < n2; i++)
        client_work(core, keys[i], NULL, 0.01f, 1.0, 0, &l);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(deliver(core, &l, keys[i], 4.0), FL_OK);
    take_tasks(core, keys, 0, &ends, NULL);
    m = fls_core_last_metrics(core);
    assert_int_equal(m->round, 1);
    assert_int_equal(m->reported, 3);
    assert_int_equal(m->rejected, replayed);
    ulist_free(&l);
    fls_core_free(core);
}

/* Clients that announce less memory than a submodel needs (fls_core_client_memory, the Hello's
 * memory_bytes) are never selected and do not count towards the clients a round waits for; 0
 * means "not said". The need is flm_train_memory_need of the policy's keep counts and the up
 * codec's residual. */
static void test_engine_memory_selection(void **state)
{
    (void)state;
    fls_config cfg = small_config(); /* mlp:8-6-3, 75 parameters, policy full; 4 selected of 6 */
    fls_core *core = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_train_memory(core), 16 * 75);
    assert_int_equal(fls_core_client_memory(core, 20, 1199), FL_OK);
    assert_int_equal(fls_core_client_memory(core, 40, 100), FL_OK);
    assert_int_equal(fls_core_client_memory(core, 30, 1200), FL_OK);
    assert_int_equal(fls_core_client_memory(core, 50, 0), FL_OK);
    assert_int_equal(fls_core_client_memory(core, 99, 1), FL_ERR_UNKNOWN_CLIENT);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    assert_true(fls_core_round_open(core));
    uint32_t keys[16];
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    const uint32_t able[4] = {10, 30, 50, 60};
    for (int i = 0; i < 4; i++)
        assert_int_equal(keys[i], able[i]);
    fls_core_free(core);

    /* fd keeping 3 of the 6 hidden units: 8*3+3 + 3*3+3 = 39 parameters; top-k adds the residual
     * and its rewind copy, two floats per parameter of the full model */
    cfg.policy.kind = FLS_POLICY_FD;
    cfg.policy.keep_p = 0.5;
    snprintf(cfg.up_codec, sizeof cfg.up_codec, "topk0.1+q8");
    assert_int_equal(fls_core_new(&cfg, &core), FL_OK);
    assert_int_equal(fls_core_train_memory(core), 16 * 39 + 8 * 75);
    fls_core_free(core);

    /* A round waits while too few clients can take its Tasks; the count follows leaves, joins
     * (a rejoining client keeps what it said) and a new announcement. */
    cfg = small_config();
    cfg.overcommit = 1.0;
    core = core_with_clients(&cfg, 3);
    assert_int_equal(fls_core_client_memory(core, 20, 100), FL_OK);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    assert_false(fls_core_round_open(core));
    assert_int_equal(fls_core_client_leave(core, 20, 2.0), FL_OK);
    assert_int_equal(fls_core_client_join(core, 40, 100, 2.0), FL_OK);
    assert_int_equal(fls_core_tick(core, 2.0), FL_OK);
    assert_true(fls_core_round_open(core)); /* 10, 30, 40 */
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 3);
    assert_int_equal(keys[2], 40);
    fls_core_free(core);
    core = core_with_clients(&cfg, 3);
    assert_int_equal(fls_core_client_memory(core, 20, 100), FL_OK);
    assert_int_equal(fls_core_client_leave(core, 20, 1.0), FL_OK);
    assert_int_equal(fls_core_client_join(core, 20, 100, 1.0), FL_OK);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    assert_false(fls_core_round_open(core));
    assert_int_equal(fls_core_client_memory(core, 20, 0), FL_OK);
    assert_int_equal(fls_core_tick(core, 2.0), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 3);
    fls_core_free(core);
}

/* The afd-multi states in a checkpoint's policy record (fls_policy_export: magic, version, kind
 * and layer count as u32, two u32 a droppable layer, then the state count). */
static uint32_t policy_states(const fls_ckpt *k)
{
    assert_true(k->policy_len >= 20);
    const uint8_t *p = k->policy;
    const uint32_t n_drop = (uint32_t)p[12] | (uint32_t)p[13] << 8 | (uint32_t)p[14] << 16 |
                            (uint32_t)p[15] << 24;
    const size_t at = 16 + 8 * (size_t)n_drop;
    assert_true(k->policy_len >= at + 4);
    return (uint32_t)p[at] | (uint32_t)p[at + 1] << 8 | (uint32_t)p[at + 2] << 16 |
           (uint32_t)p[at + 3] << 24;
}

/* fls_core_client_forget: a client that is not connected leaves the engine: its record at once,
 * its afd-multi state at once or, if the round under way selected it, when that round closes; a
 * key that joins again, even before, is a new client (a fresh keep-set, not the one it had).
 * Forgetting many between rounds compacts the table. */
static void test_engine_forget(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:8-64-3");
    cfg.policy.kind = FLS_POLICY_AFD_MULTI;
    cfg.policy.keep_p = 0.5;
    cfg.clients_per_round = 2;
    cfg.overcommit = 1.0;
    fls_core *core = core_with_clients(&cfg, 4); /* 10 .. 40 */
    assert_int_equal(fls_core_clients_known(core), 4);
    assert_int_equal(fls_core_client_forget(core, 10), FL_ERR_STATE); /* connected */
    assert_int_equal(fls_core_client_forget(core, 99), FL_ERR_UNKNOWN_CLIENT);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    uint32_t keys[64];
    assert_int_equal(take_tasks(core, keys, 64, NULL, NULL), 2);
    uint32_t other[2], n_other = 0;
    for (uint32_t k = 10; k <= 40; k += 10)
        if (k != keys[0] && k != keys[1])
            other[n_other++] = k;
    flp_msg t;
    assert_int_equal(fls_core_task(core, keys[0], &t), FL_OK);
    uint32_t was[32];
    assert_int_equal(t.task.layers[0].n_units, 32);
    memcpy(was, t.task.layers[0].units, sizeof was);
    /* a client the round did not select: gone at once */
    assert_int_equal(fls_core_client_leave(core, other[0], 2.0), FL_OK);
    assert_int_equal(fls_core_client_forget(core, other[0]), FL_OK);
    assert_int_equal(fls_core_clients_known(core), 3);
    assert_int_equal(fls_core_client_leave(core, other[0], 2.0), FL_ERR_UNKNOWN_CLIENT);
    /* a selected one: its update fails now and its record goes; the round may still read its
     * policy state, which goes when the round closes */
    assert_int_equal(fls_core_client_leave(core, keys[0], 2.0), FL_OK);
    assert_int_equal(fls_core_client_forget(core, keys[0]), FL_OK);
    assert_int_equal(fls_core_clients_known(core), 2);
    assert_int_equal(fls_core_client_memory(core, keys[0], 0), FL_ERR_UNKNOWN_CLIENT);
    /* its key joins again before that (the id again, or another id its host gives the key):
     * a new client, which must not inherit the state */
    assert_int_equal(fls_core_client_join(core, keys[0], 7, 2.5), FL_OK);
    assert_int_equal(fls_core_clients_known(core), 3);
    ulist l = {0};
    client_work(core, keys[1], NULL, 0.01f, 1.0, 0, &l);
    assert_int_equal(deliver(core, &l, keys[1], 3.0), FL_OK);
    assert_false(fls_core_round_open(core)); /* exhausted: the other selected one left */
    ulist_free(&l);
    take_tasks(core, keys + 2, 0, NULL, NULL);
    /* The round closed: keys[0]'s afd-multi state went with it, so the checkpoint taken now holds
     * keys[1]'s alone. Between rounds, keys[1]'s goes at once. */
    fls_ckpt k0, k1;
    assert_int_equal(fls_core_checkpoint(core, &k0), FL_OK);
    assert_int_equal(policy_states(&k0), 1);
    assert_int_equal(fls_core_client_leave(core, keys[1], 3.5), FL_OK);
    assert_int_equal(fls_core_client_forget(core, keys[1]), FL_OK);
    assert_int_equal(fls_core_checkpoint(core, &k1), FL_OK);
    assert_int_equal(policy_states(&k1), 0);
    fls_ckpt_clear(&k0);
    fls_ckpt_clear(&k1);
    assert_int_equal(fls_core_client_join(core, keys[1], 7, 3.5), FL_OK);
    /* other[1] leaves: round 1 selects keys[0] and keys[1]. Remembered, keys[0] would train the
     * keep-set it had (it reported nothing); forgotten, it is drawn afresh. */
    assert_int_equal(fls_core_client_leave(core, other[1], 4.0), FL_OK);
    assert_int_equal(fls_core_tick(core, 5.0), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_int_equal(take_tasks(core, keys + 2, 8, NULL, NULL), 2);
    assert_int_equal(fls_core_task(core, keys[0], &t), FL_OK);
    assert_int_equal(t.task.layers[0].n_units, 32);
    assert_memory_not_equal(was, t.task.layers[0].units, sizeof was);
    fls_core_free(core);

    /* 200 clients, 150 of them forgotten between rounds: the table is compacted and every lookup
     * still finds the right ones */
    cfg = small_config();
    cfg.clients_per_round = 40;
    cfg.overcommit = 1.0;
    core = core_with_clients(&cfg, 200);
    for (uint32_t k = 1; k <= 200; k++)
        if (k % 4) {
            assert_int_equal(fls_core_client_leave(core, k * 10, 1.0), FL_OK);
            assert_int_equal(fls_core_client_forget(core, k * 10), FL_OK);
        }
    assert_int_equal(fls_core_clients_known(core), 50);
    for (uint32_t k = 1; k <= 200; k++)
        assert_int_equal(fls_core_client_memory(core, k * 10, 0),
                         k % 4 ? FL_ERR_UNKNOWN_CLIENT : FL_OK);
    assert_int_equal(fls_core_connected(core), 50);
    assert_int_equal(fls_core_tick(core, 2.0), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_int_equal(take_tasks(core, keys, 64, NULL, NULL), 40);
    fls_core_free(core);
}

/* min_clients gates the start; shared keep-sets give every client the same encoded bytes, and
 * per-client keep-sets different ones. */
static void test_engine_start_and_shared_chunks(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    cfg.min_clients = 7;
    fls_core *core = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    assert_false(fls_core_round_open(core));
    assert_int_equal(fls_core_client_join(core, 70, 5, 1.0), FL_OK);
    assert_int_equal(fls_core_connected(core), 7);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    assert_true(fls_core_round_open(core));
    uint32_t keys[16];
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    const size_t cap = fls_core_task_chunk_bound(core);
    uint8_t *b1 = malloc(cap), *b2 = malloc(cap);
    size_t n1, n2;
    assert_int_equal(fls_core_task_chunk(core, keys[0], 0, 1, b1, cap, &n1, NULL), FL_OK);
    assert_int_equal(fls_core_task_chunk(core, keys[1], 0, 1, b2, cap, &n2, NULL), FL_OK);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    assert_int_equal(fls_core_task_chunk(core, keys[0], 0, 1, b1, 10, &n1, NULL),
                     FL_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(fls_core_task_chunk(core, keys[0], 99, 0, b1, cap, &n1, NULL),
                     FL_ERR_WIRE_CHUNK_RANGE);
    assert_int_equal(fls_core_task_chunk(core, 12345, 0, 0, b1, cap, &n1, NULL),
                     FL_ERR_NOT_SELECTED);
    fls_core_free(core);

    cfg = small_config();
    cfg.policy.kind = FLS_POLICY_FD;
    cfg.policy.fd_per_client = 1;
    core = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    flp_msg t1, t2;
    assert_int_equal(fls_core_task(core, keys[0], &t1), FL_OK);
    assert_int_equal(fls_core_task(core, keys[1], &t2), FL_OK);
    assert_int_equal(t1.task.layers[0].n_units, 5); /* round(0.75 * 6) = 4.5 -> 5 */
    assert_memory_not_equal(t1.task.layers[0].units, t2.task.layers[0].units,
                            5 * sizeof(uint32_t));
    assert_int_equal(fls_core_task_chunk(core, keys[0], 0, 0, b1, cap, &n1, NULL), FL_OK);
    assert_int_equal(fls_core_task_chunk(core, keys[1], 0, 0, b2, cap, &n2, NULL), FL_OK);
    assert_false(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    fls_core_free(core);
}

/* A client's Error about the open round (its training failed) counts its update as failed and
 * can close the round early; the client stays connected. Errors about anything else change
 * nothing. */
static void test_engine_client_error(void **state)
{
    (void)state;
    const fls_config cfg = small_config();
    fls_core *core = core_with_clients(&cfg, 6);
    fls_core_set_run_id(core, 0x77);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    uint32_t keys[16];
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    const uint64_t round = fls_core_round(core);
    flp_msg e = flp_msg_header(FLP_ERROR, round, NULL);
    e.error.code = FL_ERR_NUMERIC;
    e.error.message = "training diverged";
    e.error.run_id = 0x77; /* this run's task (0, not told, counts too: see keys[3] below) */
    uint32_t idle = 10;
    while (idle == keys[0] || idle == keys[1] || idle == keys[2] || idle == keys[3])
        idle += 10;
    assert_int_equal(fls_core_on_message(core, idle, &e, 1.5), FL_ERR_NOT_SELECTED);
    assert_int_equal(fls_core_on_message(core, 999, &e, 1.5), FL_ERR_UNKNOWN_CLIENT);
    flp_msg stale = e;
    stale.round = round + 1;
    assert_int_equal(fls_core_on_message(core, keys[0], &stale, 1.5), FL_ERR_ROUND_CLOSED);
    /* the same round of another run (a task of the server's previous start): not this one's */
    stale = e;
    stale.error.run_id = 0x66;
    assert_int_equal(fls_core_on_message(core, keys[1], &stale, 1.5), FL_ERR_ROUND_CLOSED);
    /* keys[0] reports, the other three fail: the round closes at the last failure, since no
     * selected client can still report (not at its deadline). */
    ulist l = {0};
    client_work(core, keys[0], NULL, 0.01f, 1.0, 0, &l);
    assert_int_equal(deliver(core, &l, keys[0], 2.0), FL_OK);
    assert_int_equal(fls_core_on_message(core, keys[0], &e, 2.0), FL_ERR_STATE); /* delivered */
    for (int i = 1; i < 4; i++) {
        assert_true(fls_core_round_open(core));
        e.error.run_id = i < 3 ? 0x77 : 0;
        assert_int_equal(fls_core_on_message(core, keys[i], &e, 2.0 + i), FL_OK);
        assert_int_equal(fls_core_on_message(core, keys[i], &e, 2.0 + i),
                         i < 3 ? FL_ERR_STATE : FL_ERR_ROUND_CLOSED);
    }
    assert_false(fls_core_round_open(core)); /* closed at 5.0, not at the deadline (61) */
    int ends = 0;
    take_tasks(core, keys, 0, &ends, NULL);
    assert_int_equal(ends, 1);
    const fls_round_metrics *m = fls_core_last_metrics(core);
    assert_int_equal(m->closed_by, FLS_CLOSE_EXHAUSTED);
    assert_int_equal(m->reported, 1);
    assert_int_equal(m->failed, 3);
    assert_true(m->t_end == 5.0);
    assert_int_equal(fls_core_connected(core), 6); /* nobody left */
    ulist_free(&l);
    fls_core_free(core);
}

/* Many selected clients fail one by one, in every way a selected client can (an aborted half
 * upload, a leave half-way through its upload, an absurd loss, an Error, a plain leave), a few
 * report: the round stays open until the last client that could still report fails, and closes
 * as exhausted exactly then. Three rounds, each started through an allocation failure (a start
 * undone half-way, its selection dropped) and the last one's closing leave failing too (a close
 * undone, retried by the next tick): the count of clients still due that decides exhaustion
 * (fls_core.c n_due) must stay true across both undos. */
static void test_engine_exhausted_one_by_one(void **state)
{
    (void)state;
    enum { NCL = 40, NSEL = 39 }; /* ceil(1.3 * 30) = 39 selected */
    fls_config cfg = small_config();
    cfg.clients_per_round = 30;
    cfg.policy.kind = FLS_POLICY_FD;
    cfg.policy.fd_per_client = 1; /* a Task of its own each: a start can fail half-way */
    fls_core *core = core_with_clients(&cfg, NCL);
    double now = 1.0;
    for (int r = 0; r < 3; r++) {
        int start_failed = 0;
        for (long fail = 1 + 7 * r; !start_failed && fail < 200; fail++)
            start_failed = tick_failing(core, now, fail) && fls_core_round_open(core);
        assert_true(start_failed); /* some start failed, then succeeded */
        assert_true(fls_core_round_open(core));
        uint32_t keys[NSEL + 1];
        assert_int_equal(take_tasks(core, keys, NSEL + 1, NULL, NULL), NSEL);
        /* keys[0], keys[1] report; keys[2], keys[3] are half-way through their uploads */
        ulist l = {0};
        for (int i = 0; i < 4; i++)
            client_work(core, keys[i], NULL, 0.01f, 1.0, 0, &l);
        assert_int_equal(deliver(core, &l, keys[0], now), FL_OK);
        assert_int_equal(deliver(core, &l, keys[1], now), FL_OK);
        for (int i = 2; i < 4; i++)
            for (size_t j = 0, sent = 0; j < l.n && sent < 2; j++)
                if (l.v[j].key == keys[i]) {
                    assert_int_equal(fls_core_on_message(core, keys[i], &l.v[j].m, now), FL_OK);
                    sent++;
                }
        ulist bad = {0};
        client_work(core, keys[4], NULL, 0.01f, -1.0, 0, &bad);
        flp_msg e = flp_msg_header(FLP_ERROR, fls_core_round(core), NULL);
        e.error.code = FL_ERR_NUMERIC;
        e.error.message = "training diverged";
        for (int i = 2; i < NSEL; i++) {
            assert_true(fls_core_round_open(core)); /* keys[i] could still report */
            const int last = i == NSEL - 1;
            fl_status st;
            if (i == 2) {
                st = fls_core_update_abort(core, keys[i], now);
            } else if (i == 3 || (i % 2 && !last) || (last && r == 2)) {
                g_alloc_fail_all = last; /* the closing leave's close fails (r == 2) */
                g_alloc_failed = 0;
                st = fls_core_client_leave(core, keys[i], now);
                const int f = g_alloc_failed;
                g_alloc_fail_all = 0;
                g_alloc_failed = 0;
                if (last) {
                    assert_true(f);
                    assert_int_equal(st, FL_ERR_NOMEM);
                    retry_failed_close(core, now);
                    st = FL_OK;
                }
                assert_int_equal(fls_core_client_join(core, keys[i], 100, now), FL_OK);
            } else if (i == 4) {
                st = fls_core_on_message(core, keys[i], &bad.v[0].m, now);
                assert_int_equal(st, FL_ERR_WIRE_FIELD);
                st = FL_OK;
            } else {
                st = fls_core_on_message(core, keys[i], &e, now);
            }
            assert_int_equal(st, FL_OK);
        }
        assert_false(fls_core_round_open(core)); /* closed by the last failure, at once */
        int ends = 0;
        take_tasks(core, keys, 0, &ends, NULL);
        assert_int_equal(ends, 1);
        const fls_round_metrics *m = fls_core_last_metrics(core);
        assert_int_equal(m->closed_by, FLS_CLOSE_EXHAUSTED);
        assert_int_equal(m->reported, 2);
        assert_int_equal(m->failed, NSEL - 2);
        assert_true(m->t_end == now); /* not the deadline */
        ulist_free(&bad);
        ulist_free(&l);
        now += 1.0;
    }
    fls_core_free(core);
}

/* An Update must chunk its tensors as the Task did (codec.chunk_elems): a client choosing tiny
 * chunks would multiply the server's fixed cost per message. Refused at the header with
 * FL_ERR_WIRE_SHAPE, before any chunk; the client may still send its update chunked as told. */
static void test_engine_update_chunking(void **state)
{
    (void)state;
    const fls_config cfg = small_config(); /* chunk_elems 7 */
    fls_core *core = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_tick(core, 1.0), FL_OK);
    uint32_t keys[16];
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    for (uint32_t ce = 1; ce <= 8; ce += 7) { /* smaller and larger than the Task's */
        ulist bad = {0};
        client_work(core, keys[0], NULL, 0.01f, 1.0, ce, &bad);
        assert_int_equal(bad.v[0].m.type, FLP_UPDATE);
        assert_int_equal(fls_core_on_message(core, keys[0], &bad.v[0].m, 2.0), FL_ERR_WIRE_SHAPE);
        ulist_free(&bad);
    }
    ulist l = {0};
    client_work(core, keys[0], NULL, 0.01f, 1.0, 0, &l);
    assert_int_equal(deliver(core, &l, keys[0], 2.5), FL_OK);
    ulist_free(&l);
    fls_core_free(core);
}

/* The client table: which clients a round draws depends on the set of connected clients, not on
 * the order in which they joined (in one go, or some of them while a round ran), and joins,
 * leaves and rejoins keep the connected count. */
static void test_engine_client_table(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    cfg.clients_per_round = 40;
    cfg.overcommit = 1.0;
    enum { N1 = 6000, N2 = 3000 };
    uint32_t *k = malloc((N1 + N2) * sizeof *k), *perm = malloc((N1 + N2) * sizeof *perm);
    for (uint32_t i = 0; i < N1 + N2; i++)
        k[i] = (uint32_t)(((uint64_t)i * 2654435761u) % 4294967291u); /* distinct, scattered */
    for (uint32_t i = 0; i < N1 + N2; i++)
        perm[i] = N1 + N2 - 1 - i;
    fls_core *a = NULL, *b = NULL;
    assert_int_equal(fls_core_new(&cfg, &a), FL_OK);
    assert_int_equal(fls_core_new(&cfg, &b), FL_OK);
    /* a: the first N1 in index order; b: the same in reverse order, some of them twice. */
    for (uint32_t i = 0; i < N1; i++)
        assert_int_equal(fls_core_client_join(a, k[i], 10, 0.0), FL_OK);
    for (uint32_t i = N2; i < N1 + N2; i++) {
        assert_int_equal(fls_core_client_join(b, k[perm[i]], 10, 0.0), FL_OK);
        if (i % 7 == 0)
            assert_int_equal(fls_core_client_join(b, k[perm[i]], 10, 0.0), FL_OK);
    }
    assert_int_equal(fls_core_connected(a), N1);
    assert_int_equal(fls_core_connected(b), N1);
    assert_int_equal(fls_core_client_leave(a, 7, 0.0), FL_ERR_UNKNOWN_CLIENT);
    uint32_t sa[64], sb[64];
    assert_int_equal(fls_core_tick(a, 1.0), FL_OK);
    assert_int_equal(fls_core_tick(b, 1.0), FL_OK);
    size_t na = take_tasks(a, sa, 64, NULL, NULL), nb = take_tasks(b, sb, 64, NULL, NULL);
    assert_int_equal(na, 40);
    assert_int_equal(nb, 40);
    assert_memory_equal(sa, sb, na * sizeof *sa);
    /* While the round runs: N2 more join (a: in order, b: backwards), every third of the first
     * ones leaves, and every ninth of those comes back. */
    for (uint32_t i = N1; i < N1 + N2; i++)
        assert_int_equal(fls_core_client_join(a, k[i], 10, 1.5), FL_OK);
    for (uint32_t i = 0; i < N2; i++)
        assert_int_equal(fls_core_client_join(b, k[perm[i]], 10, 1.5), FL_OK);
    uint32_t left = 0;
    for (uint32_t i = 0; i < N1; i += 3, left++) {
        assert_int_equal(fls_core_client_leave(a, k[i], 1.5), FL_OK);
        assert_int_equal(fls_core_client_leave(b, k[i], 1.5), FL_OK);
    }
    for (uint32_t i = 0; i < N1; i += 27, left--) {
        assert_int_equal(fls_core_client_join(a, k[i], 10, 1.6), FL_OK);
        assert_int_equal(fls_core_client_join(b, k[i], 10, 1.6), FL_OK);
    }
    assert_int_equal(fls_core_connected(a), N1 + N2 - left);
    assert_int_equal(fls_core_connected(b), N1 + N2 - left);
    /* The next round (the first closes at its deadline): the same draw again. */
    for (int r = 0; r < 3; r++) {
        const double t = 100.0 + 100.0 * r;
        assert_int_equal(fls_core_tick(a, t), FL_OK);
        assert_int_equal(fls_core_tick(b, t), FL_OK);
        if (!fls_core_round_open(a)) {
            assert_int_equal(fls_core_tick(a, t + 1), FL_OK);
            assert_int_equal(fls_core_tick(b, t + 1), FL_OK);
        }
        na = take_tasks(a, sa, 64, NULL, NULL);
        nb = take_tasks(b, sb, 64, NULL, NULL);
        assert_int_equal(na, 40);
        assert_int_equal(na, nb);
        assert_memory_equal(sa, sb, na * sizeof *sa);
        for (size_t i = 0; i < na; i++) { /* no client that left is drawn */
            uint32_t j = 0;
            while (j < N1 + N2 && k[j] != sa[i])
                j++;
            assert_true(j < N1 + N2); /* a client that joined */
            assert_false(j < N1 && j % 3 == 0 && j % 27 != 0);
        }
    }
    fls_core_free(a);
    fls_core_free(b);
    free(k);
    free(perm);
}

/* The deadline holds to the message, not to the host's timer: an update that comes after it,
 * with no tick in between (fl_server ticks every 50 ms), finds the round closed at its deadline
 * and is late, as it would be after a tick; one just before it is aggregated. Before, the first
 * was aggregated and the round closed by quorum (here: every selected client then reported). */
static void test_engine_deadline_holds_to_message(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    cfg.overcommit = 1.0; /* 3 selected, the quorum */
    fls_core *core = core_with_clients(&cfg, 6);
    uint32_t keys[16];
    assert_int_equal(fls_core_tick(core, 10.0), FL_OK);
    const size_t n = take_tasks(core, keys, 16, NULL, NULL);
    assert_int_equal(n, 3);
    ulist l = {0};
    for (size_t i = 0; i < n; i++)
        client_work(core, keys[i], NULL, 0.01f, 2.0, 0, &l);
    assert_int_equal(deliver(core, &l, keys[0], 11.0), FL_OK);
    assert_int_equal(deliver(core, &l, keys[1], 69.99), FL_OK); /* the deadline: 10 + 60 */
    assert_true(fls_core_round_open(core));
    assert_int_equal(deliver(core, &l, keys[2], 70.02), FL_ERR_ROUND_CLOSED);
    assert_false(fls_core_round_open(core));
    int ends = 0;
    take_tasks(core, keys, 0, &ends, NULL);
    assert_int_equal(ends, 1);
    const fls_round_metrics *m = fls_core_last_metrics(core);
    assert_int_equal(m->closed_by, FLS_CLOSE_DEADLINE);
    assert_int_equal(m->reported, 2);
    assert_int_equal(m->late, 1);
    assert_int_equal(m->rejected, 0); /* a straggler's upload is no rejected message */
    assert_true(m->duration_s == 60.0);
    /* A message after a closed round's deadline changes nothing more (no round is open). */
    assert_int_equal(deliver(core, &l, keys[2], 80.0), FL_ERR_ROUND_CLOSED);
    /* A tick that comes after the deadline closes the round at it too. */
    assert_int_equal(fls_core_tick(core, 100.0), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_int_equal(fls_core_tick(core, 160.04), FL_OK);
    assert_false(fls_core_round_open(core));
    m = fls_core_last_metrics(core);
    assert_int_equal(m->closed_by, FLS_CLOSE_DEADLINE);
    assert_true(m->duration_s == 60.0);
    ulist_free(&l);
    fls_core_free(core);
}

static void test_engine_deadline(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    cfg.eval_every = 1;
    cfg.max_rounds = 2;
    fls_core *core = core_with_clients(&cfg, 6);
    uint32_t keys[16];
    assert_int_equal(fls_core_tick(core, 10.0), FL_OK);
    const size_t n = take_tasks(core, keys, 16, NULL, NULL);
    ulist l = {0};
    client_work(core, keys[0], NULL, 0.01f, 2.0, 0, &l);
    assert_int_equal(deliver(core, &l, keys[0], 11.0), FL_OK);
    assert_true(fls_core_deadline(core) == 70.0);
    assert_int_equal(fls_core_tick(core, 69.9), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_int_equal(fls_core_tick(core, 70.0), FL_OK); /* the deadline: 10 + 60 */
    assert_false(fls_core_round_open(core));
    assert_true(isinf(fls_core_deadline(core)));
    /* Evaluation requested; no new round until it is reported. */
    int ends = 0, evals = 0;
    take_tasks(core, keys, 0, &ends, &evals);
    assert_int_equal(evals, 1);
    assert_int_equal(ends, 0);
    assert_int_equal(fls_core_tick(core, 71.0), FL_OK);
    assert_false(fls_core_round_open(core));
    fls_ckpt ck;
    assert_int_equal(fls_core_checkpoint(core, &ck), FL_ERR_STATE);
    assert_int_equal(fls_core_report_eval(core, 5, 0.5, 1.0, 71.0), FL_ERR_STATE);
    assert_int_equal(fls_core_report_eval(core, 0, 0.5, 1.0, 71.0), FL_OK);
    take_tasks(core, keys, 0, &ends, &evals);
    assert_int_equal(ends, 1);
    const fls_round_metrics *m = fls_core_last_metrics(core);
    assert_int_equal(m->closed_by, FLS_CLOSE_DEADLINE);
    assert_int_equal(m->reported, 1);
    assert_int_equal(m->late, n - 1);
    assert_true(m->evaluated && m->test_accuracy == 0.5);
    assert_true(m->duration_s == 60.0);
    /* Round 1 with nobody reporting: the model does not move; then max_rounds ends the run. */
    float before[200];
    memcpy(before, fls_core_params(core), fls_core_arch(core)->n_params * sizeof(float));
    assert_int_equal(fls_core_tick(core, 72.0), FL_OK);
    assert_true(fls_core_round_open(core));
    assert_int_equal(fls_core_tick(core, 200.0), FL_OK);
    assert_memory_equal(before, fls_core_params(core),
                        fls_core_arch(core)->n_params * sizeof(float));
    assert_int_equal(fls_core_report_eval(core, 1, 0.25, NAN, 200.0), FL_OK);
    fls_event ev;
    int done = 0;
    while (fls_core_poll(core, &ev))
        done += ev.kind == FLS_EV_DONE;
    assert_int_equal(done, 1);
    assert_true(fls_core_done(core));
    assert_int_equal(fls_core_tick(core, 300.0), FL_OK);
    assert_false(fls_core_round_open(core));
    ulist_free(&l);
    fls_core_free(core);
}

static void test_engine_rejections(void **state)
{
    (void)state;
    const fls_config cfg = small_config();
    fls_core *core = core_with_clients(&cfg, 6);
    uint32_t keys[16];
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    const size_t n = take_tasks(core, keys, 16, NULL, NULL);
    assert_int_equal(n, 4);
    /* An unselected (connected) client and an unknown one. */
    uint32_t other = 0;
    for (uint32_t k = 10; k <= 60 && !other; k += 10) {
        int sel = 0;
        for (size_t i = 0; i < n; i++)
            sel |= keys[i] == k;
        if (!sel)
            other = k;
    }
    assert_true(other != 0);
    ulist l = {0};
    client_work(core, keys[0], NULL, 0.01f, 1.0, 0, &l);
    assert_int_equal(fls_core_on_message(core, other, &l.v[0].m, 0.5), FL_ERR_NOT_SELECTED);
    assert_int_equal(fls_core_on_message(core, 999, &l.v[0].m, 0.5), FL_ERR_UNKNOWN_CLIENT);
    flp_msg task;
    assert_int_equal(fls_core_task(core, other, &task), FL_ERR_NOT_SELECTED);
    /* A chunk before its Update header. */
    assert_int_equal(fls_core_on_message(core, keys[0], &l.v[1].m, 0.5), FL_ERR_STATE);
    /* The Update header twice. */
    assert_int_equal(fls_core_on_message(core, keys[0], &l.v[0].m, 0.5), FL_OK);
    assert_int_equal(fls_core_on_message(core, keys[0], &l.v[0].m, 0.5),
                     FL_ERR_DUPLICATE_UPDATE);
    /* A duplicate chunk, then a wrong round. */
    assert_int_equal(fls_core_on_message(core, keys[0], &l.v[1].m, 0.5), FL_OK);
    assert_int_equal(fls_core_on_message(core, keys[0], &l.v[1].m, 0.5), FL_ERR_WIRE_CHUNK_DUP);
    flp_msg wrong = l.v[2].m;
    wrong.round = 7;
    assert_int_equal(fls_core_on_message(core, keys[0], &wrong, 0.5), FL_ERR_ROUND_CLOSED);
    /* A chunk whose payload is for another length. */
    wrong = l.v[2].m;
    wrong.chunk.count = wrong.chunk.count - 1;
    assert_int_equal(fls_core_on_message(core, keys[0], &wrong, 0.5), FL_ERR_CODEC_LENGTH);
    /* A payload longer than the codec could ever produce for its count. */
    wrong = l.v[2].m;
    wrong.chunk.payload_len += 4096;
    uint8_t *big = calloc(1, wrong.chunk.payload_len);
    memcpy(big, l.v[2].m.chunk.payload, l.v[2].m.chunk.payload_len);
    wrong.chunk.payload = big;
    const fl_status big_st = fls_core_on_message(core, keys[0], &wrong, 0.5);
    assert_true(big_st == FL_ERR_WIRE_TOO_LARGE || big_st == FL_ERR_CODEC_HEADER);
    free(big);
    /* The rest completes the update; more after that is a duplicate. */
    for (size_t i = 2; i < l.n; i++)
        assert_int_equal(fls_core_on_message(core, keys[0], &l.v[i].m, 0.5), FL_OK);
    assert_int_equal(fls_core_on_message(core, keys[0], &l.v[0].m, 0.5),
                     FL_ERR_DUPLICATE_UPDATE);
    assert_int_equal(fls_core_on_message(core, keys[0], &l.v[1].m, 0.5),
                     FL_ERR_DUPLICATE_UPDATE);
    /* An update whose tensors do not match the Task. */
    ulist l2 = {0};
    client_work(core, keys[1], NULL, 0.01f, 1.0, 0, &l2);
    flp_msg bad = l2.v[0].m;
    bad.update.n_tensors--;
    assert_int_equal(fls_core_on_message(core, keys[1], &bad, 0.5), FL_ERR_WIRE_SHAPE);
    flp_tensor_header hb[FLM_MAX_TENSORS];
    memcpy(hb, l2.v[0].m.update.tensors, l2.v[0].m.update.n_tensors * sizeof *hb);
    hb[1].numel++;
    bad = l2.v[0].m;
    bad.update.tensors = hb;
    assert_int_equal(fls_core_on_message(core, keys[1], &bad, 0.5), FL_ERR_WIRE_SHAPE);
    bad = l2.v[0].m;
    bad.update.model_version = 5;
    assert_int_equal(fls_core_on_message(core, keys[1], &bad, 0.5), FL_ERR_WIRE_FIELD);
    assert_true(fls_core_round_open(core));
    ulist_free(&l);
    ulist_free(&l2);
    fls_core_free(core);
}

/* An absurd but finite loss (audit D3): refused at the Update header, so it cannot reach the
 * round's loss; the policy's own l_t stays finite where n_samples x loss overflows; and a policy
 * state the import would refuse is never exported (a checkpoint is not made of it). */
static void test_engine_absurd_loss(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    cfg.policy.kind = FLS_POLICY_AFD_SINGLE;
    fls_core *core = core_with_clients(&cfg, 6);
    uint32_t keys[16];
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    ulist l = {0};
    client_work(core, keys[0], NULL, 0.01f, 1.0, 0, &l);
    /* Refused at the header: that client's update fails, no chunk of it is taken. */
    const double bad[] = {-1e308, FLS_UPDATE_LOSS_MAX * 1.0000001, 1e308};
    for (size_t i = 0; i < 3; i++) {
        ulist b = {0};
        client_work(core, keys[i + 1], NULL, 0.01f, bad[i], 0, &b);
        assert_int_equal(fls_core_on_message(core, keys[i + 1], &b.v[0].m, 0.5),
                         FL_ERR_WIRE_FIELD);
        assert_int_equal(fls_core_on_message(core, keys[i + 1], &b.v[1].m, 0.5), FL_ERR_STATE);
        assert_int_equal(fls_core_on_message(core, keys[i + 1], &b.v[0].m, 0.5),
                         FL_ERR_DUPLICATE_UPDATE);
        ulist_free(&b);
    }
    {
        flp_msg m = l.v[0].m;
        m.update.loss = -1e-9;
        assert_int_equal(fls_core_on_message(core, keys[0], &m, 0.5), FL_ERR_WIRE_FIELD);
    }
    assert_false(fls_core_round_open(core)); /* nobody can still report */
    const fls_round_metrics *mt = fls_core_last_metrics(core);
    assert_non_null(mt);
    assert_int_equal(mt->failed, 4);
    assert_int_equal(mt->reported, 0);
    ulist_free(&l);
    fls_core_free(core);
    /* The bound itself is a loss. */
    core = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    for (int i = 0; i < 3; i++) {
        ulist g = {0};
        client_work(core, keys[i], NULL, 0.01f, FLS_UPDATE_LOSS_MAX, 0, &g);
        assert_int_equal(deliver(core, &g, keys[i], 0.5), FL_OK);
        ulist_free(&g);
    }
    assert_false(fls_core_round_open(core));
    assert_float_equal(fls_core_last_metrics(core)->mean_loss, FLS_UPDATE_LOSS_MAX, 0);
    fls_core_free(core);

    /* The policy: 2^40 samples x 1e300 overflows a double; l_t is the finite weighted mean. */
    const flm_arch a = arch_of("mlp:20-16-12-3");
    fls_policy *p = policy_of(FLS_POLICY_AFD_SINGLE, &a, 3, NULL);
    fls_policy_info info;
    const flm_keepset *ksp = NULL;
    assert_int_equal(fls_policy_begin_round(p, 0), FL_OK);
    assert_int_equal(fls_policy_keepset(p, 1, &ksp), FL_OK);
    assert_int_equal(fls_policy_keepset(p, 2, &ksp), FL_OK);
    assert_int_equal(fls_policy_report(p, 1, 1e300, UINT64_C(1) << 40), FL_OK);
    assert_int_equal(fls_policy_report(p, 2, 1e300, UINT64_C(1) << 40), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_true(isfinite(info.loss));
    assert_float_equal(info.loss, 1e300, 1e286);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fls_policy_export(p, &buf, &len), FL_OK);
    assert_int_equal(fls_policy_import(p, buf, len), FL_OK);
    free(buf);
    /* Exotic losses through the API: l_prev 1e-300 then -1e308 makes the gain, so the scores,
     * infinite: the export refuses instead of writing what the import refuses. */
    assert_int_equal(fls_policy_begin_round(p, 1), FL_OK);
    assert_int_equal(fls_policy_keepset(p, 1, &ksp), FL_OK);
    assert_int_equal(fls_policy_report(p, 1, 1e-300, 1), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    assert_int_equal(fls_policy_begin_round(p, 2), FL_OK);
    assert_int_equal(fls_policy_keepset(p, 1, &ksp), FL_OK);
    assert_int_equal(fls_policy_report(p, 1, -1e308, 1), FL_OK);
    assert_int_equal(fls_policy_end_round(p, &info), FL_OK);
    buf = NULL;
    assert_int_equal(fls_policy_export(p, &buf, &len), FL_ERR_NUMERIC);
    assert_null(buf);
    fls_policy_free(p);
}

/* One connected client (Hello dataset_size ds) of cfg's first round: its Update header claiming
 * n_samples n, answered with the returned status. */
static fl_status header_with_samples(const fls_config *cfg, uint64_t ds, uint64_t n)
{
    fls_config one = *cfg;
    one.min_clients = 1;
    fls_core *core = NULL;
    assert_int_equal(fls_core_new(&one, &core), FL_OK);
    assert_int_equal(fls_core_client_join(core, 10, ds, 0.0), FL_OK);
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    uint32_t keys[4];
    assert_int_equal(take_tasks(core, keys, 4, NULL, NULL), 1);
    ulist l = {0};
    client_work(core, keys[0], NULL, 0.01f, 1.0, 0, &l);
    l.v[0].m.update.n_samples = n;
    const fl_status st = fls_core_on_message(core, keys[0], &l.v[0].m, 0.5);
    ulist_free(&l);
    fls_core_free(core);
    return st;
}

/* Update.n_samples is the aggregation weight (audit D4): one client claiming the round's whole
 * weight budget (2^24 samples by default) or 2^64 - 1 is refused at its header, and the honest
 * updates of the round still commit; the bound is the smallest of the Hello dataset_size,
 * train.max_samples, FLS_UPDATE_SAMPLES_MAX and the weight cap / clients_per_round. */
static void test_engine_n_samples_bound(void **state)
{
    (void)state;
    const fls_config cfg = small_config();
    fls_core *core = core_with_clients(&cfg, 6); /* Hello dataset_size 100 */
    uint32_t keys[16];
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    ulist l = {0};
    client_work(core, keys[3], NULL, 0.01f, 1.0, 0, &l);
    flp_msg m = l.v[0].m;
    m.update.n_samples = UINT64_C(1) << 24; /* the audit's: the round's whole weight */
    assert_int_equal(fls_core_on_message(core, keys[3], &m, 0.5), FL_ERR_WIRE_LIMIT);
    assert_int_equal(fls_core_on_message(core, keys[3], &l.v[1].m, 0.5), FL_ERR_STATE);
    assert_int_equal(fls_core_on_message(core, keys[3], &l.v[0].m, 0.5), FL_ERR_DUPLICATE_UPDATE);
    ulist_free(&l);
    for (int i = 0; i < 3; i++) {
        ulist h = {0};
        client_work(core, keys[i], NULL, 0.01f, 1.0, 0, &h);
        h.v[0].m.update.n_samples = 100; /* all it holds */
        assert_int_equal(deliver(core, &h, keys[i], 0.5), FL_OK);
        ulist_free(&h);
    }
    assert_false(fls_core_round_open(core));
    const fls_round_metrics *mt = fls_core_last_metrics(core);
    assert_non_null(mt);
    assert_int_equal(mt->reported, 3);
    assert_int_equal(mt->failed, 1);
    assert_int_equal(mt->samples, 300);
    fls_core_free(core);

    /* No dataset_size given: the hard cap (3 x 2^20 fits 2^24). */
    fls_config c = small_config();
    assert_int_equal(header_with_samples(&c, 0, FLS_UPDATE_SAMPLES_MAX), FL_OK);
    assert_int_equal(header_with_samples(&c, 0, FLS_UPDATE_SAMPLES_MAX + 1), FL_ERR_WIRE_LIMIT);
    assert_int_equal(header_with_samples(&c, 0, UINT64_MAX), FL_ERR_WIRE_LIMIT);
    assert_int_equal(header_with_samples(&c, 100, 101), FL_ERR_WIRE_LIMIT);
    /* 64 updates a round: 2^24 / 64 each. */
    c.clients_per_round = 64;
    assert_int_equal(header_with_samples(&c, 0, UINT64_C(1) << 18), FL_OK);
    assert_int_equal(header_with_samples(&c, 0, (UINT64_C(1) << 18) + 1), FL_ERR_WIRE_LIMIT);
    /* The Task says the bound (its max_samples), so that an honest client with more samples
     * trains on no more than it may claim instead of having every update refused. */
    {
        fls_config t = small_config();
        t.clients_per_round = 64;
        t.min_clients = 1;
        for (int k = 0; k < 2; k++) {
            t.train.max_samples = k ? 1000 : 0; /* a smaller one of the operator's stays */
            fls_core *tc = NULL;
            assert_int_equal(fls_core_new(&t, &tc), FL_OK);
            assert_int_equal(fls_core_client_join(tc, 10, 0, 0.0), FL_OK);
            assert_int_equal(fls_core_tick(tc, 0.0), FL_OK);
            uint32_t tk[4];
            assert_int_equal(take_tasks(tc, tk, 4, NULL, NULL), 1);
            flp_msg tm;
            assert_int_equal(fls_core_task(tc, tk[0], &tm), FL_OK);
            assert_int_equal(tm.task.train.max_samples, k ? 1000 : UINT64_C(1) << 18);
            fls_core_free(tc);
        }
    }
    /* train.max_samples, and the Hello's dataset_size. */
    c = small_config();
    c.train.max_samples = 50;
    assert_int_equal(header_with_samples(&c, 0, 50), FL_OK);
    assert_int_equal(header_with_samples(&c, 0, 51), FL_ERR_WIRE_LIMIT);
    assert_int_equal(header_with_samples(&c, 40, 41), FL_ERR_WIRE_LIMIT);
    assert_int_equal(header_with_samples(&c, 40, 40), FL_OK);
    /* which bound it is, for the host's message (fls_core_update_samples_max) */
    for (int k = 0; k < 3; k++) {
        fls_config b = small_config();
        b.train.max_samples = k == 2 ? 0 : 50;
        fls_core *bc = NULL;
        assert_int_equal(fls_core_new(&b, &bc), FL_OK);
        assert_int_equal(fls_core_client_join(bc, 10, k == 0 ? 40 : 0, 0.0), FL_OK);
        const char *from = NULL;
        const uint64_t lim = fls_core_update_samples_max(bc, 10, &from);
        assert_int_equal(lim, k == 0 ? 40 : k == 1 ? 50 : FLS_UPDATE_SAMPLES_MAX);
        assert_string_equal(from, k == 0 ? "its Hello's dataset_size" : k == 1 ? "train.max_samples"
                                                         : "the per-update weight cap");
        /* a client that never joined: the other bounds */
        assert_int_equal(fls_core_update_samples_max(bc, 11, &from),
                         k == 2 ? FLS_UPDATE_SAMPLES_MAX : 50);
        fls_core_free(bc);
    }
}

/* The core's log lines of one_round_with_fourth, and the host's names for its clients. */
static char g_core_log[8192];

static void core_log(void *user, fl_log_level level, const char *msg)
{
    (void)user;
    (void)level;
    const size_t n = strlen(g_core_log);
    snprintf(g_core_log + n, sizeof g_core_log - n, "%s\n", msg);
}

static const char *dev_name(void *user, uint32_t key)
{
    static char name[32];
    snprintf(name, sizeof name, "%s-%u", (const char *)user, key);
    return name;
}

/* Runs one round of small_config on 6 clients: the selected clients 0..2 report (scripted deltas),
 * client 3 does what `fourth` says: 0 = leaves before sending, 1 = leaves half-way through its
 * upload, 2 = sends a corrupted chunk, 3 = its upload aborted by the host, 4 = sends a value out
 * of the aggregation range. Returns the model after the round in out. */
static void one_round_with_fourth(int fourth, float *out, fls_round_metrics *metrics)
{
    fls_config cfg = small_config();
    g_core_log[0] = '\0';
    cfg.log = (fl_logger){core_log, NULL, FL_LOG_DEBUG};
    cfg.client_name = dev_name;
    cfg.client_name_user = "dev";
    cfg.clients_per_round = 4;
    cfg.overcommit = 1.0;
    fls_core *core = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
    uint32_t keys[16];
    assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
    memset(out, 0, 200 * sizeof *out);
    ulist l = {0};
    for (size_t i = 0; i < 4; i++)
        client_work(core, keys[i], NULL, 0.01f * (float)(i + 1), 1.0 + (double)i, 0, &l);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(deliver(core, &l, keys[i], 1.0), FL_OK);
    assert_true(fls_core_round_open(core));
    if (fourth == 0) {
        assert_int_equal(fls_core_client_leave(core, keys[3], 2.0), FL_OK);
    } else if (fourth == 1) {
        size_t sent = 0;
        for (size_t i = 0; i < l.n && sent < 4; i++)
            if (l.v[i].key == keys[3]) {
                assert_int_equal(fls_core_on_message(core, keys[3], &l.v[i].m, 2.0), FL_OK);
                sent++;
            }
        assert_true(fls_core_round_open(core));
        flp_msg bye;
        memset(&bye, 0, sizeof bye);
        bye.version = FLP_VERSION;
        bye.type = FLP_BYE;
        bye.sender = "";
        assert_int_equal(fls_core_on_message(core, keys[3], &bye, 2.0), FL_OK);
    } else if (fourth == 3) {
        /* The host gives up on a half-received update (fls_core_update_abort): staged chunks are
         * dropped, the update counts as failed, and the round closes as nobody else can report. */
        assert_int_equal(fls_core_update_state(core, keys[3], 0), FLS_UPDATE_NONE);
        size_t sent = 0;
        for (size_t i = 0; i < l.n && sent < 4; i++)
            if (l.v[i].key == keys[3]) {
                assert_int_equal(fls_core_on_message(core, keys[3], &l.v[i].m, 2.0), FL_OK);
                sent++;
            }
        assert_int_equal(fls_core_update_state(core, keys[3], 0), FLS_UPDATE_RECEIVING);
        assert_int_equal(fls_core_update_state(core, keys[3], 1), FLS_UPDATE_NONE);
        assert_int_equal(fls_core_update_state(core, keys[0], 0), FLS_UPDATE_COMMITTED);
        assert_int_equal(fls_core_update_abort(core, keys[0], 2.0), FL_ERR_STATE);
        assert_int_equal(fls_core_update_abort(core, keys[3], 2.0), FL_OK);
        assert_int_equal(fls_core_update_state(core, keys[3], 0), FLS_UPDATE_NONE); /* closed */
    } else if (fourth == 4) {
        /* A value out of the aggregation range (2000: above 2^10) in the third element of the
         * client's second chunk: refused at commit, and where it is said, in the refusal's log
         * line and by fls_core_update_error, as the client sent it (tensor, element). */
        const flp_chunk *k = NULL;
        for (size_t i = 0, seen = 0; i < l.n && !k; i++)
            if (l.v[i].key == keys[3] && l.v[i].m.type == FLP_CHUNK && seen++ == 1)
                k = &l.v[i].m.chunk;
        assert_non_null(k);
        assert_true(k->count >= 3 && k->payload_len >= FLZ_HEADER_SIZE + 3 * sizeof(float));
        const float big = 2000.0f;
        memcpy((uint8_t *)k->payload + FLZ_HEADER_SIZE + 2 * sizeof(float), &big, sizeof big);
        char want[256];
        snprintf(want, sizeof want, "tensor %s element %llu is 2000, beyond the bound 1024 "
                 "(|w - w0| at most)", fls_core_arch(core)->tensors[k->tensor].name,
                 (unsigned long long)k->offset + 2);
        assert_int_equal(deliver(core, &l, keys[3], 2.0), FL_ERR_AGG_RANGE);
        if (strcmp(fls_core_update_error(core), want) != 0)
            fail_msg("fls_core_update_error: '%s', not '%s'", fls_core_update_error(core), want);
        char line[400];
        snprintf(line, sizeof line, "refused: %s: %s\n", fl_strerror(FL_ERR_AGG_RANGE), want);
        if (!strstr(g_core_log, line))
            fail_msg("not logged: %s; log:\n%s", line, g_core_log);
        /* the next message's refusal, or none, says nothing of it */
        flp_msg bye;
        memset(&bye, 0, sizeof bye);
        bye.version = FLP_VERSION;
        bye.type = FLP_BYE;
        bye.sender = "";
        (void)fls_core_on_message(core, keys[3], &bye, 2.0);
        assert_string_equal(fls_core_update_error(core), "");
    } else {
        /* Corrupt the body of the client's last chunk (after the 52-byte codec header): with
         * the raw f32 codec, 0xFF bytes are NaNs, which the decoder refuses. */
        for (size_t i = l.n; i-- > 0;)
            if (l.v[i].key == keys[3] && l.v[i].m.type == FLP_CHUNK) {
                uint8_t *p = (uint8_t *)l.v[i].m.chunk.payload;
                assert_true(l.v[i].m.chunk.payload_len > FLZ_HEADER_SIZE);
                for (size_t b = FLZ_HEADER_SIZE; b < l.v[i].m.chunk.payload_len; b++)
                    p[b] = 0xFF;
                break;
            }
        fl_status st = deliver(core, &l, keys[3], 2.0);
        assert_true(st == FL_ERR_CODEC_CORRUPT || st == FL_ERR_CODEC_HEADER ||
                    st == FL_ERR_NUMERIC);
    }
    assert_false(fls_core_round_open(core));
    memcpy(out, fls_core_params(core), fls_core_arch(core)->n_params * sizeof(float));
    *metrics = *fls_core_last_metrics(core);
    ulist_free(&l);
    fls_core_free(core);
}

static void test_engine_vanishing_client(void **state)
{
    (void)state;
    float a[200], b[200];
    fls_round_metrics ma, mb;
    one_round_with_fourth(0, a, &ma);
    one_round_with_fourth(1, b, &mb);
    /* Vanishing half-way costs nothing but its own update: the same model, bit for bit. */
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(ma.closed_by, FLS_CLOSE_EXHAUSTED);
    assert_int_equal(mb.closed_by, FLS_CLOSE_EXHAUSTED);
    assert_int_equal(mb.reported, 3);
    assert_int_equal(mb.failed, 1);
    assert_int_equal(mb.late, 0);
    assert_true(mb.mean_loss == 2.0); /* losses 1, 2, 3 with equal weights */
}

static void test_engine_refused_update(void **state)
{
    (void)state;
    float a[200], b[200];
    fls_round_metrics ma, mb;
    one_round_with_fourth(0, a, &ma);
    one_round_with_fourth(2, b, &mb);
    /* A corrupt update never touches the aggregate. */
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(mb.failed, 1);
    assert_int_equal(mb.reported, 3);
    /* Its refusal is logged under the host's name for the client (fls_config.client_name). */
    if (!strstr(g_core_log, "update of client dev-") || !strstr(g_core_log, " refused: "))
        fail_msg("the refusal does not name the client by the host's name; log:\n%s", g_core_log);
    /* An aborted half-received update neither. */
    float c[200];
    fls_round_metrics mc;
    one_round_with_fourth(3, c, &mc);
    assert_memory_equal(a, c, sizeof a);
    assert_int_equal(mc.failed, 1);
    assert_int_equal(mc.reported, 3);
    /* A value out of the aggregation range neither; where it was is said (one_round_with_fourth) */
    float d[200];
    fls_round_metrics md;
    one_round_with_fourth(4, d, &md);
    assert_memory_equal(a, d, sizeof a);
    assert_int_equal(md.failed, 1);
    assert_int_equal(md.reported, 3);
}

/* One round on conv and LSTM architectures with per-client keep-sets: every coordinate moves by
 * the mean of the deltas of the clients that held it, the others stay put (checked against
 * flm_submodel_scatter_add / flm_submodel_mask, computed independently of the core). */
static void test_engine_archs(void **state)
{
    (void)state;
    const char *archs[] = {"cnn:10:8x8x1", "lstm:20:4:16:2:5", "moge:12:9:3:4:2:5"};
    for (size_t ai = 0; ai < sizeof archs / sizeof archs[0]; ai++) {
        fls_config cfg = small_config();
        snprintf(cfg.arch, sizeof cfg.arch, "%s", archs[ai]);
        cfg.policy.kind = FLS_POLICY_FD;
        cfg.policy.fd_per_client = 1;
        cfg.clients_per_round = 4;
        cfg.overcommit = 1.0;
        cfg.chunk_elems = 4096;
        fls_core *core = core_with_clients(&cfg, 5);
        const flm_arch *a = fls_core_arch(core);
        const size_t np = a->n_params;
        float *before = malloc(np * sizeof *before), *sum = calloc(np, sizeof *sum);
        float *cnt = calloc(np, sizeof *cnt), *mask = malloc(np * sizeof *mask);
        memcpy(before, fls_core_params(core), np * sizeof *before);
        assert_int_equal(fls_core_tick(core, 0.0), FL_OK);
        uint32_t keys[16];
        assert_int_equal(take_tasks(core, keys, 16, NULL, NULL), 4);
        ulist l = {0};
        for (size_t i = 0; i < 4; i++) {
            const float step = 0.001f * (float)(i + 1);
            flp_msg task;
            assert_int_equal(fls_core_task(core, keys[i], &task), FL_OK);
            int counts[FLM_MAX_LAYERS];
            for (uint32_t d = 0; d < task.task.n_layers; d++)
                counts[d] = (int)task.task.layers[d].n_units;
            flm_keepset ks;
            assert_int_equal(flm_keepset_alloc(&ks, a, counts), FL_OK);
            for (uint32_t d = 0; d < task.task.n_layers; d++)
                memcpy(ks.idx + ks.offset[d], task.task.layers[d].units,
                       counts[d] * sizeof *ks.idx);
            flm_submodel *sm;
            assert_int_equal(flm_submodel_new(a, &ks, &sm), FL_OK);
            const size_t ns = flm_submodel_arch(sm)->n_params;
            assert_true(ns < np);
            float *d = malloc(ns * sizeof *d);
            for (size_t j = 0; j < ns; j++)
                d[j] = step * (float)(1 + j % 3);
            flm_submodel_scatter_add(sm, sum, d, 1.0f);
            flm_submodel_mask(sm, mask);
            for (size_t j = 0; j < np; j++)
                cnt[j] += mask[j];
            free(d);
            flm_submodel_free(sm);
            flm_keepset_free(&ks);
            client_work(core, keys[i], NULL, step, 1.0, 0, &l);
        }
        assert_int_equal(deliver(core, &l, 0, 1.0), FL_OK);
        assert_false(fls_core_round_open(core));
        const float *after = fls_core_params(core);
        size_t untouched = 0;
        for (size_t j = 0; j < np; j++) {
            if (cnt[j] == 0.0f) {
                assert_true(after[j] == before[j]);
                untouched++;
            } else {
                assert_true(fabsf(after[j] - before[j] - sum[j] / cnt[j]) < 1e-6f);
            }
        }
        print_message("  %s: %zu params, %zu held by no client this round\n", archs[ai], np,
                      untouched);
        ulist_free(&l);
        free(before);
        free(sum);
        free(cnt);
        free(mask);
        fls_core_free(core);
    }
}

/* ---- 20-round runs with clients training real models ------------------------------------------ */

#define SIM_CLIENTS 12
#define SIM_SAMPLES 48
#define SIM_DIM 12
#define SIM_CLASSES 3
#define SIM_TEST 300

typedef struct simworld {
    simdata clients[SIM_CLIENTS];
    simdata test;
} simworld;

/* Gaussian blobs: class k centred at c_k (N(0, 0.8^2) per dimension), noise N(0, 1). Each client
 * leans to one class (half its samples), the rest uniform: mildly non-IID. */
static void world_make(simworld *w)
{
    float centers[SIM_CLASSES][SIM_DIM];
    fl_rng r = fl_rng_stream(2024, 0, 0, FL_RNG_DATA);
    for (int k = 0; k < SIM_CLASSES; k++)
        for (int j = 0; j < SIM_DIM; j++)
            centers[k][j] = 0.8f * (float)fl_rng_normal(&r);
    for (int c = 0; c <= SIM_CLIENTS; c++) {
        simdata *d = c < SIM_CLIENTS ? &w->clients[c] : &w->test;
        d->n = c < SIM_CLIENTS ? SIM_SAMPLES : SIM_TEST;
        d->x = malloc(d->n * SIM_DIM * sizeof *d->x);
        d->y = malloc(d->n * sizeof *d->y);
        for (size_t i = 0; i < d->n; i++) {
            const int y = (c < SIM_CLIENTS && i % 2 == 0) ? c % SIM_CLASSES
                                                          : (int)fl_rng_below(&r, SIM_CLASSES);
            d->y[i] = y;
            for (int j = 0; j < SIM_DIM; j++)
                d->x[i * SIM_DIM + j] = centers[y][j] + (float)fl_rng_normal(&r);
        }
    }
}

static void world_free(simworld *w)
{
    for (int c = 0; c <= SIM_CLIENTS; c++) {
        simdata *d = c < SIM_CLIENTS ? &w->clients[c] : &w->test;
        free(d->x);
        free(d->y);
    }
}

static double evaluate(const flm_arch *a, const float *params, const simdata *d, double *loss)
{
    flm_model *m;
    assert_int_equal(flm_model_new(a, 100, &m), FL_OK);
    const flm_samples s = {d->x, NULL, d->y, NULL, d->n};
    double acc = 0;
    assert_int_equal(flm_model_evaluate(m, params, &s, loss, &acc), FL_OK);
    flm_model_free(m);
    return acc;
}

typedef struct simresult {
    double acc0, acc_final;
    double loss_first, loss_last;  /* mean local training loss, round 0 and the last round */
    int rounds, evals;
    uint64_t bytes_down, bytes_up;
    uint32_t afd_kept, afd_resampled;
} simresult;

static fls_config sim_config(fls_policy_kind kind, int fd_per_client)
{
    fls_config c = fls_config_default();
    snprintf(c.arch, sizeof c.arch, "mlp:%d-24-16-%d", SIM_DIM, SIM_CLASSES);
    c.seed = 7;
    c.policy.kind = kind;
    c.policy.fd_per_client = fd_per_client;
    c.clients_per_round = 6;
    c.overcommit = 1.0;
    c.max_rounds = 20;
    c.eval_every = 5;
    c.train.epochs = 2;
    c.train.batch_size = 8;
    c.train.lr = 0.1f;
    c.chunk_elems = 64;
    snprintf(c.up_codec, sizeof c.up_codec, "q8");
    return c;
}

/* sim_rounds delivers with fls_core_on_message_borrowed, the messages as the clients made them
 * (they live until the round is over), instead of each through a wire round trip. */
static int g_borrow;

/* Drives a core through rounds [first, until) with the simulated clients; arrival order of the
 * round's messages shuffled with shuffle_seed (Updates first, chunks interleaved across clients)
 * or, with shuffle_seed 0, client by client. */
static void sim_rounds(fls_core *core, const simworld *w, uint64_t until, uint64_t shuffle_seed,
                       simresult *res)
{
    const flm_arch *a = fls_core_arch(core);
    double now = 1000.0 * (double)fls_core_round(core);
    while (fls_core_round(core) < until && !fls_core_done(core)) {
        assert_int_equal(fls_core_tick(core, now), FL_OK);
        assert_true(fls_core_round_open(core));
        uint32_t keys[SIM_CLIENTS];
        const size_t n = take_tasks(core, keys, SIM_CLIENTS, NULL, NULL);
        assert_true(n > 0);
        ulist l = {0};
        for (size_t i = 0; i < n; i++)
            client_work(core, keys[i], &w->clients[keys[i] - 1], 0, 0, 0, &l);
        if (shuffle_seed) {
            /* Updates first (a chunk needs its header), then everything else shuffled. */
            size_t nu = 0;
            for (size_t i = 0; i < l.n; i++)
                if (l.v[i].m.type == FLP_UPDATE) {
                    const umsg t = l.v[nu];
                    l.v[nu++] = l.v[i];
                    l.v[i] = t;
                }
            fl_rng r = fl_rng_stream(shuffle_seed, (uint32_t)fls_core_round(core), 0, FL_RNG_TEST);
            for (size_t i = l.n; i > 1; i--) {
                const size_t lo = i - 1 < nu ? 0 : nu;
                if (i - 1 < lo + 1)
                    continue;
                const size_t j = lo + fl_rng_below(&r, (uint32_t)(i - lo));
                const umsg t = l.v[i - 1];
                l.v[i - 1] = l.v[j];
                l.v[j] = t;
            }
        }
        /* Over-commit: once the quorum is in, the remaining clients are late. */
        for (size_t i = 0; i < l.n; i++) {
            const int was_open = fls_core_round_open(core);
            fl_status st;
            if (g_borrow) {
                st = fls_core_on_message_borrowed(core, l.v[i].key, &l.v[i].m, now + 1.0);
            } else {
                flp_msg *got = wire_roundtrip(&l.v[i].m);
                st = fls_core_on_message(core, l.v[i].key, got, now + 1.0);
                flp_msg_free(got);
            }
            assert_int_equal(st, was_open ? FL_OK : FL_ERR_ROUND_CLOSED);
        }
        ulist_free(&l);
        assert_false(fls_core_round_open(core));
        fls_event ev;
        while (fls_core_poll(core, &ev)) {
            if (ev.kind == FLS_EV_EVALUATE) {
                double loss;
                const double acc = evaluate(a, fls_core_params(core), &w->test, &loss);
                assert_int_equal(fls_core_report_eval(core, ev.round, acc, loss, now + 2.0),
                                 FL_OK);
                res->evals++;
                res->acc_final = acc;
            } else if (ev.kind == FLS_EV_ROUND_END) {
                const fls_round_metrics *m = fls_core_last_metrics(core);
                assert_int_equal(m->round, ev.round);
                assert_int_equal(m->reported, m->quorum);
                assert_int_equal(m->late, n - m->quorum);
                if (m->round == 0)
                    res->loss_first = m->mean_loss;
                res->loss_last = m->mean_loss;
                res->bytes_down += m->bytes_down;
                res->bytes_up += m->bytes_up;
                res->afd_kept += m->afd.kept;
                res->afd_resampled += m->afd.resampled;
                res->rounds++;
            }
        }
        now += 1000.0;
    }
}

static fls_core *sim_core(const fls_config *cfg)
{
    fls_core *core = NULL;
    assert_int_equal(fls_core_new(cfg, &core), FL_OK);
    for (uint32_t k = 1; k <= SIM_CLIENTS; k++)
        assert_int_equal(fls_core_client_join(core, k, SIM_SAMPLES, 0.0), FL_OK);
    return core;
}

static void test_sim_policies(void **state)
{
    (void)state;
    simworld w;
    world_make(&w);
    const struct {
        fls_policy_kind kind;
        int per_client;
    } runs[] = {{FLS_POLICY_FULL, 0}, {FLS_POLICY_FD, 0}, {FLS_POLICY_FD, 1},
                {FLS_POLICY_AFD_SINGLE, 0}, {FLS_POLICY_AFD_MULTI, 0}};
    uint64_t full_down = 0;
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const fls_config cfg = sim_config(runs[i].kind, runs[i].per_client);
        fls_core *core = sim_core(&cfg);
        simresult res;
        memset(&res, 0, sizeof res);
        double l0;
        res.acc0 = evaluate(fls_core_arch(core), fls_core_params(core), &w.test, &l0);
        sim_rounds(core, &w, 1000, 0, &res);
        print_message("  %-10s%s: test accuracy %.3f -> %.3f, local loss %.3f -> %.3f, "
                      "down %llu B, up %llu B, afd kept %u resampled %u\n",
                      fls_policy_kind_name(runs[i].kind), runs[i].per_client ? " (per-client)" : "",
                      res.acc0, res.acc_final, res.loss_first, res.loss_last,
                      (unsigned long long)res.bytes_down, (unsigned long long)res.bytes_up,
                      res.afd_kept, res.afd_resampled);
        assert_true(fls_core_done(core));
        assert_int_equal(res.rounds, 20);
        assert_int_equal(res.evals, 4);
        assert_true(res.loss_last < 0.7 * res.loss_first); /* the loss falls */
        assert_true(res.acc_final > res.acc0 + 0.2);
        assert_true(res.acc_final > 0.75);
        if (runs[i].kind == FLS_POLICY_FULL)
            full_down = res.bytes_down;
        else /* submodels are smaller: less to download than FedAvg */
            assert_true(res.bytes_down < 0.8 * (double)full_down);
        if (runs[i].kind == FLS_POLICY_AFD_SINGLE || runs[i].kind == FLS_POLICY_AFD_MULTI)
            assert_true(res.afd_kept > 0 && res.afd_resampled > 0);
        fls_core_free(core);
    }
    world_free(&w);
}

/* A target accuracy ends the run early; lossy codecs both ways still learn. */
static void test_sim_target_and_codecs(void **state)
{
    (void)state;
    simworld w;
    world_make(&w);
    fls_config cfg = sim_config(FLS_POLICY_AFD_SINGLE, 0);
    cfg.eval_every = 1;
    cfg.target_accuracy = 0.9;
    snprintf(cfg.down_codec, sizeof cfg.down_codec, "q8+zstd");
    snprintf(cfg.up_codec, sizeof cfg.up_codec, "rot+q4+zstd");
    fls_core *core = sim_core(&cfg);
    simresult res;
    memset(&res, 0, sizeof res);
    sim_rounds(core, &w, 1000, 5, &res);
    print_message("  afd-single q8+zstd down, rot+q4+zstd up: %d rounds to accuracy %.3f, "
                  "down %llu B, up %llu B\n",
                  res.rounds, res.acc_final, (unsigned long long)res.bytes_down,
                  (unsigned long long)res.bytes_up);
    assert_true(fls_core_done(core));
    assert_true(res.acc_final >= 0.9);
    assert_true(res.rounds < 20);
    assert_int_equal(res.evals, res.rounds);
    fls_core_free(core);
    world_free(&w);
}

/* The same run with three different arrival orders: bit-identical models. */
static void test_sim_arrival_order(void **state)
{
    (void)state;
    simworld w;
    world_make(&w);
    const fls_policy_kind kinds[] = {FLS_POLICY_AFD_MULTI, FLS_POLICY_FD, FLS_POLICY_AFD_MULTI};
    for (size_t k = 0; k < 3; k++) {
        fls_config cfg = sim_config(kinds[k], 1);
        cfg.max_rounds = 8;
        if (k == 2) /* float32 uplink: borrowed payloads are folded in place */
            snprintf(cfg.up_codec, sizeof cfg.up_codec, "none");
        float *ref = NULL;
        const size_t np = arch_of(cfg.arch).n_params;
        /* max_open = the updates that may stream chunks into staging at once; the others buffer
         * their encoded chunks until complete; with g_borrow the messages come borrowed (and, for
         * float32, are aggregated from the clients' bytes): every mix gives the same bits. */
        for (uint64_t order = 0; order < 9; order++) {
            g_borrow = (int)(order & 1);
            cfg.agg.max_open = order % 3 == 0 ? 1 : order % 3 == 1 ? 3 : 64;
            fls_core *core = sim_core(&cfg);
            simresult res;
            memset(&res, 0, sizeof res);
            sim_rounds(core, &w, 1000, (order / 3) * 1000 + 3, &res);
            assert_int_equal(res.rounds, 8);
            if (!ref) {
                ref = malloc(np * sizeof *ref);
                memcpy(ref, fls_core_params(core), np * sizeof *ref);
            } else {
                assert_memory_equal(ref, fls_core_params(core), np * sizeof *ref);
            }
            fls_core_free(core);
        }
        free(ref);
    }
    g_borrow = 0;
    world_free(&w);
}

/* k without its configuration text (the CONFIG section, last in the file): for the tests that
 * edit the sections before it by their offset from the end. */
static void drop_config(fls_ckpt *k)
{
    free(k->config);
    k->config = NULL;
    k->config_len = 0;
}

/* k serialised into *buf (the caller frees it) and parsed back into *back. */
static void through_bytes(const fls_ckpt *k, fls_ckpt *back, uint8_t **buf, size_t *len)
{
    char err[256];
    assert_int_equal(fls_ckpt_serialize(k, buf, len), FL_OK);
    if (fls_ckpt_parse(*buf, *len, back, err, sizeof err) != FL_OK)
        fail_msg("a checkpoint just serialised does not parse: %s", err);
}

/* A checkpoint's bytes edited by a test: a valid checksum again, so that only the edit is wrong. */
static void reseal(uint8_t *buf, size_t len)
{
    fl_sha256_digest(buf + len - FL_SHA256_LEN, buf, len - FL_SHA256_LEN);
}

/* 10 rounds straight, and 5 rounds + checkpoint file + a new core + restore + 5 rounds: the same
 * model and policy state, byte for byte (afd-multi with FedAdam: every kind of state). */
/* A run that ended at its target accuracy says so in its checkpoint (an optional last section,
 * the accuracy reached); resumed with a target at or below it, the run is still over (DONE at the
 * first tick); with a higher target, or none, it trains on. A bad trailing section is refused. */
static void test_resume_after_target(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    fls_core *a = core_with_clients(&cfg, 6);
    fls_ckpt k;
    assert_int_equal(fls_core_checkpoint(a, &k), FL_OK);
    assert_false(k.target_reached);
    drop_config(&k);
    k.target_reached = 1;
    k.target_acc = 0.75;
    uint8_t *buf = NULL;
    size_t len = 0;
    fls_ckpt back;
    char err[256];
    through_bytes(&k, &back, &buf, &len);
    assert_true(back.target_reached);
    assert_true(back.target_acc == 0.75);
    fls_ckpt_clear(&back);
    fls_core_free(a);
    const double targets[] = {0.7, 0.75, 0.8, 0.0};
    for (int i = 0; i < 4; i++) {
        cfg.target_accuracy = targets[i];
        fls_core *b = core_with_clients(&cfg, 6);
        assert_int_equal(fls_core_restore(b, &k), FL_OK);
        /* before its first tick its checkpoint (fl_server writes one at start-up, and keeps it
         * when the run ends at that tick) still says so: else a second resume trained on */
        fls_ckpt k1;
        assert_int_equal(fls_core_checkpoint(b, &k1), FL_OK);
        assert_true(k1.target_reached && k1.target_acc == 0.75);
        fls_ckpt_clear(&k1);
        assert_int_equal(fls_core_tick(b, 1.0), FL_OK);
        int done = 0;
        fls_event ev;
        while (fls_core_poll(b, &ev))
            done |= ev.kind == FLS_EV_DONE;
        const int over = i < 2;
        assert_int_equal(done, over);
        assert_int_equal(fls_core_done(b), over);
        assert_int_equal(fls_core_round_open(b), !over);
        if (over) { /* its own checkpoint keeps saying so */
            fls_ckpt k2;
            assert_int_equal(fls_core_checkpoint(b, &k2), FL_OK);
            assert_true(k2.target_reached && k2.target_acc == 0.75);
            fls_ckpt_clear(&k2);
        }
        fls_core_free(b);
    }
    fls_ckpt_clear(&k);
    /* the optional section must be the target one, 8 bytes, in [0, 1] (re-sealed so that only
     * the section is wrong, not the checksum); a tag above this build's, in a whole file, is a
     * later fedrop's section */
    buf[len - 32 - 12 - 8] = 8; /* its tag: none this build knows */
    reseal(buf, len);
    assert_int_equal(fls_ckpt_parse(buf, len, &back, err, sizeof err), FL_ERR_CHECKPOINT_NEWER);
    assert_non_null(strstr(err, "a section this build does not know (tag 8)"));
    free(buf);
}

/* The run id: in every Task (through the wire), in the checkpoint (an optional section, after
 * the target one), and a restored checkpoint's replaces the host's; a checkpoint without one (an
 * older file, or a run without an id) leaves the host's. Sections out of order, or an id of 0,
 * are refused. */
static void test_run_id(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    fls_core *a = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_run_id(a), 0);
    fls_core_set_run_id(a, 0xABCDEF0123456789ull);
    assert_int_equal(fls_core_tick(a, 1.0), FL_OK);
    fls_event ev;
    uint32_t key = 0;
    while (fls_core_poll(a, &ev))
        if (ev.kind == FLS_EV_TASK)
            key = ev.client;
    assert_true(key != 0);
    flp_msg task;
    assert_int_equal(fls_core_task(a, key, &task), FL_OK);
    flp_msg *got = wire_roundtrip(&task);
    assert_true(got->task.run_id == 0xABCDEF0123456789ull);
    flp_msg_free(got);
    fls_core_free(a);

    a = core_with_clients(&cfg, 6);
    fls_core_set_run_id(a, 0xABCDEF0123456789ull);
    fls_ckpt k;
    assert_int_equal(fls_core_checkpoint(a, &k), FL_OK);
    assert_true(k.run_id == 0xABCDEF0123456789ull);
    drop_config(&k);
    k.target_reached = 1; /* both 8-byte optional sections */
    k.target_acc = 0.5;
    uint8_t *buf = NULL;
    size_t len = 0;
    fls_ckpt back;
    char err[256];
    through_bytes(&k, &back, &buf, &len);
    assert_true(back.run_id == 0xABCDEF0123456789ull && back.target_reached);
    fls_core *b = core_with_clients(&cfg, 6);
    fls_core_set_run_id(b, 77);
    assert_int_equal(fls_core_restore(b, &back), FL_OK);
    assert_true(fls_core_run_id(b) == 0xABCDEF0123456789ull);
    fls_core_free(b);
    fls_ckpt_clear(&back);
    /* Out of order (the run section first): swap the two 20-byte sections and re-seal. */
    uint8_t tmp[20];
    uint8_t *t1 = buf + len - 32 - 40, *t2 = buf + len - 32 - 20;
    memcpy(tmp, t1, 20);
    memcpy(t1, t2, 20);
    memcpy(t2, tmp, 20);
    reseal(buf, len);
    assert_int_equal(fls_ckpt_parse(buf, len, &back, err, sizeof err), FL_ERR_CHECKPOINT_FORMAT);
    assert_non_null(strstr(err, "optional section 5 repeated, out of order"));
    free(buf);
    /* An id of 0 in the section is refused. */
    k.target_reached = 0;
    assert_int_equal(fls_ckpt_serialize(&k, &buf, &len), FL_OK);
    memset(buf + len - 32 - 8, 0, 8);
    reseal(buf, len);
    assert_int_equal(fls_ckpt_parse(buf, len, &back, err, sizeof err), FL_ERR_CHECKPOINT_FORMAT);
    free(buf);
    fls_ckpt_clear(&k);
    /* Without an id (a file of an older build): no section. Every resume of that file must name
     * the same run, or a host that draws a fresh id per start (fl_server) would make the clients
     * of a second resume (killed before it wrote a checkpoint of its own) drop their residuals:
     * the run is named by the file's SHA-256 (its first 8 bytes, little-endian), whatever id the
     * host drew. A host without ids (0: the simulator) keeps none. */
    fls_core_set_run_id(a, 0);
    assert_int_equal(fls_core_checkpoint(a, &k), FL_OK);
    through_bytes(&k, &back, &buf, &len);
    assert_true(back.run_id == 0);
    uint64_t named = 0;
    for (int i = 0; i < 8; i++)
        named |= (uint64_t)buf[len - 32 + i] << (8 * i);
    const uint64_t host_ids[] = {77, 78, 0};
    for (int i = 0; i < 3; i++) {
        b = core_with_clients(&cfg, 6);
        fls_core_set_run_id(b, host_ids[i]);
        assert_int_equal(fls_core_restore(b, &back), FL_OK);
        assert_true(fls_core_run_id(b) == (host_ids[i] ? (named ? named : 1) : 0));
        fls_core_free(b);
    }
    fls_ckpt_clear(&back);
    fls_ckpt_clear(&k);
    free(buf);
    fls_core_free(a);
}

/* The first occurrence of what[0..n) in buf[0..len), or NULL (memmem is a GNU extension). */
static uint8_t *find_bytes(const void *buf, size_t len, const char *what, size_t n)
{
    const uint8_t *b = buf;
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(b + i, what, n) == 0)
            return (uint8_t *)b + i;
    return NULL;
}

/* Log lines of a core under test. */
typedef struct corelog {
    char text[8192];
    size_t len;
} corelog;

static void corelog_fn(void *user, fl_log_level level, const char *msg)
{
    corelog *b = user;
    (void)level;
    const int n = snprintf(b->text + b->len, sizeof b->text - b->len, "%s\n", msg);
    if (n > 0 && b->len + (size_t)n < sizeof b->text)
        b->len += (size_t)n;
}

/* A core of cfg (its log into lg, emptied first, every level) with 6 clients joined. */
static fls_core *core_logged(fls_config *cfg, corelog *lg)
{
    cfg->log.fn = corelog_fn;
    cfg->log.user = lg;
    cfg->log.min_level = FL_LOG_DEBUG;
    lg->len = 0;
    lg->text[0] = 0;
    return core_with_clients(cfg, 6);
}

/* The heap in use when the core said it wrote a checkpoint (the file written, before anything
 * the write made is released). */
static void heap_at_write_fn(void *user, fl_log_level level, const char *msg)
{
    (void)level;
    if (strncmp(msg, "checkpoint: wrote", 17) == 0)
        *(size_t *)user = heap_in_use();
}

/* fls_core_checkpoint_write writes the engine's model and FedAdam state from where they lie: it
 * copied them first (fls_core_checkpoint) and held the copy while the file was written, the
 * state once more (2,137,104 bytes more here, for a 2,137,080-byte state; now none). */
static void test_checkpoint_write_holds_no_copy(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:784-224-10");
    cfg.opt = fls_opt_config_default(FLS_OPT_FEDADAM);
    size_t at_write = 0;
    cfg.log.fn = heap_at_write_fn;
    cfg.log.user = &at_write;
    cfg.log.min_level = FL_LOG_INFO;
    fls_core *core = core_with_clients(&cfg, 6);
    char dir[] = "/tmp/fls_ckw_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    const size_t state_bytes = 3 * fls_core_arch(core)->n_params * sizeof(float);
    const size_t h0 = heap_in_use();
    assert_int_equal(fls_core_checkpoint_write(core, path), FL_OK);
    if (h0 && at_write >= h0 + state_bytes / 8) /* glibc: under an eighth of it, or more */
        fail_msg("writing a %zu-byte state held %zu bytes more", state_bytes, at_write - h0);
    fls_core *back = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_restore_file(back, path), FL_OK);
    assert_memory_equal(fls_core_params(back), fls_core_params(core),
                        fls_core_arch(core)->n_params * sizeof(float));
    fls_core_free(back);
    fls_core_free(core);
    unlink(path);
    rmdir(dir);
}

/* The settings a changed model.arch of fewer droppable layers brings: model.arch, and no
 * policy.keep_layers[D] for a layer that only followed policy.keep (an operator who changed
 * --arch read "policy.keep_layers[1] 0.75 -> (none)" of a run that never set keep_layers). A
 * layer's own keep value, which the new arch drops, is still said. */
static void test_canon_diff_arch_layers(void **state)
{
    (void)state;
    for (int own = 0; own < 2; own++) {
        fls_config was = small_config(), now = small_config();
        snprintf(was.arch, sizeof was.arch, "mlp:8-6-5-3"); /* 2 droppable layers */
        if (own)
            was.policy.keep_p_layer[1] = 0.5;
        char a[4096], b[4096], out[1024];
        size_t al = 0, bl = 0;
        assert_int_equal(fls_config_canon(&was, a, sizeof a, &al), FL_OK);
        assert_int_equal(fls_config_canon(&now, b, sizeof b, &bl), FL_OK);
        const size_t n = fls_config_canon_diff(a, al, b, bl, out, sizeof out);
        if (!strstr(out, "model.arch mlp:8-6-5-3 -> mlp:8-6-3") || n != (own ? 2u : 1u) ||
            (own && !strstr(out, "policy.keep_layers[1] 0.5 -> (none)")) ||
            (!own && strstr(out, "keep_layers")))
            fail_msg("own %d: %zu settings: '%s'", own, n, out);
    }
}

/* A checkpoint resumes under settings that differ only where they have no effect (those
 * fl_server warns about at start: policy.keep under policy.kind full, the afd settings under fd,
 * an optimizer's settings of another kind), with a warning that names them; a difference that
 * matters is still refused, by name. */
static void test_resume_inert_settings(void **state)
{
    (void)state;
    corelog *lg = calloc(1, sizeof *lg);
    assert_non_null(lg);
    for (int pass = 0; pass < 2; pass++) {
        fls_config cfg = small_config();
        cfg.policy.kind = pass == 0 ? FLS_POLICY_FULL : FLS_POLICY_FD;
        fls_core *a = core_with_clients(&cfg, 6);
        fls_ckpt k;
        assert_int_equal(fls_core_checkpoint(a, &k), FL_OK);
        fls_core_free(a);
        /* inert: under full, keep and a layer's keep; under both, eps_rel and momentum (fedavg) */
        fls_config other = cfg;
        if (pass == 0) {
            other.policy.keep_p = 0.5;
            other.policy.keep_p_layer[0] = 0.3;
        }
        other.policy.eps_rel = 0.25;
        other.opt.momentum = 0.5f;
        fls_core *b = core_logged(&other, lg);
        uint8_t dk[FL_SHA256_LEN];
        assert_int_equal(fls_config_digest(&other, dk), FL_OK);
        assert_memory_not_equal(dk, k.config_digest, FL_SHA256_LEN);
        if (fls_core_restore(b, &k) != FL_OK)
            fail_msg("pass %d: refused:\n%s", pass, lg->text);
        if (!strstr(lg->text, "settings that have no effect under this configuration") ||
            !strstr(lg->text, "policy.eps_rel 0.001 -> 0.25") ||
            !strstr(lg->text, "optimizer.momentum 0.9 -> 0.5") ||
            (pass == 0 && !strstr(lg->text, "policy.keep 0.75 -> 0.5")) ||
            (pass == 0 && !strstr(lg->text, "policy.keep_layers[0] 0.75 -> 0.3")))
            fail_msg("pass %d: the warning lacks a setting:\n%s", pass, lg->text);
        fls_core_free(b);
        /* under fd a layer's keep value matters: refused, named as such; one setting: "it" */
        if (pass == 1) {
            other = cfg;
            other.policy.keep_p_layer[0] = 0.5;
            b = core_logged(&other, lg);
            assert_int_equal(fls_core_restore(b, &k), FL_ERR_CHECKPOINT_MISMATCH);
            if (!strstr(lg->text, "1 setting changed since (the checkpoint's value -> this one's): "
                                  "policy.keep_layers[0] 0.75 -> 0.5. Set it back to resume"))
                fail_msg("log lacks the layer's keep value:\n%s", lg->text);
            fls_core_free(b);
        }
        /* a refusal counts and asks back only the settings that matter; those without effect
         * here are said apart (they may stay). Values read back as given: 0.7500001 is not
         * "0.75" (the %g of before: "policy.keep 0.75 -> 0.75"), a float32 lr 0.05 not
         * 0.0500000007, a bool false / true */
        other = cfg;
        other.policy.eps_rel = 0.25;        /* inert: no afd policy */
        other.policy.fd_per_client = 1;     /* inert under full, matters under fd */
        other.train.lr = 0.0500001f;        /* matters */
        other.log.fn = corelog_fn;
        other.log.user = lg;
        other.log.min_level = FL_LOG_DEBUG;
        if (pass == 0)
            other.policy.keep_p = 0.7500001; /* inert under full */
        else
            other.policy.keep_p = cfg.policy.keep_p + 1e-7; /* matters under fd */
        lg->len = 0;
        lg->text[0] = 0;
        b = core_with_clients(&other, 6);
        assert_int_equal(fls_core_restore(b, &k), FL_ERR_CHECKPOINT_MISMATCH);
        char want[256];
        snprintf(want, sizeof want, "train.lr %g -> 0.0500001", (double)cfg.train.lr);
        const char *also = strstr(lg->text, "also changed, without effect under this "
                                            "configuration, so they may stay: ");
        if (!also || !strstr(lg->text, want) || strstr(also, "train.lr") ||
            !strstr(also, "policy.eps_rel 0.001 -> 0.25") ||
            (pass == 0 && (!strstr(lg->text, "1 setting changed since") ||
                           !strstr(also, "policy.keep 0.75 -> 0.7500001") ||
                           !strstr(also, "policy.fd_per_client false -> true"))) ||
            (pass == 1 && (!strstr(lg->text, "3 settings changed since") ||
                           !strstr(lg->text, "policy.fd_per_client false -> true") ||
                           strstr(also, "policy.fd_per_client") || strstr(also, "policy.keep"))))
            fail_msg("pass %d: the refusal does not tell the settings apart:\n%s", pass,
                     lg->text);
        fls_core_free(b);
        /* the policy itself always matters, and with it what it makes inert */
        other = cfg;
        other.policy.kind = pass == 0 ? FLS_POLICY_FD : FLS_POLICY_FULL;
        b = core_logged(&other, lg);
        assert_int_equal(fls_core_restore(b, &k), FL_ERR_CHECKPOINT_MISMATCH);
        assert_non_null(strstr(lg->text, "policy.kind"));
        fls_core_free(b);
        fls_ckpt_clear(&k);
    }
    free(lg);
}

/* A resume refused for another configuration names the settings that changed, with both values
 * as an operator writes them: the checkpoint keeps its configuration's text (an optional CONFIG
 * section whose SHA-256 must be the digest in META). A file without it (earlier builds) gets the
 * list of the settings that enter the digest. The digest itself is that of earlier builds, so
 * their checkpoints still resume. */
static void test_resume_mismatch_names_settings(void **state)
{
    (void)state;
    fls_config cfg = small_config();
    /* the digest earlier builds wrote for small_config (before the text was kept) */
    static const char *old_digest =
        "8679235126ce53490f57818124e3e0448cf92441324bac6014910a127cd9fddd";
    uint8_t d[FL_SHA256_LEN];
    assert_int_equal(fls_config_digest(&cfg, d), FL_OK);
    char hex[2 * FL_SHA256_LEN + 1];
    for (int i = 0; i < FL_SHA256_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(hex, old_digest);

    fls_core *a = core_with_clients(&cfg, 6);
    fls_ckpt k, back;
    assert_int_equal(fls_core_checkpoint(a, &k), FL_OK);
    assert_non_null(k.config);
    assert_non_null(find_bytes(k.config, k.config_len, "clients_per_round=3\n", 20));
    uint8_t *buf = NULL;
    size_t len = 0;
    through_bytes(&k, &back, &buf, &len);
    assert_int_equal(back.config_len, k.config_len);
    assert_memory_equal(back.config, k.config, k.config_len);
    fls_core_free(a);

    /* three settings changed: each named, with the checkpoint's value and this one's */
    fls_config other = cfg;
    other.clients_per_round = 4;
    other.policy.keep_p = 0.5;
    snprintf(other.up_codec, sizeof other.up_codec, "q8");
    corelog *lg = calloc(1, sizeof *lg);
    other.log.fn = corelog_fn;
    other.log.user = lg;
    fls_core *b = core_with_clients(&other, 6);
    assert_int_equal(fls_core_restore(b, &back), FL_ERR_CHECKPOINT_MISMATCH);
    static const char *const want[] = {
        /* policy.keep has no effect under policy.kind full: said apart, not counted */
        "written by another configuration: 2 settings changed since",
        "without effect under this configuration, so they may stay: policy.keep 0.75 -> 0.5)",
        "round.clients 3 -> 4",
        "codec.up none -> q8b256", /* specs in canonical form */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(lg->text, want[i]))
            fail_msg("log lacks '%s':\n%s", want[i], lg->text);
    assert_null(strstr(lg->text, "run.seed"));
    assert_null(strstr(lg->text, "keep_layers")); /* it follows policy.keep: said there */

    fls_core_free(b);
    /* a file without the text (an earlier build): the settings that enter the digest */
    lg->len = 0;
    lg->text[0] = 0;
    fls_ckpt_clear(&back);
    free(buf);
    drop_config(&k);
    through_bytes(&k, &back, &buf, &len);
    assert_null(back.config);
    b = core_with_clients(&other, 6);
    assert_int_equal(fls_core_restore(b, &back), FL_ERR_CHECKPOINT_MISMATCH);
    if (!strstr(lg->text, "the file holds only the digest") ||
        !strstr(lg->text, "model.arch, run.seed, policy.*, optimizer.*, aggregation.*, "
                          "round.clients, round.overcommit, train.*, codec.down, codec.up, "
                          "codec.chunk_elems changed since the checkpoint was written"))
        fail_msg("log lacks the digested settings:\n%s", lg->text);
    fls_core_free(b);
    /* and it still resumes under its own configuration */
    a = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_restore(a, &back), FL_OK);
    fls_core_free(a);
    fls_ckpt_clear(&back);
    free(buf);
    fls_ckpt_clear(&k);

    /* the text must be the one the digest was made from, printable, and end in a newline */
    a = core_with_clients(&cfg, 6);
    assert_int_equal(fls_core_checkpoint(a, &k), FL_OK);
    fls_core_free(a);
    assert_int_equal(fls_ckpt_serialize(&k, &buf, &len), FL_OK);
    char err[256];
    uint8_t *t = find_bytes(buf, len, "clients_per_round=3", 19);
    assert_non_null(t);
    t[18] = '4';
    reseal(buf, len);
    assert_int_equal(fls_ckpt_parse(buf, len, &back, err, sizeof err), FL_ERR_CHECKPOINT_FORMAT);
    assert_non_null(strstr(err, "config section: not the text of the configuration digest"));
    t[18] = 1;
    reseal(buf, len);
    assert_int_equal(fls_ckpt_parse(buf, len, &back, err, sizeof err), FL_ERR_CHECKPOINT_FORMAT);
    free(buf);
    /* and the writer makes no file the parser would refuse */
    uint8_t *kt = find_bytes(k.config, k.config_len, "clients_per_round=3", 19);
    assert_non_null(kt);
    kt[18] = '4';
    assert_int_equal(fls_ckpt_serialize(&k, &buf, &len), FL_ERR_INVALID_ARG);
    kt[18] = '3';
    k.config[k.config_len - 1] = 'x';
    assert_int_equal(fls_ckpt_serialize(&k, &buf, &len), FL_ERR_INVALID_ARG);
    fls_ckpt_clear(&k);
    free(lg);
}

static void test_resume_exact(void **state)
{
    (void)state;
    simworld w;
    world_make(&w);
    fls_config cfg = sim_config(FLS_POLICY_AFD_MULTI, 0);
    cfg.max_rounds = 10;
    cfg.eval_every = 0;
    cfg.overcommit = 1.5; /* a sampled subset each round */
    cfg.clients_per_round = 4;
    cfg.opt = fls_opt_config_default(FLS_OPT_FEDADAM);
    cfg.opt.lr = 0.05f;
    simresult res;
    memset(&res, 0, sizeof res);
    fls_core *a = sim_core(&cfg);
    sim_rounds(a, &w, 10, 0, &res);
    assert_int_equal(fls_core_round(a), 10);

    char dir[] = "/tmp/fls_resume_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    fls_core *b = sim_core(&cfg);
    sim_rounds(b, &w, 5, 0, &res);
    assert_int_equal(fls_core_round(b), 5);
    assert_int_equal(fls_core_checkpoint_write(b, path), FL_OK);
    fls_core_free(b);

    /* A configuration with another seed refuses the file. */
    fls_config other = cfg;
    other.seed = 8;
    fls_core *x = sim_core(&other);
    assert_int_equal(fls_core_restore_file(x, path), FL_ERR_CHECKPOINT_MISMATCH);
    fls_core_free(x);

    fls_core *c = sim_core(&cfg);
    assert_int_equal(fls_core_restore_file(c, path), FL_OK);
    assert_int_equal(fls_core_round(c), 5);
    assert_int_equal(fls_core_model_version(c), 5);
    sim_rounds(c, &w, 10, 0, &res);
    assert_int_equal(fls_core_round(c), 10);
    const size_t np = fls_core_arch(a)->n_params;
    assert_memory_equal(fls_core_params(a), fls_core_params(c), np * sizeof(float));
    fls_ckpt ka, kc;
    assert_int_equal(fls_core_checkpoint(a, &ka), FL_OK);
    assert_int_equal(fls_core_checkpoint(c, &kc), FL_OK);
    assert_int_equal(ka.policy_len, kc.policy_len);
    assert_memory_equal(ka.policy, kc.policy, ka.policy_len);
    assert_int_equal(ka.opt_steps, kc.opt_steps);
    assert_int_equal(ka.n_opt, 2);
    for (size_t i = 0; i < ka.n_opt; i++)
        assert_memory_equal(ka.opt[i].data, kc.opt[i].data, ka.opt[i].n * sizeof(float));
    fls_ckpt_clear(&ka);
    fls_ckpt_clear(&kc);
    /* Damage on disk is refused with a clear status and leaves the core as it was. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 200, SEEK_SET);
    fputc(0xEE, f);
    fclose(f);
    assert_int_equal(fls_core_restore_file(c, path), FL_ERR_CHECKPOINT_CHECKSUM);
    assert_memory_equal(fls_core_params(a), fls_core_params(c), np * sizeof(float));
    unlink(path);
    rmdir(dir);
    fls_core_free(a);
    fls_core_free(c);
    world_free(&w);
}

/* fls_ckpt_serialize of both equal (the same checkpoint, byte for byte). */
static void assert_same_ckpt(const fls_ckpt *a, const fls_ckpt *b)
{
    uint8_t *ba = NULL, *bb = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(fls_ckpt_serialize(a, &ba, &la), FL_OK);
    assert_int_equal(fls_ckpt_serialize(b, &bb, &lb), FL_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    free(ba);
    free(bb);
}

/* fls_core_checkpoint_update refills a checkpoint of the engine over its own arrays (fl_server's
 * snapshot held the old and the new copy of the model and optimizer state at each round's end),
 * and makes anew one that is empty or of another engine; each time the bytes are
 * fls_core_checkpoint's. */
static void test_checkpoint_update(void **state)
{
    (void)state;
    simworld w;
    world_make(&w);
    fls_config cfg = sim_config(FLS_POLICY_AFD_MULTI, 0);
    cfg.eval_every = 0;
    cfg.clients_per_round = 4;
    cfg.opt = fls_opt_config_default(FLS_OPT_FEDADAM);
    simresult res;
    memset(&res, 0, sizeof res);
    fls_core *a = sim_core(&cfg);
    sim_rounds(a, &w, 2, 0, &res);
    fls_ckpt k, fresh;
    memset(&k, 0, sizeof k);
    assert_int_equal(fls_core_checkpoint_update(a, &k), FL_OK); /* empty: made anew */
    assert_int_equal(fls_core_checkpoint(a, &fresh), FL_OK);
    assert_same_ckpt(&k, &fresh);
    fls_ckpt_clear(&fresh);
    const float *params = k.params, *m = k.opt[0].data, *v = k.opt[1].data;
    sim_rounds(a, &w, 4, 0, &res);
    assert_int_equal(fls_core_checkpoint_update(a, &k), FL_OK); /* refilled in place */
    assert_ptr_equal(k.params, params);
    assert_ptr_equal(k.opt[0].data, m);
    assert_ptr_equal(k.opt[1].data, v);
    assert_int_equal(k.round, 4);
    assert_int_equal(fls_core_checkpoint(a, &fresh), FL_OK);
    assert_same_ckpt(&k, &fresh);
    fls_ckpt_clear(&fresh);
    /* another engine's (FedAvg: no optimizer arrays): made anew, as that engine's */
    fls_config other = cfg;
    other.opt = fls_opt_config_default(FLS_OPT_FEDAVG);
    fls_core *b = sim_core(&other);
    sim_rounds(b, &w, 1, 0, &res);
    assert_int_equal(fls_core_checkpoint_update(b, &k), FL_OK);
    assert_int_equal(fls_core_checkpoint(b, &fresh), FL_OK);
    assert_same_ckpt(&k, &fresh);
    fls_ckpt_clear(&fresh);
    fls_ckpt_clear(&k);
    fls_core_free(a);
    fls_core_free(b);
    world_free(&w);
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
        cmocka_unit_test(test_policy_moge_groups),
        cmocka_unit_test(test_policy_afd_multi),
        cmocka_unit_test(test_policy_client_bytes),
        cmocka_unit_test(test_policy_export_compact),
        cmocka_unit_test(test_policy_score_stats),
        cmocka_unit_test(test_policy_palette),
        cmocka_unit_test(test_config_digest),
        cmocka_unit_test(test_engine_tick_due),
        cmocka_unit_test(test_engine_quorum_and_late),
        cmocka_unit_test(test_engine_alloc_failure),
        cmocka_unit_test(test_restore_alloc_failure),
        cmocka_unit_test(test_engine_memory_selection),
        cmocka_unit_test(test_engine_forget),
        cmocka_unit_test(test_engine_start_and_shared_chunks),
        cmocka_unit_test(test_engine_client_error),
        cmocka_unit_test(test_engine_exhausted_one_by_one),
        cmocka_unit_test(test_engine_update_chunking),
        cmocka_unit_test(test_engine_client_table),
        cmocka_unit_test(test_engine_deadline),
        cmocka_unit_test(test_engine_deadline_holds_to_message),
        cmocka_unit_test(test_engine_rejections),
        cmocka_unit_test(test_engine_absurd_loss),
        cmocka_unit_test(test_engine_n_samples_bound),
        cmocka_unit_test(test_engine_vanishing_client),
        cmocka_unit_test(test_engine_refused_update),
        cmocka_unit_test(test_engine_archs),
        cmocka_unit_test(test_sim_policies),
        cmocka_unit_test(test_sim_target_and_codecs),
        cmocka_unit_test(test_sim_arrival_order),
        cmocka_unit_test(test_resume_after_target),
        cmocka_unit_test(test_run_id),
        cmocka_unit_test(test_resume_mismatch_names_settings),
        cmocka_unit_test(test_canon_diff_arch_layers),
        cmocka_unit_test(test_resume_inert_settings),
        cmocka_unit_test(test_checkpoint_write_holds_no_copy),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_checkpoint_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
