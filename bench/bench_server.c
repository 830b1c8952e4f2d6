/* bench_server: the fl_server daemon's upload throughput and memory with N simultaneous clients,
 * beside raw ZeroMQ throughput for the same bytes on the same machine in the same run.
 *
 *   bench_server [--clients N] [--rounds R] [--arch SPEC] [--codecs LIST] [--chunk-elems E]
 *                [--idle M] [--server-env KEY=VALUE ...]   (environment of the server child only, e.g.
 *                 MALLOC_MMAP_THRESHOLD_=1073741824 to see what fresh mmap'd chunk buffers cost)
 *
 * Default: N = 1, 8 and 64 (--clients N: that N only), arch cnn:62 (6,603,710 parameters), policy
 * full (every update is the whole model), codecs "rot+q4+zstd,none" (the LAST line is float32
 * `none`), R = 3 rounds, plain-text tcp on 127.0.0.1.
 *
 * Ours: the server library (include/fls.h) runs in a child process (this program re-executed with
 * --role server, so its peak RSS is its own: getrusage ru_maxrss at exit). N libflclient clients run
 * as threads here with a plug-in trainer that adds a fixed delta at once (no training). Each round,
 * every client's trainer waits at a barrier until all N have their task, then all return together:
 * the timed window runs from that release to the server's round close (its on_round callback,
 * CLOCK_MONOTONIC across processes). So it covers client-side encoding, the uploads over loopback,
 * the server's decode + validation + exact fixed-point aggregation, and the round finalisation; the
 * downlink is outside it. updates_per_s = N / window and mb_per_s = the round's uplink payload bytes
 * (the server's bytes_up metric) / window, for the best of the R rounds (the machine is shared).
 *
 * Peer: the same process layout without fedrop: a child (--role raw) binds a ROUTER and receives;
 * N DEALER threads here each send the same bytes a client uploaded, as the same number of messages
 * of the same sizes (ceil(numel / chunk_elems) per tensor), released together; the window ends
 * when the receiver has every byte; best of R repetitions. ratio = mb_per_s / raw_zmq_mb_per_s.
 *
 * Peak RSS bar: model + accumulator + 64 MB (printed as rss_bar_mb). The core keeps an uploading
 * client's encoded chunks until its update is complete, so with simultaneous uploads the server
 * holds up to N encoded updates (26.4 MB each in float32): see the printed peak against N.
 *
 * --idle M: M more connections, each a session that said Hello (memory_bytes 1: never selected)
 * and heartbeats, beside the N clients: what a fleet's idle devices cost the rounds (the
 * reactor's work that grows with the sessions it holds). Also printed: the server process's CPU
 * time over its whole life, per update.
 *
 * LAST line (for the float32 codec and the last N):
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

#include "bench_wire.h"
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

static int role_raw(int fd, unsigned long long total)
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
    unsigned long long got = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (got < total) {
        if (zmq_msg_recv(&m, r, 0) < 0)
            die("raw recv");
        if (!zmq_msg_more(&m))
            got += zmq_msg_size(&m); /* the payload frame (the first is the routing id) */
    }
    const double t = mono();
    zmq_msg_close(&m);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(g_out, "DONE %.9f %ld\n", t, ru.ru_maxrss);
    fclose(g_out);
    zmq_close(r);
    zmq_ctx_term(ctx);
    return 0;
}

/* Starts this program again as a child with the given role; returns a stream of its pipe. */
static const char *g_server_env[8]; /* --server-env KEY=VALUE: set in the server child only */
static int g_n_server_env;

static FILE *spawn_role(pid_t *pid, char *const extra[])
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    *pid = fork();
    if (*pid < 0)
        die("fork");
    if (*pid == 0) {
        close(p[0]);
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
    return fdopen(p[0], "r");
}

/* ---- the clients (threads here) ------------------------------------------------------------- */

typedef struct bench {
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t round;      /* round the barrier is collecting */
    int arrived;
    double release[64];  /* release time per round (rounds < 64) */
} bench;

static flc_status trainer(const flc_task *task, flc_update *out, void *user)
{
    bench *b = user;
    for (size_t i = 0; i < out->n_params; i++)
        out->weights[i] += 1e-3f; /* a fixed delta: the cheapest honest "training" */
    out->n_samples = 100;
    out->loss = 1.0;
    pthread_mutex_lock(&b->mu);
    if (task->round != b->round) {
        b->round = task->round;
        b->arrived = 0;
    }
    if (++b->arrived == b->n) {
        if (task->round < 64)
            b->release[task->round] = mono();
        pthread_cond_broadcast(&b->cv);
    } else {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 120;
        while (b->round == task->round && b->arrived < b->n)
            if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&b->mu);
    return FLC_OK;
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
    volatile int stop;
    pthread_t th;
} idlers;

/* memory_bytes 1 in a Hello: below any submodel, so the session is admitted, never selected. */
static void idle_send(void *sock, flp_type type, const char *id)
{
    const flp_msg m = type == FLP_HELLO ? bench_hello(id, 1) : flp_msg_header(type, 0, id);
    if (bench_send(sock, &m, ZMQ_DONTWAIT) != 0 && type == FLP_HELLO)
        die("idle sessions: cannot send a Hello");
}

/* Every 2 s each idle session heartbeats, and what came to it is read and dropped. */
static void *idle_keep(void *arg)
{
    idlers *d = arg;
    char id[32];
    while (!d->stop) {
        for (int i = 0; i < d->m; i++) {
            char buf[256];
            while (zmq_recv(d->sock[i], buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
            }
            snprintf(id, sizeof id, "idle-%d", i);
            idle_send(d->sock[i], FLP_HEARTBEAT, id);
        }
        for (int t = 0; t < 20 && !d->stop; t++)
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
    d->stop = 1;
    pthread_join(d->th, NULL);
    for (int i = 0; i < d->m; i++)
        zmq_close(d->sock[i]);
    zmq_ctx_term(d->ctx);
    free(d->sock);
}

typedef struct result {
    double updates_per_s, mb_per_s, rss_mb, bytes_per_update, window_s, server_cpu_s;
} result;

static result run_ours(const char *arch, const char *codec, int n, int rounds, const char *ce,
                       int idle)
{
    char nb[16], rb[16];
    snprintf(nb, sizeof nb, "%d", n);
    snprintf(rb, sizeof rb, "%d", rounds);
    char *extra[] = {"--role", "server", "--arch", (char *)arch, "--codec", (char *)codec,
                     "--clients", nb, "--rounds", rb, "--chunk-elems", (char *)ce, NULL};
    pid_t pid;
    FILE *in = spawn_role(&pid, extra);
    char line[512], ep[256];
    if (!fgets(line, sizeof line, in) || sscanf(line, "EP %255s", ep) != 1)
        die("server child did not start");
    idlers idl;
    idle_start(&idl, ep, idle); /* before the clients: no round starts without them */
    bench b;
    memset(&b, 0, sizeof b);
    b.n = n;
    b.round = (uint64_t)-1;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    void *ctx = zmq_ctx_new();
    const int io = 2;
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, io);
    cli *cs = calloc((size_t)n, sizeof *cs);
    char (*ids)[32] = calloc((size_t)n, 32);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], 32, "bench-%d", i);
        flc_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.server_endpoint = ep;
        cfg.client_id = ids[i];
        cfg.zmq_context = ctx;
        cfg.backend = FLC_BACKEND_OTHER;
        cfg.train = trainer;
        cfg.train_user = &b;
        cfg.liveness_ms = 60000;
        if (flc_client_new(&cfg, &cs[i].c) != FLC_OK)
            die("flc_client_new");
        pthread_create(&cs[i].th, NULL, cli_run, &cs[i]);
    }
    double bytes = 0, reported = 0, best_w = 0, best_rep = 1, best_bytes = 0;
    long rss_kb = 0;
    double cpu = 0;
    int r = 0;
    while (fgets(line, sizeof line, in)) {
        double t, by, rep;
        long kb;
        int st;
        if (sscanf(line, "ROUND %lf %lf %lf", &t, &by, &rep) == 3) {
            pthread_mutex_lock(&b.mu);
            const double rel = r < 64 ? b.release[r] : 0;
            pthread_mutex_unlock(&b.mu);
            /* Best round (as the peer's best repetition): the machine is shared, so the least
             * disturbed round is the fairest figure for both. */
            if (rep > 0 && (best_w == 0 || (t - rel) / rep < best_w / best_rep)) {
                best_w = t - rel;
                best_rep = rep;
                best_bytes = by;
            }
            bytes += by;
            reported += rep;
            r++;
        } else if (sscanf(line, "RSS %ld %d %lf", &kb, &st, &cpu) == 3) {
            rss_kb = kb;
        }
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
    idle_end(&idl);
    free(cs);
    free(ids);
    if (r != rounds || reported != (double)n * rounds)
        die("the server did not finish every round with every update");
    result res = {best_rep / best_w, best_bytes / 1e6 / best_w, rss_kb / 1024.0,
                  bytes / reported, best_w, cpu};
    return res;
}

/* ---- raw ZeroMQ peer ------------------------------------------------------------------------ */

typedef struct raw_sender {
    const char *ep;
    void *ctx;
    size_t n_msgs;
    const size_t *sizes;
    const unsigned char *buf;
    bench *b;
    pthread_t th;
} raw_sender;

static void *raw_send(void *arg)
{
    raw_sender *s = arg;
    void *d = zmq_socket(s->ctx, ZMQ_DEALER);
    zmq_connect(d, s->ep);
    /* barrier: all senders start together (round 0 of the bench struct) */
    pthread_mutex_lock(&s->b->mu);
    if (++s->b->arrived == s->b->n) {
        s->b->release[0] = mono();
        pthread_cond_broadcast(&s->b->cv);
    } else {
        while (s->b->arrived < s->b->n)
            pthread_cond_wait(&s->b->cv, &s->b->mu);
    }
    pthread_mutex_unlock(&s->b->mu);
    for (size_t i = 0; i < s->n_msgs; i++)
        zmq_send(d, s->buf, s->sizes[i], 0);
    const int linger = -1;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(d);
    return NULL;
}

/* n senders each sending messages of sizes[0..k) (one update's worth), `rounds` times over. */
static double run_raw(int n, int rounds, const size_t *sizes, size_t k, double *rss_mb)
{
    size_t per = 0, maxsz = 0;
    for (size_t i = 0; i < k; i++) {
        per += sizes[i];
        if (sizes[i] > maxsz)
            maxsz = sizes[i];
    }
    size_t *all = malloc(k * (size_t)rounds * sizeof *all);
    for (int r = 0; r < rounds; r++)
        memcpy(all + (size_t)r * k, sizes, k * sizeof *all);
    const unsigned long long total = (unsigned long long)per * (unsigned long long)n * rounds;
    char tb[32];
    snprintf(tb, sizeof tb, "%llu", total);
    char *extra[] = {"--role", "raw", "--bytes", tb, NULL};
    pid_t pid;
    FILE *in = spawn_role(&pid, extra);
    char line[512], ep[256];
    if (!fgets(line, sizeof line, in) || sscanf(line, "EP %255s", ep) != 1)
        die("raw child did not start");
    unsigned char *buf = malloc(maxsz);
    for (size_t i = 0; i < maxsz; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    bench b;
    memset(&b, 0, sizeof b);
    b.n = n;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 2);
    raw_sender *s = calloc((size_t)n, sizeof *s);
    for (int i = 0; i < n; i++) {
        s[i] = (raw_sender){ep, ctx, k * (size_t)rounds, all, buf, &b, 0};
        pthread_create(&s[i].th, NULL, raw_send, &s[i]);
    }
    double t_done = 0;
    long kb = 0;
    while (fgets(line, sizeof line, in))
        sscanf(line, "DONE %lf %ld", &t_done, &kb);
    fclose(in);
    int ws;
    waitpid(pid, &ws, 0);
    for (int i = 0; i < n; i++)
        pthread_join(s[i].th, NULL);
    zmq_ctx_term(ctx);
    free(s);
    free(buf);
    free(all);
    *rss_mb = kb / 1024.0;
    if (t_done == 0)
        die("raw receiver failed");
    return (double)total / 1e6 / (t_done - b.release[0]);
}

int main(int argc, char **argv)
{
    const char *arch = "cnn:62", *codecs = "rot+q4+zstd,none", *ce = "65536", *role = NULL;
    const char *codec = "none";
    int only_n = 0, rounds = 3, fd = -1, idle = 0;
    unsigned long long raw_bytes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: bench_server [--clients N] [--rounds R] [--arch SPEC] [--codecs LIST]\n"
                   "                    [--chunk-elems E] [--idle M] [--server-env KEY=VALUE]...\n"
                   "The fl_server library's upload throughput and peak RSS with N simultaneous\n"
                   "clients (default N = 1, 8 and 64; arch cnn:62; codecs rot+q4+zstd,none; 3\n"
                   "rounds), beside raw ZeroMQ DEALER->ROUTER throughput for the same bytes in the\n"
                   "same run; the last line is float32 'none'. --idle M: M idle clients besides.\n"
                   "Details: the comment at the top of bench/bench_server.c.\n");
            return 0;
        }
        if (!v)
            die("every option takes a value (bench_server --help)");
        i++;
        if (!strcmp(a, "--clients")) only_n = atoi(v);
        else if (!strcmp(a, "--rounds")) rounds = atoi(v);
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--codecs")) codecs = v;
        else if (!strcmp(a, "--codec")) codec = v;
        else if (!strcmp(a, "--chunk-elems")) ce = v;
        else if (!strcmp(a, "--idle")) idle = atoi(v);
        else if (!strcmp(a, "--server-env") && g_n_server_env < 8 && strchr(v, '='))
            g_server_env[g_n_server_env++] = v;
        else if (!strcmp(a, "--role")) role = v;
        else if (!strcmp(a, "--role-fd")) fd = atoi(v);
        else if (!strcmp(a, "--bytes")) raw_bytes = strtoull(v, NULL, 10);
        else die("unknown option");
    }
    if (role && !strcmp(role, "server"))
        return role_server(fd, arch, codec, only_n, rounds, ce);
    if (role && !strcmp(role, "raw"))
        return role_raw(fd, raw_bytes);
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
           "%d rounds, tcp loopback, plain text\n", a.spec, a.n_params, model_mb, k, rounds);
    printf("RSS bar: model %.1f + accumulator %.1f + 64 = %.1f MiB\n", model_mb, acc_mb, bar_mb);

    int ns[3] = {1, 8, 64}, nn = 3;
    if (only_n) {
        ns[0] = only_n;
        nn = 1;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", codecs);
    result last = {0};
    double last_raw = 0;
    for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        for (int j = 0; j < nn; j++) {
            const int n = ns[j];
            result res = run_ours(arch, c, n, rounds, ce, idle);
            /* The peer sends exactly the bytes one update took, as k messages of equal share. */
            size_t *sizes = malloc(k * sizeof *sizes);
            const size_t per = (size_t)res.bytes_per_update;
            for (size_t i = 0; i < k; i++)
                sizes[i] = per / k + (i < per % k ? 1 : 0);
            double raw_rss = 0, raw = 0;
            for (int rep = 0; rep < rounds; rep++) { /* best of R repetitions of one round */
                double rr;
                const double x = run_raw(n, 1, sizes, k, &rr);
                if (x > raw)
                    raw = x;
                if (rr > raw_rss)
                    raw_rss = rr;
            }
            free(sizes);
            printf("codec %-12s N=%-3d  ours: %8.2f updates/s %9.1f MB/s  (%.2f MB/update, best round "
                   "%.3f s)  raw zmq: %9.1f MB/s  ratio %.2f  server peak RSS %.1f MiB (bar %.1f: %s; "
                   "raw receiver %.1f MiB); server CPU %.2f ms an update%s\n",
                   c, n, res.updates_per_s, res.mb_per_s, res.bytes_per_update / 1e6, res.window_s,
                   raw, res.mb_per_s / raw, res.rss_mb, bar_mb,
                   res.rss_mb <= bar_mb ? "within" : "ABOVE", raw_rss,
                   res.server_cpu_s * 1e3 / ((double)n * rounds), idle ? " (with the idle)" : "");
            fflush(stdout);
            last = res;
            last_raw = raw;
        }
    }
    printf("updates_per_s=%.3f mb_per_s=%.1f raw_zmq_mb_per_s=%.1f ratio=%.3f "
           "server_peak_rss_mb=%.1f\n", last.updates_per_s, last.mb_per_s, last_raw,
           last.mb_per_s / last_raw, last.rss_mb);
    return 0;
}
