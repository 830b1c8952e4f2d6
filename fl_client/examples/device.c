/* device.c: a device program around libflclient, as fl_client/README.md walks through it. It
 * joins a fedrop server and trains with a plug-in trainer (where a device would call its NPU or
 * GPU); this one moves every weight a little towards zero, a valid if useless update.
 *
 *   device ENDPOINT ID [SERVER_PUBLIC_KEY SECRET_KEY]
 *
 * Keys are Z85 text (40 characters): the server's public key and this device's secret key, as
 * `fl_server keygen` writes them (the line that is not a comment). Without keys the connection
 * is plain text, for a server started with --insecure. Ctrl-C or SIGTERM stops it (exit 0).
 * Built with the project (build/fl_client/device); outside it (-pthread: its signal thread;
 * glibc before 2.34 has pthread_create in libpthread, which the .pc does not name):
 *   cc device.c $(pkg-config --cflags --libs libflclient) -pthread -o device */
#define _POSIX_C_SOURCE 200809L /* sigwait and pthread_sigmask: POSIX, not C11 (cc -std=c11 hides
                                 * them otherwise) */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "flc.h"

/* The stop signals are taken by a thread of ours with sigwait, not by a signal handler. A handler
 * runs on whichever thread the kernel picks among those that leave the signal unblocked, the
 * library's own among them (its training thread), so one that called flc_client_stop could do so
 * on a client that main is freeing. Here main blocks the signals before the library starts any
 * thread (a thread inherits its maker's mask), so none of those runs a handler, and the taker
 * calls flc_client_stop under a lock that main takes to retire the client before freeing it. */
static sigset_t g_stop_signals; /* SIGINT, SIGTERM */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static flc_client *g_client;    /* under g_lock: NULL once main is done with it */
static pthread_t g_taker;       /* lives until the process ends */

static void *take_stop_signals(void *unused)
{
    (void)unused;
    for (;;) {
        int sig = 0;
        sigwait(&g_stop_signals, &sig);
        pthread_mutex_lock(&g_lock);
        if (g_client)
            flc_client_stop(g_client); /* again at a second Ctrl-C: no harm */
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

/* Called on main (in flc_client_new and _run) and on the library's training thread, maybe two at
 * once: one fprintf per line is thread-safe. */
static void on_log(void *user, flc_log_level level, const char *msg)
{
    static const char *name[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "[%s] %s %s\n", (const char *)user, name[level], msg);
}

/* The plug-in trainer: called on a thread of the library's, once per round this device is
 * selected for. task->weights is the submodel as received, out->weights a copy of it to train in
 * place; task->sub_arch and task->tensors say its shapes. Return FLC_OK with n_samples and the
 * loss, or an error status, which the server hears of at once. */
static flc_status train(const flc_task *task, flc_update *out, void *user)
{
    (void)user;
    fprintf(stderr, "round %llu: a submodel %s of %s, %zu parameters in %d tensors\n",
            (unsigned long long)task->round, task->sub_arch, task->arch, task->n_params,
            task->n_tensors);
    for (int i = 0; i < task->n_tensors; i++) {
        const flc_tensor *t = &task->tensors[i];
        float *w = out->weights + t->offset;
        for (size_t k = 0; k < t->numel; k++)
            w[k] *= 0.99f;
    }
    /* the samples it trained on (the server's weight for this update): at most max_samples,
     * the most one update may count, when the server says one */
    const uint64_t held = 32;
    out->n_samples = task->max_samples && task->max_samples < held ? task->max_samples : held;
    out->loss = 1.0;
    return FLC_OK;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: %s ENDPOINT ID [SERVER_PUBLIC_KEY SECRET_KEY]\n", argv[0]);
        return 1;
    }
    sigemptyset(&g_stop_signals);
    sigaddset(&g_stop_signals, SIGINT);
    sigaddset(&g_stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &g_stop_signals, NULL); /* first: before any thread exists */
    flc_config cfg;
    memset(&cfg, 0, sizeof cfg); /* every field 0: its default */
    cfg.server_endpoint = argv[1];
    cfg.client_id = argv[2];
    if (argc == 5) {
        cfg.server_public_key = argv[3];
        cfg.secret_key = argv[4];
    }
    cfg.backend = FLC_BACKEND_NPU;
    cfg.memory_bytes = 256u << 20; /* the server selects it only for submodels that fit */
    cfg.train = train;
    cfg.log = on_log;
    cfg.log_user = argv[2];
    cfg.log_level = FLC_LOG_INFO;
    flc_client *c = NULL;
    flc_status st = flc_client_new(&cfg, &c);
    if (st != FLC_OK) /* the log said which field is wrong */
        return 1;
    g_client = c; /* (pthread_create orders it before the taker's reads) */
    if (pthread_create(&g_taker, NULL, take_stop_signals, NULL) != 0) {
        flc_client_free(c);
        return 1;
    }
    pthread_detach(g_taker); /* a signal that came meanwhile waits for it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    st = flc_client_run(c); /* until the run is done, a stop, or a refusal */
    const flc_stats *s = flc_client_stats(c);
    fprintf(stderr, "%llu rounds trained, %llu failed, %llu updates accepted: %s\n",
            (unsigned long long)s->rounds_trained, (unsigned long long)s->rounds_failed,
            (unsigned long long)s->updates_accepted, flc_strerror(st));
    pthread_mutex_lock(&g_lock); /* the taker stops no client from here on */
    g_client = NULL;
    pthread_mutex_unlock(&g_lock);
    flc_client_free(c);
    return st == FLC_OK || st == FLC_ERR_CANCELLED ? 0 : 2;
}
