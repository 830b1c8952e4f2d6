/* bench_compress: codec pipelines on a model delta, single-threaded, beside plain zstd.
 *
 *   bench_compress [--input FILE] [--n N] [--pipeline SPEC]... [--reps R]
 *                  [--isa portable|avx2|avx512]
 *
 * FILE holds raw little-endian float32 (e.g. a cnn delta written by the models engine). Without
 * it: a synthetic Gaussian vector of N = 6,603,710 floats (the cnn size), sigma 1e-3, with 64
 * heavy-tailed outliers. Each pipeline (default: a fixed list) is encoded and decoded as one
 * payload; for a multi-stage pipeline every prefix is measured too, so the cost of each stage is
 * the difference between consecutive rows. Each figure is the median of R repetitions (least and
 * greatest beside) after one untimed warm-up, in thread CPU time (the machine may be shared;
 * wall-clock medians are printed beside). Figures: ratio = float32 bytes / payload bytes; GB/s =
 * float32 input bytes / s; rel_l2 = ||decode - x|| / ||x||. The peer, measured in the same run, is
 * plain zstd level 3 on the raw float32 bytes. A second peer: each whole pipeline again with the
 * next narrower kernel set (AVX2 beside AVX-512, portable beside AVX2), which gives the same
 * bytes, so the ratio is the kernels' speed-up alone. Each whole pipeline's repetitions are
 * alternated with both peers' (ours, zstd, narrower; the next repetition starts one further
 * along, so no side always runs first), so that all meet the same stretches of a shared machine's
 * load; the ratios are of the medians. (Until 2026-12-02 zstd ran once, R times in a block before
 * every pipeline, and every figure was the best of R.)
 * The LAST line is `ratio=.. encode_gbps=.. decode_gbps=.. rel_l2=..` for the last pipeline,
 * then `zstd_ratio=.. encode_vs_zstd=.. decode_vs_zstd=..` (zstd's size ratio, and the pipeline's
 * encode and decode speed over zstd's), then, where a narrower kernel set exists,
 * `kernels=.. peer_kernels=.. encode_x=.. decode_x=..`: its speed over the narrower set's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "bench_stat.h"
#include "fl_rng.h"
#include "fl_time.h"
#include "flz.h"

/* Medians of R repetitions (GB/s: of the times, then converted), the least and greatest CPU
 * speeds beside. */
typedef struct fig {
    double ratio, enc_gbps, dec_gbps, rel_l2;
    double enc_wall_gbps, dec_wall_gbps;
    double enc_lo, enc_hi, dec_lo, dec_hi;
} fig;

/* Seconds of CPU time of this thread: on a machine shared with other jobs, wall time measures
 * the scheduler; the benchmark is single-threaded, so thread CPU time is the work itself. Wall
 * time is reported beside it. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : 0;
}

/* One side measured: a pipeline on a codec context, or (c NULL) the zstd -3 peer. */
typedef struct subject {
    flz_ctx *c;
    flz_spec sp;
    const char *name;
    size_t cap, w;    /* payload bound, payload bytes */
    double *t;        /* [4][reps]: encode CPU, decode CPU, encode wall, decode wall (s) */
    double rel_l2;
} subject;

static int subject_init(subject *s, flz_ctx *c, const char *spec, size_t n, int reps)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->name = spec;
    s->t = malloc((size_t)4 * (size_t)reps * sizeof *s->t);
    if (!s->t)
        return -1;
    if (!c) {
        s->cap = ZSTD_compressBound(4 * n);
        return 0;
    }
    char err[160];
    if (flz_spec_parse(spec, &s->sp, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bad pipeline %s: %s\n", spec, err);
        return -1;
    }
    s->cap = flz_encode_bound(&s->sp, n);
    return flz_ctx_reserve(c, &s->sp, n) == FL_OK ? 0 : -1;
}

/* Repetition r (-1: the untimed warm-up) of one side; the error after its last. */
static int subject_rep(subject *s, int r, int reps, const float *x, size_t n, float *y,
                       uint8_t *buf)
{
    double w0, t0, t1, w1, t2, w2;
    if (s->c) {
        const flz_params p = {12345, 1, 0, NULL};
        w0 = fl_time_mono_s();
        t0 = cpu_s();
        const fl_status st = flz_encode(s->c, &s->sp, &p, x, n, buf, s->cap, &s->w);
        t1 = cpu_s();
        w1 = fl_time_mono_s();
        if (st != FL_OK) {
            fprintf(stderr, "%s: encode: %s\n", s->name, fl_strerror(st));
            return -1;
        }
        const fl_status st2 = flz_decode(s->c, buf, s->w, y, n);
        t2 = cpu_s();
        w2 = fl_time_mono_s();
        if (st2 != FL_OK) {
            fprintf(stderr, "%s: decode: %s\n", s->name, fl_strerror(st2));
            return -1;
        }
    } else {
        w0 = fl_time_mono_s();
        t0 = cpu_s();
        const size_t z = ZSTD_compress(buf, s->cap, x, 4 * n, 3);
        t1 = cpu_s();
        w1 = fl_time_mono_s();
        if (ZSTD_isError(z)) {
            fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(z));
            return -1;
        }
        const size_t d = ZSTD_decompress(y, 4 * n, buf, z);
        t2 = cpu_s();
        w2 = fl_time_mono_s();
        if (ZSTD_isError(d)) {
            fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(d));
            return -1;
        }
        s->w = z;
    }
    if (r < 0)
        return 0;
    s->t[r] = t1 - t0;
    s->t[reps + r] = t2 - t1;
    s->t[2 * reps + r] = w1 - w0;
    s->t[3 * reps + r] = w2 - w1;
    if (r == reps - 1) /* y is the next side's output after this */
        s->rel_l2 = rel_l2(y, x, n);
    return 0;
}

/* k sides, their repetitions alternated: a warm-up of each, then repetition r of every side,
 * starting with side r % k. */
static int run_alternated(subject *s, int k, int reps, const float *x, size_t n, float *y,
                          uint8_t *buf)
{
    for (int r = -1; r < reps; r++)
        for (int i = 0; i < k; i++)
            if (subject_rep(&s[((r < 0 ? 0 : r) + i) % k], r, reps, x, n, y, buf) != 0)
                return -1;
    return 0;
}

static fig fig_of(const subject *s, size_t n, int reps)
{
    const double bytes = 4.0 * (double)n;
    const bench_stat e = bench_stat_of(s->t, reps), d = bench_stat_of(s->t + reps, reps);
    const bench_stat ew = bench_stat_of(s->t + 2 * reps, reps);
    const bench_stat dw = bench_stat_of(s->t + 3 * reps, reps);
    const fig f = {bytes / (double)s->w, bytes / e.med / 1e9, bytes / d.med / 1e9, s->rel_l2,
                   bytes / ew.med / 1e9, bytes / dw.med / 1e9, bytes / e.hi / 1e9,
                   bytes / e.lo / 1e9, bytes / d.hi / 1e9, bytes / d.lo / 1e9};
    return f;
}

static void print_row(const char *name, const fig *f)
{
    printf("  %-28s ratio %7.2fx  encode %6.2f GB/s (%.2f-%.2f, wall %5.2f)  decode %6.2f GB/s "
           "(%.2f-%.2f, wall %5.2f)  rel_l2 %.3e\n", name, f->ratio, f->enc_gbps, f->enc_lo,
           f->enc_hi, f->enc_wall_gbps, f->dec_gbps, f->dec_lo, f->dec_hi, f->dec_wall_gbps,
           f->rel_l2);
}

int main(int argc, char **argv)
{
    const char *input = NULL, *isa = NULL;
    const char *specs[32];
    int nspecs = 0, reps = 5;
    size_t n = 6603710;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--input FILE] [--n N] [--pipeline SPEC]... [--reps R (5)]\n"
                   "       [--isa portable|avx2|avx512]\n"
                   "Ours: each codec pipeline (default: a fixed list) encoding and decoding a model\n"
                   "delta (FILE of float32, or a synthetic one of N floats), one thread: size ratio,\n"
                   "GB/s of float32 input (thread CPU time, wall beside), relative L2 error; every\n"
                   "prefix of a pipeline too. Peers, in the same run: plain zstd -3 on the raw\n"
                   "floats, and each pipeline again on the next narrower kernel set (the same bytes).\n"
                   "Each whole pipeline alternated with both peers; medians of R (min-max beside).\n"
                   "The last line: the last pipeline's figures, its speed over zstd's and\n"
                   "(where a narrower set exists) over that set's. --pipeline: a codec spec\n"
                   "(compress/README.md), repeatable; --n: the synthetic delta's length (6603710, the\n"
                   "cnn's); --isa: the kernel set ours runs (default: the widest the CPU has).\n"
                   "Details: the comment at the top of bench/bench_compress.c.\n", argv[0]);
            return 0;
        }
        if (!strcmp(argv[i], "--input") && i + 1 < argc)
            input = argv[++i];
        else if (!strcmp(argv[i], "--pipeline") && i + 1 < argc && nspecs < 32)
            specs[nspecs++] = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc)
            isa = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--input FILE] [--n N] [--pipeline SPEC]... [--reps R] "
                            "[--isa portable|avx2|avx512]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 100000) {
        fprintf(stderr, "bench_compress: --reps 1..100000\n");
        return 2;
    }
    if (nspecs == 0) {
        static const char *const dflt[] = {"none", "zstd", "f16", "bf16", "q8", "q4",
                                           "f16+zstd", "q8+zstd", "rot+q8+zstd", "rot+q4+zstd",
                                           "rot+q2+zstd", "sub0.25+q4", "topk0.01+q8+zstd",
                                           "rot+q4+zstd"};
        for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++)
            specs[nspecs++] = dflt[i];
    }
    float *x;
    if (input) {
        FILE *f = fopen(input, "rb");
        if (!f) {
            fprintf(stderr, "cannot open %s\n", input);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        const long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        n = (size_t)sz / 4;
        x = malloc(n * sizeof(float) + 4);
        if (!x || fread(x, 4, n, f) != n) {
            fprintf(stderr, "cannot read %s\n", input);
            return 1;
        }
        fclose(f);
    } else {
        x = malloc(n * sizeof(float) + 4);
        fl_rng r = fl_rng_stream(2026, 0, 0, FL_RNG_DATA);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(1e-3 * fl_rng_normal(&r));
        for (int k = 0; k < 64 && n; k++) /* heavy tail: a few 30-100 sigma outliers */
            x[fl_rng_below(&r, (uint32_t)n)] = (float)(1e-3 * (30 + 70 * fl_rng_uniform_f64(&r)) *
                                                      (fl_rng_u32(&r) & 1 ? 1 : -1));
    }
    if (n == 0 || n > FLZ_MAX_N) {
        fprintf(stderr, "need 1..%zu floats\n", (size_t)FLZ_MAX_N);
        return 1;
    }
    float *y = malloc(n * sizeof(float) + 4);
    uint8_t *buf = malloc(ZSTD_compressBound(4 * n) + 4096);
    flz_ctx *c;
    if (!y || !buf || flz_ctx_new(NULL, &c) != FL_OK)
        return 1;
    static const char *const isa_name[] = {"portable", "avx2", "avx512"};
    if (isa) {
        int k = 0;
        while (k < 3 && strcmp(isa, isa_name[k]))
            k++;
        if (k == 3 || flz_ctx_set_isa(c, (flz_isa)k) != FL_OK) {
            fprintf(stderr, "isa %s not available (portable, avx2 or avx512, as the CPU has)\n",
                    isa);
            return 1;
        }
    }
    const flz_isa kisa = flz_ctx_isa(c);
    /* the narrower kernel set, on a context of its own */
    flz_ctx *nc = NULL;
    if (kisa != FLZ_ISA_PORTABLE &&
        (flz_ctx_new(NULL, &nc) != FL_OK || flz_ctx_set_isa(nc, (flz_isa)(kisa - 1)) != FL_OK))
        return 1;
    printf("bench_compress: %zu floats (%s), %d reps (medians, after a warm-up), kernels %s, "
           "single thread\n", n, input ? input : "synthetic gaussian + outliers", reps,
           isa_name[kisa]);

    fig last = {0}, lastz = {0}, narrow = {0};
    subject sub[3] = {{0}};
    int ret = 0;
    for (int s = 0; s < nspecs && !ret; s++) {
        printf("pipeline %s:\n", specs[s]);
        /* every proper prefix, alone, so that consecutive rows give each stage's cost */
        char pre[256];
        const char *p = specs[s];
        for (const char *plus; (plus = strchr(p, '+')) != NULL; p = plus + 1) {
            const size_t len = (size_t)(plus - specs[s]);
            if (len >= sizeof pre) {
                ret = 1;
                break;
            }
            memcpy(pre, specs[s], len);
            pre[len] = '\0';
            if (subject_init(&sub[0], c, pre, n, reps) != 0 ||
                run_alternated(sub, 1, reps, x, n, y, buf) != 0) {
                ret = 1;
                break;
            }
            const fig f = fig_of(&sub[0], n, reps);
            print_row(pre, &f);
            free(sub[0].t);
            sub[0].t = NULL;
        }
        if (ret)
            break;
        /* the whole pipeline, alternated with zstd and with the narrower kernel set */
        const int k = nc ? 3 : 2;
        if (subject_init(&sub[0], c, specs[s], n, reps) != 0 ||
            subject_init(&sub[1], NULL, "zstd", n, reps) != 0 ||
            (nc && subject_init(&sub[2], nc, specs[s], n, reps) != 0) ||
            run_alternated(sub, k, reps, x, n, y, buf) != 0) {
            ret = 1;
            break;
        }
        last = fig_of(&sub[0], n, reps);
        lastz = fig_of(&sub[1], n, reps);
        print_row(specs[s], &last);
        print_row("peer: zstd -3 on raw float32", &lastz);
        printf("    over zstd (ratio of the medians): encode %.2fx, decode %.2fx\n",
               last.enc_gbps / lastz.enc_gbps, last.dec_gbps / lastz.dec_gbps);
        if (nc) {
            narrow = fig_of(&sub[2], n, reps);
            char label[300];
            snprintf(label, sizeof label, "peer: kernels %s", isa_name[kisa - 1]);
            print_row(label, &narrow);
            printf("    kernels %s over %s (same bytes; ratio of the medians): encode %.2fx, "
                   "decode %.2fx\n", isa_name[kisa], isa_name[kisa - 1],
                   last.enc_gbps / narrow.enc_gbps, last.dec_gbps / narrow.dec_gbps);
        }
        for (int i = 0; i < 3; i++) {
            free(sub[i].t);
            sub[i].t = NULL;
        }
    }
    for (int i = 0; i < 3; i++)
        free(sub[i].t);
    if (ret) {
        flz_ctx_free(nc);
        flz_ctx_free(c);
        return ret;
    }
    printf("ratio=%.3f encode_gbps=%.3f decode_gbps=%.3f rel_l2=%.4e zstd_ratio=%.3f "
           "encode_vs_zstd=%.3f decode_vs_zstd=%.3f", last.ratio, last.enc_gbps, last.dec_gbps,
           last.rel_l2, lastz.ratio, last.enc_gbps / lastz.enc_gbps,
           last.dec_gbps / lastz.dec_gbps);
    if (nc)
        printf(" kernels=%s peer_kernels=%s encode_x=%.3f decode_x=%.3f", isa_name[kisa],
               isa_name[kisa - 1], last.enc_gbps / narrow.enc_gbps,
               last.dec_gbps / narrow.dec_gbps);
    printf("\n");
    flz_ctx_free(nc);
    flz_ctx_free(c);
    free(x);
    free(y);
    free(buf);
    return 0;
}
