/* flz_kernels_avx512.c: AVX-512 (F, BW, DQ, VL) twins of the codec's compute-bound kernels:
 * Philox words, the Walsh-Hadamard transform (and a forward rotation block in one pass fewer),
 * sign flips, quantisation and dequantisation. Each reproduces its portable twin bit for bit
 * (same operations in the same order, no fused multiply-add: -ffp-contract=off); shapes the wide
 * loops do not cover (short blocks, odd bit offsets, tails) go to the AVX2 kernels, which do the
 * same. The memory-bound copies (float32 put/get, the fused difference, axpy) gain nothing from
 * wider vectors and stay AVX2's; so does min/max over a quantisation block (a 16-lane version,
 * with its wider reduction, measured 0.34 cycles an element on blocks of 256 against 0.29).
 *
 * Why: on the development CPU a rot+q2+zstd update spent about 5.7 cycles an element in these
 * kernels at 8 lanes (philox 1.7, Hadamard 1.6, quantisation 1.3, flips 0.65, min/max 0.45):
 * as much CPU as the local training of a 60-sample client in fl_sim (bench/bench_compress,
 * bench/bench_sim with --up-codec rot+q2+zstd). */
#include "flz_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl")))

int flz_cpu_has_avx512(void)
{
    return flz_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
}

static const flz_kernels *avx2(void)
{
    return flz_kernels_avx2();
}

/* Sixteen Philox4x32-10 blocks at once, one per 32-bit lane, then transposed to stream order;
 * fewer than 64 words left go to the AVX2 kernel (8 blocks at once). */
AVX512 static void w_philox_words(uint32_t *out, const uint32_t key[2], uint32_t round,
                                  uint32_t client, uint32_t purpose, uint32_t block0,
                                  size_t nwords)
{
    const __m512i M0 = _mm512_set1_epi32((int)0xD2511F53u);
    const __m512i M1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t i = 0;
    for (; nwords - i >= 64; i += 64) {
        __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)(block0 + (uint32_t)(i / 4))), lane);
        __m512i c1 = _mm512_set1_epi32((int)round);
        __m512i c2 = _mm512_set1_epi32((int)client);
        __m512i c3 = _mm512_set1_epi32((int)purpose);
        uint32_t k0 = key[0], k1 = key[1];
        for (int r = 0; r < 10; r++) {
            /* 32x32 -> 64 products of the even lanes, then of the odd ones */
            const __m512i pe0 = _mm512_mul_epu32(c0, M0);
            const __m512i po0 = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), M0);
            const __m512i pe1 = _mm512_mul_epu32(c2, M1);
            const __m512i po1 = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), M1);
            const __m512i lo0 = _mm512_mask_mov_epi32(pe0, 0xAAAA, _mm512_slli_epi64(po0, 32));
            const __m512i hi0 = _mm512_mask_mov_epi32(_mm512_srli_epi64(pe0, 32), 0xAAAA, po0);
            const __m512i lo1 = _mm512_mask_mov_epi32(pe1, 0xAAAA, _mm512_slli_epi64(po1, 32));
            const __m512i hi1 = _mm512_mask_mov_epi32(_mm512_srli_epi64(pe1, 32), 0xAAAA, po1);
            /* hi ^ c ^ k in one ternary-logic op (0x96: three-way xor) */
            c0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32((int)k0), 0x96);
            c1 = lo1;
            c2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32((int)k1), 0x96);
            c3 = lo0;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        /* within each 128-bit lane: blocks 4k..4k+3 as rows (u0 holds block 4k, u1 4k+1, ...) */
        const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
        const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
        const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
        const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
        /* then blocks in order: [u0.k, u1.k, u2.k, u3.k] for k = 0..3 */
        const __m512i a01 = _mm512_shuffle_i32x4(u0, u1, 0x44);
        const __m512i a23 = _mm512_shuffle_i32x4(u2, u3, 0x44);
        const __m512i b01 = _mm512_shuffle_i32x4(u0, u1, 0xEE);
        const __m512i b23 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
        _mm512_storeu_si512(out + i, _mm512_shuffle_i32x4(a01, a23, 0x88));
        _mm512_storeu_si512(out + i + 16, _mm512_shuffle_i32x4(a01, a23, 0xDD));
        _mm512_storeu_si512(out + i + 32, _mm512_shuffle_i32x4(b01, b23, 0x88));
        _mm512_storeu_si512(out + i + 48, _mm512_shuffle_i32x4(b01, b23, 0xDD));
    }
    if (i < nwords)
        avx2()->philox_words(out + i, key, round, client, purpose, block0 + (uint32_t)(i / 4),
                             nwords - i);
}

/* Sixteen levels of x[0..16) with dithers from the 16-bit halves of dw[0..8): the portable
 * level_of, lane for lane. */
AVX512 static inline __m512i levels16(const float *x, const uint32_t *dw, __m512 lo, __m512 inv,
                                      __m512i L)
{
    const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x), lo), inv);
    const __m512i d = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)dw));
    const __m512i d2 = _mm512_or_si512(_mm512_slli_epi32(d, 1), _mm512_set1_epi32(1));
    const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(d2), _mm512_set1_ps(7.62939453125e-06f));
    const __m512 t = _mm512_add_ps(v, u);
    /* t >= 2^31 (and NaN) converts to 0x80000000, which the unsigned min turns into L */
    return _mm512_min_epu32(_mm512_cvttps_epi32(t), L);
}

/* Levels (each below 2^q) of 16 lanes as bytes, then packed q bits each, low level first:
 * 16 q / 8 bytes. */
AVX512 static inline void pack16(uint8_t *dst, __m512i lv, unsigned q)
{
    if (q == 1) {
        const __mmask16 m = _mm512_test_epi32_mask(lv, lv);
        memcpy(dst, &m, 2);
        return;
    }
    const __m128i b = _mm512_cvtepi32_epi8(lv);
    if (q == 8) {
        _mm_storeu_si128((__m128i *)dst, b);
    } else if (q == 4) { /* byte pairs (b0, b1) -> b0 | b1 << 4 */
        const __m128i p = _mm_maddubs_epi16(b, _mm_set1_epi16(0x1001));
        _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(p, p));
    } else { /* q == 2: (b0 + 4 b1) + 16 (b2 + 4 b3) */
        const __m128i p = _mm_maddubs_epi16(b, _mm_set1_epi16(0x0401));
        const __m128i w = _mm_madd_epi16(p, _mm_set1_epi32(0x00100001));
        const __m128i h = _mm_packus_epi32(w, w);
        const uint32_t word = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(h, h));
        memcpy(dst, &word, 4);
    }
}

AVX512 static void w_quant(uint8_t *dst, const float *x, size_t n, unsigned q, float lo,
                           float inv, const uint32_t *dw)
{
    const __m512 vlo = _mm512_set1_ps(lo), vinv = _mm512_set1_ps(inv);
    const __m512i L = _mm512_set1_epi32((int)((1u << q) - 1));
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        pack16(dst + i * q / 8, levels16(x + i, dw + i / 2, vlo, vinv, L), q);
    if (i < n)
        avx2()->quant(dst + i * q / 8, x + i, n - i, q, lo, inv, dw + i / 2);
}

/* The 16 levels (q bits each, low first) that start at src, as 32-bit lanes. */
AVX512 static inline __m512i unpack16(const uint8_t *src, unsigned q)
{
    if (q == 8)
        return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)src));
    if (q == 1) {
        uint16_t m;
        memcpy(&m, src, 2);
        return _mm512_maskz_mov_epi32(m, _mm512_set1_epi32(1));
    }
    if (q == 4) {
        const __m128i b = _mm_loadl_epi64((const __m128i *)src);
        const __m128i nib = _mm_set1_epi8(0x0f);
        const __m128i lo = _mm_and_si128(b, nib), hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
        return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
    }
    uint32_t word; /* q == 2 */
    memcpy(&word, src, 4);
    const __m512i sh = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)word), sh),
                            _mm512_set1_epi32(3));
}

AVX512 static void w_dequant(float *out, const uint8_t *src, size_t n, unsigned q, float lo,
                             float step)
{
    const __m512 vlo = _mm512_set1_ps(lo), vs = _mm512_set1_ps(step);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 lv = _mm512_cvtepi32_ps(unpack16(src + i * q / 8, q));
        _mm512_storeu_ps(out + i, _mm512_add_ps(vlo, _mm512_mul_ps(lv, vs)));
    }
    if (i < n)
        avx2()->dequant(out + i, src + i * q / 8, n - i, q, lo, step);
}

/* One in-vector stage: lanes with bit h of their index clear get a + b, the others a - b, where
 * a is the lane with the bit clear and b its partner s (as the portable loop: x[j] = a + b,
 * x[j + h] = a - b). */
#define STAGE(v, s, m) _mm512_mask_sub_ps(_mm512_add_ps(v, s), m, s, v)

/* Butterflies of one stage on two vectors: (a, b) -> (a + b, a - b). */
#define BFLY(a, b)                                                                             \
    do {                                                                                       \
        const __m512 t_ = _mm512_add_ps((a), (b));                                             \
        (b) = _mm512_sub_ps((a), (b));                                                         \
        (a) = t_;                                                                              \
    } while (0)

/* The 16 sign bits of elements [bit, bit + 16) of the little-endian bit string (bit a multiple
 * of 8). */
static inline __mmask16 sign_bits16(const uint32_t *words, size_t bit)
{
    uint16_t m;
    memcpy(&m, (const uint8_t *)words + (bit >> 3), 2);
    return m;
}

/* Stores v at x + j, times the scale on the last pass of a transform (as the portable
 * kernel's final loop). */
AVX512 static inline void emit(float *x, size_t j, __m512 v, int last, __m512 sc)
{
    _mm512_storeu_ps(x + j, last ? _mm512_mul_ps(v, sc) : v);
}

/* The 2^k vectors x[j + r h] (r < 2^k) through stages h, 2h, ... (in this order), then emitted. */
AVX512 static inline void radix2(float *x, size_t j, size_t h, int last, __m512 sc)
{
    __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + h);
    BFLY(a, b);
    emit(x, j, a, last, sc);
    emit(x, j + h, b, last, sc);
}

AVX512 static inline void radix4(float *x, size_t j, size_t h, int last, __m512 sc)
{
    __m512 v[4];
    for (int r = 0; r < 4; r++)
        v[r] = _mm512_loadu_ps(x + j + r * h);
    BFLY(v[0], v[1]);
    BFLY(v[2], v[3]);
    BFLY(v[0], v[2]);
    BFLY(v[1], v[3]);
    for (int r = 0; r < 4; r++)
        emit(x, j + r * h, v[r], last, sc);
}

AVX512 static inline void radix8(float *x, size_t j, size_t h, int last, __m512 sc)
{
    __m512 v[8];
    for (int r = 0; r < 8; r++)
        v[r] = _mm512_loadu_ps(x + j + r * h);
    for (int d = 1; d < 8; d <<= 1) /* stages h, 2h, 4h */
        for (int r = 0; r < 8; r++)
            if (!(r & d))
                BFLY(v[r], v[r + d]);
    for (int r = 0; r < 8; r++)
        emit(x, j + r * h, v[r], last, sc);
}

/* Stages h = 1, 2, 4, 8 of one vector of 16. */
AVX512 static inline __m512 stages16(__m512 v)
{
    v = STAGE(v, _mm512_permute_ps(v, 0xB1), 0xAAAA);
    v = STAGE(v, _mm512_permute_ps(v, 0x4E), 0xCCCC);
    v = STAGE(v, _mm512_shuffle_f32x4(v, v, 0xB1), 0xF0F0);
    return STAGE(v, _mm512_shuffle_f32x4(v, v, 0x4E), 0xFF00);
}

/* Stages h = 16 ... n/2 of x[0..n), n = 2^log2 >= 16: three (h, 2h, 4h) per pass over the block
 * while three are left, then two or one; the last pass applies the scale (none when n = 16). */
AVX512 static inline void wide_stages(float *x, unsigned log2, __m512 sc)
{
    const size_t n = (size_t)1 << log2;
    size_t h = 16;
    while (h < n) {
        const unsigned left = log2 - (unsigned)__builtin_ctzll(h);
        const unsigned k = left >= 3 ? 3 : left;
        const int last = h << k == n;
        for (size_t i = 0; i < n; i += h << k)
            for (size_t j = i; j < i + h; j += 16) {
                if (k == 3)
                    radix8(x, j, h, last, sc);
                else if (k == 2)
                    radix4(x, j, h, last, sc);
                else
                    radix2(x, j, h, last, sc);
            }
        h <<= k;
    }
}

AVX512 static void w_fwht(float *x, unsigned log2, float scale)
{
    if (log2 < 4) {
        avx2()->fwht(x, log2, scale);
        return;
    }
    const size_t n = (size_t)1 << log2;
    const __m512 sc = _mm512_set1_ps(scale);
    for (size_t i = 0; i < n; i += 16)
        emit(x, i, stages16(_mm512_loadu_ps(x + i)), n == 16, sc);
    wide_stages(x, log2, sc);
}

/* Sign flips, 16 elements a step, their 16 bits read as one mask (two bytes from the bit
 * string); a bit offset that is not a multiple of 8 goes to the AVX2 kernel, which hands it to
 * the portable one. */
AVX512 static int w_flip(float *dst, const float *src, size_t n, const uint32_t *words,
                         size_t bitoff)
{
    if ((bitoff & 7) || n < 16)
        return avx2()->flip(dst, src, n, words, bitoff);
    const uint8_t *bytes = (const uint8_t *)words; /* little-endian bit string */
    const __m512i sb = _mm512_set1_epi32((int)0x80000000u);
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    __mmask16 bad = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint16_t m;
        memcpy(&m, bytes + ((bitoff + i) >> 3), 2);
        const __m512i s = _mm512_loadu_si512((const void *)(src + i));
        const __m512i v = _mm512_mask_xor_epi32(s, m, s, sb);
        bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, e), e);
        _mm512_storeu_si512((void *)(dst + i), v);
    }
    int ok = bad == 0;
    if (i < n)
        ok &= avx2()->flip(dst + i, src + i, n - i, words, bitoff + i);
    return ok;
}

/* A forward rotation block in one pass fewer: the difference and the sign flips ride on the
 * first pass of the transform (the same operations on the same values as a - b, flip, fwht). */
AVX512 static void w_rot_fwd(float *dst, const float *a, const float *b, unsigned log2,
                             float scale, const uint32_t *words, size_t bitoff)
{
    const size_t n = (size_t)1 << log2;
    if (log2 < 4 || (bitoff & 7)) {
        flz_rot_fwd_composed(w_flip, w_fwht, dst, a, b, log2, scale, words, bitoff);
        return;
    }
    const __m512 sc = _mm512_set1_ps(scale);
    const __m512i sb = _mm512_set1_epi32((int)0x80000000u);
    for (size_t i = 0; i < n; i += 16) {
        __m512 v = _mm512_loadu_ps(a + i);
        if (b)
            v = _mm512_sub_ps(v, _mm512_loadu_ps(b + i));
        const __m512i s = _mm512_castps_si512(v);
        v = _mm512_castsi512_ps(_mm512_mask_xor_epi32(s, sign_bits16(words, bitoff + i), s, sb));
        emit(dst, i, stages16(v), n == 16, sc);
    }
    wide_stages(dst, log2, sc);
}

/* A 16-lane mask's set bits. Through _cvtmask16_u32, not __builtin_popcount(mask): GCC 12.2 under
 * -fsanitize=thread spilled the mask with a 16-bit kmovw and counted it with a 32-bit popcnt
 * from the stack slot, so stack garbage in the upper half was counted as kept lanes (a sub0.5
 * encode claimed more values than it had; test_compress failed in that build). */
#define MASK16_COUNT(k) ((unsigned)__builtin_popcount(_cvtmask16_u32(k)))

/* Subsampling, encode: the kept values of 16 lanes compressed into the low lanes of a register,
 * stored whole at out + m: m <= i, so the store ends within out[0..n), and the lanes past the
 * kept ones are overwritten by the next store or lie past the result. */
AVX512 static size_t w_sub_keep(float *out, const float *x, size_t n, const uint32_t *w,
                                uint32_t T, int *finite)
{
    const __m512i vT = _mm512_set1_epi32((int)T);
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    __mmask16 bad = 0;
    size_t m = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i xi = _mm512_loadu_si512((const void *)(x + i));
        bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(xi, e), e);
        const __mmask16 keep =
            _mm512_cmplt_epu32_mask(_mm512_loadu_si512((const void *)(w + i)), vT);
        _mm512_storeu_si512((void *)(out + m), _mm512_maskz_compress_epi32(keep, xi));
        m += MASK16_COUNT(keep);
    }
    int fin = bad == 0;
    if (i < n) {
        int f2;
        m += flz_sub_keep_c(out + m, x + i, n - i, w + i, T, &f2);
        fin &= f2;
    }
    *finite = fin;
    return m;
}

/* Subsampling, decode: the next values expanded into the kept lanes of 16 (zeros elsewhere),
 * times 1/p; a vector that would read past the m values ends the walk (0). */
AVX512 static int w_sub_fill(float *out, size_t n, const float *v, size_t m, size_t *j,
                             const uint32_t *w, uint32_t T, float inv_p)
{
    const __m512i vT = _mm512_set1_epi32((int)T);
    const __m512 vp = _mm512_set1_ps(inv_p);
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    __mmask16 bad = 0;
    size_t k = *j, i = 0;
    for (; i + 16 <= n; i += 16) {
        const __mmask16 keep =
            _mm512_cmplt_epu32_mask(_mm512_loadu_si512((const void *)(w + i)), vT);
        const unsigned cnt = MASK16_COUNT(keep);
        if (k + cnt > m)
            return 0;
        /* kept lanes: v[k] * inv_p, as the portable kernel; dropped ones: +0.0f (0 * inv_p
         * is +0.0f for the finite, positive inv_p) */
        const __m512 x = _mm512_mul_ps(_mm512_maskz_expandloadu_ps(keep, v + k), vp);
        bad |= _mm512_mask_cmpeq_epi32_mask(keep, _mm512_and_si512(_mm512_castps_si512(x), e), e);
        _mm512_storeu_ps(out + i, x);
        k += cnt;
    }
    if (bad)
        return 0;
    *j = k;
    if (i < n)
        return flz_sub_fill_c(out + i, n - i, v, m, j, w + i, T, inv_p);
    return 1;
}

void flz_kernels_avx512_over(flz_kernels *k)
{
    k->philox_words = w_philox_words;
    k->quant = w_quant;
    k->dequant = w_dequant;
    k->fwht = w_fwht;
    k->flip = w_flip;
    k->rot_fwd = w_rot_fwd;
    k->sub_keep = w_sub_keep;
    k->sub_fill = w_sub_fill;
}

#else

int flz_cpu_has_avx512(void)
{
    return 0;
}

void flz_kernels_avx512_over(flz_kernels *k)
{
    (void)k;
}

#endif
