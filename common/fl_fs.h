/* fl_fs.h: small file-system helpers shared by the daemons and the simulator. */
#ifndef FL_FS_H
#define FL_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "fl_status.h"

/* 0 if dir is a directory in which this process can create, write and remove files (stat,
 * S_ISDIR, access W|X, then a probe file ".fl-probe-XXXXXX" made, written a few bytes, closed and
 * removed at once, since access() lets root pass where no file can be made, and a full file
 * system still makes an empty file); otherwise the errno that says why (ENOTDIR when it is
 * something else; ENOSPC, EDQUOT or EIO from the write or the close). The probe is removed even
 * when its write failed. The probes that a process killed before it removed its own left in dir
 * are removed too: regular files named ".fl-probe-" and six letters or digits, last modified an
 * hour or more before the directory's mtime once this call's own probe is gone (a probe lives
 * milliseconds; another process's being made now is left to it). It changes the directory's
 * mtime. */
int fl_dir_writable(const char *dir);

struct stat;

/* 1 when a and b (from stat, fstat or lstat) are of one file: the same device and inode, which
 * two names of it (a hard or symbolic link, another spelling of its path) and every descriptor
 * open on it share; else 0. */
int fl_stat_same_file(const struct stat *a, const struct stat *b);

/* A file type in words, for "PATH: <it>, not a regular file": "a FIFO", "a directory", "a
 * device", "a socket", "a regular file" (for "PATH: <it>, not a directory"), "something else". */
const char *fl_mode_what(mode_t mode);

/* The directory that holds the file `path` into dir (cap bytes): its part before the last '/',
 * "/" for a file at the root, "." without a '/'. 0, or ENAMETOOLONG when it does not fit. */
int fl_path_dir(const char *path, char *dir, size_t cap);

/* fl_dir_writable of the directory that would hold the file `path` (fl_path_dir). */
int fl_parent_writable(const char *path);

/* Reads the whole file at path (a FIFO too) into *out, a malloc'd buffer the caller frees, and its
 * size into *len. A file of more than max bytes is refused without being read to its end. FL_OK;
 * FL_ERR_IO ("PATH: reason" in err: cannot open, read error, file too large); FL_ERR_NOMEM.
 * *out and *len are written only on FL_OK. Every buffer given up on the way (outgrown, or the
 * file refused) is wiped before it is freed, as the file may be a secret key; *out, the caller's,
 * is the caller's to wipe. */
fl_status fl_file_read(const char *path, size_t max, char **out, size_t *len, char *err,
                       size_t errlen);

/* fl_file_read for a file that must be a regular one (a key file): opened without blocking and
 * refused before a byte is read when it is anything else ("PATH: a FIFO, not a regular file";
 * a FIFO given by mistake would otherwise hang its reader for good). */
fl_status fl_file_read_regular(const char *path, size_t max, char **out, size_t *len, char *err,
                               size_t errlen);

/* fl_file_read_regular, but a FIFO or a pipe (a shell's `<(command)`, /dev/fd/N) is read too,
 * waiting at most wait_s seconds at a time for its writer: for its first bytes, for its next ones,
 * and for its end. A FIFO that no process writes to is thus refused after wait_s ("PATH: a FIFO
 * that no process wrote to within 10 s"), where a blocking read would wait for good, and a read
 * without waiting would take it for an empty file. Other kinds of file are refused as by
 * fl_file_read_regular. *mode (may be NULL) gets the file's st_mode, on FL_OK. For a file read
 * once (a configuration), not one read again on a reload. */
fl_status fl_file_read_wait(const char *path, size_t max, double wait_s, char **out, size_t *len,
                            mode_t *mode, char *err, size_t errlen);

/* Writes all n bytes of p to fd (retrying short writes and EINTR): 0, or -1 with errno set
 * (ENOSPC for a write that wrote nothing). */
int fl_write_all(int fd, const void *p, size_t n);

/* An atomic replacement of the file at a path: the new contents go to a temporary file beside it
 * ("PATH.tmp.XXXXXX", made with mkostemp, close-on-exec), which is fsync'd, renamed over PATH,
 * and the directory fsync'd. A reader sees the old file or the new one, never a part of either;
 * a crash leaves the old file and, at worst, a temporary that fl_atomic_sweep removes.
 *
 *     fl_atomic a;
 *     int e = fl_atomic_open(&a, path, 0644);
 *     if (!e) e = fl_atomic_write(&a, buf, len);
 *     if (!e) e = fl_atomic_commit(&a, path, 0);
 *     if (e) ... a.what says which step failed, e its errno ...
 *     fl_atomic_end(&a);
 *
 * Each call returns 0 or the errno of the call that failed, and sets `what` to a phrase for a
 * message ("cannot fsync"). */
typedef struct fl_atomic {
    int fd;           /* the temporary file, open for writing (O_CLOEXEC); -1 when closed */
    int dfd;          /* its directory, opened first (a process out of descriptors fails early) */
    int renamed;      /* 1 once the rename is done: PATH names the new file, whatever followed */
    const char *what; /* the step that failed ("" while none did) */
    char *tmp;        /* the temporary's name (malloc'd); removed by fl_atomic_end unless renamed */
} fl_atomic;

/* Makes the temporary (mode: its permission bits, less the process's umask, as open(2) takes
 * them) and opens the directory. On failure nothing
 * is left behind (fl_atomic_end is still safe to call). */
int fl_atomic_open(fl_atomic *a, const char *path, mode_t mode);

/* fl_write_all to the temporary. */
int fl_atomic_write(fl_atomic *a, const void *p, size_t n);

/* fsync the temporary, rename it over path, fsync the directory. keep_open: the descriptor stays
 * open in a->fd (for appending to the new file; the caller takes it and sets a->fd = -1);
 * otherwise it is closed before the rename (a failed close is reported: NFS says ENOSPC there).
 * a->renamed says whether the rename happened: after a failed directory fsync it did, and PATH
 * already names the new file, though not yet durably. */
int fl_atomic_commit(fl_atomic *a, const char *path, int keep_open);

/* Closes what is open and removes the temporary unless it was renamed; frees. Idempotent. */
void fl_atomic_end(fl_atomic *a);

/* Removes the temporaries that fl_atomic_open made for path ("PATH.tmp." and six characters) and
 * that an interrupted process left behind. Only for the one process that owns path (see
 * fl_lock_path): another writer's temporary would be removed under it. The number removed; the
 * errno of a failed unlink is not reported (the file is then left as it was). */
size_t fl_atomic_sweep(const char *path);

/* Reads the first cap - 1 bytes of a small text file (/proc, sysfs) into buf as a string (cap
 * at least 1). Returns the number of bytes read, or -1 when the file cannot be opened or read;
 * *more (when not NULL) says whether the file held more than was read. */
long fl_read_small(const char *path, char *buf, size_t cap, int *more);

/* The integer a small text file starts with after any white space (a /proc/sys setting, say), or
 * fallback when the file cannot be read or does not start with one that fits an int. */
int fl_read_int_file(const char *path, int fallback);

/* write(2) to a pipe or FIFO whose reader may have gone, without the SIGPIPE that would end the
 * host process (a library must not): SIGPIPE is blocked in the calling thread for the write, and
 * the one it raises is taken; the write fails with EPIPE as it would with SIGPIPE ignored.
 * Returns what write returns, errno as write sets it. */
ssize_t fl_write_nosigpipe(int fd, const void *buf, size_t n);

/* Takes an exclusive advisory lock (flock) on the file lock_path, made if missing (mode 0644),
 * and writes this process's pid into it: *fd holds the lock until closed or until the process
 * ends (a crash releases it; no stale lock is left). 0; EWOULDBLOCK when another process holds
 * it, with its pid in *holder (0 when the file does not say); or the errno of open/flock
 * (ELOOP: lock_path is a symbolic link, never followed, as one planted there would have the
 * file it names truncated). The descriptor is O_CLOEXEC: a child the process starts does not
 * keep the lock. */
int fl_lock_path(const char *lock_path, int *fd, long *holder);

/* Standard input, output and error open: each of descriptors 0, 1 and 2 that is closed (a program
 * started as `prog ... >&- 2>&-`, or by a supervisor that closes them) is opened on /dev/null.
 * Else the first files the process opens take those numbers, and what it prints lands in them:
 * fl_server's log went into CHECKPOINT.lock, fl_sim's into DIR/rounds.csv, fl_client's into its
 * own wake pipe. For a program's main, before anything else opens a file (not thread-safe: a
 * descriptor another thread opens meanwhile may take a number first). Never prints. 0, or the
 * errno of a descriptor that could not be filled. */
int fl_std_fds_open(void);

#endif
