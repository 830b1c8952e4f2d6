/* fuzz_greeting: the ZMTP greeting reader of libflclient's mechanism probe
 * (flc_zmtp_greeting_mechanism, fl_client/flc_zmtp.h) on arbitrary bytes, at every length from 0
 * to the input's, as the probe calls it while bytes arrive. Never a crash; a verdict never goes
 * back (once -1 or 1, the same for every longer prefix, 1 with the same name); 0 only below 32
 * bytes; a name read is 1..20 characters of the RFC's set that stand at bytes 12.. of the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flc_zmtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char first[FLC_ZMTP_MECH_MAX + 1] = "";
    int settled = 0;
    for (size_t len = 0; len <= size; len++) {
        char mech[FLC_ZMTP_MECH_MAX + 1];
        memset(mech, 'x', sizeof mech);
        const int v = flc_zmtp_greeting_mechanism(mech, data, len);
        if (v < -1 || v > 1 || (v == 0 && len >= FLC_ZMTP_GREETING_HEAD))
            abort();
        if (v != 1 && mech[0] != '\0')
            abort();
        if (settled && v != settled)
            abort();
        if (v == 1) {
            const size_t n = strnlen(mech, sizeof mech);
            if (n == 0 || n > FLC_ZMTP_MECH_MAX || memcmp(mech, data + 12, n) != 0)
                abort();
            for (size_t i = 0; i < n; i++)
                if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+", mech[i]))
                    abort();
            if (settled == 1 && strcmp(mech, first) != 0)
                abort();
            memcpy(first, mech, n + 1);
        }
        if (v != 0)
            settled = v;
    }
    return 0;
}
