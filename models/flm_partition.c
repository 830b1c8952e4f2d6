/* flm_partition.c: splitting a dataset over K clients (IID, Dirichlet label skew, shards, LEAF
 * users), into one permutation array + K+1 offsets.
 *
 * All randomness comes from one stream (seed, 0, 0, FL_RNG_PARTITION) consumed in a fixed order,
 * and all floating point (Dirichlet cut points) is computed in a fixed order too, so a partition
 * is bit-identical for the same inputs everywhere.
 */
#include "flm_data.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"

#define set_err(err, errlen, ...) ((void)fl_errf(err, errlen, FL_OK, __VA_ARGS__))

fl_status flm_partition_spec_parse(const char *s, flm_partition_spec *out, char *err,
                                   size_t errlen)
{
    if (!s || !out) {
        set_err(err, errlen, "no partition spec");
        return FL_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    if (strcmp(s, "iid") == 0) {
        out->kind = FLM_PART_IID;
        return FL_OK;
    }
    if (strcmp(s, "natural") == 0) {
        out->kind = FLM_PART_NATURAL;
        return FL_OK;
    }
    if (strcmp(s, "shards") == 0) {
        out->kind = FLM_PART_SHARDS;
        out->shards = 2;
        return FL_OK;
    }
    if (strncmp(s, "shards:", 7) == 0) {
        const char *p = s + 7;
        long v = 0;
        int digits = 0;
        for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
            v = v * 10 + (*p - '0');
        if (!digits || *p || v < 1 || v > 1024) {
            set_err(err, errlen, "partition \"%s\": shards per client must be 1..1024", s);
            return FL_ERR_INVALID_ARG;
        }
        out->kind = FLM_PART_SHARDS;
        out->shards = (int)v;
        return FL_OK;
    }
    if (strncmp(s, "dirichlet:", 10) == 0) {
        const char *p = s + 10;
        /* Digits, one optional '.', optional exponent: a plain decimal, no hex/inf/nan/locale. */
        char *end = NULL;
        const int ok_start = (*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9');
        const double a = ok_start ? strtod(p, &end) : 0.0;
        /* At least 1e-300: below (a subnormal such as 1e-320), log(U) / alpha in the Gamma
         * draw is -inf for every client, the weights normalise to NaN, and each class went
         * whole to client 0 rather than to a random one. */
        if (!ok_start || !end || *end || !(a >= 1e-300) || !isfinite(a) || a > 1e6) {
            set_err(err, errlen, "partition \"%s\": alpha must be a number in [1e-300, 1e6]", s);
            return FL_ERR_INVALID_ARG;
        }
        for (const char *q = p; q < end; q++)
            if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '-' ||
                  *q == '+')) {
                set_err(err, errlen, "partition \"%s\": alpha must be a decimal number", s);
                return FL_ERR_INVALID_ARG;
            }
        out->kind = FLM_PART_DIRICHLET;
        out->alpha = a;
        return FL_OK;
    }
    set_err(err, errlen, "unknown partition \"%s\" (iid, dirichlet:ALPHA, shards[:S], natural)", s);
    return FL_ERR_INVALID_ARG;
}

/* ---- Gamma sampling --------------------------------------------------------------------------- */

static double uniform_pos(fl_rng *r)
{
    return 1.0 - fl_rng_uniform_f64(r);   /* (0, 1] */
}

double flm_log_gamma_sample(fl_rng *r, double shape)
{
    if (!(shape > 0.0))
        return NAN;
    if (shape < 1.0) {
        /* Gamma(a) = Gamma(a + 1) * U^(1/a); the log keeps U^(1/a) from underflowing to 0 when
         * a is tiny (alpha = 0.01 gives U^100). */
        const double g = flm_log_gamma_sample(r, shape + 1.0);
        return g + log(uniform_pos(r)) / shape;
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        const double x = fl_rng_normal(r);
        double v = 1.0 + c * x;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        const double u = uniform_pos(r);
        if (u < 1.0 - 0.0331 * (x * x) * (x * x) ||
            log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return log(d) + log(v);
    }
}

/* ---- helpers -------------------------------------------------------------------------------- */

static void shuffle(uint32_t *a, size_t n, fl_rng *r)
{
    for (size_t i = n; i > 1; i--) {
        const size_t j = fl_rng_below(r, (uint32_t)i);
        const uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static fl_status part_alloc(flm_partition **out, size_t K, size_t N)
{
    flm_partition *p = calloc(1, sizeof *p);
    if (!p)
        return FL_ERR_NOMEM;
    p->K = K;
    p->N = N;
    p->index = malloc((N ? N : 1) * sizeof *p->index);
    p->offset = calloc(K + 1, sizeof *p->offset);
    if (!p->index || !p->offset) {
        flm_partition_free(p);
        return FL_ERR_NOMEM;
    }
    *out = p;
    return FL_OK;
}

/* Fills p->index / p->offset by a stable counting sort of order[0..N) by owner[order[i]]. */
static void group_by_owner(flm_partition *p, const uint32_t *order, const uint32_t *owner)
{
    for (size_t i = 0; i < p->N; i++)
        p->offset[owner[order[i]] + 1]++;
    for (size_t k = 0; k < p->K; k++)
        p->offset[k + 1] += p->offset[k];
    /* offset[k] doubles as the write cursor, then is shifted back. */
    for (size_t i = 0; i < p->N; i++)
        p->index[p->offset[owner[order[i]]]++] = order[i];
    for (size_t k = p->K; k > 0; k--)
        p->offset[k] = p->offset[k - 1];
    p->offset[0] = 0;
}

/* Samples sorted by label (stable over `order`), with class starts cstart[0..classes]. */
static fl_status sort_by_label(uint32_t *sorted, size_t *cstart, const flm_dataset *ds,
                               const uint32_t *order)
{
    const size_t Cn = (size_t)ds->classes;
    memset(cstart, 0, (Cn + 1) * sizeof *cstart);
    for (size_t i = 0; i < ds->N; i++) {
        const int32_t y = ds->y[i];
        if (y < 0 || y >= ds->classes)
            return FL_ERR_INVALID_ARG;
        cstart[y + 1]++;
    }
    for (size_t c = 0; c < Cn; c++)
        cstart[c + 1] += cstart[c];
    size_t *cur = malloc((Cn ? Cn : 1) * sizeof *cur);
    if (!cur)
        return FL_ERR_NOMEM;
    memcpy(cur, cstart, Cn * sizeof *cur);
    for (size_t i = 0; i < ds->N; i++)
        sorted[cur[ds->y[order[i]]]++] = order[i];
    free(cur);
    return FL_OK;
}

/* ---- the partitioners ------------------------------------------------------------------------ */

static fl_status part_iid(flm_partition *p, fl_rng *r)
{
    for (size_t i = 0; i < p->N; i++)
        p->index[i] = (uint32_t)i;
    shuffle(p->index, p->N, r);
    const size_t q = p->N / p->K, rem = p->N % p->K;
    for (size_t k = 0; k < p->K; k++)
        p->offset[k + 1] = p->offset[k] + q + (k < rem);
    return FL_OK;
}

static fl_status part_dirichlet(flm_partition *p, const flm_dataset *ds, double alpha, fl_rng *r)
{
    const size_t N = p->N, K = p->K, Cn = (size_t)ds->classes;
    uint32_t *order = malloc((N ? N : 1) * sizeof *order);
    uint32_t *sorted = malloc((N ? N : 1) * sizeof *sorted);
    uint32_t *owner = malloc((N ? N : 1) * sizeof *owner);
    size_t *cstart = malloc((Cn + 1) * sizeof *cstart);
    double *lg = malloc(K * sizeof *lg);
    fl_status st = FL_ERR_NOMEM;
    if (!order || !sorted || !owner || !cstart || !lg)
        goto out;
    for (size_t i = 0; i < N; i++)
        order[i] = (uint32_t)i;
    shuffle(order, N, r);
    if ((st = sort_by_label(sorted, cstart, ds, order)) != FL_OK)
        goto out;
    for (size_t c = 0; c < Cn; c++) {
        const size_t n_c = cstart[c + 1] - cstart[c];
        /* p_c ~ Dir(alpha 1_K) as normalised Gammas, normalised in log space. Drawn even for an
         * empty class so the stream position does not depend on class counts. */
        double mx = -INFINITY;
        for (size_t k = 0; k < K; k++) {
            lg[k] = flm_log_gamma_sample(r, alpha);
            mx = lg[k] > mx ? lg[k] : mx;
        }
        double sum = 0.0;
        for (size_t k = 0; k < K; k++) {
            lg[k] = exp(lg[k] - mx);
            sum += lg[k];
        }
        /* Client k takes the samples between the rounded cumulative cut points. */
        double cum = 0.0;
        size_t lo = 0;
        for (size_t k = 0; k < K; k++) {
            cum += lg[k];
            size_t hi = k + 1 == K ? n_c : (size_t)llround(cum / sum * (double)n_c);
            if (hi > n_c)
                hi = n_c;
            if (hi < lo)
                hi = lo;
            for (size_t j = lo; j < hi; j++)
                owner[sorted[cstart[c] + j]] = (uint32_t)k;
            lo = hi;
        }
    }
    group_by_owner(p, sorted, owner);
    st = FL_OK;
out:
    free(order);
    free(sorted);
    free(owner);
    free(cstart);
    free(lg);
    return st;
}

static fl_status part_shards(flm_partition *p, const flm_dataset *ds, int s, fl_rng *r)
{
    const size_t N = p->N, K = p->K, Cn = (size_t)ds->classes, S = K * (size_t)s;
    uint32_t *order = malloc((N ? N : 1) * sizeof *order);
    uint32_t *sorted = malloc((N ? N : 1) * sizeof *sorted);
    uint32_t *shard = malloc(S * sizeof *shard);
    size_t *cstart = malloc((Cn + 1) * sizeof *cstart);
    fl_status st = FL_ERR_NOMEM;
    if (!order || !sorted || !shard || !cstart)
        goto out;
    for (size_t i = 0; i < N; i++)
        order[i] = (uint32_t)i;
    shuffle(order, N, r);
    if ((st = sort_by_label(sorted, cstart, ds, order)) != FL_OK)
        goto out;
    for (size_t j = 0; j < S; j++)
        shard[j] = (uint32_t)j;
    shuffle(shard, S, r);
    /* Shard j covers sorted[j*N/S .. (j+1)*N/S): equal sizes up to one. */
    size_t w = 0;
    for (size_t k = 0; k < K; k++) {
        for (int t = 0; t < s; t++) {
            /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): K * s <= S, all set */
            const size_t j = shard[k * (size_t)s + (size_t)t];
            const size_t a = (size_t)((uint64_t)j * N / S);
            const size_t b = (size_t)((uint64_t)(j + 1) * N / S);
            memcpy(p->index + w, sorted + a, (b - a) * sizeof *sorted);
            w += b - a;
        }
        p->offset[k + 1] = w;
    }
    st = w == N ? FL_OK : FL_ERR_INTERNAL;
out:
    free(order);
    free(sorted);
    free(shard);
    free(cstart);
    return st;
}

static fl_status part_natural(flm_partition *p, const flm_dataset *ds, fl_rng *r)
{
    const size_t N = p->N, K = p->K, U = ds->n_users;
    uint32_t *group = malloc((U ? U : 1) * sizeof *group);   /* user -> client */
    uint32_t *owner = malloc((N ? N : 1) * sizeof *owner);
    uint32_t *order = malloc((N ? N : 1) * sizeof *order);
    fl_status st = FL_ERR_NOMEM;
    if (!group || !owner || !order)
        goto out;
    if (K == U) {
        for (size_t u = 0; u < U; u++)
            group[u] = (uint32_t)u;
    } else {
        uint32_t *perm = malloc(U * sizeof *perm);
        if (!perm)
            goto out;
        for (size_t u = 0; u < U; u++)
            perm[u] = (uint32_t)u;
        shuffle(perm, U, r);
        /* Position i of the shuffled users goes to client floor(i * K / U): near-equal groups. */
        for (size_t i = 0; i < U; i++)
            group[perm[i]] = (uint32_t)((uint64_t)i * K / U);
        free(perm);
    }
    for (size_t i = 0; i < N; i++) {
        if (ds->user[i] >= U) {
            st = FL_ERR_INVALID_ARG;
            goto out;
        }
        owner[i] = group[ds->user[i]];
        order[i] = (uint32_t)i;
    }
    group_by_owner(p, order, owner);
    st = FL_OK;
out:
    free(group);
    free(owner);
    free(order);
    return st;
}

fl_status flm_partition_make_err(flm_partition **out, const flm_dataset *ds,
                                 const flm_partition_spec *spec, size_t K, uint64_t seed,
                                 char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
#define REFUSE(...) return fl_errf(err, errlen, FL_ERR_INVALID_ARG, __VA_ARGS__)
    if (!ds || !spec)
        REFUSE("no dataset or no partition spec");
    if (ds->N > UINT32_MAX)
        REFUSE("%zu samples: at most 4294967295 can be partitioned", ds->N);
    switch (spec->kind) {
    case FLM_PART_IID:
        break;
    case FLM_PART_DIRICHLET:
        /* the parser's bounds (flm_partition_spec_parse): below 1e-300 (a subnormal) every
         * class went whole to client 0 (log(U) / alpha is -inf for every client) */
        if (!(spec->alpha >= 1e-300) || !(spec->alpha <= 1e6))
            REFUSE("dirichlet: alpha %g is outside [1e-300, 1e6]", spec->alpha);
        break;
    case FLM_PART_SHARDS:
        if (spec->shards < 1)
            REFUSE("shards: %d shards a client, want at least 1", spec->shards);
        if (K > ds->N / (size_t)spec->shards)
            REFUSE("shards:%d: %zu samples cannot fill %d shards for each of %zu clients (at "
                   "least one sample a shard)", spec->shards, ds->N, spec->shards, K);
        break;
    case FLM_PART_NATURAL:
        if (!ds->user || ds->n_users == 0)
            REFUSE("natural: the dataset has no per-user split (LEAF datasets have one: "
                   "femnist, shakespeare)");
        if (ds->n_users > UINT32_MAX)
            REFUSE("natural: %zu users, more than 4294967295", ds->n_users);
        if (K == 0)
            K = ds->n_users;
        if (K > ds->n_users)
            REFUSE("natural: %zu users cannot fill %zu shards (a shard takes whole users, at "
                   "least one)", ds->n_users, K);
        break;
    default:
        REFUSE("unknown partition kind %d", (int)spec->kind);
    }
    if (K == 0)
        REFUSE("no clients to partition over (K = 0)");
    if (K > UINT32_MAX)
        REFUSE("%zu clients, more than 4294967295", K);
#undef REFUSE
    flm_partition *p;
    fl_status st = part_alloc(&p, K, ds->N);
    if (st != FL_OK)
        return st;
    fl_rng r = fl_rng_stream(seed, 0, 0, FL_RNG_PARTITION);
    switch (spec->kind) {
    case FLM_PART_IID: st = part_iid(p, &r); break;
    case FLM_PART_DIRICHLET: st = part_dirichlet(p, ds, spec->alpha, &r); break;
    case FLM_PART_SHARDS: st = part_shards(p, ds, spec->shards, &r); break;
    default: st = part_natural(p, ds, &r); break;
    }
    if (st != FL_OK) {
        /* what the partitioners refuse: a sample they cannot place */
        if (st == FL_ERR_INVALID_ARG && spec->kind == FLM_PART_NATURAL)
            set_err(err, errlen, "natural: a sample's user is not one of the dataset's %zu users",
                    ds->n_users);
        else if (st == FL_ERR_INVALID_ARG)
            set_err(err, errlen, "a sample's label is outside [0, %d)", ds->classes);
        flm_partition_free(p);
        return st;
    }
    *out = p;
    return FL_OK;
}

fl_status flm_partition_make(flm_partition **out, const flm_dataset *ds,
                             const flm_partition_spec *spec, size_t K, uint64_t seed)
{
    return flm_partition_make_err(out, ds, spec, K, seed, NULL, 0);
}

fl_status flm_partition_client(const flm_partition *p, size_t k, const uint32_t **idx, size_t *n)
{
    if (!p || !idx || !n || k >= p->K)
        return FL_ERR_INVALID_ARG;
    *idx = p->index + p->offset[k];
    *n = p->offset[k + 1] - p->offset[k];
    return FL_OK;
}

void flm_partition_free(flm_partition *p)
{
    if (!p)
        return;
    free(p->index);
    free(p->offset);
    free(p);
}
