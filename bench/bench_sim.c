/* bench_sim: the simulator at scale (sim/README.md, "Benchmark").
 *
 *   bench_sim [--clients 100000] [--per-round 1000] [--model mlp] [--rounds 5] [--warmup 1]
 *             [--threads 0] [--fold-threads auto] [--dataset fashion-mnist] [--data-shards 1000]
 *             [--up-codec none] [--down-codec none]
 *
 * Runs fl_sim's engine (flsim_run: server core, client cores on the thread pool, virtual clock)
 * and splits each round's wall time into local training (the clients' local SGD, in thread CPU
 * time spread over the workers: see below) and everything else (selection, task decode, the
 * delta and update encoding, feeding the updates to the server core in virtual-time order,
 * aggregation, evaluation, and any time the workers were not running at all: on a machine
 * loaded by other processes that time counts as overhead, so the CPU-time line beside it is the
 * figure to read there). The client phase as a whole is printed too.
 * The figures are the mean of --rounds rounds run after --warmup unmeasured ones (printed, not
 * counted: the first round also pays for first-touch allocations a long run pays once).
 * Peer, measured in the same run: the bare training of as many clients (flm_train_local_from on
 * one model per thread, each client from the same received weights as a client core starts; no
 * cores, no codecs) with the run's batch, epochs and SGD options (lr,
 * momentum, weight decay, FedProx mu; until 2026-12-07 it ran plain SGD at lr 0.05 whatever the
 * run's), on the run's workers and fold helpers together (every CPU the process may use, by
 * default), i.e. the floor. It trains the full model on shards 0 to per-round - 1, where the round
 * trains its sampled clients' shards: the same work under policy full and an iid partition (the
 * default: shards of equal size), not under a dropout policy (submodels) or another partition,
 * which a note line says. One
 * repetition of it runs after each measured round (from the round callback, while the run's
 * threads wait for the next round, outside the round's timed window), so that the two meet the
 * same stretches of a shared machine's load; none after a warm-up round.
 * The line before the last: the medians of the measured rounds' wall times and of the peer's
 * repetitions (least and greatest beside) and the ratio of the two medians; the last line, in the
 * format issue 7 fixes, the means of the measured rounds as before:
 *   round_wall_s=<f> train_s=<f> overhead_frac=<f> peak_rss_mb=<f>
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>

#include "bench_stat.h"
#include "fl_time.h"
#include "flm_blas.h"
#include "flm_model.h"
#include "flm_optim.h"
#include "flsim.h"
#include "flsim_fold.h"
#include "flz.h"

/* The peer: bare local training of `per` shards on `threads` threads. */
typedef struct peer {
    const flm_dataset *ds;
    flm_partition *part;
    const flm_arch *a;
    uint32_t per, next;
    pthread_mutex_t mu;
    pthread_barrier_t ready;
    double t_end; /* the last worker's end of training */
    flm_sgd o;    /* the run's client SGD: lr, momentum, weight decay, FedProx mu */
    int batch, epochs;
    unsigned threads;
} peer;

static void *peer_worker(void *arg)
{
    peer *p = arg;
    flm_blas_set_threads(1);
    flm_model *m = NULL;
    /* g: the weights every client receives (and FedProx's anchor); w: the trained ones. Each
     * client starts from g, as the run's client cores do (flm_train_local_from, no copy). */
    float *w = malloc(p->a->n_params * sizeof *w), *g = malloc(p->a->n_params * sizeof *g);
    if (!w || !g || flm_model_new(p->a, p->batch, &m) != FL_OK) {
        fprintf(stderr, "bench_sim: peer: out of memory\n");
        exit(1); /* the others wait at the barrier for this one */
    }
    fl_rng init = fl_rng_stream(1, 0, 0, FL_RNG_INIT);
    flm_model_init_params(p->a, g, &init);
    if (p->o.momentum != 0 && !flm_model_velocity(m)) { /* made now, not in the first step */
        fprintf(stderr, "bench_sim: peer: out of memory\n");
        exit(1);
    }
    /* the timed window starts once every worker has its model: thread start and allocation are
     * setup, not the bare training the peer stands for */
    pthread_barrier_wait(&p->ready);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        const uint32_t k = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (k >= p->per)
            break;
        const uint32_t *idx;
        size_t n;
        flm_partition_client(p->part, k % p->part->K, &idx, &n);
        if (n == 0)
            continue;
        const flm_samples v = {p->ds->x, p->ds->tokens, p->ds->y, idx, n};
        fl_rng order = fl_rng_stream(1, 0, k, FL_RNG_BATCH);
        double loss;
        flm_train_local_from(m, w, g, p->o.mu > 0 ? g : NULL, &v, p->epochs, &p->o, &order,
                             &loss, NULL);
    }
    const double t = fl_time_mono_s();
    pthread_mutex_lock(&p->mu);
    if (t > p->t_end)
        p->t_end = t;
    pthread_mutex_unlock(&p->mu);
    free(w);
    free(g);
    flm_model_free(m);
    return NULL;
}

/* One repetition of the peer: the seconds from the moment every thread holds its model to the
 * last one's end of training. The same work each time (the same clients, initial weights and
 * batch orders). */
static double peer_rep(peer *p)
{
    p->next = 0;
    p->t_end = 0;
    pthread_barrier_init(&p->ready, NULL, p->threads + 1);
    pthread_t th[256];
    for (uint32_t i = 0; i < p->threads; i++)
        if (pthread_create(&th[i], NULL, peer_worker, p) != 0) {
            fprintf(stderr, "bench_sim: peer: cannot start thread %u\n", i);
            exit(1); /* the started ones wait at the barrier */
        }
    pthread_barrier_wait(&p->ready);
    const double tp = fl_time_mono_s();
    for (uint32_t i = 0; i < p->threads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&p->ready);
    return p->t_end - tp;
}

typedef struct stats {
    double wall, phase, train_cpu, client_cpu, feed, sgd_cpu, proc_cpu, pre_cpu, post_cpu, feed_cpu;
    uint32_t n, cap, threads, warmup;
    double *walls, *peer_s; /* each measured round's wall time, and the peer's repetition after it */
    peer *p;
} stats;

static int on_round(void *user, const flsim_round_record *r, const flsim_result *sofar)
{
    (void)sofar;
    stats *s = user;
    /* local training as on the last line: the SGD's thread CPU, spread over the workers */
    const double train = r->sgd_thread_cpu_s / s->threads;
    const int warm = r->round <= s->warmup;
    printf("round %u%s: wall %.3f s, client phase %.3f s, local training %.3f s (= %.3f thread-CPU s / %u), "
           "feeding %.3f s (main thread, overlapped), eval %.3f s; %.1f%% not training; "
           "%u reported, vtime %.1f s; per client, thread CPU: SGD %.0f us, client core "
           "before %.0f us and after %.0f us, server ingest %.0f us\n",
           r->round, warm ? " (warm-up, not counted)" : "", r->wall_s, r->train_wall_s, train,
           r->sgd_thread_cpu_s, s->threads, r->feed_wall_s, r->eval_wall_s,
           100.0 * (r->wall_s - train) / r->wall_s, r->reported, r->vtime_s,
           r->reported ? 1e6 * r->sgd_thread_cpu_s / r->reported : 0.0,
           r->reported ? 1e6 * r->client_pre_cpu_s / r->reported : 0.0,
           r->reported ? 1e6 * r->client_post_cpu_s / r->reported : 0.0,
           r->reported ? 1e6 * r->feed_cpu_s / r->reported : 0.0);
    fflush(stdout);
    if (warm || s->n >= s->cap) /* the latter not reached: the run has rounds + warm-up rounds */
        return 0;
    s->wall += r->wall_s;
    s->phase += r->train_wall_s;
    s->train_cpu += r->train_cpu_s;
    s->client_cpu += r->client_cpu_s;
    s->feed += r->feed_wall_s;
    s->sgd_cpu += r->sgd_thread_cpu_s;
    s->proc_cpu += r->proc_cpu_s;
    s->pre_cpu += r->client_pre_cpu_s;
    s->post_cpu += r->client_post_cpu_s;
    s->feed_cpu += r->feed_cpu_s;
    s->walls[s->n] = r->wall_s;
    /* the peer's repetition, alternated with the measured rounds: the run's threads wait at
     * their condition variables meanwhile, and the next round's clock starts after it */
    s->peer_s[s->n] = peer_rep(s->p);
    printf("  peer after round %u (bare training, %u threads): %.3f s\n", r->round, s->p->threads,
           s->peer_s[s->n]);
    fflush(stdout);
    s->n++;
    return 0;
}

/* The codec's kernel set on this CPU (what every client and the server core use), reported
 * beside the BLAS core: compressed rounds depend on it as the training does on the BLAS. */
static const char *codec_kernels(void)
{
    flz_ctx *c;
    if (flz_ctx_new(NULL, &c) != FL_OK)
        return "unknown";
    const flz_isa isa = flz_ctx_isa(c);
    flz_ctx_free(c);
    return isa == FLZ_ISA_AVX512 ? "avx512" : isa == FLZ_ISA_AVX2 ? "avx2" : "portable";
}

int main(int argc, char **argv)
{
    /* Every round allocates and frees model-sized buffers (tasks, updates, client cores): keep
     * them on the heap instead of fresh zeroed mmap pages each time (glibc). */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_sim [--clients N (100000)] [--per-round N (1000)] [--model mlp]\n"
                   "       [--rounds N (5)] [--warmup N (1)] [--OPTION VALUE]... (any fl_sim option)\n"
                   "Ours: fl_sim's engine (server core, client cores on the thread pool, virtual\n"
                   "clock), each round's wall time split into local SGD (thread CPU) and everything\n"
                   "else; the mean of --rounds rounds after --warmup. Peer, in the same run: bare\n"
                   "flm_train_local_from of as many clients (shards 0 to per-round - 1, the full\n"
                   "model) with the run's batch, epochs and SGD options on the same threads (no\n"
                   "cores, no codecs, no server), one repetition after each measured round; the medians of\n"
                   "both (min-max) and the round over it (ratio of the medians) on the line before\n"
                   "the last. Last line (means): round_wall_s, train_s, overhead_frac,\n"
                   "peak_rss_mb. Details: sim/README.md,\n"
                   "\"Benchmark\", and the comment at the top of bench/bench_sim.c.\n");
            return 0;
        }
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    flsim_config cfg = flsim_config_default();
    char err[512];
    uint32_t rounds = 5, warmup = 1;
    const char *kv[][2] = {{"clients", "100000"}, {"per-round", "1000"}, {"model", "mlp"},
                           {"dataset", "fashion-mnist"}, {"data-shards", "1000"},
                           {"partition", "iid"}, {"eval-every", "0"}, {"eval-samples", "2000"},
                           {"quiet", "1"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        flsim_config_set(&cfg, kv[i][0], kv[i][1], NULL, 0);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *name = argv[i] + (strncmp(argv[i], "--", 2) == 0 ? 2 : 0);
        if (!strcmp(name, "rounds") || !strcmp(name, "warmup")) {
            char *end;
            const long v = strtol(argv[i + 1], &end, 10);
            if (*end || end == argv[i + 1] || v < (name[0] == 'r') || v > 100000) {
                fprintf(stderr, "bench_sim: --%s: '%s' is not a round count\n", name, argv[i + 1]);
                return 2;
            }
            *(name[0] == 'r' ? &rounds : &warmup) = (uint32_t)v;
            continue;
        }
        if (flsim_config_set(&cfg, name, argv[i + 1], err, sizeof err) != FL_OK) {
            fprintf(stderr, "bench_sim: %s\n", err);
            return 2;
        }
    }
    if (argc % 2 == 0) {
        fprintf(stderr, "usage: bench_sim [--clients N] [--per-round N] [--model mlp] [--rounds N] [--warmup N] [--OPTION VALUE]...\n");
        return 2;
    }
    cfg.rounds = rounds + warmup;
    const double t0 = fl_time_mono_s();
    flsim_data data;
    if (flsim_data_load(&data, &cfg, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bench_sim: %s\n", err);
        return 1;
    }
    printf("data loaded in %.2f s: %zu train / %zu test samples\n", fl_time_mono_s() - t0,
           data.train->N, data.test->N);
    unsigned threads, helpers;
    flsim_threads_resolve(&cfg, flsim_cpus(), &threads, &helpers);
    /* The peer, set up before the run: a repetition runs after each measured round. */
    flm_arch a;
    char spec[300];
    flsim_model_spec(&cfg, data.train, spec, sizeof spec); /* the run's own model */
    if (flm_arch_parse(spec, &a, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bench_sim: --model: %s\n", err);
        return 1;
    }
    flm_partition_spec ps;
    flm_partition_spec_parse(cfg.partition, &ps, NULL, 0);
    /* On as many threads as the run computes on: its workers and its fold helpers (with the
     * default --threads 0, every online CPU). */
    const unsigned peer_threads = threads + helpers < 256 ? threads + helpers : 256;
    peer p = {.ds = data.train, .a = &a, .per = cfg.per_round, .mu = PTHREAD_MUTEX_INITIALIZER,
              .o = {(float)cfg.lr, (float)cfg.momentum, (float)cfg.weight_decay, (float)cfg.prox_mu},
              .batch = (int)cfg.batch, .epochs = (int)cfg.epochs, .threads = peer_threads};
    if (flm_partition_make(&p.part, data.train, &ps, cfg.data_shards ? cfg.data_shards : cfg.clients,
                           cfg.seed) != FL_OK) {
        fprintf(stderr, "bench_sim: peer: cannot partition the training set\n");
        return 1;
    }
    /* the peer trains the full model on shards 0 to per-round - 1: the round's work only where
     * every client trains the full model (policy full) and every shard is as large (iid) */
    if (cfg.policy != FLS_POLICY_FULL || ps.kind != FLM_PART_IID)
        printf("note: the peer trains the full model on shards 0-%u, the round %s on its clients' "
               "shards (%s partition): not the same work, so the ratio is not of equal work\n",
               cfg.per_round - 1, cfg.policy != FLS_POLICY_FULL ? "submodels" : "the full model",
               cfg.partition);
    stats s = {0};
    s.threads = threads;
    s.warmup = warmup;
    s.p = &p;
    s.cap = rounds;
    s.walls = malloc(rounds * sizeof *s.walls);
    s.peer_s = malloc(rounds * sizeof *s.peer_s);
    if (!s.walls || !s.peer_s) {
        fprintf(stderr, "bench_sim: out of memory\n");
        return 1;
    }
    flsim_result res;
    const fl_logger lg = {fl_log_to_file, stderr, FL_LOG_WARN};
    fl_status st = flsim_run(&cfg, &data, &lg, on_round, &s, &res, NULL, NULL, err, sizeof err);
    if (st != FL_OK) {
        fprintf(stderr, "bench_sim: %s\n", err);
        return 1;
    }
    flm_partition_free(p.part);
    if (s.n == 0) {
        fprintf(stderr, "bench_sim: the run ended before a measured round\n");
        return 1;
    }

    /* Local training = the clients' local SGD (the trainer call inside flc_core_train: not the
     * task decode, the delta or the update encoding), in thread CPU time, spread over the worker
     * threads; everything else is what the simulator adds around it. Thread CPU, not the SGD's
     * wall time: a worker preempted mid-SGD (by the main thread's feeding, on a machine with as
     * many cores as workers) would otherwise count simulator work as training. */
    const double wall = s.wall / s.n, train = s.sgd_cpu / s.n / threads, phase = s.phase / s.n;
    const double sgd_wall = s.train_cpu / s.n / threads;
    printf("\nfl_sim: %u clients, %u per round, %s (%zu params), %u threads + %u fold helpers, BLAS %s, "
           "codecs down %s up %s (kernels %s); mean of %u rounds after %u warm-up round%s\n",
           cfg.clients, cfg.per_round, res.arch, res.n_params, threads, helpers, res.blas, cfg.down_codec, cfg.up_codec,
           codec_kernels(), s.n, warmup, warmup == 1 ? "" : "s");
    printf("  per round: wall %.3f s; local training %.3f s (local SGD thread CPU, per thread; its "
           "wall time %.3f s); client phase %.3f s; everything else %.3f s (%.1f%%)\n",
           wall, train, sgd_wall, phase, wall - train, 100.0 * (wall - train) / wall);
    const double per = (double)s.n * cfg.per_round;
    printf("  per client: local SGD %.0f us (thread CPU); client core outside SGD (task decode, "
           "delta, encode; its wall less the SGD's wall) %.0f us; server core ingest (decode, "
           "fold; main thread's wall) %.0f us\n",
           1e6 * s.sgd_cpu / per, 1e6 * (s.client_cpu - s.train_cpu) / per, 1e6 * s.feed / per);
    printf("  per client, thread CPU (not counting preemption): client core before training (task, "
           "weights) %.0f us, after the SGD (delta, encode) %.0f us; server core ingest (main thread and "
           "fold helpers) %.0f us\n",
           1e6 * s.pre_cpu / per, 1e6 * s.post_cpu / per, 1e6 * s.feed_cpu / per);
    const double client = s.client_cpu / s.n / threads;
    printf("  client cores as a whole (task decode + training + encoding + copy-out), per thread: "
           "%.3f s; everything else %.3f s (%.1f%%)\n", client, wall - client,
           100.0 * (wall - client) / wall);
    printf("  CPU time (immune to other processes' load): process %.3f s a round, of which local SGD "
           "%.3f s (thread CPU); everything else %.1f%%\n", s.proc_cpu / s.n, s.sgd_cpu / s.n,
           100.0 * (s.proc_cpu - s.sgd_cpu) / s.proc_cpu);
    /* medians of the alternated pairs (the last line keeps the means, as it always gave) */
    const bench_stat rw = bench_stat_of(s.walls, (int)s.n), pk = bench_stat_of(s.peer_s, (int)s.n);
    printf("  peer (bare flm_train_local_from of %u clients, shards 0-%u, the run's batch, epochs "
           "and SGD, %u threads: the run's workers and fold helpers), one repetition after each "
           "measured round: median %.3f s (%.3f-%.3f) of %u\n", cfg.per_round, cfg.per_round - 1,
           peer_threads, pk.med, pk.lo, pk.hi, s.n);
    printf("  simulator round / bare training: %.2fx (ratio of the medians: rounds %.3f s "
           "(%.3f-%.3f), peer %.3f s); peak RSS %.0f MB\n", rw.med / pk.med, rw.med, rw.lo, rw.hi,
           pk.med, flsim_peak_rss_mb());
    printf("round_wall_s=%.4f train_s=%.4f overhead_frac=%.4f peak_rss_mb=%.1f\n", wall, train,
           (wall - train) / wall, flsim_peak_rss_mb());
    flsim_data_free(&data);
    free(s.walls);
    free(s.peer_s);
    return 0;
}
