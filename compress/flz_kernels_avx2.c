/* flz_kernels_avx2.c: AVX2/FMA/F16C kernels, compiled with per-function target attributes and
 * picked at runtime (flz_cpu_has_avx2). Each one reproduces its portable twin bit for bit (same
 * operations in the same order, no fused multiply-add); tails fall back to the portable code. */
#include "flz_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

#include "fl_rng.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))

int flz_cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C))
        return 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Eight Philox4x32-10 blocks at once, one per 32-bit lane, then transposed to stream order. */
AVX2 static void a_philox_words(uint32_t *out, const uint32_t key[2], uint32_t round,
                                uint32_t client, uint32_t purpose, uint32_t block0, size_t nwords)
{
    const __m256i M0 = _mm256_set1_epi32((int)0xD2511F53u);
    const __m256i M1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    size_t i = 0;
    for (; nwords - i >= 32; i += 32) {
        __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(block0 + (uint32_t)(i / 4))), lane);
        __m256i c1 = _mm256_set1_epi32((int)round);
        __m256i c2 = _mm256_set1_epi32((int)client);
        __m256i c3 = _mm256_set1_epi32((int)purpose);
        uint32_t k0 = key[0], k1 = key[1];
        for (int r = 0; r < 10; r++) {
            const __m256i pe0 = _mm256_mul_epu32(c0, M0);
            const __m256i po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), M0);
            const __m256i pe1 = _mm256_mul_epu32(c2, M1);
            const __m256i po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), M1);
            const __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
            const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
            const __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);
            const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
            c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
            c1 = lo1;
            c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
            c3 = lo0;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
        const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
        const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
        const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
        __m256i *o = (__m256i *)(out + i);
        _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
        _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
        _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
        _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
    }
    if (i < nwords)
        flz_kernels_portable.philox_words(out + i, key, round, client, purpose,
                                          block0 + (uint32_t)(i / 4), nwords - i);
}

AVX2 static inline int any_nonfinite(__m256i bits)
{
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    return _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_and_si256(bits, e), e)) != 0;
}

AVX2 static int a_minmax(float *lo, float *hi, const float *x, size_t n)
{
    if (n < 8)
        return flz_kernels_portable.minmax(lo, hi, x, n);
    __m256 l = _mm256_loadu_ps(x), h = l;
    __m256i bad = _mm256_setzero_si256();
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        l = _mm256_min_ps(l, v);
        h = _mm256_max_ps(h, v);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), e), e));
    }
    float lv[8], hv[8];
    _mm256_storeu_ps(lv, l);
    _mm256_storeu_ps(hv, h);
    float a = lv[0], b = hv[0];
    for (int j = 1; j < 8; j++) {
        a = lv[j] < a ? lv[j] : a;
        b = hv[j] > b ? hv[j] : b;
    }
    int ok = _mm256_movemask_epi8(bad) == 0;
    for (; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
        ok &= flz_finite(x[i]);
    }
    *lo = a == 0.0f ? 0.0f : a; /* +0.0f whatever the rounding mode (p_minmax) */
    *hi = b == 0.0f ? 0.0f : b;
    return ok;
}

/* The q bytes (q = 1, 2 or 4) that hold 8 levels, low level first (x86 is little-endian). A
 * memcpy of a constant size each: one of a variable size is a library call per 8 levels (it was:
 * 14% of a bench_sim round with rot+q2 uplinks went to dequantisation). */
static inline void put_levels(uint8_t *dst, uint32_t word, unsigned q)
{
    if (q == 2) {
        const uint16_t h = (uint16_t)word;
        memcpy(dst, &h, 2);
    } else if (q == 4) {
        memcpy(dst, &word, 4);
    } else {
        dst[0] = (uint8_t)word;
    }
}

static inline uint32_t get_levels(const uint8_t *src, unsigned q)
{
    if (q == 2) {
        uint16_t h;
        memcpy(&h, src, 2);
        return h;
    }
    if (q == 4) {
        uint32_t w;
        memcpy(&w, src, 4);
        return w;
    }
    return src[0];
}

/* Eight levels of x[0..8) with dithers from the 16-bit halves of dw[0..4). */
AVX2 static inline __m256i levels8(const float *x, const uint32_t *dw, __m256 lo, __m256 inv,
                                   __m256i L)
{
    const __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x), lo), inv);
    const __m256i d = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)dw));
    const __m256i d2 = _mm256_or_si256(_mm256_slli_epi32(d, 1), _mm256_set1_epi32(1));
    const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(d2), _mm256_set1_ps(7.62939453125e-06f));
    const __m256 t = _mm256_add_ps(v, u);
    /* t >= 2^31 converts to 0x80000000, which the unsigned min turns into L, as in portable */
    return _mm256_min_epu32(_mm256_cvttps_epi32(t), L);
}

AVX2 static void a_quant(uint8_t *dst, const float *x, size_t n, unsigned q, float lo, float inv,
                         const uint32_t *dw)
{
    const __m256 vlo = _mm256_set1_ps(lo), vinv = _mm256_set1_ps(inv);
    const __m256i L = _mm256_set1_epi32((int)((1u << q) - 1));
    size_t i = 0;
    if (q == 8) {
        const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (; i + 32 <= n; i += 32) {
            const __m256i a = levels8(x + i, dw + i / 2, vlo, vinv, L);
            const __m256i b = levels8(x + i + 8, dw + i / 2 + 4, vlo, vinv, L);
            const __m256i c = levels8(x + i + 16, dw + i / 2 + 8, vlo, vinv, L);
            const __m256i d = levels8(x + i + 24, dw + i / 2 + 12, vlo, vinv, L);
            const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
            const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), perm);
            _mm256_storeu_si256((__m256i *)(dst + i), bytes);
        }
    } else {
        const __m256i sh = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                              _mm256_set1_epi32((int)q));
        for (; i + 8 <= n; i += 8) {
            const __m256i lv = _mm256_sllv_epi32(levels8(x + i, dw + i / 2, vlo, vinv, L), sh);
            __m128i o = _mm_or_si128(_mm256_castsi256_si128(lv), _mm256_extracti128_si256(lv, 1));
            o = _mm_or_si128(o, _mm_shuffle_epi32(o, 0x4E));
            o = _mm_or_si128(o, _mm_shuffle_epi32(o, 0xB1));
            put_levels(dst + i * q / 8, (uint32_t)_mm_cvtsi128_si32(o), q);
        }
    }
    if (i < n)
        flz_kernels_portable.quant(dst + i * q / 8, x + i, n - i, q, lo, inv, dw + i / 2);
}

AVX2 static void a_dequant(float *out, const uint8_t *src, size_t n, unsigned q, float lo,
                           float step)
{
    const __m256 vlo = _mm256_set1_ps(lo), vs = _mm256_set1_ps(step);
    size_t i = 0;
    if (q == 8) {
        for (; i + 8 <= n; i += 8) {
            const __m256i lv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src + i)));
            _mm256_storeu_ps(out + i, _mm256_add_ps(vlo, _mm256_mul_ps(_mm256_cvtepi32_ps(lv), vs)));
        }
    } else {
        const __m256i sh = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                              _mm256_set1_epi32((int)q));
        const __m256i mask = _mm256_set1_epi32((int)((1u << q) - 1));
        for (; i + 8 <= n; i += 8) {
            const uint32_t word = get_levels(src + i * q / 8, q);
            const __m256i lv =
                _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)word), sh), mask);
            _mm256_storeu_ps(out + i, _mm256_add_ps(vlo, _mm256_mul_ps(_mm256_cvtepi32_ps(lv), vs)));
        }
    }
    if (i < n)
        flz_kernels_portable.dequant(out + i, src + i * q / 8, n - i, q, lo, step);
}

/* Stages h = 1, 2, 4 of one vector of 8: each output is the same a + b or a - b as in the
 * portable loop, so the bits agree. */
AVX2 static inline __m256 stages8(__m256 v)
{
    __m256 s = _mm256_permute_ps(v, 0xB1);
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xAA);
    s = _mm256_permute_ps(v, 0x4E);
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xCC);
    s = _mm256_permute2f128_ps(v, v, 1);
    return _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xF0);
}

/* (v[r], v[r + d]) -> (v[r] + v[r + d], v[r] - v[r + d]) for the r < R with bit d clear: stages
 * d = 1, 2, ... < R of R vectors h apart in memory. */
#define RADIX(R)                                                                              \
    do {                                                                                      \
        for (int r = 0; r < (R); r++)                                                         \
            v[r] = _mm256_loadu_ps(x + j + r * h);                                            \
        for (int d = 1; d < (R); d <<= 1)                                                     \
            for (int r = 0; r < (R); r++)                                                     \
                if (!(r & d)) {                                                               \
                    const __m256 t_ = _mm256_add_ps(v[r], v[r + d]);                          \
                    v[r + d] = _mm256_sub_ps(v[r], v[r + d]);                                 \
                    v[r] = t_;                                                                \
                }                                                                             \
        for (int r = 0; r < (R); r++)                                                         \
            _mm256_storeu_ps(x + j + r * h, last ? _mm256_mul_ps(v[r], vs) : v[r]);           \
    } while (0)

/* Stages h = 8 ... n/2 of x[0..n), n = 2^log2 >= 8: three (h, 2h, 4h) per pass over the block
 * while three are left, then two or one; the scale rides on the last pass. Three a pass rather
 * than two: 1.00 cycles an element for a block of 1024 against 1.18-1.21. */
AVX2 static inline void stages_rest(float *x, unsigned log2, __m256 vs)
{
    const size_t n = (size_t)1 << log2;
    size_t h = 8;
    while (h < n) {
        const unsigned left = log2 - (unsigned)__builtin_ctzll(h);
        const unsigned k = left >= 3 ? 3 : left;
        const int last = h << k == n;
        for (size_t i = 0; i < n; i += h << k)
            for (size_t j = i; j < i + h; j += 8) {
                __m256 v[8];
                if (k == 3)
                    RADIX(8);
                else if (k == 2)
                    RADIX(4);
                else
                    RADIX(2);
            }
        h <<= k;
    }
}
#undef RADIX

AVX2 static void a_fwht(float *x, unsigned log2, float scale)
{
    if (log2 < 3) {
        flz_kernels_portable.fwht(x, log2, scale);
        return;
    }
    const size_t n = (size_t)1 << log2;
    const __m256 vs = _mm256_set1_ps(scale);
    for (size_t i = 0; i < n; i += 8) {
        __m256 v = stages8(_mm256_loadu_ps(x + i));
        if (n == 8)
            v = _mm256_mul_ps(v, vs);
        _mm256_storeu_ps(x + i, v);
    }
    stages_rest(x, log2, vs);
}

AVX2 static int a_flip(float *dst, const float *src, size_t n, const uint32_t *words, size_t bitoff)
{
    if ((bitoff & 7) || n < 8)
        return flz_kernels_portable.flip(dst, src, n, words, bitoff);
    const uint8_t *bytes = (const uint8_t *)words; /* little-endian bit string */
    const __m256i sh = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    const __m256i sb = _mm256_set1_epi32((int)0x80000000u);
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i b = _mm256_set1_epi32(bytes[(bitoff + i) >> 3]);
        const __m256i m = _mm256_and_si256(_mm256_sllv_epi32(b, sh), sb);
        const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + i)), m);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(v, e), e));
        _mm256_storeu_si256((__m256i *)(dst + i), v);
    }
    int ok = _mm256_movemask_epi8(bad) == 0;
    if (i < n)
        ok &= flz_kernels_portable.flip(dst + i, src + i, n - i, words, bitoff + i);
    return ok;
}

/* A forward rotation block with the difference and the sign flips on the transform's first
 * pass (the same operations on the same values as a - b, flip, fwht; see flz_internal.h). */
AVX2 static void a_rot_fwd(float *dst, const float *a, const float *b, unsigned log2, float scale,
                           const uint32_t *words, size_t bitoff)
{
    const size_t n = (size_t)1 << log2;
    if (log2 < 3 || (bitoff & 7)) {
        flz_rot_fwd_composed(a_flip, a_fwht, dst, a, b, log2, scale, words, bitoff);
        return;
    }
    const uint8_t *bytes = (const uint8_t *)words;
    const __m256i sh = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    const __m256i sb = _mm256_set1_epi32((int)0x80000000u);
    const __m256 vs = _mm256_set1_ps(scale);
    for (size_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(a + i);
        if (b)
            v = _mm256_sub_ps(v, _mm256_loadu_ps(b + i));
        const __m256i bt = _mm256_set1_epi32(bytes[(bitoff + i) >> 3]);
        const __m256i m = _mm256_and_si256(_mm256_sllv_epi32(bt, sh), sb);
        v = stages8(_mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(v), m)));
        if (n == 8)
            v = _mm256_mul_ps(v, vs);
        _mm256_storeu_ps(dst + i, v);
    }
    stages_rest(dst, log2, vs);
}

AVX2 static int a_to_f16(uint8_t *dst, const float *x, size_t n)
{
    const __m128i e = _mm_set1_epi16(0x7c00);
    __m128i bad = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, e), e));
        _mm_storeu_si128((__m128i *)(dst + 2 * i), h);
    }
    int ok = _mm_movemask_epi8(bad) == 0;
    if (i < n)
        ok &= flz_kernels_portable.to_f16(dst + 2 * i, x + i, n - i);
    return ok;
}

AVX2 static int a_from_f16(float *out, const uint8_t *src, size_t n)
{
    const __m128i e = _mm_set1_epi16(0x7c00);
    __m128i bad = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, e), e));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    int ok = _mm_movemask_epi8(bad) == 0;
    if (i < n)
        ok &= flz_kernels_portable.from_f16(out + i, src + 2 * i, n - i);
    return ok;
}

AVX2 static int a_to_bf16(uint8_t *dst, const float *x, size_t n)
{
    const __m256i r = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i e = _mm256_set1_epi16(0x7f80), ef = _mm256_set1_epi32(0x7f800000);
    __m256i bad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i b = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8));
        /* A NaN or an infinity in: refused as the portable kernel refuses it. The output's
         * check below does not see every one: the rounding add wraps a NaN whose bits are
         * 0x7fff8000 and up (0xffffffff too) to a bf16 of +-0 (until 2026-12-07 such a NaN was
         * sent as 0 on AVX2 and AVX-512 machines, and refused on others). */
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(a, ef), ef));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(b, ef), ef));
        a = _mm256_srli_epi32(
            _mm256_add_epi32(_mm256_add_epi32(a, r), _mm256_and_si256(_mm256_srli_epi32(a, 16), one)), 16);
        b = _mm256_srli_epi32(
            _mm256_add_epi32(_mm256_add_epi32(b, r), _mm256_and_si256(_mm256_srli_epi32(b, 16), one)), 16);
        const __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi16(_mm256_and_si256(h, e), e));
        _mm256_storeu_si256((__m256i *)(dst + 2 * i), h);
    }
    int ok = _mm256_movemask_epi8(bad) == 0;
    if (i < n)
        ok &= flz_kernels_portable.to_bf16(dst + 2 * i, x + i, n - i);
    return ok;
}

AVX2 static int a_from_bf16(float *out, const uint8_t *src, size_t n)
{
    const __m128i e = _mm_set1_epi16(0x7f80);
    __m128i bad = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, e), e));
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    int ok = _mm_movemask_epi8(bad) == 0;
    if (i < n)
        ok &= flz_kernels_portable.from_bf16(out + i, src + 2 * i, n - i);
    return ok;
}

AVX2 static int a_put_f32(uint8_t *dst, const float *x, size_t n)
{
    int bad = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
        bad |= any_nonfinite(v);
        _mm256_storeu_si256((__m256i *)(dst + 4 * i), v);
    }
    int ok = !bad;
    if (i < n)
        ok &= flz_kernels_portable.put_f32(dst + 4 * i, x + i, n - i);
    return ok;
}

/* The bits of a[0..8) - b[0..8); *bad set if one is not finite. */
AVX2 static inline __m256i diff8(const float *a, const float *b, int *bad)
{
    const __m256i v = _mm256_castps_si256(_mm256_sub_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b)));
    *bad |= any_nonfinite(v);
    return v;
}

AVX2 static int a_put_f32_diff(uint8_t *dst, const float *a, const float *b, size_t n)
{
    int bad = 0;
    size_t i = 0;
    if (n >= FLZ_PUT_DIFF_NT_MIN && ((uintptr_t)dst & 3) == 0) {
        const size_t head = ((32 - ((uintptr_t)dst & 31)) & 31) / 4; /* to a 32-byte boundary */
        bad |= !flz_kernels_portable.put_f32_diff(dst, a, b, head);
        for (i = head; i + 8 <= n; i += 8)
            _mm256_stream_si256((__m256i *)(dst + 4 * i), diff8(a + i, b + i, &bad));
        _mm_sfence(); /* the streamed lines are ordered before whatever hands the payload on */
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_si256((__m256i *)(dst + 4 * i), diff8(a + i, b + i, &bad));
    int ok = !bad;
    if (i < n)
        ok &= flz_kernels_portable.put_f32_diff(dst + 4 * i, a + i, b + i, n - i);
    return ok;
}

AVX2 static int a_get_f32(float *out, const uint8_t *src, size_t n)
{
    int bad = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(src + 4 * i));
        bad |= any_nonfinite(v);
        _mm256_storeu_si256((__m256i *)(out + i), v);
    }
    int ok = !bad;
    if (i < n)
        ok &= flz_kernels_portable.get_f32(out + i, src + 4 * i, n - i);
    return ok;
}

AVX2 static void a_axpy(float *y, const float *x, size_t n, float a)
{
    const __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i),
                                              _mm256_mul_ps(va, _mm256_loadu_ps(x + i))));
    for (; i < n; i++)
        y[i] += a * x[i];
}

static const flz_kernels avx2_kernels = {
    .philox_words = a_philox_words,
    .minmax = a_minmax,
    .quant = a_quant,
    .dequant = a_dequant,
    .fwht = a_fwht,
    .flip = a_flip,
    .to_f16 = a_to_f16,
    .to_bf16 = a_to_bf16,
    .from_f16 = a_from_f16,
    .from_bf16 = a_from_bf16,
    .put_f32 = a_put_f32,
    .put_f32_diff = a_put_f32_diff,
    .get_f32 = a_get_f32,
    .axpy = a_axpy,
    .rot_fwd = a_rot_fwd,
    .sub_keep = flz_sub_keep_c,
    .sub_fill = flz_sub_fill_c,
};

const flz_kernels *flz_kernels_avx2(void)
{
    return &avx2_kernels;
}

#else

int flz_cpu_has_avx2(void)
{
    return 0;
}

const flz_kernels *flz_kernels_avx2(void)
{
    return NULL;
}

#endif
