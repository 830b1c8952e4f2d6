/* bench_stat.h: the median of a benchmark's repetitions, with their least and greatest beside.
 * Header-only, as bench_clock.h: each benchmark is one program. */
#ifndef FEDROP_BENCH_STAT_H
#define FEDROP_BENCH_STAT_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_stat {
    double med, lo, hi;
} bench_stat;

static inline int bench_cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Of v[0..n), n >= 1, v left as it is; all NaN when a copy cannot be allocated. */
static inline bench_stat bench_stat_of(const double *v, int n)
{
    bench_stat r = {NAN, NAN, NAN};
    double *s = n > 0 ? malloc((size_t)n * sizeof *s) : NULL;
    if (!s)
        return r;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    r.lo = s[0];
    r.hi = s[n - 1];
    free(s);
    return r;
}

#endif
