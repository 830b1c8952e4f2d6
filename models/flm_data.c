/* flm_data.c: the in-memory dataset and the synthetic generators. */
#include "flm_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"

fl_status flm_dataset_new(flm_dataset **out, flm_data_kind kind, size_t N, int C, int H, int W,
                          int classes)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (C <= 0 || H <= 0 || W <= 0 || classes <= 0 ||
        (kind != FLM_DATA_FLOAT && kind != FLM_DATA_TOKENS))
        return FL_ERR_INVALID_ARG;
    if (kind == FLM_DATA_TOKENS && (C != 1 || W != 1))
        return FL_ERR_INVALID_ARG;
    const size_t L = (size_t)C * (size_t)H * (size_t)W;
    if (L / (size_t)C / (size_t)H != (size_t)W)
        return FL_ERR_OVERFLOW;
    const size_t elem = kind == FLM_DATA_FLOAT ? sizeof(float) : sizeof(int32_t);
    if (N && L > SIZE_MAX / elem / N)
        return FL_ERR_OVERFLOW;
    flm_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return FL_ERR_NOMEM;
    ds->kind = kind;
    ds->N = N;
    ds->C = C;
    ds->H = H;
    ds->W = W;
    ds->sample_len = L;
    ds->classes = classes;
    const size_t n_el = (N * L) != 0 ? N * L : 1;
    if (kind == FLM_DATA_FLOAT)
        ds->x = calloc(n_el, sizeof(float));
    else
        ds->tokens = calloc(n_el, sizeof(int32_t));
    ds->y = calloc(N ? N : 1, sizeof(int32_t));
    if ((!ds->x && !ds->tokens) || !ds->y) {
        flm_dataset_free(ds);
        return FL_ERR_NOMEM;
    }
    *out = ds;
    return FL_OK;
}

void flm_dataset_free(flm_dataset *ds)
{
    if (!ds)
        return;
    free(ds->x);
    free(ds->tokens);
    free(ds->y);
    free(ds->user);
    if (ds->users)
        for (size_t u = 0; u < ds->n_users; u++)
            free(ds->users[u]);
    free(ds->users);
    free(ds);
}

fl_status flm_dataset_subset(flm_dataset **out, const flm_dataset *ds, const uint32_t *idx,
                             size_t n)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (!ds || (n && !idx))
        return FL_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= ds->N)
            return FL_ERR_INVALID_ARG;
    flm_dataset *s;
    fl_status st = flm_dataset_new(&s, ds->kind, n, ds->C, ds->H, ds->W, ds->classes);
    if (st != FL_OK)
        return st;
    const size_t L = ds->sample_len;
    for (size_t i = 0; i < n; i++) {
        if (ds->kind == FLM_DATA_FLOAT)
            memcpy(s->x + i * L, ds->x + (size_t)idx[i] * L, L * sizeof(float));
        else
            memcpy(s->tokens + i * L, ds->tokens + (size_t)idx[i] * L, L * sizeof(int32_t));
        s->y[i] = ds->y[idx[i]];
    }
    if (ds->user && ds->users) {
        s->user = malloc((n ? n : 1) * sizeof *s->user);
        s->users = calloc(ds->n_users ? ds->n_users : 1, sizeof *s->users);
        if (!s->user || !s->users) {
            flm_dataset_free(s);
            return FL_ERR_NOMEM;
        }
        s->n_users = ds->n_users;
        for (size_t u = 0; u < ds->n_users; u++) {
            s->users[u] = strdup(ds->users[u]);
            if (!s->users[u]) {
                flm_dataset_free(s);
                return FL_ERR_NOMEM;
            }
        }
        for (size_t i = 0; i < n; i++)
            s->user[i] = ds->user[idx[i]];
    }
    *out = s;
    return FL_OK;
}

const float *flm_dataset_x(const flm_dataset *ds, size_t i)
{
    if (!ds || ds->kind != FLM_DATA_FLOAT || i >= ds->N)
        return NULL;
    return ds->x + i * ds->sample_len;
}

const int32_t *flm_dataset_tokens(const flm_dataset *ds, size_t i)
{
    if (!ds || ds->kind != FLM_DATA_TOKENS || i >= ds->N)
        return NULL;
    return ds->tokens + i * ds->sample_len;
}

void flm_dataset_label_counts(const flm_dataset *ds, size_t *counts)
{
    if (!ds || !counts)
        return;
    memset(counts, 0, (size_t)ds->classes * sizeof *counts);
    for (size_t i = 0; i < ds->N; i++)
        if (ds->y[i] >= 0 && ds->y[i] < ds->classes)
            counts[ds->y[i]]++;
}

/* ---- synthetic ------------------------------------------------------------------------------ */

/* Stream layout under purpose FL_RNG_DATA: round 0 holds the dataset-level draws (centres,
 * successor table), round 1 one stream per sample (client field = sample index), so a sample is
 * reproducible alone. Samples beyond 2^32 reuse streams; N is far below that in practice. */

fl_status flm_dataset_synth_images(flm_dataset **out, size_t N, int C, int H, int W, int classes,
                                   float sigma, uint64_t seed)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (!(sigma >= 0.0f) || !isfinite(sigma) || N > UINT32_MAX)
        return FL_ERR_INVALID_ARG;
    flm_dataset *ds;
    fl_status st = flm_dataset_new(&ds, FLM_DATA_FLOAT, N, C, H, W, classes);
    if (st != FL_OK)
        return st;
    const size_t L = ds->sample_len;
    if ((size_t)classes > SIZE_MAX / sizeof(float) / L) {
        flm_dataset_free(ds);
        return FL_ERR_OVERFLOW;
    }
    float *centre = malloc((size_t)classes * L * sizeof *centre);  /* (classes, L) */
    if (!centre) {
        flm_dataset_free(ds);
        return FL_ERR_NOMEM;
    }
    fl_rng r = fl_rng_stream(seed, 0, 0, FL_RNG_DATA);
    for (size_t j = 0; j < (size_t)classes * L; j++)
        centre[j] = 0.2f + 0.6f * fl_rng_uniform(&r);
    for (size_t i = 0; i < N; i++) {
        fl_rng s = fl_rng_stream(seed, 1, (uint32_t)i, FL_RNG_DATA);
        const int c = (int)(i % (size_t)classes);
        ds->y[i] = c;
        const float *m = centre + (size_t)c * L;
        float *x = ds->x + i * L;
        for (size_t j = 0; j < L; j++) {
            float v = m[j] + sigma * (float)fl_rng_normal(&s);
            x[j] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
    free(centre);
    *out = ds;
    return FL_OK;
}

fl_status flm_dataset_synth_tokens(flm_dataset **out, size_t N, int T, int vocab, float noise,
                                   uint64_t seed)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (!(noise >= 0.0f && noise <= 1.0f) || vocab < 2 || N > UINT32_MAX)
        return FL_ERR_INVALID_ARG;
    flm_dataset *ds;
    fl_status st = flm_dataset_new(&ds, FLM_DATA_TOKENS, N, 1, T, 1, vocab);
    if (st != FL_OK)
        return st;
    int32_t *succ = malloc((size_t)vocab * sizeof *succ);
    if (!succ) {
        flm_dataset_free(ds);
        return FL_ERR_NOMEM;
    }
    /* The successor table is a random permutation, so no id is a sink and every id stays in use. */
    for (int v = 0; v < vocab; v++)
        succ[v] = v;
    fl_rng r = fl_rng_stream(seed, 0, 0, FL_RNG_DATA);
    for (int v = vocab - 1; v > 0; v--) {
        const int j = (int)fl_rng_below(&r, (uint32_t)v + 1);
        const int32_t t = succ[v];
        succ[v] = succ[j];
        succ[j] = t;
    }
    const uint32_t thresh = (uint32_t)((double)noise * 4294967296.0 > 4294967295.0
                                           ? 4294967295.0 : (double)noise * 4294967296.0);
    for (size_t i = 0; i < N; i++) {
        fl_rng s = fl_rng_stream(seed, 1, (uint32_t)i, FL_RNG_DATA);
        int32_t *tk = ds->tokens + i * (size_t)T;
        int32_t cur = (int32_t)fl_rng_below(&s, (uint32_t)vocab);
        for (int t = 0; t <= T; t++) {
            if (t > 0) {
                const int random = noise >= 1.0f || fl_rng_u32(&s) < thresh;
                cur = random ? (int32_t)fl_rng_below(&s, (uint32_t)vocab) : succ[cur];
            }
            if (t < T)
                tk[t] = cur;
            else
                ds->y[i] = cur;
        }
    }
    free(succ);
    *out = ds;
    return FL_OK;
}
