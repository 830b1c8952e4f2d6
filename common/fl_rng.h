/* fl_rng.h: counter-based random streams (Philox4x32-10, Salmon et al., SC'11).
 *
 * Every random choice in fedrop draws from a stream keyed by (run seed, round, client, purpose).
 * A stream is a pure function of its key and a block counter, so any client's draws in any round
 * can be reproduced without replaying anyone else's: results do not depend on thread count,
 * arrival order or MPI rank. An fl_rng is a small value type; copy it freely. Not shared between
 * threads (each thread makes its own stream: that is the point).
 */
#ifndef FL_RNG_H
#define FL_RNG_H

#include <stddef.h>
#include <stdint.h>

/* What a stream is for. Values are part of the reproducibility contract: append only. */
typedef enum fl_rng_purpose {
    FL_RNG_INIT = 1,            /* model parameter initialisation */
    FL_RNG_CLIENT_SAMPLE = 2,   /* which clients the server selects in a round */
    FL_RNG_KEEPSET = 3,         /* submodel keep-sets (fd, afd exploration) */
    FL_RNG_BATCH = 4,           /* local batch order on a client */
    FL_RNG_QUANT = 5,           /* stochastic quantisation dither */
    FL_RNG_SUBSAMPLE = 6,       /* codec random subsampling */
    FL_RNG_ROTATE = 7,          /* codec Hadamard random signs */
    FL_RNG_PARTITION = 8,       /* dataset partitioning */
    FL_RNG_PROFILE = 9,         /* simulated device / network profiles */
    FL_RNG_AVAIL = 10,          /* simulated availability */
    FL_RNG_DATA = 11,           /* synthetic datasets */
    FL_RNG_TEST = 12,           /* tests */
    FL_RNG_NET = 13,            /* a client's reconnection jitter (seeded by fl_entropy_u64) */
} fl_rng_purpose;

typedef struct fl_rng {
    uint32_t key[2];    /* from the run seed */
    uint32_t ctr[4];    /* ctr[0] block index, ctr[1] round, ctr[2] client, ctr[3] purpose */
    uint32_t buf[4];    /* the current output block */
    unsigned pos;       /* next unread word of buf; 4 = empty */
} fl_rng;

/* The stream for (seed, round, client, purpose), positioned at its start. */
fl_rng fl_rng_stream(uint64_t seed, uint32_t round, uint32_t client, uint32_t purpose);

/* Repositions r at 32-bit word `index` of its stream (random access, O(1)). */
void fl_rng_seek(fl_rng *r, uint64_t index);

uint32_t fl_rng_u32(fl_rng *r);
uint64_t fl_rng_u64(fl_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float fl_rng_uniform(fl_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double fl_rng_uniform_f64(fl_rng *r);
/* Uniform integer in [0, n), unbiased (Lemire's method); n > 0. */
uint32_t fl_rng_below(fl_rng *r, uint32_t n);
/* Standard normal (Box-Muller on two 53-bit uniforms). */
double fl_rng_normal(fl_rng *r);
/* Fills out[0..n) with uniform 32-bit words, 4 per Philox block (the fast path). */
void fl_rng_fill_u32(fl_rng *r, uint32_t *out, size_t n);

/* 64 bits from the kernel's randomness (getentropy), never 0; without it, the clock and the
 * process id and the wall clock mixed, still distinct per start. For the few draws that must NOT be reproducible
 * from the run seed: a run's id, hash-table keys against chosen inputs, a device's jitter. */
uint64_t fl_entropy_u64(void);

/* The raw Philox4x32-10 block function: out = philox(key, ctr). Exposed for tests and for
 * vectorised users that manage their own counters. */
void fl_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

#endif
