/* fls_policy.h: submodel selection policies of the server core (docs/AFD.md, "Policies").
 *
 *   full        every client gets the whole model (FedAvg)
 *   fd          uniform random keep-set: one per round (shared) or one per client (per-client)
 *   afd-single  one score map S, one l_prev, one keep-set A shared by the round's clients
 *   afd-multi   a score map, l_prev and keep-set per client; a new client starts uniform
 *
 * A round with a policy:
 *     fls_policy_begin_round(p, t);
 *     for each selected client c: fls_policy_keepset(p, c, &ks);  (the Task's keep-set)
 *     for each client that reported: fls_policy_report(p, c, loss, n_samples);
 *     fls_policy_end_round(p, &info);   (the AFD rule: keep A or resample it)
 *
 * Randomness: every draw comes from fl_rng_stream(seed, round, client, FL_RNG_KEEPSET), where
 * round is the round the keep-set will serve and client is the client's key, or
 * FLS_POLICY_SHARED_CLIENT for a keep-set shared by a round's clients. Streams are counter-based,
 * so no RNG position needs saving: the round counter and the exported state (scores, l_prev,
 * keep-sets) determine every later draw.
 *
 * Weighted exploration draws exactly k units per layer without replacement with probability
 * proportional to w[u] = S[u] + eps (sequential proportional sampling), implemented with
 * Efraimidis-Spirakis keys log(U)/w: the k largest keys form a sample with exactly that law.
 * eps = eps_rel * max S over the whole map; while S is all zero every unit has weight 1 (uniform).
 *
 * Thread-safety: an fls_policy is not thread-safe; one owner (the round engine) drives it.
 */
#ifndef FLS_POLICY_H
#define FLS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"
#include "flm_arch.h"
#include "flm_submodel.h"

/* The client key used for keep-sets shared by all clients of a round (fd shared, afd-single). */
#define FLS_POLICY_SHARED_CLIENT 0xFFFFFFFFu
/* Bins of the score histogram in fls_policy_info. */
#define FLS_POLICY_HIST_BINS 10

typedef enum fls_policy_kind {
    FLS_POLICY_FULL = 0,
    FLS_POLICY_FD = 1,
    FLS_POLICY_AFD_SINGLE = 2,
    FLS_POLICY_AFD_MULTI = 3,
} fls_policy_kind;

typedef struct fls_policy_config {
    fls_policy_kind kind;
    int fd_per_client;      /* fd: 0 = one keep-set per round (shared, Caldas), 1 = per client */
    int score_accumulate;   /* afd: 0 = "S[u] = gain" (AFD.md), 1 = "S[u] += gain" */
    int loss_unweighted;    /* afd-single: 0 = mean loss weighted by sample count, 1 = plain mean */
    double keep_p;          /* keep fraction for every droppable layer, in (0, 1]; default 0.75 */
    double keep_p_layer[FLM_MAX_LAYERS]; /* per droppable layer override; 0 = use keep_p */
    double eps_rel;         /* eps = eps_rel * max S; default 1e-3, must be > 0 */
} fls_policy_config;

/* The defaults: full policy, fd shared, "=", weighted, p = 0.75, eps_rel = 1e-3. */
fls_policy_config fls_policy_config_default(void);

/* "full", "fd", "afd-single", "afd-multi"; "unknown" otherwise. Never NULL. */
const char *fls_policy_kind_name(fls_policy_kind k);
/* Parses one of the names above into *out. FL_OK or FL_ERR_CONFIG. */
fl_status fls_policy_kind_parse(const char *s, fls_policy_kind *out);

/* What the last fls_policy_end_round did, for metrics. */
typedef struct fls_policy_info {
    uint32_t round;
    int afd;               /* 1 for afd-single / afd-multi: the fields below are meaningful */
    int have_loss;         /* afd-single: a loss was reported this round */
    double loss;           /* afd-single: l_t of the round (NaN if none reported) */
    double loss_prev;      /* afd-single: l_prev before the round (NaN if unset) */
    uint32_t kept;         /* keep-sets kept (single: 0 or 1; multi: clients that improved) */
    uint32_t resampled;    /* keep-sets redrawn (single: 0 or 1; multi: clients that did not) */
    uint32_t clients;      /* afd-multi: clients with state */
    double score_max;      /* over every score of every map */
    double score_mean;
    uint64_t score_zero;   /* scores equal to 0 */
    uint64_t hist[FLS_POLICY_HIST_BINS]; /* scores > 0 in equal bins over (0, score_max] */
} fls_policy_info;

typedef struct fls_policy fls_policy; /* opaque */

/* A policy for architecture a (copied) under cfg (copied), with run seed `seed`. Returns FL_OK,
 * FL_ERR_CONFIG (a field out of range), FL_ERR_NOMEM. The caller owns *out. */
fl_status fls_policy_new(const fls_policy_config *cfg, const flm_arch *a, uint64_t seed,
                         fls_policy **out);
void fls_policy_free(fls_policy *p); /* NULL is a no-op */

/* Starts round `round`: draws the round's shared keep-set if the policy has one. Losses reported
 * in an earlier, unfinished round are dropped. FL_OK or FL_ERR_NOMEM. */
fl_status fls_policy_begin_round(fls_policy *p, uint32_t round);

/* 1 if every client of the current round gets the same keep-set (full, fd shared, afd-single). */
int fls_policy_is_shared(const fls_policy *p);
/* The bytes the policy keeps for one client between rounds, about (afd-multi: the client's
 * record, keep-set and score map at rest; 0 for the other policies, which keep none per client),
 * and *selected (may be NULL): what a client selected in a round holds beside them (the keep-set
 * and the map expanded). For a host's estimate of its memory. */
size_t fls_policy_client_bytes(const fls_policy *p, size_t *selected);

/* The keep-set of `client` for the current round in *out: owned by the policy, valid until the
 * next call that takes a non-const p (copy it to keep it). For afd-multi a client seen for the first time
 * gets a uniform random keep-set (and state) here. FL_OK, FL_ERR_STATE (no round begun),
 * FL_ERR_NOMEM. */
fl_status fls_policy_keepset(fls_policy *p, uint32_t client, const flm_keepset **out);

/* Records a client's local training loss (finite) and sample count (>= 1) for the current round.
 * FL_OK; FL_ERR_INVALID_ARG (non-finite loss, n_samples 0); FL_ERR_STATE (no round begun;
 * afd-multi: the client was given no keep-set; a second report from the client this round);
 * FL_ERR_NOMEM (nothing recorded), never after fls_policy_reserve_reports made room for it. */
fl_status fls_policy_report(fls_policy *p, uint32_t client, double loss, uint64_t n_samples);
/* Makes room for n more reports this round: the next n fls_policy_report calls cannot fail for
 * memory (a round's end takes them all or, on failure, none). FL_OK, FL_ERR_NOMEM (nothing
 * changed), FL_ERR_INVALID_ARG (p NULL). */
fl_status fls_policy_reserve_reports(fls_policy *p, size_t n);

/* Ends the round: applies the AFD rule (nothing for full and fd) and fills *info (may be NULL).
 * FL_OK, FL_ERR_STATE (no round begun), FL_ERR_NOMEM: then the policy is as it was, its round
 * still begun with its reports, and fls_policy_end_round may be called again. */
fl_status fls_policy_end_round(fls_policy *p, fls_policy_info *info);

/* The current score map in out[0..n) (n = fls_policy_units) for afd-single, or client's map for
 * afd-multi. FL_OK, FL_ERR_NOT_FOUND (no such client / policy without scores). */
fl_status fls_policy_scores(const fls_policy *p, uint32_t client, double *out, size_t n);
/* Total droppable units of the architecture (the length of a score map). */
size_t fls_policy_units(const fls_policy *p);
/* Drops what the policy keeps about client (afd-multi: its scores, loss and keep-set): it will be
 * a client seen for the first time. Not for a client selected in the round under way. */
void fls_policy_forget(fls_policy *p, uint32_t client);
/* fls_policy_forget of every client whose state the policy keeps (afd-multi) and for which
 * keep(user, client) is 0: the states a checkpoint restored for clients the host no longer
 * knows. Not while a round is under way. Returns the number dropped. */
size_t fls_policy_prune(fls_policy *p, int (*keep)(void *user, uint32_t client), void *user);
/* The units every keep-set of this policy keeps per droppable layer, into counts[0..n_drop): the
 * same for every client and round (all of them for `full`). */
void fls_policy_keep_counts(const fls_policy *p, int *counts);
/* The keep-set AFD will use next (afd-single: A; afd-multi: client's A; full and shared fd: the
 * round's), copied into *out (release with flm_keepset_free). FL_OK, FL_ERR_NOT_FOUND (none:
 * *out is then empty), FL_ERR_NOMEM, FL_ERR_INVALID_ARG. */
fl_status fls_policy_current(const fls_policy *p, uint32_t client, flm_keepset *out);

/* Serialises the policy's state (kind, scores, l_prev, keep-sets; between rounds) to a new buffer
 * *buf of *len bytes, owned by the caller (free()). Little-endian, self-describing, versioned.
 * FL_OK, FL_ERR_NOMEM; FL_ERR_NUMERIC (nothing written) when the state holds a non-finite l_prev
 * or a negative or non-finite score, which fls_policy_import would refuse. */
fl_status fls_policy_export(const fls_policy *p, uint8_t **buf, size_t *len);
/* Replaces the state with what fls_policy_export wrote. Validates every byte (kind, unit counts
 * against the architecture, sorted unique keep-sets, finite non-negative scores) and leaves p
 * unchanged on error: FL_ERR_CHECKPOINT_FORMAT (damaged), FL_ERR_CHECKPOINT_MISMATCH (another
 * policy kind or architecture), FL_ERR_NOMEM. */
fl_status fls_policy_import(fls_policy *p, const uint8_t *buf, size_t len);

#endif
