/* flsim_fold.h: the fold helpers (flsim_fold.c): a parallel-for for the aggregator's fl_par. */
#ifndef FLSIM_FOLD_H
#define FLSIM_FOLD_H

#include "fl_status.h"
#include "flsim.h"

typedef struct flsim_fold_pool flsim_fold_pool;

/* The run's worker and fold helper counts from --threads and --fold-threads on a machine of
 * ncpu CPUs (flsim_cpus). --threads 0 = ncpu workers, but from FLSIM_FOLD_FROM CPUs on a quarter of
 * them fold instead (measured on 16 cores: 12 workers + 4 helpers ran a round of bench_sim in
 * 0.08-0.09 s, 16 workers alone in 0.19 s, the main thread's serial fold the bound; on 8 cores
 * and below helpers gained nothing). --fold-threads auto with --threads N: N / 4 helpers from
 * FLSIM_FOLD_FROM workers on, else none. At most FLSIM_FOLD_MAX helpers either way. */
#define FLSIM_FOLD_FROM 12
/* The CPUs this process may run on (its affinity mask: taskset, a container's cpuset), else the
 * online CPUs. */
unsigned flsim_cpus(void);
void flsim_threads_resolve(const flsim_config *cfg, unsigned ncpu, unsigned *workers,
                           unsigned *helpers);

/* A pool of `helpers` threads (0: every piece on the caller). FL_OK or FL_ERR_NOMEM (no memory,
 * or a thread could not start). */
fl_status flsim_fold_pool_new(unsigned helpers, flsim_fold_pool **out);
void flsim_fold_pool_free(flsim_fold_pool *p); /* joins the helpers; NULL no-op */

/* fl_par.run: fn(arg, i) once for each i in [0, n), on the caller and the helpers; returns when
 * all are done. One caller at a time. */
void flsim_fold_pool_run(void *pool, void (*fn)(void *arg, unsigned i), void *arg, unsigned n);

unsigned flsim_fold_pool_helpers(const flsim_fold_pool *p);
/* The helpers' thread CPU time since they started, summed (their polling included). */
double flsim_fold_pool_cpu_s(const flsim_fold_pool *p);

#endif
