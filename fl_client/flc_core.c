#include "flc_core.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_mem.h"
#include "flm_optim.h"
#include "flz.h"

typedef struct up_chunk {
    uint32_t tensor, index, count;
    uint64_t offset;
    size_t pay_off, pay_len;
} up_chunk;

struct flc_core {
    char *id;
    uint32_t key;             /* this Task's: Task.client_key when it names one, else own_key */
    uint32_t own_key;         /* cfg.client_key */
    uint64_t seed;
    const flm_samples *data;
    flc_core_train_fn train_fn;
    void *train_user;
    int wraps_builtin;                    /* flc_core_set_trainer_wraps_builtin */
    int own_pages;                        /* flc_core_set_own_pages: pay from fl_big_alloc */
    const atomic_int *cancel; /* cfg.cancel */
    fl_logger log;
    size_t max_params;
    uint64_t mem_limit;       /* flc_core_set_memory_limit; 0: none */
    char task_why[200];       /* why the last Task was refused ("" if it was not, or no reason) */
    flz_ctx *z;

    /* the current task */
    int have_task, ready, trained, taken; /* taken: the payload was handed out */
    int failed;                           /* this task's training failed: not trained again */
    int w_lazy;                           /* w not filled yet: its values are ref's (the
                                           * decoded w0 or borrowed weights; the built-in
                                           * trainer starts from ref) */
    uint64_t cut_said;                    /* the max_samples whose cut of the local samples was
                                           * last logged (said once, not every round) */
    uint32_t *cut_idx;                    /* the rows of that cut (evenly spaced), cut_cap */
    size_t cut_cap;
    int builtin_ran;                      /* the plug-in of this training called the built-in
                                           * trainer (the simulator's timing wrapper): its
                                           * failure is the built-in's, worded as such */
    uint64_t round, model_version;
    uint64_t task_run_id;     /* the Task's run id, echoed in the Update */
    flm_arch full;
    char full_text[FLM_ARCH_SPEC_MAX]; /* the Task's arch text full was parsed from; "": none */
    flm_keepset keep;
    flm_submodel *sm;
    /* The last task's submodel, kept for a next Task of the same architecture and keep-set (the
     * simulator's clients of a round, rebound one after the other), whose maps it would build
     * again: that and the architecture's parse (skipped for the same text) took 3 of the 8 us a
     * simulated mlp client spent before its training (bench_sim, thread CPU). */
    flm_submodel *sm_kept;
    flp_train_config train;
    flz_spec up;
    uint32_t n_tensors;
    flp_tensor_header hdr[FLM_MAX_TENSORS];
    flp_msg_tracker *trk;
    float *w, *w0;
    size_t w_cap, w0_cap;
    const float *ref;         /* the weights as received: w0, or the host's (set_weights_borrowed) */
    int got_chunk;            /* a weight chunk of the current task was accepted */

    /* the training runtime, kept while the architecture and batch size stay the same */
    flm_model *model;
    char model_spec[FLM_ARCH_DESC_MAX];
    size_t model_params;
    int model_B;

    /* the data's shape as its owner declared it (flc_core_set_row_len; 0: not checked) and the
     * last model found to fit it (in_len, classes, vocabulary) */
    size_t row_len;
    size_t fit_in;
    int fit_classes, fit_vocab, fit_ok;
    char unfit[240];          /* why the samples do not fit the task's model */

    /* the encoded update */
    uint8_t *pay;
    size_t pay_cap, pay_len;
    up_chunk *chunks;
    uint32_t n_chunks;
    size_t chunks_cap;
    flp_metric metrics[1];
    char fail[768];           /* why the last flc_core_train failed; "" after a success
                               * (room for the codec's reason, flz_ctx_error, up to 256) */

    /* error feedback (top-k pipelines), global coordinates */
    float *resid;
    size_t resid_n;
    float *tmp, *dec;
    size_t tmp_cap;
    uint64_t run_id;          /* of the last Task that named one; 0: none yet */
    /* flc_core_keep_rewind_point: the residual as it was before the training of snap_round */
    int rewind, snap_valid;
    float *snap;
    size_t snap_n;
    uint64_t snap_round;

    flc_core_stats stats;
};

static void drop_task(flc_core *c);

fl_status flc_core_new(const flc_core_config *cfg, flc_core **out)
{
    *out = NULL;
    if (!cfg || !cfg->client_id || !cfg->client_id[0] || (!cfg->train && !cfg->data))
        return FL_ERR_INVALID_ARG;
    flc_core *c = calloc(1, sizeof *c);
    if (!c)
        return FL_ERR_NOMEM;
    c->log = cfg->log;
    flc_core_set_max_params(c, 0);
    c->round = UINT64_MAX;
    /* the codec context (zstd's, the codec's scratch) is made by the first Task (on_task) */
    if (flc_core_rebind(c, cfg) != FL_OK) {
        flc_core_free(c);
        return FL_ERR_NOMEM;
    }
    *out = c;
    return FL_OK;
}

fl_status flc_core_rebind(flc_core *c, const flc_core_config *cfg)
{
    if (!cfg || !cfg->client_id || !cfg->client_id[0] || (!cfg->train && !cfg->data))
        return FL_ERR_INVALID_ARG;
    char *id = strdup(cfg->client_id);
    if (!id)
        return FL_ERR_NOMEM;
    drop_task(c);
    free(c->id);
    c->id = id;
    c->key = c->own_key = cfg->client_key;
    c->seed = cfg->seed;
    c->data = cfg->data;
    c->train_fn = cfg->train;
    c->train_user = cfg->train_user;
    c->cancel = cfg->cancel;
    c->log = cfg->log;
    c->snap_valid = 0; /* another client's residual is swapped in by the host */
    c->run_id = 0;
    c->fit_ok = 0; /* other data: checked again (with the row width kept) */
    c->cut_said = 0;
    memset(&c->stats, 0, sizeof c->stats);
    return FL_OK;
}

void flc_core_keep_rewind_point(flc_core *c, int on)
{
    c->rewind = on != 0;
    c->snap_valid = 0;
    if (!on) {
        free(c->snap);
        c->snap = NULL;
        c->snap_n = 0;
    }
}

/* A Task for a round this core has already trained with error feedback: the server went back
 * (resumed from its checkpoint). The residual goes back to its state before that round when the
 * snapshot holds it; an older round cannot be rewound. */
static void rewind_residual(flc_core *c, uint64_t round)
{
    if (!c->snap_valid || round > c->snap_round)
        return;
    if (round == c->snap_round && c->snap_n == c->resid_n && c->resid) {
        memcpy(c->resid, c->snap, c->snap_n * sizeof(float));
        fl_log(&c->log, FL_LOG_INFO, "round %llu again (the server went back to its checkpoint): "
               "error-feedback residual restored to its state before that round",
               (unsigned long long)round);
    } else {
        fl_log(&c->log, FL_LOG_WARN, "round %llu after round %llu: the server went back more than "
               "one round (resumed from an older checkpoint, or started a new run); the "
               "error-feedback residual cannot be rewound that far and goes on from its current "
               "state", (unsigned long long)round, (unsigned long long)c->snap_round);
    }
    c->snap_valid = 0;
}

void flc_core_set_trainer_wraps_builtin(flc_core *c, int on)
{
    c->wraps_builtin = on != 0;
}

void flc_core_set_max_params(flc_core *c, size_t n)
{
    c->max_params = n ? n : (size_t)1 << 28;
}

uint64_t flc_core_memory_need(size_t sub_params, size_t full_params, int residual)
{
    return flm_train_memory_need(sub_params, full_params, residual);
}

void flc_core_set_memory_limit(flc_core *c, uint64_t bytes)
{
    c->mem_limit = bytes;
}

const char *flc_core_task_error(const flc_core *c)
{
    return c->task_why;
}

/* The encoded update's buffer, from fl_big_alloc or malloc (flc_core_set_own_pages). */
static void pay_free(flc_core *c)
{
    if (c->own_pages)
        fl_big_free(c->pay);
    else
        free(c->pay);
    c->pay = NULL;
    c->pay_cap = 0;
}

void flc_core_set_own_pages(flc_core *c, int on)
{
    pay_free(c); /* allocated the other way */
    c->pay_len = 0;
    c->n_chunks = 0;
    c->own_pages = on != 0;
}

static void drop_task(flc_core *c)
{
    if (c->sm) {
        flm_submodel_free(c->sm_kept);
        c->sm_kept = c->sm;
        c->sm = NULL;
    }
    flm_keepset_free(&c->keep);
    flp_msg_tracker_free(c->trk);
    c->trk = NULL;
    c->have_task = c->ready = c->trained = c->taken = c->failed = 0;
    c->w_lazy = 0;
    c->ref = NULL;
    c->got_chunk = 0;
    c->n_chunks = 0;
    c->pay_len = 0;
    c->round = UINT64_MAX;
}

void flc_core_free(flc_core *c)
{
    if (!c)
        return;
    flc_core_release(c); /* a round's buffers; then what release keeps between rounds */
    free(c->id);
    free(c->resid);
    free(c->snap);
    free(c->cut_idx);
    free(c);
}

int flc_core_busy(const flc_core *c)
{
    return c->have_task && !c->trained && !c->failed;
}

void flc_core_release(flc_core *c)
{
    drop_task(c);
    flm_submodel_free(c->sm_kept);
    c->sm_kept = NULL;
    flm_model_free(c->model);
    c->model = NULL;
    c->model_spec[0] = '\0';
    c->model_params = 0;
    c->model_B = 0;
    fl_big_free(c->w);
    fl_big_free(c->w0);
    pay_free(c);
    free(c->chunks);
    free(c->tmp);
    free(c->dec);
    c->w = c->w0 = c->tmp = c->dec = NULL;
    c->chunks = NULL;
    c->w_cap = c->w0_cap = c->chunks_cap = c->tmp_cap = 0;
    /* its scratch is sized by the last task's chunks, and zstd's contexts by its codec */
    flz_ctx_free(c->z);
    c->z = NULL;
}

/* A Task of another run than the last one (both named): the residual belongs to that run. A
 * new run starts from zero, as a client that never trained would. */
static void new_run(flc_core *c, uint64_t run_id)
{
    if (!run_id)
        return;
    if (c->run_id && run_id != c->run_id) {
        if (c->resid && c->resid_n) {
            memset(c->resid, 0, c->resid_n * sizeof(float));
            fl_log(&c->log, FL_LOG_INFO, "the server started a new run (%016llx, was %016llx): "
                   "error-feedback residual reset", (unsigned long long)run_id,
                   (unsigned long long)c->run_id);
        }
        c->snap_valid = 0;
    }
    c->run_id = run_id;
}

/* Refuses the Task of `round` with st: why goes to the log and to flc_core_task_error. */
__attribute__((format(printf, 4, 5)))
static fl_status refuse_task(flc_core *c, uint64_t round, fl_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->task_why, sizeof c->task_why, fmt, ap);
    va_end(ap);
    fl_log(&c->log, FL_LOG_ERROR, "task for round %llu: %s", (unsigned long long)round,
           c->task_why);
    drop_task(c);
    return st;
}

static fl_status on_task(flc_core *c, const flp_msg *m)
{
    drop_task(c);
    c->task_why[0] = '\0';
    /* the codec context: made at the first Task, and again after flc_core_release */
    if (!c->z && flz_ctx_new(&c->log, &c->z) != FL_OK)
        return refuse_task(c, m->round, FL_ERR_NOMEM, "out of memory for the codec's context");
    new_run(c, m->task.run_id);
    /* A server that gave this id another key (its derived one collides with another id's) says
     * so in every Task; the codec streams and the batch order hang on the key it knows. */
    c->key = m->task.client_key ? m->task.client_key : c->own_key;
    if (c->rewind)
        rewind_residual(c, m->round);
    const flp_task *t = &m->task;
    char err[160];
    fl_status st = FL_OK;
    if (!t->arch || !c->full_text[0] || strcmp(t->arch, c->full_text) != 0) {
        c->full_text[0] = '\0';
        if ((st = flm_arch_parse(t->arch, &c->full, err, sizeof err)) != FL_OK)
            return refuse_task(c, m->round, st, "%s", err);
        /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): parsed, so not NULL */
        if (strlen(t->arch) < sizeof c->full_text)
            strcpy(c->full_text, t->arch);
    }
    if (c->full.n_params > c->max_params)
        return refuse_task(c, m->round, FL_ERR_MODEL_SPEC, "%s has %zu parameters, above this "
                           "client's limit of %zu", c->full.spec, c->full.n_params,
                           c->max_params);
    if ((int)t->n_layers != c->full.n_drop)
        return refuse_task(c, m->round, FL_ERR_KEEPSET, "its keep-set has %u layers, %s drops %d",
                           t->n_layers, c->full.spec, c->full.n_drop);
    int counts[FLM_MAX_LAYERS];
    for (uint32_t d = 0; d < t->n_layers; d++) {
        if ((int)t->layers[d].full_units != c->full.drop_units[d])
            return refuse_task(c, m->round, FL_ERR_KEEPSET, "its keep-set gives droppable layer "
                               "%u %u units in the full model, %s has %d", d,
                               t->layers[d].full_units, c->full.spec, c->full.drop_units[d]);
        counts[d] = (int)t->layers[d].n_units;
    }
    /* Every refusal is said, with what is wrong: the host tells the server and logs no more
     * than that (libflclient: "told the server its task was refused here", at info). */
    if ((st = flm_keepset_alloc(&c->keep, &c->full, counts)) != FL_OK)
        return refuse_task(c, m->round, st, "its keep-set's unit counts do not fit %s: %s",
                           c->full.spec, fl_strerror(st));
    for (uint32_t d = 0; d < t->n_layers; d++)
        memcpy(c->keep.idx + c->keep.offset[d], t->layers[d].units,
               t->layers[d].n_units * sizeof(uint32_t));
    const flm_submodel *kept = c->sm_kept;
    if (kept && strcmp(flm_submodel_full_arch(kept)->spec, c->full.spec) == 0 &&
        flm_keepset_equal(&c->keep, flm_submodel_keepset(kept))) {
        c->sm = c->sm_kept; /* built from this very keep-set, validated then */
        c->sm_kept = NULL;
    } else {
        if ((st = flm_keepset_validate(&c->keep, &c->full)) != FL_OK)
            return refuse_task(c, m->round, st, "its keep-set's units do not fit %s: %s",
                               c->full.spec, fl_strerror(st));
        if ((st = flm_submodel_new(&c->full, &c->keep, &c->sm)) != FL_OK)
            return refuse_task(c, m->round, st, "its submodel of %s cannot be made: %s",
                               c->full.spec, fl_strerror(st));
    }
    flz_spec down;
    if ((st = flz_spec_parse(t->down_codec, &down, err, sizeof err)) != FL_OK ||
        (st = flz_spec_parse(t->up_codec, &c->up, err, sizeof err)) != FL_OK)
        return refuse_task(c, m->round, st, "codec: %s", err);
    const flm_arch *sub = flm_submodel_arch(c->sm);
    const uint64_t need = flc_core_memory_need(sub->n_params, c->full.n_params, c->up.topk > 0);
    if (c->mem_limit && need > c->mem_limit)
        return refuse_task(c, m->round, FL_ERR_MODEL_SPEC, "a %zu-parameter submodel of %s needs "
                           "about %llu bytes here, above this client's memory_bytes (%llu)",
                           sub->n_params, c->full.spec, (unsigned long long)need,
                           (unsigned long long)c->mem_limit);
    if ((int)t->n_tensors != sub->n_tensors)
        return refuse_task(c, m->round, FL_ERR_WIRE_SHAPE, "it lists %u tensors, its submodel "
                           "of %s has %d", t->n_tensors, c->full.spec, sub->n_tensors);
    for (int i = 0; i < sub->n_tensors; i++) {
        const flp_tensor_header *h = &t->tensors[i];
        if (strcmp(h->name, sub->tensors[i].name) != 0 || h->numel != sub->tensors[i].numel) {
            return refuse_task(c, m->round, FL_ERR_WIRE_SHAPE, "tensor %d is %s[%llu], the "
                               "submodel has %s[%zu]", i, h->name, (unsigned long long)h->numel,
                               sub->tensors[i].name, sub->tensors[i].numel);
        }
        c->hdr[i] = *h;
        c->hdr[i].name = sub->tensors[i].name; /* owned by the submodel, outlives the message */
    }
    c->n_tensors = t->n_tensors;
    if ((st = flp_msg_tracker_new(&c->trk, c->hdr, c->n_tensors, FLP_DIR_DOWN)) != FL_OK ||
        (st = fl_big_room(&c->w, &c->w_cap, sub->n_params, sizeof(float))) != FL_OK ||
        (st = fl_big_room(&c->w0, &c->w0_cap, sub->n_params, sizeof(float))) != FL_OK)
        return refuse_task(c, m->round, st, "its %zu-parameter submodel's buffers cannot be had: "
                           "%s", sub->n_params, fl_strerror(st));
    c->train = t->train;
    c->round = m->round;
    c->model_version = t->model_version;
    c->task_run_id = t->run_id;
    c->have_task = 1;
    c->ref = c->w0;
    /* The chunks decode into w0 only: the first step of the built-in trainer reads them there
     * and writes w (or train_encode copies them first for a plug-in trainer). */
    c->w_lazy = 1;
    c->got_chunk = 0;
    memset(&c->stats, 0, sizeof c->stats);
    c->stats.round = m->round;
    c->stats.sub_params = sub->n_params;
    return FL_OK;
}

static fl_status on_chunk(flc_core *c, const flp_msg *m)
{
    const flp_chunk *k = &m->chunk;
    if (k->dir != FLP_DIR_DOWN) {
        /* A chunk of an update: servers send weight chunks only (PROTOCOL.md, 2), and fedrop's
         * server refuses a weight chunk from a client so. Until 2026-12-07 it was taken as
         * nothing to do (FL_OK), and libflclient Acked it and counted it in bytes_down. The
         * task, if any, is left as it was. */
        fl_log(&c->log, FL_LOG_WARN, "round %llu: chunk refused: chunk.dir %d, a server sends "
               "weight chunks (dir %d) only", (unsigned long long)m->round, (int)k->dir,
               (int)FLP_DIR_DOWN);
        return FL_ERR_WIRE_FIELD;
    }
    if (!c->have_task || m->round != c->round || c->ready)
        return FL_ERR_STATE;
    char err[160];
    fl_status st = flp_msg_tracker_accept(c->trk, k, err, sizeof err);
    if (st != FL_OK) {
        fl_log(&c->log, FL_LOG_WARN, "round %llu: chunk refused: %s", (unsigned long long)m->round, err);
        return st;
    }
    c->got_chunk = 1;
    const flm_tensor *t = &flm_submodel_arch(c->sm)->tensors[k->tensor];
    /* Decoded into w0 (the weights as received) alone: w, trained in place, is filled from it
     * by the training's first step (w_lazy), not by a copy of each chunk here. */
    st = flz_decode(c->z, k->payload, k->payload_len, c->w0 + t->offset + k->offset, k->count);
    if (st != FL_OK) {
        /* The tracker counted this chunk: the task can never complete. */
        fl_log(&c->log, FL_LOG_ERROR, "round %llu: weight chunk %u/%u does not decode: %s",
               (unsigned long long)m->round, k->tensor, k->index, fl_strerror(st));
        drop_task(c);
        return st;
    }
    c->stats.bytes_down += k->payload_len;
    if (flp_msg_tracker_complete(c->trk))
        c->ready = 1;
    return FL_OK;
}

fl_status flc_core_on_message(flc_core *c, const flp_msg *m)
{
    switch (m->type) {
    case FLP_TASK:
        return on_task(c, m);
    case FLP_CHUNK:
        return on_chunk(c, m);
    default:
        return FL_OK;
    }
}

int flc_core_ready(const flc_core *c)
{
    return c->ready && !c->trained && !c->failed;
}

uint64_t flc_core_round(const flc_core *c)
{
    return c->round;
}

uint64_t flc_core_task_run_id(const flc_core *c)
{
    return c->task_run_id;
}

fl_status flc_core_set_row_len(flc_core *c, size_t row_len)
{
    if (!c)
        return FL_ERR_INVALID_ARG;
    c->row_len = row_len;
    c->fit_ok = 0;
    return FL_OK;
}

/* 1 if the core's samples fit model a: rows as wide as its input (floats, or tokens for a token
 * model), labels below its classes, tokens below its vocabulary. The server picks the model, so a
 * device whose rows are narrower than the model's input would otherwise be read past its end.
 * The verdict is kept for the next task of the same shape (the keep-set never changes inputs or
 * classes). 0 with the reason in c->unfit. */
static int data_fits(flc_core *c, const flm_arch *a)
{
    const flm_samples *d = c->data;
    const int tok = a->token_input;
    /* a is the full model: its spec has at most 63 characters (%.63s below) */
    const size_t in = tok ? (size_t)a->in_H : (size_t)a->in_C * a->in_H * a->in_W;
    const int vocab = tok ? a->layers[0].C : 0;
    if (c->fit_ok && c->fit_in == in && c->fit_classes == a->classes && c->fit_vocab == vocab)
        return 1;
    c->fit_ok = 0;
    if (tok ? !d->tokens : !d->x) {
        snprintf(c->unfit, sizeof c->unfit, "the server's model %.63s takes %s, the samples hold %s",
                 a->spec, tok ? "token ids" : "float inputs", tok ? "float inputs" : "token ids");
        return 0;
    }
    if (c->row_len != in) {
        snprintf(c->unfit, sizeof c->unfit, "the server's model %.63s takes %zu %s per sample, the "
                 "samples have %zu", a->spec, in, tok ? "tokens" : "floats", c->row_len);
        return 0;
    }
    for (size_t i = 0; i < d->n; i++) {
        const size_t r = d->index ? d->index[i] : i;
        if (d->labels[r] < 0 || d->labels[r] >= a->classes) {
            snprintf(c->unfit, sizeof c->unfit, "sample %zu has label %d; the server's model %.63s "
                     "has %d classes", r, (int)d->labels[r], a->spec, a->classes);
            return 0;
        }
        for (size_t t = 0; tok && t < in; t++) {
            const int32_t v = d->tokens[r * in + t];
            if (v < 0 || v >= vocab) {
                snprintf(c->unfit, sizeof c->unfit, "sample %zu has token %d; the server's model "
                         "%.63s has a vocabulary of %d", r, (int)v, a->spec, vocab);
                return 0;
            }
        }
    }
    c->fit_in = in;
    c->fit_classes = a->classes;
    c->fit_vocab = vocab;
    c->fit_ok = 1;
    return 1;
}

fl_status flc_core_builtin_train(flc_core *c, const flc_core_job *job, float *params,
                                 uint64_t *n_samples, double *loss)
{
    c->builtin_ran = 1;
    if (!c->data)
        return FL_ERR_INVALID_ARG;
    if (c->row_len && !data_fits(c, job->full))
        return FL_ERR_DATASET_FORMAT;
    if (job->train->epochs > INT_MAX) { /* the wire allows any; fedrop's server sends <= 100,000 */
        fl_log(&c->log, FL_LOG_WARN, "the task asks for %u local epochs, more than the built-in "
               "trainer runs (%d)", (unsigned)job->train->epochs, INT_MAX);
        return FL_ERR_INVALID_ARG;
    }
    flm_samples view = *c->data;
    if (job->train->max_samples && view.n > job->train->max_samples) {
        /* Evenly spaced rows, not the first ones: a local set in label order (a Dirichlet or
         * shards partition deals each client its rows sorted by label) cut to its first rows
         * trained on its first classes only (3 clients of dirichlet:0.5 at max_samples 300 stayed
         * at 10.7% test accuracy while their loss fell, until 2026-12-07). Row i of the cut is
         * row floor(i n / m) of the view: deterministic, and the first rows when m = n. */
        const size_t m = (size_t)job->train->max_samples;
        /* rows are uint32_t (flm_samples.index): a view of more rows than that has no index,
         * and is cut to its first m */
        const int spaced = view.n <= UINT32_MAX;
        if (spaced && m > c->cut_cap) {
            uint32_t *p = realloc(c->cut_idx, m * sizeof *p);
            if (!p)
                return FL_ERR_NOMEM;
            c->cut_idx = p;
            c->cut_cap = m;
        }
        for (size_t i = 0; spaced && i < m; i++) {
            const size_t r = (size_t)((uint64_t)i * view.n / m); /* i n < 2^64: n <= 2^32 - 1 */
            c->cut_idx[i] = view.index ? view.index[r] : (uint32_t)r;
        }
        if (c->cut_said != job->train->max_samples) {
            c->cut_said = job->train->max_samples;
            fl_log(&c->log, FL_LOG_INFO, "training on %llu of the %zu local samples, evenly spaced: "
                   "the task's max_samples (the most one update may count)",
                   (unsigned long long)job->train->max_samples, view.n);
        }
        if (spaced)
            view.index = c->cut_idx;
        view.n = m;
    }
    /* A batch never holds more than the local samples: the runtime's activations are sized for
     * no more (a server's batch of 100,000 on 2,000 samples cost 386 MB instead of 20 MB, none
     * of it in the memory_bytes estimate). The same batches, the same bits. */
    const int B = view.n && view.n < (size_t)job->train->batch_size ? (int)view.n
                                                                    : (int)job->train->batch_size;
    if (!c->model || c->model_B != B || strcmp(c->model_spec, job->sub->spec) != 0 ||
        c->model_params != job->sub->n_params) {
        flm_model_free(c->model);
        c->model = NULL;
        fl_status st = flm_model_new(job->sub, B, &c->model);
        if (st != FL_OK)
            return st;
        c->model_B = B;
        c->model_params = job->sub->n_params;
        snprintf(c->model_spec, sizeof c->model_spec, "%s", job->sub->spec);
    }
    const flm_sgd o = {job->train->lr, job->train->momentum, job->train->weight_decay,
                       job->train->prox_mu};
    fl_rng order = fl_rng_stream(job->seed, (uint32_t)job->round, c->key, FL_RNG_BATCH);
    *n_samples = view.n;
    /* Working weights not filled yet (borrowed ones): the first step reads the received weights
     * and writes the working ones, instead of a copy first. */
    const float *init = params;
    if (params == c->w && c->w_lazy) {
        init = c->ref;
        c->w_lazy = 0;
    }
    return flm_train_local_from(c->model, params, init,
                                job->train->prox_mu > 0 ? job->w_global : NULL, &view,
                                (int)job->train->epochs, &o, &order, loss, c->cancel);
}

/* Error feedback: gathers / scatters the global residual over one chunk's runs. */
typedef struct ef_ctx {
    float *resid;
    float *buf;
    size_t base; /* sub index of buf[0] */
    int put;     /* 0: buf += resid; 1: resid = buf */
} ef_ctx;

static void ef_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    ef_ctx *e = user;
    float *b = e->buf + (sub_index - e->base);
    float *r = e->resid + full_index;
    if (e->put)
        memcpy(r, b, len * sizeof(float));
    else
        for (size_t i = 0; i < len; i++)
            b[i] += r[i];
}

/* 1 if every a[i] - b[i] is finite (a branch-free pass the compiler vectorizes). */
static int diff_finite(const float *a, const float *b, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const float d = a[i] - b[i];
        uint32_t u;
        memcpy(&u, &d, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

static void diff(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] - b[i];
}

/* Trains and encodes; on failure, why[] says what went wrong in a few words. */
static fl_status train_encode(flc_core *c, char *why, size_t whycap)
{
    const flm_arch *sub = flm_submodel_arch(c->sm);
    const size_t n = sub->n_params;
    why[0] = '\0';
    const flc_core_job job = {c->round, &c->full, sub, &c->keep, &c->train, c->ref, c->seed,
                              why, whycap};
    uint64_t n_samples = 0;
    double loss = NAN;
    c->builtin_ran = 0;
    if (c->w_lazy && c->train_fn && !c->wraps_builtin) { /* a plug-in trains in a copy */
        memcpy(c->w, c->ref, n * sizeof(float));
        c->w_lazy = 0;
    }
    fl_status st = c->train_fn ? c->train_fn(c->train_user, &job, c->w, &n_samples, &loss)
                               : flc_core_builtin_train(c, &job, c->w, &n_samples, &loss);
    if (c->w_lazy) { /* the built-in trainer was not reached: the weights are the received ones */
        memcpy(c->w, c->ref, n * sizeof(float));
        c->w_lazy = 0;
    }
    if (st == FL_ERR_CANCELLED) {
        /* The built-in trainer returns it only for a stop; a plug-in may return it a moment
         * before the device calls flc_client_stop, or without one (flc.h: the round is then not
         * reported, and the server waits for its deadline). */
        if (c->train_fn && !c->builtin_ran && !(c->cancel && atomic_load(c->cancel)))
            snprintf(why, whycap, "the plug-in trainer cancelled local training "
                     "(FLC_ERR_CANCELLED, which flc.h keeps for a stop: the server is not told, "
                     "and waits for this round's deadline)");
        else
            snprintf(why, whycap, "local training stopped: cancelled (the client is stopping, "
                     "the session with the server its task came from is over, or its task's "
                     "deadline passed)");
        return st;
    }
    if (st != FL_OK) {
        /* A plug-in's status is the device's word, not fedrop's: FL_ERR_INTERNAL from it is no
         * "bug in fedrop", so its text is left out; FLC_ERR_DATASET is flc.h's "the local dataset
         * cannot be used", not a "malformed dataset file" (the device may have no file). */
        const int plugin = c->train_fn && !c->builtin_ran;
        if (why[0]) /* the trainer's own words (flc_client: a plug-in that broke flc.h's rules) */
            return st;
        if (plugin && st == FL_ERR_INTERNAL)
            snprintf(why, whycap, "the plug-in trainer failed with status %d", (int)st);
        else if (plugin && st == FL_ERR_DATASET_FORMAT)
            snprintf(why, whycap, "the plug-in trainer failed with status %d (the local dataset "
                     "cannot be used)", (int)st);
        else if (plugin)
            snprintf(why, whycap, "the plug-in trainer failed with status %d (%s)", (int)st,
                     fl_strerror(st));
        else if (st == FL_ERR_DATASET_FORMAT && c->row_len && !c->fit_ok)
            snprintf(why, whycap, "the local samples do not fit: %s", c->unfit);
        else
            snprintf(why, whycap, "local training failed: %s", fl_strerror(st));
        return st;
    }
    if (n_samples == 0) {
        snprintf(why, whycap, "the trainer reported 0 samples");
        return FL_ERR_NUMERIC;
    }
    /* The update's weight in the server's average may not exceed what the Task allowed: the
     * server would refuse it at its header (fls_core.h), after the client had sent it. */
    if (c->train.max_samples && n_samples > c->train.max_samples) {
        snprintf(why, whycap, "the trainer reported %llu samples, above the task's max_samples %llu",
                 (unsigned long long)n_samples, (unsigned long long)c->train.max_samples);
        return FL_ERR_NUMERIC;
    }
    /* nor above what this client told the server it holds (the Hello's dataset_size): the
     * server refuses that too (a trainer that counts a sample once per epoch, say) */
    if (c->data && c->data->n && n_samples > c->data->n) {
        snprintf(why, whycap, "the trainer reported %llu samples, above the %llu this client told "
                 "the server it holds (flc_samples.n): n_samples counts each sample once, however "
                 "many epochs", (unsigned long long)n_samples, (unsigned long long)c->data->n);
        return FL_ERR_NUMERIC;
    }
    if (!isfinite(loss)) {
        snprintf(why, whycap, "the trainer reported a non-finite loss (%g)", loss);
        return FL_ERR_NUMERIC;
    }
    /* fedrop's server refuses an Update whose loss is outside [0, FLP_LOSS_MAX] (losses are
     * cross-entropies) at its header, after the training: say so here, as a failed round the
     * server hears of at once, not as an update refused for a "field out of bounds". */
    if (loss < 0.0 || loss > FLP_LOSS_MAX) {
        snprintf(why, whycap, "the trainer reported a %s loss (%g): the server takes a loss in "
                 "[0, %g] (a cross-entropy)", loss < 0.0 ? "negative" : "too large", loss,
                 FLP_LOSS_MAX);
        return FL_ERR_NUMERIC;
    }
    const int ef = c->up.topk > 0;
    /* The delta w - w0 is formed chunk by chunk while encoding (no full-model pass). With error
     * feedback the residual changes chunk by chunk, so a non-finite delta is refused up front,
     * before any of it is touched; without, flz_encode refuses it (FL_ERR_NUMERIC). */
    if (ef && !diff_finite(c->w, c->ref, n)) {
        /* named as the codec names one on the other path: which tensor, which element */
        size_t at = 0;
        while (at < n && isfinite(c->w[at] - c->ref[at]))
            at++;
        int t = 0;
        while (t + 1 < sub->n_tensors && sub->tensors[t + 1].offset <= at)
            t++;
        snprintf(why, whycap, "training produced non-finite weights (%s, element %zu: the "
                 "difference %g - %g is not finite)", sub->tensors[t].name,
                 at - sub->tensors[t].offset, (double)c->w[at], (double)c->ref[at]);
        return FL_ERR_NUMERIC;
    }
    if (ef && c->resid_n != c->full.n_params) {
        free(c->resid);
        c->resid = calloc(c->full.n_params, sizeof(float));
        if (!c->resid)
            return FL_ERR_NOMEM;
        c->resid_n = c->full.n_params;
    }
    if (ef && c->rewind) { /* the rewind point: the residual before this round's training */
        if (c->snap_n != c->resid_n) {
            free(c->snap);
            c->snap_valid = 0;
            c->snap_n = 0;
            if (!(c->snap = malloc(c->resid_n * sizeof(float))))
                return FL_ERR_NOMEM;
            c->snap_n = c->resid_n;
        }
        memcpy(c->snap, c->resid, c->resid_n * sizeof(float));
        c->snap_round = c->round;
        c->snap_valid = 1;
    }
    /* Sizes: chunk records, the payload buffer (its bound, once), the delta scratch. */
    uint32_t total = 0;
    size_t pay_bound = 0, max_ce = 0;
    for (uint32_t t = 0; t < c->n_tensors; t++) {
        const flp_tensor_header *h = &c->hdr[t];
        total += h->n_chunks;
        const size_t b = flz_encode_bound(&c->up, h->chunk_elems);
        if (b == 0)
            return FL_ERR_CODEC_SPEC;
        pay_bound += (size_t)h->n_chunks * b;
        if (h->chunk_elems > max_ce)
            max_ce = h->chunk_elems;
    }
    if ((st = fl_grow(&c->chunks, &c->chunks_cap, total, sizeof(up_chunk), 1024)) != FL_OK ||
        (st = c->own_pages ? fl_big_room(&c->pay, &c->pay_cap, pay_bound, 1)
                           : fl_grow(&c->pay, &c->pay_cap, pay_bound, 1, 1024)) != FL_OK)
        return st;
    if (max_ce > c->tmp_cap || (ef && !c->dec)) {
        free(c->tmp);
        free(c->dec);
        const size_t ce = max_ce ? max_ce : 1; /* malloc(0) may be NULL: not out of memory */
        c->tmp = malloc(ce * sizeof(float));
        c->dec = ef ? malloc(ce * sizeof(float)) : NULL;
        if (!c->tmp || (ef && !c->dec)) {
            c->tmp_cap = 0;
            return FL_ERR_NOMEM;
        }
        c->tmp_cap = max_ce;
    }
    c->pay_len = 0;
    c->n_chunks = 0;
    uint64_t bytes = 0;
    for (uint32_t t = 0; t < c->n_tensors; t++) {
        const flp_tensor_header *h = &c->hdr[t];
        for (uint32_t i = 0; i < h->n_chunks; i++) {
            const uint64_t off = (uint64_t)i * h->chunk_elems;
            const uint32_t cnt = (uint32_t)(h->numel - off < h->chunk_elems ? h->numel - off
                                                                             : h->chunk_elems);
            const size_t sub_off = sub->tensors[t].offset + off;
            flz_params p = {0};
            p.seed = c->seed ^ (0x9E3779B97F4A7C15ull * (((uint64_t)t << 32) | i) + 0x51ED);
            p.round = (uint32_t)c->round;
            p.client = c->key;
            size_t len = 0;
            if (ef) {
                diff(c->tmp, c->w + sub_off, c->ref + sub_off, cnt);
                ef_ctx e = {c->resid, c->tmp, sub_off, 0};
                flm_submodel_runs(c->sm, sub_off, cnt, ef_run, &e);
                st = flz_encode(c->z, &c->up, &p, c->tmp, cnt, c->pay + c->pay_len,
                                c->pay_cap - c->pay_len, &len);
            } else { /* the delta w - w0 formed inside the encoder (one pass for float32) */
                st = flz_encode_diff(c->z, &c->up, &p, c->w + sub_off, c->ref + sub_off, cnt,
                                     c->pay + c->pay_len, c->pay_cap - c->pay_len, &len);
            }
            if (st == FL_ERR_NUMERIC) {
                /* The codec refuses a non-finite delta, and also a finite one its encoded form
                 * cannot carry (f16 ends at 65504; a rotation sums 2^b values before it scales
                 * them): "non-finite weights" sent a device looking for a NaN that was not
                 * there. With error feedback the delta was found finite above. */
                /* The codec's own reason (flz_ctx_error) names the value and the limit it
                 * passed; its element numbers count from the chunk's first element. */
                char spec[FLZ_SPEC_STRLEN];
                flz_spec_format(&c->up, spec, sizeof spec);
                const char *cw = flz_ctx_error(c->z);
                if (!ef && !diff_finite(c->w + sub_off, c->ref + sub_off, cnt))
                    snprintf(why, whycap, "training produced non-finite weights (%s, chunk %u, "
                             "its elements from %llu on: %s)", sub->tensors[t].name, i,
                             (unsigned long long)off, *cw ? cw : "not finite");
                else
                    snprintf(why, whycap, "the update of %s (trained minus received weights) is "
                             "finite but too large for the server's up codec %s: its encoded "
                             "form cannot carry it (chunk %u, its elements from %llu on: %s)",
                             sub->tensors[t].name, spec, i, (unsigned long long)off,
                             *cw ? cw : "no reason given");
            }
            if (st != FL_OK)
                return st;
            if (ef) {
                if ((st = flz_decode(c->z, c->pay + c->pay_len, len, c->dec, cnt)) != FL_OK)
                    return st;
                /* What the server will not see of this chunk, kept where its working weights
                 * were (read no more: its delta is formed) until every chunk has encoded. Stored
                 * into the residual chunk by chunk, an encoding that failed part way (a later
                 * chunk too large for the codec) left the earlier chunks' residual as if their
                 * payload had reached the server, which it never did: that mass was lost, unless
                 * the rewind point (off in fl_sim) put it back. */
                float *keep = c->w + sub_off;
                for (uint32_t j = 0; j < cnt; j++)
                    keep[j] = c->tmp[j] - c->dec[j];
            }
            c->chunks[c->n_chunks++] = (up_chunk){t, i, cnt, off, c->pay_len, len};
            c->pay_len += len;
            bytes += len;
        }
    }
    if (ef) { /* every chunk encoded: the residual of the submodel's coordinates, at once */
        ef_ctx e = {c->resid, c->w, 0, 1};
        flm_submodel_runs(c->sm, 0, n, ef_run, &e);
    }
    c->trained = 1;
    c->stats.n_samples = n_samples;
    c->stats.loss = loss;
    c->stats.bytes_up = bytes;
    c->stats.train_flops = 6.0 * flm_arch_forward_flops(sub) * (double)n_samples * c->train.epochs;
    c->metrics[0] = (flp_metric){"train_flops", c->stats.train_flops};
    return FL_OK;
}

fl_status flc_core_train(flc_core *c)
{
    c->fail[0] = '\0';
    if (!flc_core_ready(c))
        return FL_ERR_STATE;
    const fl_status st = train_encode(c, c->fail, sizeof c->fail);
    if (st == FL_OK) {
        c->fail[0] = '\0';
    } else {
        if (!c->fail[0]) /* the trainer was fine: encoding the update failed */
            snprintf(c->fail, sizeof c->fail, "encoding the update failed: %s", fl_strerror(st));
        /* Its weights were trained in place: a stray chunk of this task must not start a second
         * training from them (the server was told the round failed); the next task resets it. */
        c->failed = 1;
        /* The residual is as it was: train_encode stores it only once every chunk encoded. */
        /* A training that fails once the host cancelled it (cfg.cancel: libflclient sets it
         * when the client stops, the task's session is over, a newer Task replaced it or the
         * task's deadline passed) failed
         * with nothing left to use it: a trainer whose work was aborted under it often says so
         * by an error of its own. Not an error of the device's, then. */
        const int cut = c->cancel && atomic_load(c->cancel);
        if (st == FL_ERR_CANCELLED)
            fl_log(&c->log, FL_LOG_INFO, "round %llu: %s", (unsigned long long)c->round, c->fail);
        else
            fl_log(&c->log, cut ? FL_LOG_INFO : FL_LOG_ERROR, "round %llu: %s%s",
                   (unsigned long long)c->round, c->fail,
                   cut ? ", after the training was cancelled (the client is stopping, its session "
                         "with the server is over, a newer Task replaced it, or its task's "
                         "deadline passed): its result would not have been used"
                       : "");
    }
    return st;
}

fl_status flc_core_drop_update(flc_core *c)
{
    if (!c->trained || c->taken)
        return FL_ERR_STATE;
    if (c->up.topk > 0) {
        /* the rewind point was taken before this training's encoding changed the residual */
        if (!c->snap_valid || c->snap_round != c->round || !c->resid || c->snap_n != c->resid_n)
            return FL_ERR_STATE;
        memcpy(c->resid, c->snap, c->snap_n * sizeof(float));
    }
    /* as a training that failed: not trained again, no update to give */
    c->trained = 0;
    c->failed = 1;
    c->n_chunks = 0;
    c->pay_len = 0;
    return FL_OK;
}

const char *flc_core_train_error(const flc_core *c)
{
    return c->fail;
}

fl_status flc_core_take_payload(flc_core *c, uint8_t **pay, size_t *len)
{
    if (!pay || !len)
        return FL_ERR_INVALID_ARG;
    *pay = NULL;
    *len = 0;
    if (!c->trained || c->taken || !c->pay || c->own_pages)
        return FL_ERR_STATE;
    *pay = c->pay;
    *len = c->pay_len;
    c->pay = NULL;
    c->pay_cap = 0;
    c->pay_len = 0;
    c->taken = 1;
    return FL_OK;
}

fl_status flc_core_update(const flc_core *c, flp_msg *out)
{
    if (!c->trained)
        return FL_ERR_STATE;
    *out = flp_msg_header(FLP_UPDATE, c->round, c->id);
    out->update.model_version = c->model_version;
    out->update.n_tensors = c->n_tensors;
    out->update.tensors = c->hdr;
    out->update.n_samples = c->stats.n_samples;
    out->update.loss = c->stats.loss;
    out->update.n_metrics = 1;
    out->update.metrics = c->metrics;
    out->update.run_id = c->task_run_id;
    return FL_OK;
}

uint32_t flc_core_update_chunks(const flc_core *c)
{
    return c->trained && !c->taken ? c->n_chunks : 0;
}

fl_status flc_core_update_chunk(const flc_core *c, uint32_t i, flp_msg *out)
{
    if (!c->trained || c->taken)
        return FL_ERR_STATE;
    if (i >= c->n_chunks)
        return FL_ERR_INVALID_ARG;
    const up_chunk *k = &c->chunks[i];
    *out = flp_msg_header(FLP_CHUNK, c->round, c->id);
    out->chunk.dir = FLP_DIR_UP;
    out->chunk.tensor = k->tensor;
    out->chunk.index = k->index;
    out->chunk.offset = k->offset;
    out->chunk.count = k->count;
    out->chunk.payload = c->pay + k->pay_off;
    out->chunk.payload_len = k->pay_len;
    return FL_OK;
}

const flc_core_stats *flc_core_last_stats(const flc_core *c)
{
    return &c->stats;
}

const float *flc_core_weights(const flc_core *c)
{
    return c->ready ? c->ref : NULL;
}

fl_status flc_core_set_weights_borrowed(flc_core *c, const float *w_sub, uint64_t bytes_down)
{
    if (!c || !w_sub)
        return FL_ERR_INVALID_ARG;
    if (!c->have_task || c->ready || c->got_chunk)
        return FL_ERR_STATE;
    /* The working weights are filled by the first step of the built-in trainer (or copied before
     * a plug-in trainer runs): no copy here. */
    c->w_lazy = 1;
    c->ref = w_sub;
    c->stats.bytes_down = bytes_down;
    c->ready = 1;
    return FL_OK;
}

const flm_arch *flc_core_sub_arch(const flc_core *c)
{
    return c->sm ? flm_submodel_arch(c->sm) : NULL;
}

void flc_core_swap_residual(flc_core *c, float **resid, size_t *n)
{
    float *r = c->resid;
    const size_t rn = c->resid_n;
    c->resid = *resid;
    c->resid_n = *resid ? *n : 0;
    c->snap_valid = 0; /* the rewind point was the old residual's, not this one's */
    *resid = r;
    *n = r ? rn : 0;
}
