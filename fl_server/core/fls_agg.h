/* fls_agg.h: streaming, order-independent aggregation of client updates (docs/AFD.md,
 * "Aggregation over submodels"). IO-free: no sockets, clocks or files.
 *
 * Each coordinate is averaged over the clients that trained it, weighted by sample count:
 *     delta[i] = sum_k n_k d_k[i] / sum_{k holds i} n_k
 * A coordinate no committed update held gets delta 0 and held[i] = 0 (the server optimizer leaves
 * it unchanged). Option `dilute`: missing coordinates count as zero deltas (plain FedAvg):
 * delta[i] = sum_k n_k d_k[i] / sum_k n_k, and every coordinate is held once any update committed.
 *
 * Update lifecycle (per client, per round):
 *     h = fls_agg_update_begin(agg, n_samples, submodel or NULL)
 *     fls_agg_update_add(h, sub_offset, chunk, n)   any order, any split, each element once
 *     fls_agg_update_commit(h)  or  fls_agg_update_abort(h)
 * The delta d_k is in the SUBMODEL's flat layout (flm_submodel_arch(sm)); NULL = the full model.
 * Sign convention: d_k = w_local - w_global (what the client trained minus what it was sent).
 *
 * Staging (why abort is exact; without fold_early, see below): an open update writes its chunks
 * only into a staging buffer of its own (sub-model size floats, in sub layout); nothing reaches
 * the aggregate until commit, which checks completeness, computes the update's L2 norm if clipping is on (in index order: the same
 * bits whatever the chunking), then folds the staged values in one pass. Abort just releases the
 * staging buffer. Staging buffers come from a pool of `max_open` buffers of n_params floats each,
 * allocated on first use and reused; begin fails with FL_ERR_STATE when all are in use.
 * A caller that decodes in place asks fls_agg_update_stage() for the destination and passes the
 * same pointer to add (no copy). The round engine with max_open = 1 buffers each client's encoded
 * chunks until the update is complete, then decodes it through one staging buffer.
 *
 * Early folding (option fold_early; mean mode without clipping, where a fold needs nothing but
 * the values themselves): add() folds its range into the accumulator at once, while the values
 * just decoded are still in cache, instead of a second pass over the whole staging at commit.
 * The staging keeps every added value until the end, as an undo log: abort, and a commit that
 * fails (missing elements, a bad value, the weight cap), subtract exactly the terms that were
 * added (modular integer arithmetic), so the aggregate is bit-identical to one that never saw the
 * update, as without the option. Folded but uncommitted terms are invisible: finalize and merge
 * refuse (FL_ERR_STATE) while an open update has early-folded values. Decoding in place over values
 * already added (see fls_agg_update_stage) destroys the undo log: the aggregator then refuses to
 * finalize (FL_ERR_INTERNAL) until the next begin_round.
 *
 * Memory (mean mode): 8 B/param accumulator + 4 B/param per staging buffer (max_open of them)
 * + 8 B per weight cell (a cell is a (row, column-block) of a tensor whose units drop: far fewer
 * than params, 137k for the 6.6M-param cnn): 80 MB for the cnn with max_open 1. Independent of
 * the number of clients. The per-coordinate weight totals are exact integers kept per cell, since
 * every coordinate of a cell is held by exactly the same updates.
 *
 * Speed (bench/bench_aggregate): a commit folds at about the memory bandwidth of streaming the
 * same bytes for full-model updates; submodel updates scatter into the accumulator run by run and
 * reach about half of that (small gaps between runs are folded with zero deltas so that the write
 * stream stays contiguous).
 * Robust modes (trimmed mean, median) must keep every update's values: + 4 B/param per committed
 * update (max_updates cap); fls_agg_memory_bytes() says how much. They hold each value x, clipped
 * by c, to the mean mode's range by the mean mode's test, |x * c| <= 2^max_abs_log2 exactly (else
 * FL_ERR_AGG_RANGE; an update is taken or refused alike in every mode):
 * a coordinate with few holders is not trimmed (none with trim_frac 0, or fewer than 1/trim_frac
 * holders), so the bound is what limits one client there.
 *
 * Exactness (mean mode): every value is converted to fixed point with frac_bits S fraction bits,
 * q = round_half_even(d * c * 2^S) (c = clip factor, 1 without clipping), then n_k * q is added
 * into a 64-bit integer accumulator per coordinate. Integer addition is associative, so the result
 * is bit-identical whatever the arrival order of updates and the split into chunks. Range: every
 * |d| must be <= 2^max_abs_log2 (else the update is rejected with FL_ERR_AGG_RANGE; NaN/Inf give
 * FL_ERR_NUMERIC), and the round's total weight must stay <= 2^(62 - S - max_abs_log2) (else
 * FL_ERR_OVERFLOW at commit), which bounds every sum below 2^62: no overflow is possible.
 * Defaults S = 28 (resolution 3.7e-9 on the averaged delta), max_abs_log2 = 10 (|d| <= 1024):
 * total weight <= 2^24 = 16,777,216 samples per round.
 *
 * Thread-safety: an fls_agg and its update handles are not thread-safe; serialize every call on
 * one aggregator (distinct aggregators are independent).
 */
#ifndef FLS_AGG_H
#define FLS_AGG_H

#include <stddef.h>
#include <stdint.h>

#include "fl_log.h"
#include "fl_par.h"
#include "fl_status.h"
#include "flm_arch.h"
#include "flm_submodel.h"

typedef enum fls_agg_mode {
    FLS_AGG_MEAN = 0,         /* sample-weighted mean over holders (exact fixed point) */
    FLS_AGG_TRIMMED_MEAN = 1, /* coordinate-wise trimmed mean over holders, unweighted */
    FLS_AGG_MEDIAN = 2,       /* coordinate-wise median over holders, unweighted */
} fls_agg_mode;

/* With a parallel-for (fl_par.h) of parts >= 2, an early fold of at least par.min_elems elements
 * (0: FLS_PAR_MIN_ELEMS) is split into `parts` disjoint pieces of the accumulator, one per call:
 * the sums are integers, so the result is the same bits as the serial fold. Only early folding
 * uses it, and only when the calling thread is in the default rounding mode; each piece runs in
 * that mode too, whatever the mode of the thread that runs it. */
#define FLS_PAR_MIN_ELEMS 4096

typedef struct fls_agg_options {
    fls_agg_mode mode;
    int dilute;          /* 1: missing coordinates are zero deltas (FedAvg dilution); 0: unchanged */
    int frac_bits;       /* fixed-point fraction bits S, 8..40; 0 = default 28 */
    int max_abs_log2;    /* |delta| <= 2^this, -8..20, S + this <= 50; 0 = default 10 */
    double clip_norm;    /* > 0: scale each update to L2 norm <= clip_norm before folding; 0 = off */
    double trim_frac;    /* trimmed mean: fraction of holders dropped at EACH end, [0, 0.5) */
    int max_open;        /* staging buffers = concurrently open updates; 0 = 1; at most 4097 */
    int max_updates;     /* robust modes: committed updates per round (memory cap); 0 = 256 */
    int no_simd;         /* 1: use the portable kernel even where AVX2 exists (same bits, slower) */
    int no_avx512;       /* 1: at most the AVX2 kernel where AVX-512 exists (same bits, slower) */
    int fold_early;      /* 1: mean mode without clipping folds each added range at once (see
                            "Early folding" above); ignored in the other modes */
    fl_par par;          /* zeroed = every fold on the calling thread */
    fl_logger log;       /* copied; zeroed = silent */
} fls_agg_options;

/* The defaults spelled out (mean mode, no dilution, S = 28, max_abs_log2 = 10, no clipping,
 * max_open 1, max_updates 256). */
fls_agg_options fls_agg_options_default(void);

/* The updates a robust mode keeps a round under o: o->max_updates, or 256 for 0. No round of a
 * robust mode can commit more (a quorum above it is never reached). */
int fls_agg_updates_kept(const fls_agg_options *o);

typedef struct fls_agg fls_agg;               /* opaque */
typedef struct fls_agg_update fls_agg_update; /* opaque, one open client update */

/* Creates an aggregator for the flat parameter layout of `arch` (copied). opts may be NULL
 * (defaults). Returns FL_OK, FL_ERR_INVALID_ARG (bad option), FL_ERR_NOMEM. The caller owns
 * *out (fls_agg_free). Starts with an open, empty round. */
fl_status fls_agg_new(const flm_arch *arch, const fls_agg_options *opts, fls_agg **out);

/* An aggregator for a bare vector of n_params floats (no architecture): only full-model updates
 * (sm == NULL) are accepted. For tests, partial sums and tree aggregation of flat vectors. */
fl_status fls_agg_new_flat(size_t n_params, const fls_agg_options *opts, fls_agg **out);

void fls_agg_free(fls_agg *agg); /* NULL is a no-op; open update handles become invalid */

/* Bytes an aggregator with these options needs for n_params parameters (weight cells of
 * `arch`, NULL for flat), with max_open staging buffers, and `n_updates` committed updates in
 * the robust modes (ignored in mean mode); the accumulator and each staging buffer of 2 MiB or
 * more in whole 2 MiB pages, as they are allocated. Pure function. */
size_t fls_agg_memory_bytes(const flm_arch *arch, size_t n_params, const fls_agg_options *opts,
                            size_t n_updates);

/* Clears the accumulator, weights and counters for a new round. Returns FL_ERR_STATE if an
 * update is still open (commit or abort it first). */
fl_status fls_agg_begin_round(fls_agg *agg);

/* Opens an update of weight n_samples (>= 1) over submodel sm (NULL: the full model). sm is
 * borrowed: it must stay valid until the update is committed or aborted, and must be a submodel
 * of the aggregator's architecture. Returns FL_OK and *out, FL_ERR_INVALID_ARG (weight 0, sm of
 * another architecture, sm on a flat aggregator), FL_ERR_STATE (all max_open staging buffers in
 * use), FL_ERR_NOMEM. */
fl_status fls_agg_update_begin(fls_agg *agg, uint64_t n_samples, const flm_submodel *sm,
                               fls_agg_update **out);

/* Elements of the update's flat layout (the submodel's n_params, or the full n_params). */
size_t fls_agg_update_size(const fls_agg_update *h);

/* The staging destination for elements [sub_off, sub_off + n), for decoding in place; NULL if the
 * range is outside the update or overlaps a range already added. Writing there has no effect
 * until add() is called on the range. If an in-place add then fails with FL_ERR_WIRE_CHUNK_DUP
 * (two staged ranges overlapped), the update can no longer commit (commit returns that code). */
float *fls_agg_update_stage(fls_agg_update *h, size_t sub_off, size_t n);

/* Stages elements [sub_off, sub_off + n) of the update's delta (copied, unless delta is the
 * pointer fls_agg_update_stage returned for this range). Ranges may come in any order and split,
 * but each element exactly once. Returns FL_OK, FL_ERR_WIRE_CHUNK_RANGE (outside the update),
 * FL_ERR_WIRE_CHUNK_DUP (overlaps a range already added), FL_ERR_NOMEM. On error the update stays
 * open and unchanged (the caller usually aborts it). Values are checked at commit. */
fl_status fls_agg_update_add(fls_agg_update *h, size_t sub_off, const float *delta, size_t n);

/* add, without a copy: in early-fold mode the range is folded straight from delta, and delta is
 * the undo log, so the caller keeps those n floats valid and unchanged until the update is
 * committed, aborted or discarded. Every later range of the update should come this way too (a
 * plain add is copied into the staging and logged as such: fine, just not zero-copy). Without
 * early folding, or after a plain add came first, it is the same as fls_agg_update_add. Same
 * returns as fls_agg_update_add. */
fl_status fls_agg_update_add_borrowed(fls_agg_update *h, size_t sub_off, const float *delta,
                                      size_t n);

/* Validates and folds the staged update into the round, then releases h (always, also on error).
 * Returns FL_OK, or (with the aggregate left exactly as before) FL_ERR_WIRE_CHUNK_MISSING (not
 * every element added), FL_ERR_NUMERIC (NaN or Inf), FL_ERR_AGG_RANGE (|d| > 2^max_abs_log2),
 * FL_ERR_OVERFLOW (round weight cap), FL_ERR_STATE (robust modes: max_updates already
 * committed), FL_ERR_NOMEM (robust: storing the update). */
fl_status fls_agg_update_commit(fls_agg_update *h);

/* Where the last commit that was refused for a value (FL_ERR_AGG_RANGE, FL_ERR_NUMERIC) found it:
 * the first such value in the update's layout (its submodel's, as the client sent it; a NaN or Inf
 * before any out of range, as the status says), found by a rescan of the staged values once the
 * fold said one was there, so that committing costs nothing more. */
typedef struct fls_agg_bad {
    fl_status status;   /* FL_ERR_AGG_RANGE or FL_ERR_NUMERIC */
    int found;          /* index and value hold the value (0: a range failure not found again) */
    size_t index;       /* element of the update */
    float value;        /* its value as staged (before clipping) */
    float bound;        /* the largest |value| taken: 2^max_abs_log2, over clip when clipped */
    float max_abs;      /* 2^max_abs_log2: the bound on |value * clip| */
    double clip;        /* the update's clip factor (1: not clipped) */
} fls_agg_bad;

/* Copies what the last commit refused for a value found into *out and returns 1; 0 when the last
 * commit was not refused so (taken, or refused for another reason), or agg or out is NULL. */
int fls_agg_last_bad(const fls_agg *agg, fls_agg_bad *out);

/* Discards the update; the aggregate is exactly as if it never began. Releases h. NULL no-op. */
void fls_agg_update_abort(fls_agg_update *h);

/* Releases h without undoing what it folded early (for a caller about to free the aggregator,
 * whose borrowed memory may be gone): the aggregator then refuses to finalize and merge until
 * the next begin_round. Without early-folded values the same as abort, uncounted. NULL no-op. */
void fls_agg_update_discard(fls_agg_update *h);

/* Computes the round's aggregated delta (pseudo-gradient, sign as the client deltas) into
 * delta[n_params] and, if held != NULL, held[i] = 1 where some committed update held coordinate i
 * (all 1 with dilute and >= 1 update), else 0 (and delta[i] = 0). Does not change the state: may
 * be called again, and more updates may follow. Returns FL_OK, FL_ERR_NOMEM (robust modes' sort
 * scratch), FL_ERR_INVALID_ARG (delta NULL), FL_ERR_STATE (fold_early: an open update has folded
 * values), FL_ERR_INTERNAL (fold_early: an undo log was destroyed). With no committed update: all
 * zero. */
fl_status fls_agg_finalize(const fls_agg *agg, float *delta, uint8_t *held);

typedef struct fls_agg_stats {
    uint64_t n_updates;     /* committed this round */
    uint64_t total_weight;  /* sum of their sample counts */
    uint64_t n_aborted;     /* aborted (explicitly or by a failed commit) this round */
    uint64_t n_clipped;     /* committed updates whose norm was above clip_norm */
    double max_norm;        /* largest L2 norm seen among committed updates (0 if clipping off) */
} fls_agg_stats;

/* This round's counters. */
void fls_agg_get_stats(const fls_agg *agg, fls_agg_stats *out);

/* Adds src's committed sums and weights into dst (mean mode only, same layout and options):
 * partial aggregates from MPI ranks or child aggregators combine exactly, in any order.
 * Returns FL_OK, FL_ERR_INVALID_ARG (layouts or options differ, robust mode), FL_ERR_OVERFLOW
 * (total weight cap), FL_ERR_STATE (fold_early: src has an open update with folded values). dst is
 * unchanged on error. */
fl_status fls_agg_merge(fls_agg *dst, const fls_agg *src);

/* Parameters of the aggregator's layout. */
size_t fls_agg_n_params(const fls_agg *agg);

/* The round's total weight cap, 2^(62 - frac_bits - max_abs_log2) (at most UINT32_MAX): a commit
 * that would take the total above it fails with FL_ERR_OVERFLOW. 0 for NULL. */
uint64_t fls_agg_weight_cap(const fls_agg *agg);

#endif
