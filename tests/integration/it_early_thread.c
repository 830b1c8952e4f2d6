/* it_early_thread: an LD_PRELOAD module for fl_it.py's example tests (never installed). Its
 * constructor starts a thread before the program's main runs, as a library linked in or preloaded
 * may (OpenBLAS starts its pool so), with no signal blocked: main's pthread_sigmask cannot reach
 * it. Once the file named by $IT_EARLY_THREAD_GO exists, the thread raises $IT_EARLY_THREAD_SIG
 * (a number) on itself, as the kernel may deliver a Ctrl-C to this one thread of the process
 * that leaves it unblocked; the test decides when, with no timing. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *early_thread(void *arg)
{
    (void)arg;
    const char *go = getenv("IT_EARLY_THREAD_GO"), *sig = getenv("IT_EARLY_THREAD_SIG");
    if (!go || !sig)
        return NULL;
    while (access(go, F_OK) != 0) {
        const struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    raise(atoi(sig)); /* on this thread: a pthread_kill of itself */
    for (;;)
        pause();
}

__attribute__((constructor)) static void early_thread_start(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, early_thread, NULL) == 0)
        pthread_detach(t);
}
