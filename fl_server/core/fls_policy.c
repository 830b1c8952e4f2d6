/* fls_policy.c: full, fd, afd-single and afd-multi keep-set selection (see fls_policy.h). */
#include "fl_mem.h"
#include "fls_policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_rng.h"
#include "fls_bytes.h"

#define POLICY_MAGIC 0x50534c46u /* "FLSP" little-endian */
#define POLICY_VERSION 2u /* 1 (still read): every score map and keep-set written out in full */

struct key_idx {
    double key;
    uint32_t idx;
};

struct report {
    uint32_t client;
    double loss;
    uint64_t n;
};

/* The AFD state of one model: afd-single has one, afd-multi one per client. */
typedef struct afd_state {
    uint32_t client;
    double *S;            /* n_units scores, >= 0; afd-multi: NULL while all are 0 (a client
                           * whose submodel never helped yet: most of a large population), or
                           * while the map rests as codes (below) */
    uint8_t *code;        /* afd-multi at rest: S[u] = pal[code[u]] (map_compact); S then NULL */
    double *pal;          /* npal distinct values (bit patterns), in order of first use */
    unsigned npal;
    int has_prev;
    double l_prev;
    flm_keepset A;        /* afd-multi: held between the rounds that select the client as bits */
    uint8_t *bits;        /* afd-multi at rest: A as a bitmap of the units (bit unit_off[d] + j),
                           * A.idx then NULL (state_compact / state_expand) */
    int reported;         /* multi: a loss arrived this round */
    double loss;
    /* The map's part of the score metrics (score_stats), kept while S is unchanged, so that a
     * round's end walks only the maps that changed (afd-multi: 100,000 cnn maps took 1.5 s). */
    int stats_ok;         /* cmax, csum, czero describe S */
    double cmax, csum;
    uint64_t czero;
    double hist_ref;      /* the score_max chist was binned against; 0: none */
    uint64_t chist[FLS_POLICY_HIST_BINS];
} afd_state;

struct fls_policy {
    fls_policy_config cfg;
    flm_arch arch;
    uint64_t seed;
    size_t n_units;
    int n_drop;
    int unit_off[FLM_MAX_LAYERS];  /* first unit of droppable layer d in a score map */
    size_t bits_off[FLM_MAX_LAYERS]; /* first byte of layer d in a keep-set bitmap */
    size_t bits_len;               /* a keep-set bitmap's bytes */
    int keep_k[FLM_MAX_LAYERS];    /* units kept in layer d */
    uint32_t round;
    int in_round;
    flm_keepset shared;            /* full / fd shared: this round's keep-set */
    flm_keepset scratch;           /* fd per-client: the last one handed out */
    /* afd-single */
    afd_state single;
    int have_single;
    uint32_t n_reported;
    struct report *reps;           /* this round's reports, sorted by client */
    size_t rep_cap;
    /* afd-multi: sorted by client */
    afd_state **multi;
    size_t n_multi, cap_multi;
    fls_policy_info last;
    uint32_t *perm;                /* scratch of max(units) */
    struct key_idx *keys;          /* scratch of max(units) */
};


/* ---- keep-set helpers (same layout as flm_keepset; idx from malloc) --------------------------- */

static void ks_release(flm_keepset *ks)
{
    if (!ks)
        return;
    /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): idx is NULL after a release (memset) */
    free(ks->idx);
    memset(ks, 0, sizeof *ks);
}

static fl_status ks_alloc(flm_keepset *ks, int n_drop, const int *counts)
{
    size_t total = 0;
    memset(ks, 0, sizeof *ks);
    ks->n_drop = n_drop;
    for (int d = 0; d < n_drop; d++) {
        ks->count[d] = counts[d];
        ks->offset[d] = (int)total;
        total += (size_t)counts[d];
    }
    ks->idx = malloc((total ? total : 1) * sizeof *ks->idx);
    return ks->idx ? FL_OK : FL_ERR_NOMEM;
}

static int cmp_u32(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Descending key, then ascending index: a total order, so qsort's instability is harmless. */
static int cmp_key_desc(const void *a, const void *b)
{
    const struct key_idx *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? 1 : -1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Uniform keep-set: partial Fisher-Yates per layer, one stream for all layers in order. */
static fl_status draw_uniform(fls_policy *p, flm_keepset *out, uint32_t round, uint32_t client)
{
    flm_keepset ks;
    fl_status st = ks_alloc(&ks, p->n_drop, p->keep_k);
    if (st != FL_OK)
        return st;
    fl_rng r = fl_rng_stream(p->seed, round, client, FL_RNG_KEEPSET);
    for (int d = 0; d < p->n_drop; d++) /* group by group for MoGE experts */
        flm_keepset_draw_layer(ks.idx + ks.offset[d], p->perm, &p->arch, d, p->keep_k[d], &r);
    ks_release(out);
    *out = ks;
    return FL_OK;
}

/* Weighted keep-set: per layer, exactly k units without replacement, P proportional to S + eps. */
static fl_status draw_weighted(fls_policy *p, flm_keepset *out, const double *S, uint32_t round,
                               uint32_t client)
{
    double smax = 0.0;
    for (size_t u = 0; S && u < p->n_units; u++)
        if (S[u] > smax)
            smax = S[u];
    if (!S || smax <= 0.0) /* no map yet, or all zero */
        return draw_uniform(p, out, round, client);
    const double eps = p->cfg.eps_rel * smax;
    flm_keepset ks;
    fl_status st = ks_alloc(&ks, p->n_drop, p->keep_k);
    if (st != FL_OK)
        return st;
    fl_rng r = fl_rng_stream(p->seed, round, client, FL_RNG_KEEPSET);
    for (int d = 0; d < p->n_drop; d++) {
        const uint32_t n = (uint32_t)p->arch.drop_units[d], k = (uint32_t)p->keep_k[d];
        const double *Sd = S + p->unit_off[d];
        for (uint32_t i = 0; i < n; i++) {
            /* U in (0, 1): 53 random bits shifted off zero. key = log(U) / w, larger is better. */
            const double U = ((double)(fl_rng_u64(&r) >> 11) + 0.5) * 0x1p-53;
            p->keys[i].key = log(U) / (Sd[i] + eps);
            p->keys[i].idx = i;
        }
        /* the k / G best of each group (MoGE experts; one group elsewhere): the same count from
         * each, each group's draw weighted as the whole layer's would be */
        const uint32_t G = (uint32_t)flm_arch_groups(&p->arch, d), ng = n / G, kg = k / G;
        uint32_t *dst = ks.idx + ks.offset[d];
        for (uint32_t g = 0; g < G; g++) {
            qsort(p->keys + g * ng, ng, sizeof *p->keys, cmp_key_desc);
            for (uint32_t i = 0; i < kg; i++)
                dst[g * kg + i] = p->keys[g * ng + i].idx;
        }
        qsort(dst, k, sizeof *dst, cmp_u32);
    }
    ks_release(out);
    *out = ks;
    return FL_OK;
}

/* ---- configuration ---------------------------------------------------------------------------- */

fls_policy_config fls_policy_config_default(void)
{
    fls_policy_config c;
    memset(&c, 0, sizeof c);
    c.kind = FLS_POLICY_FULL;
    c.keep_p = 0.75;
    c.eps_rel = 1e-3;
    return c;
}

static const char *const kind_names[] = {"full", "fd", "afd-single", "afd-multi"};

const char *fls_policy_kind_name(fls_policy_kind k)
{
    if ((unsigned)k < sizeof kind_names / sizeof kind_names[0])
        return kind_names[k];
    return "unknown";
}

fl_status fls_policy_kind_parse(const char *s, fls_policy_kind *out)
{
    if (!s || !out)
        return FL_ERR_INVALID_ARG;
    for (unsigned i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (fls_policy_kind)i;
            return FL_OK;
        }
    return FL_ERR_CONFIG;
}

static int is_afd(const fls_policy *p)
{
    return p->cfg.kind == FLS_POLICY_AFD_SINGLE || p->cfg.kind == FLS_POLICY_AFD_MULTI;
}

fl_status fls_policy_new(const fls_policy_config *cfg, const flm_arch *a, uint64_t seed,
                         fls_policy **out)
{
    if (!cfg || !a || !out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if ((unsigned)cfg->kind > FLS_POLICY_AFD_MULTI || !(cfg->keep_p > 0.0 && cfg->keep_p <= 1.0) ||
        !(cfg->eps_rel > 0.0 && isfinite(cfg->eps_rel)) || a->n_drop < 0 ||
        a->n_drop > FLM_MAX_LAYERS)
        return FL_ERR_CONFIG;
    for (int d = 0; d < FLM_MAX_LAYERS; d++)
        if (!(cfg->keep_p_layer[d] == 0.0 ||
              (cfg->keep_p_layer[d] > 0.0 && cfg->keep_p_layer[d] <= 1.0)))
            return FL_ERR_CONFIG;
    fls_policy *p = calloc(1, sizeof *p);
    if (!p)
        return FL_ERR_NOMEM;
    p->cfg = *cfg;
    p->arch = *a;
    p->seed = seed;
    p->n_drop = a->n_drop;
    int umax = 1;
    for (int d = 0; d < a->n_drop; d++) {
        if (a->drop_units[d] < 1) {
            free(p);
            return FL_ERR_CONFIG;
        }
        p->unit_off[d] = (int)p->n_units;
        p->n_units += (size_t)a->drop_units[d];
        p->bits_off[d] = p->bits_len;
        p->bits_len += ((size_t)a->drop_units[d] + 7) / 8;
        const double pd = cfg->keep_p_layer[d] > 0.0 ? cfg->keep_p_layer[d] : cfg->keep_p;
        p->keep_k[d] = cfg->kind == FLS_POLICY_FULL ? a->drop_units[d]
                                                     : flm_arch_keep_units(a, d, pd);
        if (a->drop_units[d] > umax)
            umax = a->drop_units[d];
    }
    p->perm = malloc((size_t)umax * sizeof *p->perm);
    p->keys = malloc((size_t)umax * sizeof *p->keys);
    if (!p->perm || !p->keys) {
        fls_policy_free(p);
        return FL_ERR_NOMEM;
    }
    if (cfg->kind == FLS_POLICY_FULL) {
        fl_status st = ks_alloc(&p->shared, p->n_drop, p->keep_k);
        if (st != FL_OK) {
            fls_policy_free(p);
            return st;
        }
        for (int d = 0; d < p->n_drop; d++)
            for (int j = 0; j < p->keep_k[d]; j++)
                p->shared.idx[p->shared.offset[d] + j] = (uint32_t)j;
    }
    if (cfg->kind == FLS_POLICY_AFD_SINGLE) {
        p->single.S = calloc(p->n_units ? p->n_units : 1, sizeof *p->single.S);
        if (!p->single.S) {
            fls_policy_free(p);
            return FL_ERR_NOMEM;
        }
        p->single.client = FLS_POLICY_SHARED_CLIENT;
        /* A is drawn uniformly at the first begin_round (keyed by that round). */
    }
    *out = p;
    return FL_OK;
}

static void afd_state_free(afd_state *s)
{
    if (!s)
        return;
    free(s->S);
    free(s->code);
    free(s->pal);
    ks_release(&s->A);
    free(s->bits);
    free(s);
}

/* Keep-set bitmaps: the one layout of a keep-set at rest in memory and in the export. Per
 * droppable layer d, ceil(drop_units[d] / 8) bytes from bits_off[d], unit j of the layer at bit
 * j % 8 of its byte j / 8. */
static void keepset_to_bits(const fls_policy *p, const flm_keepset *ks, uint8_t *bits)
{
    memset(bits, 0, p->bits_len);
    for (int d = 0; d < ks->n_drop; d++)
        for (int j = 0; j < ks->count[d]; j++) {
            const uint32_t u = ks->idx[ks->offset[d] + j];
            bits[p->bits_off[d] + u / 8] |= (uint8_t)(1u << (u % 8));
        }
}

/* The keep-set of a bitmap as an index list into *ks (allocated): FL_OK, FL_ERR_NOMEM, or
 * FL_ERR_CHECKPOINT_FORMAT (nothing allocated) unless layer d has exactly keep_k[d] bits set and
 * none past its last unit (a bitmap read from a checkpoint). */
static fl_status bits_to_keepset(const fls_policy *p, const uint8_t *bits, flm_keepset *ks)
{
    fl_status st = ks_alloc(ks, p->n_drop, p->keep_k);
    if (st != FL_OK)
        return st;
    for (int d = 0; d < p->n_drop; d++) {
        const uint32_t units = (uint32_t)p->arch.drop_units[d];
        const uint8_t *b = bits + p->bits_off[d];
        int j = 0;
        for (uint32_t i = 0; i < (units + 7) / 8 * 8; i++) {
            if (!(b[i / 8] & (1u << (i % 8))))
                continue;
            if (i >= units || j >= p->keep_k[d]) {
                ks_release(ks);
                return FL_ERR_CHECKPOINT_FORMAT;
            }
            ks->idx[ks->offset[d] + j++] = i;
        }
        if (j != p->keep_k[d]) {
            ks_release(ks);
            return FL_ERR_CHECKPOINT_FORMAT;
        }
    }
    if (flm_keepset_validate(ks, &p->arch) != FL_OK) { /* a grouped layer's groups kept unevenly */
        ks_release(ks);
        return FL_ERR_CHECKPOINT_FORMAT;
    }
    return FL_OK;
}

/* An afd-multi state's keep-set at rest: a bitmap instead of the index list (on the cnn about
 * 280 bytes instead of 6.4 KB; most of a large population is at rest). Best effort: without
 * memory for the bitmap the list stays, which is as correct. */
static void state_compact(const fls_policy *p, afd_state *s)
{
    if (!s->A.idx)
        return;
    uint8_t *b = malloc(p->bits_len ? p->bits_len : 1);
    if (!b)
        return;
    keepset_to_bits(p, &s->A, b);
    ks_release(&s->A);
    s->bits = b;
}

/* ---- score maps at rest ------------------------------------------------------------------
 * A map holds few distinct values: without score_accumulate, every gain sets the kept units to
 * that gain, so k gains leave at most k + 1 values. At rest a map with at most MAP_PAL distinct
 * values (as bit patterns) is a code byte per unit and its palette, in order of first use (on the
 * cnn about 2.2 KB instead of 17 KB); the same doubles come back, bit for bit. */
#define MAP_PAL 255

static inline double map_val(const afd_state *s, size_t u)
{
    return s->S ? s->S[u] : s->code ? s->pal[s->code[u]] : 0.0;
}

static int has_map(const afd_state *s)
{
    return s->S || s->code;
}

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/* The palette of s's map in first-use order into pal (MAP_PAL); its size, or 0 when the map has
 * more than MAP_PAL distinct values. codes (may be NULL) receives each unit's code. */
static unsigned map_palette(const fls_policy *p, const afd_state *s, double *pal, uint8_t *codes)
{
    unsigned n = 0, last = 0;
    for (size_t u = 0; u < p->n_units; u++) {
        const double v = map_val(s, u);
        const uint64_t b = dbits(v);
        unsigned c = last;
        if (n == 0 || dbits(pal[c]) != b) { /* runs of one value are common: try the last first */
            for (c = 0; c < n && dbits(pal[c]) != b; c++)
                ;
            if (c == n) {
                if (n == MAP_PAL)
                    return 0;
                pal[n++] = v;
            }
        }
        last = c;
        if (codes)
            codes[u] = (uint8_t)c;
    }
    return n;
}

/* An afd-multi map at rest as codes and palette (best effort: without memory, or with more than
 * MAP_PAL values, S stays). */
static void map_compact(const fls_policy *p, afd_state *s)
{
    if (!s->S)
        return;
    double pal[MAP_PAL];
    uint8_t *code = malloc(p->n_units ? p->n_units : 1);
    if (!code)
        return;
    const unsigned n = map_palette(p, s, pal, code);
    double *pc = n ? malloc(n * sizeof *pc) : NULL;
    if (!pc) {
        free(code);
        return;
    }
    memcpy(pc, pal, n * sizeof *pc);
    free(s->S);
    s->S = NULL;
    s->code = code;
    s->pal = pc;
    s->npal = n;
}

/* The map as doubles again, for the AFD rule to read and write. */
static fl_status map_expand(const fls_policy *p, afd_state *s)
{
    if (!s->code)
        return FL_OK;
    double *S = malloc((p->n_units ? p->n_units : 1) * sizeof *S);
    if (!S)
        return FL_ERR_NOMEM;
    for (size_t u = 0; u < p->n_units; u++)
        S[u] = s->pal[s->code[u]];
    free(s->code);
    free(s->pal);
    s->code = NULL;
    s->pal = NULL;
    s->npal = 0;
    s->S = S;
    return FL_OK;
}

/* A state about to be used (selected this round): its keep-set as an index list again. */
static fl_status state_expand(const fls_policy *p, afd_state *s)
{
    if (!s->bits)
        return FL_OK;
    fl_status st = bits_to_keepset(p, s->bits, &s->A);
    if (st != FL_OK)
        return st;
    free(s->bits);
    s->bits = NULL;
    return FL_OK;
}

void fls_policy_free(fls_policy *p)
{
    if (!p)
        return;
    ks_release(&p->shared);
    ks_release(&p->scratch);
    free(p->single.S);
    free(p->single.code); /* afd-single's map stays doubles; freed all the same */
    free(p->single.pal);
    ks_release(&p->single.A);
    for (size_t i = 0; i < p->n_multi; i++)
        afd_state_free(p->multi[i]);
    free(p->multi);
    free(p->reps);
    free(p->perm);
    free(p->keys);
    free(p);
}

size_t fls_policy_units(const fls_policy *p)
{
    return p ? p->n_units : 0;
}

void fls_policy_keep_counts(const fls_policy *p, int *counts)
{
    for (int d = 0; d < p->n_drop; d++)
        counts[d] = p->keep_k[d];
}

int fls_policy_is_shared(const fls_policy *p)
{
    return p->cfg.kind == FLS_POLICY_FULL || p->cfg.kind == FLS_POLICY_AFD_SINGLE ||
           (p->cfg.kind == FLS_POLICY_FD && !p->cfg.fd_per_client);
}

size_t fls_policy_client_bytes(const fls_policy *p, size_t *selected)
{
    if (selected)
        *selected = 0;
    if (!p || p->cfg.kind != FLS_POLICY_AFD_MULTI)
        return 0;
    size_t kept = 0;
    for (int d = 0; d < p->n_drop; d++)
        kept += (size_t)p->keep_k[d];
    /* at rest: the record, its place in the table, the keep-set as a bitmap (state_compact) and
     * the map as a code byte a unit (map_compact; its palette, 8 B a distinct score, is a few
     * values); a map of accumulated scores has too many values for codes and stays doubles */
    const size_t map = p->cfg.score_accumulate ? p->n_units * sizeof(double) : p->n_units;
    if (selected) /* in a round: the keep-set as an index list and the map as doubles */
        *selected = kept * sizeof(*p->single.A.idx) + p->n_units * sizeof(double);
    return sizeof(afd_state) + sizeof(afd_state *) + p->bits_len + map;
}

/* ---- afd-multi client table ------------------------------------------------------------------- */

static size_t multi_lower(const fls_policy *p, uint32_t client)
{
    size_t lo = 0, hi = p->n_multi;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (p->multi[mid]->client < client)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static afd_state *multi_find(const fls_policy *p, uint32_t client)
{
    const size_t i = multi_lower(p, client);
    return i < p->n_multi && p->multi[i]->client == client ? p->multi[i] : NULL;
}

static fl_status multi_insert(fls_policy *p, afd_state *s)
{
    if (fl_grow(&p->multi, &p->cap_multi, p->n_multi + 1, sizeof *p->multi, 16) != FL_OK)
        return FL_ERR_NOMEM;
    const size_t i = multi_lower(p, s->client);
    memmove(p->multi + i + 1, p->multi + i, (p->n_multi - i) * sizeof *p->multi);
    p->multi[i] = s;
    p->n_multi++;
    return FL_OK;
}

void fls_policy_forget(fls_policy *p, uint32_t client)
{
    if (!p)
        return;
    const size_t i = multi_lower(p, client);
    if (i < p->n_multi && p->multi[i]->client == client) {
        afd_state_free(p->multi[i]);
        memmove(p->multi + i, p->multi + i + 1, (p->n_multi - i - 1) * sizeof *p->multi);
        p->n_multi--;
    }
}

size_t fls_policy_prune(fls_policy *p, int (*keep)(void *user, uint32_t client), void *user)
{
    if (!p || !keep)
        return 0;
    size_t m = 0, dropped = 0;
    for (size_t i = 0; i < p->n_multi; i++) {
        if (keep(user, p->multi[i]->client)) {
            p->multi[m++] = p->multi[i];
        } else {
            afd_state_free(p->multi[i]);
            dropped++;
        }
    }
    p->n_multi = m;
    return dropped;
}

/* ---- rounds ----------------------------------------------------------------------------------- */

fl_status fls_policy_begin_round(fls_policy *p, uint32_t round)
{
    if (!p)
        return FL_ERR_INVALID_ARG;
    p->round = round;
    p->in_round = 1;
    p->n_reported = 0;
    for (size_t i = 0; i < p->n_multi; i++)
        p->multi[i]->reported = 0;
    fl_status st = FL_OK;
    if (p->cfg.kind == FLS_POLICY_FD && !p->cfg.fd_per_client)
        st = draw_uniform(p, &p->shared, round, FLS_POLICY_SHARED_CLIENT);
    else if (p->cfg.kind == FLS_POLICY_AFD_SINGLE && !p->single.A.idx)
        st = draw_uniform(p, &p->single.A, round, FLS_POLICY_SHARED_CLIENT);
    if (st != FL_OK)
        p->in_round = 0;
    return st;
}

fl_status fls_policy_keepset(fls_policy *p, uint32_t client, const flm_keepset **out)
{
    if (!p || !out)
        return FL_ERR_INVALID_ARG;
    if (!p->in_round)
        return FL_ERR_STATE;
    fl_status st;
    switch (p->cfg.kind) {
    case FLS_POLICY_FULL:
        *out = &p->shared;
        return FL_OK;
    case FLS_POLICY_FD:
        if (!p->cfg.fd_per_client) {
            *out = &p->shared;
            return FL_OK;
        }
        st = draw_uniform(p, &p->scratch, p->round, client);
        if (st == FL_OK)
            *out = &p->scratch;
        return st;
    case FLS_POLICY_AFD_SINGLE:
        *out = &p->single.A;
        return FL_OK;
    case FLS_POLICY_AFD_MULTI: {
        afd_state *s = multi_find(p, client);
        if (s && (st = state_expand(p, s)) != FL_OK)
            return st;
        if (!s) {
            s = calloc(1, sizeof *s);
            if (!s)
                return FL_ERR_NOMEM;
            s->client = client;
            st = draw_uniform(p, &s->A, p->round, client); /* scores all 0: no map yet */
            if (st == FL_OK)
                st = multi_insert(p, s);
            if (st != FL_OK) {
                afd_state_free(s);
                return st;
            }
        }
        *out = &s->A;
        return FL_OK;
    }
    }
    return FL_ERR_INTERNAL;
}

fl_status fls_policy_reserve_reports(fls_policy *p, size_t n)
{
    if (!p)
        return FL_ERR_INVALID_ARG;
    if (p->cfg.kind == FLS_POLICY_AFD_MULTI) /* a report goes into its client's state */
        return FL_OK;
    return fl_grow(&p->reps, &p->rep_cap, p->n_reported + n, sizeof *p->reps, 64);
}

fl_status fls_policy_report(fls_policy *p, uint32_t client, double loss, uint64_t n_samples)
{
    if (!p)
        return FL_ERR_INVALID_ARG;
    if (!isfinite(loss) || n_samples == 0)
        return FL_ERR_INVALID_ARG;
    if (!p->in_round)
        return FL_ERR_STATE;
    if (p->cfg.kind == FLS_POLICY_AFD_MULTI) {
        afd_state *s = multi_find(p, client);
        if (!s || s->reported)
            return FL_ERR_STATE;
        s->reported = 1;
        s->loss = loss;
        return FL_OK;
    }
    /* Every other policy: remember who reported (duplicates are refused) and what. l_t is
     * summed in client order at end_round, so it does not depend on arrival order. */
    size_t lo = 0, hi = p->n_reported;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (p->reps[mid].client < client)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->n_reported && p->reps[lo].client == client)
        return FL_ERR_STATE;
    if (fl_grow(&p->reps, &p->rep_cap, p->n_reported + 1, sizeof *p->reps, 64) != FL_OK)
        return FL_ERR_NOMEM;
    memmove(p->reps + lo + 1, p->reps + lo, (p->n_reported - lo) * sizeof *p->reps);
    p->reps[lo].client = client;
    p->reps[lo].loss = loss;
    p->reps[lo].n = n_samples;
    p->n_reported++;
    return FL_OK;
}

/* ---- the AFD rule ----------------------------------------------------------------------------- */

/* One step of the rule for s with the round's loss lt, in two halves so that a round's end
 * changes nothing until every step's memory is in hand. afd_prepare takes what the step needs:
 * the map as doubles (a representation only: the same scores), and for a redraw the new keep-set,
 * drawn with key (round+1, client) into *drawn (empty otherwise); on error s means what it did
 * and *drawn holds nothing. afd_commit then applies it and cannot fail. */
static int afd_keeps(const afd_state *s, double lt)
{
    return s->has_prev && lt < s->l_prev;
}

static fl_status afd_prepare(fls_policy *p, afd_state *s, double lt, uint32_t client,
                             flm_keepset *drawn)
{
    memset(drawn, 0, sizeof *drawn);
    fl_status st = map_expand(p, s);
    if (st != FL_OK)
        return st;
    if (afd_keeps(s, lt)) /* no map yet: an all-zero one, the same scores */
        return s->S || (s->S = calloc(p->n_units ? p->n_units : 1, sizeof *s->S)) ? FL_OK
                                                                                 : FL_ERR_NOMEM;
    return draw_weighted(p, drawn, s->S, p->round + 1, client);
}

static void afd_commit(const fls_policy *p, afd_state *s, double lt, flm_keepset *drawn,
                       int *kept)
{
    if (afd_keeps(s, lt)) {
        /* The submodel helped: exploit. l_prev > 0 for any non-negative loss; the fallback keeps
         * the gain positive and finite for exotic negative losses. */
        const double gain = s->l_prev > 0.0 ? (s->l_prev - lt) / s->l_prev : (s->l_prev - lt);
        s->stats_ok = 0; /* the map changes */
        s->hist_ref = 0.0;
        for (int d = 0; d < s->A.n_drop; d++)
            for (int j = 0; j < s->A.count[d]; j++) {
                const size_t u = (size_t)p->unit_off[d] + s->A.idx[s->A.offset[d] + j];
                s->S[u] = p->cfg.score_accumulate ? s->S[u] + gain : gain;
            }
        *kept = 1;
    } else {
        ks_release(&s->A);
        s->A = *drawn;
        memset(drawn, 0, sizeof *drawn);
        *kept = 0;
    }
    s->l_prev = lt;
    s->has_prev = 1;
}

/* The round's loss l_t: the mean of the reported losses weighted by sample count (or not). In
 * double, as it always was, when that sum is finite; else (a huge n_samples x loss: every term is
 * finite but the sum overflows) again in long double, whose range holds any such sum, so that l_t
 * is always finite and between the smallest and largest loss. */
static double round_loss(const fls_policy *p)
{
    double swl = 0.0, sw = 0.0;
    for (uint32_t i = 0; i < p->n_reported; i++) {
        const double w = p->cfg.loss_unweighted ? 1.0 : (double)p->reps[i].n;
        swl += w * p->reps[i].loss;
        sw += w;
    }
    const double lt = swl / sw;
    if (isfinite(lt))
        return lt;
    long double lwl = 0.0L, lw = 0.0L;
    double lo = p->reps[0].loss, hi = p->reps[0].loss;
    for (uint32_t i = 0; i < p->n_reported; i++) {
        const long double w = p->cfg.loss_unweighted ? 1.0L : (long double)p->reps[i].n;
        lwl += w * (long double)p->reps[i].loss;
        lw += w;
        lo = p->reps[i].loss < lo ? p->reps[i].loss : lo;
        hi = p->reps[i].loss > hi ? p->reps[i].loss : hi;
    }
    const double m = (double)(lwl / lw);
    return m < lo ? lo : m > hi ? hi : m; /* also where long double is only double */
}

/* The metrics over every score of every map. Each map's share (max, sum in index order, zeros,
 * and its histogram against a given score_max) is kept in its state until the map changes, so a
 * round costs a pass over the maps that changed, plus one over those binned against another
 * score_max when it moves. score_mean is the sum of the maps' sums (in map order) over n. */
static void score_stats(fls_policy *p, fls_policy_info *info)
{
    double smax = 0.0, sum = 0.0;
    uint64_t n = 0, zero = 0;
    const size_t maps = p->cfg.kind == FLS_POLICY_AFD_SINGLE ? 1 : p->n_multi;
    for (size_t m = 0; m < maps; m++) {
        afd_state *st = p->cfg.kind == FLS_POLICY_AFD_SINGLE ? &p->single : p->multi[m];
        n += p->n_units;
        if (!has_map(st)) { /* all zero */
            zero += p->n_units;
            continue;
        }
        if (!st->stats_ok) {
            double mx = 0.0, sm = 0.0;
            uint64_t z = 0;
            for (size_t u = 0; u < p->n_units; u++) {
                const double v = map_val(st, u);
                mx = v > mx ? v : mx;
                sm += v;
                z += v == 0.0;
            }
            st->cmax = mx;
            st->csum = sm;
            st->czero = z;
            st->stats_ok = 1;
            st->hist_ref = 0.0;
        }
        smax = st->cmax > smax ? st->cmax : smax;
        sum += st->csum;
        zero += st->czero;
    }
    info->score_max = smax;
    info->score_mean = n ? sum / (double)n : 0.0;
    info->score_zero = zero;
    memset(info->hist, 0, sizeof info->hist);
    if (smax <= 0.0)
        return;
    for (size_t m = 0; m < maps; m++) {
        afd_state *st = p->cfg.kind == FLS_POLICY_AFD_SINGLE ? &p->single : p->multi[m];
        if (!has_map(st))
            continue;
        if (st->hist_ref != smax) {
            memset(st->chist, 0, sizeof st->chist);
            for (size_t u = 0; u < p->n_units; u++) {
                /* Not finite (only exotic losses through the API: the core bounds them) has no
                 * bin: (int)NaN would index anywhere. */
                const double v = map_val(st, u);
                if (!(v > 0.0) || !isfinite(v / smax))
                    continue;
                int b = (int)(v / smax * FLS_POLICY_HIST_BINS);
                if (b >= FLS_POLICY_HIST_BINS)
                    b = FLS_POLICY_HIST_BINS - 1;
                st->chist[b]++;
            }
            st->hist_ref = smax;
        }
        for (int b = 0; b < FLS_POLICY_HIST_BINS; b++)
            info->hist[b] += st->chist[b];
    }
}

fl_status fls_policy_end_round(fls_policy *p, fls_policy_info *info)
{
    if (!p)
        return FL_ERR_INVALID_ARG;
    if (!p->in_round)
        return FL_ERR_STATE;
    fls_policy_info in;
    memset(&in, 0, sizeof in);
    in.round = p->round;
    in.afd = is_afd(p);
    in.loss = NAN;
    in.loss_prev = NAN;
    if (p->cfg.kind == FLS_POLICY_AFD_SINGLE) {
        in.loss_prev = p->single.has_prev ? p->single.l_prev : NAN;
        if (p->n_reported > 0) {
            const double lt = round_loss(p);
            flm_keepset drawn;
            const fl_status st = afd_prepare(p, &p->single, lt, FLS_POLICY_SHARED_CLIENT, &drawn);
            if (st != FL_OK)
                return st; /* nothing changed: the round stays begun, with its reports */
            int kept = 0;
            afd_commit(p, &p->single, lt, &drawn, &kept);
            in.have_loss = 1;
            in.loss = lt;
            in.kept = (uint32_t)kept;
            in.resampled = (uint32_t)!kept;
        }
    } else if (p->cfg.kind == FLS_POLICY_AFD_MULTI) {
        /* Every reported client's step prepared first (its keep-set as a list, a report without
         * this round's keep-set being API use only; its map as doubles; its redraw), then all
         * applied: a failure part way leaves every state as it was. */
        size_t n_rep = 0;
        for (size_t i = 0; i < p->n_multi; i++)
            n_rep += p->multi[i]->reported != 0;
        flm_keepset *drawn = calloc(n_rep ? n_rep : 1, sizeof *drawn);
        if (!drawn)
            return FL_ERR_NOMEM;
        fl_status st = FL_OK;
        size_t r = 0;
        for (size_t i = 0; i < p->n_multi && st == FL_OK; i++) {
            afd_state *s = p->multi[i];
            if (!s->reported)
                continue;
            st = state_expand(p, s);
            if (st == FL_OK)
                st = afd_prepare(p, s, s->loss, s->client, &drawn[r++]);
        }
        if (st != FL_OK) {
            for (size_t j = 0; j < r; j++)
                ks_release(&drawn[j]);
            free(drawn);
            return st;
        }
        r = 0;
        for (size_t i = 0; i < p->n_multi; i++) {
            afd_state *s = p->multi[i];
            if (!s->reported)
                continue;
            int kept = 0;
            afd_commit(p, s, s->loss, &drawn[r++], &kept);
            /* Only a stepped map was expanded or changed: the others rest as they were, and a
             * map of more than MAP_PAL values (score_accumulate) is not walked again each round
             * (10,000 such cnn maps: 0.17 s a round's end). */
            map_compact(p, s);
            in.kept += (uint32_t)kept;
            in.resampled += (uint32_t)!kept;
            s->reported = 0;
        }
        free(drawn);
        for (size_t i = 0; i < p->n_multi; i++) /* the round's keep-sets go back to rest */
            state_compact(p, p->multi[i]);
        in.clients = (uint32_t)p->n_multi;
    }
    if (in.afd)
        score_stats(p, &in);
    p->in_round = 0;
    p->last = in;
    if (info)
        *info = in;
    return FL_OK;
}

fl_status fls_policy_scores(const fls_policy *p, uint32_t client, double *out, size_t n)
{
    if (!p || (!out && n))
        return FL_ERR_INVALID_ARG;
    const afd_state *s = NULL;
    if (p->cfg.kind == FLS_POLICY_AFD_SINGLE)
        s = p->single.S ? &p->single : NULL;
    else if (p->cfg.kind == FLS_POLICY_AFD_MULTI)
        s = multi_find(p, client);
    if (!s)
        return FL_ERR_NOT_FOUND;
    if (n != p->n_units)
        return FL_ERR_INVALID_ARG;
    for (size_t u = 0; u < n; u++)
        out[u] = map_val(s, u); /* no map: +0.0 */
    return FL_OK;
}

fl_status fls_policy_current(const fls_policy *p, uint32_t client, flm_keepset *out)
{
    if (!p || !out)
        return FL_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    const flm_keepset *ks = NULL;
    if (p->cfg.kind == FLS_POLICY_AFD_SINGLE) {
        ks = p->single.A.idx ? &p->single.A : NULL;
    } else if (p->cfg.kind == FLS_POLICY_AFD_MULTI) {
        const afd_state *s = multi_find(p, client);
        if (s && s->bits)
            return bits_to_keepset(p, s->bits, out);
        ks = s && s->A.idx ? &s->A : NULL;
    } else if (p->cfg.kind == FLS_POLICY_FULL ||
               (p->cfg.kind == FLS_POLICY_FD && !p->cfg.fd_per_client)) {
        ks = p->shared.idx ? &p->shared : NULL;
    }
    if (!ks)
        return FL_ERR_NOT_FOUND;
    return flm_keepset_copy(out, ks);
}

/* ---- export / import -------------------------------------------------------------------------- */

/* Version 2. A state is: client u32, has_prev u8, l_prev f64 (+0.0 without), flags u8 (bit 0: a
 * score map in full follows, bit 2: a score map as a palette follows, bit 1: a keep-set follows;
 * no other bits, not bits 0 and 2 together), the score map, the keep-set.
 * - The score map is written only when some score is not 0 (an all-zero map never is). With at
 *   most 255 distinct values (as bit patterns) it is a palette: u8 P (1..255), P f64 values in
 *   order of first use along the units, then a u8 code per unit (n_units); with more, in full:
 *   n_units f64. Any other spelling (a palette out of first-use order, a full map that fits a
 *   palette) is refused: one state, one encoding.
 * - The keep-set: per droppable layer d, a bitmap of drop_units[d] bits in ceil(drop_units[d] / 8)
 *   bytes, unit j at bit j % 8 of byte j / 8, exactly keep_k[d] bits set, none past the last unit.
 * So a client whose submodel never helped costs 14 bytes and the bitmaps (about 290 bytes on the
 * cnn), one whose submodel helped a few times about 2.5 KB more, not 23 KB. Version 1 wrote every
 * map in full and each keep-set as a u32 count and u32 indexes (no flags byte: a u8 1/0 for the
 * keep-set after the map); it is still read. */
#define ST_SCORES 1u
#define ST_KEEPSET 2u
#define ST_PALETTE 4u

static int scores_zero(const fls_policy *p, const afd_state *s)
{
    for (size_t u = 0; has_map(s) && u < p->n_units; u++)
        if (map_val(s, u) != 0.0)
            return 0;
    return 1;
}

/* s's keep-set as the export's bitmaps: its own at rest, else made from its index list. */
static void w_keepset(fls_wbuf *w, const fls_policy *p, const afd_state *s)
{
    if (s->bits) {
        fls_w_bytes(w, s->bits, p->bits_len);
        return;
    }
    uint8_t *b = malloc(p->bits_len ? p->bits_len : 1);
    if (!b) {
        w->failed = 1;
        return;
    }
    keepset_to_bits(p, &s->A, b);
    fls_w_bytes(w, b, p->bits_len);
    free(b);
}

static void w_state(fls_wbuf *w, const fls_policy *p, const afd_state *s)
{
    fls_w_u32(w, s->client);
    fls_w_u8(w, (uint8_t)s->has_prev);
    fls_w_f64(w, s->has_prev ? s->l_prev : 0.0);
    const int scores = !scores_zero(p, s);
    double pal[MAP_PAL];
    unsigned np = 0;
    if (scores && s->code) {
        np = s->npal;
        memcpy(pal, s->pal, np * sizeof *pal);
    } else if (scores) {
        np = map_palette(p, s, pal, NULL);
    }
    const unsigned map = !scores ? 0 : np ? ST_PALETTE : ST_SCORES;
    fls_w_u8(w, (uint8_t)(map | (s->A.idx || s->bits ? ST_KEEPSET : 0)));
    if (map == ST_SCORES)
        for (size_t u = 0; u < p->n_units; u++)
            fls_w_f64(w, map_val(s, u));
    if (map == ST_PALETTE) {
        fls_w_u8(w, (uint8_t)np);
        for (unsigned i = 0; i < np; i++)
            fls_w_f64(w, pal[i]);
        unsigned c = 0;
        for (size_t u = 0; u < p->n_units; u++) {
            if (s->code) {
                c = s->code[u];
            } else if (dbits(pal[c]) != dbits(map_val(s, u))) { /* runs: the last code first */
                for (c = 0; dbits(pal[c]) != dbits(map_val(s, u)); c++)
                    ;
            }
            fls_w_u8(w, (uint8_t)c);
        }
    }
    if (s->bits || s->A.idx)
        w_keepset(w, p, s);
}

/* 1 when fls_policy_import would take s back: a finite l_prev, finite non-negative scores. */
static int state_ok(const fls_policy *p, const afd_state *s)
{
    if (s->has_prev && !isfinite(s->l_prev))
        return 0;
    for (size_t u = 0; has_map(s) && u < p->n_units; u++)
        if (!(map_val(s, u) >= 0.0) || !isfinite(map_val(s, u)))
            return 0;
    return 1;
}

fl_status fls_policy_export(const fls_policy *p, uint8_t **buf, size_t *len)
{
    if (!p || !buf || !len)
        return FL_ERR_INVALID_ARG;
    *buf = NULL;
    *len = 0;
    /* Never write what the import refuses: a checkpoint that cannot be resumed is worse than none. */
    if (p->cfg.kind == FLS_POLICY_AFD_SINGLE && !state_ok(p, &p->single))
        return FL_ERR_NUMERIC;
    if (p->cfg.kind == FLS_POLICY_AFD_MULTI)
        for (size_t i = 0; i < p->n_multi; i++)
            if (!state_ok(p, p->multi[i]))
                return FL_ERR_NUMERIC;
    fls_wbuf w = {0};
    fls_w_u32(&w, POLICY_MAGIC);
    fls_w_u32(&w, POLICY_VERSION);
    fls_w_u32(&w, (uint32_t)p->cfg.kind);
    fls_w_u32(&w, (uint32_t)p->n_drop);
    for (int d = 0; d < p->n_drop; d++) {
        fls_w_u32(&w, (uint32_t)p->arch.drop_units[d]);
        fls_w_u32(&w, (uint32_t)p->keep_k[d]);
    }
    if (p->cfg.kind == FLS_POLICY_AFD_SINGLE) {
        w_state(&w, p, &p->single);
    } else if (p->cfg.kind == FLS_POLICY_AFD_MULTI) {
        fls_w_u32(&w, (uint32_t)p->n_multi);
        for (size_t i = 0; i < p->n_multi; i++)
            w_state(&w, p, p->multi[i]);
    }
    if (w.failed) {
        free(w.p);
        return FL_ERR_NOMEM;
    }
    *buf = w.p;
    *len = w.len;
    return FL_OK;
}

/* Reads a version 2 keep-set (bitmaps; bits_to_keepset checks them). */
static fl_status r_keepset_bits(fls_rbuf *r, const fls_policy *p, flm_keepset *ks)
{
    const uint8_t *bits = fls_r_take(r, p->bits_len);
    return bits ? bits_to_keepset(p, bits, ks) : FL_ERR_CHECKPOINT_FORMAT;
}

/* Reads a version 1 keep-set: counts must equal keep_k, indexes sorted and unique. */
static fl_status r_keepset(fls_rbuf *r, const fls_policy *p, flm_keepset *ks)
{
    fl_status st = ks_alloc(ks, p->n_drop, p->keep_k);
    if (st != FL_OK)
        return st;
    for (int d = 0; d < p->n_drop; d++) {
        if (fls_r_u32(r) != (uint32_t)p->keep_k[d])
            goto bad;
        for (int j = 0; j < p->keep_k[d]; j++) {
            const uint32_t v = fls_r_u32(r);
            if (r->bad || v >= (uint32_t)p->arch.drop_units[d] ||
                (j > 0 && v <= ks->idx[ks->offset[d] + j - 1]))
                goto bad;
            ks->idx[ks->offset[d] + j] = v;
        }
    }
    if (r->bad || flm_keepset_validate(ks, &p->arch) != FL_OK) /* uneven groups, too */
        goto bad;
    return FL_OK;
bad:
    ks_release(ks);
    return FL_ERR_CHECKPOINT_FORMAT;
}

/* Reads a version 2 palette map (ST_PALETTE) into s->code / s->pal, checking that it is the one
 * spelling w_state writes: 1..255 distinct finite non-negative values in first-use order, every
 * one used, not all zero. */
static fl_status r_palette(fls_rbuf *r, const fls_policy *p, afd_state *s)
{
    const unsigned np = fls_r_u8(r);
    if (r->bad || np == 0 || (size_t)np * 8 + p->n_units > r->len - r->pos)
        return FL_ERR_CHECKPOINT_FORMAT; /* before allocating */
    s->pal = malloc(np * sizeof *s->pal);
    s->code = malloc(p->n_units ? p->n_units : 1);
    if (!s->pal || !s->code)
        return FL_ERR_NOMEM; /* the caller frees */
    s->npal = np;
    for (unsigned i = 0; i < np; i++) {
        const double v = fls_r_f64(r);
        if (!(v >= 0.0) || !isfinite(v))
            return FL_ERR_CHECKPOINT_FORMAT;
        for (unsigned j = 0; j < i; j++)
            if (dbits(s->pal[j]) == dbits(v))
                return FL_ERR_CHECKPOINT_FORMAT;
        s->pal[i] = v;
    }
    /* All zero, +0.0 and -0.0 alike (two bit patterns, one value: scores_zero's view), is never
     * written: such a map would come back as none, and export differently. */
    int nonzero = 0;
    for (unsigned i = 0; i < np; i++)
        nonzero |= s->pal[i] != 0.0;
    if (!nonzero)
        return FL_ERR_CHECKPOINT_FORMAT;
    unsigned seen = 0;
    for (size_t u = 0; u < p->n_units; u++) {
        const unsigned c = fls_r_u8(r);
        if (c > seen || c >= np) /* first use in order */
            return FL_ERR_CHECKPOINT_FORMAT;
        seen += c == seen;
        s->code[u] = (uint8_t)c;
    }
    return r->bad || seen != np ? FL_ERR_CHECKPOINT_FORMAT : FL_OK;
}

static void map_free(afd_state *s)
{
    free(s->S);
    free(s->code);
    free(s->pal);
    s->S = NULL;
    s->code = NULL;
    s->pal = NULL;
    s->npal = 0;
}

/* Reads a state of the given version. An all-zero map comes back as none (no S, no code). */
static fl_status r_state(fls_rbuf *r, const fls_policy *p, afd_state *s, uint32_t version)
{
    memset(s, 0, sizeof *s);
    s->client = fls_r_u32(r);
    const uint8_t hp = fls_r_u8(r);
    s->l_prev = fls_r_f64(r);
    /* Without a previous loss the field is written as +0.0: anything else is damage. */
    if (r->bad || hp > 1 || !isfinite(s->l_prev) ||
        (!hp && (s->l_prev != 0.0 || signbit(s->l_prev))))
        return FL_ERR_CHECKPOINT_FORMAT;
    s->has_prev = hp;
    const uint8_t flags = version >= 2 ? fls_r_u8(r) : ST_SCORES;
    if (r->bad || (flags & ~(ST_SCORES | ST_KEEPSET | ST_PALETTE)) ||
        (flags & (ST_SCORES | ST_PALETTE)) == (ST_SCORES | ST_PALETTE))
        return FL_ERR_CHECKPOINT_FORMAT;
    fl_status st = FL_OK;
    if (flags & ST_PALETTE) {
        st = r_palette(r, p, s);
        if (st != FL_OK)
            goto fail;
    }
    if (flags & ST_SCORES) {
        /* Bound the allocation by what the buffer can hold before making it. */
        if (p->n_units > (r->len - r->pos) / 8)
            return FL_ERR_CHECKPOINT_FORMAT;
        s->S = malloc((p->n_units ? p->n_units : 1) * sizeof *s->S);
        if (!s->S)
            return FL_ERR_NOMEM;
        for (size_t u = 0; u < p->n_units; u++) {
            s->S[u] = fls_r_f64(r);
            if (!(s->S[u] >= 0.0) || !isfinite(s->S[u]))
                goto bad;
        }
        if (scores_zero(p, s)) {
            if (version >= 2) /* never written so: one state, one encoding */
                goto bad;
            map_free(s);
        } else if (version >= 2) {
            double pal[MAP_PAL];
            if (map_palette(p, s, pal, NULL) != 0) /* it fits a palette: written as one */
                goto bad;
        }
    }
    int hasA;
    if (version >= 2) {
        hasA = (flags & ST_KEEPSET) != 0;
    } else {
        const uint8_t b = fls_r_u8(r);
        if (r->bad || b > 1)
            goto bad;
        hasA = b;
    }
    if (hasA) {
        st = version >= 2 ? r_keepset_bits(r, p, &s->A) : r_keepset(r, p, &s->A);
        if (st != FL_OK)
            goto fail;
    }
    return FL_OK;
bad:
    st = FL_ERR_CHECKPOINT_FORMAT;
fail:
    map_free(s);
    return st;
}

fl_status fls_policy_import(fls_policy *p, const uint8_t *buf, size_t len)
{
    if (!p || (!buf && len))
        return FL_ERR_INVALID_ARG;
    fls_rbuf r = {buf, len, 0, 0};
    const uint32_t magic = fls_r_u32(&r), version = fls_r_u32(&r);
    const uint32_t kind = fls_r_u32(&r), n_drop = fls_r_u32(&r);
    if (r.bad || magic != POLICY_MAGIC || version < 1 || version > POLICY_VERSION)
        return FL_ERR_CHECKPOINT_FORMAT;
    if (kind != (uint32_t)p->cfg.kind || n_drop != (uint32_t)p->n_drop)
        return FL_ERR_CHECKPOINT_MISMATCH;
    for (int d = 0; d < p->n_drop; d++) {
        const uint32_t units = fls_r_u32(&r), k = fls_r_u32(&r);
        if (r.bad)
            return FL_ERR_CHECKPOINT_FORMAT;
        if (units != (uint32_t)p->arch.drop_units[d] || k != (uint32_t)p->keep_k[d])
            return FL_ERR_CHECKPOINT_MISMATCH;
    }
    fl_status st = FL_OK;
    if (p->cfg.kind == FLS_POLICY_AFD_SINGLE) {
        afd_state s;
        st = r_state(&r, p, &s, version);
        if (st == FL_OK && (s.client != FLS_POLICY_SHARED_CLIENT || r.pos != r.len))
            st = FL_ERR_CHECKPOINT_FORMAT;
        if (st == FL_OK) /* afd-single keeps its map as doubles, allocated */
            st = map_expand(p, &s);
        if (st == FL_OK && !s.S && !(s.S = calloc(p->n_units ? p->n_units : 1, sizeof *s.S)))
            st = FL_ERR_NOMEM;
        if (st != FL_OK) {
            map_free(&s);
            ks_release(&s.A);
            return st;
        }
        map_free(&p->single);
        ks_release(&p->single.A);
        p->single = s;
    } else if (p->cfg.kind == FLS_POLICY_AFD_MULTI) {
        const uint32_t n = fls_r_u32(&r);
        /* Each client needs at least 14 bytes: refuse counts the buffer cannot hold. */
        if (r.bad || n > (r.len - r.pos) / 14)
            return FL_ERR_CHECKPOINT_FORMAT;
        afd_state **m = calloc(n ? n : 1, sizeof *m);
        if (!m)
            return FL_ERR_NOMEM;
        uint32_t i = 0;
        for (; i < n; i++) {
            m[i] = calloc(1, sizeof **m);
            if (!m[i]) {
                st = FL_ERR_NOMEM;
                break;
            }
            st = r_state(&r, p, m[i], version);
            if (st == FL_OK && (!m[i]->A.idx || (i > 0 && m[i]->client <= m[i - 1]->client)))
                st = FL_ERR_CHECKPOINT_FORMAT;
            if (st != FL_OK) {
                i++;
                break;
            }
        }
        if (st == FL_OK && r.pos != r.len)
            st = FL_ERR_CHECKPOINT_FORMAT;
        if (st != FL_OK) {
            for (uint32_t j = 0; j < i && j < n; j++)
                afd_state_free(m[j]);
            free(m);
            return st;
        }
        for (size_t j = 0; j < p->n_multi; j++)
            afd_state_free(p->multi[j]);
        free(p->multi);
        p->multi = m;
        p->n_multi = n;
        p->cap_multi = n ? n : 1;
        for (size_t j = 0; j < n; j++) { /* between rounds: every state at rest */
            state_compact(p, p->multi[j]);
            map_compact(p, p->multi[j]);
        }
    } else if (r.pos != r.len) {
        return FL_ERR_CHECKPOINT_FORMAT;
    }
    p->in_round = 0;
    p->n_reported = 0;
    return FL_OK;
}
