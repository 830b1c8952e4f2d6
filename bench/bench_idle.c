/* bench_idle: what an idle fleet costs fl_server, in server CPU a second, with the fleet's
 * connections set up as libflclient sets them (no ZeroMQ heartbeats) against the same fleet
 * setting ZeroMQ heartbeats as libflclient did before 2026-11-30, in the same run.
 *
 *   bench_idle [--sessions M (8000)] [--secs S (10)] [--heartbeat-ms H (1000)] [--curve 0|1]
 *              [--per-proc P] [--reps R (1)]
 *
 * Server: the library (include/fls.h) in a child process of its own, plain text over tcp on
 * 127.0.0.1 (--curve 1: CURVE, as in production, every session with one client key on the
 * allow-list), heartbeat_ms H and liveness_ms 10 H (the defaults at H = 1000). Its CPU time is read
 * from /proc/PID/task/TID/stat (ticks of 10 ms), split between its reactor (the thread that runs
 * fls_server_run) and libzmq's I/O thread (ZMQbg/IO/0: sockets, framing, ZeroMQ heartbeats).
 * Fleet: M sessions over ceil(M / P) child processes (a DEALER socket takes two descriptors, so P
 * stays under the descriptor limit). Each session is one connection that said Hello with
 * memory_bytes 1 (admitted, never selected: it stays idle, as bench_server --idle) and then
 * sends a Heartbeat every H ms, as an idle libflclient does at heartbeat_ms H; the sessions'
 * phases are spread over the interval, as a fleet's are. What the server sends them is
 * read and dropped.
 * Window: S seconds, once every session has its Ack and 2 s have passed.
 * Ours: the fleet's DEALER sockets with no ZeroMQ heartbeat options, as libflclient's
 * open_socket (fl_client/flc_client.c; test_client's test_no_zeromq_heartbeats keeps it so).
 * Peer: the same fleet with ZMQ_HEARTBEAT_IVL H, ZMQ_HEARTBEAT_TIMEOUT and ZMQ_HEARTBEAT_TTL
 * 10 H on each socket (libflclient's options before: heartbeat_ms, liveness_ms; any ZMTP 3.1 client
 * may set them): libzmq then exchanges a PING and a PONG on each connection every H, and the
 * TTL has the server's libzmq keep a timer per connection, cancelled by a walk of all its timers
 * (libzmq 4.3.4, poller_base_t::cancel_timer) at the connection's next message.
 * ratio = ours / peer (server CPU; below 1: ours costs less). R > 1 alternates ours and the peer
 * and prints each window; the last line has the medians.
 * Also timed: the fleet (ours) connecting at once, as after a server restart, from its start to
 * every Hello acknowledged (ack_s; server.listen_backlog sizes the listen queue it meets), and
 * the server's CPU meanwhile, a session (admit_ms: accepting the connection, its handshake, the
 * Hello and its id).
 * --curve 1 writes the server's secret key and the allow-list into a new directory here
 * (bench_idle.XXXXXX), removed however the run ends (its end, an error, Ctrl-C, SIGTERM, SIGHUP);
 * the server and fleet processes end with this one, even when it is SIGKILLed (bench_exit.h).
 * LAST line: sessions=M server_cpu_ms_per_s=<f> peer_server_cpu_ms_per_s=<f> ratio=<f>
 *            us_per_session_s=<f> peer_us_per_session_s=<f> ack_s=<f> admit_ms=<f>
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
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
#include "flp_wire.h"
#include "fls.h"

#define MAX_PROCS 64

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_idle: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void sleep_until(double t)
{
    const double d = t - mono();
    if (d <= 0)
        return;
    const struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- the server child ----------------------------------------------------------------------- */

static int g_hb_ms = 1000; /* --heartbeat-ms: both sides' heartbeat_ms; liveness_ms 10 times it */
/* --curve: the server's keys and the one client key every session uses, and the files the
 * server reads them from (in g_keydir) */
static int g_curve;
static char g_srv_pub[41], g_srv_sec[41], g_cli_pub[41], g_cli_sec[41];
static char g_keydir[64] = "bench_idle.XXXXXX", g_sec_path[128], g_allow_path[128];
static fls_server *volatile g_srv;
static volatile sig_atomic_t g_stop;

static void on_term(int sig)
{
    (void)sig;
    g_stop = 1;
    if (g_srv)
        fls_server_stop(g_srv);
}

static void catch_term(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
}

/* Runs the server until SIGTERM; its endpoint goes to wfd first. */
static int server_child(int wfd, int sessions)
{
    catch_term();
    char yaml[1024], sec[512] = "  insecure: true\n";
    if (g_curve) /* one key for every session: no limit of ids per key */
        snprintf(sec, sizeof sec, "  secret_key_file: '%s'\n  allow_list: '%s'\n  ids_per_key: 0\n",
                 g_sec_path, g_allow_path);
    snprintf(yaml, sizeof yaml,
             "server:\n%s  endpoints: ['tcp://127.0.0.1:0']\n"
             "  max_clients: %d\n  heartbeat_ms: %d\n  liveness_ms: %d\n"
             "model:\n  arch: \"mlp:784-200-200-10\"\n"
             "round:\n  clients: 8\neval:\n  dataset: none\nrun:\n  log_level: error\n",
             sec, sessions + 64, g_hb_ms, 10 * g_hb_ms);
    fls_options *o = NULL;
    char err[512];
    if (fls_options_new(&o) != FLS_OK ||
        fls_options_load_mem(o, yaml, strlen(yaml), "bench_idle", err, sizeof err) != FLS_OK)
        die("bad server options", err);
    fls_host host = {0};
    fls_server *s = NULL;
    const fls_status st = fls_server_new(o, &host, &s);
    fls_options_free(o);
    if (st != FLS_OK)
        die("the server did not start", fls_strerror(st));
    dprintf(wfd, "%s\n", fls_server_endpoint(s, 0));
    close(wfd);
    g_srv = s;
    if (!g_stop)
        fls_server_run(s);
    g_srv = NULL;
    fls_server_free(s);
    return 0;
}

/* ---- a fleet child -------------------------------------------------------------------------- */

/* Sessions [from, from + n) on ep; "R" to wfd once every Hello is acknowledged; then each session
 * heartbeats once a second (session i in slice i % 100 of 10 ms) until SIGTERM. */
static int fleet_child(int wfd, const char *ep, int from, int n, int zmq_hb)
{
    catch_term();
    void *ctx = zmq_ctx_new();
    void **sock = calloc((size_t)n, sizeof *sock);
    char (*ids)[32] = calloc((size_t)n, 32);
    if (!ctx || !sock || !ids)
        die("out of memory", NULL);
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, n + 16);
    for (int i = 0; i < n; i++) {
        const int zero = 0, ivl = g_hb_ms, timeout = 10 * g_hb_ms;
        snprintf(ids[i], 32, "idle-%d", from + i);
        if (!(sock[i] = zmq_socket(ctx, ZMQ_DEALER)))
            die("zmq_socket", zmq_strerror(zmq_errno()));
        zmq_setsockopt(sock[i], ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_hb && (zmq_setsockopt(sock[i], ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) ||
                       zmq_setsockopt(sock[i], ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout) ||
                       zmq_setsockopt(sock[i], ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout)))
            die("ZeroMQ heartbeat options", zmq_strerror(zmq_errno()));
        if (g_curve && (zmq_setsockopt(sock[i], ZMQ_CURVE_SERVERKEY, g_srv_pub, 41) ||
                        zmq_setsockopt(sock[i], ZMQ_CURVE_PUBLICKEY, g_cli_pub, 41) ||
                        zmq_setsockopt(sock[i], ZMQ_CURVE_SECRETKEY, g_cli_sec, 41)))
            die("CURVE options", zmq_strerror(zmq_errno()));
        if (zmq_connect(sock[i], ep) != 0)
            die("zmq_connect", zmq_strerror(zmq_errno()));
        const flp_msg m = bench_hello(ids[i], 1);
        if (bench_send(sock[i], &m, 0) != 0)
            die("cannot send a Hello", zmq_strerror(zmq_errno()));
    }
    for (int i = 0; i < n && !g_stop; i++) { /* each Hello's Ack (heartbeats may come first) */
        for (;;) {
            zmq_msg_t z;
            zmq_msg_init(&z);
            if (zmq_msg_recv(&z, sock[i], 0) < 0) {
                if (g_stop)
                    break;
                die("zmq_msg_recv", zmq_strerror(zmq_errno()));
            }
            flp_msg *r = NULL;
            char err[FLP_ERRBUF];
            if (flp_decode(&r, zmq_msg_data(&z), zmq_msg_size(&z), NULL, err, sizeof err) != FL_OK)
                die("the server sent an undecodable message", err);
            zmq_msg_close(&z);
            const int hb = r->type == FLP_HEARTBEAT;
            const int ok = r->type == FLP_ACK && r->ack.of_type == FLP_HELLO && r->ack.status == 0;
            flp_msg_free(r);
            if (hb)
                continue;
            if (!ok)
                die("a Hello was not acknowledged", ids[i]);
            break;
        }
    }
    dprintf(wfd, "R\n");
    close(wfd);
    const double t0 = mono();
    for (long slice = 0; !g_stop; slice++) {
        sleep_until(t0 + (double)slice * g_hb_ms / 100000.0);
        for (int i = (int)(slice % 100); i < n; i += 100) {
            char buf[512];
            while (zmq_recv(sock[i], buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
            }
            const flp_msg m = flp_msg_header(FLP_HEARTBEAT, 0, ids[i]);
            bench_send(sock[i], &m, ZMQ_DONTWAIT);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_close(sock[i]);
    zmq_ctx_term(ctx);
    free(sock);
    free(ids);
    return 0;
}

/* ---- the parent ----------------------------------------------------------------------------- */

/* A child running fn's role; its pipe's read end in *rfd. */
static pid_t spawn(int *rfd, int (*role)(int wfd, void *arg), void *arg)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe", strerror(errno));
    fflush(stdout);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        bench_in_child(parent); /* a server or fleet process ends with this one, however */
        close(p[0]);
        _exit(role(p[1], arg));
    }
    close(p[1]);
    *rfd = p[0];
    return pid;
}

typedef struct fleet_arg {
    const char *ep;
    int from, n, zmq_hb;
} fleet_arg;

static int run_server(int wfd, void *arg) { return server_child(wfd, *(int *)arg); }

static int run_fleet(int wfd, void *arg)
{
    const fleet_arg *f = arg;
    return fleet_child(wfd, f->ep, f->from, f->n, f->zmq_hb);
}

/* One line from fd (up to cap - 1 bytes, without the newline); 0 at EOF before any. */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t k = 0;
    char c;
    while (k + 1 < cap && read(fd, &c, 1) == 1 && c != '\n')
        buf[k++] = c;
    buf[k] = 0;
    return k > 0;
}

/* The CPU ticks of pid's threads: libzmq's I/O threads (ZMQbg/IO/...) in *io, the others
 * (the reactor; libzmq's reaper is idle) in *other. */
static void cpu_ticks(pid_t pid, unsigned long long *io, unsigned long long *other)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    *io = *other = 0;
    DIR *d = opendir(dir);
    if (!d)
        die("cannot read the server's threads", strerror(errno));
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[384], buf[1024];
        snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        const size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        const char *open = strchr(buf, '('), *close_p = strrchr(buf, ')');
        if (!open || !close_p)
            continue;
        unsigned long long ut = 0, st = 0;
        /* after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
         * utime stime */
        if (sscanf(close_p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                   &st) != 2)
            continue;
        if (strncmp(open + 1, "ZMQbg/IO", 8) == 0)
            *io += ut + st;
        else
            *other += ut + st;
    }
    closedir(d);
}

typedef struct window {
    double total_ms_s, reactor_ms_s, io_ms_s;
    double ack_s; /* from the fleet's start to every Hello acknowledged */
    double admit_ms; /* the server's CPU meanwhile, a session (connection, handshake, Hello) */
} window;

/* A server and a fleet of m sessions (zmq_hb: with ZeroMQ heartbeats); the server's CPU over
 * secs seconds. */
static window measure(int m, int per_proc, double secs, int zmq_hb)
{
    int srv_fd;
    const pid_t srv = spawn(&srv_fd, run_server, &m);
    char ep[256];
    if (!read_line(srv_fd, ep, sizeof ep))
        die("the server child did not start", NULL);
    close(srv_fd);
    const int procs = (m + per_proc - 1) / per_proc;
    pid_t fl[MAX_PROCS];
    int fl_fd[MAX_PROCS];
    fleet_arg fa[MAX_PROCS];
    unsigned long long aio0, aot0, aio1, aot1;
    cpu_ticks(srv, &aio0, &aot0);
    const double t0 = mono();
    for (int p = 0; p < procs; p++) {
        const int from = p * per_proc;
        fa[p] = (fleet_arg){ep, from, m - from < per_proc ? m - from : per_proc, zmq_hb};
        fl[p] = spawn(&fl_fd[p], run_fleet, &fa[p]);
    }
    for (int p = 0; p < procs; p++) {
        char line[16];
        if (!read_line(fl_fd[p], line, sizeof line) || strcmp(line, "R") != 0)
            die("a fleet process did not get its Hellos acknowledged", NULL);
        close(fl_fd[p]);
    }
    const double ack_s = mono() - t0;
    cpu_ticks(srv, &aio1, &aot1);
    const double tick_ms = 1000.0 / (double)sysconf(_SC_CLK_TCK);
    const double admit_ms = (double)(aio1 + aot1 - aio0 - aot0) * tick_ms / m;
    printf("  %s: %d sessions acknowledged in %.1f s (%d processes; server CPU %.3f ms a "
           "session, %.0f%% of it libzmq I/O);", zmq_hb ? "peer (ZeroMQ heartbeats)"
           : "ours (no ZeroMQ heartbeats)", m, ack_s, procs, admit_ms,
           100.0 * (double)(aio1 - aio0) / (double)(aio1 + aot1 - aio0 - aot0 + 1));
    fflush(stdout);
    sleep_until(mono() + 2.0);
    unsigned long long io0, ot0, io1, ot1;
    cpu_ticks(srv, &io0, &ot0);
    const double w0 = mono();
    sleep_until(w0 + secs);
    cpu_ticks(srv, &io1, &ot1);
    const double dt = mono() - w0;
    window w;
    w.io_ms_s = (double)(io1 - io0) * tick_ms / dt;
    w.reactor_ms_s = (double)(ot1 - ot0) * tick_ms / dt;
    w.total_ms_s = w.io_ms_s + w.reactor_ms_s;
    w.ack_s = ack_s;
    w.admit_ms = admit_ms;
    printf(" server CPU %.1f ms a second (reactor %.1f, libzmq I/O %.1f): %.2f us a "
           "session-second\n", w.total_ms_s, w.reactor_ms_s, w.io_ms_s,
           w.total_ms_s * 1e3 / m);
    fflush(stdout);
    int ws;
    for (int p = 0; p < procs; p++)
        kill(fl[p], SIGTERM);
    for (int p = 0; p < procs; p++)
        if (waitpid(fl[p], &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            die("a fleet process failed", NULL);
    kill(srv, SIGTERM);
    if (waitpid(srv, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        die("the server child failed", NULL);
    return w;
}


int main(int argc, char **argv)
{
    int m = 8000, per_proc = 8000, reps = 1;
    double secs = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s [--sessions M (8000)] [--secs S (10)] [--heartbeat-ms H (1000)]\n"
                   "       [--curve 0|1 (0)] [--per-proc P (8000)] [--reps R (1)]\n"
                   "fl_server's CPU a second with M idle sessions, their connections without\n"
                   "ZeroMQ heartbeats (as libflclient's) and with them (the peer), the server in a\n"
                   "child process. --secs: each measured window, once every Hello is acknowledged\n"
                   "and 2 s have passed; --heartbeat-ms: both sides' heartbeat_ms (liveness_ms 10\n"
                   "times it); --curve 1: CURVE with an allow-list, as in production (the keys in a\n"
                   "directory bench_idle.XXXXXX here, removed at the end); --per-proc: sessions a\n"
                   "fleet process (each holds two descriptors a session: lower it under a low\n"
                   "ulimit -n); --reps: windows of each side, alternated (medians). Last line:\n"
                   "sessions, server_cpu_ms_per_s, peer_server_cpu_ms_per_s, ratio = ours / peer,\n"
                   "us_per_session_s, peer_us_per_session_s, ack_s, admit_ms. Details: the comment\n"
                   "at the top of bench/bench_idle.c.\n", argv[0]);
            return 0;
        }
        if (i + 1 >= argc)
            die("missing value after", a);
        const char *v = argv[++i];
        char *end;
        const long x = strtol(v, &end, 10);
        if (*end || end == v || x < 0 || x > 1000000 || (x == 0 && strcmp(a, "--curve")))
            die("not a positive count", v);
        if (!strcmp(a, "--sessions"))
            m = (int)x;
        else if (!strcmp(a, "--secs"))
            secs = (double)x;
        else if (!strcmp(a, "--curve") && x > 1)
            die("--curve takes 0 or 1", v);
        else if (!strcmp(a, "--curve"))
            g_curve = (int)x;
        else if (!strcmp(a, "--heartbeat-ms") && (x < 10 || x > 100000))
            die("--heartbeat-ms takes 10..100000", v);
        else if (!strcmp(a, "--heartbeat-ms"))
            g_hb_ms = (int)x;
        else if (!strcmp(a, "--per-proc"))
            per_proc = (int)x;
        else if (!strcmp(a, "--reps") && x > 50)
            die("--reps takes 1..50", v);
        else if (!strcmp(a, "--reps"))
            reps = (int)x;
        else
            die("unknown option (see --help)", a);
    }
    /* Descriptors: the server holds one a connection, a fleet process two (the TCP socket and
     * the DEALER's mailbox). The soft limit is raised to the hard one, which every process
     * inherits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        const rlim_t lim = rl.rlim_cur;
        if ((rlim_t)m + 256 > lim || (rlim_t)per_proc * 2 + 256 > lim) {
            fprintf(stderr, "bench_idle: %d sessions need %d descriptors in the server and %d in "
                    "each fleet process (--per-proc); the limit is %llu\n", m, m + 256,
                    per_proc * 2 + 256, (unsigned long long)lim);
            return 2;
        }
    }
    if ((m + per_proc - 1) / per_proc > MAX_PROCS)
        die("too many fleet processes: raise --per-proc", NULL);
    if (g_curve) { /* keys made here, the server's secret and the allow-list written to files */
        if (zmq_curve_keypair(g_srv_pub, g_srv_sec) != 0 ||
            zmq_curve_keypair(g_cli_pub, g_cli_sec) != 0)
            die("zmq_curve_keypair (libzmq without CURVE?)", zmq_strerror(zmq_errno()));
        if (!mkdtemp(g_keydir))
            die("mkdtemp", strerror(errno));
        snprintf(g_sec_path, sizeof g_sec_path, "%s/server.secret", g_keydir);
        snprintf(g_allow_path, sizeof g_allow_path, "%s/allowed", g_keydir);
        /* removed however the run ends: its end, die(), Ctrl-C, SIGTERM, SIGHUP */
        bench_tmp_add(g_keydir);
        bench_tmp_add(g_sec_path);
        bench_tmp_add(g_allow_path);
        FILE *f = fopen(g_sec_path, "w"), *g = fopen(g_allow_path, "w");
        if (!f || !g)
            die("cannot write the key files", strerror(errno));
        fprintf(f, "%s\n", g_srv_sec);
        fprintf(g, "%s\n", g_cli_pub);
        fclose(f);
        fclose(g);
    }
    printf("bench_idle: %d idle sessions, heartbeat_ms %d both ways (liveness_ms %d), %s; server "
           "CPU over %.0f s windows, %d of each kind, alternated\n", m, g_hb_ms, 10 * g_hb_ms,
           g_curve ? "CURVE" : "plain text", secs, reps);
    double ours[50], peer[50], ack[50], admit[50];
    window lo = {0}, lp = {0};
    for (int r = 0; r < reps; r++) {
        lo = measure(m, per_proc, secs, 0);
        lp = measure(m, per_proc, secs, 1);
        ours[r] = lo.total_ms_s;
        ack[r] = lo.ack_s;
        admit[r] = lo.admit_ms;
        peer[r] = lp.total_ms_s;
    }
    bench_tmp_remove(); /* the key files and their directory (--curve 1) */
    const double o = bench_stat_of(ours, reps).med, p = bench_stat_of(peer, reps).med;
    const double a = bench_stat_of(ack, reps).med, ad = bench_stat_of(admit, reps).med;
    printf("sessions=%d server_cpu_ms_per_s=%.1f peer_server_cpu_ms_per_s=%.1f ratio=%.3f "
           "us_per_session_s=%.2f peer_us_per_session_s=%.2f ack_s=%.2f admit_ms=%.3f\n", m, o,
           p, p > 0 ? o / p : 0, o * 1e3 / m, p * 1e3 / m, a, ad);
    return 0;
}
