/* Unit tests for compress/: spec parsing, every stage's round trip, the statistics of stochastic
 * quantisation, top-k with error feedback, determinism (also across instruction sets), and the
 * exact error codes for damaged payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zstd.h>
#include <fenv.h>
#include <float.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "fl_rng.h"
#include "flz.h"
#include "flz_internal.h"
#include "test_par.h"

static const char *const pipelines[] = {
    "none", "zstd", "zstd-3", "f16", "bf16+zstd", "q1", "q2b16", "q4", "q8b1024+zstd3",
    "rot", "rot+q4+zstd", "rot64+q2", "rot16+f16", "sub0.25+q2", "sub0.5", "rot+sub0.3+q8+zstd",
    "topk0.01+q8+zstd", "topk0.1", "topk0.5+f16", "topk0.2+rot+q4", "topk0.05+rot32+sub0.5+q4b16+zstd",
};
#define NPIPE (sizeof pipelines / sizeof pipelines[0])
static const size_t lengths[] = {0, 1, 2, 7, 8, 15, 16, 17, 100, 1000, 4099, 20000};
#define NLEN (sizeof lengths / sizeof lengths[0])

static void fill_gauss(float *x, size_t n, uint64_t seed)
{
    fl_rng r = fl_rng_stream(seed, 0, 0, FL_RNG_TEST);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)fl_rng_normal(&r);
    if (n > 10)
        x[n / 3] = 40.0f, x[n / 2] = -25.0f; /* outliers */
}

static flz_spec spec_of(const char *s)
{
    flz_spec sp;
    char err[160];
    const fl_status st = flz_spec_parse(s, &sp, err, sizeof err);
    if (st != FL_OK)
        fail_msg("spec %s: %s", s, err);
    return sp;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- spec ----------------------------------------------------------------------------------- */

static void test_spec_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        fl_status st;
        const char *canon;  /* flz_spec_format of the parse, when FL_OK */
        const char *reason; /* a substring of the error message otherwise */
    } t[] = {
        {"none", FL_OK, "none", NULL},
        {"zstd", FL_OK, "zstd1", NULL},
        {"zstd-5", FL_OK, "zstd-5", NULL},
        {"rot+q4+zstd", FL_OK, "rot1024+q4b256+zstd1", NULL},
        {"rot4096+q4b512+zstd3", FL_OK, "rot4096+q4b512+zstd3", NULL},
        {"topk0.01+q8+zstd", FL_OK, "topk0.01+q8b256+zstd1", NULL},
        {"f16+zstd", FL_OK, "f16+zstd1", NULL},
        {"bf16", FL_OK, "bf16", NULL},
        {"sub0.25+q2", FL_OK, "sub0.25+q2b256", NULL},
        {"topk1", FL_OK, "topk1.0", NULL},
        {"topk.5", FL_OK, "topk0.5", NULL},
        {"q1b16", FL_OK, "q1b16", NULL},
        {"rot2", FL_OK, "rot2", NULL},
        {"rot65536", FL_OK, "rot65536", NULL},
        {"", FL_ERR_CODEC_SPEC, NULL, "empty"},
        {"foo", FL_ERR_CODEC_SPEC, NULL, "unknown stage \"foo\""},
        {"rot+", FL_ERR_CODEC_SPEC, NULL, "stray '+'"},
        {"+rot", FL_ERR_CODEC_SPEC, NULL, "stray '+'"},
        {"q3", FL_ERR_CODEC_SPEC, NULL, "bits must be 1, 2, 4 or 8"},
        {"q", FL_ERR_CODEC_SPEC, NULL, "bits must be"},
        {"q4b100", FL_ERR_CODEC_SPEC, NULL, "power of two"},
        {"q4b8", FL_ERR_CODEC_SPEC, NULL, "power of two in 16..65536"},
        {"q4x", FL_ERR_CODEC_SPEC, NULL, "block must be"},
        {"rot1000", FL_ERR_CODEC_SPEC, NULL, "power of two"},
        {"rot1", FL_ERR_CODEC_SPEC, NULL, "power of two"},
        {"rot131072", FL_ERR_CODEC_SPEC, NULL, "power of two"},
        {"q4+rot", FL_ERR_CODEC_SPEC, NULL, "must come before"},
        {"zstd+q4", FL_ERR_CODEC_SPEC, NULL, "must come before"},
        {"q4+f16", FL_ERR_CODEC_SPEC, NULL, "two value stages"},
        {"rot+rot", FL_ERR_CODEC_SPEC, NULL, "twice"},
        {"topk0", FL_ERR_CODEC_SPEC, NULL, "outside"},
        {"topk1.5", FL_ERR_CODEC_SPEC, NULL, "outside"},
        {"topk", FL_ERR_CODEC_SPEC, NULL, "needs a fraction"},
        {"topk-0.1", FL_ERR_CODEC_SPEC, NULL, "needs a fraction"},
        {"topk1e-3", FL_ERR_CODEC_SPEC, NULL, "needs a fraction"},
        {"sub1", FL_ERR_CODEC_SPEC, NULL, "outside"},
        {"sub0.0000000001", FL_ERR_CODEC_SPEC, NULL, "outside"},
        {"zstd20", FL_ERR_CODEC_SPEC, NULL, "outside"},
        {"zstd-8", FL_ERR_CODEC_SPEC, NULL, "outside"},
        {"zstdx", FL_ERR_CODEC_SPEC, NULL, "not an integer"},
        {"none+zstd", FL_ERR_CODEC_SPEC, NULL, "cannot be combined"},
        {"rot+none", FL_ERR_CODEC_SPEC, NULL, "cannot be combined"},
        {"ROT", FL_ERR_CODEC_SPEC, NULL, "unknown stage"},
        {"rot +q4", FL_ERR_CODEC_SPEC, NULL, "power of two"},
        {"f16x", FL_ERR_CODEC_SPEC, NULL, "unknown stage"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        flz_spec sp;
        char err[200] = "untouched";
        const fl_status st = flz_spec_parse(t[i].in, &sp, err, sizeof err);
        if (st != t[i].st)
            fail_msg("\"%s\": got %s, want %s (%s)", t[i].in, fl_status_name(st),
                     fl_status_name(t[i].st), err);
        if (st == FL_OK) {
            char buf[FLZ_SPEC_STRLEN];
            const size_t w = flz_spec_format(&sp, buf, sizeof buf);
            assert_int_equal(w, strlen(buf));
            if (strcmp(buf, t[i].canon) != 0)
                fail_msg("\"%s\" formats as \"%s\", want \"%s\"", t[i].in, buf, t[i].canon);
            flz_spec back;
            assert_int_equal(flz_spec_parse(buf, &back, NULL, 0), FL_OK);
            assert_memory_equal(&back, &sp, sizeof sp);
        } else if (!strstr(err, t[i].reason)) {
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", t[i].in, err, t[i].reason);
        }
    }
    assert_int_equal(flz_spec_parse(NULL, NULL, NULL, 0), FL_ERR_INVALID_ARG);
    /* hand-made specs are checked too */
    flz_spec bad = spec_of("q4");
    bad.q_bits = 3;
    assert_int_equal(flz_spec_check(&bad, NULL, 0), FL_ERR_CODEC_SPEC);
    assert_int_equal(flz_encode_bound(&bad, 10), 0);
    /* canonical format round-trips awkward fractions */
    const float fr[] = {1e-7f, 0.3f, 0.123456789f, 0.999999f, 1.0f};
    for (size_t i = 0; i < 5; i++) {
        flz_spec sp = spec_of("topk0.5");
        sp.topk = fr[i];
        char buf[FLZ_SPEC_STRLEN];
        flz_spec_format(&sp, buf, sizeof buf);
        assert_true(spec_of(buf).topk == fr[i]);
    }
}

/* ---- helpers -------------------------------------------------------------------------------- */

typedef struct fix {
    flz_ctx *c;
    uint8_t *buf;
    size_t cap;
    float *x, *y;
} fix;

static void fix_init(fix *f, size_t n)
{
    assert_int_equal(flz_ctx_new(NULL, &f->c), FL_OK);
    f->cap = 64 + 8 * n + 1024;
    f->buf = malloc(f->cap);
    f->x = malloc((n + 1) * sizeof(float));
    f->y = malloc((n + 1) * sizeof(float));
    assert_non_null(f->buf);
}

static void fix_free(fix *f)
{
    flz_ctx_free(f->c);
    free(f->buf);
    free(f->x);
    free(f->y);
}

static size_t enc(fix *f, const char *spec, const float *x, size_t n, uint64_t seed)
{
    const flz_spec sp = spec_of(spec);
    const flz_params p = {seed, 3, 9, NULL};
    size_t w = 0;
    const fl_status st = flz_encode(f->c, &sp, &p, x, n, f->buf, f->cap, &w);
    if (st != FL_OK)
        fail_msg("encode %s n=%zu: %s", spec, n, fl_status_name(st));
    assert_true(w <= flz_encode_bound(&sp, n));
    /* a fixed-rate pipeline has one size (what fl_sim's arrival bounds rest on); others 0 */
    if (flz_spec_fixed_rate(&sp) ? w != flz_encode_size_min(&sp, n) : flz_encode_size_min(&sp, n) != 0)
        fail_msg("%s n=%zu: %zu bytes, size_min %zu", spec, n, w, flz_encode_size_min(&sp, n));
    return w;
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_roundtrip_all(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 20000);
    for (size_t p = 0; p < NPIPE; p++) {
        const flz_spec sp = spec_of(pipelines[p]);
        for (size_t li = 0; li < NLEN; li++) {
            const size_t n = lengths[li];
            fill_gauss(f.x, n, 100 + li);
            const size_t w = enc(&f, pipelines[p], f.x, n, 7);
            flz_info info;
            assert_int_equal(flz_peek(f.buf, w, &info), FL_OK);
            assert_int_equal(info.n, n);
            assert_memory_equal(&info.spec, &sp, sizeof sp);
            assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
            for (size_t i = 0; i < n; i++)
                assert_true(isfinite(f.y[i]));
            const double e = rel_l2(f.y, f.x, n);
            /* loose sanity bound per family; the precise properties have their own tests */
            double bound = 1e-6;
            if (sp.value == FLZ_VALUE_F16) bound = 1e-3;
            if (sp.value == FLZ_VALUE_BF16) bound = 1e-2;
            if (sp.value == FLZ_VALUE_Q) bound = sp.q_bits == 1 ? 20.0 : sp.q_bits == 2 ? 8.0 : 1.5;
            if (sp.sub != 0.0f) bound += 6.0;
            if (sp.topk != 0.0f) bound = 1.0 + bound;
            if (sp.rot_log2 && sp.value == FLZ_VALUE_F32 && sp.sub == 0.0f && sp.topk == 0.0f)
                bound = 1e-5;
            if (n > 0 && !(e <= bound))
                fail_msg("%s n=%zu: rel_l2 %g > %g", pipelines[p], n, e, bound);
        }
    }
    fix_free(&f);
}

static void test_lossless_exact(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 20000);
    static const char *const ll[] = {"none", "zstd", "zstd-7", "zstd19"};
    for (size_t p = 0; p < 4; p++)
        for (size_t li = 0; li < NLEN; li++) {
            const size_t n = lengths[li];
            fill_gauss(f.x, n, li);
            for (size_t i = 0; i < n; i += 5)
                f.x[i] = flz_u2f(0x00000001u + (uint32_t)i); /* subnormals survive too */
            const size_t w = enc(&f, ll[p], f.x, n, 1);
            assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
            if (n)
                assert_memory_equal(f.x, f.y, n * sizeof(float));
        }
    fix_free(&f);
}

static void test_rotation(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 20000);
    static const char *const rs[] = {"rot", "rot2", "rot64", "rot4096", "rot65536"};
    static const size_t ns[] = {1, 3, 1000, 1024, 4099, 20000};
    for (size_t p = 0; p < 5; p++)
        for (size_t ni = 0; ni < 6; ni++) {
            const size_t n = ns[ni];
            fill_gauss(f.x, n, ni);
            const size_t w = enc(&f, rs[p], f.x, n, 11);
            /* "rot" without a value stage carries the rotated coefficients as raw f32: the
             * orthonormal transform must preserve the norm */
            double n0 = 0, n1 = 0, maxabs0 = 0, maxabs1 = 0;
            for (size_t i = 0; i < n; i++) {
                const float r = flz_u2f(flz_get_u32(f.buf + FLZ_HEADER_SIZE + 4 * i));
                n0 += (double)f.x[i] * f.x[i];
                n1 += (double)r * r;
                maxabs0 = fmax(maxabs0, fabs(f.x[i]));
                maxabs1 = fmax(maxabs1, fabs(r));
            }
            assert_true(fabs(sqrt(n1) - sqrt(n0)) <= 1e-5 * sqrt(n0));
            if (n >= 1024 && strcmp(rs[p], "rot2") != 0)
                assert_true(maxabs1 < 0.5 * maxabs0); /* the outlier got spread */
            assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
            assert_true(rel_l2(f.y, f.x, n) <= 1e-5);
        }
    fix_free(&f);
}

static void test_f16_bf16(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 4096);
    const size_t n = 4096;
    fl_rng r = fl_rng_stream(5, 0, 0, FL_RNG_TEST);
    for (size_t i = 0; i < n; i++)
        f.x[i] = (float)(fl_rng_normal(&r) * pow(10.0, (double)fl_rng_below(&r, 8) - 4.0));
    size_t w = enc(&f, "f16", f.x, n, 0);
    assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
    for (size_t i = 0; i < n; i++) {
        const double a = fabs(f.x[i]);
        /* normal half: relative error <= 2^-11; subnormal half: absolute <= 2^-25 */
        const double tol = a >= 6.103515625e-05 ? a * 0x1p-11 : 0x1p-25;
        assert_true(fabs((double)f.y[i] - f.x[i]) <= tol);
    }
    w = enc(&f, "bf16+zstd", f.x, n, 0);
    assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
    for (size_t i = 0; i < n; i++)
        assert_true(fabs((double)f.y[i] - f.x[i]) <= fabs(f.x[i]) * 0x1p-8);
    /* out of float16's range is an error, not a silent Inf */
    f.x[7] = 70000.0f;
    const flz_spec sp = spec_of("f16");
    assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, f.cap, &w), FL_ERR_NUMERIC);
    /* the scalar conversions agree with known values */
    assert_int_equal(flz_half_from_float(1.0f), 0x3c00);
    assert_int_equal(flz_half_from_float(65504.0f), 0x7bff);
    assert_int_equal(flz_half_from_float(65520.0f), 0x7c00);
    assert_int_equal(flz_half_from_float(5.9604644775390625e-8f), 0x0001);
    assert_int_equal(flz_half_from_float(2.98023223876953125e-8f), 0x0000); /* tie to even */
    assert_int_equal(flz_half_from_float(-2.0f), 0xc000);
    assert_true(flz_float_from_half(0x3555) == 0.333251953125f);
    assert_int_equal(flz_bf16_from_float(1.00390625f), 0x3f80);  /* tie to even, down */
    assert_int_equal(flz_bf16_from_float(1.01171875f), 0x3f82);  /* tie to even, up */
    fix_free(&f);
}

/* ---- quantisation statistics ---------------------------------------------------------------- */

/* For one block of n = 256 values with known lo, hi: level spacing step = (hi - lo) / (2^q - 1),
 * f_i = frac((x_i - lo) / step). The decode is lo + step * (floor + Bernoulli(f_i)), so
 *   E[decode_i] = x_i (up to 2^-16 step and float rounding: test_quant_exact_expectation),
 *   Var[decode_i] = step^2 f_i (1 - f_i) <= step^2 / 4.
 * Over M independent seeds the mean lies in an interval of width `step`, so Hoeffding gives
 *   P(|mean_i - x_i| >= t) <= 2 exp(-2 M t^2 / step^2);
 * with t = step sqrt(ln(2 n / delta) / (2 M)) and delta = 1e-9 all n elements pass together with
 * probability >= 1 - 1e-9 (the seeds are fixed, so the test is deterministic anyway). A rounding
 * quantiser instead has bias up to step / 2 and fails. The summed empirical variance must match
 * the summed theory within 10%: its relative standard error here is well under 1%. */
static void test_quant_unbiased(void **state)
{
    (void)state;
    const size_t n = 256;
    const int M = 10000;
    fix f;
    fix_init(&f, n);
    double *sum = malloc(n * sizeof(double)), *sum2 = malloc(n * sizeof(double));
    static const unsigned qs[] = {1, 2, 4, 8};
    for (size_t qi = 0; qi < 4; qi++) {
        const unsigned q = qs[qi];
        char spec[16];
        snprintf(spec, sizeof spec, "q%ub256", q);
        fl_rng r = fl_rng_stream(77, q, 0, FL_RNG_TEST);
        for (size_t i = 0; i < n; i++)
            f.x[i] = (float)(fl_rng_uniform_f64(&r) * 3.0 - 1.0);
        f.x[0] = -1.0f, f.x[1] = 2.0f; /* lo, hi */
        const double step = 3.0 / ((1u << q) - 1);
        memset(sum, 0, n * sizeof(double));
        memset(sum2, 0, n * sizeof(double));
        for (int m = 0; m < M; m++) {
            const size_t w = enc(&f, spec, f.x, n, 1000 + (uint64_t)m);
            assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
            for (size_t i = 0; i < n; i++) {
                sum[i] += f.y[i];
                sum2[i] += (double)f.y[i] * f.y[i];
            }
        }
        const double t = step * sqrt(log(2.0 * n / 1e-9) / (2.0 * M));
        double var_emp = 0, var_th = 0;
        for (size_t i = 0; i < n; i++) {
            const double mean = sum[i] / M;
            if (fabs(mean - f.x[i]) > t + 1e-5 * step)
                fail_msg("q%u element %zu: mean %.6f vs x %.6f, bound %.6f", q, i, mean,
                         (double)f.x[i], t);
            const double v = sum2[i] / M - mean * mean;
            assert_true(v <= step * step / 4 * 1.2 + 1e-9);
            const double fr = ((double)f.x[i] + 1.0) / step - floor(((double)f.x[i] + 1.0) / step);
            var_emp += v;
            var_th += step * step * fr * (1 - fr);
        }
        if (fabs(var_emp - var_th) > 0.1 * var_th)
            fail_msg("q%u: summed variance %g vs theory %g", q, var_emp, var_th);
    }
    free(sum);
    free(sum2);
    fix_free(&f);
}

/* The quantiser's exact expectation: every one of the 65,536 dithers of one element, through the
 * portable kernel (the AVX2 and AVX-512 ones give the same bits, tested below), against v =
 * (x - lo) * inv as the kernel computes it. The dither (2d + 1) 2^-17 resolves 2^-17 of a step,
 * and v + dither rounds by up to half an ulp of v + 1: for q8 levels from 128 up, v's ulp is
 * 2^-16, so v + dither is a tie and rounds to even, which lifts E[level] by 2^-16 there
 * (compress/README.md says so). With the float rounding of inv,
 * of (x - lo) * inv and of lo + level * step, E[decode] stays within 2^-16 step + 4 ulps of x. */
static void test_quant_exact_expectation(void **state)
{
    (void)state;
    enum { N = 256, X = 400 };
    uint32_t dw[N / 2];
    float xs[N], lv[N];
    uint8_t packed[N];
    static const unsigned qs[] = {1, 2, 4, 8};
    for (size_t qi = 0; qi < 4; qi++) {
        const unsigned q = qs[qi];
        const float L = (float)((1u << q) - 1), lo = -1.0f, hi = 2.0f;
        const float inv = L / (hi - lo), step = (hi - lo) / L;
        fl_rng r = fl_rng_stream(78, q, 0, FL_RNG_TEST);
        double worst_lv = 0.0, worst_dec = 0.0;
        for (int k = 0; k < X; k++) {
            const float x = (float)(fl_rng_uniform_f64(&r) * 3.0 - 1.0);
            const float v = (x - lo) * inv;
            double sl = 0.0, sd = 0.0;
            for (uint32_t d0 = 0; d0 < 65536; d0 += N) {
                for (int i = 0; i < N; i++)
                    xs[i] = x;
                for (int i = 0; i < N / 2; i++)
                    dw[i] = (d0 + 2 * (uint32_t)i) | (d0 + 2 * (uint32_t)i + 1) << 16;
                flz_kernels_portable.quant(packed, xs, N, q, lo, inv, dw);
                flz_kernels_portable.dequant(lv, packed, N, q, 0.0f, 1.0f);
                for (int i = 0; i < N; i++) {
                    sl += lv[i];
                    sd += (double)(lo + lv[i] * step);
                }
            }
            const double bl = sl / 65536.0 - v; /* in steps */
            /* the dither's resolution, and the rounding of v + dither (half an ulp of v + 1) */
            const float v1 = v + 1.0f;
            const double lim = 0x1p-17 + 0.5 * (nextafterf(v1, INFINITY) - v1);
            if (fabs(bl) > lim * 1.0000001)
                fail_msg("q%u x %.9g (v %.9g): E[level] - v = %.3g, above %.3g", q, (double)x,
                         (double)v, bl, lim);
            const double ulp = nextafterf(fabsf(x), INFINITY) - fabsf(x);
            const double bd = fabs(sd / 65536.0 - x);
            if (bd > 0x1p-16 * step + 4.0 * ulp)
                fail_msg("q%u x %.9g: |E[decode] - x| = %.3g, above 2^-16 step + 4 ulp (%.3g)", q,
                         (double)x, bd, 0x1p-16 * step + 4.0 * ulp);
            worst_lv = fabs(bl) > worst_lv ? fabs(bl) : worst_lv;
            worst_dec = bd / step > worst_dec ? bd / step : worst_dec;
        }
        if (q == 8) /* the tie above 128 is real: a bound of 2^-17 would not hold */
            assert_true(worst_lv > 0x1p-17 * 1.5);
        (void)worst_dec;
    }
}

static void test_subsample_unbiased(void **state)
{
    (void)state;
    const size_t n = 64;
    const int M = 4000;
    const double p = 0.25;
    fix f;
    fix_init(&f, n);
    fill_gauss(f.x, n, 3);
    double sum[64] = {0};
    size_t kept = 0;
    for (int m = 0; m < M; m++) {
        const size_t w = enc(&f, "sub0.25", f.x, n, 50 + (uint64_t)m);
        kept += flz_get_u32(f.buf + FLZ_HEADER_SIZE);
        assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
        for (size_t i = 0; i < n; i++)
            sum[i] += f.y[i];
    }
    /* decode_i is x_i / p or 0: Hoeffding over an interval of width |x_i| / p, delta = 1e-9 */
    for (size_t i = 0; i < n; i++) {
        const double t = fabs(f.x[i]) / p * sqrt(log(2.0 * n / 1e-9) / (2.0 * M));
        assert_true(fabs(sum[i] / M - f.x[i]) <= t + 1e-6);
    }
    /* kept fraction: binomial(n M, p), 6 sigma */
    const double mean_kept = (double)kept / ((double)n * M);
    assert_true(fabs(mean_kept - p) <= 6 * sqrt(p * (1 - p) / ((double)n * M)));
    fix_free(&f);
}

/* A kept value that the 1/p rescaling takes past float range fails the decode instead of putting
 * an Inf in the caller's output, with the kept coordinates anywhere in a long vector (the decode
 * walks it in chunks). fedrop's encoder refuses such input (FL_ERR_NUMERIC, test_encode_errors),
 * so the payload is forged: "sub0.25" carries its kept values as raw floats after the header and
 * the count m. */
static void test_subsample_overflow(void **state)
{
    (void)state;
    const size_t n = 70000;
    fix f;
    fix_init(&f, n);
    fill_gauss(f.x, n, 4);
    const size_t w = enc(&f, "sub0.25", f.x, n, 7);
    assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
    uint32_t m;
    memcpy(&m, f.buf + FLZ_HEADER_SIZE, 4); /* little-endian, as the hosts we build for */
    assert_int_equal(w, FLZ_HEADER_SIZE + 4 + 4 * (size_t)m);
    uint8_t *forged = malloc(w);
    assert_non_null(forged);
    for (size_t at = 0; at < m; at += 2499) {
        memcpy(forged, f.buf, w);
        for (size_t i = at; i < m && i < at + 16; i++) {
            const float big = 3e38f; /* finite; times 4 is not */
            memcpy(forged + FLZ_HEADER_SIZE + 4 + 4 * i, &big, 4);
        }
        assert_int_equal(flz_decode(f.c, forged, w, f.y, n), FL_ERR_CODEC_CORRUPT);
    }
    free(forged);
    fix_free(&f);
}

/* ---- top-k and error feedback --------------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void test_topk_exact(void **state)
{
    (void)state;
    const size_t n = 5000;
    fix f;
    fix_init(&f, n);
    float *mag = malloc(n * sizeof(float));
    static const char *const ts[] = {"topk0.01", "topk0.05+zstd", "topk0.3", "topk1"};
    static const size_t ks[] = {50, 250, 1500, 5000};
    for (size_t t = 0; t < 4; t++) {
        fill_gauss(f.x, n, 9 + t);
        for (size_t i = 0; i < n; i += 97)
            f.x[i] = 0.5f; /* ties */
        const size_t w = enc(&f, ts[t], f.x, n, 0);
        assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
        for (size_t i = 0; i < n; i++)
            mag[i] = fabsf(f.x[i]);
        qsort(mag, n, sizeof(float), cmp_desc);
        const float thr = mag[ks[t] - 1];
        size_t nz = 0;
        for (size_t i = 0; i < n; i++) {
            if (f.y[i] != 0.0f) {
                nz++;
                assert_true(f.y[i] == f.x[i]);  /* kept values travel exactly */
                if (!(fabsf(f.x[i]) >= thr))
                    fail_msg("%s: kept x[%zu] = %g below threshold %g", ts[t], i, (double)f.x[i], (double)thr);
            } else {
                assert_true(fabsf(f.x[i]) <= thr);
            }
        }
        assert_int_equal(nz, ks[t]);
    }
    free(mag);
    fix_free(&f);
}

static void test_error_feedback(void **state)
{
    (void)state;
    const size_t n = 3000;
    const int T = 30;
    fix f;
    fix_init(&f, n);
    static const char *const es[] = {"topk0.02", "topk0.05+q8+zstd", "rot+q2"};
    for (size_t e = 0; e < 3; e++) {
        flz_residual *res;
        assert_int_equal(flz_residual_new(n, &res), FL_OK);
        const flz_spec sp = spec_of(es[e]);
        double *in_sum = calloc(n, sizeof(double)), *out_sum = calloc(n, sizeof(double));
        for (int t = 0; t < T; t++) {
            fill_gauss(f.x, n, 500 + (uint64_t)t);
            const flz_params p = {(uint64_t)t, 0, 1, res};
            size_t w;
            assert_int_equal(flz_encode(f.c, &sp, &p, f.x, n, f.buf, f.cap, &w), FL_OK);
            assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
            for (size_t i = 0; i < n; i++) {
                in_sum[i] += f.x[i];
                out_sum[i] += f.y[i];
            }
            if (e == 0 && t == 0) {
                /* pure top-k: the residual is exactly what was not sent */
                const float *r = flz_residual_data(res);
                for (size_t i = 0; i < n; i++)
                    assert_true(f.y[i] != 0.0f ? r[i] == 0.0f : r[i] == f.x[i]);
            }
        }
        /* the EF invariant: everything sent plus what is still owed equals everything given */
        const float *r = flz_residual_data(res);
        double err = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            err = fmax(err, fabs(out_sum[i] + r[i] - in_sum[i]));
            scale = fmax(scale, fabs(in_sum[i]));
        }
        if (err > 1e-4 * scale)
            fail_msg("%s: EF invariant off by %g (scale %g)", es[e], err, scale);
        /* and the residual stays bounded (top-k with EF does not diverge) */
        double rn = 0;
        for (size_t i = 0; i < n; i++)
            rn += (double)r[i] * r[i];
        assert_true(sqrt(rn / n) < 30.0);
        /* a residual of another length is refused and untouched */
        const flz_params bad = {1, 0, 0, res};
        size_t w;
        assert_int_equal(flz_encode(f.c, &sp, &bad, f.x, n - 1, f.buf, f.cap, &w),
                         FL_ERR_INVALID_ARG);
        flz_residual_reset(res);
        assert_true(flz_residual_data(res)[5] == 0.0f);
        flz_residual_free(res);
        free(in_sum);
        free(out_sum);
    }
    flz_residual_free(NULL);
    fix_free(&f);
}

/* ---- determinism ---------------------------------------------------------------------------- */

static void test_determinism(void **state)
{
    (void)state;
    const size_t n = 20000;
    fix f;
    fix_init(&f, n);
    uint8_t *b2 = malloc(f.cap);
    fill_gauss(f.x, n, 1);
    for (size_t p = 0; p < NPIPE; p++) {
        const size_t w1 = enc(&f, pipelines[p], f.x, n, 42);
        memcpy(b2, f.buf, w1);
        const size_t w2 = enc(&f, pipelines[p], f.x, n, 42);
        assert_int_equal(w1, w2);
        assert_memory_equal(f.buf, b2, w1);
        const flz_spec sp = spec_of(pipelines[p]);
        if (sp.value == FLZ_VALUE_Q || sp.rot_log2 || sp.sub != 0.0f) {
            const size_t w3 = enc(&f, pipelines[p], f.x, n, 43);
            /* header differs (seed) and so does the body */
            assert_true(w3 != w1 || memcmp(f.buf + FLZ_HEADER_SIZE, b2 + FLZ_HEADER_SIZE,
                                           w1 - FLZ_HEADER_SIZE) != 0);
        }
    }
    free(b2);
    fix_free(&f);
}

/* A codec context on the kernel set isa, or NULL where this CPU or build lacks it. */
static flz_ctx *isa_ctx(flz_isa isa)
{
    flz_ctx *c;
    assert_int_equal(flz_ctx_new(NULL, &c), FL_OK);
    if (flz_ctx_set_isa(c, isa) == FL_OK)
        return c;
    flz_ctx_free(c);
    return NULL;
}

/* The kernel table of an instruction set, or NULL where this CPU or build lacks it. */
static const flz_kernels *isa_kernels(flz_isa isa, flz_kernels *wide)
{
    flz_ctx *c = isa_ctx(isa);
    if (!c)
        return NULL;
    flz_ctx_free(c);
    if (isa == FLZ_ISA_AVX2)
        return flz_kernels_avx2();
    *wide = *flz_kernels_avx2();
    flz_kernels_avx512_over(wide);
    return wide;
}

static const flz_isa wide_isas[] = {FLZ_ISA_AVX2, FLZ_ISA_AVX512};
static const char *const isa_names[] = {"portable", "AVX2", "AVX-512"};

/* Pipelines beyond `pipelines` for the kernel sets: every rotation block size class (the tail of
 * 20000 splits into blocks 16384 ... 32) and every level width at short blocks. */
static const char *const isa_pipelines[] = {
    "rot2+q1", "rot4+q2b16", "rot8+q4b16", "rot32+q8b16", "rot128+q1b32", "rot256+q2",
    "rot2048+q4b1024", "rot65536+q2b16+zstd", "rot512+sub0.7+q1b64",
};
#define NISAPIPE (sizeof isa_pipelines / sizeof isa_pipelines[0])
#define NALLPIPE (NPIPE + NISAPIPE)

/* Pipeline p of `pipelines` followed by `isa_pipelines`, p < NALLPIPE. */
static const char *any_pipeline(size_t p)
{
    return p < NPIPE ? pipelines[p] : isa_pipelines[p - NPIPE];
}

/* The AVX2 and AVX-512 kernels must give the portable kernels' bits, payload for payload. */
static void test_isa_equivalence(void **state)
{
    (void)state;
    int tested = 0;
    for (size_t wi = 0; wi < sizeof wide_isas / sizeof wide_isas[0]; wi++) {
        const flz_isa isa = wide_isas[wi];
        flz_kernels wide;
        const flz_kernels *K = isa_kernels(isa, &wide);
        if (!K)
            continue;
        tested++;
        flz_ctx *pc, *ac;
        assert_int_equal(flz_ctx_new(NULL, &pc), FL_OK);
        assert_int_equal(flz_ctx_new(NULL, &ac), FL_OK);
        assert_int_equal(flz_ctx_set_isa(pc, FLZ_ISA_PORTABLE), FL_OK);
        assert_int_equal(flz_ctx_set_isa(ac, isa), FL_OK);
        assert_int_equal(flz_ctx_isa(ac), isa);
        /* Philox: both kernels equal the common stream, at every length up to 200 words */
        uint32_t a[200], b[200], c[200];
        const uint32_t key[2] = {0x12345678u, 0x9abcdef0u};
        fl_rng r = fl_rng_stream(0x9abcdef012345678ull, 3, 4, FL_RNG_QUANT);
        fl_rng_seek(&r, 20);
        for (int i = 0; i < 200; i++)
            c[i] = fl_rng_u32(&r);
        for (size_t nw = 4; nw <= 200; nw += 4) {
            flz_kernels_portable.philox_words(a, key, 3, 4, FL_RNG_QUANT, 5, nw);
            K->philox_words(b, key, 3, 4, FL_RNG_QUANT, 5, nw);
            assert_memory_equal(a, c, nw * sizeof *a);
            if (memcmp(b, c, nw * sizeof *b) != 0)
                fail_msg("%s philox: %zu words differ from the stream", isa_names[isa], nw);
        }
        /* f16 / bf16 casts over a sweep of bit patterns incl. subnormals, ties and overflow */
        const size_t N = 1 << 16;
        float *x = malloc(N * sizeof(float)), *y1 = malloc(N * sizeof(float)),
              *y2 = malloc(N * sizeof(float));
        uint8_t *h1 = malloc(2 * N), *h2 = malloc(2 * N);
        for (size_t i = 0; i < N; i++)
            x[i] = flz_u2f((uint32_t)(i * 0x9E3779B1u) & 0xbfffffffu) * 0x1p-60f;
        for (size_t i = 0; i < N; i += 2)
            x[i] = flz_u2f(0x33000000u + (uint32_t)(i << 9)); /* dense near the f16 subnormals */
        int ok1 = flz_kernels_portable.to_f16(h1, x, N), ok2 = K->to_f16(h2, x, N);
        assert_int_equal(ok1, ok2);
        assert_memory_equal(h1, h2, 2 * N);
        ok1 = flz_kernels_portable.from_f16(y1, h1, N);
        ok2 = K->from_f16(y2, h1, N);
        assert_int_equal(ok1, ok2);
        assert_memory_equal(y1, y2, N * sizeof(float));
        ok1 = flz_kernels_portable.to_bf16(h1, x, N);
        ok2 = K->to_bf16(h2, x, N);
        assert_int_equal(ok1, ok2);
        assert_memory_equal(h1, h2, 2 * N);
        free(x), free(y1), free(y2), free(h1), free(h2);

        /* whole pipelines, all lengths */
        const size_t n = 20000;
        float *v = malloc(n * sizeof(float)), *d1 = malloc(n * sizeof(float)),
              *d2 = malloc(n * sizeof(float));
        const size_t cap = 16 * n + 4096;
        uint8_t *p1 = malloc(cap), *p2 = malloc(cap);
        for (size_t p = 0; p < NALLPIPE; p++) {
            const char *name = any_pipeline(p);
            const flz_spec sp = spec_of(name);
            for (size_t li = 0; li < NLEN; li++) {
                const size_t len = lengths[li];
                fill_gauss(v, len, li + 30);
                const flz_params prm = {li, 1, 2, NULL};
                size_t w1, w2;
                assert_int_equal(flz_encode(pc, &sp, &prm, v, len, p1, cap, &w1), FL_OK);
                assert_int_equal(flz_encode(ac, &sp, &prm, v, len, p2, cap, &w2), FL_OK);
                assert_int_equal(w1, w2);
                if (memcmp(p1, p2, w1) != 0)
                    fail_msg("%s n=%zu: portable and %s payloads differ", name, len,
                             isa_names[isa]);
                assert_int_equal(flz_decode(pc, p1, w1, d1, len), FL_OK);
                assert_int_equal(flz_decode(ac, p1, w1, d2, len), FL_OK);
                if (len && memcmp(d1, d2, len * sizeof(float)) != 0)
                    fail_msg("%s n=%zu: portable and %s decodes differ", name, len,
                             isa_names[isa]);
            }
        }
        free(v), free(d1), free(d2), free(p1), free(p2);
        flz_ctx_free(pc);
        flz_ctx_free(ac);
    }
    if (!tested)
        skip();
}

/* Kernel by kernel, each wide kernel against the portable one over the shapes the codec hands
 * it: every Hadamard size, every level width at every length up to 300 (the wide loops and
 * their tails), bit offsets of the sign flips, and values that end a payload (non-finite inputs
 * to the finiteness checks; levels clamped at both ends). */
static void test_isa_kernels(void **state)
{
    (void)state;
    int tested = 0;
    const flz_kernels *P = &flz_kernels_portable;
    fl_rng r = fl_rng_stream(11, 0, 0, FL_RNG_TEST);
    for (size_t wi = 0; wi < sizeof wide_isas / sizeof wide_isas[0]; wi++) {
        flz_kernels wide;
        const flz_kernels *K = isa_kernels(wide_isas[wi], &wide);
        if (!K)
            continue;
        tested++;
        const char *nm = isa_names[wide_isas[wi]];
        for (unsigned l = 1; l <= 16; l++) {
            const size_t n = (size_t)1 << l;
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = (float)fl_rng_normal(&r);
            P->fwht(a, l, 0.7f);
            K->fwht(b, l, 0.7f);
            if (memcmp(a, b, n * sizeof *a) != 0)
                fail_msg("%s fwht 2^%u differs", nm, l);
            free(a), free(b);
        }
        /* the fused rotation block against the portable flip and transform, with and without
         * a subtrahend, for every size and the bit offsets a walk gives (multiples of the block
         * below 128) and others */
        for (unsigned l = 0; l <= 12; l++) {
            const size_t n = (size_t)1 << l;
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            float *r1 = malloc(n * sizeof *r1), *r2 = malloc(n * sizeof *r2);
            uint32_t *wd = malloc((n / 32 + 8) * sizeof *wd);
            for (size_t i = 0; i < n / 32 + 8; i++)
                wd[i] = fl_rng_u32(&r);
            for (size_t i = 0; i < n; i++) {
                a[i] = (float)fl_rng_normal(&r);
                b[i] = (float)fl_rng_normal(&r);
            }
            for (size_t off = 0; off < 128; off += 4)
                for (int sub = 0; sub < 2; sub++) {
                    for (size_t i = 0; i < n; i++)
                        r1[i] = sub ? a[i] - b[i] : a[i];
                    P->flip(r1, r1, n, wd, off);
                    if (l)
                        P->fwht(r1, l, 0.3f);
                    K->rot_fwd(r2, a, sub ? b : NULL, l, 0.3f, wd, off);
                    if (memcmp(r1, r2, n * sizeof *r1) != 0)
                        fail_msg("%s rot_fwd 2^%u bitoff=%zu sub=%d differs", nm, l, off, sub);
                }
            free(a), free(b), free(r1), free(r2), free(wd);
        }
        /* the subsampling walks (the AVX2 set's are the portable ones): every length up to 300,
         * three keep probabilities, a non-finite input (dropped or kept), too few values for the
         * kept coordinates, and a kept value that 1/p takes past float range */
        {
            enum { N = 300 };
            static const uint32_t Ts[] = {429496730u, 2147483648u, 3865470566u};
            float x[N + 1], o1[N + 1], o2[N + 1];
            uint32_t w[N];
            for (size_t ti = 0; ti < 3; ti++)
                for (size_t n = 1; n <= N; n++) {
                    const uint32_t T = Ts[ti];
                    for (size_t i = 0; i < n; i++) {
                        x[i] = (float)fl_rng_normal(&r);
                        w[i] = fl_rng_u32(&r);
                    }
                    if (n % 37 == 0)
                        x[n / 3] = n % 2 ? INFINITY : NAN;
                    int f1, f2;
                    const size_t m1 = P->sub_keep(o1, x, n, w, T, &f1);
                    const size_t m2 = K->sub_keep(o2, x, n, w, T, &f2);
                    assert_int_equal(m1, m2);
                    assert_int_equal(f1, f2);
                    assert_int_equal(f1, n % 37 != 0);
                    if (memcmp(o1, o2, m1 * sizeof *o1) != 0)
                        fail_msg("%s sub_keep n=%zu differs", nm, n);
                    if (!f1)
                        continue;
                    /* decode what was kept: all of it, then with one value short, then with a
                     * value too large for 1/p */
                    const float inv_p = (float)(4294967296.0 / (double)T);
                    for (int cse = 0; cse < 3; cse++) {
                        size_t m = m1;
                        float v[N + 1];
                        memcpy(v, o1, m * sizeof *v);
                        if (cse == 1 && m)
                            m--;
                        if (cse == 2 && m)
                            v[m / 2] = FLT_MAX;
                        v[m] = 0.0f;
                        size_t j1 = 0, j2 = 0;
                        const int r1 = P->sub_fill(o1, n, v, m, &j1, w, T, inv_p);
                        const int r2 = K->sub_fill(o2, n, v, m, &j2, w, T, inv_p);
                        assert_int_equal(r1, r2);
                        assert_int_equal(r1, cse == 0 || m1 == 0);
                        if (r1) {
                            assert_int_equal(j1, j2);
                            assert_int_equal(j1, m);
                            if (memcmp(o1, o2, n * sizeof *o1) != 0)
                                fail_msg("%s sub_fill n=%zu differs", nm, n);
                        }
                    }
                }
        }
        enum { M = 300 };
        float x[M], y1[M], y2[M];
        uint32_t d[M / 2 + 8], bits[(M + 64) / 32 + 1];
        uint8_t o1[M], o2[M];
        for (unsigned q = 1; q <= 8; q *= 2)
            for (size_t n = 1; n <= M; n++) {
                for (size_t i = 0; i < n; i++)
                    x[i] = (float)fl_rng_normal(&r);
                for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
                    d[i] = fl_rng_u32(&r);
                for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
                    bits[i] = fl_rng_u32(&r);
                float lo1, hi1, lo2, hi2;
                assert_int_equal(P->minmax(&lo1, &hi1, x, n), 1);
                assert_int_equal(K->minmax(&lo2, &hi2, x, n), 1);
                assert_true(flz_f2u(lo1) == flz_f2u(lo2) && flz_f2u(hi1) == flz_f2u(hi2));
                /* inv a little above the codec's, so that the top level clamps */
                const float L = (float)((1u << q) - 1), inv = 1.01f * L / (hi1 - lo1);
                memset(o1, 0xa5, sizeof o1);
                memset(o2, 0xa5, sizeof o2);
                P->quant(o1, x, n, q, lo1, inv, d);
                K->quant(o2, x, n, q, lo1, inv, d);
                if (memcmp(o1, o2, sizeof o1) != 0) /* the bytes past nb untouched as well */
                    fail_msg("%s quant q%u n=%zu differs", nm, q, n);
                P->dequant(y1, o1, n, q, lo1, (hi1 - lo1) / L);
                K->dequant(y2, o1, n, q, lo1, (hi1 - lo1) / L);
                if (memcmp(y1, y2, n * sizeof *y1) != 0)
                    fail_msg("%s dequant q%u n=%zu differs", nm, q, n);
                for (size_t off = 0; off <= 64 && q == 1; off += 4) {
                    if (n % 50 == 0)
                        x[n / 2] = (off & 8) ? INFINITY : NAN; /* ends with a bad value */
                    const int f1 = P->flip(y1, x, n, bits, off), f2 = K->flip(y2, x, n, bits, off);
                    assert_int_equal(f1, f2);
                    if (memcmp(y1, y2, n * sizeof *y1) != 0)
                        fail_msg("%s flip n=%zu bitoff=%zu differs", nm, n, off);
                    if (n % 50 == 0) {
                        assert_int_equal(f1, 0);
                        assert_int_equal(P->minmax(&lo1, &hi1, x, n), 0);
                        assert_int_equal(K->minmax(&lo2, &hi2, x, n), 0);
                    }
                }
            }
        /* put_f32_diff: the bytes and the verdict of the portable kernel at every output
         * alignment, below and above the size where the AVX2 kernel streams its stores
         * (FLZ_PUT_DIFF_NT_MIN), with a NaN, an infinity or neither in the unaligned head, the
         * vector body or the tail */
        const size_t nt = FLZ_PUT_DIFF_NT_MIN;
        const size_t dn[] = {7, 1000, nt - 1, nt, nt + 7, 4 * nt + 3};
        for (size_t ni = 0; ni < sizeof dn / sizeof dn[0]; ni++) {
            const size_t n = dn[ni];
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            uint8_t *d1 = malloc(4 * n + 64), *d2 = malloc(4 * n + 64);
            assert_non_null(a);
            assert_non_null(b);
            assert_non_null(d1);
            assert_non_null(d2);
            for (size_t i = 0; i < n; i++) {
                a[i] = (float)fl_rng_normal(&r);
                b[i] = (float)fl_rng_normal(&r);
            }
            const size_t at[] = {SIZE_MAX, 0, 3, n / 2, n - 1};
            for (size_t ai = 0; ai < sizeof at / sizeof at[0]; ai++)
                for (size_t off = 0; off < 36; off += (off < 4 ? 1 : 4)) {
                    const size_t k = at[ai];
                    const float keep = k < n ? a[k] : 0.0f;
                    if (k < n)
                        a[k] = (ai & 1) ? NAN : INFINITY;
                    memset(d1, 0xa5, 4 * n + 64);
                    memset(d2, 0xa5, 4 * n + 64);
                    const int ok1 = P->put_f32_diff(d1 + off, a, b, n);
                    const int ok2 = K->put_f32_diff(d2 + off, a, b, n);
                    if (ok1 != ok2 || ok1 != (k >= n))
                        fail_msg("%s put_f32_diff n=%zu off=%zu bad at %zu: %d, portable %d", nm,
                                 n, off, k, ok2, ok1);
                    if (memcmp(d1, d2, 4 * n + 64) != 0) /* the bytes around untouched too */
                        fail_msg("%s put_f32_diff n=%zu off=%zu differs", nm, n, off);
                    if (k < n)
                        a[k] = keep;
                }
            free(a), free(b), free(d1), free(d2);
        }
    }
    if (!tested)
        skip();
}

/* ---- damaged payloads ----------------------------------------------------------------------- */

static void test_bad_payloads(void **state)
{
    (void)state;
    const size_t n = 1000;
    fix f;
    fix_init(&f, n);
    fill_gauss(f.x, n, 8);
    uint8_t *m = malloc(f.cap + 16);
    for (size_t p = 0; p < NPIPE; p++) {
        const size_t w = enc(&f, pipelines[p], f.x, n, 5);
        /* every truncation: header error (the header states the body length) */
        for (size_t l = 0; l < w; l++)
            assert_int_equal(flz_decode(f.c, f.buf, l, f.y, n), FL_ERR_CODEC_HEADER);
        /* a trailing byte */
        memcpy(m, f.buf, w);
        m[w] = 0;
        assert_int_equal(flz_decode(f.c, m, w + 1, f.y, n), FL_ERR_CODEC_HEADER);
        /* wrong expected length */
        assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n - 1), FL_ERR_CODEC_LENGTH);
        assert_int_equal(flz_decode(f.c, f.buf, w, f.y, 0), FL_ERR_CODEC_LENGTH);
        /* every header bit flipped: caught by the checksum or the field checks */
        for (size_t bit = 0; bit < FLZ_HEADER_SIZE * 8; bit++) {
            memcpy(m, f.buf, w);
            m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            assert_int_equal(flz_decode(f.c, m, w, f.y, n), FL_ERR_CODEC_HEADER);
        }
        /* body damage: never a crash, never a non-finite output, never an unexpected code */
        for (size_t t = 0; t < 200 && w > FLZ_HEADER_SIZE; t++) {
            memcpy(m, f.buf, w);
            m[FLZ_HEADER_SIZE + (t * 7919) % (w - FLZ_HEADER_SIZE)] ^= (uint8_t)(1 + t % 255);
            const fl_status st = flz_decode(f.c, m, w, f.y, n);
            assert_true(st == FL_OK || st == FL_ERR_CODEC_CORRUPT);
            if (st == FL_OK)
                for (size_t i = 0; i < n; i++)
                    assert_true(isfinite(f.y[i]));
        }
    }
    /* zstd's content checksum catches body damage */
    size_t w = enc(&f, "rot+q4+zstd", f.x, n, 5);
    memcpy(m, f.buf, w);
    m[w - 6] ^= 0x10;
    assert_int_equal(flz_decode(f.c, m, w, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* a block range that is not finite or inverted */
    w = enc(&f, "q8", f.x, n, 5);
    memcpy(m, f.buf, w);
    flz_put_u32(m + FLZ_HEADER_SIZE, 0x7fc00000u); /* lo = NaN */
    assert_int_equal(flz_decode(f.c, m, w, f.y, n), FL_ERR_CODEC_CORRUPT);
    memcpy(m, f.buf, w);
    flz_put_u32(m + FLZ_HEADER_SIZE, flz_f2u(1e30f)); /* lo > hi */
    assert_int_equal(flz_decode(f.c, m, w, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* top-k: a count that disagrees with the header's fraction, a bad index mode */
    w = enc(&f, "topk0.01", f.x, n, 5);
    memcpy(m, f.buf, w);
    flz_put_u32(m + FLZ_HEADER_SIZE, 11);
    assert_int_equal(flz_decode(f.c, m, w, f.y, n), FL_ERR_CODEC_CORRUPT);
    memcpy(m, f.buf, w);
    m[FLZ_HEADER_SIZE + 4] = 2;
    assert_int_equal(flz_decode(f.c, m, w, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* f16 Inf in the body */
    w = enc(&f, "f16", f.x, n, 5);
    memcpy(m, f.buf, w);
    m[FLZ_HEADER_SIZE + 1] = 0x7c, m[FLZ_HEADER_SIZE] = 0;
    assert_int_equal(flz_decode(f.c, m, w, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* NULLs and nonsense */
    assert_int_equal(flz_decode(f.c, NULL, 0, f.y, n), FL_ERR_CODEC_HEADER);
    assert_int_equal(flz_decode(NULL, f.buf, w, f.y, n), FL_ERR_INVALID_ARG);
    free(m);
    fix_free(&f);
}

/* ---- zstd bombs ------------------------------------------------------------------------------ */

static uint32_t header_sum(const uint8_t *p, size_t n) /* the header's FNV-1a, as flz_codec.c */
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Into m: the header hdr with the body `frame` (flen bytes) claiming `raw` bytes unpacked, its
 * checksum made right again (what a hostile sender does). Returns the payload's length. */
static size_t forge_zstd(uint8_t *m, const uint8_t *hdr, const uint8_t *frame, size_t flen,
                         uint32_t raw)
{
    memcpy(m, hdr, FLZ_HEADER_SIZE);
    flz_put_u32(m + 16, raw);
    flz_put_u32(m + 20, (uint32_t)flen);
    memcpy(m + FLZ_HEADER_SIZE, frame, flen);
    flz_put_u32(m + 48, header_sum(m, 48));
    return FLZ_HEADER_SIZE + flen;
}

/* A zstd body that inflates far beyond what its n values can take (64 MiB of zeros in a frame of
 * a few KB), sent with a valid header: refused before anything is allocated for it when the
 * header claims that size, and when the header claims the honest size but the frame says more,
 * says nothing, or holds more than it says. Nothing ever inflates past the n values' bound. */
static void test_zstd_bombs(void **state)
{
    (void)state;
    const size_t n = 1000;
    fix f;
    fix_init(&f, n);
    fill_gauss(f.x, n, 8);
    const size_t w = enc(&f, "zstd", f.x, n, 5);
    const uint32_t raw = flz_get_u32(f.buf + 16);
    assert_int_equal(raw, 4 * n);
    uint8_t hdr[FLZ_HEADER_SIZE];
    memcpy(hdr, f.buf, sizeof hdr);
    const size_t big = (size_t)64 << 20;
    uint8_t *zeros = calloc(big, 1);
    const size_t zcap = ZSTD_compressBound(big);
    uint8_t *z = malloc(zcap), *m = malloc(FLZ_HEADER_SIZE + zcap);
    assert_non_null(zeros);
    assert_non_null(z);
    assert_non_null(m);
    /* the forgery itself is sound: the honest body under a forged header decodes */
    size_t l = forge_zstd(m, hdr, f.buf + FLZ_HEADER_SIZE, w - FLZ_HEADER_SIZE, raw);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_OK);
    assert_memory_equal(f.y, f.x, n * sizeof(float));
    const size_t zl = ZSTD_compress(z, zcap, zeros, big, 1);
    assert_false(ZSTD_isError(zl));
    assert_true(zl < 64 * 1024);
    assert_true(ZSTD_getFrameContentSize(z, zl) == big);
    /* 1. the header claims the bomb's size, above the bound of 1000 f32 values */
    l = forge_zstd(m, hdr, z, zl, (uint32_t)big);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_HEADER);
    /* 2. the header claims 4000 bytes, the frame 64 MiB */
    l = forge_zstd(m, hdr, z, zl, raw);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* 3. a frame that does not say its size (as streamed) */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_non_null(cc);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    const size_t zs = ZSTD_compress2(cc, z, zcap, zeros, big);
    assert_false(ZSTD_isError(zs));
    assert_true(ZSTD_getFrameContentSize(z, zs) == ZSTD_CONTENTSIZE_UNKNOWN);
    l = forge_zstd(m, hdr, z, zs, raw);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    ZSTD_freeCCtx(cc);
    /* 4. a frame that says 4000 bytes and holds 4096: its 2-byte size field (single segment,
     * content size - 256) lowered */
    const size_t zt = ZSTD_compress(z, zcap, zeros, 4096, 1);
    assert_false(ZSTD_isError(zt));
    assert_int_equal(z[4] & 0xe0, 0x60); /* 2-byte content size, single segment, no checksum */
    z[5] = (uint8_t)((4000 - 256) & 0xff);
    z[6] = (uint8_t)((4000 - 256) >> 8);
    assert_true(ZSTD_getFrameContentSize(z, zt) == 4000);
    l = forge_zstd(m, hdr, z, zt, raw);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    free(zeros);
    free(z);
    free(m);
    fix_free(&f);
}

/* Into m: the top-k payload src (w bytes, no zstd) with its index section replaced by sec (slen
 * bytes after the 9-byte count, mode and length), the header's lengths and checksum made right
 * again. Returns the payload's length. */
static size_t forge_topk(uint8_t *m, const uint8_t *src, size_t w, uint8_t mode,
                         const uint8_t *sec, size_t slen)
{
    const uint8_t *b = src + FLZ_HEADER_SIZE;
    const size_t old = 9 + flz_get_u32(b + 5), rest = w - FLZ_HEADER_SIZE - old;
    memcpy(m, src, FLZ_HEADER_SIZE + 4);
    uint8_t *o = m + FLZ_HEADER_SIZE;
    o[4] = mode;
    flz_put_u32(o + 5, (uint32_t)slen);
    memcpy(o + 9, sec, slen);
    memcpy(o + 9 + slen, b + old, rest);
    const size_t body = 9 + slen + rest;
    flz_put_u32(m + 16, (uint32_t)body);
    flz_put_u32(m + 20, (uint32_t)body);
    flz_put_u32(m + 48, header_sum(m, 48));
    return FLZ_HEADER_SIZE + body;
}

/* One list of top-k indices has one encoding, the one the encoder writes: a gap written with
 * more varint bytes than it needs (0x85 0x00 for 5) and the mode the encoder did not choose (a
 * bitmap where the gaps are shorter, gaps where the bitmap is no longer) are refused, though
 * each gives the same indices (until 2026-12-07 each decoded as the canonical payload did, where
 * its size passed flz_peek's bound). */
static void test_topk_canonical(void **state)
{
    (void)state;
    const size_t n = 1000;
    fix f;
    fix_init(&f, n);
    fill_gauss(f.x, n, 8);
    uint8_t *m = malloc(f.cap + 256), sec[1024];
    float *y0 = malloc(n * sizeof(float));
    assert_non_null(m);
    assert_non_null(y0);
    /* topk0.05: 50 indices, their gaps (about a byte each) shorter than the 125-byte bitmap,
     * which is under the 250 bytes of five per index that flz_peek's size bound allows */
    size_t w = enc(&f, "topk0.05", f.x, n, 5);
    const uint8_t *b = f.buf + FLZ_HEADER_SIZE;
    assert_int_equal(b[4], 1);
    const size_t nb = flz_get_u32(b + 5);
    assert_int_equal(flz_decode(f.c, f.buf, w, y0, n), FL_OK);
    /* the forgery itself is sound: the same section rewritten decodes to the same values */
    size_t l = forge_topk(m, f.buf, w, 1, b + 9, nb);
    assert_int_equal(l, w);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_OK);
    assert_memory_equal(f.y, y0, n * sizeof(float));
    /* the first gap padded with one zero byte */
    size_t g = 0;
    while (b[9 + g] & 0x80)
        g++;
    memcpy(sec, b + 9, g + 1);
    sec[g] |= 0x80;
    sec[g + 1] = 0;
    memcpy(sec + g + 2, b + 9 + g + 1, nb - g - 1);
    l = forge_topk(m, f.buf, w, 1, sec, nb + 1);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* the last gap padded out to five bytes */
    memcpy(sec, b + 9, nb);
    sec[nb - 1] |= 0x80;
    size_t s = nb;
    for (g = nb - 1; g > 0 && (b[9 + g - 1] & 0x80); g--)
        ;
    while (s - g < 4)
        sec[s++] = 0x80;
    sec[s++] = 0;
    l = forge_topk(m, f.buf, w, 1, sec, s);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* the same indices as a bitmap */
    uint32_t idx[64];
    size_t k = 0, p = 0;
    for (uint32_t prev = 0; p < nb; k++) {
        uint32_t v = 0;
        for (unsigned sh = 0;; sh += 7) {
            v |= (uint32_t)(b[9 + p] & 0x7f) << sh;
            if (!(b[9 + p++] & 0x80))
                break;
        }
        assert_true(k < 64);
        idx[k] = prev = k ? prev + 1 + v : v;
    }
    assert_int_equal(k, 50);
    memset(sec, 0, (n + 7) / 8);
    for (size_t j = 0; j < k; j++)
        sec[idx[j] / 8] |= (uint8_t)(1u << (idx[j] % 8));
    l = forge_topk(m, f.buf, w, 0, sec, (n + 7) / 8);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    /* topk0.125 with the largest values at 0..124: the bitmap (125 bytes) is as long as the 125
     * gaps of 0 (a byte each), so the bitmap; the same indices as gaps are refused */
    for (size_t i = 0; i < n; i++)
        f.x[i] = i < 125 ? 100.0f + (float)i : 0.001f * (float)(i % 7);
    w = enc(&f, "topk0.125", f.x, n, 5);
    assert_int_equal(b[4], 0);
    assert_int_equal(flz_get_u32(b + 5), 125);
    assert_int_equal(flz_decode(f.c, f.buf, w, y0, n), FL_OK);
    memset(sec, 0, 125);
    l = forge_topk(m, f.buf, w, 1, sec, 125);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    free(y0);
    free(m);
    fix_free(&f);
}

/* flz_decode_par gives flz_decode's status and bits for every pipeline and length, split in 2,
 * 3, 7 or 64 pieces on real threads; damaged bodies give the same status; the quantised
 * pipelines are really split. */
static void test_decode_split(void **state)
{
    (void)state;
    const size_t lens[] = {1, 17, 1000, 4099, 20000, 70001};
    const unsigned parts[] = {2, 3, 7, FL_PAR_MAX};
    fix f;
    fix_init(&f, 70001);
    float *z = malloc(70001 * sizeof(float));
    uint8_t *m = malloc(f.cap);
    assert_non_null(z);
    assert_non_null(m);
    for (size_t p = 0; p < NPIPE; p++) {
        const flz_spec sp = spec_of(pipelines[p]);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const size_t n = lens[li];
            fill_gauss(f.x, n, 300 + li);
            const size_t w = enc(&f, pipelines[p], f.x, n, 11);
            assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
            for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
                const fl_par par = {par_run, NULL, parts[k], 1};
                const int calls = g_par_calls;
                assert_int_equal(flz_decode_par(f.c, f.buf, w, z, n, &par), FL_OK);
                if (memcmp(z, f.y, n * sizeof(float)) != 0)
                    fail_msg("%s n=%zu in %u pieces: other bits", pipelines[p], n, parts[k]);
                const int split = sp.value == FLZ_VALUE_Q && sp.topk == 0.0f && sp.sub == 0.0f;
                assert_int_equal(g_par_calls - calls, split);
            }
            /* damage: the same status as the serial decode */
            for (size_t t = 0; t < 20 && w > FLZ_HEADER_SIZE; t++) {
                memcpy(m, f.buf, w);
                m[FLZ_HEADER_SIZE + (t * 7919) % (w - FLZ_HEADER_SIZE)] ^= (uint8_t)(1 + t * 37 % 255);
                const fl_par par = {par_run, NULL, 3, 1};
                const fl_status s1 = flz_decode(f.c, m, w, f.y, n);
                assert_int_equal(flz_decode_par(f.c, m, w, z, n, &par), s1);
                if (s1 == FL_OK)
                    assert_memory_equal(z, f.y, n * sizeof(float));
            }
        }
    }
    /* below min_elems, or one part: serial, the parallel-for unused */
    const size_t w = enc(&f, "rot+q4", f.x, 1000, 3);
    const int calls = g_par_calls;
    const fl_par big = {par_run, NULL, 4, 0}, one = {par_run, NULL, 1, 1};
    assert_int_equal(flz_decode_par(f.c, f.buf, w, z, 1000, &big), FL_OK);
    assert_int_equal(flz_decode_par(f.c, f.buf, w, z, 1000, &one), FL_OK);
    assert_int_equal(flz_decode_par(f.c, f.buf, w, z, 1000, NULL), FL_OK);
    assert_int_equal(g_par_calls, calls);
    free(z);
    free(m);
    fix_free(&f);
}

/* A lender's threads keep the rounding mode they started in (fl_sim's helpers start before any
 * run): on them, the pieces of a decode that the embedder runs in another mode. */
static const int k_nearest = FE_TONEAREST;

/* Under another rounding mode (an embedder's fesetround) flz_decode_par still gives
 * flz_decode's bits, though the lender's threads round to nearest. */
static int decode_split_rounding(void)
{
    const int modes[] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    const char *const specs[] = {"rot+q4+zstd", "q8", "rot64+q2"};
    const size_t n = 40000;
    fix f;
    fix_init(&f, n);
    float *z = malloc(n * sizeof(float));
    int bad = 0;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fill_gauss(f.x, n, 70 + s);
        const size_t w = enc(&f, specs[s], f.x, n, 5);
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            const fl_par par = {par_run, (void *)&k_nearest, 4, 1};
            if (fesetround(modes[m]) != 0)
                continue;
            const fl_status s1 = flz_decode(f.c, f.buf, w, f.y, n);
            const fl_status s2 = flz_decode_par(f.c, f.buf, w, z, n, &par);
            fesetround(FE_TONEAREST);
            if (s1 != FL_OK || s2 != FL_OK || memcmp(z, f.y, n * sizeof(float)) != 0) {
                print_error("%s, rounding mode %d: %s / %s, %s bits\n", specs[s], modes[m],
                            fl_status_name(s1), fl_status_name(s2),
                            memcmp(z, f.y, n * sizeof(float)) ? "other" : "the same");
                bad = 1;
            }
        }
    }
    free(z);
    fix_free(&f);
    return bad;
}

static void test_decode_split_rounding(void **state)
{
    (void)state;
    const int bad = decode_split_rounding(); /* the default mode restored before any assert */
    assert_int_equal(fegetround(), FE_TONEAREST);
    assert_false(bad);
}

/* An encode refused as FL_ERR_NUMERIC says why (flz_ctx_error): which value, and the limit it
 * passed. Until 2026-12-07 only the status came back, whose text is "non-finite value": a global
 * model beyond 65504 under --down-codec f16 stopped fl_sim with "simulation failed: non-finite
 * value", where every weight was finite. A success clears the reason. */
static void test_encode_numeric_why(void **state)
{
    (void)state;
    enum { N = 64 };
    static const struct {
        const char *spec;
        int at;       /* the element set to v (the others are small; -1: every element) */
        float v;
        const char *says[3];
    } rows[] = {
        {"f16", 5, 1e5f, {"element 5 is 100000", "float16's range", "65504"}},
        {"f16+zstd", 9, -65520.0f, {"element 9 is -65520", "65504", "bf16"}},
        {"f16", 3, NAN, {"element 3 is nan", "not a finite value", NULL}},
        {"bf16", 0, 3.4e38f, {"element 0 is 3.4e+38", "bfloat16's largest finite", NULL}},
        {"none", 2, INFINITY, {"element 2 is inf", "not a finite value", NULL}},
        {"rot16+f16", 0, 1e7f, {"a value after the earlier stages", "float16's range", NULL}},
        {"q4b16", 1, 3e38f, {"quantisation block of values 0..15", "q4", NULL}},
        {"rot+q8", 1, 3e38f, {"inverse rotation", "3.40282e+38", NULL}},
        {"sub0.5", -1, 3e38f, {"1/p scaling", NULL, NULL}},
        {"rot4", -1, 3e38f, {"the rotation's sums (blocks of 4 values)", "3e+38", NULL}},
        {"topk0.5+q8", 4, -INFINITY, {"element 4 is -inf", NULL, NULL}},
    };
    fix f;
    fix_init(&f, N);
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        for (int i = 0; i < N; i++)
            f.x[i] = (float)(i % 7) - 3.0f;
        if (strstr(rows[r].spec, "q4b16"))
            f.x[0] = -3e38f; /* the block's width past float */
        for (int i = 0; i < N; i++)
            if (rows[r].at < 0 || i == rows[r].at)
                f.x[i] = rows[r].v;
        const flz_spec sp = spec_of(rows[r].spec);
        size_t w;
        const fl_status st = flz_encode(f.c, &sp, NULL, f.x, N, f.buf, f.cap, &w);
        const char *why = flz_ctx_error(f.c);
        if (st != FL_ERR_NUMERIC)
            fail_msg("%s: %s, want FL_ERR_NUMERIC", rows[r].spec, fl_status_name(st));
        for (int k = 0; k < 3; k++)
            if (rows[r].says[k] && !strstr(why, rows[r].says[k]))
                fail_msg("%s: reason '%s' does not say '%s'", rows[r].spec, why, rows[r].says[k]);
        for (int i = 0; i < N; i++)
            f.x[i] = 1.0f;
        assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, N, f.buf, f.cap, &w), FL_OK);
        assert_string_equal(flz_ctx_error(f.c), "");
    }
    /* flz_encode_diff: the difference of two finite values, not finite */
    float a[4] = {1, 2, 3e38f, 4}, b[4] = {0, 0, -3e38f, 0};
    const flz_spec sp = spec_of("none");
    size_t w;
    assert_int_equal(flz_encode_diff(f.c, &sp, NULL, a, b, 4, f.buf, f.cap, &w), FL_ERR_NUMERIC);
    assert_non_null(strstr(flz_ctx_error(f.c), "element 2, the difference 3e+38 - -3e+38"));
    assert_string_equal(flz_ctx_error(NULL), "");
    fix_free(&f);
}

static void test_encode_errors(void **state)
{
    (void)state;
    const size_t n = 1000;
    fix f;
    fix_init(&f, n);
    fill_gauss(f.x, n, 8);
    for (size_t p = 0; p < NPIPE; p++) {
        const flz_spec sp = spec_of(pipelines[p]);
        size_t w;
        /* too small an output buffer */
        size_t need;
        assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, f.cap, &need), FL_OK);
        assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, need - 1, &w),
                         FL_ERR_BUFFER_TOO_SMALL);
        const fl_status st = flz_encode(f.c, &sp, NULL, f.x, n, f.buf, need, &w);
        if (st != FL_OK)
            fail_msg("%s: cap = size %zu gives %s", pipelines[p], need, fl_status_name(st));
        /* non-finite input */
        const float keep = f.x[500];
        f.x[500] = NAN;
        assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, f.cap, &w), FL_ERR_NUMERIC);
        f.x[500] = INFINITY;
        assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, f.cap, &w), FL_ERR_NUMERIC);
        f.x[500] = keep;
    }
    flz_spec sp = spec_of("q4");
    size_t w;
    /* a block whose range overflows float */
    f.x[0] = 3e38f, f.x[1] = -3e38f;
    assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, f.cap, &w), FL_ERR_NUMERIC);
    /* A value that the decoder's 1/p subsample scaling or its inverse rotation (which sums a
     * block before it scales) would take past float: refused at the encode, FL_ERR_NUMERIC. The
     * decoder refused such a payload as corrupt, and under error feedback the encoder's own
     * decode failed as an internal error. */
    {
        static const char *subs[] = {"sub0.5", "sub0.5+zstd", "sub0.01+q8"};
        for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
            const flz_spec ss = spec_of(subs[i]);
            float big[64];
            for (int j = 0; j < 64; j++)
                big[j] = i == 2 ? (j & 1 ? 4e36f : -4e36f) : 3e38f;
            flz_residual *r = NULL;
            assert_int_equal(flz_residual_new(64, &r), FL_OK);
            const flz_params p1 = {.seed = 1}; /* seed 1 keeps some of the 64 under sub0.01 */
            flz_params pr = {.seed = 1, .residual = r};
            if (flz_encode(f.c, &ss, &p1, big, 64, f.buf, f.cap, &w) != FL_ERR_NUMERIC ||
                flz_encode(f.c, &ss, &pr, big, 64, f.buf, f.cap, &w) != FL_ERR_NUMERIC)
                fail_msg("%s: a value past FLT_MAX * p not refused as FL_ERR_NUMERIC", subs[i]);
            flz_residual_free(r);
            /* ... while a value the decoder can scale still goes, and decodes */
            for (int j = 0; j < 64; j++)
                big[j] = i == 2 ? (j & 1 ? 1e35f : -1e35f) : 1e37f;
            assert_int_equal(flz_encode(f.c, &ss, &p1, big, 64, f.buf, f.cap, &w), FL_OK);
            float back[64];
            assert_int_equal(flz_decode(f.c, f.buf, w, back, 64), FL_OK);
        }
        /* one large value in 1024 passes the forward rotation, but the inverse's sums (after the
         * 1/p scaling) could pass float: for every seed, refused or decoded, never a payload the
         * decoder refuses; with error feedback never an internal error */
        static const char *rots[] = {"rot+sub0.01", "rot+sub0.05", "rot", "rot+q8"};
        static const float mags[] = {FLT_MAX / 40, FLT_MAX / 40, FLT_MAX / 4, FLT_MAX / 4};
        for (size_t i = 0; i < sizeof rots / sizeof *rots; i++) {
            const flz_spec rs = spec_of(rots[i]);
            float *one = calloc(1024, sizeof *one), *back = malloc(1024 * sizeof *back);
            assert_true(one && back);
            one[3] = mags[i];
            int refused = 0;
            for (uint64_t seed = 0; seed < 200; seed++) {
                flz_residual *r = NULL;
                assert_int_equal(flz_residual_new(1024, &r), FL_OK);
                const flz_params p1 = {.seed = seed};
                const flz_params pr = {.seed = seed, .residual = r};
                const fl_status e1 = flz_encode(f.c, &rs, &p1, one, 1024, f.buf, f.cap, &w);
                const fl_status d1 = e1 == FL_OK ? flz_decode(f.c, f.buf, w, back, 1024) : FL_OK;
                const fl_status e2 = flz_encode(f.c, &rs, &pr, one, 1024, f.buf, f.cap, &w);
                flz_residual_free(r);
                if ((e1 != FL_OK && e1 != FL_ERR_NUMERIC) || d1 != FL_OK || e2 != e1)
                    fail_msg("%s seed %llu: encode %s, decode %s, with error feedback %s", rots[i],
                             (unsigned long long)seed, fl_status_name(e1), fl_status_name(d1),
                             fl_status_name(e2));
                refused += e1 == FL_ERR_NUMERIC;
            }
            print_message("%s, one value of %g in 1024: refused for %d of 200 seeds\n", rots[i],
                          (double)mags[i], refused);
            free(one);
            free(back);
        }
    }
    assert_int_equal(flz_encode(f.c, &sp, NULL, NULL, 5, f.buf, f.cap, &w), FL_ERR_INVALID_ARG);
    assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, FLZ_MAX_N + 1, f.buf, f.cap, &w),
                     FL_ERR_INVALID_ARG);
    sp.q_bits = 5;
    assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, f.cap, &w), FL_ERR_CODEC_SPEC);
    fix_free(&f);
}

/* Two non-finite values that got through until 2026-12-07, on every kernel set:
 * - a quantised block whose top level, lo + L (hi - lo) / L, rounds past FLT_MAX though hi does
 *   not (q4: lo = 0x1.dd786p+120, hi = FLT_MAX; q8: lo = 0x1.9a3488p+115): the encoder took such
 *   input and the decoder gave +inf with FL_OK (into an aggregate, through decode_axpy). Now the
 *   encoder refuses it (FL_ERR_NUMERIC) and the decoder refuses such a payload (corrupt);
 * - a NaN whose bits are 0x7fff8000 and up (0xffffffff: memory filled with 0xff) into bf16: the
 *   AVX2 and AVX-512 kernels' rounding add wrapped it to +-0 and sent it; the portable kernel
 *   refused it. Now every kernel set refuses it. */
static void test_nonfinite_edges(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        float lo;
    } qs[] = {{"q4", 0x1.dd786p+120f}, {"q4+zstd", 0x1.dd786p+120f},
              {"topk1+q4+zstd", 0x1.dd786p+120f}, {"q8", 0x1.9a3488p+115f},
              {"topk1+q8+zstd", 0x1.9a3488p+115f}};
    static const uint32_t nans[] = {0x7fff8000u, 0x7fffffffu, 0xffff8000u, 0xffffffffu,
                                    0x7fc00000u, 0x7f800000u};
    uint8_t buf[4096];
    for (int isa = 0; isa < 3; isa++) {
        flz_ctx *c = isa_ctx((flz_isa)isa);
        if (!c)
            continue;
        for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
            float x[16], y[16];
            for (int i = 0; i < 16; i++)
                x[i] = (i & 1) ? FLT_MAX : qs[k].lo;
            const flz_spec sp = spec_of(qs[k].spec);
            size_t w;
            const fl_status e = flz_encode(c, &sp, NULL, x, 16, buf, sizeof buf, &w);
            if (e != FL_ERR_NUMERIC)
                fail_msg("%s, %s: encode of a block whose top level rounds past FLT_MAX: %s",
                         isa_names[isa], qs[k].spec, fl_status_name(e));
            /* the same range written into a payload of a finite block */
            if (strstr(qs[k].spec, "zstd") || strstr(qs[k].spec, "topk"))
                continue;
            for (int i = 0; i < 16; i++)
                x[i] = (float)i;
            assert_int_equal(flz_encode(c, &sp, NULL, x, 16, buf, sizeof buf, &w), FL_OK);
            flz_put_u32(buf + FLZ_HEADER_SIZE, flz_f2u(qs[k].lo));
            flz_put_u32(buf + FLZ_HEADER_SIZE + 4, flz_f2u(FLT_MAX));
            const fl_status d = flz_decode(c, buf, w, y, 16);
            if (d != FL_ERR_CODEC_CORRUPT)
                fail_msg("%s, %s: decode of a block whose top level rounds past FLT_MAX: %s",
                         isa_names[isa], qs[k].spec, fl_status_name(d));
        }
        for (size_t k = 0; k < sizeof nans / sizeof *nans; k++)
            for (size_t at = 0; at < 40; at += 13) {
                float x[40];
                for (int i = 0; i < 40; i++)
                    x[i] = 0.5f * (float)i;
                x[at] = flz_u2f(nans[k]);
                const flz_spec sp = spec_of("bf16");
                size_t w;
                const fl_status e = flz_encode(c, &sp, NULL, x, 40, buf, sizeof buf, &w);
                if (e != FL_ERR_NUMERIC)
                    fail_msg("%s: bf16 of a value of bits 0x%08x at %zu: %s", isa_names[isa],
                             (unsigned)nans[k], at, fl_status_name(e));
            }
        flz_ctx_free(c);
    }
}

/* Three edges of the payload's bytes (2026-12-07; each failed before):
 * - a spec filled in by hand with topk or sub -0.0f (off, as 0.0f is) passed flz_spec_check and
 *   encoded, but its header carried the bits 0x80000000, which every decoder refuses;
 * - under FE_DOWNWARD, a block whose least value is a zero gave lo = +0.0f on the portable kernel
 *   and -0.0f on AVX2 and AVX-512 (l + 0.0f is -0.0f in that mode): other bytes per CPU;
 * - a zstd body with a frame after its one frame (a skippable frame of any bytes, an empty
 *   frame) was decoded, every frame of it. */
static void test_payload_edges(void **state)
{
    (void)state;
    const size_t n = 64;
    fix f;
    fix_init(&f, n);
    fill_gauss(f.x, n, 8);
    size_t w;
    /* -0.0f stages */
    for (int k = 0; k < 2; k++) {
        flz_spec sp = spec_of("q8");
        if (k == 0)
            sp.topk = -0.0f;
        else
            sp.sub = -0.0f;
        assert_int_equal(flz_spec_check(&sp, NULL, 0), FL_OK);
        assert_int_equal(flz_encode(f.c, &sp, NULL, f.x, n, f.buf, f.cap, &w), FL_OK);
        if (flz_decode(f.c, f.buf, w, f.y, n) != FL_OK)
            fail_msg("a spec with %s -0.0f encodes a payload no decoder takes",
                     k ? "sub" : "topk");
    }
    /* a zero's sign under FE_DOWNWARD, every kernel set against the portable one */
    for (size_t i = 0; i < n; i++) /* +0.0f first in a scan, -0.0f in the same vector lane */
        f.x[i] = i == 0 ? 0.0f : i == 8 ? -0.0f : 1.0f + (float)i;
    const flz_spec q8 = spec_of("q8");
    const flz_params p = {.seed = 3};
    uint8_t ref[1024], got[1024];
    size_t wref = 0;
    for (int isa = 0; isa < 3; isa++) {
        flz_ctx *c = isa_ctx((flz_isa)isa);
        if (!c)
            continue;
        const int mode = fegetround();
        assert_int_equal(fesetround(FE_DOWNWARD), 0);
        const fl_status st = flz_encode(c, &q8, &p, f.x, n, isa ? got : ref, sizeof ref,
                                        isa ? &w : &wref);
        fesetround(mode);
        flz_ctx_free(c);
        assert_int_equal(st, FL_OK);
        if (isa && (w != wref || memcmp(got, ref, w) != 0))
            fail_msg("%s: under FE_DOWNWARD, other bytes than the portable kernel's "
                     "(lo bits 0x%08x against 0x%08x)", isa_names[isa],
                     (unsigned)flz_get_u32(got + FLZ_HEADER_SIZE),
                     (unsigned)flz_get_u32(ref + FLZ_HEADER_SIZE));
    }
    /* frames after the zstd body's frame */
    fill_gauss(f.x, n, 9);
    w = enc(&f, "q4+zstd", f.x, n, 5);
    uint8_t hdr[FLZ_HEADER_SIZE];
    memcpy(hdr, f.buf, sizeof hdr);
    const uint32_t raw = flz_get_u32(f.buf + 16);
    const size_t zl = w - FLZ_HEADER_SIZE;
    uint8_t *z = malloc(zl + 64), *m = malloc(FLZ_HEADER_SIZE + zl + 64);
    assert_non_null(z);
    assert_non_null(m);
    memcpy(z, f.buf + FLZ_HEADER_SIZE, zl);
    size_t l = forge_zstd(m, hdr, z, zl, raw); /* the forgery is sound: it decodes */
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_OK);
    static const uint8_t skippable[] = {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'f', 'r', 'e', 'e'};
    memcpy(z + zl, skippable, sizeof skippable);
    l = forge_zstd(m, hdr, z, zl + sizeof skippable, raw);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    const size_t el = ZSTD_compress(z + zl, 64, "", 0, 1); /* an empty frame */
    assert_false(ZSTD_isError(el));
    l = forge_zstd(m, hdr, z, zl + el, raw);
    assert_int_equal(flz_decode(f.c, m, l, f.y, n), FL_ERR_CODEC_CORRUPT);
    free(z);
    free(m);
    fix_free(&f);
}

/* ---- decode and accumulate ------------------------------------------------------------------ */

static void test_axpy(void **state)
{
    (void)state;
    const size_t n = 4099;
    fix f;
    fix_init(&f, n);
    float *acc = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    fill_gauss(f.x, n, 21);
    for (size_t p = 0; p < NPIPE; p++) {
        const size_t w = enc(&f, pipelines[p], f.x, n, 2);
        assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
        for (size_t i = 0; i < n; i++) {
            acc[i] = (float)i * 0.01f;
            ref[i] = acc[i] + 0.3f * f.y[i];
        }
        assert_int_equal(flz_decode_axpy(f.c, f.buf, w, 0.3f, acc, n), FL_OK);
        assert_memory_equal(acc, ref, n * sizeof(float));
        /* all or nothing: a damaged payload leaves the accumulator untouched */
        memcpy(ref, acc, n * sizeof(float));
        f.buf[w - 1] ^= 0xff;
        const fl_status st = flz_decode_axpy(f.c, f.buf, w, 0.3f, acc, n);
        if (st != FL_OK)
            assert_memory_equal(acc, ref, n * sizeof(float));
        memcpy(ref, acc, n * sizeof(float));
        assert_int_equal(flz_decode_axpy(f.c, f.buf, w - 1, 0.3f, acc, n), FL_ERR_CODEC_HEADER);
        assert_memory_equal(acc, ref, n * sizeof(float));
    }
    assert_int_equal(flz_decode_axpy(f.c, f.buf, 10, NAN, acc, n), FL_ERR_INVALID_ARG);
    free(acc);
    free(ref);
    fix_free(&f);
}

/* flz_encode_diff(a, b) gives flz_encode(a - b)'s bytes for every pipeline and length, on both
 * instruction sets (plain float32 takes the fused kernel), and refuses a non-finite difference. */
static void test_encode_diff(void **state)
{
    (void)state;
    const size_t n = 20000, cap = 16 * n + 4096;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
    uint8_t *p1 = malloc(cap), *p2 = malloc(cap);
    flz_ctx *cx[3];
    assert_int_equal(flz_ctx_new(NULL, &cx[0]), FL_OK);
    assert_int_equal(flz_ctx_set_isa(cx[0], FLZ_ISA_PORTABLE), FL_OK);
    int n_ctx = 1;
    for (size_t wi = 0; wi < sizeof wide_isas / sizeof wide_isas[0]; wi++) {
        assert_int_equal(flz_ctx_new(NULL, &cx[n_ctx]), FL_OK);
        if (flz_ctx_set_isa(cx[n_ctx], wide_isas[wi]) == FL_OK)
            n_ctx++;
        else
            flz_ctx_free(cx[n_ctx]);
    }
    for (size_t p = 0; p < NALLPIPE; p++) {
        const char *name = any_pipeline(p);
        const flz_spec sp = spec_of(name);
        for (size_t li = 0; li < NLEN; li++) {
            const size_t len = lengths[li];
            fill_gauss(a, len, li + 70);
            fill_gauss(b, len, li + 90);
            for (size_t i = 0; i < len; i++)
                d[i] = a[i] - b[i];
            for (int k = 0; k < n_ctx; k++) {
                const flz_params prm = {li, 1, 2, NULL};
                size_t w1, w2;
                assert_int_equal(flz_encode(cx[k], &sp, &prm, d, len, p1, cap, &w1), FL_OK);
                assert_int_equal(flz_encode_diff(cx[k], &sp, &prm, a, b, len, p2, cap, &w2), FL_OK);
                assert_int_equal(w1, w2);
                if (memcmp(p1, p2, w1) != 0)
                    fail_msg("%s n=%zu isa %d: encode_diff differs from encode", name, len, k);
            }
        }
    }
    /* a non-finite difference, in the vector body and in the tail, plain and rotated first */
    static const char *const bad_specs[] = {"none", "rot", "rot16+q4b16"};
    for (size_t bs = 0; bs < sizeof bad_specs / sizeof bad_specs[0]; bs++) {
        const flz_spec sp = spec_of(bad_specs[bs]);
        for (int k = 0; k < n_ctx; k++)
            for (size_t at = 0; at < 40; at += 13) {
                fill_gauss(a, 40, 5);
                fill_gauss(b, 40, 6);
                a[at] = INFINITY;
                size_t w;
                assert_int_equal(flz_encode_diff(cx[k], &sp, NULL, a, b, 40, p1, cap, &w),
                                 FL_ERR_NUMERIC);
            }
    }
    size_t w;
    const flz_spec none = spec_of("none");
    assert_int_equal(flz_encode_diff(cx[0], &none, NULL, NULL, b, 4, p1, cap, &w), FL_ERR_INVALID_ARG);
    for (int k = 0; k < n_ctx; k++)
        flz_ctx_free(cx[k]);
    free(a), free(b), free(d), free(p1), free(p2);
}

/* Decoding flushes subnormals (x86): deltas a sender made tiny (values around 1e-39, and normal
 * ones of 1e-37 whose block ranges, rotations and sums underflow) decode to 0 or to |y| >=
 * FLT_MIN, so the decode arithmetic never meets the CPU's slow path for subnormals; the caller's
 * MXCSR is as it was after every call, failed ones included; honest values decode as before. */
static void test_subnormals_flushed(void **state)
{
    (void)state;
#if defined(__x86_64__) || defined(__i386__)
    const size_t n = 5000;
    fix f;
    fix_init(&f, n);
    const unsigned csr = _mm_getcsr();
    for (size_t p = 0; p < NPIPE; p++) {
        for (int kind = 0; kind < 2; kind++) {
            fill_gauss(f.x, n, 40 + p);
            for (size_t i = 0; i < n; i++)
                f.x[i] *= kind ? 1e-34f : 1e-36f; /* N(0, 1e-3) -> around 1e-37, 1e-39 */
            const size_t w = enc(&f, pipelines[p], f.x, n, 3);
            assert_int_equal(flz_decode(f.c, f.buf, w, f.y, n), FL_OK);
            assert_int_equal(_mm_getcsr(), csr);
            const flz_spec sp = spec_of(pipelines[p]);
            /* float32 and bfloat16 values are moved as bits, with no arithmetic (and no slow
             * path): their subnormals pass as sent unless a rotation or subsampling computes */
            const int arithmetic = (sp.value != FLZ_VALUE_F32 && sp.value != FLZ_VALUE_BF16) ||
                                   sp.rot_log2 || sp.sub != 0.0f;
            for (size_t i = 0; i < n && arithmetic; i++)
                if (!(f.y[i] == 0.0f || fabsf(f.y[i]) >= FLT_MIN))
                    fail_msg("%s: y[%zu] = %g is subnormal", pipelines[p], i, (double)f.y[i]);
            memset(f.y, 0, n * sizeof(float));
            assert_int_equal(flz_decode_axpy(f.c, f.buf, w, 1.0f, f.y, n), FL_OK);
            assert_int_equal(_mm_getcsr(), csr);
            assert_int_equal(flz_decode(f.c, f.buf, w - 1, f.y, n), FL_ERR_CODEC_HEADER);
            assert_int_equal(_mm_getcsr(), csr);
        }
    }
    fix_free(&f);
#else
    skip();
#endif
}

/* flz_ctx_reserve's contract: after it, no call on sizes up to the reserved one allocates. The
 * test binary wraps posix_memalign, the only allocator a context's scratch grows by (the zstd
 * contexts are made in flz_ctx_new; what libzstd allocates inside them is not counted). */
static int memalign_calls;
int __real_posix_memalign(void **p, size_t align, size_t size);
int __wrap_posix_memalign(void **p, size_t align, size_t size)
{
    memalign_calls++;
    return __real_posix_memalign(p, align, size);
}

static void test_reserve_no_alloc(void **state)
{
    (void)state;
    enum { N = 20000 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *out = malloc(N * sizeof *out);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(out);
    fill_gauss(a, N, 1);
    fill_gauss(b, N, 2);
    static const size_t sizes[] = {N, N / 2 + 3, 17, 1};
    for (size_t p = 0; p < NALLPIPE; p++) {
        const flz_spec sp = spec_of(any_pipeline(p));
        const size_t cap = flz_encode_bound(&sp, N);
        uint8_t *pay = malloc(cap);
        assert_non_null(pay);
        flz_ctx *c;
        assert_int_equal(flz_ctx_new(NULL, &c), FL_OK);
        assert_int_equal(flz_ctx_reserve(c, &sp, N), FL_OK);
        flz_residual *res[sizeof sizes / sizeof sizes[0]];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            assert_int_equal(flz_residual_new(sizes[si], &res[si]), FL_OK);
        memalign_calls = 0;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const size_t n = sizes[si];
            for (int ef = 0; ef < 2; ef++) {
                const flz_params prm = {7, 1, 2, ef ? res[si] : NULL};
                size_t w;
                assert_int_equal(flz_encode(c, &sp, &prm, a, n, pay, cap, &w), FL_OK);
                assert_int_equal(flz_decode(c, pay, w, out, n), FL_OK);
                assert_int_equal(flz_decode_axpy(c, pay, w, 0.5f, out, n), FL_OK);
                assert_int_equal(flz_encode_diff(c, &sp, &prm, a, b, n, pay, cap, &w), FL_OK);
                assert_int_equal(flz_decode_axpy(c, pay, w, -1.0f, out, n), FL_OK);
            }
            if (memalign_calls != 0)
                fail_msg("%s: %d allocations after flz_ctx_reserve(%d), at n=%zu", any_pipeline(p),
                         memalign_calls, (int)N, n);
        }
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            flz_residual_free(res[si]);
        flz_ctx_free(c);
        free(pay);
    }
    free(a);
    free(b);
    free(out);
}

static void test_reserve_and_isa(void **state)
{
    (void)state;
    flz_ctx *c;
    assert_int_equal(flz_ctx_new(NULL, &c), FL_OK);
    /* a new context takes the widest kernel set this CPU has */
    const flz_isa widest = flz_cpu_has_avx512()  ? FLZ_ISA_AVX512
                           : flz_cpu_has_avx2() ? FLZ_ISA_AVX2
                                                : FLZ_ISA_PORTABLE;
    assert_int_equal(flz_ctx_isa(c), widest);
    const flz_spec sp = spec_of("topk0.1+rot+sub0.5+q4+zstd");
    assert_int_equal(flz_ctx_reserve(c, &sp, 100000), FL_OK);
    assert_int_equal(flz_ctx_set_isa(c, FLZ_ISA_PORTABLE), FL_OK);
    assert_int_equal(flz_ctx_isa(c), FLZ_ISA_PORTABLE);
    assert_int_equal(flz_ctx_set_isa(c, (flz_isa)9), FL_ERR_INVALID_ARG);
    flz_ctx_free(c);
    flz_ctx_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_table),
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_lossless_exact),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_f16_bf16),
        cmocka_unit_test(test_quant_unbiased),
        cmocka_unit_test(test_quant_exact_expectation),
        cmocka_unit_test(test_subsample_unbiased),
        cmocka_unit_test(test_subsample_overflow),
        cmocka_unit_test(test_topk_exact),
        cmocka_unit_test(test_error_feedback),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_isa_equivalence),
        cmocka_unit_test(test_isa_kernels),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_zstd_bombs),
        cmocka_unit_test(test_topk_canonical),
        cmocka_unit_test(test_decode_split),
        cmocka_unit_test(test_decode_split_rounding),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_encode_numeric_why),
        cmocka_unit_test(test_nonfinite_edges),
        cmocka_unit_test(test_payload_edges),
        cmocka_unit_test(test_axpy),
        cmocka_unit_test(test_encode_diff),
        cmocka_unit_test(test_reserve_no_alloc),
        cmocka_unit_test(test_reserve_and_isa),
        cmocka_unit_test(test_subnormals_flushed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
