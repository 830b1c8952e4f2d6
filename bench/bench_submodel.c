/* bench_submodel: the submodel maps (flm_submodel_gather / scatter_add / runs) beside a plain
 * contiguous copy / axpy of the same number of floats in the same run (what memory speed allows
 * when nothing is skipped).
 *
 *   bench_submodel [--spec ARCH] [--keep P] [--reps R]
 *
 * Default: cnn (6,603,710 params) at keep 0.75. Before every timed pass the caches are evicted
 * (a 64 MiB sweep) so that ours and the peer start cold alike. Each of R passes runs ours and
 * then its peer (gather, memcpy, scatter_add, axpy, runs), so the sides alternate pass by pass and
 * meet the same stretches of a shared machine's load; each time is the median of the R passes
 * (least and greatest beside; the least, the best of R that was the figure until 2026-12-02, is
 * the "best" column), each ratio the ratio of the medians.
 * LAST line (medians): gather_ms=... memcpy_ms=... scatter_ms=... axpy_ms=... gather_ratio=...
 * scatter_ratio=...
 * (ratio = the peer's time / ours: 1 is memory speed, below 1 what the map's skipping costs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stat.h"
#include "fl_rng.h"
#include "fl_time.h"
#include "flm_arch.h"
#include "flm_submodel.h"

#define EVICT_FLOATS ((size_t)16 << 20)

static float *evict_buf;

static void evict(void)
{
    for (size_t i = 0; i < EVICT_FLOATS; i += 16)
        evict_buf[i] += 1.0f;
}

static size_t n_runs;
static void count_run(void *user, size_t full_index, size_t sub_index, size_t len)
{
    (void)user;
    (void)full_index;
    (void)sub_index;
    (void)len;
    n_runs++;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_submodel: out of memory\n");
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    const char *spec = "cnn";
    double keep = 0.75;
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_submodel [--spec ARCH (cnn)] [--keep P (0.75)] [--reps R (20)]\n"
                   "Ours: the submodel maps of a random keep-set at keep P of ARCH: gather (full model\n"
                   "to submodel), scatter_add (submodel into a full-size accumulator) and the runs\n"
                   "walk, caches evicted before each pass. Peers, in the same run: a contiguous\n"
                   "memcpy and a contiguous axpy of the same number of floats, alternated with ours\n"
                   "pass by pass. Medians of R passes (min-max and the best beside). Last line: the\n"
                   "four median times, gather_ratio = memcpy / gather and scatter_ratio = axpy /\n"
                   "scatter, ratios of the medians (1 is memory speed).\n");
            return 0;
        }
        if (strcmp(argv[i], "--spec") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
            keep = atof(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_submodel [--spec ARCH] [--keep P] [--reps R]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 100000) {
        fprintf(stderr, "bench_submodel: --reps 1..100000\n");
        return 2;
    }
    flm_arch a;
    char err[128];
    if (flm_arch_parse(spec, &a, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bench_submodel: %s\n", err);
        return 2;
    }
    fl_rng r = fl_rng_stream(1, 0, 0, FL_RNG_KEEPSET);
    flm_keepset ks;
    if (flm_keepset_random(&ks, &a, keep, &r) != FL_OK) {
        fprintf(stderr, "bench_submodel: bad keep fraction %g\n", keep);
        return 2;
    }
    double t0 = fl_time_mono_s();
    flm_submodel *sm = NULL;
    const int builds = 100;
    for (int i = 0; i < builds; i++) {
        flm_submodel_free(sm);
        if (flm_submodel_new(&a, &ks, &sm) != FL_OK)
            return 1;
    }
    const double t_new = (fl_time_mono_s() - t0) / builds;

    const size_t N = a.n_params, n = flm_submodel_arch(sm)->n_params;
    float *full = xmalloc(N * sizeof *full), *sub = xmalloc(n * sizeof *sub);
    float *acc = xmalloc(N * sizeof *acc);
    evict_buf = xmalloc(EVICT_FLOATS * sizeof *evict_buf);
    for (size_t i = 0; i < N; i++) {
        full[i] = (float)(i % 1000) * 1e-3f;
        acc[i] = 0.0f;
    }
    memset(sub, 0, n * sizeof *sub);
    memset(evict_buf, 0, EVICT_FLOATS * sizeof *evict_buf);

    /* each pass's seconds, [5][reps]: gather, memcpy, scatter_add, axpy, runs walk */
    double *tt = xmalloc((size_t)5 * (size_t)reps * sizeof *tt);
    for (int k = 0; k < reps; k++) {
        evict();
        t0 = fl_time_mono_s();
        flm_submodel_gather(sm, sub, full);
        tt[k] = fl_time_mono_s() - t0;

        evict();
        t0 = fl_time_mono_s();
        memcpy(sub, full + (N - n), n * sizeof *sub);
        tt[reps + k] = fl_time_mono_s() - t0;

        evict();
        t0 = fl_time_mono_s();
        flm_submodel_scatter_add(sm, acc, sub, 0.5f);
        tt[2 * reps + k] = fl_time_mono_s() - t0;

        evict();
        t0 = fl_time_mono_s();
        float *restrict y = acc;
        const float *restrict v = sub;
        for (size_t i = 0; i < n; i++)
            y[i] += 0.5f * v[i];
        tt[3 * reps + k] = fl_time_mono_s() - t0;

        n_runs = 0;
        t0 = fl_time_mono_s();
        flm_submodel_runs(sm, 0, n, count_run, NULL);
        tt[4 * reps + k] = fl_time_mono_s() - t0;
    }
    volatile float sink = acc[N / 2] + sub[n / 2] + evict_buf[0];
    (void)sink;
    const bench_stat G = bench_stat_of(tt, reps), M = bench_stat_of(tt + reps, reps);
    const bench_stat S = bench_stat_of(tt + 2 * reps, reps), X = bench_stat_of(tt + 3 * reps, reps);
    const bench_stat W = bench_stat_of(tt + 4 * reps, reps);
    const double g = G.med, m = M.med, s = S.med, x = X.med, w = W.med;
    const double mb = (double)n * sizeof(float) / 1e6;
    printf("%s keep %.2f: submodel %zu of %zu floats (%.1f MB), %zu runs, submodel_new %.3f ms; "
           "medians of %d passes (min-max)\n", a.spec, keep, n, N, mb, n_runs, t_new * 1e3, reps);
    printf("gather       %7.3f ms (%.3f-%.3f)  %6.1f GB/s  | peer contiguous memcpy of n floats "
           "%7.3f ms (%.3f-%.3f)\n", g * 1e3, G.lo * 1e3, G.hi * 1e3, 2 * mb / 1e3 / g, m * 1e3,
           M.lo * 1e3, M.hi * 1e3);
    printf("scatter_add  %7.3f ms (%.3f-%.3f)  %6.1f GB/s  | peer contiguous axpy of n floats   "
           "%7.3f ms (%.3f-%.3f)\n", s * 1e3, S.lo * 1e3, S.hi * 1e3, 3 * mb / 1e3 / s, x * 1e3,
           X.lo * 1e3, X.hi * 1e3);
    printf("runs walk    %7.3f ms (%.3f-%.3f; no-op callback)\n", w * 1e3, W.lo * 1e3, W.hi * 1e3);
    printf("best of %d (each side's fastest pass): gather_ratio=%.3f scatter_ratio=%.3f\n", reps,
           M.lo / G.lo, X.lo / S.lo);
    /* the ratios too, as every benchmark gives them: the two times alone left the comparison to
     * the reader */
    printf("gather_ms=%.3f memcpy_ms=%.3f scatter_ms=%.3f axpy_ms=%.3f gather_ratio=%.3f "
           "scatter_ratio=%.3f\n", g * 1e3, m * 1e3, s * 1e3, x * 1e3, m / g, x / s);
    free(tt);
    free(full);
    free(sub);
    free(acc);
    free(evict_buf);
    flm_submodel_free(sm);
    flm_keepset_free(&ks);
    return 0;
}
