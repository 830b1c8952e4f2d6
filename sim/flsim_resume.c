/* flsim_resume.c: a run's resume file (DIR/resume.fls): the server core's checkpoint and what the
 * simulator adds to it between rounds, so that `fl_sim --resume 1` continues a stopped or crashed
 * run as if it had not stopped (see flsim_internal.h for the layout).
 *
 * The bytes are outside input when read back: every field is checked, and the file's SHA-256
 * ends it, so that a cut or altered file is refused as a whole. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_fs.h"
#include "fl_sha256.h"
#include "flsim.h"
#include "flsim_internal.h"

static const uint8_t MAGIC[8] = {'F', 'L', 'S', 'I', 'M', 'R', 'S', 0};
#define RESUME_VERSION 3u /* 2: without the trace's digest; 1: nor the residual files' rank count */
#define RESUME_CONFIG_MAX (64u << 10)
#define RESUME_RECORDS_MAX 100000000u
#define RESUME_RANKS_MAX 65536u

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    int bad;
} wbuf;

static void put(wbuf *w, const void *src, size_t n)
{
    if (w->bad)
        return;
    if (w->len + n > w->cap) {
        size_t c = w->cap ? w->cap : 4096;
        while (c < w->len + n)
            c *= 2;
        uint8_t *q = realloc(w->p, c);
        if (!q) {
            w->bad = 1;
            return;
        }
        w->p = q;
        w->cap = c;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

/* v as n little-endian bytes at b, and back */
static void put_le_into(uint8_t *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_at(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* n little-endian bytes of v */
static void put_le(wbuf *w, uint64_t v, int n)
{
    uint8_t b[8];
    put_le_into(b, v, n);
    put(w, b, (size_t)n);
}

static void put_u32(wbuf *w, uint32_t v)
{
    put_le(w, v, 4);
}

static void put_u64(wbuf *w, uint64_t v)
{
    put_le(w, v, 8);
}

static void put_f64(wbuf *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(w, u, 8);
}

typedef struct rbuf {
    const uint8_t *p;
    size_t len, at;
    int bad;
} rbuf;

static const uint8_t *take(rbuf *r, size_t n)
{
    if (r->bad || r->len - r->at < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p + r->at;
    r->at += n;
    return q;
}

/* n little-endian bytes (0 past the end: r->bad says so) */
static uint64_t get_le(rbuf *r, int n)
{
    const uint8_t *b = take(r, (size_t)n);
    return b ? le_at(b, n) : 0;
}

/* 1 when buf ends with the SHA-256 of what comes before it (len >= FL_SHA256_LEN), 0 when not,
 * -1 when the digest could not be made (no memory). */
static int sealed(const uint8_t *buf, size_t len)
{
    uint8_t d[FL_SHA256_LEN];
    if (fl_sha256_digest(d, buf, len - FL_SHA256_LEN) != FL_OK)
        return -1;
    return memcmp(d, buf + len - FL_SHA256_LEN, FL_SHA256_LEN) == 0;
}

static uint32_t get_u32(rbuf *r)
{
    return (uint32_t)get_le(r, 4);
}

static uint64_t get_u64(rbuf *r)
{
    return get_le(r, 8);
}

static double get_f64(rbuf *r)
{
    const uint64_t u = get_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* A round record's fields, in the file's order: (u32, f64, u64, i32 as u32) by kind. */
#define REC_FIELDS(X) \
    X(U32, round) X(F64, vtime_s) X(F64, round_vtime_s) X(F64, wall_s) X(F64, train_wall_s) \
    X(F64, feed_wall_s) X(F64, train_cpu_s) X(F64, sgd_thread_cpu_s) X(F64, proc_cpu_s) \
    X(F64, client_cpu_s) X(F64, client_pre_cpu_s) X(F64, client_post_cpu_s) X(F64, feed_cpu_s) \
    X(F64, eval_wall_s) X(U64, bytes_down) X(U64, bytes_up) X(U64, cum_bytes_down) \
    X(U64, cum_bytes_up) X(F64, mean_loss) X(I32, evaluated) X(F64, test_acc) X(F64, test_loss) \
    X(U32, online) X(U32, selected) X(U32, reported) X(U32, late) X(U32, failed) \
    X(I32, closed_by) X(F64, train_flops)

#define PUT_U32(f) put_u32(w, r->f);
#define PUT_U64(f) put_u64(w, r->f);
#define PUT_F64(f) put_f64(w, r->f);
#define PUT_I32(f) put_u32(w, (uint32_t)r->f);
#define PUT(kind, f) PUT_##kind(f)

static void put_record(wbuf *w, const flsim_round_record *r)
{
    REC_FIELDS(PUT)
}

#define GET_U32(f) r->f = get_u32(b);
#define GET_U64(f) r->f = get_u64(b);
#define GET_F64(f) r->f = get_f64(b);
#define GET_I32(f) r->f = (int)get_u32(b);
#define GET(kind, f) GET_##kind(f)

static void get_record(rbuf *b, flsim_round_record *r)
{
    memset(r, 0, sizeof *r);
    REC_FIELDS(GET)
}

/* Where resume.fls's bytes go as they are made: the temporary file, each byte but the last 32
 * hashed on the way (the file's SHA-256 ends it). */
typedef struct out_sink {
    fl_atomic *a;
    fl_sha256 *h;
    fl_status st; /* the hash's failure (the sink then says EIO) */
} out_sink;

static int out_put(void *user, const void *p, size_t n)
{
    out_sink *o = user;
    if (o->st == FL_OK)
        o->st = fl_sha256_update(o->h, p, n);
    if (o->st != FL_OK)
        return EIO;
    return fl_atomic_write(o->a, p, n);
}

fl_status flsim_resume_write(const char *dir, const flsim_config *cfg, const fls_ckpt *k,
                             const flsim_resume_state *s, const flsim_round_record *recs,
                             size_t n, char *err, size_t errlen)
{
    char path[FLSIM_STR + 32];
    snprintf(path, sizeof path, "%s/%s", dir, FLSIM_RESUME_FILE);
    char *json = malloc(RESUME_CONFIG_MAX);
    fl_status st = json ? FL_OK : FL_ERR_NOMEM;
    size_t jl = 0;
    if (st == FL_OK && (jl = flsim_config_json(cfg, json, RESUME_CONFIG_MAX)) >= RESUME_CONFIG_MAX)
        st = FL_ERR_INTERNAL;
    wbuf w = {0};
    if (st == FL_OK) {
        put(&w, MAGIC, sizeof MAGIC);
        put_u32(&w, RESUME_VERSION);
        put_u32(&w, (uint32_t)n);
        put_u64(&w, jl);
        put(&w, json, jl);
        put_f64(&w, s->vt);
        put_u64(&w, s->cum_down);
        put_u64(&w, s->cum_up);
        put_f64(&w, s->cum_flops);
        put_f64(&w, s->wall_s);
        put_u32(&w, s->resid_ranks);
        if (s->resid_ranks)
            put(&w, s->resid_sha, (size_t)s->resid_ranks * FL_SHA256_LEN);
        put_u32(&w, s->has_trace_sha ? 1 : 0);
        if (s->has_trace_sha)
            put(&w, s->trace_sha, FL_SHA256_LEN);
        for (size_t i = 0; i < n; i++)
            put_record(&w, &recs[i]);
        put_u64(&w, fls_ckpt_size(k));
        if (w.bad)
            st = FL_ERR_NOMEM;
    }
    free(json);
    /* The small head, then the checkpoint, the file's bulk (the model and the optimizer's
     * state), streamed from where its arrays lie (fls_ckpt_stream), then the SHA-256 of it all:
     * it was serialized into a buffer first, the state once more beside the caller's. */
    out_sink o = {.st = FL_OK};
    fl_atomic a;
    int e = 0, opened = 0;
    if (st == FL_OK)
        st = fl_sha256_new(&o.h);
    if (st == FL_OK) {
        e = fl_atomic_open(&a, path, 0666); /* as fopen makes a file: the umask decides */
        opened = 1;
        o.a = &a;
    }
    if (st == FL_OK && !e)
        e = out_put(&o, w.p, w.len);
    if (st == FL_OK && !e) {
        st = fls_ckpt_stream(k, out_put, &o);
        if (st == FL_ERR_IO)
            e = errno, st = FL_OK;
    }
    uint8_t d[FL_SHA256_LEN];
    if (st == FL_OK && !e && (st = o.st) == FL_OK && (st = fl_sha256_final(o.h, d)) == FL_OK)
        e = fl_atomic_write(&a, d, sizeof d);
    if (st == FL_OK && !e)
        e = fl_atomic_commit(&a, path, 0); /* EISDIR: a directory in the file's place */
    if (opened)
        fl_atomic_end(&a);
    fl_sha256_free(o.h);
    free(w.p);
    if (st == FL_OK && o.st != FL_OK)
        st = o.st;
    if (st != FL_OK) {
        if (err && errlen)
            snprintf(err, errlen, "cannot make %s: %s", path, fl_strerror(st));
        return st;
    }
    if (e) {
        if (err && errlen)
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return FL_ERR_IO;
    }
    return FL_OK;
}

void flsim_resume_free(flsim_resume_file *f)
{
    if (!f)
        return;
    free(f->config_json);
    free(f->records);
    free(f->state.resid_sha);
    fls_ckpt_clear(&f->ckpt);
    memset(f, 0, sizeof *f);
}

static fl_status bad_file(char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "not a resume file of this version: %s", what);
    return FL_ERR_RESULTS_FORMAT;
}

/* 1 when the len bytes of the file fd end with the SHA-256 of what comes before them, 0 when
 * not; -1: no memory; -2: a failed read (errno says why; 0: the file ended early). Read in
 * pieces through a buffer on the stack: the page cache's, never this process's. */
static int fd_sealed(int fd, uint64_t len)
{
    fl_sha256 *h = NULL;
    if (fl_sha256_new(&h) != FL_OK)
        return -1;
    uint8_t b[16 << 10], tail[FL_SHA256_LEN], d[FL_SHA256_LEN];
    const uint64_t end = len - FL_SHA256_LEN;
    uint64_t pos = 0;
    int ok = 1;
    while (ok == 1 && pos < len) {
        const size_t want = len - pos < sizeof b ? (size_t)(len - pos) : sizeof b;
        const ssize_t k = pread(fd, b, want, (off_t)pos);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = 0;
            ok = -2;
            break;
        }
        const size_t n = (size_t)k;
        const size_t hashed = pos < end ? (end - pos < n ? (size_t)(end - pos) : n) : 0;
        if (hashed && fl_sha256_update(h, b, hashed) != FL_OK)
            ok = -1;
        if (hashed < n) /* bytes of the checksum */
            memcpy(tail + (pos + hashed - end), b + hashed, n - hashed);
        pos += n;
    }
    if (ok == 1)
        ok = fl_sha256_final(h, d) != FL_OK ? -1 : memcmp(d, tail, FL_SHA256_LEN) == 0;
    fl_sha256_free(h);
    return ok;
}

/* flsim_resume_parse of buf, or, with fd >= 0, of the file fd whose mapping buf is: its checksum
 * found reading fd, its checkpoint read from fd (fls_ckpt_read_fd), so that of the mapping only
 * the head's pages are touched. */
static fl_status resume_parse(const uint8_t *buf, size_t len, int fd, flsim_resume_file *out,
                              char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!buf || len < sizeof MAGIC + FL_SHA256_LEN || memcmp(buf, MAGIC, sizeof MAGIC) != 0)
        return bad_file(err, errlen, "no fl_sim resume header");
    const int ok = fd < 0 ? sealed(buf, len) : fd_sealed(fd, len);
    if (ok == -2)
        return FL_ERR_IO;
    if (ok < 0)
        return FL_ERR_NOMEM;
    if (!ok)
        return bad_file(err, errlen, "its checksum does not match (cut short or altered)");
    rbuf r = {buf, len - FL_SHA256_LEN, sizeof MAGIC, 0};
    const uint32_t version = get_u32(&r);
    if (version > RESUME_VERSION) { /* whole (its digest matched): a later fl_sim's */
        if (err && errlen)
            snprintf(err, errlen, "a resume file of a later fl_sim: format version %u, this one "
                     "reads 1 to %u (the fl_sim that wrote it, or a later one, resumes it)",
                     version, RESUME_VERSION);
        return FL_ERR_RESULTS_FORMAT;
    }
    if (version != RESUME_VERSION && version != 2 && version != 1)
        return bad_file(err, errlen, "another format version");
    const uint32_t n = get_u32(&r);
    const uint64_t jl = get_u64(&r);
    if (r.bad || jl == 0 || jl > RESUME_CONFIG_MAX || jl > r.len - r.at || n > RESUME_RECORDS_MAX)
        return bad_file(err, errlen, "a size out of range");
    const uint8_t *j = take(&r, (size_t)jl);
    if (!j || memchr(j, 0, (size_t)jl))
        return bad_file(err, errlen, "its settings");
    flsim_resume_state *s = &out->state;
    s->vt = get_f64(&r);
    s->cum_down = get_u64(&r);
    s->cum_up = get_u64(&r);
    s->cum_flops = get_f64(&r);
    s->wall_s = get_f64(&r);
    s->resid_ranks = version >= 2 ? get_u32(&r) : 0;
    const uint8_t *sha = NULL;
    if (!r.bad && s->resid_ranks) {
        if (s->resid_ranks > RESUME_RANKS_MAX ||
            (uint64_t)s->resid_ranks * FL_SHA256_LEN > r.len - r.at)
            return bad_file(err, errlen, "a rank count out of range");
        sha = take(&r, (size_t)s->resid_ranks * FL_SHA256_LEN);
    }
    if (version >= 3) {
        const uint32_t traces = get_u32(&r);
        if (!r.bad && traces > 1)
            return bad_file(err, errlen, "a trace count out of range");
        const uint8_t *td = traces ? take(&r, FL_SHA256_LEN) : NULL;
        if (td) {
            s->has_trace_sha = 1;
            memcpy(s->trace_sha, td, FL_SHA256_LEN);
        }
    }
    if (r.bad || !isfinite(s->vt) || s->vt < 0 || !isfinite(s->cum_flops) || s->cum_flops < 0 ||
        !isfinite(s->wall_s) || s->wall_s < 0)
        return bad_file(err, errlen, "its clock or totals");
    /* each record takes at least 4 bytes: a count beyond what is left is refused before any
     * allocation */
    if ((uint64_t)n * 4 > r.len - r.at)
        return bad_file(err, errlen, "a record count beyond the file");
    out->config_json = malloc((size_t)jl + 1);
    out->records = n ? calloc(n, sizeof *out->records) : NULL;
    if (sha && (s->resid_sha = malloc((size_t)s->resid_ranks * FL_SHA256_LEN)) != NULL)
        memcpy(s->resid_sha, sha, (size_t)s->resid_ranks * FL_SHA256_LEN);
    if (!out->config_json || (n && !out->records) || (sha && !s->resid_sha)) {
        flsim_resume_free(out);
        return FL_ERR_NOMEM;
    }
    memcpy(out->config_json, j, (size_t)jl);
    out->config_json[jl] = '\0';
    out->n_records = n;
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        flsim_round_record *rec = &out->records[i];
        get_record(&r, rec);
        const uint64_t before_down = i ? out->records[i - 1].cum_bytes_down : 0;
        const uint64_t before_up = i ? out->records[i - 1].cum_bytes_up : 0;
        if (!r.bad && (rec->round != i + 1 || !isfinite(rec->vtime_s) || rec->vtime_s < 0 ||
                       rec->cum_bytes_down != before_down + rec->bytes_down ||
                       rec->cum_bytes_up != before_up + rec->bytes_up ||
                       (i && rec->vtime_s < out->records[i - 1].vtime_s))) {
            flsim_resume_free(out);
            return bad_file(err, errlen, "its rounds do not follow each other");
        }
    }
    const uint64_t cl = get_u64(&r);
    if (r.bad || cl != r.len - r.at) {
        flsim_resume_free(out);
        return bad_file(err, errlen, "its rounds or checkpoint are cut short");
    }
    if (n && (out->records[n - 1].cum_bytes_down != s->cum_down ||
              out->records[n - 1].cum_bytes_up != s->cum_up)) {
        flsim_resume_free(out);
        return bad_file(err, errlen, "its totals are not its rounds'");
    }
    char why[256];
    const fl_status cs = fd < 0 ? fls_ckpt_parse(r.p + r.at, (size_t)cl, &out->ckpt, why,
                                                  sizeof why)
                                : fls_ckpt_read_fd(fd, r.at, cl, &out->ckpt, why, sizeof why);
    if (cs != FL_OK) {
        const int e = errno;
        flsim_resume_free(out);
        errno = e;
        if (cs == FL_ERR_NOMEM || cs == FL_ERR_IO)
            return cs;
        return bad_file(err, errlen, why);
    }
    if (out->ckpt.round != n) {
        flsim_resume_free(out);
        return bad_file(err, errlen, "its checkpoint is of another round");
    }
    return FL_OK;
}

fl_status flsim_resume_parse(const uint8_t *buf, size_t len, flsim_resume_file *out, char *err,
                             size_t errlen)
{
    return resume_parse(buf, len, -1, out, err, errlen);
}

fl_status flsim_resume_read(const char *path, flsim_resume_file *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); /* a FIFO: no wait */
    if (fd < 0)
        return errno == ENOENT ? FL_ERR_NOT_FOUND : FL_ERR_IO;
    struct stat sb;
    const int se = fstat(fd, &sb) != 0 ? errno : 0;
    if (se || !S_ISREG(sb.st_mode)) {
        const int e = se ? se : S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
        close(fd);
        errno = e;
        return FL_ERR_IO;
    }
    if (sb.st_size <= 0) { /* nothing to map: refused by the parser as no resume file */
        close(fd);
        static const uint8_t none[1];
        return flsim_resume_parse(none, 0, out, err, errlen);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        const int e = errno;
        close(fd);
        errno = e;
        return FL_ERR_IO;
    }
    const fl_status st = resume_parse(m, (size_t)sb.st_size, fd, out, err, errlen);
    const int e = errno;
    munmap(m, (size_t)sb.st_size);
    close(fd);
    errno = e;
    return st;
}

/* ---- the clients' error-feedback residuals (top-k uplinks) ------------------------------------ */

static const uint8_t RESID_MAGIC[8] = {'F', 'L', 'S', 'I', 'M', 'R', 'R', 0};
#define RESID_VERSION 1u
#define RESID_HEADER (8 + 4 * 5 + 8 + 4) /* magic .. count */

void flsim_resid_path(char *out, size_t cap, const char *dir, uint32_t rank, uint32_t ranks,
                      uint32_t round)
{
    snprintf(out, cap, "%s/" FLSIM_RESID_FMT, dir, rank, ranks, round);
}

/* Whether name is a residual file's (1) or a temporary one of fl_atomic_open's that a crash
 * left ("NAME.tmp." and six characters: 2); its rank, ranks and round then. 0: neither. */
static int resid_name(const char *name, uint32_t *rank, uint32_t *ranks, uint32_t *round)
{
    unsigned a, b, c;
    int end = -1;
    if (sscanf(name, FLSIM_RESID_SCAN "%n", &a, &b, &c, &end) != 3 || end < 0)
        return 0;
    *rank = a;
    *ranks = b;
    *round = c;
    if (!name[end])
        return 1;
    return strncmp(name + end, ".tmp.", 5) == 0 && strlen(name + end + 5) == 6 ? 2 : 0;
}

/* n floats as little-endian bytes into b */
static void floats_le(uint8_t *b, const float *x, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(b, x, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_le_into(b + 4 * i, u, 4);
    }
#endif
}

static void floats_from_le(float *x, const uint8_t *b, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(x, b, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)le_at(b + 4 * i, 4);
        memcpy(&x[i], &u, 4);
    }
#endif
}

/* Appends n bytes to the file and the digest; 0 or an errno. */
static int resid_out(fl_atomic *a, fl_sha256 *h, const void *p, size_t n)
{
    if (fl_sha256_update(h, p, n) != FL_OK)
        return ENOMEM;
    return fl_atomic_write(a, p, n);
}

fl_status flsim_resid_write(const char *dir, uint32_t round, uint32_t rank, uint32_t ranks,
                            float *const *resid, const size_t *resid_n, uint32_t clients,
                            size_t n_params, uint8_t sha[FL_SHA256_LEN], char *err, size_t errlen)
{
    char path[FLSIM_STR + 96];
    flsim_resid_path(path, sizeof path, dir, rank, ranks, round);
    /* A residual of another length is zeros to the client core (flc_core_swap_residual): like
     * none, it is not written. */
    uint32_t count = 0;
    for (uint32_t k = 0; k < clients; k++)
        count += resid[k] && resid_n[k] == n_params;
    fl_sha256 *h = NULL;
    uint8_t *buf = malloc(4 + n_params * sizeof(float));
    if (!buf || fl_sha256_new(&h) != FL_OK) {
        free(buf);
        if (err && errlen)
            snprintf(err, errlen, "cannot write %s: %s", path, fl_strerror(FL_ERR_NOMEM));
        return FL_ERR_NOMEM;
    }
    wbuf hd = {0};
    put(&hd, RESID_MAGIC, sizeof RESID_MAGIC);
    put_u32(&hd, RESID_VERSION);
    put_u32(&hd, round);
    put_u32(&hd, rank);
    put_u32(&hd, ranks);
    put_u32(&hd, clients);
    put_u64(&hd, n_params);
    put_u32(&hd, count);
    fl_atomic a;
    int e = fl_atomic_open(&a, path, 0644);
    if (!e)
        e = hd.bad ? ENOMEM : resid_out(&a, h, hd.p, hd.len);
    free(hd.p);
    for (uint32_t k = 0; k < clients && !e; k++) {
        if (!resid[k] || resid_n[k] != n_params)
            continue;
        put_le_into(buf, k, 4);
        floats_le(buf + 4, resid[k], n_params);
        e = resid_out(&a, h, buf, 4 + n_params * sizeof(float));
    }
    uint8_t d[FL_SHA256_LEN];
    if (!e)
        e = fl_sha256_final(h, d) == FL_OK ? fl_atomic_write(&a, d, sizeof d) : ENOMEM;
    if (!e && sha)
        memcpy(sha, d, sizeof d);
    if (!e)
        e = fl_atomic_commit(&a, path, 0);
    if (e && err && errlen)
        snprintf(err, errlen, "cannot write %s: %s%s%s", path, a.what && a.what[0] ? a.what : "",
                 a.what && a.what[0] ? ": " : "", strerror(e));
    fl_atomic_end(&a);
    fl_sha256_free(h);
    free(buf);
    return e == 0 ? FL_OK : e == ENOMEM ? FL_ERR_NOMEM : FL_ERR_IO;
}

static fl_status bad_resid(char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "not a residual file of this run: %s", what);
    return FL_ERR_RESULTS_FORMAT;
}

fl_status flsim_resid_parse(const uint8_t *buf, size_t len, uint32_t round, uint32_t rank,
                            uint32_t ranks, uint32_t clients, size_t n_params,
                            const uint8_t *want_sha, float **resid, size_t *resid_n, char *err,
                            size_t errlen)
{
    if (ranks == 0 || rank >= ranks || !resid || !resid_n)
        return FL_ERR_INVALID_ARG;
    if (!buf || len < RESID_HEADER + FL_SHA256_LEN || memcmp(buf, RESID_MAGIC, sizeof RESID_MAGIC) != 0)
        return bad_resid(err, errlen, "no fl_sim residual header");
    const int ok = sealed(buf, len);
    if (ok < 0)
        return FL_ERR_NOMEM;
    if (!ok)
        return bad_resid(err, errlen, "its checksum does not match (cut short or altered)");
    /* whole, but is it the one resume.fls was written with? (another run's, copied in) */
    if (want_sha && memcmp(want_sha, buf + len - FL_SHA256_LEN, FL_SHA256_LEN) != 0)
        return bad_resid(err, errlen, "its checksum is not the one resume.fls names (another "
                         "run's file, or another save's)");
    rbuf h = {buf, RESID_HEADER, sizeof RESID_MAGIC, 0}; /* the length was checked above */
    if (get_u32(&h) != RESID_VERSION)
        return bad_resid(err, errlen, "another format version");
    if (get_u32(&h) != round)
        return bad_resid(err, errlen, "it is of another round");
    if (get_u32(&h) != rank || get_u32(&h) != ranks)
        return bad_resid(err, errlen, "it is another MPI rank's");
    if (get_u32(&h) != clients || get_u64(&h) != n_params)
        return bad_resid(err, errlen, "its clients or model size are another run's");
    const uint64_t count = get_u32(&h);
    const size_t rec = 4 + n_params * sizeof(float);
    const size_t body = len - FL_SHA256_LEN - RESID_HEADER;
    if (n_params == 0 || count > clients || body / rec != count || body % rec != 0)
        return bad_resid(err, errlen, "its length is not its count of residuals");
    const uint8_t *p = buf + RESID_HEADER;
    fl_status st = FL_OK;
    uint32_t done = 0, prev = 0;
    for (; done < count; done++, p += rec) {
        const uint32_t k = (uint32_t)le_at(p, 4);
        /* ascending keys, each of this rank's share */
        if (k >= clients || k % ranks != rank || (done && k <= prev) || resid[k]) {
            st = bad_resid(err, errlen, "a client out of range, another rank's, or twice");
            break;
        }
        float *x = malloc(n_params * sizeof(float));
        if (!x) {
            st = FL_ERR_NOMEM;
            break;
        }
        floats_from_le(x, p + 4, n_params);
        resid[k] = x;
        resid_n[k] = n_params;
        prev = k;
    }
    if (st != FL_OK) { /* nothing of the file is kept */
        p = buf + RESID_HEADER;
        for (uint32_t i = 0; i < done; i++, p += rec) {
            const uint32_t k = (uint32_t)le_at(p, 4);
            free(resid[k]);
            resid[k] = NULL;
            resid_n[k] = 0;
        }
    }
    return st;
}

fl_status flsim_resid_read(const char *dir, uint32_t round, uint32_t rank, uint32_t ranks,
                           uint32_t clients, size_t n_params, const uint8_t *want_sha,
                           float **resid, size_t *resid_n, char *err, size_t errlen)
{
    char path[FLSIM_STR + 96], why[512];
    flsim_resid_path(path, sizeof path, dir, rank, ranks, round);
    /* mapped, not read: the file is as large as the residuals it fills */
    const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); /* a FIFO: no wait */
    struct stat sb = {0};
    int e = fd < 0 ? errno : fstat(fd, &sb) != 0 ? errno : 0;
    if (fd >= 0 && !e && !S_ISREG(sb.st_mode))
        e = -1;
    if (e) {
        if (fd >= 0)
            close(fd);
        if (err && errlen)
            snprintf(err, errlen, "cannot read %s: %s", path,
                     e < 0 ? "not a regular file" : strerror(e));
        return e == ENOENT ? FL_ERR_NOT_FOUND : FL_ERR_IO;
    }
    void *m = sb.st_size > 0 ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
                             : MAP_FAILED;
    const int me = errno;
    close(fd);
    if (m == MAP_FAILED) {
        if (sb.st_size <= 0) {
            if (err && errlen)
                snprintf(err, errlen, "%s: not a residual file of this run: it is empty", path);
            return FL_ERR_RESULTS_FORMAT;
        }
        if (err && errlen)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(me));
        return FL_ERR_IO;
    }
    (void)madvise(m, (size_t)sb.st_size, MADV_SEQUENTIAL);
    const fl_status st = flsim_resid_parse(m, (size_t)sb.st_size, round, rank, ranks, clients,
                                           n_params, want_sha, resid, resid_n, why, sizeof why);
    munmap(m, (size_t)sb.st_size);
    if (st == FL_ERR_RESULTS_FORMAT && err && errlen)
        snprintf(err, errlen, "%s: %s", path, why);
    return st;
}

size_t flsim_resid_sweep(const char *dir, uint32_t rank, uint32_t ranks, int what, uint32_t round)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    size_t n = 0;
    struct dirent *de;
    char path[FLSIM_STR + 300];
    while ((de = readdir(dp)) != NULL) {
        uint32_t r, rs, rd;
        const int kind = resid_name(de->d_name, &r, &rs, &rd);
        if (!kind || (ranks && r % ranks != rank))
            continue;
        /* temporaries always (a crash left them: this process writes none while it sweeps) */
        if (kind == 1 && (what == FLSIM_SWEEP_TMP ||
                          (what == FLSIM_SWEEP_BUT && r == rank && rs == ranks && rd == round)))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        n += unlink(path) == 0;
    }
    closedir(dp);
    return n;
}
