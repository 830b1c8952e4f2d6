/* it_garbage_client: a hostile but admitted fedrop client, for tests/integration/fl_it.py garbage.
 *
 *   it_garbage_client --server EP --key C.secret --server-key server.pub --id ID
 *                     [--frames N] [--seed S] [--quiet]
 *
 * Connects over CURVE with an allow-listed key, says Hello as ID and waits for its first Task.
 * Then (unless --quiet) it sends N bad frames, cycling through kinds:
 *   random bytes (short and long), truncated valid Updates, wrong Envelope versions, unknown
 *   message types, messages above the wire layer's limits (strings, chunk counts, tensor counts,
 *   a chunk payload far above the codec bound), a sender id that is not ours, chunks out of range
 *   (tensor, index, offset, count), chunks and Updates for other rounds, chunks with no Update,
 *   Updates for the current round with wrong shapes / names / tensor counts / model version,
 *   server-only message types (Task-typed envelopes), and, last, one frame above the server's
 *   max_msg_bytes (ZeroMQ drops that connection: the driver then reconnects and says Hello again).
 * It never sends a valid delta: no Update of the current round ever gets all its chunks, so none of
 * this may reach the aggregate. It logs "sent N bad frames" and from then on (and throughout in
 * --quiet mode) only heartbeats until the server says Bye("done"), SIGTERM, or 10 minutes pass.
 * Replies (Errors) are drained and counted. Exit 0 after Bye("done"), 1 on setup failure.
 *
 * Test code: prints to stderr freely.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "fl_keyfile.h"
#include "flp_wire.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static uint64_t g_rng;
static int g_kind = -1; /* --kind K: only frames of kind K (0..15), for debugging the driver */
static uint64_t rnd(void) /* xorshift64*: test randomness, reproducible from --seed */
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Key files as fl_server keygen writes them, read by the project's one reader. */
static int read_key(const char *path, fl_key_kind want, char out[41])
{
    char err[512];
    if (fl_key_file_read(path, want, out, NULL, err, sizeof err) == FL_OK)
        return 0;
    fprintf(stderr, "it_garbage_client: %s\n", err);
    return -1;
}

typedef struct drv {
    void *ctx, *sock;
    const char *ep, *id;
    char spk[41], pk[41], sk[41];
    int have_task, registered;
    uint64_t round, model_version;
    uint32_t n_tensors;
    flp_tensor_header *hdr;       /* copy of the Task's tensor headers (names owned here) */
    uint64_t replies, errors, done;
    uint64_t sent;
    uint64_t barriers;            /* barrier frames sent (see barrier()) */
    int barrier_seen;             /* an Error answering one of them arrived */
} drv;

/* Round numbers of barrier frames: no real round gets there. */
#define BARRIER_ROUND (UINT64_C(1) << 40)

static int open_socket(drv *d)
{
    d->sock = zmq_socket(d->ctx, ZMQ_DEALER);
    if (!d->sock)
        return -1;
    const int linger = 0;
    zmq_setsockopt(d->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_setsockopt(d->sock, ZMQ_CURVE_SERVERKEY, d->spk, 40) != 0 ||
        zmq_setsockopt(d->sock, ZMQ_CURVE_PUBLICKEY, d->pk, 40) != 0 ||
        zmq_setsockopt(d->sock, ZMQ_CURVE_SECRETKEY, d->sk, 40) != 0)
        return -1;
    return zmq_connect(d->sock, d->ep);
}

static void send_raw(drv *d, const void *buf, size_t len)
{
    while (zmq_send(d->sock, buf, len, 0) < 0 && errno == EINTR && !g_stop)
        ;
}

static uint8_t *encode(const flp_msg *m, size_t *len)
{
    uint8_t *buf = NULL;
    char err[FLP_ERRBUF];
    if (flp_encode_alloc(&buf, len, m, NULL, err, sizeof err) != FL_OK) {
        fprintf(stderr, "it_garbage_client: cannot encode %s: %s\n", flp_type_name(m->type), err);
        return NULL;
    }
    return buf;
}

static void send_msg(drv *d, const flp_msg *m) /* valid messages: Hello, Heartbeat */
{
    size_t len;
    uint8_t *buf = encode(m, &len);
    if (buf) {
        send_raw(d, buf, len);
        free(buf);
    }
}

static flp_msg base(const drv *d, flp_type t, uint64_t round)
{
    flp_msg m;
    memset(&m, 0, sizeof m);
    m.version = FLP_VERSION;
    m.type = t;
    m.round = round;
    m.sender = d->id;
    return m;
}

/* A minimal protobuf writer for fl.proto's Envelope, so that messages the wire layer's encoder
 * would refuse (it validates) can still be built: offsets that do not match their index, duplicate
 * tensor names, counts above the caps, ... Field numbers from proto/fl.proto. */
typedef struct pbuf {
    uint8_t *b;
    size_t n, cap;
} pbuf;

static void pb_put(pbuf *p, const void *src, size_t n)
{
    if (p->n + n > p->cap) {
        size_t c = p->cap ? p->cap : 256;
        while (c < p->n + n)
            c *= 2;
        uint8_t *nb = realloc(p->b, c);
        if (!nb)
            abort();
        p->b = nb;
        p->cap = c;
    }
    memcpy(p->b + p->n, src, n);
    p->n += n;
}

static void pb_varint(pbuf *p, uint64_t v)
{
    uint8_t t[10];
    size_t k = 0;
    do {
        t[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(p, t, k);
}

static void pb_u(pbuf *p, uint32_t field, uint64_t v)
{
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, v);
}

static void pb_len(pbuf *p, uint32_t field, const void *data, size_t n)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    pb_put(p, data, n);
}

static void pb_double(pbuf *p, uint32_t field, double v)
{
    pb_varint(p, (uint64_t)field << 3 | 1);
    pb_put(p, &v, 8); /* little-endian hosts only: fine for a test driver on x86-64 / arm64 */
}

static void pb_header(pbuf *p, uint32_t field, const flp_tensor_header *h)
{
    pbuf t = {0};
    pb_len(&t, 1, h->name, strlen(h->name));
    pb_u(&t, 2, h->numel);
    pb_u(&t, 3, h->chunk_elems);
    pb_u(&t, 4, h->n_chunks);
    for (uint32_t i = 0; i < h->ndim && i < FLP_MAX_DIMS; i++)
        pb_u(&t, 5, h->shape[i]);
    pb_len(p, field, t.b, t.n);
    free(t.b);
}

/* Sends Envelope{version, type, round, sender, body field = body}. */
static void pb_send(drv *d, uint32_t version, uint32_t type, uint64_t round, const char *sender,
                    uint32_t body_field, const pbuf *body)
{
    pbuf e = {0};
    pb_u(&e, 1, version);
    pb_u(&e, 2, type);
    pb_u(&e, 3, round);
    pb_len(&e, 4, sender, strlen(sender));
    pb_len(&e, body_field, body->b, body->n);
    send_raw(d, e.b, e.n);
    free(e.b);
}

static void pb_send_chunk(drv *d, uint64_t round, uint32_t dir, uint32_t tensor, uint32_t index,
                          uint64_t offset, uint32_t count, const uint8_t *payload, size_t plen)
{
    pbuf c = {0};
    pb_u(&c, 1, dir);
    pb_u(&c, 2, tensor);
    pb_u(&c, 3, index);
    pb_u(&c, 4, offset);
    pb_u(&c, 5, count);
    pb_len(&c, 6, payload, plen);
    pb_send(d, FLP_VERSION, FLP_CHUNK, round, d->id, 13, &c);
    free(c.b);
}

static void pb_send_update(drv *d, uint32_t type, uint64_t round, uint64_t model_version,
                           const flp_tensor_header *h, uint32_t n)
{
    pbuf u = {0};
    pb_u(&u, 1, model_version);
    for (uint32_t i = 0; i < n; i++)
        pb_header(&u, 2, &h[i]);
    pb_u(&u, 3, 100);
    pb_double(&u, 4, 1.0);
    pb_send(d, FLP_VERSION, type, round, d->id, 12, &u);
    free(u.b);
}

static void send_hello(drv *d)
{
    flp_msg m = base(d, FLP_HELLO, 0);
    m.hello.client_id = d->id;
    m.hello.backend = FLP_BACKEND_CPU;
    m.hello.min_version = FLP_VERSION;
    m.hello.max_version = FLP_VERSION;
    send_msg(d, &m);
}

static void send_heartbeat(drv *d)
{
    flp_msg m = base(d, FLP_HEARTBEAT, 0);
    send_msg(d, &m);
}

/* Handles whatever arrived within timeout_ms (then without waiting). */
static void drain(drv *d, int timeout_ms)
{
    for (;;) {
        zmq_pollitem_t it = {d->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, timeout_ms) <= 0)
            return;
        timeout_ms = 0;
        zmq_msg_t z;
        zmq_msg_init(&z);
        if (zmq_msg_recv(&z, d->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&z);
            return;
        }
        d->replies++;
        flp_msg *m = NULL;
        if (flp_decode(&m, zmq_msg_data(&z), zmq_msg_size(&z), NULL, NULL, 0) == FL_OK) {
            if (m->type == FLP_ACK && m->ack.of_type == FLP_HELLO && m->ack.status == 0)
                d->registered = 1;
            else if (m->type == FLP_ERROR) {
                d->errors++;
                if (m->round >= BARRIER_ROUND)
                    d->barrier_seen = 1;
            }
            else if (m->type == FLP_BYE && !strcmp(m->bye.reason, "done"))
                d->done = 1;
            else if (m->type == FLP_TASK && !d->have_task) {
                d->have_task = 1;
                d->round = m->round;
                d->model_version = m->task.model_version;
                d->n_tensors = m->task.n_tensors;
                d->hdr = calloc(d->n_tensors, sizeof *d->hdr);
                for (uint32_t i = 0; d->hdr && i < d->n_tensors; i++) {
                    d->hdr[i] = m->task.tensors[i];
                    d->hdr[i].name = strdup(m->task.tensors[i].name);
                }
                fprintf(stderr, "it_garbage_client: task for round %llu, %u tensors\n",
                        (unsigned long long)d->round, d->n_tensors);
            }
            flp_msg_free(m);
        }
        zmq_msg_close(&z);
    }
}

static void bad_frame(drv *d, uint64_t i, uint8_t *scratch, size_t scratch_cap)
{
    const uint64_t r = d->round;
    static flp_tensor_header h[2000];
    static char names[2000][16];
    const uint32_t nt = d->n_tensors;
    const uint32_t t = (uint32_t)(rnd() % nt);
    const flp_tensor_header *th = &d->hdr[t];
    const uint32_t count0 = th->numel < th->chunk_elems ? (uint32_t)th->numel : th->chunk_elems;
    pbuf u = {0};
    size_t len;
    for (size_t k = 0; k < 4096; k++)
        scratch[k] = (uint8_t)rnd();
    switch (g_kind >= 0 ? (uint64_t)g_kind : i % 16) {
    case 0: /* random bytes, short */
        send_raw(d, scratch, rnd() % 256);
        return;
    case 1: /* random bytes, long */
        len = 1 + rnd() % scratch_cap;
        for (size_t k = 4096; k < len; k++)
            scratch[k] = (uint8_t)rnd();
        send_raw(d, scratch, len);
        return;
    case 2: /* a well-formed Update of this round, truncated */
        pb_u(&u, 1, d->model_version);
        for (uint32_t k = 0; k < nt; k++)
            pb_header(&u, 2, &d->hdr[k]);
        pb_u(&u, 3, 100);
        pb_double(&u, 4, 1.0);
        {
            pbuf e = {0};
            pb_u(&e, 1, FLP_VERSION);
            pb_u(&e, 2, FLP_UPDATE);
            pb_u(&e, 3, r);
            pb_len(&e, 4, d->id, strlen(d->id));
            pb_len(&e, 12, u.b, u.n);
            send_raw(d, e.b, 1 + rnd() % (e.n - 1));
            free(e.b);
        }
        free(u.b);
        return;
    case 3: /* wrong Envelope version */
        pb_u(&u, 1, rnd());
        pb_send(d, 2 + (uint32_t)(rnd() % 1000), FLP_HEARTBEAT, 0, d->id, 16, &u);
        free(u.b);
        return;
    case 4: /* unknown message type */
        pb_u(&u, 1, rnd());
        pb_send(d, FLP_VERSION, 9 + (uint32_t)(rnd() % 1000), 0, d->id, 16, &u);
        free(u.b);
        return;
    case 5: { /* above the wire limits: a 4 KiB sender string */
        static char big[4097];
        memset(big, 'x', 4096);
        pb_u(&u, 1, 1);
        pb_send(d, FLP_VERSION, FLP_HEARTBEAT, 0, big, 16, &u);
        free(u.b);
        return;
    }
    case 6: /* above the wire limits: 2000 tensors in an Update (the cap is 1024) */
        for (uint32_t k = 0; k < 2000; k++) {
            h[k] = d->hdr[0];
            snprintf(names[k], sizeof names[k], "t%u", k);
            h[k].name = names[k];
        }
        pb_send_update(d, FLP_UPDATE, r, d->model_version, h, 2000);
        return;
    case 7: /* someone else's sender id */
        pb_u(&u, 1, 1);
        pb_send(d, FLP_VERSION, FLP_HEARTBEAT, 0, "not-me", 16, &u);
        free(u.b);
        return;
    case 8: /* a chunk out of range (tensor, index, offset or count) for this round */
        switch (rnd() % 4) {
        case 0: pb_send_chunk(d, r, FLP_DIR_UP, nt + (uint32_t)(rnd() % 1000), 0, 0, count0, scratch, 64); break;
        case 1: { const uint32_t ix = th->n_chunks + (uint32_t)(rnd() % 1000);
                  pb_send_chunk(d, r, FLP_DIR_UP, t, ix, (uint64_t)ix * th->chunk_elems, count0, scratch, 64); break; }
        case 2: pb_send_chunk(d, r, FLP_DIR_UP, t, 0, 1 + rnd() % 1000, count0, scratch, 64); break;
        default: pb_send_chunk(d, r, FLP_DIR_UP, t, 0, 0, th->chunk_elems + 1 + (uint32_t)(rnd() % 1000), scratch, 64); break;
        }
        return;
    case 9: /* a chunk for another round */
        pb_send_chunk(d, r + 1 + rnd() % 1000, FLP_DIR_UP, t, 0, 0, count0, scratch, 64);
        return;
    case 10: /* an Update for another round */
        pb_send_update(d, FLP_UPDATE, r + 1 + rnd() % 1000, d->model_version, d->hdr, nt);
        return;
    case 11: /* an Update for this round with a wrong shape, name, tensor count or version */
        memcpy(h, d->hdr, nt * sizeof *h);
        switch (rnd() % 5) {
        case 0: h[t].numel += 1 + rnd() % 7; h[t].shape[0] = h[t].numel; h[t].ndim = 1;
                h[t].n_chunks = (uint32_t)((h[t].numel + h[t].chunk_elems - 1) / h[t].chunk_elems);
                pb_send_update(d, FLP_UPDATE, r, d->model_version, h, nt); break;
        case 1: snprintf(names[0], sizeof names[0], "bogus%u", (unsigned)(rnd() % 100));
                h[t].name = names[0]; pb_send_update(d, FLP_UPDATE, r, d->model_version, h, nt); break;
        case 2: pb_send_update(d, FLP_UPDATE, r, d->model_version, h, nt > 1 ? nt - 1 : nt + 1); break;
        case 3: h[t].n_chunks += 1; pb_send_update(d, FLP_UPDATE, r, d->model_version, h, nt); break;
        default: pb_send_update(d, FLP_UPDATE, r, d->model_version + 1 + rnd() % 100, h, nt); break;
        }
        return;
    case 12: /* a chunk in range for this round with a garbage payload (its Update was refused) */
        pb_send_chunk(d, r, FLP_DIR_UP, t, 0, 0, count0, scratch, 1 + rnd() % 4096);
        return;
    case 13: /* a chunk whose payload is far above any codec bound for its count */
        pb_send_chunk(d, r, FLP_DIR_UP, t, 0, 0, 1, scratch, scratch_cap);
        return;
    case 14: /* a downlink chunk (wrong direction) from a client */
        pb_send_chunk(d, r, FLP_DIR_DOWN, t, 0, 0, count0, scratch, 64);
        return;
    default: /* a server-only message type (Task) from a client, with an Update body */
        pb_send_update(d, FLP_TASK, r, d->model_version, d->hdr, nt);
        return;
    }
}

/* Waits until the server has read every frame sent on this connection so far: it reads one
 * connection in order, so once it answers a frame sent after them, they were all handled (and
 * counted). The frame: a Heartbeat under someone else's sender id with a barrier round number,
 * refused with an Error that carries that round. Resent every 0.5 s, since a reply can be
 * dropped at a full send queue; each one is a bad frame, counted in d->sent. Returns 1 once
 * answered, 0 after timeout_s. Without it, frames still queued at the server when this
 * connection closes were lost with it on a loaded machine (3 to 19 of 10,000, 2 runs in 10). */
static int barrier(drv *d, double timeout_s)
{
    d->barrier_seen = 0;
    const double t0 = now_s();
    double last = -1.0;
    while (!d->barrier_seen && now_s() - t0 < timeout_s && !g_stop) {
        if (now_s() - last > 0.5) {
            pbuf u = {0};
            pb_u(&u, 1, 1);
            pb_send(d, FLP_VERSION, FLP_HEARTBEAT, BARRIER_ROUND + d->barriers, "barrier", 16, &u);
            free(u.b);
            d->barriers++;
            d->sent++;
            last = now_s();
        }
        drain(d, 50);
    }
    return d->barrier_seen;
}

int main(int argc, char **argv)
{
    drv d;
    memset(&d, 0, sizeof d);
    const char *key = NULL, *skey = NULL;
    unsigned long frames = 10000;
    int quiet = 0;
    g_rng = 0x9e3779b97f4a7c15ull;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!v) { fprintf(stderr, "it_garbage_client: %s needs a value\n", a); return 1; }
        i++;
        if (!strcmp(a, "--server")) d.ep = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--server-key")) skey = v;
        else if (!strcmp(a, "--id")) d.id = v;
        else if (!strcmp(a, "--kind")) g_kind = atoi(v);
        else if (!strcmp(a, "--frames")) frames = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seed")) g_rng ^= strtoull(v, NULL, 10) * 0xff51afd7ed558ccdull;
        else { fprintf(stderr, "it_garbage_client: unknown option %s\n", a); return 1; }
    }
    if (!d.ep || !key || !skey || !d.id || read_key(key, FL_KEY_SECRET, d.sk) ||
        read_key(skey, FL_KEY_PUBLIC, d.spk) || zmq_curve_public(d.pk, d.sk) != 0) {
        fprintf(stderr, "it_garbage_client: need --server, --key, --server-key (readable Z85 key "
                        "files) and --id\n");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    d.ctx = zmq_ctx_new();
    if (!d.ctx || open_socket(&d) != 0) {
        fprintf(stderr, "it_garbage_client: socket: %s\n", zmq_strerror(errno));
        return 1;
    }
    const size_t cap = (size_t)1 << 20;
    uint8_t *scratch = malloc(cap);
    if (!scratch)
        return 1;
    const double t_end = now_s() + 600;
    double last_hb = 0, last_hello = 0;
    int sent_all = quiet;
    while (!g_stop && !d.done && now_s() < t_end) {
        const double t = now_s();
        if (!d.registered && t - last_hello > 1.0) {
            send_hello(&d);
            last_hello = t;
        }
        if (t - last_hb > 0.3) {
            send_heartbeat(&d);
            last_hb = t;
        }
        drain(&d, 50);
        if (!sent_all && d.have_task && d.registered) {
            for (uint64_t i = 0; i < frames && !g_stop; i++) {
                bad_frame(&d, i, scratch, cap);
                d.sent++;
                if (i % 64 == 0) {
                    drain(&d, 0);
                    if (now_s() - last_hb > 0.3) {
                        send_heartbeat(&d);
                        last_hb = now_s();
                    }
                }
            }
            /* Last: one frame above server.max_msg_bytes, which ZeroMQ refuses by dropping the
             * connection it came on. Frames still in flight on that connection would be lost
             * with it, so the bad frames before it first go out on a connection closed cleanly
             * (linger: everything queued is delivered, in order), and the huge frame travels
             * alone on a connection of its own. The application can count every frame but this
             * one. A fresh socket then says Hello again (the same client starting afresh). */
            if (!barrier(&d, 120.0)) {
                fprintf(stderr, "it_garbage_client: the server never answered the barrier\n");
                return 1;
            }
            const int linger = -1; /* never discard: a loaded server may take a while to read */
            zmq_setsockopt(d.sock, ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(d.sock);
            d.registered = 0;
            if (open_socket(&d) != 0) {
                fprintf(stderr, "it_garbage_client: reconnect: %s\n", zmq_strerror(errno));
                return 1;
            }
            uint8_t *huge = calloc(1, ((size_t)16 << 20) + 64);
            if (huge) {
                send_raw(&d, huge, ((size_t)16 << 20) + 64);
                free(huge);
                d.sent++;
            }
            drain(&d, 500);
            zmq_close(d.sock);
            if (open_socket(&d) != 0) {
                fprintf(stderr, "it_garbage_client: reconnect: %s\n", zmq_strerror(errno));
                return 1;
            }
            send_hello(&d);
            last_hello = now_s();
            fprintf(stderr, "it_garbage_client: sent %llu bad frames (%llu replies, %llu errors so far)\n",
                    (unsigned long long)d.sent, (unsigned long long)d.replies,
                    (unsigned long long)d.errors);
            sent_all = 1;
        }
    }
    fprintf(stderr, "it_garbage_client: %s; %llu replies, %llu errors\n",
            d.done ? "server said done" : "stopped", (unsigned long long)d.replies,
            (unsigned long long)d.errors);
    zmq_close(d.sock);
    zmq_ctx_term(d.ctx);
    for (uint32_t i = 0; d.hdr && i < d.n_tensors; i++)
        free((void *)d.hdr[i].name);
    free(d.hdr);
    free(scratch);
    return d.done ? 0 : 1;
}
