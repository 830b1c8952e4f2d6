/* flp_wire.c: the only code that includes the generated fl.pb-c.h.
 *
 * Decoding runs in four stages, each refusing before the next one spends anything:
 *   1. size cap (lim->max_msg_bytes);
 *   2. a pre-scan of the raw protobuf wire format: every tag and length must be well formed, the
 *      number of fields is capped, and the repeated submessages that drive allocations (tensors,
 *      keep layers, metrics) are counted against their caps, so protobuf-c never allocates
 *      thousands of empty submessages or field records;
 *   3. protobuf_c_message_unpack;
 *   4. conversion into flp_msg (version, type/body match, array sizes) and flp_validate().
 * Encoding runs flp_validate() first, so we never send what a peer would refuse.
 */
#include "flp_wire.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl.pb-c.h"

/* ---- errors ----------------------------------------------------------------------------------- */

#define fail fl_errf

static void ok_msg(char *err, size_t errcap)
{
    if (err && errcap)
        err[0] = '\0';
}

flp_limits flp_limits_default(void)
{
    flp_limits l = {
        .max_msg_bytes = (size_t)16 << 20,
        .max_tensors = 1024,
        .max_layers = 256,
        .max_units = 1u << 20,
        .max_chunk_elems = 1u << 20,
        .max_chunks = 1u << 16,
        .max_metrics = 64,
        .max_str = 1024,
        .max_fields = 1u << 16,
    };
    return l;
}

/* Limits that only the structure of a message can break (used by flp_encode_bound). */
static flp_limits limits_unbounded(void)
{
    flp_limits l = {
        .max_msg_bytes = SIZE_MAX,
        .max_tensors = UINT32_MAX,
        .max_layers = UINT32_MAX,
        .max_units = UINT32_MAX,
        .max_chunk_elems = UINT32_MAX,
        .max_chunks = UINT32_MAX,
        .max_metrics = UINT32_MAX,
        .max_str = UINT32_MAX,
        .max_fields = UINT32_MAX,
    };
    return l;
}

const char *flp_type_name(flp_type t)
{
    switch (t) {
    case FLP_HELLO: return "hello";
    case FLP_TASK: return "task";
    case FLP_UPDATE: return "update";
    case FLP_CHUNK: return "chunk";
    case FLP_ACK: return "ack";
    case FLP_ERROR: return "error";
    case FLP_HEARTBEAT: return "heartbeat";
    case FLP_BYE: return "bye";
    }
    return "unknown";
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* ---- validation ------------------------------------------------------------------------------- */

/* The length of the UTF-8 sequence at s (1-4), or 0 if it is not one: a stray continuation or
 * an invalid lead byte, a truncated sequence, an overlong form, a surrogate or a code point
 * above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *s)
{
    const unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int is_control(const unsigned char *u)
{
    return u[0] < 0x20 || u[0] == 0x7f || (u[0] == 0xc2 && u[1] < 0xa0);
}

size_t flp_str_fix(char *s)
{
    size_t fixed = 0;
    for (unsigned char *u = (unsigned char *)s; u && *u;) {
        const size_t len = utf8_seq(u);
        if (len == 0 || is_control(u)) {
            for (size_t i = 0; i < (len ? len : 1); i++)
                u[i] = '?';
            fixed += len ? len : 1;
            u += len ? len : 1;
        } else {
            u += len;
        }
    }
    return fixed;
}

/* A string field: UTF-8 (proto3 requires it of `string`: FIELD), at most lim->max_str bytes
 * (LIMIT), non-empty when required (FIELD), and no control character, C0, DEL or C1 (U+0080..
 * U+009F; U+009B is a terminal's CSI) (FIELD): ids and names end up in logs and file names. */
static fl_status check_str(const char *field, const char *s, bool required, const flp_limits *lim,
                           char *err, size_t errcap)
{
    s = str_or_empty(s);
    size_t n = 0;
    while (s[n]) {
        if (n >= lim->max_str)
            return fail(err, errcap, FL_ERR_WIRE_LIMIT, "%s: longer than %u bytes", field,
                        lim->max_str);
        const unsigned char *u = (const unsigned char *)s + n;
        const size_t len = utf8_seq(u);
        if (len == 0)
            return fail(err, errcap, FL_ERR_WIRE_FIELD, "%s: not UTF-8 at byte %zu (0x%02x)",
                        field, n, u[0]);
        if (is_control(u))
            return fail(err, errcap, FL_ERR_WIRE_FIELD, "%s: control character at byte %zu",
                        field, n);
        n += len;
    }
    if (n > lim->max_str)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "%s: longer than %u bytes", field,
                    lim->max_str);
    if (required && n == 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "%s: empty", field);
    return FL_OK;
}

static fl_status check_header(const char *what, uint32_t i, const flp_tensor_header *h,
                              const flp_limits *lim, char *err, size_t errcap)
{
    char field[64];
    snprintf(field, sizeof field, "%s.tensors[%u].name", what, i);
    fl_status s = check_str(field, h->name, true, lim, err, errcap);
    if (s)
        return s;
    if (h->ndim < 1 || h->ndim > FLP_MAX_DIMS)
        return fail(err, errcap, FL_ERR_WIRE_SHAPE, "%s.tensors[%u].shape: %u dims (1..%d)", what,
                    i, h->ndim, FLP_MAX_DIMS);
    uint64_t prod = 1;
    for (uint32_t d = 0; d < h->ndim; d++) {
        if (h->shape[d] == 0)
            return fail(err, errcap, FL_ERR_WIRE_SHAPE, "%s.tensors[%u].shape[%u]: zero", what, i,
                        d);
        if (prod > UINT64_MAX / h->shape[d])
            return fail(err, errcap, FL_ERR_WIRE_SHAPE, "%s.tensors[%u].shape: product overflows",
                        what, i);
        prod *= h->shape[d];
    }
    if (h->numel != prod)
        return fail(err, errcap, FL_ERR_WIRE_SHAPE,
                    "%s.tensors[%u].numel: %llu != product of shape %llu", what, i,
                    (unsigned long long)h->numel, (unsigned long long)prod);
    if (h->chunk_elems == 0)
        return fail(err, errcap, FL_ERR_WIRE_SHAPE, "%s.tensors[%u].chunk_elems: zero", what, i);
    if (h->chunk_elems > lim->max_chunk_elems)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "%s.tensors[%u].chunk_elems: %u > cap %u",
                    what, i, h->chunk_elems, lim->max_chunk_elems);
    const uint64_t want = h->numel / h->chunk_elems + (h->numel % h->chunk_elems != 0);
    if ((uint64_t)h->n_chunks != want)
        return fail(err, errcap, FL_ERR_WIRE_SHAPE,
                    "%s.tensors[%u].n_chunks: %u != ceil(numel/chunk_elems) = %llu", what, i,
                    h->n_chunks, (unsigned long long)want);
    if (h->n_chunks > lim->max_chunks)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "%s.tensors[%u].n_chunks: %u > cap %u", what,
                    i, h->n_chunks, lim->max_chunks);
    return FL_OK;
}

static fl_status check_headers(const char *what, const flp_tensor_header *hs, uint32_t n,
                               const flp_limits *lim, char *err, size_t errcap)
{
    if (n == 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "%s.tensors: none", what);
    if (n > lim->max_tensors)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "%s.tensors: %u > cap %u", what, n,
                    lim->max_tensors);
    if (!hs)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "%s.tensors: NULL array", what);
    for (uint32_t i = 0; i < n; i++) {
        const fl_status s = check_header(what, i, &hs[i], lim, err, errcap);
        if (s)
            return s;
    }
    /* Names identify tensors to the consumer: they must be unique. Quadratic, but n is capped and
     * the comparison usually stops at the first byte. */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(hs[i].name, hs[j].name) == 0)
                return fail(err, errcap, FL_ERR_WIRE_FIELD, "%s.tensors[%u].name: duplicate of [%u]",
                            what, i, j);
    return FL_OK;
}

static fl_status check_finite(const char *field, double v, char *err, size_t errcap)
{
    if (!isfinite(v))
        return fail(err, errcap, FL_ERR_WIRE_NONFINITE, "%s: not finite", field);
    return FL_OK;
}

static fl_status check_hello(const flp_hello *h, const flp_limits *lim, char *err, size_t errcap)
{
    fl_status s = check_str("hello.client_id", h->client_id, true, lim, err, errcap);
    if (s)
        return s;
    if ((int)h->backend < FLP_BACKEND_CPU || (int)h->backend > FLP_BACKEND_OTHER)
        return fail(err, errcap, FL_ERR_WIRE_ENUM, "hello.caps.backend: %d", (int)h->backend);
    if ((s = check_finite("hello.caps.flops", h->flops, err, errcap)))
        return s;
    if (h->flops < 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "hello.caps.flops: negative");
    if (h->min_version < 1 || h->min_version > h->max_version)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "hello.version range: [%u, %u]",
                    h->min_version, h->max_version);
    return FL_OK;
}

static fl_status check_task(const flp_task *t, const flp_limits *lim, char *err, size_t errcap)
{
    fl_status s;
    if ((s = check_str("task.arch", t->arch, true, lim, err, errcap)) ||
        (s = check_str("task.down_codec", t->down_codec, true, lim, err, errcap)) ||
        (s = check_str("task.up_codec", t->up_codec, true, lim, err, errcap)))
        return s;
    if (t->n_layers > lim->max_layers)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "task.keep: %u layers > cap %u", t->n_layers,
                    lim->max_layers);
    if (t->n_layers && !t->layers)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.keep: NULL array");
    for (uint32_t l = 0; l < t->n_layers; l++) {
        const flp_layer_keep *k = &t->layers[l];
        if (k->full_units == 0)
            return fail(err, errcap, FL_ERR_WIRE_KEEPSET, "task.keep[%u].full_units: zero", l);
        if (k->full_units > lim->max_units)
            return fail(err, errcap, FL_ERR_WIRE_LIMIT, "task.keep[%u].full_units: %u > cap %u", l,
                        k->full_units, lim->max_units);
        if (k->n_units == 0)
            return fail(err, errcap, FL_ERR_WIRE_KEEPSET, "task.keep[%u]: empty", l);
        if (!k->units)
            return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.keep[%u].units: NULL array", l);
        for (uint32_t i = 0; i < k->n_units; i++) {
            if (k->units[i] >= k->full_units)
                return fail(err, errcap, FL_ERR_WIRE_KEEPSET,
                            "task.keep[%u].units[%u]: %u >= full_units %u", l, i, k->units[i],
                            k->full_units);
            if (i && k->units[i] <= k->units[i - 1])
                return fail(err, errcap, FL_ERR_WIRE_KEEPSET,
                            "task.keep[%u].units[%u]: %u not above previous %u (unsorted or "
                            "duplicate)", l, i, k->units[i], k->units[i - 1]);
        }
    }
    const flp_train_config *c = &t->train;
    if (c->epochs == 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.train.epochs: zero");
    if (c->batch_size == 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.train.batch_size: zero");
    if ((s = check_finite("task.train.lr", c->lr, err, errcap)) ||
        (s = check_finite("task.train.momentum", c->momentum, err, errcap)) ||
        (s = check_finite("task.train.weight_decay", c->weight_decay, err, errcap)) ||
        (s = check_finite("task.train.prox_mu", c->prox_mu, err, errcap)))
        return s;
    if (!(c->lr > 0))
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.train.lr: %g not > 0", (double)c->lr);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.train.momentum: %g not in [0,1)",
                    (double)c->momentum);
    if (c->weight_decay < 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.train.weight_decay: negative");
    if (c->prox_mu < 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.train.prox_mu: negative");
    return check_headers("task", t->tensors, t->n_tensors, lim, err, errcap);
}

static fl_status check_update(const flp_update *u, const flp_limits *lim, char *err,
                              size_t errcap)
{
    fl_status s = check_headers("update", u->tensors, u->n_tensors, lim, err, errcap);
    if (s)
        return s;
    if (u->n_samples == 0)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "update.n_samples: zero");
    if ((s = check_finite("update.loss", u->loss, err, errcap)))
        return s;
    if (u->n_metrics > lim->max_metrics)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "update.metrics: %u > cap %u", u->n_metrics,
                    lim->max_metrics);
    if (u->n_metrics && !u->metrics)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "update.metrics: NULL array");
    for (uint32_t i = 0; i < u->n_metrics; i++) {
        char field[48];
        snprintf(field, sizeof field, "update.metrics[%u].name", i);
        if ((s = check_str(field, u->metrics[i].name, true, lim, err, errcap)))
            return s;
        snprintf(field, sizeof field, "update.metrics[%u].value", i);
        if ((s = check_finite(field, u->metrics[i].value, err, errcap)))
            return s;
    }
    return FL_OK;
}

static fl_status check_chunk(const flp_chunk *c, const flp_limits *lim, char *err, size_t errcap)
{
    if ((int)c->dir != FLP_DIR_DOWN && (int)c->dir != FLP_DIR_UP)
        return fail(err, errcap, FL_ERR_WIRE_ENUM, "chunk.dir: %d", (int)c->dir);
    if (c->tensor >= lim->max_tensors)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "chunk.tensor: %u >= cap %u", c->tensor,
                    lim->max_tensors);
    if (c->index >= lim->max_chunks)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "chunk.index: %u >= cap %u", c->index,
                    lim->max_chunks);
    if (c->count == 0)
        return fail(err, errcap, FL_ERR_WIRE_CHUNK_RANGE, "chunk.count: zero");
    if (c->count > lim->max_chunk_elems)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "chunk.count: %u > cap %u", c->count,
                    lim->max_chunk_elems);
    /* offset = index * chunk_elems with chunk_elems <= cap; the tracker checks it exactly. */
    if (c->offset > (uint64_t)c->index * lim->max_chunk_elems)
        return fail(err, errcap, FL_ERR_WIRE_CHUNK_RANGE, "chunk.offset: %llu beyond chunk %u",
                    (unsigned long long)c->offset, c->index);
    if (c->payload_len && !c->payload)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "chunk.payload: NULL with length %zu",
                    c->payload_len);
    return FL_OK;
}

fl_status flp_validate(const flp_msg *m, const flp_limits *lim_in, char *err, size_t errcap)
{
    if (!m)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "message: NULL");
    const flp_limits lim = lim_in ? *lim_in : flp_limits_default();
    if (m->version != FLP_VERSION)
        return fail(err, errcap, FL_ERR_WIRE_VERSION, "envelope.version: %u (this build speaks %u)",
                    m->version, FLP_VERSION);
    fl_status s = check_str("envelope.sender", m->sender, false, &lim, err, errcap);
    if (s)
        return s;
    switch (m->type) {
    case FLP_HELLO: s = check_hello(&m->hello, &lim, err, errcap); break;
    case FLP_TASK: s = check_task(&m->task, &lim, err, errcap); break;
    case FLP_UPDATE: s = check_update(&m->update, &lim, err, errcap); break;
    case FLP_CHUNK: s = check_chunk(&m->chunk, &lim, err, errcap); break;
    case FLP_ACK:
        if ((int)m->ack.of_type < FLP_HELLO || (int)m->ack.of_type > FLP_TYPE_MAX)
            return fail(err, errcap, FL_ERR_WIRE_ENUM, "ack.of_type: %d", (int)m->ack.of_type);
        if (m->ack.status < 0)
            return fail(err, errcap, FL_ERR_WIRE_FIELD, "ack.status: negative");
        s = check_str("ack.detail", m->ack.detail, false, &lim, err, errcap);
        break;
    case FLP_ERROR:
        if (m->error.code == 0)
            return fail(err, errcap, FL_ERR_WIRE_FIELD, "error.code: zero");
        s = check_str("error.message", m->error.message, false, &lim, err, errcap);
        break;
    case FLP_HEARTBEAT: s = FL_OK; break;
    case FLP_BYE: s = check_str("bye.reason", m->bye.reason, false, &lim, err, errcap); break;
    default:
        return fail(err, errcap, FL_ERR_WIRE_TYPE, "envelope.type: %d", (int)m->type);
    }
    if (s == FL_OK)
        ok_msg(err, errcap);
    return s;
}

fl_status flp_tensor_header_fill(flp_tensor_header *h)
{
    if (!h || h->ndim < 1 || h->ndim > FLP_MAX_DIMS || h->chunk_elems == 0)
        return FL_ERR_WIRE_SHAPE;
    uint64_t prod = 1;
    for (uint32_t d = 0; d < h->ndim; d++) {
        if (h->shape[d] == 0)
            return FL_ERR_WIRE_SHAPE;
        if (prod > UINT64_MAX / h->shape[d])
            return FL_ERR_OVERFLOW;
        prod *= h->shape[d];
    }
    const uint64_t n = prod / h->chunk_elems + (prod % h->chunk_elems != 0);
    if (n > UINT32_MAX)
        return FL_ERR_OVERFLOW;
    h->numel = prod;
    h->n_chunks = (uint32_t)n;
    return FL_OK;
}

fl_status flp_chunk_span(uint64_t *offset, uint32_t *count, const flp_tensor_header *h,
                         uint32_t index)
{
    if (!offset || !count || !h || h->chunk_elems == 0)
        return FL_ERR_INVALID_ARG;
    if (index >= h->n_chunks)
        return FL_ERR_WIRE_CHUNK_RANGE;
    const uint64_t start = (uint64_t)index * h->chunk_elems;
    if (start >= h->numel)
        return FL_ERR_WIRE_CHUNK_RANGE; /* n_chunks inconsistent with numel */
    const uint64_t rest = h->numel - start;
    *offset = start;
    *count = (uint32_t)(rest < h->chunk_elems ? rest : h->chunk_elems);
    return FL_OK;
}

/* ---- pre-scan of the raw wire format ----------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static bool rd_varint(reader *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return false;
        const uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false; /* more than 10 bytes */
}

/* Reads one tag and skips its value. For wire type 2, *sub gets the value's bytes. */
static bool rd_field(reader *r, uint32_t *field, uint32_t *wt, reader *sub)
{
    uint64_t tag, len;
    if (!rd_varint(r, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return false;
    *field = (uint32_t)(tag >> 3);
    *wt = (uint32_t)(tag & 7);
    switch (*wt) {
    case 0: return rd_varint(r, &len);
    case 1:
        if (r->end - r->p < 8) return false;
        r->p += 8;
        return true;
    case 5:
        if (r->end - r->p < 4) return false;
        r->p += 4;
        return true;
    case 2:
        if (!rd_varint(r, &len) || len > (uint64_t)(r->end - r->p))
            return false;
        sub->p = r->p;
        sub->end = r->p + len;
        r->p += len;
        return true;
    default: /* groups (3, 4) and reserved types */
        return false;
    }
}

/* What the pre-scan needs of the schema: which length-delimited fields are submessages. */
enum { K_ENV, K_HELLO, K_TASK, K_UPDATE, K_LEAF, K_NONE = -1 };

static int sub_kind(int kind, uint32_t f)
{
    switch (kind) {
    case K_ENV:
        if (f == FEDROP__V1__ENVELOPE__BODY_HELLO) return K_HELLO;
        if (f == FEDROP__V1__ENVELOPE__BODY_TASK) return K_TASK;
        if (f == FEDROP__V1__ENVELOPE__BODY_UPDATE) return K_UPDATE;
        if (f >= FEDROP__V1__ENVELOPE__BODY_CHUNK && f <= FEDROP__V1__ENVELOPE__BODY_BYE)
            return K_LEAF;
        return K_NONE;
    case K_HELLO: return f == 2 ? K_LEAF : K_NONE;                       /* caps */
    case K_TASK: return f == 3 || f == 4 || f == 8 ? K_LEAF : K_NONE;     /* keep, train, tensors */
    case K_UPDATE: return f == 2 || f == 5 ? K_LEAF : K_NONE;             /* tensors, metrics */
    default: return K_NONE;
    }
}

typedef struct scan_counts {
    uint64_t fields, keep, tensors, metrics;
} scan_counts;

/* Walks one message of the given kind (and its submessages, depth <= 3): every tag and length must
 * be well formed. Counts every field occurrence (protobuf-c spends ~40 bytes of scratch on each
 * while unpacking, plus a copy per unknown field) and the repeated submessages it will allocate. */
static bool scan_msg(reader r, int kind, scan_counts *sc)
{
    while (r.p < r.end) {
        uint32_t f, wt;
        reader sub = {0};
        if (!rd_field(&r, &f, &wt, &sub))
            return false;
        sc->fields++;
        if (wt != 2)
            continue;
        const int k = sub_kind(kind, f);
        if (k == K_NONE)
            continue;
        if (kind == K_TASK && f == 3)
            sc->keep++;
        else if ((kind == K_TASK && f == 8) || (kind == K_UPDATE && f == 2))
            sc->tensors++;
        else if (kind == K_UPDATE && f == 5)
            sc->metrics++;
        if (!scan_msg(sub, k, sc))
            return false;
    }
    return true;
}

static fl_status prescan(const uint8_t *src, size_t len, const flp_limits *lim, char *err,
                         size_t errcap)
{
    scan_counts sc = {0};
    if (!scan_msg((reader){src, src + len}, K_ENV, &sc))
        return fail(err, errcap, FL_ERR_WIRE_DECODE, "envelope: malformed protobuf");
    if (sc.fields > lim->max_fields)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "envelope: %llu protobuf fields > cap %u",
                    (unsigned long long)sc.fields, lim->max_fields);
    if (sc.keep > lim->max_layers)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "task.keep: %llu layers > cap %u",
                    (unsigned long long)sc.keep, lim->max_layers);
    if (sc.tensors > lim->max_tensors)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "tensors: %llu > cap %u",
                    (unsigned long long)sc.tensors, lim->max_tensors);
    if (sc.metrics > lim->max_metrics)
        return fail(err, errcap, FL_ERR_WIRE_LIMIT, "update.metrics: %llu > cap %u",
                    (unsigned long long)sc.metrics, lim->max_metrics);
    return FL_OK;
}

/* ---- decoding --------------------------------------------------------------------------------- */

/* A decoded message and everything its pointers point into. msg comes first: flp_msg_free casts. */
typedef struct owned_msg {
    flp_msg msg;
    Fedrop__V1__Envelope *pb;   /* strings, keep-set units and the chunk payload live here */
    void *arrays;               /* tensor headers, layers, metrics: one allocation */
} owned_msg;

flp_msg flp_msg_header(flp_type type, uint64_t round, const char *sender)
{
    flp_msg m;
    memset(&m, 0, sizeof m);
    m.version = FLP_VERSION;
    m.type = type;
    m.round = round;
    m.sender = sender ? sender : "";
    return m;
}

void flp_msg_free(flp_msg *m)
{
    if (!m)
        return;
    owned_msg *o = (owned_msg *)m;
    if (o->pb)
        fedrop__v1__envelope__free_unpacked(o->pb, NULL);
    free(o->arrays);
    free(o);
}

static fl_status conv_headers(flp_tensor_header *dst, Fedrop__V1__TensorHeader *const *src,
                              size_t n, const char *what, char *err, size_t errcap)
{
    for (size_t i = 0; i < n; i++) {
        const Fedrop__V1__TensorHeader *h = src[i];
        if (h->n_shape > FLP_MAX_DIMS)
            return fail(err, errcap, FL_ERR_WIRE_SHAPE, "%s.tensors[%zu].shape: %zu dims (1..%d)",
                        what, i, h->n_shape, FLP_MAX_DIMS);
        flp_tensor_header *d = &dst[i];
        d->name = h->name;
        d->numel = h->numel;
        d->chunk_elems = h->chunk_elems;
        d->n_chunks = h->n_chunks;
        d->ndim = (uint32_t)h->n_shape;
        for (size_t k = 0; k < h->n_shape; k++)
            d->shape[k] = h->shape[k];
    }
    return FL_OK;
}

static bool body_matches(const Fedrop__V1__Envelope *e)
{
    switch (e->type) {
    case FEDROP__V1__MSG_TYPE__MSG_HELLO: return e->body_case == FEDROP__V1__ENVELOPE__BODY_HELLO;
    case FEDROP__V1__MSG_TYPE__MSG_TASK: return e->body_case == FEDROP__V1__ENVELOPE__BODY_TASK;
    case FEDROP__V1__MSG_TYPE__MSG_UPDATE: return e->body_case == FEDROP__V1__ENVELOPE__BODY_UPDATE;
    case FEDROP__V1__MSG_TYPE__MSG_CHUNK: return e->body_case == FEDROP__V1__ENVELOPE__BODY_CHUNK;
    case FEDROP__V1__MSG_TYPE__MSG_ACK: return e->body_case == FEDROP__V1__ENVELOPE__BODY_ACK;
    case FEDROP__V1__MSG_TYPE__MSG_ERROR: return e->body_case == FEDROP__V1__ENVELOPE__BODY_ERROR;
    case FEDROP__V1__MSG_TYPE__MSG_HEARTBEAT:
        return e->body_case == FEDROP__V1__ENVELOPE__BODY_HEARTBEAT;
    case FEDROP__V1__MSG_TYPE__MSG_BYE: return e->body_case == FEDROP__V1__ENVELOPE__BODY_BYE;
    default: return false;
    }
}

/* Fills o->msg from o->pb; allocates o->arrays. Checks what the flp_msg shape cannot express
 * (version before anything, type/body match, missing submessages, array sizes beyond uint32). */
static fl_status convert(owned_msg *o, const flp_limits *lim, char *err, size_t errcap)
{
    const Fedrop__V1__Envelope *e = o->pb;
    flp_msg *m = &o->msg;
    if (e->version != FLP_VERSION)
        return fail(err, errcap, FL_ERR_WIRE_VERSION, "envelope.version: %u (this build speaks %u)",
                    e->version, FLP_VERSION);
    if ((int)e->type < 1 || (int)e->type > FLP_TYPE_MAX)
        return fail(err, errcap, FL_ERR_WIRE_TYPE, "envelope.type: %d", (int)e->type);
    if (!body_matches(e))
        return fail(err, errcap, FL_ERR_WIRE_TYPE, "envelope: type %s with body field %d",
                    flp_type_name((flp_type)e->type), (int)e->body_case);
    m->version = e->version;
    m->type = (flp_type)e->type;
    m->round = e->round;
    m->sender = e->sender;
    switch (m->type) {
    case FLP_HELLO: {
        const Fedrop__V1__Hello *h = e->hello;
        if (!h->caps)
            return fail(err, errcap, FL_ERR_WIRE_FIELD, "hello.caps: missing");
        m->hello = (flp_hello){
            .client_id = h->client_id,
            .backend = (flp_backend)h->caps->backend,
            .memory_bytes = h->caps->memory_bytes,
            .flops = h->caps->flops,
            .dataset_size = h->caps->dataset_size,
            .min_version = h->min_version,
            .max_version = h->max_version,
        };
        break;
    }
    case FLP_TASK: {
        const Fedrop__V1__Task *t = e->task;
        if (!t->train)
            return fail(err, errcap, FL_ERR_WIRE_FIELD, "task.train: missing");
        /* prescan bounded n_keep and n_tensors by their caps (<= UINT32_MAX). */
        const size_t bytes = t->n_keep * sizeof(flp_layer_keep) +
                             t->n_tensors * sizeof(flp_tensor_header);
        o->arrays = calloc(1, bytes ? bytes : 1);
        if (!o->arrays)
            return fail(err, errcap, FL_ERR_NOMEM, "task: out of memory");
        flp_tensor_header *hs = o->arrays;
        flp_layer_keep *ks = (flp_layer_keep *)(hs + t->n_tensors);
        for (size_t l = 0; l < t->n_keep; l++) {
            if (t->keep[l]->n_units > lim->max_units)
                return fail(err, errcap, FL_ERR_WIRE_LIMIT, "task.keep[%zu]: %zu units > cap %u",
                            l, t->keep[l]->n_units, lim->max_units);
            ks[l] = (flp_layer_keep){t->keep[l]->full_units, (uint32_t)t->keep[l]->n_units,
                                     t->keep[l]->units};
        }
        fl_status s = conv_headers(hs, t->tensors, t->n_tensors, "task", err, errcap);
        if (s)
            return s;
        const Fedrop__V1__TrainConfig *c = t->train;
        m->task = (flp_task){
            .model_version = t->model_version,
            .arch = t->arch,
            .n_layers = (uint32_t)t->n_keep,
            .layers = ks,
            .train = {c->epochs, c->batch_size, c->lr, c->momentum, c->weight_decay, c->prox_mu,
                      c->max_samples},
            .down_codec = t->down_codec,
            .up_codec = t->up_codec,
            .deadline_ms = t->deadline_ms,
            .n_tensors = (uint32_t)t->n_tensors,
            .tensors = hs,
            .run_id = t->run_id,
            .client_key = t->client_key,
        };
        break;
    }
    case FLP_UPDATE: {
        const Fedrop__V1__Update *u = e->update;
        const size_t bytes = u->n_tensors * sizeof(flp_tensor_header) +
                             u->n_metrics * sizeof(flp_metric);
        o->arrays = calloc(1, bytes ? bytes : 1);
        if (!o->arrays)
            return fail(err, errcap, FL_ERR_NOMEM, "update: out of memory");
        flp_tensor_header *hs = o->arrays;
        flp_metric *ms = (flp_metric *)(hs + u->n_tensors);
        fl_status s = conv_headers(hs, u->tensors, u->n_tensors, "update", err, errcap);
        if (s)
            return s;
        for (size_t i = 0; i < u->n_metrics; i++)
            ms[i] = (flp_metric){u->metrics[i]->name, u->metrics[i]->value};
        m->update = (flp_update){
            .model_version = u->model_version,
            .n_tensors = (uint32_t)u->n_tensors,
            .tensors = hs,
            .n_samples = u->n_samples,
            .loss = u->loss,
            .n_metrics = (uint32_t)u->n_metrics,
            .metrics = ms,
            .run_id = u->run_id,
        };
        break;
    }
    case FLP_CHUNK: {
        const Fedrop__V1__Chunk *c = e->chunk;
        m->chunk = (flp_chunk){
            .dir = (flp_dir)c->dir,
            .tensor = c->tensor,
            .index = c->index,
            .offset = c->offset,
            .count = c->count,
            .payload_len = c->payload.len,
            .payload = c->payload.data,
        };
        break;
    }
    /* Free text (an Ack's detail, an Error's message, a Bye's reason) is made valid rather than
     * refused (flp_str_fix): it only informs, and a peer built before strings were checked for
     * UTF-8 may cut a message mid-character. Refusing its Error would lose the news it carries
     * (a failed round), not just the text. Identifiers are refused instead (check_str). */
    case FLP_ACK:
        flp_str_fix(e->ack->detail);
        m->ack = (flp_ack){(flp_type)e->ack->of_type, e->ack->of_round, e->ack->status,
                           e->ack->detail, e->ack->memory_needed};
        break;
    case FLP_ERROR:
        flp_str_fix(e->error->message);
        m->error = (flp_error){e->error->code, e->error->message, e->error->run_id};
        break;
    case FLP_HEARTBEAT:
        m->heartbeat = (flp_heartbeat){e->heartbeat->seq, e->heartbeat->sender_time_us};
        break;
    case FLP_BYE:
        flp_str_fix(e->bye->reason);
        m->bye = (flp_bye){e->bye->reason};
        break;
    }
    return FL_OK;
}

fl_status flp_decode(flp_msg **out, const uint8_t *src, size_t len, const flp_limits *lim_in,
                     char *err, size_t errcap)
{
    if (!out)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "out: NULL");
    *out = NULL;
    if (!src && len)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "src: NULL");
    const flp_limits lim = lim_in ? *lim_in : flp_limits_default();
    if (len > lim.max_msg_bytes)
        return fail(err, errcap, FL_ERR_WIRE_TOO_LARGE, "message: %zu bytes > cap %zu", len,
                    lim.max_msg_bytes);
    fl_status s = prescan(src, len, &lim, err, errcap);
    if (s)
        return s;
    owned_msg *o = calloc(1, sizeof *o);
    if (!o)
        return fail(err, errcap, FL_ERR_NOMEM, "message: out of memory");
    static const uint8_t empty[1];
    o->pb = fedrop__v1__envelope__unpack(NULL, len, src ? src : empty);
    if (!o->pb) {
        free(o);
        return fail(err, errcap, FL_ERR_WIRE_DECODE, "envelope: protobuf unpack failed");
    }
    s = convert(o, &lim, err, errcap);
    if (s == FL_OK)
        s = flp_validate(&o->msg, &lim, err, errcap);
    if (s) {
        flp_msg_free(&o->msg);
        return s;
    }
    *out = &o->msg;
    return FL_OK;
}

/* ---- encoding --------------------------------------------------------------------------------- */

/* The protobuf mirror of one flp_msg. Its pointers point into the flp_msg (cast from const:
 * protobuf-c only reads while packing) and into `heap`. */
typedef struct pb_build {
    Fedrop__V1__Envelope env;
    union {
        Fedrop__V1__Hello hello;
        Fedrop__V1__Task task;
        Fedrop__V1__Update update;
        Fedrop__V1__Chunk chunk;
        Fedrop__V1__Ack ack;
        Fedrop__V1__Error error;
        Fedrop__V1__Heartbeat heartbeat;
        Fedrop__V1__Bye bye;
    } body;
    Fedrop__V1__Capabilities caps;
    Fedrop__V1__TrainConfig train;
    void *heap;
} pb_build;

static char *wstr(const char *s)
{
    return (char *)str_or_empty(s);
}

/* Headers and their pointer array: [n pointers][n TensorHeaders] at *mem. */
static Fedrop__V1__TensorHeader **build_headers(uint8_t **mem, const flp_tensor_header *hs,
                                                uint32_t n)
{
    Fedrop__V1__TensorHeader **ptrs = (Fedrop__V1__TensorHeader **)*mem;
    Fedrop__V1__TensorHeader *th = (Fedrop__V1__TensorHeader *)(*mem + n * sizeof *ptrs);
    *mem += n * (sizeof *ptrs + sizeof *th);
    for (uint32_t i = 0; i < n; i++) {
        fedrop__v1__tensor_header__init(&th[i]);
        th[i].name = wstr(hs[i].name);
        th[i].numel = hs[i].numel;
        th[i].chunk_elems = hs[i].chunk_elems;
        th[i].n_chunks = hs[i].n_chunks;
        th[i].n_shape = hs[i].ndim;
        th[i].shape = (uint64_t *)hs[i].shape;
        ptrs[i] = &th[i];
    }
    return ptrs;
}

/* Builds b from a message that passed flp_validate. */
static fl_status build(pb_build *b, const flp_msg *m)
{
    memset(b, 0, sizeof *b);
    fedrop__v1__envelope__init(&b->env);
    b->env.version = m->version;
    b->env.type = (Fedrop__V1__MsgType)m->type;
    b->env.round = m->round;
    b->env.sender = wstr(m->sender);
    switch (m->type) {
    case FLP_HELLO:
        fedrop__v1__hello__init(&b->body.hello);
        fedrop__v1__capabilities__init(&b->caps);
        b->caps.backend = (Fedrop__V1__Backend)m->hello.backend;
        b->caps.memory_bytes = m->hello.memory_bytes;
        b->caps.flops = m->hello.flops;
        b->caps.dataset_size = m->hello.dataset_size;
        b->body.hello.client_id = wstr(m->hello.client_id);
        b->body.hello.caps = &b->caps;
        b->body.hello.min_version = m->hello.min_version;
        b->body.hello.max_version = m->hello.max_version;
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_HELLO;
        b->env.hello = &b->body.hello;
        break;
    case FLP_TASK: {
        const flp_task *t = &m->task;
        Fedrop__V1__Task *pt = &b->body.task;
        fedrop__v1__task__init(pt);
        const size_t bytes = (size_t)t->n_layers * (sizeof(void *) + sizeof(Fedrop__V1__LayerKeep)) +
                             (size_t)t->n_tensors *
                                 (sizeof(void *) + sizeof(Fedrop__V1__TensorHeader));
        b->heap = malloc(bytes ? bytes : 1);
        if (!b->heap)
            return FL_ERR_NOMEM;
        uint8_t *mem = b->heap;
        pt->tensors = build_headers(&mem, t->tensors, t->n_tensors);
        pt->n_tensors = t->n_tensors;
        Fedrop__V1__LayerKeep **kp = (Fedrop__V1__LayerKeep **)mem;
        Fedrop__V1__LayerKeep *ks = (Fedrop__V1__LayerKeep *)(mem + t->n_layers * sizeof *kp);
        for (uint32_t l = 0; l < t->n_layers; l++) {
            fedrop__v1__layer_keep__init(&ks[l]);
            ks[l].full_units = t->layers[l].full_units;
            ks[l].n_units = t->layers[l].n_units;
            ks[l].units = (uint32_t *)t->layers[l].units;
            kp[l] = &ks[l];
        }
        pt->n_keep = t->n_layers;
        pt->keep = kp;
        fedrop__v1__train_config__init(&b->train);
        b->train.epochs = t->train.epochs;
        b->train.batch_size = t->train.batch_size;
        b->train.lr = t->train.lr;
        b->train.momentum = t->train.momentum;
        b->train.weight_decay = t->train.weight_decay;
        b->train.prox_mu = t->train.prox_mu;
        b->train.max_samples = t->train.max_samples;
        pt->train = &b->train;
        pt->model_version = t->model_version;
        pt->arch = wstr(t->arch);
        pt->down_codec = wstr(t->down_codec);
        pt->up_codec = wstr(t->up_codec);
        pt->deadline_ms = t->deadline_ms;
        pt->run_id = t->run_id;
        pt->client_key = t->client_key;
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_TASK;
        b->env.task = pt;
        break;
    }
    case FLP_UPDATE: {
        const flp_update *u = &m->update;
        Fedrop__V1__Update *pu = &b->body.update;
        fedrop__v1__update__init(pu);
        const size_t bytes =
            (size_t)u->n_tensors * (sizeof(void *) + sizeof(Fedrop__V1__TensorHeader)) +
            (size_t)u->n_metrics * (sizeof(void *) + sizeof(Fedrop__V1__Metric));
        b->heap = malloc(bytes ? bytes : 1);
        if (!b->heap)
            return FL_ERR_NOMEM;
        uint8_t *mem = b->heap;
        pu->tensors = build_headers(&mem, u->tensors, u->n_tensors);
        pu->n_tensors = u->n_tensors;
        Fedrop__V1__Metric **mp = (Fedrop__V1__Metric **)mem;
        Fedrop__V1__Metric *ms = (Fedrop__V1__Metric *)(mem + u->n_metrics * sizeof *mp);
        for (uint32_t i = 0; i < u->n_metrics; i++) {
            fedrop__v1__metric__init(&ms[i]);
            ms[i].name = wstr(u->metrics[i].name);
            ms[i].value = u->metrics[i].value;
            mp[i] = &ms[i];
        }
        pu->n_metrics = u->n_metrics;
        pu->metrics = mp;
        pu->model_version = u->model_version;
        pu->n_samples = u->n_samples;
        pu->loss = u->loss;
        pu->run_id = u->run_id;
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_UPDATE;
        b->env.update = pu;
        break;
    }
    case FLP_CHUNK: {
        Fedrop__V1__Chunk *pc = &b->body.chunk;
        fedrop__v1__chunk__init(pc);
        pc->dir = (Fedrop__V1__Direction)m->chunk.dir;
        pc->tensor = m->chunk.tensor;
        pc->index = m->chunk.index;
        pc->offset = m->chunk.offset;
        pc->count = m->chunk.count;
        pc->payload.len = m->chunk.payload_len;
        pc->payload.data = (uint8_t *)m->chunk.payload;
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_CHUNK;
        b->env.chunk = pc;
        break;
    }
    case FLP_ACK:
        fedrop__v1__ack__init(&b->body.ack);
        b->body.ack.of_type = (Fedrop__V1__MsgType)m->ack.of_type;
        b->body.ack.of_round = m->ack.of_round;
        b->body.ack.status = m->ack.status;
        b->body.ack.detail = wstr(m->ack.detail);
        b->body.ack.memory_needed = m->ack.memory_needed;
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_ACK;
        b->env.ack = &b->body.ack;
        break;
    case FLP_ERROR:
        fedrop__v1__error__init(&b->body.error);
        b->body.error.code = m->error.code;
        b->body.error.message = wstr(m->error.message);
        b->body.error.run_id = m->error.run_id;
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_ERROR;
        b->env.error = &b->body.error;
        break;
    case FLP_HEARTBEAT:
        fedrop__v1__heartbeat__init(&b->body.heartbeat);
        b->body.heartbeat.seq = m->heartbeat.seq;
        b->body.heartbeat.sender_time_us = m->heartbeat.sender_time_us;
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_HEARTBEAT;
        b->env.heartbeat = &b->body.heartbeat;
        break;
    case FLP_BYE:
        fedrop__v1__bye__init(&b->body.bye);
        b->body.bye.reason = wstr(m->bye.reason);
        b->env.body_case = FEDROP__V1__ENVELOPE__BODY_BYE;
        b->env.bye = &b->body.bye;
        break;
    default:
        return FL_ERR_WIRE_TYPE;
    }
    return FL_OK;
}

fl_status flp_encode_bound(size_t *bound, const flp_msg *m)
{
    if (!bound)
        return FL_ERR_INVALID_ARG;
    *bound = 0;
    const flp_limits lim = limits_unbounded();
    fl_status s = flp_validate(m, &lim, NULL, 0);
    if (s)
        return s;
    pb_build b;
    s = build(&b, m);
    if (s == FL_OK)
        *bound = fedrop__v1__envelope__get_packed_size(&b.env);
    free(b.heap);
    return s;
}

fl_status flp_encode(uint8_t *dst, size_t cap, size_t *written, const flp_msg *m,
                     const flp_limits *lim_in, char *err, size_t errcap)
{
    if (!written)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "written: NULL");
    *written = 0;
    if (!dst && cap)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "dst: NULL");
    const flp_limits lim = lim_in ? *lim_in : flp_limits_default();
    fl_status s = flp_validate(m, &lim, err, errcap);
    if (s)
        return s;
    pb_build b;
    s = build(&b, m);
    if (s) {
        free(b.heap);
        return fail(err, errcap, s, "encode: %s", fl_strerror(s));
    }
    const size_t need = fedrop__v1__envelope__get_packed_size(&b.env);
    if (need > lim.max_msg_bytes)
        s = fail(err, errcap, FL_ERR_WIRE_TOO_LARGE, "message: %zu bytes > cap %zu", need,
                 lim.max_msg_bytes);
    else if (need > cap)
        s = fail(err, errcap, FL_ERR_BUFFER_TOO_SMALL, "dst: %zu bytes needed, %zu given", need,
                 cap);
    else if (fedrop__v1__envelope__pack(&b.env, dst) != need)
        s = fail(err, errcap, FL_ERR_INTERNAL, "protobuf pack wrote an unexpected size");
    else
        *written = need;
    free(b.heap);
    return s;
}

fl_status flp_encode_alloc(uint8_t **out, size_t *len, const flp_msg *m, const flp_limits *lim,
                           char *err, size_t errcap)
{
    if (!out || !len)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "out/len: NULL");
    *out = NULL;
    *len = 0;
    size_t bound;
    fl_status s = flp_encode_bound(&bound, m);
    if (s) {
        const fl_status v = flp_validate(m, lim, err, errcap); /* same code, with a message */
        return v ? v : fail(err, errcap, s, "encode: %s", fl_strerror(s));
    }
    uint8_t *buf = malloc(bound ? bound : 1);
    if (!buf)
        return fail(err, errcap, FL_ERR_NOMEM, "encode: out of memory (%zu bytes)", bound);
    s = flp_encode(buf, bound, len, m, lim, err, errcap);
    if (s) {
        free(buf);
        return s;
    }
    *out = buf;
    return FL_OK;
}

/* ---- equality --------------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return strcmp(str_or_empty(a), str_or_empty(b)) == 0;
}

static bool headers_eq(const flp_tensor_header *a, const flp_tensor_header *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!str_eq(a[i].name, b[i].name) || a[i].numel != b[i].numel ||
            a[i].chunk_elems != b[i].chunk_elems || a[i].n_chunks != b[i].n_chunks ||
            a[i].ndim != b[i].ndim || a[i].ndim > FLP_MAX_DIMS)
            return false;
        for (uint32_t d = 0; d < a[i].ndim; d++)
            if (a[i].shape[d] != b[i].shape[d])
                return false;
    }
    return true;
}

bool flp_msg_equal(const flp_msg *a, const flp_msg *b)
{
    if (!a || !b)
        return a == b;
    if (a->version != b->version || a->type != b->type || a->round != b->round ||
        !str_eq(a->sender, b->sender))
        return false;
    switch (a->type) {
    case FLP_HELLO: {
        const flp_hello *x = &a->hello, *y = &b->hello;
        return str_eq(x->client_id, y->client_id) && x->backend == y->backend &&
               x->memory_bytes == y->memory_bytes && x->flops == y->flops &&
               x->dataset_size == y->dataset_size && x->min_version == y->min_version &&
               x->max_version == y->max_version;
    }
    case FLP_TASK: {
        const flp_task *x = &a->task, *y = &b->task;
        if (x->model_version != y->model_version || !str_eq(x->arch, y->arch) ||
            !str_eq(x->down_codec, y->down_codec) || !str_eq(x->up_codec, y->up_codec) ||
            x->deadline_ms != y->deadline_ms || x->n_layers != y->n_layers ||
            x->n_tensors != y->n_tensors || x->run_id != y->run_id ||
            x->client_key != y->client_key)
            return false;
        const flp_train_config *c = &x->train, *d = &y->train;
        if (c->epochs != d->epochs || c->batch_size != d->batch_size || c->lr != d->lr ||
            c->momentum != d->momentum || c->weight_decay != d->weight_decay ||
            c->prox_mu != d->prox_mu || c->max_samples != d->max_samples)
            return false;
        for (uint32_t l = 0; l < x->n_layers; l++) {
            const flp_layer_keep *p = &x->layers[l], *q = &y->layers[l];
            if (p->full_units != q->full_units || p->n_units != q->n_units ||
                (p->n_units && memcmp(p->units, q->units, p->n_units * sizeof *p->units) != 0))
                return false;
        }
        return headers_eq(x->tensors, y->tensors, x->n_tensors);
    }
    case FLP_UPDATE: {
        const flp_update *x = &a->update, *y = &b->update;
        if (x->model_version != y->model_version || x->n_samples != y->n_samples ||
            x->loss != y->loss || x->n_tensors != y->n_tensors || x->n_metrics != y->n_metrics ||
            x->run_id != y->run_id)
            return false;
        for (uint32_t i = 0; i < x->n_metrics; i++)
            if (!str_eq(x->metrics[i].name, y->metrics[i].name) ||
                x->metrics[i].value != y->metrics[i].value)
                return false;
        return headers_eq(x->tensors, y->tensors, x->n_tensors);
    }
    case FLP_CHUNK: {
        const flp_chunk *x = &a->chunk, *y = &b->chunk;
        return x->dir == y->dir && x->tensor == y->tensor && x->index == y->index &&
               x->offset == y->offset && x->count == y->count &&
               x->payload_len == y->payload_len &&
               (x->payload_len == 0 || memcmp(x->payload, y->payload, x->payload_len) == 0);
    }
    case FLP_ACK:
        return a->ack.of_type == b->ack.of_type && a->ack.of_round == b->ack.of_round &&
               a->ack.status == b->ack.status && str_eq(a->ack.detail, b->ack.detail) &&
               a->ack.memory_needed == b->ack.memory_needed;
    case FLP_ERROR:
        return a->error.code == b->error.code && str_eq(a->error.message, b->error.message) &&
               a->error.run_id == b->error.run_id;
    case FLP_HEARTBEAT:
        return a->heartbeat.seq == b->heartbeat.seq &&
               a->heartbeat.sender_time_us == b->heartbeat.sender_time_us;
    case FLP_BYE:
        return str_eq(a->bye.reason, b->bye.reason);
    }
    return true; /* same unknown type: nothing more to compare */
}

/* ---- chunk trackers --------------------------------------------------------------------------- */

struct flp_tensor_tracker {
    flp_tensor_header h;
    uint32_t received;
    uint64_t bits[];          /* ceil(n_chunks / 64) words */
};

static bool header_ok(const flp_tensor_header *h)
{
    flp_tensor_header c = *h;
    c.name = "x";
    const flp_limits lim = limits_unbounded();
    return check_header("tracker", 0, &c, &lim, NULL, 0) == FL_OK;
}

fl_status flp_tensor_tracker_new(flp_tensor_tracker **out, const flp_tensor_header *h)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (!h || !header_ok(h))
        return FL_ERR_INVALID_ARG;
    const size_t words = ((size_t)h->n_chunks + 63) / 64;
    flp_tensor_tracker *t = calloc(1, sizeof *t + words * sizeof(uint64_t));
    if (!t)
        return FL_ERR_NOMEM;
    t->h = *h;
    t->h.name = NULL; /* not retained */
    *out = t;
    return FL_OK;
}

void flp_tensor_tracker_free(flp_tensor_tracker *t)
{
    free(t);
}

/* The range check shared by both trackers. */
static fl_status chunk_in_range(const flp_tensor_header *h, uint32_t tensor, uint32_t index,
                                uint64_t offset, uint32_t count, char *err, size_t errcap)
{
    if (index >= h->n_chunks)
        return fail(err, errcap, FL_ERR_WIRE_CHUNK_RANGE, "tensor %u chunk %u: index >= n_chunks %u",
                    tensor, index, h->n_chunks);
    const uint64_t start = (uint64_t)index * h->chunk_elems;
    if (offset != start)
        return fail(err, errcap, FL_ERR_WIRE_CHUNK_RANGE,
                    "tensor %u chunk %u: offset %llu != index*chunk_elems %llu", tensor, index,
                    (unsigned long long)offset, (unsigned long long)start);
    const uint64_t rest = h->numel - start;
    const uint64_t want = rest < h->chunk_elems ? rest : h->chunk_elems;
    if (count != want)
        return fail(err, errcap, FL_ERR_WIRE_CHUNK_RANGE, "tensor %u chunk %u: count %u != %llu",
                    tensor, index, count, (unsigned long long)want);
    return FL_OK;
}

static fl_status mark(uint64_t *bits, uint32_t *received, uint32_t tensor, uint32_t index,
                      char *err, size_t errcap)
{
    const uint64_t bit = (uint64_t)1 << (index % 64);
    if (bits[index / 64] & bit)
        return fail(err, errcap, FL_ERR_WIRE_CHUNK_DUP, "tensor %u chunk %u: duplicate", tensor,
                    index);
    bits[index / 64] |= bit;
    (*received)++;
    ok_msg(err, errcap);
    return FL_OK;
}

/* First clear bit below n, or n when all are set. */
static uint32_t first_missing(const uint64_t *bits, uint32_t n)
{
    for (uint32_t w = 0; w < (n + 63) / 64; w++)
        if (~bits[w]) {
            const uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(~bits[w]);
            return i < n ? i : n;
        }
    return n;
}

fl_status flp_tensor_tracker_accept(flp_tensor_tracker *t, uint32_t index, uint64_t offset,
                                    uint32_t count, char *err, size_t errcap)
{
    if (!t)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "tracker: NULL");
    fl_status s = chunk_in_range(&t->h, 0, index, offset, count, err, errcap);
    if (s)
        return s;
    return mark(t->bits, &t->received, 0, index, err, errcap);
}

fl_status flp_tensor_tracker_finish(const flp_tensor_tracker *t, char *err, size_t errcap)
{
    if (!t)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "tracker: NULL");
    if (t->received == t->h.n_chunks) {
        ok_msg(err, errcap);
        return FL_OK;
    }
    return fail(err, errcap, FL_ERR_WIRE_CHUNK_MISSING, "tensor: chunk %u missing (%u of %u received)",
                first_missing(t->bits, t->h.n_chunks), t->received, t->h.n_chunks);
}

uint32_t flp_tensor_tracker_received(const flp_tensor_tracker *t)
{
    return t ? t->received : 0;
}

struct flp_msg_tracker {
    flp_dir dir;
    uint32_t n;
    flp_tensor_header *h;     /* n headers (names not retained) */
    uint32_t *received;       /* n counters */
    size_t *word0;            /* n+1 offsets into bits */
    uint64_t *bits;
};

fl_status flp_msg_tracker_new(flp_msg_tracker **out, const flp_tensor_header *hdrs, uint32_t n,
                              flp_dir dir)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if ((dir != FLP_DIR_DOWN && dir != FLP_DIR_UP) || (n && !hdrs))
        return FL_ERR_INVALID_ARG;
    size_t words = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!header_ok(&hdrs[i]))
            return FL_ERR_INVALID_ARG;
        words += ((size_t)hdrs[i].n_chunks + 63) / 64;
    }
    flp_msg_tracker *t = calloc(1, sizeof *t);
    if (!t)
        return FL_ERR_NOMEM;
    t->dir = dir;
    t->n = n;
    t->h = calloc(n ? n : 1, sizeof *t->h);
    t->received = calloc(n ? n : 1, sizeof *t->received);
    t->word0 = calloc((size_t)n + 1, sizeof *t->word0);
    t->bits = calloc(words ? words : 1, sizeof *t->bits);
    if (!t->h || !t->received || !t->word0 || !t->bits) {
        flp_msg_tracker_free(t);
        return FL_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        t->h[i] = hdrs[i];
        t->h[i].name = NULL;
        t->word0[i + 1] = t->word0[i] + ((size_t)hdrs[i].n_chunks + 63) / 64;
    }
    *out = t;
    return FL_OK;
}

void flp_msg_tracker_free(flp_msg_tracker *t)
{
    if (!t)
        return;
    free(t->h);
    free(t->received);
    free(t->word0);
    free(t->bits);
    free(t);
}

fl_status flp_msg_tracker_accept(flp_msg_tracker *t, const flp_chunk *c, char *err, size_t errcap)
{
    if (!t || !c)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "tracker/chunk: NULL");
    if (c->dir != t->dir)
        return fail(err, errcap, FL_ERR_WIRE_FIELD, "chunk.dir: %d, expected %d", (int)c->dir,
                    (int)t->dir);
    if (c->tensor >= t->n)
        return fail(err, errcap, FL_ERR_WIRE_CHUNK_RANGE, "chunk.tensor: %u >= %u tensors",
                    c->tensor, t->n);
    fl_status s = chunk_in_range(&t->h[c->tensor], c->tensor, c->index, c->offset, c->count, err,
                                 errcap);
    if (s)
        return s;
    return mark(t->bits + t->word0[c->tensor], &t->received[c->tensor], c->tensor, c->index, err,
                errcap);
}

bool flp_msg_tracker_tensor_complete(const flp_msg_tracker *t, uint32_t i)
{
    return t && i < t->n && t->received[i] == t->h[i].n_chunks;
}

bool flp_msg_tracker_complete(const flp_msg_tracker *t)
{
    if (!t)
        return false;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->received[i] != t->h[i].n_chunks)
            return false;
    return true;
}

bool flp_msg_tracker_completes(const flp_msg_tracker *t, const flp_chunk *c)
{
    if (!t || !c || c->dir != t->dir || c->tensor >= t->n ||
        chunk_in_range(&t->h[c->tensor], c->tensor, c->index, c->offset, c->count, NULL, 0) !=
            FL_OK)
        return false;
    const uint64_t *bits = t->bits + t->word0[c->tensor];
    if (bits[c->index / 64] & ((uint64_t)1 << (c->index % 64)))
        return false; /* recorded already */
    for (uint32_t i = 0; i < t->n; i++)
        if (t->received[i] + (i == c->tensor) != t->h[i].n_chunks)
            return false;
    return true;
}

fl_status flp_msg_tracker_finish(const flp_msg_tracker *t, char *err, size_t errcap)
{
    if (!t)
        return fail(err, errcap, FL_ERR_INVALID_ARG, "tracker: NULL");
    for (uint32_t i = 0; i < t->n; i++)
        if (t->received[i] != t->h[i].n_chunks)
            return fail(err, errcap, FL_ERR_WIRE_CHUNK_MISSING,
                        "tensor %u: chunk %u missing (%u of %u received)", i,
                        first_missing(t->bits + t->word0[i], t->h[i].n_chunks), t->received[i],
                        t->h[i].n_chunks);
    ok_msg(err, errcap);
    return FL_OK;
}
