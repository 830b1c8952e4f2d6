/* fuzz_server: what the server's round engine (fl_server/core, fls_core_on_message) does with
 * bytes from clients, as the daemon feeds it: each message is decoded (flp_decode, default
 * limits) and handed to the core under the key of the connection it came on.
 *
 * Input: byte 0 = setup (bits 0-1 policy kind, bits 2-4 up codec, see CODECS, bit 5 the model:
 * the mlp mlp:8-6-3, or the mixture of grouped experts moge:8:6:2:2:1:3); then records of
 * [selector][len lo][len hi][len bytes]. Selector bits 0-2: the connection (0-5 joined clients
 * 10..60, 6 key 70 never joined, 7 key 10 again); bits 3-4: 0 the bytes are a message from it,
 * 1 it disconnects and reconnects, 2 time passes the round deadline, 3 fls_core_update_abort.
 * After every record the events are drained and a closed round is followed by the next.
 * Invariants: no crash, leak or UB; the global model stays finite.
 *
 * Built with -DFUZZ_SERVER_GEN it is instead a seed generator: honest clients (flc_core, a
 * plug-in trainer) answer their Tasks and their Updates and Chunks are written as records. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_status.h"
#include "flm_arch.h"
#include "flp_wire.h"
#include "fls_core.h"
#include "flz.h"

static const char *const CODECS[8] = {"none", "q8", "f16", "topk0.25+q8", "rot+q4+zstd",
                                      "q4+zstd", "sub0.5+q8", "bf16"};
static const uint32_t KEYS[8] = {10, 20, 30, 40, 50, 60, 70, 10};

static fls_core *setup(uint8_t mode)
{
    fls_config c = fls_config_default();
    snprintf(c.arch, sizeof c.arch, "%s", mode & 32 ? "moge:8:6:2:2:1:3" : "mlp:8-6-3");
    c.seed = 42;
    c.policy.kind = (fls_policy_kind)(mode & 3);
    c.clients_per_round = 3;
    c.overcommit = 1.3;
    c.round_timeout_s = 60;
    c.chunk_elems = 7;
    c.max_rounds = 0;
    snprintf(c.up_codec, sizeof c.up_codec, "%s", CODECS[(mode >> 2) & 7]);
    fls_core *core = NULL;
    if (fls_core_new(&c, &core) != FL_OK)
        abort();
    for (uint32_t k = 0; k < 6; k++)
        if (fls_core_client_join(core, KEYS[k], 100, 0.0) != FL_OK)
            abort();
    return core;
}

static void check_finite(const fls_core *core)
{
    const float *p = fls_core_params(core);
    for (size_t i = 0; i < fls_core_arch(core)->n_params; i++)
        if (!isfinite(p[i]))
            abort();
}

/* Drains the events; a closed round is checked and followed by the next. */
static void settle(fls_core *core, double now, uint32_t *tasks, size_t *n_tasks)
{
    fls_event ev;
    for (int pass = 0; pass < 2; pass++) {
        while (fls_core_poll(core, &ev)) {
            if (ev.kind == FLS_EV_TASK && tasks && *n_tasks < 16)
                tasks[(*n_tasks)++] = ev.client;
            if (ev.kind == FLS_EV_ROUND_END)
                check_finite(core);
        }
        if (!fls_core_round_open(core))
            fls_core_tick(core, now);
    }
}

#ifndef FUZZ_SERVER_GEN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fls_core *core = setup(data[0]);
    data++;
    size--;
    double now = 1.0;
    settle(core, now, NULL, NULL);
    while (size >= 3) {
        const uint8_t sel = data[0];
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        const uint32_t key = KEYS[sel & 7];
        now += 0.25;
        switch ((sel >> 3) & 3) {
        case 0: {
            flp_msg *m = NULL;
            if (flp_decode(&m, data, len, NULL, NULL, 0) == FL_OK) {
                fls_core_on_message(core, key, m, now);
                flp_msg_free(m);
            }
            break;
        }
        case 1:
            fls_core_client_leave(core, key, now);
            fls_core_client_join(core, key, 100, now);
            break;
        case 2:
            now += 61;
            fls_core_tick(core, now);
            break;
        default:
            fls_core_update_abort(core, key, now);
            break;
        }
        data += len;
        size -= len;
        settle(core, now, NULL, NULL);
    }
    check_finite(core);
    fls_core_free(core);
    return 0;
}
#else
#include "flc_core.h"
#include "fuzz_honest.h"

static FILE *out;

static void put(uint8_t sel, const flp_msg *m)
{
    uint8_t *b = NULL;
    size_t len = 0;
    if (flp_encode_alloc(&b, &len, m, NULL, NULL, 0) != FL_OK || len > 65535)
        abort();
    const uint8_t h[3] = {sel, (uint8_t)len, (uint8_t)(len >> 8)};
    fwrite(h, 1, 3, out);
    fwrite(b, 1, len, out);
    free(b);
}

/* Hands msg to the client through the wire (encode, decode). */
static void to_client(flc_core *cl, const flp_msg *m)
{
    flp_msg *d = honest_wire(m);
    flc_core_on_message(cl, d);
    flp_msg_free(d);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int files = 0;
    for (unsigned mode = 0; mode < 64; mode++) {
        for (int rounds = 1; rounds <= 2; rounds++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/gen-%02u-%d", argv[1], mode, rounds);
            out = fopen(path, "wb");
            if (!out)
                return 1;
            const uint8_t m0 = (uint8_t)mode;
            fwrite(&m0, 1, 1, out);
            fls_core *core = setup(m0);
            double now = 1.0;
            for (int r = 0; r < rounds; r++) {
                uint32_t tasks[16];
                size_t nt = 0;
                settle(core, now, tasks, &nt);
                for (size_t i = 0; i < nt; i++) {
                    uint8_t sel = 0;
                    while (KEYS[sel] != tasks[i])
                        sel++;
                    const flc_core_config cc = {"dev", tasks[i], 5,    NULL,
                                                honest_touch, NULL, {0}, NULL};
                    flc_core *cl = NULL;
                    if (flc_core_new(&cc, &cl) != FL_OK)
                        abort();
                    flp_msg t;
                    if (fls_core_task(core, tasks[i], &t) != FL_OK)
                        abort();
                    to_client(cl, &t);
                    uint8_t buf[1 << 16];
                    for (uint32_t ti = 0; ti < t.task.n_tensors; ti++)
                        for (uint32_t ci = 0; ci < t.task.tensors[ti].n_chunks; ci++) {
                            size_t len = 0;
                            flp_msg cm = flp_msg_header(FLP_CHUNK, t.round, NULL);
                            if (fls_core_task_chunk(core, tasks[i], ti, ci, buf, sizeof buf, &len,
                                                    &cm.chunk) != FL_OK)
                                abort();
                            to_client(cl, &cm);
                        }
                    if (!flc_core_ready(cl) || flc_core_train(cl) != FL_OK)
                        abort();
                    flp_msg up;
                    if (flc_core_update(cl, &up) != FL_OK)
                        abort();
                    put(sel, &up);
                    for (uint32_t k = 0; k < flc_core_update_chunks(cl); k++) {
                        if (flc_core_update_chunk(cl, k, &up) != FL_OK)
                            abort();
                        put(sel, &up);
                    }
                    flc_core_free(cl);
                }
                /* feed the same records to this core, so that the next round is the fuzzer's */
                fflush(out);
                fclose(out);
                FILE *f = fopen(path, "rb");
                static uint8_t all[1 << 22];
                const size_t n = fread(all, 1, sizeof all, f);
                fclose(f);
                out = fopen(path, "ab");
                /* replay only this round's records: skip what earlier rounds wrote */
                static size_t done = 0;
                if (r == 0)
                    done = 1;
                for (size_t p = done; p + 3 <= n;) {
                    const size_t len = (size_t)all[p + 1] | (size_t)all[p + 2] << 8;
                    flp_msg *m = NULL;
                    now += 0.25;
                    if (flp_decode(&m, all + p + 3, len, NULL, NULL, 0) != FL_OK)
                        abort();
                    fls_core_on_message(core, KEYS[all[p] & 7], m, now);
                    flp_msg_free(m);
                    p += 3 + len;
                }
                done = n;
            }
            fls_core_free(core);
            fclose(out);
            files++;
        }
    }
    printf("%d seeds\n", files);
    return 0;
}
#endif
