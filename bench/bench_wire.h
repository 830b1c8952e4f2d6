/* bench_wire.h: the messages of a raw client, for the benchmarks that play clients without
 * libflclient (bench_ids, bench_server --idle). Header-only: each benchmark is one program. */
#ifndef FEDROP_BENCH_WIRE_H
#define FEDROP_BENCH_WIRE_H

#include <stdint.h>
#include <stdlib.h>
#include <zmq.h>

#include "flp_wire.h"

/* A Hello of protocol version 1 from id, announcing memory_bytes (0: not said). */
static inline flp_msg bench_hello(const char *id, uint64_t memory_bytes)
{
    flp_msg m = flp_msg_header(FLP_HELLO, 0, id);
    m.hello.client_id = id;
    m.hello.backend = FLP_BACKEND_CPU;
    m.hello.dataset_size = 100;
    m.hello.memory_bytes = memory_bytes;
    m.hello.min_version = 1;
    m.hello.max_version = 1;
    return m;
}

/* m encoded and sent on sock with zmq_send's flags: 0, or -1 (encoding or sending failed). */
static inline int bench_send(void *sock, const flp_msg *m, int flags)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (flp_encode_alloc(&buf, &len, m, NULL, NULL, 0) != FL_OK)
        return -1;
    const int r = zmq_send(sock, buf, len, flags) == (int)len ? 0 : -1;
    free(buf);
    return r;
}

#endif
