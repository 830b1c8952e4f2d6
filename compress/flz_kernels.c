/* flz_kernels.c: the portable (reference) kernels. Written so that the AVX2 ones can reproduce
 * them bit for bit: no fused multiply-add, the same operation order, exact min/max. */
#include <math.h>

#include "fl_rng.h"
#include "flz_internal.h"

static void p_philox_words(uint32_t *out, const uint32_t key[2], uint32_t round, uint32_t client,
                           uint32_t purpose, uint32_t block0, size_t nwords)
{
    uint32_t ctr[4] = {block0, round, client, purpose};
    for (size_t i = 0; i < nwords; i += 4) {
        fl_philox4x32(key, ctr, out + i);
        ctr[0]++;
    }
}

static int p_minmax(float *lo, float *hi, const float *x, size_t n)
{
    float l = x[0], h = x[0];
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        l = v < l ? v : l;
        h = v > h ? v : h;
        bad |= (flz_f2u(v) & 0x7f800000u) == 0x7f800000u;
    }
    /* +0.0f canonicalises -0.0f, whose choice over +0.0f would depend on the scan order */
    *lo = l + 0.0f;
    *hi = h + 0.0f;
    return !bad;
}

static inline uint32_t level_of(float x, float lo, float inv, uint32_t d, uint32_t L)
{
    const float v = (x - lo) * inv;
    const float t = v + (float)(2 * d + 1) * 7.62939453125e-06f; /* 2^-17 */
    /* v >= 0, so truncation is floor; the clamp guards t >= 2^31 (huge inv) as well */
    const uint32_t lv = t < 2147483648.0f ? (uint32_t)t : L;
    return lv < L ? lv : L;
}

static void p_quant(uint8_t *dst, const float *x, size_t n, unsigned q, float lo, float inv,
                    const uint32_t *dw)
{
    const uint32_t L = (1u << q) - 1;
    const unsigned per = 8 / q;
    const size_t nbytes = (n * q + 7) / 8;
    for (size_t b = 0; b < nbytes; b++) {
        uint32_t byte = 0;
        for (unsigned j = 0; j < per; j++) {
            const size_t i = b * per + j;
            if (i >= n)
                break;
            const uint32_t d = (dw[i >> 1] >> ((i & 1) * 16)) & 0xffffu;
            byte |= level_of(x[i], lo, inv, d, L) << (j * q);
        }
        dst[b] = (uint8_t)byte;
    }
}

static void p_dequant(float *out, const uint8_t *src, size_t n, unsigned q, float lo, float step)
{
    const uint32_t mask = (1u << q) - 1;
    const unsigned per = 8 / q;
    for (size_t i = 0; i < n; i++) {
        const uint32_t lv = (src[i / per] >> ((i % per) * q)) & mask;
        out[i] = lo + (float)lv * step;
    }
}

static void p_fwht(float *x, unsigned log2, float scale)
{
    const size_t n = (size_t)1 << log2;
    for (size_t h = 1; h < n; h <<= 1)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                const float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
}

static int p_flip(float *dst, const float *src, size_t n, const uint32_t *words, size_t bitoff)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t bit = bitoff + i;
        const uint32_t s = (words[bit >> 5] >> (bit & 31)) & 1u;
        const uint32_t u = flz_f2u(src[i]) ^ (s << 31);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
        dst[i] = flz_u2f(u);
    }
    return !bad;
}

static int p_to_f16(uint8_t *dst, const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = flz_half_from_float(x[i]);
        bad |= (h & 0x7c00u) == 0x7c00u;
        dst[2 * i] = (uint8_t)h;
        dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return !bad;
}

static int p_to_bf16(uint8_t *dst, const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = flz_bf16_from_float(x[i]);
        bad |= (h & 0x7f80u) == 0x7f80u;
        dst[2 * i] = (uint8_t)h;
        dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
    return !bad;
}

static int p_from_f16(float *out, const uint8_t *src, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        bad |= (h & 0x7c00u) == 0x7c00u;
        out[i] = flz_float_from_half(h);
    }
    return !bad;
}

static int p_from_bf16(float *out, const uint8_t *src, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        bad |= (h & 0x7f80u) == 0x7f80u;
        out[i] = flz_float_from_bf16(h);
    }
    return !bad;
}

static int p_put_f32(uint8_t *dst, const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = flz_f2u(x[i]);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
        flz_put_u32(dst + 4 * i, u);
    }
    return !bad;
}

static int p_get_f32(float *out, const uint8_t *src, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = flz_get_u32(src + 4 * i);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
        out[i] = flz_u2f(u);
    }
    return !bad;
}

static void p_axpy(float *y, const float *x, size_t n, float a)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

const flz_kernels flz_kernels_portable = {
    .philox_words = p_philox_words,
    .minmax = p_minmax,
    .quant = p_quant,
    .dequant = p_dequant,
    .fwht = p_fwht,
    .flip = p_flip,
    .to_f16 = p_to_f16,
    .to_bf16 = p_to_bf16,
    .from_f16 = p_from_f16,
    .from_bf16 = p_from_bf16,
    .put_f32 = p_put_f32,
    .get_f32 = p_get_f32,
    .axpy = p_axpy,
};
