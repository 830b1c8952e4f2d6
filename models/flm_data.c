/* flm_data.c: the in-memory dataset and the synthetic generators. */
#include "fl_mem.h"
#include "flm_data.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fl_rng.h"

/* flm_dataset_new's body; zero = 0 leaves x/tokens and y uninitialised for a caller that writes
 * every sample (flm_dataset_subset), and offers a large x/tokens to huge pages and populates it in
 * one call (fl_mem.h: on this kind of VM each 4 KiB page's first write is a costly fault). */
static fl_status dataset_alloc(flm_dataset **out, flm_data_kind kind, size_t N, int C, int H,
                               int W, int classes, int zero)
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
    void *body = zero ? calloc(n_el, elem) : malloc(n_el * elem);
    if (kind == FLM_DATA_FLOAT)
        ds->x = body;
    else
        ds->tokens = body;
    ds->y = zero ? calloc(N ? N : 1, sizeof(int32_t)) : malloc((N ? N : 1) * sizeof(int32_t));
    if (!body || !ds->y) {
        flm_dataset_free(ds);
        return FL_ERR_NOMEM;
    }
    if (!zero) {
        fl_advise_huge(body, n_el * elem);
        fl_prefault_write(body, n_el * elem);
    }
    *out = ds;
    return FL_OK;
}

fl_status flm_dataset_new(flm_dataset **out, flm_data_kind kind, size_t N, int C, int H, int W,
                          int classes)
{
    return dataset_alloc(out, kind, N, C, H, W, classes, 1);
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
    fl_status st = dataset_alloc(&s, ds->kind, n, ds->C, ds->H, ds->W, ds->classes, 0);
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

fl_status flm_dataset_keep(flm_dataset *ds, const uint32_t *idx, size_t n)
{
    if (!ds || (!idx && n > ds->N))
        return FL_ERR_INVALID_ARG;
    for (size_t i = 0; idx && i < n; i++)
        if (idx[i] >= ds->N || (i && idx[i] <= idx[i - 1]))
            return FL_ERR_INVALID_ARG;
    /* idx[i] >= i, increasing: sample i is written only after every sample that reads it moved */
    const size_t L = ds->sample_len;
    for (size_t i = 0; idx && i < n; i++) {
        const size_t j = idx[i];
        if (j != i) {
            if (ds->kind == FLM_DATA_FLOAT)
                memcpy(ds->x + i * L, ds->x + j * L, L * sizeof(float));
            else
                memcpy(ds->tokens + i * L, ds->tokens + j * L, L * sizeof(int32_t));
            ds->y[i] = ds->y[j];
            if (ds->user)
                ds->user[i] = ds->user[j];
        }
    }
    ds->N = n;
    /* give back the tail; a shrink that fails leaves the larger block, which is as good */
    const size_t n1 = n ? n : 1;
    if (ds->kind == FLM_DATA_FLOAT) {
        float *x = realloc(ds->x, n1 * L * sizeof *x);
        if (x)
            ds->x = x;
    } else {
        int32_t *t = realloc(ds->tokens, n1 * L * sizeof *t);
        if (t)
            ds->tokens = t;
    }
    int32_t *y = realloc(ds->y, n1 * sizeof *y);
    if (y)
        ds->y = y;
    if (ds->user || ds->users) { /* a set with a user table has its samples' ids, even none */
        uint32_t *u = realloc(ds->user, n1 * sizeof *u);
        if (u)
            ds->user = u;
    }
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
 * successor table), round 1 one stream per training sample and round 2 one per held-out sample
 * (client field = sample index), so a sample is reproducible alone. N is at most 2^32 - 1. */
#define SYNTH_SAMPLE_ROUND(split) ((split) == FLM_SPLIT_HELDOUT ? 2u : 1u)

fl_status flm_dataset_synth_images(flm_dataset **out, size_t N, int C, int H, int W, int classes,
                                   float sigma, uint64_t seed, flm_split split)
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
        fl_rng s = fl_rng_stream(seed, SYNTH_SAMPLE_ROUND(split), (uint32_t)i, FL_RNG_DATA);
        const int c = (int)(i % (size_t)classes);
        ds->y[i] = c;
        const float *m = centre + (size_t)c * L;
        float *x = ds->x + i * L;
        for (size_t j = 0; j < L; j++) {
            /* centre is set whole above (classes x L):
             * NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
            float v = m[j] + sigma * (float)fl_rng_normal(&s);
            x[j] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
    free(centre);
    *out = ds;
    return FL_OK;
}

fl_status flm_dataset_synth_tokens(flm_dataset **out, size_t N, int T, int vocab, float noise,
                                   uint64_t seed, flm_split split)
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
        fl_rng s = fl_rng_stream(seed, SYNTH_SAMPLE_ROUND(split), (uint32_t)i, FL_RNG_DATA);
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

/* ---- spec strings --------------------------------------------------------------------------- */

#define set_err(err, errlen, ...) ((void)fl_errf(err, errlen, FL_OK, __VA_ARGS__))

/* A growable list of owned strings. */
typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s, size_t len)
{
    if (fl_grow(&l->v, &l->cap, l->n + 1, sizeof *l->v, 16) != FL_OK)
        return -1;
    char *c = malloc(len + 1);
    if (!c)
        return -1;
    memcpy(c, s, len);
    c[len] = '\0';
    l->v[l->n++] = c;
    return 0;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path, or the sorted *.json files of the directory path. */
static fl_status add_leaf_path(strlist *l, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return strlist_add(l, path, strlen(path)) ? FL_ERR_NOMEM : FL_OK;
    DIR *d = opendir(path);
    if (!d) {
        set_err(err, errlen, "%s: cannot open directory", path);
        return FL_ERR_DATASET_IO;
    }
    const size_t first = l->n;
    struct dirent *e;
    fl_status rc = FL_OK;
    while ((e = readdir(d))) {
        const size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        const size_t len = strlen(path) + 1 + n;
        char *full = malloc(len + 1);
        if (!full) {
            rc = FL_ERR_NOMEM;
            break;
        }
        snprintf(full, len + 1, "%s/%s", path, e->d_name);
        const int bad = strlist_add(l, full, len);
        free(full);
        if (bad) {
            rc = FL_ERR_NOMEM;
            break;
        }
    }
    closedir(d);
    if (rc == FL_OK && l->n == first) {
        set_err(err, errlen, "%s: no *.json files", path);
        return FL_ERR_DATASET_IO;
    }
    if (l->n > first)
        qsort(l->v + first, l->n - first, sizeof *l->v, cmp_cstr);
    return rc;
}

/* Strict unsigned decimal into *v (<= max); returns the end or NULL. */
static const char *parse_u64(const char *p, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    const char *q = p;
    for (; *q >= '0' && *q <= '9'; q++) {
        if (x > (max - (uint64_t)(*q - '0')) / 10)
            return NULL;
        x = x * 10 + (uint64_t)(*q - '0');
    }
    if (q == p)
        return NULL;
    *v = x;
    return q;
}

/* ":FLOAT" at p (optional): *v unchanged when p is at the end. Returns 0 or -1. A value past
 * the float range (1e39) is refused here: as a float it would be infinite, which the generators
 * refuse, and the dry check (flm_dataset_spec_check) would have let it through. */
static int parse_opt_float(const char *p, float *v)
{
    if (!*p)
        return 0;
    if (*p != ':' || !((p[1] >= '0' && p[1] <= '9') || p[1] == '.'))
        return -1;
    char *end;
    const double d = strtod(p + 1, &end);
    if (*end || !isfinite(d) || d > FLT_MAX)
        return -1;
    *v = (float)d;
    return 0;
}

/* flm_dataset_load_spec, or with dry set its parse alone (flm_dataset_spec_check): nothing is
 * read or made, and out is not touched. */
static fl_status load_spec(flm_dataset **out, const char *spec, uint64_t seed, flm_split split,
                           int dry, char *err, size_t errlen)
{
    if (!spec) {
        set_err(err, errlen, "no dataset spec");
        return FL_ERR_INVALID_ARG;
    }
    const char *colon = strchr(spec, ':');
    if (!colon || !colon[1])
        goto bad;
    const size_t kl = (size_t)(colon - spec);
    const char *arg = colon + 1;
#define KIND_IS(s) (kl == sizeof(s) - 1 && strncmp(spec, s, kl) == 0)
    if (KIND_IS("fashion-mnist") || KIND_IS("mnist")) {
        char name[16];
        memcpy(name, spec, kl);
        name[kl] = '\0';
        if (dry && strcmp(arg, "train") != 0 && strcmp(arg, "test") != 0)
            goto bad;
        return dry ? FL_OK : flm_dataset_load_named(out, name, arg, NULL, err, errlen);
    }
    if (KIND_IS("idx")) {
        const char *comma = strchr(arg, ',');
        if (!comma || comma == arg || !comma[1] || strchr(comma + 1, ','))
            goto bad;
        if (dry)
            return FL_OK;
        char *img = strndup(arg, (size_t)(comma - arg));
        if (!img)
            return FL_ERR_NOMEM;
        const fl_status st = flm_idx_load(out, img, comma + 1, 10, err, errlen);
        free(img);
        return st;
    }
    if (KIND_IS("femnist") || KIND_IS("shakespeare")) {
        strlist l = {0};
        fl_status st = FL_OK;
        for (const char *p = arg; st == FL_OK;) {
            const char *e = strchr(p, ',');
            const size_t n = e ? (size_t)(e - p) : strlen(p);
            if (!n) {
                strlist_free(&l);
                goto bad;
            }
            if (dry) { /* the paths are looked at when they are loaded */
                if (!e)
                    break;
                p = e + 1;
                continue;
            }
            char *one = strndup(p, n);
            if (!one) {
                st = FL_ERR_NOMEM;
                break;
            }
            st = add_leaf_path(&l, one, err, errlen);
            free(one);
            if (!e)
                break;
            p = e + 1;
        }
        if (st == FL_OK && dry) {
            strlist_free(&l);
            return FL_OK;
        }
        if (st == FL_OK)
            st = flm_leaf_load(out, KIND_IS("femnist") ? FLM_LEAF_FEMNIST : FLM_LEAF_SHAKESPEARE,
                               (const char *const *)l.v, l.n, err, errlen);
        strlist_free(&l);
        return st;
    }
    if (KIND_IS("synth-images")) {
        uint64_t N, C, H, W, K;
        const char *p = parse_u64(arg, UINT32_MAX, &N);
        if (!p || *p != ':' || !(p = parse_u64(p + 1, 65535, &C)) || *p != 'x' ||
            !(p = parse_u64(p + 1, 65535, &H)) || *p != 'x' ||
            !(p = parse_u64(p + 1, 65535, &W)) || *p != ':' ||
            !(p = parse_u64(p + 1, 1u << 20, &K)))
            goto bad;
        float sigma = 0.3f;
        if (parse_opt_float(p, &sigma) != 0)
            goto bad;
        if (dry) { /* what flm_dataset_synth_images refuses, below, as not parsing */
            if (!C || !H || !W || !K)
                goto bad;
            return FL_OK;
        }
        const fl_status st = flm_dataset_synth_images(out, N, (int)C, (int)H, (int)W, (int)K,
                                                      sigma, seed, split);
        if (st == FL_ERR_INVALID_ARG)
            goto bad;
        return st;
    }
    if (KIND_IS("synth-tokens")) {
        uint64_t N, T, V;
        const char *p = parse_u64(arg, UINT32_MAX, &N);
        if (!p || *p != ':' || !(p = parse_u64(p + 1, 1u << 20, &T)) || *p != ':' ||
            !(p = parse_u64(p + 1, 1u << 24, &V)))
            goto bad;
        float noise = 0.1f;
        if (parse_opt_float(p, &noise) != 0)
            goto bad;
        if (dry) { /* what flm_dataset_synth_tokens refuses, below, as not parsing */
            if (!T || V < 2 || !(noise <= 1.0f))
                goto bad;
            return FL_OK;
        }
        const fl_status st = flm_dataset_synth_tokens(out, N, (int)T, (int)V, noise, seed, split);
        if (st == FL_ERR_INVALID_ARG)
            goto bad;
        return st;
    }
#undef KIND_IS
bad:
    set_err(err, errlen,
            "dataset spec \"%s\" does not parse (fashion-mnist:train|test, mnist:train|test, "
            "idx:IMAGES,LABELS, femnist:PATH[,PATH], shakespeare:PATH[,PATH], "
            "synth-images:N:CxHxW:CLASSES[:SIGMA], synth-tokens:N:T:VOCAB[:NOISE])", spec);
    return FL_ERR_INVALID_ARG;
}

fl_status flm_dataset_load_spec(flm_dataset **out, const char *spec, uint64_t seed, flm_split split,
                                char *err, size_t errlen)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    return load_spec(out, spec, seed, split, 0, err, errlen);
}

fl_status flm_dataset_spec_check(const char *spec, char *err, size_t errlen)
{
    return load_spec(NULL, spec, 0, FLM_SPLIT_TRAIN, 1, err, errlen);
}
