/* fls_opt.c: server optimizers (see fls_opt.h for the formulas). */
#include "fls_opt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fls_opt {
    fls_opt_config cfg;
    size_t n;        /* N parameters */
    uint64_t steps;
    float *m;        /* (N) first moment / momentum, NULL for FedAvg */
    float *v;        /* (N) second moment, NULL unless adaptive */
};

static const char *const kind_names[] = {"fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi"};

fls_opt_config fls_opt_config_default(fls_opt_kind kind)
{
    fls_opt_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = 1.0f;
    c.momentum = 0.9f;
    c.beta1 = 0.9f;
    c.beta2 = 0.99f;
    c.tau = 1e-3f;
    c.v0 = -1.0f;
    if (kind == FLS_OPT_FEDADAGRAD || kind == FLS_OPT_FEDADAM || kind == FLS_OPT_FEDYOGI)
        c.lr = 0.01f;
    return c;
}

fl_status fls_opt_kind_parse(const char *name, fls_opt_kind *kind)
{
    if (!name || !kind)
        return FL_ERR_INVALID_ARG;
    for (int k = 0; k < (int)(sizeof kind_names / sizeof kind_names[0]); k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (fls_opt_kind)k;
            return FL_OK;
        }
    }
    return FL_ERR_INVALID_ARG;
}

const char *fls_opt_kind_name(fls_opt_kind kind)
{
    if ((int)kind < 0 || (int)kind >= (int)(sizeof kind_names / sizeof kind_names[0]))
        return "unknown";
    return kind_names[kind];
}

static int is_adaptive(fls_opt_kind k)
{
    return k == FLS_OPT_FEDADAGRAD || k == FLS_OPT_FEDADAM || k == FLS_OPT_FEDYOGI;
}

static int in01(float x) /* [0, 1) and finite */
{
    return x >= 0.0f && x < 1.0f;
}

static float v_init(const fls_opt_config *c)
{
    return c->v0 < 0.0f ? c->tau * c->tau : c->v0;
}

fl_status fls_opt_new(const fls_opt_config *cfg, size_t n_params, fls_opt **out)
{
    if (!cfg || !out || n_params == 0 || n_params > SIZE_MAX / sizeof(float))
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if ((int)cfg->kind < FLS_OPT_FEDAVG || (int)cfg->kind > FLS_OPT_FEDYOGI)
        return FL_ERR_INVALID_ARG;
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return FL_ERR_INVALID_ARG;
    if (cfg->kind == FLS_OPT_FEDAVGM && !in01(cfg->momentum))
        return FL_ERR_INVALID_ARG;
    if (is_adaptive(cfg->kind)) {
        if (!in01(cfg->beta1) || !(cfg->tau > 0.0f) || !isfinite(cfg->tau) || !isfinite(cfg->v0))
            return FL_ERR_INVALID_ARG;
        if (cfg->kind != FLS_OPT_FEDADAGRAD && !in01(cfg->beta2))
            return FL_ERR_INVALID_ARG;
    }
    fls_opt *o = calloc(1, sizeof *o);
    if (!o)
        return FL_ERR_NOMEM;
    o->cfg = *cfg;
    o->n = n_params;
    if (cfg->kind != FLS_OPT_FEDAVG) {
        o->m = malloc(n_params * sizeof(float));
        if (!o->m) {
            fls_opt_free(o);
            return FL_ERR_NOMEM;
        }
    }
    if (is_adaptive(cfg->kind)) {
        o->v = malloc(n_params * sizeof(float));
        if (!o->v) {
            fls_opt_free(o);
            return FL_ERR_NOMEM;
        }
    }
    fls_opt_reset(o);
    *out = o;
    return FL_OK;
}

void fls_opt_free(fls_opt *opt)
{
    if (!opt)
        return;
    free(opt->m);
    free(opt->v);
    free(opt);
}

void fls_opt_reset(fls_opt *opt)
{
    if (!opt)
        return;
    opt->steps = 0;
    if (opt->m)
        memset(opt->m, 0, opt->n * sizeof(float));
    if (opt->v) {
        const float v0 = v_init(&opt->cfg);
        for (size_t i = 0; i < opt->n; i++)
            opt->v[i] = v0;
    }
}

/* 1 if f is an infinity or a NaN (its exponent all ones): integer operations, so that the check
 * loops vectorize as the steps do. */
static inline uint32_t nonfinite(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* The adaptive kinds' v after one step (Adagrad, Adam, Yogi). */
static inline float adaptive_v(fls_opt_kind k, float b2, float vi, float d2)
{
    if (k == FLS_OPT_FEDADAGRAD)
        return vi + d2;
    if (k == FLS_OPT_FEDADAM)
        return b2 * vi + (1.0f - b2) * d2;
    const float diff = vi - d2;
    const float sgn = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
    return vi - (1.0f - b2) * d2 * sgn;
}

/* Whether the step would leave the finite floats (or make v negative) on a coordinate it
 * changes: the same expressions as the step, nothing written. */
static int step_would_fail(const fls_opt *opt, const float *restrict x, const float *restrict d,
                           const uint8_t *held)
{
    const size_t N = opt->n;
    const fls_opt_config *c = &opt->cfg;
    const float lr = c->lr;
    const float *restrict m = opt->m;
    const float *restrict v = opt->v;
    uint32_t bad = 0;
    switch (c->kind) {
    case FLS_OPT_FEDAVG:
        for (size_t i = 0; i < N; i++)
            bad |= (held ? held[i] != 0 : 1u) & nonfinite(x[i] + lr * d[i]);
        break;
    case FLS_OPT_FEDAVGM: {
        const float mu = c->momentum;
        for (size_t i = 0; i < N; i++) {
            const float mi = mu * m[i] + d[i];
            bad |= (held ? held[i] != 0 : 1u) & (nonfinite(mi) | nonfinite(x[i] + lr * mi));
        }
        break;
    }
    default: {
        const float b1 = c->beta1, b2 = c->beta2, tau = c->tau;
        const fls_opt_kind k = c->kind;
        for (size_t i = 0; i < N; i++) {
            const float di = d[i];
            const float mi = b1 * m[i] + (1.0f - b1) * di;
            const float vi = adaptive_v(k, b2, v[i], di * di);
            const float xo = x[i] + lr * mi / (sqrtf(vi) + tau);
            bad |= (held ? held[i] != 0 : 1u) &
                   (nonfinite(mi) | nonfinite(vi) | (uint32_t)(vi < 0.0f) | nonfinite(xo));
        }
        break;
    }
    }
    return bad != 0;
}

/* The per-kind loops are written out so that each vectorizes; `held` is applied as a select so
 * that an unheld coordinate keeps its exact bits. */
fl_status fls_opt_step(fls_opt *opt, float *params, const float *delta, const uint8_t *held)
{
    if (!opt || !params || !delta)
        return FL_ERR_INVALID_ARG;
    const size_t N = opt->n;
    const fls_opt_config *c = &opt->cfg;
    if ((unsigned)c->kind > FLS_OPT_FEDYOGI)
        return FL_ERR_INVALID_ARG;
    /* First the step is checked, nothing written: a model or state that would leave the finite
     * floats (a checkpoint's extreme values, an overflow) is refused whole, the model and state
     * as they were. Then it is taken. */
    if (step_would_fail(opt, params, delta, held))
        return FL_ERR_NUMERIC;
    const float lr = c->lr;
    float *restrict x = params;
    const float *restrict d = delta;
    float *restrict m = opt->m;
    float *restrict v = opt->v;
    switch (c->kind) {
    case FLS_OPT_FEDAVG:
        for (size_t i = 0; i < N; i++)
            if (!held || held[i])
                x[i] += lr * d[i];
        break;
    case FLS_OPT_FEDAVGM: {
        const float mu = c->momentum;
        for (size_t i = 0; i < N; i++) {
            if (held && !held[i])
                continue;
            const float mi = mu * m[i] + d[i];
            m[i] = mi;
            x[i] += lr * mi;
        }
        break;
    }
    default: {
        const float b1 = c->beta1, b2 = c->beta2, tau = c->tau;
        const fls_opt_kind k = c->kind;
        for (size_t i = 0; i < N; i++) {
            if (held && !held[i])
                continue;
            const float di = d[i];
            const float mi = b1 * m[i] + (1.0f - b1) * di;
            const float vi = adaptive_v(k, b2, v[i], di * di);
            m[i] = mi;
            v[i] = vi;
            x[i] += lr * mi / (sqrtf(vi) + tau);
        }
        break;
    }
    }
    opt->steps++;
    return FL_OK;
}

const fls_opt_config *fls_opt_get_config(const fls_opt *opt)
{
    return &opt->cfg;
}

size_t fls_opt_n_params(const fls_opt *opt)
{
    return opt->n;
}

size_t fls_opt_n_state(const fls_opt *opt)
{
    return (opt->m ? 1u : 0u) + (opt->v ? 1u : 0u);
}

float *fls_opt_state(fls_opt *opt, size_t i, const char **name, size_t *n)
{
    float *p = NULL;
    const char *nm = NULL;
    if (i == 0 && opt->m) {
        p = opt->m;
        nm = "m";
    } else if (i == 1 && opt->v) {
        p = opt->v;
        nm = "v";
    }
    if (name)
        *name = nm;
    if (n)
        *n = p ? opt->n : 0;
    return p;
}

uint64_t fls_opt_steps(const fls_opt *opt)
{
    return opt->steps;
}

void fls_opt_set_steps(fls_opt *opt, uint64_t steps)
{
    opt->steps = steps;
}
