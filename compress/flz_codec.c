/* flz_codec.c: the payload format (header, body sections) and the stage pipeline.
 *
 * Body layout before zstd (all integers little-endian; sections present only with their stage):
 *   topk:  u32 k | u8 mode (0 bitmap, 1 varint gaps) | u32 nbytes | nbytes of index data
 *          (the bitmap exactly when no longer than the gaps; gaps LEB128, each in fewest bytes)
 *   sub:   u32 m (number of coordinates kept)
 *   value: f32: 4 m bytes | f16/bf16: 2 m bytes |
 *          q: ceil(m/B) x (f32 lo, f32 hi), then ceil(m q / 8) bytes of levels, low bits first
 * where m is the length entering the value stage (n, or k after topk, or the subsample size).
 */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "fl_rng.h"
#include "flz.h"
#include "flz_internal.h"

#define CHUNK 4096 /* elements per batch of random words */

struct flz_residual {
    size_t n;
    float *r;
};

typedef struct buf {
    void *p;
    size_t cap; /* bytes */
} buf;

struct flz_ctx {
    fl_logger log;
    const flz_kernels *k;
    flz_isa isa;
    flz_kernels wide; /* FLZ_ISA_AVX512: the AVX2 table with the AVX-512 kernels over it */
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    buf ef;    /* float[n]: x + residual */
    buf diff;  /* float[n]: a - b of flz_encode_diff, for pipelines that cannot fuse it */
    buf idx;   /* uint32[k]: top-k indices */
    buf vals;  /* float[len]: values after top-k / rotation */
    buf vals2; /* float[m]: subsampled values */
    buf rnd;   /* uint32: random words of one batch */
    buf body;  /* raw body (before zstd / after unzstd) */
    buf dec;   /* float[n]: dense decode target of flz_decode_axpy */
    buf zout;  /* zstd output when the caller's buffer is below ZSTD_compressBound */
    uint32_t hist[2048];
    char why[256]; /* flz_ctx_error: why the last encode was FL_ERR_NUMERIC, else "" */
};

typedef struct key {
    uint32_t k[2];
    uint32_t round, client;
} key;

/* FL_ERR_NUMERIC, its reason written to c->why (flz_ctx_error) unless one is there already. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static fl_status numeric(flz_ctx *c, const char *fmt, ...)
{
    if (!c->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
    }
    return FL_ERR_NUMERIC;
}

/* The values stage's refusal of v[0..m), said (numeric): the first value f16 or bf16 cannot
 * carry. staged: v is what earlier stages (top-k, rotation, subsampling) made of the input, not
 * the input itself. A value that is not finite (a rotation's sums past float) is left to
 * encode's own reason. */
static fl_status values_refused(flz_ctx *c, const flz_spec *s, const float *v, size_t m,
                                int staged)
{
    for (size_t i = 0; i < m; i++) {
        if (!flz_finite(v[i]))
            return FL_ERR_NUMERIC;
        /* the magnitudes that flz_half_from_float and flz_bf16_from_float round to Inf */
        const uint32_t a = flz_f2u(v[i]) & 0x7fffffffu;
        const int f16 = s->value == FLZ_VALUE_F16 && a >= 0x477ff000u;
        const int bf16 = s->value == FLZ_VALUE_BF16 && a >= 0x7f7f8000u;
        if (!f16 && !bf16)
            continue;
        char what[64];
        if (staged)
            snprintf(what, sizeof what, "a value after the earlier stages is %g", (double)v[i]);
        else
            snprintf(what, sizeof what, "element %zu is %g", i, (double)v[i]);
        if (f16)
            return numeric(c, "%s, outside float16's range (its largest finite value is 65504): "
                           "f16 cannot carry it; bf16 (float32's range) or plain float32 "
                           "(\"none\") can", what);
        return numeric(c, "%s, which rounds past bfloat16's largest finite value "
                       "(3.38953e+38): bf16 cannot carry it; plain float32 (\"none\") can", what);
    }
    return FL_ERR_NUMERIC;
}

/* Scratch is never carried across a grow (every user fills it after growing), so a grow is a
 * free and a fresh 64-byte-aligned allocation: vector loads then never split a cache line. */
static int grow(buf *b, size_t bytes)
{
    if (bytes <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < bytes)
        cap = cap > SIZE_MAX / 2 ? bytes : cap * 2;
    void *p = NULL;
    if (posix_memalign(&p, 64, cap) != 0)
        return -1;
    free(b->p);
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ---- sizes ---------------------------------------------------------------------------------- */

static size_t topk_k(float frac, size_t n)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)floor((double)frac * (double)n + 0.5); /* nearest, at least 1 */
    if (k < 1)
        k = 1;
    return k > n ? n : k;
}

static uint32_t sub_thresh(float frac)
{
    double t = floor((double)frac * 4294967296.0 + 0.5);
    if (t < 1.0)
        t = 1.0;
    if (t > 4294967295.0)
        t = 4294967295.0;
    return (uint32_t)t;
}

static uint64_t values_bytes(const flz_spec *s, uint64_t m)
{
    switch (s->value) {
    case FLZ_VALUE_Q: {
        const uint64_t B = (uint64_t)1 << s->q_log2;
        return (m + B - 1) / B * 8 + (m * s->q_bits + 7) / 8;
    }
    case FLZ_VALUE_F16:
    case FLZ_VALUE_BF16:
        return 2 * m;
    default:
        return 4 * m;
    }
}

static uint64_t raw_bound(const flz_spec *s, size_t n)
{
    uint64_t b = 0, len = n;
    if (s->topk != 0.0f) {
        const uint64_t k = topk_k(s->topk, n);
        const uint64_t bitmap = ((uint64_t)n + 7) / 8;
        b += 9 + (bitmap < 5 * k ? bitmap : 5 * k);
        len = k;
    }
    if (s->sub != 0.0f)
        b += 4;
    return b + values_bytes(s, len);
}

size_t flz_encode_bound(const flz_spec *spec, size_t n)
{
    if (flz_spec_check(spec, NULL, 0) != FL_OK || n > FLZ_MAX_N)
        return 0;
    const uint64_t raw = raw_bound(spec, n);
    return FLZ_HEADER_SIZE + (spec->zstd ? ZSTD_compressBound((size_t)raw) : (size_t)raw);
}

int flz_spec_fixed_rate(const flz_spec *spec)
{
    return spec && !spec->zstd && spec->sub == 0.0f && spec->topk == 0.0f;
}

size_t flz_encode_size_min(const flz_spec *spec, size_t n)
{
    return flz_spec_fixed_rate(spec) ? flz_encode_bound(spec, n) : 0;
}

/* ---- context -------------------------------------------------------------------------------- */

fl_status flz_ctx_new(const fl_logger *log, flz_ctx **out)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    flz_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return FL_ERR_NOMEM;
    if (log)
        c->log = *log;
    if (flz_ctx_set_isa(c, FLZ_ISA_AVX512) != FL_OK && flz_ctx_set_isa(c, FLZ_ISA_AVX2) != FL_OK)
        flz_ctx_set_isa(c, FLZ_ISA_PORTABLE);
    c->zc = ZSTD_createCCtx();
    c->zd = ZSTD_createDCtx();
    if (!c->zc || !c->zd) {
        flz_ctx_free(c);
        return FL_ERR_NOMEM;
    }
    *out = c;
    return FL_OK;
}

void flz_ctx_free(flz_ctx *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->zc);
    ZSTD_freeDCtx(c->zd);
    free(c->ef.p);
    free(c->diff.p);
    free(c->idx.p);
    free(c->vals.p);
    free(c->vals2.p);
    free(c->rnd.p);
    free(c->body.p);
    free(c->dec.p);
    free(c->zout.p);
    free(c);
}

fl_status flz_ctx_set_isa(flz_ctx *c, flz_isa isa)
{
    if (!c)
        return FL_ERR_INVALID_ARG;
    if (isa != FLZ_ISA_PORTABLE && isa != FLZ_ISA_AVX2 && isa != FLZ_ISA_AVX512)
        return FL_ERR_INVALID_ARG;
    if (isa != FLZ_ISA_PORTABLE && (!flz_cpu_has_avx2() || !flz_kernels_avx2()))
        return FL_ERR_UNSUPPORTED;
    if (isa == FLZ_ISA_AVX512 && !flz_cpu_has_avx512())
        return FL_ERR_UNSUPPORTED;
    if (isa == FLZ_ISA_AVX512) { /* the context's own table: AVX-512 over AVX2 */
        c->wide = *flz_kernels_avx2();
        flz_kernels_avx512_over(&c->wide);
        c->k = &c->wide;
    } else {
        c->k = isa == FLZ_ISA_PORTABLE ? &flz_kernels_portable : flz_kernels_avx2();
    }
    c->isa = isa;
    return FL_OK;
}

flz_isa flz_ctx_isa(const flz_ctx *c)
{
    return c ? c->isa : FLZ_ISA_PORTABLE;
}

static size_t rnd_words_needed(const flz_spec *s)
{
    size_t w = CHUNK + 64;
    if (s->value == FLZ_VALUE_Q && ((size_t)1 << s->q_log2) / 2 + 64 > w)
        w = ((size_t)1 << s->q_log2) / 2 + 64;
    if (s->rot_log2 && ((size_t)1 << s->rot_log2) / 32 + 64 > w)
        w = ((size_t)1 << s->rot_log2) / 32 + 64;
    return w;
}

fl_status flz_ctx_reserve(flz_ctx *c, const flz_spec *s, size_t n)
{
    if (!c || !s || n > FLZ_MAX_N)
        return FL_ERR_INVALID_ARG;
    const fl_status st = flz_spec_check(s, NULL, 0);
    if (st != FL_OK)
        return st;
    const size_t len = s->topk != 0.0f ? topk_k(s->topk, n) : n;
    const size_t raw = (size_t)raw_bound(s, n);
    /* the very sizes the calls grow them to, and the difference of flz_encode_diff for the
     * pipelines it cannot fuse: until 2026-12-07 decode_axpy, an encode with a residual and
     * encode_diff could still allocate once after a reserve */
    if (grow(&c->ef, n * sizeof(float) + 4) || grow(&c->dec, n * sizeof(float) + 4) ||
        grow(&c->diff, n * sizeof(float) + 4) ||
        grow(&c->idx, len * sizeof(uint32_t) + 4) || grow(&c->vals, len * sizeof(float) + 4) ||
        grow(&c->vals2, len * sizeof(float) + 4) ||
        grow(&c->rnd, rnd_words_needed(s) * sizeof(uint32_t)) || grow(&c->body, raw + 1))
        return FL_ERR_NOMEM;
    return FL_OK;
}

/* ---- residuals ------------------------------------------------------------------------------ */

fl_status flz_residual_new(size_t n, flz_residual **out)
{
    if (!out || n > FLZ_MAX_N)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    flz_residual *r = calloc(1, sizeof *r);
    if (!r)
        return FL_ERR_NOMEM;
    r->n = n;
    r->r = calloc(n ? n : 1, sizeof(float));
    if (!r->r) {
        free(r);
        return FL_ERR_NOMEM;
    }
    *out = r;
    return FL_OK;
}

void flz_residual_free(flz_residual *r)
{
    if (!r)
        return;
    free(r->r);
    free(r);
}

void flz_residual_reset(flz_residual *r)
{
    if (r)
        memset(r->r, 0, r->n * sizeof(float));
}

size_t flz_residual_len(const flz_residual *r)
{
    return r ? r->n : 0;
}

const float *flz_residual_data(const flz_residual *r)
{
    return r ? r->r : NULL;
}

/* ---- header --------------------------------------------------------------------------------- */

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void header_write(uint8_t *h, const flz_spec *s, const key *ky, uint64_t seed, size_t n,
                         size_t raw, size_t body)
{
    memset(h, 0, FLZ_HEADER_SIZE);
    h[0] = 'F';
    h[1] = 'L';
    h[2] = 'Z';
    h[3] = 1; /* version */
    h[4] = (uint8_t)((s->topk != 0.0f) | (s->rot_log2 != 0) << 1 | (s->sub != 0.0f) << 2 |
                     (s->zstd != 0) << 3 | (unsigned)s->value << 4);
    h[5] = (uint8_t)s->q_bits;
    h[6] = (uint8_t)s->q_log2;
    h[7] = (uint8_t)s->rot_log2;
    h[8] = (uint8_t)(int8_t)s->zstd_level;
    flz_put_u32(h + 12, (uint32_t)n);
    flz_put_u32(h + 16, (uint32_t)raw);
    flz_put_u32(h + 20, (uint32_t)body);
    /* a stage that is off is 0 in the header, also for a spec filled in by hand with -0.0f
     * (its flag says off; its bits 0x80000000, which flz_peek refuses, made an undecodable
     * payload until 2026-12-07) */
    flz_put_u32(h + 24, s->topk != 0.0f ? flz_f2u(s->topk) : 0);
    flz_put_u32(h + 28, s->sub != 0.0f ? flz_f2u(s->sub) : 0);
    flz_put_u32(h + 32, (uint32_t)seed);
    flz_put_u32(h + 36, (uint32_t)(seed >> 32));
    flz_put_u32(h + 40, ky->round);
    flz_put_u32(h + 44, ky->client);
    flz_put_u32(h + 48, fnv1a(h, 48));
}

fl_status flz_peek(const uint8_t *src, size_t len, flz_info *info)
{
    if (!src || !info || len < FLZ_HEADER_SIZE)
        return FL_ERR_CODEC_HEADER;
    const uint8_t *h = src;
    if (h[0] != 'F' || h[1] != 'L' || h[2] != 'Z' || h[3] != 1)
        return FL_ERR_CODEC_HEADER;
    if (fnv1a(h, 48) != flz_get_u32(h + 48))
        return FL_ERR_CODEC_HEADER;
    const unsigned flags = h[4];
    if ((flags >> 6) != 0 || h[9] || h[10] || h[11])
        return FL_ERR_CODEC_HEADER;
    flz_spec s;
    memset(&s, 0, sizeof s);
    s.value = (flz_value)((flags >> 4) & 3);
    s.q_bits = h[5];
    s.q_log2 = h[6];
    s.rot_log2 = h[7];
    s.zstd = (flags >> 3) & 1;
    s.zstd_level = (int8_t)h[8]; /* NOLINT(bugprone-signed-char-misuse): a signed byte */
    s.topk = flz_u2f(flz_get_u32(h + 24));
    s.sub = flz_u2f(flz_get_u32(h + 28));
    /* each stage's fields are zero exactly when its flag is clear */
    if (((flags & 1) != 0) != (s.topk != 0.0f) || ((flags & 2) != 0) != (s.rot_log2 != 0) ||
        ((flags & 4) != 0) != (s.sub != 0.0f) || (!s.zstd && s.zstd_level != 0) ||
        (flz_get_u32(h + 24) == 0x80000000u) || (flz_get_u32(h + 28) == 0x80000000u))
        return FL_ERR_CODEC_HEADER;
    if (flz_spec_check(&s, NULL, 0) != FL_OK)
        return FL_ERR_CODEC_HEADER;
    const size_t n = flz_get_u32(h + 12);
    const size_t raw = flz_get_u32(h + 16);
    const size_t body = flz_get_u32(h + 20);
    if (n > FLZ_MAX_N || body != len - FLZ_HEADER_SIZE || raw > raw_bound(&s, n) ||
        (!s.zstd && raw != body))
        return FL_ERR_CODEC_HEADER;
    info->spec = s;
    info->n = n;
    info->seed = (uint64_t)flz_get_u32(h + 32) | (uint64_t)flz_get_u32(h + 36) << 32;
    info->round = flz_get_u32(h + 40);
    info->client = flz_get_u32(h + 44);
    info->body_len = body;
    info->body_raw_len = raw;
    return FL_OK;
}

/* ---- stages shared by encode and decode ----------------------------------------------------- */

/* Random words of stream `purpose` for Philox blocks [block0, block0 + nwords / 4). */
static fl_status rnd_words(flz_ctx *c, const key *ky, uint32_t purpose, uint32_t block0,
                           size_t nwords, uint32_t **out)
{
    nwords = (nwords + 3) & ~(size_t)3;
    if (grow(&c->rnd, nwords * sizeof(uint32_t)))
        return FL_ERR_NOMEM;
    c->k->philox_words(c->rnd.p, ky->k, ky->round, ky->client, purpose, block0, nwords);
    *out = c->rnd.p;
    return FL_OK;
}

/* The inverse, in place: 0 if some output is not finite. */
static int rot_block_inv(const flz_kernels *k, float *x, unsigned l, float sc, const uint32_t *w,
                         size_t bitoff)
{
    if (l >= 1)
        k->fwht(x, l, sc);
    return k->flip(x, x, (size_t)1 << l, w, bitoff);
}

/* Walks [0..len) in Hadamard blocks: full blocks of 2^lg, then the tail split by its binary
 * expansion into descending powers of two (so any length is rotated without padding).
 * forward (dst <- src, or src - sub where sub is not NULL): flip signs, transform, scale; inverse
 * (in place on dst, src and sub unused): transform, scale, flip. The inverse returns
 * FL_ERR_CODEC_CORRUPT on a non-finite result. */
/* rotate over [p, end), p at a block boundary of the whole walk (0, or a multiple of 2^lg with
 * end the whole length or a multiple of 2^lg): the same blocks, words and bits as the whole walk
 * gives there. words: NULL = the context's scratch; else room for ROT_WORDS_MAX words. */
#define ROT_WORDS_MAX ((((size_t)1 << 16) >> 7) * 4 + 8)
static fl_status rotate_span(flz_ctx *c, const key *ky, float *dst, const float *src,
                             const float *sub, size_t p, size_t end, unsigned lg, int forward,
                             uint32_t *words)
{
    while (p < end) {
        unsigned l = lg;
        while (((size_t)1 << l) > end - p)
            l--;
        const size_t S = (size_t)1 << l;
        const uint32_t blk0 = (uint32_t)(p >> 7);
        const size_t bits_end = p + S;
        const size_t nwords = ((bits_end + 127) >> 7) * 4 - (size_t)blk0 * 4;
        uint32_t *w = words;
        if (!w) {
            const fl_status st = rnd_words(c, ky, FL_RNG_ROTATE, blk0, nwords, &w);
            if (st != FL_OK)
                return st;
        } else {
            c->k->philox_words(w, ky->k, ky->round, ky->client, FL_RNG_ROTATE, blk0,
                               (nwords + 3) & ~(size_t)3);
        }
        const size_t bitoff = p - (size_t)blk0 * 128;
        const float sc = (float)(1.0 / sqrt((double)S));
        if (forward)
            c->k->rot_fwd(dst + p, src + p, sub ? sub + p : NULL, l, sc, w, bitoff);
        else if (!rot_block_inv(c->k, dst + p, l, sc, w, bitoff))
            return FL_ERR_CODEC_CORRUPT;
        p += S;
    }
    return FL_OK;
}

static fl_status rotate(flz_ctx *c, const key *ky, float *dst, const float *src, size_t len,
                        unsigned lg, int forward)
{
    return rotate_span(c, ky, dst, src, NULL, 0, len, lg, forward, NULL);
}

/* ---- top-k ---------------------------------------------------------------------------------- */

/* idx[0..k) = ascending indices of the k largest |x| (ties at the threshold: lowest index first),
 * by a three-pass MSB radix select on the magnitude bits. FL_ERR_NUMERIC on a non-finite x. */
static fl_status topk_select(flz_ctx *c, uint32_t *idx, const float *x, size_t n, size_t k)
{
    if (k == 0)
        return FL_OK;
    static const unsigned shifts[3] = {21, 10, 0}, widths[3] = {11, 11, 10};
    uint32_t prefix = 0, pmask = 0;
    size_t need = k;
    for (int pass = 0; pass < 3; pass++) {
        const unsigned sh = shifts[pass];
        const uint32_t dm = (1u << widths[pass]) - 1;
        uint32_t *hist = c->hist;
        memset(hist, 0, sizeof c->hist);
        uint32_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            const uint32_t kk = flz_f2u(x[i]) & 0x7fffffffu;
            bad |= kk >= 0x7f800000u;
            if ((kk & pmask) == prefix)
                hist[(kk >> sh) & dm]++;
        }
        if (bad)
            return FL_ERR_NUMERIC;
        size_t above = 0;
        uint32_t d = dm;
        for (;; d--) {
            if (above + hist[d] >= need)
                break;
            above += hist[d];
            if (d == 0)
                return FL_ERR_INTERNAL;
        }
        need -= above;
        prefix |= d << sh;
        pmask |= dm << sh;
    }
    size_t j = 0;
    for (size_t i = 0; i < n && j < k; i++) {
        const uint32_t kk = flz_f2u(x[i]) & 0x7fffffffu;
        if (kk > prefix || (kk == prefix && need > 0)) {
            if (kk == prefix)
                need--;
            idx[j++] = (uint32_t)i;
        }
    }
    return j == k ? FL_OK : FL_ERR_INTERNAL;
}

static size_t varint_len(uint32_t v)
{
    size_t l = 1;
    while (v >= 0x80) {
        v >>= 7;
        l++;
    }
    return l;
}

/* Writes the top-k index section; returns its size. */
static size_t topk_write(uint8_t *o, const uint32_t *idx, size_t k, size_t n)
{
    size_t vbytes = 0;
    for (size_t j = 0; j < k; j++)
        vbytes += varint_len(j ? idx[j] - idx[j - 1] - 1 : idx[0]);
    const size_t bbytes = (n + 7) / 8;
    flz_put_u32(o, (uint32_t)k);
    if (bbytes <= vbytes) {
        o[4] = 0;
        flz_put_u32(o + 5, (uint32_t)bbytes);
        uint8_t *b = o + 9;
        memset(b, 0, bbytes);
        for (size_t j = 0; j < k; j++)
            b[idx[j] >> 3] |= (uint8_t)(1u << (idx[j] & 7));
        return 9 + bbytes;
    }
    o[4] = 1;
    flz_put_u32(o + 5, (uint32_t)vbytes);
    uint8_t *b = o + 9;
    for (size_t j = 0; j < k; j++) {
        uint32_t v = j ? idx[j] - idx[j - 1] - 1 : idx[0];
        while (v >= 0x80) {
            *b++ = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        *b++ = (uint8_t)v;
    }
    return 9 + vbytes;
}

/* Parses and validates a top-k index section at body[*off..raw). */
static fl_status topk_read(uint32_t *idx, const uint8_t *body, size_t raw, size_t *off, size_t k,
                           size_t n)
{
    size_t o = *off;
    if (raw - o < 9 || flz_get_u32(body + o) != k)
        return FL_ERR_CODEC_CORRUPT;
    const unsigned mode = body[o + 4];
    const size_t nb = flz_get_u32(body + o + 5);
    o += 9;
    if (nb > raw - o)
        return FL_ERR_CODEC_CORRUPT;
    const uint8_t *b = body + o;
    size_t j = 0;
    if (mode == 0) {
        if (nb != (n + 7) / 8)
            return FL_ERR_CODEC_CORRUPT;
        if ((n & 7) && (b[nb - 1] >> (n & 7)) != 0)
            return FL_ERR_CODEC_CORRUPT; /* bits past n */
        for (size_t i = 0; i < nb; i++) {
            uint32_t byte = b[i];
            while (byte) {
                const unsigned t = (unsigned)__builtin_ctz(byte);
                if (j == k)
                    return FL_ERR_CODEC_CORRUPT;
                idx[j++] = (uint32_t)(i * 8 + t);
                byte &= byte - 1;
            }
        }
    } else if (mode == 1) {
        size_t p = 0;
        uint64_t prev = 0;
        for (; j < k; j++) {
            uint64_t v = 0;
            unsigned sh = 0;
            for (;;) {
                if (p >= nb || sh > 28)
                    return FL_ERR_CODEC_CORRUPT;
                const uint8_t byte = b[p++];
                v |= (uint64_t)(byte & 0x7f) << sh;
                sh += 7;
                if (!(byte & 0x80)) {
                    /* a last byte of 0 after others only pads the number out (0x85 0x00 is 5, as
                     * 0x05 is): refused, so one index list has one encoding, as topk_write's */
                    if (byte == 0 && sh > 7)
                        return FL_ERR_CODEC_CORRUPT;
                    break;
                }
            }
            const uint64_t i = j ? prev + 1 + v : v;
            if (i >= n)
                return FL_ERR_CODEC_CORRUPT;
            idx[j] = (uint32_t)i;
            prev = i;
        }
        if (p != nb)
            return FL_ERR_CODEC_CORRUPT;
    } else {
        return FL_ERR_CODEC_CORRUPT;
    }
    if (j != k)
        return FL_ERR_CODEC_CORRUPT;
    /* The mode topk_write chooses, the bitmap when it is no longer than the gaps: the other
     * mode would give the same indices in another encoding. The gaps (each in its fewest bytes,
     * as checked above) are nb bytes; a bitmap's indices need at least a byte each, so only
     * fewer than (n + 7) / 8 of them are counted, and only until they reach it. */
    const size_t bbytes = (n + 7) / 8;
    if (mode == 1 && nb >= bbytes)
        return FL_ERR_CODEC_CORRUPT;
    if (mode == 0 && k < bbytes) {
        size_t vbytes = 0;
        for (size_t i = 0; i < k && vbytes < bbytes; i++)
            vbytes += varint_len(i ? idx[i] - idx[i - 1] - 1 : idx[0]);
        if (vbytes < bbytes)
            return FL_ERR_CODEC_CORRUPT;
    }
    *off = o + nb;
    return FL_OK;
}

/* ---- value stage ---------------------------------------------------------------------------- */

/* 1 when a block's top level, lo + L (hi - lo) / L as the kernels compute it (a product, then a
 * sum), is finite: it can round past FLT_MAX where hi does not (q4 with lo = 0x1.dd786p+120, hi =
 * FLT_MAX). Levels grow with k, so the top level finite, every level is. With |lo|, |hi| <= 2^126
 * it is within a few ulps of hi, far below FLT_MAX: no division then (a block's encode or decode
 * took 1-2% longer with one, bench_compress q4 and q8). */
static inline int top_level_finite(float lo, float hi, float L)
{
    if (fabsf(lo) <= 0x1p126f && fabsf(hi) <= 0x1p126f)
        return 1;
    return flz_finite(lo + L * ((hi - lo) / L));
}

/* absmax (may be NULL): raised to the largest |lo| or |hi| of the blocks, which bound the values
 * the decoder gives back (up to rounding). */
static fl_status quant_encode(flz_ctx *c, const key *ky, const flz_spec *s, uint8_t *o,
                              const float *x, size_t m, float *absmax)
{
    const size_t B = (size_t)1 << s->q_log2;
    const unsigned q = s->q_bits;
    const float L = (float)((1u << q) - 1);
    const size_t nb = (m + B - 1) / B;
    uint8_t *scales = o, *packed = o + nb * 8;
    const size_t ch = B > CHUNK ? B : CHUNK;
    for (size_t c0 = 0; c0 < m; c0 += ch) {
        const size_t cl = m - c0 < ch ? m - c0 : ch;
        uint32_t *dw;
        /* element i's dither is 16-bit half (i & 1) of word i / 2: block i / 8 */
        const fl_status st = rnd_words(c, ky, FL_RNG_QUANT, (uint32_t)(c0 / 8), (cl + 1) / 2, &dw);
        if (st != FL_OK)
            return st;
        for (size_t b0 = 0; b0 < cl; b0 += B) {
            const size_t bl = cl - b0 < B ? cl - b0 : B;
            const size_t i0 = c0 + b0;
            float lo, hi;
            /* and the decoder's top level (quant_blocks refuses a block whose top level is not
             * finite) */
            if (!c->k->minmax(&lo, &hi, x + i0, bl))
                return FL_ERR_NUMERIC; /* not finite: encode says why */
            if (!flz_finite(hi - lo) || !top_level_finite(lo, hi, L))
                return numeric(c, "the quantisation block of values %zu..%zu spans %g to %g, a "
                               "width past float's largest value (3.40282e+38), which q%u's "
                               "levels cannot span; f16 (if the values fit its range), bf16 or "
                               "float32 values can carry them", i0, i0 + bl - 1, (double)lo,
                               (double)hi, q);
            if (absmax) {
                const float a = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
                *absmax = a > *absmax ? a : *absmax;
            }
            float inv = hi > lo ? L / (hi - lo) : 0.0f;
            if (!flz_finite(inv))
                inv = 0.0f;
            flz_put_u32(scales + (i0 / B) * 8, flz_f2u(lo));
            flz_put_u32(scales + (i0 / B) * 8 + 4, flz_f2u(hi));
            c->k->quant(packed + i0 * q / 8, x + i0, bl, q, lo, inv, dw + b0 / 2);
        }
    }
    return FL_OK;
}

/* Quantised values: the padding check of the packed levels. */
static fl_status quant_padding(const flz_spec *s, const uint8_t *in, size_t m)
{
    const size_t B = (size_t)1 << s->q_log2;
    const unsigned q = s->q_bits;
    const size_t nb = (m + B - 1) / B;
    const uint8_t *packed = in + nb * 8;
    const size_t pbytes = (m * q + 7) / 8;
    if ((m * q) & 7) {
        const unsigned used = (unsigned)((m * q) & 7);
        if (packed[pbytes - 1] >> used)
            return FL_ERR_CODEC_CORRUPT; /* padding bits must be zero */
    }
    return FL_OK;
}

/* Quantisation blocks [b0, b1) of m values into out. */
static fl_status quant_blocks(const flz_ctx *c, const flz_spec *s, float *out, const uint8_t *in,
                              size_t m, size_t b0, size_t b1)
{
    const size_t B = (size_t)1 << s->q_log2;
    const unsigned q = s->q_bits;
    const float L = (float)((1u << q) - 1);
    const size_t nb = (m + B - 1) / B;
    const uint8_t *scales = in, *packed = in + nb * 8;
    for (size_t b = b0; b < b1; b++) {
        const float lo = flz_u2f(flz_get_u32(scales + b * 8));
        const float hi = flz_u2f(flz_get_u32(scales + b * 8 + 4));
        if (!flz_finite(lo) || !flz_finite(hi) || !(lo <= hi) || !flz_finite(hi - lo))
            return FL_ERR_CODEC_CORRUPT;
        /* until 2026-12-07 a block whose top level rounds past FLT_MAX decoded to +inf with
         * FL_OK, and the encoder made such blocks from finite input */
        if (!top_level_finite(lo, hi, L))
            return FL_ERR_CODEC_CORRUPT;
        const size_t i0 = b * B, bl = m - i0 < B ? m - i0 : B;
        c->k->dequant(out + i0, packed + i0 * q / 8, bl, q, lo, (hi - lo) / L);
    }
    return FL_OK;
}

static fl_status quant_decode(flz_ctx *c, const flz_spec *s, float *out, const uint8_t *in,
                              size_t m)
{
    const fl_status st = quant_padding(s, in, m);
    if (st != FL_OK)
        return st;
    const size_t B = (size_t)1 << s->q_log2;
    return quant_blocks(c, s, out, in, m, 0, (m + B - 1) / B);
}

/* xb: NULL, or (plain float32 values only) the subtrahend: encodes x - xb. */
/* absmax (may be NULL): set to the largest |value| sent (q: its blocks' largest |lo| or |hi|,
 * known at no extra pass). staged: x is what earlier stages made of the input, not the input
 * (for the words of a refusal, values_refused). */
static fl_status values_encode(flz_ctx *c, const key *ky, const flz_spec *s, uint8_t *o,
                               const float *x, const float *xb, size_t m, float *absmax,
                               int staged)
{
    if (absmax)
        *absmax = 0.0f;
    if (absmax && s->value != FLZ_VALUE_Q && m) {
        float lo, hi;
        if (c->k->minmax(&lo, &hi, x, m)) /* a non-finite value is refused below */
            *absmax = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
    }
    switch (s->value) {
    case FLZ_VALUE_Q:
        return quant_encode(c, ky, s, o, x, m, absmax);
    case FLZ_VALUE_F16:
        return c->k->to_f16(o, x, m) ? FL_OK : values_refused(c, s, x, m, staged);
    case FLZ_VALUE_BF16:
        return c->k->to_bf16(o, x, m) ? FL_OK : values_refused(c, s, x, m, staged);
    default:
        if (xb)
            return c->k->put_f32_diff(o, x, xb, m) ? FL_OK : FL_ERR_NUMERIC;
        return c->k->put_f32(o, x, m) ? FL_OK : FL_ERR_NUMERIC;
    }
}

static fl_status values_decode(flz_ctx *c, const flz_spec *s, float *out, const uint8_t *in,
                               size_t m)
{
    switch (s->value) {
    case FLZ_VALUE_Q:
        return quant_decode(c, s, out, in, m);
    case FLZ_VALUE_F16:
        return c->k->from_f16(out, in, m) ? FL_OK : FL_ERR_CODEC_CORRUPT;
    case FLZ_VALUE_BF16:
        return c->k->from_bf16(out, in, m) ? FL_OK : FL_ERR_CODEC_CORRUPT;
    default:
        return c->k->get_f32(out, in, m) ? FL_OK : FL_ERR_CODEC_CORRUPT;
    }
}

/* ---- body decode ---------------------------------------------------------------------------- */

/* Decodes a raw body. With top-k the result is sparse: ctx->idx / ctx->vals [0..*k_out), dense
 * untouched; otherwise dense[0..n) is written. */
static fl_status body_decode(flz_ctx *c, const flz_spec *s, const key *ky, const uint8_t *body,
                             size_t raw, size_t n, float *dense, size_t *k_out)
{
    size_t off = 0, len = n;
    float *tgt = dense;
    fl_status st;
    if (s->topk != 0.0f) {
        const size_t k = topk_k(s->topk, n);
        if (grow(&c->idx, k * sizeof(uint32_t) + 4) || grow(&c->vals, k * sizeof(float) + 4))
            return FL_ERR_NOMEM;
        st = topk_read(c->idx.p, body, raw, &off, k, n);
        if (st != FL_OK)
            return st;
        len = k;
        tgt = c->vals.p;
        *k_out = k;
    }
    size_t m = len;
    uint32_t T = 0;
    const int sub = s->sub != 0.0f; /* subsampled: m of the len values were sent */
    if (sub) {
        if (raw - off < 4)
            return FL_ERR_CODEC_CORRUPT;
        m = flz_get_u32(body + off);
        off += 4;
        if (m > len)
            return FL_ERR_CODEC_CORRUPT;
        T = sub_thresh(s->sub);
    }
    if (values_bytes(s, m) != raw - off)
        return FL_ERR_CODEC_CORRUPT;
    float *vdst = tgt;
    if (sub) {
        if (grow(&c->vals2, m * sizeof(float) + 4))
            return FL_ERR_NOMEM;
        vdst = c->vals2.p;
    }
    st = values_decode(c, s, vdst, body + off, m);
    if (st != FL_OK)
        return st;
    if (sub) {
        vdst[m] = 0.0f; /* the slot past the values (vals2 has room for m + 1) */
        const float inv_p = (float)(4294967296.0 / (double)T);
        size_t j = 0;
        for (size_t c0 = 0; c0 < len; c0 += CHUNK) {
            const size_t cl = len - c0 < CHUNK ? len - c0 : CHUNK;
            uint32_t *w;
            st = rnd_words(c, ky, FL_RNG_SUBSAMPLE, (uint32_t)(c0 / 4), cl, &w);
            if (st != FL_OK)
                return st;
            if (!c->k->sub_fill(tgt + c0, cl, vdst, m, &j, w, T, inv_p))
                return FL_ERR_CODEC_CORRUPT;
        }
        if (j != m)
            return FL_ERR_CODEC_CORRUPT;
    }
    /* a forged block range can push the inverse transforms past float: both check */
    if (s->rot_log2)
        return rotate(c, ky, tgt, NULL, len, s->rot_log2, 0);
    return FL_OK;
}

/* Header + unzstd: on success *body / *raw are the raw body and *s, *ky its pipeline. */
static fl_status payload_open(flz_ctx *c, const uint8_t *src, size_t len, size_t n_expected,
                              flz_spec *s, key *ky, const uint8_t **body, size_t *raw)
{
    flz_info info;
    if (!c || (!src && len))
        return FL_ERR_INVALID_ARG;
    fl_status st = flz_peek(src, len, &info);
    if (st != FL_OK)
        return st;
    if (info.n != n_expected)
        return FL_ERR_CODEC_LENGTH;
    *s = info.spec;
    ky->k[0] = (uint32_t)info.seed;
    ky->k[1] = (uint32_t)(info.seed >> 32);
    ky->round = info.round;
    ky->client = info.client;
    *raw = info.body_raw_len;
    if (!info.spec.zstd) {
        *body = src + FLZ_HEADER_SIZE;
        return FL_OK;
    }
    const uint8_t *z = src + FLZ_HEADER_SIZE;
    const unsigned long long fcs = ZSTD_getFrameContentSize(z, info.body_len);
    if (fcs != (unsigned long long)info.body_raw_len)
        return FL_ERR_CODEC_CORRUPT;
    /* one frame, the whole body: ZSTD_decompressDCtx would decode frames after it too (a
     * skippable frame of any bytes, an empty frame), which the encoder never writes */
    if (ZSTD_findFrameCompressedSize(z, info.body_len) != info.body_len)
        return FL_ERR_CODEC_CORRUPT;
    if (grow(&c->body, info.body_raw_len + 1))
        return FL_ERR_NOMEM;
    const size_t r = ZSTD_decompressDCtx(c->zd, c->body.p, info.body_raw_len, z, info.body_len);
    if (ZSTD_isError(r) || r != info.body_raw_len)
        return FL_ERR_CODEC_CORRUPT;
    *body = c->body.p;
    return FL_OK;
}

/* Decoding runs with subnormals flushed to zero, inputs (DAZ) and results (FTZ): a float
 * operation that reads or makes a subnormal takes a microcode slow path on x86 (measured here:
 * 7-70x slower decodes of payloads whose block ranges or values a client made tiny, e.g. q8
 * 0.2 -> 10 ns an element), and every decoded value is the sender's choice. Values below FLT_MIN
 * thus decode as 0, which costs nothing: the server's fixed-point fold rounds them to 0 anyway.
 * The caller's MXCSR is restored on every return. Other architectures run as they are. */
#if defined(__x86_64__) || defined(__i386__)
static unsigned flush_begin(void)
{
    const unsigned m = _mm_getcsr();
    _mm_setcsr(m | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return m;
}
static void flush_end(unsigned m)
{
    _mm_setcsr(m);
}
/* A piece of a split decode, on whichever thread the lender runs it: this thread in the mode
 * flz_decode gives the calling one, whose floating-point control is ctl (fp_ctl there), since a
 * lender's threads keep the mode they started in and the bits must be the caller's. Here: the
 * caller's MXCSR (rounding, masks) with FTZ and DAZ; this thread's status flags are kept. */
static unsigned fp_ctl(void)
{
    return _mm_getcsr();
}
static unsigned piece_begin(unsigned ctl)
{
    const unsigned m = _mm_getcsr();
    _mm_setcsr((ctl & ~0x3Fu) | (m & 0x3Fu) | 0x8040u);
    return m;
}
static void piece_end(unsigned m)
{
    _mm_setcsr(m);
}
#else
static unsigned flush_begin(void)
{
    return 0;
}
static void flush_end(unsigned m)
{
    (void)m;
}
/* Elsewhere: the caller's rounding mode. */
static unsigned fp_ctl(void)
{
    return (unsigned)fegetround();
}
static unsigned piece_begin(unsigned ctl)
{
    const int m = fegetround();
    if (m != (int)ctl)
        fesetround((int)ctl);
    return (unsigned)m;
}
static void piece_end(unsigned m)
{
    if (fegetround() != (int)m)
        fesetround((int)m);
}
#endif

/* The body into the dense out[0..n), subnormals flushed (the header was checked as flz_peek
 * does): a top-k body's kept values scattered over zeros. */
static fl_status body_decode_dense(flz_ctx *c, const flz_spec *s, const key *ky,
                                   const uint8_t *body, size_t raw, size_t n, float *out)
{
    size_t k = 0;
    const unsigned m = flush_begin();
    const fl_status st = body_decode(c, s, ky, body, raw, n, out, &k);
    flush_end(m);
    if (st != FL_OK)
        return st;
    if (s->topk != 0.0f) {
        const uint32_t *idx = c->idx.p;
        const float *v = c->vals.p;
        memset(out, 0, n * sizeof(float));
        for (size_t j = 0; j < k; j++)
            out[idx[j]] = v[j];
    }
    return FL_OK;
}

fl_status flz_decode(flz_ctx *c, const uint8_t *src, size_t len, float *out, size_t n_expected)
{
    return flz_decode_par(c, src, len, out, n_expected, NULL);
}

/* ---- split decode (flz_decode_par) ------------------------------------------------------- */

#define FLZ_PAR_MIN_ELEMS 16384

typedef struct par_dec {
    flz_ctx *c;
    const flz_spec *s;
    const key *ky;
    const uint8_t *body;
    float *out;
    size_t n, unit, units;
    unsigned parts;
    unsigned ctl; /* the caller's floating-point control (fp_ctl) */
    fl_status st[FL_PAR_MAX];
} par_dec;

/* One piece: whole units (a multiple of both the quantisation and the rotation block) of the
 * dense result, dequantised and rotated back on the calling thread, in the floating-point mode
 * flz_decode gives the caller's (flushed, the caller's rounding). */
/* Dequantises and rotates back [p0, p1) of a quantised body's dense result out[0..n) (p0 a
 * multiple of unit, a power of two that both blocks divide; p1 too, or n), a group of units at
 * a time: each group's values are still in L1/L2 when the inverse rotation reads them, where
 * the whole span dequantised first would be back from L3 (or memory). words: room for
 * ROT_WORDS_MAX. */
#define QROT_GROUP 4096 /* floats: 16 KB */
static fl_status qrot_span(flz_ctx *c, const flz_spec *s, const key *ky, float *out,
                           const uint8_t *body, size_t n, size_t p0, size_t p1, size_t unit,
                           uint32_t *words)
{
    const size_t B = (size_t)1 << s->q_log2;
    const size_t g = unit > QROT_GROUP ? unit : QROT_GROUP; /* a multiple of unit */
    for (size_t p = p0; p < p1; p += g) {
        const size_t e = p1 - p < g ? p1 : p + g;
        fl_status st = quant_blocks(c, s, out, body, n, p / B, (e + B - 1) / B);
        if (st == FL_OK && s->rot_log2)
            st = rotate_span(c, ky, out, NULL, NULL, p, e, s->rot_log2, 0, words);
        if (st != FL_OK)
            return st;
    }
    return FL_OK;
}

static void par_dec_piece(void *arg, unsigned i)
{
    par_dec *d = arg;
    const size_t p0 = d->units * i / d->parts * d->unit;
    size_t p1 = d->units * (i + 1) / d->parts * d->unit;
    if (p1 > d->n)
        p1 = d->n;
    d->st[i] = FL_OK;
    if (p0 >= p1)
        return;
    const unsigned m = piece_begin(d->ctl);
    uint32_t words[ROT_WORDS_MAX];
    d->st[i] = qrot_span(d->c, d->s, d->ky, d->out, d->body, d->n, p0, p1, d->unit, words);
    piece_end(m);
}

fl_status flz_decode_par(flz_ctx *c, const uint8_t *src, size_t len, float *out, size_t n_expected,
                         const fl_par *par)
{
    const size_t min = par && par->min_elems ? par->min_elems : FLZ_PAR_MIN_ELEMS;
    const int split = par && par->parts >= 2 && par->run && par->parts <= FL_PAR_MAX &&
                      n_expected >= min;
    flz_spec s;
    key ky;
    const uint8_t *body;
    size_t raw;
    if (!c || (!out && n_expected))
        return FL_ERR_INVALID_ARG;
    fl_status st = payload_open(c, src, len, n_expected, &s, &ky, &body, &raw);
    if (st != FL_OK)
        return st;
    if (s.topk != 0.0f || s.sub != 0.0f || s.value != FLZ_VALUE_Q)
        return body_decode_dense(c, &s, &ky, body, raw, n_expected, out); /* on this thread */
    if (values_bytes(&s, n_expected) != raw)
        return FL_ERR_CODEC_CORRUPT;
    if ((st = quant_padding(&s, body, n_expected)) != FL_OK)
        return st;
    const size_t B = (size_t)1 << s.q_log2, R = s.rot_log2 ? (size_t)1 << s.rot_log2 : 1;
    const size_t unit = B > R ? B : R; /* powers of two: a multiple of both */
    if (!split) { /* on this thread, flushed as body_decode_dense */
        uint32_t words[ROT_WORDS_MAX];
        const unsigned m = flush_begin();
        st = qrot_span(c, &s, &ky, out, body, n_expected, 0, n_expected, unit, words);
        flush_end(m);
        return st;
    }
    par_dec d;
    d.c = c;
    d.s = &s;
    d.ky = &ky;
    d.body = body;
    d.out = out;
    d.n = n_expected;
    d.unit = unit;
    d.units = (n_expected + d.unit - 1) / d.unit;
    d.parts = par->parts;
    d.ctl = fp_ctl();
    par->run(par->pool, par_dec_piece, &d, d.parts);
    for (unsigned i = 0; i < d.parts; i++)
        if (d.st[i] != FL_OK)
            return d.st[i];
    return FL_OK;
}

fl_status flz_decode_axpy(flz_ctx *c, const uint8_t *src, size_t len, float alpha, float *out,
                          size_t n_expected)
{
    flz_spec s;
    key ky;
    const uint8_t *body;
    size_t raw, k = 0;
    if (!c || (!out && n_expected) || !flz_finite(alpha))
        return FL_ERR_INVALID_ARG;
    fl_status st = payload_open(c, src, len, n_expected, &s, &ky, &body, &raw);
    if (st != FL_OK)
        return st;
    /* the decode flushed as in flz_decode; the axpy on the caller's values as they are */
    unsigned m;
    if (s.topk != 0.0f) {
        m = flush_begin();
        st = body_decode(c, &s, &ky, body, raw, n_expected, NULL, &k);
        flush_end(m);
        if (st != FL_OK)
            return st;
        const uint32_t *idx = c->idx.p;
        const float *v = c->vals.p;
        for (size_t j = 0; j < k; j++)
            out[idx[j]] += alpha * v[j];
        return FL_OK;
    }
    if (grow(&c->dec, n_expected * sizeof(float) + 4))
        return FL_ERR_NOMEM;
    m = flush_begin();
    st = body_decode(c, &s, &ky, body, raw, n_expected, c->dec.p, &k);
    flush_end(m);
    if (st != FL_OK)
        return st;
    c->k->axpy(out, c->dec.p, n_expected, alpha);
    return FL_OK;
}

/* ---- encode --------------------------------------------------------------------------------- */

/* flz_encode of x, or of x - xb when xb != NULL: then there is no top-k and no residual, so x
 * reaches the rotation (which forms the difference block by block) or, with no rotation and no
 * subsampling, values_encode (plain float32, formed as it is written) as it is. */
static fl_status encode_run(flz_ctx *c, const flz_spec *s, const flz_params *params,
                            const float *x, const float *xb, size_t n, uint8_t *dst, size_t cap,
                            size_t *written)
{
    *written = 0;
    char why[128];
    fl_status st = flz_spec_check(s, why, sizeof why);
    if (st != FL_OK) {
        fl_log(&c->log, FL_LOG_ERROR, "flz_encode: bad spec: %s", why);
        return st;
    }
    if (n > FLZ_MAX_N)
        return FL_ERR_INVALID_ARG;
    flz_residual *res = params ? params->residual : NULL;
    if (res && res->n != n)
        return FL_ERR_INVALID_ARG;
    const uint64_t seed = params ? params->seed : 0;
    key ky = {{(uint32_t)seed, (uint32_t)(seed >> 32)},
              params ? params->round : 0,
              params ? params->client : 0};
    if (cap < FLZ_HEADER_SIZE)
        return FL_ERR_BUFFER_TOO_SMALL;

    const float *src = x;
    if (res) {
        if (grow(&c->ef, n * sizeof(float) + 4))
            return FL_ERR_NOMEM;
        float *ef = c->ef.p;
        for (size_t i = 0; i < n; i++)
            ef[i] = x[i] + res->r[i];
        src = ef;
    }
    const size_t rb = (size_t)raw_bound(s, n);
    uint8_t *body;
    if (!s->zstd && cap - FLZ_HEADER_SIZE >= rb) {
        body = dst + FLZ_HEADER_SIZE;
    } else {
        if (grow(&c->body, rb + 1))
            return FL_ERR_NOMEM;
        body = c->body.p;
    }
    size_t w = 0, len = n;
    const float *cur = src;

    if (s->topk != 0.0f) {
        const size_t k = topk_k(s->topk, n);
        if (grow(&c->idx, k * sizeof(uint32_t) + 4) || grow(&c->vals, k * sizeof(float) + 4))
            return FL_ERR_NOMEM;
        uint32_t *idx = c->idx.p;
        float *v = c->vals.p;
        st = topk_select(c, idx, src, n, k);
        if (st != FL_OK)
            return st;
        for (size_t j = 0; j < k; j++)
            v[j] = src[idx[j]];
        w += topk_write(body + w, idx, k, n);
        cur = v;
        len = k;
    }
    if (s->rot_log2) {
        if (grow(&c->vals, len * sizeof(float) + 4))
            return FL_ERR_NOMEM;
        st = rotate_span(c, &ky, c->vals.p, cur, cur == x ? xb : NULL, 0, len, s->rot_log2, 1,
                         NULL);
        if (st != FL_OK)
            return st;
        cur = c->vals.p;
    }
    if (s->sub != 0.0f) {
        if (grow(&c->vals2, len * sizeof(float) + 4))
            return FL_ERR_NOMEM;
        float *v2 = c->vals2.p;
        const uint32_t T = sub_thresh(s->sub);
        size_t m = 0;
        for (size_t c0 = 0; c0 < len; c0 += CHUNK) {
            const size_t cl = len - c0 < CHUNK ? len - c0 : CHUNK;
            uint32_t *rw;
            st = rnd_words(c, &ky, FL_RNG_SUBSAMPLE, (uint32_t)(c0 / 4), cl, &rw);
            if (st != FL_OK)
                return st;
            int finite;
            m += c->k->sub_keep(v2 + m, cur + c0, cl, rw, T, &finite);
            if (!finite)
                return FL_ERR_NUMERIC;
        }
        flz_put_u32(body + w, (uint32_t)m);
        w += 4;
        cur = v2;
        len = m;
    }
    const int bounded = s->sub != 0.0f || s->rot_log2;
    float absmax = 0.0f;
    st = values_encode(c, &ky, s, body + w, cur, cur == x ? xb : NULL, len,
                       bounded ? &absmax : NULL, cur != src);
    if (st != FL_OK)
        return st;
    /* What the decoder does after the value stage must stay within float: the 1/p scaling of a
     * subsample (sub_fill, in float) and the inverse rotation, whose transform sums a block of
     * 2^b values before it scales them (each of its b stages at most doubles the largest
     * magnitude). A value that either could take past float made a payload that the decoder
     * refused as corrupt (with error feedback, the encoder's own decode failed as an internal
     * error): refused here, before anything of the residual changes, as input the encoded form
     * cannot carry, with a margin for the value stage's rounding (bf16 and qN can round a value
     * up, by well under 1%). */
    if (bounded) {
        double big = (double)absmax;
        if (s->sub != 0.0f)
            big *= (double)(float)(4294967296.0 / (double)sub_thresh(s->sub));
        if (s->rot_log2)
            big = ldexp(big, (int)s->rot_log2);
        if (big > (double)FLT_MAX / 1.01)
            return numeric(c, "the values sent reach %g in magnitude, which the decoder's %s "
                           "would take past float's largest value (3.40282e+38)",
                           (double)absmax, s->sub != 0.0f && s->rot_log2
                                               ? "1/p scaling and inverse rotation"
                                           : s->sub != 0.0f ? "1/p scaling of the subsample"
                                                            : "inverse rotation (sums of "
                                                              "blocks of values)");
    }
    w += (size_t)values_bytes(s, len);

    size_t blen = w;
    if (s->zstd) {
        if (ZSTD_isError(ZSTD_CCtx_reset(c->zc, ZSTD_reset_session_and_parameters)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, s->zstd_level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 1)))
            return FL_ERR_INTERNAL;
        /* zstd may fail on a buffer that would just hold its output: below the bound, compress
         * into scratch and copy */
        const size_t zb = ZSTD_compressBound(w);
        uint8_t *zdst = dst + FLZ_HEADER_SIZE;
        size_t zcap = cap - FLZ_HEADER_SIZE;
        if (zcap < zb) {
            if (grow(&c->zout, zb))
                return FL_ERR_NOMEM;
            zdst = c->zout.p;
            zcap = zb;
        }
        const size_t z = ZSTD_compress2(c->zc, zdst, zcap, body, w);
        if (ZSTD_isError(z)) {
            fl_log(&c->log, FL_LOG_ERROR, "flz_encode: zstd: %s", ZSTD_getErrorName(z));
            return FL_ERR_INTERNAL;
        }
        if (zdst != dst + FLZ_HEADER_SIZE) {
            if (z > cap - FLZ_HEADER_SIZE)
                return FL_ERR_BUFFER_TOO_SMALL;
            memcpy(dst + FLZ_HEADER_SIZE, zdst, z);
        }
        blen = z;
    } else if (body != dst + FLZ_HEADER_SIZE) {
        if (cap - FLZ_HEADER_SIZE < w)
            return FL_ERR_BUFFER_TOO_SMALL;
        memcpy(dst + FLZ_HEADER_SIZE, body, w);
    }

    if (res) {
        /* residual = (x + r) - what the receiver will reconstruct; decoded into scratch first so
         * that an error leaves the residual as it was */
        size_t k = 0;
        if (grow(&c->dec, n * sizeof(float) + 4))
            return FL_ERR_NOMEM;
        float *dec = c->dec.p;
        st = body_decode(c, s, &ky, body, w, n, dec, &k);
        if (st != FL_OK)
            return st == FL_ERR_NOMEM ? st : FL_ERR_INTERNAL;
        const float *ef = c->ef.p;
        if (s->topk != 0.0f) {
            const uint32_t *idx = c->idx.p;
            const float *v = c->vals.p;
            memcpy(res->r, ef, n * sizeof(float));
            for (size_t j = 0; j < k; j++)
                res->r[idx[j]] = ef[idx[j]] - v[j];
        } else {
            for (size_t i = 0; i < n; i++)
                res->r[i] = ef[i] - dec[i];
        }
    }
    header_write(dst, s, &ky, seed, n, w, blen);
    *written = FLZ_HEADER_SIZE + blen;
    return FL_OK;
}

/* encode_run, and on FL_ERR_NUMERIC its reason in c->why: a value of the input that is not
 * finite first (whatever stage found it), else the stage's own reason, else (a value that
 * became non-finite on the way) the rotation's sums. */
static fl_status encode(flz_ctx *c, const flz_spec *s, const flz_params *params, const float *x,
                        const float *xb, size_t n, uint8_t *dst, size_t cap, size_t *written)
{
    if (c)
        c->why[0] = 0;
    if (!c || !s || !dst || !written || (!x && n))
        return FL_ERR_INVALID_ARG;
    const fl_status st = encode_run(c, s, params, x, xb, n, dst, cap, written);
    if (st != FL_ERR_NUMERIC)
        return st;
    const float *r = params && params->residual ? params->residual->r : NULL;
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float v = (xb ? x[i] - xb[i] : x[i]) + (r ? r[i] : 0.0f);
        if (flz_finite(v)) {
            amax = fabsf(v) > amax ? fabsf(v) : amax;
            continue;
        }
        c->why[0] = 0;
        if (xb)
            return numeric(c, "element %zu, the difference %g - %g, is not finite", i,
                           (double)x[i], (double)xb[i]);
        if (r && flz_finite(x[i]))
            return numeric(c, "element %zu plus its error-feedback residual, %g + %g, is not "
                           "finite", i, (double)x[i], (double)r[i]);
        return numeric(c, "element %zu is %g, not a finite value", i, (double)x[i]);
    }
    if (s->rot_log2)
        return numeric(c, "the rotation's sums (blocks of %u values) take a value past float's "
                       "largest (3.40282e+38): the input's largest magnitude is %g",
                       1u << s->rot_log2, (double)amax);
    return numeric(c, "a value that the encoded form cannot carry (the input's largest "
                   "magnitude is %g)", (double)amax);
}

const char *flz_ctx_error(const flz_ctx *c)
{
    return c ? c->why : "";
}

fl_status flz_encode(flz_ctx *c, const flz_spec *s, const flz_params *params, const float *x,
                     size_t n, uint8_t *dst, size_t cap, size_t *written)
{
    return encode(c, s, params, x, NULL, n, dst, cap, written);
}

fl_status flz_encode_diff(flz_ctx *c, const flz_spec *s, const flz_params *params, const float *a,
                          const float *b, size_t n, uint8_t *dst, size_t cap, size_t *written)
{
    if (!c || !s || (n && (!a || !b)))
        return FL_ERR_INVALID_ARG;
    /* Plain float32 forms the difference as it writes the values; a rotation first, block by
     * block as it flips the signs (no pass over a difference vector). */
    const int no_first = s->topk == 0.0f && !(params && params->residual);
    const int plain = s->value == FLZ_VALUE_F32 && !s->rot_log2 && s->sub == 0.0f;
    if (no_first && (plain || s->rot_log2))
        return encode(c, s, params, a, b, n, dst, cap, written);
    /* Other pipelines transform the whole vector first: form the difference, then encode. */
    if (grow(&c->diff, n * sizeof(float) + 4))
        return FL_ERR_NOMEM;
    float *d = c->diff.p;
    for (size_t i = 0; i < n; i++)
        d[i] = a[i] - b[i];
    return encode(c, s, params, d, NULL, n, dst, cap, written);
}
