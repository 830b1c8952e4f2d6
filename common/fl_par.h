/* fl_par.h: a parallel-for that an embedder may lend a library's hot loops.
 *
 * run(pool, fn, arg, n) must call fn(arg, i) exactly once for each i in [0, n), on any threads
 * (the calling one included), and return only when every call has returned; fn never calls back
 * into the library that lent it out. A library that takes one splits a large piece of work into
 * `parts` disjoint pieces and gives the same bits as its serial loop: the split is a speed knob,
 * never a result knob. fl_sim lends one (sim/flsim_fold.c); the daemon does not. Header only. */
#ifndef FL_PAR_H
#define FL_PAR_H

#define FL_PAR_MAX 64

typedef struct fl_par {
    void (*run)(void *pool, void (*fn)(void *arg, unsigned i), void *arg, unsigned n);
    void *pool;
    unsigned parts;     /* pieces per split, <= FL_PAR_MAX; 0 or 1 = serial, run unused */
    unsigned min_elems; /* smallest split, in elements; 0 = the library's default */
} fl_par;

#endif
