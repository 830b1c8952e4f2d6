/* fuzz_dataset.c: the dataset parsers of models/ on arbitrary bytes.
 *
 * The first byte picks the parser:
 *   'I' IDX pair: u32 little-endian image-part length, the image file bytes, then the label file
 *       bytes (either part may be gzipped);
 *   'F' / 'S' a LEAF JSON document, FEMNIST / Shakespeare;
 *   'P' a partition spec string, then (if it parses) a partition of a small synthetic dataset;
 *       the same string goes to the dry dataset-spec parser (flm_dataset_spec_check);
 *   'D' the LEAF reader's decimal conversion (flm_decimal_exact) against strtod, bit for bit: a
 *       u64 little-endian m, then a byte e: m * 10^((e mod 41) - 20);
 *   anything else: the byte modulo 4 picks one of I, F, S and P, so mutations of the selector
 *   still reach a parser.
 * Invariants checked on success (a violation aborts, which libFuzzer and the replay report): shapes
 * and counts agree, labels lie in range, pixels in [0, 1], user ids in the user table, and a
 * partition assigns every sample exactly once.
 * The IDX and LEAF bytes also go through the file readers (flm_idx_load, flm_leaf_load: through
 * memfds), the ones the programs use, which read by zlib's gzread and a 64 KiB window: the same
 * status, the same dataset, and for LEAF the same message after the name (not for IDX, whose
 * file reader names the file and the read that failed). The one difference documented: the
 * memory reader takes a gzip buffer's first member only, so there it may refuse what the file
 * reader takes. A synth-* spec small enough to make is also loaded: it parses for the dry check
 * exactly when it parses for the loader. A LEAF document with spaces after it parses as it
 * does alone, which sets the reader's two number lexers against each other (check_padded).
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* a and b hold the same samples, users included. */
static void check_same(const flm_dataset *a, const flm_dataset *b)
{
    if (a->kind != b->kind || a->N != b->N || a->C != b->C || a->H != b->H || a->W != b->W ||
        a->classes != b->classes || a->n_users != b->n_users || !a->user != !b->user)
        abort();
    const size_t n = a->N * a->sample_len;
    if ((a->N && memcmp(a->y, b->y, a->N * sizeof *a->y)) ||
        (n && a->kind == FLM_DATA_FLOAT && memcmp(a->x, b->x, n * sizeof *a->x)) ||
        (n && a->kind == FLM_DATA_TOKENS && memcmp(a->tokens, b->tokens, n * sizeof *a->tokens)) ||
        (a->user && a->N && memcmp(a->user, b->user, a->N * sizeof *a->user)))
        abort();
    for (size_t u = 0; u < a->n_users; u++)
        if (strcmp(a->users[u], b->users[u]) != 0)
            abort();
}

/* A memfd holding data[0..n), its path in path; -1 when none can be made (the check is skipped). */
static int memfd_with(const uint8_t *data, size_t n, char *path, size_t cap)
{
    const int fd = memfd_create("fuzz.data", 0);
    if (fd < 0)
        return -1;
    if (n && write(fd, data, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* The text of err after its first "NAME: " (the messages of the two readers differ there only). */
static const char *after_name(const char *err, const char *name)
{
    const size_t n = strlen(name);
    return strncmp(err, name, n) == 0 && err[n] == ':' ? err + n + 1 : err;
}

/* The file reader on the same bytes agrees with the memory reader's st / ds / err (see above). */
static void check_file_reader(int sel, const uint8_t *data, size_t size, size_t il, fl_status st,
                              const flm_dataset *ds, const char *err)
{
    char p1[64], p2[64], ferr[512] = "";
    flm_dataset *fds = NULL;
    fl_status fst;
    int fd1, fd2 = -1;
    if (sel == 'I') {
        if ((fd1 = memfd_with(data, il, p1, sizeof p1)) < 0)
            return;
        if ((fd2 = memfd_with(data + il, size - il, p2, sizeof p2)) < 0) {
            close(fd1);
            return;
        }
        fst = flm_idx_load(&fds, p1, p2, 10, ferr, sizeof ferr);
    } else {
        if ((fd1 = memfd_with(data, size, p1, sizeof p1)) < 0)
            return;
        const char *paths[1] = {p1};
        fst = flm_leaf_load(&fds, sel == 'F' ? FLM_LEAF_FEMNIST : FLM_LEAF_SHAKESPEARE, paths, 1,
                            ferr, sizeof ferr);
    }
    close(fd1);
    if (fd2 >= 0)
        close(fd2);
    const int gz_img = sel == 'I' && il >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    const int gz_lab = sel == 'I' && size - il >= 2 && data[il] == 0x1f && data[il + 1] == 0x8b;
    if (fst == FL_OK && st != FL_OK && (gz_img || gz_lab)) {
        /* the memory reader stops at the end of the first member: allowed */
    } else if (fst != st) {
        abort();
    } else if (st == FL_OK) {
        check_same(ds, fds);
    } else if (sel != 'I') { /* the same message (up to where the shorter name cut it) */
        const char *a = after_name(err, "json"), *b = after_name(ferr, p1);
        const size_t la = strlen(a), lb = strlen(b);
        if (strncmp(a, b, la < lb ? la : lb) != 0)
            abort();
    }
    flm_dataset_free(fds);
}

/* The LEAF memory reader on data followed by JR_PAD spaces (JSON's whitespace: the same
 * document) agrees with its run on data alone: the same status and, on success, the same
 * dataset. A number within 64 bytes of the end takes the careful lexer, and the same number
 * with room after it the fast one (flm_leaf.c, lex_number), so this sets each against the
 * other on the fuzzer's numbers. A gzip buffer is left out: spaces after it are not gzip. */
#define JR_PAD 80
static void check_padded(int sel, const uint8_t *data, size_t size, fl_status st,
                         const flm_dataset *ds)
{
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        return;
    uint8_t *buf = malloc(size + JR_PAD);
    if (!buf)
        return;
    if (size)
        memcpy(buf, data, size);
    memset(buf + size, ' ', JR_PAD);
    flm_dataset *pds = NULL;
    char perr[256] = "";
    const fl_status pst = flm_leaf_load_mem(
        &pds, sel == 'F' ? FLM_LEAF_FEMNIST : FLM_LEAF_SHAKESPEARE, buf, size + JR_PAD, perr,
        sizeof perr);
    free(buf);
    if (pst != st)
        abort();
    if (st == FL_OK)
        check_same(ds, pds);
    flm_dataset_free(pds);
}

/* A synth-* spec small enough to make is made: the dry check and the loader agree on whether it
 * parses. */
static void check_synth(const char *spec, fl_status dry)
{
    unsigned long N, C, H, W, K;
    size_t cells;
    if (sscanf(spec, "synth-images:%lu:%lux%lux%lu:%lu", &N, &C, &H, &W, &K) == 5)
        cells = N <= 64 && C <= 64 && H <= 64 && W <= 64 && K <= 64 ? N * C * H * W + K * C * H * W
                                                                    : (size_t)-1;
    else if (sscanf(spec, "synth-tokens:%lu:%lu:%lu", &N, &H, &K) == 3)
        cells = N <= 64 && H <= 64 && K <= 4096 ? N * H + K : (size_t)-1;
    else
        return;
    if (cells > 1u << 16)
        return;
    flm_dataset *ds = NULL;
    char err[512] = "";
    const fl_status st = flm_dataset_load_spec(&ds, spec, 1, FLM_SPLIT_TRAIN, err, sizeof err);
    const int parses = !(st == FL_ERR_INVALID_ARG && strstr(err, "does not parse"));
    if (parses != (dry == FL_OK))
        abort();
    if (st == FL_OK)
        check_dataset(ds);
    flm_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0];
    if (sel != 'I' && sel != 'F' && sel != 'S' && sel != 'P' && sel != 'D')
        sel = "IFSP"[sel % 4];
    data++;
    size--;
    flm_dataset *ds = NULL;
    char err[256] = "";
    fl_status st;
    size_t il = 0;
    switch (sel) {
    case 'D': {
        if (size < 9)
            return 0;
        uint64_t m;
        memcpy(&m, data, 8);
        const int e10 = (int)(data[8] % 41) - 20;
        double got = -1.0;
        const int taken = flm_decimal_exact(m, e10, &got);
        if (taken != (e10 >= -19 && e10 <= 19))
            abort();
        char text[64];
        snprintf(text, sizeof text, "%llue%d", (unsigned long long)m, e10);
        const double want = strtod(text, NULL);
        if (taken && memcmp(&got, &want, sizeof got) != 0)
            abort();
        return 0;
    }
    case 'I': {
        if (size < 4)
            return 0;
        il = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
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
        check_synth(spec, ss);
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
    check_file_reader(sel, data, size, il, st, ds, err);
    if (sel != 'I')
        check_padded(sel, data, size, st, ds);
    if (st == FL_OK) {
        check_dataset(ds);
        flm_dataset_free(ds);
    } else if (ds || (st == FL_ERR_DATASET_FORMAT && err[0] == '\0')) {
        abort();   /* failures leave *out NULL and a format error always says why */
    }
    return 0;
}
