/* flsim_run.c: one simulation run: the server core, client cores on a thread pool, the virtual
 * clock, evaluation, and (optionally) MPI ranks.
 *
 * A round, as the host loop runs it:
 *   1. availability: clients join / leave the server core (fls_core_client_join / _leave);
 *   2. fls_core_tick(vt) starts the round: FLS_EV_TASK events name the selected clients;
 *   3. client phase (parallel): the main thread pulls each selected client's Task and weight
 *      chunks from the server core (fls_core_task, fls_core_task_chunk) into a small ring of
 *      slots; worker threads take a slot, build that client's flc_core on its data shard, feed it
 *      the Task and chunks (with a shared keep-set, once one core has decoded the round's chunks,
 *      the others borrow the decoded weights: flc_core_set_weights_borrowed), release the slot,
 *      train, and keep the encoded update (payload bytes);
 *   4. MPI only: the ranks exchange the encoded updates (MPI_Allgatherv), so that every rank holds
 *      every update of the round;
 *   5. feed phase (main thread, every rank alike): each update's virtual finish time is
 *      vt + download + compute + upload (flsim_client_timing); updates go to the server core in
 *      order of (finish time, client) with now = finish time, their payloads lent to the core
 *      until the update is done (fls_core_on_message_borrowed); a deadline is a tick at
 *      vt + deadline while the round is open; whatever the core refuses as late is counted late;
 *   6. the core closes the round (quorum, deadline or exhausted), asks for an evaluation
 *      (FLS_EV_EVALUATE: the test set in fixed blocks over the threads and ranks), then emits
 *      FLS_EV_ROUND_END; vt becomes the close time.
 * Everything that decides the model happens in the server core in a deterministic order, and
 * every client's training is a pure function of its task and data: the same seed gives the same
 * bits whatever the thread count or the number of ranks.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fl_mem.h"
#include "fl_rng.h"
#include "fl_fs.h"
#include "fl_sha256.h"
#include "fl_time.h"
#include "flc_core.h"
#include "flsim_fold.h"
#include "flm_blas.h"
#include "flm_model.h"
#include "fls_core.h"
#include "flsim.h"
#include "flsim_internal.h"
#include "flz.h"

#ifdef FLSIM_HAVE_MPI
#include <mpi.h>
#endif

#define EVAL_BLOCK 256
#define WAKE_DONE 8 /* trained jobs that wake the main thread (see struct sim) */
/* Updates fed to the server core at once by default, their chunks interleaved (feed_group; at
 * most FEED_GROUP_MAX with flsim_config.feed_group). Measured with bench_sim (mlp, 1000 a round,
 * 2 cores): server ingest 99-101 us a client one at a time, 79-83 us by 4, 76-80 by 8, 78-86 by 16
 * (groups are also cut short by the jobs ready). */
#define FEED_GROUP 8
#define FEED_GROUP_MAX 64

double flsim_peak_rss_mb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)ru.ru_maxrss / 1024.0;
}

/* ---- data ------------------------------------------------------------------------------------ */

fl_status flsim_blas_name(char *out, size_t cap)
{
    /* Every GEMM of a run is single-threaded on the run's own threads: no OpenBLAS pool. */
    const fl_status st = flm_blas_init_threads(1);
    flm_blas_set_threads(1);
    flm_blas_kernel_name(out, cap); /* "+AVX512" or "+FLM_NO_SKINNY" where they say more */
    return st;
}

int flsim_named_dataset(const char *s)
{
    return strcmp(s, "fashion-mnist") == 0 || strcmp(s, "mnist") == 0;
}

/* The spec of the test set named by --test-dataset: a bare name is that set's test split. */
static void test_spec(const flsim_config *cfg, char *spec, size_t cap)
{
    if (flsim_named_dataset(cfg->test_dataset))
        snprintf(spec, cap, "%s:test", cfg->test_dataset);
    else
        snprintf(spec, cap, "%s", cfg->test_dataset);
}

/* A --test-dataset that does not load is named as such: its message names only a file, which
 * beside a --dataset of the same kind ("idx:a,b" and "idx:c,d") says neither which option nor
 * that the training set loaded. */
static void said_of_test(const flsim_config *cfg, char *err, size_t errlen)
{
    if (!err || !errlen)
        return;
    char why[1024];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, errlen, "--test-dataset %s: %s", cfg->test_dataset, why);
}

/* --train-samples: keep the first n training samples (all of them if the set is smaller, as
 * when an experiment preset's count meets a smaller --dataset). */
static fl_status truncate_train(flsim_data *d, const flsim_config *cfg)
{
    if (!cfg->train_samples || cfg->train_samples >= d->train->N)
        return FL_OK;
    return flm_dataset_keep(d->train, NULL, cfg->train_samples);
}

/* The held-out split of a spec without one: idx[0..N-nt) the training samples, idx[N-nt..N) the
 * test samples, each in file order, nt in *nt. Without users, the last floor(frac * N) samples;
 * with users, the last floor(frac * n_u) of each user's n_u samples (a user of fewer than 1/frac
 * samples keeps them all for training). */
static fl_status held_out_split(const flm_dataset *all, double frac, uint32_t *idx, size_t *nt_out)
{
    const size_t N = all->N;
    size_t nt = 0;
    if (!all->user) {
        nt = (size_t)floor(frac * (double)N);
        *nt_out = nt > N ? N : nt;
        for (size_t i = 0; i < N; i++)
            idx[i] = (uint32_t)i;
        return FL_OK;
    }
    size_t *left = calloc(all->n_users ? all->n_users : 1, sizeof *left);
    if (!left)
        return FL_ERR_NOMEM;
    for (size_t i = 0; i < N; i++) {
        if (all->user[i] >= all->n_users) { /* as the natural partition checks it */
            free(left);
            return FL_ERR_INVALID_ARG;
        }
        left[all->user[i]]++;
    }
    for (size_t u = 0; u < all->n_users; u++) {
        const size_t t = (size_t)floor(frac * (double)left[u]);
        nt += t;
        left[u] -= t; /* now: the user's training samples still to come */
    }
    size_t tr = 0, te = N - nt;
    for (size_t i = 0; i < N; i++) {
        size_t *l = &left[all->user[i]];
        if (*l) {
            (*l)--;
            idx[tr++] = (uint32_t)i;
        } else {
            idx[te++] = (uint32_t)i;
        }
    }
    free(left);
    *nt_out = nt;
    return FL_OK;
}

static fl_status data_load_here(flsim_data *d, const flsim_config *cfg, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    char spec[FLSIM_STR + 16];
    /* Synthetic data is part of the problem, not of the run: a fixed data seed. */
    const uint64_t data_seed = 1;
    fl_status st;
    if (flsim_named_dataset(cfg->dataset)) {
        snprintf(spec, sizeof spec, "%s:train", cfg->dataset);
        st = flm_dataset_load_spec(&d->train, spec, data_seed, FLM_SPLIT_TRAIN, err, errlen);
        if (st != FL_OK)
            return st;
        if (!cfg->test_dataset[0])
            snprintf(spec, sizeof spec, "%s:test", cfg->dataset);
        else
            test_spec(cfg, spec, sizeof spec);
        st = flm_dataset_load_spec(&d->test, spec, data_seed, FLM_SPLIT_HELDOUT, err, errlen);
        if (st != FL_OK && cfg->test_dataset[0])
            said_of_test(cfg, err, errlen);
        if (st == FL_OK)
            st = truncate_train(d, cfg);
        if (st != FL_OK)
            flsim_data_free(d);
        return st;
    }
    flm_dataset *all = NULL;
    st = flm_dataset_load_spec(&all, cfg->dataset, data_seed, FLM_SPLIT_TRAIN, err, errlen);
    if (st != FL_OK) {
        /* the option named, as --test-dataset's and --trace's are: a spec's file alone ("/x:
         * cannot open") did not say which option named it */
        if (err && errlen) {
            char why[1024];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "--dataset %s: %s", cfg->dataset, why);
        }
        return st;
    }
    if (cfg->test_dataset[0]) {
        d->train = all;
        test_spec(cfg, spec, sizeof spec);
        st = flm_dataset_load_spec(&d->test, spec, data_seed, FLM_SPLIT_HELDOUT, err, errlen);
        if (st != FL_OK)
            said_of_test(cfg, err, errlen);
        if (st == FL_OK)
            st = truncate_train(d, cfg);
        if (st != FL_OK)
            flsim_data_free(d);
        return st;
    }
    /* Hold out the last test_frac of the samples; with users (LEAF), the last test_frac of each
     * user's samples, as LEAF splits, so that every user keeps its first samples for training
     * (a tail of the file would be whole users: clients with nothing to train on, tested on
     * writers no client has). */
    uint32_t *idx = malloc(all->N * sizeof *idx);
    size_t nt = 0;
    st = idx ? held_out_split(all, cfg->test_frac, idx, &nt) : FL_ERR_NOMEM;
    if (st == FL_ERR_INVALID_ARG && err && errlen)
        snprintf(err, errlen, "dataset %s: a sample's user lies outside its user table",
                 cfg->dataset);
    if (st == FL_OK && (nt < 1 || nt >= all->N)) {
        /* name the option and what to do (until 2026-12-07 "1 samples cannot give a test split
         * of 0.143", --test-frac unnamed): a larger one where the largest (0.9) would hold a
         * sample out, else only another dataset or a test set can */
        size_t nt_max = 0;
        const int can = held_out_split(all, 0.9, idx, &nt_max) == FL_OK && nt_max >= 1 &&
                        nt_max < all->N;
        const char *const each = all->user ? " (taken from each user's samples)" : "";
        const char *const s = all->N == 1 ? "" : "s";
        if (err && errlen && can)
            snprintf(err, errlen, "dataset %s: %zu sample%s cannot give a test split with "
                     "--test-frac %.3g%s: give a larger --test-frac (at most 0.9), or a test set "
                     "with --test-dataset", cfg->dataset, all->N, s, cfg->test_frac, each);
        else if (err && errlen)
            snprintf(err, errlen, "dataset %s: %zu sample%s cannot give a test split with any "
                     "--test-frac%s: give a larger dataset, or a test set with --test-dataset",
                     cfg->dataset, all->N, s, each);
        st = FL_ERR_INVALID_ARG;
    }
    /* the test samples copied out, then the training samples kept in place (idx[0..ntr) is in
     * file order): the set is never held twice */
    const size_t ntr = all->N - nt;
    if (st == FL_OK)
        st = flm_dataset_subset(&d->test, all, idx + ntr, nt);
    if (st == FL_OK)
        st = flm_dataset_keep(all, idx, ntr);
    free(idx);
    if (st == FL_OK)
        d->train = all;
    else
        flm_dataset_free(all);
    if (st == FL_OK)
        st = truncate_train(d, cfg);
    if (st != FL_OK)
        flsim_data_free(d);
    return st;
}

/* A collective call under MPI with several ranks (every rank calls it at the same point): the
 * ranks agree whether *st failed on any. Where one did, every rank leaves failed, with its own
 * status or with FL_ERR_IO and `other` ("another MPI rank ... (its message says why)") in err,
 * and *said (may be NULL) tells which: 1 its own, 2 another's (flsim_result.err_agreed). 1 when
 * every rank is ok. */
static int agree(fl_status *st, const char *other, char *err, size_t errlen, int *said)
{
    if (flsim_ranks_all_ok(*st == FL_OK))
        return 1;
    if (said)
        *said = *st == FL_OK ? 2 : 1;
    if (*st == FL_OK) {
        if (err && errlen)
            snprintf(err, errlen, "%s", other);
        *st = FL_ERR_IO;
    }
    return 0;
}

#ifdef FLSIM_HAVE_MPI
static int hash_dataset(fl_sha256 *h, const flm_dataset *d)
{
    if (!d)
        return 0;
    const uint64_t shape[7] = {(uint64_t)d->kind, d->N, (uint64_t)d->C, (uint64_t)d->H,
                               (uint64_t)d->W, (uint64_t)d->classes, d->user ? 1u : 0u};
    const size_t n = d->N * d->sample_len;
    return fl_sha256_update(h, shape, sizeof shape) == FL_OK &&
           (!d->x || fl_sha256_update(h, d->x, n * sizeof *d->x) == FL_OK) &&
           (!d->tokens || fl_sha256_update(h, d->tokens, n * sizeof *d->tokens) == FL_OK) &&
           fl_sha256_update(h, d->y, d->N * sizeof *d->y) == FL_OK &&
           (!d->user || fl_sha256_update(h, d->user, d->N * sizeof *d->user) == FL_OK);
}

/* Under MPI with several ranks, each compares the SHA-256 of what it loaded with rank 0's (a
 * collective call; the paths may differ from host to host, the samples may not). FL_OK when all
 * agree; else FL_ERR_CONFIG on a rank that differs and FL_ERR_IO on the others. */
static fl_status ranks_same_data(const flsim_data *d, char *err, size_t errlen, int *said)
{
    int inited = 0, size = 1, rank = 0;
    MPI_Initialized(&inited);
    if (inited) {
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    }
    if (size < 2)
        return FL_OK;
    fl_sha256 *h = NULL;
    uint8_t mine[FL_SHA256_LEN + 1] = {0}, theirs[FL_SHA256_LEN + 1];
    mine[FL_SHA256_LEN] = fl_sha256_new(&h) == FL_OK && hash_dataset(h, d->train) &&
                          hash_dataset(h, d->test) && fl_sha256_final(h, mine) == FL_OK;
    fl_sha256_free(h);
    memcpy(theirs, mine, sizeof theirs);
    MPI_Bcast(theirs, (int)sizeof theirs, MPI_BYTE, 0, MPI_COMM_WORLD);
    fl_status st = FL_OK;
    if (!mine[FL_SHA256_LEN]) {
        if (err && errlen)
            snprintf(err, errlen, "could not digest the data to compare it with the other MPI "
                     "ranks'");
        st = FL_ERR_NOMEM;
    } else if (theirs[FL_SHA256_LEN] && memcmp(mine, theirs, FL_SHA256_LEN) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "MPI rank %d's data differ from rank 0's (SHA-256 of the loaded "
                     "training and test samples): every host must hold the same dataset "
                     "(--dataset, --test-dataset, FEDROP_DATA_DIR)", rank);
        st = FL_ERR_CONFIG;
    }
    agree(&st, "another MPI rank's data differ from rank 0's (its message says how)", err, errlen,
          said);
    return st;
}
#endif

fl_status flsim_data_load_said(flsim_data *d, const flsim_config *cfg, char *err, size_t errlen,
                               int *said)
{
    fl_status st = data_load_here(d, cfg, err, errlen);
    const int loaded = st == FL_OK;
    if (!agree(&st, "another MPI rank could not load the data (its message says why)", err,
               errlen, said)) {
        if (loaded)
            flsim_data_free(d);
        return st;
    }
#ifdef FLSIM_HAVE_MPI
    /* here, once a load (an experiment's runs share one), not in every run */
    if ((st = ranks_same_data(d, err, errlen, said)) != FL_OK)
        flsim_data_free(d);
#endif
    return st;
}

fl_status flsim_data_load(flsim_data *d, const flsim_config *cfg, char *err, size_t errlen)
{
    return flsim_data_load_said(d, cfg, err, errlen, NULL);
}

void flsim_data_free(flsim_data *d)
{
    if (!d)
        return;
    flm_dataset_free(d->train);
    flm_dataset_free(d->test);
    memset(d, 0, sizeof *d);
}

void flsim_model_spec(const flsim_config *cfg, const flm_dataset *ds, char *out, size_t cap)
{
    if (strcmp(cfg->model, "mlp") == 0)
        snprintf(out, cap, "mlp:%zu-200-200-%d", ds->sample_len, ds->classes);
    else if (strcmp(cfg->model, "cnn") == 0)
        snprintf(out, cap, "cnn:%d:%dx%dx%d", ds->classes, ds->H, ds->W, ds->C);
    else if (strcmp(cfg->model, "moge") == 0)
        snprintf(out, cap, "moge:%zu:128:4:4:1:%d", ds->sample_len, ds->classes);
    else
        snprintf(out, cap, "%s", cfg->model);
}

/* ---- one run's state ----------------------------------------------------------------------- */

typedef struct job {
    uint32_t key;
    int mine;                 /* trained on this rank */
    fl_status st;
    uint64_t n_samples;
    double loss, flops;
    uint64_t bytes_down, bytes_up;
    uint32_t n_chunks;
    uint32_t *chunk_len;
    uint8_t *pay;
    size_t pay_len;
    double finish;            /* virtual */
    /* known before training (main thread) */
    flsim_profile prof;
    uint64_t shard_n;
    double flops_est;         /* 6 * forward FLOPs of the submodel * samples * epochs */
    double lb;                /* a lower bound of finish: t0 + latencies + download + compute
                               * + a fixed-rate upload: job_lb of the byte counts below */
    double lb_down_bytes;     /* a lower bound of its download's bytes (exact once produced) */
    double lb_up_bytes;       /* ... of its upload's (up_fixed_bytes) */
    uint64_t up_fixed_bytes;  /* its update's bytes under a fixed-rate uplink codec, else 0 */
    double est;               /* an estimate of finish, for the processing order */
    size_t sub_params;        /* parameters of its submodel */
    double train_s;           /* wall time of its local SGD (inside flc_core_train) */
    double sgd_cpu_s;         /* thread CPU time of the same */
    double client_s;          /* wall time of its whole client core */
    double pre_cpu_s;         /* thread CPU of its client core before the training */
    double post_cpu_s;        /* thread CPU of flc_core_train outside the SGD, and take_update */
    int produced, trained, fed;
    int lb_down;              /* lb_down_bytes is the download's exact size */
} job;

typedef struct slot {
    int job;
    flp_msg task;
    uint8_t *buf;
    size_t cap;
    flp_msg *chunks;          /* this slot's own chunk messages (per-client keep-sets) */
    uint32_t n_chunks, chunks_cap;
    const flp_msg *msgs;      /* the chunks to decode: chunks, or the round's shared ones */
} slot;

typedef struct sim sim;

/* A client-phase thread: its client core lives across clients and rounds. */
/* The cores number rounds as the wire does, from 0; the simulator's own output (stdout, the
 * progress, rounds.csv) from 1. Their log lines pass through sim_log: a leading "round N"
 * becomes "round N+1", and a client core's line names its client. */
typedef struct sim_logger {
    fl_logger base;
    uint32_t key;   /* the client of a worker's core */
    int client;     /* 1: a client core's logger (name key) */
} sim_logger;

static void sim_log(void *user, fl_log_level level, const char *msg)
{
    const sim_logger *l = user;
    char who[32] = "", line[1100];
    if (l->client)
        snprintf(who, sizeof who, "client %u: ", l->key);
    unsigned long long r = 0;
    int n = 0;
    if (sscanf(msg, "round %llu%n", &r, &n) == 1 && n > 0 && (msg[n] == ':' || msg[n] == ' ')) {
        const char *rest = msg + n + (msg[n] == ':');
        snprintf(line, sizeof line, "round %llu:%s%s", r + 1, *who ? " " : "", who);
        const size_t o = strlen(line);
        snprintf(line + o, sizeof line - o, "%s", *who && *rest == ' ' ? rest + 1 : rest);
    } else {
        snprintf(line, sizeof line, "%s%s", who, msg);
    }
    l->base.fn(l->base.user, level, line);
}

typedef struct worker {
    sim *S;
    sim_logger slog;          /* its client core's logger (sim_log) */
    flc_core *core;
    double train_s;           /* the current client's local SGD, wall seconds */
    double sgd_cpu_s;         /* and thread CPU seconds */
} worker;

struct sim {
    const flsim_config *cfg;
    fl_logger log;
    char chunk_why[512];      /* why a weight chunk could not be encoded (pull_chunks), or "" */
    sim_logger server_log;    /* the server core's (sim_log) */
    const flm_dataset *train, *test;
    flm_partition *part;
    fls_core *core;
    flsim_population pop;
    flsim_trace *trace;
    uint8_t trace_sha[FL_SHA256_LEN]; /* flsim_trace_sha256 of trace, when there is one */
    uint32_t threads;
    int rank, size;
    int *mpi_counts, *mpi_displs; /* exchange's, per rank (MPI with several ranks) */
    float **resid;            /* per client, only for top-k uplinks (NULL until first trained) */
    size_t *resid_n;
    int need_resid;
    uint8_t *online;          /* per client: joined the core */
    uint32_t n_online;        /* clients joined now */
    uint32_t most_online;     /* the most joined at once while no round could start */
    uint8_t *empty;           /* per client: its shard holds no sample */
    uint32_t can_online;      /* clients that hold samples and may ever be online */
    uint32_t nonempty;        /* clients that hold samples */

    /* the round's jobs */
    job *jobs;
    size_t n_jobs, jobs_cap;

    /* client phase: written under mu by the workers and the main thread all round long, so on
     * cache lines of its own (from mu to eval_params): a field read without the lock beside
     * them (the settings, the cores, the population above) would be pulled back and forth
     * between the cores at every write (a 32-byte field added above, which shifted this block,
     * measured 0.005-0.015 more overhead_frac in bench_sim, alternated runs on a noisy host;
     * with the block aligned, as before the field) */
    _Alignas(64) pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_main;
    slot *slots;
    int n_slots;
    int *ready_q, ready_head, ready_len;
    int *free_q, free_len;
    int producer_done;
    fl_status phase_st;
    size_t *done_q, done_len;     /* jobs whose training finished, not yet seen by the main thread */
    size_t taken;                 /* tasks the workers decoded (their slots released) */
    /* Waking the main thread (each wake-up preempts a worker on a machine with as many cores as
     * workers): once WAKE_DONE jobs wait to be collected or every job trained, or once half the
     * slots are free (or the ready queue ran dry) while tasks remain to be produced. The main
     * thread's wait in client_phase is exactly the negation of these. */
    size_t done_total, n_mine;
    int wake_free;
    size_t *order;                /* processing order of the jobs (by est) */
    struct est_ent *cand;         /* feed_ready's candidates (n_jobs of them) */
    size_t feed_group;            /* updates fed at once (flsim_config.feed_group) */
    struct feed_cur *fcur;        /* (feed_group) their cursors, for feed_group */
    struct job **fjobs;           /* (feed_group) the jobs of the group feed_ready gathers */

    /* evaluation */
    _Alignas(64) const float *eval_params;
    size_t eval_n, eval_blocks;
    double *blk_correct, *blk_loss;
    size_t eval_next;
    fl_status eval_st;

    worker *workers;          /* threads of them */
    flsim_fold_pool *fold;    /* helpers of the server core's folds, or NULL */
    unsigned fold_helpers;    /* their number (flsim_threads_resolve) */

    /* shared keep-sets: the round's weight chunks, pulled once (fill_slot) */
    int sh_valid;
    flp_msg sh_task;          /* the task they were pulled for (its headers point into the core) */
    flp_msg *sh_chunks;
    uint32_t sh_chunks_cap;
    uint8_t *sh_buf;
    size_t sh_cap;
    uint64_t sh_bytes;
    /* ... and the weights they decode to, published by the first client core that decoded them
     * (0: not yet, 1: being copied, 2: valid; under mu): later clients borrow them instead of
     * decoding the same bytes again (flc_core_set_weights_borrowed). */
    float *sh_w;
    int sh_w_state;
};

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
}

/* Top-k uplinks (S->need_resid): every client that trains keeps an error-feedback residual of the
 * full model for the rest of the run (on the rank that trains it). The most this rank can come
 * to hold (every client of its share, or every selection of every round, whichever is fewer)
 * must fit this machine's memory: found now, rather than by running out of memory hours into the
 * run. FL_OK, or FL_ERR_NOMEM with the reason in why. */
/* The most clients of `of` that can come to hold a residual over the run (every one, or every
 * selection of every round, whichever is fewer). */
static double resid_clients_most(const flsim_config *cfg, double of)
{
    const double picked = ceil((double)cfg->per_round * fmax(cfg->overcommit, 1.0));
    return fmin(of, picked * (double)cfg->rounds);
}

static fl_status check_residual_memory(const sim *S, const flsim_config *cfg, size_t n_params,
                                       char *why, size_t whylen)
{
    if (!S->need_resid)
        return FL_OK;
    const double trained = resid_clients_most(cfg, ceil((double)cfg->clients / (double)S->size));
    const double need = trained * (double)n_params * sizeof(float);
    /* What the machine can give now, not its total: other processes' memory, and this run's own
     * (the data, the models, the updates of a round), is not the residuals' to take. */
    double total;
    const double have = fl_mem_available(&total);
    if (have <= 0.0 || need <= have)
        return FL_OK;
    snprintf(why, whylen,
             "%s keeps an error-feedback residual of the model's %zu parameters for every client "
             "that trains, up to %.0f clients%s here: %.1f GB, more than the %.1f GB of memory "
             "available on this machine now (of %.1f GB). Fewer --clients or --rounds, an uplink "
             "without topk, or MPI ranks on more machines (each keeps its share of the clients) "
             "would fit",
             cfg->up_codec, n_params, trained, S->size > 1 ? " on this rank" : "", need / 1e9,
             have / 1e9, total / 1e9);
    return FL_ERR_NOMEM;
}

/* ---- client phase ------------------------------------------------------------------------- */

/* Moves the trained update out of core c into job j: the chunk lengths, and the payload bytes
 * themselves (taken, not copied). */
static fl_status take_update(job *j, flc_core *c)
{
    const uint32_t n = flc_core_update_chunks(c);
    uint32_t *lens = malloc((n ? n : 1) * sizeof *lens);
    if (!lens)
        return FL_ERR_NOMEM;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        flp_msg m;
        if (flc_core_update_chunk(c, i, &m) != FL_OK) {
            free(lens);
            return FL_ERR_INTERNAL;
        }
        lens[i] = (uint32_t)m.chunk.payload_len;
        total += m.chunk.payload_len;
    }
    uint8_t *pay = NULL;
    size_t len = 0;
    if (flc_core_take_payload(c, &pay, &len) != FL_OK || len != total) {
        free(pay);
        free(lens);
        return FL_ERR_INTERNAL;
    }
    j->n_chunks = n;
    j->chunk_len = lens;
    j->pay = pay;
    j->pay_len = total;
    return FL_OK;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double process_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* The plug-in trainer of the simulator's client cores: the core's own built-in trainer, timed,
 * so that a round's "local training" is the SGD alone (not decoding, delta or encoding). */
static fl_status timed_train(void *user, const flc_core_job *job, float *params,
                             uint64_t *n_samples, double *loss)
{
    worker *w = user;
    const double t = fl_time_mono_s(), tc = thread_cpu_s();
    const fl_status st = flc_core_builtin_train(w->core, job, params, n_samples, loss);
    w->train_s += fl_time_mono_s() - t;
    w->sgd_cpu_s += thread_cpu_s() - tc;
    return st;
}

/* Trains job s->job on the worker's client core (rebound to that client: buffers, codec context
 * and training runtime are reused from client to client); releases the slot once the task is
 * decoded. */
static void run_client(sim *S, worker *w, int si)
{
    slot *s = &S->slots[si];
    const size_t ji = (size_t)s->job; /* the slot is reused once released */
    job *j = &S->jobs[ji];
    const uint32_t k = j->key;
    const uint32_t shard = (uint32_t)(k % S->part->K);
    const uint32_t *idx = NULL;
    size_t n = 0;
    flm_partition_client(S->part, shard, &idx, &n);
    const flm_samples view = {S->train->x, S->train->tokens, S->train->y, idx, n};
    const double t_begin = fl_time_mono_s(), c_begin = thread_cpu_s();
    char id[24];
    snprintf(id, sizeof id, "sim-%u", k);
    w->slog.key = k;
    const fl_logger lg = {S->log.fn ? sim_log : NULL, &w->slog, S->log.min_level};
    const flc_core_config cc = {id, k, S->cfg->seed, &view, timed_train, w, lg, NULL};
    fl_status st = w->core ? flc_core_rebind(w->core, &cc) : flc_core_new(&cc, &w->core);
    flc_core *c = w->core;
    if (st == FL_OK) /* timed_train only wraps the built-in trainer: it may start from borrowed
                      * weights without a copy */
        flc_core_set_trainer_wraps_builtin(c, 1);
    if (st == FL_OK)
        st = flc_core_on_message(c, &s->task);
    /* The round's shared chunks decode to the same weights for every client: once decoded by
     * one core, the others borrow them (one copy each instead of a decode and a copy). */
    const int shared = s->msgs == S->sh_chunks;
    int borrowed = 0;
    if (st == FL_OK && shared) {
        pthread_mutex_lock(&S->mu);
        borrowed = S->sh_w_state == 2;
        pthread_mutex_unlock(&S->mu);
        if (borrowed)
            st = flc_core_set_weights_borrowed(c, S->sh_w, j->bytes_down);
    }
    for (uint32_t i = 0; i < s->n_chunks && st == FL_OK && !borrowed; i++)
        st = flc_core_on_message(c, &s->msgs[i]);
    if (st == FL_OK && !flc_core_ready(c))
        st = FL_ERR_INTERNAL;
    if (st == FL_OK && shared && !borrowed) {
        pthread_mutex_lock(&S->mu);
        const int claim = S->sh_w_state == 0;
        if (claim)
            S->sh_w_state = 1;
        pthread_mutex_unlock(&S->mu);
        if (claim) {
            memcpy(S->sh_w, flc_core_weights(c), flc_core_sub_arch(c)->n_params * sizeof(float));
            pthread_mutex_lock(&S->mu);
            S->sh_w_state = 2;
            pthread_mutex_unlock(&S->mu);
        }
    }
    /* The slot is free again: the weights live in the client core now. */
    pthread_mutex_lock(&S->mu);
    S->free_q[S->free_len++] = si;
    S->taken++;
    if (!S->producer_done && (S->free_len >= S->wake_free || S->ready_len == 0))
        pthread_cond_signal(&S->cv_main);
    pthread_mutex_unlock(&S->mu);
    const int swapped = st == FL_OK && S->need_resid;
    if (swapped)
        flc_core_swap_residual(c, &S->resid[k], &S->resid_n[k]);
    w->train_s = w->sgd_cpu_s = 0.0;
    const double c_train = thread_cpu_s();
    if (st == FL_OK)
        st = flc_core_train(c);
    j->train_s = w->train_s;
    j->sgd_cpu_s = w->sgd_cpu_s;
    if (st == FL_OK) {
        const flc_core_stats *cs = flc_core_last_stats(c);
        j->n_samples = cs->n_samples;
        j->loss = cs->loss;
        j->flops = cs->train_flops;
        j->bytes_up = cs->bytes_up;
        st = take_update(j, c);
    }
    const double c_end = thread_cpu_s();
    j->pre_cpu_s = c_train - c_begin;
    j->post_cpu_s = c_end - c_train - w->sgd_cpu_s;
    if (swapped)
        flc_core_swap_residual(c, &S->resid[k], &S->resid_n[k]);
    j->client_s = fl_time_mono_s() - t_begin;
    pthread_mutex_lock(&S->mu);
    j->st = st;
    if ((st == FL_ERR_NOMEM || st == FL_ERR_INTERNAL) && S->phase_st == FL_OK)
        S->phase_st = st;
    S->done_q[S->done_len++] = ji;
    S->done_total++;
    if (S->phase_st != FL_OK || S->done_len >= WAKE_DONE || S->done_total == S->n_mine)
        pthread_cond_signal(&S->cv_main);
    pthread_mutex_unlock(&S->mu);
}

static void *client_worker(void *arg)
{
    worker *w = arg;
    sim *S = w->S;
    flm_blas_set_threads(1);
    for (;;) {
        pthread_mutex_lock(&S->mu);
        while (S->ready_len == 0 && !S->producer_done)
            pthread_cond_wait(&S->cv_ready, &S->mu);
        if (S->ready_len == 0) {
            pthread_mutex_unlock(&S->mu);
            return NULL;
        }
        const int si = S->ready_q[S->ready_head];
        S->ready_head = (S->ready_head + 1) % S->n_slots;
        S->ready_len--;
        pthread_mutex_unlock(&S->mu);
        run_client(S, w, si);
    }
}

/* Pulls n weight chunks of key's Task from the server core into msgs, their payloads back to back
 * into *buf (grown to n * the chunk bound); *bytes = their total. */
static fl_status pull_chunks(sim *S, uint32_t key, const flp_msg *task, uint32_t n, flp_msg *msgs,
                             uint8_t **buf, size_t *cap, uint64_t *bytes)
{
    const size_t bound = fls_core_task_chunk_bound(S->core);
    if ((size_t)n * bound > *cap) {
        uint8_t *b = realloc(*buf, (size_t)n * bound);
        if (!b)
            return FL_ERR_NOMEM;
        *buf = b;
        *cap = (size_t)n * bound;
    }
    size_t off = 0;
    uint32_t ci = 0;
    for (uint32_t t = 0; t < task->task.n_tensors; t++)
        for (uint32_t i = 0; i < task->task.tensors[t].n_chunks; i++) {
            flp_msg *m = &msgs[ci++];
            *m = flp_msg_header(FLP_CHUNK, task->round, NULL);
            size_t len = 0;
            const fl_status st = fls_core_task_chunk(S->core, key, t, i, *buf + off, *cap - off,
                                                     &len, &m->chunk);
            if (st == FL_ERR_NUMERIC) /* a finite model past the codec's range, most often */
                snprintf(S->chunk_why, sizeof S->chunk_why, "round %llu: the global model "
                         "cannot travel through --down-codec %s (tensor %s, chunk %u): %s",
                         (unsigned long long)task->round + 1, S->cfg->down_codec,
                         task->task.tensors[t].name, i, fls_core_chunk_error(S->core));
            if (st != FL_OK)
                return st;
            off += len;
        }
    *bytes = off;
    return FL_OK;
}

static fl_status grow_msgs(flp_msg **m, uint32_t *cap, uint32_t n)
{
    if (n <= *cap)
        return FL_OK;
    flp_msg *q = realloc(*m, n * sizeof *q);
    if (!q)
        return FL_ERR_NOMEM;
    *m = q;
    *cap = n;
    return FL_OK;
}

/* The task headers of a and b describe the same chunks. */
static int same_chunks(const flp_msg *a, const flp_msg *b)
{
    if (a->round != b->round || a->task.n_tensors != b->task.n_tensors)
        return 0;
    for (uint32_t t = 0; t < a->task.n_tensors; t++)
        if (a->task.tensors[t].numel != b->task.tensors[t].numel ||
            a->task.tensors[t].n_chunks != b->task.tensors[t].n_chunks ||
            a->task.tensors[t].chunk_elems != b->task.tensors[t].chunk_elems)
            return 0;
    return 1;
}

/* Pulls job ji's Task and weight chunks from the server core into slot s. With a shared keep-set
 * (every client of the round gets the same submodel, and the core encodes each chunk once per
 * round with the shared key: the same bytes for everyone) the chunks are pulled once per round
 * into S->sh_* and every slot points at them: no per-client copy of the weights. (The server
 * core's own bytes_down metric then counts one client's download; the simulator's accounting,
 * job->bytes_down, counts every client's.) */
static fl_status fill_slot(sim *S, slot *s, int ji, int shared)
{
    const uint32_t key = S->jobs[ji].key;
    s->job = ji;
    fl_status st = fls_core_task(S->core, key, &s->task);
    if (st != FL_OK)
        return st;
    uint32_t n = 0;
    for (uint32_t t = 0; t < s->task.task.n_tensors; t++)
        n += s->task.task.tensors[t].n_chunks;
    uint64_t bytes = 0;
    if (shared && S->sh_valid && same_chunks(&S->sh_task, &s->task)) {
        s->msgs = S->sh_chunks;
        bytes = S->sh_bytes;
    } else if (shared && !S->sh_valid) {
        if ((st = grow_msgs(&S->sh_chunks, &S->sh_chunks_cap, n)) != FL_OK ||
            (st = pull_chunks(S, key, &s->task, n, S->sh_chunks, &S->sh_buf, &S->sh_cap,
                              &S->sh_bytes)) != FL_OK)
            return st;
        S->sh_task = s->task;
        S->sh_valid = 1;
        s->msgs = S->sh_chunks;
        bytes = S->sh_bytes;
    } else {
        if ((st = grow_msgs(&s->chunks, &s->chunks_cap, n)) != FL_OK ||
            (st = pull_chunks(S, key, &s->task, n, s->chunks, &s->buf, &s->cap, &bytes)) != FL_OK)
            return st;
        s->msgs = s->chunks;
    }
    s->n_chunks = n;
    S->jobs[ji].bytes_down = bytes;
    S->jobs[ji].produced = 1;
    return FL_OK;
}

/* client_phase: below, after the feed helpers. */

/* ---- MPI exchange of the round's results ---------------------------------------------------- */

#ifdef FLSIM_HAVE_MPI
typedef struct wire_job {
    uint64_t index, st, n_samples, bytes_down, bytes_up, n_chunks, pay_len;
    double loss, flops;
} wire_job;

/* Every rank takes part in the collective calls whatever happened before (st_in: the round so
 * far on this rank) or in it: a rank that failed sends a count of -1, and one that cannot hold
 * the gathered updates says so before the last call, so that no rank is left waiting in a
 * collective call that another has given up. A failure seen by every rank here sets *agreed on
 * each: 1 where it is this rank's own, 2 where it is another's (FL_ERR_IO). A failure after the
 * last collective call (a copy that cannot be allocated) leaves *agreed 0: the ranks agree on it
 * after the feed. */
static fl_status exchange(sim *S, fl_status st_in, int *agreed)
{
    *agreed = 0;
    fl_status st = st_in;
    size_t mine = 0;
    uint8_t *out = NULL;
    if (st == FL_OK) {
        for (size_t i = 0; i < S->n_jobs; i++)
            if (S->jobs[i].mine) {
                const job *j = &S->jobs[i];
                mine += sizeof(wire_job) + j->n_chunks * sizeof(uint32_t) + j->pay_len;
            }
        if (mine > (size_t)1 << 30)
            st = FL_ERR_OVERFLOW;
        else if (!(out = malloc(mine ? mine : 1)))
            st = FL_ERR_NOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; st == FL_OK && i < S->n_jobs; i++) {
        job *j = &S->jobs[i];
        if (!j->mine)
            continue;
        wire_job w = {i, (uint64_t)j->st, j->n_samples, j->bytes_down, j->bytes_up, j->n_chunks,
                      j->pay_len, j->loss, j->flops};
        memcpy(out + o, &w, sizeof w);
        o += sizeof w;
        memcpy(out + o, j->chunk_len, j->n_chunks * sizeof(uint32_t));
        o += j->n_chunks * sizeof(uint32_t);
        memcpy(out + o, j->pay, j->pay_len);
        o += j->pay_len;
    }
    int *counts = S->mpi_counts, *displs = S->mpi_displs;
    int my = st == FL_OK ? (int)mine : -1;
    uint8_t *all = NULL;
    size_t total = 0;
    int ok = MPI_Allgather(&my, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD) == MPI_SUCCESS;
    for (int r = 0; ok && r < S->size; r++) {
        ok = counts[r] >= 0;
        displs[r] = (int)total;
        total += ok ? (size_t)counts[r] : 0;
    }
    if (ok) { /* every rank saw the same counts: each says whether it can hold them all */
        if (total > (size_t)1 << 31)
            st = FL_ERR_OVERFLOW;
        else if (!(all = malloc(total ? total : 1)))
            st = FL_ERR_NOMEM;
        ok = st == FL_OK;
        MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    }
    if (ok && MPI_Allgatherv(out, my, MPI_BYTE, all, counts, displs, MPI_BYTE,
                             MPI_COMM_WORLD) != MPI_SUCCESS)
        st = FL_ERR_INTERNAL;
    if (!ok) {
        *agreed = st == FL_OK ? 2 : 1;
        if (st == FL_OK)
            st = FL_ERR_IO;
    }
    for (size_t p = 0; st == FL_OK && p < total;) {
        wire_job w;
        memcpy(&w, all + p, sizeof w);
        p += sizeof w;
        if (w.index >= S->n_jobs) {
            st = FL_ERR_INTERNAL;
            break;
        }
        job *j = &S->jobs[w.index];
        const size_t cl = (size_t)w.n_chunks * sizeof(uint32_t);
        if (!j->mine) {
            j->st = (fl_status)w.st;
            j->n_samples = w.n_samples;
            j->bytes_down = w.bytes_down;
            j->bytes_up = w.bytes_up;
            j->loss = w.loss;
            j->flops = w.flops;
            j->n_chunks = (uint32_t)w.n_chunks;
            j->pay_len = w.pay_len;
            j->chunk_len = malloc(cl ? cl : 1);
            j->pay = malloc(w.pay_len ? w.pay_len : 1);
            if (!j->chunk_len || !j->pay) {
                st = FL_ERR_NOMEM;
                break;
            }
            memcpy(j->chunk_len, all + p, cl);
            memcpy(j->pay, all + p + cl, w.pay_len);
        }
        p += cl + w.pay_len;
    }
    free(all);
    free(out);
    return st;
}
#endif

/* ---- feed phase ----------------------------------------------------------------------------- */

typedef struct round_acc {
    double t0;
    double t_close;           /* virtual time at which the core closed the round */
    double deadline;          /* absolute; INFINITY without one */
    int ticked;               /* the deadline tick was given */
    uint64_t bytes_down, bytes_up;
    uint32_t late, committed, quorum;
    uint32_t failed_closed;   /* trainings that failed after the close: the core never hears of
                               * them, so its failed count (rounds.csv's, with them) lacks them */
    double flops;
    double train_wall, feed_wall, train_cpu, client_cpu, sgd_cpu;
    double pre_cpu, post_cpu, feed_cpu;
    double last_fed;          /* finish time of the last fed job: feeding never goes back */
    uint32_t last_key;
} round_acc;

typedef struct est_ent {
    double est;
    uint32_t key;
    size_t ji;
} est_ent;

static int cmp_est(const void *a, const void *b)
{
    const est_ent *x = a, *y = b;
    if (x->est != y->est)
        return x->est < y->est ? -1 : 1;
    return (x->key > y->key) - (x->key < y->key);
}

/* Job j's lower bound of its finish: finish_time's very arithmetic (flsim_client_timing) on the
 * lower bounds of its bytes and its FLOPs (what its client reports: 6 x forward FLOPs x samples x
 * epochs, for a failure too). Each term is at most finish_time's and IEEE arithmetic is monotone,
 * so lb <= finish exactly, and a job whose finish equals another's lb goes first by client
 * number (feed_ready): no margin, so that clients of equal profiles need not wait for the last
 * training of the round. */
static double job_lb(const sim *S, const job *j, double t0)
{
    const flsim_timing tm =
        flsim_client_timing(&j->prof, (uint64_t)j->lb_down_bytes, j->flops_est,
                            (uint64_t)j->lb_up_bytes, S->cfg->latency_s);
    return t0 + tm.total;
}

/* What is known of each job before training: profile, samples, FLOPs of its submodel, a lower
 * bound of its finish time, and the order to process the jobs in (earliest estimated finish
 * first, so that updates can be fed while later clients still train). */
static fl_status prepare_jobs(sim *S, round_acc *ra)
{
    const flm_arch *full = fls_core_arch(S->core);
    flz_spec downs, ups;
    const int down_ok = flz_spec_parse(S->cfg->down_codec, &downs, NULL, 0) == FL_OK;
    const int up_fixed =
        flz_spec_parse(S->cfg->up_codec, &ups, NULL, 0) == FL_OK && flz_spec_fixed_rate(&ups);
    ra->deadline = S->cfg->deadline_s > 0 ? ra->t0 + S->cfg->deadline_s : INFINITY;
    ra->quorum = S->n_jobs < S->cfg->per_round ? (uint32_t)S->n_jobs : S->cfg->per_round;
    size_t *ord = realloc(S->order, (S->n_jobs ? S->n_jobs : 1) * sizeof *ord);
    size_t *dq = realloc(S->done_q, (S->n_jobs ? S->n_jobs : 1) * sizeof *dq);
    est_ent *cd = realloc(S->cand, (S->n_jobs ? S->n_jobs : 1) * sizeof *cd);
    if (ord)
        S->order = ord;
    if (dq)
        S->done_q = dq;
    if (cd)
        S->cand = cd;
    if (!ord || !dq || !cd)
        return FL_ERR_NOMEM;
    for (size_t i = 0; i < S->n_jobs; i++) {
        job *j = &S->jobs[i];
        flsim_profile_of(&S->pop, j->key, &j->prof);
        const uint32_t *idx;
        size_t n = 0;
        flm_partition_client(S->part, j->key % S->part->K, &idx, &n);
        j->shard_n = n;
        flp_msg task;
        fl_status st = fls_core_task(S->core, j->key, &task);
        if (st != FL_OK)
            return st;
        int units[FLM_MAX_LAYERS];
        for (uint32_t d = 0; d < task.task.n_layers; d++)
            units[d] = (int)task.task.layers[d].n_units;
        flm_arch sub;
        if ((st = flm_arch_sub(full, units, &sub)) != FL_OK)
            return st;
        /* The samples it trains: its shard, cut to the Task's max_samples (the server core's
         * per-update share of the round's weight budget, 2^24 / per_round, at most 2^20), as the
         * client core cuts it (evenly spaced rows). Until 2026-12-07 the shard's whole count was
         * taken here, and a run whose shards held more (--data-shards 1, 100 per round over
         * 171,429 samples) stopped with an internal error: the client's FLOPs came in below its
         * bound. */
        const uint64_t cap = task.task.train.max_samples;
        const size_t n_train = cap && n > cap ? (size_t)cap : n;
        j->flops_est = 6.0 * flm_arch_forward_flops(&sub) * (double)n_train * S->cfg->epochs;
        /* At most the true finish (job_lb): its download counted at the fewest bytes it can take
         * (flz_encode_size_min: with it, per-client keep-sets, whose download is known only once
         * each task is made, still let updates be fed while later clients train), its upload as
         * below. */
        j->lb_down_bytes = down_ok ? (double)flz_encode_size_min(&downs, sub.n_params) : 0.0;
        /* A fixed-rate uplink's (flz_spec_fixed_rate) update size, chunk by chunk as the Task
         * chunks it: exact, so the bound counts the upload from the start (and a failure is
         * reported after it, finish_time). Not with subsampling, top-k or zstd: the size varies
         * from client to client (a bound taken from one client's size let a smaller update
         * arrive below it, and the run failed "fed out of virtual-time order"). */
        j->up_fixed_bytes = 0;
        for (uint32_t t = 0; up_fixed && t < task.task.n_tensors; t++) {
            const flp_tensor_header *h = &task.task.tensors[t];
            for (uint64_t off = 0; off < h->numel; off += h->chunk_elems)
                j->up_fixed_bytes += flz_encode_size_min(
                    &ups, (size_t)(h->numel - off < h->chunk_elems ? h->numel - off : h->chunk_elems));
        }
        j->lb_up_bytes = (double)j->up_fixed_bytes;
        j->lb = job_lb(S, j, ra->t0);
        const double bytes = 4.0 * (double)sub.n_params;
        j->sub_params = sub.n_params;
        /* the processing order's estimate: as if both transfers were of float32 */
        j->est = ra->t0 + 2.0 * S->cfg->latency_s + j->flops_est * (1.0 - 1e-9) / j->prof.flops +
                 bytes * 8.0 / j->prof.down_bps + bytes * 8.0 / j->prof.up_bps;
    }
    est_ent *e = malloc((S->n_jobs ? S->n_jobs : 1) * sizeof *e);
    if (!e)
        return FL_ERR_NOMEM;
    for (size_t i = 0; i < S->n_jobs; i++)
        e[i] = (est_ent){S->jobs[i].est, S->jobs[i].key, i};
    qsort(e, S->n_jobs, sizeof *e, cmp_est);
    for (size_t i = 0; i < S->n_jobs; i++)
        ord[i] = e[i].ji;
    free(e);
    return FL_OK;
}

/* The virtual time at which job j's update (or its failure) reaches the server. A client whose
 * training fails reports when its update would have arrived: after its download, its compute, a
 * latency and, with a fixed-rate uplink codec, the upload time of its update's size. (The real
 * client's Error is short and comes sooner; but the lower bounds that let updates be fed while
 * other clients train count a latency each way and a fixed-rate upload: an earlier failure
 * could fall before updates already fed, and the run stopped, "fed out of virtual-time
 * order".) */
static double finish_time(const sim *S, const job *j, double t0)
{
    const int ok = j->st == FL_OK;
    const flsim_timing tm = flsim_client_timing(&j->prof, j->bytes_down,
                                                ok ? j->flops : j->flops_est,
                                                ok ? j->bytes_up : j->up_fixed_bytes,
                                                S->cfg->latency_s);
    return t0 + tm.total;
}

/* A job whose estimated or actual arrival is not finite: rates that are > 0 but tiny (--flops
 * 1e-307, or such a rate in a trace row) overflow the virtual clock. Such an update could never be fed
 * in (arrival, client) order, so the round would wait for it forever; the run stops instead. Rates
 * below FLSIM_RATE_MIN are refused before the run (options, validation, trace rows), so this is
 * the guard behind that floor, should a profile ever come out smaller than it lets through. */
static const job *nonfinite_job(const sim *S)
{
    for (size_t i = 0; i < S->n_jobs; i++) {
        const job *j = &S->jobs[i];
        if (!isfinite(j->est) || (j->trained && !isfinite(j->finish)))
            return j;
    }
    return NULL;
}

/* Job j's bytes down and up and its FLOPs, counted into the round. In full for a job that
 * arrived by the round's close (t_close). A late one's work is counted as the daemon would have
 * cut it at the close: the server sends no chunk of a closed round's Task, so of a download
 * still under way only the bytes that left the server count, and the client, its Task
 * incomplete, trains and sends nothing; a client that had its whole Task trains on (it is not
 * told of the close: its FLOPs count), and its upload is refused at the close, so only the
 * bytes that reached the server by then count (none when its Update came after it). On the
 * virtual clock's lines (flsim_client_timing): the Task leaves the server from t0 at the
 * client's download rate, the update reaches it from the upload's start + latency at the upload
 * rate; chunks in flight at the close (at most server.credit each way) are not counted. Until
 * 2026-11-30 a late client's whole download, training and upload were counted. Returns 1 when
 * the close cut j's download (the daemon's client never trained), else 0. */
static int count_work(const sim *S, round_acc *ra, const job *j)
{
    const int ok = j->st == FL_OK;
    /* the FLOPs the virtual clock charged it (finish_time): a failed training's too, which ran
     * its course before its weights were found non-finite */
    const double flops = ok ? j->flops : j->flops_est;
    uint64_t down = j->bytes_down, up = ok ? j->bytes_up : 0;
    double fl = flops;
    int cut = 0;
    if (ra->t_close >= 0.0 && j->finish > ra->t_close && !fls_core_round_open(S->core)) {
        const double lat = S->cfg->latency_s, open_s = ra->t_close - ra->t0;
        const flsim_timing tm = flsim_client_timing(&j->prof, j->bytes_down, flops,
                                                    ok ? j->bytes_up : j->up_fixed_bytes, lat);
        if (open_s < tm.t_down - lat) {
            const double sent = open_s > 0.0 ? open_s * j->prof.down_bps / 8.0 : 0.0;
            down = sent < (double)down ? (uint64_t)sent : down;
            fl = 0.0;
            up = 0;
            cut = 1;
        } else if (up) {
            const double from = ra->t0 + tm.t_down + tm.t_compute + lat;
            const double got = ra->t_close > from ? (ra->t_close - from) * j->prof.up_bps / 8.0 : 0.0;
            up = got < (double)up ? (uint64_t)got : up;
        }
    }
    ra->bytes_down += down;
    ra->flops += fl;
    ra->bytes_up += up;
    return cut;
}

/* One job's update on its way into the server core: feed_start, then feed_chunk until it
 * returns 0, then feed_end. */
struct feed_cur {
    job *j;
    int sending;              /* its Update was accepted: chunks go, then feed_end */
    fl_status ms;             /* the first refusal of one of its messages */
    uint64_t round;
    uint32_t n_tensors, t, i, ci;
    size_t po;
    /* The task's headers live in the core only while the round is open, and the last chunk of
     * the quorum-th update closes it: what the chunks need is kept here. */
    flp_tensor_header hdr[FLM_MAX_TENSORS];
};
typedef struct feed_cur feed_cur;

/* Job j at its finish time: the deadline tick first if it passed, then its Update (late or
 * refused ones are counted), or a leave + rejoin if its training failed. *c is set up for its
 * chunks when c->sending. */
static fl_status feed_start(sim *S, round_acc *ra, job *j, feed_cur *c)
{
    const double now = j->finish;
    fl_status st = FL_OK;
    c->j = j;
    c->sending = 0;
    /* The pipeline's lower bounds must keep the (finish, client) order; a broken bound would
     * silently change quorum and deadline outcomes, so it is a hard error. */
    if (now < ra->last_fed || (now == ra->last_fed && j->key < ra->last_key)) {
        fl_log(&S->log, FL_LOG_ERROR, "client %u fed out of virtual-time order", j->key);
        return FL_ERR_INTERNAL;
    }
    ra->last_fed = now;
    ra->last_key = j->key;
    j->fed = 1;
    ra->train_cpu += j->train_s;
    ra->sgd_cpu += j->sgd_cpu_s;
    ra->client_cpu += j->client_s;
    ra->pre_cpu += j->pre_cpu_s;
    ra->post_cpu += j->post_cpu_s;
    /* The deadline tick, once, and only while the round is open: a tick on a closed round
     * (quorum reached, this job a straggler) would start the next round in the middle of this
     * round's feed. */
    if (now > ra->deadline && !ra->ticked && fls_core_round_open(S->core)) {
        ra->ticked = 1;
        const int was_open = fls_core_round_open(S->core);
        if ((st = fls_core_tick(S->core, ra->deadline)) != FL_OK)
            return st;
        if (was_open && !fls_core_round_open(S->core) && ra->t_close < 0)
            ra->t_close = ra->deadline;
    }
    const int cut = count_work(S, ra, j);
    if (j->st != FL_OK) {
        /* It sends an Error about the round, as libflclient does: the core counts it as failed
         * (if its update was still due) and may close the round. */
        const int was_open = fls_core_round_open(S->core);
        if (!was_open) {
            /* the round closed without it: nothing to tell; counted here, as late when the
             * close cut its download (the daemon's client never trained, nor failed) */
            if (cut)
                ra->late++;
            else
                ra->failed_closed++;
            return FL_OK;
        }
        flp_msg em = flp_msg_header(FLP_ERROR, fls_core_round(S->core), NULL);
        em.error.code = (uint32_t)j->st;
        em.error.message = fl_strerror(j->st);
        if ((st = fls_core_on_message(S->core, j->key, &em, now)) != FL_OK)
            return st; /* its update was due: anything else is a bug */
        if (!fls_core_round_open(S->core) && ra->t_close < 0)
            ra->t_close = now;
        return FL_OK;
    }
    flp_msg task;
    const fl_status ts = fls_core_task(S->core, j->key, &task);
    if (ts == FL_ERR_ROUND_CLOSED) {
        ra->late++;
        return FL_OK;
    }
    if (ts != FL_OK)
        return ts;
    flp_msg up = flp_msg_header(FLP_UPDATE, task.round, NULL);
    up.update.model_version = task.task.model_version;
    up.update.n_tensors = task.task.n_tensors;
    up.update.tensors = task.task.tensors;
    up.update.n_samples = j->n_samples;
    up.update.loss = j->loss;
    fl_status ms = fls_core_on_message(S->core, j->key, &up, now);
    if (ms == FL_ERR_ROUND_CLOSED) {
        ra->late++;
        return FL_OK;
    }
    if (ms != FL_OK) {
        fl_log(&S->log, FL_LOG_WARN, "round %llu: client %u: update refused: %s",
               (unsigned long long)task.round + 1, j->key, fl_strerror(ms));
        return FL_OK;
    }
    if (task.task.n_tensors > FLM_MAX_TENSORS)
        return FL_ERR_INTERNAL;
    c->sending = 1;
    c->ms = FL_OK;
    c->round = task.round;
    c->n_tensors = task.task.n_tensors;
    c->t = c->i = c->ci = 0;
    c->po = 0;
    memcpy(c->hdr, task.task.tensors, c->n_tensors * sizeof *c->hdr);
    return FL_OK;
}

/* The next chunk of c's update, if one is left and none was refused (and, with hold_last, it is
 * not the update's last one): 1 if one went (or an internal error is in *st), else 0. */
static int feed_chunk(sim *S, feed_cur *c, int hold_last, fl_status *st)
{
    if (!c->sending || c->ms != FL_OK || (hold_last && c->ci + 1 >= c->j->n_chunks))
        return 0;
    while (c->t < c->n_tensors && c->i >= c->hdr[c->t].n_chunks) {
        c->t++;
        c->i = 0;
    }
    if (c->t >= c->n_tensors)
        return 0;
    job *j = c->j;
    if (c->ci >= j->n_chunks) {
        *st = FL_ERR_INTERNAL;
        return 1;
    }
    const flp_tensor_header *h = &c->hdr[c->t];
    flp_msg cm = flp_msg_header(FLP_CHUNK, c->round, NULL);
    cm.chunk.dir = FLP_DIR_UP;
    cm.chunk.tensor = c->t;
    cm.chunk.index = c->i;
    cm.chunk.offset = (uint64_t)c->i * h->chunk_elems;
    cm.chunk.count = (uint32_t)(h->numel - cm.chunk.offset < h->chunk_elems
                                ? h->numel - cm.chunk.offset : h->chunk_elems);
    cm.chunk.payload = j->pay + c->po;
    cm.chunk.payload_len = j->chunk_len[c->ci];
    c->po += j->chunk_len[c->ci];
    c->ci++;
    c->i++;
    /* The payload stays until feed_end frees it, after the update is done. */
    c->ms = fls_core_on_message_borrowed(S->core, j->key, &cm, j->finish);
    return 1;
}

/* After c's last chunk: counts the update, and frees its payload. */
static fl_status feed_end(sim *S, round_acc *ra, feed_cur *c)
{
    if (!c->sending)
        return FL_OK;
    job *j = c->j;
    if (c->ms == FL_OK)
        ra->committed++;
    else
        /* An update the core refused while staging or committing it is failed (or its round
         * closed by that), and the core has said so, naming the client: DEBUG. A chunk it
         * refused before that (a payload header, a length, the codec: a bug here) leaves the
         * update receiving and no word of the core's: WARN (and feed_end's error below). */
        fl_log(&S->log, fls_core_update_state(S->core, j->key, c->round) == FLS_UPDATE_RECEIVING
                            ? FL_LOG_WARN : FL_LOG_DEBUG,
               "round %llu: client %u: chunk refused: %s", (unsigned long long)c->round + 1,
               j->key, fl_strerror(c->ms));
    if (!fls_core_round_open(S->core) && ra->t_close < 0)
        ra->t_close = j->finish;
    /* The core borrowed the payload while the update was receiving: it must be done with it. */
    if (fls_core_update_state(S->core, j->key, c->round) == FLS_UPDATE_RECEIVING) {
        fl_log(&S->log, FL_LOG_ERROR, "client %u: update still receiving after its last chunk", j->key);
        return FL_ERR_INTERNAL;
    }
    free(j->pay);
    free(j->chunk_len);
    j->pay = NULL;
    j->chunk_len = NULL;
    return FL_OK;
}

/* Feeds jobs g[0..n) to the server core, in this order, as feed_start/feed_chunk/feed_end would
 * one job after the other, but with their chunks interleaved: chunk i of every job, then chunk
 * i + 1. The fold of a chunk is an integer sum into its slice of the accumulator, the same bits in
 * any order (fls_agg.c), and a slice folded n times in a row stays in the cache, where one job
 * after the other would bring the whole accumulator in again for every job. The caller makes sure
 * that none of these updates can close the round (feed_ready); the last chunks go in this order,
 * so the updates commit in it, as they would one by one. */
static fl_status feed_group(sim *S, round_acc *ra, job **g, size_t n)
{
    feed_cur *cur = S->fcur;
    fl_status st = FL_OK;
    size_t started = 0;
    for (; started < n && st == FL_OK; started++)
        st = feed_start(S, ra, g[started], &cur[started]);
    for (int more = 1; more && st == FL_OK;) {
        more = 0;
        for (size_t k = 0; k < started && st == FL_OK; k++)
            more |= feed_chunk(S, &cur[k], n > 1, &st);
    }
    /* The last chunks, which commit the updates, in the group's order whatever their chunk
     * counts (the weight cap and max_updates make the order of commits matter). */
    for (size_t k = 0; k < started && st == FL_OK; k++)
        while (feed_chunk(S, &cur[k], 0, &st) && st == FL_OK)
            ;
    for (size_t k = 0; k < started && st == FL_OK; k++)
        st = feed_end(S, ra, &cur[k]);
    /* An error here ends the run: updates of the group left receiving keep borrowing their
     * payloads, which sim_free frees only after the server core. */
    return st;
}

static fl_status feed_one(sim *S, round_acc *ra, job *j)
{
    return feed_group(S, ra, &j, 1);
}

/* Feeds the jobs that can go to the server core now, in order of (finish, key): a trained,
 * unfed job goes if it cannot be preceded by any job still training (its (finish, key) is below
 * every untrained job's (lower bound, key)) and feeding it cannot close the round while a worker may still
 * read a task from the core (the clients were sent their tasks at the round's start; a task lives
 * in the core while the round is open); the first that may not go stops the rest. all_taken:
 * every task was produced and decoded. Feeding changes neither the lower bounds nor which jobs
 * are trained, so the candidates are sorted once per call (not searched once per job fed).
 * *did: set when one was fed. */
static fl_status feed_ready(sim *S, round_acc *ra, int all_taken, int *did)
{
    /* The least (lower bound, key) of the jobs still training: an untrained job finishes at or
     * after its lb (job_lb), and at lb itself it goes after the jobs of smaller keys. */
    double horizon = INFINITY;
    uint32_t hkey = UINT32_MAX;
    size_t m = 0, unfed = 0;
    for (size_t i = 0; i < S->n_jobs; i++) {
        const job *j = &S->jobs[i];
        unfed += !j->fed;
        if (!j->trained) {
            if (j->lb < horizon || (j->lb == horizon && j->key < hkey)) {
                horizon = j->lb;
                hkey = j->key;
            }
        } else if (!j->fed) {
            S->cand[m++] = (est_ent){j->finish, j->key, i};
        }
    }
    if (m == 0)
        return FL_OK;
    qsort(S->cand, m, sizeof *S->cand, cmp_est);
    /* Jobs fed together (feed_group): updates that cannot close the round, as long as another
     * job of the round stays unfed after them (the core closes it once every selected client
     * has reported or failed) and they keep the committed count below the quorum. */
    job **g = S->fjobs;
    size_t gn = 0;
    const size_t gmax = S->feed_group;
    fl_status st = FL_OK;
    for (size_t k = 0; k < m && st == FL_OK; k++) {
        job *b = &S->jobs[S->cand[k].ji];
        if (!(b->finish < horizon || (b->finish == horizon && b->key < hkey)))
            break;
        if (!all_taken && (ra->committed + gn + 1 >= ra->quorum || b->finish > ra->deadline))
            break;
        *did = 1;
        const int joins = b->st == FL_OK && b->finish <= ra->deadline && !ra->ticked &&
                          unfed > gn + 1 && ra->committed + gn + 1 < ra->quorum &&
                          fls_core_round_open(S->core);
        if (joins) {
            g[gn++] = b;
            if (gn == gmax) {
                st = feed_group(S, ra, g, gn);
                unfed -= gn;
                gn = 0;
            }
            continue;
        }
        if (gn) {
            st = feed_group(S, ra, g, gn);
            unfed -= gn;
            gn = 0;
        }
        if (st == FL_OK)
            st = feed_one(S, ra, b);
        unfed--;
    }
    if (gn && st == FL_OK)
        st = feed_group(S, ra, g, gn);
    return st;
}

/* Every client of a round gets the same keep-set (and the same downlink bytes). */
static int shared_keepsets(const flsim_config *cfg)
{
    return cfg->policy == FLS_POLICY_FULL || cfg->policy == FLS_POLICY_AFD_SINGLE ||
           (cfg->policy == FLS_POLICY_FD && !cfg->fd_per_client);
}

/* The client phase: the main thread produces tasks into slots (in est order) and, when
 * pipelined, feeds finished updates to the server core in virtual-time order while the workers
 * train the rest. */
static fl_status client_phase(sim *S, round_acc *ra, int pipelined)
{
    const uint32_t T = S->threads;
    const double tc = fl_time_mono_s();
    pthread_t *th = calloc(T, sizeof *th);
    if (!th)
        return FL_ERR_NOMEM;
    S->ready_head = S->ready_len = 0;
    S->free_len = 0;
    S->done_len = 0;
    S->taken = 0;
    for (int i = 0; i < S->n_slots; i++)
        S->free_q[S->free_len++] = i;
    S->producer_done = 0;
    S->phase_st = FL_OK;
    S->sh_valid = 0;
    S->sh_w_state = 0;
    size_t n_mine = 0;
    for (size_t i = 0; i < S->n_jobs; i++)
        n_mine += S->jobs[i].mine;
    S->n_mine = n_mine;
    S->done_total = 0;
    S->wake_free = S->n_slots / 2 > 0 ? S->n_slots / 2 : 1;
    uint32_t started = 0;
    for (; started < T; started++)
        if (pthread_create(&th[started], NULL, client_worker, &S->workers[started]) != 0)
            break;
    fl_status st = started ? FL_OK : FL_ERR_INTERNAL;
    size_t next = 0, n_trained = 0;
    int all_produced = 0, shared_known = 0;
    const int shared = shared_keepsets(S->cfg);
    double feed_busy = 0.0;
    while (st == FL_OK) {
        int did = 0;
        /* Fill every free slot. */
        int filled;
        do {
            filled = 0;
            while (next < S->n_jobs && !S->jobs[S->order[next]].mine)
                next++;
            if (next < S->n_jobs) {
                pthread_mutex_lock(&S->mu);
                const int si = S->free_len ? S->free_q[--S->free_len] : -1;
                pthread_mutex_unlock(&S->mu);
                if (si >= 0) {
                    const size_t ji = S->order[next++];
                    st = fill_slot(S, &S->slots[si], (int)ji, shared);
                    pthread_mutex_lock(&S->mu);
                    if (st == FL_OK) {
                        S->ready_q[(S->ready_head + S->ready_len) % S->n_slots] = si;
                        S->ready_len++;
                        pthread_cond_signal(&S->cv_ready);
                    } else {
                        S->free_q[S->free_len++] = si;
                    }
                    pthread_mutex_unlock(&S->mu);
                    if (st != FL_OK)
                        break;
                    job *j = &S->jobs[ji];
                    /* The bound counted at most these bytes (a round's first download, or
                     * the codec's fewest): fewer would let it arrive below its bound (a bug,
                     * said at once rather than found as a feed out of order) */
                    if (j->lb_down && (double)j->bytes_down < j->lb_down_bytes) {
                        fl_log(&S->log, FL_LOG_ERROR, "client %u: %llu bytes down, where its "
                               "bound counted %.0f", j->key, (unsigned long long)j->bytes_down,
                               j->lb_down_bytes);
                        st = FL_ERR_INTERNAL;
                        break;
                    }
                    if (!j->lb_down) {
                        j->lb_down_bytes = (double)j->bytes_down;
                        j->lb_down = 1;
                        j->lb = job_lb(S, j, ra->t0);
                    }
                    if (shared && !shared_known) {
                        /* Every client of the round downloads the same bytes. */
                        shared_known = 1;
                        for (size_t i = 0; i < S->n_jobs; i++)
                            if (!S->jobs[i].lb_down) {
                                S->jobs[i].lb_down_bytes = (double)j->bytes_down;
                                S->jobs[i].lb_down = 1;
                                S->jobs[i].lb = job_lb(S, &S->jobs[i], ra->t0);
                            }
                    }
                    did = 1;
                    filled = 1;
                }
            } else if (!all_produced) {
                all_produced = 1;
                pthread_mutex_lock(&S->mu);
                S->producer_done = 1;
                pthread_cond_broadcast(&S->cv_ready);
                pthread_mutex_unlock(&S->mu);
            }
        } while (filled && st == FL_OK);
        if (st != FL_OK)
            break;
        /* Collect finished jobs. */
        pthread_mutex_lock(&S->mu);
        for (size_t i = 0; i < S->done_len; i++) {
            job *j = &S->jobs[S->done_q[i]];
            j->trained = 1;
            j->finish = finish_time(S, j, ra->t0);
            /* never fed: see nonfinite_job. Under MPI only this rank knows of it here, and a
             * rank that stopped alone would leave the others waiting in the exchange: there
             * feed_phase stops every rank alike, after it. */
            if (!isfinite(j->finish) && st == FL_OK && pipelined)
                st = FL_ERR_NUMERIC;
            /* Its lower bound's terms were its FLOPs and, with a fixed-rate uplink, its
             * update's size to the byte: anything else would let it arrive below the bound
             * (a bug, said at once rather than found as a feed out of order) */
            if (j->st == FL_OK && st == FL_OK &&
                (j->flops < j->flops_est ||
                 (j->up_fixed_bytes && j->bytes_up != j->up_fixed_bytes))) {
                fl_log(&S->log, FL_LOG_ERROR, "client %u: %.17g FLOPs and %llu bytes up, where "
                       "its bound counted %.17g and %llu", j->key, j->flops,
                       (unsigned long long)j->bytes_up, j->flops_est,
                       (unsigned long long)j->up_fixed_bytes);
                st = FL_ERR_INTERNAL;
            }
            n_trained++;
        }
        S->done_len = 0;
        if (S->phase_st != FL_OK)
            st = S->phase_st;
        const int all_taken = all_produced && S->taken == n_mine;
        pthread_mutex_unlock(&S->mu);
        if (st != FL_OK)
            break;
        if (n_trained == n_mine && ra->train_wall == 0.0)
            ra->train_wall = fl_time_mono_s() - tc;
        if (pipelined) {
            const double tf = fl_time_mono_s(), cf = thread_cpu_s();
            st = feed_ready(S, ra, all_taken, &did);
            feed_busy += fl_time_mono_s() - tf;
            ra->feed_cpu += thread_cpu_s() - cf;
        }
        if (all_produced && n_trained == n_mine) {
            size_t fed = 0;
            for (size_t i = 0; i < S->n_jobs; i++)
                fed += S->jobs[i].fed;
            if (!pipelined || fed == S->n_jobs)
                break;
        }
        if (!did) {
            pthread_mutex_lock(&S->mu);
            while (S->phase_st == FL_OK && S->done_len < WAKE_DONE && S->done_total < S->n_mine &&
                   !(!S->producer_done && S->free_len > 0 &&
                     (S->free_len >= S->wake_free || S->ready_len == 0)))
                pthread_cond_wait(&S->cv_main, &S->mu);
            pthread_mutex_unlock(&S->mu);
        }
    }
    pthread_mutex_lock(&S->mu);
    S->producer_done = 1;
    pthread_cond_broadcast(&S->cv_ready);
    pthread_mutex_unlock(&S->mu);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    if (ra->train_wall == 0.0)
        ra->train_wall = fl_time_mono_s() - tc;
    ra->feed_wall = feed_busy;
    return st;
}

/* Batch feeding (MPI: after the exchange every rank holds every update): all in order. */
static fl_status feed_phase(sim *S, round_acc *ra)
{
    const double tf = fl_time_mono_s(), cf = thread_cpu_s();
    for (size_t i = 0; i < S->n_jobs; i++) {
        S->jobs[i].trained = 1;
        S->jobs[i].finish = finish_time(S, &S->jobs[i], ra->t0);
        if (!isfinite(S->jobs[i].finish))
            return FL_ERR_NUMERIC; /* never fed: see nonfinite_job */
    }
    int did = 0;
    const fl_status st = feed_ready(S, ra, 1, &did);
    ra->feed_wall = fl_time_mono_s() - tf;
    ra->feed_cpu = thread_cpu_s() - cf;
    return st;
}

/* After every job was fed: a round still open ends at its deadline. */
static fl_status finish_feed(sim *S, round_acc *ra)
{
    fl_status st = FL_OK;
    if (fls_core_round_open(S->core)) {
        /* Every selected client was heard from and the core still waits: only a deadline ends it. */
        if (isfinite(ra->deadline)) {
            st = fls_core_tick(S->core, ra->deadline);
            ra->t_close = ra->deadline;
        } else {
            st = FL_ERR_INTERNAL;
        }
    }
    if (st == FL_OK && (fls_core_round_open(S->core) || ra->t_close < 0))
        st = FL_ERR_INTERNAL;
    return st;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

typedef struct eval_arg {
    sim *S;
} eval_arg;

static void *eval_worker(void *arg)
{
    sim *S = arg;
    flm_blas_set_threads(1);
    flm_model *m = NULL;
    fl_status st = flm_model_new_eval(fls_core_arch(S->core), EVAL_BLOCK, &m);
    const flm_dataset *ts = S->test;
    for (;;) {
        pthread_mutex_lock(&S->mu);
        size_t b = S->eval_next;
        /* Blocks of this rank: b = rank, rank + size, ... */
        while (b < S->eval_blocks && (int)(b % (size_t)S->size) != S->rank)
            b++;
        S->eval_next = b + 1;
        if (st != FL_OK && S->eval_st == FL_OK)
            S->eval_st = st;
        pthread_mutex_unlock(&S->mu);
        if (b >= S->eval_blocks || st != FL_OK)
            break;
        const size_t start = b * EVAL_BLOCK;
        const size_t n = S->eval_n - start < EVAL_BLOCK ? S->eval_n - start : EVAL_BLOCK;
        const flm_samples v = {
            ts->x ? ts->x + start * ts->sample_len : NULL,
            ts->tokens ? ts->tokens + start * ts->sample_len : NULL,
            ts->y + start, NULL, n};
        double loss = NAN, acc = NAN;
        st = flm_model_evaluate(m, S->eval_params, &v, &loss, &acc);
        if (st == FL_OK) {
            S->blk_correct[b] = round(acc * (double)n);
            S->blk_loss[b] = loss * (double)n;
        }
    }
    if (st != FL_OK) {
        pthread_mutex_lock(&S->mu);
        if (S->eval_st == FL_OK)
            S->eval_st = st;
        pthread_mutex_unlock(&S->mu);
    }
    flm_model_free(m);
    return NULL;
}

#ifdef FLSIM_TEST_HOOKS
/* FEDROP_TEST_SIM_FAIL=RANK:SITE:N, read by the tests' own fl_sim (built with FLSIM_TEST_HOOKS,
 * never installed: sim/meson.build): the Nth time (from 1) that rank RANK passes SITE ("tick",
 * "client", "feed" or "eval"), a failure there as if memory had run out. sim_mpi injects one on a
 * single rank to check that every rank still ends. */
static int test_fail(const sim *S, const char *site)
{
    static unsigned passed; /* the main thread's alone */
    const char *v = getenv("FEDROP_TEST_SIM_FAIL");
    int rank;
    char name[16];
    unsigned n;
    if (!v || sscanf(v, "%d:%15[a-z]:%u", &rank, name, &n) != 3 || rank != S->rank ||
        strcmp(name, site) != 0)
        return 0;
    return ++passed == n;
}
#else
static int test_fail(const sim *S, const char *site)
{
    (void)S;
    (void)site;
    return 0;
}
#endif

/* The test set's accuracy and loss. Under MPI a collective call, made whatever failed here: a
 * failure on any rank is every rank's, and *said is set as agree() sets it. */
static fl_status evaluate(sim *S, double *acc, double *loss, char *err, size_t errlen, int *said)
{
    S->eval_params = fls_core_params(S->core);
    S->eval_next = 0;
    S->eval_st = FL_OK;
    memset(S->blk_correct, 0, S->eval_blocks * sizeof(double));
    memset(S->blk_loss, 0, S->eval_blocks * sizeof(double));
    uint32_t T = S->threads;
    if (T > S->eval_blocks)
        T = (uint32_t)S->eval_blocks;
    pthread_t th[1024];
    uint32_t started = 0;
    for (; started < T; started++)
        if (pthread_create(&th[started], NULL, eval_worker, S) != 0)
            break;
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    fl_status st = started ? S->eval_st : FL_ERR_INTERNAL;
    if (st == FL_OK && test_fail(S, "eval"))
        st = FL_ERR_NOMEM;
    if (!started)
        set_err(err, errlen, "%s%s", "could not start a thread to evaluate the model", "");
#ifdef FLSIM_HAVE_MPI
    if (S->size > 1) {
        /* Each block is non-zero on exactly one rank: the sums are exact. */
        int ok = st == FL_OK, all_ok = 0;
        MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, S->blk_correct, (int)S->eval_blocks, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, S->blk_loss, (int)S->eval_blocks, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (!all_ok) {
            *said = st == FL_OK ? 2 : 1;
            if (st == FL_OK) {
                set_err(err, errlen, "%s%s", "another MPI rank could not evaluate the model (its ",
                        "message says why)");
                st = FL_ERR_IO;
            }
        }
    }
#else
    (void)said;
#endif
    if (st != FL_OK)
        return st;
    double c = 0, l = 0;
    for (size_t b = 0; b < S->eval_blocks; b++) {
        c += S->blk_correct[b];
        l += S->blk_loss[b];
    }
    *acc = c / (double)S->eval_n;
    *loss = l / (double)S->eval_n;
    return FL_OK;
}

/* ---- the run ---------------------------------------------------------------------------------- */

/* An evaluated round's accuracy becomes the run's final one, and the target's if it is the first
 * to reach it. */
static void take_eval(flsim_result *res, const flsim_config *cfg, const flsim_round_record *r)
{
    res->final_test_acc = r->test_acc;
    res->final_test_loss = r->test_loss;
    if (cfg->target_acc > 0 && !res->target_reached && r->test_acc >= cfg->target_acc) {
        res->target_reached = 1;
        res->rounds_to_target = r->round;
        res->vtime_to_target = r->vtime_s;
        res->bytes_down_to_target = r->cum_bytes_down;
        res->bytes_up_to_target = r->cum_bytes_up;
    }
}

static void free_jobs(sim *S)
{
    for (size_t i = 0; i < S->n_jobs; i++) {
        free(S->jobs[i].chunk_len);
        free(S->jobs[i].pay);
    }
    S->n_jobs = 0;
}

static void sim_free(sim *S)
{
    fls_core_free(S->core); /* first: an update left open borrows a job's payload */
    S->core = NULL;
    flsim_fold_pool_free(S->fold); /* after the core: nothing folds any more */
    S->fold = NULL;
    free_jobs(S);
    free(S->jobs);
    free(S->mpi_counts);
    free(S->mpi_displs);
    if (S->slots)
        for (int i = 0; i < S->n_slots; i++) {
            free(S->slots[i].buf);
            free(S->slots[i].chunks);
        }
    free(S->slots);
    free(S->sh_chunks);
    free(S->sh_buf);
    free(S->sh_w);
    if (S->workers)
        for (uint32_t i = 0; i < S->threads; i++)
            flc_core_free(S->workers[i].core);
    free(S->workers);
    free(S->ready_q);
    free(S->free_q);
    free(S->done_q);
    free(S->order);
    free(S->cand);
    free(S->fcur);
    free(S->fjobs);
    if (S->resid) {
        for (uint32_t k = 0; k < S->cfg->clients; k++)
            free(S->resid[k]);
        free(S->resid);
    }
    free(S->resid_n);
    free(S->online);
    free(S->empty);
    free(S->blk_correct);
    free(S->blk_loss);
    flm_partition_free(S->part);
    flsim_trace_free(S->trace);
    pthread_mutex_destroy(&S->mu);
    pthread_cond_destroy(&S->cv_ready);
    pthread_cond_destroy(&S->cv_main);
}

/* Brings the core's connected set in line with who is online for `round` at time t, on the
 * round's attempt-th draw (flsim_available). */
static fl_status update_availability(sim *S, uint32_t round, uint32_t attempt, double t, int first)
{
    const uint32_t K = S->cfg->clients;
    const int always = !S->pop.trace && S->pop.avail.kind == FLSIM_AVAIL_ALWAYS;
    if (always && !first)
        return FL_OK;
    for (uint32_t k = 0; k < K; k++) {
        if (S->empty[k])
            continue;
        const int on = always ? 1 : flsim_available(&S->pop, k, round, attempt, t);
        if (on == S->online[k])
            continue;
        fl_status st;
        if (on) {
            const uint32_t *idx;
            size_t n = 0;
            flm_partition_client(S->part, k % S->part->K, &idx, &n);
            st = fls_core_client_join(S->core, k, n, t);
        } else {
            st = fls_core_client_leave(S->core, k, t);
        }
        if (st != FL_OK)
            return st;
        S->online[k] = (uint8_t)on;
        S->n_online += on ? 1u : (uint32_t)-1;
    }
    return FL_OK;
}

/* A dataset's samples in words: "floats 1x8x8 (CxHxW), 4 classes", "tokens of length 80, 80
 * classes". */
static void samples_str(char *buf, size_t cap, const flm_dataset *ds)
{
    if (ds->kind == FLM_DATA_TOKENS)
        snprintf(buf, cap, "tokens of length %d, %d classes", ds->H, ds->classes);
    else
        snprintf(buf, cap, "floats %dx%dx%d (CxHxW), %d classes", ds->C, ds->H, ds->W,
                 ds->classes);
}

/* Clients without samples are never online: --clients 1000000 over Fashion-MNIST's 60,000
 * samples runs 58,395 clients, which only summary.json's empty_clients said, after the run. Said
 * once the run is set up (not before an error about the model, say), by rank 0. */
void flsim_empty_clients_say(char *buf, size_t cap, const flsim_config *cfg, uint32_t empty,
                             size_t N)
{
    const uint32_t K = cfg->data_shards ? cfg->data_shards : cfg->clients;
    const uint32_t nonempty = cfg->clients - empty; /* a client's shard is empty or is not */
    if ((size_t)K > N)
        snprintf(buf, cap, "%u of the %u clients hold no training sample (%u shards, %s, over "
                 "%zu samples): they are never online, so %u clients take part; --data-shards S "
                 "with S at most %zu lets clients share shards", empty, cfg->clients, K,
                 cfg->data_shards ? "--data-shards" : "one per client", N, nonempty, N);
    else
        snprintf(buf, cap, "%u of the %u clients hold no training sample (--partition %s left "
                 "some of its %u shards empty): they are never online, so %u clients take part",
                 empty, cfg->clients, cfg->partition, K, nonempty);
}

/* An experiment (its data passed in) says it itself, once for the runs that share it: every
 * configuration of a seed has the same partition, and so the same warning. */
static void warn_empty_clients(sim *S, const flsim_config *cfg, const flsim_result *res)
{
    if (!res->empty_clients || S->rank != 0)
        return;
    char what[FLSIM_STR + 320];
    flsim_empty_clients_say(what, sizeof what, cfg, res->empty_clients, S->train->N);
    fl_log(&S->log, FL_LOG_WARN, "%s", what);
}

int flsim_keep_layers_fit(const flsim_config *cfg, const char *spec, int n_drop, char *err,
                          size_t errlen)
{
    if (cfg->n_keep_layers <= (uint32_t)n_drop)
        return 1;
    if (err && errlen)
        snprintf(err, errlen, "--keep-layers: %u value%s, but the model %s has %d droppable layer%s",
                 cfg->n_keep_layers, cfg->n_keep_layers == 1 ? "" : "s", spec, n_drop,
                 n_drop == 1 ? "" : "s");
    return 0;
}

int flsim_keep_layers_whole(const flsim_config *cfg, const char *spec, int n_drop, char *out,
                            size_t cap)
{
    if (cfg->keep >= 1.0 || n_drop <= 0 || cfg->n_keep_layers < (uint32_t)n_drop)
        return 0;
    char list[FLM_MAX_LAYERS * 24] = "";
    size_t len = 0;
    for (int d = 0; d < n_drop; d++) {
        if (cfg->keep_layers[d] < 1.0) /* 0 is --keep's, below 1 here */
            return 0;
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%g", d ? "," : "",
                                cfg->keep_layers[d]);
        if (len >= sizeof list)
            len = sizeof list - 1;
    }
    snprintf(out, cap, "--keep-layers %s keeps every unit of the %d droppable layer%s of %s "
             "(--keep %g applies to none)", list, n_drop, n_drop == 1 ? "" : "s", spec, cfg->keep);
    return 1;
}

/* The policy drops units, yet --keep-layers keeps them all: said once the model is known (fl_sim
 * says the case --keep 1 before it loads anything). */
static void warn_keep_layers_whole(sim *S, const flsim_config *cfg)
{
    const flm_arch *a = fls_core_arch(S->core);
    char what[FLM_MAX_LAYERS * 24 + FLSIM_STR + 160];
    if (S->rank != 0 || cfg->policy == FLS_POLICY_FULL ||
        !flsim_keep_layers_whole(cfg, a->spec, a->n_drop, what, sizeof what))
        return;
    fl_log(&S->log, FL_LOG_WARN, "%s: --policy %s then trains the whole model, as --policy full "
           "does", what, cfg->fd_per_client ? "fd-per-client" : fls_policy_kind_name(cfg->policy));
}

static fl_status setup(sim *S, const flsim_config *cfg, const flsim_data *data,
                       flsim_result *res, char *err, size_t errlen)
{
    char e2[512];
    S->train = data->train;
    S->test = data->test;
    if (S->train->kind != S->test->kind || S->train->sample_len != S->test->sample_len) {
        /* Both sets' samples in words, and what differs: "tokens of length 40" against 80 is
         * the mistake to see, not only that there is one. */
        char te[96], tr[96];
        samples_str(te, sizeof te, S->test);
        samples_str(tr, sizeof tr, S->train);
        const char *what = S->train->kind != S->test->kind ? "the kind (floats or tokens)"
                           : S->train->kind == FLM_DATA_TOKENS ? "the sequence length"
                                                               : "the shape";
        if (err && errlen)
            snprintf(err, errlen, "%s%s: the test set's samples (%s) do not match the training "
                     "set's (%s, --dataset %s): %s differs", cfg->test_dataset[0] ?
                     "--test-dataset " : "the test split of ", cfg->test_dataset[0] ?
                     cfg->test_dataset : cfg->dataset, te, tr, cfg->dataset, what);
        return FL_ERR_CONFIG;
    }
    if (S->size > 1) {
        S->mpi_counts = malloc((size_t)S->size * sizeof *S->mpi_counts);
        S->mpi_displs = malloc((size_t)S->size * sizeof *S->mpi_displs);
        if (!S->mpi_counts || !S->mpi_displs)
            return FL_ERR_NOMEM;
    }
    /* Population. */
    S->pop.seed = cfg->seed;
    S->pop.clients = cfg->clients;
    S->pop.flops = cfg->flops;
    S->pop.down_bps = cfg->down_bps;
    S->pop.up_bps = cfg->up_bps;
    S->pop.avail = cfg->avail;
    if (cfg->trace[0]) {
        fl_status st = flsim_trace_load(&S->trace, cfg->trace, e2, sizeof e2);
        if (st != FL_OK) {
            set_err(err, errlen, "%s%s", "--trace: ", e2);
            return st;
        }
        S->pop.trace = S->trace;
        /* once: the MPI ranks compare it, resume.fls and summary.json record it */
        if ((st = flsim_trace_sha256(S->trace_sha, S->trace)) != FL_OK) {
            set_err(err, errlen, "%s%s", "--trace: cannot digest its rows: ", fl_strerror(st));
            return st;
        }
    }
    /* Partition: shards of the training set. */
    flm_partition_spec ps;
    e2[0] = '\0'; /* empty unless the parse or the split says why */
    fl_status st = flm_partition_spec_parse(cfg->partition, &ps, e2, sizeof e2);
    const uint32_t K = cfg->data_shards ? cfg->data_shards : cfg->clients;
    const int parsed = st == FL_OK;
    if (st == FL_OK)
        st = flm_partition_make_err(&S->part, S->train, &ps, K, cfg->seed, e2, sizeof e2);
    if (st != FL_OK) {
        /* The limit that was hit (flm_partition_make_err's words, which fl_client shows too),
         * then the dataset and the shard count as this program's options set them. */
        if (st == FL_ERR_NOMEM)
            set_err(err, errlen, "%s%s", "--partition: ", "out of memory");
        else if (!parsed)
            set_err(err, errlen, "%s%s", "--partition: ", e2);
        else if (err && errlen)
            snprintf(err, errlen, "--partition: %s; --dataset %s over %u shards (%s %u)", e2,
                     cfg->dataset, K, cfg->data_shards ? "--data-shards" : "one per client: "
                     "--clients", K);
        return st == FL_ERR_NOMEM ? st : FL_ERR_CONFIG;
    }
    S->online = calloc(cfg->clients, 1);
    S->empty = calloc(cfg->clients, 1);
    if (!S->online || !S->empty)
        return FL_ERR_NOMEM;
    uint32_t nonempty = 0;
    for (uint32_t k = 0; k < cfg->clients; k++) {
        const uint32_t *idx;
        size_t n = 0;
        flm_partition_client(S->part, k % K, &idx, &n);
        S->empty[k] = n == 0;
        nonempty += n != 0;
        if (n == 0)
            res->empty_clients++;
    }
    if (nonempty < cfg->per_round) {
        snprintf(e2, sizeof e2, "only %u of %u clients hold samples, fewer than --per-round %u",
                 nonempty, cfg->clients, cfg->per_round);
        set_err(err, errlen, "%s%s", "", e2);
        return FL_ERR_CONFIG;
    }
    S->nonempty = nonempty;
    /* With a trace, who can ever come online is known now: client k takes row k mod n, and a
     * run in which fewer clients that hold samples have an availability above 0 than a round
     * needs would idle for 10,000 steps (20 s at 100,000 clients) before it said so. */
    S->can_online = nonempty;
    if (S->trace) {
        const size_t n = S->trace->n;
        uint32_t on = 0, rows_on = 0; /* rows_on: of the rows the clients use, 0 .. used - 1 */
        for (uint32_t k = 0; k < cfg->clients; k++) {
            const int avail = S->trace->rows[k % n].availability > 0;
            on += !S->empty[k] && avail;
            rows_on += k < n && avail;
        }
        S->can_online = on;
        const size_t used = cfg->clients < n ? cfg->clients : n;
        if (!rows_on) {
            if (err && errlen)
                snprintf(err, errlen, "--trace: every availability of rows 0 .. %zu, the ones "
                         "--clients %u uses, is 0: no client could ever take part", used - 1,
                         cfg->clients);
            return FL_ERR_INVALID_ARG;
        }
        if (on < cfg->per_round) {
            if (err && errlen)
                snprintf(err, errlen, "--trace: only %u of the %u clients that hold samples can "
                         "come online (an availability above 0: client k takes row k mod %zu of "
                         "%s), fewer than --per-round %u: no round could ever start", on,
                         nonempty, n, cfg->trace, cfg->per_round);
            return FL_ERR_INVALID_ARG;
        }
    }
    /* The server core. */
    fls_config sc = fls_config_default();
    char arch[FLSIM_STR];
    flsim_model_spec(cfg, S->train, arch, sizeof arch);
    if (strlen(arch) >= sizeof sc.arch) {
        set_err(err, errlen, "%s%s", "--model: too long: ", arch);
        return FL_ERR_CONFIG;
    }
    snprintf(sc.arch, sizeof sc.arch, "%s", arch);
    flm_arch a;
    if (flm_arch_parse(sc.arch, &a, e2, sizeof e2) != FL_OK) {
        set_err(err, errlen, "%s%s", "--model: ", e2);
        return FL_ERR_CONFIG;
    }
    const int tokens = S->train->kind == FLM_DATA_TOKENS;
    if (a.token_input != tokens) {
        snprintf(e2, sizeof e2, "%s takes %s, the dataset holds %s%s", a.spec,
                 a.token_input ? "token ids" : "float inputs", tokens ? "token ids" : "float inputs",
                 tokens ? " (token data needs an lstm model)" : "");
        set_err(err, errlen, "%s%s", "--model: ", e2);
        return FL_ERR_CONFIG;
    }
    if (S->test->classes > a.classes) { /* checked now, not at the first evaluation */
        snprintf(e2, sizeof e2, "the model %s has %d class%s, fewer than the %d of the test set%s",
                 a.spec, a.classes, a.classes == 1 ? "" : "es", S->test->classes,
                 cfg->test_dataset[0] ? " (--test-dataset)" : "");
        set_err(err, errlen, "%s%s", "--model: ", e2);
        return FL_ERR_CONFIG;
    }
    if ((size_t)a.in_C * a.in_H * a.in_W != S->train->sample_len || a.classes < S->train->classes) {
        snprintf(e2, sizeof e2, "%s does not fit the dataset (%d x %d x %d inputs, %d classes)",
                 a.spec, S->train->C, S->train->H, S->train->W, S->train->classes);
        set_err(err, errlen, "%s%s", "--model: ", e2);
        return FL_ERR_CONFIG;
    }
    /* The daemon refuses a chunk size that cuts a tensor into more chunks than the wire carries
     * (its Tasks could not be sent); so does the simulator, which runs the same cores. */
    char why[200];
    const uint32_t least = fls_chunk_elems_refusal(&a, cfg->chunk_elems, why, sizeof why);
    if (least) {
        if (err && errlen)
            snprintf(err, errlen, "--chunk-elems %u %s: use --chunk-elems %u or more",
                     cfg->chunk_elems, why, least);
        return FL_ERR_CONFIG;
    }
    snprintf(res->arch, sizeof res->arch, "%s", a.spec);
    res->n_params = a.n_params;
    sc.seed = cfg->seed;
    sc.policy.kind = cfg->policy;
    sc.policy.fd_per_client = cfg->fd_per_client;
    sc.policy.keep_p = cfg->keep;
    /* --keep-layers: checked against the model here, where its droppable layers are known (a
     * value past the last one would be ignored). Under --policy full it is inert, as --keep is
     * (fl_sim warns, and the run goes on): its length is not held against the model then. */
    if (cfg->policy != FLS_POLICY_FULL &&
        !flsim_keep_layers_fit(cfg, a.spec, a.n_drop, err, errlen))
        return FL_ERR_CONFIG;
    for (uint32_t d = 0; d < cfg->n_keep_layers && d < (uint32_t)a.n_drop; d++)
        sc.policy.keep_p_layer[d] = cfg->keep_layers[d];
    sc.policy.score_accumulate = cfg->score_accumulate;
    sc.policy.loss_unweighted = cfg->loss_unweighted;
    sc.policy.eps_rel = cfg->eps_rel;
    sc.agg.dilute = cfg->agg_dilute;
    sc.opt.lr = (float)cfg->server_lr;
    sc.clients_per_round = cfg->per_round;
    sc.overcommit = cfg->overcommit;
    sc.min_clients = 0;
    sc.round_timeout_s = cfg->deadline_s > 0 ? cfg->deadline_s : 1e300;
    sc.max_rounds = cfg->rounds;
    sc.eval_every = cfg->eval_every ? cfg->eval_every : cfg->rounds;
    sc.target_accuracy = cfg->keep_going ? 0.0 : cfg->target_acc;
    sc.train.epochs = cfg->epochs;
    sc.train.batch_size = cfg->batch;
    sc.train.lr = (float)cfg->lr;
    sc.train.momentum = (float)cfg->momentum;
    sc.train.weight_decay = (float)cfg->weight_decay;
    sc.train.prox_mu = (float)cfg->prox_mu;
    sc.train.max_samples = 0;
    snprintf(sc.down_codec, sizeof sc.down_codec, "%s", cfg->down_codec);
    snprintf(sc.up_codec, sizeof sc.up_codec, "%s", cfg->up_codec);
    sc.chunk_elems = cfg->chunk_elems;
    /* a staging buffer for each update of a feed_group (allocated on first use, not zeroed: a
     * borrowed float32 payload is folded in place, and the buffer's pages are never touched) */
    S->feed_group = !cfg->feed_group ? FEED_GROUP
                    : cfg->feed_group > FEED_GROUP_MAX ? FEED_GROUP_MAX : cfg->feed_group;
    sc.agg.max_open = (int)S->feed_group;
    S->fcur = calloc(S->feed_group, sizeof *S->fcur);
    S->fjobs = calloc(S->feed_group, sizeof *S->fjobs);
    if (!S->fcur || !S->fjobs) {
        set_err(err, errlen, "%s%s", "feeding: ", fl_strerror(FL_ERR_NOMEM));
        return FL_ERR_NOMEM;
    }
    S->server_log = (sim_logger){S->log, 0, 0};
    sc.log = (fl_logger){S->log.fn ? sim_log : NULL, &S->server_log, S->log.min_level};
    if (fls_config_validate(&sc, e2, sizeof e2) != FL_OK) {
        set_err(err, errlen, "%s%s", "server configuration: ", e2);
        return FL_ERR_CONFIG;
    }
    flz_spec up; /* validated with the server configuration */
    S->need_resid = flz_spec_parse(cfg->up_codec, &up, NULL, 0) == FL_OK && up.topk > 0;
    if ((st = check_residual_memory(S, cfg, a.n_params, e2, sizeof e2)) != FL_OK) {
        set_err(err, errlen, "%s%s", "--up-codec: ", e2);
        return st;
    }
    /* The main thread feeds the updates one at a time; with many workers its folds bound the
     * round, so helpers split each fold (the same bits: see fl_par). */
    const unsigned helpers = S->fold_helpers;
    if (helpers > 0) {
        if ((st = flsim_fold_pool_new(helpers, &S->fold)) != FL_OK) {
            set_err(err, errlen, "%s%s", "fold helper threads: ", fl_strerror(st));
            return st;
        }
        sc.agg.par = (fl_par){flsim_fold_pool_run, S->fold, helpers + 1, 0};
    }
    if ((st = fls_core_new(&sc, &S->core)) != FL_OK) {
        set_err(err, errlen, "%s%s", "server core: ", fl_strerror(st));
        return st;
    }
    if (S->need_resid) {
        S->resid = calloc(cfg->clients, sizeof *S->resid);
        S->resid_n = calloc(cfg->clients, sizeof *S->resid_n);
        if (!S->resid || !S->resid_n)
            return FL_ERR_NOMEM;
    }
    /* Client phase and evaluation buffers. */
    /* Enough ready tasks that the workers do not starve while the main thread feeds or is
     * descheduled: a slot costs only a few message headers with shared keep-sets, the chunk
     * bytes of one submodel otherwise. */
    S->n_slots = (int)S->threads * (shared_keepsets(cfg) ? 8 : 1) + 2;
    S->slots = calloc((size_t)S->n_slots, sizeof *S->slots);
    S->workers = calloc(S->threads, sizeof *S->workers);
    if (shared_keepsets(cfg))
        S->sh_w = malloc(a.n_params * sizeof *S->sh_w);
    if (!S->workers || (shared_keepsets(cfg) && !S->sh_w))
        return FL_ERR_NOMEM;
    for (uint32_t i = 0; i < S->threads; i++) {
        S->workers[i].S = S;
        S->workers[i].slog = (sim_logger){S->log, 0, 1};
    }
    S->ready_q = calloc((size_t)S->n_slots, sizeof *S->ready_q);
    S->free_q = calloc((size_t)S->n_slots, sizeof *S->free_q);
    S->eval_n = cfg->eval_samples && cfg->eval_samples < S->test->N ? cfg->eval_samples : S->test->N;
    S->eval_blocks = (S->eval_n + EVAL_BLOCK - 1) / EVAL_BLOCK;
    S->blk_correct = calloc(S->eval_blocks ? S->eval_blocks : 1, sizeof(double));
    S->blk_loss = calloc(S->eval_blocks ? S->eval_blocks : 1, sizeof(double));
    if (!S->slots || !S->ready_q || !S->free_q || !S->blk_correct || !S->blk_loss)
        return FL_ERR_NOMEM;
    if (S->eval_n == 0) {
        set_err(err, errlen, "%s%s", "the test set is empty", "");
        return FL_ERR_CONFIG;
    }
    return FL_OK;
}

int flsim_ranks_all_ok(int ok)
{
#ifdef FLSIM_HAVE_MPI
    int inited = 0, size = 1;
    MPI_Initialized(&inited);
    if (inited)
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) {
        int all = ok ? 1 : 0;
        MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        return all;
    }
#endif
    return ok;
}

#ifdef FLSIM_HAVE_MPI
/* The text every rank must hold alike for the ranks' exchanges to mean anything: the settings
 * (flsim_config_json) less those that do not change the results (threads, fold threads; --out,
 * --progress and --quiet are not in it) and less the paths of the dataset, test set and trace,
 * which may differ from host to host: the trace's rows are compared instead (SHA-256), the
 * samples by flsim_data_load. 0 if it does not fit buf (FINGERPRINT_MAX bytes: never with the
 * dataset paths left out) or the digest fails. */
#define FINGERPRINT_MAX 8192
static int run_fingerprint(const sim *S, const flsim_config *cfg, char buf[FINGERPRINT_MAX])
{
    flsim_config c = *cfg;
    c.threads = 0;
    c.fold_threads = FLSIM_FOLD_AUTO;
    c.dataset[0] = c.test_dataset[0] = '\0';
    if (c.trace[0])
        snprintf(c.trace, sizeof c.trace, "(a trace)");
    uint8_t td[FL_SHA256_LEN];
    /* with a trace, its rows' digest as loaded (setup: flsim_trace_sha256) */
    const int ok = S->trace ? (memcpy(td, S->trace_sha, sizeof td), 1)
                            : fl_sha256_digest(td, "", 0) == FL_OK;
    const size_t n = flsim_config_json(&c, buf, FINGERPRINT_MAX);
    if (!ok || n == 0 || n > FINGERPRINT_MAX - 128)
        return 0;
    char th[2 * FL_SHA256_LEN + 1];
    fl_sha256_hex(th, td);
    /* --out's path may differ from host to host, not whether there is one: each checkpoint of a
     * run with one is a collective call (save_point) */
    snprintf(buf + n - 1, FINGERPRINT_MAX - (n - 1), ", \"trace rows\": \"%s\", \"--out given\": "
             "%s}", th, cfg->out[0] ? "true" : "false");
    return 1;
}

/* The setting at byte at of a flsim_config_json text: `"key": value`, into out (cut short). Keys
 * begin after "{" or ", " with a quote that is not escaped (a quote inside a string value is
 * written \"); a value ends before the next such ", \"" or the closing brace. */
static void setting_at(const char *s, size_t at, char *out, size_t cap)
{
    size_t b = at;
    while (b > 0 && !(s[b] == '"' && (s[b - 1] == '{' || (b >= 2 && s[b - 1] == ' ' &&
                                                             s[b - 2] == ','))))
        b--;
    size_t e = at;
    while (s[e] && !(s[e] == ',' && s[e + 1] == ' ' && s[e + 2] == '"') && s[e + 1])
        e++;
    size_t len = e - b;
    if (len > 150)
        len = 150;
    snprintf(out, cap, "%.*s%s", (int)len, s + b, e - b > len ? "..." : "");
}

/* Every rank compares its fingerprint with rank 0's (a collective call). FL_OK when all agree;
 * else FL_ERR_CONFIG on a rank that differs, naming the first setting that does, and FL_ERR_IO on
 * the others. */
static fl_status ranks_same_run(const sim *S, const flsim_config *cfg, char *err, size_t errlen,
                                int *said)
{
    static char mine[FINGERPRINT_MAX], theirs[FINGERPRINT_MAX]; /* the main thread's alone */
    const int ok = run_fingerprint(S, cfg, mine);
    if (!ok)
        mine[0] = '\0'; /* rank 0's: nothing to compare with (its own failure ends the ranks) */
    memcpy(theirs, mine, sizeof theirs);
    MPI_Bcast(theirs, FINGERPRINT_MAX, MPI_CHAR, 0, MPI_COMM_WORLD);
    fl_status st = FL_OK;
    if (!ok) {
        set_err(err, errlen, "%s%s", "", "could not digest the trace to compare the MPI ranks' "
                "settings");
        st = FL_ERR_NOMEM;
    } else if (theirs[0] && strcmp(mine, theirs) != 0) {
        size_t at = 0;
        while (mine[at] && mine[at] == theirs[at])
            at++;
        char here[200], there[200];
        setting_at(mine, at, here, sizeof here);
        setting_at(theirs, at, there, sizeof there);
        if (err && errlen)
            snprintf(err, errlen, "MPI rank %d's settings differ from rank 0's: %s here, %s on "
                     "rank 0 (only --threads, --fold-threads, --progress, --quiet and paths, "
                     "--out's too, may differ: --out is given to every rank or to none)",
                     S->rank, here, there);
        st = FL_ERR_CONFIG;
    }
    agree(&st, "another MPI rank's settings differ from rank 0's (its message says which)", err,
          errlen, said);
    return st;
}

/* The ranks' BLAS names (a collective call). Each rank trains its own clients with its own
 * kernels, so ranks on other kernels (hosts of two CPU generations, another OPENBLAS_CORETYPE in
 * one rank's environment) give a model that no single process gives; summary.json's "blas", rank
 * 0's name alone until then, named a kernel whose runs the model did not match. Where they
 * differ, every rank's name becomes "mixed:" and the distinct names in rank order (cut with
 * "..." where they do not fit), and rank 0 says so once; the run goes on, as the README allows
 * mixed hosts. A rank that cannot take part (no memory) leaves its name as it was. */
static void ranks_blas(const sim *S, char *blas, size_t cap)
{
    enum { L = sizeof ((flsim_result *)0)->blas };
    char *all = malloc((size_t)S->size * L);
    char mine[L];
    snprintf(mine, sizeof mine, "%s", blas);
    const int ok = all && MPI_Allgather(mine, L, MPI_CHAR, all, L, MPI_CHAR,
                                        MPI_COMM_WORLD) == MPI_SUCCESS;
    int mixed = 0;
    for (int r = 1; ok && r < S->size; r++)
        mixed |= strncmp(all + (size_t)r * L, all, L) != 0;
    if (mixed) {
        char out[L];
        size_t n = (size_t)snprintf(out, sizeof out, "mixed:");
        for (int r = 0; r < S->size && n < sizeof out; r++) {
            const char *name = all + (size_t)r * L;
            int seen = 0;
            for (int q = 0; q < r && !seen; q++)
                seen = strncmp(all + (size_t)q * L, name, L) == 0;
            if (!seen)
                n += (size_t)snprintf(out + n, sizeof out - n, "%s%.*s", r ? "/" : "", L, name);
        }
        if (n >= sizeof out)
            memcpy(out + sizeof out - 4, "...", 4);
        if (S->rank == 0)
            fl_log(&S->log, FL_LOG_WARN, "the MPI ranks train with different BLAS kernels (%s): "
                   "the model differs in its last bits from a single process's (summary.json "
                   "says blas \"%s\")", out + 6, out);
        snprintf(blas, cap, "%s", out);
    }
    free(all);
}
#endif

/* A finished round into the run's results (as it ends, or read back by --resume). */
static void account_round(flsim_result *res, const flsim_config *cfg, const flsim_round_record *r,
                          double cum_flops)
{
    res->rounds = r->round;
    res->virtual_time_s = r->vtime_s;
    res->bytes_down = r->cum_bytes_down;
    res->bytes_up = r->cum_bytes_up;
    res->train_flops = cum_flops;
    if (r->evaluated)
        take_eval(res, cfg, r);
    res->train_wall_s += r->train_wall_s;
    res->updates_accepted += r->reported;
    res->updates_failed += r->failed;
    res->updates_late += r->late;
}

/* A resume.fls of an fl_sim before 2026-12-07 (42aeef36) given "-0" for --momentum,
 * --weight-decay or --prox-mu holds that negative zero in its checkpoint's settings, which the
 * server core compares by their bits: this fl_sim reads "-0" as 0, and the run was refused
 * ("train.momentum 0 -> 0"). The three train the same bits at -0 as at 0 (each is used only where
 * it is not 0, or as 1 - lr * wd), so their lines are taken as 0 and the digest made again of the
 * text, where the digest is the text's. FL_OK (k as it was when there is nothing to take), or
 * FL_ERR_NOMEM with why. */
static fl_status ckpt_neg_zero_as_zero(fls_ckpt *k, char *why, size_t whylen)
{
    static const char *const names[] = {"momentum=", "wd=", "prox_mu="};
    static const char neg[] = "-0x0p+0";
    uint8_t sha[FL_SHA256_LEN];
    if (!k->config || !k->config_len || fl_sha256_digest(sha, k->config, k->config_len) != FL_OK ||
        memcmp(sha, k->config_digest, FL_SHA256_LEN) != 0)
        return FL_OK;
    char *t = malloc(k->config_len);
    if (!t) {
        snprintf(why, whylen, "out of memory");
        return FL_ERR_NOMEM;
    }
    size_t n = 0, taken = 0;
    for (size_t p = 0; p < k->config_len;) {
        const char *nl = memchr(k->config + p, '\n', k->config_len - p);
        const size_t e = nl ? (size_t)(nl - k->config) + 1 : k->config_len; /* the line's end */
        size_t skip = 0; /* the '-' to leave out */
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const size_t nn = strlen(names[i]);
            if (e - p >= nn + sizeof neg - 1 && !memcmp(k->config + p, names[i], nn) &&
                !memcmp(k->config + p + nn, neg, sizeof neg - 1) &&
                (p + nn + sizeof neg - 1 == e || k->config[p + nn + sizeof neg - 1] == '\n'))
                skip = p + nn;
        }
        for (size_t i = p; i < e; i++)
            if (!skip || i != skip)
                t[n++] = k->config[i];
        taken += skip != 0;
        p = e;
    }
    if (!taken || fl_sha256_digest(sha, t, n) != FL_OK) {
        free(t);
        return FL_OK;
    }
    free(k->config);
    k->config = t;
    k->config_len = n;
    memcpy(k->config_digest, sha, FL_SHA256_LEN);
    return FL_OK;
}

/* --resume: reads DIR/resume.fls (every rank), checks that it is this run's (its settings but
 * --rounds, threads; no top-k uplink, whose residuals it does not hold) and restores the server
 * core from it. *found 0 (and FL_OK): no file, a fresh start. */
static fl_status resume_read(sim *S, const flsim_config *cfg, flsim_resume_file *rf, int *found,
                             char *err, size_t errlen)
{
    *found = 0;
    char path[FLSIM_STR + 32], why[1024];
    snprintf(path, sizeof path, "%s/%s", cfg->out, FLSIM_RESUME_FILE);
    /* read in pieces (flsim_resume_read): the file's bytes (the state's, and more) were read
     * into a buffer grown by doubling and held beside their parse */
    fl_status st = flsim_resume_read(path, rf, why, sizeof why);
    if (st == FL_ERR_NOT_FOUND)
        return FL_OK;
    if (st == FL_ERR_IO) {
        if (err && errlen)
            snprintf(err, errlen, "--resume: cannot read %s: %s", path,
                     errno == EINVAL ? "not a regular file (a FIFO, a device or a socket)"
                     : errno         ? strerror(errno)
                                     : "it ended early (cut short while it was read)");
        return FL_ERR_IO;
    }
    if (st == FL_OK)
        st = flsim_config_matches(rf->config_json, rf->ckpt.arch, cfg, fls_core_arch(S->core)->spec,
                                  1, why, sizeof why);
    /* The same trace path (compared above) may hold other rows than when the run started: the
     * rounds so far drew their clients from the saved rows, the rest would from these. A file
     * of an fl_sim before the digest was saved has none: not checked. */
    /* A file of an fl_sim before 2026-12-07 digested a row's availability written "-0" as a
     * negative zero, which this one reads as 0 (the same availability: never online): such a
     * trace, unchanged, is the run's. */
    uint8_t neg0[FL_SHA256_LEN];
    if (st == FL_OK && S->trace && rf->state.has_trace_sha &&
        memcmp(rf->state.trace_sha, S->trace_sha, FL_SHA256_LEN) != 0 &&
        !(flsim_trace_sha256_neg_zero_kept(neg0, cfg->trace) == FL_OK &&
          memcmp(rf->state.trace_sha, neg0, FL_SHA256_LEN) == 0)) {
        char was[2 * FL_SHA256_LEN + 1], now[2 * FL_SHA256_LEN + 1];
        fl_sha256_hex(was, rf->state.trace_sha);
        fl_sha256_hex(now, S->trace_sha);
        st = FL_ERR_CONFIG;
        snprintf(why, sizeof why, "--trace %s: its contents changed since the run was started "
                 "(its rows' SHA-256 was %.16s..., is %.16s...): the rounds saved ran on the "
                 "rows as they were (put them back to resume)", cfg->trace, was, now);
    }
    /* A top-k uplink: each rank's clients' error-feedback residuals, from the file its rank wrote
     * for the same round (as many ranks as then: a client's residual is on the rank that trains
     * it). */
    const uint32_t ranks = (uint32_t)S->size;
    if (st == FL_OK && S->need_resid && rf->state.resid_ranks == 0)
        st = FL_ERR_CHECKPOINT_FORMAT, snprintf(why, sizeof why, "it names no files of the "
                                                "clients' error-feedback residuals");
    if (st == FL_OK && S->need_resid && rf->state.resid_ranks != ranks) {
        st = FL_ERR_CONFIG;
        if (rf->state.resid_ranks == 1)
            snprintf(why, sizeof why, "one process saved its clients' error-feedback residuals: "
                     "resume it without mpirun (or with mpirun -n 1)");
        else
            snprintf(why, sizeof why, "%u MPI ranks saved the clients' error-feedback residuals, "
                     "each its own clients': resume it with mpirun -n %u", rf->state.resid_ranks,
                     rf->state.resid_ranks);
    }
    if (st == FL_OK && S->need_resid) {
        char re[FLSIM_STR + 700];
        st = flsim_resid_read(cfg->out, (uint32_t)rf->n_records, (uint32_t)S->rank, ranks,
                              cfg->clients, fls_core_arch(S->core)->n_params,
                              rf->state.resid_sha + (size_t)S->rank * FL_SHA256_LEN, S->resid,
                              S->resid_n, re, sizeof re);
        if (st != FL_OK)
            snprintf(why, sizeof why, "the clients' residuals: %s",
                     st == FL_ERR_NOMEM ? "out of memory" : re);
        if (st == FL_ERR_NOT_FOUND || st == FL_ERR_RESULTS_FORMAT)
            st = FL_ERR_CHECKPOINT_FORMAT;
    }
    if (st == FL_OK && rf->n_records > cfg->rounds)
        st = FL_ERR_CONFIG, snprintf(why, sizeof why, "it holds %zu rounds, more than --rounds %u",
                                     rf->n_records, cfg->rounds);
    /* A finished run taken further (a larger --rounds): its last round was evaluated because it
     * was the last (off the --eval-every schedule), which that round of a run of the new --rounds
     * is not. That evaluation is dropped, with the target the core may have found reached by it,
     * so that the run goes on as one that never stopped: the same rounds, the same model. */
    if (st == FL_OK && rf->n_records && rf->n_records < cfg->rounds) {
        flsim_round_record *last = &rf->records[rf->n_records - 1];
        if (last->evaluated && (cfg->eval_every == 0 || rf->n_records % cfg->eval_every != 0)) {
            last->evaluated = 0;
            last->test_acc = last->test_loss = NAN;
            last->eval_wall_s = 0;
            rf->ckpt.target_reached = 0;
            rf->ckpt.target_acc = 0;
        }
    }
    if (st == FL_OK)
        st = ckpt_neg_zero_as_zero(&rf->ckpt, why, sizeof why);
    if (st == FL_OK && fls_core_restore(S->core, &rf->ckpt) != FL_OK)
        st = FL_ERR_CHECKPOINT_MISMATCH, snprintf(why, sizeof why, "the server core refused its "
                                                  "checkpoint (the log says why)");
    if (st != FL_OK) {
        if (err && errlen)
            snprintf(err, errlen, "--resume: %s: %s (remove %s, or run without --resume, to "
                     "start afresh)", path, why, path);
        flsim_resume_free(rf);
        return st == FL_ERR_NOMEM ? st : st == FL_ERR_RESULTS_MISMATCH ? FL_ERR_CONFIG : st;
    }
    *found = 1;
    return FL_OK;
}

/* DIR/resume.fls after round `finished` (every rank calls it: with a top-k uplink, each first
 * writes its clients' residuals, whose SHA-256s rank 0 gathers for resume.fls to name; once that
 * is in place the earlier residual files go, and after a failure this round's do, since the
 * resume.fls in place names others). base: the clock and totals. FL_OK, or the failure with the
 * reason in ce (the rank's own, or that another rank failed). */
static fl_status save_point(sim *S, uint32_t finished, const flsim_resume_state *base,
                            const flsim_round_record *recs, size_t n_recs, char *ce,
                            size_t celen)
{
    const flsim_config *cfg = S->cfg;
    const uint32_t ranks = (uint32_t)S->size, me = (uint32_t)S->rank;
    flsim_resume_state rs = *base;
    if (S->trace) {
        rs.has_trace_sha = 1;
        memcpy(rs.trace_sha, S->trace_sha, sizeof rs.trace_sha);
    }
    uint8_t mine[FL_SHA256_LEN] = {0};
    fl_status cs = FL_OK;
    if (S->need_resid) {
        rs.resid_ranks = ranks;
        if (!(rs.resid_sha = calloc(ranks, FL_SHA256_LEN))) {
            cs = FL_ERR_NOMEM;
            snprintf(ce, celen, "out of memory");
        }
        if (cs == FL_OK)
            cs = flsim_resid_write(cfg->out, finished, me, ranks, S->resid, S->resid_n,
                                   cfg->clients, fls_core_arch(S->core)->n_params, mine, ce,
                                   celen);
    }
    const int resid_ok = !S->need_resid || flsim_ranks_all_ok(cs == FL_OK);
    if (cs == FL_OK && !resid_ok) {
        cs = FL_ERR_IO;
        snprintf(ce, celen, "another MPI rank could not save its clients' residuals (its "
                 "message says why)");
    }
    if (S->need_resid && resid_ok && cs == FL_OK) { /* resid_ok: cs is FL_OK on every rank */
#ifdef FLSIM_HAVE_MPI
        if (S->size > 1)
            MPI_Gather(mine, FL_SHA256_LEN, MPI_BYTE, rs.resid_sha, FL_SHA256_LEN, MPI_BYTE, 0,
                       MPI_COMM_WORLD);
        else
#endif
            memcpy(rs.resid_sha, mine, FL_SHA256_LEN);
    }
    if (cs == FL_OK && me == 0) {
        /* the core's arrays as they lie, written as they are (a copy of the state was made) */
        fls_ckpt k;
        cs = fls_core_checkpoint_view(S->core, &k);
        if (cs == FL_OK) {
            cs = flsim_resume_write(cfg->out, cfg, &k, &rs, recs, n_recs, ce, celen);
            fls_core_checkpoint_view_free(&k);
        } else {
            snprintf(ce, celen, "cannot checkpoint the server core: %s", fl_strerror(cs));
        }
    }
    if (S->need_resid) {
        if (flsim_ranks_all_ok(me != 0 || cs == FL_OK)) {
            (void)flsim_resid_sweep(cfg->out, me, ranks, FLSIM_SWEEP_BUT, finished);
        } else if (resid_ok) {
            char rp[FLSIM_STR + 96];
            flsim_resid_path(rp, sizeof rp, cfg->out, me, ranks, finished);
            (void)unlink(rp);
        }
    }
    free(rs.resid_sha);
    return cs;
}

fl_status flsim_run(const flsim_config *cfg, const flsim_data *data_in, const fl_logger *log,
                    flsim_round_fn cb, void *user, flsim_result *res,
                    flsim_round_record **records, size_t *n_records, char *err, size_t errlen)
{
    if (!cfg || !res)
        return FL_ERR_INVALID_ARG;
    if (err && errlen)
        err[0] = '\0';
    memset(res, 0, sizeof *res);
    if (records)
        *records = NULL;
    if (n_records)
        *n_records = 0;
    fl_status st = flsim_config_validate(cfg, err, errlen);
    if (st != FL_OK)
        return st;
    double wall0 = fl_time_mono_s();
    flsim_data own = {0};
    const flsim_data *data = data_in;
    if (!data) {
        if ((st = flsim_data_load_said(&own, cfg, err, errlen, &res->err_agreed)) != FL_OK)
            return st;
        data = &own;
    }
    const int blas_ok = flsim_blas_name(res->blas, sizeof res->blas) == FL_OK;

    sim S;
    memset(&S, 0, sizeof S);
    S.cfg = cfg;
    if (log)
        S.log = *log;
    if (!blas_ok) /* as libflclient says it: the run's figures are not OpenBLAS's */
        fl_log(&S.log, FL_LOG_WARN, "OpenBLAS cannot be loaded: local training runs on fedrop's "
               "reference GEMM (slow; summary.json says blas \"%s\")", res->blas);
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cv_ready, NULL);
    pthread_cond_init(&S.cv_main, NULL);
    unsigned workers, helpers;
    flsim_threads_resolve(cfg, flsim_cpus(), &workers, &helpers);
    S.threads = workers;
    S.fold_helpers = helpers;
    res->workers = workers;
    res->fold_helpers = helpers;
    S.rank = 0;
    S.size = 1;
#ifdef FLSIM_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) {
        MPI_Comm_rank(MPI_COMM_WORLD, &S.rank);
        MPI_Comm_size(MPI_COMM_WORLD, &S.size);
    }
#endif
    res->mpi_ranks = S.size;
    st = setup(&S, cfg, data, res, err, errlen);
    if (st == FL_OK && S.trace) { /* a failed setup may hold the trace without its digest */
        res->has_trace_sha = 1;
        memcpy(res->trace_sha256, S.trace_sha, sizeof res->trace_sha256);
    }
    /* another rank's failure is FL_ERR_IO, not FL_ERR_CONFIG: an experiment exits 2 on that ("an
     * option or value"), and the job takes the highest exit status: the failing rank's decides */
    agree(&st, "another MPI rank could not set up the run (its message says why)", err, errlen,
          &res->err_agreed);
    if (st == FL_OK && !data_in)
        warn_empty_clients(&S, cfg, res);
    if (st == FL_OK && !data_in) /* an experiment (its data passed in) says it once itself */
        warn_keep_layers_whole(&S, cfg);
#ifdef FLSIM_HAVE_MPI
    if (st == FL_OK && S.size > 1)
        st = ranks_same_run(&S, cfg, err, errlen, &res->err_agreed);
    if (st == FL_OK && S.size > 1)
        ranks_blas(&S, res->blas, sizeof res->blas);
#endif
    flsim_round_record *recs = NULL;
    size_t n_recs = 0, cap_recs = 0;
    double vt = 0.0;
    uint64_t cum_down = 0, cum_up = 0;
    double cum_flops = 0;
    /* What a crash in the middle of a save left in DIR (temporaries of resume.fls and of the
     * residual files; up to a model per client each): nothing writes them now. */
    if (st == FL_OK && cfg->out[0]) {
        if (S.rank == 0) {
            char rp[FLSIM_STR + 32];
            snprintf(rp, sizeof rp, "%s/%s", cfg->out, FLSIM_RESUME_FILE);
            (void)fl_atomic_sweep(rp);
        }
        (void)flsim_resid_sweep(cfg->out, (uint32_t)S.rank, (uint32_t)S.size, FLSIM_SWEEP_TMP, 0);
    }
    /* --resume: the rounds DIR/resume.fls holds, the server core as they left it, the clock and
     * totals; the callback sees those rounds first (marked restored). Every rank reads it. */
    int resumed = 0;
    if (st == FL_OK && cfg->resume) {
        flsim_resume_file rf;
        memset(&rf, 0, sizeof rf);
        st = resume_read(&S, cfg, &rf, &resumed, err, errlen);
        agree(&st, "another MPI rank could not read the run to resume (its message says why)",
              err, errlen, &res->err_agreed);
        if (st == FL_OK && resumed) {
            recs = rf.records;
            n_recs = cap_recs = rf.n_records;
            rf.records = NULL;
            vt = rf.state.vt;
            cum_down = rf.state.cum_down;
            cum_up = rf.state.cum_up;
            wall0 -= rf.state.wall_s; /* the wall time counts every process that ran the rounds */
            res->resumed_after = (uint32_t)n_recs;
            res->wall_s = fl_time_mono_s() - wall0;
            /* each round's results as they stood after it, as the callback saw them first (a
             * stop asked meanwhile is taken after the next round) */
            double flops = 0;
            for (size_t i = 0; i < n_recs; i++) {
                flops += recs[i].train_flops;
                recs[i].restored = 1;
                account_round(res, cfg, &recs[i], flops);
                if (cb)
                    (void)cb(user, &recs[i], res);
            }
            cum_flops = rf.state.cum_flops;
            res->train_flops = cum_flops;
        }
        flsim_resume_free(&rf);
    }
    if (st == FL_OK)
        st = update_availability(&S, (uint32_t)fls_core_round(S.core), 0, vt, 1);
    /* every rank: with a top-k uplink each writes its clients' residuals */
    const int ckpt_on = cfg->out[0] && cfg->checkpoint_every;
    if (st == FL_OK && ckpt_on && S.need_resid && S.rank == 0) {
        /* each checkpoint writes every residual so far: said up front when that is a lot */
        const double most = resid_clients_most(cfg, (double)cfg->clients) *
                            (double)fls_core_arch(S.core)->n_params * sizeof(float);
        if (most >= 1e9)
            fl_log(&S.log, FL_LOG_WARN, "each save of %s/resume.fls (--checkpoint-every %u) also "
                   "writes the clients' error-feedback residuals (--up-codec %s): up to %.1f GB "
                   "by the end of this run, twice that on disk while a save replaces the last; "
                   "--checkpoint-every 0 saves nothing (and the run cannot be resumed)",
                   cfg->out, cfg->checkpoint_every, cfg->up_codec, most / 1e9);
    }
    int ckpt_said = 0;
    int done = 0;
    uint64_t idle = 0;
    round_acc ra = {0};
    double round_wall0 = fl_time_mono_s(), train_wall = 0, round_cpu0 = process_cpu_s();
    flsim_round_record pending;
    memset(&pending, 0, sizeof pending);
    /* drain: the round just closed; its events (evaluation, end, done) are taken before the next
     * tick, so that the round ends (and DIR/resume.fls is written) with the core between rounds,
     * not after the tick has opened the next one */
    int drain = 0;
    while (st == FL_OK && !done) {
        const double t_tick = fl_time_mono_s(), cpu_tick = process_cpu_s();
        if (!drain) {
            /* While idle (too few online to start), each step draws who is online afresh: the
             * same draw again would wait in vain. */
            const uint32_t next = (uint32_t)fls_core_round(S.core);
            if ((st = update_availability(&S, next, (uint32_t)idle, vt, 0)) != FL_OK)
                break;
            if ((st = fls_core_tick(S.core, vt)) != FL_OK || test_fail(&S, "tick")) {
                st = st != FL_OK ? st : FL_ERR_NOMEM;
                break;
            }
        }
        fls_event ev;
        int any = 0;
        free_jobs(&S);
        while (st == FL_OK && fls_core_poll(S.core, &ev)) {
            any = 1;
            if (ev.kind == FLS_EV_TASK) {
                if ((st = fl_grow(&S.jobs, &S.jobs_cap, S.n_jobs + 1, sizeof *S.jobs, 256)) != FL_OK)
                    break;
                if (S.n_jobs == 0) {
                    round_wall0 = t_tick;
                    round_cpu0 = cpu_tick;
                }
                job *j = &S.jobs[S.n_jobs++];
                memset(j, 0, sizeof *j);
                j->key = ev.client;
                j->mine = (int)(ev.client % (uint32_t)S.size) == S.rank;
            } else if (ev.kind == FLS_EV_EVALUATE) {
                double acc = NAN, loss = NAN;
                const double te = fl_time_mono_s();
                st = evaluate(&S, &acc, &loss, err, errlen, &res->err_agreed);
                pending.eval_wall_s = fl_time_mono_s() - te;
                if (st == FL_OK)
                    st = fls_core_report_eval(S.core, ev.round, acc, isfinite(loss) ? loss : NAN, vt);
            } else if (ev.kind == FLS_EV_ROUND_END) {
                const fls_round_metrics *m = fls_core_last_metrics(S.core);
                flsim_round_record *r = &pending;
                r->round = (uint32_t)m->round + 1;
                r->vtime_s = m->t_end;
                r->round_vtime_s = m->duration_s;
                r->mean_loss = m->mean_loss;
                r->evaluated = m->evaluated;
                r->test_acc = m->test_accuracy;
                r->test_loss = m->test_loss;
                r->selected = m->selected;
                r->reported = m->reported;
                r->online = m->connected;
                r->closed_by = (int)m->closed_by;
                /* The core's count, training failures and refused updates alike, and the
                 * trainings that failed after the close, which the core never heard of (until
                 * 2026-12-07 those were in no column: selected 4, reported 0, late 0, failed 3) */
                r->failed += m->failed;
                r->wall_s = fl_time_mono_s() - round_wall0;
                r->proc_cpu_s = process_cpu_s() - round_cpu0;
                if ((st = fl_grow(&recs, &cap_recs, n_recs + 1, sizeof *recs, 64)) != FL_OK)
                    break;
                recs[n_recs++] = *r;
                account_round(res, cfg, r, cum_flops);
                res->wall_s = fl_time_mono_s() - wall0;
                const int said = cb ? cb(user, r, res) : 0;
                int stop = said == FLSIM_STOP_DISCARD ? 2 : said != 0;
#ifdef FLSIM_HAVE_MPI
                /* Every rank stops after the same round, whichever was asked to. */
                if (S.size > 1)
                    MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
                /* the caller discards the run (nothing of it is kept): no resume file either */
                const int discard = stop == 2;
                const uint32_t finished = r->round;
                /* DIR/resume.fls: every --checkpoint-every rounds, at the last and at a stop
                 * (before a stop's extra evaluation: the rounds as a run that goes on has them).
                 * A failure is said once; the run goes on. */
                if (ckpt_on && !discard && (stop || finished % cfg->checkpoint_every == 0 ||
                                finished >= cfg->rounds || fls_core_done(S.core))) {
                    char ce[FLSIM_STR + 400] = "";
                    const flsim_resume_state rs = {.vt = vt, .cum_down = cum_down,
                                                   .cum_up = cum_up, .cum_flops = cum_flops,
                                                   .wall_s = fl_time_mono_s() - wall0};
                    if (save_point(&S, finished, &rs, recs, n_recs, ce, sizeof ce) != FL_OK &&
                        !ckpt_said++)
                        fl_log(&S.log, FL_LOG_WARN, "after round %u: %s; the run goes on (a "
                               "--resume would start from the last state saved)", finished, ce);
                }
                memset(&pending, 0, sizeof pending);
                /* A stop asked at the run's last round (max_rounds, or the target reached:
                 * the core is done) is just its end. */
                if (stop && finished < cfg->rounds && !fls_core_done(S.core)) {
                    res->interrupted = 1;
                    /* The results of a run of `finished` rounds, whose last round is evaluated:
                     * the final accuracy is the final model's (every rank evaluates). */
                    flsim_round_record *last = &recs[n_recs - 1];
                    if (!last->evaluated) {
                        double acc = NAN, loss = NAN;
                        const double te = fl_time_mono_s();
                        if ((st = evaluate(&S, &acc, &loss, err, errlen, &res->err_agreed)) != FL_OK)
                            break;
                        last->eval_wall_s = fl_time_mono_s() - te;
                        last->evaluated = 1;
                        last->test_acc = acc;
                        last->test_loss = loss;
                        take_eval(res, cfg, last);
                    }
                    st = FL_ERR_CANCELLED;
                    break;
                }
            } else if (ev.kind == FLS_EV_DONE) {
                done = 1;
            }
        }
        if (st != FL_OK || done)
            break;
        if (drain) {
            drain = 0;
            continue;
        }
        if (S.n_jobs > 0) {
            memset(&ra, 0, sizeof ra);
            ra.t0 = vt;
            ra.t_close = -1.0;
            ra.last_fed = -INFINITY;
            const int pipelined = S.size == 1 && !cfg->batch_feed;
            const double fold_cpu0 = flsim_fold_pool_cpu_s(S.fold);
            st = prepare_jobs(&S, &ra);
            if (st == FL_OK && nonfinite_job(&S))
                st = FL_ERR_NUMERIC;
            if (st == FL_OK)
                st = client_phase(&S, &ra, pipelined);
            if (st == FL_OK && test_fail(&S, "client"))
                st = FL_ERR_NOMEM;
            train_wall = ra.train_wall;
#ifdef FLSIM_HAVE_MPI
            /* Under MPI every rank takes part in the exchange, and then in the agreement after
             * the feed unless the exchange already agreed on a failure, whatever failed on it:
             * a rank that gave up must not leave the others waiting in a collective call. */
            char other[96] = "";
            int agreed = 0;
            if (S.size > 1) {
                snprintf(other, sizeof other, "another MPI rank failed in round %u (its message "
                         "says why)", res->rounds + 1);
                st = exchange(&S, st, &agreed);
                if (agreed == 2 && err && errlen)
                    snprintf(err, errlen, "%s", other);
            }
#endif
            if (st == FL_OK && !pipelined)
                st = feed_phase(&S, &ra);
            if (st == FL_OK)
                st = finish_feed(&S, &ra);
            if (st == FL_OK && test_fail(&S, "feed"))
                st = FL_ERR_NOMEM;
#ifdef FLSIM_HAVE_MPI
            if (S.size > 1 && !agreed)
                agree(&st, other, err, errlen, &res->err_agreed);
            else if (agreed)
                res->err_agreed = agreed;
#endif
            pending.feed_wall_s = ra.feed_wall;
            pending.train_cpu_s = ra.train_cpu;
            pending.sgd_thread_cpu_s = ra.sgd_cpu;
            pending.client_cpu_s = ra.client_cpu;
            pending.client_pre_cpu_s = ra.pre_cpu;
            pending.client_post_cpu_s = ra.post_cpu;
            pending.feed_cpu_s = ra.feed_cpu + (flsim_fold_pool_cpu_s(S.fold) - fold_cpu0);
            const job *nf = st == FL_ERR_NUMERIC ? nonfinite_job(&S) : NULL;
            if (nf && err && errlen)
                snprintf(err, errlen, "round %u: client %u would reach the server at a virtual "
                         "time that is not finite (%g FLOP/s, %g bit/s down, %g bit/s up): "
                         "rates too small for the clock (see --flops, --down-bps, --up-bps, "
                         "--trace)", res->rounds + 1, nf->key, nf->prof.flops, nf->prof.down_bps,
                         nf->prof.up_bps);
            if (st != FL_OK)
                break;
            /* The round is closed at ra.t_close; its metrics become final at ROUND_END (after
             * the evaluation, if one is due), and the next round starts at the close. */
            vt = ra.t_close;
            cum_down += ra.bytes_down;
            cum_up += ra.bytes_up;
            cum_flops += ra.flops;
            pending.bytes_down = ra.bytes_down;
            pending.bytes_up = ra.bytes_up;
            pending.cum_bytes_down = cum_down;
            pending.cum_bytes_up = cum_up;
            pending.late = ra.late;
            pending.failed = ra.failed_closed; /* the core's count is added at ROUND_END */
            pending.train_flops = ra.flops;
            pending.train_wall_s = train_wall;
            free_jobs(&S);
            idle = 0;
            S.most_online = 0;
            drain = 1;
            continue;
        }
        if (fls_core_round_open(S.core)) {
            st = FL_ERR_INTERNAL;
            break;
        }
        if (!any) {
            /* Too few clients online: wait (virtually) for more. */
            vt += cfg->idle_step_s;
            if (S.n_online > S.most_online)
                S.most_online = S.n_online;
            if (++idle > 10000) {
                if (!S.trace && err && errlen)
                    snprintf(err, errlen, "no round could start: at most %u of the %u clients "
                             "that hold samples were online at once in 10,000 idle steps, fewer "
                             "than --per-round %u (see --availability, --idle-step)",
                             S.most_online, S.can_online, cfg->per_round);
                else if (err && errlen)
                    snprintf(err, errlen, "no round could start: fewer than --per-round %u of "
                             "the %u clients with an availability above 0 in --trace %s were "
                             "online for 10,000 idle steps (at most %u at once): their "
                             "availabilities are too low (see --trace, --idle-step)",
                             cfg->per_round, S.can_online, cfg->trace, S.most_online);
                st = FL_ERR_CONFIG;
                /* The replicated core's decision, taken by every rank at this same step: a
                 * collective call, so that it is said once and the job ends without MPI_Abort. */
                if (S.size > 1)
                    agree(&st, "another MPI rank found that no round could start", err, errlen,
                          &res->err_agreed);
            }
        }
    }
    if (st == FL_OK || st == FL_ERR_CANCELLED) {
        const flm_arch *a = fls_core_arch(S.core);
        const fl_status hs = fl_sha256_digest(res->model_sha256, fls_core_params(S.core),
                                              a->n_params * sizeof(float));
        if (hs != FL_OK)
            st = hs;
    }
    if (st == FL_ERR_CANCELLED) {
        if (err && errlen)
            snprintf(err, errlen, "stopped after round %u of %u", res->rounds, cfg->rounds);
    } else if (st != FL_OK && err && errlen && !err[0]) {
        if (st == FL_ERR_NUMERIC && S.chunk_why[0])
            snprintf(err, errlen, "%s", S.chunk_why);
        else
            snprintf(err, errlen, "simulation failed: %s", fl_strerror(st));
    }
    res->wall_s = fl_time_mono_s() - wall0;
    res->peak_rss_mb = flsim_peak_rss_mb();
    sim_free(&S);
    flsim_data_free(&own);
    if ((st == FL_OK || st == FL_ERR_CANCELLED) && records) {
        *records = recs;
        if (n_records)
            *n_records = n_recs;
    } else {
        free(recs);
    }
    return st;
}
