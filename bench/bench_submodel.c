/* bench_submodel: the submodel maps (flm_submodel_gather / scatter_add / runs) beside a plain
 * contiguous copy / axpy of the same number of floats in the same run (what memory speed allows
 * when nothing is skipped).
 *
 *   bench_submodel [--spec ARCH] [--keep P] [--reps R]
 *
 * Default: cnn (6,603,710 params) at keep 0.75. Before every timed pass the caches are evicted
 * (a 64 MiB sweep) so that ours and the peer start cold alike. Best of R passes each.
 * LAST line: gather_ms=... memcpy_ms=... scatter_ms=... axpy_ms=... gather_ratio=...
 * scatter_ratio=...
 * (ratio = the peer's time / ours: 1 is memory speed, below 1 what the map's skipping costs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
                   "memcpy and a contiguous axpy of the same number of floats. Best of R passes.\n"
                   "Last line: the four times, gather_ratio = memcpy / gather and scatter_ratio =\n"
                   "axpy / scatter (1 is memory speed).\n");
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

    double g = 1e30, m = 1e30, s = 1e30, x = 1e30, w = 1e30;
    for (int k = 0; k < reps; k++) {
        evict();
        t0 = fl_time_mono_s();
        flm_submodel_gather(sm, sub, full);
        double t = fl_time_mono_s() - t0;
        g = t < g ? t : g;

        evict();
        t0 = fl_time_mono_s();
        memcpy(sub, full + (N - n), n * sizeof *sub);
        t = fl_time_mono_s() - t0;
        m = t < m ? t : m;

        evict();
        t0 = fl_time_mono_s();
        flm_submodel_scatter_add(sm, acc, sub, 0.5f);
        t = fl_time_mono_s() - t0;
        s = t < s ? t : s;

        evict();
        t0 = fl_time_mono_s();
        float *restrict y = acc;
        const float *restrict v = sub;
        for (size_t i = 0; i < n; i++)
            y[i] += 0.5f * v[i];
        t = fl_time_mono_s() - t0;
        x = t < x ? t : x;

        n_runs = 0;
        t0 = fl_time_mono_s();
        flm_submodel_runs(sm, 0, n, count_run, NULL);
        t = fl_time_mono_s() - t0;
        w = t < w ? t : w;
    }
    volatile float sink = acc[N / 2] + sub[n / 2] + evict_buf[0];
    (void)sink;
    const double mb = (double)n * sizeof(float) / 1e6;
    printf("%s keep %.2f: submodel %zu of %zu floats (%.1f MB), %zu runs, submodel_new %.3f ms\n",
           a.spec, keep, n, N, mb, n_runs, t_new * 1e3);
    printf("gather       %7.3f ms  %6.1f GB/s  | peer contiguous memcpy of n floats %7.3f ms\n",
           g * 1e3, 2 * mb / 1e3 / g, m * 1e3);
    printf("scatter_add  %7.3f ms  %6.1f GB/s  | peer contiguous axpy of n floats   %7.3f ms\n",
           s * 1e3, 3 * mb / 1e3 / s, x * 1e3);
    printf("runs walk    %7.3f ms (no-op callback)\n", w * 1e3);
    /* the ratios too, as every benchmark gives them: the two times alone left the comparison to
     * the reader */
    printf("gather_ms=%.3f memcpy_ms=%.3f scatter_ms=%.3f axpy_ms=%.3f gather_ratio=%.3f "
           "scatter_ratio=%.3f\n", g * 1e3, m * 1e3, s * 1e3, x * 1e3, m / g, x / s);
    free(full);
    free(sub);
    free(acc);
    free(evict_buf);
    flm_submodel_free(sm);
    flm_keepset_free(&ks);
    return 0;
}
