/* Unit tests for models/flm_lstm.c: LSTM forward/BPTT and the embedding layer.
 *
 * - Finite differences: loss = sum(out * R) for a fixed random R, evaluated in double from the
 *   float forward pass; five-point central differences with step EPS. Tolerance: |num - ana| <=
 *   FD_ATOL + FD_RTOL * |ana| for every single coordinate (not a norm over all of them).
 * - Golden values: a 2-layer PyTorch nn.LSTM computed in float64 (tests/fixtures/lstm/
 *   make_golden.py), compared element-wise within GOLD_ATOL + GOLD_RTOL * |ref|.
 * - A single step against a double-precision cell written here, over saturating inputs; NaN in
 *   the input must come out as NaN (a diverged model must not look healthy).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "flm_lstm.h"

#define EPS 5e-2f
#define FD_ATOL 2e-4
#define FD_RTOL 2e-3
#define GOLD_ATOL 2e-6
#define GOLD_RTOL 2e-5

/* Small deterministic generator (the test must not depend on other modules' RNG). */
static uint64_t lcg_state;
static float urand(float lo, float hi)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = (double)(lcg_state >> 40) / (double)(1ull << 24);
    return (float)(lo + (hi - lo) * u);
}
static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = urand(lo, hi);
}

static float *xalloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

/* A stack of L LSTM layers (L <= 2) with all buffers, for the FD and golden tests. */
typedef struct stack {
    int L, B, T, C, H;
    float *x, *w_ih[2], *w_hh[2], *b[2];
    float *out[2], *cache[2], *scratch;
    float *dx, *dmid, *dw_ih[2], *dw_hh[2], *db[2];
    float *R; /* dout of the top layer */
} stack;

static int cin(const stack *s, int l)
{
    return l == 0 ? s->C : s->H;
}

static void stack_init(stack *s, int L, int B, int T, int C, int H)
{
    memset(s, 0, sizeof *s);
    s->L = L, s->B = B, s->T = T, s->C = C, s->H = H;
    const size_t BT = (size_t)B * T;
    s->x = xalloc(BT * C);
    s->dx = xalloc(BT * C);
    s->dmid = xalloc(BT * H);
    s->R = xalloc(BT * H);
    s->scratch = xalloc(flm_lstm_scratch_floats(B, T, C > H ? C : H, H));
    for (int l = 0; l < L; l++) {
        s->w_ih[l] = xalloc((size_t)4 * H * cin(s, l));
        s->w_hh[l] = xalloc((size_t)4 * H * H);
        s->b[l] = xalloc((size_t)4 * H);
        s->dw_ih[l] = xalloc((size_t)4 * H * cin(s, l));
        s->dw_hh[l] = xalloc((size_t)4 * H * H);
        s->db[l] = xalloc((size_t)4 * H);
        s->out[l] = xalloc(BT * H);
        s->cache[l] = xalloc(flm_lstm_cache_floats(B, T, H));
    }
}

static void stack_random(stack *s, float wscale)
{
    const size_t BT = (size_t)s->B * s->T;
    fill(s->x, BT * s->C, -1.5f, 1.5f);
    fill(s->R, BT * s->H, -1.0f, 1.0f);
    for (int l = 0; l < s->L; l++) {
        fill(s->w_ih[l], (size_t)4 * s->H * cin(s, l), -wscale, wscale);
        fill(s->w_hh[l], (size_t)4 * s->H * s->H, -wscale, wscale);
        fill(s->b[l], (size_t)4 * s->H, -wscale, wscale);
    }
}

static void stack_free(stack *s)
{
    free(s->x), free(s->dx), free(s->dmid), free(s->R), free(s->scratch);
    for (int l = 0; l < s->L; l++) {
        free(s->w_ih[l]), free(s->w_hh[l]), free(s->b[l]);
        free(s->dw_ih[l]), free(s->dw_hh[l]), free(s->db[l]);
        free(s->out[l]), free(s->cache[l]);
    }
}

/* Forward through the stack; returns sum(out_top * R) in double. */
static double stack_loss(stack *s)
{
    const float *in = s->x;
    for (int l = 0; l < s->L; l++) {
        flm_lstm_forward(s->out[l], s->cache[l], in, s->w_ih[l], s->w_hh[l], s->b[l], s->B, s->T,
                         cin(s, l), s->H);
        in = s->out[l];
    }
    double loss = 0;
    const size_t n = (size_t)s->B * s->T * s->H;
    for (size_t i = 0; i < n; i++)
        loss += (double)s->out[s->L - 1][i] * s->R[i];
    return loss;
}

/* Backward through the stack with dout = R; gradients zeroed first. */
static void stack_backward(stack *s)
{
    const size_t BT = (size_t)s->B * s->T;
    for (int l = 0; l < s->L; l++) {
        memset(s->dw_ih[l], 0, (size_t)4 * s->H * cin(s, l) * sizeof(float));
        memset(s->dw_hh[l], 0, (size_t)4 * s->H * s->H * sizeof(float));
        memset(s->db[l], 0, (size_t)4 * s->H * sizeof(float));
    }
    /* dx is overwritten: poison it so that a missing write shows. */
    for (size_t i = 0; i < BT * s->C; i++)
        s->dx[i] = 1e30f;
    const float *dout = s->R;
    for (int l = s->L - 1; l >= 0; l--) {
        float *dinp = l == 0 ? s->dx : s->dmid;
        const float *inp = l == 0 ? s->x : s->out[l - 1];
        flm_lstm_backward(dinp, s->dw_ih[l], s->dw_hh[l], s->db[l], s->scratch, dout, s->cache[l],
                          inp, s->w_ih[l], s->w_hh[l], s->B, s->T, cin(s, l), s->H);
        dout = dinp;
    }
}

/* Central differences on every coordinate of p (n floats) against the analytic gradient g. */
static double fd_check(stack *s, float *p, const float *g, size_t n, const char *what)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const float keep = p[i];
        double l[4];
        const float steps[4] = {EPS, -EPS, 2 * EPS, -2 * EPS};
        for (int k = 0; k < 4; k++) {
            p[i] = keep + steps[k];
            l[k] = stack_loss(s);
        }
        p[i] = keep;
        /* Five-point stencil: truncation O(EPS^4), so EPS can be large enough for the float
         * rounding of the forward pass to stay well below the tolerance. */
        const double num = (8.0 * (l[0] - l[1]) - (l[2] - l[3])) / (12.0 * (double)EPS);
        const double err = fabs(num - g[i]);
        const double tol = FD_ATOL + FD_RTOL * fabs(g[i]);
        if (err / tol > worst)
            worst = err / tol;
        if (err > tol) {
            print_error("%s[%zu]: numeric %.6g analytic %.6g\n", what, i, num, (double)g[i]);
            fail();
        }
    }
    return worst;
}

static void run_fd(int L, int B, int T, int C, int H)
{
    stack s;
    stack_init(&s, L, B, T, C, H);
    lcg_state = 0x5eed0000ull + (uint64_t)(L * 1000 + B * 100 + T * 10 + H);
    stack_random(&s, 0.7f);
    stack_loss(&s);
    stack_backward(&s);
    /* Analytic gradients of a well-conditioned problem are O(0.1..1): make sure the check is
     * not vacuous (an all-zero gradient would pass the absolute tolerance). */
    double gmax = 0;
    for (size_t i = 0; i < (size_t)4 * H * C; i++)
        gmax = fmax(gmax, fabs(s.dw_ih[0][i]));
    assert_true(gmax > 0.05);

    /* fd_check reruns only the forward pass: the analytic gradients stay as they are. */
    double worst = fd_check(&s, s.x, s.dx, (size_t)B * T * C, "dinp");
    for (int l = 0; l < L; l++) {
        const size_t n_ih = (size_t)4 * H * cin(&s, l);
        worst = fmax(worst, fd_check(&s, s.w_ih[l], s.dw_ih[l], n_ih, "dw_ih"));
        worst = fmax(worst, fd_check(&s, s.w_hh[l], s.dw_hh[l], (size_t)4 * H * H, "dw_hh"));
        worst = fmax(worst, fd_check(&s, s.b[l], s.db[l], (size_t)4 * H, "db"));
    }
    print_message("fd L=%d B=%d T=%d C=%d H=%d: worst error / tolerance %.3f\n", L, B, T, C, H,
                  worst);
    stack_free(&s);
}

static void test_fd_one_layer(void **state)
{
    (void)state;
    run_fd(1, 3, 4, 3, 5);
    run_fd(1, 1, 1, 2, 3); /* single step: no recurrence, c_prev = 0 paths */
}

static void test_fd_two_layers(void **state)
{
    (void)state;
    run_fd(2, 2, 5, 3, 4);
    /* Odd sizes past the vector width: vector bodies and remainders, strided step views. */
    run_fd(2, 3, 6, 9, 37);
}

/* Backward accumulates into dw/db, overwrites dinp and accepts dinp == NULL. */
static void test_accumulate_and_null_dinp(void **state)
{
    (void)state;
    const int B = 2, T = 3, C = 3, H = 4;
    stack s;
    stack_init(&s, 1, B, T, C, H);
    lcg_state = 77;
    stack_random(&s, 0.5f);
    stack_loss(&s);
    stack_backward(&s);
    const size_t nw = (size_t)4 * H * C, nh = (size_t)4 * H * H;
    float *w1 = xalloc(nw), *h1 = xalloc(nh), *b1 = xalloc(4 * H), *dx1 = xalloc((size_t)B * T * C);
    memcpy(w1, s.dw_ih[0], nw * sizeof(float));
    memcpy(h1, s.dw_hh[0], nh * sizeof(float));
    memcpy(b1, s.db[0], 4 * H * sizeof(float));
    memcpy(dx1, s.dx, (size_t)B * T * C * sizeof(float));
    /* Second call on top of the first, without dinp: exactly doubles (x + x is exact). */
    flm_lstm_backward(NULL, s.dw_ih[0], s.dw_hh[0], s.db[0], s.scratch, s.R, s.cache[0], s.x,
                      s.w_ih[0], s.w_hh[0], B, T, C, H);
    for (size_t i = 0; i < nw; i++)
        assert_float_equal(s.dw_ih[0][i], 2 * w1[i], 0);
    for (size_t i = 0; i < nh; i++)
        assert_float_equal(s.dw_hh[0][i], 2 * h1[i], 0);
    for (int i = 0; i < 4 * H; i++)
        assert_float_equal(s.db[0][i], 2 * b1[i], 0);
    /* dinp from a third call into a poisoned buffer equals the first. */
    for (size_t i = 0; i < (size_t)B * T * C; i++)
        s.dx[i] = NAN;
    flm_lstm_backward(s.dx, s.dw_ih[0], s.dw_hh[0], s.db[0], s.scratch, s.R, s.cache[0], s.x,
                      s.w_ih[0], s.w_hh[0], B, T, C, H);
    assert_memory_equal(s.dx, dx1, (size_t)B * T * C * sizeof(float));
    free(w1), free(h1), free(b1), free(dx1);
    stack_free(&s);
}

/* Each sequence of a batch is independent: running sample b alone gives the same output. */
static void test_batch_independence(void **state)
{
    (void)state;
    const int B = 4, T = 6, C = 5, H = 7;
    stack s, one;
    stack_init(&s, 1, B, T, C, H);
    stack_init(&one, 1, 1, T, C, H);
    lcg_state = 99;
    stack_random(&s, 0.8f);
    stack_loss(&s);
    memcpy(one.w_ih[0], s.w_ih[0], (size_t)4 * H * C * sizeof(float));
    memcpy(one.w_hh[0], s.w_hh[0], (size_t)4 * H * H * sizeof(float));
    memcpy(one.b[0], s.b[0], (size_t)4 * H * sizeof(float));
    for (int b = 0; b < B; b++) {
        memcpy(one.x, s.x + (size_t)b * T * C, (size_t)T * C * sizeof(float));
        stack_loss(&one);
        for (int i = 0; i < T * H; i++)
            assert_float_equal(one.out[0][i], s.out[0][(size_t)b * T * H + i], 1e-6);
    }
    stack_free(&s);
    stack_free(&one);
}

/* One step, C = 1, H = 1, against a double-precision cell, from mild to saturating inputs. */
static void test_single_step_activations(void **state)
{
    (void)state;
    const float xs[] = {0.0f, 1e-4f, -0.3f, 0.9f, -2.5f, 4.0f, 9.5f, -12.0f, 40.0f, -95.0f, 200.0f};
    const float w_ih[4] = {1.0f, -0.5f, 0.75f, 0.25f}, w_hh[4] = {0};
    const float b[4] = {0.1f, -0.2f, 0.05f, 0.3f};
    float out, cache[7];
    for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++) {
        flm_lstm_forward(&out, cache, &xs[k], w_ih, w_hh, b, 1, 1, 1, 1);
        double z[4];
        for (int g = 0; g < 4; g++)
            z[g] = (double)w_ih[g] * xs[k] + b[g];
        const double i = 1 / (1 + exp(-z[0])), gg = tanh(z[2]), o = 1 / (1 + exp(-z[3]));
        const double ref = o * tanh(i * gg);
        assert_float_equal(out, ref, 1e-6);
        assert_true(isfinite(out));
    }
    /* NaN in, NaN out: through the input, and through each gate's own activation alone. */
    const float xnan = NAN, x1 = 0.5f;
    flm_lstm_forward(&out, cache, &xnan, w_ih, w_hh, b, 1, 1, 1, 1);
    assert_true(isnan(out));
    /* Two steps: at the first, f multiplies c_{-1} = 0 and is skipped. */
    const float x2[2] = {x1, -x1};
    float out2[2], cache2[14];
    for (int g = 0; g < 4; g++) {
        float bn[4];
        memcpy(bn, b, sizeof bn);
        bn[g] = NAN;
        flm_lstm_forward(out2, cache2, x2, w_ih, w_hh, bn, 1, 2, 1, 1);
        assert_true(isnan(out2[1]));
    }
}

/* ---- golden values from PyTorch ---- */

typedef struct block {
    char name[32];
    int n;
    float *v;
} block;

#define MAX_BLOCKS 32

static int load_golden(block *blocks, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    int nb = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        block *bl = &blocks[nb];
        if (nb == MAX_BLOCKS || sscanf(line, "%31s %d", bl->name, &bl->n) != 2 || bl->n <= 0 ||
            bl->n > 100000)
            break;
        bl->v = xalloc((size_t)bl->n);
        for (int i = 0; i < bl->n; i++)
            if (!fgets(line, sizeof line, f) || sscanf(line, "%f", &bl->v[i]) != 1) {
                fclose(f);
                return -1;
            }
        nb++;
    }
    fclose(f);
    return nb;
}

static const block *find(const block *blocks, int nb, const char *name, int n)
{
    for (int i = 0; i < nb; i++)
        if (strcmp(blocks[i].name, name) == 0) {
            if (blocks[i].n != n)
                fail_msg("golden block %s has %d values, expected %d", name, blocks[i].n, n);
            return &blocks[i];
        }
    fail_msg("golden block %s missing", name);
    return NULL;
}

static void expect_close(const float *got, const block *ref, const char *what)
{
    double worst = 0;
    for (int i = 0; i < ref->n; i++) {
        const double err = fabs((double)got[i] - ref->v[i]);
        const double tol = GOLD_ATOL + GOLD_RTOL * fabs(ref->v[i]);
        worst = fmax(worst, err / tol);
        if (err > tol)
            fail_msg("%s[%d]: got %.8g, PyTorch %.8g", what, i, (double)got[i], (double)ref->v[i]);
    }
    print_message("golden %-6s worst error / tolerance %.3f\n", what, worst);
}

static void test_golden_pytorch(void **state)
{
    (void)state;
    const char *root = getenv("FEDROP_SOURCE_ROOT");
    assert_non_null(root); /* set by meson for tests */
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/lstm/golden.txt", root);
    block blocks[MAX_BLOCKS];
    const int nb = load_golden(blocks, path);
    if (nb <= 0)
        fail_msg("cannot read %s", path);
    const block *dims = find(blocks, nb, "B_T_C_H", 4);
    const int B = (int)dims->v[0], T = (int)dims->v[1], C = (int)dims->v[2], H = (int)dims->v[3];
    const size_t BT = (size_t)B * T;

    stack s;
    stack_init(&s, 2, B, T, C, H);
    memcpy(s.x, find(blocks, nb, "x", (int)(BT * C))->v, BT * C * sizeof(float));
    memcpy(s.R, find(blocks, nb, "dout", (int)(BT * H))->v, BT * H * sizeof(float));
    char nm[32];
    for (int l = 0; l < 2; l++) {
        const int ci = cin(&s, l);
        snprintf(nm, sizeof nm, "w_ih%d", l);
        memcpy(s.w_ih[l], find(blocks, nb, nm, 4 * H * ci)->v, (size_t)4 * H * ci * sizeof(float));
        snprintf(nm, sizeof nm, "w_hh%d", l);
        memcpy(s.w_hh[l], find(blocks, nb, nm, 4 * H * H)->v, (size_t)4 * H * H * sizeof(float));
        snprintf(nm, sizeof nm, "b%d", l);
        memcpy(s.b[l], find(blocks, nb, nm, 4 * H)->v, (size_t)4 * H * sizeof(float));
    }
    stack_loss(&s);
    stack_backward(&s);

    expect_close(s.out[0], find(blocks, nb, "out1", (int)(BT * H)), "out1");
    expect_close(s.out[1], find(blocks, nb, "out2", (int)(BT * H)), "out2");
    expect_close(s.dx, find(blocks, nb, "dx", (int)(BT * C)), "dx");
    for (int l = 0; l < 2; l++) {
        const int ci = cin(&s, l);
        snprintf(nm, sizeof nm, "dw_ih%d", l);
        expect_close(s.dw_ih[l], find(blocks, nb, nm, 4 * H * ci), nm);
        snprintf(nm, sizeof nm, "dw_hh%d", l);
        expect_close(s.dw_hh[l], find(blocks, nb, nm, 4 * H * H), nm);
        snprintf(nm, sizeof nm, "db%d", l);
        expect_close(s.db[l], find(blocks, nb, nm, 4 * H), nm);
    }
    stack_free(&s);
    for (int i = 0; i < nb; i++)
        free(blocks[i].v);
}

/* ---- embedding ---- */

static void test_embedding(void **state)
{
    (void)state;
    const int V = 7, E = 3, B = 2, T = 4;
    const int32_t tokens[8] = {3, 0, 6, 3, 3, 1, 0, 6}; /* repeats; tokens 2, 4, 5 unused */
    float w[7 * 3], out[8 * 3], dout[8 * 3], dw[7 * 3];
    lcg_state = 5;
    fill(w, (size_t)V * E, -1, 1);
    fill(dout, (size_t)B * T * E, -1, 1);
    flm_embedding_forward(out, tokens, w, B, T, E);
    for (int r = 0; r < B * T; r++)
        assert_memory_equal(out + r * E, w + tokens[r] * E, E * sizeof(float));

    /* Backward against finite differences of sum(out * dout) (linear in w: exact up to
     * rounding), on top of a non-zero dw to check accumulation. */
    for (int i = 0; i < V * E; i++)
        dw[i] = 0.5f;
    flm_embedding_backward(dw, dout, tokens, B, T, E);
    for (int i = 0; i < V * E; i++) {
        const float keep = w[i];
        double l[2];
        for (int k = 0; k < 2; k++) {
            w[i] = keep + (k ? -EPS : EPS);
            flm_embedding_forward(out, tokens, w, B, T, E);
            l[k] = 0;
            for (int j = 0; j < B * T * E; j++)
                l[k] += (double)out[j] * dout[j];
        }
        w[i] = keep;
        const double num = (l[0] - l[1]) / (2.0 * (double)EPS);
        assert_float_equal(dw[i] - 0.5f, num, 1e-4);
    }
    /* Unused rows keep exactly what they held. */
    for (int e = 0; e < E; e++) {
        assert_float_equal(dw[2 * E + e], 0.5f, 0);
        assert_float_equal(dw[4 * E + e], 0.5f, 0);
        assert_float_equal(dw[5 * E + e], 0.5f, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_one_layer),
        cmocka_unit_test(test_fd_two_layers),
        cmocka_unit_test(test_accumulate_and_null_dinp),
        cmocka_unit_test(test_batch_independence),
        cmocka_unit_test(test_single_step_activations),
        cmocka_unit_test(test_golden_pytorch),
        cmocka_unit_test(test_embedding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
