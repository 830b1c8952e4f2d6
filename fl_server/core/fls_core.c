/* fls_core.c: the IO-free round engine (see fls_core.h). */
#include "fls_core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_log.h"
#include "fl_mem.h"
#include "fl_rng.h"
#include "fl_sha256.h"
#include "flm_model.h"
#include "flm_submodel.h"
#include "flz.h"

/* What a round's Task holds for one keep-set: shared by every client of the round for shared
 * policies, one per client otherwise. */
typedef struct task_spec {
    flm_submodel *sm; /* borrows the core's architecture; holds the Task's keep-set */
    const flm_arch *sub;
    flp_layer_keep layers[FLM_MAX_LAYERS];
    flp_tensor_header hdrs[FLM_MAX_TENSORS];
    uint32_t chunk_base[FLM_MAX_TENSORS + 1]; /* prefix sums of n_chunks */
    int shared;
    uint8_t **cache;   /* shared: encoded chunks, filled lazily */
    size_t *cache_len;
} task_spec;

enum { CS_TASKED = 1, CS_RECEIVING = 2, CS_DONE = 3, CS_FAILED = 4 };

typedef struct sel {
    uint32_t key;
    int state;
    task_spec *task;                    /* owned unless task->shared */
    flp_msg_tracker *trk;               /* the Update's chunks */
    uint32_t up_chunk_elems[FLM_MAX_TENSORS];
    uint32_t up_base[FLM_MAX_TENSORS + 1];
    fls_agg_update *h;                  /* streaming: chunks decode straight into its staging */
    int streaming;                      /* 1: h is (or was) this update's staging; 0: pay below */
    uint8_t **pay;                      /* fallback (no staging free at the first chunk): encoded */
    size_t *pay_len;                    /*   chunk payloads until the update is complete */
    uint64_t n_samples;
    double loss;
    int forgotten;                      /* fls_core_client_forget: its policy state goes at close */
    int told;                           /* its loss went to the policy (a close that failed after
                                         * that and is retried does not report it twice) */
} sel;

typedef struct client_rec {
    uint32_t key;
    uint8_t connected;
    uint8_t gone;        /* fls_core_client_forget: skipped by lookups, dropped by client_sort */
    uint64_t dataset_size;
    uint64_t memory;     /* fls_core_client_memory; 0: not said */
} client_rec;

struct fls_core {
    fls_config cfg;
    uint8_t digest[FL_SHA256_LEN];
    char canon[FLS_CONFIG_CANON_MAX]; /* what digest hashes; checkpoints keep it */
    size_t canon_len;
    flm_arch arch;
    flz_spec down, up;
    char up_canon[FLZ_SPEC_STRLEN];
    float *params, *delta, *tmp;
    uint8_t *held;
    fls_agg *agg;
    fls_opt *opt;
    fls_policy *pol;
    flz_ctx *zctx;
    /* The clients ever seen: [0, n_sorted) in key order, then those that joined since the last
     * round started, in join order (start_round sorts them in). idx: open-addressing hash of key
     * -> record index + 1 (0 = empty), idx_mask + 1 slots, at most half full. Joins and lookups
     * are O(1), a round's start O(clients) (a sorted array took a memmove per first join: 13 s a
     * round for a million clients joining at random). */
    client_rec *clients;
    size_t n_clients, n_sorted, cap_clients;
    size_t n_gone;       /* forgotten records still in the array (at most one live per key) */
    uint32_t *idx;
    size_t idx_mask;
    uint32_t n_connected;
    uint64_t train_need; /* a client's memory for a submodel (flm_train_memory_need) */
    uint32_t n_small;    /* connected clients that announced less (never selected) */
    int said_small;      /* the wait for clients with the memory was logged */
    uint64_t round, model_version;
    uint64_t run_id;     /* fls_core_set_run_id, or the resumed checkpoint's; 0: none */
    int open, eval_pending, done, target_reached;
    double reached_acc;  /* the test accuracy that reached the target (this run's, or the
                          * resumed checkpoint's), or -1 */
    double deadline;
    sel *sels;           /* sorted by key */
    size_t n_sel;
    size_t n_due;        /* sels that can still report (CS_TASKED or CS_RECEIVING): kept by
                          * sel_set_state, so that a round's exhaustion is O(1) to tell (a scan
                          * at every failure made many failures O(n_sel^2)) */
    uint32_t quorum, reported;
    task_spec *shared_task;
    size_t task_cache_bytes; /* a shared Task's encoded chunks, at most (task_new) */
    int stream_slots, n_streaming; /* updates decoding straight into staging: cap, now open */
    uint64_t samples_cap;          /* the largest Update.n_samples of any client (fls_core.h) */
    int freeing;                   /* fls_core_free: open updates are discarded, not undone */
    int close_failed;              /* the last close_round failed (undone; on_message) */
    /* A close at quorum or once no selected client could still report failed (undone, the round
     * still open): fls_core_tick retries it, and fls_core_tick_due says it is due, at once. Set
     * and cleared by close_round alone (a failed close at the deadline needs none: the deadline
     * stays passed). Neither condition can be undone within the round (reported only grows, and
     * a failed or committed client never becomes due again), so a flag holds what a scan of the
     * selected clients at every reactor step found. */
    int close_retry;
    fls_round_metrics cur, last;
    int have_last;
    uint32_t rejected_between;
    uint32_t *late_keys; /* the clients late at the last close, sorted (sels are): their uploads */
    size_t n_late, late_cap; /* after it are stragglers', not rejected input */
    fls_event *ev;
    size_t ev_head, ev_len, ev_cap;
    char upd_err[192]; /* fls_core_update_error: where the update refused last was bad */
};

/* ---- small helpers ---------------------------------------------------------------------------- */

/* The host's name for a client in log lines, else its key's number (in buf). */
static const char *client_name(const fls_core *c, uint32_t key, char buf[16])
{
    const char *name = c->cfg.client_name ? c->cfg.client_name(c->cfg.client_name_user, key) : NULL;
    if (name)
        return name;
    snprintf(buf, 16, "%u", key);
    return buf;
}

uint32_t fls_client_key(const char *id)
{
    return fl_client_key(id);
}

/* Room in the event queue for n more events: a round's start and close take it before they
 * change anything, so that pushing their events cannot fail afterwards. FL_OK or FL_ERR_NOMEM
 * (the queue as it was). */
static fl_status events_reserve(fls_core *c, size_t n)
{
    if (c->ev_cap - c->ev_len >= n)
        return FL_OK;
    size_t cap = c->ev_cap ? 2 * c->ev_cap : 64;
    while (cap - c->ev_len < n)
        cap *= 2;
    fls_event *e = malloc(cap * sizeof *e);
    if (!e)
        return FL_ERR_NOMEM;
    for (size_t i = 0; c->ev_cap && i < c->ev_len; i++) /* ev_len <= ev_cap */
        e[i] = c->ev[(c->ev_head + i) % c->ev_cap];
    free(c->ev);
    c->ev = e;
    c->ev_cap = cap;
    c->ev_head = 0;
    return FL_OK;
}

static fl_status push_event(fls_core *c, fls_event_kind kind, uint32_t client, uint64_t round)
{
    const fl_status st = events_reserve(c, 1);
    if (st != FL_OK)
        return st;
    fls_event *e = &c->ev[(c->ev_head + c->ev_len) % c->ev_cap];
    e->kind = kind;
    e->client = client;
    e->round = round;
    c->ev_len++;
    return FL_OK;
}

int fls_core_poll(fls_core *c, fls_event *ev)
{
    if (!c || !ev || c->ev_len == 0)
        return 0;
    *ev = c->ev[c->ev_head];
    c->ev_head = (c->ev_head + 1) % c->ev_cap;
    c->ev_len--;
    return 1;
}

static size_t client_slot(uint32_t key, size_t mask)
{
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static client_rec *client_find(const fls_core *c, uint32_t key)
{
    if (!c->idx)
        return NULL;
    for (size_t s = client_slot(key, c->idx_mask);; s = (s + 1) & c->idx_mask) {
        const uint32_t i = c->idx[s];
        if (i == 0)
            return NULL;
        if (c->clients[i - 1].key == key && !c->clients[i - 1].gone)
            return &c->clients[i - 1];
    }
}

/* Indexes every record again into the table as it is (it has at least 2 * n_clients slots). */
static void client_reindex_in_place(fls_core *c)
{
    if (!c->idx)
        return;
    memset(c->idx, 0, (c->idx_mask + 1) * sizeof *c->idx);
    for (size_t i = 0; i < c->n_clients; i++) {
        size_t s = client_slot(c->clients[i].key, c->idx_mask);
        while (c->idx[s])
            s = (s + 1) & c->idx_mask;
        c->idx[s] = (uint32_t)(i + 1);
    }
}

/* Indexes every record again into a new table of at least 2 * n_clients slots (a join that
 * outgrew the old one). */
static fl_status client_reindex(fls_core *c)
{
    if (fl_index_new(&c->idx, &c->idx_mask, 2 * c->n_clients) != FL_OK)
        return FL_ERR_NOMEM;
    client_reindex_in_place(c);
    return FL_OK;
}

static int cmp_client(const void *a, const void *b)
{
    const uint32_t x = ((const client_rec *)a)->key, y = ((const client_rec *)b)->key;
    return (x > y) - (x < y);
}

/* Sorts the clients that joined since the last call into the sorted ones (a merge from the back,
 * O(clients)), and indexes them again. */
static fl_status client_sort(fls_core *c)
{
    /* everything it allocates first: out of memory, the table is left as it was */
    size_t m = c->n_clients - c->n_sorted;
    if (m == 0 && c->n_gone == 0)
        return FL_OK; /* as it was: no reindexing (a round's start in the simulator) */
    client_rec *tail = m ? malloc(m * sizeof *tail) : NULL;
    if (m && !tail)
        return FL_ERR_NOMEM;
    if (c->n_gone) {
        /* drop the forgotten records, keeping the order of both parts */
        size_t k = 0, sorted = 0;
        for (size_t i = 0; i < c->n_clients; i++) {
            if (c->clients[i].gone)
                continue;
            sorted += i < c->n_sorted;
            c->clients[k++] = c->clients[i];
        }
        c->n_clients = k;
        c->n_sorted = sorted;
        c->n_gone = 0;
    }
    m = c->n_clients - c->n_sorted; /* the tail buffer is at least this large */
    if (m) {
        memcpy(tail, c->clients + c->n_sorted, m * sizeof *tail);
        qsort(tail, m, sizeof *tail, cmp_client);
        size_t i = c->n_sorted, j = m, k = c->n_clients;
        while (j > 0) {
            if (i > 0 && c->clients[i - 1].key > tail[j - 1].key)
                c->clients[--k] = c->clients[--i];
            else
                c->clients[--k] = tail[--j];
        }
        c->n_sorted = c->n_clients;
    }
    free(tail);
    client_reindex_in_place(c);
    return FL_OK;
}

static sel *sel_find(const fls_core *c, uint32_t key)
{
    size_t lo = 0, hi = c->n_sel;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (c->sels[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_sel && c->sels[lo].key == key ? &c->sels[lo] : NULL;
}

static int sel_due(int state)
{
    return state == CS_TASKED || state == CS_RECEIVING;
}

/* Every change of a selected client's state goes through here, which keeps n_due. */
static void sel_set_state(fls_core *c, sel *s, int state)
{
    c->n_due -= (size_t)sel_due(s->state);
    c->n_due += (size_t)sel_due(state);
    s->state = state;
}

static int cmp_u32(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ---- tasks ------------------------------------------------------------------------------------ */

static void task_free(task_spec *t)
{
    if (!t)
        return;
    if (t->cache) {
        for (uint32_t i = 0; i < t->chunk_base[t->sub ? t->sub->n_tensors : 0]; i++)
            free(t->cache[i]);
        free(t->cache);
        free(t->cache_len);
    }
    flm_submodel_free(t->sm);
    free(t);
}

/* The aggregator's options: the host's, with c->stream_slots set. Staging buffers: one per
 * update receiving chunks at once (the host bounds that number, e.g. the daemon's
 * server.upload_slots); updates beyond it fall back to buffering encoded chunks. */
static fls_agg_options agg_options(const fls_core *c)
{
    fls_agg_options ao = c->cfg.agg;
    ao.max_open = c->stream_slots + 1; /* + 1 for committing a fallback update (lazily allocated) */
    /* Each chunk folds as it is decoded, while in cache (the staging stays as the undo log);
     * close_round aborts the open updates before it finalizes. */
    ao.fold_early = 1;
    if (ao.log.fn == NULL)
        ao.log = c->cfg.log;
    return ao;
}

/* The downlink codec is plain float32 ("none"): a shared Task encodes each chunk as it goes out
 * instead of caching it (task_new). */
static int down_plain(const flz_spec *dn)
{
    return dn->topk == 0.0f && dn->rot_log2 == 0 && dn->sub == 0.0f &&
           dn->value == FLZ_VALUE_F32 && !dn->zstd;
}

static fl_status task_new(fls_core *c, const flm_keepset *ks, int shared, task_spec **out)
{
    task_spec *t = calloc(1, sizeof *t);
    if (!t)
        return FL_ERR_NOMEM;
    /* The core's architecture, borrowed (it outlives every Task), and the submodel's copy of the
     * keep-set: a Task held a copy of each beside the submodel's (6.6 KB and the keep-set's
     * bytes a client, with keep-sets per client). */
    fl_status st = flm_submodel_new_borrowed(&c->arch, ks, &t->sm);
    if (st != FL_OK) {
        task_free(t);
        return st;
    }
    t->sub = flm_submodel_arch(t->sm);
    t->shared = shared;
    const flm_keepset *kept = flm_submodel_keepset(t->sm);
    for (int d = 0; d < c->arch.n_drop; d++) {
        t->layers[d].full_units = (uint32_t)c->arch.drop_units[d];
        t->layers[d].n_units = (uint32_t)kept->count[d];
        t->layers[d].units = kept->idx + kept->offset[d];
    }
    t->chunk_base[0] = 0;
    for (int i = 0; i < t->sub->n_tensors; i++) {
        const flm_tensor *ten = &t->sub->tensors[i];
        flp_tensor_header *h = &t->hdrs[i];
        h->name = ten->name;
        h->ndim = (uint32_t)ten->rank;
        for (int k = 0; k < ten->rank && k < FLP_MAX_DIMS; k++)
            h->shape[k] = (uint64_t)ten->shape[k];
        h->chunk_elems = c->cfg.chunk_elems;
        st = flp_tensor_header_fill(h);
        if (st != FL_OK || h->numel != ten->numel) {
            task_free(t);
            return st != FL_OK ? st : FL_ERR_INTERNAL;
        }
        t->chunk_base[i + 1] = t->chunk_base[i] + h->n_chunks;
    }
    /* Shared keep-sets encode each chunk once per round for everyone, unless the downlink codec
     * is plain float32 ("none"): encoding that is one copy, cheaper than holding a second copy of
     * the model in the cache. */
    if (shared && !down_plain(&c->down)) {
        const size_t n = t->chunk_base[t->sub->n_tensors];
        t->cache = calloc(n ? n : 1, sizeof *t->cache);
        t->cache_len = calloc(n ? n : 1, sizeof *t->cache_len);
        if (!t->cache || !t->cache_len) {
            task_free(t);
            return FL_ERR_NOMEM;
        }
    }
    *out = t;
    return FL_OK;
}

static void sel_release_update(fls_core *c, sel *s)
{
    /* NULL no-op; an open update's early folds are undone: the aggregate never sees it. When the
     * core is being freed, borrowed payloads may be gone already: nothing is undone. */
    if (c->freeing)
        fls_agg_update_discard(s->h);
    else
        fls_agg_update_abort(s->h);
    s->h = NULL;
    if (s->streaming)
        c->n_streaming--;
    s->streaming = 0;
    if (s->pay) {
        const uint32_t n = s->up_base[s->task->sub->n_tensors];
        for (uint32_t i = 0; i < n; i++)
            free(s->pay[i]);
        free(s->pay);
        free(s->pay_len);
        s->pay = NULL;
        s->pay_len = NULL;
    }
    flp_msg_tracker_free(s->trk);
    s->trk = NULL;
}

static void round_release(fls_core *c)
{
    for (size_t i = 0; i < c->n_sel; i++) {
        sel_release_update(c, &c->sels[i]);
        if (c->sels[i].task && !c->sels[i].task->shared)
            task_free(c->sels[i].task);
    }
    free(c->sels);
    c->sels = NULL;
    c->n_sel = 0;
    c->n_due = 0;
    task_free(c->shared_task);
    c->shared_task = NULL;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

fl_status fls_core_new(const fls_config *cfg, fls_core **out)
{
    if (!cfg || !out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    char err[200] = "";
    fl_status st = fls_config_validate(cfg, err, sizeof err);
    if (st != FL_OK) {
        /* out of memory writes no reason into err: said as what it is */
        if (st != FL_ERR_NOMEM)
            fl_log(&cfg->log, FL_LOG_ERROR, "server core: invalid configuration: %s", err);
        return st;
    }
    fls_core *c = calloc(1, sizeof *c);
    if (!c)
        return FL_ERR_NOMEM;
    c->cfg = *cfg;
    c->reached_acc = -1.0;
    if ((st = flm_arch_parse(cfg->arch, &c->arch, NULL, 0)) != FL_OK ||
        (st = flz_spec_parse(cfg->down_codec, &c->down, NULL, 0)) != FL_OK ||
        (st = flz_spec_parse(cfg->up_codec, &c->up, NULL, 0)) != FL_OK ||
        (st = fls_config_canon(cfg, c->canon, sizeof c->canon, &c->canon_len)) != FL_OK ||
        (st = fl_sha256_digest(c->digest, c->canon, c->canon_len)) != FL_OK) {
        fls_core_free(c);
        return st == FL_ERR_NOMEM ? st : FL_ERR_CONFIG;
    }
    flz_spec_format(&c->up, c->up_canon, sizeof c->up_canon);
    const size_t n = c->arch.n_params;
    c->params = malloc(n * sizeof *c->params);
    c->held = malloc(n);
    c->tmp = malloc((size_t)cfg->chunk_elems * sizeof *c->tmp);
    if (!c->params || !c->held || !c->tmp) {
        fls_core_free(c);
        return FL_ERR_NOMEM;
    }
    c->stream_slots = cfg->agg.max_open > 0 ? cfg->agg.max_open : 1;
    const fls_agg_options ao = agg_options(c);
    if ((st = fls_agg_new(&c->arch, &ao, &c->agg)) != FL_OK ||
        (st = fls_opt_new(&cfg->opt, n, &c->opt)) != FL_OK ||
        (st = fls_policy_new(&cfg->policy, &c->arch, cfg->seed, &c->pol)) != FL_OK ||
        (st = flz_ctx_new(&cfg->log, &c->zctx)) != FL_OK) {
        fl_log(&cfg->log, FL_LOG_ERROR, "server core: %s", fl_strerror(st));
        fls_core_free(c);
        return st == FL_ERR_NOMEM ? st : FL_ERR_CONFIG;
    }
    /* Every keep-set has the same unit counts, so every Task the same submodel size. */
    int counts[FLM_MAX_LAYERS];
    flm_arch sub;
    fls_policy_keep_counts(c->pol, counts);
    if (flm_arch_sub(&c->arch, counts, &sub) != FL_OK) {
        fls_core_free(c);
        return FL_ERR_INTERNAL;
    }
    c->train_need = flm_train_memory_need(sub.n_params, n, c->up.topk > 0);
    /* A shared keep-set's Task caches the round's encoded chunks of the submodel (task_new):
     * each at most flz_encode_bound of its values. */
    if (fls_policy_is_shared(c->pol) && !down_plain(&c->down))
        for (int i = 0; i < sub.n_tensors; i++) {
            const size_t numel = sub.tensors[i].numel, ce = cfg->chunk_elems;
            c->task_cache_bytes += numel / ce * flz_encode_bound(&c->down, ce) +
                                   (numel % ce ? flz_encode_bound(&c->down, numel % ce) : 0);
        }
    /* No update may take more than its share of the round's weight budget: clients_per_round
     * (the most commits a round takes) updates of the cap fit it. */
    const uint64_t per_round = cfg->clients_per_round > 0 ? cfg->clients_per_round : 1;
    c->samples_cap = fls_agg_weight_cap(c->agg) / per_round;
    if (c->samples_cap > FLS_UPDATE_SAMPLES_MAX)
        c->samples_cap = FLS_UPDATE_SAMPLES_MAX;
    /* The initial model: PyTorch's default initialisation from the run's INIT stream. */
    fl_rng r = fl_rng_stream(cfg->seed, 0, 0, FL_RNG_INIT);
    flm_model_init_params(&c->arch, c->params, &r);
    *out = c;
    return FL_OK;
}

void fls_core_free(fls_core *c)
{
    if (!c)
        return;
    c->freeing = 1;
    round_release(c);
    free(c->params);
    free(c->delta);
    free(c->late_keys);
    free(c->held);
    free(c->tmp);
    fls_agg_free(c->agg);
    fls_opt_free(c->opt);
    fls_policy_free(c->pol);
    flz_ctx_free(c->zctx);
    free(c->clients);
    free(c->idx);
    free(c->ev);
    free(c);
}

const uint8_t *fls_core_config_digest(const fls_core *c)
{
    return c->digest;
}

const flm_arch *fls_core_arch(const fls_core *c)
{
    return &c->arch;
}

const float *fls_core_params(const fls_core *c)
{
    return c->params;
}

fl_status fls_core_set_params(fls_core *c, const float *params, size_t n)
{
    if (!c || !params || n != c->arch.n_params)
        return FL_ERR_INVALID_ARG;
    if (c->open || c->eval_pending)
        return FL_ERR_STATE;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(params[i]))
            return FL_ERR_INVALID_ARG;
    memcpy(c->params, params, n * sizeof *params);
    return FL_OK;
}

uint64_t fls_core_round(const fls_core *c)
{
    return c->round;
}

uint64_t fls_core_model_version(const fls_core *c)
{
    return c->model_version;
}

int fls_core_round_open(const fls_core *c)
{
    return c->open;
}

double fls_core_deadline(const fls_core *c)
{
    return c->open ? c->deadline : INFINITY;
}

int fls_core_done(const fls_core *c)
{
    return c->done;
}

void fls_core_set_run_id(fls_core *c, uint64_t id)
{
    c->run_id = id;
}

uint64_t fls_core_run_id(const fls_core *c)
{
    return c->run_id;
}

int fls_core_target_reached(const fls_core *c)
{
    return c->target_reached;
}

uint32_t fls_core_connected(const fls_core *c)
{
    return c->n_connected;
}

const fls_round_metrics *fls_core_last_metrics(const fls_core *c)
{
    return c->have_last ? &c->last : NULL;
}

/* ---- clients ---------------------------------------------------------------------------------- */

/* c's record of key into *cr: FL_OK, FL_ERR_INVALID_ARG (no core), FL_ERR_UNKNOWN_CLIENT. */
static fl_status client_lookup(const fls_core *c, uint32_t key, client_rec **cr)
{
    if (!c)
        return FL_ERR_INVALID_ARG;
    *cr = client_find(c, key);
    return *cr ? FL_OK : FL_ERR_UNKNOWN_CLIENT;
}

/* A client that said it has less memory than a submodel needs: it is not selected. */
static uint32_t too_small(const fls_core *c, const client_rec *cr)
{
    return cr->memory && cr->memory < c->train_need;
}

uint64_t fls_core_update_samples_max(const fls_core *c, uint32_t key, const char **from)
{
    const client_rec *cr = client_find(c, key);
    const char *f = "the per-update weight cap";
    uint64_t lim = c->samples_cap;
    if (c->cfg.train.max_samples && c->cfg.train.max_samples < lim)
        lim = c->cfg.train.max_samples, f = "train.max_samples";
    if (cr && cr->dataset_size && cr->dataset_size < lim)
        lim = cr->dataset_size, f = "its Hello's dataset_size";
    if (from)
        *from = f;
    return lim;
}

fl_status fls_core_client_join(fls_core *c, uint32_t key, uint64_t dataset_size, double now)
{
    (void)now;
    if (!c)
        return FL_ERR_INVALID_ARG;
    client_rec *cr = client_find(c, key);
    if (!cr) {
        if (c->n_clients >= UINT32_MAX - 1 ||
            fl_grow(&c->clients, &c->cap_clients, c->n_clients + 1, sizeof *c->clients, 64) != FL_OK)
            return FL_ERR_NOMEM;
        cr = &c->clients[c->n_clients++];
        *cr = (client_rec){key, 0, 0, 0, 0};
        if (2 * c->n_clients > c->idx_mask + 1 || !c->idx) {
            /* a larger index, the new record in it; on failure the old one stands, without it */
            const fl_status st = client_reindex(c);
            if (st != FL_OK) {
                c->n_clients--;
                return st;
            }
        } else {
            size_t s = client_slot(key, c->idx_mask);
            while (c->idx[s])
                s = (s + 1) & c->idx_mask;
            c->idx[s] = (uint32_t)c->n_clients;
        }
    }
    if (!cr->connected) {
        c->n_connected++;
        c->n_small += too_small(c, cr);
    }
    cr->connected = 1;
    cr->dataset_size = dataset_size;
    return FL_OK;
}

fl_status fls_core_client_memory(fls_core *c, uint32_t key, uint64_t bytes)
{
    client_rec *cr;
    const fl_status found = client_lookup(c, key, &cr);
    if (found != FL_OK)
        return found;
    if (cr->connected)
        c->n_small -= too_small(c, cr);
    cr->memory = bytes;
    if (cr->connected)
        c->n_small += too_small(c, cr);
    return FL_OK;
}

fl_status fls_core_client_forget(fls_core *c, uint32_t key)
{
    client_rec *cr;
    const fl_status found = client_lookup(c, key, &cr);
    if (found != FL_OK)
        return found;
    if (cr->connected)
        return FL_ERR_STATE;
    sel *s = c->open ? sel_find(c, key) : NULL;
    if (s) {
        /* The round under way may still read its policy state: dropped when it closes. The
         * record goes now, so that a key that joins meanwhile (the id again, or another id the
         * host gives it) is a new client either way. */
        s->forgotten = 1;
    } else {
        fls_policy_forget(c->pol, key);
    }
    cr->gone = 1;
    c->n_gone++;
    /* Between rounds (a server that waits for clients) the array is compacted here too, so that
     * it stays within twice the clients known; out of memory, the next round's start does it. */
    if (c->n_gone >= 64 && 2 * c->n_gone >= c->n_clients && !c->open)
        (void)client_sort(c);
    return FL_OK;
}

typedef struct unknown_ctx {
    const fls_core *c;
    int (*known)(void *user, uint32_t client);
    void *user;
} unknown_ctx;

static int keep_known(void *user, uint32_t key)
{
    const unknown_ctx *u = user;
    client_rec *cr;
    return client_lookup(u->c, key, &cr) == FL_OK || u->known(u->user, key);
}

fl_status fls_core_forget_unknown(fls_core *c, int (*known)(void *user, uint32_t client),
                                  void *user, size_t *dropped)
{
    if (dropped)
        *dropped = 0;
    if (!c || !known)
        return FL_ERR_INVALID_ARG;
    if (c->open)
        return FL_ERR_STATE;
    unknown_ctx u = {c, known, user};
    const size_t n = fls_policy_prune(c->pol, keep_known, &u);
    if (dropped)
        *dropped = n;
    return FL_OK;
}

size_t fls_core_clients_known(const fls_core *c)
{
    return c ? c->n_clients - c->n_gone : 0;
}

uint64_t fls_core_train_memory(const fls_core *c)
{
    return c ? c->train_need : 0;
}

size_t fls_core_memory_bytes(const fls_core *c, size_t *state)
{
    if (!c)
        return 0;
    const size_t n = c->arch.n_params;
    size_t st = n * sizeof *c->params;
    for (size_t i = 0; i < fls_opt_n_state(c->opt); i++) {
        size_t len = 0;
        /* fls_opt_state takes a non-const opt (a restore writes through it); only its size read */
        (void)fls_opt_state((fls_opt *)c->opt, i, NULL, &len);
        st += len * sizeof(float);
    }
    if (state)
        *state = st;
    const fls_agg_options ao = agg_options(c);
    const size_t kept = ao.mode == FLS_AGG_MEAN ? 0 : (size_t)fls_agg_updates_kept(&ao);
    /* a round's selected clients: ceil(overcommit * clients_per_round), as fls_core_tick */
    const double m = ceil(c->cfg.overcommit * c->cfg.clients_per_round - 1e-9);
    size_t per_sel = 0;
    (void)fls_policy_client_bytes(c->pol, &per_sel);
    per_sel += sizeof(sel);
    if (!fls_policy_is_shared(c->pol)) {
        /* a Task of its own: its submodel (its keep-set and maps; the architecture borrowed),
         * 47 KB a client for mlp:784-500-10 (they were left out: 65 MB for 1,300 selected
         * clients) */
        per_sel += sizeof(task_spec) + flm_submodel_borrowed_bytes_bound(&c->arch);
    }
    return st + n /* held */ + (size_t)c->cfg.chunk_elems * sizeof *c->tmp +
           fls_agg_memory_bytes(&c->arch, n, &ao, kept) + c->task_cache_bytes +
           (size_t)(m > 1.0 ? m : 1.0) * per_sel;
}

size_t fls_core_client_bytes(const fls_core *c)
{
    return c ? sizeof(client_rec) + fls_policy_client_bytes(c->pol, NULL) : 0;
}

static fl_status close_round(fls_core *c, fls_close_reason why, double now);

/* An open round in which no selected client can still report. Asked where a selected client
 * fails (check_exhausted), which is the only way a round becomes so; a close that then fails is
 * retried through close_retry, not by asking again. */
static int round_exhausted(const fls_core *c)
{
    return c->open && c->n_due == 0;
}

/* Closes the round when no selected client can still report. */
static fl_status check_exhausted(fls_core *c, double now)
{
    return round_exhausted(c) ? close_round(c, FLS_CLOSE_EXHAUSTED, now) : FL_OK;
}

/* A selected client's update this round will not come: dropped, counted as failed; the round
 * closes if no selected client can still report. */
static fl_status sel_fail(fls_core *c, sel *s, double now)
{
    sel_release_update(c, s);
    sel_set_state(c, s, CS_FAILED);
    c->cur.failed++;
    return check_exhausted(c, now);
}

fl_status fls_core_client_leave(fls_core *c, uint32_t key, double now)
{
    client_rec *cr;
    const fl_status found = client_lookup(c, key, &cr);
    if (found != FL_OK)
        return found;
    if (cr->connected) {
        c->n_connected--;
        c->n_small -= too_small(c, cr);
    }
    cr->connected = 0;
    sel *s = c->open ? sel_find(c, key) : NULL;
    if (s && (s->state == CS_TASKED || s->state == CS_RECEIVING))
        return sel_fail(c, s, now);
    return FL_OK;
}

/* An Error from client about `round`: its training failed (flc: the trainer's status). Its update
 * this round (if it was still due) is dropped and counted as failed, as a leave would, but the
 * client stays connected. FL_OK, or why the report changes nothing. */
/* A message naming another run than this one (its client outlived that run's server): that run's
 * rounds are over. 0 names none (an older client, the simulator). */
static int other_run(const fls_core *c, uint64_t run_id)
{
    return run_id && run_id != c->run_id;
}

static fl_status on_client_error(fls_core *c, uint32_t key, uint64_t round, uint64_t run_id,
                                 double now)
{
    if (!client_find(c, key))
        return FL_ERR_UNKNOWN_CLIENT;
    if (!c->open || round != c->round || other_run(c, run_id))
        return FL_ERR_ROUND_CLOSED;
    sel *s = sel_find(c, key);
    if (!s)
        return FL_ERR_NOT_SELECTED;
    if (s->state != CS_TASKED && s->state != CS_RECEIVING)
        return FL_ERR_STATE;
    return sel_fail(c, s, now);
}

/* ---- rounds ----------------------------------------------------------------------------------- */


static fl_status start_round(fls_core *c, double now)
{
    const fl_status cs = client_sort(c); /* the draw walks the clients in key order */
    if (cs != FL_OK)
        return cs;
    uint32_t *keys = malloc((c->n_connected ? c->n_connected : 1) * sizeof *keys);
    if (!keys)
        return FL_ERR_NOMEM;
    uint32_t n = 0;
    for (size_t i = 0; i < c->n_clients; i++)
        if (c->clients[i].connected && !too_small(c, &c->clients[i]))
            keys[n++] = c->clients[i].key;
    /* ceil(overcommit * quorum), robust to 1.3 * 10 = 13.000000000000002. */
    double want = ceil(c->cfg.overcommit * c->cfg.clients_per_round - 1e-9);
    uint32_t m = want >= (double)n ? n : (uint32_t)want;
    if (m < 1)
        m = 1;
    const uint32_t round32 = (uint32_t)c->round;
    fl_rng r = fl_rng_stream(c->cfg.seed, round32, FLS_POLICY_SHARED_CLIENT, FL_RNG_CLIENT_SAMPLE);
    for (uint32_t i = 0; i < m; i++) {
        const uint32_t j = i + fl_rng_below(&r, n - i);
        /* keys[0, n) are set above, i <= j < n:
         * NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign) */
        const uint32_t t = keys[i];
        keys[i] = keys[j];
        keys[j] = t;
    }
    qsort(keys, m, sizeof *keys, cmp_u32);
    c->sels = calloc(m, sizeof *c->sels);
    fl_status st = c->sels ? FL_OK : FL_ERR_NOMEM;
    if (st == FL_OK)
        st = fls_agg_begin_round(c->agg);
    if (st == FL_OK)
        st = fls_policy_begin_round(c->pol, round32);
    const int shared = fls_policy_is_shared(c->pol);
    if (st == FL_OK && shared) {
        const flm_keepset *ks;
        st = fls_policy_keepset(c->pol, FLS_POLICY_SHARED_CLIENT, &ks);
        if (st == FL_OK)
            st = task_new(c, ks, 1, &c->shared_task);
    }
    for (uint32_t i = 0; i < m && st == FL_OK; i++) {
        sel *s = &c->sels[i];
        s->key = keys[i];
        sel_set_state(c, s, CS_TASKED);
        c->n_sel = i + 1;
        if (shared) {
            s->task = c->shared_task;
        } else {
            const flm_keepset *ks;
            st = fls_policy_keepset(c->pol, s->key, &ks);
            if (st == FL_OK)
                st = task_new(c, ks, 0, &s->task);
        }
    }
    if (st == FL_OK) /* the Tasks' events: none can be missing from an open round */
        st = events_reserve(c, m);
    if (st != FL_OK) {
        free(keys);
        round_release(c);
        return st;
    }
    memset(&c->cur, 0, sizeof c->cur);
    c->reached_acc = -1.0; /* training on (the target raised or off): the run has not ended */
    c->cur.round = c->round;
    c->cur.connected = c->n_connected;
    c->cur.selected = m;
    c->cur.quorum = c->quorum = m < c->cfg.clients_per_round ? m : c->cfg.clients_per_round;
    c->cur.t_start = now;
    c->cur.policy = c->cfg.policy.kind;
    c->cur.rejected = c->rejected_between;
    c->cur.test_accuracy = c->cur.test_loss = NAN;
    c->rejected_between = 0;
    c->reported = 0;
    c->open = 1;
    c->deadline = now + c->cfg.round_timeout_s;
    for (uint32_t i = 0; i < m; i++)
        (void)push_event(c, FLS_EV_TASK, keys[i], c->round); /* reserved above: cannot fail */
    free(keys);
    c->said_small = 0;
    fl_log(&c->cfg.log, FL_LOG_DEBUG, "round %llu: %u of %u connected clients selected, quorum %u%s",
           (unsigned long long)c->round, m, c->n_connected, c->quorum,
           c->n_small ? " (some announced too little memory: not selected)" : "");
    return st;
}

/* The round's metrics are complete: publish them; stop when a limit is reached. */
static fl_status finish_round(fls_core *c)
{
    c->last = c->cur;
    c->have_last = 1;
    fl_status st = push_event(c, FLS_EV_ROUND_END, 0, c->last.round);
    const int target = c->cfg.target_accuracy > 0.0 && c->last.evaluated &&
                       c->last.test_accuracy >= c->cfg.target_accuracy;
    const int limit = c->cfg.max_rounds && c->round >= c->cfg.max_rounds;
    if (st == FL_OK && !c->done && (target || limit)) {
        c->done = 1;
        c->target_reached = target;
        if (target) {
            c->reached_acc = c->last.test_accuracy;
            fl_log(&c->cfg.log, FL_LOG_INFO, "round %llu: test accuracy %.4f reached the target %.4f",
                   (unsigned long long)c->last.round, c->last.test_accuracy,
                   c->cfg.target_accuracy);
        }
        st = push_event(c, FLS_EV_DONE, 0, c->last.round);
    }
    return st;
}

static fl_status close_round(fls_core *c, fls_close_reason why, double now)
{
    if (!c->open)
        return FL_ERR_STATE;
    c->n_late = 0;
    if (c->late_cap < c->n_sel) { /* on failure none is remembered: they count as rejected */
        uint32_t *k = realloc(c->late_keys, c->n_sel * sizeof *k);
        if (k) {
            c->late_keys = k;
            c->late_cap = c->n_sel;
        }
    }
    uint32_t late = 0, done = 0;
    for (size_t i = 0; i < c->n_sel; i++) {
        sel *s = &c->sels[i];
        if (s->state == CS_TASKED || s->state == CS_RECEIVING) {
            late++;
            if (c->n_late < c->late_cap)
                c->late_keys[c->n_late++] = s->key;
        }
        done += s->state == CS_DONE && !s->told;
        sel_release_update(c, s);
        if (s->state == CS_RECEIVING) /* its upload is gone: should this close fail, the round */
            sel_set_state(c, s, CS_TASKED); /* stays open; the client may send its update anew */
    }
    /* Everything that can fail comes before the first change that cannot be undone (the policy's
     * round end, the server step): a close that fails leaves the round open, the model, the
     * optimizer and the policy as they were, and a later close does it all once (fls_core.h).
     * The round's delta goes into an idle staging buffer of the aggregator (every update is
     * released by now): no model-size buffer of our own for it (peak memory). The borrowed
     * update is aborted afterwards, which leaves the aggregate as it is. */
    fls_agg_update *scratch = NULL;
    float *delta = NULL;
    if (fls_agg_update_begin(c->agg, 1, NULL, &scratch) == FL_OK)
        delta = fls_agg_update_stage(scratch, 0, c->arch.n_params);
    if (!delta) {
        if (!c->delta)
            c->delta = malloc(c->arch.n_params * sizeof *c->delta);
        delta = c->delta;
    }
    fl_status st = delta ? fls_agg_finalize(c->agg, delta, c->held) : FL_ERR_NOMEM;
    if (st == FL_OK) /* ROUND_END and DONE, or EVALUATE */
        st = events_reserve(c, 2);
    if (st == FL_OK)
        st = fls_policy_reserve_reports(c->pol, done);
    /* Losses to the policy and the metrics, in client-key order (sels are sorted). */
    double swl = 0.0;
    uint64_t sw = 0;
    for (size_t i = 0; i < c->n_sel && st == FL_OK; i++) {
        sel *s = &c->sels[i];
        if (s->state != CS_DONE)
            continue;
        if (!s->told)
            st = fls_policy_report(c->pol, s->key, s->loss, s->n_samples);
        s->told = st == FL_OK;
        swl += (double)s->n_samples * s->loss;
        sw += s->n_samples;
    }
    fls_policy_info info;
    if (st == FL_OK) /* all or nothing */
        st = fls_policy_end_round(c->pol, &info);
    c->close_failed = st != FL_OK;
    if (st != FL_OK) {
        if (why != FLS_CLOSE_DEADLINE)
            c->close_retry = 1;
        fls_agg_update_abort(scratch);
        fl_log(&c->cfg.log, FL_LOG_ERROR, "round %llu: close failed (the round stays open, "
               "the model as it was): %s", (unsigned long long)c->round, fl_strerror(st));
        return st;
    }
    /* From here on nothing fails. */
    if (fls_opt_step(c->opt, c->params, delta, c->held) != FL_OK) {
        /* FL_ERR_NUMERIC, only from a model or optimizer state near the float range (a
         * checkpoint's extreme values): the model stays as it was, finite, and the server up. */
        fl_log(&c->cfg.log, FL_LOG_ERROR, "round %llu: the server step would take the model "
               "or the optimizer state out of the finite floats: step skipped, the model "
               "unchanged (was the run resumed from a checkpoint with extreme values?)",
               (unsigned long long)c->round);
    }
    fls_agg_update_abort(scratch);
    c->cur.late += late;
    c->model_version++;
    c->cur.model_version = c->model_version;
    c->cur.closed_by = why;
    c->cur.reported = c->reported;
    c->cur.samples = sw;
    c->cur.mean_loss = sw ? swl / (double)sw : NAN;
    c->cur.t_end = now;
    c->cur.duration_s = now - c->cur.t_start;
    c->cur.afd = info;
    /* The policy state of the clients forgotten while this round selected them goes now, with
     * the policy's round over: it leaves the checkpoint taken next, and a key that joined
     * meanwhile starts afresh. */
    for (size_t i = 0; i < c->n_sel; i++)
        if (c->sels[i].forgotten)
            fls_policy_forget(c->pol, c->sels[i].key);
    round_release(c);
    c->open = 0;
    c->close_retry = 0;
    const uint64_t closed = c->round++;
    const int last_round = c->cfg.max_rounds && c->round >= c->cfg.max_rounds;
    if (c->cfg.eval_every && (c->round % c->cfg.eval_every == 0 || last_round)) {
        c->eval_pending = 1;
        return push_event(c, FLS_EV_EVALUATE, 0, closed);
    }
    return finish_round(c);
}

fl_status fls_core_report_eval(fls_core *c, uint64_t round, double accuracy, double loss,
                               double now)
{
    (void)now;
    if (!c || !(accuracy >= 0.0 && accuracy <= 1.0))
        return FL_ERR_INVALID_ARG;
    if (!c->eval_pending || round != c->cur.round)
        return FL_ERR_STATE;
    const fl_status st = events_reserve(c, 2); /* ROUND_END and DONE: none lost after this */
    if (st != FL_OK)
        return st;
    c->eval_pending = 0;
    c->cur.evaluated = 1;
    c->cur.test_accuracy = accuracy;
    c->cur.test_loss = loss;
    return finish_round(c);
}

/* What fls_core_tick has to do now, besides closing a round at its deadline: nothing, end the
 * run (max_rounds, or a resumed run whose target was reached) or start a round. fls_core_tick and
 * fls_core_tick_due both ask it, so that a host never waits on a tick that would act, nor spins
 * on one that would not. */
enum { TICK_IDLE = 0, TICK_DONE = 1, TICK_TARGET = 2, TICK_START = 3 };

static uint32_t clients_needed(const fls_core *c)
{
    return c->cfg.min_clients ? c->cfg.min_clients : c->cfg.clients_per_round;
}

static int tick_work(const fls_core *c)
{
    if (c->open || c->eval_pending || c->done)
        return TICK_IDLE;
    if (c->cfg.max_rounds && c->round >= c->cfg.max_rounds)
        return TICK_DONE;
    /* Resumed from a run that ended at its target accuracy: still ended, unless the target
     * was raised above what it reached (or turned off). */
    if (c->cfg.target_accuracy > 0.0 && c->reached_acc >= c->cfg.target_accuracy)
        return TICK_TARGET;
    const uint32_t able = c->n_connected - c->n_small;
    return able >= clients_needed(c) && able > 0 ? TICK_START : TICK_IDLE;
}

double fls_core_tick_due(const fls_core *c)
{
    if (!c)
        return INFINITY;
    if (c->open) /* at its deadline; now where a close at quorum or exhaustion failed */
        return c->close_retry ? -INFINITY : c->deadline;
    return tick_work(c) != TICK_IDLE ? -INFINITY : INFINITY;
}

fl_status fls_core_tick(fls_core *c, double now)
{
    if (!c)
        return FL_ERR_INVALID_ARG;
    if (c->open && now >= c->deadline) /* closed at the deadline, whenever the timer came */
        return close_round(c, FLS_CLOSE_DEADLINE, c->deadline);
    /* A close at quorum, or once nobody could still report, that failed (out of memory, undone):
     * done now, not left to the deadline (fls_core_tick_due says so too). At quorum whenever the
     * quorum is in, as a first close would have been. */
    if (c->open && c->close_retry)
        return close_round(c, c->reported >= c->quorum ? FLS_CLOSE_QUORUM : FLS_CLOSE_EXHAUSTED,
                           now);
    switch (tick_work(c)) {
    case TICK_DONE:
        c->done = 1;
        return push_event(c, FLS_EV_DONE, 0, c->round);
    case TICK_TARGET:
        c->done = c->target_reached = 1;
        fl_log(&c->cfg.log, FL_LOG_INFO, "the checkpoint's run reached test accuracy %.4f, at or "
               "above the target %.4f: nothing more to train", c->reached_acc,
               c->cfg.target_accuracy);
        return push_event(c, FLS_EV_DONE, 0, c->round);
    case TICK_START:
        return start_round(c, now);
    default:
        break;
    }
    if (c->open || c->eval_pending || c->done)
        return FL_OK;
    const uint32_t need = clients_needed(c);
    if (c->n_connected >= need && !c->said_small) {
        c->said_small = 1;
        fl_log(&c->cfg.log, FL_LOG_WARN, "round %llu waits: %u of the %u connected clients "
               "announced less memory than a submodel of %s needs (about %llu bytes), and %u "
               "clients are needed to start", (unsigned long long)c->round, c->n_small,
               c->n_connected, c->arch.spec, (unsigned long long)c->train_need, need);
    }
    return FL_OK;
}

/* ---- tasks to clients ------------------------------------------------------------------------- */

fl_status fls_core_task(const fls_core *c, uint32_t key, flp_msg *out)
{
    if (!c || !out)
        return FL_ERR_INVALID_ARG;
    if (!c->open)
        return FL_ERR_ROUND_CLOSED;
    const sel *s = sel_find(c, key);
    if (!s)
        return FL_ERR_NOT_SELECTED;
    const task_spec *t = s->task;
    *out = flp_msg_header(FLP_TASK, c->round, NULL);
    flp_task *k = &out->task;
    k->model_version = c->model_version;
    k->arch = c->arch.spec;
    k->n_layers = (uint32_t)c->arch.n_drop;
    k->layers = t->layers;
    k->train = c->cfg.train;
    /* The most samples this client's Update may claim (samples_cap, fls_core.h) goes out as the
     * Task's max_samples, so that a client trains on at most that many (libflclient's built-in
     * trainer takes max_samples evenly spaced rows; a plug-in reads task->max_samples) instead
     * of sending an honest count the Update header then refuses (FL_ERR_WIRE_LIMIT), every
     * round. The
     * client's own Hello dataset_size needs no word: it never claims more than it holds. */
    if (!k->train.max_samples || k->train.max_samples > c->samples_cap)
        k->train.max_samples = c->samples_cap;
    k->down_codec = c->cfg.down_codec;
    k->up_codec = c->cfg.up_codec;
    const double ms = c->cfg.round_timeout_s * 1000.0;
    k->deadline_ms = ms >= 4294967295.0 ? 4294967295u : (uint32_t)ms;
    k->n_tensors = (uint32_t)t->sub->n_tensors;
    k->tensors = t->hdrs;
    k->run_id = c->run_id;
    return FL_OK;
}

size_t fls_core_task_chunk_bound(const fls_core *c)
{
    return flz_encode_bound(&c->down, c->cfg.chunk_elems);
}

typedef struct gather_ctx {
    float *dst;
    const float *full;
    size_t sub_off;
} gather_ctx;

static void gather_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    gather_ctx *g = user;
    memcpy(g->dst + (sub_index - g->sub_off), g->full + full_index, len * sizeof(float));
}

/* A chunk of the global model the down codec refused (FL_ERR_NUMERIC): said with the codec's
 * reason, since the status's own text ("non-finite value") is wrong where every weight is finite
 * and only past what the codec carries (f16 ends at 65504). */
static void chunk_refused(const fls_core *c, const char *tensor, uint32_t index, fl_status st)
{
    if (st != FL_ERR_NUMERIC)
        return;
    char spec[FLZ_SPEC_STRLEN];
    flz_spec_format(&c->down, spec, sizeof spec);
    fl_log(&c->cfg.log, FL_LOG_ERROR, "round %llu: chunk %u of tensor %s of the global model "
           "cannot be sent through the down codec %s: %s", (unsigned long long)c->round, index,
           tensor, spec, flz_ctx_error(c->zctx));
}

const char *fls_core_chunk_error(const fls_core *c)
{
    return c ? flz_ctx_error(c->zctx) : "";
}

fl_status fls_core_task_chunk(fls_core *c, uint32_t key, uint32_t tensor, uint32_t index,
                              uint8_t *dst, size_t cap, size_t *len, flp_chunk *chunk)
{
    if (!c || !dst || !len)
        return FL_ERR_INVALID_ARG;
    *len = 0;
    if (!c->open)
        return FL_ERR_ROUND_CLOSED;
    const sel *s = sel_find(c, key);
    if (!s)
        return FL_ERR_NOT_SELECTED;
    task_spec *t = s->task;
    if (tensor >= (uint32_t)t->sub->n_tensors || index >= t->hdrs[tensor].n_chunks)
        return FL_ERR_WIRE_CHUNK_RANGE;
    const flp_tensor_header *h = &t->hdrs[tensor];
    const uint64_t off = (uint64_t)index * h->chunk_elems;
    const uint32_t count = (uint32_t)(h->numel - off < h->chunk_elems ? h->numel - off
                                                                       : h->chunk_elems);
    const uint32_t ci = t->chunk_base[tensor] + index;
    if (!t->cache || !t->cache[ci]) {
        const size_t sub_off = t->sub->tensors[tensor].offset + (size_t)off;
        gather_ctx g = {c->tmp, c->params, sub_off};
        flm_submodel_runs(t->sm, sub_off, count, gather_run, &g);
        /* Each chunk gets its own key (flz.h): the tensor and chunk index mixed into the seed. */
        flz_params fp = {0};
        fp.seed = c->cfg.seed ^ (0x9E3779B97F4A7C15ull * (((uint64_t)tensor << 32) | index) + 1);
        fp.round = (uint32_t)c->round;
        fp.client = t->shared ? FLS_POLICY_SHARED_CLIENT : key;
        if (!t->cache) {
            fl_status st = flz_encode(c->zctx, &c->down, &fp, c->tmp, count, dst, cap, len);
            if (st != FL_OK) {
                chunk_refused(c, h->name, index, st);
                return st;
            }
        } else {
            const size_t bound = flz_encode_bound(&c->down, count);
            uint8_t *buf = malloc(bound ? bound : 1);
            if (!buf)
                return FL_ERR_NOMEM;
            size_t w = 0;
            fl_status st = flz_encode(c->zctx, &c->down, &fp, c->tmp, count, buf, bound, &w);
            if (st != FL_OK) {
                chunk_refused(c, h->name, index, st);
                free(buf);
                return st;
            }
            uint8_t *shrunk = realloc(buf, w ? w : 1);
            t->cache[ci] = shrunk ? shrunk : buf;
            t->cache_len[ci] = w;
        }
    }
    if (t->cache) {
        if (cap < t->cache_len[ci])
            return FL_ERR_BUFFER_TOO_SMALL;
        memcpy(dst, t->cache[ci], t->cache_len[ci]);
        *len = t->cache_len[ci];
    }
    c->cur.bytes_down += *len;
    if (chunk) {
        memset(chunk, 0, sizeof *chunk);
        chunk->dir = FLP_DIR_DOWN;
        chunk->tensor = tensor;
        chunk->index = index;
        chunk->offset = off;
        chunk->count = count;
        chunk->payload = dst;
        chunk->payload_len = *len;
    }
    return FL_OK;
}

/* ---- updates from clients --------------------------------------------------------------------- */

/* Why a message from key cannot belong to the open round's selection. */
static fl_status not_selected(const fls_core *c, uint32_t key)
{
    return client_find(c, key) ? FL_ERR_NOT_SELECTED : FL_ERR_UNKNOWN_CLIENT;
}

static fl_status on_update(fls_core *c, uint32_t key, const flp_msg *m, double now)
{
    if (!c->open || m->round != c->round || other_run(c, m->update.run_id))
        return FL_ERR_ROUND_CLOSED;
    sel *s = sel_find(c, key);
    if (!s)
        return not_selected(c, key);
    if (s->state != CS_TASKED)
        return FL_ERR_DUPLICATE_UPDATE;
    const flp_update *u = &m->update;
    const flm_arch *sub = s->task->sub;
    if (u->model_version != c->model_version)
        return FL_ERR_WIRE_FIELD;
    if (u->n_tensors != (uint32_t)sub->n_tensors || !u->tensors || u->n_samples == 0 ||
        !isfinite(u->loss))
        return FL_ERR_WIRE_SHAPE;
    /* A training loss (cross-entropy) is >= 0; the cap keeps n_samples x loss and every sum of
     * them finite, so the round's loss and the policy state a checkpoint holds stay finite. The
     * update is well formed but its value is refused: it fails (the round closes once nobody can
     * still report). */
    if (!(u->loss >= 0.0 && u->loss <= FLS_UPDATE_LOSS_MAX)) {
        const fl_status cs = sel_fail(c, s, now);
        return cs != FL_OK ? cs : FL_ERR_WIRE_FIELD;
    }
    /* n_samples is the update's aggregation weight: a client may not claim more samples than it
     * said it holds, than the Task let it train on, or than its share of the round's weight
     * (else one update could use up the round's weight cap and the honest ones fail). */
    if (u->n_samples > fls_core_update_samples_max(c, key, NULL)) {
        const fl_status cs = sel_fail(c, s, now);
        return cs != FL_OK ? cs : FL_ERR_WIRE_LIMIT;
    }
    s->up_base[0] = 0;
    for (uint32_t i = 0; i < u->n_tensors; i++) {
        const flp_tensor_header *h = &u->tensors[i];
        /* the chunking the Task used (codec.chunk_elems): a client that chose its own, say 4
         * elements a chunk, would make the server pay a message's fixed costs (unpack, checks,
         * decode call, Ack) 16384 times over per chunk, holding an upload slot 20x longer */
        if (h->numel != sub->tensors[i].numel || !h->name ||
            strcmp(h->name, sub->tensors[i].name) != 0 || h->chunk_elems != c->cfg.chunk_elems)
            return FL_ERR_WIRE_SHAPE;
        s->up_chunk_elems[i] = h->chunk_elems;
        s->up_base[i + 1] = s->up_base[i] + h->n_chunks;
    }
    fl_status st = flp_msg_tracker_new(&s->trk, u->tensors, u->n_tensors, FLP_DIR_UP);
    if (st != FL_OK)
        return st == FL_ERR_INVALID_ARG ? FL_ERR_WIRE_SHAPE : st;
    s->n_samples = u->n_samples;
    s->loss = u->loss;
    sel_set_state(c, s, CS_RECEIVING);
    return FL_OK;
}

/* At an update's first chunk: a staging buffer of the aggregator if one is free (chunks then
 * decode straight into it), else the fallback of keeping the encoded chunks until the update is
 * complete. */
static fl_status open_update(fls_core *c, sel *s)
{
    if (c->n_streaming < c->stream_slots) {
        fl_status st = fls_agg_update_begin(c->agg, s->n_samples, s->task->sm, &s->h);
        if (st == FL_OK) {
            s->streaming = 1;
            c->n_streaming++;
            return FL_OK;
        }
        s->h = NULL;
        if (st != FL_ERR_STATE)
            return st;
    }
    const uint32_t n = s->up_base[s->task->sub->n_tensors];
    s->pay = calloc(n ? n : 1, sizeof *s->pay);
    s->pay_len = calloc(n ? n : 1, sizeof *s->pay_len);
    if (!s->pay || !s->pay_len) {
        free(s->pay);
        free(s->pay_len);
        s->pay = NULL;
        s->pay_len = NULL;
        return FL_ERR_NOMEM;
    }
    return FL_OK;
}

/* The float32 values of a plain float32 payload in place (no top-k, rotation, subsampling or
 * zstd: the body is the little-endian floats themselves), or NULL. */
static const float *raw_f32_body(const flp_chunk *k, const flz_info *info)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const flz_spec *sp = &info->spec;
    const uint8_t *body = k->payload + FLZ_HEADER_SIZE;
    if (sp->value != FLZ_VALUE_F32 || sp->topk != 0.0f || sp->rot_log2 || sp->sub != 0.0f ||
        sp->zstd || info->body_len != (size_t)k->count * sizeof(float) ||
        ((uintptr_t)body % _Alignof(float)) != 0)
        return NULL;
    return (const float *)(const void *)body;
#else
    (void)k;
    (void)info;
    return NULL;
#endif
}

/* Streaming: decodes one accepted chunk into the update's staging, or with a borrowed plain
 * float32 payload hands the aggregator its floats in place. */
static fl_status stage_chunk(fls_core *c, sel *s, const flp_chunk *k, const flz_info *info,
                             int borrowed)
{
    const size_t sub_off = s->task->sub->tensors[k->tensor].offset + (size_t)k->offset;
    const float *raw = borrowed ? raw_f32_body(k, info) : NULL;
    if (raw)
        return fls_agg_update_add_borrowed(s->h, sub_off, raw, k->count);
    float *dst = fls_agg_update_stage(s->h, sub_off, k->count);
    if (!dst)
        return FL_ERR_WIRE_CHUNK_RANGE;
    /* split over the embedder's parallel-for, if it lent one (the same bits) */
    fl_status st = flz_decode_par(c->zctx, k->payload, k->payload_len, dst, k->count,
                                  &c->cfg.agg.par);
    if (st == FL_OK)
        st = fls_agg_update_add(s->h, sub_off, dst, k->count);
    return st;
}

/* Decodes a complete update into the aggregator's staging buffer (fallback mode; streaming
 * updates are staged already) and commits it. */
static fl_status commit_update(fls_core *c, sel *s)
{
    if (s->streaming) {
        fl_status st = s->h ? fls_agg_update_commit(s->h) : FL_ERR_INTERNAL; /* releases h */
        s->h = NULL;
        return st;
    }
    const flm_arch *sub = s->task->sub;
    fls_agg_update *h = NULL;
    fl_status st = fls_agg_update_begin(c->agg, s->n_samples, s->task->sm, &h);
    for (int t = 0; t < sub->n_tensors && st == FL_OK; t++) {
        const size_t numel = sub->tensors[t].numel, ce = s->up_chunk_elems[t];
        for (uint32_t i = s->up_base[t]; i < s->up_base[t + 1] && st == FL_OK; i++) {
            const size_t off = (size_t)(i - s->up_base[t]) * ce;
            const size_t cnt = numel - off < ce ? numel - off : ce;
            const size_t sub_off = sub->tensors[t].offset + off;
            float *dst = fls_agg_update_stage(h, sub_off, cnt);
            if (!dst) {
                st = FL_ERR_INTERNAL;
                break;
            }
            st = flz_decode_par(c->zctx, s->pay[i], s->pay_len[i], dst, cnt, &c->cfg.agg.par);
            if (st == FL_OK)
                st = fls_agg_update_add(h, sub_off, dst, cnt);
        }
    }
    if (st == FL_OK) {
        st = fls_agg_update_commit(h); /* releases h also on error */
        h = NULL;
    }
    if (h)
        fls_agg_update_abort(h);
    return st;
}

/* Where a value the aggregator refused lies, in the words of the update as its client sent it
 * (its submodel's tensors: a device maker finds the element in what it sent), with the bound it
 * passed, into c->upd_err; empty for other refusals. Until 2026-12-08 the log and the client's
 * Ack said only "update value outside the aggregation range": neither the operator nor the
 * device maker learnt which weight, how far it moved, or how far is too far. */
static void update_error_say(fls_core *c, const sel *s, fl_status st)
{
    c->upd_err[0] = '\0';
    fls_agg_bad b;
    if ((st != FL_ERR_AGG_RANGE && st != FL_ERR_NUMERIC) || !fls_agg_last_bad(c->agg, &b) ||
        b.status != st || !b.found)
        return;
    const flm_arch *sub = s->task->sub;
    int t = 0;
    while (t < sub->n_tensors &&
           b.index >= sub->tensors[t].offset + sub->tensors[t].numel)
        t++;
    if (t == sub->n_tensors || b.index < sub->tensors[t].offset)
        return;
    const size_t i = b.index - sub->tensors[t].offset;
    const char *name = sub->tensors[t].name;
    if (st == FL_ERR_NUMERIC)
        snprintf(c->upd_err, sizeof c->upd_err, "tensor %s element %zu is %g", name, i,
                 (double)b.value);
    else if (b.clip < 1.0)
        snprintf(c->upd_err, sizeof c->upd_err, "tensor %s element %zu is %g, beyond the bound "
                 "%g (%g, |w - w0| at most, over the clip factor %g)", name, i, (double)b.value,
                 (double)b.bound, (double)b.max_abs, b.clip);
    else
        snprintf(c->upd_err, sizeof c->upd_err, "tensor %s element %zu is %g, beyond the bound "
                 "%g (|w - w0| at most)", name, i, (double)b.value, (double)b.bound);
}

const char *fls_core_update_error(const fls_core *c)
{
    return c ? c->upd_err : "";
}

static fl_status on_chunk(fls_core *c, uint32_t key, const flp_msg *m, double now, int borrowed)
{
    const flp_chunk *k = &m->chunk;
    if (k->dir != FLP_DIR_UP)
        return FL_ERR_WIRE_FIELD;
    if (!c->open || m->round != c->round)
        return FL_ERR_ROUND_CLOSED;
    sel *s = sel_find(c, key);
    if (!s)
        return not_selected(c, key);
    if (s->state == CS_DONE)
        return FL_ERR_DUPLICATE_UPDATE;
    if (s->state != CS_RECEIVING)
        return FL_ERR_STATE; /* no Update header yet, or the update was already refused */
    flz_info info;
    if (!k->payload || flz_peek(k->payload, k->payload_len, &info) != FL_OK)
        return FL_ERR_CODEC_HEADER;
    if (info.n != k->count)
        return FL_ERR_CODEC_LENGTH;
    char canon[FLZ_SPEC_STRLEN];
    flz_spec_format(&info.spec, canon, sizeof canon);
    if (strcmp(canon, c->up_canon) != 0)
        return FL_ERR_CODEC_SPEC;
    /* An honest encoder never exceeds the bound: this caps what one update can make us buffer. */
    if (k->payload_len > flz_encode_bound(&c->up, k->count))
        return FL_ERR_WIRE_TOO_LARGE;
    fl_status st = flp_msg_tracker_accept(s->trk, k, NULL, 0);
    if (st != FL_OK)
        return st;
    if (!s->streaming && !s->pay)
        st = open_update(c, s);
    if (st == FL_OK && s->streaming) {
        st = stage_chunk(c, s, k, &info, borrowed);
    } else if (st == FL_OK) {
        const uint32_t i = s->up_base[k->tensor] + k->index;
        s->pay[i] = malloc(k->payload_len ? k->payload_len : 1);
        if (s->pay[i]) {
            memcpy(s->pay[i], k->payload, k->payload_len);
            s->pay_len[i] = k->payload_len;
        } else {
            st = FL_ERR_NOMEM;
        }
    }
    if (st != FL_OK) {
        /* The tracker recorded the chunk: the update cannot complete; drop it (its staging is
         * aborted: the aggregate never sees any of it). */
        sel_release_update(c, s);
        sel_set_state(c, s, CS_FAILED);
        c->cur.failed++;
        char nb[16];
        fl_log(&c->cfg.log, FL_LOG_WARN, "round %llu: update of client %s refused: %s",
               (unsigned long long)c->round, client_name(c, key, nb), fl_strerror(st));
        const fl_status cs = check_exhausted(c, now);
        return cs != FL_OK ? cs : st;
    }
    c->cur.bytes_up += k->payload_len;
    if (!flp_msg_tracker_complete(s->trk))
        return FL_OK;
    st = commit_update(c, s);
    if (st != FL_OK)
        update_error_say(c, s, st);
    sel_release_update(c, s);
    if (st != FL_OK) {
        sel_set_state(c, s, CS_FAILED);
        c->cur.failed++;
        char nb[16];
        fl_log(&c->cfg.log, FL_LOG_WARN, "round %llu: update of client %s refused: %s%s%s",
               (unsigned long long)c->round, client_name(c, key, nb), fl_strerror(st),
               c->upd_err[0] ? ": " : "", c->upd_err);
        const fl_status cs = check_exhausted(c, now);
        return cs != FL_OK ? cs : st;
    }
    sel_set_state(c, s, CS_DONE);
    c->reported++;
    if (c->reported >= c->quorum)
        return close_round(c, FLS_CLOSE_QUORUM, now);
    return check_exhausted(c, now);
}

fl_status fls_core_update_abort(fls_core *c, uint32_t key, double now)
{
    if (!c)
        return FL_ERR_INVALID_ARG;
    sel *s = c->open ? sel_find(c, key) : NULL;
    if (!s || s->state != CS_RECEIVING)
        return FL_ERR_STATE;
    sel_release_update(c, s);
    sel_set_state(c, s, CS_FAILED);
    c->cur.failed++;
    return check_exhausted(c, now);
}

fls_update_state fls_core_update_state(const fls_core *c, uint32_t key, uint64_t round)
{
    if (!c || !c->open || round != c->round)
        return FLS_UPDATE_NONE;
    const sel *s = sel_find(c, key);
    if (!s)
        return FLS_UPDATE_NONE;
    switch (s->state) {
    case CS_RECEIVING:
        return FLS_UPDATE_RECEIVING;
    case CS_DONE:
        return FLS_UPDATE_COMMITTED;
    case CS_FAILED:
        return FLS_UPDATE_FAILED;
    default:
        return FLS_UPDATE_NONE;
    }
}

/* m is the upload (Update or Chunk) of a client that was late when the last round closed, for
 * that round and run. */
static int late_at_last_close(const fls_core *c, uint32_t key, const flp_msg *m)
{
    if ((m->type != FLP_UPDATE && m->type != FLP_CHUNK) || m->round + 1 != c->round ||
        (m->type == FLP_UPDATE && other_run(c, m->update.run_id)))
        return 0;
    size_t lo = 0, hi = c->n_late;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (c->late_keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_late && c->late_keys[lo] == key;
}

static fl_status on_message(fls_core *c, uint32_t key, const flp_msg *m, double now, int borrowed)
{
    if (!c || !m)
        return FL_ERR_INVALID_ARG;
    c->upd_err[0] = '\0'; /* fls_core_update_error: this message's, also when the close fails */
    /* The deadline holds to the message, not to the host's timer: whatever comes after it finds
     * the round closed, as if fls_core_tick had run just before (fl_server ticked every 50 ms
     * until 2026-12-07, and an update that came within that window was aggregated; it now wakes
     * at fls_core_tick_due, but may read a message stamped after the deadline before its tick).
     * The simulator ticks at the deadline before it feeds anything later, so its runs are
     * unchanged. It closed at the deadline (the round's duration is round_timeout_s). */
    if (c->open && now > c->deadline) {
        const fl_status cs = close_round(c, FLS_CLOSE_DEADLINE, c->deadline);
        if (cs != FL_OK)
            return cs;
    }
    c->close_failed = 0;
    fl_status st;
    switch (m->type) {
    case FLP_HELLO:
        st = fls_core_client_join(c, key, m->hello.dataset_size, now);
        if (st == FL_OK)
            st = fls_core_client_memory(c, key, m->hello.memory_bytes);
        break;
    case FLP_BYE:
        st = fls_core_client_leave(c, key, now);
        break;
    case FLP_HEARTBEAT:
        st = client_find(c, key) ? FL_OK : FL_ERR_UNKNOWN_CLIENT;
        break;
    case FLP_UPDATE:
        st = on_update(c, key, m, now);
        break;
    case FLP_CHUNK:
        st = on_chunk(c, key, m, now, borrowed);
        break;
    case FLP_ERROR:
        st = on_client_error(c, key, m->round, m->error.run_id, now);
        break;
    default:
        st = FL_ERR_WIRE_TYPE;
        break;
    }
    /* A client's Error is its word, not bad input: one about a round already closed (a device
     * whose training failed after the quorum) is no rejected message. Nor is the upload of an
     * update that came after its round closed (an over-committed round's stragglers: each is
     * that round's `late` already); it is refused all the same. Nor is a message that brought
     * about a close that failed (the last chunk of the quorum's update, a Bye): the failure is
     * the server's, and the message was taken (a refused one whose close failed too is not
     * counted either, the one such undercount). */
    const int straggler = st == FL_ERR_ROUND_CLOSED && late_at_last_close(c, key, m);
    if (st != FL_OK && m->type != FLP_ERROR && !straggler && !c->close_failed) {
        if (c->open)
            c->cur.rejected++;
        else
            c->rejected_between++;
    }
    return st;
}

fl_status fls_core_on_message(fls_core *c, uint32_t key, const flp_msg *m, double now)
{
    return on_message(c, key, m, now, 0);
}

fl_status fls_core_on_message_borrowed(fls_core *c, uint32_t key, const flp_msg *m, double now)
{
    return on_message(c, key, m, now, 1);
}

/* ---- checkpoints ------------------------------------------------------------------------------ */

/* The policy's state for a checkpoint (fls_policy_export); a non-finite loss or score in it, which
 * a resume would refuse, is said. */
static fl_status policy_export(const fls_core *c, uint8_t **buf, size_t *len)
{
    const fl_status st = fls_policy_export(c->pol, buf, len);
    if (st == FL_ERR_NUMERIC)
        fl_log(&c->cfg.log, FL_LOG_ERROR,
               "checkpoint of round %llu not made: the policy state holds a non-finite loss or "
               "score, which a resume would refuse",
               (unsigned long long)c->round);
    return st;
}

/* A checkpoint of the engine as it stands into *out: its arrays (the model, the optimizer's state,
 * the configuration text) copied (own) or borrowed from the engine; the policy's bytes are always
 * its own. On error *out is empty and holds nothing. */
static fl_status ckpt_fill(const fls_core *c, fls_ckpt *out, int own)
{
    memset(out, 0, sizeof *out);
    if (c->open || c->eval_pending)
        return FL_ERR_STATE;
    fl_status st = FL_OK;
    memcpy(out->config_digest, c->digest, FL_SHA256_LEN);
    if (c->canon_len <= FLS_CKPT_CONFIG_MAX) { /* always: the text is smaller than the cap */
        if (own && !(out->config = malloc(c->canon_len)))
            goto nomem;
        if (own)
            memcpy(out->config, c->canon, c->canon_len);
        else
            out->config = (char *)c->canon; /* the writer only reads */
        out->config_len = c->canon_len;
    }
    out->round = c->round;
    out->model_version = c->model_version;
    snprintf(out->arch, sizeof out->arch, "%.*s", (int)sizeof out->arch - 1, c->arch.spec); /* full: <= 63 */
    const size_t n = c->arch.n_params;
    if (own && !(out->params = malloc(n * sizeof *out->params)))
        goto nomem;
    if (own)
        memcpy(out->params, c->params, n * sizeof *out->params);
    else
        out->params = c->params;
    out->n_params = n;
    out->opt_kind = (uint32_t)c->cfg.opt.kind;
    out->opt_steps = fls_opt_steps(c->opt);
    const size_t ns = fls_opt_n_state(c->opt);
    if (ns > FLS_CKPT_MAX_OPT) {
        st = FL_ERR_INTERNAL;
        goto fail;
    }
    for (size_t i = 0; i < ns; i++) {
        const char *name = NULL;
        size_t len = 0;
        /* fls_opt_state takes a non-const opt (it lets restore write through); we only read. */
        float *x = fls_opt_state((fls_opt *)c->opt, i, &name, &len);
        if (!x || !name) {
            st = FL_ERR_INTERNAL;
            goto fail;
        }
        snprintf(out->opt[i].name, sizeof out->opt[i].name, "%s", name);
        if (own && !(out->opt[i].data = malloc((len ? len : 1) * sizeof(float))))
            goto nomem;
        if (own)
            memcpy(out->opt[i].data, x, len * sizeof(float));
        else
            out->opt[i].data = x;
        out->opt[i].n = len;
        out->n_opt = i + 1;
    }
    if ((st = policy_export(c, &out->policy, &out->policy_len)) != FL_OK)
        goto fail;
    /* Reached in this run, or in the resumed checkpoint's with no round trained since: a
     * checkpoint written before the first tick of a resume (fl_server's at start-up, kept when
     * the run ends at that tick) must keep saying so, or the next resume would train on. */
    out->target_reached = c->reached_acc >= 0.0;
    out->target_acc = c->reached_acc >= 0.0 ? c->reached_acc : 0.0;
    out->run_id = c->run_id;
    return FL_OK;
nomem:
    st = FL_ERR_NOMEM;
fail:
    if (own)
        fls_ckpt_clear(out);
    else
        fls_core_checkpoint_view_free(out);
    return st;
}

fl_status fls_core_checkpoint(const fls_core *c, fls_ckpt *out)
{
    if (!c || !out)
        return FL_ERR_INVALID_ARG;
    return ckpt_fill(c, out, 1);
}

fl_status fls_core_checkpoint_view(const fls_core *c, fls_ckpt *out)
{
    if (!c || !out)
        return FL_ERR_INVALID_ARG;
    return ckpt_fill(c, out, 0);
}

void fls_core_checkpoint_view_free(fls_ckpt *v)
{
    if (!v)
        return;
    free(v->policy);
    memset(v, 0, sizeof *v);
}

/* 1 when k holds arrays of this engine's sizes and its configuration text: a checkpoint that
 * fls_core_checkpoint made of it, which fls_core_checkpoint_update can refill in place. */
static int ckpt_fits(const fls_core *c, const fls_ckpt *k)
{
    const size_t ns = fls_opt_n_state(c->opt);
    const size_t text = c->canon_len <= FLS_CKPT_CONFIG_MAX ? c->canon_len : 0; /* as made */
    if (!k->params || k->n_params != c->arch.n_params || k->n_opt != ns ||
        k->config_len != text || (text && memcmp(k->config, c->canon, text) != 0))
        return 0;
    for (size_t i = 0; i < ns; i++) {
        const char *name = NULL;
        size_t len = 0;
        if (!fls_opt_state((fls_opt *)c->opt, i, &name, &len) || !name || !k->opt[i].data ||
            k->opt[i].n != len || strcmp(k->opt[i].name, name) != 0)
            return 0;
    }
    return 1;
}

fl_status fls_core_checkpoint_update(const fls_core *c, fls_ckpt *k)
{
    if (!c || !k)
        return FL_ERR_INVALID_ARG;
    if (c->open || c->eval_pending)
        return FL_ERR_STATE;
    if (!ckpt_fits(c, k)) {
        fls_ckpt t;
        const fl_status st = fls_core_checkpoint(c, &t);
        if (st != FL_OK)
            return st;
        fls_ckpt_clear(k);
        *k = t;
        return FL_OK;
    }
    /* The policy's bytes first: the one step that can fail, before k is touched. */
    uint8_t *pol = NULL;
    size_t pol_len = 0;
    const fl_status pst = policy_export(c, &pol, &pol_len);
    if (pst != FL_OK)
        return pst;
    free(k->policy);
    k->policy = pol;
    k->policy_len = pol_len;
    memcpy(k->config_digest, c->digest, FL_SHA256_LEN);
    k->round = c->round;
    k->model_version = c->model_version;
    snprintf(k->arch, sizeof k->arch, "%.*s", (int)sizeof k->arch - 1, c->arch.spec);
    k->opt_kind = (uint32_t)c->cfg.opt.kind;
    memcpy(k->params, c->params, k->n_params * sizeof *k->params);
    k->opt_steps = fls_opt_steps(c->opt);
    for (size_t i = 0; i < k->n_opt; i++) {
        size_t len = 0;
        const float *x = fls_opt_state((fls_opt *)c->opt, i, NULL, &len);
        memcpy(k->opt[i].data, x, len * sizeof(float));
    }
    k->target_reached = c->reached_acc >= 0.0; /* as fls_core_checkpoint says them */
    k->target_acc = c->reached_acc >= 0.0 ? c->reached_acc : 0.0;
    k->run_id = c->run_id;
    memset(k->sha256, 0, sizeof k->sha256);
    return FL_OK;
}

fl_status fls_core_checkpoint_write(const fls_core *c, const char *path)
{
    if (!c || !path)
        return FL_ERR_INVALID_ARG;
    /* written from the engine's own arrays: a copy of the state was made first, and held
     * beside it while the file was written */
    fls_ckpt ck;
    fl_status st = fls_core_checkpoint_view(c, &ck);
    if (st != FL_OK)
        return st;
    st = fls_ckpt_write(path, &ck, &c->cfg.log);
    fls_core_checkpoint_view_free(&ck);
    return st;
}

/* The run of a checkpoint that names none (written before runs had ids): the first 8 bytes of
 * the file's SHA-256, as the parser found it. Every resume of that file then names the same run,
 * until a checkpoint of this build (which holds the id) replaces it; a fresh id per resume would
 * make the clients drop their residuals at the second one. 0 for a checkpoint made in memory. */
static uint64_t unnamed_run_id(const fls_ckpt *k)
{
    uint64_t v = 0;
    uint8_t any = 0;
    for (int i = 0; i < FL_SHA256_LEN; i++)
        any |= k->sha256[i];
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)k->sha256[i] << (8 * i);
    return !any ? 0 : v ? v : 1; /* 0 is "not told" on the wire */
}

fl_status fls_core_restore(fls_core *c, const fls_ckpt *k)
{
    if (!c || !k)
        return FL_ERR_INVALID_ARG;
    if (c->open || c->eval_pending)
        return FL_ERR_STATE;
    const fl_logger *lg = &c->cfg.log;
    if (fls_ckpt_check_digest(k, c->digest) != FL_OK &&
        fls_config_canon_same_effect(k->config, k->config_len, c->canon, c->canon_len)) {
        /* Only settings without effect here changed (those fl_server warns about at start, such
         * as policy.keep under policy.kind full): the run is the same, so it resumes. */
        char diff[1024];
        fls_config_canon_diff(k->config, k->config_len, c->canon, c->canon_len, diff, sizeof diff);
        fl_log(lg, FL_LOG_WARN, "checkpoint: written with other values of settings that have no "
               "effect under this configuration (the checkpoint's value -> this one's): %s; "
               "resuming", diff[0] ? diff : "(none named)");
    } else if (fls_ckpt_check_digest(k, c->digest) != FL_OK) {
        /* Say what changed when the file holds its configuration's text; else (a file of an
         * older build: only the digest) what could have. */
        char diff[1024], inert[1024];
        const size_t nd = fls_config_canon_diff_effect(k->config, k->config_len, c->canon,
                                                       c->canon_len, 0, diff, sizeof diff);
        /* those without effect here need not be set back: said apart, after */
        const size_t ni = fls_config_canon_diff_effect(k->config, k->config_len, c->canon,
                                                       c->canon_len, 1, inert, sizeof inert);
        if (nd)
            fl_log(lg, FL_LOG_ERROR, "checkpoint: written by another configuration: %zu setting%s "
                   "changed since (the checkpoint's value -> this one's): %s. Set %s back to "
                   "resume, or start a fresh run%s%s%s", nd, nd == 1 ? "" : "s", diff,
                   nd == 1 ? "it" : "them",
                   ni ? " (also changed, without effect under this configuration, so they may "
                        "stay: " : "", ni ? inert : "", ni ? ")" : "");
        else
            fl_log(lg, FL_LOG_ERROR, "checkpoint: written by another configuration (digest "
                   "differs; the file holds only the digest, not the settings): one of model.arch, "
                   "run.seed, policy.*, optimizer.*, aggregation.*, round.clients, "
                   "round.overcommit, train.*, codec.down, codec.up, codec.chunk_elems changed "
                   "since the checkpoint was written");
        return FL_ERR_CHECKPOINT_MISMATCH;
    }
    if (strcmp(k->arch, c->arch.spec) != 0 || k->n_params != c->arch.n_params ||
        k->opt_kind != (uint32_t)c->cfg.opt.kind || k->n_opt != fls_opt_n_state(c->opt)) {
        fl_log(lg, FL_LOG_ERROR, "checkpoint: architecture or optimizer state does not match");
        return FL_ERR_CHECKPOINT_MISMATCH;
    }
    for (size_t i = 0; i < k->n_opt; i++) {
        const char *name = NULL;
        size_t len = 0;
        if (!fls_opt_state(c->opt, i, &name, &len) || strcmp(name, k->opt[i].name) != 0 ||
            len != k->opt[i].n) {
            fl_log(lg, FL_LOG_ERROR, "checkpoint: optimizer array %zu does not match", i);
            return FL_ERR_CHECKPOINT_MISMATCH;
        }
    }
    /* The adaptive optimizers' v is a sum of squares: a negative one (a file made by hand) would
     * make the first step's square root NaN. */
    for (size_t i = 0; i < k->n_opt; i++)
        if (!strcmp(k->opt[i].name, "v"))
            for (size_t j = 0; j < k->opt[i].n; j++)
                if (!(k->opt[i].data[j] >= 0.0f)) {
                    fl_log(lg, FL_LOG_ERROR, "checkpoint: optimizer state v[%zu] is negative "
                           "(%g): a sum of squares cannot be", j, (double)k->opt[i].data[j]);
                    return FL_ERR_CHECKPOINT_FORMAT;
                }
    /* A host without ids (0: the simulator) keeps none. */
    const uint64_t run_id = k->run_id ? k->run_id : c->run_id ? unnamed_run_id(k) : 0;
    /* The only step that can still fail; it leaves the policy unchanged on error. */
    fl_status st = fls_policy_import(c->pol, k->policy, k->policy_len);
    if (st != FL_OK) {
        fl_log(lg, FL_LOG_ERROR, "checkpoint: policy state refused: %s", fl_strerror(st));
        return st;
    }
    memcpy(c->params, k->params, k->n_params * sizeof *c->params);
    for (size_t i = 0; i < k->n_opt; i++) {
        size_t len = 0;
        float *x = fls_opt_state(c->opt, i, NULL, &len);
        memcpy(x, k->opt[i].data, len * sizeof *x);
    }
    fls_opt_set_steps(c->opt, k->opt_steps);
    c->round = k->round;
    c->model_version = k->model_version;
    c->done = c->target_reached = 0;
    c->reached_acc = k->target_reached ? k->target_acc : -1.0;
    if (run_id) /* the run goes on: its clients keep their per-run state */
        c->run_id = run_id;
    return FL_OK;
}

fl_status fls_core_restore_file(fls_core *c, const char *path)
{
    if (!c || !path)
        return FL_ERR_INVALID_ARG;
    fls_ckpt k;
    char err[200];
    fl_status st = fls_ckpt_read(path, 0, &k, err, sizeof err);
    if (st != FL_OK) {
        fl_log(&c->cfg.log, FL_LOG_ERROR, "checkpoint %s: %s (%s)", path, fl_strerror(st), err);
        return st;
    }
    st = fls_core_restore(c, &k);
    fls_ckpt_clear(&k);
    return st;
}
