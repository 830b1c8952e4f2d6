/* flz_internal.h: what the compress/ sources share and nobody else sees: constants, the kernel
 * table (one per instruction set; the portable one is the reference, the others must give the
 * same bits), and the bit-exact scalar helpers both use. */
#ifndef FLZ_INTERNAL_H
#define FLZ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flz.h"

#define FLZ_MIN_FRAC 1e-7
#define FLZ_ZSTD_MIN_LEVEL (-7)
#define FLZ_ZSTD_MAX_LEVEL 19

/* Where the AVX2 kernel's put_f32_diff (flz_kernels_avx2.c; the AVX-512 table shares it) writes
 * with non-temporal stores: from 64 KB of output (an update's chunk is 256 KB by default,
 * codec.chunk_elems). Such a payload is written once and read later by
 * another thread (fl_sim's server core) or copied out by libzmq's I/O thread, not read back here;
 * ordinary stores first read each line for ownership, from wherever the previous payload's
 * lines were left (on the other core, after its fold). Measured with bench_sim (sim/README,
 * "Benchmark"): the delta encoding about halved on a host where its stores stalled, neutral on
 * one where they did not. A smaller output stays on ordinary stores: it may well be read soon
 * from this core's cache. Same bytes either way. */
#define FLZ_PUT_DIFF_NT_MIN (16384u)

/* Hot loops of the codec. All lengths are element counts; byte buffers need no alignment. */
typedef struct flz_kernels {
    /* out[0..nwords) = the Philox4x32-10 words of stream (key, round, client, purpose) starting at
     * block `block0` (word 4*block0), i.e. what fl_rng_fill_u32 gives after seeking there.
     * nwords is a multiple of 4. */
    void (*philox_words)(uint32_t *out, const uint32_t key[2], uint32_t round, uint32_t client,
                         uint32_t purpose, uint32_t block0, size_t nwords);
    /* lo/hi = min/max of x[0..n), n >= 1. Returns 0 if some x is not finite, else 1. */
    int (*minmax)(float *lo, float *hi, const float *x, size_t n);
    /* Packs levels clamp(trunc((x - lo) * inv + dither_i), 0, 2^q - 1) of x[0..n) to dst,
     * q bits each, low bits first; dither_i = (2 d_i + 1) * 2^-17 with d_i the 16-bit halves of
     * dw (low half first). Writes ceil(n q / 8) bytes, unused high bits zero. */
    void (*quant)(uint8_t *dst, const float *x, size_t n, unsigned q, float lo, float inv,
                  const uint32_t *dw);
    /* out[i] = lo + level_i * step for the n levels packed in src. */
    void (*dequant)(float *out, const uint8_t *src, size_t n, unsigned q, float lo, float step);
    /* In-place Walsh-Hadamard transform of x[0..2^log2), log2 >= 1, then x[i] *= scale:
     * butterflies (a, b) -> (a + b, a - b), stage h = 1, 2, 4, ... in this order. */
    void (*fwht)(float *x, unsigned log2, float scale);
    /* dst[i] = -src[i] where bit (bitoff + i) of the little-endian bit string `words` is set,
     * else src[i] (dst == src allowed). Returns 0 if some output is not finite, else 1. */
    int (*flip)(float *dst, const float *src, size_t n, const uint32_t *words, size_t bitoff);
    /* float -> binary16 / bfloat16 (round to nearest even), stored little-endian. Returns 0 if an
     * output is Inf or NaN (input not finite or outside the format's range), else 1. */
    int (*to_f16)(uint8_t *dst, const float *x, size_t n);
    int (*to_bf16)(uint8_t *dst, const float *x, size_t n);
    /* Inverse casts. Return 0 if an input is Inf or NaN (out then unspecified), else 1. */
    int (*from_f16)(float *out, const uint8_t *src, size_t n);
    int (*from_bf16)(float *out, const uint8_t *src, size_t n);
    /* Copy float32 (little-endian bytes) with a finiteness check: 1 if all finite. */
    int (*put_f32)(uint8_t *dst, const float *x, size_t n);
    /* put_f32 of a[i] - b[i], in one pass (flz_encode_diff). */
    int (*put_f32_diff)(uint8_t *dst, const float *a, const float *b, size_t n);
    int (*get_f32)(float *out, const uint8_t *src, size_t n);
    /* y[i] += a * x[i] (multiply then add, no fused rounding). */
    void (*axpy)(float *y, const float *x, size_t n, float a);
    /* A forward rotation block of 2^log2 (log2 >= 0): dst = fwht(flip(a - b)) * scale (flip(a)
     * when b is NULL; dst may be a), bit for bit flz_rot_fwd_composed of the set's own flip and
     * fwht (the portable set's is just that). The inverse stays fwht then flip: folding the flips
     * into the transform's last pass measured no faster (0.82 against 0.79 cycles an element,
     * blocks of 1024, AVX-512). */
    void (*rot_fwd)(float *dst, const float *a, const float *b, unsigned log2, float scale,
                    const uint32_t *words, size_t bitoff);
    /* Subsampling, encode: copies the x[i] with w[i] < T to out[0..m), in order, and returns m
     * (out has room for n); *finite = 0 if some x[i], kept or not, is not finite, else 1. */
    size_t (*sub_keep)(float *out, const float *x, size_t n, const uint32_t *w, uint32_t T,
                       int *finite);
    /* Subsampling, decode: out[i] = v[j++] * inv_p where w[i] < T, else +0.0f, for i < n, with
     * *j the next value (v holds m; v[m] is readable and 0). 0 if more coordinates are kept
     * than values are left (out and *j then unspecified) or a kept output is not finite; else 1,
     * *j advanced. */
    int (*sub_fill)(float *out, size_t n, const float *v, size_t m, size_t *j, const uint32_t *w,
                    uint32_t T, float inv_p);
} flz_kernels;

/* A forward rotation block composed of a kernel set's flip and fwht: dst = fwht(flip(a - b))
 * (flip(a) when b is NULL), what every rot_fwd must equal: the portable rot_fwd, and the wide
 * ones' shapes that their fused loops do not cover. */
static inline void flz_rot_fwd_composed(int (*flip)(float *, const float *, size_t,
                                                    const uint32_t *, size_t),
                                        void (*fwht)(float *, unsigned, float), float *dst,
                                        const float *a, const float *b, unsigned log2,
                                        float scale, const uint32_t *words, size_t bitoff)
{
    const size_t n = (size_t)1 << log2;
    if (b) {
        for (size_t i = 0; i < n; i++)
            dst[i] = a[i] - b[i];
        a = dst;
    }
    flip(dst, a, n, words, bitoff);
    if (log2 >= 1)
        fwht(dst, log2, scale);
}

extern const flz_kernels flz_kernels_portable;
/* The portable subsampling walks (flz_kernels_portable's), which the AVX2 set uses as they are
 * (nothing to gain without a compress instruction) and the AVX-512 ones for their tails. */
size_t flz_sub_keep_c(float *out, const float *x, size_t n, const uint32_t *w, uint32_t T,
                      int *finite);
int flz_sub_fill_c(float *out, size_t n, const float *v, size_t m, size_t *j, const uint32_t *w,
                   uint32_t T, float inv_p);
/* NULL when not built for x86-64; usable only if flz_cpu_has_avx2(). */
const flz_kernels *flz_kernels_avx2(void);
int flz_cpu_has_avx2(void);
/* The AVX-512 kernels (F, BW, DQ, VL) over a copy of the AVX2 table: they replace the
 * compute-bound entries and keep AVX2's elsewhere. Usable only if flz_cpu_has_avx512(). */
void flz_kernels_avx512_over(flz_kernels *k);
int flz_cpu_has_avx512(void);

static inline uint32_t flz_f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float flz_u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline int flz_finite(float f)
{
    return (flz_f2u(f) & 0x7f800000u) != 0x7f800000u;
}

/* IEEE binary16 <-> float32, round to nearest even (what F16C's vcvtps2ph imm 0 does). */
static inline uint16_t flz_half_from_float(float f)
{
    const uint32_t u = flz_f2u(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* Inf or NaN: NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0));
    if (a >= 0x477ff000u) /* rounds to >= 65536: overflow to Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: subnormal half or zero */
        if (a < 0x33000000u) /* below 2^-25: rounds to zero (2^-25 itself ties to even 0) */
            return (uint16_t)sign;
        const uint32_t e = a >> 23;              /* 102..112 */
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;
        const unsigned sh = 126 - e;             /* 14..24: m >> sh = value in units of 2^-24 */
        uint32_t h = m >> sh;
        const uint32_t rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((a >> 13) - (112u << 10)); /* rebias exponent 127 -> 15 */
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

static inline float flz_float_from_half(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24, exact in float */
        const float v = (float)m * 5.9604644775390625e-8f;
        return flz_u2f(flz_f2u(v) | sign);
    }
    if (e == 31)
        return flz_u2f(sign | 0x7f800000u | (m << 13));
    return flz_u2f(sign | ((e + 112u) << 23) | (m << 13));
}

static inline uint16_t flz_bf16_from_float(float f)
{
    const uint32_t u = flz_f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float flz_float_from_bf16(uint16_t b)
{
    return flz_u2f((uint32_t)b << 16);
}

static inline void flz_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t flz_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
