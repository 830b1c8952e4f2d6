/* fuzz_honest.h: what the fuzz targets that play honest clients share (fuzz_server's seed
 * generator, fuzz_restore): a plug-in trainer that moves every weight a little, and a message
 * passed through the wire (encoded, decoded) as a real connection would hand it over. */
#ifndef FUZZ_HONEST_H
#define FUZZ_HONEST_H

#include <stdint.h>
#include <stdlib.h>

#include "fl_status.h"
#include "flc_core.h"
#include "flp_wire.h"

/* The trainer: +0.01 * (i % 5) on weight i, 10 samples, loss 0.7. */
static fl_status honest_touch(void *user, const flc_core_job *job, float *params, uint64_t *n,
                              double *loss)
{
    (void)user;
    for (size_t i = 0; i < job->sub->n_params; i++)
        params[i] += 0.01f * (float)(i % 5);
    *n = 10;
    *loss = 0.7;
    return FL_OK;
}

/* m encoded and decoded (the caller frees the result with flp_msg_free); aborts on failure: an
 * honest message always goes through. */
static flp_msg *honest_wire(const flp_msg *m)
{
    uint8_t *b = NULL;
    size_t len = 0;
    flp_msg *d = NULL;
    if (flp_encode_alloc(&b, &len, m, NULL, NULL, 0) != FL_OK ||
        flp_decode(&d, b, len, NULL, NULL, 0) != FL_OK)
        abort();
    free(b);
    return d;
}

#endif
