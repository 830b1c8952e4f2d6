#define _GNU_SOURCE /* mkostemp (glibc 2.7, the BSDs; POSIX 2024) */
#include "fl_fs.h"
#include "fl_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 1 when name is prefix and mkostemp's six letters or digits after it, exactly. */
static int temp_name(const char *name, const char *prefix, size_t pl)
{
    if (strlen(name) != pl + 6 || memcmp(name, prefix, pl) != 0)
        return 0;
    for (const char *c = name + pl; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

/* Removes dir's regular files named prefix and mkostemp's six characters (not followed through a
 * link), and returns how many went. With min_age, only those last modified that many seconds or
 * more before now, now being the directory's mtime (the file system's clock, the same for every
 * host of an NFS export). A directory that cannot be listed is left as it is. */
static size_t sweep_temps(const char *dir, const char *prefix, time_t min_age)
{
    struct stat sb;
    time_t now = 0;
    if (min_age > 0) {
        if (stat(dir, &sb) != 0)
            return 0;
        now = sb.st_mtime;
    }
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    const size_t pl = strlen(prefix);
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (temp_name(e->d_name, prefix, pl) &&
            fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
            (min_age <= 0 || sb.st_mtime <= now - min_age) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    closedir(d);
    return removed;
}

/* Removes the probes in dir that a process killed between their making and their removal left
 * (a Ctrl-C while close waits on a hung NFS server, a SIGKILL, a power cut): nothing else would
 * ever remove them. Only those an hour old, by the directory's mtime just after this process's
 * own probe went: a probe lives milliseconds, and another process's being made at this instant
 * (MPI ranks on other hosts probing one --out) would be removed under it (on NFS its write then
 * fails with ESTALE). */
static void probe_sweep(const char *dir)
{
    (void)sweep_temps(dir, ".fl-probe-", 3600);
}

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
    /* close-on-exec from birth, as every descriptor here: a child forked and exec'd by another
     * thread keeps no file of ours (mkostemp: glibc and the BSDs) */
    const int fd = mkostemp(probe, O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        /* /proc says ENOENT, though it is there: no file can be made in it */
        return e == ENOENT && stat(dir, &sb) == 0 ? EACCES : e;
    }
    /* A few bytes written too: a full file system (or a quota used up) still makes an empty
     * file, and would fail only the first real write, once the caller has started. NFS may say
     * ENOSPC or EDQUOT only at close. */
    static const char bytes[] = "fedrop write probe\n";
    int e = fl_write_all(fd, bytes, sizeof bytes - 1) == 0 ? 0 : errno;
    if (close(fd) != 0 && !e)
        e = errno;
    /* A directory where files can be made but not removed (chattr +a) cannot take an atomic
     * replace either: refused, rather than leaving a probe behind at every start. */
    /* ENOENT: another process's probe_sweep removed it first (this one hung an hour in close),
     * which a directory that keeps its files (chattr +a: EPERM) would not have let it do either */
    const int gone = unlink(probe) == 0;
    if (!gone && errno != ENOENT && !e)
        e = errno;
    if (gone)
        probe_sweep(dir);
    return e;
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

/* Frees a read buffer that held n bytes of a file, wiped first: the file may be a key file, and
 * a secret key must not stay in memory that the heap hands out again. */
static void buf_free(char *buf, size_t n)
{
    if (buf)
        explicit_bzero(buf, n);
    free(buf);
}

/* A full read buffer *buf of *cap bytes doubled: 0; 1 when it already holds more than max (left
 * as it is: the file is too large); -1 out of memory (*buf freed and NULL). Not realloc: it
 * would free the old block (a key in it) without a wipe. */
static int room(char **buf, size_t *cap, size_t max)
{
    if (*cap > max || *cap > SIZE_MAX / 4)
        return 1;
    char *nb = malloc(*cap * 2);
    if (nb)
        memcpy(nb, *buf, *cap);
    buf_free(*buf, *cap);
    *buf = nb;
    if (!nb)
        return -1;
    *cap *= 2;
    return 0;
}

/* How many bytes the next read may ask for: the buffer's room, but no more than one past max, so
 * that a file longer than max is known as such after max + 1 bytes, without reading on. */
static size_t read_ask(size_t cap, size_t n, size_t max)
{
    const size_t room_left = cap - n, to_over = max - n; /* n <= max here */
    return to_over < room_left ? to_over + 1 : room_left;
}

/* Reads f to its end (and closes it): fl_file_read's loop, for a stream already open. */
static fl_status read_stream(FILE *f, const char *path, size_t max, char **out, size_t *len,
                             char *err, size_t errlen)
{
    /* Unbuffered: fread fills buf directly, so no stdio buffer is left holding the text (a
     * secret key's) when the stream is freed. */
    setvbuf(f, NULL, _IONBF, 0);
    int read_errno = 0;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf && n <= max) {
        if (n == cap && room(&buf, &cap, max) != 0)
            break;
        errno = 0;
        const size_t r = fread(buf + n, 1, read_ask(cap, n, max), f);
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
        buf_free(buf, n);
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path,
                       !bad ? "file too large" : read_errno ? strerror(read_errno) : "read error");
    }
    *out = buf;
    *len = n;
    return FL_OK;
}

fl_status fl_file_read(const char *path, size_t max, char **out, size_t *len, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rbe"); /* e: close-on-exec (O_CLOEXEC), as every descriptor here */
    if (!f)
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path, strerror(errno));
    return read_stream(f, path, max, out, len, err, errlen);
}

int fl_stat_same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

const char *fl_mode_what(mode_t mode)
{
    return S_ISFIFO(mode)                     ? "a FIFO"
           : S_ISDIR(mode)                    ? "a directory"
           : S_ISCHR(mode) || S_ISBLK(mode) ? "a device"
           : S_ISSOCK(mode)                   ? "a socket"
           : S_ISREG(mode)                    ? "a regular file"
                                              : "something else";
}

/* Opens path without blocking (a FIFO without a writer, or some devices, would wait for good)
 * and stats it: FL_OK with *fd and *st, else FL_ERR_IO ("PATH: reason"). */
static fl_status open_nonblocking(const char *path, int *fd, struct stat *st, char *err,
                                  size_t errlen)
{
    memset(st, 0, sizeof *st); /* defined on every return */
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0)
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(*fd, st) != 0) {
        const int e = errno;
        close(*fd);
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path, strerror(e));
    }
    return FL_OK;
}

/* Reads the regular file fd (from open_nonblocking; closed here) to its end, or refuses (and
 * closes) fd of another kind. */
static fl_status read_regular_fd(int fd, const struct stat *st, const char *path, size_t max,
                                 char **out, size_t *len, char *err, size_t errlen)
{
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s, not a regular file", path,
                       fl_mode_what(st->st_mode));
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        const int e = errno;
        close(fd);
        return fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path, strerror(e));
    }
    return read_stream(f, path, max, out, len, err, errlen);
}

fl_status fl_file_read_regular(const char *path, size_t max, char **out, size_t *len, char *err,
                               size_t errlen)
{
    int fd;
    struct stat st;
    const fl_status s = open_nonblocking(path, &fd, &st, err, errlen);
    return s != FL_OK ? s : read_regular_fd(fd, &st, path, max, out, len, err, errlen);
}

/* Reads the FIFO or pipe fd (opened without blocking; closed here) to its end, waiting at most
 * wait_s at a time for its writer (fl_file_read_wait). A read that returns 0 means "no writer
 * now": the end once a writer has been there (bytes came, or poll saw a hang-up), else a writer
 * still to come. On a named FIFO poll reports only the hang-up of a writer that came after the
 * open; a pipe reopened through /dev/fd/N (a shell's <(command)) reports it also when its writer
 * left before the open. Either way the bytes come first, and the end after them. A signal does
 * not restart the wait: it ends wait_s after the last bytes (or the open). */
static fl_status read_fifo(int fd, const char *path, size_t max, double wait_s, char **out,
                           size_t *len, char *err, size_t errlen)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    fl_status st = FL_OK;
    int hup = 0;
    if (!(wait_s >= 0.0)) /* NaN too */
        wait_s = 0.0;
    if (wait_s > 3600.0)
        wait_s = 3600.0;
    double until = fl_time_mono_s() + wait_s;
    while (buf) {
        if (n == cap && room(&buf, &cap, max) != 0) {
            if (buf)
                st = fl_errf(err, errlen, FL_ERR_IO, "%s: file too large", path);
            break;
        }
        const ssize_t r = read(fd, buf + n, read_ask(cap, n, max));
        if (r > 0) {
            n += (size_t)r;
            if (n > max) { /* no need to wait for the rest: a writer may hold it open */
                st = fl_errf(err, errlen, FL_ERR_IO, "%s: file too large", path);
                break;
            }
            until = fl_time_mono_s() + wait_s;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            st = fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (r == 0 && (n > 0 || hup))
            break; /* the end */
        struct pollfd p = {fd, POLLIN, 0};
        int pr;
        do {
            const double left = until - fl_time_mono_s();
            pr = poll(&p, 1, left <= 0.0 ? 0 : (int)(left * 1000.0) + 1);
        } while (pr < 0 && errno == EINTR);
        if (pr < 0) {
            st = fl_errf(err, errlen, FL_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (pr == 0) {
            st = fl_errf(err, errlen, FL_ERR_IO, "%s: a FIFO that no process %s within %g s", path,
                         n ? "finished writing" : "wrote to", wait_s);
            break;
        }
        hup |= (p.revents & POLLHUP) != 0;
    }
    close(fd);
    if (!buf)
        return fl_errf(err, errlen, FL_ERR_NOMEM, "%s: out of memory", path);
    if (st == FL_OK && n > max)
        st = fl_errf(err, errlen, FL_ERR_IO, "%s: file too large", path);
    if (st != FL_OK) {
        buf_free(buf, n);
        return st;
    }
    *out = buf;
    *len = n;
    return FL_OK;
}

fl_status fl_file_read_wait(const char *path, size_t max, double wait_s, char **out, size_t *len,
                            mode_t *mode, char *err, size_t errlen)
{
    int fd;
    struct stat st;
    fl_status s = open_nonblocking(path, &fd, &st, err, errlen);
    if (s != FL_OK)
        return s;
    s = S_ISFIFO(st.st_mode) ? read_fifo(fd, path, max, wait_s, out, len, err, errlen)
                             : read_regular_fd(fd, &st, path, max, out, len, err, errlen);
    if (s == FL_OK && mode)
        *mode = st.st_mode;
    return s;
}

int fl_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        const ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- atomic replacement ----------------------------------------------------------------------- */

static int atomic_fail(fl_atomic *a, const char *what)
{
    a->what = what;
    return errno ? errno : EIO;
}

/* A failed fl_atomic_open: nothing left behind (its header), whether or not fl_atomic_end is
 * called after; a->what and the errno returned say why. */
static int atomic_open_fail(fl_atomic *a, const char *what)
{
    const int e = atomic_fail(a, what);
    fl_atomic_end(a);
    return e;
}

/* The process's umask, read without changing it (umask(2) can only set it, and setting it back
 * races with other threads making files): /proc/self/status's "Umask:" line (Linux 4.7 on);
 * otherwise set and restored. */
static mode_t process_umask(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (f) {
        char line[256];
        unsigned m;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &m) == 1) {
                fclose(f);
                return (mode_t)(m & 0777);
            }
        fclose(f);
    }
    const mode_t m = umask(022);
    umask(m);
    return m;
}

int fl_atomic_open(fl_atomic *a, const char *path, mode_t mode)
{
    *a = (fl_atomic){.fd = -1, .dfd = -1, .what = ""};
    const size_t pl = strlen(path);
    char *dir = malloc(pl + 2);
    a->tmp = malloc(pl + sizeof ".tmp.XXXXXX");
    if (!dir || !a->tmp) {
        /* a->tmp, if it was allocated, names nothing yet: fl_atomic_end must not unlink it */
        free(dir);
        free(a->tmp);
        a->tmp = NULL;
        errno = ENOMEM;
        return atomic_open_fail(a, "out of memory");
    }
    snprintf(a->tmp, pl + sizeof ".tmp.XXXXXX", "%s.tmp.XXXXXX", path);
    fl_path_dir(path, dir, pl + 2); /* it fits */
    /* The directory first: a process out of descriptors (EMFILE) fails before making a file. */
    a->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (a->dfd < 0)
        return atomic_open_fail(a, "cannot open its directory");
    /* O_CLOEXEC at creation: set after (fcntl), a fork and exec in another thread in between
     * handed the child the descriptor */
    if ((a->fd = mkostemp(a->tmp, O_CLOEXEC)) < 0) {
        a->tmp[0] = 0; /* nothing to remove */
        return atomic_open_fail(a, "cannot create a temporary file");
    }
    /* mkostemp makes 0600 whatever the umask; the file gets what open(2) would have given it */
    if (fchmod(a->fd, mode & ~process_umask() & 07777) != 0)
        return atomic_open_fail(a, "cannot set the temporary file's mode");
    return 0;
}

int fl_atomic_write(fl_atomic *a, const void *p, size_t n)
{
    return fl_write_all(a->fd, p, n) == 0 ? 0 : atomic_fail(a, "cannot write");
}

int fl_atomic_commit(fl_atomic *a, const char *path, int keep_open)
{
    if (fsync(a->fd) != 0)
        return atomic_fail(a, "cannot fsync");
    if (!keep_open) {
        const int r = close(a->fd);
        a->fd = -1;
        if (r != 0)
            return atomic_fail(a, "cannot close");
    }
    if (rename(a->tmp, path) != 0)
        return atomic_fail(a, "cannot rename the temporary file onto it");
    a->renamed = 1;
    if (fsync(a->dfd) != 0)
        return atomic_fail(a, "cannot fsync its directory");
    return 0;
}

void fl_atomic_end(fl_atomic *a)
{
    const int e = errno; /* the caller's report may still want it */
    if (a->fd >= 0)
        close(a->fd);
    if (a->dfd >= 0)
        close(a->dfd);
    if (a->tmp && a->tmp[0] && !a->renamed)
        unlink(a->tmp);
    free(a->tmp);
    *a = (fl_atomic){.fd = -1, .dfd = -1, .renamed = a->renamed, .what = a->what};
    errno = e;
}

size_t fl_atomic_sweep(const char *path)
{
    char dir[4096], prefix[4096];
    if (fl_path_dir(path, dir, sizeof dir) != 0)
        return 0;
    const char *slash = strrchr(path, '/');
    /* base ".tmp." XXXXXX, exactly */
    const int n = snprintf(prefix, sizeof prefix, "%s.tmp.", slash ? slash + 1 : path);
    if (n < 0 || (size_t)n >= sizeof prefix)
        return 0;
    return sweep_temps(dir, prefix, 0);
}

/* ---- one process per path -------------------------------------------------------------------- */

int fl_lock_path(const char *lock_path, int *fd, long *holder)
{
    *fd = -1;
    *holder = 0;
    /* O_NOFOLLOW: a symbolic link planted at the lock's path (a fixed path in a shared /tmp)
     * would have the pid written over the file it names, truncated first */
    const int f = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0)
        return errno;
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        if (e == EWOULDBLOCK) {
            char text[32] = "";
            const ssize_t n = pread(f, text, sizeof text - 1, 0);
            if (n > 0) {
                text[n] = 0;
                char *end = NULL;
                const long pid = strtol(text, &end, 10);
                *holder = end != text && pid > 0 ? pid : 0;
            }
        }
        close(f);
        return e;
    }
    char text[32];
    const int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    /* The pid is for the message of the process that finds the lock taken; failing to write it
     * does not weaken the lock. */
    const int said = ftruncate(f, 0) == 0 && pwrite(f, text, (size_t)n, 0) == n;
    (void)said;
    *fd = f;
    return 0;
}

ssize_t fl_write_nosigpipe(int fd, const void *buf, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    /* one raised before this call, for the thread's own reasons, is not ours to take */
    const int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    const int masked = pthread_sigmask(SIG_BLOCK, &pipe_set, &old) == 0;
    const ssize_t w = write(fd, buf, n);
    const int e = errno;
    if (masked) {
        if (w < 0 && e == EPIPE && !was_pending) {
            /* the SIGPIPE that write raised for this thread, pending while blocked: taken */
            const struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    errno = e;
    return w;
}

long fl_read_small(const char *path, char *buf, size_t cap, int *more)
{
    if (more)
        *more = 0;
    if (cap)
        buf[0] = '\0';
    FILE *f = fopen(path, "re"); /* e: close-on-exec, as every descriptor here */
    if (!f)
        return -1;
    const size_t n = cap ? fread(buf, 1, cap - 1, f) : 0;
    int bad = ferror(f);
    if (!bad && more && fgetc(f) != EOF)
        *more = 1;
    bad |= ferror(f);
    fclose(f);
    if (cap)
        buf[n] = '\0';
    return bad ? -1 : (long)n;
}

int fl_read_int_file(const char *path, int fallback)
{
    /* strtol, not fscanf's %d: a number outside int is undefined for %d (glibc wrapped it) */
    char buf[128];
    int more;
    if (fl_read_small(path, buf, sizeof buf, &more) < 0)
        return fallback;
    char *end;
    errno = 0;
    const long v = strtol(buf, &end, 10);
    /* no digits, out of range, or digits that run on past what was read */
    if (end == buf || errno == ERANGE || v < INT_MIN || v > INT_MAX || (more && *end == '\0'))
        return fallback;
    return (int)v;
}

int fl_std_fds_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        const int n = open("/dev/null", O_RDWR); /* the lowest free number: fd */
        if (n < 0)
            return errno;
        if (n != fd) { /* cannot be (fd was free and the lowest), but never keep a stray */
            close(n);
            return EBADF;
        }
    }
    return 0;
}
