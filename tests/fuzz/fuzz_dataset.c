/* fuzz_dataset.c: the dataset parsers of models/ on arbitrary bytes.
 *
 * The first byte picks the parser:
 *   'I' IDX pair: u32 little-endian image-part length, the image file bytes, then the label file
 *       bytes (either part may be gzipped);
 *   'F' / 'S' a LEAF JSON document, FEMNIST / Shakespeare;
 *   'P' a partition spec string, then (if it parses) a partition of a small synthetic dataset;
 *       the same string goes to the dry dataset-spec parser (flm_dataset_spec_check);
 *   anything else: the byte modulo 4 picks one of the above, so mutations of the selector still
 *   reach a parser.
 * Invariants checked on success (a violation aborts, which libFuzzer and the replay report): shapes
 * and counts agree, labels lie in range, pixels in [0, 1], user ids in the user table, and a
 * partition assigns every sample exactly once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flm_data.h"

static void check_dataset(const flm_dataset *ds)
{
    if (ds->N && (!ds->y || (ds->kind == FLM_DATA_FLOAT ? !ds->x : !ds->tokens)))
        abort();
    if (ds->sample_len != (size_t)ds->C * (size_t)ds->H * (size_t)ds->W)
        abort();
    for (size_t i = 0; i < ds->N; i++) {
        if (ds->y[i] < 0 || ds->y[i] >= ds->classes)
            abort();
        if (ds->user && ds->user[i] >= ds->n_users)
            abort();
    }
    const size_t n = ds->N * ds->sample_len;
    for (size_t k = 0; k < n; k++) {
        if (ds->kind == FLM_DATA_FLOAT && !(ds->x[k] >= 0.0f && ds->x[k] <= 1.0f))
            abort();
        if (ds->kind == FLM_DATA_TOKENS && (ds->tokens[k] < 0 || ds->tokens[k] >= ds->classes))
            abort();
    }
}

static void check_partition(const flm_partition *p, size_t N)
{
    uint8_t *seen = calloc(N ? N : 1, 1);
    if (!seen)
        return;
    if (p->offset[0] != 0 || p->offset[p->K] != N)
        abort();
    for (size_t k = 0; k < p->K; k++) {
        const uint32_t *idx;
        size_t n;
        if (flm_partition_client(p, k, &idx, &n) != FL_OK)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (idx[i] >= N || seen[idx[i]])
                abort();
            seen[idx[i]] = 1;
        }
    }
    free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0];
    if (sel != 'I' && sel != 'F' && sel != 'S' && sel != 'P')
        sel = "IFSP"[sel % 4];
    data++;
    size--;
    flm_dataset *ds = NULL;
    char err[256] = "";
    fl_status st;
    switch (sel) {
    case 'I': {
        if (size < 4)
            return 0;
        size_t il = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
                    (size_t)data[3] << 24;
        data += 4;
        size -= 4;
        if (il > size)
            il = size;
        st = flm_idx_load_mem(&ds, data, il, data + il, size - il, 10, err, sizeof err);
        break;
    }
    case 'F':
    case 'S':
        st = flm_leaf_load_mem(&ds, sel == 'F' ? FLM_LEAF_FEMNIST : FLM_LEAF_SHAKESPEARE, data,
                               size, err, sizeof err);
        break;
    default: {
        char spec[64];
        const size_t n = size < sizeof spec - 1 ? size : sizeof spec - 1;
        memcpy(spec, data, n);
        spec[n] = '\0';
        /* the same string as a dataset spec, parsed dry (no file read, nothing made): it parses,
         * or it does not, and says so */
        err[0] = '\0';
        const fl_status ss = flm_dataset_spec_check(spec, err, sizeof err);
        if (ss != FL_OK && (ss != FL_ERR_INVALID_ARG || !strstr(err, "does not parse")))
            abort();
        flm_partition_spec ps;
        if (flm_partition_spec_parse(spec, &ps, err, sizeof err) != FL_OK)
            return 0;
        if (flm_dataset_synth_images(&ds, 60, 1, 2, 2, 3, 0.1f, 7, FLM_SPLIT_TRAIN) != FL_OK)
            abort();
        /* A user table so that "natural" has something to split. */
        ds->user = calloc(ds->N, sizeof *ds->user);
        ds->users = calloc(5, sizeof *ds->users);
        if (!ds->user || !ds->users)
            abort();
        ds->n_users = 5;
        for (size_t u = 0; u < 5; u++)
            ds->users[u] = strdup("u");
        for (size_t i = 0; i < ds->N; i++)
            ds->user[i] = (uint32_t)(i % 5);
        for (size_t K = 1; K <= 7; K += 3) {
            flm_partition *p = NULL;
            if (flm_partition_make(&p, ds, &ps, K, 1) == FL_OK)
                check_partition(p, ds->N);
            flm_partition_free(p);
        }
        flm_dataset_free(ds);
        return 0;
    }
    }
    if (st == FL_OK) {
        check_dataset(ds);
        flm_dataset_free(ds);
    } else if (ds || (st == FL_ERR_DATASET_FORMAT && err[0] == '\0')) {
        abort();   /* failures leave *out NULL and a format error always says why */
    }
    return 0;
}
