/* fls_bytes.h: little-endian writers and bounds-checked readers for the server core's binary
 * formats (checkpoints, exported policy state). Internal to fl_server/core; header-only.
 *
 * A writer grows a malloc'ed buffer; after an allocation failure it sets `failed` and ignores
 * further writes, so callers check once at the end. A reader never reads past its end: a short
 * read sets `bad`, returns zeros, and every later read fails too.
 */
#ifndef FLS_BYTES_H
#define FLS_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct fls_wbuf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} fls_wbuf;

static inline void fls_w_bytes(fls_wbuf *w, const void *src, size_t n)
{
    if (w->failed)
        return;
    if (n > SIZE_MAX - w->len) {
        w->failed = 1;
        return;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap = cap > SIZE_MAX / 2 ? w->len + n : cap * 2;
        uint8_t *np = realloc(w->p, cap);
        if (!np) {
            w->failed = 1;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    if (n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static inline void fls_w_u8(fls_wbuf *w, uint8_t v)
{
    fls_w_bytes(w, &v, 1);
}

static inline void fls_w_u32(fls_wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fls_w_bytes(w, b, 4);
}

static inline void fls_w_u64(fls_wbuf *w, uint64_t v)
{
    fls_w_u32(w, (uint32_t)v);
    fls_w_u32(w, (uint32_t)(v >> 32));
}

static inline void fls_w_f64(fls_wbuf *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    fls_w_u64(w, u);
}

static inline void fls_w_f32(fls_wbuf *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    fls_w_u32(w, u);
}

/* Floats as little-endian IEEE bits, n of them. */
static inline void fls_w_f32s(fls_wbuf *w, const float *x, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    fls_w_bytes(w, x, n * sizeof *x);
#else
    for (size_t i = 0; i < n; i++)
        fls_w_f32(w, x[i]);
#endif
}

typedef struct fls_rbuf {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} fls_rbuf;

static inline const uint8_t *fls_r_take(fls_rbuf *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p + r->pos;
    r->pos += n;
    return q;
}

static inline uint8_t fls_r_u8(fls_rbuf *r)
{
    const uint8_t *q = fls_r_take(r, 1);
    return q ? q[0] : 0;
}

static inline uint32_t fls_r_u32(fls_rbuf *r)
{
    const uint8_t *q = fls_r_take(r, 4);
    return q ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24
             : 0;
}

static inline uint64_t fls_r_u64(fls_rbuf *r)
{
    const uint64_t lo = fls_r_u32(r);
    return lo | (uint64_t)fls_r_u32(r) << 32;
}

static inline double fls_r_f64(fls_rbuf *r)
{
    const uint64_t u = fls_r_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static inline float fls_r_f32(fls_rbuf *r)
{
    const uint32_t u = fls_r_u32(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Reads n floats into x; returns 0 and sets bad on a short buffer. */
static inline int fls_r_f32s(fls_rbuf *r, float *x, size_t n)
{
    if (n > (r->len - r->pos) / 4 || r->bad) {
        r->bad = 1;
        return 0;
    }
    if (n == 0)
        return 1;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(x, fls_r_take(r, n * 4), n * 4);
#else
    for (size_t i = 0; i < n; i++)
        x[i] = fls_r_f32(r);
#endif
    return 1;
}

#endif
