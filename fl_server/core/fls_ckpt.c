/* fls_ckpt.c: checkpoint encoding, validating parser, atomic file writer (see fls_ckpt.h). */
#include "fls_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_fs.h"
#include "fls_bytes.h"

static const uint8_t CKPT_MAGIC[8] = {'F', 'L', 'S', 'C', 'K', 'P', 'T', 0};
#define HEAD_LEN 24u /* magic, version, flags, body_len */

/* Sections 1-4 always, in order; then the optional ones, in tag order: TAG_TARGET only when the
 * run ended at its target accuracy, TAG_RUN when the run has an id, TAG_CONFIG when the writer
 * recorded its configuration's text. A file without them (older, or a run without either) reads
 * as "not reached", "no id" and "no text". */
enum {
    TAG_META = 1, TAG_MODEL = 2, TAG_OPT = 3, TAG_POLICY = 4, TAG_COUNT = 4,
    TAG_TARGET = 5, TAG_RUN = 6, TAG_CONFIG = 7
};

/* The CONFIG text: 1..FLS_CKPT_CONFIG_MAX bytes, printable ASCII and newlines only (it is shown
 * to an operator), ending in a newline. */
static int config_text_ok(const char *t, size_t n)
{
    if (n == 0 || n > FLS_CKPT_CONFIG_MAX || t[n - 1] != '\n')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] != '\n' && (t[i] < 0x20 || t[i] > 0x7e))
            return 0;
    return 1;
}

void fls_ckpt_clear(fls_ckpt *c)
{
    if (!c)
        return;
    free(c->params);
    for (size_t i = 0; i < c->n_opt && i < FLS_CKPT_MAX_OPT; i++)
        free(c->opt[i].data);
    free(c->policy);
    free(c->config);
    memset(c, 0, sizeof *c);
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* What fls_ckpt_serialize and fls_ckpt_write refuse to write (see fls_ckpt.h). */
static fl_status ckpt_check(const fls_ckpt *c)
{
    const size_t arch_len = strnlen(c->arch, FLS_CKPT_ARCH_MAX);
    /* an empty arch and a reached target outside [0, 1] too: parse_meta and the TARGET section
     * refuse them (until 2026-12-07 such a checkpoint was written, and could not be resumed) */
    if (arch_len == 0 || arch_len >= FLS_CKPT_ARCH_MAX || c->n_opt > FLS_CKPT_MAX_OPT ||
        (c->target_reached && !(c->target_acc >= 0.0 && c->target_acc <= 1.0)) ||
        (!c->params && c->n_params) || (!c->policy && c->policy_len) ||
        (c->config_len && (!c->config || !config_text_ok(c->config, c->config_len))))
        return FL_ERR_INVALID_ARG;
    for (size_t i = 0; i < c->n_opt; i++) {
        const size_t nl = strnlen(c->opt[i].name, FLS_CKPT_NAME_MAX);
        if (nl == 0 || nl >= FLS_CKPT_NAME_MAX || (!c->opt[i].data && c->opt[i].n))
            return FL_ERR_INVALID_ARG;
        if (!all_finite(c->opt[i].data, c->opt[i].n))
            return FL_ERR_NUMERIC;
    }
    if (!all_finite(c->params, c->n_params))
        return FL_ERR_NUMERIC;
    if (c->config_len) { /* the parser refuses a text that is not the digest's: never write one */
        uint8_t d[FL_SHA256_LEN];
        if (fl_sha256_digest(d, c->config, c->config_len) != FL_OK ||
            memcmp(d, c->config_digest, FL_SHA256_LEN) != 0)
            return FL_ERR_INVALID_ARG;
    }
    return FL_OK;
}

/* The payload bytes of section tag (of one that c has: sec_has). */
static uint64_t sec_len(const fls_ckpt *c, uint32_t tag)
{
    uint64_t n = 0;
    switch (tag) {
    case TAG_META:
        return FL_SHA256_LEN + 8 + 8 + 4 + strlen(c->arch);
    case TAG_MODEL:
        return 8 + 4 * (uint64_t)c->n_params;
    case TAG_OPT:
        n = 4 + 8 + 4;
        for (size_t i = 0; i < c->n_opt; i++)
            n += 4 + strlen(c->opt[i].name) + 8 + 4 * (uint64_t)c->opt[i].n;
        return n;
    case TAG_POLICY:
        return c->policy_len;
    case TAG_TARGET:
    case TAG_RUN:
        return 8;
    case TAG_CONFIG:
        return c->config_len;
    }
    return 0;
}

static int sec_has(const fls_ckpt *c, uint32_t tag)
{
    return tag <= TAG_COUNT || (tag == TAG_TARGET && c->target_reached) ||
           (tag == TAG_RUN && c->run_id) || (tag == TAG_CONFIG && c->config_len);
}

/* The file's bytes: the header, the sections, the SHA-256 of all of them. */
static uint64_t ckpt_len(const fls_ckpt *c)
{
    uint64_t n = HEAD_LEN + FL_SHA256_LEN;
    for (uint32_t t = TAG_META; t <= TAG_CONFIG; t++)
        if (sec_has(c, t))
            n += 4 + 8 + sec_len(c, t);
    return n;
}

/* Where the encoder's bytes go: into mem, a buffer of exactly ckpt_len bytes; or to sink (the
 * temporary file, or a caller's: fls_ckpt_stream), through buf (small pieces gathered; a piece
 * of the buffer's size or more, the model's and the optimizer's arrays, given from where it
 * lies), hashed on the way. Nothing more is put after a failed write (e) or hash (st). */
enum { OUT_BUF = 16 << 10 };
typedef struct ck_out {
    uint64_t len; /* bytes put so far (counted on past cap: the disagreement is then seen) */
    uint8_t *mem;
    uint64_t cap; /* mem's bytes */
    int (*sink)(void *user, const void *p, size_t n); /* 0 or an errno */
    void *user;
    fl_sha256 *h;
    uint8_t *buf; /* OUT_BUF bytes */
    size_t fill;
    int e;
    fl_status st;
} ck_out;

static void out_flush(ck_out *o)
{
    if (o->fill && !o->e)
        o->e = o->sink(o->user, o->buf, o->fill);
    o->fill = 0;
}

static void put(ck_out *o, const void *src, size_t n)
{
    if (o->mem) {
        if (n && o->len <= o->cap && n <= o->cap - o->len)
            memcpy(o->mem + o->len, src, n);
        o->len += n;
        return;
    }
    o->len += n;
    if (o->e || o->st != FL_OK || n == 0)
        return;
    o->st = fl_sha256_update(o->h, src, n);
    if (o->st != FL_OK)
        return;
    if (o->fill + n > OUT_BUF)
        out_flush(o);
    if (n >= OUT_BUF) {
        if (!o->e)
            o->e = o->sink(o->user, src, n);
        return;
    }
    memcpy(o->buf + o->fill, src, n);
    o->fill += n;
}

static void put_u32(ck_out *o, uint32_t v)
{
    const uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}

static void put_u64(ck_out *o, uint64_t v)
{
    put_u32(o, (uint32_t)v);
    put_u32(o, (uint32_t)(v >> 32));
}

/* Floats as little-endian IEEE bits: as they lie in memory on a little-endian machine (no copy),
 * else swapped a block at a time. */
static void put_f32s(ck_out *o, const float *x, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    put(o, x, n * sizeof *x);
#else
    uint8_t b[4096];
    while (n) {
        const size_t k = n < sizeof b / 4 ? n : sizeof b / 4;
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            b[4 * i] = (uint8_t)u;
            b[4 * i + 1] = (uint8_t)(u >> 8);
            b[4 * i + 2] = (uint8_t)(u >> 16);
            b[4 * i + 3] = (uint8_t)(u >> 24);
        }
        put(o, b, 4 * k);
        x += k;
        n -= k;
    }
#endif
}

/* Everything but the trailing SHA-256; c checked by ckpt_check. Each section's length is
 * sec_len's, written before its payload (tests/unit/test_checkpoint.c's test_format_unchanged
 * holds these bytes to what earlier builds wrote). */
static void put_body(ck_out *o, const fls_ckpt *c)
{
    put(o, CKPT_MAGIC, sizeof CKPT_MAGIC);
    put_u32(o, FLS_CKPT_VERSION);
    put_u32(o, 0);
    put_u64(o, ckpt_len(c) - HEAD_LEN - FL_SHA256_LEN);
    for (uint32_t t = TAG_META; t <= TAG_CONFIG; t++) {
        if (!sec_has(c, t))
            continue;
        put_u32(o, t);
        put_u64(o, sec_len(c, t));
        switch (t) {
        case TAG_META: {
            const size_t al = strlen(c->arch);
            put(o, c->config_digest, FL_SHA256_LEN);
            put_u64(o, c->round);
            put_u64(o, c->model_version);
            put_u32(o, (uint32_t)al);
            put(o, c->arch, al);
            break;
        }
        case TAG_MODEL:
            put_u64(o, c->n_params);
            put_f32s(o, c->params, c->n_params);
            break;
        case TAG_OPT:
            put_u32(o, c->opt_kind);
            put_u64(o, c->opt_steps);
            put_u32(o, (uint32_t)c->n_opt);
            for (size_t i = 0; i < c->n_opt; i++) {
                const size_t nl = strlen(c->opt[i].name);
                put_u32(o, (uint32_t)nl);
                put(o, c->opt[i].name, nl);
                put_u64(o, c->opt[i].n);
                put_f32s(o, c->opt[i].data, c->opt[i].n);
            }
            break;
        case TAG_POLICY:
            put(o, c->policy, c->policy_len);
            break;
        case TAG_TARGET: {
            uint64_t u;
            memcpy(&u, &c->target_acc, 8);
            put_u64(o, u);
            break;
        }
        case TAG_RUN:
            put_u64(o, c->run_id);
            break;
        case TAG_CONFIG:
            put(o, c->config, c->config_len);
            break;
        }
    }
}

/* The size is computed first and the buffer allocated once, at that size (it grew by doubling:
 * up to twice the state, beside the state itself). */
fl_status fls_ckpt_serialize(const fls_ckpt *c, uint8_t **buf, size_t *len)
{
    if (!c || !buf || !len)
        return FL_ERR_INVALID_ARG;
    *buf = NULL;
    *len = 0;
    fl_status st = ckpt_check(c);
    if (st != FL_OK)
        return st;
    const uint64_t n = ckpt_len(c);
    if (n > SIZE_MAX)
        return FL_ERR_NOMEM;
    uint8_t *p = malloc((size_t)n);
    if (!p)
        return FL_ERR_NOMEM;
    ck_out o = {.mem = p, .cap = n - FL_SHA256_LEN};
    put_body(&o, c);
    const uint64_t body = o.len;
    if (body != n - FL_SHA256_LEN) { /* sec_len and put_body disagree: a bug, never a file */
        free(p);
        return FL_ERR_INTERNAL;
    }
    if ((st = fl_sha256_digest(p + body, p, (size_t)body)) != FL_OK) {
        free(p);
        return st;
    }
    *buf = p;
    *len = (size_t)n;
    return FL_OK;
}

#define fail fl_errf

/* Where the parser's bytes come from: the whole file in memory (mem), or a file read in order
 * through buf (IN_BUF bytes), a piece at a time, an array of buf's size or more straight into the
 * allocation that keeps it. Each byte before the trailing SHA-256 is hashed as it is taken, so a
 * file is read once and never held whole: what a read allocates is what the parse keeps. */
enum { IN_BUF = 16 << 10 };
typedef struct ck_in {
    const uint8_t *mem;
    int fd;
    uint8_t *buf;
    size_t fill, at; /* buf's bytes read, taken */
    uint64_t pos;    /* bytes taken */
    uint64_t len;    /* the file's */
    fl_sha256 *h;
    fl_status st;    /* FL_ERR_IO (a failed read: errno in e; 0: the file ended early), or the
                      * hash's; nothing more is taken after it */
    int e;
} ck_in;

/* Hashes the n bytes at p, those at [pos, pos + n) of the file, that come before its checksum. */
static void in_hash(ck_in *in, const uint8_t *p, size_t n)
{
    const uint64_t end = in->len - FL_SHA256_LEN;
    if (in->st == FL_OK && in->pos < end && n)
        in->st = fl_sha256_update(in->h, p, end - in->pos < n ? (size_t)(end - in->pos) : n);
}

/* read(2) of 1 to n bytes into dst; 0 (in->st set) on an error or at the file's end. */
static size_t in_read(ck_in *in, uint8_t *dst, size_t n)
{
    for (;;) {
        const ssize_t k = read(in->fd, dst, n);
        if (k > 0)
            return (size_t)k;
        if (k < 0 && errno == EINTR)
            continue;
        in->e = k < 0 ? errno : 0;
        in->st = FL_ERR_IO;
        return 0;
    }
}

/* Takes the next n bytes (into dst; NULL: skipped), hashing them. 0 if they could not be read
 * (in->st says why). The parser never asks for bytes past the file's end. */
static int in_take(ck_in *in, void *dst, size_t n)
{
    uint8_t *d = dst;
    if (in->st != FL_OK)
        return 0;
    if (n > in->len - in->pos) {
        in->st = FL_ERR_INTERNAL;
        return 0;
    }
    if (in->mem) {
        in_hash(in, in->mem + in->pos, n);
        if (d && n)
            memcpy(d, in->mem + in->pos, n);
        in->pos += n;
        return in->st == FL_OK;
    }
    while (n && in->st == FL_OK) {
        if (in->at == in->fill) {
            if (d && n >= IN_BUF) { /* an array's bytes: read where they are kept */
                const size_t k = in_read(in, d, n);
                in_hash(in, d, k);
                in->pos += k;
                d += k;
                n -= k;
                continue;
            }
            const uint64_t left = in->len - in->pos;
            in->at = 0;
            in->fill = in_read(in, in->buf, left < IN_BUF ? (size_t)left : IN_BUF);
            continue;
        }
        const size_t k = in->fill - in->at < n ? in->fill - in->at : n;
        in_hash(in, in->buf + in->at, k);
        if (d) {
            memcpy(d, in->buf + in->at, k);
            d += k;
        }
        in->at += k;
        in->pos += k;
        n -= k;
    }
    return in->st == FL_OK;
}

/* One section's payload, left bytes of it still to take: a read past its end (or a failed one)
 * sets bad and gives zeros. */
typedef struct ck_sec {
    ck_in *in;
    uint64_t left;
    int bad;
} ck_sec;

static int s_take(ck_sec *s, void *dst, size_t n)
{
    if (s->bad || n > s->left || !in_take(s->in, dst, n)) {
        s->bad = 1;
        if (dst && n)
            memset(dst, 0, n);
        return 0;
    }
    s->left -= n;
    return 1;
}

static uint32_t s_u32(ck_sec *s)
{
    uint8_t b[4];
    s_take(s, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t s_u64(ck_sec *s)
{
    const uint64_t lo = s_u32(s);
    return lo | (uint64_t)s_u32(s) << 32;
}

/* Reads n finite floats of a section into a new array (n already bounded by the section). */
static fl_status read_floats(ck_sec *s, size_t n, float **out)
{
    *out = NULL;
    if (n > s->left / 4) {
        s->bad = 1;
        return FL_ERR_CHECKPOINT_FORMAT;
    }
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x)
        return FL_ERR_NOMEM;
    if (!s_take(s, x, n * sizeof *x)) {
        free(x);
        return FL_ERR_CHECKPOINT_FORMAT;
    }
#if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
    const uint8_t *b = (const uint8_t *)x; /* little-endian bits, made native in place */
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                           (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&x[i], &u, 4);
    }
#endif
    if (!all_finite(x, n)) {
        free(x);
        return FL_ERR_CHECKPOINT_FORMAT;
    }
    *out = x;
    return FL_OK;
}

static fl_status parse_meta(ck_sec *s, fls_ckpt *c, char *err, size_t errlen)
{
    uint8_t d[FL_SHA256_LEN];
    s_take(s, d, FL_SHA256_LEN);
    c->round = s_u64(s);
    c->model_version = s_u64(s);
    const uint32_t al = s_u32(s);
    if (s->bad || al == 0 || al >= FLS_CKPT_ARCH_MAX)
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "META section malformed");
    memcpy(c->config_digest, d, FL_SHA256_LEN);
    char a[FLS_CKPT_ARCH_MAX];
    if (!s_take(s, a, al) || memchr(a, 0, al))
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "META arch string malformed");
    memcpy(c->arch, a, al);
    c->arch[al] = 0;
    if (s->left)
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "META section has trailing bytes");
    return FL_OK;
}

static fl_status parse_model(ck_sec *s, fls_ckpt *c, char *err, size_t errlen)
{
    const uint64_t n = s_u64(s);
    if (s->bad || n != s->left / 4 || s->left % 4)
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "MODEL length disagrees with count");
    fl_status st = read_floats(s, (size_t)n, &c->params);
    if (st != FL_OK)
        return fail(err, errlen, st, "MODEL parameters unreadable or non-finite");
    c->n_params = (size_t)n;
    return FL_OK;
}

static fl_status parse_opt(ck_sec *s, fls_ckpt *c, char *err, size_t errlen)
{
    c->opt_kind = s_u32(s);
    c->opt_steps = s_u64(s);
    const uint32_t na = s_u32(s);
    if (s->bad || na > FLS_CKPT_MAX_OPT)
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "OPT section header malformed");
    for (uint32_t i = 0; i < na; i++) {
        const uint32_t nl = s_u32(s);
        char name[FLS_CKPT_NAME_MAX];
        if (s->bad || nl == 0 || nl >= FLS_CKPT_NAME_MAX || !s_take(s, name, nl) ||
            memchr(name, 0, nl))
            return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "OPT array %u name malformed", i);
        const uint64_t n = s_u64(s);
        if (s->bad || n > s->left / 4)
            return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "OPT array %u truncated", i);
        memcpy(c->opt[i].name, name, nl);
        c->opt[i].name[nl] = 0;
        fl_status st = read_floats(s, (size_t)n, &c->opt[i].data);
        if (st != FL_OK)
            return fail(err, errlen, st, "OPT array %u unreadable or non-finite", i);
        c->opt[i].n = (size_t)n;
        c->n_opt = i + 1;
    }
    if (s->left)
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "OPT section has trailing bytes");
    return FL_OK;
}

/* The sections of a version-1 file whose header is taken, up to the checksum (end). */
static fl_status parse_sections(ck_in *in, uint64_t end, fls_ckpt *out, char *err, size_t errlen)
{
    fl_status st = FL_OK;
    for (uint32_t want = 1; want <= TAG_COUNT && st == FL_OK; want++) {
        ck_sec h = {in, end - in->pos, 0};
        const uint32_t tag = s_u32(&h);
        const uint64_t sl = s_u64(&h);
        if (h.bad || tag != want || sl > end - in->pos)
            return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                        "section %u missing, out of order or truncated", want);
        ck_sec s = {in, sl, 0};
        switch (tag) {
        case TAG_META:
            st = parse_meta(&s, out, err, errlen);
            break;
        case TAG_MODEL:
            st = parse_model(&s, out, err, errlen);
            break;
        case TAG_OPT:
            st = parse_opt(&s, out, err, errlen);
            break;
        case TAG_POLICY:
            out->policy = malloc(sl ? (size_t)sl : 1);
            if (!out->policy)
                return FL_ERR_NOMEM;
            if (!s_take(&s, out->policy, (size_t)sl)) /* only a failed read */
                return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "POLICY section unreadable");
            out->policy_len = (size_t)sl;
            break;
        }
    }
    /* The optional sections: each at most once, in increasing tag order; 8 bytes each but the
     * CONFIG text. */
    uint32_t last = TAG_COUNT;
    while (st == FL_OK && in->pos != end) {
        ck_sec h = {in, end - in->pos, 0};
        const uint32_t tag = s_u32(&h);
        const uint64_t sl = s_u64(&h);
        if (h.bad || tag <= TAG_COUNT)
            return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "trailing section (tag %u) cut "
                        "short or misplaced", tag);
        if (tag > TAG_CONFIG) /* the file is whole (its digest matched): a later section */
            return fail(err, errlen, FL_ERR_CHECKPOINT_NEWER, "a section this build does not "
                        "know (tag %u): a later fedrop wrote it and resumes it", tag);
        const uint64_t rest = end - in->pos;
        if (tag == TAG_CONFIG && tag > last && sl <= rest) {
            ck_sec s = {in, sl, 0};
            char *t = sl && sl <= FLS_CKPT_CONFIG_MAX ? malloc((size_t)sl) : NULL;
            if (!t && sl && sl <= FLS_CKPT_CONFIG_MAX)
                return FL_ERR_NOMEM;
            uint8_t d[FL_SHA256_LEN];
            if (!t || !s_take(&s, t, (size_t)sl) || !config_text_ok(t, (size_t)sl) ||
                fl_sha256_digest(d, t, (size_t)sl) != FL_OK ||
                memcmp(d, out->config_digest, FL_SHA256_LEN) != 0) {
                free(t);
                return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "config section: not the "
                            "text of the configuration digest in META");
            }
            out->config = t;
            out->config_len = (size_t)sl;
            last = tag;
            continue;
        }
        if (tag <= last || sl != 8 || rest < 8)
            return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                        "optional section %u repeated, out of order, or of a wrong length", tag);
        ck_sec t = {in, 8, 0};
        const uint64_t u = s_u64(&t);
        last = tag;
        if (tag == TAG_TARGET) {
            double acc;
            memcpy(&acc, &u, 8);
            if (!(acc >= 0.0 && acc <= 1.0))
                return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                            "target section: accuracy %g is not in [0, 1]", acc);
            out->target_reached = 1;
            out->target_acc = acc;
        } else {
            out->run_id = u;
            if (!out->run_id)
                return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "run section: id 0");
        }
    }
    return st;
}

/* fls_ckpt_parse of the bytes in gives, taken once and in order. A fault in a section is said
 * only when the file's checksum matches (the rest of the file is hashed after it); else the
 * mismatch is, as when the whole file was hashed before its sections were read. */
static fl_status parse_in(ck_in *in, fls_ckpt *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = 0;
    uint8_t head[HEAD_LEN] = {0}; /* read below even when in_take failed (in->st says so) */
    if (in->len < HEAD_LEN + FL_SHA256_LEN)
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "not a fedrop checkpoint");
    fl_status st = fl_sha256_new(&in->h);
    if (st != FL_OK)
        return st;
    if (in_take(in, head, HEAD_LEN) && memcmp(head, CKPT_MAGIC, sizeof CKPT_MAGIC) != 0) {
        fl_sha256_free(in->h);
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "not a fedrop checkpoint");
    }
    fls_rbuf hb = {head, HEAD_LEN, 8, 0};
    const uint32_t version = fls_r_u32(&hb), flags = fls_r_u32(&hb);
    const uint64_t body_len = fls_r_u64(&hb);
    const uint64_t end = in->len - FL_SHA256_LEN;
    if (in->st == FL_OK && version == FLS_CKPT_VERSION) {
        if (flags != 0)
            st = fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "unknown checkpoint flags 0x%x",
                      flags);
        else if (body_len != end - HEAD_LEN)
            st = fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                      "checkpoint truncated or extended: body %llu bytes, file holds %llu",
                      (unsigned long long)body_len, (unsigned long long)(end - HEAD_LEN));
        if (st != FL_OK) { /* said whatever the checksum, as before */
            fl_sha256_free(in->h);
            return st;
        }
        st = parse_sections(in, end, out, err, errlen);
    }
    /* what is left of the body (all of it after a fault), then the checksum */
    uint8_t want[FL_SHA256_LEN], digest[FL_SHA256_LEN];
    if (in->pos < end)
        in_take(in, NULL, (size_t)(end - in->pos));
    if (in_take(in, want, FL_SHA256_LEN))
        in->st = fl_sha256_final(in->h, digest);
    fl_sha256_free(in->h);
    in->h = NULL;
    const int sealed = in->st == FL_OK && memcmp(digest, want, FL_SHA256_LEN) == 0;
    if (in->st != FL_OK) {
        st = in->st == FL_ERR_IO ? fail(err, errlen, FL_ERR_IO, "read failed") : in->st;
    } else if (version > FLS_CKPT_VERSION && sealed) {
        /* A later version whose file ends with the digest of the rest, as every version so
         * far: whole, and only this build is too old for it (a rollback to an earlier fedrop). */
        st = fail(err, errlen, FL_ERR_CHECKPOINT_NEWER,
                  "checkpoint format version %u, newer than this build reads (%u): a later "
                  "fedrop wrote it and resumes it", version, FLS_CKPT_VERSION);
    } else if (version != FLS_CKPT_VERSION) {
        st = fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                  "checkpoint format version %u, this build reads %u", version,
                  FLS_CKPT_VERSION);
    } else if (!sealed) {
        st = fail(err, errlen, FL_ERR_CHECKPOINT_CHECKSUM, "checkpoint SHA-256 mismatch");
    }
    if (st != FL_OK) {
        fls_ckpt_clear(out);
        return st;
    }
    memcpy(out->sha256, digest, FL_SHA256_LEN);
    return FL_OK;
}

fl_status fls_ckpt_parse(const uint8_t *buf, size_t len, fls_ckpt *out, char *err, size_t errlen)
{
    if (!out || (!buf && len))
        return FL_ERR_INVALID_ARG;
    ck_in in = {.mem = buf, .fd = -1, .len = len};
    return parse_in(&in, out, err, errlen);
}

fl_status fls_ckpt_check_digest(const fls_ckpt *c, const uint8_t digest[FL_SHA256_LEN])
{
    if (!c || !digest)
        return FL_ERR_INVALID_ARG;
    return memcmp(c->config_digest, digest, FL_SHA256_LEN) == 0 ? FL_OK
                                                                : FL_ERR_CHECKPOINT_MISMATCH;
}

/* ---- files ------------------------------------------------------------------------------------ */

/* The file's bytes through o's sink (c checked), its SHA-256 last; o->e: the sink's error. */
static fl_status out_stream(ck_out *o, const fls_ckpt *c)
{
    if ((o->st = fl_sha256_new(&o->h)) != FL_OK)
        return o->st;
    put_body(o, c);
    uint8_t digest[FL_SHA256_LEN];
    if (o->st == FL_OK && !o->e)
        o->st = fl_sha256_final(o->h, digest);
    if (o->st == FL_OK && !o->e)
        put(o, digest, FL_SHA256_LEN);
    out_flush(o);
    fl_sha256_free(o->h);
    o->h = NULL;
    if (o->st != FL_OK)
        return o->st;
    if (!o->e && o->len != ckpt_len(c))
        return FL_ERR_INTERNAL; /* sec_len and put_body disagree: the bytes are not a file */
    return FL_OK;
}

uint64_t fls_ckpt_size(const fls_ckpt *c)
{
    return c ? ckpt_len(c) : 0;
}

fl_status fls_ckpt_stream(const fls_ckpt *c, int (*sink)(void *user, const void *p, size_t n),
                          void *user)
{
    if (!c || !sink)
        return FL_ERR_INVALID_ARG;
    fl_status st = ckpt_check(c);
    if (st != FL_OK)
        return st;
    uint8_t buf[OUT_BUF];
    ck_out o = {.sink = sink, .user = user, .buf = buf};
    st = out_stream(&o, c);
    if (st == FL_OK && o.e) {
        errno = o.e;
        return FL_ERR_IO;
    }
    return st;
}

static int atomic_sink(void *user, const void *p, size_t n)
{
    return fl_atomic_write(user, p, n);
}

/* Streamed: the sections go to the temporary file from where they lie, through a 16 KiB buffer,
 * and are hashed on the way; no copy of the state is made (a serialized copy was, up to twice
 * the state's size, beside the snapshot the caller holds). */
fl_status fls_ckpt_write(const char *path, const fls_ckpt *c, const fl_logger *log)
{
    if (!path || !*path || !c)
        return FL_ERR_INVALID_ARG;
    /* The temporary and the directory first, before any work: a process out of descriptors
     * (EMFILE, a storm of connections) fails here at once, without encoding the model. */
    fl_atomic a;
    uint8_t buf[OUT_BUF];
    ck_out o = {.sink = atomic_sink, .user = &a, .buf = buf};
    fl_status st = FL_OK;
    int e = fl_atomic_open(&a, path, 0644);
    if (!e && ((st = ckpt_check(c)) != FL_OK || (st = out_stream(&o, c)) != FL_OK))
        goto out;
    if (!e)
        e = o.e;
    if (!e)
        e = fl_atomic_commit(&a, path, 0);
    if (e) {
        st = e == ENOMEM ? FL_ERR_NOMEM : FL_ERR_IO;
        /* after the rename, PATH is the new checkpoint: only its durability failed */
        fl_log(log, FL_LOG_ERROR, "checkpoint %s: %s: %s", path, a.what, strerror(e));
    } else {
        fl_log(log, FL_LOG_INFO, "checkpoint: wrote %s (%llu bytes, next round %llu)", path,
               (unsigned long long)o.len, (unsigned long long)c->round);
    }
out:
    fl_atomic_end(&a);
    if (e)
        errno = e; /* the failed call's, whatever the clean-up did */
    return st;
}

fl_status fls_ckpt_read(const char *path, size_t max_bytes, fls_ckpt *out, char *err,
                        size_t errlen)
{
    if (!path || !out)
        return FL_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    /* 0: no bound but the file's own size (until 2026-12-07, 16 GiB, which a server with a
     * model of 1.43e9 parameters and fedadam's two arrays wrote past: checkpoints it could not
     * resume from); every length the file declares is checked against the bytes left */
    if (max_bytes == 0)
        max_bytes = SIZE_MAX;
    /* O_NONBLOCK: a FIFO put in its place would otherwise block the open for good; anything but
     * a regular file is refused before a byte is read */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail(err, errlen, FL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 0) {
        close(fd);
        return fail(err, errlen, FL_ERR_IO, "cannot stat %s", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(err, errlen, FL_ERR_IO, "%s is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        close(fd);
        return fail(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "%s is larger than %zu bytes", path,
                    max_bytes);
    }
    const fl_status st = fls_ckpt_read_fd(fd, 0, (uint64_t)sb.st_size, out, err, errlen);
    const int e = errno;
    close(fd);
    if (st == FL_ERR_IO)
        return fail(err, errlen, FL_ERR_IO, "cannot read %s: %s", path,
                    e ? strerror(e) : "it ended early (cut short while it was read)");
    return st;
}

/* Read once, in order, through a buffer on the stack and hashed on the way: the file is never
 * held whole beside what its parse keeps (the model and the optimizer's arrays, the state's
 * bytes again), which made a resume hold two states beside the engine's. */
fl_status fls_ckpt_read_fd(int fd, uint64_t off, uint64_t len, fls_ckpt *out, char *err,
                           size_t errlen)
{
    if (fd < 0 || !out)
        return FL_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (off > INT64_MAX || lseek(fd, (off_t)off, SEEK_SET) != (off_t)off)
        return fail(err, errlen, FL_ERR_IO, "cannot seek: %s", strerror(errno));
    uint8_t buf[IN_BUF];
    ck_in in = {.fd = fd, .buf = buf, .len = len};
    const fl_status st = parse_in(&in, out, err, errlen);
    if (st == FL_ERR_IO) {
        fail(err, errlen, FL_ERR_IO, "cannot read: %s",
             in.e ? strerror(in.e) : "it ended early (cut short while it was read)");
        errno = in.e; /* 0: it ended early */
    }
    return st;
}
