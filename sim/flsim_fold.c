/* flsim_fold.c: the fold helpers, a parallel-for (fl_par) that the server core uses to split
 * each early fold (fls_agg) and each quantised chunk's decode (flz_decode_par) over the main
 * thread and a few helper threads.
 *
 * The main thread feeds updates to the server core one at a time, in virtual-time order, and
 * the core folds each chunk into the round's accumulator as it arrives. On a machine with many
 * cores that serial fold bounds the round (16 workers train 1000 mlp clients in about 60 ms; the
 * main thread folds them in about 180 ms). The aggregator can cut a fold into disjoint pieces of
 * the accumulator; the sums are integers, so any split gives the same bits.
 *
 * A call publishes the job as a new generation and takes pieces itself; helpers, woken or still
 * polling after the last job, claim pieces with a compare-and-swap on (generation, next piece),
 * so a helper that wakes late for an old generation claims nothing. The caller returns once
 * every piece is done: it never waits for a helper that has not started a piece, so a helper
 * that the scheduler keeps off the CPU costs nothing but the pieces it does not take.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "flsim_fold.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long a helper polls for the next job before it sleeps, and how long the caller polls for
 * the last pieces before it sleeps: a round's folds come back to back (one per chunk), so a
 * helper that polls catches the next one without a wake-up. 15 us, tried on 16 cores beside 50
 * (two alternated pairs): helpers' CPU 975-999 us a client against 1165-1281 with rot+q2+zstd
 * uplinks, but rounds 0.107-0.112 s against 0.095-0.096 with plain ones (0.38-0.41 against
 * 0.37-0.40 compressed). */
#define POLL_S 50e-6

struct flsim_fold_pool {
    pthread_mutex_t mu;
    pthread_cond_t go;      /* a new generation, or stop */
    pthread_cond_t done_cv; /* the last piece of the generation is done */
    pthread_t *th;
    unsigned n_th;
    clockid_t *clk;         /* helpers' CPU clocks */
    int *clk_ok;
    /* the job of generation gen: written under mu before the ticket names gen */
    uint32_t gen;
    void (*fn)(void *arg, unsigned i);
    void *arg;
    unsigned n;
    int stop;
    _Atomic uint64_t ticket; /* gen << 32 | next piece to claim */
    _Atomic unsigned done;   /* pieces of the current generation finished */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A piece of generation gen, if one is left: 1 and *i. */
static int claim(flsim_fold_pool *p, uint32_t gen, unsigned n, unsigned *i)
{
    uint64_t t = atomic_load(&p->ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (uint32_t)t >= n)
            return 0;
        if (atomic_compare_exchange_weak(&p->ticket, &t, t + 1)) {
            *i = (uint32_t)t;
            return 1;
        }
    }
}

static void *helper(void *arg)
{
    flsim_fold_pool *p = arg;
    uint32_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        void (*fn)(void *, unsigned) = p->fn;
        void *a = p->arg;
        const unsigned n = p->n;
        pthread_mutex_unlock(&p->mu);
        unsigned i;
        while (claim(p, seen, n, &i)) {
            fn(a, i);
            if (atomic_fetch_add(&p->done, 1) + 1 == n) {
                pthread_mutex_lock(&p->mu);
                pthread_cond_signal(&p->done_cv);
                pthread_mutex_unlock(&p->mu);
            }
        }
        /* Poll a while for the next generation before sleeping on the condition. */
        const double t0 = now_s();
        unsigned k = 0;
        while ((uint32_t)(atomic_load(&p->ticket) >> 32) == seen) {
            CPU_RELAX();
            if (++k % 64 == 0 && now_s() - t0 > POLL_S)
                break;
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

fl_status flsim_fold_pool_new(unsigned helpers, flsim_fold_pool **out)
{
    *out = NULL;
    flsim_fold_pool *p = calloc(1, sizeof *p);
    if (!p)
        return FL_ERR_NOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->done, 0);
    p->th = calloc(helpers ? helpers : 1, sizeof *p->th);
    p->clk = calloc(helpers ? helpers : 1, sizeof *p->clk);
    p->clk_ok = calloc(helpers ? helpers : 1, sizeof *p->clk_ok);
    if (!p->th || !p->clk || !p->clk_ok) {
        flsim_fold_pool_free(p);
        return FL_ERR_NOMEM;
    }
    for (unsigned i = 0; i < helpers; i++) {
        if (pthread_create(&p->th[i], NULL, helper, p) != 0) {
            flsim_fold_pool_free(p);
            return FL_ERR_NOMEM;
        }
        p->n_th++;
        p->clk_ok[i] = pthread_getcpuclockid(p->th[i], &p->clk[i]) == 0;
    }
    *out = p;
    return FL_OK;
}

void flsim_fold_pool_free(flsim_fold_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_th; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done_cv);
    free(p->th);
    free(p->clk);
    free(p->clk_ok);
    free(p);
}

void flsim_fold_pool_run(void *pool, void (*fn)(void *arg, unsigned i), void *arg, unsigned n)
{
    flsim_fold_pool *p = pool;
    if (!p || p->n_th == 0 || n <= 1) {
        for (unsigned i = 0; i < n; i++)
            fn(arg, i);
        return;
    }
    pthread_mutex_lock(&p->mu);
    const uint32_t gen = ++p->gen;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store(&p->done, 0); /* before the ticket names gen: nobody can finish a piece yet */
    atomic_store(&p->ticket, (uint64_t)gen << 32);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    unsigned i;
    while (claim(p, gen, n, &i)) {
        fn(arg, i);
        atomic_fetch_add(&p->done, 1);
    }
    /* The pieces helpers took: poll, then sleep until the last one signals. */
    const double t0 = now_s();
    unsigned k = 0;
    while (atomic_load(&p->done) != n) {
        CPU_RELAX();
        if (++k % 64 == 0 && now_s() - t0 > POLL_S)
            break;
    }
    if (atomic_load(&p->done) != n) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->done) != n)
            pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

unsigned flsim_fold_pool_helpers(const flsim_fold_pool *p)
{
    return p ? p->n_th : 0;
}

double flsim_fold_pool_cpu_s(const flsim_fold_pool *p)
{
    double s = 0.0;
    for (unsigned i = 0; p && i < p->n_th; i++) {
        struct timespec ts;
        if (p->clk_ok[i] && clock_gettime(p->clk[i], &ts) == 0)
            s += (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }
    return s;
}

void flsim_threads_resolve(const flsim_config *cfg, unsigned ncpu, unsigned *workers,
                           unsigned *helpers)
{
    if (ncpu == 0)
        ncpu = 1;
    unsigned w = cfg->threads ? cfg->threads : ncpu, h = 0;
    if (cfg->fold_threads != FLSIM_FOLD_AUTO) {
        h = cfg->fold_threads;
    } else if (cfg->threads == 0 && ncpu >= FLSIM_FOLD_FROM) {
        h = ncpu / 4 < FLSIM_FOLD_MAX ? ncpu / 4 : FLSIM_FOLD_MAX;
        w = ncpu - h;
    } else if (w >= FLSIM_FOLD_FROM) {
        h = w / 4;
    }
    *workers = w;
    *helpers = h > FLSIM_FOLD_MAX ? FLSIM_FOLD_MAX : h;
}

unsigned flsim_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
