/* fls_keys.c: CURVE key files (fls_keygen writes them, common's fl_key_file_read reads them) and
 * the ZAP allow-list (a sorted array of 32-byte public keys, parsed strictly with the key-file
 * reader's line and Z85 rules: a bad line refuses the whole file, so a typo never silently locks
 * clients out or lets anyone in). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "fl_fs.h"
#include "fl_keyfile.h"
#include "fls_internal.h"

#define ALLOW_MAX_BYTES (64u << 20)

#define kfail(st, err, errlen, ...) fl_errf(err, errlen, st, __VA_ARGS__)

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

fl_status fls_allow_parse(fls_allow *out, const char *text, size_t len, const char *name,
                          char *err, size_t errlen)
{
    if (!out || (!text && len))
        return FL_ERR_INVALID_ARG;
    if (!name)
        name = "allow-list";
    /* Count candidate lines first: one allocation, bounded by the input. */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    const size_t cap = len / FLS_Z85_LEN + 1 < lines ? len / FLS_Z85_LEN + 1 : lines;
    uint8_t(*keys)[32] = malloc(cap * 32);
    if (!keys)
        return FL_ERR_NOMEM;
    const size_t text0 = fl_key_text_start(text, len);
    size_t n = 0, pos = text0, a, b, line = 0;
    for (size_t start = pos; fl_key_next_line(text, len, &pos, &a, &b); start = pos) {
        line++;
        if (a == b) {
            /* a secret key file (fl_server keygen's header) given as the allow-list: its key
             * would parse, admit nobody, and put a secret where public keys belong */
            if (fl_key_header_kind(text + start, (pos < len ? pos : len) - start) ==
                FL_KEY_SECRET) {
                free(keys);
                return kfail(FL_ERR_AUTH, err, errlen, "%s:%zu: a secret key file (its header "
                             "says so), where public keys are needed", name, line);
            }
            continue;
        }
        if (n == cap || !fl_z85_key_decode(keys[n], text + a, b - a)) {
            free(keys);
            return kfail(FL_ERR_AUTH, err, errlen, "%s:%zu: not a 40-character Z85 public key",
                         name, line);
        }
        n++;
    }
    qsort(keys, n, 32, key_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || memcmp(keys[m - 1], keys[i], 32) != 0)
            memmove(keys[m++], keys[i], 32);
    fls_allow_clear(out);
    out->keys = keys;
    out->n = m;
    out->blank = 1;
    for (size_t i = text0; i < len && out->blank; i++)
        out->blank = text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r';
    return FL_OK;
}

fl_status fls_allow_load(fls_allow *out, const char *path, char *err, size_t errlen)
{
    if (!out || !path)
        return FL_ERR_INVALID_ARG;
    char *text = NULL;
    size_t len = 0;
    /* a regular file only: a FIFO would block the start, --check, or (SIGHUP) the reactor for
     * good */
    fl_status st = fl_file_read_regular(path, ALLOW_MAX_BYTES, &text, &len, err, errlen);
    if (st != FL_OK)
        return st;
    st = fls_allow_parse(out, text, len, path, err, errlen);
    free(text);
    return st;
}

int fls_allow_has(const fls_allow *a, const uint8_t key[32])
{
    return a && a->n && bsearch(key, a->keys, a->n, 32, key_cmp) != NULL;
}

void fls_allow_clear(fls_allow *a)
{
    if (!a)
        return;
    free(a->keys);
    a->keys = NULL;
    a->n = 0;
}

/* ---- keygen --------------------------------------------------------------------------------- */

static fl_status write_key(const char *path, const char *what, const char *z85, mode_t mode,
                           char *err, size_t errlen)
{
    const int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST)
        return kfail(FL_ERR_IO, err, errlen, "%s exists: keygen never overwrites a key (to "
                     "rotate, remove the old pair yourself or write the new one under another "
                     "NAME)", path);
    if (fd < 0)
        return kfail(FL_ERR_IO, err, errlen, "%s: %s", path, strerror(errno));
    char text[256];
    const int n = snprintf(text, sizeof text,
                           "# fedrop CURVE %s key (Z85). Written by fl_server keygen.\n%s\n",
                           what, z85);
    const int ok = n > 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    const int saved = errno;
    if (close(fd) != 0 || !ok) {
        unlink(path);
        return kfail(FL_ERR_IO, err, errlen, "%s: %s", path, strerror(ok ? errno : saved));
    }
    return FL_OK;
}

/* fsync of a directory: 0, or the errno of the open or the sync. */
static int sync_dir(const char *dir)
{
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    const int e = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return e;
}

/* The directory that holds dir ("keys/" and "keys" are both in "."). */
static int parent_of(const char *dir, char *out, size_t cap)
{
    char d[FLS_PATH_MAX];
    if (snprintf(d, sizeof d, "%s", dir) >= (int)sizeof d)
        return ENAMETOOLONG;
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = 0;
    return fl_path_dir(d, out, cap);
}

fls_status fls_keygen(const char *dir, const char *name, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!dir || !name)
        return FLS_ERR_INVALID_ARG;
    if (!*dir)
        return fls_status_of(kfail(FL_ERR_INVALID_ARG, err, errlen,
                                   "key directory must be non-empty"));
    /* NAME becomes a file name in DIR: a '/' would write elsewhere, "" would write ".pub", and
     * a leading '.' (".", "..", ".x") hidden files ("keys/..pub") that ls and a *.pub glob miss */
    if (!*name || strchr(name, '/') || name[0] == '.')
        return fls_status_of(kfail(FL_ERR_INVALID_ARG, err, errlen,
                                   "key name '%s' must be non-empty, contain no '/' and not start "
                                   "with '.'", name));
    if (!zmq_has("curve"))
        return fls_status_of(kfail(FL_ERR_UNSUPPORTED, err, errlen, "libzmq has no CURVE"));
    char pub[FLS_Z85_LEN + 1], sec[FLS_Z85_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0)
        return fls_status_of(kfail(FL_ERR_UNSUPPORTED, err, errlen, "zmq_curve_keypair: %s",
                                   zmq_strerror(zmq_errno())));
    char ppath[FLS_PATH_MAX], spath[FLS_PATH_MAX];
    if (snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name) >= (int)sizeof ppath ||
        snprintf(spath, sizeof spath, "%s/%s.secret", dir, name) >= (int)sizeof spath)
        return fls_status_of(kfail(FL_ERR_INVALID_ARG, err, errlen,
                                   "%s/%s.secret is longer than %d bytes", dir, name,
                                   FLS_PATH_MAX - 1));
    /* The key directory is made if it is missing (one level, private: it holds secrets). */
    const int made = mkdir(dir, 0700) == 0;
    if (!made && errno != EEXIST)
        return fls_status_of(kfail(FL_ERR_IO, err, errlen, "%s: %s", dir, strerror(errno)));
    /* Something is there: a file in DIR's place made the open below fail as "DIR/NAME.secret:
     * Not a directory", naming a path the operator never gave. (stat, not lstat: a link to a
     * directory is one.) */
    struct stat sb;
    if (!made && stat(dir, &sb) != 0) {
        explicit_bzero(sec, sizeof sec);
        return fls_status_of(kfail(FL_ERR_IO, err, errlen, "%s: %s", dir, strerror(errno)));
    }
    if (!made && !S_ISDIR(sb.st_mode)) {
        explicit_bzero(sec, sizeof sec);
        return fls_status_of(kfail(FL_ERR_IO, err, errlen, "%s: not a directory (keygen writes "
                                   "the key pair into DIR, made if missing)", dir));
    }
    /* Neither file may exist: a NAME.pub left alone (its secret deleted) may still be on the
     * other side's allow-list or be the only copy of that public key; keygen never overwrites
     * (the usage promises exit 1 when a file of the pair exists). */
    const char *there = lstat(spath, &sb) == 0 ? spath : lstat(ppath, &sb) == 0 ? ppath : NULL;
    if (there) {
        explicit_bzero(sec, sizeof sec);
        return fls_status_of(kfail(FL_ERR_IO, err, errlen, "%s exists: keygen never overwrites "
                                   "a key (to rotate, remove the old pair yourself or write the "
                                   "new one under another NAME)", there));
    }
    /* Then each file exclusively (O_EXCL), the secret first: a pair in use is never overwritten,
     * even by a keygen run beside this one. */
    fl_status st = write_key(spath, "secret", sec, 0600, err, errlen);
    if (st == FL_OK) {
        st = write_key(ppath, "public", pub, 0644, err, errlen);
        if (st != FL_OK)
            unlink(spath);
    }
    explicit_bzero(sec, sizeof sec);
    /* The files' names reach the disk with their directory's sync (and a directory keygen made,
     * with its parent's): without it a power cut after "wrote" could take the pair away, after
     * the public key was handed out. A pair that cannot be made durable is not left behind:
     * keygen never overwrites, and a second run must be able to write it. */
    if (st == FL_OK) {
        char parent[FLS_PATH_MAX];
        int e = sync_dir(dir);
        const char *which = dir;
        if (!e && made) {
            e = parent_of(dir, parent, sizeof parent);
            if (!e) {
                e = sync_dir(parent);
                which = parent;
            }
        }
        if (e) {
            unlink(ppath);
            unlink(spath);
            if (made)
                rmdir(dir);
            st = kfail(FL_ERR_IO, err, errlen, "%s: cannot sync the directory (%s): the key pair "
                       "was not kept (nothing written; run keygen again)", which, strerror(e));
        }
    }
    return fls_status_of(st);
}
