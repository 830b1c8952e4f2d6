/* bench_ids: how fast fl_server takes a flood of new devices, its client-id journal on against
 * off, in the same run, the two alternated.
 *
 *   bench_ids [--ids N] [--conns C] [--reps R] [--dir DIR]
 *
 * Ours: the server library (include/fls.h) in a thread of this process, plain text over ipc://,
 * with checkpoint.path DIR/j.ckpt: each new id's record is appended to DIR/j.ckpt.ids and synced
 * to disk before its Hello is answered (fl_server/README.md, "Client ids across restarts"). C
 * connections (DEALER sockets) say Hello with N new ids in all, each connection one id after the
 * other (the next when the last one's Ack came), as a fleet of devices coming online at once
 * does. The window of a flood runs from the first Hello to the last Ack.
 * Also printed: the server thread's CPU time a Hello (its reactor's work, whatever the client
 * side's polling of C sockets costs).
 * Peer: the same floods against a second server of the same options without checkpoint.path (no
 * journal, nothing written): the floor.
 * Both servers run side by side for the whole run, each with its own C connections, made and
 * warmed up (one new id each, untimed) before the first timed flood. Then R floods of each,
 * alternated: journal, no journal, journal, no journal, ... (each flood new ids; while one
 * server floods, the other is idle). Figures: the median of each side's R floods (min and max
 * beside); ratio = median hellos_per_s / median nojournal_hellos_per_s. A disk that stalls now
 * and then (a shared machine) moves single floods by 5x: the medians of alternated floods keep
 * such a stall from landing on one side only, as it could when one side's floods all ran first.
 * DIR (default: a new directory under the current one, removed at the end) must be on the disk
 * to be measured: a tmpfs syncs for free (the last line names the file system). A DIR given with
 * --dir keeps only what was there before: the journal, its lock and the sockets are removed at
 * the end, and a DIR that already holds a journal (DIR/j.ckpt.ids) is refused, since it binds the
 * ids the floods name (the same names every run): none would be new, nothing synced.
 * A run that ends early (Ctrl-C, SIGTERM or SIGHUP; a server that stops or refuses a Hello; no
 * answer for 30 s) removes the same files, and the directory it made, before it exits (a signal:
 * after the servers are stopped, and then by that signal, as an unhandled one would).
 * LAST line: hellos_per_s=<f> nojournal_hellos_per_s=<f> ratio=<f> fs=<name>
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_wire.h"
#include "bench_stat.h"
#include "flp_wire.h"
#include "fls.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* What the run made on disk, for every way it ends: the journal's directory (g_dir[0] == 0: none
 * yet), made by this run (g_dir_ours) or the user's --dir, of which only the servers' files go. */
static char g_dir[512];
static int g_dir_ours;

/* The servers' files (journal, its lock, checkpoint, sockets, a journal rewrite's temporaries) and,
 * if this run made it, the directory; said on stderr when something stays. */
static void remove_made(void)
{
    if (!g_dir[0])
        return;
    DIR *d = opendir(g_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        /* in the user's directory, only what the servers make: j.ckpt*, j.sock, n.sock */
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (!g_dir_ours && strncmp(e->d_name, "j.ckpt", 6) && strcmp(e->d_name, "j.sock") &&
             strcmp(e->d_name, "n.sock")))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
        if (unlink(path) != 0)
            fprintf(stderr, "bench_ids: %s left behind: %s\n", path, strerror(errno));
    }
    if (d)
        closedir(d);
    if (g_dir_ours && rmdir(g_dir) != 0)
        fprintf(stderr, "bench_ids: %s left behind: %s\n", g_dir, strerror(errno));
    g_dir[0] = '\0';
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_ids: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    remove_made();
    exit(1);
}

/* SIGINT, SIGTERM, SIGHUP: only noted here. They are blocked in every other thread (the servers'
 * and libzmq's), so they interrupt the main thread's zmq_poll (EINTR), and the main thread stops
 * the servers and removes what the run made. */
static volatile sig_atomic_t g_sig;

static void on_signal(int sig) { g_sig = sig; }

static void block_signals(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(how, &set, NULL);
}

typedef struct served {
    fls_server *s;
    fls_status st;    /* what fls_server_run returned, once ended is 1 */
    atomic_int ended; /* the server thread returned: before a stop, the server failed */
} served;

static void *serve(void *arg)
{
    served *v = arg;
    v->st = fls_server_run(v->s);
    atomic_store(&v->ended, 1);
    return NULL;
}

typedef struct flood {
    void *ctx;
    void **sock;
    int conns;
    clockid_t server_cpu; /* the server thread's CPU clock */
    served *srv;          /* the server the connections talk to */
} flood;

static double cpu_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void send_hello(void *sock, const char *id)
{
    const flp_msg m = bench_hello(id, 0);
    if (bench_send(sock, &m, 0) != 0)
        die("cannot send a Hello", zmq_strerror(zmq_errno()));
}

/* The next message on sock must be the Ack of a Hello (1), or a Heartbeat (0: the server beats
 * for a session whose client is quiet). */
static int expect_ack(void *sock)
{
    zmq_msg_t z;
    zmq_msg_init(&z);
    if (zmq_msg_recv(&z, sock, 0) < 0)
        die("zmq_msg_recv", zmq_strerror(zmq_errno()));
    flp_msg *m = NULL;
    char err[FLP_ERRBUF];
    if (flp_decode(&m, zmq_msg_data(&z), zmq_msg_size(&z), NULL, err, sizeof err) != FL_OK)
        die("the server sent an undecodable message", err);
    zmq_msg_close(&z);
    if (m->type == FLP_HEARTBEAT) {
        flp_msg_free(m);
        return 0;
    }
    if (m->type == FLP_ERROR)
        die("a Hello was refused", m->error.message);
    if (m->type != FLP_ACK || m->ack.of_type != FLP_HELLO || m->ack.status != 0)
        die("the server answered a Hello with something other than its Ack", NULL);
    flp_msg_free(m);
    return 1;
}

/* n Hellos of new ids named TAG-c-k over the connections, each one after the other; seconds,
 * and the server thread's CPU seconds in *cpu; -1 once a signal was taken (g_sig). */
static double run_flood(flood *f, const char *tag, int n, double *cpu)
{
    int *next = calloc((size_t)f->conns, sizeof *next);
    zmq_pollitem_t *it = calloc((size_t)f->conns, sizeof *it);
    if (!next || !it)
        die("out of memory", NULL);
    char id[96];
    int sent = 0, done = 0;
    const double c0 = cpu_s(f->server_cpu), t0 = mono();
    for (int c = 0; c < f->conns && sent < n; c++, sent++) {
        snprintf(id, sizeof id, "%s-%d-%d", tag, c, next[c]++);
        send_hello(f->sock[c], id);
    }
    int quiet_ms = 0; /* since the server last answered */
    while (done < n && !g_sig) {
        for (int c = 0; c < f->conns; c++)
            it[c] = (zmq_pollitem_t){f->sock[c], 0, ZMQ_POLLIN, 0};
        const int k = zmq_poll(it, f->conns, 250);
        if (k < 0 && zmq_errno() == EINTR)
            continue; /* a signal: g_sig */
        if (k < 0)
            die("zmq_poll", zmq_strerror(zmq_errno()));
        if (k == 0) {
            if (atomic_load(&f->srv->ended))
                die("the server stopped", fls_strerror(f->srv->st));
            if ((quiet_ms += 250) >= 30000)
                die("no answer from the server for 30 s", NULL);
            continue;
        }
        quiet_ms = 0;
        for (int c = 0; c < f->conns; c++) {
            if (!(it[c].revents & ZMQ_POLLIN))
                continue;
            if (!expect_ack(f->sock[c]))
                continue;
            done++;
            if (sent < n) {
                snprintf(id, sizeof id, "%s-%d-%d", tag, c, next[c]++);
                send_hello(f->sock[c], id);
                sent++;
            }
        }
    }
    const double dt = mono() - t0;
    *cpu = cpu_s(f->server_cpu) - c0;
    free(next);
    free(it);
    return g_sig ? -1 : dt;
}

/* One side of the comparison: a server (journal or not) in its own thread, and its connections. */
typedef struct side {
    int journal;
    fls_options *o;
    served v;
    pthread_t th;
    flood f;
    double hps[1000]; /* Hellos a second of each timed flood */
} side;

/* Starts a server with (journal) or without the id journal, connects conns sockets to it and
 * warms them up (every connection made, one new id each, untimed); -1 if a signal came first. */
static int side_start(side *sd, const char *dir, int journal, int conns)
{
    memset(sd, 0, sizeof *sd);
    block_signals(SIG_BLOCK); /* the threads made from here on: the server's, libzmq's */
    sd->journal = journal;
    char yaml[2048], ep[600];
    snprintf(ep, sizeof ep, "ipc://%s/%c.sock", dir, journal ? 'j' : 'n');
    int w = snprintf(yaml, sizeof yaml,
                     "server:\n  insecure: true\n  endpoints: ['%s']\n  max_clients: 1000000\n"
                     "model:\n  arch: \"mlp:6-5-3\"\nround:\n  clients: 1000000\n", ep);
    if (journal)
        snprintf(yaml + w, sizeof yaml - (size_t)w, "checkpoint:\n  path: '%s/j.ckpt'\n", dir);
    char err[512];
    if (fls_options_new(&sd->o) != FLS_OK ||
        fls_options_load_mem(sd->o, yaml, strlen(yaml), "bench_ids", err, sizeof err) != FLS_OK)
        die("bad server options", err);
    fls_host host = {0};
    const fls_status st = fls_server_new(sd->o, &host, &sd->v.s);
    if (st != FLS_OK)
        die("the server did not start", fls_strerror(st));
    if (pthread_create(&sd->th, NULL, serve, &sd->v) != 0) {
        fls_server_free(sd->v.s);
        sd->v.s = NULL;
        die("pthread_create", NULL);
    }
    sd->f = (flood){zmq_ctx_new(), calloc((size_t)conns, sizeof(void *)), conns, 0, &sd->v};
    if (!sd->f.ctx || !sd->f.sock)
        die("zmq_ctx_new", NULL);
    zmq_ctx_set(sd->f.ctx, ZMQ_MAX_SOCKETS, conns + 16);
    if (pthread_getcpuclockid(sd->th, &sd->f.server_cpu) != 0)
        die("pthread_getcpuclockid", NULL);
    for (int c = 0; c < conns; c++) {
        const int zero = 0;
        if (!(sd->f.sock[c] = zmq_socket(sd->f.ctx, ZMQ_DEALER)))
            die("zmq_socket", zmq_strerror(zmq_errno()));
        zmq_setsockopt(sd->f.sock[c], ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(sd->f.sock[c], ep) != 0)
            die("zmq_connect", zmq_strerror(zmq_errno()));
    }
    block_signals(SIG_UNBLOCK); /* one that came meanwhile is taken here */
    double cpu;
    return run_flood(&sd->f, journal ? "jw" : "nw", conns, &cpu) < 0 ? -1 : 0;
}

/* Timed flood number r (new ids) of this side; -1 if a signal came. */
static int side_flood(side *sd, int r, int n)
{
    char tag[32];
    snprintf(tag, sizeof tag, "%c%d", sd->journal ? 'j' : 'n', r);
    double cpu;
    const double dt = run_flood(&sd->f, tag, n, &cpu);
    if (dt < 0)
        return -1;
    sd->hps[r] = n / dt;
    printf("  %-10s flood %d: %d new ids in %.3f s (%.0f a second); server thread CPU %.1f us "
           "a Hello\n", sd->journal ? "journal," : "no journal,", r + 1, n, dt, n / dt,
           cpu / n * 1e6);
    fflush(stdout);
    return 0;
}

/* Also of a side side_start left half made (a signal in its warm-up). */
static void side_end(side *sd)
{
    for (int c = 0; sd->f.sock && c < sd->f.conns; c++)
        if (sd->f.sock[c])
            zmq_close(sd->f.sock[c]);
    if (sd->f.ctx)
        zmq_ctx_term(sd->f.ctx);
    free(sd->f.sock);
    if (sd->v.s) {
        fls_server_stop(sd->v.s);
        pthread_join(sd->th, NULL);
        fls_server_free(sd->v.s);
    }
    fls_options_free(sd->o);
    sd->f = (flood){0}; /* its figures (hps) stay */
    sd->v.s = NULL;
    sd->o = NULL;
}


static const char *fs_name(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0)
        return "unknown";
    switch ((unsigned long)sf.f_type) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlayfs";
    default: return "other";
    }
}

int main(int argc, char **argv)
{
    int n = 3000, conns = 64, reps = 5;
    const char *dir_opt = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s [--ids N (3000)] [--conns C (64)] [--reps R (5)] [--dir DIR]\n"
                   "Ours: floods of N new client ids over C connections against fl_server with\n"
                   "its client-id journal (synced in DIR, default a new directory here, before\n"
                   "each Hello is answered). Peer: the same floods against a second fl_server\n"
                   "without the journal, in the same run. R floods of each, alternated; the\n"
                   "last line has the medians and their ratio. Details: the comment at the top\n"
                   "of bench/bench_ids.c.\n",
                   argv[0]);
            return 0;
        }
        if (i + 1 >= argc)
            die("missing value after", a);
        const char *v = argv[++i];
        char *end;
        const long x = strtol(v, &end, 10);
        if (!strcmp(a, "--dir"))
            dir_opt = v;
        else if (*end || end == v || x < 1 || x > 10000000)
            die("not a positive count", v);
        else if (!strcmp(a, "--ids"))
            n = (int)x;
        else if (!strcmp(a, "--conns"))
            conns = (int)x;
        else if (!strcmp(a, "--reps") && x > 1000)
            die("--reps takes 1..1000", v);
        else if (!strcmp(a, "--reps"))
            reps = (int)x;
        else
            die("unknown option (see --help)", a);
    }
    /* Each connection takes three descriptors here (both ends, and the DEALER socket's
     * mailbox), and the two servers (journal and peer) live side by side, each with its C
     * connections: the soft limit raised to the hard one, and 2 x 3 x C kept within it
     * (counting one side only, --conns 5000 got past this check under a limit of 20000 and
     * died in zmq_socket, "Too many open files"). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)conns * 6 + 256 > rl.rlim_cur) {
        fprintf(stderr,
                "bench_ids: %d connections to each of the two servers need about %d "
                "descriptors; the limit is %llu (ulimit -n)\n",
                conns, conns * 6 + 256, (unsigned long long)rl.rlim_cur);
        return 2;
    }
    char dir[512];
    if (dir_opt) {
        snprintf(dir, sizeof dir, "%s", dir_opt);
        if (strlen(dir_opt) >= sizeof dir)
            die("--dir: the path is too long", dir_opt);
        /* a journal left there (an earlier run's, or one killed before its end) already binds
         * the ids the floods name: they would not be new, and nothing would be synced */
        char old[600];
        snprintf(old, sizeof old, "%s/j.ckpt.ids", dir);
        if (access(old, F_OK) == 0) {
            fprintf(stderr, "bench_ids: %s exists (an earlier run's journal: the floods' ids "
                            "would not be new); remove it or name another --dir\n", old);
            return 2;
        }
    } else {
        snprintf(dir, sizeof dir, "bench_ids.XXXXXX");
        if (!mkdtemp(dir))
            die("mkdtemp", strerror(errno));
        g_dir_ours = 1;
    }
    snprintf(g_dir, sizeof g_dir, "%s", dir); /* removed however the run ends, from here on */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: zmq_poll returns at once, EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    const char *fs = fs_name(dir);
    printf("bench_ids: %d new ids over %d connections, %d floods of each side alternated "
           "(medians); journal in %s (%s)\n", n, conns, reps, dir, fs);
    fflush(stdout);
    side *sd = calloc(2, sizeof *sd); /* [0]: ours (journal), [1]: the peer (no journal) */
    if (!sd)
        die("out of memory", NULL);
    int stopped = side_start(&sd[0], dir, 1, conns) != 0 || side_start(&sd[1], dir, 0, conns) != 0;
    for (int r = 0; r < reps && !stopped; r++)
        stopped = side_flood(&sd[0], r, n) != 0 || side_flood(&sd[1], r, n) != 0;
    side_end(&sd[0]);
    side_end(&sd[1]);
    if (stopped) { /* a signal: what the run made goes, then the signal ends the process */
        const int sig = g_sig;
        free(sd);
        remove_made();
        fprintf(stderr, "bench_ids: stopped by signal %d (%s); the journal's files removed\n", sig,
                strsignal(sig));
        signal(sig, SIG_DFL);
        block_signals(SIG_UNBLOCK);
        raise(sig);
        return 128 + sig;
    }
    const bench_stat w = bench_stat_of(sd[0].hps, reps), wo = bench_stat_of(sd[1].hps, reps);
    const double with = w.med, without = wo.med;
    free(sd);
    printf("journal: median %.0f Hellos a second (%.0f-%.0f); no journal: median %.0f (%.0f-%.0f)\n",
           with, w.lo, w.hi, without, wo.lo, wo.hi);
    remove_made(); /* the files the servers made; the directory too, if this run made it */
    printf("hellos_per_s=%.0f nojournal_hellos_per_s=%.0f ratio=%.3f fs=%s\n", with, without,
           with / without, fs);
    return 0;
}
