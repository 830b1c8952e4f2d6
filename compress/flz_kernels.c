/* flz_kernels.c: the portable (reference) kernels. Written so that the AVX2 ones can reproduce
 * them bit for bit: no fused multiply-add, the same operation order, exact min/max. */
#include <math.h>

#include "fl_rng.h"
#include "flz_internal.h"

static void p_philox_words(uint32_t *out, const uint32_t key[2], uint32_t round, uint32_t client,
                           uint32_t purpose, uint32_t block0, size_t nwords)
{
    /* eight independent blocks side by side: the lane loops are plain enough for the compiler
     * to vectorise (32x32->64 multiplies), same function as fl_philox4x32 */
    size_t i = 0;
    for (; nwords - i >= 32; i += 32) {
        uint32_t c0[8], c1[8], c2[8], c3[8];
        for (int l = 0; l < 8; l++) {
            c0[l] = block0 + (uint32_t)(i / 4) + (uint32_t)l;
            c1[l] = round;
            c2[l] = client;
            c3[l] = purpose;
        }
        uint32_t k0 = key[0], k1 = key[1];
        for (int r = 0; r < 10; r++) {
            for (int l = 0; l < 8; l++) {
                const uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
                const uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
                const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
                const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
                c1[l] = (uint32_t)p1;
                c3[l] = (uint32_t)p0;
                c0[l] = n0;
                c2[l] = n2;
            }
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        for (int l = 0; l < 8; l++) {
            out[i + 4 * l] = c0[l];
            out[i + 4 * l + 1] = c1[l];
            out[i + 4 * l + 2] = c2[l];
            out[i + 4 * l + 3] = c3[l];
        }
    }
    uint32_t ctr[4] = {block0 + (uint32_t)(i / 4), round, client, purpose};
    for (; i < nwords; i += 4) {
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
    /* A zero is +0.0f, whose choice over -0.0f would depend on the scan order. A comparison,
     * not l + 0.0f: under FE_DOWNWARD that sum is -0.0f (the AVX2 kernel's scan order then gave
     * other bytes, until 2026-12-07). */
    *lo = l == 0.0f ? 0.0f : l;
    *hi = h == 0.0f ? 0.0f : h;
    return !bad;
}

static inline uint32_t level_of(float x, float lo, float inv, uint32_t d, uint32_t L)
{
    const float v = (x - lo) * inv;
    const float t = v + (float)(2 * d + 1) * 7.62939453125e-06f; /* 2^-17 */
    /* v >= 0, so truncation is floor; the clamp guards t >= 2^31 (huge inv) as well */
    const uint32_t lv = t < 2147483648.0f ? (uint32_t)(int32_t)t : L;
    return lv < L ? lv : L;
}

static void p_quant(uint8_t *dst, const float *x, size_t n, unsigned q, float lo, float inv,
                    const uint32_t *dw)
{
    /* levels of up to 256 values at a time into lv[], then packing: two simple loops the
     * compiler can vectorise, instead of one loop with a data-dependent inner shape */
    const uint32_t L = (1u << q) - 1;
    uint8_t lv[256];
    for (size_t i0 = 0; i0 < n; i0 += 256) {
        const size_t m = n - i0 < 256 ? n - i0 : 256;
        const uint32_t *d = dw + i0 / 2;
        for (size_t j = 0; j < m / 2; j++) {
            lv[2 * j] = (uint8_t)level_of(x[i0 + 2 * j], lo, inv, d[j] & 0xffffu, L);
            lv[2 * j + 1] = (uint8_t)level_of(x[i0 + 2 * j + 1], lo, inv, d[j] >> 16, L);
        }
        if (m & 1)
            lv[m - 1] = (uint8_t)level_of(x[i0 + m - 1], lo, inv, d[m / 2] & 0xffffu, L);
        for (size_t j = m; j < ((m + 7) & ~(size_t)7); j++)
            lv[j] = 0;
        uint8_t *o = dst + i0 * q / 8;
        const size_t nb = (m * q + 7) / 8;
        switch (q) {
        case 8:
            memcpy(o, lv, m);
            break;
        case 4:
            for (size_t b = 0; b < nb; b++) /* lv is zero-padded to a multiple of 8 above */
                /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
                o[b] = (uint8_t)(lv[2 * b] | lv[2 * b + 1] << 4);
            break;
        case 2:
            for (size_t b = 0; b < nb; b++)
                /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
                o[b] = (uint8_t)(lv[4 * b] | lv[4 * b + 1] << 2 | lv[4 * b + 2] << 4 |
                                 lv[4 * b + 3] << 6);
            break;
        default:
            for (size_t b = 0; b < nb; b++) {
                uint32_t v = 0;
                for (unsigned k = 0; k < 8; k++)
                    /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
                    v |= (uint32_t)lv[8 * b + k] << k;
                o[b] = (uint8_t)v;
            }
            break;
        }
    }
}

static void p_dequant(float *out, const uint8_t *src, size_t n, unsigned q, float lo, float step)
{
    if (q == 8) {
        for (size_t i = 0; i < n; i++)
            out[i] = lo + (float)src[i] * step;
        return;
    }
    const uint32_t mask = (1u << q) - 1;
    const unsigned per = 8 / q;
    const size_t full = n / per;
    for (size_t b = 0; b < full; b++) {
        const uint32_t byte = src[b];
        for (unsigned k = 0; k < per; k++)
            out[b * per + k] = lo + (float)((byte >> (k * q)) & mask) * step;
    }
    for (size_t i = full * per; i < n; i++)
        out[i] = lo + (float)((src[i / per] >> ((i % per) * q)) & mask) * step;
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

static int p_put_f32_diff(uint8_t *dst, const float *a, const float *b, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = flz_f2u(a[i] - b[i]);
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

size_t flz_sub_keep_c(float *out, const float *x, size_t n, const uint32_t *w, uint32_t T,
                      int *finite)
{
    size_t m = 0;
    uint32_t bad = 0; /* dropped values must be finite too */
    for (size_t i = 0; i < n; i++) {
        out[m] = x[i]; /* overwritten by the next one unless kept: no branch on a coin flip */
        bad |= (flz_f2u(x[i]) & 0x7f800000u) == 0x7f800000u;
        m += w[i] < T;
    }
    *finite = !bad;
    return m;
}

int flz_sub_fill_c(float *out, size_t n, const float *v, size_t m, size_t *j,
                   const uint32_t *w, uint32_t T, float inv_p)
{
    /* Without branches: which coordinates were kept is a coin flip each (a branch on it
     * mispredicted about once in three at p = 0.25, most of the decode's time). A coordinate
     * reads value min(j, m) (v[m] is a zero); more kept coordinates than values is found once
     * the walk is over. */
    size_t k = *j;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t keep = w[i] < T;
        const float x = v[k < m ? k : m] * inv_p;
        bad |= keep & ((flz_f2u(x) & 0x7f800000u) == 0x7f800000u);
        out[i] = flz_u2f(flz_f2u(x) & (0u - keep)); /* +0.0f where dropped */
        k += keep;
    }
    *j = k;
    return !bad && k <= m;
}

static void p_rot_fwd(float *dst, const float *a, const float *b, unsigned log2, float scale,
                      const uint32_t *words, size_t bitoff)
{
    flz_rot_fwd_composed(p_flip, p_fwht, dst, a, b, log2, scale, words, bitoff);
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
    .put_f32_diff = p_put_f32_diff,
    .get_f32 = p_get_f32,
    .axpy = p_axpy,
    .rot_fwd = p_rot_fwd,
    .sub_keep = flz_sub_keep_c,
    .sub_fill = flz_sub_fill_c,
};
