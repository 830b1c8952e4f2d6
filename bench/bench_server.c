/* bench_server: the fl_server daemon's upload throughput and memory with N simultaneous clients,
 * beside raw ZeroMQ throughput for the same bytes on the same machine in the same run, the two
 * alternated.
 *
 *   bench_server [--clients N] [--rounds R] [--arch SPEC] [--codecs LIST] [--chunk-elems E]
 *                [--idle M] [--server-env KEY=VALUE ...]   (environment of the server child only, e.g.
 *                 MALLOC_MMAP_THRESHOLD_=1073741824 to see what fresh mmap'd chunk buffers cost)
 *
 * Default: N = 1, 8 and 64 (--clients N: that N only), arch cnn:62 (6,603,710 parameters), policy
 * full (every update is the whole model), codecs "rot+q4+zstd,none" (the LAST line is float32
 * `none`), R = 9 measured rounds, plain-text tcp on 127.0.0.1.
 *
 * Ours: the server library (include/fls.h) runs in a child process (this program re-executed with
 * --role server, so its peak RSS is its own: getrusage ru_maxrss at exit). N libflclient clients
 * run as threads here, each with one connection (one DEALER socket) kept for the whole run, and a
 * plug-in trainer that adds a fixed delta at once (no training). Each round, every client's
 * trainer waits at a gate until all N have their task and this program's main thread opens it;
 * then all return together. The timed window of a round runs from that release to the server's
 * round close (its on_round callback, CLOCK_MONOTONIC across processes). So it covers the
 * clients' delta and encoding, the Update headers and their chunks over loopback, each chunk sent
 * against the server's credit (its Ack of a chunk: round trips a plain sender does not make), the
 * server's decode + validation + exact fixed-point aggregation, and the round finalisation; the
 * downlink (the Tasks) and connection setup are outside it. Until 2026-12-07 it also held a
 * wait of libflclient's own: a client's reactor looked at a running training every 50 ms (the
 * training thread did not wake it), so each upload started up to 50 ms after its trainer
 * returned: the whole round for a small model (mlp:10-5-2, one client: 0.050 s, 0.001 s since
 * the training thread wakes the reactor) and some 7% of a float32 cnn round of 8 clients (0.7
 * s), which the README's figures of before that day include. updates_per_s = N / window and
 * mb_per_s = the round's uplink payload bytes (the server's bytes_up metric) / window.
 *
 * Peer: the same process layout without fedrop: a child (--role raw) binds a ROUTER and receives;
 * N sender threads here, each with one DEALER connection kept for the whole run, send the bytes a
 * client uploaded in ours' latest round (the chunks' payload bytes: the server's bytes_up over
 * the updates), as as many messages as ours has chunks (ceil(numel / chunk_elems) per tensor),
 * those bytes split evenly among them (ours' chunks are not all of one size: a tensor's last one
 * is shorter, a bias is one small chunk; ours also sends the Update's header as a message of its
 * own, and each message's envelope), with no flow control but ZeroMQ's high-water marks;
 * released together by the main thread; the window ends when the receiver has every payload
 * byte. raw_zmq_mb_per_s = those bytes / window. No encoding, decoding or aggregation: the
 * ceiling for moving these bytes through ZeroMQ on this machine.
 *
 * The same setup on both sides: both receivers (the server child, the raw child) start once for a
 * (codec, N) pair and live to its end; every connection is made before the first timed window;
 * each side has one untimed warm-up (ours: the first round, which also pays the first touch of
 * the accumulator; the peer: one repetition of the same bytes) and then R timed windows.
 * Alternated: while ours' clients hold round r's tasks at the gate, the peer's repetition r runs,
 * then the gate opens and ours' round r runs; so peer and subject share each stretch of the
 * machine's load, and while one side runs the other's processes and threads wait idle. With
 * --idle M the idle sessions stop heartbeating while the peer runs (the server still beats for
 * them). Figures: the median of each side's R windows (min and max beside, and the range of the
 * R pairs' ratios); ratio = median mb_per_s / median raw_zmq_mb_per_s. The windows are short (at
 * N = 8 in float32, 0.27-0.43 s for ours and 0.1-0.5 s for the peer on the 2-core VM at load
 * average 3-6, where single pairs' ratios ranged 0.33-1.48): hence R = 9 by default, whose medians
 * gave 0.61-0.70 over three runs where R = 5 gave 0.59-0.99.
 * (Until 2026-12-02 the peer ran after ours, a fresh receiver and fresh connections for each
 * repetition, their handshakes inside its window, each side's best kept: its ratio swung
 * 0.54-1.72 under load and came out above 1 on a loaded machine.)
 *
 * Peak RSS bar: model + accumulator + 64 MB (printed as rss_bar_mb). The core keeps an uploading
 * client's encoded chunks until its update is complete, so with simultaneous uploads the server
 * holds up to N encoded updates (26.4 MB each in float32): see the printed peak against N.
 *
 * --idle M: M more connections, each a session that said Hello (memory_bytes 1: never selected)
 * and heartbeats, beside the N clients: what a fleet's idle devices cost the rounds (the
 * reactor's work that grows with the sessions it holds). Also printed: the server process's CPU
 * time over its whole life (the warm-up round included), per update.
 *
 * The children (server, raw receiver) end with this process, however it ends (bench_exit.h): a
 * server child left behind would wait for its clients for ever.
 *
 * LAST line (for the float32 codec and the last N; medians):
 *   updates_per_s=<f> mb_per_s=<f> raw_zmq_mb_per_s=<f> ratio=<f> server_peak_rss_mb=<f>
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_exit.h"
#include "bench_wire.h"
#include "bench_stat.h"
#include "flc.h"
#include "flm_arch.h"
#include "flp_wire.h"
#include "fls.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_server: %s\n", what);
    exit(1);
}

/* ---- the server child ----------------------------------------------------------------------- */

static FILE *g_out; /* pipe to the parent */

static void srv_log(void *user, fls_log_level level, const char *msg)
{
    (void)user;
    if (level >= FLS_LOG_WARN)
        fprintf(stderr, "bench_server[server]: %s\n", msg);
}

static double json_num(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

static void srv_round(void *user, const char *json, const char *summary)
{
    (void)user;
    (void)summary;
    fprintf(g_out, "ROUND %.9f %.0f %.0f\n", mono(), json_num(json, "bytes_up"),
            json_num(json, "reported"));
    fflush(g_out);
}

static int role_server(int fd, const char *arch, const char *codec, int n, int rounds,
                       const char *chunk_elems)
{
    g_out = fdopen(fd, "w");
    fls_options *o = NULL;
    char err[256], nb[32], rb[32];
    snprintf(nb, sizeof nb, "%d", n);
    snprintf(rb, sizeof rb, "%d", rounds);
    const char *kv[][2] = {
        {"server.endpoints", "tcp://127.0.0.1:0"}, {"server.insecure", "true"},
        {"model.arch", arch}, {"policy.kind", "full"}, {"round.clients", nb},
        {"round.overcommit", "1"}, {"round.min_clients", nb}, {"run.rounds", rb},
        {"codec.up", codec}, {"codec.down", "none"}, {"codec.chunk_elems", chunk_elems},
        {"eval.dataset", "none"}, {"run.log_level", "warn"}, {"server.liveness_ms", "60000"},
        {"round.deadline_s", "600"},
    };
    if (fls_options_new(&o) != FLS_OK)
        die("options");
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (fls_options_set(o, kv[i][0], kv[i][1], err, sizeof err) != FLS_OK)
            die(err);
    const fls_host host = {srv_log, NULL, NULL, srv_round, NULL};
    fls_server *s = NULL;
    fls_status st = fls_server_new(o, &host, &s);
    fls_options_free(o);
    if (st != FLS_OK)
        die(fls_strerror(st));
    fprintf(g_out, "EP %s\n", fls_server_endpoint(s, 0));
    fflush(g_out);
    st = fls_server_run(s);
    fls_server_free(s);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(g_out, "RSS %ld %d %.6f\n", ru.ru_maxrss, (int)st,
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
                ru.ru_stime.tv_usec * 1e-6);
    fclose(g_out);
    return st == FLS_OK ? 0 : 1;
}

/* ---- the raw ZeroMQ receiver child ---------------------------------------------------------- */

/* Repetition after repetition: a line "REP <bytes>" on stdin, then messages until that many
 * payload bytes came, then "DONE <CLOCK_MONOTONIC>" to the parent. At the end of stdin: its
 * peak RSS. */
static int role_raw(int fd)
{
    g_out = fdopen(fd, "w");
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    if (zmq_bind(r, "tcp://127.0.0.1:*") != 0)
        die("raw bind");
    char ep[256];
    size_t epl = sizeof ep;
    zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &epl);
    fprintf(g_out, "EP %s\n", ep);
    fflush(g_out);
    zmq_msg_t m;
    zmq_msg_init(&m);
    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        unsigned long long total = 0, got = 0;
        if (sscanf(line, "REP %llu", &total) != 1)
            die("raw: not a repetition");
        while (got < total) {
            if (zmq_msg_recv(&m, r, 0) < 0)
                die("raw recv");
            if (!zmq_msg_more(&m))
                got += zmq_msg_size(&m); /* the payload frame (the first is the routing id) */
        }
        fprintf(g_out, "DONE %.9f\n", mono());
        fflush(g_out);
    }
    zmq_msg_close(&m);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(g_out, "RSS %ld\n", ru.ru_maxrss);
    fclose(g_out);
    zmq_close(r);
    zmq_ctx_term(ctx);
    return 0;
}

/* Starts this program again as a child with the given role; returns a stream of its pipe. */
static const char *g_server_env[8]; /* --server-env KEY=VALUE: set in the server child only */
static int g_n_server_env;

static FILE *spawn_role(pid_t *pid, char *const extra[], FILE **cmd)
{
    int p[2], c[2] = {-1, -1};
    if (pipe(p) != 0 || (cmd && pipe(c) != 0))
        die("pipe");
    fflush(stdout);
    const pid_t parent = getpid();
    *pid = fork();
    if (*pid < 0)
        die("fork");
    if (*pid == 0) {
        bench_in_child(parent); /* ends with this process, however (no orphaned server) */
        close(p[0]);
        if (cmd) { /* its stdin: the parent's commands */
            dup2(c[0], 0);
            close(c[0]);
            close(c[1]);
        }
        char fdb[16];
        snprintf(fdb, sizeof fdb, "%d", p[1]);
        char *argv[16];
        int k = 0;
        argv[k++] = (char *)"bench_server";
        argv[k++] = (char *)"--role-fd";
        argv[k++] = fdb;
        for (int i = 0; extra[i] && k < 15; i++)
            argv[k++] = extra[i];
        argv[k] = NULL;
        if (!strcmp(extra[1], "server"))
            for (int i = 0; i < g_n_server_env; i++)
                putenv((char *)g_server_env[i]); /* e.g. glibc's MALLOC_MMAP_THRESHOLD_ */
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(p[1]);
    if (cmd) {
        close(c[0]);
        *cmd = fdopen(c[1], "w");
    }
    return fdopen(p[0], "r");
}

/* ---- the clients (threads here) ------------------------------------------------------------- */

/* The gate the clients' trainers wait at: a round's N trainers arrive (its N tasks are here),
 * then the main thread opens it for that round. */
typedef struct gate {
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t round; /* the round whose tasks are arriving */
    int arrived;    /* of its N */
    int full;       /* rounds whose N tasks all arrived */
    int opened;     /* rounds the main thread let go */
} gate;

static flc_status trainer(const flc_task *task, flc_update *out, void *user)
{
    gate *g = user;
    for (size_t i = 0; i < out->n_params; i++)
        out->weights[i] += 1e-3f; /* a fixed delta: the cheapest honest "training" */
    out->n_samples = 100;
    out->loss = 1.0;
    pthread_mutex_lock(&g->mu);
    if (task->round != g->round) {
        g->round = task->round;
        g->arrived = 0;
    }
    const int k = g->full; /* this round's number among the rounds this run */
    if (++g->arrived == g->n) {
        g->full++;
        pthread_cond_broadcast(&g->cv);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 600;
    while (g->opened <= k)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&g->mu);
    return FLC_OK;
}

/* Waits until round k's N tasks are all at the gate. */
static void gate_wait_full(gate *g, int k)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 600;
    pthread_mutex_lock(&g->mu);
    while (g->full <= k)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT)
            die("the clients did not all get their task within 600 s");
    pthread_mutex_unlock(&g->mu);
}

/* Lets round k's trainers return; the release time. */
static double gate_open(gate *g, int k)
{
    pthread_mutex_lock(&g->mu);
    const double t = mono();
    g->opened = k + 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return t;
}

typedef struct cli {
    flc_client *c;
    pthread_t th;
    flc_status st;
} cli;

static void *cli_run(void *arg)
{
    cli *c = arg;
    c->st = flc_client_run(c->c);
    return NULL;
}

/* ---- idle sessions (--idle M) -------------------------------------------------------------- */

typedef struct idlers {
    void *ctx;
    void **sock;
    int m;
    atomic_int stop;
    atomic_int paused; /* no heartbeats from them while set (the peer runs) */
    pthread_t th;
} idlers;

/* memory_bytes 1 in a Hello: below any submodel, so the session is admitted, never selected. */
static void idle_send(void *sock, flp_type type, const char *id)
{
    const flp_msg m = type == FLP_HELLO ? bench_hello(id, 1) : flp_msg_header(type, 0, id);
    if (bench_send(sock, &m, ZMQ_DONTWAIT) != 0 && type == FLP_HELLO)
        die("idle sessions: cannot send a Hello");
}

/* Every 2 s each idle session heartbeats (unless paused), and what came to it is read and
 * dropped. */
static void *idle_keep(void *arg)
{
    idlers *d = arg;
    char id[32];
    while (!atomic_load(&d->stop)) {
        for (int i = 0; i < d->m && !atomic_load(&d->paused); i++) {
            char buf[256];
            while (zmq_recv(d->sock[i], buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
            }
            snprintf(id, sizeof id, "idle-%d", i);
            idle_send(d->sock[i], FLP_HEARTBEAT, id);
        }
        for (int t = 0; t < 20 && !atomic_load(&d->stop); t++)
            usleep(100 * 1000);
    }
    return NULL;
}

/* m sessions on ep, each acknowledged, then kept alive by a thread until idle_end. */
static void idle_start(idlers *d, const char *ep, int m)
{
    memset(d, 0, sizeof *d);
    d->m = m;
    if (m == 0)
        return;
    d->ctx = zmq_ctx_new();
    zmq_ctx_set(d->ctx, ZMQ_MAX_SOCKETS, m + 16);
    d->sock = calloc((size_t)m, sizeof *d->sock);
    if (!d->ctx || !d->sock)
        die("idle sessions: out of memory");
    char id[32];
    for (int i = 0; i < m; i++) {
        const int zero = 0;
        if (!(d->sock[i] = zmq_socket(d->ctx, ZMQ_DEALER)))
            die("idle sessions: zmq_socket (raise the descriptor limit, or fewer --idle)");
        zmq_setsockopt(d->sock[i], ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(d->sock[i], ep) != 0)
            die("idle sessions: zmq_connect");
        snprintf(id, sizeof id, "idle-%d", i);
        idle_send(d->sock[i], FLP_HELLO, id);
    }
    for (int i = 0; i < m; i++) { /* each Hello's answer (heartbeats may come first) */
        for (;;) {
            zmq_msg_t z;
            zmq_msg_init(&z);
            if (zmq_msg_recv(&z, d->sock[i], 0) < 0)
                die("idle sessions: recv");
            flp_msg *r = NULL;
            if (flp_decode(&r, zmq_msg_data(&z), zmq_msg_size(&z), NULL, NULL, 0) != FL_OK)
                die("idle sessions: undecodable answer");
            zmq_msg_close(&z);
            const flp_type t = r->type;
            const int ok = t == FLP_ACK && r->ack.status == 0;
            flp_msg_free(r);
            if (t == FLP_HEARTBEAT)
                continue;
            if (!ok)
                die("idle sessions: a Hello was not acknowledged");
            break;
        }
    }
    pthread_create(&d->th, NULL, idle_keep, d);
}

static void idle_end(idlers *d)
{
    if (d->m == 0)
        return;
    atomic_store(&d->stop, 1);
    pthread_join(d->th, NULL);
    for (int i = 0; i < d->m; i++)
        zmq_close(d->sock[i]);
    zmq_ctx_term(d->ctx);
    free(d->sock);
}

/* ---- raw ZeroMQ peer ------------------------------------------------------------------------ */

typedef struct raw_peer raw_peer;

typedef struct raw_sender {
    raw_peer *p;
    void *sock; /* connected once, by the main thread, before this thread starts */
    pthread_t th;
} raw_sender;

/* The receiver child and n sender threads here, each with its own DEALER connection, living
 * for a whole (codec, N) pair; a repetition at a time (raw_rep). */
struct raw_peer {
    int n;
    pid_t pid;
    FILE *in;  /* the child's reports */
    FILE *cmd; /* its commands */
    void *ctx;
    raw_sender *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int reps;  /* repetitions released */
    int sent;  /* senders that have sent every message of the current one */
    int quit;
    size_t n_msgs;          /* the current repetition: n_msgs messages of sizes[i] bytes each */
    const size_t *sizes;
    unsigned char *buf;     /* their bytes (cap of them) */
    size_t cap;
    double rss_mb;          /* the receiver's peak RSS, at raw_end */
};

static void *raw_send(void *arg)
{
    raw_sender *s = arg;
    raw_peer *p = s->p;
    for (int done = 0;; done++) {
        pthread_mutex_lock(&p->mu);
        while (p->reps == done && !p->quit)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->reps == done) { /* quit */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        const size_t k = p->n_msgs;
        const size_t *sizes = p->sizes;
        const unsigned char *buf = p->buf;
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < k; i++)
            if (zmq_send(s->sock, buf, sizes[i], 0) != (int)sizes[i])
                die("raw send");
        pthread_mutex_lock(&p->mu);
        p->sent++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

/* One repetition: every sender sends sizes[0..k) at once; seconds from their release to the
 * receiver's last byte. */
static double raw_rep(raw_peer *p, const size_t *sizes, size_t k)
{
    size_t per = 0, maxsz = 0;
    for (size_t i = 0; i < k; i++) {
        per += sizes[i];
        maxsz = sizes[i] > maxsz ? sizes[i] : maxsz;
    }
    if (maxsz > p->cap) { /* the senders are idle between repetitions */
        free(p->buf);
        if (!(p->buf = malloc(maxsz)))
            die("raw: out of memory");
        for (size_t i = 0; i < maxsz; i++)
            p->buf[i] = (unsigned char)(i * 131 + 7);
        p->cap = maxsz;
    }
    fprintf(p->cmd, "REP %llu\n", (unsigned long long)per * (unsigned long long)p->n);
    fflush(p->cmd);
    pthread_mutex_lock(&p->mu);
    p->n_msgs = k;
    p->sizes = sizes;
    p->sent = 0;
    const double t0 = mono();
    p->reps++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    char line[128];
    double t = 0;
    if (!fgets(line, sizeof line, p->in) || sscanf(line, "DONE %lf", &t) != 1)
        die("raw receiver failed");
    pthread_mutex_lock(&p->mu);
    while (p->sent < p->n)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return t - t0;
}

/* The receiver child and n connected senders; every connection made (one byte over each)
 * before this returns. */
static void raw_start(raw_peer *p, int n)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    char *extra[] = {"--role", "raw", NULL};
    p->in = spawn_role(&p->pid, extra, &p->cmd);
    char line[512], ep[256];
    if (!fgets(line, sizeof line, p->in) || sscanf(line, "EP %255s", ep) != 1)
        die("raw child did not start");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->ctx = zmq_ctx_new();
    zmq_ctx_set(p->ctx, ZMQ_IO_THREADS, 2); /* as the clients' context */
    p->s = calloc((size_t)n, sizeof *p->s);
    if (!p->ctx || !p->s)
        die("raw: out of memory");
    for (int i = 0; i < n; i++) {
        p->s[i].p = p;
        if (!(p->s[i].sock = zmq_socket(p->ctx, ZMQ_DEALER)) || zmq_connect(p->s[i].sock, ep) != 0)
            die("raw: zmq_socket or zmq_connect");
        pthread_create(&p->s[i].th, NULL, raw_send, &p->s[i]);
    }
    const size_t one = 1;
    raw_rep(p, &one, 1);
}

static void raw_end(raw_peer *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->s[i].th, NULL);
        zmq_close(p->s[i].sock); /* every byte was received: nothing to linger for */
    }
    zmq_ctx_term(p->ctx);
    fclose(p->cmd); /* the child's end of input: it reports its RSS and exits */
    char line[128];
    long kb = 0;
    while (fgets(line, sizeof line, p->in))
        sscanf(line, "RSS %ld", &kb);
    fclose(p->in);
    int ws;
    waitpid(p->pid, &ws, 0);
    p->rss_mb = kb / 1024.0;
    free(p->s);
    free(p->buf);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

/* ---- one (codec, N) pair: ours and the peer, alternated ------------------------------------ */


typedef struct result {
    bench_stat ups, mbs, raw_mbs, window, pair_ratio;
    double rss_mb, raw_rss_mb, bytes_per_update, server_cpu_s;
} result;

/* The peer's messages for one update of `per` bytes: k messages of equal share. */
static void split_update(size_t *sizes, size_t k, size_t per)
{
    for (size_t i = 0; i < k; i++)
        sizes[i] = per / k + (i < per % k ? 1 : 0);
}

static result run_pair(const char *arch, const char *codec, int n, int rounds, const char *ce,
                       int idle, size_t k)
{
    char nb[16], rb[16];
    snprintf(nb, sizeof nb, "%d", n);
    snprintf(rb, sizeof rb, "%d", rounds + 1); /* round 0 is the warm-up */
    char *extra[] = {"--role", "server", "--arch", (char *)arch, "--codec", (char *)codec,
                     "--clients", nb, "--rounds", rb, "--chunk-elems", (char *)ce, NULL};
    pid_t pid;
    FILE *in = spawn_role(&pid, extra, NULL);
    char line[512], ep[256];
    if (!fgets(line, sizeof line, in) || sscanf(line, "EP %255s", ep) != 1)
        die("server child did not start");
    idlers idl;
    idle_start(&idl, ep, idle); /* before the clients: no round starts without them */
    gate g;
    memset(&g, 0, sizeof g);
    g.n = n;
    g.round = (uint64_t)-1;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 2);
    cli *cs = calloc((size_t)n, sizeof *cs);
    char (*ids)[32] = calloc((size_t)n, 32);
    size_t *sizes = calloc(k, sizeof *sizes);
    if (!ctx || !cs || !ids || !sizes)
        die("out of memory");
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], 32, "bench-%d", i);
        flc_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.server_endpoint = ep;
        cfg.client_id = ids[i];
        cfg.zmq_context = ctx;
        cfg.backend = FLC_BACKEND_OTHER;
        cfg.train = trainer;
        cfg.train_user = &g;
        cfg.liveness_ms = 60000;
        if (flc_client_new(&cfg, &cs[i].c) != FLC_OK)
            die("flc_client_new");
        pthread_create(&cs[i].th, NULL, cli_run, &cs[i]);
    }
    raw_peer peer;
    raw_start(&peer, n);
    double ups[64], mbs[64], raw_mbs[64], win[64], ratio[64];
    double per = 0, bytes = 0, reported = 0;
    for (int r = 0; r <= rounds; r++) {
        gate_wait_full(&g, r); /* ours' clients hold round r's tasks */
        if (r >= 1) {          /* the peer's repetition r, with the bytes of ours' last round */
            atomic_store(&idl.paused, 1);
            split_update(sizes, k, (size_t)per);
            if (r == 1)
                raw_rep(&peer, sizes, k); /* the peer's warm-up */
            const double w = raw_rep(&peer, sizes, k);
            raw_mbs[r - 1] = (double)(size_t)per * n / 1e6 / w;
            atomic_store(&idl.paused, 0);
        }
        const double rel = gate_open(&g, r);
        double t = 0, by = 0, rep = 0;
        for (;;) {
            if (!fgets(line, sizeof line, in))
                die("the server ended before its last round");
            if (sscanf(line, "ROUND %lf %lf %lf", &t, &by, &rep) == 3)
                break;
        }
        if (rep != n)
            die("the server closed a round without every update");
        per = by / rep;
        bytes += by;
        reported += rep;
        if (r >= 1) {
            win[r - 1] = t - rel;
            ups[r - 1] = rep / win[r - 1];
            mbs[r - 1] = by / 1e6 / win[r - 1];
            ratio[r - 1] = mbs[r - 1] / raw_mbs[r - 1];
        }
    }
    long rss_kb = 0;
    double cpu = 0;
    while (fgets(line, sizeof line, in)) {
        long kb;
        int st;
        if (sscanf(line, "RSS %ld %d %lf", &kb, &st, &cpu) == 3)
            rss_kb = kb;
    }
    fclose(in);
    int ws;
    waitpid(pid, &ws, 0);
    for (int i = 0; i < n; i++) {
        flc_client_stop(cs[i].c);
        pthread_join(cs[i].th, NULL);
        flc_client_free(cs[i].c);
    }
    zmq_ctx_term(ctx);
    raw_end(&peer);
    idle_end(&idl);
    free(cs);
    free(ids);
    free(sizes);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    result res = {bench_stat_of(ups, rounds), bench_stat_of(mbs, rounds), bench_stat_of(raw_mbs, rounds),
                  bench_stat_of(win, rounds), bench_stat_of(ratio, rounds), rss_kb / 1024.0, peer.rss_mb,
                  bytes / reported, cpu};
    return res;
}

/* v as a whole number in lo..hi, or the option's message and exit 2 */
static long count_of(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    const long x = strtol(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) {
        fprintf(stderr, "bench_server: %s takes %ld..%ld, not '%s'\n", opt, lo, hi, v);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    const char *arch = "cnn:62", *codecs = "rot+q4+zstd,none", *ce = "65536", *role = NULL;
    const char *codec = "none";
    int only_n = 0, rounds = 9, fd = -1, idle = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: bench_server [--clients N] [--rounds R] [--arch SPEC] [--codecs LIST]\n"
                   "                    [--chunk-elems E] [--idle M] [--server-env KEY=VALUE]...\n"
                   "The fl_server library's upload throughput and peak RSS with N simultaneous\n"
                   "clients (default N = 1, 8 and 64; arch cnn:62; codecs rot+q4+zstd,none; 9\n"
                   "measured rounds after a warm-up), each round from the clients' release to the\n"
                   "server's round close. Peer: raw ZeroMQ DEALER->ROUTER throughput for the same\n"
                   "bytes in the same run, alternated with ours round by round, connections kept\n"
                   "on both sides. Medians; the last line is float32 'none', ratio = ours / peer.\n"
                   "--clients N: that N only (1..1024); --rounds R: measured rounds (1..60);\n"
                   "--arch SPEC: the model (an flm_arch spec: fl_sim --help, --model); --codecs\n"
                   "LIST: uplink codec specs, comma-separated, each a run of its own\n"
                   "(compress/README.md); --chunk-elems E: the server's codec.chunk_elems (65536);\n"
                   "--idle M: M idle clients besides; --server-env KEY=VALUE: set in the server\n"
                   "child's environment only (up to 8; e.g. MALLOC_MMAP_THRESHOLD_=1073741824).\n"
                   "Details: the comment at the top of bench/bench_server.c.\n");
            return 0;
        }
        if (!v)
            die("every option takes a value (bench_server --help)");
        i++;
        if (!strcmp(a, "--clients")) only_n = (int)count_of(a, v, 1, 1024);
        else if (!strcmp(a, "--rounds")) rounds = (int)count_of(a, v, 1, 61); /* the child: R + 1 */
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--codecs")) codecs = v;
        else if (!strcmp(a, "--codec")) codec = v;
        else if (!strcmp(a, "--chunk-elems")) { /* the server's range; 0 divided below */
            count_of(a, v, 1, 1048576);
            ce = v;
        }
        else if (!strcmp(a, "--idle")) idle = (int)count_of(a, v, 0, 100000);
        else if (!strcmp(a, "--server-env")) {
            if (g_n_server_env >= 8 || !strchr(v, '='))
                die("--server-env takes KEY=VALUE, up to 8 times");
            g_server_env[g_n_server_env++] = v;
        }
        else if (!strcmp(a, "--role")) role = v;
        else if (!strcmp(a, "--role-fd")) fd = atoi(v);
        else die("unknown option");
    }
    if (role && !strcmp(role, "server"))
        return role_server(fd, arch, codec, only_n, rounds, ce);
    if (role && !strcmp(role, "raw"))
        return role_raw(fd);
    if (rounds < 1 || rounds > 60 || only_n < 0 || only_n > 1024 || idle < 0 || idle > 100000)
        die("--rounds 1..60, --clients 1..1024, --idle 0..100000");

    flm_arch a;
    char err[256];
    if (flm_arch_parse(arch, &a, err, sizeof err) != FL_OK)
        die(err);
    const size_t chunk = strtoul(ce, NULL, 10);
    size_t k = 0;
    for (int t = 0; t < a.n_tensors; t++)
        k += (a.tensors[t].numel + chunk - 1) / chunk;
    const double model_mb = a.n_params * 4.0 / (1 << 20);
    const double acc_mb = a.n_params * 8.0 / (1 << 20);     /* 64-bit fixed-point accumulator */
    const double bar_mb = model_mb + acc_mb + 64;
    printf("bench_server: %s, %zu parameters (%.1f MiB float32), %zu chunk messages per update, "
           "%d rounds after a warm-up, alternated with the peer (medians), tcp loopback, plain text\n",
           a.spec, a.n_params, model_mb, k, rounds);
    printf("RSS bar: model %.1f + accumulator %.1f + 64 = %.1f MiB\n", model_mb, acc_mb, bar_mb);

    int ns[3] = {1, 8, 64}, nn = 3;
    if (only_n) {
        ns[0] = only_n;
        nn = 1;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", codecs);
    result last = {0};
    for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        for (int j = 0; j < nn; j++) {
            const int n = ns[j];
            const result res = run_pair(arch, c, n, rounds, ce, idle, k);
            printf("codec %-12s N=%-3d  ours: %8.2f updates/s %9.1f MB/s (%.1f-%.1f; %.2f MB/update, "
                   "median round %.3f s)  raw zmq: %9.1f MB/s (%.1f-%.1f)  ratio %.2f (pairs "
                   "%.2f-%.2f)  server peak RSS %.1f MiB (bar %.1f: %s; raw receiver %.1f MiB); "
                   "server CPU %.2f ms an update%s\n",
                   c, n, res.ups.med, res.mbs.med, res.mbs.lo, res.mbs.hi,
                   res.bytes_per_update / 1e6, res.window.med, res.raw_mbs.med, res.raw_mbs.lo,
                   res.raw_mbs.hi, res.mbs.med / res.raw_mbs.med, res.pair_ratio.lo,
                   res.pair_ratio.hi, res.rss_mb, bar_mb, res.rss_mb <= bar_mb ? "within" : "ABOVE",
                   res.raw_rss_mb, res.server_cpu_s * 1e3 / ((double)n * (rounds + 1)),
                   idle ? " (with the idle)" : "");
            fflush(stdout);
            last = res;
        }
    }
    printf("updates_per_s=%.3f mb_per_s=%.1f raw_zmq_mb_per_s=%.1f ratio=%.3f "
           "server_peak_rss_mb=%.1f\n", last.ups.med, last.mbs.med, last.raw_mbs.med,
           last.mbs.med / last.raw_mbs.med, last.rss_mb);
    return 0;
}
