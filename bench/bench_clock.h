/* bench_clock.h: the clocks the benchmarks read (monotonic wall time and this process's CPU time,
 * in seconds). Header-only: each benchmark is one program. */
#ifndef FEDROP_BENCH_CLOCK_H
#define FEDROP_BENCH_CLOCK_H

#include <time.h>

static inline double bench_wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline double bench_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
