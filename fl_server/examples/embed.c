/* embed.c: the fedrop coordinator inside a program of your own (libflserver, include/fls.h).
 *
 *   cc -std=c11 embed.c $(pkg-config --cflags --libs libflserver) -pthread -o embed
 *   ./embed CONFIG.yaml [KEY=VALUE ...]     e.g. ./embed fl_server.yaml run.rounds=5
 *
 * Loads a configuration (the daemon's YAML: fl_server --help lists every key), applies the
 * overrides, starts the server and runs it until the run is done or Ctrl-C; prints each round's
 * summary line and the log at info and above. Ctrl-C or SIGTERM stops it (a second one cancels
 * an evaluation the stop waits for). Exit status 0 when the run ended or was stopped, else 1. */
#define _POSIX_C_SOURCE 200809L /* sigwait and pthread_sigmask: POSIX, not C11 */
#include <fls.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* The stop signals are taken by a thread of ours with sigwait, not by a signal handler. A handler
 * runs on whichever thread the kernel picks among those that leave the signal unblocked, the
 * OpenBLAS threads the library may load among them, so one that called fls_server_stop could do so
 * on a server that main is freeing. Here main blocks the signals before the library starts any
 * thread (a thread inherits its maker's mask), so none of those runs a handler, and the taker
 * calls fls_server_stop under a lock that main takes to retire the server before freeing it. */
static sigset_t g_stop_signals; /* SIGINT, SIGTERM */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static fls_server *g_server;    /* under g_lock: NULL once main is done with it */
static pthread_t g_taker;       /* lives until the process ends */

static void *take_stop_signals(void *unused)
{
    (void)unused;
    for (;;) {
        int sig = 0;
        sigwait(&g_stop_signals, &sig);
        pthread_mutex_lock(&g_lock);
        if (g_server)
            fls_server_stop(g_server); /* a second one cancels an evaluation the stop waits for */
        pthread_mutex_unlock(&g_lock);
    }
    return NULL;
}

/* A thread made before main blocked the signals (a library's constructor may start one: OpenBLAS
 * starts its pool so, when the program links it) keeps them unblocked, and the kernel may give it
 * a Ctrl-C, whose default action would end the program there. This handler, which only such a
 * thread can run, passes the signal on to the taker (pthread_kill is async-signal-safe). */
static void forward(int sig)
{
    pthread_kill(g_taker, sig);
}

static void on_log(void *user, fls_log_level level, const char *msg)
{
    (void)user;
    if (level >= FLS_LOG_INFO)
        fprintf(stderr, "server: %s\n", msg);
}

static void on_round(void *user, const char *json, const char *summary)
{
    (void)user;
    (void)json; /* one JSON object of metrics: parse it, store it, chart it */
    printf("%s\n", summary);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONFIG.yaml [KEY=VALUE ...]\n", argv[0]);
        return 1;
    }
    sigemptyset(&g_stop_signals);
    sigaddset(&g_stop_signals, SIGINT);
    sigaddset(&g_stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &g_stop_signals, NULL); /* first: before any thread exists */
    char err[1024];
    fls_options *o = NULL;
    if (fls_options_new(&o) != FLS_OK)
        return 1;
    fls_status st = fls_options_load_file(o, argv[1], err, sizeof err);
    for (int i = 2; i < argc && st == FLS_OK; i++) {
        char key[256];
        const char *eq = strchr(argv[i], '=');
        if (!eq || (size_t)(eq - argv[i]) >= sizeof key) {
            snprintf(err, sizeof err, "'%s' is not KEY=VALUE", argv[i]);
            st = FLS_ERR_CONFIG;
            break;
        }
        memcpy(key, argv[i], (size_t)(eq - argv[i]));
        key[eq - argv[i]] = '\0';
        st = fls_options_set(o, key, eq + 1, err, sizeof err);
    }
    if (st != FLS_OK) {
        fprintf(stderr, "embed: %s\n", err);
        fls_options_free(o);
        return 1;
    }
    const fls_host host = {on_log, NULL, NULL, on_round, NULL};
    fls_server *s = NULL;
    st = fls_server_new(o, &host, &s); /* binds; the options may go now */
    fls_options_free(o);
    if (st != FLS_OK) {
        fprintf(stderr, "embed: the server did not start: %s\n", fls_strerror(st));
        return 1;
    }
    g_server = s; /* (pthread_create orders it before the taker's reads) */
    if (pthread_create(&g_taker, NULL, take_stop_signals, NULL) != 0) {
        fls_server_free(s);
        return 1;
    }
    pthread_detach(g_taker); /* a signal that came meanwhile waits for it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    st = fls_server_run(s); /* until the run is done, or fls_server_stop */
    pthread_mutex_lock(&g_lock); /* the taker stops no server from here on */
    g_server = NULL;
    pthread_mutex_unlock(&g_lock);
    fls_server_free(s);
    fprintf(stderr, "embed: %s\n", st == FLS_OK ? "run done" : fls_strerror(st));
    return st == FLS_OK || st == FLS_ERR_CANCELLED ? 0 : 1;
}
