/* flm_submodel.h: keep-sets and the submodels they cut (shared AFD.md, "Units").
 *
 * A keep-set lists, for every droppable layer of an architecture, the sorted unit indexes a
 * client keeps. The submodel is a genuinely smaller dense model (flm_arch_sub) whose flat
 * parameter buffer `gather` fills from the global one; `scatter` maps a delta of the small model
 * back to global coordinates. Coupling between layers follows flm_tensor's row/column fields:
 * dropping unit j of a layer removes its rows (4 gate blocks for an LSTM), and the matching input
 * columns of the next layer (blocks of `inner` floats: conv input channels, flatten blocks,
 * LSTM recurrent columns).
 */
#ifndef FLM_SUBMODEL_H
#define FLM_SUBMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fl_rng.h"
#include "fl_status.h"
#include "flm_arch.h"

typedef struct flm_keepset {
    int n_drop;                  /* = arch.n_drop */
    int count[FLM_MAX_LAYERS];   /* units kept in droppable layer d */
    int offset[FLM_MAX_LAYERS];  /* where layer d's units start in idx */
    uint32_t *idx;               /* sum(count) unit indexes, sorted and unique per layer; owned */
} flm_keepset;

/* Keep-set functions fill a caller-owned flm_keepset value whose idx they allocate (release with
 * flm_keepset_free); on failure *ks holds nothing to free. Thread-safe on distinct keep-sets.
 *
 * Every unit of every droppable layer (the FedAvg keep-set). FL_OK, FL_ERR_NOMEM. */
fl_status flm_keepset_full(flm_keepset *ks, const flm_arch *a);
/* Layer d keeps counts[d] units, indexes left for the caller to fill in ks->idx (zeroed).
 * FL_ERR_KEEPSET if a count is outside [1, full units], so a hostile count never allocates. */
fl_status flm_keepset_alloc(flm_keepset *ks, const flm_arch *a, const int *counts);
/* Uniform random: flm_arch_keep_units(a, d, p) units per layer, drawn without replacement from r
 * (partial Fisher-Yates with fl_rng_below, layer 0 first, a grouped layer group by group, then
 * sorted): a pure function of r's position. FL_ERR_INVALID_ARG unless 0 < p <= 1. */
fl_status flm_keepset_random(flm_keepset *ks, const flm_arch *a, double p, fl_rng *r);
/* One layer of that draw: count units of droppable layer d (count / G from each of its G groups,
 * each group's sorted) into dst, drawn from r; perm is scratch of drop_units[d] entries. The
 * server's policy draws its uniform keep-sets layer by layer with it too. Never allocates. */
void flm_keepset_draw_layer(uint32_t *dst, uint32_t *perm, const flm_arch *a, int d, int count,
                            fl_rng *r);
/* FL_OK, or FL_ERR_KEEPSET if a layer is empty, unsorted, duplicated or out of range, or keeps
 * unequal counts in the groups of a grouped layer (MoGE experts, flm_arch.drop_groups). */
fl_status flm_keepset_validate(const flm_keepset *ks, const flm_arch *a);
/* A deep copy into dst (which must not own anything yet). FL_OK, FL_ERR_NOMEM. */
fl_status flm_keepset_copy(flm_keepset *dst, const flm_keepset *src);
/* 1 when both keep the same units of the same layers, else 0. */
int flm_keepset_equal(const flm_keepset *x, const flm_keepset *y);
void flm_keepset_free(flm_keepset *ks); /* frees idx; NULL and zeroed keep-sets are no-ops */

typedef struct flm_submodel flm_submodel; /* opaque; immutable once built: thread-safe to share */

/* Builds the index maps of the submodel of `full` that keeps ks (validated first: FL_ERR_KEEPSET).
 * Copies what it needs (the caller keeps ownership of full and ks). Maps take O(rows + cols) of
 * each tensor: a few KB for the 6.6M-parameter cnn. FL_OK, FL_ERR_KEEPSET, FL_ERR_NOMEM. */
fl_status flm_submodel_new(const flm_arch *full, const flm_keepset *ks, flm_submodel **out);
void flm_submodel_free(flm_submodel *sm); /* NULL is a no-op */
/* An upper bound on the heap bytes that flm_submodel_new(full, ks, ...) holds for any keep-set
 * ks of full, with its keep-set copy and malloc's headers (every unit kept is the largest): what
 * a host that keeps one submodel a client multiplies by its clients. */
size_t flm_submodel_bytes_bound(const flm_arch *full);
/* flm_submodel_new, but full is borrowed, not copied (sizeof(flm_arch), 6.6 KB, less held): it
 * must stay valid and unchanged until flm_submodel_free(*out), and flm_submodel_full_arch returns
 * it. For a host whose architecture outlives the many submodels it makes of it (the server core's
 * per-client Tasks). The maps, and so every result, are flm_submodel_new's. */
fl_status flm_submodel_new_borrowed(const flm_arch *full, const flm_keepset *ks,
                                    flm_submodel **out);
/* flm_submodel_bytes_bound of a submodel made by flm_submodel_new_borrowed. */
size_t flm_submodel_borrowed_bytes_bound(const flm_arch *full);
const flm_arch *flm_submodel_arch(const flm_submodel *sm);      /* the small architecture */
const flm_arch *flm_submodel_full_arch(const flm_submodel *sm); /* the global architecture */
/* The keep-set the submodel was built from (owned by sm, valid until flm_submodel_free). */
const flm_keepset *flm_submodel_keepset(const flm_submodel *sm);
/* 1 when sm keeps every unit, so that its flat layout is the full one element for element (a
 * full-model update), else 0. Found once by flm_submodel_new: O(1). */
int flm_submodel_is_identity(const flm_submodel *sm);

/* gather, scatter_add and mask write caller-owned buffers; they are thread-safe on distinct
 * output buffers (sm is only read) and never allocate.
 *
 * sub (sub arch n_params) = the kept coordinates of full (full arch n_params). */
void flm_submodel_gather(const flm_submodel *sm, float *sub, const float *full);
/* full[map(i)] += alpha * sub[i] for every coordinate of the submodel. */
void flm_submodel_scatter_add(const flm_submodel *sm, float *full, const float *sub, float alpha);
/* mask (full n_params) = 1 where the submodel holds the coordinate, 0 elsewhere. */
void flm_submodel_mask(const flm_submodel *sm, float *mask);

/* For streaming aggregation: calls fn once per maximal run of consecutive elements of the
 * submodel's flat range [sub_off, sub_off + n) that are also consecutive in the full model, in
 * increasing order: fn(user, full_index, sub_index, len), indexes into the flat buffers. The range
 * is clipped to the submodel's n_params (nothing is called for an empty or out-of-range one).
 * Cost: O(log cols) to locate sub_off, then O(1) per run; no allocation. Thread-safe. */
typedef void (*flm_run_fn)(void *user, size_t full_index, size_t sub_index, size_t len);
void flm_submodel_runs(const flm_submodel *sm, size_t sub_off, size_t n, flm_run_fn fn, void *user);

#endif
