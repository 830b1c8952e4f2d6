/* test_par.h: a parallel-for (fl_par.h) on real threads, for the unit tests of the libraries that
 * take one. par_run(pool, ...): with pool NULL, every other piece on a thread of its own and the
 * rest on the caller, last first, so that pieces run out of order and at once; with pool pointing
 * to an int rounding mode (FE_*), every piece on a thread of its own set to that mode (a lender's
 * threads keep the mode they started in). g_par_calls counts the calls: a split really ran. */
#ifndef TEST_PAR_H
#define TEST_PAR_H

#include <fenv.h>
#include <pthread.h>

#include "fl_par.h"

typedef struct par_call {
    void (*fn)(void *arg, unsigned i);
    void *arg;
    unsigned i;
    const int *mode;
} par_call;

static int g_par_calls;

static void *par_thread(void *p)
{
    const par_call *c = p;
    if (c->mode)
        fesetround(*c->mode);
    c->fn(c->arg, c->i);
    return NULL;
}

static void par_run(void *pool, void (*fn)(void *arg, unsigned i), void *arg, unsigned n)
{
    const int *mode = pool;
    pthread_t th[FL_PAR_MAX];
    par_call c[FL_PAR_MAX];
    int started[FL_PAR_MAX] = {0};
    for (unsigned i = 0; i < n; i += mode ? 1 : 2) {
        c[i] = (par_call){fn, arg, i, mode};
        started[i] = pthread_create(&th[i], NULL, par_thread, &c[i]) == 0;
    }
    for (unsigned k = n; k-- > 0;)
        if (!started[k])
            fn(arg, k);
    for (unsigned i = 0; i < n; i++)
        if (started[i])
            pthread_join(th[i], NULL);
    g_par_calls++;
}

#endif
