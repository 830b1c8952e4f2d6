/* bench_compress: codec pipelines on a model delta, single-threaded, beside plain zstd.
 *
 *   bench_compress [--input FILE] [--n N] [--pipeline SPEC]... [--reps R]
 *                  [--isa portable|avx2|avx512]
 *
 * FILE holds raw little-endian float32 (e.g. a cnn delta written by the models engine). Without
 * it: a synthetic Gaussian vector of N = 6,603,710 floats (the cnn size), sigma 1e-3, with 64
 * heavy-tailed outliers. Each pipeline (default: a fixed list) is encoded and decoded as one
 * payload; for a multi-stage pipeline every prefix is measured too, so the cost of each stage is
 * the difference between consecutive rows. Times are the best of R runs, in thread CPU time (the
 * machine may be shared; wall-clock figures are printed beside). Figures: ratio = float32
 * bytes / payload bytes; GB/s = float32 input bytes / s; rel_l2 = ||decode - x|| / ||x||. The peer,
 * measured in the same run, is plain zstd level 3 on the raw float32 bytes. A second peer: each
 * whole pipeline again with the next narrower kernel set (AVX2 beside AVX-512, portable beside
 * AVX2), which gives the same bytes, so the ratio is the kernels' speed-up alone; run twice,
 * alternated with ours once more, and the better figures of each kept (whichever set runs a
 * pipeline first runs it 5-20% slower).
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

#include "fl_rng.h"
#include "fl_time.h"
#include "flz.h"

typedef struct fig {
    double ratio, enc_gbps, dec_gbps, rel_l2;
    double enc_wall_gbps, dec_wall_gbps;
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

/* *a = the better speeds of *a and *b (the same bytes, so the same ratio and error). */
static void best_of(fig *a, const fig *b)
{
    a->enc_gbps = fmax(a->enc_gbps, b->enc_gbps);
    a->dec_gbps = fmax(a->dec_gbps, b->dec_gbps);
    a->enc_wall_gbps = fmax(a->enc_wall_gbps, b->enc_wall_gbps);
    a->dec_wall_gbps = fmax(a->dec_wall_gbps, b->dec_wall_gbps);
}

static int run_spec(flz_ctx *c, const char *s, const float *x, size_t n, float *y, uint8_t *buf,
                    int reps, fig *out)
{
    flz_spec sp;
    char err[160];
    if (flz_spec_parse(s, &sp, err, sizeof err) != FL_OK) {
        fprintf(stderr, "bad pipeline %s: %s\n", s, err);
        return -1;
    }
    const size_t cap = flz_encode_bound(&sp, n);
    if (flz_ctx_reserve(c, &sp, n) != FL_OK)
        return -1;
    double te = 1e30, td = 1e30, we = 1e30, wd = 1e30;
    size_t w = 0;
    for (int r = 0; r < reps; r++) {
        const flz_params p = {12345, 1, 0, NULL};
        const double w0 = fl_time_mono_s(), t0 = cpu_s();
        const fl_status st = flz_encode(c, &sp, &p, x, n, buf, cap, &w);
        const double t1 = cpu_s(), w1 = fl_time_mono_s();
        if (st != FL_OK) {
            fprintf(stderr, "%s: encode: %s\n", s, fl_strerror(st));
            return -1;
        }
        const fl_status st2 = flz_decode(c, buf, w, y, n);
        const double t2 = cpu_s(), w2 = fl_time_mono_s();
        if (st2 != FL_OK) {
            fprintf(stderr, "%s: decode: %s\n", s, fl_strerror(st2));
            return -1;
        }
        te = fmin(te, t1 - t0);
        td = fmin(td, t2 - t1);
        we = fmin(we, w1 - w0);
        wd = fmin(wd, w2 - w1);
    }
    const double bytes = 4.0 * (double)n;
    out->enc_wall_gbps = bytes / we / 1e9;
    out->dec_wall_gbps = bytes / wd / 1e9;
    out->ratio = bytes / (double)w;
    out->enc_gbps = bytes / te / 1e9;
    out->dec_gbps = bytes / td / 1e9;
    out->rel_l2 = rel_l2(y, x, n);
    return 0;
}

static void print_row(const char *name, const fig *f)
{
    printf("  %-28s ratio %7.2fx  encode %6.2f GB/s (wall %5.2f)  decode %6.2f GB/s (wall %5.2f)"
           "  rel_l2 %.3e\n", name, f->ratio, f->enc_gbps, f->enc_wall_gbps, f->dec_gbps,
           f->dec_wall_gbps, f->rel_l2);
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
                   "Best of R. The last line: the last pipeline's figures, its speed over zstd's and\n"
                   "(where a narrower set exists) over that set's. Details: the comment at the top of\n"
                   "bench/bench_compress.c.\n", argv[0]);
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
    if (reps < 1)
        reps = 1;
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
    printf("bench_compress: %zu floats (%s), %d reps (best), kernels %s, single thread\n", n,
           input ? input : "synthetic gaussian + outliers", reps, isa_name[kisa]);

    /* the peer: zstd -3 on raw float32 */
    fig zf;
    {
        const size_t cap = ZSTD_compressBound(4 * n);
        double te = 1e30, td = 1e30, we = 1e30, wd = 1e30;
        size_t z = 0;
        for (int r = 0; r < reps; r++) {
            const double w0 = fl_time_mono_s(), t0 = cpu_s();
            z = ZSTD_compress(buf, cap, x, 4 * n, 3);
            const double t1 = cpu_s(), w1 = fl_time_mono_s();
            const size_t d = ZSTD_decompress(y, 4 * n, buf, z);
            const double t2 = cpu_s(), w2 = fl_time_mono_s();
            if (ZSTD_isError(z) || ZSTD_isError(d))
                return 1;
            te = fmin(te, t1 - t0);
            td = fmin(td, t2 - t1);
            we = fmin(we, w1 - w0);
            wd = fmin(wd, w2 - w1);
        }
        const fig f = {4.0 * n / z, 4.0 * n / te / 1e9, 4.0 * n / td / 1e9, rel_l2(y, x, n),
                       4.0 * n / we / 1e9, 4.0 * n / wd / 1e9};
        printf("peer:\n");
        print_row("zstd -3 on raw float32", &f);
        zf = f;
    }

    fig last = {0, 0, 0, 0, 0, 0}, narrow = {0, 0, 0, 0, 0, 0};
    for (int s = 0; s < nspecs; s++) {
        printf("pipeline %s:\n", specs[s]);
        /* every prefix, so that consecutive rows give each stage's cost */
        char pre[256];
        const char *p = specs[s];
        for (;;) {
            const char *plus = strchr(p, '+');
            const size_t len = plus ? (size_t)(plus - specs[s]) : strlen(specs[s]);
            if (len >= sizeof pre)
                return 1;
            memcpy(pre, specs[s], len);
            pre[len] = '\0';
            fig f;
            if (run_spec(c, pre, x, n, y, buf, reps, &f) != 0)
                return 1;
            print_row(pre, &f);
            last = f;
            if (!plus)
                break;
            p = plus + 1;
        }
        if (nc) {
            /* narrower, ours again, narrower again: the first of a pipeline's runs is slower
             * (which ever set runs it), so each side keeps its better figures */
            fig n2, again;
            if (run_spec(nc, specs[s], x, n, y, buf, reps, &narrow) != 0 ||
                run_spec(c, specs[s], x, n, y, buf, reps, &again) != 0 ||
                run_spec(nc, specs[s], x, n, y, buf, reps, &n2) != 0)
                return 1;
            best_of(&narrow, &n2);
            best_of(&last, &again);
            char label[300];
            snprintf(label, sizeof label, "(best: kernels %s)", isa_name[kisa]);
            print_row(label, &last);
            snprintf(label, sizeof label, "(best: kernels %s)", isa_name[kisa - 1]);
            print_row(label, &narrow);
        }
    }
    printf("ratio=%.3f encode_gbps=%.3f decode_gbps=%.3f rel_l2=%.4e zstd_ratio=%.3f "
           "encode_vs_zstd=%.3f decode_vs_zstd=%.3f", last.ratio, last.enc_gbps, last.dec_gbps,
           last.rel_l2, zf.ratio, last.enc_gbps / zf.enc_gbps, last.dec_gbps / zf.dec_gbps);
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
