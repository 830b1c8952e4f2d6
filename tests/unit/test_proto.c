/* Unit tests for proto/: round trips of every message type, a table of malformed inputs each
 * checked for its exact status, the chunk trackers, and the fuzz seed corpus.
 *
 * Malformed wire bytes are made with a tiny protobuf writer of our own (below): a valid encoding
 * from flp_encode plus appended fields, which protobuf merges into the message (last scalar wins,
 * repeated fields concatenate, submessages merge). So every bad input differs from a good one in
 * exactly the field under test, and the writer double-checks our field numbers against the schema.
 * (protobuf-c replaces, rather than merges, a repeated singular submessage, so the appended bytes
 * go inside the body and carry whole submessages such as a full TrainConfig.)
 *
 * FLP_WRITE_SEEDS=1 rewrites tests/fuzz/corpus/wire/seed-*.bin; otherwise the committed seeds are
 * checked to still decode to the sample messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flp_wire.h"

/* ---- sample messages ------------------------------------------------------------------------- */

static const uint32_t units0[] = {0, 2, 5, 7};
static const uint32_t units1[] = {1, 3};
static const flp_layer_keep layers[] = {{8, 4, units0}, {4, 2, units1}};
static const flp_tensor_header task_tensors[] = {
    {"fc1.w", 24, 10, 3, 2, {4, 6, 0, 0}},
    {"fc1.b", 4, 10, 1, 1, {4, 0, 0, 0}},
};
static const flp_tensor_header update_tensors[] = {
    {"conv.w", 2 * 3 * 3 * 3, 16, 4, 4, {2, 3, 3, 3}},
};
static const flp_metric metrics[] = {{"acc", 0.75}, {"grad_norm", 3.5e-3}};
static const uint8_t payload[] = {0xde, 0xad, 0x00, 0xbe, 0xef, 0x42};

static flp_msg sample(flp_type t)
{
    flp_msg m = {.version = FLP_VERSION, .type = t, .round = 17, .sender = "client-0042"};
    switch (t) {
    case FLP_HELLO:
        m.round = 0;
        m.hello = (flp_hello){"client-0042", FLP_BACKEND_GPU, 8ull << 30, 1.5e12, 60000, 1, 3};
        break;
    case FLP_TASK:
        m.sender = "";
        m.task = (flp_task){
            .model_version = 9,
            .arch = "mlp:784-200-10",
            .n_layers = 2,
            .layers = layers,
            .train = {2, 32, 0.05f, 0.9f, 1e-4f, 0.01f, 500},
            .down_codec = "rot+q8+zstd",
            .up_codec = "rot+q4+zstd",
            .deadline_ms = 30000,
            .n_tensors = 2,
            .tensors = task_tensors,
            .run_id = 0xfedcba9876543210ull,
            .client_key = 0xaef671c4u,
        };
        break;
    case FLP_UPDATE:
        m.update =
            (flp_update){9, 1, update_tensors, 512, 0.6931, 2, metrics, 0x0123456789abcdefull};
        break;
    case FLP_CHUNK:
        m.chunk = (flp_chunk){FLP_DIR_UP, 0, 2, 32, 16, sizeof payload, payload};
        break;
    case FLP_ACK:
        m.ack = (flp_ack){FLP_UPDATE, 17, 0, "stored", 0x123456789ull};
        break;
    case FLP_ERROR:
        m.error = (flp_error){FL_ERR_ROUND_CLOSED, "round 17 is closed", 0x5eed};
        break;
    case FLP_HEARTBEAT:
        m.heartbeat = (flp_heartbeat){123456, 987654321};
        break;
    case FLP_BYE:
        m.bye = (flp_bye){"battery low"};
        break;
    }
    return m;
}

static uint8_t *encode_ok(const flp_msg *m, size_t *len)
{
    uint8_t *buf = NULL;
    char err[FLP_ERRBUF];
    const fl_status s = flp_encode_alloc(&buf, len, m, NULL, err, sizeof err);
    if (s != FL_OK)
        fprintf(stderr, "encode: %s: %s\n", fl_status_name(s), err);
    assert_int_equal(s, FL_OK);
    assert_non_null(buf);
    return buf;
}

/* ---- round trips ------------------------------------------------------------------------------ */

static void test_roundtrip_all_types(void **state)
{
    (void)state;
    for (int t = FLP_HELLO; t <= FLP_TYPE_MAX; t++) {
        const flp_msg m = sample((flp_type)t);
        size_t bound = 0, len = 0;
        assert_int_equal(flp_encode_bound(&bound, &m), FL_OK);
        uint8_t *buf = encode_ok(&m, &len);
        assert_int_equal(len, bound);
        /* The caller-buffer variant: exact fit works, one byte less does not. */
        uint8_t *buf2 = malloc(bound);
        size_t w = 0;
        assert_int_equal(flp_encode(buf2, bound, &w, &m, NULL, NULL, 0), FL_OK);
        assert_int_equal(w, len);
        assert_memory_equal(buf, buf2, len);
        assert_int_equal(flp_encode(buf2, bound - 1, &w, &m, NULL, NULL, 0),
                         FL_ERR_BUFFER_TOO_SMALL);
        assert_int_equal(w, 0);
        free(buf2);

        flp_msg *d = NULL;
        char err[FLP_ERRBUF] = "x";
        const fl_status s = flp_decode(&d, buf, len, NULL, err, sizeof err);
        if (s)
            fprintf(stderr, "decode %s: %s: %s\n", flp_type_name((flp_type)t), fl_status_name(s),
                    err);
        assert_int_equal(s, FL_OK);
        assert_string_equal(err, "");
        free(buf); /* the decoded message must not depend on the wire buffer */
        assert_true(flp_msg_equal(&m, d));
        assert_int_equal(d->type, t);
        assert_int_equal(d->round, m.round);
        assert_string_equal(d->sender, m.sender);
        flp_msg_free(d);
    }
}

/* flp_msg_equal is what the round trip relies on: it must see a one-field difference. Spot-check
 * decoded fields directly too. */
static void test_roundtrip_fields(void **state)
{
    (void)state;
    flp_msg m = sample(FLP_TASK);
    size_t len;
    uint8_t *buf = encode_ok(&m, &len);
    flp_msg *d = NULL;
    assert_int_equal(flp_decode(&d, buf, len, NULL, NULL, 0), FL_OK);
    free(buf);
    assert_string_equal(d->task.arch, "mlp:784-200-10");
    assert_int_equal(d->task.n_layers, 2);
    assert_int_equal(d->task.layers[0].full_units, 8);
    assert_int_equal(d->task.layers[0].n_units, 4);
    assert_int_equal(d->task.layers[0].units[3], 7);
    assert_int_equal(d->task.layers[1].units[1], 3);
    assert_true(d->task.train.lr == 0.05f);
    assert_true(d->task.train.momentum == 0.9f);
    assert_int_equal(d->task.train.max_samples, 500);
    assert_string_equal(d->task.up_codec, "rot+q4+zstd");
    assert_int_equal(d->task.tensors[0].ndim, 2);
    assert_int_equal(d->task.tensors[0].shape[1], 6);
    assert_int_equal(d->task.tensors[1].n_chunks, 1);
    assert_int_equal(d->task.deadline_ms, 30000);
    assert_true(d->task.run_id == 0xfedcba9876543210ull);
    assert_int_equal(d->task.client_key, 0xaef671c4u);

    flp_layer_keep l2[2] = {layers[0], layers[1]};
    const uint32_t other[] = {1, 2};
    l2[1].units = other;
    m.task.layers = l2;
    assert_false(flp_msg_equal(&m, d));
    m = sample(FLP_TASK);
    m.task.train.prox_mu = 0.02f;
    assert_false(flp_msg_equal(&m, d));
    m = sample(FLP_TASK);
    m.round = 18;
    assert_false(flp_msg_equal(&m, d));
    m = sample(FLP_TASK);
    m.task.run_id ^= 1;
    assert_false(flp_msg_equal(&m, d));
    m = sample(FLP_TASK);
    m.task.client_key = 0;
    assert_false(flp_msg_equal(&m, d));
    flp_msg_free(d);

    m = sample(FLP_CHUNK);
    buf = encode_ok(&m, &len);
    assert_int_equal(flp_decode(&d, buf, len, NULL, NULL, 0), FL_OK);
    free(buf);
    assert_int_equal(d->chunk.payload_len, sizeof payload);
    assert_memory_equal(d->chunk.payload, payload, sizeof payload);
    uint8_t other_payload[sizeof payload];
    memcpy(other_payload, payload, sizeof payload);
    other_payload[5] ^= 1;
    m.chunk.payload = other_payload;
    assert_false(flp_msg_equal(&m, d));
    flp_msg_free(d);

    m = sample(FLP_ACK);
    buf = encode_ok(&m, &len);
    assert_int_equal(flp_decode(&d, buf, len, NULL, NULL, 0), FL_OK);
    free(buf);
    assert_true(d->ack.memory_needed == 0x123456789ull);
    assert_true(flp_msg_equal(&m, d));
    m.ack.memory_needed = 0;
    assert_false(flp_msg_equal(&m, d));
    flp_msg_free(d);

    m = sample(FLP_UPDATE);
    buf = encode_ok(&m, &len);
    assert_int_equal(flp_decode(&d, buf, len, NULL, NULL, 0), FL_OK);
    free(buf);
    assert_int_equal(d->update.n_metrics, 2);
    assert_string_equal(d->update.metrics[1].name, "grad_norm");
    assert_true(d->update.metrics[1].value == 3.5e-3);
    assert_true(d->update.loss == 0.6931);
    assert_int_equal(d->update.tensors[0].shape[3], 3);
    assert_true(d->update.run_id == 0x0123456789abcdefull);
    m.update.run_id = 0;
    assert_false(flp_msg_equal(&m, d));
    flp_msg_free(d);

    m = sample(FLP_HELLO);
    buf = encode_ok(&m, &len);
    assert_int_equal(flp_decode(&d, buf, len, NULL, NULL, 0), FL_OK);
    free(buf);
    assert_int_equal(d->hello.backend, FLP_BACKEND_GPU);
    assert_int_equal(d->hello.memory_bytes, 8ull << 30);
    assert_int_equal(d->hello.max_version, 3);
    flp_msg_free(d);
    flp_msg_free(NULL);
}

static void test_tensor_header_fill(void **state)
{
    (void)state;
    flp_tensor_header h = {"w", 0, 1000, 0, 3, {7, 11, 13, 0}};
    assert_int_equal(flp_tensor_header_fill(&h), FL_OK);
    assert_int_equal(h.numel, 1001);
    assert_int_equal(h.n_chunks, 2);
    h.shape[1] = 0;
    assert_int_equal(flp_tensor_header_fill(&h), FL_ERR_WIRE_SHAPE);
    /* Spans of a 1001-element tensor in chunks of 1000: [0,1000) and [1000,1001). */
    h.shape[1] = 11;
    assert_int_equal(flp_tensor_header_fill(&h), FL_OK);
    uint64_t off = 9;
    uint32_t cnt = 9;
    assert_int_equal(flp_chunk_span(&off, &cnt, &h, 0), FL_OK);
    assert_int_equal(off, 0);
    assert_int_equal(cnt, 1000);
    assert_int_equal(flp_chunk_span(&off, &cnt, &h, 1), FL_OK);
    assert_int_equal(off, 1000);
    assert_int_equal(cnt, 1);
    assert_int_equal(flp_chunk_span(&off, &cnt, &h, 2), FL_ERR_WIRE_CHUNK_RANGE);
    flp_tensor_header big = {"w", 0, 1, 0, 2, {1ull << 40, 1ull << 30, 0, 0}};
    assert_int_equal(flp_tensor_header_fill(&big), FL_ERR_OVERFLOW);
}

/* ---- a tiny protobuf writer ------------------------------------------------------------------- */

typedef struct pbw {
    uint8_t b[8192];
    size_t n;
} pbw;

static void w_raw_varint(pbw *w, uint64_t v)
{
    while (v >= 0x80) {
        w->b[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->b[w->n++] = (uint8_t)v;
}
static void w_varint(pbw *w, uint32_t field, uint64_t v)
{
    w_raw_varint(w, (uint64_t)field << 3);
    w_raw_varint(w, v);
}
static void w_bytes(pbw *w, uint32_t field, const void *p, size_t n)
{
    w_raw_varint(w, ((uint64_t)field << 3) | 2);
    w_raw_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_msg(pbw *w, uint32_t field, const pbw *sub)
{
    w_bytes(w, field, sub->b, sub->n);
}
static void w_float(pbw *w, uint32_t field, float f)
{
    w_raw_varint(w, ((uint64_t)field << 3) | 5);
    memcpy(w->b + w->n, &f, 4);
    w->n += 4;
}
static void w_double(pbw *w, uint32_t field, double f)
{
    w_raw_varint(w, ((uint64_t)field << 3) | 1);
    memcpy(w->b + w->n, &f, 8);
    w->n += 8;
}
static void w_packed(pbw *w, uint32_t field, const uint64_t *v, size_t n)
{
    pbw p = {0};
    for (size_t i = 0; i < n; i++)
        w_raw_varint(&p, v[i]);
    w_msg(w, field, &p);
}

/* Schema field numbers (fl.proto). */
enum { ENV_VERSION = 1, ENV_TYPE = 2, ENV_HELLO = 10, ENV_TASK = 11, ENV_UPDATE = 12,
       ENV_CHUNK = 13, ENV_ACK = 14, ENV_ERROR = 15 };

/* sample(t) encoded, then `extra` appended. */
static pbw with_extra(flp_type t, const pbw *extra)
{
    const flp_msg m = sample(t);
    pbw w = {0};
    size_t len;
    uint8_t *buf = encode_ok(&m, &len);
    memcpy(w.b, buf, len);
    w.n = len;
    free(buf);
    if (extra) {
        memcpy(w.b + w.n, extra->b, extra->n);
        w.n += extra->n;
    }
    return w;
}

static uint64_t r_varint(const uint8_t **p)
{
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        const uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
}

/* sample(t) encoded, with `body_extra` appended inside its body. The body is a oneof member, and
 * protobuf-c replaces (does not merge) a repeated oneof member, so the extra fields must go inside
 * the body's own bytes; within the body, repeated fields concatenate, scalars are last-wins and a
 * singular submessage is replaced by the later one. */
static pbw with_body_extra(flp_type t, const pbw *body_extra)
{
    const flp_msg m = sample(t);
    size_t len;
    uint8_t *buf = encode_ok(&m, &len);
    pbw w = {0};
    const uint8_t *p = buf, *end = buf + len;
    int bodies = 0;
    while (p < end) {
        const uint8_t *start = p;
        const uint64_t tag = r_varint(&p);
        switch (tag & 7) {
        case 0: r_varint(&p); break;
        case 1: p += 8; break;
        case 5: p += 4; break;
        case 2: {
            const uint64_t n = r_varint(&p);
            if ((tag >> 3) >= ENV_HELLO) {
                pbw body = {0};
                memcpy(body.b, p, n);
                body.n = n;
                memcpy(body.b + body.n, body_extra->b, body_extra->n);
                body.n += body_extra->n;
                w_msg(&w, (uint32_t)(tag >> 3), &body);
                bodies++;
                start = NULL;
            }
            p += n;
            break;
        }
        default: fail();
        }
        if (start) {
            memcpy(w.b + w.n, start, (size_t)(p - start));
            w.n += (size_t)(p - start);
        }
    }
    free(buf);
    assert_int_equal(bodies, 1);
    return w;
}

/* A whole TrainConfig (replacing the sample's) with the given lr. */
static pbw train_extra(float lr)
{
    pbw train = {0}, body = {0};
    w_varint(&train, 1, 2);
    w_varint(&train, 2, 32);
    w_float(&train, 3, lr);
    w_msg(&body, 4, &train);
    return body;
}

static pbw keep_extra(uint32_t full, const uint64_t *units, size_t n)
{
    pbw k = {0}, task = {0};
    w_varint(&k, 1, full);
    if (n)
        w_packed(&k, 2, units, n);
    w_msg(&task, 3, &k);
    return task;
}

static pbw header_extra(uint32_t hdr_field, const char *name, uint64_t numel, uint32_t chunk_elems,
                        uint32_t n_chunks, const uint64_t *shape, size_t ndim)
{
    pbw h = {0}, body = {0};
    w_bytes(&h, 1, name, strlen(name));
    w_varint(&h, 2, numel);
    w_varint(&h, 3, chunk_elems);
    w_varint(&h, 4, n_chunks);
    w_packed(&h, 5, shape, ndim);
    w_msg(&body, hdr_field, &h);
    return body;
}

static void expect_decode(const char *what, const uint8_t *p, size_t n, const flp_limits *lim,
                          fl_status want)
{
    flp_msg *d = (flp_msg *)(uintptr_t)1;
    char err[FLP_ERRBUF] = "";
    const fl_status s = flp_decode(&d, p, n, lim, err, sizeof err);
    if (s != want || getenv("FLP_TEST_VERBOSE"))
        fprintf(stderr, "case '%s': got %s (%s), want %s\n", what, fl_status_name(s), err,
                fl_status_name(want));
    assert_int_equal(s, want);
    if (want != FL_OK) {
        assert_null(d);
        assert_true(strlen(err) > 0); /* a readable message */
    } else {
        flp_msg_free(d);
    }
}

/* ---- malformed wire inputs -------------------------------------------------------------------- */

static void test_malformed_table(void **state)
{
    (void)state;
    const uint64_t u_unsorted[] = {5, 3}, u_dup[] = {3, 3}, u_range[] = {2, 10}, u_ok[] = {1};
    const uint64_t s23[] = {2, 3}, s5d[] = {1, 1, 1, 1, 2};
    struct row {
        const char *what;
        pbw bytes;
        fl_status want;
    } rows[64];
    int n = 0;
    pbw t, body;

    /* Envelope level. */
    t = (pbw){0};
    w_varint(&t, ENV_VERSION, 2);
    rows[n++] = (struct row){"version 2", with_extra(FLP_HEARTBEAT, &t), FL_ERR_WIRE_VERSION};
    t = (pbw){0};
    w_varint(&t, ENV_VERSION, 0);
    rows[n++] = (struct row){"version 0", with_extra(FLP_HEARTBEAT, &t), FL_ERR_WIRE_VERSION};
    t = (pbw){0};
    w_varint(&t, ENV_TYPE, 99);
    rows[n++] = (struct row){"type 99", with_extra(FLP_HEARTBEAT, &t), FL_ERR_WIRE_TYPE};
    t = (pbw){0};
    w_varint(&t, ENV_TYPE, FLP_UPDATE);
    rows[n++] = (struct row){"type update, body task", with_extra(FLP_TASK, &t), FL_ERR_WIRE_TYPE};
    t = (pbw){0};
    w_varint(&t, ENV_VERSION, 1);
    w_varint(&t, ENV_TYPE, FLP_CHUNK);
    rows[n++] = (struct row){"no body", t, FL_ERR_WIRE_TYPE};
    t = (pbw){0};
    rows[n++] = (struct row){"empty message", t, FL_ERR_WIRE_VERSION};
    t = (pbw){0};
    w_raw_varint(&t, (3u << 3) | 3); /* a group start */
    rows[n++] = (struct row){"group wire type", with_extra(FLP_BYE, &t), FL_ERR_WIRE_DECODE};
    t = (pbw){0};
    w_raw_varint(&t, (4u << 3) | 0); /* sender as varint: wrong wire type for a string */
    w_raw_varint(&t, 5);
    rows[n++] = (struct row){"string as varint", with_extra(FLP_BYE, &t), FL_ERR_WIRE_DECODE};
    t = (pbw){0};
    w_varint(&t, 99, 5);
    w_bytes(&t, 100, "future", 6);
    rows[n++] = (struct row){"unknown fields ignored", with_extra(FLP_BYE, &t), FL_OK};
    t = (pbw){0};
    w_raw_varint(&t, (3u << 3) | 2);
    w_raw_varint(&t, 50); /* length beyond the end */
    rows[n++] = (struct row){"length overrun", with_extra(FLP_BYE, &t), FL_ERR_WIRE_DECODE};
    pbw inner = {0};
    w_raw_varint(&inner, (1u << 3) | 7); /* reserved wire type inside a tensor header */
    body = (pbw){0};
    w_msg(&body, 8, &inner);
    rows[n++] = (struct row){"bad wire type, nested", with_body_extra(FLP_TASK, &body),
                             FL_ERR_WIRE_DECODE};

    /* Enums and required fields. */
    pbw caps = {0};
    body = (pbw){0};
    w_varint(&caps, 1, 9);
    w_msg(&body, 2, &caps);
    t = body;
    rows[n++] = (struct row){"backend 9", with_body_extra(FLP_HELLO, &t), FL_ERR_WIRE_ENUM};
    body = (pbw){0};
    w_varint(&body, 1, 3);
    t = body;
    rows[n++] = (struct row){"chunk dir 3", with_body_extra(FLP_CHUNK, &t), FL_ERR_WIRE_ENUM};
    body = (pbw){0};
    w_varint(&body, 1, 0);
    w_varint(&body, 1, 12);
    t = body;
    rows[n++] = (struct row){"ack of_type 12", with_body_extra(FLP_ACK, &t), FL_ERR_WIRE_ENUM};
    t = (pbw){0};
    w_varint(&t, ENV_VERSION, 1);
    w_varint(&t, ENV_TYPE, FLP_HELLO);
    body = (pbw){0};
    w_bytes(&body, 1, "c1", 2);
    w_varint(&body, 3, 1);
    w_varint(&body, 4, 1);
    w_msg(&t, ENV_HELLO, &body);
    rows[n++] = (struct row){"hello without caps", t, FL_ERR_WIRE_FIELD};
    body = (pbw){0};
    w_varint(&body, 3, 4); /* min_version 4 > max_version 3 */
    t = body;
    rows[n++] = (struct row){"version range", with_body_extra(FLP_HELLO, &t), FL_ERR_WIRE_FIELD};
    body = (pbw){0};
    w_bytes(&body, 1, "a\nb", 3);
    t = body;
    rows[n++] = (struct row){"control byte in id", with_body_extra(FLP_HELLO, &t), FL_ERR_WIRE_FIELD};
    /* Strings are UTF-8 without control characters: each of these ids is refused. */
    static const struct { const char *what, *id; } bad_ids[] = {
        {"id: byte 0xff", "a\xff"},
        {"id: stray continuation byte", "\x80" "b"},
        {"id: truncated sequence", "ab\xe2\x82"},
        {"id: overlong '/'", "\xc0\xaf"},
        {"id: overlong 3-byte", "\xe0\x80\xaf"},
        {"id: surrogate U+D800", "\xed\xa0\x80"},
        {"id: above U+10FFFF", "\xf4\x90\x80\x80"},
        {"id: C1 control U+009B (CSI)", "x\xc2\x9b[2J"},
    };
    for (size_t k = 0; k < sizeof bad_ids / sizeof bad_ids[0]; k++) {
        body = (pbw){0};
        w_bytes(&body, 1, bad_ids[k].id, strlen(bad_ids[k].id));
        t = body;
        rows[n++] = (struct row){bad_ids[k].what, with_body_extra(FLP_HELLO, &t), FL_ERR_WIRE_FIELD};
    }
    body = (pbw){0};
    w_bytes(&body, 1, "t\xc3\xa9l\xc3\xa9phone-\xe2\x88\x9a-\xf0\x9d\x84\x9e-\xc2\xa0", 23);
    t = body;
    rows[n++] = (struct row){"id: 2-, 3- and 4-byte UTF-8, U+00A0", with_body_extra(FLP_HELLO, &t), FL_OK};
    body = (pbw){0};
    w_varint(&body, 1, 0);
    t = body;
    rows[n++] = (struct row){"error code 0", with_body_extra(FLP_ERROR, &t), FL_ERR_WIRE_FIELD};
    /* (Zero in proto3 is "absent": the appended 0 overrides the encoder's 80.) */

    /* Shapes. */
    t = header_extra(8, "z", 7, 4, 2, s23, 2);
    rows[n++] = (struct row){"numel != product(shape)", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_SHAPE};
    t = header_extra(8, "z", 6, 4, 1, s23, 2);
    rows[n++] = (struct row){"n_chunks != ceil", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_SHAPE};
    t = header_extra(2, "z", 6, 0, 0, s23, 2);
    rows[n++] = (struct row){"chunk_elems 0", with_body_extra(FLP_UPDATE, &t), FL_ERR_WIRE_SHAPE};
    t = header_extra(2, "z", 2, 4, 1, s5d, 5);
    rows[n++] = (struct row){"5 dims", with_body_extra(FLP_UPDATE, &t), FL_ERR_WIRE_SHAPE};
    t = header_extra(2, "conv.w", 6, 4, 2, s23, 2);
    rows[n++] = (struct row){"duplicate tensor name", with_body_extra(FLP_UPDATE, &t), FL_ERR_WIRE_FIELD};
    t = header_extra(2, "big", 6, (1u << 20) + 1, 1, s23, 2);
    rows[n++] = (struct row){"chunk_elems above cap", with_body_extra(FLP_UPDATE, &t), FL_ERR_WIRE_LIMIT};

    /* Keep-sets. */
    t = keep_extra(10, u_unsorted, 2);
    rows[n++] = (struct row){"keep unsorted", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_KEEPSET};
    t = keep_extra(10, u_dup, 2);
    rows[n++] = (struct row){"keep duplicate", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_KEEPSET};
    t = keep_extra(10, u_range, 2);
    rows[n++] = (struct row){"keep out of range", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_KEEPSET};
    t = keep_extra(10, NULL, 0);
    rows[n++] = (struct row){"keep empty", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_KEEPSET};
    t = keep_extra(0, u_ok, 1);
    rows[n++] = (struct row){"keep full_units 0", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_KEEPSET};

    /* Floats. */
    body = (pbw){0};
    w_double(&body, 4, NAN);
    t = body;
    rows[n++] = (struct row){"loss NaN", with_body_extra(FLP_UPDATE, &t), FL_ERR_WIRE_NONFINITE};
    body = (pbw){0};
    w_double(&body, 4, -INFINITY);
    t = body;
    rows[n++] = (struct row){"loss -inf", with_body_extra(FLP_UPDATE, &t), FL_ERR_WIRE_NONFINITE};
    t = train_extra(INFINITY);
    rows[n++] = (struct row){"lr inf", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_NONFINITE};
    t = train_extra(-0.5f);
    rows[n++] = (struct row){"lr negative", with_body_extra(FLP_TASK, &t), FL_ERR_WIRE_FIELD};
    t = train_extra(0.25f);
    rows[n++] = (struct row){"train replaced, valid", with_body_extra(FLP_TASK, &t), FL_OK};
    pbw metric = {0};
    w_bytes(&metric, 1, "m", 1);
    w_double(&metric, 2, NAN);
    body = (pbw){0};
    w_msg(&body, 5, &metric);
    t = body;
    rows[n++] = (struct row){"metric NaN", with_body_extra(FLP_UPDATE, &t), FL_ERR_WIRE_NONFINITE};

    /* Chunks (standalone checks; the trackers check against the header). */
    body = (pbw){0};
    w_varint(&body, 5, (1u << 20) + 1);
    t = body;
    rows[n++] = (struct row){"chunk count above cap", with_body_extra(FLP_CHUNK, &t), FL_ERR_WIRE_LIMIT};
    body = (pbw){0};
    w_varint(&body, 3, 0); /* index 0 with offset 32 */
    t = body;
    rows[n++] = (struct row){"chunk 0 at offset 32", with_body_extra(FLP_CHUNK, &t),
                             FL_ERR_WIRE_CHUNK_RANGE};

    assert_true(n <= (int)(sizeof rows / sizeof rows[0]));
    for (int i = 0; i < n; i++)
        expect_decode(rows[i].what, rows[i].bytes.b, rows[i].bytes.n, NULL, rows[i].want);

    /* Free text is fixed, not refused: an Error whose message an older peer cut mid-character,
     * and a Bye reason with a C1 control, decode with '?' in place of what the rule refuses. */
    {
        pbw eb = {0};
        w_bytes(&eb, 2, "training failed: caf\xc3", 21);
        t = eb;
        pbw em_bytes = with_body_extra(FLP_ERROR, &t);
        flp_msg *d = NULL;
        assert_int_equal(flp_decode(&d, em_bytes.b, em_bytes.n, NULL, NULL, 0), FL_OK);
        assert_string_equal(d->error.message, "training failed: caf?");
        flp_msg_free(d);
        pbw bb = {0};
        w_bytes(&bb, 1, "bye\xc2\x9b", 5);
        t = bb;
        pbw bye_bytes = with_body_extra(FLP_BYE, &t);
        assert_int_equal(flp_decode(&d, bye_bytes.b, bye_bytes.n, NULL, NULL, 0), FL_OK);
        assert_string_equal(d->bye.reason, "bye??");
        flp_msg_free(d);
    }

    /* flp_str_fix makes free text pass: bad bytes and controls become '?', the rest is kept. */
    char fix[] = "ok \xc3\xa9 \xff \xe2\x82 \xc2\x9b \x01 \xf0\x9d\x84\x9e";
    const size_t fix_len = strlen(fix);
    assert_int_equal(flp_str_fix(fix), 6);
    assert_string_equal(fix, "ok \xc3\xa9 ? ?? ?? ? \xf0\x9d\x84\x9e");
    assert_int_equal(strlen(fix), fix_len);
    flp_msg em = sample(FLP_ERROR);
    em.error.message = fix;
    assert_int_equal(flp_validate(&em, NULL, NULL, 0), FL_OK);
    assert_int_equal(flp_str_fix(NULL), 0);

    /* The writer itself is right: the plain sample plus a no-op tail decodes. */
    t = keep_extra(10, u_ok, 1);
    pbw good = with_body_extra(FLP_TASK, &t);
    expect_decode("valid extra layer", good.b, good.n, NULL, FL_OK);
}

static void test_truncated(void **state)
{
    (void)state;
    for (int ty = FLP_HELLO; ty <= FLP_TYPE_MAX; ty++) {
        const flp_msg m = sample((flp_type)ty);
        size_t len;
        uint8_t *buf = encode_ok(&m, &len);
        /* Cut inside the body (the last field): the length prefix overruns the buffer. */
        expect_decode("cut by one byte", buf, len - 1, NULL, FL_ERR_WIRE_DECODE);
        /* Every other cut is refused too, with some code, and without leaks. */
        for (size_t k = 0; k < len; k++) {
            flp_msg *d = NULL;
            assert_int_not_equal(flp_decode(&d, buf, k, NULL, NULL, 0), FL_OK);
            assert_null(d);
        }
        free(buf);
    }
}

static void test_limits(void **state)
{
    (void)state;
    /* Oversized: refused before any parsing, whatever the bytes are. */
    flp_limits lim = flp_limits_default();
    lim.max_msg_bytes = 64;
    uint8_t junk[65];
    memset(junk, 0xff, sizeof junk);
    expect_decode("junk at the cap", junk, 64, &lim, FL_ERR_WIRE_DECODE);
    expect_decode("junk above the cap", junk, 65, &lim, FL_ERR_WIRE_TOO_LARGE);
    const flp_msg task = sample(FLP_TASK);
    size_t len;
    uint8_t *buf = encode_ok(&task, &len);
    assert_true(len > 64);
    expect_decode("task above the cap", buf, len, &lim, FL_ERR_WIRE_TOO_LARGE);
    lim.max_msg_bytes = len;
    expect_decode("task at the cap", buf, len, &lim, FL_OK);
    /* The encoder refuses what the peer would refuse. */
    lim.max_msg_bytes = len - 1;
    uint8_t *out = NULL;
    size_t outlen = 7;
    assert_int_equal(flp_encode_alloc(&out, &outlen, &task, &lim, NULL, 0), FL_ERR_WIRE_TOO_LARGE);
    assert_null(out);
    assert_int_equal(outlen, 0);

    /* Count caps. */
    lim = flp_limits_default();
    lim.max_tensors = 1;
    expect_decode("2 tensors, cap 1", buf, len, &lim, FL_ERR_WIRE_LIMIT);
    lim = flp_limits_default();
    lim.max_layers = 1;
    expect_decode("2 layers, cap 1", buf, len, &lim, FL_ERR_WIRE_LIMIT);
    lim = flp_limits_default();
    lim.max_units = 7;
    expect_decode("8 units, cap 7", buf, len, &lim, FL_ERR_WIRE_LIMIT);
    lim = flp_limits_default();
    lim.max_str = 10;
    expect_decode("arch of 14 bytes, cap 10", buf, len, &lim, FL_ERR_WIRE_LIMIT);
    lim = flp_limits_default();
    lim.max_chunks = 2;
    expect_decode("3 chunks, cap 2", buf, len, &lim, FL_ERR_WIRE_LIMIT);
    free(buf);

    /* Many empty tensor headers: counted by the pre-scan, before protobuf allocates them. */
    pbw body = {0};
    for (int i = 0; i < 1025; i++)
        w_bytes(&body, 8, "", 0);
    pbw all = with_body_extra(FLP_TASK, &body);
    expect_decode("1025 empty tensors", all.b, all.n, NULL, FL_ERR_WIRE_LIMIT);

    /* Field records: protobuf-c spends scratch memory on every occurrence, known or not. */
    lim = flp_limits_default();
    lim.max_fields = 100;
    pbw many = {0};
    for (int i = 0; i < 90; i++)
        w_varint(&many, 1, 1);
    pbw hb = with_extra(FLP_HEARTBEAT, &many);
    expect_decode("~95 fields, cap 100", hb.b, hb.n, &lim, FL_OK);
    for (int i = 0; i < 10; i++)
        w_varint(&many, 1000 + (uint32_t)i, 7); /* unknown fields count too */
    hb = with_extra(FLP_HEARTBEAT, &many);
    expect_decode("~105 fields, cap 100", hb.b, hb.n, &lim, FL_ERR_WIRE_LIMIT);
    /* ... at any depth: 2 fields in each of 60 extra tensor-header submessages. */
    body = (pbw){0};
    for (int i = 0; i < 60; i++) {
        pbw h = {0};
        w_varint(&h, 2, 1);
        w_varint(&h, 3, 1);
        w_msg(&body, 8, &h);
    }
    all = with_body_extra(FLP_TASK, &body);
    expect_decode("nested fields, cap 100", all.b, all.n, &lim, FL_ERR_WIRE_LIMIT);
}

/* The validator on plain structs: the encoder refuses with the same codes. */
static void test_validate_and_encoder_refusal(void **state)
{
    (void)state;
    struct vrow {
        const char *what;
        flp_msg m;
        fl_status want;
    } rows[16];
    int n = 0;
    flp_msg m;
    uint32_t bad_units[] = {1, 1};
    flp_layer_keep bad_layers[2] = {layers[0], {4, 2, bad_units}};
    flp_tensor_header bad_h[2] = {task_tensors[0], task_tensors[1]};
    bad_h[1].numel = 5;
    flp_metric bad_metrics[1] = {{"", 1.0}};

    m = sample(FLP_TASK);
    m.version = 7;
    rows[n++] = (struct vrow){"version", m, FL_ERR_WIRE_VERSION};
    m = sample(FLP_TASK);
    m.type = (flp_type)0;
    rows[n++] = (struct vrow){"type 0", m, FL_ERR_WIRE_TYPE};
    m = sample(FLP_TASK);
    m.task.layers = bad_layers;
    rows[n++] = (struct vrow){"keep dup", m, FL_ERR_WIRE_KEEPSET};
    m = sample(FLP_TASK);
    m.task.tensors = bad_h;
    rows[n++] = (struct vrow){"numel", m, FL_ERR_WIRE_SHAPE};
    m = sample(FLP_TASK);
    m.task.n_tensors = 0;
    rows[n++] = (struct vrow){"no tensors", m, FL_ERR_WIRE_FIELD};
    m = sample(FLP_TASK);
    m.task.train.momentum = 1.0f;
    rows[n++] = (struct vrow){"momentum 1", m, FL_ERR_WIRE_FIELD};
    m = sample(FLP_TASK);
    m.task.up_codec = NULL;
    rows[n++] = (struct vrow){"no up codec", m, FL_ERR_WIRE_FIELD};
    m = sample(FLP_UPDATE);
    m.update.metrics = bad_metrics;
    m.update.n_metrics = 1;
    rows[n++] = (struct vrow){"metric name empty", m, FL_ERR_WIRE_FIELD};
    m = sample(FLP_UPDATE);
    m.update.n_samples = 0;
    rows[n++] = (struct vrow){"no samples", m, FL_ERR_WIRE_FIELD};
    m = sample(FLP_UPDATE);
    m.update.loss = INFINITY;
    rows[n++] = (struct vrow){"loss inf", m, FL_ERR_WIRE_NONFINITE};
    m = sample(FLP_HELLO);
    m.hello.backend = (flp_backend)0;
    rows[n++] = (struct vrow){"backend 0", m, FL_ERR_WIRE_ENUM};
    m = sample(FLP_HELLO);
    m.hello.flops = NAN;
    rows[n++] = (struct vrow){"flops NaN", m, FL_ERR_WIRE_NONFINITE};
    m = sample(FLP_CHUNK);
    m.chunk.count = 0;
    rows[n++] = (struct vrow){"count 0", m, FL_ERR_WIRE_CHUNK_RANGE};
    m = sample(FLP_CHUNK);
    m.chunk.payload = NULL;
    rows[n++] = (struct vrow){"payload NULL", m, FL_ERR_WIRE_FIELD};
    m = sample(FLP_ACK);
    m.ack.status = -1;
    rows[n++] = (struct vrow){"ack status", m, FL_ERR_WIRE_FIELD};

    for (int i = 0; i < n; i++) {
        char err[FLP_ERRBUF] = "";
        const fl_status s = flp_validate(&rows[i].m, NULL, err, sizeof err);
        if (s != rows[i].want)
            fprintf(stderr, "case '%s': got %s (%s)\n", rows[i].what, fl_status_name(s), err);
        assert_int_equal(s, rows[i].want);
        assert_true(strlen(err) > 0);
        uint8_t buf[1024];
        size_t w = 99, bound = 99;
        assert_int_equal(flp_encode(buf, sizeof buf, &w, &rows[i].m, NULL, NULL, 0), rows[i].want);
        assert_int_equal(w, 0);
        assert_int_equal(flp_encode_bound(&bound, &rows[i].m), rows[i].want);
        uint8_t *out = (uint8_t *)buf;
        assert_int_equal(flp_encode_alloc(&out, &w, &rows[i].m, NULL, NULL, 0), rows[i].want);
        assert_null(out);
    }
    char err[8];
    assert_int_equal(flp_validate(NULL, NULL, err, sizeof err), FL_ERR_INVALID_ARG);
    /* err is truncated, never overrun. */
    m = sample(FLP_UPDATE);
    m.update.loss = NAN;
    assert_int_equal(flp_validate(&m, NULL, err, sizeof err), FL_ERR_WIRE_NONFINITE);
    assert_int_equal(strlen(err), sizeof err - 1);
}

/* ---- trackers --------------------------------------------------------------------------------- */

static void test_tensor_tracker(void **state)
{
    (void)state;
    const flp_tensor_header h = {"w", 10, 4, 3, 1, {10, 0, 0, 0}}; /* chunks of 4, 4, 2 */
    flp_tensor_tracker *t = NULL;
    assert_int_equal(flp_tensor_tracker_new(&t, &h), FL_OK);
    char err[FLP_ERRBUF];
    assert_int_equal(flp_tensor_tracker_finish(t, err, sizeof err), FL_ERR_WIRE_CHUNK_MISSING);
    assert_non_null(strstr(err, "chunk 0"));
    assert_int_equal(flp_tensor_tracker_accept(t, 2, 8, 2, err, sizeof err), FL_OK);
    assert_int_equal(flp_tensor_tracker_accept(t, 2, 8, 2, err, sizeof err), FL_ERR_WIRE_CHUNK_DUP);
    assert_int_equal(flp_tensor_tracker_accept(t, 3, 12, 2, err, sizeof err),
                     FL_ERR_WIRE_CHUNK_RANGE); /* index out of range */
    assert_int_equal(flp_tensor_tracker_accept(t, 1, 5, 4, err, sizeof err),
                     FL_ERR_WIRE_CHUNK_RANGE); /* offset != index*chunk_elems */
    assert_int_equal(flp_tensor_tracker_accept(t, 1, 4, 2, err, sizeof err),
                     FL_ERR_WIRE_CHUNK_RANGE); /* count short */
    assert_int_equal(flp_tensor_tracker_accept(t, 0, 0, 4, err, sizeof err), FL_OK);
    assert_int_equal(flp_tensor_tracker_received(t), 2); /* errors changed nothing */
    assert_int_equal(flp_tensor_tracker_finish(t, err, sizeof err), FL_ERR_WIRE_CHUNK_MISSING);
    assert_non_null(strstr(err, "chunk 1"));
    assert_int_equal(flp_tensor_tracker_accept(t, 1, 4, 4, err, sizeof err), FL_OK);
    assert_int_equal(flp_tensor_tracker_finish(t, err, sizeof err), FL_OK);
    flp_tensor_tracker_free(t);
    flp_tensor_tracker_free(NULL);

    flp_tensor_header bad = h;
    bad.n_chunks = 2;
    assert_int_equal(flp_tensor_tracker_new(&t, &bad), FL_ERR_INVALID_ARG);
    assert_null(t);

    /* Many chunks: the bitset spans words; the missing one is found in the last word. */
    const flp_tensor_header big = {"b", 200, 1, 200, 1, {200, 0, 0, 0}};
    assert_int_equal(flp_tensor_tracker_new(&t, &big), FL_OK);
    for (uint32_t i = 0; i < 200; i++)
        if (i != 130)
            assert_int_equal(flp_tensor_tracker_accept(t, i, i, 1, NULL, 0), FL_OK);
    assert_int_equal(flp_tensor_tracker_finish(t, err, sizeof err), FL_ERR_WIRE_CHUNK_MISSING);
    assert_non_null(strstr(err, "chunk 130"));
    flp_tensor_tracker_free(t);
}

static void test_msg_tracker(void **state)
{
    (void)state;
    flp_msg_tracker *t = NULL;
    assert_int_equal(flp_msg_tracker_new(&t, task_tensors, 2, FLP_DIR_DOWN), FL_OK);
    char err[FLP_ERRBUF];
    flp_chunk c = {FLP_DIR_DOWN, 0, 0, 0, 10, sizeof payload, payload};
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_OK);
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_ERR_WIRE_CHUNK_DUP);
    c.dir = FLP_DIR_UP;
    c.index = 1;
    c.offset = 10;
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_ERR_WIRE_FIELD);
    c.dir = FLP_DIR_DOWN;
    c.tensor = 2;
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_ERR_WIRE_CHUNK_RANGE);
    c = (flp_chunk){FLP_DIR_DOWN, 1, 0, 0, 4, 0, NULL};
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_OK);
    assert_true(flp_msg_tracker_tensor_complete(t, 1));
    assert_false(flp_msg_tracker_tensor_complete(t, 0));
    assert_false(flp_msg_tracker_tensor_complete(t, 2));
    assert_false(flp_msg_tracker_complete(t));
    assert_int_equal(flp_msg_tracker_finish(t, err, sizeof err), FL_ERR_WIRE_CHUNK_MISSING);
    assert_non_null(strstr(err, "tensor 0: chunk 1"));
    c = (flp_chunk){FLP_DIR_DOWN, 0, 2, 20, 5, 0, NULL};
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_ERR_WIRE_CHUNK_RANGE);
    c.count = 4;
    assert_false(flp_msg_tracker_completes(t, &c)); /* chunk 1 of tensor 0 is missing too */
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_OK);
    /* one chunk missing: it, and nothing else (recorded, out of range, another direction),
     * would complete the tracker; asking records nothing */
    assert_false(flp_msg_tracker_completes(t, &c));
    c = (flp_chunk){FLP_DIR_DOWN, 0, 1, 10, 9, 0, NULL};
    assert_false(flp_msg_tracker_completes(t, &c));
    c = (flp_chunk){FLP_DIR_UP, 0, 1, 10, 10, 0, NULL};
    assert_false(flp_msg_tracker_completes(t, &c));
    c = (flp_chunk){FLP_DIR_DOWN, 0, 1, 10, 10, 0, NULL};
    assert_true(flp_msg_tracker_completes(t, &c));
    assert_true(flp_msg_tracker_completes(t, &c));
    assert_false(flp_msg_tracker_complete(t));
    assert_false(flp_msg_tracker_completes(NULL, &c));
    assert_false(flp_msg_tracker_completes(t, NULL));
    assert_int_equal(flp_msg_tracker_accept(t, &c, err, sizeof err), FL_OK);
    assert_true(flp_msg_tracker_complete(t));
    assert_false(flp_msg_tracker_completes(t, &c));
    assert_int_equal(flp_msg_tracker_finish(t, err, sizeof err), FL_OK);
    flp_msg_tracker_free(t);
    flp_msg_tracker_free(NULL);
    assert_int_equal(flp_msg_tracker_new(&t, task_tensors, 2, (flp_dir)0), FL_ERR_INVALID_ARG);
    assert_null(t);
}

/* A Task and its chunks end to end through the wire: encode every chunk message, decode it, feed
 * the tracker. */
static void test_chunk_stream(void **state)
{
    (void)state;
    const flp_msg task = sample(FLP_TASK);
    size_t len;
    uint8_t *buf = encode_ok(&task, &len);
    flp_msg *dt = NULL;
    assert_int_equal(flp_decode(&dt, buf, len, NULL, NULL, 0), FL_OK);
    free(buf);
    flp_msg_tracker *tr = NULL;
    assert_int_equal(flp_msg_tracker_new(&tr, dt->task.tensors, dt->task.n_tensors, FLP_DIR_DOWN),
                     FL_OK);
    flp_msg_free(dt); /* the tracker copied what it needs */
    for (uint32_t ti = 0; ti < 2; ti++) {
        const flp_tensor_header *h = &task_tensors[ti];
        for (uint32_t i = h->n_chunks; i-- > 0;) { /* reverse order */
            uint64_t off;
            uint32_t cnt;
            assert_int_equal(flp_chunk_span(&off, &cnt, h, i), FL_OK);
            flp_msg cm = {.version = FLP_VERSION, .type = FLP_CHUNK, .round = 17};
            cm.chunk = (flp_chunk){FLP_DIR_DOWN, ti, i, off, cnt, sizeof payload, payload};
            buf = encode_ok(&cm, &len);
            flp_msg *dc = NULL;
            assert_int_equal(flp_decode(&dc, buf, len, NULL, NULL, 0), FL_OK);
            free(buf);
            assert_int_equal(flp_msg_tracker_accept(tr, &dc->chunk, NULL, 0), FL_OK);
            flp_msg_free(dc);
        }
    }
    assert_int_equal(flp_msg_tracker_finish(tr, NULL, 0), FL_OK);
    flp_msg_tracker_free(tr);
}

/* ---- the fuzz seed corpus --------------------------------------------------------------------- */

static void test_seed_corpus(void **state)
{
    (void)state;
    const char *root = getenv("FEDROP_SOURCE_ROOT");
    if (!root)
        root = ".";
    const char *write = getenv("FLP_WRITE_SEEDS");
    for (int t = FLP_HELLO; t <= FLP_TYPE_MAX; t++) {
        const flp_msg m = sample((flp_type)t);
        size_t len;
        uint8_t *buf = encode_ok(&m, &len);
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/wire/seed-%s.bin", root,
                 flp_type_name((flp_type)t));
        if (write && strcmp(write, "1") == 0) {
            FILE *f = fopen(path, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(buf, 1, len, f), len);
            assert_int_equal(fclose(f), 0);
        }
        FILE *f = fopen(path, "rb");
        if (!f)
            fprintf(stderr, "missing seed %s (run with FLP_WRITE_SEEDS=1)\n", path);
        assert_non_null(f);
        uint8_t seed[4096];
        const size_t n = fread(seed, 1, sizeof seed, f);
        fclose(f);
        /* Byte equality is not required (field order may change); meaning is. */
        flp_msg *d = NULL;
        assert_int_equal(flp_decode(&d, seed, n, NULL, NULL, 0), FL_OK);
        assert_true(flp_msg_equal(&m, d));
        flp_msg_free(d);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_types),
        cmocka_unit_test(test_roundtrip_fields),
        cmocka_unit_test(test_tensor_header_fill),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_validate_and_encoder_refusal),
        cmocka_unit_test(test_tensor_tracker),
        cmocka_unit_test(test_msg_tracker),
        cmocka_unit_test(test_chunk_stream),
        cmocka_unit_test(test_seed_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
