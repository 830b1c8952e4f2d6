/* fuzz_wire.c: the wire decoder against arbitrary bytes.
 *
 * Decode with default limits. A refusal must leave *out NULL and say why. An accepted message must
 * re-encode (it passed the same validator the encoder runs), decode again and compare equal
 * (decode . encode is the identity on valid messages). Chunk messages are fed to a tracker of fixed
 * headers, and a Task's or Update's own headers drive a tracker fed with every chunk in order, so
 * the range, duplicate and completeness logic sees fuzzed numbers too. Decoding again under tight
 * limits may only add limit refusals.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flp_wire.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void track_chunk(const flp_chunk *c)
{
    static const flp_tensor_header hs[] = {
        {"a", 24, 10, 3, 2, {4, 6, 0, 0}},
        {"b", 4, 10, 1, 1, {4, 0, 0, 0}},
        {"c", 1000, 7, 143, 1, {1000, 0, 0, 0}},
    };
    flp_msg_tracker *t = NULL;
    if (flp_msg_tracker_new(&t, hs, 3, c->dir) != FL_OK)
        return;
    char err[FLP_ERRBUF];
    const fl_status s = flp_msg_tracker_accept(t, c, err, sizeof err);
    if (s == FL_OK) {
        CHECK(flp_msg_tracker_accept(t, c, err, sizeof err) == FL_ERR_WIRE_CHUNK_DUP);
        /* Tensor b has one chunk: accepting it completes b, never the whole set. */
        CHECK(flp_msg_tracker_tensor_complete(t, c->tensor) == (hs[c->tensor].n_chunks == 1));
        CHECK(flp_msg_tracker_finish(t, err, sizeof err) == FL_ERR_WIRE_CHUNK_MISSING);
    } else {
        CHECK(s == FL_ERR_WIRE_FIELD || s == FL_ERR_WIRE_CHUNK_RANGE);
        CHECK(!flp_msg_tracker_complete(t));
    }
    flp_msg_tracker_free(t);
}

static void track_headers(const flp_tensor_header *hs, uint32_t n, flp_dir dir)
{
    flp_msg_tracker *t = NULL;
    CHECK(flp_msg_tracker_new(&t, hs, n, dir) == FL_OK);
    /* Feed every chunk of the small tensors (bounded work), skipping none. */
    uint64_t budget = 4096;
    bool all_fed = true;
    for (uint32_t ti = 0; ti < n; ti++) {
        const flp_tensor_header *h = &hs[ti];
        if (h->n_chunks > budget) {
            all_fed = false;
            continue;
        }
        budget -= h->n_chunks;
        for (uint32_t i = 0; i < h->n_chunks; i++) {
            const uint64_t off = (uint64_t)i * h->chunk_elems;
            const uint64_t rest = h->numel - off;
            const flp_chunk c = {dir, ti, i, off,
                                 (uint32_t)(rest < h->chunk_elems ? rest : h->chunk_elems), 0, NULL};
            CHECK(flp_msg_tracker_accept(t, &c, NULL, 0) == FL_OK);
        }
        CHECK(flp_msg_tracker_tensor_complete(t, ti));
    }
    CHECK(flp_msg_tracker_complete(t) == all_fed);
    CHECK((flp_msg_tracker_finish(t, NULL, 0) == FL_OK) == all_fed);
    flp_msg_tracker_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flp_msg *m = (flp_msg *)(uintptr_t)1;
    char err[FLP_ERRBUF] = "";
    fl_status s = flp_decode(&m, data, size, NULL, err, sizeof err);
    if (s != FL_OK) {
        CHECK(m == NULL);
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(flp_validate(m, NULL, NULL, 0) == FL_OK);

    uint8_t *buf = NULL;
    size_t len = 0, bound = 0;
    CHECK(flp_encode_bound(&bound, m) == FL_OK);
    s = flp_encode_alloc(&buf, &len, m, NULL, err, sizeof err);
    CHECK(s == FL_OK);
    CHECK(len == bound);
    flp_msg *m2 = NULL;
    CHECK(flp_decode(&m2, buf, len, NULL, err, sizeof err) == FL_OK);
    CHECK(flp_msg_equal(m, m2));
    /* Canonical: encoding the re-decoded message gives the same bytes. */
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    CHECK(flp_encode_alloc(&buf2, &len2, m2, NULL, NULL, 0) == FL_OK);
    CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
    free(buf2);
    free(buf);
    flp_msg_free(m2);

    /* Tighter limits only ever add limit refusals (a chunk's offset bound scales with the
     * chunk-size cap, hence CHUNK_RANGE). */
    const flp_limits tight = {.max_msg_bytes = 512, .max_tensors = 4, .max_layers = 4,
                              .max_units = 64, .max_chunk_elems = 64, .max_chunks = 16,
                              .max_metrics = 4, .max_str = 16, .max_fields = 128};
    flp_msg *m3 = NULL;
    s = flp_decode(&m3, data, size, &tight, err, sizeof err);
    CHECK(s == FL_OK || s == FL_ERR_WIRE_LIMIT || s == FL_ERR_WIRE_TOO_LARGE ||
          (s == FL_ERR_WIRE_CHUNK_RANGE && m->type == FLP_CHUNK));
    CHECK((s == FL_OK) == (m3 != NULL));
    if (m3)
        CHECK(flp_msg_equal(m, m3));
    flp_msg_free(m3);

    switch (m->type) {
    case FLP_CHUNK: track_chunk(&m->chunk); break;
    case FLP_TASK: track_headers(m->task.tensors, m->task.n_tensors, FLP_DIR_DOWN); break;
    case FLP_UPDATE: track_headers(m->update.tensors, m->update.n_tensors, FLP_DIR_UP); break;
    default: break;
    }
    flp_msg_free(m);
    return 0;
}
