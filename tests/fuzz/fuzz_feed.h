/* fuzz_feed.h: what the targets that play a client to a server's bytes share (fuzz_client,
 * fuzz_train): the input as a sequence of length-prefixed (2 bytes, little-endian) wire
 * messages, each decoded (flp_decode, 64 KiB at most) and handed to a client core, which trains
 * whenever a task is complete and encodes its update and every chunk of it. */
#ifndef FUZZ_FEED_H
#define FUZZ_FEED_H

#include <stdint.h>
#include <stdlib.h>

#include "flc_core.h"
#include "flp_wire.h"

/* Feeds data to c; a Task's epochs are lowered to max_epochs where that is not 0. Aborts if an
 * update that trained does not encode. Returns how many updates were trained. */
static int fuzz_feed_client(flc_core *c, const uint8_t *data, size_t size, uint32_t max_epochs)
{
    int trained = 0;
    flp_limits lim = flp_limits_default();
    lim.max_msg_bytes = 1 << 16;
    while (size >= 2) {
        size_t len = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        flp_msg *m = NULL;
        if (flp_decode(&m, data, len, &lim, NULL, 0) == FL_OK) {
            if (max_epochs && m->type == FLP_TASK && m->task.train.epochs > max_epochs)
                m->task.train.epochs = max_epochs;
            flc_core_on_message(c, m);
            if (flc_core_ready(c) && flc_core_train(c) == FL_OK) {
                flp_msg up;
                if (flc_core_update(c, &up) != FL_OK)
                    abort();
                for (uint32_t i = 0; i < flc_core_update_chunks(c); i++)
                    if (flc_core_update_chunk(c, i, &up) != FL_OK)
                        abort();
                trained++;
            }
            flp_msg_free(m);
        }
        data += len;
        size -= len;
    }
    return trained;
}

#endif
