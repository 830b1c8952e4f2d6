/* fl_sig.h: the programs' stop signals (fl_server, fl_client, fl_sim), taken on one thread of
 * their own. Header-only and for programs alone: a library never changes the process's signal
 * dispositions or masks behind its caller's back.
 *
 * Why: a handler runs on whichever thread the kernel picks among those that leave the signal
 * unblocked. Besides main that was any thread made from it: fl_sim's and libflclient's workers,
 * the BLAS seam's, OpenBLAS's (dlopen()ed from main). A handler that reads the pointer to the
 * running server or client and calls its stop could so run on a worker while main, past the run,
 * freed it. Here main blocks the signals before it makes any thread (every thread made later
 * inherits the mask, the libraries' included), and one thread takes them with sigwait, one at a
 * time, in plain thread context: it may lock the mutex main holds while it frees. */
#ifndef FL_SIG_H
#define FL_SIG_H

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

struct fl_sig_taker {
    sigset_t set;
    void (*on)(int sig);
    pthread_t th;
};

/* One per program (static inline: each program includes this in its main's file only). */
static struct fl_sig_taker fl_sig_taker_;

static void *fl_sig_taker_main(void *arg)
{
    const struct fl_sig_taker *t = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&t->set, &sig) == 0)
            t->on(sig);
    }
    return NULL;
}

/* The handler left in place for a thread that has the signals unblocked all the same: one made
 * before main blocked them (a preloaded library's, a sanitizer runtime's). It hands the signal to
 * the taker, which has it blocked and waits for it. pthread_kill is async-signal-safe. */
static void fl_sig_forward(int sig)
{
    pthread_kill(fl_sig_taker_.th, sig);
}

/* Blocks the signals of set on the calling thread (main, before it makes any thread: one made
 * earlier keeps its mask), starts a detached thread that takes them one at a time and calls on(sig)
 * for each on that thread, and points their handlers at it. set names only the signals the program
 * acts on (one that came ignored, as SIGHUP under nohup, is left out and stays ignored). 0, or an
 * errno value (nothing changed then). Once. */
static inline int fl_sig_take(const sigset_t *set, void (*on)(int sig))
{
    fl_sig_taker_.set = *set;
    fl_sig_taker_.on = on;
    sigset_t old;
    int e = pthread_sigmask(SIG_BLOCK, set, &old);
    if (e != 0)
        return e;
    pthread_attr_t a;
    if ((e = pthread_attr_init(&a)) == 0) {
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        e = pthread_create(&fl_sig_taker_.th, &a, fl_sig_taker_main, &fl_sig_taker_);
        pthread_attr_destroy(&a);
    }
    if (e != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return e;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fl_sig_forward;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(set, sig) == 1)
            sigaction(sig, &sa, NULL);
    return 0;
}

/* On the taker's thread: ends the process as sig's default action does (a shell or a script sees
 * it killed by sig): the default disposition, sig unblocked on this thread, raised. */
static inline void fl_sig_die(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    raise(sig); /* pending on this thread until the unblock */
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    _exit(128 + sig); /* a signal whose default is not to end the process: none taken here */
}

#endif
