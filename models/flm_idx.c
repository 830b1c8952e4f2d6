/* flm_idx.c: the IDX reader (MNIST, Fashion-MNIST), plain or gzipped, from files or memory.
 *
 * Both inputs go through one byte source that inflates gzip on the fly, and the sample arrays
 * grow geometrically as bytes actually arrive (capped at what the header announced), so a
 * 16-byte file claiming 2^31 images costs nothing.
 */
#include "flm_data.h"
#include "fl_fs.h"
#include "fl_mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAX_SIDE 65535u             /* rows, cols */
#define IDX_MAX_SAMPLE (1u << 24)       /* rows * cols */
#define IDX_CHUNK 65536u

#define set_err(err, errlen, ...) ((void)fl_errf(err, errlen, FL_OK, __VA_ARGS__))

/* ---- byte source ---------------------------------------------------------------------------- */

typedef struct idx_src {
    const char *name;     /* for messages */
    gzFile gz;            /* file source (gzread reads plain files transparently) */
    const uint8_t *mem;   /* memory source */
    size_t len, pos;
    int mem_gz;           /* memory source is a gzip stream */
    int zs_live, zs_done;
    z_stream zs;
} idx_src;

/* gzerror's message for a stream error: zlib writes it as "PATH: what"; the path is said once,
 * by the caller's "%s: corrupt gzip stream: %s" (as for a stream in memory). */
static const char *gz_what(const idx_src *s, const char *msg)
{
    const size_t n = strlen(s->name);
    return strncmp(msg, s->name, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2
                                                                                : msg;
}

static fl_status src_open_file(idx_src *s, const char *path, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->name = path;
    errno = 0;
    s->gz = gzopen(path, "rb");
    if (!s->gz) {
        set_err(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return errno ? FL_ERR_DATASET_IO : FL_ERR_NOMEM;
    }
    gzbuffer(s->gz, IDX_CHUNK);
    return FL_OK;
}

static fl_status src_open_mem(idx_src *s, const char *name, const uint8_t *p, size_t n)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->mem = p;
    s->len = n;
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        s->mem_gz = 1;
        if (inflateInit2(&s->zs, 15 + 16) != Z_OK)
            return FL_ERR_NOMEM;
        s->zs_live = 1;
    }
    return FL_OK;
}

static void src_close(idx_src *s)
{
    if (s->gz)
        gzclose(s->gz);
    if (s->zs_live)
        inflateEnd(&s->zs);
    memset(s, 0, sizeof *s);
}

/* Reads up to want bytes; *got < want only at the end of the data. */
static fl_status src_read(idx_src *s, uint8_t *buf, size_t want, size_t *got, char *err,
                          size_t errlen)
{
    *got = 0;
    if (s->gz) {
        while (*got < want) {
            size_t k = want - *got;
            if (k > (1u << 30))
                k = 1u << 30;
            const int r = gzread(s->gz, buf + *got, (unsigned)k);
            if (r < 0) {
                int zerr = 0;
                const char *msg = gzerror(s->gz, &zerr);
                if (zerr == Z_ERRNO)
                    set_err(err, errlen, "%s: %s", s->name, strerror(errno));
                else if (zerr == Z_MEM_ERROR)
                    set_err(err, errlen, "%s: out of memory reading the gzip stream", s->name);
                else
                    set_err(err, errlen, "%s: corrupt gzip stream: %s", s->name, gz_what(s, msg));
                return zerr == Z_ERRNO ? FL_ERR_DATASET_IO
                       : zerr == Z_MEM_ERROR ? FL_ERR_NOMEM : FL_ERR_DATASET_FORMAT;
            }
            if (r == 0) {
                /* A truncated gzip stream ends with Z_BUF_ERROR: report it as malformed. */
                int zerr = 0;
                const char *msg = gzerror(s->gz, &zerr);
                if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
                    set_err(err, errlen, "%s: %s%s", s->name,
                            zerr == Z_ERRNO ? "" : "corrupt gzip stream: ", gz_what(s, msg));
                    return zerr == Z_ERRNO ? FL_ERR_DATASET_IO : FL_ERR_DATASET_FORMAT;
                }
                break;
            }
            *got += (size_t)r;
        }
        return FL_OK;
    }
    if (!s->mem_gz) {
        const size_t k = s->len - s->pos < want ? s->len - s->pos : want;
        if (k)
            memcpy(buf, s->mem + s->pos, k);
        s->pos += k;
        *got = k;
        return FL_OK;
    }
    while (*got < want && !s->zs_done) {
        s->zs.next_in = (Bytef *)(uintptr_t)(s->mem + s->pos);
        const size_t in_left = s->len - s->pos;
        s->zs.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        size_t k = want - *got;
        if (k > (1u << 30))
            k = 1u << 30;
        s->zs.next_out = buf + *got;
        s->zs.avail_out = (uInt)k;
        const uInt in_before = s->zs.avail_in;
        const int r = inflate(&s->zs, Z_NO_FLUSH);
        s->pos += in_before - s->zs.avail_in;
        *got += k - s->zs.avail_out;
        if (r == Z_STREAM_END) {
            s->zs_done = 1;
        } else if (r == Z_MEM_ERROR) {
            return FL_ERR_NOMEM;
        } else if (r == Z_BUF_ERROR || (r == Z_OK && s->pos == s->len && s->zs.avail_out)) {
            if (s->zs.avail_out == 0)
                continue;
            set_err(err, errlen, "%s: truncated gzip stream", s->name);
            return FL_ERR_DATASET_FORMAT;
        } else if (r != Z_OK) {
            set_err(err, errlen, "%s: corrupt gzip stream: %s", s->name,
                    s->zs.msg ? s->zs.msg : "inflate error");
            return FL_ERR_DATASET_FORMAT;
        }
    }
    return FL_OK;
}

/* ---- IDX parsing ---------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads the magic and dims; ndims must equal want_dims. */
static fl_status read_header(idx_src *s, const char *what, int want_dims, uint32_t *dims,
                             char *err, size_t errlen)
{
    uint8_t h[16];
    size_t got;
    fl_status st = src_read(s, h, 4, &got, err, errlen);
    if (st != FL_OK)
        return st;
    if (got < 4) {
        set_err(err, errlen, "%s: truncated header (%zu of 4 magic bytes)", s->name, got);
        return FL_ERR_DATASET_FORMAT;
    }
    if (h[0] != 0 || h[1] != 0 || h[2] != 0x08 || h[3] != (uint8_t)want_dims) {
        set_err(err, errlen,
                "%s: bad magic 0x%02x%02x%02x%02x for an IDX %s file (want 0x000008%02x)",
                s->name, h[0], h[1], h[2], h[3], what, (unsigned)want_dims);
        return FL_ERR_DATASET_FORMAT;
    }
    st = src_read(s, h, 4 * (size_t)want_dims, &got, err, errlen);
    if (st != FL_OK)
        return st;
    if (got < 4 * (size_t)want_dims) {
        set_err(err, errlen, "%s: truncated header (dimensions)", s->name);
        return FL_ERR_DATASET_FORMAT;
    }
    for (int d = 0; d < want_dims; d++)
        dims[d] = be32(h + 4 * d);
    return FL_OK;
}

/* Fails unless the source is at its end. */
static fl_status expect_end(idx_src *s, char *err, size_t errlen)
{
    uint8_t b;
    size_t got;
    fl_status st = src_read(s, &b, 1, &got, err, errlen);
    if (st != FL_OK)
        return st;
    if (got) {
        set_err(err, errlen, "%s: trailing bytes after the data the header announced", s->name);
        return FL_ERR_DATASET_FORMAT;
    }
    return FL_OK;
}

static fl_status idx_parse(flm_dataset **out, idx_src *img, idx_src *lab, int classes, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (classes < 1 || classes > 256) {
        set_err(err, errlen, "classes %d outside 1..256", classes);
        return FL_ERR_INVALID_ARG;
    }
    uint32_t ldim[1], idim[3];
    fl_status st = read_header(lab, "label", 1, ldim, err, errlen);
    if (st != FL_OK)
        return st;
    st = read_header(img, "image", 3, idim, err, errlen);
    if (st != FL_OK)
        return st;
    const uint32_t N = idim[0], H = idim[1], W = idim[2];
    if (ldim[0] != N) {
        set_err(err, errlen, "%s has %u labels but %s has %u images", lab->name, ldim[0],
                img->name, N);
        return FL_ERR_DATASET_FORMAT;
    }
    if (H == 0 || W == 0 || H > IDX_MAX_SIDE || W > IDX_MAX_SIDE ||
        (uint64_t)H * W > IDX_MAX_SAMPLE) {
        set_err(err, errlen, "%s: image size %ux%u outside 1..%u per side, %u pixels", img->name,
                H, W, IDX_MAX_SIDE, IDX_MAX_SAMPLE);
        return FL_ERR_DATASET_FORMAT;
    }
    const size_t L = (size_t)H * W;
    if ((uint64_t)N * L > SIZE_MAX / sizeof(float)) {
        set_err(err, errlen, "%s: %u images of %zu pixels do not fit in memory", img->name, N, L);
        return FL_ERR_DATASET_FORMAT;
    }

    flm_dataset *ds = calloc(1, sizeof *ds);
    uint8_t *chunk = malloc(IDX_CHUNK);
    if (!ds || !chunk) {
        free(ds);
        free(chunk);
        return FL_ERR_NOMEM;
    }
    ds->kind = FLM_DATA_FLOAT;
    ds->C = 1;
    ds->H = (int)H;
    ds->W = (int)W;
    ds->sample_len = L;
    ds->classes = classes;

    /* Labels: grow as they arrive. */
    size_t cap = 0, have = 0;
    while (have < N) {
        if (have == cap) {
            size_t nc = cap ? 2 * cap : 4096;
            if (nc > N)
                nc = N;
            int32_t *ny = realloc(ds->y, nc * sizeof *ny);
            if (!ny) {
                st = FL_ERR_NOMEM;
                goto fail;
            }
            ds->y = ny;
            cap = nc;
        }
        size_t want = cap - have < IDX_CHUNK ? cap - have : IDX_CHUNK, got;
        st = src_read(lab, chunk, want, &got, err, errlen);
        if (st != FL_OK)
            goto fail;
        for (size_t i = 0; i < got; i++) {
            if (chunk[i] >= classes) {
                set_err(err, errlen, "%s: label %u of sample %zu outside 0..%d", lab->name,
                        chunk[i], have + i, classes - 1);
                st = FL_ERR_DATASET_FORMAT;
                goto fail;
            }
            ds->y[have + i] = chunk[i];
        }
        have += got;
        if (got < want) {
            set_err(err, errlen, "%s: truncated: %zu of %u labels", lab->name, have, N);
            st = FL_ERR_DATASET_FORMAT;
            goto fail;
        }
    }
    if ((st = expect_end(lab, err, errlen)) != FL_OK)
        goto fail;

    /* Images: floats grow as pixels arrive. p / 255 correctly rounded (not p * (1/255)). The
     * array is offered to huge pages and each chunk's floats prefaulted before they are written
     * (fl_mem.h): what arrived only, so that a header that claims more costs nothing. */
    const size_t total = (size_t)N * L;
    cap = 0;
    have = 0;
    while (have < total) {
        if (have == cap) {
            size_t nc = cap ? 2 * cap : (size_t)1 << 20;
            if (nc > total)
                nc = total;
            float *nx = realloc(ds->x, nc * sizeof *nx);
            if (!nx) {
                st = FL_ERR_NOMEM;
                goto fail;
            }
            ds->x = nx;
            cap = nc;
            fl_advise_huge(nx, nc * sizeof *nx);
        }
        size_t want = cap - have < IDX_CHUNK ? cap - have : IDX_CHUNK, got;
        st = src_read(img, chunk, want, &got, err, errlen);
        if (st != FL_OK)
            goto fail;
        float *x = ds->x + have;
        fl_prefault_write(x, got * sizeof *x);
        for (size_t i = 0; i < got; i++)
            x[i] = (float)chunk[i] / 255.0f; /* a division, not * (1/255): it vectorises */
        have += got;
        if (got < want) {
            set_err(err, errlen, "%s: truncated: %zu of %zu pixel bytes (%u images of %ux%u)",
                    img->name, have, total, N, H, W);
            st = FL_ERR_DATASET_FORMAT;
            goto fail;
        }
    }
    if ((st = expect_end(img, err, errlen)) != FL_OK)
        goto fail;
    if (!ds->x && !(ds->x = malloc(sizeof(float)))) {
        st = FL_ERR_NOMEM;
        goto fail;
    }
    if (!ds->y && !(ds->y = malloc(sizeof(int32_t)))) {
        st = FL_ERR_NOMEM;
        goto fail;
    }
    ds->N = N;
    free(chunk);
    *out = ds;
    return FL_OK;
fail:
    free(chunk);
    flm_dataset_free(ds);
    return st;
}

fl_status flm_idx_load(flm_dataset **out, const char *images_path, const char *labels_path,
                       int classes, char *err, size_t errlen)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (!images_path || !labels_path)
        return FL_ERR_INVALID_ARG;
    idx_src img, lab;
    /* The images first, as the caller names them; when they cannot be opened, the labels are
     * tried all the same, so that a pair that is wrong on both counts is named whole rather than
     * one fix at a time. */
    fl_status st = src_open_file(&img, images_path, err, errlen);
    if (st != FL_OK) {
        char lerr[600];
        if (src_open_file(&lab, labels_path, lerr, sizeof lerr) == FL_OK)
            src_close(&lab);
        else if (err && errlen && strlen(err) + 2 < errlen)
            snprintf(err + strlen(err), errlen - strlen(err), "; %s", lerr);
        return st;
    }
    st = src_open_file(&lab, labels_path, err, errlen);
    if (st != FL_OK) {
        src_close(&img);
        return st;
    }
    st = idx_parse(out, &img, &lab, classes, err, errlen);
    src_close(&img);
    src_close(&lab);
    return st;
}

fl_status flm_idx_load_mem(flm_dataset **out, const uint8_t *images, size_t images_len,
                           const uint8_t *labels, size_t labels_len, int classes, char *err,
                           size_t errlen)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if ((!images && images_len) || (!labels && labels_len))
        return FL_ERR_INVALID_ARG;
    idx_src img, lab;
    fl_status st = src_open_mem(&lab, "labels", labels, labels_len);
    if (st != FL_OK)
        return st;
    st = src_open_mem(&img, "images", images, images_len);
    if (st != FL_OK) {
        src_close(&lab);
        return st;
    }
    st = idx_parse(out, &img, &lab, classes, err, errlen);
    src_close(&img);
    src_close(&lab);
    return st;
}

/* ---- named datasets ------------------------------------------------------------------------- */

/* 1: p is a regular file (or a link to one); 0: nothing there; -1: something else (a FIFO, which
 * an open would wait on for good, a directory, a device). Looked at, never opened. */
static int file_kind(const char *p, mode_t *mode)
{
    struct stat sb;
    if (stat(p, &sb) != 0)
        return 0;
    *mode = sb.st_mode;
    return S_ISREG(sb.st_mode) ? 1 : -1;
}

/* Finds dir/base or dir/base.gz: 1, with its path in buf; 0 if neither is there; -1 when the
 * first one there is no regular file (its path in buf, its mode in *mode). */
static int find_file(char *buf, size_t cap, const char *dir, const char *base, mode_t *mode)
{
    static const char *const ext[] = {".gz", ""};
    for (int e = 0; e < 2; e++) {
        const int n = snprintf(buf, cap, "%s/%s%s", dir, base, ext[e]);
        const int k = n > 0 && (size_t)n < cap ? file_kind(buf, mode) : 0;
        if (k)
            return k;
    }
    return 0;
}

fl_status flm_dataset_load_named(flm_dataset **out, const char *name, const char *split,
                                 const char *dir, char *err, size_t errlen)
{
    if (!out)
        return FL_ERR_INVALID_ARG;
    *out = NULL;
    if (!name || !split)
        return FL_ERR_INVALID_ARG;
    if (strcmp(name, "fashion-mnist") != 0 && strcmp(name, "mnist") != 0) {
        set_err(err, errlen, "unknown dataset \"%s\" (known: fashion-mnist, mnist)", name);
        return FL_ERR_NOT_FOUND;
    }
    const char *prefix;
    if (strcmp(split, "train") == 0)
        prefix = "train";
    else if (strcmp(split, "test") == 0)
        prefix = "t10k";
    else {
        set_err(err, errlen, "unknown split \"%s\" (train or test)", split);
        return FL_ERR_NOT_FOUND;
    }
    char dirs[2][2048];
    int nd = 0;
    /* A directory given, or $FEDROP_DATA_DIR: the parent of the datasets' directories
     * (/usr/share/datasets) or the dataset's own, tried in that order. */
    const char *env = getenv("FEDROP_DATA_DIR");
    const char *base = dir ? dir : env && *env ? env : NULL;
    if (base) {
        snprintf(dirs[nd++], sizeof dirs[0], "%s/%s", base, name);
        snprintf(dirs[nd++], sizeof dirs[0], "%s", base);
    } else {
        snprintf(dirs[nd++], sizeof dirs[0], "/usr/share/datasets/%s", name);
    }
    char ibase[64], lbase[64], ipath[2200], lpath[2200];
    snprintf(ibase, sizeof ibase, "%s-images-idx3-ubyte", prefix);
    snprintf(lbase, sizeof lbase, "%s-labels-idx1-ubyte", prefix);
    for (int d = 0; d < nd; d++) {
        mode_t mode = 0;
        const int fi = find_file(ipath, sizeof ipath, dirs[d], ibase, &mode);
        const int fl = fi > 0 ? find_file(lpath, sizeof lpath, dirs[d], lbase, &mode) : 0;
        if (fi < 0 || fl < 0) {
            set_err(err, errlen, "%s: %s, not a regular file", fi < 0 ? ipath : lpath,
                    fl_mode_what(mode));
            return FL_ERR_DATASET_IO;
        }
        if (fi && fl)
            return flm_idx_load(out, ipath, lpath, 10, err, errlen);
    }
    /* Without a directory given: where to get the files, and how to point at them. Debian
     * packages Fashion-MNIST only. */
    /* The places came from the environment: said, since nothing on the command line or in the
     * configuration names them (a unit's Environment=, a shell profile) */
    const char *hint = base ? (dir ? "" : " (the directory of $FEDROP_DATA_DIR)")
                       : strcmp(name, "fashion-mnist") == 0
                           ? " (apt-get install dataset-fashion-mnist, or set FEDROP_DATA_DIR to "
                             "the directory that holds them)"
                           : " (set FEDROP_DATA_DIR to the directory that holds them; fl_client "
                             "also takes it as --data-dir, fl_server as eval.dir)";
    set_err(err, errlen, "%s %s: %s[.gz] and %s[.gz] not found in %s%s%s%s", name, split, ibase,
            lbase, dirs[0], nd > 1 ? " or " : "", nd > 1 ? dirs[1] : "", hint);
    return FL_ERR_DATASET_IO;
}
