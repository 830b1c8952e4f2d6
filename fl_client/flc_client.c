/* libflclient: the fedrop protocol (fl_server/PROTOCOL.md) around the IO-free client core.
 *
 * One thread drives the socket (flc_client_run); training runs on a second thread so heartbeats
 * and flow-control acks keep flowing while a long local epoch computes. The client core is only
 * ever touched by one thread at a time: the socket thread hands it to the trainer and takes it
 * back when the trainer is done (messages that arrive meanwhile wait in a small queue).
 *
 * A training belongs to the session its task came in (c->epoch): once that session is over (the
 * connection ends, or the server no longer knows the client) its update has no one to go to. The
 * built-in trainer is then cancelled (c->cancel) and joined at once; a plug-in trainer cannot be,
 * so its thread outlives the session while the socket thread reconnects, and what it returns is
 * dropped (finish_training).
 */
#include "flc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <zmq.h>

#include "fl_endpoint.h"
#include "fl_keyfile.h"
#include "fl_log.h"
#include "fl_mem.h"
#include "fl_rng.h"
#include "fl_sha256.h"
#include "fl_time.h"
#include "flc_core.h"
#include "flc_zmtp.h"
#include "flm_blas.h"
#include "flp_wire.h"

#define PENDING_MAX 4096
/* The weight bytes those messages may hold: a server that keeps to its downlink flow control
 * (PROTOCOL.md 2) sends a Task that comes in during a training one chunk before its first Ack,
 * at most 8 after it, each at most 4 MiB of floats at the largest chunk_elems. Without a cap of
 * its own the queue could hold PENDING_MAX messages of up to 16 MiB each (64 GiB) from a server
 * that does not. */
#define PENDING_BYTES_MAX ((size_t)64 << 20)
/* Consecutive refused CURVE handshakes before flc_client_run gives up with FLC_ERR_AUTH (flc.h). */
#define AUTH_TRIES 3
/* Handshakes in a row that fail without detail, after one had succeeded, before the log asks
 * whether the server's key changed: one is a network error as likely as anything; a server that
 * takes connection after connection and fails each handshake (ZeroMQ retries every 100 ms) is
 * what a server restarted under another key looks like. */
#define KEY_HINT_FAILS 3
/* How long the probe of a server's mechanism (flc_zmtp.h) may take: a connection and a round trip
 * of a greeting, on a slow link too. flc_client_stop cuts it short. */
#define PROBE_MS 2000
/* While no probe of a streak of hang-ups read a greeting (the endpoint took the connection and
 * closed it: a proxy with no server behind it yet, say), every PROBE_EVERY-th hang-up is probed
 * again: a server that comes up there later is known within that many retries (at most about 80 s
 * at the default backoff cap), for at most one connection more in PROBE_EVERY. */
#define PROBE_EVERY 8
/* How long one send may wait for room on the socket before it counts as failed; the wait is
 * cut short by flc_client_stop and by a failed handshake. */
#define SEND_WAIT_MS 30000
/* While a send waits for room on the socket (no connection yet, a full pipe), how often it tries
 * again; flc_client_stop and the socket monitor wake it at once. */
#define SEND_RETRY_MS 250
/* How long the socket may keep the Bye that flc_client_run says before it returns, once closed:
 * a link that is up writes it out at once (a Bye is a few dozen bytes); what this bounds is the
 * wait, in flc_client_free (or, with the caller's zmq_context, the caller's zmq_ctx_term), for a
 * server that went away without the client seeing its link drop. With the link known down, 0. */
#define BYE_LINGER_MS 200

struct flc_client {
    flc_config cfg;            /* strings below are our copies */
    fl_rng jitter;             /* the reconnect waits' draws (FL_RNG_NET) */
    char *endpoint, *id, *server_pub, *pub, *sec;
    void *ctx;
    int own_ctx;
    void *sock;
    void *mon;                 /* PAIR end of sock's monitor: handshake outcomes */
    unsigned mon_seq;          /* makes each monitor endpoint unique within the context */
    int hs_failed;             /* this connection's handshake was refused */
    int hs_refusals;           /* refused handshakes in a row (reset by one that succeeds) */
    int hs_ever_ok;            /* a handshake succeeded once: the server key is right */
    int hs_mismatch;           /* a handshake met a server of the other mechanism (a CURVE
                                * client's is said once); reset by one that succeeds */
    unsigned hs_fail_run;      /* handshakes failed without detail since one succeeded (CURVE) */
    int probe_read;            /* a probe (flc_zmtp.h) read the endpoint's greeting since the
                                * run's start or the last handshake that succeeded */
    unsigned probe_wait;       /* hang-ups without detail to let pass before the next probe,
                                * while none read a greeting (PROBE_EVERY) */
    int unanswered_said;       /* a CURVE handshake ended without an answer, before any
                                * succeeded, was said (warn; the rest at debug) */
    uint64_t hello_ns;         /* when the last Hello went out, or a link came up since */
    unsigned hs_count;         /* handshakes that succeeded on this client's sockets */
    unsigned conn_count;       /* connections made (TCP/IPC up, before any handshake) */
    int link_up;               /* a handshake succeeded on this socket and no disconnect since */
    int prelink_drops;         /* connections of this socket lost before their handshake, since
                                * the last handshake that succeeded */
    int prelink_said;          /* such a loss was said (warn) since the last handshake */
    unsigned hello_hs;         /* hs_count when the last Hello went out */
    flc_core *core;
    flm_samples samples;
    fl_logger log;
    uint32_t key;
    atomic_int stop;
    atomic_int running;        /* 1 while an flc_client_run is in progress: a second is refused */
    int wake[2];               /* a pipe: flc_client_stop writes a byte; every wait polls [0] */
    int done[2];               /* a pipe: the trainer thread writes a byte as it ends; the
                                * session's poll watches [0] and drains it */
    flc_stats stats;

    /* training thread */
    pthread_t thread;
    atomic_int training;       /* 1 while the trainer thread owns core */
    int thread_live;           /* a trainer thread not joined yet: messages for core are queued */
    fl_status train_status;
    atomic_int cancel;         /* the built-in trainer stops before its next batch (the core's
                                * cfg.cancel): flc_client_stop, or its session is over */
    unsigned epoch;            /* counts sessions: a new connection, or a new registration on
                                * the same one (Error(unknown client)) */
    unsigned train_epoch;      /* epoch of the training running (its task's session) */
    int train_late;            /* its Task's deadline passed while it ran: cancelled
                                * (training_watch), and what it returns is not sent */

    /* messages that arrived while training (grown on demand, up to PENDING_MAX: a client holds
     * no room for 4096 of them that it rarely needs, 32 KB per client of a process with many) */
    struct held {
        flp_msg *m;
        uint64_t at_ns; /* when it came in: a Task's deadline_ms counts from then */
    } *pending;
    size_t n_pending, pending_cap;
    size_t pending_bytes;      /* the chunks' payload bytes among them (PENDING_BYTES_MAX) */
    int pending_said;          /* a message dropped for want of room was said this training */

    uint64_t last_sent_ns, last_recv_ns;
    int registered;
    int backoff_reset;         /* registered since the last reconnection: backoff starts over */
    int unfit;                 /* the samples do not fit the server's model: the run ends */
    int uploads_this_session;

    /* the last update sent in full, until the server's Ack(of UPDATE) for it */
    int ack_wait;
    uint64_t ack_round, ack_deadline_ns;

    /* the update being sent: chunks go out only against the server's credits (PROTOCOL.md 3) */
    int up_active;
    uint64_t up_round;
    /* the download in progress (a Task whose weight chunks are coming in) */
    uint64_t task_deadline_ns; /* its Task's deadline_ms from then: the round is over (0: none) */
    uint32_t task_deadline_ms; /* that Task's deadline_ms, for the log */
    uint64_t up_start_ns;      /* when the update being sent went out (upload_watch) */
    uint64_t up_gone_round;    /* 1 + the round of the last upload given up here (drop_upload;
                                * 0: none): the server's answer to it is counted nowhere */
    uint64_t gone_round;       /* 1 + the round of the last download dropped here (0: none): its
                                * weight chunks that still come in are dropped without a word */
    uint64_t refused_round;    /* 1 + the round of the last Task refused (0: none): its weight
                                * chunks are expected, and dropped without a word */
    uint64_t refused_run;      /* the run_id of that Task: one of another run is another task */
    uint32_t up_next, up_n, up_credit;
#ifdef FLC_TEST_HOOKS
    long up_pause_after;       /* FEDROP_TEST_PAUSE_UPLOAD_AFTER_CHUNKS, -1: off */
#endif
};

const char *flc_strerror(flc_status s)
{
    /* The codes a device sees with a meaning of their own in flc.h, worded as flc.h has them. */
    switch (s) {
    case FLC_ERR_DATASET:
        return "the local dataset cannot be used (it does not fit the server's model)";
    case FLC_ERR_CANCELLED:
        return "stopped (flc_client_stop)";
    default:
        return fl_strerror((fl_status)s);
    }
}

static void log_adapter(void *user, fl_log_level level, const char *msg)
{
    flc_client *c = user;
    if (c->cfg.log)
        c->cfg.log(c->cfg.log_user, (flc_log_level)level, msg);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* 1 when s is one of flc.h's statuses (what a plug-in trainer may return), else 0. */
static int plugin_status_known(flc_status s)
{
    switch (s) {
    case FLC_OK:
    case FLC_ERR_NOMEM:
    case FLC_ERR_INVALID_ARG:
    case FLC_ERR_IO:
    case FLC_ERR_INTERNAL:
    case FLC_ERR_UNSUPPORTED:
    case FLC_ERR_STATE:
    case FLC_ERR_WIRE:
    case FLC_ERR_MODEL:
    case FLC_ERR_DATASET:
    case FLC_ERR_NUMERIC:
    case FLC_ERR_ROUND_CLOSED:
    case FLC_ERR_TIMEOUT:
    case FLC_ERR_TRANSPORT:
    case FLC_ERR_AUTH:
    case FLC_ERR_REMOTE:
    case FLC_ERR_CANCELLED:
        return 1;
    }
    return 0;
}

/* The plug-in trainer seen through the core's callback. */
static fl_status plugin_train(void *user, const flc_core_job *job, float *params,
                              uint64_t *n_samples, double *loss)
{
    flc_client *c = user;
    const flm_arch *s = job->sub;
    flc_tensor tensors[FLM_MAX_TENSORS];
    for (int i = 0; i < s->n_tensors; i++) {
        const flm_tensor *t = &s->tensors[i];
        tensors[i] = (flc_tensor){t->name, t->offset, t->numel, t->rank,
                                  {t->shape[0], t->shape[1], t->shape[2], t->shape[3]}};
    }
    int kept[FLM_MAX_LAYERS], full[FLM_MAX_LAYERS];
    for (int d = 0; d < job->full->n_drop; d++) {
        kept[d] = job->keep->count[d];
        full[d] = job->full->drop_units[d];
    }
    const flp_train_config *tc = job->train;
    const flc_task task = {job->round, job->full->spec, s->spec, s->n_tensors, tensors,
                           s->n_params, job->w_global, job->full->n_drop, kept, full,
                           tc->epochs, tc->batch_size, tc->lr, tc->momentum, tc->weight_decay,
                           tc->prox_mu, tc->max_samples, &c->cancel};
    flc_update up = {params, s->n_params, 0, 0.0};
    const flc_status st = c->cfg.train(&task, &up, c->cfg.train_user);
    *n_samples = up.n_samples;
    *loss = up.loss;
    /* The trained weights are read from the buffer the library gave (flc.h): a trainer that
     * pointed out->weights elsewhere, or changed n_params, would have its training dropped
     * without a word and the unchanged weights sent as its update. */
    if (st == FLC_OK && (up.weights != params || up.n_params != s->n_params)) {
        snprintf(job->why, job->whycap, "the plug-in trainer returned FLC_OK but changed "
                 "out->%s: it must write its %zu trained weights into the buffer out->weights "
                 "points to", up.weights != params ? "weights" : "n_params", s->n_params);
        return FL_ERR_INVALID_ARG;
    }
    /* A status flc.h does not have (-1, an errno, a code of the device's own) went up as the
     * Error's code unchanged: the server printed -1 as "Error code 4294967295". It is a failure
     * of the device's trainer all the same: FLC_ERR_INTERNAL, its value said in the message. */
    if (!plugin_status_known(st)) {
        snprintf(job->why, job->whycap, "the plug-in trainer failed with status %d, which is no "
                 "flc_status (flc.h): reported as FLC_ERR_INTERNAL (%d)", (int)st,
                 (int)FLC_ERR_INTERNAL);
        return FL_ERR_INTERNAL;
    }
    return (fl_status)st;
}

int flc_task_cancelled(const flc_task *task)
{
    /* lib_state is the training client's cancel flag (plugin_train): set by a stop, the session's
     * end or a replacing Task, and cleared only when the next training starts, which waits for
     * this one to return */
    return task && task->lib_state ? atomic_load((const atomic_int *)task->lib_state) != 0 : 0;
}

flc_status flc_key_file_read(const char *path, int secret, char z85[41], char *why, size_t whylen)
{
    char e[512] = "";
    const fl_status st = fl_key_file_read(path, secret ? FL_KEY_SECRET : FL_KEY_PUBLIC, z85, NULL,
                                          e, sizeof e);
    if (st != FL_OK && why && whylen)
        snprintf(why, whylen, "%s", e[0] ? e : fl_strerror(st));
    return st == FL_OK ? FLC_OK : st == FL_ERR_IO ? FLC_ERR_IO : st == FL_ERR_AUTH ? FLC_ERR_AUTH
                                 : st == FL_ERR_NOMEM ? FLC_ERR_NOMEM : FLC_ERR_INVALID_ARG;
}

const char *flc_version(void)
{
    return FEDROP_VERSION;
}

int flc_version_number(void)
{
    return FLC_VERSION_NUMBER;
}

/* Before the client exists, validation logs straight through the caller's callback. */
static void cfg_log_adapter(void *user, fl_log_level level, const char *msg)
{
    const flc_config *cfg = user;
    if (cfg->log)
        cfg->log(cfg->log_user, (flc_log_level)level, msg);
}

/* 1 if s is a CURVE key in Z85 text: 40 characters that decode to 32 bytes. */
static int z85_key_ok(const char *s)
{
    uint8_t raw[32];
    return strnlen(s, 41) == 40 && zmq_z85_decode(raw, s) != NULL;
}

/* The Hello of a client with cfg and id: flc_client_new validates exactly what send_hello sends. */
static flp_msg hello_of(const flc_config *cfg, const char *id)
{
    flp_msg m = flp_msg_header(FLP_HELLO, 0, id);
    m.hello.client_id = id;
    m.hello.backend = cfg->backend ? (flp_backend)cfg->backend : FLP_BACKEND_CPU;
    m.hello.memory_bytes = cfg->memory_bytes;
    m.hello.flops = cfg->flops;
    m.hello.dataset_size = cfg->samples ? cfg->samples->n : 0;
    m.hello.min_version = FLP_VERSION;
    m.hello.max_version = FLP_VERSION;
    return m;
}

/* 1 when ep is tcp:// with a host name (not an IP address): libzmq resolves it at each attempt,
 * and a name that does not resolve looks just like a server that is not running. */
static int tcp_host_is_name(const char *ep)
{
    char h[256];
    return fl_tcp_host(ep, h, sizeof h) && h[0] && !fl_ip_literal(h);
}

/* FLC_OK, or FLC_ERR_INVALID_ARG after logging which field is wrong. */
static flc_status check_config(const flc_config *cfg, const fl_logger *lg)
{
#define BAD(...) do { fl_log(lg, FL_LOG_ERROR, "flc_client_new: " __VA_ARGS__); \
                      return FLC_ERR_INVALID_ARG; } while (0)
    if (!cfg->server_endpoint || !cfg->server_endpoint[0])
        BAD("server_endpoint is required");
    char why[128];
    if (!fl_connect_endpoint_ok(cfg->server_endpoint, why, sizeof why))
        BAD("server_endpoint '%s' %s", cfg->server_endpoint, why);
    /* inproc:// reaches only a socket bound on the same ZeroMQ context: with a context of the
     * client's own nothing ever can be, and the connection would be retried for ever. */
    if (strncmp(cfg->server_endpoint, "inproc://", 9) == 0 && !cfg->zmq_context)
        BAD("server_endpoint '%s' is inproc://, which reaches only a server on the same ZeroMQ "
            "context: pass that context in zmq_context (or use tcp:// or ipc://)",
            cfg->server_endpoint);
    if (!cfg->client_id || !cfg->client_id[0])
        BAD("client_id is required");
    if (!cfg->train && (!cfg->samples || !cfg->samples->labels || cfg->samples->n == 0 ||
                        (!cfg->samples->x && !cfg->samples->tokens)))
        BAD("without a train callback, samples (x or tokens, labels, n > 0) are required");
    if (cfg->samples && cfg->samples->x && cfg->samples->tokens)
        BAD("samples: x (float inputs) and tokens are both set: give the one the model reads");
    if (!cfg->train && cfg->samples->row_len == 0)
        BAD("samples->row_len (floats, or tokens, per sample) is required: the library checks "
            "the server's model against it before it reads the samples");
    /* n rows of row_len values (floats or int32 tokens, 4 bytes each) past what any array can
     * hold: a garbage n or row_len, whose product would wrap (n = 2^33, row_len = 2^32 gives 0)
     * and pass for a small array. No object is larger than PTRDIFF_MAX bytes. */
    if (cfg->samples && (cfg->samples->x || cfg->samples->tokens) && cfg->samples->row_len &&
        cfg->samples->n > (size_t)PTRDIFF_MAX / sizeof(float) / cfg->samples->row_len)
        BAD("samples: n %zu rows of row_len %zu values (4 bytes each) are more than any array "
            "holds (above %td bytes): n or row_len is wrong", cfg->samples->n,
            cfg->samples->row_len, (ptrdiff_t)PTRDIFF_MAX);
    if ((int)cfg->log_level < FLC_LOG_DEBUG || (int)cfg->log_level > FLC_LOG_ERROR)
        BAD("log_level %d is not an flc_log_level", (int)cfg->log_level);
    if (cfg->threads < 0 || cfg->threads > 1024)
        BAD("threads %d is not in 0 .. 1024", cfg->threads);
    if (cfg->backend != 0 && (cfg->backend < FLC_BACKEND_CPU || cfg->backend > FLC_BACKEND_OTHER))
        BAD("backend %d is not an flc_backend", (int)cfg->backend);
    const struct { const char *name; int v; } timing[] = {
        {"heartbeat_ms", cfg->heartbeat_ms}, {"liveness_ms", cfg->liveness_ms},
        {"reconnect_min_ms", cfg->reconnect_min_ms}, {"reconnect_max_ms", cfg->reconnect_max_ms},
        {"max_rounds", cfg->max_rounds}};
    for (size_t i = 0; i < sizeof timing / sizeof timing[0]; i++)
        if (timing[i].v < 0)
            BAD("%s is %d: it must be >= 0 (0: the default)", timing[i].name, timing[i].v);
    const int hb = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
    const int live = cfg->liveness_ms ? cfg->liveness_ms : 10000;
    /* a value left 0 is named as the default it stands for: the device did not write it */
    const char *dflt = " (the default)";
    if (hb < 10) /* an idle client wakes every heartbeat_ms / 2 */
        BAD("heartbeat_ms %d is below 10", hb);
    if (live <= hb)
        BAD("liveness_ms %d%s is not above heartbeat_ms %d%s: the server would seem gone between "
            "two heartbeats", live, cfg->liveness_ms ? "" : dflt, hb,
            cfg->heartbeat_ms ? "" : dflt);
    /* What goes on the wire must be valid there: the id (no control bytes, at most the wire's
     * string length) and the capabilities (finite, >= 0), checked now rather than by a Hello
     * that cannot be encoded and a client that reconnects forever. */
    if (!(cfg->flops >= 0.0) || !isfinite(cfg->flops))
        BAD("flops %g is not a finite number >= 0", cfg->flops);
    {
        const flp_msg h = hello_of(cfg, cfg->client_id);
        char why[FLP_ERRBUF];
        if (flp_validate(&h, NULL, why, sizeof why) != FL_OK)
            BAD("client_id or the capabilities cannot go on the wire: %s", why);
    }
    const int rmin = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 200;
    const int rmax = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 10000;
    if (rmin > rmax)
        BAD("reconnect_min_ms %d%s is above reconnect_max_ms %d%s", rmin,
            cfg->reconnect_min_ms ? "" : dflt, rmax, cfg->reconnect_max_ms ? "" : dflt);
    const struct { const char *name; const char *k; } keys[] = {
        {"server_public_key", cfg->server_public_key}, {"public_key", cfg->public_key},
        {"secret_key", cfg->secret_key}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].k && !z85_key_ok(keys[i].k))
            BAD("%s is not a CURVE key (40 characters of Z85 text)", keys[i].name);
    if (cfg->server_public_key && !cfg->secret_key)
        BAD("secret_key is required with server_public_key (CURVE)");
    /* Keys without the server's: the device meant CURVE and would run in plain text. */
    if (!cfg->server_public_key && (cfg->secret_key || cfg->public_key))
        BAD("%s is set but server_public_key is not: CURVE needs the server's public key (for "
            "plain text, set no key)", cfg->secret_key ? "secret_key" : "public_key");
    if (cfg->secret_key) {
        char pub[41];
        if (zmq_curve_public(pub, cfg->secret_key) != 0)
            BAD("secret_key: no public key derives from it: %s (does this libzmq have CURVE?)",
                zmq_strerror(errno));
        if (cfg->public_key && strcmp(pub, cfg->public_key) != 0)
            BAD("public_key is not the public key of secret_key");
    }
    return FLC_OK;
#undef BAD
}

flc_status flc_client_new(const flc_config *cfg, flc_client **out)
{
    if (out)
        *out = NULL;
    if (!cfg)
        return FLC_ERR_INVALID_ARG;
    /* A log_level out of range is refused below: said at error level, not muted by it. */
    const int lv_ok = (int)cfg->log_level >= FLC_LOG_DEBUG && (int)cfg->log_level <= FLC_LOG_ERROR;
    const fl_logger vlog = {cfg_log_adapter, (void *)cfg,
                            lv_ok ? (fl_log_level)cfg->log_level : FL_LOG_ERROR};
    if (!out) {
        fl_log(&vlog, FL_LOG_ERROR, "flc_client_new: out is NULL");
        return FLC_ERR_INVALID_ARG;
    }
    const flc_status vst = check_config(cfg, &vlog);
    if (vst != FLC_OK)
        return vst;
    flc_client *c = calloc(1, sizeof *c);
    if (!c)
        return FLC_ERR_NOMEM;
    c->wake[0] = c->wake[1] = -1;
    c->done[0] = c->done[1] = -1;
    c->cfg = *cfg;
    c->log = (fl_logger){log_adapter, c, (fl_log_level)cfg->log_level};
    c->endpoint = strdup(cfg->server_endpoint);
    c->id = strdup(cfg->client_id);
    c->server_pub = dup_or_null(cfg->server_public_key);
    c->sec = dup_or_null(cfg->secret_key);
    c->pub = NULL;
    if (c->sec) {
        char pub[41];
        if (zmq_curve_public(pub, c->sec) == 0) /* it worked in check_config */
            c->pub = strdup(pub);
    }
    if (!c->cfg.heartbeat_ms) c->cfg.heartbeat_ms = 1000;
    if (!c->cfg.liveness_ms) c->cfg.liveness_ms = 10000;
    if (!c->cfg.reconnect_min_ms) c->cfg.reconnect_min_ms = 200;
    if (!c->cfg.reconnect_max_ms) c->cfg.reconnect_max_ms = 10000;
    /* The jitter's randomness is the kernel's, not the seed's: devices of one image and seed must
     * still wait different times. */
    c->jitter = fl_rng_stream(fl_entropy_u64(), 0, 0, FL_RNG_NET);
    fl_status st = FL_ERR_NOMEM;
    if (!c->endpoint || !c->id || (cfg->secret_key && (!c->sec || !c->pub)) ||
        (cfg->server_public_key && !c->server_pub)) {
        flc_client_free(c);
        return FLC_ERR_NOMEM;
    }
    /* The key the server derives from the same id; without a seed, one derived from the id
     * (bytes 4..11 of its SHA-256). Either fails only when OpenSSL cannot allocate. */
    uint8_t d[FL_SHA256_LEN];
    if (fl_client_key_of(c->id, 0, &c->key) != FL_OK ||
        fl_sha256_digest(d, c->id, strlen(c->id)) != FL_OK) {
        flc_client_free(c);
        return FLC_ERR_NOMEM;
    }
    uint64_t seed = cfg->seed;
    if (!seed)
        for (int i = 0; i < 8; i++)
            seed = seed << 8 | d[4 + i];
    if (cfg->samples)
        c->samples = (flm_samples){cfg->samples->x, cfg->samples->tokens, cfg->samples->labels,
                                   NULL, cfg->samples->n};
    /* A plug-in's samples too: only their n is read, which holds its updates' n_samples to what
     * the Hello declared (flc.h), as the server will. */
    const flc_core_config cc = {c->id, c->key, seed, cfg->samples ? &c->samples : NULL,
                                cfg->train ? plugin_train : NULL, c, c->log, &c->cancel};
    if ((st = flc_core_new(&cc, &c->core)) != FL_OK) {
        flc_client_free(c);
        return st == FL_ERR_INVALID_ARG ? FLC_ERR_INVALID_ARG : FLC_ERR_NOMEM;
    }
    flc_core_keep_rewind_point(c->core, 1); /* a server resumed mid-round replays it exactly */
    flc_core_set_own_pages(c->core, 1); /* its update's pages leave with it, between rounds */
    flc_core_set_memory_limit(c->core, cfg->memory_bytes);
    if (!cfg->train) {
        /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): checked above, without train */
        flc_core_set_row_len(c->core, cfg->samples->row_len);
        /* OpenBLAS is loaded here, on the caller's thread (it may set OPENBLAS_CORETYPE: flc.h),
         * not by the first training on a thread of ours; without it training runs, slowly. */
        const int n = cfg->threads ? cfg->threads : 1;
        if (flm_blas_init_threads(n) != FL_OK || flm_blas_set_threads(n) != FL_OK)
            fl_log(&c->log, FL_LOG_WARN, "flc_client_new: OpenBLAS cannot be loaded: the "
                   "built-in trainer runs on fedrop's reference GEMM (slow)");
        else
            fl_log(&c->log, FL_LOG_DEBUG, "OpenBLAS kernel %s, %d thread%s", flm_blas_corename(),
                   n, n == 1 ? "" : "s");
        /* An OPENBLAS_CORETYPE that OpenBLAS passes over (a typo) leaves its own detection's
         * kernel, which flc.h's threads warns of, and was said only by fl_client's main: a
         * device embedding the library learnt of it from nothing (at debug, a kernel name). */
        const char *ignored = flm_blas_env_coretype_ignored();
        const char *pick = flm_blas_cpu_coretype();
        char kernel[64]; /* as fl_sim's summary.json "blas" names it ("+AVX512" too) */
        if (ignored)
            fl_log(&c->log, FL_LOG_WARN, "flc_client_new: OPENBLAS_CORETYPE=%s in the "
                   "environment is not what OpenBLAS runs (a name it does not know, or a kernel "
                   "it will not run on this CPU): it runs %s%s%s%s", ignored,
                   flm_blas_kernel_name(kernel, sizeof kernel), pick ? "; fedrop picks " : "",
                   pick ? pick : "", pick ? " for this CPU: unset the variable to train on it" : "");
    }
    /* Waits end on flc_client_stop at once, not at their next timeout: an idle client sleeps
     * heartbeat_ms / 2 at a time (no polling in short steps on a battery-powered device). */
    /* The end of a training wakes the session at once too: until 2026-12-07 a finished training
     * was seen at the next 50 ms watch, so every update left up to 50 ms late (bench_server: a
     * small model's round took 0.050 s, 0.001 s since). */
    int pst = pipe(c->wake);
    if (pst == 0)
        pst = pipe(c->done);
    for (int i = 0; i < 2 && pst == 0; i++)
        pst = fcntl(c->wake[i], F_SETFL, O_NONBLOCK) | fcntl(c->wake[i], F_SETFD, FD_CLOEXEC) |
              fcntl(c->done[i], F_SETFL, O_NONBLOCK) | fcntl(c->done[i], F_SETFD, FD_CLOEXEC);
    if (pst != 0) {
        fl_log(&c->log, FL_LOG_ERROR, "flc_client_new: pipe: %s", strerror(errno));
        flc_client_free(c); /* closes the pipe's ends if it was made */
        return FLC_ERR_TRANSPORT;
    }
    if (cfg->zmq_context) {
        c->ctx = cfg->zmq_context;
    } else {
        c->ctx = zmq_ctx_new();
        c->own_ctx = 1;
        if (!c->ctx) {
            fl_log(&c->log, FL_LOG_ERROR, "flc_client_new: zmq_ctx_new: %s", zmq_strerror(errno));
            flc_client_free(c);
            return FLC_ERR_TRANSPORT;
        }
    }
    *out = c;
    return FLC_OK;
}

/* Probes the endpoint's mechanism (flc_zmtp.h): mech when the server names another than this
 * client's, NULL otherwise (ours, none read, or not probed now). A streak of hang-ups (since the
 * run's start or the last handshake that succeeded) is probed at its first; once a probe read a
 * greeting, not again; until then, again at every PROBE_EVERY-th hang-up (hangup: this call is
 * for one), and whenever libzmq reports a mismatch (hangup 0), which does not name it. */
static const char *probe_other_mechanism(flc_client *c, char *mech, int hangup)
{
    if (c->probe_read)
        return NULL;
    if (hangup && c->probe_wait) {
        c->probe_wait--;
        return NULL;
    }
    c->probe_wait = PROBE_EVERY - 1;
    if (flc_zmtp_probe_mechanism(mech, c->endpoint, c->wake[0], PROBE_MS) != 1)
        return NULL;
    c->probe_read = 1;
    return strcmp(mech, c->server_pub ? "CURVE" : "NULL") == 0 ? NULL : mech;
}

/* A server of another security mechanism than this client's was met (peer: its mechanism as its
 * greeting names it, or NULL where libzmq reported the mismatch, which does not name it: then
 * probed for the name, unless a probe of this streak read a greeting): nothing would
 * ever get through, so the connection counts as refused (AUTH_TRIES in a row give up). Said once
 * until a handshake succeeds. */
static void mismatch_seen(flc_client *c, const char *peer)
{
    if (!c->hs_mismatch) {
        /* libzmq's report does not name the server's mechanism: its greeting does (ours, if the
         * server changed between the two connections: not named then) */
        char mech[FLC_ZMTP_MECH_MAX + 1];
        if (!peer)
            peer = probe_other_mechanism(c, mech, 0);
        const char *ours = c->server_pub ? "CURVE client" : "plain-text client";
        if (peer && strcmp(peer, c->server_pub ? "NULL" : "CURVE") == 0)
            fl_log(&c->log, FL_LOG_WARN, "%s speaks another security mechanism than this %s: its "
                   "greeting names %s, so %s", c->endpoint, ours, peer, c->server_pub
                   ? "it runs plain text (fl_server --insecure): connect without keys (no "
                     "server_public_key, no secret_key)"
                   : "it runs CURVE: server_public_key and secret_key are needed");
        else if (peer)
            fl_log(&c->log, FL_LOG_WARN, "%s speaks another security mechanism than this %s: its "
                   "greeting names %s, which a fedrop server does not speak (not a fedrop "
                   "server?)", c->endpoint, ours, peer);
        else if (!c->server_pub)
            fl_log(&c->log, FL_LOG_WARN, "%s speaks another security mechanism than this "
                   "plain-text client: it runs CURVE? then server_public_key and secret_key "
                   "are needed", c->endpoint);
        else /* CURVE against a plain-text server: its key is not the question */
            fl_log(&c->log, FL_LOG_WARN, "%s speaks another security mechanism than this CURVE "
                   "client: it runs plain text (fl_server --insecure)? then connect without "
                   "keys (no server_public_key, no secret_key)", c->endpoint);
    }
    c->hs_mismatch = 1;
    c->hs_failed = 1;
}

/* Reads the socket monitor's pending events: a handshake that succeeded resets the count of
 * refusals; a refused one (the server's ZAP handler answered 400: our key is not on its
 * allow-list), a mechanism mismatch or, over CURVE, a protocol error marks this connection as
 * refused: the session then ends. A CURVE handshake that failed without detail (the endpoint
 * hung up) is no refusal: before any succeeded, it is said once (a wrong server key, or no
 * server behind the endpoint) and retried with the backoff; once one succeeded, it is retried as
 * a network error, and KEY_HINT_FAILS of them in a row ask whether the server's key changed. */
static void drain_monitor(flc_client *c)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        const int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) { /* the second frame: the endpoint */
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, c->mon, ZMQ_DONTWAIT);
            zmq_msg_close(&addr);
        }
        switch (event) {
        case ZMQ_EVENT_CONNECTED:
            c->conn_count++;
            break;
        case ZMQ_EVENT_DISCONNECTED:
            if (!c->link_up)
                c->prelink_drops++;
            c->link_up = 0;
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            c->hs_refusals = 0;
            c->unanswered_said = 0;
            c->hs_ever_ok = 1;
            c->hs_mismatch = 0; /* a CURVE server now: a later failure is news about the key */
            c->hs_fail_run = 0;
            c->probe_read = 0;
            c->probe_wait = 0;
            c->prelink_said = 0;
            c->prelink_drops = 0;
            c->hs_count++;
            c->link_up = 1;
            /* A Hello queued while the link was down goes out now: its answer is due from now. */
            c->hello_ns = fl_time_mono_ns();
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            fl_log(&c->log, FL_LOG_WARN, "%s refused this client's key (ZAP status %u): is its "
                   "public key on the server's allow-list?", c->endpoint, value);
            c->hs_failed = 1;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            /* A hang-up without detail: is the server of the other mechanism? libzmq says so
             * only when its greeting was read before it hung up, which it mostly is not
             * (flc_zmtp.h); the probe reads it, at the hang-ups probe_other_mechanism picks
             * (not one a retry: an endpoint that takes each connection and closes it, a proxy
             * with no server behind it, would see twice the connections). */
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && !c->hs_mismatch) {
                char mech[FLC_ZMTP_MECH_MAX + 1];
                const char *other = probe_other_mechanism(c, mech, 1);
                if (other) {
                    mismatch_seen(c, other);
                    break;
                }
            }
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
                mismatch_seen(c, NULL);
                break;
            }
            /* NO_DETAIL is also any network error mid-handshake (a reset, a timeout, a server
             * killed): it counts only while no handshake ever succeeded, when it is how a wrong
             * server_public_key shows. Plain text: a lost connection is just that. */
            if (!c->server_pub) {
                /* Once the server was seen to run CURVE, its hang-ups before this client read
                 * its greeting (a broken pipe, no detail) are that mismatch again, not news. */
                if (c->hs_mismatch)
                    c->hs_failed = 1;
                /* A peer that answered with what ZMTP's NULL handshake does not allow (not a
                 * fedrop server): a protocol error counts as over CURVE (flc.h, Refusal), or the
                 * client retried it for ever as a hang-up (until 2026-12-07). */
                else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                    fl_log(&c->log, FL_LOG_WARN, "plain-text handshake with %s failed (ZMTP "
                           "protocol error 0x%x): is a fedrop server at that endpoint?",
                           c->endpoint, value);
                    c->hs_failed = 1;
                }
                break;
            }
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && c->hs_ever_ok) {
                /* Not a refusal (a network error looks the same): ZeroMQ reconnects. But a
                 * server restarted under another key fails every handshake just so (libzmq 4.3:
                 * it cannot open our Hello and hangs up, EPIPE here), and "no word from EP"
                 * after liveness_ms would blame the network. Said once a run; not after a
                 * plain-text server was met, whose hang-ups look the same (said above). */
                if (++c->hs_fail_run == KEY_HINT_FAILS && !c->hs_mismatch)
                    fl_log(&c->log, FL_LOG_WARN, "%s: %d CURVE handshakes in a row failed (%s) "
                           "where one had succeeded: has the server's key changed? "
                           "server_public_key must be its public key now (or the server runs "
                           "plain text now, fl_server --insecure); retrying", c->endpoint,
                           KEY_HINT_FAILS, zmq_strerror((int)value));
                break;
            }
            /* The plain-text server often closes before its greeting is read: a broken pipe
             * then, which is no news about the key once the mismatch was seen. */
            if (c->hs_mismatch) {
                c->hs_failed = 1;
                break;
            }
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
                fl_log(&c->log, FL_LOG_WARN, "CURVE handshake with %s failed (protocol error "
                       "0x%x): is server_public_key the server's key?", c->endpoint, value);
            else {
                /* Before any handshake succeeded, the endpoint ended the connection without a
                 * word: a wrong server_public_key (a CURVE server that cannot open our HELLO
                 * hangs up), a plain-text server that hung up before its greeting was read, or
                 * no server behind the endpoint (a load balancer or proxy whose server is down,
                 * a server over its connection limit, taking each connection and closing it).
                 * From here they look the same: the errno (EPIPE, ECONNRESET) is the race of
                 * the close, not its cause. Three in a row gave FLC_ERR_AUTH, the verdict of a
                 * server that refused this device, to one whose server was merely down behind
                 * a load balancer: within half a second of its start, at the default backoff.
                 * Retried now with the reconnect backoff, for as long as it lasts, as any
                 * connection lost before a handshake (session(): its loss ends the session),
                 * said once at warn until a handshake succeeds, and counted
                 * (flc_stats.handshakes_unanswered) for a program that would rather give up.
                 * A refusal (the server's ZAP handler) or a mechanism mismatch still counts
                 * (AUTH_TRIES). */
                c->stats.handshakes_unanswered++; /* before the log: its callback may read it */
                if (c->unanswered_said)
                    fl_log(&c->log, FL_LOG_DEBUG, "CURVE handshake with %s ended without an "
                           "answer (%s), %llu so far: retrying", c->endpoint,
                           zmq_strerror((int)value),
                           (unsigned long long)c->stats.handshakes_unanswered);
                else
                    fl_log(&c->log, FL_LOG_WARN, "CURVE handshake with %s ended without an "
                           "answer (%s): is server_public_key the server's key? Or is no server "
                           "answering behind the endpoint (a load balancer or proxy whose server "
                           "is down, a server over its connection limit), or does the server run "
                           "plain text (fl_server --insecure)? Before a first handshake these "
                           "look the same: retrying with backoff (more such are logged at debug "
                           "level)", c->endpoint, zmq_strerror((int)value));
                c->unanswered_said = 1;
                c->prelink_said = 1; /* the connection's loss, which ends the session: said */
                break;
            }
            c->hs_failed = 1;
            break;
        default:
            break;
        }
    }
}

/* Sends m without blocking the socket thread for long: while the socket has no room (no
 * connection yet, or a full pipe) it waits in short steps, and gives up on flc_client_stop, on a
 * refused handshake or after SEND_WAIT_MS. The first attempt is always made, so a Bye still goes
 * out after flc_client_stop when the connection is up. 0 or -1 (logged, unless stopping). */
static int send_msg(flc_client *c, const flp_msg *m)
{
    /* Encoded straight into the ZeroMQ message: no staging buffer of our own, no extra copy. */
    size_t bound = 0, len = 0;
    char err[FLP_ERRBUF] = "";
    fl_status st = flp_encode_bound(&bound, m);
    zmq_msg_t z;
    if (st == FL_OK && zmq_msg_init_size(&z, bound) != 0)
        st = FL_ERR_NOMEM;
    else if (st == FL_OK && (st = flp_encode(zmq_msg_data(&z), bound, &len, m, NULL, err,
                                             sizeof err)) != FL_OK)
        zmq_msg_close(&z);
    if (st != FL_OK) {
        fl_log(&c->log, FL_LOG_ERROR, "cannot encode %s: %s %s", flp_type_name(m->type),
               fl_strerror(st), err);
        return -1;
    }
    const uint64_t deadline = fl_time_mono_ns() + (uint64_t)SEND_WAIT_MS * 1000000ull;
    int rc, e;
    for (;;) {
        rc = zmq_msg_send(&z, c->sock, ZMQ_DONTWAIT);
        e = errno;
        if (rc >= 0 || (e != EAGAIN && e != EINTR) || atomic_load(&c->stop) || c->hs_failed ||
            fl_time_mono_ns() >= deadline)
            break;
        zmq_pollitem_t it[3] = {{c->sock, 0, ZMQ_POLLOUT, 0}, {NULL, c->wake[0], ZMQ_POLLIN, 0},
                                {c->mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, c->mon ? 3 : 2, SEND_RETRY_MS) > 0 && c->mon && (it[2].revents & ZMQ_POLLIN))
            drain_monitor(c);
    }
    if (rc < 0) {
        zmq_msg_close(&z);
        if (!atomic_load(&c->stop) && !c->hs_failed)
            fl_log(&c->log, FL_LOG_WARN, "send %s: %s", flp_type_name(m->type), zmq_strerror(e));
        return -1;
    }
    c->last_sent_ns = fl_time_mono_ns();
    return 0;
}

/* An envelope of ours: version, type, round, sender; the body zeroed for the caller to fill. */
static flp_msg envelope(const flc_client *c, flp_type type, uint64_t round)
{
    return flp_msg_header(type, round, c->id);
}

static void send_simple(flc_client *c, flp_type type, uint64_t round)
{
    flp_msg m = envelope(c, type, round);
    if (type == FLP_HEARTBEAT)
        m.heartbeat.sender_time_us = fl_time_mono_ns() / 1000;
    send_msg(c, &m);
}

static void send_simple_ack(flc_client *c, uint64_t round)
{
    flp_msg m = envelope(c, FLP_ACK, round);
    m.ack.of_type = FLP_CHUNK;
    m.ack.of_round = round;
    m.ack.detail = "";
    send_msg(c, &m);
}

/* Training this round failed here: an Error (code = the failure's status, round = the task's) tells
 * the server not to wait for our update, so it can count the round failed for us at once. */
/* Tells the server this client's part of `round` is over (an Error of that round, with the
 * task's run id so that a restarted server can tell): "WHAT: WHY" as its message, mended for the
 * wire (WHY may be a trainer's text, cut mid-character). */
static void send_round_error(flc_client *c, uint64_t round, uint64_t run_id, fl_status st,
                             const char *what, const char *why, const char *said)
{
    flp_msg m = envelope(c, FLP_ERROR, round);
    m.error.code = st != FL_OK ? (uint32_t)st : (uint32_t)FL_ERR_INTERNAL;
    m.error.run_id = run_id;
    char msg[1024]; /* the wire's string limit (flp_limits.max_str): room for a codec's reason */
    snprintf(msg, sizeof msg, "%s: %s", what, why);
    flp_str_fix(msg);
    m.error.message = msg;
    if (send_msg(c, &m) == 0)
        fl_log(&c->log, FL_LOG_INFO, "round %llu: told the server %s", (unsigned long long)round,
               said);
}

static void send_train_error(flc_client *c, fl_status st)
{
    send_round_error(c, flc_core_round(c->core), flc_core_task_run_id(c->core), st,
                     "training failed", flc_core_train_error(c->core), "this round failed here");
}

/* A Task this client cannot take (a model above its memory_bytes or its parameter cap, a
 * keep-set or codec it cannot use): the server hears at once, as of a failed training, rather
 * than waiting for the round's deadline. */
static void send_task_refused(flc_client *c, const flp_msg *task, fl_status st)
{
    const char *why = flc_core_task_error(c->core);
    send_round_error(c, task->round, task->task.run_id, st, "task refused",
                     *why ? why : fl_strerror(st), "its task was refused here");
}

static void send_hello(flc_client *c)
{
    const flp_msg m = hello_of(&c->cfg, c->id);
    send_msg(c, &m);
    c->hello_ns = fl_time_mono_ns(); /* the retry timer counts from the last Hello, whoever sent it */
    c->hello_hs = c->hs_count;
}

static void close_socket(flc_client *c)
{
    if (c->sock) {
        zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->sock);
        c->sock = NULL;
    }
    if (c->mon) {
        zmq_close(c->mon);
        c->mon = NULL;
    }
    c->registered = 0;
    c->hs_failed = 0;
    c->link_up = 0;
    c->prelink_drops = 0;
}

/* Descriptors a session may need at once: libzmq's start of a context (the reaper's and the I/O
 * thread's epoll and mailbox), the DEALER's and the monitor's mailboxes, the monitor's PAIR
 * and the TCP connection, with room to spare. */
#define FDS_NEEDED 16

/* Whether FDS_NEEDED descriptors can be opened now. libzmq asserts on a descriptor it cannot
 * make when a context starts (its epoll and mailboxes, at the first socket): out of descriptors,
 * the host's whole process aborted ("Too many open files (src/epoll.cpp:65)"), as 2000 clients
 * on threads of one process, each with its own context, did. A probe, not a guarantee: another
 * thread of the host may take the descriptors between it and zmq_socket. */
static int fds_available(const flc_client *c)
{
    int fds[FDS_NEEDED], n = 0, ok = 1;
    while (n < FDS_NEEDED) {
        fds[n] = fcntl(c->wake[0], F_DUPFD_CLOEXEC, 0);
        if (fds[n] < 0) {
            ok = errno != EMFILE && errno != ENFILE;
            break;
        }
        n++;
    }
    while (n > 0)
        close(fds[--n]);
    return ok;
}

static int open_socket(flc_client *c)
{
    if (!fds_available(c)) {
        struct rlimit rl;
        const unsigned long long lim =
            getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
        fl_log(&c->log, FL_LOG_ERROR, "out of file descriptors (RLIMIT_NOFILE %llu): ZeroMQ "
               "cannot open this client's connection (it would abort the process); raise the "
               "limit (ulimit -n, systemd LimitNOFILE=), or let the clients of one process share "
               "one ZeroMQ context (flc_config.zmq_context)", lim);
        return -1;
    }
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->sock) {
        fl_log(&c->log, FL_LOG_ERROR, "zmq_socket: %s", zmq_strerror(errno));
        return -1;
    }
    /* No ZeroMQ heartbeats (ZMQ_HEARTBEAT_IVL, _TIMEOUT, _TTL): the protocol's own Heartbeats
     * (every heartbeat_ms both ways while idle) and this client's liveness_ms already find a
     * dead link, on the server as here. ZeroMQ's added a PING and a PONG a second on every
     * connection, and their TTL a timer in the server's libzmq that each message cancels by a
     * walk of all such timers: the server spent 50.3 us of CPU a second on each idle client
     * with them, 26.8 without (bench/bench_idle, 8000 sessions, 2026-11-30, median of 3).
     * test_no_zeromq_heartbeats. */
    const int linger = 0;
    const int64_t maxmsg = (int64_t)flp_limits_default().max_msg_bytes;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* ZeroMQ retries a connection that is refused or lost by itself, every 100 ms by default
     * (ZMQ_RECONNECT_IVL; no backoff): with the server down a device would try 5-10 times a
     * second whatever reconnect_min_ms says, and a fleet would all come back within 100 ms of
     * the server's return. Its own retries follow the backoff of flc.h instead: from
     * reconnect_min_ms, doubled up to reconnect_max_ms (libzmq adds up to one interval of jitter
     * to each). libzmq doubles only over connections refused outright: one taken and closed
     * before a handshake restarts its interval, and session() ends such a session instead
     * (test_reconnect_backoff_doubles). */
    const int ivl = c->cfg.reconnect_min_ms, ivl_max = c->cfg.reconnect_max_ms;
    zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    /* libzmq connects to an IPv6 address (tcp://[::1]:5555, which fl_server binds) only with
     * ZMQ_IPV6 set, and without it fails each attempt silently: the client said "no connection
     * ... is a server running there?" for ever. Set for IPv6 addresses alone: with it a host
     * name resolves to its IPv6 address first ("localhost" to ::1), and a server bound to
     * 127.0.0.1 would no longer be reached. */
    char host[256];
    if (fl_tcp_host(c->endpoint, host, sizeof host) && fl_ip_literal(host) == 6) {
        const int v6 = 1;
        zmq_setsockopt(c->sock, ZMQ_IPV6, &v6, sizeof v6);
    }
    if (c->server_pub) {
        if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, c->server_pub, 40) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, c->pub, 40) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, c->sec, 40) != 0) {
            fl_log(&c->log, FL_LOG_ERROR, "CURVE keys refused by ZeroMQ: %s", zmq_strerror(errno));
            close_socket(c);
            return -1;
        }
    }
    /* The handshake's outcome is only told through a socket monitor: without it a refused key
     * looks like a server that never answers. Its PAIR end is connected before sock connects,
     * so no event is lost. */
    /* Unique in the context: a client freed and a new one at the same address (its own
     * zmq_context shared) would otherwise meet the old name, still bound for a moment. */
    char mon_ep[128];
    snprintf(mon_ep, sizeof mon_ep, "inproc://flc-monitor-%p-%u-%llu", (void *)c, c->mon_seq++,
             (unsigned long long)fl_time_mono_ns());
    const int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(c->sock, mon_ep, events) != 0 ||
        !(c->mon = zmq_socket(c->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(c->mon, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(c->mon, mon_ep) != 0) {
        fl_log(&c->log, FL_LOG_ERROR, "socket monitor %s: %s", mon_ep, zmq_strerror(errno));
        close_socket(c);
        return -1;
    }
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        fl_log(&c->log, FL_LOG_ERROR, "connect %s: %s", c->endpoint, zmq_strerror(errno));
        close_socket(c);
        return -1;
    }
    /* Said once: until the server answers (or liveness_ms passes without a connection) the
     * client has nothing else to say, and a wrong endpoint looked like a hang. Reconnects say
     * "reconnecting in N ms" instead. mon_seq counts this client's socket opens: 1 is the
     * first. */
    if (c->mon_seq == 1)
        fl_log(&c->log, FL_LOG_INFO, "connecting to %s (%s)", c->endpoint,
               c->server_pub ? "CURVE" : "plain text");
    return 0;
}

static void *train_thread(void *arg)
{
    flc_client *c = arg;
    c->train_status = flc_core_train(c->core);
    atomic_store(&c->training, 0);
    /* after the store: the session that wakes on the byte sees the training over. Full (bytes
     * of earlier trainings not drained yet): the poll wakes on those. */
    if (write(c->done[1], "", 1) < 0) {
    }
    return NULL;
}

/* Test hooks, compiled in only with FLC_TEST_HOOKS: the integration tests (tests/integration)
 * build their own fl_client with them. The shipped libflclient has none, so no environment
 * variable changes what a device uploads. */
#ifdef FLC_TEST_HOOKS
/* A server killed while a round is surely open: with FEDROP_TEST_UPLOAD_GATE=PREFIX in the
 * environment, the update of round r is sent only once the file PREFIX<r> exists (polled every
 * 20 ms; flc_client_stop ends the wait). */
static void test_upload_gate(flc_client *c, uint64_t round)
{
    const char *gate = getenv("FEDROP_TEST_UPLOAD_GATE");
    if (!gate || !*gate)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s%llu", gate, (unsigned long long)round);
    int logged = 0;
    while (!atomic_load(&c->stop)) {
        FILE *g = fopen(path, "r");
        if (g) {
            fclose(g);
            return;
        }
        if (!logged++)
            fl_log(&c->log, FL_LOG_WARN, "test: round %llu upload waits for %s",
                   (unsigned long long)round, path);
        const struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* With FEDROP_TEST_TRAIN_WATCH_MS=N the session's poll wakes every N ms at most while a training
 * runs, not heartbeat_ms / 2 (ms): a test that sets it long shows that a training's end wakes the
 * session by itself. */
static int train_watch_ms(int ms)
{
    const char *v = getenv("FEDROP_TEST_TRAIN_WATCH_MS");
    const long n = v && *v ? strtol(v, NULL, 10) : 0;
    return n > 0 && n <= 3600000 ? (int)n : ms;
}

/* A client killed mid-upload: with FEDROP_TEST_PAUSE_UPLOAD_AFTER_CHUNKS=K in the environment
 * the client sends its Update and K of its chunks, logs "test: upload paused after K of N chunks"
 * and then idles (no heartbeats, no more chunks) until flc_client_stop, so a test can SIGKILL it
 * with a partial update on the server. Called as an upload starts. */
static void test_pause_arm(flc_client *c)
{
    const char *k = getenv("FEDROP_TEST_PAUSE_UPLOAD_AFTER_CHUNKS");
    c->up_pause_after = k && *k ? strtol(k, NULL, 10) : -1;
}

/* 1 if the upload pauses here (it returned at flc_client_stop, the upload ended). */
static int test_pause_here(flc_client *c)
{
    if (c->up_pause_after < 0 || (long)c->up_next != c->up_pause_after)
        return 0;
    fl_log(&c->log, FL_LOG_WARN, "test: upload paused after %ld of %u chunks", c->up_pause_after,
           c->up_n);
    while (!atomic_load(&c->stop)) {
        const struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    c->up_active = 0;
    return 1;
}
#else
static void test_upload_gate(flc_client *c, uint64_t round) { (void)c; (void)round; }
static void test_pause_arm(flc_client *c) { (void)c; }
static int test_pause_here(flc_client *c) { (void)c; return 0; }
static int train_watch_ms(int ms) { return ms; }
#endif

/* The update being sent will not be sent in full (a new Task, the session's end, a send that
 * failed): a task dropped (flc_stats.tasks_dropped). */
static void drop_upload(flc_client *c)
{
    if (c->up_active) {
        c->up_active = 0;
        c->up_gone_round = c->up_round + 1;
        c->stats.tasks_dropped++;
    }
}

static void upload(flc_client *c)
{
    flp_msg m;
    if (flc_core_update(c->core, &m) != FL_OK) {
        c->stats.tasks_dropped++;
        return;
    }
    const flc_core_stats *s = flc_core_last_stats(c->core);
    test_upload_gate(c, s->round);
    if (send_msg(c, &m) != 0) {
        c->stats.tasks_dropped++;
        return;
    }
    /* The chunks follow only against the server's credits (Ack(of CHUNK, this round)): see
     * upload_pump. */
    c->up_active = 1;
    c->up_start_ns = fl_time_mono_ns();
    c->up_round = s->round;
    c->up_next = 0;
    c->up_credit = 0;
    c->up_n = flc_core_update_chunks(c->core);
    test_pause_arm(c);
}

/* Sends the update's next chunks, as many as the server's credits allow. */
static void upload_pump(flc_client *c)
{
    while (c->up_active && c->up_credit > 0 && c->up_next < c->up_n && !atomic_load(&c->stop) &&
           !atomic_load(&c->training)) {
        if (test_pause_here(c))
            return;
        flp_msg cm;
        if (flc_core_update_chunk(c->core, c->up_next, &cm) != FL_OK || send_msg(c, &cm) != 0) {
            drop_upload(c);
            return;
        }
        c->up_credit--;
        c->up_next++;
        /* counted as each goes: an update the server ends early (its answer before the last
         * chunk) or given up sent these too, and they counted nowhere */
        c->stats.bytes_up += cm.chunk.payload_len;
    }
    if (c->up_active && c->up_next >= c->up_n) {
        const flc_core_stats *s = flc_core_last_stats(c->core);
        c->up_active = 0;
        c->stats.updates_sent++;
        c->stats.last_loss = s->loss;
        c->uploads_this_session++;
        c->ack_wait = 1;
        c->ack_round = s->round;
        c->ack_deadline_ns = fl_time_mono_ns() + (uint64_t)c->cfg.liveness_ms * 1000000ull;
        fl_log(&c->log, FL_LOG_INFO, "round %llu: trained %llu samples of a %zu-parameter "
               "submodel, loss %.4f, uploaded %llu bytes", (unsigned long long)s->round,
               (unsigned long long)s->n_samples, s->sub_params, s->loss,
               (unsigned long long)s->bytes_up);
    }
}

/* 1 once the deadline of the Task last taken (deadline_ms, counted from its arrival, so never
 * before the server's own) has passed: its round is over. 0 for a Task without one. */
static int past_deadline(const flc_client *c)
{
    return c->task_deadline_ns && fl_time_mono_ns() > c->task_deadline_ns;
}

/* A training ended (train_status): a success counts in rounds_trained, whatever becomes of it
 * (but one of the built-in trainer's that was cancelled after its last batch). With send, its
 * update goes out, or the server hears that the round failed here. Not a training cut short
 * for stopping: FL_ERR_CANCELLED (the built-in trainer saw the stop flag, or a plug-in
 * returned it for the device's reason to call stop, which flc.h tells it to do, maybe a moment
 * before that call) or any failure once stop was called. The Bye that follows tells the server
 * (flc.h, flc_client_stop). */
static void training_done(flc_client *c, int send)
{
    /* Ended past its Task's deadline (training_watch cancelled it, or it ended between two of
     * its looks): the round is over, and no server takes its update or heeds its failure now
     * (PROTOCOL.md 3: an Update of a closed round gets Ack(of UPDATE, FL_ERR_ROUND_CLOSED)).
     * Not sent, counted in tasks_dropped below. */
    if (send && (c->train_late || past_deadline(c))) {
        if (c->train_late) /* said at warn when it was cancelled */
            fl_log(&c->log, FL_LOG_DEBUG, "round %llu: the training cancelled at its task's "
                   "deadline returned: not sent", (unsigned long long)flc_core_round(c->core));
        else
            fl_log(&c->log, FL_LOG_WARN, "round %llu: the training ended after its task's "
                   "deadline (%u ms from the task's arrival): the round is over, and what it "
                   "returned is not sent", (unsigned long long)flc_core_round(c->core),
                   c->task_deadline_ms);
        send = 0;
    }
    /* Cancelled after the trainer's last step (the built-in one looks before each batch): a
     * stop, the session's end, a replacing Task or the deadline that came while the update was
     * encoded, or before this look. Its update is not sent (the flag is set only when it will
     * not be), so the error-feedback residual goes back to its state before the training (flc.h:
     * a cancelled training leaves it untouched), and the built-in trainer's counts as cancelled,
     * as it would have a batch earlier; a plug-in's success still counts in rounds_trained
     * (flc.h). */
    if (c->train_status == FL_OK && atomic_load(&c->cancel)) {
        if (flc_core_drop_update(c->core) != FL_OK)
            fl_log(&c->log, FL_LOG_WARN, "round %llu: the error-feedback residual of a training "
                   "cancelled after its last step cannot be put back (no rewind point)",
                   (unsigned long long)flc_core_round(c->core));
        fl_log(&c->log, FL_LOG_DEBUG, "round %llu: the training ended after it was cancelled "
               "(the client is stopping, its session with the server is over, a newer Task "
               "replaced it, or its task's deadline passed): its update is not sent, and the "
               "error-feedback residual is as before it",
               (unsigned long long)flc_core_round(c->core));
        if (!c->cfg.train)
            c->train_status = FL_ERR_CANCELLED;
        send = 0;
    }
    if (c->train_status == FL_OK)
        c->stats.rounds_trained++;
    /* finished but not to be sent, or cut short (a new Task, the session's end, a stop), or
     * failed with no one to tell: after a stop, or for a session that is over or a task that was
     * replaced (a trainer aborted under it may say so by an error of its own). Counted nowhere
     * else (rounds_failed counts the failures the server is told of), and logged at info
     * (flc_core_train: the cancel flag was set). */
    if (c->train_status == FL_ERR_CANCELLED ||
        (c->train_status == FL_OK ? !send : !send || atomic_load(&c->stop)))
        c->stats.tasks_dropped++;
    if (!send)
        return;
    if (c->train_status == FL_OK)
        upload(c);
    else if (c->train_status != FL_ERR_CANCELLED && !atomic_load(&c->stop)) {
        send_train_error(c, c->train_status); /* flc_core_train logged why */
        c->stats.rounds_failed++;
    }
    /* The built-in trainer's samples do not fit the server's model (the only source of this
     * status without a plug-in): every later round would fail the same way, so the run ends
     * (FLC_ERR_DATASET). A plug-in's FLC_ERR_DATASET fails this round only, as its other
     * statuses do: the device may have its reasons to skip one. */
    if (!c->cfg.train && c->train_status == FL_ERR_DATASET_FORMAT && !atomic_load(&c->stop))
        c->unfit = 1;
}

static void drop_pending(flc_client *c)
{
    for (size_t i = 0; i < c->n_pending; i++)
        flp_msg_free(c->pending[i].m);
    c->n_pending = 0;
    c->pending_bytes = 0;
}

static void wait_training(flc_client *c)
{
    if (c->thread_live) {
        pthread_join(c->thread, NULL);
        c->thread_live = 0;
        atomic_store(&c->training, 0);
        /* It finished after the session ended (stop, a lost link): counted, never sent. */
        training_done(c, 0);
    }
}

/* The download in progress (a Task whose weights have not all come in) will not complete: its
 * session is over, or its round's deadline passed. A task dropped (flc_stats.tasks_dropped),
 * whose buffers go back at once rather than at the next Task, which may be hours away; its chunks
 * that still come in are Acked and dropped without a word. No-op without such a download. */
static void drop_download(flc_client *c)
{
    if (c->thread_live || !flc_core_busy(c->core))
        return;
    c->gone_round = flc_core_round(c->core) + 1;
    c->stats.tasks_dropped++;
    flc_core_release(c->core);
}

/* The session a training in progress belongs to is over (the connection ended, or the server no
 * longer knows this client): its update has no one to go to, and the messages queued for the
 * core are stale. The built-in trainer is cancelled (it stops before its next batch, the
 * residual untouched: flc_core_train changes it only after a training that finished) and
 * joined, which is no failure to report (FL_ERR_CANCELLED, not counted), so the client serves
 * the server's next task at once instead of training on for nothing. A plug-in trainer cannot
 * be stopped: it runs on, and finish_training drops what it returns. */
static void session_over(flc_client *c)
{
    c->epoch++;
    /* What was queued for the core came from that session: stale now. (Never called while
     * finish_training replays the queue: only Tasks and Chunks are queued, and neither ends a
     * session.) */
    drop_pending(c);
    /* An update being sent, or waiting for its answer, was that session's too: no answer to it
     * can come (a server that forgot this client, Error(unknown client), has no Update of it
     * open, and would have been sent the rest of its chunks against credits of its round). */
    drop_upload(c);
    c->ack_wait = 0;
    if (!c->thread_live) {
        /* a download of that session: the next session's server sends its Task afresh (a
         * server that no longer knows the client, Error(unknown client), sends no more of it) */
        drop_download(c);
        return;
    }
    const unsigned long long round = flc_core_round(c->core);
    /* The built-in trainer sees it before its next batch; a plug-in through flc_task_cancelled
     * (flc.h), if it polls it. */
    atomic_store(&c->cancel, 1);
    if (!c->cfg.train) {
        if (atomic_load(&c->training) && !atomic_load(&c->stop))
            fl_log(&c->log, FL_LOG_INFO, "round %llu: the session with the server this training "
                   "belongs to is over: it is cancelled", round);
        wait_training(c);
    } else if (atomic_load(&c->training) && !atomic_load(&c->stop)) {
        fl_log(&c->log, FL_LOG_INFO, "round %llu: the session with the server this training "
               "belongs to is over; the device's trainer runs on until it returns (the library "
               "cannot stop it: flc_task_cancelled is 1 now) and what it returns will not be "
               "sent", round);
    }
}

/* A round's buffers (the task's weights, the training runtime, the encoded update, the codec's
 * scratch) go back once nothing of a task is in progress: no training, no upload, no download
 * that may still complete. An idle device then holds none of its last round's memory (flc.h). */
static void release_if_idle(flc_client *c)
{
    if (!c->thread_live && !c->up_active && !flc_core_busy(c->core))
        flc_core_release(c->core);
}

/* A download whose Task's deadline_ms passed (counted from the Task's arrival, so never before
 * the server's own deadline): its round is over, and the rest of the task will not be taken.
 * Dropped then, instead of holding the partial task's buffers until the next Task. A download
 * that only slowed down is kept, however long no chunk comes: the server shares its downlink
 * budget round-robin among all the clients downloading, so with many of them (or slow links) a
 * client can wait many liveness periods for its next chunk in a round that is well alive, and a
 * guess from the silence would lose such rounds. Without a deadline, a download the server gave
 * up (its round closed without this client) keeps its buffers until the next Task or the
 * session's end. */
static void download_watch(flc_client *c)
{
    if (c->thread_live || !flc_core_busy(c->core) || flc_core_ready(c->core))
        return;
    if (!c->task_deadline_ns || fl_time_mono_ns() <= c->task_deadline_ns)
        return;
    fl_log(&c->log, FL_LOG_WARN, "round %llu: the task's deadline passed before all its weight "
           "chunks came in: the round is over, and the task is dropped",
           (unsigned long long)flc_core_round(c->core));
    drop_download(c);
}

/* An update still waiting for the server's credits once its Task's deadline passed, and
 * liveness_ms more: its round is over, and the server's Ack(of UPDATE, FL_ERR_ROUND_CLOSED) that
 * ends such an upload did not come (a send the server could not make). Dropped, so that the
 * round's buffers go back (release_if_idle) instead of staying until the next Task. The
 * liveness_ms are counted from the later of the deadline and the upload's start, so that an
 * Update gets that long for its answer (one trained past the deadline is not sent at all:
 * training_done). */
static void upload_watch(flc_client *c)
{
    if (!c->up_active || !c->task_deadline_ns)
        return;
    const uint64_t from = c->up_start_ns > c->task_deadline_ns ? c->up_start_ns
                                                                : c->task_deadline_ns;
    if (fl_time_mono_ns() <= from + (uint64_t)c->cfg.liveness_ms * 1000000ull)
        return;
    fl_log(&c->log, FL_LOG_WARN, "round %llu: the task's deadline passed with its update not sent "
           "in full (%u of %u chunks; the server gave no more credit, nor its answer): the update "
           "is dropped", (unsigned long long)c->up_round, c->up_next, c->up_n);
    drop_upload(c);
}

/* A training still running once its Task's deadline passed: its round is over, and what it
 * would return can never be aggregated (fedrop's server closes a round at its deadline, and
 * answers an Update of a closed round with Ack(of UPDATE, FL_ERR_ROUND_CLOSED)). It is
 * cancelled as a stop cancels it, so that the device does not spend its battery and CPU on it:
 * the built-in trainer stops before its next batch, a plug-in sees flc_task_cancelled turn 1
 * (the library cannot stop it; what it returns is dropped all the same). Said once, at warn:
 * a device slower than its server's rounds. Not sent (training_done), and counted in
 * tasks_dropped. A Task without a deadline (0) is never cancelled so. Nor is a training already
 * cancelled (a stop, its session over, a Task that replaces it): that is said already. */
static void training_watch(flc_client *c)
{
    if (!c->thread_live || c->train_late || !atomic_load(&c->training) ||
        c->train_epoch != c->epoch || !past_deadline(c))
        return;
    c->train_late = 1;
    if (atomic_exchange(&c->cancel, 1))
        return;
    fl_log(&c->log, FL_LOG_WARN, "round %llu: the task's deadline passed (%u ms from its "
           "arrival) before its training ended: the round is over, so the training is "
           "cancelled%s and its update will not be sent",
           (unsigned long long)flc_core_round(c->core), c->task_deadline_ms,
           c->cfg.train ? " (the device's trainer sees flc_task_cancelled 1)" : "");
}

/* The ms until t (monotonic ns), rounded up and one more, so that a wake then finds t passed
 * (past_deadline and the watches look for now > t); ms when t is 0 (none), later, or passed
 * before `seen` (the session's last look began then, so its watches saw it passed and acted).
 * 0 for a t that passed since that look began: between its watches and this poll (a log
 * callback, a heartbeat's send, buffers released), where no watch has seen it yet. Until
 * 2026-12-08 such a t read as passed, hence handled, and the poll slept heartbeat_ms / 2 on
 * it. */
static int until_ms(uint64_t t, uint64_t seen, uint64_t now, int ms)
{
    if (!t || t < seen)
        return ms;
    if (t < now)
        return 0;
    const uint64_t left = (t - now + 999999) / 1000000 + 1;
    return left < (uint64_t)ms ? (int)left : ms;
}

/* How long the session's poll may sleep: until a message, a stop or a training's end wakes it (its
 * descriptors), the next heartbeat look (heartbeat_ms / 2; >= 5, check_config), or a deadline of
 * its own, whichever comes first: the Task's (training_watch, download_watch), an upload's
 * (upload_watch) and, at max_rounds, the last update's Ack's. Until 2026-12-07 the deadlines
 * waited for the next look: a download's was seen up to heartbeat_ms / 2 late (the partial
 * task's buffers held meanwhile), and while a training ran the session woke every 50 ms for its
 * Task's, 20 times a second however long the training, with a deadline or none. */
static int poll_ms(const flc_client *c, uint64_t seen)
{
    int ms = c->cfg.heartbeat_ms / 2;
    if (c->thread_live)
        ms = train_watch_ms(ms);
    const uint64_t now = fl_time_mono_ns();
    ms = until_ms(c->task_deadline_ns, seen, now, ms);
    if (c->up_active && c->task_deadline_ns) {
        const uint64_t from = c->up_start_ns > c->task_deadline_ns ? c->up_start_ns
                                                                    : c->task_deadline_ns;
        ms = until_ms(from + (uint64_t)c->cfg.liveness_ms * 1000000ull, seen, now, ms);
    }
    if (c->ack_wait && c->cfg.max_rounds)
        ms = until_ms(c->ack_deadline_ns, seen, now, ms);
    return ms;
}

/* What the session loop should do after a message. */
enum { GO_ON = 0, DONE = 1, RECONNECT = 2, REFUSED = 3, HS_REFUSED = 4, UNFIT = 5 };

/* m came in at at_ns (monotonic): a Task held while a training ran is handled later, and its
 * deadline_ms still counts from its arrival (flc.h). */
static int handle(flc_client *c, flp_msg *m, uint64_t at_ns, int *owned)
{
    *owned = 0;
    switch (m->type) {
    case FLP_ACK:
        if (m->ack.of_type == FLP_HELLO) {
            if (m->ack.status == 0) {
                /* set before anything about this Ack is logged (flc.h): a log callback may read
                 * it */
                c->stats.memory_needed = m->ack.memory_needed;
                c->registered = 1;
                c->backoff_reset = 1; /* the next outage starts from reconnect_min_ms again */
                fl_log(&c->log, FL_LOG_INFO, "registered with %s as %s", c->endpoint, c->id);
                /* an admitted client the server will not select (too little memory_bytes) */
                if (m->ack.detail && m->ack.detail[0])
                    fl_log(&c->log, FL_LOG_WARN, "the server says: %s", m->ack.detail);
            }
        } else if (m->ack.of_type == FLP_CHUNK) {
            /* a credit: one more chunk of the update of that round may go. Only with status 0
             * (PROTOCOL.md 3): another status grants nothing, and was taken as a credit. */
            if (c->up_active && m->ack.of_round == c->up_round && m->ack.status == 0)
                c->up_credit++;
        } else if (m->ack.of_type == FLP_UPDATE) {
            /* Each update is counted once (flc.h, flc_stats): in updates_sent and then by its
             * first answer, or in tasks_dropped. An answer counts when it is the first to the
             * update being sent, which it ends (answered before every chunk went: the rest
             * would be dropped, PROTOCOL.md 3), or to the last one sent in full. Not an answer
             * to an update this client gave up (drop_upload: it counts in tasks_dropped, and
             * its last chunk never went out, so no server has it in full; an Ack of it comes
             * when the upload watch gave up before the server answered, its round closed), nor
             * a second answer to one: counted, they made one task count twice, and updates_sent
             * below accepted + late + refused. */
            const uint64_t r = m->ack.of_round;
            if (c->up_active && r == c->up_round) {
                c->up_active = 0;
                c->stats.updates_sent++;
            } else if (c->ack_wait && r == c->ack_round) {
                c->ack_wait = 0;
            } else {
                const int gone = c->up_gone_round == r + 1;
                fl_log(&c->log, gone && m->ack.status == 0 ? FL_LOG_WARN
                                : gone                     ? FL_LOG_INFO
                                                           : FL_LOG_DEBUG,
                       "round %llu: the server %s (%s)%s", (unsigned long long)r,
                       gone ? "answered the update this client had given up"
                            : "answered an update of this client's already answered or never "
                              "sent",
                       m->ack.status == 0 ? "accepted" : fl_strerror((fl_status)m->ack.status),
                       gone ? m->ack.status == 0
                                  ? ": it was not sent in full (its last chunk never went "
                                    "out); still counted in tasks_dropped only"
                                  : ": counted in tasks_dropped only"
                            : ": ignored");
                return GO_ON;
            }
            if (m->ack.status == 0) {
                c->stats.updates_accepted++;
            } else if (m->ack.status == FL_ERR_ROUND_CLOSED) {
                c->stats.updates_late++;
                fl_log(&c->log, FL_LOG_WARN, "round %llu: update dropped by the server: the round "
                       "had closed", (unsigned long long)m->ack.of_round);
            } else {
                /* The detail says why when the status alone does not (FL_ERR_TIMEOUT: the upload
                 * was too slow to finish before the round's deadline while others waited, or
                 * sent no chunk for the liveness timeout). Either way this update is over: the
                 * client waits for its next Task, as after any refusal. */
                c->stats.updates_refused++;
                const char *what = fl_strerror((fl_status)m->ack.status);
                const char *why = m->ack.detail && m->ack.detail[0] &&
                                          strcmp(m->ack.detail, what) != 0 /* said already */
                                      ? m->ack.detail
                                      : NULL;
                /* Out of the aggregation range: the status names no bound and no weight, and a
                 * device maker (a plug-in trainer's learning rate, weights written unscaled)
                 * learnt from it neither what to look at nor how far is too far. fedrop's server
                 * says which weight and its bound in the detail (since 2026-12-08); an older one
                 * says nothing, and the default bound is told instead. */
                const char *hint = m->ack.status != FL_ERR_AGG_RANGE ? ""
                                   : why ? " (a weight moved further from the task's than the "
                                           "server aggregates)"
                                         : " (a weight moved further from the task's than the server "
                                           "aggregates: fedrop's server takes |w - w0| up to 1024 a "
                                           "coordinate by default)";
                fl_log(&c->log, FL_LOG_WARN, "round %llu: update refused: %s%s%s%s",
                       (unsigned long long)m->ack.of_round, what, hint,
                       why ? ": the server says: " : "", why ? why : "");
            }
        }
        return GO_ON;
    case FLP_ERROR:
        /* Error(unknown client) is how a restarted server meets a registered client: said
         * below, once, as the new start it is. The messages that were queued towards the old
         * server meet it too, each answered so: those are noise, and kept at debug level. */
        if (m->error.code != FL_ERR_UNKNOWN_CLIENT)
            fl_log(&c->log, FL_LOG_WARN, "server error %u (%s): %s", m->error.code,
                   fl_strerror((fl_status)m->error.code), m->error.message);
        else if (!c->registered)
            fl_log(&c->log, FL_LOG_DEBUG, "server error %u (%s): %s", m->error.code,
                   fl_strerror((fl_status)m->error.code), m->error.message);
        /* Refused (its id taken by another key) or revoked (the operator took its key off the
         * allow-list and reloaded it): the server answers everything with this from now on. */
        if (m->error.code == FL_ERR_AUTH)
            return REFUSED;
        if (m->error.code == FL_ERR_UNKNOWN_CLIENT) {
            /* Registered: the server lost us (a restart), register again. Not yet: our Hello is
             * on its way or was refused, and the Hello timer sends the next (answering each such
             * Error with a Hello at once ping-ponged at network speed: 60,000 messages a second
             * against a server that refused the Hello). */
            if (c->registered) {
                fl_log(&c->log, FL_LOG_INFO, "the server no longer knows this client (it "
                       "restarted, or timed the client out): registering again");
                c->registered = 0;
                c->stats.reconnects++; /* a new start, on the same connection (flc.h) */
                session_over(c);
                send_hello(c);
            }
            return GO_ON;
        }
        if (!c->registered && m->round == 0) {
            /* Our Hello was refused (e.g. FL_ERR_STATE "server full": server.max_clients): try
             * again later, with the reconnect backoff. */
            return RECONNECT;
        }
        return GO_ON;
    case FLP_BYE:
        fl_log(&c->log, FL_LOG_INFO, "server says bye: %s", m->bye.reason);
        return strcmp(m->bye.reason, "done") == 0 ? DONE : RECONNECT;
    case FLP_TASK:
    case FLP_CHUNK: {
        /* The trainer thread owns core until finish_training joins it (not just until it
         * clears training: a message handled in between would meet a thread not yet joined). */
        if (c->thread_live) {
            const size_t sz = m->type == FLP_CHUNK ? m->chunk.payload_len : 0;
            if (c->n_pending < PENDING_MAX && sz <= PENDING_BYTES_MAX - c->pending_bytes &&
                fl_grow(&c->pending, &c->pending_cap, c->n_pending + 1, sizeof *c->pending,
                        16) == FL_OK) {
                c->pending[c->n_pending++] = (struct held){m, at_ns};
                c->pending_bytes += sz;
                *owned = 1;
            } else if (!c->pending_said) {
                /* Dropped: a Task whose chunk is lost never completes, and is given up
                 * (download_watch) like one the server stopped sending. */
                c->pending_said = 1;
                fl_log(&c->log, FL_LOG_WARN, "round %llu: the server sent more while this client "
                       "trained than its flow control allows (%zu messages, %zu bytes of weights "
                       "held for after the training): what does not fit is dropped",
                       (unsigned long long)m->round, c->n_pending, c->pending_bytes);
            }
            /* A Task held replaces the task being trained (finish_training drops its result):
             * the built-in trainer need not run on to the end for nothing, nor a plug-in that
             * polls flc_task_cancelled (flc.h). One that could not be held replaces nothing
             * (task_pending does not see it): it cancels nothing, and the training's update
             * goes out. */
            const int cancels = m->type == FLP_TASK && *owned && atomic_load(&c->training) &&
                                !atomic_exchange(&c->cancel, 1);
            if (m->type == FLP_TASK && !*owned)
                fl_log(&c->log, FL_LOG_DEBUG, "round %llu: a Task came in while the trainer runs "
                       "and cannot be held: dropped, it replaces nothing",
                       (unsigned long long)m->round);
            else if (cancels && !c->cfg.train)
                fl_log(&c->log, FL_LOG_INFO, "round %llu: a new Task came in: the training of "
                       "the task it replaces is cancelled",
                       (unsigned long long)flc_core_round(c->core));
            else if (m->type == FLP_TASK && *owned)
                fl_log(&c->log, FL_LOG_DEBUG, "round %llu: a Task came in while the trainer runs: "
                       "kept for when it returns", (unsigned long long)m->round);
            return GO_ON;
        }
        if (m->type == FLP_TASK) {
            drop_upload(c); /* a new task replaces the update still being sent */
            /* and the download still coming in (the core drops it, keeping its buffers) */
            if (flc_core_busy(c->core))
                c->stats.tasks_dropped++;
            c->gone_round = 0;
        } else if (c->gone_round == m->round + 1 && flc_core_round(c->core) != m->round) {
            /* A chunk of a download dropped here (drop_download): Acked, as every chunk, so the
             * server's downlink budget is not held by it until its liveness timeout. */
            send_simple_ack(c, m->round);
            return GO_ON;
        }
        const int was_busy = flc_core_busy(c->core);
        const uint64_t run_id = flc_core_task_run_id(c->core);
        const fl_status st = flc_core_on_message(c->core, m);
        if (m->type == FLP_CHUNK) {
            send_simple_ack(c, m->round);
            if (st == FL_OK)
                c->stats.bytes_down += m->chunk.payload_len;
        }
        if (st == FL_OK && m->type == FLP_TASK) {
            c->task_deadline_ns = m->task.deadline_ms ? at_ns +
                                                            (uint64_t)m->task.deadline_ms * 1000000ull
                                                      : 0;
            c->task_deadline_ms = m->task.deadline_ms;
        }
        /* The same Task sent again (its round and run: a server started afresh numbers its
         * rounds from 0 again, and its Task of round r is another task) is the same round
         * failed, counted once. */
        const int refused_before = m->type == FLP_TASK && c->refused_round == m->round + 1 &&
                                   c->refused_run == m->task.run_id;
        if (m->type == FLP_TASK) {
            c->refused_round = st != FL_OK ? m->round + 1 : 0;
            c->refused_run = m->task.run_id;
        }
        if (st != FL_OK && m->type == FLP_TASK) {
            send_task_refused(c, m, st); /* the core logged why */
            c->stats.rounds_failed += !refused_before;
        } else if (st != FL_OK && was_busy && !flc_core_busy(c->core)) {
            /* The core dropped the task: a chunk that does not decode (logged there), and the
             * task can never complete. The server hears at once, as of a task refused, rather
             * than waiting for the round's deadline; the rest of its chunks are dropped without
             * a word. */
            c->gone_round = m->round + 1;
            send_round_error(c, m->round, run_id, st, "task dropped",
                             "a weight chunk does not decode", "its task was dropped here");
            c->stats.rounds_failed++;
        } else if (st == FL_ERR_STATE && c->refused_round != m->round + 1) {
            /* A chunk of no task held (another round's, or one after its task was complete):
             * the only chunk refusal the core does not say itself (flc_core.h). Said here too,
             * a duplicate chunk was two warnings. Not for a chunk of a Task refused here. */
            fl_log(&c->log, FL_LOG_WARN, "round %llu: %s refused: %s", (unsigned long long)m->round,
                   flp_type_name(m->type), fl_strerror(st));
        }
        /* A task held while the last training ran may be complete only once its deadline has
         * passed: its round is over, and it is not trained for nothing. */
        if (flc_core_ready(c->core) && !c->thread_live && past_deadline(c)) {
            fl_log(&c->log, FL_LOG_WARN, "round %llu: the task's deadline passed (%u ms from its "
                   "arrival) before its training could start: the round is over, and the task "
                   "is dropped", (unsigned long long)flc_core_round(c->core), c->task_deadline_ms);
            drop_download(c);
        }
        if (flc_core_ready(c->core) && !c->thread_live) {
            fl_log(&c->log, FL_LOG_DEBUG, "round %llu: training a %zu-parameter submodel",
                   (unsigned long long)flc_core_round(c->core),
                   flc_core_sub_arch(c->core)->n_params);
            /* Cleared before the new training: a flag left by the last one's session must not stop
             * this one. Stop sets stop before cancel, so one that comes meanwhile is kept. */
            atomic_store(&c->cancel, 0);
            if (atomic_load(&c->stop))
                atomic_store(&c->cancel, 1);
            c->train_epoch = c->epoch;
            c->train_late = 0;
            c->pending_said = 0;
            atomic_store(&c->training, 1);
            const int e = pthread_create(&c->thread, NULL, train_thread, c);
            if (e != 0) {
                /* No thread to be had (the process's thread limit, memory): the round is trained
                 * here rather than failed, though nothing else happens on this thread meanwhile
                 * (flc.h, flc_client_run: Threads). */
                fl_log(&c->log, FL_LOG_WARN, "round %llu: cannot start a training thread (%s): "
                       "training on the thread of flc_client_run, which sends no heartbeats "
                       "until the training ends", (unsigned long long)flc_core_round(c->core),
                       strerror(e));
                atomic_store(&c->training, 0);
                c->train_status = flc_core_train(c->core);
                training_done(c, 1);
            } else {
                c->thread_live = 1;
            }
        }
        return GO_ON;
    }
    default:
        return GO_ON;
    }
}

/* 1 if a Task came in while training (queued): it replaces the task trained (PROTOCOL.md). */
static int task_pending(const flc_client *c)
{
    for (size_t i = 0; i < c->n_pending; i++)
        if (c->pending[i].m->type == FLP_TASK)
            return 1;
    return 0;
}

/* The trainer thread finished: upload, then replay what arrived meanwhile. A Task among what
 * arrived means the server moved on while we trained (it was restarted and tasked us again, for a
 * new run or to replay the round after a resume): this training's Update or failure would answer
 * the new task's round with another task's training. The server could take it in the new task's
 * place, or refuse it with an Ack that, matched by round only, would end the new update's upload;
 * so it is not sent, as an upload in progress would end at that Task. Nor is a training whose
 * session is over (a plug-in's that ran on while the client reconnected): its task was the old
 * session's. */
static int finish_training(flc_client *c)
{
    pthread_join(c->thread, NULL);
    c->thread_live = 0;
    const int replaced = task_pending(c);
    const int orphaned = c->train_epoch != c->epoch;
    training_done(c, !replaced && !orphaned);
    if (orphaned)
        fl_log(&c->log, FL_LOG_INFO, "round %llu: the device's trainer returned after its "
               "session with the server ended: its result is not sent",
               (unsigned long long)flc_core_round(c->core));
    else if (replaced)
        fl_log(&c->log, FL_LOG_INFO, "round %llu: this training is not sent: its task was "
               "replaced by a Task that came in meanwhile",
               (unsigned long long)flc_core_round(c->core));
    int verdict = GO_ON;
    size_t i = 0;
    for (; i < c->n_pending && !c->thread_live; i++) {
        int owned;
        const int v = handle(c, c->pending[i].m, c->pending[i].at_ns, &owned);
        if (!owned)
            flp_msg_free(c->pending[i].m);
        if (v != GO_ON) {
            verdict = v;
            i++;
            break;
        }
    }
    /* If a new training started mid-replay, keep the rest queued in order. */
    if (i < c->n_pending)
        memmove(c->pending, c->pending + i, (c->n_pending - i) * sizeof *c->pending);
    c->n_pending -= i;
    c->pending_bytes = 0;
    for (size_t k = 0; k < c->n_pending; k++)
        if (c->pending[k].m->type == FLP_CHUNK)
            c->pending_bytes += c->pending[k].m->chunk.payload_len;
    return verdict;
}

/* The ns from then to now, both read from the monotonic clock: 0 when then is the later one. The
 * session's look reads `now` once, before it handles a message, and what it sends meanwhile (a
 * chunk's Ack) stamps last_sent_ns after it: now - last_sent_ns wrapped round to 2^64 - a few
 * microseconds, and a Heartbeat followed every Ack (one message in two of a download). */
static uint64_t since(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

/* Why m, decoded from the server, is no message a server sends (PROTOCOL.md: a Hello, an
 * Update, a Chunk of an update, dir UP, are a client's); NULL when it is one. */
static const char *not_from_server(const flp_msg *m)
{
    switch (m->type) {
    case FLP_CHUNK:
        return m->chunk.dir == FLP_DIR_DOWN ? NULL
                                            : "a chunk of an update (chunk.dir UP): servers send "
                                              "weight chunks only";
    case FLP_HELLO:
        return "a Hello: servers do not send one";
    case FLP_UPDATE:
        return "an Update: servers do not send one";
    default:
        return NULL;
    }
}

/* One connection's life. */
static int session(flc_client *c)
{
    /* none since: nothing answered at the endpoint, or nothing that completed a handshake */
    const unsigned hs_at_start = c->hs_count, conn_at_start = c->conn_count;
    /* malformed messages this session, and since the last valid one */
    unsigned long long bad = 0, bad_since_ok = 0;
    /* when the last look (the watches below) began: a deadline passed since is still to act on */
    uint64_t seen = 0;
    send_hello(c);
    c->last_recv_ns = fl_time_mono_ns();
    while (!atomic_load(&c->stop) && !c->hs_failed) {
        if (c->unfit)
            return UNFIT;
        /* max_rounds: once the last update went out in full and the server acknowledged it (or
         * liveness_ms passed without that Ack), so updates_accepted counts it. */
        if (c->cfg.max_rounds && c->stats.updates_sent >= (uint64_t)c->cfg.max_rounds &&
            !c->thread_live && (!c->ack_wait || fl_time_mono_ns() >= c->ack_deadline_ns))
            return DONE;
        zmq_pollitem_t it[4] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0},
                                {NULL, c->wake[0], ZMQ_POLLIN, 0}, {NULL, c->done[0], ZMQ_POLLIN, 0}};
        /* The socket, the monitor, a stop and a training's end wake the poll; poll_ms says when
         * a look of the session's own is due. */
        const int rc = zmq_poll(it, 4, poll_ms(c, seen));
        if (rc < 0 && errno != EINTR)
            return RECONNECT;
        if (rc > 0 && (it[3].revents & ZMQ_POLLIN)) {
            char drain[64];
            while (read(c->done[0], drain, sizeof drain) > 0) {
            }
        }
        if (rc > 0 && (it[1].revents & ZMQ_POLLIN)) {
            drain_monitor(c);
            if (c->hs_failed)
                break;
            /* Something at the endpoint took the connection and closed it before a handshake
             * completed (a server starting up or over its connection limit, a load balancer
             * with no server behind it, a server whose key changed). libzmq would connect again
             * after reconnect_min_ms each time, never backing off (its interval doubles only over
             * connections refused outright): the session ends here, and the next waits out the
             * backoff. At the first such loss when no handshake succeeded in this session; at the
             * second since the link went down in one that reached the server (a server killed
             * and restarted over its connection limit forgot the session anyway; one loss alone
             * may be a server still starting, and a training goes on across that). */
            if (c->prelink_drops && (c->hs_count == hs_at_start || c->prelink_drops >= 2)) {
                /* A plain-text client that met a CURVE server: the server closes every such
                 * connection, and this one often sees the close before the server's greeting,
                 * which says why. Counted as the mismatch it is (3 in a row give up), or it
                 * retried for as long as the greeting lost that race (26 s in a trial). */
                if (!c->server_pub && c->hs_mismatch) {
                    c->hs_failed = 1;
                    break;
                }
                /* In plain text the likeliest cause comes last in the list: a CURVE server
                 * closes the connection of a client without keys, and libzmq reports that
                 * mismatch only when it read the server's greeting first (1 in several). */
                fl_log(&c->log, c->prelink_said ? FL_LOG_DEBUG : FL_LOG_WARN, "%s closed the "
                       "connection before a handshake completed (a server starting up or over "
                       "its connection limit, a proxy with no server behind it, or not a fedrop "
                       "server%s): retrying with backoff", c->endpoint,
                       c->server_pub ? "" : "; or a server that runs CURVE: then "
                                            "server_public_key and secret_key are needed");
                c->prelink_said = 1;
                return RECONNECT;
            }
        }
        const uint64_t now = fl_time_mono_ns();
        seen = now; /* this look's watches (below) see every deadline passed before now */
        if (c->thread_live && !atomic_load(&c->training)) {
            const int v = finish_training(c);
            if (v != GO_ON)
                return v;
        }
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN)) {
            zmq_msg_t zm;
            zmq_msg_init(&zm);
            if (zmq_msg_recv(&zm, c->sock, ZMQ_DONTWAIT) >= 0) {
                flp_msg *m = NULL;
                char err[FLP_ERRBUF];
                const fl_status st = flp_decode(&m, zmq_msg_data(&zm), zmq_msg_size(&zm), NULL, err, sizeof err);
                zmq_msg_close(&zm);
                const char *wrong = st == FL_OK ? not_from_server(m) : NULL;
                if (wrong) {
                    /* Decoded, but a message no server sends: refused as a malformed one is
                     * (below), not handled. A Chunk of an update (dir UP) was Acked, which
                     * returned the server a downlink credit it never spent, and counted in
                     * bytes_down. */
                    snprintf(err, sizeof err, "%s", wrong);
                    flp_msg_free(m);
                    m = NULL;
                }
                if (st != FL_OK || wrong) {
                    /* No sign of life: a peer that sends only what is not a message of this
                     * protocol (not a fedrop server, another protocol version, bytes libzmq took
                     * for ZeroMQ's oldest framing) ends the session at liveness_ms, said below,
                     * and the next waits out the backoff. It kept the session alive for ever, a
                     * warning a message (470 in 12 s from a port that sent random bytes). Said
                     * once a session; the rest at debug level. The rest of the loop runs on
                     * (no `continue`): a peer that sends faster than this reads would otherwise
                     * never let it reach the liveness check below. */
                    bad++;
                    bad_since_ok++;
                    fl_log(&c->log, bad == 1 ? FL_LOG_WARN : FL_LOG_DEBUG, "malformed message "
                           "from the server: %s%s", err, bad == 1 ? " (more this session are "
                           "logged at debug level)" : "");
                } else {
                    c->last_recv_ns = now;
                    bad_since_ok = 0;
                    int owned = 0;
                    /* read now, not at `now`: finish_training may have run since */
                    const int v = handle(c, m, fl_time_mono_ns(), &owned);
                    if (!owned)
                        flp_msg_free(m);
                    if (v != GO_ON)
                        return v;
                }
            } else {
                zmq_msg_close(&zm);
            }
        }
        upload_pump(c);
        training_watch(c);
        download_watch(c);
        upload_watch(c);
        release_if_idle(c);
        /* Unanswered for 3 heartbeats: the Hello may have gone down with a link that broke after
         * it was queued. Sent again only once a link came up since (a handshake succeeded):
         * while the server is down, Hellos would only queue up and all reach it when it comes
         * back, each starting the client afresh there. */
        if (!c->registered && c->hs_count != c->hello_hs &&
            since(now, c->hello_ns) > (uint64_t)c->cfg.heartbeat_ms * 3000000ull)
            send_hello(c);
        /* Before the Hello is accepted the server answers anything but a Hello with an Error. */
        if (c->registered &&
            since(now, c->last_sent_ns) > (uint64_t)c->cfg.heartbeat_ms * 1000000ull)
            send_simple(c, FLP_HEARTBEAT, 0);
        if (now - c->last_recv_ns > (uint64_t)c->cfg.liveness_ms * 1000000ull) {
            /* A server that is not there (not started, a wrong address or port) takes no
             * connection; one whose handshakes fail (a server key changed since this client's
             * first handshake: such failures are not counted as refusals then, a network error
             * looks the same) takes connections only. Say which, not the silence of a server
             * that was heard from. */
            if (bad_since_ok)
                fl_log(&c->log, FL_LOG_WARN, "no valid message from %s for %d ms, %llu malformed "
                       "ones: is it a fedrop server that speaks protocol version %d? reconnecting",
                       c->endpoint, c->cfg.liveness_ms, bad_since_ok, FLP_VERSION);
            else if (c->conn_count == conn_at_start)
                fl_log(&c->log, FL_LOG_WARN, "no connection to %s in %d ms: is a server running "
                       "there%s? retrying", c->endpoint, c->cfg.liveness_ms,
                       tcp_host_is_name(c->endpoint) ? ", and does its host name resolve here" : "");
            else if (c->hs_count == hs_at_start)
                /* A server that takes connections and says nothing is also one that is stopped
                 * (SIGSTOP, a debugger), swapping or overloaded, or a proxy on the way that hangs:
                 * after a server or a link froze, the key or the mechanism alone was the wrong
                 * question (a plain-text client that spoke with this server asked whether it
                 * runs CURVE). */
                fl_log(&c->log, FL_LOG_WARN, "connected to %s, but no handshake completed in %d "
                       "ms: %s retrying", c->endpoint, c->cfg.liveness_ms,
                       c->server_pub ? "is server_public_key still the server's key, and is the "
                                       "server (or a proxy on the way) not stopped or overloaded?"
                       : c->hs_ever_ok ? "is the server (or a proxy on the way) stopped or "
                                         "overloaded?"
                                       : "is it a fedrop server, without CURVE, and not stopped "
                                         "or overloaded?");
            else if (c->cfg.liveness_ms < 3000)
                /* the server's Heartbeats come every server.heartbeat_ms, 1 s by default */
                fl_log(&c->log, FL_LOG_WARN, "no word from %s for %d ms: reconnecting (an idle "
                       "client hears the server's Heartbeats, one each server.heartbeat_ms, 1000 "
                       "ms by default: keep liveness_ms several times that)", c->endpoint,
                       c->cfg.liveness_ms);
            else
                fl_log(&c->log, FL_LOG_WARN, "no word from %s for %d ms: reconnecting",
                       c->endpoint, c->cfg.liveness_ms);
            return RECONNECT;
        }
    }
    if (c->hs_failed && !atomic_load(&c->stop))
        return HS_REFUSED;
    return DONE;
}

/* Sleeps ms, or less if flc_client_stop is called. */
static void sleep_ms_interruptible(flc_client *c, int ms)
{
    const uint64_t end = fl_time_mono_ns() + (uint64_t)ms * 1000000ull;
    while (!atomic_load(&c->stop)) {
        const uint64_t now = fl_time_mono_ns();
        if (now >= end)
            return;
        struct pollfd p = {c->wake[0], POLLIN, 0};
        poll(&p, 1, (int)((end - now + 999999) / 1000000));
    }
}

static flc_status run_sessions(flc_client *c)
{
    int backoff = c->cfg.reconnect_min_ms;
    c->hs_refusals = 0;
    for (;;) {
        if (atomic_load(&c->stop))
            return FLC_ERR_CANCELLED;
        if (open_socket(c) != 0)
            return FLC_ERR_TRANSPORT;
        const int v = session(c);
        /* A plug-in's training may outlive the session, into the next (finish_training there);
         * when run returns, flc_client_run waits for it. */
        session_over(c);
        if (v == DONE || v == UNFIT || atomic_load(&c->stop)) {
            if (c->registered) {
                /* The server drops us at once instead of waiting out its liveness timeout. The
                 * socket lingers a little (ZMQ_LINGER) so the Bye leaves before it closes; not
                 * when the link is known down (the server went away): the Bye has nowhere to go,
                 * and flc_client_free (or the caller's zmq_ctx_term) would wait for it. */
                if (c->mon)
                    drain_monitor(c);
                flp_msg m = envelope(c, FLP_BYE, 0);
                m.bye.reason = atomic_load(&c->stop) ? "client stopping"
                               : v == UNFIT          ? "the local samples do not fit the model"
                                                     : "done";
                if (c->link_up && send_msg(c, &m) == 0) {
                    const int linger = BYE_LINGER_MS;
                    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
                }
            }
        }
        c->ack_wait = 0;
        close_socket(c);
        drop_pending(c);
        drop_upload(c);
        /* A download cut short by the session's end never completes: the next session's server
         * sends its Task afresh. A plug-in's training that runs on keeps the core. */
        if (!c->thread_live)
            flc_core_release(c->core);
        if (atomic_load(&c->stop))
            return FLC_ERR_CANCELLED;
        if (v == DONE)
            return FLC_OK;
        if (v == UNFIT) {
            fl_log(&c->log, FL_LOG_ERROR, "the local samples do not fit the server's model: "
                   "giving up");
            return FLC_ERR_DATASET;
        }
        if (v == REFUSED)
            return FLC_ERR_AUTH;
        if (v == HS_REFUSED && ++c->hs_refusals >= AUTH_TRIES) {
            fl_log(&c->log, FL_LOG_ERROR, "%s: %d handshakes in a row refused or failed: giving up",
                   c->endpoint, c->hs_refusals);
            return FLC_ERR_AUTH;
        }
        if (c->backoff_reset) {
            backoff = c->cfg.reconnect_min_ms;
            c->backoff_reset = 0;
        }
        c->stats.reconnects++;
        /* Half the backoff, and up to as much again at random ("equal jitter"): a fleet that
         * lost its server at one instant (a restart says Bye "restart" to all) would otherwise
         * come back in one wave at each doubling, each a burst of connections the server's
         * listen queue must hold. */
        const int wait =
            backoff / 2 + (int)fl_rng_below(&c->jitter, (uint32_t)(backoff - backoff / 2 + 1));
        fl_log(&c->log, FL_LOG_INFO, "reconnecting in %d ms", wait);
        sleep_ms_interruptible(c, wait);
        /* (doubled without overflow: reconnect_max_ms may be up to INT_MAX) */
        backoff = backoff > c->cfg.reconnect_max_ms / 2 ? c->cfg.reconnect_max_ms : backoff * 2;
    }
}

flc_status flc_client_run(flc_client *c)
{
    if (!c)
        return FLC_ERR_INVALID_ARG;
    /* One run at a time (flc.h): a second one, from another thread or from the plug-in trainer
     * or the log callback of the first, shared its socket and core with it, and both hung for
     * ever, flc_client_stop included. */
    int idle = 0;
    if (!atomic_compare_exchange_strong(&c->running, &idle, 1)) {
        fl_log(&c->log, FL_LOG_ERROR, "flc_client_run: this client is running already (an "
               "flc_client_run on another thread, or this call came from its trainer or its log "
               "callback): one flc_client_run at a time");
        return FLC_ERR_STATE;
    }
    const flc_status st = run_sessions(c);
    /* However it returns (done, stop, a refusal, a socket that cannot be made), it returns once a
     * plug-in training still running does (flc.h, flc_client_stop): none is left behind. */
    wait_training(c);
    flc_core_release(c->core); /* between calls the client holds no round's memory either */
    atomic_store(&c->running, 0);
    return st;
}

void flc_client_stop(flc_client *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, 1);
    atomic_store(&c->cancel, 1); /* after stop: a training that starts sees one or the other */
    const int e = errno; /* async-signal-safe: write(2) only, errno kept */
    if (c->wake[1] >= 0 && write(c->wake[1], "", 1) < 0) {
        /* full (an earlier stop's byte is unread): the waits see the flag anyway */
    }
    errno = e;
}

const flc_stats *flc_client_stats(const flc_client *c)
{
    static const flc_stats none; /* const, so no mutable global */
    return c ? &c->stats : &none;
}

void flc_client_free(flc_client *c)
{
    if (!c)
        return;
    /* Freed under a run in progress (another thread's, or from its trainer or log callback),
     * the run went on in freed memory, or the trainer's own join deadlocked: left allocated
     * instead (a leak, said), which the run can still use. */
    if (atomic_load(&c->running)) {
        fl_log(&c->log, FL_LOG_ERROR, "flc_client_free: flc_client_run of this client is in "
               "progress: call flc_client_stop and free the client once flc_client_run has "
               "returned (it is not freed)");
        return;
    }
    wait_training(c);
    drop_pending(c);
    free(c->pending);
    close_socket(c);
    flc_core_free(c->core);
    if (c->own_ctx && c->ctx)
        zmq_ctx_term(c->ctx);
    free(c->endpoint);
    free(c->id);
    free(c->server_pub);
    free(c->pub);
    free(c->sec);
    if (c->wake[0] >= 0)
        close(c->wake[0]);
    if (c->wake[1] >= 0)
        close(c->wake[1]);
    for (int i = 0; i < 2; i++)
        if (c->done[i] >= 0)
            close(c->done[i]);
    free(c);
}
