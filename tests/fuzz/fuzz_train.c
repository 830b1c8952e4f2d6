/* fuzz_train: a client's built-in trainer on what a server sends. fuzz_client's plug-in trainer
 * never runs the model; here the Task's architecture, keep-set, training settings and weights
 * (NaN's, infinities, subnormals included) drive the forward and backward passes of every model
 * family (mlp, cnn, lstm, moge) on the device's own samples, and then the update's encoding: a
 * hostile or broken server must not make them read or write out of bounds, crash, or leak.
 *
 * Input: byte 0 picks the device's samples (bit 0 set: 6 rows of 8 token ids below 6; clear: 6
 * rows of 16 floats), labels 0 and 1; the rest is a sequence of length-prefixed (2 bytes,
 * little-endian) wire messages, decoded (flp_decode) and handed to a client core with the
 * built-in trainer, which trains whenever a task is complete and encodes its update. The harness
 * is the transport: it lowers a Task's epochs to at most 2 and leaves the rest as sent (a server
 * may ask for any number of epochs; the fuzzer's time is bounded), and the core takes models of
 * at most 2^18 parameters (the cnn, whose dense layer has 2048 units, takes 189,314 on
 * 4x4 images). Invariants: nothing crashes, leaks or reads past its buffers; a trained
 * update encodes, each of its chunks too.
 *
 * Built with -DFUZZ_TRAIN_GEN it is instead the seed generator: for each family, a server core
 * (AFD keep-sets; downlinks none, rot+q4+zstd and rot+q1) writes the Task and Chunks of one
 * client. A bit flip anywhere in a zstd payload makes it undecodable, so the cnn's only seed
 * (rot+q4+zstd: its uncompressed one is 467 KB) trained on no mutation; rot+q1 decodes whatever
 * its payload bits are.
 *   ninja -C build tests/fuzz/gen_train_seeds && build/tests/fuzz/gen_train_seeds DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flc_core.h"
#include "flp_wire.h"
#include "fuzz_feed.h"

#define ROWS 6
#define FLOATS 16 /* mlp:16-..., cnn:K:4x4x1, moge:16:... */
#define TOKENS 8  /* lstm:6:E:H:L:8 */
#define VOCAB 6

static float g_x[ROWS * FLOATS];
static int32_t g_tok[ROWS * TOKENS];
static const int32_t g_labels[ROWS] = {0, 1, 1, 0, 1, 0};

static void make_samples(void)
{
    for (int i = 0; i < ROWS * FLOATS; i++)
        g_x[i] = (float)((i * 37) % 19) / 9.0f - 1.0f;
    for (int i = 0; i < ROWS * TOKENS; i++)
        g_tok[i] = (i * 5 + 1) % VOCAB;
}

/* The input as above; returns how many updates were trained and encoded. */
static int run(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    make_samples();
    const int tokens = data[0] & 1;
    data++;
    size--;
    const flm_samples s = {tokens ? NULL : g_x, tokens ? g_tok : NULL, g_labels, NULL, ROWS};
    const flc_core_config cfg = {"fuzz", 7, 3, &s, NULL, NULL, {0}, NULL};
    flc_core *c = NULL;
    if (flc_core_new(&cfg, &c) != FL_OK)
        return 0;
    if (flc_core_set_row_len(c, tokens ? TOKENS : FLOATS) != FL_OK)
        abort();
    flc_core_set_max_params(c, (size_t)1 << 18);
    flc_core_keep_rewind_point(c, 1); /* as libflclient runs it */
    const int trained = fuzz_feed_client(c, data, size, 2);
    flc_core_free(c);
    return trained;
}

#ifndef FUZZ_TRAIN_GEN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}
#else
#include "fls_core.h"

static void put(FILE *out, const flp_msg *m)
{
    uint8_t *b = NULL;
    size_t len = 0;
    if (flp_encode_alloc(&b, &len, m, NULL, NULL, 0) != FL_OK || len > 65535)
        abort();
    const uint8_t h[2] = {(uint8_t)len, (uint8_t)(len >> 8)};
    fwrite(h, 1, 2, out);
    fwrite(b, 1, len, out);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    static const char *const archs[] = {"mlp:16-12-8-2", "cnn:2:4x4x1", "lstm:6:4:5:1:8",
                                        "moge:16:8:2:2:1:2"};
    /* rot+q1: a compressed downlink that no bit flip can make undecodable (zstd's can), so that
     * mutations of the cnn's seed, too big for "none", still train */
    static const char *const codecs[] = {"none", "rot+q4+zstd", "rot+q1"};
    int files = 0;
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++)
        for (size_t k = 0; k < sizeof codecs / sizeof codecs[0]; k++) {
            fls_config cf = fls_config_default();
            snprintf(cf.arch, sizeof cf.arch, "%s", archs[a]);
            snprintf(cf.down_codec, sizeof cf.down_codec, "%s", codecs[k]);
            cf.seed = 11 + k;
            cf.policy.kind = k == 1 ? FLS_POLICY_AFD_MULTI : FLS_POLICY_AFD_SINGLE;
            cf.clients_per_round = 1;
            cf.round_timeout_s = 60;
            cf.chunk_elems = 256;
            cf.train.batch_size = 2;
            fls_core *core = NULL;
            if (fls_core_new(&cf, &core) != FL_OK) {
                fprintf(stderr, "gen_train_seeds: %s: the server core refuses it\n", archs[a]);
                return 1;
            }
            if (fls_core_client_join(core, 7, ROWS, 0.0) != FL_OK ||
                fls_core_tick(core, 1.0) != FL_OK)
                abort();
            fls_event ev;
            int tasks = 0;
            char path[4096];
            snprintf(path, sizeof path, "%s/gen-%s-%s", argv[1], archs[a], codecs[k]);
            for (char *p = path + strlen(argv[1]) + 1; *p; p++)
                if (*p == ':' || *p == '+')
                    *p = '_';
            FILE *out = fopen(path, "wb");
            if (!out)
                return 1;
            const uint8_t mode = archs[a][0] == 'l'; /* token samples for the lstm */
            fwrite(&mode, 1, 1, out);
            while (fls_core_poll(core, &ev)) {
                if (ev.kind != FLS_EV_TASK)
                    continue;
                flp_msg t;
                if (fls_core_task(core, ev.client, &t) != FL_OK)
                    abort();
                put(out, &t);
                uint8_t buf[1 << 15];
                for (uint32_t ti = 0; ti < t.task.n_tensors; ti++)
                    for (uint32_t ci = 0; ci < t.task.tensors[ti].n_chunks; ci++) {
                        size_t len = 0;
                        flp_msg cm = flp_msg_header(FLP_CHUNK, t.round, NULL);
                        if (fls_core_task_chunk(core, ev.client, ti, ci, buf, sizeof buf, &len,
                                                &cm.chunk) != FL_OK)
                            abort();
                        put(out, &cm);
                    }
                tasks++;
            }
            fclose(out);
            fls_core_free(core);
            /* the seed must reach the trainer: one task, trained on the device's samples */
            static uint8_t all[1 << 21];
            FILE *f = fopen(path, "rb");
            const size_t n = f ? fread(all, 1, sizeof all, f) : 0;
            if (f)
                fclose(f);
            if (tasks != 1 || n == sizeof all || run(all, n) != 1) {
                fprintf(stderr, "gen_train_seeds: %s: %d tasks, not trained once\n", archs[a], tasks);
                return 1;
            }
            files++;
        }
    printf("%d seeds\n", files);
    return 0;
}
#endif
