/* bench_aggregate: streaming aggregation throughput (parameters folded per second, one core)
 * beside plain streaming `acc += w * x` loops over the same number of floats in the same run
 * (the memory-bandwidth limit for touching each delta once).
 *
 *   bench_aggregate [--updates U] [--keep P] [--spec ARCH] [--reps R] [--subnormal F] [--cpu-time]
 *
 * --subnormal F makes that fraction of the deltas subnormal: a client chooses its bytes, and a
 * fold with a slow path on such values (a float multiply of a subnormal takes microcode on the
 * development CPU) would let it slow the server down; the figure should not move.
 *
 * Each update is a random keep-set at keep P of ARCH (default cnn: 6,603,710 params; keep >= 1
 * sends full-model updates). Its delta is decoded in place into the aggregator's staging buffer
 * (fls_agg_update_stage + add without copy, untimed: a decoder writes its output somewhere
 * anyway); the timed part is fls_agg_update_commit: validation, float->fixed conversion, the
 * scatter-add into the 64-bit accumulator and the weight cells. The peer loops read the same
 * number of floats, written into their own buffer by the same memcpy just before, contiguously
 * into an accumulator of the same bytes per coordinate (8 B, double: the LAST line's limit) and,
 * for reference, into a float accumulator (4 B: half the accumulator traffic; printed as
 * ratio_f32), and a float scatter-add over the same submodel map (flm_submodel_scatter_add: the
 * same access pattern with a 4 B accumulator, what an inexact float server would do; printed as
 * ratio_scatter). Before every timed fold (ours and the peer's) the caches are evicted and the
 * update's floats freshly written, so both start from the same state. In each of R rounds every
 * update's fold is followed by the peers' over the same floats (and the copying add's round by
 * ours), so the sides alternate update by update and meet the same stretches of a shared
 * machine's load; each figure is the sum over a round's U updates, its median over the R rounds
 * (least and greatest printed beside), each ratio the ratio of the medians. (Until 2026-12-02 the
 * peers ran after both of ours' rounds, and each figure was the best of the R rounds; the best-of
 * figures are still printed, on the line before the last.)
 * Also printed: the same with a copying add (delta from a separate buffer), begin_round and
 * finalize times. LAST line (medians): params_per_s=... limit_params_per_s=... ratio=...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>

#include "bench_stat.h"
#include "fl_rng.h"
#include "fl_time.h"
#include "flm_arch.h"
#include "flm_submodel.h"
#include "fls_agg.h"

static void die(const char *what, fl_status s)
{
    fprintf(stderr, "bench_aggregate: %s: %s\n", what, fl_strerror(s));
    exit(1);
}

/* Evicts the caches (L3 here is 32 MiB): every timed fold, ours and the peer's, starts from the
 * same state: accumulator cold, the update's floats just written by the "decoder". */
static unsigned char *evict_buf;
static size_t evict_len = (size_t)96 << 20;
static void evict(void)
{
    for (size_t i = 0; i < evict_len; i += 64)
        evict_buf[i]++;
}

/* Peer buffers get the same 2 MiB page hint as the aggregator's buffers (fair TLB treatment). */
static void *alloc_big(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    const size_t len = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, len);
    if (p) {
#ifdef MADV_HUGEPAGE
        (void)madvise(p, len, MADV_HUGEPAGE);
#endif
        memset(p, 0, bytes);
    }
    return p;
}

/* --cpu-time: thread CPU time instead of wall time (for a loaded machine; memory stalls still
 * count, time slices given to other processes do not). */
static int use_cpu_time;
static double now_s(void)
{
    if (!use_cpu_time)
        return fl_time_mono_s();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The peers: plain streaming weighted accumulates over the update's floats, contiguous.
 * peer_f32 keeps a float accumulator (4 B per coordinate); peer_f64 one of the same byte size as
 * the aggregator's 64-bit fixed-point accumulator (8 B per coordinate): the memory-bandwidth limit
 * of streaming the same bytes. */
static void peer_f32(float *restrict acc, const float *restrict x, float w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * x[i];
}

static void peer_f64(double *restrict acc, const float *restrict x, double w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * (double)x[i];
}

/* v as a whole number (0 or a trailing letter: NAN), for the checks below to refuse */
static double num(const char *v)
{
    char *end;
    const double x = strtod(v, &end);
    return *end || end == v ? NAN : x;
}

int main(int argc, char **argv)
{
    int U = 10, R = 0;
    double Uf = 10, Rf = 0; /* as given, checked before they become counts */
    int reps_given = 0;
    double keep = 0.75, subnormal = 0.0;
    const char *spec = "cnn";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--updates U (10)] [--keep P (0.75)] [--spec ARCH (cnn)] [--reps R]\n"
                   "       [--subnormal F (0)] [--cpu-time]   (R: 15 rounds, 9 from 10 updates, 3 from 100)\n"
                   "Ours: the server's exact aggregation (fls_agg_update_commit: validation, float to\n"
                   "64-bit fixed point, scatter-add through each update's submodel map), parameters\n"
                   "folded a second. Peer, in the same run: a plain streaming acc += w * x over the\n"
                   "same floats into a double accumulator (also printed: a float one, and a float\n"
                   "scatter-add over the same maps). Ours and the peers alternate update by update;\n"
                   "medians of R rounds (min-max beside; the best of R on the line before the last).\n"
                   "The last line's ratio is ours over the double peer, of the medians.\n"
                   "--spec ARCH: the model (an flm_arch spec: fl_sim --help, --model); --keep P:\n"
                   "each update a random keep-set of that fraction (>= 1: whole-model updates);\n"
                   "--subnormal F: that fraction of the deltas subnormal (the figure should not\n"
                   "move); --cpu-time: thread CPU time instead of wall time (a loaded machine).\n"
                   "Details: the comment at the top of bench/bench_aggregate.c.\n",
                   argv[0]);
            return 0;
        }
        if (!strcmp(argv[i], "--updates") && i + 1 < argc)
            Uf = num(argv[++i]);
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc)
            keep = num(argv[++i]);
        else if (!strcmp(argv[i], "--spec") && i + 1 < argc)
            spec = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            Rf = num(argv[++i]), reps_given = 1;
        else if (!strcmp(argv[i], "--subnormal") && i + 1 < argc)
            subnormal = num(argv[++i]);
        else if (!strcmp(argv[i], "--cpu-time"))
            use_cpu_time = 1;
        else {
            fprintf(stderr, "usage: %s [--updates U] [--keep P] [--spec ARCH] [--reps R] "
                    "[--subnormal F] [--cpu-time]\n", argv[0]);
            return 2;
        }
    }
    /* every test written so that NaN (junk) fails it; --reps not given: the default below */
    if (!(Uf >= 1 && Uf <= 100000 && Uf == floor(Uf)) || !(keep > 0.0 && keep <= 1e6) ||
        !(subnormal >= 0.0 && subnormal <= 1.0) ||
        (reps_given && !(Rf >= 1 && Rf <= 100000 && Rf == floor(Rf)))) {
        fprintf(stderr, "bench_aggregate: --updates 1..100000, --keep > 0, 0 <= --subnormal <= 1, "
                        "--reps 1..100000 (whole numbers)\n");
        return 2;
    }
    U = (int)Uf;
    R = (int)Rf;
    if (R <= 0)
        R = U >= 100 ? 3 : (U >= 10 ? 9 : 15); /* a median of 3 moved 0.41-0.76 at load 4 */
    flm_arch a;
    char err[128];
    fl_status s = flm_arch_parse(spec, &a, err, sizeof err);
    if (s != FL_OK) {
        fprintf(stderr, "bench_aggregate: %s\n", err);
        return 2;
    }
    const size_t N = a.n_params;

    /* One submodel per update (per-client FD keep-sets), or the full model. */
    flm_keepset *ks = calloc((size_t)U, sizeof *ks);
    flm_submodel **sm = calloc((size_t)U, sizeof *sm);
    size_t *nsub = calloc((size_t)U, sizeof *nsub);
    size_t folded = 0, max_sub = 0;
    for (int u = 0; u < U; u++) {
        nsub[u] = N;
        if (keep < 1.0) {
            fl_rng r = fl_rng_stream(7, 0, (uint32_t)u, FL_RNG_KEEPSET);
            if ((s = flm_keepset_random(&ks[u], &a, keep, &r)) != FL_OK)
                die("keepset", s);
            if ((s = flm_submodel_new(&a, &ks[u], &sm[u])) != FL_OK)
                die("submodel", s);
            nsub[u] = flm_submodel_arch(sm[u])->n_params;
        }
        folded += nsub[u];
        if (nsub[u] > max_sub)
            max_sub = nsub[u];
    }
    /* Source deltas (what the decoder would produce), the peer's buffers. */
    float *src = malloc(N * sizeof(float));
    float *px = alloc_big(max_sub * sizeof(float));
    float *pacc = alloc_big(N * sizeof(float)); /* a float model-sized accumulator */
    double *dacc = alloc_big(N * sizeof(double));
    evict_buf = calloc(evict_len, 1);
    float *delta = malloc(N * sizeof(float));
    uint8_t *held = malloc(N);
    if (!src || !px || !pacc || !delta || !held || !evict_buf || !dacc)
        die("alloc", FL_ERR_NOMEM);
    fl_rng r = fl_rng_stream(7, 0, 0, FL_RNG_TEST);
    for (size_t i = 0; i < N; i++)
        src[i] = 0.01f * (2.0f * fl_rng_uniform(&r) - 1.0f);
    /* --subnormal F: that fraction of the deltas subnormal, spread evenly (a client chooses its
     * bytes: a fold with a slow path on such values would be a lever to slow the server) */
    if (subnormal > 0.0)
        for (double p = 0.0; p < (double)N; p += 1.0 / subnormal)
            src[(size_t)p] = ((size_t)p & 1 ? -1e-40f : 3e-41f);
    memcpy(px, src, max_sub * sizeof(float));

    fls_agg *agg;
    if ((s = fls_agg_new(&a, NULL, &agg)) != FL_OK)
        die("fls_agg_new", s);

    /* each round's times, [K][R]: the medians and the ranges are taken of these */
    enum { T_FOLD, T_COPY, T_PEER, T_PEER32, T_SCAT, T_BEGIN, T_FIN, K };
    double *tt = malloc((size_t)K * (size_t)R * sizeof *tt);
    if (!tt)
        die("alloc", FL_ERR_NOMEM);
    for (int rep = 0; rep < R; rep++) {
        /* ours, in-place decode: only the commit is timed; each update's fold is followed by
         * the peers' over the same number of floats, so that the sides alternate update by
         * update (tens of ms apart, not a whole round) */
        double t_begin = now_s();
        if ((s = fls_agg_begin_round(agg)) != FL_OK)
            die("begin_round", s);
        t_begin = now_s() - t_begin;
        double t_fold = 0, t_peer = 0, t_peer32 = 0, t_scat = 0;
        for (int u = 0; u < U; u++) {
            fls_agg_update *h;
            if ((s = fls_agg_update_begin(agg, 100 + (uint64_t)u, sm[u], &h)) != FL_OK)
                die("update_begin", s);
            float *dst = fls_agg_update_stage(h, 0, nsub[u]);
            evict();
            memcpy(dst, src + (size_t)u % (N - nsub[u] + 1), nsub[u] * sizeof(float));
            if ((s = fls_agg_update_add(h, 0, dst, nsub[u])) != FL_OK)
                die("update_add", s);
            const double t0 = now_s();
            if ((s = fls_agg_update_commit(h)) != FL_OK)
                die("commit", s);
            t_fold += now_s() - t0;

            /* the peers: a double accumulator (the limit), a float one, and a float
             * scatter-add over the same submodel map, what a non-exact float FedAvg server does
             * (same access pattern as ours, 4 B accumulator) */
            evict();
            memcpy(px, src + (size_t)u % (N - nsub[u] + 1), nsub[u] * sizeof(float));
            double t1 = now_s();
            peer_f64(dacc, px, 100.0 + u, nsub[u]);
            t_peer += now_s() - t1;
            evict();
            memcpy(px, src + (size_t)u % (N - nsub[u] + 1), nsub[u] * sizeof(float));
            t1 = now_s();
            peer_f32(pacc, px, 100.0f + (float)u, nsub[u]);
            t_peer32 += now_s() - t1;
            evict();
            memcpy(px, src + (size_t)u % (N - nsub[u] + 1), nsub[u] * sizeof(float));
            t1 = now_s();
            if (sm[u])
                flm_submodel_scatter_add(sm[u], pacc, px, 100.0f + (float)u);
            else
                peer_f32(pacc, px, 100.0f + (float)u, nsub[u]);
            t_scat += now_s() - t1;
        }
        double t_fin = now_s();
        if ((s = fls_agg_finalize(agg, delta, held)) != FL_OK)
            die("finalize", s);
        t_fin = now_s() - t_fin;

        /* ours, copying add: add (memcpy into staging) + commit timed */
        if ((s = fls_agg_begin_round(agg)) != FL_OK)
            die("begin_round", s);
        double t_copy = 0;
        for (int u = 0; u < U; u++) {
            fls_agg_update *h;
            if ((s = fls_agg_update_begin(agg, 100 + (uint64_t)u, sm[u], &h)) != FL_OK)
                die("update_begin", s);
            evict();
            const double t0 = now_s();
            if ((s = fls_agg_update_add(h, 0, src + (size_t)u % (N - nsub[u] + 1), nsub[u])) != FL_OK)
                die("update_add", s);
            if ((s = fls_agg_update_commit(h)) != FL_OK)
                die("commit", s);
            t_copy += now_s() - t0;
        }

        const double t[K] = {t_fold, t_copy, t_peer, t_peer32, t_scat, t_begin, t_fin};
        for (int k = 0; k < K; k++)
            tt[(size_t)k * R + rep] = t[k];
    }
    double chk = 0; /* keep the peer's result alive */
    for (size_t i = 0; i < max_sub; i += 4096)
        chk += pacc[i] + dacc[i];
    size_t n_held = 0;
    for (size_t i = 0; i < N; i++)
        n_held += held[i];

    bench_stat st[K];
    for (int k = 0; k < K; k++)
        st[k] = bench_stat_of(tt + (size_t)k * R, R);
    const double fold = st[T_FOLD].med, copy = st[T_COPY].med, peer = st[T_PEER].med;
    const double peer32 = st[T_PEER32].med, scat = st[T_SCAT].med;
    printf("arch=%s n_params=%zu updates=%d keep=%.2f subnormal=%.2f reps=%d folded_per_round=%zu "
           "held=%zu clock=%s\n", a.spec, N, U, keep, subnormal, R, folded, n_held,
           use_cpu_time ? "thread-cpu" : "wall");
    printf("memory_bytes=%zu (accumulator 8 B/param + staging 4 B/param + weight cells)\n",
           fls_agg_memory_bytes(&a, N, NULL, 0));
    static const char *const tname[K] = {"fold_in_place_s", "copy_add_fold_s", "peer_f64_s",
                                         "peer_f32_s", "peer_scatter_s", "begin_round_s",
                                         "finalize_s"};
    printf("medians of %d rounds (min-max):", R);
    for (int k = 0; k < K; k++)
        printf(" %s=%.4f (%.4f-%.4f)", tname[k], st[k].med, st[k].lo, st[k].hi);
    printf("\n");
    printf("float_acc_peer: limit_f32_params_per_s=%.4g ratio_f32=%.3f\n",
           (double)folded / peer32, peer32 / fold);
    printf("float_scatter_peer (flm_submodel_scatter_add): params_per_s=%.4g ratio_scatter=%.3f\n",
           (double)folded / scat, scat / fold);
    printf("copy_add_params_per_s=%.4g copy_ratio=%.3f (peer checksum %.3g)\n",
           (double)folded / copy, peer / copy, chk);
    printf("best of %d rounds (each side's fastest, not alternated pairs): params_per_s=%.4g "
           "limit_params_per_s=%.4g ratio=%.3f\n", R, (double)folded / st[T_FOLD].lo,
           (double)folded / st[T_PEER].lo, st[T_PEER].lo / st[T_FOLD].lo);
    printf("params_per_s=%.4g limit_params_per_s=%.4g ratio=%.3f\n", (double)folded / fold,
           (double)folded / peer, peer / fold);

    fls_agg_free(agg);
    for (int u = 0; u < U; u++) {
        flm_submodel_free(sm[u]);
        flm_keepset_free(&ks[u]);
    }
    free(ks);
    free(sm);
    free(nsub);
    free(src);
    free(px);
    free(pacc);
    free(dacc);
    free(delta);
    free(held);
    free(evict_buf);
    free(tt);
    return 0;
}
