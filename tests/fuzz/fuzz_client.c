/* fuzz_client: what a client does with bytes from a server.
 *
 * The first byte picks a parser: 0-2 feed the rest as a NUL-terminated spec string to the
 * architecture, codec or partition spec parser (the Task message carries the first two from the
 * server); 3+ read the rest as a sequence of length-prefixed (2 bytes, little-endian) wire
 * messages, decode each (flp_decode) and hand what decodes to a client core, with a plug-in
 * trainer, training whenever a task completes. Invariants: nothing crashes, leaks or allocates
 * without bound (a Task above the client's parameter cap is refused), and a parsed architecture
 * is self-consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flc_core.h"
#include "flm_arch.h"
#include "flm_data.h"
#include "flp_wire.h"
#include "fuzz_feed.h"
#include "flz.h"

static fl_status touch(void *user, const flc_core_job *job, float *params, uint64_t *n, double *loss)
{
    (void)user;
    for (size_t i = 0; i < job->sub->n_params; i++)
        params[i] += 0.5f;
    *n = 1;
    *loss = 0.5;
    return FL_OK;
}

static void check_arch(const flm_arch *a)
{
    size_t off = 0;
    for (int t = 0; t < a->n_tensors; t++) {
        if (a->tensors[t].offset != off)
            abort();
        off += a->tensors[t].numel;
    }
    if (off != a->n_params)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    data++;
    size--;
    if (mode < 3) {
        char s[256];
        const size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
        memcpy(s, data, n);
        s[n] = '\0';
        char err[160];
        if (mode == 0) {
            flm_arch a;
            if (flm_arch_parse(s, &a, err, sizeof err) == FL_OK) {
                check_arch(&a);
                flm_arch b;
                if (flm_arch_parse(a.spec, &b, err, sizeof err) != FL_OK || b.n_params != a.n_params)
                    abort(); /* the canonical spec names the same model */
            }
        } else if (mode == 1) {
            flz_spec z;
            if (flz_spec_parse(s, &z, err, sizeof err) == FL_OK) {
                char canon[FLZ_SPEC_STRLEN];
                flz_spec back;
                flz_spec_format(&z, canon, sizeof canon);
                if (flz_spec_parse(canon, &back, err, sizeof err) != FL_OK)
                    abort();
            }
        } else {
            flm_partition_spec p;
            flm_partition_spec_parse(s, &p, err, sizeof err);
        }
        return 0;
    }
    const flc_core_config cfg = {"fuzz", 7, 1, NULL, touch, NULL, {0}, NULL};
    flc_core *c = NULL;
    if (flc_core_new(&cfg, &c) != FL_OK)
        return 0;
    flc_core_set_max_params(c, (size_t)1 << 20);
    flc_core_keep_rewind_point(c, 1); /* as libflclient runs it: replayed rounds restore */
    fuzz_feed_client(c, data, size, 0);
    flc_core_free(c);
    return 0;
}
