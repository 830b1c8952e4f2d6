/* fls_server.c: the fl_server reactor. One thread, one zmq_poll over
 *   - the ROUTER socket the clients' DEALERs connect to (one frame = one Envelope),
 *   - the ZAP REP socket (inproc://zeromq.zap.01) that answers the CURVE handshakes of this
 *     context from the allow-list: served from this same loop, so no locks,
 *   - a self-pipe that fls_server_stop / fls_server_reload poke (async-signal-safe),
 * and deadline timers (heartbeats, liveness, the round engine's tick) computed from the monotonic
 * clock: a sweep every TIMER_PERIOD, brought forward to the round engine's own next deadline
 * (fls_core_tick_due: a round's deadline, or at once when a round can start). The round engine (fls_core) never sees a socket: decoded, validated messages go in,
 * events come out (Task, Evaluate, RoundEnd, Done) and are served here.
 *
 * Session protocol: fl_server/PROTOCOL.md. Per-client state is small and bounded: the routing id,
 * the Hello'd id, timers, the downlink cursor and credit (at most `credit` chunks in flight, one
 * before its first Ack of the task, taken back when not Acked within the liveness timeout: the
 * core encodes each chunk only when a credit frees up, so no per-client model copy exists) and a
 * chunk bitset of the update being received (to know when an update is complete or dead). Peers
 * that never said Hello get no state at all. Every id that said Hello keeps a binding (its key,
 * its CURVE public key) after its session ends, at most server.max_clients of them (and
 * server.ids_per_key per public key): a new id beyond that takes the place of the one idle
 * longest, if idle for server.id_idle_s, else it is refused. With checkpoint.path the table is
 * also kept on disk (CHECKPOINT.ids, ids_load): a restart forgets no binding.
 *
 * Uplink flow control (PROTOCOL.md step 3): at most `upload_slots` clients send update chunks at
 * once; an accepted Update header beyond that waits in a FIFO (its client just heartbeats). A
 * client holding a slot gets `credit` Acks(of CHUNK, round) at once and one more per chunk the
 * core accepts (a refused chunk returns no credit and does not keep the slot alive), so at most
 * `credit` of its chunks are ever in flight. The core streams each slot's chunks straight into
 * one aggregator staging buffer (agg.max_open = upload_slots), so the server's memory is bounded
 * whatever the number of clients. A chunk sent without a credit ends the update (Ack(of UPDATE,
 * FL_ERR_STATE)), and so does a second Update header while the update is open. While an update
 * waits for a slot, a holder too slow to finish before the round's deadline loses its slot and
 * its update (ul_sweep, ul_too_slow: Ack(of UPDATE, FL_ERR_TIMEOUT)).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <net/if.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_endpoint.h"
#include "fl_fs.h"
#include "fl_log.h"
#include "fl_mem.h"
#include "fl_sha256.h"
#include "fl_siphash.h"
#include "fl_time.h"
#include "flm_data.h"
#include "flm_model.h"
#include "flp_wire.h"
#include "fls_core.h"
#include "fls_internal.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_DOMAIN "fedrop"
#define RID_MAX 255
#define BATCH_IN 512       /* messages handled per poll before timers run again */
#define TIMER_PERIOD 0.05  /* seconds between timer sweeps (heartbeats, liveness, tick); sooner
                            * when the round engine's tick is due (sweep_due) */
#define CKPT_FD_RETRY_S 600 /* a checkpoint with no descriptor free is tried again this long */
#define LOG_BURST 10       /* malformed-input log lines per second before suppression */
#define CHURN_LINES 60     /* join and leave lines a minute at info level (churn_level) */
#define CHURN_WINDOW 60.0  /* seconds: that minute */
#define TWIN_WINDOW_S 60.0 /* an id's evictions by another connection are counted per window */
#define TWIN_WARN_AT 3     /* and said once a window from this many: a restart makes only one */
#define ID_CHURN_WINDOW_S 60.0 /* an id's session starts are counted per window */
#define ID_CHURN_SAID 5     /* and said one by one (joined, left) up to this many a window */
#define FORGET_SAY_S 60.0  /* forgotten idle ids are said at info level at most once a minute */
#define NIL UINT32_MAX     /* no binding (links between bindings are slot indexes) */

enum { UL_NONE = 0, UL_RECEIVING = 1, UL_ANSWERED = 2 };
enum { SLOT_NONE = 0, SLOT_QUEUED = 1, SLOT_ACTIVE = 2 };
enum { RUN_ON = 0, RUN_DONE = 1, RUN_STOPPED = 2, RUN_FAILED = 3 };

typedef struct sess {
    uint8_t rid[RID_MAX];
    uint8_t rid_len;
    int dead;                   /* ended: skipped, removed in bulk (sess_compact) */
    char *id;                   /* from the Hello */
    uint32_t key;               /* fls_client_key(id), or an alternate (id_key) */
    int key_alt;                /* key is an alternate: its Tasks carry it (Task.client_key) */
    uint8_t pub[32];            /* CURVE: the public key that said its Hello */
    int has_pub;
    double last_rx, last_tx;
    int fd;                     /* its connection's descriptor (ZMQ_SRCFD of its last message; -1) */
    uint64_t hb_seq;
    /* The step (step_n) in which its Task found its connection gone (0: none): it is dropped as
     * "connection gone" once a later step has read the ROUTER empty (gone_drop), unless a Bye
     * that was queued there ahead of the connection's end is read first. */
    uint64_t gone_step;
    /* downlink: the Task's chunks, tensor-major */
    int dl_active;
    int dl_given_up; /* its task of dl_round was given up (dl_give_up): said and told once */
    uint64_t dl_round;
    uint64_t dl_seq;            /* its task's number (the dlr entry that lists it) */
    uint32_t dl_nt, dl_t, dl_i, dl_inflight;
    uint32_t dl_nchunks[FLM_MAX_TENSORS];
    int dl_acked;               /* it Acked a chunk of this task: its full credit, else 1 chunk */
    double dl_last;             /* its last Ack, or when a chunk left with none in flight */
    /* uplink: the update being received */
    int ul_state;
    uint64_t ul_round;
    flp_msg_tracker *ul_trk;
    int ul_err_sent;            /* an Error for a refused chunk of ul_round was sent */
    int ul_slot;                /* SLOT_NONE, SLOT_QUEUED (waits for a slot), SLOT_ACTIVE */
    uint64_t ul_seq;            /* queue order */
    uint32_t ul_credit;         /* chunks the client may still send (granted, not yet received) */
    double ul_last;             /* when it got its slot or last sent a chunk */
    double ul_since;            /* when it got its slot */
    int ul_long_said;           /* the slot held long while others wait was logged (this update) */
    uint32_t ul_total, ul_got;  /* its update's chunks, and those the core took */
    /* Its upload rate is judged over [ul_w0_t, now]: marks (time, chunks taken) moved on once a
     * rate window old (ul_rate), so the rate is that of the last one or two windows, not of one
     * chunk nor of the whole upload. */
    double ul_w0_t, ul_w1_t;
    uint32_t ul_w0_n, ul_w1_n;
    uint64_t err_round;         /* round of the last "chunk without update" Error (+1; 0 none) */
    /* Its Hello's Ack waits for the sync of its id's record (ids_flush): nothing is sent to it
     * before that sync (send_to) */
    int ack_wait;
    char *ack_detail;           /* the Ack's detail (NULL: none) */
    uint64_t ack_need;          /* the Ack's memory_needed */
} sess;

/* An update waiting for an upload slot: its client's key and queue number (an entry whose
 * session is no longer queued under that number is stale, skipped). */
typedef struct ul_wait {
    uint32_t key;
    uint64_t seq;
} ul_wait;

/* A client id the server has seen, and under CURVE the public key that owns it. Bindings live in
 * slots whose index never changes while bound (a freed slot goes on a free list), so that the
 * lists below can link them by index:
 *   - the idle list: the bindings without a live session, in the order their last session ended
 *     (oldest first): its head is the one to forget when server.max_clients is reached;
 *   - per allow-listed key (bind_owner), that key's idle ids in the same order, so that a key
 *     at server.ids_per_key gives up its own least recently seen id.
 * An id with a live session is in no idle list and is never forgotten. */
typedef struct bind_link {
    uint32_t prev, next;        /* slots, NIL at the ends */
} bind_link;

typedef struct bind_list {
    uint32_t head, tail;        /* oldest, newest; NIL when empty */
} bind_list;

typedef struct binding {
    uint32_t key;
    char *id;                   /* NULL: a free slot */
    uint8_t pub[32];
    int has_pub;
    int live;                   /* a session has this id */
    double idle_since;          /* when its last session ended (or it was bound without one) */
    bind_link all;              /* the idle list; all.next also chains the free slots */
    uint32_t owner;             /* its key's row of s->owners, or NIL */
    bind_link mine;             /* its key's idle list */
    /* a Hello on another connection ended this id's session: counted per window of
     * TWIN_WINDOW_S, warned about at most once per window (two devices with one id) */
    double twin_t0, twin_said;
    uint32_t twin_n;
    int twin_warned;
    /* sessions this id started in the window that began at churn_t0 (churn_note) */
    double churn_t0;
    uint32_t churn_n;
    uint64_t mem_said;          /* the memory its last Hello announced (warned about on a change) */
    int unsynced;               /* its record is appended, not yet synced (ids_flush) */
} binding;

/* The ids one allow-listed key holds: bound ids, live or idle (forgotten ones no longer count),
 * and its idle ones, oldest first (linked by binding.mine). */
typedef struct bind_owner {
    uint32_t n_ids;
    bind_list idle;
} bind_owner;

/* A connection's file descriptor, as the ROUTER's socket monitor tells of it. */
typedef struct conn_fd {
    double used;                /* when accepted, or when it last carried a session's message */
    int open;                   /* accepted and not yet disconnected (or closed by us) */
    int shut;                   /* we shut it down, and no connection was accepted on the
                                 * number since: its messages are dropped */
} conn_fd;

struct fls_server {
    fls_options opt;
    fls_config ccfg;
    fls_host host;
    fl_logger log;
    void *ctx;
    int own_ctx;
    void *router, *zap;
    void *mon;                  /* PAIR end of the ROUTER's socket monitor (connections) */
    uint32_t conns;             /* connections open: accepted, not yet disconnected */
    uint32_t conn_cap;          /* about how many the file descriptor limit allows (0: no limit) */
    uint64_t fd_limit;          /* RLIMIT_NOFILE's soft limit at start (0: unlimited) */
    int near_said;              /* the near-the-limit warning is in force (re-armed below 80%) */
    int near_logged;            /* ... and was logged (else held back: near_t) */
    double near_t;              /* when the near-the-limit warning was last logged (0: never) */
    unsigned near_unsaid;       /* crossings of 90% held back since */
    conn_fd *fdt;               /* by file descriptor, the connections the monitor told of */
    size_t fdt_cap;
    int fdt_nomem;              /* a descriptor could not be tracked (said once) */
    double idle_scan;           /* when connections were last checked for sessions */
    double lock_checked;        /* when CHECKPOINT.lock and .ids were last looked for at their
                                 * paths (lock_check, ids_check) */
    double idle_s;              /* server.idle_connection_s, at least 2 x liveness (0: never) */
    double idle_said;           /* when closed idle connections were last said */
    uint64_t idle_unsaid;       /* closed since */
    int multi_io;               /* the context has several I/O threads: counts are approximate */
    int no_srcfd;               /* libzmq does not say a message's connection: nothing is shut */
    double over_said;           /* when connections closed over the limit were last said */
    uint64_t over_unsaid;       /* closed since */
    uint32_t over_open;         /* the connections open at the last of them */
    int pipe_rd, pipe_wr;
    atomic_int reload_req;      /* fls_server_reload asked (lock-free: signal-safe, any thread) */
    int stop_said;              /* a stop waiting for the evaluation was said */
    double backlog_since;       /* messages have waited unread since (0: the last read took all) */
    atomic_uint stop_calls;     /* fls_server_stop calls (lock-free, so signal-safe): the
                                 * first asks for a stop, a second does not wait for the
                                 * evaluation */
    int run;
    double linger_until;        /* RUN_DONE: up until then, telling clients Bye("done") (0: not) */
    uint64_t linger_told;       /* Hellos answered Bye("done") meanwhile */
    fl_status fail_st;          /* why the run failed (RUN_FAILED): what every later step says */
    char ep[FLS_MAX_ENDPOINTS][FLS_ENDPOINT_MAX];
    size_t n_ep;
    struct stat ep_sock[FLS_MAX_ENDPOINTS]; /* an ipc:// endpoint's socket file as bound (st_ino
                                             * 0: none, or not known): removed at the end */
    int curve;
    int check_only;             /* fls_server_check: every startup check, no socket, no file made */
    char sec_z85[FLS_Z85_LEN + 1]; /* from load_key until the socket has it, then wiped */
    char pub_z85[FLS_Z85_LEN + 1];
    fls_allow allow;
    flp_limits lim;
    fls_core *core;
    flm_dataset *eval_ds;
    flm_model *eval_model;
    flm_samples eval_view;
    /* The evaluation runs on a thread of its own (eval_start), so that the reactor goes on
     * meanwhile: heartbeats, Hellos, liveness, Acks. A big model on a full test set takes longer
     * than a client's liveness timeout (the cnn on Fashion-MNIST's 10,000 test images: 5 s with
     * OpenBLAS's SkylakeX kernel, 13 s with its Prescott one), and every client reconnected. The
     * thread reads fls_core_params, which the core leaves alone while an evaluation is pending,
     * the model and the view; it writes eval_st/loss/acc and then eval_done. */
    pthread_t eval_thread;
    int eval_live;              /* eval_thread started and not yet joined */
    uint64_t eval_round;
    double eval_t0;
    atomic_int eval_done, eval_cancel;
    fl_status eval_st;
    double eval_loss, eval_acc;
    int metrics_fd;             /* run.metrics, open for appending; -1: none */
    int metrics_torn;           /* run.metrics ends in part of a line that could not be cut off:
                                 * the next line starts with a '\n' */
    double mem_have, mem_total; /* fl_mem_available before the model-size buffers (warn_memory) */
    fls_ckpt snap;
    int have_snap;
    int snap_written;           /* the snapshot is what the file holds (written by us) */
    fl_status snap_err;         /* the core refused the latest state (fls_core_checkpoint logged
                                 * why): the snapshot on hand is older, and is not written */
    int resumed;                /* the run continues a checkpoint (else: a fresh run) */
    fl_status ckpt_failed;      /* a periodic checkpoint could not be written: the run stops */
    double ckpt_retry_since;    /* a periodic checkpoint found no descriptor free since (0: none) */
    double ckpt_retry_next;     /* when it is tried again */
    double ckpt_retry_wait;     /* the wait after that try (1 s, doubling up to 30 s) */
    int ckpt_nofd;              /* the run gave the checkpoint up for want of a descriptor */
    int ckpt_errno;             /* errno of the last checkpoint write that failed with FL_ERR_IO */
    int send_errno;             /* errno of the last failed send_to */
    uint64_t step_n;            /* fls_server_step calls that polled (gone_step) */
    int gone_any;               /* a session has gone_step set (gone_drop) */
    int metrics_bad;            /* run.metrics failed or vanished: said once until it works */
    uint64_t metrics_lost;      /* lines lost since run.metrics last took one */
    uint64_t metrics_lost_from; /* the round of the first of them */
    uint64_t metrics_lost_all;  /* lines lost over the run (said at the end) */
    uint64_t ckpt_round;        /* next round of the last checkpoint written (0: none yet) */
    uint8_t *chunk_buf;
    size_t chunk_cap;
    sess *ss;
    size_t n_ss, cap_ss;
    uint8_t rid_key[16];        /* rid_hash's key, random per process */
    /* due[i]: no timer of ss[i] fires before then (timers' liveness and heartbeat checks); never
     * later than the truth, for the times it is taken from only grow (last_rx, last_tx, dl_last)
     * except where sess_wake lowers it. The 20 Hz sweep reads this array, not every session. */
    double *due;
    size_t cap_due;
    /* The sessions downloading a Task and those receiving an update, as (key, that task's or
     * update's number) in the order they started; an entry whose session is gone or moved on is
     * stale, skipped and dropped (dl_list_compact, ul_sweep). dl_pump_all and ul_sweep walk
     * these, not every session. */
    ul_wait *dlr, *ulr;
    size_t dlr_n, dlr_cap, ulr_n, ulr_cap;
    uint64_t dl_seq;
    int32_t *hidx;              /* open addressing over ss by routing id; -1 empty */
    size_t hcap;
    int32_t *kidx;              /* open addressing over ss by client key (sessions with an id;
                                 * an entry whose session has another key now is skipped); -1 */
    size_t kcap, kused;
    size_t n_dead;              /* sessions marked dead, still in ss (sess_compact) */
    uint64_t compactions;       /* sess_compact's passes over the table (tests) */
    uint32_t n_up_active;       /* sessions holding an upload slot */
    uint32_t dl_total;          /* weight chunks in flight over all clients (<= dl_budget) */
    size_t dl_cursor;           /* round-robin start in dlr for handing out freed budget */
    uint64_t up_seq;            /* next queue number */
    ul_wait *ulq;               /* the upload queue, in queue order: [ulq_head, ulq_n) */
    size_t ulq_head, ulq_n, ulq_cap;
    binding *bind;              /* slots, bound or free (see binding) */
    size_t n_bind;              /* ids bound (server.max_clients bounds it) */
    size_t n_slots, cap_bind;
    uint32_t bind_free;         /* free slots, chained by all.next */
    uint32_t *bidx;             /* open addressing over bind by key: slot + 1, 0 empty */
    size_t bmask;               /* bidx has bmask + 1 slots, at most half full */
    uint64_t bseed;             /* random per process: where a key lands in bidx (bind_home) */
    bind_list idle;             /* the idle list (binding.all) */
    bind_owner *owners;         /* CURVE: one per row of allow (fls_allow keeps them sorted) */
    uint64_t n_forgotten;       /* idle ids forgotten to admit new ones */
    /* The journal of the bindings, CHECKPOINT.ids (ids_load; NULL without checkpoint.path):
     * a record appended per change, a new id's fdatasync'd before its Hello is answered. */
    char *ids_path;
    int ids_fd;                 /* open for appending; -1: none yet */
    int lock_fd;                /* CHECKPOINT.lock, flock'd for the server's life; -1: none */
    char *lock_path;            /* its path while lock_fd is held (made once: lock_check) */
    size_t ids_records;         /* records in the file: rewritten at 2 x the table (+64) */
    off_t ids_size;             /* the bytes this server wrote to it (ids_check: another
                                 * process's append or truncation shows as another size); -1:
                                 * not known (the file system said another size at a rewrite) */
    struct timespec ids_mtime;  /* its st_mtim after this server's last write (ids_check: an
                                 * edit in place that keeps the size shows as another time) */
    int ids_mtime_ok;           /* ids_mtime is known (0 with ids_size -1, or an fstat failed) */
    int ids_mute;               /* changes are not appended (loading; a batch rewrites after) */
    int ids_bad;                /* an append failed (the file may end in part of a record, or
                                 * miss one): the next change rewrites the file whole */
    int ids_errno;              /* the errno of ids_rewrite's last failure (0: none or not I/O) */
    uint32_t *ids_pend;         /* slots of the bindings appended since the last sync (group
                                 * commit: one fdatasync for a batch of new ids, ids_flush) */
    size_t n_pend, cap_pend;
    uint32_t n_ack_wait;        /* sessions whose Hello's Ack waits for that sync */
    uint32_t *ack_keys;         /* their keys, in the order their Hellos came (an entry whose
                                 * session no longer waits is skipped): no walk of every session */
    size_t n_ack_keys, cap_ack_keys;
    int ids_flushing;
    double forgot_said;         /* when that was last said at info level */
    double next_timers;
    double rl_start;
    /* [0]: warnings, [1]: news (a bound id's leftovers after a restart): a burst each, so that
     * news neither uses up the warnings' nor is summed up as a warning */
    unsigned rl_count[2], rl_suppressed[2];
    double churn_t0;            /* when the minute of join and leave lines began (0: none open) */
    unsigned churn_said;        /* in it: per-client join and leave lines logged at info level */
    unsigned churn_joined, churn_left, churn_quiet; /* joins, leaves, lines left at debug level */
    fls_server_stats st;
};

static void run_fail(fls_server *s, fl_status st);

/* ---- logging -------------------------------------------------------------------------------- */

static void log_bridge(void *user, fl_log_level level, const char *msg)
{
    const fls_server *s = user;
    if (s->host.log)
        s->host.log(s->host.log_user, (fls_log_level)level, msg);
}

/* Malformed input is logged at most LOG_BURST times a second; the rest is counted and summed up. */
static void log_bad_at(fls_server *s, fl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Says how many refusals went unlogged since the window began, and opens a new window. Also when
 * the run ends or is stopped (fls_server_step): the last burst's count was said only when a later
 * one came. */
static void log_bad_flush(fls_server *s, double now)
{
    for (int c = 0; c < 2; c++) {
        if (s->rl_suppressed[c])
            fl_log(&s->log, c ? FL_LOG_INFO : FL_LOG_WARN,
                   "%u more refused messages not logged", s->rl_suppressed[c]);
        s->rl_count[c] = 0;
        s->rl_suppressed[c] = 0;
    }
    s->rl_start = now;
}

static void log_bad_at(fls_server *s, fl_log_level level, const char *fmt, ...)
{
    const double now = fl_time_mono_s();
    if (now - s->rl_start >= 1.0)
        log_bad_flush(s, now);
    const int c = level < FL_LOG_WARN;
    if (s->rl_count[c] >= LOG_BURST) {
        s->rl_suppressed[c]++;
        return;
    }
    s->rl_count[c]++;
    va_list ap;
    va_start(ap, fmt);
    fl_logv(&s->log, level, fmt, ap);
    va_end(ap);
}

/* Refused or malformed input, said as a warning at most LOG_BURST times a second. */
#define log_bad(s, ...) log_bad_at((s), FL_LOG_WARN, __VA_ARGS__)

const char *fls_strerror(fls_status st)
{
    return fl_strerror((fl_status)st);
}

/* A printable name for a peer: its client id, or its routing id in hex. */
static const char *peer_name(const sess *ss, const uint8_t *rid, size_t rid_len, char *buf,
                             size_t cap)
{
    if (ss && ss->id)
        return ss->id;
    size_t o = (size_t)snprintf(buf, cap, "peer ");
    for (size_t i = 0; i < rid_len && o + 3 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%02x", rid[i]);
    return buf;
}

/* ---- sessions ------------------------------------------------------------------------------- */

/* A peer may choose its routing id (ZMQ_ROUTING_ID on its socket): with an unkeyed hash it could
 * open connections whose ids all fall in one bucket and make each lookup walk them. SipHash under
 * a key drawn at start (rid_key) leaves nothing to aim at. It also spreads libzmq's own ids
 * (0 and a 32-bit counter) better than the FNV-1a used until then: 8000 of them took 4793 of
 * 16384 buckets with it, 1.82 probes a lookup (random placement: about 1.3). */
static uint64_t rid_hash(const fls_server *s, const uint8_t *rid, size_t len)
{
    return fl_siphash24(s->rid_key, rid, len);
}

/* An empty open-addressing table of session indexes (-1: empty) with room for want entries at
 * most half full; its size (a power of two) in *cap. NULL when out of memory. */
static int32_t *slots_new(size_t want, size_t *cap)
{
    size_t c = 64;
    while (c < 2 * want + 2)
        c *= 2;
    int32_t *t = malloc(c * sizeof *t);
    if (!t)
        return NULL;
    for (size_t j = 0; j < c; j++)
        t[j] = -1;
    *cap = c;
    return t;
}

static fl_status hash_rebuild(fls_server *s, size_t want)
{
    size_t cap;
    int32_t *h = slots_new(want, &cap);
    if (!h)
        return FL_ERR_NOMEM;
    for (size_t i = 0; i < s->n_ss; i++) {
        size_t j = rid_hash(s, s->ss[i].rid, s->ss[i].rid_len) & (cap - 1);
        while (h[j] >= 0)
            j = (j + 1) & (cap - 1);
        h[j] = (int32_t)i;
    }
    free(s->hidx);
    s->hidx = h;
    s->hcap = cap;
    return FL_OK;
}

static sess *sess_by_rid(const fls_server *s, const uint8_t *rid, size_t len)
{
    if (!s->hcap)
        return NULL;
    for (size_t j = rid_hash(s, rid, len) & (s->hcap - 1); s->hidx[j] >= 0; j = (j + 1) & (s->hcap - 1)) {
        sess *x = &s->ss[s->hidx[j]];
        if (x->rid_len == len && memcmp(x->rid, rid, len) == 0 && !x->dead)
            return x;
    }
    return NULL;
}

/* Where key's chain starts in kidx: mixed with the process's random seed, as bind_home. */
static size_t key_home(const fls_server *s, uint32_t key)
{
    const uint64_t x = ((uint64_t)key ^ s->bseed) * 0x9E3779B97F4A7C15ull;
    return (size_t)((x ^ (x >> 29)) >> 32) & (s->kcap - 1);
}

static void kidx_insert(fls_server *s, size_t i)
{
    size_t j = key_home(s, s->ss[i].key);
    while (s->kidx[j] >= 0)
        j = (j + 1) & (s->kcap - 1);
    s->kidx[j] = (int32_t)i;
    s->kused++;
}

/* The key index anew, for the sessions with an id, with room for want of them. */
static fl_status kidx_rebuild(fls_server *s, size_t want)
{
    size_t cap;
    int32_t *k = slots_new(want, &cap);
    if (!k)
        return FL_ERR_NOMEM;
    free(s->kidx);
    s->kidx = k;
    s->kcap = cap;
    s->kused = 0;
    for (size_t i = 0; i < s->n_ss; i++)
        if (!s->ss[i].dead && s->ss[i].id)
            kidx_insert(s, i);
    return FL_OK;
}

/* Session x has its id and key now: indexed by that key. */
static fl_status kidx_put(fls_server *s, const sess *x)
{
    if (2 * (s->kused + 1) + 2 > s->kcap) /* rebuilt with x in it, and without stale entries */
        return kidx_rebuild(s, s->n_ss > s->kused + 1 ? s->n_ss : s->kused + 1);
    kidx_insert(s, (size_t)(x - s->ss));
    return FL_OK;
}

/* The live session of the client with this key (one at most: a Hello ends the other's). */
static sess *sess_by_key(const fls_server *s, uint32_t key)
{
    if (!s->kcap)
        return NULL;
    for (size_t j = key_home(s, key); s->kidx[j] >= 0; j = (j + 1) & (s->kcap - 1)) {
        sess *x = &s->ss[s->kidx[j]];
        if (x->key == key && x->id && !x->dead)
            return x;
    }
    return NULL;
}

/* x's timers are looked at in the next sweep: a time they are due at may have come nearer. */
static void sess_wake(fls_server *s, const sess *x)
{
    s->due[x - s->ss] = 0;
}

static sess *sess_add(fls_server *s, const uint8_t *rid, size_t len)
{
    if (fl_grow(&s->ss, &s->cap_ss, s->n_ss + 1, sizeof *s->ss, 64) != FL_OK ||
        fl_grow(&s->due, &s->cap_due, s->n_ss + 1, sizeof *s->due, 64) != FL_OK)
        return NULL;
    s->due[s->n_ss] = 0; /* its first sweep looks at it */
    sess *x = &s->ss[s->n_ss++];
    memset(x, 0, sizeof *x);
    memcpy(x->rid, rid, len);
    x->rid_len = (uint8_t)len;
    x->fd = -1;
    if (2 * s->n_ss + 2 > s->hcap) {
        if (hash_rebuild(s, s->cap_ss) != FL_OK) {
            s->n_ss--;
            return NULL;
        }
    } else {
        size_t j = rid_hash(s, rid, len) & (s->hcap - 1);
        while (s->hidx[j] >= 0)
            j = (j + 1) & (s->hcap - 1);
        s->hidx[j] = (int32_t)(s->n_ss - 1);
    }
    return x;
}

static void ul_reset(sess *x)
{
    flp_msg_tracker_free(x->ul_trk);
    x->ul_trk = NULL;
    x->ul_state = UL_NONE;
    x->ul_err_sent = 0;
}

/* Gives back x's upload slot (or its place in the queue). The caller admits the next one. */
static void ul_release(fls_server *s, sess *x)
{
    if (x->ul_slot == SLOT_ACTIVE && s->n_up_active > 0)
        s->n_up_active--;
    x->ul_slot = SLOT_NONE;
    x->ul_credit = 0;
}

static void ul_end(fls_server *s, sess *x)
{
    ul_release(s, x);
    ul_reset(x);
}

/* x's chunks in flight no longer count (its session or task ended). */
static void dl_forget(fls_server *s, sess *x)
{
    s->dl_total -= x->dl_inflight <= s->dl_total ? x->dl_inflight : s->dl_total;
    x->dl_inflight = 0;
}

static binding *bind_find(const fls_server *s, uint32_t key);
static void bind_detach(fls_server *s, binding *b, double now);
static int id_churn_quiet(const binding *b, double now);

/* x's Hello is no longer waiting for its Ack (answered, or the session is over). */
static void ack_clear(fls_server *s, sess *x)
{
    if (x->ack_wait) {
        x->ack_wait = 0;
        s->n_ack_wait--;
    }
    free(x->ack_detail);
    x->ack_detail = NULL;
}

/* The connected clients a round waits for to start, and the setting that says so. */
static uint32_t round_start_at(const fls_server *s, const char **setting)
{
    *setting = s->opt.core.min_clients ? "round.min_clients" : "round.clients";
    return s->opt.core.min_clients ? s->opt.core.min_clients : s->opt.core.clients_per_round;
}

/* Join and leave lines under churn: the first CHURN_LINES of a minute are logged at info level,
 * the rest at debug level, and the minute is summed up at info level ("clients in the last 60 s:
 * 812 joined, 790 left; 752 of these lines at debug level only ...") when any were. Hundreds of
 * devices connecting and leaving a second (a fleet's restart, a flapping network) logged a line
 * each, which buried everything else; a few clients are still said one by one. A leave for a
 * reason that is not ordinary (churn_ordinary) is always said at info level, outside the count:
 * it is the line an operator looks for when one device misbehaves. */
static void churn_flush(fls_server *s, double now, int force)
{
    if (s->churn_t0 == 0 || (!force && now - s->churn_t0 < CHURN_WINDOW))
        return;
    if (s->churn_quiet) {
        /* what a round waits for, as the join and leave lines say it */
        const uint32_t conn = fls_core_connected(s->core);
        const char *setting;
        const uint32_t start_at = round_start_at(s, &setting);
        char wait[96] = "";
        if (conn < start_at && !fls_core_round_open(s->core) && !fls_core_done(s->core))
            snprintf(wait, sizeof wait, ": a round starts at %u (%s)", start_at, setting);
        fl_log(&s->log, FL_LOG_INFO, "clients in the last %.0f s: %u joined, %u left; %u of these "
               "join and leave lines at debug level only (past %d a minute, or of a client past %d "
               "sessions a minute; run.log_level debug logs each); %u connected%s", now - s->churn_t0, s->churn_joined, s->churn_left,
               s->churn_quiet, CHURN_LINES, ID_CHURN_SAID, conn, wait);
    }
    s->churn_t0 = 0;
    s->churn_said = s->churn_joined = s->churn_left = s->churn_quiet = 0;
}

/* The level of the line of a join (joined 1) or a leave, counted for churn_flush; id_quiet: its
 * id's own lines are held back (id_churn_note: one client saying Hello again and again), at debug
 * level whatever else; always: a leave said at info level whatever the count. */
static fl_log_level churn_level(fls_server *s, int joined, int always, int id_quiet)
{
    const double now = fl_time_mono_s();
    churn_flush(s, now, 0);
    if (s->churn_t0 == 0)
        s->churn_t0 = now;
    if (joined)
        s->churn_joined++;
    else
        s->churn_left++;
    if (id_quiet) {
        s->churn_quiet++;
        return FL_LOG_DEBUG;
    }
    if (always)
        return FL_LOG_INFO;
    if (s->churn_said < CHURN_LINES) {
        s->churn_said++;
        return FL_LOG_INFO;
    }
    s->churn_quiet++;
    return FL_LOG_DEBUG;
}

/* A leave that needs no line of its own under churn: the client said it was done or stopping
 * (libflclient's Bye reasons, or none), or it came back on another connection. Any other reason
 * (silent past the liveness timeout, a send that failed, out of memory, a key no longer allowed,
 * a reason of the client's own such as "the local samples do not fit the model") is said. */
static int churn_ordinary(const char *why)
{
    return !strcmp(why, "done") || !strcmp(why, "client stopping") || !strcmp(why, "bye") ||
           !strcmp(why, "reconnected");
}

/* Tells the core the client is gone and marks the session for removal. */
static void sess_drop(fls_server *s, sess *x, const char *why)
{
    if (x->dead)
        return;
    ack_clear(s, x); /* never answered: its id's record may not be on disk */
    if (x->id) {
        binding *b = bind_find(s, x->key);
        const int id_quiet = id_churn_quiet(b, fl_time_mono_s());
        if (b)
            bind_detach(s, b, fl_time_mono_s());
        const fl_status st = fls_core_client_leave(s->core, x->key, fl_time_mono_s());
        if (st != FL_OK && st != FL_ERR_UNKNOWN_CLIENT)
            fl_log(&s->log, FL_LOG_ERROR, "client %s: leave: %s", x->id, fl_strerror(st));
        /* Below what a round needs to start: the server now waits, silent, for clients. */
        const uint32_t conn = fls_core_connected(s->core);
        const char *setting;
        const uint32_t start_at = round_start_at(s, &setting);
        const fl_log_level lv = churn_level(s, 0, !churn_ordinary(why), id_quiet);
        if (conn < start_at && !fls_core_done(s->core) && strcmp(why, "reconnected") != 0)
            fl_log(&s->log, lv, "client %s left (%s); %u connected: a round starts at %u (%s)",
                   x->id, why, conn, start_at, setting);
        else
            fl_log(&s->log, lv, "client %s left (%s); %u connected", x->id, why, conn);
    }
    ul_release(s, x);
    dl_forget(s, x);
    x->dead = 1;
    s->n_dead++;
}

/* Dead sessions stay in the table, skipped by every lookup and walk, until they are a quarter of
 * it (and at least COMPACT_MIN); then one pass removes them all and indexes the rest again. Until
 * 2026-12-02 each step that ended a session made that pass: a client saying Bye and Hello in turn
 * (or two connections taking one id in turn), a pair a step, cost the reactor a walk of every
 * session, the move of those behind it and a SipHash of every routing id per pair (6000 sessions:
 * 270 us of reactor CPU a pair against 105 for a Hello on its session; linear in the sessions).
 * Now a pass comes after n_ss / 4 ends at least: O(1) a session ended. (fls_server_free frees
 * the dead ones with the others.) */
#define COMPACT_MIN 64
static void sess_compact(fls_server *s)
{
    if (s->n_dead < COMPACT_MIN || 4 * s->n_dead < s->n_ss)
        return;
    s->compactions++;
    size_t m = 0;
    for (size_t i = 0; i < s->n_ss; i++) {
        if (s->ss[i].dead) {
            free(s->ss[i].id);
            free(s->ss[i].ack_detail);
            ul_end(s, &s->ss[i]);
        } else {
            s->due[m] = s->due[i];
            s->ss[m++] = s->ss[i];
        }
    }
    s->n_ss = m;
    s->n_dead = 0;
    fl_status st = hash_rebuild(s, s->cap_ss);
    if (st == FL_OK)
        st = kidx_rebuild(s, s->n_ss);
    if (st != FL_OK)
        run_fail(s, st); /* cannot index sessions any more: stop cleanly */
}

/* ---- client id bindings (id -> its public key; idle ids forgotten when the table is full) ---- */

static size_t bind_home(const fls_server *s, uint32_t key)
{
    /* Keys are SHA-256 bits, but a client picks its id: with the bucket a fixed function of the
     * key, 2^17 hashes an id find ids that all land in one bucket of a 100000-id table, and every
     * lookup walks them. The process's random seed (fl_entropy_u64) takes that away; the
     * multiply spreads the mixed key into the bits taken. */
    const uint64_t x = ((uint64_t)key ^ s->bseed) * 0x9E3779B97F4A7C15ull;
    return (size_t)((x ^ (x >> 29)) >> 32) & s->bmask;
}

static binding *bind_find(const fls_server *s, uint32_t key)
{
    if (!s->bidx)
        return NULL;
    for (size_t j = bind_home(s, key); s->bidx[j]; j = (j + 1) & s->bmask)
        if (s->bind[s->bidx[j] - 1].key == key)
            return &s->bind[s->bidx[j] - 1];
    return NULL;
}

static uint32_t bind_slot(const fls_server *s, const binding *b)
{
    return (uint32_t)(b - s->bind);
}

static void bidx_put(fls_server *s, uint32_t slot)
{
    size_t j = bind_home(s, s->bind[slot].key);
    while (s->bidx[j])
        j = (j + 1) & s->bmask;
    s->bidx[j] = slot + 1;
}

/* A new index of at least 2 * want + 2 entries over the bound slots. */
static fl_status bidx_rebuild(fls_server *s, size_t want)
{
    if (fl_index_new(&s->bidx, &s->bmask, 2 * want + 2) != FL_OK)
        return FL_ERR_NOMEM;
    for (uint32_t i = 0; i < s->n_slots; i++)
        if (s->bind[i].id)
            bidx_put(s, i);
    return FL_OK;
}

/* Takes slot out of the index by linear probing's backward shift: no tombstones pile up however
 * many ids come and go. */
static void bidx_del(fls_server *s, uint32_t slot)
{
    const size_t m = s->bmask;
    size_t i = bind_home(s, s->bind[slot].key);
    while (s->bidx[i] != slot + 1)
        i = (i + 1) & m;
    for (size_t j = i;;) {
        s->bidx[i] = 0;
        for (;;) {
            j = (j + 1) & m;
            if (!s->bidx[j])
                return;
            /* the entry at j may fill the hole at i unless its home lies in (i, j], cyclically */
            const size_t h = bind_home(s, s->bind[s->bidx[j] - 1].key);
            if (((j - h) & m) >= ((j - i) & m))
                break;
        }
        s->bidx[i] = s->bidx[j];
        i = j;
    }
}

static int key32_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* pub's row of the allow-list, which is its row of s->owners; NIL when not there (or no table). */
static uint32_t owner_row(const fls_server *s, const uint8_t pub[32])
{
    if (!s->owners || !s->allow.n)
        return NIL;
    const uint8_t *k = bsearch(pub, s->allow.keys, s->allow.n, 32, key32_cmp);
    return k ? (uint32_t)((size_t)(k - (const uint8_t *)s->allow.keys) / 32) : NIL;
}

/* The two idle lists thread the same slots through different links: `at` picks binding.all or
 * binding.mine (offsetof). */
static bind_link *link_of(fls_server *s, uint32_t i, size_t at)
{
    return (bind_link *)((char *)&s->bind[i] + at);
}

static void list_append(fls_server *s, bind_list *l, size_t at, uint32_t i)
{
    bind_link *k = link_of(s, i, at);
    k->prev = l->tail;
    k->next = NIL;
    if (l->tail != NIL)
        link_of(s, l->tail, at)->next = i;
    else
        l->head = i;
    l->tail = i;
}

static void list_unlink(fls_server *s, bind_list *l, size_t at, uint32_t i)
{
    bind_link *k = link_of(s, i, at);
    if (k->prev != NIL)
        link_of(s, k->prev, at)->next = k->next;
    else
        l->head = k->next;
    if (k->next != NIL)
        link_of(s, k->next, at)->prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = NIL;
}

/* b (slot i) joins the end of its key's idle list, if it has an allow-listed key. */
static void key_idle_append(fls_server *s, binding *b, uint32_t i)
{
    b->mine = (bind_link){NIL, NIL};
    if (b->owner != NIL)
        list_append(s, &s->owners[b->owner].idle, offsetof(binding, mine), i);
}

/* b joins the end of the idle lists (the global one and its key's): idle from now. */
static void idle_append(fls_server *s, binding *b, double now)
{
    const uint32_t i = bind_slot(s, b);
    b->idle_since = now;
    list_append(s, &s->idle, offsetof(binding, all), i);
    key_idle_append(s, b, i);
}

static void idle_unlink(fls_server *s, binding *b)
{
    const uint32_t i = bind_slot(s, b);
    list_unlink(s, &s->idle, offsetof(binding, all), i);
    if (b->owner != NIL)
        list_unlink(s, &s->owners[b->owner].idle, offsetof(binding, mine), i);
}

/* fls_config.client_name: the core's log lines name a client by its id. */
static const char *client_name(void *user, uint32_t key)
{
    const binding *b = bind_find(user, key);
    return b ? b->id : NULL;
}

/* A session has b's id now: b is not forgotten while it lasts. */
static void bind_attach(fls_server *s, binding *b)
{
    if (!b->live) {
        idle_unlink(s, b);
        b->live = 1;
    }
}

/* The session of b's id ended: b is idle from now on. */
static void bind_detach(fls_server *s, binding *b, double now)
{
    if (b->live) {
        b->live = 0;
        idle_append(s, b, now);
    }
}

/* ---- the journal of the bindings (CHECKPOINT.ids; README.md "Client ids across restarts") ----
 *
 * Why a journal and not the checkpoint: a binding must be on disk before its Hello is answered
 * (else a crash forgets it and another key may take the id), and bindings change rarely, while a
 * checkpoint is the model, written every few rounds. Each new binding is one short record
 * appended, and fdatasync'd before its Hello is answered: the Hellos of a batch of messages share
 * one sync (group commit, ids_flush), so that a flood of new devices does not cost the reactor a
 * disk flush each. A forgotten binding is appended without a sync (losing it in a crash only
 * keeps an id that was let go, and the next synced record carries it anyway). The file is
 * rewritten whole (temporary file, fsync, rename, fsync of the directory) at start and when it
 * holds twice the table's records, so it stays small and a torn last record never stays. */

/* Key number j of b's id that is b's key (fl_client_key_of): 0 for the derived key. */
static fl_status bind_keyno(const binding *b, unsigned *j)
{
    for (unsigned k = 0; k < FLS_IDS_KEYS; k++) {
        uint32_t kk;
        const fl_status st = fl_client_key_of(b->id, k, &kk);
        if (st != FL_OK)
            return st;
        if (kk == b->key && (k == 0 || kk != 0)) {
            *j = k;
            return FL_OK;
        }
    }
    return FL_ERR_NOT_FOUND;
}

/* b's "b" record into line; its length, 0 on failure. */
static size_t bind_record(const binding *b, char line[FLS_IDS_LINE_MAX])
{
    unsigned j = 0;
    if (bind_keyno(b, &j) != FL_OK)
        return 0;
    return fls_ids_format_bind(line, FLS_IDS_LINE_MAX, b->id, b->key, j,
                               b->has_pub ? b->pub : NULL);
}

/* Writes the table whole to the journal, atomically, and keeps the new file open for appending.
 * The idle ids first, least recently seen first, then those with a session: the order a restart
 * restores. FL_OK, or FL_ERR_IO / FL_ERR_NOMEM / a digest's failure (logged). A failure before
 * the rename leaves the old file (and ids_bad) as they were; one after it (the directory's fsync)
 * leaves no file open and ids_bad set, so the next change rewrites again. */
/* Every binding appended since the last sync is on disk now. */
static void ids_pend_clear(fls_server *s)
{
    for (size_t k = 0; k < s->n_pend; k++)
        if (s->ids_pend[k] < s->n_slots)
            s->bind[s->ids_pend[k]].unsynced = 0;
    s->n_pend = 0;
}

/* The file's modification time after this server's own write (sb: its fstat then; NULL: not
 * known, the check goes by the size alone). */
static void ids_mtime_note(fls_server *s, const struct stat *sb)
{
    s->ids_mtime_ok = sb != NULL;
    if (sb)
        s->ids_mtime = sb->st_mtim;
}

/* 1 when held (an fstat of the open file) is what this server left: its size is the bytes it
 * wrote, and its modification time the one after its last write. An edit in place that keeps the
 * size (bytes overwritten: an editor saving in place, dd conv=notrunc) shows only in the time. A
 * file system whose timestamps are coarse (1 s, 2 s on FAT) gives an edit within the tick of the
 * server's last write that write's time, and a tool that sets the time back (touch -r) hides it:
 * neither is seen (README). */
static int ids_as_left(const fls_server *s, const struct stat *held)
{
    if (s->ids_size >= 0 && held->st_size != s->ids_size)
        return 0;
    return !s->ids_mtime_ok || (held->st_mtim.tv_sec == s->ids_mtime.tv_sec &&
                                held->st_mtim.tv_nsec == s->ids_mtime.tv_nsec);
}

/* The warning of a file changed under the server (held: its fstat; there: it is still at its
 * path), before the rewrite from the table. */
static void ids_edited_say(fls_server *s, int there, const struct stat *held)
{
    const int sized = s->ids_size >= 0 && held->st_size != s->ids_size;
    fl_log(&s->log, FL_LOG_WARN, "client ids %s was %s while this server ran: written again from "
           "the server's table. Leave it in place and unedited while the server runs; to let "
           "every id register afresh, stop the server, then remove it", s->ids_path,
           !there ? "removed or replaced"
           : !sized ? "edited in place (its size kept, its modification time changed)"
           : held->st_size < s->ids_size ? "truncated" : "written to by another process");
}

static fl_status ids_rewrite(fls_server *s)
{
    if (!s->ids_path || s->check_only)
        return FL_OK;
    char *buf = malloc(1 << 16);
    fl_atomic a;
    int e = buf ? fl_atomic_open(&a, s->ids_path, 0644) : ENOMEM;
    const char *what = buf ? "" : "out of memory";
    fl_status st = FL_ERR_IO;
    if (e)
        goto out;
    size_t used = (size_t)snprintf(buf, 1 << 16, "%s\n", FLS_IDS_MAGIC);
    size_t n = 0;
    off_t size = (off_t)used;
    /* idle ones in their order, then the live ones */
    for (int pass = 0; pass < 2; pass++) {
        uint32_t i = pass == 0 ? s->idle.head : 0;
        for (;;) {
            if (pass == 0 ? i == NIL : i >= s->n_slots)
                break;
            const binding *b = &s->bind[i];
            const uint32_t next = pass == 0 ? b->all.next : i + 1;
            if (pass == 0 || (b->id && b->live)) {
                if ((1 << 16) - used < FLS_IDS_LINE_MAX) {
                    if ((e = fl_atomic_write(&a, buf, used)) != 0)
                        goto out;
                    used = 0;
                }
                const size_t m = bind_record(b, buf + used);
                if (!m) {
                    e = ENOMEM;
                    what = "cannot make a record (out of memory)";
                    goto out;
                }
                used += m;
                size += (off_t)m;
                n++;
            }
            i = next;
        }
    }
    if ((e = fl_atomic_write(&a, buf, used)) == 0)
        e = fl_atomic_commit(&a, s->ids_path, 1);
    if (a.renamed) {
        /* From here on the path names the new file: the one open for appending is unlinked, and
         * a record appended to it would be acknowledged and then lost at the next start. */
        if (s->ids_fd >= 0)
            close(s->ids_fd);
        s->ids_fd = -1;
        s->ids_bad = 1; /* until the new file is named durably and open: the next change rewrites */
    }
    if (e)
        goto out;
    if (fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) | O_APPEND) != 0) {
        e = errno;
        what = "cannot append to it";
        goto out;
    }
    s->ids_fd = a.fd;
    a.fd = -1;
    s->ids_records = n;
    /* A file system whose st_size is not what was written (none known) would make every check
     * an edit, a rewrite and a warning each second: there the size is not looked at. */
    struct stat sb;
    s->ids_size = fstat(s->ids_fd, &sb) == 0 && sb.st_size == size ? size : -1;
    ids_mtime_note(s, s->ids_size >= 0 ? &sb : NULL);
    s->ids_bad = 0;
    ids_pend_clear(s); /* the table, whole and synced */
    st = FL_OK;
out:
    if (e == ENOMEM)
        st = FL_ERR_NOMEM;
    s->ids_errno = st == FL_ERR_IO ? e : 0;
    if (st != FL_OK)
        fl_log(&s->log, FL_LOG_ERROR, "client ids %s not rewritten: %s%s%s", s->ids_path,
               what[0] ? what : a.what, st == FL_ERR_IO ? ": " : "",
               st == FL_ERR_IO ? strerror(e) : "");
    if (buf)
        fl_atomic_end(&a);
    free(buf);
    return st;
}

/* Appends one record (line[0..n)), fdatasync'd when sync; a file that took an append badly, or a
 * record that could not be made (n 0), is rewritten whole instead (the table already holds the
 * change). FL_OK when the change is on disk (for sync) or written. */
static fl_status ids_append(fls_server *s, const char *line, size_t n, int sync)
{
    if (!s->ids_path || s->ids_mute || s->check_only)
        return FL_OK;
    if (s->ids_bad || s->ids_fd < 0 || n == 0)
        return ids_rewrite(s);
    /* An edit since the server's last write (ids_check's once a second may not have come yet):
     * the file is written whole from the table, which holds the change. Else the time after this
     * append would stand for the edit's, which no check would see again. */
    struct stat sb;
    if (fstat(s->ids_fd, &sb) == 0 && !ids_as_left(s, &sb)) {
        ids_edited_say(s, 1, &sb);
        s->ids_bad = 1;
        return ids_rewrite(s);
    }
    if (fl_write_all(s->ids_fd, line, n) != 0 || (sync && fdatasync(s->ids_fd) != 0)) {
        fl_log(&s->log, FL_LOG_ERROR, "client ids %s: cannot append a record: %s; rewriting it",
               s->ids_path, strerror(errno));
        s->ids_bad = 1;
        return ids_rewrite(s);
    }
    s->ids_records++;
    if (s->ids_size >= 0)
        s->ids_size += (off_t)n;
    /* the time of this write, for ids_check; when another process wrote meanwhile (another
     * size), the check sees the size */
    ids_mtime_note(s, s->ids_size >= 0 && fstat(s->ids_fd, &sb) == 0 &&
                      sb.st_size == s->ids_size ? &sb : NULL);
    if (s->ids_records > 2 * s->n_bind + 64)
        (void)ids_rewrite(s); /* the record is in: a failure here loses nothing (logged) */
    return FL_OK;
}

/* Appends new binding b's record; its sync waits for the end of the batch (ids_flush), unless
 * there is no room to note that it waits (then it is synced at once). */
static fl_status ids_note_bind(fls_server *s, binding *b)
{
    if (!s->ids_path || s->ids_mute || s->check_only)
        return FL_OK;
    char line[FLS_IDS_LINE_MAX];
    const int group = fl_grow(&s->ids_pend, &s->cap_pend, s->n_pend + 1, sizeof *s->ids_pend,
                              64) == FL_OK;
    const fl_status st = ids_append(s, line, bind_record(b, line), !group);
    if (st == FL_OK && group) {
        b->unsynced = 1;
        s->ids_pend[s->n_pend++] = bind_slot(s, b);
    }
    return st;
}

/* After the binding of id (key) left the table: the rewrite an append may set off writes the
 * table, which must no longer hold it (else the file binds it again, and a later binding of the
 * same id or key makes the file one that no start reads). */
static void ids_note_forget(fls_server *s, const char *id, uint32_t key)
{
    if (!s->ids_path || s->ids_mute)
        return;
    char line[FLS_IDS_LINE_MAX];
    (void)ids_append(s, line, fls_ids_format_forget(line, sizeof line, id, key), 0);
}

/* Binds id (its key) to a free slot, idle until bind_attach; pub (NULL in plain text) owns it. */
static binding *bind_add(fls_server *s, uint32_t key, const char *id, const uint8_t *pub,
                         double now)
{
    if ((!s->bidx || 2 * (s->n_bind + 1) + 2 > s->bmask + 1) &&
        bidx_rebuild(s, 2 * (s->n_bind + 1)) != FL_OK)
        return NULL;
    const int fresh = s->bind_free == NIL;
    if (fresh && (s->n_slots >= NIL - 1 ||
                  fl_grow(&s->bind, &s->cap_bind, s->n_slots + 1, sizeof *s->bind, 64) != FL_OK))
        return NULL;
    char *dup = strdup(id);
    if (!dup)
        return NULL;
    const uint32_t i = fresh ? (uint32_t)s->n_slots++ : s->bind_free;
    binding *b = &s->bind[i];
    if (!fresh)
        s->bind_free = b->all.next;
    memset(b, 0, sizeof *b);
    b->key = key;
    b->id = dup;
    b->owner = NIL;
    if (pub) {
        memcpy(b->pub, pub, 32);
        b->has_pub = 1;
        if ((b->owner = owner_row(s, pub)) != NIL)
            s->owners[b->owner].n_ids++;
    }
    b->live = 1; /* so that bind_detach files it as idle */
    bind_detach(s, b, now);
    bidx_put(s, i);
    s->n_bind++;
    return b;
}

/* Unbinds b (its slot goes back on the free list): the id and its key are free for anyone. */
static void bind_forget(fls_server *s, binding *b)
{
    /* The round engine forgets it too (its record, its afd-multi state): an id that comes back
     * is a new client, and the engine stays within the ids the table holds. */
    const fl_status st = fls_core_client_forget(s->core, b->key);
    if (st != FL_OK)
        fl_log(&s->log, FL_LOG_DEBUG, "client id %s: the round engine keeps its record (%s)",
               b->id, fl_strerror(st));
    const uint32_t i = bind_slot(s, b);
    bidx_del(s, i);
    if (!b->live)
        idle_unlink(s, b);
    if (b->owner != NIL)
        s->owners[b->owner].n_ids--;
    char *id = b->id;
    const uint32_t key = b->key;
    memset(b, 0, sizeof *b);
    b->all.next = s->bind_free;
    s->bind_free = i;
    s->n_bind--;
    ids_note_forget(s, id, key);
    free(id);
}

/* After the allow-list changed (its rows moved): every key's ids counted again, and its idle ones
 * listed in the order they became idle (the global list's). Out of memory, server.ids_per_key is
 * not enforced until the next reload (said). */
static void owners_rebuild(fls_server *s)
{
    free(s->owners);
    s->owners = NULL;
    bind_owner *o = s->allow.n ? malloc(s->allow.n * sizeof *o) : NULL;
    if (o) {
        for (size_t r = 0; r < s->allow.n; r++)
            o[r] = (bind_owner){0, {NIL, NIL}};
        s->owners = o;
    } else if (s->allow.n) {
        fl_log(&s->log, FL_LOG_ERROR, "out of memory: server.ids_per_key is not enforced until "
               "the next reload");
    }
    for (uint32_t i = 0; i < s->n_slots; i++) {
        binding *b = &s->bind[i];
        b->owner = NIL;
        b->mine = (bind_link){NIL, NIL};
        if (b->id && b->has_pub && (b->owner = owner_row(s, b->pub)) != NIL)
            s->owners[b->owner].n_ids++;
    }
    /* the per-key links again, in the global list's order (which stays as it is) */
    for (uint32_t i = s->idle.head; i != NIL; i = s->bind[i].all.next)
        key_idle_append(s, &s->bind[i], i);
}

/* The idle binding at head when it may be forgotten: idle for server.id_idle_s at least (0: never
 * forgotten); NULL otherwise. Lists are oldest first, so head is the least recently seen. */
static binding *forgettable(fls_server *s, uint32_t head, double now)
{
    if (!s->opt.id_idle_s || head == NIL)
        return NULL;
    binding *b = &s->bind[head];
    return now - b->idle_since >= (double)s->opt.id_idle_s ? b : NULL;
}

/* Forgets idle b to admit a new id (why: which limit was reached); said at info level at most
 * once a minute, the rest at debug. */
static void forget_idle(fls_server *s, binding *b, double now, const char *why)
{
    s->n_forgotten++;
    const int say = s->n_forgotten == 1 || now - s->forgot_said >= FORGET_SAY_S;
    fl_log(&s->log, say ? FL_LOG_INFO : FL_LOG_DEBUG,
           "client id %s forgotten to admit a new id (%s): no session for %.0f s "
           "(server.id_idle_s %u); %llu forgotten so far", b->id, why, now - b->idle_since,
           s->opt.id_idle_s, (unsigned long long)s->n_forgotten);
    if (say)
        s->forgot_said = now;
    bind_forget(s, b);
}

/* A Hello on a new connection has ended the live session of b's id. Once, that is a device that
 * restarted before its old session timed out. Over and over, it is two processes with one id (the
 * same id in plain text, or one CURVE key copied to two devices): each Hello evicts the other,
 * they take turns forever and rounds fail. The protocol's rule stands (a second Hello starts the
 * client afresh); the operator is told, naming the id, at most once a window. */
static void twin_note(fls_server *s, binding *b)
{
    const double now = fl_time_mono_s();
    if (b->twin_n == 0 || now - b->twin_t0 >= TWIN_WINDOW_S) {
        b->twin_t0 = now;
        b->twin_n = 0;
    }
    b->twin_n++;
    if (b->twin_n >= TWIN_WARN_AT && (!b->twin_warned || now - b->twin_said >= TWIN_WINDOW_S)) {
        fl_log(&s->log, FL_LOG_WARN, "client %s: two connections take turns with this id (%u times "
               "in the last minute): two devices with one id (give each its own id%s), or one that "
               "keeps restarting (its log says why)?",
               b->id, b->twin_n, b->has_pub ? " and key" : "");
        b->twin_warned = 1;
        b->twin_said = now;
    }
}

/* A session of b's id starts. Returns 1 while its starts in this window (ID_CHURN_WINDOW_S) are
 * few enough to be said one by one (ID_CHURN_SAID), 0 after: its joins and leaves are then said at
 * debug level, and once, as a warning, why. A client that says Hello again and again (on one
 * connection, or with a Bye between) made an info line of each ("joined", "left"): 200 Hellos, 200
 * lines, and a journal that rate-limits the service dropped the other clients' lines with them. */
static int id_churn_note(fls_server *s, binding *b, double now)
{
    if (b->churn_n == 0 || now - b->churn_t0 >= ID_CHURN_WINDOW_S) {
        b->churn_t0 = now;
        b->churn_n = 0;
    }
    if (++b->churn_n == ID_CHURN_SAID + 1)
        fl_log(&s->log, FL_LOG_WARN, "client %s: %u sessions within %.0f s (a client that says "
               "Hello again and again, or keeps reconnecting): its joins and leaves are said at "
               "debug level for the rest of the minute", b->id, b->churn_n, now - b->churn_t0);
    return b->churn_n <= ID_CHURN_SAID;
}

/* Whether the join and leave lines of b's id (NULL: unbound) are held back at debug level by
 * churn_note. */
static int id_churn_quiet(const binding *b, double now)
{
    return b && b->churn_n > ID_CHURN_SAID && now - b->churn_t0 < ID_CHURN_WINDOW_S;
}

/* ---- sending -------------------------------------------------------------------------------- */

static int ids_flush(fls_server *s);

/* Encodes m and sends it to rid without blocking. 0 on success; -1 when it was dropped (queue
 * full, peer gone, or an encoding failure, which is a bug and logged). To a session whose Hello
 * waits for the sync of its id (ids_flush), the sync comes first, and with it the Ack: nothing
 * tells a client that its id is bound before it is on disk; when the sync failed, the session
 * is over and m is dropped. */
static int send_to(fls_server *s, const uint8_t *rid, size_t rid_len, const flp_msg *m)
{
    if (s->n_ack_wait && !s->ids_flushing) {
        const sess *x = sess_by_rid(s, rid, rid_len);
        if (x && x->ack_wait) {
            ids_flush(s);
            if (x->dead) {
                s->send_errno = EHOSTUNREACH;
                return -1;
            }
        }
    }
    size_t bound = 0;
    char err[FLP_ERRBUF];
    fl_status st = flp_encode_bound(&bound, m);
    if (st != FL_OK) {
        fl_log(&s->log, FL_LOG_ERROR, "cannot encode %s: %s", flp_type_name(m->type),
               fl_strerror(st));
        /* for send_why, whose caller drops the session saying it: not a stale errno's text
         * ("left (Success)") */
        s->send_errno = st == FL_ERR_NOMEM ? ENOMEM : EPROTO;
        return -1;
    }
    zmq_msg_t z;
    if (zmq_msg_init_size(&z, bound) != 0) {
        s->send_errno = ENOMEM;
        return -1;
    }
    size_t w = 0;
    st = flp_encode(zmq_msg_data(&z), bound, &w, m, &s->lim, err, sizeof err);
    if (st != FL_OK) {
        zmq_msg_close(&z);
        fl_log(&s->log, FL_LOG_ERROR, "cannot encode %s: %s (%s)", flp_type_name(m->type),
               fl_strerror(st), err);
        s->send_errno = st == FL_ERR_NOMEM ? ENOMEM : EPROTO;
        return -1;
    }
    if (zmq_send(s->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) != (int)rid_len ||
        zmq_msg_send(&z, s->router, ZMQ_DONTWAIT) < 0) {
        s->send_errno = errno;
        zmq_msg_close(&z);
        s->st.send_dropped++;
        return -1;
    }
    s->st.msgs_out++;
    return 0;
}

/* Why the last send_to failed, for the log. */
static const char *send_why(const fls_server *s)
{
    return s->send_errno == EAGAIN         ? "send queue full"
           : s->send_errno == EHOSTUNREACH ? "connection gone"
                                           : zmq_strerror(s->send_errno);
}

static int send_sess(fls_server *s, sess *x, const flp_msg *m)
{
    const int r = send_to(s, x->rid, x->rid_len, m);
    if (r == 0)
        x->last_tx = fl_time_mono_s();
    return r;
}

static void send_error(fls_server *s, const uint8_t *rid, size_t rid_len, uint64_t round,
                       fl_status code, const char *text)
{
    flp_msg m = flp_msg_header(FLP_ERROR, round, NULL);
    m.error.code = code ? (uint32_t)code : (uint32_t)FL_ERR_INTERNAL;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", text && *text ? text : fl_strerror(code));
    flp_str_fix(msg); /* cut at 255 bytes, maybe mid-character: the wire wants UTF-8 */
    m.error.message = msg;
    send_to(s, rid, rid_len, &m);
}

static void send_ack_need(fls_server *s, sess *x, flp_type of, uint64_t round, fl_status status,
                          const char *detail, uint64_t memory_needed)
{
    flp_msg m = flp_msg_header(FLP_ACK, round, NULL);
    m.ack.of_type = of;
    m.ack.of_round = round;
    m.ack.status = (int32_t)status;
    m.ack.detail = detail ? detail : "";
    m.ack.memory_needed = memory_needed;
    send_sess(s, x, &m);
}

static void send_ack(fls_server *s, sess *x, flp_type of, uint64_t round, fl_status status,
                     const char *detail)
{
    send_ack_need(s, x, of, round, status, detail, 0);
}

/* Group commit of the client-id journal: the records appended since the last sync (the new ids
 * of a batch of messages) made durable by one fdatasync, then the Hellos that waited for it
 * answered. Run at the end of each batch (read_router), and before anything else is sent to a
 * session that waits (send_to). When the sync fails, the file is rewritten whole (and synced);
 * when that fails too, each id of the batch is refused as one was before: Error FL_ERR_IO, its
 * session over, the id unbound, and the file rewritten without them (a crash then does not bind
 * an id that was refused; when this rewrite fails as well, the next change tries again). Returns
 * 1 when it ended a session (the round engine has events to drain). */
static int ids_flush(fls_server *s)
{
    if ((!s->n_pend && !s->n_ack_wait) || s->ids_flushing)
        return 0;
    s->ids_flushing = 1;
    int ok = 1, ended = 0;
    if (s->n_pend && (s->ids_bad || s->ids_fd < 0 || fdatasync(s->ids_fd) != 0)) {
        if (!s->ids_bad && s->ids_fd >= 0)
            fl_log(&s->log, FL_LOG_ERROR, "client ids %s: cannot sync %zu new record%s: %s; "
                   "rewriting it", s->ids_path, s->n_pend, s->n_pend == 1 ? "" : "s",
                   strerror(errno));
        s->ids_bad = 1;
        ok = ids_rewrite(s) == FL_OK; /* the whole table, synced: the new ids with it */
    }
    if (ok) {
        ids_pend_clear(s);
    } else {
        s->ids_mute = 1;
        for (size_t k = 0; k < s->n_pend; k++) {
            const uint32_t i = s->ids_pend[k];
            if (i >= s->n_slots || !s->bind[i].id || !s->bind[i].unsynced)
                continue;
            binding *b = &s->bind[i];
            b->unsynced = 0;
            log_bad(s, "hello from %s refused: its binding could not be recorded in %s", b->id,
                    s->ids_path);
            sess *x = sess_by_key(s, b->key);
            if (x) {
                ack_clear(s, x);
                send_error(s, x->rid, x->rid_len, 0, FL_ERR_IO,
                           "the server could not record the client id; try again");
                sess_drop(s, x, "its id could not be recorded");
                s->st.refused++;
                ended = 1;
            }
            bind_forget(s, b);
        }
        s->ids_mute = 0;
        s->n_pend = 0;
        /* The records may be in the file all the same: rewritten at once without them. */
        s->ids_bad = 1;
        (void)ids_rewrite(s);
    }
    for (size_t i = 0; i < s->n_ack_keys; i++) {
        sess *x = sess_by_key(s, s->ack_keys[i]);
        if (!x || !x->ack_wait)
            continue;
        char *detail = x->ack_detail;
        const uint64_t need = x->ack_need;
        x->ack_detail = NULL;
        ack_clear(s, x);
        send_ack_need(s, x, FLP_HELLO, 0, FL_OK, detail, need);
        free(detail);
    }
    s->n_ack_keys = 0;
    s->ids_flushing = 0;
    return ended;
}

static void send_bye_all(fls_server *s, const char *reason)
{
    flp_msg m = flp_msg_header(FLP_BYE, 0, NULL);
    m.bye.reason = reason;
    for (size_t i = 0; i < s->n_ss; i++)
        if (!s->ss[i].dead && s->ss[i].id)
            send_sess(s, &s->ss[i], &m);
}

/* ---- downlink: Task and credit-paced chunks -------------------------------------------------- */


static void dl_pump(fls_server *s, sess *x);

/* Weight chunks the server keeps in flight over all clients: 2 x credit + 1, so two clients, each
 * at its cap (dl_cap), never hold the whole budget, however they Ack: one chunk at least is always
 * left to the other downloads (a freed one goes round-robin, dl_pump_all). At 2 x credit, two
 * clients that Acked one chunk and then stopped (or Acked just within the liveness timeout, a slow
 * link) could take it all: at credit 1 at once, at a higher credit whenever they could fill up to
 * their cap (while they were the only downloads, say, and then a later round's Tasks found the
 * budget held), and every download with no chunk in flight waited for the liveness timeout, or
 * for as long as the slow ones took to download their whole task. More clients than two can still hold it all between
 * them (k x credit >= the budget) until the liveness timeout takes back their chunks. */
static uint32_t dl_budget(const fls_server *s)
{
    return 2 * s->opt.credit + 1;
}

/* Chunks x may have in flight: `credit` once it Acked one of this task, 1 before. A client that
 * never Acks thus holds one chunk of the shared budget, not a whole credit (two of them held all
 * 2 x credit and starved every other download), until the liveness timeout takes it back. */
static uint32_t dl_cap(const fls_server *s, const sess *x)
{
    return x->dl_acked ? s->opt.credit : 1;
}

/* The downloading session of dlr entry w, or NULL when the entry is stale. */
static sess *dl_listed(const fls_server *s, ul_wait w)
{
    sess *x = sess_by_key(s, w.key);
    return x && x->dl_active && x->dl_seq == w.seq ? x : NULL;
}

/* Hands freed downlink budget to the clients still downloading (dlr), round-robin: the server
 * holds at most dl_budget (2 x credit + 1) encoded weight chunks in ZeroMQ's queues, whatever N. */
static void dl_pump_all(fls_server *s)
{
    const size_t n = s->dlr_n;
    for (size_t k = 0; k < n && s->dl_total < dl_budget(s); k++) {
        const size_t i = (s->dl_cursor + k) % n;
        sess *x = dl_listed(s, s->dlr[i]);
        if (x && x->dl_inflight < dl_cap(s, x)) {
            dl_pump(s, x);
            s->dl_cursor = (i + 1) % n;
        }
    }
}

/* dlr without its stale entries (each timer tick: they are skipped meanwhile). */
static void dl_list_compact(fls_server *s)
{
    size_t m = 0, cursor = 0;
    for (size_t i = 0; i < s->dlr_n; i++) {
        if (i == s->dl_cursor)
            cursor = m;
        if (dl_listed(s, s->dlr[i]))
            s->dlr[m++] = s->dlr[i];
    }
    s->dlr_n = m;
    s->dl_cursor = cursor < m ? cursor : 0;
}

/* x's task of its round is given up by the server (no Ack of its chunks within the liveness
 * timeout, or a chunk that could not be made or sent): the client cannot complete the download,
 * so its update cannot come. The core counts it as failed, as an Error from the client would,
 * so that the round need not wait out its deadline for it. Until 2026-12-02 only the first
 * reason told the core: a task dropped for a full send queue (server.sndhwm) whose chunks in
 * flight were then Acked held its round until the deadline
 * (test_reactor_send_queue_full_task_failed). */
/* The core told that x's update of round cannot come, as an Error from the client would tell it. */
static void core_task_failed(fls_server *s, const sess *x, uint64_t round, fl_status code,
                             const char *why)
{
    flp_msg e = flp_msg_header(FLP_ERROR, round, x->id);
    e.error.code = (uint32_t)code;
    e.error.message = why;
    (void)fls_core_on_message(s->core, x->key, &e, fl_time_mono_s());
}

static void dl_give_up(fls_server *s, sess *x, fl_status code, const char *why)
{
    core_task_failed(s, x, x->dl_round, code, why);
    x->dl_active = 0;
    x->dl_given_up = 1;
}

/* A send to x found its connection gone (EHOSTUNREACH): libzmq has ended the connection's pipe,
 * and what the client sent before it hung up may still be queued on the ROUTER, a Bye among it.
 * x is dropped as "connection gone" only once a later step has read the ROUTER (gone_drop), so
 * that such a Bye ends it with its own reason. */
static void sess_gone(fls_server *s, sess *x)
{
    if (!x->gone_step)
        x->gone_step = s->step_n ? s->step_n : 1;
    s->gone_any = 1;
}

static void dl_pump(fls_server *s, sess *x)
{
    while (x->dl_active && x->dl_inflight < dl_cap(s, x) && s->dl_total < dl_budget(s)) {
        if (x->dl_t >= x->dl_nt) {
            x->dl_active = 0;
            break;
        }
        size_t len = 0;
        flp_msg m = flp_msg_header(FLP_CHUNK, x->dl_round, NULL);
        const fl_status st = fls_core_task_chunk(s->core, x->key, x->dl_t, x->dl_i, s->chunk_buf,
                                                 s->chunk_cap, &len, &m.chunk);
        if (st != FL_OK) {
            if (st != FL_ERR_ROUND_CLOSED && st != FL_ERR_NOT_SELECTED) {
                /* FL_ERR_NUMERIC's text, "non-finite value", is wrong for a finite weight past
                 * the down codec's range (f16 ends at 65504): the codec's own words instead */
                fl_log(&s->log, FL_LOG_ERROR, "client %s: chunk %u/%u: %s", x->id, x->dl_t,
                       x->dl_i, st == FL_ERR_NUMERIC ? fls_core_chunk_error(s->core)
                                                     : fl_strerror(st));
                dl_give_up(s, x, st, "a weight chunk could not be made: task dropped");
            }
            x->dl_active = 0;
            break;
        }
        if (send_sess(s, x, &m) != 0) {
            if (s->send_errno == EHOSTUNREACH && !x->dead) {
                /* the client hung up: its Bye may follow (sess_gone); no task to give up, its
                 * leave tells the core. Until 2026-12-07 a client stopped mid-download was
                 * warned of as "connection gone; task dropped" before its Bye was read
                 * (test_reactor_bye_mid_download_heard). */
                x->dl_active = 0;
                sess_gone(s, x);
                break;
            }
            fl_log(&s->log, FL_LOG_WARN, "client %s: %s; task of round %llu dropped", x->id,
                   send_why(s), (unsigned long long)x->dl_round);
            dl_give_up(s, x, FL_ERR_IO, "a weight chunk could not be sent: task dropped");
            break;
        }
        if (x->dl_inflight == 0)
            x->dl_last = fl_time_mono_s();
        x->dl_inflight++;
        s->dl_total++;
        if (++x->dl_i >= x->dl_nchunks[x->dl_t]) {
            x->dl_i = 0;
            x->dl_t++;
        }
    }
}

static void start_task(fls_server *s, uint32_t key, uint64_t round)
{
    sess *x = sess_by_key(s, key);
    if (!x) {
        const char *id = client_name(s, key);
        fl_log(&s->log, FL_LOG_ERROR, "round %llu: task for client %s%s (key %u) without a "
               "session", (unsigned long long)round, id ? id : "", id ? "" : "?", key);
        fls_core_client_leave(s->core, key, fl_time_mono_s());
        return;
    }
    flp_msg m;
    memset(&m, 0, sizeof m);
    /* its place in the download list first: nothing is left to undo when there is no room */
    fl_status st = fl_grow(&s->dlr, &s->dlr_cap, s->dlr_n + 1, sizeof *s->dlr, 64) != FL_OK
                       ? FL_ERR_NOMEM
                       : fls_core_task(s->core, key, &m);
    if (st == FL_ERR_ROUND_CLOSED || st == FL_ERR_NOT_SELECTED) { /* no task to send now */
        fl_log(&s->log, FL_LOG_DEBUG, "client %s: task of round %llu: %s", x->id,
               (unsigned long long)round, fl_strerror(st));
        return;
    }
    if (st != FL_OK) {
        /* The client never hears of its task, so its update cannot come: the core counts it
         * failed at once, as dl_give_up does, or the round waited out its deadline for it. */
        fl_log(&s->log, FL_LOG_ERROR, "client %s: task of round %llu: %s; counted as failed",
               x->id, (unsigned long long)round, fl_strerror(st));
        core_task_failed(s, x, round, st, "its task could not be made");
        return;
    }
    m.sender = "";
    if (x->key_alt)
        m.task.client_key = key;
    if (m.task.n_tensors > FLM_MAX_TENSORS) { /* the model's own check keeps this away */
        fl_log(&s->log, FL_LOG_ERROR, "client %s: a task of %u tensors, more than the %d a "
               "download tracks", x->id, m.task.n_tensors, FLM_MAX_TENSORS);
        sess_drop(s, x, "task too large to track");
        return;
    }
    if (send_sess(s, x, &m) != 0) {
        /* A client that cannot even take its Task is as good as gone. But on EHOSTUNREACH
         * libzmq has ended the connection's pipe, and what the client sent before it hung up
         * may still be queued on the ROUTER: a client stopped just after its upload (its update
         * closed the round, and this Task is the next round's) has its Bye there. Dropped at
         * once, it was logged as "connection gone" (about 1 stop in 25 with fl_client and
         * fl_server, test_reactor_bye_after_upload_heard); the verdict now waits until the
         * ROUTER has been read (gone_drop). */
        if (s->send_errno == EHOSTUNREACH && !x->dead) {
            sess_gone(s, x);
        } else {
            sess_drop(s, x, send_why(s));
        }
        return;
    }
    x->dl_active = 1;
    x->dl_given_up = 0;
    x->dl_seq = ++s->dl_seq;
    s->dlr[s->dlr_n++] = (ul_wait){x->key, x->dl_seq};
    sess_wake(s, x); /* its downlink liveness */
    x->dl_round = m.round;
    x->dl_nt = m.task.n_tensors;
    for (uint32_t t = 0; t < x->dl_nt; t++)
        x->dl_nchunks[t] = m.task.tensors[t].n_chunks;
    dl_forget(s, x);
    x->dl_t = x->dl_i = 0;
    x->dl_acked = 0;
    x->dl_last = fl_time_mono_s();
    fl_log(&s->log, FL_LOG_DEBUG, "round %llu: task sent to %s", (unsigned long long)round, x->id);
    dl_pump(s, x);
}

/* ---- round events --------------------------------------------------------------------------- */

static fl_status eval_report(fls_server *s, uint64_t round, fl_status st, double loss, double acc)
{
    if (st != FL_OK) {
        fl_log(&s->log, FL_LOG_ERROR, "round %llu: evaluation failed: %s",
               (unsigned long long)round, fl_strerror(st));
        return st;
    }
    if (!(acc >= 0 && acc <= 1))
        acc = 0;
    return fls_core_report_eval(s->core, round, acc, loss, fl_time_mono_s());
}

static void *eval_main(void *arg)
{
    fls_server *s = arg;
    double loss = NAN, acc = 0;
    s->eval_st = flm_model_evaluate_cancel(s->eval_model, fls_core_params(s->core), &s->eval_view,
                                           &s->eval_cancel, &loss, &acc);
    s->eval_loss = loss;
    s->eval_acc = acc;
    atomic_store(&s->eval_done, 1);
    const char c = 'e'; /* wakes the reactor's poll; a full pipe wakes it as well */
    ssize_t r = write(s->pipe_wr, &c, 1);
    (void)r;
    return NULL;
}

/* FLS_EV_EVALUATE: the evaluation starts on its thread; the reactor reports it (eval_poll) when it
 * is done. Without a thread (pthread_create failed), it runs here, as it did before. */
static fl_status eval_start(fls_server *s, uint64_t round)
{
    s->eval_round = round;
    s->eval_t0 = fl_time_mono_s();
    atomic_store(&s->eval_done, 0);
    atomic_store(&s->eval_cancel, 0);
    /* The thread blocks every signal: the host's handlers (fl_server's SIGTERM, SIGHUP) run on
     * its own threads, never on ours. */
    sigset_t all, old;
    sigfillset(&all);
    const int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    const int made = s->pipe_wr >= 0 && pthread_create(&s->eval_thread, NULL, eval_main, s) == 0;
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (made) {
        s->eval_live = 1;
        fl_log(&s->log, FL_LOG_DEBUG, "round %llu: evaluating on %zu samples",
               (unsigned long long)round, s->eval_view.n);
        return FL_OK;
    }
    eval_main(s); /* here instead: its byte on the self-pipe only wakes the reactor once more */
    return eval_report(s, round, s->eval_st, s->eval_loss, s->eval_acc);
}

/* The evaluation's thread joined (cancel: told to stop between two batches first, its result
 * dropped): when it is done, and in fls_server_free. */
static void eval_join(fls_server *s, int cancel)
{
    if (!s->eval_live)
        return;
    if (cancel)
        atomic_store(&s->eval_cancel, 1);
    pthread_join(s->eval_thread, NULL);
    s->eval_live = 0;
}

/* fls_server_stop was called (from a signal handler, another thread, or the host). */
static int stop_asked(fls_server *s)
{
    return atomic_load(&s->stop_calls) > 0;
}

/* An evaluation in flight is told to stop at its next batch, and left to do so: the run is
 * over (a stop, a failure), nothing reads its result, and fls_server_free joins it. */
static void eval_cancel(fls_server *s)
{
    if (s->eval_live)
        atomic_store(&s->eval_cancel, 1);
}

/* The evaluation finished: its result goes to the core (whose ROUND_END and DONE follow through
 * drain_events). FL_OK when none was in flight or it is still running. */
static fl_status eval_poll(fls_server *s)
{
    if (!s->eval_live || !atomic_load(&s->eval_done))
        return FL_OK;
    eval_join(s, 0);
    fl_log(&s->log, FL_LOG_DEBUG, "round %llu: evaluated in %.2f s",
           (unsigned long long)s->eval_round, fl_time_mono_s() - s->eval_t0);
    return eval_report(s, s->eval_round, s->eval_st, s->eval_loss, s->eval_acc);
}

/* The state between rounds into s->snap, over the older one's arrays (fls_core_checkpoint_update:
 * one copy of the model and the optimizer's state at any moment, not the old and the new). */
static void snapshot(fls_server *s)
{
    if (!s->opt.ckpt_path[0])
        return;
    if (s->have_snap && !s->snap_err && fls_core_round(s->core) == s->snap.round &&
        fls_core_model_version(s->core) == s->snap.model_version)
        return; /* the same state between rounds: nothing to copy; keep the written flag */
    const int had = s->have_snap;
    const uint64_t round = s->snap.round, version = s->snap.model_version;
    const fl_status st = fls_core_checkpoint_update(s->core, &s->snap);
    if (st != FL_OK) {
        /* FL_ERR_STATE: a round or its evaluation in flight, no state to take; anything else is
         * a state that cannot be checkpointed, and an older snapshot must not pass for it (it
         * is unchanged: written as the last that can be had, write_snapshot). */
        if (st != FL_ERR_STATE)
            s->snap_err = st;
        return;
    }
    s->snap_err = FL_OK;
    if (had && s->snap.round == round && s->snap.model_version == version)
        return; /* the same state (taken again after a refused one): keep the written flag */
    s->have_snap = 1;
    s->snap_written = 0;
}

/* 1 while a fresh run has finished no round: its state is the initial model, worth nothing,
 * and checkpoint.path may still hold an earlier run's work (started without --resume by
 * mistake): nothing is written over it. */
static int nothing_to_keep(const fls_server *s)
{
    return !s->resumed && s->st.rounds_done == 0;
}

/* log: where fls_ckpt_write's own lines go (NULL on the quiet retries of write_periodic and
 * write_final, which say what happened themselves). */
static fl_status write_snapshot(fls_server *s, const fl_logger *log)
{
    if (!s->opt.ckpt_path[0] || nothing_to_keep(s))
        return FL_OK;
    fl_status st = FL_OK;
    if (s->have_snap && !s->snap_written) {
        /* run.metrics' lines of the rounds in the checkpoint go to disk first: a restart after a
         * power cut runs only the rounds after it again, so a line still in the page cache when
         * the checkpoint got there would be lost for good. A file that cannot be synced (a FIFO,
         * a failing disk) does not hold the checkpoint back: the state matters more. */
        if (s->metrics_fd >= 0)
            (void)fdatasync(s->metrics_fd);
        /* written even when a later state was refused (snap_err): it is older, but valid, and
         * the last that can be had */
        st = fls_ckpt_write(s->opt.ckpt_path, &s->snap, log);
        if (st == FL_OK) {
            s->snap_written = 1;
            s->st.checkpoints++;
            s->ckpt_round = s->snap.round;
        } else if (st == FL_ERR_IO) {
            s->ckpt_errno = errno; /* fls_ckpt_write's; it logged why (unless quiet) */
        }
    }
    return st != FL_OK ? st : s->snap_err;
}

/* One try of write_snapshot for write_periodic and write_final. *no_fd: it failed for want of a
 * file descriptor (EMFILE, ENFILE) with a state that can be kept, the one failure they try
 * again. A quiet try (a retry) passes no logger to fls_ckpt_write and says here any other
 * failure of the file. */
static fl_status try_write(fls_server *s, int quiet, int *no_fd)
{
    const fl_status st = write_snapshot(s, quiet ? NULL : &s->log);
    const int e = errno; /* fls_ckpt_write's, on FL_ERR_IO */
    *no_fd = st == FL_ERR_IO && !s->snap_written && s->snap_err == FL_OK &&
             (e == EMFILE || e == ENFILE);
    if (quiet && st == FL_ERR_IO && !*no_fd)
        fl_log(&s->log, FL_LOG_ERROR, "checkpoint %s: %s", s->opt.ckpt_path, strerror(e));
    return st;
}

/* A periodic checkpoint. One that finds no file descriptor free (EMFILE, ENFILE: a storm of
 * connections can fill the process's table for moments, server.idle_connection_s) is tried again
 * 1 s later, then at doubling waits up to 30 s, for up to CKPT_FD_RETRY_S while the run goes on:
 * stopping would lose the rounds since the last checkpoint for sure (the restart resumes from it),
 * going on loses them only on a crash, and each later try writes the latest state. Any other
 * failure stops the run (fls_server_step). */
static fl_status write_periodic(fls_server *s, double now)
{
    const int retry = s->ckpt_retry_since > 0;
    int no_fd;
    const fl_status st = try_write(s, retry, &no_fd);
    if (st == FL_OK) {
        if (retry)
            fl_log(&s->log, FL_LOG_INFO, "checkpoint %s written, %.0f s after the first try that "
                   "found no file descriptor free", s->opt.ckpt_path, now - s->ckpt_retry_since);
        s->ckpt_retry_since = 0;
        return FL_OK;
    }
    if (!no_fd) /* a state the core refused (snap_err) stops the run at once, as any failure */
        return st;
    if (!retry) {
        s->ckpt_retry_since = now;
        s->ckpt_retry_wait = 1;
        fl_log(&s->log, FL_LOG_WARN, "checkpoint %s: no file descriptor free (%u connections "
               "open); the run goes on and the checkpoint is tried again for up to %d s",
               s->opt.ckpt_path, s->conns, CKPT_FD_RETRY_S);
    } else if (now - s->ckpt_retry_since >= CKPT_FD_RETRY_S) {
        fl_log(&s->log, FL_LOG_ERROR, "checkpoint %s: still no file descriptor free after %.0f s "
               "(%u connections open)", s->opt.ckpt_path, now - s->ckpt_retry_since, s->conns);
        s->ckpt_nofd = 1;
        return st;
    }
    s->ckpt_retry_next = now + s->ckpt_retry_wait;
    s->ckpt_retry_wait = s->ckpt_retry_wait * 2 < 30 ? s->ckpt_retry_wait * 2 : 30;
    return FL_OK;
}

/* The checkpoint at the end of the run or at a stop: with no run left to go on, a write that
 * finds no descriptor free is tried again for a few seconds (the reactor does not read meanwhile)
 * before the run ends with the error. */
static fl_status write_final(fls_server *s)
{
    fl_status st;
    for (int i = 0;; i++) {
        int no_fd;
        st = try_write(s, i > 0, &no_fd);
        if (!no_fd) {
            if (i && st == FL_OK)
                fl_log(&s->log, FL_LOG_INFO, "checkpoint %s written at try %d", s->opt.ckpt_path,
                       i + 1);
            break;
        }
        if (i == 25) {
            fl_log(&s->log, FL_LOG_ERROR, "checkpoint %s: still no file descriptor free after 5 s "
                   "(%u connections open)", s->opt.ckpt_path, s->conns);
            s->ckpt_nofd = 1;
            break;
        }
        if (i == 0)
            fl_log(&s->log, FL_LOG_WARN, "checkpoint %s: no file descriptor free (%u connections "
                   "open); trying again for 5 s", s->opt.ckpt_path, s->conns);
        const struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return st;
}

/* Appends json[0..n) and a '\n' to run.metrics in one write (of the whole line at once, not
 * through stdio, whose buffer kept the unwritten rest of a failed line and glued the next one
 * onto it). A line that goes in only in part (a full disk) is cut back off the file, which then
 * ends with its last complete line: a strict JSON-lines reader refuses a file with one broken
 * line. Where that cut fails (not a regular file, or ftruncate refused) the part stays, said,
 * and the next line starts on a line of its own. 0, or -1 with errno set (the line is lost). */
static int metrics_write(fls_server *s, const char *json, size_t n)
{
    char buf[4098];
    const size_t lead = s->metrics_torn ? 1 : 0;
    if (lead)
        buf[0] = '\n';
    memcpy(buf + lead, json, n);
    buf[lead + n] = '\n';
    const size_t len = lead + n + 1;
    const int fd = s->metrics_fd;
    const off_t at = lseek(fd, 0, SEEK_END); /* where the line starts (O_APPEND writes there) */
    size_t done = 0;
    int e = 0;
    while (done < len) {
        /* a FIFO whose reader left: EPIPE, not a SIGPIPE that ends the host (fls.h) */
        const ssize_t w = fl_write_nosigpipe(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    if (!e) {
        s->metrics_torn = 0;
        return 0;
    }
    if (lead && done == lead)
        s->metrics_torn = 0; /* the '\n' went in: the part before ends there */
    if (done > lead) {
        struct stat sb;
        const int reg = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
        if (reg && at >= 0 && ftruncate(fd, at + (off_t)lead) == 0) {
            s->metrics_torn = 0; /* the lead '\n', if any, stays: it ends the older part */
        } else {
            const int te = reg ? errno : ESPIPE;
            fl_log(&s->log, FL_LOG_ERROR, "run.metrics %s: %zu bytes of a line that failed are "
                   "left in it (cannot cut them off: %s): the next line starts on a new line",
                   s->opt.metrics_path, done - lead, reg && at < 0 ? "no offset" : strerror(te));
            s->metrics_torn = 1;
        }
    }
    errno = e;
    return -1;
}

static void round_end(fls_server *s)
{
    const fls_round_metrics *last = fls_core_last_metrics(s->core);
    if (!last)
        return;
    /* The core's times are monotonic seconds (it reads no clock); the daemon adds the calendar
     * time of the round's end, so that metrics lines can be matched across restarts. */
    fls_round_metrics mt = *last;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        mt.time_unix = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    /* and the run's id: a fresh run's lines, appended to a file that holds another run's, start
     * again at round 0; a resumed run's replayed rounds keep the id */
    mt.run_id = fls_core_run_id(s->core);
    const fls_round_metrics *m = &mt;
    s->st.rounds_done++;
    char json[4096];
    const size_t jl = fls_round_metrics_json(m, json, sizeof json);
    if (jl >= sizeof json)
        fl_log(&s->log, FL_LOG_WARN, "round %llu: metrics JSON truncated",
               (unsigned long long)m->round);

    static const char *why[] = {"?", "quorum", "deadline", "exhausted"};
    char acc[32] = "-", loss[32] = "-";
    if (m->evaluated)
        snprintf(acc, sizeof acc, "%.4f", m->test_accuracy);
    if (!isnan(m->mean_loss))
        snprintf(loss, sizeof loss, "%.4f", m->mean_loss);
    char line[512];
    snprintf(line, sizeof line,
             "round %llu: %u/%u updates (selected %u, late %u, failed %u), loss %s, acc %s, "
             "down %.2f MB, up %.2f MB, %.2f s, closed by %s",
             (unsigned long long)m->round, m->reported, m->quorum, m->selected, m->late, m->failed,
             loss, acc, (double)m->bytes_down / 1e6, (double)m->bytes_up / 1e6, m->duration_s,
             why[(unsigned)m->closed_by < 4 ? (unsigned)m->closed_by : 0]);
    fl_log(&s->log, FL_LOG_INFO, "%s", line);
    if (s->metrics_fd >= 0) {
        /* A full disk or a file gone: said (once until it works again), never silent. */
        const int bad = metrics_write(s, json, jl < sizeof json ? jl : sizeof json - 1);
        const int e = errno;
        struct stat sb;
        const int gone = !bad && fstat(s->metrics_fd, &sb) == 0 && sb.st_nlink == 0;
        if ((bad || gone) && !s->metrics_bad)
            fl_log(&s->log, FL_LOG_ERROR, bad ? "run.metrics %s: %s: round %llu's line is lost"
                                              : "run.metrics %s was deleted or moved (%s): its lines from "
                                                "round %llu on go nowhere; SIGHUP reopens it",
                   s->opt.metrics_path, bad ? strerror(e) : "no link left",
                   (unsigned long long)m->round);
        if (bad || gone) {
            /* the later losses are counted, and said when a line gets through (or at the end) */
            if (!s->metrics_lost)
                s->metrics_lost_from = m->round;
            s->metrics_lost++;
            s->metrics_lost_all++;
        } else if (s->metrics_lost) {
            char which[64];
            if (s->metrics_lost_from + 1 == m->round)
                snprintf(which, sizeof which, "round %llu", (unsigned long long)m->round - 1);
            else
                snprintf(which, sizeof which, "rounds %llu to %llu",
                         (unsigned long long)s->metrics_lost_from, (unsigned long long)m->round - 1);
            fl_log(&s->log, FL_LOG_WARN, "run.metrics %s takes lines again from round %llu: "
                   "%llu lost (%s), %llu in all", s->opt.metrics_path,
                   (unsigned long long)m->round, (unsigned long long)s->metrics_lost, which,
                   (unsigned long long)s->metrics_lost_all);
            s->metrics_lost = 0;
        }
        s->metrics_bad = bad || gone;
    }
    if (s->host.on_round)
        s->host.on_round(s->host.round_user, json, line);
    snapshot(s);
    /* A checkpoint that cannot be written stops the run (fls_server_step): training on while
     * nothing reaches the disk would lose every round since the last one at the next crash. */
    if (s->opt.ckpt_every && s->st.rounds_done % s->opt.ckpt_every == 0 && !s->ckpt_failed)
        s->ckpt_failed = write_periodic(s, fl_time_mono_s());
}

static fl_status drain_events(fls_server *s)
{
    fls_event ev;
    fl_status st = FL_OK;
    while (fls_core_poll(s->core, &ev)) {
        switch (ev.kind) {
        case FLS_EV_TASK:
            start_task(s, ev.client, ev.round);
            break;
        case FLS_EV_EVALUATE:
            if ((st = eval_start(s, ev.round)) != FL_OK)
                return st;
            /* The round is closed: the updates still waiting for an upload slot are answered
             * (ul_sweep, Ack(of UPDATE, FL_ERR_ROUND_CLOSED)) by a sweep now, not at the round's
             * end after its evaluation or at the next 50 ms (until 2026-12-07). */
            s->next_timers = 0;
            break;
        case FLS_EV_ROUND_END:
            round_end(s);
            /* The next round starts (or the run ends: FLS_EV_DONE) at fls_core_tick, which the
             * timer sweep calls: the sweep runs now, not at its next 50 ms. Until 2026-12-07 a
             * round that closed at quorum, or after its evaluation, waited for it, so rounds of a
             * small model followed each other every 50 ms, whatever they took (9 ms). (Since then
             * sweep_due brings the sweep forward whenever a tick would start a round; the whole
             * sweep is still made due here, so that the uploads the round's close ended are
             * answered (ul_sweep) even when no next round can start yet.) */
            s->next_timers = 0;
            break;
        case FLS_EV_DONE:
            if (s->run == RUN_ON)
                s->run = RUN_DONE;
            break;
        }
    }
    return st;
}

/* ---- messages from clients ------------------------------------------------------------------ */

/* The round engine knows a client by a 32-bit key, derived from its id (fl_client_key). Two ids
 * whose keys collide (about 1 - exp(-n^2 / 2^33) for a fleet of n ids) cannot share one: the id
 * that comes second is given one of its alternates (fl_client_key_alt 1 .. KEY_ALTS - 1) instead,
 * and its Tasks name it (Task.client_key). The client needs it for nothing but the independence of
 * its random streams: a codec payload carries its own key, so a client that predates the field,
 * and keeps its derived key, is aggregated just as well. */
#define KEY_ALTS 4

/* id's key: the one its binding (*b) holds, whichever of its keys that is, else the first of its
 * keys no other id holds; *alt: it is not the derived one. FL_ERR_NOT_FOUND when every one of its
 * keys is another id's (*clash: the id holding its derived key); another error when a key could
 * not be derived (OpenSSL out of memory): then nothing is chosen, rather than the key 0. */
static fl_status id_key(const fls_server *s, const char *id, binding **b, uint32_t *key, int *alt,
                        const binding **clash)
{
    int found = 0;
    *b = NULL;
    *clash = NULL;
    for (unsigned j = 0; j < KEY_ALTS; j++) {
        uint32_t k;
        const fl_status st = fl_client_key_of(id, j, &k);
        if (st != FL_OK)
            return st;
        if (j > 0 && k == 0)
            continue; /* Task.client_key 0 means "the derived key" */
        binding *o = bind_find(s, k);
        if (o && strcmp(o->id, id) == 0) {
            *b = o;
            *key = k;
            *alt = j > 0;
            return FL_OK;
        }
        if (!o && !found) {
            found = 1;
            *key = k;
            *alt = j > 0;
        }
        if (o && j == 0)
            *clash = o;
    }
    return found ? FL_OK : FL_ERR_NOT_FOUND;
}

/* A Hello whose id's keys could not be derived, or all of whose keys other ids hold: refused,
 * nothing bound. */
static void key_refused(fls_server *s, const uint8_t *rid, size_t rid_len, const char *id,
                        fl_status st, const binding *clash)
{
    if (st == FL_ERR_NOT_FOUND) {
        log_bad(s, "hello from %s refused: its key and its %d alternates are held by other ids "
                "(the first by client %s)", id, KEY_ALTS - 1, clash ? clash->id : "?");
        send_error(s, rid, rid_len, 0, FL_ERR_AUTH, "client id collides with other ids");
        s->st.auth_refused++;
        return;
    }
    fl_log(&s->log, FL_LOG_ERROR, "hello from %s refused: its key could not be derived: %s", id,
           fl_strerror(st));
    send_error(s, rid, rid_len, 0, st, "the server could not derive the id's key; try again");
    s->st.refused++;
}

static void on_hello(fls_server *s, sess *x, const uint8_t *rid, size_t rid_len, const flp_msg *m,
                     const uint8_t *pub)
{
    const flp_hello *h = &m->hello;
    if (x && x->ack_wait) { /* its last Hello is answered first (or refused, ending x) */
        ids_flush(s);
        if (x->dead)
            x = NULL;
    }
    if (FLP_VERSION < h->min_version || FLP_VERSION > h->max_version) {
        send_error(s, rid, rid_len, 0, FL_ERR_WIRE_VERSION, "this server speaks version 1 only");
        s->st.refused++;
        return;
    }
    uint32_t key = 0;
    int alt = 0;
    binding *b;
    const binding *clash;
    fl_status kst = id_key(s, h->client_id, &b, &key, &alt, &clash);
    if (kst != FL_OK) {
        key_refused(s, rid, rid_len, h->client_id, kst, clash);
        return;
    }
    if (b && pub && b->has_pub && memcmp(b->pub, pub, 32) != 0) {
        log_bad(s, "hello from %s refused: the id is registered with another public key",
                h->client_id);
        send_error(s, rid, rid_len, 0, FL_ERR_AUTH, "client id registered with another key");
        s->st.auth_refused++;
        return;
    }
    const double now = fl_time_mono_s();
    /* A new id: room for it, within its key's share (CURVE) and the table. Both limits forget
     * the id seen least recently, if it has been idle long enough, rather than refuse: bindings
     * that were never released let one peer fill the table once and lock every new client out
     * for the life of the process. The round engine forgets a forgotten id too (bind_forget):
     * one that comes back is a new client. */
    const uint32_t row = b ? NIL : pub ? owner_row(s, pub) : NIL;
    if (row != NIL && s->opt.ids_per_key && s->owners[row].n_ids >= s->opt.ids_per_key) {
        binding *idle = forgettable(s, s->owners[row].idle.head, now);
        if (!idle) {
            char why[96];
            snprintf(why, sizeof why, "this key holds %u id%s (server.ids_per_key)",
                     s->owners[row].n_ids, s->owners[row].n_ids == 1 ? "" : "s");
            if (s->opt.id_idle_s)
                log_bad(s, "hello from %s refused: %s, none idle for server.id_idle_s (%u s)",
                        h->client_id, why, s->opt.id_idle_s);
            else
                log_bad(s, "hello from %s refused: %s (server.id_idle_s 0: never forgotten)",
                        h->client_id, why);
            send_error(s, rid, rid_len, 0, FL_ERR_STATE, why);
            s->st.refused++;
            return;
        }
        forget_idle(s, idle, now, "its key's server.ids_per_key reached");
    }
    if (!b && s->n_bind >= s->opt.max_clients) {
        /* Under CURVE an id stays its key's: forgotten for another key's new id, it could be
         * registered by that key next, and its device would be refused for good (a takeover).
         * There, ids leave the table with their key (an allow-list reload) or give way to their
         * own key's new ones (above); in plain text nobody owns an id anyway. */
        binding *idle = s->curve ? NULL : forgettable(s, s->idle.head, now);
        if (!idle) {
            if (s->curve)
                log_bad(s, "hello from %s refused: server.max_clients (%u) ids bound to "
                        "allow-listed keys; raise it, or take departed devices' keys off the "
                        "allow-list (SIGHUP) to free their ids", h->client_id,
                        s->opt.max_clients);
            else if (s->opt.id_idle_s)
                log_bad(s, "hello from %s refused: server.max_clients (%u) ids bound, none "
                        "idle for server.id_idle_s (%u s)", h->client_id, s->opt.max_clients,
                        s->opt.id_idle_s);
            else
                log_bad(s, "hello from %s refused: server.max_clients (%u) ids bound "
                        "(server.id_idle_s 0: never forgotten)", h->client_id,
                        s->opt.max_clients);
            send_error(s, rid, rid_len, 0, FL_ERR_STATE, "server full");
            s->st.refused++;
            return;
        }
        forget_idle(s, idle, now, "server.max_clients reached");
    }
    const int fresh = !b;
    if (fresh) {
        /* the ids forgotten above may have held its derived key: choose again (forgetting
         * frees keys, never takes one: this finds a key whenever the first call did, unless a
         * key can no longer be derived) */
        if ((kst = id_key(s, h->client_id, &b, &key, &alt, &clash)) != FL_OK) {
            key_refused(s, rid, rid_len, h->client_id, kst, clash);
            return;
        }
        if (!(b = bind_add(s, key, h->client_id, pub, now))) {
            send_error(s, rid, rid_len, 0, FL_ERR_NOMEM, NULL);
            return;
        }
        /* On disk before the Hello is answered: a crash after the Ack must not forget whose
         * id this is. If it cannot be, the id is not bound (the client tries again later). The
         * record is appended here and synced with the batch's others (ids_flush); a failure
         * to append it is said at once. */
        if (ids_note_bind(s, b) != FL_OK) {
            s->ids_mute = 1;
            bind_forget(s, b);
            s->ids_mute = 0;
            s->ids_bad = 1;
            /* The record may still be in the file: appended before a failed fdatasync, or in a
             * rewrite renamed into place before its directory's fsync failed. Rewritten at once
             * without it (a crash before the next change would bind the id it refused); when
             * that fails too, the next change tries again. */
            (void)ids_rewrite(s);
            log_bad(s, "hello from %s refused: its binding could not be recorded in %s",
                    h->client_id, s->ids_path);
            send_error(s, rid, rid_len, 0, FL_ERR_IO,
                       "the server could not record the client id; try again");
            s->st.refused++;
            return;
        }
    }
    /* The same client on another connection (it restarted): the old session is over. */
    sess *old = sess_by_key(s, key);
    if (old && old != x) {
        twin_note(s, b);
        sess_drop(s, old, "reconnected");
    }
    if (x && x->id) {
        /* A second Hello on the same connection: a fresh start for this client. */
        binding *was = bind_find(s, x->key);
        if (was)
            bind_detach(s, was, now);
        fls_core_client_leave(s->core, x->key, fl_time_mono_s());
        free(x->id);
        x->id = NULL;
        ul_end(s, x);
        dl_forget(s, x);
        x->dl_active = 0;
        x->gone_step = 0; /* a fresh start: not the connection a send found gone (gone_drop) */
    }
    if (!x && !(x = sess_add(s, rid, rid_len))) {
        send_error(s, rid, rid_len, 0, FL_ERR_NOMEM, NULL);
        return;
    }
    x->id = strdup(h->client_id);
    x->key = key;
    x->key_alt = alt;
    x->has_pub = pub != NULL;
    if (pub)
        memcpy(x->pub, pub, sizeof x->pub);
    x->last_rx = fl_time_mono_s();
    sess_wake(s, x); /* the sweep skipped it without an id */
    if (!x->id || kidx_put(s, x) != FL_OK) {
        sess_drop(s, x, "out of memory");
        send_error(s, rid, rid_len, 0, FL_ERR_NOMEM, NULL);
        return;
    }
    fl_status st = fls_core_client_join(s->core, key, h->dataset_size, fl_time_mono_s());
    if (st == FL_OK)
        st = fls_core_client_memory(s->core, key, h->memory_bytes);
    if (st != FL_OK) {
        free(x->id);
        x->id = NULL;
        x->dead = 1;
        s->n_dead++;
        send_error(s, rid, rid_len, 0, st, NULL);
        return;
    }
    bind_attach(s, b);
    const int id_quiet = !id_churn_note(s, b, fl_time_mono_s());
    /* Said when the id is bound, not at every reconnect (the table may have moved: look the
     * holder of its derived key up now). */
    uint32_t derived;
    const binding *holder = fresh && alt && fl_client_key_of(x->id, 0, &derived) == FL_OK
                                ? bind_find(s, derived)
                                : NULL;
    if (holder)
        fl_log(&s->log, FL_LOG_INFO, "client %s: its key collides with client %s's; known by an "
               "alternate key (%08x)", x->id, holder->id, key);
    /* A device too small for any submodel is admitted (it counts as connected, and a later
     * configuration may fit it) but never selected: its Ack says so in the detail and, for a
     * program, in memory_needed, so that the device can tell its owner instead of waiting
     * without a word. */
    const uint64_t need = fls_core_train_memory(s->core);
    const uint64_t short_of = h->memory_bytes && h->memory_bytes < need ? need : 0;
    char detail[256] = "";
    if (short_of)
        snprintf(detail, sizeof detail, "memory_bytes %llu is below the about %llu bytes that a "
                 "submodel of %.63s needs: this client will not be selected",
                 (unsigned long long)h->memory_bytes, (unsigned long long)need,
                 fls_core_arch(s->core)->spec);
    if (b->unsynced) { /* answered once its record is synced: ids_flush */
        const int held = fl_grow(&s->ack_keys, &s->cap_ack_keys, s->n_ack_keys + 1,
                                 sizeof *s->ack_keys, 64) == FL_OK &&
                         (!detail[0] || (x->ack_detail = strdup(detail)));
        if (held) {
            x->ack_need = short_of;
            x->ack_wait = 1;
            s->n_ack_wait++;
            s->ack_keys[s->n_ack_keys++] = x->key;
        } else { /* no room to hold it: synced now */
            ids_flush(s);
            if (x->dead)
                return; /* refused: its record could not be synced */
            send_ack_need(s, x, FLP_HELLO, 0, FL_OK, detail, short_of);
        }
    } else {
        send_ack_need(s, x, FLP_HELLO, 0, FL_OK, detail, short_of);
    }
    /* Short of what a round needs to start: say so, and what to change, so that an operator
     * whose fleet is smaller than round.clients does not wait for a round that will not come. */
    const uint32_t conn = fls_core_connected(s->core);
    const char *setting;
    const uint32_t start_at = round_start_at(s, &setting);
    const fl_log_level lv = churn_level(s, 1, 0, id_quiet);
    if (conn < start_at && !fls_core_round_open(s->core) && !fls_core_done(s->core))
        fl_log(&s->log, lv, "client %s joined; %u connected: a round starts at %u (%s)", x->id,
               conn, start_at, setting);
    else
        fl_log(&s->log, lv, "client %s joined; %u connected", x->id, conn);
    if (h->memory_bytes && h->memory_bytes < need && (fresh || b->mem_said != h->memory_bytes))
        fl_log(&s->log, FL_LOG_WARN, "client %s announced %llu bytes of memory, less than a "
               "submodel of %s needs (about %llu): it will not be selected", x->id,
               (unsigned long long)h->memory_bytes, fls_core_arch(s->core)->spec,
               (unsigned long long)need);
    b->mem_said = h->memory_bytes;
}

/* ---- uplink: upload slots and chunk credits ------------------------------------------------- */

/* Lets x send n more chunks of its update: n Acks(of CHUNK, of_round = the update's round). */
static void ul_grant(fls_server *s, sess *x, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        send_ack(s, x, FLP_CHUNK, x->ul_round, FL_OK, "");
        x->ul_credit++;
    }
}

/* Hands free upload slots to the longest-waiting queued updates: the queue's first entries that
 * are still queued (each update is queued once, in increasing number, so that is the smallest
 * number queued; without the queue this was a walk over every session per slot). */
static void ul_admit(fls_server *s)
{
    while (s->n_up_active < s->opt.upload_slots && s->ulq_head < s->ulq_n) {
        const ul_wait w = s->ulq[s->ulq_head++];
        sess *x = sess_by_key(s, w.key);
        if (!x || x->ul_slot != SLOT_QUEUED || x->ul_seq != w.seq)
            continue;
        /* Its round closed while it waited (the core no longer receives it): no slot and no
         * credit, which its client would spend on chunks the round no longer takes (until
         * 2026-12-07, up to `credit` chunks from each client queued at a round's close); ul_sweep
         * answers it, in the sweep that the round's close makes due. */
        if (fls_core_update_state(s->core, x->key, x->ul_round) != FLS_UPDATE_RECEIVING)
            continue;
        x->ul_slot = SLOT_ACTIVE;
        x->ul_last = x->ul_since = x->ul_w0_t = x->ul_w1_t = fl_time_mono_s();
        x->ul_long_said = 0;
        x->ul_got = x->ul_w0_n = x->ul_w1_n = 0;
        s->n_up_active++;
        ul_grant(s, x, s->opt.credit);
    }
    if (s->ulq_head == s->ulq_n) {
        s->ulq_head = s->ulq_n = 0;
    } else if (s->ulq_head >= 64 && s->ulq_head > s->ulq_n / 2) {
        memmove(s->ulq, s->ulq + s->ulq_head, (s->ulq_n - s->ulq_head) * sizeof *s->ulq);
        s->ulq_n -= s->ulq_head;
        s->ulq_head = 0;
    }
}

/* The update of x is over (committed, refused or late): answer it (with `why` as the Ack's
 * detail, or the status's text), free its slot. */
static void ul_answer_why(fls_server *s, sess *x, uint64_t r, fl_status st, const char *why)
{
    if (st != FL_OK && fls_core_update_state(s->core, x->key, r) == FLS_UPDATE_RECEIVING)
        fls_core_update_abort(s->core, x->key, fl_time_mono_s()); /* its staging is freed */
    send_ack(s, x, FLP_UPDATE, r, st, why ? why : st == FL_OK ? "" : fl_strerror(st));
    ul_end(s, x);
    x->ul_round = r;
    x->ul_state = UL_ANSWERED;
    ul_admit(s);
}

static void ul_answer(fls_server *s, sess *x, uint64_t r, fl_status st)
{
    ul_answer_why(s, x, r, st, NULL);
}

/* 1 when an update waits for an upload slot. Entries of updates no longer queued (their client
 * left, or sent another header) are dropped from the queue's head on the way, so that a waiter
 * that went away preempts nobody. */
static int ul_waiting(fls_server *s)
{
    while (s->ulq_head < s->ulq_n) {
        const ul_wait w = s->ulq[s->ulq_head];
        const sess *x = sess_by_key(s, w.key);
        if (x && x->ul_slot == SLOT_QUEUED && x->ul_seq == w.seq)
            return 1;
        s->ulq_head++;
    }
    return 0;
}

/* The span over which an upload's rate is measured, and the grace a new upload has before it is
 * judged: a liveness period (the longest a slot holder may go without a chunk), at least
 * UL_RATE_MIN_S so that a short liveness does not judge a link by its first few chunks. */
#define UL_RATE_MIN_S 3.0
/* Without a round deadline (none today: round.deadline_s is bounded), the liveness periods a slot
 * may be held while others wait: twice the three after which the holder is named. */
#define UL_HOLD_MAX_LIVE 6.0

static double ul_window(const fls_server *s)
{
    const double live = s->opt.liveness_ms / 1000.0;
    return live > UL_RATE_MIN_S ? live : UL_RATE_MIN_S;
}

/* Moves x's rate marks on: the newer one once it is a window old. Returns the rate in chunks a
 * second over [ul_w0_t, now] (one to two windows once the upload is a window old). */
static double ul_rate(const fls_server *s, sess *x, double now)
{
    if (now - x->ul_w1_t >= ul_window(s)) {
        x->ul_w0_t = x->ul_w1_t;
        x->ul_w0_n = x->ul_w1_n;
        x->ul_w1_t = now;
        x->ul_w1_n = x->ul_got;
    }
    const double span = now - x->ul_w0_t;
    return span > 0 ? (x->ul_got - x->ul_w0_n) / span : 0.0;
}

/* 1 when x's upload, at its recent rate, cannot finish before the round's deadline (or, with no
 * deadline, has held its slot for UL_HOLD_MAX_LIVE liveness periods). Judged only after the
 * grace of one window: a new upload's first chunks say little about its link. *eta is the time
 * it still needs at that rate (INFINITY when no chunk came within the window). */
static int ul_too_slow(fls_server *s, sess *x, double now, double *eta)
{
    const double rate = ul_rate(s, x, now);
    const uint32_t left = x->ul_total > x->ul_got ? x->ul_total - x->ul_got : 0;
    *eta = left == 0 ? 0.0 : rate > 0 ? left / rate : INFINITY;
    if (now - x->ul_since < ul_window(s) || !x->ul_total)
        return 0;
    const double deadline = fls_core_deadline(s->core);
    if (!isfinite(deadline))
        return now - x->ul_since > UL_HOLD_MAX_LIVE * s->opt.liveness_ms / 1000.0;
    return now + *eta > deadline;
}

/* 1 when a message last heard at `last` (a session's, an upload's chunks, a download's Acks) is
 * older than the liveness timeout. Silence is judged only against a read queue emptied since the
 * reactor was last busy: after a stall (a slow checkpoint write, a host that stepped late), one
 * batch reads BATCH_IN messages and the timers run while other sessions' messages of that time
 * still wait to be read; those sessions are not silent. A backlog that lasts a liveness period (an
 * overloaded reactor) judges everything again, and silence of two liveness periods is judged
 * whatever the queue (a flood that leaves it full at each sweep and empties it between them), so
 * that dead sessions still go. */
static int silent_since(const fls_server *s, double last, double now)
{
    const double live = s->opt.liveness_ms / 1000.0;
    if (now - last <= live)
        return 0;
    return !s->backlog_since || now - s->backlog_since > live || now - last > 2.0 * live;
}

/* After the round engine ran: updates that are no longer receiving in the core (the round closed,
 * or it failed there) are answered, so their slots and queue places free up. */
static void ul_sweep(fls_server *s)
{
    size_t m = 0;
    for (size_t i = 0; i < s->ulr_n; i++) {
        const ul_wait w = s->ulr[i];
        sess *x = sess_by_key(s, w.key);
        if (!x || x->ul_state != UL_RECEIVING || x->ul_seq != w.seq)
            continue; /* stale: dropped from the list */
        double eta = 0;
        const fls_update_state us = fls_core_update_state(s->core, x->key, x->ul_round);
        if (us == FLS_UPDATE_RECEIVING && x->ul_slot == SLOT_ACTIVE &&
            silent_since(s, x->ul_last, fl_time_mono_s())) {
            /* It holds a slot but sends no chunks (heartbeats alone do not keep a slot): the
             * others must not wait for it. Its update is dropped (counted as failed). */
            log_bad(s, "client %s: no chunk for %u ms while holding an upload slot: update dropped",
                    x->id, s->opt.liveness_ms);
            ul_answer(s, x, x->ul_round, FL_ERR_TIMEOUT);
        } else if (us == FLS_UPDATE_RECEIVING && x->ul_slot == SLOT_ACTIVE && ul_waiting(s) &&
                   ul_too_slow(s, x, fl_time_mono_s(), &eta)) {
            /* Chunks keep coming, each within the liveness, but too slowly for the update to be
             * in before the round closes, while others wait for its slot: held on, it is dropped
             * at the deadline anyway and so are theirs (one device on a poor link cost every
             * round). Ended as a silent holder is: undone from the aggregate, counted failed in
             * the round, its client told with Ack(of UPDATE, FL_ERR_TIMEOUT) and why, the slot
             * handed to the longest waiter. An upload nobody waits for keeps its slot. */
            const double now = fl_time_mono_s();
            const double d = fls_core_deadline(s->core) - now;
            char why[256];
            if (isfinite(d))
                snprintf(why, sizeof why, "upload too slow to finish before the round's deadline "
                         "while other updates wait for a slot (%u of %u chunks in %.0f s; %.0f s "
                         "left): update dropped", x->ul_got, x->ul_total, now - x->ul_since, d);
            else
                snprintf(why, sizeof why, "upload held a slot for %.0f s while other updates wait "
                         "for one (%u of %u chunks): update dropped", now - x->ul_since,
                         x->ul_got, x->ul_total);
            fl_log(&s->log, FL_LOG_WARN, "client %s: %s; at its rate it needed %.0f s more",
                   x->id, why, eta);
            ul_answer_why(s, x, x->ul_round, FL_ERR_TIMEOUT, why);
        } else if (us == FLS_UPDATE_RECEIVING && x->ul_slot == SLOT_ACTIVE && !x->ul_long_said &&
                   fl_time_mono_s() - x->ul_since > 3.0 * s->opt.liveness_ms / 1000.0 &&
                   ul_waiting(s)) {
            /* Chunks keep coming, each within the liveness, but the upload has held its slot for
             * three liveness periods while others wait: a slow link, or a client that trickles
             * (a hostile one can hold a slot so for up to a liveness period a chunk). Said once
             * per update, so that the operator can see who holds the round up. */
            x->ul_long_said = 1;
            fl_log(&s->log, FL_LOG_WARN, "client %s has held an upload slot for %.0f s while "
                   "other updates wait for one: a slow link, or a client that sends its chunks "
                   "slowly on purpose; more server.upload_slots let others upload beside it",
                   x->id, fl_time_mono_s() - x->ul_since);
        } else if (us != FLS_UPDATE_RECEIVING) {
            ul_answer(s, x, x->ul_round,
                      us == FLS_UPDATE_COMMITTED ? FL_OK
                      : us == FLS_UPDATE_FAILED  ? FL_ERR_WIRE_CHUNK_MISSING
                                                 : FL_ERR_ROUND_CLOSED);
        }
        if (x->ul_state == UL_RECEIVING) /* still receiving: kept (an answered one is dropped) */
            s->ulr[m++] = w;
    }
    s->ulr_n = m;
}

static void on_update(fls_server *s, sess *x, const flp_msg *m)
{
    if (x->ul_state == UL_RECEIVING &&
        fls_core_update_state(s->core, x->key, x->ul_round) == FLS_UPDATE_RECEIVING) {
        /* A second Update header while its update is open (uploading or queued): that update is
         * over, aborted in the core (staging freed, counted failed) before its slot is given
         * back. Left open, it held a staging buffer until the round's deadline while its slot
         * went to the next client: memory grew with the clients whatever upload_slots. The new
         * header is then answered as any other (Ack(of UPDATE, FL_ERR_DUPLICATE_UPDATE) for the
         * same round): that one Ack ends the client's upload. */
        log_bad(s, "client %s: second Update header while its update of round %llu is open: "
                   "update dropped", x->id, (unsigned long long)x->ul_round);
        fls_core_update_abort(s->core, x->key, fl_time_mono_s());
    }
    ul_end(s, x);
    ul_admit(s);
    x->ul_round = m->round;
    /* its place in the upload queue first: nothing is left to undo when there is no room */
    const fl_status st = fl_grow(&s->ulq, &s->ulq_cap, s->ulq_n + 1, sizeof *s->ulq, 64) != FL_OK ||
                                 fl_grow(&s->ulr, &s->ulr_cap, s->ulr_n + 1, sizeof *s->ulr, 64) !=
                                     FL_OK
                             ? FL_ERR_NOMEM
                             : fls_core_on_message(s->core, x->key, m, fl_time_mono_s());
    if (st != FL_OK) {
        s->st.refused++;
        x->ul_state = UL_ANSWERED;
        const char *from = "";
        const uint64_t lim = st == FL_ERR_WIRE_LIMIT
                                 ? fls_core_update_samples_max(s->core, x->key, &from) : 0;
        if (st == FL_ERR_WIRE_LIMIT && m->update.n_samples > lim) /* which bound: say it */
            log_bad(s, "client %s: update of round %llu refused: %s (it claims %llu samples, "
                    "above %s, %llu)", x->id, (unsigned long long)m->round, fl_strerror(st),
                    (unsigned long long)m->update.n_samples, from, (unsigned long long)lim);
        else if (st != FL_ERR_ROUND_CLOSED)
            log_bad(s, "client %s: update of round %llu refused: %s", x->id,
                    (unsigned long long)m->round, fl_strerror(st));
        send_ack(s, x, FLP_UPDATE, m->round, st, fl_strerror(st));
        return;
    }
    /* Our own chunk bitset tells when the update is complete or can no longer complete. */
    if (flp_msg_tracker_new(&x->ul_trk, m->update.tensors, m->update.n_tensors, FLP_DIR_UP) !=
        FL_OK) {
        x->ul_trk = NULL;
    }
    x->ul_total = 0;
    for (uint32_t t = 0; t < m->update.n_tensors; t++)
        x->ul_total += m->update.tensors[t].n_chunks;
    x->ul_state = UL_RECEIVING;
    x->ul_slot = SLOT_QUEUED;
    x->ul_seq = s->up_seq++;
    s->ulq[s->ulq_n++] = (ul_wait){x->key, x->ul_seq};
    s->ulr[s->ulr_n++] = (ul_wait){x->key, x->ul_seq};
    ul_admit(s);
}

static void on_chunk(fls_server *s, sess *x, const flp_msg *m)
{
    const uint64_t r = m->round;
    if (x->ul_round == r && x->ul_state == UL_ANSWERED) {
        /* the update is already committed or refused: nothing more to say, but the chunk is
         * still refused input and must show in the counts (integration test it_garbage found
         * these dropped without being counted) */
        s->st.refused++;
        return;
    }
    if (x->ul_round == r && x->ul_state == UL_RECEIVING &&
        (x->ul_slot != SLOT_ACTIVE || x->ul_credit == 0)) {
        /* Flow control broken: a chunk the server did not ask for. It never reaches the core
         * (that is what bounds the server's memory); the update is over. */
        s->st.refused++;
        log_bad(s, "client %s: chunk of round %llu sent without a credit: update refused", x->id,
                (unsigned long long)r);
        ul_answer(s, x, r, FL_ERR_STATE);
        return;
    }
    const fl_status st = fls_core_on_message(s->core, x->key, m, fl_time_mono_s());
    if (x->ul_round != r || x->ul_state != UL_RECEIVING || !x->ul_trk) {
        /* A chunk without its Update (or of another round). One Error per round. */
        if (st != FL_OK) {
            s->st.refused++;
            if (x->err_round != r + 1) {
                x->err_round = r + 1;
                log_bad(s, "client %s: chunk of round %llu refused: %s", x->id,
                        (unsigned long long)r, fl_strerror(st));
                send_error(s, x->rid, x->rid_len, r, st, "chunk without an accepted update");
            }
        }
        return;
    }
    x->ul_credit--;
    if (st == FL_OK) { /* only a chunk the core took keeps the slot alive */
        x->ul_last = fl_time_mono_s();
        x->ul_got++;
        (void)ul_rate(s, x, x->ul_last); /* its marks stay recent while nobody waits */
    }
    /* The session's tracker records only the chunks the core took, so that a chunk refused (a
     * payload whose codec header does not parse, say) stays missing and may be sent again, in
     * whatever order (PROTOCOL.md). Until 2026-12-07 it recorded every chunk: one refused and then
     * sent again before the update's last other chunk committed it, but one sent again after
     * that found the update already ended (Ack(of UPDATE, FL_ERR_WIRE_CHUNK_MISSING) at that
     * last other chunk) and lost it. A refused chunk that was the last one missing still ends
     * the update (complete). */
    const int complete = st == FL_OK
                             ? flp_msg_tracker_accept(x->ul_trk, &m->chunk, NULL, 0) == FL_OK &&
                                   flp_msg_tracker_complete(x->ul_trk)
                             : flp_msg_tracker_completes(x->ul_trk, &m->chunk);
    const fls_update_state us = fls_core_update_state(s->core, x->key, r);
    if (st == FL_OK) {
        if (complete) /* committed (the core tracks the same chunks: never missing one here) */
            ul_answer(s, x, r, us == FLS_UPDATE_RECEIVING ? FL_ERR_WIRE_CHUNK_MISSING : FL_OK);
        else
            ul_grant(s, x, 1);
        return;
    }
    s->st.refused++;
    if (st == FL_ERR_ROUND_CLOSED || complete || us != FLS_UPDATE_RECEIVING) {
        /* late, or the update failed (a chunk that could not be decoded, the last missing chunk
         * refused, or the whole update refused at commit): the update is over */
        /* a value out of range or not finite: where, and the bound, for the operator and in
         * the Ack's detail for the device maker (the status alone said neither) */
        const char *where = fls_core_update_error(s->core);
        if (st != FL_ERR_ROUND_CLOSED)
            log_bad(s, "client %s: update of round %llu refused: %s%s%s", x->id,
                    (unsigned long long)r, fl_strerror(st), where[0] ? ": " : "", where);
        ul_answer_why(s, x, r, st, where[0] ? where : NULL);
        return;
    }
    if (!x->ul_err_sent) {
        x->ul_err_sent = 1;
        log_bad(s, "client %s: chunk %u/%u of round %llu refused: %s", x->id, m->chunk.tensor,
                m->chunk.index, (unsigned long long)r, fl_strerror(st));
        send_error(s, x->rid, x->rid_len, r, st, NULL);
    }
    /* A refused chunk (a duplicate, a payload that does not decode) neither returns its credit nor
     * counts as activity: a client resending refused chunks runs out of credits and loses its slot
     * to the liveness reclaim (ul_sweep) instead of holding it for the whole round. */
}

static void handle_frame(fls_server *s, const uint8_t *rid, size_t rid_len, const uint8_t *data,
                         size_t len, const char *user_id)
{
    s->st.msgs_in++;
    const double now = fl_time_mono_s();
    sess *x = sess_by_rid(s, rid, rid_len);
    if (x)
        x->last_rx = now;
    char nbuf[2 * RID_MAX + 8];
    uint8_t pub[32];
    const uint8_t *pubp = NULL;
    if (s->curve) {
        /* Set by our ZAP handler for every CURVE connection; re-checked against the current
         * allow-list, so a key removed by a reload is refused from its next message on. */
        if (!user_id || strlen(user_id) != FLS_Z85_LEN || !zmq_z85_decode(pub, user_id) ||
            !fls_allow_has(&s->allow, pub)) {
            s->st.auth_refused++;
            /* A routing id alone ("peer 006b8b456f") maps to nothing an operator has: the key
             * (as the allow-list holds it), and the client id of the session, or, with none (the
             * reload that removed the key ended it), the one its message names. */
            const int valid = user_id && strlen(user_id) == FLS_Z85_LEN;
            char named[FLS_IDS_ID_MAX + 48] = "";
            flp_msg *rm = NULL;
            if (!(x && x->id) && flp_decode(&rm, data, len, &s->lim, NULL, 0) == FL_OK) {
                const char *cid = rm->sender[0] ? rm->sender
                                : rm->type == FLP_HELLO ? rm->hello.client_id : "";
                if (cid[0])
                    snprintf(named, sizeof named, "; its message names client %s", cid);
            }
            flp_msg_free(rm);
            if (x && x->id)
                log_bad(s, "client %s (key %s): public key not (or no longer) allowed", x->id,
                        valid ? user_id : "unknown");
            else
                log_bad(s, "%s (key %s%s): public key not (or no longer) allowed",
                        peer_name(x, rid, rid_len, nbuf, sizeof nbuf),
                        valid ? user_id : "unknown", named);
            send_error(s, rid, rid_len, 0, FL_ERR_AUTH, "public key not allowed");
            if (x)
                sess_drop(s, x, "key no longer allowed");
            return;
        }
        pubp = pub;
    }
    flp_msg *m = NULL;
    char err[FLP_ERRBUF];
    fl_status st = flp_decode(&m, data, len, &s->lim, err, sizeof err);
    if (st != FL_OK) {
        s->st.malformed++;
        log_bad(s, "%s: malformed message (%zu bytes): %s: %s",
                peer_name(x, rid, rid_len, nbuf, sizeof nbuf), len, fl_status_name(st), err);
        send_error(s, rid, rid_len, 0, st, err);
        return;
    }
    if (m->type == FLP_HELLO && m->sender[0] && strcmp(m->sender, m->hello.client_id) != 0) {
        /* A Hello's client is the id it says: an envelope that names another (PROTOCOL.md,
         * "Envelope sender") is refused as any other message's would be, before it starts or
         * ends a session. Until 2026-12-07 the check below passed Hellos over, and one that
         * named client X while saying id Y was admitted as Y. */
        s->st.refused++;
        log_bad(s, "%s: Hello as client %s with sender '%s' refused",
                peer_name(x, rid, rid_len, nbuf, sizeof nbuf), m->hello.client_id, m->sender);
        send_error(s, rid, rid_len, 0, FL_ERR_WIRE_FIELD,
                   "sender does not match the Hello's client id");
        flp_msg_free(m);
        return;
    }
    if (!x || !x->id) {
        if (m->type == FLP_HELLO) {
            on_hello(s, x, rid, rid_len, m, pubp);
        } else if (m->type != FLP_BYE) {
            s->st.refused++;
            /* An id the table binds (under CURVE, to this key): a client of this server before
             * its restart (or one it timed out), whose messages in flight meet a server that has
             * no session for it yet. Its client says Hello again at the Error: news, not a
             * warning. */
            binding *kb = NULL;
            uint32_t kk;
            int ka;
            const binding *kc;
            if (m->sender[0] && id_key(s, m->sender, &kb, &kk, &ka, &kc) == FL_OK && kb &&
                (!s->curve || (pubp && kb->has_pub && memcmp(kb->pub, pubp, 32) == 0)))
                log_bad_at(s, FL_LOG_INFO, "client %s: %s before Hello (a session of before a "
                           "restart, or timed out): told to say Hello again", m->sender,
                           flp_type_name(m->type));
            else
                log_bad(s, "%s: %s before Hello refused",
                        peer_name(x, rid, rid_len, nbuf, sizeof nbuf), flp_type_name(m->type));
            send_error(s, rid, rid_len, m->round, FL_ERR_UNKNOWN_CLIENT, "say Hello first");
        }
        flp_msg_free(m);
        return;
    }
    if (pubp && x->has_pub && m->type != FLP_HELLO && memcmp(pubp, x->pub, 32) != 0) {
        /* Another allowed key on this session's routing id (a peer that chose it with
         * ZMQ_ROUTING_ID once the session's own connection was gone): the session is the key's
         * that said its Hello, and no other key may act as it. A Hello starts its own. */
        s->st.auth_refused++;
        log_bad(s, "client %s: message from another public key than its Hello's refused", x->id);
        send_error(s, rid, rid_len, m->round, FL_ERR_AUTH, "session of another key");
        flp_msg_free(m);
        return;
    }
    if (m->sender[0] && m->type != FLP_HELLO && strcmp(m->sender, x->id) != 0) {
        s->st.refused++;
        log_bad(s, "client %s: message with sender '%s' refused", x->id, m->sender);
        send_error(s, rid, rid_len, m->round, FL_ERR_WIRE_FIELD,
                   "sender does not match the Hello");
        flp_msg_free(m);
        return;
    }
    switch (m->type) {
    case FLP_HELLO:
        on_hello(s, x, rid, rid_len, m, pubp);
        break;
    case FLP_HEARTBEAT:
        break;
    case FLP_BYE:
        sess_drop(s, x, m->bye.reason[0] ? m->bye.reason : "bye");
        break;
    case FLP_ACK:
        if (m->ack.of_type == FLP_CHUNK && x->dl_active && m->ack.of_round == x->dl_round &&
            x->dl_inflight > 0) {
            x->dl_inflight--;
            s->dl_total--;
            x->dl_acked = 1;
            x->dl_last = now;
            dl_pump(s, x);
            dl_pump_all(s);
        } else if (m->ack.of_type == FLP_CHUNK && x->dl_inflight > 0 &&
                   m->ack.of_round == x->dl_round) {
            x->dl_inflight--;
            s->dl_total--;
            x->dl_last = now;
            dl_pump_all(s);
        }
        break;
    case FLP_ERROR:
        /* Its training of the open round failed (the core counts the update as failed and may
         * close the round early), or an error about something else: logged either way. */
        if (fls_core_on_message(s->core, x->key, m, fl_time_mono_s()) == FL_OK)
            fl_log(&s->log, FL_LOG_WARN, "client %s: round %llu failed on the device: %s",
                   x->id, (unsigned long long)m->round,
                   m->error.message && m->error.message[0] ? m->error.message
                                                           : fl_strerror((fl_status)m->error.code));
        else /* e.g. its training failed after the round closed: nothing was due (rate-limited:
              * a client sending Errors in a loop must not flood the log) */
            log_bad(s, "client %s reports error %u about round %llu (nothing due): %s", x->id,
                    m->error.code, (unsigned long long)m->round, m->error.message);
        break;
    case FLP_UPDATE:
        on_update(s, x, m);
        break;
    case FLP_CHUNK:
        on_chunk(s, x, m);
        break;
    default:
        s->st.refused++;
        log_bad(s, "client %s: unexpected %s refused", x->id, flp_type_name(m->type));
        send_error(s, rid, rid_len, m->round, FL_ERR_WIRE_TYPE, "servers do not take this type");
        break;
    }
    flp_msg_free(m);
}

/* A message came in on connection fd (ZMQ_SRCFD; -1 unknown) from routing id rid: its session,
 * if it has one, is on that connection (close_idle_conns). A libzmq that does not tell the
 * descriptor (the option is deprecated; it needs getnameinfo to work on the peer's address, which
 * musl's does not for ipc://) would leave live sessions looking idle: closing idle connections
 * is then turned off, rather than cutting live clients. */
static void conn_of(fls_server *s, int fd, const uint8_t *rid, size_t rl)
{
    sess *x = sess_by_rid(s, rid, rl);
    if (!x)
        return;
    x->fd = fd;
    if (fd < 0 && !s->no_srcfd && x->id && !x->dead) {
        s->no_srcfd = 1;
        s->idle_s = 0;
        fl_log(&s->log, FL_LOG_WARN, "libzmq does not tell which connection a message came on "
               "(ZMQ_SRCFD): the server closes no connection (server.idle_connection_s and the "
               "connection limit are off)");
    }
}

static void read_monitor(fls_server *s);

/* Reads the messages waiting on the ROUTER, at most BATCH_IN; 1 when it stopped at that. */
/* A message that comes while the run is done and the server lingers (server.done_linger_s,
 * linger_step): whatever it is (a Hello, mostly: a client that was away when the run ended, or
 * that found a server restarted on a finished run), but a Bye, it is answered with Bye("done"),
 * the word on which a client exits (PROTOCOL.md, step 5). Nothing reaches the round engine, the
 * session table or the client ids: the run is over. Under CURVE only a key the allow-list holds
 * is answered, as during the run. */
static void linger_frame(fls_server *s, const uint8_t *rid, size_t rid_len, const uint8_t *data,
                         size_t len, const char *user_id)
{
    s->st.msgs_in++;
    uint8_t pub[32];
    if (s->curve && (!user_id || strlen(user_id) != FLS_Z85_LEN ||
                     !zmq_z85_decode(pub, user_id) || !fls_allow_has(&s->allow, pub))) {
        s->st.auth_refused++;
        return;
    }
    flp_msg *m = NULL;
    if (flp_decode(&m, data, len, &s->lim, NULL, 0) != FL_OK) {
        s->st.malformed++;
        return;
    }
    if (m->type != FLP_BYE) {
        flp_msg b = flp_msg_header(FLP_BYE, 0, NULL);
        b.bye.reason = "done";
        if (send_to(s, rid, rid_len, &b) == 0 && m->type == FLP_HELLO) {
            /* said for the first few, then counted (a fleet may come back at once) */
            if (++s->linger_told <= 20)
                fl_log(&s->log, FL_LOG_INFO, "client %s came in after the run was done: told so "
                       "(Bye \"done\")%s", m->hello.client_id,
                       s->linger_told == 20 ? "; more are counted, not said" : "");
        }
    }
    flp_msg_free(m);
}

static int read_batch(fls_server *s)
{
    for (int n = 0; n < BATCH_IN; n++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, s->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            return 0;
        }
        int frames = 0, more = zmq_msg_more(&rid);
        zmq_msg_init(&body);
        while (more) {
            zmq_msg_t extra;
            if (frames == 0) {
                if (zmq_msg_recv(&body, s->router, 0) < 0)
                    break;
                more = zmq_msg_more(&body);
            } else {
                zmq_msg_init(&extra);
                if (zmq_msg_recv(&extra, s->router, 0) < 0) {
                    zmq_msg_close(&extra);
                    break;
                }
                more = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
            }
            frames++;
        }
        const size_t rl = zmq_msg_size(&rid);
        if (rl == 0 || rl > RID_MAX) {
            /* cannot happen with a ROUTER; nothing to answer to */
        } else if (frames != 1) {
            s->st.msgs_in++;
            s->st.malformed++;
            char nbuf[2 * RID_MAX + 8];
            const sess *x = sess_by_rid(s, zmq_msg_data(&rid), rl);
            log_bad(s, "%s: message of %d frames refused (one Envelope per message)",
                    peer_name(x, zmq_msg_data(&rid), rl, nbuf, sizeof nbuf), frames);
            send_error(s, zmq_msg_data(&rid), rl, 0, FL_ERR_WIRE_DECODE,
                       "one frame per message expected");
        } else {
            const char *uid = s->curve ? zmq_msg_gets(&body, "User-Id") : NULL;
            const int fd = zmq_msg_get(&body, ZMQ_SRCFD);
            /* A message that was queued before the reactor shut its connection down (over the
             * limit, or idle) is dropped unanswered: a Hello from it would make a session on a
             * connection that is gone ("joined", then "connection gone"). libzmq can hand over a
             * connection's first message before the monitor tells of the connection, so for a
             * descriptor the table does not hold open, the monitor is read first: its ACCEPTED
             * comes before the connection's engine starts, so after that read a number still
             * marked shut is the shut connection's, not a new one's. */
            if (fd >= 0 && s->mon &&
                ((size_t)fd >= s->fdt_cap || !s->fdt[fd].open || s->fdt[fd].shut))
                read_monitor(s);
            if (fd >= 0 && (size_t)fd < s->fdt_cap && s->fdt[fd].shut) {
                s->st.msgs_in++;
            } else if (s->run == RUN_DONE) {
                linger_frame(s, zmq_msg_data(&rid), rl, zmq_msg_data(&body), zmq_msg_size(&body),
                             uid);
            } else {
                handle_frame(s, zmq_msg_data(&rid), rl, zmq_msg_data(&body), zmq_msg_size(&body),
                             uid);
                conn_of(s, fd, zmq_msg_data(&rid), rl);
            }
        }
        zmq_msg_close(&body);
        zmq_msg_close(&rid);
        const fl_status st = drain_events(s);
        if (st != FL_OK) {
            run_fail(s, st);
            return 0;
        }
    }
    return 1;
}

/* read_batch, then the batch's new ids synced and their Hellos answered (ids_flush). */
static int read_router(fls_server *s)
{
    const int more = read_batch(s);
    fl_status st;
    if (ids_flush(s) && (st = drain_events(s)) != FL_OK) {
        run_fail(s, st);
        return 0;
    }
    return more;
}

/* ---- ZAP (RFC 27) --------------------------------------------------------------------------- */

static void zap_reply(fls_server *s, const zmq_msg_t *reqid, const char *code, const char *text,
                      const char *user)
{
    zmq_send(s->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(s->zap, zmq_msg_data((zmq_msg_t *)reqid), zmq_msg_size((zmq_msg_t *)reqid),
             ZMQ_SNDMORE);
    zmq_send(s->zap, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(s->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(s->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, 0);
}

static void read_zap(fls_server *s)
{
    for (int n = 0; n < BATCH_IN; n++) {
        zmq_msg_t f[8];
        int nf = 0, more = 1;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_init(&tmp);
            if (zmq_msg_recv(&tmp, s->zap, nf == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(&tmp);
                if (nf == 0)
                    return;
                break;
            }
            more = zmq_msg_more(&tmp);
            if (nf < 8)
                f[nf++] = tmp;
            else
                zmq_msg_close(&tmp);
        }
        /* version, request id, domain, address, routing id, mechanism, credentials... */
        if (nf >= 2) {
            const int curve = nf >= 7 && zmq_msg_size(&f[5]) == 5 &&
                              memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
                              zmq_msg_size(&f[6]) == 32;
            const int v10 = zmq_msg_size(&f[0]) == 3 && memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0;
            if (!v10 || !curve) {
                s->st.auth_refused++;
                zap_reply(s, &f[1], "400", "CURVE required", "");
            } else if (!fls_allow_has(&s->allow, zmq_msg_data(&f[6]))) {
                char z[FLS_Z85_LEN + 1];
                zmq_z85_encode(z, zmq_msg_data(&f[6]), 32);
                s->st.auth_refused++;
                log_bad(s, "handshake from a key not on the allow-list refused: %s", z);
                zap_reply(s, &f[1], "400", "key not allowed", "");
            } else {
                char z[FLS_Z85_LEN + 1];
                zmq_z85_encode(z, zmq_msg_data(&f[6]), 32);
                zap_reply(s, &f[1], "200", "OK", z);
            }
        } else if (nf == 1) {
            /* not a ZAP request; a REP socket must still answer it */
            zmq_send(s->zap, "", 0, 0);
        }
        for (int i = 0; i < nf; i++)
            zmq_msg_close(&f[i]);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* After a reload: every id bound to a key the new list lacks is released, so that the device can
 * come back under the same id with its new key (key rotation: add B, remove A, SIGHUP); the
 * session of that key ends now and its client is told (Error auth), as it would be at its next
 * message. Without this an id stayed bound to its first key for the life of the process. */
static void release_removed_keys(fls_server *s)
{
    /* sessions first (one pass, a hash lookup each), then the bindings: linear in both */
    for (size_t i = 0; i < s->n_ss; i++) {
        sess *x = &s->ss[i];
        const binding *b = !x->dead && x->id ? bind_find(s, x->key) : NULL;
        if (b && b->has_pub && !fls_allow_has(&s->allow, b->pub)) {
            send_error(s, x->rid, x->rid_len, 0, FL_ERR_AUTH, "public key not allowed");
            sess_drop(s, x, "key removed from the allow-list");
        }
    }
    size_t released = 0;
    s->ids_mute = 1; /* one rewrite of the journal for all of them, below */
    for (uint32_t i = 0; i < s->n_slots; i++) {
        binding *b = &s->bind[i];
        if (!b->id || !b->has_pub || fls_allow_has(&s->allow, b->pub))
            continue;
        if (++released <= 10)
            fl_log(&s->log, FL_LOG_INFO, "client id %s released: its key left the allow-list (the "
                   "id may register again with a key on the list)", b->id);
        bind_forget(s, b); /* by its row of the old list: s->owners is still the old list's */
    }
    if (released > 10)
        fl_log(&s->log, FL_LOG_INFO, "%zu more client ids released", released - 10);
    s->ids_mute = 0;
    if (released && ids_rewrite(s) != FL_OK)
        s->ids_bad = 1; /* the file still holds them: a restart drops them again (ids_load) */
    owners_rebuild(s);
}

/* The end of the error of a file the server could not open, into hint (cap bytes; PATH_MAX + 128
 * holds any): where path is not there, " (a relative path is taken from the directory fl_server
 * runs in, CWD; MAKES)", the first part for a relative path only, the second when makes is not
 * NULL; else "". A new user who ran the example configuration from another directory got
 * "keys/server.secret: No such file or directory" and nothing more. */
static void missing_hint(char *hint, size_t cap, const char *path, const char *makes)
{
    hint[0] = 0;
    struct stat sb;
    if (stat(path, &sb) == 0 || errno != ENOENT)
        return;
    char cwd[PATH_MAX];
    const int rel = path[0] != '/' && getcwd(cwd, sizeof cwd);
    if (rel || makes)
        snprintf(hint, cap, " (%s%s%s%s)",
                 rel ? "a relative path is taken from the directory fl_server runs in, " : "",
                 rel ? cwd : "", rel && makes ? "; " : "", makes ? makes : "");
}

#define DENIED_HINT_MAX (PATH_MAX + 512)

/* "user NAME (uid U)", or "uid U" where the user database has no name for it, into out. */
static void user_of(char *out, size_t cap, uid_t uid)
{
    struct passwd pw, *r = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &r) == 0 && r && r->pw_name)
        snprintf(out, cap, "user %s (uid %ld)", r->pw_name, (long)uid);
    else
        snprintf(out, cap, "uid %ld", (long)uid);
}

/* The end of the error of a file this server may not use (EACCES), into hint (cap bytes;
 * DENIED_HINT_MAX holds any): " (fl_server runs as user NAME (uid U); AT is owned by user OWNER
 * (uid O), mode 0MMM)", AT the file itself (amode: what it needs of it, R_OK or W_OK), or its
 * directory where the file is to be made there (in_dir, or the file is not there); else "".
 * Under systemd (User=fedrop) a key made by root, or a state directory made before the user,
 * read as a bare "Permission denied", which named neither the user nor the owner (until
 * 2026-12-07). */
static void denied_hint(char *hint, size_t cap, const char *path, int in_dir, int amode)
{
    hint[0] = 0;
    char at[PATH_MAX];
    struct stat sb;
    if (in_dir || stat(path, &sb) != 0) {
        const char *slash = strrchr(path, '/');
        if (!slash)
            snprintf(at, sizeof at, ".");
        else
            snprintf(at, sizeof at, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        amode = W_OK | X_OK;
    } else {
        snprintf(at, sizeof at, "%s", path);
    }
    if (stat(at, &sb) != 0 || faccessat(AT_FDCWD, at, amode, AT_EACCESS) == 0 || errno != EACCES)
        return;
    char me[160], owner[160];
    user_of(me, sizeof me, geteuid());
    user_of(owner, sizeof owner, sb.st_uid);
    snprintf(hint, cap, " (fl_server runs as %s; %s is owned by %s, mode %04o)", me, at, owner,
             (unsigned)(sb.st_mode & 07777));
}

static fl_status reload_allow(fls_server *s)
{
    if (!s->curve)
        return FL_OK;
    char err[512];
    fls_allow a = {0};
    const fl_status st = fls_allow_load(&a, s->opt.allow_list, err, sizeof err);
    if (st != FL_OK) {
        char hint[PATH_MAX + 128], denied[DENIED_HINT_MAX];
        missing_hint(hint, sizeof hint, s->opt.allow_list, NULL);
        denied_hint(denied, sizeof denied, s->opt.allow_list, 0, R_OK);
        fl_log(&s->log, FL_LOG_ERROR, "allow-list not reloaded (the old one stays): %s%s%s", err,
               hint, denied);
        return st;
    }
    if (a.blank && s->allow.n) {
        /* An empty file is what a list caught mid-write leaves, or one a shell redirection cut
         * short (grep -v KEY list > list): applied, it would end every session with Error auth,
         * on which fl_client exits for good, and release every id. A list that takes every key
         * off on purpose says so with a comment line. */
        fl_log(&s->log, FL_LOG_ERROR, "allow-list not reloaded (the old one stays): %s is empty "
               "(a file caught mid-write, or cut short by a shell redirection?); its %zu key%s "
               "stay%s in force. To take every key off, leave a comment line in it (# none) and "
               "reload", s->opt.allow_list, s->allow.n, s->allow.n == 1 ? "" : "s",
               s->allow.n == 1 ? "s" : "");
        fls_allow_clear(&a);
        return FL_ERR_AUTH;
    }
    fls_allow_clear(&s->allow);
    s->allow = a;
    fl_log(&s->log, a.n ? FL_LOG_INFO : FL_LOG_WARN, "allow-list %s: %zu key%s%s",
           s->opt.allow_list, a.n, a.n == 1 ? "" : "s", a.n ? "" : ": no client can join until keys are added (SIGHUP "
           "reloads it)");
    release_removed_keys(s);
    return FL_OK;
}

/* SIGHUP: run.metrics is opened again (appending), so that a rotated or deleted file gets the
 * next lines; the old one keeps what it has. */
static int metrics_open(const char *path, int nonblock)
{
    /* as fopen(path, "a"): mode 0666 less the umask. A FIFO: the open waits for a process that
     * reads it, unless nonblock (then ENXIO at once when there is none). */
    const int f = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY |
                                 (nonblock ? O_NONBLOCK : 0), 0666);
    if (f >= 0 && nonblock) {
        /* the lines are written as before: a FIFO's reader paces them */
        const int fl = fcntl(f, F_GETFL);
        if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) {
            const int e = errno;
            close(f);
            errno = e;
            return -1;
        }
    }
    return f;
}

/* Whether the regular file open as fd (appending, at path) ends in part of a line: a write cut
 * short by a crash, a power cut or an earlier server that could not cut its part off. The next
 * line then starts with a '\n', or it would be glued onto that part and both lost to a JSON-lines
 * reader. fd is write-only, so the last byte is read through path, if it is still that file. */
static int metrics_ends_torn(const char *path, int fd)
{
    struct stat a, b;
    if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode) || a.st_size == 0)
        return 0;
    const int r = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (r < 0)
        return 0; /* unreadable (mode 0200): nothing known, nothing added */
    char c = '\n';
    const int same = fstat(r, &b) == 0 && fl_stat_same_file(&a, &b);
    const int torn = same && pread(r, &c, 1, a.st_size - 1) == 1 && c != '\n';
    close(r);
    return torn;
}

/* After metrics_open: a file that ends mid-line is said, and the next line starts on its own. */
static void metrics_check_tail(fls_server *s)
{
    s->metrics_torn = metrics_ends_torn(s->opt.metrics_path, s->metrics_fd);
    if (s->metrics_torn)
        fl_log(&s->log, FL_LOG_WARN, "run.metrics %s ends in part of a line (a write cut short "
               "by a crash?): it stays, and the next line starts on a line of its own",
               s->opt.metrics_path);
}

static void reopen_metrics(fls_server *s)
{
    if (s->metrics_fd < 0)
        return;
    /* Not waiting for a FIFO's reader: the reactor would wait with it, for good (SIGTERM
     * unheard). */
    const int f = metrics_open(s->opt.metrics_path, 1);
    if (f < 0) {
        const int e = errno;
        char hint[DENIED_HINT_MAX] = ""; /* logrotate's "create" with another owner, say */
        if (e == EACCES)
            denied_hint(hint, sizeof hint, s->opt.metrics_path, 0, W_OK);
        fl_log(&s->log, FL_LOG_ERROR, "run.metrics %s not reopened (the old file stays): %s%s",
               s->opt.metrics_path, e == ENXIO ? "a FIFO that no process reads" : strerror(e),
               hint);
        return;
    }
    /* the old file's lines synced first: the next checkpoint's fdatasync is the new file's,
     * and a power cut after it would lose the lines of rounds it holds (until 2026-12-07) */
    (void)fdatasync(s->metrics_fd);
    close(s->metrics_fd);
    s->metrics_fd = f;
    s->metrics_bad = 0;
    metrics_check_tail(s); /* a new file, or one another program may have written since */
    fl_log(&s->log, FL_LOG_INFO, "run.metrics %s reopened", s->opt.metrics_path);
}

/* SIGHUP: the --config file is not read again (fls_options_load_file), so an edit of it, a
 * broken one too, changes nothing until a restart. Said when the file differs from what the start
 * read: an operator who edits fl.yaml and runs `systemctl reload` was told nothing, and took the
 * new settings for applied (until 2026-12-07). Read without waiting: a file that became a FIFO is
 * refused at once (fl_file_read_regular), never waited for. */
static void reload_config_said(fls_server *s)
{
    if (!s->opt.config_digest_set)
        return;
    const char *path = s->opt.config_path;
    char *buf = NULL, err[512];
    size_t n = 0;
    uint8_t d[FL_SHA256_LEN];
    const fl_status st = fl_file_read_regular(path, FLS_CONFIG_MAX_BYTES + 1, &buf, &n, err,
                                              sizeof err);
    if (st == FL_OK && fl_sha256_digest(d, buf, n) == FL_OK &&
        memcmp(d, s->opt.config_digest, sizeof d) == 0) {
        free(buf);
        return;
    }
    /* Changed: read as a restart would (not applied), so that a file that no longer loads (a
     * syntax error, an unknown key, a bad value) is said now, not at the next restart, which
     * fails on it (exit 2: systemd does not restart it). Said as "Restart it to apply the file"
     * until 2026-12-07. The flags apply after the file, so only its own faults are looked for. */
    char bad[512] = "";
    fls_options *o = NULL;
    if (st == FL_OK && fls_options_new(&o) == FLS_OK &&
        fls_options_load_mem(o, buf, n, path, err, sizeof err) == FLS_ERR_CONFIG)
        snprintf(bad, sizeof bad, "%s", err);
    fls_options_free(o);
    free(buf);
    /* What a reload does do, said as this server has it (a plain-text one has no allow-list) */
    const int al = s->opt.allow_list[0] != 0, me = s->opt.metrics_path[0] != 0;
    const char *does = al && me ? " (it re-reads server.allow_list and reopens run.metrics)"
                       : al     ? " (it re-reads server.allow_list)"
                       : me     ? " (it reopens run.metrics)"
                                : "";
    if (bad[0])
        fl_log(&s->log, FL_LOG_WARN, "reload: the configuration %s has changed since the start "
               "and does not load now (%s); a reload does not read it%s: the server goes on with "
               "the settings it started with, but a restart would fail on the file (exit 2): fix "
               "it before the next restart", path, bad, does);
    else if (st != FL_OK) /* removed, or made unreadable: a restart would fail on it (exit 2) */
        fl_log(&s->log, FL_LOG_WARN, "reload: the configuration %s cannot be read now (%s); a "
               "reload does not read it%s: the server goes on with the settings it started with, "
               "but a restart would fail on the file: put it back before the next restart", path,
               err, does);
    else
        fl_log(&s->log, FL_LOG_WARN, "reload: the configuration %s has changed since the start; a "
               "reload does not read it%s: the server goes on with the settings it started with. "
               "Restart it to apply the file (with --resume, as the systemd unit does, to "
               "continue the run)", path, does);
}

static fl_status load_eval(fls_server *s, char *err, size_t errlen)
{
    const flm_arch *a = fls_core_arch(s->core);
    fl_status st;
    const int ds = s->opt.eval_dataset;
    if (ds == FLS_EVAL_NONE)
        return FL_OK;
    if (ds == FLS_EVAL_SYNTHETIC) {
        if (a->token_input)
            st = flm_dataset_synth_tokens(&s->eval_ds, s->opt.eval_synth_samples, a->in_H,
                                          a->classes, 0.1f, s->opt.core.seed, FLM_SPLIT_HELDOUT);
        else
            st = flm_dataset_synth_images(&s->eval_ds, s->opt.eval_synth_samples, a->in_C, a->in_H,
                                          a->in_W, a->classes, 0.3f, s->opt.core.seed,
                                          FLM_SPLIT_HELDOUT);
        if (st != FL_OK)
            snprintf(err, errlen, "synthetic evaluation data: %s", fl_strerror(st));
    } else {
        const char *name = ds == FLS_EVAL_MNIST ? "mnist" : "fashion-mnist";
        char why[512];
        /* a file given as the directory: said as such, not as a dataset missing from beneath it */
        struct stat db;
        if (s->opt.eval_dir[0] && stat(s->opt.eval_dir, &db) == 0 && !S_ISDIR(db.st_mode))
            return fls_options_errf(&s->opt, err, errlen, FL_ERR_DATASET_IO, "eval.dir", NULL,
                                    "eval.dir %s: %s, not a directory", s->opt.eval_dir,
                                    fl_mode_what(db.st_mode));
        st = flm_dataset_load_named(&s->eval_ds, name, s->opt.eval_split ? "train" : "test",
                                    s->opt.eval_dir[0] ? s->opt.eval_dir : NULL, why, sizeof why);
        if (st != FL_OK) {
            char hint[PATH_MAX + 128] = "";
            if (s->opt.eval_dir[0])
                missing_hint(hint, sizeof hint, s->opt.eval_dir, NULL);
            fls_options_errf(&s->opt, err, errlen, st, "eval.dataset", "eval.dir",
                             "eval.dataset %s: %s%s", name, why, hint);
        }
    }
    if (st != FL_OK)
        return st;
    const flm_dataset *d = s->eval_ds;
    if ((d->kind == FLM_DATA_TOKENS) != (a->token_input != 0) ||
        d->sample_len != (size_t)a->in_C * (size_t)a->in_H * (size_t)a->in_W ||
        d->classes > a->classes) {
        return fls_options_errf(&s->opt, err, errlen, FL_ERR_DATASET_FORMAT, "eval.dataset",
                                "model.arch",
                                "eval.dataset: samples of %zu %s with %d classes do not fit "
                                "model %s",
                                d->sample_len, d->kind == FLM_DATA_TOKENS ? "tokens" : "floats",
                                d->classes, a->spec);
    }
    s->eval_view.x = d->x;
    s->eval_view.tokens = d->tokens;
    s->eval_view.labels = d->y;
    s->eval_view.index = NULL;
    s->eval_view.n = d->N;
    if (s->opt.eval_max_samples && s->opt.eval_max_samples < d->N)
        s->eval_view.n = s->opt.eval_max_samples;
    st = flm_model_new_eval(a, (int)s->opt.eval_batch, &s->eval_model);
    if (st != FL_OK)
        snprintf(err, errlen, "evaluation model: %s", fl_strerror(st));
    else if (ds != FLS_EVAL_SYNTHETIC && s->opt.eval_split) /* synthetic: held out, whatever split */
        fl_log(&s->log, FL_LOG_INFO, "evaluation set: %zu training samples (eval.split train: "
               "the accuracy reported, test_accuracy in run.metrics too, is a training accuracy)",
               s->eval_view.n);
    else
        fl_log(&s->log, FL_LOG_INFO, "evaluation set: %zu sample%s", s->eval_view.n,
               s->eval_view.n == 1 ? "" : "s");
    return st;
}

/* Reads the secret key into s->sec_z85 and derives s->pub_z85. A FIFO, a directory or a device
 * is refused at once (fl_key_file_read reads regular files only), so that a FIFO given by
 * mistake does not hang the start, and --check, for good. */
static fl_status load_key(fls_server *s, char *err, size_t errlen)
{
    char why[512];
    const fl_status st = fl_key_file_read(s->opt.secret_key_file, FL_KEY_SECRET, s->sec_z85,
                                          NULL, why, sizeof why);
    if (st != FL_OK) {
        char hint[PATH_MAX + 128], denied[DENIED_HINT_MAX];
        missing_hint(hint, sizeof hint, s->opt.secret_key_file,
                     "fl_server keygen DIR NAME makes DIR/NAME.secret");
        denied_hint(denied, sizeof denied, s->opt.secret_key_file, 0, R_OK);
        return fls_options_errf(&s->opt, err, errlen, st == FL_ERR_IO ? FL_ERR_IO : FL_ERR_AUTH,
                                "server.secret_key_file", NULL, "server.secret_key_file: %s%s%s",
                                why, hint, denied);
    }
    struct stat sb;
    if (stat(s->opt.secret_key_file, &sb) == 0 && (sb.st_mode & 077))
        fl_log(&s->log, FL_LOG_WARN, "%s is readable by others (chmod 600 it)",
               s->opt.secret_key_file);
    if (zmq_curve_public(s->pub_z85, s->sec_z85) != 0)
        return fls_options_errf(&s->opt, err, errlen, FL_ERR_AUTH, "server.secret_key_file", NULL,
                                "server.secret_key_file: %s: not a CURVE secret key",
                                s->opt.secret_key_file);
    return FL_OK;
}

/* 1 when a live process serves the ipc:// endpoint ep. libzmq binds an ipc:// path by unlinking
 * whatever is there, a live server's socket included: both servers would log "listening" and new
 * clients would reach only the later one. A plain connect() tells a live listener (accepted, or
 * EAGAIN: its backlog is full) from a stale file (ECONNREFUSED) or none (ENOENT). Not for "*" (a
 * fresh name) or "@name" (Linux's abstract names are never unlinked: libzmq's bind fails there
 * by itself). */
static int ipc_in_use(const char *ep)
{
    const char *path = ep + 6; /* after "ipc://" */
    struct sockaddr_un sa;
    const size_t n = strlen(path);
    if (strcmp(path, "*") == 0 || path[0] == '@' || n == 0 || n >= sizeof sa.sun_path)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* cannot tell: the bind decides */
    const int live = connect(fd, (const struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN;
    close(fd);
    return live;
}

/* ---- connections and file descriptors -------------------------------------------------------
 *
 * Every client connection holds a file descriptor. At RLIMIT_NOFILE libzmq can accept no more:
 * new clients cannot connect, and its I/O thread retries the accept in a busy loop (a core at
 * 100%) until a connection ends. libzmq says nothing of it unless asked, so the reactor watches
 * its ROUTER through a socket monitor: it counts the connections open (accepted, not yet
 * disconnected; fls_server_stats.connections), warns when they near what the limit allows, and
 * warns at start when the limit is below what the configuration needs. Only ACCEPTED and
 * DISCONNECTED are asked for (two events a connection), and HANDSHAKE_FAILED_PROTOCOL (at most one
 * a connection): ACCEPT_FAILED would arrive as fast as the I/O thread spins. The PAIR end has no high-water mark, so libzmq's I/O thread never waits on
 * this loop to deliver an event (with one, a full queue would stall every connection). */

#define FD_RESERVE 32 /* descriptors the process holds besides connections (zmq, files, stdio) */

static int setup_monitor(fls_server *s)
{
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://fls-connections-%p-%llu", (void *)s,
             (unsigned long long)fl_time_mono_ns());
    const int zero = 0;
    /* and the handshakes that fail for a protocol error, said (rate-limited): a client with
     * another server key, or of the other mechanism, was told so in its own log only, and the
     * server's said nothing. (HANDSHAKE_FAILED_NO_DETAIL is not asked for: a peer that hangs up
     * mid-handshake, EPIPE, tells nothing of why.) */
    const int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
    if (zmq_socket_monitor(s->router, ep, events) != 0 ||
        !(s->mon = zmq_socket(s->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(s->mon, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s->mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(s->mon, ep) != 0)
        return -1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        s->fd_limit = (uint64_t)rl.rlim_cur;
        s->conn_cap = rl.rlim_cur > FD_RESERVE + 1
                          ? (uint32_t)(rl.rlim_cur - FD_RESERVE > UINT32_MAX ? UINT32_MAX
                                                                            : rl.rlim_cur - FD_RESERVE)
                          : 1;
    }
    /* With several I/O threads (a host's context), a connection's DISCONNECTED can come before its
     * ACCEPTED: the count may drift and a closed descriptor look open, so nothing is closed. */
    const int io = zmq_ctx_get(s->ctx, ZMQ_IO_THREADS);
    if (io > 1) {
        s->multi_io = 1;
        fl_log(&s->log, FL_LOG_WARN, "the ZeroMQ context has %d I/O threads: connections are "
               "counted approximately and never closed by the server (server.idle_connection_s "
               "and the connection limit need one)", io);
    }
    if (s->opt.idle_conn_s && !s->multi_io) {
        /* raised to twice server.liveness_ms (fls_options_idle_conn_s says why) */
        s->idle_s = fls_options_idle_conn_s(&s->opt);
        if (s->idle_s != s->opt.idle_conn_s) {
            fl_log(&s->log, FL_LOG_INFO, "server.idle_connection_s (%u s) is below twice "
                   "server.liveness_ms (%u ms): connections without a session are closed after "
                   "%.0f s", s->opt.idle_conn_s, s->opt.liveness_ms, s->idle_s);
        }
    }
    if (!s->conn_cap)
        return 0;
    /* A round starts at round.min_clients when that is set, so a limit between it and
     * round.clients still runs rounds, each with a smaller quorum: "no round can start" was said
     * of such a server, which then trained on. */
    const char *start_key;
    const uint32_t start_at = round_start_at(s, &start_key);
    if (s->conn_cap < start_at)
        fl_log(&s->log, FL_LOG_WARN, "the file descriptor limit (RLIMIT_NOFILE %llu) lets about "
               "%u clients connect at once, fewer than %s (%u): no round can start; "
               "raise the limit (ulimit -n, systemd LimitNOFILE=)",
               (unsigned long long)s->fd_limit, s->conn_cap, start_key, start_at);
    else if (s->conn_cap < s->opt.core.clients_per_round)
        fl_log(&s->log, FL_LOG_WARN, "the file descriptor limit (RLIMIT_NOFILE %llu) lets about "
               "%u clients connect at once, fewer than round.clients (%u): rounds start at "
               "round.min_clients (%u) with the clients connected, never a quorum of "
               "round.clients; raise the limit (ulimit -n, systemd LimitNOFILE=)",
               (unsigned long long)s->fd_limit, s->conn_cap, s->opt.core.clients_per_round,
               start_at);
    else if (s->conn_cap < s->opt.max_clients)
        fl_log(&s->log, FL_LOG_WARN, "the file descriptor limit (RLIMIT_NOFILE %llu) lets about "
               "%u clients connect at once, fewer than server.max_clients (%u); beyond it new "
               "connections wait (raise it with ulimit -n or systemd LimitNOFILE=, or lower "
               "server.max_clients)", (unsigned long long)s->fd_limit, s->conn_cap,
               s->opt.max_clients);
    return 0;
}

/* D9: connections that carry no session (never said Hello, or their session ended) for
 * server.idle_connection_s are closed. libzmq cannot drop one peer of a ROUTER, so the reactor
 * shuts the connection's socket down itself (shutdown(2), never close(2): the descriptor stays
 * libzmq's, which sees the end of the stream, closes it and says DISCONNECTED as for a peer that
 * left). The monitor is read first, so a descriptor libzmq has closed is not touched; the one
 * race left (libzmq closes it and accepts a new connection on the same number between that read
 * and the shutdown, microseconds) would end that new connection once, and its client reconnects.
 * A connection carries a session while a live session's last message came in on it (conn_of):
 * so no connection is closed before its session is dropped (by a Bye, or by the liveness
 * timeout, at most half of idle_s: setup_monitor), however long the reactor itself was busy. */
static void close_idle_conns(fls_server *s, double now)
{
    /* The reactor itself busy (a long evaluation, a checkpoint) is no idleness of the peers':
     * what the scans missed beyond their period is added back. */
    const double prev = s->idle_scan;
    const double stall = prev > 0 ? now - prev - 1.0 : 0;
    s->idle_scan = now;
    read_monitor(s);
    if (stall > 1.0)
        for (size_t fd = 0; fd < s->fdt_cap; fd++) {
            conn_fd *c = &s->fdt[fd];
            if (c->open && c->used <= prev) /* not one accepted during the stall */
                c->used = c->used + stall < now ? c->used + stall : now;
        }
    for (size_t i = 0; i < s->n_ss; i++) {
        const sess *x = &s->ss[i];
        if (!x->dead && x->id && x->fd >= 0 && (size_t)x->fd < s->fdt_cap)
            s->fdt[x->fd].used = now;
    }
    const double t = s->idle_s;
    uint64_t n = 0;
    for (size_t fd = 0; fd < s->fdt_cap; fd++) {
        conn_fd *c = &s->fdt[fd];
        if (!c->open || now - c->used <= t)
            continue;
        c->open = 0; /* its DISCONNECTED follows */
        c->shut = 1;
        if (shutdown((int)fd, SHUT_RDWR) == 0)
            n++;
    }
    s->st.idle_closed += n;
    s->idle_unsaid += n;
    if (s->idle_unsaid && now - s->idle_said >= 60.0) {
        fl_log(&s->log, FL_LOG_INFO, "closed %llu connection%s that carried no client session for "
               "%.0f s (server.idle_connection_s; %llu in all)",
               (unsigned long long)s->idle_unsaid, s->idle_unsaid == 1 ? "" : "s", s->idle_s,
               (unsigned long long)s->st.idle_closed);
        s->idle_said = now;
        s->idle_unsaid = 0;
    }
}

/* Connections said Hello on: sessions with an id. */
static uint32_t sessions_with_id(const fls_server *s)
{
    uint32_t n = 0;
    for (size_t i = 0; i < s->n_ss; i++)
        n += !s->ss[i].dead && s->ss[i].id;
    return n;
}

static void read_monitor(fls_server *s)
{
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, s->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t event = 0;
        uint32_t fd = UINT32_MAX;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&fd, (const uint8_t *)zmq_msg_data(&ev) + 2, 4); /* both events' value */
        }
        const int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) { /* the endpoint: the event's two frames arrive together */
            zmq_msg_t addr;
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, s->mon, ZMQ_DONTWAIT);
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_ACCEPTED) {
            s->conns++;
            if (s->conns > s->st.connections_peak)
                s->st.connections_peak = s->conns;
            const size_t had = s->fdt_cap;
            if (fd < (uint32_t)INT32_MAX &&
                fl_grow(&s->fdt, &s->fdt_cap, (size_t)fd + 1, sizeof *s->fdt, 64) == FL_OK) {
                memset(s->fdt + had, 0, (s->fdt_cap - had) * sizeof *s->fdt);
                s->fdt[fd].used = fl_time_mono_s();
                s->fdt[fd].open = 1;
                s->fdt[fd].shut = 0;
                /* Beyond what the limit allows less FD_RESERVE, a new connection (it has no
                 * session yet) is closed at once, to keep those descriptors for the server's own
                 * files (a checkpoint that cannot be opened ends the run) and libzmq off the
                 * limit (where it spins on TCP, and aborts on ipc://). libzmq accepts before the
                 * reactor hears of it, so a fast storm of connects still reaches the limit for
                 * moments: this narrows the exposure, it does not close it. Its client
                 * reconnects later. */
                if (s->conn_cap && !s->multi_io && !s->no_srcfd && s->conns > s->conn_cap) {
                    s->fdt[fd].open = 0; /* its DISCONNECTED follows */
                    s->fdt[fd].shut = 1;
                    if (shutdown((int)fd, SHUT_RDWR) == 0) {
                        s->st.over_limit_closed++;
                        s->over_unsaid++;
                        s->over_open = s->conns;
                    }
                }
            } else if (!s->fdt_nomem) {
                s->fdt_nomem = 1;
                fl_log(&s->log, FL_LOG_ERROR, "out of memory: connection %u cannot be tracked; "
                       "server.idle_connection_s will not close it", fd);
            }
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            if (s->conns)
                s->conns--;
            if (fd < s->fdt_cap)
                s->fdt[fd].open = 0; /* shut stays until a connection is accepted on it */
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            /* the value is libzmq's protocol error (ZMQ_PROTOCOL_ERROR_*) */
            if (fd == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
                log_bad(s, "a handshake failed: the peer %s", s->curve
                        ? "speaks plain text, and this server runs CURVE (a client without "
                          "--server-key and --key, or with --insecure?)"
                        : "runs CURVE, and this server plain text (server.insecure: a client "
                          "given --server-key and --key?)");
            else if (s->curve && fd == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
                log_bad(s, "a CURVE handshake failed (its HELLO does not open with this server's "
                        "key): a client given another server public key than this server's "
                        "(logged at start)?");
            else
                log_bad(s, "a handshake failed (ZeroMQ protocol error 0x%x)", fd);
        }
    }
    if (!s->conn_cap)
        return;
    const double now = fl_time_mono_s();
    if (s->over_unsaid && now - s->over_said >= 60.0) {
        fl_log(&s->log, FL_LOG_WARN, "closed %llu new connection%s at once: %u open, more than "
               "the %u the file descriptor limit (RLIMIT_NOFILE %llu) allows with %d kept for the "
               "server's files (%llu in all); raise the limit (ulimit -n, systemd LimitNOFILE=)",
               (unsigned long long)s->over_unsaid, s->over_unsaid == 1 ? "" : "s", s->over_open,
               s->conn_cap, (unsigned long long)s->fd_limit, FD_RESERVE,
               (unsigned long long)s->st.over_limit_closed);
        s->over_said = now;
        s->over_unsaid = 0;
    }
    /* The warning and its "below 80% again" at most once a minute: a storm of connects that
     * comes and goes (silent peers that reconnect every second) crossed both marks each second,
     * two lines a second for as long as it lasted. A crossing held back is logged when the minute
     * is up if the count is still high, with how many were held back. */
    const int high = (uint64_t)s->conns * 10 >= (uint64_t)s->conn_cap * 9;
    if (!s->near_said && high) {
        s->near_said = 1;
        s->near_logged = 0;
        s->near_unsaid++;
    } else if (s->near_said && (uint64_t)s->conns * 10 < (uint64_t)s->conn_cap * 8) {
        s->near_said = 0;
        if (s->near_logged)
            fl_log(&s->log, FL_LOG_INFO, "%u connections open, below 80%% of the file descriptor "
                   "limit's about %u again", s->conns, s->conn_cap);
        s->near_logged = 0;
    }
    if (s->near_said && !s->near_logged && (s->near_t == 0 || now - s->near_t >= 60.0)) {
        char more[96] = "";
        if (s->near_unsaid > 1)
            snprintf(more, sizeof more, " (crossed 90%% %u times since the last such line)",
                     s->near_unsaid);
        fl_log(&s->log, FL_LOG_WARN, "%u connections open (%u of them clients that said Hello), "
               "near the about %u that the file descriptor limit (RLIMIT_NOFILE %llu) allows%s: "
               "beyond them new connections are closed at once; raise it (ulimit -n, systemd "
               "LimitNOFILE=)", s->conns, sessions_with_id(s), s->conn_cap,
               (unsigned long long)s->fd_limit, more);
        s->near_logged = 1;
        s->near_t = now;
        s->near_unsaid = 0;
    }
}

/* The host of a tcp:// endpoint to bind, as libzmq's bind takes it: *, an IPv4 address, an IPv6
 * one (bracketed or not; a %SCOPE after it), or the name of an interface of this machine (lo,
 * eth0). libzmq resolves no DNS names for a bind: "localhost" fails with ENODEV ("No such
 * device"), and an IPv6 address too unless ZMQ_IPV6 is set on the socket. */
enum { EP_HOST_ANY = 0, EP_HOST_V6, EP_HOST_NAME };

static int ep_host_kind(const char *ep, char *host, size_t cap)
{
    if (!fl_tcp_host(ep, host, cap)) /* not tcp://, or refused by the configuration */
        return EP_HOST_ANY;
    const int ip = fl_ip_literal(host); /* fe80::1%eth0: the scope is libzmq's to read */
    if (ip == 6)
        return EP_HOST_V6;
    if (strcmp(host, "*") == 0 || ip == 4 || if_nametoindex(host) != 0)
        return EP_HOST_ANY;
    return EP_HOST_NAME;
}

/* A start-up check (--check makes it too): a tcp:// endpoint whose host is a name that no
 * interface has, which libzmq would refuse at bind as "No such device". FL_OK or FL_ERR_CONFIG. */
static fl_status check_endpoints(fls_server *s, char *err, size_t errlen)
{
    /* One endpoint twice: an ipc one was bound twice (the first listener orphaned, "listening"
     * said twice), a tcp one failed its second bind as "Address already in use". A port that
     * ZeroMQ chooses (:0, :*) is another port each time: listed twice, two listeners. */
    for (uint32_t i = 0; i < s->opt.n_endpoints; i++) {
        const char *ep = s->opt.endpoints[i], *colon = strrchr(ep, ':');
        const int chosen = strncmp(ep, "tcp://", 6) == 0 && colon &&
                           (strcmp(colon, ":0") == 0 || strcmp(colon, ":*") == 0);
        for (uint32_t j = i + 1; j < s->opt.n_endpoints && !chosen; j++)
            if (strcmp(ep, s->opt.endpoints[j]) == 0)
                return fls_options_errf(&s->opt, err, errlen, FL_ERR_CONFIG, "server.endpoints",
                                        NULL, "server.endpoints: %s is listed twice",
                                        s->opt.endpoints[i]);
    }
    for (uint32_t i = 0; i < s->opt.n_endpoints; i++) {
        const char *ep = s->opt.endpoints[i];
        char host[FLS_ENDPOINT_MAX];
        const int kind = ep_host_kind(ep, host, sizeof host);
        /* A bare IPv6 address with its port: libzmq splits at the last ':' and binds it as the
         * bracketed form (tcp://::1:5555 listens on [::1]:5555; tried), but libflclient refuses
         * the bare form: said, so that the clients' --server is written as it should be. */
        if (kind == EP_HOST_V6 && ep[6] != '[')
            fl_log(&s->log, FL_LOG_WARN, "server.endpoints: %s is an IPv6 address without its "
                   "brackets: libzmq binds it as tcp://[%s]%s, the form to write (a client's "
                   "--server refuses the bare one)", ep, host, strrchr(ep, ':'));
        if (kind != EP_HOST_NAME)
            continue;
        const char *port = strrchr(ep + 6, ':') + 1;
        const int local = strcmp(host, "localhost") == 0 || strcmp(host, "localhost.") == 0 ||
                          strcmp(host, "ip6-localhost") == 0;
        char instead[3 * FLS_ENDPOINT_MAX + 256];
        if (local)
            snprintf(instead, sizeof instead, "for %s write 127.0.0.1 (tcp://127.0.0.1:%s), or "
                     "[::1] for IPv6", host, port);
        else
            snprintf(instead, sizeof instead, "no interface of this machine is called '%s'; write "
                     "the address this machine has for it (tcp://ADDRESS:%s) or * for all of them "
                     "(tcp://*:%s)", host, port, port);
        return fls_options_errf(&s->opt, err, errlen, FL_ERR_CONFIG, "server.endpoints", NULL,
                                "server.endpoints: bind %s: the host of a bind endpoint is *, an "
                                "IP address or an interface name (lo, eth0), not a host name: %s",
                                ep, instead);
    }
    return FL_OK;
}

/* The kernel caps a listen backlog at net.core.somaxconn: said by --check and the start. */
static void warn_backlog(fls_server *s)
{
    const int backlog = (int)s->opt.backlog;
    const int somax = fl_read_int_file("/proc/sys/net/core/somaxconn", 0);
    if (somax > 0 && backlog > somax)
        fl_log(&s->log, FL_LOG_WARN, "server.listen_backlog %d is cut to %d by the kernel "
               "(net.core.somaxconn): raise that (sysctl -w net.core.somaxconn=%d) for a fleet "
               "that connects at once", backlog, somax, backlog);
}

/* libflclient sends a Heartbeat once heartbeat_ms (1000 by default) passed without a message and
 * looks every heartbeat_ms / 2: an idle client on the defaults is heard about every 1-1.5 s. A
 * server.liveness_ms near that drops such clients for silence again and again (each comes back:
 * a reconnection, a new session, its download lost), and nothing else says why. */
#define CLIENT_DEFAULT_HEARTBEAT_MS 1000u

static void warn_liveness(fls_server *s)
{
    if (s->opt.liveness_ms >= 3 * CLIENT_DEFAULT_HEARTBEAT_MS)
        return;
    const char *origin = fls_options_origin(&s->opt, "server.liveness_ms");
    fl_log(&s->log, FL_LOG_WARN, "server.liveness_ms %u%s%s%s is under 3 times libflclient's "
           "default heartbeat (a Heartbeat after %u ms without a message): clients on the default "
           "will be dropped for silence and reconnect; give them heartbeat_ms (fl_client "
           "--heartbeat-ms) at most a third of it, or raise it", s->opt.liveness_ms,
           origin[0] ? " (" : "", origin, origin[0] ? ")" : "", CLIENT_DEFAULT_HEARTBEAT_MS);
}

/* path as one name for its file, to tell two spellings of the same file apart from two files:
 * the directory resolved (realpath), then the last component. A directory that does not resolve
 * (not there yet) is kept as written. */
static void canon_path(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX], real[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    const char *base = slash ? slash + 1 : path;
    snprintf(out, cap, "%s/%s", realpath(dir, real) ? real : dir, base);
}

/* 1 when paths a and b name one file: the same inode if both exist (a hard or symbolic link
 * too), else the same canonical name. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return fl_stat_same_file(&sa, &sb);
    char ca[PATH_MAX + 256], cb[PATH_MAX + 256];
    canon_path(a, ca, sizeof ca);
    canon_path(b, cb, sizeof cb);
    return strcmp(ca, cb) == 0;
}

/* The files the server writes (the checkpoint, its client-id journal and lock, the metrics) must
 * be none of the files it reads or writes for another purpose: "--checkpoint keys/server.secret"
 * replaced the server's secret key with the first checkpoint, a metrics file that is the
 * checkpoint lost every line, and "--config fl.yaml --checkpoint fl.yaml" replaced the
 * configuration with the first checkpoint (a metrics file there appended JSON to it: the next
 * start refused the file). Found by --check and before the start takes the checkpoint lock. */
static fl_status check_file_roles(fls_server *s, char *err, size_t errlen)
{
    enum { N = 7 };
    char ids[FLS_PATH_MAX + 16] = "", lock[FLS_PATH_MAX + 16] = "";
    if (s->opt.ckpt_path[0]) {
        snprintf(ids, sizeof ids, "%s%s", s->opt.ckpt_path, FLS_IDS_SUFFIX);
        snprintf(lock, sizeof lock, "%s.lock", s->opt.ckpt_path);
    }
    const int metrics_file = s->opt.metrics_path[0] && strcmp(s->opt.metrics_path, "-") != 0;
    const struct {
        const char *path, *key, *what;
        int written;
    } f[N] = {
        {s->opt.ckpt_path, "checkpoint.path", "the checkpoint", 1},
        {ids, "checkpoint.path", "the checkpoint's client-id journal", 1},
        {lock, "checkpoint.path", "the checkpoint's lock file", 1},
        {metrics_file ? s->opt.metrics_path : "", "run.metrics", "the metrics file", 1},
        {s->opt.secret_key_file, "server.secret_key_file", "the server's secret key", 0},
        {s->opt.allow_list, "server.allow_list", "the allow-list", 0},
        /* not a key: fls_options_origin names no origin for it */
        {s->opt.config_path, "--config", "the configuration file", 0},
    };
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            if (!f[i].path[0] || !f[j].path[0] || !(f[i].written || f[j].written) ||
                !strcmp(f[i].key, f[j].key) || !same_file(f[i].path, f[j].path))
                continue;
            return fls_options_errf(&s->opt, err, errlen, FL_ERR_CONFIG, f[i].key, f[j].key,
                                    "%s is both %s (%s %s) and %s (%s %s): one file cannot "
                                    "be both", f[i].path, f[i].what, f[i].key,
                                    f[i].key == f[0].key ? s->opt.ckpt_path : f[i].path,
                                    f[j].what, f[j].key, f[j].path);
        }
    return FL_OK;
}

static fl_status setup_socket(fls_server *s, char *err, size_t errlen)
{
    /* before any bind: a refused start leaves no endpoint of ours behind */
    for (uint32_t i = 0; i < s->opt.n_endpoints; i++) {
        if (strncmp(s->opt.endpoints[i], "ipc://", 6) == 0 && ipc_in_use(s->opt.endpoints[i])) {
            snprintf(err, errlen, "endpoint %s is in use by another process",
                     s->opt.endpoints[i]);
            return FL_ERR_TRANSPORT;
        }
    }
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    if (!s->router)
        goto zfail;
    /* No ZeroMQ heartbeats (ZMQ_HEARTBEAT_IVL) on the ROUTER: with them, libzmq 4.3.4 aborts the
     * process when a connection whose incoming queue is full ends while the reactor is busy for
     * longer than the interval ("Assertion failed: !_io_error", libzmq issues 3937, 4767, 4841;
     * test_reactor_flood_then_hangup), which any peer can bring about. Dead links are found
     * without them: the application's liveness timeout (server.liveness_ms) ends a silent
     * session, server.idle_connection_s then closes its connection, and TCP keepalive probes
     * (kernel-side) end a TCP link whose peer vanished. */
    const int one = 1, linger = 2000;
    const int ka_idle = 60, ka_intvl = 10, ka_cnt = 3;
    const int hwm = (int)s->opt.sndhwm;
    /* Messages libzmq queues from one connection before the reactor reads them: an honest client
     * has at most `credit` chunks, as many Acks and a few control messages in flight, while
     * libzmq's default (1000) let every peer that floods (no Hello needed) park 1000 frames in
     * the server's memory: 1000 connections x 3000 malformed 48 B frames took the RSS from 11 to
     * 474 MB. A full queue stops reading that peer's socket (TCP pushes back); nothing is lost. */
    const int rcvhwm = s->opt.credit > 8 ? (int)(4 * s->opt.credit) : 32;
    const int64_t maxmsg = (int64_t)s->opt.max_msg_bytes;
    /* libzmq's default backlog (100) dropped the connection attempts of a fleet that
     * reconnected at once: 8000 connections at once took 4.5-8.6 s to be acknowledged, 0.9 s at
     * 4096 (bench/bench_idle), the rest waiting for their kernels' SYN retries (1 s, 3 s, 7 s). */
    const int backlog = (int)s->opt.backlog;
    if (zmq_setsockopt(s->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) ||
        zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(s->router, ZMQ_TCP_KEEPALIVE, &one, sizeof one) ||
        zmq_setsockopt(s->router, ZMQ_TCP_KEEPALIVE_IDLE, &ka_idle, sizeof ka_idle) ||
        zmq_setsockopt(s->router, ZMQ_TCP_KEEPALIVE_INTVL, &ka_intvl, sizeof ka_intvl) ||
        zmq_setsockopt(s->router, ZMQ_TCP_KEEPALIVE_CNT, &ka_cnt, sizeof ka_cnt) ||
        zmq_setsockopt(s->router, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(s->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
        zmq_setsockopt(s->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(s->router, ZMQ_BACKLOG, &backlog, sizeof backlog))
        goto zfail;
    if (s->curve) {
        /* The ZAP handler must be bound before any connection is accepted. */
        s->zap = zmq_socket(s->ctx, ZMQ_REP);
        if (!s->zap || zmq_setsockopt(s->zap, ZMQ_LINGER, &linger, sizeof linger))
            goto zfail;
        if (zmq_bind(s->zap, ZAP_ENDPOINT) != 0) {
            snprintf(err, errlen, "%s: %s (another ZAP handler in this ZeroMQ context?)",
                     ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
            return FL_ERR_TRANSPORT;
        }
        const int rc = zmq_setsockopt(s->router, ZMQ_CURVE_SERVER, &one, sizeof one) ||
                       zmq_setsockopt(s->router, ZMQ_CURVE_SECRETKEY, s->sec_z85,
                                      FLS_Z85_LEN + 1) ||
                       zmq_setsockopt(s->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
        explicit_bzero(s->sec_z85, sizeof s->sec_z85);
        if (rc)
            goto zfail;
    }
    if (setup_monitor(s) != 0)
        goto zfail;
    for (uint32_t i = 0; i < s->opt.n_endpoints; i++) {
        /* libzmq takes an IPv6 address only with ZMQ_IPV6, which it reads at each bind: set for
         * the endpoints that name one, so that a wildcard endpoint stays IPv4's 0.0.0.0 as before. */
        char host[FLS_ENDPOINT_MAX];
        const int v6 = ep_host_kind(s->opt.endpoints[i], host, sizeof host) == EP_HOST_V6;
        if (zmq_setsockopt(s->router, ZMQ_IPV6, &v6, sizeof v6) != 0)
            goto zfail;
        if (zmq_bind(s->router, s->opt.endpoints[i]) != 0) {
            const int ze = zmq_errno();
            snprintf(err, errlen, "bind %s: %s%s", s->opt.endpoints[i], zmq_strerror(ze),
                     ze == ENODEV ? " (the host of a bind endpoint is *, an IP address or an "
                                    "interface name of this machine: lo, eth0)"
                     : ze == EADDRINUSE ? " (another process listens on that port, another "
                                          "fl_server perhaps: stop it, or give server.endpoints "
                                          "another port)"
                                        : "");
            /* The start fails: the socket files of the ipc:// endpoints bound so far go too
             * (libzmq leaves them; ipc_in_use made sure no live process owned them). */
            for (size_t j = 0; j < s->n_ep; j++)
                if (strncmp(s->ep[j], "ipc://", 6) == 0 && s->ep[j][6] != '@')
                    unlink(s->ep[j] + 6);
            s->n_ep = 0;
            return FL_ERR_TRANSPORT;
        }
        size_t len = FLS_ENDPOINT_MAX;
        if (zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, s->ep[s->n_ep], &len) != 0)
            memcpy(s->ep[s->n_ep], s->opt.endpoints[i], FLS_ENDPOINT_MAX);
        struct stat *sk = &s->ep_sock[s->n_ep];
        if (strncmp(s->ep[s->n_ep], "ipc://", 6) != 0 || s->ep[s->n_ep][6] == '@' ||
            lstat(s->ep[s->n_ep] + 6, sk) != 0 || !S_ISSOCK(sk->st_mode))
            memset(sk, 0, sizeof *sk);
        s->n_ep++;
    }
    /* said once all are bound: a start that fails never says "listening" */
    for (size_t j = 0; j < s->n_ep; j++)
        fl_log(&s->log, FL_LOG_INFO, "listening on %s", s->ep[j]);
    return FL_OK;
zfail:
    snprintf(err, errlen, "ZeroMQ: %s", zmq_strerror(zmq_errno()));
    return FL_ERR_TRANSPORT;
}

/* fls_core_forget_unknown's question: is key bound in the table? */
static int key_bound(void *user, uint32_t key)
{
    return bind_find(user, key) != NULL;
}

/* The bindings of the journal beside the checkpoint (CHECKPOINT.ids), with or without --resume:
 * whose id is whose is about devices, not about one run. Ids of keys off the allow-list (or
 * without a key, under CURVE) are released as a SIGHUP would release them; server.max_clients and
 * server.ids_per_key hold (the least recently seen go first). server_init then rewrites the file
 * with what was kept (a torn last record is gone with it) once the endpoints are bound (a start
 * that fails makes no file), and keeps it open for appending. A resumed run also
 * forgets the afd-multi states its checkpoint holds for keys the table does not hold: their ids
 * were forgotten after that checkpoint, or before it without the engine hearing of it. */
static fl_status ids_load(fls_server *s, int resumed, char *err, size_t errlen)
{
    const size_t pl = strlen(s->opt.ckpt_path) + sizeof FLS_IDS_SUFFIX;
    if (!(s->ids_path = malloc(pl)))
        return FL_ERR_NOMEM;
    snprintf(s->ids_path, pl, "%s%s", s->opt.ckpt_path, FLS_IDS_SUFFIX);
    struct stat sb;
    if (stat(s->ids_path, &sb) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "client ids %s: %s", s->ids_path, strerror(errno));
            return FL_ERR_IO;
        }
        fl_log(&s->log, FL_LOG_INFO, "client ids %s: no file yet%s", s->ids_path,
               s->check_only ? "" : ": made once the endpoints are bound");
        return FL_OK;
    }
    char *text = NULL;
    size_t len = 0;
    char why[512];
    fl_status st = fl_file_read_regular(s->ids_path, (size_t)1 << 30, &text, &len, why,
                                        sizeof why);
    if (st != FL_OK) {
        snprintf(err, errlen, "client ids: %s", why);
        return st;
    }
    fls_ids t;
    st = fls_ids_parse(&t, (const uint8_t *)text, len, s->ids_path, why, sizeof why);
    free(text);
    if (st != FL_OK) {
        /* a damaged file's reason starts with "PATH:LINE: " */
        if (st == FL_ERR_CHECKPOINT_FORMAT)
            snprintf(err, errlen, "client ids %s (restore the file from a backup, or move it "
                     "aside: the server then forgets which key registered which id)", why);
        else if (st == FL_ERR_CHECKPOINT_NEWER)
            snprintf(err, errlen, "client ids %s (the release that wrote it, or a later one, "
                     "reads it; or move it aside: the server then forgets which key registered "
                     "which id)", why);
        else
            snprintf(err, errlen, "client ids %s: %s", s->ids_path, why[0] ? why : fl_strerror(st));
        return st;
    }
    if (t.torn_bytes)
        fl_log(&s->log, FL_LOG_WARN, "client ids %s: its last record was cut short (%zu bytes: "
               "a write that a crash interrupted, its Hello never answered): ignored",
               s->ids_path, t.torn_bytes);
    /* From the newest back: what server.max_clients and server.ids_per_key let stay. */
    unsigned char *keep = t.n ? calloc(t.n, 1) : NULL;
    uint32_t *per = s->curve && s->allow.n ? calloc(s->allow.n, sizeof *per) : NULL;
    if ((t.n && !keep) || (s->curve && s->allow.n && !per)) {
        free(keep);
        free(per);
        fls_ids_clear(&t);
        return FL_ERR_NOMEM;
    }
    size_t kept = 0, released = 0, over = 0;
    for (size_t k = t.n; k-- > 0;) {
        const fls_ids_rec *r = &t.r[k];
        uint32_t row = NIL;
        if (s->curve) {
            const uint8_t *hit = r->has_pub && s->allow.n
                                     ? bsearch(r->pub, s->allow.keys, s->allow.n, 32, key32_cmp)
                                     : NULL;
            if (!hit) {
                if (++released <= 10)
                    fl_log(&s->log, FL_LOG_INFO, "client id %s released: %s", r->id,
                           r->has_pub ? "its key left the allow-list"
                                      : "bound without a key (plain text)");
                continue;
            }
            row = (uint32_t)((size_t)(hit - (const uint8_t *)s->allow.keys) / 32);
        }
        if (kept >= s->opt.max_clients ||
            (row != NIL && s->opt.ids_per_key && per[row] >= s->opt.ids_per_key)) {
            over++;
            continue;
        }
        keep[k] = 1;
        kept++;
        if (row != NIL)
            per[row]++;
    }
    free(per);
    if (released > 10)
        fl_log(&s->log, FL_LOG_INFO, "%zu more client ids released", released - 10);
    const double now = fl_time_mono_s();
    s->ids_mute = 1;
    for (size_t k = 0; k < t.n && st == FL_OK; k++)
        if (keep[k] && !bind_add(s, t.r[k].key, t.r[k].id, t.r[k].has_pub ? t.r[k].pub : NULL,
                                 now))
            st = FL_ERR_NOMEM;
    s->ids_mute = 0;
    free(keep);
    const size_t records = t.records;
    fls_ids_clear(&t);
    if (st != FL_OK)
        return st;
    fl_log(&s->log, FL_LOG_INFO, "client ids %s: %zu id%s %sbound as before the restart "
           "(%zu record%s read, %zu released, %zu over server.max_clients or "
           "server.ids_per_key)", s->ids_path, kept, kept == 1 ? "" : "s",
           s->check_only ? "would be " : "", records, records == 1 ? "" : "s", released, over);
    if (over)
        fl_log(&s->log, FL_LOG_WARN, "client ids %s: %zu id%s dropped (the least recently "
               "seen): more than server.max_clients (%u) or server.ids_per_key (%u) allow",
               s->ids_path, over, over == 1 ? "" : "s", s->opt.max_clients, s->opt.ids_per_key);
    if (resumed) {
        size_t dropped = 0;
        if (fls_core_forget_unknown(s->core, key_bound, s, &dropped) == FL_OK && dropped)
            fl_log(&s->log, FL_LOG_INFO, "%zu afd-multi client states of the checkpoint "
                   "dropped: their ids are no longer bound", dropped);
    }
    return FL_OK; /* written (server_init: ids_rewrite) once the endpoints are bound */
}

/* A write at start that failed for a cause that may pass without anyone's help: a full file
 * system, a used-up quota, a device error, a moment without memory or descriptors. The start then
 * fails with FL_ERR_IO_TRANSIENT, not FL_ERR_IO, so that the daemon's supervisor tries it again
 * (fl_server exits 1 for it, which systemd's Restart=on-failure restarts; 3 waits for the
 * operator). A path that is wrong (EACCES, EROFS, ENOENT, ENOTDIR, ...) does need the operator. */
static int io_transient(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case ENOMEM:
    case ENOBUFS:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case EINTR:
    case ETIMEDOUT:
        return 1;
    default:
        return 0;
    }
}

static fl_status io_status(int e)
{
    return io_transient(e) ? FL_ERR_IO_TRANSIENT : FL_ERR_IO;
}

/* The words after a start-up error whose cause may pass (io_transient), "" otherwise. */
static const char *io_may_pass(int e)
{
    return io_transient(e) ? " (a cause that may pass: a full disk, a used-up quota, a device "
                             "error; the start may be tried again)" : "";
}

/* Whether checkpoint.path's directory takes files: a probe file made, written a few bytes and
 * removed (fl_parent_writable; a full disk still makes an empty file). FL_OK, or the error (said
 * in err: "cannot create files in its directory", "cannot write ..." for a cause that may pass). */
static fl_status probe_ckpt_dir(fls_server *s, char *err, size_t errlen)
{
    /* The longest name the server makes beside checkpoint.path, its journal's temporary
     * (fl_atomic_open of CHECKPOINT.ids), must fit the directory's names: one name of 241 to
     * 250 bytes passed --check, and the start that --check said would work failed on the
     * journal (exit 3, "File name too long"), until 2026-12-07. */
    static const char longest[] = ".ids.tmp.XXXXXX";
    char dir[PATH_MAX];
    const char *slash = strrchr(s->opt.ckpt_path, '/');
    const size_t base = strlen(slash ? slash + 1 : s->opt.ckpt_path);
    long name_max;
    if (fl_path_dir(s->opt.ckpt_path, dir, sizeof dir) == 0 &&
        (name_max = pathconf(dir, _PC_NAME_MAX)) > 0 &&
        base + sizeof longest - 1 > (size_t)name_max)
        return fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                                "checkpoint.path %s: its file name (%zu bytes) is too long: the "
                                "server makes FILE%s beside it, and its directory takes names "
                                "of at most %ld bytes; give it a name of at most %ld bytes",
                                s->opt.ckpt_path, base, longest, name_max,
                                name_max - (long)(sizeof longest - 1));
    const int e = fl_parent_writable(s->opt.ckpt_path);
    if (!e)
        return FL_OK;
    char hint[DENIED_HINT_MAX] = "";
    if (e == ENOENT)
        missing_hint(hint, sizeof hint, s->opt.ckpt_path, NULL);
    else if (e == EACCES)
        denied_hint(hint, sizeof hint, s->opt.ckpt_path, 1, 0);
    return fls_options_errf(&s->opt, err, errlen, io_status(e), "checkpoint.path", NULL,
                            "checkpoint.path %s: cannot %s files in its directory: %s%s%s",
                            s->opt.ckpt_path, io_transient(e) ? "write" : "create", strerror(e),
                            hint, io_may_pass(e));
}

/* checkpoint.path and its journal are replaced by a rename at every write; in a directory with
 * the sticky bit (/tmp) only the owner of a file there (or of the directory) may rename over it.
 * One that another user's run left (a smoke test run as root, a backup copied back by root)
 * passed --check, and the start failed after the bind with "client ids PATH not rewritten: cannot
 * rename the temporary file onto it: Operation not permitted" (or, without .ids, the first
 * checkpoint stopped the run a round later), naming neither the owner nor the sticky bit, until
 * 2026-12-07. FL_OK, or FL_ERR_IO said in err. Root (CAP_FOWNER) may, and is let through. */
static fl_status sticky_theirs(fls_server *s, char *err, size_t errlen)
{
    const uid_t me = geteuid();
    char dir[PATH_MAX], p[FLS_PATH_MAX + 8];
    struct stat d, f;
    if (me == 0 || fl_path_dir(s->opt.ckpt_path, dir, sizeof dir) != 0 || stat(dir, &d) != 0 ||
        !(d.st_mode & S_ISVTX) || d.st_uid == me)
        return FL_OK;
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s%s", s->opt.ckpt_path, k ? FLS_IDS_SUFFIX : "");
        if (lstat(p, &f) != 0 || f.st_uid == me)
            continue;
        char owner[320], self[320];
        user_of(owner, sizeof owner, f.st_uid);
        user_of(self, sizeof self, me);
        return fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                                "checkpoint.path %s: %s belongs to %s, in %s, a directory with "
                                "the sticky bit (mode %04o), where only a file's owner may "
                                "replace it, as each write of it does, and fl_server runs as %s: "
                                "give this server a checkpoint.path of its own, or have the "
                                "owner remove the file", s->opt.ckpt_path, p, owner, dir,
                                (unsigned)(d.st_mode & 07777), self);
    }
    return FL_OK;
}

/* The owner of path when that is another user than this process's, else -1. */
static long other_owner(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_uid != geteuid() ? (long)sb.st_uid : -1;
}

static fl_status other_users_lock(const fls_server *s, const char *lock, long owner, char *err,
                                  size_t errlen)
{
    return fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                            "checkpoint.path %s: %s was made by another user's fl_server (uid "
                            "%ld), running or not: the path is theirs; give this one a "
                            "checkpoint.path of its own", s->opt.ckpt_path, lock, owner);
}

/* The checkpoint lock files this process holds (device and inode): a second server of the same
 * process on a held path is told that it is its own; the pid in the lock file cannot tell (a
 * server in another container sharing the volume may have this pid in its own namespace). */
static pthread_mutex_t g_held_mu = PTHREAD_MUTEX_INITIALIZER;
static struct held_lock {
    dev_t dev;
    ino_t ino;
} g_held[64];
static size_t g_n_held;

/* fd's file joins (on 1) or leaves (on 0) the held locks. */
static void held_lock_mark(int fd, int on)
{
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0)
        return;
    pthread_mutex_lock(&g_held_mu);
    size_t i = 0;
    while (i < g_n_held && !(g_held[i].dev == sb.st_dev && g_held[i].ino == sb.st_ino))
        i++;
    if (on && i == g_n_held && g_n_held < sizeof g_held / sizeof *g_held)
        g_held[g_n_held++] = (struct held_lock){sb.st_dev, sb.st_ino};
    else if (!on && i < g_n_held)
        g_held[i] = g_held[--g_n_held];
    pthread_mutex_unlock(&g_held_mu);
}

static int held_lock_is_ours(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    pthread_mutex_lock(&g_held_mu);
    int ours = 0;
    for (size_t i = 0; i < g_n_held && !ours; i++)
        ours = g_held[i].dev == sb.st_dev && g_held[i].ino == sb.st_ino;
    pthread_mutex_unlock(&g_held_mu);
    return ours;
}

/* One server per checkpoint: two that wrote the same files would interleave their rounds and
 * their client ids. CHECKPOINT.lock is flock'd for the server's life (a crash releases it; the
 * file stays, harmless), taken before any other file is read or written. Once it is held, the
 * temporaries that a killed server left behind (CHECKPOINT.tmp.*, CHECKPOINT.ids.tmp.*: a write
 * cut short before its rename) are removed: no other process can be writing them. A lock file
 * that cannot be made is said as the probe of the directory says it (a directory missing, not
 * writable, full). --check takes no lock: it reads, and may run beside the server it checks. */
static fl_status ckpt_lock(fls_server *s, char *err, size_t errlen)
{
    const size_t pl = strlen(s->opt.ckpt_path) + sizeof ".lock";
    char *p = malloc(pl);
    if (!p)
        return FL_ERR_NOMEM;
    snprintf(p, pl, "%s.lock", s->opt.ckpt_path);
    long holder = 0, owner = -1;
    const int e = fl_lock_path(p, &s->lock_fd, &holder);
    fl_status st = FL_OK;
    if (e == EWOULDBLOCK) {
        char pid[48] = "";
        if (holder)
            snprintf(pid, sizeof pid, " (pid %ld)", holder);
        /* The holder is this very process when a program embeds libflserver and makes a second
         * server on a path its first still holds: "another fl_server (pid <our own>)" would
         * send its author looking for a process that does not exist. Known by the held locks'
         * registry, not by the pid (see g_held). */
        const int self = held_lock_is_ours(p);
        st = fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                              self ? "checkpoint.path %s: in use by another server of this "
                                     "process%s, which holds %s; free it first "
                                     "(fls_server_free), or give this one another checkpoint.path"
                                   : "checkpoint.path %s: in use by another fl_server%s, which "
                                     "holds %s; stop it first, or give this one another "
                                     "checkpoint.path",
                              s->opt.ckpt_path, self ? "" : pid, p);
    } else if (e == ENOLCK || e == EOPNOTSUPP) {
        /* A file system without locks (an NFS mount without its lock daemon): the server runs as
         * it did before it locked, unguarded, and removes no temporary (one may be another
         * server's, mid-write). */
        fl_log(&s->log, FL_LOG_WARN, "checkpoint.path %s: %s cannot be locked (%s): a second "
               "server given this path would not be stopped", s->opt.ckpt_path, p, strerror(e));
    } else if ((e == EACCES || e == EPERM) && (owner = other_owner(p)) >= 0) {
        /* another user's server made it (the smoke configuration's fixed /tmp path, say): that
         * server may be gone, but its lock file stays, and it is not this user's to take */
        st = other_users_lock(s, p, owner, err, errlen);
    } else if (e) {
        /* the directory's own fault first (missing, read-only, full: what --check says too) */
        st = probe_ckpt_dir(s, err, errlen);
        if (st == FL_OK && e == ELOOP)
            st = fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                                  "checkpoint.path %s: %s is a symbolic link, which the server "
                                  "does not follow (it would write over the file the link "
                                  "names): remove it", s->opt.ckpt_path, p);
        else if (st == FL_OK)
            st = fls_options_errf(&s->opt, err, errlen, io_status(e), "checkpoint.path", NULL,
                                  "checkpoint.path %s: cannot lock %s: %s%s", s->opt.ckpt_path,
                                  p, strerror(e), io_may_pass(e));
    } else {
        held_lock_mark(s->lock_fd, 1);
        s->lock_path = p; /* lock_check's, once a second for the server's life */
        p = NULL;
        char ids[FLS_PATH_MAX + sizeof FLS_IDS_SUFFIX];
        snprintf(ids, sizeof ids, "%s%s", s->opt.ckpt_path, FLS_IDS_SUFFIX);
        const size_t n = fl_atomic_sweep(s->opt.ckpt_path) + fl_atomic_sweep(ids);
        if (n)
            fl_log(&s->log, FL_LOG_INFO, "checkpoint.path %s: removed %zu temporary file%s that "
                   "an interrupted write left behind", s->opt.ckpt_path, n, n == 1 ? "" : "s");
    }
    free(p);
    return st;
}

/* The lock guards the checkpoint only while its file is at its path. One removed under a running
 * server (a cleanup of "stale" .lock files; systemd-tmpfiles' age limit in /tmp, where the smoke
 * configuration keeps its checkpoint: the file is not touched after the start) let a second
 * server make and lock a new file there, and both ran on the same checkpoint and client ids
 * (until 2026-12-07). Checked once a second (run_step): a lock file gone, or another file in its
 * place, is made (or opened) and locked again. When another server locked it first, this run
 * stops before it writes the checkpoint again: FL_ERR_IO, said. A path where no lock file can be
 * made now (its directory gone) is left to the next checkpoint, which says it. The path was made
 * when the lock was taken (ckpt_lock): the check allocates nothing, and so works out of memory
 * too (it built the path anew each second until 2026-12-07, and skipped the check when that
 * allocation failed). */
static fl_status lock_check(fls_server *s)
{
    struct stat held, there;
    const char *p = s->lock_path;
    if (!p || fstat(s->lock_fd, &held) != 0)
        return FL_OK;
    if (lstat(p, &there) == 0 && fl_stat_same_file(&held, &there))
        return FL_OK;
    int fd = -1;
    long holder = 0;
    const int e = fl_lock_path(p, &fd, &holder);
    fl_status st = FL_OK;
    if (e == 0) {
        held_lock_mark(s->lock_fd, 0);
        close(s->lock_fd);
        s->lock_fd = fd;
        held_lock_mark(fd, 1);
        fl_log(&s->log, FL_LOG_WARN, "checkpoint.path %s: %s was removed or replaced while this "
               "server ran: made and locked again. Leave it in place, running or not: it is what "
               "keeps a second server off this checkpoint", s->opt.ckpt_path, p);
    } else if (e == EWOULDBLOCK) {
        char pid[48] = "";
        if (holder)
            snprintf(pid, sizeof pid, " (pid %ld)", holder);
        fl_log(&s->log, FL_LOG_ERROR, "checkpoint.path %s: %s was removed or replaced while this "
               "server ran, and another fl_server%s holds it now: two servers on one "
               "checkpoint. This one stops without writing it again; stop the other one, then "
               "restart this one with --resume", s->opt.ckpt_path, p, pid);
        st = FL_ERR_IO;
    }
    return st;
}

/* CHECKPOINT.ids holds the bindings only while its file is at its path: one removed under a
 * running server (by hand, or by systemd-tmpfiles' age limit in /tmp: a file the server only
 * appends to when a new id comes) took every record appended after it into the unlinked file,
 * and a restart before the next rewrite found no file, and let any allowed key take any id,
 * until 2026-12-07. One replaced (a backup put back, an edit saved by rename) was rewritten from
 * the table at the next rewrite anyway, but took the appends meanwhile. One edited in place (an
 * operator's `>>` or `truncate`: same file) was not noticed either until 2026-12-07: a record
 * appended by hand was read at the next start, and a truncated file then took the server's next
 * record after its cut (a first line gone fails the start). Its size against what this server
 * wrote to it (ids_size) shows both, with no more than the fstat the check makes anyway; an
 * edit that keeps the size (bytes overwritten in place) did not show until 2026-12-07, and shows
 * in its modification time against the one after the server's last write (ids_mtime; within a
 * coarse file system's tick of that write it does not: ids_as_left). An append makes the same
 * comparison first, so that its own time does not cover an edit before it. Checked once a second
 * (run_step, after lock_check: never when another server holds the checkpoint): the file is
 * rewritten from the table, with a warning. The table is what the server goes by while it runs;
 * to let every id register afresh, the file is removed between runs (README). A rewrite that
 * fails (logged) is left to the next change of the table (ids_bad), not tried every second. */
static void ids_check(fls_server *s)
{
    struct stat held, there;
    if (!s->ids_path || s->ids_fd < 0 || s->ids_bad || s->check_only ||
        fstat(s->ids_fd, &held) != 0)
        return;
    const int there_ok = lstat(s->ids_path, &there) == 0 && fl_stat_same_file(&held, &there);
    if (there_ok && ids_as_left(s, &held))
        return;
    ids_edited_say(s, there_ok, &held);
    if (ids_rewrite(s) != FL_OK)
        s->ids_bad = 1;
}

/* --check takes no lock, but says what the start would of a lock file another user's server
 * made (the start cannot open it for writing, and refuses it: ckpt_lock). */
static fl_status ckpt_lock_probe(fls_server *s, char *err, size_t errlen)
{
    char p[FLS_PATH_MAX + 8];
    snprintf(p, sizeof p, "%s.lock", s->opt.ckpt_path);
    long owner;
    if (access(p, F_OK) == 0 && access(p, W_OK) != 0 && (errno == EACCES || errno == EPERM) &&
        (owner = other_owner(p)) >= 0)
        return other_users_lock(s, p, owner, err, errlen);
    return FL_OK;
}

static void say_inert(void *u, const char *key, const char *origin, const char *why)
{
    fls_server *s = u;
    fl_log(&s->log, FL_LOG_WARN, "%s (%s) has no effect here: %s", key, origin, why);
}

/* The bytes of an evaluation set in memory: its samples (floats or tokens), labels and users. */
static double dataset_bytes(const flm_dataset *d)
{
    if (!d)
        return 0.0;
    const double per = d->kind == FLM_DATA_TOKENS ? sizeof *d->tokens : sizeof *d->x;
    return (double)d->N * ((double)d->sample_len * per + sizeof *d->y +
                           (d->user ? sizeof *d->user : 0.0));
}

/* The capacity fl_grow reaches for n entries, from first (doubling), and the slots of a power-of-two
 * index (slots_new, fl_index_new: from 64) of at least n. */
static double grown_to(double n, double first)
{
    double c = first;
    while (c < n)
        c *= 2.0;
    return c;
}

/* The most the reactor's own records of clients may hold, in bytes, with server.max_clients (M)
 * ids bound, each with a live session (an id has one at most: a Hello of it on another connection
 * ends the old one). Per id: its binding (the slot table, grown by doubling), its place in the
 * index (at most a quarter full) and its text. Per session: its record (sess, its due time) in a
 * table that also holds the ended sessions not yet compacted (fewer than a quarter of it, or
 * COMPACT_MIN, and those of one batch of BATCH_IN messages), grown by doubling, the routing id
 * and key indexes, and its copy of the id's text. An id's text is counted at its bound
 * (FLS_IDS_ID_MAX: the wire's limit for a string): the server cannot know its fleet's. Not
 * counted, being bounded by other things than the configuration: the table of connections by
 * descriptor number (RLIMIT_NOFILE) and the allow-list's rows (its file). */
static double records_bytes(const fls_server *s)
{
    const double m = (double)s->opt.max_clients;
    const double text = FLS_IDS_ID_MAX + 1.0;
    const double ids = grown_to(m, 64.0) * sizeof(binding) +
                       grown_to(4.0 * m + 6.0, 64.0) * sizeof(uint32_t) + m * text;
    const double table = grown_to(ceil(m * 4.0 / 3.0) + COMPACT_MIN + BATCH_IN, 64.0);
    const double sessions = table * (sizeof(sess) + sizeof(double)) +
                            grown_to(2.0 * table + 2.0, 64.0) * sizeof(int32_t) +
                            grown_to(2.0 * m + 2.0, 64.0) * sizeof(int32_t) + m * text;
    return ids + sessions;
}

/* Warns at start when the server's memory at a round's peak may pass what the machine can give
 * now: the round engine's buffers as it counts them (fls_core_memory_bytes: the model, the server
 * optimizer's state, the exact accumulator or the robust modes' kept updates, upload_slots + 1
 * staging buffers, the last for committing an update buffered encoded, a shared Task's encoded
 * chunks and the round's selected clients), the state it keeps for each of up to
 * server.max_clients clients (fls_core_client_bytes: afd-multi's maps), the reactor's own records
 * of as many clients' sessions and ids (records_bytes), the evaluation's model and
 * data, the buffer a Task's chunk is encoded into and, with checkpoint.path, the snapshot of the
 * model and optimizer state kept for the next checkpoint (refreshed in place,
 * fls_core_checkpoint_update, and written from where it lies: no other copy). Nothing checked it:
 * 4096 slots of a 5M-parameter model (82 GB) started silently and were found by the OOM killer in
 * the middle of a round. Until 2026-12-02 the figure was 16 B a parameter plus 4 a slot: it left
 * out the optimizer's state (8 B for fedadam) and the checkpoint's copies (three at the peak then:
 * the old snapshot and the new at a round's end, or the snapshot and its serialised bytes grown by
 * doubling at a write), and counted an accumulator the robust modes do not have; then it left out
 * the Task cache, the evaluation, the chunk buffer and the clients' state
 * (test_memory_need_counts_the_peak holds the figure to a run's real allocations), and until
 * 2026-12-02 the reactor's records of sessions and ids (up to 4.3 KB a client, 426 MB at
 * server.max_clients' default of 100000: test_memory_sessions_counted). Updates buffered encoded (fls_core.h) need no place here: the
 * reactor hands the engine chunks only from the upload slots' holders, so each update that
 * receives chunks has a staging buffer of its own. Called once
 * the evaluation set is loaded, against the memory available before the round engine was made
 * (s->mem_have). A warning, not a refusal: the slots fill only as uploads overlap,
 * and the memory free now is not what it will be. */
static void warn_memory(fls_server *s)
{
    const double n = (double)fls_core_arch(s->core)->n_params;
    const double slots = (double)s->opt.upload_slots;
    const int robust = s->ccfg.agg.mode != FLS_AGG_MEAN;
    const double kept = robust ? (double)fls_agg_updates_kept(&s->ccfg.agg) : 0.0;
    size_t state = 0;
    const double core = (double)fls_core_memory_bytes(s->core, &state);
    const int ckpt = s->opt.ckpt_path[0] != 0;
    const double eval = dataset_bytes(s->eval_ds) +
                        (s->eval_model ? (double)flm_model_bytes(s->eval_model) : 0.0);
    const double clients = (double)s->opt.max_clients * (double)fls_core_client_bytes(s->core);
    const double records = records_bytes(s);
    const double need = core + (ckpt ? (double)state : 0.0) + eval + clients + records +
                        (double)s->chunk_cap;
    const double opt_b = ((double)state - 4.0 * n) / n; /* the optimizer's bytes a parameter */
    char opt_part[64] = "";
    if (opt_b > 0.0)
        snprintf(opt_part, sizeof opt_part, ", the server optimizer's state (%.0f B)", opt_b);
    /* measured before the buffers above were allocated (server_init): measured now, it would
     * count the snapshot, the evaluation and the engine's filled buffers twice, once in need and
     * once as memory no longer available */
    const double have = s->mem_have, total = s->mem_total;
    if (have <= 0.0 || need <= have)
        return;
    char robust_part[160] = "", more[512] = "";
    const int per_client = clients + records >= 1e6; /* named in `more`: what max_clients lowers */
    if (robust)
        snprintf(robust_part, sizeof robust_part, ", %.0f updates the robust aggregation keeps "
                 "(aggregation.max_updates)", kept);
    int at = 0;
    if (eval >= 1e6)
        at = snprintf(more, sizeof more, "; %.1f MB for the evaluation's model and data",
                      eval / 1e6);
    if (clients >= 1e6 && at >= 0 && (size_t)at < sizeof more)
        at += snprintf(more + at, sizeof more - (size_t)at, "; %.1f MB for what is kept of up "
                       "to %u clients (server.max_clients)", clients / 1e6, s->opt.max_clients);
    if (records >= 1e6 && at >= 0 && (size_t)at < sizeof more)
        snprintf(more + at, sizeof more - (size_t)at, "; %.1f MB for the server's records of the "
                 "sessions and ids of up to %u clients (server.max_clients; an id counted at its "
                 "%d-byte bound)", records / 1e6, s->opt.max_clients, FLS_IDS_ID_MAX);
    fl_log(&s->log, FL_LOG_WARN, "at a round's peak this server may need %.1f GB for the "
           "model's %.0f parameters (the model%s%s, a staging buffer for each of %.0f upload "
           "slot%s (server.upload_slots) and one more%s%s; 4 B a parameter each)%s, more than the "
           "%.1f GB this machine has available now (of %.1f GB): lower server.upload_slots%s%s",
           need / 1e9, n, opt_part, robust ? "" : ", its accumulator (8 B)", slots,
           slots == 1 ? "" : "s", robust_part, ckpt ? ", the checkpoint's snapshot" : "", more,
           have / 1e9, total / 1e9,
           !robust ? "" : per_client ? ", aggregation.max_updates" : " or aggregation.max_updates",
           per_client ? " or server.max_clients" : "");
}

static fl_status server_init(fls_server *s, char *err, size_t errlen)
{
    char why[1024];
    fl_status st = (fl_status)fls_options_validate(&s->opt, why, sizeof why);
    if (st != FL_OK) {
        snprintf(err, errlen, "%s", why);
        return st;
    }
    fls_options_inert(&s->opt, say_inert, s);
    if ((st = check_endpoints(s, err, errlen)) != FL_OK)
        return st;
    if ((st = check_file_roles(s, err, errlen)) != FL_OK)
        return st;
    warn_backlog(s);
    warn_liveness(s);
    /* One server per checkpoint: the lock is taken before any other file is read or written (the
     * secret key, the probe of the directory below), so that a second server stops at once. A
     * directory there gets no lock file beside it. */
    if (s->opt.ckpt_path[0] && !s->check_only) {
        struct stat sb;
        if (stat(s->opt.ckpt_path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                                    "checkpoint.path %s: is a directory", s->opt.ckpt_path);
        if ((st = ckpt_lock(s, err, errlen)) != FL_OK)
            return st;
    } else if (s->opt.ckpt_path[0] && (st = ckpt_lock_probe(s, err, errlen)) != FL_OK) {
        return st;
    }
    s->curve = !s->opt.insecure;
    if (!s->curve) {
        /* where it was set: the flag, or the file's line (fl_server.smoke.yaml's was named as
         * --insecure); a library host's fls_options_set leaves no origin */
        const char *origin = fls_options_origin(&s->opt, "server.insecure");
        fl_log(&s->log, FL_LOG_WARN,
               "server.insecure%s%s%s: CURVE is off; traffic is plain text and any client may join",
               origin[0] ? " (" : "", origin, origin[0] ? ")" : "");
        /* keys set up for CURVE and then left unused by a --insecure on the command line */
        const int k = s->opt.secret_key_file[0] != 0, a = s->opt.allow_list[0] != 0;
        if (k || a)
            fl_log(&s->log, FL_LOG_WARN, "--insecure: %s not used (CURVE's settings)",
                   k && a ? "server.secret_key_file and server.allow_list are"
                   : k    ? "server.secret_key_file is"
                          : "server.allow_list is");
    }
    else if (!zmq_has("curve")) {
        snprintf(err, errlen, "libzmq was built without CURVE");
        return FL_ERR_UNSUPPORTED;
    }
    if (s->curve && (st = load_key(s, err, errlen)) != FL_OK)
        return st;
    s->lim = flp_limits_default();
    s->lim.max_msg_bytes = (size_t)s->opt.max_msg_bytes;
    s->ccfg = fls_options_core_config(&s->opt);
    s->ccfg.log = s->log;
    s->ccfg.agg.log = s->log;
    s->ccfg.client_name = client_name;
    s->ccfg.client_name_user = s;
    s->ccfg.agg.max_open = (int)s->opt.upload_slots; /* one staging buffer per upload slot */
    /* What the machine can give before this server holds any of what warn_memory counts (the
     * engine's buffers, the snapshot, the evaluation), which it weighs once they are known. */
    s->mem_have = fl_mem_available(&s->mem_total);
    if ((st = fls_core_new(&s->ccfg, &s->core)) != FL_OK) {
        snprintf(err, errlen, "round engine: %s", fl_strerror(st));
        return st == FL_ERR_NOMEM ? st : FL_ERR_CONFIG;
    }
    /* random, never 0 (0 means "not told" on the wire); a resumed checkpoint's replaces it */
    fls_core_set_run_id(s->core, fl_entropy_u64());
    int resumed = 0;
    if (s->opt.ckpt_path[0]) {
        /* Found now rather than at the first checkpoint, rounds of work later (under the lock,
         * taken above, when this is a start). */
        if ((st = probe_ckpt_dir(s, err, errlen)) != FL_OK ||
            (st = sticky_theirs(s, err, errlen)) != FL_OK)
            return st;
        /* Looked at under the lock: the server that held it until a moment ago may have written
         * its first checkpoint since, which a fresh run would overwrite. */
        struct stat sb;
        const int exists = stat(s->opt.ckpt_path, &sb) == 0;
        if (exists && S_ISDIR(sb.st_mode))
            return fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                                    "checkpoint.path %s: is a directory", s->opt.ckpt_path);
        /* A FIFO would block the resume's read for good; a device is no checkpoint either. */
        if (exists && !S_ISREG(sb.st_mode))
            return fls_options_errf(&s->opt, err, errlen, FL_ERR_IO, "checkpoint.path", NULL,
                                    "checkpoint.path %s: %s, not a regular file",
                                    s->opt.ckpt_path, fl_mode_what(sb.st_mode));
        if (s->opt.resume && exists) {
            st = fls_core_restore_file(s->core, s->opt.ckpt_path);
            if (st != FL_OK) {
                const int damaged = st == FL_ERR_CHECKPOINT_FORMAT ||
                                    st == FL_ERR_CHECKPOINT_CHECKSUM;
                snprintf(err, errlen, "resume from %s: %s%s", s->opt.ckpt_path, fl_strerror(st),
                         damaged ? " (restore it from a backup, or move it aside to start a fresh "
                                   "run)"
                         : st == FL_ERR_CHECKPOINT_NEWER
                             ? " (the release that wrote it, or a later one, resumes it; or move "
                               "it aside to start a fresh run with this one)"
                             : "");
                return st;
            }
            fl_log(&s->log, FL_LOG_INFO, "%s %s at round %llu (model version %llu, run %016llx)",
                   s->check_only ? "would resume from" : "resumed from", s->opt.ckpt_path,
                   (unsigned long long)fls_core_round(s->core),
                   (unsigned long long)fls_core_model_version(s->core),
                   (unsigned long long)fls_core_run_id(s->core));
            resumed = 1;
            s->resumed = 1;
            s->ckpt_round = fls_core_round(s->core); /* what the file holds, for the stop lines */
            /* the core ends such a run at once ("run done: R rounds"), which alone read as a
             * run that trained */
            const uint32_t limit = s->opt.core.max_rounds;
            if (limit && s->ckpt_round >= limit)
                fl_log(&s->log, FL_LOG_WARN, "run.rounds (%u) was already reached: the "
                       "checkpoint has %llu round%s done; nothing to train (raise run.rounds "
                       "above %llu to continue)", limit, (unsigned long long)s->ckpt_round,
                       s->ckpt_round == 1 ? "" : "s", (unsigned long long)s->ckpt_round);
        } else if (s->opt.resume) {
            fl_log(&s->log, FL_LOG_INFO, "no checkpoint at %s yet: %s a fresh run",
                   s->opt.ckpt_path, s->check_only ? "would start" : "starting");
        } else if (exists) {
            fl_log(&s->log, FL_LOG_WARN, "%s exists and will be overwritten once this fresh run "
                   "finishes a round (--resume continues it)", s->opt.ckpt_path);
        }
        snapshot(s);
    } else {
        /* SIGTERM and the end of the run checkpoint only to a path: said before it matters */
        fl_log(&s->log, FL_LOG_WARN, "no checkpoint.path: a stop or crash loses the run's "
               "progress");
    }
    if ((st = load_eval(s, err, errlen)) != FL_OK)
        return st;
    s->chunk_cap = fls_core_task_chunk_bound(s->core);
    s->chunk_buf = malloc(s->chunk_cap ? s->chunk_cap : 1);
    if (!s->chunk_buf)
        return FL_ERR_NOMEM;
    warn_memory(s);
    if (s->curve) {
        char why2[512];
        if ((st = fls_allow_load(&s->allow, s->opt.allow_list, why2, sizeof why2)) != FL_OK) {
            char hint[PATH_MAX + 128], denied[DENIED_HINT_MAX];
            missing_hint(hint, sizeof hint, s->opt.allow_list, NULL);
            denied_hint(denied, sizeof denied, s->opt.allow_list, 0, R_OK);
            return fls_options_errf(&s->opt, err, errlen, st, "server.allow_list", NULL,
                                    "server.allow_list: %s%s%s", why2, hint, denied);
        }
        fl_log(&s->log, s->allow.n ? FL_LOG_INFO : FL_LOG_WARN, "allow-list %s: %zu key%s%s",
               s->opt.allow_list, s->allow.n, s->allow.n == 1 ? "" : "s", s->allow.n ? "" : ": no client can join until keys "
               "are added (SIGHUP reloads it)");
        owners_rebuild(s);
    }
    if (s->opt.ckpt_path[0] && (st = ids_load(s, resumed, err, errlen)) != FL_OK)
        return st;
    const int metrics_file = s->opt.metrics_path[0] && strcmp(s->opt.metrics_path, "-") != 0;
    if (metrics_file) {
        /* What fopen(..., "a") needs, without making the file: it is opened only once every
         * endpoint is bound, so that a start that fails (a port in use) leaves no empty file. */
        struct stat sb;
        const int e = stat(s->opt.metrics_path, &sb) == 0
                          ? (S_ISDIR(sb.st_mode) ? EISDIR
                             : access(s->opt.metrics_path, W_OK) == 0 ? 0 : errno)
                          : fl_parent_writable(s->opt.metrics_path);
        if (e) {
            char hint[DENIED_HINT_MAX] = "";
            if (e == ENOENT)
                missing_hint(hint, sizeof hint, s->opt.metrics_path, NULL);
            else if (e == EACCES)
                denied_hint(hint, sizeof hint, s->opt.metrics_path, 0, W_OK);
            return fls_options_errf(&s->opt, err, errlen, io_status(e), "run.metrics", NULL,
                                    "run.metrics %s: %s%s%s", s->opt.metrics_path, strerror(e),
                                    hint, io_may_pass(e));
        }
    }
    if (s->check_only) {
        if (s->curve)
            fl_log(&s->log, FL_LOG_INFO, "server public key %s", s->pub_z85);
        return FL_OK; /* no pipe, no ZeroMQ context, nothing bound */
    }
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return FL_ERR_IO;
    }
    s->pipe_rd = fds[0];
    s->pipe_wr = fds[1];
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    if (!s->ctx) {
        s->ctx = zmq_ctx_new();
        s->own_ctx = 1;
        if (!s->ctx) {
            snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
            return FL_ERR_TRANSPORT;
        }
    }
    if ((st = setup_socket(s, err, errlen)) != FL_OK)
        return st;
    /* said once the endpoints are bound: a start that fails there announced a run it never ran */
    if (!resumed && !s->check_only)
        fl_log(&s->log, FL_LOG_INFO, "a fresh run: id %016llx (clients drop error-feedback state "
               "of other runs)", (unsigned long long)fls_core_run_id(s->core));
    /* A FIFO waits here for its reader (a start-up signal is heard meanwhile: fl_server): said
     * first, when none is there yet, or the server would seem to hang after "listening". */
    struct stat fst;
    if (metrics_file && stat(s->opt.metrics_path, &fst) == 0 && S_ISFIFO(fst.st_mode)) {
        const int probe = metrics_open(s->opt.metrics_path, 1);
        if (probe >= 0)
            close(probe);
        else if (errno == ENXIO)
            fl_log(&s->log, FL_LOG_INFO, "run.metrics %s is a FIFO that no process reads yet: "
                   "waiting for its reader before the first round", s->opt.metrics_path);
    }
    if (metrics_file && (s->metrics_fd = metrics_open(s->opt.metrics_path, 0)) < 0) {
        const int e = errno;
        return fls_options_errf(&s->opt, err, errlen, io_status(e), "run.metrics", NULL,
                                "run.metrics %s: %s%s", s->opt.metrics_path, strerror(e),
                                io_may_pass(e));
    }
    if (s->metrics_fd >= 0)
        metrics_check_tail(s);
    if (s->ids_path && ids_rewrite(s) != FL_OK)
        return fls_options_errf(&s->opt, err, errlen, io_status(s->ids_errno), "checkpoint.path",
                                NULL, "client ids %s: cannot be written (see above)%s",
                                s->ids_path, io_may_pass(s->ids_errno));
    if (s->curve)
        fl_log(&s->log, FL_LOG_INFO, "CURVE on; server public key %s", s->pub_z85);
    s->next_timers = fl_time_mono_s();
    return FL_OK;
}

static fls_status server_create(const fls_options *o, const fls_host *host, int check_only,
                                fls_server **out)
{
    *out = NULL;
    fls_server *s = calloc(1, sizeof *s);
    if (!s)
        return FLS_ERR_NOMEM;
    s->opt = *o;
    s->check_only = check_only;
    s->bseed = fl_entropy_u64();
    for (int i = 0; i < 2; i++) {
        const uint64_t k = fl_entropy_u64();
        memcpy(s->rid_key + 8 * i, &k, sizeof k);
    }
    /* An evaluation set with no interval means "evaluate every round": an operator who names a
     * test set expects to see accuracy. */
    if (s->opt.eval_dataset != FLS_EVAL_NONE && s->opt.core.eval_every == 0)
        s->opt.core.eval_every = 1;
    if (host)
        s->host = *host;
    s->ctx = s->host.zmq_context;
    s->pipe_rd = s->pipe_wr = -1;
    s->idle_said = s->over_said = -1e9; /* the first closing is said at once */
    s->bind_free = NIL;
    s->idle = (bind_list){NIL, NIL};
    s->ids_fd = -1;
    s->lock_fd = -1;
    s->metrics_fd = -1;
    s->log.fn = log_bridge;
    s->log.user = s;
    s->log.min_level = (fl_log_level)s->opt.log_level;
    char err[4096] = "";
    const fl_status st = server_init(s, err, sizeof err);
    if (st != FL_OK) {
        fl_log(&s->log, FL_LOG_ERROR, "%s", err[0] ? err : fl_strerror(st));
        fls_server_free(s);
        return fls_status_of(st);
    }
    *out = s;
    return FLS_OK;
}

fls_status fls_server_new(const fls_options *o, const fls_host *host, fls_server **out)
{
    if (out)
        *out = NULL; /* as on every other failure (fls.h) */
    if (!o || !out)
        return FLS_ERR_INVALID_ARG;
    return server_create(o, host, 0, out);
}

fls_status fls_server_check(const fls_options *o, const fls_host *host)
{
    if (!o)
        return FLS_ERR_INVALID_ARG;
    fls_server *s = NULL;
    const fls_status st = server_create(o, host, 1, &s);
    fls_server_free(s);
    return st;
}

void fls_server_free(fls_server *s)
{
    if (!s)
        return;
    /* a cancelled evaluation (a stop) stops at its next batch; a host that frees the server in
     * the middle of a run (RUN_FAILED too) cancels it here */
    if (s->eval_live && !atomic_load(&s->eval_done))
        fl_log(&s->log, FL_LOG_INFO, "the evaluation of round %llu is cancelled: waiting for its "
               "current batch to end (eval.batch %u samples)", (unsigned long long)s->eval_round,
               s->opt.eval_batch);
    eval_join(s, 1);
    if (s->metrics_lost_all) {
        char tail[96] = "";
        if (s->metrics_lost)
            snprintf(tail, sizeof tail, ", the last %llu from round %llu on",
                     (unsigned long long)s->metrics_lost,
                     (unsigned long long)s->metrics_lost_from);
        fl_log(&s->log, FL_LOG_WARN, "run.metrics %s: %llu line%s lost in all%s",
               s->opt.metrics_path, (unsigned long long)s->metrics_lost_all,
               s->metrics_lost_all == 1 ? "" : "s", tail);
    }
    if (s->mon) {
        zmq_socket_monitor(s->router, NULL, 0);
        zmq_close(s->mon);
    }
    free(s->fdt);
    if (s->router)
        zmq_close(s->router);
    /* libzmq (4.3.4) leaves an ipc:// endpoint's socket file when it closes the listener: after
     * a run, a stop or a crash-free exit the file stayed (a stale one, which the next start
     * replaces), until 2026-12-07. Removed when it is still the one this server bound: not one
     * that another server made at the path after ours was removed. */
    for (size_t j = 0; j < s->n_ep; j++) {
        struct stat now;
        const struct stat *sk = &s->ep_sock[j];
        if (sk->st_ino && lstat(s->ep[j] + 6, &now) == 0 && S_ISSOCK(now.st_mode) &&
            fl_stat_same_file(sk, &now))
            (void)unlink(s->ep[j] + 6);
    }
    if (s->zap)
        zmq_close(s->zap);
    if (s->own_ctx && s->ctx)
        zmq_ctx_term(s->ctx);
    if (s->pipe_rd >= 0)
        close(s->pipe_rd);
    if (s->pipe_wr >= 0)
        close(s->pipe_wr);
    for (size_t i = 0; i < s->n_ss; i++) {
        free(s->ss[i].id);
        free(s->ss[i].ack_detail);
        ul_reset(&s->ss[i]);
    }
    free(s->ss);
    free(s->due);
    free(s->hidx);
    free(s->kidx);
    free(s->ulq);
    free(s->ulr);
    free(s->dlr);
    free(s->ack_keys);
    free(s->ids_pend);
    for (size_t i = 0; i < s->n_slots; i++)
        free(s->bind[i].id);
    free(s->bind);
    free(s->bidx);
    if (s->ids_fd >= 0)
        close(s->ids_fd);
    if (s->lock_fd >= 0) {
        held_lock_mark(s->lock_fd, 0);
        close(s->lock_fd); /* last: the files are closed before another server may take them */
    }
    free(s->lock_path);
    free(s->ids_path);
    free(s->owners);
    explicit_bzero(s->sec_z85, sizeof s->sec_z85);
    fls_allow_clear(&s->allow);
    fls_core_free(s->core);
    flm_model_free(s->eval_model);
    flm_dataset_free(s->eval_ds);
    if (s->metrics_fd >= 0)
        close(s->metrics_fd);
    fls_ckpt_clear(&s->snap);
    free(s->chunk_buf);
    free(s);
}

static void timers(fls_server *s, double now)
{
    churn_flush(s, now, 0); /* a minute's summary when it is over, not at the next join */
    const double hb = s->opt.heartbeat_ms / 1000.0, live = s->opt.liveness_ms / 1000.0;
    flp_msg m = flp_msg_header(FLP_HEARTBEAT, 0, NULL);
    int taken = 0;
    for (size_t i = 0; i < s->n_ss; i++) {
        if (s->due[i] > now)
            continue;
        sess *x = &s->ss[i];
        if (x->dead || !x->id) {
            s->due[i] = INFINITY; /* until its Hello (sess_wake) */
            continue;
        }
        if (silent_since(s, x->last_rx, now)) {
            sess_drop(s, x, "silent for longer than the liveness timeout");
            continue;
        }
        if (x->dl_inflight > 0 && silent_since(s, x->dl_last, now)) {
            /* It heartbeats but Acks no weight chunk: its task is dropped and its share of the
             * downlink budget goes to the others. A task given up already (a full send queue,
             * its chunks still in flight) only gives its budget back: it was said and its
             * update counted failed then (logged twice and told twice before). */
            if (!x->dl_given_up) {
                log_bad(s, "client %s: no Ack of a weight chunk for %u ms: task of round %llu "
                        "dropped", x->id, s->opt.liveness_ms, (unsigned long long)x->dl_round);
                dl_give_up(s, x, FL_ERR_TIMEOUT, "no Ack of a weight chunk: task dropped");
            }
            dl_forget(s, x);
            taken = 1;
        }
        if (now - x->last_tx >= hb) {
            m.heartbeat.seq = ++x->hb_seq;
            m.heartbeat.sender_time_us = (uint64_t)(now * 1e6);
            send_sess(s, x, &m);
        }
        double d = x->last_rx + live;
        if (x->last_tx + hb < d)
            d = x->last_tx + hb;
        if (x->dl_inflight > 0 && x->dl_last + live < d)
            d = x->dl_last + live;
        s->due[i] = x->dead ? INFINITY : d;
    }
    if (taken)
        dl_pump_all(s);
}

/* What checkpoint.path holds, for the lines of a checkpoint that could not be written, into
 * buf: "next round K", "none yet", or "none (the one of next round K is gone: REASON)". Returns
 * the next round the file holds, 0 for none. */
static uint64_t ckpt_on_disk(const fls_server *s, char *buf, size_t cap)
{
    struct stat sb;
    if (s->ckpt_round && stat(s->opt.ckpt_path, &sb) == 0) {
        snprintf(buf, cap, "next round %llu", (unsigned long long)s->ckpt_round);
        return s->ckpt_round;
    }
    if (s->ckpt_round) /* removed under the server (its directory with it): say so */
        snprintf(buf, cap, "none (the one of next round %llu is gone: %s)",
                 (unsigned long long)s->ckpt_round, strerror(errno));
    else
        snprintf(buf, cap, "none yet");
    return 0;
}

static fls_status finish_stop(fls_server *s)
{
    /* An evaluation in flight (a second stop cancels it): its round is dropped, as an open round
     * is, though the core has counted it closed. */
    const uint64_t round = s->eval_live ? s->eval_round : fls_core_round(s->core);
    eval_cancel(s);
    log_bad_flush(s, fl_time_mono_s());
    churn_flush(s, fl_time_mono_s(), 1);
    /* No more updates are taken: the reactor stops reading. The state between rounds is the last
     * snapshot (a round in flight is dropped and replayed on resume). */
    if (!fls_core_round_open(s->core))
        snapshot(s);
    const fl_status st = write_final(s);
    if (st != FL_OK && st == s->snap_err) {
        char held[64] = "no checkpoint of this run";
        if (s->ckpt_round)
            snprintf(held, sizeof held, "the state before round %llu",
                     (unsigned long long)s->ckpt_round);
        fl_log(&s->log, FL_LOG_ERROR, "the server's state at round %llu cannot be checkpointed "
               "(%s); %s holds %s", (unsigned long long)fls_core_round(s->core), fl_strerror(st),
               s->opt.ckpt_path, held);
    }
    /* The file could not be written (a full disk): say what the one on disk holds and what is
     * lost, as the failure of a checkpoint during the run does; "stopped at round R" alone read
     * as if round R were saved. */
    char last[160] = "";
    uint64_t on_disk = 0;
    if (st != FL_OK)
        on_disk = ckpt_on_disk(s, last, sizeof last);
    if (st != FL_OK && st != s->snap_err) {
        char lost[96] = "";
        if (round == on_disk + 1)
            snprintf(lost, sizeof lost, "; round %llu is lost", (unsigned long long)on_disk);
        else if (round > on_disk)
            snprintf(lost, sizeof lost, "; rounds %llu to %llu are lost",
                     (unsigned long long)on_disk, (unsigned long long)(round - 1));
        fl_log(&s->log, FL_LOG_ERROR, "stopping: checkpoint %s of round %llu cannot be written "
               "(%s); the last one on disk: %s%s. Clients will reconnect; fix the path (free the "
               "disk) and restart with --resume to continue from %s",
               s->opt.ckpt_path, (unsigned long long)round,
               st == FL_ERR_IO && s->ckpt_errno ? strerror(s->ckpt_errno)
               : s->ckpt_nofd                   ? "no file descriptor free"
                                                : fl_strerror(st),
               last, lost, on_disk ? "it" : "the start (a fresh run)");
    }
    if (s->opt.ckpt_path[0] && nothing_to_keep(s)) {
        struct stat sb;
        const int kept = stat(s->opt.ckpt_path, &sb) == 0;
        fl_log(&s->log, FL_LOG_INFO, "this fresh run finished no round: no checkpoint written%s%s",
               kept ? "; the earlier file is kept: " : "", kept ? s->opt.ckpt_path : "");
    }
    send_bye_all(s, "restart");
    s->run = RUN_STOPPED;
    if (st == FL_OK)
        fl_log(&s->log, FL_LOG_INFO, "stopped at round %llu", (unsigned long long)round);
    else
        fl_log(&s->log, FL_LOG_INFO, "stopped at round %llu without its checkpoint (the one on "
               "disk: %s)", (unsigned long long)round, last);
    return st == FL_OK ? FLS_ERR_CANCELLED : fls_status_of(st);
}

/* The run cannot keep its checkpoint: the clients are told to reconnect later (not "done": the
 * rounds since the last checkpoint are not on disk), and the run ends with the write's status. */
static fls_status finish_ckpt_failed(fls_server *s, fl_status st)
{
    eval_cancel(s);
    send_bye_all(s, "restart");
    run_fail(s, st);
    char last[160];
    const uint64_t on_disk = ckpt_on_disk(s, last, sizeof last);
    /* the rounds a restart trains again, as a stop's failed checkpoint says them (the file
     * that failed is of the state before round s->snap.round) */
    char lost[96] = "";
    const uint64_t next = s->have_snap ? s->snap.round : 0;
    if (next == on_disk + 1)
        snprintf(lost, sizeof lost, "; round %llu is lost", (unsigned long long)on_disk);
    else if (next > on_disk + 1)
        snprintf(lost, sizeof lost, "; rounds %llu to %llu are lost",
                 (unsigned long long)on_disk, (unsigned long long)(next - 1));
    if (s->snap_err != FL_OK && st == s->snap_err) /* the state, not the file (write_snapshot) */
        fl_log(&s->log, FL_LOG_ERROR, "stopping: the server's state at round %llu cannot be "
               "checkpointed (%s); the last checkpoint in %s: %s. Clients will reconnect; "
               "restart with --resume to continue from it",
               (unsigned long long)fls_core_round(s->core), fl_strerror(st), s->opt.ckpt_path,
               last);
    else if (s->ckpt_nofd)
        fl_log(&s->log, FL_LOG_ERROR, "stopping: checkpoint %s cannot be written (no file "
               "descriptor free); the last one on disk: %s. Clients will reconnect; raise the file "
               "descriptor limit (systemd LimitNOFILE=, ulimit -n) or lower server.max_clients, "
               "and restart with --resume", s->opt.ckpt_path, last);
    else
        fl_log(&s->log, FL_LOG_ERROR, "stopping: checkpoint %s cannot be written (%s); the last "
               "one on disk: %s%s. Clients will reconnect; fix the path and restart with --resume",
               s->opt.ckpt_path, st == FL_ERR_IO && s->ckpt_errno ? strerror(s->ckpt_errno)
                                                                  : fl_strerror(st), last, lost);
    return fls_status_of(st);
}

static fls_status finish_done(fls_server *s)
{
    log_bad_flush(s, fl_time_mono_s()); /* the last burst's count: said when the next came */
    churn_flush(s, fl_time_mono_s(), 1);
    snapshot(s);
    const fl_status st = write_final(s);
    if (st != FL_OK)
        return finish_ckpt_failed(s, st);
    send_bye_all(s, "done");
    /* The model's fingerprint (as fl_sim's model_sha256: SHA-256 of the float32 parameters), so
     * that an operator can compare two runs, or a resumed run with one that was not stopped. */
    uint8_t d[FL_SHA256_LEN];
    char hex[2 * FL_SHA256_LEN + 1] = "unknown";
    if (fl_sha256_digest(d, fls_core_params(s->core),
                         fls_core_arch(s->core)->n_params * sizeof(float)) == FL_OK)
        fl_sha256_hex(hex, d);
    fl_log(&s->log, FL_LOG_INFO, "run done: %llu round%s%s; model sha256 %s",
           (unsigned long long)fls_core_round(s->core), fls_core_round(s->core) == 1 ? "" : "s",
           fls_core_target_reached(s->core) ? ", target accuracy reached" : "", hex);
    if (!s->opt.done_linger_s || stop_asked(s))
        return FLS_ERR_STATE;
    /* Clients that were away when the run ended (a lost link, a reconnect backoff, a device
     * offline), or that find a server restarted on a finished run, would otherwise retry a
     * server gone for good: for a while it stays up to tell them (linger_step). */
    s->linger_until = fl_time_mono_s() + s->opt.done_linger_s;
    fl_log(&s->log, FL_LOG_INFO, "staying up %u s (server.done_linger_s) to tell clients that "
           "come in that the run is done; a stop ends the wait", s->opt.done_linger_s);
    return FLS_OK;
}

/* One wait of a step (fls_server_step, linger_step): the ROUTER, the wake-up pipe (drained
 * here), the monitor and the ZAP socket (n_it: 3 without CURVE) for at most timeout_ms (-1: no
 * bound); it[] holds what is ready. -1 where zmq_poll failed (logged), else 0. */
static int poll_wait(fls_server *s, int timeout_ms, zmq_pollitem_t it[4], int *n_it)
{
    it[0] = (zmq_pollitem_t){s->router, 0, ZMQ_POLLIN, 0};
    it[1] = (zmq_pollitem_t){NULL, s->pipe_rd, ZMQ_POLLIN, 0};
    it[2] = (zmq_pollitem_t){s->mon, 0, ZMQ_POLLIN, 0};
    it[3] = (zmq_pollitem_t){s->zap, 0, ZMQ_POLLIN, 0};
    *n_it = s->zap ? 4 : 3;
    if (zmq_poll(it, *n_it, timeout_ms) < 0 && zmq_errno() != EINTR) {
        fl_log(&s->log, FL_LOG_ERROR, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (it[1].revents & ZMQ_POLLIN) {
        char buf[64];
        while (read(s->pipe_rd, buf, sizeof buf) > 0) {
        }
    }
    return 0;
}

/* A step while the run is done (finish_done): until server.done_linger_s has passed or a stop
 * is asked, the sockets are served (ZAP handshakes, the monitor, a reload's allow-list) and each
 * message answered with Bye("done") (linger_frame); FLS_OK. Then FLS_ERR_STATE, as for a run done
 * without the wait. */
static fls_status linger_step(fls_server *s, int timeout_ms)
{
    const double now = fl_time_mono_s();
    if (s->linger_until <= 0)
        return FLS_ERR_STATE;
    if (now >= s->linger_until || stop_asked(s)) {
        fl_log(&s->log, FL_LOG_INFO, "%s: %llu client%s told that the run is done",
               stop_asked(s) ? "stopped waiting" : "server.done_linger_s is over",
               (unsigned long long)s->linger_told, s->linger_told == 1 ? "" : "s");
        s->linger_until = 0;
        return FLS_ERR_STATE;
    }
    /* the wait may last days: a connection that says nothing is closed as during the run
     * (server.idle_connection_s), scanned each second */
    double wait = ceil((s->linger_until - now) * 1000.0);
    if (s->idle_s > 0 && s->mon && wait > 1000)
        wait = 1000;
    if (timeout_ms < 0 || wait < timeout_ms)
        timeout_ms = (int)wait;
    zmq_pollitem_t it[4];
    int n_it;
    if (poll_wait(s, timeout_ms, it, &n_it) != 0) {
        s->linger_until = 0; /* the run is done all the same: nothing is lost */
        return FLS_ERR_STATE;
    }
    if (atomic_exchange(&s->reload_req, 0)) {
        reload_config_said(s);
        reload_allow(s);
        reopen_metrics(s);
    }
    if (it[2].revents & ZMQ_POLLIN)
        read_monitor(s);
    if (n_it == 4 && (it[3].revents & ZMQ_POLLIN))
        read_zap(s);
    if (it[0].revents & ZMQ_POLLIN)
        (void)read_batch(s);
    const double later = fl_time_mono_s();
    if (s->idle_s > 0 && s->mon && later - s->idle_scan >= 1.0)
        close_idle_conns(s, later);
    return FLS_OK;
}

/* The run cannot go on (RUN_FAILED) because of st. The first cause is kept: it is what
 * fls_server_step returns from then on. */
static void run_fail(fls_server *s, fl_status st)
{
    s->run = RUN_FAILED;
    if (s->fail_st == FL_OK)
        s->fail_st = st != FL_OK ? st : FL_ERR_INTERNAL;
}

/* What a failed run returns (fls.h, fls_server_run): out of memory, a file or ZeroMQ said as
 * what they are; anything else is a fault of fedrop's (FLS_ERR_INTERNAL). */
static fls_status run_failed_status(const fls_server *s)
{
    switch (s->fail_st) {
    case FL_ERR_NOMEM:
    case FL_ERR_IO:
    case FL_ERR_IO_TRANSIENT:
    case FL_ERR_TRANSPORT:
        return fls_status_of(s->fail_st);
    default:
        return FLS_ERR_INTERNAL;
    }
}

/* When the timer sweep runs next: TIMER_PERIOD after the last one, or sooner when the round
 * engine's tick has work then (fls_core_tick_due: the open round's deadline; at once when a round
 * can start or the run is over). Until 2026-12-07 only the period counted: a round was closed up
 * to 50 ms after its deadline, and the first round started up to 50 ms after its last needed
 * client joined (the Hello is read, then the sweep that follows it in the same step starts the
 * round, after ids_flush has answered the Hello). */
static double sweep_due(const fls_server *s)
{
    const double tick = fls_core_tick_due(s->core);
    return tick < s->next_timers ? tick : s->next_timers;
}

/* Sessions whose Task found their connection gone (start_task) in an earlier step than this one,
 * whose ROUTER has now been read empty: what the client said before it hung up (a Bye) has been
 * read, and a session still live left without one. */
static void gone_drop(fls_server *s)
{
    s->gone_any = 0;
    for (size_t i = 0; i < s->n_ss; i++) {
        sess *x = &s->ss[i];
        if (x->dead || !x->gone_step)
            continue;
        if (x->gone_step < s->step_n)
            sess_drop(s, x, "connection gone");
        else
            s->gone_any = 1;
    }
}

fls_status fls_server_step(fls_server *s, int timeout_ms)
{
    if (!s)
        return FLS_ERR_INVALID_ARG;
    if (s->run == RUN_DONE)
        return linger_step(s, timeout_ms);
    if (s->run == RUN_STOPPED)
        return FLS_ERR_CANCELLED;
    if (s->run == RUN_FAILED)
        return run_failed_status(s);
    if (stop_asked(s) && !s->eval_live)
        return finish_stop(s);
    double now = fl_time_mono_s();
    /* Until the sweep is due (sweep_due), in whole ms rounded up: rounded down (until
     * 2026-12-07), the poll woke up to 1 ms early, and then polled with a timeout of 0 until the
     * sweep came due, a spin of about 1 ms every 50 ms (an idle server: 1,067 polls of 0 ms
     * beside 58 of 49 ms in 3 s). */
    double wait = ceil((sweep_due(s) - now) * 1000.0);
    if (!(wait > 0)) /* due, or long past (next_timers 0, a tick due at once: -INFINITY) */
        wait = 0;
    if (timeout_ms < 0 || wait < timeout_ms)
        timeout_ms = (int)wait;
    zmq_pollitem_t it[4];
    int n_it;
    s->step_n++;
    if (poll_wait(s, timeout_ms, it, &n_it) != 0) {
        run_fail(s, FL_ERR_TRANSPORT);
        return FLS_ERR_TRANSPORT;
    }
    if (atomic_exchange(&s->reload_req, 0)) {
        reload_config_said(s);
        reload_allow(s);
        reopen_metrics(s);
        /* a selected client whose key left the list may have been the round's last hope: that
         * round ends now (its metrics line into the file just reopened), before a stop below
         * could checkpoint past it without its metrics */
        if (s->run == RUN_ON) {
            const fl_status dst = drain_events(s);
            if (dst != FL_OK) {
                run_fail(s, dst);
                return run_failed_status(s);
            }
            if (s->ckpt_failed != FL_OK)
                return finish_ckpt_failed(s, s->ckpt_failed);
        }
        /* a SIGHUP (systemctl reload) that had nothing to act on: said, or the operator cannot
         * tell a signal that was heard from one that was not */
        if (!s->curve && s->metrics_fd < 0)
            fl_log(&s->log, FL_LOG_INFO, "reload: nothing to reload (no allow-list: plain text; "
                   "run.metrics is %s)", s->opt.metrics_path[0] ? "stdout" : "not set");
    }
    if (stop_asked(s) && !s->eval_live)
        return finish_stop(s);
    if (stop_asked(s) && !atomic_load(&s->eval_done)) {
        /* The round is trained and aggregated: its evaluation is let finish so that the round
         * ends (its log line, its metrics line, its round callback with the accuracy) and is
         * checkpointed, rather than dropped with its clients' work; the reactor serves the
         * clients meanwhile. Without checkpoint.path too: the last round's accuracy is what a
         * run without one keeps. A second stop stops now (finish_stop: the thread is told to
         * stop, and joined only by fls_server_free, so that a long batch holds up nothing the
         * clients see). */
        const int keep = s->opt.ckpt_path[0] != 0;
        if (atomic_load(&s->stop_calls) >= 2) {
            if (keep)
                fl_log(&s->log, FL_LOG_WARN, "stopping now: the evaluation of round %llu is "
                       "cancelled and the round dropped%s", (unsigned long long)s->eval_round,
                       nothing_to_keep(s) ? "" : " (a resumed run trains it again)");
            else
                fl_log(&s->log, FL_LOG_WARN, "stopping now: the evaluation of round %llu is "
                       "cancelled and the round dropped (no checkpoint.path: the run is not "
                       "kept)", (unsigned long long)s->eval_round);
            return finish_stop(s);
        }
        if (!s->stop_said) {
            s->stop_said = 1;
            fl_log(&s->log, FL_LOG_INFO, "stopping once the evaluation of round %llu is over, "
                   "to %s (running for %.1f s; stop again to stop now and drop the round)",
                   (unsigned long long)s->eval_round,
                   keep ? "checkpoint the round" : "end the round with its accuracy",
                   fl_time_mono_s() - s->eval_t0);
        }
    }
    if (it[2].revents & ZMQ_POLLIN)
        read_monitor(s);
    if (n_it == 4 && (it[3].revents & ZMQ_POLLIN))
        read_zap(s);
    /* Messages still waiting (a batch was not all): their sessions' connections are not judged
     * idle until they are read, unless that lasts (an overloaded reactor still closes idle
     * connections every 5 s). */
    const int backlog = (it[0].revents & ZMQ_POLLIN) && read_router(s);
    if (s->gone_any && !backlog && s->run == RUN_ON) {
        gone_drop(s);
        const fl_status gst = drain_events(s); /* the round the leave closed ends now */
        if (gst != FL_OK)
            run_fail(s, gst);
    }
    now = fl_time_mono_s();
    if (!backlog)
        s->backlog_since = 0;
    else if (!s->backlog_since)
        s->backlog_since = now;
    if (s->idle_s > 0 && s->mon && now - s->idle_scan >= (backlog ? 5.0 : 1.0))
        close_idle_conns(s, now);
    if (s->run == RUN_ON && now - s->lock_checked >= 1.0) {
        s->lock_checked = now;
        const fl_status lst = s->lock_fd >= 0 ? lock_check(s) : FL_OK;
        if (lst != FL_OK) {
            eval_cancel(s);
            send_bye_all(s, "restart");
            run_fail(s, lst);
            return run_failed_status(s);
        }
        ids_check(s);
    }
    if (s->ckpt_retry_since > 0 && now >= s->ckpt_retry_next && !s->ckpt_failed)
        s->ckpt_failed = write_periodic(s, now);
    if (s->eval_live && atomic_load(&s->eval_done) && s->run == RUN_ON) {
        fl_status est = eval_poll(s);
        if (est == FL_OK)
            est = drain_events(s);
        if (est != FL_OK)
            run_fail(s, est);
        else if (stop_asked(s) && s->ckpt_failed == FL_OK && s->run == RUN_ON)
            return finish_stop(s); /* before the next round starts */
    }
    if (now >= sweep_due(s) && s->run == RUN_ON && s->ckpt_failed == FL_OK) {
        s->next_timers = now + TIMER_PERIOD;
        timers(s, now);
        sess_compact(s);
        dl_list_compact(s);
        ul_admit(s);
        dl_pump_all(s);
        /* A round the sweep above closed (a selected session dropped for silence, a task given
         * up) ends here, its metrics line written and its state checkpointed, before the tick
         * may start the next one: drained after the tick, the snapshot found a round open and
         * the finished round never reached the checkpoint (until 2026-12-07). */
        fl_status st = drain_events(s);
        if (st == FL_OK && s->run == RUN_ON && s->ckpt_failed == FL_OK) {
            if ((st = fls_core_tick(s->core, now)) != FL_OK)
                fl_log(&s->log, FL_LOG_ERROR, "round engine: %s", fl_strerror(st));
            else
                st = drain_events(s);
        }
        ul_sweep(s);
        /* an upload it ended may have closed the round too: that round ends now as well */
        if (st == FL_OK)
            st = drain_events(s);
        if (st != FL_OK)
            run_fail(s, st);
    }
    sess_compact(s);
    s->st.round = fls_core_round(s->core);
    if (s->run == RUN_FAILED)
        return run_failed_status(s);
    if (s->ckpt_failed != FL_OK)
        return finish_ckpt_failed(s, s->ckpt_failed);
    if (s->run == RUN_DONE)
        return finish_done(s);
    return FLS_OK;
}

fls_status fls_server_run(fls_server *s)
{
    if (!s)
        return FLS_ERR_INVALID_ARG;
    fls_status st;
    while ((st = fls_server_step(s, 1000)) == FLS_OK) {
    }
    return st == FLS_ERR_STATE ? FLS_OK : st;
}

void fls_server_stop(fls_server *s)
{
    if (!s)
        return;
    atomic_fetch_add(&s->stop_calls, 1);
    if (s->pipe_wr >= 0) {
        const char c = 's';
        ssize_t r = write(s->pipe_wr, &c, 1);
        (void)r;
    }
}

void fls_server_reload(fls_server *s)
{
    if (!s)
        return;
    atomic_store(&s->reload_req, 1);
    if (s->pipe_wr >= 0) {
        const char c = 'r';
        ssize_t r = write(s->pipe_wr, &c, 1);
        (void)r;
    }
}

const char *fls_server_endpoint(const fls_server *s, size_t i)
{
    return s && i < s->n_ep ? s->ep[i] : NULL;
}

const char *fls_server_public_key(const fls_server *s)
{
    return s && s->curve ? s->pub_z85 : NULL;
}

uint64_t fls_server_compactions(const fls_server *s)
{
    return s ? s->compactions : 0;
}

void fls_server_stats_get(const fls_server *s, fls_server_stats *out)
{
    if (!out)
        return;
    if (!s) {
        *out = (fls_server_stats){0}; /* as flc_client_stats(NULL): never the caller's garbage */
        return;
    }
    *out = s->st;
    out->round = fls_core_round(s->core);
    out->clients = sessions_with_id(s);
    out->ids = (uint32_t)s->n_bind;
    out->engine_clients = fls_core_clients_known(s->core);
    out->connections = s->conns;
    /* st.idle_closed is counted as it happens */
}
