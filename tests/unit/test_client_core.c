/* Unit tests for the IO-free client core (fl_client/flc_core.h), and the two cores together:
 * a server core and several client cores exchanging real wire bytes (flp_encode / flp_decode) in
 * one process, training an mlp on synthetic data with AFD. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flc_core.h"
#include "flm_data.h"
#include "flm_model.h"
#include "fls_core.h"
#include "flz.h"

enum { K = 4, FEAT = 64, CLASSES = 4 };

/* Encodes and decodes m, as a transport would: what the receiver sees is what the wire carries. */
static flp_msg *wire(const flp_msg *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[FLP_ERRBUF];
    fl_status st = flp_encode_alloc(&buf, &len, m, NULL, err, sizeof err);
    if (st != FL_OK)
        fail_msg("encode %s: %s (%s)", flp_type_name(m->type), fl_strerror(st), err);
    flp_msg *out = NULL;
    st = flp_decode(&out, buf, len, NULL, err, sizeof err);
    free(buf);
    if (st != FL_OK)
        fail_msg("decode %s: %s (%s)", flp_type_name(m->type), fl_strerror(st), err);
    return out;
}

typedef struct fixture {
    flm_dataset *train, *test;
    uint32_t *idx[K];
    flm_samples views[K];
    flm_samples test_view;
    flc_core *clients[K];
    fls_core *server;
    flm_model *eval;
} fixture;

static void make_data(fixture *f)
{
    assert_int_equal(
        flm_dataset_synth_images(&f->train, 2000, 1, 8, 8, CLASSES, 0.35f, 7, FLM_SPLIT_TRAIN), FL_OK);
    assert_int_equal(flm_dataset_synth_images(&f->test, 400, 1, 8, 8, CLASSES, 0.35f, 7,
                                              FLM_SPLIT_HELDOUT), FL_OK);
    for (int k = 0; k < K; k++) {
        f->idx[k] = malloc(500 * sizeof(uint32_t));
        for (int i = 0; i < 500; i++)
            f->idx[k][i] = (uint32_t)(k * 500 + i); /* labels are i % CLASSES: balanced */
        f->views[k] = (flm_samples){f->train->x, NULL, f->train->y, f->idx[k], 500};
    }
    f->test_view = (flm_samples){f->test->x, NULL, f->test->y, NULL, f->test->N};
}

static void free_fixture(fixture *f)
{
    for (int k = 0; k < K; k++) {
        flc_core_free(f->clients[k]);
        free(f->idx[k]);
    }
    fls_core_free(f->server);
    flm_model_free(f->eval);
    flm_dataset_free(f->train);
    flm_dataset_free(f->test);
}

/* Delivers client k's task (Task + every weight chunk, through the wire) and trains it. */
static void deliver_task(fixture *f, uint32_t k)
{
    flp_msg task;
    assert_int_equal(fls_core_task(f->server, k, &task), FL_OK);
    flp_msg *m = wire(&task);
    assert_int_equal(flc_core_on_message(f->clients[k], m), FL_OK);
    const size_t cap = fls_core_task_chunk_bound(f->server);
    uint8_t *buf = malloc(cap);
    /* Chunks in reverse order: the client must not depend on arrival order. */
    for (int t = (int)m->task.n_tensors - 1; t >= 0; t--)
        for (int i = (int)m->task.tensors[t].n_chunks - 1; i >= 0; i--) {
            flp_msg cm = {.version = FLP_VERSION, .type = FLP_CHUNK, .round = task.round, .sender = ""};
            size_t len = 0;
            assert_int_equal(fls_core_task_chunk(f->server, k, (uint32_t)t, (uint32_t)i, buf, cap,
                                                 &len, &cm.chunk), FL_OK);
            flp_msg *cd = wire(&cm);
            assert_int_equal(flc_core_on_message(f->clients[k], cd), FL_OK);
            flp_msg_free(cd);
        }
    free(buf);
    flp_msg_free(m);
    assert_true(flc_core_ready(f->clients[k]));
}

static void upload(fixture *f, uint32_t k, double now)
{
    flp_msg up;
    assert_int_equal(flc_core_update(f->clients[k], &up), FL_OK);
    flp_msg *m = wire(&up);
    assert_int_equal(fls_core_on_message(f->server, k, m, now), FL_OK);
    flp_msg_free(m);
    const uint32_t n = flc_core_update_chunks(f->clients[k]);
    assert_true(n > 0);
    for (uint32_t i = 0; i < n; i++) {
        flp_msg cm;
        assert_int_equal(flc_core_update_chunk(f->clients[k], i, &cm), FL_OK);
        flp_msg *cd = wire(&cm);
        const fl_status st = fls_core_on_message(f->server, k, cd, now);
        /* The last chunks may arrive after quorum closed the round: refused as late, harmlessly. */
        assert_true(st == FL_OK || st == FL_ERR_ROUND_CLOSED);
        flp_msg_free(cd);
    }
}

static double run_rounds(fixture *f, fls_policy_kind policy, const char *up_codec, int rounds,
                         double *first_acc, double *last_acc, uint8_t digest[FL_SHA256_LEN])
{
    fls_config cfg = fls_config_default();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:%d-32-%d", FEAT, CLASSES);
    cfg.seed = 11;
    cfg.policy.kind = policy;
    cfg.policy.keep_p = 0.75;
    cfg.clients_per_round = K;
    cfg.overcommit = 1.0;
    cfg.max_rounds = (uint32_t)rounds;
    cfg.eval_every = 1;
    cfg.train.lr = 0.1f;
    cfg.train.batch_size = 10;
    cfg.train.epochs = 1;
    snprintf(cfg.up_codec, sizeof cfg.up_codec, "%s", up_codec);
    cfg.chunk_elems = 1000; /* several chunks per tensor */
    assert_int_equal(fls_core_new(&cfg, &f->server), FL_OK);
    assert_int_equal(flm_model_new(fls_core_arch(f->server), 100, &f->eval), FL_OK);
    for (uint32_t k = 0; k < K; k++) {
        char id[16];
        snprintf(id, sizeof id, "client-%u", k);
        const flc_core_config cc = {id, k, 1000 + k, &f->views[k], NULL, NULL, {0}, NULL};
        assert_int_equal(flc_core_new(&cc, &f->clients[k]), FL_OK);
        flp_msg hello = {.version = FLP_VERSION, .type = FLP_HELLO, .sender = id};
        hello.hello = (flp_hello){id, FLP_BACKEND_CPU, 1u << 30, 1e9, 500, 1, 1};
        flp_msg *h = wire(&hello);
        assert_int_equal(fls_core_on_message(f->server, k, h, 0.0), FL_OK);
        flp_msg_free(h);
    }
    double now = 0;
    int done = 0, ended = 0;
    *first_acc = NAN;
    while (!done) {
        assert_int_equal(fls_core_tick(f->server, now), FL_OK);
        fls_event ev;
        int any = 0;
        uint32_t tasks[K];
        int n_tasks = 0;
        while (fls_core_poll(f->server, &ev)) {
            any = 1;
            if (ev.kind == FLS_EV_TASK) {
                tasks[n_tasks++] = ev.client;
            } else if (ev.kind == FLS_EV_EVALUATE) {
                double loss, acc;
                assert_int_equal(flm_model_evaluate(f->eval, fls_core_params(f->server),
                                                    &f->test_view, &loss, &acc), FL_OK);
                assert_int_equal(fls_core_report_eval(f->server, ev.round, acc, loss, now), FL_OK);
            } else if (ev.kind == FLS_EV_ROUND_END) {
                const fls_round_metrics *rm = fls_core_last_metrics(f->server);
                assert_non_null(rm);
                assert_int_equal(rm->reported, K);
                if (getenv("FEDROP_DEBUG")) { char js[4096]; fls_round_metrics_json(rm, js, sizeof js); fprintf(stderr, "%s\n", js); }
                assert_true(rm->bytes_up > 0 && rm->bytes_down > 0);
                if (isnan(*first_acc))
                    *first_acc = rm->test_accuracy;
                *last_acc = rm->test_accuracy;
                ended++;
            } else if (ev.kind == FLS_EV_DONE) {
                done = 1;
            }
        }
        for (int i = 0; i < n_tasks; i++) {
            deliver_task(f, tasks[i]);
            assert_int_equal(flc_core_train(f->clients[tasks[i]]), FL_OK);
            const flc_core_stats *s = flc_core_last_stats(f->clients[tasks[i]]);
            assert_int_equal(s->n_samples, 500);
            assert_true(isfinite(s->loss));
            if (policy != FLS_POLICY_FULL)
                assert_true(s->sub_params < fls_core_arch(f->server)->n_params);
        }
        /* Uploads in a round-dependent shuffled order. */
        for (int i = 0; i < n_tasks; i++)
            upload(f, tasks[(i * 3 + (int)fls_core_round(f->server)) % n_tasks], now);
        now += 1.0;
        if (!any && n_tasks == 0 && now > 10000)
            fail_msg("the server core stalled");
    }
    assert_int_equal(ended, rounds);
    const flm_arch *a = fls_core_arch(f->server);
    assert_int_equal(fl_sha256_digest(digest, fls_core_params(f->server), a->n_params * sizeof(float)), FL_OK);
    return *last_acc;
}

static void test_rounds_afd_learn(void **state)
{
    (void)state;
    const fls_policy_kind kinds[] = {FLS_POLICY_FULL, FLS_POLICY_FD, FLS_POLICY_AFD_SINGLE,
                                     FLS_POLICY_AFD_MULTI};
    const char *codecs[] = {"none", "q8+zstd", "rot+q4+zstd", "topk0.2+q8+zstd"};
    for (int p = 0; p < 4; p++) {
        fixture f = {0};
        make_data(&f);
        double first, last;
        uint8_t d1[FL_SHA256_LEN];
        run_rounds(&f, kinds[p], codecs[p], 6, &first, &last, d1);
        print_message("policy %d codec %s: accuracy %.3f after round 1, %.3f after round 6\n", p,
                      codecs[p], first, last);
        assert_true(last > 0.8);
        assert_true(last >= first);
        free_fixture(&f);
        /* Same seed, same bits, even though arrival order inside a round differs by round. */
        fixture g = {0};
        make_data(&g);
        uint8_t d2[FL_SHA256_LEN];
        run_rounds(&g, kinds[p], codecs[p], 6, &first, &last, d2);
        assert_memory_equal(d1, d2, FL_SHA256_LEN);
        free_fixture(&g);
    }
}

/* A plug-in trainer: adds 0.25 to every weight; the server must see exactly that delta. */
static fl_status plus_quarter(void *user, const flc_core_job *job, float *params,
                              uint64_t *n_samples, double *loss)
{
    int *calls = user;
    (*calls)++;
    for (size_t i = 0; i < job->sub->n_params; i++)
        params[i] += 0.25f;
    *n_samples = 3;
    *loss = 1.5;
    return FL_OK;
}

static void test_plugin_trainer_and_errors(void **state)
{
    (void)state;
    fls_config cfg = fls_config_default();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:6-5-3");
    cfg.policy.kind = FLS_POLICY_FD;
    cfg.clients_per_round = 1;
    cfg.overcommit = 1.0;
    cfg.chunk_elems = 7;
    fls_core *srv = NULL;
    assert_int_equal(fls_core_new(&cfg, &srv), FL_OK);
    int calls = 0;
    const flc_core_config cc = {"dev", 9, 5, NULL, plus_quarter, &calls, {0}, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    const flc_core_config bad = {"dev", 9, 5, NULL, NULL, NULL, {0}, NULL};
    flc_core *c2 = NULL;
    assert_int_equal(flc_core_new(&bad, &c2), FL_ERR_INVALID_ARG);
    assert_int_equal(flc_core_train(c), FL_ERR_STATE);

    assert_int_equal(fls_core_client_join(srv, 9, 3, 0.0), FL_OK);
    assert_int_equal(fls_core_tick(srv, 0.0), FL_OK);
    fls_event ev;
    int got = 0;
    while (fls_core_poll(srv, &ev))
        got |= ev.kind == FLS_EV_TASK && ev.client == 9;
    assert_true(got);
    flp_msg task;
    assert_int_equal(fls_core_task(srv, 9, &task), FL_OK);

    /* A task whose tensor list does not match its keep-set is refused. */
    flp_msg *bad_task = wire(&task);
    flp_tensor_header *h = (flp_tensor_header *)&bad_task->task.tensors[0];
    h->numel += 1;
    h->shape[0] += 1;
    assert_int_equal(flc_core_on_message(c, bad_task), FL_ERR_WIRE_SHAPE);
    flp_msg_free(bad_task);

    flp_msg *m = wire(&task);
    assert_int_equal(flc_core_on_message(c, m), FL_OK);
    const size_t cap = fls_core_task_chunk_bound(srv);
    uint8_t *buf = malloc(cap);
    for (uint32_t t = 0; t < m->task.n_tensors; t++)
        for (uint32_t i = 0; i < m->task.tensors[t].n_chunks; i++) {
            flp_msg cm = {.version = FLP_VERSION, .type = FLP_CHUNK, .round = task.round, .sender = ""};
            size_t len;
            assert_int_equal(fls_core_task_chunk(srv, 9, t, i, buf, cap, &len, &cm.chunk), FL_OK);
            if (t == 0 && i == 0) {
                /* A corrupted first attempt (payload cut short) is refused ... */
                flp_msg cut = cm;
                cut.chunk.payload_len = len - 1;
                flp_msg *cd = wire(&cut);
                assert_int_equal(flc_core_on_message(c, cd), FL_ERR_CODEC_HEADER);
                flp_msg_free(cd);
                /* ... and drops the task: the client waits for a new one. */
                assert_int_equal(flc_core_round(c), UINT64_MAX);
                assert_int_equal(flc_core_on_message(c, m), FL_OK);
            }
            flp_msg *cd = wire(&cm);
            assert_int_equal(flc_core_on_message(c, cd), FL_OK);
            if (t == 0 && i == 0) {
                assert_int_equal(flc_core_on_message(c, cd), FL_ERR_WIRE_CHUNK_DUP);
                /* A chunk of an update (no server sends one) is refused, the task kept; it
                 * was taken as nothing to do (FL_OK). */
                flp_msg up = cm;
                up.chunk.dir = FLP_DIR_UP;
                flp_msg *ud = wire(&up);
                assert_int_equal(flc_core_on_message(c, ud), FL_ERR_WIRE_FIELD);
                flp_msg_free(ud);
                assert_true(flc_core_busy(c));
                assert_false(flc_core_ready(c));
            }
            flp_msg_free(cd);
        }
    free(buf);
    assert_true(flc_core_ready(c));
    assert_int_equal(flc_core_train(c), FL_OK);
    assert_int_equal(calls, 1);
    assert_false(flc_core_ready(c));
    /* Decode the update the client would send: every coordinate is +0.25 ("none" codec). */
    flz_ctx *z = NULL;
    assert_int_equal(flz_ctx_new(NULL, &z), FL_OK);
    const uint32_t n = flc_core_update_chunks(c);
    for (uint32_t i = 0; i < n; i++) {
        flp_msg cm;
        assert_int_equal(flc_core_update_chunk(c, i, &cm), FL_OK);
        float vals[7];
        assert_int_equal(flz_decode(z, cm.chunk.payload, cm.chunk.payload_len, vals, cm.chunk.count), FL_OK);
        for (uint32_t j = 0; j < cm.chunk.count; j++)
            assert_float_equal(vals[j], 0.25f, 1e-6f);
    }
    assert_int_equal(flc_core_update_chunk(c, n, &task), FL_ERR_INVALID_ARG);
    flp_msg up;
    assert_int_equal(flc_core_update(c, &up), FL_OK);
    assert_int_equal(up.update.n_samples, 3);
    assert_float_equal(up.update.loss, 1.5, 1e-12);
    flz_ctx_free(z);
    flp_msg_free(m);
    flc_core_free(c);
    fls_core_free(srv);
}

/* Feeds client key's task of the open round to core c (in order, no wire): ready to train. Its
 * batch size and epochs as the server sent them, or as given where not 0. */
static void feed_task_with(fls_core *srv, flc_core *c, uint32_t key, uint32_t batch,
                           uint32_t epochs)
{
    flp_msg task;
    assert_int_equal(fls_core_task(srv, key, &task), FL_OK);
    if (batch)
        task.task.train.batch_size = batch;
    if (epochs)
        task.task.train.epochs = epochs;
    assert_int_equal(flc_core_on_message(c, &task), FL_OK);
    const size_t cap = fls_core_task_chunk_bound(srv);
    uint8_t *buf = malloc(cap);
    for (uint32_t t = 0; t < task.task.n_tensors; t++)
        for (uint32_t i = 0; i < task.task.tensors[t].n_chunks; i++) {
            flp_msg cm = {.version = FLP_VERSION, .type = FLP_CHUNK, .round = task.round, .sender = ""};
            size_t len;
            assert_int_equal(fls_core_task_chunk(srv, key, t, i, buf, cap, &len, &cm.chunk), FL_OK);
            assert_int_equal(flc_core_on_message(c, &cm), FL_OK);
        }
    free(buf);
    assert_true(flc_core_ready(c));
}

static void feed_task(fls_core *srv, flc_core *c, uint32_t key)
{
    feed_task_with(srv, c, key, 0, 0);
}

/* A server core for arch with client 9 (3 samples) joined and its round open (FedAvg), its
 * training configuration's max_samples and its up codec as given (NULL: the default). */
static fls_core *one_client_round_with(const char *arch, uint64_t max_samples,
                                       const char *up_codec)
{
    fls_config cfg = fls_config_default();
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    if (up_codec)
        snprintf(cfg.up_codec, sizeof cfg.up_codec, "%s", up_codec);
    cfg.train.max_samples = max_samples;
    cfg.clients_per_round = 1;
    cfg.overcommit = 1.0;
    fls_core *srv = NULL;
    assert_int_equal(fls_core_new(&cfg, &srv), FL_OK);
    assert_int_equal(fls_core_client_join(srv, 9, 3, 0.0), FL_OK);
    assert_int_equal(fls_core_tick(srv, 0.0), FL_OK);
    fls_event ev;
    while (fls_core_poll(srv, &ev))
        ;
    return srv;
}

static fls_core *one_client_round_max(const char *arch, uint64_t max_samples)
{
    return one_client_round_with(arch, max_samples, NULL);
}

static fls_core *one_client_round(const char *arch)
{
    return one_client_round_max(arch, 0);
}

/* A trainer that fails while *fail is set. */
static fl_status failing_trainer(void *user, const flc_core_job *job, float *params,
                                 uint64_t *n_samples, double *loss)
{
    int *fail = user;
    if (*fail)
        return FL_ERR_NUMERIC;
    return plus_quarter(&(int){0}, job, params, n_samples, loss);
}

/* A plug-in that wraps the built-in trainer (the simulator's timing wrapper): user is the core. */
static fl_status builtin_wrapper(void *user, const flc_core_job *job, float *params,
                                 uint64_t *n_samples, double *loss)
{
    return flc_core_builtin_train(*(flc_core **)user, job, params, n_samples, loss);
}

/* A failure of the built-in trainer run through a plug-in is worded as the built-in's (the
 * simulator's users have no plug-in), a plug-in's own failure as the plug-in's. */
static void test_wrapped_builtin_failure_wording(void **state)
{
    (void)state;
    fls_core *srv = one_client_round("mlp:6-5-3");
    flc_core *c = NULL;
    const flc_core_config cc = {"dev", 9, 5, NULL, builtin_wrapper, &c, {0}, NULL}; /* no data */
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    feed_task(srv, c, 9);
    assert_int_equal(flc_core_train(c), FL_ERR_INVALID_ARG);
    assert_non_null(strstr(flc_core_train_error(c), "local training failed"));
    assert_null(strstr(flc_core_train_error(c), "plug-in"));
    flc_core_free(c);
    fls_core_free(srv);
}

/* A plug-in whose output the server would refuse (more samples than the Task's max_samples) or
 * that says its samples cannot be used: the round fails on the device, worded as flc.h has it. */
typedef struct odd_plugin {
    fl_status st;
    uint64_t n;
    double loss; /* 0: 0.5 */
} odd_plugin;

static fl_status odd_trainer(void *user, const flc_core_job *job, float *params,
                             uint64_t *n_samples, double *loss)
{
    const odd_plugin *p = user;
    (void)job;
    (void)params;
    *n_samples = p->n;
    *loss = p->loss != 0.0 ? p->loss : 0.5;
    return p->st;
}

static void test_plugin_odd_outputs(void **state)
{
    (void)state;
    fls_core *srv = one_client_round_max("mlp:6-5-3", 2);
    const struct {
        odd_plugin p;
        fl_status want;
        const char *says, *not_says;
    } rows[] = {
        {{FL_OK, 0, 0}, FL_ERR_NUMERIC, "reported 0 samples", NULL},
        {{FL_OK, 3, 0}, FL_ERR_NUMERIC, "reported 3 samples, above the task's max_samples 2", NULL},
        {{FL_OK, UINT64_MAX, 0}, FL_ERR_NUMERIC, "above the task's max_samples 2", NULL},
        {{FL_ERR_DATASET_FORMAT, 1, 0}, FL_ERR_DATASET_FORMAT,
         "failed with status 63 (the local dataset cannot be used)", "dataset file"},
        {{FL_ERR_INTERNAL, 1, 0}, FL_ERR_INTERNAL, "failed with status 4", "bug in fedrop"},
        /* the server refuses a loss below 0 at the Update header (FLS_UPDATE_LOSS_MAX) */
        {{FL_OK, 2, -0.5}, FL_ERR_NUMERIC, "negative loss (-0.5)", NULL},
        {{FL_OK, 2, 1e300}, FL_ERR_NUMERIC, "too large loss (1e+300)", NULL},
        {{FL_OK, 2, 0}, FL_OK, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const flc_core_config cc = {"dev", 9, 5, NULL, odd_trainer, (void *)&rows[i].p, {0}, NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        feed_task(srv, c, 9);
        const fl_status st = flc_core_train(c);
        const char *why = flc_core_train_error(c);
        if (st != rows[i].want || (rows[i].says && !strstr(why, rows[i].says)) ||
            (rows[i].not_says && strstr(why, rows[i].not_says)))
            fail_msg("row %zu: status %d, error '%s'", i, (int)st, why);
        flc_core_free(c);
    }
    fls_core_free(srv);
}

/* A plug-in that moves weight 0 by user's amount. */
static fl_status moves_first(void *user, const flc_core_job *job, float *params,
                             uint64_t *n_samples, double *loss)
{
    (void)job;
    params[0] += *(const float *)user;
    *n_samples = 1;
    *loss = 0.5;
    return FL_OK;
}

/* An update the up codec cannot carry fails the round (FL_ERR_NUMERIC), and the reason says
 * which: a finite one too large for the codec (f16 ends at 65504; a rotation sums values) is
 * not "non-finite weights", which sent a device looking for a NaN that was not there. */
static void test_update_too_large_for_codec_said(void **state)
{
    (void)state;
    const struct {
        const char *codec;
        float move;
        const char *says;
        const char *codec_says; /* the codec's own reason (flz_ctx_error), in the same message */
    } rows[] = {
        {"f16", 1e6f, "finite but too large for the server's up codec f16",
         "element 0 is 1e+06, outside float16's range (its largest finite value is 65504)"},
        {"rot+q4+zstd", 3e38f, "finite but too large for the server's up codec rot",
         "past float's largest"},
        {"topk0.5+rot+q8", 3e38f, "finite but too large for the server's up codec",
         "past float's largest"},
        {"f16", NAN, "non-finite weights", "element 0 is nan, not a finite value"},
        {"none", INFINITY, "non-finite weights", "element 0, the difference inf - "},
        /* error feedback: refused before the codec, said the same way */
        {"topk0.5+q8", NAN, "non-finite weights", "(dense0.w, element 0: the difference nan - "},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        fls_core *srv = one_client_round_with("mlp:6-5-3", 0, rows[i].codec);
        const flc_core_config cc = {"dev", 9, 5, NULL, moves_first, (void *)&rows[i].move, {0},
                                    NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        feed_task(srv, c, 9);
        const fl_status st = flc_core_train(c);
        const char *why = flc_core_train_error(c);
        if (st != FL_ERR_NUMERIC || !strstr(why, rows[i].says) || !strstr(why, rows[i].codec_says))
            fail_msg("row %zu (%s): status %d, error '%s'", i, rows[i].codec, (int)st, why);
        flc_core_free(c);
        fls_core_free(srv);
    }
}

/* A plug-in that reports more samples than the client declared (flc_samples.n, the Hello's
 * dataset_size: the server refuses that update at its header) fails the round on the device. */
static void test_plugin_above_declared_samples(void **state)
{
    (void)state;
    fls_core *srv = one_client_round("mlp:6-5-3");
    const flm_samples declared = {NULL, NULL, NULL, NULL, 4}; /* the count alone */
    for (uint64_t n = 4; n <= 5; n++) {
        odd_plugin p = {FL_OK, n, 0};
        const flc_core_config cc = {"dev", 9, 5, &declared, odd_trainer, &p, {0}, NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        feed_task(srv, c, 9);
        const fl_status st = flc_core_train(c);
        if (n == 4) {
            assert_int_equal(st, FL_OK);
        } else {
            assert_int_equal(st, FL_ERR_NUMERIC);
            assert_non_null(strstr(flc_core_train_error(c), "reported 5 samples, above the 4 this "
                                   "client told the server it holds (flc_samples.n)"));
        }
        flc_core_free(c);
    }
    fls_core_free(srv);
}

/* A task whose training failed is not trained a second time (its weights were trained in place,
 * and the server was told the round failed): the core is no longer ready until the next task. */
static void test_failed_task_not_retrained(void **state)
{
    (void)state;
    fls_core *srv = one_client_round("mlp:6-5-3");
    int fail = 1;
    const flc_core_config cc = {"dev", 9, 5, NULL, failing_trainer, &fail, {0}, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    feed_task(srv, c, 9);
    assert_int_equal(flc_core_train(c), FL_ERR_NUMERIC);
    assert_non_null(strstr(flc_core_train_error(c), "plug-in trainer failed"));
    assert_false(flc_core_ready(c));
    fail = 0;
    assert_int_equal(flc_core_train(c), FL_ERR_STATE); /* not from the half-trained weights */
    assert_int_equal(flc_core_update_chunks(c), 0);
    /* The next task trains again. */
    feed_task(srv, c, 9);
    assert_int_equal(flc_core_train(c), FL_OK);
    flc_core_free(c);
    fls_core_free(srv);
}

/* Feeds client key's task of the open round to core c and trains it. */
static void feed_and_train(fls_core *srv, flc_core *c, uint32_t key)
{
    feed_task(srv, c, key);
    assert_int_equal(flc_core_train(c), FL_OK);
}

/* The update's chunks back to back, and their count. */
static uint8_t *update_bytes(const flc_core *c, size_t *len)
{
    const uint32_t n = flc_core_update_chunks(c);
    assert_true(n > 0);
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        flp_msg cm;
        assert_int_equal(flc_core_update_chunk(c, i, &cm), FL_OK);
        total += cm.chunk.payload_len;
    }
    uint8_t *out = malloc(total);
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        flp_msg cm;
        flc_core_update_chunk(c, i, &cm);
        memcpy(out + o, cm.chunk.payload, cm.chunk.payload_len);
        o += cm.chunk.payload_len;
    }
    *len = total;
    return out;
}

/* A server core with K clients joined and a round of federated dropout (keep 0.5) open: a
 * keep-set per client or one shared, the given uplink codec and FedProx mu. */
static fls_core *fd_round(int per_client, const char *up_codec, float prox_mu)
{
    fls_config cfg = fls_config_default();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:%d-16-%d", FEAT, CLASSES);
    cfg.policy.kind = FLS_POLICY_FD;
    cfg.policy.fd_per_client = per_client;
    cfg.policy.keep_p = 0.5f;
    cfg.clients_per_round = K;
    cfg.overcommit = 1.0;
    cfg.chunk_elems = 100;
    cfg.train.batch_size = 20;
    cfg.train.max_samples = 60;
    cfg.train.prox_mu = prox_mu;
    snprintf(cfg.up_codec, sizeof cfg.up_codec, "%s", up_codec);
    fls_core *srv = NULL;
    assert_int_equal(fls_core_new(&cfg, &srv), FL_OK);
    for (uint32_t k = 0; k < K; k++)
        assert_int_equal(fls_core_client_join(srv, k, 500, 0.0), FL_OK);
    assert_int_equal(fls_core_tick(srv, 0.0), FL_OK);
    fls_event ev;
    while (fls_core_poll(srv, &ev))
        ;
    return srv;
}

static fl_status no_train(void *user, const flc_core_job *job, float *params,
                          uint64_t *n_samples, double *loss)
{
    flc_core **c = user;
    return flc_core_builtin_train(*c, job, params, n_samples, loss);
}

/* One core rebound from client to client (as the simulator drives it) gives the same update
 * bytes as a fresh core per client, with the built-in trainer and an error-feedback codec, where
 * the keep-set changes from client to client, stays the same (the core keeps the last submodel
 * for it) or comes back; a taken payload is the update's bytes and leaves the core without
 * chunks. */
static void test_rebind_and_take_payload(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    make_data(&f);
    const char *codecs[] = {"none", "topk0.3+q8+zstd"};
    const uint32_t keys[] = {0, 1, 2, 3, 1, 1, 2};
    for (int ci = 0; ci < 4; ci++) {
        fls_core *srv = fd_round(ci < 2, codecs[ci % 2], 0.0f);
        flc_core *reused = NULL;
        for (size_t ki = 0; ki < sizeof keys / sizeof keys[0]; ki++) {
            const uint32_t k = keys[ki];
            char id[16];
            snprintf(id, sizeof id, "c%u", k);
            const flc_core_config cc = {id, k, 11, &f.views[k], NULL, NULL, {0}, NULL};
            flc_core *fresh = NULL;
            assert_int_equal(flc_core_new(&cc, &fresh), FL_OK);
            feed_and_train(srv, fresh, k);
            size_t want_len = 0;
            uint8_t *want = update_bytes(fresh, &want_len);
            if (!reused) {
                assert_int_equal(flc_core_new(&cc, &reused), FL_OK);
            } else {
                const flc_core_config bad = {"", k, 11, &f.views[k], NULL, NULL, {0}, NULL};
                assert_int_equal(flc_core_rebind(reused, &bad), FL_ERR_INVALID_ARG);
                assert_int_equal(flc_core_rebind(reused, &cc), FL_OK);
            }
            /* Each client's residual starts at zero in both cores (first round). */
            feed_and_train(srv, reused, k);
            size_t got_len = 0;
            uint8_t *got = update_bytes(reused, &got_len);
            assert_int_equal(got_len, want_len);
            assert_memory_equal(got, want, want_len);
            uint8_t *pay = NULL;
            size_t len = 0;
            assert_int_equal(flc_core_take_payload(reused, &pay, &len), FL_OK);
            assert_int_equal(len, want_len);
            assert_memory_equal(pay, want, want_len);
            assert_int_equal(flc_core_update_chunks(reused), 0);
            flp_msg cm;
            assert_int_equal(flc_core_update_chunk(reused, 0, &cm), FL_ERR_STATE);
            uint8_t *again = NULL;
            assert_int_equal(flc_core_take_payload(reused, &again, &len), FL_ERR_STATE);
            assert_null(again);
            assert_int_equal(flc_core_train(reused), FL_ERR_STATE);
            /* Residuals: drop this client's from the reused core, as a host that keeps them per
             * client would swap it out. */
            float *r = NULL;
            size_t rn = 0;
            flc_core_swap_residual(reused, &r, &rn);
            assert_true(ci % 2 == 1 ? r != NULL && rn > 0 : r == NULL);
            /* the same residual, in the full model's coordinates (the submodel's maps) */
            float *fr = NULL;
            size_t frn = 0;
            flc_core_swap_residual(fresh, &fr, &frn);
            assert_int_equal(frn, rn);
            if (rn)
                assert_memory_equal(fr, r, rn * sizeof *r);
            free(fr);
            free(r);
            free(pay);
            free(got);
            free(want);
            flc_core_free(fresh);
        }
        /* A plug-in trainer wrapping the built-in one: a core without data refuses it. */
        flc_core *nodata = NULL;
        const flc_core_config pc = {"p", 0, 11, NULL, no_train, &nodata, {0}, NULL};
        assert_int_equal(flc_core_new(&pc, &nodata), FL_OK);
        feed_task(srv, nodata, 0);
        assert_int_equal(flc_core_train(nodata), FL_ERR_INVALID_ARG);
        flc_core_free(nodata);
        /* A Task of another architecture after those: parsed and cut anew. */
        fls_core *other = one_client_round("mlp:64-12-4");
        const flc_core_config oc = {"o", 9, 11, &f.views[0], NULL, NULL, {0}, NULL};
        assert_int_equal(flc_core_rebind(reused, &oc), FL_OK);
        feed_task(other, reused, 9);
        assert_int_equal(flc_core_sub_arch(reused)->n_params, (64 + 1) * 12 + (12 + 1) * 4);
        fls_core_free(other);
        flc_core_free(reused);
        fls_core_free(srv);
    }
    free_fixture(&f);
}

/* The data, a server core with an FD round open and a top-k uplink, and client 0's core (built-in
 * trainer, its view of the data): what the residual tests below start from. */
static flc_core *topk_client(fixture *f, fls_core **srv)
{
    memset(f, 0, sizeof *f);
    make_data(f);
    *srv = fd_round(1, "topk0.3+q8+zstd", 0.0f);
    const flc_core_config cc = {"c0", 0, 11, &f->views[0], NULL, NULL, {0}, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    return c;
}

/* A replayed round's update bytes b equal the first ones a with a rewind point, and differ
 * without one (the residual moved on). */
static void same_iff_rewind(int rewind, const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
    if (rewind) {
        assert_int_equal(lb, la);
        assert_memory_equal(b, a, la);
    } else {
        assert_true(lb != la || memcmp(a, b, la) != 0);
    }
}

/* A server that goes back to its checkpoint replays the open round: with a rewind point, the core
 * restores its error-feedback residual for the replayed task and sends the same bytes again (the
 * resumed run stays bit-exact); without one the residual has moved on and the bytes differ (which
 * also shows the rewind is needed). */
static void test_rewind_replays_round(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    make_data(&f);
    fls_core *srv = fd_round(1, "topk0.3+q8+zstd", 0.0f);
    for (int rewind = 0; rewind < 2; rewind++) {
        const flc_core_config cc = {"c0", 0, 11, &f.views[0], NULL, NULL, {0}, NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        flc_core_keep_rewind_point(c, rewind);
        size_t len1 = 0, len2 = 0, len3 = 0;
        feed_and_train(srv, c, 0); /* the first round with a residual: it starts at zero */
        uint8_t *b1 = update_bytes(c, &len1);
        feed_and_train(srv, c, 0); /* the same round again */
        uint8_t *b2 = update_bytes(c, &len2);
        feed_and_train(srv, c, 0); /* ... once more */
        uint8_t *b3 = update_bytes(c, &len3);
        same_iff_rewind(rewind, b1, len1, b2, len2);
        if (rewind)
            same_iff_rewind(rewind, b1, len1, b3, len3);
        free(b1);
        free(b2);
        free(b3);
        flc_core_free(c);
    }
    fls_core_free(srv);
    free_fixture(&f);
}

/* libflclient cancels the built-in trainer when the session its task came in is over (cfg.cancel):
 * such a training changes nothing of the error-feedback residual, so the next training (a later
 * round, rewind point off; or the round replayed, rewind point on as libflclient has it) sends
 * the bytes of a client whose training was never cancelled. A cancelled task is not trained
 * again (FL_ERR_CANCELLED, not ready), and is no training that finished. */
static void test_cancel_keeps_residual(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    make_data(&f);
    fls_core *srv = fd_round(1, "topk0.3+q8+zstd", 0.0f);
    for (int rewind = 0; rewind < 2; rewind++) {
        atomic_int cancel = 0;
        const flc_core_config cc = {"c0", 0, 11, &f.views[0], NULL, NULL, {0}, &cancel};
        flc_core *a = NULL, *b = NULL;
        assert_int_equal(flc_core_new(&cc, &a), FL_OK);
        assert_int_equal(flc_core_new(&cc, &b), FL_OK);
        flc_core_keep_rewind_point(a, rewind);
        flc_core_keep_rewind_point(b, rewind);
        size_t la = 0, lb = 0, l1 = 0;
        feed_and_train(srv, a, 0); /* a residual that is no longer zero */
        uint8_t *b1 = update_bytes(a, &l1);
        feed_and_train(srv, b, 0);
        feed_task(srv, a, 0); /* the next task, its session over before the first batch */
        atomic_store(&cancel, 1);
        assert_int_equal(flc_core_train(a), FL_ERR_CANCELLED);
        assert_non_null(strstr(flc_core_train_error(a), "local training stopped"));
        assert_false(flc_core_ready(a));
        assert_int_equal(flc_core_update_chunks(a), 0);
        atomic_store(&cancel, 0);
        feed_and_train(srv, a, 0);
        feed_and_train(srv, b, 0);
        uint8_t *ba = update_bytes(a, &la), *bb = update_bytes(b, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(ba, bb, la);
        /* rewind: the round replayed gives the first bytes again; without, the residual carried
         * over, so a cancelled training that reset it would show */
        same_iff_rewind(rewind, b1, l1, ba, la);
        free(b1);
        free(ba);
        free(bb);
        flc_core_free(a);
        flc_core_free(b);
    }
    fls_core_free(srv);
    free_fixture(&f);
}

/* A training whose cancel came after its trainer's last step (libflclient: while the update was
 * encoded) is dropped by the host with flc_core_drop_update: the error-feedback residual goes back
 * to what it was before that training (here 7.0 everywhere, swapped in), which the training had
 * changed, and the update is gone for good (not trained again). Without the rewind point there is
 * nothing to go back to: FL_ERR_STATE, nothing changed. */
/* The host's residual swapped in: n values of 7 (what comes back, the core's own, is freed). */
static void swap_in_sevens(flc_core *c, size_t n)
{
    float *mine = malloc(n * sizeof *mine);
    assert_non_null(mine);
    for (size_t i = 0; i < n; i++)
        mine[i] = 7.0f;
    size_t mn = n;
    flc_core_swap_residual(c, &mine, &mn);
    free(mine);
}

/* The core's residual swapped out (it must hold n values): the index of its first value that is
 * not 7 (that value in *value), or n when all are 7; the count of such values in *moved (may be
 * NULL). */
static size_t swap_out_first_not_seven(flc_core *c, size_t n, size_t *moved, float *value)
{
    float *back = NULL;
    size_t bn = 0, first = n, m = 0;
    flc_core_swap_residual(c, &back, &bn);
    assert_int_equal(bn, n);
    for (size_t i = 0; i < n; i++)
        if (back[i] != 7.0f && m++ == 0) {
            first = i;
            *value = back[i];
        }
    free(back);
    if (moved)
        *moved = m;
    return first;
}

static void test_drop_update_restores_residual(void **state)
{
    (void)state;
    fixture f;
    fls_core *srv = NULL;
    flc_core *c = topk_client(&f, &srv);
    const size_t n = (size_t)FEAT * 16 + 16 + 16 * CLASSES + CLASSES;
    for (int rewind = 0; rewind < 2; rewind++) {
        flc_core_keep_rewind_point(c, rewind);
        swap_in_sevens(c, n);
        assert_int_equal(flc_core_drop_update(c), FL_ERR_STATE); /* nothing trained */
        feed_and_train(srv, c, 0);
        assert_int_equal(flc_core_drop_update(c), rewind ? FL_OK : FL_ERR_STATE);
        flp_msg up;
        assert_int_equal(flc_core_update(c, &up), rewind ? FL_ERR_STATE : FL_OK);
        assert_int_equal(flc_core_update_chunks(c) == 0, rewind);
        assert_false(flc_core_ready(c));
        assert_int_equal(flc_core_train(c), FL_ERR_STATE);
        size_t moved = 0;
        float v = 0.0f;
        swap_out_first_not_seven(c, n, &moved, &v);
        if (rewind && moved)
            fail_msg("%zu of %zu residual values changed by a dropped update", moved, n);
        assert_true(rewind || moved > 0); /* the training did change it */
    }
    flc_core_free(c);
    fls_core_free(srv);
    free_fixture(&f);
}

/* A plug-in trainer whose update fits the codec in every tensor but the last (float16 ends at
 * 65504): the encoding fails at the last tensor's chunk, after the earlier ones encoded. */
static fl_status moves_last_too_far(void *user, const flc_core_job *job, float *params,
                                    uint64_t *n_samples, double *loss)
{
    (void)user;
    const size_t n = job->sub->n_params;
    for (size_t i = 0; i < n; i++)
        params[i] += 0.25f;
    params[n - 1] += 1e6f;
    *n_samples = 1;
    *loss = 0.5;
    return FL_OK;
}

/* An encoding that fails part way sends nothing, so it leaves the error-feedback residual as it
 * was, with or without the rewind point (fl_sim runs without one). Until 2026-12-07 the chunks
 * encoded before the failing one had stored their residual: 50 of these 53 values, which then
 * counted as sent, and that mass was lost. */
static void test_failed_encoding_keeps_residual(void **state)
{
    (void)state;
    for (int rewind = 0; rewind < 2; rewind++) {
        fls_core *srv = one_client_round_with("mlp:6-5-3", 0, "topk0.5+f16");
        const flc_core_config cc = {"dev", 9, 5, NULL, moves_last_too_far, NULL, {0}, NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        flc_core_keep_rewind_point(c, rewind);
        const size_t n = fls_core_arch(srv)->n_params;
        swap_in_sevens(c, n);
        feed_task(srv, c, 9);
        assert_int_equal(flc_core_train(c), FL_ERR_NUMERIC);
        assert_non_null(strstr(flc_core_train_error(c), "too large for the server's up codec"));
        assert_int_equal(flc_core_update_chunks(c), 0);
        float v = 0.0f;
        const size_t i = swap_out_first_not_seven(c, n, NULL, &v);
        if (i < n)
            fail_msg("rewind point %s: residual[%zu] = %g after a failed encoding, was 7",
                     rewind ? "on" : "off", i, (double)v);
        flc_core_free(c);
        fls_core_free(srv);
    }
}

/* A residual the host swaps in (flc_core_swap_residual) is that host's: a Task for the round of
 * the snapshot the core took of its previous residual must not overwrite it. */
static void test_rewind_after_swap(void **state)
{
    (void)state;
    fixture f;
    fls_core *srv = NULL;
    flc_core *c = topk_client(&f, &srv);
    flc_core_keep_rewind_point(c, 1);
    feed_and_train(srv, c, 0); /* the rewind point: this round, a zero residual */
    const size_t n = (size_t)FEAT * 16 + 16 + 16 * CLASSES + CLASSES;
    swap_in_sevens(c, n); /* the host's residual in, the core's out */
    flp_msg task;
    assert_int_equal(fls_core_task(srv, 0, &task), FL_OK);
    assert_int_equal(flc_core_on_message(c, &task), FL_OK); /* the same round again */
    float v = 0.0f;
    const size_t i = swap_out_first_not_seven(c, n, NULL, &v);
    if (i < n)
        fail_msg("residual[%zu] = %g: the host's residual was overwritten", i, (double)v);
    flc_core_free(c);
    fls_core_free(srv);
    free_fixture(&f);
}

/* A Task of another run (flp_task.run_id) resets the error-feedback residual: the new run's first
 * update is the bytes a client that never trained would send. Within one run it is kept (the
 * same task again, without a rewind point, gives other bytes), and a Task that names no run
 * (0: an older server) changes nothing. */
static void test_new_run_resets_residual(void **state)
{
    (void)state;
    fixture f;
    fls_core *srv = NULL;
    flc_core *c = topk_client(&f, &srv);
    size_t len1 = 0, len2 = 0, len3 = 0, len4 = 0;
    fls_core_set_run_id(srv, 0x1111);
    feed_and_train(srv, c, 0); /* the residual starts at zero */
    uint8_t *b1 = update_bytes(c, &len1);
    feed_and_train(srv, c, 0); /* the same run: the residual carries over */
    uint8_t *b2 = update_bytes(c, &len2);
    assert_true(len2 != len1 || memcmp(b1, b2, len1) != 0);
    fls_core_set_run_id(srv, 0); /* a Task naming no run: still the residual of the run */
    feed_and_train(srv, c, 0);
    uint8_t *b3 = update_bytes(c, &len3);
    assert_true(len3 != len1 || memcmp(b1, b3, len1) != 0);
    fls_core_set_run_id(srv, 0x2222); /* a new run: from zero again */
    feed_and_train(srv, c, 0);
    uint8_t *b4 = update_bytes(c, &len4);
    assert_int_equal(len4, len1);
    assert_memory_equal(b4, b1, len1);
    free(b1);
    free(b2);
    free(b3);
    free(b4);
    flc_core_free(c);
    fls_core_free(srv);
    free_fixture(&f);
}

/* An Update trained for another run is refused (FL_ERR_ROUND_CLOSED) by the server: a client
 * that was training round 0 of a run when its server was killed, and re-registered with a fresh
 * server (another run, in round 0 too) before that training ended, sends the stale Update; taken,
 * it would hold the client's place in the new round (its own Update then refused as a duplicate,
 * the round waiting for the deadline) or put another run's training into the new model. The
 * client's Update for the new run's Task is taken, and so is one from a client that names no run
 * (a Task that named none: an older server's). Through the wire, as libflclient sends it. */
static void test_update_of_another_run_refused(void **state)
{
    (void)state;
    fls_core *a = one_client_round("mlp:6-5-3");
    fls_core_set_run_id(a, 0x1111);
    const flc_core_config cc = {"dev", 9, 5, NULL, plus_quarter, &(int){0}, {0}, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    feed_and_train(a, c, 9); /* run 0x1111's round 0, trained; then its server dies */
    fls_core_free(a);
    fls_core *b = one_client_round("mlp:6-5-3"); /* a fresh run, in round 0, tasks the client */
    fls_core_set_run_id(b, 0x2222);
    flp_msg up;
    assert_int_equal(flc_core_update(c, &up), FL_OK);
    flp_msg *w = wire(&up);
    assert_int_equal(fls_core_on_message(b, 9, w, 0.1), FL_ERR_ROUND_CLOSED);
    flp_msg_free(w);
    assert_int_equal(fls_core_update_state(b, 9, 0), FLS_UPDATE_NONE);
    /* The new run's own Task, trained: its Update is taken. */
    feed_and_train(b, c, 9);
    assert_int_equal(flc_core_update(c, &up), FL_OK);
    w = wire(&up);
    assert_int_equal(fls_core_on_message(b, 9, w, 0.2), FL_OK);
    flp_msg_free(w);
    assert_int_equal(fls_core_update_state(b, 9, 0), FLS_UPDATE_RECEIVING);
    fls_core_free(b);
    /* A Task that named no run: its Update names none, and any run takes it. */
    b = one_client_round("mlp:6-5-3");
    feed_and_train(b, c, 9);
    fls_core_set_run_id(b, 0x3333);
    assert_int_equal(flc_core_update(c, &up), FL_OK);
    w = wire(&up);
    assert_int_equal(fls_core_on_message(b, 9, w, 0.1), FL_OK);
    flp_msg_free(w);
    flc_core_free(c);
    fls_core_free(b);
}

/* Plug-in trainers of test_borrowed_weights: mode 0 checks that params hold the received weights
 * and calls the built-in trainer, mode 1 calls it straight (a wrapper), modes 2 and 3 train
 * nothing. */
typedef struct borrow_plugin {
    flc_core *core;
    int mode;
    const float *expect;
    size_t n;
    int filled;
} borrow_plugin;

static fl_status borrow_train(void *user, const flc_core_job *job, float *params,
                              uint64_t *n_samples, double *loss)
{
    borrow_plugin *p = user;
    if (p->mode == 0)
        p->filled = memcmp(params, p->expect, p->n * sizeof(float)) == 0;
    if (p->mode <= 1)
        return flc_core_builtin_train(p->core, job, params, n_samples, loss);
    *n_samples = 1;
    *loss = 0.5;
    return FL_OK;
}

/* A core given the received weights borrowed (flc_core_set_weights_borrowed, as the simulator
 * does for shared keep-sets) produces the same update bytes as one that decoded the chunks, with
 * and without FedProx (whose anchor is the received weights); and the call's states. Its built-in
 * trainer starts from the borrowed weights without a copy; a plug-in gets them copied, unless it
 * only wraps the built-in one (flc_core_set_trainer_wraps_builtin); one that then trains nothing
 * sends the update of the received weights. */
static void test_borrowed_weights(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    make_data(&f);
    for (int prox = 0; prox < 2; prox++) {
        fls_core *srv = fd_round(0, "none", prox ? 0.5f : 0.0f); /* one shared keep-set */
        for (uint32_t k = 0; k < K; k++) {
            char id[16];
            snprintf(id, sizeof id, "c%u", k);
            const flc_core_config cc = {id, k, 11, &f.views[k], NULL, NULL, {0}, NULL};
            flc_core *dec = NULL, *bor = NULL;
            assert_int_equal(flc_core_new(&cc, &dec), FL_OK);
            assert_int_equal(flc_core_new(&cc, &bor), FL_OK);
            feed_and_train(srv, dec, k);
            const float *w = flc_core_weights(dec);
            assert_non_null(w);
            assert_int_equal(flc_core_set_weights_borrowed(bor, w, 1), FL_ERR_STATE); /* no task */
            flp_msg task;
            assert_int_equal(fls_core_task(srv, k, &task), FL_OK);
            assert_int_equal(flc_core_on_message(bor, &task), FL_OK);
            assert_int_equal(flc_core_set_weights_borrowed(bor, NULL, 1), FL_ERR_INVALID_ARG);
            assert_int_equal(flc_core_set_weights_borrowed(bor, w, 1234), FL_OK);
            assert_true(flc_core_ready(bor));
            assert_ptr_equal(flc_core_weights(bor), w);
            assert_int_equal(flc_core_set_weights_borrowed(bor, w, 1), FL_ERR_STATE); /* ready */
            assert_int_equal(flc_core_train(bor), FL_OK);
            assert_int_equal(flc_core_last_stats(bor)->bytes_down, 1234);
            size_t la = 0, lb = 0;
            uint8_t *a = update_bytes(dec, &la), *b = update_bytes(bor, &lb);
            assert_int_equal(la, lb);
            assert_memory_equal(a, b, la);
            /* once a chunk came, the weights come as chunks */
            assert_int_equal(flc_core_on_message(bor, &task), FL_OK);
            const size_t cap = fls_core_task_chunk_bound(srv);
            uint8_t *buf = malloc(cap);
            flp_msg cm = {.version = FLP_VERSION, .type = FLP_CHUNK, .round = task.round, .sender = ""};
            size_t len;
            assert_int_equal(fls_core_task_chunk(srv, k, 0, 0, buf, cap, &len, &cm.chunk), FL_OK);
            assert_int_equal(flc_core_on_message(bor, &cm), FL_OK);
            assert_int_equal(flc_core_set_weights_borrowed(bor, w, 1), FL_ERR_STATE);
            free(buf);
            /* plug-in trainers: 0 and 1 give the built-in trainer's bytes, 2 (a wrapper that
             * trains nothing) those of 3 (a plug-in that trains nothing) */
            uint8_t *pb[4];
            size_t pl[4];
            for (int mode = 0; mode < 4; mode++) {
                borrow_plugin bp = {NULL, mode, w, flc_core_sub_arch(dec)->n_params, 0};
                const flc_core_config pc = {id, k, 11, &f.views[k], borrow_train, &bp, {0}, NULL};
                assert_int_equal(flc_core_new(&pc, &bp.core), FL_OK);
                flc_core_set_trainer_wraps_builtin(bp.core, mode == 1 || mode == 2);
                assert_int_equal(flc_core_on_message(bp.core, &task), FL_OK);
                assert_int_equal(flc_core_set_weights_borrowed(bp.core, w, 1), FL_OK);
                assert_int_equal(flc_core_train(bp.core), FL_OK);
                pb[mode] = update_bytes(bp.core, &pl[mode]);
                if (mode == 0)
                    assert_true(bp.filled);
                flc_core_free(bp.core);
            }
            for (int mode = 0; mode < 2; mode++) {
                assert_int_equal(pl[mode], la);
                assert_memory_equal(pb[mode], a, la);
            }
            assert_int_equal(pl[2], pl[3]);
            assert_memory_equal(pb[2], pb[3], pl[2]);
            for (int mode = 0; mode < 4; mode++)
                free(pb[mode]);
            free(a);
            free(b);
            flc_core_free(dec);
            flc_core_free(bor);
        }
        fls_core_free(srv);
    }
    free_fixture(&f);
}

/* The fuzz_client seed: a real Task of a small mlp and its weight chunks, each length-prefixed.
 * FEDROP_WRITE_SEEDS=1 rewrites tests/fuzz/corpus/client/seed-task.bin; otherwise the committed
 * seed must still drive a client core to a trained update (so the seed stays meaningful). */
static void test_fuzz_seed(void **state)
{
    (void)state;
    fls_config cfg = fls_config_default();
    snprintf(cfg.arch, sizeof cfg.arch, "mlp:6-5-3");
    cfg.policy.kind = FLS_POLICY_FD;
    cfg.clients_per_round = 1;
    cfg.overcommit = 1.0;
    cfg.chunk_elems = 16;
    snprintf(cfg.down_codec, sizeof cfg.down_codec, "q8+zstd");
    fls_core *srv = NULL;
    assert_int_equal(fls_core_new(&cfg, &srv), FL_OK);
    assert_int_equal(fls_core_client_join(srv, 7, 3, 0.0), FL_OK);
    assert_int_equal(fls_core_tick(srv, 0.0), FL_OK);
    fls_event ev;
    while (fls_core_poll(srv, &ev))
        ;
    uint8_t seed[1 << 14];
    size_t len = 1;
    seed[0] = 3; /* fuzz_client mode: a message sequence */
    flp_msg task;
    assert_int_equal(fls_core_task(srv, 7, &task), FL_OK);
    size_t w = 0;
    assert_int_equal(flp_encode(seed + len + 2, sizeof seed - len - 2, &w, &task, NULL, NULL, 0), FL_OK);
    seed[len] = (uint8_t)w;
    seed[len + 1] = (uint8_t)(w >> 8);
    len += 2 + w;
    uint8_t buf[4096];
    for (uint32_t t = 0; t < task.task.n_tensors; t++)
        for (uint32_t i = 0; i < task.task.tensors[t].n_chunks; i++) {
            flp_msg cm = {.version = FLP_VERSION, .type = FLP_CHUNK, .round = task.round, .sender = ""};
            size_t pl = 0;
            assert_int_equal(fls_core_task_chunk(srv, 7, t, i, buf, sizeof buf, &pl, &cm.chunk), FL_OK);
            assert_int_equal(flp_encode(seed + len + 2, sizeof seed - len - 2, &w, &cm, NULL, NULL, 0), FL_OK);
            seed[len] = (uint8_t)w;
            seed[len + 1] = (uint8_t)(w >> 8);
            len += 2 + w;
        }
    fls_core_free(srv);
    char path[4096];
    const char *root = getenv("FEDROP_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/client/seed-task.bin", root ? root : ".");
    if (getenv("FEDROP_WRITE_SEEDS")) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(seed, 1, len, f), len);
        fclose(f);
    }
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t got[1 << 14];
    const size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    /* Replay it into a client core, as the fuzz target does. */
    int calls = 0;
    const flc_core_config cc = {"fuzz", 7, 1, NULL, plus_quarter, &calls, {0}, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    const uint8_t *p = got + 1;
    size_t left = n - 1;
    while (left >= 2) {
        const size_t l = (size_t)p[0] | (size_t)p[1] << 8;
        assert_true(l <= left - 2);
        flp_msg *m = NULL;
        assert_int_equal(flp_decode(&m, p + 2, l, NULL, NULL, 0), FL_OK);
        assert_int_equal(flc_core_on_message(c, m), FL_OK);
        flp_msg_free(m);
        p += 2 + l;
        left -= 2 + l;
    }
    assert_true(flc_core_ready(c));
    assert_int_equal(flc_core_train(c), FL_OK);
    assert_int_equal(calls, 1);
    flc_core_free(c);
}

/* A task for a model above the client's parameter cap is refused before anything is allocated. */
static void test_param_cap(void **state)
{
    (void)state;
    fls_core *srv = one_client_round("mlp:100-100-10");
    flp_msg task;
    assert_int_equal(fls_core_task(srv, 9, &task), FL_OK);
    int calls = 0;
    const flc_core_config cc = {"dev", 9, 5, NULL, plus_quarter, &calls, {0}, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    flc_core_set_max_params(c, 1000);
    assert_int_equal(flc_core_on_message(c, &task), FL_ERR_MODEL_SPEC);
    assert_false(flc_core_ready(c));
    flc_core_free(c);
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    flc_core_set_max_params(c, 20000);
    assert_int_equal(flc_core_on_message(c, &task), FL_OK);
    flc_core_free(c);
    fls_core_free(srv);
}

/* Every Task the core refuses is said, with what is wrong, in flc_core_task_error (the text of the
 * host's Error to the server) and in a line at error level. A keep-set whose full widths are not
 * the model's, one whose units do not fit it, and a tensor list shorter than the submodel's were
 * refused with neither: libflclient then logged only "told the server its task was refused here"
 * (info), and told the server a bare status. */
static int g_refusal_lines;

static void count_refusal_lines(void *user, fl_log_level level, const char *msg)
{
    (void)user;
    if (level == FL_LOG_ERROR && strstr(msg, "task for round"))
        g_refusal_lines++;
}

static void test_task_refusals_said(void **state)
{
    (void)state;
    fls_core *srv = one_client_round("mlp:6-5-3");
    flp_msg task;
    assert_int_equal(fls_core_task(srv, 9, &task), FL_OK);
    int calls = 0;
    const flc_core_config cc = {"dev", 9, 5, NULL, plus_quarter, &calls,
                                {count_refusal_lines, NULL, FL_LOG_DEBUG}, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    const char *what[] = {"full widths", "units", "tensors"};
    const fl_status want[] = {FL_ERR_KEEPSET, FL_ERR_KEEPSET, FL_ERR_WIRE_SHAPE};
    for (int k = 0; k < 3; k++) {
        flp_msg *m = wire(&task);
        flp_layer_keep *l = (flp_layer_keep *)&m->task.layers[0];
        if (k == 0)
            l->full_units++;
        else if (k == 1)
            ((uint32_t *)l->units)[1] = l->units[0]; /* a unit kept twice */
        else
            m->task.n_tensors--;
        g_refusal_lines = 0;
        const fl_status st = flc_core_on_message(c, m);
        flp_msg_free(m);
        if (st != want[k] || !flc_core_task_error(c)[0] || g_refusal_lines != 1)
            fail_msg("%s: status %d (want %d), why '%s', %d line(s) at error level", what[k],
                     (int)st, (int)want[k], flc_core_task_error(c), g_refusal_lines);
        assert_false(flc_core_busy(c));
    }
    flp_msg *m = wire(&task); /* and the Task as sent is taken */
    assert_int_equal(flc_core_on_message(c, m), FL_OK);
    assert_string_equal(flc_core_task_error(c), "");
    flp_msg_free(m);
    flc_core_free(c);
    fls_core_free(srv);
}

/* memory_bytes with a top-k uplink: the client keeps, per parameter of the full model, the
 * error-feedback residual and its rewind copy (libflclient turns the rewind point on), 8 bytes, on
 * top of 16 per submodel parameter. The limit at exactly that takes the Task, a byte less refuses
 * it; the server's selection uses the same figure (fls_core_train_memory). An estimate of 4 bytes
 * per full-model parameter took Tasks that need 4 more per parameter than the device said. */
/* A Task whose batch is above the client's samples (a server's 100,000 on 60, or any uint32 the
 * wire allows) trains one batch of the samples, as a batch of exactly that many does, to the same
 * bytes; the training runtime is sized for the samples, not for the batch (a batch of 2^32 - 1
 * cannot be allocated at all). */
static int g_cut_lines;

static void count_cut_lines(void *user, fl_log_level level, const char *msg)
{
    (void)user;
    if (level == FL_LOG_INFO && strstr(msg, "training on 60 of the 500 local samples, evenly spaced"))
        g_cut_lines++;
}

static void test_batch_above_samples(void **state)
{
    (void)state;
    g_cut_lines = 0;
    fixture f;
    memset(&f, 0, sizeof f);
    make_data(&f);
    fls_core *srv = fd_round(1, "none", 0.0f); /* max_samples 60 */
    uint8_t *want = NULL;
    size_t want_len = 0;
    const uint32_t batches[] = {60, 100000, UINT32_MAX};
    for (int b = 0; b < 3; b++) {
        /* the Task's max_samples (60) cuts the 500 samples: said once, at INFO */
        const fl_logger lg = {count_cut_lines, NULL, FL_LOG_DEBUG};
        const flc_core_config cc = {"c0", 0, 11, &f.views[0], NULL, NULL, lg, NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        feed_task_with(srv, c, 0, batches[b], 0);
        if (flc_core_train(c) != FL_OK)
            fail_msg("batch %u: %s", batches[b], flc_core_train_error(c));
        assert_int_equal(flc_core_last_stats(c)->n_samples, 60);
        assert_int_equal(g_cut_lines, b + 1);
        size_t len = 0;
        uint8_t *got = update_bytes(c, &len);
        if (!want) {
            want = got;
            want_len = len;
        } else {
            assert_int_equal(len, want_len);
            assert_memory_equal(got, want, want_len);
            free(got);
        }
        flc_core_free(c);
    }
    free(want);
    fls_core_free(srv);
    free_fixture(&f);
}

/* The Task's max_samples cuts a label-sorted local set (as a Dirichlet or shards partition deals
 * it) to evenly spaced rows, every class among them: the update equals that of a client holding
 * exactly those rows. Until 2026-12-07 the cut took the first rows, here class 0 alone. */
static void test_max_samples_evenly_spaced(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    make_data(&f);
    /* client 0's 500 rows sorted by label (row r's label is r % CLASSES) */
    uint32_t sorted[500], picked[60];
    size_t n = 0;
    for (int cl = 0; cl < CLASSES; cl++)
        for (uint32_t i = 0; i < 500; i++)
            if (f.train->y[f.idx[0][i]] == cl)
                sorted[n++] = f.idx[0][i];
    assert_int_equal(n, 500);
    int per_class[CLASSES] = {0};
    for (size_t i = 0; i < 60; i++) {
        picked[i] = sorted[i * 500 / 60];
        per_class[f.train->y[picked[i]]]++;
    }
    for (int cl = 0; cl < CLASSES; cl++)
        assert_int_equal(per_class[cl], 15);
    const flm_samples all = {f.train->x, NULL, f.train->y, sorted, 500};
    const flm_samples few = {f.train->x, NULL, f.train->y, picked, 60};
    fls_core *srv = fd_round(1, "none", 0.0f); /* max_samples 60 */
    uint8_t *got[2];
    size_t len[2];
    for (int v = 0; v < 2; v++) {
        const flc_core_config cc = {"c0", 0, 11, v ? &few : &all, NULL, NULL, {0}, NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        feed_task_with(srv, c, 0, 20, 0);
        if (flc_core_train(c) != FL_OK)
            fail_msg("view %d: %s", v, flc_core_train_error(c));
        assert_int_equal(flc_core_last_stats(c)->n_samples, 60);
        got[v] = update_bytes(c, &len[v]);
        flc_core_free(c);
    }
    assert_int_equal(len[0], len[1]);
    if (memcmp(got[0], got[1], len[0]) != 0)
        fail_msg("the cut of the 500 sorted rows did not train on the 60 evenly spaced ones");
    free(got[0]);
    free(got[1]);
    fls_core_free(srv);
    free_fixture(&f);
}

static int g_epoch_lines;

static void count_epoch_lines(void *user, fl_log_level level, const char *msg)
{
    (void)user;
    if (level == FL_LOG_WARN && strstr(msg, "the task asks for 2147483648 local epochs, more than "
                                       "the built-in trainer runs (2147483647)"))
        g_epoch_lines++;
}

/* The wire takes any epoch count; the built-in trainer counts them in an int: a Task above that
 * fails its training with a reason, not as a negative count's "invalid argument" alone. */
static void test_epochs_above_int_max(void **state)
{
    (void)state;
    g_epoch_lines = 0;
    fixture f;
    memset(&f, 0, sizeof f);
    make_data(&f);
    fls_core *srv = fd_round(1, "none", 0.0f);
    const fl_logger lg = {count_epoch_lines, NULL, FL_LOG_DEBUG};
    const flc_core_config cc = {"c0", 0, 11, &f.views[0], NULL, NULL, lg, NULL};
    flc_core *c = NULL;
    assert_int_equal(flc_core_new(&cc, &c), FL_OK);
    feed_task_with(srv, c, 0, 0, 0x80000000u);
    assert_int_not_equal(flc_core_train(c), FL_OK);
    assert_int_equal(g_epoch_lines, 1);
    flc_core_free(c);
    fls_core_free(srv);
    free_fixture(&f);
}

static void test_memory_limit_counts_rewind_copy(void **state)
{
    (void)state;
    fls_core *srv = fd_round(1, "topk0.3+q8+zstd", 0.0f);
    const size_t full = (size_t)FEAT * 16 + 16 + 16 * CLASSES + CLASSES;
    const size_t sub = (size_t)FEAT * 8 + 8 + 8 * CLASSES + CLASSES; /* keep 0.5 of 16 */
    const uint64_t need = 16 * (uint64_t)sub + 8 * (uint64_t)full;
    assert_int_equal(flc_core_memory_need(sub, full, 1), need);
    assert_int_equal(flc_core_memory_need(sub, full, 0), 16 * (uint64_t)sub);
    assert_int_equal(fls_core_train_memory(srv), need);
    flp_msg task;
    assert_int_equal(fls_core_task(srv, 0, &task), FL_OK);
    for (int k = 0; k < 2; k++) {
        const flc_core_config cc = {"c0", 0, 11, NULL, plus_quarter, &(int){0}, {0}, NULL};
        flc_core *c = NULL;
        assert_int_equal(flc_core_new(&cc, &c), FL_OK);
        flc_core_keep_rewind_point(c, 1);
        flc_core_set_memory_limit(c, need - (k == 0));
        assert_int_equal(flc_core_on_message(c, &task), k == 0 ? FL_ERR_MODEL_SPEC : FL_OK);
        if (k == 0 && !strstr(flc_core_task_error(c), "needs about"))
            fail_msg("refusal '%s'", flc_core_task_error(c));
        flc_core_free(c);
    }
    fls_core_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_trainer_and_errors),
        cmocka_unit_test(test_failed_task_not_retrained),
        cmocka_unit_test(test_plugin_odd_outputs),
        cmocka_unit_test(test_plugin_above_declared_samples),
        cmocka_unit_test(test_update_too_large_for_codec_said),
        cmocka_unit_test(test_rebind_and_take_payload),
        cmocka_unit_test(test_wrapped_builtin_failure_wording),
        cmocka_unit_test(test_epochs_above_int_max),
        cmocka_unit_test(test_rewind_replays_round),
        cmocka_unit_test(test_cancel_keeps_residual),
        cmocka_unit_test(test_drop_update_restores_residual),
        cmocka_unit_test(test_failed_encoding_keeps_residual),
        cmocka_unit_test(test_new_run_resets_residual),
        cmocka_unit_test(test_update_of_another_run_refused),
        cmocka_unit_test(test_rewind_after_swap),
        cmocka_unit_test(test_borrowed_weights),
        cmocka_unit_test(test_fuzz_seed),
        cmocka_unit_test(test_param_cap),
        cmocka_unit_test(test_task_refusals_said),
        cmocka_unit_test(test_memory_limit_counts_rewind_copy),
        cmocka_unit_test(test_batch_above_samples),
        cmocka_unit_test(test_max_samples_evenly_spaced),
        cmocka_unit_test(test_rounds_afd_learn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
