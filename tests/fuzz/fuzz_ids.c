/* fuzz_ids: the client-id journal's parser (fls_ids_parse, fl_server/fls_ids.c) on arbitrary
 * bytes. Never a crash or a leak; a refusal says where ("fuzz:LINE: ..."); a table read has each
 * key and each id once, each key the id's key number j (never an alternate 0); and the table
 * written back as a compact journal (fls_ids_format_bind) reads back the same, in the same order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_sha256.h"
#include "fls_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const fls_ids *a, const fls_ids *b)
{
    if (a->n != b->n)
        abort();
    for (size_t i = 0; i < a->n; i++) {
        const fls_ids_rec *x = &a->r[i], *y = &b->r[i];
        if (strcmp(x->id, y->id) != 0 || x->key != y->key || x->j != y->j ||
            x->has_pub != y->has_pub || (x->has_pub && memcmp(x->pub, y->pub, 32) != 0))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fls_ids t;
    char err[512];
    memset(err, 'x', sizeof err);
    const fl_status st = fls_ids_parse(&t, data, size, "fuzz", err, sizeof err);
    if (!memchr(err, 0, sizeof err))
        abort(); /* the message is always terminated */
    if (t.torn_bytes > size)
        abort();
    if (st != FL_OK) {
        if (t.n || t.r)
            abort(); /* nothing half-read is handed out */
        if ((st == FL_ERR_CHECKPOINT_FORMAT || st == FL_ERR_CHECKPOINT_NEWER) &&
            strncmp(err, "fuzz:", 5) != 0)
            abort(); /* the message names the file and the line */
        fls_ids_clear(&t);
        return 0;
    }
    if (t.n > t.records)
        abort();
    for (size_t i = 0; i < t.n; i++) {
        const fls_ids_rec *r = &t.r[i];
        if (r->j >= FLS_IDS_KEYS || fl_client_key_alt(r->id, r->j) != r->key ||
            (r->j && r->key == 0))
            abort();
        for (size_t k = 0; k < i; k++)
            if (t.r[k].key == r->key || strcmp(t.r[k].id, r->id) == 0)
                abort();
    }
    /* written back compact, read back the same */
    const size_t cap = strlen(FLS_IDS_MAGIC) + 2 + 2 * t.n * FLS_IDS_LINE_MAX;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    size_t used = (size_t)snprintf(buf, cap, "%s\n", FLS_IDS_MAGIC);
    for (size_t i = 0; i < t.n; i++) {
        const size_t m = fls_ids_format_bind(buf + used, cap - used, t.r[i].id, t.r[i].key,
                                             t.r[i].j, t.r[i].has_pub ? t.r[i].pub : NULL);
        if (!m)
            abort();
        used += m;
    }
    fls_ids u;
    if (fls_ids_parse(&u, (const uint8_t *)buf, used, "again", err, sizeof err) != FL_OK ||
        u.torn_bytes || u.records != t.n)
        abort();
    same(&t, &u);
    fls_ids_clear(&u);
    /* and a forget of each one empties it */
    for (size_t i = 0; i < t.n; i++) {
        const size_t m = fls_ids_format_forget(buf + used, cap - used, t.r[i].id, t.r[i].key);
        if (!m)
            abort();
        used += m;
    }
    if (fls_ids_parse(&u, (const uint8_t *)buf, used, "again", err, sizeof err) != FL_OK ||
        u.n != 0 || u.records != 2 * t.n)
        abort();
    fls_ids_clear(&u);
    free(buf);
    fls_ids_clear(&t);
    return 0;
}
