/* fls_agg.c: streaming aggregation with exact 64-bit fixed-point accumulation (see fls_agg.h).
 *
 * Accumulator arithmetic is modular (uint64_t): acc[i] += n_k * q_k[i] mod 2^64. The range checks
 * (|d| <= 2^A, total weight <= 2^(62-S-A)) guarantee that the true sum of every coordinate lies in
 * (-2^62, 2^62), so the modular result read back as int64 IS the true sum, whatever order the
 * terms came in; and a fold can be undone exactly by subtracting the same terms (used when a
 * commit finds a bad value after part of the update was folded).
 *
 * Float -> fixed conversion: q = round_half_even(x * scale) via the 1.5 * 2^52 "magic number"
 * addition in double (exact for |x * scale| < 2^51), so the AVX2 kernel and the portable scalar
 * kernel give the same bits. n_k * q uses 32x32 -> 64 multiplies (n_k < 2^32, enforced).
 */
#include "fls_agg.h"
#include "fl_mem.h"

#include <fenv.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FLS_AGG_X86 1
#endif

#define MAGIC_D 6755399441055744.0 /* 1.5 * 2^52 */
#define MAGIC_BITS UINT64_C(0x4338000000000000)

#ifdef FLS_AGG_X86
/* Where the kernels fold a borrowed payload (ahead != 0), they ask for its values FOLD_AHEAD
 * bytes ahead of the ones they read. Such a payload was written on another core (fl_sim lends a
 * client worker's encoded update, fls_core_on_message_borrowed) and is read once, while a feed
 * group keeps the accumulator's slice in the cache: the fold stalled on the payload's loads
 * (most of its samples), the hardware prefetcher running too short a way ahead. One page
 * ahead: bench_sim's server ingest per client fell by up to a fifth on a loaded machine, a few
 * percent on a quieter one (sim/README, Benchmark); 1 KB ahead did about half as well, 8 and 16
 * KB no better than 4.
 * Not for a staging buffer decoded here, whose values are in the cache already: there the
 * accumulator is the cold stream, and bench_aggregate's fold (staging, accumulator evicted) was
 * 10-20% slower with it. A prefetch never faults, past the end of x included. */
#define FOLD_AHEAD 4096
static inline void fold_prefetch(const float *x, int ahead)
{
    if (ahead)
        _mm_prefetch((const char *)((uintptr_t)x + FOLD_AHEAD), _MM_HINT_T0);
}
#endif

typedef struct agg_tensor {
    size_t off;        /* first float in the flat layout */
    size_t numel;
    size_t rows, cols, inner;
    size_t RL;         /* row length in floats: cols * inner */
    int row_cells;     /* 1: every row has its own weight cells (row units drop) */
    int col_cells;     /* 1: every column block has its own weight cells (column units drop) */
    size_t cr, cc;     /* cell grid: cr x cc */
    size_t cell0;      /* first cell index */
} agg_tensor;

struct fls_agg {
    fls_agg_options o;
    int flat;              /* no architecture: full-model updates only */
    flm_arch arch;         /* valid when !flat */
    size_t n;              /* N parameters */
    int nt;
    agg_tensor t[FLM_MAX_TENSORS];
    size_t n_cells;
    uint64_t *cellw;       /* (n_cells) weight of submodel updates holding each cell */
    uint64_t w_all;        /* weight of full-model updates (they hold every coordinate) */
    uint64_t w_total;      /* weight of every committed update */
    uint64_t w_cap;        /* total weight bound of the fixed-point range */
    uint64_t *acc;         /* (N) mean mode: modular sums of n_k * q_k */
    double scale;          /* 2^S */
    float maxabs;          /* 2^A */
    int use_avx2;
    int use_avx512;        /* AVX-512 F + DQ: 8 lanes and a 64-bit multiply */
    int early;             /* fold_early in effect: mean mode, no clipping */
    int n_folded_open;     /* open updates holding early-folded values */
    int tainted;           /* an early update's undo log was destroyed (in-place overwrite) */
    /* staging pool */
    float **pool;          /* (max_open) buffers of N floats, allocated on first use */
    unsigned char *busy;   /* (max_open) */
    int n_open;
    /* robust modes */
    float **upd;           /* (max_updates) committed updates, (N) each, NaN where not held */
    int n_upd;
    fls_agg_stats st;
    fls_agg_bad bad;       /* where the last commit refused for a value found it (fls_agg_last_bad) */
};

struct fls_agg_update {
    fls_agg *agg;
    const flm_submodel *sm;
    uint64_t w;
    size_t n_sub;
    int slot;
    float *stage;          /* (n_sub) in the update's layout */
    size_t covered;
    size_t *iv;            /* sorted disjoint half-open ranges [iv[2j], iv[2j+1]) added so far */
    size_t n_iv, cap_iv;
    int poisoned;          /* an in-place add overlapped: the staging may hold clobbered values */
    int folded;            /* early mode: some added range is in the accumulator */
    int bad;               /* early mode: a folded value was out of range or not finite */
    /* Borrowed mode (early mode, first add was fls_agg_update_add_borrowed): where each added
     * range's values live (the caller's memory, or the staging for copied ranges): the undo log. */
    int borrowed;
    struct seg {
        size_t off, n;
        const float *p;
    } *seg;
    size_t n_seg, cap_seg;
};

fls_agg_options fls_agg_options_default(void)
{
    fls_agg_options o;
    memset(&o, 0, sizeof o);
    o.mode = FLS_AGG_MEAN;
    o.frac_bits = 28;
    o.max_abs_log2 = 10;
    o.trim_frac = 0.1;
    o.max_open = 1;
    o.max_updates = fls_agg_updates_kept(&o);
    return o;
}

int fls_agg_updates_kept(const fls_agg_options *o)
{
    return o->max_updates > 0 ? o->max_updates : 256;
}

static fl_status norm_options(const fls_agg_options *in, fls_agg_options *o)
{
    *o = in ? *in : fls_agg_options_default();
    if (o->frac_bits == 0)
        o->frac_bits = 28;
    if (o->max_abs_log2 == 0)
        o->max_abs_log2 = 10;
    if (o->max_open <= 0)
        o->max_open = 1;
    o->max_updates = fls_agg_updates_kept(o);
    if ((int)o->mode < FLS_AGG_MEAN || (int)o->mode > FLS_AGG_MEDIAN)
        return FL_ERR_INVALID_ARG;
    if (o->frac_bits < 8 || o->frac_bits > 40 || o->max_abs_log2 < -8 || o->max_abs_log2 > 20)
        return FL_ERR_INVALID_ARG;
    if (o->frac_bits + o->max_abs_log2 > 50) /* |q| < 2^51 for the magic-number rounding */
        return FL_ERR_INVALID_ARG;
    if (!(o->clip_norm >= 0.0) || !isfinite(o->clip_norm))
        return FL_ERR_INVALID_ARG;
    if (!(o->trim_frac >= 0.0 && o->trim_frac < 0.5))
        return FL_ERR_INVALID_ARG;
    /* 4096 + 1: the daemon's most server.upload_slots, and the round engine's one more for
     * committing an update buffered encoded (fls_core_new); at 4096 the daemon's own maximum
     * was refused ("round engine: invalid configuration") */
    if (o->max_open > 4096 + 1 || o->max_updates > 1000000)
        return FL_ERR_INVALID_ARG;
    if (o->par.parts > FL_PAR_MAX || (o->par.parts > 1 && !o->par.run))
        return FL_ERR_INVALID_ARG;
    return FL_OK;
}

/* Weight-cell geometry. A coordinate (row r, column block c) of a tensor is held by a submodel
 * iff r's unit and c's unit are kept; a dimension whose units never drop has one cell. */
static void build_tensors(fls_agg *a)
{
    size_t cell = 0;
    if (a->flat) {
        agg_tensor *t = &a->t[0];
        memset(t, 0, sizeof *t);
        t->numel = a->n;
        t->rows = 1;
        t->cols = 1;
        t->inner = a->n;
        t->RL = a->n;
        t->cr = t->cc = 1;
        a->nt = 1;
        a->n_cells = 1;
        return;
    }
    a->nt = a->arch.n_tensors;
    for (int i = 0; i < a->nt; i++) {
        const flm_tensor *ft = &a->arch.tensors[i];
        agg_tensor *t = &a->t[i];
        t->off = ft->offset;
        t->numel = ft->numel;
        t->rows = (size_t)ft->rows;
        t->cols = (size_t)ft->cols;
        t->inner = (size_t)ft->inner;
        t->RL = t->cols * t->inner;
        t->row_cells = ft->row_drop >= 0;
        t->col_cells = ft->col_drop >= 0;
        t->cr = t->row_cells ? t->rows : 1;
        t->cc = t->col_cells ? t->cols : 1;
        t->cell0 = cell;
        cell += t->cr * t->cc;
    }
    a->n_cells = cell;
}

static size_t arch_cells(const flm_arch *arch)
{
    if (!arch)
        return 1;
    size_t cells = 0;
    for (int i = 0; i < arch->n_tensors; i++) {
        const flm_tensor *ft = &arch->tensors[i];
        cells += (ft->row_drop >= 0 ? (size_t)ft->rows : 1) * (ft->col_drop >= 0 ? (size_t)ft->cols : 1);
    }
    return cells;
}

enum { HUGE_PAGE = 2 << 20 };

/* What alloc_big takes for bytes: a whole number of huge pages from one on (the last one's tail,
 * under transparent huge pages, is as resident as the rest). */
static size_t big_bytes(size_t bytes)
{
    return bytes >= HUGE_PAGE ? (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE : bytes;
}

size_t fls_agg_memory_bytes(const flm_arch *arch, size_t n_params, const fls_agg_options *opts,
                            size_t n_updates)
{
    fls_agg_options o;
    if (norm_options(opts, &o) != FL_OK)
        return 0;
    if (arch)
        n_params = arch->n_params;
    size_t b = sizeof(fls_agg) + arch_cells(arch) * sizeof(uint64_t);
    b += (size_t)o.max_open * big_bytes(n_params * sizeof(float));
    if (o.mode == FLS_AGG_MEAN)
        b += big_bytes(n_params * sizeof(uint64_t));
    else
        b += n_updates * (n_params * sizeof(float) + sizeof(float *));
    return b;
}

/* The accumulator (8 B/param) and the staging buffers are large and walked run by run: 2 MiB
 * pages cut TLB misses (measured ~25% faster folds on the cnn at keep 0.75 where THP is in
 * madvise mode). A hint only; zeroed when asked; freed with free(). A staging buffer is not
 * zeroed: every value is written before it is read (commit wants the whole update), and its pages
 * stay untouched (no memory) for an update whose ranges all come borrowed (add_borrowed in early
 * mode), as the simulator's plain float32 updates do. */
static void *alloc_big(size_t bytes, int zero)
{
    const size_t huge = HUGE_PAGE, size = big_bytes(bytes);
    void *p = NULL;
    if (bytes >= huge) {
        p = aligned_alloc(huge, size);
        fl_advise_huge(p, size); /* NULL: a no-op */
    } else {
        p = malloc(bytes);
    }
    if (p && zero)
        memset(p, 0, bytes);
    return p;
}

static fl_status agg_create(const flm_arch *arch, size_t n, const fls_agg_options *opts, fls_agg **out)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    fls_agg_options o;
    fl_status s = norm_options(opts, &o);
    if (s != FL_OK)
        return s;
    if (n == 0 || n > SIZE_MAX / 16)
        return FL_ERR_INVALID_ARG;
    fls_agg *a = calloc(1, sizeof *a);
    if (!a)
        return FL_ERR_NOMEM;
    a->o = o;
    a->n = n;
    if (arch)
        a->arch = *arch;
    else
        a->flat = 1;
    build_tensors(a);
    a->scale = ldexp(1.0, o.frac_bits);
    a->maxabs = (float)ldexp(1.0, o.max_abs_log2);
    const int cap_log2 = 62 - o.frac_bits - o.max_abs_log2;
    a->w_cap = cap_log2 >= 32 ? UINT32_MAX : (UINT64_C(1) << cap_log2);
    a->early = o.fold_early && o.mode == FLS_AGG_MEAN && o.clip_norm == 0.0;
#ifdef FLS_AGG_X86
    __builtin_cpu_init();
    a->use_avx2 = !o.no_simd && __builtin_cpu_supports("avx2");
    a->use_avx512 = a->use_avx2 && !o.no_avx512 && __builtin_cpu_supports("avx512f") &&
                    __builtin_cpu_supports("avx512dq");
#endif
    a->cellw = calloc(a->n_cells, sizeof(uint64_t));
    a->pool = calloc((size_t)o.max_open, sizeof(float *));
    a->busy = calloc((size_t)o.max_open, 1);
    if (o.mode == FLS_AGG_MEAN)
        a->acc = alloc_big(n * sizeof(uint64_t), 1);
    else
        a->upd = calloc((size_t)o.max_updates, sizeof(float *));
    if (!a->cellw || !a->pool || !a->busy || (o.mode == FLS_AGG_MEAN ? !a->acc : !a->upd)) {
        fls_agg_free(a);
        return FL_ERR_NOMEM;
    }
    *out = a;
    return FL_OK;
}

fl_status fls_agg_new(const flm_arch *arch, const fls_agg_options *opts, fls_agg **out)
{
    if (!arch || arch->n_tensors <= 0 || arch->n_tensors > FLM_MAX_TENSORS)
        return FL_ERR_INVALID_ARG;
    return agg_create(arch, arch->n_params, opts, out);
}

fl_status fls_agg_new_flat(size_t n_params, const fls_agg_options *opts, fls_agg **out)
{
    return agg_create(NULL, n_params, opts, out);
}

static void free_updates(fls_agg *a)
{
    if (!a->upd)
        return;
    for (int i = 0; i < a->n_upd; i++) {
        free(a->upd[i]);
        a->upd[i] = NULL;
    }
    a->n_upd = 0;
}

void fls_agg_free(fls_agg *agg)
{
    if (!agg)
        return;
    if (agg->pool)
        for (int i = 0; i < agg->o.max_open; i++)
            free(agg->pool[i]);
    free(agg->pool);
    free(agg->busy);
    free_updates(agg);
    free(agg->upd);
    free(agg->acc);
    free(agg->cellw);
    free(agg);
}

uint64_t fls_agg_weight_cap(const fls_agg *agg)
{
    return agg ? agg->w_cap : 0;
}

size_t fls_agg_n_params(const fls_agg *agg)
{
    return agg->n;
}

fl_status fls_agg_begin_round(fls_agg *agg)
{
    if (!agg)
        return FL_ERR_INVALID_ARG;
    if (agg->n_open)
        return FL_ERR_STATE;
    if (agg->acc)
        memset(agg->acc, 0, agg->n * sizeof(uint64_t));
    memset(agg->cellw, 0, agg->n_cells * sizeof(uint64_t));
    agg->w_all = agg->w_total = 0;
    agg->tainted = 0;
    free_updates(agg);
    memset(&agg->st, 0, sizeof agg->st);
    return FL_OK;
}

/* ---- update handles ---------------------------------------------------------------------- */

fl_status fls_agg_update_begin(fls_agg *agg, uint64_t n_samples, const flm_submodel *sm,
                               fls_agg_update **out)
{
    if (!agg || !out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (n_samples == 0 || n_samples > UINT32_MAX)
        return FL_ERR_INVALID_ARG;
    size_t n_sub = agg->n;
    if (sm) {
        const flm_arch *fa = flm_submodel_full_arch(sm);
        if (agg->flat || fa->n_params != agg->n || strcmp(fa->spec, agg->arch.spec) != 0)
            return FL_ERR_INVALID_ARG;
        n_sub = flm_submodel_arch(sm)->n_params;
        if (n_sub == 0 || n_sub > agg->n)
            return FL_ERR_INVALID_ARG;
        if (flm_submodel_is_identity(sm))
            sm = NULL; /* keeps every unit: a full-model update (one weight for all cells) */
    }
    int slot = -1;
    for (int i = 0; i < agg->o.max_open; i++)
        if (!agg->busy[i]) {
            slot = i;
            break;
        }
    if (slot < 0)
        return FL_ERR_STATE;
    if (!agg->pool[slot]) {
        agg->pool[slot] = alloc_big(agg->n * sizeof(float), 0);
        if (!agg->pool[slot])
            return FL_ERR_NOMEM;
    }
    fls_agg_update *h = calloc(1, sizeof *h);
    if (!h)
        return FL_ERR_NOMEM;
    h->agg = agg;
    h->sm = sm;
    h->w = n_samples;
    h->n_sub = n_sub;
    h->slot = slot;
    h->stage = agg->pool[slot];
    agg->busy[slot] = 1;
    agg->n_open++;
    *out = h;
    return FL_OK;
}

size_t fls_agg_update_size(const fls_agg_update *h)
{
    return h ? h->n_sub : 0;
}

/* j = first added range whose end > a; [a, b) overlaps an added range iff iv[j].start < b. */
static size_t first_after(const fls_agg_update *h, size_t a)
{
    size_t lo = 0, hi = h->n_iv;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (h->iv[2 * mid + 1] <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

float *fls_agg_update_stage(fls_agg_update *h, size_t sub_off, size_t n)
{
    if (!h || sub_off > h->n_sub || n > h->n_sub - sub_off)
        return NULL;
    const size_t j = first_after(h, sub_off);
    if (n > 0 && j < h->n_iv && h->iv[2 * j] < sub_off + n)
        return NULL; /* would overwrite values already added */
    return h->stage + sub_off;
}

static void early_fold(fls_agg_update *h, size_t sub_off, size_t n, const float *x, int neg,
                       int ahead);

/* add and add_borrowed. borrow: fold straight from delta and keep the pointer as the undo log
 * (early mode, and only for an update whose every range is logged by pointer). */
static fl_status add_range(fls_agg_update *h, size_t sub_off, const float *delta, size_t n,
                           int borrow)
{
    if (!h || (!delta && n))
        return FL_ERR_INVALID_ARG;
    if (sub_off > h->n_sub || n > h->n_sub - sub_off)
        return FL_ERR_WIRE_CHUNK_RANGE;
    if (n == 0)
        return FL_OK;
    const size_t a = sub_off, b = sub_off + n;
    const size_t j = first_after(h, a);
    if (j < h->n_iv && h->iv[2 * j] < b) {
        if (delta == h->stage + sub_off) {
            h->poisoned = 1; /* decoded in place over added values: they are gone */
            if (h->folded)
                h->agg->tainted = 1; /* and with them the undo log of what was folded */
        }
        return FL_ERR_WIRE_CHUNK_DUP;
    }
    const int join_prev = j > 0 && h->iv[2 * (j - 1) + 1] == a;
    const int join_next = j < h->n_iv && h->iv[2 * j] == b;
    if (!join_prev && !join_next && h->n_iv == h->cap_iv) {
        const size_t cap = h->cap_iv ? 2 * h->cap_iv : 16;
        size_t *iv = realloc(h->iv, cap * 2 * sizeof(size_t));
        if (!iv)
            return FL_ERR_NOMEM;
        h->iv = iv;
        h->cap_iv = cap;
    }
    if (borrow && (!h->agg->early || (h->covered > 0 && !h->borrowed)))
        borrow = 0; /* copied like add(): the undo log is the staging */
    if (borrow)
        h->borrowed = 1;
    if (h->borrowed && h->n_seg == h->cap_seg) {
        const size_t cap = h->cap_seg ? 2 * h->cap_seg : 16;
        struct seg *sg = realloc(h->seg, cap * sizeof *sg);
        if (!sg)
            return FL_ERR_NOMEM;
        h->seg = sg;
        h->cap_seg = cap;
    }
    if (!borrow && delta != h->stage + sub_off)
        memcpy(h->stage + sub_off, delta, n * sizeof(float));
    if (join_prev && join_next) {
        h->iv[2 * (j - 1) + 1] = h->iv[2 * j + 1];
        memmove(h->iv + 2 * j, h->iv + 2 * (j + 1), (h->n_iv - j - 1) * 2 * sizeof(size_t));
        h->n_iv--;
    } else if (join_prev) {
        h->iv[2 * (j - 1) + 1] = b;
    } else if (join_next) {
        h->iv[2 * j] = a;
    } else {
        memmove(h->iv + 2 * (j + 1), h->iv + 2 * j, (h->n_iv - j) * 2 * sizeof(size_t));
        h->iv[2 * j] = a;
        h->iv[2 * j + 1] = b;
        h->n_iv++;
    }
    h->covered += n;
    if (h->agg->early) {
        if (!h->folded) {
            h->folded = 1;
            h->agg->n_folded_open++;
        }
        const float *src = borrow ? delta : h->stage + a;
        if (h->borrowed)
            h->seg[h->n_seg++] = (struct seg){a, n, src};
        early_fold(h, a, n, src, 0, borrow);
    }
    return FL_OK;
}

fl_status fls_agg_update_add(fls_agg_update *h, size_t sub_off, const float *delta, size_t n)
{
    return add_range(h, sub_off, delta, n, 0);
}

fl_status fls_agg_update_add_borrowed(fls_agg_update *h, size_t sub_off, const float *delta,
                                      size_t n)
{
    return add_range(h, sub_off, delta, n, 1);
}

/* Early mode: subtracts every added range again (exact), so that the aggregate is as if the
 * update never began. */
static void early_undo(fls_agg_update *h)
{
    if (!h->folded)
        return;
    if (h->borrowed) {
        for (size_t j = 0; j < h->n_seg; j++)
            early_fold(h, h->seg[j].off, h->seg[j].n, h->seg[j].p, 1, 1);
        return;
    }
    for (size_t j = 0; j < h->n_iv; j++)
        early_fold(h, h->iv[2 * j], h->iv[2 * j + 1] - h->iv[2 * j], h->stage + h->iv[2 * j], 1,
                   0);
}

static void release(fls_agg_update *h)
{
    fls_agg *a = h->agg;
    if (h->folded)
        a->n_folded_open--;
    a->busy[h->slot] = 0;
    a->n_open--;
    free(h->iv);
    free(h->seg);
    free(h);
}

void fls_agg_update_abort(fls_agg_update *h)
{
    if (!h)
        return;
    early_undo(h);
    h->agg->st.n_aborted++;
    release(h);
}

void fls_agg_update_discard(fls_agg_update *h)
{
    if (!h)
        return;
    if (h->folded)
        h->agg->tainted = 1;
    release(h);
}

/* ---- the fold kernels ---------------------------------------------------------------------- */

static inline uint32_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static inline uint64_t to_fixed(float x, double scale)
{
    const double t = (double)x * scale + MAGIC_D;
    uint64_t b;
    memcpy(&b, &t, sizeof b);
    return b - MAGIC_BITS;
}

/* acc[i] +=/-= w * round(x[i] * scale) (mod 2^64); returns nonzero if some !(|x[i]| <= thr). */
static int fold_scalar(uint64_t *acc, const float *x, size_t len, uint64_t w, double scale,
                       float thr, int neg)
{
    int bad = 0;
    for (size_t i = 0; i < len; i++) {
        bad |= !(fabsf(x[i]) <= thr);
        const uint64_t p = to_fixed(x[i], scale) * w;
        acc[i] = neg ? acc[i] - p : acc[i] + p;
    }
    return bad;
}

#ifdef FLS_AGG_X86
__attribute__((target("avx2")))
static int fold_avx2(uint64_t *acc, const float *x, size_t len, uint64_t w, double scale,
                     float thr, float fast, int neg, int ahead)
{
    const __m256d vs = _mm256_set1_pd(scale);
    const __m256d magic = _mm256_set1_pd(MAGIC_D);
    const __m256i mbits = _mm256_set1_epi64x((long long)MAGIC_BITS);
    const __m256i vw = _mm256_set1_epi64x((long long)w); /* w < 2^32: low halves suffice */
    const __m128 absm = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    const __m128 vthr = _mm_set1_ps(thr);
    __m128 bad = _mm_setzero_ps();
    size_t i = 0;
#define FOLD4(OFF)                                                                            \
    do {                                                                                      \
        const __m128 xf = _mm_loadu_ps(x + i + (OFF));                                        \
        bad = _mm_or_ps(bad, _mm_cmp_ps(_mm_and_ps(xf, absm), vthr, _CMP_NLE_UQ));           \
        const __m256d v = _mm256_add_pd(_mm256_mul_pd(_mm256_cvtps_pd(xf), vs), magic);       \
        const __m256i q = _mm256_sub_epi64(_mm256_castpd_si256(v), mbits);                    \
        const __m256i p = _mm256_add_epi64(                                                   \
            _mm256_mul_epu32(q, vw),                                                          \
            _mm256_slli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(q, 32), vw), 32));           \
        __m256i s = _mm256_loadu_si256((const __m256i *)(acc + i + (OFF)));                   \
        s = neg ? _mm256_sub_epi64(s, p) : _mm256_add_epi64(s, p);                            \
        _mm256_storeu_si256((__m256i *)(acc + i + (OFF)), s);                                 \
    } while (0)
    if (fast > 0.0f) { /* fold_avx512's 32-bit fast path, 8 lanes at a time (see there) */
        const __m256i vfast = _mm256_set1_epi32((int)float_bits(fast));
        const __m256i absm8 = _mm256_set1_epi32(0x7fffffff);
        const __m256i vexp = _mm256_set1_epi32(ilogb(scale) << 23);
        for (; i + 8 <= len; i += 8) {
            fold_prefetch(x + i, ahead);
            const __m256i xb = _mm256_loadu_si256((const __m256i *)(x + i));
            if (_mm256_movemask_epi8(_mm256_cmpgt_epi32(vfast, _mm256_and_si256(xb, absm8))) !=
                -1) {
                FOLD4(0);
                FOLD4(4);
                continue;
            }
            const __m256i xs = _mm256_add_epi32(xb, vexp); /* x * 2^S: see fold_avx512 */
            const __m256i q = _mm256_cvtps_epi32(_mm256_castsi256_ps(xs));
            const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
            const __m256i p0 = _mm256_mul_epi32(_mm256_cvtepi32_epi64(q0), vw);
            const __m256i p1 = _mm256_mul_epi32(_mm256_cvtepi32_epi64(q1), vw);
            __m256i s0 = _mm256_loadu_si256((const __m256i *)(acc + i));
            __m256i s1 = _mm256_loadu_si256((const __m256i *)(acc + i + 4));
            s0 = neg ? _mm256_sub_epi64(s0, p0) : _mm256_add_epi64(s0, p0);
            s1 = neg ? _mm256_sub_epi64(s1, p1) : _mm256_add_epi64(s1, p1);
            _mm256_storeu_si256((__m256i *)(acc + i), s0);
            _mm256_storeu_si256((__m256i *)(acc + i + 4), s1);
        }
    }
    for (; i + 8 <= len; i += 8) {
        fold_prefetch(x + i, ahead);
        FOLD4(0);
        FOLD4(4);
    }
    for (; i + 4 <= len; i += 4)
        FOLD4(0);
#undef FOLD4
    int b = _mm_movemask_ps(bad) != 0;
    b |= fold_scalar(acc + i, x + i, len - i, w, scale, thr, neg);
    return b;
}

/* The same arithmetic 8 lanes wide (x * 2^S is exact in double, so a contracted multiply-add
 * rounds as the separate ones do; the 64-bit products are exact mod 2^64): the same bits. The
 * fold is compute-bound at 4 lanes (about 3.5 instructions per element), so twice the lanes is
 * about twice the speed. */
__attribute__((target("avx2,avx512f,avx512dq")))
static inline __m256 fold8_avx512(uint64_t *acc, const float *x, __m512d vs, __m512i vw,
                                  __m256 vthr, int neg)
{
    const __m512d magic = _mm512_set1_pd(MAGIC_D);
    const __m512i mbits = _mm512_set1_epi64((long long)MAGIC_BITS);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 xf = _mm256_loadu_ps(x);
    const __m256 bad = _mm256_cmp_ps(_mm256_and_ps(xf, absm), vthr, _CMP_NLE_UQ);
    const __m512d v = _mm512_add_pd(_mm512_mul_pd(_mm512_cvtps_pd(xf), vs), magic);
    const __m512i q = _mm512_sub_epi64(_mm512_castpd_si512(v), mbits);
    const __m512i p = _mm512_mullo_epi64(q, vw);
    __m512i s = _mm512_loadu_si512((const void *)acc);
    s = neg ? _mm512_sub_epi64(s, p) : _mm512_add_epi64(s, p);
    _mm512_storeu_si512((void *)acc, s);
    return bad;
}

/* fold_avx512 with a 32-bit fast path, 16 lanes at a time, for scale = 2^S and w < 2^31: where
 * all 16 values are in range (|x| <= thr) and |x| < 2^(31-S), x * 2^S is exact in float and
 * round(x * 2^S) fits an int32, so S added to the exponent field, a 32-bit conversion (rounding
 * to nearest even, as the magic-number addition does in the default mode, the only one where
 * fast_bound allows this path) and a signed 32x32->64 multiply give the very same product as the
 * 64-bit path, in about half the micro-ops (the 64-bit multiply alone is three). No float
 * arithmetic touches x: a float multiply of a subnormal takes a microcode slow path on this CPU
 * (a fold 10x slower with a fifth of the values subnormal, which a client could send); the range
 * check compares the bits as integers (for |x| they order as the floats do; NaN's are above).
 * Deltas of a local round are far below 2^(31-S) (8 at the default S = 28), so the 64-bit path
 * runs only for a vector holding a large, bad or NaN value: the same bits either way. fast is
 * the float bound min(2^(31-S), the float just above thr). */
__attribute__((target("avx2,avx512f,avx512dq")))
static int fold_avx512(uint64_t *acc, const float *x, size_t len, uint64_t w, double scale,
                       float thr, float fast, int neg, int ahead)
{
    const __m512d vs = _mm512_set1_pd(scale);
    const __m512i vw = _mm512_set1_epi64((long long)w);
    const __m256 vthr = _mm256_set1_ps(thr);
    __m256 bad = _mm256_setzero_ps();
    size_t i = 0;
    if (fast > 0.0f) {
        const __m512i vfast = _mm512_set1_epi32((int)float_bits(fast));
        const __m512i absm = _mm512_set1_epi32(0x7fffffff);
        const __m512i vexp = _mm512_set1_epi32(ilogb(scale) << 23);
        for (; i + 16 <= len; i += 16) {
            fold_prefetch(x + i, ahead);
            const __m512i xb = _mm512_loadu_si512((const void *)(x + i));
            if (_mm512_cmplt_epi32_mask(_mm512_and_si512(xb, absm), vfast) != 0xffff) {
                bad = _mm256_or_ps(bad, fold8_avx512(acc + i, x + i, vs, vw, vthr, neg));
                bad = _mm256_or_ps(bad, fold8_avx512(acc + i + 8, x + i + 8, vs, vw, vthr, neg));
                continue;
            }
            /* x * 2^S by the exponent field: exact for a normal x; a zero or subnormal one (field
             * 0) becomes a float below 2^(S-126) <= 2^-86 in magnitude, which rounds to 0 as
             * round(x 2^S) does */
            const __m512i xs = _mm512_add_epi32(xb, vexp);
            const __m512i q = _mm512_cvt_roundps_epi32(_mm512_castsi512_ps(xs),
                                                       _MM_FROUND_TO_NEAREST_INT |
                                                           _MM_FROUND_NO_EXC);
            const __m256i q0 = _mm512_castsi512_si256(q), q1 = _mm512_extracti64x4_epi64(q, 1);
            const __m512i p0 = _mm512_mul_epi32(_mm512_cvtepi32_epi64(q0), vw);
            const __m512i p1 = _mm512_mul_epi32(_mm512_cvtepi32_epi64(q1), vw);
            __m512i s0 = _mm512_loadu_si512((const void *)(acc + i));
            __m512i s1 = _mm512_loadu_si512((const void *)(acc + i + 8));
            s0 = neg ? _mm512_sub_epi64(s0, p0) : _mm512_add_epi64(s0, p0);
            s1 = neg ? _mm512_sub_epi64(s1, p1) : _mm512_add_epi64(s1, p1);
            _mm512_storeu_si512((void *)(acc + i), s0);
            _mm512_storeu_si512((void *)(acc + i + 8), s1);
        }
    }
    for (; i + 8 <= len; i += 8) {
        fold_prefetch(x + i, ahead);
        bad = _mm256_or_ps(bad, fold8_avx512(acc + i, x + i, vs, vw, vthr, neg));
    }
    int b = _mm256_movemask_ps(bad) != 0;
    b |= fold_avx2(acc + i, x + i, len - i, w, scale, thr, 0.0f, neg, 0);
    return b;
}
#endif

/* cell_account's cursor over a walk's runs: the tensor, and the row, of the last run. */
typedef struct cell_cur {
    int ti;
    size_t row;
} cell_cur;

/* cell_account: the row of q (an offset in t), given the row of the walk's previous run, hint
 * (a walk's runs come in increasing order, mostly in that row or the next): a division only
 * when q lies elsewhere. */
static inline size_t cell_row(const agg_tensor *t, size_t q, size_t hint)
{
    const size_t rs = hint * t->RL;
    if (q >= rs && q - rs < t->RL)
        return hint;
    if (q >= rs + t->RL && q - rs - t->RL < t->RL)
        return hint + 1;
    return q / t->RL; /* NOLINT(clang-analyzer-core.DivideZero): a tensor's RL is >= 1 */
}

/* Weight cells: each held cell gets w once, at its representative element (row 0 if rows have
 * no cells of their own, column block 0 likewise, inner offset 0), which every holder holds.
 * Adds w (mod 2^64: pass 0 - w to undo) to the cells of the run [full_index, +len). cur is the
 * walk's cursor (runs come in increasing full order within one walk). */
static void cell_account(fls_agg *a, cell_cur *cur, size_t full_index, size_t len, uint64_t w)
{
    int *ti = &cur->ti;
    size_t p = full_index;
    const size_t end = full_index + len;
    while (p < end) {
        const int ti0 = *ti;
        while (*ti < a->nt && a->t[*ti].off + a->t[*ti].numel <= p)
            (*ti)++;
        if (*ti >= a->nt) { /* a run past the last tensor: impossible for a valid submodel */
            *ti = 0;
            while (*ti < a->nt && a->t[*ti].off + a->t[*ti].numel <= p)
                (*ti)++;
            if (*ti >= a->nt)
                return;
        }
        if (*ti != ti0)
            cur->row = 0; /* a hint for another tensor's rows */
        if (a->t[*ti].off > p) {
            if (*ti > 0 && a->t[*ti - 1].off <= p) { /* p in no tensor: skip the hole */
                p = a->t[*ti].off < end ? a->t[*ti].off : end;
                continue;
            }
            *ti = 0; /* runs went backwards: restart the cursor */
            cur->row = 0;
            continue;
        }
        const agg_tensor *t = &a->t[*ti];
        const size_t tend = end < t->off + t->numel ? end : t->off + t->numel;
        const size_t q0 = p - t->off, q1 = tend - t->off;
        const size_t r0 = cell_row(t, q0, cur->row);
        size_t r1 = cell_row(t, q1 - 1, r0);
        cur->row = r1;
        if (!t->row_cells && r1 > 0)
            r1 = 0;
        for (size_t r = r0; r <= r1; r++) {
            const size_t rs = r * t->RL;
            const size_t lo = (q0 > rs ? q0 : rs) - rs;
            const size_t hi = (q1 < rs + t->RL ? q1 : rs + t->RL) - rs;
            uint64_t *row = a->cellw + t->cell0 + (t->row_cells ? r : 0) * t->cc;
            if (t->col_cells) {
                /* blocks cb with lo <= cb * inner < hi; bounds held in locals, not read from *t
                 * each time round (row may alias it for the compiler), and no division for the
                 * dense layers' inner of 1 */
                const size_t in = t->inner;
                const size_t cb0 = in == 1 ? lo : (lo + in - 1) / in;
                const size_t cb1 = in == 1 ? hi : (hi + in - 1) / in;
                for (size_t cb = cb0; cb < cb1; cb++)
                    row[cb] += w;
            } else if (lo == 0) {
                row[0] += w;
            }
        }
        p = tend;
    }
}

typedef struct cell_ctx {
    fls_agg *a;
    uint64_t w;
    cell_cur cur;
} cell_ctx;

static void cell_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    (void)sub_index;
    cell_ctx *c = user;
    cell_account(c->a, &c->cur, full_index, len, c->w);
}

typedef struct fold_ctx {
    fls_agg *a;
    const float *src;  /* the update's element at sub index i is src[i - base] */
    size_t base;
    uint64_t w;
    double scale;
    float thr;
    float fast;        /* the kernels' 32-bit fast-path bound; 0: the 64-bit path only */
    int neg;
    int ahead;         /* x is a borrowed payload: the kernels prefetch it (FOLD_AHEAD) */
    int bad;
    size_t prev_end;   /* full index just past the previous run; 0 before the first */
    cell_cur cur;      /* cell_account's cursor */
    /* Short runs gathered for one fold (fold_run): span_n values of the accumulator from
     * span_at, the runs' own and zeros between them. Last: fold_setup leaves it uninitialised. */
    size_t span_at, span_n;
    float span[4096];
} fold_ctx;

#define FOLD_CTX_HEAD offsetof(fold_ctx, span) /* what fold_setup zeroes */

/* The fold's rounding mode, whatever the caller's: to nearest. A term is round(x 2^S w) by the
 * magic-number addition, which follows the rounding mode, and an update folded in one mode and
 * undone in another (an embedder that changed it between the calls) left w (q_mode1 - q_mode2)
 * in the aggregate, which an abort must leave as if the update never came (until 2026-12-07:
 * fesetround was heeded only by the split fold). On x86 the arithmetic follows MXCSR, which
 * glibc's fegetround does not read (it reads the x87 control word): MXCSR's rounding field itself
 * is set. FTZ and DAZ are left as the caller has them: they change no term (a subnormal delta's
 * term, |x| 2^S w <= 2^-56, rounds to 0 either way; a mean is at least 2^-70 or 0), and a host
 * may set DAZ to keep subnormal payloads off the CPU's slow path. fold_env_end restores the
 * caller's mode. */
typedef struct fold_env {
#ifdef FLS_AGG_X86
    unsigned csr;
#else
    int mode;
#endif
} fold_env;

#ifdef FLS_AGG_X86
#define FOLD_CSR_ENV 0x6000u /* MXCSR's rounding control, bits 13-14 (00: to nearest) */
#endif

static fold_env fold_env_begin(void)
{
    fold_env e;
#ifdef FLS_AGG_X86
    e.csr = _mm_getcsr();
    if (e.csr & FOLD_CSR_ENV)
        _mm_setcsr(e.csr & ~FOLD_CSR_ENV);
#else
    e.mode = fegetround();
    if (e.mode != FE_TONEAREST)
        fesetround(FE_TONEAREST);
#endif
    return e;
}

static void fold_env_end(fold_env e)
{
#ifdef FLS_AGG_X86
    if (e.csr & FOLD_CSR_ENV)
        _mm_setcsr(e.csr);
#else
    if (e.mode != FE_TONEAREST)
        fesetround(e.mode);
#endif
}

/* The SIMD kernels' 32-bit fast-path bound for these terms: min(2^(31-S), the float above thr)
 * where scale is exactly 2^S and w < 2^31 (a clipped update's scale is usually not a power of
 * two); 0 otherwise. The fast path's conversion rounds to nearest, as the magic-number addition
 * does in the fold's environment (fold_env_begin). */
static float fast_bound(double scale, float thr, uint64_t w)
{
    int e;
    if (w >= (UINT64_C(1) << 31) || frexp(scale, &e) != 0.5 || e - 1 > 40 || e - 1 < 0)
        return 0.0f;
    const float f = ldexpf(1.0f, 31 - (e - 1));
    const float t = nextafterf(thr, INFINITY);
    return t < f ? t : f;
}

/* ahead: x is c's borrowed payload (not the gap filler). */
static void fold_now(fold_ctx *c, size_t full_index, const float *x, size_t len, int ahead)
{
    uint64_t *acc = c->a->acc + full_index;
#ifdef FLS_AGG_X86
    if (c->a->use_avx512) {
        c->bad |= fold_avx512(acc, x, len, c->w, c->scale, c->thr, c->fast, c->neg, ahead);
        return;
    }
    if (c->a->use_avx2) {
        c->bad |= fold_avx2(acc, x, len, c->w, c->scale, c->thr, c->fast, c->neg, ahead);
        return;
    }
#else
    (void)ahead;
#endif
    c->bad |= fold_scalar(acc, x, len, c->w, c->scale, c->thr, c->neg);
}

/* Gap filling. A submodel's runs leave gaps in the accumulator where dropped units sit (e.g. 49
 * int64 = 392 B per dropped input channel of the cnn's dense layer), at random places. Writing
 * back through randomly gapped lines runs at about half the speed of a contiguous stream here,
 * so a gap of at most GAP_FILL elements between two runs is folded too, with zero deltas: the
 * accumulator is unchanged (w * round(0) = 0) but the stream stays contiguous (measured ~1.5x on
 * the 0.75-keep cnn, despite the extra lines). Larger gaps (dropped rows) are skipped. */
#define GAP_FILL 1024
static const float zero_deltas[GAP_FILL];

/* Runs shorter than SPAN_RUN are not folded one by one: a submodel that drops both the inputs
 * and the outputs of a dense layer (afd-multi, fd-per-client) holds runs of a few elements (the
 * mlp's 200x200 layer at keep 0.75: about 5,600 runs of 4 on average), and a kernel call for each
 * run and each gap between them cost about 10 times the fold itself (bench_sim --policy
 * afd-multi). They are copied, with the zeros of the gaps between them (at most GAP_FILL), into
 * the context's span and folded as one stream of up to SPAN_MAX values: the same terms, and
 * zeros, which change nothing (GAP_FILL above); the same bits, the integer sums commute. */
#define SPAN_RUN 32
#define SPAN_MAX (sizeof ((fold_ctx *)0)->span / sizeof(float))

static void span_flush(fold_ctx *c)
{
    if (c->span_n)
        fold_now(c, c->span_at, c->span, c->span_n, 0);
    c->span_n = 0;
}

static void fold_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    fold_ctx *c = user;
    const float *x = c->src + (sub_index - c->base);
    const int near = c->prev_end > 0 && full_index >= c->prev_end &&
                     full_index - c->prev_end <= GAP_FILL;
    const size_t gap = near ? full_index - c->prev_end : 0;
    if (len < SPAN_RUN) {
        if (!(near && c->span_n && c->span_n + gap + len <= SPAN_MAX)) {
            span_flush(c);
            c->span_at = full_index;
        } else {
            /* plain loops: memset and memcpy of a few bytes cost more than the copy */
            float *d = c->span + c->span_n;
            for (size_t i = 0; i < gap; i++)
                d[i] = 0.0f;
            c->span_n += gap;
        }
        float *d = c->span + c->span_n; /* float moves: a NaN's bits, -0 kept as they are */
        for (size_t i = 0; i < len; i++)
            d[i] = x[i];
        c->span_n += len;
    } else {
        span_flush(c);
        if (near && gap)
            fold_now(c, c->prev_end, zero_deltas, gap, 0);
        fold_now(c, full_index, x, len, c->ahead);
    }
    c->prev_end = full_index + len;
    cell_account(c->a, &c->cur, full_index, len, c->neg ? 0 - c->w : c->w);
}

/* Folds the update's elements [sub_off, sub_off + n) of sm's walk with c (fold_run), the last
 * span included. */
static void fold_walk(fold_ctx *c, const flm_submodel *sm, size_t sub_off, size_t n)
{
    flm_submodel_runs(sm, sub_off, n, fold_run, c);
    span_flush(c);
}

/* fc for folding h's elements from x (x[0] is element sub_off) with sign neg; ahead: x is a
 * borrowed payload (fold_now). */
static void fold_setup(fold_ctx *fc, const fls_agg_update *h, size_t sub_off, const float *x,
                       int neg, int ahead)
{
    fls_agg *a = h->agg;
    memset(fc, 0, FOLD_CTX_HEAD);
    fc->a = a;
    fc->src = x;
    fc->base = sub_off;
    fc->w = h->w;
    fc->scale = a->scale;
    fc->thr = a->maxabs;
    fc->fast = fast_bound(fc->scale, fc->thr, fc->w);
    fc->neg = neg;
    fc->ahead = ahead;
}

/* Folds the update's elements [sub_off, sub_off + n) with fc (set up for x at fc->base). */
static void fold_range(fold_ctx *fc, const fls_agg_update *h, size_t sub_off, size_t n)
{
    if (h->sm)
        fold_walk(fc, h->sm, sub_off, n);
    else
        fold_now(fc, sub_off, fc->src + (sub_off - fc->base), n, fc->ahead);
}

/* One piece of a parallel early fold: pieces are disjoint in the update's layout, so disjoint in
 * the accumulator and in the weight cells (a cell is counted by the run that holds its
 * representative element, which lies in one piece); gap filling stays inside a piece. */
typedef struct par_fold {
    const fls_agg_update *h;
    const float *x;
    size_t sub_off, n;
    unsigned parts;
    int neg, ahead;
    int bad[FL_PAR_MAX];
} par_fold;

static void par_fold_piece(void *arg, unsigned i)
{
    par_fold *p = arg;
    /* Piece bounds on 16-element (64-byte) steps of the update's layout. */
    const size_t steps = (p->n + 15) / 16;
    size_t lo = steps * i / p->parts * 16, hi = steps * (i + 1) / p->parts * 16;
    if (hi > p->n)
        hi = p->n;
    if (lo >= hi)
        return;
    /* A lender's thread may be in another environment than the caller's fold_env_begin set,
     * which would round these terms otherwise (and a piece undone on another thread than it was
     * folded on would not cancel). */
    const fold_env env = fold_env_begin();
    fold_ctx fc;
    fold_setup(&fc, p->h, p->sub_off, p->x, p->neg, p->ahead);
    fold_range(&fc, p->h, p->sub_off + lo, hi - lo);
    p->bad[i] = fc.bad;
    fold_env_end(env);
}

/* Early mode: folds the update's elements [sub_off, sub_off + n), read from x (x[0] is element
 * sub_off; ahead: a borrowed payload), with sign neg: split over the lent parallel-for when there
 * is one (fl_par). */
static void early_fold(fls_agg_update *h, size_t sub_off, size_t n, const float *x, int neg,
                       int ahead)
{
    const fl_par *par = &h->agg->o.par;
    const fold_env env = fold_env_begin();
    if (par->parts > 1 && n >= (par->min_elems ? par->min_elems : FLS_PAR_MIN_ELEMS)) {
        par_fold p;
        p.h = h;
        p.x = x;
        p.sub_off = sub_off;
        p.n = n;
        p.parts = par->parts;
        p.neg = neg;
        p.ahead = ahead;
        memset(p.bad, 0, sizeof p.bad);
        par->run(par->pool, par_fold_piece, &p, p.parts);
        for (unsigned i = 0; i < p.parts; i++)
            h->bad |= p.bad[i];
    } else {
        fold_ctx fc;
        fold_setup(&fc, h, sub_off, x, neg, ahead);
        fold_range(&fc, h, sub_off, n);
        h->bad |= fc.bad;
    }
    fold_env_end(env);
}

static double stage_norm(const float *x, size_t n)
{
    /* Index order, 4 partial sums: deterministic for a given layout. */
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            s[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++)
        s[0] += (double)x[i] * (double)x[i];
    return sqrt((s[0] + s[1]) + (s[2] + s[3]));
}

typedef struct store_ctx {
    float *dst;
    const float *src;
    float c;
} store_ctx;

/* x * c in double, rounded once to float: the product of two floats is exact in double, so this
 * is the bits of the float product x * c, without the float multiply's microcode slow path on a
 * subnormal x (values a client sends: 3.6-5.9x slower commits in the robust modes). */
static void store_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    const store_ctx *s = user;
    const double c = s->c;
    for (size_t i = 0; i < len; i++)
        s->dst[full_index + i] = (float)((double)s->src[sub_index + i] * c + 0.0); /* -0 -> +0 */
}

/* The first bad values of a refused update, by a scalar rescan made only once the fold (or the
 * robust modes' test) said that one was there: the hot paths keep their one flag. */
typedef struct bad_scan {
    size_t nan_at, range_at; /* elements of the update; SIZE_MAX: none */
    float nan_v, range_v;
} bad_scan;

static void bad_scan_range(bad_scan *b, const float *x, size_t n, size_t off, float thr)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            if (off + i < b->nan_at) {
                b->nan_at = off + i;
                b->nan_v = x[i];
            }
            return; /* the rest lie beyond it */
        }
        if (!(fabsf(x[i]) <= thr) && off + i < b->range_at) {
            b->range_at = off + i;
            b->range_v = x[i];
        }
    }
}

/* Which failure the scan found (NaN/Inf before range, as ever), recorded in a->bad with where the
 * first such value is. A range failure whose value the rescan cannot find (none: the fold and the
 * rescan test alike) is still a range failure, recorded without a place. */
static fl_status bad_scan_end(fls_agg *a, const bad_scan *b, float thr, double c)
{
    fls_agg_bad *r = &a->bad;
    r->bound = thr;
    r->max_abs = a->maxabs;
    r->clip = c;
    r->found = 1;
    if (b->nan_at != SIZE_MAX) {
        r->status = FL_ERR_NUMERIC;
        r->index = b->nan_at;
        r->value = b->nan_v;
    } else {
        r->status = FL_ERR_AGG_RANGE;
        r->found = b->range_at != SIZE_MAX;
        r->index = r->found ? b->range_at : 0;
        r->value = r->found ? b->range_v : 0.0f;
    }
    return r->status;
}

static fl_status classify_bad(fls_agg *a, const float *x, size_t n, float thr, double c)
{
    bad_scan b = {SIZE_MAX, SIZE_MAX, 0.0f, 0.0f};
    bad_scan_range(&b, x, n, 0, thr);
    return bad_scan_end(a, &b, thr, c);
}

/* Early mode, a folded value failed the range check: which failure (NaN/Inf or range). */
static fl_status early_classify_bad(const fls_agg_update *h)
{
    fls_agg *a = h->agg;
    if (!h->borrowed)
        return classify_bad(a, h->stage, h->n_sub, a->maxabs, 1.0);
    bad_scan b = {SIZE_MAX, SIZE_MAX, 0.0f, 0.0f};
    for (size_t j = 0; j < h->n_seg; j++)
        bad_scan_range(&b, h->seg[j].p, h->seg[j].n, h->seg[j].off, a->maxabs);
    return bad_scan_end(a, &b, a->maxabs, 1.0);
}

int fls_agg_last_bad(const fls_agg *agg, fls_agg_bad *out)
{
    if (!agg || !out || agg->bad.status == FL_OK)
        return 0;
    *out = agg->bad;
    return 1;
}

/* The bound on |x| of an update clipped by c (1: not clipped) that keeps |x * c| <= 2^A: the
 * largest float not above 2^A / c (c <= 1). Every mode tests a value by it, so that one update
 * is taken or refused alike whatever aggregation.mode. */
static float range_thr(const fls_agg *a, double c)
{
    if (!(c < 1.0))
        return a->maxabs;
    const double t = (double)a->maxabs / c;
    float thr = t >= 3.0e38 ? 3.0e38f : (float)t;
    if ((double)thr > t)
        thr = nextafterf(thr, 0.0f);
    return thr;
}

fl_status fls_agg_update_commit(fls_agg_update *h)
{
    if (!h)
        return FL_ERR_INVALID_ARG;
    fls_agg *a = h->agg;
    fl_status s = FL_OK;
    double c = 1.0, norm = 0.0;
    memset(&a->bad, 0, sizeof a->bad);
    if (h->poisoned) {
        s = FL_ERR_WIRE_CHUNK_DUP;
        early_undo(h); /* what it can: the aggregator is tainted anyway */
        goto fail;
    }
    if (a->early) {
        /* Every added value is folded already: check, and undo on failure. */
        if (h->covered != h->n_sub)
            s = FL_ERR_WIRE_CHUNK_MISSING;
        else if (a->w_total + h->w > a->w_cap)
            s = FL_ERR_OVERFLOW;
        else if (h->bad)
            s = early_classify_bad(h);
        if (s != FL_OK) {
            early_undo(h);
            goto fail;
        }
        goto counted;
    }
    if (h->covered != h->n_sub) {
        s = FL_ERR_WIRE_CHUNK_MISSING;
        goto fail;
    }
    if (a->w_total + h->w > a->w_cap) {
        s = FL_ERR_OVERFLOW;
        goto fail;
    }
    if (a->o.clip_norm > 0.0) {
        norm = stage_norm(h->stage, h->n_sub);
        if (!isfinite(norm)) { /* a value is not finite (the squares cannot overflow a double) */
            s = classify_bad(a, h->stage, h->n_sub, a->maxabs, 1.0);
            goto fail;
        }
        if (norm > a->o.clip_norm)
            c = a->o.clip_norm / norm;
    }
    const float thr = range_thr(a, c);
    if (a->o.mode == FLS_AGG_MEAN) {
        const fold_env env = fold_env_begin();
        fold_ctx fc;
        memset(&fc, 0, FOLD_CTX_HEAD);
        fc.a = a;
        fc.src = h->stage;
        fc.w = h->w;
        fc.scale = a->scale * c;
        fc.thr = thr;
        fc.fast = fast_bound(fc.scale, fc.thr, fc.w);
        if (h->sm)
            fold_walk(&fc, h->sm, 0, h->n_sub);
        else
            fold_now(&fc, 0, h->stage, h->n_sub, 0);
        if (fc.bad) { /* undo exactly: subtract the very same terms */
            fc.neg = 1;
            fc.prev_end = 0;
            fc.cur = (cell_cur){0, 0};
            if (h->sm)
                fold_walk(&fc, h->sm, 0, h->n_sub);
            else
                fold_now(&fc, 0, h->stage, h->n_sub, 0);
            fold_env_end(env);
            s = classify_bad(a, h->stage, h->n_sub, thr, c);
            goto fail;
        }
        fold_env_end(env);
    } else {
        if (a->n_upd >= a->o.max_updates) {
            s = FL_ERR_STATE;
            goto fail;
        }
        /* The mean mode's range bound holds here too, by its very test (|x| <= thr: |x * c| <=
         * 2^A in exact arithmetic; x * c rounded to float let values the mean mode refuses
         * through by an ulp): trimming and the median only outvote a value where a coordinate
         * has holders enough (trim_frac 0, or fewer than 1 / trim_frac holders, or 1 or 2 for
         * the median, trim nothing), and there an unbounded value was one client's to set, up
         * to 3e38, in every coordinate it held. */
        int bad = 0;
        for (size_t i = 0; i < h->n_sub; i++)
            bad |= !(fabsf(h->stage[i]) <= thr); /* NaN too */
        if (bad) {
            s = classify_bad(a, h->stage, h->n_sub, thr, c);
            goto fail;
        }
        float *u = malloc(a->n * sizeof(float));
        if (!u) {
            s = FL_ERR_NOMEM;
            goto fail;
        }
        store_ctx sc = {u, h->stage, (float)c};
        if (h->sm) {
            for (size_t i = 0; i < a->n; i++)
                u[i] = NAN;
            flm_submodel_runs(h->sm, 0, h->n_sub, store_run, &sc);
        } else {
            store_run(&sc, 0, 0, a->n);
        }
        a->upd[a->n_upd++] = u;
    }
counted:
    if (!h->sm) {
        a->w_all += h->w;
    } else if (a->o.mode != FLS_AGG_MEAN) { /* the mean fold counted its cells as it went */
        cell_ctx cc = {a, h->w, {0, 0}};
        flm_submodel_runs(h->sm, 0, h->n_sub, cell_run, &cc);
    }
    a->w_total += h->w;
    a->st.n_updates++;
    a->st.total_weight = a->w_total;
    if (c < 1.0)
        a->st.n_clipped++;
    if (norm > a->st.max_norm)
        a->st.max_norm = norm;
    release(h);
    return FL_OK;
fail:
    /* DEBUG: the core that called says it, naming the client ("update of client N refused") */
    fl_log(&a->o.log, FL_LOG_DEBUG, "aggregation: update of weight %llu rejected: %s",
           (unsigned long long)h->w, fl_strerror(s));
    a->st.n_aborted++;
    release(h);
    return s;
}

/* ---- finalize ------------------------------------------------------------------------------ */

static int cmp_float(const void *x, const void *y)
{
    const float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

static void sort_floats(float *v, int m)
{
    if (m > 24) {
        qsort(v, (size_t)m, sizeof(float), cmp_float);
        return;
    }
    for (int i = 1; i < m; i++) {
        const float x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

static fl_status finalize_robust(const fls_agg *a, float *delta, uint8_t *held)
{
    const int M = a->n_upd;
    float *v = malloc((size_t)(M > 0 ? M : 1) * sizeof(float));
    if (!v)
        return FL_ERR_NOMEM;
    for (size_t i = 0; i < a->n; i++) {
        int m = 0;
        for (int k = 0; k < M; k++) {
            const float x = a->upd[k][i];
            if (!isnan(x))
                v[m++] = x;
            else if (a->o.dilute)
                v[m++] = 0.0f;
        }
        if (m == 0) {
            delta[i] = 0.0f;
            if (held)
                held[i] = 0;
            continue;
        }
        sort_floats(v, m);
        double r;
        if (a->o.mode == FLS_AGG_MEDIAN) {
            r = (m & 1) ? (double)v[m / 2] : 0.5 * ((double)v[m / 2 - 1] + (double)v[m / 2]);
        } else {
            const int k = (int)floor(a->o.trim_frac * m);
            double sum = 0.0;
            for (int j = k; j < m - k; j++)
                sum += (double)v[j];
            r = sum / (double)(m - 2 * k);
        }
        delta[i] = (float)r;
        if (held)
            held[i] = 1;
    }
    free(v);
    return FL_OK;
}

fl_status fls_agg_finalize(const fls_agg *agg, float *delta, uint8_t *held)
{
    if (!agg || !delta)
        return FL_ERR_INVALID_ARG;
    if (agg->o.mode != FLS_AGG_MEAN)
        return finalize_robust(agg, delta, held);
    if (agg->tainted)
        return FL_ERR_INTERNAL;
    if (agg->n_folded_open)
        return FL_ERR_STATE;
    const fold_env env = fold_env_begin(); /* the mean's rounding too, whatever the caller's */
    for (int ti = 0; ti < agg->nt; ti++) {
        const agg_tensor *t = &agg->t[ti];
        for (size_t r = 0; r < t->rows; r++) {
            const uint64_t *crow = agg->cellw + t->cell0 + (t->row_cells ? r : 0) * t->cc;
            for (size_t cb = 0; cb < t->cols; cb++) {
                const uint64_t W = agg->o.dilute ? agg->w_total
                                                 : agg->w_all + crow[t->col_cells ? cb : 0];
                const size_t i0 = t->off + r * t->RL + cb * t->inner;
                const uint64_t *acc = agg->acc + i0;
                float *d = delta + i0;
                if (W == 0) {
                    memset(d, 0, t->inner * sizeof(float));
                    if (held)
                        memset(held + i0, 0, t->inner);
                    continue;
                }
                /* W < 2^32 and scale = 2^S: den is exact; one rounded reciprocal per cell, then
                 * multiplies (a division per coordinate cost 3x the time; same bits every run) */
                const double inv = 1.0 / ((double)W * agg->scale);
                for (size_t j = 0; j < t->inner; j++)
                    d[j] = (float)((double)(int64_t)acc[j] * inv);
                if (held)
                    memset(held + i0, 1, t->inner);
            }
        }
    }
    fold_env_end(env);
    return FL_OK;
}

void fls_agg_get_stats(const fls_agg *agg, fls_agg_stats *out)
{
    if (agg && out)
        *out = agg->st;
}

fl_status fls_agg_merge(fls_agg *dst, const fls_agg *src)
{
    if (!dst || !src || dst == src)
        return FL_ERR_INVALID_ARG;
    if (dst->o.mode != FLS_AGG_MEAN || src->o.mode != FLS_AGG_MEAN || dst->n != src->n ||
        dst->flat != src->flat || dst->n_cells != src->n_cells ||
        dst->o.frac_bits != src->o.frac_bits || dst->o.max_abs_log2 != src->o.max_abs_log2 ||
        dst->o.dilute != src->o.dilute)
        return FL_ERR_INVALID_ARG;
    if (!dst->flat && strcmp(dst->arch.spec, src->arch.spec) != 0)
        return FL_ERR_INVALID_ARG;
    if (src->n_folded_open || src->tainted || dst->tainted)
        return FL_ERR_STATE;
    if (dst->w_total + src->w_total > dst->w_cap)
        return FL_ERR_OVERFLOW;
    for (size_t i = 0; i < dst->n; i++)
        dst->acc[i] += src->acc[i];
    for (size_t i = 0; i < dst->n_cells; i++)
        dst->cellw[i] += src->cellw[i];
    dst->w_all += src->w_all;
    dst->w_total += src->w_total;
    dst->st.n_updates += src->st.n_updates;
    dst->st.total_weight = dst->w_total;
    dst->st.n_aborted += src->st.n_aborted;
    dst->st.n_clipped += src->st.n_clipped;
    if (src->st.max_norm > dst->st.max_norm)
        dst->st.max_norm = src->st.max_norm;
    return FL_OK;
}
