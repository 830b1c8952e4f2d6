/* fls_ids.c: the client-id journal's records, to and from text (no file IO here: fls_server.c
 * reads, appends and rewrites the file; this part only parses a buffer, so it can be fuzzed).
 *
 * The file (README.md, "Client ids across restarts"): a first line FLS_IDS_MAGIC, then one record
 * a line, each "CCCCCCCC REST" where CCCCCCCC is the lower-case hex of the first 4 bytes of the
 * SHA-256 of REST, and REST is
 *   b KKKKKKKK J PUB ID   the id ID is bound to the engine key KKKKKKKK (hex), its key number J
 *                         (0: derived from the id; 1-3: an alternate, fl_client_key_of), owned by
 *                         the CURVE public key PUB (Z85) or by none ('-', plain text);
 *   f KKKKKKKK ID         the binding of ID (under the key KKKKKKKK) is gone.
 * ID is the rest of the line: an id is UTF-8 without control characters (the wire's rule), so it
 * holds no newline. Replaying the records in order gives the table; the order of the "b" records
 * that stay is the idle order (least recently seen first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fl_keyfile.h"
#include "fl_status.h"
#include "fl_sha256.h"
#include "flp_wire.h"
#include "fls_internal.h"

static const char HEX[] = "0123456789abcdef";

static void hex32(char out[8], uint32_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 4)
        out[i] = HEX[v & 15];
}

/* 8 lower-case hex digits at s (the only spelling written); -1 otherwise. */
static int unhex32(const char *s, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 8; i++) {
        const char c = s[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return 0;
}

/* The checksum of a record's text: the first 4 bytes of its SHA-256, big-endian. */
static fl_status sum_of(const char *rest, size_t n, uint32_t *sum)
{
    uint8_t d[FL_SHA256_LEN];
    const fl_status st = fl_sha256_digest(d, rest, n);
    if (st != FL_OK)
        return st;
    *sum = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return FL_OK;
}

/* REST into dst after its checksum; the whole line's length (with '\n'), 0 when it does not fit
 * or the digest failed. */
static size_t seal(char *dst, size_t cap, const char *rest, size_t n)
{
    uint32_t sum;
    if (n + 10 > cap || sum_of(rest, n, &sum) != FL_OK)
        return 0;
    memmove(dst + 9, rest, n);
    hex32(dst, sum);
    dst[8] = ' ';
    dst[9 + n] = '\n';
    return n + 10;
}

/* 1 when id may stand in the file: 1 to FLS_IDS_ID_MAX bytes of UTF-8 without a control
 * character, as the wire allows in a Hello. */
static int id_ok(const char *id, size_t n)
{
    if (n == 0 || n > FLS_IDS_ID_MAX)
        return 0;
    char buf[FLS_IDS_ID_MAX + 1];
    memcpy(buf, id, n);
    buf[n] = 0;
    return strlen(buf) == n && flp_str_fix(buf) == 0;
}

size_t fls_ids_format_bind(char *dst, size_t cap, const char *id, uint32_t key, unsigned j,
                           const uint8_t *pub)
{
    const size_t n = id ? strlen(id) : 0;
    if (!dst || j >= FLS_IDS_KEYS || !id_ok(id, n))
        return 0;
    char rest[FLS_IDS_LINE_MAX];
    char z[FL_KEY_Z85_LEN + 1] = "-";
    if (pub && !zmq_z85_encode(z, pub, 32))
        return 0;
    const int m = snprintf(rest, sizeof rest, "b %08x %u %s %s", key, j, z, id);
    if (m < 0 || (size_t)m >= sizeof rest)
        return 0;
    return seal(dst, cap, rest, (size_t)m);
}

size_t fls_ids_format_forget(char *dst, size_t cap, const char *id, uint32_t key)
{
    const size_t n = id ? strlen(id) : 0;
    if (!dst || !id_ok(id, n))
        return 0;
    char rest[FLS_IDS_LINE_MAX];
    const int m = snprintf(rest, sizeof rest, "f %08x %s", key, id);
    if (m < 0 || (size_t)m >= sizeof rest)
        return 0;
    return seal(dst, cap, rest, (size_t)m);
}

void fls_ids_clear(fls_ids *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->r[i].id);
    free(t->r);
    memset(t, 0, sizeof *t);
}

/* Replay state: every "b" record read, in file order (dead once an "f" took it back), and an
 * index of the live ones by key. Entries of dead records stay in the index as tombstones (a
 * lookup passes over them): the index has room for every record of the file, so it never fills. */
typedef struct replay {
    fls_ids_rec *r;
    unsigned char *dead;
    size_t n;
    uint32_t *idx;      /* record + 1; 0 empty */
    size_t mask;
} replay;

static size_t home(uint32_t key, size_t mask)
{
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

/* The live record of key, or (size_t)-1. */
static size_t find(const replay *p, uint32_t key)
{
    for (size_t j = home(key, p->mask); p->idx[j]; j = (j + 1) & p->mask) {
        const size_t i = p->idx[j] - 1;
        if (!p->dead[i] && p->r[i].key == key)
            return i;
    }
    return (size_t)-1;
}

static void put(replay *p, size_t i)
{
    size_t j = home(p->r[i].key, p->mask);
    while (p->idx[j])
        j = (j + 1) & p->mask;
    p->idx[j] = (uint32_t)(i + 1);
}

/* One complete record (line, without its '\n'), line number ln. */
static fl_status record(replay *p, const char *line, size_t n, const char *name, size_t ln,
                        char *err, size_t errlen)
{
    uint32_t sum, want;
    if (n < 9 || line[8] != ' ' || unhex32(line, &sum) != 0)
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                    "%s:%zu: not a record (it should start with 8 hex digits and a blank)",
                    name, ln);
    const char *rest = line + 9;
    const size_t rn = n - 9;
    fl_status st = sum_of(rest, rn, &want);
    if (st != FL_OK)
        return fl_errf(err, errlen, st, "%s:%zu: cannot compute its checksum", name, ln);
    if (sum != want)
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                    "%s:%zu: checksum mismatch: the record is damaged", name, ln);
    if (rn < 11 || (rest[0] != 'b' && rest[0] != 'f') || rest[1] != ' ' || rest[10] != ' ')
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "%s:%zu: unknown record", name, ln);
    uint32_t key;
    if (unhex32(rest + 2, &key) != 0)
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "%s:%zu: bad key", name, ln);
    if (rest[0] == 'f') {
        const char *id = rest + 11;
        const size_t idn = rn - 11;
        const size_t i = find(p, key);
        /* find returns a record put with its id:
         * NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        if (i == (size_t)-1 || strlen(p->r[i].id) != idn || memcmp(p->r[i].id, id, idn) != 0)
            return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                        "%s:%zu: forgets a binding that is not there", name, ln);
        p->dead[i] = 1;
        return FL_OK;
    }
    /* b KKKKKKKK J PUB ID */
    if (rn < 15 || rest[11] < '0' || rest[11] >= '0' + FLS_IDS_KEYS || rest[12] != ' ')
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "%s:%zu: bad key number", name, ln);
    const unsigned j = (unsigned)(rest[11] - '0');
    fls_ids_rec r = {0};
    r.key = key;
    r.j = (uint8_t)j;
    const char *q = rest + 13;
    const char *end = rest + rn;
    if (*q == '-' && end - q >= 2 && q[1] == ' ') { /* "-": no key (a Z85 key may begin with '-') */
        q++;
    } else {
        if (end - q < FL_KEY_Z85_LEN || !fl_z85_key_decode(r.pub, q, FL_KEY_Z85_LEN))
            return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "%s:%zu: bad public key", name,
                        ln);
        r.has_pub = 1;
        q += FL_KEY_Z85_LEN;
    }
    if (q >= end || *q != ' ')
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "%s:%zu: bad public key", name, ln);
    q++;
    const size_t idn = (size_t)(end - q);
    if (!id_ok(q, idn))
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                    "%s:%zu: bad client id (empty, too long, or not UTF-8 text)", name, ln);
    r.id = malloc(idn + 1);
    if (!r.id)
        return FL_ERR_NOMEM;
    memcpy(r.id, q, idn);
    r.id[idn] = 0;
    /* The key must be the id's key number j (a record damaged so that its checksum still holds
     * is not taken for another binding), and the id bound once. */
    for (unsigned k = 0; k < FLS_IDS_KEYS; k++) {
        uint32_t kk;
        if ((st = fl_client_key_of(r.id, k, &kk)) != FL_OK) {
            free(r.id);
            return fl_errf(err, errlen, st, "%s:%zu: cannot derive the id's keys", name, ln);
        }
        if (k == j && kk != key) {
            free(r.id);
            return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                        "%s:%zu: key %08x is not key %u of the id", name, ln, key, j);
        }
        const size_t o = find(p, kk);
        /* find returns a record put with its id:
         * NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        if (o != (size_t)-1 && strcmp(p->r[o].id, r.id) == 0) {
            free(r.id);
            return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                        "%s:%zu: the id is bound twice", name, ln);
        }
    }
    if (j > 0 && key == 0) {
        free(r.id);
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                    "%s:%zu: an alternate key 0 (never given)", name, ln);
    }
    if (find(p, key) != (size_t)-1) {
        free(r.id);
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                    "%s:%zu: key %08x is bound twice", name, ln, key);
    }
    p->r[p->n] = r;
    put(p, p->n);
    p->n++;
    return FL_OK;
}

fl_status fls_ids_parse(fls_ids *out, const uint8_t *buf, size_t len, const char *name, char *err,
                        size_t errlen)
{
    if (!out || (!buf && len) || !name)
        return FL_ERR_INVALID_ARG;
    if (err && errlen)
        err[0] = 0;
    memset(out, 0, sizeof *out);
    const char *t = (const char *)buf;
    /* Only complete lines count: a last one without its '\n' is a write a crash cut short. */
    size_t end = len;
    while (end > 0 && t[end - 1] != '\n')
        end--;
    out->torn_bytes = len - end;
    /* The first line is never appended: the file is made whole by a rename of a synced temporary
     * file, so a file without it (empty, or cut inside it) is damage, not a crash, and taking it
     * for an empty table would hand every id to whichever key says Hello first. */
    if (end == 0)
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                    "%s:1: %s: not a client-id file (its first line should be '%s')", name,
                    len ? "its first line is cut short" : "the file is empty", FLS_IDS_MAGIC);
    const size_t ml = strlen(FLS_IDS_MAGIC);
    /* "fedrop client ids N" with N above this build's: a later fedrop's file, not damage */
    const size_t pl = ml - 1; /* FLS_IDS_MAGIC less its version digit */
    const unsigned ours = (unsigned)(FLS_IDS_MAGIC[pl] - '0');
    if (end > pl && memcmp(t, FLS_IDS_MAGIC, pl) == 0) {
        unsigned long v = 0;
        size_t i = pl;
        while (i < end && i < pl + 9 && t[i] >= '0' && t[i] <= '9')
            v = v * 10 + (unsigned long)(t[i++] - '0');
        if (i > pl && i < end && t[i] == '\n' && v > ours)
            return fl_errf(err, errlen, FL_ERR_CHECKPOINT_NEWER,
                        "%s:1: client-id file format %lu, newer than this build reads (%u): a "
                        "later fedrop wrote it and reads it", name, v, ours);
    }
    if (end < ml + 1 || memcmp(t, FLS_IDS_MAGIC, ml) != 0 || t[ml] != '\n')
        return fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT,
                    "%s:1: not a client-id file (its first line should be '%s')", name,
                    FLS_IDS_MAGIC);
    size_t lines = 0;
    for (size_t i = ml + 1; i < end; i++)
        lines += t[i] == '\n';
    replay p = {0};
    size_t cap = 4;
    while (cap < 2 * lines + 2)
        cap *= 2;
    p.r = calloc(lines ? lines : 1, sizeof *p.r);
    p.dead = calloc(lines ? lines : 1, 1);
    p.idx = calloc(cap, sizeof *p.idx);
    p.mask = cap - 1;
    fl_status st = FL_OK;
    if (!p.r || !p.dead || !p.idx) {
        st = FL_ERR_NOMEM;
        goto out;
    }
    size_t ln = 1;
    for (size_t a = ml + 1; a < end;) {
        const char *nl = memchr(t + a, '\n', end - a);
        const size_t n = (size_t)(nl - (t + a));
        ln++;
        if (n > FLS_IDS_LINE_MAX) {
            st = fl_errf(err, errlen, FL_ERR_CHECKPOINT_FORMAT, "%s:%zu: record too long", name, ln);
            goto out;
        }
        if ((st = record(&p, t + a, n, name, ln, err, errlen)) != FL_OK)
            goto out;
        out->records++;
        a += n + 1;
    }
    /* the live records, in file order, into out (the dead ones freed) */
    size_t m = 0;
    for (size_t i = 0; i < p.n; i++) {
        if (p.dead[i])
            free(p.r[i].id);
        else
            p.r[m++] = p.r[i];
    }
    out->r = p.r;
    out->n = m;
    p.r = NULL;
    p.n = 0;
out:
    for (size_t i = 0; i < p.n; i++)
        free(p.r[i].id);
    free(p.r);
    free(p.dead);
    free(p.idx);
    if (st != FL_OK) {
        const size_t torn = out->torn_bytes;
        memset(out, 0, sizeof *out);
        out->torn_bytes = torn;
    }
    return st;
}
