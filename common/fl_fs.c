#include "fl_fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fl_dir_writable(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return errno;
    if (!S_ISDIR(sb.st_mode))
        return ENOTDIR;
    if (access(dir, W_OK | X_OK) != 0)
        return errno;
    /* access() answers from the mode bits, which root passes everywhere: /proc, a directory
     * marked immutable, a root-squashed NFS export. Making (and removing) a file says for sure. */
    char probe[4096];
    if (snprintf(probe, sizeof probe, "%s/.fl-probe-XXXXXX", dir) >= (int)sizeof probe)
        return ENAMETOOLONG;
    const int fd = mkstemp(probe);
    if (fd < 0) {
        const int e = errno;
        /* /proc says ENOENT, though it is there: no file can be made in it */
        return e == ENOENT && stat(dir, &sb) == 0 ? EACCES : e;
    }
    close(fd);
    /* A directory where files can be made but not removed (chattr +a) cannot take an atomic
     * replace either: refused, rather than leaving a probe behind at every start. */
    return unlink(probe) == 0 ? 0 : errno;
}

int fl_path_dir(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    int n;
    if (!slash)
        n = snprintf(dir, cap, ".");
    else if (slash == path)
        n = snprintf(dir, cap, "/");
    else
        n = snprintf(dir, cap, "%.*s", (int)(slash - path), path);
    return n < 0 || (size_t)n >= cap ? ENAMETOOLONG : 0;
}

int fl_parent_writable(const char *path)
{
    char dir[4096];
    const int e = fl_path_dir(path, dir, sizeof dir);
    return e ? e : fl_dir_writable(dir);
}

fl_status fl_file_read(const char *path, size_t max, char **out, size_t *len, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path, strerror(errno));
    /* Unbuffered: fread fills buf directly, so no stdio buffer is left holding the text (a
     * secret key's) when the stream is freed. */
    setvbuf(f, NULL, _IONBF, 0);
    int read_errno = 0;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > max)
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        errno = 0;
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            read_errno = errno;
            break;
        }
    }
    const int bad = ferror(f);
    fclose(f);
    if (!buf)
        return fl_errf(err, errlen, FL_ERR_NOMEM, "%s: out of memory", path);
    if (bad || n > max) {
        free(buf);
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path,
                       !bad ? "file too large" : read_errno ? strerror(read_errno) : "read error");
    }
    *out = buf;
    *len = n;
    return FL_OK;
}
