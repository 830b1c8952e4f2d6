/* fuzz_restore: a server resumed from a checkpoint whose fields are the fuzzer's, then run on.
 * fuzz_checkpoint covers the file's parser; this covers what the round engine does with whatever
 * the parser lets through (fls_core_restore, then rounds from the restored round number, model
 * version, optimizer state, policy state, target and run id).
 *
 * Input: byte 0 = setup (bits 0-1 policy kind, bits 2-4 server optimizer, bits 5-6 the resumed
 * server's target accuracy: none, 0.5, 0.9, 1.0, bit 7 the model: mlp:8-6-3 or the mixture of
 * grouped experts moge:8:6:2:2:1:3); then, each read while
 * bytes remain, little-endian: u64 round, u64 model version, u64 optimizer steps, u8 target
 * reached, f64 target accuracy, u64 run id, u8 what the rest is (bits 0-1: 1, the policy state's
 * bytes; 3, bytes XORed over the reference's own policy state, longer by what the rest adds, so
 * that a mutation of an honest AFD state (scores, keep-sets, per-client entries) gets past the
 * importer's magic and counts and reaches the round engine; 0 or 2, f32 values laid over the
 * model's parameters then the optimizer's arrays).
 * A reference core runs one honest round and writes its checkpoint; the fields above replace its
 * own, the result goes through fls_ckpt_serialize and fls_ckpt_parse (what a file could hold), and
 * a fresh core restores it. Invariants: no crash, leak or UB; a refused restore leaves the core
 * as it was (it still runs from round 0); a restored core goes on from the checkpoint's round and
 * version, and two honest rounds of three clients each close with every update committed, unless
 * the restored run had already ended: exactly when the checkpoint says its target was reached at
 * an accuracy at or above the resumed server's target. The model stays finite throughout (a step
 * that would leave the floats is refused by the server optimizer).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_status.h"
#include "flc_core.h"
#include "flp_wire.h"
#include "fls_ckpt.h"
#include "fls_core.h"
#include "fuzz_honest.h"

static const uint32_t KEYS[4] = {10, 20, 30, 40};

static const double TARGETS[4] = {0.0, 0.5, 0.9, 1.0};

static fls_core *setup(uint8_t mode, double target)
{
    fls_config c = fls_config_default();
    c.target_accuracy = target;
    snprintf(c.arch, sizeof c.arch, "%s", mode & 128 ? "moge:8:6:2:2:1:3" : "mlp:8-6-3");
    c.seed = 42;
    c.policy.kind = (fls_policy_kind)(mode & 3);
    c.opt.kind = (fls_opt_kind)(((mode >> 2) & 7) % 5);
    c.clients_per_round = 3;
    c.round_timeout_s = 60;
    c.chunk_elems = 7;
    c.max_rounds = 0;
    fls_core *core = NULL;
    if (fls_core_new(&c, &core) != FL_OK)
        abort();
    for (uint32_t k = 0; k < 4; k++)
        if (fls_core_client_join(core, KEYS[k], 100, 0.0) != FL_OK)
            abort();
    return core;
}

/* Hands m to the client through the wire. */
static void to_client(flc_core *cl, const flp_msg *m)
{
    flp_msg *d = honest_wire(m);
    flc_core_on_message(cl, d);
    flp_msg_free(d);
}

static void to_server(fls_core *core, uint32_t key, const flp_msg *m, double now)
{
    flp_msg *d = honest_wire(m);
    fls_core_on_message(core, key, d, now);
    flp_msg_free(d);
}

/* One round: its Tasks taken by honest clients, who answer until the round closes (at its quorum:
 * the over-committed rest are late). Returns how many updates were sent, or -1 when no round
 * started (the run is over). The round must close, with each update sent committed. */
static int honest_round(fls_core *core, double *now)
{
    fls_event ev;
    uint32_t tasks[8];
    flc_core *cl[8];
    size_t nt = 0;
    while (fls_core_poll(core, &ev))
        ;
    if (!fls_core_round_open(core))
        fls_core_tick(core, *now);
    while (fls_core_poll(core, &ev))
        if (ev.kind == FLS_EV_TASK && nt < 8)
            tasks[nt++] = ev.client;
    if (!fls_core_round_open(core))
        return -1;
    for (size_t i = 0; i < nt; i++) {
        const flc_core_config cc = {"dev", tasks[i], 5, NULL, honest_touch, NULL, {0}, NULL};
        flp_msg t;
        if (flc_core_new(&cc, &cl[i]) != FL_OK || fls_core_task(core, tasks[i], &t) != FL_OK)
            abort();
        to_client(cl[i], &t);
        static uint8_t buf[1 << 16];
        for (uint32_t ti = 0; ti < t.task.n_tensors; ti++)
            for (uint32_t ci = 0; ci < t.task.tensors[ti].n_chunks; ci++) {
                size_t len = 0;
                flp_msg cm = flp_msg_header(FLP_CHUNK, t.round, NULL);
                if (fls_core_task_chunk(core, tasks[i], ti, ci, buf, sizeof buf, &len,
                                        &cm.chunk) != FL_OK)
                    abort();
                to_client(cl[i], &cm);
            }
    }
    int sent = 0;
    for (size_t i = 0; i < nt; i++) {
        if (fls_core_round_open(core)) {
            flp_msg up;
            if (!flc_core_ready(cl[i]) || flc_core_train(cl[i]) != FL_OK ||
                flc_core_update(cl[i], &up) != FL_OK)
                abort();
            *now += 0.25;
            to_server(core, tasks[i], &up, *now);
            for (uint32_t k = 0; k < flc_core_update_chunks(cl[i]); k++) {
                if (flc_core_update_chunk(cl[i], k, &up) != FL_OK)
                    abort();
                to_server(core, tasks[i], &up, *now);
            }
            sent++;
        }
        flc_core_free(cl[i]);
    }
    while (fls_core_poll(core, &ev))
        ;
    const fls_round_metrics *m = fls_core_last_metrics(core);
    if (fls_core_round_open(core) || !m || m->reported != (uint32_t)sent)
        abort();
    return sent;
}

static uint64_t take_u64(const uint8_t **d, size_t *n, uint64_t keep)
{
    if (*n < 8)
        return keep;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | (*d)[i];
    *d += 8;
    *n -= 8;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    data++;
    size--;
    fls_core *ref = setup(mode, 0.0);
    double now = 1.0;
    if (honest_round(ref, &now) <= 0)
        abort();
    fls_ckpt k;
    if (fls_core_checkpoint(ref, &k) != FL_OK)
        abort();
    fls_core_free(ref);

    k.round = take_u64(&data, &size, k.round);
    k.model_version = take_u64(&data, &size, k.model_version);
    k.opt_steps = take_u64(&data, &size, k.opt_steps);
    if (size >= 9) {
        k.target_reached = data[0] & 1;
        uint64_t bits = take_u64(&(const uint8_t *){data + 1}, &(size_t){8}, 0);
        memcpy(&k.target_acc, &bits, sizeof k.target_acc);
        data += 9;
        size -= 9;
    }
    k.run_id = take_u64(&data, &size, k.run_id);
    if (size >= 1) {
        const int policy = data[0] & 3;
        data++;
        size--;
        if (policy == 3) {
            const size_t n = size > k.policy_len ? size : k.policy_len;
            uint8_t *x = calloc(n ? n : 1, 1);
            if (!x)
                abort();
            if (k.policy_len)
                memcpy(x, k.policy, k.policy_len);
            for (size_t i = 0; i < size; i++)
                x[i] ^= data[i];
            free(k.policy);
            k.policy = x;
            k.policy_len = n;
        } else if (policy == 1) {
            free(k.policy);
            k.policy = size ? malloc(size) : NULL;
            if (size && !k.policy)
                abort();
            if (size)
                memcpy(k.policy, data, size);
            k.policy_len = size;
        } else {
            size_t at = 0;
            for (size_t i = 0; i < k.n_params && at + 4 <= size; i++, at += 4)
                memcpy(&k.params[i], data + at, 4);
            for (size_t a = 0; a < k.n_opt; a++)
                for (size_t i = 0; i < k.opt[a].n && at + 4 <= size; i++, at += 4)
                    memcpy(&k.opt[a].data[i], data + at, 4);
        }
    }
    /* What a file could hold: the checkpoint written and parsed back. */
    uint8_t *file = NULL;
    size_t flen = 0;
    fls_ckpt back;
    const int parses = fls_ckpt_serialize(&k, &file, &flen) == FL_OK &&
                       fls_ckpt_parse(file, flen, &back, NULL, 0) == FL_OK;
    free(file);
    fls_ckpt_clear(&k);
    if (!parses)
        return 0;

    const double target = TARGETS[(mode >> 5) & 3];
    fls_core *core = setup(mode, target);
    const fl_status st = fls_core_restore(core, &back);
    if (st != FL_OK) { /* all or nothing: the core runs as a fresh one */
        if (fls_core_round(core) != 0)
            abort();
    } else if (fls_core_round(core) != back.round) {
        abort();
    }
    const int ended = st == FL_OK && back.target_reached && target > 0.0 &&
                      back.target_acc >= target;
    for (int r = 0; r < 2; r++) {
        const uint64_t round = fls_core_round(core);
        const int ran = honest_round(core, &now) >= 0;
        if (ran == ended) /* a round ran in an ended run, or none in a run that goes on */
            abort();
        if (!ran)
            break;
        if (fls_core_round(core) != round + 1)
            abort();
        const float *p = fls_core_params(core);
        for (size_t i = 0; i < fls_core_arch(core)->n_params; i++)
            if (!isfinite(p[i]))
                abort();
    }
    fls_ckpt_clear(&back);
    fls_core_free(core);
    return 0;
}
